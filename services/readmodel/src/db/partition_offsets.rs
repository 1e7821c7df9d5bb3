//! Partition offsets: the next Kafka offset of each partition a projection consumes, written
//! with its batch.

use chrono::Utc;
use eventline_core::{ColumnType, Value};
use sqlx::{AssertSqlSafe, Executor, IntoArguments};

use super::Schema;
use super::bookkeeping::{KAFKA_OFFSETS, kafka_offsets_table};
use super::rows::insert_if_absent;
use crate::backend::{Args, Backend};
use crate::error::ReadModelError;
use crate::pool::{ReadModelDb, database_error};

/// A projection's recorded progress on one Kafka partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOffset {
    pub topic: String,
    pub partition: i32,
    pub next_offset: i64,
}

impl ReadModelDb {
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
}

/// Locks the partition's offset row (creating it first if needed); returns the next offset
/// recorded there.
pub(super) async fn lock_partition<DB: Backend>(
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
