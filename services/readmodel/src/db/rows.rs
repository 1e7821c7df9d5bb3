//! Single-row writes: a projection's row changes one by one, and Eventline's bookkeeping rows.

use eventline_core::{RowOp, Table, Value};
use sqlx::{AssertSqlSafe, Executor, IntoArguments};

use super::Schema;
use crate::backend::{Args, Backend};
use crate::error::ReadModelError;
use crate::pool::database_error;

fn key_text(key: &[(&str, Value)]) -> String {
    key.iter()
        .map(|(c, v)| format!("{c}={v:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Inserts `row` or overwrites the row with its primary key, on a connection of its own.
pub(super) async fn upsert_row<DB: Backend>(
    pool: &sqlx::Pool<DB>,
    table: &Table,
    row: &[(&'static str, Value)],
) -> Result<(), ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let mut conn = pool.acquire().await.map_err(database_error(
        DB::DIALECT,
        format!("writing {}", table.name),
    ))?;
    write_row::<DB>(&mut conn, table, row, true).await
}

/// Inserts `row` unless a row with its primary key exists, on a connection of its own.
pub(super) async fn initialise_row<DB: Backend>(
    pool: &sqlx::Pool<DB>,
    table: &Table,
    row: &[(&'static str, Value)],
) -> Result<(), ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let mut conn = pool.acquire().await.map_err(database_error(
        DB::DIALECT,
        format!("initialising {}", table.name),
    ))?;
    insert_if_absent::<DB>(&mut conn, table, row).await
}

/// Inserts `row` unless a row with its primary key exists.
pub(super) async fn insert_if_absent<DB: Backend>(
    conn: &mut DB::Connection,
    table: &Table,
    row: &[(&'static str, Value)],
) -> Result<(), ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    write_row::<DB>(conn, table, row, false).await
}

/// Inserts `row`; when its primary key exists, overwrites that row if `overwrite`, else
/// leaves it.
async fn write_row<DB: Backend>(
    conn: &mut DB::Connection,
    table: &Table,
    row: &[(&'static str, Value)],
    overwrite: bool,
) -> Result<(), ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let action = format!("writing {}", table.name);
    let columns = columns_of(table, row)?;
    let sql = if overwrite {
        DB::DIALECT.upsert(table, &columns)
    } else {
        DB::DIALECT.insert_if_absent(table, &columns)
    };
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for (_, value) in row {
        query = DB::bind(query, value);
    }
    query
        .execute(&mut *conn)
        .await
        .map(drop)
        .map_err(database_error(DB::DIALECT, action))
}

pub(super) async fn apply_ops<DB: Backend>(
    conn: &mut DB::Connection,
    schema: &Schema,
    ops: &[RowOp],
) -> Result<(), ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let dialect = DB::DIALECT;
    for op in ops {
        match op {
            RowOp::Upsert { table, row } => upsert::<DB>(conn, schema, table, row).await?,
            RowOp::Update { table, key, set } => {
                let table = schema.table(table)?;
                let set_columns = columns_of(table, set)?;
                let key_columns = columns_of(table, key)?;
                let sql = dialect.update(table.name, &set_columns, &key_columns);
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for (_, value) in set.iter().chain(key) {
                    query = DB::bind(query, value);
                }
                let done = query
                    .execute(&mut *conn)
                    .await
                    .map_err(database_error(dialect, format!("updating {}", table.name)))?;
                if DB::rows_affected(&done) != 1 {
                    return Err(ReadModelError::MissingRow {
                        table: table.name.to_owned(),
                        key: key_text(key),
                    });
                }
            }
            RowOp::Delete { table, key } => {
                let table = schema.table(table)?;
                let key_columns = columns_of(table, key)?;
                let sql = dialect.delete(table.name, &key_columns);
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for (_, value) in key {
                    query = DB::bind(query, value);
                }
                query.execute(&mut *conn).await.map_err(database_error(
                    dialect,
                    format!("deleting from {}", table.name),
                ))?;
            }
        }
    }
    Ok(())
}

pub(super) async fn upsert<DB: Backend>(
    conn: &mut DB::Connection,
    schema: &Schema,
    table: &str,
    row: &[(&'static str, Value)],
) -> Result<(), ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let table = schema.table(table)?;
    let columns = columns_of(table, row)?;
    let sql = DB::DIALECT.upsert(table, &columns);
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for (_, value) in row {
        query = DB::bind(query, value);
    }
    query.execute(conn).await.map(drop).map_err(database_error(
        DB::DIALECT,
        format!("upserting into {}", table.name),
    ))
}

/// The column names of `values`, each checked to be declared (names reach SQL text).
pub(super) fn columns_of(
    table: &Table,
    values: &[(&'static str, Value)],
) -> Result<Vec<&'static str>, ReadModelError> {
    values
        .iter()
        .map(|(name, _)| match table.column(name) {
            Some(column) => Ok(column.name),
            None => Err(ReadModelError::Schema {
                table: table.name.to_owned(),
                reason: format!("no column {name:?}"),
            }),
        })
        .collect()
}
