//! Dead letters: events a projection could not apply, kept with the reason.

use chrono::Utc;
use eventline_core::{Envelope, Value};
use sqlx::{Executor, IntoArguments};

use super::Schema;
use super::bookkeeping::{DEAD_LETTERS, dead_letters_table};
use super::rows::upsert;
use crate::backend::{Args, Backend};
use crate::error::ReadModelError;
use crate::pool::ReadModelDb;

impl ReadModelDb {
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
}

pub(super) async fn dead_letter<DB: Backend>(
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
