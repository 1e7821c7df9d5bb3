//! Replays against real databases: the rebuilt read model equals the live one row by row, in
//! every database and across databases; an interrupted replay resumes to the identical
//! result; a poison event stops it before any cut-over; in the database of the live model it
//! builds beside it and cuts over atomically, under queries and live load.

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

/// Deposit number `n` (amount `n`) into each of the 30 accounts, one append each.
async fn deposit_round(store: &dyn EventStore, n: i64) {
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
    for n in 1..=10 {
        deposit_round(store.as_ref(), n).await;
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
    let mut replay = f.replay(&target, "rebuild-1", 64);
    replay.config_mut().verify_against = Some(live.clone());
    let done = replay
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
    // The stream versions too (the resumed run re-reads the ones applied before the stop).
    assert_eq!(
        target.digest(&AccountsProjection).await.expect("digest"),
        uninterrupted
            .digest(&AccountsProjection)
            .await
            .expect("digest")
    );

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
async fn a_replay_that_differs_from_its_reference_is_not_cut_over() {
    let f = fixture().await;
    let reference = f.sqlite("reference.sqlite").await;
    f.live(&reference).await;
    let schema = reference
        .ensure_schema(&AccountsProjection)
        .await
        .expect("schema");
    let tampered = eventline_core::Envelope {
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
    reference
        .apply_batch(
            &schema,
            &[eventline_readmodel::ProjectedEvent {
                event: &tampered,
                ops: Ok(vec![eventline_core::RowOp::Update {
                    table: "accounts",
                    key: vec![("id", eventline_core::Value::from("acct-03"))],
                    set: vec![("balance", eventline_core::Value::Int(1))],
                }]),
            }],
        )
        .await
        .expect("tamper");
    let database = TestDatabase::postgres().await;
    let target = ReadModelDb::connect(&database.url).await.expect("postgres");
    let mut replay = f.replay(&target, "verified", 100);
    replay.config_mut().verify_against = Some(reference);
    let error = replay
        .run(CancellationToken::new(), |_| {})
        .await
        .expect_err("verification fails");
    assert!(
        matches!(&error, ReplayError::VerificationFailed { tables, .. } if tables == "accounts"),
        "{error}"
    );
    assert!(error.to_string().contains("not cut over"), "{error}");
    assert!(
        read_model_rows(&target).await.expect("rows").is_empty(),
        "the live tables are untouched"
    );
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
    let version = format!(
        "bank-accounts__{}",
        eventline_readmodel::generation("rebuild-4")
    );
    let checkpoint = target.checkpoint(&version).await.expect("checkpoint");
    assert!(
        checkpoint.event > 0 && checkpoint.event < 331,
        "the new version stopped before the poison event: {checkpoint}"
    );
    assert!(
        read_model_rows(&target).await.expect("rows").is_empty(),
        "no cut-over: the live model is untouched"
    );
}

/// Blue/green in the database that serves the live model: queries issued all through the
/// replay succeed and see the complete model (old, then new, never half-built); the new
/// version equals the old; the old one is kept as `__previous`; the live projector
/// continues on the new version; the next request replaces it again.
async fn blue_green_in_place(db: ReadModelDb, can_roll_back: bool) {
    let f = fixture().await;
    f.live(&db).await;
    let before = read_model_rows(&db).await.expect("rows");
    assert_eq!(before.len(), 360);

    let stop = CancellationToken::new();
    let queries = tokio::spawn({
        let (db, stop) = (db.clone(), stop.clone());
        async move {
            let mut seen = 0u32;
            while !stop.is_cancelled() {
                let rows = read_model_rows(&db)
                    .await
                    .expect("a query during the replay failed");
                assert_eq!(rows.len(), 360, "a query saw a partial read model");
                seen += 1;
                tokio::task::yield_now().await;
            }
            seen
        }
    });
    let done = f
        .replay(&db, "blue-green-1", 16)
        .run(CancellationToken::new(), |_| {})
        .await
        .expect("replay");
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.cancel();
    let seen = queries.await.expect("queries");
    assert!(seen >= 5, "queries ran during the replay ({seen})");
    assert_eq!(done.applied, 330);
    assert_eq!(read_model_rows(&db).await.expect("rows"), before);
    assert_eq!(
        db.checkpoint("bank-accounts")
            .await
            .expect("checkpoint")
            .event,
        330,
        "the live checkpoint is the replay's"
    );
    assert_eq!(
        db.checkpoint("bank-accounts__previous")
            .await
            .expect("checkpoint")
            .event,
        330,
        "the previous version is kept with its bookkeeping"
    );

    // The live projector goes on from the replay's position on the new version.
    deposit_round(f.store.as_ref(), 11).await;
    f.live(&db).await;
    let fresh = f.sqlite("fresh.sqlite").await;
    f.replay(&fresh, "fresh", 1_000)
        .run(CancellationToken::new(), |_| {})
        .await
        .expect("fresh replay");
    let live_rows = read_model_rows(&db).await.expect("rows");
    assert_eq!(live_rows.len(), 390);
    assert_eq!(live_rows, read_model_rows(&fresh).await.expect("rows"));

    // Rolling back makes the kept version live again, caught up with what arrived since the
    // cut-over; rolling back once more returns to the replayed one.
    if can_roll_back {
        for _ in 0..2 {
            f.replay(&db, "unused", 100)
                .roll_back()
                .await
                .expect("roll back");
            assert_eq!(read_model_rows(&db).await.expect("rows"), live_rows);
            assert_eq!(
                db.checkpoint("bank-accounts")
                    .await
                    .expect("checkpoint")
                    .event,
                360
            );
        }
        f.live(&db).await;
        assert_eq!(read_model_rows(&db).await.expect("rows"), live_rows);
    } else {
        let error = f
            .replay(&db, "unused", 100)
            .roll_back()
            .await
            .expect_err("refused");
        assert!(error.to_string().contains("not supported"), "{error}");
        assert_eq!(read_model_rows(&db).await.expect("rows"), live_rows);
    }

    // The next request builds and cuts over again, replacing the previous version.
    let again = f
        .replay(&db, "blue-green-2", 64)
        .run(CancellationToken::new(), |_| {})
        .await
        .expect("second replay");
    assert_eq!(again.applied, 360);
    assert_eq!(read_model_rows(&db).await.expect("rows"), live_rows);
    assert_eq!(
        db.checkpoint("bank-accounts__previous")
            .await
            .expect("checkpoint")
            .event,
        360
    );

    // The previous version is kept until its retention ends, then dropped.
    let live = db.ensure_schema(&AccountsProjection).await.expect("schema");
    let kept = db
        .drop_previous_version_after(&live, &AccountsProjection, Duration::from_secs(3_600))
        .await
        .expect("retention");
    assert!(!kept, "within its retention the previous version stays");
    assert!(
        db.previous_version(&live)
            .await
            .expect("previous")
            .is_some()
    );
    let dropped = db
        .drop_previous_version_after(&live, &AccountsProjection, Duration::ZERO)
        .await
        .expect("retention");
    assert!(dropped);
    assert!(
        db.previous_version(&live)
            .await
            .expect("previous")
            .is_none()
    );
    assert_eq!(
        db.checkpoint("bank-accounts__previous")
            .await
            .expect("checkpoint"),
        eventline_core::Position::START
    );
    assert_eq!(read_model_rows(&db).await.expect("rows"), live_rows);
}

#[tokio::test]
async fn blue_green_in_place_on_postgres() {
    let database = TestDatabase::postgres().await;
    blue_green_in_place(
        ReadModelDb::connect(&database.url).await.expect("postgres"),
        true,
    )
    .await;
}

#[tokio::test]
async fn blue_green_in_place_on_mariadb() {
    let database = TestDatabase::mysql().await;
    blue_green_in_place(
        ReadModelDb::connect(&database.url).await.expect("mariadb"),
        false,
    )
    .await;
}

#[tokio::test]
async fn blue_green_in_place_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    blue_green_in_place(
        ReadModelDb::open_sqlite(dir.path().join("live.sqlite"))
            .await
            .expect("sqlite"),
        true,
    )
    .await;
}

/// Events keep arriving and the live projector keeps applying them while the replay runs
/// and cuts over: afterwards the model equals a fresh replay (nothing missed, nothing
/// applied twice).
async fn cut_over_under_live_load(db: ReadModelDb) {
    let f = fixture().await;
    f.live(&db).await;
    let shutdown = CancellationToken::new();
    let projector = tokio::spawn(
        StoreProjector::new(
            Arc::clone(&f.store),
            db.clone(),
            Arc::new(AccountsProjection),
        )
        .with_config(eventline_projector::ProjectorConfig {
            batch_size: 7,
            idle_poll: Duration::from_millis(5),
            max_backoff: Duration::from_millis(50),
        })
        .run(shutdown.clone()),
    );
    let writer = tokio::spawn({
        let store = Arc::clone(&f.store);
        async move {
            for n in 11..=20 {
                deposit_round(store.as_ref(), n).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    f.replay(&db, "under-load", 8)
        .run(CancellationToken::new(), |_| {})
        .await
        .expect("replay");
    writer.await.expect("writer");
    let head = f.store.head_position().await.expect("head");
    while db.checkpoint("bank-accounts").await.expect("checkpoint") < head {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    projector.await.expect("projector").expect("projector run");
    let fresh = f.sqlite("fresh.sqlite").await;
    f.replay(&fresh, "fresh", 1_000)
        .run(CancellationToken::new(), |_| {})
        .await
        .expect("fresh replay");
    let rows = read_model_rows(&db).await.expect("rows");
    assert_eq!(rows.len(), 30 + 630);
    assert_eq!(rows, read_model_rows(&fresh).await.expect("rows"));
}

#[tokio::test]
async fn cut_over_under_live_load_on_postgres() {
    let database = TestDatabase::postgres().await;
    cut_over_under_live_load(ReadModelDb::connect(&database.url).await.expect("postgres")).await;
}

#[tokio::test]
async fn cut_over_under_live_load_on_mariadb() {
    let database = TestDatabase::mysql().await;
    cut_over_under_live_load(ReadModelDb::connect(&database.url).await.expect("mariadb")).await;
}

#[tokio::test]
async fn cut_over_under_live_load_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    cut_over_under_live_load(
        ReadModelDb::open_sqlite(dir.path().join("live.sqlite"))
            .await
            .expect("sqlite"),
    )
    .await;
}
