//! Replays against real databases: the rebuilt read model equals the live one row by row, in
//! every database and across databases; an interrupted replay resumes to the identical
//! result; a poison event stops it; it never builds over a read model it does not own.

use std::sync::Arc;
use std::time::Duration;

use eventline_bank::{AccountsProjection, read_model_rows};
use eventline_core::{EventStore, Metadata, NewEvent};
use eventline_projector::StoreProjector;
use eventline_readmodel::{ReadModelDb, ReadModelError};
use eventline_replay::{Replay, ReplayConfig, ReplayError};
use eventline_store_sqlite::SqliteEventStore;
use eventline_test_support::TestDatabase;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn event(event_type: &str, schema_version: u32, payload: serde_json::Value) -> NewEvent {
    NewEvent {
        event_type: event_type.into(),
        schema_version,
        payload,
        metadata: Metadata::default(),
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    store: Arc<dyn EventStore>,
}

/// 30 accounts, each opened (half of them as schema version 1, as older code wrote them)
/// then given 10 deposits, interleaved across accounts.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn EventStore> = Arc::new(
        SqliteEventStore::open(dir.path().join("events.sqlite"))
            .await
            .expect("store"),
    );
    for account in 0..30 {
        let opened = if account % 2 == 0 {
            event(
                "AccountOpened",
                1,
                json!({"holder": format!("h{account}"), "account_type": "savings", "opening_balance": 0}),
            )
        } else {
            event(
                "AccountOpened",
                2,
                json!({"holder_name": format!("h{account}"), "account_type": "checking", "opening_balance": 0}),
            )
        };
        store
            .append(
                &format!("acct-{account:02}"),
                "bank.account",
                0,
                vec![opened],
            )
            .await
            .expect("open");
    }
    for n in 1..=10i64 {
        for account in 0..30 {
            store
                .append(
                    &format!("acct-{account:02}"),
                    "bank.account",
                    n as u64,
                    vec![event(
                        "FundsDeposited",
                        1,
                        json!({"amount": n, "balance": n * (n + 1) / 2}),
                    )],
                )
                .await
                .expect("deposit");
        }
    }
    Fixture { dir, store }
}

impl Fixture {
    async fn sqlite(&self, name: &str) -> ReadModelDb {
        ReadModelDb::open_sqlite(self.dir.path().join(name))
            .await
            .expect("sqlite")
    }

    fn replay(&self, target: &ReadModelDb, request_id: &str, batch_size: usize) -> Replay {
        let mut config = ReplayConfig::new(request_id);
        config.batch_size = batch_size;
        config.progress_every = Duration::ZERO;
        Replay::new(
            Arc::clone(&self.store),
            target.clone(),
            Arc::new(AccountsProjection),
            config,
        )
    }

    /// The live read model: a projector tailing the store.
    async fn live(&self, db: &ReadModelDb) {
        StoreProjector::new(
            Arc::clone(&self.store),
            db.clone(),
            Arc::new(AccountsProjection),
        )
        .catch_up()
        .await
        .expect("live projector");
    }
}

async fn assert_same_rows(replayed: &ReadModelDb, live: &ReadModelDb) {
    let got = read_model_rows(replayed).await.expect("replayed rows");
    let want = read_model_rows(live).await.expect("live rows");
    assert_eq!(got.len(), want.len(), "row counts");
    assert_eq!(got.len(), 30 + 330, "30 accounts and 330 history rows");
    for (got, want) in got.iter().zip(&want) {
        assert_eq!(got, want);
    }
}

async fn replay_equals_live(live: ReadModelDb, target: ReadModelDb) {
    let f = fixture().await;
    f.live(&live).await;
    let mut reports = Vec::new();
    let done = f
        .replay(&target, "rebuild-1", 64)
        .run(CancellationToken::new(), |p| reports.push(p.clone()))
        .await
        .expect("replay");
    assert!(done.done);
    assert_eq!((done.applied, done.total, done.percent), (330, 330, 100.0));
    assert!(reports.len() > 2, "progress is reported while it runs");
    assert!(reports.windows(2).all(|w| w[0].position <= w[1].position));
    assert_same_rows(&target, &live).await;

    // The digests agree across database types, and notice a single changed value.
    let digest = target.digest(&AccountsProjection).await.expect("digest");
    assert_eq!(
        digest,
        live.digest(&AccountsProjection).await.expect("digest")
    );
    assert_eq!(
        digest.iter().map(|d| (d.table, d.rows)).collect::<Vec<_>>(),
        [
            ("accounts", 30),
            ("account_history", 330),
            ("eventline_stream_versions", 30)
        ]
    );
    let schema = live
        .ensure_schema(&AccountsProjection)
        .await
        .expect("schema");
    let changed = eventline_core::Envelope {
        position: eventline_core::Position::sequential(1_000),
        stream_id: "acct-03".into(),
        stream_type: "other".into(),
        version: 1,
        event_type: "Tampered".into(),
        schema_version: 1,
        payload: json!({}),
        metadata: Metadata::default(),
        recorded_at: chrono::Utc::now(),
    };
    live.apply_batch(
        &schema,
        &[eventline_readmodel::ProjectedEvent {
            event: &changed,
            ops: Ok(vec![eventline_core::RowOp::Update {
                table: "accounts",
                key: vec![("id", eventline_core::Value::from("acct-03"))],
                set: vec![("balance", eventline_core::Value::Int(1))],
            }]),
        }],
    )
    .await
    .expect("tamper");
    let tampered = live.digest(&AccountsProjection).await.expect("digest");
    assert_eq!(tampered[0].rows, digest[0].rows);
    assert_ne!(tampered[0].checksum, digest[0].checksum);
    assert_eq!(tampered[1], digest[1]);
}

