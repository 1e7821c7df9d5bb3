use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eventline_core::{CommandError, DomainError, FieldError, Rejection};
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem document, the body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type, e.g. `urn:eventline:insufficient_funds`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    /// What is wrong, for a person.
    pub detail: String,
    /// The invalid fields, for 400 and 422 answers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<FieldError>,
    /// The stream's current version, for 409 answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u64>,
}

/// Every error an Eventline HTTP handler can return.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request could not be read: bad JSON, wrong types, missing fields, bad parameters.
    #[error("{detail}")]
    BadRequest {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// No valid credentials: the bearer token is missing, malformed, expired, for another
    /// audience or issuer, or not signed by a trusted key. Answered with `WWW-Authenticate`.
    #[error("{detail}")]
    Unauthorized {
        /// `missing_token` or `invalid_token`.
        code: &'static str,
        detail: String,
    },
    /// Authenticated, but not allowed: the token lacks the route's scope, or a rule reserves
    /// the action to someone else (only a post's author may edit it).
    #[error("{detail}")]
    Forbidden {
        code: &'static str,
        detail: String,
        /// The scope the route needs, when that is what is missing.
        required_scope: Option<String>,
    },
    /// No such route, stream or row. `code` is the domain's (`post_deleted`) or `not_found`.
    #[error("{detail}")]
    NotFound { code: &'static str, detail: String },
    /// The path exists, but not with this method (commands are POST, queries GET).
    #[error("{detail}")]
    MethodNotAllowed { detail: String },
    /// A stale expected version, or something that already exists.
    #[error("{detail}")]
    Conflict {
        code: &'static str,
        detail: String,
        current_version: Option<u64>,
    },
    /// The body is larger than the service accepts.
    #[error("the body is larger than the limit of {limit_bytes} bytes")]
    PayloadTooLarge { limit_bytes: usize },
    /// Readable, but invalid values or a broken business rule.
    #[error("{detail}")]
    Unprocessable {
        code: &'static str,
        detail: String,
        errors: Vec<FieldError>,
    },
    /// Something failed on our side; the cause is logged, never sent to the client.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The HTTP status of each error: the only place that decides it.
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn bad_request(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        ApiError::BadRequest {
            detail: detail.into(),
            errors,
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        ApiError::NotFound {
            code: "not_found",
            detail: detail.into(),
        }
    }

    /// The 401 for a request without a bearer token.
    pub fn missing_token(detail: impl Into<String>) -> Self {
        ApiError::Unauthorized {
            code: "missing_token",
            detail: detail.into(),
        }
    }

    /// The 401 for a bearer token that cannot be trusted; `detail` says why.
    pub fn invalid_token(detail: impl Into<String>) -> Self {
        ApiError::Unauthorized {
            code: "invalid_token",
            detail: detail.into(),
        }
    }

    /// The 403 for a token without the scope a route needs.
    pub fn insufficient_scope(scope: &str) -> Self {
        ApiError::Forbidden {
            code: "insufficient_scope",
            detail: format!("this route needs the scope {scope:?}, which the token does not grant"),
            required_scope: Some(scope.to_owned()),
        }
    }

    /// The 403 for an action a rule reserves to someone else.
    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Forbidden {
            code,
            detail: detail.into(),
            required_scope: None,
        }
    }

    /// Logs `error` with its whole chain and returns the opaque 500.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %ErrorChain(error), "internal error");
        ApiError::Internal
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::Unauthorized { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::NotFound { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unprocessable { code, .. } => code,
            ApiError::Internal => "internal",
        }
    }

    pub fn problem(&self) -> Problem {
        let status = self.status_code();
        let (errors, current_version) = match self {
            ApiError::BadRequest { errors, .. } | ApiError::Unprocessable { errors, .. } => {
                (errors.clone(), None)
            }
            ApiError::Conflict {
                current_version, ..
            } => (Vec::new(), *current_version),
            _ => (Vec::new(), None),
        };
        Problem {
            problem_type: format!("urn:eventline:{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            errors,
            current_version,
        }
    }
}

impl ApiError {
    /// The RFC 6750 challenge of a 401, or of a 403 for a missing scope.
    fn challenge(&self) -> Option<String> {
        let quoted = |text: &str| text.replace(['"', '\\'], "'");
        match self {
            ApiError::Unauthorized {
                code: "missing_token",
                ..
            } => Some(r#"Bearer realm="eventline""#.to_owned()),
            ApiError::Unauthorized { detail, .. } => Some(format!(
                r#"Bearer realm="eventline", error="invalid_token", error_description="{}""#,
                quoted(detail)
            )),
            ApiError::Forbidden {
                required_scope: Some(scope),
                ..
            } => Some(format!(
                r#"Bearer realm="eventline", error="insufficient_scope", scope="{}""#,
                quoted(scope)
            )),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let challenge = self
            .challenge()
            .and_then(|c| HeaderValue::from_str(&c).ok());
        let mut response = (self.status_code(), axum::Json(self.problem())).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(challenge) = challenge {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

impl<E: DomainError> From<CommandError<E>> for ApiError {
    fn from(error: CommandError<E>) -> Self {
        match error {
            CommandError::Rejected(rejection) => {
                let detail = rejection.to_string();
                let code = rejection.code();
                match rejection.rejection() {
                    Rejection::NotFound => ApiError::NotFound { code, detail },
                    Rejection::AlreadyExists => ApiError::Conflict {
                        code,
                        detail,
                        current_version: None,
                    },
                    Rejection::Invalid(errors) => ApiError::Unprocessable {
                        code,
                        detail,
                        errors,
                    },
                    Rejection::RuleBroken => ApiError::Unprocessable {
                        code,
                        detail,
                        errors: Vec::new(),
                    },
                }
            }
            CommandError::Conflict {
                stream_id,
                expected,
                actual,
            } => ApiError::Conflict {
                code: "version_conflict",
                detail: format!(
                    "{stream_id} is at version {actual}, not the expected {expected}; \
                     reload it and retry"
                ),
                current_version: Some(actual),
            },
            other => ApiError::internal(&other),
        }
    }
}

/// Displays an error followed by its sources: `a: b: c`.
pub(crate) struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}
