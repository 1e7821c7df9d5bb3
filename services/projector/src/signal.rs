use std::sync::Arc;

use async_trait::async_trait;
use eventline_core::{
    AppendOutcome, Envelope, EventStore, NewEvent, Position, StoreError, StreamInfo, StreamVersion,
};
use tokio::sync::watch;

/// An [`EventStore`] that announces each committed append, so projectors in the same process
/// wake at once instead of polling. Readers still read by position; the signal only says
/// "look now", so a missed or merged signal costs latency, never an event.
#[derive(Debug)]
pub struct NotifyOnAppend {
    inner: Arc<dyn EventStore>,
    appended: watch::Sender<Position>,
}

impl NotifyOnAppend {
    pub fn new(inner: Arc<dyn EventStore>) -> Self {
        Self {
            inner,
            appended: watch::Sender::new(Position::START),
        }
    }

    /// A receiver that changes after every committed append.
    pub fn subscribe(&self) -> watch::Receiver<Position> {
        self.appended.subscribe()
    }
}

#[async_trait]
impl EventStore for NotifyOnAppend {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn append(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: StreamVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        let outcome = self
            .inner
            .append(stream_id, stream_type, expected, events)
            .await?;
        self.appended.send_replace(outcome.last_position);
        Ok(outcome)
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: StreamVersion,
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError> {
        self.inner
            .read_stream(stream_id, after_version, limit)
            .await
    }

    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        self.inner.read_all(after, limit).await
    }

    async fn list_streams(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>, StoreError> {
        self.inner.list_streams(after, limit).await
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        self.inner.head_position().await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}
