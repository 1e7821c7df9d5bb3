use k8s_openapi::api::core::v1::{EnvVar, LocalObjectReference};
use serde_json::{Value, json};

use super::*;
use crate::fixtures::{NAME, NS, TestProjection, UID, mysql_target, postgres_target};

fn env_of(containers: &[Container]) -> Vec<EnvVar> {
    containers[0].env.clone().expect("env")
}

fn env_json(env: &[EnvVar], name: &str) -> Value {
    let var = env
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("env {name} missing"));
    serde_json::to_value(var).expect("json")
}

fn owner_json() -> Value {
    json!([{
        "apiVersion": "eventline.io/v1alpha1", "kind": "Projection", "name": NAME, "uid": UID,
        "controller": true
    }])
}

#[test]
fn projector_deployment_runs_project_against_the_active_target() {
    let p = Projection::test();
    let d = projector_deployment(&p, &postgres_target()).expect("deployment");
    let meta = serde_json::to_value(&d.metadata).expect("json");
    assert_eq!(meta["name"], "accounts-projector");
    assert_eq!(meta["namespace"], NS);
    assert_eq!(meta["ownerReferences"], owner_json());
    assert_eq!(
        meta["labels"],
        json!({
            "app.kubernetes.io/name": "eventline-projector",
            "app.kubernetes.io/instance": "accounts",
            "app.kubernetes.io/managed-by": "eventline-operator",
            "eventline.io/projection": "accounts",
        })
    );
    let spec = d.spec.expect("spec");
    assert_eq!(spec.replicas, Some(2));
    assert_eq!(
        serde_json::to_value(&spec.strategy).expect("json"),
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
        "PostgreSQL targets roll pods, with the strategy applied in full (nothing left to defaults)"
    );
    let pod = spec.template.spec.expect("pod spec");
    let c = &pod.containers[0];
    assert_eq!(c.args, Some(vec!["project".to_owned()]));
    assert_eq!(c.image.as_deref(), Some("registry.example/eventline:1.0.0"));
    assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
    let env = env_of(&pod.containers);
    let plain: Vec<(String, Option<String>)> = env
        .iter()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect();
    let expected_group = format!(
        "eventline.bank.accounts.{}",
        target_hash(&postgres_target())
    );
    assert_eq!(
        plain,
        vec![
            (
                "EVENTLINE_PROJECTOR_SOURCE".to_owned(),
                Some("kafka".to_owned())
            ),
            (
                "EVENTLINE_KAFKA_BROKERS".to_owned(),
                Some("kafka-0.kafka:9092,kafka-1.kafka:9092".to_owned())
            ),
            (
                "EVENTLINE_TOPIC_PREFIX".to_owned(),
                Some("eventline".to_owned())
            ),
            (
                "EVENTLINE_PROJECTIONS".to_owned(),
                Some("accounts".to_owned())
            ),
            ("EVENTLINE_READ_MODEL_URL".to_owned(), None),
            (
                "EVENTLINE_CONSUMER_GROUP_PREFIX".to_owned(),
                Some(expected_group)
            ),
            (
                "EVENTLINE_LISTEN_ADDR".to_owned(),
                Some("0.0.0.0:9090".to_owned())
            ),
            ("EVENTLINE_LOG_FORMAT".to_owned(), Some("json".to_owned())),
            (
                "EVENTLINE_PROJECTOR_REPORT_TO".to_owned(),
                Some("bank/accounts".to_owned())
            ),
        ]
    );
    assert_eq!(
        env_json(&env, "EVENTLINE_READ_MODEL_URL")["valueFrom"],
        json!({"secretKeyRef": {"name": "accounts-db", "key": "url", "optional": false}})
    );
    let port = &c.ports.as_ref().expect("ports")[0];
    assert_eq!(
        (port.name.as_deref(), port.container_port),
        (Some("http"), 9090)
    );
    let probes = serde_json::to_value((&c.liveness_probe, &c.readiness_probe)).expect("json");
    assert_eq!(
        probes[0]["httpGet"],
        json!({"path": "/healthz", "port": "http"})
    );
    assert_eq!(
        probes[1]["httpGet"],
        json!({"path": "/readyz", "port": "http"})
    );
    let annotations = spec
        .template
        .metadata
        .expect("template meta")
        .annotations
        .expect("annotations");
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], "9090");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    assert_eq!(pod.service_account_name.as_deref(), Some("accounts-replay"));
}

