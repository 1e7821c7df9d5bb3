use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use eventline_core::{
    Aggregate, DomainError, DomainEvent, FieldError, FnUpcaster, Rejection, UpcastError,
    UpcasterChain,
};
use serde::{Deserialize, Serialize};

const MAX_USER: usize = 100;
const MAX_MESSAGE: usize = 5_000;
const MAX_COMMENT: usize = 2_000;

/// Where a post is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostStatus {
    /// The stream does not exist yet.
    #[default]
    NotPosted,
    Active,
    Deleted,
}

/// Publish a new post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPost {
    pub author: String,
    pub message: String,
}

/// Change a post's message (its author only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditMessage {
    pub user: String,
    pub message: String,
}

/// Like a post; liking it again changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LikePost {
    pub user: String,
}

/// Comment on a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddComment {
    pub comment_id: String,
    pub user: String,
    pub text: String,
}

/// Change a comment's text (the comment's author only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditComment {
    pub comment_id: String,
    pub user: String,
    pub text: String,
}

/// Remove a comment (the comment's author only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveComment {
    pub comment_id: String,
    pub user: String,
}

/// Delete a post (its author only). A deleted post takes no further commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletePost {
    pub user: String,
}

/// The commands a [`Post`] accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostCommand {
    New(NewPost),
    EditMessage(EditMessage),
    Like(LikePost),
    AddComment(AddComment),
    EditComment(EditComment),
    RemoveComment(RemoveComment),
    Delete(DeletePost),
}

/// What happened to a post. `PostLiked` records the number of likes after it, so read
/// models never count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum PostEvent {
    PostCreated {
        author: String,
        message: String,
    },
    MessageEdited {
        message: String,
    },
    PostLiked {
        user: String,
        likes: u64,
    },
    /// Schema version 2 names the comment's author `author` and its text `text`; version 1
    /// (the seed system's shape) said `username` and `comment`, and is upcast on read.
    CommentAdded {
        comment_id: String,
        author: String,
        text: String,
    },
    CommentEdited {
        comment_id: String,
        text: String,
    },
    CommentRemoved {
        comment_id: String,
    },
    PostDeleted {},
}

impl DomainEvent for PostEvent {
    fn event_type(&self) -> &'static str {
        match self {
            PostEvent::PostCreated { .. } => "PostCreated",
            PostEvent::MessageEdited { .. } => "MessageEdited",
            PostEvent::PostLiked { .. } => "PostLiked",
            PostEvent::CommentAdded { .. } => "CommentAdded",
            PostEvent::CommentEdited { .. } => "CommentEdited",
            PostEvent::CommentRemoved { .. } => "CommentRemoved",
            PostEvent::PostDeleted {} => "PostDeleted",
        }
    }

    fn schema_version(event_type: &str) -> u32 {
        match event_type {
            "CommentAdded" => 2,
            _ => 1,
        }
    }

    fn upcasters() -> &'static UpcasterChain {
        static CHAIN: OnceLock<UpcasterChain> = OnceLock::new();
        CHAIN.get_or_init(|| {
            UpcasterChain::new().with(FnUpcaster {
                event_type: "CommentAdded",
                from_version: 1,
                upcast: comment_added_v1_to_v2,
            })
        })
    }
}

/// `CommentAdded` v1 -> v2: `username` becomes `author`, `comment` becomes `text`.
fn comment_added_v1_to_v2(
    mut payload: serde_json::Value,
) -> Result<serde_json::Value, UpcastError> {
    let invalid = |reason: &str| UpcastError::Invalid {
        event_type: "CommentAdded".into(),
        from: 1,
        reason: reason.into(),
    };
    let object = payload
        .as_object_mut()
        .ok_or_else(|| invalid("the payload is not an object"))?;
    for (old, new) in [("username", "author"), ("comment", "text")] {
        let value = object
            .remove(old)
            .ok_or_else(|| invalid(&format!("no {old}")))?;
        object.insert(new.into(), value);
    }
    Ok(payload)
}

