//! Writing a batch's combined row changes: many rows per statement, grouped by the columns
//! they write (PostgreSQL takes one array per column).

use eventline_core::{ColumnType, RowOp, Table, Value};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Executor, IntoArguments};

use super::Schema;
use super::rows::{apply_ops, columns_of};
use crate::backend::{Args, Backend};
use crate::dialect::Dialect;
use crate::error::ReadModelError;
use crate::plan::{Columns, Pending, WritePlan};
use crate::pool::database_error;

/// Bind parameters per multi-row statement (PostgreSQL allows 65,535, SQLite 32,766).
const BINDS_PER_STATEMENT: usize = 30_000;
/// Rows per multi-row statement at most.
const ROWS_PER_STATEMENT: usize = 4_096;

/// Splits `items` into chunks whose lengths are powers of two of at most `max`: multi-row
/// statements then come in a few shapes only, which the connection prepares once and reuses
/// (a statement for every possible row count would be planned anew nearly every time).
pub(super) fn statement_chunks<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let largest = if max.is_power_of_two() {
        max
    } else {
        (max.next_power_of_two() / 2).max(1)
    };
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = if rest.len() >= largest {
            largest
        } else {
            1 << rest.len().ilog2()
        };
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// Writes what `plan` holds: per table, deletes, then upserts and updates many rows per
/// statement, grouped by the columns they write. An update that finds no row fails with
/// [`ReadModelError::MissingRow`] (the batch is then applied event by event).
pub(super) async fn flush<DB: Backend>(
    conn: &mut DB::Connection,
    schema: &Schema,
    plan: &mut WritePlan,
) -> Result<(), ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    if plan.is_empty() {
        return Ok(());
    }
    let dialect = DB::DIALECT;
    for (table_name, writes) in plan.take() {
        let table = schema.table(table_name)?;
        let mut upserts: Vec<(Vec<&'static str>, Vec<Columns>)> = Vec::new();
        let mut updates: Vec<(Vec<&'static str>, Vec<&'static str>, Vec<_>)> = Vec::new();
        for write in writes {
            match write {
                Pending::Delete(key) => {
                    let op = RowOp::Delete {
                        table: table.name,
                        key,
                    };
                    apply_ops::<DB>(conn, schema, std::slice::from_ref(&op)).await?;
                }
                Pending::Upsert(row) => {
                    let columns: Vec<&'static str> = row.iter().map(|(c, _)| *c).collect();
                    match upserts.iter_mut().find(|(c, _)| *c == columns) {
                        Some((_, rows)) => rows.push(row),
                        None => upserts.push((columns, vec![row])),
                    }
                }
                Pending::Update { key, set } => {
                    // PostgreSQL updates many rows at once (typed arrays carry NULLs too).
                    let batched = dialect == Dialect::Postgres;
                    if !batched {
                        let op = RowOp::Update {
                            table: table.name,
                            key,
                            set,
                        };
                        apply_ops::<DB>(conn, schema, std::slice::from_ref(&op)).await?;
                        continue;
                    }
                    let key_columns: Vec<&'static str> = key.iter().map(|(c, _)| *c).collect();
                    let set_columns: Vec<&'static str> = set.iter().map(|(c, _)| *c).collect();
                    match updates
                        .iter_mut()
                        .find(|(k, s, _)| *k == key_columns && *s == set_columns)
                    {
                        Some((_, _, rows)) => rows.push((key, set)),
                        None => updates.push((key_columns, set_columns, vec![(key, set)])),
                    }
                }
            }
        }
        for (columns, rows) in &upserts {
            // Every value is checked against its column, whatever the database would accept.
            let mut declared = Vec::new();
            for row in rows {
                declared = columns_of(table, row)?;
            }
            // PostgreSQL takes the rows as one array per column.
            let conn_any: &mut dyn std::any::Any = &mut *conn;
            if let Some(pg) = conn_any.downcast_mut::<sqlx::PgConnection>() {
                upsert_arrays(pg, table, columns, rows).await?;
                continue;
            }
            let per_statement = (BINDS_PER_STATEMENT / columns.len()).clamp(1, ROWS_PER_STATEMENT);
            for chunk in statement_chunks(rows, per_statement) {
                let sql = dialect.upsert_rows(table, columns, chunk.len());
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for row in chunk {
                    for ((_, value), column) in row.iter().zip(&declared) {
                        query = DB::bind_as(query, value, column.ty);
                    }
                }
                query.execute(&mut *conn).await.map_err(database_error(
                    dialect,
                    format!("upserting into {}", table.name),
                ))?;
            }
        }
        for (key_columns, set_columns, rows) in &updates {
            for (key, set) in rows {
                columns_of(table, key)?;
                columns_of(table, set)?;
            }
            let conn_any: &mut dyn std::any::Any = &mut *conn;
            if let Some(pg) = conn_any.downcast_mut::<sqlx::PgConnection>() {
                update_arrays(pg, table, key_columns, set_columns, rows).await?;
                continue;
            }
            // Only PostgreSQL batches updates; any other database takes them one by one.
            for (key, set) in rows {
                let op = RowOp::Update {
                    table: table.name,
                    key: key.clone(),
                    set: set.clone(),
                };
                apply_ops::<DB>(conn, schema, std::slice::from_ref(&op)).await?;
            }
        }
    }
    Ok(())
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds `values` as one PostgreSQL array of `column`'s declared type. A value of another
/// type is a schema error (a data error: the batch then goes event by event).
fn bind_array<'q>(
    query: PgQuery<'q>,
    table: &Table,
    column: &str,
    values: &[&Value],
) -> Result<PgQuery<'q>, ReadModelError> {
    let ty = table.column(column).map_or(ColumnType::Text, |c| c.ty);
    Ok(match ty {
        ColumnType::BigInt => query.bind(array_cells(table, column, ty, values, |v| match v {
            Value::Int(i) => Some(*i),
            _ => None,
        })?),
        ColumnType::Text => query.bind(array_cells(table, column, ty, values, |v| match v {
            Value::Text(t) => Some(t.clone()),
            _ => None,
        })?),
        ColumnType::Timestamp => query.bind(array_cells(table, column, ty, values, |v| match v {
            Value::Timestamp(t) => Some(*t),
            _ => None,
        })?),
        ColumnType::Boolean => query.bind(array_cells(table, column, ty, values, |v| match v {
            Value::Bool(b) => Some(*b),
            _ => None,
        })?),
        ColumnType::Double => query.bind(array_cells(table, column, ty, values, |v| match v {
            Value::Double(d) => Some(*d),
            _ => None,
        })?),
        ColumnType::Decimal { .. } => {
            query.bind(array_cells(table, column, ty, values, |v| match v {
                Value::Decimal(d) => Some(*d),
                _ => None,
            })?)
        }
        ColumnType::Json => query.bind(array_cells(table, column, ty, values, |v| match v {
            Value::Json(document) => Some(Json(document.clone())),
            _ => None,
        })?),
        ColumnType::Uuid => query.bind(array_cells(table, column, ty, values, |v| match v {
            Value::Uuid(id) => Some(*id),
            _ => None,
        })?),
        ColumnType::Date => query.bind(array_cells(table, column, ty, values, |v| match v {
            Value::Date(d) => Some(*d),
            _ => None,
        })?),
        ColumnType::Bytes => query.bind(array_cells(table, column, ty, values, |v| match v {
            Value::Bytes(b) => Some(b.clone()),
            _ => None,
        })?),
    })
}

