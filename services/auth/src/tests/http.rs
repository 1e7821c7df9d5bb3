//! `protect` over real HTTP: a protected router on an ephemeral port, called with reqwest.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::{get, post};
use eventline_http::Caller;
use serde_json::{Value, json};

use super::*;
use crate::{Access, Authentication, KeySource};

/// The handler answers with the caller it sees (`null` when there is none).
async fn whoami(caller: Option<Caller>) -> axum::Json<Value> {
    axum::Json(match caller {
        Some(Caller { subject, scopes }) => json!({ "subject": subject, "scopes": scopes }),
        None => Value::Null,
    })
}

/// `/things` (write) and `/view` (read) behind `auth`, `/healthz` open; returns the base URL.
async fn serve(auth: &Authentication) -> String {
    let writes = auth.protect(Router::new().route("/things", post(whoami)), Access::Write);
    let reads = auth.protect(Router::new().route("/view", get(whoami)), Access::Read);
    let app = writes
        .merge(reads)
        .route("/healthz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn jwt_auth() -> Authentication {
    Authentication::jwt(config(vec![KeySource::Hs256(secret())]))
        .await
        .expect("a valid config")
}

struct Answer {
    status: StatusCode,
    content_type: String,
    challenge: String,
    body: Value,
}

async fn call(base: &str, method: &str, path: &str, authorization: Option<&str>) -> Answer {
    let client = reqwest::Client::new();
    let url = format!("{base}{path}");
    let mut request = match method {
        "POST" => client.post(url),
        _ => client.get(url),
    };
    if let Some(authorization) = authorization {
        request = request.header(header::AUTHORIZATION, authorization);
    }
    let response = request.send().await.expect("the server answers");
    let text_header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (content_type, challenge) = (
        text_header(header::CONTENT_TYPE),
        text_header(header::WWW_AUTHENTICATE),
    );
    let status = response.status();
    let body = response.bytes().await.expect("a body");
    Answer {
        status,
        content_type,
        challenge,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    }
}

fn bearer(claims: &Map<String, Value>) -> String {
    format!("Bearer {}", hs256(claims, &secret()))
}

#[tokio::test]
async fn without_a_token_the_answer_is_a_401_problem_with_a_challenge() {
    let base = serve(&jwt_auth().await).await;
    let answer = call(&base, "POST", "/things", None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.content_type, "application/problem+json");
    assert_eq!(answer.challenge, r#"Bearer realm="eventline""#);
    assert_eq!(answer.body["type"], "urn:eventline:missing_token");
    assert_eq!(answer.body["status"], 401);
    // Open routes and unknown paths are not affected.
    assert_eq!(
        call(&base, "GET", "/healthz", None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        call(&base, "GET", "/nowhere", None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn refused_tokens_get_a_401_saying_why() {
    let base = serve(&jwt_auth().await).await;
    let other_signature = format!("Bearer {}", hs256(&claims(), &other_secret()));
    let cases = [
        (
            bearer(&with(claims(), "exp", json!(now() - 120))),
            "expired",
        ),
        (bearer(&with(claims(), "aud", json!("billing"))), "audience"),
        (other_signature, "signature"),
        ("Basic YWxpY2U6c2VjcmV0".to_owned(), "not a bearer token"),
        ("Bearer not-a-jwt".to_owned(), "malformed"),
    ];
    for (authorization, reason) in cases {
        let answer = call(&base, "POST", "/things", Some(&authorization)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{reason}");
        assert_eq!(answer.body["type"], "urn:eventline:invalid_token");
        let detail = answer.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(reason), "{detail} should say {reason}");
        assert!(
            answer.challenge.contains(r#"error="invalid_token""#),
            "{}",
            answer.challenge
        );
        let token = authorization.split(' ').nth(1).unwrap_or_default();
        assert!(!detail.contains(token), "the detail echoes the token");
    }
}

#[tokio::test]
async fn a_token_without_the_write_scope_gets_a_403_on_write_routes() {
    let base = serve(&jwt_auth().await).await;
    let read_only = bearer(&with(claims(), "scope", json!(READ)));
    let answer = call(&base, "POST", "/things", Some(&read_only)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.body["type"], "urn:eventline:insufficient_scope");
    assert!(
        answer.challenge.contains(&format!(r#"scope="{WRITE}""#)),
        "{}",
        answer.challenge
    );
    let answer = call(&base, "GET", "/view", Some(&read_only)).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "the read scope opens read routes"
    );
}

#[tokio::test]
async fn an_accepted_token_hands_the_caller_to_the_handler() {
    let base = serve(&jwt_auth().await).await;
    let token = bearer(&with(claims(), "scope", json!(format!("{WRITE} audit"))));
    let answer = call(&base, "POST", "/things", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.body,
        json!({ "subject": "alice", "scopes": [WRITE, "audit"] })
    );
    let lower_case = token.replacen("Bearer", "bearer", 1);
    assert_eq!(
        call(&base, "POST", "/things", Some(&lower_case))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_unreachable_jwks_url_gets_a_401_saying_the_keys_are_unavailable() {
    let auth = Authentication::jwt(config(vec![KeySource::JwksUrl(closed_port_url().await)]))
        .await
        .expect("a failed first fetch is only logged");
    let base = serve(&auth).await;
    let token = format!("Bearer {}", rs256(&claims(), key_a(), Some(key_a().kid)));
    let answer = call(&base, "POST", "/things", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let detail = answer.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("keys are unavailable"), "{detail}");
    assert!(
        !detail.contains("127.0.0.1"),
        "the JWKS address is not for clients: {detail}"
    );
}

#[tokio::test]
async fn with_authentication_off_everything_passes_without_a_caller() {
    let base = serve(&Authentication::Off).await;
    for (method, path) in [("POST", "/things"), ("GET", "/view")] {
        let answer = call(&base, method, path, None).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body, Value::Null);
    }
}

#[tokio::test]
async fn protecting_a_router_without_routes_is_harmless() {
    let auth = jwt_auth().await;
    let router: Router = auth.protect(Router::new(), Access::Read);
    assert!(!router.has_routes());
}
