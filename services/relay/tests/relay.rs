//! The relay against a real Kafka-protocol broker (Tansu, started by scripts/test-services.sh).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventline_core::wire::topic_name;
use eventline_core::{Envelope, EventStore, Metadata, NewEvent};
use eventline_readmodel::ReadModelDb;
use eventline_relay::{Relay, RelayConfig};
use eventline_store_sqlite::SqliteEventStore;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use eventline_test_support::kafka_brokers as brokers;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn EventStore>,
    checkpoints: ReadModelDb,
    config: RelayConfig,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn EventStore> = Arc::new(
        SqliteEventStore::open(dir.path().join("events.sqlite"))
            .await
            .expect("store"),
    );
    let checkpoints = ReadModelDb::open_sqlite(dir.path().join("relay.sqlite"))
        .await
        .expect("checkpoints");
    let mut config = RelayConfig::new(brokers());
    // A topic prefix of this test's own, so tests never read each other's messages.
    config.topic_prefix = eventline_test_support::unique_name("t");
    config.partitions = 3;
    config.batch_size = 7;
    Fixture {
        _dir: dir,
        store,
        checkpoints,
        config,
    }
}

/// Appends 4 events to each of 5 streams, interleaved, some appends with two events.
async fn append_events(store: &dyn EventStore) -> usize {
    let mut versions: HashMap<String, u64> = HashMap::new();
    for round in 0..3u64 {
        for stream in 0..5 {
            let id = format!("acct-{stream}");
            let version = versions.entry(id.clone()).or_default();
            let count = if round == 1 { 2 } else { 1 };
            let events = (0..count)
                .map(|i| NewEvent {
                    event_type: "FundsDeposited".into(),
                    schema_version: 1,
                    payload: serde_json::json!({ "n": round * 10 + i }),
                    metadata: Metadata::default(),
                })
                .collect();
            *version = store
                .append(&id, "bank.account", *version, events)
                .await
                .expect("append")
                .version;
        }
    }
    20
}

/// Reads every message of `topic` from the beginning of each partition until `count` arrive.
fn consume(topic: &str, partitions: i32, count: usize) -> Vec<(String, Envelope, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("{topic}-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    while out.len() < count {
        assert!(
            Instant::now() < deadline,
            "only {} of {count} messages arrived",
            out.len()
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("message");
        let key = String::from_utf8(message.key().expect("key").to_vec()).expect("utf8 key");
        let envelope: Envelope =
            serde_json::from_slice(message.payload().expect("payload")).expect("envelope");
        let event_type = message
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "event_type"))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .expect("event_type header");
        out.push((key, envelope, event_type));
    }
    out
}

/// Per stream, the versions in the order they arrived.
fn versions_by_stream(messages: &[(String, Envelope, String)]) -> HashMap<String, Vec<u64>> {
    let mut by_stream: HashMap<String, Vec<u64>> = HashMap::new();
    for (key, envelope, _) in messages {
        assert_eq!(key, &envelope.stream_id, "keyed by stream id");
        by_stream
            .entry(key.clone())
            .or_default()
            .push(envelope.version);
    }
    by_stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_published_once_in_order_per_stream() {
    let f = fixture().await;
    let total = append_events(f.store.as_ref()).await;
    let topic = topic_name(&f.config.topic_prefix, "bank.account");
    let mut relay = Relay::new(
        Arc::clone(&f.store),
        f.checkpoints.clone(),
        f.config.clone(),
    )
    .await
    .expect("relay");
    let mut published = 0;
    loop {
        let n = relay.step().await.expect("step");
        if n == 0 {
            break;
        }
        published += n;
    }
    assert_eq!(published, total);
    assert_eq!(
        relay.checkpoint().await.expect("checkpoint"),
        f.store.head_position().await.expect("head")
    );

    let messages = consume(&topic, f.config.partitions, total);
    for (stream, versions) in versions_by_stream(&messages) {
        assert_eq!(versions, [1, 2, 3, 4], "stream {stream}");
    }
    assert!(messages.iter().all(|(_, _, t)| t == "FundsDeposited"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_dies_before_its_checkpoint_loses_nothing() {
    let f = fixture().await;
    let total = append_events(f.store.as_ref()).await;
    let topic = topic_name(&f.config.topic_prefix, "bank.account");

    // The first relay publishes everything, Kafka acknowledges, and it dies before recording
    // its checkpoint.
    {
        let mut doomed = Relay::new(
            Arc::clone(&f.store),
            f.checkpoints.clone(),
            f.config.clone(),
        )
        .await
        .expect("relay");
        let events = f
            .store
            .read_all(Default::default(), 1_000)
            .await
            .expect("read");
        doomed.publish(&events).await.expect("publish");
    }
    // Its successor starts from the old checkpoint and publishes again.
    let mut successor = Relay::new(
        Arc::clone(&f.store),
        f.checkpoints.clone(),
        f.config.clone(),
    )
    .await
    .expect("relay");
    while successor.step().await.expect("step") > 0 {}

    let messages = consume(&topic, f.config.partitions, total * 2);
    for (stream, versions) in versions_by_stream(&messages) {
        let mut first_seen = Vec::new();
        for v in versions {
            if !first_seen.contains(&v) {
                first_seen.push(v);
            }
        }
        assert_eq!(
            first_seen,
            [1, 2, 3, 4],
            "stream {stream}: every event, first occurrences in order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_relay_publishes_only_once_it_holds_the_lease() {
    let f = fixture().await;
    let database = eventline_test_support::TestDatabase::postgres().await;
    let checkpoints = ReadModelDb::connect(&database.url)
        .await
        .expect("checkpoint db");
    let total = append_events(f.store.as_ref()).await;

    // Another relay holds the lease.
    let held = checkpoints
        .try_lease(eventline_relay::RELAY_CHECKPOINT)
        .await
        .expect("lease")
        .expect("free");
    let relay = Relay::new(Arc::clone(&f.store), checkpoints.clone(), f.config.clone())
        .await
        .expect("relay");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(relay.run(shutdown.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        checkpoints
            .checkpoint(eventline_relay::RELAY_CHECKPOINT)
            .await
            .expect("checkpoint"),
        Default::default(),
        "a standby relay publishes nothing"
    );

    drop(held);
    let head = f.store.head_position().await.expect("head");
    let deadline = Instant::now() + Duration::from_secs(30);
    while checkpoints
        .checkpoint(eventline_relay::RELAY_CHECKPOINT)
        .await
        .expect("checkpoint")
        != head
    {
        assert!(Instant::now() < deadline, "the relay never took over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    running.await.expect("task").expect("relay stops cleanly");
    let topic = topic_name(&f.config.topic_prefix, "bank.account");
    assert_eq!(consume(&topic, f.config.partitions, total).len(), total);
}
