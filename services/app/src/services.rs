//! The tasks of a running service, and how they stop together.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use eventline_core::{EventStore, Position, Projection};
use eventline_http::serve;
use eventline_processor::{ProcessManager, Processor, ProcessorConfig};
use eventline_projector::{ProjectorConfig, StoreProjector};
use eventline_readmodel::ReadModelDb;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::AppError;

pub(crate) async fn listen(addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Listen { addr, source })
}

pub(crate) fn local_addr(listener: &TcpListener, addr: SocketAddr) -> Result<SocketAddr, AppError> {
    listener
        .local_addr()
        .map_err(|source| AppError::Listen { addr, source })
}

/// A set of service tasks that stop together.
#[derive(Debug)]
pub struct Services {
    pub(crate) tasks: JoinSet<Result<(), AppError>>,
    pub(crate) shutdown: CancellationToken,
    addrs: Vec<SocketAddr>,
}

impl Services {
    pub(crate) fn new(shutdown: CancellationToken) -> Self {
        Self {
            tasks: JoinSet::new(),
            shutdown,
            addrs: Vec::new(),
        }
    }

    /// The addresses the HTTP servers listen on, in the order they were started.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    pub(crate) fn serve(&mut self, listener: TcpListener, router: Router) {
        if let Ok(addr) = listener.local_addr() {
            self.addrs.push(addr);
        }
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            serve(listener, router, shutdown)
                .await
                .map_err(|source| AppError::Io {
                    what: "serving HTTP".into(),
                    source,
                })
        });
    }

    /// Starts a store-tailing projector for every projection, once its tables exist.
    pub(crate) async fn project_from_store(
        &mut self,
        projections: &[Arc<dyn Projection>],
        store: &Arc<dyn EventStore>,
        db: &ReadModelDb,
        batch_size: u32,
        appended: Option<watch::Receiver<Position>>,
    ) -> Result<(), AppError> {
        for projection in projections {
            let mut projector =
                StoreProjector::new(Arc::clone(store), db.clone(), Arc::clone(projection))
                    .with_config(ProjectorConfig {
                        batch_size: batch_size as usize,
                        ..ProjectorConfig::default()
                    });
            if let Some(appended) = &appended {
                projector = projector.with_append_signal(appended.clone());
            }
            projector.prepare().await?;
            let shutdown = self.shutdown.clone();
            self.tasks
                .spawn(async move { projector.run(shutdown).await.map_err(AppError::from) });
        }
        Ok(())
    }

    /// Starts a processor for every process manager, its checkpoint and lease in `checkpoints`.
    pub(crate) async fn run_processors(
        &mut self,
        managers: Vec<Arc<dyn ProcessManager>>,
        store: &Arc<dyn EventStore>,
        checkpoints: &ReadModelDb,
        batch_size: u32,
    ) -> Result<(), AppError> {
        for manager in managers {
            let config = ProcessorConfig {
                batch_size: batch_size as usize,
                ..ProcessorConfig::default()
            };
            let processor =
                Processor::new(Arc::clone(store), checkpoints.clone(), manager, config).await?;
            let shutdown = self.shutdown.clone();
            self.tasks
                .spawn(async move { processor.run(shutdown).await.map_err(AppError::from) });
        }
        Ok(())
    }

    /// Waits until every task has stopped. The first failure cancels the others (so the
    /// process exits rather than limping on half-alive) and is returned.
    pub async fn wait(mut self) -> Result<(), AppError> {
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            let result = joined.unwrap_or_else(|e| Err(AppError::Panicked(e.to_string())));
            if let Err(error) = result {
                self.shutdown.cancel();
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Embedded mode, started: both APIs listening and the projector running.
#[derive(Debug)]
pub struct Embedded {
    pub command_addr: SocketAddr,
    pub query_addr: SocketAddr,
    pub services: Services,
}
