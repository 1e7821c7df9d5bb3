//! The projector that consumes Kafka: one consumer group per projection.
//!
//! Messages are read in batches. Each batch is split by partition, and each partition's part
//! is applied in its own read-model transaction together with the partition's next offset
//! and the applied version of every stream it touches ([`BatchSource::Partition`]). Only
//! after the database has committed are the offsets committed to Kafka. A crash before that
//! commit makes Kafka deliver the batch again, and the stream versions recorded with the
//! first application make the second one change nothing: each event takes effect once.
//!
//! The relay may publish an event twice (at-least-once), possibly at two offsets; the stream
//! versions recognise those copies too. Events that the projection rejects are written to the
//! dead-letter table and the projector goes on; messages that are not Eventline events at all
//! are counted (`eventline_projector_malformed_messages_total`), logged and skipped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventline_core::{Envelope, Projection, wire};
use eventline_kafka::TopicSettings;
use eventline_readmodel::{BatchSource, ProjectedEvent, ReadModelDb, Schema};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::ProjectorError;

/// How a Kafka projector consumes.
#[derive(Debug, Clone)]
pub struct KafkaProjectorConfig {
    /// Kafka bootstrap servers, `host:port,host:port`.
    pub brokers: String,
    /// Topics are `PREFIX.STREAM_TYPE`, as the relay publishes them.
    pub topic_prefix: String,
    /// How topics are created if the projector starts before the relay has created them.
    pub topics: TopicSettings,
    /// The consumer group is `GROUP_PREFIX.PROJECTION`: every projector pod of one projection
    /// shares the partitions.
    pub group_prefix: String,
    /// Messages applied per round (split into one transaction per partition).
    pub batch_size: usize,
    /// How long a round waits for more messages once the first has arrived.
    pub batch_wait: Duration,
    /// How long the group waits for a silent member before giving its partitions to the
    /// others (also about how long joining the group takes).
    pub session_timeout: Duration,
    /// The longest wait between retries after an error.
    pub max_backoff: Duration,
}

impl KafkaProjectorConfig {
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic_prefix: "eventline".to_owned(),
            topics: TopicSettings::default(),
            group_prefix: "eventline".to_owned(),
            batch_size: 20_000,
            batch_wait: Duration::from_millis(20),
            session_timeout: Duration::from_secs(10),
            max_backoff: Duration::from_secs(10),
        }
    }

    /// The consumer group of `projection`.
    pub fn group_id(&self, projection: &str) -> String {
        format!("{}.{projection}", self.group_prefix)
    }
}

/// How often the projection's lag is measured.
const LAG_INTERVAL: Duration = Duration::from_secs(5);

/// How long one of the lag measurement's requests to the brokers may take.
const LAG_TIMEOUT: Duration = Duration::from_secs(5);

/// One message of a round, decoded.
struct Received {
    topic: String,
    partition: i32,
    offset: i64,
    event: Option<Envelope>,
    /// The trace the event belongs to (the `traceparent` header), when it has one.
    traceparent: Option<String>,
}

/// A projection kept up to date from Kafka.
pub struct KafkaProjector {
    consumer: Arc<StreamConsumer>,
    db: ReadModelDb,
    projection: Arc<dyn Projection>,
    config: KafkaProjectorConfig,
    topics: Vec<String>,
}

impl std::fmt::Debug for KafkaProjector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProjector")
            .field("projection", &self.projection.name())
            .field("topics", &self.topics)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The `traceparent` header of `message`, if it has a readable one.
fn traceparent(message: &impl Message) -> Option<String> {
    use rdkafka::message::Headers;
    message
        .headers()?
        .iter()
        .find(|header| header.key == wire::HEADER_TRACEPARENT)
        .and_then(|header| std::str::from_utf8(header.value?).ok())
        .map(str::to_owned)
}

fn kafka(
    projection: &'static str,
    action: impl Into<String>,
) -> impl FnOnce(KafkaError) -> ProjectorError {
    let action = action.into();
    move |source| ProjectorError::Kafka {
        projection,
        action,
        source,
    }
}

impl KafkaProjector {
    /// Creates the consumer (it joins its group when [`KafkaProjector::run`] subscribes).
    pub fn new(
        db: ReadModelDb,
        projection: Arc<dyn Projection>,
        config: KafkaProjectorConfig,
    ) -> Result<Self, ProjectorError> {
        let name = projection.name();
        let consumer: StreamConsumer = eventline_kafka::client_config(&config.brokers)
            .set("group.id", config.group_id(name))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set(
                "session.timeout.ms",
                config.session_timeout.as_millis().to_string(),
            )
            .create()
            .map_err(kafka(name, "creating the consumer"))?;
        let topics = projection
            .stream_types()
            .iter()
            .map(|stream_type| wire::topic_name(&config.topic_prefix, stream_type))
            .collect();
        Ok(Self {
            consumer: Arc::new(consumer),
            db,
            projection,
            config,
            topics,
        })
    }

