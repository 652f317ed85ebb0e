//! API clients' lifecycle: expiry, metadata, token rotation with a grace, and claims bound to an
//! issuer (on `/sign`, `/sign-raw` and `/refresh`).

use reqwest::StatusCode;
use serde_json::{json, Map, Value};

use crate::helpers::{decode_parts, eventually, Db, Response, TestApp};
use crate::store_tests;

store_tests!(
    a_client_past_its_expiry_is_refused_like_an_unknown_token,
    metadata_is_a_bounded_object_kept_as_given,
    a_rotated_token_works_until_its_grace_ends_and_only_the_last_one_is_kept,
    bound_claims_are_set_or_enforced_on_every_token_the_issuer_signs,
    a_bound_claim_mismatch_refuses_a_refresh_before_spending_the_token,
);

/// RFC 3339 (seconds) `seconds` from now.
fn from_now(seconds: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(seconds))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn create(app: &TestApp, body: Value) -> Response {
    app.post("/v1/clients", &app.admin_token, body).await
}

/// The listing's entry for client `id`.
async fn listed(app: &TestApp, id: &str) -> Value {
    let list = app.get("/v1/clients", Some(&app.admin_token)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    list.body["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("client {id} is not listed: {}", list.body))
}

/// Changes a client's row behind the server's back (as time passing would).
async fn set_column(app: &TestApp, id: &str, column: &str, value: i64) {
    let store = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    sqlx::query(&format!("UPDATE clients SET {column} = $1 WHERE id = $2"))
        .bind(value)
        .bind(id)
        .execute(&store)
        .await
        .unwrap();
    store.close().await;
}

/// Whether `token` is accepted (an auditor's or admin's: `GET /v1/rings`).
async fn accepted(app: &TestApp, token: &str) -> bool {
    let response = app.get("/v1/rings", Some(token)).await;
    match response.status {
        StatusCode::OK => true,
        StatusCode::UNAUTHORIZED => false,
        other => panic!("{other}: {}", response.body),
    }
}

fn code(response: &Response) -> &str {
    response.body["error"]["code"].as_str().unwrap_or_default()
}

async fn a_client_past_its_expiry_is_refused_like_an_unknown_token(db: Db) {
    let app = TestApp::spawn(db).await;
    for (expires_at, why) in [
        (from_now(-60), "in the past"),
        (from_now(11 * 366 * 24 * 3600), "over 10 years ahead"),
        ("next tuesday".to_owned(), "not RFC 3339"),
    ] {
        let refused = create(
            &app,
            json!({"name": "late", "role": "auditor", "expires_at": expires_at}),
        )
        .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{why}");
        assert_eq!(code(&refused), "invalid_expiry", "{why}: {}", refused.body);
    }

    let expires_at = from_now(24 * 3600);
    let created = create(
        &app,
        json!({"name": "temp", "role": "auditor", "expires_at": expires_at}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["expires_at"], expires_at);
    let id = created.body["id"].as_str().unwrap();
    let token = created.body["token"].as_str().unwrap();
    assert_eq!(listed(&app, id).await["expires_at"], expires_at);
    assert!(accepted(&app, token).await);

    // Its expiry passes (the row says so): refused within the cache's second, with the answer
    // an unknown token gets.
    set_column(&app, id, "expires_at", 1_000).await;
    eventually(10, "the expired client is refused", || async {
        !accepted(&app, token).await
    })
    .await;
    let expired = app.get("/v1/rings", Some(token)).await;
    let unknown = app.get("/v1/rings", Some("signet_unknown")).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired.body["error"]["code"], unknown.body["error"]["code"]);
    assert_eq!(
        expired.body["error"]["message"],
        unknown.body["error"]["message"]
    );
}

async fn metadata_is_a_bounded_object_kept_as_given(db: Db) {
    let app = TestApp::spawn(db).await;
    let members: Map<String, Value> = (0..33).map(|i| (format!("m{i}"), json!(i))).collect();
    for (metadata, why) in [
        (Value::Object(members), "33 members"),
        (json!({"blob": "x".repeat(4100)}), "over 4096 bytes"),
        (json!({"a": {"b": {"c": {"d": {"e": 1}}}}}), "depth 5"),
        (json!(["team"]), "an array"),
        (json!("team"), "a string"),
    ] {
        let refused = create(
            &app,
            json!({"name": "meta", "role": "auditor", "metadata": metadata}),
        )
        .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{why}");
        assert_eq!(
            code(&refused),
            "invalid_metadata",
            "{why}: {}",
            refused.body
        );
    }

    let metadata = json!({"team": "payments", "ticket": 42, "tags": ["a", {"b": [true, null]}]});
    let created = create(
        &app,
        json!({"name": "meta", "role": "auditor", "metadata": metadata}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(listed(&app, id).await["metadata"], metadata);
    let (plain, _) = app.create_client("plain", "auditor", &[]).await;
    assert_eq!(listed(&app, &plain).await["metadata"], Value::Null);
}

async fn a_rotated_token_works_until_its_grace_ends_and_only_the_last_one_is_kept(db: Db) {
    let app = TestApp::spawn(db).await;
    let (id, t0) = app.create_client("rotating", "auditor", &[]).await;
    let rotate = |body: Value| {
        let path = format!("/v1/clients/{id}/rotate");
        let app = &app;
        async move { app.post(&path, &app.admin_token, body).await }
    };
    let token = |response: &Response| {
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        assert_eq!(response.body["id"], id.as_str());
        response.body["token"].as_str().unwrap().to_owned()
    };

    // The default grace: an hour.
    let first = rotate(json!({})).await;
    let t1 = token(&first);
    assert_ne!(t1, t0);
    assert!(first.body["previous_token_expires_at"].is_string());
    assert!(accepted(&app, &t1).await && accepted(&app, &t0).await);

    // Only the token replaced last is kept.
    let t2 = token(&rotate(json!({"grace_seconds": 3600})).await);
    assert!(accepted(&app, &t2).await && accepted(&app, &t1).await);
    assert!(!accepted(&app, &t0).await);

    // The grace ends (the row says so): t1 is refused within the cache's second.
    set_column(&app, &id, "previous_token_expires_at", 1_000).await;
    eventually(10, "the old token's grace ends", || async {
        !accepted(&app, &t1).await
    })
    .await;
    assert!(accepted(&app, &t2).await);

    // No grace: the replaced token is refused at once.
    let t3 = token(&rotate(json!({"grace_seconds": 0})).await);
    assert!(!accepted(&app, &t2).await);
    assert!(accepted(&app, &t3).await);

    let too_long = rotate(json!({"grace_seconds": 604_801})).await;
    assert_eq!(
        too_long.status,
        StatusCode::BAD_REQUEST,
        "{}",
        too_long.body
    );
    let unknown = app
        .post(
            "/v1/clients/nosuchclient/rotate",
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(code(&unknown), "client_not_found");
    let by_itself = app
        .post(&format!("/v1/clients/{id}/rotate"), &t3, json!({}))
        .await;
    assert_eq!(by_itself.status, StatusCode::FORBIDDEN, "an auditor");

    let revoked = app
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/clients/{id}"),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let refused = rotate(json!({})).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(code(&refused), "client_revoked");

    // Audited: the client and the grace, never a token.
    let audit = app
        .get(
            "/v1/audit?action=client_token_rotated",
            Some(&app.admin_token),
        )
        .await;
    let graces: Vec<(Value, Value)> = audit.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["detail"]["client_id"].clone(),
                r["detail"]["grace_seconds"].clone(),
            )
        })
        .collect();
    let expected: Vec<(Value, Value)> = [3600, 3600, 0]
        .into_iter()
        .map(|g| (json!(id), json!(g)))
        .collect();
    let mut sorted = graces.clone();
    sorted.sort_by_key(|(_, g)| std::cmp::Reverse(g.as_u64()));
    assert_eq!(sorted, expected, "{}", audit.body);
    let everything = app
        .get("/v1/audit?limit=1000", Some(&app.admin_token))
        .await;
    let dump = everything.body.to_string();
    for t in [&t0, &t1, &t2, &t3] {
        assert!(!dump.contains(t.as_str()));
    }
}

async fn bound_claims_are_set_or_enforced_on_every_token_the_issuer_signs(db: Db) {
    let app = TestApp::spawn(db).await;
    let ring = app
        .create_ring("tenants", json!({"policy": {"audiences": []}}))
        .await;
    for (bound_claims, role, why) in [
        (json!({"iss": "x"}), "issuer", "a claim the server sets"),
        (json!({"tenant": ["a"]}), "issuer", "not a scalar"),
        (json!(["tenant"]), "issuer", "not an object"),
        (json!({"tenant": "a"}), "auditor", "not an issuer"),
    ] {
        let rings: &[&str] = if role == "issuer" { &["tenants"] } else { &[] };
        let refused = create(
            &app,
            json!({"name": "bound", "role": role, "rings": rings, "bound_claims": bound_claims}),
        )
        .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{why}");
        assert_eq!(
            code(&refused),
            "invalid_bound_claims",
            "{why}: {}",
            refused.body
        );
    }
    let bound = json!({"tenant": "acme", "tier": 2});
    let created = create(
        &app,
        json!({"name": "acme-svc", "role": "issuer", "rings": ["tenants"], "bound_claims": bound}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["bound_claims"], bound);
    let issuer = created.body["token"].as_str().unwrap();

    let claims_of = |response: &Response| {
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        decode_parts(response.body["token"].as_str().unwrap()).1
    };
    let omitted = claims_of(&app.sign(issuer, "tenants", json!({"sub": "u"})).await);
    assert_eq!(
        (&omitted["tenant"], &omitted["tier"]),
        (&json!("acme"), &json!(2))
    );
    let same = claims_of(&app.sign(issuer, "tenants", json!({"tenant": "acme"})).await);
    assert_eq!(same["tier"], 2);
    for other in [json!({"tenant": "globex"}), json!({"tier": "2"})] {
        let refused = app.sign(issuer, "tenants", other.clone()).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{other}");
        assert_eq!(code(&refused), "bound_claim_mismatch");
        let claim = other.as_object().unwrap().keys().next().unwrap();
        let message = refused.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("{claim:?}")), "{message}");
    }

    // An issuer-built payload cannot be completed: each bound claim must be in it.
    let kid = app.jwks_kids("tenants").await[0].clone();
    let b64 = |v: Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let header = b64(json!({"alg": ring["algorithm"], "kid": kid}));
    let now = chrono::Utc::now().timestamp();
    let payload = json!({"iss": "https://issuer.test", "iat": now, "exp": now + 60,
                         "jti": "raw-1", "tenant": "acme"});
    let raw = app
        .post(
            "/v1/rings/tenants/sign-raw",
            issuer,
            json!({"signing_input": format!("{header}.{}", b64(payload.clone()))}),
        )
        .await;
    assert_eq!(raw.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", raw.body);
    assert_eq!(code(&raw), "bound_claim_mismatch");
    let mut complete = payload;
    complete["tier"] = json!(2);
    let raw = app
        .post(
            "/v1/rings/tenants/sign-raw",
            issuer,
            json!({"signing_input": format!("{header}.{}", b64(complete))}),
        )
        .await;
    assert_eq!(raw.status, StatusCode::OK, "{}", raw.body);
}

async fn a_bound_claim_mismatch_refuses_a_refresh_before_spending_the_token(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_ring(
        "sessions",
        json!({"policy": {"typ": "refresh+jwt", "audiences": [], "max_ttl_seconds": null}}),
    )
    .await;
    app.create_ring(
        "api-tokens",
        json!({"policy": {"typ": "at+jwt", "caller_claim": "client_id"}}),
    )
    .await;
    let created = create(
        &app,
        json!({"name": "auth-server", "role": "issuer", "rings": ["sessions", "api-tokens"],
               "bound_claims": {"tenant": "acme"}}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let issuer = created.body["token"].as_str().unwrap();
    let started = app.sign(issuer, "sessions", json!({"sub": "user-1"})).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    let refresh_token = started.body["token"].as_str().unwrap();
    assert_eq!(decode_parts(refresh_token).1["tenant"], "acme");

    let exchange = |claims: Value| {
        app.post(
            "/v1/rings/sessions/refresh",
            issuer,
            json!({"refresh_token": refresh_token, "access_ring": "api-tokens",
                   "claims": claims}),
        )
    };
    let refused = exchange(json!({"aud": "api", "tenant": "globex"})).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert_eq!(code(&refused), "bound_claim_mismatch");

    // The token was not spent: it is exchanged now, and both new tokens carry the claim.
    let exchanged = exchange(json!({"aud": "api"})).await;
    assert_eq!(exchanged.status, StatusCode::OK, "{}", exchanged.body);
    for part in ["access_token", "refresh_token"] {
        let token = exchanged.body[part]["token"].as_str().unwrap();
        assert_eq!(decode_parts(token).1["tenant"], "acme", "{part}");
    }
    let spent = app
        .get(
            "/v1/audit?action=refresh_token_used",
            Some(&app.admin_token),
        )
        .await;
    assert_eq!(spent.body["records"].as_array().unwrap().len(), 1);
}
