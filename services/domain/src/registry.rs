//! The domains of one application, checked to fit together.

use std::collections::HashMap;
use std::sync::Arc;

use eventline_core::{EventStore, Projection};
use eventline_processor::ProcessManager;
use eventline_readmodel::ReadModelDb;
use utoipa_axum::router::OpenApiRouter;

use crate::detached::DetachedStore;
use crate::{CommandContext, Domain};

/// Two domains of one application that claim the same name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompositionError {
    #[error("two domains are named {0:?}")]
    DuplicateDomain(&'static str),
    #[error("stream type {stream_type:?} belongs to both domain {first:?} and domain {second:?}")]
    DuplicateStreamType {
        stream_type: &'static str,
        first: &'static str,
        second: &'static str,
    },
    #[error("projection {name:?} is registered by both domain {first:?} and domain {second:?}")]
    DuplicateProjection {
        name: &'static str,
        first: &'static str,
        second: &'static str,
    },
    #[error(
        "process manager {name:?} is registered by both domain {first:?} and domain {second:?}"
    )]
    DuplicateProcessManager {
        name: &'static str,
        first: &'static str,
        second: &'static str,
    },
    #[error("table {table:?} is written by both projection {first:?} and projection {second:?}")]
    DuplicateTable {
        table: &'static str,
        first: &'static str,
        second: &'static str,
    },
}

/// What an image can say about a process manager without an event store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessManagerInfo {
    pub name: &'static str,
    pub domain: &'static str,
    pub stream_types: &'static [&'static str],
}

/// The domains of one application, in the order they were listed; every name (domain,
/// stream type, projection, process manager, table) belongs to one of them only.
#[derive(Debug, Clone, Default)]
pub struct Domains {
    domains: Vec<Domain>,
}

impl Domains {
    /// The domains, checked: the same name claimed twice is an error naming both claimants.
    pub fn new(domains: Vec<Domain>) -> Result<Self, CompositionError> {
        let composed = Self { domains };
        composed.check()?;
        Ok(composed)
    }

    fn check(&self) -> Result<(), CompositionError> {
        let mut names = HashMap::new();
        let mut stream_types = HashMap::new();
        let mut projections = HashMap::new();
        let mut tables = HashMap::new();
        for domain in &self.domains {
            if names.insert(domain.name, ()).is_some() {
                return Err(CompositionError::DuplicateDomain(domain.name));
            }
            for stream_type in domain.stream_types() {
                if let Some(first) = stream_types.insert(stream_type, domain.name) {
                    return Err(CompositionError::DuplicateStreamType {
                        stream_type,
                        first,
                        second: domain.name,
                    });
                }
            }
            for projection in &domain.projections {
                let name = projection.name();
                if let Some(first) = projections.insert(name, domain.name) {
                    return Err(CompositionError::DuplicateProjection {
                        name,
                        first,
                        second: domain.name,
                    });
                }
                for table in projection.tables() {
                    if let Some(first) = tables.insert(table.name, name) {
                        return Err(CompositionError::DuplicateTable {
                            table: table.name,
                            first,
                            second: name,
                        });
                    }
                }
            }
        }
        let mut managers = HashMap::new();
        for info in self.process_manager_info() {
            if let Some(first) = managers.insert(info.name, info.domain) {
                return Err(CompositionError::DuplicateProcessManager {
                    name: info.name,
                    first,
                    second: info.domain,
                });
            }
        }
        Ok(())
    }

    /// The domains, in the order they were listed.
    pub fn iter(&self) -> impl Iterator<Item = &Domain> {
        self.domains.iter()
    }

    /// Every domain's command routes over `context`, merged.
    pub fn command_routes(&self, context: &CommandContext) -> OpenApiRouter {
        self.domains
            .iter()
            .fold(OpenApiRouter::new(), |router, domain| {
                router.merge(domain.command_routes(context))
            })
    }

    /// Every domain's query routes over `db`, merged.
    pub fn query_routes(&self, db: &ReadModelDb) -> OpenApiRouter {
        self.domains
            .iter()
            .fold(OpenApiRouter::new(), |router, domain| {
                router.merge(domain.query_routes(db))
            })
    }

    /// Every projection of every domain, with the domain it belongs to.
    pub fn projections_by_domain(&self) -> Vec<(&'static str, Arc<dyn Projection>)> {
        self.domains
            .iter()
            .flat_map(|d| d.projections.iter().map(|p| (d.name, Arc::clone(p))))
            .collect()
    }

