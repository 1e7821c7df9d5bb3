use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use eventline_core::{CommandError, CommandHandler, DomainError, FieldError};
use eventline_http::{
    ApiError, ApiJson, Caller, CommandAccepted, Problem, accepted, command_metadata,
    expected_version, run_command,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::post::{
    AddComment, DeletePost, EditComment, EditMessage, LikePost, NewPost, Post, PostCommand,
    PostError, RemoveComment,
};

/// What the command routes need: a command handler for posts over the event store (with
/// snapshots, if the service takes them).
pub type CommandState = CommandHandler<Post>;

/// Body of `POST /posts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPostRequest {
    /// The author (1 to 100 characters without surrounding spaces). With authentication on,
    /// the token's subject (and may be left out; anyone else is a 403); with it off, required.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100, pattern = r"^\S([\s\S]*\S)?$")]
    pub author: Option<String>,
    /// 1 to 5000 characters, not blank.
    #[schema(min_length = 1, max_length = 5000, pattern = r"\S")]
    pub message: String,
}

/// Body of `POST /posts/{id}/edit`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessageRequest {
    /// The new message, 1 to 5000 characters, not blank.
    #[schema(min_length = 1, max_length = 5000, pattern = r"\S")]
    pub message: String,
    /// Who acts (see `author` of `POST /posts`).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100, pattern = r"^\S([\s\S]*\S)?$")]
    pub user: Option<String>,
    /// Fail with 409 unless the post is at this version (same as `If-Match`).
    #[serde(default)]
    pub expected_version: Option<u64>,
}

/// Body of `POST /posts/{id}/comments` and `POST /posts/{id}/comments/{comment_id}/edit`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentRequest {
    /// 1 to 2000 characters, not blank.
    #[schema(min_length = 1, max_length = 2000, pattern = r"\S")]
    pub text: String,
    /// Who acts (see `author` of `POST /posts`).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100, pattern = r"^\S([\s\S]*\S)?$")]
    pub user: Option<String>,
    #[serde(default)]
    pub expected_version: Option<u64>,
}

/// Body of a like, a comment's removal or a post's deletion (may be empty when
/// authentication is on).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRequest {
    /// Who acts (see `author` of `POST /posts`).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100, pattern = r"^\S([\s\S]*\S)?$")]
    pub user: Option<String>,
    #[serde(default)]
    pub expected_version: Option<u64>,
}

/// The answer to an added comment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CommentAccepted {
    /// The post id.
    pub id: String,
    /// The new comment's id.
    pub comment_id: String,
    /// The post's version after the command.
    pub version: u64,
    pub position: Option<u64>,
}

/// The command routes of the posts domain.
pub fn command_routes(state: CommandState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(new_post))
        .routes(routes!(edit_message))
        .routes(routes!(like_post))
        .routes(routes!(add_comment))
        .routes(routes!(edit_comment))
        .routes(routes!(remove_comment))
        .routes(routes!(delete_post))
        .with_state(state)
}

/// The acting user: the token's subject when authenticated (a user named in the body must be
/// the same), else the user named in the body, which is then required.
fn acting_user(
    caller: Option<&Caller>,
    in_body: Option<String>,
    field: &'static str,
) -> Result<String, ApiError> {
    match (caller, in_body) {
        (Some(caller), None) => Ok(caller.subject.clone()),
        (Some(caller), Some(named)) if named == caller.subject => Ok(named),
        (Some(caller), Some(named)) => Err(ApiError::forbidden(
            "acting_user_mismatch",
            format!(
                "{field} is {named:?} but the token is for {:?}; leave {field} out or send the same",
                caller.subject
            ),
        )),
        (None, Some(named)) => Ok(named),
        (None, None) => Err(ApiError::bad_request(
            format!("invalid body: {field}: required when authentication is off"),
            vec![FieldError::new(
                field,
                "required when authentication is off",
            )],
        )),
    }
}

/// A post command's failure as an HTTP error: the author-only rules are a 403.
fn post_error(error: CommandError<PostError>) -> ApiError {
    match error {
        CommandError::Rejected(rejected) if rejected.is_forbidden() => {
            ApiError::forbidden(rejected.code(), rejected.to_string())
        }
        other => ApiError::from(other),
    }
}

fn uuid_in_path(id: &str, what: &str) -> Result<String, ApiError> {
    Uuid::parse_str(id)
        .map(|id| id.to_string())
        .map_err(|_| ApiError::not_found(format!("there is no {what} {id}")))
}

/// One request to a post: who sent it, which post, which version it expects.
struct OnPost<'a> {
    headers: &'a HeaderMap,
    caller: Option<&'a Caller>,
    post_id: &'a str,
    expected_in_body: Option<u64>,
}

