use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use eventline_core::{
    Column, ColumnType, Envelope, Position, Projection, ProjectionError, RowOp, Table, Value,
};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool};
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Executor, IntoArguments};

use crate::backend::{Args, Backend};
use crate::dialect::{Dialect, RowLock};
use crate::error::ReadModelError;
use crate::migrate;
use crate::plan::{Added, Columns, Pending, WritePlan};

/// Bind parameters per multi-row statement (PostgreSQL allows 65,535, SQLite 32,766).
const BINDS_PER_STATEMENT: usize = 30_000;
/// Rows per multi-row statement at most.
const ROWS_PER_STATEMENT: usize = 4_096;

/// Where the projector's progress is kept, in the read model's own database.
pub(crate) const CHECKPOINTS: &str = "eventline_checkpoints";
/// Events a projection could not apply, kept with the reason.
pub(crate) const DEAD_LETTERS: &str = "eventline_dead_letters";
/// The last version of each stream a projection has applied: how redelivered events are
/// recognised whatever order streams arrive in (Kafka partitions are not globally ordered).
pub(crate) const STREAM_VERSIONS: &str = "eventline_stream_versions";
/// The next offset of each Kafka partition a projection consumes, written with the batch.
const KAFKA_OFFSETS: &str = "eventline_kafka_offsets";
/// Stream-version rows written per statement.
const VERSION_ROWS_PER_STATEMENT: usize = 4_096;

pub(crate) fn checkpoints_table() -> Table {
    Table {
        name: CHECKPOINTS,
        columns: vec![
            Column::new("projection", ColumnType::Text),
            Column::new("commit_position", ColumnType::BigInt),
            Column::new("event_position", ColumnType::BigInt),
            Column::new("updated_at", ColumnType::Timestamp),
            // Set while a cut-over that cannot be one transaction (MySQL's DDL commits)
            // swaps the projection's tables: batches wait until it is clear again.
            Column::nullable("cut_over_by", ColumnType::Text),
        ],
        primary_key: &["projection"],
        indexes: vec![],
    }
}

/// Which replay built (or is building) each projection's live tables.
pub(crate) const REPLAYS: &str = "eventline_replays";
/// Where each table's declaration is recorded.
pub(crate) const DEFINITIONS: &str = "eventline_table_definitions";

/// Which replay built (or is building) a projection's tables in this database.
fn replays_table() -> Table {
    Table {
        name: REPLAYS,
        columns: vec![
            Column::new("projection", ColumnType::Text),
            Column::new("request_id", ColumnType::Text),
            Column::new("status", ColumnType::Text),
            Column::new("started_at", ColumnType::Timestamp),
            Column::nullable("finished_at", ColumnType::Timestamp),
        ],
        primary_key: &["projection"],
        indexes: vec![],
    }
}

/// Where each table's declaration is recorded, for migrations (see [`crate::migrate`]).
pub(crate) fn definitions_table() -> Table {
    Table {
        name: DEFINITIONS,
        columns: vec![
            Column::new("table_name", ColumnType::Text),
            Column::new("projection", ColumnType::Text),
            Column::new("definition", ColumnType::Text),
            Column::new("updated_at", ColumnType::Timestamp),
        ],
        primary_key: &["table_name"],
        indexes: vec![],
    }
}

pub(crate) fn stream_versions_table() -> Table {
    Table {
        name: STREAM_VERSIONS,
        columns: vec![
            Column::new("projection", ColumnType::Text),
            Column::new("stream_id", ColumnType::Text),
            Column::new("version", ColumnType::BigInt),
        ],
        primary_key: &["projection", "stream_id"],
        indexes: vec![],
    }
}

fn kafka_offsets_table() -> Table {
    Table {
        name: KAFKA_OFFSETS,
        columns: vec![
            Column::new("projection", ColumnType::Text),
            Column::new("topic", ColumnType::Text),
            Column::new("kafka_partition", ColumnType::BigInt),
            Column::new("next_offset", ColumnType::BigInt),
            Column::new("updated_at", ColumnType::Timestamp),
        ],
        primary_key: &["projection", "topic", "kafka_partition"],
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
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// Runs `$body` with `$pool` bound to whichever pool this database has: the body is generic
/// code, written once for every backend.
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match &$db.pool {
            $crate::db::Pool::Sqlite($pool) => $body,
            $crate::db::Pool::Postgres($pool) => $body,
            $crate::db::Pool::MySql($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// A connection pool to one read-model database; its kind decides the dialect spoken.
#[derive(Debug, Clone)]
pub struct ReadModelDb {
    pub(crate) pool: Pool,
}

/// The tables of one projection in one database, as created by [`ReadModelDb::ensure_schema`].
#[derive(Debug, Clone)]
pub struct Schema {
    /// The key of this version's bookkeeping rows (checkpoint, stream versions...).
    pub(crate) projection: &'static str,
    /// Streams of these types get their applied version recorded.
    pub(crate) stream_types: &'static [&'static str],
    /// Declared name -> the table it is written to.
    pub(crate) tables: HashMap<&'static str, Table>,
    /// The declared names of the projection's own tables, in declaration order.
    pub(crate) own_tables: Vec<&'static str>,
    /// Whether batches record the applied version of each stream (see
    /// [`Schema::without_stream_versions`]).
    pub(crate) records_versions: bool,
}

/// Where a batch comes from, which decides how events already applied are recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSource<'a> {
    /// The event store, read in global position order: events at or below the projection's
    /// checkpoint are skipped, and the checkpoint moves to the batch's last event.
    Store,
    /// One partition of a Kafka topic. Partitions are not ordered with each other and the
    /// relay may publish an event twice, so an event is skipped when its stream's applied
    /// version is already at or past it. `next_offset` (the offset after the batch's last
    /// message) is recorded with the batch; the partition's row is locked for the
    /// transaction, so two consumers of one partition apply its batches one after the other.
    Partition {
        topic: &'a str,
        partition: i32,
        next_offset: i64,
    },
}

/// What [`ReadModelDb::claim_replay`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayClaim {
    /// The replay starts, or continues after this position (after an interruption).
    Resumed(Position),
    /// The same replay was interrupted in the middle of a cut-over (MySQL only): finish it
    /// with [`ReadModelDb::finish_interrupted_cut_over`].
    CuttingOver,
    /// The same replay has already finished.
    Finished,
}

/// A projection's recorded progress on one Kafka partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOffset {
    pub topic: String,
    pub partition: i32,
    pub next_offset: i64,
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
    /// Events skipped because they had been applied already (redelivery).
    pub skipped: usize,
    /// Events written to the dead-letter table instead.
    pub dead_lettered: usize,
    /// The checkpoint after the batch.
    pub checkpoint: Position,
}

