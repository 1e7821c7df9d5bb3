//! The shared `EventStore` contract, run against the MongoDB adapter when a server is given
//! (`EVENTLINE_TEST_MONGODB_URI`); otherwise each test prints why it is skipped.

use std::sync::Arc;

use eventline_core::EventStore;
use eventline_store_mongo::MongoEventStore;

/// Drops the test's database when the test ends.
struct DropDatabase {
    uri: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let uri = self.uri.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(client) = mongodb::Client::with_uri_str(&uri).await
                    && let Some(database) = client.default_database()
                {
                    let _ = database.drop().await;
                }
            });
        })
        .join();
    }
}

/// The URI with its database replaced by a fresh one for this test.
fn test_uri(server: &str) -> String {
    let name = format!("eventline_test_{}", uuid::Uuid::new_v4().simple());
    let (base, query) = server
        .split_once('?')
        .map_or((server, None), |(b, q)| (b, Some(q)));
    let rest = base.strip_prefix("mongodb://").unwrap_or(base);
    let hosts = rest.split('/').next().unwrap_or(rest);
    match query {
        Some(query) => format!("mongodb://{hosts}/{name}?{query}"),
        None => format!("mongodb://{hosts}/{name}"),
    }
}

async fn fresh_store(test: &str) -> Option<(Arc<dyn EventStore>, DropDatabase)> {
    let server = eventline_test_support::mongodb_uri(&format!("mongodb contract test {test}"))?;
    let uri = test_uri(&server);
    let store = MongoEventStore::connect(&uri, 16)
        .await
        .expect("connect to MongoDB");
    Some((Arc::new(store), DropDatabase { uri }))
}

eventline_store_contract::store_contract_tests!(fresh_store);
