//! Read-model writers into PostgreSQL, each next to the physical limit: a raw `COPY` of the
//! rows the projection ends with, into the same tables, measured in the same run.
//!
//! - The Kafka projector: the events (bank accounts: opened, then deposits; 100 events per
//!   account) are produced straight to Kafka in the relay's wire format, so the figure is the
//!   projector's alone.
//! - A replay: the same events appended to a PostgreSQL event store, replayed into PostgreSQL.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use eventline_bank::AccountsProjection;
use eventline_core::{Envelope, Metadata, Position, Projection, RowOp, Value, wire};
use eventline_kafka::TopicSettings;
use eventline_projector::{KafkaProjector, KafkaProjectorConfig};
use eventline_readmodel::ReadModelDb;
use eventline_test_support::{TestDatabase, kafka_brokers, unique_name};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use sqlx::postgres::PgPoolCopyExt;
use tokio_util::sync::CancellationToken;

const EVENTS_PER_ACCOUNT: usize = 100;
const PARTITIONS: i32 = 12;

/// The `n`-th event (0-based) of `count`, interleaved so that consecutive events belong to
/// different accounts: round `r` holds version `r + 1` of every account.
pub(crate) fn envelope(n: usize, accounts: usize) -> Envelope {
    let account = n % accounts;
    let version = (n / accounts + 1) as u64;
    let (event_type, payload) = if version == 1 {
        (
            "AccountOpened",
            json!({"holder": format!("holder {account}"), "account_type": "checking", "opening_balance": 0}),
        )
    } else {
        let amount = version as i64;
        (
            "FundsDeposited",
            json!({"amount": amount, "balance": amount * (amount + 1) / 2 - 1}),
        )
    };
    Envelope {
        position: Position::sequential(n as u64 + 1),
        stream_id: format!("acct-{account:07}"),
        stream_type: "bank.account".to_owned(),
        version,
        event_type: event_type.to_owned(),
        schema_version: 1,
        payload,
        metadata: Metadata::default(),
        recorded_at: Utc::now(),
    }
}

/// Produces `count` events to the bank topic under `prefix`, keyed by stream id.
async fn produce(prefix: &str, count: usize, accounts: usize) -> anyhow::Result<()> {
    let topic = wire::topic_name(prefix, "bank.account");
    let admin = eventline_kafka::admin_client(&kafka_brokers())?;
    eventline_kafka::ensure_topics(
        &admin,
        std::slice::from_ref(&topic),
        TopicSettings {
            partitions: PARTITIONS,
            replication_factor: 1,
        },
    )
    .await
    .map_err(|(topic, e)| anyhow::anyhow!("creating {topic}: {e}"))?;
    let producer: FutureProducer = eventline_kafka::client_config(&kafka_brokers())
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "500000")
        .create()?;
    let mut pending = Vec::with_capacity(10_000);
    for n in 0..count {
        let event = envelope(n, accounts);
        let payload = wire::encode(&event)?;
        let record = FutureRecord::to(&topic)
            .key(event.stream_id.as_str())
            .payload(&payload);
        pending.push(
            producer
                .send_result(record)
                .map_err(|(e, _)| anyhow::anyhow!("enqueueing: {e}"))?,
        );
        if pending.len() == 10_000 {
            for delivery in pending.drain(..) {
                delivery
                    .await?
                    .map_err(|(e, _)| anyhow::anyhow!("delivery: {e}"))?;
            }
        }
    }
    for delivery in pending {
        delivery
            .await?
            .map_err(|(e, _)| anyhow::anyhow!("delivery: {e}"))?;
    }
    Ok(())
}

/// The rows the projection ends with after `count` events, per table, in column order.
fn final_rows(count: usize, accounts: usize) -> HashMap<&'static str, Vec<Vec<Value>>> {
    let projection = AccountsProjection;
    let tables = projection.tables();
    let mut rows: HashMap<&'static str, HashMap<Vec<String>, HashMap<&'static str, Value>>> =
        HashMap::new();
    let key_of = |table: &str, values: &[(&'static str, Value)]| -> Vec<String> {
        let t = tables.iter().find(|t| t.name == table).expect("declared");
        t.primary_key
            .iter()
            .map(|k| {
                let v = values.iter().find(|(c, _)| c == k).map(|(_, v)| v);
                format!("{v:?}")
            })
            .collect()
    };
    for n in 0..count {
        for op in projection.apply(&envelope(n, accounts)).expect("valid") {
            match op {
                RowOp::Upsert { table, row } => {
                    let key = key_of(table, &row);
                    rows.entry(table)
                        .or_default()
                        .entry(key)
                        .or_default()
                        .extend(row);
                }
                RowOp::Update { table, key, set } => {
                    let key = key_of(table, &key);
                    rows.entry(table)
                        .or_default()
                        .get_mut(&key)
                        .expect("updated row exists")
                        .extend(set);
                }
                RowOp::Delete { table, key } => {
                    let key = key_of(table, &key);
                    rows.entry(table).or_default().remove(&key);
                }
            }
        }
    }
    tables
        .iter()
        .map(|table| {
            let ordered = rows
                .remove(table.name)
                .unwrap_or_default()
                .into_values()
                .map(|mut row| {
                    table
                        .columns
                        .iter()
                        .map(|c| row.remove(c.name).unwrap_or(Value::Null))
                        .collect()
                })
                .collect();
            (table.name, ordered)
        })
        .collect()
}

