//! Why an Eventline application could not start, or stopped.

use std::net::SocketAddr;

use eventline_projector::ProjectorError;

use crate::auth::AuthSettingsError;
use crate::url::OpenError;

/// Why a service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Open(Box<OpenError>),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("event store: {0}")]
    Store(#[from] eventline_core::StoreError),
    #[error("read model: {0}")]
    ReadModel(#[from] eventline_readmodel::ReadModelError),
    #[error(transparent)]
    Projector(#[from] ProjectorError),
    #[error(transparent)]
    Relay(#[from] eventline_relay::RelayError),
    #[error(transparent)]
    Processor(#[from] eventline_processor::ProcessorError),
    #[error(transparent)]
    Auth(#[from] AuthSettingsError),
    #[error("--processors: this image has no process manager named {name:?} (it has: {known})")]
    UnknownProcessor { name: String, known: String },
    #[error("--projections: this image has no projection named {name:?} (it has: {known})")]
    UnknownProjection { name: String, known: String },
    #[error("--projection: this image has no projection named {name:?} (it has: {known})")]
    UnknownReplayProjection { name: String, known: String },
    #[error("the application's domains do not fit together: {0}")]
    Composition(#[from] eventline_domain::CompositionError),
    #[error(transparent)]
    Replay(Box<eventline_replay::ReplayError>),
    #[error("{flag}: cannot reach the Kubernetes API: {source}")]
    Kubernetes {
        flag: &'static str,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("{0} is required")]
    MissingFlag(&'static str),
    #[error("kafka: {0}")]
    Kafka(String),
    #[error("a service task panicked: {0}")]
    Panicked(String),
}

impl From<eventline_replay::ReplayError> for AppError {
    fn from(error: eventline_replay::ReplayError) -> Self {
        AppError::Replay(Box::new(error))
    }
}

impl From<OpenError> for AppError {
    fn from(error: OpenError) -> Self {
        AppError::Open(Box::new(error))
    }
}
