use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use eventline_core::{Table, Value};
use eventline_http::{
    ApiError, ApiQuery, Paging, Problem, etag, fetch_page, keyset_bound, page_limit, read_error,
    row_into,
};
use eventline_readmodel::{ReadModelDb, Select};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::projection::{shipments_table, timeline_table};

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

/// What the query routes need: the read-model database and the tables they read.
#[derive(Debug, Clone)]
pub struct QueryState {
    db: ReadModelDb,
    shipments: Arc<Table>,
    timeline: Arc<Table>,
}

impl QueryState {
    pub fn new(db: ReadModelDb) -> Self {
        Self {
            db,
            shipments: Arc::new(shipments_table()),
            timeline: Arc::new(timeline_table()),
        }
    }
}

/// One shipment as the read model sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ShipmentView {
    #[schema(format = Uuid)]
    pub id: String,
    pub sender: String,
    pub recipient: String,
    pub destination_country: String,
    /// Whether it crosses a border (and so goes through customs).
    pub international: bool,
    pub weight_grams: i64,
    /// A decimal string with two decimals, e.g. `"1250.50"`.
    pub declared_value: String,
    /// The duty customs charged (a decimal string); `null` until cleared, and for domestic
    /// shipments.
    pub customs_duty: Option<String>,
    #[schema(format = Date)]
    pub deliver_by: String,
    /// The items as registered: `[{"description": .., "quantity": ..}]`.
    #[schema(value_type = Vec<crate::Item>)]
    pub items: serde_json::Value,
    /// `registered`, `dispatched`, `delivered` or `cancelled`.
    pub status: String,
    pub carrier: Option<String>,
    #[schema(format = DateTime)]
    pub registered_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// The version of the last event applied to this row.
    pub version: u64,
}

/// One event in a shipment's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimelineEntry {
    pub version: u64,
    /// The event type, e.g. `ShipmentDispatched`.
    pub event: String,
    /// What the event says, as a JSON object.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    #[schema(format = DateTime)]
    pub at: String,
    /// Who caused it (the token's subject, or `system:customs-broker`).
    pub by_user: Option<String>,
}

/// A page of shipments; pass `next` as `cursor` for the following page.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ShipmentPage {
    pub items: Vec<ShipmentView>,
    pub next: Option<String>,
}

/// A page of a timeline, oldest first; pass `next` as `cursor` for the following page.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TimelinePage {
    pub items: Vec<TimelineEntry>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum StatusFilter {
    Registered,
    Dispatched,
    Delivered,
    Cancelled,
}

/// Filters and paging of `GET /shipments`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListShipments {
    /// Only shipments in this status.
    #[param(inline)]
    status: Option<StatusFilter>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next` value of the previous page, as handed out (opaque, base64url); any
    /// other value is a 400 naming `cursor`.
    #[param(min_length = 1, pattern = r"^[A-Za-z0-9_-]+$")]
    cursor: Option<String>,
}

/// The query routes of the shipments domain.
pub fn query_routes(state: QueryState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_shipments))
        .routes(routes!(get_shipment))
        .routes(routes!(shipment_timeline))
        .with_state(state)
}

fn shipment_key(id: &str) -> Result<Value, ApiError> {
    Uuid::parse_str(id)
        .map(Value::Uuid)
        .map_err(|_| ApiError::not_found(format!("there is no shipment {id}")))
}

/// List shipments, optionally in one status, oldest first.
#[utoipa::path(get, path = "/shipments", tag = "shipments", params(ListShipments),
    responses(
        (status = 200, description = "A page of shipments", body = ShipmentPage),
        (status = 400, description = "Bad parameter", body = Problem),
    ))]
async fn list_shipments(
    State(state): State<QueryState>,
    ApiQuery(query): ApiQuery<ListShipments>,
) -> Result<Json<ShipmentPage>, ApiError> {
    const ORDER: &[&str] = &["id"];
    let mut filters = Vec::new();
    if let Some(status) = query.status {
        let status = match status {
            StatusFilter::Registered => "registered",
            StatusFilter::Dispatched => "dispatched",
            StatusFilter::Delivered => "delivered",
            StatusFilter::Cancelled => "cancelled",
        };
        filters.push(("status", Value::from(status)));
    }
    let select = Select {
        table: &state.shipments,
        filters,
        order_by: ORDER,
        after: keyset_bound(query.cursor.as_deref(), &state.shipments, ORDER)?,
        descending: false,
        limit: page_limit(query.limit, DEFAULT_LIMIT, MAX_LIMIT)?,
    };
    let (items, next) = fetch_page(&state.db, select).await?;
    Ok(Json(ShipmentPage { items, next }))
}

async fn find_shipment(state: &QueryState, id: &str) -> Result<ShipmentView, ApiError> {
    let row = state
        .db
        .get(&state.shipments, vec![("id", shipment_key(id)?)])
        .await
        .map_err(read_error)?
        .ok_or_else(|| ApiError::not_found(format!("there is no shipment {id}")))?;
    row_into(row)
}

/// One shipment; `ETag` carries its version.
#[utoipa::path(get, path = "/shipments/{id}", tag = "shipments",
    params(("id" = String, Path, description = "Shipment id")),
    responses(
        (status = 200, description = "The shipment", body = ShipmentView),
        (status = 404, description = "No such shipment", body = Problem),
    ))]
async fn get_shipment(
    State(state): State<QueryState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let shipment = find_shipment(&state, &id).await?;
    Ok(([(header::ETAG, etag(shipment.version))], Json(shipment)).into_response())
}

/// The events of one shipment, oldest first.
#[utoipa::path(get, path = "/shipments/{id}/timeline", tag = "shipments",
    params(("id" = String, Path, description = "Shipment id"), Paging),
    responses(
        (status = 200, description = "A page of the timeline", body = TimelinePage),
        (status = 400, description = "Bad parameter", body = Problem),
        (status = 404, description = "No such shipment", body = Problem),
    ))]
async fn shipment_timeline(
    State(state): State<QueryState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<Paging>,
) -> Result<Json<TimelinePage>, ApiError> {
    const ORDER: &[&str] = &["version"];
    let key = shipment_key(&id)?;
    find_shipment(&state, &id).await?;
    let select = Select {
        table: &state.timeline,
        filters: vec![("shipment_id", key)],
        order_by: ORDER,
        after: keyset_bound(query.cursor.as_deref(), &state.timeline, ORDER)?,
        descending: false,
        limit: page_limit(query.limit, DEFAULT_LIMIT, MAX_LIMIT)?,
    };
    let (items, next) = fetch_page(&state.db, select).await?;
    Ok(Json(TimelinePage { items, next }))
}
