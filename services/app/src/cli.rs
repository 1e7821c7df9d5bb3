//! The command line. Every flag can also be set by the environment variable it names, the
//! same names the Helm charts use.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::telemetry::LogFormat;

/// The issuer of embedded mode's development tokens (the default of `token --issuer`).
pub const DEV_ISSUER: &str = "eventline-embedded";
/// The audience of embedded mode's development tokens (the default of `token --audience`).
pub const DEV_AUDIENCE: &str = "eventline";
use crate::url::DatabaseUrl;

/// Eventline: CQRS and event sourcing, from HTTP commands to SQL read models.
#[derive(Debug, Parser)]
#[command(name = "eventline", version, about, propagate_version = true)]
pub struct Cli {
    /// Log line format.
    #[arg(
        long,
        env = "EVENTLINE_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    /// Log filter, in RUST_LOG syntax (e.g. `info,eventline_projector=debug`).
    #[arg(long, env = "EVENTLINE_LOG", default_value = "info", global = true)]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Command API, query API and projector in one process, on SQLite files in a data
    /// directory. Needs no external server.
    Embedded(EmbeddedArgs),
    /// The command service: takes commands over HTTP and appends events to the store.
    CommandApi(CommandApiArgs),
    /// The query service: serves the read models over HTTP.
    QueryApi(QueryApiArgs),
    /// A projector: keeps the read models up to date from the event store.
    Project(ProjectArgs),
    /// The relay: publishes every stored event to Kafka, in order per stream, at least once.
    Relay(RelayArgs),
    /// Rebuilds a projection's read model from the event store, beside the live one (blue/green,
    /// then an atomic cut-over) or into another database of any type (cross-database).
    /// Strict, resumable by request id.
    Replay(ReplayArgs),
    /// Rolls the last cut-over back: the version it replaced becomes live again, caught up
    /// with the events stored since (PostgreSQL and SQLite read models).
    Rollback(RollbackArgs),
    /// Runs the application's process managers: they react to stored events by sending
    /// commands, exactly once in effect. One instance is active at a time.
    Processor(ProcessorArgs),
    /// Prints a signed development token (HS256) for embedded mode or any service that
    /// trusts the same secret. Not an identity provider: production tokens come from your
    /// OIDC issuer.
    Token(TokenArgs),
    /// Lists the domains, projections (with their tables) and process managers this image
    /// contains, as text or JSON: what a `Projection` resource or `--projections` can name.
    Projections(ProjectionsArgs),
}

/// How `eventline projections` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text for people.
    Text,
    /// One JSON document for tools.
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ProjectionsArgs {
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: OutputFormat,
}

/// Whether the HTTP services check bearer tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// Every command needs a JWT with the write scope, every query one with the read scope.
    Jwt,
    /// No authentication: anyone who reaches the service may send commands and queries.
    None,
}

