//! The query service under a steady load: requests sent at a fixed rate whatever the answers
//! take (an open loop, so a slow answer delays no later request and hides nothing), each
//! timed from when it was due, against a PostgreSQL read model of bank accounts.
//!
//! Measured in the steady state a deployed query service is in: the freshly loaded tables
//! are vacuumed and analysed and the database checkpointed first (a bulk load leaves
//! autovacuum and the checkpointer busy for a while, and earlier benchmarks leave them
//! more), then one second at the same rate, not counted, opens the connections (database pool
//! and HTTP) that the rate needs. Without those, the first requests at 2,000/s waited for new
//! database connections and the background writers took the tail: p99 14 to 137 ms.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventline_auth::Authentication;
use eventline_bank::AccountsProjection;
use eventline_readmodel::{ProjectedEvent, ReadModelDb};
use eventline_test_support::TestDatabase;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::Figures;
use crate::projector::envelope;

const EVENTS_PER_ACCOUNT: usize = 10;

/// Fills the read model with `accounts` accounts of ten events each.
async fn seed(db: &ReadModelDb, accounts: usize) -> anyhow::Result<()> {
    let schema = db.ensure_schema(&AccountsProjection).await?;
    let events: Vec<_> = (0..accounts * EVENTS_PER_ACCOUNT)
        .map(|n| envelope(n, accounts))
        .collect();
    for chunk in events.chunks(5_000) {
        let batch: Vec<ProjectedEvent<'_>> = chunk
            .iter()
            .map(|event| ProjectedEvent {
                event,
                ops: eventline_core::Projection::apply(&AccountsProjection, event),
            })
            .collect();
        db.apply_batch(&schema, &batch).await?;
    }
    Ok(())
}

/// `GET /accounts/{id}` at `rate` requests per second for `duration`, `runs` times in a row,
/// with a token; each run printed on its own line.
pub async fn queries(
    auth: Authentication,
    token: String,
    accounts: usize,
    rate: f64,
    duration: Duration,
    runs: usize,
) -> anyhow::Result<()> {
    let database = TestDatabase::postgres().await;
    let db = ReadModelDb::connect_with_pool_size(&database.url, 16).await?;
    seed(&db, accounts).await?;
    settle(&database.url).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let service = eventline_app::App::new()
        .domain(eventline_bank::domain())
        .query_service(db, &auth);
    let server = tokio::spawn(eventline_http::serve(listener, service, shutdown.clone()));
    let load = Load {
        http: reqwest::Client::new(),
        base,
        token: Arc::new(token),
        accounts,
        rate,
    };
    load.run(Duration::from_secs(1).min(duration)).await?;
    for run in 1..=runs {
        load.run(duration).await?.print(
            &format!("account queries over HTTP, postgres, {rate:.0}/s offered, run {run}"),
            "queries",
        );
    }
    shutdown.cancel();
    server.await??;
    Ok(())
}

/// Vacuums and analyses the bench's database and checkpoints the server, so that background
/// work left by the load (and by earlier benchmarks) is not measured as query latency.
async fn settle(url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql("VACUUM (ANALYZE)").execute(&mut conn).await?;
    // CHECKPOINT needs superuser rights (or pg_checkpoint); without them, only say so.
    if let Err(e) = sqlx::raw_sql("CHECKPOINT").execute(&mut conn).await {
        println!("(queries: no CHECKPOINT before measuring: {e})");
    }
    conn.close().await?;
    Ok(())
}

/// The open-loop load: where, with what, how fast.
struct Load {
    http: reqwest::Client,
    base: String,
    token: Arc<String>,
    accounts: usize,
    rate: f64,
}

impl Load {
    /// Sends requests at the rate for `duration`, each timed from when it was due.
    async fn run(&self, duration: Duration) -> anyhow::Result<Figures> {
        let (http, base, token) = (
            self.http.clone(),
            self.base.clone(),
            Arc::clone(&self.token),
        );
        let accounts = self.accounts;
        // A thread of its own dispatches the requests on time: OS sleeps are precise to well
        // under a millisecond, tokio's timer is not.
        let interval = Duration::from_secs_f64(1.0 / self.rate);
        let runtime = tokio::runtime::Handle::current();
        let dispatcher = std::thread::spawn(move || {
            let started = Instant::now();
            let mut requests = JoinSet::new();
            let mut sent = 0_usize;
            let mut due = started;
            while due < started + duration {
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                let url = format!("{base}/accounts/acct-{:07}", (sent * 7_919) % accounts);
                let (http, token, scheduled) = (http.clone(), Arc::clone(&token), due);
                requests.spawn_on(
                    async move {
                        let ok = match http.get(url).bearer_auth(token.as_str()).send().await {
                            Ok(response) if response.status().is_success() => {
                                response.bytes().await.is_ok()
                            }
                            _ => false,
                        };
                        (ok, scheduled.elapsed())
                    },
                    &runtime,
                );
                sent += 1;
                due += interval;
            }
            (requests, started, sent)
        });
        let (mut requests, started, sent) = tokio::task::spawn_blocking(move || dispatcher.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the request dispatcher panicked"))?;
        let mut figures = Figures {
            operations: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            latencies_us: Vec::with_capacity(sent),
        };
        while let Some(joined) = requests.join_next().await {
            match joined {
                Ok((true, latency)) => {
                    figures.operations += 1;
                    figures.latencies_us.push(latency.as_micros() as u64);
                }
                _ => figures.errors += 1,
            }
        }
        figures.elapsed = started.elapsed();
        Ok(figures)
    }
}
