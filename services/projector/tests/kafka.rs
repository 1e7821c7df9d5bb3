//! The Kafka projector against a real Kafka-protocol broker (Tansu) and real PostgreSQL,
//! MariaDB and SQLite read models: the read model it keeps equals a fresh replay of the store,
//! even when the relay publishes events twice and one event is poison.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventline_bank::AccountsProjection;
use eventline_core::{EventStore, Position};
use eventline_kafka::TopicSettings;
use eventline_projector::{KafkaProjector, KafkaProjectorConfig, StoreProjector};
use eventline_readmodel::ReadModelDb;
use eventline_relay::{Relay, RelayConfig};
use eventline_store_sqlite::SqliteEventStore;
use eventline_test_support::{TestDatabase, kafka_brokers, unique_name};
use serde_json::json;
use support::{all_rows, event, opened};
use tokio_util::sync::CancellationToken;

const ACCOUNTS: usize = 12;
const DEPOSITS: i64 = 8;

/// Opens 12 accounts and deposits into each 8 times, interleaved across accounts; the 3rd
/// account's 4th event is poison (its amount is not a number). Returns the events appended.
async fn bank_history(store: &dyn EventStore) -> usize {
    let mut appended = 0;
    for account in 0..ACCOUNTS {
        store
            .append(
                &format!("acct-{account}"),
                "bank.account",
                0,
                vec![opened(0)],
            )
            .await
            .expect("open");
        appended += 1;
    }
    for n in 1..=DEPOSITS {
        for account in 0..ACCOUNTS {
            let payload = if account == 2 && n == 3 {
                json!({"amount": "lots"})
            } else {
                json!({"amount": n, "balance": n * (n + 1) / 2})
            };
            store
                .append(
                    &format!("acct-{account}"),
                    "bank.account",
                    n as u64,
                    vec![event("FundsDeposited", payload)],
                )
                .await
                .expect("deposit");
            appended += 1;
        }
    }
    appended
}

/// The read model a fresh replay of the whole store gives, in a SQLite file of its own.
async fn replayed(
    dir: &std::path::Path,
    store: &Arc<dyn EventStore>,
) -> Vec<eventline_readmodel::Row> {
    let db = ReadModelDb::open_sqlite(dir.join("replay.sqlite"))
        .await
        .expect("replay db");
    StoreProjector::new(Arc::clone(store), db.clone(), Arc::new(AccountsProjection))
        .catch_up()
        .await
        .expect("replay");
    all_rows(&db).await
}

async fn projects_from_kafka_like_a_store_replay(db: ReadModelDb) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn EventStore> = Arc::new(
        SqliteEventStore::open(dir.path().join("events.sqlite"))
            .await
            .expect("store"),
    );
    let total = bank_history(store.as_ref()).await;
    let prefix = unique_name("t");
    let topics = TopicSettings {
        partitions: 3,
        replication_factor: 1,
    };

    // Publish everything, then the first half again, as a relay that died before recording
    // its checkpoint would: the copies arrive after newer events of the same streams.
    let checkpoints = ReadModelDb::open_sqlite(dir.path().join("relay.sqlite"))
        .await
        .expect("relay checkpoints");
    let mut relay_config = RelayConfig::new(kafka_brokers());
    relay_config.topic_prefix.clone_from(&prefix);
    relay_config.partitions = topics.partitions;
    relay_config.batch_size = 25;
    let mut relay = Relay::new(Arc::clone(&store), checkpoints, relay_config)
        .await
        .expect("relay");
    let mut published = 0;
    loop {
        let n = relay.step().await.expect("publish");
        if n == 0 {
            break;
        }
        published += n;
    }
    assert_eq!(published, total);
    let first_half = store
        .read_all(Position::START, total / 2)
        .await
        .expect("read");
    relay.publish(&first_half).await.expect("publish again");

    let mut config = KafkaProjectorConfig::new(kafka_brokers());
    config.topic_prefix = prefix.clone();
    config.group_prefix = prefix;
    config.topics = topics;
    config.batch_size = 40;
    config.session_timeout = Duration::from_secs(6);
    let projector =
        KafkaProjector::new(db.clone(), Arc::new(AccountsProjection), config).expect("projector");
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(projector.run(shutdown.clone()));

    let expected = replayed(dir.path(), &store).await;
    // The projector creates the tables too; whoever comes first, they exist before polling.
    db.ensure_schema(&AccountsProjection).await.expect("schema");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let offsets = db
            .partition_offsets("bank-accounts")
            .await
            .expect("offsets");
        let consumed: i64 = offsets.iter().map(|o| o.next_offset).sum();
        if consumed == (total + first_half.len()) as i64 {
            seen = all_rows(&db).await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shutdown.cancel();
    running.await.expect("join").expect("projector run");

    assert!(
        !seen.is_empty(),
        "the projector did not consume every message within 90 s"
    );
    assert_eq!(seen.len(), expected.len());
    for (got, want) in seen.iter().zip(&expected) {
        assert_eq!(
            got, want,
            "the Kafka projection differs from a store replay"
        );
    }
    assert_eq!(
        db.dead_letter_count("bank-accounts").await.expect("count"),
        1,
        "the poison event is dead-lettered once, although it was delivered twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn into_sqlite_equals_a_store_replay_despite_duplicates_and_a_poison_event() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = ReadModelDb::open_sqlite(dir.path().join("readmodel.sqlite"))
        .await
        .expect("sqlite");
    projects_from_kafka_like_a_store_replay(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn into_postgres_equals_a_store_replay_despite_duplicates_and_a_poison_event() {
    let database = TestDatabase::postgres().await;
    let db = ReadModelDb::connect(&database.url).await.expect("postgres");
    projects_from_kafka_like_a_store_replay(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn into_mariadb_equals_a_store_replay_despite_duplicates_and_a_poison_event() {
    let database = TestDatabase::mysql().await;
    let db = ReadModelDb::connect(&database.url).await.expect("mariadb");
    projects_from_kafka_like_a_store_replay(db).await;
}
