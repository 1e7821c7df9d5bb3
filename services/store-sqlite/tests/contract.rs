//! The shared `EventStore` contract, run against the SQLite adapter.

use std::sync::Arc;

use eventline_core::EventStore;
use eventline_store_sqlite::SqliteEventStore;

/// A fresh store in its own temporary directory, removed when the test ends.
async fn fresh_store(_test: &str) -> Option<(Arc<dyn EventStore>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteEventStore::open(dir.path().join("events.sqlite"))
        .await
        .expect("open store");
    Some((Arc::new(store), dir))
}

eventline_store_contract::store_contract_tests!(fresh_store);