/// JWT bearer authentication of the command and query services.
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// `jwt`, or `none` to turn authentication off (explicitly; for embedded mode and demos).
    #[arg(long, env = "EVENTLINE_AUTH", value_enum, default_value = "jwt")]
    pub auth: AuthMode,
    /// The issuer (`iss`) tokens must come from, e.g. `https://keycloak.example.com/realms/shop`.
    #[arg(long, env = "EVENTLINE_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// The audience (`aud`) tokens must be for.
    #[arg(long, env = "EVENTLINE_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// RS256 keys from the issuer's JWKS endpoint (fetched again when a token names an
    /// unknown key, so key rotation needs no restart).
    #[arg(long, env = "EVENTLINE_JWT_JWKS_URL")]
    pub jwt_jwks_url: Option<String>,
    /// RS256 keys from a JWKS file.
    #[arg(long, env = "EVENTLINE_JWT_JWKS_FILE")]
    pub jwt_jwks_file: Option<PathBuf>,
    /// An HS256 shared secret, read from this file (or from the environment variable
    /// EVENTLINE_JWT_HS256_SECRET, which has no flag so that it never shows in a process list).
    #[arg(long, env = "EVENTLINE_JWT_HS256_SECRET_FILE")]
    pub jwt_hs256_secret_file: Option<PathBuf>,
    /// The scope queries need (and the command service's read-only `/streams` routes).
    #[arg(
        long,
        env = "EVENTLINE_JWT_READ_SCOPE",
        default_value = "eventline:read"
    )]
    pub jwt_read_scope: String,
    /// The scope commands need.
    #[arg(
        long,
        env = "EVENTLINE_JWT_WRITE_SCOPE",
        default_value = "eventline:write"
    )]
    pub jwt_write_scope: String,
    /// Clock skew allowed when checking `exp` and `nbf`, in seconds.
    #[arg(long, env = "EVENTLINE_JWT_LEEWAY_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub jwt_leeway_seconds: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ProcessorArgs {
    /// The event store to tail and send commands to.
    #[arg(long, env = "EVENTLINE_STORE_URL")]
    pub store: DatabaseUrl,
    /// Connections to the event store (PostgreSQL, MongoDB).
    #[arg(long, env = "EVENTLINE_STORE_POOL_SIZE", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub store_pool_size: u32,
    /// Appends written together in one commit at most (group commit: appends that arrive
    /// while others are being written go in the next commit together; PostgreSQL and SQLite
    /// stores). 1 writes every append on its own.
    #[arg(long, env = "EVENTLINE_APPEND_BATCH", default_value_t = crate::url::DEFAULT_APPEND_BATCH, value_parser = parse_append_batch)]
    pub append_batch: usize,
    /// Where the processors record how far they have reacted, and hold their lease
    /// (`sqlite://`, `postgres://`, `mysql://`); often the event store's own PostgreSQL database.
    #[arg(long, env = "EVENTLINE_PROCESSOR_CHECKPOINT_URL")]
    pub checkpoint_db: DatabaseUrl,
    /// The process managers to run, comma-separated (default: all the image contains;
    /// `eventline projections` lists them).
    #[arg(long, env = "EVENTLINE_PROCESSORS", value_delimiter = ',')]
    pub processors: Vec<String>,
    /// Events read per batch (and per checkpoint).
    #[arg(long, env = "EVENTLINE_BATCH_SIZE", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "EVENTLINE_LISTEN_ADDR", default_value = "0.0.0.0:9090")]
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Who the token is for (`sub`): the acting user recorded in events.
    #[arg(long)]
    pub subject: String,
    /// A scope to grant; repeat for several (default: the read and the write scope).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// How long the token is valid, in seconds.
    #[arg(long, default_value_t = 3_600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub ttl_seconds: u64,
    /// Sign with the secret in this file instead of embedded mode's development secret.
    #[arg(long, env = "EVENTLINE_JWT_HS256_SECRET_FILE")]
    pub hs256_secret_file: Option<PathBuf>,
    /// Embedded mode's data directory, whose development secret signs the token (created if
    /// missing).
    #[arg(long, env = "EVENTLINE_DATA_DIR", default_value = "./eventline-data")]
    pub data_dir: PathBuf,
    /// The token's issuer (`iss`).
    #[arg(long, env = "EVENTLINE_JWT_ISSUER", default_value = DEV_ISSUER)]
    pub issuer: String,
    /// The token's audience (`aud`).
    #[arg(long, env = "EVENTLINE_JWT_AUDIENCE", default_value = DEV_AUDIENCE)]
    pub audience: String,
}

#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    /// The event store: the previous version catches up from it before it is swapped in.
    #[arg(long, env = "EVENTLINE_STORE_URL")]
    pub store: DatabaseUrl,
    /// The read-model database whose last cut-over is rolled back.
    #[arg(long, env = "EVENTLINE_REPLAY_TARGET_URL")]
    pub target: DatabaseUrl,
    /// The projection (e.g. `bank-accounts`).
    #[arg(long, env = "EVENTLINE_REPLAY_PROJECTION")]
    pub projection: String,
}

