//! The controller: observe, decide, apply, record status.
//!
//! One reconciliation of a Projection, in order:
//! 1. server-side apply (field manager [`FIELD_MANAGER`], forced) of the replay ServiceAccount,
//!    Role and RoleBinding;
//! 2. if `spec.replay` names a request: read its Job; create it when the request is new
//!    (`status.replay.requestId` differs) and no Job of that name exists. The same request id
//!    never starts a second Job: an existing Job is only observed, and a request whose Job is
//!    gone is never restarted. One replay at a time: a new request waits until the Job of the
//!    recorded one has finished, and a Job keeps being followed when its request is removed
//!    from the spec; while the Job is pending, its pods are listed for the reason they wait;
//! 3. the active target: `status.activeTarget` (else `spec.target`), switched to the replay's
//!    target once its Job succeeded, so a cross-database replay moves the projector;
//! 4. server-side apply of the projector Deployment pointing at the active target;
//! 5. when a replay has just finished: deletion of finished replay Jobs beyond
//!    `spec.replayHistoryLimit` (best effort);
//! 6. Events on replay transitions (started, succeeded, failed; best effort, notes cut to the API
//!    server's 1 KiB), then a server-side apply of the operator-owned status fields, computed by
//!    [`crate::status::compute`].
//!
//! A reconciliation that fails records why (a `Reconciled` False condition and a Warning Event)
//! and is retried with backoff. Only new Projections and spec changes trigger one (see
//! [`triggers`]), besides changes of the owned Deployment and Jobs and the periodic requeue.
//!
//! Every step is idempotent: a second reconciliation sends the same applies, starts no Job and
//! publishes no Event. Deletion needs no finalizer: every object the operator creates carries a
//! controller owner reference to the Projection, so the garbage collector removes them, and
//! nothing outside the cluster is created by the operator (the replay's shadow tables belong to
//! the read database, where the previous version is kept until the next cut-over).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{PredicateConfig, WatchStreamExt, predicates, reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::{debug, info, instrument, warn};

use crate::FIELD_MANAGER;
use crate::crd::{
    GROUP, Projection, ProjectionStatus, ReplayPhase, ReplayRequest, ReplayStatus, Target, VERSION,
};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::report::PROGRESS_FIELDS;
use crate::resources::{self, Owner};
use crate::status::{self, JobState, Observed, ReplayObservation};

/// How often a Projection is looked at again when nothing changes.
pub const STEADY_REQUEUE: Duration = Duration::from_secs(5 * 60);
/// Changes of one Projection within this window cause one reconciliation.
pub const DEBOUNCE: Duration = Duration::from_secs(1);
/// Delay before a waiting replay request starts once the previous replay has finished.
pub const QUEUED_REPLAY_DELAY: Duration = Duration::from_secs(1);
/// How soon a Projection whose replay Job is pending is looked at again: nothing else changes
/// while its pod waits (an image that cannot be pulled), and the reason should show soon.
pub const PENDING_REPLAY_RECHECK: Duration = Duration::from_secs(15);
/// First retry delay after a failed reconciliation; doubles per consecutive failure.
pub const FIRST_RETRY: Duration = Duration::from_secs(5);

/// What the reconciler needs: the client, metrics, the Event recorder, a clock and the failure
/// counts behind the retry backoff.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Metrics handle.
    pub metrics: Metrics,
    /// Publishes Kubernetes Events (keeps a cache to turn repeats into series).
    pub recorder: Recorder,
    /// The time stamped on changed conditions (fixed in tests).
    pub clock: fn() -> Timestamp,
    failures: Mutex<HashMap<(String, String), u32>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

