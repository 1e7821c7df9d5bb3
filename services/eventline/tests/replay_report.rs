//! `eventline replay --report-to NAMESPACE/NAME` publishes its progress into the Projection's
//! `status.replay`, and `eventline project --report-to` its lag and dead-letter count into
//! `status`: checked against a stand-in for the Kubernetes API server (an HTTP server
//! on loopback, reached through a kubeconfig) that records every request it gets.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::routing::patch;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::process::Command;

mod support;

#[derive(Debug, Clone)]
struct Applied {
    content_type: Option<String>,
    path: String,
    field_manager: Option<String>,
    force: Option<String>,
    body: Value,
}

type Recorded = Arc<Mutex<Vec<Applied>>>;

async fn apply_status(
    State(recorded): State<Recorded>,
    Path((namespace, name)): Path<(String, String)>,
    Query(params): Query<std::collections::HashMap<String, String>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Json<Value> {
    // kube sends server-side applies as JSON (which is YAML) under the apply content type.
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    recorded.lock().expect("lock").push(Applied {
        content_type: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        path: format!("{namespace}/{name}"),
        field_manager: params.get("fieldManager").cloned(),
        force: params.get("force").cloned(),
        body: body.clone(),
    });
    // What the API server answers: the whole object, with the applied status.
    Json(json!({
        "apiVersion": "eventline.io/v1alpha1",
        "kind": "Projection",
        "metadata": {"name": name, "namespace": namespace, "uid": "u-1", "generation": 1},
        "spec": {
            "projection": "bank-accounts",
            "image": "eventline:test",
            "source": {
                "store": {"urlSecretRef": {"name": "store", "key": "url"}},
                "kafka": {"bootstrapServers": "kafka:9092"}
            },
            "target": {"type": "postgres", "urlSecretRef": {"name": "read", "key": "url"}}
        },
        "status": body["status"],
    }))
}

/// A stand-in API server on loopback and a kubeconfig (in a temporary directory) that
/// points at it.
async fn fake_api_server() -> (Recorded, tempfile::TempDir, std::path::PathBuf) {
    let recorded: Recorded = Arc::default();
    let app = Router::new()
        .route(
            "/apis/eventline.io/v1alpha1/namespaces/{namespace}/projections/{name}/status",
            patch(apply_status),
        )
        .with_state(Arc::clone(&recorded));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\n\
             users:\n- name: fake\n  user:\n    token: not-a-secret\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n\
             current-context: fake\n"
        ),
    )
    .expect("kubeconfig");

    (recorded, dir, kubeconfig)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_publishes_its_progress_into_the_projection_status() {
    let (recorded, dir, kubeconfig) = fake_api_server().await;

    let store_path = dir.path().join("events.sqlite");
    let store = support::bank_store(&store_path, 50, 9).await;
    drop(store);

    let output = Command::new(env!("CARGO_BIN_EXE_eventline"))
        .args(["replay", "--store"])
        .arg(format!("sqlite://{}", store_path.display()))
        .arg("--target")
        .arg(format!(
            "sqlite://{}",
            dir.path().join("read.sqlite").display()
        ))
        .args(["--projection", "bank-accounts", "--request-id", "r-7"])
        .args(["--batch-size", "50", "--progress", "json"])
        .args(["--report-to", "bank/accounts"])
        .env("KUBECONFIG", &kubeconfig)
        .env("EVENTLINE_LOG", "warn")
        .output()
        .await
        .expect("run eventline replay");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");

    let recorded = recorded.lock().expect("lock").clone();
    assert!(!recorded.is_empty(), "nothing was published: {stderr}");
    for applied in &recorded {
        assert_eq!(applied.path, "bank/accounts");
        assert_eq!(
            applied.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(applied.field_manager.as_deref(), Some("eventline-replay"));
        assert_eq!(applied.force, None, "never forced: a newer request wins");
        assert_eq!(applied.body["status"]["replay"]["requestId"], "r-7");
    }
    let last = &recorded.last().expect("last").body["status"]["replay"];
    assert_eq!(last["eventsApplied"], 500);
    assert_eq!(last["eventsTotal"], 500);
    assert_eq!(last["percent"], 100.0);
    assert_eq!(last["reported"]["phase"], "Succeeded");
    assert!(last["reported"]["finishedAt"].is_string(), "{last}");

    // A bad reference is refused naming the flag.
    let output = Command::new(env!("CARGO_BIN_EXE_eventline"))
        .args(["replay", "--store", "sqlite://x", "--target", "sqlite://y"])
        .args(["--projection", "bank-accounts", "--request-id", "r"])
        .args(["--report-to", "accounts"])
        .output()
        .await
        .expect("run eventline replay");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("--report-to") && stderr.contains("NAMESPACE/NAME"),
        "{stderr}"
    );
}

