//! Eventline as a library: an application lists its domains and gets the whole platform.
//!
//! ```no_run
//! # fn shipments() -> eventline_app::Domain { eventline_app::Domain::new("shipments") }
//! fn main() -> std::process::ExitCode {
//!     eventline_app::App::new().domain(shipments()).run()
//! }
//! ```
//!
//! That `main` gets every subcommand (`embedded | command-api | query-api | project | relay |
//! replay | rollback | processor | token | projections`), configuration by flags and
//! environment variables, JWT authentication, `/healthz`, `/readyz`, `/metrics`, OpenAPI
//! documents and graceful shutdown. A domain is described once, as a [`Domain`] (crate
//! `eventline-domain`).
//!
//! - [`App`]: the application and what each subcommand runs;
//! - [`cli`]: the command line;
//! - [`auth`]: what the services trust (JWT settings), and development tokens;
//! - [`progress`]: how a replay shows its progress (a bar, or JSON lines);
//! - [`url`]: database URLs, opened by scheme and redacted in logs;
//! - [`status_report`]: progress and lag published into a `Projection`'s status.

mod app;
pub mod auth;
pub mod cli;
mod error;
mod introspect;
pub mod progress;
mod routers;
mod services;
pub mod status_report;
pub mod telemetry;
pub mod url;

pub use app::App;
pub use error::AppError;
pub use eventline_domain::{CommandContext, CompositionError, Domain, Domains};
pub use services::{Embedded, Services};
