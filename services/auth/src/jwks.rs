//! RSA keys from JWK sets: parsing, files, and URLs kept fresh on demand.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::{Request, Uri, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse};
use rustls_platform_verifier::BuilderVerifierExt;
use serde::Deserialize;

use crate::error::{AuthError, JwksError};

/// The smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS_LEN: usize = 256;

/// The largest JWK set read from a URL; real ones are a few kilobytes.
const MAX_JWKS_LEN: usize = 1 << 20;

/// Gauge, by JWKS `url`: 1 once keys were loaded from it, 0 before (the `/readyz` check `jwks`).
const JWKS_READY: &str = "eventline_auth_jwks_ready";

/// One RSA public key trusted for RS256.
#[derive(Debug, Clone)]
pub(crate) struct RsaKey {
    pub(crate) kid: Option<String>,
    pub(crate) key: DecodingKey,
}

/// When a JWKS URL is fetched again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RefreshPolicy {
    /// Keys older than this are fetched again before the next RS256 token is checked.
    pub(crate) max_age: Duration,
    /// Fetches (successful or not) are at least this far apart.
    pub(crate) min_interval: Duration,
    /// How long one fetch may take.
    pub(crate) timeout: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            max_age: Duration::from_secs(10 * 60),
            min_interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Deserialize)]
struct RawJwkSet {
    keys: Vec<serde_json::Value>,
}

/// The RSA signing keys of a JWK set. Keys of other types, keys for encryption (`use: enc`),
/// keys for other algorithms and RSA keys under 2048 bits are skipped (a provider's set often
/// holds such keys next to the signing key); a set without any usable key is an error.
pub(crate) fn parse_jwks(document: &[u8]) -> Result<Vec<RsaKey>, JwksError> {
    let set: RawJwkSet = serde_json::from_slice(document).map_err(JwksError::NotAJwkSet)?;
    let total = set.keys.len();
    let keys: Vec<RsaKey> = set.keys.into_iter().filter_map(rsa_signing_key).collect();
    if keys.is_empty() {
        return Err(JwksError::NoUsableKey { total });
    }
    Ok(keys)
}

fn rsa_signing_key(value: serde_json::Value) -> Option<RsaKey> {
    let jwk: Jwk = serde_json::from_value(value).ok()?;
    let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
        return None;
    };
    let for_signing = matches!(
        jwk.common.public_key_use,
        None | Some(PublicKeyUse::Signature)
    );
    let for_rs256 = matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::RS256));
    if !for_signing || !for_rs256 {
        return None;
    }
    let key = DecodingKey::from_rsa_components(&rsa.n, &rsa.e).ok()?;
    let long_enough = match key.kind() {
        jsonwebtoken::DecodingKeyKind::RsaModulusExponent { n, .. } => {
            n.iter().skip_while(|b| **b == 0).count() >= MIN_RSA_MODULUS_LEN
        }
        jsonwebtoken::DecodingKeyKind::SecretOrDer(_) => false,
    };
    if !long_enough {
        tracing::warn!(kid = ?jwk.common.key_id, "skipping an RSA key shorter than 2048 bits");
        return None;
    }
    Some(RsaKey {
        kid: jwk.common.key_id.clone(),
        key,
    })
}

/// Reads a JWK set from disk; an unreadable file or one without a usable key is an error naming
/// the path.
pub(crate) async fn read_jwks_file(path: &Path) -> Result<Vec<RsaKey>, AuthError> {
    let document = tokio::fs::read(path)
        .await
        .map_err(|source| AuthError::JwksFileRead {
            path: path.to_owned(),
            source,
        })?;
    parse_jwks(&document).map_err(|source| AuthError::JwksFileInvalid {
        path: path.to_owned(),
        source,
    })
}

/// The HTTP client for JWKS URLs.
pub(crate) type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, String>;

/// The client for JWKS URLs: http or https, HTTP/1.1, rustls with the ring provider and the
/// platform's certificate verifier (the system's trust store), built here so that no
/// process-wide crypto provider has to be installed. Redirects are not followed.
pub(crate) fn http_client(policy: &RefreshPolicy) -> Result<HttpClient, AuthError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_platform_verifier()?
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(policy.timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// Parses a JWKS URL; only absolute http(s) URLs without credentials are accepted.
pub(crate) fn parse_url(url: &str) -> Result<Uri, AuthError> {
    let invalid = |reason: String| AuthError::InvalidJwksUrl {
        url: url.to_owned(),
        reason,
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: axum::http::uri::InvalidUri| invalid(e.to_string()))?;
    if let Some((_, host)) = uri.authority().and_then(|a| a.as_str().rsplit_once('@')) {
        // They would not be sent (no basic auth here); they are kept out of the error too.
        let path = uri.path_and_query().map_or("", |p| p.as_str());
        return Err(AuthError::InvalidJwksUrl {
            url: format!("{}://***@{host}{path}", uri.scheme_str().unwrap_or("?")),
            reason: "credentials in the URL are not supported".to_owned(),
        });
    }
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(uri),
        Some("http" | "https") => Err(invalid("it names no host".to_owned())),
        Some(other) => Err(invalid(format!(
            "the scheme is {other:?}, not http or https"
        ))),
        None => Err(invalid("it is not an absolute http(s) URL".to_owned())),
    }
}

