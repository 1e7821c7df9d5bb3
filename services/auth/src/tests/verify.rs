//! The verifier's rules, one rejection at a time (HS256 and JWKS files: no network).

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use eventline_http::Caller;
use serde_json::{Value, json};

use super::*;
use crate::verify::{bearer_token, scopes};
use crate::{Access, AuthError, Authentication, KeySource, Verifier};

async fn verifier(keys: Vec<KeySource>) -> Verifier {
    verifier_with(config(keys)).await
}

async fn verifier_with(config: JwtConfig) -> Verifier {
    match Authentication::jwt(config).await.expect("a valid config") {
        Authentication::Jwt(verifier) => verifier,
        Authentication::Off => unreachable!("jwt() never turns authentication off"),
    }
}

async fn hs_verifier() -> Verifier {
    verifier(vec![KeySource::Hs256(secret())]).await
}

/// A JWKS file holding `keys`, kept alive by the returned guard.
fn jwks_file(keys: &[&RsaPair]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(file.path(), jwks(keys).to_string()).expect("write the JWKS");
    file
}

async fn rsa_verifier(keys: &[&RsaPair]) -> (Verifier, tempfile::NamedTempFile) {
    let file = jwks_file(keys);
    let verifier = verifier(vec![KeySource::JwksFile(file.path().to_owned())]).await;
    (verifier, file)
}

fn map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

#[tokio::test]
async fn a_valid_hs256_token_names_the_caller_and_its_scopes() {
    let caller = hs_verifier()
        .await
        .verify(&hs256(&claims(), &secret()))
        .await
        .expect("accepted");
    assert_eq!(
        caller,
        Caller {
            subject: "alice".to_owned(),
            scopes: vec!["openid".to_owned(), READ.to_owned(), WRITE.to_owned()],
        }
    );
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let token = hs256(&with(claims(), "exp", json!(now() - 120)), &secret());
    let error = hs_verifier().await.verify(&token).await.unwrap_err();
    assert!(matches!(error, AuthError::Expired), "{error}");
    assert_eq!(error.to_string(), "the token has expired");
}

#[tokio::test]
async fn the_leeway_tolerates_clock_skew_on_exp_and_nbf() {
    let lenient = verifier_with(JwtConfig {
        leeway: Duration::from_secs(60),
        ..config(vec![KeySource::Hs256(secret())])
    })
    .await;
    let strict = hs_verifier().await;
    let late = hs256(&with(claims(), "exp", json!(now() - 20)), &secret());
    let early = hs256(&with(claims(), "nbf", json!(now() + 20)), &secret());
    for token in [&late, &early] {
        lenient.verify(token).await.expect("within the leeway");
        strict.verify(token).await.unwrap_err();
    }
}

#[tokio::test]
async fn tokens_not_valid_yet_are_refused() {
    let token = hs256(&with(claims(), "nbf", json!(now() + 120)), &secret());
    let error = hs_verifier().await.verify(&token).await.unwrap_err();
    assert!(matches!(error, AuthError::NotYetValid), "{error}");
    let past = hs256(&with(claims(), "nbf", json!(now() - 120)), &secret());
    hs_verifier().await.verify(&past).await.expect("nbf passed");
}

#[tokio::test]
async fn the_audience_must_be_ours_as_a_string_or_in_an_array() {
    let verifier = hs_verifier().await;
    for aud in [json!("another-service"), json!(["another-service", "more"])] {
        let error = verifier
            .verify(&hs256(&with(claims(), "aud", aud), &secret()))
            .await
            .unwrap_err();
        assert!(matches!(error, AuthError::WrongAudience { .. }), "{error}");
        assert!(error.to_string().contains("audience"), "{error}");
    }
    let listed = hs256(
        &with(claims(), "aud", json!(["account", AUDIENCE])),
        &secret(),
    );
    verifier
        .verify(&listed)
        .await
        .expect("our audience is listed");
    let error = verifier
        .verify(&hs256(&without(claims(), "aud"), &secret()))
        .await
        .unwrap_err();
    assert!(
        matches!(error, AuthError::MissingClaim { ref claim } if claim == "aud"),
        "{error}"
    );
}

