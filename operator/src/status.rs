//! Status and conditions computed from what was observed: the applied Deployment as the API
//! server returned it, and the replay Job. Pure functions, no I/O.
//!
//! The operator's status apply carries only the fields it owns (see [`crate::report`] for the
//! split with the replay process): `observedGeneration`, `phase`, `conditions`, `activeTarget`
//! and in `replay` the Job-derived `requestId`, `phase`, `jobName`, `target`, `startedAt`,
//! `finishedAt` and `error`. Server-side apply removes a field its manager stops sending, so
//! every apply repeats all of them (the replay record is carried over when no Job is observed).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::crd::{
    Projection, ProjectionPhase, ProjectionStatus, ReplayPhase, ReplayStatus, Target,
};

/// Condition type: all desired projector pods are available.
pub const READY: &str = "Ready";
/// Condition type: a replay Job is pending or running.
pub const REPLAYING: &str = "Replaying";
/// Condition type: the last replay failed, or the projector is partially available or stuck.
pub const DEGRADED: &str = "Degraded";

/// What the operator saw of the replay Job of one request.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayObservation {
    /// The request id.
    pub request_id: String,
    /// The Job's name.
    pub job_name: String,
    /// The read database the replay writes.
    pub target: Target,
    /// The Job's state.
    pub state: JobState,
    /// When the Job started.
    pub started_at: Option<Time>,
}

/// State of a replay Job, from its status.
#[derive(Clone, Debug, PartialEq)]
pub enum JobState {
    /// No replay pod has run yet.
    Pending,
    /// A replay pod runs (or ran and the Job is retrying).
    Running,
    /// The Job completed.
    Succeeded {
        /// Completion time.
        finished_at: Option<Time>,
    },
    /// The Job failed for good (e.g. its backoff limit was reached), or it vanished unfinished.
    Failed {
        /// When the Job failed.
        finished_at: Option<Time>,
        /// The Job's failure reason and message.
        reason: String,
    },
}

impl JobState {
    /// Reads a Job's status: `Complete` and `Failed` conditions first, then pod counts.
    pub fn of(job: &Job) -> Self {
        let status = job.status.clone().unwrap_or_default();
        for c in status.conditions.iter().flatten() {
            if c.status != "True" {
                continue;
            }
            match c.type_.as_str() {
                "Complete" => {
                    return Self::Succeeded {
                        finished_at: status
                            .completion_time
                            .clone()
                            .or(c.last_transition_time.clone()),
                    };
                }
                "Failed" => {
                    let reason = match (&c.reason, &c.message) {
                        (Some(r), Some(m)) => format!("{r}: {m}"),
                        (Some(r), None) => r.clone(),
                        (None, Some(m)) => m.clone(),
                        (None, None) => "Job failed".to_owned(),
                    };
                    return Self::Failed {
                        finished_at: c.last_transition_time.clone(),
                        reason,
                    };
                }
                _ => {}
            }
        }
        let ran = status.ready.unwrap_or(0) > 0
            || status.failed.unwrap_or(0) > 0
            || status.succeeded.unwrap_or(0) > 0;
        if ran { Self::Running } else { Self::Pending }
    }

    /// The replay phase this Job state means.
    pub fn phase(&self) -> ReplayPhase {
        match self {
            Self::Pending => ReplayPhase::Pending,
            Self::Running => ReplayPhase::Running,
            Self::Succeeded { .. } => ReplayPhase::Succeeded,
            Self::Failed { .. } => ReplayPhase::Failed,
        }
    }
}

/// The operator-owned part of `status.replay` for an observed Job. `reported_error` is the error
/// the replay process published itself, added to the Job's reason when the Job failed.
pub fn replay_status(obs: &ReplayObservation, reported_error: Option<&str>) -> ReplayStatus {
    let (finished_at, error) = match &obs.state {
        JobState::Succeeded { finished_at } => (finished_at.clone(), None),
        JobState::Failed {
            finished_at,
            reason,
        } => {
            let mut error = format!("replay Job {} failed ({reason})", obs.job_name);
            if let Some(reported) = reported_error {
                error.push_str("; last error reported by the replay: ");
                error.push_str(reported);
            }
            (finished_at.clone(), Some(error))
        }
        JobState::Pending | JobState::Running => (None, None),
    };
    ReplayStatus {
        request_id: obs.request_id.clone(),
        phase: Some(obs.state.phase()),
        job_name: Some(obs.job_name.clone()),
        target: Some(obs.target.clone()),
        started_at: obs.started_at.clone(),
        finished_at,
        error,
        ..ReplayStatus::default()
    }
}

/// Keeps only the operator-owned fields of a replay record (drops the replay process's progress).
pub fn operator_owned_replay(previous: &ReplayStatus) -> ReplayStatus {
    ReplayStatus {
        request_id: previous.request_id.clone(),
        phase: previous.phase,
        job_name: previous.job_name.clone(),
        target: previous.target.clone(),
        started_at: previous.started_at.clone(),
        finished_at: previous.finished_at.clone(),
        error: previous.error.clone(),
        pending_reason: previous.pending_reason.clone(),
        ..ReplayStatus::default()
    }
}

