//! Eventline's Kubernetes operator: the `Projection` resource deploys projectors and runs
//! declarative replays.
//!
//! - [`crd`]: the `Projection` custom resource (types only; crate `eventline-projection-api`,
//!   shared with the services).
//! - [`resources`]: pure builders, `Projection` -> Deployment, Job, ServiceAccount, Role, RoleBinding.
//! - [`status`]: status and conditions computed from what was observed.
//! - [`reconcile`]: the controller (observe, decide, apply, record status).
//! - [`report`]: how a replay process publishes its progress into `status.replay` (also from
//!   `eventline-projection-api`).
//! - [`leader`]: leader election on a `coordination.k8s.io/v1` Lease.
//! - [`http`]: `/healthz`, `/readyz` and `/metrics`.

pub use eventline_projection_api::crd;
pub mod error;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod report;
pub mod resources;
pub mod status;

#[cfg(test)]
mod fixtures;

pub use crd::{Projection, ProjectionSpec, ProjectionStatus};
pub use error::{Error, Result};

/// The field manager of every server-side apply the operator sends.
pub const FIELD_MANAGER: &str = "eventline-operator";

/// The CRD as YAML, exactly as `crdgen` prints it and `crds/projection.yaml` holds it.
pub fn crd_yaml() -> std::result::Result<String, serde_norway::Error> {
    use kube::CustomResourceExt;
    serde_norway::to_string(&Projection::crd())
}