#[tokio::test]
async fn the_issuer_must_be_exactly_ours() {
    let verifier = hs_verifier().await;
    for iss in [
        json!("https://evil.example.test"),
        json!([ISSUER, "https://other"]),
    ] {
        let error = verifier
            .verify(&hs256(&with(claims(), "iss", iss), &secret()))
            .await
            .unwrap_err();
        assert!(matches!(error, AuthError::WrongIssuer { .. }), "{error}");
    }
    let error = verifier
        .verify(&hs256(&without(claims(), "iss"), &secret()))
        .await
        .unwrap_err();
    assert!(
        matches!(error, AuthError::MissingClaim { ref claim } if claim == "iss"),
        "{error}"
    );
}

#[tokio::test]
async fn a_subject_is_required() {
    let verifier = hs_verifier().await;
    let error = verifier
        .verify(&hs256(&without(claims(), "sub"), &secret()))
        .await
        .unwrap_err();
    assert!(
        matches!(error, AuthError::MissingClaim { ref claim } if claim == "sub"),
        "{error}"
    );
    let error = verifier
        .verify(&hs256(&with(claims(), "sub", json!(" ")), &secret()))
        .await
        .unwrap_err();
    assert!(
        matches!(error, AuthError::InvalidClaim { ref claim, .. } if claim == "sub"),
        "{error}"
    );
}

#[tokio::test]
async fn an_expiry_is_required() {
    let error = hs_verifier()
        .await
        .verify(&hs256(&without(claims(), "exp"), &secret()))
        .await
        .unwrap_err();
    assert!(
        matches!(error, AuthError::MissingClaim { ref claim } if claim == "exp"),
        "{error}"
    );
}

#[tokio::test]
async fn a_token_signed_with_another_secret_is_refused() {
    let error = hs_verifier()
        .await
        .verify(&hs256(&claims(), &other_secret()))
        .await
        .unwrap_err();
    assert!(matches!(error, AuthError::BadSignature), "{error}");
}

#[tokio::test]
async fn every_configured_secret_is_trusted_during_a_rotation() {
    let verifier = verifier(vec![
        KeySource::Hs256(secret()),
        KeySource::Hs256(other_secret()),
    ])
    .await;
    verifier
        .verify(&hs256(&claims(), &secret()))
        .await
        .expect("old secret");
    verifier
        .verify(&hs256(&claims(), &other_secret()))
        .await
        .expect("new secret");
    // A claim failure under the matching secret is reported as such, not as a bad signature.
    let expired = hs256(&with(claims(), "exp", json!(now() - 120)), &other_secret());
    let error = verifier.verify(&expired).await.unwrap_err();
    assert!(matches!(error, AuthError::Expired), "{error}");
}

#[tokio::test]
async fn alg_none_never_verifies() {
    let (verifier, _file) = rsa_verifier(&[key_a()]).await;
    let both = verifier_with(config(vec![
        KeySource::Hs256(secret()),
        KeySource::JwksFile(_file.path().to_owned()),
    ]))
    .await;
    for alg in ["none", "None", "NONE"] {
        let token = raw_token(&json!({ "alg": alg, "typ": "JWT" }), &claims(), b"");
        for verifier in [&verifier, &both] {
            let error = verifier.verify(&token).await.unwrap_err();
            assert!(
                matches!(error, AuthError::AlgorithmNotAllowed { alg: ref a, .. } if a == alg),
                "{error}"
            );
        }
    }
}

#[tokio::test]
async fn an_hs256_token_signed_with_the_rsa_public_key_is_refused() {
    // The classic confusion: the attacker knows the public key and uses it as an HMAC secret.
    let (verifier, _file) = rsa_verifier(&[key_a()]).await;
    let key = jsonwebtoken::EncodingKey::from_secret(&key_a().public_der).expect("a secret");
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key_a().kid.to_owned());
    let token = jsonwebtoken::encode(&header, &claims(), &key).expect("sign");
    let error = verifier.verify(&token).await.unwrap_err();
    assert!(
        matches!(error, AuthError::AlgorithmNotAllowed { ref alg, ref accepted } if alg == "HS256" && accepted == "RS256"),
        "{error}"
    );
}

#[tokio::test]
async fn an_rs256_token_is_refused_where_only_secrets_are_trusted() {
    let error = hs_verifier()
        .await
        .verify(&rs256(&claims(), key_a(), Some(key_a().kid)))
        .await
        .unwrap_err();
    assert!(
        matches!(error, AuthError::AlgorithmNotAllowed { ref alg, ref accepted } if alg == "RS256" && accepted == "HS256"),
        "{error}"
    );
}

