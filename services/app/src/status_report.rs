//! `eventline replay --report-to NAMESPACE/NAME`: the replay's progress, published into the
//! `status.replay` of the `Projection` whose replay Job runs it (see
//! [`eventline_projection_api::report`] for which status fields are whose).
//!
//! Reports are published from a task of their own, the latest one whenever it changed and at
//! most once a second, so a slow or unreachable API server never slows the replay down. The
//! final report (succeeded, or failed with the error) is published before the process exits
//! (retried for up to 10 s); a report that fails is retried every second, and only a Projection
//! that has moved on to another request stops the reporting.

use std::str::FromStr;
use std::time::Duration;

use eventline_projection_api::crd::ReplayPhase;
use eventline_projection_api::report::{ReplayProgressReport, publish_replay_status};
use eventline_replay::Progress;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The Projection a replay reports to: `NAMESPACE/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionRef {
    pub namespace: String,
    pub name: String,
}

impl FromStr for ProjectionRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = |part: &str| {
            !part.is_empty()
                && part.len() <= 253
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        };
        match s.split_once('/') {
            Some((namespace, name)) if valid(namespace) && valid(name) => Ok(Self {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            }),
            _ => Err(format!(
                "expected NAMESPACE/NAME of a Projection (lowercase names), got {s:?}"
            )),
        }
    }
}

impl std::fmt::Display for ProjectionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The status report for `progress` of a replay that started at `started_at`.
pub fn report_of(progress: &Progress, started_at: Timestamp) -> ReplayProgressReport {
    ReplayProgressReport {
        phase: if progress.done {
            ReplayPhase::Succeeded
        } else {
            ReplayPhase::Running
        },
        events_applied: i64::try_from(progress.applied).unwrap_or(i64::MAX),
        events_total: i64::try_from(progress.total).ok(),
        percent: Some((progress.percent * 10.0).round() / 10.0),
        events_per_second: Some(progress.events_per_second.round()),
        eta_seconds: progress.eta_seconds.map(|s| s.round() as i64),
        error: None,
        started_at: Some(started_at),
        finished_at: progress.done.then(Timestamp::now),
    }
}

/// Publishes a replay's reports to its Projection.
#[derive(Debug)]
pub struct StatusReporter {
    latest: watch::Sender<Option<ReplayProgressReport>>,
    publisher: JoinHandle<()>,
    started_at: Timestamp,
}

impl StatusReporter {
    /// Starts publishing to `target` with the in-cluster (or `KUBECONFIG`) credentials.
    pub async fn start(target: ProjectionRef, request_id: String) -> Result<Self, kube::Error> {
        let client = kube::Client::try_default().await?;
        let (latest, mut changes) = watch::channel::<Option<ReplayProgressReport>>(None);
        let publisher = tokio::spawn(async move {
            loop {
                let closed = changes.changed().await.is_err();
                let report = changes.borrow_and_update().clone();
                let mut retry = false;
                if let Some(report) = report {
                    let published = publish_replay_status(
                        &client,
                        &target.namespace,
                        &target.name,
                        &request_id,
                        &report,
                    )
                    .await;
                    match published {
                        Ok(()) => {}
                        Err(
                            error @ eventline_projection_api::ReportError::ReplaySuperseded {
                                ..
                            },
                        ) => {
                            tracing::warn!(%error, "no longer reporting replay progress");
                            return;
                        }
                        // Transient (the operator has not recorded this request yet, or the
                        // API server failed): publish the latest report again in a second, even
                        // when no newer one comes (the final one would be lost otherwise).
                        Err(error) => {
                            tracing::warn!(projection = %target, %error,
                                "publishing replay progress failed; retrying in a second");
                            changes.mark_changed();
                            retry = true;
                        }
                    }
                }
                if closed && !retry {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Ok(Self {
            latest,
            publisher,
            started_at: Timestamp::now(),
        })
    }

    /// Queues `progress` for publishing (replacing a report not published yet).
    pub fn progress(&self, progress: &Progress) {
        self.latest
            .send_replace(Some(report_of(progress, self.started_at)));
    }

    /// Publishes the final report: the last progress, or the error that stopped the replay.
    /// Waits at most 10 s for the API server.
    pub async fn finish(self, error: Option<String>) {
        if let Some(error) = error {
            let mut report = self
                .latest
                .borrow()
                .clone()
                .unwrap_or(ReplayProgressReport {
                    phase: ReplayPhase::Failed,
                    events_applied: 0,
                    events_total: None,
                    percent: None,
                    events_per_second: None,
                    eta_seconds: None,
                    error: None,
                    started_at: Some(self.started_at),
                    finished_at: None,
                });
            report.phase = ReplayPhase::Failed;
            report.error = Some(error);
            report.eta_seconds = None;
            report.finished_at = Some(Timestamp::now());
            self.latest.send_replace(Some(report));
        } else {
            // Mark the last report changed so it is published once more if it was not yet.
            self.latest.send_modify(|_| {});
        }
        drop(self.latest);
        if tokio::time::timeout(Duration::from_secs(10), self.publisher)
            .await
            .is_err()
        {
            tracing::warn!("the final replay report was not published within 10 s");
        }
    }
}

/// Where a projector's lag comes from.
#[derive(Debug, Clone)]
pub enum LagSource {
    /// Tailing the store: the store's head minus the checkpoint.
    Store(std::sync::Arc<dyn eventline_core::EventStore>),
    /// Consuming Kafka: the consumer groups' lag on their topics, `(group, topics)` per
    /// projection.
    Kafka {
        brokers: String,
        groups: Vec<(String, Vec<String>)>,
    },
}

/// `eventline project --report-to NAMESPACE/NAME`: publishes the projections' lag and
/// dead-letter count (summed over the projections run; the operator runs one per
/// Deployment) into the Projection's status every 15 s until `shutdown`.
pub async fn publish_projector_status(
    target: ProjectionRef,
    db: eventline_readmodel::ReadModelDb,
    projections: Vec<std::sync::Arc<dyn eventline_core::Projection>>,
    lag: LagSource,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), kube::Error> {
    let client = kube::Client::try_default().await?;
    tokio::spawn(async move {
        loop {
            let (lag_events, dead_letters) = projector_figures(&db, &projections, &lag).await;
            if let Err(error) = eventline_projection_api::report::publish_projector_status(
                &client,
                &target.namespace,
                &target.name,
                lag_events,
                dead_letters,
            )
            .await
            {
                tracing::warn!(projection = %target, %error, "publishing the projector's status failed");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(15)) => {}
            }
        }
    });
    Ok(())
}

/// The lag (when it can be told) and the dead-letter count of `projections`.
async fn projector_figures(
    db: &eventline_readmodel::ReadModelDb,
    projections: &[std::sync::Arc<dyn eventline_core::Projection>],
    lag: &LagSource,
) -> (Option<u64>, u64) {
    let mut dead_letters = 0;
    let mut total_lag = Some(0u64);
    for projection in projections {
        dead_letters += db.dead_letter_count(projection.name()).await.unwrap_or(0);
    }
    match lag {
        LagSource::Store(store) => {
            for projection in projections {
                let behind = match (
                    store.head_position().await,
                    db.checkpoint(projection.name()).await,
                ) {
                    (Ok(head), Ok(at)) => Some(head.event.saturating_sub(at.event)),
                    _ => None,
                };
                total_lag = total_lag.zip(behind).map(|(a, b)| a + b);
            }
        }
        LagSource::Kafka { brokers, groups } => {
            for (group, topics) in groups.clone() {
                let brokers = brokers.clone();
                let behind = tokio::task::spawn_blocking(move || {
                    eventline_kafka::group_lag(&brokers, &group, &topics, Duration::from_secs(5))
                })
                .await
                .ok()
                .and_then(Result::ok);
                total_lag = total_lag.zip(behind).map(|(a, b)| a + b);
            }
        }
    }
    (total_lag, dead_letters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_refs_parse_and_name_what_is_wrong() {
        let parsed: ProjectionRef = "shop/accounts".parse().expect("valid");
        assert_eq!(parsed.namespace, "shop");
        assert_eq!(parsed.name, "accounts");
        assert_eq!(parsed.to_string(), "shop/accounts");
        for bad in ["accounts", "/accounts", "shop/", "Shop/accounts", "a/b/c"] {
            let error = bad.parse::<ProjectionRef>().expect_err(bad);
            assert!(error.contains("NAMESPACE/NAME"), "{error}");
        }
    }

    #[test]
    fn progress_maps_to_the_status_report() {
        let started = Timestamp::now();
        let running = Progress {
            request_id: "r1".into(),
            projection: "bank-accounts",
            applied: 250,
            total: 1_000,
            position: 250,
            percent: 25.04,
            events_per_second: 1_234.4,
            eta_seconds: Some(60.6),
            done: false,
        };
        let report = report_of(&running, started);
        assert_eq!(report.phase, ReplayPhase::Running);
        assert_eq!(report.events_applied, 250);
        assert_eq!(report.events_total, Some(1_000));
        assert_eq!(report.percent, Some(25.0));
        assert_eq!(report.events_per_second, Some(1_234.0));
        assert_eq!(report.eta_seconds, Some(61));
        assert_eq!(report.finished_at, None);
        let done = report_of(
            &Progress {
                done: true,
                eta_seconds: None,
                ..running
            },
            started,
        );
        assert_eq!(done.phase, ReplayPhase::Succeeded);
        assert!(done.finished_at.is_some());
    }
}
