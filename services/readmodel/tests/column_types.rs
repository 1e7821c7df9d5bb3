//! Every column type round-trips on SQLite, PostgreSQL and MariaDB: written live (combined
//! multi-row statements and PostgreSQL arrays, and event by event after a rejected value),
//! read back through the query layer in one JSON form whatever the database, used as a
//! filter, keyset-paged on every type that can be a key, and digested alike across the three.
//!
//! Edge values: NULL in every nullable type, negative decimals and decimals at the largest
//! scale, non-ASCII and nested JSON, a JSON document that is a bare string, empty bytes,
//! dates before 1970 and at both ends of the range, extreme doubles.

use chrono::{NaiveDate, Utc};
use eventline_core::{
    Column, ColumnType, Decimal, Envelope, Index, Metadata, Position, Projection, ProjectionError,
    RowOp, Table, Value,
};
use eventline_readmodel::{ProjectedEvent, ReadModelDb, Select, TableDigest, column_value};
use eventline_test_support::TestDatabase;
use serde_json::json;
use uuid::Uuid;

fn kinds() -> Table {
    Table {
        name: "kinds",
        columns: vec![
            Column::new("id", ColumnType::Uuid),
            Column::new("flag", ColumnType::Boolean),
            Column::nullable("ratio", ColumnType::Double),
            Column::new("price", ColumnType::decimal(12, 2)),
            Column::nullable("fraction", ColumnType::decimal(18, 18)),
            Column::nullable("doc", ColumnType::Json),
            Column::new("day", ColumnType::Date),
            Column::nullable("blob", ColumnType::Bytes),
            Column::nullable("label", ColumnType::Text),
        ],
        primary_key: &["id"],
        indexes: vec![
            Index {
                name: "kinds_by_day",
                columns: &["day", "id"],
            },
            Index {
                name: "kinds_by_price",
                columns: &["price", "id"],
            },
            Index {
                name: "kinds_by_flag",
                columns: &["flag", "id"],
            },
        ],
    }
}

/// A table keyed by every new keyable type at once.
fn ledger() -> Table {
    Table {
        name: "ledger",
        columns: vec![
            Column::new("day", ColumnType::Date),
            Column::new("amount", ColumnType::decimal(10, 3)),
            Column::new("flag", ColumnType::Boolean),
            Column::new("reference", ColumnType::Uuid),
            Column::nullable("note", ColumnType::Json),
        ],
        primary_key: &["day", "amount", "flag", "reference"],
        indexes: vec![],
    }
}

#[derive(Debug)]
struct Kinds;

impl Projection for Kinds {
    fn name(&self) -> &'static str {
        "kinds"
    }
    fn tables(&self) -> Vec<Table> {
        vec![kinds(), ledger()]
    }
    fn stream_types(&self) -> &'static [&'static str] {
        &["kinds"]
    }
    fn apply(&self, _: &Envelope) -> Result<Vec<RowOp>, ProjectionError> {
        Ok(Vec::new())
    }
}

const A: Uuid = Uuid::from_u128(0x1000_0000_0000_0000_0000_0000_0000_0001);
const B: Uuid = Uuid::from_u128(0xa000_0000_0000_0000_0000_0000_0000_0002);
const C: Uuid = Uuid::from_u128(0x0f00_0000_0000_0000_0000_0000_0000_0003);
const D: Uuid = Uuid::from_u128(0xff00_0000_0000_0000_0000_0000_0000_0004);
const E: Uuid = Uuid::from_u128(0x9b00_0000_0000_0000_0000_0000_0000_0005);
const F: Uuid = Uuid::from_u128(0x5500_0000_0000_0000_0000_0000_0000_0006);
const G: Uuid = Uuid::from_u128(0x6600_0000_0000_0000_0000_0000_0000_0007);

fn day(y: i32, m: u32, d: u32) -> Value {
    Value::Date(NaiveDate::from_ymd_opt(y, m, d).expect("a date"))
}

fn dec(mantissa: i64, scale: u32) -> Value {
    Value::Decimal(Decimal::new(mantissa, scale))
}

