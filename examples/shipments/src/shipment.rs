//! The `Shipment` aggregate: a parcel registered by a sender, cleared through customs when it
//! crosses a border, dispatched with a carrier, then delivered, or cancelled before dispatch.

use chrono::NaiveDate;
use eventline_core::{Aggregate, DomainError, DomainEvent, FieldError, Rejection};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The heaviest shipment accepted, in grams.
pub const MAX_WEIGHT_GRAMS: i64 = 1_000_000;
/// The largest declared value accepted.
pub const MAX_DECLARED_VALUE: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

/// Where a shipment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShipmentStatus {
    /// The stream does not exist yet.
    #[default]
    Unregistered,
    /// Registered; international shipments wait for customs.
    Registered,
    Dispatched,
    Delivered,
    Cancelled,
}

impl ShipmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ShipmentStatus::Unregistered => "unregistered",
            ShipmentStatus::Registered => "registered",
            ShipmentStatus::Dispatched => "dispatched",
            ShipmentStatus::Delivered => "delivered",
            ShipmentStatus::Cancelled => "cancelled",
        }
    }
}

/// One item in a shipment, as declared to customs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// What it is (1 to 200 characters).
    pub description: String,
    /// How many (1 to 10000).
    pub quantity: u32,
}

/// Register a new shipment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterShipment {
    pub sender: String,
    pub recipient: String,
    /// ISO 3166-1 alpha-2 code, e.g. `DE`.
    pub origin_country: String,
    /// ISO 3166-1 alpha-2 code; another country than the origin makes the shipment
    /// international, and it must clear customs before dispatch.
    pub destination_country: String,
    pub weight_grams: i64,
    /// The value declared to customs, in units of currency with at most two decimals.
    pub declared_value: Decimal,
    pub deliver_by: NaiveDate,
    pub items: Vec<Item>,
}

/// Record that customs cleared an international shipment, with the duty charged. Sent by the
/// [`crate::CustomsBroker`]; clearing a cleared shipment changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearCustoms {
    pub duty: Decimal,
    pub cleared_by: String,
}

/// Hand the shipment to a carrier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchShipment {
    pub carrier: String,
}

/// Record the delivery, signed for by someone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverShipment {
    pub signed_by: String,
}

/// Cancel a shipment that has not been dispatched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelShipment {
    pub reason: String,
}

/// The commands a [`Shipment`] accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShipmentCommand {
    Register(RegisterShipment),
    ClearCustoms(ClearCustoms),
    Dispatch(DispatchShipment),
    Deliver(DeliverShipment),
    Cancel(CancelShipment),
}

/// What happened to a shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ShipmentEvent {
    ShipmentRegistered {
        sender: String,
        recipient: String,
        origin_country: String,
        destination_country: String,
        international: bool,
        weight_grams: i64,
        #[serde(with = "rust_decimal::serde::str")]
        declared_value: Decimal,
        deliver_by: NaiveDate,
        items: Vec<Item>,
    },
    CustomsCleared {
        #[serde(with = "rust_decimal::serde::str")]
        duty: Decimal,
        cleared_by: String,
    },
    ShipmentDispatched {
        carrier: String,
    },
    ShipmentDelivered {
        signed_by: String,
    },
    ShipmentCancelled {
        reason: String,
    },
}

impl DomainEvent for ShipmentEvent {
    fn event_type(&self) -> &'static str {
        match self {
            ShipmentEvent::ShipmentRegistered { .. } => "ShipmentRegistered",
            ShipmentEvent::CustomsCleared { .. } => "CustomsCleared",
            ShipmentEvent::ShipmentDispatched { .. } => "ShipmentDispatched",
            ShipmentEvent::ShipmentDelivered { .. } => "ShipmentDelivered",
            ShipmentEvent::ShipmentCancelled { .. } => "ShipmentCancelled",
        }
    }
}

/// Why a shipment command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShipmentError {
    #[error("the shipment does not exist")]
    NotFound,
    #[error("the shipment is already registered")]
    AlreadyRegistered,
    #[error("an international shipment cannot be dispatched before it clears customs")]
    AwaitingCustoms,
    #[error("the shipment is domestic; it does not go through customs")]
    NotInternational,
    #[error("the shipment is {status}; it can no longer be {action}")]
    WrongStatus {
        status: &'static str,
        action: &'static str,
    },
    #[error("{field} {message}")]
    InvalidField {
        field: &'static str,
        message: &'static str,
    },
}

