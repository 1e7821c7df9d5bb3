use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;

/// A dependency check for `/readyz`: resolves to `Err(reason)` when the dependency is down.
pub type ReadyCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// How long `/readyz` waits for one dependency before calling it down.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// How often histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process-wide Prometheus recorder, installed on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_seconds".into()),
                &[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            )
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is installed already; the handle still renders ours.
        let _ = metrics::set_global_recorder(recorder);
        // Histogram samples are folded into buckets by upkeep; without it they would pile up
        // in memory between scrapes (or forever, when nobody scrapes).
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "could not start the metrics upkeep thread");
        }
        handle
    })
}

/// `/healthz` (the process is alive), `/readyz` (every dependency answers), `/metrics`
/// (Prometheus text format) and `/openapi.json` (generated from the handlers, with the error
/// answers every operation shares added by [`document_problems`](crate::document_problems)).
pub fn ops_routes(
    checks: Vec<(&'static str, ReadyCheck)>,
    mut openapi: utoipa::openapi::OpenApi,
) -> Router {
    crate::openapi::document_problems(&mut openapi);
    let checks = Arc::new(checks);
    let openapi = Arc::new(openapi);
    prometheus();
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route(
            "/readyz",
            get(move || {
                let checks = Arc::clone(&checks);
                async move { readiness(checks).await }
            }),
        )
        .route(
            "/metrics",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    prometheus().render(),
                )
            }),
        )
        .route(
            "/openapi.json",
            get(move || {
                let openapi = Arc::clone(&openapi);
                async move { Json(openapi.as_ref().clone()) }
            }),
        )
}

async fn readiness(checks: Arc<Vec<(&'static str, ReadyCheck)>>) -> Response {
    let mut results = Vec::with_capacity(checks.len());
    for (name, check) in checks.iter() {
        let outcome = match tokio::time::timeout(READY_TIMEOUT, check()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(reason),
            Err(_) => Err(format!("no answer within {READY_TIMEOUT:?}")),
        };
        results.push((*name, outcome));
    }
    let ready = results.iter().all(|(_, r)| r.is_ok());
    let detail: serde_json::Map<String, serde_json::Value> = results
        .into_iter()
        .map(|(name, r)| {
            let text = match r {
                Ok(()) => "ok".to_owned(),
                Err(reason) => {
                    tracing::warn!(dependency = name, %reason, "not ready");
                    reason
                }
            };
            (name.to_owned(), json!(text))
        })
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "status": if ready { "ready" } else { "not ready" }, "checks": detail });
    (status, Json(body)).into_response()
}
