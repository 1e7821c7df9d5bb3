use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::aggregate::{Aggregate, DomainEvent, EventDecodeError};
use crate::envelope::{Metadata, NewEvent};
use crate::position::{Position, StreamVersion};
use crate::snapshot::{Snapshot, SnapshotStore};
use crate::store::{EventStore, StoreError};

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

/// Recently used aggregates with their versions, so that most commands need no read of the
/// store before their append. Only a cache: the append's expected-version check catches any
/// stale entry (another replica wrote), and the command is then decided again on fresh state.
#[derive(Debug)]
struct StateCache<A> {
    entries: Mutex<HashMap<String, (A, StreamVersion)>>,
    capacity: usize,
}

impl<A: Clone> StateCache<A> {
    fn get(&self, stream_id: &str) -> Option<(A, StreamVersion)> {
        self.lock().get(stream_id).cloned()
    }

    fn put(&self, stream_id: &str, state: A, version: StreamVersion) {
        if self.capacity == 0 || version == 0 {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(stream_id) {
            // Evict an arbitrary entry: cheap, and a miss only costs one read.
            if let Some(victim) = entries.keys().next().cloned() {
                entries.remove(&victim);
            }
        }
        entries.insert(stream_id.to_owned(), (state, version));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (A, StreamVersion)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How many aggregates a [`CommandHandler`] keeps in memory by default.
pub const DEFAULT_CACHED_AGGREGATES: usize = 10_000;

/// Runs commands against aggregates of type `A`: load from events, decide, append.
///
/// With an expected version from the client, a stale version is a [`CommandError::Conflict`].
/// Without one, the command is decided again on fresh state when it loses a race (up to
/// `retries` times): the client did not ask for a version, only for the rules to hold.
///
/// Recently used aggregates are kept in memory, so the usual command is one append: it is
/// decided on the cached state and appended with the cached version as the expected one. If
/// another writer got there first, the append fails, the state is refreshed from the store and
/// the command decided again; a rejection or a client version mismatch on cached state is
/// also re-checked on fresh state before it is reported. No answer is ever based on stale
/// state alone.
#[derive(Debug)]
pub struct CommandHandler<A> {
    store: Arc<dyn EventStore>,
    retries: u32,
    cache: Arc<StateCache<A>>,
    snapshots: Option<Snapshots<A>>,
}

/// How a handler takes and uses snapshots (see [`CommandHandler::with_snapshots`]).
#[derive(Debug)]
struct Snapshots<A> {
    store: Arc<dyn SnapshotStore>,
    every: u64,
    format: u32,
    encode: fn(&A) -> Option<serde_json::Value>,
    decode: fn(serde_json::Value) -> Option<A>,
}

impl<A> Clone for Snapshots<A> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            every: self.every,
            format: self.format,
            encode: self.encode,
            decode: self.decode,
        }
    }
}

impl<A> Clone for CommandHandler<A> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            retries: self.retries,
            cache: Arc::clone(&self.cache),
            snapshots: self.snapshots.clone(),
        }
    }
}

impl<A: Aggregate + serde::Serialize + serde::de::DeserializeOwned> CommandHandler<A> {
    /// Saves the aggregate's state to `store` each time its stream passes a multiple of
    /// `every` versions, and starts loads from the newest snapshot instead of the first
    /// event. `format` names the shape of the serialised state: change it when the state type
    /// changes, and older snapshots are ignored. Snapshots are only a cache: a missing,
    /// foreign or unreadable one means the stream is read from the start.
    #[must_use]
    pub fn with_snapshots(
        mut self,
        store: Arc<dyn SnapshotStore>,
        every: u64,
        format: u32,
    ) -> Self {
        self.snapshots = Some(Snapshots {
            store,
            every: every.max(1),
            format,
            encode: |state| serde_json::to_value(state).ok(),
            decode: |value| serde_json::from_value(value).ok(),
        });
        self
    }
}

