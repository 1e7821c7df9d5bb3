//! An event store that is not there, for asking a process manager what it is.

use async_trait::async_trait;
use eventline_core::{
    AppendOutcome, Envelope, EventStore, NewEvent, Position, StoreError, StreamInfo, StreamVersion,
};

/// Refuses every call. Process managers are built from the store they send commands to;
/// introspection builds them over this one to learn their names, and never runs them.
#[derive(Debug)]
pub(crate) struct DetachedStore;

fn detached() -> StoreError {
    StoreError::Database {
        store: "detached",
        action: "answering an introspection-only process manager",
        source: "no event store is connected".into(),
    }
}

#[async_trait]
impl EventStore for DetachedStore {
    fn kind(&self) -> &'static str {
        "detached"
    }

    async fn append(
        &self,
        _: &str,
        _: &str,
        _: StreamVersion,
        _: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        Err(detached())
    }

    async fn read_stream(
        &self,
        _: &str,
        _: StreamVersion,
        _: usize,
    ) -> Result<Vec<Envelope>, StoreError> {
        Err(detached())
    }

    async fn read_all(&self, _: Position, _: usize) -> Result<Vec<Envelope>, StoreError> {
        Err(detached())
    }

    async fn list_streams(&self, _: Option<&str>, _: usize) -> Result<Vec<StreamInfo>, StoreError> {
        Err(detached())
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        Err(detached())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Err(detached())
    }
}