/// Why a post command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    #[error("the post does not exist")]
    NotFound,
    #[error("the post was deleted")]
    Deleted,
    #[error("the post exists already")]
    AlreadyPosted,
    #[error("only the post's author ({author}) may do this")]
    NotTheAuthor { author: String },
    #[error("the post has no comment {comment_id}")]
    CommentNotFound { comment_id: String },
    #[error("the post has a comment {comment_id} already")]
    CommentExists { comment_id: String },
    #[error("only the comment's author ({author}) may do this")]
    NotTheCommentAuthor { author: String },
    #[error("{field} {message}")]
    InvalidField {
        field: &'static str,
        message: &'static str,
    },
}

impl DomainError for PostError {
    fn rejection(&self) -> Rejection {
        match self {
            PostError::NotFound | PostError::Deleted | PostError::CommentNotFound { .. } => {
                Rejection::NotFound
            }
            PostError::AlreadyPosted | PostError::CommentExists { .. } => Rejection::AlreadyExists,
            PostError::InvalidField { field, message } => {
                Rejection::Invalid(vec![FieldError::new(*field, *message)])
            }
            PostError::NotTheAuthor { .. } | PostError::NotTheCommentAuthor { .. } => {
                Rejection::RuleBroken
            }
        }
    }

    fn code(&self) -> &'static str {
        match self {
            PostError::NotFound => "post_not_found",
            PostError::Deleted => "post_deleted",
            PostError::AlreadyPosted => "post_already_posted",
            PostError::NotTheAuthor { .. } => "not_the_author",
            PostError::CommentNotFound { .. } => "comment_not_found",
            PostError::CommentExists { .. } => "comment_exists",
            PostError::NotTheCommentAuthor { .. } => "not_the_comment_author",
            PostError::InvalidField { .. } => "invalid_field",
        }
    }
}

impl PostError {
    /// Whether the refusal is about who asks (an HTTP 403), not about the post.
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            PostError::NotTheAuthor { .. } | PostError::NotTheCommentAuthor { .. }
        )
    }
}

/// A post: the state its events leave behind (serialisable for snapshots; change
/// [`Post::SNAPSHOT_FORMAT`] when this shape changes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Post {
    pub status: PostStatus,
    pub author: String,
    pub message: String,
    /// Who liked it: each user counts once.
    pub liked_by: BTreeSet<String>,
    /// The author of each comment still there, by comment id.
    pub comments: BTreeMap<String, String>,
}

impl Post {
    /// The format of serialised post state in snapshots.
    pub const SNAPSHOT_FORMAT: u32 = 1;

    fn require_active(&self) -> Result<(), PostError> {
        match self.status {
            PostStatus::NotPosted => Err(PostError::NotFound),
            PostStatus::Deleted => Err(PostError::Deleted),
            PostStatus::Active => Ok(()),
        }
    }

    fn require_author(&self, user: &str) -> Result<(), PostError> {
        if user == self.author {
            Ok(())
        } else {
            Err(PostError::NotTheAuthor {
                author: self.author.clone(),
            })
        }
    }

    /// The comment's author, if the comment is there.
    fn comment_author(&self, comment_id: &str) -> Result<&str, PostError> {
        self.comments
            .get(comment_id)
            .map(String::as_str)
            .ok_or_else(|| PostError::CommentNotFound {
                comment_id: comment_id.to_owned(),
            })
    }

    fn require_comment_author(&self, comment_id: &str, user: &str) -> Result<(), PostError> {
        let author = self.comment_author(comment_id)?;
        if author == user {
            Ok(())
        } else {
            Err(PostError::NotTheCommentAuthor {
                author: author.to_owned(),
            })
        }
    }
}

