//! Signing under policy: what the server sets, what it refuses, and how it says so.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{decode_parts, Db, TestApp};
use crate::store_tests;

async fn ring_with_issuer(db: Db, extra: Value) -> (TestApp, String) {
    let app = TestApp::spawn(db).await;
    app.create_ring("r", extra).await;
    let (_, token) = app.create_client("svc", "issuer", &["r"]).await;
    (app, token)
}

async fn a_signed_token_carries_the_server_set_claims_and_verifies(db: Db) {
    let (app, issuer) = ring_with_issuer(db, json!({})).await;
    let before = chrono::Utc::now().timestamp();
    let response = app
        .post("/v1/rings/r/sign", &issuer, json!({"claims": {"sub": "user-1", "aud": "api", "scope": "read"}, "ttl_seconds": 120, "nbf": true}))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let token = response.body["token"].as_str().unwrap();
    let (header, claims) = decode_parts(token);
    let kid = app.jwks_kids("r").await[0].clone();
    assert_eq!(header, json!({"alg": "ES256", "kid": kid, "typ": "JWT"}));
    assert_eq!(response.body["kid"], kid);
    assert_eq!(claims["iss"], "https://issuer.test");
    assert_eq!(claims["sub"], "user-1");
    assert_eq!(claims["scope"], "read");
    let iat = claims["iat"].as_i64().unwrap();
    assert!(iat >= before && iat <= before + 5);
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 120);
    assert_eq!(claims["nbf"].as_i64().unwrap(), iat);
    assert_eq!(claims["jti"].as_str().unwrap().len(), 22);
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(response.body["expires_at"].as_str().unwrap())
            .unwrap();
    assert_eq!(expires_at.timestamp(), iat + 120);

    let verified = app
        .request(
            reqwest::Method::POST,
            "/v1/verify",
            None,
            Some(json!({"token": token, "audience": "api"})),
        )
        .await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    assert_eq!(verified.body["claims"], claims);
    let wrong_aud = app
        .request(
            reqwest::Method::POST,
            "/v1/verify",
            None,
            Some(json!({"token": token, "audience": "web"})),
        )
        .await;
    assert_eq!(wrong_aud.status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut tampered = token.to_owned();
    tampered.replace_range(tampered.len() - 4.., "AAAA");
    let bad = app
        .request(
            reqwest::Method::POST,
            "/v1/verify",
            None,
            Some(json!({"token": tampered})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["error"]["code"], "token_invalid");

    // Two tokens never share a jti.
    let other = app.sign(&issuer, "r", json!({"aud": "api"})).await;
    assert_ne!(
        decode_parts(other.body["token"].as_str().unwrap()).1["jti"],
        claims["jti"]
    );
}

async fn policy_breaches_are_refused_with_a_code_naming_the_rule(db: Db) {
    let (app, issuer) = ring_with_issuer(
        db,
        json!({"policy": {"required_claims": ["sub"], "forbidden_claims": ["email"], "max_ttl_seconds": 600, "max_token_bytes": 512}}),
    )
    .await;
    let cases = [
        (
            json!({"claims": {"sub": "u", "aud": "api", "iss": "https://evil.test"}}),
            "issuer_mismatch",
        ),
        (
            json!({"claims": {"sub": "u", "aud": "other"}}),
            "audience_not_allowed",
        ),
        (json!({"claims": {"sub": "u"}}), "audience_required"),
        (json!({"claims": {"aud": "api"}}), "missing_required_claim"),
        (
            json!({"claims": {"sub": "u", "aud": "api", "email": "a@b.c"}}),
            "forbidden_claim",
        ),
        (
            json!({"claims": {"sub": "u", "aud": "api", "exp": 1}}),
            "reserved_claim",
        ),
        (
            json!({"claims": {"sub": "u", "aud": "api"}, "ttl_seconds": 601}),
            "ttl_exceeds_max",
        ),
        (
            json!({"claims": {"sub": "u", "aud": "api", "blob": "x".repeat(400)}}),
            "token_too_large",
        ),
    ];
    for (body, code) in cases {
        let response = app.post("/v1/rings/r/sign", &issuer, body.clone()).await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            response.body
        );
        assert_eq!(response.body["error"]["code"], code, "{body}");
        assert!(!response.body["error"]["message"]
            .as_str()
            .unwrap()
            .is_empty());
    }
    // Nothing was signed, so nothing was audited as signed.
    let actions = app.store.audit_actions().await.unwrap();
    assert!(!actions.iter().any(|(action, _, _)| action == "sign"));
}

