//! Helpers shared by the integration tests: an embedded Eventline on ephemeral ports, an HTTP
//! client, and waiting for a condition instead of sleeping.
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use std::sync::Arc;

use eventline_app::cli::{AuthArgs, AuthMode, EmbeddedArgs};
use eventline_app::url::{DEFAULT_APPEND_BATCH, open_store};
use eventline_app::{App, Services};
use eventline_core::EventStore;
use eventline_store_sqlite::SqliteEventStore;
use eventline_test_support::TestDatabase;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The `eventline` binary's application: the three example domains.
pub fn app() -> App {
    App::new()
        .domain(eventline_bank::domain())
        .domain(eventline_posts::domain())
        .domain(eventline_orders::domain())
}

/// An HTTP answer: status, headers and JSON body (`Null` when the body is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A client for one command API and one query API, sending a bearer token when it has one.
#[derive(Debug, Clone)]
pub struct Client {
    pub command: String,
    pub query: String,
    pub http: reqwest::Client,
    pub token: Option<String>,
}

impl Client {
    pub fn new(command: impl Into<String>, query: impl Into<String>) -> Self {
        Self {
            command: command.into(),
            query: query.into(),
            http: reqwest::Client::new(),
            token: None,
        }
    }

    /// The same client, sending `token` as its bearer token.
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    /// `request` with this client's bearer token, if it has one.
    pub fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    /// POSTs a raw body (not necessarily JSON) with extra headers to the command API.
    pub async fn post_raw(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = self
            .authorized(self.http.post(format!("{}{path}", self.command)))
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Self::answer(request.send().await.expect("request")).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.post_raw(path, &body.to_string(), &[]).await
    }

    /// GETs from the query API.
    pub async fn get(&self, path: &str) -> Answer {
        let response = self
            .authorized(self.http.get(format!("{}{path}", self.query)))
            .send()
            .await
            .expect("request");
        Self::answer(response).await
    }

    /// GETs from the command API (for its operational endpoints).
    pub async fn get_command(&self, path: &str) -> Answer {
        let response = self
            .authorized(self.http.get(format!("{}{path}", self.command)))
            .send()
            .await
            .expect("request");
        Self::answer(response).await
    }

    /// Opens an account and returns its id.
    pub async fn open_account(&self, holder: &str, opening_balance: i64) -> String {
        let answer = self
            .post(
                "/accounts",
                serde_json::json!({ "holder": holder, "opening_balance": opening_balance }),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        answer.body["id"].as_str().expect("id").to_owned()
    }
}

/// Embedded mode in this process, on ephemeral ports and a temporary data directory, with the
/// event store in SQLite (in the data directory) or in a PostgreSQL database of its own.
#[derive(Debug)]
pub struct TestApp {
    pub client: Client,
    pub data_dir: tempfile::TempDir,
    /// The event store, for tests that inspect it directly.
    pub store: Arc<dyn EventStore>,
    shutdown: CancellationToken,
    services: Services,
    _databases: Vec<TestDatabase>,
}

/// Where a [`TestApp`] keeps events and read models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    /// Files in the data directory (embedded mode's defaults).
    Sqlite,
    Postgres,
    MariaDb,
}

impl Database {
    async fn create(self) -> Option<TestDatabase> {
        match self {
            Database::Sqlite => None,
            Database::Postgres => Some(TestDatabase::postgres().await),
            Database::MariaDb => Some(TestDatabase::mysql().await),
        }
    }
}

/// Authentication turned off, as `--auth none`.
pub fn no_auth() -> AuthArgs {
    AuthArgs {
        auth: AuthMode::None,
        jwt_issuer: None,
        jwt_audience: None,
        jwt_jwks_url: None,
        jwt_jwks_file: None,
        jwt_hs256_secret_file: None,
        jwt_read_scope: "eventline:read".into(),
        jwt_write_scope: "eventline:write".into(),
        jwt_leeway_seconds: 30,
    }
}