#[tokio::test]
async fn rs256_keys_from_a_jwks_file_are_picked_by_kid() {
    let (verifier, _file) = rsa_verifier(&[key_a(), key_b()]).await;
    for key in [key_a(), key_b()] {
        let caller = verifier
            .verify(&rs256(&claims(), key, Some(key.kid)))
            .await
            .expect("signed by a trusted key");
        assert_eq!(caller.subject, "alice");
    }
    // Signed by key B but claiming to be key A.
    let error = verifier
        .verify(&rs256(&claims(), key_b(), Some(key_a().kid)))
        .await
        .unwrap_err();
    assert!(matches!(error, AuthError::BadSignature), "{error}");
    let error = verifier
        .verify(&rs256(&claims(), key_a(), Some("key-z")))
        .await
        .unwrap_err();
    assert!(
        matches!(error, AuthError::UnknownKeyId { ref kid } if kid == "key-z"),
        "{error}"
    );
    // Without kid, two keys leave the choice open.
    let error = verifier
        .verify(&rs256(&claims(), key_a(), None))
        .await
        .unwrap_err();
    assert!(
        matches!(error, AuthError::AmbiguousKey { keys: 2 }),
        "{error}"
    );
}

#[tokio::test]
async fn without_kid_the_only_rsa_key_is_used() {
    let (verifier, _file) = rsa_verifier(&[key_a()]).await;
    verifier
        .verify(&rs256(&claims(), key_a(), None))
        .await
        .expect("the only key");
    let error = verifier
        .verify(&rs256(&claims(), key_b(), None))
        .await
        .unwrap_err();
    assert!(matches!(error, AuthError::BadSignature), "{error}");
}

#[tokio::test]
async fn rs256_tokens_are_held_to_the_same_claims() {
    let (verifier, _file) = rsa_verifier(&[key_a()]).await;
    let sign = |claims| rs256(&claims, key_a(), Some(key_a().kid));
    let cases = [
        (sign(with(claims(), "exp", json!(now() - 120))), "expired"),
        (sign(with(claims(), "aud", json!("other"))), "audience"),
        (sign(with(claims(), "iss", json!("other"))), "issued"),
        (sign(without(claims(), "sub")), "\"sub\""),
    ];
    for (token, reason) in cases {
        let error = verifier.verify(&token).await.unwrap_err();
        assert!(
            error.to_string().contains(reason),
            "{error} should say {reason}"
        );
    }
}

