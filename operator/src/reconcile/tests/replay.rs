//! Replay scenarios: new request ids, Job success and failure, one replay at a time.

use http::{Method, StatusCode};
use k8s_openapi::api::batch::v1::JobStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

use super::*;
use crate::crd::ReportedReplayState;

#[tokio::test]
async fn new_request_id_creates_the_replay_job_once() {
    let p = Projection::test()
        .with_status(steady_status(1))
        .with_replay("r1", None);
    let job = replay_job(&p, &postgres_target())
        .expect("job")
        .expect("requested");
    let mut exchanges = rbac(&p);
    exchanges.push(get_job_missing());
    let expected_job = to_json(&job);
    exchanges.push(Exchange::new(
        Method::POST,
        format!("{JOBS}?"),
        move |body| {
            assert_eq!(body, &expected_job, "the Job is created exactly as built");
            respond(StatusCode::CREATED, body)
        },
    ));
    exchanges.push(deployment(&p, &postgres_target(), 2));
    exchanges.push(event(
        "Normal",
        "ReplayStarted",
        "replay r1 started in Job accounts-replay-82f3e9c6",
    ));
    exchanges.push(status(
        &p,
        json!({
            "observedGeneration": 1,
            "phase": "Replaying",
            "conditions": [
                condition("Ready", true, "ProjectorAvailable", "2/2 projector pods available", EARLIER, 1),
                condition("Replaying", true, "ReplayPending", "replay r1 runs in Job accounts-replay-82f3e9c6", NOW, 1),
                condition("Degraded", false, "AsExpected", "nothing is degraded", EARLIER, 1),
            ],
            "activeTarget": pg(),
            "replay": {"requestId": "r1", "phase": "Pending", "jobName": JOB_R1, "target": pg()},
        }),
    ));
    reconcile_ok(p, exchanges).await;
}

#[tokio::test]
async fn new_request_id_clears_the_previous_replays_progress() {
    let mut previous = steady_status(1);
    previous.replay = Some(ReplayStatus {
        request_id: "r0".into(),
        phase: Some(ReplayPhase::Succeeded),
        job_name: Some("accounts-replay-00000000".into()),
        target: Some(postgres_target()),
        events_applied: Some(1000),
        events_total: Some(1000),
        percent: Some(100.0),
        reported: Some(ReportedReplayState {
            phase: ReplayPhase::Succeeded,
            error: None,
            started_at: None,
            finished_at: None,
        }),
        ..ReplayStatus::default()
    });
    let p = Projection::test()
        .with_status(previous)
        .with_replay("r1", None);
    let mut exchanges = rbac(&p);
    exchanges.push(get_job_missing());
    exchanges.push(Exchange::new(Method::POST, format!("{JOBS}?"), |body| {
        respond(StatusCode::CREATED, body)
    }));
    exchanges.push(Exchange::new(Method::PATCH, format!("{STATUS}?"), |body| {
        assert_eq!(
            body,
            &json!({"status": {"replay": {
                "eventsApplied": null, "eventsTotal": null, "percent": null,
                "eventsPerSecond": null, "etaSeconds": null, "reported": null,
            }}}),
            "a JSON merge patch removing the old request's progress"
        );
        ok(&to_json(&Projection::test()))
    }));
    exchanges.push(deployment(&p, &postgres_target(), 2));
    exchanges.push(event("Normal", "ReplayStarted", "replay r1"));
    exchanges.push(Exchange::new(
        Method::PATCH,
        format!("{STATUS}?&force=true&fieldManager=eventline-operator"),
        |body| {
            assert_eq!(
                body["status"]["replay"],
                json!({"requestId": "r1", "phase": "Pending", "jobName": JOB_R1, "target": pg()})
            );
            ok(&to_json(&Projection::test()))
        },
    ));
    reconcile_ok(p, exchanges).await;
}

#[tokio::test]
async fn an_existing_job_for_a_new_request_is_observed_not_created_again() {
    // e.g. the operator created the Job and stopped before it wrote the status.
    let p = Projection::test()
        .with_status(steady_status(1))
        .with_replay("r1", None);
    let job = replay_job(&p, &postgres_target())
        .expect("job")
        .expect("requested");
    let running = job_with_status(
        &job,
        JobStatus {
            active: Some(1),
            ready: Some(1),
            start_time: Some(Time(EARLIER.parse().expect("time"))),
            ..JobStatus::default()
        },
    );
    let mut exchanges = rbac(&p);
    exchanges.push(get_job(running));
    exchanges.push(deployment(&p, &postgres_target(), 2));
    exchanges.push(Exchange::new(
        Method::PATCH,
        format!("{STATUS}?&force=true&fieldManager=eventline-operator"),
        |body| {
            assert_eq!(body["status"]["phase"], "Replaying");
            assert_eq!(
                body["status"]["replay"],
                json!({"requestId": "r1", "phase": "Running", "jobName": JOB_R1, "target": pg(), "startedAt": EARLIER})
            );
            ok(&to_json(&Projection::test()))
        },
    ));
    reconcile_ok(p, exchanges).await;
}

