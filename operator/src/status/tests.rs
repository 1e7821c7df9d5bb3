use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};
use k8s_openapi::api::batch::v1::JobStatus;

use super::*;
use crate::crd::ReportedReplayState;
use crate::fixtures::{TestProjection, job_condition, now, postgres_target};

/// A Deployment whose rollout has finished (every pod runs the current template), with
/// `available` pods available.
fn deployment(available: i32) -> Deployment {
    rollout(1, 1, available, available, available)
}

/// A Deployment at `generation`, as its controller last saw it: `observed` generation, `replicas`
/// pods (old and new), `updated` of them on the current template, `available` available.
fn rollout(
    generation: i64,
    observed: i64,
    replicas: i32,
    updated: i32,
    available: i32,
) -> Deployment {
    let mut d = Deployment {
        status: Some(DeploymentStatus {
            observed_generation: Some(observed),
            replicas: Some(replicas),
            updated_replicas: Some(updated),
            available_replicas: Some(available),
            ..DeploymentStatus::default()
        }),
        ..Deployment::default()
    };
    d.metadata.generation = Some(generation);
    d
}

/// After an image change the new pod crash-loops while both old pods keep serving: 2 of 2
/// available, but the rollout is not done, so the projection is not Ready (and Argo CD, which
/// reads Ready, does not call it Healthy).
#[test]
fn a_rollout_that_has_not_finished_is_not_ready() {
    let p = Projection::test();
    let s = compute_for(&p, &rollout(2, 2, 3, 1, 2), None);
    let ready = get(&s, READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "RolloutInProgress")
    );
    assert_eq!(ready.message, "1/2 projector pods run the current template");
    assert_eq!(
        get(&s, DEGRADED).status,
        "False",
        "the old pods still serve"
    );

    // All new pods there, an old one still terminating.
    let s = compute_for(&p, &rollout(2, 2, 3, 2, 2), None);
    assert_eq!(get(&s, READY).reason, "RolloutInProgress");
    assert_eq!(
        get(&s, READY).message,
        "1 old projector pod(s) still running"
    );

    // The Deployment controller has not seen the new template yet.
    let s = compute_for(&p, &rollout(3, 2, 2, 2, 2), None);
    assert_eq!(get(&s, READY).reason, "RolloutInProgress");
    assert_eq!(
        get(&s, READY).message,
        "the Deployment controller has not observed generation 3 yet"
    );

    // Done.
    let s = compute_for(&p, &rollout(3, 3, 2, 2, 2), None);
    assert_eq!(get(&s, READY).status, "True");
}

fn compute_for(p: &Projection, d: &Deployment, replay: Option<&ReplayStatus>) -> ProjectionStatus {
    compute(Observed {
        projection: p,
        deployment: Some(d),
        replay,
        active_target: &postgres_target(),
        queued_request: None,
        now: now(),
    })
}

fn get<'a>(s: &'a ProjectionStatus, type_: &str) -> &'a Condition {
    s.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .expect("condition present")
}

fn job(status: JobStatus) -> Job {
    Job {
        status: Some(status),
        ..Job::default()
    }
}

#[test]
fn job_state_reads_conditions_before_pod_counts() {
    assert_eq!(JobState::of(&job(JobStatus::default())), JobState::Pending);
    assert_eq!(
        JobState::of(&job(JobStatus {
            active: Some(1),
            ..JobStatus::default()
        })),
        JobState::Pending,
        "an active pod that is not running yet"
    );
    assert_eq!(
        JobState::of(&job(JobStatus {
            active: Some(1),
            ready: Some(1),
            ..JobStatus::default()
        })),
        JobState::Running
    );
    assert_eq!(
        JobState::of(&job(JobStatus {
            active: Some(1),
            failed: Some(1),
            ..JobStatus::default()
        })),
        JobState::Running,
        "retrying after a failed pod"
    );
    let t = "2026-01-02T00:00:00Z";
    assert_eq!(
        JobState::of(&job(JobStatus {
            failed: Some(4),
            conditions: Some(vec![job_condition(
                "Failed",
                "BackoffLimitExceeded",
                "limit reached",
                t
            )]),
            ..JobStatus::default()
        })),
        JobState::Failed {
            finished_at: Some(Time(t.parse().expect("time"))),
            reason: "BackoffLimitExceeded: limit reached".into()
        }
    );
    let mut not_yet = job_condition("Complete", "CompletionsReached", "", t);
    not_yet.status = "False".into();
    assert_eq!(
        JobState::of(&job(JobStatus {
            conditions: Some(vec![not_yet]),
            ..JobStatus::default()
        })),
        JobState::Pending,
        "a condition that is not True does not count"
    );
    assert!(matches!(
        JobState::of(&job(JobStatus {
            succeeded: Some(1),
            conditions: Some(vec![job_condition("Complete", "CompletionsReached", "", t)]),
            ..JobStatus::default()
        })),
        JobState::Succeeded { .. }
    ));
}

