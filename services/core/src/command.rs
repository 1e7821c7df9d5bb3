use std::marker::PhantomData;
use std::sync::Arc;

use crate::aggregate::{Aggregate, DomainEvent, EventDecodeError};
use crate::envelope::{Metadata, NewEvent};
use crate::store::{EventStore, Position, StoreError, StreamVersion};

/// How often a command without an explicit expected version is decided again on fresh state
/// after losing a race, before the conflict is reported. Every lost race means another
/// command on the stream succeeded, so retries always make progress; the bound is high enough
/// that dozens of clients racing on one stream all get a real answer (success or a rule).
pub const DEFAULT_CONFLICT_RETRIES: u32 = 64;

/// How many events one read of a stream fetches while loading an aggregate.
const LOAD_PAGE: usize = 1_000;

/// What a successful command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutcome {
    pub stream_id: String,
    /// The stream version after the command (unchanged when it decided nothing).
    pub version: StreamVersion,
    /// How many events the command appended.
    pub appended: usize,
    /// The global position of the last appended event, if any.
    pub last_position: Option<Position>,
}

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error + 'static> {
    /// The aggregate's rules said no.
    #[error(transparent)]
    Rejected(E),
    /// The stream moved on: the client's expected version is stale, or every retry lost a race.
    #[error("stream {stream_id} is at version {actual}, not the expected {expected}")]
    Conflict {
        stream_id: String,
        expected: StreamVersion,
        actual: StreamVersion,
    },
    /// A stored event of the stream cannot be decoded by this code.
    #[error("event {version} of stream {stream_id} cannot be decoded: {source}")]
    Undecodable {
        stream_id: String,
        version: StreamVersion,
        #[source]
        source: EventDecodeError,
    },
    #[error(transparent)]
    Store(StoreError),
}

/// Runs commands against aggregates of type `A`: load from events, decide, append.
///
/// With an expected version from the client, a stale version is a [`CommandError::Conflict`]
/// at once. Without one, the command is decided again on fresh state when it loses a race
/// (up to `retries` times): the client did not ask for a version, only for the rules to hold.
#[derive(Debug)]
pub struct CommandHandler<A> {
    store: Arc<dyn EventStore>,
    retries: u32,
    aggregate: PhantomData<fn() -> A>,
}

impl<A> Clone for CommandHandler<A> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            retries: self.retries,
            aggregate: PhantomData,
        }
    }
}

impl<A: Aggregate> CommandHandler<A> {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            store,
            retries: DEFAULT_CONFLICT_RETRIES,
            aggregate: PhantomData,
        }
    }

    #[must_use]
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Rebuilds the aggregate from all events of its stream; returns it with its version.
    pub async fn load(
        &self,
        stream_id: &str,
    ) -> Result<(A, StreamVersion), CommandError<A::Error>> {
        let mut state = A::default();
        let mut version = 0;
        loop {
            let page = self
                .store
                .read_stream(stream_id, version, LOAD_PAGE)
                .await
                .map_err(CommandError::Store)?;
            let full = page.len() == LOAD_PAGE;
            for envelope in &page {
                let event =
                    A::Event::decode(envelope).map_err(|source| CommandError::Undecodable {
                        stream_id: stream_id.to_owned(),
                        version: envelope.version,
                        source,
                    })?;
                state.apply(&event);
                version = envelope.version;
            }
            if !full {
                return Ok((state, version));
            }
        }
    }

    /// Loads the aggregate, decides, and appends the resulting events atomically.
    pub async fn execute(
        &self,
        stream_id: &str,
        expected: Option<StreamVersion>,
        metadata: &Metadata,
        command: &A::Command,
    ) -> Result<CommandOutcome, CommandError<A::Error>> {
        let mut attempt = 0;
        loop {
            let (state, version) = self.load(stream_id).await?;
            if let Some(expected) = expected
                && expected != version
            {
                return Err(CommandError::Conflict {
                    stream_id: stream_id.to_owned(),
                    expected,
                    actual: version,
                });
            }
            let events = state.decide(command).map_err(CommandError::Rejected)?;
            if events.is_empty() {
                return Ok(CommandOutcome {
                    stream_id: stream_id.to_owned(),
                    version,
                    appended: 0,
                    last_position: None,
                });
            }
            let appended = events.len();
            let new_events = events
                .iter()
                .map(|event| {
                    Ok(NewEvent {
                        event_type: event.event_type().to_owned(),
                        schema_version: A::Event::schema_version(event.event_type()),
                        payload: event.to_payload()?,
                        metadata: metadata.clone(),
                    })
                })
                .collect::<Result<Vec<_>, EventDecodeError>>()
                .map_err(|source| CommandError::Undecodable {
                    stream_id: stream_id.to_owned(),
                    version: version + 1,
                    source,
                })?;
            match self
                .store
                .append(stream_id, A::STREAM_TYPE, version, new_events)
                .await
            {
                Ok(outcome) => {
                    return Ok(CommandOutcome {
                        stream_id: stream_id.to_owned(),
                        version: outcome.version,
                        appended,
                        last_position: Some(outcome.last_position),
                    });
                }
                Err(StoreError::Conflict {
                    stream_id,
                    expected: lost,
                    actual,
                }) => {
                    if expected.is_some() || attempt >= self.retries {
                        return Err(CommandError::Conflict {
                            stream_id,
                            expected: expected.unwrap_or(lost),
                            actual,
                        });
                    }
                    attempt += 1;
                    tracing::debug!(stream_id, attempt, "lost an append race; deciding again");
                }
                Err(other) => return Err(CommandError::Store(other)),
            }
        }
    }
}