/// How a replay shows its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressStyle {
    /// A progress bar on a terminal, JSON lines otherwise.
    Auto,
    /// A progress bar on stderr.
    Bar,
    /// One JSON object per line on stdout.
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// The event store to replay: `sqlite://PATH`, `postgres://...` or `mongodb://...`.
    #[arg(long, env = "EVENTLINE_STORE_URL")]
    pub store: DatabaseUrl,
    /// Connections to the event store (PostgreSQL, MongoDB).
    #[arg(long, env = "EVENTLINE_STORE_POOL_SIZE", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub store_pool_size: u32,
    /// Where to build the read model: `sqlite://PATH`, `postgres://...` or `mysql://...`.
    /// It may be the database that serves the live model: the new version is built beside
    /// it and cut over to atomically when it has caught up (the old one is kept as
    /// `TABLE__previous` until the next cut-over).
    #[arg(long, env = "EVENTLINE_REPLAY_TARGET_URL")]
    pub target: DatabaseUrl,
    /// The projection to rebuild (e.g. `bank-accounts`; `eventline projections` lists them).
    #[arg(long, env = "EVENTLINE_REPLAY_PROJECTION")]
    pub projection: String,
    /// Names this replay; running the same request again resumes it.
    #[arg(long, env = "EVENTLINE_REPLAY_REQUEST_ID")]
    pub request_id: String,
    /// Events read and written per transaction.
    #[arg(long, env = "EVENTLINE_BATCH_SIZE", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub batch_size: u32,
    /// Progress display.
    #[arg(
        long,
        env = "EVENTLINE_REPLAY_PROGRESS",
        value_enum,
        default_value = "auto"
    )]
    pub progress: ProgressStyle,
    /// A read model the result must equal (row counts and content checksums per table, and
    /// the stream versions each reflects; equal across database types) before the cut-over:
    /// the live model of a cross-database migration, its projector paused.
    #[arg(long, env = "EVENTLINE_REPLAY_VERIFY_AGAINST_URL")]
    pub verify_against: Option<DatabaseUrl>,
    /// Also publish progress into this Projection's `status.replay` (`NAMESPACE/NAME`), with
    /// the in-cluster service account (or `KUBECONFIG`); the operator sets it on replay Jobs.
    #[arg(long, env = "EVENTLINE_REPLAY_REPORT_TO")]
    pub report_to: Option<crate::status_report::ProjectionRef>,
    /// Seconds between progress lines.
    #[arg(long, env = "EVENTLINE_REPLAY_PROGRESS_SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub progress_seconds: u64,
}

#[derive(Debug, Clone, Args)]
pub struct EmbeddedArgs {
    /// Where the event store and read model files live (created if missing).
    #[arg(long, env = "EVENTLINE_DATA_DIR", default_value = "./eventline-data")]
    pub data_dir: PathBuf,
    /// Address of the command API.
    #[arg(long, env = "EVENTLINE_COMMAND_ADDR", default_value = "127.0.0.1:8080")]
    pub command_addr: SocketAddr,
    /// Address of the query API.
    #[arg(long, env = "EVENTLINE_QUERY_ADDR", default_value = "127.0.0.1:8081")]
    pub query_addr: SocketAddr,
    /// Events per projector transaction.
    #[arg(long, env = "EVENTLINE_BATCH_SIZE", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,
    /// Keep events in this store instead of `DATA_DIR/events.sqlite`
    /// (`postgres://...`, `mongodb://...`).
    #[arg(long, env = "EVENTLINE_STORE_URL")]
    pub store: Option<DatabaseUrl>,
    /// Connections to the event store (PostgreSQL, MongoDB).
    #[arg(long, env = "EVENTLINE_STORE_POOL_SIZE", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub store_pool_size: u32,
    /// Appends written together in one commit at most (group commit: appends that arrive
    /// while others are being written go in the next commit together; PostgreSQL and SQLite
    /// stores). 1 writes every append on its own.
    #[arg(long, env = "EVENTLINE_APPEND_BATCH", default_value_t = crate::url::DEFAULT_APPEND_BATCH, value_parser = parse_append_batch)]
    pub append_batch: usize,
    /// Save an aggregate's state every N versions, and load aggregates from the newest such
    /// snapshot (0: never). Snapshots are only a cache.
    #[arg(long, env = "EVENTLINE_SNAPSHOT_EVERY", default_value_t = 500)]
    pub snapshot_every: u64,
    /// Keep the read models in this database instead of `DATA_DIR/readmodel.sqlite`
    /// (`postgres://...`, `mysql://...`).
    #[arg(long, env = "EVENTLINE_READ_MODEL_URL")]
    pub read_model: Option<DatabaseUrl>,
    /// Authentication. Without any `--jwt-*` key setting, embedded mode trusts development
    /// tokens signed with `DATA_DIR/dev-jwt-secret` (mint one with `eventline token`).
    #[command(flatten)]
    pub auth: AuthArgs,
}