/// A user name: 1 to 100 characters, no surrounding spaces.
fn user(field: &'static str, name: &str) -> Result<(), PostError> {
    if name.trim().is_empty() || name.trim() != name || name.chars().count() > MAX_USER {
        return Err(PostError::InvalidField {
            field,
            message: "must be 1 to 100 characters without surrounding spaces",
        });
    }
    Ok(())
}

/// A text that is not blank and at most `max` characters.
fn text(
    field: &'static str,
    value: &str,
    max: usize,
    message: &'static str,
) -> Result<(), PostError> {
    if value.trim().is_empty() || value.chars().count() > max {
        return Err(PostError::InvalidField { field, message });
    }
    Ok(())
}

fn message(value: &str) -> Result<(), PostError> {
    text(
        "message",
        value,
        MAX_MESSAGE,
        "must be 1 to 5000 characters, not blank",
    )
}

fn comment_text(value: &str) -> Result<(), PostError> {
    text(
        "text",
        value,
        MAX_COMMENT,
        "must be 1 to 2000 characters, not blank",
    )
}

impl Aggregate for Post {
    const STREAM_TYPE: &'static str = "social.post";
    type Command = PostCommand;
    type Event = PostEvent;
    type Error = PostError;

    fn decide(&self, command: &PostCommand) -> Result<Vec<PostEvent>, PostError> {
        if !matches!(command, PostCommand::New(_)) {
            self.require_active()?;
        }
        Ok(match command {
            PostCommand::New(new) => {
                if self.status != PostStatus::NotPosted {
                    return Err(PostError::AlreadyPosted);
                }
                user("author", &new.author)?;
                message(&new.message)?;
                vec![PostEvent::PostCreated {
                    author: new.author.clone(),
                    message: new.message.clone(),
                }]
            }
            PostCommand::EditMessage(edit) => {
                self.require_author(&edit.user)?;
                message(&edit.message)?;
                if edit.message == self.message {
                    return Ok(Vec::new());
                }
                vec![PostEvent::MessageEdited {
                    message: edit.message.clone(),
                }]
            }
            PostCommand::Like(like) => {
                user("user", &like.user)?;
                if self.liked_by.contains(&like.user) {
                    return Ok(Vec::new());
                }
                vec![PostEvent::PostLiked {
                    user: like.user.clone(),
                    likes: self.liked_by.len() as u64 + 1,
                }]
            }
            PostCommand::AddComment(add) => {
                user("user", &add.user)?;
                comment_text(&add.text)?;
                if self.comments.contains_key(&add.comment_id) {
                    return Err(PostError::CommentExists {
                        comment_id: add.comment_id.clone(),
                    });
                }
                vec![PostEvent::CommentAdded {
                    comment_id: add.comment_id.clone(),
                    author: add.user.clone(),
                    text: add.text.clone(),
                }]
            }
            PostCommand::EditComment(edit) => {
                self.require_comment_author(&edit.comment_id, &edit.user)?;
                comment_text(&edit.text)?;
                vec![PostEvent::CommentEdited {
                    comment_id: edit.comment_id.clone(),
                    text: edit.text.clone(),
                }]
            }
            PostCommand::RemoveComment(remove) => {
                self.require_comment_author(&remove.comment_id, &remove.user)?;
                vec![PostEvent::CommentRemoved {
                    comment_id: remove.comment_id.clone(),
                }]
            }
            PostCommand::Delete(delete) => {
                self.require_author(&delete.user)?;
                vec![PostEvent::PostDeleted {}]
            }
        })
    }

