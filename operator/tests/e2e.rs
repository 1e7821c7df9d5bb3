//! End-to-end against a real cluster (kind or any other), when `EVENTLINE_TEST_KUBECONFIG` names
//! a kubeconfig file: installs the CRD, runs the controller in this process (with leader
//! election on a Lease of the test's own namespace), applies a Projection, observes the projector
//! Deployment, a replay Job on a new requestId, the status conditions and the printer columns,
//! a progress report that survives the operator's own status writes, and cleanup on delete.
//! The pods need not run (the image is never pulled): the replay's pod reports why it waits, and
//! an image change shows as a rollout in progress, not Ready. Without the variable it prints one
//! line saying why it was skipped.
//!
//! `cross_database_replay_on_a_real_cluster` runs a real replay: it needs the Eventline image
//! loaded into the cluster (`EVENTLINE_TEST_IMAGE`) and, reachable from the cluster's pods, a
//! PostgreSQL event store (`EVENTLINE_TEST_CLUSTER_STORE_URL`) and a MySQL/MariaDB read database
//! (`EVENTLINE_TEST_CLUSTER_MYSQL_URL`); `scripts/kind-e2e.sh` provides all three. Without them it
//! prints which variable is missing and skips.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use eventline_operator::crd::{Projection, ReplayPhase};
use eventline_operator::leader::{LeaseConfig, run_as_leader};
use eventline_operator::reconcile::{self, Context};
use eventline_operator::report::{ReplayProgressReport, publish_replay_status};
use eventline_operator::resources::{REPLAY_REQUEST_ID_ANNOTATION, replay_job_name};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::events::Reporter;
use kube::{Client, CustomResourceExt, ResourceExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const MANAGER: &str = "eventline-e2e";
const TIMEOUT: Duration = Duration::from_secs(90);

async fn client(kubeconfig: &str) -> Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).expect("reading EVENTLINE_TEST_KUBECONFIG");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig is usable");
    Client::try_from(config).expect("client")
}

/// Polls `check` every half second until it returns `Some`, or fails after [`TIMEOUT`].
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn projection_manifest(namespace: &str) -> Value {
    json!({
        "apiVersion": "eventline.io/v1alpha1",
        "kind": "Projection",
        "metadata": {"name": "accounts", "namespace": namespace},
        "spec": {
            "projection": "accounts",
            "image": "registry.invalid/eventline:e2e",
            "replicas": 1,
            "source": {
                "store": {"urlSecretRef": {"name": "eventline-store", "key": "url"}},
                "kafka": {"bootstrapServers": "kafka.invalid:9092"},
            },
            "target": {"type": "postgres", "urlSecretRef": {"name": "accounts-db", "key": "url"}},
        },
    })
}

fn condition<'a>(
    p: &'a Projection,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    p.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// The variable's value, or `None` after printing why the test skips (straight to stderr, so the
/// line shows even though the test harness captures output). With `CI` set, a skip fails.
fn required(variable: &str, why: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            let line = format!("skipped, because {variable} is not set ({why})");
            assert!(
                std::env::var("EVENTLINE_E2E_REQUIRED").is_err(),
                "{line}, and EVENTLINE_E2E_REQUIRED is set"
            );
            let _ = writeln!(std::io::stderr(), "{line}");
            None
        }
    }
}

const NO_CLUSTER: &str = "no Kubernetes API server can run here";

/// Installs (or updates) the CRD and waits until it is established.
async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        "projections.eventline.io",
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(Projection::crd()),
    )
    .await
    .expect("CRD applied");
    wait_for("the CRD to be established", || async {
        let crd = crds.get("projections.eventline.io").await.ok()?;
        crd.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
            .then_some(())
    })
    .await;
}

