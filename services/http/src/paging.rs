//! Keyset-paged reads of read models for query routes: a page of rows as typed items plus the
//! opaque cursor of the next page.

use eventline_core::{Table, Value};
use eventline_readmodel::{ReadModelDb, ReadModelError, Row, Select, column_value};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::extract::Cursor;

/// The query parameters of a plain paged list: page size and the previous page's cursor.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next` value of the previous page, as handed out (opaque, base64url); any other
    /// value is a 400 naming `cursor`.
    #[param(min_length = 1, pattern = r"^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// Turns a cursor this service handed out back into the keyset bound for the `order_by`
/// columns of `table`; anything else is a 400 naming `cursor`.
pub fn keyset_bound(
    cursor: Option<&str>,
    table: &Table,
    order_by: &[&str],
) -> Result<Option<Vec<Value>>, ApiError> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    let Cursor(values) = Cursor::decode(cursor)?;
    let bad = Cursor::invalid;
    if values.len() != order_by.len() {
        return Err(bad());
    }
    values
        .iter()
        .zip(order_by)
        .map(|(value, column)| {
            let ty = table.column(column).map(|c| c.ty).ok_or_else(bad)?;
            match column_value(ty, value) {
                Some(Value::Null) | None => Err(bad()),
                Some(value) => Ok(value),
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A failed read of the read model: logged, answered with the opaque 500.
pub fn read_error(error: ReadModelError) -> ApiError {
    ApiError::internal(&error)
}

/// One row as the item type it is served as.
pub fn row_into<T: DeserializeOwned>(row: Row) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::Object(row)).map_err(|e| ApiError::internal(&e))
}

/// Fetches one page of `select` (reading one row more, to know whether another page follows)
/// and the cursor of the next page, if there is one.
pub async fn fetch_page<T: DeserializeOwned>(
    db: &ReadModelDb,
    mut select: Select<'_>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let limit = select.limit as usize;
    select.limit += 1;
    let mut rows: Vec<Row> = db.select(&select).await.map_err(read_error)?;
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|row| {
            Cursor(
                select
                    .order_by
                    .iter()
                    .map(|c| row.get(*c).cloned().unwrap_or_default())
                    .collect(),
            )
            .encode()
        })
    } else {
        None
    };
    let items = rows
        .into_iter()
        .map(row_into)
        .collect::<Result<Vec<T>, _>>()?;
    Ok((items, next))
}
