//! The production pipeline end to end, every part real and started the way the binary starts
//! it (from command-line arguments): commands over HTTP -> event store -> relay -> Kafka ->
//! Kafka projector -> read model (PostgreSQL, MariaDB or SQLite) -> queries over HTTP.
//! The APIs check JWTs as in production, and the order processor runs as its own process.
//! Also: a broker paused while commands go on loses and reorders nothing.

mod support;

use std::time::Duration;

use clap::Parser;
use eventline_app::Services;
use eventline_app::cli::{Cli, Command};
use eventline_app::url::{DEFAULT_APPEND_BATCH, open_store};
use eventline_bank::read_model_rows;
use eventline_readmodel::ReadModelDb;
use eventline_test_support::{PrivateBroker, TestDatabase, kafka_brokers, unique_name};
use reqwest::StatusCode;
use serde_json::json;
use support::{Client, account_at_version, replayed_rows};
use tokio_util::sync::CancellationToken;

/// The four services of a deployment, each started from its command line.
struct Pipeline {
    client: Client,
    store_url: String,
    read_model_url: String,
    shutdown: CancellationToken,
    services: Vec<Services>,
    _dir: tempfile::TempDir,
}

async fn start(args: &[&str], shutdown: &CancellationToken) -> Services {
    let cli = Cli::try_parse_from(std::iter::once("eventline").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let shutdown = shutdown.clone();
    match &cli.command {
        Command::CommandApi(args) => support::app().command_api(args, shutdown).await,
        Command::QueryApi(args) => support::app().query_api(args, shutdown).await,
        Command::Project(args) => support::app().project(args, shutdown).await,
        Command::Relay(args) => support::app().relay(args, shutdown).await,
        Command::Processor(args) => support::app().processor(args, shutdown).await,
        Command::Embedded(_)
        | Command::Replay(_)
        | Command::Rollback(_)
        | Command::Token(_)
        | Command::Projections(_) => {
            unreachable!("not part of the pipeline")
        }
    }
    .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

impl Pipeline {
    /// The projector's `/readyz`: its status code and the Kafka check's answer.
    async fn projector_readiness(&self) -> (StatusCode, serde_json::Value) {
        let addr = self.services[2].addrs()[0];
        let answer = self
            .client
            .http
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .expect("readyz");
        let status = answer.status();
        let body: serde_json::Value = answer.json().await.expect("json");
        (status, body["checks"]["kafka"].clone())
    }

    /// `read_model_url` of `None`: a SQLite file in a temporary directory.
    async fn start(store_url: &str, read_model_url: Option<&str>, brokers: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let read_model_url = read_model_url.map_or_else(
            || format!("sqlite://{}", dir.path().join("readmodel.sqlite").display()),
            str::to_owned,
        );
        let prefix = unique_name("e2e");
        let shutdown = CancellationToken::new();
        let kafka = [
            "--kafka-brokers",
            brokers,
            "--topic-prefix",
            &prefix,
            "--topic-partitions",
            "3",
            "--topic-replication",
            "1",
        ];
        let local = ["--listen", "127.0.0.1:0"];
        // Both APIs check tokens as in production: HS256 from a mounted secret file.
        let secret_file = dir.path().join("jwt-secret");
        std::fs::write(
            &secret_file,
            format!("{}\n", unique_name("secret-of-at-least-32-bytes")),
        )
        .expect("write the secret");
        let secret_path = secret_file.display().to_string();
        let auth = [
            "--jwt-issuer",
            "https://login.example.com",
            "--jwt-audience",
            "eventline",
            "--jwt-hs256-secret-file",
            &secret_path,
        ];
        let command = start(
            &[&["command-api", "--store", store_url][..], &auth, &local].concat(),
            &shutdown,
        )
        .await;
        let relay = start(
            &[
                &["relay", "--store", store_url, "--checkpoint-db", store_url][..],
                &kafka,
                &local,
            ]
            .concat(),
            &shutdown,
        )
        .await;
        let projector = start(
            &[
                &[
                    "project",
                    "--source",
                    "kafka",
                    "--read-model",
                    &read_model_url,
                ][..],
                &["--consumer-group-prefix", &prefix],
                &["--kafka-session-timeout-ms", "6000"],
                &kafka,
                &local,
            ]
            .concat(),
            &shutdown,
        )
        .await;
        let query = start(
            &[
                &["query-api", "--read-model", &read_model_url][..],
                &auth,
                &local,
            ]
            .concat(),
            &shutdown,
        )
        .await;
        let processor = start(
            &[
                &[
                    "processor",
                    "--store",
                    store_url,
                    "--checkpoint-db",
                    store_url,
                ][..],
                &local,
            ]
            .concat(),
            &shutdown,
        )
        .await;
        let token = eventline_app::auth::mint(&eventline_app::cli::TokenArgs {
            subject: "pipeline-test".into(),
            scopes: vec!["eventline:read".into(), "eventline:write".into()],
            ttl_seconds: 3_600,
            hs256_secret_file: Some(secret_file),
            data_dir: dir.path().to_path_buf(),
            issuer: "https://login.example.com".into(),
            audience: "eventline".into(),
        })
        .expect("mint a token");
        let client = Client::new(
            format!("http://{}", command.addrs()[0]),
            format!("http://{}", query.addrs()[0]),
        )
        .with_token(token);
        Self {
            client,
            store_url: store_url.to_owned(),
            read_model_url,
            shutdown,
            services: vec![command, relay, projector, query, processor],
            _dir: dir,
        }
    }

    /// Waits until the read model equals a fresh replay of the store, row by row.
    async fn assert_read_model_equals_replay(&self) {
        let store = open_store(
            "--store",
            &self.store_url.parse().expect("url"),
            2,
            DEFAULT_APPEND_BATCH,
        )
        .await
        .expect("store");
        let expected = replayed_rows(&store).await;
        let live = ReadModelDb::connect(&self.read_model_url)
            .await
            .expect("read model");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let rows = read_model_rows(&live).await.expect("live rows");
            if rows == expected {
                return;
            }
            if std::time::Instant::now() > deadline {
                assert_eq!(rows.len(), expected.len(), "rows in the live read model");
                for (got, want) in rows.iter().zip(&expected) {
                    assert_eq!(got, want, "the live read model differs from a replay");
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        for services in self.services {
            services.wait().await.expect("services stop cleanly");
        }
    }
}

/// Opens accounts and moves money over HTTP; returns each account with its final version
/// and balance.
async fn bank_traffic(client: &Client, accounts: usize) -> Vec<(String, u64, i64)> {
    let mut out = Vec::new();
    for n in 0..accounts {
        let id = client.open_account(&format!("holder {n}"), 100).await;
        for _ in 0..4 {
            let answer = client
                .post(&format!("/accounts/{id}/deposits"), json!({"amount": 10}))
                .await;
            assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        }
        let answer = client
            .post(
                &format!("/accounts/{id}/withdrawals"),
                json!({"amount": 30}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        out.push((id, 6, 110));
    }
    out
}

async fn end_to_end(store_url: &str, read_model_url: Option<&str>) {
    let pipeline = Pipeline::start(store_url, read_model_url, &kafka_brokers()).await;
    let anonymous = Client {
        token: None,
        ..pipeline.client.clone()
    };
    let refused = anonymous
        .post("/accounts", json!({"holder": "nobody"}))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "{:?}",
        refused.body
    );
    let accounts = bank_traffic(&pipeline.client, 5).await;
    // An order goes through the processor (a process of its own) and Kafka to the read model.
    let order = pipeline
        .client
        .post(
            "/orders",
            json!({"customer": "ada", "lines": [{"sku": "book", "quantity": 2, "unit_price": 1500}]}),
        )
        .await;
    assert_eq!(order.status, StatusCode::CREATED, "{:?}", order.body);
    let order_id = order.body["id"].as_str().expect("id").to_owned();
    support::eventually(
        "the order processed in the read model",
        Duration::from_secs(60),
        || async {
            let answer = pipeline.client.get(&format!("/orders/{order_id}")).await;
            (answer.body["status"] == "processed").then_some(())
        },
    )
    .await;
    for (id, version, balance) in &accounts {
        let account = account_at_version(&pipeline.client, id, *version).await;
        assert_eq!(account["balance"], *balance);
        let history = pipeline
            .client
            .get(&format!("/accounts/{id}/history"))
            .await;
        assert_eq!(history.status, StatusCode::OK);
    }
    pipeline.assert_read_model_equals_replay().await;
    assert_eq!(
        pipeline.projector_readiness().await,
        (StatusCode::OK, json!("ok"))
    );
    // Every event records who caused it: the token's subject, or the processor.
    let store = open_store(
        "--store",
        &store_url.parse().expect("url"),
        2,
        DEFAULT_APPEND_BATCH,
    )
    .await
    .expect("store");
    let events = eventline_test_support::events_once_visible(store.as_ref(), 5 * 6 + 2).await;
    assert_eq!(events.len(), 5 * 6 + 2);
    for event in &events {
        let expected = match event.event_type.as_str() {
            "OrderProcessed" => "system:order-processor",
            _ => "pipeline-test",
        };
        assert_eq!(event.metadata.user.as_deref(), Some(expected), "{event:?}");
    }
    pipeline.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_through_kafka_into_postgres() {
    let store = TestDatabase::postgres().await;
    let read_model = TestDatabase::postgres().await;
    end_to_end(&store.url, Some(&read_model.url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_through_kafka_into_mariadb() {
    let store = TestDatabase::postgres().await;
    let read_model = TestDatabase::mysql().await;
    end_to_end(&store.url, Some(&read_model.url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_through_kafka_into_sqlite() {
    let store = TestDatabase::postgres().await;
    end_to_end(&store.url, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_store_through_kafka_into_postgres() {
    let Some(server) =
        eventline_test_support::mongodb_uri("mongodb_store_through_kafka_into_postgres")
    else {
        return;
    };
    // A database of this run's own; it is left on the server (named e2e...).
    let store_url = eventline_test_support::database_url(&server, &unique_name("e2e"));
    let read_model = TestDatabase::postgres().await;
    end_to_end(&store_url, Some(&read_model.url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_broker_delays_events_but_loses_and_reorders_nothing() {
    let Some(broker) = PrivateBroker::start("a_paused_broker_delays_events").await else {
        return;
    };
    let store = TestDatabase::postgres().await;
    let pipeline = Pipeline::start(&store.url, None, &broker.brokers).await;
    let client = &pipeline.client;
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for n in 0..4 {
            ids.push(client.open_account(&format!("holder {n}"), 0).await);
        }
        ids
    };
    // Everything flows before the pause.
    account_at_version(client, &ids[3], 1).await;

    broker.pause();
    let mut version = 1;
    for round in 0..10 {
        for id in &ids {
            let answer = client
                .post(&format!("/accounts/{id}/deposits"), json!({"amount": 1}))
                .await;
            assert_eq!(
                answer.status,
                StatusCode::OK,
                "a command failed while Kafka was paused (round {round}): {:?}",
                answer.body
            );
        }
        version += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Nothing could reach the read model while the broker was frozen, and the projector said
    // it was not ready, naming Kafka.
    let stale = client.get(&format!("/accounts/{}", ids[0])).await;
    assert_eq!(stale.body["version"], 1, "{:?}", stale.body);
    let (status, kafka) = pipeline.projector_readiness().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{kafka}");
    assert_ne!(kafka, json!("ok"));
    broker.resume();

    for id in &ids {
        let account = account_at_version(client, id, version).await;
        assert_eq!(account["balance"], 10);
    }
    pipeline.assert_read_model_equals_replay().await;
    pipeline.stop().await;
}
