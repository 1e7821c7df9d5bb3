//! Batch application: a batch of projected events and its progress, in one transaction.

use chrono::Utc;
use eventline_core::{Envelope, Position, ProjectionError, RowOp, Value};
use sqlx::{Executor, IntoArguments};

use super::Schema;
use super::bookkeeping::{CHECKPOINTS, KAFKA_OFFSETS};
use super::checkpoint::{CheckpointRow, checkpoint_in};
use super::dead_letters::dead_letter;
use super::flush::flush;
use super::partition_offsets::lock_partition;
use super::rows::{apply_ops, upsert};
use super::stream_versions::{record_stream_versions, stream_versions};
use crate::backend::{Args, Backend};
use crate::dialect::RowLock;
use crate::error::ReadModelError;
use crate::plan::{Added, WritePlan};
use crate::pool::{ReadModelDb, database_error, with_pool};

/// Where a batch comes from, which decides how events already applied are recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSource<'a> {
    /// The event store, read in global position order: events at or below the projection's
    /// checkpoint are skipped, and the checkpoint moves to the batch's last event.
    Store,
    /// One partition of a Kafka topic. Partitions are not ordered with each other and the
    /// relay may publish an event twice, so an event is skipped when its stream's applied
    /// version is already at or past it. `next_offset` (the offset after the batch's last
    /// message) is recorded with the batch; the partition's row is locked for the
    /// transaction, so two consumers of one partition apply its batches one after the other.
    Partition {
        topic: &'a str,
        partition: i32,
        next_offset: i64,
    },
}

/// One event handed to [`ReadModelDb::apply_batch`] with what the projection made of it.
#[derive(Debug)]
pub struct ProjectedEvent<'a> {
    pub event: &'a Envelope,
    /// The row changes, or why the projection could not apply the event (it is dead-lettered).
    pub ops: Result<Vec<RowOp>, ProjectionError>,
}

/// What one committed batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchOutcome {
    /// Events applied (including events that changed no row).
    pub applied: usize,
    /// Events skipped because they had been applied already (redelivery).
    pub skipped: usize,
    /// Events written to the dead-letter table instead.
    pub dead_lettered: usize,
    /// The checkpoint after the batch.
    pub checkpoint: Position,
}

