use std::path::PathBuf;

use eventline_http::ApiError;

/// Everything that can go wrong in this crate: a bad configuration, an unusable key file, or a
/// request whose bearer token is refused.
///
/// The `Display` text of a refused token is what the 401 answer's `detail` says; it explains why
/// (expired, wrong audience, unknown key id, ...) and never echoes the token. The one place that
/// turns these errors into HTTP answers is `From<AuthError> for ApiError` below.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The configuration names no issuer.
    #[error("the JWT issuer is empty: name the issuer (`iss`) tokens must carry")]
    EmptyIssuer,
    /// The configuration names no audience.
    #[error("the JWT audience is empty: name the audience (`aud`) tokens must be issued for")]
    EmptyAudience,
    /// The configuration names no HS256 secret, JWKS file or JWKS URL.
    #[error("no key source is configured: give an HS256 secret, a JWKS file or a JWKS URL")]
    NoKeySource,
    /// A scope name is empty or contains whitespace (scopes are space-separated in tokens).
    #[error("{scope:?} is not a usable scope name: it must be non-empty and contain no whitespace")]
    InvalidScopeName { scope: String },
    /// An HS256 secret shorter than RFC 7518 allows (256 bits).
    #[error("the HS256 secret is {len} bytes long; at least {min} are required", min = crate::Secret::MIN_LEN)]
    SecretTooShort { len: usize },
    /// No random bytes could be drawn from the operating system.
    #[error("cannot draw random bytes from the operating system: {0}")]
    Random(getrandom::Error),
    /// The development secret file could not be read or created.
    #[error("the development secret {path}: {source}")]
    DevSecretFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The development secret file holds something that is not a usable secret.
    #[error("the development secret {path} is not usable: {source}")]
    DevSecretInvalid {
        path: PathBuf,
        source: Box<AuthError>,
    },
    /// A JWKS file could not be read.
    #[error("cannot read the JWKS file {path}: {source}")]
    JwksFileRead {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A JWKS file was read but holds no usable key.
    #[error("the JWKS file {path} is not usable: {source}")]
    JwksFileInvalid { path: PathBuf, source: JwksError },
    /// A JWKS URL that is not an http(s) URL.
    #[error("{url:?} is not a usable JWKS URL: {reason}")]
    InvalidJwksUrl { url: String, reason: String },
    /// The TLS configuration for JWKS URLs could not be built.
    #[error("cannot set up TLS for JWKS URLs: {0}")]
    Tls(#[from] rustls::Error),
    /// A development token could not be signed.
    #[error("cannot sign the development token: {0}")]
    Mint(jsonwebtoken::errors::Error),

    /// The request has no `Authorization` header.
    #[error("this route needs an `Authorization: Bearer <token>` header")]
    MissingToken,
    /// The `Authorization` header is not `Bearer <token>`.
    #[error("the Authorization header is not a bearer token: {reason}")]
    NotBearer { reason: &'static str },
    /// The token is not a well-formed JWS compact serialization.
    #[error("the token is malformed: {reason}")]
    Malformed { reason: &'static str },
    /// The token is signed with an algorithm the configured keys do not allow (this includes
    /// `none`, and HS256 when only RSA keys are trusted).
    #[error("the token's algorithm {alg:?} is not accepted here (accepted: {accepted})")]
    AlgorithmNotAllowed { alg: String, accepted: String },
    /// No trusted key produced the token's signature.
    #[error("the token's signature does not match any trusted key")]
    BadSignature,
    /// The token names a key id that no trusted key has, even after fetching the JWKS again.
    #[error("the token is signed with the key id {kid:?}, which no trusted key has")]
    UnknownKeyId { kid: String },
    /// The token names no key id and more than one RSA key is trusted.
    #[error("the token names no key id (kid) and {keys} RSA keys are trusted")]
    AmbiguousKey { keys: usize },
    /// The RSA keys could not be fetched from a JWKS URL, so RS256 tokens cannot be checked.
    #[error("the signing keys from {url} are unavailable: {reason}")]
    KeysUnavailable { url: String, reason: String },
    /// The token's `exp` has passed (beyond the configured leeway).
    #[error("the token has expired")]
    Expired,
    /// The token's `nbf` is still in the future (beyond the configured leeway).
    #[error("the token is not valid yet (its nbf is in the future)")]
    NotYetValid,
    /// The token's `iss` is not the configured issuer.
    #[error("the token was not issued by {expected:?}")]
    WrongIssuer { expected: String },
    /// The token's `aud` does not contain the configured audience.
    #[error("the token is not meant for the audience {expected:?}")]
    WrongAudience { expected: String },
    /// A claim every token must carry is absent.
    #[error("the token has no {claim:?} claim")]
    MissingClaim { claim: String },
    /// A claim has the wrong type or value.
    #[error("the token's {claim:?} claim {reason}")]
    InvalidClaim { claim: String, reason: &'static str },
    /// The token is valid but does not grant the scope the route needs.
    #[error("the token does not grant the scope {scope:?}")]
    InsufficientScope { scope: String },
}

/// Why a JWK set (from a file or a URL) could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The document is not a JSON object with a `keys` array.
    #[error("not a JWK set (a JSON object with a \"keys\" array): {0}")]
    NotAJwkSet(serde_json::Error),
    /// The set holds no RSA key usable to verify RS256 signatures.
    #[error("it holds no RSA signing key usable with RS256 (of {total} keys)")]
    NoUsableKey { total: usize },
    /// The HTTP request failed (connection, TLS, a broken answer).
    #[error("request failed: {0}")]
    Request(String),
    /// No complete answer within the fetch timeout.
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The server answered with a status other than 2xx (redirects are not followed).
    #[error("the server answered {0}")]
    Status(axum::http::StatusCode),
    /// The answer is larger than a JWK set has any reason to be.
    #[error("the answer is larger than {limit} bytes")]
    TooLarge { limit: usize },
}

impl AuthError {
    /// Whether the error refuses a request's token (a 401 or 403), as opposed to a configuration
    /// or I/O failure on our side.
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            AuthError::MissingToken
                | AuthError::NotBearer { .. }
                | AuthError::Malformed { .. }
                | AuthError::AlgorithmNotAllowed { .. }
                | AuthError::BadSignature
                | AuthError::UnknownKeyId { .. }
                | AuthError::AmbiguousKey { .. }
                | AuthError::KeysUnavailable { .. }
                | AuthError::Expired
                | AuthError::NotYetValid
                | AuthError::WrongIssuer { .. }
                | AuthError::WrongAudience { .. }
                | AuthError::MissingClaim { .. }
                | AuthError::InvalidClaim { .. }
                | AuthError::InsufficientScope { .. }
        )
    }
}

/// The HTTP answer to each error: 401 `missing_token` without a token, 403 `insufficient_scope`
/// for a missing scope, 401 `invalid_token` (with the reason) for every other refused token, and
/// the opaque 500 (cause logged) for failures on our side.
impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::MissingToken => ApiError::missing_token(error.to_string()),
            AuthError::InsufficientScope { scope } => ApiError::insufficient_scope(&scope),
            AuthError::KeysUnavailable {
                ref url,
                ref reason,
            } => {
                // Where the keys live and why they failed is for the operator, not the client.
                tracing::warn!(%url, %reason, "bearer token refused: signing keys unavailable");
                ApiError::invalid_token(
                    "the signing keys are unavailable right now (the JWKS endpoint could not be \
                     reached); try again later",
                )
            }
            rejection if rejection.is_rejection() => ApiError::invalid_token(rejection.to_string()),
            other => ApiError::internal(&other),
        }
    }
}
