//! A command's trace follows its events: the command API, the relay, the Kafka projector and
//! the order processor, each its own `eventline` process exporting over OTLP/HTTP to a receiver
//! in this test, send spans in the trace of the `traceparent` the client sent with the command.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use eventline_test_support::{TestDatabase, kafka_brokers, unique_name};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use reqwest::StatusCode;
use serde_json::json;
use tokio::process::{Child, Command};

/// The client's trace and its span (the command's parent).
const TRACE_ID: &str = "5b8efff798038103d269b633813fc60c";
const PARENT_SPAN_ID: &str = "eee19b7ec3c1b174";

/// One span as the receiver got it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: String,
    parent_span_id: String,
    linked_trace_ids: Vec<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An OTLP/HTTP (protobuf) receiver on loopback: its endpoint and the spans it got so far.
async fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let store = Arc::clone(&spans);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let store = Arc::clone(&store);
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("an OTLP request");
                let mut got = store.lock().expect("lock");
                for resource_spans in request.resource_spans {
                    let service = resource_spans
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|kv| kv.key == "service.name")
                        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                        .map(|v| match v {
                            Value::StringValue(s) => s.clone(),
                            other => format!("{other:?}"),
                        })
                        .unwrap_or_default();
                    for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                        got.push(Received {
                            service: service.clone(),
                            name: span.name,
                            trace_id: hex(&span.trace_id),
                            parent_span_id: hex(&span.parent_span_id),
                            linked_trace_ids: span.links.iter().map(|l| hex(&l.trace_id)).collect(),
                        });
                    }
                }
                ([("content-type", "application/x-protobuf")], Vec::new())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), spans)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Starts `eventline ARGS --listen ADDR` exporting traces to `endpoint`, and waits for its
/// `/healthz`.
async fn service(args: &[&str], endpoint: &str, log: &Path) -> (Child, SocketAddr) {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventline"))
        .args(args)
        .args(["--listen", &addr.to_string()])
        .env("EVENTLINE_LOG", "warn")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env_remove("OTEL_SERVICE_NAME")
        .env_remove("OTEL_RESOURCE_ATTRIBUTES")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("OTEL_TRACES_EXPORTER")
        .env_remove("OTEL_TRACES_SAMPLER")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn eventline {args:?}: {e}"));
    let url = format!("http://{addr}/healthz");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(answer) = reqwest::get(&url).await
            && answer.status() == StatusCode::OK
        {
            return (child, addr);
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "eventline {args:?} exited at start ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "eventline {args:?} did not answer on {url} within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commands_trace_reaches_the_relay_the_kafka_projector_and_the_processor() {
    let store_db = TestDatabase::postgres().await;
    let read_model_db = TestDatabase::postgres().await;
    let (endpoint, spans) = receiver().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let prefix = unique_name("traces");
    let brokers = kafka_brokers();
    let kafka = [
        "--kafka-brokers",
        &brokers,
        "--topic-prefix",
        &prefix,
        "--topic-partitions",
        "1",
        "--topic-replication",
        "1",
    ];
    let store = store_db.url.as_str();
    let (_command, command_addr) = service(
        &["command-api", "--store", store, "--auth", "none"],
        &endpoint,
        &dir.path().join("command-api.log"),
    )
    .await;
    let (_relay, _) = service(
        &[
            &["relay", "--store", store, "--checkpoint-db", store][..],
            &kafka,
        ]
        .concat(),
        &endpoint,
        &dir.path().join("relay.log"),
    )
    .await;
    let (_projector, _) = service(
        &[
            &[
                "project",
                "--source",
                "kafka",
                "--projections",
                "shop-orders",
            ][..],
            &["--kafka-session-timeout-ms", "6000"],
            &["--read-model", &read_model_db.url],
            &["--consumer-group-prefix", &prefix],
            &kafka,
        ]
        .concat(),
        &endpoint,
        &dir.path().join("project.log"),
    )
    .await;
    let (_processor, _) = service(
        &["processor", "--store", store, "--checkpoint-db", store],
        &endpoint,
        &dir.path().join("processor.log"),
    )
    .await;

    let answer = reqwest::Client::new()
        .post(format!("http://{command_addr}/orders"))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01"))
        .json(&json!({
            "customer": "Ada",
            "lines": [{"sku": "tea", "quantity": 2, "unit_price": 350}],
        }))
        .send()
        .await
        .expect("POST /orders");
    assert_eq!(answer.status(), StatusCode::CREATED);

    // Every service exports its spans within 100 ms of their end (OTEL_BSP_SCHEDULE_DELAY).
    let expected = [
        ("eventline-command-api", "http"),
        ("eventline-relay", "relay.publish"),
        ("eventline-project", "projector.event"),
        ("eventline-processor", "processor.react"),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    let in_trace = loop {
        let in_trace: Vec<Received> = spans
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| s.trace_id == TRACE_ID)
            .cloned()
            .collect();
        let complete = expected.iter().all(|(service, name)| {
            in_trace
                .iter()
                .any(|s| s.service == *service && s.name == *name)
        });
        if complete {
            break in_trace;
        }
        assert!(
            Instant::now() < deadline,
            "after 60 s, the spans in trace {TRACE_ID} are {in_trace:#?}; expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // The command's request span is the client's span's child.
    assert!(
        in_trace
            .iter()
            .any(|s| s.name == "http" && s.parent_span_id == PARENT_SPAN_ID),
        "{in_trace:#?}"
    );
    // The projector's batch, in a trace of its own, links to the command's.
    let all = spans.lock().expect("lock").clone();
    assert!(
        all.iter().any(|s| s.service == "eventline-project"
            && s.name == "projector.batch"
            && s.linked_trace_ids.iter().any(|t| t == TRACE_ID)),
        "{all:#?}"
    );
}
