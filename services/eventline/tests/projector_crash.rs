//! Kill the real `eventline project --source kafka` process while it works through a backlog,
//! start it again: the read model ends equal to a fresh replay of the store, row by row.

mod support;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventline_app::url::{DEFAULT_APPEND_BATCH, open_store};
use eventline_bank::{AccountsProjection, read_model_rows};
use eventline_core::{EventStore, Metadata, NewEvent};
use eventline_readmodel::ReadModelDb;
use eventline_relay::{Relay, RelayConfig};
use eventline_test_support::{TestDatabase, kafka_brokers, unique_name};
use serde_json::json;
use support::replayed_rows;
use tokio::process::{Child, Command};

const ACCOUNTS: usize = 600;
const EVENTS_PER_ACCOUNT: i64 = 20;

fn event(event_type: &str, payload: serde_json::Value) -> NewEvent {
    NewEvent {
        event_type: event_type.into(),
        schema_version: 1,
        payload,
        metadata: Metadata::default(),
    }
}

/// Each account: opened, then 19 deposits, appended together.
async fn backlog(store: &dyn EventStore) -> usize {
    for account in 0..ACCOUNTS {
        let mut events = vec![event(
            "AccountOpened",
            json!({"holder": "Ada", "account_type": "checking", "opening_balance": 0}),
        )];
        for n in 1..EVENTS_PER_ACCOUNT {
            events.push(event(
                "FundsDeposited",
                json!({"amount": n, "balance": n * (n + 1) / 2}),
            ));
        }
        store
            .append(&format!("acct-{account:04}"), "bank.account", 0, events)
            .await
            .expect("append");
    }
    ACCOUNTS * EVENTS_PER_ACCOUNT as usize
}

fn projector(read_model: &str, prefix: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_eventline"))
        .args(["project", "--source", "kafka", "--read-model", read_model])
        .args(["--kafka-brokers", &kafka_brokers()])
        .args(["--topic-prefix", prefix, "--consumer-group-prefix", prefix])
        .args(["--topic-partitions", "3", "--topic-replication", "1"])
        .args(["--kafka-session-timeout-ms", "6000"])
        .args(["--batch-size", "60", "--listen", "127.0.0.1:0"])
        .env("EVENTLINE_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn eventline project")
}

async fn consumed(db: &ReadModelDb) -> i64 {
    db.partition_offsets("bank-accounts")
        .await
        .map(|offsets| offsets.iter().map(|o| o.next_offset).sum())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_mid_batch_resumes_to_equal_a_fresh_replay() {
    let store_db = TestDatabase::postgres().await;
    let read_model_db = TestDatabase::postgres().await;
    let store = open_store(
        "--store",
        &store_db.url.parse().expect("url"),
        4,
        DEFAULT_APPEND_BATCH,
    )
    .await
    .expect("store");
    let total = backlog(store.as_ref()).await as i64;

    let prefix = unique_name("crash");
    let mut config = RelayConfig::new(kafka_brokers());
    config.topic_prefix.clone_from(&prefix);
    config.partitions = 3;
    let checkpoints = ReadModelDb::connect(&store_db.url)
        .await
        .expect("checkpoints");
    let mut relay = Relay::new(Arc::clone(&store), checkpoints, config)
        .await
        .expect("relay");
    while relay.step().await.expect("publish") > 0 {}

    let db = ReadModelDb::connect(&read_model_db.url)
        .await
        .expect("read model");
    db.ensure_schema(&AccountsProjection).await.expect("schema");
    let mut first = projector(&read_model_db.url, &prefix);
    let deadline = Instant::now() + Duration::from_secs(60);
    let at_kill = loop {
        let done = consumed(&db).await;
        if done >= total / 5 {
            break done;
        }
        assert!(
            Instant::now() < deadline,
            "the projector made no progress in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    first.start_kill().expect("SIGKILL");
    first.wait().await.expect("wait");
    assert!(
        at_kill < total,
        "the projector finished before it could be killed ({at_kill} of {total})"
    );

    let mut second = projector(&read_model_db.url, &prefix);
    let deadline = Instant::now() + Duration::from_secs(120);
    while consumed(&db).await < total {
        assert!(
            Instant::now() < deadline,
            "the restarted projector did not finish within 120 s ({} of {total})",
            consumed(&db).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    second.start_kill().expect("stop");
    second.wait().await.expect("wait");

    let expected = replayed_rows(&store).await;
    let live = read_model_rows(&db).await.expect("live rows");
    assert_eq!(live.len(), expected.len());
    for (got, want) in live.iter().zip(&expected) {
        assert_eq!(got, want, "the read model differs from a fresh replay");
    }
    println!("killed after {at_kill} of {total} messages; the restart finished the rest");
}