/// The cells of a PostgreSQL array: each value taken out by `cell`, which answers `None`
/// for a value of another type (a schema error).
fn array_cells<T>(
    table: &Table,
    column: &str,
    ty: ColumnType,
    values: &[&Value],
    cell: impl Fn(&Value) -> Option<T>,
) -> Result<Vec<Option<T>>, ReadModelError> {
    values
        .iter()
        .map(|value| match value {
            Value::Null => Ok(None),
            other => cell(other).map(Some).ok_or_else(|| ReadModelError::Schema {
                table: table.name.to_owned(),
                reason: format!("column {column:?} ({ty:?}) cannot hold {other:?}"),
            }),
        })
        .collect()
}

/// PostgreSQL: upserts `rows` (each with exactly `columns`, in that order) in one statement,
/// one array per column.
pub(super) async fn upsert_arrays(
    conn: &mut sqlx::PgConnection,
    table: &Table,
    columns: &[&'static str],
    rows: &[Columns],
) -> Result<(), ReadModelError> {
    let mut query = sqlx::query(AssertSqlSafe(
        Dialect::Postgres.upsert_arrays(table, columns),
    ));
    for (index, name) in columns.iter().enumerate() {
        let cells: Vec<&Value> = rows.iter().map(|row| &row[index].1).collect();
        query = bind_array(query, table, name, &cells)?;
    }
    query
        .execute(&mut *conn)
        .await
        .map(drop)
        .map_err(database_error(
            Dialect::Postgres,
            format!("upserting into {}", table.name),
        ))
}

/// PostgreSQL: sets `set` columns of every row found by its `key` columns, in one statement,
/// one array per column; fails with [`ReadModelError::MissingRow`] unless every row exists.
async fn update_arrays(
    conn: &mut sqlx::PgConnection,
    table: &Table,
    key_columns: &[&'static str],
    set_columns: &[&'static str],
    rows: &[(Columns, Columns)],
) -> Result<(), ReadModelError> {
    let sql = Dialect::Postgres.update_arrays(table, set_columns, key_columns);
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for (index, name) in key_columns.iter().enumerate() {
        let cells: Vec<&Value> = rows.iter().map(|(key, _)| &key[index].1).collect();
        query = bind_array(query, table, name, &cells)?;
    }
    for (index, name) in set_columns.iter().enumerate() {
        let cells: Vec<&Value> = rows.iter().map(|(_, set)| &set[index].1).collect();
        query = bind_array(query, table, name, &cells)?;
    }
    let done = query.execute(&mut *conn).await.map_err(database_error(
        Dialect::Postgres,
        format!("updating {}", table.name),
    ))?;
    if done.rows_affected() != rows.len() as u64 {
        return Err(ReadModelError::MissingRow {
            table: table.name.to_owned(),
            key: format!("one of {} keys updated together", rows.len()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::statement_chunks;

    #[test]
    fn statements_come_in_power_of_two_sizes() {
        let items: Vec<u32> = (0..1_234).collect();
        let sizes: Vec<usize> = statement_chunks(&items, 512).map(<[u32]>::len).collect();
        assert_eq!(sizes, [512, 512, 128, 64, 16, 2]);
        let sizes: Vec<usize> = statement_chunks(&items[..7], 3).map(<[u32]>::len).collect();
        assert_eq!(sizes, [2, 2, 2, 1]);
        assert_eq!(statement_chunks::<u32>(&[], 8).count(), 0);
    }
}