fn envelope(n: u64) -> Envelope {
    Envelope {
        position: Position::sequential(n),
        stream_id: format!("k{n}"),
        stream_type: "kinds".into(),
        version: 1,
        event_type: "Kinded".into(),
        schema_version: 1,
        payload: json!({ "n": n }),
        metadata: Metadata::default(),
        recorded_at: Utc::now(),
    }
}

fn upsert(table: &'static str, row: Vec<(&'static str, Value)>) -> RowOp {
    RowOp::Upsert { table, row }
}

fn update(id: Uuid, set: Vec<(&'static str, Value)>) -> RowOp {
    RowOp::Update {
        table: "kinds",
        key: vec![("id", Value::Uuid(id))],
        set,
    }
}

/// The row changes of each event, in three batches.
fn batches() -> Vec<Vec<Result<Vec<RowOp>, ProjectionError>>> {
    let a = upsert(
        "kinds",
        vec![
            ("id", Value::Uuid(A)),
            ("flag", Value::Bool(true)),
            ("ratio", Value::Double(0.5)),
            ("price", dec(-125, 1)),
            ("fraction", dec(999_999_999_999_999_999, 18)),
            (
                "doc",
                Value::Json(json!({
                    "name": "Ünïcödé ✓ \"q\" 😀",
                    "nested": {"b": [1, 2, {"c": null}], "a": 1.5}
                })),
            ),
            ("day", day(1969, 7, 20)),
            ("blob", Value::Bytes(Vec::new())),
            ("label", Value::from("ünï")),
        ],
    );
    let b = upsert(
        "kinds",
        vec![
            ("id", Value::Uuid(B)),
            ("flag", Value::Bool(false)),
            ("ratio", Value::Double(-0.0)),
            ("price", dec(0, 0)),
            ("fraction", dec(-1, 18)),
            ("doc", Value::Null),
            ("day", day(1000, 1, 1)),
            ("blob", Value::Bytes(vec![0, 255, 10])),
            ("label", Value::Null),
        ],
    );
    let c = upsert(
        "kinds",
        vec![
            ("id", Value::Uuid(C)),
            ("flag", Value::Bool(true)),
            ("ratio", Value::Double(-1e300)),
            ("price", dec(999_999_999_999, 2)),
            ("fraction", Value::Null),
            ("doc", Value::Json(json!("just a string"))),
            ("day", day(9999, 12, 31)),
            ("blob", Value::Bytes((0..=255).collect())),
            ("label", Value::from("c")),
        ],
    );
    let d = upsert(
        "kinds",
        vec![
            ("id", Value::Uuid(D)),
            ("flag", Value::Bool(true)),
            ("ratio", Value::Null),
            ("price", dec(-999_999_999_999, 2)),
            ("fraction", dec(0, 0)),
            ("doc", Value::Json(json!({"list": [3, 2, 1]}))),
            ("day", day(2026, 12, 2)),
            ("blob", Value::Bytes(vec![0, 0, 0])),
            ("label", Value::from("d")),
        ],
    );
    let e = upsert(
        "kinds",
        vec![
            ("id", Value::Uuid(E)),
            ("flag", Value::Bool(true)),
            ("ratio", Value::Double(2.5e-8)),
            ("price", dec(7, 0)),
            ("fraction", Value::Null),
            (
                "doc",
                Value::Json(json!({"big": u64::MAX, "small": i64::MIN, "zero": 0})),
            ),
            ("day", day(1970, 1, 1)),
            ("blob", Value::Null),
            ("label", Value::from("e")),
        ],
    );
    let f = upsert(
        "kinds",
        vec![
            ("id", Value::Uuid(F)),
            ("flag", Value::Bool(false)),
            ("price", dec(5, 0)),
            ("day", day(2000, 2, 29)),
        ],
    );
    let ledger_row = |d: Value, amount: Value, flag: bool, reference: Uuid, note| {
        upsert(
            "ledger",
            vec![
                ("day", d),
                ("amount", amount),
                ("flag", Value::Bool(flag)),
                ("reference", Value::Uuid(reference)),
                ("note", note),
            ],
        )
    };
    vec![
        // Combined into multi-row statements (arrays on PostgreSQL).
        vec![
            Ok(vec![a, b]),
            Ok(vec![c, d]),
            Ok(vec![e, f, update(A, vec![("ratio", Value::Double(0.1))])]),
        ],
        // A value that does not fit its column: the batch goes event by event (one
        // statement per change, typed NULLs), and only that event is dead-lettered.
        vec![
            Ok(vec![update(
                B,
                vec![
                    ("ratio", Value::Null),
                    (
                        "doc",
                        Value::Json(json!({"z": {"y": {"x": [true, false, null, -0.5]}}})),
                    ),
                    ("blob", Value::Null),
                ],
            )]),
            Ok(vec![upsert(
                "kinds",
                vec![
                    ("id", Value::Uuid(G)),
                    ("flag", Value::Bool(true)),
                    ("price", dec(1234, 3)),
                    ("day", day(2001, 1, 1)),
                ],
            )]),
            Ok(vec![RowOp::Delete {
                table: "kinds",
                key: vec![("id", Value::Uuid(F))],
            }]),
            Ok(vec![update(
                C,
                vec![("label", Value::Null), ("flag", Value::Bool(false))],
            )]),
        ],
        // Combined updates (arrays on PostgreSQL) and a composite key of new types, where
        // 1.5 and 1.500 are one key.
        vec![
            Ok(vec![
                update(
                    D,
                    vec![
                        ("ratio", Value::Double(3.0)),
                        ("doc", Value::Json(json!([]))),
                    ],
                ),
                update(E, vec![("price", dec(1, 2))]),
            ]),
            Ok(vec![
                ledger_row(
                    day(2026, 1, 1),
                    dec(15, 1),
                    true,
                    A,
                    Value::Json(json!({"n": 1})),
                ),
                ledger_row(
                    day(2026, 1, 1),
                    dec(1500, 3),
                    true,
                    A,
                    Value::Json(json!({"n": 2})),
                ),
                ledger_row(day(2026, 1, 1), dec(-1, 3), false, B, Value::Null),
                ledger_row(
                    day(1999, 12, 31),
                    dec(9_999_999_999, 3),
                    true,
                    C,
                    Value::Json(json!("ß")),
                ),
                ledger_row(day(2026, 1, 1), dec(15, 1), false, D, Value::Null),
            ]),
        ],
    ]
}

fn expected_kinds() -> serde_json::Value {
    let all_bytes = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode((0..=255).collect::<Vec<u8>>())
    };
    json!([
        { "id": C.to_string(), "flag": false, "ratio": -1e300, "price": "9999999999.99",
          "fraction": null, "doc": "just a string", "day": "9999-12-31", "blob": all_bytes,
          "label": null },
        { "id": A.to_string(), "flag": true, "ratio": 0.1, "price": "-12.50",
          "fraction": "0.999999999999999999",
          "doc": { "name": "Ünïcödé ✓ \"q\" 😀", "nested": {"a": 1.5, "b": [1, 2, {"c": null}]} },
          "day": "1969-07-20", "blob": "", "label": "ünï" },
        { "id": E.to_string(), "flag": true, "ratio": 2.5e-8, "price": "0.01",
          "fraction": null, "doc": {"big": u64::MAX, "small": i64::MIN, "zero": 0},
          "day": "1970-01-01", "blob": null, "label": "e" },
        { "id": B.to_string(), "flag": false, "ratio": null, "price": "0.00",
          "fraction": "-0.000000000000000001", "doc": {"z": {"y": {"x": [true, false, null, -0.5]}}},
          "day": "1000-01-01", "blob": null, "label": null },
        { "id": D.to_string(), "flag": true, "ratio": 3.0, "price": "-9999999999.99",
          "fraction": "0.000000000000000000", "doc": [], "day": "2026-12-02", "blob": "AAAA",
          "label": "d" },
    ])
}

