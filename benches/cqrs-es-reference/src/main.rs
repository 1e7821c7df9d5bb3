//! A reference for Eventline's `commands` benchmark: the same HTTP deposit workload, served by
//! [cqrs-es](https://crates.io/crates/cqrs-es) 0.5 with its PostgreSQL event repository
//! [postgres-es](https://crates.io/crates/postgres-es) 0.5 instead of Eventline, so that both
//! figures can be printed side by side on the same machine.
//!
//! ```sh
//! cd benches/cqrs-es-reference
//! CARGO_TARGET_DIR=../../target cargo build --release   # beside eventline-bench, which runs it
//! ../../target/release/cqrs-es-reference --seconds 10
//! ../../target/release/cqrs-es-reference --smoke
//! ../../target/release/cqrs-es-reference --serve 127.0.0.1:0   # what eventline-bench runs
//! ```
//!
//! With `--serve ADDR` it only serves the command service, `POST /accounts` and
//! `POST /accounts/{id}/deposits`, on a database of its own; it prints the address it bound on
//! one line of stdout and stops on SIGTERM or Ctrl-C. `eventline-bench --only commands` starts
//! it so and drives it with the client code it drives `eventline command-api` with, each server
//! in a process of its own.
//!
//! Without it, it drives itself with that workload, client and server in one process: the
//! service on 127.0.0.1:0; `--accounts` accounts opened first; then `--clients` concurrent
//! clients (one shared reqwest client) post deposits of 1 for `--seconds`, spreading over the
//! accounts as `ids[(client + n * clients) % len]`. It prints commands/s, p50 and p99 in
//! eventline-bench's format, and checks that the store holds exactly the accepted deposits.
//!
//! The framework is `postgres_es::postgres_cqrs`: event-sourced, no snapshots, no queries. So
//! every command loads all the events of its account (one SELECT), then commits the new event
//! in a transaction (BEGIN, INSERT, COMMIT). A command that loses a race for the same account
//! (the primary key on `(aggregate_type, aggregate_id, sequence)` refuses the insert) is run
//! again, up to 64 times, as Eventline's command handler does.
//!
//! PostgreSQL is the server at `EVENTLINE_TEST_POSTGRES_URL` (default: the local one); each run
//! uses a database of its own and drops it afterwards.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use clap::Parser;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, AggregateError, DomainEvent};
use postgres_es::PostgresCqrs;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

// ---------------------------------------------------------------------------------------------
// The domain: a bank account in cqrs-es style.
// ---------------------------------------------------------------------------------------------

/// The largest amount or balance accepted, in minor units (as Eventline's bank domain).
const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

/// A bank account: the state its events leave behind.
#[derive(Debug, Default, Serialize, Deserialize)]
struct BankAccount {
    opened: bool,
    holder: String,
    balance: i64,
}

/// The commands a [`BankAccount`] accepts.
#[derive(Debug, Clone)]
enum BankAccountCommand {
    OpenAccount {
        holder: String,
        account_type: String,
        opening_balance: i64,
    },
    DepositFunds {
        amount: i64,
    },
}

/// What happened to an account. Deposits record the resulting balance, as Eventline's do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum BankAccountEvent {
    AccountOpened {
        holder: String,
        account_type: String,
        opening_balance: i64,
    },
    FundsDeposited {
        amount: i64,
        balance: i64,
    },
}

