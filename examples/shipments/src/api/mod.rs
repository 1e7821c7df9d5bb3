//! The shipments' HTTP routes: commands on the command service, reads on the query service.

mod commands;
mod queries;

pub use commands::{
    CancelRequest, CommandState, DeliveryRequest, DispatchRequest, RegisterShipmentRequest,
    command_routes,
};
pub use queries::{
    QueryState, ShipmentPage, ShipmentView, TimelineEntry, TimelinePage, query_routes,
};
