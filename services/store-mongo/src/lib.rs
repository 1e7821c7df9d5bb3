//! The MongoDB event store, using only what a standalone `mongod` offers: no multi-document
//! transactions, no change streams.
//!
//! # Appends
//! One append is one document (a *commit*) holding all its events, so it is atomic. A unique
//! index on `(stream_id, versions)` (multikey: every version of every commit) turns a stale
//! expected version into a duplicate-key error (code 11000), reported as
//! [`StoreError::Conflict`]; a commit is written only after reading that the stream is at the
//! expected version, so no version can be skipped either.
//!
//! # Positions, and why readers never skip an event
//! A writer first reserves positions with an atomic `$inc` on a counter document, then inserts
//! its commit covering them (`first ..= last`). Positions are thus handed out before the commit
//! is visible, and a reader may see `p + 1` while `p` is still being written. So:
//! - every reserved position ends up covered by a document: a writer that loses the race or
//!   fails after reserving writes a *tombstone* for its positions (best effort);
//! - readers return only a contiguous run of positions after the one they resume from, and
//!   stop at the first hole, waiting for it to be filled;
//! - only a writer that crashed between reserving and writing leaves a hole for good; a reader
//!   skips such a hole once it has waited [`MongoEventStore::with_gap_timeout`] (default 30 s,
//!   far above any write timeout), logs it and counts it in
//!   `eventline_store_skipped_positions_total`.
//!
//! Positions are commit-ordered once holes are resolved, so they are
//! [`Position::sequential`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use eventline_core::{
    AppendOutcome, Envelope, EventStore, Metadata, NewEvent, Position, StoreError, StreamInfo,
    StreamVersion, validate_append,
};
use futures::TryStreamExt;
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions, ReturnDocument};
use mongodb::{Client, Collection, Database, IndexModel};

const STORE: &str = "mongodb";
const EVENTS: &str = "eventline_events";
const COUNTERS: &str = "eventline_counters";
const SNAPSHOTS: &str = "eventline_snapshots";
const DUPLICATE_KEY: i32 = 11000;

fn db_error(action: &'static str) -> impl FnOnce(mongodb::error::Error) -> StoreError {
    move |source| StoreError::Database {
        store: STORE,
        action,
        source: Box::new(source),
    }
}

fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    matches!(
        error.kind.as_ref(),
        ErrorKind::Write(WriteFailure::WriteError(e)) if e.code == DUPLICATE_KEY
    )
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// An [`EventStore`] in a MongoDB database.
#[derive(Debug)]
pub struct MongoEventStore {
    database: Database,
    events: Collection<Document>,
    counters: Collection<Document>,
    /// One document per stream (`_id` = stream id): its newest snapshot.
    snapshots: Collection<Document>,
    gap_timeout: Duration,
    /// When each hole readers are waiting on was first seen.
    holes: Mutex<HashMap<u64, Instant>>,
}

impl MongoEventStore {
    /// Connects (the database is the URI's, or `eventline`) and creates the indexes.
    pub async fn connect(uri: &str, pool_size: u32) -> Result<Self, StoreError> {
        let mut options = ClientOptions::parse(uri)
            .await
            .map_err(db_error("parsing the URI"))?;
        options.max_pool_size = Some(pool_size);
        options.app_name = Some("eventline".to_owned());
        let client = Client::with_options(options).map_err(db_error("connecting"))?;
        let database = client
            .default_database()
            .unwrap_or_else(|| client.database("eventline"));
        let store = Self {
            events: database.collection(EVENTS),
            counters: database.collection(COUNTERS),
            snapshots: database.collection(SNAPSHOTS),
            database,
            gap_timeout: Duration::from_secs(30),
            holes: Mutex::new(HashMap::new()),
        };
        store.create_indexes().await?;
        Ok(store)
    }

    /// How long a reader waits on a hole in the positions before skipping it.
    #[must_use]
    pub fn with_gap_timeout(mut self, timeout: Duration) -> Self {
        self.gap_timeout = timeout;
        self
    }

    async fn create_indexes(&self) -> Result<(), StoreError> {
        let by_position = IndexModel::builder()
            .keys(doc! { "first": 1 })
            .options(
                IndexOptions::builder()
                    .unique(true)
                    .name("eventline_position".to_owned())
                    .build(),
            )
            .build();
        let by_stream = IndexModel::builder()
            .keys(doc! { "stream_id": 1, "versions": 1 })
            .options(
                IndexOptions::builder()
                    .unique(true)
                    .name("eventline_stream_version".to_owned())
                    .partial_filter_expression(doc! { "stream_id": { "$exists": true } })
                    .build(),
            )
            .build();
        let by_last = IndexModel::builder()
            .keys(doc! { "last": 1 })
            .options(
                IndexOptions::builder()
                    .name("eventline_last".to_owned())
                    .build(),
            )
            .build();
        self.events
            .create_indexes([by_position, by_stream, by_last])
            .await
            .map_err(db_error("creating indexes"))?;
        Ok(())
    }