async fn malformed_requests_get_400_and_oversized_bodies_413(db: Db) {
    let (app, issuer) = ring_with_issuer(db, json!({})).await;
    let unknown_field = app
        .post(
            "/v1/rings/r/sign",
            &issuer,
            json!({"claims": {"aud": "api"}, "ttl": 5}),
        )
        .await;
    assert_eq!(unknown_field.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown_field.body["error"]["code"], "invalid_request");
    assert!(unknown_field.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ttl"));
    let not_object = app
        .post("/v1/rings/r/sign", &issuer, json!({"claims": [1, 2]}))
        .await;
    assert_eq!(not_object.status, StatusCode::BAD_REQUEST);
    let huge = app
        .post(
            "/v1/rings/r/sign",
            &issuer,
            json!({"claims": {"aud": "api", "x": "y".repeat(70_000)}}),
        )
        .await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(huge.body["error"]["code"], "body_too_large");
    let unknown_ring_field = app
        .post(
            "/v1/rings",
            &app.admin_token,
            json!({"name": "x", "policy": {"issuer": "i", "extra": 1}}),
        )
        .await;
    assert_eq!(unknown_ring_field.status, StatusCode::BAD_REQUEST);
    let no_route = app.get("/v1/nothing", None).await;
    assert_eq!(no_route.status, StatusCode::NOT_FOUND);
    assert_eq!(no_route.body["error"]["code"], "not_found");
}

async fn ring_creation_validates_its_settings(db: Db) {
    let app = TestApp::spawn(db).await;
    let bad = [
        (
            json!({"name": "UPPER", "policy": {"issuer": "i"}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "r", "algorithm": "HS256", "policy": {"issuer": "i"}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "r", "algorithm": "ES256", "rsa_bits": 2048, "policy": {"issuer": "i"}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "r", "algorithm": "RS256", "rsa_bits": 1024, "policy": {"issuer": "i"}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "r", "policy": {"issuer": "i"}, "timing": {"jwks_max_age_seconds": 300, "publish_lead_seconds": 100}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "r", "backend": "aws-kms", "policy": {"issuer": "i"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (body, status) in bad {
        let response = app.post("/v1/rings", &app.admin_token, body.clone()).await;
        assert_eq!(response.status, status, "{body}: {}", response.body);
    }
    let lead = app
        .post("/v1/rings", &app.admin_token, json!({"name": "r", "policy": {"issuer": "i"}, "timing": {"publish_lead_seconds": 100}}))
        .await;
    assert!(lead.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("jwks_max_age_seconds + leeway_seconds"));
    app.create_ring("r", json!({})).await;
    let again = app
        .post(
            "/v1/rings",
            &app.admin_token,
            json!({"name": "r", "policy": {"issuer": "i"}}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["error"]["code"], "ring_exists");
}

async fn raw_signing_takes_only_this_rings_header_and_policy(db: Db) {
    let (app, issuer) = ring_with_issuer(db, json!({})).await;
    let kid = app.jwks_kids("r").await[0].clone();
    let now = chrono::Utc::now().timestamp();
    let b64 = |v: Value| signet::jose::b64url(v.to_string().as_bytes());
    let payload = b64(
        json!({"iss": "https://issuer.test", "aud": "api", "sub": "u",
                             "iat": now, "exp": now + 60, "jti": "raw-1"}),
    );
    let input = format!(
        "{}.{payload}",
        b64(json!({"alg": "ES256", "kid": kid, "typ": "JWT"}))
    );
    let response = app
        .post(
            "/v1/rings/r/sign-raw",
            &issuer,
            json!({"signing_input": input}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let token = format!("{input}.{}", response.body["signature"].as_str().unwrap());
    let verified = app
        .request(
            reqwest::Method::POST,
            "/v1/verify",
            None,
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    // A jti is signed once.
    let again = app
        .post(
            "/v1/rings/r/sign-raw",
            &issuer,
            json!({"signing_input": input}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(again.body["error"]["code"], "jti_reused");
    // Members named twice: the policy and a verifier could read different values.
    let header = b64(json!({"alg": "ES256", "kid": kid}));
    let ambiguous = signet::jose::b64url(
        format!(
            r#"{{"iss":"https://evil","iss":"https://issuer.test","aud":"other","aud":"api","iat":{now},"exp":{},"exp":{},"jti":"raw-2"}}"#,
            now + 3 * 365 * 86_400,
            now + 30
        )
        .as_bytes(),
    );
    let refused = app
        .post(
            "/v1/rings/r/sign-raw",
            &issuer,
            json!({"signing_input": format!("{header}.{ambiguous}")}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "duplicate_member");
    let fresh = |extra: Value| {
        let mut claims = json!({"iss": "https://issuer.test", "aud": "api", "iat": now,
                                "exp": now + 10, "jti": "raw-3"});
        crate::helpers::merge(&mut claims, extra);
        b64(claims)
    };

    let refusals = [
        (
            format!(
                "{}.{}",
                b64(json!({"alg": "ES256", "kid": kid, "typ": "at+jwt"})),
                fresh(json!({}))
            ),
            "header_mismatch",
        ),
        (
            format!("{header}.{}", fresh(json!({"iat": now - 3600}))),
            "invalid_claim",
        ),
        (
            format!("{header}.{}", fresh(json!({"jti": null}))),
            "missing_required_claim",
        ),
        (
            format!("{}.{payload}", b64(json!({"alg": "ES384", "kid": kid}))),
            "header_mismatch",
        ),
        (
            format!(
                "{}.{payload}",
                b64(json!({"alg": "ES256", "kid": "someone-else"}))
            ),
            "header_mismatch",
        ),
        (
            format!(
                "{}.{payload}",
                b64(json!({"alg": "ES256", "kid": kid, "jku": "https://evil.test"}))
            ),
            "header_mismatch",
        ),
        (
            format!(
                "{}.{}",
                b64(json!({"alg": "ES256", "kid": kid})),
                fresh(json!({"exp": now + 10_000}))
            ),
            "ttl_exceeds_max",
        ),
        (
            format!(
                "{}.{}",
                b64(json!({"alg": "ES256", "kid": kid})),
                fresh(json!({"aud": "nope"}))
            ),
            "audience_not_allowed",
        ),
    ];
    for (input, code) in refusals {
        let response = app
            .post(
                "/v1/rings/r/sign-raw",
                &issuer,
                json!({"signing_input": input}),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            response.body
        );
        assert_eq!(response.body["error"]["code"], code);
    }
    for garbage in ["no-dot", "!!!.???", "e30"] {
        let response = app
            .post(
                "/v1/rings/r/sign-raw",
                &issuer,
                json!({"signing_input": garbage}),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{garbage}: {}",
            response.body
        );
    }
}

async fn every_signature_is_audited_without_claim_values(db: Db) {
    let (app, issuer) = ring_with_issuer(db, json!({})).await;
    let secret_value = "a-claim-value-that-must-not-be-stored";
    let response = app
        .sign(
            &issuer,
            "r",
            json!({"sub": "u-7", "aud": "api", "note": secret_value}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    let kid = response.body["kid"].as_str().unwrap();
    let actions = app.store.audit_actions().await.unwrap();
    let signs: Vec<_> = actions.iter().filter(|(a, _, _)| a == "sign").collect();
    assert_eq!(signs.len(), 1);
    assert_eq!(signs[0].1, "client:svc");
    assert_eq!(signs[0].2.as_deref(), Some(kid));
    let dump: Vec<String> =
        sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'sign'")
            .fetch_all(&sqlx::AnyPool::connect(&app.db.url).await.unwrap())
            .await
            .unwrap();
    assert!(
        dump[0].contains("u-7")
            && dump[0].contains("payload_sha256")
            && dump[0].contains("\"note\"")
    );
    assert!(!dump[0].contains(secret_value));
}

/// Fail closed: when the audit record cannot be committed, the caller gets 503 and no token.
async fn no_token_is_returned_when_its_audit_record_cannot_commit(db: Db) {
    let (app, issuer) = ring_with_issuer(db, json!({})).await;
    // Signing once caches the client, so the next request reaches the audit write.
    assert_eq!(
        app.sign(&issuer, "r", json!({"aud": "api"})).await.status,
        StatusCode::OK
    );
    // The server's store goes away (its backends too; the ring's file backend signs regardless).
    app.services.close().await;
    let response = app.sign(&issuer, "r", json!({"aud": "api"})).await;
    assert_eq!(
        response.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        response.body
    );
    assert_eq!(response.body["error"]["code"], "database_unavailable");
    assert!(response.body.get("token").is_none());
    assert!(!response.body.to_string().contains("eyJ"));
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
}

async fn readiness_reports_an_unreachable_backend(db: Db) {
    let app = TestApp::spawn(db).await;
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(ready.body["backends"]["file"], "ok");
    let keys = app.data_dir.path().join("file-backend/keys");
    std::fs::rename(&keys, keys.with_extension("moved")).unwrap();
    let ready = app.get("/readyz", None).await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.body
    );
    assert_eq!(ready.body["backends"]["file"], "unavailable");
    assert_eq!(ready.body["errors"][0]["code"], "backend_unavailable");
}

store_tests!(
    a_signed_token_carries_the_server_set_claims_and_verifies,
    policy_breaches_are_refused_with_a_code_naming_the_rule,
    malformed_requests_get_400_and_oversized_bodies_413,
    ring_creation_validates_its_settings,
    raw_signing_takes_only_this_rings_header_and_policy,
    every_signature_is_audited_without_claim_values,
    no_token_is_returned_when_its_audit_record_cannot_commit,
    readiness_reports_an_unreachable_backend,
);
