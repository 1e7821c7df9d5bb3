use http::{Method, StatusCode};
use serde_json::json;

use super::*;
use crate::crd::{Projection, ReplayPhase};
use crate::fixtures::{Exchange, NS, TestProjection, api_error, finished, ok, respond};
use crate::reconcile::Context;

const URI: &str = "/apis/eventline.io/v1alpha1/namespaces/bank/projections/accounts/status?&fieldManager=eventline-replay";

fn report() -> ReplayProgressReport {
    ReplayProgressReport {
        phase: ReplayPhase::Running,
        events_applied: 4200,
        events_total: Some(10_000),
        percent: Some(42.0),
        events_per_second: Some(1500.5),
        eta_seconds: Some(4),
        error: None,
        started_at: Some("2026-01-02T03:04:05Z".parse().expect("time")),
        finished_at: None,
    }
}

#[tokio::test]
async fn publishes_progress_by_server_side_apply_of_status_replay_without_force() {
    let (ctx, server) = Context::test();
    let server = server.run(vec![Exchange::new(Method::PATCH, URI, |body| {
        assert_eq!(
            body,
            &json!({
                "apiVersion": "eventline.io/v1alpha1",
                "kind": "Projection",
                "status": {"replay": {
                    "requestId": "r1",
                    "eventsApplied": 4200,
                    "eventsTotal": 10000,
                    "percent": 42.0,
                    "eventsPerSecond": 1500.5,
                    "etaSeconds": 4,
                    "reported": {"phase": "Running", "startedAt": "2026-01-02T03:04:05Z"},
                }},
            })
        );
        ok(&serde_json::to_value(Projection::test()).expect("json"))
    })]);
    publish_replay_status(&ctx.client, NS, "accounts", "r1", &report())
        .await
        .expect("published");
    finished(server).await;
}

const GET_STATUS: &str = "/apis/eventline.io/v1alpha1/namespaces/bank/projections/accounts/status";

/// The Projection as a GET of its status returns it: `spec.replay.requestId` is what is asked
/// for now, `status.replay.requestId` what the operator recorded last.
fn projection_with(requested: &str, recorded: &str) -> serde_json::Value {
    let mut p =
        serde_json::to_value(Projection::test().with_replay(requested, None)).expect("json");
    p["status"] = json!({"replay": {"requestId": recorded, "phase": "Succeeded"}});
    p
}

/// 1. The operator creates the Job of request r1 and then fails to write its status (an API
///    error, retried with backoff): `status.replay.requestId` is still r0, owned by the operator.
/// 2. The replay's first report applies r1 without force: the API server answers 409.
/// 3. That is not a supersession: r1 is still the request. The reporter must not stop.
#[tokio::test]
async fn a_conflict_before_the_operator_recorded_the_request_is_transient() {
    let (ctx, server) = Context::test();
    let server = server.run(vec![
        Exchange::new(Method::PATCH, URI, |_| api_error(409, "Conflict")),
        Exchange::new(Method::GET, GET_STATUS, |_| {
            ok(&projection_with("r1", "r0"))
        }),
    ]);
    let error = publish_replay_status(&ctx.client, NS, "accounts", "r1", &report())
        .await
        .expect_err("conflict");
    finished(server).await;
    assert!(
        matches!(error, eventline_projection_api::ReportError::ReplayNotRecordedYet { ref request_id, .. } if request_id == "r1"),
        "{error}"
    );
}

#[tokio::test]
async fn a_conflict_means_the_projection_moved_to_another_request() {
    let (ctx, server) = Context::test();
    let server = server.run(vec![
        Exchange::new(Method::PATCH, URI, |_| api_error(409, "Conflict")),
        Exchange::new(Method::GET, GET_STATUS, |_| {
            ok(&projection_with("r1", "r1"))
        }),
    ]);
    let error = publish_replay_status(&ctx.client, NS, "accounts", "r0", &report())
        .await
        .expect_err("fenced");
    finished(server).await;
    assert!(
        matches!(error, eventline_projection_api::ReportError::ReplaySuperseded { ref request_id, .. } if request_id == "r0"),
        "{error}"
    );
}

#[tokio::test]
async fn other_api_errors_name_the_projection() {
    let (ctx, server) = Context::test();
    let server = server.run(vec![Exchange::new(Method::PATCH, URI, |_| {
        respond(
            StatusCode::FORBIDDEN,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "forbidden", "reason": "Forbidden", "code": 403}),
        )
    })]);
    let error = publish_replay_status(&ctx.client, NS, "accounts", "r1", &report())
        .await
        .expect_err("forbidden");
    finished(server).await;
    assert!(
        error
            .to_string()
            .starts_with("publish replay progress to Projection bank/accounts: "),
        "{error}"
    );
}

#[test]
fn a_failed_report_carries_the_error_and_finish_time() {
    let body = status_apply_body(
        "r1",
        &ReplayProgressReport {
            phase: ReplayPhase::Failed,
            events_applied: 10,
            events_total: None,
            percent: None,
            events_per_second: None,
            eta_seconds: None,
            error: Some("read model write failed".into()),
            started_at: None,
            finished_at: Some("2026-01-02T03:04:05Z".parse().expect("time")),
        },
    );
    assert_eq!(
        body["status"]["replay"],
        json!({
            "requestId": "r1", "eventsApplied": 10,
            "reported": {"phase": "Failed", "error": "read model write failed", "finishedAt": "2026-01-02T03:04:05Z"},
        })
    );
}
