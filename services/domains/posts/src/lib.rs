//! The social-media posts domain, from the systems Eventline replaces: posts, likes and
//! comments.
//!
//! - [`Post`]: the aggregate, with commands [`NewPost`], [`EditMessage`], [`LikePost`],
//!   [`AddComment`], [`EditComment`], [`RemoveComment`], [`DeletePost`] and events
//!   [`PostEvent`]. Only a post's author edits or deletes it; only a comment's author edits
//!   or removes it.
//! - [`PostsProjection`]: the `posts` and `post_comments` read models;
//! - [`api`]: the command and query HTTP routes.
//!
//! `CommentAdded` is at schema version 2: version 1 (the shape the seed system stored, with
//! `username` and `comment`) is upcast on read.

pub mod api;
mod post;
mod projection;

pub use post::{
    AddComment, DeletePost, EditComment, EditMessage, LikePost, NewPost, Post, PostCommand,
    PostError, PostEvent, PostStatus, RemoveComment,
};
pub use projection::{PostsProjection, comments_table, posts_table};

/// The posts domain as an Eventline application runs it: the [`Post`] aggregate behind the
/// `/posts` command routes (snapshotted), the post queries, and the [`PostsProjection`].
pub fn domain() -> eventline_domain::Domain {
    eventline_domain::Domain::new("posts")
        .describe("Social-media posts: post, edit, like, comment, delete")
        .snapshotted_aggregate::<Post>(Post::SNAPSHOT_FORMAT, api::command_routes)
        .queries(|db| api::query_routes(api::QueryState::new(db)))
        .projection(PostsProjection)
}
