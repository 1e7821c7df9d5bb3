use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eventline_core::{CommandError, CommandHandler, EventStore, Metadata, SnapshotStore};
use eventline_http::{ApiError, ApiJson, Problem, etag, expected_version};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::account::{
    Account, AccountCommand, AccountType, CloseAccount, DepositFunds, OpenAccount, WithdrawFunds,
};

/// What the command routes need: a command handler for accounts over the event store.
#[derive(Debug, Clone)]
pub struct CommandState {
    accounts: CommandHandler<Account>,
}

impl CommandState {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            accounts: CommandHandler::new(store),
        }
    }

    /// Snapshot accounts every `every` versions into `snapshots` (see
    /// [`CommandHandler::with_snapshots`]).
    #[must_use]
    pub fn with_snapshots(mut self, snapshots: Arc<dyn SnapshotStore>, every: u64) -> Self {
        self.accounts = self
            .accounts
            .with_snapshots(snapshots, every, Account::SNAPSHOT_FORMAT);
        self
    }
}

/// Body of `POST /accounts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenAccountRequest {
    /// The account holder's name (1 to 200 characters).
    pub holder: String,
    /// `checking` (the default) or `savings`.
    #[serde(default = "default_account_type")]
    pub account_type: AccountType,
    /// In minor units (cents); 0 when left out.
    #[serde(default)]
    pub opening_balance: i64,
}

fn default_account_type() -> AccountType {
    AccountType::Checking
}

/// Body of a deposit or withdrawal.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FundsRequest {
    /// In minor units (cents), greater than 0.
    pub amount: i64,
    /// Fail with 409 unless the account is at this version (same as `If-Match`).
    #[serde(default)]
    pub expected_version: Option<u64>,
}

/// Body of `POST /accounts/{id}/close` (may be empty).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    #[serde(default)]
    pub expected_version: Option<u64>,
}

/// The answer to an accepted command.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CommandAccepted {
    /// The account id.
    pub id: String,
    /// The account's version after the command; send it back as `If-Match` to make sure
    /// nothing changed in between.
    pub version: u64,
    /// The global position of the last event written.
    pub position: Option<u64>,
}

/// The command routes of the bank domain.
pub fn command_routes(state: CommandState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(open_account))
        .routes(routes!(deposit_funds))
        .routes(routes!(withdraw_funds))
        .routes(routes!(close_account))
        .with_state(state)
}

/// Correlation id: the request id, when it is a UUID (the service sets one on every request).
fn metadata(headers: &HeaderMap) -> Metadata {
    Metadata {
        correlation_id: headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Uuid::parse_str(v).ok()),
        ..Metadata::default()
    }
}

fn account_id(id: &str) -> Result<String, ApiError> {
    Uuid::parse_str(id)
        .map(|id| id.to_string())
        .map_err(|_| ApiError::not_found(format!("there is no account {id}")))
}

/// Runs one account command and shapes the answer; counts outcomes per command.
async fn run(
    state: &CommandState,
    name: &'static str,
    id: &str,
    expected: Option<u64>,
    headers: &HeaderMap,
    command: AccountCommand,
) -> Result<(String, CommandAccepted), ApiError> {
    let result = state
        .accounts
        .execute(id, expected, &metadata(headers), &command)
        .await;
    let outcome = match &result {
        Ok(_) => "accepted",
        Err(CommandError::Rejected(_)) => "rejected",
        Err(CommandError::Conflict { .. }) => "conflict",
        Err(_) => "error",
    };
    metrics::counter!("eventline_commands_total", "command" => name, "outcome" => outcome)
        .increment(1);
    let done = result?;
    Ok((
        id.to_owned(),
        CommandAccepted {
            id: id.to_owned(),
            version: done.version,
            position: done.last_position.map(|p| p.event),
        },
    ))
}

