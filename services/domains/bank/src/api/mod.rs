//! The bank's HTTP routes: commands on the command service, reads on the query service.
//!
//! Both are `utoipa_axum` routers, so the OpenAPI document is generated from the handlers and
//! their types, never written by hand.

mod commands;
mod queries;

pub use commands::{CloseRequest, CommandState, FundsRequest, OpenAccountRequest, command_routes};
pub use queries::{AccountPage, AccountView, HistoryEntry, HistoryPage, QueryState, query_routes};
