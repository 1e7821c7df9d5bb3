//! Optimistic concurrency over HTTP: racing withdrawals never overdraw and never lose a write.

mod support;

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;
use support::{TestApp, account_at_version};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_withdrawals_with_the_sqlite_store() {
    fifty_concurrent_withdrawals_against_funds_for_ten(TestApp::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_withdrawals_with_the_postgres_store() {
    fifty_concurrent_withdrawals_against_funds_for_ten(TestApp::start_on_postgres().await).await;
}

async fn fifty_concurrent_withdrawals_against_funds_for_ten(app: TestApp) {
    let client = Arc::new(app.client.clone());
    let id = client.open_account("Racer", 100).await;

    let withdrawals: Vec<_> = (0..50)
        .map(|_| {
            let client = Arc::clone(&client);
            let id = id.clone();
            tokio::spawn(async move {
                client
                    .post(
                        &format!("/accounts/{id}/withdrawals"),
                        json!({ "amount": 10 }),
                    )
                    .await
            })
        })
        .collect();
    let mut succeeded = 0;
    for withdrawal in withdrawals {
        let answer = withdrawal.await.expect("task");
        match answer.status {
            StatusCode::OK => succeeded += 1,
            StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY => {}
            other => panic!("unexpected {other}: {}", answer.body),
        }
    }
    assert_eq!(succeeded, 10, "exactly the funds for ten withdrawals");

    let account = account_at_version(&client, &id, 11).await;
    assert_eq!(account["balance"], 0);

    // The stream itself: versions 1..=11, no gaps, no duplicates, balances consistent.
    let events = app.store.read_stream(&id, 0, 1_000).await.expect("read");
    let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
    assert_eq!(versions, (1..=11).collect::<Vec<u64>>());
    let balances: Vec<i64> = events[1..]
        .iter()
        .map(|e| e.payload["balance"].as_i64().expect("balance"))
        .collect();
    assert_eq!(balances, [90, 80, 70, 60, 50, 40, 30, 20, 10, 0]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guarded_commands_have_exactly_one_winner() {
    let app = TestApp::start().await;
    let client = Arc::new(app.client.clone());
    let id = client.open_account("Guarded", 0).await;
    let deposits: Vec<_> = (0..20)
        .map(|i| {
            let client = Arc::clone(&client);
            let id = id.clone();
            tokio::spawn(async move {
                client
                    .post_raw(
                        &format!("/accounts/{id}/deposits"),
                        &json!({ "amount": i + 1 }).to_string(),
                        &[("if-match", "\"1\"")],
                    )
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for deposit in deposits {
        statuses.push(deposit.await.expect("task"));
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1);
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count(),
        19
    );
    app.stop().await;
}
