//! Checking a bearer token: header, algorithm, key, signature, claims, scopes.

use std::fmt;
use std::sync::Arc;

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use eventline_http::Caller;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::{JwtConfig, KeySource};
use crate::error::AuthError;
use crate::jwks::{self, RefreshPolicy, RemoteJwks, RsaKey};

/// Which scope a router's routes need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reading: the configured `read_scope`.
    Read,
    /// Changing state: the configured `write_scope` (which does not imply the read scope).
    Write,
}

/// Checks bearer tokens against one [`JwtConfig`].
///
/// Cheap to clone (one `Arc`); clones share the keys fetched from JWKS URLs.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    audience: String,
    read_scope: String,
    write_scope: String,
    secrets: Vec<DecodingKey>,
    files: Vec<RsaKey>,
    remotes: Vec<RemoteJwks>,
    hs256: Validation,
    rs256: Validation,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("Verifier")
            .field("issuer", &inner.issuer)
            .field("audience", &inner.audience)
            .field("read_scope", &inner.read_scope)
            .field("write_scope", &inner.write_scope)
            .field("hs256_secrets", &inner.secrets.len())
            .field("jwks_file_keys", &inner.files.len())
            .field(
                "jwks_urls",
                &inner
                    .remotes
                    .iter()
                    .map(RemoteJwks::url)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The header fields read before the signature is checked (to pick the key).
#[derive(Deserialize)]
struct RawHeader {
    alg: Option<Value>,
    kid: Option<Value>,
}

impl Verifier {
    /// Validates `config`, reads its JWKS files and tries each JWKS URL once (a failure is only
    /// logged: the keys are fetched again when a token needs them).
    pub(crate) async fn new(config: JwtConfig, policy: RefreshPolicy) -> Result<Self, AuthError> {
        config.validate()?;
        let mut secrets = Vec::new();
        let mut files = Vec::new();
        let mut urls = Vec::new();
        for source in &config.keys {
            match source {
                KeySource::Hs256(secret) => {
                    secrets.push(DecodingKey::from_secret(secret.expose()).map_err(|_| {
                        AuthError::SecretTooShort {
                            len: secret.expose().len(),
                        }
                    })?)
                }
                KeySource::JwksFile(path) => files.extend(jwks::read_jwks_file(path).await?),
                KeySource::JwksUrl(url) => urls.push((url.clone(), jwks::parse_url(url)?)),
            }
        }
        let mut remotes = Vec::new();
        if !urls.is_empty() {
            let client = jwks::http_client(&policy)?;
            remotes = urls
                .into_iter()
                .map(|(url, uri)| RemoteJwks::new(url, uri, client.clone(), policy))
                .collect();
        }
        let validation = |algorithm| {
            let mut validation = Validation::new(algorithm);
            validation.set_issuer(&[&config.issuer]);
            validation.set_audience(&[&config.audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            validation.validate_exp = true;
            validation.validate_nbf = true;
            validation.validate_aud = true;
            validation.leeway = config.leeway.as_secs();
            validation
        };
        let verifier = Verifier {
            inner: Arc::new(Inner {
                hs256: validation(Algorithm::HS256),
                rs256: validation(Algorithm::RS256),
                issuer: config.issuer,
                audience: config.audience,
                read_scope: config.read_scope,
                write_scope: config.write_scope,
                secrets,
                files,
                remotes,
            }),
        };
        for remote in &verifier.inner.remotes {
            remote.refresh().await;
        }
        Ok(verifier)
    }

    /// The scope `access` needs.
    pub fn scope(&self, access: Access) -> &str {
        match access {
            Access::Read => &self.inner.read_scope,
            Access::Write => &self.inner.write_scope,
        }
    }

    /// Checks a token (without the `Bearer ` prefix) and returns who sent it.
    ///
    /// Accepted only if: the algorithm is HS256 and one of the configured secrets signed it, or
    /// RS256 and a trusted RSA key signed it (picked by `kid`; a token without `kid` is checked
    /// against the only RSA key when exactly one is trusted); `iss` equals the issuer; `aud`
    /// contains the audience; `exp` is present and not past; `nbf`, if present, is not in the
    /// future (both with the configured leeway); `sub` is a non-empty string; `scope` / `scp`,
    /// if present, are a space-separated string or an array of strings. Scopes are not checked
    /// here (see [`Verifier::authorize`]).
    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let header = read_header(token)?;
        let claims = match header.alg.as_str() {
            "HS256" if !self.inner.secrets.is_empty() => self.verify_hs256(token)?,
            "RS256" if self.trusts_rsa() => {
                let key = self.rsa_key(header.kid.as_deref()).await?;
                decode(token, &key, &self.inner.rs256)?
            }
            _ => {
                return Err(AuthError::AlgorithmNotAllowed {
                    alg: header.alg,
                    accepted: self.accepted_algorithms(),
                });
            }
        };
        self.caller(&claims)
    }

    /// Reads the bearer token of a request, verifies it and checks that it grants the scope
    /// `access` needs.
    pub async fn authorize(
        &self,
        headers: &HeaderMap,
        access: Access,
    ) -> Result<Caller, AuthError> {
        let token = bearer_token(headers)?;
        let caller = self.verify(token).await?;
        let scope = match access {
            Access::Read => &self.inner.read_scope,
            Access::Write => &self.inner.write_scope,
        };
        if !caller.scopes.iter().any(|granted| granted == scope) {
            return Err(AuthError::InsufficientScope {
                scope: scope.clone(),
            });
        }
        Ok(caller)
    }

    /// Whether every JWKS URL has delivered keys at least once; if one has not, it is fetched
    /// (at most once per 30 s) and, failing that, the reason is returned.
    pub(crate) async fn keys_ready(&self) -> Result<(), String> {
        for remote in &self.inner.remotes {
            if !remote.is_loaded() {
                remote.refresh().await;
            }
            if !remote.is_loaded() {
                return Err(remote.unavailable().to_string());
            }
        }
        Ok(())
    }

    pub(crate) fn has_remote_keys(&self) -> bool {
        !self.inner.remotes.is_empty()
    }

    fn trusts_rsa(&self) -> bool {
        !self.inner.files.is_empty() || !self.inner.remotes.is_empty()
    }

    fn accepted_algorithms(&self) -> String {
        let mut accepted = Vec::new();
        if !self.inner.secrets.is_empty() {
            accepted.push("HS256");
        }
        if self.trusts_rsa() {
            accepted.push("RS256");
        }
        accepted.join(", ")
    }

    /// Tries each configured secret; the first whose signature matches decides.
    fn verify_hs256(&self, token: &str) -> Result<Map<String, Value>, AuthError> {
        for secret in &self.inner.secrets {
            match decode(token, secret, &self.inner.hs256) {
                Err(AuthError::BadSignature) => continue,
                outcome => return outcome,
            }
        }
        Err(AuthError::BadSignature)
    }

    /// The RSA key for `kid`: keys older than ten minutes are fetched again first; an unknown
    /// `kid` (or no key at all) triggers one more fetch before the token is refused.
    async fn rsa_key(&self, kid: Option<&str>) -> Result<DecodingKey, AuthError> {
        for remote in &self.inner.remotes {
            remote.refresh_if_stale().await;
        }
        if let Some(key) = self.find_rsa_key(kid)? {
            return Ok(key);
        }
        for remote in &self.inner.remotes {
            remote.refresh().await;
        }
        if let Some(key) = self.find_rsa_key(kid)? {
            return Ok(key);
        }
        if let Some(remote) = self.inner.remotes.iter().find(|r| !r.is_loaded()) {
            return Err(remote.unavailable());
        }
        match kid {
            Some(kid) => Err(AuthError::UnknownKeyId {
                kid: printable(kid),
            }),
            // Unreachable in practice: every file and every loaded URL holds at least one key.
            None => Err(AuthError::AmbiguousKey { keys: 0 }),
        }
    }

    fn find_rsa_key(&self, kid: Option<&str>) -> Result<Option<DecodingKey>, AuthError> {
        let remote: Vec<_> = self.inner.remotes.iter().map(RemoteJwks::keys).collect();
        let mut all = self
            .inner
            .files
            .iter()
            .chain(remote.iter().flat_map(|keys| keys.iter()));
        match kid {
            Some(kid) => Ok(all
                .find(|key| key.kid.as_deref() == Some(kid))
                .map(|key| key.key.clone())),
            None => {
                let keys: Vec<_> = all.collect();
                match keys.as_slice() {
                    [] => Ok(None),
                    [only] => Ok(Some(only.key.clone())),
                    more => Err(AuthError::AmbiguousKey { keys: more.len() }),
                }
            }
        }
    }

    /// The caller named by verified claims; `iss` must be exactly the issuer (the library also
    /// accepts an array containing it).
    fn caller(&self, claims: &Map<String, Value>) -> Result<Caller, AuthError> {
        if claims.get("iss").and_then(Value::as_str) != Some(self.inner.issuer.as_str()) {
            return Err(AuthError::WrongIssuer {
                expected: self.inner.issuer.clone(),
            });
        }
        let subject = match claims.get("sub") {
            Some(Value::String(sub)) if !sub.trim().is_empty() => sub.clone(),
            Some(Value::String(_)) => {
                return Err(AuthError::InvalidClaim {
                    claim: "sub".to_owned(),
                    reason: "is empty",
                });
            }
            Some(_) => {
                return Err(AuthError::InvalidClaim {
                    claim: "sub".to_owned(),
                    reason: "is not a string",
                });
            }
            None => {
                return Err(AuthError::MissingClaim {
                    claim: "sub".to_owned(),
                });
            }
        };
        Ok(Caller {
            subject,
            scopes: scopes(claims)?,
        })
    }
}

/// The scopes a token grants: the `scope` claim (OAuth 2 / Keycloak: a space-separated string)
/// and the `scp` claim (Azure AD: a space-separated string or an array of strings), merged in
/// order without duplicates. Either claim may take either form.
pub(crate) fn scopes(claims: &Map<String, Value>) -> Result<Vec<String>, AuthError> {
    let mut scopes: Vec<String> = Vec::new();
    let mut add = |scope: &str| {
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    };
    for claim in ["scope", "scp"] {
        let invalid = || AuthError::InvalidClaim {
            claim: claim.to_owned(),
            reason: "is neither a space-separated string nor an array of strings",
        };
        match claims.get(claim) {
            None | Some(Value::Null) => {}
            Some(Value::String(list)) => list.split_whitespace().for_each(&mut add),
            Some(Value::Array(items)) => {
                for item in items {
                    let scope = item.as_str().ok_or_else(invalid)?;
                    scope.split_whitespace().for_each(&mut add);
                }
            }
            Some(_) => return Err(invalid()),
        }
    }
    Ok(scopes)
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case).
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthError::MissingToken);
    };
    if values.next().is_some() {
        return Err(AuthError::NotBearer {
            reason: "the request has more than one Authorization header",
        });
    }
    let value = value.to_str().map_err(|_| AuthError::NotBearer {
        reason: "the header holds characters other than visible ASCII",
    })?;
    let value = value.trim();
    if value.is_empty() {
        return Err(AuthError::MissingToken);
    }
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::NotBearer {
            reason: "expected the scheme `Bearer`",
        });
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::NotBearer {
            reason: "no token follows `Bearer`",
        });
    }
    Ok(token)
}

