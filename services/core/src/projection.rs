use std::hash::{Hash, Hasher};

use chrono::{DateTime, NaiveDate, Utc};
pub use rust_decimal::Decimal;
use uuid::Uuid;

use crate::aggregate::EventDecodeError;
use crate::envelope::Envelope;
use crate::position::Position;

/// The column types a read model may use; each SQL dialect maps them to its own types.
///
/// Every type reads back the same from SQLite, PostgreSQL and MySQL/MariaDB (see
/// `eventline_readmodel::Row` for the JSON each one reads as), so one projection runs on all
/// three and their content digests compare. Columns of the types for which
/// [`ColumnType::is_keyable`] is false cannot be in a primary key or an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// 64-bit signed integer.
    BigInt,
    /// Text of any length. Key and indexed text columns are limited to 191 characters so every
    /// supported database can index them.
    Text,
    /// A UTC instant with microsecond precision.
    Timestamp,
    /// True or false.
    Boolean,
    /// A 64-bit binary floating-point number, finite (NaN and the infinities have no place in
    /// MySQL or JSON). Not keyable: binary fractions compare inexactly; use
    /// [`ColumnType::Decimal`] for amounts.
    Double,
    /// An exact decimal number of at most `precision` digits, `scale` of them after the point:
    /// amounts that are not kept in minor units. `precision` is 1 to
    /// [`ColumnType::MAX_DECIMAL_PRECISION`], `scale` 0 to `precision`. Values with more
    /// fractional digits than `scale`, or more integer digits than `precision - scale`, are
    /// refused rather than rounded.
    Decimal { precision: u8, scale: u8 },
    /// A JSON document: `jsonb` on PostgreSQL, `JSON` on MySQL/MariaDB, text on SQLite. Read
    /// back as the document; not keyable.
    Json,
    /// A UUID, read as its lowercase hyphenated form.
    Uuid,
    /// A calendar date (no time, no zone), years 1 to 9999, read as `YYYY-MM-DD`.
    Date,
    /// Bytes of any length, read as base64. Not keyable.
    Bytes,
}

impl ColumnType {
    /// The largest precision of a [`ColumnType::Decimal`]: SQLite keeps decimals as 64-bit
    /// integers scaled by `10^scale` (exact, and ordered like the numbers), and 18 digits
    /// always fit one.
    pub const MAX_DECIMAL_PRECISION: u8 = 18;

    /// A [`ColumnType::Decimal`] of `precision` digits, `scale` of them after the point.
    pub const fn decimal(precision: u8, scale: u8) -> Self {
        ColumnType::Decimal { precision, scale }
    }

    /// Whether a column of this type can be in a primary key or an index, and so order and
    /// bound a keyset page. Doubles, JSON documents and bytes cannot.
    pub const fn is_keyable(self) -> bool {
        !matches!(
            self,
            ColumnType::Double | ColumnType::Json | ColumnType::Bytes
        )
    }
}

/// A column of a read-model table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
    pub nullable: bool,
}

impl Column {
    pub const fn new(name: &'static str, ty: ColumnType) -> Self {
        Self {
            name,
            ty,
            nullable: false,
        }
    }

    pub const fn nullable(name: &'static str, ty: ColumnType) -> Self {
        Self {
            name,
            ty,
            nullable: true,
        }
    }
}

/// A secondary index of a read-model table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub name: &'static str,
    pub columns: &'static [&'static str],
}

/// A read-model table, declared once and rendered as DDL for each database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: &'static str,
    pub columns: Vec<Column>,
    pub primary_key: &'static [&'static str],
    pub indexes: Vec<Index>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// A value written to or read from a read-model column.
///
/// Each variant belongs to one [`ColumnType`]; [`Value::Null`] fits any nullable column.
/// Equality is exact, except that a [`Value::Double`] of `-0.0` equals `0.0` (as in SQL) and
/// decimals compare by value (`1.50` equals `1.5`).
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    /// For [`ColumnType::BigInt`].
    Int(i64),
    /// For [`ColumnType::Text`].
    Text(String),
    /// For [`ColumnType::Timestamp`].
    Timestamp(DateTime<Utc>),
    /// For [`ColumnType::Boolean`].
    Bool(bool),
    /// For [`ColumnType::Double`]; must be finite.
    Double(f64),
    /// For [`ColumnType::Decimal`]; must fit the column's precision and scale.
    Decimal(Decimal),
    /// For [`ColumnType::Json`]: any document, `null` included.
    Json(serde_json::Value),
    /// For [`ColumnType::Uuid`].
    Uuid(Uuid),
    /// For [`ColumnType::Date`]; years 1 to 9999.
    Date(NaiveDate),
    /// For [`ColumnType::Bytes`].
    Bytes(Vec<u8>),
}

