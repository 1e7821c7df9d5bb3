use eventline_core::{Table, Value};
use sqlx::{AssertSqlSafe, Executor, IntoArguments};

use crate::backend::{Args, Backend};
use crate::db::{ReadModelDb, with_pool};
use crate::error::ReadModelError;

/// One read-model row as JSON: integers as numbers, text as strings, timestamps as RFC 3339.
pub type Row = serde_json::Map<String, serde_json::Value>;

/// A keyset-paged read: equality filters, ordered by `order_by`, starting after `after`.
///
/// Keyset paging (not `OFFSET`) keeps every page as cheap as the first and never repeats or
/// skips a row when rows are added between pages.
#[derive(Debug, Clone)]
pub struct Select<'a> {
    pub table: &'a Table,
    pub filters: Vec<(&'static str, Value)>,
    /// Columns that order the rows and together identify one (end with the primary key).
    pub order_by: &'static [&'static str],
    /// Values of `order_by` of the last row of the previous page.
    pub after: Option<Vec<Value>>,
    pub limit: u32,
}

impl ReadModelDb {
    /// Runs a [`Select`] and returns its rows.
    pub async fn select(&self, select: &Select<'_>) -> Result<Vec<Row>, ReadModelError> {
        let table = select.table;
        let schema_error = |reason: String| ReadModelError::Schema {
            table: table.name.to_owned(),
            reason,
        };
        for column in select.filters.iter().map(|(c, _)| c).chain(select.order_by) {
            if table.column(column).is_none() {
                return Err(schema_error(format!("no column {column:?}")));
            }
        }
        if let Some(after) = &select.after
            && after.len() != select.order_by.len()
        {
            return Err(schema_error(
                "the cursor does not match the ordering".into(),
            ));
        }
        with_pool!(self, pool => select_on(pool, select).await)
    }

    /// The row of `table` with this primary key, if any.
    pub async fn get(
        &self,
        table: &Table,
        key: Vec<(&'static str, Value)>,
    ) -> Result<Option<Row>, ReadModelError> {
        let rows = self
            .select(&Select {
                table,
                filters: key,
                order_by: table.primary_key,
                after: None,
                limit: 1,
            })
            .await?;
        Ok(rows.into_iter().next())
    }
}

async fn select_on<DB: Backend>(
    pool: &sqlx::Pool<DB>,
    select: &Select<'_>,
) -> Result<Vec<Row>, ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let table = select.table;
    let failed = |action: String| {
        move |source| ReadModelError::Database {
            database: DB::DIALECT.name(),
            action,
            source,
        }
    };
    let filters: Vec<&str> = select.filters.iter().map(|(c, _)| *c).collect();
    let sql = DB::DIALECT.select(table, &filters, select.order_by, select.after.is_some());
    let limit = Value::Int(i64::from(select.limit));
    let mut query = sqlx::query(AssertSqlSafe(sql));
    let bounds = select.after.iter().flatten();
    for value in select
        .filters
        .iter()
        .map(|(_, v)| v)
        .chain(bounds)
        .chain([&limit])
    {
        query = DB::bind(query, value);
    }
    let mut conn = pool
        .acquire()
        .await
        .map_err(failed(format!("reading {}", table.name)))?;
    let rows = query
        .fetch_all(&mut *conn)
        .await
        .map_err(failed(format!("reading {}", table.name)))?;
    rows.iter()
        .map(|row| {
            let mut out = Row::new();
            for (i, column) in table.columns.iter().enumerate() {
                let value = DB::decode(row, i, column.ty)
                    .map_err(failed(format!("decoding {}.{}", table.name, column.name)))?;
                out.insert(column.name.to_owned(), value);
            }
            Ok(out)
        })
        .collect()
}
