//! JWT bearer authentication for Eventline's command and query services.
//!
//! - [`Authentication`]: off, or a [`Verifier`] built from a [`JwtConfig`]; [`Authentication::protect`]
//!   puts a router behind it and [`Authentication::ready_check`] reports the JWKS keys to `/readyz`;
//! - [`Verifier`]: HS256 (shared secrets) and RS256 (JWK sets from files or URLs, refreshed on
//!   demand), issuer, audience, expiry and scopes; refusals say why, in the 401's detail;
//! - [`mint_hs256`] and [`load_or_create_dev_secret`]: development tokens for `eventline token`.

mod config;
mod dev;
mod error;
mod jwks;
mod verify;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use eventline_http::{ApiError, ReadyCheck};
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};

/// The name of the bearer-token security scheme in the OpenAPI documents.
const BEARER_SCHEME: &str = "bearer";

pub use config::{JwtConfig, KeySource, Secret};
pub use dev::{DevToken, load_or_create_dev_secret, mint_hs256};
pub use error::{AuthError, JwksError};
pub use verify::{Access, Verifier};

use jwks::RefreshPolicy;

/// Whether and how the HTTP services authenticate requests.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// Every request passes; handlers see no [`eventline_http::Caller`]. For local development
    /// and for deployments behind a gateway that authenticates already.
    Off,
    /// Every protected request needs a valid bearer token with the route's scope.
    Jwt(Verifier),
}

impl Authentication {
    /// JWT authentication with `config`.
    ///
    /// Fails if the issuer or audience is empty, a scope name is empty or holds whitespace, no
    /// key source is given, an HS256 secret is too short, a JWKS file cannot be read or holds no
    /// usable RSA key (the error names the path), or a JWKS URL is not http(s). Each JWKS URL is
    /// fetched once here; if that fails it is only logged, and fetched again when a token or
    /// the readiness check needs the keys.
    pub async fn jwt(config: JwtConfig) -> Result<Self, AuthError> {
        Self::jwt_with_policy(config, RefreshPolicy::default()).await
    }

    pub(crate) async fn jwt_with_policy(
        config: JwtConfig,
        policy: RefreshPolicy,
    ) -> Result<Self, AuthError> {
        Ok(Authentication::Jwt(Verifier::new(config, policy).await?))
    }

    /// Puts every route of `router` behind authentication, as a route layer: call it after the
    /// routes are added (routes added or merged later are not protected) and before the
    /// router is merged with unprotected ones such as `/healthz`.
    ///
    /// With [`Authentication::Off`] the router is returned unchanged. With
    /// [`Authentication::Jwt`] a request without a bearer token gets a 401 `missing_token`, one
    /// with a token that does not verify a 401 `invalid_token` saying why, one whose token lacks
    /// the scope for `access` a 403 `insufficient_scope`; an accepted request reaches its handler
    /// with the [`eventline_http::Caller`] in its extensions. Unknown paths still answer 404.
    pub fn protect<S>(&self, router: Router<S>, access: Access) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        match self {
            Authentication::Off => router,
            // `route_layer` refuses a router without routes; there is nothing to protect then.
            Authentication::Jwt(_) if !router.has_routes() => router,
            Authentication::Jwt(verifier) => {
                let guard = Guard {
                    verifier: verifier.clone(),
                    access,
                };
                router.route_layer(axum::middleware::from_fn_with_state(guard, require_token))
            }
        }
    }

    /// Records in `openapi` that each of its operations needs a bearer JWT with the scope for
    /// `access` (a `bearer` security scheme, and a security requirement per operation), and
    /// that each can answer 401 and 403 problem documents.
    /// Nothing changes with [`Authentication::Off`].
    pub fn document(&self, openapi: &mut OpenApi, access: Access) {
        let Authentication::Jwt(verifier) = self else {
            return;
        };
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER_SCHEME, SecurityScheme::Http(scheme));
        let scope = verifier.scope(access);
        eventline_http::document_auth_problems(openapi, scope);
        let requirement = SecurityRequirement::new(BEARER_SCHEME, [scope]);
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                operation.security = Some(vec![requirement.clone()]);
            }
        }
    }

    /// The `/readyz` check for JWKS URLs: ready once every URL has delivered keys (a URL that
    /// has not is fetched again, at most once per 30 s). `None` when no JWKS URL is configured,
    /// as secrets and files cannot become unavailable.
    pub fn ready_check(&self) -> Option<(&'static str, ReadyCheck)> {
        let Authentication::Jwt(verifier) = self else {
            return None;
        };
        if !verifier.has_remote_keys() {
            return None;
        }
        let verifier = verifier.clone();
        let check: ReadyCheck = Arc::new(move || {
            let verifier = verifier.clone();
            Box::pin(async move { verifier.keys_ready().await })
                as Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
        });
        Some(("jwks", check))
    }
}

#[derive(Debug, Clone)]
struct Guard {
    verifier: Verifier,
    access: Access,
}

async fn require_token(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    match guard
        .verifier
        .authorize(request.headers(), guard.access)
        .await
    {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(error) => {
            tracing::debug!(reason = %error, "request refused");
            ApiError::from(error).into_response()
        }
    }
}