impl ReadModelDb {
    /// Applies a batch of events read from the store and moves the checkpoint past the last
    /// one, in one transaction: either all of it is visible afterwards or none of it.
    /// See [`ReadModelDb::apply`].
    pub async fn apply_batch(
        &self,
        schema: &Schema,
        batch: &[ProjectedEvent<'_>],
    ) -> Result<BatchOutcome, ReadModelError> {
        self.apply(schema, BatchSource::Store, batch).await
    }

    /// Applies a batch of projected events and records the progress it makes, in one
    /// transaction: either all of it is visible afterwards or none of it.
    ///
    /// A progress row is locked for the transaction (the projection's checkpoint, or the
    /// Kafka partition's offset), and events already applied are skipped (see
    /// [`BatchSource`]), so a redelivered batch, or a second projector instance racing this
    /// one, changes nothing. Events the projection rejected, and events whose row changes
    /// the database rejects, go to the dead-letter table in the same transaction; the batch
    /// goes on. Errors that are not about the data (the database is unreachable) abort the
    /// whole batch, which the caller retries.
    pub async fn apply(
        &self,
        schema: &Schema,
        source: BatchSource<'_>,
        batch: &[ProjectedEvent<'_>],
    ) -> Result<BatchOutcome, ReadModelError> {
        self.apply_with(schema, source, batch, false).await
    }

    /// [`ReadModelDb::apply_batch`] for replays: an event that cannot be applied (the
    /// projection rejects it, or the database refuses its row changes) stops the batch with
    /// [`ReadModelError::EventRejected`] naming it, and nothing of the batch is written.
    pub async fn apply_strict(
        &self,
        schema: &Schema,
        batch: &[ProjectedEvent<'_>],
    ) -> Result<BatchOutcome, ReadModelError> {
        self.apply_with(schema, BatchSource::Store, batch, true)
            .await
    }

    async fn apply_with(
        &self,
        schema: &Schema,
        source: BatchSource<'_>,
        batch: &[ProjectedEvent<'_>],
        strict: bool,
    ) -> Result<BatchOutcome, ReadModelError> {
        let first = with_pool!(self, pool => apply_batch_on(pool, schema, source, batch, false, strict).await);
        match first {
            Err(error) if error.is_data_error() => {
                if !strict {
                    tracing::warn!(projection = schema.projection, %error,
                        "batch rejected by the database; applying it event by event");
                }
                with_pool!(self, pool => apply_batch_on(pool, schema, source, batch, true, strict).await)
            }
            other => other,
        }
    }
}

async fn apply_batch_on<DB: Backend>(
    pool: &sqlx::Pool<DB>,
    schema: &Schema,
    source: BatchSource<'_>,
    batch: &[ProjectedEvent<'_>],
    isolate_events: bool,
    strict: bool,
) -> Result<BatchOutcome, ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let dialect = DB::DIALECT;
    let mut tx = pool
        .begin_with(DB::BEGIN)
        .await
        .map_err(database_error(dialect, "beginning a batch"))?;
    let outcome = apply_in::<DB>(&mut tx, schema, source, batch, isolate_events, strict).await?;
    tx.commit()
        .await
        .map_err(database_error(dialect, "committing a batch"))?;
    Ok(outcome)
}

/// Applies a batch inside the caller's transaction `conn` (see [`ReadModelDb::apply`]).
pub(crate) async fn apply_in<DB: Backend>(
    conn: &mut DB::Connection,
    schema: &Schema,
    source: BatchSource<'_>,
    batch: &[ProjectedEvent<'_>],
    isolate_events: bool,
    strict: bool,
) -> Result<BatchOutcome, ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let from_store = source == BatchSource::Store;
    let lock = if from_store {
        RowLock::Exclusive
    } else {
        RowLock::Shared
    };
    let CheckpointRow {
        position: checkpoint,
        cut_over_by,
    } = checkpoint_in::<DB>(conn, schema.projection, lock).await?;
    if let Some(request_id) = cut_over_by {
        return Err(ReadModelError::CuttingOver {
            projection: schema.projection.to_owned(),
            request_id,
        });
    }
    let stored_offset = match source {
        BatchSource::Store => None,
        BatchSource::Partition {
            topic, partition, ..
        } => Some(lock_partition::<DB>(conn, schema, topic, partition).await?),
    };
    let tracked: Vec<&str> = batch
        .iter()
        .filter(|p| schema.tracks(&p.event.stream_type))
        .map(|p| p.event.stream_id.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut versions = stream_versions::<DB>(conn, schema.projection, &tracked).await?;
    let mut changed: Vec<&str> = Vec::new();
    let mut plan = WritePlan::default();
    let mut outcome = BatchOutcome {
        checkpoint,
        ..BatchOutcome::default()
    };
    for projected in batch {
        let event = projected.event;
        if from_store {
            if event.position <= outcome.checkpoint {
                outcome.skipped += 1;
                continue;
            }
            outcome.checkpoint = event.position;
        }
        if schema.tracks(&event.stream_type) {
            let last = versions.get(event.stream_id.as_str()).copied().unwrap_or(0);
            if event.version <= last {
                outcome.skipped += 1;
                continue;
            }
            if event.version > last + 1 {
                metrics::counter!("eventline_projector_version_gaps_total",
                    "projection" => schema.projection)
                .increment(1);
                tracing::warn!(projection = schema.projection, stream = %event.stream_id,
                    applied = last, arrived = event.version,
                    "events of a stream arrived with a gap; applying the later one");
            }
            versions.insert(event.stream_id.as_str(), event.version);
            changed.push(event.stream_id.as_str());
        }
        let ops = match &projected.ops {
            Ok(ops) => ops,
            Err(rejected) if strict => return Err(rejected_event(event, rejected)),
            Err(rejected) => {
                dead_letter::<DB>(conn, schema, event, &rejected.to_string()).await?;
                outcome.dead_lettered += 1;
                continue;
            }
        };
        if !isolate_events {
            for op in ops {
                let table = schema.table(op.table())?;
                if plan.add(table, op)? == Added::FlushFirst {
                    flush::<DB>(conn, schema, &mut plan).await?;
                    plan.add(table, op)?;
                }
            }
            outcome.applied += 1;
            continue;
        }
        run::<DB>(conn, "SAVEPOINT eventline_event", "setting a savepoint").await?;
        match apply_ops::<DB>(conn, schema, ops).await {
            Ok(()) => outcome.applied += 1,
            Err(error) if error.is_data_error() && strict => {
                return Err(rejected_event(event, error));
            }
            Err(error) if error.is_data_error() => {
                run::<DB>(
                    conn,
                    "ROLLBACK TO SAVEPOINT eventline_event",
                    "rolling back",
                )
                .await?;
                tracing::warn!(projection = schema.projection, position = %event.position,
                    %error, "event dead-lettered");
                dead_letter::<DB>(conn, schema, event, &error.to_string()).await?;
                outcome.dead_lettered += 1;
            }
            Err(error) => return Err(error),
        }
        run::<DB>(
            conn,
            "RELEASE SAVEPOINT eventline_event",
            "releasing a savepoint",
        )
        .await?;
    }
    flush::<DB>(conn, schema, &mut plan).await?;
    changed.sort_unstable();
    changed.dedup();
    record_stream_versions::<DB>(conn, schema, &changed, &versions).await?;
    if outcome.checkpoint != checkpoint {
        let row = vec![
            ("projection", Value::from(schema.projection)),
            ("commit_position", Value::from(outcome.checkpoint.commit)),
            ("event_position", Value::from(outcome.checkpoint.event)),
            ("updated_at", Value::Timestamp(Utc::now())),
        ];
        upsert::<DB>(conn, schema, CHECKPOINTS, &row).await?;
    }
    if let (
        BatchSource::Partition {
            topic,
            partition,
            next_offset,
        },
        Some(stored),
    ) = (source, stored_offset)
    {
        let row = vec![
            ("projection", Value::from(schema.projection)),
            ("topic", Value::from(topic)),
            ("kafka_partition", Value::Int(i64::from(partition))),
            ("next_offset", Value::Int(next_offset.max(stored))),
            ("updated_at", Value::Timestamp(Utc::now())),
        ];
        upsert::<DB>(conn, schema, KAFKA_OFFSETS, &row).await?;
    }
    Ok(outcome)
}

fn rejected_event(event: &Envelope, reason: impl std::fmt::Display) -> ReadModelError {
    ReadModelError::EventRejected {
        position: event.position,
        stream_id: event.stream_id.clone(),
        version: event.version,
        event_type: event.event_type.clone(),
        reason: reason.to_string(),
    }
}

async fn run<DB: Backend>(
    conn: &mut DB::Connection,
    sql: &'static str,
    action: &str,
) -> Result<(), ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    sqlx::query(sql)
        .execute(conn)
        .await
        .map(drop)
        .map_err(database_error(DB::DIALECT, action))
}