/// Which event store to use.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// The event store: `sqlite://PATH`, `postgres://USER:PASSWORD@HOST/DB` or
    /// `mongodb://HOST/DB`.
    #[arg(long = "store", env = "EVENTLINE_STORE_URL")]
    pub url: DatabaseUrl,
    /// Connections to the event store (PostgreSQL, MongoDB).
    #[arg(long, env = "EVENTLINE_STORE_POOL_SIZE", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub store_pool_size: u32,
}

#[derive(Debug, Clone, Args)]
pub struct CommandApiArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Appends written together in one commit at most (group commit: appends that arrive
    /// while others are being written go in the next commit together; PostgreSQL and SQLite
    /// stores). 1 writes every append on its own.
    #[arg(long, env = "EVENTLINE_APPEND_BATCH", default_value_t = crate::url::DEFAULT_APPEND_BATCH, value_parser = parse_append_batch)]
    pub append_batch: usize,
    /// Save an aggregate's state every N versions, and load aggregates from the newest such
    /// snapshot (0: never). Snapshots are only a cache.
    #[arg(long, env = "EVENTLINE_SNAPSHOT_EVERY", default_value_t = 500)]
    pub snapshot_every: u64,
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Address to listen on.
    #[arg(long, env = "EVENTLINE_LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Args)]
pub struct QueryApiArgs {
    /// The read-model database: `sqlite://PATH`, `postgres://USER:PASSWORD@HOST/DB` or
    /// `mysql://USER:PASSWORD@HOST/DB` (MySQL or MariaDB).
    #[arg(long, env = "EVENTLINE_READ_MODEL_URL")]
    pub read_model: DatabaseUrl,
    /// Connections to the read-model database.
    #[arg(long, env = "EVENTLINE_READ_MODEL_POOL_SIZE", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub read_model_pool_size: u32,
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Address to listen on.
    #[arg(long, env = "EVENTLINE_LISTEN_ADDR", default_value = "0.0.0.0:8081")]
    pub listen: SocketAddr,
}

/// Where a projector reads events from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProjectorSource {
    /// Tail the event store by global position (`--store`).
    Store,
    /// Consume the relay's Kafka topics, one consumer group per projection (`--kafka-brokers`).
    Kafka,
}

/// Kafka topic naming and creation, shared by the relay and the Kafka projector.
#[derive(Debug, Clone, Args)]
pub struct TopicArgs {
    /// Topics are `PREFIX.STREAM_TYPE`, e.g. `eventline.bank.account`.
    #[arg(long, env = "EVENTLINE_TOPIC_PREFIX", default_value = "eventline")]
    pub topic_prefix: String,
    /// Partitions of topics created when missing.
    #[arg(long, env = "EVENTLINE_TOPIC_PARTITIONS", default_value_t = 12, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub topic_partitions: i32,
    /// Replication factor of topics created when missing.
    #[arg(long, env = "EVENTLINE_TOPIC_REPLICATION", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=100))]
    pub topic_replication: i32,
}

