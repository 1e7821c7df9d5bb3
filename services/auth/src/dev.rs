//! Development tokens: a local HS256 secret and tokens signed with it.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::config::{Secret, check_scope_name};
use crate::error::AuthError;

/// What a development token says.
#[derive(Debug, Clone)]
pub struct DevToken {
    /// `iss`: must match the services' configured issuer.
    pub issuer: String,
    /// `aud`: must match the services' configured audience.
    pub audience: String,
    /// `sub`: the acting user recorded in event metadata.
    pub subject: String,
    /// The granted scopes, written space-separated into `scope`.
    pub scopes: Vec<String>,
    /// How long the token is valid from now.
    pub ttl: Duration,
}

#[derive(Serialize)]
struct DevClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    scope: String,
    iat: u64,
    exp: u64,
}

/// Signs `token` with HS256 under `secret`: a token the services accept when they trust that
/// secret and the token's issuer, audience and scopes match their configuration.
pub fn mint_hs256(secret: &Secret, token: &DevToken) -> Result<String, AuthError> {
    if token.issuer.trim().is_empty() {
        return Err(AuthError::EmptyIssuer);
    }
    if token.audience.trim().is_empty() {
        return Err(AuthError::EmptyAudience);
    }
    if token.subject.trim().is_empty() {
        return Err(AuthError::MissingClaim {
            claim: "sub".to_owned(),
        });
    }
    for scope in &token.scopes {
        check_scope_name(scope)?;
    }
    let now = jsonwebtoken::get_current_timestamp();
    let claims = DevClaims {
        iss: &token.issuer,
        aud: &token.audience,
        sub: &token.subject,
        scope: token.scopes.join(" "),
        iat: now,
        exp: now.saturating_add(token.ttl.as_secs()),
    };
    let key = EncodingKey::from_secret(secret.expose()).map_err(AuthError::Mint)?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).map_err(AuthError::Mint)
}

/// The development secret at `path`, created if missing.
///
/// A new secret is 32 random bytes, stored as 43 base64url characters (so the file's content can
/// also be passed as an environment variable); the secret is the file's content without
/// trailing whitespace. The file is created with mode 0600 under a temporary name and linked into
/// place, which fails if `path` exists: when two processes race, exactly one secret wins and
/// both return it, and nobody ever reads a half-written file. Blocking: call it at startup.
pub fn load_or_create_dev_secret(path: &Path) -> Result<Secret, AuthError> {
    let file_error = |source| AuthError::DevSecretFile {
        path: path.to_owned(),
        source,
    };
    match std::fs::read(path) {
        Ok(content) => {
            warn_if_shared(path);
            return secret_from_file(path, content);
        }
        Err(error) if error.kind() == ErrorKind::NotFound => {}
        Err(error) => return Err(file_error(error)),
    }
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(AuthError::Random)?;
    let encoded = URL_SAFE_NO_PAD.encode(random);
    random.fill(0);

    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(
        ".{file_name}.{}.{}.tmp",
        std::process::id(),
        URL_SAFE_NO_PAD.encode(nonce()?)
    ));
    let written = write_private(&temporary, encoded.as_bytes())
        .and_then(|()| std::fs::hard_link(&temporary, path));
    // The temporary name is ours alone; it is gone whether the link succeeded or not.
    let _ = std::fs::remove_file(&temporary);
    match written {
        Ok(()) => {
            tracing::info!(path = %path.display(), "created a development secret");
            Secret::new(encoded)
        }
        // Another process created it first: use its secret.
        Err(error) if error.kind() == ErrorKind::AlreadyExists => {
            secret_from_file(path, std::fs::read(path).map_err(file_error)?)
        }
        Err(error) => Err(file_error(error)),
    }
}

fn nonce() -> Result<[u8; 6], AuthError> {
    let mut nonce = [0u8; 6];
    getrandom::fill(&mut nonce).map_err(AuthError::Random)?;
    Ok(nonce)
}

fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(content)?;
    file.sync_all()
}

/// A secret readable by others is no secret; say so (the file is the operator's to fix).
fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    if let Ok(metadata) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the development secret is readable by other users");
        }
    }
}

fn secret_from_file(path: &Path, mut content: Vec<u8>) -> Result<Secret, AuthError> {
    while content.last().is_some_and(u8::is_ascii_whitespace) {
        content.pop();
    }
    Secret::new(content).map_err(|source| AuthError::DevSecretInvalid {
        path: path.to_owned(),
        source: Box::new(source),
    })
}
