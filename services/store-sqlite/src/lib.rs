//! The embedded event store: one SQLite file, read and written through `sqlx`.
//!
//! # Why positions are gap-safe here
//! All appends go through one writer connection and each append is one `BEGIN IMMEDIATE`
//! transaction, so at most one append is in flight at any time. A position (the rowid) is
//! assigned inside that transaction and the next append cannot start before it commits or
//! rolls back. Readers use WAL snapshots of committed data only. Hence when a reader sees
//! position `p`, every position below `p` that will ever exist is already committed and
//! visible: resuming "after `p`" can never skip an event. Positions are therefore
//! [`Position::sequential`]: the event number is its own commit order.
//!
//! # Concurrency
//! The single writer serialises appends; the expected-version check and the
//! `UNIQUE (stream_id, version)` constraint both run inside that transaction, the constraint
//! being the backstop should another process write the same file.
//!
//! # Group commit
//! With one writer, every append waits for the commit (and the `fsync`) of the one before it.
//! So appends that arrive while one is being written are gathered by
//! [`eventline_group_commit::GroupCommit`] and written in one transaction: each in a savepoint of
//! its own, with its own expected-version check, so that a conflict rolls back that append
//! alone. An append that finds the writer idle is written at once.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use eventline_core::{
    AppendOutcome, Envelope, EventStore, NewEvent, Position, StoreError, StreamInfo, StreamVersion,
    validate_append,
};
pub use eventline_group_commit::GroupCommitSettings;
use eventline_group_commit::{AppendRequest, BatchWriter, GroupCommit, shared_failure};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection};

const STORE: &str = "sqlite";

/// An [`EventStore`] in one SQLite file, for embedded mode and tests.
#[derive(Debug, Clone)]
pub struct SqliteEventStore {
    writer: SqlitePool,
    readers: SqlitePool,
    path: PathBuf,
    appender: Arc<Appender>,
    /// Gathers concurrent appends into batches; `None` when group commit is off.
    group: Option<GroupCommit>,
}

/// Writes batches of appends through the writer connection.
#[derive(Debug)]
struct Appender {
    writer: SqlitePool,
}

fn db_error(action: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Database {
        store: STORE,
        action,
        source: Box::new(source),
    }
}

impl SqliteEventStore {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(db_error("parsing connection options"))?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged append survives a crash of the process and of the machine.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(db_error("opening the writer connection"))?;
        sqlx::migrate!("./migrations")
            .run(&writer)
            .await
            .map_err(|source| StoreError::Database {
                store: STORE,
                action: "migrating the schema",
                source: Box::new(source),
            })?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(db_error("opening reader connections"))?;
        let appender = Arc::new(Appender {
            writer: writer.clone(),
        });
        Ok(Self {
            writer,
            readers,
            path,
            appender,
            group: None,
        }
        .with_group_commit(GroupCommitSettings::SINGLE_WRITER))
    }

    /// The same store with appends gathered as `settings` say (`max_appends` 1: each append
    /// is its own transaction, as soon as the writer is free).
    #[must_use]
    pub fn with_group_commit(self, settings: GroupCommitSettings) -> Self {
        let group = settings.enabled().then(|| {
            let writer: Arc<dyn BatchWriter> = self.appender.clone();
            GroupCommit::start(STORE, writer, settings)
        });
        Self { group, ..self }
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes all connections, checkpointing the WAL.
    pub async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }
}