#[test]
fn pods_run_non_root_read_only_without_capabilities() {
    let p = Projection::test().with_replay("r1", None);
    let d = projector_deployment(&p, &postgres_target()).expect("deployment");
    let j = replay_job(&p, &postgres_target())
        .expect("job")
        .expect("requested");
    for pod in [
        d.spec.expect("spec").template.spec,
        j.spec.expect("spec").template.spec,
    ] {
        let pod = pod.expect("pod spec");
        let pod_sc = serde_json::to_value(&pod.security_context).expect("json");
        assert_eq!(pod_sc["runAsNonRoot"], true);
        assert_eq!(pod_sc["seccompProfile"], json!({"type": "RuntimeDefault"}));
        let sc = serde_json::to_value(&pod.containers[0].security_context).expect("json");
        assert_eq!(
            sc,
            json!({
                "runAsNonRoot": true,
                "readOnlyRootFilesystem": true,
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            })
        );
        let mounts = pod.containers[0].volume_mounts.clone().expect("mounts");
        assert_eq!(
            mounts[0].mount_path, "/tmp",
            "a writable /tmp on a read-only root"
        );
    }
}

#[test]
fn a_new_target_gets_a_new_consumer_group() {
    let p = Projection::test();
    let group = |t: &Target| {
        let d = projector_deployment(&p, t).expect("deployment");
        let env = env_of(&d.spec.expect("spec").template.spec.expect("pod").containers);
        env_json(&env, "EVENTLINE_CONSUMER_GROUP_PREFIX")["value"].clone()
    };
    assert_eq!(
        group(&postgres_target()),
        group(&postgres_target()),
        "stable"
    );
    assert_ne!(group(&postgres_target()), group(&mysql_target()));
    let mut other_key = postgres_target();
    other_key.url_secret_ref.key = "url2".into();
    assert_ne!(group(&postgres_target()), group(&other_key));
    // Pinned: a change of the hash would silently restart every projector from offset 0.
    assert_eq!(
        target_hash(&postgres_target()),
        hash8("postgres/accounts-db/url")
    );
    assert_eq!(hash8("r1"), "82f3e9c6");
}

#[test]
fn sqlite_targets_recreate_instead_of_rolling() {
    let p = Projection::test().with_replicas(1, 1);
    let mut sqlite = postgres_target();
    sqlite.type_ = TargetType::Sqlite;
    let d = projector_deployment(&p, &sqlite).expect("deployment");
    let strategy = d.spec.expect("spec").strategy.expect("strategy");
    assert_eq!(strategy.type_.as_deref(), Some("Recreate"));
}

