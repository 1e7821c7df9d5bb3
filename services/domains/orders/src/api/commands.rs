use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use eventline_core::CommandHandler;
use eventline_http::{
    ApiError, ApiJson, Caller, CommandAccepted, Problem, accepted, command_metadata,
    expected_version, run_command,
};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::order::{CreateOrder, Order, OrderCommand, OrderLine, ProcessOrder};

/// What the command routes need: a command handler for orders over the event store (with
/// snapshots, if the service takes them).
pub type CommandState = CommandHandler<Order>;

/// Body of `POST /orders`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    /// Who the order is for (1 to 100 characters, not blank; surrounding spaces are trimmed).
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub customer: String,
    /// 1 to 100 lines; each `sku` 1 to 64 characters without surrounding spaces, `quantity`
    /// 1 to 10000, `unit_price` 0 to 10^15. A total above 10^15 is a 422.
    #[schema(min_items = 1, max_items = 100)]
    pub lines: Vec<OrderLine>,
}

/// Body of `POST /orders/{id}/process` (may be empty).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessOrderRequest {
    /// Fail with 409 unless the order is at this version (same as `If-Match`).
    #[serde(default)]
    pub expected_version: Option<u64>,
}

/// The command routes of the orders domain.
pub fn command_routes(state: CommandState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(create_order))
        .routes(routes!(process_order))
        .with_state(state)
}

fn order_id(id: &str) -> Result<String, ApiError> {
    Uuid::parse_str(id)
        .map(|id| id.to_string())
        .map_err(|_| ApiError::not_found(format!("there is no order {id}")))
}

/// Create an order. The order processor processes it in the background (its status moves
/// from `created` to `processed` in the read model).
#[utoipa::path(post, path = "/orders", tag = "orders", request_body = CreateOrderRequest,
    responses(
        (status = 201, description = "Created; `Location` names the order", body = CommandAccepted),
        (status = 400, description = "Malformed body", body = Problem),
        (status = 422, description = "Invalid field", body = Problem),
    ))]
async fn create_order(
    State(state): State<CommandState>,
    headers: HeaderMap,
    caller: Option<Caller>,
    ApiJson(request): ApiJson<CreateOrderRequest>,
) -> Result<Response, ApiError> {
    let id = Uuid::now_v7().to_string();
    let command = OrderCommand::Create(CreateOrder {
        customer: request.customer,
        lines: request.lines,
    });
    let metadata = command_metadata(&headers, caller.as_ref());
    let done = run_command(
        &state,
        "create_order",
        &id,
        Some(0),
        &metadata,
        &command,
        ApiError::from,
    )
    .await?;
    let body = CommandAccepted::new(&done);
    let location = format!("/orders/{id}");
    Ok(accepted(
        StatusCode::CREATED,
        body.version,
        Some(location),
        body,
    ))
}

/// Process an order now instead of waiting for the processor; processing an order that is
/// already processed changes nothing (200, same version).
#[utoipa::path(post, path = "/orders/{id}/process", tag = "orders", request_body = ProcessOrderRequest,
    params(("id" = String, Path, description = "Order id"),
           ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"1\"")),
    responses(
        (status = 200, description = "Processed (or already processed)", body = CommandAccepted),
        (status = 404, description = "No such order", body = Problem),
        (status = 409, description = "Stale expected version", body = Problem),
    ))]
async fn process_order(
    State(state): State<CommandState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    caller: Option<Caller>,
    ApiJson(request): ApiJson<ProcessOrderRequest>,
) -> Result<Response, ApiError> {
    let id = order_id(&id)?;
    let expected = expected_version(&headers, request.expected_version)?;
    let processed_by = match &caller {
        Some(caller) => format!("api:{}", caller.subject),
        None => "api".to_owned(),
    };
    let command = OrderCommand::Process(ProcessOrder { processed_by });
    let metadata = command_metadata(&headers, caller.as_ref());
    let done = run_command(
        &state,
        "process_order",
        &id,
        expected,
        &metadata,
        &command,
        ApiError::from,
    )
    .await?;
    let body = CommandAccepted::new(&done);
    Ok(accepted(StatusCode::OK, body.version, None, body))
}
