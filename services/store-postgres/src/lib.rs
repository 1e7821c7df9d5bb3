//! The PostgreSQL event store.
//!
//! # Appends
//! An append of one event is one `INSERT ... SELECT` statement in its own transaction. It
//! inserts version `expected + 1` only if the stream is at `expected` (the event at version
//! `expected` exists, or `expected` is 0), and the `UNIQUE (stream_id, version)` constraint
//! decides between concurrent writers: the loser gets a unique violation, reported as
//! [`StoreError::Conflict`] with the stream's actual version. Appends of several events, and
//! batches of appends, go through the `eventline_append_batch` function below: all events of
//! an append or none.
//!
//! # Group commit
//! Appends that arrive while others are being written are gathered by
//! [`eventline_group_commit::GroupCommit`] and written together by one call of the
//! `eventline_append_batch` function (migration `0003_append_batch.sql`): one round trip and one
//! commit for the batch, each append with its own expected-version check and outcome. Inside,
//! `ON CONFLICT DO NOTHING` turns a lost race into "not inserted" for that append instead of an
//! error that would abort the batch, and an append that lost the race for only some of its
//! events has them taken out again before the commit, so appends stay all or nothing. An append
//! that finds the store idle is written at once and alone.
//!
//! # Why readers never skip an event
//! `position` comes from an identity sequence, handed out *before* commit: transaction A may
//! take position 5, transaction B position 6, and B commit first. A reader that saw 6 and
//! resumed "after 6" would never see 5. So every event also records its writing transaction's
//! id (`pg_current_xact_id()`, type `xid8`, never wraps around), and readers
//! 1. order by `(tx_id, position)`, and
//! 2. return only events whose `tx_id` is below `pg_snapshot_xmin(pg_current_snapshot())`,
//!    the oldest transaction still running anywhere in the cluster.
//!
//! Every transaction below that horizon has finished, so no event can appear later below it;
//! every transaction that can still add events has a `tx_id` at or above the horizon, hence
//! above everything a reader has seen. Resuming after the last `(tx_id, position)` seen
//! therefore never skips an event ([`Position`] carries both as `commit` and `event`).
//! The price: a long-open transaction holds readers back (latency, never loss); appends are
//! single statements, so Eventline's own transactions stay short.

use std::str::FromStr;
use std::time::Duration;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use eventline_core::{
    AppendOutcome, Envelope, EventStore, Metadata, NewEvent, Position, StoreError, StreamInfo,
    StreamVersion, validate_append,
};
pub use eventline_group_commit::GroupCommitSettings;
use eventline_group_commit::{AppendRequest, BatchWriter, GroupCommit, shared_failure};
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};

const STORE: &str = "postgres";

/// An [`EventStore`] in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresEventStore {
    pool: PgPool,
    appender: Arc<Appender>,
    /// Gathers concurrent appends into batches; `None` when group commit is off.
    group: Option<GroupCommit>,
}

/// Writes batches of appends for [`GroupCommit`].
#[derive(Debug)]
struct Appender {
    pool: PgPool,
}

