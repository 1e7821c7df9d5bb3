//! Reconciler scenarios against a mocked API server: every request's method, URI and body is
//! asserted, in order, and a request the scenario does not expect fails the reconciliation.
//! The replay scenarios are in `replay.rs`.

mod replay;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::*;
use crate::crd::ProjectionPhase;
use crate::fixtures::*;
use crate::resources::{
    projector_deployment, replay_job, replay_role, replay_role_binding, replay_service_account,
};

const SA: &str = "/api/v1/namespaces/bank/serviceaccounts/accounts-replay";
const ROLE: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/bank/roles/accounts-replay";
const BINDING: &str =
    "/apis/rbac.authorization.k8s.io/v1/namespaces/bank/rolebindings/accounts-replay";
const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/bank/deployments/accounts-projector";
const STATUS: &str = "/apis/eventline.io/v1alpha1/namespaces/bank/projections/accounts/status";
const JOBS: &str = "/apis/batch/v1/namespaces/bank/jobs";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/bank/events?";
/// `accounts-replay-` + hash8("r1").
const JOB_R1: &str = "accounts-replay-82f3e9c6";
const EARLIER: &str = "2026-01-01T00:00:00Z";

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("json")
}

fn rbac(p: &Projection) -> Vec<Exchange> {
    vec![
        Exchange::apply_echo(SA, to_json(&replay_service_account(p).expect("sa"))),
        Exchange::apply_echo(ROLE, to_json(&replay_role(p).expect("role"))),
        Exchange::apply_echo(BINDING, to_json(&replay_role_binding(p).expect("binding"))),
    ]
}

/// The Deployment apply, answered with `available` of `spec.replicas` pods available.
fn deployment(p: &Projection, target: &Target, available: i32) -> Exchange {
    deployment_on(&LiveObjects::default(), p, target, available)
}

/// The Deployment apply on `live` (kept across reconciliations), answered with `available` of
/// `spec.replicas` pods available.
fn deployment_on(live: &LiveObjects, p: &Projection, target: &Target, available: i32) -> Exchange {
    let expected = to_json(&projector_deployment(p, target).expect("deployment"));
    let replicas = p.spec.replicas;
    Exchange::apply_live(DEPLOYMENT, live, Some(expected), move |mut object| {
        object["metadata"]["generation"] = json!(1);
        object["status"] = json!({
            "observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
            "availableReplicas": available, "readyReplicas": available,
        });
        object
    })
}

fn status(p: &Projection, expected: Value) -> Exchange {
    let body =
        json!({"apiVersion": "eventline.io/v1alpha1", "kind": "Projection", "status": expected});
    let mut response = to_json(p);
    response["status"] = expected;
    Exchange::apply(STATUS, body, response)
}

fn get_job_missing() -> Exchange {
    Exchange::new(Method::GET, format!("{JOBS}/{JOB_R1}"), |body| {
        assert_eq!(body, &Value::Null);
        not_found("jobs", JOB_R1)
    })
}

fn get_job(job: Job) -> Exchange {
    Exchange::new(Method::GET, format!("{JOBS}/{JOB_R1}"), move |_| {
        ok(&to_json(&job))
    })
}

const REPLAY_JOBS_SELECTOR: &str = "labelSelector=app.kubernetes.io%2Fname%3Deventline-replay%2Ceventline.io%2Fprojection%3Daccounts";

/// The list of the Projection's replay Jobs the operator reads when a replay has finished
/// (to delete finished ones beyond `spec.replayHistoryLimit`), answered with `jobs`.
fn list_replay_jobs(jobs: Vec<Job>) -> Exchange {
    Exchange::new(
        Method::GET,
        format!("{JOBS}?&{REPLAY_JOBS_SELECTOR}"),
        move |_| {
            ok(&json!({"apiVersion": "batch/v1", "kind": "JobList", "metadata": {}, "items": jobs}))
        },
    )
}

fn event(type_: &'static str, reason: &'static str, note: &'static str) -> Exchange {
    Exchange::new(Method::POST, EVENTS, move |body| {
        assert_eq!(body["type"], type_, "event type in {body}");
        assert_eq!(body["reason"], reason, "event reason in {body}");
        let text = body["note"].as_str().expect("note");
        assert!(
            text.contains(note),
            "event note {text:?} should contain {note:?}"
        );
        assert_eq!(body["regarding"]["kind"], "Projection");
        assert_eq!(body["regarding"]["name"], NAME);
        assert_eq!(body["reportingController"], "eventline-operator");
        respond(StatusCode::CREATED, body)
    })
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    at: &str,
    generation: i64,
) -> Value {
    json!({
        "type": type_, "status": if status { "True" } else { "False" }, "reason": reason,
        "message": message, "lastTransitionTime": at, "observedGeneration": generation,
    })
}

fn pg() -> Value {
    json!({"type": "postgres", "urlSecretRef": {"name": "accounts-db", "key": "url"}})
}