/// A namespace of this run's own, named `PREFIX-<milliseconds>`.
async fn own_namespace(client: &Client, prefix: &str) -> String {
    let suffix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let ns = format!("{prefix}-{suffix}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: kube::api::ObjectMeta {
                    name: Some(ns.clone()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("namespace created");
    ns
}

/// The controller under test: one in this process, or with `EVENTLINE_TEST_OPERATOR_INSTALLED`
/// set the operator installed in the cluster (its image, its chart's RBAC: what
/// `scripts/kind-e2e.sh` does).
struct Controller {
    in_process: Option<(
        CancellationToken,
        tokio::task::JoinHandle<eventline_operator::Result<()>>,
    )>,
}

impl Controller {
    async fn stop(self) {
        if let Some((shutdown, task)) = self.in_process {
            shutdown.cancel();
            task.await
                .expect("controller task")
                .expect("leader election ended cleanly");
        }
    }
}

/// The controller, in this process, behind leader election on a Lease in `ns`, watching `ns`;
/// none when the operator installed in the cluster is the one under test.
fn start_controller(client: &Client, ns: &str) -> Controller {
    if std::env::var_os("EVENTLINE_TEST_OPERATOR_INSTALLED").is_some() {
        return Controller { in_process: None };
    }
    let shutdown = CancellationToken::new();
    let controller = {
        let (client, ns, shutdown) = (client.clone(), ns.to_owned(), shutdown.clone());
        tokio::spawn(async move {
            let ctx = Arc::new(Context::new(
                client.clone(),
                Reporter {
                    controller: "eventline-operator".into(),
                    instance: Some("e2e".into()),
                },
            ));
            let lease = LeaseConfig {
                name: "eventline-operator".into(),
                namespace: ns.clone(),
                identity: "e2e".into(),
                duration_seconds: 15,
                grace_seconds: 5,
            };
            run_as_leader(client.clone(), &lease, shutdown, |stop| {
                reconcile::run(
                    client.clone(),
                    Some(ns.as_str()),
                    ctx.clone(),
                    stop.cancelled_owned(),
                )
            })
            .await
        })
    };
    Controller {
        in_process: Some((shutdown, controller)),
    }
}

#[tokio::test]
async fn projection_lifecycle_on_a_real_cluster() {
    let Some(kubeconfig) = required("EVENTLINE_TEST_KUBECONFIG", NO_CLUSTER) else {
        return;
    };
    let client = client(&kubeconfig).await;

    // 1. The CRD, installed (or updated) and established.
    install_crd(&client).await;

    // 2. A namespace of this run's own.
    let ns = own_namespace(&client, "eventline-e2e").await;
    let namespaces: Api<Namespace> = Api::all(client.clone());

    // 3. The controller, in this process, behind leader election.
    let controller = start_controller(&client, &ns);

    // 4. A Projection: the projector Deployment appears, owned by it.
    let projections: Api<Projection> = Api::namespaced(client.clone(), &ns);
    projections
        .patch(
            "accounts",
            &PatchParams::apply(MANAGER),
            &Patch::Apply(projection_manifest(&ns)),
        )
        .await
        .expect("Projection applied");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let deployment = wait_for("the projector Deployment", || async {
        deployments
            .get_opt("accounts-projector")
            .await
            .ok()
            .flatten()
    })
    .await;
    assert_eq!(deployment.owner_references()[0].kind, "Projection");
    assert_eq!(deployment.spec.as_ref().and_then(|s| s.replicas), Some(1));

    // 5. Status with the three conditions.
    let p = wait_for("status with conditions", || async {
        let p = projections.get("accounts").await.ok()?;
        (condition(&p, "Ready").is_some()
            && condition(&p, "Replaying").is_some()
            && condition(&p, "Degraded").is_some())
        .then_some(p)
    })
    .await;
    let status = p.status.clone().expect("status");
    assert_eq!(status.observed_generation, Some(1));
    assert!(status.phase.is_some());
    assert_eq!(
        condition(&p, "Replaying").map(|c| c.reason.as_str()),
        Some("NoReplay")
    );

    // 6. Printer columns, as `kubectl get proj` shows them.
    let table_request = http::Request::get(format!(
        "/apis/eventline.io/v1alpha1/namespaces/{ns}/projections"
    ))
    .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
    .body(Vec::new())
    .expect("request");
    let table: Value =
        serde_json::from_str(&client.request_text(table_request).await.expect("table"))
            .expect("json");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        columns,
        ["Name", "Phase", "Replay", "Progress", "Lag", "Age"]
    );
    let phase = serde_json::to_value(status.phase).expect("phase");
    assert_eq!(table["rows"][0]["cells"][1], phase);

    // 7. A new requestId starts exactly one replay Job.
    let request_id = "e2e replay #1";
    let mut manifest = projection_manifest(&ns);
    manifest["spec"]["replay"] = json!({"requestId": request_id});
    projections
        .patch(
            "accounts",
            &PatchParams::apply(MANAGER),
            &Patch::Apply(manifest),
        )
        .await
        .expect("replay requested");
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let job_name = replay_job_name("accounts", request_id);
    let job = wait_for("the replay Job", || async {
        jobs.get_opt(&job_name).await.ok().flatten()
    })
    .await;
    assert_eq!(
        job.annotations()
            .get(REPLAY_REQUEST_ID_ANNOTATION)
            .map(String::as_str),
        Some(request_id)
    );
    let p = wait_for("status.replay of the request", || async {
        let p = projections.get("accounts").await.ok()?;
        let replay = p.status.as_ref()?.replay.as_ref()?;
        (replay.request_id == request_id).then_some(p)
    })
    .await;
    assert_eq!(
        condition(&p, "Replaying").map(|c| c.status.as_str()),
        Some("True")
    );

    // 8. The replay's progress report survives the operator's next status apply.
    let report = ReplayProgressReport {
        phase: ReplayPhase::Running,
        events_applied: 42,
        events_total: Some(100),
        percent: Some(42.0),
        events_per_second: Some(10.0),
        eta_seconds: Some(6),
        error: None,
        started_at: None,
        finished_at: None,
    };
    publish_replay_status(&client, &ns, "accounts", request_id, &report)
        .await
        .expect("progress published");
    projections
        .patch(
            "accounts",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .expect("scaled");
    let p = wait_for("observedGeneration of the scale change", || async {
        let p = projections.get("accounts").await.ok()?;
        (p.status.as_ref()?.observed_generation == p.metadata.generation).then_some(p)
    })
    .await;
    let replay = p
        .status
        .as_ref()
        .and_then(|s| s.replay.clone())
        .expect("replay");
    assert_eq!(
        replay.percent,
        Some(42.0),
        "the operator did not remove the replay's progress"
    );
    let jobs_of_projection = jobs
        .list(&ListParams::default().labels("eventline.io/projection=accounts"))
        .await
        .expect("jobs");
    assert_eq!(
        jobs_of_projection.items.len(),
        1,
        "the same requestId never starts a second Job"
    );

    // 9. The replay's pod cannot pull its image: status.replay says why it waits (the operator
    //    lists the Job's pods and looks again every few seconds while the Job is pending).
    let p = wait_for("status.replay.pendingReason", || async {
        let p = projections.get("accounts").await.ok()?;
        let replay = p.status.as_ref()?.replay.as_ref()?;
        replay.pending_reason.is_some().then_some(p)
    })
    .await;
    let why = p
        .status
        .as_ref()
        .and_then(|s| s.replay.as_ref())
        .and_then(|r| r.pending_reason.clone())
        .expect("pending reason");
    assert!(
        [
            "ErrImagePull",
            "ImagePullBackOff",
            "CreateContainerConfigError"
        ]
        .iter()
        .any(|reason| why.starts_with(reason)),
        "{why}"
    );

    // 10. An image change is a rollout: not Ready while the new pods are not all there, even
    //     though the Deployment exists and the old pods run (what Argo CD reads as Healthy).
    projections
        .patch(
            "accounts",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"image": "registry.invalid/eventline:e2e-changed"}})),
        )
        .await
        .expect("image changed");
    wait_for("the Deployment's new image", || async {
        let d = deployments.get("accounts-projector").await.ok()?;
        let image = d.spec?.template.spec?.containers[0].image.clone()?;
        (image == "registry.invalid/eventline:e2e-changed").then_some(())
    })
    .await;
    let p = wait_for("Ready False with reason RolloutInProgress", || async {
        let p = projections.get("accounts").await.ok()?;
        let ready = condition(&p, "Ready")?;
        (ready.reason == "RolloutInProgress").then_some(p.clone())
    })
    .await;
    assert_eq!(
        condition(&p, "Ready").map(|c| c.status.as_str()),
        Some("False")
    );
    let d = deployments
        .get("accounts-projector")
        .await
        .expect("deployment");
    assert_eq!(
        serde_json::to_value(d.spec.and_then(|s| s.strategy)).expect("json"),
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
        "the whole strategy is applied, nothing left to defaults"
    );

    // 11. Deleting the Projection removes what it owns (garbage collection by owner references).
    projections
        .delete("accounts", &DeleteParams::foreground())
        .await
        .expect("deleted");
    wait_for("the Deployment and Job to be collected", || async {
        let gone = deployments
            .get_opt("accounts-projector")
            .await
            .ok()?
            .is_none()
            && jobs.get_opt(&job_name).await.ok()?.is_none();
        gone.then_some(())
    })
    .await;

    controller.stop().await;
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("namespace deleted");
}

