//! Blue/green read models: a replay builds a new version of a projection's tables beside the
//! live ones, then swaps them in one atomic step.
//!
//! The new version's tables are the live names with the replay's *generation* appended
//! (`accounts__r1f2e3d4c`, a hash of the request id, so the same request finds its tables
//! again after a crash); its checkpoint, stream versions and dead letters are kept under the
//! bookkeeping key `PROJECTION__GENERATION`. Secondary indexes are built after the load.
//!
//! The cut-over ([`CutOver`]) first takes the live checkpoint row exclusively. Every live
//! batch locks that row too (a store batch exclusively, a Kafka partition's batch shared),
//! so the cut-over waits for the batches in flight and holds off the next ones. Under the
//! lock the replay applies the events stored since its last batch (everything a live batch
//! can have applied was in the store before), then the tables and the bookkeeping are
//! swapped: the live version becomes `TABLE__previous` under the key
//! `PROJECTION__previous` (kept until the next cut-over), the new version takes the live
//! names and key. The live projector then continues on the new version: events it
//! receives that the replay already applied are recognised by the stream versions, the
//! rest are applied. Nothing is missed or applied twice.
//!
//! PostgreSQL and SQLite rename tables inside the transaction: queries see the old version
//! or the new one. MySQL commits before any DDL, so there the bookkeeping is swapped and the
//! checkpoint row marked (`cut_over_by`) in the locked transaction, then one atomic
//! `RENAME TABLE` swaps every table, then the mark is cleared. Batches that find the mark
//! stop with [`ReadModelError::CuttingOver`] and are retried, so none writes the old tables
//! with the new bookkeeping; a replay interrupted between the two steps finishes the swap
//! when it is started again ([`ReadModelDb::finish_interrupted_cut_over`]).

use chrono::Utc;
use eventline_core::{Index, Position, Projection, Table, Value};
use sqlx::{Executor, IntoArguments, MySql, Postgres, Sqlite, Transaction};

use crate::backend::{Args, Backend};
use crate::db::{
    BatchOutcome, BatchSource, CHECKPOINTS, CheckpointRow, DEAD_LETTERS, DEFINITIONS,
    ProjectedEvent, REPLAYS, STREAM_VERSIONS, Schema, apply_in, check_table, checkpoint_in,
};
use crate::dialect::{Dialect, RowLock};
use crate::error::ReadModelError;
use crate::migrate;
use crate::pool::{Pool, ReadModelDb, database_error, execute_in, execute_on, with_pool};

/// The suffix of the version that the live one becomes at a cut-over.
const PREVIOUS: &str = "previous";
/// The suffix a version is renamed to for a moment while a rollback swaps it in.
const SWAPPING: &str = "swapping";

/// The generation a replay request builds: `r` and 8 hex digits of the request id's hash.
pub fn generation(request_id: &str) -> String {
    let hash = crate::digest::fnv1a(request_id.as_bytes());
    format!("r{:08x}", (hash >> 32) ^ (hash & 0xffff_ffff))
}

/// `name__suffix`, as a `&'static str` like every declared name. Leaked once per replay
/// and table, which is bounded by the tables a process replays.
fn versioned(name: &str, suffix: &str) -> &'static str {
    Box::leak(format!("{name}__{suffix}").into_boxed_str())
}

impl ReadModelDb {
    /// Creates (if absent) the tables of the version of `live`'s projection that the replay
    /// `request_id` builds, without their secondary indexes (see
    /// [`ReadModelDb::build_indexes`]), and returns its schema.
    pub async fn ensure_version_schema(
        &self,
        live: &Schema,
        projection: &dyn Projection,
        request_id: &str,
    ) -> Result<Schema, ReadModelError> {
        let generation = generation(request_id);
        let mut schema = live.clone();
        schema.projection = versioned(live.projection, &generation);
        for declared in projection.tables() {
            let table = Table {
                name: versioned(declared.name, &generation),
                indexes: declared
                    .indexes
                    .iter()
                    .map(|index| Index {
                        name: versioned(index.name, &generation),
                        columns: index.columns,
                    })
                    .collect(),
                ..declared.clone()
            };
            check_table(&table)?;
            let action = format!("creating table {}", table.name);
            let ddl = self.dialect().create_table_without_indexes(&table);
            self.execute_retrying(ddl, &action).await?;
            schema.tables.insert(declared.name, table);
        }
        self.initialise_checkpoint(&schema).await?;
        Ok(schema)
    }

