use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::AuthError;

/// The bytes of an HS256 secret.
///
/// Guarantees: at least [`Secret::MIN_LEN`] bytes (RFC 7518 asks for a key as long as the hash);
/// `Debug` prints `***`, so a secret never reaches a log through a config dump; the bytes are
/// wiped from memory when the secret is dropped.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// The shortest secret accepted: 256 bits, the output size of SHA-256.
    pub const MIN_LEN: usize = 32;

    /// A secret from its bytes, e.g. the value of an environment variable or a mounted file.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, AuthError> {
        let bytes = Zeroizing::new(bytes.into());
        if bytes.len() < Self::MIN_LEN {
            return Err(AuthError::SecretTooShort { len: bytes.len() });
        }
        Ok(Secret(bytes))
    }

    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where the keys that sign trusted tokens come from. Several sources may be combined (e.g. an
/// old and a new secret during a rotation, or a JWKS URL plus a JWKS file).
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A shared secret: tokens signed with HS256 under it are trusted.
    Hs256(Secret),
    /// A JWK set on disk, read once at startup: tokens signed with RS256 under one of its RSA keys
    /// are trusted.
    JwksFile(PathBuf),
    /// A JWK set served over http(s) by the identity provider (e.g. Keycloak's
    /// `/realms/<realm>/protocol/openid-connect/certs`): fetched at startup and again when a token
    /// names an unknown key id or the keys are older than ten minutes, at most once per 30 s.
    JwksUrl(String),
}

/// What a bearer token must satisfy to be accepted.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// The exact `iss` every token must carry.
    pub issuer: String,
    /// The audience every token's `aud` (a string or an array) must contain.
    pub audience: String,
    /// The trusted signing keys; at least one source.
    pub keys: Vec<KeySource>,
    /// The scope a token needs for [`crate::Access::Read`] routes.
    pub read_scope: String,
    /// The scope a token needs for [`crate::Access::Write`] routes; it does not imply the read
    /// scope, nor the other way round.
    pub write_scope: String,
    /// The clock skew tolerated on `exp` and `nbf` (whole seconds count).
    pub leeway: Duration,
}

impl JwtConfig {
    /// Checks what can be checked without I/O: issuer, audience and scopes are set, and there is
    /// at least one key source.
    pub(crate) fn validate(&self) -> Result<(), AuthError> {
        if self.issuer.trim().is_empty() {
            return Err(AuthError::EmptyIssuer);
        }
        if self.audience.trim().is_empty() {
            return Err(AuthError::EmptyAudience);
        }
        if self.keys.is_empty() {
            return Err(AuthError::NoKeySource);
        }
        check_scope_name(&self.read_scope)?;
        check_scope_name(&self.write_scope)
    }
}

/// Scope names travel space-separated in the `scope` claim, so a name with whitespace could
/// never be matched.
pub(crate) fn check_scope_name(scope: &str) -> Result<(), AuthError> {
    if scope.is_empty() || scope.chars().any(char::is_whitespace) {
        return Err(AuthError::InvalidScopeName {
            scope: scope.to_owned(),
        });
    }
    Ok(())
}
