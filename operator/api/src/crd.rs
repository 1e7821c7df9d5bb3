//! The `Projection` custom resource (`eventline.io/v1alpha1`): types only.
//!
//! A `Projection` names a projection compiled into an Eventline application's image, where its events come
//! from (the event store for replays, Kafka for the live projector) and which read database it
//! writes. A new `spec.replay.requestId` asks for a replay (like Flink's restart nonce): the
//! operator starts one replay `Job` per request id, never two.
//!
//! `status` is written by two field managers (server-side apply), each owning its own fields:
//! the operator (`eventline-operator`) owns everything except the replay progress, which the
//! replay process publishes itself (`eventline-replay`, see [`crate::report`]).

use k8s_openapi::api::core::v1::{EnvVar, LocalObjectReference, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the Eventline custom resources.
pub const GROUP: &str = "eventline.io";
/// API version of [`Projection`].
pub const VERSION: &str = "v1alpha1";

/// Desired state of a projection: which code, which image, how many projector replicas, where the
/// events come from, which read database it writes, and an optional replay request.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "eventline.io",
    version = "v1alpha1",
    kind = "Projection",
    namespaced,
    shortname = "proj",
    status = "ProjectionStatus",
    derive = "PartialEq",
    doc = "An Eventline projection: live projector pods fed from Kafka, and declarative replays from the event store",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase", description = "Pending, Running, Replaying, Degraded or Failed"),
    printcolumn(name = "Replay", type_ = "string", json_path = ".status.replay.phase", description = "Phase of the last replay"),
    printcolumn(name = "Progress", type_ = "number", json_path = ".status.replay.percent", description = "Percent of the last replay, as its process reported it"),
    printcolumn(name = "Lag", type_ = "integer", json_path = ".status.lagEvents", description = "Events the live projector is behind"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 47").message("metadata.name must be at most 47 characters: the replay Job is named <name>-replay-<8 hex digits> (16 more) and Job names are limited to 63")
)]
#[x_kube(
    validation = Rule::new("self.target.type != 'sqlite' || !has(self.replicas) || self.replicas <= 1").message("a sqlite target allows at most 1 replica: SQLite has a single writer")
)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionSpec {
    /// Name of a projection the image contains (`IMAGE projections` lists them; the
    /// `eventline` image has `bank-accounts`, `social-posts` and `shop-orders`). A name the image
    /// lacks fails the projector and the replay with the list of what it does contain.
    #[schemars(length(min = 1, max = 253))]
    pub projection: String,
    /// Container image of an Eventline application: this repository's `eventline` image, or
    /// any application built on the `eventline-app` library (same subcommands and flags).
    #[schemars(length(min = 1))]
    pub image: String,
    /// Image pull policy of the projector and replay containers.
    #[serde(default)]
    pub image_pull_policy: ImagePullPolicy,
    /// Number of live projector pods (0 stops the projector).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// Secrets of the projector and replay pods for pulling `image` from a private registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// More environment variables for the projector and replay containers, such as
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (trace export) or `EVENTLINE_LOG`. They come first: a
    /// variable the operator sets itself (`EVENTLINE_STORE_URL`, ...) keeps the operator's value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Resources of the projector and replay containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Where events come from.
    pub source: Source,
    /// The read database the projection writes (until a replay moves it, see
    /// `status.activeTarget`).
    pub target: Target,
    /// A replay request; a new `requestId` starts a new replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayRequest>,
    /// Finished replay Jobs (and their pods, with their logs) kept; older ones are deleted when
    /// a replay finishes. The status keeps the record of the last replay either way.
    #[serde(default = "default_replay_history_limit")]
    #[schemars(range(min = 0))]
    pub replay_history_limit: i32,
}

fn default_replicas() -> i32 {
    1
}

fn default_replay_history_limit() -> i32 {
    3
}

/// Kubernetes image pull policy.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImagePullPolicy {
    /// Pull on every start.
    Always,
    /// Pull when the image is not on the node.
    #[default]
    IfNotPresent,
    /// Never pull.
    Never,
}

impl ImagePullPolicy {
    /// The value Kubernetes expects in `imagePullPolicy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// Where a projection's events come from.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// The event store, read directly by replays.
    pub store: StoreSource,
    /// Kafka, read by the live projector.
    pub kafka: KafkaSource,
}

/// Connection to the event store.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StoreSource {
    /// Secret key holding the event store URL.
    pub url_secret_ref: SecretKeyRef,
}

/// Kafka connection of the live projector.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSource {
    /// Comma-separated `host:port` list.
    #[schemars(length(min = 1))]
    pub bootstrap_servers: String,
    /// Prefix of the per-stream-type topics.
    #[serde(default = "default_topic_prefix")]
    #[schemars(length(min = 1))]
    pub topic_prefix: String,
    /// Partitions of a topic the projector creates because it is missing (the relay normally
    /// creates them first). Set it to the relay's `topicPartitions`; unset: the binary's 12.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub topic_partitions: Option<i32>,
    /// Replication factor of a topic the projector creates because it is missing; at most the
    /// number of brokers. Set it to the relay's `topicReplication`; unset: the binary's 3, which
    /// fails on a cluster with fewer than 3 brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub topic_replication: Option<i32>,
}