    /// The topics this projector consumes.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// Creates the read model's tables and the topics if needed, and subscribes.
    pub async fn prepare(&self) -> Result<Schema, ProjectorError> {
        let name = self.projection.name();
        let schema = self
            .db
            .ensure_schema(self.projection.as_ref())
            .await
            .map_err(|source| ProjectorError::Schema {
                projection: name,
                source,
            })?;
        let admin = eventline_kafka::admin_client(&self.config.brokers)
            .map_err(kafka(name, "creating the admin client"))?;
        eventline_kafka::ensure_topics(&admin, &self.topics, self.config.topics)
            .await
            .map_err(|(topic, source)| ProjectorError::Kafka {
                projection: name,
                action: format!("creating topic {topic}"),
                source,
            })?;
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        self.consumer
            .subscribe(&topics)
            .map_err(kafka(name, "subscribing"))?;
        Ok(schema)
    }

    /// Waits for the next round of messages: the first one, then whatever else arrives
    /// within `batch_wait`, up to `batch_size`. `None` when `shutdown` was cancelled first.
    async fn receive(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<Option<Vec<Received>>, ProjectorError> {
        let name = self.projection.name();
        let first = tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            message = self.consumer.recv() => message.map_err(kafka(name, "receiving"))?,
        };
        let mut round = Vec::with_capacity(self.config.batch_size);
        round.push(self.decode(&first));
        drop(first);
        let deadline = tokio::time::Instant::now() + self.config.batch_wait;
        while round.len() < self.config.batch_size {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(message)) => round.push(self.decode(&message)),
                Ok(Err(error)) => {
                    tracing::warn!(projection = name, %error, "receiving from Kafka failed");
                    break;
                }
                Err(_elapsed) => break,
            }
        }
        Ok(Some(round))
    }

    fn decode(&self, message: &impl Message) -> Received {
        let event = match message.payload().map(wire::decode) {
            Some(Ok(event)) => Some(event),
            Some(Err(error)) => {
                self.malformed(message, &error.to_string());
                None
            }
            None => {
                self.malformed(message, "the message has no value");
                None
            }
        };
        Received {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            event,
            traceparent: traceparent(message),
        }
    }

    fn malformed(&self, message: &impl Message, error: &str) {
        let name = self.projection.name();
        metrics::counter!("eventline_projector_malformed_messages_total", "projection" => name)
            .increment(1);
        tracing::error!(
            projection = name,
            topic = message.topic(),
            partition = message.partition(),
            offset = message.offset(),
            error,
            "skipping a message that is not an Eventline event"
        );
    }

    /// Applies one round in a `projector.batch` span linked to the traces of its events, each
    /// of which also gets a `projector.event` span in its own trace, open until the round has
    /// committed: a command's trace shows when its events reached the read model.
    async fn apply(&self, schema: &Schema, round: &[Received]) -> Result<(), ProjectorError> {
        let batch = tracing::info_span!(
            "projector.batch",
            projection = self.projection.name(),
            messages = round.len()
        );
        let traced: Vec<(&str, &Envelope)> = round
            .iter()
            .filter_map(|r| Some((r.traceparent.as_deref()?, r.event.as_ref()?)))
            .collect();
        for (parent, _) in &traced {
            eventline_trace_context::add_link(&batch, parent);
        }
        let in_batch = eventline_trace_context::of(&batch);
        let events: Vec<tracing::Span> = traced
            .iter()
            .map(|(parent, event)| {
                let span = tracing::info_span!("projector.event", projection = self.projection.name(),
                    position = %event.position, event_type = %event.event_type);
                eventline_trace_context::set_parent(&span, parent);
                if let Some(batch) = &in_batch {
                    eventline_trace_context::add_link(&span, batch);
                }
                span
            })
            .collect();
        let applied = self.apply_round(schema, round).instrument(batch).await;
        drop(events);
        applied
    }

    /// Applies one round: one transaction per partition, then commits the offsets.
    async fn apply_round(&self, schema: &Schema, round: &[Received]) -> Result<(), ProjectorError> {
        let name = self.projection.name();
        let started = Instant::now();
        let mut by_partition: BTreeMap<(&str, i32), Vec<&Received>> = BTreeMap::new();
        for received in round {
            by_partition
                .entry((received.topic.as_str(), received.partition))
                .or_default()
                .push(received);
        }
        let applied = by_partition.iter().map(|(&(topic, partition), messages)| {
            let batch: Vec<ProjectedEvent<'_>> = messages
                .iter()
                .filter_map(|m| m.event.as_ref())
                .map(|event| ProjectedEvent {
                    event,
                    ops: self.projection.apply(event),
                })
                .collect();
            let next_offset = messages.last().map_or(0, |m| m.offset + 1);
            async move {
                self.db
                    .apply(
                        schema,
                        BatchSource::Partition {
                            topic,
                            partition,
                            next_offset,
                        },
                        &batch,
                    )
                    .await
                    .map_err(|source| ProjectorError::ReadModel {
                        projection: name,
                        source,
                    })
            }
        });
        let outcomes = futures::future::try_join_all(applied).await?;
        let mut offsets = TopicPartitionList::new();
        for (&(topic, partition), messages) in &by_partition {
            if let Some(last) = messages.last() {
                offsets
                    .add_partition_offset(topic, partition, Offset::Offset(last.offset + 1))
                    .map_err(kafka(name, "listing offsets"))?;
            }
        }
        // The database has committed: a failed offset commit only means a redelivery that
        // the stream versions turn into no-ops.
        if let Err(error) = self.consumer.commit(&offsets, CommitMode::Async) {
            tracing::warn!(projection = name, %error, "committing Kafka offsets failed");
        }
        let applied: usize = outcomes.iter().map(|o| o.applied).sum();
        let skipped: usize = outcomes.iter().map(|o| o.skipped).sum();
        let dead_lettered: usize = outcomes.iter().map(|o| o.dead_lettered).sum();
        metrics::counter!("eventline_projector_events_total", "projection" => name)
            .increment(applied as u64);
        metrics::counter!("eventline_projector_redelivered_total", "projection" => name)
            .increment(skipped as u64);
        metrics::histogram!("eventline_projector_batch_seconds", "projection" => name)
            .record(started.elapsed().as_secs_f64());
        tracing::debug!(
            projection = name,
            messages = round.len(),
            partitions = by_partition.len(),
            applied,
            skipped,
            dead_lettered,
            "round committed"
        );
        Ok(())
    }

    /// Consumes until `shutdown` is cancelled. A round in progress is finished (applied and
    /// its offsets committed) first. Database errors are retried with exponential backoff on
    /// the same messages; only failing to prepare stops the projector.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ProjectorError> {
        let schema = self.prepare().await?;
        let name = self.projection.name();
        tracing::info!(
            projection = name,
            topics = ?self.topics,
            group = %self.config.group_id(name),
            read_model = self.db.dialect().name(),
            "kafka projector started"
        );
        register_metrics(name);
        let lag = tokio::spawn(report_lag(
            Arc::clone(&self.consumer),
            self.topics.clone(),
            name,
        ));
        let mut backoff = Duration::from_millis(100);
        'rounds: while !shutdown.is_cancelled() {
            let round = match self.receive(&shutdown).await {
                Ok(Some(round)) => round,
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(projection = name, %error, retry_in = ?backoff, "kafka receive failed");
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.config.max_backoff);
                    continue;
                }
            };
            loop {
                match self.apply(&schema, &round).await {
                    Ok(()) => {
                        backoff = Duration::from_millis(100);
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(projection = name, %error, retry_in = ?backoff,
                            "applying a round failed; retrying it");
                        tokio::select! {
                            () = shutdown.cancelled() => break 'rounds,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(self.config.max_backoff);
                    }
                }
            }
        }
        lag.abort();
        self.consumer.unsubscribe();
        tracing::info!(projection = name, "kafka projector stopped");
        Ok(())
    }
}