fn expected_ledger() -> serde_json::Value {
    json!([
        { "day": "1999-12-31", "amount": "9999999.999", "flag": true,
          "reference": C.to_string(), "note": "ß" },
        { "day": "2026-01-01", "amount": "-0.001", "flag": false,
          "reference": B.to_string(), "note": null },
        { "day": "2026-01-01", "amount": "1.500", "flag": false,
          "reference": D.to_string(), "note": null },
        { "day": "2026-01-01", "amount": "1.500", "flag": true,
          "reference": A.to_string(), "note": {"n": 2} },
    ])
}

fn as_json(rows: Vec<eventline_readmodel::Row>) -> serde_json::Value {
    serde_json::Value::Array(rows.into_iter().map(serde_json::Value::Object).collect())
}

/// The ids of `table`'s rows, read two at a time in keyset pages ordered by `order_by`,
/// each page bounded by the last row of the one before (as the query services do it).
async fn ids_paged(
    db: &ReadModelDb,
    table: &Table,
    order_by: &'static [&'static str],
    descending: bool,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after: Option<Vec<Value>> = None;
    loop {
        let page = db
            .select(&Select {
                table,
                filters: vec![],
                order_by,
                after: after.take(),
                descending,
                limit: 2,
            })
            .await
            .expect("a page");
        ids.extend(
            page.iter()
                .map(|row| row["id"].as_str().expect("id").to_owned()),
        );
        let Some(last) = page.last().filter(|_| page.len() == 2) else {
            return ids;
        };
        after = Some(
            order_by
                .iter()
                .map(|c| {
                    let ty = table.column(c).expect("a column").ty;
                    column_value(ty, &last[*c]).expect("the cursor reads back")
                })
                .collect(),
        );
    }
}