#[test]
fn replay_job_is_named_by_the_request_hash_and_carries_the_raw_id() {
    let id = "rebuild after bug #42 / 2026-01-02";
    let p = Projection::test().with_replay(id, None);
    let j = replay_job(&p, &postgres_target())
        .expect("job")
        .expect("requested");
    let name = j.metadata.name.clone().expect("name");
    assert_eq!(name, format!("accounts-replay-{}", hash8(id)));
    assert!(name.len() <= 63);
    assert_eq!(
        j.metadata.annotations.as_ref().expect("annotations")[REPLAY_REQUEST_ID_ANNOTATION],
        id
    );
    assert_eq!(
        serde_json::to_value(&j.metadata.owner_references).expect("json"),
        owner_json()
    );
    let spec = j.spec.expect("spec");
    assert_eq!(spec.backoff_limit, Some(3));
    assert_eq!(
        spec.active_deadline_seconds,
        Some(6 * 3600),
        "a Job stuck in Pending must not block later replays forever"
    );
    let pod = spec.template.spec.expect("pod");
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.service_account_name.as_deref(), Some("accounts-replay"));
    assert_eq!(pod.containers[0].args, Some(vec!["replay".to_owned()]));
    let env = env_of(&pod.containers);
    assert_eq!(
        env_json(&env, "EVENTLINE_STORE_URL")["valueFrom"]["secretKeyRef"],
        json!({"name": "eventline-store", "key": "url", "optional": false})
    );
    assert_eq!(
        env_json(&env, "EVENTLINE_REPLAY_TARGET_URL")["valueFrom"]["secretKeyRef"]["name"],
        "accounts-db",
        "without replay.target the replay rebuilds the active target"
    );
    for (var, value) in [
        ("EVENTLINE_REPLAY_PROJECTION", "accounts"),
        ("EVENTLINE_REPLAY_REQUEST_ID", id),
        ("EVENTLINE_REPLAY_PROGRESS", "json"),
        ("EVENTLINE_REPLAY_REPORT_TO", "bank/accounts"),
        ("EVENTLINE_LOG_FORMAT", "json"),
    ] {
        assert_eq!(env_json(&env, var)["value"], value, "{var}");
    }
}

#[test]
fn cross_database_replay_job_writes_the_requested_target() {
    let p = Projection::test().with_replay("r1", Some(mysql_target()));
    let j = replay_job(&p, &postgres_target())
        .expect("job")
        .expect("requested");
    let env = env_of(&j.spec.expect("spec").template.spec.expect("pod").containers);
    assert_eq!(
        env_json(&env, "EVENTLINE_REPLAY_TARGET_URL")["valueFrom"]["secretKeyRef"]["name"],
        "accounts-mysql"
    );
}

#[test]
fn no_replay_requested_no_job() {
    assert_eq!(
        replay_job(&Projection::test(), &postgres_target()).expect("ok"),
        None
    );
}

#[test]
fn replay_role_allows_only_get_and_patch_on_this_projections_status() {
    let p = Projection::test();
    let role = serde_json::to_value(replay_role(&p).expect("role")).expect("json");
    assert_eq!(
        role["rules"],
        json!([{
            "apiGroups": ["eventline.io"],
            "resources": ["projections/status"],
            "resourceNames": ["accounts"],
            "verbs": ["get", "patch"],
        }])
    );
    let binding = serde_json::to_value(replay_role_binding(&p).expect("binding")).expect("json");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "accounts-replay"})
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "accounts-replay", "namespace": "bank"}])
    );
    let sa = replay_service_account(&p).expect("sa");
    assert_eq!(sa.metadata.name.as_deref(), Some("accounts-replay"));
    assert_eq!(
        serde_json::to_value(&sa.metadata.owner_references).expect("json"),
        owner_json()
    );
}

#[test]
fn builders_refuse_a_projection_not_read_from_the_api_server() {
    let mut p = Projection::test();
    p.metadata.uid = None;
    assert!(matches!(
        projector_deployment(&p, &postgres_target()),
        Err(Error::MissingUid { .. })
    ));
    p.metadata.namespace = None;
    assert!(matches!(
        replay_service_account(&p),
        Err(Error::MissingNamespace { .. })
    ));
}

#[test]
fn builders_are_deterministic() {
    let p = Projection::test().with_replay("r1", Some(mysql_target()));
    assert_eq!(
        projector_deployment(&p, &postgres_target()).expect("a"),
        projector_deployment(&p, &postgres_target()).expect("b")
    );
    assert_eq!(
        replay_job(&p, &postgres_target()).expect("a"),
        replay_job(&p, &postgres_target()).expect("b")
    );
}

