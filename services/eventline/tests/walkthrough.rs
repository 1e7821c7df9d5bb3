//! The README's curl walkthrough, as a test over real HTTP against embedded mode.

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::{Database, TestApp, account_at_version};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walkthrough_with_the_sqlite_store() {
    open_deposit_withdraw_conflict_query_close(TestApp::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walkthrough_with_the_postgres_store() {
    open_deposit_withdraw_conflict_query_close(TestApp::start_on_postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walkthrough_with_postgres_store_and_postgres_read_model() {
    let app = TestApp::start_with(Database::Postgres, Database::Postgres).await;
    open_deposit_withdraw_conflict_query_close(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walkthrough_with_postgres_store_and_mariadb_read_model() {
    let app = TestApp::start_with(Database::Postgres, Database::MariaDb).await;
    open_deposit_withdraw_conflict_query_close(app).await;
}

async fn open_deposit_withdraw_conflict_query_close(app: TestApp) {
    let client = &app.client;

    // Open.
    let opened = client
        .post(
            "/accounts",
            json!({ "holder": "Ada Lovelace", "opening_balance": 1000 }),
        )
        .await;
    assert_eq!(opened.status, StatusCode::CREATED);
    let id = opened.body["id"].as_str().expect("id").to_owned();
    assert_eq!(opened.body["version"], 1);
    assert_eq!(opened.header("etag"), Some("\"1\""));
    assert_eq!(
        opened.header("location"),
        Some(format!("/accounts/{id}").as_str())
    );
    assert!(opened.header("x-request-id").is_some());

    // Deposit and withdraw, the withdrawal guarded by If-Match.
    let deposited = client
        .post(
            &format!("/accounts/{id}/deposits"),
            json!({ "amount": 250 }),
        )
        .await;
    assert_eq!(deposited.status, StatusCode::OK);
    assert_eq!(deposited.body["version"], 2);
    let withdrawn = client
        .post_raw(
            &format!("/accounts/{id}/withdrawals"),
            r#"{"amount": 100}"#,
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(withdrawn.status, StatusCode::OK, "{:?}", withdrawn.body);
    assert_eq!(withdrawn.body["version"], 3);

    // A stale version is a conflict that says the current version, and writes nothing.
    let stale = client
        .post_raw(
            &format!("/accounts/{id}/withdrawals"),
            r#"{"amount": 100}"#,
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(
        stale.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(stale.body["type"], "urn:eventline:version_conflict");
    assert_eq!(stale.body["current_version"], 3);
    let stale_in_body = client
        .post(
            &format!("/accounts/{id}/deposits"),
            json!({ "amount": 1, "expected_version": 1 }),
        )
        .await;
    assert_eq!(stale_in_body.status, StatusCode::CONFLICT);

    // A broken business rule is a 422 naming the rule.
    let overdrawn = client
        .post(
            &format!("/accounts/{id}/withdrawals"),
            json!({ "amount": 5000 }),
        )
        .await;
    assert_eq!(overdrawn.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(overdrawn.body["type"], "urn:eventline:insufficient_funds");
    assert!(
        overdrawn.body["detail"]
            .as_str()
            .expect("detail")
            .contains("1150"),
        "{}",
        overdrawn.body
    );

    // Queries: the account, its history, the list.
    let account = account_at_version(client, &id, 3).await;
    assert_eq!(account["balance"], 1150);
    assert_eq!(account["holder"], "Ada Lovelace");
    assert_eq!(account["account_type"], "checking");
    assert_eq!(account["status"], "open");
    let fetched = client.get(&format!("/accounts/{id}")).await;
    assert_eq!(fetched.header("etag"), Some("\"3\""));
    let history = client.get(&format!("/accounts/{id}/history")).await;
    assert_eq!(history.status, StatusCode::OK);
    let kinds: Vec<&str> = history.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["event_type"].as_str().expect("type"))
        .collect();
    assert_eq!(kinds, ["AccountOpened", "FundsDeposited", "FundsWithdrawn"]);
    assert_eq!(history.body["items"][2]["balance"], 1150);
    assert_eq!(history.body["items"][2]["amount"], 100);

    // Closing needs a zero balance.
    let refused = client
        .post(&format!("/accounts/{id}/close"), json!({}))
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.body["type"], "urn:eventline:balance_not_zero");
    client
        .post(
            &format!("/accounts/{id}/withdrawals"),
            json!({ "amount": 1150 }),
        )
        .await;
    let closed = client
        .post_raw(&format!("/accounts/{id}/close"), "", &[])
        .await;
    assert_eq!(closed.status, StatusCode::OK, "{:?}", closed.body);
    assert_eq!(closed.body["version"], 5);
    let account = account_at_version(client, &id, 5).await;
    assert_eq!(account["status"], "closed");
    assert_eq!(account["balance"], 0);
    let after_close = client
        .post(&format!("/accounts/{id}/deposits"), json!({ "amount": 1 }))
        .await;
    assert_eq!(after_close.body["type"], "urn:eventline:account_closed");

    // The operator's view of the store: the stream and its events as stored.
    let streams = client.get_command("/streams").await;
    assert_eq!(streams.status, StatusCode::OK);
    assert_eq!(streams.body["items"][0]["stream_id"], id.as_str());
    assert_eq!(streams.body["items"][0]["stream_type"], "bank.account");
    assert_eq!(streams.body["items"][0]["version"], 5);
    let page = client
        .get_command(&format!("/streams/{id}/events?limit=2"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let versions: Vec<u64> = page.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["version"].as_u64().expect("version"))
        .collect();
    assert_eq!(versions, [1, 2]);
    assert_eq!(
        page.body["items"][1]["payload"],
        json!({"amount": 250, "balance": 1250})
    );
    let next = page.body["next"].as_str().expect("next page");
    let rest = client
        .get_command(&format!("/streams/{id}/events?limit=10&cursor={next}"))
        .await;
    assert_eq!(rest.body["items"].as_array().expect("items").len(), 3);
    assert!(rest.body["next"].is_null());
    let missing = client.get_command("/streams/nobody/events").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_filter_and_page_with_a_cursor() {
    let app = TestApp::start().await;
    let client = &app.client;
    let mut ids = Vec::new();
    for holder in ["Grace", "Alan", "Grace", "Grace"] {
        ids.push(client.open_account(holder, 0).await);
    }
    client
        .post(&format!("/accounts/{}/close", ids[3]), json!({}))
        .await;
    account_at_version(client, &ids[3], 2).await;
    for id in &ids[..3] {
        account_at_version(client, id, 1).await;
    }

    let all = client.get("/accounts").await;
    assert_eq!(all.body["items"].as_array().expect("items").len(), 4);
    assert!(all.body["next"].is_null());

    // Graces, one per page, in creation order (ids are time-ordered UUIDv7).
    let mut seen = Vec::new();
    let mut path = "/accounts?holder=Grace&limit=1".to_owned();
    loop {
        let page = client.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        for item in page.body["items"].as_array().expect("items") {
            seen.push(item["id"].as_str().expect("id").to_owned());
        }
        match page.body["next"].as_str() {
            Some(next) => path = format!("/accounts?holder=Grace&limit=1&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen, [ids[0].clone(), ids[2].clone(), ids[3].clone()]);

    let open_graces = client.get("/accounts?holder=Grace&status=open").await;
    assert_eq!(
        open_graces.body["items"].as_array().expect("items").len(),
        2
    );
    let closed = client.get("/accounts?status=closed").await;
    assert_eq!(closed.body["items"][0]["id"], ids[3].as_str());

    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operational_endpoints() {
    let app = TestApp::start().await;
    let client = &app.client;
    client.open_account("Ops", 1).await;

    for answer in [
        client.get_command("/healthz").await,
        client.get("/healthz").await,
    ] {
        assert_eq!(answer.status, StatusCode::OK);
    }
    let ready = client.get_command("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["checks"]["event_store"], "ok");
    let ready = client.get("/readyz").await;
    assert_eq!(ready.body["checks"]["read_model"], "ok");

    let metrics = client
        .http
        .get(format!("{}/metrics", client.command))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(r#"eventline_commands_total{command="open_account",outcome="accepted"}"#),
        "{metrics}"
    );
    assert!(metrics.contains("eventline_http_request_duration_seconds_bucket"));

    let openapi = client.get_command("/openapi.json").await;
    for path in [
        "/accounts",
        "/accounts/{id}/deposits",
        "/accounts/{id}/withdrawals",
        "/accounts/{id}/close",
    ] {
        assert!(
            openapi.body["paths"][path]["post"].is_object(),
            "command OpenAPI lacks {path}"
        );
    }
    assert!(openapi.body["components"]["schemas"]["Problem"].is_object());
    let openapi = client.get("/openapi.json").await;
    for path in ["/accounts", "/accounts/{id}", "/accounts/{id}/history"] {
        assert!(
            openapi.body["paths"][path]["get"].is_object(),
            "query OpenAPI lacks {path}"
        );
    }

    app.stop().await;
}
