use eventline_core::{
    Aggregate, Column, ColumnType, DomainEvent, Envelope, Index, Projection, ProjectionError,
    RowOp, Table, Value,
};

use crate::account::{Account, AccountEvent};

/// The `accounts` table: one row per account, its current state.
pub fn accounts_table() -> Table {
    Table {
        name: "accounts",
        columns: vec![
            Column::new("id", ColumnType::Text),
            Column::new("holder", ColumnType::Text),
            Column::new("account_type", ColumnType::Text),
            Column::new("balance", ColumnType::BigInt),
            Column::new("status", ColumnType::Text),
            Column::new("opened_at", ColumnType::Timestamp),
            Column::new("updated_at", ColumnType::Timestamp),
            Column::new("version", ColumnType::BigInt),
        ],
        primary_key: &["id"],
        indexes: vec![
            Index {
                name: "accounts_by_holder",
                columns: &["holder", "id"],
            },
            Index {
                name: "accounts_by_status",
                columns: &["status", "id"],
            },
        ],
    }
}

/// The `account_history` table: one row per event of each account.
pub fn history_table() -> Table {
    Table {
        name: "account_history",
        columns: vec![
            Column::new("account_id", ColumnType::Text),
            Column::new("version", ColumnType::BigInt),
            Column::new("position", ColumnType::BigInt),
            Column::new("event_type", ColumnType::Text),
            Column::nullable("amount", ColumnType::BigInt),
            Column::new("balance", ColumnType::BigInt),
            Column::new("recorded_at", ColumnType::Timestamp),
        ],
        primary_key: &["account_id", "version"],
        indexes: vec![],
    }
}

/// Every row of the bank read model, accounts then history, each in key order: what tests
/// compare between a live read model and a replay, whatever database either is in.
pub async fn read_model_rows(
    db: &eventline_readmodel::ReadModelDb,
) -> Result<Vec<eventline_readmodel::Row>, eventline_readmodel::ReadModelError> {
    let mut rows = db.all_rows(&accounts_table()).await?;
    rows.extend(db.all_rows(&history_table()).await?);
    Ok(rows)
}

/// Keeps `accounts` and `account_history` from the account events.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccountsProjection;

impl Projection for AccountsProjection {
    fn name(&self) -> &'static str {
        "bank-accounts"
    }

    fn tables(&self) -> Vec<Table> {
        vec![accounts_table(), history_table()]
    }

    fn stream_types(&self) -> &'static [&'static str] {
        &[Account::STREAM_TYPE]
    }

    fn apply(&self, event: &Envelope) -> Result<Vec<RowOp>, ProjectionError> {
        let decoded =
            AccountEvent::decode(event).map_err(|e| ProjectionError::undecodable(event, &e))?;
        let id = || Value::from(event.stream_id.as_str());
        let at = Value::Timestamp(event.recorded_at);
        let history = |amount: Option<i64>, balance: i64| RowOp::Upsert {
            table: "account_history",
            row: vec![
                ("account_id", id()),
                ("version", Value::from(event.version)),
                ("position", Value::from(event.position.event)),
                ("event_type", Value::from(event.event_type.as_str())),
                ("amount", Value::from(amount)),
                ("balance", Value::Int(balance)),
                ("recorded_at", at.clone()),
            ],
        };
        let update = |set: Vec<(&'static str, Value)>| RowOp::Update {
            table: "accounts",
            key: vec![("id", id())],
            set: set
                .into_iter()
                .chain([
                    ("updated_at", at.clone()),
                    ("version", Value::from(event.version)),
                ])
                .collect(),
        };
        Ok(match decoded {
            AccountEvent::AccountOpened {
                holder_name,
                account_type,
                opening_balance,
            } => vec![
                RowOp::Upsert {
                    table: "accounts",
                    row: vec![
                        ("id", id()),
                        ("holder", Value::Text(holder_name)),
                        ("account_type", Value::from(account_type.as_str())),
                        ("balance", Value::Int(opening_balance)),
                        ("status", Value::from("open")),
                        ("opened_at", at.clone()),
                        ("updated_at", at.clone()),
                        ("version", Value::from(event.version)),
                    ],
                },
                history(Some(opening_balance), opening_balance),
            ],
            AccountEvent::FundsDeposited { amount, balance }
            | AccountEvent::FundsWithdrawn { amount, balance } => vec![
                update(vec![("balance", Value::Int(balance))]),
                history(Some(amount), balance),
            ],
            AccountEvent::AccountClosed {} => vec![
                update(vec![("status", Value::from("closed"))]),
                history(None, 0),
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use eventline_core::Metadata;
    use serde_json::json;

    fn envelope(version: u64, event_type: &str, payload: serde_json::Value) -> Envelope {
        Envelope {
            position: eventline_core::Position::sequential(10 + version),
            stream_id: "a1".into(),
            stream_type: "bank.account".into(),
            version,
            event_type: event_type.into(),
            schema_version: 1,
            payload,
            metadata: Metadata::default(),
            recorded_at: Utc::now(),
        }
    }

    #[test]
    fn a_deposit_updates_the_balance_and_appends_history() {
        let ops = AccountsProjection
            .apply(&envelope(
                2,
                "FundsDeposited",
                json!({"amount": 5, "balance": 15}),
            ))
            .expect("applies");
        assert_eq!(ops.len(), 2);
        match &ops[0] {
            RowOp::Update { table, key, set } => {
                assert_eq!(*table, "accounts");
                assert_eq!(key, &vec![("id", Value::from("a1"))]);
                assert!(set.contains(&("balance", Value::Int(15))));
                assert!(set.contains(&("version", Value::Int(2))));
            }
            other => panic!("expected an update, got {other:?}"),
        }
        match &ops[1] {
            RowOp::Upsert { table, row } => {
                assert_eq!(*table, "account_history");
                assert!(row.contains(&("amount", Value::Int(5))));
                assert!(row.contains(&("position", Value::Int(12))));
            }
            other => panic!("expected an upsert, got {other:?}"),
        }
    }

    #[test]
    fn an_undecodable_event_is_a_projection_error_naming_it() {
        let err = AccountsProjection
            .apply(&envelope(2, "FundsDeposited", json!({"amount": "five"})))
            .expect_err("must fail");
        assert_eq!(err.position, eventline_core::Position::sequential(12));
        assert!(err.to_string().contains("FundsDeposited"), "{err}");
    }

    #[test]
    fn only_account_streams_are_handled() {
        assert!(AccountsProjection.handles("bank.account"));
        assert!(!AccountsProjection.handles("social.post"));
    }
}