/// Why a replay Job's pod has not started, from its pods: a container's waiting reason and
/// message (`ImagePullBackOff`, `ErrImagePull`, `CreateContainerConfigError`), else an
/// unschedulable pod's reason. `None` while it is only being created or scheduled.
pub fn pending_reason(pods: &[Pod]) -> Option<String> {
    let describe = |reason: &str, message: Option<&String>| match message {
        Some(m) if !m.is_empty() => format!("{reason}: {m}"),
        _ => reason.to_owned(),
    };
    let waiting = pods.iter().find_map(|pod| {
        let status = pod.status.as_ref()?;
        status
            .init_container_statuses
            .iter()
            .chain(status.container_statuses.iter())
            .flatten()
            .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
            .find_map(|w| {
                let reason = w.reason.as_deref()?;
                let ordinary = matches!(reason, "ContainerCreating" | "PodInitializing");
                (!ordinary).then(|| describe(reason, w.message.as_ref()))
            })
    });
    waiting.or_else(|| {
        pods.iter().find_map(|pod| {
            pod.status
                .as_ref()?
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
                .map(|c| {
                    describe(
                        c.reason.as_deref().unwrap_or("Unschedulable"),
                        c.message.as_ref(),
                    )
                })
        })
    })
}

/// Condition type (and Event reason): the last reconciliation failed. Present only while it
/// fails.
pub const RECONCILED: &str = "Reconciled";
/// Reason of a False [`RECONCILED`] condition, and of the Warning Event.
pub const RECONCILE_FAILED: &str = "ReconcileFailed";

/// The operator-owned part of `previous` (everything the replay process and the projector pods
/// publish left out, so a forced apply of it takes nothing of theirs), with a False
/// [`RECONCILED`] condition carrying `error`. Its transition time stays while it keeps failing.
pub fn with_reconcile_error(
    previous: &ProjectionStatus,
    generation: Option<i64>,
    error: &str,
    now: Timestamp,
) -> ProjectionStatus {
    let mut condition = cond(RECONCILED, false, RECONCILE_FAILED, error.to_owned());
    condition.observed_generation = generation;
    condition.last_transition_time = previous
        .conditions
        .iter()
        .find(|c| c.type_ == RECONCILED && c.status == "False")
        .map_or(Time(now), |c| c.last_transition_time.clone());
    let mut conditions: Vec<Condition> = previous
        .conditions
        .iter()
        .filter(|c| c.type_ != RECONCILED)
        .cloned()
        .collect();
    conditions.push(condition);
    ProjectionStatus {
        observed_generation: previous.observed_generation,
        phase: previous.phase,
        conditions,
        active_target: previous.active_target.clone(),
        replay: previous.replay.as_ref().map(operator_owned_replay),
        lag_events: None,
        dead_letters: None,
    }
}

/// Everything [`compute`] needs.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    /// The Projection as the reconciler got it (its previous status included).
    pub projection: &'a Projection,
    /// The projector Deployment as the API server returned it after the apply.
    pub deployment: Option<&'a Deployment>,
    /// The operator-owned replay record to publish (observed now, or carried over).
    pub replay: Option<&'a ReplayStatus>,
    /// The target the projector Deployment now points at.
    pub active_target: &'a Target,
    /// A requested replay that waits for the recorded one to finish.
    pub queued_request: Option<&'a str>,
    /// The time to stamp on conditions that change.
    pub now: Timestamp,
}

