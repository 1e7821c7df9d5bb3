//! The operator's Prometheus metrics, through the `metrics` facade.
//!
//! Names follow `eventline_<thing>_<unit>`; labels are bounded (an error kind, never an object
//! name), so a cluster with many Projections does not blow up the series count.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use kube::runtime::reflector::Store;

use metrics_exporter_prometheus::{
    BuildError, Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Counter: reconciliations started.
pub const RECONCILIATIONS_TOTAL: &str = "eventline_operator_reconciliations_total";
/// Counter: reconciliations that returned an error, by `error` kind.
pub const RECONCILE_ERRORS_TOTAL: &str = "eventline_operator_reconcile_errors_total";
/// Histogram: duration of one reconciliation.
pub const RECONCILE_DURATION_SECONDS: &str = "eventline_operator_reconcile_duration_seconds";

const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A recorder that renders the operator's metrics in the Prometheus text format, with real
/// histogram buckets for the reconcile duration. Install it with `metrics::set_global_recorder`
/// (the binary) or use it locally (tests).
pub fn prometheus_recorder() -> Result<PrometheusRecorder, BuildError> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(RECONCILE_DURATION_SECONDS.to_owned()),
            DURATION_BUCKETS,
        )?
        .build_recorder();
    Ok(recorder)
}

/// Installs [`prometheus_recorder`] as the process's recorder and returns its render handle.
pub fn install() -> Result<PrometheusHandle, InstallError> {
    let recorder = prometheus_recorder()?;
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|_| InstallError::AlreadyInstalled)?;
    describe();
    Ok(handle)
}

/// Why [`install`] failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The bucket configuration was rejected.
    #[error("building the Prometheus recorder: {0}")]
    Build(#[from] BuildError),
    /// Another recorder is installed already.
    #[error("a metrics recorder is installed already")]
    AlreadyInstalled,
}

fn describe() {
    metrics::describe_counter!(
        RECONCILIATIONS_TOTAL,
        "Reconciliations of Projections started"
    );
    metrics::describe_counter!(
        RECONCILE_ERRORS_TOTAL,
        "Reconciliations of Projections that failed, by error kind"
    );
    metrics::describe_histogram!(
        RECONCILE_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Duration of one reconciliation of a Projection"
    );
}

/// The reconciler's handle on its metrics. Clones share the Projections the controller watches,
/// from which [`Metrics::replay_gauges`] renders each replay's phase and progress at scrape time.
#[derive(Clone, Default)]
pub struct Metrics {
    projections: Arc<RwLock<Option<Store<crate::crd::Projection>>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The controller keeps `projections` up to date from now on (while this replica leads).
    pub fn watching(&self, projections: Store<crate::crd::Projection>) {
        *self.write() = Some(projections);
    }

    /// The controller stopped: a replica that does not lead shows no replay gauges, so that
    /// only one replica reports each replay.
    pub fn stopped_watching(&self) {
        *self.write() = None;
    }

    /// The replay gauges of every watched Projection
    /// ([`eventline_projection_api::metrics::render`]); empty while not watching.
    pub fn replay_gauges(&self) -> String {
        let projections = self
            .projections
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match projections.as_ref() {
            Some(store) => {
                eventline_projection_api::metrics::render(store.state().iter().map(AsRef::as_ref))
            }
            None => String::new(),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Option<Store<crate::crd::Projection>>> {
        // Only ever replaced whole: a panic elsewhere cannot leave it half-written.
        self.projections
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a reconciliation and measures it until the returned timer is dropped.
    pub fn reconcile_started(&self) -> ReconcileTimer {
        metrics::counter!(RECONCILIATIONS_TOTAL).increment(1);
        ReconcileTimer {
            start: Instant::now(),
        }
    }

    /// Counts a failed reconciliation by error kind.
    pub fn reconcile_failed(&self, error: &crate::Error) {
        metrics::counter!(RECONCILE_ERRORS_TOTAL, "error" => error.metric_label()).increment(1);
    }
}

/// Records the reconcile duration when dropped.
#[derive(Debug)]
pub struct ReconcileTimer {
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        metrics::histogram!(RECONCILE_DURATION_SECONDS).record(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests;
