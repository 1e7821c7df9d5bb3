//! Projectors keep read models up to date, applying each event exactly once in effect.
//!
//! - [`StoreProjector`] tails the event store by global position (embedded mode). Each batch
//!   is applied with [`ReadModelDb::apply_batch`], which writes the read-model changes and the
//!   checkpoint in one transaction; after a crash the projector resumes from the checkpoint
//!   and events it had already applied are skipped.
//! - [`KafkaProjector`] consumes the relay's topics in a consumer group per projection; see
//!   the [`kafka`] module for how it stays exactly-once in effect.

pub mod kafka;
mod signal;

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventline_core::{EventStore, Position, Projection, StoreError};
use eventline_readmodel::{ProjectedEvent, ReadModelDb, ReadModelError, Schema};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use kafka::{KafkaProjector, KafkaProjectorConfig};
pub use signal::NotifyOnAppend;

/// Errors that stop a projector (transient ones are retried and only logged).
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error("projection {projection}: preparing the read model failed: {source}")]
    Schema {
        projection: &'static str,
        #[source]
        source: ReadModelError,
    },
    #[error("projection {projection}: {source}")]
    ReadModel {
        projection: &'static str,
        #[source]
        source: ReadModelError,
    },
    #[error("projection {projection}: kafka: {action}: {source}")]
    Kafka {
        projection: &'static str,
        action: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("projection {projection}: reading the event store failed: {source}")]
    Store {
        projection: &'static str,
        #[source]
        source: StoreError,
    },
}

/// Tuning of a projector.
#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// Events read and applied per transaction.
    pub batch_size: usize,
    /// How long to wait for new events when no append signal is wired in.
    pub idle_poll: Duration,
    /// The longest wait between retries after an error.
    pub max_backoff: Duration,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            idle_poll: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// A projection kept up to date by tailing the event store.
#[derive(Debug)]
pub struct StoreProjector {
    store: Arc<dyn EventStore>,
    db: ReadModelDb,
    projection: Arc<dyn Projection>,
    config: ProjectorConfig,
    appended: Option<watch::Receiver<Position>>,
}

impl StoreProjector {
    pub fn new(
        store: Arc<dyn EventStore>,
        db: ReadModelDb,
        projection: Arc<dyn Projection>,
    ) -> Self {
        Self {
            store,
            db,
            projection,
            config: ProjectorConfig::default(),
            appended: None,
        }
    }

    #[must_use]
    pub fn with_config(mut self, config: ProjectorConfig) -> Self {
        self.config = config;
        self
    }

    /// Wakes the projector as soon as an append commits, instead of at the next poll.
    #[must_use]
    pub fn with_append_signal(mut self, appended: watch::Receiver<Position>) -> Self {
        self.appended = Some(appended);
        self
    }

    /// Creates the read model's tables if needed.
    pub async fn prepare(&self) -> Result<Schema, ProjectorError> {
        self.db
            .ensure_schema(self.projection.as_ref())
            .await
            .map_err(|source| ProjectorError::Schema {
                projection: self.projection.name(),
                source,
            })
    }

    /// Applies one batch after the checkpoint; returns how many events it read (0 = caught up).
    pub async fn step(&self, schema: &Schema) -> Result<usize, ProjectorError> {
        let name = self.projection.name();
        let checkpoint =
            self.db
                .checkpoint(name)
                .await
                .map_err(|source| ProjectorError::ReadModel {
                    projection: name,
                    source,
                })?;
        let events = self
            .store
            .read_all(checkpoint, self.config.batch_size)
            .await
            .map_err(|source| ProjectorError::Store {
                projection: name,
                source,
            })?;
        if events.is_empty() {
            return Ok(0);
        }
        let started = Instant::now();
        let batch: Vec<ProjectedEvent<'_>> = events
            .iter()
            .map(|event| ProjectedEvent {
                event,
                ops: if self.projection.handles(&event.stream_type) {
                    self.projection.apply(event)
                } else {
                    Ok(Vec::new())
                },
            })
            .collect();
        let outcome = self
            .db
            .apply_batch(schema, &batch)
            .await
            .map_err(|source| ProjectorError::ReadModel {
                projection: name,
                source,
            })?;
        metrics::counter!("eventline_projector_events_total", "projection" => name)
            .increment(outcome.applied as u64);
        metrics::histogram!("eventline_projector_batch_seconds", "projection" => name)
            .record(started.elapsed().as_secs_f64());
        metrics::gauge!("eventline_projector_checkpoint_position", "projection" => name)
            .set(outcome.checkpoint.event as f64);
        tracing::debug!(
            projection = name,
            applied = outcome.applied,
            dead_lettered = outcome.dead_lettered,
            checkpoint = %outcome.checkpoint,
            "batch committed"
        );
        Ok(events.len())
    }

    /// Applies batches until the store's head (as seen when called) is reached.
    pub async fn catch_up(&self) -> Result<Position, ProjectorError> {
        let schema = self.prepare().await?;
        while self.step(&schema).await? > 0 {}
        self.db
            .checkpoint(self.projection.name())
            .await
            .map_err(|source| ProjectorError::ReadModel {
                projection: self.projection.name(),
                source,
            })
    }

    async fn record_lag(&self) {
        let name = self.projection.name();
        if let (Ok(head), Ok(checkpoint)) = (
            self.store.head_position().await,
            self.db.checkpoint(name).await,
        ) {
            // Event numbers may have holes, so this is an upper bound of the events behind.
            metrics::gauge!("eventline_projection_lag_events", "projection" => name)
                .set(head.event.saturating_sub(checkpoint.event) as f64);
        }
    }

    /// Runs until `shutdown` is cancelled. A batch in progress is always finished and
    /// committed first. Errors reading the store or writing the read model are retried with
    /// exponential backoff; only failing to prepare the schema stops the projector.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), ProjectorError> {
        let schema = self.prepare().await?;
        let name = self.projection.name();
        tracing::info!(
            projection = name,
            store = self.store.kind(),
            read_model = self.db.dialect().name(),
            "projector started"
        );
        register_metrics(name);
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            match self.step(&schema).await {
                Ok(0) => {
                    self.record_lag().await;
                    self.wait_for_events(&shutdown).await;
                }
                Ok(_) => backoff = Duration::from_millis(100),
                Err(error) => {
                    tracing::warn!(projection = name, %error, retry_in = ?backoff, "projector batch failed");
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.config.max_backoff);
                }
            }
        }
        tracing::info!(projection = name, "projector stopped");
        Ok(())
    }

    async fn wait_for_events(&mut self, shutdown: &CancellationToken) {
        let poll = tokio::time::sleep(self.config.idle_poll);
        match &mut self.appended {
            Some(appended) => {
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = poll => {}
                    _ = appended.changed() => {}
                }
            }
            None => {
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = poll => {}
                }
            }
        }
    }
}

/// Shows the counters of projection `name` at zero from the start, so that `increase()` in an
/// alert sees their first increment (a counter series born at 1 looks like no change to it).
pub(crate) fn register_metrics(name: &'static str) {
    for counter in [
        "eventline_projector_events_total",
        "eventline_projector_dead_letters_total",
        "eventline_projector_version_gaps_total",
    ] {
        metrics::counter!(counter, "projection" => name).increment(0);
    }
}
