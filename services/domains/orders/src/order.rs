use eventline_core::{Aggregate, DomainError, DomainEvent, FieldError, Rejection};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The largest unit price or order total accepted, in minor units.
pub const MAX_PRICE: i64 = 1_000_000_000_000_000;
/// The most lines an order may have.
pub const MAX_LINES: usize = 100;
/// The largest quantity of one line.
const MAX_QUANTITY: i64 = 10_000;

/// One line of an order: so many units of a product at a unit price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLine {
    /// The product's stock-keeping unit (1 to 64 characters).
    pub sku: String,
    /// 1 to 10000.
    pub quantity: i64,
    /// In minor units (cents), 0 or more.
    pub unit_price: i64,
}

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// The stream does not exist yet.
    #[default]
    NotCreated,
    /// Created, waiting for the processor.
    Created,
    Processed,
}

/// Create an order for a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOrder {
    pub customer: String,
    pub lines: Vec<OrderLine>,
}

/// Process a created order. Processing an order that is already processed is a no-op, so the
/// processor may send it more than once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOrder {
    /// Who processes it (the processor's name, or `api:USER` when sent over HTTP).
    pub processed_by: String,
}

/// The commands an [`Order`] accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderCommand {
    Create(CreateOrder),
    Process(ProcessOrder),
}

/// What happened to an order. `OrderCreated` records the total, so read models never
/// recompute it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum OrderEvent {
    OrderCreated {
        customer: String,
        lines: Vec<OrderLine>,
        total: i64,
    },
    OrderProcessed {
        processed_by: String,
    },
}

impl DomainEvent for OrderEvent {
    fn event_type(&self) -> &'static str {
        match self {
            OrderEvent::OrderCreated { .. } => "OrderCreated",
            OrderEvent::OrderProcessed { .. } => "OrderProcessed",
        }
    }
}

/// Why an order command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("the order does not exist")]
    NotFound,
    #[error("the order exists already")]
    AlreadyCreated,
    #[error("the order total would exceed the maximum of {MAX_PRICE}")]
    TotalTooLarge,
    #[error("{field} {message}")]
    InvalidField {
        field: String,
        message: &'static str,
    },
}

impl DomainError for OrderError {
    fn rejection(&self) -> Rejection {
        match self {
            OrderError::NotFound => Rejection::NotFound,
            OrderError::AlreadyCreated => Rejection::AlreadyExists,
            OrderError::TotalTooLarge => Rejection::RuleBroken,
            OrderError::InvalidField { field, message } => {
                Rejection::Invalid(vec![FieldError::new(field.clone(), *message)])
            }
        }
    }

    fn code(&self) -> &'static str {
        match self {
            OrderError::NotFound => "order_not_found",
            OrderError::AlreadyCreated => "order_already_created",
            OrderError::TotalTooLarge => "order_total_too_large",
            OrderError::InvalidField { .. } => "invalid_field",
        }
    }
}

/// An order: the state its events leave behind (serialisable for snapshots).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub status: OrderStatus,
    pub total: i64,
}

impl Order {
    /// The format of serialised order state in snapshots.
    pub const SNAPSHOT_FORMAT: u32 = 1;
}

fn invalid(field: impl Into<String>, message: &'static str) -> OrderError {
    OrderError::InvalidField {
        field: field.into(),
        message,
    }
}

/// The order's total, after checking every line.
fn checked_total(lines: &[OrderLine]) -> Result<i64, OrderError> {
    if lines.is_empty() {
        return Err(invalid("lines", "must have at least one line"));
    }
    if lines.len() > MAX_LINES {
        return Err(invalid("lines", "must have at most 100 lines"));
    }
    let mut total: i64 = 0;
    for (n, line) in lines.iter().enumerate() {
        let sku = line.sku.trim();
        if sku.is_empty() || sku.chars().count() > 64 || sku != line.sku {
            return Err(invalid(
                format!("lines[{n}].sku"),
                "must be 1 to 64 characters without surrounding spaces",
            ));
        }
        if !(1..=MAX_QUANTITY).contains(&line.quantity) {
            return Err(invalid(
                format!("lines[{n}].quantity"),
                "must be between 1 and 10000",
            ));
        }
        if !(0..=MAX_PRICE).contains(&line.unit_price) {
            return Err(invalid(
                format!("lines[{n}].unit_price"),
                "must be between 0 and 1000000000000000",
            ));
        }
        total = line
            .unit_price
            .checked_mul(line.quantity)
            .and_then(|amount| total.checked_add(amount))
            .filter(|t| *t <= MAX_PRICE)
            .ok_or(OrderError::TotalTooLarge)?;
    }
    Ok(total)
}

