//! `/healthz` (the process is alive), `/readyz` (the operator reached the API server and its CRD
//! is installed) and `/metrics` (Prometheus text format).
//!
//! A replica that is not the leader is still ready: leader election decides who reconciles,
//! readiness only whether this process can.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

/// State shared by the endpoints.
#[derive(Clone, Debug)]
pub struct HttpState {
    /// Set once the API server answered and the CRD is queryable.
    pub ready: Arc<AtomicBool>,
    /// Renders the metrics.
    pub metrics: PrometheusHandle,
    /// The reconciler's metrics handle, for the replay gauges read from Projections.
    pub reconciler: crate::metrics::Metrics,
}

/// The operator's HTTP router.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the API server or the Projection CRD was not reached yet\n",
        )
    }
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render() + &state.reconciler.replay_gauges(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let body = response
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        (status, body)
    }

    #[tokio::test]
    async fn health_readiness_and_metrics_over_http() {
        let recorder = crate::metrics::prometheus_recorder().expect("recorder");
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!(crate::metrics::RECONCILIATIONS_TOTAL).increment(3);
        });
        let ready = Arc::new(AtomicBool::new(false));
        let app = router(HttpState {
            ready: ready.clone(),
            metrics: handle,
            reconciler: crate::metrics::Metrics::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        assert_eq!(get(addr, "/healthz").await, (200, "ok\n".to_owned()));
        let (status, _) = get(addr, "/readyz").await;
        assert_eq!(status, 503, "not ready before the API server was reached");
        ready.store(true, Ordering::Release);
        assert_eq!(get(addr, "/readyz").await.0, 200);
        let (status, body) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            body.contains("eventline_operator_reconciliations_total 3"),
            "metrics body: {body}"
        );
        server.abort();
    }

    #[tokio::test]
    async fn metrics_show_the_replays_of_the_watched_projections_while_leading() {
        use crate::crd::{Projection, ProjectionStatus, ReplayPhase, ReplayStatus};
        use crate::fixtures::TestProjection;
        use kube::runtime::{reflector, watcher};

        let recorder = crate::metrics::prometheus_recorder().expect("recorder");
        let reconciler = crate::metrics::Metrics::default();
        let app = router(HttpState {
            ready: Arc::new(AtomicBool::new(true)),
            metrics: recorder.handle(),
            reconciler: reconciler.clone(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        let failed = Projection::test().with_status(ProjectionStatus {
            replay: Some(ReplayStatus {
                request_id: "r1".into(),
                phase: Some(ReplayPhase::Failed),
                ..ReplayStatus::default()
            }),
            ..ProjectionStatus::default()
        });
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Apply(failed));
        let gauge = r#"eventline_projection_replay_phase{namespace="bank",name="accounts",projection="accounts",phase="Failed"} 1"#;

        let (_, body) = get(addr, "/metrics").await;
        assert!(!body.contains("eventline_projection_replay"), "{body}");
        reconciler.watching(store);
        let (_, body) = get(addr, "/metrics").await;
        assert!(body.contains(gauge), "metrics body: {body}");
        reconciler.stopped_watching();
        let (_, body) = get(addr, "/metrics").await;
        assert!(!body.contains("eventline_projection_replay"), "{body}");
        server.abort();
    }
}
