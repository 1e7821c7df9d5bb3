//! The event-sourcing model of Eventline.
//!
//! This crate is pure: it has no database, HTTP or Kafka dependency. It defines
//! - [`Aggregate`]: `decide(state, command) -> events` and `apply(state, event)`;
//! - [`Envelope`]: one stored event with its stream, version, global position and metadata;
//! - [`EventStore`]: the append-with-expected-version and ordered-read contract every store meets;
//! - [`Upcaster`] / [`UpcasterChain`]: old event schema versions are upgraded on read;
//! - [`Projection`]: a pure mapping from events to abstract row changes ([`RowOp`]) on declared
//!   tables ([`Table`]), which the read-model crate renders for each SQL database;
//! - [`CommandHandler`]: load an aggregate from its events, decide, append.
//!
//! Domains plug in by implementing these traits; nothing here knows about any domain.

mod aggregate;
mod command;
mod envelope;
mod position;
mod projection;
mod snapshot;
mod store;
pub mod testing;
mod upcast;
pub mod wire;

pub use aggregate::{Aggregate, DomainError, DomainEvent, EventDecodeError, FieldError, Rejection};
pub use command::{
    CommandError, CommandHandler, CommandOutcome, DEFAULT_CACHED_AGGREGATES,
    DEFAULT_CONFLICT_RETRIES,
};
pub use envelope::{Envelope, Metadata, NewEvent};
pub use position::{Position, StreamVersion};
pub use projection::{
    Column, ColumnType, Decimal, Index, Projection, ProjectionError, RowOp, Table, Value,
};
pub use snapshot::{Snapshot, SnapshotStore};
pub use store::{AppendOutcome, EventStore, StoreError, StreamInfo, validate_append};
pub use upcast::{FnUpcaster, UpcastError, Upcaster, UpcasterChain};
