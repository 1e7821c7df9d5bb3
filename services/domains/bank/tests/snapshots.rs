//! Snapshots of long account streams: loads start from the newest snapshot, and snapshots are
//! only a cache (deleted or unreadable, nothing changes but the events read).

use std::sync::Arc;

use eventline_bank::{Account, AccountCommand, AccountType, DepositFunds, OpenAccount};
use eventline_core::{CommandHandler, EventStore, Metadata, Snapshot, SnapshotStore};
use eventline_store_postgres::PostgresEventStore;
use eventline_store_sqlite::SqliteEventStore;
use eventline_test_support::TestDatabase;
use serde_json::json;

fn handler(
    events: &Arc<dyn EventStore>,
    snapshots: &Arc<dyn SnapshotStore>,
) -> CommandHandler<Account> {
    CommandHandler::new(Arc::clone(events)).with_snapshots(
        Arc::clone(snapshots),
        10,
        Account::SNAPSHOT_FORMAT,
    )
}

async fn balance(events: &Arc<dyn EventStore>, snapshots: &Arc<dyn SnapshotStore>) -> (i64, u64) {
    let (state, version) = handler(events, snapshots).load("acct").await.expect("load");
    (state.balance, version)
}

async fn snapshots_are_a_cache(events: Arc<dyn EventStore>, snapshots: Arc<dyn SnapshotStore>) {
    let writer = handler(&events, &snapshots);
    let meta = Metadata::default();
    writer
        .execute(
            "acct",
            Some(0),
            &meta,
            &AccountCommand::Open(OpenAccount {
                holder: "Ada".into(),
                account_type: AccountType::Checking,
                opening_balance: 0,
            }),
        )
        .await
        .expect("open");
    for _ in 0..24 {
        writer
            .execute(
                "acct",
                None,
                &meta,
                &AccountCommand::Deposit(DepositFunds { amount: 1 }),
            )
            .await
            .expect("deposit");
    }
    let taken = snapshots
        .load_snapshot("acct")
        .await
        .expect("read")
        .expect("a snapshot was taken");
    assert_eq!(
        (taken.version, taken.format),
        (20, Account::SNAPSHOT_FORMAT)
    );
    assert_eq!(taken.state["balance"], 19);
    assert_eq!(balance(&events, &snapshots).await, (24, 25));

    // A load starts from the snapshot: a (deliberately wrong) state in it shows through, as
    // no later event says otherwise. (Deposits record the resulting balance.)
    let mut doctored = taken.clone();
    doctored.state["balance"] = json!(1_000);
    doctored.version = 25;
    snapshots.save_snapshot(&doctored).await.expect("save");
    assert_eq!(balance(&events, &snapshots).await, (1_000, 25));
    // An older snapshot never replaces a newer one.
    snapshots.save_snapshot(&taken).await.expect("save");
    assert_eq!(
        snapshots
            .load_snapshot("acct")
            .await
            .expect("read")
            .expect("kept")
            .version,
        25
    );

    // Deleted, of another format, or unreadable: the stream is read from the start.
    snapshots.delete_snapshots().await.expect("delete");
    assert_eq!(balance(&events, &snapshots).await, (24, 25));
    let foreign = Snapshot {
        format: Account::SNAPSHOT_FORMAT + 1,
        ..doctored.clone()
    };
    snapshots.save_snapshot(&foreign).await.expect("save");
    assert_eq!(balance(&events, &snapshots).await, (24, 25));
    snapshots.delete_snapshots().await.expect("delete");
    let garbage = Snapshot {
        state: json!("not an account"),
        ..doctored
    };
    snapshots.save_snapshot(&garbage).await.expect("save");
    assert_eq!(balance(&events, &snapshots).await, (24, 25));
}

#[tokio::test]
async fn on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(
        SqliteEventStore::open(dir.path().join("events.sqlite"))
            .await
            .expect("store"),
    );
    snapshots_are_a_cache(store.clone(), store).await;
}

#[tokio::test]
async fn on_postgres() {
    let database = TestDatabase::postgres().await;
    let store = Arc::new(
        PostgresEventStore::connect(&database.url, 4)
            .await
            .expect("store"),
    );
    snapshots_are_a_cache(store.clone(), store).await;
}

#[tokio::test]
async fn on_mongodb() {
    let Some(server) = eventline_test_support::mongodb_uri("mongodb snapshots_are_a_cache") else {
        return;
    };
    // A database of its own, on the server the URI names.
    let hosts = server
        .strip_prefix("mongodb://")
        .unwrap_or(&server)
        .split(['/', '?'])
        .next()
        .unwrap_or_default()
        .to_owned();
    let name = format!("eventline_snapshots_{}", uuid::Uuid::new_v4().simple());
    let uri = format!("mongodb://{hosts}/{name}");
    let store = Arc::new(
        eventline_store_mongo::MongoEventStore::connect(&uri, 4)
            .await
            .expect("store"),
    );
    snapshots_are_a_cache(store.clone(), store).await;
    mongodb::Client::with_uri_str(&uri)
        .await
        .expect("client")
        .database(&name)
        .drop()
        .await
        .expect("drop the test database");
}
