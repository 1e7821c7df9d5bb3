//! The command line says which flag is wrong, and never prints credentials.

use std::process::Command;

fn eventline(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_eventline"))
        .args(args)
        .env_remove("EVENTLINE_STORE_URL")
        .env_remove("EVENTLINE_READ_MODEL_URL")
        .env_remove("EVENTLINE_KAFKA_BROKERS")
        .output()
        .expect("run eventline");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_missing_flag_is_named() {
    let (ok, stderr) = eventline(&["command-api"]);
    assert!(!ok);
    assert!(stderr.contains("--store"), "{stderr}");
}

#[test]
fn a_bad_address_is_named() {
    let (ok, stderr) = eventline(&["embedded", "--command-addr", "localhost"]);
    assert!(!ok);
    assert!(stderr.contains("--command-addr"), "{stderr}");
}

#[test]
fn an_unsupported_store_names_the_flag_and_hides_the_password() {
    let (ok, stderr) = eventline(&[
        "command-api",
        "--store",
        "oracle://admin:hunter2@db:1521/events",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("--store: unsupported scheme \"oracle\""),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn help_lists_the_subcommands() {
    let output = Command::new(env!("CARGO_BIN_EXE_eventline"))
        .arg("--help")
        .output()
        .expect("run");
    let help = String::from_utf8_lossy(&output.stdout);
    for sub in [
        "embedded",
        "command-api",
        "query-api",
        "project",
        "relay",
        "replay",
    ] {
        assert!(help.contains(sub), "{help}");
    }
}

#[test]
fn the_relay_names_a_missing_broker_flag() {
    let (ok, stderr) = eventline(&[
        "relay",
        "--store",
        "sqlite:///tmp/none.sqlite",
        "--checkpoint-db",
        "sqlite:///tmp/none-relay.sqlite",
    ]);
    assert!(!ok);
    assert!(stderr.contains("--kafka-brokers"), "{stderr}");
}
