//! How a domain plugs into Eventline.
//!
//! A [`Domain`] bundles everything one business domain contributes to the services: its
//! aggregates with the command routes that serve them, its query routes, its projections and
//! its process managers. An application lists its domains and gets the whole platform (the
//! `eventline-app` crate):
//!
//! ```ignore
//! fn main() -> std::process::ExitCode {
//!     eventline_app::App::new().domain(shipments::domain()).run()
//! }
//! ```
//!
//! A domain crate depends on this crate (and on `eventline-core`, `eventline-http`,
//! `eventline-readmodel`), never on the application: the same domain runs in any
//! application that lists it.

mod detached;
mod registry;

use std::sync::Arc;

use eventline_core::{Aggregate, CommandHandler, EventStore, Projection, SnapshotStore};
use eventline_processor::ProcessManager;
use eventline_readmodel::ReadModelDb;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa_axum::router::OpenApiRouter;

pub use registry::{CompositionError, Domains, ProcessManagerInfo};

/// What the command service gives each aggregate's routes: the event store, and where and
/// how often to snapshot (when the service takes snapshots).
#[derive(Debug, Clone)]
pub struct CommandContext {
    /// The event store commands append to.
    pub store: Arc<dyn EventStore>,
    /// The snapshot store and the interval in versions, when snapshots are on.
    pub snapshots: Option<(Arc<dyn SnapshotStore>, u64)>,
}

type CommandRoutes = Arc<dyn Fn(&CommandContext) -> OpenApiRouter + Send + Sync>;
type QueryRoutes = Arc<dyn Fn(ReadModelDb) -> OpenApiRouter + Send + Sync>;
type ProcessManagerFactory =
    Arc<dyn Fn(Arc<dyn EventStore>) -> Arc<dyn ProcessManager> + Send + Sync>;

/// One aggregate of a domain: its stream type and the command routes that serve it.
#[derive(Clone)]
struct AggregateEntry {
    stream_type: &'static str,
    routes: CommandRoutes,
}

/// Everything one business domain contributes to an Eventline application.
///
/// Built with chained calls, in any order:
///
/// ```ignore
/// pub fn domain() -> Domain {
///     Domain::new("bank")
///         .snapshotted_aggregate::<Account>(Account::SNAPSHOT_FORMAT, api::command_routes)
///         .queries(|db| api::query_routes(api::QueryState::new(db)))
///         .projection(AccountsProjection)
/// }
/// ```
#[derive(Clone)]
pub struct Domain {
    name: &'static str,
    description: &'static str,
    aggregates: Vec<AggregateEntry>,
    queries: Vec<QueryRoutes>,
    projections: Vec<Arc<dyn Projection>>,
    process_managers: Vec<ProcessManagerFactory>,
}

impl std::fmt::Debug for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Domain")
            .field("name", &self.name)
            .field("stream_types", &self.stream_types())
            .field("query_routes", &self.queries.len())
            .field("projections", &self.projections)
            .field("process_managers", &self.process_managers.len())
            .finish()
    }
}

impl Domain {
    /// An empty domain named `name` (a short, stable name such as `bank`).
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            description: "",
            aggregates: Vec::new(),
            queries: Vec::new(),
            projections: Vec::new(),
            process_managers: Vec::new(),
        }
    }

    /// One line saying what the domain is, shown by the image's introspection command.
    #[must_use]
    pub fn describe(mut self, description: &'static str) -> Self {
        self.description = description;
        self
    }

    /// An aggregate whose state is always rebuilt from its events, and the command routes
    /// that serve it: `routes` receives the aggregate's [`CommandHandler`].
    #[must_use]
    pub fn aggregate<A: Aggregate>(
        mut self,
        routes: impl Fn(CommandHandler<A>) -> OpenApiRouter + Send + Sync + 'static,
    ) -> Self {
        self.aggregates.push(AggregateEntry {
            stream_type: A::STREAM_TYPE,
            routes: Arc::new(move |context: &CommandContext| {
                routes(CommandHandler::new(Arc::clone(&context.store)))
            }),
        });
        self
    }

    /// An aggregate whose state the command service snapshots (when it is told to), and the
    /// command routes that serve it. `format` names the shape of the serialised state: bump
    /// it when the state type changes, and older snapshots are ignored.
    #[must_use]
    pub fn snapshotted_aggregate<A>(
        mut self,
        format: u32,
        routes: impl Fn(CommandHandler<A>) -> OpenApiRouter + Send + Sync + 'static,
    ) -> Self
    where
        A: Aggregate + Serialize + DeserializeOwned,
    {
        self.aggregates.push(AggregateEntry {
            stream_type: A::STREAM_TYPE,
            routes: Arc::new(move |context: &CommandContext| {
                let mut handler = CommandHandler::<A>::new(Arc::clone(&context.store));
                if let Some((snapshots, every)) = &context.snapshots {
                    handler = handler.with_snapshots(Arc::clone(snapshots), *every, format);
                }
                routes(handler)
            }),
        });
        self
    }

    /// Query routes over the read-model database.
    #[must_use]
    pub fn queries(
        mut self,
        routes: impl Fn(ReadModelDb) -> OpenApiRouter + Send + Sync + 'static,
    ) -> Self {
        self.queries.push(Arc::new(routes));
        self
    }

    /// A projection this domain's read models come from.
    #[must_use]
    pub fn projection(mut self, projection: impl Projection + 'static) -> Self {
        self.projections.push(Arc::new(projection));
        self
    }

    /// A process manager, built from the event store it sends its commands to.
    #[must_use]
    pub fn process_manager<P: ProcessManager + 'static>(
        mut self,
        build: impl Fn(Arc<dyn EventStore>) -> P + Send + Sync + 'static,
    ) -> Self {
        self.process_managers
            .push(Arc::new(move |store| Arc::new(build(store))));
        self
    }

    /// The domain's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The one-line description given to [`Domain::describe`] (empty when none was).
    pub fn description(&self) -> &'static str {
        self.description
    }

    /// The stream types of the domain's aggregates, in the order they were added.
    pub fn stream_types(&self) -> Vec<&'static str> {
        self.aggregates.iter().map(|a| a.stream_type).collect()
    }

    /// The domain's command routes, each aggregate's handler over `context`.
    pub fn command_routes(&self, context: &CommandContext) -> OpenApiRouter {
        self.aggregates
            .iter()
            .fold(OpenApiRouter::new(), |router, aggregate| {
                router.merge((aggregate.routes)(context))
            })
    }

    /// The domain's query routes over `db`.
    pub fn query_routes(&self, db: &ReadModelDb) -> OpenApiRouter {
        self.queries
            .iter()
            .fold(OpenApiRouter::new(), |router, routes| {
                router.merge(routes(db.clone()))
            })
    }

    /// The domain's projections.
    pub fn projections(&self) -> &[Arc<dyn Projection>] {
        &self.projections
    }

    /// The domain's process managers, sending their commands to `store`.
    pub fn process_managers(&self, store: &Arc<dyn EventStore>) -> Vec<Arc<dyn ProcessManager>> {
        self.process_managers
            .iter()
            .map(|build| build(Arc::clone(store)))
            .collect()
    }
}
