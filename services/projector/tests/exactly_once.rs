//! The projector applies each event exactly once in effect, and dead-letters what it cannot
//! apply without stopping.

use std::sync::Arc;

mod support;

use eventline_bank::{AccountsProjection, accounts_table};
use eventline_core::{EventStore, Position, Projection, Value};
use eventline_projector::StoreProjector;
use eventline_readmodel::{ProjectedEvent, ReadModelDb};
use eventline_store_sqlite::SqliteEventStore;
use serde_json::json;
use support::{all_rows, event, opened};

async fn fixture() -> (tempfile::TempDir, Arc<dyn EventStore>, ReadModelDb) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteEventStore::open(dir.path().join("events.sqlite"))
        .await
        .expect("store");
    let db = ReadModelDb::open_sqlite(dir.path().join("readmodel.sqlite"))
        .await
        .expect("read model");
    (dir, Arc::new(store), db)
}

#[tokio::test]
async fn redelivered_events_change_nothing() {
    let (_dir, store, db) = fixture().await;
    store
        .append("a1", "bank.account", 0, vec![opened(10)])
        .await
        .expect("append");
    store
        .append(
            "a1",
            "bank.account",
            1,
            vec![event("FundsDeposited", json!({"amount": 5, "balance": 15}))],
        )
        .await
        .expect("append");
    let projector =
        StoreProjector::new(Arc::clone(&store), db.clone(), Arc::new(AccountsProjection));
    assert_eq!(
        projector.catch_up().await.expect("catch up"),
        Position::sequential(2)
    );
    let before = all_rows(&db).await;

    // Hand the same events to the read model again, as a redelivery would.
    let schema = db.ensure_schema(&AccountsProjection).await.expect("schema");
    let events = store.read_all(Position::START, 100).await.expect("read");
    let batch: Vec<ProjectedEvent<'_>> = events
        .iter()
        .map(|event| ProjectedEvent {
            event,
            ops: AccountsProjection.apply(event),
        })
        .collect();
    let outcome = db.apply_batch(&schema, &batch).await.expect("apply");
    assert_eq!(
        (outcome.applied, outcome.skipped, outcome.checkpoint),
        (0, 2, Position::sequential(2))
    );
    assert_eq!(all_rows(&db).await, before);
    let balance = db
        .get(&accounts_table(), vec![("id", Value::from("a1"))])
        .await
        .expect("get")
        .expect("row")["balance"]
        .clone();
    assert_eq!(balance, 15);
}

#[tokio::test]
async fn poison_events_are_dead_lettered_and_the_projector_goes_on() {
    let (_dir, store, db) = fixture().await;
    store
        .append("a1", "bank.account", 0, vec![opened(10)])
        .await
        .expect("append");
    // Undecodable payload: the projection refuses it.
    store
        .append(
            "a1",
            "bank.account",
            1,
            vec![event("FundsDeposited", json!({"amount": "five"}))],
        )
        .await
        .expect("append");
    // Decodable, but for an account the read model has never seen: the database refuses it.
    store
        .append(
            "ghost",
            "bank.account",
            0,
            vec![event("FundsDeposited", json!({"amount": 1, "balance": 1}))],
        )
        .await
        .expect("append");
    // Other stream types are skipped, not dead-lettered.
    store
        .append(
            "p1",
            "social.post",
            0,
            vec![event("PostCreated", json!({}))],
        )
        .await
        .expect("append");
    store
        .append(
            "a1",
            "bank.account",
            2,
            vec![event("FundsDeposited", json!({"amount": 5, "balance": 15}))],
        )
        .await
        .expect("append");

    let projector =
        StoreProjector::new(Arc::clone(&store), db.clone(), Arc::new(AccountsProjection));
    assert_eq!(
        projector.catch_up().await.expect("catch up"),
        Position::sequential(5)
    );
    assert_eq!(
        db.dead_letter_count("bank-accounts").await.expect("count"),
        2
    );
    let account = db
        .get(&accounts_table(), vec![("id", Value::from("a1"))])
        .await
        .expect("get")
        .expect("row");
    assert_eq!(
        account["balance"], 15,
        "the event after the poison one was applied"
    );
    assert_eq!(account["version"], 3);
    assert!(
        db.get(&accounts_table(), vec![("id", Value::from("ghost"))])
            .await
            .expect("get")
            .is_none(),
        "the refused event left no partial row"
    );
}

#[tokio::test]
async fn a_projector_interrupted_between_batches_ends_equal_to_a_fresh_replay() {
    let (dir, store, db) = fixture().await;
    for account in 0..20u64 {
        let id = format!("acct-{account}");
        store
            .append(&id, "bank.account", 0, vec![opened(0)])
            .await
            .expect("append");
        for v in 1..=5u64 {
            let payload = json!({"amount": v, "balance": v * (v + 1) / 2});
            store
                .append(
                    &id,
                    "bank.account",
                    v,
                    vec![event("FundsDeposited", payload)],
                )
                .await
                .expect("append");
        }
    }
    // Small batches, stopped after a few of them, then resumed by a new projector.
    let config = eventline_projector::ProjectorConfig {
        batch_size: 7,
        ..Default::default()
    };
    let first = StoreProjector::new(Arc::clone(&store), db.clone(), Arc::new(AccountsProjection))
        .with_config(config.clone());
    let schema = first.prepare().await.expect("schema");
    for _ in 0..5 {
        first.step(&schema).await.expect("step");
    }
    assert_eq!(
        db.checkpoint("bank-accounts").await.expect("checkpoint"),
        Position::sequential(35)
    );
    drop(first);
    let resumed = StoreProjector::new(Arc::clone(&store), db.clone(), Arc::new(AccountsProjection))
        .with_config(config);
    assert_eq!(
        resumed.catch_up().await.expect("catch up"),
        Position::sequential(120)
    );

    let fresh_db = ReadModelDb::open_sqlite(dir.path().join("fresh.sqlite"))
        .await
        .expect("fresh");
    StoreProjector::new(
        Arc::clone(&store),
        fresh_db.clone(),
        Arc::new(AccountsProjection),
    )
    .catch_up()
    .await
    .expect("fresh replay");
    assert_eq!(all_rows(&db).await, all_rows(&fresh_db).await);
}
