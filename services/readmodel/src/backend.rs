//! What differs between the databases at the level of values: how a [`Value`] is bound and
//! how a column is read back. Everything else is generic over [`Backend`].
//!
//! Every column type reads back as the same JSON from every database (see [`crate::value`]).
//! Where a database has no type of its own, SQLite above all, the value is kept in a form
//! that orders like the value: decimals as integers scaled by `10^scale`, dates as
//! `YYYY-MM-DD`, UUIDs as lowercase hyphenated text (MySQL too: `CHAR(36)`).

use chrono::{DateTime, NaiveDate, Utc};
use eventline_core::{ColumnType, Decimal, Value};
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{MySql, Postgres, Row as _, Sqlite};
use uuid::Uuid;

use crate::dialect::Dialect;
use crate::value::{
    bytes_json, date_text, decimal_text, double_json, natural_type, scaled_decimal, timestamp_text,
};

pub(crate) type Args<DB> = <DB as sqlx::Database>::Arguments;

/// A database a read model can live in.
pub(crate) trait Backend: sqlx::Database {
    const DIALECT: Dialect;
    /// Starts a batch transaction (SQLite takes the write lock at once).
    const BEGIN: &'static str;

    /// Binds `value` as a value of a column of type `ty`, which types a NULL (PostgreSQL
    /// checks it against the column) and gives a decimal its scale (SQLite keeps it scaled).
    /// The value has been checked to fit ([`crate::value::check`]).
    fn bind_as<'q>(
        query: Query<'q, Self, Args<Self>>,
        value: &'q Value,
        ty: ColumnType,
    ) -> Query<'q, Self, Args<Self>>;

    /// Binds `value` as its own type (bookkeeping values, never NULL).
    fn bind<'q>(
        query: Query<'q, Self, Args<Self>>,
        value: &'q Value,
    ) -> Query<'q, Self, Args<Self>> {
        Self::bind_as(query, value, natural_type(value))
    }

    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// Reads column `index` of `row` as JSON.
    fn decode(
        row: &Self::Row,
        index: usize,
        ty: ColumnType,
    ) -> Result<serde_json::Value, sqlx::Error>;
}

/// The scale a decimal is written with: the column's, or its own when no column says.
fn scale_of(d: &Decimal, ty: ColumnType) -> u8 {
    match ty {
        ColumnType::Decimal { scale, .. } => scale,
        _ => u8::try_from(d.scale()).unwrap_or(u8::MAX),
    }
}

/// A column read as text, parsed as a JSON document.
fn parse_document(text: Option<String>) -> Result<serde_json::Value, sqlx::Error> {
    text.map_or(Ok(serde_json::Value::Null), |text| {
        serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
    })
}

impl Backend for Sqlite {
    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }

    const DIALECT: Dialect = Dialect::Sqlite;
    const BEGIN: &'static str = "BEGIN IMMEDIATE";

    fn bind_as<'q>(
        query: Query<'q, Self, Args<Self>>,
        value: &'q Value,
        ty: ColumnType,
    ) -> Query<'q, Self, Args<Self>> {
        match value {
            Value::Null => query.bind(None::<i64>),
            Value::Int(v) => query.bind(*v),
            Value::Text(v) => query.bind(v.as_str()),
            // Fixed-width RFC 3339 text sorts like the instant it names.
            Value::Timestamp(t) => query.bind(timestamp_text(t)),
            Value::Bool(v) => query.bind(*v),
            Value::Double(v) => query.bind(*v),
            // An integer of the column's scale: exact, and ordered like the numbers.
            Value::Decimal(d) => query.bind(scaled_decimal(*d, scale_of(d, ty))),
            Value::Json(document) => query.bind(document.to_string()),
            Value::Uuid(id) => query.bind(id.to_string()),
            Value::Date(d) => query.bind(date_text(d)),
            Value::Bytes(bytes) => query.bind(bytes.as_slice()),
        }
    }

    fn decode(
        row: &Self::Row,
        index: usize,
        ty: ColumnType,
    ) -> Result<serde_json::Value, sqlx::Error> {
        Ok(match ty {
            ColumnType::BigInt => row.try_get::<Option<i64>, _>(index)?.into(),
            ColumnType::Text | ColumnType::Timestamp | ColumnType::Uuid | ColumnType::Date => {
                row.try_get::<Option<String>, _>(index)?.into()
            }
            ColumnType::Boolean => row.try_get::<Option<bool>, _>(index)?.into(),
            ColumnType::Double => row
                .try_get::<Option<f64>, _>(index)?
                .map_or(serde_json::Value::Null, double_json),
            ColumnType::Decimal { scale, .. } => row
                .try_get::<Option<i64>, _>(index)?
                .map(|scaled| decimal_text(Decimal::new(scaled, u32::from(scale)), scale))
                .into(),
            ColumnType::Json => parse_document(row.try_get::<Option<String>, _>(index)?)?,
            ColumnType::Bytes => row
                .try_get::<Option<Vec<u8>>, _>(index)?
                .map_or(serde_json::Value::Null, |b| bytes_json(&b)),
        })
    }
}

