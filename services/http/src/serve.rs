use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::error::ApiError;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// Requests larger than this are refused with 413 before any handler runs.
pub(crate) const BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// The limit layer answers an oversized body with a plain-text 413 of its own; clients get the
/// problem document every other error is.
async fn problem_for_too_large(response: Response) -> Response {
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_problem {
        return ApiError::PayloadTooLarge {
            limit_bytes: BODY_LIMIT_BYTES,
        }
        .into_response();
    }
    response
}

async fn track_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("eventline_http_requests_total", &labels).increment(1);
    metrics::histogram!("eventline_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops accepting and
/// finishes the requests in flight.
///
/// Every request gets an `x-request-id` (kept if the client sent one, returned in the
/// response), a tracing span carrying it (a child of the caller's W3C `traceparent` when it
/// sent one), a body limit, and Prometheus metrics
/// `eventline_http_requests_total` and `eventline_http_request_duration_seconds`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = router
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|request: Request| async move {
            ApiError::MethodNotAllowed {
                detail: format!(
                    "{} is not allowed on {}: commands are POST, queries GET",
                    request.method(),
                    request.uri().path()
                ),
            }
        })
        .layer(middleware::from_fn(track_metrics))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT_BYTES))
        .layer(middleware::map_response(problem_for_too_large))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let request_id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let span = tracing::info_span!("http", method = %request.method(), uri = %request.uri(), request_id);
                // The caller's trace, if it sent one: the request continues it.
                if let Some(parent) = request
                    .headers()
                    .get(eventline_trace_context::TRACEPARENT)
                    .and_then(|v| v.to_str().ok())
                {
                    eventline_trace_context::set_parent(&span, parent);
                }
                span
            }),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid));
    let listener = listener.tap_io(|tcp| {
        // Answers are written whole; waiting to coalesce them only adds latency.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Resolves on SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