impl<'a> OnPost<'a> {
    fn new(
        headers: &'a HeaderMap,
        caller: Option<&'a Caller>,
        post_id: &'a str,
        expected_in_body: Option<u64>,
    ) -> Self {
        Self {
            headers,
            caller,
            post_id,
            expected_in_body,
        }
    }

    async fn run(
        &self,
        state: &CommandState,
        name: &'static str,
        command: PostCommand,
    ) -> Result<CommandAccepted, ApiError> {
        let id = uuid_in_path(self.post_id, "post")?;
        let expected = expected_version(self.headers, self.expected_in_body)?;
        let metadata = command_metadata(self.headers, self.caller);
        let done = run_command(state, name, &id, expected, &metadata, &command, post_error).await?;
        Ok(CommandAccepted::new(&done))
    }

    async fn answer(
        &self,
        state: &CommandState,
        name: &'static str,
        command: PostCommand,
    ) -> Result<Response, ApiError> {
        let body = self.run(state, name, command).await?;
        Ok(accepted(StatusCode::OK, body.version, None, body))
    }
}

/// Publish a post.
#[utoipa::path(post, path = "/posts", tag = "posts", request_body = NewPostRequest,
    responses(
        (status = 201, description = "Posted; `Location` names the post", body = CommandAccepted),
        (status = 400, description = "Malformed body", body = Problem),
        (status = 403, description = "`author` is not the token's subject", body = Problem),
        (status = 422, description = "Invalid field", body = Problem),
    ))]
async fn new_post(
    State(state): State<CommandState>,
    headers: HeaderMap,
    caller: Option<Caller>,
    ApiJson(request): ApiJson<NewPostRequest>,
) -> Result<Response, ApiError> {
    let author = acting_user(caller.as_ref(), request.author, "author")?;
    let id = Uuid::now_v7().to_string();
    let command = PostCommand::New(NewPost {
        author,
        message: request.message,
    });
    let metadata = command_metadata(&headers, caller.as_ref());
    let done = run_command(
        &state,
        "new_post",
        &id,
        Some(0),
        &metadata,
        &command,
        post_error,
    )
    .await?;
    let body = CommandAccepted::new(&done);
    let location = format!("/posts/{id}");
    Ok(accepted(
        StatusCode::CREATED,
        body.version,
        Some(location),
        body,
    ))
}

/// Edit a post's message (its author only).
#[utoipa::path(post, path = "/posts/{id}/edit", tag = "posts", request_body = PostMessageRequest,
    params(("id" = String, Path, description = "Post id"),
           ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")),
    responses(
        (status = 200, description = "Edited (or unchanged)", body = CommandAccepted),
        (status = 400, description = "Malformed body", body = Problem),
        (status = 403, description = "Not the post's author", body = Problem),
        (status = 404, description = "No such post, or deleted", body = Problem),
        (status = 409, description = "Stale expected version", body = Problem),
        (status = 422, description = "Invalid message", body = Problem),
    ))]
async fn edit_message(
    State(state): State<CommandState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    caller: Option<Caller>,
    ApiJson(request): ApiJson<PostMessageRequest>,
) -> Result<Response, ApiError> {
    let user = acting_user(caller.as_ref(), request.user, "user")?;
    let on = OnPost::new(&headers, caller.as_ref(), &id, request.expected_version);
    let command = PostCommand::EditMessage(EditMessage {
        user,
        message: request.message,
    });
    on.answer(&state, "edit_message", command).await
}

/// Like a post; a second like by the same user changes nothing.
#[utoipa::path(post, path = "/posts/{id}/like", tag = "posts", request_body = UserRequest,
    params(("id" = String, Path, description = "Post id"),
           ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")),
    responses(
        (status = 200, description = "Liked (or liked already)", body = CommandAccepted),
        (status = 400, description = "Malformed body", body = Problem),
        (status = 404, description = "No such post, or deleted", body = Problem),
        (status = 409, description = "Stale expected version", body = Problem),
    ))]
async fn like_post(
    State(state): State<CommandState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    caller: Option<Caller>,
    ApiJson(request): ApiJson<UserRequest>,
) -> Result<Response, ApiError> {
    let user = acting_user(caller.as_ref(), request.user, "user")?;
    let on = OnPost::new(&headers, caller.as_ref(), &id, request.expected_version);
    on.answer(&state, "like_post", PostCommand::Like(LikePost { user }))
        .await
}

