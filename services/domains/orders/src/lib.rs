//! The orders domain, from the systems Eventline replaces: orders are created over HTTP and
//! processed in the background.
//!
//! - [`Order`]: the aggregate, with commands [`CreateOrder`] and [`ProcessOrder`] and events
//!   [`OrderEvent`];
//! - [`OrderProcessor`]: the process manager that sends `ProcessOrder` for every
//!   `OrderCreated`, exactly once in effect (a processed order decides `ProcessOrder` as a
//!   no-op, so a redelivered event changes nothing);
//! - [`OrdersProjection`]: the `orders` and `order_lines` read models;
//! - [`api`]: the command and query HTTP routes.
//!
//! Prices are integers in minor units (cents).

pub mod api;
mod order;
mod processor;
mod projection;

pub use order::{
    CreateOrder, MAX_LINES, MAX_PRICE, Order, OrderCommand, OrderError, OrderEvent, OrderLine,
    OrderStatus, ProcessOrder,
};
pub use processor::OrderProcessor;
pub use projection::{OrdersProjection, lines_table, orders_table};

/// The orders domain as an Eventline application runs it: the [`Order`] aggregate behind the
/// `/orders` command routes (snapshotted), the order queries, the [`OrdersProjection`] and
/// the [`OrderProcessor`].
pub fn domain() -> eventline_domain::Domain {
    eventline_domain::Domain::new("orders")
        .describe("Orders: created over HTTP, processed in the background")
        .snapshotted_aggregate::<Order>(Order::SNAPSHOT_FORMAT, api::command_routes)
        .queries(|db| api::query_routes(api::QueryState::new(db)))
        .projection(OrdersProjection)
        .process_manager(OrderProcessor::new)
}