impl<A: Aggregate> CommandHandler<A> {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            store,
            retries: DEFAULT_CONFLICT_RETRIES,
            cache: Arc::new(StateCache {
                entries: Mutex::new(HashMap::new()),
                capacity: DEFAULT_CACHED_AGGREGATES,
            }),
            snapshots: None,
        }
    }

    #[must_use]
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Keep up to `capacity` aggregates in memory (0: always read the store).
    #[must_use]
    pub fn with_cache_capacity(mut self, capacity: usize) -> Self {
        self.cache = Arc::new(StateCache {
            entries: Mutex::new(HashMap::new()),
            capacity,
        });
        self
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The aggregate as the store has it now, with its version: the cached state (if any)
    /// brought up to date with the events appended since.
    pub async fn load(
        &self,
        stream_id: &str,
    ) -> Result<(A, StreamVersion), CommandError<A::Error>> {
        let (mut state, mut version) = match self.cache.get(stream_id) {
            Some(cached) => cached,
            None => self.state_in_snapshot(stream_id).await.unwrap_or_default(),
        };
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
                self.cache.put(stream_id, state.clone(), version);
                return Ok((state, version));
            }
        }
    }

    /// The state in the stream's newest usable snapshot, if snapshots are on.
    async fn state_in_snapshot(&self, stream_id: &str) -> Option<(A, StreamVersion)> {
        let snapshots = self.snapshots.as_ref()?;
        let snapshot = match snapshots.store.load_snapshot(stream_id).await {
            Ok(found) => found?,
            Err(error) => {
                tracing::warn!(stream_id, %error, "reading a snapshot failed; reading the stream");
                return None;
            }
        };
        if snapshot.format != snapshots.format {
            return None;
        }
        let state = (snapshots.decode)(snapshot.state);
        if state.is_none() {
            tracing::warn!(stream_id, "unreadable snapshot ignored; reading the stream");
        }
        Some((state?, snapshot.version))
    }

    /// Saves a snapshot when the stream went from `before` past a multiple of `every`.
    async fn maybe_snapshot(
        &self,
        stream_id: &str,
        before: StreamVersion,
        after: StreamVersion,
        state: &A,
    ) {
        let Some(snapshots) = &self.snapshots else {
            return;
        };
        if after / snapshots.every == before / snapshots.every {
            return;
        }
        let Some(encoded) = (snapshots.encode)(state) else {
            return;
        };
        let snapshot = Snapshot {
            stream_id: stream_id.to_owned(),
            version: after,
            format: snapshots.format,
            state: encoded,
        };
        if let Err(error) = snapshots.store.save_snapshot(&snapshot).await {
            tracing::warn!(stream_id, %error, "saving a snapshot failed (it is only a cache)");
        }
    }

    /// Decides the command on the aggregate's state and appends the resulting events
    /// atomically, at the version that state was read at.
    pub async fn execute(
        &self,
        stream_id: &str,
        expected: Option<StreamVersion>,
        metadata: &Metadata,
        command: &A::Command,
    ) -> Result<CommandOutcome, CommandError<A::Error>> {
        let (mut current, mut fresh) = match self.cache.get(stream_id) {
            Some(cached) => (cached, false),
            None => (self.load(stream_id).await?, true),
        };
        let mut attempt = 0;
        loop {
            let (state, version) = current;
            if let Some(expected) = expected
                && expected != version
            {
                if !fresh {
                    current = self.load(stream_id).await?;
                    fresh = true;
                    continue;
                }
                return Err(CommandError::Conflict {
                    stream_id: stream_id.to_owned(),
                    expected,
                    actual: version,
                });
            }
            let events = match state.decide(command) {
                Ok(events) => events,
                Err(_) if !fresh => {
                    current = self.load(stream_id).await?;
                    fresh = true;
                    continue;
                }
                Err(rejection) => return Err(CommandError::Rejected(rejection)),
            };
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
                    let mut next = state;
                    for event in &events {
                        next.apply(event);
                    }
                    self.maybe_snapshot(stream_id, version, outcome.version, &next)
                        .await;
                    self.cache.put(stream_id, next, outcome.version);
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
                    current = self.load(&stream_id).await?;
                    fresh = true;
                }
                Err(other) => return Err(CommandError::Store(other)),
            }
        }
    }
}
