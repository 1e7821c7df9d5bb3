//! Pure builders: a [`Projection`] in, the Kubernetes objects the operator owns out.
//!
//! No I/O here. The reconciler applies what these return with server-side apply under one field
//! manager, so the builders must be deterministic: the same Projection (and active target) gives
//! the same objects, which makes a second reconcile a no-op on the API server.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, LocalObjectReference, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    SeccompProfile, SecretKeySelector, SecurityContext, ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use crate::crd::{Projection, SecretKeyRef, Target, TargetType};
use crate::error::{Error, Result};

/// Annotation on a replay Job holding the raw request id (the Job name only carries its hash).
pub const REPLAY_REQUEST_ID_ANNOTATION: &str = "eventline.io/replay-request-id";
/// Label naming the Projection an object belongs to.
pub const PROJECTION_LABEL: &str = "eventline.io/projection";
/// Port of the projector's health and metrics endpoints.
pub const PROJECTOR_PORT: i32 = 9090;
/// Uid and gid the containers run as (the image's non-root user).
pub const RUN_AS_USER: i64 = 65532;

/// Name, namespace and controller owner reference of a Projection read from the API server.
#[derive(Clone, Debug, PartialEq)]
pub struct Owner {
    /// Projection name.
    pub name: String,
    /// Projection namespace.
    pub namespace: String,
    /// Controller owner reference pointing at the Projection.
    pub reference: OwnerReference,
}

impl Owner {
    /// Fails when the Projection lacks a namespace or uid (it was not read from the API server).
    pub fn of(p: &Projection) -> Result<Self> {
        let name = p.name_any();
        let namespace = p
            .namespace()
            .ok_or_else(|| Error::MissingNamespace { name: name.clone() })?;
        let reference = p
            .controller_owner_ref(&())
            .filter(|r| !r.uid.is_empty())
            .ok_or_else(|| Error::MissingUid {
                namespace: namespace.clone(),
                name: name.clone(),
            })?;
        Ok(Self {
            name,
            namespace,
            reference,
        })
    }

    fn meta(&self, name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![self.reference.clone()]),
            ..ObjectMeta::default()
        }
    }
}

/// First 8 hex digits of the SHA-256 of `input`: short, stable across releases and platforms.
pub fn hash8(input: &str) -> String {
    let digest = Sha256::digest(input.as_bytes());
    digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// Short stable hash of a read database. It names the projector's consumer group, so a new
/// target gets a new group (which starts from the earliest offsets; the read model's per-stream
/// versions skip what the replay already applied).
pub fn target_hash(target: &Target) -> String {
    hash8(&format!(
        "{}/{}/{}",
        target.type_.as_str(),
        target.url_secret_ref.name,
        target.url_secret_ref.key
    ))
}

/// Name of the projector Deployment.
pub fn deployment_name(projection: &str) -> String {
    format!("{projection}-projector")
}

/// Name of the replay Job of a request: request ids are arbitrary strings, so only their hash.
pub fn replay_job_name(projection: &str, request_id: &str) -> String {
    format!("{projection}-replay-{}", hash8(request_id))
}

/// The label the Job controller puts on a Job's pods, naming the Job.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// Name of the ServiceAccount, Role and RoleBinding that may publish into this Projection's
/// status (and nothing else): used by the replay Jobs and the projector pods.
pub fn replay_rbac_name(projection: &str) -> String {
    format!("{projection}-replay")
}

/// Kafka consumer group prefix of the projector reading into `target`.
pub fn consumer_group_prefix(namespace: &str, projection: &str, target: &Target) -> String {
    format!("eventline.{namespace}.{projection}.{}", target_hash(target))
}

/// Labels of the projector Deployment and its pods.
pub fn projector_labels(projection: &str) -> BTreeMap<String, String> {
    labels("eventline-projector", projection)
}

/// Labels of a Projection's replay Jobs and their pods.
pub fn replay_labels(projection: &str) -> BTreeMap<String, String> {
    labels("eventline-replay", projection)
}

/// Label selector of a Projection's replay Jobs.
pub fn replay_jobs_selector(projection: &str) -> String {
    format!("app.kubernetes.io/name=eventline-replay,{PROJECTION_LABEL}={projection}")
}

fn labels(app: &str, projection: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), app.to_owned()),
        (
            "app.kubernetes.io/instance".to_owned(),
            projection.to_owned(),
        ),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "eventline-operator".to_owned(),
        ),
        (PROJECTION_LABEL.to_owned(), projection.to_owned()),
    ])
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn env_secret(name: &str, secret: &SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.name.clone(),
                key: secret.key.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn container_security_context() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Capabilities::default()
        }),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..SecurityContext::default()
    }
}

fn pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS_USER),
        run_as_group: Some(RUN_AS_USER),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..PodSecurityContext::default()
    }
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        ..SeccompProfile::default()
    }
}