fn db_error(action: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Database {
        store: STORE,
        action,
        source: Box::new(source),
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The columns [`envelope_from_row`] reads, followed by the rest of a query.
macro_rules! select_events {
    ($rest:literal) => {
        concat!(
            // Aliased: an output column named `tx_id` would be what `ORDER BY tx_id` sorts
            // by (a bigint, which no index serves), not the table's column.
            "SELECT position, tx_id::text::bigint AS commit_id, stream_id, stream_type, version, event_type, ",
            "schema_version, payload, metadata, recorded_at FROM eventline_events ",
            $rest
        )
    };
}

/// The whole log in read order, from the start ($1: limit).
const READ_ALL_FROM_START: &str = select_events!(
    "WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
     ORDER BY tx_id, position LIMIT $1"
);

/// The whole log in read order, after a position ($1: commit, $2: event, $3: limit).
const READ_ALL_AFTER: &str = select_events!(
    "WHERE (tx_id, position) > (($1::bigint)::text::xid8, $2) \
       AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
     ORDER BY tx_id, position LIMIT $3"
);

fn envelope_from_row(row: &PgRow) -> Result<Envelope, StoreError> {
    let number = to_u64(row.get(0));
    let metadata: serde_json::Value = row.get(8);
    Ok(Envelope {
        position: Position {
            commit: to_u64(row.get(1)),
            event: number,
        },
        stream_id: row.get(2),
        stream_type: row.get(3),
        version: to_u64(row.get(4)),
        event_type: row.get(5),
        schema_version: u32::try_from(row.get::<i32, _>(6)).unwrap_or(0),
        payload: row.get(7),
        metadata: serde_json::from_value::<Metadata>(metadata).map_err(|e| {
            StoreError::Corrupt {
                position: number,
                reason: format!("metadata: {e}"),
            }
        })?,
        recorded_at: row.get::<DateTime<Utc>, _>(9),
    })
}

impl PostgresEventStore {
    /// Connects with a pool of up to `max_connections` and brings the schema up to date
    /// (migrations take an advisory lock, so many replicas may start at once).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(db_error("parsing the URL"))?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(db_error("connecting"))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|source| StoreError::Database {
                store: STORE,
                action: "migrating the schema",
                source: Box::new(source),
            })?;
        let appender = Arc::new(Appender { pool: pool.clone() });
        Ok(Self {
            pool,
            appender,
            group: None,
        }
        .with_group_commit(GroupCommitSettings::for_pool(max_connections)))
    }

    /// The same store with appends gathered as `settings` say (`max_appends` 1: each append
    /// is written alone, as soon as it arrives).
    #[must_use]
    pub fn with_group_commit(self, settings: GroupCommitSettings) -> Self {
        let group = settings.enabled().then(|| {
            let writer: Arc<dyn BatchWriter> = self.appender.clone();
            GroupCommit::start(STORE, writer, settings)
        });
        Self { group, ..self }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn current_version(pool: &PgPool, stream_id: &str) -> Result<StreamVersion, StoreError> {
    let version: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) FROM eventline_events WHERE stream_id = $1",
    )
    .bind(stream_id)
    .fetch_one(pool)
    .await
    .map_err(db_error("reading the stream version"))?;
    Ok(to_u64(version))
}

async fn conflict(
    pool: &PgPool,
    stream_id: &str,
    expected: StreamVersion,
) -> Result<AppendOutcome, StoreError> {
    Err(StoreError::Conflict {
        stream_id: stream_id.to_owned(),
        expected,
        actual: current_version(pool, stream_id).await?,
    })
}

fn metadata_json(stream_id: &str, event: &NewEvent) -> Result<String, StoreError> {
    serde_json::to_string(&event.metadata).map_err(|e| StoreError::InvalidInput {
        stream_id: stream_id.to_owned(),
        reason: format!("metadata does not serialise: {e}"),
    })
}

/// Writes an append of one event (the usual command) on its own: one plain statement, its
/// own commit, nothing inserted unless the stream is at the expected version.
async fn append_one_event(
    pool: &PgPool,
    request: &AppendRequest,
    event: &NewEvent,
) -> Result<AppendOutcome, StoreError> {
    let stream_id = request.stream_id.as_str();
    let inserted: Result<Option<(i64, i64)>, sqlx::Error> = sqlx::query_as(
        "INSERT INTO eventline_events \
           (stream_id, stream_type, version, event_type, schema_version, payload, metadata) \
         SELECT $1, $2, $3 + 1, $4, $5, $6::jsonb, $7::jsonb \
         WHERE $3 = 0 OR EXISTS \
               (SELECT 1 FROM eventline_events WHERE stream_id = $1 AND version = $3) \
         RETURNING position, tx_id::text::bigint",
    )
    .bind(stream_id)
    .bind(&request.stream_type)
    .bind(to_i64(request.expected))
    .bind(&event.event_type)
    .bind(i32::try_from(event.schema_version).unwrap_or(i32::MAX))
    .bind(event.payload.to_string())
    .bind(metadata_json(stream_id, event)?)
    .fetch_optional(pool)
    .await;
    match inserted {
        Ok(Some((position, commit))) => Ok(AppendOutcome {
            version: request.expected + 1,
            last_position: Position {
                commit: to_u64(commit),
                event: to_u64(position),
            },
        }),
        // Nothing inserted: the stream is not at `expected` (it is behind it).
        Ok(None) => conflict(pool, stream_id, request.expected).await,
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            conflict(pool, stream_id, request.expected).await
        }
        Err(e) => Err(db_error("appending events")(e)),
    }
}

