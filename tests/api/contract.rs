//! The API contract: the live server serves the committed `docs/openapi.json`, and Schemathesis,
//! a fuzzer nobody here wrote, attacks every operation it describes on SQLite, as an admin and
//! as an issuer: no 5xx, every answer (status, content type, body, headers) as the document
//! says, and the audit chain verifies afterwards.

use std::path::Path;

use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use signet::auth::NewClient;
use signet::domain::Role;

use crate::helpers::{Db, TestApp};

fn schemathesis() -> String {
    std::env::var("SIGNET_TEST_SCHEMATHESIS").unwrap_or_else(|_| {
        panic!(
            "SIGNET_TEST_SCHEMATHESIS is not set: run scripts/test, which builds a venv with \
             Schemathesis from tests/schemathesis/requirements.txt, or point it at that venv's `st`"
        )
    })
}

/// Runs Schemathesis against `app` as the client holding `token`, with the settings in `config`
/// (schemathesis.toml) and the arguments in `extra`; fails the test with its report unless it
/// finds nothing.
async fn fuzz(app: &TestApp, token: &str, config: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("schemathesis.toml");
    std::fs::write(&config_file, config).unwrap();
    let output = tokio::process::Command::new(schemathesis())
        .current_dir(dir.path())
        .arg("--config-file")
        .arg(&config_file)
        .args(["run", &format!("{}/v1/openapi.json", app.address)])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        // Every check, but that a request the schema admits is accepted: a token no key of
        // ours signed, a name already taken, timing rules between fields are refused with an
        // answer the document describes, though the schema cannot say which values those are.
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        // One worker and a fixed seed: the same cases on every run (Hypothesis reads lambdas'
        // source to name them, which Python 3.11 cannot do from two threads at once).
        .args([
            "--workers",
            "1",
            "--seed",
            "1",
            "--generation-database",
            "none",
        ])
        .args(["--max-examples", "50", "--no-color"])
        .args(extra)
        .output()
        .await
        .expect("Schemathesis runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "Schemathesis found problems ({}):\n{report}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("passed"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_serves_the_committed_document() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let served = crate::helpers::http_client()
        .get(format!("{}/v1/openapi.json", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(served.headers()["content-type"], "application/json");
    let committed =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json"))
            .unwrap();
    assert!(
        served.text().await.unwrap() == committed,
        "the served document is not docs/openapi.json: run `cargo run -- openapi > docs/openapi.json`"
    );
}

/// The one operation that replaces a client's token.
const ROTATE_CLIENT: &str = "/v1/clients/{id}/rotate";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_wrong() {
    let app = TestApp::spawn(Db::Sqlite).await;
    // No audience required, so that some of what the fuzzer sends can be signed.
    app.create_ring("fuzz", json!({"policy": {"audiences": []}}))
        .await;
    let (_, issuer) = app.create_client("fuzzer", "issuer", &["fuzz"]).await;

    // As the issuer of one ring: signing, where an admin is refused. First, before the admin's
    // run may revoke the client or the ring's key.
    fuzz(
        &app,
        &issuer,
        "[parameters]\n\"path.ring\" = \"fuzz\"\n",
        &["--include-path-regex", "/sign"],
    )
    .await;
    let signed = app
        .get("/v1/audit?action=sign&limit=1", Some(&app.admin_token))
        .await;
    assert_eq!(signed.status, StatusCode::OK, "{}", signed.body);
    assert!(
        !signed.body["records"].as_array().unwrap().is_empty(),
        "the issuer's run signed nothing: {}",
        signed.body
    );

    // As an admin, rotating one client's token: on its own, because the run below lists the
    // clients and would rotate the admin it runs as, leaving the rest of its run refused.
    let (rotated, _) = app.create_client("rotated", "auditor", &[]).await;
    fuzz(
        &app,
        &app.admin_token,
        &format!("[parameters]\n\"path.id\" = \"{rotated}\"\n"),
        &["--include-path", ROTATE_CLIENT],
    )
    .await;
    let rotations = app
        .get(
            "/v1/audit?action=client_token_rotated",
            Some(&app.admin_token),
        )
        .await;
    assert!(
        !rotations.body["records"].as_array().unwrap().is_empty(),
        "the run rotated nothing: {}",
        rotations.body
    );

    // As an admin: every other operation, on whatever rings, keys and clients it makes up or
    // creates.
    fuzz(
        &app,
        &app.admin_token,
        "",
        &["--exclude-path", ROTATE_CLIENT],
    )
    .await;
    // That run may revoke any client it lists, the admin it runs as too: the chain is read by
    // an auditor made afterwards, on the server's side.
    let auditor = app
        .services
        .clients
        .create(
            "test",
            NewClient {
                name: "chain-reader".into(),
                role: Role::Auditor,
                rings: vec![],
                rate_limit: None,
                expires_at: None,
                metadata: None,
                bound_claims: None,
            },
        )
        .await
        .expect("an auditor is created")
        .token;
    let chain = app
        .get("/v1/audit/verify", Some(auditor.expose_secret()))
        .await;
    assert_eq!(chain.status, StatusCode::OK);
    let report: &Value = &chain.body;
    assert_eq!(report["ok"], true, "{report}");
    assert!(report["records"].as_u64().unwrap() > 100, "{report}");
}
