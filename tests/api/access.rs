//! Every endpoint against every kind of caller: no one gets in where they do not belong.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{Db, TestApp};
use crate::store_tests;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Caller {
    Admin,
    IssuerOfRing,
    IssuerOfOtherRing,
    Auditor,
    NoToken,
    RevokedToken,
    GarbageToken,
}

const CALLERS: [Caller; 7] = [
    Caller::Admin,
    Caller::IssuerOfRing,
    Caller::IssuerOfOtherRing,
    Caller::Auditor,
    Caller::NoToken,
    Caller::RevokedToken,
    Caller::GarbageToken,
];

/// Who may call an endpoint.
#[derive(Clone, Copy)]
enum Allowed {
    Public,
    Admin,
    AdminOrAuditor,
    IssuerOfRing,
}

fn expected(allowed: Allowed, caller: Caller) -> bool {
    match allowed {
        Allowed::Public => true,
        Allowed::Admin => caller == Caller::Admin,
        Allowed::AdminOrAuditor => matches!(caller, Caller::Admin | Caller::Auditor),
        Allowed::IssuerOfRing => caller == Caller::IssuerOfRing,
    }
}

async fn every_endpoint_admits_only_its_roles(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_ring("ring-a", json!({})).await;
    app.create_ring("ring-b", json!({})).await;
    let (_, issuer_a) = app.create_client("issuer-a", "issuer", &["ring-a"]).await;
    let (_, issuer_b) = app.create_client("issuer-b", "issuer", &["ring-b"]).await;
    let (_, auditor) = app.create_client("auditor", "auditor", &[]).await;
    let (revoked_id, revoked) = app.create_client("revoked-admin", "admin", &[]).await;
    let gone = app
        .request(
            Method::DELETE,
            &format!("/v1/clients/{revoked_id}"),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);

    let token = |caller: Caller| -> Option<String> {
        match caller {
            Caller::Admin => Some(app.admin_token.clone()),
            Caller::IssuerOfRing => Some(issuer_a.clone()),
            Caller::IssuerOfOtherRing => Some(issuer_b.clone()),
            Caller::Auditor => Some(auditor.clone()),
            Caller::NoToken => None,
            Caller::RevokedToken => Some(revoked.clone()),
            Caller::GarbageToken => Some("signet_not-a-real-token".into()),
        }
    };

    let kid = app.jwks_kids("ring-a").await[0].clone();
    // Endpoints whose success changes state get a body that fails validation after auth, so every
    // caller meets the same state: an allowed caller gets past auth (not 401/403).
    let endpoints: Vec<(Method, String, Option<Value>, Allowed)> = vec![
        (Method::GET, "/healthz".into(), None, Allowed::Public),
        (Method::GET, "/readyz".into(), None, Allowed::Public),
        (
            Method::GET,
            "/.well-known/jwks.json".into(),
            None,
            Allowed::Public,
        ),
        (
            Method::GET,
            "/v1/rings/ring-a/jwks.json".into(),
            None,
            Allowed::Public,
        ),
        (
            Method::POST,
            "/v1/verify".into(),
            Some(json!({"token": "x.y.z"})),
            Allowed::Public,
        ),
        (
            Method::POST,
            "/v1/rings".into(),
            Some(json!({"name": "Bad Name", "policy": {"issuer": "i"}})),
            Allowed::Admin,
        ),
        (
            Method::GET,
            "/v1/rings".into(),
            None,
            Allowed::AdminOrAuditor,
        ),
        (
            Method::GET,
            "/v1/rings/ring-a".into(),
            None,
            Allowed::AdminOrAuditor,
        ),
        (
            Method::GET,
            "/v1/rings/ring-a/keys".into(),
            None,
            Allowed::AdminOrAuditor,
        ),
        (
            Method::POST,
            "/v1/rings/ring-a/sign".into(),
            Some(json!({"claims": {"aud": "api"}})),
            Allowed::IssuerOfRing,
        ),
        (
            Method::POST,
            "/v1/rings/ring-a/refresh".into(),
            Some(json!({"refresh_token": "x.y.z", "access_ring": "ring-a"})),
            Allowed::IssuerOfRing,
        ),
        (
            Method::POST,
            "/v1/rings/ring-a/sign-raw".into(),
            Some(json!({"signing_input": "e30.e30"})),
            Allowed::IssuerOfRing,
        ),
        (
            Method::PATCH,
            "/v1/rings/ghost".into(),
            Some(json!({"combined_jwks": true})),
            Allowed::Admin,
        ),
        (
            Method::POST,
            "/v1/rings/ring-a/rotate".into(),
            Some(json!({"unknown": true})),
            Allowed::Admin,
        ),
        (
            Method::POST,
            format!("/v1/keys/{kid}/revoke"),
            Some(json!({"unknown": true})),
            Allowed::Admin,
        ),
        (
            Method::POST,
            "/v1/clients".into(),
            Some(json!({"name": "", "role": "admin"})),
            Allowed::Admin,
        ),
        (Method::GET, "/v1/clients".into(), None, Allowed::Admin),
        (
            Method::GET,
            "/v1/audit?limit=1".into(),
            None,
            Allowed::AdminOrAuditor,
        ),
        (
            Method::GET,
            "/v1/audit/verify".into(),
            None,
            Allowed::AdminOrAuditor,
        ),
        (
            Method::GET,
            format!("/v1/keys/{kid}/history"),
            None,
            Allowed::AdminOrAuditor,
        ),
        (
            Method::GET,
            "/v1/rings/ring-a/history".into(),
            None,
            Allowed::AdminOrAuditor,
        ),
        (
            Method::DELETE,
            "/v1/clients/no-such-client".into(),
            None,
            Allowed::Admin,
        ),
        (
            Method::POST,
            "/v1/clients/no-such-client/rotate".into(),
            Some(json!({"grace_seconds": 60})),
            Allowed::Admin,
        ),
    ];
    for (method, path, body, allowed) in &endpoints {
        for caller in CALLERS {
            let response = app
                .request(method.clone(), path, token(caller).as_deref(), body.clone())
                .await;
            let denied = matches!(
                response.status,
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
            );
            assert_eq!(
                !denied,
                expected(*allowed, caller),
                "{method} {path} as {caller:?}: {} {}",
                response.status,
                response.body
            );
            if denied {
                let unauthenticated = matches!(
                    caller,
                    Caller::NoToken | Caller::RevokedToken | Caller::GarbageToken
                );
                let want = if unauthenticated {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::FORBIDDEN
                };
                assert_eq!(response.status, want, "{method} {path} as {caller:?}");
                let code = if unauthenticated {
                    "unauthenticated"
                } else {
                    "forbidden"
                };
                assert_eq!(
                    response.body["error"]["code"], code,
                    "{method} {path} as {caller:?}"
                );
            }
        }
    }
    // State is untouched by all of the above: still one key, still the same ring set.
    assert_eq!(app.jwks_kids("ring-a").await, vec![kid]);
}