    /// Builds the secondary indexes of a version made by [`ReadModelDb::ensure_version_schema`]
    /// (named like the declared ones, with the generation appended: index names are global in
    /// PostgreSQL and SQLite). Idempotent.
    pub async fn build_indexes(&self, version: &Schema) -> Result<(), ReadModelError> {
        let dialect = self.dialect();
        for name in &version.own_tables {
            let table = version.table(name)?;
            for index in &table.indexes {
                if dialect == Dialect::MySql
                    && self.mysql_index_exists(table.name, index.name).await?
                {
                    continue;
                }
                let action = format!("indexing {}", table.name);
                self.execute_retrying(dialect.create_index(table, index), &action)
                    .await?;
            }
        }
        Ok(())
    }

    async fn mysql_index_exists(&self, table: &str, index: &str) -> Result<bool, ReadModelError> {
        let Pool::MySql(pool) = &self.pool else {
            return Ok(false);
        };
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.statistics \
             WHERE table_schema = DATABASE() AND table_name = ? AND index_name = ?",
        )
        .bind(table)
        .bind(index)
        .fetch_one(pool)
        .await
        .map_err(database_error(Dialect::MySql, "reading the indexes"))?;
        Ok(count > 0)
    }

    async fn table_exists(&self, table: &str) -> Result<bool, ReadModelError> {
        let action = "looking for a table";
        let count: i64 = match &self.pool {
            Pool::MySql(pool) => sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = DATABASE() AND table_name = ?",
            )
            .bind(table)
            .fetch_one(pool)
            .await
            .map_err(database_error(Dialect::MySql, action))?,
            Pool::Postgres(pool) => sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = $1",
            )
            .bind(table)
            .fetch_one(pool)
            .await
            .map_err(database_error(Dialect::Postgres, action))?,
            Pool::Sqlite(pool) => sqlx::query_scalar(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
            )
            .bind(table)
            .fetch_one(pool)
            .await
            .map_err(database_error(Dialect::Sqlite, action))?,
        };
        Ok(count > 0)
    }

    /// Drops the version kept from the cut-over before last (its tables and bookkeeping):
    /// the live version is about to take its place.
    pub async fn drop_previous_version(
        &self,
        live: &Schema,
        projection: &dyn Projection,
    ) -> Result<(), ReadModelError> {
        let dialect = self.dialect();
        let previous_key = Value::from(versioned(live.projection, PREVIOUS));
        for table in [STREAM_VERSIONS, DEAD_LETTERS, CHECKPOINTS] {
            let sql = dialect.delete_key(table);
            with_pool!(self, pool => execute_on(pool, sql, &[&previous_key], "dropping the previous version").await)?;
        }
        for declared in projection.tables() {
            let name = versioned(declared.name, PREVIOUS);
            self.execute_retrying(dialect.drop_table(name), "dropping the previous version")
                .await?;
            let sql = dialect.delete(DEFINITIONS, &["table_name"]);
            let name = Value::from(name);
            with_pool!(self, pool => execute_on(pool, sql, &[&name], "dropping the previous version").await)?;
        }
        Ok(())
    }

    /// Drops the previous version (see [`ReadModelDb::drop_previous_version`]) once the
    /// cut-over that replaced it is at least `retention` old; returns whether it did. The
    /// projectors call this from time to time: it is how the retention of the previous
    /// version ends.
    pub async fn drop_previous_version_after(
        &self,
        live: &Schema,
        projection: &dyn Projection,
        retention: std::time::Duration,
    ) -> Result<bool, ReadModelError> {
        let key = Value::from(versioned(live.projection, PREVIOUS));
        let Some(row) = self
            .get(&crate::db::checkpoints_table(), vec![("projection", key)])
            .await?
        else {
            return Ok(false);
        };
        // The previous version's checkpoint row is written by the cut-over that replaced it.
        let replaced_at = row["updated_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        let age = replaced_at
            .and_then(|t| (Utc::now() - t).to_std().ok())
            .unwrap_or_default();
        if age < retention {
            return Ok(false);
        }
        self.drop_previous_version(live, projection).await?;
        tracing::info!(
            projection = live.projection,
            age_seconds = age.as_secs(),
            "dropped the previous version of the read model (its retention ended)"
        );
        Ok(true)
    }

    /// Starts the cut-over of `live` to `version`: locks the live checkpoint row, which
    /// waits for the live batches in flight and holds off the next ones until
    /// [`CutOver::commit`] (or until the [`CutOver`] is dropped, which rolls back).
    pub async fn begin_cut_over(
        &self,
        live: &Schema,
        version: &Schema,
        request_id: &str,
    ) -> Result<CutOver, ReadModelError> {
        let tx = match &self.pool {
            Pool::Sqlite(pool) => CutTx::Sqlite(begin::<Sqlite>(pool, live.projection).await?),
            Pool::Postgres(pool) => {
                CutTx::Postgres(begin::<Postgres>(pool, live.projection).await?)
            }
            Pool::MySql(pool) => CutTx::MySql(begin::<MySql>(pool, live.projection).await?),
        };
        Ok(CutOver {
            db: self.clone(),
            tx,
            live: live.clone(),
            version: version.clone(),
            request_id: request_id.to_owned(),
            rollback: false,
        })
    }

    /// The version the last cut-over replaced (`TABLE__previous`), if it is still kept.
    pub async fn previous_version(&self, live: &Schema) -> Result<Option<Schema>, ReadModelError> {
        let mut previous = live.clone();
        previous.projection = versioned(live.projection, PREVIOUS);
        for name in &live.own_tables {
            let mut table = live.table(name)?.clone();
            table.name = versioned(table.name, PREVIOUS);
            if !self.table_exists(table.name).await? {
                return Ok(None);
            }
            previous.tables.insert(name, table);
        }
        Ok(Some(previous))
    }

    /// Starts rolling the last cut-over back: like [`ReadModelDb::begin_cut_over`], with the
    /// kept previous version (see [`ReadModelDb::previous_version`]) as the version swapped
    /// in; the live one becomes the previous version in turn. Apply the events stored since
    /// the previous version's checkpoint with [`CutOver::apply`] before committing (its
    /// stream versions skip what it already has), so nothing is lost. Needs transactional
    /// DDL: refused on MySQL, where the swap could not be made crash-safe both ways.
    pub async fn begin_roll_back(
        &self,
        live: &Schema,
        previous: &Schema,
    ) -> Result<CutOver, ReadModelError> {
        if self.dialect() == Dialect::MySql {
            return Err(ReadModelError::Unsupported {
                database: "mysql",
                what: "rolling back a cut-over (MySQL's DDL is not transactional); replay instead",
            });
        }
        let mut cut = self.begin_cut_over(live, previous, "rollback").await?;
        cut.rollback = true;
        Ok(cut)
    }

    /// Completes a MySQL cut-over whose process stopped between its two steps: renames the
    /// tables if that has not happened, then clears the mark. Safe to call when there is
    /// nothing to complete.
    pub async fn finish_interrupted_cut_over(
        &self,
        live: &Schema,
        version: &Schema,
        request_id: &str,
    ) -> Result<(), ReadModelError> {
        let first = live
            .own_tables
            .first()
            .map(|name| version.table(name).map(|t| t.name))
            .transpose()?;
        if let Some(first) = first
            && self.table_exists(first).await?
        {
            self.rename_versions(live, version).await?;
        }
        self.clear_cut_over_mark(live, request_id).await
    }

    /// The pairs of renames that swap `version` in and the live version out.
    fn swap_pairs(
        live: &Schema,
        version: &Schema,
    ) -> Result<Vec<(&'static str, &'static str)>, ReadModelError> {
        let mut pairs = Vec::new();
        let rollback = version.projection == versioned(live.projection, PREVIOUS);
        if rollback {
            // The version swapped in holds the previous names: move it aside first.
            for name in &live.own_tables {
                let current = live.table(name)?.name;
                pairs.push((versioned(current, PREVIOUS), versioned(current, SWAPPING)));
            }
            for name in &live.own_tables {
                let current = live.table(name)?.name;
                pairs.push((current, versioned(current, PREVIOUS)));
            }
            for name in &live.own_tables {
                let current = live.table(name)?.name;
                pairs.push((versioned(current, SWAPPING), current));
            }
            return Ok(pairs);
        }
        for name in &live.own_tables {
            let current = live.table(name)?.name;
            pairs.push((current, versioned(current, PREVIOUS)));
        }
        for name in &live.own_tables {
            pairs.push((version.table(name)?.name, live.table(name)?.name));
        }
        Ok(pairs)
    }

    async fn rename_versions(&self, live: &Schema, version: &Schema) -> Result<(), ReadModelError> {
        let pairs = Self::swap_pairs(live, version)?;
        for sql in self.dialect().rename_tables(&pairs) {
            self.execute_retrying(sql, "swapping the read model's tables")
                .await?;
        }
        Ok(())
    }

    async fn clear_cut_over_mark(
        &self,
        live: &Schema,
        request_id: &str,
    ) -> Result<(), ReadModelError> {
        let dialect = self.dialect();
        let clear = dialect.set_null(CHECKPOINTS, "cut_over_by", "projection");
        let finish = dialect.update(
            REPLAYS,
            &["status", "finished_at"],
            &["projection", "request_id"],
        );
        let projection = Value::from(live.projection);
        let (finished, now, request) = (
            Value::from("finished"),
            Value::Timestamp(Utc::now()),
            Value::from(request_id),
        );
        with_pool!(self, pool => execute_on(pool, clear, &[&projection], "clearing the cut-over mark").await)?;
        with_pool!(self, pool => execute_on(pool, finish, &[&finished, &now, &projection, &request], "finishing the replay").await)?;
        Ok(())
    }
}

