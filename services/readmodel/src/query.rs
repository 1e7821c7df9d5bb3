use eventline_core::{ColumnType, Table, Value};
use sqlx::{AssertSqlSafe, Row as _};

use crate::db::{ReadModelDb, timestamp_text};
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
        let filters: Vec<&str> = select.filters.iter().map(|(c, _)| *c).collect();
        let sql = self
            .dialect()
            .select(table, &filters, select.order_by, select.after.is_some());
        let pool = self.sqlite_pool();
        let mut query = sqlx::query(AssertSqlSafe(sql));
        let bounds = select.after.iter().flatten();
        for value in select.filters.iter().map(|(_, v)| v).chain(bounds) {
            query = match value {
                Value::Null => query.bind(None::<i64>),
                Value::Int(v) => query.bind(*v),
                Value::Text(v) => query.bind(v.as_str()),
                Value::Timestamp(t) => query.bind(timestamp_text(t)),
            };
        }
        let rows = query
            .bind(i64::from(select.limit))
            .fetch_all(pool)
            .await
            .map_err(|source| ReadModelError::Database {
                database: self.dialect().name(),
                action: format!("reading {}", table.name),
                source,
            })?;
        rows.iter()
            .map(|row| {
                let mut out = Row::new();
                for (i, column) in table.columns.iter().enumerate() {
                    let value = match column.ty {
                        ColumnType::BigInt => row.try_get::<Option<i64>, _>(i).map(|v| v.into()),
                        ColumnType::Text | ColumnType::Timestamp => {
                            row.try_get::<Option<String>, _>(i).map(|v| v.into())
                        }
                    }
                    .map_err(|source| ReadModelError::Database {
                        database: self.dialect().name(),
                        action: format!("decoding {}.{}", table.name, column.name),
                        source,
                    })?;
                    out.insert(column.name.to_owned(), value);
                }
                Ok(out)
            })
            .collect()
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
