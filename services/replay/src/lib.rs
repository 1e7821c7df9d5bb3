//! Replays: rebuild a projection's read model from the event store.
//!
//! A replay reads the store in large ordered batches (the next batch is read while the
//! previous one is written), runs the projection's code on every event (old schema versions
//! are upcast on read, as everywhere), and writes the rows to the target database with the
//! read-model layer's combined multi-row statements, the checkpoint and stream versions in the
//! same transaction. It is:
//!
//! - **strict**: an event that cannot be upcast or applied stops the replay with an error
//!   naming the event; its batch is not written (nothing is dead-lettered);
//! - **resumable**: the target records which replay owns it ([`ReadModelDb::claim_replay`]);
//!   the same request started again continues from its checkpoint and ends identical to an
//!   uninterrupted run; a different request, or a database with a live read model, is refused;
//! - **side-effect free**: it publishes nothing and calls nothing but the two databases;
//! - **observable**: progress (applied, total, rate, ETA) goes to a callback at least every
//!   `progress_every`, and to the gauges `eventline_replay_events_applied`,
//!   `eventline_replay_events_total`, `eventline_replay_events_per_second`.
//!
//! The target can be any read-model database, whatever the live model is in: that is a
//! cross-database replay. (Blue/green replays into a database that already serves the
//! projection, with an atomic cut-over, build on this and are not here yet.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventline_core::{Envelope, EventStore, Position, Projection, StoreError};
use eventline_readmodel::{ProjectedEvent, ReadModelDb, ReadModelError, ReplayClaim, Schema};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("replay {request_id} of {projection}: reading the event store: {source}")]
    Store {
        projection: &'static str,
        request_id: String,
        #[source]
        source: StoreError,
    },
    #[error("replay {request_id} of {projection}: {source}")]
    Target {
        projection: &'static str,
        request_id: String,
        #[source]
        source: ReadModelError,
    },
    #[error(
        "replay {request_id} of {projection} was interrupted at {at}; start it again to continue"
    )]
    Interrupted {
        projection: &'static str,
        request_id: String,
        at: Position,
    },
}

/// How a replay runs.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// Names the replay; starting the same request again resumes it.
    pub request_id: String,
    /// Events read from the store and written per transaction.
    pub batch_size: usize,
    /// How often progress is reported.
    pub progress_every: Duration,
}

impl ReplayConfig {
    pub fn new(request_id: impl Into<String>) -> Self {
        Self {
            request_id: request_id.into(),
            batch_size: 10_000,
            progress_every: Duration::from_secs(5),
        }
    }
}

/// Where a replay stands; also its final report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    pub request_id: String,
    pub projection: &'static str,
    /// Events applied by this run (a resumed run counts from where it resumed).
    pub applied: u64,
    /// The store's head event number when the replay started: an upper bound of the events
    /// to replay (numbers may have holes).
    pub total: u64,
    /// The last position written.
    pub position: u64,
    pub percent: f64,
    pub events_per_second: f64,
    /// Seconds left at the current rate, when it can be told.
    pub eta_seconds: Option<f64>,
    pub done: bool,
}

/// A replay of one projection from `store` into `target`.
#[derive(Debug)]
pub struct Replay {
    store: Arc<dyn EventStore>,
    target: ReadModelDb,
    projection: Arc<dyn Projection>,
    config: ReplayConfig,
}

type Batch = Result<
    Vec<(
        Envelope,
        Result<Vec<eventline_core::RowOp>, eventline_core::ProjectionError>,
    )>,
    StoreError,
>;

impl Replay {
    pub fn new(
        store: Arc<dyn EventStore>,
        target: ReadModelDb,
        projection: Arc<dyn Projection>,
        config: ReplayConfig,
    ) -> Self {
        Self {
            store,
            target,
            projection,
            config,
        }
    }

