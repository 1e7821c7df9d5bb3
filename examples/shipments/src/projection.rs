use eventline_core::{
    Aggregate, Column, ColumnType, DomainEvent, Envelope, Index, Projection, ProjectionError,
    RowOp, Table, Value,
};
use eventline_readmodel::{ReadModelDb, ReadModelError, Row};
use serde_json::json;
use uuid::Uuid;

use crate::shipment::{Shipment, ShipmentEvent};

/// Money columns: up to ten digits before the point, exactly two after.
const MONEY: ColumnType = ColumnType::Decimal {
    precision: 12,
    scale: 2,
};

/// The `shipments` table: one row per shipment, its current state.
pub fn shipments_table() -> Table {
    Table {
        name: "shipments",
        columns: vec![
            Column::new("id", ColumnType::Uuid),
            Column::new("sender", ColumnType::Text),
            Column::new("recipient", ColumnType::Text),
            Column::new("destination_country", ColumnType::Text),
            Column::new("international", ColumnType::Boolean),
            Column::new("weight_grams", ColumnType::BigInt),
            Column::new("declared_value", MONEY),
            Column::nullable("customs_duty", MONEY),
            Column::new("deliver_by", ColumnType::Date),
            Column::new("items", ColumnType::Json),
            Column::new("status", ColumnType::Text),
            Column::nullable("carrier", ColumnType::Text),
            Column::new("registered_at", ColumnType::Timestamp),
            Column::new("updated_at", ColumnType::Timestamp),
            Column::new("version", ColumnType::BigInt),
        ],
        primary_key: &["id"],
        indexes: vec![
            Index {
                name: "shipments_by_status",
                columns: &["status", "id"],
            },
            Index {
                name: "shipments_by_deadline",
                columns: &["deliver_by", "id"],
            },
        ],
    }
}

/// The `shipment_timeline` table: one row per event of each shipment, with its details.
pub fn timeline_table() -> Table {
    Table {
        name: "shipment_timeline",
        columns: vec![
            Column::new("shipment_id", ColumnType::Uuid),
            Column::new("version", ColumnType::BigInt),
            Column::new("event", ColumnType::Text),
            Column::new("details", ColumnType::Json),
            Column::new("at", ColumnType::Timestamp),
            Column::nullable("by_user", ColumnType::Text),
        ],
        primary_key: &["shipment_id", "version"],
        indexes: vec![],
    }
}

/// Every row of the shipments read model, shipments then timeline, each in key order.
pub async fn read_model_rows(db: &ReadModelDb) -> Result<Vec<Row>, ReadModelError> {
    let mut rows = db.all_rows(&shipments_table()).await?;
    rows.extend(db.all_rows(&timeline_table()).await?);
    Ok(rows)
}

/// Keeps `shipments` and `shipment_timeline` from the shipment events.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrackingProjection;

impl Projection for TrackingProjection {
    fn name(&self) -> &'static str {
        "shipment-tracking"
    }

    fn tables(&self) -> Vec<Table> {
        vec![shipments_table(), timeline_table()]
    }

    fn stream_types(&self) -> &'static [&'static str] {
        &[Shipment::STREAM_TYPE]
    }

    fn apply(&self, event: &Envelope) -> Result<Vec<RowOp>, ProjectionError> {
        let decoded =
            ShipmentEvent::decode(event).map_err(|e| ProjectionError::undecodable(event, &e))?;
        let id = Uuid::parse_str(&event.stream_id).map_err(|e| {
            ProjectionError::new(event, format!("the stream id is not a UUID: {e}"))
        })?;
        let at = Value::Timestamp(event.recorded_at);
        let timeline = |details: serde_json::Value| RowOp::Upsert {
            table: "shipment_timeline",
            row: vec![
                ("shipment_id", Value::Uuid(id)),
                ("version", Value::from(event.version)),
                ("event", Value::from(event.event_type.as_str())),
                ("details", Value::Json(details)),
                ("at", at.clone()),
                ("by_user", Value::from(event.metadata.user.clone())),
            ],
        };
        let update = |set: Vec<(&'static str, Value)>| RowOp::Update {
            table: "shipments",
            key: vec![("id", Value::Uuid(id))],
            set: set
                .into_iter()
                .chain([
                    ("updated_at", at.clone()),
                    ("version", Value::from(event.version)),
                ])
                .collect(),
        };
        Ok(match decoded {
            ShipmentEvent::ShipmentRegistered {
                sender,
                recipient,
                origin_country,
                destination_country,
                international,
                weight_grams,
                declared_value,
                deliver_by,
                items,
            } => vec![
                RowOp::Upsert {
                    table: "shipments",
                    row: vec![
                        ("id", Value::Uuid(id)),
                        ("sender", Value::Text(sender)),
                        ("recipient", Value::Text(recipient)),
                        (
                            "destination_country",
                            Value::from(destination_country.as_str()),
                        ),
                        ("international", Value::Bool(international)),
                        ("weight_grams", Value::Int(weight_grams)),
                        ("declared_value", Value::Decimal(declared_value)),
                        ("customs_duty", Value::Null),
                        ("deliver_by", Value::Date(deliver_by)),
                        ("items", Value::Json(json!(items))),
                        ("status", Value::from("registered")),
                        ("carrier", Value::Null),
                        ("registered_at", at.clone()),
                        ("updated_at", at.clone()),
                        ("version", Value::from(event.version)),
                    ],
                },
                timeline(json!({"from": origin_country, "to": destination_country})),
            ],
            ShipmentEvent::CustomsCleared { duty, cleared_by } => vec![
                update(vec![("customs_duty", Value::Decimal(duty))]),
                timeline(json!({"duty": duty.to_string(), "cleared_by": cleared_by})),
            ],
            ShipmentEvent::ShipmentDispatched { carrier } => vec![
                update(vec![
                    ("status", Value::from("dispatched")),
                    ("carrier", Value::from(carrier.as_str())),
                ]),
                timeline(json!({"carrier": carrier})),
            ],
            ShipmentEvent::ShipmentDelivered { signed_by } => vec![
                update(vec![("status", Value::from("delivered"))]),
                timeline(json!({"signed_by": signed_by})),
            ],
            ShipmentEvent::ShipmentCancelled { reason } => vec![
                update(vec![("status", Value::from("cancelled"))]),
                timeline(json!({"reason": reason})),
            ],
        })
    }
}