impl Context {
    /// A context whose Events are reported by `reporter` (controller name and pod identity).
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics: Metrics::default(),
            clock: Timestamp::now,
            failures: Mutex::default(),
        }
    }

    fn record_failure(&self, key: (String, String)) -> u32 {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = failures.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    fn clear_failures(&self, key: &(String, String)) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

/// Retry delay after `failures` consecutive failed reconciliations of one Projection:
/// 5 s, 10 s, 20 s, ... capped at [`STEADY_REQUEUE`]. No hot loops.
pub fn retry_delay(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    FIRST_RETRY
        .saturating_mul(1 << exponent)
        .min(STEADY_REQUEUE)
}

fn key(p: &Projection) -> (String, String) {
    (p.namespace().unwrap_or_default(), p.name_any())
}

/// Reconciles one Projection (see the module doc for the steps).
#[instrument(skip_all, fields(namespace = p.namespace().unwrap_or_default(), projection = p.name_any()))]
pub async fn reconcile(p: Arc<Projection>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile_started();
    if p.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove what we created.
        debug!("Projection is being deleted; nothing to do");
        return Ok(Action::await_change());
    }
    let owner = Owner::of(&p)?;
    match reconcile_owned(&p, &owner, &ctx).await {
        Ok(action) => {
            ctx.clear_failures(&key(&p));
            Ok(action)
        }
        Err(error) => {
            record_error(&ctx, &p, &owner, &error).await;
            Err(error)
        }
    }
}

/// Says why a reconciliation failed where users and GitOps tools look: a `Reconciled` condition
/// (False, the bounded error text) applied under the operator's field manager together with
/// everything else it owns, unchanged (so nothing it owns is dropped), and a Warning Event. Best
/// effort: when the API server cannot take these either, the error is only logged and counted.
/// The next successful status apply leaves the condition out, which removes it.
async fn record_error(ctx: &Context, p: &Projection, owner: &Owner, error: &Error) {
    let previous = p.status.clone().unwrap_or_default();
    let message = error.for_users();
    let recorded =
        status::with_reconcile_error(&previous, p.metadata.generation, &message, (ctx.clock)());
    if let Err(status_error) = patch_status(ctx, owner, &recorded).await {
        debug!(error = %status_error, "recording the reconcile error in the status failed");
    }
    let event = Event {
        type_: EventType::Warning,
        reason: status::RECONCILE_FAILED.into(),
        note: Some(message),
        action: "Reconcile".into(),
        secondary: None,
    };
    publish_events(ctx, p, owner, vec![event]).await;
}

