//! The audit log for auditors: what is recorded and by whom, the query API, the hash chain and its
//! signed checkpoints, and tampering caught by `audit verify`.

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;

use crate::helpers::{eventually, signet_process, Db, TestApp};
use crate::store_tests;

/// Every record, oldest first, through the API.
async fn all_records(app: &TestApp, token: &str) -> Vec<Value> {
    let response = app.get("/v1/audit?order=asc&limit=1000", Some(token)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.body["records"].as_array().unwrap().clone()
}

async fn verify(app: &TestApp) -> Value {
    let response = app.get("/v1/audit/verify", Some(&app.admin_token)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.body
}

async fn every_admin_action_and_state_change_is_recorded_once_with_its_principal(db: Db) {
    let app = TestApp::spawn(db).await;
    let fast = json!({"timing": {"jwks_max_age_seconds": 1, "leeway_seconds": 0, "publish_lead_seconds": 2}});
    let first = app.create_ring("r", fast).await["active_kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let (issuer_id, _) = app.create_client("svc", "issuer", &["r"]).await;
    let (_, auditor) = app.create_client("auditor", "auditor", &[]).await;
    let second = app.rotate("r").await.body["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually(30, "the scheduler to activate the rotated key", || async {
        app.keys("r")
            .await
            .iter()
            .any(|k| k["kid"] == second.as_str() && k["state"] == "active")
    })
    .await;
    let revoked = app
        .post(
            &format!("/v1/keys/{first}/revoke"),
            &app.admin_token,
            json!({"reason": "test"}),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    let gone = app
        .request(
            Method::DELETE,
            &format!("/v1/clients/{issuer_id}"),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);

    let admin = "client:bootstrap-admin";
    let audit_kid = app
        .get("/v1/rings/_audit", Some(&app.admin_token))
        .await
        .body["active_kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let expected = [
        ("client_created", "bootstrap", None),
        // The audit ring, at the first start.
        ("ring_created", "scheduler", None),
        ("key_published", "scheduler", Some(&audit_kid)),
        ("key_activated", "scheduler", Some(&audit_kid)),
        ("ring_created", admin, None),
        ("key_published", admin, Some(&first)),
        ("key_activated", admin, Some(&first)),
        ("client_created", admin, None),
        ("client_created", admin, None),
        ("rotation_requested", admin, None),
        ("key_published", admin, Some(&second)),
        ("key_activated", "scheduler", Some(&second)),
        ("key_retiring", "scheduler", Some(&first)),
        ("key_revoked", admin, Some(&first)),
        ("client_revoked", admin, None),
    ];
    let records = all_records(&app, &auditor).await;
    let actual: Vec<(&str, &str, Option<&str>)> = records
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["principal"].as_str().unwrap(),
                r["kid"].as_str(),
            )
        })
        .collect();
    let expected: Vec<(&str, &str, Option<&str>)> = expected
        .iter()
        .map(|(a, p, k)| (*a, *p, k.map(String::as_str)))
        .collect();
    assert_eq!(actual, expected);
    let seqs: Vec<i64> = records.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=i64::try_from(seqs.len()).unwrap()).collect::<Vec<_>>(),
        "gap-free"
    );

    // The same events, by key and by ring.
    let history = app
        .get(&format!("/v1/keys/{first}/history"), Some(&auditor))
        .await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.body);
    assert_eq!(history.body["state"], "revoked");
    let events: Vec<&str> = history.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "key_published",
            "key_activated",
            "key_retiring",
            "key_revoked"
        ]
    );
    let ring = app.get("/v1/rings/r/history", Some(&auditor)).await;
    assert_eq!(ring.status, StatusCode::OK, "{}", ring.body);
    assert_eq!(ring.body["records"].as_array().unwrap().len(), 8);
    assert_eq!(ring.body["records"][0]["action"], "ring_created");
    for missing in ["/v1/keys/no-such-kid/history", "/v1/rings/nope/history"] {
        let response = app.get(missing, Some(&auditor)).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{missing}");
    }
    assert_eq!(verify(&app).await["ok"], true);
}

