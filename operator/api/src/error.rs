//! Why a report could not be published.

/// Why a process could not publish its report into a Projection's status.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A replay process reported for a request the Projection no longer runs.
    #[error("Projection {namespace}/{name} runs another replay than {request_id}: stop reporting")]
    ReplaySuperseded {
        /// Projection namespace.
        namespace: String,
        /// Projection name.
        name: String,
        /// The request the process replays.
        request_id: String,
    },
    /// The operator has not recorded the replay's request in the status yet: the next report
    /// tries again.
    #[error(
        "Projection {namespace}/{name} does not record replay {request_id} in its status yet: report again later"
    )]
    ReplayNotRecordedYet {
        /// Projection namespace.
        namespace: String,
        /// Projection name.
        name: String,
        /// The request the process replays.
        request_id: String,
    },
    /// A Kubernetes API call failed.
    #[error("{action} Projection {namespace}/{name}: {source}")]
    Kube {
        /// What was being done (`patch status of`, `get status of`).
        action: &'static str,
        /// Projection namespace.
        namespace: String,
        /// Projection name.
        name: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
}

impl ReportError {
    /// A constructor for `map_err`: the API call `action` on the Projection failed.
    pub(crate) fn kube(
        action: &'static str,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> impl FnOnce(kube::Error) -> Self {
        let (namespace, name) = (namespace.into(), name.into());
        move |source| Self::Kube {
            action,
            namespace,
            name,
            source: Box::new(source),
        }
    }
}
