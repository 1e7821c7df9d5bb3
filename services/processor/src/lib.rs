//! Process managers: code that reacts to stored events by sending commands (the order
//! processor sends `ProcessOrder` for every `OrderCreated`).
//!
//! A [`Processor`] tails the event store by global position, exactly as a store projector
//! does (gap-safe: it never moves past an event that commits late), hands every event of the
//! manager's stream types to [`ProcessManager::react`], and only then moves its durable
//! checkpoint past the batch. So:
//!
//! - **at least once**: an event is reacted to again after a crash between the reaction and
//!   the checkpoint, or when a batch is retried;
//! - **exactly once in effect**: the contract of [`ProcessManager::react`] is that a second
//!   reaction to the same event changes nothing. The usual way is a command the aggregate
//!   decides as a no-op when it has already happened (`ProcessOrder` on a processed order
//!   appends nothing), with the aggregate's expected-version check settling any race.
//! - **one active instance**: the checkpoint database holds a lease per processor
//!   ([`eventline_readmodel::LeaseKeeper`]); other instances wait as hot standbys.
//! - **no poison loop**: a reaction that can never succeed goes to the dead-letter table in
//!   the checkpoint's transaction, and the processor moves on.
//!
//! Events of one stream are reacted to in order; different streams run concurrently.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use eventline_core::{CommandError, Envelope, EventStore, Position, ProjectionError, StoreError};
use eventline_readmodel::{
    LeaseKeeper, ProgressOnly, ProjectedEvent, ReadModelDb, ReadModelError, Schema,
};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Why a reaction failed.
#[derive(Debug, thiserror::Error)]
pub enum ReactionError {
    /// Worth another try (the event store is unreachable, a race was lost too often): the
    /// batch is not checkpointed and is tried again after a backoff.
    #[error("{0}")]
    Transient(String),
    /// Will never succeed (the event cannot be decoded, the command is refused for good):
    /// the event is dead-lettered with this reason and the processor moves on.
    #[error("{0}")]
    Permanent(String),
}

impl<E: std::error::Error + 'static> From<CommandError<E>> for ReactionError {
    /// The usual verdict on a command a reaction sent: refused by the aggregate's rules, or
    /// unanswerable (an undecodable stream, a malformed append), it will never succeed;
    /// a lost race or an unreachable store is worth another try.
    fn from(error: CommandError<E>) -> Self {
        match error {
            CommandError::Rejected(_)
            | CommandError::Undecodable { .. }
            | CommandError::Store(StoreError::Corrupt { .. } | StoreError::InvalidInput { .. }) => {
                ReactionError::Permanent(error.to_string())
            }
            CommandError::Conflict { .. } | CommandError::Store(_) => {
                ReactionError::Transient(error.to_string())
            }
        }
    }
}

/// Code that reacts to events by sending commands.
#[async_trait]
pub trait ProcessManager: Send + Sync + std::fmt::Debug {
    /// A stable name: the checkpoint row, the lease and the metrics label.
    fn name(&self) -> &'static str;

    /// The stream types whose events it reacts to; others are passed over.
    fn stream_types(&self) -> &'static [&'static str];

    /// Reacts to one event. May be called more than once for the same event (after a crash,
    /// a retried batch, or, briefly, by two instances while the lease changes hands), even at
    /// the same time: a second call must change nothing.
    async fn react(&self, event: &Envelope) -> Result<(), ReactionError>;
}

/// Errors that stop a processor or a step of it.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error("processor {processor}: reading the event store: {source}")]
    Store {
        processor: &'static str,
        #[source]
        source: StoreError,
    },
    #[error("processor {processor}: checkpoint database: {source}")]
    Checkpoint {
        processor: &'static str,
        #[source]
        source: ReadModelError,
    },
    #[error(
        "processor {processor}: {failed} reactions failed and will be tried again; the first: {first}"
    )]
    Reactions {
        processor: &'static str,
        failed: usize,
        first: String,
    },
}

/// Tuning of a processor.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// Events read per batch (and per checkpoint).
    pub batch_size: usize,
    /// Streams reacted to at the same time within a batch.
    pub concurrency: usize,
    /// How long to wait for new events when caught up.
    pub idle_poll: Duration,
    /// The longest wait between retries after an error.
    pub max_backoff: Duration,
    /// How long a standby waits before asking for the lease again.
    pub lease_retry: Duration,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            concurrency: 16,
            idle_poll: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            lease_retry: Duration::from_secs(2),
        }
    }
}

