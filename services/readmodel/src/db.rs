use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use eventline_core::{
    Column, ColumnType, Envelope, Position, Projection, ProjectionError, RowOp, Table, Value,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Sqlite, SqliteConnection};

use crate::dialect::Dialect;
use crate::error::ReadModelError;

/// Where the projector's progress is kept, in the read model's own database.
const CHECKPOINTS: &str = "eventline_checkpoints";
/// Events a projection could not apply, kept with the reason.
const DEAD_LETTERS: &str = "eventline_dead_letters";

fn checkpoints_table() -> Table {
    Table {
        name: CHECKPOINTS,
        columns: vec![
            Column::new("projection", ColumnType::Text),
            Column::new("commit_position", ColumnType::BigInt),
            Column::new("event_position", ColumnType::BigInt),
            Column::new("updated_at", ColumnType::Timestamp),
        ],
        primary_key: &["projection"],
        indexes: vec![],
    }
}

fn dead_letters_table() -> Table {
    Table {
        name: DEAD_LETTERS,
        columns: vec![
            Column::new("projection", ColumnType::Text),
            Column::new("event_position", ColumnType::BigInt),
            Column::new("commit_position", ColumnType::BigInt),
            Column::new("stream_id", ColumnType::Text),
            Column::new("version", ColumnType::BigInt),
            Column::new("event_type", ColumnType::Text),
            Column::new("payload", ColumnType::Text),
            Column::new("error", ColumnType::Text),
            Column::new("failed_at", ColumnType::Timestamp),
        ],
        primary_key: &["projection", "event_position"],
        indexes: vec![],
    }
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
}

/// A connection pool to one read-model database, with the dialect to speak to it.
#[derive(Debug, Clone)]
pub struct ReadModelDb {
    pool: Pool,
    dialect: Dialect,
}

/// The tables of one projection in one database, as created by [`ReadModelDb::ensure_schema`].
#[derive(Debug, Clone)]
pub struct Schema {
    projection: &'static str,
    tables: HashMap<&'static str, Table>,
}

/// One event handed to [`ReadModelDb::apply_batch`] with what the projection made of it.
#[derive(Debug)]
pub struct ProjectedEvent<'a> {
    pub event: &'a Envelope,
    /// The row changes, or why the projection could not apply the event (it is dead-lettered).
    pub ops: Result<Vec<RowOp>, ProjectionError>,
}

/// What one committed batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchOutcome {
    /// Events applied (including events that changed no row).
    pub applied: usize,
    /// Events skipped because the checkpoint was already past them (redelivery).
    pub skipped: usize,
    /// Events written to the dead-letter table instead.
    pub dead_lettered: usize,
    /// The checkpoint after the batch.
    pub checkpoint: Position,
}

pub(crate) fn timestamp_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, <Sqlite as sqlx::Database>::Arguments>;

fn bind_sqlite<'q>(query: SqliteQuery<'q>, value: &'q Value) -> SqliteQuery<'q> {
    match value {
        Value::Null => query.bind(None::<i64>),
        Value::Int(v) => query.bind(*v),
        Value::Text(v) => query.bind(v.as_str()),
        Value::Timestamp(t) => query.bind(timestamp_text(t)),
    }
}

