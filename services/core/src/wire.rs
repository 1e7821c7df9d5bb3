//! How events look outside the store, on Kafka: one topic per stream type, keyed by stream
//! id, the [`Envelope`] as JSON in the value, and a few headers for tools that do not parse it.
//!
//! The relay writes this format and the Kafka projector reads it; both use these names.

use crate::Envelope;

/// Header: the event type, e.g. `FundsDeposited`.
pub const HEADER_EVENT_TYPE: &str = "event_type";
/// Header: the event's schema version as stored (before upcasting).
pub const HEADER_SCHEMA_VERSION: &str = "schema_version";
/// Header: the event's global position in the store (its event number).
pub const HEADER_POSITION: &str = "position";
/// Header: the correlation id of the command that caused the event, when it had one.
pub const HEADER_CORRELATION_ID: &str = "correlation_id";
/// Header: the W3C trace context the event carries on (its metadata's `traceparent`, or the
/// relay's span within that trace), when it has one.
pub const HEADER_TRACEPARENT: &str = "traceparent";

/// The topic events of `stream_type` are published to: `PREFIX.STREAM_TYPE`.
pub fn topic_name(prefix: &str, stream_type: &str) -> String {
    format!("{prefix}.{stream_type}")
}

/// The message value for `event`.
pub fn encode(event: &Envelope) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(event)
}

/// The event in a message value.
pub fn decode(payload: &[u8]) -> Result<Envelope, serde_json::Error> {
    serde_json::from_slice(payload)
}
