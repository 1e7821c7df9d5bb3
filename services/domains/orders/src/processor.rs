use std::sync::Arc;

use async_trait::async_trait;
use eventline_core::{Aggregate, CommandHandler, DomainEvent, Envelope, EventStore, Metadata};
use eventline_processor::{ProcessManager, ReactionError};

use crate::order::{Order, OrderCommand, OrderEvent, ProcessOrder};

/// The process manager that processes every created order: for each `OrderCreated` it sends
/// `ProcessOrder` to that order.
///
/// Exactly once in effect: the order decides `ProcessOrder` as a no-op once it is processed,
/// and the append's expected version settles races, so seeing an event twice (after a crash,
/// a retried batch, or a second processor) appends nothing the second time.
#[derive(Debug, Clone)]
pub struct OrderProcessor {
    orders: CommandHandler<Order>,
}

impl OrderProcessor {
    /// The processor's name: its checkpoint, lease and metrics label, and the
    /// `processed_by` of the orders it processes.
    pub const NAME: &'static str = "order-processor";

    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            orders: CommandHandler::new(store),
        }
    }
}

#[async_trait]
impl ProcessManager for OrderProcessor {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn stream_types(&self) -> &'static [&'static str] {
        &[Order::STREAM_TYPE]
    }

    async fn react(&self, event: &Envelope) -> Result<(), ReactionError> {
        let decoded = OrderEvent::decode(event)
            .map_err(|error| ReactionError::Permanent(format!("undecodable event: {error}")))?;
        if !matches!(decoded, OrderEvent::OrderCreated { .. }) {
            return Ok(());
        }
        let metadata = Metadata {
            correlation_id: event.metadata.correlation_id,
            user: Some(format!("system:{}", Self::NAME)),
            // The reaction's span (in the order's trace), so the command's events stay in it.
            traceparent: eventline_trace_context::of(&tracing::Span::current())
                .or_else(|| event.metadata.traceparent.clone()),
            ..Metadata::default()
        };
        let command = OrderCommand::Process(ProcessOrder {
            processed_by: Self::NAME.to_owned(),
        });
        let result = self
            .orders
            .execute(&event.stream_id, None, &metadata, &command)
            .await;
        let outcome = match &result {
            Ok(done) if done.appended > 0 => "processed",
            Ok(_) => "already_processed",
            Err(_) => "failed",
        };
        metrics::counter!("eventline_orders_processed_total", "outcome" => outcome).increment(1);
        // Refused or unanswerable: dead-lettered; a lost race or an unreachable store: retried.
        result.map(|_| ()).map_err(ReactionError::from)
    }
}
