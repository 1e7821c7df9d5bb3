//! Who sent a request: the authenticated caller, and the event metadata a command records.

use std::convert::Infallible;

use axum::extract::OptionalFromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use eventline_core::Metadata;
use uuid::Uuid;

/// The authenticated caller of a request.
///
/// The authentication layer (`eventline-auth`) verifies the bearer token and puts the caller
/// into the request's extensions before any handler runs; handlers take `Option<Caller>`,
/// which is `None` only when authentication is turned off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's subject (`sub`): the acting user recorded in event metadata.
    pub subject: String,
    /// The scopes the token grants.
    pub scopes: Vec<String>,
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Caller>().cloned())
    }
}

/// The metadata a command's events record: the request id as correlation id (the service
/// gives every request a UUID one), the authenticated caller as the acting user, and the
/// request's trace context.
///
/// The trace context is the request span's when this service exports traces; otherwise the
/// caller's `traceparent` header as it came (when valid), so that services further down that
/// do export still join the caller's trace.
pub fn command_metadata(headers: &HeaderMap, caller: Option<&Caller>) -> Metadata {
    let traceparent = eventline_trace_context::of(&tracing::Span::current()).or_else(|| {
        headers
            .get(eventline_trace_context::TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .filter(|v| eventline_trace_context::parse(v).is_some())
            .map(str::to_owned)
    });
    Metadata {
        correlation_id: headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Uuid::parse_str(v).ok()),
        user: caller.map(|c| c.subject.clone()),
        traceparent,
        ..Metadata::default()
    }
}
