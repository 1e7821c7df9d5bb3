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
//!   uninterrupted run; a different request is refused until that replay has finished;
//! - **side-effect free**: it publishes nothing and calls nothing but the two databases;
//! - **observable**: progress (applied, total, rate, ETA) goes to a callback at least every
//!   `progress_every`, and to the gauges `eventline_replay_events_applied`,
//!   `eventline_replay_events_total`, `eventline_replay_events_per_second`;
//! - **blue/green**: the new version of the read model is built in tables of its own beside
//!   the live ones (which keep serving queries and taking live events), then catches up with
//!   what was stored meanwhile and replaces them in one atomic cut-over, after which the
//!   live projector continues on it from exactly the replayed position
//!   ([`eventline_readmodel::CutOver`]). Secondary indexes are built after the bulk load.
//!
//! The target can be any read-model database, whatever the live model is in: that is a
//! cross-database replay.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventline_core::{Envelope, EventStore, Position, Projection, StoreError};
use eventline_readmodel::{
    CutOver, ProjectedEvent, ReadModelDb, ReadModelError, ReplayClaim, Schema,
};
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
        "replay {request_id} of {projection}: not cut over, because the new version differs from the reference read model in {tables} (if only eventline_stream_versions differs too, the reference reflects other events: pause its projector and start the replay again)"
    )]
    VerificationFailed {
        projection: &'static str,
        request_id: String,
        /// The tables whose row count or checksum differ.
        tables: String,
    },
    #[error(
        "projection {projection} has no previous version to roll back to (it is kept from the last cut-over until the next one)"
    )]
    NothingToRollBack { projection: &'static str },
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
    /// A read model the new version must equal (row counts and content checksums, see
    /// [`ReadModelDb::digest`]) before it is cut over to.
    pub verify_against: Option<ReadModelDb>,
}

