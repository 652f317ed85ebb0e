//! Tokens after signing: revocation (a token, a jti, a subject's tokens issued before a time),
//! introspection (RFC 7662) for a ring's introspectors, and verification that checks what a
//! resource server asks and the revocation list, on one replica and across two.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{eventually, Db, TestApp};
use crate::store_tests;

store_tests!(
    a_revoked_token_is_refused_and_inactive_and_its_record_keeps_no_token,
    revocation_by_jti_and_by_subject_covers_exactly_those_tokens,
    introspection_and_revocation_are_for_the_rings_a_client_holds,
    verify_checks_what_the_resource_server_asks,
    a_revocation_on_one_replica_is_honoured_by_the_other,
);

/// A ring `name` (audience `api`), an issuer and an introspector of it: their tokens.
async fn ring_with_clients(app: &TestApp, name: &str) -> (String, String) {
    app.create_ring(name, json!({})).await;
    let (_, issuer) = app
        .create_client(&format!("{name}-issuer"), "issuer", &[name])
        .await;
    let (_, introspector) = app
        .create_client(&format!("{name}-introspector"), "introspector", &[name])
        .await;
    (issuer, introspector)
}

async fn signed(app: &TestApp, issuer: &str, ring: &str, sub: &str) -> String {
    let response = app
        .sign(issuer, ring, json!({"sub": sub, "aud": "api"}))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.body["token"].as_str().unwrap().to_owned()
}

async fn verify(app: &TestApp, body: Value) -> (StatusCode, Value) {
    let response = app
        .request(reqwest::Method::POST, "/v1/verify", None, Some(body))
        .await;
    (response.status, response.body)
}

async fn introspect(app: &TestApp, who: &str, token: &str) -> Value {
    let response = app
        .post("/v1/introspect", who, json!({"token": token}))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.body
}