    async fn current_version(&self, stream_id: &str) -> Result<StreamVersion, StoreError> {
        let last = self
            .events
            .find_one(doc! { "stream_id": stream_id })
            .sort(doc! { "last_version": -1 })
            .projection(doc! { "last_version": 1 })
            .await
            .map_err(db_error("reading the stream version"))?;
        Ok(last
            .and_then(|d| d.get_i64("last_version").ok())
            .map_or(0, to_u64))
    }

    /// Reserves `count` positions; returns the last of them.
    async fn reserve(&self, count: u64) -> Result<u64, StoreError> {
        let counter = self
            .counters
            .find_one_and_update(
                doc! { "_id": "events" },
                doc! { "$inc": { "seq": to_i64(count) } },
            )
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await
            .map_err(db_error("reserving positions"))?;
        counter
            .and_then(|d| d.get_i64("seq").ok())
            .map(to_u64)
            .ok_or_else(|| StoreError::Database {
                store: STORE,
                action: "reserving positions",
                source: "the counter document has no 64-bit `seq`".into(),
            })
    }

    /// Covers reserved positions that will hold no events, so readers need not wait on them.
    async fn tombstone(&self, first: u64, last: u64) {
        let tombstone = doc! { "first": to_i64(first), "last": to_i64(last), "tombstone": true };
        if let Err(error) = self.events.insert_one(tombstone).await
            && !is_duplicate_key(&error)
        {
            tracing::warn!(first, last, %error,
                "could not write a tombstone; readers will skip these positions after the gap timeout");
        }
    }

    /// Whether a reader may give up waiting on the hole at `position`.
    fn hole_expired(&self, position: u64) -> bool {
        let mut holes = self
            .holes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let first_seen = *holes.entry(position).or_insert_with(Instant::now);
        if first_seen.elapsed() >= self.gap_timeout {
            holes.remove(&position);
            true
        } else {
            false
        }
    }
}

fn json_to_bson(value: &serde_json::Value) -> Bson {
    bson::to_bson(value).unwrap_or(Bson::Null)
}

fn events_of(commit: &Document) -> Result<Vec<Envelope>, StoreError> {
    let first = commit.get_i64("first").map(to_u64).unwrap_or(0);
    let corrupt = |reason: &str| StoreError::Corrupt {
        position: first,
        reason: reason.to_owned(),
    };
    if commit.get_bool("tombstone").unwrap_or(false) {
        return Ok(Vec::new());
    }
    let stream_id = commit
        .get_str("stream_id")
        .map_err(|_| corrupt("no stream_id"))?;
    let stream_type = commit
        .get_str("stream_type")
        .map_err(|_| corrupt("no stream_type"))?;
    let first_version = commit
        .get_i64("first_version")
        .map_err(|_| corrupt("no first_version"))?;
    let recorded_at = commit
        .get_datetime("recorded_at")
        .map_err(|_| corrupt("no recorded_at"))?;
    let recorded_at = DateTime::<Utc>::from_timestamp_millis(recorded_at.timestamp_millis())
        .ok_or_else(|| corrupt("recorded_at out of range"))?;
    let events = commit
        .get_array("events")
        .map_err(|_| corrupt("no events"))?;
    events
        .iter()
        .zip(0u64..)
        .map(|(event, offset)| {
            let event = event
                .as_document()
                .ok_or_else(|| corrupt("an event is not a document"))?;
            let metadata = event
                .get("metadata")
                .cloned()
                .unwrap_or(Bson::Null)
                .into_relaxed_extjson();
            Ok(Envelope {
                position: Position::sequential(first + offset),
                stream_id: stream_id.to_owned(),
                stream_type: stream_type.to_owned(),
                version: to_u64(first_version) + offset,
                event_type: event
                    .get_str("event_type")
                    .map_err(|_| corrupt("no event_type"))?
                    .to_owned(),
                schema_version: event
                    .get_i32("schema_version")
                    .map(|v| u32::try_from(v).unwrap_or(0))
                    .map_err(|_| corrupt("no schema_version"))?,
                payload: event
                    .get("payload")
                    .cloned()
                    .unwrap_or(Bson::Null)
                    .into_relaxed_extjson(),
                metadata: serde_json::from_value::<Metadata>(metadata)
                    .map_err(|_| corrupt("unreadable metadata"))?,
                recorded_at,
            })
        })
        .collect()
}

