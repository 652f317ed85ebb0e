//! Invariants the database itself enforces, crash reconciliation, and replicas sharing Postgres.

use reqwest::StatusCode;
use serde_json::json;
use signet_core::{KeyId, KeySpec, KeyUse};

use crate::helpers::{eventually, Backend, Db, TestApp};
use crate::{backend_tests, store_tests};

async fn the_database_refuses_a_second_active_key(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_ring("r", json!({})).await;
    app.rotate("r").await;
    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    let second =
        sqlx::query("UPDATE keys SET state = 'active' WHERE ring = 'r' AND state = 'published'")
            .execute(&pool)
            .await;
    let error = second.expect_err("two active keys in one ring");
    let db_error = error.as_database_error().expect("a constraint violation");
    assert!(db_error.is_unique_violation(), "{db_error}");
    // And a key record cannot lose its backend reference once it is out of pending.
    let orphan =
        sqlx::query("UPDATE keys SET reference = NULL WHERE ring = 'r' AND state = 'active'")
            .execute(&pool)
            .await;
    assert!(orphan.is_err());
}

/// Simulates a crash between generating a backend key and recording it: a pending record
/// from two minutes ago, with (adopted) or without (dropped) the backend key.
async fn keys_left_pending_by_a_crash_are_adopted_or_dropped(db: Db, backend: Backend) {
    let app = TestApp::spawn_on(db, backend).await;
    app.create_ring("with-key", json!({})).await;
    app.create_ring("without-key", json!({})).await;
    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    let two_minutes_ago = signet::clock::now_ms().minus_ms(120_000);
    // Unique ids: a KMS or token outlives the test's database.
    let suffix = signet::random::random_id(6);
    let crashed_after = format!("crashed-after-generate-{suffix}");
    let crashed_before = format!("crashed-before-generate-{suffix}");
    // The backend key before its record: the server's own tick may reconcile at any moment, and
    // must never find the record without the key it is meant to find.
    let provider = app.open_backend(backend).await;
    provider
        .generate(&KeyId(crashed_after.clone()), KeySpec::EcP256, KeyUse::Sign)
        .await
        .unwrap();
    for (ring, id) in [
        ("with-key", &crashed_after),
        ("without-key", &crashed_before),
    ] {
        sqlx::query("INSERT INTO keys (id, ring, state, algorithm, key_spec, backend, created_at) VALUES ($1, $2, 'pending', 'ES256', 'ec-p256', $3, $4)")
            .bind(id)
            .bind(ring)
            .bind(backend.name())
            .bind(two_minutes_ago)
            .execute(&pool)
            .await
            .unwrap();
    }

    app.services.rings.advance().await.unwrap();
    let adopted = app.keys("with-key").await;
    let adopted = adopted
        .iter()
        .find(|k| k["id"] == crashed_after.as_str())
        .expect("the record stays");
    assert_eq!(adopted["state"], "published");
    assert!(app
        .jwks_kids("with-key")
        .await
        .contains(&adopted["kid"].as_str().unwrap().to_owned()));
    let dropped = app.keys("without-key").await;
    assert!(dropped.iter().all(|k| k["id"] != crashed_before.as_str()));
    let actions: Vec<String> = app
        .store
        .audit_actions()
        .await
        .unwrap()
        .into_iter()
        .map(|(a, _, _)| a)
        .collect();
    assert!(actions.contains(&"key_generation_abandoned".to_owned()));
    // Every remaining record points at a key the backend has.
    for ring in ["with-key", "without-key"] {
        for key in app.keys(ring).await {
            let id = KeyId(key["id"].as_str().unwrap().to_owned());
            assert!(provider.locate(&id).await.unwrap().is_some(), "{key}");
        }
    }
}

store_tests!(the_database_refuses_a_second_active_key);
backend_tests!(keys_left_pending_by_a_crash_are_adopted_or_dropped);

/// Two replicas on one Postgres: a rotation made on one is served by the other within a tick, and
/// the activation happens exactly once although both replicas tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_postgres_agree_and_activate_once() {
    let first = TestApp::spawn(Db::Postgres).await;
    // A second process on the same Postgres and the same file-backend directory.
    let second = TestApp::start(first.data_dir.clone(), first.db.clone()).await;
    first
        .create_ring("r", json!({"timing": {"jwks_max_age_seconds": 1, "leeway_seconds": 0, "publish_lead_seconds": 2}}))
        .await;
    let (_, issuer) = first.create_client("svc", "issuer", &["r"]).await;
    eventually(30, "the second replica to see the ring", || async {
        second.get("/v1/rings/r/jwks.json", None).await.status == StatusCode::OK
    })
    .await;
    let rotated = first.rotate("r").await;
    let new = rotated.body["kid"].as_str().unwrap().to_owned();
    eventually(3, "the second replica to publish the new key", || async {
        second.jwks_kids("r").await.contains(&new)
    })
    .await;
    eventually(30, "both replicas to sign with the new key", || async {
        second.sign(&issuer, "r", json!({"aud": "api"})).await.body["kid"] == new.as_str()
            && first.sign(&issuer, "r", json!({"aud": "api"})).await.body["kid"] == new.as_str()
    })
    .await;
    let activations = first
        .store
        .audit_actions()
        .await
        .unwrap()
        .into_iter()
        .filter(|(a, _, kid)| a == "key_activated" && kid.as_deref() == Some(new.as_str()))
        .count();
    assert_eq!(activations, 1);
}
