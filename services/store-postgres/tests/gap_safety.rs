//! The case that silently loses events in naive stores: a transaction takes a position, a later
//! position commits first, and a reader tails in between. Here it is forced deterministically.

use eventline_core::{EventStore, Metadata, NewEvent};
use eventline_store_postgres::PostgresEventStore;
use eventline_test_support::TestDatabase;
use sqlx::Connection;

fn event(n: u64) -> NewEvent {
    NewEvent {
        event_type: "E".into(),
        schema_version: 1,
        payload: serde_json::json!({ "n": n }),
        metadata: Metadata::default(),
    }
}

#[tokio::test]
async fn an_event_that_commits_late_is_not_skipped() {
    let database = TestDatabase::postgres().await;
    let store = PostgresEventStore::connect(&database.url, 4)
        .await
        .expect("store");
    store
        .append("first", "test", 0, vec![event(0)])
        .await
        .expect("append");
    let seen = eventline_store_contract::all_visible(&store, 1).await;
    let after_first = seen.last().expect("one event").position;

    // A slow writer takes the next position and keeps its transaction open.
    let mut slow = sqlx::PgConnection::connect(&database.url)
        .await
        .expect("connect");
    let mut tx = slow.begin().await.expect("begin");
    let slow_position: i64 = sqlx::query_scalar(
        "INSERT INTO eventline_events (stream_id, stream_type, version, event_type, \
         schema_version, payload, metadata) VALUES ('slow', 'test', 1, 'E', 1, '{}', '{}') \
         RETURNING position",
    )
    .fetch_one(&mut *tx)
    .await
    .expect("slow insert");

    // A fast writer takes a later position and commits first.
    let fast = store
        .append("fast", "test", 0, vec![event(1)])
        .await
        .expect("fast append");
    assert!(
        fast.last_position.event > slow_position as u64,
        "the fast event numbers later"
    );

    // The reader must not move past the slow writer's position while it is in flight.
    let meanwhile = store.read_all(after_first, 100).await.expect("read");
    assert!(
        meanwhile.is_empty(),
        "a reader that saw the fast event now would skip the slow one: {meanwhile:?}"
    );
    assert_eq!(store.head_position().await.expect("head"), after_first);

    tx.commit().await.expect("slow commit");
    let after: Vec<_> = eventline_store_contract::all_visible(&store, 3)
        .await
        .into_iter()
        .skip(1)
        .collect();
    let streams: Vec<&str> = after.iter().map(|e| e.stream_id.as_str()).collect();
    assert_eq!(streams, ["slow", "fast"], "both, in commit order");
    assert!(after[0].position < after[1].position);
    store.close().await;
}
