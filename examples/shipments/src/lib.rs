//! The shipments domain: an example of a domain brought to Eventline from outside its
//! repository.
//!
//! - [`Shipment`]: the aggregate: register, dispatch, deliver, cancel (and customs
//!   clearance), with the rule that an international shipment cannot leave before it has
//!   cleared customs;
//! - [`CustomsBroker`]: the process manager that clears international shipments as they are
//!   registered, charging duty;
//! - [`TrackingProjection`]: the `shipments` and `shipment_timeline` read models;
//! - [`api`]: the command and query HTTP routes.

pub mod api;
mod customs;
mod projection;
mod shipment;

pub use customs::{CustomsBroker, DUTY_FREE_UP_TO, DUTY_RATE, duty};
pub use projection::{TrackingProjection, read_model_rows, shipments_table, timeline_table};
pub use shipment::{
    CancelShipment, ClearCustoms, DeliverShipment, DispatchShipment, Item, MAX_DECLARED_VALUE,
    MAX_WEIGHT_GRAMS, RegisterShipment, Shipment, ShipmentCommand, ShipmentError, ShipmentEvent,
    ShipmentStatus,
};

/// The shipments domain, as an Eventline application runs it.
pub fn domain() -> eventline_domain::Domain {
    eventline_domain::Domain::new("shipments")
        .describe("Parcels: registered, cleared through customs, dispatched, delivered")
        .snapshotted_aggregate::<Shipment>(Shipment::SNAPSHOT_FORMAT, api::command_routes)
        .queries(|db| api::query_routes(api::QueryState::new(db)))
        .projection(TrackingProjection)
        .process_manager(CustomsBroker::new)
}