async fn reconcile_owned(p: &Projection, owner: &Owner, ctx: &Context) -> Result<Action> {
    let client = &ctx.client;
    let ns = owner.namespace.as_str();
    let apply = PatchParams::apply(FIELD_MANAGER).force();

    let sa: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    apply_object(&sa, &apply, &resources::replay_service_account(p)?).await?;
    let roles: Api<Role> = Api::namespaced(client.clone(), ns);
    apply_object(&roles, &apply, &resources::replay_role(p)?).await?;
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
    apply_object(&bindings, &apply, &resources::replay_role_binding(p)?).await?;

    let previous = p.status.clone().unwrap_or_default();
    let mut active = previous
        .active_target
        .clone()
        .unwrap_or_else(|| p.spec.target.clone());
    let mut events = Vec::new();
    let unfinished = previous
        .replay
        .as_ref()
        .filter(|r| !r.phase.is_some_and(ReplayPhase::is_finished));
    let mut queued = None;
    let tracked = match (&p.spec.replay, unfinished) {
        // One replay at a time: a new request waits until the previous Job has finished.
        (Some(request), Some(running)) if running.request_id != request.request_id => {
            queued = Some(request.request_id.as_str());
            Some(Tracked::previous(running))
        }
        (Some(request), _) => Some(Tracked::requested(request)),
        // The request was removed from the spec while its Job runs: keep following that Job.
        (None, Some(running)) => Some(Tracked::previous(running)),
        (None, None) => None,
    };
    let replay = match tracked {
        Some(tracked) => {
            Some(observe_replay(p, owner, &tracked, &previous, &active, ctx, &mut events).await?)
        }
        // Nothing runs: keep the last replay's record (server-side apply would drop it otherwise).
        None => previous.replay.as_ref().map(status::operator_owned_replay),
    };
    if let Some(r) = replay
        .as_ref()
        .filter(|r| r.phase == Some(ReplayPhase::Succeeded))
        && let Some(target) = &r.target
        && *target != active
    {
        info!(request_id = %r.request_id, "replay succeeded into another read database: moving the projector");
        active = target.clone();
    }

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let deployment = apply_object(
        &deployments,
        &apply,
        &resources::projector_deployment(p, &active)?,
    )
    .await?;

    let replay_finished_now = events
        .iter()
        .any(|e| e.reason == "ReplaySucceeded" || e.reason == "ReplayFailed");
    if replay_finished_now {
        prune_replay_jobs(ctx, owner, p.spec.replay_history_limit).await;
    }

    let new_status = status::compute(Observed {
        projection: p,
        deployment: Some(&deployment),
        replay: replay.as_ref(),
        active_target: &active,
        queued_request: queued,
        now: (ctx.clock)(),
    });
    if previous
        .active_target
        .as_ref()
        .is_some_and(|t| *t != active)
        && let Some(r) = &replay
    {
        events.push(Event {
            type_: EventType::Normal,
            reason: "CutOver".into(),
            note: Some(format!(
                "replay {} succeeded: the projector now uses the {} database of Secret {} key {}",
                r.request_id,
                active.type_.as_str(),
                active.url_secret_ref.name,
                active.url_secret_ref.key
            )),
            action: "CutOver".into(),
            secondary: None,
        });
    }
    publish_events(ctx, p, owner, events).await;
    patch_status(ctx, owner, &new_status).await?;
    let previous_finished = replay
        .as_ref()
        .is_some_and(|r| r.phase.is_some_and(ReplayPhase::is_finished));
    if queued.is_some() && previous_finished {
        // The waiting request can start now.
        return Ok(Action::requeue(QUEUED_REPLAY_DELAY));
    }
    if replay
        .as_ref()
        .is_some_and(|r| r.phase == Some(ReplayPhase::Pending))
    {
        return Ok(Action::requeue(PENDING_REPLAY_RECHECK));
    }
    Ok(Action::requeue(STEADY_REQUEUE))
}

/// Publishes `events` about `p`, best effort: an Event the API server refuses (or cannot take
/// right now) is logged and counted, and never keeps the status from being written, which
/// records the same transition for good. Notes are cut to the API server's 1 KiB limit; the
/// whole text is in the status.
async fn publish_events(ctx: &Context, p: &Projection, owner: &Owner, events: Vec<Event>) {
    let reference = p.object_ref(&());
    for mut event in events {
        event.note = event
            .note
            .map(|note| status::bounded(&note, status::EVENT_NOTE_MAX_BYTES));
        if let Err(source) = ctx.recorder.publish(&event, &reference).await {
            let error = Error::Event {
                reason: event.reason.clone(),
                namespace: owner.namespace.clone(),
                name: owner.name.clone(),
                source: Box::new(source),
            };
            ctx.metrics.reconcile_failed(&error);
            warn!(%error, "publishing an Event failed; the status records the change");
        }
    }
}

/// Deletes the Projection's finished replay Jobs beyond the newest `keep` (by finish time), with
/// their pods. Run when a replay finishes; best effort: a failure (e.g. RBAC without `delete` on
/// jobs) is logged, and the next finished replay tries again. A Job still running is never
/// deleted, and the status keeps the last replay's record whatever is deleted.
async fn prune_replay_jobs(ctx: &Context, owner: &Owner, keep: i32) {
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &owner.namespace);
    let selector = resources::replay_jobs_selector(&owner.name);
    let listed = match jobs.list(&ListParams::default().labels(&selector)).await {
        Ok(listed) => listed.items,
        Err(error) => {
            warn!(%error, "listing finished replay Jobs failed; they are kept");
            return;
        }
    };
    let mut finished: Vec<(Timestamp, String)> = listed
        .iter()
        .filter(|job| {
            job.owner_references()
                .iter()
                .any(|r| r.uid == owner.reference.uid)
        })
        .filter_map(|job| {
            let finished_at = match JobState::of(job) {
                JobState::Succeeded { finished_at } | JobState::Failed { finished_at, .. } => {
                    finished_at
                }
                JobState::Pending | JobState::Running => return None,
            };
            let at = finished_at
                .or_else(|| job.metadata.creation_timestamp.clone())
                .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
            Some((at, job.name_any()))
        })
        .collect();
    finished.sort_by(|a, b| b.cmp(a));
    let keep = usize::try_from(keep).unwrap_or(0);
    let beyond: Vec<String> = finished
        .into_iter()
        .skip(keep)
        .map(|(_, name)| name)
        .collect();
    // Oldest first: a deletion cut short leaves the newer ones.
    for name in beyond.into_iter().rev() {
        match jobs.delete(&name, &DeleteParams::background()).await {
            Ok(_) => info!(job = %name, "deleted an old finished replay Job"),
            Err(error) => warn!(job = %name, %error, "deleting an old finished replay Job failed"),
        }
    }
}

