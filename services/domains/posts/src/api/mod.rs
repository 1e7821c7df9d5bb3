//! The posts' HTTP routes: commands on the command service, reads on the query service.
//!
//! Who acts: with authentication on, the token's subject (a `user`/`author` in the body must
//! then be the same); with authentication off, the body's `user`/`author`, which is then
//! required. That is also what the author-only rules check.

mod commands;
mod queries;

pub use commands::{
    CommandState, CommentAccepted, CommentRequest, NewPostRequest, PostMessageRequest, UserRequest,
    command_routes,
};
pub use queries::{
    CommentPage, CommentView, PostDetail, PostPage, PostView, QueryState, query_routes,
};
