//! What every operation of an Eventline service can answer besides its own responses, added to
//! the OpenAPI documents once here rather than copied into each route's `#[utoipa::path]`:
//! error answers are `application/problem+json` [`Problem`]s, a body can be malformed (400) or
//! too large (413), and anything can fail on our side (500). Clients are generated from these
//! documents, so they list what the services really answer.

use utoipa::PartialSchema;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Response, ResponseBuilder};

use crate::error::Problem;
use crate::serve::BODY_LIMIT_BYTES;

/// What [`expected_version`](crate::expected_version) reads from `If-Match`: `*`, or a stream
/// version, quoted or not, weak or not.
pub const IF_MATCH_PATTERN: &str = r#"^(\*|(W/)?"?[0-9]{1,19}"?)$"#;

/// The media type of every error answer (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A documented error answer: a [`Problem`] as `application/problem+json`.
pub fn problem_response(description: impl Into<String>) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            Content::new(Some(Ref::from_schema_name("Problem"))),
        )
        .build()
}

/// Every operation of `openapi`, mutably.
pub fn operations_mut(openapi: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    openapi.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
    })
}

/// Adds `status` with `description` to `operation` unless it documents that status already.
pub fn add_problem(operation: &mut Operation, status: u16, description: &str) {
    operation
        .responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| RefOr::T(problem_response(description)));
}

/// Completes the error answers of every operation in `openapi`:
/// - every 4xx/5xx response a route documents as JSON is documented as `application/problem+json`
///   (what [`ApiError`](crate::ApiError) sends);
/// - 400 where a query parameter or a body can be malformed, 413 where a body can exceed the
///   limit [`serve`](crate::serve) enforces, 500 everywhere;
/// - an `If-Match` header parameter carries the pattern [`expected_version`](crate::expected_version)
///   reads (a version that disagrees with the body's `expected_version` is a 400 too);
/// - the `Problem` schema is among the components.
///
/// [`ops_routes`](crate::ops_routes) calls it on the document it serves.
pub fn document_problems(openapi: &mut OpenApi) {
    for operation in operations_mut(openapi) {
        for (status, response) in operation.responses.responses.iter_mut() {
            let is_error = status.starts_with('4') || status.starts_with('5');
            if let (true, RefOr::T(response)) = (is_error, response)
                && let Some(content) = response.content.shift_remove("application/json")
            {
                response.content.insert(PROBLEM_JSON.to_owned(), content);
            }
        }
        for parameter in operation.parameters.iter_mut().flatten() {
            if matches!(parameter.parameter_in, ParameterIn::Header)
                && parameter.name.eq_ignore_ascii_case("if-match")
            {
                parameter.schema = Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(IF_MATCH_PATTERN))
                        .into(),
                );
            }
        }
        let has_query = operation.parameters.iter().flatten().any(|p| {
            matches!(p.parameter_in, ParameterIn::Query)
                || matches!(p.parameter_in, ParameterIn::Header)
        });
        let has_body = operation.request_body.is_some();
        if has_body {
            add_problem(
                operation,
                400,
                "The body is not JSON of the documented shape, or a parameter is malformed",
            );
            add_problem(
                operation,
                413,
                &format!("The body is larger than {BODY_LIMIT_BYTES} bytes"),
            );
        } else if has_query {
            add_problem(operation, 400, "A parameter is malformed");
        }
        add_problem(
            operation,
            500,
            "Something failed on the server; the cause is logged, not sent",
        );
    }
    openapi
        .components
        .get_or_insert_with(Default::default)
        .schemas
        .entry("Problem".to_owned())
        .or_insert_with(Problem::schema);
}

/// Documents the answers of authentication on every operation of `openapi`: 401 (no token, or
/// one that cannot be trusted) and 403 (the token lacks the scope). Called by
/// `eventline-auth` when it protects a document's routes.
pub fn document_auth_problems(openapi: &mut OpenApi, scope: &str) {
    for operation in operations_mut(openapi) {
        add_problem(
            operation,
            401,
            "No bearer token, or one that is expired, malformed or not signed by a trusted key \
             (`WWW-Authenticate` says which)",
        );
        add_problem(
            operation,
            403,
            &format!(
                "The token does not grant the scope `{scope}`, or a rule reserves the action to someone else"
            ),
        );
    }
}
