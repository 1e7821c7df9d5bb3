//! Stream versions: the last version of each stream a projection has applied, which is how
//! redelivered events are recognised.

use std::collections::HashMap;

use eventline_core::{ColumnType, Value};
use sqlx::{AssertSqlSafe, Executor, IntoArguments};

use super::Schema;
use super::bookkeeping::STREAM_VERSIONS;
use super::flush::{statement_chunks, upsert_arrays};
use crate::backend::{Args, Backend};
use crate::error::ReadModelError;
use crate::plan::Columns;
use crate::pool::{ReadModelDb, database_error, with_pool};

/// Stream-version rows written per statement.
const VERSION_ROWS_PER_STATEMENT: usize = 4_096;

impl ReadModelDb {
    /// Records the applied version of each of `versions`' streams for `schema`'s projection,
    /// in one transaction.
    pub async fn record_stream_versions(
        &self,
        schema: &Schema,
        versions: &HashMap<String, u64>,
    ) -> Result<(), ReadModelError> {
        let mut changed: Vec<&str> = versions.keys().map(String::as_str).collect();
        changed.sort_unstable();
        let by_id: HashMap<&str, u64> = versions.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        with_pool!(self, pool => record_versions_on(pool, schema, &changed, &by_id).await)
    }
}

/// The applied version of each of `streams` that has one.
pub(super) async fn stream_versions<'s, DB: Backend>(
    conn: &mut DB::Connection,
    projection: &str,
    streams: &[&'s str],
) -> Result<HashMap<&'s str, u64>, ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let dialect = DB::DIALECT;
    let mut versions = HashMap::with_capacity(streams.len());
    let projection = Value::from(projection);
    for chunk in statement_chunks(streams, VERSION_ROWS_PER_STATEMENT) {
        let ids: Vec<Value> = chunk.iter().map(|id| Value::from(*id)).collect();
        let sql = dialect.select_stream_versions(chunk.len());
        let mut query = DB::bind(sqlx::query(AssertSqlSafe(sql)), &projection);
        for id in &ids {
            query = DB::bind(query, id);
        }
        let rows = query
            .fetch_all(&mut *conn)
            .await
            .map_err(database_error(dialect, "reading stream versions"))?;
        for row in rows {
            let decode = |index, ty| {
                DB::decode(&row, index, ty)
                    .map_err(database_error(dialect, "reading stream versions"))
            };
            let id = decode(0, ColumnType::Text)?;
            let version = decode(1, ColumnType::BigInt)?.as_u64().unwrap_or(0);
            if let Some(stream) = chunk.iter().find(|s| Some(**s) == id.as_str()) {
                versions.insert(*stream, version);
            }
        }
    }
    Ok(versions)
}

/// Records the applied version of each stream in `changed`, many rows per statement.
async fn record_versions_on<DB: Backend>(
    pool: &sqlx::Pool<DB>,
    schema: &Schema,
    changed: &[&str],
    versions: &HashMap<&str, u64>,
) -> Result<(), ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let action = "recording stream versions";
    let mut tx = pool
        .begin_with(DB::BEGIN)
        .await
        .map_err(database_error(DB::DIALECT, action))?;
    record_stream_versions::<DB>(&mut tx, schema, changed, versions).await?;
    tx.commit()
        .await
        .map_err(database_error(DB::DIALECT, action))
}

pub(super) async fn record_stream_versions<DB: Backend>(
    conn: &mut DB::Connection,
    schema: &Schema,
    changed: &[&str],
    versions: &HashMap<&str, u64>,
) -> Result<(), ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let dialect = DB::DIALECT;
    let table = schema.table(STREAM_VERSIONS)?;
    let projection = Value::from(schema.projection);
    if changed.is_empty() {
        return Ok(());
    }
    let conn_any: &mut dyn std::any::Any = &mut *conn;
    if let Some(pg) = conn_any.downcast_mut::<sqlx::PgConnection>() {
        let rows: Vec<Columns> = changed
            .iter()
            .map(|id| {
                vec![
                    ("projection", projection.clone()),
                    ("stream_id", Value::from(*id)),
                    ("version", Value::from(versions[id])),
                ]
            })
            .collect();
        return upsert_arrays(pg, table, &["projection", "stream_id", "version"], &rows).await;
    }
    for chunk in statement_chunks(changed, VERSION_ROWS_PER_STATEMENT) {
        let values: Vec<(Value, Value)> = chunk
            .iter()
            .map(|id| (Value::from(*id), Value::from(versions[id])))
            .collect();
        let sql = dialect.upsert_rows(table, &["projection", "stream_id", "version"], chunk.len());
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (id, version) in &values {
            query = DB::bind(query, &projection);
            query = DB::bind(query, id);
            query = DB::bind(query, version);
        }
        query
            .execute(&mut *conn)
            .await
            .map_err(database_error(dialect, "recording stream versions"))?;
    }
    Ok(())
}