/// A JWK set served over HTTP, kept in memory and fetched again on demand.
///
/// Guarantees: at most one fetch is in flight (concurrent callers wait for it and share its
/// outcome); fetches are at least `min_interval` apart, so a stream of tokens with made-up key
/// ids cannot hammer the identity provider; a failed fetch keeps the keys already loaded.
#[derive(Debug)]
pub(crate) struct RemoteJwks {
    url: String,
    uri: Uri,
    client: HttpClient,
    policy: RefreshPolicy,
    state: Mutex<RemoteState>,
    /// Held for the duration of a fetch: the single flight.
    flight: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct RemoteState {
    keys: Option<Loaded>,
    /// How many fetches have finished; a waiter that sees it change shares that fetch's outcome.
    attempts: u64,
    last_attempt: Option<Instant>,
    last_error: Option<String>,
}

#[derive(Debug)]
struct Loaded {
    keys: Arc<[RsaKey]>,
    fetched_at: Instant,
}

impl RemoteJwks {
    pub(crate) fn new(url: String, uri: Uri, client: HttpClient, policy: RefreshPolicy) -> Self {
        metrics::gauge!(JWKS_READY, "url" => url.clone()).set(0.0);
        RemoteJwks {
            url,
            uri,
            client,
            policy,
            state: Mutex::new(RemoteState::default()),
            flight: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    fn state(&self) -> MutexGuard<'_, RemoteState> {
        // The state is a handful of plain fields updated in one statement each: a panic
        // elsewhere cannot leave it half-written, so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The keys loaded so far (empty before the first successful fetch).
    pub(crate) fn keys(&self) -> Arc<[RsaKey]> {
        self.state()
            .keys
            .as_ref()
            .map_or_else(|| Arc::from(Vec::new()), |loaded| Arc::clone(&loaded.keys))
    }

    pub(crate) fn is_loaded(&self) -> bool {
        self.state().keys.is_some()
    }

    /// Why the keys are not available, for a 401 detail or a readiness answer.
    pub(crate) fn unavailable(&self) -> AuthError {
        let reason = self
            .state()
            .last_error
            .clone()
            .unwrap_or_else(|| "not fetched yet".to_owned());
        AuthError::KeysUnavailable {
            url: self.url.clone(),
            reason,
        }
    }

    /// Fetches again if no keys are loaded or they are older than `max_age`.
    pub(crate) async fn refresh_if_stale(&self) {
        let stale = match &self.state().keys {
            None => true,
            Some(loaded) => loaded.fetched_at.elapsed() >= self.policy.max_age,
        };
        if stale {
            self.refresh().await;
        }
    }

    /// Fetches the set again, unless a fetch finished while this caller waited for the flight
    /// (its outcome is shared) or the last one is less than `min_interval` ago.
    pub(crate) async fn refresh(&self) {
        let seen = self.state().attempts;
        let _flight = self.flight.lock().await;
        {
            let state = self.state();
            if state.attempts != seen {
                return;
            }
            if state
                .last_attempt
                .is_some_and(|at| at.elapsed() < self.policy.min_interval)
            {
                return;
            }
        }
        let outcome = self.fetch().await;
        let mut state = self.state();
        if outcome.is_ok() {
            // Stays 1 after a failed refresh: the keys already loaded are kept and used.
            metrics::gauge!(JWKS_READY, "url" => self.url.clone()).set(1.0);
        }
        state.attempts += 1;
        state.last_attempt = Some(Instant::now());
        match outcome {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), "loaded the JWKS signing keys");
                state.keys = Some(Loaded {
                    keys: keys.into(),
                    fetched_at: Instant::now(),
                });
                state.last_error = None;
            }
            Err(error) => {
                tracing::warn!(url = %self.url, %error, "cannot fetch the JWKS signing keys");
                state.last_error = Some(error.to_string());
            }
        }
    }

    async fn fetch(&self) -> Result<Vec<RsaKey>, JwksError> {
        tokio::time::timeout(self.policy.timeout, self.fetch_unbounded())
            .await
            .map_err(|_| JwksError::Timeout(self.policy.timeout))?
    }

    async fn fetch_unbounded(&self) -> Result<Vec<RsaKey>, JwksError> {
        let request = Request::get(self.uri.clone())
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                concat!("eventline-auth/", env!("CARGO_PKG_VERSION")),
            )
            .body(String::new())
            .map_err(|error| JwksError::Request(error_chain(&error)))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|error| JwksError::Request(error_chain(&error)))?;
        if !response.status().is_success() {
            return Err(JwksError::Status(response.status()));
        }
        let document = Limited::new(response.into_body(), MAX_JWKS_LEN)
            .collect()
            .await
            .map_err(|error| {
                if error.is::<LengthLimitError>() {
                    JwksError::TooLarge {
                        limit: MAX_JWKS_LEN,
                    }
                } else {
                    JwksError::Request(error_chain(&*error))
                }
            })?
            .to_bytes();
        parse_jwks(&document)
    }
}

/// `a: b: c` for an error and its sources (reqwest's own text omits the cause).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
