//! Kill the real process during a burst of commands, start it again: every acknowledged
//! command's events are in the store, and the read model catches up to exactly the store.

mod support;

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use eventline_core::EventStore;
use eventline_store_sqlite::SqliteEventStore;
use reqwest::StatusCode;
use serde_json::json;
use support::{Client, account_at_version, eventually};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts `eventline embedded` on `data_dir` and waits until both APIs are ready.
async fn start(data_dir: &Path) -> (Child, Client) {
    let (command, query) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_eventline"))
        .args(["embedded", "--data-dir"])
        .arg(data_dir)
        .args(["--command-addr", &format!("127.0.0.1:{command}")])
        .args(["--query-addr", &format!("127.0.0.1:{query}")])
        .env("EVENTLINE_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn eventline");
    let client = Client::new(
        format!("http://127.0.0.1:{command}"),
        format!("http://127.0.0.1:{query}"),
    );
    eventually("eventline to be ready", Duration::from_secs(30), || async {
        let command_ready = client
            .http
            .get(format!("{}/readyz", client.command))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK);
        let query_ready = client
            .http
            .get(format!("{}/readyz", client.query))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK);
        (command_ready && query_ready).then_some(())
    })
    .await;
    // Embedded mode checks development tokens by default; `eventline token` mints one with
    // the secret in the data directory, which outlives restarts.
    let token = std::process::Command::new(env!("CARGO_BIN_EXE_eventline"))
        .args(["token", "--subject", "restart-test", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run eventline token");
    assert!(token.status.success(), "{token:?}");
    let token = String::from_utf8(token.stdout).expect("utf-8");
    (child, client.with_token(token.trim()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_during_a_burst_nothing_acknowledged_is_lost() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let (mut child, client) = start(data_dir.path()).await;
    let id = client.open_account("Crash", 0).await;

    // Eight clients deposit distinct amounts as fast as they can; each remembers what the
    // service acknowledged (amount -> version).
    let acknowledged = Arc::new(Mutex::new(HashMap::<i64, u64>::new()));
    let clients: Vec<_> = (0..8i64)
        .map(|c| {
            let client = client.clone();
            let id = id.clone();
            let acknowledged = Arc::clone(&acknowledged);
            tokio::spawn(async move {
                for n in 0..10_000i64 {
                    let amount = c * 100_000 + n + 1;
                    let url = format!("{}/accounts/{id}/deposits", client.command);
                    let sent = client
                        .authorized(client.http.post(url))
                        .json(&json!({ "amount": amount }))
                        .send()
                        .await;
                    let Ok(response) = sent else { return };
                    if response.status() != StatusCode::OK {
                        continue;
                    }
                    let Ok(body) = response.json::<serde_json::Value>().await else {
                        return;
                    };
                    let version = body["version"].as_u64().expect("version");
                    acknowledged.lock().await.insert(amount, version);
                }
            })
        })
        .collect();
    eventually(
        "a burst of acknowledged deposits",
        Duration::from_secs(30),
        || async { (acknowledged.lock().await.len() >= 150).then_some(()) },
    )
    .await;
    child.start_kill().expect("SIGKILL");
    child.wait().await.expect("killed");
    for task in clients {
        task.await.expect("client task");
    }
    let acknowledged = acknowledged.lock().await.clone();

    // Every acknowledged deposit is in the store, at the version the client was told.
    let store = SqliteEventStore::open(data_dir.path().join("events.sqlite"))
        .await
        .expect("open store");
    let events = store.read_stream(&id, 0, 100_000).await.expect("read");
    let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
    assert_eq!(
        versions,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "no gaps"
    );
    for (amount, version) in &acknowledged {
        let event = &events[(*version - 1) as usize];
        assert_eq!(
            event.payload["amount"], *amount,
            "acknowledged deposit at version {version}"
        );
    }
    store.close().await;

    // Start again: the read model catches up to exactly the store, row by row.
    let (mut child, client) = start(data_dir.path()).await;
    let last = events.len() as u64;
    let account = account_at_version(&client, &id, last).await;
    let expected_balance: i64 = events
        .iter()
        .map(|e| {
            e.payload
                .get("amount")
                .and_then(|a| a.as_i64())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(account["balance"], expected_balance);
    let mut history = Vec::new();
    let mut path = format!("/accounts/{id}/history?limit=500");
    loop {
        let page = client.get(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        history.extend(
            page.body["items"]
                .as_array()
                .expect("items")
                .iter()
                .cloned(),
        );
        match page.body["next"].as_str() {
            Some(next) => path = format!("/accounts/{id}/history?limit=500&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(
        history.len(),
        events.len(),
        "one history row per event, none twice"
    );
    for (row, event) in history.iter().zip(&events) {
        assert_eq!(row["version"], event.version);
        assert_eq!(row["position"], event.position.event);
        assert_eq!(row["event_type"], event.event_type.as_str());
        let opening = event.payload.get("opening_balance");
        let amount = event.payload.get("amount").or(opening);
        let balance = event.payload.get("balance").or(opening);
        assert_eq!(Some(&row["amount"]), amount);
        assert_eq!(Some(&row["balance"]), balance);
    }

    child.start_kill().expect("kill");
    child.wait().await.expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_gracefully_and_data_survives_a_restart() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let (child, client) = start(data_dir.path()).await;
    let id = client.open_account("Graceful", 42).await;
    account_at_version(&client, &id, 1).await;

    let pid = child.id().expect("pid");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let mut child = child;
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits within 20 s of SIGTERM")
        .expect("wait");
    assert!(exit.success(), "graceful exit, got {exit}");

    let (mut child, client) = start(data_dir.path()).await;
    let account = client.get(&format!("/accounts/{id}")).await;
    assert_eq!(account.status, StatusCode::OK);
    assert_eq!(account.body["balance"], 42);
    let deposited = client
        .post(&format!("/accounts/{id}/deposits"), json!({ "amount": 8 }))
        .await;
    assert_eq!(deposited.body["version"], 2);
    let account = account_at_version(&client, &id, 2).await;
    assert_eq!(account["balance"], 50);
    child.start_kill().expect("kill");
    child.wait().await.expect("stopped");
}
