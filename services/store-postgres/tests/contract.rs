//! The shared `EventStore` contract, run against the PostgreSQL adapter on a real server.

use std::sync::Arc;

use eventline_core::EventStore;
use eventline_store_postgres::PostgresEventStore;
use eventline_test_support::TestDatabase;

/// A fresh store in a database of its own, dropped when the test ends.
async fn fresh_store(_test: &str) -> Option<(Arc<dyn EventStore>, TestDatabase)> {
    let database = TestDatabase::postgres().await;
    let store = PostgresEventStore::connect(&database.url, 16)
        .await
        .expect("connect the store");
    Some((Arc::new(store), database))
}

eventline_store_contract::store_contract_tests!(fresh_store);
