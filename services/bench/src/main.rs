//! Eventline's benchmarks. They print figures; they assert nothing and are not timed tests.
//!
//! ```sh
//! cargo run --release -p eventline-bench                 # everything, 10 s per figure
//! cargo run --release -p eventline-bench -- --only commands --clients 16 --seconds 30
//! cargo run -p eventline-bench -- --smoke                # a quick run that only proves it works
//! ```
//!
//! The `commands` benchmark starts servers from their binaries, beside this one (or
//! `--eventline-bin`, `--reference-bin`): build them in the same profile first.
//!
//! ```sh
//! cargo build --release -p eventline -p eventline-bench
//! CARGO_TARGET_DIR=target cargo build --release --manifest-path benches/cqrs-es-reference/Cargo.toml
//! ./target/release/eventline-bench --only commands
//! ```
//!
//! PostgreSQL is the server at `EVENTLINE_TEST_POSTGRES_URL` (default: the local one); each
//! run uses a database of its own and drops it afterwards.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::{Parser, ValueEnum};
use eventline_auth::{Access, Authentication, DevToken, JwtConfig, KeySource, Secret, mint_hs256};
use eventline_core::{EventStore, Metadata, NewEvent};
use eventline_store_postgres::PostgresEventStore;
use eventline_store_sqlite::SqliteEventStore;
use eventline_test_support::TestDatabase;
use serde_json::json;
use tokio::task::JoinSet;

mod commands;
mod projector;
mod queries;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Bench {
    /// Appends of 1 and of 10 events, straight to SQLite and PostgreSQL.
    Appends,
    /// Deposit commands over HTTP to `eventline command-api` in a process of its own
    /// (PostgreSQL with group commit on and off, SQLite), to the cqrs-es reference likewise,
    /// and PostgreSQL's own limit for single-row INSERT commits.
    Commands,
    /// The relay publishing a PostgreSQL store to Kafka (EVENTLINE_TEST_KAFKA_BROKERS).
    Relay,
    /// The Kafka projector into PostgreSQL, next to a raw COPY of the same rows.
    Projector,
    /// A replay from a PostgreSQL store into PostgreSQL, next to a raw COPY of the same rows.
    Replay,
    /// Account queries over HTTP at a fixed rate (--query-rate), read model in PostgreSQL.
    Queries,
}

#[derive(Debug, Parser)]
#[command(about = "Eventline benchmarks: print throughput and latency figures")]
struct Args {
    /// Which benchmarks to run.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "appends,commands,queries,relay,projector,replay"
    )]
    only: Vec<Bench>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds measured per figure.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Accounts the command benchmark spreads its deposits over.
    #[arg(long, default_value_t = 1_000)]
    accounts: usize,
    /// Events the relay benchmark publishes.
    #[arg(long, default_value_t = 200_000)]
    relay_events: usize,
    /// Events the projector and replay benchmarks write (100 per account).
    #[arg(long, default_value_t = 1_000_000)]
    projector_events: usize,
    /// Messages per projector round (default: the projector's own default).
    #[arg(long)]
    projector_batch: Option<usize>,
    /// Requests per second the query benchmark sends, whatever the answers take.
    #[arg(long, default_value_t = 2_000.0)]
    query_rate: f64,
    /// Measured runs of the query benchmark, one after another (each printed).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    query_runs: u64,
    /// Connections to PostgreSQL (default: one per client, plus two).
    #[arg(long)]
    pool: Option<u32>,
    /// The `eventline` binary the command benchmark starts (default: the one beside this
    /// executable, in target/release or target/debug).
    #[arg(long, value_name = "PATH")]
    eventline_bin: Option<PathBuf>,
    /// The cqrs-es reference binary the command benchmark starts (default: the one beside
    /// this executable).
    #[arg(long, value_name = "PATH")]
    reference_bin: Option<PathBuf>,
    /// A short run (0.5 s per figure, few accounts) that only proves every benchmark works;
    /// the command benchmark skips the cqrs-es reference when it is not built.
    #[arg(long)]
    smoke: bool,
}

/// Throughput and latency of one measured run.
pub(crate) struct Figures {
    pub(crate) operations: usize,
    pub(crate) errors: usize,
    pub(crate) elapsed: Duration,
    pub(crate) latencies_us: Vec<u64>,
}

impl Figures {
    fn per_second(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        self.latencies_us.sort_unstable();
        let i = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }

