//! Authentication settings from the command line: what the services trust, and the
//! development tokens of embedded mode.

use std::path::{Path, PathBuf};
use std::time::Duration;

use eventline_auth::{Authentication, DevToken, JwtConfig, KeySource, Secret};

use crate::cli::{AuthArgs, AuthMode, TokenArgs};
pub use crate::cli::{DEV_AUDIENCE, DEV_ISSUER};
/// The file in embedded mode's data directory that holds the development secret.
pub const DEV_SECRET_FILE: &str = "dev-jwt-secret";
/// The environment variable that may carry an HS256 secret (no flag, so that the secret never
/// shows in a process list).
pub const HS256_SECRET_ENV: &str = "EVENTLINE_JWT_HS256_SECRET";

/// Why the authentication settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthSettingsError {
    #[error(
        "{flag} is required with --auth jwt (the default); or turn authentication off explicitly with --auth none"
    )]
    Missing { flag: &'static str },
    #[error(
        "--auth jwt needs a key to check signatures: --jwt-jwks-url, --jwt-jwks-file, --jwt-hs256-secret-file or {HS256_SECRET_ENV}"
    )]
    NoKey,
    #[error(
        "--data-dir: there is no development secret at {path}; start `eventline embedded` with that data directory first (it creates one), or pass --hs256-secret-file"
    )]
    NoDevSecret { path: PathBuf },
    #[error("{flag}: cannot read {path}: {source}")]
    Unreadable {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{flag}: {source}")]
    Invalid {
        flag: &'static str,
        #[source]
        source: eventline_auth::AuthError,
    },
}

/// An HS256 secret from a file (a mounted Secret); one trailing newline is not part of it.
fn secret_file(flag: &'static str, path: &Path) -> Result<Secret, AuthSettingsError> {
    let mut bytes = std::fs::read(path).map_err(|source| AuthSettingsError::Unreadable {
        flag,
        path: path.to_owned(),
        source,
    })?;
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    Secret::new(bytes).map_err(|source| AuthSettingsError::Invalid { flag, source })
}

fn key_sources(args: &AuthArgs) -> Result<Vec<KeySource>, AuthSettingsError> {
    let mut keys = Vec::new();
    if let Some(url) = &args.jwt_jwks_url {
        keys.push(KeySource::JwksUrl(url.clone()));
    }
    if let Some(path) = &args.jwt_jwks_file {
        keys.push(KeySource::JwksFile(path.clone()));
    }
    if let Some(path) = &args.jwt_hs256_secret_file {
        keys.push(KeySource::Hs256(secret_file(
            "--jwt-hs256-secret-file",
            path,
        )?));
    }
    if let Ok(secret) = std::env::var(HS256_SECRET_ENV)
        && !secret.is_empty()
    {
        let secret =
            Secret::new(secret.into_bytes()).map_err(|source| AuthSettingsError::Invalid {
                flag: HS256_SECRET_ENV,
                source,
            })?;
        keys.push(KeySource::Hs256(secret));
    }
    Ok(keys)
}

/// What the services check, from `args`. For embedded mode (`dev_dir` is its data directory),
/// JWT settings without issuer, audience or any key mean development tokens: HS256 with the
/// secret in `DATA_DIR/dev-jwt-secret` (created on first use), from [`DEV_ISSUER`] for
/// [`DEV_AUDIENCE`].
pub async fn authentication(
    args: &AuthArgs,
    dev_dir: Option<&Path>,
) -> Result<Authentication, AuthSettingsError> {
    if args.auth == AuthMode::None {
        tracing::warn!(
            "authentication is OFF (--auth none): anyone who reaches this service may send commands and queries"
        );
        return Ok(Authentication::Off);
    }
    let mut keys = key_sources(args)?;
    let unset = args.jwt_issuer.is_none() && args.jwt_audience.is_none() && keys.is_empty();
    let (issuer, audience) = match (dev_dir, unset) {
        (Some(dir), true) => {
            let path = dir.join(DEV_SECRET_FILE);
            let secret = eventline_auth::load_or_create_dev_secret(&path).map_err(|source| {
                AuthSettingsError::Invalid {
                    flag: "--data-dir",
                    source,
                }
            })?;
            keys.push(KeySource::Hs256(secret));
            tracing::info!(secret = %path.display(),
                "authentication: development tokens (mint one with `eventline token --subject NAME`)");
            (DEV_ISSUER.to_owned(), DEV_AUDIENCE.to_owned())
        }
        _ => {
            let issuer = args.jwt_issuer.clone().ok_or(AuthSettingsError::Missing {
                flag: "--jwt-issuer (EVENTLINE_JWT_ISSUER)",
            })?;
            let audience = args
                .jwt_audience
                .clone()
                .ok_or(AuthSettingsError::Missing {
                    flag: "--jwt-audience (EVENTLINE_JWT_AUDIENCE)",
                })?;
            if keys.is_empty() {
                return Err(AuthSettingsError::NoKey);
            }
            (issuer, audience)
        }
    };
    let config = JwtConfig {
        issuer,
        audience,
        keys,
        read_scope: args.jwt_read_scope.clone(),
        write_scope: args.jwt_write_scope.clone(),
        leeway: Duration::from_secs(args.jwt_leeway_seconds),
    };
    Authentication::jwt(config)
        .await
        .map_err(|source| AuthSettingsError::Invalid {
            flag: "--jwt-*",
            source,
        })
}

/// `eventline token`: a signed development token, with the secret of `--hs256-secret-file`,
/// else of `EVENTLINE_JWT_HS256_SECRET`, else embedded mode's development secret (which must
/// exist: a new one would sign tokens no service trusts).
pub fn mint(args: &TokenArgs) -> Result<String, AuthSettingsError> {
    let from_env = std::env::var(HS256_SECRET_ENV)
        .ok()
        .filter(|s| !s.is_empty());
    let secret = match (&args.hs256_secret_file, from_env) {
        (Some(path), _) => secret_file("--hs256-secret-file", path)?,
        (None, Some(secret)) => {
            Secret::new(secret.into_bytes()).map_err(|source| AuthSettingsError::Invalid {
                flag: HS256_SECRET_ENV,
                source,
            })?
        }
        (None, None) => {
            let path = dev_secret_path(&args.data_dir);
            if !path.exists() {
                return Err(AuthSettingsError::NoDevSecret { path });
            }
            eventline_auth::load_or_create_dev_secret(&path).map_err(|source| {
                AuthSettingsError::Invalid {
                    flag: "--data-dir",
                    source,
                }
            })?
        }
    };
    let scopes = if args.scopes.is_empty() {
        vec!["eventline:read".to_owned(), "eventline:write".to_owned()]
    } else {
        args.scopes.clone()
    };
    let token = DevToken {
        issuer: args.issuer.clone(),
        audience: args.audience.clone(),
        subject: args.subject.clone(),
        scopes,
        ttl: Duration::from_secs(args.ttl_seconds),
    };
    eventline_auth::mint_hs256(&secret, &token).map_err(|source| AuthSettingsError::Invalid {
        flag: "--subject",
        source,
    })
}

/// Where embedded mode keeps its development secret.
pub fn dev_secret_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DEV_SECRET_FILE)
}
