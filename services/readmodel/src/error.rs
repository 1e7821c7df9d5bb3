/// Errors of a read-model database, each naming the database and what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum ReadModelError {
    /// The URL's scheme names no supported database. Only the scheme is shown: URLs carry
    /// credentials.
    #[error("unsupported read-model URL scheme {scheme:?}: expected sqlite://PATH")]
    UnsupportedUrl { scheme: String },
    #[error("{database} read model failed while {action}: {source}")]
    Database {
        database: &'static str,
        action: String,
        #[source]
        source: sqlx::Error,
    },
    /// An `Update` found no row: the read model and the events disagree.
    #[error("table {table} has no row with key {key}")]
    MissingRow { table: String, key: String },
    /// A strict batch (a replay) met an event that cannot be applied; nothing of the batch
    /// was written.
    #[error(
        "event {position} ({event_type} v{version} of stream {stream_id}) cannot be applied: {reason}"
    )]
    EventRejected {
        position: eventline_core::Position,
        stream_id: String,
        version: u64,
        event_type: String,
        reason: String,
    },
    /// Another replay of the projection is building its new version in this database.
    #[error(
        "projection {projection} is being rebuilt in this database by {by}; wait for it to finish (or start that request again to resume it)"
    )]
    Occupied { projection: String, by: String },
    /// A replay is swapping the projection's tables; the batch is retried once it is done.
    #[error("projection {projection} is being cut over to the tables of replay {request_id}")]
    CuttingOver {
        projection: String,
        request_id: String,
    },
    /// The database cannot do this.
    #[error("{database}: {what} is not supported")]
    Unsupported {
        database: &'static str,
        what: &'static str,
    },
    /// A projection referred to a table or column it did not declare.
    #[error("table {table}: {reason}")]
    Schema { table: String, reason: String },
}

impl ReadModelError {
    /// Whether the error is about the data of one event (so that event can be dead-lettered)
    /// rather than about the database being unreachable (so the batch must be retried).
    pub fn is_data_error(&self) -> bool {
        match self {
            ReadModelError::MissingRow { .. } | ReadModelError::Schema { .. } => true,
            ReadModelError::Database { source, .. } => matches!(source, sqlx::Error::Database(_)),
            ReadModelError::UnsupportedUrl { .. }
            | ReadModelError::EventRejected { .. }
            | ReadModelError::Occupied { .. }
            | ReadModelError::CuttingOver { .. }
            | ReadModelError::Unsupported { .. } => false,
        }
    }
}
