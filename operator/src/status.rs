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
        ..ReplayStatus::default()
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
            match o.queued_request {
                Some(next) => format!(
                    "replay {} runs in Job {}; replay {next} starts when it has finished",
                    r.request_id,
                    r.job_name.as_deref().unwrap_or("?")
                ),
                None => format!(
                    "replay {} runs in Job {}",
                    r.request_id,
                    r.job_name.as_deref().unwrap_or("?")
                ),
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

fn cond(type_: &str, status: bool, reason: &str, message: String) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: None,
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
    }
}

#[cfg(test)]
mod tests;