/// Applies the three batches and checks what every read returns; returns the digests.
async fn round_trip(db: ReadModelDb) -> Vec<TableDigest> {
    let schema = db.ensure_schema(&Kinds).await.expect("schema");
    db.ensure_schema(&Kinds)
        .await
        .expect("the recorded definitions read back equal");
    let mut n = 0;
    let mut outcomes = Vec::new();
    for ops in batches() {
        let events: Vec<Envelope> = ops
            .iter()
            .map(|_| {
                n += 1;
                envelope(n)
            })
            .collect();
        let batch: Vec<ProjectedEvent<'_>> = events
            .iter()
            .zip(ops)
            .map(|(event, ops)| ProjectedEvent { event, ops })
            .collect();
        let outcome = db.apply_batch(&schema, &batch).await.expect("a batch");
        outcomes.push((outcome.applied, outcome.dead_lettered));
    }
    assert_eq!(outcomes, [(3, 0), (3, 1), (2, 0)]);
    assert_eq!(db.dead_letter_count("kinds").await.expect("count"), 1);

    let table = kinds();
    let by_id = db.all_rows(&table).await.expect("rows");
    assert_eq!(as_json(by_id), expected_kinds(), "{}", db.dialect().name());
    let ledger_table = ledger();
    let mut ledger_rows = Vec::new();
    let mut after = None;
    loop {
        let (page, next) = db
            .page_by_key(&ledger_table, vec![], after, 1)
            .await
            .expect("a ledger page");
        ledger_rows.extend(page);
        match next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(as_json(ledger_rows), expected_ledger());

    // Filters bind each type as its column stores it (a decimal of another scale too).
    let found = db
        .select(&Select {
            table: &table,
            filters: vec![
                ("price", dec(-125, 1)),
                ("day", day(1969, 7, 20)),
                ("flag", Value::Bool(true)),
            ],
            order_by: &["id"],
            after: None,
            descending: false,
            limit: 10,
        })
        .await
        .expect("filtered");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], A.to_string());
    let got = db
        .get(&table, vec![("id", Value::Uuid(E))])
        .await
        .expect("get")
        .expect("E");
    assert_eq!(got["price"], "0.01");

    let order = |ids: &[Uuid]| ids.iter().map(Uuid::to_string).collect::<Vec<_>>();
    assert_eq!(
        ids_paged(&db, &table, &["id"], false).await,
        order(&[C, A, E, B, D]),
        "uuid"
    );
    assert_eq!(
        ids_paged(&db, &table, &["day", "id"], false).await,
        order(&[B, A, E, D, C]),
        "date"
    );
    assert_eq!(
        ids_paged(&db, &table, &["day", "id"], true).await,
        order(&[C, D, E, A, B]),
        "date, descending"
    );
    assert_eq!(
        ids_paged(&db, &table, &["price", "id"], false).await,
        order(&[D, A, B, E, C]),
        "decimal"
    );
    assert_eq!(
        ids_paged(&db, &table, &["flag", "id"], false).await,
        order(&[C, B, A, E, D]),
        "boolean"
    );
    assert_eq!(
        ids_paged(&db, &table, &["flag", "id"], true).await,
        order(&[D, E, A, B, C]),
        "boolean, descending"
    );

    // The same batches again, as a redelivery: nothing changes.
    let digests = db.digest(&Kinds).await.expect("digest");
    let again: Vec<Envelope> = (1..=n).map(envelope).collect();
    let batch: Vec<ProjectedEvent<'_>> = again
        .iter()
        .map(|event| ProjectedEvent {
            event,
            ops: Ok(Vec::new()),
        })
        .collect();
    assert_eq!(
        db.apply_batch(&schema, &batch)
            .await
            .expect("again")
            .skipped,
        n as usize
    );
    assert_eq!(db.digest(&Kinds).await.expect("digest"), digests);
    db.close().await;
    digests
}

