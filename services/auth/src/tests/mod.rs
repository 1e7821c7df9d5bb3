//! Fixtures shared by the tests: RSA keys, tokens, configurations and a JWKS server.

mod dev;
mod http;
mod jwks;
mod verify;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::traits::PublicKeyParts;
use serde_json::{Map, Value, json};

use crate::{JwtConfig, KeySource, Secret};

pub(crate) const ISSUER: &str = "https://id.example.test/realms/eventline";
pub(crate) const AUDIENCE: &str = "eventline";
pub(crate) const READ: &str = "eventline:read";
pub(crate) const WRITE: &str = "eventline:write";

/// An RSA key pair as a test signs with it and a JWKS publishes it.
pub(crate) struct RsaPair {
    pub(crate) kid: &'static str,
    pub(crate) signing: EncodingKey,
    /// The public key as PKCS#1 DER: what an attacker would use as an HMAC secret.
    pub(crate) public_der: Vec<u8>,
    pub(crate) jwk: Value,
}

fn generate(kid: &'static str) -> RsaPair {
    let private = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).expect("generate an RSA key");
    let public = private.to_public_key();
    let der = private.to_pkcs1_der().expect("encode the private key");
    RsaPair {
        kid,
        signing: EncodingKey::from_rsa_der(der.as_bytes()),
        public_der: public
            .to_pkcs1_der()
            .expect("encode the public key")
            .as_bytes()
            .to_vec(),
        jwk: json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(public.n_bytes()),
            "e": URL_SAFE_NO_PAD.encode(public.e_bytes()),
        }),
    }
}

/// The first test key, generated once per test binary.
pub(crate) fn key_a() -> &'static RsaPair {
    static KEY: OnceLock<RsaPair> = OnceLock::new();
    KEY.get_or_init(|| generate("key-a"))
}

/// A second key: the "rotated to" key, or the wrong one.
pub(crate) fn key_b() -> &'static RsaPair {
    static KEY: OnceLock<RsaPair> = OnceLock::new();
    KEY.get_or_init(|| generate("key-b"))
}

pub(crate) fn jwks(keys: &[&RsaPair]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
}

pub(crate) fn now() -> i64 {
    i64::try_from(jsonwebtoken::get_current_timestamp()).expect("a plausible clock")
}

/// Claims every check accepts; tests change one thing at a time.
pub(crate) fn claims() -> Map<String, Value> {
    let Value::Object(claims) = json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "scope": format!("openid {READ} {WRITE}"),
        "iat": now(),
        "exp": now() + 300,
    }) else {
        unreachable!("a JSON object literal")
    };
    claims
}

pub(crate) fn with(
    mut claims: Map<String, Value>,
    claim: &str,
    value: Value,
) -> Map<String, Value> {
    claims.insert(claim.to_owned(), value);
    claims
}

pub(crate) fn without(mut claims: Map<String, Value>, claim: &str) -> Map<String, Value> {
    claims.remove(claim);
    claims
}

pub(crate) fn secret() -> Secret {
    Secret::new(b"a development secret of 32 bytes or more".to_vec()).expect("long enough")
}

pub(crate) fn other_secret() -> Secret {
    Secret::new(b"another secret, also 32 bytes long or more".to_vec()).expect("long enough")
}

pub(crate) fn hs256(claims: &Map<String, Value>, secret: &Secret) -> String {
    let key = EncodingKey::from_secret(secret.expose()).expect("a secret");
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).expect("sign HS256")
}

pub(crate) fn rs256(claims: &Map<String, Value>, key: &RsaPair, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key.signing).expect("sign RS256")
}

/// A token with any header, signed (or not) by hand: for `alg: none` and the like.
pub(crate) fn raw_token(header: &Value, claims: &Map<String, Value>, signature: &[u8]) -> String {
    let part = |value: &[u8]| URL_SAFE_NO_PAD.encode(value);
    format!(
        "{}.{}.{}",
        part(header.to_string().as_bytes()),
        part(Value::Object(claims.clone()).to_string().as_bytes()),
        part(signature)
    )
}

pub(crate) fn config(keys: Vec<KeySource>) -> JwtConfig {
    JwtConfig {
        issuer: ISSUER.to_owned(),
        audience: AUDIENCE.to_owned(),
        keys,
        read_scope: READ.to_owned(),
        write_scope: WRITE.to_owned(),
        leeway: Duration::from_secs(0),
    }
}

/// A JWKS endpoint on an ephemeral port: serves whatever set it currently holds (or an error
/// status), counts requests, and can hold answers back until the test opens the gate.
#[derive(Clone)]
pub(crate) struct JwksServer {
    pub(crate) addr: SocketAddr,
    document: Arc<Mutex<Result<Value, StatusCode>>>,
    hits: Arc<AtomicUsize>,
    gate: tokio::sync::watch::Sender<bool>,
}

impl JwksServer {
    pub(crate) async fn start(document: Result<Value, StatusCode>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an ephemeral port");
        let (gate, _) = tokio::sync::watch::channel(true);
        let server = JwksServer {
            addr: listener.local_addr().expect("local address"),
            document: Arc::new(Mutex::new(document)),
            hits: Arc::new(AtomicUsize::new(0)),
            gate,
        };
        let app = Router::new()
            .route("/jwks", get(serve_jwks))
            .with_state(server.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    pub(crate) fn serve(&self, document: Result<Value, StatusCode>) {
        *self.document.lock().expect("not poisoned") = document;
    }

    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub(crate) fn hold_answers(&self, hold: bool) {
        self.gate.send_replace(!hold);
    }
}

async fn serve_jwks(State(server): State<JwksServer>) -> Response {
    server.hits.fetch_add(1, Ordering::SeqCst);
    let mut open = server.gate.subscribe();
    // Fails only if the sender is gone, which the server state itself keeps alive.
    let _ = open.wait_for(|open| *open).await;
    let document = server.document.lock().expect("not poisoned").clone();
    match document {
        Ok(document) => axum::Json(document).into_response(),
        Err(status) => status.into_response(),
    }
}

/// Polls `condition` every 10 ms until it holds, failing the test after 10 s.
pub(crate) async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A local address nothing listens on.
pub(crate) async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral port");
    let addr = listener.local_addr().expect("local address");
    drop(listener);
    format!("http://{addr}/jwks")
}
