//! The `EventStore` contract, written once and run against every adapter.
//!
//! Each case is a plain async function taking a fresh, empty store. Adapters run the whole
//! suite with [`store_contract_tests!`], giving it a function that returns
//! `Option<(Arc<dyn EventStore>, Guard)>` for the named test case, where the guard (a temporary directory, a database to
//! drop) lives as long as the test. `None` means the adapter's server is not available here, in
//! which case that function must print one line saying why the tests are skipped.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventline_core::{EventStore, Metadata, NewEvent, Position, StoreError};
use serde_json::json;

/// Runs every contract case as its own `#[tokio::test]`, each on a fresh store from `$fresh`.
#[macro_export]
macro_rules! store_contract_tests {
    ($fresh:path) => {
        $crate::store_contract_tests!(@cases $fresh;
            append_then_read_stream,
            stale_or_future_expected_version_conflicts,
            multi_event_append_is_all_or_nothing,
            read_all_in_batches_from_a_position,
            concurrent_writers_and_a_tailing_reader_see_every_event_once_in_order,
            racing_writers_on_one_stream_never_duplicate_a_version,
            bad_input_is_rejected_and_writes_nothing,
            streams_are_listed_in_id_order_with_their_versions,
        );
    };
    (@cases $fresh:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                if let Some((store, _guard)) = $fresh(stringify!($case)).await {
                    $crate::$case(store).await;
                }
            }
        )*
    };
}

/// An event with a JSON payload `{"n": n}` and a known correlation id.
pub fn event(event_type: &str, n: u64) -> NewEvent {
    NewEvent {
        event_type: event_type.to_owned(),
        schema_version: 1,
        payload: json!({ "n": n }),
        metadata: Metadata {
            user: Some("contract".to_owned()),
            ..Metadata::default()
        },
    }
}

/// Waits until `read_all` from the start shows `count` events and returns them.
///
/// Stores may hold back events that are committed but not yet safe to hand out (PostgreSQL
/// withholds everything at or above the oldest transaction still running anywhere in the
/// cluster, such as another test's); that is latency, never loss, so tests wait for it.
pub async fn all_visible(store: &dyn EventStore, count: usize) -> Vec<eventline_core::Envelope> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = store
            .read_all(Position::START, count + 1_000)
            .await
            .expect("read all");
        if events.len() >= count {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {count} events became visible",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An append of `events` events (see [`event`]) to `stream_id`, for tests of batch writers.
pub fn append_request(
    stream_id: &str,
    expected: u64,
    events: u64,
) -> eventline_group_commit::AppendRequest {
    eventline_group_commit::AppendRequest {
        stream_id: stream_id.to_owned(),
        stream_type: "test".to_owned(),
        expected,
        events: (1..=events).map(|n| event("Happened", n)).collect(),
    }
}

/// The versions `stream_id` holds, in order.
pub async fn versions(store: &dyn EventStore, stream_id: &str) -> Vec<u64> {
    store
        .read_stream(stream_id, 0, 1_000)
        .await
        .expect("read stream")
        .iter()
        .map(|e| e.version)
        .collect()
}

fn conflict_of(result: Result<eventline_core::AppendOutcome, StoreError>) -> (u64, u64) {
    match result {
        Err(StoreError::Conflict {
            expected, actual, ..
        }) => (expected, actual),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

pub async fn append_then_read_stream(store: Arc<dyn EventStore>) {
    let first = store
        .append("acct-1", "test.account", 0, vec![event("Opened", 1)])
        .await
        .expect("first append");
    assert_eq!(first.version, 1);
    let next = store
        .append(
            "acct-1",
            "test.account",
            1,
            vec![event("Deposited", 2), event("Deposited", 3)],
        )
        .await
        .expect("second append");
    assert_eq!(next.version, 3);
    assert!(next.last_position > first.last_position);

    let events = store.read_stream("acct-1", 0, 100).await.expect("read");
    let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
    assert_eq!(versions, [1, 2, 3]);
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["Opened", "Deposited", "Deposited"]);
    assert_eq!(events[2].payload, json!({ "n": 3 }));
    assert_eq!(events[2].position, next.last_position);
    assert_eq!(events[0].stream_type, "test.account");
    assert_eq!(events[0].schema_version, 1);
    assert_eq!(events[0].metadata.user.as_deref(), Some("contract"));
    let age = chrono::Utc::now() - events[0].recorded_at;
    assert!(
        age.num_seconds().abs() < 60,
        "recorded_at is now, got {age}"
    );
    assert!(events.windows(2).all(|w| w[0].position < w[1].position));

    let page = store.read_stream("acct-1", 1, 1).await.expect("page");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].version, 2);
    assert!(
        store
            .read_stream("nobody", 0, 10)
            .await
            .expect("empty")
            .is_empty()
    );
}