impl TopicArgs {
    pub fn settings(&self) -> eventline_kafka::TopicSettings {
        eventline_kafka::TopicSettings {
            partitions: self.topic_partitions,
            replication_factor: self.topic_replication,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ProjectArgs {
    /// Where events come from.
    #[arg(
        long,
        env = "EVENTLINE_PROJECTOR_SOURCE",
        value_enum,
        default_value = "store"
    )]
    pub source: ProjectorSource,
    /// The event store to tail (`--source store`): `sqlite://PATH`,
    /// `postgres://USER:PASSWORD@HOST/DB` or `mongodb://HOST/DB`.
    #[arg(long, env = "EVENTLINE_STORE_URL", required_if_eq("source", "store"))]
    pub store: Option<DatabaseUrl>,
    /// Connections to the event store (PostgreSQL, MongoDB).
    #[arg(long, env = "EVENTLINE_STORE_POOL_SIZE", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub store_pool_size: u32,
    /// Kafka bootstrap servers, `host:port,host:port` (`--source kafka`).
    #[arg(
        long,
        env = "EVENTLINE_KAFKA_BROKERS",
        required_if_eq("source", "kafka")
    )]
    pub kafka_brokers: Option<String>,
    #[command(flatten)]
    pub topics: TopicArgs,
    /// How long the consumer group waits for a silent projector before handing its
    /// partitions to the others, in milliseconds.
    #[arg(long, env = "EVENTLINE_KAFKA_SESSION_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1_000..=300_000))]
    pub kafka_session_timeout_ms: u64,
    /// Consumer groups are `PREFIX.PROJECTION`, e.g. `eventline.bank-accounts`.
    #[arg(
        long,
        env = "EVENTLINE_CONSUMER_GROUP_PREFIX",
        default_value = "eventline"
    )]
    pub consumer_group_prefix: String,
    /// Also publish the lag and dead-letter count into this Projection's status
    /// (`NAMESPACE/NAME`) every 15 s; the operator sets it on the projector pods.
    #[arg(long, env = "EVENTLINE_PROJECTOR_REPORT_TO")]
    pub report_to: Option<crate::status_report::ProjectionRef>,
    /// How long the version a replay's cut-over replaced is kept (for `eventline rollback`)
    /// before the projector drops it, in hours.
    #[arg(long, env = "EVENTLINE_PREVIOUS_RETENTION_HOURS", default_value_t = 168, value_parser = clap::value_parser!(u64).range(0..=87_600))]
    pub previous_retention_hours: u64,
    /// The projections to run, comma-separated (default: all the image contains;
    /// `eventline projections` lists them).
    #[arg(long, env = "EVENTLINE_PROJECTIONS", value_delimiter = ',')]
    pub projections: Vec<String>,
    /// The read-model database to keep.
    #[arg(long, env = "EVENTLINE_READ_MODEL_URL")]
    pub read_model: DatabaseUrl,
    /// Connections to the read-model database.
    #[arg(long, env = "EVENTLINE_READ_MODEL_POOL_SIZE", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub read_model_pool_size: u32,
    /// Events per projector transaction (from Kafka: the most messages per round, split by
    /// partition; a round takes what has arrived, so small rounds when traffic is light).
    #[arg(long, env = "EVENTLINE_BATCH_SIZE", default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "EVENTLINE_LISTEN_ADDR", default_value = "0.0.0.0:9090")]
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Args)]
pub struct RelayArgs {
    /// The event store to publish.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Where the relay records how far it has published (`sqlite://`, `postgres://`,
    /// `mysql://`); often the event store's own PostgreSQL database.
    #[arg(long, env = "EVENTLINE_RELAY_CHECKPOINT_URL")]
    pub checkpoint_db: DatabaseUrl,
    /// Kafka bootstrap servers, `host:port,host:port`.
    #[arg(long, env = "EVENTLINE_KAFKA_BROKERS")]
    pub kafka_brokers: String,
    #[command(flatten)]
    pub topics: TopicArgs,
    /// Events published per checkpoint.
    #[arg(long, env = "EVENTLINE_BATCH_SIZE", default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "EVENTLINE_LISTEN_ADDR", default_value = "0.0.0.0:9090")]
    pub listen: SocketAddr,
}

/// `--append-batch`: 1 (off) to 1,000 appends a commit.
fn parse_append_batch(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=1_000).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a number of appends from 1 (group commit off) to 1000, got {text:?}"
        )),
    }
}