/// One value in COPY's text format.
fn copy_text(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("\\N"),
        Value::Int(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Timestamp(t) => out.push_str(&t.to_rfc3339()),
        Value::Text(text) => copy_escaped(out, text),
        Value::Bool(v) => out.push(if *v { 't' } else { 'f' }),
        Value::Double(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Decimal(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Json(document) => copy_escaped(out, &document.to_string()),
        Value::Uuid(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Date(v) => {
            let _ = write!(out, "{v}");
        }
        // bytea's hex form, its backslash escaped for COPY.
        Value::Bytes(bytes) => {
            out.push_str("\\\\x");
            for byte in bytes {
                let _ = write!(out, "{byte:02x}");
            }
        }
    }
}

/// Text in COPY's text format: backslash and the control characters escaped.
fn copy_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// COPYs the final rows into a fresh database's projection tables; returns rows and time.
async fn raw_copy(
    rows: &HashMap<&'static str, Vec<Vec<Value>>>,
) -> anyhow::Result<(usize, Duration)> {
    let database = TestDatabase::postgres().await;
    let db = ReadModelDb::connect(&database.url).await?;
    db.ensure_schema(&AccountsProjection).await?;
    let pool = sqlx::PgPool::connect(&database.url).await?;
    let mut copied = 0;
    let started = Instant::now();
    for table in AccountsProjection.tables() {
        let columns: Vec<String> = table
            .columns
            .iter()
            .map(|c| format!("\"{}\"", c.name))
            .collect();
        let statement = format!(
            "COPY \"{}\" ({}) FROM STDIN",
            table.name,
            columns.join(", ")
        );
        let mut copy = pool.copy_in_raw(&statement).await?;
        let mut chunk = String::with_capacity(1 << 20);
        for row in &rows[table.name] {
            for (i, value) in row.iter().enumerate() {
                if i > 0 {
                    chunk.push('\t');
                }
                copy_text(&mut chunk, value);
            }
            chunk.push('\n');
            if chunk.len() > (1 << 20) - 4096 {
                copy.send(chunk.as_bytes()).await?;
                chunk.clear();
            }
        }
        copy.send(chunk.as_bytes()).await?;
        copied += usize::try_from(copy.finish().await?)?;
    }
    Ok((copied, started.elapsed()))
}

/// Measures and prints a raw COPY of the rows `count` events make; returns its rows/s.
async fn copy_reference(count: usize, accounts: usize) -> anyhow::Result<f64> {
    let rows = final_rows(count, accounts);
    let (copied, copy_time) = raw_copy(&rows).await.context("raw COPY")?;
    let copy_rate = copied as f64 / copy_time.as_secs_f64();
    println!(
        "{:<52} {:>10.0} rows/s     ({copied} rows in {:.1} s)",
        "raw COPY of the same final rows into postgres",
        copy_rate,
        copy_time.as_secs_f64()
    );
    Ok(copy_rate)
}

/// Produces `count` events, measures a raw COPY of the rows they make, then the projector.
pub async fn run(count: usize, batch: Option<usize>) -> anyhow::Result<()> {
    let accounts = count.div_ceil(EVENTS_PER_ACCOUNT).max(1);
    let count = accounts * EVENTS_PER_ACCOUNT.min(count);
    let prefix = unique_name("bench");
    let started = Instant::now();
    produce(&prefix, count, accounts).await?;
    println!(
        "(produced {count} events to Kafka, {PARTITIONS} partitions, in {:.1} s)",
        started.elapsed().as_secs_f64()
    );

    let copy_rate = copy_reference(count, accounts).await?;

    let database = TestDatabase::postgres().await;
    let db = ReadModelDb::connect_with_pool_size(&database.url, 8).await?;
    db.ensure_schema(&AccountsProjection).await?;
    let mut config = KafkaProjectorConfig::new(kafka_brokers());
    config.topic_prefix.clone_from(&prefix);
    config.group_prefix = prefix;
    config.topics.partitions = PARTITIONS;
    config.session_timeout = Duration::from_secs(6);
    if let Some(batch) = batch {
        config.batch_size = batch;
    }
    let batch_size = config.batch_size;
    let projector = KafkaProjector::new(db.clone(), Arc::new(AccountsProjection), config)?;
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(projector.run(shutdown.clone()));
    let consumed = || async {
        db.partition_offsets("bank-accounts")
            .await
            .map(|offsets| offsets.iter().map(|o| o.next_offset).sum::<i64>())
    };
    let deadline = Instant::now() + Duration::from_secs(1_800);
    let mut first: Option<(Instant, i64)> = None;
    let mut last_report = Instant::now();
    loop {
        let done = consumed().await?;
        if first.is_none() && done > 0 {
            first = Some((Instant::now(), done));
        }
        if done >= count as i64 {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            println!("  projector: {done} of {count} events");
            last_report = Instant::now();
        }
        if Instant::now() > deadline || running.is_finished() {
            shutdown.cancel();
            running.await??;
            bail!("the projector stopped at {done} of {count} events");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let finished = Instant::now();
    shutdown.cancel();
    running.await??;
    let (steady_from, steady_done) = first.context("no progress seen")?;
    let steady = (count as i64 - steady_done) as f64 / (finished - steady_from).as_secs_f64();
    println!(
        "{:<52} {:>10.0} events/s   ({count} events, rounds of {batch_size}; {:.2}x the raw \
         COPY row rate; rate after the group was joined)",
        "projector, kafka -> postgres (bank accounts)",
        steady,
        steady / copy_rate
    );
    Ok(())
}

/// Appends `count` events (100 per account) to a fresh PostgreSQL store, measures a raw
/// COPY of the rows they make, then a replay of the store into PostgreSQL.
pub async fn replay(count: usize) -> anyhow::Result<()> {
    use eventline_core::{EventStore, NewEvent};
    let accounts = count.div_ceil(EVENTS_PER_ACCOUNT).max(1);
    let per_account = EVENTS_PER_ACCOUNT.min(count);
    let count = accounts * per_account;
    let store_db = TestDatabase::postgres().await;
    let store: Arc<dyn EventStore> =
        Arc::new(eventline_store_postgres::PostgresEventStore::connect(&store_db.url, 8).await?);
    let started = Instant::now();
    let mut loading = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let store = Arc::clone(&store);
        loading.spawn(async move {
            for account in (worker..accounts).step_by(8) {
                let events: Vec<NewEvent> = (0..per_account)
                    .map(|round| {
                        let e = envelope(round * accounts + account, accounts);
                        NewEvent {
                            event_type: e.event_type,
                            schema_version: e.schema_version,
                            payload: e.payload,
                            metadata: e.metadata,
                        }
                    })
                    .collect();
                let mut version = 0;
                for chunk in events.chunks(20) {
                    version = store
                        .append(
                            &format!("acct-{account:07}"),
                            "bank.account",
                            version,
                            chunk.to_vec(),
                        )
                        .await?
                        .version;
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(loaded) = loading.join_next().await {
        loaded??;
    }
    println!(
        "(appended {count} events to a postgres store in {:.1} s)",
        started.elapsed().as_secs_f64()
    );

    let copy_rate = copy_reference(count, accounts).await?;

    // What reading alone costs: the whole store in the replay's batches.
    let started = Instant::now();
    let mut after = eventline_core::Position::START;
    let mut read = 0;
    loop {
        let batch = store.read_all(after, 10_000).await?;
        let Some(last) = batch.last() else { break };
        after = last.position;
        read += batch.len();
    }
    println!(
        "{:<52} {:>10.0} events/s   ({read} events)",
        "reading the postgres store alone",
        read as f64 / started.elapsed().as_secs_f64()
    );

    let target_db = TestDatabase::postgres().await;
    let target = ReadModelDb::connect_with_pool_size(&target_db.url, 4).await?;
    let replay = eventline_replay::Replay::new(
        Arc::clone(&store),
        target,
        Arc::new(AccountsProjection),
        eventline_replay::ReplayConfig::new("bench"),
    );
    let started = Instant::now();
    let done = replay
        .run(CancellationToken::new(), |p| {
            if !p.done {
                println!("  replay: {} of {} events", p.position, p.total);
            }
        })
        .await?;
    let elapsed = started.elapsed();
    let rate = done.applied as f64 / elapsed.as_secs_f64();
    println!(
        "{:<52} {:>10.0} events/s   ({} events in {:.1} s; {:.2}x the raw COPY row rate)",
        "replay, postgres store -> postgres (bank accounts)",
        rate,
        done.applied,
        elapsed.as_secs_f64(),
        rate / copy_rate
    );
    Ok(())
}
