//! Every column type through a replay: a projection whose table uses them all is replayed
//! from the store into SQLite, PostgreSQL and MariaDB (bulk load, index build, cut-over);
//! each rebuilt model equals the live one row by row and has the same digest, and a
//! cross-database verification (`verify_against`) passes.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use eventline_core::{
    Column, ColumnType, Decimal, Envelope, EventStore, Index, Metadata, NewEvent, Projection,
    ProjectionError, RowOp, Table, Value,
};
use eventline_projector::StoreProjector;
use eventline_readmodel::ReadModelDb;
use eventline_replay::{Replay, ReplayConfig};
use eventline_store_sqlite::SqliteEventStore;
use eventline_test_support::TestDatabase;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Parcels: every column type but BigInt, Text and Timestamp, which other tests cover.
#[derive(Debug)]
struct Parcels;

fn parcels() -> Table {
    Table {
        name: "parcels",
        columns: vec![
            Column::new("id", ColumnType::Uuid),
            Column::new("fragile", ColumnType::Boolean),
            Column::nullable("ratio", ColumnType::Double),
            Column::new("weight", ColumnType::decimal(10, 3)),
            Column::nullable("attrs", ColumnType::Json),
            Column::new("due", ColumnType::Date),
            Column::nullable("label", ColumnType::Bytes),
        ],
        primary_key: &["id"],
        indexes: vec![Index {
            name: "parcels_by_due",
            columns: &["due", "weight", "id"],
        }],
    }
}

fn field<'a>(event: &'a Envelope, name: &str) -> &'a serde_json::Value {
    &event.payload[name]
}

impl Projection for Parcels {
    fn name(&self) -> &'static str {
        "parcels"
    }
    fn tables(&self) -> Vec<Table> {
        vec![parcels()]
    }
    fn stream_types(&self) -> &'static [&'static str] {
        &["parcel"]
    }
    fn apply(&self, event: &Envelope) -> Result<Vec<RowOp>, ProjectionError> {
        let bad = |what: &str| ProjectionError::new(event, what);
        let id = Value::Uuid(
            Uuid::parse_str(&event.stream_id).map_err(|_| bad("the stream id is no uuid"))?,
        );
        let weight = || -> Result<Value, ProjectionError> {
            let text = field(event, "weight")
                .as_str()
                .ok_or_else(|| bad("weight"))?;
            Decimal::from_str_exact(text)
                .map(Value::Decimal)
                .map_err(|_| bad("weight"))
        };
        Ok(match event.event_type.as_str() {
            "Posted" => {
                let due = field(event, "due").as_str().ok_or_else(|| bad("due"))?;
                let label = field(event, "label").as_array().map(|bytes| {
                    Value::Bytes(
                        bytes
                            .iter()
                            .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                            .collect(),
                    )
                });
                vec![RowOp::Upsert {
                    table: "parcels",
                    row: vec![
                        ("id", id),
                        ("fragile", Value::from(field(event, "fragile").as_bool())),
                        ("ratio", Value::from(field(event, "ratio").as_f64())),
                        ("weight", weight()?),
                        (
                            "attrs",
                            Value::from(
                                Some(field(event, "attrs").clone()).filter(|a| !a.is_null()),
                            ),
                        ),
                        (
                            "due",
                            Value::Date(
                                NaiveDate::parse_from_str(due, "%Y-%m-%d")
                                    .map_err(|_| bad("due"))?,
                            ),
                        ),
                        ("label", Value::from(label)),
                    ],
                }]
            }
            "Reweighed" => vec![RowOp::Update {
                table: "parcels",
                key: vec![("id", id)],
                set: vec![("weight", weight()?), ("attrs", Value::Null)],
            }],
            "Delivered" => vec![RowOp::Delete {
                table: "parcels",
                key: vec![("id", id)],
            }],
            _ => Vec::new(),
        })
    }
}

fn event(event_type: &str, payload: serde_json::Value) -> NewEvent {
    NewEvent {
        event_type: event_type.into(),
        schema_version: 1,
        payload,
        metadata: Metadata::default(),
    }
}

