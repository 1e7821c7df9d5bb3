use eventline_core::{
    Aggregate, Column, ColumnType, DomainEvent, Envelope, Index, Projection, ProjectionError,
    RowOp, Table, Value,
};

use crate::post::{Post, PostEvent};

/// The `posts` table: one row per post, its current state. A deleted post keeps its row
/// (status `deleted`, message emptied) and its comments' rows; the query service hides both
/// (comments are only read through their post). Post ids are UUIDv7s, so id order is
/// creation order.
pub fn posts_table() -> Table {
    Table {
        name: "posts",
        columns: vec![
            Column::new("id", ColumnType::Text),
            Column::new("author", ColumnType::Text),
            Column::new("message", ColumnType::Text),
            Column::new("likes", ColumnType::BigInt),
            Column::new("status", ColumnType::Text),
            Column::new("created_at", ColumnType::Timestamp),
            Column::new("updated_at", ColumnType::Timestamp),
            Column::new("version", ColumnType::BigInt),
        ],
        primary_key: &["id"],
        indexes: vec![
            Index {
                name: "posts_by_author",
                columns: &["author", "status", "id"],
            },
            Index {
                name: "posts_by_status",
                columns: &["status", "id"],
            },
            Index {
                name: "posts_by_likes",
                columns: &["status", "likes", "id"],
            },
        ],
    }
}

/// The `post_comments` table: the comments still on each post.
pub fn comments_table() -> Table {
    Table {
        name: "post_comments",
        columns: vec![
            Column::new("post_id", ColumnType::Text),
            Column::new("comment_id", ColumnType::Text),
            Column::new("author", ColumnType::Text),
            Column::new("text", ColumnType::Text),
            Column::new("created_at", ColumnType::Timestamp),
            Column::new("updated_at", ColumnType::Timestamp),
        ],
        primary_key: &["post_id", "comment_id"],
        indexes: vec![],
    }
}

/// Keeps `posts` and `post_comments` from the post events.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostsProjection;

impl PostsProjection {
    /// The projection's name (checkpoint, consumer group, replay `--projection`).
    pub const NAME: &'static str = "social-posts";
}

impl Projection for PostsProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> Vec<Table> {
        vec![posts_table(), comments_table()]
    }

    fn stream_types(&self) -> &'static [&'static str] {
        &[Post::STREAM_TYPE]
    }

    fn apply(&self, event: &Envelope) -> Result<Vec<RowOp>, ProjectionError> {
        let decoded =
            PostEvent::decode(event).map_err(|e| ProjectionError::undecodable(event, &e))?;
        let id = || Value::from(event.stream_id.as_str());
        let at = || Value::Timestamp(event.recorded_at);
        let post = |set: Vec<(&'static str, Value)>| RowOp::Update {
            table: "posts",
            key: vec![("id", id())],
            set: set
                .into_iter()
                .chain([
                    ("updated_at", at()),
                    ("version", Value::from(event.version)),
                ])
                .collect(),
        };
        let comment_key =
            |comment_id: String| vec![("post_id", id()), ("comment_id", Value::Text(comment_id))];
        Ok(match decoded {
            PostEvent::PostCreated { author, message } => vec![RowOp::Upsert {
                table: "posts",
                row: vec![
                    ("id", id()),
                    ("author", Value::Text(author)),
                    ("message", Value::Text(message)),
                    ("likes", Value::Int(0)),
                    ("status", Value::from("active")),
                    ("created_at", at()),
                    ("updated_at", at()),
                    ("version", Value::from(event.version)),
                ],
            }],
            PostEvent::MessageEdited { message } => {
                vec![post(vec![("message", Value::Text(message))])]
            }
            PostEvent::PostLiked { likes, .. } => vec![post(vec![("likes", Value::from(likes))])],
            PostEvent::CommentAdded {
                comment_id,
                author,
                text,
            } => vec![
                RowOp::Upsert {
                    table: "post_comments",
                    row: vec![
                        ("post_id", id()),
                        ("comment_id", Value::Text(comment_id)),
                        ("author", Value::Text(author)),
                        ("text", Value::Text(text)),
                        ("created_at", at()),
                        ("updated_at", at()),
                    ],
                },
                post(vec![]),
            ],
            PostEvent::CommentEdited { comment_id, text } => vec![
                RowOp::Update {
                    table: "post_comments",
                    key: comment_key(comment_id),
                    set: vec![("text", Value::Text(text)), ("updated_at", at())],
                },
                post(vec![]),
            ],
            PostEvent::CommentRemoved { comment_id } => vec![
                RowOp::Delete {
                    table: "post_comments",
                    key: comment_key(comment_id),
                },
                post(vec![]),
            ],
            PostEvent::PostDeleted {} => vec![post(vec![
                ("status", Value::from("deleted")),
                ("message", Value::from("")),
            ])],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use eventline_core::{Metadata, Position};
    use serde_json::json;

    fn envelope(
        version: u64,
        event_type: &str,
        schema: u32,
        payload: serde_json::Value,
    ) -> Envelope {
        Envelope {
            position: Position::sequential(version),
            stream_id: "p1".into(),
            stream_type: "social.post".into(),
            version,
            event_type: event_type.into(),
            schema_version: schema,
            payload,
            metadata: Metadata::default(),
            recorded_at: Utc::now(),
        }
    }

    #[test]
    fn a_like_sets_the_count_the_event_carries() {
        let ops = PostsProjection
            .apply(&envelope(
                3,
                "PostLiked",
                1,
                json!({"user": "bob", "likes": 2}),
            ))
            .expect("applies");
        match &ops[..] {
            [RowOp::Update { table, set, .. }] => {
                assert_eq!(*table, "posts");
                assert!(set.contains(&("likes", Value::Int(2))));
                assert!(set.contains(&("version", Value::Int(3))));
            }
            other => panic!("expected one update, got {other:?}"),
        }
    }

    #[test]
    fn a_v1_comment_is_upcast_and_written_and_the_post_version_moves() {
        let ops = PostsProjection
            .apply(&envelope(
                2,
                "CommentAdded",
                1,
                json!({"comment_id": "c1", "username": "bob", "comment": "nice"}),
            ))
            .expect("applies");
        match &ops[..] {
            [RowOp::Upsert { table, row }, RowOp::Update { set, .. }] => {
                assert_eq!(*table, "post_comments");
                assert!(row.contains(&("author", Value::from("bob"))));
                assert!(row.contains(&("text", Value::from("nice"))));
                assert!(set.contains(&("version", Value::Int(2))));
            }
            other => panic!("expected a comment upsert and a post update, got {other:?}"),
        }
    }

    #[test]
    fn a_removed_comment_is_deleted() {
        let ops = PostsProjection
            .apply(&envelope(
                4,
                "CommentRemoved",
                1,
                json!({"comment_id": "c1"}),
            ))
            .expect("applies");
        assert!(matches!(&ops[0], RowOp::Delete { table: "post_comments", key } if key.len() == 2));
    }
}
