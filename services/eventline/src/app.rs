//! Assembles Eventline's services from their crates.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use eventline_auth::{Access, Authentication};
use eventline_bank::{Account, AccountsProjection};
use eventline_core::{CommandHandler, EventStore, Position, Projection, SnapshotStore};
use eventline_http::{ReadyCheck, ops_routes, serve, stream_routes};
use eventline_orders::{Order, OrderProcessor, OrdersProjection};
use eventline_posts::{Post, PostsProjection};
use eventline_processor::{ProcessManager, Processor, ProcessorConfig};
use eventline_projector::{
    KafkaProjector, KafkaProjectorConfig, NotifyOnAppend, ProjectorConfig, ProjectorError,
    StoreProjector,
};
use eventline_readmodel::ReadModelDb;
use eventline_store_sqlite::SqliteEventStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::auth::AuthSettingsError;
use crate::cli::{
    CommandApiArgs, EmbeddedArgs, ProcessorArgs, ProgressStyle, ProjectArgs, ProjectorSource,
    QueryApiArgs, RelayArgs, ReplayArgs, RollbackArgs,
};
use crate::url::{OpenError, OpenedStore, open_read_model, open_store, open_store_with_snapshots};

/// Why a service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Open(Box<OpenError>),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("event store: {0}")]
    Store(#[from] eventline_core::StoreError),
    #[error("read model: {0}")]
    ReadModel(#[from] eventline_readmodel::ReadModelError),
    #[error(transparent)]
    Projector(#[from] ProjectorError),
    #[error(transparent)]
    Relay(#[from] eventline_relay::RelayError),
    #[error(transparent)]
    Processor(#[from] eventline_processor::ProcessorError),
    #[error(transparent)]
    Auth(#[from] AuthSettingsError),
    #[error("--processors: no processor named {name:?} (built in: {known})")]
    UnknownProcessor { name: String, known: String },
    #[error("--projections: no projection named {name:?} (built in: {known})")]
    UnknownProjection { name: String, known: String },
    #[error("--projection: no projection named {name:?} (built in: {known})")]
    UnknownReplayProjection { name: String, known: String },
    #[error(transparent)]
    Replay(Box<eventline_replay::ReplayError>),
    #[error("{flag}: cannot reach the Kubernetes API: {source}")]
    Kubernetes {
        flag: &'static str,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("{0} is required")]
    MissingFlag(&'static str),
    #[error("kafka: {0}")]
    Kafka(String),
    #[error("a service task panicked: {0}")]
    Panicked(String),
}

impl From<eventline_replay::ReplayError> for AppError {
    fn from(error: eventline_replay::ReplayError) -> Self {
        AppError::Replay(Box::new(error))
    }
}

impl From<OpenError> for AppError {
    fn from(error: OpenError) -> Self {
        AppError::Open(Box::new(error))
    }
}

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

fn store_check(store: Arc<dyn EventStore>) -> (&'static str, ReadyCheck) {
    let check: ReadyCheck = Arc::new(move || {
        let store = Arc::clone(&store);
        Box::pin(async move { store.ping().await.map_err(|e| e.to_string()) })
    });
    ("event_store", check)
}

fn read_model_check(db: ReadModelDb) -> (&'static str, ReadyCheck) {
    let check: ReadyCheck = Arc::new(move || {
        let db = db.clone();
        Box::pin(async move { db.ping().await.map_err(|e| e.to_string()) })
    });
    ("read_model", check)
}

/// Ready when the Kafka cluster answers a metadata request within two seconds.
fn kafka_check(brokers: &str) -> Result<(&'static str, ReadyCheck), AppError> {
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
fn snapshot_setting(
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
pub fn command_service(
    store: Arc<dyn EventStore>,
    snapshots: Option<(Arc<dyn SnapshotStore>, u64)>,
    auth: &Authentication,
) -> Router {
    let mut bank = CommandHandler::<Account>::new(Arc::clone(&store));
    let mut posts = CommandHandler::<Post>::new(Arc::clone(&store));
    let mut orders = CommandHandler::<Order>::new(Arc::clone(&store));
    if let Some((snapshots, every)) = snapshots {
        bank = bank.with_snapshots(Arc::clone(&snapshots), every, Account::SNAPSHOT_FORMAT);
        posts = posts.with_snapshots(Arc::clone(&snapshots), every, Post::SNAPSHOT_FORMAT);
        orders = orders.with_snapshots(snapshots, every, Order::SNAPSHOT_FORMAT);
    }
    let (commands, mut openapi) = OpenApiRouter::with_openapi(CommandApiDoc::openapi())
        .merge(eventline_bank::api::command_routes(bank))
        .merge(eventline_posts::api::command_routes(posts))
        .merge(eventline_orders::api::command_routes(orders))
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
pub fn query_service(db: ReadModelDb, auth: &Authentication) -> Router {
    let (router, mut openapi) = OpenApiRouter::with_openapi(QueryApiDoc::openapi())
        .merge(eventline_bank::api::query_routes(
            eventline_bank::api::QueryState::new(db.clone()),
        ))
        .merge(eventline_posts::api::query_routes(
            eventline_posts::api::QueryState::new(db.clone()),
        ))
        .merge(eventline_orders::api::query_routes(
            eventline_orders::api::QueryState::new(db.clone()),
        ))
        .split_for_parts();
    auth.document(&mut openapi, Access::Read);
    let mut checks = vec![read_model_check(db)];
    checks.extend(auth.ready_check());
    auth.protect(router, Access::Read)
        .merge(ops_routes(checks, openapi))
}

/// The projections this build of Eventline runs.
pub fn projections() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(AccountsProjection),
        Arc::new(PostsProjection),
        Arc::new(OrdersProjection),
    ]
}

/// The process managers this build of Eventline runs, sending their commands to `store`.
pub fn process_managers(store: &Arc<dyn EventStore>) -> Vec<Arc<dyn ProcessManager>> {
    vec![Arc::new(OrderProcessor::new(Arc::clone(store)))]
}

/// The built-in process managers named by `--processors` (all when none are named).
fn selected_process_managers(
    store: &Arc<dyn EventStore>,
    names: &[String],
) -> Result<Vec<Arc<dyn ProcessManager>>, AppError> {
    select_by_name(process_managers(store), names, |p| p.name())
        .map_err(|(name, known)| AppError::UnknownProcessor { name, known })
}

/// The items of `all` that `names` name (all of them when `names` is empty), or the first
/// unknown name with the known ones.
fn select_by_name<T: Clone>(
    all: Vec<T>,
    names: &[String],
    name_of: impl Fn(&T) -> &str,
) -> Result<Vec<T>, (String, String)> {
    if names.is_empty() {
        return Ok(all);
    }
    names
        .iter()
        .map(|name| {
            all.iter()
                .find(|item| name_of(item) == name)
                .cloned()
                .ok_or_else(|| {
                    let known: Vec<&str> = all.iter().map(&name_of).collect();
                    (name.clone(), known.join(", "))
                })
        })
        .collect()
}

async fn listen(addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Listen { addr, source })
}

fn local_addr(listener: &TcpListener, addr: SocketAddr) -> Result<SocketAddr, AppError> {
    listener
        .local_addr()
        .map_err(|source| AppError::Listen { addr, source })
}

/// A set of service tasks that stop together.
#[derive(Debug)]
pub struct Services {
    tasks: JoinSet<Result<(), AppError>>,
    shutdown: CancellationToken,
    addrs: Vec<SocketAddr>,
}

impl Services {
    fn new(shutdown: CancellationToken) -> Self {
        Self {
            tasks: JoinSet::new(),
            shutdown,
            addrs: Vec::new(),
        }
    }

    /// The addresses the HTTP servers listen on, in the order they were started.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    fn serve(&mut self, listener: TcpListener, router: Router) {
        if let Ok(addr) = listener.local_addr() {
            self.addrs.push(addr);
        }
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            serve(listener, router, shutdown)
                .await
                .map_err(|source| AppError::Io {
                    what: "serving HTTP".into(),
                    source,
                })
        });
    }

    /// Starts a store-tailing projector for every projection, once its tables exist.
    async fn project_from_store(
        &mut self,
        projections: &[Arc<dyn Projection>],
        store: &Arc<dyn EventStore>,
        db: &ReadModelDb,
        batch_size: u32,
        appended: Option<watch::Receiver<Position>>,
    ) -> Result<(), AppError> {
        for projection in projections {
            let mut projector =
                StoreProjector::new(Arc::clone(store), db.clone(), Arc::clone(projection))
                    .with_config(ProjectorConfig {
                        batch_size: batch_size as usize,
                        ..ProjectorConfig::default()
                    });
            if let Some(appended) = &appended {
                projector = projector.with_append_signal(appended.clone());
            }
            projector.prepare().await?;
            let shutdown = self.shutdown.clone();
            self.tasks
                .spawn(async move { projector.run(shutdown).await.map_err(AppError::from) });
        }
        Ok(())
    }

    /// Starts a processor for every process manager, its checkpoint and lease in `checkpoints`.
    async fn run_processors(
        &mut self,
        managers: Vec<Arc<dyn ProcessManager>>,
        store: &Arc<dyn EventStore>,
        checkpoints: &ReadModelDb,
        batch_size: u32,
    ) -> Result<(), AppError> {
        for manager in managers {
            let config = ProcessorConfig {
                batch_size: batch_size as usize,
                ..ProcessorConfig::default()
            };
            let processor =
                Processor::new(Arc::clone(store), checkpoints.clone(), manager, config).await?;
            let shutdown = self.shutdown.clone();
            self.tasks
                .spawn(async move { processor.run(shutdown).await.map_err(AppError::from) });
        }
        Ok(())
    }

    /// Waits until every task has stopped. The first failure cancels the others (so the
    /// process exits rather than limping on half-alive) and is returned.
    pub async fn wait(mut self) -> Result<(), AppError> {
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            let result = joined.unwrap_or_else(|e| Err(AppError::Panicked(e.to_string())));
            if let Err(error) = result {
                self.shutdown.cancel();
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Embedded mode, started: both APIs listening and the projector running.
#[derive(Debug)]
pub struct Embedded {
    pub command_addr: SocketAddr,
    pub query_addr: SocketAddr,
    pub services: Services,
}

impl Embedded {
    /// Opens (or creates) the data directory and starts everything; returns once both APIs
    /// listen and the read model's tables exist.
    pub async fn start(args: &EmbeddedArgs, shutdown: CancellationToken) -> Result<Self, AppError> {
        std::fs::create_dir_all(&args.data_dir).map_err(|source| AppError::Io {
            what: format!("creating the data directory {}", args.data_dir.display()),
            source,
        })?;
        let opened = match &args.store {
            Some(url) => open_store_with_snapshots("--store", url, args.store_pool_size).await?,
            None => {
                let store =
                    Arc::new(SqliteEventStore::open(args.data_dir.join("events.sqlite")).await?);
                OpenedStore {
                    events: store.clone(),
                    snapshots: Some(store),
                }
            }
        };
        let snapshots = snapshot_setting(opened.snapshots, args.snapshot_every);
        let store = NotifyOnAppend::new(opened.events);
        let appended = store.subscribe();
        let store: Arc<dyn EventStore> = Arc::new(store);
        let db = match &args.read_model {
            Some(url) => open_read_model("--read-model", url, 8).await?,
            None => ReadModelDb::open_sqlite(args.data_dir.join("readmodel.sqlite")).await?,
        };

        let auth = crate::auth::authentication(&args.auth, Some(&args.data_dir)).await?;
        let mut services = Services::new(shutdown);
        services
            .project_from_store(&projections(), &store, &db, args.batch_size, Some(appended))
            .await?;
        services
            .run_processors(process_managers(&store), &store, &db, args.batch_size)
            .await?;
        let command_listener = listen(args.command_addr).await?;
        let query_listener = listen(args.query_addr).await?;
        let command_addr = local_addr(&command_listener, args.command_addr)?;
        let query_addr = local_addr(&query_listener, args.query_addr)?;
        services.serve(command_listener, command_service(store, snapshots, &auth));
        services.serve(query_listener, query_service(db, &auth));
        tracing::info!(
            data_dir = %args.data_dir.display(),
            store = %args.store.as_ref().map_or_else(|| "sqlite (data dir)".to_owned(), ToString::to_string),
            command_api = %format!("http://{command_addr}"),
            query_api = %format!("http://{query_addr}"),
            "eventline embedded mode is up"
        );
        Ok(Self {
            command_addr,
            query_addr,
            services,
        })
    }
}

/// `eventline command-api`.
pub async fn command_api(
    args: &CommandApiArgs,
    shutdown: CancellationToken,
) -> Result<Services, AppError> {
    let opened =
        open_store_with_snapshots("--store", &args.store.url, args.store.store_pool_size).await?;
    let snapshots = snapshot_setting(opened.snapshots, args.snapshot_every);
    let auth = crate::auth::authentication(&args.auth, None).await?;
    let listener = listen(args.listen).await?;
    tracing::info!(store = %args.store.url, listen = %local_addr(&listener, args.listen)?, "command API is up");
    let mut services = Services::new(shutdown);
    services.serve(listener, command_service(opened.events, snapshots, &auth));
    Ok(services)
}

/// `eventline query-api`.
pub async fn query_api(
    args: &QueryApiArgs,
    shutdown: CancellationToken,
) -> Result<Services, AppError> {
    let db = open_read_model("--read-model", &args.read_model, args.read_model_pool_size).await?;
    let auth = crate::auth::authentication(&args.auth, None).await?;
    let listener = listen(args.listen).await?;
    tracing::info!(read_model = %args.read_model, listen = %local_addr(&listener, args.listen)?, "query API is up");
    let mut services = Services::new(shutdown);
    services.serve(listener, query_service(db, &auth));
    Ok(services)
}

/// The built-in projections named by `--projections` (all when none are named).
fn selected_projections(names: &[String]) -> Result<Vec<Arc<dyn Projection>>, AppError> {
    select_by_name(projections(), names, |p| p.name())
        .map_err(|(name, known)| AppError::UnknownProjection { name, known })
}

/// `eventline project`: the selected projections, from the store or from Kafka, plus
/// `/healthz`, `/readyz` and `/metrics`.
pub async fn project(
    args: &ProjectArgs,
    shutdown: CancellationToken,
) -> Result<Services, AppError> {
    let selected = selected_projections(&args.projections)?;
    let db = open_read_model("--read-model", &args.read_model, args.read_model_pool_size).await?;
    let listener = listen(args.listen).await?;
    let mut services = Services::new(shutdown);
    let mut checks = vec![read_model_check(db.clone())];
    let lag_source = match (args.source, &args.store, &args.kafka_brokers) {
        (ProjectorSource::Store, Some(url), _) => {
            let store = open_store("--store", url, args.store_pool_size).await?;
            services
                .project_from_store(&selected, &store, &db, args.batch_size, None)
                .await?;
            tracing::info!(store = %url, read_model = %args.read_model, "projector is up");
            checks.push(store_check(Arc::clone(&store)));
            crate::status_report::LagSource::Store(store)
        }
        (ProjectorSource::Kafka, _, Some(brokers)) => {
            let mut config = KafkaProjectorConfig::new(brokers.clone());
            config.topic_prefix.clone_from(&args.topics.topic_prefix);
            config.topics = args.topics.settings();
            config.group_prefix.clone_from(&args.consumer_group_prefix);
            config.batch_size = args.batch_size as usize;
            config.session_timeout =
                std::time::Duration::from_millis(args.kafka_session_timeout_ms);
            for projection in selected.iter().cloned() {
                let projector = KafkaProjector::new(db.clone(), projection, config.clone())?;
                let shutdown = services.shutdown.clone();
                services
                    .tasks
                    .spawn(async move { projector.run(shutdown).await.map_err(AppError::from) });
            }
            checks.push(kafka_check(brokers)?);
            tracing::info!(brokers = %brokers, read_model = %args.read_model, "kafka projector is up");
            crate::status_report::LagSource::Kafka {
                brokers: brokers.clone(),
                groups: selected
                    .iter()
                    .map(|p| {
                        let topics = p
                            .stream_types()
                            .iter()
                            .map(|t| eventline_core::wire::topic_name(&config.topic_prefix, t))
                            .collect();
                        (config.group_id(p.name()), topics)
                    })
                    .collect(),
            }
        }
        // clap requires the flag the source needs.
        (ProjectorSource::Store, None, _) => return Err(AppError::MissingFlag("--store")),
        (ProjectorSource::Kafka, _, None) => {
            return Err(AppError::MissingFlag("--kafka-brokers"));
        }
    };
    if let Some(target) = &args.report_to {
        crate::status_report::publish_projector_status(
            target.clone(),
            db.clone(),
            selected.clone(),
            lag_source,
            services.shutdown.clone(),
        )
        .await
        .map_err(|source| AppError::Kubernetes {
            flag: "--report-to",
            source: Box::new(source),
        })?;
    }
    let retention = std::time::Duration::from_secs(args.previous_retention_hours * 3_600);
    let shutdown = services.shutdown.clone();
    services.tasks.spawn(async move {
        end_retention(db, selected, retention, shutdown).await;
        Ok(())
    });
    services.serve(
        listener,
        ops_routes(checks, utoipa::openapi::OpenApi::default()),
    );
    Ok(services)
}

/// Drops the versions that replays' cut-overs replaced once their retention has ended:
/// looks at start and every ten minutes until `shutdown`.
async fn end_retention(
    db: ReadModelDb,
    projections: Vec<Arc<dyn Projection>>,
    retention: std::time::Duration,
    shutdown: CancellationToken,
) {
    loop {
        for projection in &projections {
            let dropped = match db.ensure_schema(projection.as_ref()).await {
                Ok(live) => {
                    db.drop_previous_version_after(&live, projection.as_ref(), retention)
                        .await
                }
                Err(error) => Err(error),
            };
            if let Err(error) = dropped {
                tracing::warn!(projection = projection.name(), %error,
                    "could not check the previous version's retention; trying again later");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(600)) => {}
        }
    }
}

/// `eventline replay`: runs to the end (or to `shutdown`), printing progress.
pub async fn replay(args: &ReplayArgs, shutdown: CancellationToken) -> Result<(), AppError> {
    let projection = replay_projection(&args.projection)?;
    let store = open_store("--store", &args.store, args.store_pool_size).await?;
    let target = open_read_model("--target", &args.target, 4).await?;
    let mut config = eventline_replay::ReplayConfig::new(args.request_id.clone());
    config.batch_size = args.batch_size as usize;
    config.progress_every = std::time::Duration::from_secs(args.progress_seconds);
    if let Some(url) = &args.verify_against {
        config.verify_against = Some(open_read_model("--verify-against", url, 2).await?);
    }
    tracing::info!(store = %args.store, target = %args.target, projection = projection.name(),
        request_id = %args.request_id, "replay starting");
    let replay =
        eventline_replay::Replay::new(store, target.clone(), Arc::clone(&projection), config);
    let bar = match args.progress {
        ProgressStyle::Bar => true,
        ProgressStyle::Json => false,
        ProgressStyle::Auto => std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let reporter = match &args.report_to {
        Some(target) => Some(
            crate::status_report::StatusReporter::start(target.clone(), args.request_id.clone())
                .await
                .map_err(|source| AppError::Kubernetes {
                    flag: "--report-to",
                    source: Box::new(source),
                })?,
        ),
        None => None,
    };
    let mut display = crate::progress::Display::new(bar);
    let finished = replay
        .run(shutdown, |p| {
            display.show(p);
            if let Some(reporter) = &reporter {
                reporter.progress(p);
            }
        })
        .await;
    display.finish();
    if let Some(reporter) = reporter {
        reporter
            .finish(finished.as_ref().err().map(ToString::to_string))
            .await;
    }
    let finished = finished?;
    tracing::info!(
        applied = finished.applied,
        events_per_second = finished.events_per_second,
        "replay finished"
    );
    Ok(())
}

/// The projection named by `--projection`.
fn replay_projection(name: &str) -> Result<Arc<dyn Projection>, AppError> {
    selected_projections(&[name.to_owned()])
        .map_err(|error| match error {
            AppError::UnknownProjection { name, known } => {
                AppError::UnknownReplayProjection { name, known }
            }
            other => other,
        })
        .map(|mut selected| selected.remove(0))
}

/// `eventline rollback`: makes the version the last cut-over replaced live again.
pub async fn roll_back(args: &RollbackArgs) -> Result<(), AppError> {
    let projection = replay_projection(&args.projection)?;
    let store = open_store("--store", &args.store, 4).await?;
    let target = open_read_model("--target", &args.target, 2).await?;
    let replay = eventline_replay::Replay::new(
        store,
        target,
        Arc::clone(&projection),
        eventline_replay::ReplayConfig::new("rollback"),
    );
    let done = replay.roll_back().await?;
    tracing::info!(
        projection = projection.name(),
        caught_up = done.applied,
        position = done.position,
        "rolled back to the previous version"
    );
    Ok(())
}

/// `eventline relay`: publishes the store to Kafka, plus `/healthz`, `/readyz`, `/metrics`.
pub async fn relay(args: &RelayArgs, shutdown: CancellationToken) -> Result<Services, AppError> {
    let store = open_store("--store", &args.store.url, args.store.store_pool_size).await?;
    let checkpoints = open_read_model("--checkpoint-db", &args.checkpoint_db, 2).await?;
    let listener = listen(args.listen).await?;
    let mut config = eventline_relay::RelayConfig::new(args.kafka_brokers.clone());
    config.topic_prefix.clone_from(&args.topics.topic_prefix);
    config.partitions = args.topics.topic_partitions;
    config.replication_factor = args.topics.topic_replication;
    config.batch_size = args.batch_size as usize;
    let relay =
        eventline_relay::Relay::new(Arc::clone(&store), checkpoints.clone(), config).await?;
    let mut services = Services::new(shutdown.clone());
    services
        .tasks
        .spawn(async move { relay.run(shutdown).await.map_err(AppError::from) });
    tracing::info!(store = %args.store.url, brokers = %args.kafka_brokers, "relay is up");
    let checks = vec![
        store_check(store),
        read_model_check(checkpoints),
        kafka_check(&args.kafka_brokers)?,
    ];
    services.serve(
        listener,
        ops_routes(checks, utoipa::openapi::OpenApi::default()),
    );
    Ok(services)
}

/// `eventline processor`: the process managers, plus `/healthz`, `/readyz`, `/metrics`.
pub async fn processor(
    args: &ProcessorArgs,
    shutdown: CancellationToken,
) -> Result<Services, AppError> {
    let store = open_store("--store", &args.store, args.store_pool_size).await?;
    let selected = selected_process_managers(&store, &args.processors)?;
    let checkpoints = open_read_model("--checkpoint-db", &args.checkpoint_db, 2).await?;
    let listener = listen(args.listen).await?;
    let mut services = Services::new(shutdown);
    let names: Vec<&str> = selected.iter().map(|p| p.name()).collect();
    tracing::info!(store = %args.store, checkpoints = %args.checkpoint_db, processors = ?names, "processor is up");
    services
        .run_processors(selected, &store, &checkpoints, args.batch_size)
        .await?;
    let checks = vec![store_check(store), read_model_check(checkpoints)];
    services.serve(
        listener,
        ops_routes(checks, utoipa::openapi::OpenApi::default()),
    );
    Ok(services)
}
