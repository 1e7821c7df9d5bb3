//! Bad input gets the right status and a message naming what is wrong, and writes nothing.

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::{Answer, TestApp};

#[track_caller]
fn assert_problem(answer: &Answer, status: StatusCode, field: Option<&str>, detail_has: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(
        answer.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(answer.body["status"], status.as_u16());
    let detail = answer.body["detail"].as_str().expect("detail");
    assert!(
        detail.contains(detail_has),
        "detail {detail:?} lacks {detail_has:?}"
    );
    if let Some(field) = field {
        assert_eq!(answer.body["errors"][0]["field"], field, "{}", answer.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_commands_are_refused_and_change_nothing() {
    let app = TestApp::start().await;
    let client = &app.client;
    let id = client.open_account("Careful", 100).await;
    let store = &app.store;
    let streams = store.list_streams(None, 100).await.expect("streams");
    let deposits = format!("/accounts/{id}/deposits");
    let withdrawals = format!("/accounts/{id}/withdrawals");

    let malformed = client.post_raw(&deposits, r#"{"amount": 5"#, &[]).await;
    assert_problem(&malformed, StatusCode::BAD_REQUEST, None, "not valid JSON");
    let not_json = client.post_raw(&deposits, "amount=5", &[]).await;
    assert_problem(&not_json, StatusCode::BAD_REQUEST, None, "not valid JSON");
    let trailing = client.post_raw(&deposits, r#"{"amount": 5} x"#, &[]).await;
    assert_problem(&trailing, StatusCode::BAD_REQUEST, None, "not valid JSON");

    let wrong_type = client.post(&deposits, json!({ "amount": "ten" })).await;
    assert_problem(
        &wrong_type,
        StatusCode::BAD_REQUEST,
        Some("amount"),
        "amount",
    );
    let fractional = client.post(&withdrawals, json!({ "amount": 1.5 })).await;
    assert_problem(
        &fractional,
        StatusCode::BAD_REQUEST,
        Some("amount"),
        "amount",
    );
    let missing = client.post(&deposits, json!({})).await;
    assert_problem(
        &missing,
        StatusCode::BAD_REQUEST,
        Some("amount"),
        "missing field",
    );
    let unknown = client
        .post(&deposits, json!({ "amount": 1, "ammount": 1 }))
        .await;
    assert_problem(
        &unknown,
        StatusCode::BAD_REQUEST,
        Some("ammount"),
        "unknown field",
    );
    let no_holder = client
        .post("/accounts", json!({ "opening_balance": 1 }))
        .await;
    assert_problem(
        &no_holder,
        StatusCode::BAD_REQUEST,
        Some("holder"),
        "holder",
    );
    let bad_type = client
        .post(
            "/accounts",
            json!({ "holder": "X", "account_type": "gold" }),
        )
        .await;
    assert_problem(
        &bad_type,
        StatusCode::BAD_REQUEST,
        Some("account_type"),
        "gold",
    );

    let negative = client.post(&deposits, json!({ "amount": -5 })).await;
    assert_problem(
        &negative,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("amount"),
        "greater than 0",
    );
    let zero = client.post(&withdrawals, json!({ "amount": 0 })).await;
    assert_problem(
        &zero,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("amount"),
        "greater than 0",
    );
    let blank = client.post("/accounts", json!({ "holder": "  " })).await;
    assert_problem(
        &blank,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("holder"),
        "empty",
    );
    let negative_opening = client
        .post("/accounts", json!({ "holder": "X", "opening_balance": -1 }))
        .await;
    assert_problem(
        &negative_opening,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("opening_balance"),
        "between",
    );

    let unknown_id = client
        .post(
            "/accounts/0190d6b0-0000-7000-8000-000000000000/deposits",
            json!({ "amount": 5 }),
        )
        .await;
    assert_problem(&unknown_id, StatusCode::NOT_FOUND, None, "does not exist");
    let not_an_id = client
        .post("/accounts/not-an-id/deposits", json!({ "amount": 5 }))
        .await;
    assert_problem(&not_an_id, StatusCode::NOT_FOUND, None, "not-an-id");

    let bad_if_match = client
        .post_raw(&deposits, r#"{"amount": 5}"#, &[("if-match", "yesterday")])
        .await;
    assert_problem(
        &bad_if_match,
        StatusCode::BAD_REQUEST,
        Some("If-Match"),
        "If-Match",
    );
    let disagreeing = client
        .post_raw(
            &deposits,
            r#"{"amount": 5, "expected_version": 2}"#,
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_problem(
        &disagreeing,
        StatusCode::BAD_REQUEST,
        Some("expected_version"),
        "If-Match",
    );

    assert_eq!(
        store.list_streams(None, 100).await.expect("streams"),
        streams,
        "nothing was written"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_are_refused() {
    let app = TestApp::start().await;
    let client = &app.client;

    let missing = client
        .get("/accounts/0190d6b0-0000-7000-8000-000000000000")
        .await;
    assert_problem(&missing, StatusCode::NOT_FOUND, None, "no account");
    let history = client.get("/accounts/nope/history").await;
    assert_problem(&history, StatusCode::NOT_FOUND, None, "no account");
    let limit = client.get("/accounts?limit=0").await;
    assert_problem(
        &limit,
        StatusCode::BAD_REQUEST,
        Some("limit"),
        "between 1 and 500",
    );
    let not_a_number = client.get("/accounts?limit=lots").await;
    assert_problem(
        &not_a_number,
        StatusCode::BAD_REQUEST,
        Some("limit"),
        "limit",
    );
    let status = client.get("/accounts?status=frozen").await;
    assert_problem(&status, StatusCode::BAD_REQUEST, Some("status"), "frozen");
    let cursor = client.get("/accounts?cursor=definitely-not").await;
    assert_problem(&cursor, StatusCode::BAD_REQUEST, Some("cursor"), "cursor");
    let typo = client.get("/accounts?holdr=x").await;
    assert_problem(
        &typo,
        StatusCode::BAD_REQUEST,
        Some("holdr"),
        "unknown field",
    );

    let nowhere = client.get("/nowhere").await;
    assert_problem(&nowhere, StatusCode::NOT_FOUND, None, "no such route");
    // A command sent as a GET (curl without -d) says which method the path takes.
    let id = client.open_account("Ada", 0).await;
    let wrong_method = client
        .get_command(&format!("/accounts/{id}/deposits"))
        .await;
    assert_problem(
        &wrong_method,
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "commands are POST",
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_a_413_problem_naming_the_limit() {
    let app = TestApp::start().await;
    let client = &app.client;
    let message = "x".repeat(2 * 1024 * 1024);
    let body = json!({ "author": "ada", "message": message }).to_string();

    let too_large = client.post_raw("/posts", &body, &[]).await;
    assert_problem(
        &too_large,
        StatusCode::PAYLOAD_TOO_LARGE,
        None,
        "larger than the limit of 1048576 bytes",
    );
    assert_eq!(too_large.body["type"], "urn:eventline:payload_too_large");
    assert_eq!(too_large.body["title"], "Payload Too Large");
    app.stop().await;
}

/// The statuses `/openapi.json` of the service at `base` documents for each operation, and
/// the media types of its error answers.
async fn documented(base: &str) -> Vec<(String, Vec<String>, Vec<String>)> {
    let document: serde_json::Value = reqwest::get(format!("{base}/openapi.json"))
        .await
        .expect("GET /openapi.json")
        .json()
        .await
        .expect("an OpenAPI document");
    let paths = document["paths"].as_object().expect("paths");
    let mut operations = Vec::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            let responses = operation["responses"].as_object().expect("responses");
            let statuses = responses.keys().cloned().collect();
            let error_types = responses
                .iter()
                .filter(|(status, _)| !status.starts_with('2'))
                .flat_map(|(_, r)| r["content"].as_object().expect("content").keys().cloned())
                .collect();
            operations.push((format!("{method} {path}"), statuses, error_types));
        }
    }
    assert!(!operations.is_empty(), "{base} documents no operation");
    operations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_authentication_on_every_operation_documents_401_403_and_problem_answers() {
    let app = TestApp::start_with_auth(
        support::Database::Sqlite,
        support::Database::Sqlite,
        support::dev_auth(),
    )
    .await;
    for base in [&app.client.command, &app.client.query] {
        for (operation, statuses, error_types) in documented(base).await {
            for status in ["401", "403", "500"] {
                assert!(
                    statuses.iter().any(|s| s == status),
                    "{operation} does not document {status}: {statuses:?}"
                );
            }
            assert!(
                error_types.iter().all(|t| t == "application/problem+json"),
                "{operation} documents error answers as {error_types:?}"
            );
        }
    }
    app.stop().await;
}
