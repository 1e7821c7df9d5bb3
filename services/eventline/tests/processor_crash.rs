//! Kill the real `eventline processor` process (SIGKILL) several times while it works through
//! a backlog of created orders, start it again: every order ends processed exactly once. Each
//! kill is recorded with how many orders had been processed past the processor's checkpoint
//! (reactions the restart sees again).

mod support;

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventline_app::url::{DEFAULT_APPEND_BATCH, open_store};
use eventline_core::{CommandHandler, EventStore, Metadata, Position};
use eventline_orders::{CreateOrder, Order, OrderCommand, OrderLine};
use eventline_readmodel::ReadModelDb;
use eventline_test_support::{TestDatabase, events_once_visible};
use tokio::process::{Child, Command};

const ORDERS: usize = 1_200;
const MAX_KILLS: usize = 8;

fn processor(store_url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_eventline"))
        .args([
            "processor",
            "--store",
            store_url,
            "--checkpoint-db",
            store_url,
        ])
        .args(["--batch-size", "20", "--listen", "127.0.0.1:0"])
        .env("EVENTLINE_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn eventline processor")
}

/// How many times each order was processed.
async fn processed(store: &Arc<dyn EventStore>) -> HashMap<String, usize> {
    let events = store
        .read_all(Position::START, 100_000)
        .await
        .expect("events");
    let mut counts = HashMap::new();
    for event in events {
        let count = counts.entry(event.stream_id).or_insert(0);
        if event.event_type == "OrderProcessed" {
            *count += 1;
        }
    }
    counts
}

/// Orders processed after the processor's checkpoint: the reactions a restart sees again.
async fn processed_beyond_checkpoint(
    store: &Arc<dyn EventStore>,
    checkpoints: &ReadModelDb,
) -> usize {
    let checkpoint = checkpoints
        .checkpoint("order-processor")
        .await
        .expect("checkpoint");
    let events = store
        .read_all(Position::START, 100_000)
        .await
        .expect("events");
    let beyond: HashSet<&str> = events
        .iter()
        .filter(|e| e.event_type == "OrderCreated" && e.position > checkpoint)
        .map(|e| e.stream_id.as_str())
        .collect();
    events
        .iter()
        .filter(|e| e.event_type == "OrderProcessed" && beyond.contains(e.stream_id.as_str()))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_killed_mid_backlog_processes_every_order_exactly_once() {
    let store_db = TestDatabase::postgres().await;
    let store = open_store(
        "--store",
        &store_db.url.parse().expect("url"),
        4,
        DEFAULT_APPEND_BATCH,
    )
    .await
    .expect("store");
    let orders = CommandHandler::<Order>::new(Arc::clone(&store));
    for n in 0..ORDERS {
        let command = OrderCommand::Create(CreateOrder {
            customer: "ada".into(),
            lines: vec![OrderLine {
                sku: "book".into(),
                quantity: 1,
                unit_price: n as i64,
            }],
        });
        orders
            .execute(
                &format!("order-{n:04}"),
                Some(0),
                &Metadata::default(),
                &command,
            )
            .await
            .expect("create an order");
    }
    events_once_visible(store.as_ref(), ORDERS).await;
    let checkpoints = ReadModelDb::connect(&store_db.url)
        .await
        .expect("checkpoint database");

    // Kill it while it works, each time once it has done some more, until a kill has caught
    // reactions that were not checkpointed yet (the window this test is about).
    let mut kills = Vec::new();
    for round in 1..=MAX_KILLS {
        let mut running = processor(&store_db.url);
        let deadline = Instant::now() + Duration::from_secs(60);
        let at_kill = loop {
            let done = processed(&store).await.values().sum::<usize>();
            if done >= round * ORDERS / (MAX_KILLS + 2) {
                break done;
            }
            assert!(
                Instant::now() < deadline,
                "the processor made no progress in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        running.start_kill().expect("SIGKILL");
        running.wait().await.expect("wait");
        let beyond = processed_beyond_checkpoint(&store, &checkpoints).await;
        kills.push((at_kill, beyond));
        if at_kill < ORDERS && beyond > 0 {
            break;
        }
    }
    assert!(
        kills
            .iter()
            .any(|(at_kill, beyond)| *at_kill < ORDERS && *beyond > 0),
        "no kill caught reactions past the checkpoint: {kills:?}"
    );

    let mut last = processor(&store_db.url);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let counts = processed(&store).await;
        if let Some((order, twice)) = counts.iter().find(|(_, c)| **c > 1) {
            panic!("order {order} was processed {twice} times");
        }
        if counts.values().all(|c| *c == 1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted processor did not finish within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last.start_kill().expect("stop");
    last.wait().await.expect("wait");
    // (processed when killed, of those processed after the checkpoint: seen again on restart)
    println!("kills: {kills:?}; every one of {ORDERS} orders processed exactly once");
}