#[async_trait]
impl BatchWriter for Appender {
    async fn write_batch(&self, batch: &[AppendRequest]) -> Vec<Result<AppendOutcome, StoreError>> {
        if let [one] = batch
            && let [event] = one.events.as_slice()
        {
            return vec![append_one_event(&self.pool, one, event).await];
        }
        match write_together(&self.pool, batch).await {
            Ok(stored) => {
                let mut outcomes = Vec::with_capacity(batch.len());
                for (request, stored) in batch.iter().zip(stored) {
                    outcomes.push(match stored {
                        Some(last_position) => Ok(AppendOutcome {
                            version: request.expected + request.events.len() as u64,
                            last_position,
                        }),
                        None => conflict(&self.pool, &request.stream_id, request.expected).await,
                    });
                }
                outcomes
            }
            Err(error) => shared_failure(error, batch.len())
                .into_iter()
                .map(Err)
                .collect(),
        }
    }
}

/// Writes appends (distinct streams) in one statement and one commit; for each append, the position
/// of its last event if it was stored, `None` if its stream is not at the expected version.
async fn write_together(
    pool: &PgPool,
    batch: &[AppendRequest],
) -> Result<Vec<Option<Position>>, StoreError> {
    let events: usize = batch.iter().map(|r| r.events.len()).sum();
    let mut append_index = Vec::with_capacity(events);
    let mut stream_ids = Vec::with_capacity(events);
    let mut stream_types = Vec::with_capacity(events);
    let mut expected = Vec::with_capacity(events);
    let mut versions = Vec::with_capacity(events);
    let mut types = Vec::with_capacity(events);
    let mut schema_versions = Vec::with_capacity(events);
    let mut payloads = Vec::with_capacity(events);
    let mut metadata = Vec::with_capacity(events);
    for (index, request) in (0_i32..).zip(batch) {
        for (offset, event) in (1_u64..).zip(&request.events) {
            append_index.push(index);
            stream_ids.push(request.stream_id.as_str());
            stream_types.push(request.stream_type.as_str());
            expected.push(to_i64(request.expected));
            versions.push(to_i64(request.expected + offset));
            types.push(event.event_type.as_str());
            schema_versions.push(i32::try_from(event.schema_version).unwrap_or(i32::MAX));
            payloads.push(event.payload.to_string());
            metadata.push(metadata_json(&request.stream_id, event)?);
        }
    }
    let rows: Vec<(i32, i64, i64)> = sqlx::query_as(
        "SELECT stored_append, stored_last_position, stored_commit \
         FROM eventline_append_batch($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&append_index)
    .bind(&stream_ids)
    .bind(&stream_types)
    .bind(&expected)
    .bind(&versions)
    .bind(&types)
    .bind(&schema_versions)
    .bind(&payloads)
    .bind(&metadata)
    .fetch_all(pool)
    .await
    .map_err(db_error("appending a batch of events"))?;
    let mut stored = vec![None; batch.len()];
    for (index, last_position, commit) in rows {
        if let Some(slot) = usize::try_from(index).ok().and_then(|i| stored.get_mut(i)) {
            *slot = Some(Position {
                commit: to_u64(commit),
                event: to_u64(last_position),
            });
        }
    }
    Ok(stored)
}

#[async_trait]
impl EventStore for PostgresEventStore {
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
        match &self.group {
            Some(group) => {
                group
                    .append(AppendRequest {
                        stream_id: stream_id.to_owned(),
                        stream_type: stream_type.to_owned(),
                        expected,
                        events,
                    })
                    .await
            }
            None => {
                let request = AppendRequest {
                    stream_id: stream_id.to_owned(),
                    stream_type: stream_type.to_owned(),
                    expected,
                    events,
                };
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
            "WHERE stream_id = $1 AND version > $2 ORDER BY version LIMIT $3"
        ))
        .bind(stream_id)
        .bind(to_i64(after_version))
        .bind(to_i64(limit as u64))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("reading a stream"))?;
        rows.iter().map(envelope_from_row).collect()
    }

    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        let rows = if after == Position::START {
            sqlx::query(READ_ALL_FROM_START)
                .bind(to_i64(limit as u64))
                .fetch_all(&self.pool)
                .await
        } else {
            sqlx::query(READ_ALL_AFTER)
                .bind(to_i64(after.commit))
                .bind(to_i64(after.event))
                .bind(to_i64(limit as u64))
                .fetch_all(&self.pool)
                .await
        }
        .map_err(db_error("reading all events"))?;
        rows.iter().map(envelope_from_row).collect()
    }

    async fn list_streams(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>, StoreError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT stream_id, MIN(stream_type), MAX(version) FROM eventline_events \
             WHERE stream_id > $1 GROUP BY stream_id ORDER BY stream_id LIMIT $2",
        )
        .bind(after.unwrap_or(""))
        .bind(to_i64(limit as u64))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("listing streams"))?;
        Ok(rows
            .into_iter()
            .map(|(stream_id, stream_type, version)| StreamInfo {
                stream_id,
                stream_type,
                version: to_u64(version),
            })
            .collect())
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        let head: Option<(i64, i64)> = sqlx::query_as(
            "SELECT tx_id::text::bigint AS commit_id, position FROM eventline_events \
             WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
             ORDER BY tx_id DESC, position DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("reading the head position"))?;
        Ok(head.map_or(Position::START, |(commit, event)| Position {
            commit: to_u64(commit),
            event: to_u64(event),
        }))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(db_error("pinging"))
    }
}