/// 60 parcels posted with edge values, a third reweighed, a seventh delivered.
async fn store(dir: &tempfile::TempDir) -> Arc<dyn EventStore> {
    let store: Arc<dyn EventStore> = Arc::new(
        SqliteEventStore::open(dir.path().join("events.sqlite"))
            .await
            .expect("store"),
    );
    for n in 0..60_i64 {
        let id =
            Uuid::from_u128(0x9e37_79b9_7f4a_7c15_u128.wrapping_mul(n as u128 + 1)).to_string();
        let sign = if n % 2 == 0 { "-" } else { "" };
        let posted = event(
            "Posted",
            json!({
                "fragile": n % 3 == 0,
                "ratio": if n % 5 == 0 { serde_json::Value::Null } else { json!(n as f64 / 7.0) },
                "weight": format!("{sign}{}.{:03}", n * 1_000, n),
                "attrs": match n % 4 {
                    0 => json!(null),
                    1 => json!({"zeta": [1, {"b": "ü", "a": null}], "alpha": n}),
                    2 => json!("plain ✓"),
                    _ => json!([]),
                },
                "due": format!("{}-{:02}-{:02}", 1900 + n * 3, n % 12 + 1, n % 28 + 1),
                "label": if n % 6 == 0 { json!([]) } else { json!([n, 0, 255]) },
            }),
        );
        store
            .append(&id, "parcel", 0, vec![posted])
            .await
            .expect("post");
        let mut version = 1;
        if n % 3 == 1 {
            let reweighed = event("Reweighed", json!({"weight": "9999999.999"}));
            store
                .append(&id, "parcel", version, vec![reweighed])
                .await
                .expect("reweigh");
            version += 1;
        }
        if n % 7 == 3 {
            store
                .append(&id, "parcel", version, vec![event("Delivered", json!({}))])
                .await
                .expect("deliver");
        }
    }
    store
}

async fn replay_into(store: &Arc<dyn EventStore>, target: &ReadModelDb, reference: &ReadModelDb) {
    let mut config = ReplayConfig::new("typed-1");
    config.batch_size = 16;
    config.progress_every = Duration::ZERO;
    config.verify_against = Some(reference.clone());
    let done = Replay::new(Arc::clone(store), target.clone(), Arc::new(Parcels), config)
        .run(CancellationToken::new(), |_| {})
        .await
        .expect("the replay verifies and cuts over");
    assert!(done.done);
}

#[tokio::test]
async fn every_column_type_survives_a_replay_into_each_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store(&dir).await;
    let live = ReadModelDb::open_sqlite(dir.path().join("live.sqlite"))
        .await
        .expect("live");
    StoreProjector::new(Arc::clone(&store), live.clone(), Arc::new(Parcels))
        .catch_up()
        .await
        .expect("live projector");
    let table = parcels();
    let want = live.all_rows(&table).await.expect("live rows");
    assert_eq!(want.len(), 60 - 9, "nine parcels delivered");
    assert_eq!(live.dead_letter_count("parcels").await.expect("count"), 0);
    let digest = live.digest(&Parcels).await.expect("digest");

    let pg = TestDatabase::postgres().await;
    let my = TestDatabase::mysql().await;
    let targets = [
        ReadModelDb::open_sqlite(dir.path().join("replayed.sqlite"))
            .await
            .expect("sqlite"),
        ReadModelDb::connect(&pg.url).await.expect("postgres"),
        ReadModelDb::connect(&my.url).await.expect("mariadb"),
    ];
    for target in &targets {
        let name = target.dialect().name();
        replay_into(&store, target, &live).await;
        let got = target.all_rows(&table).await.expect("replayed rows");
        assert_eq!(got.len(), want.len(), "{name}");
        for (got, want) in got.iter().zip(&want) {
            assert_eq!(got, want, "{name}");
        }
        assert_eq!(
            target.digest(&Parcels).await.expect("digest"),
            digest,
            "{name}"
        );
    }

    // Spot checks of the forms read back, the same from every database.
    let first = &want[0];
    for column in ["id", "weight", "due"] {
        assert!(first[column].is_string(), "{column}: {first:?}");
    }
    let reweighed = want
        .iter()
        .filter(|row| row["weight"] == "9999999.999")
        .count();
    assert!(reweighed > 10, "{reweighed}");
    assert!(want.iter().any(|row| row["label"] == ""), "empty bytes");
    assert!(want.iter().any(|row| row["attrs"] == "plain ✓"));
    assert!(want.iter().any(|row| row["due"] == "1903-02-02"));
    assert!(
        want.iter()
            .any(|row| row["weight"].as_str().is_some_and(|w| w.starts_with('-')))
    );
}