/// The replay request a reconciliation follows.
#[derive(Debug)]
struct Tracked<'a> {
    request_id: &'a str,
    target: Option<&'a Target>,
    /// Only `spec.replay` may start a Job; a previous request is only observed.
    may_create: bool,
}

impl<'a> Tracked<'a> {
    fn requested(request: &'a ReplayRequest) -> Self {
        Self {
            request_id: &request.request_id,
            target: request.target.as_ref(),
            may_create: true,
        }
    }

    fn previous(record: &'a ReplayStatus) -> Self {
        Self {
            request_id: &record.request_id,
            target: record.target.as_ref(),
            may_create: false,
        }
    }
}

/// Reads (and for a new request creates) the replay Job and returns the operator-owned replay
/// record. Pushes the Events of the transitions it saw.
async fn observe_replay(
    p: &Projection,
    owner: &Owner,
    request: &Tracked<'_>,
    previous: &ProjectionStatus,
    active: &Target,
    ctx: &Context,
    events: &mut Vec<Event>,
) -> Result<ReplayStatus> {
    let ns = owner.namespace.as_str();
    let job_name = resources::replay_job_name(&owner.name, request.request_id);
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    let known = previous
        .replay
        .as_ref()
        .filter(|r| r.request_id == request.request_id);
    let kube_err = |action: &'static str| Error::kube(action, "Job", ns, job_name.clone());

    let mut job = jobs.get_opt(&job_name).await.map_err(kube_err("get"))?;
    let mut created_now = false;
    if let Some(found) = &job {
        let owner_id = found
            .annotations()
            .get(resources::REPLAY_REQUEST_ID_ANNOTATION);
        if owner_id.map(String::as_str) != Some(request.request_id) {
            // Another request id with the same hash (or a Job we did not create).
            return Err(Error::ReplayJobTaken {
                namespace: ns.to_owned(),
                job: job_name,
                request_id: request.request_id.to_owned(),
                found: owner_id.cloned(),
            });
        }
    }
    if job.is_none() && known.is_none() && request.may_create {
        if let Some(built) = resources::replay_job(p, active)? {
            job = match jobs.create(&PostParams::default(), &built).await {
                Ok(created) => {
                    created_now = true;
                    info!(request_id = %request.request_id, job = %job_name, "replay Job created");
                    events.push(Event {
                        type_: EventType::Normal,
                        reason: "ReplayStarted".into(),
                        note: Some(format!(
                            "replay {} started in Job {job_name}",
                            request.request_id
                        )),
                        action: "StartReplay".into(),
                        secondary: None,
                    });
                    Some(created)
                }
                // Another reconciliation created it in between: observe that one.
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    jobs.get_opt(&job_name).await.map_err(kube_err("get"))?
                }
                Err(source) => return Err(kube_err("create")(source)),
            };
        }
        if previous.replay.as_ref().is_some_and(has_progress) {
            reset_progress(ctx, owner).await?;
        }
    }

    let reported_error = known
        .and_then(|r| r.reported.as_ref())
        .and_then(|r| r.error.as_deref());
    let record = match job {
        Some(job) => {
            let target = known
                .and_then(|r| r.target.clone())
                .or_else(|| request.target.cloned())
                .unwrap_or_else(|| active.clone());
            let state = JobState::of(&job);
            // A Job just created has no pod to ask yet.
            let pending_reason = if state == JobState::Pending && !created_now {
                let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
                let selector = format!("{}={job_name}", resources::JOB_NAME_LABEL);
                let listed = pods
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .map_err(Error::kube("list pods of", "Job", ns, job_name.clone()))?;
                status::pending_reason(&listed.items)
            } else if matches!(state, JobState::Failed { .. }) {
                // Why it never started, when the deadline ended it while pending.
                known.and_then(|r| r.pending_reason.clone())
            } else {
                None
            };
            let observation = ReplayObservation {
                request_id: request.request_id.to_owned(),
                job_name: job_name.clone(),
                target,
                state,
                started_at: job.status.as_ref().and_then(|s| s.start_time.clone()),
            };
            ReplayStatus {
                pending_reason,
                ..status::replay_status(&observation, reported_error)
            }
        }
        None => match known {
            Some(r) if r.phase.is_some_and(ReplayPhase::is_finished) => {
                status::operator_owned_replay(r)
            }
            // Known request, Job gone before it finished: never restart it, say so.
            Some(r) => ReplayStatus {
                phase: Some(ReplayPhase::Failed),
                error: Some(format!(
                    "replay Job {job_name} was deleted before it finished"
                )),
                ..status::operator_owned_replay(r)
            },
            // resources::replay_job returns a Job whenever spec.replay is set.
            None => ReplayStatus {
                request_id: request.request_id.to_owned(),
                job_name: Some(job_name.clone()),
                ..ReplayStatus::default()
            },
        },
    };

    let before = known.and_then(|r| r.phase);
    match record.phase {
        Some(ReplayPhase::Failed) if before != Some(ReplayPhase::Failed) => {
            warn!(request_id = %record.request_id, error = record.error.as_deref().unwrap_or_default(), "replay failed");
            events.push(Event {
                type_: EventType::Warning,
                reason: "ReplayFailed".into(),
                note: Some(format!(
                    "{}; the live projection is untouched",
                    record.error.as_deref().unwrap_or("the replay failed")
                )),
                action: "Replay".into(),
                secondary: None,
            });
        }
        Some(ReplayPhase::Succeeded) if before != Some(ReplayPhase::Succeeded) => {
            events.push(Event {
                type_: EventType::Normal,
                reason: "ReplaySucceeded".into(),
                note: Some(format!(
                    "replay {} succeeded (Job {job_name})",
                    record.request_id
                )),
                action: "Replay".into(),
                secondary: None,
            });
        }
        _ => {}
    }
    Ok(record)
}