impl DomainError for ShipmentError {
    fn rejection(&self) -> Rejection {
        match self {
            ShipmentError::NotFound => Rejection::NotFound,
            ShipmentError::AlreadyRegistered => Rejection::AlreadyExists,
            ShipmentError::InvalidField { field, message } => {
                Rejection::Invalid(vec![FieldError::new(*field, *message)])
            }
            ShipmentError::AwaitingCustoms
            | ShipmentError::NotInternational
            | ShipmentError::WrongStatus { .. } => Rejection::RuleBroken,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ShipmentError::NotFound => "shipment_not_found",
            ShipmentError::AlreadyRegistered => "shipment_already_registered",
            ShipmentError::AwaitingCustoms => "awaiting_customs",
            ShipmentError::NotInternational => "not_international",
            ShipmentError::WrongStatus { .. } => "wrong_status",
            ShipmentError::InvalidField { .. } => "invalid_field",
        }
    }
}

/// A shipment: the state its events leave behind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    pub status: ShipmentStatus,
    pub international: bool,
    pub cleared: bool,
}

impl Shipment {
    /// The format of serialised shipment state in snapshots.
    pub const SNAPSHOT_FORMAT: u32 = 1;

    fn require(
        &self,
        allowed: &[ShipmentStatus],
        action: &'static str,
    ) -> Result<(), ShipmentError> {
        match self.status {
            ShipmentStatus::Unregistered => Err(ShipmentError::NotFound),
            status if allowed.contains(&status) => Ok(()),
            status => Err(ShipmentError::WrongStatus {
                status: status.as_str(),
                action,
            }),
        }
    }
}

fn invalid(field: &'static str, message: &'static str) -> ShipmentError {
    ShipmentError::InvalidField { field, message }
}

fn text(field: &'static str, value: &str, max: usize) -> Result<String, ShipmentError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(invalid(field, "is too long"));
    }
    Ok(value.to_owned())
}

fn country(field: &'static str, code: &str) -> Result<String, ShipmentError> {
    if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(code.to_owned())
    } else {
        Err(invalid(
            field,
            "must be an ISO 3166-1 alpha-2 code such as DE",
        ))
    }
}

fn register(command: &RegisterShipment) -> Result<ShipmentEvent, ShipmentError> {
    let origin_country = country("origin_country", &command.origin_country)?;
    let destination_country = country("destination_country", &command.destination_country)?;
    if !(1..=MAX_WEIGHT_GRAMS).contains(&command.weight_grams) {
        return Err(invalid("weight_grams", "must be between 1 and 1000000"));
    }
    if command.declared_value.is_sign_negative() || command.declared_value > MAX_DECLARED_VALUE {
        return Err(invalid(
            "declared_value",
            "must be between 0 and 1000000000",
        ));
    }
    if command.declared_value.scale() > 2 && command.declared_value.normalize().scale() > 2 {
        return Err(invalid("declared_value", "must have at most two decimals"));
    }
    if command.items.is_empty() || command.items.len() > 100 {
        return Err(invalid("items", "must list 1 to 100 items"));
    }
    for item in &command.items {
        text("items[].description", &item.description, 200)?;
        if !(1..=10_000).contains(&item.quantity) {
            return Err(invalid("items[].quantity", "must be between 1 and 10000"));
        }
    }
    Ok(ShipmentEvent::ShipmentRegistered {
        sender: text("sender", &command.sender, 200)?,
        recipient: text("recipient", &command.recipient, 200)?,
        international: origin_country != destination_country,
        origin_country,
        destination_country,
        weight_grams: command.weight_grams,
        declared_value: command.declared_value.round_dp(2),
        deliver_by: command.deliver_by,
        items: command.items.clone(),
    })
}

impl Aggregate for Shipment {
    const STREAM_TYPE: &'static str = "logistics.shipment";
    type Command = ShipmentCommand;
    type Event = ShipmentEvent;
    type Error = ShipmentError;