#[tokio::test]
async fn into_postgres_from_a_mariadb_live_model() {
    let (live, target) = (TestDatabase::mysql().await, TestDatabase::postgres().await);
    replay_equals_live(
        ReadModelDb::connect(&live.url).await.expect("mariadb"),
        ReadModelDb::connect(&target.url).await.expect("postgres"),
    )
    .await;
}

#[tokio::test]
async fn into_sqlite_from_a_postgres_live_model() {
    let live = TestDatabase::postgres().await;
    let dir = tempfile::tempdir().expect("temp dir");
    replay_equals_live(
        ReadModelDb::connect(&live.url).await.expect("postgres"),
        ReadModelDb::open_sqlite(dir.path().join("target.sqlite"))
            .await
            .expect("sqlite"),
    )
    .await;
}

#[tokio::test]
async fn into_mariadb_from_a_sqlite_live_model() {
    let target = TestDatabase::mysql().await;
    let dir = tempfile::tempdir().expect("temp dir");
    replay_equals_live(
        ReadModelDb::open_sqlite(dir.path().join("live.sqlite"))
            .await
            .expect("sqlite"),
        ReadModelDb::connect(&target.url).await.expect("mariadb"),
    )
    .await;
}

#[tokio::test]
async fn an_interrupted_replay_resumes_to_the_identical_result() {
    let f = fixture().await;
    let database = TestDatabase::postgres().await;
    let target = ReadModelDb::connect(&database.url).await.expect("postgres");
    let stop = CancellationToken::new();
    let stopping = stop.clone();
    let interrupted = f
        .replay(&target, "rebuild-2", 50)
        .run(stop, |p| {
            if p.applied >= 100 {
                stopping.cancel();
            }
        })
        .await
        .expect_err("interrupted");
    let ReplayError::Interrupted { at, .. } = interrupted else {
        panic!("{interrupted}");
    };
    assert!(at.event > 0 && at.event < 330, "stopped part-way: {at}");

    // Another request may not take over the half-built model.
    let refused = f
        .replay(&target, "someone-else", 50)
        .run(CancellationToken::new(), |_| {})
        .await
        .expect_err("refused");
    assert!(
        refused.to_string().contains("replay \"rebuild-2\""),
        "{refused}"
    );

    let resumed = f
        .replay(&target, "rebuild-2", 50)
        .run(CancellationToken::new(), |_| {})
        .await
        .expect("resumed");
    assert_eq!(
        resumed.applied,
        330 - at.event,
        "continues after its checkpoint"
    );

    let uninterrupted = f.sqlite("uninterrupted.sqlite").await;
    f.replay(&uninterrupted, "rebuild-3", 1_000)
        .run(CancellationToken::new(), |_| {})
        .await
        .expect("uninterrupted");
    assert_same_rows(&target, &uninterrupted).await;

    // Starting a finished request again changes nothing.
    let again = f
        .replay(&target, "rebuild-2", 50)
        .run(CancellationToken::new(), |_| {})
        .await
        .expect("finished already");
    assert!(again.done);
    assert_eq!(again.applied, 0);
}

#[tokio::test]
async fn a_poison_event_stops_the_replay_naming_it() {
    let f = fixture().await;
    f.store
        .append(
            "acct-07",
            "bank.account",
            11,
            vec![event("FundsDeposited", 1, json!({"amount": "lots"}))],
        )
        .await
        .expect("poison");
    let target = f.sqlite("target.sqlite").await;
    let error = f
        .replay(&target, "rebuild-4", 100)
        .run(CancellationToken::new(), |_| {})
        .await
        .expect_err("stopped");
    let text = error.to_string();
    assert!(
        text.contains("FundsDeposited v12 of stream acct-07") && text.contains("cannot be applied"),
        "{text}"
    );
    assert!(matches!(
        error,
        ReplayError::Target {
            source: ReadModelError::EventRejected { .. },
            ..
        }
    ));
    assert_eq!(
        target
            .dead_letter_count("bank-accounts")
            .await
            .expect("count"),
        0,
        "a replay dead-letters nothing"
    );
    let checkpoint = target
        .checkpoint("bank-accounts")
        .await
        .expect("checkpoint");
    assert!(
        checkpoint.event < 331,
        "nothing at or after the poison event was written"
    );
}

#[tokio::test]
async fn a_replay_never_builds_over_a_live_read_model() {
    let f = fixture().await;
    let live = f.sqlite("live.sqlite").await;
    f.live(&live).await;
    let error = f
        .replay(&live, "rebuild-5", 100)
        .run(CancellationToken::new(), |_| {})
        .await
        .expect_err("refused");
    assert!(error.to_string().contains("a live projector"), "{error}");
}
