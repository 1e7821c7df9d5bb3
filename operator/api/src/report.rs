//! How a replay process publishes its progress into its Projection's `status.replay`.
//!
//! Used by `eventline replay` when `EVENTLINE_REPLAY_REPORT_TO=<namespace>/<name>` is set (the
//! operator sets it on every replay Job; the Job's ServiceAccount may only `get` and `patch`
//! that one Projection's status).
//!
//! # Who owns which status field
//! Both the operator and the replay process write `status` with server-side apply, each under
//! its own field manager, and neither sends a field the other owns, so they never fight:
//!
//! | field manager | fields |
//! |---|---|
//! | `eventline-operator` (force) | `observedGeneration`, `phase`, `conditions`, `activeTarget`, and in `replay`: `requestId`, `phase`, `jobName`, `target`, `startedAt`, `finishedAt`, `error` (from the Job) |
//! | `eventline-replay` (this module, no force) | in `replay`: `requestId` (same value, shared), `eventsApplied`, `eventsTotal`, `percent`, `eventsPerSecond`, `etaSeconds`, and `reported` (`phase`, `error`, `startedAt`, `finishedAt` as the process sees them) |
//!
//! `status.replay.phase` is the Job's phase (what Kubernetes knows ran); `status.replay.reported`
//! is the process's own account. `requestId` fences stale publishers: the operator sets it
//! (forced) when it starts a Job for a new request, and this module applies without force, so a
//! process still reporting for an older request gets a conflict
//! ([`ReportError::ReplaySuperseded`]) instead of overwriting the new replay's progress. A conflict
//! that comes only because the operator has not recorded this request yet
//! ([`ReportError::ReplayNotRecordedYet`]) is transient: the next report tries again. When the
//! operator starts a new request it also removes the previous request's progress fields.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::crd::{GROUP, Projection, ReplayPhase, VERSION};
use crate::error::ReportError;

/// What publishing a report gives.
pub type Result<T, E = ReportError> = std::result::Result<T, E>;

/// Field manager of the replay process's status applies.
pub const REPLAY_FIELD_MANAGER: &str = "eventline-replay";

/// The fields of `status.replay` the replay process owns, removed by the operator when a new
/// request starts.
pub const PROGRESS_FIELDS: &[&str] = &[
    "eventsApplied",
    "eventsTotal",
    "percent",
    "eventsPerSecond",
    "etaSeconds",
    "reported",
];

/// One progress report of a replay process.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayProgressReport {
    /// Phase as the process sees it.
    pub phase: ReplayPhase,
    /// Events applied so far.
    pub events_applied: i64,
    /// Events to apply in total, once known.
    pub events_total: Option<i64>,
    /// Percent done, 0 to 100.
    pub percent: Option<f64>,
    /// Recent throughput.
    pub events_per_second: Option<f64>,
    /// Estimated seconds left.
    pub eta_seconds: Option<i64>,
    /// The error that stopped the replay.
    pub error: Option<String>,
    /// When the process started replaying.
    pub started_at: Option<Timestamp>,
    /// When the process finished.
    pub finished_at: Option<Timestamp>,
}

/// The server-side apply body for one report: only the fields the replay process owns.
pub fn status_apply_body(request_id: &str, report: &ReplayProgressReport) -> Value {
    let mut reported = json!({ "phase": report.phase.as_str() });
    if let Some(error) = &report.error {
        reported["error"] = json!(error);
    }
    if let Some(t) = report.started_at {
        reported["startedAt"] = json!(Time(t));
    }
    if let Some(t) = report.finished_at {
        reported["finishedAt"] = json!(Time(t));
    }
    let mut replay = json!({
        "requestId": request_id,
        "eventsApplied": report.events_applied,
        "reported": reported,
    });
    if let Some(v) = report.events_total {
        replay["eventsTotal"] = json!(v);
    }
    if let Some(v) = report.percent {
        replay["percent"] = json!(v);
    }
    if let Some(v) = report.events_per_second {
        replay["eventsPerSecond"] = json!(v);
    }
    if let Some(v) = report.eta_seconds {
        replay["etaSeconds"] = json!(v);
    }
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "Projection",
        "status": { "replay": replay },
    })
}

