use chrono::{DateTime, Utc};

use crate::aggregate::EventDecodeError;
use crate::envelope::Envelope;
use crate::position::Position;

/// The column types a read model may use; each SQL dialect maps them to its own types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// 64-bit signed integer.
    BigInt,
    /// Text of any length. Key and indexed text columns are limited to 191 characters so every
    /// supported database can index them.
    Text,
    /// A UTC instant with microsecond precision.
    Timestamp,
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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Timestamp(DateTime<Utc>),
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
