//! The HTTP services an application serves, assembled from its domains' routes, and the
//! readiness checks of every role.

use std::sync::Arc;

use axum::Router;
use eventline_auth::{Access, Authentication};
use eventline_core::{EventStore, SnapshotStore};
use eventline_domain::{CommandContext, Domains};
use eventline_http::{ReadyCheck, ops_routes, stream_routes};
use eventline_readmodel::ReadModelDb;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::AppError;

#[derive(OpenApi)]
#[openapi(info(
    title = "Eventline command API",
    description = "Commands append events to the event store. Errors are RFC 9457 problem documents."
))]
struct CommandApiDoc;

#[derive(OpenApi)]
#[openapi(info(
    title = "Eventline query API",
    description = "Read models kept by projectors. Errors are RFC 9457 problem documents."
))]
struct QueryApiDoc;

pub(crate) fn store_check(store: Arc<dyn EventStore>) -> (&'static str, ReadyCheck) {
    let check: ReadyCheck = Arc::new(move || {
        let store = Arc::clone(&store);
        Box::pin(async move { store.ping().await.map_err(|e| e.to_string()) })
    });
    ("event_store", check)
}

pub(crate) fn read_model_check(db: ReadModelDb) -> (&'static str, ReadyCheck) {
    let check: ReadyCheck = Arc::new(move || {
        let db = db.clone();
        Box::pin(async move { db.ping().await.map_err(|e| e.to_string()) })
    });
    ("read_model", check)
}

/// Ready when the Kafka cluster answers a metadata request within two seconds.
pub(crate) fn kafka_check(brokers: &str) -> Result<(&'static str, ReadyCheck), AppError> {
    let probe = Arc::new(
        eventline_kafka::BrokerProbe::new(brokers)
            .map_err(|e| AppError::Kafka(format!("creating the readiness probe: {e}")))?,
    );
    let check: ReadyCheck = Arc::new(move || {
        let probe = Arc::clone(&probe);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || probe.check(std::time::Duration::from_secs(2)))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
        })
    });
    Ok(("kafka", check))
}

/// Snapshots every `every` versions where the store keeps them (`every` 0: off).
pub(crate) fn snapshot_setting(
    snapshots: Option<Arc<dyn SnapshotStore>>,
    every: u64,
) -> Option<(Arc<dyn SnapshotStore>, u64)> {
    match snapshots {
        Some(store) if every > 0 => Some((store, every)),
        None if every > 0 => {
            tracing::warn!(
                "this event store keeps no snapshots; aggregates load from their first event"
            );
            None
        }
        _ => None,
    }
}

/// The command service: every domain's command routes (each needing the write scope), the
/// read-only `/streams` routes (the read scope), and the operational endpoints (open, for
/// probes and scrapers). Aggregates are snapshotted every `every` versions into `snapshots`.
pub(crate) fn command_service(
    domains: &Domains,
    store: Arc<dyn EventStore>,
    snapshots: Option<(Arc<dyn SnapshotStore>, u64)>,
    auth: &Authentication,
) -> Router {
    let context = CommandContext {
        store: Arc::clone(&store),
        snapshots,
    };
    let (commands, mut openapi) = OpenApiRouter::with_openapi(CommandApiDoc::openapi())
        .merge(domains.command_routes(&context))
        .split_for_parts();
    auth.document(&mut openapi, Access::Write);
    let (streams, mut streams_openapi) = OpenApiRouter::new()
        .merge(stream_routes(Arc::clone(&store)))
        .split_for_parts();
    auth.document(&mut streams_openapi, Access::Read);
    openapi.merge(streams_openapi);
    let mut checks = vec![store_check(store)];
    checks.extend(auth.ready_check());
    auth.protect(commands, Access::Write)
        .merge(auth.protect(streams, Access::Read))
        .merge(ops_routes(checks, openapi))
}

/// The query service: every domain's query routes (each needing the read scope) plus the
/// operational endpoints.
pub(crate) fn query_service(domains: &Domains, db: ReadModelDb, auth: &Authentication) -> Router {
    let (router, mut openapi) = OpenApiRouter::with_openapi(QueryApiDoc::openapi())
        .merge(domains.query_routes(&db))
        .split_for_parts();
    auth.document(&mut openapi, Access::Read);
    let mut checks = vec![read_model_check(db)];
    checks.extend(auth.ready_check());
    auth.protect(router, Access::Read)
        .merge(ops_routes(checks, openapi))
}
