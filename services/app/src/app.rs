//! [`App`]: an Eventline application, made of the domains it lists, and what each of its
//! subcommands runs.

use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use clap::{CommandFactory, FromArgMatches};
use eventline_auth::Authentication;
use eventline_core::{EventStore, Projection, SnapshotStore};
use eventline_domain::{CompositionError, Domain, Domains};
use eventline_http::ops_routes;
use eventline_processor::ProcessManager;
use eventline_projector::{KafkaProjector, KafkaProjectorConfig, NotifyOnAppend};
use eventline_readmodel::ReadModelDb;
use eventline_store_sqlite::SqliteEventStore;
use tokio_util::sync::CancellationToken;

use crate::cli::{
    Cli, Command, CommandApiArgs, EmbeddedArgs, ProcessorArgs, ProgressStyle, ProjectArgs,
    ProjectorSource, QueryApiArgs, RelayArgs, ReplayArgs, RollbackArgs,
};
use crate::routers::{kafka_check, read_model_check, snapshot_setting, store_check};
use crate::services::{Embedded, Services, listen, local_addr};
use crate::url::{
    DEFAULT_APPEND_BATCH, OpenedStore, open_read_model, open_store, open_store_with_snapshots,
};
use crate::{AppError, introspect};

/// An Eventline application: the domains it lists, served by the whole platform (every
/// subcommand of the command line, authentication, metrics, health, OpenAPI, graceful
/// shutdown).
///
/// An application's `main` is one expression:
///
/// ```no_run
/// # fn shipments() -> eventline_app::Domain { eventline_app::Domain::new("shipments") }
/// fn main() -> std::process::ExitCode {
///     eventline_app::App::new().domain(shipments()).run()
/// }
/// ```
#[derive(Debug, Clone, Default)]
pub struct App {
    domains: Domains,
    listed: Vec<Domain>,
    conflict: Option<CompositionError>,
}

impl App {
    /// An application with no domain yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a domain. Two domains that claim the same name (domain, stream type, projection,
    /// table or process manager) make the application refuse to start, naming both.
    #[must_use]
    pub fn domain(mut self, domain: Domain) -> Self {
        self.listed.push(domain);
        match Domains::new(self.listed.clone()) {
            Ok(domains) => self.domains = domains,
            Err(conflict) => {
                self.conflict.get_or_insert(conflict);
            }
        }
        self
    }

    /// The application's domains.
    pub fn domains(&self) -> &Domains {
        &self.domains
    }

    /// Checks that the listed domains fit together.
    pub fn check(&self) -> Result<(), AppError> {
        match &self.conflict {
            Some(conflict) => Err(AppError::Composition(conflict.clone())),
            None => Ok(()),
        }
    }