async fn current_version(
    conn: &mut SqliteConnection,
    stream_id: &str,
) -> Result<StreamVersion, StoreError> {
    let version: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = ?")
            .bind(stream_id)
            .fetch_one(conn)
            .await
            .map_err(db_error("reading the stream version"))?;
    Ok(u64::try_from(version).unwrap_or(0))
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn envelope_from_row(row: &SqliteRow) -> Result<Envelope, StoreError> {
    let number = u64::try_from(row.get::<i64, _>(0)).unwrap_or(0);
    let corrupt = |reason: String| StoreError::Corrupt {
        position: number,
        reason,
    };
    let payload: &str = row.get(6);
    let metadata: &str = row.get(7);
    let recorded_at: &str = row.get(8);
    Ok(Envelope {
        position: Position::sequential(number),
        stream_id: row.get(1),
        stream_type: row.get(2),
        version: u64::try_from(row.get::<i64, _>(3)).unwrap_or(0),
        event_type: row.get(4),
        schema_version: u32::try_from(row.get::<i64, _>(5)).unwrap_or(0),
        payload: serde_json::from_str(payload).map_err(|e| corrupt(format!("payload: {e}")))?,
        metadata: serde_json::from_str(metadata).map_err(|e| corrupt(format!("metadata: {e}")))?,
        recorded_at: DateTime::parse_from_rfc3339(recorded_at)
            .map_err(|e| corrupt(format!("recorded_at: {e}")))?
            .with_timezone(&Utc),
    })
}

/// The columns [`envelope_from_row`] reads, followed by the rest of a query.
macro_rules! select_events {
    ($rest:literal) => {
        concat!(
            "SELECT position, stream_id, stream_type, version, event_type, schema_version, ",
            "payload, metadata, recorded_at FROM events ",
            $rest
        )
    };
}

#[async_trait]
impl BatchWriter for Appender {
    async fn write_batch(&self, batch: &[AppendRequest]) -> Vec<Result<AppendOutcome, StoreError>> {
        match self.write_in_one_transaction(batch).await {
            Ok(outcomes) => outcomes,
            Err(error) => shared_failure(error, batch.len())
                .into_iter()
                .map(Err)
                .collect(),
        }
    }
}

impl Appender {
    /// One `BEGIN IMMEDIATE` transaction for the whole batch, one savepoint per append.
    async fn write_in_one_transaction(
        &self,
        batch: &[AppendRequest],
    ) -> Result<Vec<Result<AppendOutcome, StoreError>>, StoreError> {
        let recorded_at = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error("beginning an append"))?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for request in batch {
            sqlx::query("SAVEPOINT append")
                .execute(&mut *tx)
                .await
                .map_err(db_error("beginning an append"))?;
            let outcome = append_in(&mut tx, request, &recorded_at).await?;
            let end = if outcome.is_ok() {
                "RELEASE append"
            } else {
                "ROLLBACK TO append; RELEASE append"
            };
            sqlx::raw_sql(end)
                .execute(&mut *tx)
                .await
                .map_err(db_error("ending an append"))?;
            outcomes.push(outcome);
        }
        tx.commit()
            .await
            .map_err(db_error("committing an append"))?;
        Ok(outcomes)
    }
}

/// One append inside the batch's transaction: `Ok(Err(conflict))` leaves the savepoint to be
/// rolled back; `Err` fails the whole batch (the database failed).
async fn append_in(
    conn: &mut SqliteConnection,
    request: &AppendRequest,
    recorded_at: &str,
) -> Result<Result<AppendOutcome, StoreError>, StoreError> {
    let stream_id = request.stream_id.as_str();
    let conflict = |actual| {
        Ok(Err(StoreError::Conflict {
            stream_id: stream_id.to_owned(),
            expected: request.expected,
            actual,
        }))
    };
    let actual = current_version(conn, stream_id).await?;
    if actual != request.expected {
        return conflict(actual);
    }
    let mut last_position = Position::START;
    for (offset, event) in (1..).zip(&request.events) {
        let metadata = match serde_json::to_string(&event.metadata) {
            Ok(metadata) => metadata,
            Err(e) => {
                return Ok(Err(StoreError::InvalidInput {
                    stream_id: stream_id.to_owned(),
                    reason: format!("metadata does not serialise: {e}"),
                }));
            }
        };
        let inserted = sqlx::query(
            "INSERT INTO events (stream_id, stream_type, version, event_type, schema_version, \
             payload, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(stream_id)
        .bind(&request.stream_type)
        .bind(to_i64(request.expected + offset))
        .bind(&event.event_type)
        .bind(i64::from(event.schema_version))
        .bind(event.payload.to_string())
        .bind(metadata)
        .bind(recorded_at)
        .execute(&mut *conn)
        .await;
        match inserted {
            Ok(done) => {
                let number = u64::try_from(done.last_insert_rowid()).unwrap_or(0);
                last_position = Position::sequential(number);
            }
            // Only another process writing the same file can get here (this one holds the
            // write lock and checked the version): the constraint decides.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return conflict(current_version(conn, stream_id).await?);
            }
            Err(e) => return Err(db_error("inserting an event")(e)),
        }
    }
    Ok(Ok(AppendOutcome {
        version: request.expected + request.events.len() as u64,
        last_position,
    }))
}

