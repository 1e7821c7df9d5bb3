//! The alert rules (`monitoring/prometheus/eventline-rules.yaml`) and the Grafana dashboards
//! (`monitoring/grafana/*.json`) against the real services, each started as its own `eventline`
//! process (command API, relay, Kafka projector, query API, order processor) on loopback:
//!
//! - every metric name the rules and dashboards use is one the services expose on `/metrics`;
//! - a real Prometheus (Debian's `prometheus`, `EVENTLINE_TEST_PROMETHEUS` or on `PATH`)
//!   scraping them fires the lag alert when the projector is stuck on its read model and when
//!   it is stopped, under load, and resolves it once the projector is back.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use eventline_test_support::{TestDatabase, kafka_brokers, unique_name};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// The repository's root, where `monitoring/` lives.
fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rules_text() -> String {
    std::fs::read_to_string(repository().join("monitoring/prometheus/eventline-rules.yaml"))
        .expect("read the rules file")
}

/// Every dashboard, by file name.
fn dashboards() -> Vec<(String, Value)> {
    let dir = repository().join("monitoring/grafana");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("read monitoring/grafana") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("read a dashboard");
            let dashboard = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
            found.push((path.display().to_string(), dashboard));
        }
    }
    assert!(!found.is_empty(), "no dashboards in {}", dir.display());
    found
}

/// Every PromQL expression of a dashboard: panel targets (`expr`) and variable queries.
fn dashboard_queries(node: &Value, out: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    ("query", Value::String(query)) => out.push(query.clone()),
                    ("query", Value::Object(query)) => {
                        if let Some(Value::String(q)) = query.get("query") {
                            out.push(q.clone());
                        }
                    }
                    _ => dashboard_queries(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| dashboard_queries(v, out)),
        _ => {}
    }
}

/// The Eventline metric names (`eventline_...`) mentioned in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(found) = text[i..].find("eventline_") {
        let start = i + found;
        let boundary = start == 0 || {
            let before = bytes[start - 1];
            !(before.is_ascii_alphanumeric() || before == b'_' || before == b':')
        };
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if boundary {
            names.insert(text[start..end].to_owned());
        }
        i = end;
    }
    names
}

/// The sample names of a Prometheus text exposition (histograms: `_bucket`, `_sum`, `_count`).
fn exposed_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// A port nobody listens on right now (the services and Prometheus take fixed addresses, so
/// that a restarted projector comes back where Prometheus scrapes it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A public RSA key (2048 bits) to serve as the identity provider's JWKS: the APIs fetch it at
/// start (`eventline_auth_jwks_ready`); the tokens themselves are HS256.
const JWKS: &str = r#"{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"monitoring-test","e":"AQAB","n":"tADT8YVmEy1TquAn3yTaO2RJBZ41Nk6jdWsbbcdbJ2A3SDFWNvPZoVKgtQuA0KshUDaFYr9hkKC5e6u1QTtVDGnZ7bxB7EWEM_cGHxUtpn8uxzs-pGhVFSgaGijiQG6iz0vZRodJbv7RBUs1_u71S0-xGhp2_2grk4QS8odHy18i3bevNTcLfbSizS5zHMFpXx9Htx6IQPYBP1CDwsF0IwYIEaX6QmpTsIu4l2gCto1bgfCb1bWC-ncuTi1oviffqt4ywdLJYilo1wb5LT89CGvH2I_rHp88Jr219gV1MOc7UaZSbjvz-LImMJq5iBXmU3SpVUTCJ3pzSmA6eRytuw"}]}"#;

