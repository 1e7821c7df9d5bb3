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
    exchanges.push(list_replay_jobs(vec![]));
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
    exchanges.push(list_replay_jobs(vec![]));
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
    exchanges.push(list_replay_jobs(vec![]));
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
    exchanges.push(list_replay_jobs(vec![]));
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

fn sqlite_target() -> Target {
    Target {
        type_: crate::crd::TargetType::Sqlite,
        url_secret_ref: crate::crd::SecretKeyRef {
            name: "accounts-sqlite".into(),
            key: "url".into(),
        },
    }
}

fn any_status() -> Exchange {
    Exchange::new(
        Method::PATCH,
        format!("{STATUS}?&force=true&fieldManager=eventline-operator"),
        |_| ok(&to_json(&Projection::test())),
    )
}

/// 1. The projector runs against PostgreSQL: its Deployment is applied (the API server defaults
///    whatever strategy the apply leaves out, owned by no manager).
/// 2. A cross-database replay into SQLite succeeds: the Deployment is applied again with
///    `Recreate`. A `rollingUpdate` left over from step 1 would make the API server refuse it
///    (422), every reconciliation would fail, and the cut-over would never be recorded.
#[tokio::test]
async fn a_cut_over_to_sqlite_switches_the_rollout_strategy_by_server_side_apply() {
    let live = LiveObjects::default();
    let p = Projection::test().with_replicas(1, 1);
    let mut exchanges = rbac(&p);
    exchanges.push(deployment_on(&live, &p, &postgres_target(), 1));
    exchanges.push(any_status());
    reconcile_ok(p, exchanges).await;

    let p = Projection::test()
        .with_replicas(1, 1)
        .with_status(replaying_status(json!({
            "type": "sqlite", "urlSecretRef": {"name": "accounts-sqlite", "key": "url"}
        })))
        .with_replay("r1", Some(sqlite_target()));
    let job = replay_job(&p, &postgres_target())
        .expect("job")
        .expect("requested");
    let succeeded = job_with_status(
        &job,
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
    let mut exchanges = rbac(&p);
    exchanges.push(get_job(succeeded));
    exchanges.push(deployment_on(&live, &p, &sqlite_target(), 1));
    exchanges.push(list_replay_jobs(vec![]));
    exchanges.push(event("Normal", "ReplaySucceeded", "replay r1 succeeded"));
    exchanges.push(event("Normal", "CutOver", "sqlite"));
    exchanges.push(Exchange::new(
        Method::PATCH,
        format!("{STATUS}?&force=true&fieldManager=eventline-operator"),
        |body| {
            assert_eq!(body["status"]["activeTarget"]["type"], "sqlite");
            assert_eq!(body["status"]["replay"]["phase"], "Succeeded");
            ok(&to_json(&Projection::test()))
        },
    ));
    let (_, bodies) = reconcile_ok(p, exchanges).await;
    assert_eq!(bodies[4]["spec"]["strategy"], json!({"type": "Recreate"}));
}

fn failed_job_with_reported_error(reported: &str) -> (Projection, Job) {
    let mut status = replaying_status(pg());
    if let Some(r) = status.replay.as_mut() {
        r.reported = Some(ReportedReplayState {
            phase: ReplayPhase::Failed,
            error: Some(reported.to_owned()),
            started_at: None,
            finished_at: None,
        });
    }
    let p = Projection::test()
        .with_status(status)
        .with_replay("r1", None);
    let job = replay_job(&p, &postgres_target())
        .expect("job")
        .expect("requested");
    let failed = job_with_status(
        &job,
        JobStatus {
            failed: Some(4),
            conditions: Some(vec![job_condition(
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
                EARLIER,
            )]),
            ..JobStatus::default()
        },
    );
    (p, failed)
}

/// The API server refuses Event notes over 1 KiB. A replay's error can be much longer (a
/// database's error with its query): the Event carries a truncated note (cut on a character
/// boundary), the status the whole error.
#[tokio::test]
async fn a_long_replay_error_is_truncated_in_the_event_and_kept_whole_in_the_status() {
    // Multi-byte characters around the 1 KiB boundary: a cut by bytes would split one.
    let reported = format!("duplicate key value violates «{}»", "é".repeat(2000));
    let (p, failed) = failed_job_with_reported_error(&reported);
    let mut exchanges = rbac(&p);
    exchanges.push(get_job(failed));
    exchanges.push(deployment(&p, &postgres_target(), 2));
    exchanges.push(list_replay_jobs(vec![]));
    exchanges.push(Exchange::new(Method::POST, EVENTS, |body| {
        assert_eq!(body["reason"], "ReplayFailed");
        let note = body["note"].as_str().expect("note");
        assert!(note.len() <= 1024, "{} bytes", note.len());
        assert!(
            note.starts_with("replay Job accounts-replay-82f3e9c6 failed"),
            "{note}"
        );
        assert!(note.ends_with('…'), "a cut note says so: {note}");
        respond(StatusCode::CREATED, body)
    }));
    let whole = reported.clone();
    exchanges.push(Exchange::new(
        Method::PATCH,
        format!("{STATUS}?&force=true&fieldManager=eventline-operator"),
        move |body| {
            assert_eq!(body["status"]["phase"], "Degraded");
            let error = body["status"]["replay"]["error"].as_str().expect("error");
            assert!(error.ends_with(&whole), "the whole error is in the status");
            ok(&to_json(&Projection::test()))
        },
    ));
    let (_, bodies) = reconcile_ok(p, exchanges).await;
    let note = bodies[6]["note"].as_str().expect("the Event's note");
    assert!(
        note.len() <= 1024,
        "the API server refuses a note of {} bytes",
        note.len()
    );
}

/// Events are published before the status is written; a failed Event (refused, or the API
/// server briefly unavailable) must not keep `Failed`/`Degraded` out of the status.
#[tokio::test]
async fn a_refused_event_does_not_stop_the_status_write() {
    let (p, failed) = failed_job_with_reported_error("connection reset by peer");
    let mut exchanges = rbac(&p);
    exchanges.push(get_job(failed));
    exchanges.push(deployment(&p, &postgres_target(), 2));
    exchanges.push(list_replay_jobs(vec![]));
    exchanges.push(Exchange::new(Method::POST, EVENTS, |_| {
        api_error(500, "InternalError")
    }));
    exchanges.push(Exchange::new(
        Method::PATCH,
        format!("{STATUS}?&force=true&fieldManager=eventline-operator"),
        |body| {
            assert_eq!(body["status"]["phase"], "Degraded");
            assert_eq!(body["status"]["replay"]["phase"], "Failed");
            ok(&to_json(&Projection::test()))
        },
    ));
    reconcile_ok(p, exchanges).await;
}

/// A replay Job whose pod cannot start (an image that cannot be pulled, a missing Secret) says
/// why in `status.replay.pendingReason` and the Replaying condition, instead of a bare Pending.
#[tokio::test]
async fn a_pending_replay_reports_why_its_pod_does_not_start() {
    let mut recorded = running_record("r1");
    if let Some(r) = recorded.replay.as_mut() {
        r.phase = Some(ReplayPhase::Pending);
    }
    let p = Projection::test()
        .with_status(recorded)
        .with_replay("r1", None);
    let pending = job_for(
        "r1",
        JobStatus {
            active: Some(1),
            start_time: Some(Time(EARLIER.parse().expect("time"))),
            ..JobStatus::default()
        },
    );
    let mut exchanges = rbac(&p);
    exchanges.push(get_job(pending));
    exchanges.push(Exchange::new(
        Method::GET,
        format!("/api/v1/namespaces/bank/pods?&labelSelector=batch.kubernetes.io%2Fjob-name%3D{JOB_R1}"),
        |_| {
            ok(&json!({
                "apiVersion": "v1", "kind": "PodList", "metadata": {},
                "items": [{
                    "metadata": {"name": format!("{JOB_R1}-x7k2p"), "namespace": NS},
                    "status": {
                        "phase": "Pending",
                        "containerStatuses": [{
                            "name": "replay", "image": "registry.example/eventline:1.0.0",
                            "imageID": "", "ready": false, "restartCount": 0,
                            "state": {"waiting": {
                                "reason": "ImagePullBackOff",
                                "message": "Back-off pulling image \"registry.example/eventline:1.0.0\"",
                            }},
                        }],
                    },
                }],
            }))
        },
    ));
    exchanges.push(deployment(&p, &postgres_target(), 2));
    let why = "ImagePullBackOff: Back-off pulling image \"registry.example/eventline:1.0.0\"";
    exchanges.push(Exchange::new(
        Method::PATCH,
        format!("{STATUS}?&force=true&fieldManager=eventline-operator"),
        move |body| {
            assert_eq!(body["status"]["replay"]["phase"], "Pending");
            assert_eq!(body["status"]["replay"]["pendingReason"], why);
            let replaying = &body["status"]["conditions"][1];
            assert_eq!(replaying["reason"], "ReplayPending");
            assert_eq!(
                replaying["message"],
                format!("replay r1 runs in Job {JOB_R1}; its pod waits: {why}")
            );
            ok(&to_json(&Projection::test()))
        },
    ));
    let (action, _) = reconcile_ok(p, exchanges).await;
    assert_eq!(
        action,
        Action::requeue(PENDING_REPLAY_RECHECK),
        "nothing else changes while the pod waits: look again soon"
    );
}

/// A finished replay Job, named after `request_id`, completed at `at`.
fn finished_job(request_id: &str, at: &str) -> Job {
    job_for(
        request_id,
        JobStatus {
            succeeded: Some(1),
            completion_time: Some(Time(at.parse().expect("time"))),
            conditions: Some(vec![job_condition(
                "Complete",
                "CompletionsReached",
                "",
                at,
            )]),
            ..JobStatus::default()
        },
    )
}

/// When a replay finishes, the finished replay Jobs of the Projection beyond
/// `spec.replayHistoryLimit` (default 3), oldest first, are deleted; a running one never is.
#[tokio::test]
async fn when_a_replay_finishes_only_the_newest_finished_jobs_are_kept() {
    let p = Projection::test()
        .with_status(running_record("r1"))
        .with_replay("r1", None);
    let done = finished_job("r1", "2026-01-02T03:00:00Z");
    let mut exchanges = rbac(&p);
    exchanges.push(get_job(done.clone()));
    exchanges.push(deployment(&p, &postgres_target(), 2));
    let listed = vec![
        finished_job("r-2025-a", "2025-03-01T00:00:00Z"),
        done,
        finished_job("r-2025-b", "2025-06-01T00:00:00Z"),
        job_for(
            "other",
            JobStatus {
                active: Some(1),
                ready: Some(1),
                ..JobStatus::default()
            },
        ),
        finished_job("r-2025-c", "2025-09-01T00:00:00Z"),
        finished_job("r-2025-d", "2025-12-01T00:00:00Z"),
    ];
    exchanges.push(list_replay_jobs(listed));
    for oldest in ["r-2025-a", "r-2025-b"] {
        let name = crate::resources::replay_job_name(NAME, oldest);
        exchanges.push(Exchange::new(
            Method::DELETE,
            format!("{JOBS}/{name}?"),
            move |body| {
                assert_eq!(body["propagationPolicy"], "Background", "its pods go too");
                ok(&json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}))
            },
        ));
    }
    exchanges.push(event("Normal", "ReplaySucceeded", "replay r1 succeeded"));
    exchanges.push(any_status());
    reconcile_ok(p, exchanges).await;
}
