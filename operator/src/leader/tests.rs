//! Leader election against a small fake Lease API (GET, POST, PATCH of one Lease, kept in
//! memory): the work runs only while this replica holds the Lease, stops when another replica
//! takes it, and the Lease is released on shutdown.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock;

use super::*;

const LEASE_PATH: &str =
    "/apis/coordination.k8s.io/v1/namespaces/eventline-system/leases/eventline-operator";

type Store = Arc<Mutex<Option<Value>>>;

fn lease_config(identity: &str) -> LeaseConfig {
    LeaseConfig {
        name: "eventline-operator".into(),
        namespace: "eventline-system".into(),
        identity: identity.into(),
        duration_seconds: 2,
        grace_seconds: 1,
    }
}

fn response(code: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .body(Body::from(serde_json::to_vec(body).expect("json")))
        .expect("response")
}

/// Serves the one Lease from `store` until the client is dropped.
fn fake_lease_api(store: Store) -> (Client, tokio::task::JoinHandle<()>) {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().clone();
            let path = request.uri().path().to_owned();
            let bytes = request.into_body().collect_bytes().await.expect("body");
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).expect("json")
            };
            let mut lease = store.lock().expect("store");
            let answer = match (method, path.as_str()) {
                (Method::GET, LEASE_PATH) => match lease.as_ref() {
                    Some(l) => response(StatusCode::OK, l),
                    None => response(
                        StatusCode::NOT_FOUND,
                        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
                    ),
                },
                (
                    Method::POST,
                    "/apis/coordination.k8s.io/v1/namespaces/eventline-system/leases",
                ) => {
                    let mut created = body;
                    created["apiVersion"] = json!("coordination.k8s.io/v1");
                    created["kind"] = json!("Lease");
                    created["metadata"]["namespace"] = json!("eventline-system");
                    *lease = Some(created.clone());
                    response(StatusCode::CREATED, &created)
                }
                (Method::PATCH, LEASE_PATH) => {
                    let current = lease
                        .get_or_insert_with(|| json!({"metadata": {"name": "eventline-operator"}}));
                    if !current["spec"].is_object() {
                        current["spec"] = json!({});
                    }
                    for (k, v) in body["spec"].as_object().cloned().unwrap_or_default() {
                        if v.is_null() {
                            current["spec"].as_object_mut().expect("spec").remove(&k);
                        } else {
                            current["spec"][k] = v;
                        }
                    }
                    current["apiVersion"] = json!("coordination.k8s.io/v1");
                    current["kind"] = json!("Lease");
                    response(StatusCode::OK, current)
                }
                (m, p) => panic!("unexpected request {m} {p}"),
            };
            send.send_response(answer);
        }
    });
    (Client::new(service, "eventline-system"), server)
}

fn holder(store: &Store) -> Option<String> {
    store.lock().expect("store").as_ref()?["spec"]["holderIdentity"]
        .as_str()
        .map(str::to_owned)
}

async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(15), async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

#[tokio::test]
async fn works_while_holding_the_lease_and_releases_it_on_shutdown() {
    let store: Store = Arc::default();
    let (client, _server) = fake_lease_api(store.clone());
    let (started, stopped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let shutdown = CancellationToken::new();
    let leader = {
        let (started, stopped, shutdown) = (started.clone(), stopped.clone(), shutdown.clone());
        tokio::spawn(async move {
            run_as_leader(client, &lease_config("replica-a"), shutdown, |stop| {
                let (started, stopped) = (started.clone(), stopped.clone());
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    stop.cancelled().await;
                    stopped.fetch_add(1, Ordering::SeqCst);
                }
            })
            .await
        })
    };
    until("the work started", || started.load(Ordering::SeqCst) == 1).await;
    assert_eq!(
        holder(&store).as_deref(),
        Some("replica-a"),
        "the work runs only as the holder"
    );

    shutdown.cancel();
    leader.await.expect("task").expect("clean end");
    assert_eq!(stopped.load(Ordering::SeqCst), 1, "the work was stopped");
    assert_eq!(
        holder(&store),
        None,
        "the Lease was released for the next replica"
    );
}

#[tokio::test]
async fn waits_for_another_holders_lease_and_stops_when_it_is_taken_away() {
    let store: Store = Arc::default();
    let renewed = Timestamp::now();
    *store.lock().expect("store") = Some(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "eventline-operator", "namespace": "eventline-system"},
        "spec": {"holderIdentity": "replica-b", "leaseDurationSeconds": 2, "renewTime": MicroTime(renewed), "acquireTime": MicroTime(renewed)},
    }));
    let (client, _server) = fake_lease_api(store.clone());
    let (started, stopped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let shutdown = CancellationToken::new();
    let leader = {
        let (started, stopped, shutdown) = (started.clone(), stopped.clone(), shutdown.clone());
        tokio::spawn(async move {
            run_as_leader(client, &lease_config("replica-a"), shutdown, |stop| {
                let (started, stopped) = (started.clone(), stopped.clone());
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    stop.cancelled().await;
                    stopped.fetch_add(1, Ordering::SeqCst);
                }
            })
            .await
        })
    };
    until(
        "the other replica's Lease expired and was taken over",
        || started.load(Ordering::SeqCst) == 1,
    )
    .await;
    let waited = Timestamp::now().duration_since(renewed);
    assert!(
        waited.as_secs_f64() >= 1.9,
        "took over after {waited:?}, before replica-b's 2 s Lease expired"
    );
    assert_eq!(holder(&store).as_deref(), Some("replica-a"));

    // Replica b takes the Lease (as after a network partition): replica a must stop working.
    if let Some(lease) = store.lock().expect("store").as_mut() {
        lease["spec"]["holderIdentity"] = json!("replica-b");
        lease["spec"]["renewTime"] = json!(MicroTime(Timestamp::now()));
        lease["spec"]["leaseDurationSeconds"] = json!(60);
    }
    until("the work stopped", || stopped.load(Ordering::SeqCst) == 1).await;
    assert_eq!(
        started.load(Ordering::SeqCst),
        1,
        "no restart while replica-b holds the Lease"
    );

    shutdown.cancel();
    leader.await.expect("task").expect("clean end");
    assert_eq!(
        holder(&store).as_deref(),
        Some("replica-b"),
        "replica a never releases b's Lease"
    );
}
