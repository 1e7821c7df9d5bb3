use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use eventline_core::{CommandHandler, Metadata};
use eventline_http::{
    ApiError, ApiJson, Caller, CommandAccepted, Problem, accepted, command_metadata,
    expected_version, run_command,
};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::account::{
    Account, AccountCommand, AccountType, CloseAccount, DepositFunds, OpenAccount, WithdrawFunds,
};

/// What the command routes need: a command handler for accounts over the event store (with
/// snapshots, if the service takes them).
pub type CommandState = CommandHandler<Account>;

/// Body of `POST /accounts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenAccountRequest {
    /// The account holder's name (1 to 200 characters, not blank; surrounding spaces are
    /// trimmed).
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub holder: String,
    /// `checking` (the default) or `savings`.
    #[serde(default = "default_account_type")]
    pub account_type: AccountType,
    /// In minor units (cents), 0 to 10^15; 0 when left out.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    pub opening_balance: i64,
}

fn default_account_type() -> AccountType {
    AccountType::Checking
}

/// Body of a deposit or withdrawal.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FundsRequest {
    /// In minor units (cents), 1 to 10^15. A withdrawal above the balance, or any command on
    /// a closed account, is a 422.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64)]
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

/// The command routes of the bank domain.
pub fn command_routes(state: CommandState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(open_account))
        .routes(routes!(deposit_funds))
        .routes(routes!(withdraw_funds))
        .routes(routes!(close_account))
        .with_state(state)
}

fn account_id(id: &str) -> Result<String, ApiError> {
    Uuid::parse_str(id)
        .map(|id| id.to_string())
        .map_err(|_| ApiError::not_found(format!("there is no account {id}")))
}

/// Runs one account command and shapes the answer.
async fn run(
    state: &CommandState,
    name: &'static str,
    id: &str,
    expected: Option<u64>,
    metadata: &Metadata,
    command: AccountCommand,
) -> Result<CommandAccepted, ApiError> {
    let done = run_command(
        state,
        name,
        id,
        expected,
        metadata,
        &command,
        ApiError::from,
    )
    .await?;
    Ok(CommandAccepted::new(&done))
}

/// Runs a command on an existing account named by the path, with the client's expected
/// version from `If-Match` or the body.
async fn on_account(
    state: &CommandState,
    name: &'static str,
    path_id: &str,
    (headers, caller): (&HeaderMap, Option<&Caller>),
    expected_in_body: Option<u64>,
    command: AccountCommand,
) -> Result<Response, ApiError> {
    let id = account_id(path_id)?;
    let expected = expected_version(headers, expected_in_body)?;
    let metadata = command_metadata(headers, caller);
    let body = run(state, name, &id, expected, &metadata, command).await?;
    Ok(accepted(StatusCode::OK, body.version, None, body))
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
    caller: Option<Caller>,
    ApiJson(request): ApiJson<OpenAccountRequest>,
) -> Result<Response, ApiError> {
    let id = Uuid::now_v7().to_string();
    let command = AccountCommand::Open(OpenAccount {
        holder: request.holder,
        account_type: request.account_type,
        opening_balance: request.opening_balance,
    });
    let metadata = command_metadata(&headers, caller.as_ref());
    let body = run(&state, "open_account", &id, Some(0), &metadata, command).await?;
    let location = format!("/accounts/{id}");
    Ok(accepted(
        StatusCode::CREATED,
        body.version,
        Some(location),
        body,
    ))
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
    caller: Option<Caller>,
    ApiJson(request): ApiJson<FundsRequest>,
) -> Result<Response, ApiError> {
    let command = AccountCommand::Deposit(DepositFunds {
        amount: request.amount,
    });
    on_account(
        &state,
        "deposit_funds",
        &id,
        (&headers, caller.as_ref()),
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
    caller: Option<Caller>,
    ApiJson(request): ApiJson<FundsRequest>,
) -> Result<Response, ApiError> {
    let command = AccountCommand::Withdraw(WithdrawFunds {
        amount: request.amount,
    });
    on_account(
        &state,
        "withdraw_funds",
        &id,
        (&headers, caller.as_ref()),
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
    caller: Option<Caller>,
    ApiJson(request): ApiJson<CloseRequest>,
) -> Result<Response, ApiError> {
    let command = AccountCommand::Close(CloseAccount);
    on_account(
        &state,
        "close_account",
        &id,
        (&headers, caller.as_ref()),
        request.expected_version,
        command,
    )
    .await
}
