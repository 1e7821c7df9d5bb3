//! Read models in SQL, through one code path for every database.
//!
//! A [`eventline_core::Projection`] declares its tables and turns events into abstract
//! [`eventline_core::RowOp`]s; this crate renders those as SQL for the target database
//! ([`Dialect`]), applies them together with the projection's checkpoint in one transaction
//! ([`ReadModelDb::apply_batch`]), and serves keyset-paged reads to the query services
//! ([`ReadModelDb::select`]).
//!
//! Supported now: SQLite. PostgreSQL and MySQL/MariaDB plug in as further [`Dialect`]s and pool
//! variants, with no change to projections or projectors.

mod db;
mod dialect;
mod error;
mod query;

pub use db::{BatchOutcome, ProjectedEvent, ReadModelDb, Schema};
pub use dialect::Dialect;
pub use error::ReadModelError;
pub use query::{Row, Select};
