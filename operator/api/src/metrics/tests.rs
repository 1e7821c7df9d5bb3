use std::collections::BTreeSet;

use serde_json::json;

use super::*;

/// A Projection `namespace/name` of `bank-accounts` with `replay` as its `status.replay`.
fn projection(namespace: &str, name: &str, replay: serde_json::Value) -> Projection {
    serde_json::from_value(json!({
        "apiVersion": "eventline.io/v1alpha1",
        "kind": "Projection",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "projection": "bank-accounts",
            "image": "registry.example.com/eventline/eventline:0.1.0",
            "source": {
                "store": {"urlSecretRef": {"name": "store", "key": "url"}},
                "kafka": {"bootstrapServers": "kafka:9092"}
            },
            "target": {"type": "postgres", "urlSecretRef": {"name": "read", "key": "url"}}
        },
        "status": {"replay": replay}
    }))
    .expect("a valid Projection")
}

#[test]
fn a_running_replay_shows_its_phase_and_the_progress_it_reported() {
    let running = projection(
        "bank",
        "accounts",
        json!({"requestId": "r1", "phase": "Running", "eventsApplied": 40, "eventsTotal": 100,
               "percent": 40.0, "eventsPerSecond": 12.5, "etaSeconds": 5}),
    );
    let labels = r#"namespace="bank",name="accounts",projection="bank-accounts""#;
    assert_eq!(
        render([&running]),
        format!(
            "# HELP eventline_projection_replay_phase 1 for the phase of the Projection's last replay\n\
             # TYPE eventline_projection_replay_phase gauge\n\
             eventline_projection_replay_phase{{{labels},phase=\"Pending\"}} 0\n\
             eventline_projection_replay_phase{{{labels},phase=\"Running\"}} 1\n\
             eventline_projection_replay_phase{{{labels},phase=\"Succeeded\"}} 0\n\
             eventline_projection_replay_phase{{{labels},phase=\"Failed\"}} 0\n\
             # HELP eventline_projection_replay_events_applied Events the last replay applied so far\n\
             # TYPE eventline_projection_replay_events_applied gauge\n\
             eventline_projection_replay_events_applied{{{labels}}} 40\n\
             # HELP eventline_projection_replay_events_total Events the last replay applies in all\n\
             # TYPE eventline_projection_replay_events_total gauge\n\
             eventline_projection_replay_events_total{{{labels}}} 100\n\
             # HELP eventline_projection_replay_events_per_second Recent throughput of the last replay\n\
             # TYPE eventline_projection_replay_events_per_second gauge\n\
             eventline_projection_replay_events_per_second{{{labels}}} 12.5\n\
             # HELP eventline_projection_replay_eta_seconds Estimated seconds the last replay has left\n\
             # TYPE eventline_projection_replay_eta_seconds gauge\n\
             eventline_projection_replay_eta_seconds{{{labels}}} 5\n"
        )
    );
}

#[test]
fn a_failed_replay_shows_failed_and_a_projection_without_a_replay_shows_nothing() {
    let failed = projection(
        "bank",
        "accounts",
        json!({"requestId": "r1", "phase": "Failed", "error": "boom"}),
    );
    let never = projection("bank", "posts", serde_json::Value::Null);
    let requested = projection("bank", "orders", json!({"requestId": "r2"}));
    let text = render([&failed, &never, &requested]);
    assert!(
        text.contains(r#"eventline_projection_replay_phase{namespace="bank",name="accounts",projection="bank-accounts",phase="Failed"} 1"#),
        "{text}"
    );
    assert!(
        !text.contains("posts") && !text.contains("orders"),
        "{text}"
    );
    assert!(!text.contains("events_applied"), "{text}");
    assert_eq!(render([&never]), "");
}

#[test]
fn label_values_are_escaped() {
    let odd = projection(
        "bank",
        "accounts",
        json!({"requestId": "r1", "phase": "Pending"}),
    );
    let mut odd = odd;
    odd.spec.projection = "a\"b\\c\nd".to_owned();
    assert!(
        render([&odd]).contains(r#"projection="a\"b\\c\nd""#),
        "{}",
        render([&odd])
    );
}

/// The `eventline_projection_replay_*` names in `text`.
fn replay_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("eventline_projection_replay_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// The operator's part of the check that the alert rules and dashboards only use metrics that
/// exist (the services' part is services/eventline/tests/monitoring.rs).
#[test]
fn every_replay_metric_the_rules_and_dashboards_use_is_rendered() {
    let monitoring = concat!(env!("CARGO_MANIFEST_DIR"), "/../../monitoring");
    let mut used = replay_names(
        &std::fs::read_to_string(format!("{monitoring}/prometheus/eventline-rules.yaml"))
            .expect("the rules file"),
    );
    for entry in std::fs::read_dir(format!("{monitoring}/grafana")).expect("the dashboards") {
        let path = entry.expect("entry").path();
        used.extend(replay_names(
            &std::fs::read_to_string(&path).expect("a dashboard"),
        ));
    }
    assert!(used.contains(REPLAY_PHASE), "{used:?}");
    let running = projection(
        "bank",
        "accounts",
        json!({"requestId": "r1", "phase": "Running", "eventsApplied": 1, "eventsTotal": 2,
               "eventsPerSecond": 1.0, "etaSeconds": 1}),
    );
    let rendered = replay_names(&render([&running]));
    let missing: Vec<&String> = used.difference(&rendered).collect();
    assert!(missing.is_empty(), "used, never rendered: {missing:?}");
}