struct TokenHeader {
    alg: String,
    kid: Option<String>,
}

/// Reads `alg` and `kid` from the token's header, before anything is trusted.
fn read_header(token: &str) -> Result<TokenHeader, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed {
            reason: "a JWT has three dot-separated parts",
        });
    };
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthError::Malformed {
            reason: "the header is not base64url",
        })?;
    let header: RawHeader = serde_json::from_slice(&header).map_err(|_| AuthError::Malformed {
        reason: "the header is not a JSON object",
    })?;
    let alg = match header.alg {
        Some(Value::String(alg)) => printable(&alg),
        _ => {
            return Err(AuthError::Malformed {
                reason: "the header names no algorithm (alg)",
            });
        }
    };
    let kid = match header.kid {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) => Some(kid),
        Some(_) => {
            return Err(AuthError::Malformed {
                reason: "the header's key id (kid) is not a string",
            });
        }
    };
    Ok(TokenHeader { alg, kid })
}

/// Checks the signature, then the registered claims, and returns all claims.
fn decode(
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<Map<String, Value>, AuthError> {
    jsonwebtoken::decode::<Map<String, Value>>(token, key, validation)
        .map(|data| data.claims)
        .map_err(|error| rejection(error, validation))
}

/// The reason for the 401, from the library's error; library texts that could quote parts of
/// the token are replaced by fixed ones.
fn rejection(error: jsonwebtoken::errors::Error, validation: &Validation) -> AuthError {
    let first = |set: &Option<std::collections::HashSet<String>>| {
        set.as_ref()
            .and_then(|set| set.iter().next().cloned())
            .unwrap_or_default()
    };
    match error.into_kind() {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer {
            expected: first(&validation.iss),
        },
        ErrorKind::InvalidAudience => AuthError::WrongAudience {
            expected: first(&validation.aud),
        },
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim { claim },
        ErrorKind::InvalidClaimFormat(claim) => AuthError::InvalidClaim {
            claim,
            reason: "has the wrong type",
        },
        ErrorKind::InvalidToken => AuthError::Malformed {
            reason: "the header or its critical parameters are not supported",
        },
        ErrorKind::Base64(_) | ErrorKind::Utf8(_) => AuthError::Malformed {
            reason: "a part is not base64url",
        },
        ErrorKind::Json(_) => AuthError::Malformed {
            reason: "the header or the claims are not a JSON object",
        },
        // The key does not fit the algorithm (e.g. a malformed RSA key in a JWK set): nothing
        // trusted signed this token.
        _ => AuthError::BadSignature,
    }
}

/// A header value fit to quote in a 401: at most 64 characters, control characters dropped.
fn printable(value: &str) -> String {
    value.chars().filter(|c| !c.is_control()).take(64).collect()
}