/// Publishes `report` into `status.replay` of Projection `namespace/name` by server-side apply
/// on the status subresource, field manager [`REPLAY_FIELD_MANAGER`], without force.
///
/// Fails with [`ReportError::ReplaySuperseded`] when the Projection's replay is now another request
/// (the caller should stop reporting), with [`ReportError::ReplayNotRecordedYet`] when the conflict
/// only means the operator has not recorded this request in the status yet, and with
/// [`ReportError::Kube`] on any other API error (the caller retries both at its next report).
///
/// A conflict alone does not tell the two apart: the operator owns `status.replay.requestId`, so
/// a report conflicts both when a newer request replaced this one and when the operator's
/// status write for this request is still to come (delayed by a retry). The Projection tells:
/// this request is superseded only when neither `spec.replay` nor `status.replay` names it.
pub async fn publish_replay_status(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    request_id: &str,
    report: &ReplayProgressReport,
) -> Result<()> {
    let api: Api<Projection> = Api::namespaced(client.clone(), namespace);
    let body = status_apply_body(request_id, report);
    match api
        .patch_status(
            name,
            &PatchParams::apply(REPLAY_FIELD_MANAGER),
            &Patch::Apply(body),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let current = api.get_status(name).await.map_err(ReportError::kube(
                "read the status of",
                namespace,
                name,
            ))?;
            let requested = current.spec.replay.as_ref().map(|r| r.request_id.as_str());
            let recorded = current
                .status
                .as_ref()
                .and_then(|s| s.replay.as_ref())
                .map(|r| r.request_id.as_str());
            let (namespace, name, request_id) =
                (namespace.to_owned(), name.to_owned(), request_id.to_owned());
            let ours = Some(request_id.as_str());
            if requested != ours && recorded != ours {
                Err(ReportError::ReplaySuperseded {
                    namespace,
                    name,
                    request_id,
                })
            } else {
                Err(ReportError::ReplayNotRecordedYet {
                    namespace,
                    name,
                    request_id,
                })
            }
        }
        Err(source) => Err(ReportError::kube(
            "publish replay progress to",
            namespace,
            name,
        )(source)),
    }
}

/// Field manager of the projector pods' status applies.
pub const PROJECTOR_FIELD_MANAGER: &str = "eventline-projector";

/// The server-side apply body of a projector's report: `status.lagEvents` (when known) and
/// `status.deadLetters`, the only fields the projector pods own.
pub fn projector_status_body(lag_events: Option<u64>, dead_letters: u64) -> Value {
    let mut status = json!({ "deadLetters": dead_letters });
    if let Some(lag) = lag_events {
        status["lagEvents"] = json!(lag);
    }
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "Projection",
        "status": status,
    })
}

/// Publishes a projector's lag and dead-letter count into Projection `namespace/name`, by
/// server-side apply on the status subresource under [`PROJECTOR_FIELD_MANAGER`]. Every
/// replica publishes the same figures (the consumer group's lag, the dead-letter table's
/// count), so they share the field manager and the last one wins.
pub async fn publish_projector_status(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    lag_events: Option<u64>,
    dead_letters: u64,
) -> Result<()> {
    let api: Api<Projection> = Api::namespaced(client.clone(), namespace);
    api.patch_status(
        name,
        &PatchParams::apply(PROJECTOR_FIELD_MANAGER).force(),
        &Patch::Apply(projector_status_body(lag_events, dead_letters)),
    )
    .await
    .map(drop)
    .map_err(ReportError::kube(
        "publish projector status to",
        namespace,
        name,
    ))
}
