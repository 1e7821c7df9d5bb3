//! The library's one error type. Every variant names the object it was working on.
//! (Reports into a Projection's status fail with `eventline_projection_api::ReportError`.)

/// Errors of the reconciler and the builders.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Projection has no namespace (it is namespaced, so it was not read from the API).
    #[error("Projection {name} has no namespace")]
    MissingNamespace {
        /// Projection name.
        name: String,
    },
    /// The Projection has no uid, so no owner reference can point at it.
    #[error("Projection {namespace}/{name} has no uid (not read from the API server)")]
    MissingUid {
        /// Projection namespace.
        namespace: String,
        /// Projection name.
        name: String,
    },
    /// A Kubernetes API call failed.
    #[error("{action} {kind} {namespace}/{name}: {source}")]
    Kube {
        /// What was being done (`apply`, `get`, `create`, `patch status of`, ...).
        action: &'static str,
        /// Kind of the object.
        kind: &'static str,
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The replay Job's name is taken by a Job of another request (a hash collision of two
    /// request ids, or a Job the operator did not create): choose another request id.
    #[error(
        "Job {namespace}/{job} belongs to replay request {:?}, not {request_id:?}: use another requestId",
        found.as_deref().unwrap_or("<none>")
    )]
    ReplayJobTaken {
        /// Namespace.
        namespace: String,
        /// Job name.
        job: String,
        /// The requested id.
        request_id: String,
        /// The id in the Job's annotation.
        found: Option<String>,
    },
    /// Leader election on the operator's Lease failed.
    #[error("leader election on Lease {namespace}/{name}: {source}")]
    Lease {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// The lease manager's error.
        #[source]
        source: Box<kube_lease_manager::LeaseManagerError>,
    },
    /// Publishing a Kubernetes Event about a Projection failed.
    #[error("publishing event {reason} for Projection {namespace}/{name}: {source}")]
    Event {
        /// Event reason.
        reason: String,
        /// Projection namespace.
        namespace: String,
        /// Projection name.
        name: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
}

impl Error {
    /// Maps a failed API call on `kind` `namespace/name` while doing `action` to
    /// [`Error::Kube`].
    pub fn kube(
        action: &'static str,
        kind: &'static str,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> impl FnOnce(kube::Error) -> Self {
        let (namespace, name) = (namespace.into(), name.into());
        move |source| Self::Kube {
            action,
            kind,
            namespace,
            name,
            source: Box::new(source),
        }
    }

    /// The error for people (a condition's message, an Event's note): like its `Display`, but an
    /// API server's refusal as `code reason: message` instead of the client's debug dump.
    pub fn for_users(&self) -> String {
        match self {
            Self::Kube {
                action,
                kind,
                namespace,
                name,
                source,
            } => match source.as_ref() {
                kube::Error::Api(status) => format!(
                    "{action} {kind} {namespace}/{name}: {} {}: {}",
                    status.code, status.reason, status.message
                ),
                other => format!("{action} {kind} {namespace}/{name}: {other}"),
            },
            other => other.to_string(),
        }
    }

    /// A short, bounded label for metrics (never an object name).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::MissingNamespace { .. } => "missing_namespace",
            Self::MissingUid { .. } => "missing_uid",
            Self::Kube { action, .. } => match *action {
                "apply" => "kube_apply",
                "get" => "kube_get",
                "create" => "kube_create",
                "patch status of" => "kube_patch_status",
                _ => "kube_other",
            },
            Self::ReplayJobTaken { .. } => "replay_job_taken",
            Self::Lease { .. } => "lease",
            Self::Event { .. } => "event",
        }
    }
}

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