/// Runs a command on an existing account named by the path, with the client's expected
/// version from `If-Match` or the body.
async fn on_account(
    state: &CommandState,
    name: &'static str,
    path_id: &str,
    headers: &HeaderMap,
    expected_in_body: Option<u64>,
    command: AccountCommand,
) -> Result<Response, ApiError> {
    let id = account_id(path_id)?;
    let expected = expected_version(headers, expected_in_body)?;
    let (id, body) = run(state, name, &id, expected, headers, command).await?;
    Ok(accepted(StatusCode::OK, &id, body, false))
}

fn accepted(status: StatusCode, id: &str, body: CommandAccepted, created: bool) -> Response {
    let mut response = (status, [(header::ETAG, etag(body.version))], Json(body)).into_response();
    if created && let Ok(location) = format!("/accounts/{id}").parse() {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Open an account.
#[utoipa::path(post, path = "/accounts", tag = "accounts", request_body = OpenAccountRequest,
    responses(
        (status = 201, description = "Opened; `Location` names the account", body = CommandAccepted),
        (status = 400, description = "Malformed body", body = Problem),
        (status = 422, description = "Invalid field", body = Problem),
    ))]
async fn open_account(
    State(state): State<CommandState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<OpenAccountRequest>,
) -> Result<Response, ApiError> {
    let id = Uuid::now_v7().to_string();
    let command = AccountCommand::Open(OpenAccount {
        holder: request.holder,
        account_type: request.account_type,
        opening_balance: request.opening_balance,
    });
    let (id, body) = run(&state, "open_account", &id, Some(0), &headers, command).await?;
    Ok(accepted(StatusCode::CREATED, &id, body, true))
}

/// Deposit funds.
#[utoipa::path(post, path = "/accounts/{id}/deposits", tag = "accounts", request_body = FundsRequest,
    params(("id" = String, Path, description = "Account id"),
           ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")),
    responses(
        (status = 200, description = "Deposited", body = CommandAccepted),
        (status = 400, description = "Malformed body", body = Problem),
        (status = 404, description = "No such account", body = Problem),
        (status = 409, description = "Stale expected version", body = Problem),
        (status = 422, description = "Invalid amount or closed account", body = Problem),
    ))]
async fn deposit_funds(
    State(state): State<CommandState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<FundsRequest>,
) -> Result<Response, ApiError> {
    let command = AccountCommand::Deposit(DepositFunds {
        amount: request.amount,
    });
    on_account(
        &state,
        "deposit_funds",
        &id,
        &headers,
        request.expected_version,
        command,
    )
    .await
}

/// Withdraw funds; never below a zero balance.
#[utoipa::path(post, path = "/accounts/{id}/withdrawals", tag = "accounts", request_body = FundsRequest,
    params(("id" = String, Path, description = "Account id"),
           ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")),
    responses(
        (status = 200, description = "Withdrawn", body = CommandAccepted),
        (status = 400, description = "Malformed body", body = Problem),
        (status = 404, description = "No such account", body = Problem),
        (status = 409, description = "Stale expected version", body = Problem),
        (status = 422, description = "Insufficient funds, invalid amount or closed account", body = Problem),
    ))]
async fn withdraw_funds(
    State(state): State<CommandState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<FundsRequest>,
) -> Result<Response, ApiError> {
    let command = AccountCommand::Withdraw(WithdrawFunds {
        amount: request.amount,
    });
    on_account(
        &state,
        "withdraw_funds",
        &id,
        &headers,
        request.expected_version,
        command,
    )
    .await
}

/// Close an account whose balance is zero.
#[utoipa::path(post, path = "/accounts/{id}/close", tag = "accounts", request_body = CloseRequest,
    params(("id" = String, Path, description = "Account id"),
           ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")),
    responses(
        (status = 200, description = "Closed", body = CommandAccepted),
        (status = 404, description = "No such account", body = Problem),
        (status = 409, description = "Stale expected version", body = Problem),
        (status = 422, description = "Balance not zero, or already closed", body = Problem),
    ))]
async fn close_account(
    State(state): State<CommandState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CloseRequest>,
) -> Result<Response, ApiError> {
    let command = AccountCommand::Close(CloseAccount);
    on_account(
        &state,
        "close_account",
        &id,
        &headers,
        request.expected_version,
        command,
    )
    .await
}