#[tokio::test]
async fn a_finished_request_whose_job_is_gone_is_never_started_again() {
    let mut previous = steady_status(1);
    let record = json!({
        "requestId": "r1", "phase": "Succeeded", "jobName": JOB_R1, "target": pg(),
        "startedAt": EARLIER, "finishedAt": EARLIER,
    });
    previous.replay = Some(serde_json::from_value(record.clone()).expect("replay"));
    // The replay process's progress is in the status too; the operator must not send it.
    if let Some(r) = previous.replay.as_mut() {
        r.events_applied = Some(10);
        r.percent = Some(100.0);
    }
    previous.conditions[1] = serde_json::from_value(condition(
        "Replaying",
        false,
        "ReplaySucceeded",
        "replay r1 succeeded",
        EARLIER,
        1,
    ))
    .expect("condition");
    let p = Projection::test()
        .with_status(previous.clone())
        .with_replay("r1", None);
    let mut exchanges = rbac(&p);
    exchanges.push(get_job_missing());
    exchanges.push(deployment(&p, &postgres_target(), 2));
    let mut expected = to_json(&previous);
    expected["replay"] = record;
    exchanges.push(status(&p, expected));
    reconcile_ok(p, exchanges).await;
}

fn replaying_status(target: Value) -> ProjectionStatus {
    let mut s = steady_status(1);
    s.phase = Some(ProjectionPhase::Replaying);
    s.conditions[1] = serde_json::from_value(condition(
        "Replaying",
        true,
        "ReplayRunning",
        "replay r1 runs in Job accounts-replay-82f3e9c6",
        EARLIER,
        1,
    ))
    .expect("condition");
    s.replay = Some(
        serde_json::from_value(json!({
            "requestId": "r1", "phase": "Running", "jobName": JOB_R1, "target": target,
            "startedAt": EARLIER, "eventsApplied": 900, "eventsTotal": 1000, "percent": 90.0,
            "reported": {"phase": "Running", "error": "connection reset by peer"},
        }))
        .expect("replay"),
    );
    s
}

#[tokio::test]
async fn job_success_of_a_cross_database_replay_moves_the_projector_to_the_new_target() {
    let p = Projection::test()
        .with_status(replaying_status(my()))
        .with_replay("r1", Some(mysql_target()));
    let job = replay_job(&p, &postgres_target())
        .expect("job")
        .expect("requested");
    let done = "2026-01-02T03:00:00Z";
    let succeeded = job_with_status(
        &job,
        JobStatus {
            succeeded: Some(1),
            start_time: Some(Time(EARLIER.parse().expect("time"))),
            completion_time: Some(Time(done.parse().expect("time"))),
            conditions: Some(vec![job_condition(
                "Complete",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                done,
            )]),
            ..JobStatus::default()
        },
    );
    let mut exchanges = rbac(&p);
    exchanges.push(get_job(succeeded));
    // The Deployment now reads the MySQL Secret, with a new consumer group.
    exchanges.push(deployment(&p, &mysql_target(), 2));
    exchanges.push(event("Normal", "ReplaySucceeded", "replay r1 succeeded"));
    exchanges.push(event(
        "Normal",
        "CutOver",
        "now uses the mysql database of Secret accounts-mysql key url",
    ));
    exchanges.push(status(
        &p,
        json!({
            "observedGeneration": 1,
            "phase": "Running",
            "conditions": [
                condition("Ready", true, "ProjectorAvailable", "2/2 projector pods available", EARLIER, 1),
                condition("Replaying", false, "ReplaySucceeded", "replay r1 succeeded", NOW, 1),
                condition("Degraded", false, "AsExpected", "nothing is degraded", EARLIER, 1),
            ],
            "activeTarget": my(),
            "replay": {
                "requestId": "r1", "phase": "Succeeded", "jobName": JOB_R1, "target": my(),
                "startedAt": EARLIER, "finishedAt": done,
            },
        }),
    ));
    let (_, bodies) = reconcile_ok(p, exchanges).await;
    let env = &bodies[4]["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(
        env[4]["valueFrom"]["secretKeyRef"]["name"],
        "accounts-mysql"
    );
}