fn my() -> Value {
    json!({"type": "mysql", "urlSecretRef": {"name": "accounts-mysql", "key": "url"}})
}

async fn reconcile_ok(p: Projection, exchanges: Vec<Exchange>) -> (Action, Vec<Value>) {
    let (ctx, server) = Context::test();
    let server = server.run(exchanges);
    let action = reconcile(Arc::new(p), ctx).await.expect("reconcile");
    (action, finished(server).await)
}

fn steady_status(generation: i64) -> ProjectionStatus {
    serde_json::from_value(json!({
        "observedGeneration": generation,
        "phase": "Running",
        "conditions": [
            condition("Ready", true, "ProjectorAvailable", "2/2 projector pods available", EARLIER, generation),
            condition("Replaying", false, "NoReplay", "no replay requested", EARLIER, generation),
            condition("Degraded", false, "AsExpected", "nothing is degraded", EARLIER, generation),
        ],
        "activeTarget": pg(),
    }))
    .expect("status")
}

#[tokio::test]
async fn new_projection_applies_rbac_and_deployment_then_status() {
    let p = Projection::test();
    let mut exchanges = rbac(&p);
    exchanges.push(deployment(&p, &postgres_target(), 0));
    exchanges.push(status(
        &p,
        json!({
            "observedGeneration": 1,
            "phase": "Pending",
            "conditions": [
                condition("Ready", false, "ProjectorUnavailable", "0/2 projector pods available", NOW, 1),
                condition("Replaying", false, "NoReplay", "no replay requested", NOW, 1),
                condition("Degraded", false, "AsExpected", "nothing is degraded", NOW, 1),
            ],
            "activeTarget": pg(),
        }),
    ));
    let (action, _) = reconcile_ok(p, exchanges).await;
    assert_eq!(action, Action::requeue(STEADY_REQUEUE));
}

#[tokio::test]
async fn reconciling_twice_sends_the_same_requests_and_keeps_transition_times() {
    let p = Projection::test().with_status(steady_status(1));
    let scenario = || {
        let mut e = rbac(&p);
        e.push(deployment(&p, &postgres_target(), 2));
        e.push(status(&p, to_json(&steady_status(1))));
        e
    };
    let (_, first) = reconcile_ok(p.clone(), scenario()).await;
    let (_, second) = reconcile_ok(p.clone(), scenario()).await;
    assert_eq!(
        first, second,
        "a second reconciliation sends exactly the same applies"
    );
    assert_eq!(first.len(), 5, "no Job, no Event");
}

#[tokio::test]
async fn replica_change_applies_the_new_count_and_reports_partial_availability() {
    let p = Projection::test()
        .with_status(steady_status(1))
        .with_replicas(3, 2);
    let mut exchanges = rbac(&p);
    exchanges.push(deployment(&p, &postgres_target(), 2));
    exchanges.push(status(
        &p,
        json!({
            "observedGeneration": 2,
            "phase": "Degraded",
            "conditions": [
                condition("Ready", false, "ProjectorUnavailable", "2/3 projector pods available", NOW, 2),
                condition("Replaying", false, "NoReplay", "no replay requested", EARLIER, 2),
                condition("Degraded", true, "ProjectorPartiallyAvailable", "2/3 projector pods available", NOW, 2),
            ],
            "activeTarget": pg(),
        }),
    ));
    let (_, bodies) = reconcile_ok(p, exchanges).await;
    assert_eq!(bodies[3]["spec"]["replicas"], 3);
}

#[tokio::test]
async fn deletion_sends_nothing_and_needs_no_finalizer() {
    let p = Projection::test().with_status(steady_status(1)).deleted();
    assert!(
        p.metadata.finalizers.is_none(),
        "the operator never adds a finalizer"
    );
    let (action, bodies) = reconcile_ok(p, vec![]).await;
    assert_eq!(action, Action::await_change());
    assert!(bodies.is_empty());
}

#[tokio::test]
async fn api_errors_name_the_object_count_in_metrics_and_back_off() {
    let p = Arc::new(Projection::test());
    let (ctx, server) = Context::test();
    let server = server.run(vec![Exchange::new(
        Method::PATCH,
        format!("{SA}?&force=true&fieldManager=eventline-operator"),
        |_| api_error(500, "InternalError"),
    )]);
    let error = reconcile(p.clone(), ctx.clone())
        .await
        .expect_err("the apply failed");
    finished(server).await;
    assert!(
        error
            .to_string()
            .starts_with("apply ServiceAccount bank/accounts-replay: "),
        "{error}"
    );
    let recorder = crate::metrics::prometheus_recorder().expect("recorder");
    let handle = recorder.handle();
    let actions = metrics::with_local_recorder(&recorder, || {
        (1..=8)
            .map(|_| error_policy(p.clone(), &error, ctx.clone()))
            .collect::<Vec<_>>()
    });
    let delays = [5, 10, 20, 40, 80, 160, 300, 300];
    let expected: Vec<Action> = delays
        .iter()
        .map(|s| Action::requeue(Duration::from_secs(*s)))
        .collect();
    assert_eq!(
        actions, expected,
        "exponential backoff, capped at 5 minutes"
    );
    let rendered = handle.render();
    assert!(
        rendered.contains("eventline_operator_reconcile_errors_total{error=\"kube_apply\"} 8"),
        "{rendered}"
    );
}

