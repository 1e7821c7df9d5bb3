//! Events stored under schema version 1 load, decide and project under today's code (v2).

use std::sync::Arc;

use eventline_bank::{Account, AccountCommand, AccountsProjection, DepositFunds};
use eventline_core::{
    Aggregate, CommandHandler, EventStore, Metadata, NewEvent, Position, Projection, RowOp, Value,
};
use eventline_store_sqlite::SqliteEventStore;
use serde_json::json;

#[tokio::test]
async fn v1_events_replay_under_v2_code() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn EventStore> = Arc::new(
        SqliteEventStore::open(dir.path().join("events.sqlite"))
            .await
            .expect("store"),
    );
    // As code of schema version 1 wrote it.
    store
        .append(
            "acct",
            Account::STREAM_TYPE,
            0,
            vec![NewEvent {
                event_type: "AccountOpened".into(),
                schema_version: 1,
                payload: json!({"holder": "Ada", "account_type": "checking", "opening_balance": 40}),
                metadata: Metadata::default(),
            }],
        )
        .await
        .expect("append v1");

    // The aggregate loads it and decides on it.
    let handler = CommandHandler::<Account>::new(Arc::clone(&store));
    let outcome = handler
        .execute(
            "acct",
            None,
            &Metadata::default(),
            &AccountCommand::Deposit(DepositFunds { amount: 2 }),
        )
        .await
        .expect("deposit on a v1-opened account");
    assert_eq!(outcome.version, 2);

    // The projection reads the v1 event as v2.
    let events = store.read_all(Position::START, 10).await.expect("read");
    assert_eq!(events[0].schema_version, 1, "the store is not rewritten");
    let ops = AccountsProjection.apply(&events[0]).expect("projects");
    let RowOp::Upsert { row, .. } = &ops[0] else {
        panic!("an upsert of the account: {ops:?}");
    };
    assert!(row.contains(&("holder", Value::from("Ada"))), "{row:?}");
    let deposited = AccountsProjection.apply(&events[1]).expect("projects");
    assert!(!deposited.is_empty());
}
