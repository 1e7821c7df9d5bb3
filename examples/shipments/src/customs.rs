//! The customs broker: clears every international shipment through customs as soon as it is
//! registered, charging duty on what it is declared to be worth.

use std::sync::Arc;

use async_trait::async_trait;
use eventline_core::{Aggregate, CommandHandler, DomainEvent, Envelope, EventStore, Metadata};
use eventline_processor::{ProcessManager, ReactionError};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::shipment::{ClearCustoms, Shipment, ShipmentCommand, ShipmentEvent};

/// Declared values up to this amount pass duty-free.
pub const DUTY_FREE_UP_TO: Decimal = Decimal::from_parts(150, 0, 0, false, 0);
/// The duty rate on the whole declared value above [`DUTY_FREE_UP_TO`]: 5 %.
pub const DUTY_RATE: Decimal = Decimal::from_parts(5, 0, 0, false, 2);

/// The duty on a shipment declared to be worth `declared_value`, rounded to cents (half a
/// cent up).
pub fn duty(declared_value: Decimal) -> Decimal {
    if declared_value <= DUTY_FREE_UP_TO {
        Decimal::ZERO
    } else {
        (declared_value * DUTY_RATE)
            .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
    }
}

/// Sends `ClearCustoms` for every international `ShipmentRegistered`.
///
/// Exactly once in effect: a cleared shipment decides `ClearCustoms` as a no-op, and the
/// append's expected version settles races, so a redelivered event appends nothing.
#[derive(Debug, Clone)]
pub struct CustomsBroker {
    shipments: CommandHandler<Shipment>,
}

impl CustomsBroker {
    /// The broker's name: its checkpoint, lease and metrics label, and who cleared the
    /// shipments it clears.
    pub const NAME: &'static str = "customs-broker";

    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            shipments: CommandHandler::new(store),
        }
    }
}

#[async_trait]
impl ProcessManager for CustomsBroker {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn stream_types(&self) -> &'static [&'static str] {
        &[Shipment::STREAM_TYPE]
    }

    async fn react(&self, event: &Envelope) -> Result<(), ReactionError> {
        let decoded = ShipmentEvent::decode(event)
            .map_err(|error| ReactionError::Permanent(format!("undecodable event: {error}")))?;
        let ShipmentEvent::ShipmentRegistered {
            international: true,
            declared_value,
            ..
        } = decoded
        else {
            return Ok(());
        };
        let metadata = Metadata {
            correlation_id: event.metadata.correlation_id,
            user: Some(format!("system:{}", Self::NAME)),
            ..Metadata::default()
        };
        let command = ShipmentCommand::ClearCustoms(ClearCustoms {
            duty: duty(declared_value),
            cleared_by: Self::NAME.to_owned(),
        });
        self.shipments
            .execute(&event.stream_id, None, &metadata, &command)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duty_is_charged_on_the_whole_value_above_the_threshold() {
        assert_eq!(duty(Decimal::new(15_000, 2)), Decimal::ZERO);
        assert_eq!(duty(Decimal::new(15_001, 2)), Decimal::new(750, 2));
        assert_eq!(duty(Decimal::new(125_050, 2)), Decimal::new(6_253, 2));
    }
}
