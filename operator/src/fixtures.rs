//! Test helpers: sample Projections and a mocked API server (controller-rs style) that asserts
//! the method, URI and body of every request, in order, and answers as an API server would.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::client::Body;
use kube::runtime::events::Reporter;
use kube::{Client, Resource};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tower_test::mock::{self, Handle};

use crate::crd::{
    ImagePullPolicy, KafkaSource, Projection, ProjectionSpec, ProjectionStatus, ReplayRequest,
    ReplayStrategy, SecretKeyRef, Source, StoreSource, Target, TargetType,
};
use crate::reconcile::Context;

pub const NS: &str = "bank";
pub const NAME: &str = "accounts";
pub const UID: &str = "0b6f4e8e-2c1a-4d8e-9a53-1f3c2b7d9e10";
/// The fixed clock of test contexts: 2026-01-02T03:04:05Z.
pub const NOW: &str = "2026-01-02T03:04:05Z";

pub fn now() -> Timestamp {
    NOW.parse().expect("valid timestamp")
}

pub fn postgres_target() -> Target {
    Target {
        type_: TargetType::Postgres,
        url_secret_ref: SecretKeyRef {
            name: "accounts-db".into(),
            key: "url".into(),
        },
    }
}

pub fn mysql_target() -> Target {
    Target {
        type_: TargetType::Mysql,
        url_secret_ref: SecretKeyRef {
            name: "accounts-mysql".into(),
            key: "url".into(),
        },
    }
}

impl Projection {
    /// `bank/accounts`, 2 replicas, PostgreSQL target, as read from the API server (uid,
    /// generation 1), without status.
    pub fn test() -> Self {
        let mut p = Projection::new(
            NAME,
            ProjectionSpec {
                projection: "accounts".into(),
                image: "registry.example/eventline:1.0.0".into(),
                image_pull_policy: ImagePullPolicy::IfNotPresent,
                replicas: 2,
                resources: None,
                source: Source {
                    store: StoreSource {
                        url_secret_ref: SecretKeyRef {
                            name: "eventline-store".into(),
                            key: "url".into(),
                        },
                    },
                    kafka: KafkaSource {
                        bootstrap_servers: "kafka-0.kafka:9092,kafka-1.kafka:9092".into(),
                        topic_prefix: "eventline".into(),
                    },
                },
                target: postgres_target(),
                replay: None,
            },
        );
        let meta = p.meta_mut();
        meta.namespace = Some(NS.into());
        meta.uid = Some(UID.into());
        meta.generation = Some(1);
        p
    }

    pub fn with_replicas(mut self, replicas: i32, generation: i64) -> Self {
        self.spec.replicas = replicas;
        self.metadata.generation = Some(generation);
        self
    }

    pub fn with_replay(mut self, request_id: &str, target: Option<Target>) -> Self {
        self.spec.replay = Some(ReplayRequest {
            request_id: request_id.into(),
            target,
            strategy: ReplayStrategy::BlueGreen,
        });
        self
    }

    pub fn with_status(mut self, status: ProjectionStatus) -> Self {
        self.status = Some(status);
        self
    }

    pub fn deleted(mut self) -> Self {
        self.metadata.deletion_timestamp = Some(Time(now()));
        self
    }
}

/// A Job as the API server would return it, with the given status.
pub fn job_with_status(job: &Job, status: JobStatus) -> Job {
    Job {
        status: Some(status),
        ..job.clone()
    }
}

pub fn job_condition(type_: &str, reason: &str, message: &str, at: &str) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_transition_time: Some(Time(at.parse().expect("valid timestamp"))),
        ..JobCondition::default()
    }
}

type Check = Box<dyn FnOnce(&Value) -> Response<Body> + Send>;

/// One request the reconciler must send, and how the mocked API server answers it.
pub struct Exchange {
    method: Method,
    uri: String,
    answer: Check,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.uri)
    }
}

impl Exchange {
    /// Expects `method uri`; `answer` asserts on the JSON body (Null when empty) and returns
    /// the response.
    pub fn new(
        method: Method,
        uri: impl Into<String>,
        answer: impl FnOnce(&Value) -> Response<Body> + Send + 'static,
    ) -> Self {
        Self {
            method,
            uri: uri.into(),
            answer: Box::new(answer),
        }
    }

    /// Expects a server-side apply (forced, our field manager) of exactly `expected` at `path`,
    /// answered with `response`.
    pub fn apply(path: &str, expected: Value, response: Value) -> Self {
        let uri = format!("{path}?&force=true&fieldManager=eventline-operator");
        let path = path.to_owned();
        Self::new(Method::PATCH, uri, move |body| {
            assert_eq!(body, &expected, "server-side apply body for {path}");
            ok(&response)
        })
    }

    /// Expects a server-side apply of `expected` and echoes the body back.
    pub fn apply_echo(path: &str, expected: Value) -> Self {
        Self::apply(path, expected.clone(), expected)
    }
}

pub fn ok(body: &Value) -> Response<Body> {
    respond(StatusCode::OK, body)
}

pub fn respond(code: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .body(Body::from(serde_json::to_vec(body).expect("json")))
        .expect("response")
}

pub fn not_found(kind: &str, name: &str) -> Response<Body> {
    respond(
        StatusCode::NOT_FOUND,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("{kind} \"{name}\" not found"), "reason": "NotFound",
            "details": {"name": name, "kind": kind}, "code": 404
        }),
    )
}

pub fn api_error(code: u16, reason: &str) -> Response<Body> {
    respond(
        StatusCode::from_u16(code).expect("status code"),
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": reason, "reason": reason, "code": code
        }),
    )
}

/// The mocked API server side of a test client.
pub struct ApiServerVerifier(Handle<Request<Body>, Response<Body>>);

impl std::fmt::Debug for ApiServerVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiServerVerifier")
    }
}

impl ApiServerVerifier {
    /// Serves `exchanges` in order, asserting each request; returns the request bodies. Any
    /// request after the last exchange fails in the client (the mock is gone), so a test whose
    /// reconciler sends more than expected fails too.
    pub fn run(self, exchanges: Vec<Exchange>) -> JoinHandle<Vec<Value>> {
        let mut handle = self.0;
        tokio::spawn(async move {
            let mut bodies = Vec::new();
            for (i, exchange) in exchanges.into_iter().enumerate() {
                let (request, send) = handle.next_request().await.unwrap_or_else(|| {
                    panic!(
                        "request {i} ({} {}) was not sent",
                        exchange.method, exchange.uri
                    )
                });
                assert_eq!(
                    (request.method(), request.uri().to_string()),
                    (&exchange.method, exchange.uri.clone()),
                    "request {i}"
                );
                let bytes = request
                    .into_body()
                    .collect_bytes()
                    .await
                    .expect("request body");
                let body: Value = if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes).expect("request body is JSON")
                };
                send.send_response((exchange.answer)(&body));
                bodies.push(body);
            }
            bodies
        })
    }
}

/// Waits for the scenario to finish (it panics on a wrong request) and returns the bodies.
pub async fn finished(server: JoinHandle<Vec<Value>>) -> Vec<Value> {
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("scenario finished in time")
        .expect("scenario assertions held")
}

impl Context {
    /// A context on a mocked API server, with the fixed clock [`NOW`].
    pub fn test() -> (Arc<Self>, ApiServerVerifier) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, NS);
        let mut ctx = Context::new(
            client,
            Reporter {
                controller: "eventline-operator".into(),
                instance: Some("eventline-operator-0".into()),
            },
        );
        ctx.clock = now;
        (Arc::new(ctx), ApiServerVerifier(handle))
    }
}
