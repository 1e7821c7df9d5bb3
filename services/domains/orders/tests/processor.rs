//! The order processor against real databases: every created order is processed exactly
//! once, when events are seen twice, when a batch fails part-way and is retried, when two
//! processors race; a standby waits for the active processor's lease; a poison event is
//! dead-lettered instead of blocking the rest.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use eventline_core::{CommandHandler, Envelope, EventStore, Metadata, NewEvent, Position};
use eventline_orders::{CreateOrder, Order, OrderCommand, OrderLine, OrderProcessor};
use eventline_processor::{ProcessManager, Processor, ProcessorConfig, ReactionError};
use eventline_readmodel::ReadModelDb;
use eventline_store_postgres::PostgresEventStore;
use eventline_test_support::{TestDatabase, events_once_visible};

struct Fixture {
    store: Arc<dyn EventStore>,
    checkpoints: ReadModelDb,
    _databases: (TestDatabase, TestDatabase),
}

/// A PostgreSQL store with `orders` created orders, and a PostgreSQL checkpoint database.
async fn fixture(orders: usize) -> Fixture {
    let (store_db, checkpoint_db) = (
        TestDatabase::postgres().await,
        TestDatabase::postgres().await,
    );
    let store: Arc<dyn EventStore> = Arc::new(
        PostgresEventStore::connect(&store_db.url, 8)
            .await
            .expect("store"),
    );
    let handler = CommandHandler::<Order>::new(Arc::clone(&store));
    for n in 0..orders {
        let command = OrderCommand::Create(CreateOrder {
            customer: format!("customer-{}", n % 7),
            lines: vec![OrderLine {
                sku: "book".into(),
                quantity: 1 + n as i64 % 3,
                unit_price: 1_500,
            }],
        });
        handler
            .execute(
                &format!("order-{n:03}"),
                Some(0),
                &Metadata::default(),
                &command,
            )
            .await
            .expect("create an order");
    }
    events_once_visible(store.as_ref(), orders).await;
    let checkpoints = ReadModelDb::connect(&checkpoint_db.url)
        .await
        .expect("checkpoint database");
    Fixture {
        store,
        checkpoints,
        _databases: (store_db, checkpoint_db),
    }
}

impl Fixture {
    async fn processor(&self, manager: Arc<dyn ProcessManager>, batch_size: usize) -> Processor {
        let config = ProcessorConfig {
            batch_size,
            ..ProcessorConfig::default()
        };
        Processor::new(
            Arc::clone(&self.store),
            self.checkpoints.clone(),
            manager,
            config,
        )
        .await
        .expect("processor")
    }

    /// How many `OrderProcessed` events each order has, and the whole store's events.
    async fn processed(&self) -> (HashMap<String, usize>, Vec<Envelope>) {
        let events = self
            .store
            .read_all(Position::START, 100_000)
            .await
            .expect("events");
        let mut counts = HashMap::new();
        for event in &events {
            if event.event_type == "OrderCreated" {
                counts.entry(event.stream_id.clone()).or_insert(0);
            }
            if event.event_type == "OrderProcessed" {
                *counts.entry(event.stream_id.clone()).or_insert(0) += 1;
            }
        }
        (counts, events)
    }

    async fn assert_each_processed_once(&self, orders: usize) {
        events_once_visible(self.store.as_ref(), orders * 2).await;
        let (counts, events) = self.processed().await;
        assert_eq!(counts.len(), orders);
        for (order, count) in &counts {
            assert_eq!(*count, 1, "order {order} was processed {count} times");
        }
        assert_eq!(events.len(), orders * 2);
        for event in events.iter().filter(|e| e.event_type == "OrderProcessed") {
            assert_eq!(event.version, 2);
            assert_eq!(
                event.metadata.user.as_deref(),
                Some("system:order-processor")
            );
        }
    }
}