    /// The whole `main`: parses the command line, sets up logging, runs the subcommand until
    /// it ends or SIGTERM/Ctrl-C stops it gracefully, and says why it failed if it did.
    pub fn run(self) -> ExitCode {
        let matches = Cli::command().get_matches();
        let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
        // Traces name their service after the subcommand unless OTEL_SERVICE_NAME says otherwise.
        let service = format!("eventline-{}", matches.subcommand_name().unwrap_or("app"));
        // Dropped after the runtime, when every span has ended: it exports the last ones.
        let _telemetry = crate::telemetry::init(cli.log_format, &cli.log, &service);
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                eprintln!("error: cannot start the async runtime: {error}");
                return ExitCode::FAILURE;
            }
        };
        runtime.block_on(async move {
            let shutdown = CancellationToken::new();
            tokio::spawn({
                let shutdown = shutdown.clone();
                async move {
                    eventline_http::shutdown_signal().await;
                    tracing::info!(
                        "shutting down: finishing requests in flight and the current batch"
                    );
                    shutdown.cancel();
                }
            });
            match self.execute(cli.command, shutdown).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    let error = anyhow::Error::from(error);
                    tracing::error!(error = format!("{error:#}"), "eventline stopped");
                    eprintln!("error: {error:#}");
                    ExitCode::FAILURE
                }
            }
        })
    }

    /// Runs one subcommand until it ends or `shutdown` is cancelled.
    pub async fn execute(
        &self,
        command: Command,
        shutdown: CancellationToken,
    ) -> Result<(), AppError> {
        self.check()?;
        let services = match &command {
            Command::Embedded(args) => self.embedded(args, shutdown).await?.services,
            Command::CommandApi(args) => self.command_api(args, shutdown).await?,
            Command::QueryApi(args) => self.query_api(args, shutdown).await?,
            Command::Project(args) => self.project(args, shutdown).await?,
            Command::Relay(args) => self.relay(args, shutdown).await?,
            Command::Replay(args) => return self.replay(args, shutdown).await,
            Command::Rollback(args) => return self.roll_back(args).await,
            Command::Processor(args) => self.processor(args, shutdown).await?,
            Command::Token(args) => {
                println!("{}", crate::auth::mint(args)?);
                return Ok(());
            }
            Command::Projections(args) => {
                println!("{}", introspect::describe(&self.domains, args.output));
                return Ok(());
            }
        };
        services.wait().await
    }

    /// The command service's router: every domain's command routes, `/streams`, and the
    /// operational endpoints.
    pub fn command_service(
        &self,
        store: Arc<dyn EventStore>,
        snapshots: Option<(Arc<dyn SnapshotStore>, u64)>,
        auth: &Authentication,
    ) -> Router {
        crate::routers::command_service(&self.domains, store, snapshots, auth)
    }

    /// The query service's router: every domain's query routes and the operational endpoints.
    pub fn query_service(&self, db: ReadModelDb, auth: &Authentication) -> Router {
        crate::routers::query_service(&self.domains, db, auth)
    }

    /// The process managers named by `--processors` (all when none are named).
    fn selected_process_managers(
        &self,
        store: &Arc<dyn EventStore>,
        names: &[String],
    ) -> Result<Vec<Arc<dyn ProcessManager>>, AppError> {
        select_by_name(self.domains.process_managers(store), names, |p| p.name())
            .map_err(|(name, known)| AppError::UnknownProcessor { name, known })
    }
}

/// The items of `all` that `names` name (all of them when `names` is empty), or the first
/// unknown name with the known ones (`none` when there are none).
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
                    let known = if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    };
                    (name.clone(), known)
                })
        })
        .collect()
}

