//! The same read-model scenario on SQLite, PostgreSQL and MariaDB: one code path, three
//! databases, identical results.

use chrono::{TimeZone, Utc};
use eventline_core::{
    Column, ColumnType, Envelope, Index, Metadata, Position, Projection, ProjectionError, RowOp,
    Table, Value,
};
use eventline_readmodel::{ProjectedEvent, ReadModelDb, Select};
use eventline_test_support::TestDatabase;
use serde_json::json;

#[derive(Debug)]
struct Notes;

fn notes() -> Table {
    Table {
        name: "notes",
        columns: vec![
            Column::new("id", ColumnType::Text),
            Column::new("author", ColumnType::Text),
            Column::new("words", ColumnType::BigInt),
            Column::nullable("body", ColumnType::Text),
            Column::new("written_at", ColumnType::Timestamp),
        ],
        primary_key: &["id"],
        indexes: vec![Index {
            name: "notes_by_author",
            columns: &["author", "id"],
        }],
    }
}

impl Projection for Notes {
    fn name(&self) -> &'static str {
        "notes"
    }
    fn tables(&self) -> Vec<Table> {
        vec![notes()]
    }
    fn stream_types(&self) -> &'static [&'static str] {
        &["notes"]
    }
    fn handles(&self, _: &str) -> bool {
        true
    }
    fn apply(&self, _: &Envelope) -> Result<Vec<RowOp>, ProjectionError> {
        Ok(Vec::new())
    }
}

fn envelope(n: u64) -> Envelope {
    Envelope {
        position: Position::sequential(n),
        stream_id: format!("s{n}"),
        stream_type: "test".into(),
        version: 1,
        event_type: "Noted".into(),
        schema_version: 1,
        payload: json!({ "n": n }),
        metadata: Metadata::default(),
        recorded_at: Utc::now(),
    }
}

fn note(
    id: &str,
    author: &str,
    words: i64,
    body: Option<&str>,
    at: chrono::DateTime<Utc>,
) -> RowOp {
    RowOp::Upsert {
        table: "notes",
        row: vec![
            ("id", Value::from(id)),
            ("author", Value::from(author)),
            ("words", Value::Int(words)),
            ("body", Value::from(body)),
            ("written_at", Value::Timestamp(at)),
        ],
    }
}

async fn scenario(db: ReadModelDb) {
    let schema = db.ensure_schema(&Notes).await.expect("schema");
    db.ensure_schema(&Notes)
        .await
        .expect("schema again is a no-op");
    assert_eq!(
        db.checkpoint("notes").await.expect("checkpoint"),
        Position::START
    );

    let at = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap()
        + chrono::Duration::microseconds(123_456);
    let events: Vec<Envelope> = (1..=6).map(envelope).collect();
    let ops: Vec<Result<Vec<RowOp>, ProjectionError>> = vec![
        Ok(vec![note("n1", "ada", 3, Some("Ünïcödé ✓ 'quoted'"), at)]),
        Ok(vec![
            note("n2", "ada", 5, None, at),
            note("n3", "grace", 8, Some("x"), at),
        ]),
        Ok(vec![RowOp::Update {
            table: "notes",
            key: vec![("id", Value::from("n1"))],
            set: vec![("words", Value::Int(4))],
        }]),
        Err(ProjectionError::new(&events[3], "cannot decode")),
        // A row that does not exist: the database says nothing changed, so it is dead-lettered.
        Ok(vec![RowOp::Update {
            table: "notes",
            key: vec![("id", Value::from("ghost"))],
            set: vec![("words", Value::Int(1))],
        }]),
        Ok(vec![RowOp::Delete {
            table: "notes",
            key: vec![("id", Value::from("n3"))],
        }]),
    ];
    let batch: Vec<ProjectedEvent<'_>> = events
        .iter()
        .zip(ops)
        .map(|(event, ops)| ProjectedEvent { event, ops })
        .collect();
    let outcome = db.apply_batch(&schema, &batch).await.expect("apply");
    assert_eq!(
        (outcome.applied, outcome.dead_lettered, outcome.skipped),
        (4, 2, 0)
    );
    assert_eq!(outcome.checkpoint, Position::sequential(6));
    assert_eq!(
        db.checkpoint("notes").await.expect("checkpoint"),
        Position::sequential(6)
    );
    assert_eq!(
        db.dead_letter_count("notes").await.expect("dead letters"),
        2
    );

    let table = notes();
    let all = db
        .select(&Select {
            table: &table,
            filters: vec![],
            order_by: &["id"],
            after: None,
            descending: false,
            limit: 10,
        })
        .await
        .expect("select");
    assert_eq!(
        serde_json::Value::Array(all.iter().cloned().map(serde_json::Value::Object).collect()),
        json!([
            { "id": "n1", "author": "ada", "words": 4, "body": "Ünïcödé ✓ 'quoted'",
              "written_at": "2026-11-25T10:00:00.123456Z" },
            { "id": "n2", "author": "ada", "words": 5, "body": null,
              "written_at": "2026-11-25T10:00:00.123456Z" },
        ])
    );
    let page = db
        .select(&Select {
            table: &table,
            filters: vec![("author", Value::from("ada"))],
            order_by: &["id"],
            after: Some(vec![Value::from("n1")]),
            descending: false,
            limit: 10,
        })
        .await
        .expect("page");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["id"], "n2");

    // The same batch again, as a redelivery: nothing changes.
    let again = db.apply_batch(&schema, &batch).await.expect("apply again");
    assert_eq!((again.applied, again.skipped), (0, 6));
    let after = db
        .select(&Select {
            table: &table,
            filters: vec![],
            order_by: &["id"],
            after: None,
            descending: false,
            limit: 10,
        })
        .await
        .expect("select");
    assert_eq!(after, all);
    db.ping().await.expect("ping");
    db.close().await;
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    scenario(
        ReadModelDb::open_sqlite(dir.path().join("rm.sqlite"))
            .await
            .expect("open"),
    )
    .await;
}