impl Aggregate for Order {
    const STREAM_TYPE: &'static str = "shop.order";
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;

    fn decide(&self, command: &OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        match command {
            OrderCommand::Create(create) => {
                if self.status != OrderStatus::NotCreated {
                    return Err(OrderError::AlreadyCreated);
                }
                let customer = create.customer.trim();
                if customer.is_empty() || customer.chars().count() > 100 {
                    return Err(invalid("customer", "must be 1 to 100 characters"));
                }
                let total = checked_total(&create.lines)?;
                Ok(vec![OrderEvent::OrderCreated {
                    customer: customer.to_owned(),
                    lines: create.lines.clone(),
                    total,
                }])
            }
            OrderCommand::Process(process) => match self.status {
                OrderStatus::NotCreated => Err(OrderError::NotFound),
                OrderStatus::Processed => Ok(Vec::new()),
                OrderStatus::Created => Ok(vec![OrderEvent::OrderProcessed {
                    processed_by: process.processed_by.clone(),
                }]),
            },
        }
    }

    fn apply(&mut self, event: &OrderEvent) {
        match event {
            OrderEvent::OrderCreated { total, .. } => {
                self.status = OrderStatus::Created;
                self.total = *total;
            }
            OrderEvent::OrderProcessed { .. } => self.status = OrderStatus::Processed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventline_core::testing::AggregateTest;

    fn line(sku: &str, quantity: i64, unit_price: i64) -> OrderLine {
        OrderLine {
            sku: sku.into(),
            quantity,
            unit_price,
        }
    }

    fn create(lines: Vec<OrderLine>) -> OrderCommand {
        OrderCommand::Create(CreateOrder {
            customer: " ada ".into(),
            lines,
        })
    }

    fn created() -> OrderEvent {
        OrderEvent::OrderCreated {
            customer: "ada".into(),
            lines: vec![line("book", 2, 1500)],
            total: 3000,
        }
    }

    fn process() -> OrderCommand {
        OrderCommand::Process(ProcessOrder {
            processed_by: "order-processor".into(),
        })
    }

    #[test]
    fn creates_an_order_with_its_total() {
        AggregateTest::<Order>::given_no_previous_events()
            .when(create(vec![line("book", 2, 1500), line("pen", 3, 0)]))
            .then_expect_events(vec![OrderEvent::OrderCreated {
                customer: "ada".into(),
                lines: vec![line("book", 2, 1500), line("pen", 3, 0)],
                total: 3000,
            }]);
    }

    #[test]
    fn refuses_bad_lines_naming_the_field() {
        let cases = [
            (vec![], "lines"),
            (vec![line("", 1, 1)], "lines[0].sku"),
            (vec![line("a", 1, 1), line("b", 0, 1)], "lines[1].quantity"),
            (vec![line("a", 10_001, 1)], "lines[0].quantity"),
            (vec![line("a", 1, -1)], "lines[0].unit_price"),
        ];
        for (lines, field) in cases {
            let error = Order::default().decide(&create(lines)).expect_err(field);
            match error.rejection() {
                Rejection::Invalid(errors) => assert_eq!(errors[0].field, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        let too_many = vec![line("a", 1, 1); MAX_LINES + 1];
        assert!(Order::default().decide(&create(too_many)).is_err());
    }

    #[test]
    fn refuses_totals_that_overflow() {
        AggregateTest::<Order>::given_no_previous_events()
            .when(create(vec![line("a", 10_000, MAX_PRICE)]))
            .then_expect_error(OrderError::TotalTooLarge);
    }

    #[test]
    fn an_order_is_created_once() {
        AggregateTest::<Order>::given([created()])
            .when(create(vec![line("a", 1, 1)]))
            .then_expect_error(OrderError::AlreadyCreated);
    }

    #[test]
    fn processing_happens_once_and_a_second_request_is_a_no_op() {
        AggregateTest::<Order>::given([created()])
            .when(process())
            .then_expect_events(vec![OrderEvent::OrderProcessed {
                processed_by: "order-processor".into(),
            }]);
        AggregateTest::<Order>::given([
            created(),
            OrderEvent::OrderProcessed {
                processed_by: "order-processor".into(),
            },
        ])
        .when(process())
        .then_expect_events(vec![]);
    }

    #[test]
    fn a_missing_order_cannot_be_processed() {
        AggregateTest::<Order>::given_no_previous_events()
            .when(process())
            .then_expect_error(OrderError::NotFound);
    }
}
