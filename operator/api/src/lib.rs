//! The `Projection` custom resource and the status reports Eventline's processes publish
//! into it.
//!
//! - [`crd`]: the resource's types (the CRD is generated from them);
//! - [`report`]: how a replay process and a projector publish into a Projection's status, each
//!   under its own field manager;
//! - [`metrics`]: the replay's phase and progress from Projections' status, as Prometheus
//!   gauges (the operator serves them).
//!
//! Both the operator and the services (`eventline replay`, `eventline project`) use this
//! crate; the services never link the controller.

pub mod crd;
mod error;
pub mod metrics;
pub mod report;

pub use crd::{Projection, ProjectionSpec, ProjectionStatus};
pub use error::ReportError;
