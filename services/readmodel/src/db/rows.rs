//! Single-row writes: a projection's row changes one by one, and Eventline's bookkeeping rows.

use eventline_core::{Column, RowOp, Table, Value};
use sqlx::{AssertSqlSafe, Executor, IntoArguments};

use super::Schema;
use crate::backend::{Args, Backend};
use crate::error::ReadModelError;
use crate::pool::database_error;
use crate::value;

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
    let names = names(&columns);
    let sql = if overwrite {
        DB::DIALECT.upsert(table, &names)
    } else {
        DB::DIALECT.insert_if_absent(table, &names)
    };
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for ((_, value), column) in row.iter().zip(&columns) {
        query = DB::bind_as(query, value, column.ty);
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
                let sql = dialect.update(table.name, &names(&set_columns), &names(&key_columns));
                let mut query = sqlx::query(AssertSqlSafe(sql));
                let columns = set_columns.iter().chain(&key_columns);
                for ((_, value), column) in set.iter().chain(key).zip(columns) {
                    query = DB::bind_as(query, value, column.ty);
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
                let sql = dialect.delete(table.name, &names(&key_columns));
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for ((_, value), column) in key.iter().zip(&key_columns) {
                    query = DB::bind_as(query, value, column.ty);
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
    let sql = DB::DIALECT.upsert(table, &names(&columns));
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for ((_, value), column) in row.iter().zip(&columns) {
        query = DB::bind_as(query, value, column.ty);
    }
    query.execute(conn).await.map(drop).map_err(database_error(
        DB::DIALECT,
        format!("upserting into {}", table.name),
    ))
}

/// The columns of `values`, each checked to be declared (names reach SQL text) and to fit
/// its value ([`value::check`]); a value that does not fit is a schema error, so the event
/// that wrote it is dead-lettered rather than stored differently by each database.
pub(super) fn columns_of<'t>(
    table: &'t Table,
    values: &[(&'static str, Value)],
) -> Result<Vec<&'t Column>, ReadModelError> {
    let schema_error = |reason| ReadModelError::Schema {
        table: table.name.to_owned(),
        reason,
    };
    values
        .iter()
        .map(|(name, value)| {
            let column = table
                .column(name)
                .ok_or_else(|| schema_error(format!("no column {name:?}")))?;
            value::check(column, value).map_err(schema_error)?;
            Ok(column)
        })
        .collect()
}

/// The names of `columns`.
pub(super) fn names(columns: &[&Column]) -> Vec<&'static str> {
    columns.iter().map(|c| c.name).collect()
}
