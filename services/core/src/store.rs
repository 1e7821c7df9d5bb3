use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::envelope::{Envelope, NewEvent};
use crate::position::{Position, StreamVersion};

/// The result of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The stream's version after the append (the version of its last new event).
    pub version: StreamVersion,
    /// The global position of the last appended event.
    pub last_position: Position,
}

/// One stream as listed by [`EventStore::list_streams`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamInfo {
    pub stream_id: String,
    pub stream_type: String,
    pub version: StreamVersion,
}

/// Errors of an event store, each naming what it was working on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The optimistic-concurrency check failed: somebody else appended first.
    #[error("stream {stream_id} is at version {actual}, not the expected {expected}")]
    Conflict {
        stream_id: String,
        expected: StreamVersion,
        actual: StreamVersion,
    },
    /// The request itself is malformed (empty stream id, no events, ...).
    #[error("invalid append to stream {stream_id:?}: {reason}")]
    InvalidInput { stream_id: String, reason: String },
    /// A stored row cannot be read back (bad JSON, bad timestamp).
    #[error("stored event {position} is unreadable: {reason}")]
    Corrupt { position: u64, reason: String },
    /// The database failed or is unreachable.
    #[error("{store} event store failed while {action}: {source}")]
    Database {
        store: &'static str,
        action: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Where events are kept: an append-only log of streams with a store-wide order.
///
/// # Contract (checked by the `eventline-store-contract` suite for every adapter)
/// - `append` is all-or-nothing and succeeds only if the stream is exactly at `expected`;
///   otherwise it fails with [`StoreError::Conflict`] carrying the actual version. The
///   database's uniqueness of (stream id, version), not a read-then-write check in application
///   code, is what rules out two winners.
/// - `read_all` returns events in the store order, after a position the caller got from
///   this store. It is *gap-safe*: it never returns an event while an event that will come
///   before it in that order is still uncommitted, so a reader that resumes from the last
///   position it saw never skips an event.
#[async_trait]
pub trait EventStore: Send + Sync + std::fmt::Debug {
    /// A short name for logs and metrics: `sqlite`, `postgres`, `mongodb`.
    fn kind(&self) -> &'static str;

    /// Appends `events` to `stream_id` if the stream is at version `expected` (0 = new stream).
    async fn append(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: StreamVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError>;

    /// Up to `limit` events of one stream with a version above `after_version`, in version order.
    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: StreamVersion,
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError>;

    /// Up to `limit` events after `after` in the store order (see the gap-safety contract).
    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<Envelope>, StoreError>;

    /// Up to `limit` streams with an id greater than `after` (all when `None`), in id order.
    async fn list_streams(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>, StoreError>;

    /// The position of the last event a reader can see now ([`Position::START`] when empty).
    async fn head_position(&self) -> Result<Position, StoreError>;

    /// Checks that the store answers; used by `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Checks the parts of an append request every store rejects the same way.
pub fn validate_append(
    stream_id: &str,
    stream_type: &str,
    events: &[NewEvent],
) -> Result<(), StoreError> {
    let invalid = |reason: &str| {
        Err(StoreError::InvalidInput {
            stream_id: stream_id.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if stream_id.is_empty() {
        return invalid("the stream id is empty");
    }
    if stream_id.len() > 200 {
        return invalid("the stream id is longer than 200 bytes");
    }
    if stream_type.is_empty() {
        return invalid("the stream type is empty");
    }
    if events.is_empty() {
        return invalid("an append needs at least one event");
    }
    if events.iter().any(|e| e.event_type.is_empty()) {
        return invalid("an event type is empty");
    }
    Ok(())
}
