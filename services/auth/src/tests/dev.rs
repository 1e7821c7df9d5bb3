//! Development secrets and tokens.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::{
    Access, AuthError, Authentication, DevToken, KeySource, load_or_create_dev_secret, mint_hs256,
};

fn dev_token() -> DevToken {
    DevToken {
        issuer: ISSUER.to_owned(),
        audience: AUDIENCE.to_owned(),
        subject: "dev-user".to_owned(),
        scopes: vec![READ.to_owned(), WRITE.to_owned()],
        ttl: Duration::from_secs(600),
    }
}

#[tokio::test]
async fn a_minted_token_verifies_with_its_secret_only() {
    let token = mint_hs256(&secret(), &dev_token()).expect("minted");
    let auth = Authentication::jwt(config(vec![KeySource::Hs256(secret())]))
        .await
        .expect("valid");
    let Authentication::Jwt(verifier) = &auth else {
        panic!("authentication is off")
    };
    let caller = verifier.verify(&token).await.expect("accepted");
    assert_eq!(caller.subject, "dev-user");
    assert_eq!(caller.scopes, [READ, WRITE]);

    let other = Authentication::jwt(config(vec![KeySource::Hs256(other_secret())]))
        .await
        .expect("valid");
    let Authentication::Jwt(other) = &other else {
        panic!("authentication is off")
    };
    let error = other.verify(&token).await.unwrap_err();
    assert!(matches!(error, AuthError::BadSignature), "{error}");

    let claims: Map<String, Value> =
        jsonwebtoken::dangerous::insecure_decode_claims(&token).expect("claims");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        600
    );
    assert_eq!(
        (&claims["iss"], &claims["aud"]),
        (&json!(ISSUER), &json!(AUDIENCE))
    );
    let read_only = mint_hs256(
        &secret(),
        &DevToken {
            scopes: vec![READ.to_owned()],
            ..dev_token()
        },
    )
    .expect("minted");
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        axum::http::header::AUTHORIZATION,
        format!("Bearer {read_only}").parse().expect("ASCII"),
    );
    let error = verifier
        .authorize(&headers, Access::Write)
        .await
        .unwrap_err();
    assert!(
        matches!(error, AuthError::InsufficientScope { .. }),
        "{error}"
    );
}

#[test]
fn minting_refuses_what_no_service_would_accept() {
    for token in [
        DevToken {
            subject: String::new(),
            ..dev_token()
        },
        DevToken {
            issuer: String::new(),
            ..dev_token()
        },
        DevToken {
            scopes: vec!["two words".to_owned()],
            ..dev_token()
        },
    ] {
        mint_hs256(&secret(), &token).unwrap_err();
    }
}

#[test]
fn the_dev_secret_is_created_private_once_and_read_back_after() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("dev-secret");
    let first = load_or_create_dev_secret(&path).expect("created");
    assert_eq!(first.expose().len(), 43, "32 random bytes in base64url");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let second = load_or_create_dev_secret(&path).expect("read back");
    assert_eq!(first.expose(), second.expose());
    // Only the secret remains in the directory: the temporary file is gone.
    assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);

    let elsewhere = load_or_create_dev_secret(&dir.path().join("another")).expect("created");
    assert_ne!(first.expose(), elsewhere.expose(), "secrets are random");
}

#[test]
fn racing_processes_agree_on_one_dev_secret() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("dev-secret");
    let secrets: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| load_or_create_dev_secret(&path).expect("a secret")))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic").expose().to_vec())
            .collect()
    });
    assert!(
        secrets.windows(2).all(|pair| pair[0] == pair[1]),
        "one secret wins"
    );
}

#[test]
fn a_dev_secret_file_that_is_too_short_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("dev-secret");
    std::fs::write(&path, "short\n").expect("write");
    let error = load_or_create_dev_secret(&path).unwrap_err();
    assert!(
        matches!(error, AuthError::DevSecretInvalid { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
}