impl DomainEvent for BankAccountEvent {
    fn event_type(&self) -> String {
        match self {
            BankAccountEvent::AccountOpened { .. } => "AccountOpened".to_owned(),
            BankAccountEvent::FundsDeposited { .. } => "FundsDeposited".to_owned(),
        }
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// Why an account command was refused.
#[derive(Debug, thiserror::Error)]
enum BankAccountError {
    #[error("the account does not exist")]
    NotFound,
    #[error("the account is already open")]
    AlreadyOpen,
    #[error("{field} {message}")]
    InvalidField {
        field: &'static str,
        message: &'static str,
    },
    #[error("the balance would exceed the maximum of {MAX_AMOUNT}")]
    BalanceTooLarge,
}

fn amount_in_range(field: &'static str, amount: i64, min: i64) -> Result<(), BankAccountError> {
    if amount < min {
        return Err(BankAccountError::InvalidField {
            field,
            message: if min > 0 {
                "must be greater than 0"
            } else {
                "must not be negative"
            },
        });
    }
    if amount > MAX_AMOUNT {
        return Err(BankAccountError::InvalidField {
            field,
            message: "must be at most 1000000000000000",
        });
    }
    Ok(())
}

impl Aggregate for BankAccount {
    const TYPE: &'static str = "bank.account";
    type Command = BankAccountCommand;
    type Event = BankAccountEvent;
    type Error = BankAccountError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            BankAccountCommand::OpenAccount {
                holder,
                account_type,
                opening_balance,
            } => {
                if self.opened {
                    return Err(BankAccountError::AlreadyOpen);
                }
                let holder = holder.trim();
                if holder.is_empty() {
                    return Err(BankAccountError::InvalidField {
                        field: "holder",
                        message: "must not be empty",
                    });
                }
                amount_in_range("opening_balance", opening_balance, 0)?;
                let event = BankAccountEvent::AccountOpened {
                    holder: holder.to_owned(),
                    account_type,
                    opening_balance,
                };
                sink.write(event, self).await;
            }
            BankAccountCommand::DepositFunds { amount } => {
                if !self.opened {
                    return Err(BankAccountError::NotFound);
                }
                amount_in_range("amount", amount, 1)?;
                let balance = self
                    .balance
                    .checked_add(amount)
                    .filter(|b| *b <= MAX_AMOUNT)
                    .ok_or(BankAccountError::BalanceTooLarge)?;
                sink.write(BankAccountEvent::FundsDeposited { amount, balance }, self)
                    .await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            BankAccountEvent::AccountOpened {
                holder,
                opening_balance,
                ..
            } => {
                self.opened = true;
                self.holder = holder;
                self.balance = opening_balance;
            }
            BankAccountEvent::FundsDeposited { balance, .. } => self.balance = balance,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The command service: the same two routes as Eventline's.
// ---------------------------------------------------------------------------------------------

/// Runs of a command after a lost race, as Eventline's `DEFAULT_CONFLICT_RETRIES`.
const CONFLICT_RETRIES: u32 = 64;

#[derive(Clone)]
struct AppState {
    cqrs: Arc<PostgresCqrs<BankAccount>>,
    /// Commands run again after losing a race for their account.
    retried: Arc<AtomicU64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenAccountRequest {
    holder: String,
    #[serde(default = "default_account_type")]
    account_type: String,
    #[serde(default)]
    opening_balance: i64,
}

fn default_account_type() -> String {
    "checking".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FundsRequest {
    amount: i64,
}

#[derive(Debug, Serialize)]
struct CommandAccepted {
    id: String,
}

fn problem(status: StatusCode, detail: String) -> Response {
    (
        status,
        Json(json!({ "status": status.as_u16(), "detail": detail })),
    )
        .into_response()
}

fn error_response(error: AggregateError<BankAccountError>) -> Response {
    let status = match &error {
        AggregateError::UserError(BankAccountError::NotFound) => StatusCode::NOT_FOUND,
        AggregateError::UserError(BankAccountError::AlreadyOpen)
        | AggregateError::AggregateConflict => StatusCode::CONFLICT,
        AggregateError::UserError(_) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    problem(status, error.to_string())
}

/// Executes `command` on account `id`, running it again when it loses a race.
async fn execute(
    state: &AppState,
    id: &str,
    command: BankAccountCommand,
) -> Result<(), AggregateError<BankAccountError>> {
    let mut attempt = 0;
    loop {
        match state.cqrs.execute(id, command.clone()).await {
            Err(AggregateError::AggregateConflict) if attempt < CONFLICT_RETRIES => {
                attempt += 1;
                state.retried.fetch_add(1, Ordering::Relaxed);
            }
            result => return result,
        }
    }
}

async fn open_account(
    State(state): State<AppState>,
    Json(request): Json<OpenAccountRequest>,
) -> Response {
    let id = uuid::Uuid::now_v7().to_string();
    let command = BankAccountCommand::OpenAccount {
        holder: request.holder,
        account_type: request.account_type,
        opening_balance: request.opening_balance,
    };
    match execute(&state, &id, command).await {
        Ok(()) => (StatusCode::CREATED, Json(CommandAccepted { id })).into_response(),
        Err(error) => error_response(error),
    }
}

async fn deposit_funds(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(request): Json<FundsRequest>,
) -> Response {
    let Ok(id) = uuid::Uuid::parse_str(&id).map(|id| id.to_string()) else {
        return problem(StatusCode::NOT_FOUND, format!("there is no account {id}"));
    };
    let command = BankAccountCommand::DepositFunds {
        amount: request.amount,
    };
    match execute(&state, &id, command).await {
        Ok(()) => (StatusCode::OK, Json(CommandAccepted { id })).into_response(),
        Err(error) => error_response(error),
    }
}

/// A fresh command service on `pool`, and the counter of its commands run again.
fn command_service_on(pool: PgPool) -> (Router, Arc<AtomicU64>) {
    let retried = Arc::new(AtomicU64::new(0));
    let state = AppState {
        cqrs: Arc::new(postgres_es::postgres_cqrs(pool, vec![], ())),
        retried: Arc::clone(&retried),
    };
    (command_service(state), retried)
}

fn command_service(state: AppState) -> Router {
    Router::new()
        .route("/accounts", post(open_account))
        .route("/accounts/{id}/deposits", post(deposit_funds))
        .with_state(state)
}

// ---------------------------------------------------------------------------------------------
// The database: one of its own per run, with postgres-es's tables.
// ---------------------------------------------------------------------------------------------

/// postgres-es 0.5.0's tables, as its `db/init.sql` gives them (snapshots go unused here).
const TABLES: [&str; 2] = [
    "CREATE TABLE events
     (
         aggregate_type text                         NOT NULL,
         aggregate_id   text                         NOT NULL,
         sequence       bigint CHECK (sequence >= 0) NOT NULL,
         event_type     text                         NOT NULL,
         event_version  text                         NOT NULL,
         payload        json                         NOT NULL,
         metadata       json                         NOT NULL,
         PRIMARY KEY (aggregate_type, aggregate_id, sequence)
     )",
    "CREATE TABLE snapshots
     (
         aggregate_type   text                                 NOT NULL,
         aggregate_id     text                                 NOT NULL,
         last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
         current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
         payload          json                                 NOT NULL,
         PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
     )",
];

fn admin_url() -> String {
    std::env::var("EVENTLINE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `admin_url` with its database replaced by `name` (query string kept).
fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let server = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

async fn create_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("PostgreSQL is not reachable at {admin_url}"))?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .context("create the benchmark database")?;
    admin.close().await?;
    Ok(())
}

async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .context("drop the benchmark database")?;
    admin.close().await?;
    Ok(())
}

async fn connect(url: &str, pool: u32) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(pool)
        .connect(url)
        .await
        .context("connect to the benchmark database")?;
    for table in TABLES {
        sqlx::query(table).execute(&pool).await?;
    }
    Ok(pool)
}

// ---------------------------------------------------------------------------------------------
// The measurement: as eventline-bench's.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Parser)]
#[command(
    about = "Deposit commands over HTTP with cqrs-es + postgres-es, measured like eventline-bench"
)]
struct Args {
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Accounts the deposits are spread over.
    #[arg(long, default_value_t = 1_000)]
    accounts: usize,
    /// Connections to PostgreSQL (default: one per client, plus two, as eventline-bench).
    #[arg(long)]
    pool: Option<u32>,
    /// A short run (0.5 s, 50 accounts) that only proves the benchmark works.
    #[arg(long)]
    smoke: bool,
    /// Only serve the command service on ADDR (e.g. `127.0.0.1:0`) until SIGTERM or Ctrl-C,
    /// printing the bound address on one line of stdout; eventline-bench drives it.
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["seconds", "smoke"])]
    serve: Option<SocketAddr>,
}

/// Throughput and latency of one measured run.
#[derive(Debug)]
struct Figures {
    operations: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
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