/// Runs one [`ProcessManager`] over the event store.
#[derive(Debug)]
pub struct Processor {
    store: Arc<dyn EventStore>,
    checkpoints: ReadModelDb,
    schema: Schema,
    manager: Arc<dyn ProcessManager>,
    config: ProcessorConfig,
}

impl Processor {
    /// Prepares the checkpoint table in `checkpoints`.
    pub async fn new(
        store: Arc<dyn EventStore>,
        checkpoints: ReadModelDb,
        manager: Arc<dyn ProcessManager>,
        config: ProcessorConfig,
    ) -> Result<Self, ProcessorError> {
        let schema = checkpoints
            .ensure_schema(&ProgressOnly(manager.name()))
            .await
            .map_err(|source| ProcessorError::Checkpoint {
                processor: manager.name(),
                source,
            })?;
        Ok(Self {
            store,
            checkpoints,
            schema,
            manager,
            config,
        })
    }

    fn checkpoint_error(&self) -> impl FnOnce(ReadModelError) -> ProcessorError {
        let processor = self.manager.name();
        move |source| ProcessorError::Checkpoint { processor, source }
    }

    /// The position of the last event reacted to (or passed over).
    pub async fn checkpoint(&self) -> Result<Position, ProcessorError> {
        self.checkpoints
            .checkpoint(self.manager.name())
            .await
            .map_err(self.checkpoint_error())
    }

    /// Reacts to the next batch after the checkpoint, then moves the checkpoint past it.
    /// Returns how many events it read (0: caught up). If a reaction fails transiently, the
    /// checkpoint moves only up to the event before the first failure, and the error says
    /// how many failed: the rest of the batch is tried again, and reactions after that point
    /// which had succeeded change nothing the second time.
    pub async fn step(&self) -> Result<usize, ProcessorError> {
        let name = self.manager.name();
        let checkpoint = self.checkpoint().await?;
        let events = self
            .store
            .read_all(checkpoint, self.config.batch_size)
            .await
            .map_err(|source| ProcessorError::Store {
                processor: name,
                source,
            })?;
        if events.is_empty() {
            return Ok(0);
        }
        let outcomes = self.react_to(&events).await;
        let mut failures: Vec<(usize, &String)> = outcomes
            .iter()
            .filter_map(|(index, outcome)| match outcome {
                Err(ReactionError::Transient(reason)) => Some((*index, reason)),
                _ => None,
            })
            .collect();
        failures.sort_by_key(|(index, _)| *index);
        let done = failures.first().map_or(events.len(), |(index, _)| *index);
        if done > 0 {
            self.record(&events[..done], &outcomes).await?;
        }
        if let Some((_, first)) = failures.first() {
            metrics::counter!("eventline_processor_failures_total", "processor" => name)
                .increment(failures.len() as u64);
            return Err(ProcessorError::Reactions {
                processor: name,
                failed: failures.len(),
                first: (*first).clone(),
            });
        }
        Ok(events.len())
    }

    /// Moves the checkpoint past `events` (a prefix of the batch whose `outcomes` are
    /// indexed from its start), dead-lettering the permanent failures among them in the same
    /// transaction.
    async fn record(
        &self,
        events: &[Envelope],
        outcomes: &HashMap<usize, Result<(), ReactionError>>,
    ) -> Result<(), ProcessorError> {
        let name = self.manager.name();
        let progress: Vec<ProjectedEvent<'_>> = events
            .iter()
            .enumerate()
            .map(|(index, event)| ProjectedEvent {
                event,
                ops: match outcomes.get(&index) {
                    Some(Err(ReactionError::Permanent(reason))) => {
                        Err(ProjectionError::new(event, reason))
                    }
                    _ => Ok(Vec::new()),
                },
            })
            .collect();
        let outcome = self
            .checkpoints
            .apply_batch(&self.schema, &progress)
            .await
            .map_err(self.checkpoint_error())?;
        let reacted = (0..events.len())
            .filter(|index| matches!(outcomes.get(index), Some(Ok(()))))
            .count();
        metrics::counter!("eventline_processor_events_total", "processor" => name)
            .increment(reacted as u64);
        if outcome.dead_lettered > 0 {
            metrics::counter!("eventline_processor_dead_letters_total", "processor" => name)
                .increment(outcome.dead_lettered as u64);
        }
        metrics::gauge!("eventline_processor_checkpoint_position", "processor" => name)
            .set(outcome.checkpoint.event as f64);
        tracing::debug!(processor = name, read = events.len(), reacted,
            dead_lettered = outcome.dead_lettered, checkpoint = %outcome.checkpoint, "batch done");
        Ok(())
    }