/// `-0.0` and `0.0` are one value (SQL compares them equal); every other double is its bits.
fn double_identity(v: f64) -> u64 {
    if v == 0.0 { 0 } else { v.to_bits() }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Text(a), Value::Text(b)) => a == b,
            (Value::Timestamp(a), Value::Timestamp(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Double(a), Value::Double(b)) => double_identity(*a) == double_identity(*b),
            (Value::Decimal(a), Value::Decimal(b)) => a == b,
            (Value::Json(a), Value::Json(b)) => a == b,
            (Value::Uuid(a), Value::Uuid(b)) => a == b,
            (Value::Date(a), Value::Date(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            _ => false,
        }
    }
}

/// Equality is an equivalence: doubles compare by their bits (zero of either sign as one),
/// not by IEEE `==`, under which NaN is not equal to itself.
impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Value::Null => {}
            Value::Int(v) => v.hash(state),
            Value::Text(v) => v.hash(state),
            Value::Timestamp(v) => v.hash(state),
            Value::Bool(v) => v.hash(state),
            Value::Double(v) => double_identity(*v).hash(state),
            // Equal decimals of different scales (1.5, 1.50) hash alike.
            Value::Decimal(v) => v.normalize().hash(state),
            Value::Json(v) => v.hash(state),
            Value::Uuid(v) => v.hash(state),
            Value::Date(v) => v.hash(state),
            Value::Bytes(v) => v.hash(state),
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<u64> for Value {
    /// Versions and positions never reach `i64::MAX`; larger values saturate.
    fn from(v: u64) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<DateTime<Utc>> for Value {
    fn from(v: DateTime<Utc>) -> Self {
        Value::Timestamp(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Double(v)
    }
}

impl From<Decimal> for Value {
    fn from(v: Decimal) -> Self {
        Value::Decimal(v)
    }
}

impl From<serde_json::Value> for Value {
    /// The document, even `null`: a JSON column then holds the document `null`, which reads
    /// back as JSON `null` like SQL NULL does.
    fn from(v: serde_json::Value) -> Self {
        Value::Json(v)
    }
}

impl From<Uuid> for Value {
    fn from(v: Uuid) -> Self {
        Value::Uuid(v)
    }
}

impl From<NaiveDate> for Value {
    fn from(v: NaiveDate) -> Self {
        Value::Date(v)
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Bytes(v.to_vec())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl RowOp {
    /// The table the change is on.
    pub fn table(&self) -> &'static str {
        match self {
            RowOp::Upsert { table, .. }
            | RowOp::Update { table, .. }
            | RowOp::Delete { table, .. } => table,
        }
    }
}

/// One change to a read-model row, independent of the database it is written to.
///
/// Every operation is idempotent given the same prior state, and the projector applies them
/// in the same transaction as its checkpoint, so an event is applied exactly once in effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowOp {
    /// Insert the row, or overwrite the given columns of the row with the same primary key.
    Upsert {
        table: &'static str,
        row: Vec<(&'static str, Value)>,
    },
    /// Set columns of exactly one existing row; a missing row is an error (the event is then
    /// dead-lettered), because it means the read model and the events disagree.
    Update {
        table: &'static str,
        key: Vec<(&'static str, Value)>,
        set: Vec<(&'static str, Value)>,
    },
    /// Delete the row with this key, if it exists.
    Delete {
        table: &'static str,
        key: Vec<(&'static str, Value)>,
    },
}

/// Why a projection could not apply an event. The projector dead-letters the event and goes on.
#[derive(Debug, thiserror::Error)]
#[error("event {position} ({event_type}) cannot be projected: {reason}")]
pub struct ProjectionError {
    pub position: Position,
    pub event_type: String,
    pub reason: String,
}

impl ProjectionError {
    pub fn new(event: &Envelope, reason: impl std::fmt::Display) -> Self {
        Self {
            position: event.position,
            event_type: event.event_type.clone(),
            reason: reason.to_string(),
        }
    }

    pub fn undecodable(event: &Envelope, error: &EventDecodeError) -> Self {
        Self::new(event, error)
    }
}

/// A read model: tables plus a pure function from each event to row changes.
///
/// The same projection runs live (tailing the store or consuming Kafka), in replays and in
/// tests, against SQLite, PostgreSQL or MySQL; it never touches a database itself.
pub trait Projection: Send + Sync + std::fmt::Debug {
    /// A stable name, used for the checkpoint row and metrics labels.
    fn name(&self) -> &'static str;
    /// The tables this projection writes.
    fn tables(&self) -> Vec<Table>;
    /// The stream types (e.g. `bank.account`) whose events concern the projection; a Kafka
    /// projector subscribes to their topics.
    fn stream_types(&self) -> &'static [&'static str];
    /// Whether events of this stream type concern the projection; others are skipped
    /// (the checkpoint still moves past them).
    fn handles(&self, stream_type: &str) -> bool {
        self.stream_types().contains(&stream_type)
    }
    /// The row changes one event causes.
    fn apply(&self, event: &Envelope) -> Result<Vec<RowOp>, ProjectionError>;
}