#[tokio::test]
async fn job_failure_degrades_with_an_event_and_leaves_the_deployment_untouched() {
    let p = Projection::test()
        .with_status(replaying_status(my()))
        .with_replay("r1", Some(mysql_target()));
    let job = replay_job(&p, &postgres_target())
        .expect("job")
        .expect("requested");
    let failed_at = "2026-01-02T03:01:00Z";
    let failed = job_with_status(
        &job,
        JobStatus {
            failed: Some(4),
            start_time: Some(Time(EARLIER.parse().expect("time"))),
            conditions: Some(vec![job_condition(
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
                failed_at,
            )]),
            ..JobStatus::default()
        },
    );
    let error = "replay Job accounts-replay-82f3e9c6 failed (BackoffLimitExceeded: Job has reached the specified \
                 backoff limit); last error reported by the replay: connection reset by peer";
    let mut exchanges = rbac(&p);
    exchanges.push(get_job(failed));
    // Exactly the Deployment of the live (PostgreSQL) target: the failed replay changes nothing.
    exchanges.push(deployment(&p, &postgres_target(), 2));
    exchanges.push(event("Warning", "ReplayFailed", error));
    exchanges.push(status(
        &p,
        json!({
            "observedGeneration": 1,
            "phase": "Degraded",
            "conditions": [
                condition("Ready", true, "ProjectorAvailable", "2/2 projector pods available", EARLIER, 1),
                condition("Replaying", false, "ReplayFailed", "replay r1 failed", NOW, 1),
                condition("Degraded", true, "ReplayFailed", &format!("{error}; the live projection is untouched"), NOW, 1),
            ],
            "activeTarget": pg(),
            "replay": {
                "requestId": "r1", "phase": "Failed", "jobName": JOB_R1, "target": my(),
                "startedAt": EARLIER, "finishedAt": failed_at, "error": error,
            },
        }),
    ));
    reconcile_ok(p, exchanges).await;
}

#[tokio::test]
async fn a_failure_already_recorded_publishes_no_second_event() {
    let p = Projection::test().with_replay("r1", None);
    let job = replay_job(&p, &postgres_target())
        .expect("job")
        .expect("requested");
    let failed = job_with_status(
        &job,
        JobStatus {
            conditions: Some(vec![job_condition(
                "Failed",
                "BackoffLimitExceeded",
                "limit",
                EARLIER,
            )]),
            ..JobStatus::default()
        },
    );
    let mut previous = steady_status(1);
    previous.replay = Some(ReplayStatus {
        request_id: "r1".into(),
        phase: Some(ReplayPhase::Failed),
        ..ReplayStatus::default()
    });
    let p = p.with_status(previous);
    let mut exchanges = rbac(&p);
    exchanges.push(get_job(failed));
    exchanges.push(deployment(&p, &postgres_target(), 2));
    exchanges.push(Exchange::new(
        Method::PATCH,
        format!("{STATUS}?&force=true&fieldManager=eventline-operator"),
        |body| {
            assert_eq!(body["status"]["phase"], "Degraded");
            ok(&to_json(&Projection::test()))
        },
    ));
    reconcile_ok(p, exchanges).await;
}

fn running_record(request_id: &str) -> ProjectionStatus {
    let mut s = steady_status(1);
    s.phase = Some(ProjectionPhase::Replaying);
    s.replay = Some(ReplayStatus {
        request_id: request_id.into(),
        phase: Some(ReplayPhase::Running),
        job_name: Some(crate::resources::replay_job_name(NAME, request_id)),
        target: Some(postgres_target()),
        ..ReplayStatus::default()
    });
    s
}

fn job_for(request_id: &str, status: JobStatus) -> Job {
    let p = Projection::test().with_replay(request_id, None);
    let job = replay_job(&p, &postgres_target())
        .expect("job")
        .expect("requested");
    job_with_status(&job, status)
}

