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

use crate::projection::{accounts_table, history_table};

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

/// What the query routes need: the read-model database and the tables they read.
#[derive(Debug, Clone)]
pub struct QueryState {
    db: ReadModelDb,
    accounts: Arc<Table>,
    history: Arc<Table>,
}

impl QueryState {
    pub fn new(db: ReadModelDb) -> Self {
        Self {
            db,
            accounts: Arc::new(accounts_table()),
            history: Arc::new(history_table()),
        }
    }
}

/// One account as the read model sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    pub id: String,
    pub holder: String,
    /// `checking` or `savings`.
    pub account_type: String,
    /// In minor units (cents).
    pub balance: i64,
    /// `open` or `closed`.
    pub status: String,
    pub opened_at: String,
    pub updated_at: String,
    /// The version of the last event applied to this row.
    pub version: u64,
}

/// One event in an account's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntry {
    pub version: u64,
    pub position: u64,
    pub event_type: String,
    pub amount: Option<i64>,
    /// The balance after this event.
    pub balance: i64,
    pub recorded_at: String,
}

/// A page of accounts; pass `next` as `cursor` for the following page.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountPage {
    pub items: Vec<AccountView>,
    pub next: Option<String>,
}

/// A page of history entries, oldest first; pass `next` as `cursor` for the following page.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HistoryPage {
    pub items: Vec<HistoryEntry>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum StatusFilter {
    Open,
    Closed,
}

/// Filters and paging of `GET /accounts`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListAccounts {
    /// Only accounts of this holder (exact match).
    holder: Option<String>,
    /// Only `open` or `closed` accounts.
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

/// The query routes of the bank domain.
pub fn query_routes(state: QueryState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_accounts))
        .routes(routes!(get_account))
        .routes(routes!(account_history))
        .with_state(state)
}

fn limit(limit: Option<u32>) -> Result<u32, ApiError> {
    page_limit(limit, DEFAULT_LIMIT, MAX_LIMIT)
}

/// List accounts, optionally by holder and status, in creation order.
#[utoipa::path(get, path = "/accounts", tag = "accounts", params(ListAccounts),
    responses(
        (status = 200, description = "A page of accounts", body = AccountPage),
        (status = 400, description = "Bad parameter", body = Problem),
    ))]
async fn list_accounts(
    State(state): State<QueryState>,
    ApiQuery(query): ApiQuery<ListAccounts>,
) -> Result<Json<AccountPage>, ApiError> {
    const ORDER: &[&str] = &["id"];
    let mut filters = Vec::new();
    if let Some(holder) = query.holder {
        filters.push(("holder", Value::Text(holder)));
    }
    if let Some(status) = query.status {
        let status = match status {
            StatusFilter::Open => "open",
            StatusFilter::Closed => "closed",
        };
        filters.push(("status", Value::from(status)));
    }
    let select = Select {
        table: &state.accounts,
        filters,
        order_by: ORDER,
        after: keyset_bound(query.cursor.as_deref(), &state.accounts, ORDER)?,
        descending: false,
        limit: limit(query.limit)?,
    };
    let (items, next) = fetch_page(&state.db, select).await?;
    Ok(Json(AccountPage { items, next }))
}

async fn find_account(state: &QueryState, id: &str) -> Result<AccountView, ApiError> {
    let row = state
        .db
        .get(&state.accounts, vec![("id", Value::from(id))])
        .await
        .map_err(read_error)?
        .ok_or_else(|| ApiError::not_found(format!("there is no account {id}")))?;
    row_into(row)
}

/// One account; `ETag` carries its version.
#[utoipa::path(get, path = "/accounts/{id}", tag = "accounts",
    params(("id" = String, Path, description = "Account id")),
    responses(
        (status = 200, description = "The account", body = AccountView),
        (status = 404, description = "No such account", body = Problem),
    ))]
async fn get_account(
    State(state): State<QueryState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let account = find_account(&state, &id).await?;
    Ok(([(header::ETAG, etag(account.version))], Json(account)).into_response())
}

/// The events of one account, oldest first.
#[utoipa::path(get, path = "/accounts/{id}/history", tag = "accounts",
    params(("id" = String, Path, description = "Account id"), Paging),
    responses(
        (status = 200, description = "A page of history", body = HistoryPage),
        (status = 400, description = "Bad parameter", body = Problem),
        (status = 404, description = "No such account", body = Problem),
    ))]
async fn account_history(
    State(state): State<QueryState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<Paging>,
) -> Result<Json<HistoryPage>, ApiError> {
    const ORDER: &[&str] = &["version"];
    find_account(&state, &id).await?;
    let select = Select {
        table: &state.history,
        filters: vec![("account_id", Value::from(id.as_str()))],
        order_by: ORDER,
        after: keyset_bound(query.cursor.as_deref(), &state.history, ORDER)?,
        descending: false,
        limit: limit(query.limit)?,
    };
    let (items, next) = fetch_page(&state.db, select).await?;
    Ok(Json(HistoryPage { items, next }))
}