#[tokio::test]
async fn malformed_tokens_are_refused_with_a_reason_that_does_not_echo_them() {
    let verifier = hs_verifier().await;
    let token = hs256(&claims(), &secret());
    let mut parts = token.split('.');
    let (head, body) = (parts.next().unwrap(), parts.next().unwrap());
    let cases = [
        "not-a-jwt".to_owned(),
        format!("{head}.{body}"),
        format!("{token}.extra"),
        format!("!!!.{body}.c2ln"),
        format!("{}.{body}.c2ln", URL_SAFE_NO_PAD.encode("[1,2]")),
        format!("{}.{body}.c2ln", URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT"}"#)),
        format!("{head}.bm90IGpzb24.{}", token.rsplit('.').next().unwrap()),
    ];
    for case in cases {
        let error = verifier.verify(&case).await.unwrap_err();
        assert!(
            matches!(error, AuthError::Malformed { .. } | AuthError::BadSignature),
            "{case}: {error}"
        );
        assert!(
            !error.to_string().contains(&case),
            "{error} echoes the token"
        );
    }
}

#[test]
fn scopes_come_from_scope_and_scp_in_either_form() {
    let cases = [
        (json!({ "scope": "a b  c" }), vec!["a", "b", "c"]),
        (json!({ "scp": "a b" }), vec!["a", "b"]),
        (json!({ "scp": ["a", "b"] }), vec!["a", "b"]),
        (
            json!({ "scope": "a b", "scp": ["b", "c"] }),
            vec!["a", "b", "c"],
        ),
        (json!({ "scope": null }), vec![]),
        (json!({}), vec![]),
    ];
    for (claims, expected) in cases {
        assert_eq!(
            scopes(&map(claims.clone())).expect("valid"),
            expected,
            "{claims}"
        );
    }
    for claims in [
        json!({ "scope": 7 }),
        json!({ "scp": ["a", 7] }),
        json!({ "scp": {} }),
    ] {
        let error = scopes(&map(claims.clone())).unwrap_err();
        assert!(
            matches!(error, AuthError::InvalidClaim { .. }),
            "{claims}: {error}"
        );
    }
}

#[tokio::test]
async fn each_access_needs_its_own_scope() {
    let verifier = hs_verifier().await;
    let headers = |scope: &str| {
        let token = hs256(&with(claims(), "scope", json!(scope)), &secret());
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("ASCII");
        headers.insert(header::AUTHORIZATION, value);
        headers
    };
    let read_only = headers(READ);
    let write_only = headers(WRITE);
    verifier
        .authorize(&read_only, Access::Read)
        .await
        .expect("read");
    verifier
        .authorize(&write_only, Access::Write)
        .await
        .expect("write");
    let error = verifier
        .authorize(&read_only, Access::Write)
        .await
        .unwrap_err();
    assert!(
        matches!(error, AuthError::InsufficientScope { ref scope } if scope == WRITE),
        "{error}"
    );
    let error = verifier
        .authorize(&write_only, Access::Read)
        .await
        .unwrap_err();
    assert!(
        matches!(error, AuthError::InsufficientScope { ref scope } if scope == READ),
        "{error}"
    );
    // A scope that merely contains the name does not count.
    let similar = headers(&format!("{WRITE}x x{WRITE}"));
    verifier
        .authorize(&similar, Access::Write)
        .await
        .unwrap_err();
}

#[test]
fn the_bearer_scheme_is_case_insensitive_and_required() {
    let headers = |values: &[&str]| {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                header::AUTHORIZATION,
                HeaderValue::from_str(value).expect("ASCII"),
            );
        }
        headers
    };
    for value in ["Bearer abc", "bearer abc", "BEARER   abc ", " Bearer abc"] {
        assert_eq!(bearer_token(&headers(&[value])).expect(value), "abc");
    }
    assert!(matches!(
        bearer_token(&headers(&[])),
        Err(AuthError::MissingToken)
    ));
    assert!(matches!(
        bearer_token(&headers(&[""])),
        Err(AuthError::MissingToken)
    ));
    for values in [
        &["Basic YWxpY2U6cGFzcw=="][..],
        &["Bearer"],
        &["Bearer  "],
        &["abc.def.ghi"],
        &["Bearer a", "Bearer b"],
    ] {
        let error = bearer_token(&headers(values)).unwrap_err();
        assert!(
            matches!(error, AuthError::NotBearer { .. }),
            "{values:?}: {error}"
        );
    }
}

#[tokio::test]
async fn configurations_that_cannot_work_are_refused() {
    let cases = [
        JwtConfig {
            issuer: " ".to_owned(),
            ..config(vec![KeySource::Hs256(secret())])
        },
        JwtConfig {
            audience: String::new(),
            ..config(vec![KeySource::Hs256(secret())])
        },
        config(vec![]),
        JwtConfig {
            write_scope: "eventline write".to_owned(),
            ..config(vec![KeySource::Hs256(secret())])
        },
        config(vec![KeySource::JwksUrl(
            "ftp://id.example.test/jwks".to_owned(),
        )]),
        config(vec![KeySource::JwksUrl("not a url".to_owned())]),
        config(vec![KeySource::JwksUrl(
            "https://user:password@id.example.test/jwks".to_owned(),
        )]),
    ];
    let expected = [
        "issuer",
        "audience",
        "no key source",
        "scope",
        "JWKS URL",
        "JWKS URL",
        "credentials",
    ];
    for (config, expected) in cases.into_iter().zip(expected) {
        let error = Authentication::jwt(config).await.unwrap_err();
        assert!(error.to_string().contains(expected), "{error}");
        assert!(!error.to_string().contains("password"), "{error}");
    }
}

#[test]
fn secrets_are_long_enough_and_never_printed() {
    let error = Secret::new(b"short".to_vec()).unwrap_err();
    assert!(
        matches!(error, AuthError::SecretTooShort { len: 5 }),
        "{error}"
    );
    let config = config(vec![KeySource::Hs256(secret())]);
    let printed = format!("{config:?}");
    assert!(printed.contains("Hs256(***)"), "{printed}");
    assert!(!printed.contains("development secret"), "{printed}");
}
