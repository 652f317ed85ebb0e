//! Rotation, revocation and the timing windows of docs/design.md, in real time with short windows.

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use signet_core::{KeyRef, ProviderError};

use crate::backend_tests;
use crate::helpers::{decode_parts, eventually, Backend, Db, TestApp};

/// jwks_max_age 1 s, no leeway, publish_lead 2 s, tokens of at most 2 s: a key retires 3 s after
/// it stops signing.
fn short_timing() -> Value {
    json!({
        "policy": {"max_ttl_seconds": 2},
        "timing": {"jwks_max_age_seconds": 1, "leeway_seconds": 0, "publish_lead_seconds": 2},
    })
}

fn state_of<'a>(keys: &'a [Value], kid: &str) -> &'a str {
    keys.iter()
        .find(|k| k["kid"] == kid)
        .map_or("absent", |k| k["state"].as_str().unwrap())
}

async fn a_rotation_publishes_first_then_activates_then_retires(db: Db, backend: Backend) {
    let app = TestApp::spawn_on(db, backend).await;
    let ring = app.create_ring("r", short_timing()).await;
    let (_, issuer) = app.create_client("svc", "issuer", &["r"]).await;
    let old = ring["active_kid"].as_str().unwrap().to_owned();

    let rotated = app.rotate("r").await;
    assert_eq!(rotated.status, StatusCode::ACCEPTED, "{}", rotated.body);
    assert_eq!(rotated.body["state"], "published");
    let new = rotated.body["kid"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    // Published ahead: in the JWKS, not yet signing.
    assert_eq!(app.jwks_kids("r").await, vec![old.clone(), new.clone()]);
    assert_eq!(
        app.sign(&issuer, "r", json!({"aud": "api"})).await.body["kid"],
        old
    );
    let second = app.rotate("r").await;
    assert_eq!(second.status, StatusCode::CONFLICT);
    assert_eq!(second.body["error"]["code"], "rotation_in_progress");
    let message = second.body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("ring \"r\" already has a key on its way in (state published)"),
        "{message}"
    );

    // Sign continuously through the switch and the retirement; record which key signed when.
    // The loop ends when the old key has retired (about 6 s; the deadline only stops a hang).
    let mut signed_by: HashMap<String, Vec<i64>> = HashMap::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut saw_retiring = false;
    let keys = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the old key did not retire"
        );
        let response = app.sign(&issuer, "r", json!({"aud": "api"})).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        let (_, claims) = decode_parts(response.body["token"].as_str().unwrap());
        signed_by
            .entry(response.body["kid"].as_str().unwrap().to_owned())
            .or_default()
            .push(claims["iat"].as_i64().unwrap());
        // The JWKS first, then the states: states only move forward, so a key still retiring
        // after the JWKS was read was retiring or younger when it was read, and must be in it.
        let published = app.jwks_kids("r").await;
        let keys = app.keys("r").await;
        match state_of(&keys, &old) {
            "retiring" => {
                saw_retiring = true;
                assert!(published.contains(&old), "a retiring key stays published");
            }
            "retired" => break keys,
            _ => {}
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(saw_retiring);
    assert_eq!(state_of(&keys, &new), "active");
    assert_eq!(state_of(&keys, &old), "retired");
    // The JWKS is served from the replica's view, which follows the store within a tick.
    eventually(30, "the retired key to leave the JWKS", || async {
        app.jwks_kids("r").await == [new.clone()]
    })
    .await;

    // No token was signed by the new key before it had been published for publish_lead.
    let new_key = keys.iter().find(|k| k["kid"] == new).unwrap();
    let published = chrono::DateTime::parse_from_rfc3339(new_key["published_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    let activated = chrono::DateTime::parse_from_rfc3339(new_key["activated_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert!(
        activated - published >= 2,
        "activated {activated} published {published}"
    );
    for iat in &signed_by[&new] {
        assert!(
            *iat >= published + 2,
            "a token at {iat} by a key published at {published}"
        );
    }
    // The old key left the JWKS only once its last token had expired and caches had refreshed.
    let old_key = keys.iter().find(|k| k["kid"] == old).unwrap();
    let retired = chrono::DateTime::parse_from_rfc3339(old_key["retired_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    let last_old_exp = signed_by[&old].iter().max().unwrap() + 2;
    assert!(
        retired > last_old_exp,
        "retired at {retired}, last token expired at {last_old_exp}"
    );

    let actions: Vec<String> = app
        .store
        .audit_actions()
        .await
        .unwrap()
        .into_iter()
        .map(|(a, _, _)| a)
        .collect();
    for action in [
        "ring_created",
        "key_published",
        "rotation_requested",
        "key_activated",
        "key_retiring",
        "key_retired",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} missing from {actions:?}"
        );
    }
}

async fn an_immediate_rotation_signs_with_the_new_key_at_once(db: Db, backend: Backend) {
    let app = TestApp::spawn_on(db, backend).await;
    let ring = app.create_ring("r", json!({})).await;
    let (_, issuer) = app.create_client("svc", "issuer", &["r"]).await;
    let old = ring["active_kid"].as_str().unwrap().to_owned();
    let rotated = app.rotate_immediately("r").await;
    assert_eq!(rotated.status, StatusCode::ACCEPTED, "{}", rotated.body);
    assert_eq!(rotated.body["state"], "active");
    let new = rotated.body["kid"].as_str().unwrap();
    assert_eq!(
        app.sign(&issuer, "r", json!({"aud": "api"})).await.body["kid"],
        new
    );
    let keys = app.keys("r").await;
    assert_eq!(state_of(&keys, &old), "retiring");
    assert!(app.jwks_kids("r").await.contains(&old));

    // A published key waiting for its lead is activated at once by an immediate rotation.
    let pending = app.rotate("r").await;
    let waiting = pending.body["kid"].as_str().unwrap().to_owned();
    let now = app.rotate_immediately("r").await;
    assert_eq!(now.body["kid"], waiting);
    assert_eq!(now.body["state"], "active");
}

async fn a_revoked_key_leaves_the_jwks_at_once_and_never_signs_again(db: Db, backend: Backend) {
    let app = TestApp::spawn_on(db, backend).await;
    let ring = app.create_ring("r", json!({"combined_jwks": true})).await;
    let (_, issuer) = app.create_client("svc", "issuer", &["r"]).await;
    let old = ring["active_kid"].as_str().unwrap().to_owned();
    let before = app.sign(&issuer, "r", json!({"aud": "api"})).await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let revoked = app
        .post(
            &format!("/v1/keys/{old}/revoke"),
            &app.admin_token,
            json!({"reason": "laptop stolen"}),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert_eq!(revoked.body["state"], "revoked");
    assert_eq!(revoked.body["revoked_reason"], "laptop stolen");
    let successor = revoked.body["successor_kid"].as_str().unwrap().to_owned();
    assert_eq!(app.jwks_kids("r").await, vec![successor.clone()]);
    assert!(!app
        .get("/.well-known/jwks.json", None)
        .await
        .body
        .to_string()
        .contains(&old));
    let after = app.sign(&issuer, "r", json!({"aud": "api"})).await;
    assert_eq!(after.body["kid"], successor);
    let verify = app
        .request(
            Method::POST,
            "/v1/verify",
            None,
            Some(json!({"token": before})),
        )
        .await;
    assert_eq!(verify.status, StatusCode::UNPROCESSABLE_ENTITY);

    let again = app
        .post(
            &format!("/v1/keys/{old}/revoke"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["error"]["code"], "key_not_revocable");
    let unknown = app
        .post("/v1/keys/no-such-kid/revoke", &app.admin_token, json!({}))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    // Revoking a published key (not yet signing) leaves the active key alone.
    let next = app.rotate("r").await;
    let next_kid = next.body["kid"].as_str().unwrap().to_owned();
    let revoked_next = app
        .post(
            &format!("/v1/keys/{next_kid}/revoke"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(revoked_next.status, StatusCode::OK);
    assert!(revoked_next.body["successor_kid"].is_null());
    assert_eq!(app.jwks_kids("r").await, vec![successor.clone()]);
    assert_eq!(
        app.sign(&issuer, "r", json!({"aud": "api"})).await.body["kid"],
        successor
    );
}

async fn retired_keys_are_destroyed_in_the_backend_after_retention(db: Db, backend: Backend) {
    let app = TestApp::spawn_on(db, backend).await;
    let mut timing = short_timing();
    timing["timing"]["retain_retired_seconds"] = json!(1);
    let ring = app.create_ring("r", timing).await;
    let old = ring["active_kid"].as_str().unwrap().to_owned();
    let rotated = app.rotate_immediately("r").await;
    assert_eq!(rotated.status, StatusCode::ACCEPTED);
    let reference = {
        let keys = app.keys("r").await;
        let reference = keys.iter().find(|k| k["kid"] == old).unwrap()["reference"]
            .as_str()
            .unwrap()
            .to_owned();
        KeyRef(reference)
    };
    assert!(app
        .open_backend(backend)
        .await
        .public_key(&reference)
        .await
        .is_ok());
    eventually(60, "the old key to be destroyed", || async {
        state_of(&app.keys("r").await, &old) == "destroyed"
    })
    .await;
    assert!(
        matches!(
            app.open_backend(backend).await.public_key(&reference).await,
            Err(ProviderError::NotFound(_))
        ),
        "the backend key is gone"
    );
    let actions: Vec<(String, String, Option<String>)> = app.store.audit_actions().await.unwrap();
    let destroyed: Vec<_> = actions
        .iter()
        .filter(|(a, _, kid)| a == "key_destroyed" && kid.as_deref() == Some(&old))
        .collect();
    assert_eq!(destroyed.len(), 1);
    assert_eq!(destroyed[0].1, "scheduler");
}

backend_tests!(
    a_rotation_publishes_first_then_activates_then_retires,
    an_immediate_rotation_signs_with_the_new_key_at_once,
    a_revoked_key_leaves_the_jwks_at_once_and_never_signs_again,
    retired_keys_are_destroyed_in_the_backend_after_retention,
);
