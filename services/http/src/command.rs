//! Running a command from an HTTP handler, and the answer to an accepted one.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use eventline_core::{Aggregate, CommandError, CommandHandler, CommandOutcome, Metadata};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::etag;

/// Runs `command` on stream `id` and counts its outcome in `eventline_commands_total`
/// (by command `name` and outcome: accepted, rejected, conflict, error). Failures become
/// `ApiError`s through `to_api` (`ApiError::from`, or a domain's own mapping), except a stream
/// of another aggregate type (an id of a post sent to an account route): that is a 404, as no
/// such aggregate exists, not an undecodable stream.
pub async fn run_command<A: Aggregate>(
    handler: &CommandHandler<A>,
    name: &'static str,
    id: &str,
    expected: Option<u64>,
    metadata: &Metadata,
    command: &A::Command,
    to_api: impl FnOnce(CommandError<A::Error>) -> ApiError,
) -> Result<CommandOutcome, ApiError> {
    let result = handler.execute(id, expected, metadata, command).await;
    let outcome = match &result {
        Ok(_) => "accepted",
        Err(CommandError::Rejected(_)) => "rejected",
        Err(CommandError::Conflict { .. }) => "conflict",
        Err(_) => "error",
    };
    metrics::counter!("eventline_commands_total", "command" => name, "outcome" => outcome)
        .increment(1);
    match result {
        Err(CommandError::Undecodable { stream_id, .. })
            if other_stream_type::<A>(handler, &stream_id).await =>
        {
            Err(ApiError::not_found(format!(
                "there is no {} {stream_id}",
                A::STREAM_TYPE
            )))
        }
        other => other.map_err(to_api),
    }
}

/// Whether stream `id` holds another aggregate type than `A`.
async fn other_stream_type<A: Aggregate>(handler: &CommandHandler<A>, id: &str) -> bool {
    match handler.store().read_stream(id, 0, 1).await {
        Ok(events) => events
            .first()
            .is_some_and(|e| e.stream_type != A::STREAM_TYPE),
        Err(_) => false,
    }
}

/// The answer to an accepted command.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CommandAccepted {
    /// The id of the stream (account, post, order) the command went to.
    pub id: String,
    /// The stream's version after the command; send it back as `If-Match` to make sure
    /// nothing changed in between.
    pub version: u64,
    /// The global position of the last event written (none when the command changed nothing).
    pub position: Option<u64>,
}

impl CommandAccepted {
    pub fn new(outcome: &CommandOutcome) -> Self {
        Self {
            id: outcome.stream_id.clone(),
            version: outcome.version,
            position: outcome.last_position.map(|p| p.event),
        }
    }
}

/// `body` as JSON with `status`, the version as `ETag`, and `Location` when one is given
/// (for 201 Created).
pub fn accepted<T: Serialize>(
    status: StatusCode,
    version: u64,
    location: Option<String>,
    body: T,
) -> Response {
    let mut response = (status, [(header::ETAG, etag(version))], Json(body)).into_response();
    if let Some(location) = location.and_then(|l| l.parse().ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}