fn secret(name: &str, url: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"url": url},
    })
}

/// A real cross-database replay: the replay Job runs the Eventline image, reads the (possibly
/// empty) PostgreSQL event store and writes the read model into MySQL/MariaDB; then the operator
/// moves the projector there (Secret reference and consumer group), records the cut-over and
/// keeps the full rollout strategy.
#[tokio::test]
async fn cross_database_replay_on_a_real_cluster() {
    let Some(kubeconfig) = required("EVENTLINE_TEST_KUBECONFIG", NO_CLUSTER) else {
        return;
    };
    let why = "a real replay needs the Eventline image and databases in the cluster: run scripts/kind-e2e.sh";
    let (Some(image), Some(store_url), Some(mysql_url)) = (
        required("EVENTLINE_TEST_IMAGE", why),
        required("EVENTLINE_TEST_CLUSTER_STORE_URL", why),
        required("EVENTLINE_TEST_CLUSTER_MYSQL_URL", why),
    ) else {
        return;
    };
    let client = client(&kubeconfig).await;
    install_crd(&client).await;
    let ns = own_namespace(&client, "eventline-e2e-crossdb").await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    for (name, url) in [
        ("eventline-store", store_url.as_str()),
        ("accounts-db", store_url.as_str()),
        ("accounts-mysql", mysql_url.as_str()),
    ] {
        secrets
            .patch(
                name,
                &PatchParams::apply(MANAGER),
                &Patch::Apply(secret(name, url)),
            )
            .await
            .expect("Secret applied");
    }
    let controller = start_controller(&client, &ns);

    let request_id = "cross-database #1";
    let projections: Api<Projection> = Api::namespaced(client.clone(), &ns);
    projections
        .patch(
            "accounts",
            &PatchParams::apply(MANAGER),
            &Patch::Apply(json!({
                "apiVersion": "eventline.io/v1alpha1",
                "kind": "Projection",
                "metadata": {"name": "accounts", "namespace": ns},
                "spec": {
                    "projection": "bank-accounts",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    // No live projector pods: Kafka is not part of this test.
                    "replicas": 0,
                    "source": {
                        "store": {"urlSecretRef": {"name": "eventline-store", "key": "url"}},
                        "kafka": {"bootstrapServers": "kafka.invalid:9092"},
                    },
                    "target": {"type": "postgres", "urlSecretRef": {"name": "accounts-db", "key": "url"}},
                    "replay": {
                        "requestId": request_id,
                        "target": {"type": "mysql", "urlSecretRef": {"name": "accounts-mysql", "key": "url"}},
                    },
                },
            })),
        )
        .await
        .expect("Projection applied");

    // The replay runs to its end (pulling nothing: the image is in the cluster already).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    let replay = loop {
        let p = projections.get("accounts").await.expect("projection");
        let replay = p.status.as_ref().and_then(|s| s.replay.clone());
        if let Some(r) = replay.filter(|r| r.phase.is_some_and(ReplayPhase::is_finished)) {
            break r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replay did not finish in 5 minutes: {:?}",
            p.status
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    assert_eq!(
        replay.phase,
        Some(ReplayPhase::Succeeded),
        "replay failed: {:?}",
        replay.error
    );

    // The cut-over: the projector now reads the MySQL Secret, with a new consumer group.
    let p = wait_for("activeTarget mysql", || async {
        let p = projections.get("accounts").await.ok()?;
        let active = p.status.as_ref()?.active_target.as_ref()?;
        (active.type_ == eventline_operator::crd::TargetType::Mysql).then_some(p)
    })
    .await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let d = wait_for("the Deployment on the MySQL Secret", || async {
        let d = deployments.get("accounts-projector").await.ok()?;
        let env = d.spec.as_ref()?.template.spec.as_ref()?.containers[0]
            .env
            .clone()?;
        let url = env.iter().find(|e| e.name == "EVENTLINE_READ_MODEL_URL")?;
        let secret = url.value_from.as_ref()?.secret_key_ref.as_ref()?;
        (secret.name == "accounts-mysql").then_some(d)
    })
    .await;
    assert_eq!(
        d.spec
            .and_then(|s| s.strategy)
            .and_then(|s| s.type_)
            .as_deref(),
        Some("RollingUpdate")
    );
    assert_eq!(
        condition(&p, "Replaying").map(|c| c.reason.as_str()),
        Some("ReplaySucceeded")
    );
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    wait_for("the CutOver Event", || async {
        let listed = events.list(&ListParams::default()).await.ok()?;
        listed
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("CutOver"))
            .then_some(())
    })
    .await;

    controller.stop().await;
    Api::<Namespace>::all(client)
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("namespace deleted");
}