impl App {
    /// `embedded`: opens (or creates) the data directory and starts everything; returns once
    /// both APIs listen and the read model's tables exist.
    pub async fn embedded(
        &self,
        args: &EmbeddedArgs,
        shutdown: CancellationToken,
    ) -> Result<Embedded, AppError> {
        std::fs::create_dir_all(&args.data_dir).map_err(|source| AppError::Io {
            what: format!("creating the data directory {}", args.data_dir.display()),
            source,
        })?;
        let opened = match &args.store {
            Some(url) => {
                open_store_with_snapshots("--store", url, args.store_pool_size, args.append_batch)
                    .await?
            }
            None => {
                let store = Arc::new(
                    SqliteEventStore::open(args.data_dir.join("events.sqlite"))
                        .await?
                        .with_group_commit(
                            eventline_store_sqlite::GroupCommitSettings::SINGLE_WRITER
                                .with_max_appends(args.append_batch),
                        ),
                );
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
            .project_from_store(
                &self.domains.projections(),
                &store,
                &db,
                args.batch_size,
                Some(appended),
            )
            .await?;
        services
            .run_processors(
                self.domains.process_managers(&store),
                &store,
                &db,
                args.batch_size,
            )
            .await?;
        let command_listener = listen(args.command_addr).await?;
        let query_listener = listen(args.query_addr).await?;
        let command_addr = local_addr(&command_listener, args.command_addr)?;
        let query_addr = local_addr(&query_listener, args.query_addr)?;
        services.serve(
            command_listener,
            self.command_service(store, snapshots, &auth),
        );
        services.serve(query_listener, self.query_service(db, &auth));
        tracing::info!(
            data_dir = %args.data_dir.display(),
            store = %args.store.as_ref().map_or_else(|| "sqlite (data dir)".to_owned(), ToString::to_string),
            command_api = %format!("http://{command_addr}"),
            query_api = %format!("http://{query_addr}"),
            "eventline embedded mode is up"
        );
        Ok(Embedded {
            command_addr,
            query_addr,
            services,
        })
    }

    /// `eventline command-api`.
    pub async fn command_api(
        &self,
        args: &CommandApiArgs,
        shutdown: CancellationToken,
    ) -> Result<Services, AppError> {
        let opened = open_store_with_snapshots(
            "--store",
            &args.store.url,
            args.store.store_pool_size,
            args.append_batch,
        )
        .await?;
        let snapshots = snapshot_setting(opened.snapshots, args.snapshot_every);
        let auth = crate::auth::authentication(&args.auth, None).await?;
        let listener = listen(args.listen).await?;
        tracing::info!(store = %args.store.url, listen = %local_addr(&listener, args.listen)?, "command API is up");
        let mut services = Services::new(shutdown);
        services.serve(
            listener,
            self.command_service(opened.events, snapshots, &auth),
        );
        Ok(services)
    }

    /// `eventline query-api`.
    pub async fn query_api(
        &self,
        args: &QueryApiArgs,
        shutdown: CancellationToken,
    ) -> Result<Services, AppError> {
        let db =
            open_read_model("--read-model", &args.read_model, args.read_model_pool_size).await?;
        let auth = crate::auth::authentication(&args.auth, None).await?;
        let listener = listen(args.listen).await?;
        tracing::info!(read_model = %args.read_model, listen = %local_addr(&listener, args.listen)?, "query API is up");
        let mut services = Services::new(shutdown);
        services.serve(listener, self.query_service(db, &auth));
        Ok(services)
    }

    /// The built-in projections named by `--projections` (all when none are named).
    fn selected_projections(&self, names: &[String]) -> Result<Vec<Arc<dyn Projection>>, AppError> {
        select_by_name(self.domains.projections(), names, |p| p.name())
            .map_err(|(name, known)| AppError::UnknownProjection { name, known })
    }

    /// `eventline project`: the selected projections, from the store or from Kafka, plus
    /// `/healthz`, `/readyz` and `/metrics`.
    pub async fn project(
        &self,
        args: &ProjectArgs,
        shutdown: CancellationToken,
    ) -> Result<Services, AppError> {
        let selected = self.selected_projections(&args.projections)?;
        let db =
            open_read_model("--read-model", &args.read_model, args.read_model_pool_size).await?;
        let listener = listen(args.listen).await?;
        let mut services = Services::new(shutdown);
        let mut checks = vec![read_model_check(db.clone())];
        let lag_source = match (args.source, &args.store, &args.kafka_brokers) {
            (ProjectorSource::Store, Some(url), _) => {
                let store =
                    open_store("--store", url, args.store_pool_size, DEFAULT_APPEND_BATCH).await?;
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
                    services.tasks.spawn(async move {
                        projector.run(shutdown).await.map_err(AppError::from)
                    });
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

    /// `eventline replay`: runs to the end (or to `shutdown`), printing progress.
    pub async fn replay(
        &self,
        args: &ReplayArgs,
        shutdown: CancellationToken,
    ) -> Result<(), AppError> {
        // The reporter starts first, so that a replay that cannot even start (a projection
        // the image does not contain, an unreachable database) says why in the Projection's
        // status, where the operator turns it into conditions and an Event.
        let reporter = match &args.report_to {
            Some(target) => Some(
                crate::status_report::StatusReporter::start(
                    target.clone(),
                    args.request_id.clone(),
                )
                .await
                .map_err(|source| AppError::Kubernetes {
                    flag: "--report-to",
                    source: Box::new(source),
                })?,
            ),
            None => None,
        };
        let replay = match self.prepare_replay(args).await {
            Ok(replay) => replay,
            Err(error) => {
                if let Some(reporter) = reporter {
                    reporter.finish(Some(error.to_string())).await;
                }
                return Err(error);
            }
        };
        let bar = match args.progress {
            ProgressStyle::Bar => true,
            ProgressStyle::Json => false,
            ProgressStyle::Auto => std::io::IsTerminal::is_terminal(&std::io::stderr()),
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

    /// The replay `args` ask for: its projection, store, target and reference opened.
    async fn prepare_replay(
        &self,
        args: &ReplayArgs,
    ) -> Result<eventline_replay::Replay, AppError> {
        let projection = self.replay_projection(&args.projection)?;
        let store = open_store(
            "--store",
            &args.store,
            args.store_pool_size,
            DEFAULT_APPEND_BATCH,
        )
        .await?;
        let target = open_read_model("--target", &args.target, 4).await?;
        let mut config = eventline_replay::ReplayConfig::new(args.request_id.clone());
        config.batch_size = args.batch_size as usize;
        config.progress_every = std::time::Duration::from_secs(args.progress_seconds);
        if let Some(url) = &args.verify_against {
            config.verify_against = Some(open_read_model("--verify-against", url, 2).await?);
        }
        tracing::info!(store = %args.store, target = %args.target, projection = projection.name(),
            request_id = %args.request_id, "replay starting");
        Ok(eventline_replay::Replay::new(
            store, target, projection, config,
        ))
    }

    /// The projection named by `--projection`.
    fn replay_projection(&self, name: &str) -> Result<Arc<dyn Projection>, AppError> {
        self.selected_projections(&[name.to_owned()])
            .map_err(|error| match error {
                AppError::UnknownProjection { name, known } => {
                    AppError::UnknownReplayProjection { name, known }
                }
                other => other,
            })
            .map(|mut selected| selected.remove(0))
    }

    /// `eventline rollback`: makes the version the last cut-over replaced live again.
    pub async fn roll_back(&self, args: &RollbackArgs) -> Result<(), AppError> {
        let projection = self.replay_projection(&args.projection)?;
        let store = open_store("--store", &args.store, 4, DEFAULT_APPEND_BATCH).await?;
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
    pub async fn relay(
        &self,
        args: &RelayArgs,
        shutdown: CancellationToken,
    ) -> Result<Services, AppError> {
        let store = open_store(
            "--store",
            &args.store.url,
            args.store.store_pool_size,
            DEFAULT_APPEND_BATCH,
        )
        .await?;
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
        &self,
        args: &ProcessorArgs,
        shutdown: CancellationToken,
    ) -> Result<Services, AppError> {
        let store = open_store(
            "--store",
            &args.store,
            args.store_pool_size,
            args.append_batch,
        )
        .await?;
        let selected = self.selected_process_managers(&store, &args.processors)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The composition is generic: what an application contains comes from its `main`, so no
    /// file of this crate may name a domain crate.
    #[test]
    fn the_composition_names_no_domain() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        let mut files = vec![concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml").to_owned()];
        for entry in std::fs::read_dir(dir).expect("src") {
            files.push(entry.expect("entry").path().display().to_string());
        }
        for file in files {
            let text = std::fs::read_to_string(&file).expect("readable");
            // Spelled out at run time, so that this test does not find itself.
            for domain in ["bank", "posts", "orders"] {
                for name in [format!("eventline_{domain}"), format!("eventline-{domain}")] {
                    assert!(!text.contains(&name), "{file} names {name}");
                }
            }
        }
    }

    #[test]
    fn domains_that_conflict_stop_the_application_before_it_starts() {
        let app = App::new()
            .domain(Domain::new("shipping"))
            .domain(Domain::new("shipping"));
        let error = app.check().expect_err("conflict");
        assert_eq!(
            error.to_string(),
            "the application's domains do not fit together: two domains are named \"shipping\""
        );
    }

    #[test]
    fn a_name_the_image_does_not_contain_lists_what_it_does() {
        let error = select_by_name(vec!["a", "b"], &["c".to_owned()], |s| s).expect_err("unknown");
        assert_eq!(error, ("c".to_owned(), "a, b".to_owned()));
        let error = select_by_name(Vec::<&str>::new(), &["c".to_owned()], |s| s).expect_err("none");
        assert_eq!(error.1, "none");
    }
}