    pub(crate) fn print(mut self, what: &str, unit: &str) {
        let (p50, p99) = (self.percentile_ms(0.50), self.percentile_ms(0.99));
        println!(
            "{what:<52} {:>10.0} {unit}/s   p50 {p50:>6.2} ms   p99 {p99:>6.2} ms   ({} in {:.1} s, {} errors)",
            self.per_second(),
            self.operations,
            self.elapsed.as_secs_f64(),
            self.errors,
        );
    }
}

/// Runs `clients` copies of `operation` (given the client index and a counter) for `duration`.
async fn measure<F, Fut>(clients: usize, duration: Duration, operation: F) -> Figures
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let operation = Arc::new(operation);
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = JoinSet::new();
    for client in 0..clients {
        let operation = Arc::clone(&operation);
        tasks.spawn(async move {
            let (mut ok, mut errors, mut latencies) = (0, 0, Vec::new());
            let mut n = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                if operation(client, n).await {
                    ok += 1;
                    latencies.push(t.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
                n += 1;
            }
            (ok, errors, latencies)
        });
    }
    let mut figures = Figures {
        operations: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
    };
    while let Some(joined) = tasks.join_next().await {
        if let Ok((ok, errors, latencies)) = joined {
            figures.operations += ok;
            figures.errors += errors;
            figures.latencies_us.extend(latencies);
        }
    }
    figures.elapsed = started.elapsed();
    figures
}

fn events(count: usize, n: usize) -> Vec<NewEvent> {
    (0..count)
        .map(|i| NewEvent {
            event_type: "FundsDeposited".into(),
            schema_version: 1,
            payload: json!({ "amount": 1, "balance": n * count + i }),
            metadata: Metadata::default(),
        })
        .collect()
}

/// Each client appends to streams of its own, so every append succeeds at its first try.
async fn appends(
    store: Arc<dyn EventStore>,
    label: &str,
    per_append: usize,
    args: &Args,
    duration: Duration,
) {
    let versions: Arc<Vec<std::sync::atomic::AtomicU64>> =
        Arc::new((0..args.clients).map(|_| Default::default()).collect());
    let run = uuid_like();
    let figures = measure(args.clients, duration, move |client, n| {
        let store = Arc::clone(&store);
        let versions = Arc::clone(&versions);
        let stream = format!("bench-{run}-{client}");
        async move {
            let expected = versions[client].load(std::sync::atomic::Ordering::Relaxed);
            match store
                .append(&stream, "bench.account", expected, events(per_append, n))
                .await
            {
                Ok(outcome) => {
                    versions[client].store(outcome.version, std::sync::atomic::Ordering::Relaxed);
                    true
                }
                Err(_) => false,
            }
        }
    })
    .await;
    let events_per_second = figures.per_second() * per_append as f64;
    figures.print(
        &format!(
            "append {per_append:>2} event(s), {label}, {} clients",
            args.clients
        ),
        "appends",
    );
    println!("{:<52} {events_per_second:>10.0} events/s", "");
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// How fast one thread verifies the token every command carries.
async fn verifications(
    auth: &Authentication,
    token: &str,
    duration: Duration,
) -> anyhow::Result<()> {
    let Authentication::Jwt(verifier) = auth else {
        bail!("the benchmark's authentication is off");
    };
    let started = Instant::now();
    let mut verified = 0_u64;
    while started.elapsed() < duration {
        for _ in 0..100 {
            verifier.verify(token).await?;
        }
        verified += 100;
    }
    let per_second = verified as f64 / started.elapsed().as_secs_f64();
    println!(
        "{:<52} {per_second:>10.0} tokens/s   {:.1} µs each",
        "JWT verification (HS256), 1 thread",
        1e6 / per_second
    );
    Ok(())
}

/// JWT authentication trusting the HS256 `secret` (at least 32 bytes), and a token signed with
/// it that has the scope `access` needs.
async fn bench_auth(secret: &str, access: Access) -> anyhow::Result<(Authentication, String)> {
    let secret = Secret::new(secret)?;
    let config = JwtConfig {
        issuer: commands::ISSUER.into(),
        audience: commands::AUDIENCE.into(),
        keys: vec![KeySource::Hs256(secret.clone())],
        read_scope: "eventline:read".into(),
        write_scope: "eventline:write".into(),
        leeway: Duration::from_secs(30),
    };
    let token = mint_hs256(
        &secret,
        &DevToken {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            subject: "bench".into(),
            scopes: vec![match access {
                Access::Read => config.read_scope.clone(),
                Access::Write => config.write_scope.clone(),
            }],
            ttl: Duration::from_secs(3_600),
        },
    )?;
    Ok((Authentication::jwt(config).await?, token))
}

fn pool_size(args: &Args) -> u32 {
    args.pool.unwrap_or(args.clients as u32 + 2)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.seconds = 0.5;
        args.accounts = args.accounts.min(50);
        args.relay_events = args.relay_events.min(2_000);
        args.projector_events = args.projector_events.min(5_000);
        args.query_runs = 1;
    }
    if args.clients == 0 || args.seconds <= 0.0 {
        bail!("--clients and --seconds must be greater than 0");
    }
    let duration = Duration::from_secs_f64(args.seconds);
    println!(
        "eventline-bench: {} clients, {:.1} s per figure{}",
        args.clients,
        args.seconds,
        if cfg!(debug_assertions) {
            " (debug build: figures are not representative)"
        } else {
            ""
        }
    );

    if args.only.contains(&Bench::Appends) {
        let dir = tempfile::tempdir()?;
        let sqlite: Arc<dyn EventStore> =
            Arc::new(SqliteEventStore::open(dir.path().join("events.sqlite")).await?);
        let database = TestDatabase::postgres().await;
        let postgres: Arc<dyn EventStore> =
            Arc::new(PostgresEventStore::connect(&database.url, pool_size(&args)).await?);
        for per_append in [1, 10] {
            appends(Arc::clone(&sqlite), "sqlite", per_append, &args, duration).await;
            appends(
                Arc::clone(&postgres),
                "postgres",
                per_append,
                &args,
                duration,
            )
            .await;
        }
    }
    if args.only.contains(&Bench::Commands) {
        commands::run(&args, duration).await?;
    }
    if args.only.contains(&Bench::Queries) {
        let secret = format!("eventline-bench-{:032x}", uuid_like());
        let (auth, token) = bench_auth(&secret, Access::Read).await?;
        queries::queries(
            auth,
            token,
            args.accounts * 10,
            args.query_rate,
            duration,
            args.query_runs as usize,
        )
        .await?;
    }
    if args.only.contains(&Bench::Relay) {
        relay(&args).await?;
    }
    if args.only.contains(&Bench::Projector) {
        projector::run(args.projector_events, args.projector_batch).await?;
    }
    if args.only.contains(&Bench::Replay) {
        projector::replay(args.projector_events).await?;
    }
    Ok(())
}