#[tokio::test]
async fn an_event_seen_twice_processes_its_order_once() {
    let f = fixture(20).await;
    let processor = OrderProcessor::new(Arc::clone(&f.store));
    let (_, events) = f.processed().await;
    // Every event twice, the copies at the same time (as a redelivery racing the original).
    for event in &events {
        let (a, b) = tokio::join!(processor.react(event), processor.react(event));
        a.expect("first delivery");
        b.expect("second delivery");
    }
    for event in &events {
        processor.react(event).await.expect("a late third delivery");
    }
    f.assert_each_processed_once(20).await;
}

/// The order processor, counting its reactions; its reactions to `failing_order`'s events
/// fail (transiently) the first `failures` times, as if the store had not answered just then.
#[derive(Debug)]
struct Instrumented {
    inner: OrderProcessor,
    reactions: AtomicUsize,
    failing_order: &'static str,
    failures: AtomicUsize,
}

impl Instrumented {
    fn new(store: &Arc<dyn EventStore>, failing_order: &'static str, failures: usize) -> Self {
        Self {
            inner: OrderProcessor::new(Arc::clone(store)),
            reactions: AtomicUsize::new(0),
            failing_order,
            failures: AtomicUsize::new(failures),
        }
    }
}

#[async_trait]
impl ProcessManager for Instrumented {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn stream_types(&self) -> &'static [&'static str] {
        self.inner.stream_types()
    }
    async fn react(&self, event: &Envelope) -> Result<(), ReactionError> {
        self.reactions.fetch_add(1, Ordering::SeqCst);
        let failing = event.stream_id == self.failing_order
            && self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if failing {
            return Err(ReactionError::Transient("the store did not answer".into()));
        }
        self.inner.react(event).await
    }
}

#[tokio::test]
async fn a_batch_that_fails_part_way_keeps_its_progress_and_repeats_nothing() {
    let f = fixture(60).await;
    let (_, created) = f.processed().await;
    let failing = Arc::new(Instrumented::new(&f.store, "order-030", 1));
    let processor = f.processor(failing, 25).await;
    processor.step().await.expect("the first batch of 25");
    let error = processor
        .step()
        .await
        .expect_err("the second batch fails at order-030");
    assert!(
        error.to_string().contains("the store did not answer"),
        "{error}"
    );
    // The checkpoint stops just before the failed event; the orders after it in the batch
    // were processed anyway, and are seen again by the retry.
    assert_eq!(
        processor.checkpoint().await.expect("checkpoint"),
        created[29].position
    );
    events_once_visible(f.store.as_ref(), 60 + 49).await;
    let (counts, _) = f.processed().await;
    assert_eq!(counts["order-030"], 0);
    assert_eq!(counts.values().sum::<usize>(), 49);

    processor.catch_up().await.expect("the retry");
    f.assert_each_processed_once(60).await;
    until("the checkpoint at the store's head", async || {
        processor.catch_up().await.expect("catch up")
            == f.store.head_position().await.expect("head")
    })
    .await;
}