async fn begin<DB: Backend>(
    pool: &sqlx::Pool<DB>,
    projection: &str,
) -> Result<Transaction<'static, DB>, ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let mut tx = pool
        .begin_with(DB::BEGIN)
        .await
        .map_err(database_error(DB::DIALECT, "beginning the cut-over"))?;
    checkpoint_in::<DB>(&mut tx, projection, RowLock::Exclusive).await?;
    Ok(tx)
}

enum CutTx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
    MySql(Transaction<'static, MySql>),
}

macro_rules! with_tx {
    ($cut:expr, $tx:ident => $body:expr) => {
        match &mut $cut.tx {
            CutTx::Sqlite($tx) => {
                type Db = Sqlite;
                $body
            }
            CutTx::Postgres($tx) => {
                type Db = Postgres;
                $body
            }
            CutTx::MySql($tx) => {
                type Db = MySql;
                $body
            }
        }
    };
}

/// A cut-over in progress: the live projection's batches are held off while it lasts.
pub struct CutOver {
    db: ReadModelDb,
    tx: CutTx,
    live: Schema,
    version: Schema,
    request_id: String,
    /// Swapping the previous version back in.
    rollback: bool,
}

impl std::fmt::Debug for CutOver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CutOver")
            .field("projection", &self.live.projection)
            .field("version", &self.version.projection)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