/// Fills a PostgreSQL store with `--relay-events` events (10-event appends over 1,000
/// streams), then times the relay from an empty checkpoint until it has published them all.
async fn relay(args: &Args) -> anyhow::Result<()> {
    let database = TestDatabase::postgres().await;
    let store: Arc<dyn EventStore> = Arc::new(PostgresEventStore::connect(&database.url, 8).await?);
    let appends = args.relay_events.div_ceil(10);
    let mut loading = JoinSet::new();
    for worker in 0..8 {
        let store = Arc::clone(&store);
        loading.spawn(async move {
            let mut versions = std::collections::HashMap::new();
            for n in (worker..appends).step_by(8) {
                let stream = format!("relay-{}", n % 1_000);
                let version: &mut u64 = versions.entry(stream.clone()).or_default();
                *version = store
                    .append(&stream, "bench.account", *version, events(10, n))
                    .await?
                    .version;
            }
            anyhow::Ok(())
        });
    }
    while let Some(loaded) = loading.join_next().await {
        loaded??;
    }
    let total = appends * 10;
    let checkpoints = database.url.clone();
    let checkpoints = eventline_readmodel::ReadModelDb::connect(&checkpoints).await?;
    let brokers = std::env::var("EVENTLINE_TEST_KAFKA_BROKERS")
        .unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
    let mut config = eventline_relay::RelayConfig::new(brokers);
    config.topic_prefix = format!("bench{}", uuid_like());
    config.partitions = 12;
    let mut relay = eventline_relay::Relay::new(Arc::clone(&store), checkpoints, config).await?;
    let started = Instant::now();
    let mut published = 0;
    loop {
        let n = relay.step().await?;
        if n == 0 {
            break;
        }
        published += n;
    }
    let elapsed = started.elapsed();
    if published != total {
        bail!("the relay published {published} of {total} events");
    }
    println!(
        "{:<52} {:>10.0} events/s   ({published} events in {:.1} s, batches of 1000)",
        "relay, postgres store -> kafka, 12 partitions",
        published as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    Ok(())
}
