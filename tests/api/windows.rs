//! How long keys stay in the JWKS (docs/design.md, Timing invariants): a key leaves only after
//! the last token it actually signed has expired, and a key activates only once every JWKS that
//! may still be cached holds it, whatever the ring's timing did meanwhile.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Row;

use crate::helpers::{decode_parts, eventually, Db, TestApp, TestDb};
use crate::store_tests;

/// Changes ring "r"'s timing (keeping the default monthly rule).
async fn retime(app: &TestApp, timing: Value) {
    let mut body = timing;
    body["monthly"] = json!({"day": 1, "at": "00:00"});
    let response = app.put_schedule("r", body).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
}

fn millis(rfc3339: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

/// The issue's reproduction: a token signed for 12 s, then the ring's maximum lifetime drops to
/// 2 s and the key is replaced at once. The old key stays in the JWKS and the token verifies
/// until it expires; the key leaves after its exp plus leeway and max-age.
async fn a_key_stays_published_until_its_last_token_expires(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_ring(
        "r",
        json!({"policy": {"max_ttl_seconds": 30},
               "timing": {"jwks_max_age_seconds": 2, "publish_lead_seconds": 4, "leeway_seconds": 1}}),
    )
    .await;
    let (_, issuer) = app.create_client("svc", "issuer", &["r"]).await;
    let signed = app
        .post(
            "/v1/rings/r/sign",
            &issuer,
            json!({"claims": {"aud": "api"}, "ttl_seconds": 12}),
        )
        .await;
    assert_eq!(signed.status, StatusCode::OK, "{}", signed.body);
    let token = signed.body["token"].as_str().unwrap().to_owned();
    let old = signed.body["kid"].as_str().unwrap().to_owned();
    let exp = decode_parts(&token).1["exp"].as_i64().unwrap();

    retime(&app, json!({"max_token_ttl_seconds": 2})).await;
    let rotated = app.rotate_immediately("r").await;
    assert_eq!(rotated.status, StatusCode::ACCEPTED, "{}", rotated.body);
    assert_ne!(rotated.body["kid"], old);

    // Until a second before exp (the token's own clock), the old key is published and the
    // token verifies.
    let mut checks = 0;
    while chrono::Utc::now().timestamp() < exp - 1 {
        assert!(
            app.jwks_kids("r").await.contains(&old),
            "the key left the JWKS {} s before its token expires",
            exp - chrono::Utc::now().timestamp()
        );
        let verified = app
            .request(
                Method::POST,
                "/v1/verify",
                None,
                Some(json!({"token": token})),
            )
            .await;
        assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
        checks += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(checks > 0);
    eventually(60, "the old key to leave the JWKS", || async {
        !app.jwks_kids("r").await.contains(&old)
    })
    .await;
    let keys = app.keys("r").await;
    let key = keys.iter().find(|k| k["kid"] == old.as_str()).unwrap();
    assert_eq!(millis(&key["last_token_exp"]), 1000 * exp);
    assert!(
        millis(&key["retired_at"]) >= 1000 * exp + 3000,
        "retired at {} before exp {exp} + leeway 1 s + max-age 2 s",
        key["retired_at"]
    );
}

/// A verifier caches the JWKS for the 8 s it is told; the admin then lowers the max-age to 1 s
/// and the lead to 2 s, and rotates. The new key waits until that verifier's cache has expired:
/// it never meets a `kid` its cache lacks.
async fn a_shorter_max_age_holds_back_the_next_key_until_old_caches_expire(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_ring(
        "r",
        json!({"timing": {"jwks_max_age_seconds": 8, "publish_lead_seconds": 10, "leeway_seconds": 0}}),
    )
    .await;
    let (_, issuer) = app.create_client("svc", "issuer", &["r"]).await;
    let (mut cached, mut max_age) = app.jwks_and_max_age("r").await;
    let mut fetched_at = Instant::now();
    assert_eq!(max_age, Duration::from_secs(8));
    let old = cached.iter().next().unwrap().clone();

    retime(
        &app,
        json!({"jwks_max_age_seconds": 1, "publish_lead_seconds": 2}),
    )
    .await;
    let rotated = app.rotate("r").await;
    assert_eq!(rotated.status, StatusCode::ACCEPTED, "{}", rotated.body);
    let new = rotated.body["kid"].as_str().unwrap().to_owned();

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "the new key never signed");
        if fetched_at.elapsed() >= max_age {
            (cached, max_age) = app.jwks_and_max_age("r").await;
            fetched_at = Instant::now();
        }
        let signed = app.sign(&issuer, "r", json!({"aud": "api"})).await;
        assert_eq!(signed.status, StatusCode::OK, "{}", signed.body);
        let kid = signed.body["kid"].as_str().unwrap();
        assert!(
            cached.contains(kid),
            "signed by {kid}, which the verifier's JWKS ({cached:?}, fetched {:?} ago for {max_age:?}) lacks",
            fetched_at.elapsed()
        );
        if kid == new {
            break;
        }
        assert_eq!(kid, old);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fault we cannot cause otherwise, named as one: another writer of the database retires the
/// ring's active key behind the server's back, so the server's view still offers it for up to
/// a tick. The signature it makes is refused when its audit record would commit: no token is
/// returned from a key that has left the signing states.
async fn a_key_that_stopped_signing_signs_nothing_from_a_stale_view(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_ring("r", json!({})).await;
    let (_, issuer) = app.create_client("svc", "issuer", &["r"]).await;
    let first = app.sign(&issuer, "r", json!({"aud": "api"})).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    sqlx::query("UPDATE keys SET state = 'retired' WHERE ring = 'r' AND state = 'active'")
        .execute(&pool)
        .await
        .unwrap();
    let refused = app.sign(&issuer, "r", json!({"aud": "api"})).await;
    assert!(
        refused.body.get("token").is_none(),
        "a token from a retired key: {}",
        refused.body
    );
    // Either the stale view signed and the commit refused it, or the view had refreshed.
    let code = refused.body["error"]["code"].as_str().unwrap();
    assert!(
        (refused.status, code) == (StatusCode::CONFLICT, "key_changed")
            || (refused.status, code) == (StatusCode::SERVICE_UNAVAILABLE, "no_active_key"),
        "{} {}",
        refused.status,
        refused.body
    );
}

/// Upgrading a store from before key windows: each key that may still have valid tokens learns
/// its latest `exp` from the audit log, and every key its ring's grace.
async fn the_upgrade_learns_each_keys_last_exp_from_the_audit_log(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::new(db, dir.path()).await;
    // The migrations before this one, from a copy of their directory.
    let dialect = match db {
        Db::Sqlite => "sqlite",
        Db::Postgres => "postgres",
    };
    let all = format!("{}/migrations/{dialect}", env!("CARGO_MANIFEST_DIR"));
    let older = dir.path().join("older-migrations");
    std::fs::create_dir(&older).unwrap();
    for entry in std::fs::read_dir(&all).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.as_str() < "0060" {
            std::fs::copy(entry.path(), older.join(&name)).unwrap();
        }
    }
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&test_db.url).await.unwrap();
    sqlx::migrate::Migrator::new(older.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    let timing = json!({"jwks_max_age_seconds": 300, "publish_lead_seconds": 600,
                        "leeway_seconds": 60, "retain_retired_seconds": 7_776_000});
    sqlx::query(
        "INSERT INTO rings (name, backend, algorithm, key_spec, policy, timing, created_at, updated_at) \
         VALUES ('r', 'file', 'ES256', 'ec-p256', '{}', $1, 0, 0)",
    )
    .bind(timing.to_string())
    .execute(&pool)
    .await
    .unwrap();
    for (id, state) in [("k1", "active"), ("k2", "retiring"), ("k3", "retired")] {
        sqlx::query(
            "INSERT INTO keys (id, ring, state, algorithm, key_spec, backend, reference, kid, created_at) \
             VALUES ($1, 'r', $2, 'ES256', 'ec-p256', 'file', 'ref', $3, 0)",
        )
        .bind(id)
        .bind(state)
        .bind(format!("kid-{id}"))
        .execute(&pool)
        .await
        .unwrap();
    }
    let records = [
        ("sign", "kid-k1", json!({"exp": 2_000_000_000})),
        ("sign_raw", "kid-k1", json!({"exp": 2_000_000_500})),
        ("sign", "kid-k1", json!({"exp": "not a number"})),
        ("key_activated", "kid-k1", json!({"exp": 2_100_000_000})),
        ("sign", "kid-k2", json!({"exp": 1_900_000_000})),
        ("sign", "kid-k3", json!({"exp": 1_800_000_000})),
    ];
    for (seq, (action, kid, detail)) in (1..).zip(records) {
        sqlx::query(
            "INSERT INTO audit_log (seq, time, action, principal, ring, kid, detail, hash) \
             VALUES ($1, 0, $2, 'client:svc', 'r', $3, $4, 'h')",
        )
        .bind(seq)
        .bind(action)
        .bind(kid)
        .bind(detail.to_string())
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let store = signet::store::Store::connect(&secrecy::SecretString::from(test_db.url.clone()))
        .await
        .expect("the store upgrades");
    store.close().await;
    let pool = sqlx::AnyPool::connect(&test_db.url).await.unwrap();
    let rows = sqlx::query("SELECT id, last_token_exp, jwks_grace_ms FROM keys ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    let got: Vec<(String, Option<i64>, i64)> = rows
        .iter()
        .map(|r| (r.get("id"), r.get("last_token_exp"), r.get("jwks_grace_ms")))
        .collect();
    assert_eq!(
        got,
        vec![
            ("k1".to_owned(), Some(2_000_000_500_000), 360_000),
            ("k2".to_owned(), Some(1_900_000_000_000), 360_000),
            // A retired key is out of the JWKS already.
            ("k3".to_owned(), None, 360_000),
        ]
    );
    pool.close().await;
}

store_tests!(
    a_key_stays_published_until_its_last_token_expires,
    a_shorter_max_age_holds_back_the_next_key_until_old_caches_expire,
    a_key_that_stopped_signing_signs_nothing_from_a_stale_view,
    the_upgrade_learns_each_keys_last_exp_from_the_audit_log,
);