    fn target_error(&self) -> impl FnOnce(ReadModelError) -> ReplayError + '_ {
        |source| ReplayError::Target {
            projection: self.projection.name(),
            request_id: self.config.request_id.clone(),
            source,
        }
    }

    /// Runs the replay to the store's head as seen when it started (or until `shutdown`),
    /// calling `report` with progress at least every `progress_every` and once at the end.
    pub async fn run(
        &self,
        shutdown: CancellationToken,
        mut report: impl FnMut(&Progress),
    ) -> Result<Progress, ReplayError> {
        let name = self.projection.name();
        let request_id = self.config.request_id.clone();
        let schema: Schema = self
            .target
            .ensure_schema(self.projection.as_ref())
            .await
            .map_err(self.target_error())?;
        let head = self
            .store
            .head_position()
            .await
            .map_err(|source| ReplayError::Store {
                projection: name,
                request_id: request_id.clone(),
                source,
            })?;
        let from = match self
            .target
            .claim_replay(&schema, &request_id)
            .await
            .map_err(self.target_error())?
        {
            ReplayClaim::Started => Position::START,
            ReplayClaim::Resumed(at) => {
                tracing::info!(projection = name, request_id, %at, "resuming the replay");
                at
            }
            ReplayClaim::Finished => {
                let progress = self.progress(0, head.event, head.event, Duration::ZERO, true);
                report(&progress);
                return Ok(progress);
            }
        };

        // The reader runs ahead by up to two batches, projecting as it goes.
        let (batches, mut incoming) = mpsc::channel::<Batch>(2);
        let reader = {
            let store = Arc::clone(&self.store);
            let projection = Arc::clone(&self.projection);
            let batch_size = self.config.batch_size;
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let mut after = from;
                while after < head && !shutdown.is_cancelled() {
                    let read = store.read_all(after, batch_size).await;
                    let batch = read.map(|events| {
                        events
                            .into_iter()
                            .take_while(|e| e.position <= head)
                            .map(|event| {
                                let ops = if projection.handles(&event.stream_type) {
                                    projection.apply(&event)
                                } else {
                                    Ok(Vec::new())
                                };
                                (event, ops)
                            })
                            .collect::<Vec<_>>()
                    });
                    let last = match &batch {
                        Ok(events) => events.last().map(|(e, _)| e.position),
                        Err(_) => None,
                    };
                    let failed = batch.is_err();
                    if batches.send(batch).await.is_err() || failed {
                        return;
                    }
                    match last {
                        Some(position) => after = position,
                        None => return,
                    }
                }
            })
        };

        let started = Instant::now();
        let mut applied = 0u64;
        let mut position = from.event;
        let mut last_report = Instant::now();
        while let Some(batch) = incoming.recv().await {
            let events = batch.map_err(|source| ReplayError::Store {
                projection: name,
                request_id: request_id.clone(),
                source,
            })?;
            let (events, ops): (Vec<Envelope>, Vec<_>) = events.into_iter().unzip();
            let projected: Vec<ProjectedEvent<'_>> = events
                .iter()
                .zip(ops)
                .map(|(event, ops)| ProjectedEvent { event, ops })
                .collect();
            let outcome = self
                .target
                .apply_strict(&schema, &projected)
                .await
                .map_err(self.target_error())?;
            applied += outcome.applied as u64;
            position = outcome.checkpoint.event;
            if last_report.elapsed() >= self.config.progress_every {
                report(&self.progress(applied, position, head.event, started.elapsed(), false));
                last_report = Instant::now();
            }
        }
        reader.await.ok();
        if shutdown.is_cancelled() && position < head.event {
            return Err(ReplayError::Interrupted {
                projection: name,
                request_id,
                at: self
                    .target
                    .checkpoint(name)
                    .await
                    .map_err(self.target_error())?,
            });
        }
        self.target
            .finish_replay(&schema, &request_id)
            .await
            .map_err(self.target_error())?;
        let progress = self.progress(applied, head.event, head.event, started.elapsed(), true);
        report(&progress);
        Ok(progress)
    }

    fn progress(
        &self,
        applied: u64,
        position: u64,
        total: u64,
        elapsed: Duration,
        done: bool,
    ) -> Progress {
        let rate = if elapsed.is_zero() {
            0.0
        } else {
            applied as f64 / elapsed.as_secs_f64()
        };
        let percent = if total == 0 {
            100.0
        } else {
            (position as f64 / total as f64 * 100.0).min(100.0)
        };
        let eta_seconds =
            (rate > 0.0 && !done).then(|| total.saturating_sub(position) as f64 / rate);
        let name = self.projection.name();
        metrics::gauge!("eventline_replay_events_applied", "projection" => name)
            .set(applied as f64);
        metrics::gauge!("eventline_replay_events_total", "projection" => name).set(total as f64);
        metrics::gauge!("eventline_replay_events_per_second", "projection" => name).set(rate);
        Progress {
            request_id: self.config.request_id.clone(),
            projection: name,
            applied,
            total,
            position,
            percent,
            events_per_second: rate,
            eta_seconds,
            done,
        }
    }
}
