//! A consumer group's lag, read from a real Kafka-protocol broker: every message not yet
//! committed by the group counts, on every partition, whichever client asks.

use std::time::Duration;

use eventline_kafka::{TopicSettings, client_config, ensure_topics, group_lag};
use eventline_test_support::{kafka_brokers, unique_name};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lag_is_every_message_the_group_has_not_committed() {
    let brokers = kafka_brokers();
    let topic = unique_name("lag");
    let group = unique_name("lag-group");
    ensure_topics(
        &eventline_kafka::admin_client(&brokers).expect("admin"),
        std::slice::from_ref(&topic),
        TopicSettings {
            partitions: 2,
            replication_factor: 1,
        },
    )
    .await
    .expect("topic");
    let producer: BaseProducer = client_config(&brokers).create().expect("producer");
    for n in 0..10 {
        let partition = n % 2;
        producer
            .send(
                BaseRecord::to(&topic)
                    .partition(partition)
                    .key("k")
                    .payload("v"),
            )
            .map_err(|(e, _)| e)
            .expect("send");
        // One record per batch: the in-memory Tansu broker this runs against here reports
        // watermarks per batch, not per record.
        producer.flush(Duration::from_secs(10)).expect("flush");
    }

    let (b, g, t) = (brokers.clone(), group.clone(), vec![topic.clone()]);
    let lag = tokio::task::spawn_blocking(move || group_lag(&b, &g, &t, Duration::from_secs(10)))
        .await
        .expect("join")
        .expect("lag");
    assert_eq!(lag, 10, "nothing committed: everything is lag");

    let (b, g, t) = (brokers.clone(), group.clone(), topic.clone());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client_config(&b)
            .set("group.id", &g)
            .create()
            .expect("consumer");
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(&t, 0, Offset::Offset(3))
            .expect("offset");
        consumer.commit(&offsets, CommitMode::Sync).expect("commit");
    })
    .await
    .expect("join");
    let (b, g, t) = (brokers, group, vec![topic]);
    let lag = tokio::task::spawn_blocking(move || group_lag(&b, &g, &t, Duration::from_secs(10)))
        .await
        .expect("join")
        .expect("lag");
    assert_eq!(lag, 7, "three messages of partition 0 are committed");
}
