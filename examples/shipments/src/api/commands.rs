use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::NaiveDate;
use eventline_core::CommandHandler;
use eventline_http::{
    ApiError, ApiJson, Caller, CommandAccepted, Problem, accepted, command_metadata,
    expected_version, run_command,
};
use rust_decimal::Decimal;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::shipment::{
    CancelShipment, DeliverShipment, DispatchShipment, Item, RegisterShipment, Shipment,
    ShipmentCommand,
};

/// What the command routes need: a command handler for shipments over the event store.
pub type CommandState = CommandHandler<Shipment>;

/// Body of `POST /shipments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterShipmentRequest {
    /// Who sends it (1 to 200 characters, not blank).
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub sender: String,
    /// Who receives it (1 to 200 characters, not blank).
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub recipient: String,
    /// ISO 3166-1 alpha-2 code, e.g. `DE`.
    #[schema(pattern = "^[A-Z]{2}$")]
    pub origin_country: String,
    /// ISO 3166-1 alpha-2 code; another country than the origin makes the shipment
    /// international: it clears customs (in the background) before it can be dispatched.
    #[schema(pattern = "^[A-Z]{2}$")]
    pub destination_country: String,
    /// 1 to 1000000 grams.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub weight_grams: i64,
    /// What the contents are worth, as a decimal string with at most two decimals
    /// (`"1250.50"`), 0 to 1000000000.
    #[schema(value_type = String, example = "1250.50", pattern = r"^[0-9]+(\.[0-9]{1,2})?$")]
    #[serde(with = "rust_decimal::serde::str")]
    pub declared_value: Decimal,
    /// The date it must arrive by, `YYYY-MM-DD`.
    #[schema(value_type = String, format = Date)]
    pub deliver_by: NaiveDate,
    /// 1 to 100 items.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<Item>,
}

/// Body of `POST /shipments/{id}/dispatch`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispatchRequest {
    /// The carrier taking it (1 to 100 characters, not blank).
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub carrier: String,
    /// Fail with 409 unless the shipment is at this version (same as `If-Match`).
    #[serde(default)]
    pub expected_version: Option<u64>,
}

/// Body of `POST /shipments/{id}/delivery`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryRequest {
    /// Who signed for it (1 to 200 characters, not blank).
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub signed_by: String,
    #[serde(default)]
    pub expected_version: Option<u64>,
}

/// Body of `POST /shipments/{id}/cancel`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Why (1 to 500 characters, not blank).
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub reason: String,
    #[serde(default)]
    pub expected_version: Option<u64>,
}

/// The command routes of the shipments domain.
pub fn command_routes(state: CommandState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(register_shipment))
        .routes(routes!(dispatch_shipment))
        .routes(routes!(deliver_shipment))
        .routes(routes!(cancel_shipment))
        .with_state(state)
}

/// Runs a command on the existing shipment the path names.
async fn on_shipment(
    state: &CommandState,
    name: &'static str,
    path_id: &str,
    (headers, caller): (&HeaderMap, Option<&Caller>),
    expected_in_body: Option<u64>,
    command: ShipmentCommand,
) -> Result<Response, ApiError> {
    let id = Uuid::parse_str(path_id)
        .map(|id| id.to_string())
        .map_err(|_| ApiError::not_found(format!("there is no shipment {path_id}")))?;
    let expected = expected_version(headers, expected_in_body)?;
    let metadata = command_metadata(headers, caller);
    let done = run_command(
        state,
        name,
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

/// Register a shipment.
#[utoipa::path(post, path = "/shipments", tag = "shipments", request_body = RegisterShipmentRequest,
    responses(
        (status = 201, description = "Registered; `Location` names the shipment", body = CommandAccepted),
        (status = 400, description = "Malformed body", body = Problem),
        (status = 422, description = "Invalid field", body = Problem),
    ))]
