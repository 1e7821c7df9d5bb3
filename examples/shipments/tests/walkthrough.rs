//! The shipments application as its users meet it: started from its command line on
//! PostgreSQL (event store and read model), driven over HTTP with tokens, the customs broker
//! clearing in the background; then its projection replayed into MariaDB from the command
//! line, row for row the same.

use std::time::{Duration, Instant};

use clap::Parser;
use eventline_app::App;
use eventline_app::cli::{Cli, Command};
use eventline_readmodel::ReadModelDb;
use eventline_test_support::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn app() -> App {
    App::new().domain(shipments::domain())
}

fn parse(args: &[&str]) -> Command {
    Cli::try_parse_from(std::iter::once("shipments").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        .command
}

struct Http {
    client: reqwest::Client,
    command: String,
    query: String,
    token: String,
}

impl Http {
    async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(
            self.client
                .post(format!("{}{path}", self.command))
                .json(&body),
        )
        .await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.client.get(format!("{}{path}", self.query)))
            .await
    }

    /// Polls the query API until `path` answers 200 with a body `accept` likes.
    async fn eventually(&self, path: &str, accept: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, body) = self.get(path).await;
            if status == StatusCode::OK && accept(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never showed what the test waits for; last answer {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn registration(destination: &str, declared_value: &str) -> Value {
    json!({
        "sender": "Acme GmbH",
        "recipient": "Ada Lovelace",
        "origin_country": "DE",
        "destination_country": destination,
        "weight_grams": 2500,
        "declared_value": declared_value,
        "deliver_by": "2027-01-15",
        "items": [{"description": "Analytical engine parts", "quantity": 3},
                  {"description": "Lochkarten, gestanzt", "quantity": 120}],
    })
}

fn id_of(body: &Value) -> String {
    body["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn shipments_over_http_on_postgres_then_replayed_into_mariadb() {
    let store = TestDatabase::postgres().await;
    let read_model = TestDatabase::postgres().await;
    let data_dir = tempfile::tempdir().expect("temp dir");
    let data = data_dir.path().to_str().expect("utf-8 path");
    let Command::Embedded(args) = parse(&[
        "embedded",
        "--data-dir",
        data,
        "--store",
        &store.url,
        "--read-model",
        &read_model.url,
        "--command-addr",
        "127.0.0.1:0",
        "--query-addr",
        "127.0.0.1:0",
    ]) else {
        unreachable!("parsed as embedded")
    };
    let shutdown = CancellationToken::new();
    let running = app()
        .embedded(&args, shutdown.clone())
        .await
        .expect("the application starts");
    let Command::Token(token) = parse(&["token", "--subject", "ada", "--data-dir", data]) else {
        unreachable!("parsed as token")
    };
    let http = Http {
        client: reqwest::Client::new(),
        command: format!("http://{}", running.command_addr),
        query: format!("http://{}", running.query_addr),
        token: eventline_app::auth::mint(&token).expect("a development token"),
    };

    // Registered: a domestic and an international shipment.
    let (status, body) = http.post("/shipments", registration("DE", "80")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let domestic = id_of(&body);
    let (status, body) = http.post("/shipments", registration("GB", "1250.50")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let international = id_of(&body);

    // Bad input names what is wrong.
    let mut heavy = registration("GB", "10");
    heavy["weight_grams"] = json!(0);
    let (status, body) = http.post("/shipments", heavy).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "weight_grams", "{body}");
    let mut undated = registration("GB", "10");
    undated["deliver_by"] = json!("15.01.2027");
    let (status, body) = http.post("/shipments", undated).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("deliver_by"), "{body}");

    // The customs broker clears the international one in the background (5 % duty above
    // 150), and the read model shows it with every column type it declares.
    let view = http
        .eventually(&format!("/shipments/{international}"), |v| {
            v["customs_duty"] != Value::Null
        })
        .await;
    assert_eq!(view["customs_duty"], "62.53", "{view}");
    assert_eq!(view["declared_value"], "1250.50", "{view}");
    assert_eq!(view["international"], true, "{view}");
    assert_eq!(view["deliver_by"], "2027-01-15", "{view}");
    assert_eq!(view["status"], "registered", "{view}");
    assert_eq!(
        view["items"][1]["description"], "Lochkarten, gestanzt",
        "{view}"
    );
    assert_eq!(view["id"], international, "{view}");

    // Dispatch, deliver; the rules that can be broken are 422s naming the rule.
    for id in [&domestic, &international] {
        let (status, body) = http
            .post(
                &format!("/shipments/{id}/dispatch"),
                json!({"carrier": "DHL"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = http
        .post(
            &format!("/shipments/{domestic}/cancel"),
            json!({"reason": "too late"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["type"], "urn:eventline:wrong_status", "{body}");
    let (status, body) = http
        .post(
            &format!("/shipments/{international}/delivery"),
            json!({"signed_by": "A. Lovelace", "expected_version": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "a stale version: {body}");
    let (status, body) = http
        .post(
            &format!("/shipments/{international}/delivery"),
            json!({"signed_by": "A. Lovelace", "expected_version": 3}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = http
        .post(
            &format!("/shipments/{}/dispatch", uuid::Uuid::now_v7()),
            json!({"carrier": "DHL"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Queries: one shipment's timeline, and shipments by status.
    let timeline = http
        .eventually(&format!("/shipments/{international}/timeline"), |v| {
            v["items"].as_array().is_some_and(|items| items.len() == 4)
        })
        .await;
    let events: Vec<&str> = timeline["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|entry| entry["event"].as_str().expect("event"))
        .collect();
    assert_eq!(
        events,
        [
            "ShipmentRegistered",
            "CustomsCleared",
            "ShipmentDispatched",
            "ShipmentDelivered"
        ]
    );
    let delivered = http.get("/shipments?status=delivered").await.1;
    assert_eq!(
        delivered["items"].as_array().map(Vec::len),
        Some(1),
        "{delivered}"
    );
    assert_eq!(delivered["items"][0]["id"], international, "{delivered}");
    let (status, body) = http.get("/shipments?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    shutdown.cancel();
    running.services.wait().await.expect("stops cleanly");

    // The projection, replayed from the store into MariaDB from the command line, holds the
    // same rows as the live PostgreSQL read model.
    let mariadb = TestDatabase::mysql().await;
    let replay = parse(&[
        "replay",
        "--store",
        &store.url,
        "--target",
        &mariadb.url,
        "--projection",
        "shipment-tracking",
        "--request-id",
        "walkthrough",
        "--progress",
        "json",
    ]);
    app()
        .execute(replay, CancellationToken::new())
        .await
        .expect("the replay succeeds");
    let live = ReadModelDb::connect(&read_model.url).await.expect("live");
    let replayed = ReadModelDb::connect(&mariadb.url).await.expect("replayed");
    let live_rows = shipments::read_model_rows(&live).await.expect("live rows");
    let replayed_rows = shipments::read_model_rows(&replayed)
        .await
        .expect("replayed rows");
    assert_eq!(live_rows.len(), 2 + 6, "2 shipments, 6 timeline entries");
    assert_eq!(live_rows, replayed_rows);

    // A projection the image does not contain is refused, naming what it does contain.
    let unknown = parse(&[
        "replay",
        "--store",
        &store.url,
        "--target",
        &mariadb.url,
        "--projection",
        "bank-accounts",
        "--request-id",
        "nope",
    ]);
    let error = app()
        .execute(unknown, CancellationToken::new())
        .await
        .expect_err("no such projection");
    assert_eq!(
        error.to_string(),
        "--projection: this image has no projection named \"bank-accounts\" (it has: shipment-tracking)"
    );
}
