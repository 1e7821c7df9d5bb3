//! End-to-end against a real cluster (kind or any other), when `EVENTLINE_TEST_KUBECONFIG` names
//! a kubeconfig file: installs the CRD, runs the controller in this process (with leader
//! election on a Lease of the test's own namespace), applies a Projection, observes the projector
//! Deployment, a replay Job on a new requestId, the status conditions and the printer columns,
//! a progress report that survives the operator's own status writes, and cleanup on delete.
//! The pods need not run (the image is never pulled). Without the variable it prints one line
//! saying why it was skipped.

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

#[tokio::test]
async fn projection_lifecycle_on_a_real_cluster() {
    let Ok(kubeconfig) = std::env::var("EVENTLINE_TEST_KUBECONFIG") else {
        // Straight to stderr, so the line shows even though the test harness captures output.
        let _ = writeln!(
            std::io::stderr(),
            "skipped, because EVENTLINE_TEST_KUBECONFIG is not set (no Kubernetes API server can run here)"
        );
        return;
    };
    let client = client(&kubeconfig).await;

    // 1. The CRD, installed (or updated) and established.
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

    // 2. A namespace of this run's own.
    let suffix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let ns = format!("eventline-e2e-{suffix}");
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

    // 3. The controller, in this process, behind leader election.
    let shutdown = CancellationToken::new();
    let controller = {
        let (client, ns, shutdown) = (client.clone(), ns.clone(), shutdown.clone());
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

    // 9. Deleting the Projection removes what it owns (garbage collection by owner references).
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

    shutdown.cancel();
    controller
        .await
        .expect("controller task")
        .expect("leader election ended cleanly");
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("namespace deleted");
}