async fn register_shipment(
    State(state): State<CommandState>,
    headers: HeaderMap,
    caller: Option<Caller>,
    ApiJson(request): ApiJson<RegisterShipmentRequest>,
) -> Result<Response, ApiError> {
    let id = Uuid::now_v7().to_string();
    let command = ShipmentCommand::Register(RegisterShipment {
        sender: request.sender,
        recipient: request.recipient,
        origin_country: request.origin_country,
        destination_country: request.destination_country,
        weight_grams: request.weight_grams,
        declared_value: request.declared_value,
        deliver_by: request.deliver_by,
        items: request.items,
    });
    let metadata = command_metadata(&headers, caller.as_ref());
    let done = run_command(
        &state,
        "register_shipment",
        &id,
        Some(0),
        &metadata,
        &command,
        ApiError::from,
    )
    .await?;
    let body = CommandAccepted::new(&done);
    Ok(accepted(
        StatusCode::CREATED,
        body.version,
        Some(format!("/shipments/{id}")),
        body,
    ))
}

/// Hand a shipment to a carrier. An international shipment must have cleared customs
/// (422 `awaiting_customs` until it has).
#[utoipa::path(post, path = "/shipments/{id}/dispatch", tag = "shipments", request_body = DispatchRequest,
    params(("id" = String, Path, description = "Shipment id"),
           ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"2\"")),
    responses(
        (status = 200, description = "Dispatched", body = CommandAccepted),
        (status = 400, description = "Malformed body", body = Problem),
        (status = 404, description = "No such shipment", body = Problem),
        (status = 409, description = "Stale expected version", body = Problem),
        (status = 422, description = "Awaiting customs, wrong status or invalid field", body = Problem),
    ))]
async fn dispatch_shipment(
    State(state): State<CommandState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    caller: Option<Caller>,
    ApiJson(request): ApiJson<DispatchRequest>,
) -> Result<Response, ApiError> {
    let command = ShipmentCommand::Dispatch(DispatchShipment {
        carrier: request.carrier,
    });
    on_shipment(
        &state,
        "dispatch_shipment",
        &id,
        (&headers, caller.as_ref()),
        request.expected_version,
        command,
    )
    .await
}

/// Record a delivery.
#[utoipa::path(post, path = "/shipments/{id}/delivery", tag = "shipments", request_body = DeliveryRequest,
    params(("id" = String, Path, description = "Shipment id"),
           ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")),
    responses(
        (status = 200, description = "Delivered", body = CommandAccepted),
        (status = 400, description = "Malformed body", body = Problem),
        (status = 404, description = "No such shipment", body = Problem),
        (status = 409, description = "Stale expected version", body = Problem),
        (status = 422, description = "Not dispatched, or invalid field", body = Problem),
    ))]
async fn deliver_shipment(
    State(state): State<CommandState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    caller: Option<Caller>,
    ApiJson(request): ApiJson<DeliveryRequest>,
) -> Result<Response, ApiError> {
    let command = ShipmentCommand::Deliver(DeliverShipment {
        signed_by: request.signed_by,
    });
    on_shipment(
        &state,
        "deliver_shipment",
        &id,
        (&headers, caller.as_ref()),
        request.expected_version,
        command,
    )
    .await
}

/// Cancel a shipment that has not been dispatched.
#[utoipa::path(post, path = "/shipments/{id}/cancel", tag = "shipments", request_body = CancelRequest,
    params(("id" = String, Path, description = "Shipment id"),
           ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"1\"")),
    responses(
        (status = 200, description = "Cancelled", body = CommandAccepted),
        (status = 400, description = "Malformed body", body = Problem),
        (status = 404, description = "No such shipment", body = Problem),
        (status = 409, description = "Stale expected version", body = Problem),
        (status = 422, description = "Already dispatched, or invalid field", body = Problem),
    ))]
async fn cancel_shipment(
    State(state): State<CommandState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    caller: Option<Caller>,
    ApiJson(request): ApiJson<CancelRequest>,
) -> Result<Response, ApiError> {
    let command = ShipmentCommand::Cancel(CancelShipment {
        reason: request.reason,
    });
    on_shipment(
        &state,
        "cancel_shipment",
        &id,
        (&headers, caller.as_ref()),
        request.expected_version,
        command,
    )
    .await
}