fn key_text(key: &[(&str, Value)]) -> String {
    key.iter()
        .map(|(c, v)| format!("{c}={v:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ReadModelDb {
    /// Connects by URL; the scheme picks the database (`sqlite://PATH` now).
    pub async fn connect(url: &str) -> Result<Self, ReadModelError> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => {
                let options = SqliteConnectOptions::from_str(url).map_err(|source| {
                    ReadModelError::Database {
                        database: "sqlite",
                        action: "parsing the URL".into(),
                        source,
                    }
                })?;
                Self::open_sqlite_with(options).await
            }
            other => Err(ReadModelError::UnsupportedUrl {
                scheme: other.to_owned(),
            }),
        }
    }

    /// Opens (creating if needed) a SQLite read model at `path`.
    pub async fn open_sqlite(path: impl AsRef<Path>) -> Result<Self, ReadModelError> {
        Self::open_sqlite_with(SqliteConnectOptions::new().filename(path)).await
    }

    async fn open_sqlite_with(options: SqliteConnectOptions) -> Result<Self, ReadModelError> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // The checkpoint lives in the same file and transaction, so a lost tail after a
            // power cut loses both together and is simply projected again.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|source| ReadModelError::Database {
                database: "sqlite",
                action: "connecting".into(),
                source,
            })?;
        Ok(Self {
            pool: Pool::Sqlite(pool),
            dialect: Dialect::Sqlite,
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    fn err(&self, action: impl Into<String>) -> impl FnOnce(sqlx::Error) -> ReadModelError {
        let database = self.dialect.name();
        let action = action.into();
        move |source| ReadModelError::Database {
            database,
            action,
            source,
        }
    }

    /// Checks that the database answers; used by `/readyz`.
    pub async fn ping(&self) -> Result<(), ReadModelError> {
        match &self.pool {
            Pool::Sqlite(pool) => sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map(drop)
                .map_err(self.err("pinging")),
        }
    }

    /// Closes the pool, waiting for connections in use.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
        }
    }

    /// Creates the projection's tables (and Eventline's checkpoint and dead-letter tables) if
    /// they do not exist, after checking every name is a plain identifier.
    pub async fn ensure_schema(
        &self,
        projection: &dyn Projection,
    ) -> Result<Schema, ReadModelError> {
        let mut tables = HashMap::new();
        for table in projection
            .tables()
            .into_iter()
            .chain([checkpoints_table(), dead_letters_table()])
        {
            check_table(&table)?;
            for statement in self.dialect.create_table(&table) {
                self.execute(statement, &format!("creating table {}", table.name))
                    .await?;
            }
            tables.insert(table.name, table);
        }
        Ok(Schema {
            projection: projection.name(),
            tables,
        })
    }

    async fn execute(&self, sql: String, action: &str) -> Result<(), ReadModelError> {
        match &self.pool {
            Pool::Sqlite(pool) => sqlx::query(AssertSqlSafe(sql))
                .execute(pool)
                .await
                .map(drop)
                .map_err(self.err(action)),
        }
    }

    /// The last position this projection has applied ([`Position::START`] when none).
    pub async fn checkpoint(&self, projection: &str) -> Result<Position, ReadModelError> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                let mut conn = pool
                    .acquire()
                    .await
                    .map_err(self.err("reading the checkpoint"))?;
                sqlite_checkpoint(&mut conn, projection)
                    .await
                    .map_err(self.err("reading the checkpoint"))
            }
        }
    }

    /// How many events of this projection are in the dead-letter table.
    pub async fn dead_letter_count(&self, projection: &str) -> Result<u64, ReadModelError> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                let count: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM eventline_dead_letters WHERE projection = ?",
                )
                .bind(projection)
                .fetch_one(pool)
                .await
                .map_err(self.err("counting dead letters"))?;
                Ok(u64::try_from(count).unwrap_or(0))
            }
        }
    }

    /// Applies a batch of projected events and moves the checkpoint past the last one, in one
    /// transaction: either all of it is visible afterwards or none of it.
    ///
    /// Events at or below the stored checkpoint are skipped, so a redelivered batch changes
    /// nothing. Events the projection rejected, and events whose row changes the database
    /// rejects, go to the dead-letter table in the same transaction; the batch goes on. Errors
    /// that are not about the data (the database is unreachable) abort the whole batch, which
    /// the caller retries.
    pub async fn apply_batch(
        &self,
        schema: &Schema,
        batch: &[ProjectedEvent<'_>],
    ) -> Result<BatchOutcome, ReadModelError> {
        match self.apply_batch_once(schema, batch, false).await {
            Err(error) if error.is_data_error() => {
                tracing::warn!(projection = schema.projection, %error,
                    "batch rejected by the database; applying it event by event");
                self.apply_batch_once(schema, batch, true).await
            }
            other => other,
        }
    }

    async fn apply_batch_once(
        &self,
        schema: &Schema,
        batch: &[ProjectedEvent<'_>],
        isolate_events: bool,
    ) -> Result<BatchOutcome, ReadModelError> {
        let Pool::Sqlite(pool) = &self.pool;
        let mut tx = pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(self.err("beginning a batch"))?;
        let checkpoint = sqlite_checkpoint(&mut tx, schema.projection)
            .await
            .map_err(self.err("reading the checkpoint"))?;
        let mut outcome = BatchOutcome {
            checkpoint,
            ..BatchOutcome::default()
        };
        for projected in batch {
            let event = projected.event;
            if event.position <= outcome.checkpoint {
                outcome.skipped += 1;
                continue;
            }
            outcome.checkpoint = event.position;
            let ops = match &projected.ops {
                Ok(ops) => ops,
                Err(rejected) => {
                    self.dead_letter(&mut tx, schema, event, &rejected.to_string())
                        .await?;
                    outcome.dead_lettered += 1;
                    continue;
                }
            };
            if !isolate_events {
                self.apply_ops(&mut tx, schema, ops).await?;
                outcome.applied += 1;
                continue;
            }
            self.run(
                &mut tx,
                "SAVEPOINT eventline_event".into(),
                "setting a savepoint",
            )
            .await?;
            match self.apply_ops(&mut tx, schema, ops).await {
                Ok(()) => outcome.applied += 1,
                Err(error) if error.is_data_error() => {
                    self.run(
                        &mut tx,
                        "ROLLBACK TO SAVEPOINT eventline_event".into(),
                        "rolling back",
                    )
                    .await?;
                    tracing::warn!(projection = schema.projection, position = %event.position,
                        %error, "event dead-lettered");
                    self.dead_letter(&mut tx, schema, event, &error.to_string())
                        .await?;
                    outcome.dead_lettered += 1;
                }
                Err(error) => return Err(error),
            }
            self.run(
                &mut tx,
                "RELEASE SAVEPOINT eventline_event".into(),
                "releasing a savepoint",
            )
            .await?;
        }
        if outcome.checkpoint != checkpoint {
            let row = vec![
                ("projection", Value::from(schema.projection)),
                ("commit_position", Value::from(outcome.checkpoint.commit)),
                ("event_position", Value::from(outcome.checkpoint.event)),
                ("updated_at", Value::Timestamp(Utc::now())),
            ];
            self.upsert(&mut tx, schema, CHECKPOINTS, &row).await?;
        }
        tx.commit().await.map_err(self.err("committing a batch"))?;
        Ok(outcome)
    }

    async fn run(
        &self,
        conn: &mut SqliteConnection,
        sql: String,
        action: &str,
    ) -> Result<(), ReadModelError> {
        sqlx::query(AssertSqlSafe(sql))
            .execute(conn)
            .await
            .map(drop)
            .map_err(self.err(action))
    }

    async fn dead_letter(
        &self,
        conn: &mut SqliteConnection,
        schema: &Schema,
        event: &Envelope,
        error: &str,
    ) -> Result<(), ReadModelError> {
        metrics::counter!("eventline_projector_dead_letters_total", "projection" => schema.projection)
            .increment(1);
        let row = vec![
            ("projection", Value::from(schema.projection)),
            ("event_position", Value::from(event.position.event)),
            ("commit_position", Value::from(event.position.commit)),
            ("stream_id", Value::from(event.stream_id.as_str())),
            ("version", Value::from(event.version)),
            ("event_type", Value::from(event.event_type.as_str())),
            ("payload", Value::Text(event.payload.to_string())),
            ("error", Value::from(error)),
            ("failed_at", Value::Timestamp(Utc::now())),
        ];
        self.upsert(conn, schema, DEAD_LETTERS, &row).await
    }

    async fn apply_ops(
        &self,
        conn: &mut SqliteConnection,
        schema: &Schema,
        ops: &[RowOp],
    ) -> Result<(), ReadModelError> {
        for op in ops {
            match op {
                RowOp::Upsert { table, row } => self.upsert(conn, schema, table, row).await?,
                RowOp::Update { table, key, set } => {
                    let table = schema.table(table)?;
                    let set_columns = table.columns_of(set)?;
                    let key_columns = table.columns_of(key)?;
                    let sql = self.dialect.update(table.name, &set_columns, &key_columns);
                    let mut query = sqlx::query(AssertSqlSafe(sql));
                    for (_, value) in set.iter().chain(key) {
                        query = bind_sqlite(query, value);
                    }
                    let done = query
                        .execute(&mut *conn)
                        .await
                        .map_err(self.err(format!("updating {}", table.name)))?;
                    if done.rows_affected() != 1 {
                        return Err(ReadModelError::MissingRow {
                            table: table.name.to_owned(),
                            key: key_text(key),
                        });
                    }
                }
                RowOp::Delete { table, key } => {
                    let table = schema.table(table)?;
                    let key_columns = table.columns_of(key)?;
                    let sql = self.dialect.delete(table.name, &key_columns);
                    let mut query = sqlx::query(AssertSqlSafe(sql));
                    for (_, value) in key {
                        query = bind_sqlite(query, value);
                    }
                    query
                        .execute(&mut *conn)
                        .await
                        .map_err(self.err(format!("deleting from {}", table.name)))?;
                }
            }
        }
        Ok(())
    }

    async fn upsert(
        &self,
        conn: &mut SqliteConnection,
        schema: &Schema,
        table: &str,
        row: &[(&'static str, Value)],
    ) -> Result<(), ReadModelError> {
        let table = schema.table(table)?;
        let columns = table.columns_of(row)?;
        let sql = self.dialect.upsert(table, &columns);
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (_, value) in row {
            query = bind_sqlite(query, value);
        }
        query
            .execute(conn)
            .await
            .map(drop)
            .map_err(self.err(format!("upserting into {}", table.name)))
    }

    pub(crate) fn sqlite_pool(&self) -> &SqlitePool {
        let Pool::Sqlite(pool) = &self.pool;
        pool
    }
}

async fn sqlite_checkpoint(
    conn: &mut SqliteConnection,
    projection: &str,
) -> Result<Position, sqlx::Error> {
    let position: Option<(i64, i64)> = sqlx::query_as(
        "SELECT commit_position, event_position FROM eventline_checkpoints WHERE projection = ?",
    )
    .bind(projection)
    .fetch_optional(conn)
    .await?;
    Ok(
        position.map_or(Position::START, |(commit, event)| Position {
            commit: u64::try_from(commit).unwrap_or(0),
            event: u64::try_from(event).unwrap_or(0),
        }),
    )
}

fn check_table(table: &Table) -> Result<(), ReadModelError> {
    let bad = |reason: String| {
        Err(ReadModelError::Schema {
            table: table.name.to_owned(),
            reason,
        })
    };
    let names = std::iter::once(table.name)
        .chain(table.columns.iter().map(|c| c.name))
        .chain(table.indexes.iter().map(|i| i.name));
    for name in names {
        if !Dialect::check_identifier(name) {
            return bad(format!("{name:?} is not a plain lowercase identifier"));
        }
    }
    let columns = table
        .primary_key
        .iter()
        .chain(table.indexes.iter().flat_map(|i| i.columns.iter()));
    for column in columns {
        if table.column(column).is_none() {
            return bad(format!("key or index column {column:?} is not declared"));
        }
    }
    if table.primary_key.is_empty() {
        return bad("no primary key".into());
    }
    Ok(())
}

impl Schema {
    fn table(&self, name: &str) -> Result<&Table, ReadModelError> {
        self.tables.get(name).ok_or_else(|| ReadModelError::Schema {
            table: name.to_owned(),
            reason: format!("projection {} did not declare it", self.projection),
        })
    }

    /// The projection this schema belongs to.
    pub fn projection(&self) -> &'static str {
        self.projection
    }
}

trait TableExt {
    fn columns_of(
        &self,
        values: &[(&'static str, Value)],
    ) -> Result<Vec<&'static str>, ReadModelError>;
}

impl TableExt for Table {
    /// The column names of `values`, each checked to be declared (names reach SQL text).
    fn columns_of(
        &self,
        values: &[(&'static str, Value)],
    ) -> Result<Vec<&'static str>, ReadModelError> {
        values
            .iter()
            .map(|(name, _)| match self.column(name) {
                Some(column) => Ok(column.name),
                None => Err(ReadModelError::Schema {
                    table: self.name.to_owned(),
                    reason: format!("no column {name:?}"),
                }),
            })
            .collect()
    }
}
