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
//!    from the spec;
//! 3. the active target: `status.activeTarget` (else `spec.target`), switched to the replay's
//!    target once its Job succeeded, so a cross-database replay moves the projector;
//! 4. server-side apply of the projector Deployment pointing at the active target;
//! 5. Events on replay transitions (started, succeeded, failed), then a server-side apply of the
//!    operator-owned status fields, computed by [`crate::status::compute`].
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

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
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
            metrics: Metrics,
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
    let client = &ctx.client;
    let ns = owner.namespace.as_str();
    let apply = PatchParams::apply(FIELD_MANAGER).force();

    let sa: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    apply_object(&sa, &apply, &resources::replay_service_account(&p)?).await?;
    let roles: Api<Role> = Api::namespaced(client.clone(), ns);
    apply_object(&roles, &apply, &resources::replay_role(&p)?).await?;
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
    apply_object(&bindings, &apply, &resources::replay_role_binding(&p)?).await?;

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
            Some(observe_replay(&p, &owner, &tracked, &previous, &active, &ctx, &mut events).await?)
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
        &resources::projector_deployment(&p, &active)?,
    )
    .await?;

    let new_status = status::compute(Observed {
        projection: &p,
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
    let reference = p.object_ref(&());
    for event in &events {
        ctx.recorder
            .publish(event, &reference)
            .await
            .map_err(|source| Error::Event {
                reason: event.reason.clone(),
                namespace: owner.namespace.clone(),
                name: owner.name.clone(),
                source: Box::new(source),
            })?;
    }
    patch_status(&ctx, &owner, &new_status).await?;
    ctx.clear_failures(&key(&p));
    let previous_finished = replay
        .as_ref()
        .is_some_and(|r| r.phase.is_some_and(ReplayPhase::is_finished));
    if queued.is_some() && previous_finished {
        // The waiting request can start now.
        return Ok(Action::requeue(QUEUED_REPLAY_DELAY));
    }
    Ok(Action::requeue(STEADY_REQUEUE))
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
            let observation = ReplayObservation {
                request_id: request.request_id.to_owned(),
                job_name: job_name.clone(),
                target,
                state: JobState::of(&job),
                started_at: job.status.as_ref().and_then(|s| s.start_time.clone()),
            };
            status::replay_status(&observation, reported_error)
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
    Controller::new(projections, watcher::Config::default())
        // Every status write (ours, and each progress report of a replay) is a change too:
        // collapse bursts into one reconciliation.
        .with_config(ControllerConfig::default().debounce(DEBOUNCE))
        .owns(deployments, owned.clone())
        .owns(jobs, owned)
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => debug!(namespace = object.namespace.as_deref().unwrap_or_default(), projection = %object.name, "reconciled"),
                Err(error) => debug!(%error, "controller"),
            }
        })
        .await;
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