    fn print(mut self, what: &str, unit: &str) {
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

/// Binds `addr` for the command service; answers are written whole, so, as Eventline's
/// server, it does not wait to coalesce them (no Nagle).
async fn bind(
    addr: SocketAddr,
) -> anyhow::Result<(
    impl axum::serve::Listener<Addr = SocketAddr> + 'static,
    SocketAddr,
)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listen on {addr}"))?;
    let bound = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    Ok((listener, bound))
}

async fn commands(pool: PgPool, args: &Args, duration: Duration) -> anyhow::Result<()> {
    let (service, retried) = command_service_on(pool.clone());
    let (listener, bound) = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let base = format!("http://{bound}");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, service)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .into_future(),
    );
    let http = reqwest::Client::new();

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
                    .await?;
                let body: serde_json::Value = response.json().await?;
                body["id"]
                    .as_str()
                    .map(str::to_owned)
                    .context("no id in the answer")
            });
        }
        while let Some(opened) = opening.join_next().await {
            ids.push(opened??);
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
    let accepted = figures.operations;
    figures.print(
        &format!(
            "deposit commands over HTTP, cqrs-es + postgres-es, {} clients, {} accounts",
            args.clients, args.accounts
        ),
        "commands",
    );
    println!(
        "{:<52} {:>10} commands run again after losing a race for their account",
        "",
        retried.load(Ordering::Relaxed)
    );
    let _ = stop.send(());
    server.await??;
    // Every accepted deposit is one event in the store, and no other deposit is.
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'FundsDeposited'")
            .fetch_one(&pool)
            .await?;
    if usize::try_from(stored) != Ok(accepted) {
        bail!("{accepted} deposits were accepted but the store holds {stored}");
    }
    Ok(())
}