/// `spec.imagePullSecrets`, for every pod that runs `spec.image`.
fn image_pull_secrets(p: &Projection) -> Option<Vec<LocalObjectReference>> {
    (!p.spec.image_pull_secrets.is_empty()).then(|| p.spec.image_pull_secrets.clone())
}

/// A writable `/tmp`: the root filesystem is read-only.
fn tmp_volume() -> (Volume, VolumeMount) {
    (
        Volume {
            name: "tmp".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
        VolumeMount {
            name: "tmp".to_owned(),
            mount_path: "/tmp".to_owned(),
            ..VolumeMount::default()
        },
    )
}

fn http_probe(path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        ..Probe::default()
    }
}

/// The projector's rollout strategy, always in full: the API server defaults any part an apply
/// leaves out (`rollingUpdate` 25 %/25 %), owned by no field manager, so it would survive a later
/// apply of `Recreate` and make the API server refuse it. Applying `rollingUpdate` ourselves makes
/// it ours, and server-side apply removes it when a later apply (`Recreate`) leaves it out.
fn rollout_strategy(target: &Target) -> DeploymentStrategy {
    if target.type_ == TargetType::Sqlite {
        // SQLite has one writer: never run an old and a new pod side by side during a rollout.
        DeploymentStrategy {
            type_: Some("Recreate".to_owned()),
            rolling_update: None,
        }
    } else {
        DeploymentStrategy {
            type_: Some("RollingUpdate".to_owned()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::String("25%".to_owned())),
                max_unavailable: Some(IntOrString::String("25%".to_owned())),
            }),
        }
    }
}

