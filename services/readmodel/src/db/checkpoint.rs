//! Checkpoints: the last position a projection has applied, kept in the same transaction as
//! its rows.

use chrono::Utc;
use eventline_core::{ColumnType, Position, Value};
use sqlx::{AssertSqlSafe, Executor, IntoArguments};

use super::Schema;
use super::bookkeeping::CHECKPOINTS;
use super::rows::initialise_row;
use crate::backend::{Args, Backend};
use crate::dialect::RowLock;
use crate::error::ReadModelError;
use crate::pool::{ReadModelDb, database_error, with_pool};

impl ReadModelDb {
    /// The last position this projection has applied ([`Position::START`] when none).
    pub async fn checkpoint(&self, projection: &str) -> Result<Position, ReadModelError> {
        with_pool!(self, pool => read_checkpoint(pool, projection).await)
    }

    /// Makes sure `schema`'s projection has a checkpoint row (so batches can lock it).
    pub(crate) async fn initialise_checkpoint(
        &self,
        schema: &Schema,
    ) -> Result<(), ReadModelError> {
        let checkpoints = schema.table(CHECKPOINTS)?;
        let row = start_checkpoint(schema.projection);
        with_pool!(self, pool => initialise_row(pool, checkpoints, &row).await)
    }
}

fn start_checkpoint(projection: &'static str) -> Vec<(&'static str, Value)> {
    vec![
        ("projection", Value::from(projection)),
        ("commit_position", Value::Int(0)),
        ("event_position", Value::Int(0)),
        ("updated_at", Value::Timestamp(Utc::now())),
    ]
}

async fn read_checkpoint<DB: Backend>(
    pool: &sqlx::Pool<DB>,
    projection: &str,
) -> Result<Position, ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let mut conn = pool
        .acquire()
        .await
        .map_err(database_error(DB::DIALECT, "reading the checkpoint"))?;
    Ok(checkpoint_in::<DB>(&mut conn, projection, RowLock::None)
        .await?
        .position)
}

/// A projection's checkpoint row.
pub(crate) struct CheckpointRow {
    pub(crate) position: Position,
    /// The replay whose cut-over is swapping the projection's tables right now.
    pub(crate) cut_over_by: Option<String>,
}

/// Reads the checkpoint on `conn`, locking its row as `lock` says (see
/// [`Dialect::checkpoint_select`]).
pub(crate) async fn checkpoint_in<DB: Backend>(
    conn: &mut DB::Connection,
    projection: &str,
    lock: RowLock,
) -> Result<CheckpointRow, ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let dialect = DB::DIALECT;
    let key = Value::from(projection);
    let row = DB::bind(
        sqlx::query(AssertSqlSafe(dialect.checkpoint_select(lock))),
        &key,
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(database_error(dialect, "reading the checkpoint"))?;
    let Some(row) = row else {
        return Ok(CheckpointRow {
            position: Position::START,
            cut_over_by: None,
        });
    };
    let number = |index| {
        DB::decode(&row, index, ColumnType::BigInt)
            .map(|v| v.as_u64().unwrap_or(0))
            .map_err(database_error(dialect, "reading the checkpoint"))
    };
    let cut_over_by = DB::decode(&row, 2, ColumnType::Text)
        .map_err(database_error(dialect, "reading the checkpoint"))?
        .as_str()
        .map(str::to_owned);
    Ok(CheckpointRow {
        position: Position {
            commit: number(0)?,
            event: number(1)?,
        },
        cut_over_by,
    })
}