async fn create_orders(store: &Arc<dyn EventStore>, from: usize, to: usize) {
    let handler = CommandHandler::<Order>::new(Arc::clone(store));
    for n in from..to {
        let command = OrderCommand::Create(CreateOrder {
            customer: "late".into(),
            lines: vec![OrderLine {
                sku: "pen".into(),
                quantity: 1,
                unit_price: 1,
            }],
        });
        handler
            .execute(
                &format!("order-{n:03}"),
                Some(0),
                &Metadata::default(),
                &command,
            )
            .await
            .expect("create an order");
    }
}

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_standby_reacts_only_once_the_active_processor_is_gone() {
    let f = fixture(10).await;
    let config = || ProcessorConfig {
        idle_poll: std::time::Duration::from_millis(20),
        lease_retry: std::time::Duration::from_millis(50),
        ..ProcessorConfig::default()
    };
    let counting = || Arc::new(Instrumented::new(&f.store, "none", 0));
    let (active, standby) = (counting(), counting());
    let fixture = &f;
    let start = |manager: Arc<Instrumented>| async move {
        let processor = Processor::new(
            Arc::clone(&fixture.store),
            fixture.checkpoints.clone(),
            manager,
            config(),
        )
        .await
        .expect("processor");
        let shutdown = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(processor.run(shutdown.clone()));
        (shutdown, task)
    };
    let (stop_active, active_task) = start(active.clone()).await;
    until("the active processor to catch up", async || {
        f.processed().await.0.values().sum::<usize>() == 10
    })
    .await;
    let (stop_standby, standby_task) = start(standby.clone()).await;
    create_orders(&f.store, 10, 20).await;
    until("the new orders processed", async || {
        f.processed().await.0.values().sum::<usize>() == 20
    })
    .await;
    assert_eq!(
        standby.reactions.load(Ordering::SeqCst),
        0,
        "the standby did nothing while the lease was held"
    );

    stop_active.cancel();
    active_task
        .await
        .expect("join")
        .expect("the active processor stops cleanly");
    create_orders(&f.store, 20, 30).await;
    until("the standby to take over", async || {
        f.processed().await.0.values().sum::<usize>() == 30
    })
    .await;
    assert!(standby.reactions.load(Ordering::SeqCst) >= 10);
    stop_standby.cancel();
    standby_task
        .await
        .expect("join")
        .expect("the standby stops cleanly");
    f.assert_each_processed_once(30).await;
    assert!(active.reactions.load(Ordering::SeqCst) >= 20);
}

#[tokio::test]
async fn two_processors_racing_process_each_order_once() {
    let f = fixture(80).await;
    let a = f
        .processor(Arc::new(OrderProcessor::new(Arc::clone(&f.store))), 16)
        .await;
    let b = f
        .processor(Arc::new(OrderProcessor::new(Arc::clone(&f.store))), 16)
        .await;
    let (ra, rb) = tokio::join!(a.catch_up(), b.catch_up());
    ra.expect("a");
    rb.expect("b");
    // Each stopped at the head it could see; passes of one of them finish what is left.
    until("every order processed", async || {
        a.catch_up().await.expect("a again");
        f.processed().await.0.values().sum::<usize>() == 80
    })
    .await;
    f.assert_each_processed_once(80).await;
}

#[tokio::test]
async fn a_poison_event_is_dead_lettered_and_the_rest_are_processed() {
    let f = fixture(5).await;
    f.store
        .append(
            "order-poison",
            "shop.order",
            0,
            vec![NewEvent {
                event_type: "OrderCreated".into(),
                schema_version: 1,
                payload: serde_json::json!({"customer": 42}),
                metadata: Metadata::default(),
            }],
        )
        .await
        .expect("append a poison event");
    let handler = CommandHandler::<Order>::new(Arc::clone(&f.store));
    let command = OrderCommand::Create(CreateOrder {
        customer: "late".into(),
        lines: vec![OrderLine {
            sku: "pen".into(),
            quantity: 1,
            unit_price: 1,
        }],
    });
    handler
        .execute("order-late", Some(0), &Metadata::default(), &command)
        .await
        .expect("an order after the poison");
    let processor = f
        .processor(Arc::new(OrderProcessor::new(Arc::clone(&f.store))), 100)
        .await;
    until("the late order processed", async || {
        processor.catch_up().await.expect("catch up");
        f.processed().await.0.get("order-late") == Some(&1)
    })
    .await;
    let (counts, _) = f.processed().await;
    assert_eq!(counts["order-late"], 1);
    assert_eq!(counts["order-poison"], 0);
    assert_eq!(counts.values().sum::<usize>(), 6);
    assert_eq!(
        f.checkpoints
            .dead_letter_count("order-processor")
            .await
            .expect("dead letters"),
        1
    );
}
