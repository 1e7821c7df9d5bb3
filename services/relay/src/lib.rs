//! The relay: every stored event reaches Kafka, in order per stream, at least once.
//!
//! The event store is the outbox. The relay reads it by its gap-safe position (so it works on
//! every store), publishes a batch with an idempotent producer, waits until Kafka has
//! acknowledged every message of the batch, and only then records the batch's last position
//! as its checkpoint (in a SQL database, through the read-model layer's checkpoint table).
//!
//! - A crash anywhere before the checkpoint is written means the batch is published again on
//!   restart: at-least-once. Consumers deduplicate by (stream id, version).
//! - Messages are keyed by stream id, so all events of a stream land on one partition, and are
//!   enqueued in store order; the idempotent producer keeps that order through its retries.
//! - A failed batch is published again from its first event, so after a failure a consumer may
//!   see `3, 4, 3, 4, 5`: every event at least once, first occurrences in order.
//! - One topic per stream type, `PREFIX.STREAM_TYPE` (`eventline.bank.account`), created with the
//!   configured partitions if missing.
//!
//! Only one relay publishes a store at a time: [`Relay::run`] first takes a lease named after
//! the checkpoint (a PostgreSQL advisory lock or MySQL `GET_LOCK` in the checkpoint database)
//! and checks it is still held before every batch. Standby relays wait for the lease. (With a
//! SQLite checkpoint database the relay runs on one node and the lease is local.)

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventline_core::wire::{self, topic_name};
use eventline_core::{Envelope, EventStore, Position};
use eventline_kafka::TopicSettings;
use eventline_readmodel::{
    LeaseKeeper, ProgressOnly, ProjectedEvent, ReadModelDb, ReadModelError, Schema,
};
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

/// How often a standby relay asks for the lease.
const LEASE_RETRY: Duration = Duration::from_secs(1);

/// The checkpoint row's name in the checkpoint database.
pub const RELAY_CHECKPOINT: &str = "eventline-relay";

/// Errors of the relay; Kafka and database errors are retried by [`Relay::run`].
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("kafka: {action}: {source}")]
    Kafka {
        action: String,
        #[source]
        source: KafkaError,
    },
    #[error("reading the event store: {0}")]
    Store(#[from] eventline_core::StoreError),
    #[error("relay checkpoint: {0}")]
    Checkpoint(#[from] ReadModelError),
    #[error("event {position} cannot be serialised: {source}")]
    Serialise {
        position: Position,
        #[source]
        source: serde_json::Error,
    },
}

/// How the relay publishes.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Kafka bootstrap servers, `host:port,host:port`.
    pub brokers: String,
    /// Topics are `PREFIX.STREAM_TYPE`.
    pub topic_prefix: String,
    /// Partitions of topics the relay creates.
    pub partitions: i32,
    /// Replication factor of topics the relay creates.
    pub replication_factor: i32,
    /// Events read and published per checkpoint.
    pub batch_size: usize,
    /// How long to wait for new events when the store has none.
    pub idle_poll: Duration,
    /// How long Kafka may take to acknowledge a message before the batch is retried.
    pub delivery_timeout: Duration,
    /// The longest wait between retries after an error.
    pub max_backoff: Duration,
}

impl RelayConfig {
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic_prefix: "eventline".to_owned(),
            partitions: 12,
            replication_factor: 1,
            batch_size: 1_000,
            idle_poll: Duration::from_millis(100),
            delivery_timeout: Duration::from_secs(30),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// Publishes the event store to Kafka.
pub struct Relay {
    store: Arc<dyn EventStore>,
    checkpoints: ReadModelDb,
    schema: Schema,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    config: RelayConfig,
    topics: HashSet<String>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("store", &self.store.kind())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn kafka(action: impl Into<String>) -> impl FnOnce(KafkaError) -> RelayError {
    let action = action.into();
    move |source| RelayError::Kafka { action, source }
}

impl Relay {
    /// Connects to Kafka and prepares the checkpoint table.
    pub async fn new(
        store: Arc<dyn EventStore>,
        checkpoints: ReadModelDb,
        config: RelayConfig,
    ) -> Result<Self, RelayError> {
        let mut client = eventline_kafka::client_config(&config.brokers);
        client
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set(
                "message.timeout.ms",
                config.delivery_timeout.as_millis().to_string(),
            );
        let producer: FutureProducer = client.create().map_err(kafka("creating the producer"))?;
        let admin = eventline_kafka::admin_client(&config.brokers)
            .map_err(kafka("creating the admin client"))?;
        let schema = checkpoints
            .ensure_schema(&ProgressOnly(RELAY_CHECKPOINT))
            .await?;
        Ok(Self {
            store,
            checkpoints,
            schema,
            producer,
            admin,
            config,
            topics: HashSet::new(),
        })
    }

    /// The last position published and acknowledged.
    pub async fn checkpoint(&self) -> Result<Position, RelayError> {
        Ok(self.checkpoints.checkpoint(RELAY_CHECKPOINT).await?)
    }

    async fn ensure_topic(&mut self, topic: &str) -> Result<(), RelayError> {
        if self.topics.contains(topic) {
            return Ok(());
        }
        let settings = TopicSettings {
            partitions: self.config.partitions,
            replication_factor: self.config.replication_factor,
        };
        eventline_kafka::ensure_topics(&self.admin, &[topic.to_owned()], settings)
            .await
            .map_err(|(name, source)| RelayError::Kafka {
                action: format!("creating topic {name}"),
                source,
            })?;
        self.topics.insert(topic.to_owned());
        Ok(())
    }