fn has_progress(r: &ReplayStatus) -> bool {
    r.events_applied.is_some()
        || r.events_total.is_some()
        || r.percent.is_some()
        || r.events_per_second.is_some()
        || r.eta_seconds.is_some()
        || r.reported.is_some()
}

/// Removes the previous request's progress fields (owned by the replay process, so the
/// operator's apply cannot drop them) with a JSON merge patch, so they are not mistaken for the
/// new replay's progress.
async fn reset_progress(ctx: &Context, owner: &Owner) -> Result<()> {
    let api: Api<Projection> = Api::namespaced(ctx.client.clone(), &owner.namespace);
    let cleared: serde_json::Map<String, serde_json::Value> = PROGRESS_FIELDS
        .iter()
        .map(|f| ((*f).to_owned(), serde_json::Value::Null))
        .collect();
    let patch = json!({ "status": { "replay": cleared } });
    api.patch_status(&owner.name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(Error::kube(
            "reset replay progress of",
            "Projection",
            &owner.namespace,
            &owner.name,
        ))?;
    Ok(())
}

async fn patch_status(ctx: &Context, owner: &Owner, status: &ProjectionStatus) -> Result<()> {
    let api: Api<Projection> = Api::namespaced(ctx.client.clone(), &owner.namespace);
    let body = json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "Projection",
        "status": status,
    });
    api.patch_status(
        &owner.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await
    .map_err(Error::kube(
        "patch status of",
        "Projection",
        &owner.namespace,
        &owner.name,
    ))?;
    Ok(())
}