/// `--serve`: the command service alone, until SIGTERM or Ctrl-C. The bound address goes to
/// stdout (one line, nothing else) once the service accepts connections, so that a parent
/// that asked for port 0 learns where it is.
async fn serve(pool: PgPool, addr: SocketAddr) -> anyhow::Result<()> {
    let (service, _retried) = command_service_on(pool);
    let (listener, bound) = bind(addr).await?;
    println!("{bound}");
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serve the command service")
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            // Without a SIGTERM handler, Ctrl-C (below) still stops it.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.seconds = 0.5;
        args.accounts = args.accounts.min(50);
    }
    if args.clients == 0 || args.seconds <= 0.0 || args.accounts == 0 {
        bail!("--clients, --seconds and --accounts must be greater than 0");
    }
    let duration = Duration::from_secs_f64(args.seconds);
    // In --serve mode stdout carries the bound address alone.
    if args.serve.is_none() {
        println!(
            "cqrs-es-reference: {} clients, {:.1} s per figure (cqrs-es 0.5.0, postgres-es 0.5.0, \
             event-sourced, no snapshots){}",
            args.clients,
            args.seconds,
            if cfg!(debug_assertions) {
                " (debug build: figures are not representative)"
            } else {
                ""
            }
        );
    }

    let admin_url = admin_url();
    let name = format!("cqrs_es_reference_{}", uuid::Uuid::new_v4().simple());
    create_database(&admin_url, &name).await?;
    let pool_size = args.pool.unwrap_or(args.clients as u32 + 2);
    let outcome = async {
        let pool = connect(&with_database(&admin_url, &name), pool_size).await?;
        match args.serve {
            Some(addr) => serve(pool.clone(), addr).await?,
            None => commands(pool.clone(), &args, duration).await?,
        }
        pool.close().await;
        anyhow::Ok(())
    }
    .await;
    let dropped = drop_database(&admin_url, &name).await;
    outcome?;
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    fn opened() -> BankAccountEvent {
        BankAccountEvent::AccountOpened {
            holder: "Ada".to_owned(),
            account_type: "checking".to_owned(),
            opening_balance: 0,
        }
    }

    #[tokio::test]
    async fn a_deposit_to_an_open_account_records_the_new_balance() {
        TestFramework::<BankAccount>::with(())
            .given(vec![
                opened(),
                BankAccountEvent::FundsDeposited {
                    amount: 5,
                    balance: 5,
                },
            ])
            .when_async(BankAccountCommand::DepositFunds { amount: 1 })
            .await
            .then_expect_events(vec![BankAccountEvent::FundsDeposited {
                amount: 1,
                balance: 6,
            }]);
    }

    #[tokio::test]
    async fn deposits_must_be_positive_and_go_to_an_open_account() {
        TestFramework::<BankAccount>::with(())
            .given(vec![opened()])
            .when_async(BankAccountCommand::DepositFunds { amount: 0 })
            .await
            .then_expect_error_message("amount must be greater than 0");
        TestFramework::<BankAccount>::with(())
            .given_no_previous_events()
            .when_async(BankAccountCommand::DepositFunds { amount: 1 })
            .await
            .then_expect_error_message("the account does not exist");
    }

    #[tokio::test]
    async fn an_account_opens_once() {
        let open = BankAccountCommand::OpenAccount {
            holder: " Ada ".to_owned(),
            account_type: "checking".to_owned(),
            opening_balance: 0,
        };
        TestFramework::<BankAccount>::with(())
            .given_no_previous_events()
            .when_async(open.clone())
            .await
            .then_expect_events(vec![opened()]);
        TestFramework::<BankAccount>::with(())
            .given(vec![opened()])
            .when_async(open)
            .await
            .then_expect_error_message("the account is already open");
    }

    #[test]
    fn the_database_name_replaces_the_admin_one() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
