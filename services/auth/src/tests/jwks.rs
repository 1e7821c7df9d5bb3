//! JWK sets from files and from a real HTTP endpoint: loading, rotation, throttling, readiness.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use super::*;
use crate::jwks::{RefreshPolicy, parse_jwks};
use crate::{AuthError, Authentication, JwksError, KeySource, Verifier};

async fn url_auth(url: String, policy: RefreshPolicy) -> Authentication {
    Authentication::jwt_with_policy(config(vec![KeySource::JwksUrl(url)]), policy)
        .await
        .expect("a valid config")
}

fn verifier(auth: &Authentication) -> &Verifier {
    match auth {
        Authentication::Jwt(verifier) => verifier,
        Authentication::Off => panic!("authentication is off"),
    }
}

/// Fetches allowed back to back, so tests need not wait out the 30 s.
fn eager() -> RefreshPolicy {
    RefreshPolicy {
        min_interval: Duration::ZERO,
        ..RefreshPolicy::default()
    }
}

async fn ready(auth: &Authentication) -> Result<(), String> {
    let (name, check) = auth.ready_check().expect("a JWKS URL is configured");
    assert_eq!(name, "jwks");
    check().await
}

#[test]
fn only_rsa_signing_keys_for_rs256_are_taken_from_a_set() {
    let mut encryption = key_b().jwk.clone();
    encryption["use"] = json!("enc");
    encryption["alg"] = json!("RSA-OAEP");
    let mut rs512 = key_b().jwk.clone();
    rs512["alg"] = json!("RS512");
    let mut short = key_b().jwk.clone();
    short["n"] = json!("AQAB");
    let mut no_metadata = key_a().jwk.clone();
    no_metadata.as_object_mut().unwrap().remove("use");
    no_metadata.as_object_mut().unwrap().remove("alg");
    let set = json!({ "keys": [
        { "kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "ec" },
        { "kty": "oct", "k": "c2VjcmV0", "kid": "hmac" },
        { "kty": "RSA", "kid": "broken" },
        encryption, rs512, short, no_metadata,
    ]});
    let keys = parse_jwks(set.to_string().as_bytes()).expect("one usable key");
    let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref()).collect();
    assert_eq!(kids, [Some("key-a")]);

    let none = json!({ "keys": [{ "kty": "oct", "k": "c2VjcmV0" }] });
    let error = parse_jwks(none.to_string().as_bytes()).unwrap_err();
    assert!(
        matches!(error, JwksError::NoUsableKey { total: 1 }),
        "{error}"
    );
    let error = parse_jwks(b"[]").unwrap_err();
    assert!(matches!(error, JwksError::NotAJwkSet(_)), "{error}");
}

