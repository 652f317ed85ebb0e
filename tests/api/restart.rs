//! A restart keeps every key, every published JWKS entry and every client.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{settings, Db, TestApp};
use crate::store_tests;

async fn a_restart_keeps_keys_jwks_and_clients(db: Db) {
    let app = TestApp::spawn(db).await;
    for (name, alg) in [("es", "ES256"), ("rsa", "RS256"), ("ed", "EdDSA")] {
        app.create_ring(name, json!({"algorithm": alg, "combined_jwks": true}))
            .await;
    }
    app.rotate("es").await;
    let (_, issuer) = app
        .create_client("svc", "issuer", &["es", "rsa", "ed"])
        .await;
    let token = app.sign(&issuer, "es", json!({"aud": "api"})).await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let jwks_before = app.get("/.well-known/jwks.json", None).await;
    let keys_before = app.keys("es").await;
    let admin = app.admin_token.clone();

    let app = app.restart().await;
    assert_eq!(app.admin_token, admin, "no second bootstrap token");
    let jwks_after = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks_after.body, jwks_before.body);
    assert_eq!(jwks_after.headers["etag"], jwks_before.headers["etag"]);
    assert_eq!(app.keys("es").await, keys_before);
    let verify = app
        .request(
            reqwest::Method::POST,
            "/v1/verify",
            None,
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(verify.status, StatusCode::OK, "{}", verify.body);
    for ring in ["es", "rsa", "ed"] {
        let signed = app.sign(&issuer, ring, json!({"aud": "api"})).await;
        assert_eq!(signed.status, StatusCode::OK, "{ring}: {}", signed.body);
        assert!(app
            .jwks_kids(ring)
            .await
            .contains(&signed.body["kid"].as_str().unwrap().to_owned()));
    }
}

async fn the_bootstrap_token_and_the_sqlite_store_are_private(db: Db) {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn(db).await;
    let path = app.data_dir.path().join("admin-token");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(app.admin_token.starts_with("signet_"));
    if db == Db::Sqlite {
        // The store holds the audit log and the token hashes: its owner's only.
        let file = app.db.url.trim_start_matches("sqlite://");
        let file = file.split('?').next().unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let path = format!("{file}{suffix}");
            if let Ok(meta) = std::fs::metadata(&path) {
                assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{path}");
            }
        }
    }
    let clients = app.store.clients().await.unwrap();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].role, signet::domain::Role::Admin);
    let app = app.restart().await;
    assert_eq!(app.store.clients().await.unwrap().len(), 1);
}

async fn a_wrong_key_encryption_key_stops_the_start_with_a_clear_message(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_ring("r", json!({})).await;
    let (data_dir, db) = app.stop().await;
    let mut wrong = settings(data_dir.path().to_owned(), &db.url);
    wrong.file_kek = Some(
        signet_file::KekSource::key_from_text(&secrecy::SecretString::from("00".repeat(32)))
            .unwrap(),
    );
    let error = match signet::startup::Application::build(wrong).await {
        Ok(_) => panic!("a wrong key-encryption key must not start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        error.contains("does not open the file key store"),
        "{error}"
    );
    assert!(!error.contains(&"00".repeat(32)));
    let mut missing = settings(data_dir.path().to_owned(), &db.url);
    missing.file_kek = None;
    let error = match signet::startup::Application::build(missing).await {
        Ok(_) => panic!("a missing key-encryption key must not start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("SIGNET_FILE_KEK"), "{error}");
    assert!(!data_dir.path().join("file-backend/master.key").exists());
}

store_tests!(
    a_restart_keeps_keys_jwks_and_clients,
    the_bootstrap_token_and_the_sqlite_store_are_private,
    a_wrong_key_encryption_key_stops_the_start_with_a_clear_message,
);
