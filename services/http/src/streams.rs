//! Read-only, paged access to the event store for operators: which streams exist, and the
//! events of one stream as stored (not upcast).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use eventline_core::{Envelope, EventStore, Metadata};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, Problem};
use crate::extract::{ApiQuery, Cursor, page_limit};

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1_000;

/// One stream of the store.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StreamView {
    pub stream_id: String,
    pub stream_type: String,
    /// The number of events in the stream.
    pub version: u64,
}

/// A page of streams; pass `next` as `cursor` for the following page.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StreamPage {
    pub items: Vec<StreamView>,
    pub next: Option<String>,
}

/// One stored event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    /// The event's global number.
    pub position: u64,
    /// The commit order the store reads events in (equal to `position` in SQLite).
    pub commit: u64,
    pub stream_id: String,
    pub stream_type: String,
    pub version: u64,
    pub event_type: String,
    pub schema_version: u32,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    #[schema(value_type = Object)]
    pub metadata: Metadata,
    pub recorded_at: String,
}

impl From<Envelope> for EventView {
    fn from(e: Envelope) -> Self {
        Self {
            position: e.position.event,
            commit: e.position.commit,
            stream_id: e.stream_id,
            stream_type: e.stream_type,
            version: e.version,
            event_type: e.event_type,
            schema_version: e.schema_version,
            payload: e.payload,
            metadata: e.metadata,
            recorded_at: e
                .recorded_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        }
    }
}

/// A page of one stream's events, oldest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<EventView>,
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Paging {
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next` value of the previous page, as handed out (opaque, base64url); any other
    /// value is a 400 naming `cursor`.
    #[param(min_length = 1, pattern = r"^[A-Za-z0-9_-]+$")]
    cursor: Option<String>,
}

fn limit(limit: Option<u32>) -> Result<usize, ApiError> {
    page_limit(limit, DEFAULT_LIMIT, MAX_LIMIT).map(|n| n as usize)
}

fn store_error(error: eventline_core::StoreError) -> ApiError {
    ApiError::internal(&error)
}

/// The operator routes over an event store.
pub fn stream_routes(store: Arc<dyn EventStore>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_streams))
        .routes(routes!(stream_events))
        .with_state(store)
}

/// List the streams of the store, in id order.
#[utoipa::path(get, path = "/streams", tag = "streams", params(Paging),
    responses(
        (status = 200, description = "A page of streams", body = StreamPage),
        (status = 400, description = "Bad parameter", body = Problem),
    ))]
async fn list_streams(
    State(store): State<Arc<dyn EventStore>>,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Json<StreamPage>, ApiError> {
    let limit = limit(paging.limit)?;
    let after = match paging.cursor.as_deref() {
        Some(cursor) => match Cursor::decode(cursor)?.0.as_slice() {
            [serde_json::Value::String(id)] => Some(id.clone()),
            _ => return Err(Cursor::invalid()),
        },
        None => None,
    };
    let mut streams = store
        .list_streams(after.as_deref(), limit + 1)
        .await
        .map_err(store_error)?;
    let next = (streams.len() > limit).then(|| {
        streams.truncate(limit);
        let last = streams
            .last()
            .map(|s| s.stream_id.clone())
            .unwrap_or_default();
        Cursor(vec![serde_json::Value::String(last)]).encode()
    });
    let items = streams
        .into_iter()
        .map(|s| StreamView {
            stream_id: s.stream_id,
            stream_type: s.stream_type,
            version: s.version,
        })
        .collect();
    Ok(Json(StreamPage { items, next }))
}

/// The events of one stream as stored, oldest first.
#[utoipa::path(get, path = "/streams/{id}/events", tag = "streams",
    params(("id" = String, Path, description = "Stream id"), Paging),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        (status = 400, description = "Bad parameter", body = Problem),
        (status = 404, description = "No such stream", body = Problem),
    ))]
async fn stream_events(
    State(store): State<Arc<dyn EventStore>>,
    Path(id): Path<String>,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Json<EventPage>, ApiError> {
    let limit = limit(paging.limit)?;
    let after = match paging.cursor.as_deref() {
        Some(cursor) => match Cursor::decode(cursor)?.0.as_slice() {
            [serde_json::Value::Number(n)] => n.as_u64().ok_or_else(Cursor::invalid)?,
            _ => return Err(Cursor::invalid()),
        },
        None => 0,
    };
    let mut events = store
        .read_stream(&id, after, limit + 1)
        .await
        .map_err(store_error)?;
    if events.is_empty() && after == 0 {
        return Err(ApiError::not_found(format!("there is no stream {id}")));
    }
    let next = (events.len() > limit).then(|| {
        events.truncate(limit);
        let last = events.last().map_or(0, |e| e.version);
        Cursor(vec![serde_json::json!(last)]).encode()
    });
    Ok(Json(EventPage {
        items: events.into_iter().map(EventView::from).collect(),
        next,
    }))
}