/// The live projector: `eventline project` consuming Kafka into the **active target** (the
/// target the last successful cross-database replay moved to, else `spec.target`).
pub fn projector_deployment(p: &Projection, active_target: &Target) -> Result<Deployment> {
    let owner = Owner::of(p)?;
    let spec = &p.spec;
    let labels = projector_labels(&owner.name);
    let selector = BTreeMap::from([
        (
            "app.kubernetes.io/name".to_owned(),
            "eventline-projector".to_owned(),
        ),
        ("app.kubernetes.io/instance".to_owned(), owner.name.clone()),
    ]);
    let (volume, mount) = tmp_volume();
    let container = Container {
        name: "projector".to_owned(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some(spec.image_pull_policy.as_str().to_owned()),
        args: Some(vec!["project".to_owned()]),
        env: Some(
            spec.env
                .iter()
                .cloned()
                .chain([
                    env("EVENTLINE_PROJECTOR_SOURCE", "kafka"),
                    env(
                        "EVENTLINE_KAFKA_BROKERS",
                        spec.source.kafka.bootstrap_servers.clone(),
                    ),
                    env(
                        "EVENTLINE_TOPIC_PREFIX",
                        spec.source.kafka.topic_prefix.clone(),
                    ),
                    env("EVENTLINE_PROJECTIONS", spec.projection.clone()),
                ])
                .chain(
                    spec.source
                        .kafka
                        .topic_partitions
                        .map(|n| env("EVENTLINE_TOPIC_PARTITIONS", n.to_string())),
                )
                .chain(
                    spec.source
                        .kafka
                        .topic_replication
                        .map(|n| env("EVENTLINE_TOPIC_REPLICATION", n.to_string())),
                )
                .chain([
                    env_secret("EVENTLINE_READ_MODEL_URL", &active_target.url_secret_ref),
                    env(
                        "EVENTLINE_CONSUMER_GROUP_PREFIX",
                        consumer_group_prefix(&owner.namespace, &owner.name, active_target),
                    ),
                    env("EVENTLINE_LISTEN_ADDR", format!("0.0.0.0:{PROJECTOR_PORT}")),
                    env("EVENTLINE_LOG_FORMAT", "json"),
                    env(
                        "EVENTLINE_PROJECTOR_REPORT_TO",
                        format!("{}/{}", owner.namespace, owner.name),
                    ),
                ])
                .collect(),
        ),
        ports: Some(vec![ContainerPort {
            name: Some("http".to_owned()),
            container_port: PROJECTOR_PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(http_probe("/healthz")),
        readiness_probe: Some(http_probe("/readyz")),
        resources: spec.resources.clone(),
        security_context: Some(container_security_context()),
        volume_mounts: Some(vec![mount]),
        ..Container::default()
    };
    let annotations = BTreeMap::from([
        ("prometheus.io/scrape".to_owned(), "true".to_owned()),
        ("prometheus.io/port".to_owned(), PROJECTOR_PORT.to_string()),
        ("prometheus.io/path".to_owned(), "/metrics".to_owned()),
    ]);
    let strategy = Some(rollout_strategy(active_target));
    Ok(Deployment {
        metadata: owner.meta(deployment_name(&owner.name), labels.clone()),
        spec: Some(DeploymentSpec {
            replicas: Some(spec.replicas),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            strategy,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    // The projector publishes its lag and dead-letter count into this
                    // Projection's status, with the account allowed only that.
                    service_account_name: Some(replay_rbac_name(&owner.name)),
                    image_pull_secrets: image_pull_secrets(p),
                    security_context: Some(pod_security_context()),
                    volumes: Some(vec![volume]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    })
}

/// The replay Job of `p.spec.replay`: `eventline replay` from the event store into the replay's
/// target (or else the active target), reporting progress into this Projection's status.
/// Returns `None` when the Projection requests no replay.
pub fn replay_job(p: &Projection, active_target: &Target) -> Result<Option<Job>> {
    let Some(replay) = &p.spec.replay else {
        return Ok(None);
    };
    let owner = Owner::of(p)?;
    let spec = &p.spec;
    let target = replay.target.as_ref().unwrap_or(active_target);
    let mut meta = owner.meta(
        replay_job_name(&owner.name, &replay.request_id),
        labels("eventline-replay", &owner.name),
    );
    meta.annotations = Some(BTreeMap::from([(
        REPLAY_REQUEST_ID_ANNOTATION.to_owned(),
        replay.request_id.clone(),
    )]));
    let (volume, mount) = tmp_volume();
    let container = Container {
        name: "replay".to_owned(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some(spec.image_pull_policy.as_str().to_owned()),
        args: Some(vec!["replay".to_owned()]),
        env: Some(
            spec.env
                .iter()
                .cloned()
                .chain([
                    env_secret("EVENTLINE_STORE_URL", &spec.source.store.url_secret_ref),
                    env_secret("EVENTLINE_REPLAY_TARGET_URL", &target.url_secret_ref),
                    env("EVENTLINE_REPLAY_PROJECTION", spec.projection.clone()),
                    env("EVENTLINE_REPLAY_REQUEST_ID", replay.request_id.clone()),
                    env("EVENTLINE_REPLAY_PROGRESS", "json"),
                    env(
                        "EVENTLINE_REPLAY_REPORT_TO",
                        format!("{}/{}", owner.namespace, owner.name),
                    ),
                    env("EVENTLINE_LOG_FORMAT", "json"),
                ])
                .collect(),
        ),
        resources: spec.resources.clone(),
        security_context: Some(container_security_context()),
        volume_mounts: Some(vec![mount]),
        ..Container::default()
    };
    Ok(Some(Job {
        metadata: meta,
        spec: Some(JobSpec {
            // A replay checkpoints as it goes: a retry continues where the last pod stopped.
            backoff_limit: Some(3),
            // Counted from the Job's start, pending pods included: a pod that can never start
            // fails the Job instead of blocking every later replay request.
            active_deadline_seconds: Some(replay.active_deadline_seconds),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels("eventline-replay", &owner.name)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    restart_policy: Some("Never".to_owned()),
                    service_account_name: Some(replay_rbac_name(&owner.name)),
                    image_pull_secrets: image_pull_secrets(p),
                    security_context: Some(pod_security_context()),
                    volumes: Some(vec![volume]),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }))
}

/// The replay Jobs' ServiceAccount.
pub fn replay_service_account(p: &Projection) -> Result<ServiceAccount> {
    let owner = Owner::of(p)?;
    Ok(ServiceAccount {
        metadata: owner.meta(
            replay_rbac_name(&owner.name),
            labels("eventline-replay", &owner.name),
        ),
        ..ServiceAccount::default()
    })
}

/// The replay Jobs' Role: `get` and `patch` on this one Projection's status, nothing else.
pub fn replay_role(p: &Projection) -> Result<Role> {
    let owner = Owner::of(p)?;
    Ok(Role {
        metadata: owner.meta(
            replay_rbac_name(&owner.name),
            labels("eventline-replay", &owner.name),
        ),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![crate::crd::GROUP.to_owned()]),
            resources: Some(vec!["projections/status".to_owned()]),
            resource_names: Some(vec![owner.name.clone()]),
            verbs: vec!["get".to_owned(), "patch".to_owned()],
            ..PolicyRule::default()
        }]),
    })
}

/// Binds [`replay_role`] to [`replay_service_account`].
pub fn replay_role_binding(p: &Projection) -> Result<RoleBinding> {
    let owner = Owner::of(p)?;
    let name = replay_rbac_name(&owner.name);
    Ok(RoleBinding {
        metadata: owner.meta(name.clone(), labels("eventline-replay", &owner.name)),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "Role".to_owned(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name,
            namespace: Some(owner.namespace.clone()),
            ..Subject::default()
        }]),
    })
}

#[cfg(test)]
mod tests;
