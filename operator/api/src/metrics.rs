//! Prometheus gauges read from Projections' status, rendered when the operator is scraped.
//!
//! A replay runs in a Job whose pod is gone once it failed, and which nobody scrapes while it
//! runs; its Projection keeps both the phase the operator saw and the progress the replay
//! reported. Rendering from the operator's cache at scrape time also means a deleted
//! Projection's series disappear with it (the `metrics` facade cannot forget a series).
//!
//! Labels: `namespace` and `name` of the Projection, `projection` (its `spec.projection`). Scrape
//! the operator with `honorLabels: true` (its chart's ServiceMonitor does), so that `namespace`
//! stays the Projection's and is not renamed `exported_namespace`.

use std::fmt::Write as _;

use crate::crd::{Projection, ReplayPhase};

/// Gauge: 1 for the last replay's phase (`phase` label: Pending, Running, Succeeded, Failed), 0
/// for the other three.
pub const REPLAY_PHASE: &str = "eventline_projection_replay_phase";
/// Gauge: events the last replay applied so far, as it reported them.
pub const REPLAY_EVENTS_APPLIED: &str = "eventline_projection_replay_events_applied";
/// Gauge: events the last replay has to apply in all, as it reported them.
pub const REPLAY_EVENTS_TOTAL: &str = "eventline_projection_replay_events_total";
/// Gauge: the last replay's recent throughput, as it reported it.
pub const REPLAY_EVENTS_PER_SECOND: &str = "eventline_projection_replay_events_per_second";
/// Gauge: the last replay's estimated seconds left, as it reported them (absent once done).
pub const REPLAY_ETA_SECONDS: &str = "eventline_projection_replay_eta_seconds";

const PHASES: [(ReplayPhase, &str); 4] = [
    (ReplayPhase::Pending, "Pending"),
    (ReplayPhase::Running, "Running"),
    (ReplayPhase::Succeeded, "Succeeded"),
    (ReplayPhase::Failed, "Failed"),
];

/// The gauges of `projections` in the Prometheus text format (version 0.0.4); empty when none
/// has a replay with a phase.
pub fn render<'a>(projections: impl IntoIterator<Item = &'a Projection>) -> String {
    let mut phase = Vec::new();
    let mut applied = Vec::new();
    let mut total = Vec::new();
    let mut rate = Vec::new();
    let mut eta = Vec::new();
    for p in projections {
        let Some(replay) = p.status.as_ref().and_then(|s| s.replay.as_ref()) else {
            continue;
        };
        let Some(current) = replay.phase else {
            continue;
        };
        let labels = format!(
            "namespace=\"{}\",name=\"{}\",projection=\"{}\"",
            escape(p.metadata.namespace.as_deref().unwrap_or_default()),
            escape(p.metadata.name.as_deref().unwrap_or_default()),
            escape(&p.spec.projection),
        );
        for (candidate, label) in PHASES {
            let value = u8::from(candidate == current);
            phase.push(format!("{{{labels},phase=\"{label}\"}} {value}"));
        }
        if let Some(n) = replay.events_applied {
            applied.push(format!("{{{labels}}} {n}"));
        }
        if let Some(n) = replay.events_total {
            total.push(format!("{{{labels}}} {n}"));
        }
        if let Some(n) = replay.events_per_second {
            rate.push(format!("{{{labels}}} {n}"));
        }
        if let Some(n) = replay.eta_seconds {
            eta.push(format!("{{{labels}}} {n}"));
        }
    }
    let mut out = String::new();
    for (name, help, samples) in [
        (
            REPLAY_PHASE,
            "1 for the phase of the Projection's last replay",
            phase,
        ),
        (
            REPLAY_EVENTS_APPLIED,
            "Events the last replay applied so far",
            applied,
        ),
        (
            REPLAY_EVENTS_TOTAL,
            "Events the last replay applies in all",
            total,
        ),
        (
            REPLAY_EVENTS_PER_SECOND,
            "Recent throughput of the last replay",
            rate,
        ),
        (
            REPLAY_ETA_SECONDS,
            "Estimated seconds the last replay has left",
            eta,
        ),
    ] {
        if samples.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for sample in samples {
            let _ = writeln!(out, "{name}{sample}");
        }
    }
    out
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests;