/// The status the operator applies: only the fields it owns.
pub fn compute(o: Observed<'_>) -> ProjectionStatus {
    let p = o.projection;
    let generation = p.metadata.generation;
    let previous = p
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let desired = p.spec.replicas;
    let dep_status = o
        .deployment
        .and_then(|d| d.status.clone())
        .unwrap_or_default();
    let available = dep_status.available_replicas.unwrap_or(0);
    // The API server omits zero counts.
    let updated = dep_status.updated_replicas.unwrap_or(0);
    let pods = dep_status.replicas.unwrap_or(0);
    let generation_seen = match (
        o.deployment.and_then(|d| d.metadata.generation),
        dep_status.observed_generation,
    ) {
        (Some(generation), Some(observed)) => {
            (observed >= generation).then_some(()).ok_or(generation)
        }
        (Some(generation), None) => Err(generation),
        (None, _) => Ok(()),
    };
    let stuck = dep_status.conditions.iter().flatten().find(|c| {
        c.type_ == "Progressing"
            && c.status == "False"
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    let current_request = p.spec.replay.as_ref().map(|r| r.request_id.as_str());
    let replay = o.replay.filter(|r| !r.request_id.is_empty());
    let current_replay = replay.filter(|r| Some(r.request_id.as_str()) == current_request);
    let replay_phase = replay.and_then(|r| r.phase);

    let ready = if desired == 0 {
        cond(
            READY,
            true,
            "ScaledToZero",
            "spec.replicas is 0: no projector pod runs".to_owned(),
        )
    } else if let Err(generation) = generation_seen {
        // As `kubectl rollout status`: first the Deployment controller must see the new
        // template, then every pod must run it, then the old ones must be gone.
        cond(
            READY,
            false,
            "RolloutInProgress",
            format!("the Deployment controller has not observed generation {generation} yet"),
        )
    } else if updated < desired {
        cond(
            READY,
            false,
            "RolloutInProgress",
            format!("{updated}/{desired} projector pods run the current template"),
        )
    } else if pods > updated {
        cond(
            READY,
            false,
            "RolloutInProgress",
            format!("{} old projector pod(s) still running", pods - updated),
        )
    } else if available >= desired {
        cond(
            READY,
            true,
            "ProjectorAvailable",
            format!("{available}/{desired} projector pods available"),
        )
    } else {
        cond(
            READY,
            false,
            "ProjectorUnavailable",
            format!("{available}/{desired} projector pods available"),
        )
    };

    let replaying = match (replay, replay_phase) {
        (Some(r), Some(phase @ (ReplayPhase::Pending | ReplayPhase::Running))) => cond(
            REPLAYING,
            true,
            if phase == ReplayPhase::Pending {
                "ReplayPending"
            } else {
                "ReplayRunning"
            },
            {
                let mut message = format!(
                    "replay {} runs in Job {}",
                    r.request_id,
                    r.job_name.as_deref().unwrap_or("?")
                );
                if let Some(why) = r
                    .pending_reason
                    .as_deref()
                    .filter(|_| phase == ReplayPhase::Pending)
                {
                    message.push_str("; its pod waits: ");
                    message.push_str(why);
                }
                if let Some(next) = o.queued_request {
                    message.push_str(&format!("; replay {next} starts when it has finished"));
                }
                message
            },
        ),
        (Some(r), Some(ReplayPhase::Succeeded)) => cond(
            REPLAYING,
            false,
            "ReplaySucceeded",
            format!("replay {} succeeded", r.request_id),
        ),
        (Some(r), Some(ReplayPhase::Failed)) => cond(
            REPLAYING,
            false,
            "ReplayFailed",
            format!("replay {} failed", r.request_id),
        ),
        _ => cond(
            REPLAYING,
            false,
            "NoReplay",
            "no replay requested".to_owned(),
        ),
    };

    let replay_failed = current_replay.filter(|r| r.phase == Some(ReplayPhase::Failed));
    let degraded = if let Some(c) = stuck {
        cond(
            DEGRADED,
            true,
            "ProgressDeadlineExceeded",
            c.message
                .clone()
                .unwrap_or_else(|| "the projector Deployment does not progress".to_owned()),
        )
    } else if let Some(r) = replay_failed {
        cond(
            DEGRADED,
            true,
            "ReplayFailed",
            format!(
                "{}; the live projection is untouched",
                r.error.as_deref().unwrap_or("the replay failed")
            ),
        )
    } else if available > 0 && available < desired {
        cond(
            DEGRADED,
            true,
            "ProjectorPartiallyAvailable",
            format!("{available}/{desired} projector pods available"),
        )
    } else {
        cond(
            DEGRADED,
            false,
            "AsExpected",
            "nothing is degraded".to_owned(),
        )
    };

    let phase = if stuck.is_some() {
        ProjectionPhase::Failed
    } else if matches!(
        replay_phase,
        Some(ReplayPhase::Pending | ReplayPhase::Running)
    ) {
        ProjectionPhase::Replaying
    } else if degraded.status == "True" {
        ProjectionPhase::Degraded
    } else if ready.status == "True" {
        ProjectionPhase::Running
    } else {
        ProjectionPhase::Pending
    };

    let conditions = [ready, replaying, degraded]
        .into_iter()
        .map(|mut c| {
            c.observed_generation = generation;
            c.last_transition_time = previous
                .iter()
                .find(|old| old.type_ == c.type_ && old.status == c.status)
                .map(|old| old.last_transition_time.clone())
                .unwrap_or(Time(o.now));
            c
        })
        .collect();

    ProjectionStatus {
        observed_generation: generation,
        phase: Some(phase),
        conditions,
        active_target: Some(o.active_target.clone()),
        replay: replay.cloned(),
        lag_events: None,
        dead_letters: None,
    }
}

/// The API server's limit on an Event's `note`.
pub const EVENT_NOTE_MAX_BYTES: usize = 1024;
/// The API server's limit on a condition's `message`.
pub const CONDITION_MESSAGE_MAX_BYTES: usize = 32 * 1024;

/// `text` cut to at most `max_bytes` bytes on a character boundary, ending in `…` when cut, so
/// that the API server accepts it (Event notes, condition messages) and a reader sees it was cut.
pub fn bounded(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    const ELLIPSIS: char = '…';
    let mut end = max_bytes.saturating_sub(ELLIPSIS.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = text[..end].to_owned();
    cut.push(ELLIPSIS);
    cut
}

fn cond(type_: &str, status: bool, reason: &str, message: String) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message: bounded(&message, CONDITION_MESSAGE_MAX_BYTES),
        observed_generation: None,
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
    }
}

#[cfg(test)]
mod tests;