#[tokio::test]
async fn a_new_request_waits_until_the_running_replay_has_finished() {
    let p = Projection::test()
        .with_status(running_record("r0"))
        .with_replay("r1", None);
    let r0_job = crate::resources::replay_job_name(NAME, "r0");
    let mut exchanges = rbac(&p);
    let running = job_for(
        "r0",
        JobStatus {
            active: Some(1),
            ready: Some(1),
            ..JobStatus::default()
        },
    );
    exchanges.push(Exchange::new(
        Method::GET,
        format!("{JOBS}/{r0_job}"),
        move |_| ok(&to_json(&running)),
    ));
    // No POST: the r1 Job is not created while r0 runs.
    exchanges.push(deployment(&p, &postgres_target(), 2));
    let message = format!("replay r0 runs in Job {r0_job}; replay r1 starts when it has finished");
    exchanges.push(Exchange::new(
        Method::PATCH,
        format!("{STATUS}?&force=true&fieldManager=eventline-operator"),
        move |body| {
            assert_eq!(body["status"]["replay"]["requestId"], "r0");
            assert_eq!(body["status"]["replay"]["phase"], "Running");
            assert_eq!(body["status"]["conditions"][1]["message"], message);
            assert_eq!(body["status"]["phase"], "Replaying");
            ok(&to_json(&Projection::test()))
        },
    ));
    let (action, _) = reconcile_ok(p, exchanges).await;
    assert_eq!(action, Action::requeue(STEADY_REQUEUE));
}

#[tokio::test]
async fn when_the_previous_replay_finishes_the_waiting_request_is_requeued() {
    let p = Projection::test()
        .with_status(running_record("r0"))
        .with_replay("r1", None);
    let r0_job = crate::resources::replay_job_name(NAME, "r0");
    let mut exchanges = rbac(&p);
    let done = job_for(
        "r0",
        JobStatus {
            succeeded: Some(1),
            conditions: Some(vec![job_condition(
                "Complete",
                "CompletionsReached",
                "",
                EARLIER,
            )]),
            ..JobStatus::default()
        },
    );
    exchanges.push(Exchange::new(
        Method::GET,
        format!("{JOBS}/{r0_job}"),
        move |_| ok(&to_json(&done)),
    ));
    exchanges.push(deployment(&p, &postgres_target(), 2));
    exchanges.push(event("Normal", "ReplaySucceeded", "replay r0 succeeded"));
    exchanges.push(Exchange::new(
        Method::PATCH,
        format!("{STATUS}?&force=true&fieldManager=eventline-operator"),
        |body| {
            assert_eq!(body["status"]["replay"]["requestId"], "r0");
            assert_eq!(body["status"]["replay"]["phase"], "Succeeded");
            ok(&to_json(&Projection::test()))
        },
    ));
    let (action, _) = reconcile_ok(p, exchanges).await;
    assert_eq!(action, Action::requeue(QUEUED_REPLAY_DELAY));
}

#[tokio::test]
async fn a_job_is_still_followed_after_its_request_is_removed_from_the_spec() {
    let p = Projection::test().with_status(running_record("r1"));
    assert!(p.spec.replay.is_none());
    let mut exchanges = rbac(&p);
    let failed = job_for(
        "r1",
        JobStatus {
            conditions: Some(vec![job_condition(
                "Failed",
                "BackoffLimitExceeded",
                "limit",
                EARLIER,
            )]),
            ..JobStatus::default()
        },
    );
    exchanges.push(get_job(failed));
    exchanges.push(deployment(&p, &postgres_target(), 2));
    exchanges.push(event(
        "Warning",
        "ReplayFailed",
        "replay Job accounts-replay-82f3e9c6 failed",
    ));
    exchanges.push(Exchange::new(
        Method::PATCH,
        format!("{STATUS}?&force=true&fieldManager=eventline-operator"),
        |body| {
            assert_eq!(body["status"]["replay"]["phase"], "Failed");
            assert_eq!(
                body["status"]["phase"], "Running",
                "a replay no longer requested does not degrade"
            );
            ok(&to_json(&Projection::test()))
        },
    ));
    reconcile_ok(p, exchanges).await;
}

#[tokio::test]
async fn a_job_of_another_request_under_the_same_name_is_not_taken_for_ours() {
    let p = Projection::test()
        .with_status(steady_status(1))
        .with_replay("r1", None);
    let mut foreign = replay_job(&p, &postgres_target())
        .expect("job")
        .expect("requested");
    foreign
        .metadata
        .annotations
        .as_mut()
        .expect("annotations")
        .insert(
            crate::resources::REPLAY_REQUEST_ID_ANNOTATION.into(),
            "another id".into(),
        );
    let mut exchanges = rbac(&p);
    exchanges.push(get_job(foreign));
    let (ctx, server) = Context::test();
    let server = server.run(exchanges);
    let error = reconcile(Arc::new(p), ctx).await.expect_err("name taken");
    finished(server).await;
    assert_eq!(
        error.to_string(),
        "Job bank/accounts-replay-82f3e9c6 belongs to replay request \"another id\", not \"r1\": use another requestId"
    );
}
