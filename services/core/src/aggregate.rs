use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::envelope::Envelope;
use crate::upcast::{UpcastError, UpcasterChain};

/// A consistency boundary whose state is the fold of its own events.
///
/// `decide` and `apply` are plain functions with no I/O, so business rules are tested with
/// [`crate::testing::AggregateTest`] and replayed under any store. The state starts as
/// `Default` (the stream does not exist yet) and must be rebuilt only by `apply`. It is
/// `Clone` because command handlers keep recently used states in memory.
pub trait Aggregate: Default + Clone + Send + Sync + 'static {
    /// The stream type this aggregate's streams are stored and published under
    /// (e.g. `bank.account`, which becomes the Kafka topic `eventline.bank.account`).
    const STREAM_TYPE: &'static str;
    type Command: Send + Sync;
    type Event: DomainEvent;
    type Error: DomainError;

    /// Checks the business rules against the current state and says what happened.
    /// Returning no events is a successful no-op.
    fn decide(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Moves the state forward by one event. Must not fail: events are facts.
    fn apply(&mut self, event: &Self::Event);
}

/// A domain event type, stored as `event_type` + `schema_version` + JSON payload.
///
/// The serde representation must be adjacently tagged,
/// `#[serde(tag = "type", content = "data")]`, with one variant per event type named as the
/// event type; the payload stored is the `data` part, so renaming the Rust enum changes nothing
/// in the store.
pub trait DomainEvent: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The stored name of this event, in the past tense (`FundsDeposited`).
    fn event_type(&self) -> &'static str;

    /// The schema version current code writes for `event_type`. Stored events with a lower
    /// version are upgraded by [`Self::upcasters`] before decoding.
    fn schema_version(_event_type: &str) -> u32 {
        1
    }

    /// The upcasters that bring old stored versions to the current one.
    fn upcasters() -> &'static UpcasterChain {
        UpcasterChain::empty()
    }

    /// The stored JSON payload of this event.
    fn to_payload(&self) -> Result<serde_json::Value, EventDecodeError> {
        let mut tagged = serde_json::to_value(self).map_err(EventDecodeError::Payload)?;
        Ok(tagged
            .get_mut("data")
            .map(serde_json::Value::take)
            .unwrap_or(serde_json::Value::Null))
    }

    /// Decodes a stored event, upcasting it to the current schema version first.
    fn decode(envelope: &Envelope) -> Result<Self, EventDecodeError> {
        Self::decode_parts(
            &envelope.event_type,
            envelope.schema_version,
            envelope.payload.clone(),
        )
    }

    /// Decodes an event from its stored parts, upcasting it first.
    fn decode_parts(
        event_type: &str,
        schema_version: u32,
        payload: serde_json::Value,
    ) -> Result<Self, EventDecodeError> {
        let current = Self::schema_version(event_type);
        if schema_version > current {
            return Err(EventDecodeError::NewerSchema {
                event_type: event_type.to_owned(),
                stored: schema_version,
                current,
            });
        }
        let (reached, payload) = Self::upcasters().upcast(event_type, schema_version, payload)?;
        if reached != current {
            return Err(EventDecodeError::Upcast(UpcastError::NoPath {
                event_type: event_type.to_owned(),
                from: reached,
                to: current,
            }));
        }
        let tagged = serde_json::json!({ "type": event_type, "data": payload });
        serde_json::from_value(tagged).map_err(EventDecodeError::Payload)
    }
}

/// Why a stored event could not be turned back into a domain event.
#[derive(Debug, thiserror::Error)]
pub enum EventDecodeError {
    #[error("event {event_type} has schema version {stored}, newer than this code's {current}")]
    NewerSchema {
        event_type: String,
        stored: u32,
        current: u32,
    },
    #[error(transparent)]
    Upcast(#[from] UpcastError),
    #[error("payload does not match the event type: {0}")]
    Payload(#[source] serde_json::Error),
}

/// What kind of "no" a domain error is; the HTTP layer maps each kind to one status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The command addresses a stream that does not exist (HTTP 404).
    NotFound,
    /// The command would create something that already exists (HTTP 409).
    AlreadyExists,
    /// A command field has an invalid value (HTTP 422, with the fields named).
    Invalid(Vec<FieldError>),
    /// A business rule forbids the command in the current state (HTTP 422).
    RuleBroken,
}

/// One invalid field of a command or request, as reported to the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A typed domain error: each variant is one rule, never a free-form string.
pub trait DomainError: std::error::Error + Send + Sync + 'static {
    /// The kind of rejection, which decides the HTTP status.
    fn rejection(&self) -> Rejection;
    /// A stable machine-readable code (`insufficient_funds`), used as the problem type.
    fn code(&self) -> &'static str;
}