async fn revoke(app: &TestApp, who: &str, body: Value) -> Value {
    let response = app.post("/v1/tokens/revoke", who, body).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.body
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

async fn a_revoked_token_is_refused_and_inactive_and_its_record_keeps_no_token(db: Db) {
    let app = TestApp::spawn(db).await;
    let (issuer, introspector) = ring_with_clients(&app, "orders").await;
    let (revoked, kept) = (
        signed(&app, &issuer, "orders", "user-1").await,
        signed(&app, &issuer, "orders", "user-1").await,
    );

    let active = introspect(&app, &introspector, &revoked).await;
    assert_eq!(active["active"], true, "{active}");
    assert_eq!(active["sub"], "user-1");
    assert_eq!(active["aud"], "api");
    assert_eq!(active["ring"], "orders");
    assert_eq!(active["token_type"], "JWT");
    let jti = active["jti"].as_str().unwrap().to_owned();

    let answer = revoke(&app, &issuer, json!({"token": revoked})).await;
    assert_eq!(answer["ring"], "orders");
    assert_eq!(answer["jti"], jti.as_str());

    let (status, body) = verify(&app, json!({"token": revoked})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(code(&body), "token_revoked");
    // RFC 7662's own encoding, a form, is taken too.
    let form = crate::helpers::http_client()
        .post(format!("{}/v1/introspect", app.address))
        .bearer_auth(&introspector)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={kept}&token_type_hint=access_token"))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let form: Value = form.json().await.unwrap();
    assert_eq!(
        (&form["active"], &form["sub"]),
        (&json!(true), &json!("user-1"))
    );
    assert_eq!(
        introspect(&app, &introspector, &revoked).await,
        json!({"active": false})
    );
    let (status, body) = verify(&app, json!({"token": kept, "audience": "api"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        introspect(&app, &app.admin_token, &kept).await["active"],
        true
    );

    // Revoking it again is no error (and is recorded again), and holds one entry still.
    revoke(&app, &app.admin_token, json!({"token": revoked})).await;
    let metrics = app.get("/metrics", Some(&app.admin_token)).await.body;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .lines()
            .any(|line| line == "signet_revocations 1"),
        "{metrics}"
    );
    let records = app
        .get("/v1/audit?action=token_revoked", Some(&app.admin_token))
        .await
        .body;
    let records = records["records"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    for record in records {
        assert_eq!(record["ring"], "orders");
        assert_eq!(record["detail"]["jti"], jti.as_str());
        assert!(!record.to_string().contains(&revoked), "{record}");
    }
}

async fn revocation_by_jti_and_by_subject_covers_exactly_those_tokens(db: Db) {
    let app = TestApp::spawn(db).await;
    let (issuer, _) = ring_with_clients(&app, "orders").await;
    let by_jti = signed(&app, &issuer, "orders", "user-2").await;
    let jti = introspect(&app, &app.admin_token, &by_jti).await["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    revoke(&app, &issuer, json!({"ring": "orders", "jti": jti})).await;
    let (_, body) = verify(&app, json!({"token": by_jti})).await;
    assert_eq!(code(&body), "token_revoked", "{body}");

    let old = signed(&app, &issuer, "orders", "user-1").await;
    let other_subject = signed(&app, &issuer, "orders", "user-3").await;
    let iat = introspect(&app, &app.admin_token, &old).await["iat"]
        .as_i64()
        .unwrap();
    // issued_before may not be in the future: wait for the second after the old token's.
    eventually(10, "the clock to pass the old token's iat", || async {
        chrono::Utc::now().timestamp() > iat
    })
    .await;
    let before = chrono::DateTime::from_timestamp(iat + 1, 0)
        .unwrap()
        .to_rfc3339();
    let answer = revoke(
        &app,
        &issuer,
        json!({"ring": "orders", "sub": "user-1", "issued_before": before}),
    )
    .await;
    assert_eq!(answer["sub"], "user-1");
    let new = signed(&app, &issuer, "orders", "user-1").await;

    let (status, body) = verify(
        &app,
        json!({"tokens": [old, new, other_subject, by_jti], "audience": "api"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().unwrap();
    let valid: Vec<bool> = results.iter().map(|r| r["valid"] == true).collect();
    assert_eq!(valid, [false, true, true, false], "{body}");
    assert_eq!(code(&results[0]), "token_revoked");
    assert_eq!(results[1]["claims"]["sub"], "user-1");

    for (refused, why) in [
        (json!({"ring": "orders"}), "give token"),
        (json!({"ring": "orders", "jti": ""}), "jti is 1 to 128"),
        (
            json!({"ring": "orders", "sub": "user-1", "issued_before": "2999-01-01T00:00:00Z"}),
            "future",
        ),
        (
            json!({"ring": "orders", "sub": "user-1", "issued_before": "yesterday"}),
            "RFC 3339",
        ),
    ] {
        let response = app.post("/v1/tokens/revoke", &issuer, refused).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{}",
            response.body
        );
        assert!(
            response.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(why),
            "{}",
            response.body
        );
    }
    let response = app
        .post(
            "/v1/tokens/revoke",
            &app.admin_token,
            json!({"ring": "nope", "jti": "x"}),
        )
        .await;
    assert_eq!(response.status, StatusCode::NOT_FOUND, "{}", response.body);
}

async fn introspection_and_revocation_are_for_the_rings_a_client_holds(db: Db) {
    let app = TestApp::spawn(db).await;
    let (orders_issuer, _) = ring_with_clients(&app, "orders").await;
    let (billing_issuer, billing_introspector) = ring_with_clients(&app, "billing").await;
    let token = signed(&app, &orders_issuer, "orders", "user-1").await;

    // Another ring's introspector learns nothing of the token.
    assert_eq!(
        introspect(&app, &billing_introspector, &token).await,
        json!({"active": false})
    );
    let response = app
        .post("/v1/introspect", &orders_issuer, json!({"token": token}))
        .await;
    assert_eq!(response.status, StatusCode::FORBIDDEN, "{}", response.body);
    let anonymous = app
        .request(
            reqwest::Method::POST,
            "/v1/introspect",
            None,
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    for who in [&billing_issuer, &billing_introspector] {
        let response = app
            .post("/v1/tokens/revoke", who, json!({"token": token}))
            .await;
        assert_eq!(response.status, StatusCode::FORBIDDEN, "{}", response.body);
    }
    let (status, _) = verify(&app, json!({"token": token})).await;
    assert_eq!(status, StatusCode::OK);

    // An introspector needs rings, as an issuer does.
    let response = app
        .post(
            "/v1/clients",
            &app.admin_token,
            json!({"name": "lost", "role": "introspector"}),
        )
        .await;
    assert_eq!(
        response.status,
        StatusCode::BAD_REQUEST,
        "{}",
        response.body
    );
}

async fn verify_checks_what_the_resource_server_asks(db: Db) {
    let app = TestApp::spawn(db).await;
    let (issuer, _) = ring_with_clients(&app, "orders").await;
    app.create_ring("billing", json!({})).await;
    let token = signed(&app, &issuer, "orders", "user-1").await;

    for (asked, accepted) in [
        (
            json!({"ring": "orders", "issuer": "https://issuer.test"}),
            true,
        ),
        (json!({"ring": "billing"}), false),
        (
            json!({"ring": "orders", "issuer": "https://elsewhere.test"}),
            false,
        ),
        (json!({"issuer": "https://elsewhere.test"}), false),
        (json!({"typ": "jwt"}), true),
        (json!({"typ": "at+jwt"}), false),
        (json!({"audience": "api", "max_age_seconds": 3600}), true),
        (json!({"audience": "other"}), false),
    ] {
        let mut body = asked.clone();
        body["token"] = json!(token);
        let (status, answer) = verify(&app, body).await;
        if accepted {
            assert_eq!(status, StatusCode::OK, "{asked}: {answer}");
            assert_eq!(answer["ring"], "orders");
        } else {
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{asked}: {answer}"
            );
            assert_eq!(code(&answer), "token_invalid", "{asked}");
        }
    }
    for refused in [
        json!({"token": token, "leeway_seconds": 301}),
        json!({"tokens": vec![token.clone(); 101]}),
        json!({"token": token, "tokens": [token]}),
        json!({}),
    ] {
        let (status, answer) = verify(&app, refused).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    }
}

/// A revocation made on one replica is honoured by the other's verification and introspection:
/// the other reads it on Postgres's notice, or (SQLite, two servers on one file) at its tick.
async fn a_revocation_on_one_replica_is_honoured_by_the_other(db: Db) {
    let first = TestApp::spawn(db).await;
    let second = TestApp::start(first.data_dir.clone(), first.db.clone()).await;
    let (issuer, introspector) = ring_with_clients(&first, "orders").await;
    eventually(60, "the second replica to hold the ring", || async {
        second
            .services
            .rings
            .view()
            .rings
            .get("orders")
            .is_some_and(|r| r.signer.is_some())
    })
    .await;
    let token = signed(&first, &issuer, "orders", "user-1").await;
    assert_eq!(
        verify(&second, json!({"token": token})).await.0,
        StatusCode::OK
    );

    let postgres = db == Db::Postgres;
    if postgres {
        eventually(
            60,
            "the second replica to listen for revocations",
            || async { second.services.tokens.listening() },
        )
        .await;
    }
    revoke(&first, &issuer, json!({"token": token})).await;
    eventually(
        60,
        "the second replica to refuse the revoked token",
        || async {
            verify(&second, json!({"token": token})).await.0 == StatusCode::UNPROCESSABLE_ENTITY
        },
    )
    .await;
    assert_eq!(
        introspect(&second, &introspector, &token).await,
        json!({"active": false})
    );
    assert_eq!(second.services.tokens.revoked_count(), 1);
    if postgres {
        // Postgres told the second replica (it did not have to wait for its tick).
        eventually(
            60,
            "the second replica to read a revocation notice",
            || async { second.services.tokens.notices() >= 1 },
        )
        .await;
    } else {
        assert_eq!(second.services.tokens.notices(), 0);
    }
}
