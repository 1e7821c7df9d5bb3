//! Test helpers: sample Projections and a mocked API server (controller-rs style) that asserts
//! the method, URI and body of every request, in order, and answers as an API server would.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
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

/// Test constructors of Projections (a trait: the type lives in `eventline-projection-api`).
pub trait TestProjection: Sized {
    /// `bank/accounts`, 2 replicas, PostgreSQL target, as read from the API server (uid,
    /// generation 1), without status.
    fn test() -> Self;
    fn with_replicas(self, replicas: i32, generation: i64) -> Self;
    fn with_replay(self, request_id: &str, target: Option<Target>) -> Self;
    fn with_status(self, status: ProjectionStatus) -> Self;
    fn deleted(self) -> Self;
}

impl TestProjection for Projection {
    fn test() -> Self {
        let mut p = Projection::new(
            NAME,
            ProjectionSpec {
                projection: "accounts".into(),
                image: "registry.example/eventline:1.0.0".into(),
                image_pull_policy: ImagePullPolicy::IfNotPresent,
                replicas: 2,
                image_pull_secrets: Vec::new(),
                env: Vec::new(),
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
                        topic_partitions: None,
                        topic_replication: None,
                    },
                },
                target: postgres_target(),
                replay: None,
                replay_history_limit: 3,
            },
        );
        let meta = p.meta_mut();
        meta.namespace = Some(NS.into());
        meta.uid = Some(UID.into());
        meta.generation = Some(1);
        p
    }

    fn with_replicas(mut self, replicas: i32, generation: i64) -> Self {
        self.spec.replicas = replicas;
        self.metadata.generation = Some(generation);
        self
    }

    fn with_replay(mut self, request_id: &str, target: Option<Target>) -> Self {
        self.spec.replay = Some(ReplayRequest {
            request_id: request_id.into(),
            target,
            strategy: ReplayStrategy::BlueGreen,
            active_deadline_seconds: 6 * 3600,
        });
        self
    }

    fn with_status(mut self, status: ProjectionStatus) -> Self {
        self.status = Some(status);
        self
    }

    fn deleted(mut self) -> Self {
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

    /// Expects a server-side apply (forced, our field manager) at `path`, applied to `live` as
    /// the API server would (defaults, ownership, validation; see [`LiveObjects`]); asserts the
    /// body equals `expected` when given; the stored object, passed through `answer`, is the
    /// response. A refused apply is answered with 422.
    pub fn apply_live(
        path: &str,
        live: &LiveObjects,
        expected: Option<Value>,
        answer: impl FnOnce(Value) -> Value + Send + 'static,
    ) -> Self {
        let uri = format!("{path}?&force=true&fieldManager=eventline-operator");
        let (path, live) = (path.to_owned(), live.clone());
        Self::new(Method::PATCH, uri, move |body| {
            if let Some(expected) = expected {
                assert_eq!(body, &expected, "server-side apply body for {path}");
            }
            match live.apply(&path, body) {
                Ok(object) => ok(&answer(object)),
                Err(message) => invalid(&message),
            }
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

/// The API server's limits on the objects the operator sends, enforced on every request body the
/// verifier sees (a refused request is answered with 422 Invalid, as the API server would):
/// - an Event's `note` is at most 1024 bytes (events.k8s.io/v1 validation);
/// - an object's `metadata.name` is at most 63 characters (the rule for Jobs, whose name becomes
///   a pod label value; stricter than the API server for the other kinds the operator names,
///   whose limit is 253) — Events are exempt, their names are generated;
/// - every label value (`metadata.labels`, a pod template's labels, a selector's `matchLabels`)
///   is at most 63 characters.
pub fn api_server_rules(uri: &str, body: &Value) -> Option<String> {
    if uri.starts_with("/apis/events.k8s.io/") {
        if let Some(note) = body["note"].as_str()
            && note.len() > 1024
        {
            return Some(format!(
                "note: Too long: may not be more than 1024 bytes (got {})",
                note.len()
            ));
        }
        return None;
    }
    if let Some(name) = body["metadata"]["name"].as_str()
        && name.chars().count() > 63
    {
        return Some(format!(
            "metadata.name: Invalid value: {name:?}: must be no more than 63 characters"
        ));
    }
    for (path, labels) in [
        ("metadata.labels", &body["metadata"]["labels"]),
        (
            "spec.template.metadata.labels",
            &body["spec"]["template"]["metadata"]["labels"],
        ),
        (
            "spec.selector.matchLabels",
            &body["spec"]["selector"]["matchLabels"],
        ),
    ] {
        for (key, value) in labels.as_object().into_iter().flatten() {
            if let Some(value) = value.as_str()
                && value.chars().count() > 63
            {
                return Some(format!(
                    "{path}: Invalid value: {value:?}: a label value ({key}) must be no more than 63 characters"
                ));
            }
        }
    }
    None
}

/// An `Invalid` (422) answer, as the API server gives for a failed validation.
pub fn invalid(message: &str) -> Response<Body> {
    respond(
        StatusCode::UNPROCESSABLE_ENTITY,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": "Invalid", "code": 422
        }),
    )
}

/// Objects as a server-side apply leaves them, for scenarios that span reconciliations: what the
/// API server defaults is owned by no field manager and stays when a later apply does not send
/// it; a field the operator's manager applied before and no longer sends is removed.
///
/// Modelled: one field manager ([`crate::FIELD_MANAGER`]); maps merge key by key, lists and
/// scalars are replaced whole; a Deployment's defaulted `spec.strategy` (`RollingUpdate` with
/// `rollingUpdate` 25 %/25 %, added when `type` is missing or `RollingUpdate`) and the
/// validation that `Recreate` has no `rollingUpdate`.
#[derive(Clone, Debug, Default)]
pub struct LiveObjects(Arc<Mutex<HashMap<String, LiveObject>>>);

#[derive(Clone, Debug, Default)]
struct LiveObject {
    object: Value,
    /// Field paths (maps and leaves) the operator's manager applied last time.
    owned: BTreeSet<Vec<String>>,
}

fn field_paths(value: &Value, prefix: &mut Vec<String>, out: &mut BTreeSet<Vec<String>>) {
    if let Some(map) = value.as_object() {
        for (key, child) in map {
            prefix.push(key.clone());
            out.insert(prefix.clone());
            field_paths(child, prefix, out);
            prefix.pop();
        }
    }
}

fn remove_path(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = value;
    for key in parents {
        match node.get_mut(key) {
            Some(child) => node = child,
            None => return,
        }
    }
    if let Some(map) = node.as_object_mut() {
        map.remove(last);
    }
}

fn merge(live: &mut Value, applied: &Value) {
    match (live.as_object_mut(), applied.as_object()) {
        (Some(live), Some(applied)) => {
            for (key, value) in applied {
                merge(live.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        _ => *live = applied.clone(),
    }
}

fn default_deployment(object: &mut Value) {
    let spec = &mut object["spec"];
    if !spec.is_object() {
        return;
    }
    if spec["strategy"]["type"].is_null() {
        spec["strategy"]["type"] = json!("RollingUpdate");
    }
    if spec["strategy"]["type"] == "RollingUpdate" && spec["strategy"]["rollingUpdate"].is_null() {
        spec["strategy"]["rollingUpdate"] = json!({"maxSurge": "25%", "maxUnavailable": "25%"});
    }
}

fn validate_deployment(object: &Value) -> Result<(), String> {
    let strategy = &object["spec"]["strategy"];
    if strategy["type"] == "Recreate" && !strategy["rollingUpdate"].is_null() {
        return Err(format!(
            "Deployment.apps {:?} is invalid: spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'",
            object["metadata"]["name"].as_str().unwrap_or_default()
        ));
    }
    Ok(())
}

impl LiveObjects {
    /// Applies `body` to the object at `path` as the API server would; `Err` is the 422 message.
    pub fn apply(&self, path: &str, body: &Value) -> Result<Value, String> {
        let mut objects = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let live = objects.entry(path.to_owned()).or_default();
        let mut applied = BTreeSet::new();
        field_paths(body, &mut Vec::new(), &mut applied);
        let mut next = live.object.clone();
        if next.is_null() {
            next = json!({});
        }
        for gone in live.owned.difference(&applied) {
            remove_path(&mut next, gone);
        }
        merge(&mut next, body);
        if body["kind"] == "Deployment" {
            default_deployment(&mut next);
            validate_deployment(&next)?;
        }
        live.object = next.clone();
        live.owned = applied;
        Ok(next)
    }
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
                let response = match api_server_rules(&exchange.uri, &body) {
                    Some(refusal) => invalid(&refusal),
                    None => (exchange.answer)(&body),
                };
                send.send_response(response);
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
