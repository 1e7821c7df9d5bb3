//! Every route of both services is behind the right scope: found from the services' own
//! OpenAPI documents (so a new route cannot slip through), each is asked without a token,
//! with a token that lacks its scope, with a bad token, and with the right one.

mod support;

use reqwest::StatusCode;
use serde_json::Value;
use support::{Client, Database, TestApp, dev_auth};

/// Every (method, path) in an OpenAPI document, path parameters filled with a UUID.
fn operations(openapi: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in openapi["paths"].as_object().expect("paths") {
        let concrete: String = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "0192f0c4-0000-7000-8000-000000000000"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for (method, operation) in item.as_object().expect("path item") {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                out.push((method.clone(), concrete.clone(), operation.clone()));
            }
        }
    }
    out
}

async fn call(client: &Client, base: &str, method: &str, path: &str) -> support::Answer {
    let url = format!("{base}{path}");
    let request = match method {
        "get" => client.http.get(url),
        "post" => client.http.post(url).body("{}"),
        other => panic!("no {other} routes expected"),
    };
    let request = match &client.token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let response = request.send().await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    support::Answer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_needs_a_valid_token_with_its_scope() {
    let app = TestApp::start_with_auth(Database::Sqlite, Database::Sqlite, dev_auth()).await;
    let reader = app
        .client
        .with_token(app.token("reader", &["eventline:read"]));
    let writer = app
        .client
        .with_token(app.token("writer", &["eventline:write"]));
    let anonymous = app.client.clone();
    let forged = {
        let other = tempfile::tempdir().expect("temp dir");
        let secret = other.path().join("guessed-secret");
        std::fs::write(&secret, "not-the-secret-of-this-service-at-all").expect("write");
        let token = eventline_app::auth::mint(&eventline_app::cli::TokenArgs {
            subject: "mallory".into(),
            scopes: vec!["eventline:read".into(), "eventline:write".into()],
            ttl_seconds: 600,
            hs256_secret_file: Some(secret),
            data_dir: other.path().to_path_buf(),
            issuer: eventline_app::auth::DEV_ISSUER.into(),
            audience: eventline_app::auth::DEV_AUDIENCE.into(),
        })
        .expect("mint with another secret");
        app.client.with_token(token)
    };
    let mut checked = 0;
    for (base, service) in [
        (&app.client.command, "command"),
        (&app.client.query, "query"),
    ] {
        // The operational endpoints stay open (probes and scrapers carry no tokens).
        for open in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
            let answer = call(&anonymous, base, "get", open).await;
            assert_eq!(answer.status, StatusCode::OK, "{service} {open}");
        }
        let openapi = call(&anonymous, base, "get", "/openapi.json").await.body;
        assert_eq!(
            openapi["components"]["securitySchemes"]["bearer"]["scheme"], "bearer",
            "{service}: the document names the bearer scheme"
        );
        for (method, path, operation) in operations(&openapi) {
            let scope = if method == "get" {
                "eventline:read"
            } else {
                "eventline:write"
            };
            assert_eq!(
                operation["security"][0]["bearer"][0], scope,
                "{service} {method} {path}: the document names the scope"
            );
            let (lacking, having) = if method == "get" {
                (&writer, &reader)
            } else {
                (&reader, &writer)
            };
            let what = format!("{service} {method} {path}");

            let missing = call(&anonymous, base, &method, &path).await;
            assert_eq!(missing.status, StatusCode::UNAUTHORIZED, "{what}");
            assert_eq!(
                missing.body["type"], "urn:eventline:missing_token",
                "{what}"
            );
            assert!(
                missing.headers.contains_key("www-authenticate"),
                "{what}: a 401 says how to authenticate"
            );

            let bad = call(&forged, base, &method, &path).await;
            assert_eq!(bad.status, StatusCode::UNAUTHORIZED, "{what}");
            assert_eq!(bad.body["type"], "urn:eventline:invalid_token", "{what}");

            let scopeless = call(lacking, base, &method, &path).await;
            assert_eq!(scopeless.status, StatusCode::FORBIDDEN, "{what}");
            assert_eq!(
                scopeless.body["type"], "urn:eventline:insufficient_scope",
                "{what}"
            );
            let challenge = scopeless.header("www-authenticate").unwrap_or_default();
            assert!(challenge.contains(scope), "{what}: {challenge}");

            let allowed = call(having, base, &method, &path).await;
            assert!(
                ![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&allowed.status),
                "{what}: the right scope gets past authentication ({:?})",
                allowed.body
            );
            checked += 1;
        }
    }
    // Bank, posts and orders commands and queries, and the event-store reads.
    assert!(checked >= 20, "only {checked} routes found");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turned_off_explicitly_every_route_answers_without_a_token() {
    let app = TestApp::start().await;
    let id = app.client.open_account("Ada", 0).await;
    support::account_at_version(&app.client, &id, 1).await;
    let posted = app
        .client
        .post(
            "/posts",
            serde_json::json!({"author": "ada", "message": "open"}),
        )
        .await;
    assert_eq!(posted.status, StatusCode::CREATED, "{:?}", posted.body);
    let listed = app.client.get_command("/streams").await;
    assert_eq!(listed.status, StatusCode::OK);
    let openapi = app.client.get_command("/openapi.json").await.body;
    assert_eq!(openapi["components"]["securitySchemes"], Value::Null);
    app.stop().await;
}
