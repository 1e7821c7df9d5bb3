//! The command line says which flag is wrong, and never prints credentials.

use std::process::Command;

fn eventline(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_eventline"))
        .args(args)
        .env_remove("EVENTLINE_STORE_URL")
        .env_remove("EVENTLINE_READ_MODEL_URL")
        .env_remove("EVENTLINE_KAFKA_BROKERS")
        .env_remove("EVENTLINE_AUTH")
        .env_remove("EVENTLINE_JWT_ISSUER")
        .env_remove("EVENTLINE_JWT_AUDIENCE")
        .env_remove("EVENTLINE_JWT_HS256_SECRET")
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
        "rollback",
        "processor",
        "token",
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

#[test]
fn authentication_is_on_unless_turned_off_and_a_missing_setting_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", dir.path().join("events.sqlite").display());
    let base = ["command-api", "--store", &store, "--listen", "127.0.0.1:0"];
    let (ok, stderr) = eventline(&base);
    assert!(!ok);
    assert!(stderr.contains("--jwt-issuer"), "{stderr}");
    assert!(stderr.contains("--auth none"), "{stderr}");
    let (ok, stderr) = eventline(
        &[
            &base[..],
            &["--jwt-issuer", "https://idp", "--jwt-audience", "eventline"],
        ]
        .concat(),
    );
    assert!(!ok);
    assert!(
        stderr.contains("--jwt-jwks-url"),
        "a missing key is named: {stderr}"
    );
    let short = dir.path().join("short-secret");
    std::fs::write(&short, "tooshort").expect("write");
    let short = short.display().to_string();
    let (ok, stderr) = eventline(
        &[
            &base[..],
            &["--jwt-issuer", "https://idp", "--jwt-audience", "eventline"],
            &["--jwt-hs256-secret-file", &short],
        ]
        .concat(),
    );
    assert!(!ok);
    assert!(stderr.contains("--jwt-hs256-secret-file"), "{stderr}");
    assert!(
        !stderr.contains("tooshort"),
        "a secret is never printed: {stderr}"
    );
}

#[test]
fn token_mints_a_token_and_names_what_is_missing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().display().to_string();
    let (ok, stderr) = eventline(&["token", "--data-dir", &data_dir]);
    assert!(!ok);
    assert!(stderr.contains("--subject"), "{stderr}");
    // Without embedded mode's secret, it says so instead of signing with a new one.
    let (ok, stderr) = eventline(&["token", "--subject", "ada", "--data-dir", &data_dir]);
    assert!(!ok);
    assert!(stderr.contains("no development secret"), "{stderr}");
    assert!(!dir.path().join("dev-jwt-secret").exists());
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "a-shared-secret-of-at-least-32-bytes\n").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_eventline"))
        .args(["token", "--subject", "ada", "--scope", "eventline:read"])
        .arg("--hs256-secret-file")
        .arg(&secret)
        .env_remove("EVENTLINE_JWT_HS256_SECRET")
        .output()
        .expect("run eventline token");
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).expect("utf-8");
    assert_eq!(token.trim().split('.').count(), 3, "a JWT: {token}");
}