async fn signatures_are_listed_by_filter_and_cursor(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_ring("r", json!({})).await;
    let (_, issuer) = app.create_client("svc", "issuer", &["r"]).await;
    let (_, auditor) = app.create_client("auditor", "auditor", &[]).await;
    let before = signet::clock::rfc3339(signet::clock::now_ms().minus_ms(1000));
    let mut jtis = Vec::new();
    for i in 0..5 {
        let signed = app
            .sign(&issuer, "r", json!({"aud": "api", "sub": format!("u{i}")}))
            .await;
        let (_, claims) = crate::helpers::decode_parts(signed.body["token"].as_str().unwrap());
        jtis.push(claims["jti"].as_str().unwrap().to_owned());
    }
    // Newest first, two at a time.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/audit?action=sign&principal=client:svc&limit=2&cursor={c}"),
            None => format!("/v1/audit?action=sign&principal=client:svc&limit=2&from={before}"),
        };
        let page = app.get(&path, Some(&auditor)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        for record in page.body["records"].as_array().unwrap() {
            assert_eq!(record["ring"], "r");
            assert_eq!(record["detail"]["aud"], "api");
            assert_eq!(
                record["detail"]["claims"],
                json!(["aud", "exp", "iat", "iss", "jti", "sub"])
            );
            seen.push(record["detail"]["jti"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    jtis.reverse();
    assert_eq!(seen, jtis);
    let kid = app.jwks_kids("r").await[0].clone();
    let by_kid = app
        .get(
            &format!("/v1/audit?kid={kid}&action=sign&order=asc"),
            Some(&auditor),
        )
        .await;
    assert_eq!(by_kid.body["records"].as_array().unwrap().len(), 5);
    let future = signet::clock::rfc3339(signet::clock::now_ms().plus_ms(60_000));
    let none = app
        .get(&format!("/v1/audit?from={future}"), Some(&auditor))
        .await;
    assert_eq!(none.body["records"], json!([]));
    assert_eq!(none.body["next_cursor"], Value::Null);
    for bad in [
        "/v1/audit?limit=0",
        "/v1/audit?limit=1001",
        "/v1/audit?cursor=abc",
        "/v1/audit?from=yesterday",
        "/v1/audit?order=sideways",
        "/v1/audit?colour=blue",
        "/v1/audit/verify?from=x",
    ] {
        let response = app.get(bad, Some(&auditor)).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            response.body
        );
        assert_eq!(response.body["error"]["code"], "invalid_request", "{bad}");
    }
}

async fn denied_requests_are_recorded_without_the_token(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_ring("r", json!({})).await;
    let (_, issuer) = app.create_client("svc", "issuer", &["r"]).await;
    let (_, auditor) = app.create_client("auditor", "auditor", &[]).await;
    let garbage = "signet_this-token-must-never-be-stored";
    // Denied to authenticated clients: one record each, before the answer.
    let cases = [
        (
            app.sign(&issuer, "r", json!({"aud": "elsewhere"})).await,
            "client:svc",
            "audience_not_allowed",
        ),
        (
            app.request(Method::POST, "/v1/rings/r/rotate", Some(&auditor), None)
                .await,
            "client:auditor",
            "forbidden",
        ),
        (
            app.sign(&auditor, "r", json!({"aud": "api"})).await,
            "client:auditor",
            "forbidden",
        ),
    ];
    for (response, _, code) in &cases {
        assert_eq!(response.body["error"]["code"], *code);
    }
    let denied = app
        .get("/v1/audit?action=request_denied&order=asc", Some(&auditor))
        .await;
    let records = denied.body["records"].as_array().unwrap();
    assert_eq!(records.len(), cases.len(), "{}", denied.body);
    for (record, (response, principal, code)) in records.iter().zip(&cases) {
        assert_eq!(record["principal"], *principal);
        assert_eq!(record["ring"], "r");
        assert_eq!(record["detail"]["code"], *code);
        assert_eq!(record["detail"]["status"], response.status.as_u16());
        assert!(!record["detail"]["reason"].as_str().unwrap().is_empty());
    }
    // Denied without authentication: counted, and written when the minute ends or the server
    // stops.
    for _ in 0..3 {
        let refused = app.sign(garbage, "r", json!({"aud": "api"})).await;
        assert_eq!(refused.body["error"]["code"], "unauthenticated");
    }
    let url = app.db.url.clone();
    let _kept = app.stop().await;
    let store = sqlx::AnyPool::connect(&url).await.unwrap();
    let tallies: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT principal, ring, detail FROM audit_log WHERE action = 'requests_denied'",
    )
    .fetch_all(&store)
    .await
    .unwrap();
    // One tally, or two if the requests straddled the turn of a minute.
    assert!((1..=2).contains(&tallies.len()), "{tallies:?}");
    let mut counted = 0;
    for (principal, ring, detail) in &tallies {
        let detail: Value = serde_json::from_str(detail).unwrap();
        assert_eq!(principal, "anonymous");
        assert_eq!(ring.as_deref(), Some("r"));
        assert_eq!(detail["code"], "unauthenticated");
        assert_eq!(detail["status"], 401);
        assert_eq!(detail["source"], "127.0.0.1");
        assert_eq!(detail["path"], "/v1/rings/r/sign");
        counted += detail["count"].as_u64().unwrap();
    }
    assert_eq!(counted, 3);
    let dump: Vec<String> = sqlx::query_scalar("SELECT detail FROM audit_log")
        .fetch_all(&store)
        .await
        .unwrap();
    assert!(!dump
        .iter()
        .any(|d| d.contains(garbage) || d.contains(&issuer) || d.contains(&auditor)));
}

/// Opens a connection that may rewrite history: Postgres triggers off for the session (as a
/// superuser can), SQLite's append-only triggers dropped.
async fn attacker(app: &TestApp, db: Db) -> sqlx::AnyConnection {
    let mut conn = sqlx::AnyConnection::connect(&app.db.url).await.unwrap();
    let bypass = match db {
        Db::Postgres => "SET session_replication_role = replica",
        Db::Sqlite => "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete",
    };
    sqlx::raw_sql(bypass).execute(&mut conn).await.unwrap();
    conn
}

/// What an attacker with write access does: edits records from `first` on with `edit` (given
/// each record and the new hashes so far, by seq), recomputes every hash after it and moves the
/// chain head, leaving a chain that is consistent in itself. The chain head is locked first, so
/// that a record the server appends meanwhile (a lifecycle event, a checkpoint) waits for the
/// rewrite and is chained to its new head.
async fn rewrite_chain_from(
    app: &TestApp,
    conn: &mut sqlx::AnyConnection,
    first: i64,
    mut edit: impl FnMut(&mut signet::store::StoredAuditRecord, &HashMap<i64, String>),
) {
    let store = &app.store;
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("UPDATE audit_chain SET hash = hash WHERE id = 1")
        .execute(&mut *tx)
        .await
        .unwrap();
    let mut hashes = HashMap::new();
    let mut prev = store
        .audit_record(first - 1)
        .await
        .unwrap()
        .unwrap()
        .hash
        .unwrap();
    let head = store.audit_head().await.unwrap();
    for seq in first..=head.seq {
        let mut record = store.audit_record(seq).await.unwrap().unwrap();
        edit(&mut record, &hashes);
        let hash = record.expected_hash(&prev).unwrap();
        sqlx::query(
            "UPDATE audit_log SET principal = $1, detail = $2, kid = $3, hash = $4 WHERE seq = $5",
        )
        .bind(&record.principal)
        .bind(&record.detail)
        .bind(&record.kid)
        .bind(&hash)
        .bind(seq)
        .execute(&mut *tx)
        .await
        .unwrap();
        hashes.insert(seq, hash.clone());
        prev = hash;
    }
    sqlx::query("UPDATE audit_chain SET hash = $1")
        .bind(&prev)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// A log with signatures and a signed checkpoint in the middle; returns the app and the seq of
/// a signature record before the checkpoint.
async fn log_with_a_checkpoint(db: Db) -> (TestApp, i64) {
    let app = TestApp::spawn(db).await;
    app.create_ring("r", json!({"combined_jwks": true})).await;
    let (_, issuer) = app.create_client("svc", "issuer", &["r"]).await;
    let sign = || async {
        let signed = app.sign(&issuer, "r", json!({"aud": "api"})).await;
        assert_eq!(signed.status, StatusCode::OK, "{}", signed.body);
    };
    for _ in 0..4 {
        sign().await;
    }
    app.services.rings.checkpoint_audit().await.unwrap();
    let sign = || async {
        let signed = app.sign(&issuer, "r", json!({"aud": "api"})).await;
        assert_eq!(signed.status, StatusCode::OK, "{}", signed.body);
    };
    for _ in 0..4 {
        sign().await;
    }
    let report = verify(&app).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["checkpoints"], 1, "{report}");
    let signs = app
        .get("/v1/audit?action=sign&order=asc", Some(&app.admin_token))
        .await;
    let target = signs.body["records"][1]["seq"].as_i64().unwrap();
    (app, target)
}

async fn problem_after(db: Db, tamper: impl FnOnce(i64) -> Vec<String>) -> (Value, i64) {
    let (app, target) = log_with_a_checkpoint(db).await;
    let mut conn = attacker(&app, db).await;
    for statement in tamper(target) {
        sqlx::query(&statement).execute(&mut conn).await.unwrap();
    }
    let report = verify(&app).await;
    assert_eq!(report["ok"], false, "{report}");
    (report["problem"].clone(), target)
}

async fn verify_names_an_edited_a_deleted_and_a_reordered_record(db: Db) {
    let (problem, target) = problem_after(db, |seq| {
        vec![format!(
            "UPDATE audit_log SET principal = 'client:someone-else' WHERE seq = {seq}"
        )]
    })
    .await;
    assert_eq!(problem["seq"], target, "{problem}");
    assert!(
        problem["reason"]
            .as_str()
            .unwrap()
            .contains("not as written"),
        "{problem}"
    );

    let (problem, target) = problem_after(db, |seq| {
        vec![format!("DELETE FROM audit_log WHERE seq = {seq}")]
    })
    .await;
    assert_eq!(problem["seq"], target, "{problem}");
    assert!(
        problem["reason"].as_str().unwrap().contains("missing"),
        "{problem}"
    );

    let (problem, target) = problem_after(db, |seq| {
        vec![format!("DELETE FROM audit_log WHERE seq > {seq}")]
    })
    .await;
    assert_eq!(problem["seq"], target + 1, "{problem}");
    assert!(
        problem["reason"].as_str().unwrap().contains("chain head"),
        "{problem}"
    );

    let (problem, target) = problem_after(db, |seq| {
        vec![
            format!("UPDATE audit_log SET seq = -1 WHERE seq = {seq}"),
            format!("UPDATE audit_log SET seq = {seq} WHERE seq = {}", seq + 1),
            format!("UPDATE audit_log SET seq = {} WHERE seq = -1", seq + 1),
        ]
    })
    .await;
    assert_eq!(problem["seq"], target, "{problem}");
}

/// An attacker who rewrites a record and every hash after it (and the chain head) leaves a
/// consistent chain, but not the signed checkpoint.
async fn a_rewritten_chain_is_caught_by_its_signed_checkpoint(db: Db) {
    let (app, target) = log_with_a_checkpoint(db).await;
    let mut conn = attacker(&app, db).await;
    rewrite_chain_from(&app, &mut conn, target, |record, _| {
        if record.seq == target {
            record.principal = "client:someone-else".into();
        }
    })
    .await;
    let report = verify(&app).await;
    assert_eq!(report["ok"], false, "{report}");
    let checkpoint = app
        .get("/v1/audit?action=audit_checkpoint", Some(&app.admin_token))
        .await;
    assert_eq!(
        report["problem"]["seq"], checkpoint.body["records"][0]["seq"],
        "{report}"
    );
    assert!(
        report["problem"]["reason"]
            .as_str()
            .unwrap()
            .contains("rewritten"),
        "{report}"
    );
}

/// A writer of the database who rewrites a record, swaps the audit key row for a key of their
/// own and re-signs the checkpoint fools a verification that trusts the store's keys, but not
/// one anchored to the audit JWKS saved earlier, nor the running server's.
async fn a_forged_checkpoint_is_caught_by_the_trust_anchor(db: Db) {
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    let (app, target) = log_with_a_checkpoint(db).await;
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("audit-jwks.json");
    let database = [("SIGNET_DATABASE_URL", app.db.url.as_str())];
    let exported = signet_process(
        &["audit", "export-jwks", "--out", saved.to_str().unwrap()],
        &database,
    )
    .output()
    .unwrap();
    assert!(exported.status.success(), "{exported:?}");

    // The attacker's own key, published under its own thumbprint in the audit ring's row.
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let forger =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = forger.public_key().as_ref();
    let key = signet_core::PublicKey::Ec {
        spec: signet_core::KeySpec::EcP256,
        x: point[1..33].to_vec(),
        y: point[33..].to_vec(),
    };
    let jwk = signet::jose::public_jwk(
        &key,
        signet::domain::KeyAlgorithm::Sign(signet_core::Algorithm::ES256),
    );
    let kid = jwk["kid"].as_str().unwrap().to_owned();
    let mut conn = attacker(&app, db).await;
    sqlx::query("UPDATE keys SET kid = $1, public_jwk = $2 WHERE ring = '_audit'")
        .bind(&kid)
        .bind(jwk.to_string())
        .execute(&mut conn)
        .await
        .unwrap();

    // History rewritten from `target` on, every hash recomputed, the checkpoint re-signed.
    rewrite_chain_from(&app, &mut conn, target, |record, hashes| {
        if record.seq == target {
            record.principal = "client:someone-else".into();
        }
        if record.action == "audit_checkpoint" {
            let mut detail: Value = serde_json::from_str(&record.detail).unwrap();
            let upto = detail["upto_seq"].as_i64().unwrap();
            let upto_hash: String = hashes[&upto].clone();
            let b64 = |v: Value| signet::jose::b64url(v.to_string().as_bytes());
            let input = format!(
                "{}.{}",
                b64(json!({"alg": "ES256", "kid": kid})),
                b64(json!({"iss": "signet-audit", "seq": upto, "hash": upto_hash, "iat": 1}))
            );
            let signature = forger.sign(&rng, input.as_bytes()).unwrap();
            detail["upto_hash"] = json!(upto_hash);
            detail["jws"] = json!(format!(
                "{input}.{}",
                signet::jose::b64url(signature.as_ref())
            ));
            record.detail = detail.to_string();
            record.kid = Some(kid.clone());
        }
    })
    .await;

    // Trusting the store's keys, the forgery passes: that is why the anchor exists.
    let fooled = signet_process(&["audit", "verify"], &database)
        .output()
        .unwrap();
    assert!(fooled.status.success(), "{fooled:?}");
    let fooled: Value = serde_json::from_slice(&fooled.stdout).unwrap();
    assert_eq!(
        (fooled["ok"].clone(), fooled["trust"].clone()),
        (json!(true), json!("store"))
    );
    // Anchored to the JWKS saved before, it fails at the forged checkpoint.
    let anchored = signet_process(
        &["audit", "verify", "--trusted-jwks", saved.to_str().unwrap()],
        &database,
    )
    .output()
    .unwrap();
    assert!(!anchored.status.success(), "{anchored:?}");
    let report: Value = serde_json::from_slice(&anchored.stdout).unwrap();
    assert_eq!(report["trust"], "anchor", "{report}");
    assert!(
        report["problem"]["reason"]
            .as_str()
            .unwrap()
            .contains("trust anchor"),
        "{report}"
    );
    // So does the server, anchored to the audit keys it saw when it started.
    let report = verify(&app).await;
    assert_eq!(report["ok"], false, "{report}");
}

/// A checkpoint that came later than its cadence (5 minutes after the first record it covers,
/// plus a minute of grace) is reported, not failed: an outage makes one too.
async fn a_late_checkpoint_is_reported_as_a_cadence_gap(db: Db) {
    use signet::domain::{AuditEvent, AuditRecord};

    let (app, _) = log_with_a_checkpoint(db).await;
    let report = verify(&app).await;
    assert_eq!(report["cadence_gaps"], json!([]), "{report}");
    // A record stamped twenty minutes ago waits for the next checkpoint, which comes now.
    let long_ago = signet::clock::now_ms().minus_ms(20 * 60 * 1000);
    app.store
        .append_audit_batch(&[AuditRecord::new(
            long_ago,
            "test",
            AuditEvent::SchedulePaused,
        )])
        .await
        .unwrap();
    let waiting = app.store.audit_head().await.unwrap().seq;
    app.services.rings.checkpoint_audit().await.unwrap();
    let report = verify(&app).await;
    assert_eq!(report["ok"], true, "{report}");
    let gaps = report["cadence_gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{report}");
    assert_eq!(gaps[0]["from_seq"], waiting);
    assert!(gaps[0]["after_seconds"].as_i64().unwrap() >= 20 * 60);
}

/// The checkpoint is a JWS anyone can check against the audit ring's published JWKS.
async fn checkpoints_verify_against_the_audit_rings_jwks(db: Db) {
    let (app, _) = log_with_a_checkpoint(db).await;
    let checkpoint = app
        .get("/v1/audit?action=audit_checkpoint", Some(&app.admin_token))
        .await;
    let record = &checkpoint.body["records"][0];
    assert_eq!(record["principal"], "scheduler");
    let jwks = app.get("/v1/rings/_audit/jwks.json", None).await;
    assert_eq!(jwks.status, StatusCode::OK);
    let jwk = jwks.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == record["kid"])
        .expect("the checkpoint key is published");
    let all = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(
        all.body["keys"].as_array().map(Vec::len),
        Some(1),
        "{}",
        all.body
    );
    assert!(
        !all.body
            .to_string()
            .contains(record["kid"].as_str().unwrap()),
        "checkpoint keys sign no tokens and stay out of the combined JWKS"
    );
    let verified = signet::jose::verify_signature(record["detail"]["jws"].as_str().unwrap(), jwk)
        .expect("the checkpoint verifies");
    assert_eq!(verified.claims["seq"], record["detail"]["upto_seq"]);
    assert_eq!(verified.claims["hash"], record["detail"]["upto_hash"]);
    // No one may sign with the audit ring.
    let refused = app
        .post(
            "/v1/clients",
            &app.admin_token,
            json!({"name": "forger", "role": "issuer", "rings": ["_audit"]}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
}

async fn the_database_refuses_to_update_or_delete_audit_records(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_ring("r", json!({})).await;
    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    for statement in [
        "UPDATE audit_log SET principal = 'x' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 1",
        "DELETE FROM audit_log",
        "UPDATE audit_chain SET seq = seq - 1",
        "DELETE FROM audit_chain",
    ] {
        let error = sqlx::query(statement)
            .execute(&pool)
            .await
            .expect_err(statement);
        assert!(
            error.to_string().contains("append-only")
                || error.to_string().contains("only moves forward"),
            "{statement}: {error}"
        );
    }
    if db == Db::Postgres {
        let error = sqlx::query("TRUNCATE audit_log")
            .execute(&pool)
            .await
            .expect_err("truncate");
        assert!(error.to_string().contains("append-only"), "{error}");
    }
    assert_eq!(verify(&app).await["ok"], true);
}

/// Two stores on one database append in turns, as two replicas do: each chains its batch onto
/// the head it left last when that is still the head, and onto the head it reads otherwise
/// (the other store moved it, or a writer of the database rewrote it). Two batches are larger
/// than one statement takes (256 rows), one of each kind. The chain stays whole and gap-free
/// either way.
async fn appends_in_turns_from_two_stores_keep_one_chain(db: Db) {
    let app = TestApp::spawn(db).await;
    let url = secrecy::SecretString::from(app.db.url.clone());
    let stores = [
        signet::store::Store::connect(&url).await.unwrap(),
        signet::store::Store::connect(&url).await.unwrap(),
    ];
    let batch = |n: usize, by: &str| -> Vec<signet::domain::AuditRecord> {
        (0..n)
            .map(|i| {
                signet::domain::AuditRecord::new(
                    signet::domain::UnixMillis::from_millis(1_800_000_000_000),
                    by,
                    signet::domain::AuditEvent::ClientRevoked {
                        client_id: format!("c{i}"),
                    },
                )
            })
            .collect()
    };
    // Turn 1 goes on the head store 0 left; turn 5 finds the head rewritten.
    let sizes = [1, 260, 3, 4, 5, 520, 7];
    let appended = |turns: usize| i64::try_from(sizes[..turns].iter().sum::<usize>()).unwrap();
    let before = app.store.audit_head().await.unwrap().seq;
    for (turn, store) in [0, 0, 1, 0, 1, 1, 0].into_iter().enumerate() {
        let by = format!("store-{store}-turn-{turn}");
        stores[store]
            .append_audit_batch(&batch(sizes[turn], &by))
            .await
            .unwrap();
        if turn == 4 {
            // A writer of the database moves the head's hash in place: the next append of either
            // store chains onto the hash it finds, and verify names the break the rewrite made.
            let mut conn = sqlx::AnyConnection::connect(&app.db.url).await.unwrap();
            sqlx::query("UPDATE audit_chain SET hash = $1 WHERE id = 1")
                .bind("ab".repeat(32))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
    let head = app.store.audit_head().await.unwrap();
    assert_eq!(head.seq - before, appended(sizes.len()));
    let records = all_records(&app, &app.admin_token).await;
    let seqs: Vec<i64> = records.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let report = verify(&app).await;
    let first_after_rewrite = before + appended(5) + 1;
    assert_eq!(
        report["problem"]["seq"], first_after_rewrite,
        "only the rewrite breaks the chain: {report}"
    );
    for store in stores {
        store.close().await;
    }
}

/// A server with the ring `r`, and its active key's kid.
async fn ring_r(db: Db) -> (TestApp, signet::domain::RingName, signet::domain::Kid) {
    let app = TestApp::spawn(db).await;
    let created = app.create_ring("r", json!({})).await;
    let kid = signet::domain::Kid::parse(created["active_kid"].as_str().unwrap()).unwrap();
    (app, signet::domain::RingName::parse("r").unwrap(), kid)
}

/// The audit record of a signature by `kid` of `ring` for the subject `sub`, expiring at `exp`.
fn signature(
    ring: &signet::domain::RingName,
    kid: &signet::domain::Kid,
    sub: &str,
    exp: i64,
) -> signet::domain::AuditRecord {
    let facts = signet::domain::SignatureFacts {
        jti: None,
        sub: Some(json!(sub)),
        aud: None,
        iat: None,
        exp: Some(json!(exp)),
        claim_names: Vec::new(),
        payload_sha256: "-".into(),
        encrypted_to: None,
    };
    signet::domain::AuditRecord::of_ring(
        signet::domain::UnixMillis::from_millis(1_800_000_000_000),
        "svc",
        ring,
        Some(kid),
        signet::domain::AuditEvent::Sign(facts),
    )
}

/// The audit writer's connection under load (each batch queued while the last committed: a
/// batch of signatures goes as one call that is its own transaction) between another store's
/// appends: every batch is taken whole and chained, and a batch with a key that left the
/// signing states behind the server's back (a fault we cannot cause otherwise, named as one) is
/// refused whole, changing nothing: not the chain, not a key's `last_token_exp`. The writer's
/// next batch, once the key signs again, is taken.
async fn a_busy_writers_batches_are_taken_whole_or_not_at_all(db: Db) {
    let (app, ring, kid) = ring_r(db).await;
    let url = secrecy::SecretString::from(app.db.url.clone());
    let store = signet::store::Store::connect(&url).await.unwrap();
    let mut writer = store.audit_connection();
    let before = app.store.audit_head().await.unwrap().seq;
    let exp: i64 = 1_900_000_000;
    let batch = |turn: i64, n: i64| -> Vec<signet::domain::AuditRecord> {
        (0..n)
            .map(|i| signature(&ring, &kid, &format!("turn-{turn}-{i}"), exp + turn))
            .collect()
    };
    // Turn 0 opens the connection (with BEGIN); turns 1 and 2 go onto the head the writer left;
    // turn 3 finds it moved by the other store and takes the lock; turn 4 goes to the lock at
    // once and finds the head where the writer left it, so turn 5 and the refused batch go onto
    // the head the writer left again (as one call each).
    let sizes = [1, 3, 2, 4, 5, 1];
    for (turn, n) in (0..).zip(sizes) {
        writer
            .append(&batch(turn, n), true)
            .await
            .unwrap_or_else(|e| panic!("turn {turn}: {e}"));
        if turn == 2 {
            app.store.append_audit_batch(&batch(100, 1)).await.unwrap();
        }
    }
    let taken = sizes.iter().sum::<i64>() + 1;
    assert_eq!(app.store.audit_head().await.unwrap().seq - before, taken);
    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    sqlx::query("UPDATE keys SET state = 'retired' WHERE kid = $1")
        .bind(kid.as_str())
        .execute(&pool)
        .await
        .unwrap();
    let refused = writer.append(&batch(200, 3), true).await;
    assert!(
        matches!(refused, Err(signet::store::StoreError::Changed(_))),
        "{refused:?}"
    );
    assert_eq!(app.store.audit_head().await.unwrap().seq - before, taken);
    let last_exp: i64 = sqlx::query_scalar("SELECT last_token_exp FROM keys WHERE kid = $1")
        .bind(kid.as_str())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(last_exp, (exp + 100) * 1000);
    sqlx::query("UPDATE keys SET state = 'active' WHERE kid = $1")
        .bind(kid.as_str())
        .execute(&pool)
        .await
        .unwrap();
    writer.append(&batch(300, 2), true).await.unwrap();
    let taken = taken + 2;
    assert_eq!(app.store.audit_head().await.unwrap().seq - before, taken);
    let records = all_records(&app, &app.admin_token).await;
    let subjects: Vec<&str> = records
        .iter()
        .filter(|r| r["action"] == "sign")
        .map(|r| r["detail"]["sub"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects.len(),
        usize::try_from(taken).unwrap(),
        "{subjects:?}"
    );
    assert!(!subjects.iter().any(|s| s.starts_with("turn-200-")));
    assert_eq!(verify(&app).await["ok"], true);
    writer.close().await;
    store.close().await;
}

/// Two stores append one signature each in turns, as two replicas' writers do: every time, the
/// head stands at the very `seq` a store's stale hint would move it to, yet only its hash says
/// whose it is. Every signature is taken, chained, and raises its key's `last_token_exp`.
async fn signatures_in_turns_from_two_stores_are_all_taken(db: Db) {
    let (app, ring, kid) = ring_r(db).await;
    let url = secrecy::SecretString::from(app.db.url.clone());
    let stores = [
        signet::store::Store::connect(&url).await.unwrap(),
        signet::store::Store::connect(&url).await.unwrap(),
    ];
    let before = app.store.audit_head().await.unwrap().seq;
    let exp: i64 = 1_900_000_000;
    for turn in 0..6_i64 {
        let record = signature(&ring, &kid, &format!("turn-{turn}"), exp + turn);
        stores[usize::try_from(turn % 2).unwrap()]
            .append_audit_batch(&[record])
            .await
            .unwrap_or_else(|e| panic!("turn {turn}: {e}"));
    }
    assert_eq!(app.store.audit_head().await.unwrap().seq - before, 6);
    let keys = app.keys("r").await;
    let key = keys.iter().find(|k| k["kid"] == kid.as_str()).unwrap();
    let last_exp = chrono::DateTime::parse_from_rfc3339(key["last_token_exp"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert_eq!(last_exp, exp + 5);
    assert_eq!(verify(&app).await["ok"], true);
    for store in stores {
        store.close().await;
    }
}

store_tests!(
    appends_in_turns_from_two_stores_keep_one_chain,
    signatures_in_turns_from_two_stores_are_all_taken,
    a_busy_writers_batches_are_taken_whole_or_not_at_all,
    every_admin_action_and_state_change_is_recorded_once_with_its_principal,
    signatures_are_listed_by_filter_and_cursor,
    denied_requests_are_recorded_without_the_token,
    verify_names_an_edited_a_deleted_and_a_reordered_record,
    a_rewritten_chain_is_caught_by_its_signed_checkpoint,
    a_forged_checkpoint_is_caught_by_the_trust_anchor,
    a_late_checkpoint_is_reported_as_a_cadence_gap,
    checkpoints_verify_against_the_audit_rings_jwks,
    the_database_refuses_to_update_or_delete_audit_records,
);

/// Postgres only (SQLite's one write lock serialises every transaction): a key revoked while
/// another replica's writer appends a signature by it, both queued behind the chain head's lock
/// (a session of the test's holds it, so that they meet in this order): both commit, in turn.
/// Before every change took the head's lock first, the revocation locked the key, then waited
/// for the head that the writer held while it waited for the key: Postgres broke the deadlock
/// by failing one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_while_a_writer_appends_its_signatures_takes_its_turn() {
    let app = std::sync::Arc::new(TestApp::spawn(Db::Postgres).await);
    let created = app.create_ring("r", json!({})).await;
    let kid = signet::domain::Kid::parse(created["active_kid"].as_str().unwrap()).unwrap();
    let ring = signet::domain::RingName::parse("r").unwrap();
    // The key retires (it still signs), so that revoking it needs no successor.
    assert_eq!(
        app.rotate_immediately("r").await.status,
        StatusCode::ACCEPTED
    );
    let store = signet::store::Store::connect(&secrecy::SecretString::from(app.db.url.clone()))
        .await
        .unwrap();
    let mut writer = store.audit_connection();
    let exp: i64 = 1_900_000_000;
    writer
        .append(&[signature(&ring, &kid, "before", exp)], true)
        .await
        .unwrap();
    let before = app.store.audit_head().await.unwrap().seq;

    let mut holder = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    sqlx::raw_sql("BEGIN; SELECT 1 FROM audit_chain WHERE id = 1 FOR UPDATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let watcher = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let waiting = |sessions: i64| {
        let watcher = watcher.clone();
        async move {
            let count: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&watcher)
            .await
            .unwrap();
            count >= sessions
        }
    };
    let record = signature(&ring, &kid, "during", exp + 1);
    let appended = tokio::spawn(async move {
        let appended = writer.append(&[record], true).await;
        writer.close().await;
        appended
    });
    eventually(60, "the writer waits for the head", || waiting(1)).await;
    let revoked = tokio::spawn({
        let app = app.clone();
        let kid = kid.clone();
        async move {
            app.post(
                &format!("/v1/keys/{kid}/revoke"),
                &app.admin_token,
                json!({"reason": "compromised"}),
            )
            .await
        }
    });
    eventually(60, "the revocation waits too", || waiting(2)).await;
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();

    appended
        .await
        .unwrap()
        .expect("the writer's signature is taken");
    let revoked = revoked.await.unwrap();
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert_eq!(revoked.body["state"], "revoked");
    assert_eq!(app.store.audit_head().await.unwrap().seq - before, 2);
    let records = all_records(&app, &app.admin_token).await;
    let newest: Vec<(&str, &str)> = records[records.len() - 2..]
        .iter()
        .map(|r| (r["action"].as_str().unwrap(), r["kid"].as_str().unwrap()))
        .collect();
    assert_eq!(
        newest,
        [("sign", kid.as_str()), ("key_revoked", kid.as_str())],
        "the signature, which queued first, then the revocation"
    );
    assert_eq!(verify(&app).await["ok"], true);
    store.close().await;
}

/// Postgres only (roles are cluster-wide and made by the migration): a login in `signet_auditor`
/// reads the views and nothing else; a login in `signet_app` runs signet but cannot change or
/// delete an audit record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auditor_role_reads_only_the_views_and_the_app_role_cannot_rewrite_the_log() {
    let app = TestApp::spawn(Db::Postgres).await;
    app.create_ring("r", json!({})).await;
    let (_, issuer) = app.create_client("svc", "issuer", &["r"]).await;
    assert_eq!(
        app.sign(&issuer, "r", json!({"aud": "api"})).await.status,
        StatusCode::OK
    );
    let suffix = signet::random::random_id(6)
        .to_lowercase()
        .replace(['-', '_'], "x");
    let (auditor, app_login) = (format!("auditor_{suffix}"), format!("app_{suffix}"));
    let mut admin = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    sqlx::raw_sql(&format!(
        "CREATE ROLE {auditor} LOGIN IN ROLE signet_auditor; CREATE ROLE {app_login} LOGIN IN ROLE signet_app"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    let url_for = |role: &str| app.db.url.replacen("postgres@", &format!("{role}@"), 1);
    // Refused by the grants (not only by the append-only trigger, which raises the same code).
    let refused = |e: sqlx::Error| {
        e.as_database_error().is_some_and(|d| {
            d.code().as_deref() == Some("42501") && d.message().starts_with("permission denied")
        })
    };

    let mut reader = sqlx::PgConnection::connect(&url_for(&auditor))
        .await
        .unwrap();
    for view in crate::helpers::AUDITOR_VIEWS {
        let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {view}"))
            .fetch_one(&mut reader)
            .await
            .unwrap_or_else(|e| panic!("{view}: {e}"));
        if view == "signatures_by_key" {
            assert_eq!(rows, 1);
        }
    }
    for statement in [
        "SELECT count(*) FROM audit_log",
        "SELECT count(*) FROM keys",
        "SELECT count(*) FROM rings",
        "SELECT count(*) FROM clients",
        "SELECT count(*) FROM audit_chain",
        "INSERT INTO audit_log (seq, time, action, principal, detail) VALUES (0, 0, 'x', 'x', '{}')",
    ] {
        let error = sqlx::query(statement).execute(&mut reader).await.expect_err(statement);
        assert!(refused(error), "{statement}");
    }

    // The application's own role: signet runs and appends, but the log cannot be rewritten.
    let store = signet::store::Store::connect(&secrecy::SecretString::from(url_for(&app_login)))
        .await
        .expect("signet connects as a signet_app login");
    store
        .append_audit_batch(&[signet::domain::AuditRecord::new(
            signet::clock::now_ms(),
            "cli",
            signet::domain::AuditEvent::ClientRevoked {
                client_id: "no-such-client".into(),
            },
        )])
        .await
        .expect("the app role appends");
    let mut writer = sqlx::PgConnection::connect(&url_for(&app_login))
        .await
        .unwrap();
    for statement in [
        "UPDATE audit_log SET principal = 'x' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 1",
        "TRUNCATE audit_log",
        "UPDATE audit_records SET principal = 'x' WHERE seq = 1",
        "DELETE FROM audit_records WHERE seq = 1",
    ] {
        let error = sqlx::query(statement)
            .execute(&mut writer)
            .await
            .expect_err(statement);
        assert!(refused(error), "{statement}");
    }
    store.close().await;
    drop((reader, writer));
    assert_eq!(verify(&app).await["ok"], true);
    sqlx::raw_sql(&format!("DROP ROLE {auditor}; DROP ROLE {app_login}"))
        .execute(&mut admin)
        .await
        .unwrap();
}

/// `signet audit verify` on the command line: a JSON report, and exit status 1 naming the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_verifies_the_chain_and_fails_on_a_tampered_record() {
    let app = TestApp::spawn(Db::Sqlite).await;
    app.create_ring("r", json!({})).await;
    let verify_cli = || {
        crate::helpers::signet_process(&["audit", "verify", "--database-url", &app.db.url], &[])
            .output()
            .expect("signet runs")
    };
    let good = verify_cli();
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let report: Value = serde_json::from_slice(&good.stdout).unwrap();
    assert_eq!(report["ok"], true);
    // The bootstrap admin, the audit ring and its key at start, then the ring "r" and its key.
    assert_eq!(report["records"], 7, "{report}");

    let mut conn = attacker(&app, Db::Sqlite).await;
    sqlx::query("UPDATE audit_log SET time = time + 1 WHERE seq = 3")
        .execute(&mut conn)
        .await
        .unwrap();
    let bad = verify_cli();
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("does not verify at record 3"), "{stderr}");
}
