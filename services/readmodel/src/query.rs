use eventline_core::{ColumnType, Table, Value};
use sqlx::{AssertSqlSafe, Executor, IntoArguments};

use crate::backend::{Args, Backend};
use crate::error::ReadModelError;
use crate::pool::{ReadModelDb, with_pool};
use crate::value::{self, column_value};

/// One read-model row as JSON, each column in its type's canonical form (see
/// [`crate::column_value`] for the way back): integers and doubles as numbers, booleans as
/// booleans, text as strings, timestamps as RFC 3339 in UTC with microseconds, decimals as
/// strings with exactly the declared scale (`"-12.50"`), JSON documents as themselves, UUIDs
/// as lowercase hyphenated strings, dates as `YYYY-MM-DD`, bytes as base64; NULL as `null`.
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
    /// Newest or largest first: every `order_by` column descending (and `after` a bound from
    /// above). Databases read an ascending index backwards for it.
    pub descending: bool,
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
        let bounds = select.order_by.iter().zip(select.after.iter().flatten());
        for (name, value) in select.filters.iter().map(|(c, v)| (c, v)).chain(bounds) {
            if let Some(column) = table.column(name) {
                value::check(column, value).map_err(schema_error)?;
            }
        }
        with_pool!(self, pool => select_on(pool, select).await)
    }

    /// One page of `table`'s rows where `filters` are equal, in primary-key order after the
    /// key `after`, and the key to pass as `after` for the next page (`None` after the last).
    pub async fn page_by_key(
        &self,
        table: &Table,
        filters: Vec<(&'static str, Value)>,
        after: Option<Vec<Value>>,
        limit: u32,
    ) -> Result<(Vec<Row>, Option<Vec<Value>>), ReadModelError> {
        let page = self
            .select(&Select {
                table,
                filters,
                order_by: table.primary_key,
                after,
                descending: false,
                limit,
            })
            .await?;
        let next = match page.last() {
            Some(last) if page.len() == limit as usize => Some(
                table
                    .primary_key
                    .iter()
                    .map(|c| key_value(table, last, c))
                    .collect(),
            ),
            _ => None,
        };
        Ok((page, next))
    }

    /// Every row of `table`, in primary-key order: what tests and checks compare between a
    /// live read model and a replay, whatever database each is in.
    pub async fn all_rows(&self, table: &Table) -> Result<Vec<Row>, ReadModelError> {
        let mut rows = Vec::new();
        let mut after = None;
        loop {
            let (page, next) = self.page_by_key(table, Vec::new(), after, 5_000).await?;
            rows.extend(page);
            match next {
                Some(next) => after = Some(next),
                None => return Ok(rows),
            }
        }
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
                descending: false,
                limit: 1,
            })
            .await?;
        Ok(rows.into_iter().next())
    }
}

/// A key column's value in `row`, typed by the column.
fn key_value(table: &Table, row: &Row, column: &str) -> Value {
    table
        .column(column)
        .and_then(|c| column_value(c.ty, &row[column]))
        .unwrap_or(Value::Null)
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
    let sql = DB::DIALECT.select(
        table,
        &filters,
        select.order_by,
        select.after.is_some(),
        select.descending,
    );
    let limit = Value::Int(i64::from(select.limit));
    let mut query = sqlx::query(AssertSqlSafe(sql));
    let bounds = select.order_by.iter().zip(select.after.iter().flatten());
    let column_type = |name: &str| table.column(name).map_or(ColumnType::Text, |c| c.ty);
    for (value, ty) in select
        .filters
        .iter()
        .map(|(c, v)| (c, v))
        .chain(bounds)
        .map(|(c, v)| (v, column_type(c)))
        .chain([(&limit, ColumnType::BigInt)])
    {
        query = DB::bind_as(query, value, ty);
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
