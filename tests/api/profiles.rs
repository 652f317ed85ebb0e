//! Token profiles and refresh-token families: a ring's `typ` (OAuth access tokens, refresh
//! tokens), the claim it sets to the issuing client, claim-value rules and required `cnf.jkt`;
//! refresh tokens exchanged once, a reuse revoking the family, and two replicas racing.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{self, decode_parts, eventually, http_client, Db, Response, TestApp};
use crate::store_tests;

store_tests!(
    an_access_ring_binds_every_token_to_its_profile_and_rules,
    a_refresh_token_is_exchanged_once_and_a_reuse_revokes_its_family,
    of_concurrent_exchanges_on_two_replicas_exactly_one_succeeds,
);

const JKT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

fn code(response: &Response) -> &str {
    response.body["error"]["code"].as_str().unwrap_or_default()
}

fn token(response: &Response) -> String {
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.body["token"].as_str().unwrap().to_owned()
}

async fn verify(app: &TestApp, body: Value) -> Response {
    app.request(reqwest::Method::POST, "/v1/verify", None, Some(body))
        .await
}

async fn an_access_ring_binds_every_token_to_its_profile_and_rules(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_ring(
        "access",
        json!({"policy": {
            "typ": "at+jwt",
            "caller_claim": "client_id",
            "require_cnf_jkt": true,
            "claim_rules": {"device_trust": {"type": "integer", "minimum": 0, "maximum": 100}}
        }}),
    )
    .await;
    app.create_ring("plain", json!({})).await;
    let (client_id, issuer) = app
        .create_client("svc", "issuer", &["access", "plain"])
        .await;

    let good = json!({"sub": "u1", "aud": "api", "device_trust": 100, "cnf": {"jkt": JKT}});
    let access = token(&app.sign(&issuer, "access", good.clone()).await);
    let (header, claims) = decode_parts(&access);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["client_id"], client_id.as_str());
    assert_eq!(claims["cnf"]["jkt"], JKT);

    let refused = |claims: Value, code: &'static str, named: &'static str| {
        let app = &app;
        let issuer = &issuer;
        async move {
            let response = app.sign(issuer, "access", claims.clone()).await;
            assert_eq!(
                response.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{claims}: {}",
                response.body
            );
            assert_eq!(response.body["error"]["code"], code, "{claims}");
            let message = response.body["error"]["message"].as_str().unwrap();
            assert!(message.contains(named), "{claims}: {message}");
        }
    };
    let mut over = good.clone();
    over["device_trust"] = json!(101);
    refused(
        over,
        "claim_rule_violated",
        "\"device_trust\" breaks its rule maximum",
    )
    .await;
    let mut text = good.clone();
    text["device_trust"] = json!("high");
    refused(text, "claim_rule_violated", "rule type").await;
    let mut unbound = good.clone();
    unbound.as_object_mut().unwrap().remove("cnf");
    refused(unbound, "missing_required_claim", "cnf.jkt").await;
    let mut bad_jkt = good.clone();
    bad_jkt["cnf"]["jkt"] = json!("not-a-thumbprint");
    refused(bad_jkt, "invalid_claim", "cnf.jkt").await;
    let mut other_client = good.clone();
    other_client["client_id"] = json!("someone-else");
    refused(other_client, "reserved_claim", "client_id").await;
    let mut anonymous = good.clone();
    anonymous.as_object_mut().unwrap().remove("sub");
    refused(anonymous, "missing_required_claim", "sub").await;

    // A verifier asking for an access token gets one, and nothing else.
    let plain = token(&app.sign(&issuer, "plain", json!({"aud": "api"})).await);
    assert_eq!(
        verify(&app, json!({"token": access, "typ": "at+jwt"}))
            .await
            .status,
        StatusCode::OK
    );
    let not_access = verify(&app, json!({"token": plain, "typ": "at+jwt"})).await;
    assert_eq!(code(&not_access), "token_invalid", "{}", not_access.body);

    // An issuer-built header must carry the ring's typ.
    let kid = header["kid"].as_str().unwrap();
    let now = signet::clock::now_ms().as_secs();
    let payload = json!({"iss": "https://issuer.test", "sub": "u1", "aud": "api", "iat": now,
        "exp": now + 60, "jti": "raw-1", "client_id": client_id, "cnf": {"jkt": JKT}});
    let raw = |typ: &str| {
        let header = json!({"alg": "ES256", "kid": kid, "typ": typ});
        json!({"signing_input": format!("{}.{}",
            signet::jose::b64url(header.to_string().as_bytes()),
            signet::jose::b64url(payload.to_string().as_bytes()))})
    };
    let wrong_typ = app
        .post("/v1/rings/access/sign-raw", &issuer, raw("JWT"))
        .await;
    assert_eq!(code(&wrong_typ), "header_mismatch", "{}", wrong_typ.body);
    let right_typ = app
        .post("/v1/rings/access/sign-raw", &issuer, raw("at+jwt"))
        .await;
    assert_eq!(right_typ.status, StatusCode::OK, "{}", right_typ.body);

    // The ring's settings are refused when they contradict themselves.
    let contradiction = app
        .post(
            "/v1/rings",
            &app.admin_token,
            json!({"name": "bad", "policy": {"issuer": "x", "typ": "at+jwt"}}),
        )
        .await;
    assert_eq!(contradiction.status, StatusCode::BAD_REQUEST);
}