/// Embedded mode's default authentication: development tokens.
pub fn dev_auth() -> AuthArgs {
    AuthArgs {
        auth: AuthMode::Jwt,
        ..no_auth()
    }
}

impl TestApp {
    /// Everything in SQLite files: embedded mode's defaults, authentication off.
    pub async fn start() -> Self {
        Self::start_with(Database::Sqlite, Database::Sqlite).await
    }

    /// The event store in PostgreSQL.
    pub async fn start_on_postgres() -> Self {
        Self::start_with(Database::Postgres, Database::Sqlite).await
    }

    /// The event store in `store` (SQLite or PostgreSQL), the read models in `read_model`,
    /// authentication off.
    pub async fn start_with(store: Database, read_model: Database) -> Self {
        Self::start_with_auth(store, read_model, no_auth()).await
    }

    /// As [`TestApp::start_with`], with these authentication settings.
    pub async fn start_with_auth(store: Database, read_model: Database, auth: AuthArgs) -> Self {
        assert_ne!(store, Database::MariaDb, "MariaDB is no event store");
        let data_dir = tempfile::tempdir().expect("temp dir");
        let store_db = store.create().await;
        let read_model_db = read_model.create().await;
        let store_url = store_db.as_ref().map(|d| d.url.parse().expect("url"));
        let read_model_url = read_model_db.as_ref().map(|d| d.url.parse().expect("url"));
        let args = EmbeddedArgs {
            data_dir: data_dir.path().to_path_buf(),
            command_addr: "127.0.0.1:0".parse().expect("addr"),
            query_addr: "127.0.0.1:0".parse().expect("addr"),
            batch_size: 100,
            store: store_url.clone(),
            store_pool_size: 8,
            append_batch: DEFAULT_APPEND_BATCH,
            // Small, so that every walkthrough also loads aggregates from snapshots.
            snapshot_every: 3,
            read_model: read_model_url,
            auth,
        };
        let store = match &store_url {
            Some(url) => open_store("--store", url, 2, DEFAULT_APPEND_BATCH)
                .await
                .expect("open store"),
            None => Arc::new(
                SqliteEventStore::open(data_dir.path().join("events.sqlite"))
                    .await
                    .expect("open store"),
            ),
        };
        let shutdown = CancellationToken::new();
        let embedded = app()
            .embedded(&args, shutdown.clone())
            .await
            .expect("embedded mode starts");
        Self {
            client: Client::new(
                format!("http://{}", embedded.command_addr),
                format!("http://{}", embedded.query_addr),
            ),
            data_dir,
            store,
            shutdown,
            services: embedded.services,
            _databases: store_db.into_iter().chain(read_model_db).collect(),
        }
    }

    /// A development token for `subject` with `scopes`, signed with this app's secret.
    pub fn token(&self, subject: &str, scopes: &[&str]) -> String {
        eventline_app::auth::mint(&eventline_app::cli::TokenArgs {
            subject: subject.into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            ttl_seconds: 600,
            hs256_secret_file: None,
            data_dir: self.data_dir.path().to_path_buf(),
            issuer: eventline_app::auth::DEV_ISSUER.into(),
            audience: eventline_app::auth::DEV_AUDIENCE.into(),
        })
        .expect("mint a development token")
    }

    /// Stops everything gracefully and checks nothing failed.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.services.wait().await.expect("services stop cleanly");
    }
}

/// Polls `probe` until it returns `Some`, failing after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the query API shows the account at `version`, and returns it.
pub async fn account_at_version(client: &Client, id: &str, version: u64) -> Value {
    eventually(
        &format!("account {id} at version {version} in the read model"),
        Duration::from_secs(20),
        || async {
            let answer = client.get(&format!("/accounts/{id}")).await;
            (answer.status == StatusCode::OK && answer.body["version"] == version)
                .then_some(answer.body)
        },
    )
    .await
}