    fn decide(&self, command: &ShipmentCommand) -> Result<Vec<ShipmentEvent>, ShipmentError> {
        use ShipmentStatus::{Dispatched, Registered};
        match command {
            ShipmentCommand::Register(register_shipment) => {
                if self.status != ShipmentStatus::Unregistered {
                    return Err(ShipmentError::AlreadyRegistered);
                }
                Ok(vec![register(register_shipment)?])
            }
            ShipmentCommand::ClearCustoms(ClearCustoms { duty, cleared_by }) => {
                self.require(&[Registered], "cleared through customs")?;
                if !self.international {
                    return Err(ShipmentError::NotInternational);
                }
                if self.cleared {
                    return Ok(vec![]);
                }
                if duty.is_sign_negative() {
                    return Err(invalid("duty", "must not be negative"));
                }
                Ok(vec![ShipmentEvent::CustomsCleared {
                    duty: duty.round_dp(2),
                    cleared_by: cleared_by.clone(),
                }])
            }
            ShipmentCommand::Dispatch(DispatchShipment { carrier }) => {
                self.require(&[Registered], "dispatched")?;
                if self.international && !self.cleared {
                    return Err(ShipmentError::AwaitingCustoms);
                }
                Ok(vec![ShipmentEvent::ShipmentDispatched {
                    carrier: text("carrier", carrier, 100)?,
                }])
            }
            ShipmentCommand::Deliver(DeliverShipment { signed_by }) => {
                self.require(&[Dispatched], "delivered")?;
                Ok(vec![ShipmentEvent::ShipmentDelivered {
                    signed_by: text("signed_by", signed_by, 200)?,
                }])
            }
            ShipmentCommand::Cancel(CancelShipment { reason }) => {
                self.require(&[Registered], "cancelled")?;
                Ok(vec![ShipmentEvent::ShipmentCancelled {
                    reason: text("reason", reason, 500)?,
                }])
            }
        }
    }

    fn apply(&mut self, event: &ShipmentEvent) {
        match event {
            ShipmentEvent::ShipmentRegistered { international, .. } => {
                self.status = ShipmentStatus::Registered;
                self.international = *international;
            }
            ShipmentEvent::CustomsCleared { .. } => self.cleared = true,
            ShipmentEvent::ShipmentDispatched { .. } => self.status = ShipmentStatus::Dispatched,
            ShipmentEvent::ShipmentDelivered { .. } => self.status = ShipmentStatus::Delivered,
            ShipmentEvent::ShipmentCancelled { .. } => self.status = ShipmentStatus::Cancelled,
        }
    }
}

#[cfg(test)]
mod tests {
    use eventline_core::testing::AggregateTest;

    use super::*;

    fn registration(destination: &str) -> RegisterShipment {
        RegisterShipment {
            sender: "Acme GmbH".into(),
            recipient: "Ada Lovelace".into(),
            origin_country: "DE".into(),
            destination_country: destination.into(),
            weight_grams: 2_500,
            declared_value: Decimal::new(125_050, 2),
            deliver_by: NaiveDate::from_ymd_opt(2027, 1, 15).expect("a date"),
            items: vec![Item {
                description: "Analytical engine parts".into(),
                quantity: 3,
            }],
        }
    }

    fn registered(destination: &str) -> ShipmentEvent {
        register(&registration(destination)).expect("valid")
    }

    fn cleared() -> ShipmentEvent {
        ShipmentEvent::CustomsCleared {
            duty: Decimal::new(6_253, 2),
            cleared_by: "customs-broker".into(),
        }
    }

    fn dispatched() -> ShipmentEvent {
        ShipmentEvent::ShipmentDispatched {
            carrier: "DHL".into(),
        }
    }

    #[test]
    fn a_shipment_to_another_country_is_registered_as_international() {
        AggregateTest::<Shipment>::given_no_previous_events()
            .when(ShipmentCommand::Register(registration("GB")))
            .then_expect_events(vec![ShipmentEvent::ShipmentRegistered {
                sender: "Acme GmbH".into(),
                recipient: "Ada Lovelace".into(),
                origin_country: "DE".into(),
                destination_country: "GB".into(),
                international: true,
                weight_grams: 2_500,
                declared_value: Decimal::new(125_050, 2),
                deliver_by: NaiveDate::from_ymd_opt(2027, 1, 15).expect("a date"),
                items: registration("GB").items,
            }]);
    }

