use std::collections::BTreeSet;

use super::*;

/// The `eventline_operator_*` sample names in `text`.
fn operator_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("eventline_operator_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// The operator's part of the check that the dashboards and alert rules only use metrics that
/// exist (the services' part is services/eventline/tests/monitoring.rs): every
/// `eventline_operator_*` name they use is in what the recorder renders after a reconciliation
/// and a failed one.
#[test]
fn every_operator_metric_the_dashboards_and_rules_use_is_rendered() {
    let monitoring = concat!(env!("CARGO_MANIFEST_DIR"), "/../monitoring");
    let mut used = operator_names(
        &std::fs::read_to_string(format!("{monitoring}/prometheus/eventline-rules.yaml"))
            .expect("the rules file"),
    );
    for entry in std::fs::read_dir(format!("{monitoring}/grafana")).expect("the dashboards") {
        used.extend(operator_names(
            &std::fs::read_to_string(entry.expect("entry").path()).expect("a dashboard"),
        ));
    }
    assert!(used.contains(RECONCILIATIONS_TOTAL), "{used:?}");

    let recorder = prometheus_recorder().expect("recorder");
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let metrics = Metrics::default();
        drop(metrics.reconcile_started());
        metrics.reconcile_failed(&crate::Error::MissingNamespace {
            name: "accounts".into(),
        });
    });
    let rendered = operator_names(&handle.render());
    let missing: Vec<&String> = used.difference(&rendered).collect();
    assert!(missing.is_empty(), "used, never rendered: {missing:?}");
}
