//! Given / when / then tests for aggregates, in the style of cqrs-es's `TestFramework`.
//!
//! ```ignore
//! AggregateTest::<Account>::given(vec![opened(100)])
//!     .when(WithdrawFunds { amount: 150 })
//!     .then_expect_error(AccountError::InsufficientFunds { balance: 100, requested: 150 });
//! ```

use std::fmt::Debug;

use crate::aggregate::{Aggregate, DomainEvent};

/// An aggregate rebuilt from past events, about to receive a command.
#[derive(Debug)]
pub struct AggregateTest<A> {
    state: A,
}

impl<A: Aggregate> AggregateTest<A> {
    /// No events yet: the stream does not exist.
    pub fn given_no_previous_events() -> Self {
        Self {
            state: A::default(),
        }
    }

    /// The aggregate as these events left it. Each event also goes through its stored form
    /// (payload and decode), so a serialisation mismatch fails the test too.
    pub fn given(events: impl IntoIterator<Item = A::Event>) -> Self {
        let mut state = A::default();
        for event in events {
            let payload = event.to_payload().expect("event serialises");
            let kind = event.event_type();
            let decoded = A::Event::decode_parts(kind, A::Event::schema_version(kind), payload)
                .expect("event round-trips through its stored form");
            state.apply(&decoded);
        }
        Self { state }
    }

    pub fn when(self, command: A::Command) -> AggregateOutcome<A> {
        AggregateOutcome {
            result: self.state.decide(&command),
        }
    }
}

/// What the aggregate decided.
#[derive(Debug)]
pub struct AggregateOutcome<A: Aggregate> {
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> AggregateOutcome<A>
where
    A::Event: PartialEq + Debug,
    A::Error: PartialEq,
{
    #[track_caller]
    pub fn then_expect_events(self, expected: Vec<A::Event>) {
        match self.result {
            Ok(events) => assert_eq!(events, expected),
            Err(err) => panic!("expected events {expected:?}, got error {err:?}"),
        }
    }

    #[track_caller]
    pub fn then_expect_error(self, expected: A::Error) {
        match self.result {
            Ok(events) => panic!("expected error {expected:?}, got events {events:?}"),
            Err(err) => assert_eq!(err, expected),
        }
    }
}