impl CutOver {
    /// The last position the new version has applied.
    pub async fn checkpoint(&mut self) -> Result<Position, ReadModelError> {
        let key = self.version.projection;
        with_tx!(self, tx => checkpoint_in::<Db>(&mut **tx, key, RowLock::None).await)
            .map(|row: CheckpointRow| row.position)
    }

    /// Applies events to the new version, strictly (see [`ReadModelDb::apply_strict`]),
    /// inside the cut-over's transaction.
    pub async fn apply(
        &mut self,
        batch: &[ProjectedEvent<'_>],
    ) -> Result<BatchOutcome, ReadModelError> {
        let version = &self.version;
        with_tx!(self, tx => apply_in::<Db>(&mut **tx, version, BatchSource::Store, batch, false, true).await)
    }

    /// Swaps the new version in and the live one out (see the module documentation), and
    /// records the replay as finished.
    pub async fn commit(mut self) -> Result<(), ReadModelError> {
        let transactional_ddl = self.db.dialect() != Dialect::MySql;
        let pairs = ReadModelDb::swap_pairs(&self.live, &self.version)?;
        let (live, version, request_id) = (&self.live, &self.version, self.request_id.as_str());
        let rollback = self.rollback;
        with_tx!(self, tx => swap_bookkeeping::<Db>(&mut **tx, live, version, request_id, transactional_ddl, rollback).await)?;
        if transactional_ddl {
            let dialect = self.db.dialect();
            for sql in dialect.rename_tables(&pairs) {
                with_tx!(self, tx => execute_in::<Db>(&mut **tx, sql, &[], "swapping the read model's tables").await)?;
            }
        }
        let action = "committing the cut-over";
        match self.tx {
            CutTx::Sqlite(tx) => tx
                .commit()
                .await
                .map_err(database_error(Dialect::Sqlite, action)),
            CutTx::Postgres(tx) => tx
                .commit()
                .await
                .map_err(database_error(Dialect::Postgres, action)),
            CutTx::MySql(tx) => tx
                .commit()
                .await
                .map_err(database_error(Dialect::MySql, action)),
        }?;
        if !transactional_ddl {
            self.db
                .finish_interrupted_cut_over(&self.live, &self.version, &self.request_id)
                .await?;
        }
        if self.rollback {
            tracing::info!(
                projection = self.live.projection,
                "rolled back to the previous read model"
            );
        } else {
            tracing::info!(projection = self.live.projection, request_id = %self.request_id,
                "cut over to the replayed read model");
        }
        Ok(())
    }
}

/// Moves the live version's bookkeeping to the previous key and the new version's to the
/// live key, records the new tables' definitions, and marks the replay finished (or, when
/// the tables are renamed after this transaction, marks the checkpoint row as being cut
/// over).
async fn swap_bookkeeping<DB: Backend>(
    conn: &mut DB::Connection,
    live: &Schema,
    version: &Schema,
    request_id: &str,
    renamed_inside: bool,
    rollback: bool,
) -> Result<(), ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let dialect = DB::DIALECT;
    let action = "swapping the read model's bookkeeping";
    let live_key = Value::from(live.projection);
    let version_key = Value::from(version.projection);
    let previous_key = Value::from(versioned(live.projection, PREVIOUS));
    let swapping_key = Value::from(versioned(live.projection, SWAPPING));
    for table in [STREAM_VERSIONS, DEAD_LETTERS] {
        if rollback {
            // previous -> swapping, live -> previous, swapping -> live.
            let steps = [
                (&swapping_key, &previous_key),
                (&previous_key, &live_key),
                (&live_key, &swapping_key),
            ];
            for (to, from) in steps {
                execute_in::<DB>(conn, dialect.rekey(table), &[to, from], action).await?;
            }
            continue;
        }
        execute_in::<DB>(conn, dialect.delete_key(table), &[&previous_key], action).await?;
        execute_in::<DB>(
            conn,
            dialect.rekey(table),
            &[&previous_key, &live_key],
            action,
        )
        .await?;
        execute_in::<DB>(
            conn,
            dialect.rekey(table),
            &[&live_key, &version_key],
            action,
        )
        .await?;
    }
    // The live checkpoint row stays (it is the lock); it takes the new version's position,
    // and the old position moves to the previous key.
    let old = checkpoint_in::<DB>(conn, live.projection, RowLock::None).await?;
    let new = checkpoint_in::<DB>(conn, version.projection, RowLock::None).await?;
    execute_in::<DB>(
        conn,
        dialect.delete_key(CHECKPOINTS),
        &[&previous_key],
        action,
    )
    .await?;
    execute_in::<DB>(
        conn,
        dialect.delete_key(CHECKPOINTS),
        &[&version_key],
        action,
    )
    .await?;
    let insert = dialect.upsert(
        &crate::db::checkpoints_table(),
        &[
            "projection",
            "commit_position",
            "event_position",
            "updated_at",
        ],
    );
    let now = Value::Timestamp(Utc::now());
    execute_in::<DB>(
        conn,
        insert.clone(),
        &[
            &previous_key,
            &Value::from(old.position.commit),
            &Value::from(old.position.event),
            &now,
        ],
        action,
    )
    .await?;
    execute_in::<DB>(
        conn,
        insert,
        &[
            &live_key,
            &Value::from(new.position.commit),
            &Value::from(new.position.event),
            &now,
        ],
        action,
    )
    .await?;
    // Definitions: the previous version keeps what the live tables were; the live names now
    // hold tables made from the declaration (or, rolling back, what the previous ones were).
    if rollback {
        for name in &live.own_tables {
            let current = live.table(name)?.name;
            let (previous, swapping) = (versioned(current, PREVIOUS), versioned(current, SWAPPING));
            for (to, from) in [
                (swapping, previous),
                (previous, current),
                (current, swapping),
            ] {
                execute_in::<DB>(
                    conn,
                    dialect.update(DEFINITIONS, &["table_name"], &["table_name"]),
                    &[&Value::from(to), &Value::from(from)],
                    action,
                )
                .await?;
            }
        }
        return Ok(());
    }
    for name in &live.own_tables {
        let declared = live.table(name)?;
        let previous = versioned(declared.name, PREVIOUS);
        execute_in::<DB>(
            conn,
            dialect.update(DEFINITIONS, &["table_name"], &["table_name"]),
            &[&Value::from(previous), &Value::from(declared.name)],
            action,
        )
        .await?;
        let row = [
            Value::from(declared.name),
            Value::from(live.projection),
            Value::from(migrate::definition(declared).as_str()),
            now.clone(),
        ];
        execute_in::<DB>(
            conn,
            dialect.upsert(
                &crate::db::definitions_table(),
                &["table_name", "projection", "definition", "updated_at"],
            ),
            &row.iter().collect::<Vec<_>>(),
            action,
        )
        .await?;
    }
    let request = Value::from(request_id);
    if renamed_inside {
        execute_in::<DB>(
            conn,
            dialect.update(
                REPLAYS,
                &["status", "finished_at"],
                &["projection", "request_id"],
            ),
            &[&Value::from("finished"), &now, &live_key, &request],
            action,
        )
        .await?;
    } else {
        execute_in::<DB>(
            conn,
            dialect.update(REPLAYS, &["status"], &["projection", "request_id"]),
            &[&Value::from("cutting_over"), &live_key, &request],
            action,
        )
        .await?;
        execute_in::<DB>(
            conn,
            dialect.update(CHECKPOINTS, &["cut_over_by"], &["projection"]),
            &[&request, &live_key],
            action,
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::generation;

    #[test]
    fn a_generation_is_a_short_stable_identifier() {
        assert_eq!(generation("rebuild-1"), generation("rebuild-1"));
        assert_ne!(generation("rebuild-1"), generation("rebuild-2"));
        assert_eq!(generation("x").len(), 9);
        assert!(crate::dialect::Dialect::check_identifier(&generation("x")));
    }
}
