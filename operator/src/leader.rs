//! Leader election on a `coordination.k8s.io/v1` Lease (through `kube-lease-manager`), so two
//! operator replicas never reconcile at once.
//!
//! Only the holder of the Lease runs the controller. A replica that loses the Lease stops its
//! controller (letting the reconciliations in flight finish) and waits to win it again; on
//! shutdown the Lease is released so another replica takes over without waiting for it to
//! expire.

use std::future::Future;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::{Error, Result};

/// Which Lease to hold and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// Lease namespace (the operator's own).
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// Seconds a Lease stays valid after its last renewal.
    pub duration_seconds: u64,
    /// Seconds before expiry at which the holder renews.
    pub grace_seconds: u64,
}

/// Runs `work` whenever this replica holds the Lease, until `shutdown` is cancelled.
///
/// `work` receives a token that is cancelled when leadership is lost or on shutdown; it must
/// return soon after. It may be called again after a later win.
pub async fn run_as_leader<W, Fut>(
    client: Client,
    config: &LeaseConfig,
    shutdown: CancellationToken,
    mut work: W,
) -> Result<()>
where
    W: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let lease_err = |source| Error::Lease {
        namespace: config.namespace.clone(),
        name: config.name.clone(),
        source: Box::new(source),
    };
    let manager = LeaseManagerBuilder::new(client, config.name.clone())
        .with_namespace(config.namespace.clone())
        .with_identity(config.identity.clone())
        .with_duration(config.duration_seconds)
        .with_grace(config.grace_seconds)
        .with_field_manager(format!("{}-lease", crate::FIELD_MANAGER))
        .build()
        .await
        .map_err(lease_err)?;
    let (mut leading, task) = manager.watch().await;
    info!(lease = %config.name, namespace = %config.namespace, identity = %config.identity, "waiting for the Lease");
    'outer: loop {
        while !*leading.borrow_and_update() {
            tokio::select! {
                () = shutdown.cancelled() => break 'outer,
                changed = leading.changed() => if changed.is_err() { break 'outer },
            }
        }
        info!(identity = %config.identity, "holding the Lease: starting the controller");
        let stop = shutdown.child_token();
        let running = work(stop.clone());
        tokio::pin!(running);
        let lost = async {
            loop {
                if leading.changed().await.is_err() || !*leading.borrow() {
                    return;
                }
            }
        };
        tokio::select! {
            () = &mut running => {}
            () = lost => {
                warn!(identity = %config.identity, "lost the Lease: stopping the controller");
                stop.cancel();
                running.await;
            }
        }
        // Shutdown, or the lease task ended (its error is returned below).
        if shutdown.is_cancelled() || leading.has_changed().is_err() {
            break;
        }
    }
    // Closing the channel makes the manager's task release the Lease and return.
    drop(leading);
    match task.await {
        Ok(Ok(_manager)) => {
            info!("Lease released");
            Ok(())
        }
        Ok(Err(source)) => Err(lease_err(source)),
        Err(join) => {
            warn!(error = %join, "the lease task ended abnormally");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