impl ReplayConfig {
    pub fn new(request_id: impl Into<String>) -> Self {
        Self {
            request_id: request_id.into(),
            batch_size: 10_000,
            progress_every: Duration::from_secs(5),
            verify_against: None,
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

/// The counters of one run.
struct Run {
    started: Instant,
    last_report: Instant,
    applied: u64,
    /// The last position applied to the new version.
    position: Position,
    /// The store's head as last seen.
    head: Position,
    /// The last version of each stream applied, recorded in the target once the bulk load
    /// is done (writing them batch by batch would cost a third of the load's writes).
    versions: HashMap<String, u64>,
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

    /// The configuration, to adjust before [`Replay::run`].
    pub fn config_mut(&mut self) -> &mut ReplayConfig {
        &mut self.config
    }

    fn target_error(&self) -> impl FnOnce(ReadModelError) -> ReplayError + '_ {
        |source| ReplayError::Target {
            projection: self.projection.name(),
            request_id: self.config.request_id.clone(),
            source,
        }
    }

    /// Runs the replay to the store's head and cuts over (or stops at `shutdown`), calling
    /// `report` with progress at least every `progress_every` and once at the end.
    ///
    /// The new version of the read model is built beside the live one (which keeps serving
    /// queries and taking live events); once it has caught up with the store, it replaces
    /// the live one in one atomic cut-over (see [`eventline_readmodel::CutOver`]).
    pub async fn run(
        &self,
        shutdown: CancellationToken,
        mut report: impl FnMut(&Progress),
    ) -> Result<Progress, ReplayError> {
        let name = self.projection.name();
        let request_id = self.config.request_id.clone();
        let projection = self.projection.as_ref();
        let live: Schema = self
            .target
            .ensure_schema(projection)
            .await
            .map_err(self.target_error())?;
        let version = self
            .target
            .ensure_version_schema(&live, projection, &request_id)
            .await
            .map_err(self.target_error())?;
        let head = self.head().await?;
        let from = match self
            .target
            .claim_replay(&live, &version, &request_id)
            .await
            .map_err(self.target_error())?
        {
            ReplayClaim::Resumed(at) => {
                if at > Position::START {
                    tracing::info!(projection = name, request_id, %at, "resuming the replay");
                }
                at
            }
            ReplayClaim::CuttingOver => {
                tracing::info!(
                    projection = name,
                    request_id,
                    "finishing an interrupted cut-over"
                );
                self.target
                    .finish_interrupted_cut_over(&live, &version, &request_id)
                    .await
                    .map_err(self.target_error())?;
                let progress = self.progress(0, head.event, head.event, Duration::ZERO, true);
                report(&progress);
                return Ok(progress);
            }
            ReplayClaim::Finished => {
                let progress = self.progress(0, head.event, head.event, Duration::ZERO, true);
                report(&progress);
                return Ok(progress);
            }
        };

        let mut run = Run {
            started: Instant::now(),
            last_report: Instant::now(),
            applied: 0,
            position: from,
            head,
            versions: self.versions_through(&version, from).await?,
        };
        let bulk = version.without_stream_versions();
        // The bulk load, then passes that catch up with what was stored meanwhile, until
        // less than a batch is left for the cut-over to apply under its lock.
        loop {
            self.load(&bulk, &mut run, &shutdown, &mut report).await?;
            if shutdown.is_cancelled() {
                return Err(ReplayError::Interrupted {
                    projection: name,
                    request_id,
                    at: run.position,
                });
            }
            let head = self.head().await?;
            let behind = head.event.saturating_sub(run.position.event);
            run.head = head;
            if behind < self.config.batch_size as u64 {
                break;
            }
        }
        self.target
            .record_stream_versions(&version, &run.versions)
            .await
            .map_err(self.target_error())?;
        self.target
            .drop_previous_version(&live, projection)
            .await
            .map_err(self.target_error())?;
        self.target
            .build_indexes(&version)
            .await
            .map_err(self.target_error())?;
        if let Some(reference) = &self.config.verify_against {
            self.verify(&version, reference).await?;
        }

        let mut cut = self
            .target
            .begin_cut_over(&live, &version, &request_id)
            .await
            .map_err(self.target_error())?;
        let (applied, position) = self.catch_up_under_lock(&mut cut).await?;
        run.applied += applied;
        run.position = run.position.max(position);
        cut.commit().await.map_err(self.target_error())?;
        let total = run.position.event.max(run.head.event);
        let progress = self.progress(run.applied, total, total, run.started.elapsed(), true);
        report(&progress);
        Ok(progress)
    }

    /// Applies every event stored after the version's checkpoint, inside the cut-over's
    /// transaction; returns how many were applied and the last position.
    async fn catch_up_under_lock(&self, cut: &mut CutOver) -> Result<(u64, Position), ReplayError> {
        let mut applied = 0u64;
        let mut position = cut.checkpoint().await.map_err(self.target_error())?;
        loop {
            let events = self
                .store
                .read_all(position, self.config.batch_size)
                .await
                .map_err(|source| self.store_error(source))?;
            let Some(last) = events.last().map(|e| e.position) else {
                return Ok((applied, position));
            };
            let ops: Vec<_> = events.iter().map(|e| self.project(e)).collect();
            let projected: Vec<ProjectedEvent<'_>> = events
                .iter()
                .zip(ops)
                .map(|(event, ops)| ProjectedEvent { event, ops })
                .collect();
            let outcome = cut.apply(&projected).await.map_err(self.target_error())?;
            applied += outcome.applied as u64;
            position = last;
        }
    }

    /// Compares the new version with `reference`; a difference stops the replay before
    /// its cut-over.
    async fn verify(&self, version: &Schema, reference: &ReadModelDb) -> Result<(), ReplayError> {
        let built = self
            .target
            .digest_schema(version)
            .await
            .map_err(self.target_error())?;
        let expected = reference
            .digest(self.projection.as_ref())
            .await
            .map_err(self.target_error())?;
        let differ: Vec<&str> = built
            .iter()
            .zip(&expected)
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a.table)
            .collect();
        tracing::info!(projection = self.projection.name(), request_id = %self.config.request_id,
            tables = ?built, differ = ?differ, "verified the new version against the reference");
        if differ.is_empty() {
            Ok(())
        } else {
            Err(ReplayError::VerificationFailed {
                projection: self.projection.name(),
                request_id: self.config.request_id.clone(),
                tables: differ.join(", "),
            })
        }
    }

    /// Rolls the last cut-over back: the kept previous version becomes live again, after
    /// catching up under the cut-over lock with every event stored since it was replaced
    /// (so the live projector continues on it with nothing missed), and the version it
    /// replaces is kept as the previous one in turn. Not on MySQL (see
    /// [`ReadModelDb::begin_roll_back`]).
    pub async fn roll_back(&self) -> Result<Progress, ReplayError> {
        let started = Instant::now();
        let live = self
            .target
            .ensure_schema(self.projection.as_ref())
            .await
            .map_err(self.target_error())?;
        let previous = self
            .target
            .previous_version(&live)
            .await
            .map_err(self.target_error())?
            .ok_or_else(|| ReplayError::NothingToRollBack {
                projection: self.projection.name(),
            })?;
        let mut cut = self
            .target
            .begin_roll_back(&live, &previous)
            .await
            .map_err(self.target_error())?;
        let (applied, position) = self.catch_up_under_lock(&mut cut).await?;
        cut.commit().await.map_err(self.target_error())?;
        let progress = self.progress(
            applied,
            position.event,
            position.event,
            started.elapsed(),
            true,
        );
        Ok(progress)
    }

    /// The last version of each stream up to `through`, read back from the store: what a
    /// resumed replay had applied before it stopped (reading is far cheaper than writing).
    async fn versions_through(
        &self,
        version: &Schema,
        through: Position,
    ) -> Result<HashMap<String, u64>, ReplayError> {
        let mut versions = HashMap::new();
        let mut after = Position::START;
        while after < through {
            let events = self
                .store
                .read_all(after, self.config.batch_size)
                .await
                .map_err(|source| self.store_error(source))?;
            let Some(last) = events.last() else { break };
            after = last.position;
            for event in events.into_iter().take_while(|e| e.position <= through) {
                if version.keeps_versions_of(&event.stream_type) {
                    versions.insert(event.stream_id, event.version);
                }
            }
        }
        Ok(versions)
    }

    async fn head(&self) -> Result<Position, ReplayError> {
        self.store
            .head_position()
            .await
            .map_err(|source| self.store_error(source))
    }

    fn store_error(&self, source: StoreError) -> ReplayError {
        ReplayError::Store {
            projection: self.projection.name(),
            request_id: self.config.request_id.clone(),
            source,
        }
    }

    fn project(
        &self,
        event: &Envelope,
    ) -> Result<Vec<eventline_core::RowOp>, eventline_core::ProjectionError> {
        if self.projection.handles(&event.stream_type) {
            self.projection.apply(event)
        } else {
            Ok(Vec::new())
        }
    }

    /// Applies the events after `run.position` up to `run.head` to `version`, reading the
    /// next batch while the previous one is written.
    async fn load(
        &self,
        version: &Schema,
        run: &mut Run,
        shutdown: &CancellationToken,
        report: &mut impl FnMut(&Progress),
    ) -> Result<(), ReplayError> {
        let (from, head) = (run.position, run.head);
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
        while let Some(batch) = incoming.recv().await {
            let events = batch.map_err(|source| self.store_error(source))?;
            let (events, ops): (Vec<Envelope>, Vec<_>) = events.into_iter().unzip();
            let projected: Vec<ProjectedEvent<'_>> = events
                .iter()
                .zip(ops)
                .map(|(event, ops)| ProjectedEvent { event, ops })
                .collect();
            let outcome = self
                .target
                .apply_strict(version, &projected)
                .await
                .map_err(self.target_error())?;
            run.applied += outcome.applied as u64;
            run.position = outcome.checkpoint;
            for event in &events {
                if version.keeps_versions_of(&event.stream_type) {
                    run.versions.insert(event.stream_id.clone(), event.version);
                }
            }
            if run.last_report.elapsed() >= self.config.progress_every {
                report(&self.progress(
                    run.applied,
                    run.position.event,
                    run.head.event,
                    run.started.elapsed(),
                    false,
                ));
                run.last_report = Instant::now();
            }
        }
        reader.await.ok();
        Ok(())
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