#[async_trait]
impl EventStore for MongoEventStore {
    fn kind(&self) -> &'static str {
        STORE
    }

    async fn append(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: StreamVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        validate_append(stream_id, stream_type, &events)?;
        let actual = self.current_version(stream_id).await?;
        if actual != expected {
            return Err(StoreError::Conflict {
                stream_id: stream_id.to_owned(),
                expected,
                actual,
            });
        }
        let count = events.len() as u64;
        let last = self.reserve(count).await?;
        let first = last + 1 - count;
        let versions: Vec<i64> = (1..=count).map(|n| to_i64(expected + n)).collect();
        let stored: Vec<Document> = events
            .iter()
            .map(|event| {
                let metadata = serde_json::to_value(&event.metadata).unwrap_or_default();
                doc! {
                    "event_type": &event.event_type,
                    "schema_version": i32::try_from(event.schema_version).unwrap_or(i32::MAX),
                    "payload": json_to_bson(&event.payload),
                    "metadata": json_to_bson(&metadata),
                }
            })
            .collect();
        let commit = doc! {
            "first": to_i64(first),
            "last": to_i64(last),
            "stream_id": stream_id,
            "stream_type": stream_type,
            "first_version": to_i64(expected + 1),
            "last_version": to_i64(expected + count),
            "versions": versions,
            "recorded_at": bson::DateTime::now(),
            "events": stored,
        };
        match self.events.insert_one(commit).await {
            Ok(_) => Ok(AppendOutcome {
                version: expected + count,
                last_position: Position::sequential(last),
            }),
            Err(error) => {
                self.tombstone(first, last).await;
                if is_duplicate_key(&error) {
                    Err(StoreError::Conflict {
                        stream_id: stream_id.to_owned(),
                        expected,
                        actual: self.current_version(stream_id).await?,
                    })
                } else {
                    Err(db_error("inserting a commit")(error))
                }
            }
        }
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: StreamVersion,
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError> {
        let mut commits = self
            .events
            .find(doc! { "stream_id": stream_id, "last_version": { "$gt": to_i64(after_version) } })
            .sort(doc! { "first_version": 1 })
            .await
            .map_err(db_error("reading a stream"))?;
        let mut out = Vec::new();
        while out.len() < limit
            && let Some(commit) = commits
                .try_next()
                .await
                .map_err(db_error("reading a stream"))?
        {
            out.extend(
                events_of(&commit)?
                    .into_iter()
                    .filter(|e| e.version > after_version),
            );
        }
        out.truncate(limit);
        Ok(out)
    }

    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        let mut commits = self
            .events
            .find(doc! { "last": { "$gt": to_i64(after.event) } })
            .sort(doc! { "first": 1 })
            .await
            .map_err(db_error("reading all events"))?;
        let mut next = after.event + 1;
        let mut out = Vec::new();
        while out.len() < limit
            && let Some(commit) = commits
                .try_next()
                .await
                .map_err(db_error("reading all events"))?
        {
            let first = commit.get_i64("first").map(to_u64).unwrap_or(0);
            let last = commit.get_i64("last").map(to_u64).unwrap_or(0);
            if first > next {
                if !self.hole_expired(next) {
                    break;
                }
                tracing::warn!(
                    from = next,
                    to = first - 1,
                    "skipping positions no writer filled within the gap timeout"
                );
                metrics::counter!("eventline_store_skipped_positions_total", "store" => STORE)
                    .increment(first - next);
            }
            out.extend(
                events_of(&commit)?
                    .into_iter()
                    .filter(|e| e.position.event > after.event),
            );
            next = last + 1;
        }
        out.truncate(limit);
        Ok(out)
    }

    async fn list_streams(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>, StoreError> {
        let pipeline = [
            doc! { "$match": { "stream_id": { "$gt": after.unwrap_or("") } } },
            doc! { "$group": {
                "_id": "$stream_id",
                "stream_type": { "$first": "$stream_type" },
                "version": { "$max": "$last_version" },
            } },
            doc! { "$sort": { "_id": 1 } },
            doc! { "$limit": to_i64(limit as u64) },
        ];
        let streams: Vec<Document> = self
            .events
            .aggregate(pipeline)
            .await
            .map_err(db_error("listing streams"))?
            .try_collect()
            .await
            .map_err(db_error("listing streams"))?;
        Ok(streams
            .into_iter()
            .map(|s| StreamInfo {
                stream_id: s.get_str("_id").unwrap_or_default().to_owned(),
                stream_type: s.get_str("stream_type").unwrap_or_default().to_owned(),
                version: s.get_i64("version").map_or(0, to_u64),
            })
            .collect())
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        let last = self
            .events
            .find_one(doc! { "tombstone": { "$exists": false } })
            .sort(doc! { "last": -1 })
            .projection(doc! { "last": 1 })
            .await
            .map_err(db_error("reading the head position"))?;
        Ok(Position::sequential(
            last.and_then(|d| d.get_i64("last").ok()).map_or(0, to_u64),
        ))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.database
            .run_command(doc! { "ping": 1 })
            .await
            .map(drop)
            .map_err(db_error("pinging"))
    }
}

