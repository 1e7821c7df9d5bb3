use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use eventline_core::{Table, Value};
use eventline_http::{
    ApiError, ApiQuery, Paging, Problem, etag, fetch_page, keyset_bound, page_limit, read_error,
    row_into,
};
use eventline_readmodel::{ReadModelDb, Select};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::projection::{comments_table, posts_table};

const MAX_LIMIT: u32 = 500;
/// Comments shown with a post; the rest are paged from `/posts/{id}/comments`.
const COMMENTS_WITH_POST: u32 = 20;

/// What the query routes need: the read-model database and the tables they read.
#[derive(Debug, Clone)]
pub struct QueryState {
    db: ReadModelDb,
    posts: Arc<Table>,
    comments: Arc<Table>,
}

impl QueryState {
    pub fn new(db: ReadModelDb) -> Self {
        Self {
            db,
            posts: Arc::new(posts_table()),
            comments: Arc::new(comments_table()),
        }
    }
}

/// One post as the read model sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PostView {
    pub id: String,
    pub author: String,
    pub message: String,
    /// How many users like it.
    pub likes: u64,
    pub created_at: String,
    pub updated_at: String,
    /// The version of the last event applied to this row.
    pub version: u64,
}

/// One comment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CommentView {
    pub comment_id: String,
    pub author: String,
    pub text: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A post with its first comments, oldest first; `comments_next` pages on from
/// `/posts/{id}/comments?cursor=`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PostDetail {
    #[serde(flatten)]
    pub post: PostView,
    pub comments: Vec<CommentView>,
    pub comments_next: Option<String>,
}

/// A page of posts; pass `next` as `cursor` for the following page.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PostPage {
    pub items: Vec<PostView>,
    pub next: Option<String>,
}

/// A page of comments, oldest first; pass `next` as `cursor` for the following page.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CommentPage {
    pub items: Vec<CommentView>,
    pub next: Option<String>,
}

/// How `GET /posts` orders posts.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum Sort {
    /// Newest first (by id: post ids are time-ordered UUIDv7s).
    #[default]
    Newest,
    /// Most likes first (ties: newest first).
    MostLiked,
}

/// Filters, order and paging of `GET /posts`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListPosts {
    /// Only this author's posts (exact match).
    author: Option<String>,
    /// `newest` (the default) or `most_liked`.
    #[param(inline)]
    sort: Option<Sort>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next` value of the previous page (of the same sort), as handed out (opaque, base64url); any
    /// other value is a 400 naming `cursor`.
    #[param(min_length = 1, pattern = r"^[A-Za-z0-9_-]+$")]
    cursor: Option<String>,
}

/// The query routes of the posts domain.
pub fn query_routes(state: QueryState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_posts))
        .routes(routes!(get_post))
        .routes(routes!(post_comments))
        .with_state(state)
}

/// List posts, newest or most liked first, optionally by author. Deleted posts are not shown.
#[utoipa::path(get, path = "/posts", tag = "posts", params(ListPosts),
    responses(
        (status = 200, description = "A page of posts", body = PostPage),
        (status = 400, description = "Bad parameter", body = Problem),
    ))]
async fn list_posts(
    State(state): State<QueryState>,
    ApiQuery(query): ApiQuery<ListPosts>,
) -> Result<Json<PostPage>, ApiError> {
    let order_by: &'static [&'static str] = match query.sort.unwrap_or_default() {
        Sort::Newest => &["id"],
        Sort::MostLiked => &["likes", "id"],
    };
    let mut filters = vec![("status", Value::from("active"))];
    if let Some(author) = query.author {
        filters.push(("author", Value::Text(author)));
    }
    let select = Select {
        table: &state.posts,
        filters,
        order_by,
        after: keyset_bound(query.cursor.as_deref(), &state.posts, order_by)?,
        descending: true,
        limit: page_limit(query.limit, 50, MAX_LIMIT)?,
    };
    let (items, next) = fetch_page(&state.db, select).await?;
    Ok(Json(PostPage { items, next }))
}

/// The post, if it exists and is not deleted.
async fn find_post(state: &QueryState, id: &str) -> Result<PostView, ApiError> {
    let row = state
        .db
        .get(&state.posts, vec![("id", Value::from(id))])
        .await
        .map_err(read_error)?
        .filter(|row| row.get("status").and_then(|s| s.as_str()) == Some("active"))
        .ok_or_else(|| ApiError::not_found(format!("there is no post {id}")))?;
    row_into(row)
}

fn comments_select<'a>(
    state: &'a QueryState,
    id: &str,
    cursor: Option<&str>,
    limit: u32,
) -> Result<Select<'a>, ApiError> {
    const ORDER: &[&str] = &["comment_id"];
    Ok(Select {
        table: &state.comments,
        filters: vec![("post_id", Value::from(id))],
        order_by: ORDER,
        after: keyset_bound(cursor, &state.comments, ORDER)?,
        descending: false,
        limit,
    })
}

/// One post with its likes and first comments; `ETag` carries its version.
#[utoipa::path(get, path = "/posts/{id}", tag = "posts",
    params(("id" = String, Path, description = "Post id")),
    responses(
        (status = 200, description = "The post", body = PostDetail),
        (status = 404, description = "No such post, or deleted", body = Problem),
    ))]
async fn get_post(
    State(state): State<QueryState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let post = find_post(&state, &id).await?;
    let select = comments_select(&state, &id, None, COMMENTS_WITH_POST)?;
    let (comments, comments_next) = fetch_page(&state.db, select).await?;
    let version = post.version;
    let detail = PostDetail {
        post,
        comments,
        comments_next,
    };
    Ok(([(header::ETAG, etag(version))], Json(detail)).into_response())
}

/// A post's comments, oldest first.
#[utoipa::path(get, path = "/posts/{id}/comments", tag = "posts",
    params(("id" = String, Path, description = "Post id"), Paging),
    responses(
        (status = 200, description = "A page of comments", body = CommentPage),
        (status = 400, description = "Bad parameter", body = Problem),
        (status = 404, description = "No such post, or deleted", body = Problem),
    ))]
async fn post_comments(
    State(state): State<QueryState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<Paging>,
) -> Result<Json<CommentPage>, ApiError> {
    find_post(&state, &id).await?;
    let limit = page_limit(query.limit, 50, MAX_LIMIT)?;
    let select = comments_select(&state, &id, query.cursor.as_deref(), limit)?;
    let (items, next) = fetch_page(&state.db, select).await?;
    Ok(Json(CommentPage { items, next }))
}