    /// Reacts to the events of the manager's stream types: the events of one stream in
    /// order, different streams concurrently. A stream stops at its first failure (later
    /// events of it wait for the retry). Returns the outcome per index in `events`.
    async fn react_to(&self, events: &[Envelope]) -> HashMap<usize, Result<(), ReactionError>> {
        let mut streams: HashMap<&str, Vec<usize>> = HashMap::new();
        for (index, event) in events.iter().enumerate() {
            if self
                .manager
                .stream_types()
                .contains(&event.stream_type.as_str())
            {
                streams.entry(&event.stream_id).or_default().push(index);
            }
        }
        futures::stream::iter(streams.into_values())
            .map(|indexes| async move {
                let mut outcomes = Vec::with_capacity(indexes.len());
                for index in indexes {
                    let event = &events[index];
                    // The reaction joins the trace of the command that stored the event.
                    let span = tracing::info_span!("processor.react",
                        processor = self.manager.name(), position = %event.position,
                        event_type = %event.event_type);
                    if let Some(parent) = &event.metadata.traceparent {
                        eventline_trace_context::set_parent(&span, parent);
                    }
                    let outcome = self.manager.react(event).instrument(span).await;
                    let stop = matches!(outcome, Err(ReactionError::Transient(_)));
                    if let Err(error) = &outcome {
                        tracing::warn!(processor = self.manager.name(), position = %events[index].position,
                            stream_id = %events[index].stream_id, %error, "reaction failed");
                    }
                    outcomes.push((index, outcome));
                    if stop {
                        break;
                    }
                }
                outcomes
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .flat_map(futures::stream::iter)
            .collect()
            .await
    }

    /// Steps until the store's head (as seen along the way) is reached.
    pub async fn catch_up(&self) -> Result<Position, ProcessorError> {
        while self.step().await? > 0 {}
        self.checkpoint().await
    }

    /// Runs until `shutdown`: holds the lease (or waits as a standby), steps, retries
    /// failures with exponential backoff. A batch in progress is finished first.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ProcessorError> {
        let name = self.manager.name();
        tracing::info!(
            processor = name,
            store = self.store.kind(),
            "processor started"
        );
        // At zero from the start, so that `increase()` in an alert sees the first increment.
        for counter in [
            "eventline_processor_events_total",
            "eventline_processor_failures_total",
            "eventline_processor_dead_letters_total",
        ] {
            metrics::counter!(counter, "processor" => name).increment(0);
        }
        let mut lease = LeaseKeeper::new(format!("eventline-processor:{name}"));
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            let held = lease.hold(&self.checkpoints).await;
            let pause = match held {
                Ok(true) => {
                    metrics::gauge!("eventline_processor_active", "processor" => name).set(1.0);
                    match self.step().await {
                        Ok(0) => Some(self.config.idle_poll),
                        Ok(_) => {
                            backoff = Duration::from_millis(100);
                            None
                        }
                        Err(error) => {
                            tracing::warn!(processor = name, %error, retry_in = ?backoff, "processor batch failed");
                            let wait = backoff;
                            backoff = (backoff * 2).min(self.config.max_backoff);
                            Some(wait)
                        }
                    }
                }
                Ok(false) => {
                    metrics::gauge!("eventline_processor_active", "processor" => name).set(0.0);
                    Some(self.config.lease_retry)
                }
                Err(error) => {
                    tracing::warn!(processor = name, %error, "processor lease lost or not available; reacting stops until it is taken");
                    metrics::gauge!("eventline_processor_active", "processor" => name).set(0.0);
                    Some(self.config.lease_retry)
                }
            };
            if let Some(pause) = pause {
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
        tracing::info!(processor = name, "processor stopped");
        Ok(())
    }
}
