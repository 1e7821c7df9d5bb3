use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use eventline_core::FieldError;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::serve::BODY_LIMIT_BYTES;

/// serde_json messages end with " at line 1 column 7"; clients want only the first part.
fn without_location(message: String) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message,
    }
}

/// The field a serde error is about: its path, or for a missing field the field's name
/// (serde reports a missing field at the path of the object that lacks it).
fn field_of(path: &str, message: &str) -> String {
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some(name) = rest.split('`').next()
    {
        return if path == "." {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        };
    }
    path.to_owned()
}

fn deserialize_error<E: std::fmt::Display>(
    what: &str,
    error: serde_path_to_error::Error<E>,
) -> ApiError {
    let path = error.path().to_string();
    let message = without_location(error.into_inner().to_string());
    let field = field_of(&path, &message);
    ApiError::bad_request(
        format!("invalid {what}: {field}: {message}"),
        vec![FieldError::new(field, message)],
    )
}

/// A JSON request body. Rejections are 400 problems that name the field and the reason
/// (`amount: invalid type: string "ten", expected i64`). Any content type is accepted, and an
/// empty body reads as `{}`, so optional-only bodies may be left out.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
                    limit_bytes: BODY_LIMIT_BYTES,
                },
                _ => ApiError::bad_request(e.body_text(), Vec::new()),
            })?;
        let body: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        let mut de = serde_json::Deserializer::from_slice(body);
        match serde_path_to_error::deserialize(&mut de) {
            Ok(value) => {
                de.end().map_err(|e| {
                    ApiError::bad_request(
                        format!(
                            "the body is not valid JSON: {}",
                            without_location(e.to_string())
                        ),
                        Vec::new(),
                    )
                })?;
                Ok(ApiJson(value))
            }
            Err(error) if error.inner().is_syntax() || error.inner().is_eof() => {
                Err(ApiError::bad_request(
                    format!(
                        "the body is not valid JSON: {}",
                        without_location(error.into_inner().to_string())
                    ),
                    Vec::new(),
                ))
            }
            Err(error) => Err(deserialize_error("body", error)),
        }
    }
}

/// Query-string parameters; rejections are 400 problems naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| deserialize_error("query parameter", e))
    }
}

/// The expected stream version of a command, from `If-Match` (`"3"`, `W/"3"` or `3`) or from
/// the body's `expected_version`; both given and different is a 400.
pub fn expected_version(
    headers: &HeaderMap,
    in_body: Option<u64>,
) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(in_body);
    };
    let invalid = || {
        ApiError::bad_request(
            "If-Match must be a stream version such as \"3\"",
            vec![FieldError::new(
                "If-Match",
                "expected a quoted stream version",
            )],
        )
    };
    let text = value.to_str().map_err(|_| invalid())?.trim();
    if text == "*" {
        return Ok(in_body);
    }
    let unquoted = text.trim_start_matches("W/").trim_matches('"');
    let from_header: u64 = unquoted.parse().map_err(|_| invalid())?;
    match in_body {
        Some(body) if body != from_header => Err(ApiError::bad_request(
            format!("If-Match says version {from_header} but expected_version says {body}"),
            vec![FieldError::new(
                "expected_version",
                "disagrees with If-Match",
            )],
        )),
        _ => Ok(Some(from_header)),
    }
}

/// The `ETag` header value for a stream version.
pub fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// An opaque paging cursor: the ordering values of the last row of a page.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor(pub Vec<serde_json::Value>);

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::Value::Array(self.0.clone()).to_string())
    }

    /// The 400 for a cursor this service did not hand out.
    pub fn invalid() -> ApiError {
        ApiError::bad_request(
            "invalid query parameter: cursor: not a cursor this service handed out",
            vec![FieldError::new(
                "cursor",
                "not a cursor this service handed out",
            )],
        )
    }

    /// Decodes a cursor this service handed out; anything else is a 400 naming `cursor`.
    pub fn decode(text: &str) -> Result<Self, ApiError> {
        let invalid = Self::invalid;
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        match serde_json::from_slice(&bytes) {
            Ok(serde_json::Value::Array(values)) => Ok(Cursor(values)),
            _ => Err(invalid()),
        }
    }
}

/// The page size asked for in `limit`: `default` when absent, a 400 naming `limit` outside
/// `1..=max`.
pub fn page_limit(limit: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    match limit.unwrap_or(default) {
        n if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(
            format!("invalid query parameter: limit: must be between 1 and {max}"),
            vec![FieldError::new(
                "limit",
                format!("must be between 1 and {max}"),
            )],
        )),
    }
}
