//! Database URLs: chosen by scheme, never logged with their credentials.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use eventline_core::EventStore;
use eventline_readmodel::ReadModelDb;
use eventline_store_mongo::MongoEventStore;
use eventline_store_postgres::PostgresEventStore;
use eventline_store_sqlite::SqliteEventStore;

/// A database URL that may carry a password. `Debug` and `Display` show it with the
/// user-info part replaced by `***`, so it can be logged and printed in errors.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL itself, for the driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn scheme(&self) -> &str {
        self.0.split(':').next().unwrap_or_default()
    }

    /// The path of a `sqlite://PATH` or `sqlite:PATH` URL.
    fn sqlite_path(&self) -> Option<&str> {
        let rest = self.0.strip_prefix("sqlite:")?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        Some(rest.split('?').next().unwrap_or(rest))
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((scheme, _)) if !scheme.is_empty() => Ok(DatabaseUrl(s.to_owned())),
            _ => Err("expected a URL such as sqlite://./eventline-data/events.sqlite".to_owned()),
        }
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.split_once("://") {
            Some((scheme, rest)) => match rest.split_once('@') {
                Some((_, host)) => write!(f, "{scheme}://***@{host}"),
                None => write!(f, "{}", self.0),
            },
            None => write!(f, "{}", self.0),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// Why a store or read model could not be opened from its URL.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{flag}: unsupported scheme {scheme:?} (supported: {supported})")]
    UnsupportedScheme {
        flag: &'static str,
        scheme: String,
        supported: &'static str,
    },
    #[error("{flag}: {url}: {source}")]
    Store {
        flag: &'static str,
        url: DatabaseUrl,
        #[source]
        source: eventline_core::StoreError,
    },
    #[error("{flag}: {url}: {source}")]
    ReadModel {
        flag: &'static str,
        url: DatabaseUrl,
        #[source]
        source: eventline_readmodel::ReadModelError,
    },
}

/// The most appends written in one commit by default (`--append-batch`).
pub const DEFAULT_APPEND_BATCH: usize = 64;

/// Opens the event store a URL names (the scheme picks the adapter); `flag` is the option
/// the URL came from, for errors. Up to `append_batch` concurrent appends are written in one
/// commit (group commit, PostgreSQL and SQLite; 1 turns it off).
pub async fn open_store(
    flag: &'static str,
    url: &DatabaseUrl,
    pool_size: u32,
    append_batch: usize,
) -> Result<Arc<dyn EventStore>, OpenError> {
    fn shared(store: impl EventStore + 'static) -> Arc<dyn EventStore> {
        Arc::new(store)
    }
    let opened = match url.scheme() {
        "sqlite" => {
            let path = url.sqlite_path().unwrap_or_default();
            SqliteEventStore::open(path)
                .await
                .map(|store| shared(sqlite_batches(store, append_batch)))
        }
        "postgres" | "postgresql" => PostgresEventStore::connect(url.expose(), pool_size)
            .await
            .map(|store| shared(postgres_batches(store, pool_size, append_batch))),
        "mongodb" | "mongodb+srv" => MongoEventStore::connect(url.expose(), pool_size)
            .await
            .map(shared),
        other => {
            return Err(OpenError::UnsupportedScheme {
                flag,
                scheme: other.to_owned(),
                supported: "sqlite, postgres, mongodb",
            });
        }
    };
    opened.map_err(|source| OpenError::Store {
        flag,
        url: url.clone(),
        source,
    })
}

/// An event store and, where the store keeps them, its snapshots.
#[derive(Debug, Clone)]
pub struct OpenedStore {
    pub events: Arc<dyn EventStore>,
    /// `None` where the store keeps no snapshots.
    pub snapshots: Option<Arc<dyn eventline_core::SnapshotStore>>,
}

fn sqlite_batches(store: SqliteEventStore, append_batch: usize) -> SqliteEventStore {
    store.with_group_commit(
        eventline_store_sqlite::GroupCommitSettings::SINGLE_WRITER.with_max_appends(append_batch),
    )
}

fn postgres_batches(
    store: PostgresEventStore,
    pool_size: u32,
    append_batch: usize,
) -> PostgresEventStore {
    store.with_group_commit(
        eventline_store_postgres::GroupCommitSettings::for_pool(pool_size)
            .with_max_appends(append_batch),
    )
}

/// [`open_store`], keeping hold of the store's snapshot side too.
pub async fn open_store_with_snapshots(
    flag: &'static str,
    url: &DatabaseUrl,
    pool_size: u32,
    append_batch: usize,
) -> Result<OpenedStore, OpenError> {
    let error = |source| OpenError::Store {
        flag,
        url: url.clone(),
        source,
    };
    match url.scheme() {
        "sqlite" => {
            let path = url.sqlite_path().unwrap_or_default();
            let store = Arc::new(sqlite_batches(
                SqliteEventStore::open(path).await.map_err(error)?,
                append_batch,
            ));
            Ok(OpenedStore {
                events: store.clone(),
                snapshots: Some(store),
            })
        }
        "postgres" | "postgresql" => {
            let store = Arc::new(postgres_batches(
                PostgresEventStore::connect(url.expose(), pool_size)
                    .await
                    .map_err(error)?,
                pool_size,
                append_batch,
            ));
            Ok(OpenedStore {
                events: store.clone(),
                snapshots: Some(store),
            })
        }
        "mongodb" | "mongodb+srv" => {
            let store = Arc::new(
                MongoEventStore::connect(url.expose(), pool_size)
                    .await
                    .map_err(error)?,
            );
            Ok(OpenedStore {
                events: store.clone(),
                snapshots: Some(store),
            })
        }
        _ => Ok(OpenedStore {
            events: open_store(flag, url, pool_size, append_batch).await?,
            snapshots: None,
        }),
    }
}

/// Opens the read-model database a URL names.
pub async fn open_read_model(
    flag: &'static str,
    url: &DatabaseUrl,
    pool_size: u32,
) -> Result<ReadModelDb, OpenError> {
    match url.sqlite_path() {
        Some(path) => ReadModelDb::open_sqlite(path).await,
        None => ReadModelDb::connect_with_pool_size(url.expose(), pool_size).await,
    }
    .map_err(|source| match source {
        eventline_readmodel::ReadModelError::UnsupportedUrl { scheme } => {
            OpenError::UnsupportedScheme {
                flag,
                scheme,
                supported: "sqlite, postgres, mysql",
            }
        }
        source => OpenError::ReadModel {
            flag,
            url: url.clone(),
            source,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show() {
        let url: DatabaseUrl = "postgres://eventline:s3cret@db:5432/events"
            .parse()
            .expect("url");
        assert_eq!(url.to_string(), "postgres://***@db:5432/events");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(url.expose(), "postgres://eventline:s3cret@db:5432/events");
    }

    #[test]
    fn sqlite_paths() {
        let url: DatabaseUrl = "sqlite://./data/events.sqlite".parse().expect("url");
        assert_eq!(url.sqlite_path(), Some("./data/events.sqlite"));
        let url: DatabaseUrl = "sqlite:/tmp/e.sqlite?mode=rwc".parse().expect("url");
        assert_eq!(url.sqlite_path(), Some("/tmp/e.sqlite"));
        assert!("no-scheme".parse::<DatabaseUrl>().is_err());
    }
}