impl Backend for Postgres {
    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }

    const DIALECT: Dialect = Dialect::Postgres;
    const BEGIN: &'static str = "BEGIN";

    fn bind_as<'q>(
        query: Query<'q, Self, Args<Self>>,
        value: &'q Value,
        ty: ColumnType,
    ) -> Query<'q, Self, Args<Self>> {
        match value {
            // A NULL of the column's type: PostgreSQL casts no bigint to a uuid or a date.
            Value::Null => match ty {
                ColumnType::BigInt => query.bind(None::<i64>),
                ColumnType::Text => query.bind(None::<String>),
                ColumnType::Timestamp => query.bind(None::<DateTime<Utc>>),
                ColumnType::Boolean => query.bind(None::<bool>),
                ColumnType::Double => query.bind(None::<f64>),
                ColumnType::Decimal { .. } => query.bind(None::<Decimal>),
                ColumnType::Json => query.bind(None::<Json<serde_json::Value>>),
                ColumnType::Uuid => query.bind(None::<Uuid>),
                ColumnType::Date => query.bind(None::<NaiveDate>),
                ColumnType::Bytes => query.bind(None::<Vec<u8>>),
            },
            Value::Int(v) => query.bind(*v),
            Value::Text(v) => query.bind(v.as_str()),
            Value::Timestamp(t) => query.bind(*t),
            Value::Bool(v) => query.bind(*v),
            Value::Double(v) => query.bind(*v),
            Value::Decimal(d) => query.bind(*d),
            Value::Json(document) => query.bind(Json(document)),
            Value::Uuid(id) => query.bind(*id),
            Value::Date(d) => query.bind(*d),
            Value::Bytes(bytes) => query.bind(bytes.as_slice()),
        }
    }

    fn decode(
        row: &Self::Row,
        index: usize,
        ty: ColumnType,
    ) -> Result<serde_json::Value, sqlx::Error> {
        Ok(match ty {
            ColumnType::Uuid => row
                .try_get::<Option<Uuid>, _>(index)?
                .map(|id| id.to_string())
                .into(),
            other => decode_native::<Postgres>(row, index, other)?,
        })
    }
}

impl Backend for MySql {
    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }

    const DIALECT: Dialect = Dialect::MySql;
    const BEGIN: &'static str = "BEGIN";

    fn bind_as<'q>(
        query: Query<'q, Self, Args<Self>>,
        value: &'q Value,
        _ty: ColumnType,
    ) -> Query<'q, Self, Args<Self>> {
        match value {
            Value::Null => query.bind(None::<i64>),
            Value::Int(v) => query.bind(*v),
            Value::Text(v) => query.bind(v.as_str()),
            Value::Timestamp(t) => query.bind(*t),
            Value::Bool(v) => query.bind(*v),
            Value::Double(v) => query.bind(*v),
            Value::Decimal(d) => query.bind(*d),
            Value::Json(document) => query.bind(Json(document)),
            // CHAR(36): the text orders like PostgreSQL's uuid (byte by byte).
            Value::Uuid(id) => query.bind(id.to_string()),
            Value::Date(d) => query.bind(*d),
            Value::Bytes(bytes) => query.bind(bytes.as_slice()),
        }
    }

    fn decode(
        row: &Self::Row,
        index: usize,
        ty: ColumnType,
    ) -> Result<serde_json::Value, sqlx::Error> {
        Ok(match ty {
            ColumnType::Uuid => row.try_get::<Option<String>, _>(index)?.into(),
            other => decode_native::<MySql>(row, index, other)?,
        })
    }
}

/// Reads a column of a database with native timestamps, decimals, dates and JSON
/// (PostgreSQL, MySQL); UUIDs are read by the caller.
fn decode_native<DB>(
    row: &DB::Row,
    index: usize,
    ty: ColumnType,
) -> Result<serde_json::Value, sqlx::Error>
where
    DB: sqlx::Database,
    usize: sqlx::ColumnIndex<DB::Row>,
    for<'r> i64: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> String: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> DateTime<Utc>: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> bool: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> f64: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> Decimal: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> Json<serde_json::Value>: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> NaiveDate: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> Vec<u8>: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
{
    Ok(match ty {
        ColumnType::BigInt => row.try_get::<Option<i64>, _>(index)?.into(),
        ColumnType::Text | ColumnType::Uuid => row.try_get::<Option<String>, _>(index)?.into(),
        ColumnType::Timestamp => row
            .try_get::<Option<DateTime<Utc>>, _>(index)?
            .map(|t| timestamp_text(&t))
            .into(),
        ColumnType::Boolean => row.try_get::<Option<bool>, _>(index)?.into(),
        ColumnType::Double => row
            .try_get::<Option<f64>, _>(index)?
            .map_or(serde_json::Value::Null, double_json),
        ColumnType::Decimal { scale, .. } => row
            .try_get::<Option<Decimal>, _>(index)?
            .map(|d| decimal_text(d, scale))
            .into(),
        ColumnType::Json => row
            .try_get::<Option<Json<serde_json::Value>>, _>(index)?
            .map_or(serde_json::Value::Null, |Json(document)| document),
        ColumnType::Date => row
            .try_get::<Option<NaiveDate>, _>(index)?
            .map(|d| date_text(&d))
            .into(),
        ColumnType::Bytes => row
            .try_get::<Option<Vec<u8>>, _>(index)?
            .map_or(serde_json::Value::Null, |b| bytes_json(&b)),
    })
}
