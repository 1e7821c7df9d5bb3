use eventline_core::{
    Aggregate, Column, ColumnType, DomainEvent, Envelope, Index, Projection, ProjectionError,
    RowOp, Table, Value,
};

use crate::order::{Order, OrderEvent};

/// The `orders` table: one row per order, its current state.
pub fn orders_table() -> Table {
    Table {
        name: "orders",
        columns: vec![
            Column::new("id", ColumnType::Text),
            Column::new("customer", ColumnType::Text),
            Column::new("total", ColumnType::BigInt),
            Column::new("line_count", ColumnType::BigInt),
            Column::new("status", ColumnType::Text),
            Column::new("created_at", ColumnType::Timestamp),
            Column::nullable("processed_at", ColumnType::Timestamp),
            Column::nullable("processed_by", ColumnType::Text),
            Column::new("version", ColumnType::BigInt),
        ],
        primary_key: &["id"],
        indexes: vec![
            Index {
                name: "orders_by_customer",
                columns: &["customer", "id"],
            },
            Index {
                name: "orders_by_status",
                columns: &["status", "id"],
            },
        ],
    }
}

/// The `order_lines` table: the lines of each order, in the order given.
pub fn lines_table() -> Table {
    Table {
        name: "order_lines",
        columns: vec![
            Column::new("order_id", ColumnType::Text),
            Column::new("line_no", ColumnType::BigInt),
            Column::new("sku", ColumnType::Text),
            Column::new("quantity", ColumnType::BigInt),
            Column::new("unit_price", ColumnType::BigInt),
        ],
        primary_key: &["order_id", "line_no"],
        indexes: vec![],
    }
}

/// Keeps `orders` and `order_lines` from the order events.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrdersProjection;

impl OrdersProjection {
    /// The projection's name (checkpoint, consumer group, replay `--projection`).
    pub const NAME: &'static str = "shop-orders";
}

impl Projection for OrdersProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> Vec<Table> {
        vec![orders_table(), lines_table()]
    }

    fn stream_types(&self) -> &'static [&'static str] {
        &[Order::STREAM_TYPE]
    }

    fn apply(&self, event: &Envelope) -> Result<Vec<RowOp>, ProjectionError> {
        let decoded =
            OrderEvent::decode(event).map_err(|e| ProjectionError::undecodable(event, &e))?;
        let id = || Value::from(event.stream_id.as_str());
        let at = Value::Timestamp(event.recorded_at);
        Ok(match decoded {
            OrderEvent::OrderCreated {
                customer,
                lines,
                total,
            } => {
                let mut ops = vec![RowOp::Upsert {
                    table: "orders",
                    row: vec![
                        ("id", id()),
                        ("customer", Value::Text(customer)),
                        ("total", Value::Int(total)),
                        ("line_count", Value::from(lines.len() as u64)),
                        ("status", Value::from("created")),
                        ("created_at", at),
                        ("processed_at", Value::Null),
                        ("processed_by", Value::Null),
                        ("version", Value::from(event.version)),
                    ],
                }];
                ops.extend(
                    lines
                        .into_iter()
                        .enumerate()
                        .map(|(n, line)| RowOp::Upsert {
                            table: "order_lines",
                            row: vec![
                                ("order_id", id()),
                                ("line_no", Value::from(n as u64 + 1)),
                                ("sku", Value::Text(line.sku)),
                                ("quantity", Value::Int(line.quantity)),
                                ("unit_price", Value::Int(line.unit_price)),
                            ],
                        }),
                );
                ops
            }
            OrderEvent::OrderProcessed { processed_by } => vec![RowOp::Update {
                table: "orders",
                key: vec![("id", id())],
                set: vec![
                    ("status", Value::from("processed")),
                    ("processed_at", at),
                    ("processed_by", Value::Text(processed_by)),
                    ("version", Value::from(event.version)),
                ],
            }],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use eventline_core::{Metadata, Position};
    use serde_json::json;

    fn envelope(version: u64, event_type: &str, payload: serde_json::Value) -> Envelope {
        Envelope {
            position: Position::sequential(version),
            stream_id: "o1".into(),
            stream_type: "shop.order".into(),
            version,
            event_type: event_type.into(),
            schema_version: 1,
            payload,
            metadata: Metadata::default(),
            recorded_at: Utc::now(),
        }
    }

    #[test]
    fn a_created_order_writes_the_order_and_one_row_per_line() {
        let ops = OrdersProjection
            .apply(&envelope(
                1,
                "OrderCreated",
                json!({"customer": "ada", "total": 7, "lines": [
                    {"sku": "a", "quantity": 1, "unit_price": 3},
                    {"sku": "b", "quantity": 2, "unit_price": 2}]}),
            ))
            .expect("applies");
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[0].table(), "orders");
        match &ops[2] {
            RowOp::Upsert { table, row } => {
                assert_eq!(*table, "order_lines");
                assert!(row.contains(&("line_no", Value::Int(2))));
                assert!(row.contains(&("sku", Value::from("b"))));
            }
            other => panic!("expected a line upsert, got {other:?}"),
        }
    }

    #[test]
    fn processing_updates_the_status() {
        let ops = OrdersProjection
            .apply(&envelope(
                2,
                "OrderProcessed",
                json!({"processed_by": "order-processor"}),
            ))
            .expect("applies");
        match &ops[..] {
            [RowOp::Update { set, .. }] => {
                assert!(set.contains(&("status", Value::from("processed"))));
                assert!(set.contains(&("version", Value::Int(2))));
            }
            other => panic!("expected one update, got {other:?}"),
        }
    }
}