fn default_topic_prefix() -> String {
    "eventline".to_owned()
}

/// A key in a Secret of the Projection's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// A read database: its type and a Secret key holding its URL.
///
/// `sqlite` is refused (CEL): in a cluster a SQLite file lives in one pod (the root filesystem is
/// read-only, `/tmp` is per pod), so a replay's file dies with its Job's pod and no query service
/// can read the projector's. The rule sits on this node so that Projections stored before it
/// stay valid while their target is unchanged (CRD validation ratcheting).
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq, Hash)]
#[x_kube(
    validation = Rule::new("self.type != 'sqlite'").message("sqlite targets are not supported by the operator: a SQLite file lives in one pod and dies with it, and no query service can read it; use postgres or mysql")
)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Database type.
    #[serde(rename = "type")]
    pub type_: TargetType,
    /// Secret key holding the database URL.
    pub url_secret_ref: SecretKeyRef,
}

/// Read database types Eventline writes.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum TargetType {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    Mysql,
    /// SQLite: refused for new targets (see [`Target`]); kept so that Projections stored
    /// before that rule can still be read and reconciled.
    Sqlite,
}

impl TargetType {
    /// The name used in the spec and in hashes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
            Self::Sqlite => "sqlite",
        }
    }
}

/// A replay request. A new `requestId` starts a new replay Job; the same id never starts a second.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReplayRequest {
    /// Any string; changing it asks for a new replay.
    #[schemars(length(min = 1, max = 253))]
    pub request_id: String,
    /// Replay into another read database (cross-database replay); after success the projector
    /// moves to it. Without it the replay rebuilds the active target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// How the new read model replaces the old one.
    #[serde(default)]
    pub strategy: ReplayStrategy,
    /// Seconds the replay Job may run, pending pods included (an image that cannot be pulled, a
    /// missing Secret); then it fails, and a later request can start. Default 21600 (6 hours):
    /// raise it for event stores that take longer to replay.
    #[serde(default = "default_replay_deadline")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: i64,
}

fn default_replay_deadline() -> i64 {
    6 * 3600
}

/// Replay strategies.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReplayStrategy {
    /// Build a new version of the read model next to the live one, then cut over atomically.
    #[default]
    BlueGreen,
}

/// Observed state of a projection.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionStatus {
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Summary of the conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ProjectionPhase>,
    /// `Ready`, `Replaying` and `Degraded`, computed from the observed Deployment and Job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The read database the live projector uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_target: Option<Target>,
    /// The last replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayStatus>,
    /// Events the live projector is behind (its consumer group's lag), published by the
    /// projector pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_events: Option<i64>,
    /// Events in the dead-letter table, published by the projector pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letters: Option<i64>,
}

/// Phase of a projection, a summary of its conditions.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProjectionPhase {
    /// Projector pods are not available yet.
    Pending,
    /// All desired projector pods are available.
    Running,
    /// A replay Job is pending or running.
    Replaying,
    /// The last replay failed, or only some projector pods are available.
    Degraded,
    /// The projector Deployment cannot progress.
    Failed,
}

/// The last replay. Fields are owned by two field managers: `requestId`, `phase`, `jobName`,
/// `target`, `startedAt`, `finishedAt` and `error` by the operator (from the Job); the progress
/// numbers and `reported` by the replay process (see [`crate::report`]).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplayStatus {
    /// The request this status belongs to.
    pub request_id: String,
    /// Phase of the replay Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ReplayPhase>,
    /// Name of the replay Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// The read database the replay writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// When the Job started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the Job finished (succeeded or failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// Why the replay failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the replay's pod has not started, while the Job is pending (e.g. `ImagePullBackOff:
    /// ...`, `CreateContainerConfigError: secret "..." not found`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_reason: Option<String>,
    /// Events applied so far (reported by the replay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_applied: Option<i64>,
    /// Events to apply in total (reported by the replay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_total: Option<i64>,
    /// Percent done, 0 to 100 (reported by the replay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// Recent throughput (reported by the replay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_per_second: Option<f64>,
    /// Estimated seconds left (reported by the replay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<i64>,
    /// The replay process's own view of its phase, error and times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported: Option<ReportedReplayState>,
}

/// What the replay process last said about itself.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReportedReplayState {
    /// Phase as the process sees it.
    pub phase: ReplayPhase,
    /// The process's error, if it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the process started replaying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the process finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
}

/// Phase of a replay.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayPhase {
    /// The Job exists, no pod has started yet.
    Pending,
    /// A replay pod is running.
    Running,
    /// The replay finished and cut over.
    Succeeded,
    /// The replay gave up (after the Job's retries); the live projection is untouched.
    Failed,
}

impl ReplayPhase {
    /// Whether the replay has finished, one way or the other.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }

    /// The name used in the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }
}