    #[test]
    fn an_international_shipment_cannot_be_dispatched_before_customs() {
        AggregateTest::<Shipment>::given([registered("GB")])
            .when(ShipmentCommand::Dispatch(DispatchShipment {
                carrier: "DHL".into(),
            }))
            .then_expect_error(ShipmentError::AwaitingCustoms);
    }

    #[test]
    fn a_cleared_international_shipment_is_dispatched() {
        AggregateTest::<Shipment>::given([registered("GB"), cleared()])
            .when(ShipmentCommand::Dispatch(DispatchShipment {
                carrier: " DHL ".into(),
            }))
            .then_expect_events(vec![dispatched()]);
    }

    #[test]
    fn a_domestic_shipment_is_dispatched_without_customs() {
        AggregateTest::<Shipment>::given([registered("DE")])
            .when(ShipmentCommand::Dispatch(DispatchShipment {
                carrier: "DHL".into(),
            }))
            .then_expect_events(vec![dispatched()]);
    }

    #[test]
    fn a_domestic_shipment_does_not_go_through_customs() {
        AggregateTest::<Shipment>::given([registered("DE")])
            .when(ShipmentCommand::ClearCustoms(ClearCustoms {
                duty: Decimal::ZERO,
                cleared_by: "customs-broker".into(),
            }))
            .then_expect_error(ShipmentError::NotInternational);
    }

    #[test]
    fn clearing_a_cleared_shipment_changes_nothing() {
        AggregateTest::<Shipment>::given([registered("GB"), cleared()])
            .when(ShipmentCommand::ClearCustoms(ClearCustoms {
                duty: Decimal::ONE,
                cleared_by: "customs-broker".into(),
            }))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_shipment_is_delivered_only_after_dispatch() {
        AggregateTest::<Shipment>::given([registered("DE")])
            .when(ShipmentCommand::Deliver(DeliverShipment {
                signed_by: "Ada".into(),
            }))
            .then_expect_error(ShipmentError::WrongStatus {
                status: "registered",
                action: "delivered",
            });
    }

    #[test]
    fn a_dispatched_shipment_cannot_be_cancelled() {
        AggregateTest::<Shipment>::given([registered("DE"), dispatched()])
            .when(ShipmentCommand::Cancel(CancelShipment {
                reason: "changed my mind".into(),
            }))
            .then_expect_error(ShipmentError::WrongStatus {
                status: "dispatched",
                action: "cancelled",
            });
    }

    #[test]
    fn commands_on_an_unknown_shipment_say_it_does_not_exist() {
        AggregateTest::<Shipment>::given_no_previous_events()
            .when(ShipmentCommand::Cancel(CancelShipment {
                reason: "x".into(),
            }))
            .then_expect_error(ShipmentError::NotFound);
    }

    #[test]
    fn registration_names_the_field_at_fault() {
        let mut heavy = registration("GB");
        heavy.weight_grams = MAX_WEIGHT_GRAMS + 1;
        AggregateTest::<Shipment>::given_no_previous_events()
            .when(ShipmentCommand::Register(heavy))
            .then_expect_error(invalid("weight_grams", "must be between 1 and 1000000"));
        let mut fractional = registration("GB");
        fractional.declared_value = Decimal::new(1_001, 3);
        AggregateTest::<Shipment>::given_no_previous_events()
            .when(ShipmentCommand::Register(fractional))
            .then_expect_error(invalid("declared_value", "must have at most two decimals"));
        let mut nowhere = registration("gb");
        nowhere.sender = "x".into();
        AggregateTest::<Shipment>::given_no_previous_events()
            .when(ShipmentCommand::Register(nowhere))
            .then_expect_error(invalid(
                "destination_country",
                "must be an ISO 3166-1 alpha-2 code such as DE",
            ));
    }

    #[test]
    fn a_shipment_is_registered_once() {
        AggregateTest::<Shipment>::given([registered("DE")])
            .when(ShipmentCommand::Register(registration("DE")))
            .then_expect_error(ShipmentError::AlreadyRegistered);
    }
}
