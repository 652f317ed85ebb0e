//! The `signet` binary's administrative commands, run as a real process.

use std::process::Output;

use serde_json::Value;

use crate::helpers::{signet_process, TEST_KEK};

/// Runs `signet --data-dir DIR ARGS` with `kek` as the file backend's key-encryption key.
fn run(data_dir: &std::path::Path, args: &[&str], kek: &str) -> Output {
    let data_dir = data_dir.to_str().unwrap();
    signet_process(
        &[&["--data-dir", data_dir], args].concat(),
        &[("SIGNET_FILE_KEK", kek)],
    )
    .output()
    .expect("signet runs")
}

/// Runs a command that must fail; returns its stderr.
fn refused(data_dir: &std::path::Path, args: &[&str], kek: &str) -> String {
    let output = run(data_dir, args, kek);
    assert!(!output.status.success(), "signet {args:?} succeeded");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn signet(data_dir: &std::path::Path, args: &[&str]) -> Value {
    let output = run(data_dir, args, TEST_KEK);
    assert!(
        output.status.success(),
        "signet {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&output.stdout).into_owned()))
}

#[test]
fn the_cli_creates_rings_and_clients_and_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let migrated = signet(&dir.path().join("new"), &["migrate"]);
    assert_eq!(migrated, "the store is up to date\n");
    assert!(dir.path().join("new/signet.db").exists());
    let ring = signet(
        dir.path(),
        &[
            "ring",
            "create",
            "orders",
            "--issuer",
            "https://issuer.test",
            "--audience",
            "api",
            "--algorithm",
            "EdDSA",
        ],
    );
    assert_eq!(ring["name"], "orders");
    assert_eq!(ring["algorithm"], "EdDSA");
    let first = ring["active_kid"].as_str().unwrap().to_owned();
    let client = signet(
        dir.path(),
        &[
            "client",
            "create",
            "--name",
            "orders-svc",
            "--role",
            "issuer",
            "--ring",
            "orders",
        ],
    );
    assert!(client["token"].as_str().unwrap().starts_with("signet_"));
    let rotated = signet(dir.path(), &["rotate", "orders"]);
    assert_eq!(rotated["state"], "published");
    let keys = signet(dir.path(), &["keys", "orders"]);
    let states: Vec<(&str, &str)> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kid"].as_str().unwrap(), k["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        vec![
            (first.as_str(), "active"),
            (rotated["kid"].as_str().unwrap(), "published")
        ]
    );

    let stderr = refused(dir.path(), &["keys", "orders"], &"00".repeat(32));
    assert!(
        stderr.contains("does not open the file key store"),
        "{stderr}"
    );
}

#[test]
fn the_cli_shows_sets_pauses_and_resumes_schedules() {
    let dir = tempfile::tempdir().unwrap();
    signet(
        dir.path(),
        &[
            "ring",
            "create",
            "orders",
            "--issuer",
            "https://issuer.test",
        ],
    );
    let shown = signet(dir.path(), &["schedule", "show", "orders"]);
    assert_eq!(shown["monthly"]["day"], 1);
    let set = signet(
        dir.path(),
        &[
            "schedule",
            "set",
            "orders",
            "--monthly-day",
            "15",
            "--at",
            "06:30",
            "--publish-lead",
            "900",
        ],
    );
    assert_eq!(
        set["monthly"],
        serde_json::json!({"day": 15, "at": "06:30"})
    );
    assert_eq!(set["publish_lead_seconds"], 900);
    assert!(set["plan"]["next_activation_at"]
        .as_str()
        .unwrap()
        .contains("-15T06:30:00Z"));
    let set = signet(
        dir.path(),
        &["schedule", "set", "orders", "--every-seconds", "86400"],
    );
    assert_eq!(set["every_seconds"], 86400);
    assert_eq!(
        signet(dir.path(), &["schedule", "pause", "orders"])["paused"],
        true
    );
    assert_eq!(
        signet(dir.path(), &["schedule", "resume", "orders"])["paused"],
        false
    );

    let stderr = refused(
        dir.path(),
        &["schedule", "set", "orders", "--every-seconds", "600"],
        TEST_KEK,
    );
    assert!(
        stderr.contains("every_seconds (600) must exceed publish_lead_seconds (900)"),
        "{stderr}"
    );
}