    /// Every projection of every domain.
    pub fn projections(&self) -> Vec<Arc<dyn Projection>> {
        self.domains
            .iter()
            .flat_map(|d| d.projections.iter().cloned())
            .collect()
    }

    /// Every process manager of every domain, sending its commands to `store`.
    pub fn process_managers(&self, store: &Arc<dyn EventStore>) -> Vec<Arc<dyn ProcessManager>> {
        self.domains
            .iter()
            .flat_map(|d| d.process_managers(store))
            .collect()
    }

    /// The name and stream types of every process manager, without an event store (each is
    /// built over a store that refuses every call, and only asked its name).
    pub fn process_manager_info(&self) -> Vec<ProcessManagerInfo> {
        let detached: Arc<dyn EventStore> = Arc::new(DetachedStore);
        self.domains
            .iter()
            .flat_map(|domain| {
                domain
                    .process_managers(&detached)
                    .into_iter()
                    .map(|manager| ProcessManagerInfo {
                        name: manager.name(),
                        domain: domain.name,
                        stream_types: manager.stream_types(),
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use eventline_core::{Envelope, ProjectionError, RowOp, Table};
    use eventline_processor::ReactionError;

    use super::*;

    #[derive(Debug)]
    struct Named(&'static str, &'static str);

    impl Projection for Named {
        fn name(&self) -> &'static str {
            self.0
        }
        fn tables(&self) -> Vec<Table> {
            vec![Table {
                name: self.1,
                columns: vec![],
                primary_key: &[],
                indexes: vec![],
            }]
        }
        fn stream_types(&self) -> &'static [&'static str] {
            &["test.thing"]
        }
        fn apply(&self, _: &Envelope) -> Result<Vec<RowOp>, ProjectionError> {
            Ok(vec![])
        }
    }

    #[derive(Debug)]
    struct Reacting;

    #[async_trait]
    impl ProcessManager for Reacting {
        fn name(&self) -> &'static str {
            "reactor"
        }
        fn stream_types(&self) -> &'static [&'static str] {
            &["test.thing"]
        }
        async fn react(&self, _: &Envelope) -> Result<(), ReactionError> {
            Ok(())
        }
    }

    #[test]
    fn domains_that_fit_together_list_their_parts_in_order() {
        let domains = Domains::new(vec![
            Domain::new("one").projection(Named("first", "a")),
            Domain::new("two")
                .projection(Named("second", "b"))
                .process_manager(|_| Reacting),
        ])
        .expect("no conflict");
        let names: Vec<_> = domains.projections().iter().map(|p| p.name()).collect();
        assert_eq!(names, ["first", "second"]);
        assert_eq!(
            domains.process_manager_info(),
            [ProcessManagerInfo {
                name: "reactor",
                domain: "two",
                stream_types: &["test.thing"],
            }]
        );
    }

    #[test]
    fn a_projection_claimed_twice_names_both_domains() {
        let conflict = Domains::new(vec![
            Domain::new("one").projection(Named("same", "a")),
            Domain::new("two").projection(Named("same", "b")),
        ])
        .expect_err("conflict");
        assert_eq!(
            conflict,
            CompositionError::DuplicateProjection {
                name: "same",
                first: "one",
                second: "two"
            }
        );
    }

    #[test]
    fn a_table_written_by_two_projections_is_refused() {
        let conflict = Domains::new(vec![
            Domain::new("one").projection(Named("first", "rows")),
            Domain::new("two").projection(Named("second", "rows")),
        ])
        .expect_err("conflict");
        assert_eq!(
            conflict.to_string(),
            "table \"rows\" is written by both projection \"first\" and projection \"second\""
        );
    }

    #[test]
    fn domain_and_process_manager_names_are_unique() {
        let twice = || Domain::new("same");
        assert_eq!(
            Domains::new(vec![twice(), twice()]).expect_err("conflict"),
            CompositionError::DuplicateDomain("same")
        );
        let conflict = Domains::new(vec![
            Domain::new("one").process_manager(|_| Reacting),
            Domain::new("two").process_manager(|_| Reacting),
        ])
        .expect_err("conflict");
        assert!(
            matches!(
                conflict,
                CompositionError::DuplicateProcessManager {
                    name: "reactor",
                    ..
                }
            ),
            "{conflict}"
        );
    }
}