#[test]
fn ready_follows_available_replicas() {
    let p = Projection::test();
    let s = compute_for(&p, &deployment(2), None);
    assert_eq!(
        (
            get(&s, READY).status.as_str(),
            get(&s, READY).reason.as_str()
        ),
        ("True", "ProjectorAvailable")
    );
    assert_eq!(s.phase, Some(ProjectionPhase::Running));
    let s = compute_for(&p, &deployment(0), None);
    assert_eq!(get(&s, READY).status, "False");
    assert_eq!(
        get(&s, DEGRADED).status,
        "False",
        "nothing available yet is pending, not degraded"
    );
    assert_eq!(s.phase, Some(ProjectionPhase::Pending));
    let s = compute_for(&p, &deployment(1), None);
    assert_eq!(get(&s, DEGRADED).reason, "ProjectorPartiallyAvailable");
    assert_eq!(s.phase, Some(ProjectionPhase::Degraded));
}

#[test]
fn scaled_to_zero_is_ready() {
    let p = Projection::test().with_replicas(0, 2);
    let s = compute_for(&p, &deployment(0), None);
    assert_eq!(get(&s, READY).reason, "ScaledToZero");
    assert_eq!(get(&s, READY).status, "True");
    assert_eq!(s.phase, Some(ProjectionPhase::Running));
    assert_eq!(s.observed_generation, Some(2));
    assert!(
        s.conditions
            .iter()
            .all(|c| c.observed_generation == Some(2))
    );
}

#[test]
fn transition_time_changes_only_when_the_status_changes() {
    let p = Projection::test();
    let first = compute_for(&p, &deployment(2), None);
    let earlier = Time("2025-12-31T00:00:00Z".parse().expect("time"));
    let mut stored = first.clone();
    for c in &mut stored.conditions {
        c.last_transition_time = earlier.clone();
    }
    let p = p.with_status(stored);
    // Same statuses, different message: the transition time stays.
    let again = compute_for(&p, &deployment(3), None);
    assert_eq!(get(&again, READY).message, "3/2 projector pods available");
    assert_eq!(get(&again, READY).last_transition_time, earlier);
    // Ready flips: its time is now, the others keep theirs.
    let flipped = compute_for(&p, &deployment(0), None);
    assert_eq!(get(&flipped, READY).last_transition_time, Time(now()));
    assert_eq!(get(&flipped, REPLAYING).last_transition_time, earlier);
}

#[test]
fn a_stuck_rollout_is_failed() {
    let mut d = deployment(0);
    if let Some(s) = d.status.as_mut() {
        s.conditions = Some(vec![DeploymentCondition {
            type_: "Progressing".into(),
            status: "False".into(),
            reason: Some("ProgressDeadlineExceeded".into()),
            message: Some(
                "ReplicaSet \"accounts-projector-abc\" has timed out progressing.".into(),
            ),
            ..DeploymentCondition::default()
        }]);
    }
    let s = compute_for(&Projection::test(), &d, None);
    assert_eq!(s.phase, Some(ProjectionPhase::Failed));
    assert_eq!(get(&s, DEGRADED).reason, "ProgressDeadlineExceeded");
    assert!(get(&s, DEGRADED).message.contains("timed out progressing"));
}

fn record(id: &str, phase: ReplayPhase) -> ReplayStatus {
    ReplayStatus {
        request_id: id.into(),
        phase: Some(phase),
        job_name: Some(format!("accounts-replay-{id}")),
        error: (phase == ReplayPhase::Failed).then(|| "boom".to_owned()),
        ..ReplayStatus::default()
    }
}

#[test]
fn replay_phases_drive_replaying_and_degraded() {
    let p = Projection::test().with_replay("r1", None);
    let running = compute_for(
        &p,
        &deployment(2),
        Some(&record("r1", ReplayPhase::Running)),
    );
    assert_eq!(running.phase, Some(ProjectionPhase::Replaying));
    assert_eq!(get(&running, REPLAYING).reason, "ReplayRunning");
    let failed = compute_for(&p, &deployment(2), Some(&record("r1", ReplayPhase::Failed)));
    assert_eq!(failed.phase, Some(ProjectionPhase::Degraded));
    assert_eq!(get(&failed, DEGRADED).reason, "ReplayFailed");
    assert_eq!(
        get(&failed, DEGRADED).message,
        "boom; the live projection is untouched"
    );
    assert_eq!(
        get(&failed, READY).status,
        "True",
        "the live projector still serves"
    );
    let ok = compute_for(
        &p,
        &deployment(2),
        Some(&record("r1", ReplayPhase::Succeeded)),
    );
    assert_eq!(ok.phase, Some(ProjectionPhase::Running));
    assert_eq!(get(&ok, REPLAYING).reason, "ReplaySucceeded");
}

