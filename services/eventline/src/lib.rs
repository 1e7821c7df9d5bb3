//! The Eventline binary's building blocks, public so integration tests start the same
//! services the binary does.
//!
//! - [`cli`]: the command line (`eventline embedded | command-api | query-api | project |
//!   relay | replay | rollback | processor | token`);
//! - [`auth`]: what the services trust (JWT settings), and development tokens;
//! - [`progress`]: how a replay shows its progress (a bar, or JSON lines);
//! - [`app`]: assembling command and query services and projectors from their crates;
//! - [`url`]: database URLs, opened by scheme and redacted in logs.

pub mod app;
pub mod auth;
pub mod cli;
pub mod progress;
pub mod status_report;
pub mod telemetry;
pub mod url;
