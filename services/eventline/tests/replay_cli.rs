//! `eventline replay` as users run it: JSON progress lines, a SIGKILL at any point then the
//! same command again ends identical to an uninterrupted replay, and clear refusals;
//! a finished replay makes way for the next request.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventline_bank::read_model_rows;
use eventline_core::{EventStore, Position};
use eventline_readmodel::ReadModelDb;
use eventline_store_sqlite::SqliteEventStore;
use eventline_test_support::TestDatabase;
use tokio::process::Command;

mod support;

/// 400 accounts of 25 events each, appended 25 at a time.
async fn store(path: &std::path::Path) -> Arc<dyn EventStore> {
    support::bank_store(path, 400, 24).await
}

fn replay(store: &str, target: &str, request: &str) -> Command {
    replay_of("bank-accounts", store, target, request)
}

fn replay_of(projection: &str, store: &str, target: &str, request: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_eventline"));
    command
        .args(["replay", "--store", store, "--target", target])
        .args(["--projection", projection, "--request-id", request])
        .args([
            "--batch-size",
            "200",
            "--progress",
            "json",
            "--progress-seconds",
            "1",
        ])
        .env("EVENTLINE_LOG", "warn")
        .kill_on_drop(true);
    command
}

async fn finished(mut command: Command) -> (bool, String, String) {
    let output = command.output().await.expect("run eventline replay");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_started_again_the_replay_ends_identical() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store_path = dir.path().join("events.sqlite");
    let store = store(&store_path).await;
    let store_url = format!("sqlite://{}", store_path.display());
    let database = TestDatabase::postgres().await;
    let target = ReadModelDb::connect(&database.url).await.expect("target");
    // The replay builds its own version of the tables, with its own checkpoint.
    let version = format!("bank-accounts__{}", eventline_readmodel::generation("r1"));

    let mut first = replay(&store_url, &database.url, "r1")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let at = target.checkpoint(&version).await.unwrap_or(Position::START);
        if at.event > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the replay made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.start_kill().expect("SIGKILL");
    first.wait().await.expect("wait");
    let at_kill = target.checkpoint(&version).await.expect("checkpoint");
    assert!(at_kill.event < 10_000, "killed part-way ({at_kill})");
    assert!(
        read_model_rows(&target).await.expect("rows").is_empty(),
        "nothing is cut over before the replay has finished"
    );

    // Another request may not start while this one is unfinished.
    let (ok, _, stderr) = finished(replay(&store_url, &database.url, "other")).await;
    assert!(!ok);
    assert!(stderr.contains("by replay \"r1\" (running)"), "{stderr}");

    let (ok, stdout, stderr) = finished(replay(&store_url, &database.url, "r1")).await;
    assert!(ok, "{stderr}");
    let last: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a progress line")).expect("json");
    assert_eq!(last["done"], true, "{stdout}");
    assert_eq!(last["total"], 10_000);
    assert_eq!(last["percent"], 100.0);
    assert_eq!(last["request_id"], "r1");

    let reference_dir = tempfile::tempdir().expect("temp dir");
    let reference_url = format!(
        "sqlite://{}",
        reference_dir.path().join("r.sqlite").display()
    );
    let (ok, _, stderr) = finished(replay(&store_url, &reference_url, "r2")).await;
    assert!(ok, "{stderr}");
    let reference = ReadModelDb::connect(&reference_url)
        .await
        .expect("reference");
    let got = read_model_rows(&target).await.expect("rows");
    let want = read_model_rows(&reference).await.expect("rows");
    assert_eq!(got.len(), 10_400);
    assert!(
        got == want,
        "the resumed replay differs from an uninterrupted one"
    );

    // Verified against the resumed model, and against a model that differs.
    let verified_url = format!(
        "sqlite://{}",
        reference_dir.path().join("v.sqlite").display()
    );
    let mut verified = replay(&store_url, &verified_url, "r3");
    verified.args(["--verify-against", &database.url]);
    let (ok, _, stderr) = finished(verified).await;
    assert!(ok, "{stderr}");
    let empty_path = reference_dir.path().join("empty.sqlite");
    let empty_url = format!("sqlite://{}", empty_path.display());
    ReadModelDb::open_sqlite(&empty_path)
        .await
        .expect("empty")
        .ensure_schema(&eventline_bank::AccountsProjection)
        .await
        .expect("empty model");
    let mut differs = replay(&store_url, &verified_url, "r4");
    differs.args(["--verify-against", &empty_url]);
    let (ok, _, stderr) = finished(differs).await;
    assert!(!ok);
    assert!(
        stderr.contains("not cut over, because the new version differs from the reference"),
        "{stderr}"
    );
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_the_problem() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store_path = dir.path().join("events.sqlite");
    let _store = SqliteEventStore::open(&store_path).await.expect("store");
    let store_url = format!("sqlite://{}", store_path.display());
    let target_url = format!("sqlite://{}", dir.path().join("t.sqlite").display());

    let (ok, _, stderr) = finished(replay_of("nope", &store_url, &target_url, "r1")).await;
    assert!(!ok);
    assert!(
        stderr.contains(
            "--projection: this image has no projection named \"nope\" \
             (it has: bank-accounts, social-posts, shop-orders)"
        ),
        "{stderr}"
    );

    let (ok, _, stderr) = finished(replay(&store_url, &target_url, "r1")).await;
    assert!(ok, "{stderr}");
    // Once it has finished, the next request builds a new version and cuts over to it.
    let (ok, _, stderr) = finished(replay(&store_url, &target_url, "other")).await;
    assert!(ok, "{stderr}");

    // The last cut-over can be rolled back; where none happened, rollback says so.
    let rollback = |target: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_eventline"));
        command
            .args(["rollback", "--store", &store_url, "--target", target])
            .args(["--projection", "bank-accounts"])
            .env("EVENTLINE_LOG", "warn");
        command
    };
    let (ok, _, stderr) = finished(rollback(&target_url)).await;
    assert!(ok, "{stderr}");
    let fresh = format!("sqlite://{}", dir.path().join("fresh.sqlite").display());
    let (ok, _, stderr) = finished(rollback(&fresh)).await;
    assert!(!ok);
    assert!(
        stderr.contains("no previous version to roll back to"),
        "{stderr}"
    );
}
