//! Where an event stands: its stream's version and its place in the store-wide order.

use serde::{Deserialize, Serialize};

/// The version of a stream: the number of events in it. A stream that does not exist is at 0;
/// its first event has version 1.
pub type StreamVersion = u64;

/// Where an event stands in the store-wide order that [`crate::EventStore::read_all`] follows.
///
/// `event` is the event's global number: unique, shown to users, but *not* necessarily in
/// commit order, because databases hand numbers out before commit. `commit` orders the
/// commits: the writing transaction's id in PostgreSQL, the event number itself in stores that
/// number events in commit order (SQLite's single writer, MongoDB's reserved positions).
/// Positions compare as `(commit, event)`; that is the read order, so "after the last
/// position I applied" never skips an event that committed late.
///
/// Numbers may have holes (an aborted append can consume some), so a reader never assumes
/// `n + 1` follows `n`: it always asks for everything after the last position it applied.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Position {
    pub commit: u64,
    pub event: u64,
}

impl Position {
    /// Before the first event.
    pub const START: Position = Position {
        commit: 0,
        event: 0,
    };

    /// The position of event `n` in a store that numbers events in commit order.
    pub const fn sequential(n: u64) -> Self {
        Position {
            commit: n,
            event: n,
        }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.commit == self.event {
            write!(f, "{}", self.event)
        } else {
            write!(f, "{}@{}", self.event, self.commit)
        }
    }
}
