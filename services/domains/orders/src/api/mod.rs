//! The orders' HTTP routes: commands on the command service, reads on the query service.

mod commands;
mod queries;

pub use commands::{CommandState, CreateOrderRequest, ProcessOrderRequest, command_routes};
pub use queries::{OrderLineView, OrderPage, OrderSummary, OrderView, QueryState, query_routes};