pub async fn stale_or_future_expected_version_conflicts(store: Arc<dyn EventStore>) {
    store
        .append("s", "test", 0, vec![event("A", 1), event("B", 2)])
        .await
        .expect("append");
    for expected in [0, 1, 3, 7] {
        let result = store
            .append("s", "test", expected, vec![event("C", 3)])
            .await;
        assert_eq!(
            conflict_of(result),
            (expected, 2),
            "expected version {expected}"
        );
    }
    assert_eq!(store.read_stream("s", 0, 10).await.expect("read").len(), 2);
    assert_eq!(all_visible(store.as_ref(), 2).await.len(), 2);
}

pub async fn multi_event_append_is_all_or_nothing(store: Arc<dyn EventStore>) {
    for round in 0..10u64 {
        let stream = format!("race-{round}");
        let batch = |writer: u64| (0..5).map(|i| event(&format!("W{writer}"), i)).collect();
        let (a, b) = tokio::join!(
            store.append(&stream, "test", 0, batch(1)),
            store.append(&stream, "test", 0, batch(2)),
        );
        let winner = match (&a, &b) {
            (Ok(_), Err(StoreError::Conflict { .. })) => "W1",
            (Err(StoreError::Conflict { .. }), Ok(_)) => "W2",
            other => panic!("exactly one append must win, got {other:?}"),
        };
        let events = store.read_stream(&stream, 0, 100).await.expect("read");
        assert_eq!(
            events.len(),
            5,
            "round {round}: all of the winner, none of the loser"
        );
        assert!(events.iter().all(|e| e.event_type == winner));
        let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
        assert_eq!(versions, [1, 2, 3, 4, 5]);
    }
}

pub async fn read_all_in_batches_from_a_position(store: Arc<dyn EventStore>) {
    assert_eq!(store.head_position().await.expect("head"), Position::START);
    assert!(
        store
            .read_all(Position::START, 10)
            .await
            .expect("empty")
            .is_empty()
    );
    let mut appended = Vec::new();
    for stream in 0..5u64 {
        for n in 0..5u64 {
            let outcome = store
                .append(
                    &format!("s{stream}"),
                    "test",
                    n,
                    vec![event("E", stream * 10 + n)],
                )
                .await
                .expect("append");
            appended.push(outcome.last_position);
        }
    }
    all_visible(store.as_ref(), appended.len()).await;
    let mut seen = Vec::new();
    let mut after = Position::START;
    loop {
        let batch = store.read_all(after, 7).await.expect("read all");
        assert!(batch.len() <= 7);
        let Some(last) = batch.last() else { break };
        after = last.position;
        seen.extend(batch.iter().map(|e| e.position));
    }
    assert_eq!(seen, appended, "every event once, in append order");
    assert_eq!(store.head_position().await.expect("head"), after);
    assert!(
        store
            .read_all(after, 7)
            .await
            .expect("past head")
            .is_empty()
    );
    store.ping().await.expect("ping");
}

