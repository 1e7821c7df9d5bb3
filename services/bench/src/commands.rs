//! The command path as a user meets it: each server in a process of its own, started from its
//! binary, driven over HTTP by the same client code, next to the limit PostgreSQL itself sets
//! for commits.
//!
//! 1. The raw limit: `--clients` clients each committing single-row `INSERT`s of an event-shaped
//!    row, straight through sqlx, no server in between.
//! 2. `eventline command-api` on PostgreSQL, with its default group commit, then with
//!    `--append-batch 1` (every append its own commit), each command carrying a JWT.
//! 3. The cqrs-es + postgres-es reference (`benches/cqrs-es-reference --serve`).
//! 4. `eventline command-api` on SQLite, the store a file in a temporary directory.
//!
//! A server in a process of its own has its own allocator and runtime threads and a real
//! socket to its clients, as deployed; it still shares the machine's cores with the clients and
//! PostgreSQL. Each server's peak resident memory (`VmHWM`) is read just before it is stopped
//! with SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use eventline_auth::Access;
use eventline_test_support::TestDatabase;
use serde_json::json;
use tokio::task::JoinSet;

use crate::{Args, bench_auth, measure, pool_size, uuid_like, verifications};

mod server;

use server::{Binary, Found, Server};

/// The issuer and audience of the benchmark's tokens, passed to `eventline` as flags.
pub(crate) const ISSUER: &str = "eventline-bench";
pub(crate) const AUDIENCE: &str = "eventline";

/// Throughputs measured in this run, for the ratios printed at the end.
#[derive(Debug, Default)]
struct Throughputs {
    raw: Option<f64>,
    eventline: Option<f64>,
    eventline_unbatched: Option<f64>,
    reference: Option<f64>,
}

/// Every figure of the `commands` benchmark, in order, then the ratios.
pub(crate) async fn run(args: &Args, duration: Duration) -> anyhow::Result<()> {
    // Both before any measuring, so that a missing one fails the run at once.
    let eventline = Binary::eventline(args)?;
    let reference = Binary::reference(args)?;
    let mut throughputs = Throughputs {
        raw: Some(raw_inserts(args, duration).await?),
        ..Throughputs::default()
    };

    // As deployed: every command carries a JWT the service verifies (HS256 here).
    let secret = format!("eventline-bench-{:032x}", uuid_like());
    let (auth, token) = bench_auth(&secret, Access::Write).await?;
    verifications(&auth, &token, duration.min(Duration::from_secs(1))).await?;
    println!(
        "deposit commands over HTTP, {} clients over {} accounts, each server in a process of its own:",
        args.clients, args.accounts
    );

    let database = TestDatabase::postgres().await;
    let server = eventline
        .command_api(&database.url, &[], &secret, args)
        .await?;
    throughputs.eventline =
        Some(drive(server, Some(&token), "eventline, postgres", args, duration).await?);
    drop(database);

    if eventline.has_append_batch().await? {
        let database = TestDatabase::postgres().await;
        let server = eventline
            .command_api(&database.url, &["--append-batch", "1"], &secret, args)
            .await?;
        let label = "eventline, postgres, --append-batch 1";
        throughputs.eventline_unbatched =
            Some(drive(server, Some(&token), label, args, duration).await?);
    } else {
        println!(
            "eventline, postgres, --append-batch 1: skipped, because {} command-api has no \
             --append-batch flag",
            eventline.path.display()
        );
    }

    match reference {
        Found::Yes(reference) => {
            let server = reference.serve(args).await?;
            // The reference checks no tokens, so none is sent.
            throughputs.reference =
                Some(drive(server, None, "cqrs-es + postgres-es", args, duration).await?);
        }
        Found::Skipped(why) => println!("cqrs-es reference: skipped, because {why}"),
    }

    let dir = tempfile::tempdir()?;
    let sqlite = format!("sqlite://{}", dir.path().join("events.sqlite").display());
    let server = eventline.command_api(&sqlite, &[], &secret, args).await?;
    drive(server, Some(&token), "eventline, sqlite", args, duration).await?;

    throughputs.print();
    Ok(())
}