async fn sqlite_db(dir: &tempfile::TempDir) -> ReadModelDb {
    ReadModelDb::open_sqlite(dir.path().join("rm.sqlite"))
        .await
        .expect("open")
}

#[tokio::test]
async fn every_column_type_round_trips_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    round_trip(sqlite_db(&dir).await).await;
}

#[tokio::test]
async fn every_column_type_round_trips_on_postgres() {
    let database = TestDatabase::postgres().await;
    round_trip(ReadModelDb::connect(&database.url).await.expect("connect")).await;
}

#[tokio::test]
async fn every_column_type_round_trips_on_mariadb() {
    let database = TestDatabase::mysql().await;
    round_trip(ReadModelDb::connect(&database.url).await.expect("connect")).await;
}

#[tokio::test]
async fn equal_content_digests_equally_on_sqlite_postgres_and_mariadb() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = round_trip(sqlite_db(&dir).await).await;
    let pg = TestDatabase::postgres().await;
    let postgres = round_trip(ReadModelDb::connect(&pg.url).await.expect("connect")).await;
    let my = TestDatabase::mysql().await;
    let mariadb = round_trip(ReadModelDb::connect(&my.url).await.expect("connect")).await;
    assert_eq!(sqlite.len(), 3, "two tables and the stream versions");
    assert!(sqlite.iter().all(|d| d.rows > 0));
    assert_eq!(sqlite, postgres);
    assert_eq!(sqlite, mariadb);
}

#[tokio::test]
async fn tables_that_cannot_hold_their_types_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(&dir).await;
    #[derive(Debug)]
    struct Bad(Table);
    impl Projection for Bad {
        fn name(&self) -> &'static str {
            "bad"
        }
        fn tables(&self) -> Vec<Table> {
            vec![self.0.clone()]
        }
        fn stream_types(&self) -> &'static [&'static str] {
            &[]
        }
        fn apply(&self, _: &Envelope) -> Result<Vec<RowOp>, ProjectionError> {
            Ok(Vec::new())
        }
    }
    let table = |column: Column| Table {
        name: "bad",
        columns: vec![column],
        primary_key: &["k"],
        indexes: vec![],
    };
    for (column, reason) in [
        (Column::new("k", ColumnType::Json), "cannot be in a key"),
        (Column::new("k", ColumnType::Bytes), "cannot be in a key"),
        (Column::new("k", ColumnType::Double), "cannot be in a key"),
        (
            Column::new("k", ColumnType::decimal(19, 2)),
            "1 to 18 digits",
        ),
        (
            Column::new("k", ColumnType::decimal(2, 3)),
            "1 to 18 digits",
        ),
    ] {
        let refused = db
            .ensure_schema(&Bad(table(column.clone())))
            .await
            .expect_err("refused");
        assert!(
            refused.to_string().contains(reason),
            "{column:?}: {refused}"
        );
    }
}
