//! The HTTP layer shared by Eventline's command and query services.
//!
//! - [`ApiError`]: the one error type of every handler, rendered as RFC 9457
//!   `application/problem+json`, with the status decided in one place ([`ApiError::status_code`]);
//! - [`ApiJson`] / [`ApiQuery`]: extractors whose rejections name the offending field;
//! - [`fetch_page`] / [`keyset_bound`]: keyset-paged reads of read models with opaque cursors;
//! - [`ops_routes`]: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`;
//! - [`stream_routes`]: read-only, paged `/streams` and `/streams/{id}/events` for operators;
//! - [`serve`]: request ids, tracing, metrics and graceful shutdown around a router.

mod caller;
mod command;
mod error;
mod extract;
mod openapi;
mod ops;
mod paging;
mod serve;
mod streams;

pub use caller::{Caller, command_metadata};
pub use command::{CommandAccepted, accepted, run_command};
pub use error::{ApiError, Problem};
pub use extract::{ApiJson, ApiQuery, Cursor, etag, expected_version, page_limit};
pub use openapi::{
    IF_MATCH_PATTERN, PROBLEM_JSON, add_problem, document_auth_problems, document_problems,
    operations_mut, problem_response,
};
pub use ops::{ReadyCheck, ops_routes, prometheus};
pub use paging::{Paging, fetch_page, keyset_bound, read_error, row_into};
pub use serve::{serve, shutdown_signal};
pub use streams::{EventPage, EventView, StreamPage, StreamView, stream_routes};