#[test]
fn a_failed_replay_no_longer_requested_does_not_degrade() {
    let p = Projection::test();
    let s = compute_for(&p, &deployment(2), Some(&record("r1", ReplayPhase::Failed)));
    assert_eq!(get(&s, DEGRADED).status, "False");
    assert_eq!(s.phase, Some(ProjectionPhase::Running));
    assert_eq!(
        s.replay.as_ref().map(|r| r.request_id.as_str()),
        Some("r1"),
        "kept as history"
    );
}

#[test]
fn the_operator_never_sends_the_replay_process_fields() {
    let full = ReplayStatus {
        events_applied: Some(5),
        events_total: Some(10),
        percent: Some(50.0),
        events_per_second: Some(2.5),
        eta_seconds: Some(2),
        reported: Some(ReportedReplayState {
            phase: ReplayPhase::Running,
            error: None,
            started_at: None,
            finished_at: None,
        }),
        ..record("r1", ReplayPhase::Running)
    };
    let owned = serde_json::to_value(operator_owned_replay(&full)).expect("json");
    assert_eq!(
        owned,
        serde_json::json!({"requestId": "r1", "phase": "Running", "jobName": "accounts-replay-r1"})
    );
    let p = Projection::test().with_replay("r1", None);
    let s = compute_for(&p, &deployment(2), Some(&operator_owned_replay(&full)));
    let json = serde_json::to_value(&s).expect("json");
    assert!(json.get("lagEvents").is_none() && json.get("deadLetters").is_none());
    for field in crate::report::PROGRESS_FIELDS {
        assert!(
            json["replay"].get(field).is_none(),
            "{field} is the replay process's"
        );
    }
}

#[test]
fn replay_error_names_the_job_and_the_reported_error() {
    let obs = ReplayObservation {
        request_id: "r1".into(),
        job_name: "accounts-replay-82f3e9c6".into(),
        target: postgres_target(),
        state: JobState::Failed {
            finished_at: None,
            reason: "BackoffLimitExceeded: limit".into(),
        },
        started_at: None,
    };
    assert_eq!(
        replay_status(&obs, Some("disk full")).error.as_deref(),
        Some(
            "replay Job accounts-replay-82f3e9c6 failed (BackoffLimitExceeded: limit); last error reported by the replay: disk full"
        )
    );
    assert_eq!(
        replay_status(&obs, None).error.as_deref(),
        Some("replay Job accounts-replay-82f3e9c6 failed (BackoffLimitExceeded: limit)")
    );
}

fn pod(status: serde_json::Value) -> Pod {
    serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "status": status}))
        .expect("pod")
}

#[test]
fn a_pending_pod_says_why_it_waits_and_an_ordinary_start_says_nothing() {
    let creating = pod(
        serde_json::json!({"phase": "Pending", "containerStatuses": [{
            "name": "replay", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ContainerCreating"}},
        }]}),
    );
    assert_eq!(pending_reason(std::slice::from_ref(&creating)), None);
    let missing_secret = pod(
        serde_json::json!({"phase": "Pending", "containerStatuses": [{
            "name": "replay", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "CreateContainerConfigError",
                                  "message": "secret \"eventline-store\" not found"}},
        }]}),
    );
    assert_eq!(
        pending_reason(&[creating.clone(), missing_secret]).as_deref(),
        Some("CreateContainerConfigError: secret \"eventline-store\" not found")
    );
    let unschedulable = pod(serde_json::json!({"phase": "Pending", "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient memory.",
    }]}));
    assert_eq!(
        pending_reason(&[unschedulable]).as_deref(),
        Some("Unschedulable: 0/3 nodes are available: 3 Insufficient memory.")
    );
}

#[test]
fn bounded_text_is_cut_on_a_character_boundary_and_says_so() {
    assert_eq!(bounded("short", 1024), "short");
    let exact = "a".repeat(1024);
    assert_eq!(bounded(&exact, 1024), exact);
    let long = "é".repeat(600); // 1200 bytes
    let cut = bounded(&long, 1024);
    assert!(cut.len() <= 1024, "{}", cut.len());
    assert!(cut.ends_with('…'));
    assert!(cut.trim_end_matches('…').chars().all(|c| c == 'é'));
}
