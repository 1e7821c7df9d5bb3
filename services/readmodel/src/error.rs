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
            ReadModelError::UnsupportedUrl { .. } => false,
        }
    }
}