/// The gap-safety proof: writers append concurrently while a reader tails by position with
/// small batches; the reader must see every event exactly once, in position order.
pub async fn concurrent_writers_and_a_tailing_reader_see_every_event_once_in_order(
    store: Arc<dyn EventStore>,
) {
    const WRITERS: u64 = 8;
    const APPENDS: u64 = 60;
    let expected_total: u64 = WRITERS * (0..APPENDS).map(|a| 1 + a % 3).sum::<u64>();

    let reader = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut after = Position::START;
            let mut seen = Vec::new();
            while (seen.len() as u64) < expected_total {
                assert!(
                    Instant::now() < deadline,
                    "reader saw {} events",
                    seen.len()
                );
                let batch = store.read_all(after, 13).await.expect("tail");
                match batch.last() {
                    Some(last) => after = last.position,
                    None => tokio::time::sleep(Duration::from_millis(2)).await,
                }
                seen.extend(batch);
            }
            seen
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut versions = [0u64; 2];
                for a in 0..APPENDS {
                    // Two streams per writer, alternating, with 1 to 3 events per append.
                    let slot = (a % 2) as usize;
                    let stream = format!("w{w}-s{slot}");
                    let events: Vec<_> = (0..1 + a % 3).map(|i| event("E", a * 10 + i)).collect();
                    let outcome = store
                        .append(&stream, "test", versions[slot], events)
                        .await
                        .expect("uncontended append");
                    versions[slot] = outcome.version;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let seen = reader.await.expect("reader");

    assert_eq!(seen.len() as u64, expected_total);
    assert!(
        seen.windows(2).all(|w| w[0].position < w[1].position),
        "positions strictly increase"
    );
    let unique: HashSet<(String, u64)> = seen
        .iter()
        .map(|e| (e.stream_id.clone(), e.version))
        .collect();
    assert_eq!(unique.len(), seen.len(), "no event seen twice");
    let mut last_version: HashMap<&str, u64> = HashMap::new();
    for e in &seen {
        let last = last_version.entry(&e.stream_id).or_insert(0);
        assert_eq!(
            e.version,
            *last + 1,
            "stream {} read in version order",
            e.stream_id
        );
        *last = e.version;
    }
    let stored = store
        .read_all(Position::START, 100_000)
        .await
        .expect("read all");
    assert_eq!(stored, seen, "the tail equals a full read");
}

/// Many writers append to one stream, each re-reading and retrying on conflict: every
/// successful append lands exactly once and the versions stay contiguous.
pub async fn racing_writers_on_one_stream_never_duplicate_a_version(store: Arc<dyn EventStore>) {
    const WRITERS: u64 = 6;
    const APPENDS: u64 = 15;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut conflicts = 0;
                for a in 0..APPENDS {
                    loop {
                        let known = store.read_stream("hot", 0, 10_000).await.expect("read");
                        match store
                            .append(
                                "hot",
                                "test",
                                known.len() as u64,
                                vec![event("E", w * 100 + a)],
                            )
                            .await
                        {
                            Ok(_) => break,
                            Err(StoreError::Conflict {
                                actual, expected, ..
                            }) => {
                                assert_ne!(actual, expected);
                                conflicts += 1;
                            }
                            Err(other) => panic!("append failed: {other}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer");
    }
    let events = store.read_stream("hot", 0, 10_000).await.expect("read");
    assert_eq!(events.len() as u64, WRITERS * APPENDS);
    let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
    let expected: Vec<u64> = (1..=WRITERS * APPENDS).collect();
    assert_eq!(versions, expected);
    let payloads: HashSet<String> = events.iter().map(|e| e.payload.to_string()).collect();
    assert_eq!(payloads.len(), events.len(), "each append stored once");
}

pub async fn bad_input_is_rejected_and_writes_nothing(store: Arc<dyn EventStore>) {
    let invalid = |result: Result<eventline_core::AppendOutcome, StoreError>| {
        assert!(
            matches!(result, Err(StoreError::InvalidInput { .. })),
            "expected InvalidInput, got {result:?}"
        );
    };
    invalid(store.append("", "test", 0, vec![event("E", 1)]).await);
    invalid(store.append("s", "", 0, vec![event("E", 1)]).await);
    invalid(store.append("s", "test", 0, vec![]).await);
    invalid(
        store
            .append("s", "test", 0, vec![event("E", 1), event("", 2)])
            .await,
    );
    invalid(
        store
            .append(&"x".repeat(201), "test", 0, vec![event("E", 1)])
            .await,
    );
    assert_eq!(store.head_position().await.expect("head"), Position::START);
    assert!(
        store
            .read_all(Position::START, 10)
            .await
            .expect("read")
            .is_empty()
    );
}

pub async fn streams_are_listed_in_id_order_with_their_versions(store: Arc<dyn EventStore>) {
    assert!(
        store
            .list_streams(None, 10)
            .await
            .expect("empty")
            .is_empty()
    );
    for (stream, events) in [("b", 2u64), ("a", 1), ("c", 3)] {
        let batch = (0..events).map(|n| event("E", n)).collect();
        store
            .append(stream, "test.kind", 0, batch)
            .await
            .expect("append");
    }
    let all = store.list_streams(None, 10).await.expect("list");
    let listed: Vec<(&str, &str, u64)> = all
        .iter()
        .map(|s| (s.stream_id.as_str(), s.stream_type.as_str(), s.version))
        .collect();
    assert_eq!(
        listed,
        [
            ("a", "test.kind", 1),
            ("b", "test.kind", 2),
            ("c", "test.kind", 3)
        ]
    );
    let page = store.list_streams(Some("a"), 1).await.expect("page");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].stream_id, "b");
    assert!(
        store
            .list_streams(Some("c"), 10)
            .await
            .expect("past the end")
            .is_empty()
    );
}