    /// Publishes `events` in order and waits until Kafka has acknowledged every one. Does not
    /// move the checkpoint.
    pub async fn publish(&mut self, events: &[Envelope]) -> Result<(), RelayError> {
        for event in events {
            self.ensure_topic(&topic_name(&self.config.topic_prefix, &event.stream_type))
                .await?;
        }
        // An event that carries a trace context gets a span in that trace, open until Kafka
        // has acknowledged the event; the projector continues from it.
        let mut pending: VecDeque<(DeliveryFuture, Option<tracing::Span>)> =
            VecDeque::with_capacity(events.len());
        for event in events {
            let topic = topic_name(&self.config.topic_prefix, &event.stream_type);
            let payload = wire::encode(event).map_err(|source| RelayError::Serialise {
                position: event.position,
                source,
            })?;
            let position = event.position.event.to_string();
            let schema_version = event.schema_version.to_string();
            let correlation = event.metadata.correlation_id.map(|c| c.to_string());
            let span = event.metadata.traceparent.as_deref().map(|parent| {
                let span = tracing::info_span!("relay.publish", %topic, position = %event.position,
                    event_type = %event.event_type);
                eventline_trace_context::set_parent(&span, parent);
                span
            });
            let traceparent = span
                .as_ref()
                .and_then(eventline_trace_context::of)
                .or_else(|| event.metadata.traceparent.clone());
            let mut headers = OwnedHeaders::new()
                .insert(Header {
                    key: wire::HEADER_EVENT_TYPE,
                    value: Some(event.event_type.as_str()),
                })
                .insert(Header {
                    key: wire::HEADER_SCHEMA_VERSION,
                    value: Some(schema_version.as_str()),
                })
                .insert(Header {
                    key: wire::HEADER_POSITION,
                    value: Some(position.as_str()),
                });
            if let Some(correlation) = &correlation {
                headers = headers.insert(Header {
                    key: wire::HEADER_CORRELATION_ID,
                    value: Some(correlation.as_str()),
                });
            }
            if let Some(traceparent) = &traceparent {
                headers = headers.insert(Header {
                    key: wire::HEADER_TRACEPARENT,
                    value: Some(traceparent.as_str()),
                });
            }
            let mut record = FutureRecord::to(&topic)
                .key(event.stream_id.as_str())
                .payload(&payload)
                .headers(headers);
            // Enqueue in store order; when the local queue is full, wait for the oldest
            // delivery and try again (the order of enqueueing is the order on the partition).
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push_back((delivery, span));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        match pending.pop_front() {
                            Some((oldest, _span)) => wait_for(oldest).await?,
                            None => tokio::time::sleep(Duration::from_millis(5)).await,
                        }
                    }
                    Err((error, _)) => return Err(kafka("enqueueing a message")(error)),
                }
            }
        }
        for (delivery, _span) in pending {
            wait_for(delivery).await?;
        }
        Ok(())
    }

    /// Publishes the next batch after the checkpoint and then moves the checkpoint past it.
    /// Returns how many events it published (0: the relay has caught up).
    pub async fn step(&mut self) -> Result<usize, RelayError> {
        let checkpoint = self.checkpoint().await?;
        let events = self
            .store
            .read_all(checkpoint, self.config.batch_size)
            .await?;
        if events.is_empty() {
            return Ok(0);
        }
        let started = Instant::now();
        self.publish(&events).await?;
        let progress: Vec<ProjectedEvent<'_>> = events
            .iter()
            .map(|event| ProjectedEvent {
                event,
                ops: Ok(Vec::new()),
            })
            .collect();
        let outcome = self
            .checkpoints
            .apply_batch(&self.schema, &progress)
            .await?;
        metrics::counter!("eventline_relay_events_total").increment(events.len() as u64);
        metrics::histogram!("eventline_relay_batch_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::gauge!("eventline_relay_checkpoint_position").set(outcome.checkpoint.event as f64);
        Ok(events.len())
    }

    /// Publishes until `shutdown`, retrying failures with exponential backoff. The batch in
    /// flight is always finished (acknowledged and checkpointed) before it stops.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), RelayError> {
        tracing::info!(store = self.store.kind(), brokers = %self.config.brokers, "relay started");
        // At zero from the start, so that `increase()` in an alert sees the first failure.
        metrics::counter!("eventline_relay_events_total").increment(0);
        metrics::counter!("eventline_relay_failures_total").increment(0);
        let mut backoff = Duration::from_millis(100);
        let mut lease = LeaseKeeper::new(RELAY_CHECKPOINT);
        while !shutdown.is_cancelled() {
            let held = lease.hold(&self.checkpoints).await;
            if !matches!(held, Ok(true)) {
                if let Err(error) = held {
                    tracing::warn!(%error, "relay lease lost; publishing stops until it is taken again");
                }
                metrics::gauge!("eventline_relay_active").set(0.0);
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(LEASE_RETRY) => {}
                }
                continue;
            }
            metrics::gauge!("eventline_relay_active").set(1.0);
            match self.step().await {
                Ok(0) => {
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep(self.config.idle_poll) => {}
                    }
                }
                Ok(_) => backoff = Duration::from_millis(100),
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?backoff, "relay batch failed; publishing it again");
                    metrics::counter!("eventline_relay_failures_total").increment(1);
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.config.max_backoff);
                }
            }
        }
        self.producer_flush();
        tracing::info!("relay stopped");
        Ok(())
    }

    fn producer_flush(&self) {
        use rdkafka::producer::Producer as _;
        let _ = self.producer.flush(Duration::from_secs(5));
    }
}

async fn wait_for(delivery: DeliveryFuture) -> Result<(), RelayError> {
    match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((error, _))) => Err(kafka("delivering a message")(error)),
        Err(_cancelled) => Err(RelayError::Kafka {
            action: "delivering a message".into(),
            source: KafkaError::Canceled,
        }),
    }
}