    fn apply(&mut self, event: &PostEvent) {
        match event {
            PostEvent::PostCreated { author, message } => {
                self.status = PostStatus::Active;
                self.author.clone_from(author);
                self.message.clone_from(message);
            }
            PostEvent::MessageEdited { message } => self.message.clone_from(message),
            PostEvent::PostLiked { user, .. } => {
                self.liked_by.insert(user.clone());
            }
            PostEvent::CommentAdded {
                comment_id, author, ..
            } => {
                self.comments.insert(comment_id.clone(), author.clone());
            }
            PostEvent::CommentEdited { .. } => {}
            PostEvent::CommentRemoved { comment_id } => {
                self.comments.remove(comment_id);
            }
            PostEvent::PostDeleted {} => self.status = PostStatus::Deleted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventline_core::testing::AggregateTest;

    fn created() -> PostEvent {
        PostEvent::PostCreated {
            author: "ada".into(),
            message: "hello".into(),
        }
    }

    fn comment(id: &str, author: &str) -> PostEvent {
        PostEvent::CommentAdded {
            comment_id: id.into(),
            author: author.into(),
            text: "nice".into(),
        }
    }

    fn edit(user: &str, message: &str) -> PostCommand {
        PostCommand::EditMessage(EditMessage {
            user: user.into(),
            message: message.into(),
        })
    }

    fn like(user: &str) -> PostCommand {
        PostCommand::Like(LikePost { user: user.into() })
    }

    #[test]
    fn a_post_is_created_once_with_valid_fields() {
        AggregateTest::<Post>::given_no_previous_events()
            .when(PostCommand::New(NewPost {
                author: "ada".into(),
                message: "hello".into(),
            }))
            .then_expect_events(vec![created()]);
        AggregateTest::<Post>::given([created()])
            .when(PostCommand::New(NewPost {
                author: "ada".into(),
                message: "again".into(),
            }))
            .then_expect_error(PostError::AlreadyPosted);
        for (author, message, field) in [
            (" ada", "hi", "author"),
            ("", "hi", "author"),
            ("ada", "   ", "message"),
            ("ada", &"x".repeat(5_001)[..], "message"),
        ] {
            let error = Post::default()
                .decide(&PostCommand::New(NewPost {
                    author: author.into(),
                    message: message.into(),
                }))
                .expect_err(field);
            assert!(
                matches!(error, PostError::InvalidField { field: f, .. } if f == field),
                "{error:?}"
            );
        }
    }

    #[test]
    fn only_the_author_edits_the_message_and_an_unchanged_message_is_a_no_op() {
        AggregateTest::<Post>::given([created()])
            .when(edit("ada", "hello, world"))
            .then_expect_events(vec![PostEvent::MessageEdited {
                message: "hello, world".into(),
            }]);
        AggregateTest::<Post>::given([created()])
            .when(edit("bob", "mine now"))
            .then_expect_error(PostError::NotTheAuthor {
                author: "ada".into(),
            });
        AggregateTest::<Post>::given([created()])
            .when(edit("ada", "hello"))
            .then_expect_events(vec![]);
    }

    #[test]
    fn likes_count_each_user_once() {
        AggregateTest::<Post>::given([created()])
            .when(like("bob"))
            .then_expect_events(vec![PostEvent::PostLiked {
                user: "bob".into(),
                likes: 1,
            }]);
        let liked = PostEvent::PostLiked {
            user: "bob".into(),
            likes: 1,
        };
        AggregateTest::<Post>::given([created(), liked.clone()])
            .when(like("bob"))
            .then_expect_events(vec![]);
        AggregateTest::<Post>::given([created(), liked])
            .when(like("cy"))
            .then_expect_events(vec![PostEvent::PostLiked {
                user: "cy".into(),
                likes: 2,
            }]);
    }

    #[test]
    fn comments_are_added_edited_and_removed_by_their_author_only() {
        AggregateTest::<Post>::given([created()])
            .when(PostCommand::AddComment(AddComment {
                comment_id: "c1".into(),
                user: "bob".into(),
                text: "nice".into(),
            }))
            .then_expect_events(vec![comment("c1", "bob")]);
        AggregateTest::<Post>::given([created(), comment("c1", "bob")])
            .when(PostCommand::AddComment(AddComment {
                comment_id: "c1".into(),
                user: "bob".into(),
                text: "twice".into(),
            }))
            .then_expect_error(PostError::CommentExists {
                comment_id: "c1".into(),
            });
        AggregateTest::<Post>::given([created(), comment("c1", "bob")])
            .when(PostCommand::EditComment(EditComment {
                comment_id: "c1".into(),
                user: "bob".into(),
                text: "very nice".into(),
            }))
            .then_expect_events(vec![PostEvent::CommentEdited {
                comment_id: "c1".into(),
                text: "very nice".into(),
            }]);
        // Not even the post's author edits or removes someone else's comment.
        AggregateTest::<Post>::given([created(), comment("c1", "bob")])
            .when(PostCommand::EditComment(EditComment {
                comment_id: "c1".into(),
                user: "ada".into(),
                text: "rewritten".into(),
            }))
            .then_expect_error(PostError::NotTheCommentAuthor {
                author: "bob".into(),
            });
        AggregateTest::<Post>::given([created(), comment("c1", "bob")])
            .when(PostCommand::RemoveComment(RemoveComment {
                comment_id: "c1".into(),
                user: "ada".into(),
            }))
            .then_expect_error(PostError::NotTheCommentAuthor {
                author: "bob".into(),
            });
        AggregateTest::<Post>::given([created(), comment("c1", "bob")])
            .when(PostCommand::RemoveComment(RemoveComment {
                comment_id: "c1".into(),
                user: "bob".into(),
            }))
            .then_expect_events(vec![PostEvent::CommentRemoved {
                comment_id: "c1".into(),
            }]);
        AggregateTest::<Post>::given([
            created(),
            comment("c1", "bob"),
            PostEvent::CommentRemoved {
                comment_id: "c1".into(),
            },
        ])
        .when(PostCommand::EditComment(EditComment {
            comment_id: "c1".into(),
            user: "bob".into(),
            text: "back?".into(),
        }))
        .then_expect_error(PostError::CommentNotFound {
            comment_id: "c1".into(),
        });
    }

    #[test]
    fn only_the_author_deletes_and_a_deleted_post_takes_no_more_commands() {
        AggregateTest::<Post>::given([created()])
            .when(PostCommand::Delete(DeletePost { user: "bob".into() }))
            .then_expect_error(PostError::NotTheAuthor {
                author: "ada".into(),
            });
        AggregateTest::<Post>::given([created()])
            .when(PostCommand::Delete(DeletePost { user: "ada".into() }))
            .then_expect_events(vec![PostEvent::PostDeleted {}]);
        for command in [
            like("bob"),
            edit("ada", "zombie"),
            PostCommand::Delete(DeletePost { user: "ada".into() }),
        ] {
            AggregateTest::<Post>::given([created(), PostEvent::PostDeleted {}])
                .when(command)
                .then_expect_error(PostError::Deleted);
        }
        AggregateTest::<Post>::given_no_previous_events()
            .when(like("bob"))
            .then_expect_error(PostError::NotFound);
    }

    #[test]
    fn comment_added_v1_is_upcast_to_v2_on_read() {
        let v1 = serde_json::json!({"comment_id": "c1", "username": "bob", "comment": "nice"});
        let decoded = PostEvent::decode_parts("CommentAdded", 1, v1).expect("v1 decodes");
        assert_eq!(decoded, comment("c1", "bob"));
        assert_eq!(PostEvent::schema_version("CommentAdded"), 2);
        let broken = serde_json::json!({"comment_id": "c1", "comment": "nice"});
        let error = PostEvent::decode_parts("CommentAdded", 1, broken).expect_err("refused");
        assert!(
            error.to_string().contains("CommentAdded v1: no username"),
            "{error}"
        );
    }

    #[test]
    fn who_asks_is_what_makes_a_refusal_forbidden() {
        assert!(PostError::NotTheAuthor { author: "a".into() }.is_forbidden());
        assert!(PostError::NotTheCommentAuthor { author: "a".into() }.is_forbidden());
        assert!(!PostError::Deleted.is_forbidden());
    }
}