async fn a_revoked_client_token_stops_working_at_once(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_ring("r", json!({})).await;
    let (id, token) = app.create_client("svc", "issuer", &["r"]).await;
    assert_eq!(
        app.sign(&token, "r", json!({"aud": "api"})).await.status,
        StatusCode::OK
    );
    let gone = app
        .request(
            Method::DELETE,
            &format!("/v1/clients/{id}"),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let refused = app.sign(&token, "r", json!({"aud": "api"})).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.headers["www-authenticate"], "Bearer");
    let again = app
        .request(
            Method::DELETE,
            &format!("/v1/clients/{id}"),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

async fn client_tokens_are_shown_once_and_stored_only_as_hashes(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_ring("r", json!({})).await;
    let (_, token) = app.create_client("svc", "issuer", &["r"]).await;
    let listed = app.get("/v1/clients", Some(&app.admin_token)).await;
    assert!(!listed.body.to_string().contains(&token));
    assert!(listed.body["clients"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c.get("token").is_none()));
    let hashes: Vec<String> = app
        .store
        .clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.token_hash)
        .collect();
    assert!(!hashes.contains(&token));
    assert!(hashes.contains(&signet::auth::hash_token(&token)));

    let duplicate = app
        .post(
            "/v1/clients",
            &app.admin_token,
            json!({"name": "svc", "role": "auditor"}),
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_eq!(duplicate.body["error"]["code"], "client_exists");
    let no_ring = app
        .post(
            "/v1/clients",
            &app.admin_token,
            json!({"name": "x", "role": "issuer", "rings": ["ghost"]}),
        )
        .await;
    assert_eq!(no_ring.status, StatusCode::BAD_REQUEST);
}

/// A path that exists answers another method with 405 and the methods it takes; a path that
/// does not exist is 404.
async fn a_wrong_method_is_405_with_allow(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_ring("r", json!({})).await;
    for (method, path, allow) in [
        (Method::GET, "/v1/rings/r/sign", "POST"),
        (Method::DELETE, "/v1/rings", "GET, POST"),
        (Method::POST, "/v1/rings/r/schedule", "GET, PUT"),
        (Method::PUT, "/.well-known/jwks.json", "GET"),
    ] {
        let response = app
            .request(method.clone(), path, Some(&app.admin_token), None)
            .await;
        assert_eq!(
            response.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(response.headers["allow"], allow, "{method} {path}");
        assert_eq!(response.body["error"]["code"], "method_not_allowed");
        assert_eq!(
            response.body["error"]["message"],
            format!("{path} takes {allow}, not {method}")
        );
    }
    let missing = app.get("/v1/nothing-here", Some(&app.admin_token)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["error"]["code"], "not_found");
}

store_tests!(
    a_wrong_method_is_405_with_allow,
    every_endpoint_admits_only_its_roles,
    a_revoked_client_token_stops_working_at_once,
    client_tokens_are_shown_once_and_stored_only_as_hashes,
);