/// Comment on a post.
#[utoipa::path(post, path = "/posts/{id}/comments", tag = "posts", request_body = CommentRequest,
    params(("id" = String, Path, description = "Post id"),
           ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")),
    responses(
        (status = 201, description = "Commented", body = CommentAccepted),
        (status = 400, description = "Malformed body", body = Problem),
        (status = 404, description = "No such post, or deleted", body = Problem),
        (status = 409, description = "Stale expected version", body = Problem),
        (status = 422, description = "Invalid text", body = Problem),
    ))]
async fn add_comment(
    State(state): State<CommandState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    caller: Option<Caller>,
    ApiJson(request): ApiJson<CommentRequest>,
) -> Result<Response, ApiError> {
    let user = acting_user(caller.as_ref(), request.user, "user")?;
    let on = OnPost::new(&headers, caller.as_ref(), &id, request.expected_version);
    let comment_id = Uuid::now_v7().to_string();
    let command = PostCommand::AddComment(AddComment {
        comment_id: comment_id.clone(),
        user,
        text: request.text,
    });
    let done = on.run(&state, "add_comment", command).await?;
    let location = format!("/posts/{}", done.id);
    let body = CommentAccepted {
        id: done.id,
        comment_id,
        version: done.version,
        position: done.position,
    };
    Ok(accepted(
        StatusCode::CREATED,
        body.version,
        Some(location),
        body,
    ))
}

/// Edit a comment (its author only).
#[utoipa::path(post, path = "/posts/{id}/comments/{comment_id}/edit", tag = "posts", request_body = CommentRequest,
    params(("id" = String, Path, description = "Post id"),
           ("comment_id" = String, Path, description = "Comment id"),
           ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")),
    responses(
        (status = 200, description = "Edited", body = CommandAccepted),
        (status = 400, description = "Malformed body", body = Problem),
        (status = 403, description = "Not the comment's author", body = Problem),
        (status = 404, description = "No such post or comment", body = Problem),
        (status = 409, description = "Stale expected version", body = Problem),
        (status = 422, description = "Invalid text", body = Problem),
    ))]
async fn edit_comment(
    State(state): State<CommandState>,
    Path((id, comment_id)): Path<(String, String)>,
    headers: HeaderMap,
    caller: Option<Caller>,
    ApiJson(request): ApiJson<CommentRequest>,
) -> Result<Response, ApiError> {
    let user = acting_user(caller.as_ref(), request.user, "user")?;
    let comment_id = uuid_in_path(&comment_id, "comment")?;
    let on = OnPost::new(&headers, caller.as_ref(), &id, request.expected_version);
    let command = PostCommand::EditComment(EditComment {
        comment_id,
        user,
        text: request.text,
    });
    on.answer(&state, "edit_comment", command).await
}

/// Remove a comment (its author only).
#[utoipa::path(post, path = "/posts/{id}/comments/{comment_id}/remove", tag = "posts", request_body = UserRequest,
    params(("id" = String, Path, description = "Post id"),
           ("comment_id" = String, Path, description = "Comment id"),
           ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")),
    responses(
        (status = 200, description = "Removed", body = CommandAccepted),
        (status = 403, description = "Not the comment's author", body = Problem),
        (status = 404, description = "No such post or comment", body = Problem),
        (status = 409, description = "Stale expected version", body = Problem),
    ))]
async fn remove_comment(
    State(state): State<CommandState>,
    Path((id, comment_id)): Path<(String, String)>,
    headers: HeaderMap,
    caller: Option<Caller>,
    ApiJson(request): ApiJson<UserRequest>,
) -> Result<Response, ApiError> {
    let user = acting_user(caller.as_ref(), request.user, "user")?;
    let comment_id = uuid_in_path(&comment_id, "comment")?;
    let on = OnPost::new(&headers, caller.as_ref(), &id, request.expected_version);
    let command = PostCommand::RemoveComment(RemoveComment { comment_id, user });
    on.answer(&state, "remove_comment", command).await
}

/// Delete a post (its author only).
#[utoipa::path(post, path = "/posts/{id}/delete", tag = "posts", request_body = UserRequest,
    params(("id" = String, Path, description = "Post id"),
           ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")),
    responses(
        (status = 200, description = "Deleted", body = CommandAccepted),
        (status = 403, description = "Not the post's author", body = Problem),
        (status = 404, description = "No such post, or deleted already", body = Problem),
        (status = 409, description = "Stale expected version", body = Problem),
    ))]
async fn delete_post(
    State(state): State<CommandState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    caller: Option<Caller>,
    ApiJson(request): ApiJson<UserRequest>,
) -> Result<Response, ApiError> {
    let user = acting_user(caller.as_ref(), request.user, "user")?;
    let on = OnPost::new(&headers, caller.as_ref(), &id, request.expected_version);
    on.answer(
        &state,
        "delete_post",
        PostCommand::Delete(DeletePost { user }),
    )
    .await
}