async fn apply_object<K>(api: &Api<K>, params: &PatchParams, object: &K) -> Result<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let name = object.name_any();
    api.patch(&name, params, &Patch::Apply(object))
        .await
        .map_err(Error::kube(
            "apply",
            kind_of::<K>(),
            object.namespace().unwrap_or_default(),
            name,
        ))
}

fn kind_of<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "Deployment" => "Deployment",
        "ServiceAccount" => "ServiceAccount",
        "Role" => "Role",
        "RoleBinding" => "RoleBinding",
        "Job" => "Job",
        _ => "object",
    }
}

/// After a failed reconciliation: count it and retry after [`retry_delay`].
pub fn error_policy(p: Arc<Projection>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed(error);
    let failures = ctx.record_failure(key(&p));
    let delay = retry_delay(failures);
    warn!(
        namespace = p.namespace().unwrap_or_default(),
        projection = p.name_any(),
        %error,
        failures,
        retry_in_seconds = delay.as_secs(),
        "reconcile failed"
    );
    Action::requeue(delay)
}

/// Runs the controller over Projections in `namespace` (or all namespaces), watching the
/// Deployments and Jobs it owns, until `stop` completes (then it finishes the reconciliations in
/// flight and returns).
pub async fn run(
    client: Client,
    namespace: Option<&str>,
    ctx: Arc<Context>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let projections: Api<Projection> = scoped(client.clone(), namespace);
    let deployments: Api<Deployment> = scoped(client.clone(), namespace);
    let jobs: Api<Job> = scoped(client, namespace);
    let owned =
        watcher::Config::default().labels("app.kubernetes.io/managed-by=eventline-operator");
    let (reader, writer) = reflector::store();
    ctx.metrics.watching(reader.clone());
    let projection_changes = watcher(projections, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects();
    let metrics = ctx.metrics.clone();
    Controller::for_stream(triggers(projection_changes), reader)
        // Bursts of changes (a spec edit, the Deployment's and Jobs' status) make one
        // reconciliation.
        .with_config(ControllerConfig::default().debounce(DEBOUNCE))
        .owns(deployments, owned.clone())
        .owns(jobs, owned)
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => debug!(namespace = object.namespace.as_deref().unwrap_or_default(), projection = %object.name, "reconciled"),
                Err(error) if controller_error_is_loud(&error) => warn!(%error, "controller"),
                Err(error) => debug!(%error, "controller"),
            }
        })
        .await;
    metrics.stopped_watching();
}

/// Whether a controller error is worth a warning: a failing watch or queue (RBAC, a CRD
/// removed, the API server gone) stops the operator from seeing changes until its backoff
/// succeeds. A failed reconciliation is logged by [`error_policy`] already, and an object gone
/// from the cache before its scheduled reconciliation is expected.
pub fn controller_error_is_loud(
    error: &kube::runtime::controller::Error<Error, watcher::Error>,
) -> bool {
    use kube::runtime::controller::Error as ControllerError;
    matches!(
        error,
        ControllerError::QueueError(_) | ControllerError::RunnerError(_)
    )
}

/// The Projection changes that start a reconciliation: a new object and every spec change
/// (`metadata.generation`), not status-only changes. Projector pods publish their lag every 15 s
/// per replica and replays their progress every second; each would otherwise cost a full
/// reconciliation of five requests. Nothing the operator computes depends on those fields; the
/// Deployment and Job watches and the periodic requeue bring everything else.
pub fn triggers<S>(changes: S) -> impl Stream<Item = Result<Projection, watcher::Error>> + Send
where
    S: Stream<Item = Result<Projection, watcher::Error>> + Send,
{
    changes.predicate_filter(predicates::generation, PredicateConfig::default())
}

fn scoped<K>(client: Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    }
}

#[cfg(test)]
mod tests;