#[tokio::test]
async fn postgres() {
    let database = TestDatabase::postgres().await;
    scenario(ReadModelDb::connect(&database.url).await.expect("connect")).await;
}

#[tokio::test]
async fn mariadb() {
    let database = TestDatabase::mysql().await;
    scenario(ReadModelDb::connect(&database.url).await.expect("connect")).await;
}

#[tokio::test]
async fn an_unknown_scheme_is_refused_naming_only_the_scheme() {
    let err = ReadModelDb::connect("oracle://admin:hunter2@db/x")
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("\"oracle\""), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

async fn one_holder_at_a_time(db: ReadModelDb) {
    let first = db
        .try_lease("relay")
        .await
        .expect("try")
        .expect("free at first");
    assert!(
        db.try_lease("relay").await.expect("try").is_none(),
        "held by the first"
    );
    assert!(
        db.try_lease("other").await.expect("try").is_some(),
        "names are independent"
    );
    // Names longer than MySQL's 64-character lock names work, and stay exclusive.
    let long = format!("eventline-processor:{}", "x".repeat(100));
    let held = db
        .try_lease(&long)
        .await
        .expect("a long name")
        .expect("free");
    assert!(
        db.try_lease(&long).await.expect("try").is_none(),
        "a long name is held too"
    );
    drop(held);
    let mut first = first;
    first.check().await.expect("still held");
    drop(first);
    let again = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            if let Some(lease) = db.try_lease("relay").await.expect("try") {
                return lease;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("free again once the holder is gone");
    assert_eq!(again.name(), "relay");
}

#[tokio::test]
async fn postgres_lease() {
    let database = TestDatabase::postgres().await;
    one_holder_at_a_time(ReadModelDb::connect(&database.url).await.expect("connect")).await;
}

#[tokio::test]
async fn mariadb_lease() {
    let database = TestDatabase::mysql().await;
    one_holder_at_a_time(ReadModelDb::connect(&database.url).await.expect("connect")).await;
}

/// A projection whose tables are given, to change them between runs.
#[derive(Debug)]
struct Drafts(Vec<Table>);

impl Projection for Drafts {
    fn name(&self) -> &'static str {
        "drafts"
    }
    fn tables(&self) -> Vec<Table> {
        self.0.clone()
    }
    fn stream_types(&self) -> &'static [&'static str] {
        &["drafts"]
    }
    fn apply(&self, _: &Envelope) -> Result<Vec<RowOp>, ProjectionError> {
        Ok(Vec::new())
    }
}

fn drafts() -> Table {
    Table {
        name: "drafts",
        columns: vec![
            Column::new("id", ColumnType::Text),
            Column::new("words", ColumnType::BigInt),
        ],
        primary_key: &["id"],
        indexes: vec![],
    }
}

/// Additive changes migrate the table in place, keeping its rows; others are refused.
async fn migrations(db: ReadModelDb) {
    let v1 = drafts();
    let schema = db
        .ensure_schema(&Drafts(vec![v1.clone()]))
        .await
        .expect("v1");
    let event = envelope(1);
    let row = |words: i64| {
        vec![RowOp::Upsert {
            table: "drafts",
            row: vec![("id", Value::from("d1")), ("words", Value::Int(words))],
        }]
    };
    db.apply_batch(
        &schema,
        &[ProjectedEvent {
            event: &event,
            ops: Ok(row(3)),
        }],
    )
    .await
    .expect("v1 row");

    let mut v2 = drafts();
    v2.columns.push(Column::nullable("title", ColumnType::Text));
    v2.indexes.push(Index {
        name: "drafts_by_title",
        columns: &["title", "id"],
    });
    db.ensure_schema(&Drafts(vec![v2.clone()]))
        .await
        .expect("v2 migrates");
    db.ensure_schema(&Drafts(vec![v2.clone()]))
        .await
        .expect("v2 again is a no-op");
    let rows = db
        .select(&Select {
            table: &v2,
            filters: vec![],
            order_by: &["id"],
            after: None,
            descending: false,
            limit: 10,
        })
        .await
        .expect("select v2");
    assert_eq!(
        serde_json::Value::Array(rows.into_iter().map(serde_json::Value::Object).collect()),
        json!([{ "id": "d1", "words": 3, "title": null }])
    );

    let mut v3 = v2.clone();
    v3.columns[1] = Column::new("words", ColumnType::Text);
    let refused = db
        .ensure_schema(&Drafts(vec![v3]))
        .await
        .expect_err("a retyped column is refused");
    let text = refused.to_string();
    assert!(text.contains("drafts"), "{text}");
    assert!(
        text.contains("column \"words bigint\" became \"words text\""),
        "{text}"
    );
    assert!(text.contains("replay the projection"), "{text}");
}

#[tokio::test]
async fn sqlite_migrations() {
    let dir = tempfile::tempdir().expect("temp dir");
    migrations(
        ReadModelDb::open_sqlite(dir.path().join("rm.sqlite"))
            .await
            .expect("open"),
    )
    .await;
}

#[tokio::test]
async fn postgres_migrations() {
    let database = TestDatabase::postgres().await;
    migrations(ReadModelDb::connect(&database.url).await.expect("connect")).await;
}

#[tokio::test]
async fn mariadb_migrations() {
    let database = TestDatabase::mysql().await;
    migrations(ReadModelDb::connect(&database.url).await.expect("connect")).await;
}