pub(crate) fn timestamp_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn key_text(key: &[(&str, Value)]) -> String {
    key.iter()
        .map(|(c, v)| format!("{c}={v:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn database_error(
    dialect: Dialect,
    action: impl Into<String>,
) -> impl FnOnce(sqlx::Error) -> ReadModelError {
    let action = action.into();
    move |source| ReadModelError::Database {
        database: dialect.name(),
        action,
        source,
    }
}

impl ReadModelDb {
    /// Connects by URL; the scheme picks the database: `sqlite://PATH`,
    /// `postgres://USER:PASSWORD@HOST/DB`, `mysql://USER:PASSWORD@HOST/DB` (MySQL or MariaDB).
    pub async fn connect(url: &str) -> Result<Self, ReadModelError> {
        Self::connect_with_pool_size(url, 8).await
    }

    /// [`ReadModelDb::connect`] with a pool of up to `pool_size` connections.
    pub async fn connect_with_pool_size(url: &str, pool_size: u32) -> Result<Self, ReadModelError> {
        let scheme = url.split(':').next().unwrap_or_default();
        let parse = |dialect: Dialect| database_error(dialect, "parsing the URL");
        match scheme {
            "sqlite" => {
                let options =
                    SqliteConnectOptions::from_str(url).map_err(parse(Dialect::Sqlite))?;
                Self::open_sqlite_with(options).await
            }
            "postgres" | "postgresql" => {
                let options = PgConnectOptions::from_str(url).map_err(parse(Dialect::Postgres))?;
                Ok(Self {
                    pool: Pool::Postgres(server_pool(options, pool_size).await?),
                })
            }
            "mysql" | "mariadb" => {
                let url = url.replacen("mariadb:", "mysql:", 1);
                let options = MySqlConnectOptions::from_str(&url).map_err(parse(Dialect::MySql))?;
                // Timestamps are exchanged in UTC whatever the server's time zone.
                let options = options.timezone(Some("+00:00".to_owned()));
                Ok(Self {
                    pool: Pool::MySql(server_pool(options, pool_size).await?),
                })
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
            .map_err(database_error(Dialect::Sqlite, "connecting"))?;
        Ok(Self {
            pool: Pool::Sqlite(pool),
        })
    }

    pub fn dialect(&self) -> Dialect {
        match self.pool {
            Pool::Sqlite(_) => Dialect::Sqlite,
            Pool::Postgres(_) => Dialect::Postgres,
            Pool::MySql(_) => Dialect::MySql,
        }
    }

    /// Checks that the database answers; used by `/readyz`.
    pub async fn ping(&self) -> Result<(), ReadModelError> {
        with_pool!(self, pool => execute_on(pool, "SELECT 1".to_owned(), &[], "pinging").await)
            .map(drop)
    }

    /// Closes the pool, waiting for connections in use.
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await);
    }

    /// Creates the projection's tables (and Eventline's checkpoint and dead-letter tables) if
    /// they do not exist, after checking every name is a plain identifier, and makes sure the
    /// projection has a checkpoint row (so batches can lock it).
    pub async fn ensure_schema(
        &self,
        projection: &dyn Projection,
    ) -> Result<Schema, ReadModelError> {
        let definitions = definitions_table();
        self.create_table(&definitions).await?;
        let mut tables = HashMap::new();
        let own_tables = projection.tables().iter().map(|t| t.name).collect();
        for table in projection.tables().into_iter().chain([
            checkpoints_table(),
            dead_letters_table(),
            stream_versions_table(),
            kafka_offsets_table(),
            replays_table(),
        ]) {
            check_table(&table)?;
            self.migrate_table(projection.name(), &table).await?;
            tables.insert(table.name, table);
        }
        let schema = Schema {
            projection: projection.name(),
            stream_types: projection.stream_types(),
            tables,
            own_tables,
            records_versions: true,
        };
        self.initialise_checkpoint(&schema).await?;
        Ok(schema)
    }

    /// Makes sure `schema`'s projection has a checkpoint row (so batches can lock it).
    pub(crate) async fn initialise_checkpoint(
        &self,
        schema: &Schema,
    ) -> Result<(), ReadModelError> {
        let checkpoints = schema.table(CHECKPOINTS)?;
        let row = start_checkpoint(schema.projection);
        with_pool!(self, pool => initialise_row(pool, checkpoints, &row).await)
    }

    /// Creates `table` and its indexes if they do not exist.
    pub(crate) async fn create_table(&self, table: &Table) -> Result<(), ReadModelError> {
        for statement in self.dialect().create_table(table) {
            let action = format!("creating table {}", table.name);
            self.execute_retrying(statement, &action).await?;
        }
        Ok(())
    }

    /// Runs a DDL statement; two processes preparing the same schema at once can make
    /// PostgreSQL's `IF NOT EXISTS` fail on its catalog, and the second try sees the table.
    pub(crate) async fn execute_retrying(
        &self,
        statement: String,
        action: &str,
    ) -> Result<(), ReadModelError> {
        let mut attempt = 1;
        loop {
            let done =
                with_pool!(self, pool => execute_on(pool, statement.clone(), &[], action).await)
                    .map(drop);
            match done {
                Err(error) if error.is_data_error() && attempt < 5 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }

    /// The definition recorded for `table` when Eventline created or last migrated it.
    async fn recorded_definition(&self, table: &str) -> Result<Option<String>, ReadModelError> {
        let definitions = definitions_table();
        let rows = self
            .select(&crate::query::Select {
                table: &definitions,
                filters: vec![("table_name", Value::from(table))],
                order_by: &["table_name"],
                after: None,
                descending: false,
                limit: 1,
            })
            .await?;
        Ok(rows
            .first()
            .and_then(|row| row["definition"].as_str().map(str::to_owned)))
    }

    /// Creates `table`, or brings it from its recorded definition to the declared one when
    /// the change is additive (see [`crate::migrate`]); refuses any other change.
    async fn migrate_table(&self, projection: &str, table: &Table) -> Result<(), ReadModelError> {
        let declared = migrate::definition(table);
        let record = |definition: &str| {
            vec![
                ("table_name", Value::from(table.name)),
                ("projection", Value::from(projection)),
                ("definition", Value::from(definition)),
                ("updated_at", Value::Timestamp(Utc::now())),
            ]
        };
        let definitions = definitions_table();
        let Some(recorded) = self.recorded_definition(table.name).await? else {
            self.create_table(table).await?;
            let row = record(&declared);
            return with_pool!(self, pool => initialise_row(pool, &definitions, &row).await);
        };
        if recorded == declared {
            return Ok(());
        }
        let migration =
            migrate::plan(&recorded, table).map_err(|reason| ReadModelError::Schema {
                table: table.name.to_owned(),
                reason,
            })?;
        let dialect = self.dialect();
        let statements = migration
            .add_columns
            .iter()
            .map(|column| dialect.add_column(table, column))
            .chain(
                migration
                    .add_indexes
                    .iter()
                    .map(|index| dialect.create_index(table, index)),
            );
        for statement in statements {
            let action = format!("migrating table {}", table.name);
            if let Err(error) =
                with_pool!(self, pool => execute_on(pool, statement, &[], &action).await)
            {
                // Another process may have migrated it a moment ago.
                tokio::time::sleep(Duration::from_millis(200)).await;
                if self.recorded_definition(table.name).await?.as_deref() == Some(declared.as_str())
                {
                    return Ok(());
                }
                return Err(error);
            }
        }
        tracing::info!(table = table.name, projection, from = %recorded, to = %declared,
            "read-model table migrated");
        let row = record(&declared);
        with_pool!(self, pool => upsert_row(pool, &definitions, &row).await)
    }

    /// The last position this projection has applied ([`Position::START`] when none).
    pub async fn checkpoint(&self, projection: &str) -> Result<Position, ReadModelError> {
        with_pool!(self, pool => read_checkpoint(pool, projection).await)
    }

    /// How many events of this projection are in the dead-letter table.
    pub async fn dead_letter_count(&self, projection: &str) -> Result<u64, ReadModelError> {
        let table = dead_letters_table();
        let rows = self
            .select(&crate::query::Select {
                table: &table,
                filters: vec![("projection", Value::from(projection))],
                order_by: &["projection", "event_position"],
                after: None,
                descending: false,
                limit: u32::MAX,
            })
            .await?;
        Ok(rows.len() as u64)
    }

    /// Claims `live`'s projection in this database for the replay `request_id`, which builds
    /// the new version `version` (see [`ReadModelDb::ensure_version_schema`]). One replay
    /// at a time: a replay that has not finished keeps the projection until it does (after
    /// a crash, the same request resumes from its checkpoint); a finished one makes way
    /// for the next request.
    pub async fn claim_replay(
        &self,
        live: &Schema,
        version: &Schema,
        request_id: &str,
    ) -> Result<ReplayClaim, ReadModelError> {
        let projection = live.projection;
        let table = live.table(REPLAYS)?;
        let claimed = self
            .get(table, vec![("projection", Value::from(projection))])
            .await?;
        if let Some(row) = claimed {
            let owner = row["request_id"].as_str().unwrap_or_default();
            let status = row["status"].as_str().unwrap_or_default();
            return match (owner == request_id, status) {
                (true, "finished") => Ok(ReplayClaim::Finished),
                (true, "cutting_over") => Ok(ReplayClaim::CuttingOver),
                (true, _) => Ok(ReplayClaim::Resumed(
                    self.checkpoint(version.projection).await?,
                )),
                (false, "finished") => {
                    // The next replay takes over, unless another one just did.
                    let sql = self.dialect().update(
                        REPLAYS,
                        &["request_id", "status", "started_at"],
                        &["projection", "request_id", "status"],
                    );
                    let binds = [
                        Value::from(request_id),
                        Value::from("running"),
                        Value::Timestamp(Utc::now()),
                        Value::from(projection),
                        Value::from(owner),
                        Value::from("finished"),
                    ];
                    with_pool!(self, pool => execute_on(pool, sql, &binds.iter().collect::<Vec<_>>(), "claiming the replay").await)?;
                    Box::pin(self.claim_replay(live, version, request_id)).await
                }
                (false, _) => Err(ReadModelError::Occupied {
                    projection: projection.to_owned(),
                    by: format!("replay {owner:?} ({status})"),
                }),
            };
        }
        let row = vec![
            ("projection", Value::from(projection)),
            ("request_id", Value::from(request_id)),
            ("status", Value::from("running")),
            ("started_at", Value::Timestamp(Utc::now())),
        ];
        with_pool!(self, pool => initialise_row(pool, table, &row).await)?;
        // Two replays racing for the same projection: the row says who won.
        Box::pin(self.claim_replay(live, version, request_id)).await
    }

    /// Records the applied version of each of `versions`' streams for `schema`'s projection,
    /// in one transaction.
    pub async fn record_stream_versions(
        &self,
        schema: &Schema,
        versions: &HashMap<String, u64>,
    ) -> Result<(), ReadModelError> {
        let mut changed: Vec<&str> = versions.keys().map(String::as_str).collect();
        changed.sort_unstable();
        let by_id: HashMap<&str, u64> = versions.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        with_pool!(self, pool => record_versions_on(pool, schema, &changed, &by_id).await)
    }

    /// The Kafka partitions this projection has consumed, with the next offset of each.
    pub async fn partition_offsets(
        &self,
        projection: &str,
    ) -> Result<Vec<PartitionOffset>, ReadModelError> {
        let table = kafka_offsets_table();
        let rows = self
            .select(&crate::query::Select {
                table: &table,
                filters: vec![("projection", Value::from(projection))],
                order_by: &["projection", "topic", "kafka_partition"],
                after: None,
                descending: false,
                limit: u32::MAX,
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| PartitionOffset {
                topic: row["topic"].as_str().unwrap_or_default().to_owned(),
                partition: row["kafka_partition"]
                    .as_i64()
                    .and_then(|p| i32::try_from(p).ok())
                    .unwrap_or_default(),
                next_offset: row["next_offset"].as_i64().unwrap_or_default(),
            })
            .collect())
    }

    /// Applies a batch of events read from the store and moves the checkpoint past the last
    /// one, in one transaction: either all of it is visible afterwards or none of it.
    /// See [`ReadModelDb::apply`].
    pub async fn apply_batch(
        &self,
        schema: &Schema,
        batch: &[ProjectedEvent<'_>],
    ) -> Result<BatchOutcome, ReadModelError> {
        self.apply(schema, BatchSource::Store, batch).await
    }

    /// Applies a batch of projected events and records the progress it makes, in one
    /// transaction: either all of it is visible afterwards or none of it.
    ///
    /// A progress row is locked for the transaction (the projection's checkpoint, or the
    /// Kafka partition's offset), and events already applied are skipped (see
    /// [`BatchSource`]), so a redelivered batch, or a second projector instance racing this
    /// one, changes nothing. Events the projection rejected, and events whose row changes
    /// the database rejects, go to the dead-letter table in the same transaction; the batch
    /// goes on. Errors that are not about the data (the database is unreachable) abort the
    /// whole batch, which the caller retries.
    pub async fn apply(
        &self,
        schema: &Schema,
        source: BatchSource<'_>,
        batch: &[ProjectedEvent<'_>],
    ) -> Result<BatchOutcome, ReadModelError> {
        self.apply_with(schema, source, batch, false).await
    }

    /// [`ReadModelDb::apply_batch`] for replays: an event that cannot be applied (the
    /// projection rejects it, or the database refuses its row changes) stops the batch with
    /// [`ReadModelError::EventRejected`] naming it, and nothing of the batch is written.
    pub async fn apply_strict(
        &self,
        schema: &Schema,
        batch: &[ProjectedEvent<'_>],
    ) -> Result<BatchOutcome, ReadModelError> {
        self.apply_with(schema, BatchSource::Store, batch, true)
            .await
    }

    async fn apply_with(
        &self,
        schema: &Schema,
        source: BatchSource<'_>,
        batch: &[ProjectedEvent<'_>],
        strict: bool,
    ) -> Result<BatchOutcome, ReadModelError> {
        let first = with_pool!(self, pool => apply_batch_on(pool, schema, source, batch, false, strict).await);
        match first {
            Err(error) if error.is_data_error() => {
                if !strict {
                    tracing::warn!(projection = schema.projection, %error,
                        "batch rejected by the database; applying it event by event");
                }
                with_pool!(self, pool => apply_batch_on(pool, schema, source, batch, true, strict).await)
            }
            other => other,
        }
    }
}

/// A pool to a database server (PostgreSQL, MySQL), bounded and with an acquire timeout.
async fn server_pool<DB: Backend>(
    options: <DB::Connection as sqlx::Connection>::Options,
    pool_size: u32,
) -> Result<sqlx::Pool<DB>, ReadModelError> {
    sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(pool_size)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(database_error(DB::DIALECT, "connecting"))
}

fn start_checkpoint(projection: &'static str) -> Vec<(&'static str, Value)> {
    vec![
        ("projection", Value::from(projection)),
        ("commit_position", Value::Int(0)),
        ("event_position", Value::Int(0)),
        ("updated_at", Value::Timestamp(Utc::now())),
    ]
}

/// Runs `sql` with `binds` on a connection of its own; returns the rows it affected.
pub(crate) async fn execute_on<DB: Backend>(
    pool: &sqlx::Pool<DB>,
    sql: String,
    binds: &[&Value],
    action: &str,
) -> Result<u64, ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let mut conn = pool
        .acquire()
        .await
        .map_err(database_error(DB::DIALECT, action))?;
    execute_in::<DB>(&mut conn, sql, binds, action).await
}

/// Runs `sql` with `binds` on `conn`; returns the rows it affected.
pub(crate) async fn execute_in<DB: Backend>(
    conn: &mut DB::Connection,
    sql: String,
    binds: &[&Value],
    action: &str,
) -> Result<u64, ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for value in binds {
        query = DB::bind(query, value);
    }
    query
        .execute(&mut *conn)
        .await
        .map(|result| DB::rows_affected(&result))
        .map_err(database_error(DB::DIALECT, action))
}

/// Inserts `row` or overwrites the row with its primary key, on a connection of its own.
async fn upsert_row<DB: Backend>(
    pool: &sqlx::Pool<DB>,
    table: &Table,
    row: &[(&'static str, Value)],
) -> Result<(), ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let mut conn = pool.acquire().await.map_err(database_error(
        DB::DIALECT,
        format!("writing {}", table.name),
    ))?;
    write_row::<DB>(&mut conn, table, row, true).await
}

/// Inserts `row` unless a row with its primary key exists, on a connection of its own.
async fn initialise_row<DB: Backend>(
    pool: &sqlx::Pool<DB>,
    table: &Table,
    row: &[(&'static str, Value)],
) -> Result<(), ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let mut conn = pool.acquire().await.map_err(database_error(
        DB::DIALECT,
        format!("initialising {}", table.name),
    ))?;
    insert_if_absent::<DB>(&mut conn, table, row).await
}

/// Inserts `row` unless a row with its primary key exists.
async fn insert_if_absent<DB: Backend>(
    conn: &mut DB::Connection,
    table: &Table,
    row: &[(&'static str, Value)],
) -> Result<(), ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    write_row::<DB>(conn, table, row, false).await
}

/// Inserts `row`; when its primary key exists, overwrites that row if `overwrite`, else
/// leaves it.
async fn write_row<DB: Backend>(
    conn: &mut DB::Connection,
    table: &Table,
    row: &[(&'static str, Value)],
    overwrite: bool,
) -> Result<(), ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let action = format!("writing {}", table.name);
    let columns = columns_of(table, row)?;
    let sql = if overwrite {
        DB::DIALECT.upsert(table, &columns)
    } else {
        DB::DIALECT.insert_if_absent(table, &columns)
    };
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for (_, value) in row {
        query = DB::bind(query, value);
    }
    query
        .execute(&mut *conn)
        .await
        .map(drop)
        .map_err(database_error(DB::DIALECT, action))
}

async fn read_checkpoint<DB: Backend>(
    pool: &sqlx::Pool<DB>,
    projection: &str,
) -> Result<Position, ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let mut conn = pool
        .acquire()
        .await
        .map_err(database_error(DB::DIALECT, "reading the checkpoint"))?;
    Ok(checkpoint_in::<DB>(&mut conn, projection, RowLock::None)
        .await?
        .position)
}

/// A projection's checkpoint row.
pub(crate) struct CheckpointRow {
    pub(crate) position: Position,
    /// The replay whose cut-over is swapping the projection's tables right now.
    pub(crate) cut_over_by: Option<String>,
}

/// Reads the checkpoint on `conn`, locking its row as `lock` says (see
/// [`Dialect::checkpoint_select`]).
pub(crate) async fn checkpoint_in<DB: Backend>(
    conn: &mut DB::Connection,
    projection: &str,
    lock: RowLock,
) -> Result<CheckpointRow, ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let dialect = DB::DIALECT;
    let key = Value::from(projection);
    let row = DB::bind(
        sqlx::query(AssertSqlSafe(dialect.checkpoint_select(lock))),
        &key,
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(database_error(dialect, "reading the checkpoint"))?;
    let Some(row) = row else {
        return Ok(CheckpointRow {
            position: Position::START,
            cut_over_by: None,
        });
    };
    let number = |index| {
        DB::decode(&row, index, ColumnType::BigInt)
            .map(|v| v.as_u64().unwrap_or(0))
            .map_err(database_error(dialect, "reading the checkpoint"))
    };
    let cut_over_by = DB::decode(&row, 2, ColumnType::Text)
        .map_err(database_error(dialect, "reading the checkpoint"))?
        .as_str()
        .map(str::to_owned);
    Ok(CheckpointRow {
        position: Position {
            commit: number(0)?,
            event: number(1)?,
        },
        cut_over_by,
    })
}

async fn apply_batch_on<DB: Backend>(
    pool: &sqlx::Pool<DB>,
    schema: &Schema,
    source: BatchSource<'_>,
    batch: &[ProjectedEvent<'_>],
    isolate_events: bool,
    strict: bool,
) -> Result<BatchOutcome, ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let dialect = DB::DIALECT;
    let mut tx = pool
        .begin_with(DB::BEGIN)
        .await
        .map_err(database_error(dialect, "beginning a batch"))?;
    let outcome = apply_in::<DB>(&mut tx, schema, source, batch, isolate_events, strict).await?;
    tx.commit()
        .await
        .map_err(database_error(dialect, "committing a batch"))?;
    Ok(outcome)
}

/// Applies a batch inside the caller's transaction `conn` (see [`ReadModelDb::apply`]).
pub(crate) async fn apply_in<DB: Backend>(
    conn: &mut DB::Connection,
    schema: &Schema,
    source: BatchSource<'_>,
    batch: &[ProjectedEvent<'_>],
    isolate_events: bool,
    strict: bool,
) -> Result<BatchOutcome, ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let from_store = source == BatchSource::Store;
    let lock = if from_store {
        RowLock::Exclusive
    } else {
        RowLock::Shared
    };
    let CheckpointRow {
        position: checkpoint,
        cut_over_by,
    } = checkpoint_in::<DB>(conn, schema.projection, lock).await?;
    if let Some(request_id) = cut_over_by {
        return Err(ReadModelError::CuttingOver {
            projection: schema.projection.to_owned(),
            request_id,
        });
    }
    let stored_offset = match source {
        BatchSource::Store => None,
        BatchSource::Partition {
            topic, partition, ..
        } => Some(lock_partition::<DB>(conn, schema, topic, partition).await?),
    };
    let tracked: Vec<&str> = batch
        .iter()
        .filter(|p| schema.tracks(&p.event.stream_type))
        .map(|p| p.event.stream_id.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut versions = stream_versions::<DB>(conn, schema.projection, &tracked).await?;
    let mut changed: Vec<&str> = Vec::new();
    let mut plan = WritePlan::default();
    let mut outcome = BatchOutcome {
        checkpoint,
        ..BatchOutcome::default()
    };
    for projected in batch {
        let event = projected.event;
        if from_store {
            if event.position <= outcome.checkpoint {
                outcome.skipped += 1;
                continue;
            }
            outcome.checkpoint = event.position;
        }
        if schema.tracks(&event.stream_type) {
            let last = versions.get(event.stream_id.as_str()).copied().unwrap_or(0);
            if event.version <= last {
                outcome.skipped += 1;
                continue;
            }
            if event.version > last + 1 {
                metrics::counter!("eventline_projector_version_gaps_total",
                    "projection" => schema.projection)
                .increment(1);
                tracing::warn!(projection = schema.projection, stream = %event.stream_id,
                    applied = last, arrived = event.version,
                    "events of a stream arrived with a gap; applying the later one");
            }
            versions.insert(event.stream_id.as_str(), event.version);
            changed.push(event.stream_id.as_str());
        }
        let ops = match &projected.ops {
            Ok(ops) => ops,
            Err(rejected) if strict => return Err(rejected_event(event, rejected)),
            Err(rejected) => {
                dead_letter::<DB>(conn, schema, event, &rejected.to_string()).await?;
                outcome.dead_lettered += 1;
                continue;
            }
        };
        if !isolate_events {
            for op in ops {
                let table = schema.table(op.table())?;
                if plan.add(table, op)? == Added::FlushFirst {
                    flush::<DB>(conn, schema, &mut plan).await?;
                    plan.add(table, op)?;
                }
            }
            outcome.applied += 1;
            continue;
        }
        run::<DB>(conn, "SAVEPOINT eventline_event", "setting a savepoint").await?;
        match apply_ops::<DB>(conn, schema, ops).await {
            Ok(()) => outcome.applied += 1,
            Err(error) if error.is_data_error() && strict => {
                return Err(rejected_event(event, error));
            }
            Err(error) if error.is_data_error() => {
                run::<DB>(
                    conn,
                    "ROLLBACK TO SAVEPOINT eventline_event",
                    "rolling back",
                )
                .await?;
                tracing::warn!(projection = schema.projection, position = %event.position,
                    %error, "event dead-lettered");
                dead_letter::<DB>(conn, schema, event, &error.to_string()).await?;
                outcome.dead_lettered += 1;
            }
            Err(error) => return Err(error),
        }
        run::<DB>(
            conn,
            "RELEASE SAVEPOINT eventline_event",
            "releasing a savepoint",
        )
        .await?;
    }
    flush::<DB>(conn, schema, &mut plan).await?;
    changed.sort_unstable();
    changed.dedup();
    record_stream_versions::<DB>(conn, schema, &changed, &versions).await?;
    if outcome.checkpoint != checkpoint {
        let row = vec![
            ("projection", Value::from(schema.projection)),
            ("commit_position", Value::from(outcome.checkpoint.commit)),
            ("event_position", Value::from(outcome.checkpoint.event)),
            ("updated_at", Value::Timestamp(Utc::now())),
        ];
        upsert::<DB>(conn, schema, CHECKPOINTS, &row).await?;
    }
    if let (
        BatchSource::Partition {
            topic,
            partition,
            next_offset,
        },
        Some(stored),
    ) = (source, stored_offset)
    {
        let row = vec![
            ("projection", Value::from(schema.projection)),
            ("topic", Value::from(topic)),
            ("kafka_partition", Value::Int(i64::from(partition))),
            ("next_offset", Value::Int(next_offset.max(stored))),
            ("updated_at", Value::Timestamp(Utc::now())),
        ];
        upsert::<DB>(conn, schema, KAFKA_OFFSETS, &row).await?;
    }
    Ok(outcome)
}

fn rejected_event(event: &Envelope, reason: impl std::fmt::Display) -> ReadModelError {
    ReadModelError::EventRejected {
        position: event.position,
        stream_id: event.stream_id.clone(),
        version: event.version,
        event_type: event.event_type.clone(),
        reason: reason.to_string(),
    }
}

/// Locks the partition's offset row (creating it first if needed); returns the next offset
/// recorded there.
async fn lock_partition<DB: Backend>(
    conn: &mut DB::Connection,
    schema: &Schema,
    topic: &str,
    partition: i32,
) -> Result<i64, ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let dialect = DB::DIALECT;
    let row = vec![
        ("projection", Value::from(schema.projection)),
        ("topic", Value::from(topic)),
        ("kafka_partition", Value::Int(i64::from(partition))),
        ("next_offset", Value::Int(0)),
        ("updated_at", Value::Timestamp(Utc::now())),
    ];
    insert_if_absent::<DB>(conn, schema.table(KAFKA_OFFSETS)?, &row).await?;
    let mut query = sqlx::query(AssertSqlSafe(dialect.partition_offset_for_update()));
    for (_, value) in &row[..3] {
        query = DB::bind(query, value);
    }
    let locked = query
        .fetch_one(&mut *conn)
        .await
        .map_err(database_error(dialect, "locking the partition offset"))?;
    let next = DB::decode(&locked, 0, ColumnType::BigInt)
        .map_err(database_error(dialect, "reading the partition offset"))?;
    Ok(next.as_i64().unwrap_or(0))
}

/// The applied version of each of `streams` that has one.
async fn stream_versions<'s, DB: Backend>(
    conn: &mut DB::Connection,
    projection: &str,
    streams: &[&'s str],
) -> Result<HashMap<&'s str, u64>, ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let dialect = DB::DIALECT;
    let mut versions = HashMap::with_capacity(streams.len());
    let projection = Value::from(projection);
    for chunk in statement_chunks(streams, VERSION_ROWS_PER_STATEMENT) {
        let ids: Vec<Value> = chunk.iter().map(|id| Value::from(*id)).collect();
        let sql = dialect.select_stream_versions(chunk.len());
        let mut query = DB::bind(sqlx::query(AssertSqlSafe(sql)), &projection);
        for id in &ids {
            query = DB::bind(query, id);
        }
        let rows = query
            .fetch_all(&mut *conn)
            .await
            .map_err(database_error(dialect, "reading stream versions"))?;
        for row in rows {
            let decode = |index, ty| {
                DB::decode(&row, index, ty)
                    .map_err(database_error(dialect, "reading stream versions"))
            };
            let id = decode(0, ColumnType::Text)?;
            let version = decode(1, ColumnType::BigInt)?.as_u64().unwrap_or(0);
            if let Some(stream) = chunk.iter().find(|s| Some(**s) == id.as_str()) {
                versions.insert(*stream, version);
            }
        }
    }
    Ok(versions)
}

/// Records the applied version of each stream in `changed`, many rows per statement.
async fn record_versions_on<DB: Backend>(
    pool: &sqlx::Pool<DB>,
    schema: &Schema,
    changed: &[&str],
    versions: &HashMap<&str, u64>,
) -> Result<(), ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let action = "recording stream versions";
    let mut tx = pool
        .begin_with(DB::BEGIN)
        .await
        .map_err(database_error(DB::DIALECT, action))?;
    record_stream_versions::<DB>(&mut tx, schema, changed, versions).await?;
    tx.commit()
        .await
        .map_err(database_error(DB::DIALECT, action))
}

async fn record_stream_versions<DB: Backend>(
    conn: &mut DB::Connection,
    schema: &Schema,
    changed: &[&str],
    versions: &HashMap<&str, u64>,
) -> Result<(), ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let dialect = DB::DIALECT;
    let table = schema.table(STREAM_VERSIONS)?;
    let projection = Value::from(schema.projection);
    if changed.is_empty() {
        return Ok(());
    }
    let conn_any: &mut dyn std::any::Any = &mut *conn;
    if let Some(pg) = conn_any.downcast_mut::<sqlx::PgConnection>() {
        let rows: Vec<Columns> = changed
            .iter()
            .map(|id| {
                vec![
                    ("projection", projection.clone()),
                    ("stream_id", Value::from(*id)),
                    ("version", Value::from(versions[id])),
                ]
            })
            .collect();
        return upsert_arrays(pg, table, &["projection", "stream_id", "version"], &rows).await;
    }
    for chunk in statement_chunks(changed, VERSION_ROWS_PER_STATEMENT) {
        let values: Vec<(Value, Value)> = chunk
            .iter()
            .map(|id| (Value::from(*id), Value::from(versions[id])))
            .collect();
        let sql = dialect.upsert_rows(table, &["projection", "stream_id", "version"], chunk.len());
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (id, version) in &values {
            query = DB::bind(query, &projection);
            query = DB::bind(query, id);
            query = DB::bind(query, version);
        }
        query
            .execute(&mut *conn)
            .await
            .map_err(database_error(dialect, "recording stream versions"))?;
    }
    Ok(())
}

/// Splits `items` into chunks whose lengths are powers of two of at most `max`: multi-row
/// statements then come in a few shapes only, which the connection prepares once and reuses
/// (a statement for every possible row count would be planned anew nearly every time).
fn statement_chunks<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let largest = if max.is_power_of_two() {
        max
    } else {
        (max.next_power_of_two() / 2).max(1)
    };
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = if rest.len() >= largest {
            largest
        } else {
            1 << rest.len().ilog2()
        };
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// Writes what `plan` holds: per table, deletes, then upserts and updates many rows per
/// statement, grouped by the columns they write. An update that finds no row fails with
/// [`ReadModelError::MissingRow`] (the batch is then applied event by event).
async fn flush<DB: Backend>(
    conn: &mut DB::Connection,
    schema: &Schema,
    plan: &mut WritePlan,
) -> Result<(), ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    if plan.is_empty() {
        return Ok(());
    }
    let dialect = DB::DIALECT;
    for (table_name, writes) in plan.take() {
        let table = schema.table(table_name)?;
        let mut upserts: Vec<(Vec<&'static str>, Vec<Columns>)> = Vec::new();
        let mut updates: Vec<(Vec<&'static str>, Vec<&'static str>, Vec<_>)> = Vec::new();
        for write in writes {
            match write {
                Pending::Delete(key) => {
                    let op = RowOp::Delete {
                        table: table.name,
                        key,
                    };
                    apply_ops::<DB>(conn, schema, std::slice::from_ref(&op)).await?;
                }
                Pending::Upsert(row) => {
                    let columns: Vec<&'static str> = row.iter().map(|(c, _)| *c).collect();
                    match upserts.iter_mut().find(|(c, _)| *c == columns) {
                        Some((_, rows)) => rows.push(row),
                        None => upserts.push((columns, vec![row])),
                    }
                }
                Pending::Update { key, set } => {
                    // PostgreSQL updates many rows at once (typed arrays carry NULLs too).
                    let batched = dialect == Dialect::Postgres;
                    if !batched {
                        let op = RowOp::Update {
                            table: table.name,
                            key,
                            set,
                        };
                        apply_ops::<DB>(conn, schema, std::slice::from_ref(&op)).await?;
                        continue;
                    }
                    let key_columns: Vec<&'static str> = key.iter().map(|(c, _)| *c).collect();
                    let set_columns: Vec<&'static str> = set.iter().map(|(c, _)| *c).collect();
                    match updates
                        .iter_mut()
                        .find(|(k, s, _)| *k == key_columns && *s == set_columns)
                    {
                        Some((_, _, rows)) => rows.push((key, set)),
                        None => updates.push((key_columns, set_columns, vec![(key, set)])),
                    }
                }
            }
        }
        for (columns, rows) in &upserts {
            columns_of(table, &rows[0])?;
            // PostgreSQL takes the rows as one array per column.
            let conn_any: &mut dyn std::any::Any = &mut *conn;
            if let Some(pg) = conn_any.downcast_mut::<sqlx::PgConnection>() {
                upsert_arrays(pg, table, columns, rows).await?;
                continue;
            }
            let per_statement = (BINDS_PER_STATEMENT / columns.len()).clamp(1, ROWS_PER_STATEMENT);
            for chunk in statement_chunks(rows, per_statement) {
                let sql = dialect.upsert_rows(table, columns, chunk.len());
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for (_, value) in chunk.iter().flatten() {
                    query = DB::bind(query, value);
                }
                query.execute(&mut *conn).await.map_err(database_error(
                    dialect,
                    format!("upserting into {}", table.name),
                ))?;
            }
        }
        for (key_columns, set_columns, rows) in &updates {
            columns_of(table, &rows[0].0)?;
            columns_of(table, &rows[0].1)?;
            let conn_any: &mut dyn std::any::Any = &mut *conn;
            if let Some(pg) = conn_any.downcast_mut::<sqlx::PgConnection>() {
                update_arrays(pg, table, key_columns, set_columns, rows).await?;
                continue;
            }
            // Only PostgreSQL batches updates; any other database takes them one by one.
            for (key, set) in rows {
                let op = RowOp::Update {
                    table: table.name,
                    key: key.clone(),
                    set: set.clone(),
                };
                apply_ops::<DB>(conn, schema, std::slice::from_ref(&op)).await?;
            }
        }
    }
    Ok(())
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds `values` as one PostgreSQL array of `column`'s declared type. A value of another
/// type is a schema error (a data error: the batch then goes event by event).
fn bind_array<'q>(
    query: PgQuery<'q>,
    table: &Table,
    column: &str,
    values: &[&Value],
) -> Result<PgQuery<'q>, ReadModelError> {
    let ty = table.column(column).map_or(ColumnType::Text, |c| c.ty);
    let wrong = |value: &Value| ReadModelError::Schema {
        table: table.name.to_owned(),
        reason: format!("column {column:?} ({ty:?}) cannot hold {value:?}"),
    };
    Ok(match ty {
        ColumnType::BigInt => query.bind(
            values
                .iter()
                .map(|v| match v {
                    Value::Null => Ok(None),
                    Value::Int(i) => Ok(Some(*i)),
                    other => Err(wrong(other)),
                })
                .collect::<Result<Vec<Option<i64>>, _>>()?,
        ),
        ColumnType::Text => query.bind(
            values
                .iter()
                .map(|v| match v {
                    Value::Null => Ok(None),
                    Value::Text(t) => Ok(Some(t.clone())),
                    other => Err(wrong(other)),
                })
                .collect::<Result<Vec<Option<String>>, _>>()?,
        ),
        ColumnType::Timestamp => query.bind(
            values
                .iter()
                .map(|v| match v {
                    Value::Null => Ok(None),
                    Value::Timestamp(t) => Ok(Some(*t)),
                    other => Err(wrong(other)),
                })
                .collect::<Result<Vec<Option<DateTime<Utc>>>, _>>()?,
        ),
    })
}

/// PostgreSQL: upserts `rows` (each with exactly `columns`, in that order) in one statement,
/// one array per column.
async fn upsert_arrays(
    conn: &mut sqlx::PgConnection,
    table: &Table,
    columns: &[&'static str],
    rows: &[Columns],
) -> Result<(), ReadModelError> {
    let mut query = sqlx::query(AssertSqlSafe(
        Dialect::Postgres.upsert_arrays(table, columns),
    ));
    for (index, name) in columns.iter().enumerate() {
        let cells: Vec<&Value> = rows.iter().map(|row| &row[index].1).collect();
        query = bind_array(query, table, name, &cells)?;
    }
    query
        .execute(&mut *conn)
        .await
        .map(drop)
        .map_err(database_error(
            Dialect::Postgres,
            format!("upserting into {}", table.name),
        ))
}

/// PostgreSQL: sets `set` columns of every row found by its `key` columns, in one statement,
/// one array per column; fails with [`ReadModelError::MissingRow`] unless every row exists.
async fn update_arrays(
    conn: &mut sqlx::PgConnection,
    table: &Table,
    key_columns: &[&'static str],
    set_columns: &[&'static str],
    rows: &[(Columns, Columns)],
) -> Result<(), ReadModelError> {
    let sql = Dialect::Postgres.update_arrays(table, set_columns, key_columns);
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for (index, name) in key_columns.iter().enumerate() {
        let cells: Vec<&Value> = rows.iter().map(|(key, _)| &key[index].1).collect();
        query = bind_array(query, table, name, &cells)?;
    }
    for (index, name) in set_columns.iter().enumerate() {
        let cells: Vec<&Value> = rows.iter().map(|(_, set)| &set[index].1).collect();
        query = bind_array(query, table, name, &cells)?;
    }
    let done = query.execute(&mut *conn).await.map_err(database_error(
        Dialect::Postgres,
        format!("updating {}", table.name),
    ))?;
    if done.rows_affected() != rows.len() as u64 {
        return Err(ReadModelError::MissingRow {
            table: table.name.to_owned(),
            key: format!("one of {} keys updated together", rows.len()),
        });
    }
    Ok(())
}

async fn run<DB: Backend>(
    conn: &mut DB::Connection,
    sql: &'static str,
    action: &str,
) -> Result<(), ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    sqlx::query(sql)
        .execute(conn)
        .await
        .map(drop)
        .map_err(database_error(DB::DIALECT, action))
}

async fn dead_letter<DB: Backend>(
    conn: &mut DB::Connection,
    schema: &Schema,
    event: &Envelope,
    error: &str,
) -> Result<(), ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
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
    upsert::<DB>(conn, schema, DEAD_LETTERS, &row).await
}

async fn apply_ops<DB: Backend>(
    conn: &mut DB::Connection,
    schema: &Schema,
    ops: &[RowOp],
) -> Result<(), ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let dialect = DB::DIALECT;
    for op in ops {
        match op {
            RowOp::Upsert { table, row } => upsert::<DB>(conn, schema, table, row).await?,
            RowOp::Update { table, key, set } => {
                let table = schema.table(table)?;
                let set_columns = columns_of(table, set)?;
                let key_columns = columns_of(table, key)?;
                let sql = dialect.update(table.name, &set_columns, &key_columns);
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for (_, value) in set.iter().chain(key) {
                    query = DB::bind(query, value);
                }
                let done = query
                    .execute(&mut *conn)
                    .await
                    .map_err(database_error(dialect, format!("updating {}", table.name)))?;
                if DB::rows_affected(&done) != 1 {
                    return Err(ReadModelError::MissingRow {
                        table: table.name.to_owned(),
                        key: key_text(key),
                    });
                }
            }
            RowOp::Delete { table, key } => {
                let table = schema.table(table)?;
                let key_columns = columns_of(table, key)?;
                let sql = dialect.delete(table.name, &key_columns);
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for (_, value) in key {
                    query = DB::bind(query, value);
                }
                query.execute(&mut *conn).await.map_err(database_error(
                    dialect,
                    format!("deleting from {}", table.name),
                ))?;
            }
        }
    }
    Ok(())
}

async fn upsert<DB: Backend>(
    conn: &mut DB::Connection,
    schema: &Schema,
    table: &str,
    row: &[(&'static str, Value)],
) -> Result<(), ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let table = schema.table(table)?;
    let columns = columns_of(table, row)?;
    let sql = DB::DIALECT.upsert(table, &columns);
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for (_, value) in row {
        query = DB::bind(query, value);
    }
    query.execute(conn).await.map(drop).map_err(database_error(
        DB::DIALECT,
        format!("upserting into {}", table.name),
    ))
}

pub(crate) fn check_table(table: &Table) -> Result<(), ReadModelError> {
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
    /// The table declared as `name`, or the one written as `name` (in a new version of the
    /// read model, table names carry the version's suffix).
    pub(crate) fn table(&self, name: &str) -> Result<&Table, ReadModelError> {
        self.tables
            .get(name)
            .or_else(|| self.tables.values().find(|t| t.name == name))
            .ok_or_else(|| ReadModelError::Schema {
                table: name.to_owned(),
                reason: format!("projection {} did not declare it", self.projection),
            })
    }

    /// The projection this schema belongs to.
    pub fn projection(&self) -> &'static str {
        self.projection
    }

    /// Whether events of `stream_type` get their stream's applied version recorded.
    fn tracks(&self, stream_type: &str) -> bool {
        self.records_versions && self.stream_types.contains(&stream_type)
    }

    /// The same tables, written without recording stream versions: for a replay's bulk load,
    /// which reads the store in order (the checkpoint alone says what was applied) and
    /// records the versions once at the end ([`ReadModelDb::record_stream_versions`]).
    pub fn without_stream_versions(&self) -> Schema {
        Schema {
            records_versions: false,
            ..self.clone()
        }
    }

    /// Whether events of `stream_type` have their streams' versions kept by this projection.
    pub fn keeps_versions_of(&self, stream_type: &str) -> bool {
        self.stream_types.contains(&stream_type)
    }
}

/// The column names of `values`, each checked to be declared (names reach SQL text).
fn columns_of(
    table: &Table,
    values: &[(&'static str, Value)],
) -> Result<Vec<&'static str>, ReadModelError> {
    values
        .iter()
        .map(|(name, _)| match table.column(name) {
            Some(column) => Ok(column.name),
            None => Err(ReadModelError::Schema {
                table: table.name.to_owned(),
                reason: format!("no column {name:?}"),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::statement_chunks;

    #[test]
    fn statements_come_in_power_of_two_sizes() {
        let items: Vec<u32> = (0..1_234).collect();
        let sizes: Vec<usize> = statement_chunks(&items, 512).map(<[u32]>::len).collect();
        assert_eq!(sizes, [512, 512, 128, 64, 16, 2]);
        let sizes: Vec<usize> = statement_chunks(&items[..7], 3).map(<[u32]>::len).collect();
        assert_eq!(sizes, [2, 2, 2, 1]);
        assert_eq!(statement_chunks::<u32>(&[], 8).count(), 0);
    }
}