/// Rings `sessions` (refresh tokens, a week by default) and `api-tokens` (access tokens), and
/// an issuer of both: its token.
async fn refresh_rings(app: &TestApp) -> String {
    let sessions = app
        .create_ring(
            "sessions",
            json!({"policy": {"typ": "refresh+jwt", "audiences": [], "max_ttl_seconds": null}}),
        )
        .await;
    assert_eq!(sessions["policy"]["max_ttl_seconds"], 7 * 24 * 3600);
    app.create_ring(
        "api-tokens",
        json!({"policy": {"typ": "at+jwt", "caller_claim": "client_id"}}),
    )
    .await;
    app.create_client("auth-server", "issuer", &["sessions", "api-tokens"])
        .await
        .1
}

async fn start_family(app: &TestApp, issuer: &str, sub: &str) -> String {
    token(
        &app.sign(issuer, "sessions", json!({"sub": sub, "device_id": "d1"}))
            .await,
    )
}

async fn exchange(app: &TestApp, issuer: &str, refresh_token: &str) -> Response {
    app.post(
        "/v1/rings/sessions/refresh",
        issuer,
        json!({"refresh_token": refresh_token, "access_ring": "api-tokens", "device_id": "d1",
               "claims": {"aud": "api", "scope": "read"}}),
    )
    .await
}

/// The access and refresh tokens of a successful exchange.
fn exchanged(response: &Response) -> (String, String) {
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let part = |name: &str| {
        response.body[name]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no {name}: {}", response.body))
            .to_owned()
    };
    (part("access_token"), part("refresh_token"))
}