#[async_trait]
impl eventline_core::SnapshotStore for PostgresEventStore {
    async fn load_snapshot(
        &self,
        stream_id: &str,
    ) -> Result<Option<eventline_core::Snapshot>, StoreError> {
        let row: Option<(i64, i32, serde_json::Value)> = sqlx::query_as(
            "SELECT version, format, state FROM eventline_snapshots WHERE stream_id = $1",
        )
        .bind(stream_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("reading a snapshot"))?;
        Ok(row.and_then(|(version, format, state)| {
            Some(eventline_core::Snapshot {
                stream_id: stream_id.to_owned(),
                version: u64::try_from(version).ok()?,
                format: u32::try_from(format).ok()?,
                state,
            })
        }))
    }

    async fn save_snapshot(&self, snapshot: &eventline_core::Snapshot) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO eventline_snapshots (stream_id, version, format, state) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, \
             format = excluded.format, state = excluded.state, taken_at = excluded.taken_at \
             WHERE excluded.version > eventline_snapshots.version",
        )
        .bind(&snapshot.stream_id)
        .bind(to_i64(snapshot.version))
        .bind(i32::try_from(snapshot.format).unwrap_or(i32::MAX))
        .bind(&snapshot.state)
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(db_error("saving a snapshot"))
    }

    async fn delete_snapshots(&self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM eventline_snapshots")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(db_error("deleting snapshots"))
    }
}

#[cfg(test)]
mod tests {
    use eventline_store_contract::{append_request as request, versions};

    use super::*;

    /// One batch in which one append is stale, one lost the race for only its first event
    /// (its second would fit): each gets its own outcome, the stale ones store nothing (not
    /// even part), the others are stored in one commit.
    #[tokio::test]
    async fn a_batch_stores_each_fresh_append_and_nothing_of_a_stale_one() {
        let database = eventline_test_support::TestDatabase::postgres().await;
        let store = PostgresEventStore::connect(&database.url, 2)
            .await
            .expect("store")
            .with_group_commit(GroupCommitSettings::for_pool(2).with_max_appends(1));
        store
            .append("a", "test", 0, request("a", 0, 3).events)
            .await
            .expect("a");
        store
            .append("b", "test", 0, request("b", 0, 1).events)
            .await
            .expect("b");
        let outcomes = store
            .appender
            .write_batch(&[
                request("new", 0, 2),
                // "a" is at 3: expecting 2 and writing versions 3 and 4, version 3 is taken
                // but 4 is free; the append must not leave version 4 behind.
                request("a", 2, 2),
                request("b", 1, 1),
                request("b-stale", 5, 1),
            ])
            .await;
        assert_eq!(outcomes.len(), 4);
        let first = outcomes[0].as_ref().expect("new stored");
        assert_eq!(first.version, 2);
        assert!(matches!(
            outcomes[1],
            Err(StoreError::Conflict {
                expected: 2,
                actual: 3,
                ..
            })
        ));
        let third = outcomes[2].as_ref().expect("b stored");
        assert_eq!(third.version, 2);
        assert_eq!(
            first.last_position.commit, third.last_position.commit,
            "one commit"
        );
        assert!(matches!(
            outcomes[3],
            Err(StoreError::Conflict {
                expected: 5,
                actual: 0,
                ..
            })
        ));
        assert_eq!(versions(&store, "new").await, vec![1, 2]);
        assert_eq!(versions(&store, "a").await, vec![1, 2, 3]);
        assert_eq!(versions(&store, "b").await, vec![1, 2]);
        assert!(versions(&store, "b-stale").await.is_empty());
    }