/// Serves [`JWKS`] at `/jwks` until the test ends.
async fn identity_provider() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(|| async { ([("content-type", "application/json")], JWKS) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/jwks")
}

/// One `eventline` process, started from its command line on a fixed loopback address.
struct Service {
    name: &'static str,
    args: Vec<String>,
    addr: SocketAddr,
    /// Its log (stderr, `warn` and up), kept across restarts, shown when a test fails.
    log: PathBuf,
    child: Option<Child>,
}

impl Service {
    async fn start(name: &'static str, args: Vec<String>, dir: &Path) -> Self {
        let mut service = Self {
            name,
            args,
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            log: dir.join(format!("{name}.log")),
            child: None,
        };
        service.spawn().await;
        service
    }

    /// Starts the process (again) and waits for its `/healthz`.
    async fn spawn(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_eventline"))
            .args(&self.args)
            .args(["--listen", &self.addr.to_string()])
            .env(
                "EVENTLINE_LOG",
                std::env::var("EVENTLINE_TEST_SERVICE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.log)
                    .expect("open the service's log"),
            )
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn eventline {}: {e}", self.name));
        self.child = Some(child);
        let url = format!("http://{}/healthz", self.addr);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(answer) = reqwest::get(&url).await
                && answer.status() == StatusCode::OK
            {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("eventline {} exited at start: {status}", self.name);
            }
            assert!(
                Instant::now() < deadline,
                "eventline {} did not answer on {url} within 60 s",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the process the hard way (SIGKILL): it says nothing more to anyone.
    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("SIGKILL");
            child.wait().await.expect("wait");
        }
    }

    /// The last lines of its log.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    async fn metrics(&self) -> String {
        let answer = reqwest::get(format!("http://{}/metrics", self.addr))
            .await
            .unwrap_or_else(|e| panic!("scrape {}: {e}", self.name));
        assert_eq!(answer.status(), StatusCode::OK, "{} /metrics", self.name);
        answer.text().await.expect("metrics body")
    }
}

/// A deployment as the charts make it, on loopback: the event store in PostgreSQL, the read
/// model in MariaDB, each a database of its own; topics and consumer groups under a prefix of
/// its own.
struct Deployment {
    services: Vec<Service>,
    token: String,
    read_model_url: String,
    _dir: tempfile::TempDir,
    _store: TestDatabase,
    _read_model: TestDatabase,
}

impl Deployment {
    async fn start() -> Self {
        let store = TestDatabase::postgres().await;
        // Not PostgreSQL: a transaction held open there (to stall the projector) would hold
        // back every reader of a PostgreSQL store on the same server too (its gap safety).
        let read_model = TestDatabase::mysql().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let prefix = unique_name("monitoring");
        let jwks_url = identity_provider().await;
        let secret_file = dir.path().join("jwt-secret");
        std::fs::write(
            &secret_file,
            format!("{}\n", unique_name("secret-of-at-least-32-bytes")),
        )
        .expect("write the secret");
        let strings = |args: &[&str]| args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let secret = secret_file.display().to_string();
        let auth = strings(&[
            "--jwt-issuer",
            "https://login.example.com",
            "--jwt-audience",
            "eventline",
            "--jwt-hs256-secret-file",
            &secret,
            "--jwt-jwks-url",
            &jwks_url,
        ]);
        let brokers = kafka_brokers();
        let kafka = strings(&[
            "--kafka-brokers",
            &brokers,
            "--topic-prefix",
            &prefix,
            "--topic-partitions",
            "3",
            "--topic-replication",
            "1",
        ]);
        let command = Service::start(
            "command-api",
            [
                strings(&["command-api", "--store", &store.url]),
                auth.clone(),
            ]
            .concat(),
            dir.path(),
        )
        .await;
        let relay = Service::start(
            "relay",
            [
                strings(&[
                    "relay",
                    "--store",
                    &store.url,
                    "--checkpoint-db",
                    &store.url,
                ]),
                kafka.clone(),
            ]
            .concat(),
            dir.path(),
        )
        .await;
        let projector = Service::start(
            "projector",
            [
                strings(&[
                    "project",
                    "--source",
                    "kafka",
                    "--read-model",
                    &read_model.url,
                    "--consumer-group-prefix",
                    &prefix,
                    "--kafka-session-timeout-ms",
                    "6000",
                ]),
                kafka,
            ]
            .concat(),
            dir.path(),
        )
        .await;
        let query = Service::start(
            "query-api",
            [
                strings(&["query-api", "--read-model", &read_model.url]),
                auth,
            ]
            .concat(),
            dir.path(),
        )
        .await;
        let processor = Service::start(
            "processor",
            strings(&[
                "processor",
                "--store",
                &store.url,
                "--checkpoint-db",
                &store.url,
            ]),
            dir.path(),
        )
        .await;
        let token = eventline_app::auth::mint(&eventline_app::cli::TokenArgs {
            subject: "monitoring-test".into(),
            scopes: vec!["eventline:read".into(), "eventline:write".into()],
            ttl_seconds: 3_600,
            hs256_secret_file: Some(secret_file),
            data_dir: dir.path().to_path_buf(),
            issuer: "https://login.example.com".into(),
            audience: "eventline".into(),
        })
        .expect("mint a token");
        Self {
            services: vec![command, relay, projector, query, processor],
            token,
            read_model_url: read_model.url.clone(),
            _dir: dir,
            _store: store,
            _read_model: read_model,
        }
    }

    fn service(&self, name: &str) -> &Service {
        self.services
            .iter()
            .find(|s| s.name == name)
            .expect("a service of that name")
    }

    /// The end of every service's log, for a failure message.
    fn logs(&self) -> String {
        self.services
            .iter()
            .map(|s| format!("--- {} log:\n{}", s.name, s.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn projector(&mut self) -> &mut Service {
        self.services
            .iter_mut()
            .find(|s| s.name == "projector")
            .expect("the projector")
    }

    fn http(&self) -> Client {
        Client {
            http: reqwest::Client::new(),
            command: format!("http://{}", self.service("command-api").addr),
            query: format!("http://{}", self.service("query-api").addr),
            token: self.token.clone(),
        }
    }
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    command: String,
    query: String,
    token: String,
}

impl Client {
    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let answer = self
            .http
            .post(format!("{}{path}", self.command))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("command");
        let status = answer.status();
        (status, answer.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let answer = self
            .http
            .get(format!("{}{path}", self.query))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("query");
        let status = answer.status();
        (status, answer.json().await.unwrap_or(Value::Null))
    }

    async fn open_account(&self, holder: &str) -> String {
        let (status, body) = self
            .post(
                "/accounts",
                json!({"holder": holder, "opening_balance": 1_000}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("id").to_owned()
    }
}

/// Commands of every outcome and queries, so that every labelled series exists: accepted,
/// rejected (422), conflict (409), a 404, an order for the processor; waits until the read
/// model has them.
async fn some_traffic(client: &Client) {
    let id = client.open_account("Ada").await;
    let (status, _) = client
        .post(&format!("/accounts/{id}/deposits"), json!({"amount": 10}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = client
        .post(
            &format!("/accounts/{id}/withdrawals"),
            json!({"amount": 1_000_000}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = client
        .post(
            &format!("/accounts/{id}/deposits"),
            json!({"amount": 1, "expected_version": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = client
        .post(
            "/orders",
            json!({"customer": "ada", "lines": [{"sku": "book", "quantity": 1, "unit_price": 100}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = client.get(&format!("/accounts/{id}")).await;
        if status == StatusCode::OK && body["version"] == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the account did not reach the read model within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = client.get("/accounts/no-such-account").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_rules_and_dashboards_use_is_exposed_by_the_services() {
    let mut used = metric_names(&rules_text());
    for (file, dashboard) in dashboards() {
        let mut queries = Vec::new();
        dashboard_queries(&dashboard, &mut queries);
        assert!(!queries.is_empty(), "{file} has no queries");
        for query in &queries {
            used.extend(metric_names(query));
        }
    }
    assert!(used.len() > 10, "too few metric names found: {used:?}");

    let deployment = Deployment::start().await;
    some_traffic(&deployment.http()).await;
    // The relay and the processor batch, and histograms show up after their first sample:
    // wait until every service shows what it shows once traffic went through.
    let mut exposed = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        exposed.clear();
        for service in &deployment.services {
            exposed.extend(exposed_names(&service.metrics().await));
        }
        let missing: Vec<&String> = used.iter().filter(|n| !exposed.contains(*n)).collect();
        if missing.iter().all(|name| exempt(name).is_some()) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut problems = Vec::new();
    for name in &used {
        if exposed.contains(name) {
            continue;
        }
        match exempt(name) {
            Some(reason) => println!("{name}: not exposed here, {reason}"),
            None => problems.push(name.clone()),
        }
    }
    assert!(
        problems.is_empty(),
        "the rules or dashboards use metrics no service exposes: {problems:?}\nexposed: {exposed:?}"
    );
}

/// Why a metric the rules or dashboards use cannot be seen in this test, checked against the
/// source that names it; `None` for every other metric.
fn exempt(name: &str) -> Option<&'static str> {
    const MONGODB_STORE: &str = include_str!("../../store-mongo/src/lib.rs");
    const OPERATOR: &str = include_str!("../../../operator/src/metrics.rs");
    const PROJECTION_STATUS: &str = include_str!("../../../operator/api/src/metrics.rs");
    let base = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name);
    let (source, reason) = if name == "eventline_store_skipped_positions_total" {
        (
            MONGODB_STORE,
            "counted by the MongoDB store only, which cannot run here",
        )
    } else if name.starts_with("eventline_operator_") {
        (
            OPERATOR,
            "served by the operator, which needs a Kubernetes API server; rendered by \
             operator/src/metrics/tests.rs",
        )
    } else if name.starts_with("eventline_projection_replay_") {
        (
            PROJECTION_STATUS,
            "served by the operator from Projections' status; rendered by \
             operator/api/src/metrics/tests.rs",
        )
    } else {
        return None;
    };
    assert!(
        source.contains(&format!("\"{base}\"")),
        "{name} is no longer named where it comes from"
    );
    Some(reason)
}

/// Debian's `prometheus` binary: `EVENTLINE_TEST_PROMETHEUS`, else `prometheus` on `PATH`.
fn prometheus_binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("EVENTLINE_TEST_PROMETHEUS")
        && !path.is_empty()
    {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("prometheus"))
            .find(|candidate| candidate.is_file())
    })
}

/// The rules file with the lag alert's thresholds scaled down for a test of a minute or two:
/// a lag above 100 (not 1000) events, windows of 30 s (not 10 minutes) and `for: 20s`. Each
/// replacement must match exactly where expected, so that a change to the rules shows here.
fn rules_for_the_test() -> String {
    let text = rules_text();
    let start = text
        .find("      - alert: EventlineProjectionLagging")
        .expect("the lag alert");
    let end = text[start..]
        .find("      - alert: EventlineProjectorDeadLetters")
        .map(|i| start + i)
        .expect("the alert after the lag alert");
    let mut lag = text[start..end].to_owned();
    for (from, to, times) in [
        (
            "(max by (namespace, projection) (eventline_projection_lag_events) > 1000)",
            "(max by (namespace, projection) (eventline_projection_lag_events) > 100)",
            1,
        ),
        (
            "delta(eventline_projection_lag_events[10m])",
            "delta(eventline_projection_lag_events[30s])",
            1,
        ),
        (
            "rate(eventline_relay_events_total[10m])",
            "rate(eventline_relay_events_total[30s])",
            1,
        ),
        ("        for: 10m\n", "        for: 20s\n", 1),
        ("        for: 5m\n", "        for: 20s\n", 1),
    ] {
        assert_eq!(
            lag.matches(from).count(),
            times,
            "the lag alert's rules no longer contain {from:?}"
        );
        lag = lag.replace(from, to);
    }
    format!("{}{lag}{}", &text[..start], &text[end..])
}

/// The lag alert's `for:` in [`rules_for_the_test`].
const LAG_FOR: Duration = Duration::from_secs(20);

/// How much later than its `for:` the lag alert may fire: the lag measured every 5 s, scrapes
/// and rule evaluations every second.
const LAG_SLACK: Duration = Duration::from_secs(20);

/// A Prometheus of the test's own: scrapes the services every second, evaluates the rules every
/// second. Killed on drop.
struct Prometheus {
    url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(binary: &Path, deployment: &Deployment) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("rules.yaml"), rules_for_the_test()).expect("rules");
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
             rule_files: [rules.yaml]\nscrape_configs:\n",
        );
        for service in &deployment.services {
            config.push_str(&format!(
                "  - job_name: {}\n    static_configs: [{{targets: ['{}']}}]\n",
                service.name, service.addr
            ));
        }
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config).expect("config");
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start prometheus");
        let prometheus = Self {
            url: format!("http://{addr}"),
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(format!("{}/-/ready", prometheus.url))
            .await
            .map_or(true, |a| a.status() != StatusCode::OK)
        {
            assert!(
                Instant::now() < deadline,
                "prometheus did not get ready within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        prometheus
    }

    async fn api(&self, path: &str) -> Value {
        let answer: Value = reqwest::get(format!("{}{path}", self.url))
            .await
            .expect("prometheus api")
            .json()
            .await
            .expect("json");
        assert_eq!(answer["status"], "success", "{path}: {answer}");
        answer["data"].clone()
    }

    /// The rules Prometheus loaded, and the health of each: all must be `ok`.
    async fn assert_rules_loaded(&self) {
        let groups = self.api("/api/v1/rules").await;
        let rules: Vec<&Value> = groups["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .flat_map(|g| g["rules"].as_array().expect("rules"))
            .collect();
        assert!(rules.len() >= 10, "{groups}");
        for rule in rules {
            assert_ne!(rule["health"], "err", "{rule}");
        }
    }

    /// The lag alerts, as `(state, reason)`.
    async fn lag_alerts(&self) -> Vec<(String, String)> {
        self.api("/api/v1/alerts").await["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .filter(|a| a["labels"]["alertname"] == "EventlineProjectionLagging")
            .map(|a| {
                (
                    a["state"].as_str().unwrap_or_default().to_owned(),
                    a["labels"]["reason"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    }

    /// Waits until the lag alert fires for `reason`; returns how long that took.
    async fn await_firing(&self, reason: &str, within: Duration, d: &Deployment) -> Duration {
        let started = Instant::now();
        loop {
            let alerts = self.lag_alerts().await;
            if alerts.iter().any(|(s, r)| s == "firing" && r == reason) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "the lag alert ({reason}) did not fire within {within:?}: {alerts:?}; lag {}\n{}",
                self.lag().await,
                d.logs()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Waits until no lag alert fires any more.
    async fn await_resolved(&self, within: Duration, d: &Deployment) -> Duration {
        let started = Instant::now();
        loop {
            let alerts = self.lag_alerts().await;
            if !alerts.iter().any(|(s, _)| s == "firing") {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "the lag alert did not resolve within {within:?}: {alerts:?}; lag {}\n{}",
                self.lag().await,
                d.logs()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The projection lag as Prometheus has it now.
    async fn lag(&self) -> Value {
        self.api("/api/v1/query?query=eventline_projection_lag_events")
            .await["result"]
            .clone()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Deposits into a few accounts, about 100 a second, until `stop`: enough to pass the test's
/// threshold within seconds once the projector stands still, little enough for two cores.
/// Resolves to how many were accepted; any other answer ends it with that answer.
fn load(
    client: Client,
    accounts: Vec<String>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Result<u64, String>> {
    tokio::spawn(async move {
        let mut accepted = 0;
        for n in 0.. {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let id = &accounts[n % accounts.len()];
            let (status, body) = client
                .post(&format!("/accounts/{id}/deposits"), json!({"amount": 1}))
                .await;
            if status != StatusCode::OK {
                return Err(format!("a deposit was answered {status}: {body}"));
            }
            accepted += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(accepted)
    })
}

/// Holds a write lock on the read model's Kafka offsets table (a `mysql` client session of its
/// own): every batch of the projector waits for it, as behind a stuck database.
struct ReadModelLock(Child);

impl ReadModelLock {
    /// `read_model_url`: `mysql://USER[:PASSWORD]@HOST:PORT/DATABASE`.
    async fn take(read_model_url: &str) -> Self {
        let rest = read_model_url
            .strip_prefix("mysql://")
            .expect("a mysql:// URL");
        let (credentials, rest) = rest.split_once('@').expect("a user");
        let (server, database) = rest.split_once('/').expect("a database");
        let (host, port) = server.split_once(':').unwrap_or((server, "3306"));
        let (user, password) = credentials
            .split_once(':')
            .map_or((credentials, None), |(u, p)| (u, Some(p)));
        let mut command = Command::new("mysql");
        command
            .args(["--protocol=tcp", "-h", host, "-P", port, "-u", user])
            .args(["--unbuffered", "--skip-column-names", "--silent", database])
            .args([
                "-e",
                "LOCK TABLES eventline_kafka_offsets WRITE; SELECT 'locked'; SELECT SLEEP(600);",
            ]);
        if let Some(password) = password {
            command.env("MYSQL_PWD", password);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the mysql client (installed with MariaDB)");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
        tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.expect("mysql output") {
                if line.trim() == "locked" {
                    return;
                }
            }
            panic!("the mysql client ended before taking the lock");
        })
        .await
        .expect("the lock within 20 s");
        Self(child)
    }

    /// Ends the session, which releases the lock.
    async fn release(mut self) {
        self.0.start_kill().expect("kill the mysql client");
        self.0.wait().await.expect("wait");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_fires_the_lag_alert_when_the_projector_is_stuck_or_stopped_and_resolves_it() {
    let Some(binary) = prometheus_binary() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "prometheus is not installed, and CI is set: scripts/test-services.sh installs it"
        );
        println!(
            "skipped, because prometheus is not installed (Debian's `prometheus` package; \
             scripts/test-services.sh installs it, or set EVENTLINE_TEST_PROMETHEUS)"
        );
        return;
    };
    let mut deployment = Deployment::start().await;
    let client = deployment.http();
    some_traffic(&client).await;
    let mut accounts = Vec::new();
    for n in 0..8 {
        accounts.push(client.open_account(&format!("holder {n}")).await);
    }
    let prometheus = Prometheus::start(&binary, &deployment).await;
    prometheus.assert_rules_loaded().await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = load(client.clone(), accounts, Arc::clone(&stop));

    // Under load, with the projector keeping up, longer than the alert's `for:`: nothing fires.
    let quiet_until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < quiet_until {
        let alerts = prometheus.lag_alerts().await;
        assert!(
            alerts.is_empty(),
            "the lag alert is {alerts:?} while the projector keeps up; lag {}",
            prometheus.lag().await
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // 1. The projector is stuck on its read model: it still answers scrapes, its lag grows.
    let lock = ReadModelLock::take(&deployment.read_model_url).await;
    let fired = prometheus
        .await_firing("growing", LAG_FOR + LAG_SLACK, &deployment)
        .await;
    assert!(fired >= LAG_FOR, "fired after {fired:?}, before its for:");
    println!(
        "stuck projector: fired after {fired:?}, lag {}",
        prometheus.lag().await
    );
    lock.release().await;
    let resolved = prometheus
        .await_resolved(Duration::from_secs(60), &deployment)
        .await;
    println!("stuck projector released: resolved after {resolved:?}");

    // 2. The projector is stopped: nothing answers on its address any more.
    deployment.projector().kill().await;
    let fired = prometheus
        .await_firing("projector-down", LAG_FOR + LAG_SLACK, &deployment)
        .await;
    assert!(fired >= LAG_FOR, "fired after {fired:?}, before its for:");
    println!("stopped projector: fired after {fired:?}");
    deployment.projector().spawn().await;
    let resolved = prometheus
        .await_resolved(Duration::from_secs(60), &deployment)
        .await;
    println!("restarted projector: resolved after {resolved:?}");

    stop.store(true, Ordering::Relaxed);
    let accepted = load
        .await
        .expect("the load task")
        .expect("every deposit accepted");
    println!("{accepted} deposits accepted during the test");
}
