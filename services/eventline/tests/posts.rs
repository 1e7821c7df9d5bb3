//! The social-media posts domain end to end: its rules and queries over HTTP with tokens,
//! racing likes that lose nothing, and its read models on PostgreSQL and MariaDB equal to a
//! replay of the store in the other database.

mod support;

use std::sync::Arc;
use std::time::Duration;

use eventline_core::{CommandHandler, EventStore, Metadata, NewEvent, Position};
use eventline_posts::{
    AddComment, EditComment, EditMessage, LikePost, NewPost, Post, PostCommand, PostsProjection,
    RemoveComment,
};
use eventline_readmodel::ReadModelDb;
use eventline_store_postgres::PostgresEventStore;
use eventline_test_support::{TestDatabase, events_once_visible};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Client, Database, TestApp, dev_auth, eventually};

const RW: &[&str] = &["eventline:read", "eventline:write"];

/// Waits until the query API shows the post at `version`.
async fn post_at(client: &Client, id: &str, version: u64) -> Value {
    eventually(
        &format!("post {id} at version {version}"),
        Duration::from_secs(20),
        || async {
            let answer = client.get(&format!("/posts/{id}")).await;
            (answer.status == StatusCode::OK && answer.body["version"] == version)
                .then_some(answer.body)
        },
    )
    .await
}

