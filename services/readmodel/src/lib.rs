//! Read models in SQL, through one code path for every database.
//!
//! A [`eventline_core::Projection`] declares its tables and turns events into abstract
//! [`eventline_core::RowOp`]s; this crate renders those as SQL for the target database
//! ([`Dialect`]), applies them together with the projection's checkpoint in one transaction
//! ([`ReadModelDb::apply_batch`]), and serves keyset-paged reads to the query services
//! ([`ReadModelDb::select`]).
//!
//! Supported: SQLite, PostgreSQL and MySQL/MariaDB, chosen by URL scheme. The SQL text differs
//! per [`Dialect`]; binding and decoding differ per backend; the logic (batches, checkpoints,
//! dead letters, paging) is written once, generic over the backend.

mod backend;
mod cutover;
mod db;
mod dialect;
mod digest;
mod error;
mod lease;
mod migrate;
mod plan;
mod pool;
mod progress;
mod query;
mod value;

pub use cutover::{CutOver, generation};
pub use db::{BatchOutcome, BatchSource, PartitionOffset, ProjectedEvent, ReplayClaim, Schema};
pub use dialect::Dialect;
pub use digest::TableDigest;
pub use error::ReadModelError;
pub use lease::{Lease, LeaseKeeper};
pub use pool::ReadModelDb;
pub use progress::ProgressOnly;
pub use query::{Row, Select};
pub use value::column_value;
