//! Helpers shared by the projector tests.
#![allow(dead_code)]

use eventline_core::{Metadata, NewEvent};
use eventline_readmodel::ReadModelDb;
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
    eventline_bank::read_model_rows(db)
        .await
        .expect("read model rows")
}
