use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::position::{Position, StreamVersion};

/// Metadata recorded with every event: who caused it and which request it belongs to.
///
/// `correlation_id` ties together everything one request caused; `causation_id` names the
/// message (command or event) that directly caused this event. Both survive replays and Kafka.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// The acting user, when the command was authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The W3C `traceparent` of the span that recorded the event (the command's request),
    /// so that whoever handles the event later (relay, projector, processor) joins its trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// An event about to be appended: the store assigns version, position and time.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_type: String,
    pub schema_version: u32,
    pub payload: serde_json::Value,
    pub metadata: Metadata,
}

/// One stored event.
///
/// `version` numbers the events of one stream from 1 without gaps; `position` orders all events
/// of the store. Readers that tail the store by position see every event exactly once, in order
/// (each [`crate::EventStore`] documents how it keeps that promise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub position: Position,
    pub stream_id: String,
    pub stream_type: String,
    pub version: StreamVersion,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: serde_json::Value,
    pub metadata: Metadata,
    pub recorded_at: DateTime<Utc>,
}