    /// Two batches in flight for the same streams in opposite orders: each append is stored
    /// once or refused as a conflict, never a deadlock that fails a whole batch.
    #[tokio::test]
    async fn batches_racing_for_the_same_streams_never_deadlock() {
        let database = eventline_test_support::TestDatabase::postgres().await;
        let store = PostgresEventStore::connect(&database.url, 4)
            .await
            .expect("store");
        for round in 0..40 {
            let names: Vec<String> = (0..6).map(|n| format!("r{round}-s{n}")).collect();
            let forward: Vec<AppendRequest> = names.iter().map(|s| request(s, 0, 2)).collect();
            let backward: Vec<AppendRequest> = forward.iter().rev().cloned().collect();
            let (a, b) = tokio::join!(
                store.appender.write_batch(&forward),
                store.appender.write_batch(&backward)
            );
            for outcome in a.iter().chain(&b) {
                assert!(
                    matches!(outcome, Ok(_) | Err(StoreError::Conflict { .. })),
                    "round {round}: {outcome:?}"
                );
            }
            let stored = a.iter().chain(&b).filter(|o| o.is_ok()).count();
            assert_eq!(stored, names.len(), "round {round}: each stream once");
        }
    }

    /// Concurrent appends share commits: far fewer transactions than appends.
    #[tokio::test]
    async fn concurrent_appends_share_commits() {
        let database = eventline_test_support::TestDatabase::postgres().await;
        let store = PostgresEventStore::connect(&database.url, 4)
            .await
            .expect("store");
        let appends = 200;
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..appends {
            let store = store.clone();
            tasks.spawn(async move {
                let stream = format!("s-{n}");
                store
                    .append(&stream, "test", 0, request(&stream, 0, 1).events)
                    .await
            });
        }
        let mut commits = std::collections::HashSet::new();
        while let Some(done) = tasks.join_next().await {
            commits.insert(done.expect("task").expect("append").last_position.commit);
        }
        let (stored,): (i64,) = sqlx::query_as("SELECT count(*) FROM eventline_events")
            .fetch_one(&store.pool)
            .await
            .expect("count");
        assert_eq!(stored, appends);
        assert!(
            commits.len() < 100,
            "{} commits for {appends} concurrent appends",
            commits.len()
        );
    }

    /// Readers of the whole log must walk the `(tx_id, position)` index: a plan that sorts
    /// scans and sorts the rest of the log for every batch (it once did, because an output
    /// column named `tx_id` made `ORDER BY tx_id` mean a cast of it).
    #[tokio::test]
    async fn whole_log_reads_walk_the_index_without_sorting() {
        let database = eventline_test_support::TestDatabase::postgres().await;
        let store = PostgresEventStore::connect(&database.url, 1)
            .await
            .expect("store");
        let mut conn = store.pool.acquire().await.expect("connection");
        // An empty table: without these the planner may prefer scanning and sorting anyway.
        sqlx::raw_sql("SET enable_seqscan = off; SET enable_bitmapscan = off")
            .execute(&mut *conn)
            .await
            .expect("set");
        for (sql, args) in [
            (READ_ALL_FROM_START, "(1000)"),
            (READ_ALL_AFTER, "(1, 1, 1000)"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PREPARE q AS {sql}")))
                .execute(&mut *conn)
                .await
                .expect("prepare");
            let plan: Vec<(String,)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN EXECUTE q {args}")))
                    .fetch_all(&mut *conn)
                    .await
                    .expect("explain");
            let plan: Vec<String> = plan.into_iter().map(|(line,)| line).collect();
            assert!(
                plan.iter()
                    .any(|l| l.contains("eventline_events_read_order")),
                "{plan:#?}"
            );
            assert!(!plan.iter().any(|l| l.contains("Sort")), "{plan:#?}");
            sqlx::query("DEALLOCATE q")
                .execute(&mut *conn)
                .await
                .expect("deallocate");
        }
    }
}