/// The bank read model a fresh replay of the whole store gives (in a temporary SQLite file).
pub async fn replayed_rows(store: &Arc<dyn EventStore>) -> Vec<eventline_readmodel::Row> {
    let dir = tempfile::tempdir().expect("temp dir");
    let replay = eventline_readmodel::ReadModelDb::open_sqlite(dir.path().join("replay.sqlite"))
        .await
        .expect("replay db");
    eventline_projector::StoreProjector::new(
        Arc::clone(store),
        replay.clone(),
        Arc::new(eventline_bank::AccountsProjection),
    )
    .catch_up()
    .await
    .expect("replay");
    eventline_bank::read_model_rows(&replay)
        .await
        .expect("replayed rows")
}

/// A SQLite event store at `path` with `accounts` accounts, each opened then given `deposits`
/// deposits, all appended at once per account.
pub async fn bank_store(
    path: &std::path::Path,
    accounts: usize,
    deposits: i64,
) -> Arc<dyn EventStore> {
    use eventline_core::{Metadata, NewEvent};
    let store: Arc<dyn EventStore> = Arc::new(SqliteEventStore::open(path).await.expect("store"));
    for account in 0..accounts {
        let mut events = vec![NewEvent {
            event_type: "AccountOpened".into(),
            schema_version: 2,
            payload: serde_json::json!({"holder_name": "Ada", "account_type": "checking", "opening_balance": 0}),
            metadata: Metadata::default(),
        }];
        for n in 1..=deposits {
            events.push(NewEvent {
                event_type: "FundsDeposited".into(),
                schema_version: 1,
                payload: serde_json::json!({"amount": n, "balance": n * (n + 1) / 2}),
                metadata: Metadata::default(),
            });
        }
        store
            .append(&format!("acct-{account:03}"), "bank.account", 0, events)
            .await
            .expect("append");
    }
    store
}

/// Every row of every table of `projection` in `db`, table by table, each in key order: what
/// tests compare between read models, whatever database each is in.
pub async fn model_rows(
    db: &eventline_readmodel::ReadModelDb,
    projection: &dyn eventline_core::Projection,
) -> Vec<eventline_readmodel::Row> {
    let mut rows = Vec::new();
    for table in projection.tables() {
        rows.extend(db.all_rows(&table).await.expect("read the rows"));
    }
    rows
}

/// Runs a store projector for `projection` from `store` into `db` until it has caught up.
pub async fn project(
    store: &Arc<dyn EventStore>,
    db: &eventline_readmodel::ReadModelDb,
    projection: Arc<dyn eventline_core::Projection>,
) {
    eventline_projector::StoreProjector::new(Arc::clone(store), db.clone(), projection)
        .catch_up()
        .await
        .expect("project");
}

/// Replays `projection` from `store` into `target` (small batches, so that it takes several),
/// checked against `reference` before its cut-over; returns how many events it applied.
pub async fn replay(
    store: &Arc<dyn EventStore>,
    target: &eventline_readmodel::ReadModelDb,
    projection: Arc<dyn eventline_core::Projection>,
    reference: &eventline_readmodel::ReadModelDb,
) -> u64 {
    let mut config = eventline_replay::ReplayConfig::new("domain-test-rebuild");
    config.batch_size = 7;
    config.progress_every = Duration::ZERO;
    config.verify_against = Some(reference.clone());
    let done = eventline_replay::Replay::new(Arc::clone(store), target.clone(), projection, config)
        .run(CancellationToken::new(), |_| {})
        .await
        .expect("replay");
    assert!(done.done);
    done.applied
}

/// Asserts the two read models of `projection` hold the same rows, table by table.
pub async fn assert_same_model(
    projection: &dyn eventline_core::Projection,
    got: &eventline_readmodel::ReadModelDb,
    want: &eventline_readmodel::ReadModelDb,
) -> Vec<eventline_readmodel::Row> {
    let got = model_rows(got, projection).await;
    let want = model_rows(want, projection).await;
    assert_eq!(got.len(), want.len(), "row counts of {}", projection.name());
    for (got, want) in got.iter().zip(&want) {
        assert_eq!(got, want, "{}", projection.name());
    }
    got
}