async fn a_refresh_token_is_exchanged_once_and_a_reuse_revokes_its_family(db: Db) {
    let app = TestApp::spawn(db).await;
    let issuer = refresh_rings(&app).await;

    let first = start_family(&app, &issuer, "user-1").await;
    let (header, claims) = decode_parts(&first);
    assert_eq!(header["typ"], "refresh+jwt");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        7 * 24 * 3600
    );
    let family = claims["sid"].as_str().unwrap().to_owned();
    let chosen = app
        .sign(&issuer, "sessions", json!({"sub": "u", "sid": "mine"}))
        .await;
    assert_eq!(code(&chosen), "reserved_claim", "{}", chosen.body);
    let raw = app
        .post(
            "/v1/rings/sessions/sign-raw",
            &issuer,
            json!({"signing_input": "e30.e30"}),
        )
        .await;
    assert_eq!(code(&raw), "raw_signing_refused", "{}", raw.body);
    let other_family = start_family(&app, &issuer, "user-2").await;

    // An exchange: an access token for the subject, and the family's next refresh token.
    let (access, second) = exchanged(&exchange(&app, &issuer, &first).await);
    let (access_header, access_claims) = decode_parts(&access);
    assert_eq!(access_header["typ"], "at+jwt");
    assert_eq!(access_claims["sub"], "user-1");
    assert_eq!(access_claims["sid"], family.as_str());
    assert_eq!(access_claims["scope"], "read");
    let (_, next) = decode_parts(&second);
    assert_eq!(next["sid"], family.as_str());
    assert_eq!(next["device_id"], "d1");
    assert_ne!(next["jti"], claims["jti"]);

    // Neither kind of token passes for the other.
    let wrong_kind = exchange(&app, &issuer, &access).await;
    assert_eq!(code(&wrong_kind), "token_invalid", "{}", wrong_kind.body);
    let not_access = verify(&app, json!({"token": second, "typ": "at+jwt"})).await;
    assert_eq!(code(&not_access), "token_invalid");
    let refresh = |body: Value| {
        let mut full = json!({"refresh_token": second, "access_ring": "api-tokens",
                              "claims": {"aud": "api"}});
        helpers::merge(&mut full, body);
        app.post("/v1/rings/sessions/refresh", &issuer, full)
    };
    let claimed = refresh(json!({"device_id": "d1", "claims": {"sub": "admin"}})).await;
    assert_eq!(code(&claimed), "reserved_claim", "{}", claimed.body);
    // The family is bound to its device: another device, or none, is refused.
    for device in [json!({}), json!({"device_id": "d2"})] {
        let elsewhere = refresh(device.clone()).await;
        assert_eq!(
            code(&elsewhere),
            "token_invalid",
            "{device}: {}",
            elsewhere.body
        );
    }

    let (later_access, third) = exchanged(&exchange(&app, &issuer, &second).await);

    // The first token again: a reuse. The family is revoked, and the subject's access tokens.
    let reused = exchange(&app, &issuer, &first).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED, "{}", reused.body);
    assert_eq!(code(&reused), "refresh_token_reused");
    let after = exchange(&app, &issuer, &third).await;
    assert_eq!(code(&after), "token_revoked", "{}", after.body);
    for token in [&access, &later_access] {
        let checked = verify(&app, json!({"token": token})).await;
        assert_eq!(code(&checked), "token_revoked", "{}", checked.body);
    }
    // Another family lives on.
    exchanged(&exchange(&app, &issuer, &other_family).await);

    // A family bound to a key: its exchanges need the key's thumbprint, which the access
    // token carries on.
    let bound = token(
        &app.sign(
            &issuer,
            "sessions",
            json!({"sub": "user-3", "cnf": {"jkt": JKT}}),
        )
        .await,
    );
    let body = |jkt: Option<&str>| {
        json!({"refresh_token": bound, "access_ring": "api-tokens", "jkt": jkt,
               "claims": {"aud": "api"}})
    };
    let unproven = app
        .post("/v1/rings/sessions/refresh", &issuer, body(None))
        .await;
    assert_eq!(code(&unproven), "token_invalid", "{}", unproven.body);
    let (bound_access, _) = exchanged(
        &app.post("/v1/rings/sessions/refresh", &issuer, body(Some(JKT)))
            .await,
    );
    assert_eq!(decode_parts(&bound_access).1["cnf"]["jkt"], JKT);

    let records = app
        .get(
            "/v1/audit?action=refresh_token_reused",
            Some(&app.admin_token),
        )
        .await;
    let records = records.body["records"].as_array().unwrap().clone();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["detail"]["family"], family.as_str());
    let used = app
        .get(
            "/v1/audit?action=refresh_token_used",
            Some(&app.admin_token),
        )
        .await;
    assert_eq!(used.body["records"].as_array().unwrap().len(), 4);
    let chain = app.get("/v1/audit/verify", Some(&app.admin_token)).await;
    assert_eq!(chain.body["ok"], true, "{}", chain.body);

    // Kept while a token of the family can verify, purged after.
    let ring = "sessions".parse().unwrap();
    let first_jti = claims["jti"].as_str().unwrap();
    let state = app.store.refresh_token_state(&ring, &family, first_jti);
    assert_eq!(state.await.unwrap(), (true, true));
    let now = signet::clock::now_ms().as_secs();
    assert_eq!(app.store.purge_refresh_families(now).await.unwrap(), 0);
    let later = now + 8 * 24 * 3600;
    assert!(app.store.purge_refresh_families(later).await.unwrap() >= 5);
    let state = app.store.refresh_token_state(&ring, &family, first_jti);
    assert_eq!(state.await.unwrap(), (false, false));
}

async fn of_concurrent_exchanges_on_two_replicas_exactly_one_succeeds(db: Db) {
    let first = TestApp::spawn(db).await;
    let second = TestApp::start(first.data_dir.clone(), first.db.clone()).await;
    let issuer = refresh_rings(&first).await;
    eventually(60, "the second replica to hold both rings", || async {
        let view = second.services.rings.view();
        ["sessions", "api-tokens"]
            .iter()
            .all(|ring| view.rings.get(*ring).is_some_and(|r| r.signer.is_some()))
    })
    .await;
    let refresh_token = start_family(&first, &issuer, "user-1").await;
    let mut attempts = tokio::task::JoinSet::new();
    for i in 0..8 {
        let address = if i % 2 == 0 { &first } else { &second }.address.clone();
        let body = json!({"refresh_token": refresh_token, "access_ring": "api-tokens",
                          "device_id": "d1", "claims": {"aud": "api"}});
        let issuer = issuer.clone();
        attempts.spawn(async move {
            let response = http_client()
                .post(format!("{address}/v1/rings/sessions/refresh"))
                .bearer_auth(issuer)
                .json(&body)
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        });
    }
    let outcomes = attempts.join_all().await;
    let won = outcomes
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .count();
    assert_eq!(won, 1, "{outcomes:?}");
    for (_, body) in outcomes
        .iter()
        .filter(|(status, _)| *status != StatusCode::OK)
    {
        assert_eq!(body["error"]["code"], "refresh_token_reused", "{body}");
    }
}
