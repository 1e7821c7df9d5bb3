//! Kafka plumbing shared by the relay (producer) and the Kafka projector (consumer).
//!
//! The message format itself (topic names, headers, JSON value) is `eventline_core::wire`;
//! this crate holds what needs `rdkafka`: creating topics and client settings.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// How topics are created when missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSettings {
    pub partitions: i32,
    pub replication_factor: i32,
}

impl Default for TopicSettings {
    fn default() -> Self {
        Self {
            partitions: 12,
            replication_factor: 1,
        }
    }
}

/// A client configuration for `brokers` (`host:port,host:port`).
pub fn client_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    config
}

/// Creates an admin client for `brokers`.
pub fn admin_client(brokers: &str) -> Result<AdminClient<DefaultClientContext>, KafkaError> {
    client_config(brokers).create()
}

/// A client that only asks the brokers for metadata: a readiness probe.
pub struct BrokerProbe {
    consumer: rdkafka::consumer::BaseConsumer,
}

impl std::fmt::Debug for BrokerProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerProbe").finish_non_exhaustive()
    }
}

impl BrokerProbe {
    pub fn new(brokers: &str) -> Result<Self, KafkaError> {
        Ok(Self {
            consumer: client_config(brokers).create()?,
        })
    }

    /// Asks the cluster for its brokers, waiting at most `timeout` (this blocks the thread).
    pub fn check(&self, timeout: std::time::Duration) -> Result<(), KafkaError> {
        use rdkafka::consumer::Consumer as _;
        let metadata = self.consumer.fetch_metadata(None, timeout)?;
        if metadata.brokers().is_empty() {
            return Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::BrokerNotAvailable,
            ));
        }
        Ok(())
    }
}

/// How far consumer group `group` is behind on `topics`: the sum over their partitions of the
/// high watermark minus the group's committed offset (the low watermark where it has none).
/// The same figure whichever member asks, unlike each member's view of its own partitions.
/// Blocks the thread for up to a few times `timeout`.
pub fn group_lag(
    brokers: &str,
    group: &str,
    topics: &[String],
    timeout: std::time::Duration,
) -> Result<u64, KafkaError> {
    let consumer: rdkafka::consumer::BaseConsumer = client_config(brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    committed_lag(&consumer, topics, timeout)
}

/// [`group_lag`] for the group of a consumer that exists already (its `group.id`). It asks the
/// brokers, not the consumer's fetch state, so it stays right while the consumer is busy or
/// stuck, and needs no membership in the group. Blocks the thread like [`group_lag`].
pub fn committed_lag<C, K>(
    consumer: &K,
    topics: &[String],
    timeout: std::time::Duration,
) -> Result<u64, KafkaError>
where
    C: rdkafka::consumer::ConsumerContext,
    K: rdkafka::consumer::Consumer<C>,
{
    use rdkafka::{Offset, TopicPartitionList};
    let mut partitions = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        for t in metadata.topics() {
            for p in t.partitions() {
                partitions.add_partition(t.name(), p.id());
            }
        }
    }
    let committed = consumer.committed_offsets(partitions, timeout)?;
    let mut lag = 0u64;
    for element in committed.elements() {
        let (low, high) =
            consumer.fetch_watermarks(element.topic(), element.partition(), timeout)?;
        let at = match element.offset() {
            Offset::Offset(at) => at,
            _ => low,
        };
        lag += u64::try_from(high - at.max(low)).unwrap_or(0);
    }
    Ok(lag)
}

/// Creates each of `topics` that does not exist yet. A topic that exists is left as it is
/// (its partition count is not changed).
pub async fn ensure_topics(
    admin: &AdminClient<DefaultClientContext>,
    topics: &[String],
    settings: TopicSettings,
) -> Result<(), (String, KafkaError)> {
    if topics.is_empty() {
        return Ok(());
    }
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|topic| {
            NewTopic::new(
                topic,
                settings.partitions,
                TopicReplication::Fixed(settings.replication_factor),
            )
        })
        .collect();
    let results = admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .map_err(|error| (topics.join(", "), error))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err((name, KafkaError::AdminOp(code))),
        }
    }
    Ok(())
}