impl Throughputs {
    fn print(&self) {
        let eventline = [
            ("eventline, postgres", self.eventline),
            ("eventline --append-batch 1", self.eventline_unbatched),
        ];
        let references = [
            ("cqrs-es + postgres-es", self.reference),
            ("raw INSERT limit", self.raw),
        ];
        for (what, numerator) in eventline {
            for (against, denominator) in references {
                if let (Some(n), Some(d)) = (numerator, denominator)
                    && d > 0.0
                {
                    println!("{:<52} {:>10.2}x", format!("{what} / {against}"), n / d);
                }
            }
        }
    }
}

/// `--clients` clients each committing single-row `INSERT`s into a table shaped like an event
/// row, each its own transaction (autocommit): what PostgreSQL on this machine allows before
/// any server, serialization or HTTP. Returns commits/s.
async fn raw_inserts(args: &Args, duration: Duration) -> anyhow::Result<f64> {
    let database = TestDatabase::postgres().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(pool_size(args))
        .connect(&database.url)
        .await
        .context("connect to the raw INSERT database")?;
    sqlx::query(
        "CREATE TABLE events (
             stream_id  text   NOT NULL,
             version    bigint NOT NULL,
             event_type text   NOT NULL,
             payload    jsonb  NOT NULL,
             metadata   jsonb  NOT NULL,
             PRIMARY KEY (stream_id, version)
         )",
    )
    .execute(&pool)
    .await?;
    let run = uuid_like();
    let figures = measure(args.clients, duration, move |client, n| {
        let pool = pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO events (stream_id, version, event_type, payload, metadata) \
                 VALUES ($1, $2, 'FundsDeposited', $3, '{}')",
            )
            .bind(format!("raw-{run}-{client}"))
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .bind(json!({ "amount": 1, "balance": n + 1 }))
            .execute(&pool)
            .await
            .is_ok()
        }
    })
    .await;
    let per_second = figures.per_second();
    figures.print(
        &format!(
            "raw single-row INSERT commits, postgres, {} clients",
            args.clients
        ),
        "commits",
    );
    Ok(per_second)
}

/// Opens `--accounts` accounts on `server`, then has `--clients` clients post deposits of 1
/// for `duration`, spread as `ids[(client + n * clients) % len]`; prints the figures and the
/// server's peak memory, stops it, and returns commands/s.
async fn drive(
    server: Server,
    token: Option<&str>,
    label: &str,
    args: &Args,
    duration: Duration,
) -> anyhow::Result<f64> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse()?,
        );
    }
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .build()?;
    let base = server.base.clone();

    let mut ids = Vec::with_capacity(args.accounts);
    for chunk in (0..args.accounts).collect::<Vec<_>>().chunks(64) {
        let mut opening = JoinSet::new();
        for _ in chunk {
            let (http, base) = (http.clone(), base.clone());
            opening.spawn(async move {
                let response = http
                    .post(format!("{base}/accounts"))
                    .json(&json!({ "holder": "Bench", "opening_balance": 0 }))
                    .send()
                    .await?
                    .error_for_status()?;
                let body: serde_json::Value = response.json().await?;
                body["id"]
                    .as_str()
                    .map(str::to_owned)
                    .context("no id in the answer")
            });
        }
        while let Some(opened) = opening.join_next().await {
            let opened = opened?;
            ids.push(opened.with_context(|| format!("open an account on {}", server.what))?);
        }
    }
    let ids = Arc::new(ids);
    let clients = args.clients;
    let figures = measure(clients, duration, move |client, n| {
        let (http, base, ids) = (http.clone(), base.clone(), Arc::clone(&ids));
        async move {
            let id = &ids[(client + n * clients) % ids.len()];
            http.post(format!("{base}/accounts/{id}/deposits"))
                .json(&json!({ "amount": 1 }))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    let per_second = figures.per_second();
    let peak = server.peak_rss_kib();
    figures.print(&format!("{label}, {clients} clients"), "commands");
    match peak {
        Some(kib) => println!(
            "{:<52} {:>10.1} MiB peak RSS of the server process (VmHWM)",
            "",
            kib as f64 / 1024.0
        ),
        None => println!(
            "{:<52} {:>10} peak RSS of the server process",
            "", "unknown"
        ),
    }
    server.stop().await?;
    Ok(per_second)
}
