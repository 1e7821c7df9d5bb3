//! The orders domain end to end: orders taken over HTTP are processed in the background by
//! the order processor, exactly once; bad orders are refused naming the field; the read
//! models on PostgreSQL and MariaDB equal a replay of the store in the other database.

mod support;

use std::sync::Arc;
use std::time::Duration;

use eventline_core::{CommandHandler, EventStore, Metadata};
use eventline_orders::{
    CreateOrder, Order, OrderCommand, OrderLine, OrdersProjection, ProcessOrder,
};
use eventline_readmodel::ReadModelDb;
use eventline_store_postgres::PostgresEventStore;
use eventline_test_support::{TestDatabase, events_once_visible};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Client, Database, TestApp, eventually};

async fn processed(client: &Client, id: &str) -> Value {
    eventually(
        &format!("order {id} processed in the read model"),
        Duration::from_secs(20),
        || async {
            let answer = client.get(&format!("/orders/{id}")).await;
            (answer.body["status"] == "processed").then_some(answer.body)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_taken_over_http_are_processed_once_in_the_background() {
    let app = TestApp::start_with(Database::Postgres, Database::MariaDb).await;
    let client = &app.client;
    let order = |customer: &str, quantity: i64| {
        json!({"customer": customer, "lines": [
            {"sku": "book", "quantity": quantity, "unit_price": 1500},
            {"sku": "pen", "quantity": 1, "unit_price": 120}]})
    };
    let mut ids = Vec::new();
    for n in 0..6 {
        let customer = if n % 2 == 0 { "ada" } else { "bob" };
        let created = client.post("/orders", order(customer, n + 1)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        assert_eq!(created.body["version"], 1);
        let id = created.body["id"].as_str().expect("id").to_owned();
        assert_eq!(
            created.header("location"),
            Some(format!("/orders/{id}").as_str())
        );
        ids.push(id);
    }
    for (n, id) in ids.iter().enumerate() {
        let done = processed(client, id).await;
        assert_eq!(done["version"], 2);
        assert_eq!(done["processed_by"], "order-processor");
        assert_eq!(done["total"], 1500 * (n as i64 + 1) + 120);
        assert_eq!(done["line_count"], 2);
        assert_eq!(done["lines"][1]["sku"], "pen");
        assert_eq!(done["lines"][1]["line_no"], 2);
    }

    // Processing again (by hand) changes nothing; a stale version and an unknown order say so.
    let again = client
        .post(&format!("/orders/{}/process", ids[0]), json!({}))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    assert_eq!(again.body["version"], 2);
    let stale = client
        .post_raw(
            &format!("/orders/{}/process", ids[0]),
            "",
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{:?}", stale.body);
    let unknown = client
        .post(&format!("/orders/{}/process", uuid_like()), json!({}))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{:?}", unknown.body);
    assert_eq!(unknown.body["type"], "urn:eventline:order_not_found");

    // Bad orders name the field.
    let bad = client
        .post(
            "/orders",
            json!({"customer": "ada", "lines": [{"sku": "book", "quantity": 0, "unit_price": 1}]}),
        )
        .await;
    assert_eq!(
        bad.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        bad.body
    );
    assert_eq!(bad.body["errors"][0]["field"], "lines[0].quantity");
    let malformed = client
        .post(
            "/orders",
            json!({"customer": "ada", "lines": [{"sku": "book", "qty": 1}]}),
        )
        .await;
    assert_eq!(
        malformed.status,
        StatusCode::BAD_REQUEST,
        "{:?}",
        malformed.body
    );

    // Queries: by customer and status, newest first, paged.
    let bobs = client
        .get("/orders?customer=bob&status=processed&limit=2")
        .await;
    let items = bobs.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], ids[5].as_str());
    assert_eq!(items[1]["id"], ids[3].as_str());
    let cursor = bobs.body["next"].as_str().expect("next page");
    let rest = client
        .get(&format!(
            "/orders?customer=bob&status=processed&limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(rest.body["items"][0]["id"], ids[1].as_str());
    assert_eq!(rest.body["next"], Value::Null);
    let waiting = client.get("/orders?status=created").await;
    assert_eq!(waiting.body["items"], json!([]));

    // The store holds exactly one OrderProcessed per order, by the processor.
    let events = events_once_visible(app.store.as_ref(), ids.len() * 2).await;
    for id in &ids {
        let processed: Vec<_> = events
            .iter()
            .filter(|e| &e.stream_id == id && e.event_type == "OrderProcessed")
            .collect();
        assert_eq!(processed.len(), 1, "order {id}");
        assert_eq!(
            processed[0].metadata.user.as_deref(),
            Some("system:order-processor")
        );
    }
    app.stop().await;
}

fn uuid_like() -> String {
    "0192f0c4-0000-7000-8000-000000000000".to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_models_on_postgres_and_mariadb_equal_a_replay_in_the_other() {
    let store_db = TestDatabase::postgres().await;
    let store: Arc<dyn EventStore> = Arc::new(
        PostgresEventStore::connect(&store_db.url, 4)
            .await
            .expect("store"),
    );
    let orders = CommandHandler::<Order>::new(Arc::clone(&store));
    let meta = Metadata::default();
    for n in 0..30_i64 {
        let id = format!("order-{n:02}");
        let lines = (0..=n % 4)
            .map(|l| OrderLine {
                sku: format!("sku-{l}"),
                quantity: l + 1,
                unit_price: 100 * n,
            })
            .collect();
        let create = OrderCommand::Create(CreateOrder {
            customer: format!("customer-{}", n % 5),
            lines,
        });
        orders
            .execute(&id, Some(0), &meta, &create)
            .await
            .expect("create");
        if n % 3 != 0 {
            let process = OrderCommand::Process(ProcessOrder {
                processed_by: "test".into(),
            });
            orders
                .execute(&id, None, &meta, &process)
                .await
                .expect("process");
        }
    }
    events_once_visible(store.as_ref(), 50).await;
    let (pg_db, maria_db) = (TestDatabase::postgres().await, TestDatabase::mysql().await);
    let pg = ReadModelDb::connect(&pg_db.url).await.expect("pg");
    let maria = ReadModelDb::connect(&maria_db.url).await.expect("mariadb");
    let projection = Arc::new(OrdersProjection);
    support::project(&store, &pg, projection.clone()).await;
    support::project(&store, &maria, projection.clone()).await;
    let rows = support::assert_same_model(projection.as_ref(), &pg, &maria).await;
    assert_eq!(rows.len(), 30 + (0..30).map(|n| n % 4 + 1).sum::<usize>());
    let unprocessed = rows
        .iter()
        .filter(|r| r.get("status") == Some(&json!("created")));
    assert_eq!(unprocessed.count(), 10);

    let (fresh_pg, fresh_maria) = (TestDatabase::postgres().await, TestDatabase::mysql().await);
    let fresh_pg_db = ReadModelDb::connect(&fresh_pg.url).await.expect("pg");
    let fresh_maria_db = ReadModelDb::connect(&fresh_maria.url)
        .await
        .expect("mariadb");
    let applied = support::replay(&store, &fresh_maria_db, projection.clone(), &pg).await;
    assert_eq!(applied, 50);
    support::replay(&store, &fresh_pg_db, projection.clone(), &maria).await;
    support::assert_same_model(projection.as_ref(), &fresh_maria_db, &pg).await;
    support::assert_same_model(projection.as_ref(), &fresh_pg_db, &maria).await;
}
