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

/// `signet admin-token rotate`: the bootstrap admin's old token (the one in DATA_DIR/admin-token)
/// is refused, the file is gone, and the new token, printed once, works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_admin_token_can_be_rotated_and_its_file_removed() {
    let app = crate::helpers::TestApp::spawn(crate::helpers::Db::Sqlite).await;
    let old = app.admin_token.clone();
    let (data_dir, db) = app.stop().await;
    let output = signet_process(
        &[
            "--data-dir",
            data_dir.path().to_str().unwrap(),
            "admin-token",
            "rotate",
        ],
        &[("SIGNET_DATABASE_URL", db.url.as_str())],
    )
    .output()
    .expect("signet runs");
    assert!(output.status.success(), "{output:?}");
    let new = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(new.starts_with("signet_") && new != old);
    assert!(!data_dir.path().join("admin-token").exists());
    let app = crate::helpers::TestApp::start(data_dir, db).await;
    let refused = app.get("/v1/clients", Some(&old)).await;
    assert_eq!(refused.status, reqwest::StatusCode::UNAUTHORIZED);
    let listed = app.get("/v1/clients", Some(&new)).await;
    assert_eq!(listed.status, reqwest::StatusCode::OK, "{}", listed.body);
    let rotations = app
        .get("/v1/audit?action=client_token_rotated", Some(&new))
        .await;
    assert_eq!(rotations.body["records"].as_array().unwrap().len(), 1);
}
