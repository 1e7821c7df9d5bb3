//! Runs the Argo CD health check `charts/gitops/argocd-health-projection.lua` against sample
//! Projections the way Argo CD does: the object is the global `obj`, the script returns a table
//! `{status, message}`. Argo CD runs health checks in gopher-lua (Lua 5.1); the script uses only
//! what Lua 5.1 and 5.4 share, and this test runs it in Lua 5.4 (mlua, vendored).

use mlua::{Lua, Table, Value as LuaValue};
use serde_json::{Value, json};

const SCRIPT: &str = include_str!("../../charts/gitops/argocd-health-projection.lua");

/// Converts a JSON value into the Lua value Argo CD would hand the script (objects become tables,
/// arrays 1-based sequences).
fn to_lua(lua: &Lua, value: &Value) -> mlua::Result<LuaValue> {
    Ok(match value {
        Value::Null => LuaValue::Nil,
        Value::Bool(b) => LuaValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => LuaValue::Integer(i),
            None => LuaValue::Number(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => LuaValue::String(lua.create_string(s)?),
        Value::Array(items) => {
            let table = lua.create_table()?;
            for (i, item) in items.iter().enumerate() {
                table.set(i + 1, to_lua(lua, item)?)?;
            }
            LuaValue::Table(table)
        }
        Value::Object(map) => {
            let table = lua.create_table()?;
            for (k, v) in map {
                table.set(k.as_str(), to_lua(lua, v)?)?;
            }
            LuaValue::Table(table)
        }
    })
}

/// The health (`status`, `message`) the script returns for this object.
fn health(obj: &Value) -> (String, String) {
    let lua = Lua::new();
    let value = to_lua(&lua, obj).expect("convert the object");
    lua.globals().set("obj", value).expect("set obj");
    let hs: Table = lua
        .load(SCRIPT)
        .set_name("argocd-health-projection.lua")
        .eval()
        .expect("the health script runs and returns a table");
    let status: String = hs.get("status").expect("hs.status is a string");
    let message: String = hs.get("message").expect("hs.message is a string");
    (status, message)
}

fn condition(type_: &str, status: bool, reason: &str, message: &str) -> Value {
    json!({
        "type": type_,
        "status": if status { "True" } else { "False" },
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-11-25T10:00:00Z",
        "observedGeneration": 3,
    })
}

/// A Projection at generation 3 with the given status (and optionally a replay request).
fn projection(request: Option<&str>, status: Option<Value>) -> Value {
    let mut obj = json!({
        "apiVersion": "eventline.io/v1alpha1",
        "kind": "Projection",
        "metadata": {"name": "accounts", "namespace": "bank", "generation": 3},
        "spec": {"projection": "accounts", "image": "eventline:0.1.0", "replicas": 2},
    });
    if let Some(id) = request {
        obj["spec"]["replay"] = json!({"requestId": id});
    }
    if let Some(status) = status {
        obj["status"] = status;
    }
    obj
}

fn running_status() -> Value {
    json!({
        "observedGeneration": 3,
        "phase": "Running",
        "conditions": [
            condition("Ready", true, "ProjectorAvailable", "2/2 projector pods available"),
            condition("Replaying", false, "NoReplay", "no replay requested"),
            condition("Degraded", false, "AsExpected", "nothing is degraded"),
        ],
    })
}

#[test]
fn no_status_yet_is_progressing() {
    let (status, message) = health(&projection(None, None));
    assert_eq!(status, "Progressing");
    assert!(message.contains("operator"), "{message}");
}

#[test]
fn running_with_all_pods_is_healthy() {
    let (status, message) = health(&projection(None, Some(running_status())));
    assert_eq!(status, "Healthy");
    assert_eq!(message, "2/2 projector pods available");
}

#[test]
fn a_status_older_than_the_spec_is_progressing() {
    let mut status = running_status();
    status["observedGeneration"] = json!(2);
    let (health_status, message) = health(&projection(None, Some(status)));
    assert_eq!(health_status, "Progressing");
    assert!(message.contains("generation 3"), "{message}");

    let mut status = running_status();
    status
        .as_object_mut()
        .expect("object")
        .remove("observedGeneration");
    assert_eq!(health(&projection(None, Some(status))).0, "Progressing");
}

#[test]
fn pods_not_ready_yet_is_progressing() {
    let status = json!({
        "observedGeneration": 3,
        "phase": "Pending",
        "conditions": [
            condition("Ready", false, "ProjectorUnavailable", "0/2 projector pods available"),
            condition("Replaying", false, "NoReplay", "no replay requested"),
            condition("Degraded", false, "AsExpected", "nothing is degraded"),
        ],
    });
    let (health_status, message) = health(&projection(None, Some(status)));
    assert_eq!(health_status, "Progressing");
    assert_eq!(message, "0/2 projector pods available");
}

#[test]
fn a_running_replay_is_progressing_with_its_percent() {
    let status = json!({
        "observedGeneration": 3,
        "phase": "Replaying",
        "conditions": [
            condition("Ready", true, "ProjectorAvailable", "2/2 projector pods available"),
            condition("Replaying", true, "ReplayRunning", "replay r2 runs in Job accounts-replay-1"),
            condition("Degraded", false, "AsExpected", "nothing is degraded"),
        ],
        "replay": {"requestId": "r2", "phase": "Running", "percent": 42.5, "jobName": "accounts-replay-1"},
    });
    let (health_status, message) = health(&projection(Some("r2"), Some(status)));
    assert_eq!(health_status, "Progressing");
    assert_eq!(message, "Replay r2 running (42.5%)");
}

#[test]
fn a_pending_replay_without_conditions_is_progressing() {
    let status = json!({
        "observedGeneration": 3,
        "replay": {"requestId": "r2", "phase": "Pending"},
    });
    let (health_status, message) = health(&projection(Some("r2"), Some(status)));
    assert_eq!(health_status, "Progressing");
    assert_eq!(message, "Replay r2 pending");
}

#[test]
fn a_succeeded_replay_is_healthy() {
    let mut status = running_status();
    status["replay"] = json!({"requestId": "r2", "phase": "Succeeded", "percent": 100.0});
    assert_eq!(health(&projection(Some("r2"), Some(status))).0, "Healthy");
}

#[test]
fn a_failed_replay_is_degraded_with_its_error() {
    let status = json!({
        "observedGeneration": 3,
        "phase": "Degraded",
        "conditions": [
            condition("Ready", true, "ProjectorAvailable", "2/2 projector pods available"),
            condition("Replaying", false, "ReplayFailed", "replay r2 failed"),
            condition("Degraded", true, "ReplayFailed", "target unreachable; the live projection is untouched"),
        ],
        "replay": {"requestId": "r2", "phase": "Failed", "error": "target unreachable"},
    });
    let (health_status, message) = health(&projection(Some("r2"), Some(status)));
    assert_eq!(health_status, "Degraded");
    assert_eq!(
        message,
        "target unreachable; the live projection is untouched"
    );
}

#[test]
fn a_failed_replay_without_conditions_is_degraded_from_the_replay_record() {
    let mut status = running_status();
    status.as_object_mut().expect("object").remove("conditions");
    status["replay"] = json!({"requestId": "r2", "phase": "Failed", "error": "checksum mismatch"});
    let (health_status, message) = health(&projection(Some("r2"), Some(status)));
    assert_eq!(health_status, "Degraded");
    assert_eq!(message, "Replay r2 failed: checksum mismatch");
}

#[test]
fn a_new_request_after_a_failed_one_is_progressing_not_degraded() {
    let mut status = running_status();
    status["replay"] = json!({"requestId": "r2", "phase": "Failed", "error": "checksum mismatch"});
    let (health_status, message) = health(&projection(Some("r3"), Some(status)));
    assert_eq!(health_status, "Progressing");
    assert_eq!(message, "Replay r3 requested, not started yet");
}

#[test]
fn a_stuck_rollout_is_degraded() {
    let status = json!({
        "observedGeneration": 3,
        "phase": "Failed",
        "conditions": [
            condition("Ready", false, "ProjectorUnavailable", "0/2 projector pods available"),
            condition("Replaying", false, "NoReplay", "no replay requested"),
            condition("Degraded", true, "ProgressDeadlineExceeded", "ReplicaSet accounts-projector-abc has timed out progressing."),
        ],
    });
    let (health_status, message) = health(&projection(None, Some(status)));
    assert_eq!(health_status, "Degraded");
    assert!(message.contains("timed out progressing"), "{message}");
}

#[test]
fn some_pods_missing_is_progressing_until_the_deadline() {
    let status = json!({
        "observedGeneration": 3,
        "phase": "Degraded",
        "conditions": [
            condition("Ready", false, "ProjectorUnavailable", "1/2 projector pods available"),
            condition("Replaying", false, "NoReplay", "no replay requested"),
            condition("Degraded", true, "ProjectorPartiallyAvailable", "1/2 projector pods available"),
        ],
    });
    let (health_status, message) = health(&projection(None, Some(status)));
    assert_eq!(health_status, "Progressing");
    assert_eq!(message, "1/2 projector pods available");
}

#[test]
fn a_failing_reconciliation_is_degraded_even_before_the_new_generation_is_observed() {
    let mut status = running_status();
    // The operator could not apply generation 3: its status is still that of generation 2.
    status["observedGeneration"] = json!(2);
    status["conditions"]
        .as_array_mut()
        .expect("conditions")
        .push(condition(
            "Reconciled",
            false,
            "ReconcileFailed",
            "apply Deployment bank/accounts-projector: forbidden",
        ));
    let (health_status, message) = health(&projection(None, Some(status)));
    assert_eq!(health_status, "Degraded");
    assert_eq!(
        message,
        "apply Deployment bank/accounts-projector: forbidden"
    );
}
