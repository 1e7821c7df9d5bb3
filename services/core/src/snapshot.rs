//! Snapshots of aggregate state, for long streams.
//!
//! A snapshot is only a cache: the state of a stream at a version, saved so that loading the
//! aggregate reads the events after it instead of the whole stream. Deleting snapshots, or a
//! snapshot that cannot be read (another state format, a corrupt document), changes nothing
//! but the time a load takes: the handler then replays the stream from its first event.

use async_trait::async_trait;

use crate::{StoreError, StreamVersion};

/// The saved state of one stream at one version.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub stream_id: String,
    pub version: StreamVersion,
    /// The format of `state` (see `CommandHandler::with_snapshots`); a snapshot of another
    /// format is ignored.
    pub format: u32,
    pub state: serde_json::Value,
}

/// Where snapshots are kept (usually the event store's own database).
#[async_trait]
pub trait SnapshotStore: Send + Sync + std::fmt::Debug {
    /// The newest snapshot of `stream_id`, if any.
    async fn load_snapshot(&self, stream_id: &str) -> Result<Option<Snapshot>, StoreError>;
    /// Keeps `snapshot` unless a snapshot of a later version of the stream is already kept.
    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError>;
    /// Deletes every snapshot (they are only a cache).
    async fn delete_snapshots(&self) -> Result<(), StoreError>;
}