/// Shows the projection's counters at zero from the start, so that `increase()` in an alert
/// sees their first increment (a counter series born at 1 looks like no change to it).
fn register_metrics(name: &'static str) {
    crate::register_metrics(name);
    metrics::counter!("eventline_projector_redelivered_total", "projection" => name).increment(0);
    metrics::counter!("eventline_projector_malformed_messages_total", "projection" => name)
        .increment(0);
}

/// Sets `eventline_projection_lag_events` every [`LAG_INTERVAL`] to the consumer group's lag
/// on `topics`, as the brokers see it: all partitions, not only those of this member (every
/// member reports the same figure), measured beside the consuming loop, so that a projector
/// stuck on its read model still shows its lag growing.
async fn report_lag(consumer: Arc<StreamConsumer>, topics: Vec<String>, projection: &'static str) {
    loop {
        let probe = Arc::clone(&consumer);
        let on = topics.clone();
        // librdkafka's requests block the thread.
        let measured = tokio::task::spawn_blocking(move || {
            eventline_kafka::committed_lag(probe.as_ref(), &on, LAG_TIMEOUT)
        })
        .await;
        match measured {
            Ok(Ok(lag)) => {
                metrics::gauge!("eventline_projection_lag_events", "projection" => projection)
                    .set(lag as f64);
            }
            Ok(Err(error)) => {
                tracing::debug!(projection, %error, "measuring the consumer group's lag failed");
            }
            Err(error) => tracing::warn!(projection, %error, "the lag measurement panicked"),
        }
        tokio::time::sleep(LAG_INTERVAL).await;
    }
}
