use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use eventline_core::{Table, Value};
use eventline_http::{
    ApiError, ApiQuery, Problem, etag, fetch_page, keyset_bound, page_limit, read_error, row_into,
};
use eventline_readmodel::{ReadModelDb, Select};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::order::MAX_LINES;
use crate::projection::{lines_table, orders_table};

/// What the query routes need: the read-model database and the tables they read.
#[derive(Debug, Clone)]
pub struct QueryState {
    db: ReadModelDb,
    orders: Arc<Table>,
    lines: Arc<Table>,
}

impl QueryState {
    pub fn new(db: ReadModelDb) -> Self {
        Self {
            db,
            orders: Arc::new(orders_table()),
            lines: Arc::new(lines_table()),
        }
    }
}

/// One order as the read model sees it, without its lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderSummary {
    pub id: String,
    pub customer: String,
    /// In minor units (cents).
    pub total: i64,
    pub line_count: u64,
    /// `created` (waiting for the processor) or `processed`.
    pub status: String,
    pub created_at: String,
    pub processed_at: Option<String>,
    /// `order-processor`, or `api:USER` when processed over HTTP.
    pub processed_by: Option<String>,
    /// The version of the last event applied to this row.
    pub version: u64,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderLineView {
    pub line_no: u64,
    pub sku: String,
    pub quantity: i64,
    /// In minor units (cents).
    pub unit_price: i64,
}

/// One order with its lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    #[serde(flatten)]
    pub order: OrderSummary,
    pub lines: Vec<OrderLineView>,
}

/// A page of orders, newest first; pass `next` as `cursor` for the following page.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderPage {
    pub items: Vec<OrderSummary>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum StatusFilter {
    Created,
    Processed,
}

/// Filters and paging of `GET /orders`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListOrders {
    /// Only this customer's orders (exact match).
    customer: Option<String>,
    /// Only `created` (not processed yet) or `processed` orders.
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

/// The query routes of the orders domain.
pub fn query_routes(state: QueryState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_orders))
        .routes(routes!(get_order))
        .with_state(state)
}

/// List orders, newest first (by id: order ids are time-ordered UUIDv7s), optionally by
/// customer and status.
#[utoipa::path(get, path = "/orders", tag = "orders", params(ListOrders),
    responses(
        (status = 200, description = "A page of orders", body = OrderPage),
        (status = 400, description = "Bad parameter", body = Problem),
    ))]
async fn list_orders(
    State(state): State<QueryState>,
    ApiQuery(query): ApiQuery<ListOrders>,
) -> Result<Json<OrderPage>, ApiError> {
    const ORDER: &[&str] = &["id"];
    let mut filters = Vec::new();
    if let Some(customer) = query.customer {
        filters.push(("customer", Value::Text(customer)));
    }
    if let Some(status) = query.status {
        let status = match status {
            StatusFilter::Created => "created",
            StatusFilter::Processed => "processed",
        };
        filters.push(("status", Value::from(status)));
    }
    let select = Select {
        table: &state.orders,
        filters,
        order_by: ORDER,
        after: keyset_bound(query.cursor.as_deref(), &state.orders, ORDER)?,
        descending: true,
        limit: page_limit(query.limit, 50, 500)?,
    };
    let (items, next) = fetch_page(&state.db, select).await?;
    Ok(Json(OrderPage { items, next }))
}

/// One order with its lines; `ETag` carries its version.
#[utoipa::path(get, path = "/orders/{id}", tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = OrderView),
        (status = 404, description = "No such order", body = Problem),
    ))]
async fn get_order(
    State(state): State<QueryState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let row = state
        .db
        .get(&state.orders, vec![("id", Value::from(id.as_str()))])
        .await
        .map_err(read_error)?
        .ok_or_else(|| ApiError::not_found(format!("there is no order {id}")))?;
    let order: OrderSummary = row_into(row)?;
    let lines = state
        .db
        .select(&Select {
            table: &state.lines,
            filters: vec![("order_id", Value::from(id.as_str()))],
            order_by: &["line_no"],
            after: None,
            descending: false,
            limit: MAX_LINES as u32,
        })
        .await
        .map_err(read_error)?
        .into_iter()
        .map(row_into)
        .collect::<Result<Vec<OrderLineView>, _>>()?;
    let version = order.version;
    Ok((
        [(axum::http::header::ETAG, etag(version))],
        Json(OrderView { order, lines }),
    )
        .into_response())
}