#[tokio::test]
async fn a_jwks_file_that_cannot_be_used_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let missing = dir.path().join("missing.json");
    let error = Authentication::jwt(config(vec![KeySource::JwksFile(missing.clone())]))
        .await
        .unwrap_err();
    assert!(matches!(error, AuthError::JwksFileRead { .. }), "{error}");
    assert!(
        error.to_string().contains(&missing.display().to_string()),
        "{error}"
    );

    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{ not json").expect("write");
    let error = Authentication::jwt(config(vec![KeySource::JwksFile(garbage.clone())]))
        .await
        .unwrap_err();
    assert!(
        matches!(error, AuthError::JwksFileInvalid { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains(&garbage.display().to_string()),
        "{error}"
    );
}

#[tokio::test]
async fn keys_from_a_jwks_url_verify_tokens_and_make_the_service_ready() {
    let server = JwksServer::start(Ok(jwks(&[key_a()]))).await;
    let auth = url_auth(server.url(), RefreshPolicy::default()).await;
    assert_eq!(server.hits(), 1, "fetched once at startup");
    ready(&auth).await.expect("keys loaded");
    let caller = verifier(&auth)
        .verify(&rs256(&claims(), key_a(), Some(key_a().kid)))
        .await
        .expect("signed by the published key");
    assert_eq!(caller.subject, "alice");
    assert_eq!(server.hits(), 1, "fresh keys are not fetched again");
}

#[tokio::test]
async fn a_rotated_key_is_fetched_when_a_token_names_it() {
    let server = JwksServer::start(Ok(jwks(&[key_a()]))).await;
    let auth = url_auth(server.url(), eager()).await;
    let rotated = rs256(&claims(), key_b(), Some(key_b().kid));
    let error = verifier(&auth).verify(&rotated).await.unwrap_err();
    assert!(
        matches!(error, AuthError::UnknownKeyId { ref kid } if kid == "key-b"),
        "{error}"
    );
    assert_eq!(server.hits(), 2, "an unknown kid fetches the set again");

    server.serve(Ok(jwks(&[key_a(), key_b()])));
    verifier(&auth)
        .verify(&rotated)
        .await
        .expect("the new key was fetched");
    assert_eq!(server.hits(), 3);
    verifier(&auth)
        .verify(&rs256(&claims(), key_a(), Some(key_a().kid)))
        .await
        .expect("the old key is still published");
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn unknown_key_ids_fetch_at_most_once_per_interval() {
    let server = JwksServer::start(Ok(jwks(&[key_a()]))).await;
    let auth = url_auth(server.url(), RefreshPolicy::default()).await;
    server.serve(Ok(jwks(&[key_a(), key_b()])));
    for kid in ["made-up-1", "made-up-2", "key-b"] {
        let error = verifier(&auth)
            .verify(&rs256(&claims(), key_b(), Some(kid)))
            .await
            .unwrap_err();
        assert!(matches!(error, AuthError::UnknownKeyId { .. }), "{error}");
    }
    assert_eq!(
        server.hits(),
        1,
        "within 30 s of the startup fetch nothing is fetched"
    );
}

#[tokio::test]
async fn keys_older_than_the_maximum_age_are_fetched_again() {
    let server = JwksServer::start(Ok(jwks(&[key_a()]))).await;
    let policy = RefreshPolicy {
        max_age: Duration::ZERO,
        ..eager()
    };
    let auth = url_auth(server.url(), policy).await;
    let token = rs256(&claims(), key_a(), Some(key_a().kid));
    verifier(&auth).verify(&token).await.expect("accepted");
    assert_eq!(server.hits(), 2);
    // A failed refresh keeps the keys already loaded.
    server.serve(Err(StatusCode::INTERNAL_SERVER_ERROR));
    verifier(&auth).verify(&token).await.expect("old keys kept");
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn concurrent_requests_share_one_fetch() {
    let server = JwksServer::start(Ok(jwks(&[key_a()]))).await;
    let auth = url_auth(server.url(), eager()).await;
    server.serve(Ok(jwks(&[key_a(), key_b()])));
    server.hold_answers(true);
    let token = rs256(&claims(), key_b(), Some(key_b().kid));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let verifier = verifier(&auth).clone();
            let token = token.clone();
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    // On this single-threaded runtime every task has run up to its first wait by the time the
    // server sees the request: one inside the fetch, the others queued behind it.
    eventually("the refetch reaches the server", || server.hits() == 2).await;
    server.hold_answers(false);
    for task in tasks {
        task.await
            .expect("no panic")
            .expect("the shared fetch brought key B");
    }
    assert_eq!(server.hits(), 2, "one fetch for eight requests");
}

#[tokio::test]
async fn an_unreachable_jwks_url_leaves_the_service_unready_and_refuses_tokens() {
    let url = closed_port_url().await;
    let auth = url_auth(url.clone(), RefreshPolicy::default()).await;
    let reason = ready(&auth).await.unwrap_err();
    assert!(reason.contains(&url), "{reason}");
    let error = verifier(&auth)
        .verify(&rs256(&claims(), key_a(), Some(key_a().kid)))
        .await
        .unwrap_err();
    assert!(
        matches!(error, AuthError::KeysUnavailable { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("unavailable"), "{error}");
}

#[tokio::test]
async fn a_jwks_url_that_failed_at_startup_is_fetched_again_on_demand() {
    let server = JwksServer::start(Err(StatusCode::SERVICE_UNAVAILABLE)).await;
    let auth = url_auth(server.url(), eager()).await;
    let reason = ready(&auth).await.unwrap_err();
    assert!(reason.contains("503"), "{reason}");
    server.serve(Ok(jwks(&[key_a()])));
    ready(&auth)
        .await
        .expect("the readiness check fetched the keys");
    verifier(&auth)
        .verify(&rs256(&claims(), key_a(), None))
        .await
        .expect("the only key");
}

#[tokio::test]
async fn a_jwks_url_may_be_combined_with_secrets_and_files() {
    let server = JwksServer::start(Ok(jwks(&[key_b()]))).await;
    let file = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(file.path(), jwks(&[key_a()]).to_string()).expect("write");
    let auth = Authentication::jwt(config(vec![
        KeySource::Hs256(secret()),
        KeySource::JwksFile(file.path().to_owned()),
        KeySource::JwksUrl(server.url()),
    ]))
    .await
    .expect("valid");
    let verifier = verifier(&auth);
    verifier
        .verify(&hs256(&claims(), &secret()))
        .await
        .expect("HS256");
    for key in [key_a(), key_b()] {
        verifier
            .verify(&rs256(&claims(), key, Some(key.kid)))
            .await
            .expect("RS256");
    }
    assert!(Authentication::Off.ready_check().is_none());
    let files_only = Authentication::jwt(config(vec![KeySource::JwksFile(file.path().to_owned())]))
        .await
        .expect("valid");
    assert!(
        files_only.ready_check().is_none(),
        "files cannot become unavailable"
    );
}

#[tokio::test]
async fn https_urls_are_fetched_over_tls() {
    // A plain-HTTP server behind an https URL: the TLS handshake fails before any request.
    let server = JwksServer::start(Ok(jwks(&[key_a()]))).await;
    let url = format!("https://{}/jwks", server.addr);
    let auth = url_auth(url, RefreshPolicy::default()).await;
    let reason = ready(&auth).await.unwrap_err();
    // rustls's complaint about the plain-HTTP answer to its ClientHello.
    assert!(reason.contains("InvalidContentType"), "{reason}");
    assert_eq!(server.hits(), 0, "no plain-HTTP request was sent");
}
