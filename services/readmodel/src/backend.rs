//! What differs between the databases at the level of values: how a [`Value`] is bound and
//! how a column is read back. Everything else is generic over [`Backend`].

use chrono::{DateTime, SecondsFormat, Utc};
use eventline_core::{ColumnType, Value};
use sqlx::query::Query;
use sqlx::{MySql, Postgres, Row as _, Sqlite};

use crate::dialect::Dialect;

/// A timestamp as read models show it: RFC 3339 in UTC with microseconds, fixed width.
pub(crate) fn timestamp_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) type Args<DB> = <DB as sqlx::Database>::Arguments;

/// A database a read model can live in.
pub(crate) trait Backend: sqlx::Database {
    const DIALECT: Dialect;
    /// Starts a batch transaction (SQLite takes the write lock at once).
    const BEGIN: &'static str;

    fn bind<'q>(
        query: Query<'q, Self, Args<Self>>,
        value: &'q Value,
    ) -> Query<'q, Self, Args<Self>>;

    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// Reads column `index` of `row` as JSON.
    fn decode(
        row: &Self::Row,
        index: usize,
        ty: ColumnType,
    ) -> Result<serde_json::Value, sqlx::Error>;
}

impl Backend for Sqlite {
    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }

    const DIALECT: Dialect = Dialect::Sqlite;
    const BEGIN: &'static str = "BEGIN IMMEDIATE";

    fn bind<'q>(
        query: Query<'q, Self, Args<Self>>,
        value: &'q Value,
    ) -> Query<'q, Self, Args<Self>> {
        match value {
            Value::Null => query.bind(None::<i64>),
            Value::Int(v) => query.bind(*v),
            Value::Text(v) => query.bind(v.as_str()),
            // Fixed-width RFC 3339 text sorts like the instant it names.
            Value::Timestamp(t) => query.bind(timestamp_text(t)),
        }
    }

    fn decode(
        row: &Self::Row,
        index: usize,
        ty: ColumnType,
    ) -> Result<serde_json::Value, sqlx::Error> {
        Ok(match ty {
            ColumnType::BigInt => row.try_get::<Option<i64>, _>(index)?.into(),
            ColumnType::Text | ColumnType::Timestamp => {
                row.try_get::<Option<String>, _>(index)?.into()
            }
        })
    }
}

/// PostgreSQL and MySQL bind and read timestamps natively; only their dialects differ.
macro_rules! native_backend {
    ($db:ty, $dialect:expr) => {
        impl Backend for $db {
            fn rows_affected(result: &Self::QueryResult) -> u64 {
                result.rows_affected()
            }

            const DIALECT: Dialect = $dialect;
            const BEGIN: &'static str = "BEGIN";

            fn bind<'q>(
                query: Query<'q, Self, Args<Self>>,
                value: &'q Value,
            ) -> Query<'q, Self, Args<Self>> {
                match value {
                    Value::Null => query.bind(None::<i64>),
                    Value::Int(v) => query.bind(*v),
                    Value::Text(v) => query.bind(v.as_str()),
                    Value::Timestamp(t) => query.bind(*t),
                }
            }

            fn decode(
                row: &Self::Row,
                index: usize,
                ty: ColumnType,
            ) -> Result<serde_json::Value, sqlx::Error> {
                Ok(match ty {
                    ColumnType::BigInt => row.try_get::<Option<i64>, _>(index)?.into(),
                    ColumnType::Text => row.try_get::<Option<String>, _>(index)?.into(),
                    ColumnType::Timestamp => row
                        .try_get::<Option<DateTime<Utc>>, _>(index)?
                        .map(|t| timestamp_text(&t))
                        .into(),
                })
            }
        }
    };
}

native_backend!(Postgres, Dialect::Postgres);
native_backend!(MySql, Dialect::MySql);