async fn new_post(client: &Client, message: &str) -> String {
    let answer = client.post("/posts", json!({ "message": message })).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    answer.body["id"].as_str().expect("id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_likes_and_comments_over_http_with_development_tokens() {
    let app = TestApp::start_with_auth(Database::Sqlite, Database::Sqlite, dev_auth()).await;
    let ada = app.client.with_token(app.token("ada", RW));
    let bob = app.client.with_token(app.token("bob", RW));
    let cy = app.client.with_token(app.token("cy", RW));

    // Who posts is the token's subject; naming someone else is refused.
    let id = new_post(&ada, "hello").await;
    let posed = ada
        .post("/posts", json!({"author": "bob", "message": "impostor"}))
        .await;
    assert_eq!(posed.status, StatusCode::FORBIDDEN, "{:?}", posed.body);
    assert_eq!(posed.body["type"], "urn:eventline:acting_user_mismatch");

    // Only the author edits.
    let edit = |message: &str| json!({ "message": message });
    let refused = bob.post(&format!("/posts/{id}/edit"), edit("mine")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{:?}", refused.body);
    assert_eq!(refused.body["type"], "urn:eventline:not_the_author");
    let edited = ada
        .post(&format!("/posts/{id}/edit"), edit("hello, world"))
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{:?}", edited.body);
    assert_eq!(edited.body["version"], 2);

    // Likes count each user once.
    for client in [&bob, &cy, &bob] {
        let liked = client.post(&format!("/posts/{id}/like"), json!({})).await;
        assert_eq!(liked.status, StatusCode::OK, "{:?}", liked.body);
    }
    let post = post_at(&ada, &id, 4).await;
    assert_eq!(post["likes"], 2);
    assert_eq!(post["message"], "hello, world");
    assert_eq!(post["author"], "ada");

    // Comments: added by anyone, edited and removed by their author only.
    let commented = bob
        .post(&format!("/posts/{id}/comments"), json!({"text": "nice"}))
        .await;
    assert_eq!(
        commented.status,
        StatusCode::CREATED,
        "{:?}",
        commented.body
    );
    let bobs = commented.body["comment_id"]
        .as_str()
        .expect("comment id")
        .to_owned();
    let cys = cy
        .post(&format!("/posts/{id}/comments"), json!({"text": "meh"}))
        .await
        .body["comment_id"]
        .as_str()
        .expect("comment id")
        .to_owned();
    let not_yours = ada
        .post(
            &format!("/posts/{id}/comments/{bobs}/edit"),
            json!({"text": "rewritten"}),
        )
        .await;
    assert_eq!(
        not_yours.status,
        StatusCode::FORBIDDEN,
        "{:?}",
        not_yours.body
    );
    assert_eq!(
        not_yours.body["type"],
        "urn:eventline:not_the_comment_author"
    );
    let fixed = bob
        .post(
            &format!("/posts/{id}/comments/{bobs}/edit"),
            json!({"text": "very nice"}),
        )
        .await;
    assert_eq!(fixed.status, StatusCode::OK, "{:?}", fixed.body);
    let removed = cy
        .post(&format!("/posts/{id}/comments/{cys}/remove"), json!({}))
        .await;
    assert_eq!(removed.status, StatusCode::OK, "{:?}", removed.body);
    let gone = cy
        .post(&format!("/posts/{id}/comments/{cys}/remove"), json!({}))
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{:?}", gone.body);

    // A stale version is a conflict naming the current one.
    let stale = ada
        .post_raw(
            &format!("/posts/{id}/edit"),
            r#"{"message": "late"}"#,
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{:?}", stale.body);
    assert_eq!(stale.body["current_version"], 8);

    let post = post_at(&ada, &id, 8).await;
    let comments = post["comments"].as_array().expect("comments");
    assert_eq!(comments.len(), 1, "{post}");
    assert_eq!(comments[0]["author"], "bob");
    assert_eq!(comments[0]["text"], "very nice");

    // More posts, then the queries: by author, most liked, paged.
    let second = new_post(&ada, "second").await;
    let bobs_post = new_post(&bob, "bob here").await;
    for client in [&ada, &bob, &cy] {
        client
            .post(&format!("/posts/{bobs_post}/like"), json!({}))
            .await;
    }
    post_at(&ada, &bobs_post, 4).await;
    post_at(&ada, &second, 1).await;
    let by_ada = ada.get("/posts?author=ada").await;
    let ids: Vec<&str> = by_ada.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, [second.as_str(), id.as_str()], "newest first");
    let most_liked = ada.get("/posts?sort=most_liked&limit=2").await;
    let items = most_liked.body["items"].as_array().expect("items");
    assert_eq!(items[0]["id"], bobs_post.as_str());
    assert_eq!(items[0]["likes"], 3);
    assert_eq!(items[1]["id"], id.as_str());
    let cursor = most_liked.body["next"].as_str().expect("a next page");
    let rest = ada
        .get(&format!("/posts?sort=most_liked&limit=2&cursor={cursor}"))
        .await;
    assert_eq!(rest.body["items"][0]["id"], second.as_str());
    assert_eq!(rest.body["next"], Value::Null);
    let wrong_cursor = ada
        .get(&format!("/posts?sort=newest&cursor={cursor}"))
        .await;
    assert_eq!(wrong_cursor.status, StatusCode::BAD_REQUEST);
    let bad_sort = ada.get("/posts?sort=oldest").await;
    assert_eq!(bad_sort.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_sort.body["errors"][0]["field"], "sort");

    // Scopes: reading needs the read scope, commands the write scope.
    let reader = app.client.with_token(app.token("dee", &["eventline:read"]));
    assert_eq!(
        reader.get(&format!("/posts/{id}")).await.status,
        StatusCode::OK
    );
    let write = reader.post(&format!("/posts/{id}/like"), json!({})).await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    assert_eq!(write.body["type"], "urn:eventline:insufficient_scope");
    assert_eq!(
        app.client.get("/posts").await.status,
        StatusCode::UNAUTHORIZED
    );

    // Only the author deletes; a deleted post is gone from the queries and takes no commands.
    let refused = bob.post(&format!("/posts/{id}/delete"), json!({})).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let deleted = ada.post(&format!("/posts/{id}/delete"), json!({})).await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    eventually(
        "the post gone from the queries",
        Duration::from_secs(20),
        || async {
            (ada.get(&format!("/posts/{id}")).await.status == StatusCode::NOT_FOUND).then_some(())
        },
    )
    .await;
    let late = bob.post(&format!("/posts/{id}/like"), json!({})).await;
    assert_eq!(late.status, StatusCode::NOT_FOUND);
    assert_eq!(late.body["type"], "urn:eventline:post_deleted");
    let by_ada = ada.get("/posts?author=ada").await;
    assert_eq!(by_ada.body["items"].as_array().map(Vec::len), Some(1));

    // Every event records who acted: the subject of the token.
    let events = app
        .store
        .read_all(Position::START, 1_000)
        .await
        .expect("events");
    let users: Vec<&str> = events
        .iter()
        .filter(|e| e.stream_id == id)
        .map(|e| e.metadata.user.as_deref().expect("a user"))
        .collect();
    assert_eq!(
        users,
        ["ada", "ada", "bob", "cy", "bob", "cy", "bob", "cy", "ada"]
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_likes_on_one_post_lose_nothing() {
    let app = TestApp::start_with(Database::Postgres, Database::Sqlite).await;
    let client = &app.client;
    let id = {
        let answer = client
            .post("/posts", json!({"author": "ada", "message": "like me"}))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        answer.body["id"].as_str().expect("id").to_owned()
    };
    let likes = (0..16).map(|n| {
        let client = client.clone();
        let id = id.clone();
        tokio::spawn(async move {
            client
                .post(
                    &format!("/posts/{id}/like"),
                    json!({"user": format!("fan-{n}")}),
                )
                .await
        })
    });
    let mut versions = Vec::new();
    for like in likes {
        let answer = like.await.expect("like");
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        versions.push(answer.body["version"].as_u64().expect("version"));
    }
    versions.sort_unstable();
    assert_eq!(
        versions,
        (2..=17).collect::<Vec<u64>>(),
        "each like got its own version"
    );
    let post = post_at(client, &id, 17).await;
    assert_eq!(post["likes"], 16);
    // Without a user and without a token, the API says which field is missing.
    let anonymous = client.post(&format!("/posts/{id}/like"), json!({})).await;
    assert_eq!(anonymous.status, StatusCode::BAD_REQUEST);
    assert_eq!(anonymous.body["errors"][0]["field"], "user");
    app.stop().await;
}

/// Posts, likes, comments, edits, removals and a deletion over a dozen posts, through the
/// command handler; one comment stored in the seed system's v1 shape. Returns how many
/// events it stored.
async fn social_history(store: &Arc<dyn EventStore>) -> usize {
    let posts = CommandHandler::<Post>::new(Arc::clone(store));
    let meta = Metadata::default();
    let run = |id: String, command: PostCommand| {
        let posts = posts.clone();
        let meta = meta.clone();
        async move {
            posts
                .execute(&id, None, &meta, &command)
                .await
                .expect("command");
        }
    };
    for n in 0..12 {
        let id = format!("post-{n:02}");
        let author = format!("author-{}", n % 3);
        run(
            id.clone(),
            PostCommand::New(NewPost {
                author: author.clone(),
                message: format!("message {n}"),
            }),
        )
        .await;
        for fan in 0..n % 5 {
            run(
                id.clone(),
                PostCommand::Like(LikePost {
                    user: format!("fan-{fan}"),
                }),
            )
            .await;
        }
        for c in 0..n % 4 {
            run(
                id.clone(),
                PostCommand::AddComment(AddComment {
                    comment_id: format!("c{c}"),
                    user: format!("fan-{c}"),
                    text: format!("comment {c} on {n}"),
                }),
            )
            .await;
        }
        if n % 4 >= 2 {
            run(
                id.clone(),
                PostCommand::EditComment(EditComment {
                    comment_id: "c1".into(),
                    user: "fan-1".into(),
                    text: "edited".into(),
                }),
            )
            .await;
            run(
                id.clone(),
                PostCommand::RemoveComment(RemoveComment {
                    comment_id: "c0".into(),
                    user: "fan-0".into(),
                }),
            )
            .await;
        }
        if n % 3 == 0 {
            run(
                id.clone(),
                PostCommand::EditMessage(EditMessage {
                    user: author.clone(),
                    message: format!("message {n}, edited"),
                }),
            )
            .await;
        }
    }
    run(
        "post-05".into(),
        PostCommand::Delete(eventline_posts::DeletePost {
            user: "author-2".into(),
        }),
    )
    .await;
    // A comment as the seed system stored it (v1: username, comment).
    let version = store
        .read_stream("post-07", 0, 1_000)
        .await
        .expect("stream")
        .len() as u64;
    store
        .append(
            "post-07",
            "social.post",
            version,
            vec![NewEvent {
                event_type: "CommentAdded".into(),
                schema_version: 1,
                payload: json!({"comment_id": "seed-1", "username": "old-timer", "comment": "from v1"}),
                metadata: Metadata::default(),
            }],
        )
        .await
        .expect("append a v1 comment");
    store
        .list_streams(None, 1_000)
        .await
        .expect("streams")
        .iter()
        .map(|s| s.version as usize)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_models_on_postgres_and_mariadb_equal_a_replay_in_the_other() {
    let store_db = TestDatabase::postgres().await;
    let store: Arc<dyn EventStore> = Arc::new(
        PostgresEventStore::connect(&store_db.url, 4)
            .await
            .expect("store"),
    );
    let events = social_history(&store).await;
    events_once_visible(store.as_ref(), events).await;
    let (pg, maria) = (TestDatabase::postgres().await, TestDatabase::mysql().await);
    let (pg, maria) = (
        ReadModelDb::connect(&pg.url)
            .await
            .map(|db| (db, pg))
            .expect("pg"),
        ReadModelDb::connect(&maria.url)
            .await
            .map(|db| (db, maria))
            .expect("mariadb"),
    );
    let projection = Arc::new(PostsProjection);
    support::project(&store, &pg.0, projection.clone()).await;
    support::project(&store, &maria.0, projection.clone()).await;
    let rows = support::assert_same_model(projection.as_ref(), &pg.0, &maria.0).await;
    let seeded = rows
        .iter()
        .find(|r| r.get("comment_id") == Some(&json!("seed-1")))
        .expect("the v1 comment is in the read model");
    assert_eq!(seeded["author"], "old-timer");
    assert_eq!(seeded["text"], "from v1");
    let deleted = rows
        .iter()
        .find(|r| r.get("id") == Some(&json!("post-05")))
        .expect("post-05");
    assert_eq!(deleted["status"], "deleted");
    let liked = rows
        .iter()
        .find(|r| r.get("id") == Some(&json!("post-04")))
        .expect("post-04");
    assert_eq!(liked["likes"], 4);

    // A replay of the store into a fresh database of the other kind equals each live model.
    let (fresh_pg, fresh_maria) = (TestDatabase::postgres().await, TestDatabase::mysql().await);
    let fresh_pg_db = ReadModelDb::connect(&fresh_pg.url).await.expect("pg");
    let fresh_maria_db = ReadModelDb::connect(&fresh_maria.url)
        .await
        .expect("mariadb");
    let applied = support::replay(&store, &fresh_maria_db, projection.clone(), &pg.0).await;
    assert_eq!(applied, events as u64);
    support::replay(&store, &fresh_pg_db, projection.clone(), &maria.0).await;
    support::assert_same_model(projection.as_ref(), &fresh_maria_db, &pg.0).await;
    support::assert_same_model(projection.as_ref(), &fresh_pg_db, &maria.0).await;
}