#[test]
fn the_replay_deadline_comes_from_the_request() {
    let mut p = Projection::test().with_replay("r1", None);
    if let Some(r) = p.spec.replay.as_mut() {
        r.active_deadline_seconds = 600;
    }
    let j = replay_job(&p, &postgres_target())
        .expect("job")
        .expect("requested");
    assert_eq!(j.spec.expect("spec").active_deadline_seconds, Some(600));
}

/// With fewer than 3 Kafka brokers the projector's default replication (3) cannot create a
/// missing topic and crash-loops: the Projection carries the relay's topic settings.
#[test]
fn topic_settings_reach_the_projector() {
    let mut p = Projection::test();
    p.spec.source.kafka.topic_partitions = Some(6);
    p.spec.source.kafka.topic_replication = Some(1);
    let d = projector_deployment(&p, &postgres_target()).expect("deployment");
    let pod = d.spec.expect("spec").template.spec.expect("pod");
    let env = env_of(&pod.containers);
    assert_eq!(env_json(&env, "EVENTLINE_TOPIC_PARTITIONS")["value"], "6");
    assert_eq!(env_json(&env, "EVENTLINE_TOPIC_REPLICATION")["value"], "1");

    let d = projector_deployment(&Projection::test(), &postgres_target()).expect("deployment");
    let env = env_of(&d.spec.expect("spec").template.spec.expect("pod").containers);
    assert!(
        !env.iter()
            .any(|e| e.name.starts_with("EVENTLINE_TOPIC_PARTITIONS")
                || e.name.starts_with("EVENTLINE_TOPIC_REPLICATION")),
        "unset: the binary's defaults"
    );
}

/// `spec.env` reaches the projector and replay containers (trace export, log filters), before
/// the operator's own variables, so that one of those set there loses to the operator's value
/// (Kubernetes takes the last of two variables of one name).
#[test]
fn extra_environment_reaches_every_container_that_runs_the_image_and_cannot_override_the_operator()
{
    let mut p = Projection::test().with_replay("r1", None);
    let variable = |name: &str, value: &str| k8s_openapi::api::core::v1::EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    };
    p.spec.env = vec![
        variable("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        variable("EVENTLINE_LOG_FORMAT", "text"),
    ];
    let d = projector_deployment(&p, &postgres_target()).expect("deployment");
    let j = replay_job(&p, &postgres_target())
        .expect("job")
        .expect("requested");
    for pod in [
        d.spec.expect("spec").template.spec.expect("pod"),
        j.spec.expect("spec").template.spec.expect("pod"),
    ] {
        let env = pod.containers[0].env.clone().expect("env");
        let last = |name: &str| {
            env.iter()
                .rev()
                .find(|e| e.name == name)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(
            last("OTEL_EXPORTER_OTLP_ENDPOINT").as_deref(),
            Some("http://collector:4318")
        );
        assert_eq!(last("EVENTLINE_LOG_FORMAT").as_deref(), Some("json"));
    }
}

/// With a private registry (the documented full install uses one), pods without pull secrets
/// fail with ErrImagePull: both the projector and the replay pods get them.
#[test]
fn image_pull_secrets_reach_every_pod_that_runs_the_image() {
    let mut p = Projection::test().with_replay("r1", None);
    p.spec.image_pull_secrets = vec![LocalObjectReference {
        name: "registry-credentials".into(),
    }];
    let d = projector_deployment(&p, &postgres_target()).expect("deployment");
    let j = replay_job(&p, &postgres_target())
        .expect("job")
        .expect("requested");
    for pod in [
        d.spec.expect("spec").template.spec.expect("pod"),
        j.spec.expect("spec").template.spec.expect("pod"),
    ] {
        assert_eq!(
            serde_json::to_value(&pod.image_pull_secrets).expect("json"),
            json!([{"name": "registry-credentials"}])
        );
    }
}
