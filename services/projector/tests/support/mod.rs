//! Helpers shared by the projector tests.
#![allow(dead_code)]

use eventline_bank::{accounts_table, history_table};
use eventline_core::{Metadata, NewEvent};
use eventline_readmodel::{ReadModelDb, Select};
use serde_json::json;

pub fn event(event_type: &str, payload: serde_json::Value) -> NewEvent {
    NewEvent {
        event_type: event_type.into(),
        schema_version: 1,
        payload,
        metadata: Metadata::default(),
    }
}

pub fn opened(balance: i64) -> NewEvent {
    event(
        "AccountOpened",
        json!({"holder": "Ada", "account_type": "savings", "opening_balance": balance}),
    )
}

/// Every row of the bank read model, accounts then history, in key order.
pub async fn all_rows(db: &ReadModelDb) -> Vec<eventline_readmodel::Row> {
    let accounts = accounts_table();
    let history = history_table();
    let mut rows = db
        .select(&Select {
            table: &accounts,
            filters: vec![],
            order_by: &["id"],
            after: None,
            limit: 10_000,
        })
        .await
        .expect("accounts");
    rows.extend(
        db.select(&Select {
            table: &history,
            filters: vec![],
            order_by: &["account_id", "version"],
            after: None,
            limit: 10_000,
        })
        .await
        .expect("history"),
    );
    rows
}
