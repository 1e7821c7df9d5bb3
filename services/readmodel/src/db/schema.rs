//! Schema creation: a projection's tables and Eventline's own, created or migrated from their
//! recorded definitions.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use eventline_core::{Projection, Table, Value};

use super::bookkeeping::{
    checkpoints_table, dead_letters_table, definitions_table, kafka_offsets_table, replays_table,
    stream_versions_table,
};
use super::rows::{initialise_row, upsert_row};
use crate::dialect::Dialect;
use crate::error::ReadModelError;
use crate::migrate;
use crate::pool::{ReadModelDb, execute_on, with_pool};
use crate::value;

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

impl ReadModelDb {
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
    for column in &table.columns {
        if let Err(reason) = value::check_type(column.ty) {
            return bad(format!("column {:?}: {reason}", column.name));
        }
    }
    let columns = table
        .primary_key
        .iter()
        .chain(table.indexes.iter().flat_map(|i| i.columns.iter()));
    for column in columns {
        match table.column(column) {
            None => return bad(format!("key or index column {column:?} is not declared")),
            Some(declared) if !declared.ty.is_keyable() => {
                return bad(format!(
                    "column {column:?} ({:?}) cannot be in a key or an index",
                    declared.ty
                ));
            }
            Some(_) => {}
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
    pub(super) fn tracks(&self, stream_type: &str) -> bool {
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