#[async_trait]
impl EventStore for SqliteEventStore {
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
        let request = AppendRequest {
            stream_id: stream_id.to_owned(),
            stream_type: stream_type.to_owned(),
            expected,
            events,
        };
        match &self.group {
            Some(group) => group.append(request).await,
            None => {
                let mut outcomes = self
                    .appender
                    .write_batch(std::slice::from_ref(&request))
                    .await;
                outcomes.pop().unwrap_or_else(|| {
                    Err(StoreError::Database {
                        store: STORE,
                        action: "appending events",
                        source: "the writer returned no outcome".into(),
                    })
                })
            }
        }
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: StreamVersion,
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError> {
        let rows = sqlx::query(select_events!(
            "WHERE stream_id = ? AND version > ? ORDER BY version LIMIT ?"
        ))
        .bind(stream_id)
        .bind(to_i64(after_version))
        .bind(to_i64(limit as u64))
        .fetch_all(&self.readers)
        .await
        .map_err(db_error("reading a stream"))?;
        rows.iter().map(envelope_from_row).collect()
    }

    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        let rows = sqlx::query(select_events!(
            "WHERE position > ? ORDER BY position LIMIT ?"
        ))
        .bind(to_i64(after.event))
        .bind(to_i64(limit as u64))
        .fetch_all(&self.readers)
        .await
        .map_err(db_error("reading all events"))?;
        rows.iter().map(envelope_from_row).collect()
    }

    async fn list_streams(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>, StoreError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT stream_id, MIN(stream_type), MAX(version) FROM events \
             WHERE stream_id > ? GROUP BY stream_id ORDER BY stream_id LIMIT ?",
        )
        .bind(after.unwrap_or(""))
        .bind(to_i64(limit as u64))
        .fetch_all(&self.readers)
        .await
        .map_err(db_error("listing streams"))?;
        Ok(rows
            .into_iter()
            .map(|(stream_id, stream_type, version)| StreamInfo {
                stream_id,
                stream_type,
                version: u64::try_from(version).unwrap_or(0),
            })
            .collect())
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&self.readers)
            .await
            .map_err(db_error("reading the head position"))?;
        Ok(Position::sequential(u64::try_from(head).unwrap_or(0)))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.readers)
            .await
            .map_err(db_error("pinging"))?;
        Ok(())
    }
}

#[async_trait]
impl eventline_core::SnapshotStore for SqliteEventStore {
    async fn load_snapshot(
        &self,
        stream_id: &str,
    ) -> Result<Option<eventline_core::Snapshot>, StoreError> {
        let row: Option<(i64, i64, String)> = sqlx::query_as(
            "SELECT version, format, state FROM eventline_snapshots WHERE stream_id = ?",
        )
        .bind(stream_id)
        .fetch_optional(&self.readers)
        .await
        .map_err(db_error("reading a snapshot"))?;
        Ok(row.and_then(|(version, format, state)| {
            Some(eventline_core::Snapshot {
                stream_id: stream_id.to_owned(),
                version: u64::try_from(version).ok()?,
                format: u32::try_from(format).ok()?,
                state: serde_json::from_str(&state).ok()?,
            })
        }))
    }

    async fn save_snapshot(&self, snapshot: &eventline_core::Snapshot) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO eventline_snapshots (stream_id, version, format, state) VALUES (?, ?, ?, ?) \
             ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, \
             format = excluded.format, state = excluded.state, taken_at = excluded.taken_at \
             WHERE excluded.version > eventline_snapshots.version",
        )
        .bind(&snapshot.stream_id)
        .bind(i64::try_from(snapshot.version).unwrap_or(i64::MAX))
        .bind(i64::from(snapshot.format))
        .bind(snapshot.state.to_string())
        .execute(&self.writer)
        .await
        .map(drop)
        .map_err(db_error("saving a snapshot"))
    }

    async fn delete_snapshots(&self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM eventline_snapshots")
            .execute(&self.writer)
            .await
            .map(drop)
            .map_err(db_error("deleting snapshots"))
    }
}

#[cfg(test)]
mod tests {
    use eventline_store_contract::{append_request as request, versions};

    use super::*;

    /// A conflict in the middle of a batch rolls back that append alone; the appends around
    /// it are stored, with consecutive positions.
    #[tokio::test]
    async fn a_conflict_in_a_batch_fails_that_append_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteEventStore::open(dir.path().join("events.sqlite"))
            .await
            .expect("open");
        store
            .append("a", "test", 0, request("a", 0, 1).events)
            .await
            .expect("a");
        let outcomes = store
            .appender
            .write_batch(&[request("x", 0, 2), request("a", 0, 2), request("y", 0, 1)])
            .await;
        assert_eq!(outcomes[0].as_ref().expect("x").version, 2);
        assert!(matches!(
            outcomes[1],
            Err(StoreError::Conflict {
                expected: 0,
                actual: 1,
                ..
            })
        ));
        let y = outcomes[2].as_ref().expect("y");
        assert_eq!(y.version, 1);
        assert_eq!(versions(&store, "x").await, vec![1, 2]);
        assert_eq!(versions(&store, "a").await, vec![1]);
        assert_eq!(versions(&store, "y").await, vec![1]);
        let all = store.read_all(Position::START, 100).await.expect("all");
        let positions: Vec<u64> = all.iter().map(|e| e.position.event).collect();
        assert_eq!(positions, vec![1, 2, 3, 4]);
        assert_eq!(y.last_position, Position::sequential(4));
    }
}