/// A reconciliation that fails says so where users and GitOps tools look: a `Reconciled`
/// condition (False, the error as its message) applied with everything else the operator owns
/// unchanged, and a Warning Event. The next successful reconciliation drops the condition.
#[tokio::test]
async fn a_failed_reconciliation_is_recorded_in_a_condition_and_a_warning_event() {
    let p = Projection::test()
        .with_status(steady_status(1))
        .with_replicas(3, 2);
    let mut exchanges = rbac(&p);
    exchanges.push(Exchange::new(
        Method::PATCH,
        format!("{DEPLOYMENT}?&force=true&fieldManager=eventline-operator"),
        |_| api_error(403, "Forbidden"),
    ));
    let mut expected = to_json(&steady_status(1));
    let message = "apply Deployment bank/accounts-projector: 403 Forbidden: Forbidden";
    expected["conditions"]
        .as_array_mut()
        .expect("conditions")
        .push(condition(
            "Reconciled",
            false,
            "ReconcileFailed",
            message,
            NOW,
            2,
        ));
    exchanges.push(status(&p, expected));
    exchanges.push(event("Warning", "ReconcileFailed", message));
    let (ctx, server) = Context::test();
    let server = server.run(exchanges);
    let error = reconcile(Arc::new(p), ctx).await.expect_err("forbidden");
    finished(server).await;
    assert_eq!(error.metric_label(), "kube_apply");
}

#[tokio::test]
async fn a_successful_reconciliation_drops_the_reconcile_error() {
    let mut previous = steady_status(1);
    previous.conditions.push(
        serde_json::from_value(condition(
            "Reconciled",
            false,
            "ReconcileFailed",
            "apply Deployment bank/accounts-projector: Forbidden",
            EARLIER,
            1,
        ))
        .expect("condition"),
    );
    let p = Projection::test().with_status(previous);
    let mut exchanges = rbac(&p);
    exchanges.push(deployment(&p, &postgres_target(), 2));
    exchanges.push(status(&p, to_json(&steady_status(1))));
    reconcile_ok(p, exchanges).await;
}

#[tokio::test]
async fn a_projection_without_uid_is_refused_before_any_request() {
    let mut p = Projection::test();
    p.metadata.uid = None;
    let (ctx, server) = Context::test();
    let server = server.run(vec![]);
    let error = reconcile(Arc::new(p), ctx).await.expect_err("no uid");
    finished(server).await;
    assert!(matches!(error, Error::MissingUid { .. }), "{error}");
}

#[test]
fn retry_delay_doubles_and_caps() {
    assert_eq!(retry_delay(1), Duration::from_secs(5));
    assert_eq!(retry_delay(2), Duration::from_secs(10));
    assert_eq!(retry_delay(7), STEADY_REQUEUE);
    assert_eq!(retry_delay(u32::MAX), STEADY_REQUEUE);
}

/// Projector pods publish their lag every 15 s per replica, replays their progress every second:
/// status-only changes of the Projection start no reconciliation; a new Projection and every
/// spec change (a new generation) do.
#[tokio::test]
async fn status_only_changes_of_a_projection_start_no_reconciliation() {
    let created = Projection::test();
    let mut lag_published = created.clone();
    lag_published.status = Some(ProjectionStatus {
        lag_events: Some(42),
        dead_letters: Some(0),
        ..steady_status(1)
    });
    let mut lag_again = lag_published.clone();
    if let Some(s) = lag_again.status.as_mut() {
        s.lag_events = Some(7);
    }
    let scaled = lag_again.clone().with_replicas(3, 2);
    let changes = futures::stream::iter(
        [created, lag_published, lag_again, scaled].map(Ok::<_, kube::runtime::watcher::Error>),
    );
    let passed: Vec<Option<i64>> = triggers(changes)
        .map(|p| p.expect("no error").metadata.generation)
        .collect()
        .await;
    assert_eq!(passed, [Some(1), Some(2)]);
}

/// A failing watch stops the operator from seeing changes: that is a warning, not a debug line.
#[test]
fn watch_errors_are_warnings_and_expected_misses_are_not() {
    use kube::runtime::controller::Error as ControllerError;
    use kube::runtime::reflector::ObjectRef;
    let watch_failed: ControllerError<Error, kube::runtime::watcher::Error> =
        ControllerError::QueueError(kube::runtime::watcher::Error::NoResourceVersion);
    assert!(controller_error_is_loud(&watch_failed));
    let gone: ControllerError<Error, kube::runtime::watcher::Error> =
        ControllerError::ObjectNotFound(Box::new(
            ObjectRef::<Projection>::new("accounts").within(NS).erase(),
        ));
    assert!(!controller_error_is_loud(&gone));
}