/// A Projection naming a projection the image does not contain: the replay Job fails, and the
/// Projection's status says why and what the image does contain (the operator turns the
/// failed report into the ReplayFailed condition and Event).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_of_a_projection_the_image_lacks_reports_what_it_contains() {
    let (recorded, dir, kubeconfig) = fake_api_server().await;
    let output = Command::new(env!("CARGO_BIN_EXE_eventline"))
        .args(["replay", "--store"])
        .arg(format!(
            "sqlite://{}",
            dir.path().join("events.sqlite").display()
        ))
        .arg("--target")
        .arg(format!(
            "sqlite://{}",
            dir.path().join("read.sqlite").display()
        ))
        .args(["--projection", "shipment-tracking", "--request-id", "r-8"])
        .args(["--report-to", "bank/accounts"])
        .env("KUBECONFIG", &kubeconfig)
        .env("EVENTLINE_LOG", "warn")
        .output()
        .await
        .expect("run eventline replay");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    let why = "--projection: this image has no projection named \"shipment-tracking\" \
               (it has: bank-accounts, social-posts, shop-orders)";
    assert!(stderr.contains(why), "{stderr}");
    let recorded = recorded.lock().expect("lock").clone();
    let last = &recorded.last().expect("a report").body["status"]["replay"];
    assert_eq!(last["requestId"], "r-8");
    assert_eq!(last["reported"]["phase"], "Failed", "{last}");
    assert!(
        last.to_string()
            .contains("it has: bank-accounts, social-posts, shop-orders"),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_publishes_its_lag_and_dead_letters_into_the_projection_status() {
    let (recorded, dir, kubeconfig) = fake_api_server().await;
    let store_path = dir.path().join("events.sqlite");
    let store = support::bank_store(&store_path, 20, 4).await;
    drop(store);
    let mut projector = Command::new(env!("CARGO_BIN_EXE_eventline"))
        .args(["project", "--source", "store", "--store"])
        .arg(format!("sqlite://{}", store_path.display()))
        .arg("--read-model")
        .arg(format!(
            "sqlite://{}",
            dir.path().join("read.sqlite").display()
        ))
        .args(["--listen", "127.0.0.1:0", "--report-to", "bank/accounts"])
        .env("KUBECONFIG", &kubeconfig)
        .env("EVENTLINE_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("spawn eventline project");
    // The first report goes out at start; the projector may still be behind then, so wait
    // for one that shows it caught up (reports come every 15 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    let caught_up = loop {
        let last = recorded.lock().expect("lock").last().cloned();
        if let Some(applied) = last
            && applied.body["status"]["lagEvents"] == 0
        {
            break applied;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no report of a caught-up projector: {:?}",
            recorded.lock().expect("lock")
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    projector.start_kill().expect("stop");
    assert_eq!(caught_up.path, "bank/accounts");
    assert_eq!(
        caught_up.field_manager.as_deref(),
        Some("eventline-projector")
    );
    assert_eq!(caught_up.force.as_deref(), Some("true"));
    assert_eq!(caught_up.body["status"]["deadLetters"], 0);
    assert!(
        caught_up.body["status"].get("replay").is_none(),
        "the projector owns only its own fields"
    );
}