/// Snapshots: one document per stream, replaced only by a snapshot of a later version (a
/// conditional upsert; losing the race to a later snapshot is a duplicate key, and fine).
#[async_trait]
impl eventline_core::SnapshotStore for MongoEventStore {
    async fn load_snapshot(
        &self,
        stream_id: &str,
    ) -> Result<Option<eventline_core::Snapshot>, StoreError> {
        let found = self
            .snapshots
            .find_one(doc! { "_id": stream_id })
            .await
            .map_err(db_error("reading a snapshot"))?;
        Ok(found.and_then(|d| {
            Some(eventline_core::Snapshot {
                stream_id: stream_id.to_owned(),
                version: u64::try_from(d.get_i64("version").ok()?).ok()?,
                format: u32::try_from(d.get_i32("format").ok()?).ok()?,
                state: bson::from_bson(d.get("state")?.clone()).ok()?,
            })
        }))
    }

    async fn save_snapshot(&self, snapshot: &eventline_core::Snapshot) -> Result<(), StoreError> {
        let state = bson::to_bson(&snapshot.state).map_err(|e| StoreError::Database {
            store: STORE,
            action: "encoding a snapshot",
            source: Box::new(e),
        })?;
        let version = to_i64(snapshot.version);
        let saved = self
            .snapshots
            .update_one(
                doc! { "_id": &snapshot.stream_id, "version": { "$lt": version } },
                doc! { "$set": {
                    "version": version,
                    "format": i32::try_from(snapshot.format).unwrap_or(i32::MAX),
                    "state": state,
                    "taken_at": bson::DateTime::now(),
                } },
            )
            .upsert(true)
            .await;
        match saved {
            Ok(_) => Ok(()),
            // A snapshot of the same or a later version is kept already.
            Err(error) if is_duplicate_key(&error) => Ok(()),
            Err(error) => Err(db_error("saving a snapshot")(error)),
        }
    }

    async fn delete_snapshots(&self) -> Result<(), StoreError> {
        self.snapshots
            .delete_many(doc! {})
            .await
            .map(drop)
            .map_err(db_error("deleting snapshots"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit() -> Document {
        doc! {
            "first": 41_i64, "last": 42_i64,
            "stream_id": "acct-1", "stream_type": "bank.account",
            "first_version": 3_i64, "last_version": 4_i64, "versions": [3_i64, 4_i64],
            "recorded_at": bson::DateTime::from_millis(1_700_000_000_123),
            "events": [
                { "event_type": "FundsDeposited", "schema_version": 1,
                  "payload": { "amount": 5_i64, "balance": 15_i64 },
                  "metadata": { "user": "ada" } },
                { "event_type": "AccountClosed", "schema_version": 2,
                  "payload": {}, "metadata": {} },
            ],
        }
    }

    #[test]
    fn a_commit_document_becomes_envelopes_with_consecutive_positions_and_versions() {
        let events = events_of(&commit()).expect("decodes");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].position, Position::sequential(41));
        assert_eq!(events[1].position, Position::sequential(42));
        assert_eq!((events[0].version, events[1].version), (3, 4));
        assert_eq!(
            events[0].payload,
            serde_json::json!({"amount": 5, "balance": 15})
        );
        assert_eq!(events[0].metadata.user.as_deref(), Some("ada"));
        assert_eq!(events[1].schema_version, 2);
        assert_eq!(events[0].recorded_at.timestamp_millis(), 1_700_000_000_123);
    }

    #[test]
    fn tombstones_hold_no_events_and_broken_commits_are_corrupt() {
        let tombstone = doc! { "first": 7_i64, "last": 9_i64, "tombstone": true };
        assert!(events_of(&tombstone).expect("tombstone").is_empty());
        let mut broken = commit();
        broken.remove("stream_id");
        assert!(matches!(
            events_of(&broken),
            Err(StoreError::Corrupt { position: 41, .. })
        ));
    }
}
