//! Nested tokens: `/sign` and `/refresh` with `encrypt_to` return the signed token inside a JWE
//! to a recipient's public JWK, only to a recipient the ring's policy names. The recipients' keys
//! are made by npm `jose`, and the nested tokens are decrypted and verified by npm `jose` and by
//! jwcrypto (tests/interop).

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{merge, Db, Response, TestApp};
use crate::interop::{recipient_key, run_verifier, verify_expecting, Expect, Verifier};
use crate::store_tests;

store_tests!(
    tokens_are_encrypted_only_to_recipients_the_policy_names,
    a_refreshed_access_token_can_be_encrypted
);

/// The protected header of a compact JWE.
fn jwe_header(token: &str) -> Value {
    let protected = token.split('.').next().unwrap();
    serde_json::from_slice(&signet::jose::b64url_decode(protected).unwrap()).unwrap()
}

fn code(response: &Response) -> &str {
    response.body["error"]["code"].as_str().unwrap_or_default()
}

/// A ring `sealed` whose policy names the recipient `jkt`, and an issuer for it: its token.
async fn sealed_ring(app: &TestApp, extra_policy: Value, jkt: &Value) -> String {
    let mut policy = json!({"encrypt_to": [{"jkt": jkt}]});
    merge(&mut policy, extra_policy);
    app.create_ring("sealed", json!({"policy": policy})).await;
    app.create_client("svc", "issuer", &["sealed"]).await.1
}

async fn sign_to(app: &TestApp, issuer: &str, ring: &str, encrypt_to: Value) -> Response {
    app.post(
        &format!("/v1/rings/{ring}/sign"),
        issuer,
        json!({"claims": {"sub": "user-1", "aud": "api"}, "encrypt_to": encrypt_to}),
    )
    .await
}

async fn tokens_are_encrypted_only_to_recipients_the_policy_names(db: Db) {
    let app = TestApp::spawn(db).await;
    let recipient = recipient_key("RSA-OAEP-256", None);
    let issuer = sealed_ring(&app, json!({}), &recipient["jkt"]).await;
    app.create_ring("open", json!({})).await;
    let (_, open_issuer) = app.create_client("open-svc", "issuer", &["open"]).await;

    let sealed = sign_to(&app, &issuer, "sealed", json!({"jwk": recipient["public"]})).await;
    assert_eq!(sealed.status, StatusCode::OK, "{}", sealed.body);
    assert_eq!(sealed.body["encrypted_to"], recipient["jkt"]);
    let token = sealed.body["token"].as_str().unwrap().to_owned();
    assert_eq!(token.split('.').count(), 5, "{token}");
    let header = jwe_header(&token);
    assert_eq!(
        header,
        json!({"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "JWT"})
    );
    // Only the recipient's private key opens it, and what it holds is a JWS signet signed.
    let url = format!("{}/v1/rings/sealed/jwks.json", app.address);
    let nested = |key| Expect {
        nested: Some((key, "RSA-OAEP-256", "A256GCM")),
        ..Expect::default()
    };
    verify_expecting(
        Verifier::Jose,
        &url,
        std::slice::from_ref(&token),
        nested(&recipient["private"]),
    );
    let stranger = recipient_key("RSA-OAEP-256", None);
    let (opened, report) = run_verifier(
        Verifier::Jose,
        &url,
        std::slice::from_ref(&token),
        nested(&stranger["private"]),
    );
    assert!(!opened, "a stranger's key decrypted it: {report}");

    // The audit record names the recipient, never the token.
    let records = app
        .get("/v1/audit?action=sign&ring=sealed", Some(&app.admin_token))
        .await
        .body;
    let records = records["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["detail"]["encrypted_to"], recipient["jkt"]);
    assert!(!records[0].to_string().contains(&token));

    // A recipient the policy does not name, on either ring, is refused before anything is signed.
    for (token, ring, jwk) in [
        (&issuer, "sealed", &stranger["public"]),
        (&open_issuer, "open", &recipient["public"]),
    ] {
        let refused = sign_to(&app, token, ring, json!({"jwk": jwk})).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(code(&refused), "recipient_not_allowed", "{}", refused.body);
    }
    // Keys that cannot be encrypted to.
    let mut with_private = recipient["private"].clone();
    with_private["kid"] = json!("k1");
    let mut signing_only = recipient["public"].clone();
    signing_only["use"] = json!("sig");
    for (why, encrypt_to) in [
        ("private members", json!({"jwk": with_private})),
        ("not for encryption", json!({"jwk": signing_only})),
        (
            "a symmetric key",
            json!({"jwk": {"kty": "oct", "k": "AAAA"}}),
        ),
        ("not an object", json!({"jwk": "RSA"})),
        (
            "an alg for EC keys",
            json!({"jwk": recipient["public"], "alg": "ECDH-ES"}),
        ),
    ] {
        let refused = sign_to(&app, &issuer, "sealed", encrypt_to).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{why}");
        assert_eq!(
            code(&refused),
            "invalid_recipient",
            "{why}: {}",
            refused.body
        );
        let message = refused.body["error"]["message"].as_str().unwrap();
        let d = recipient["private"]["d"].as_str().unwrap();
        assert!(!message.contains(d), "{message}");
    }
    let unknown = sign_to(
        &app,
        &issuer,
        "sealed",
        json!({"jwk": recipient["public"], "enc": "A128CBC-HS256"}),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.body);
    // None of the refusals signed anything.
    let records = app
        .get("/v1/audit?action=sign&ring=sealed", Some(&app.admin_token))
        .await
        .body;
    assert_eq!(records["records"].as_array().unwrap().len(), 1);

    // A refresh token goes back to /refresh as it was signed: its ring cannot name recipients.
    let refresh_ring = app
        .post(
            "/v1/rings",
            &app.admin_token,
            json!({"name": "sessions", "backend": "file", "policy": {
                "issuer": "https://issuer.test", "typ": "refresh+jwt",
                "encrypt_to": [{"jkt": recipient["jkt"]}]}}),
        )
        .await;
    assert!(
        refresh_ring.status.is_client_error(),
        "{}",
        refresh_ring.body
    );
}

async fn a_refreshed_access_token_can_be_encrypted(db: Db) {
    let app = TestApp::spawn(db).await;
    let recipient = recipient_key("ECDH-ES", Some("P-256"));
    app.create_ring(
        "sessions",
        json!({"policy": {"typ": "refresh+jwt", "audiences": [], "max_ttl_seconds": null}}),
    )
    .await;
    let issuer = {
        app.create_ring(
            "sealed",
            json!({"policy": {"encrypt_to": [{"jkt": recipient["jkt"]}]}}),
        )
        .await;
        app.create_client("auth", "issuer", &["sessions", "sealed"])
            .await
            .1
    };
    let refresh_token = app
        .sign(&issuer, "sessions", json!({"sub": "user-1"}))
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh = |encrypt_to: Value| {
        app.post(
            "/v1/rings/sessions/refresh",
            &issuer,
            json!({"refresh_token": refresh_token, "access_ring": "sealed",
                   "claims": {"aud": "api"}, "encrypt_to": encrypt_to}),
        )
    };
    // A recipient the access ring does not name is refused, and the refresh token is not spent.
    let stranger = recipient_key("ECDH-ES", Some("P-256"));
    let refused = refresh(json!({"jwk": stranger["public"]})).await;
    assert_eq!(code(&refused), "recipient_not_allowed", "{}", refused.body);
    let exchanged = refresh(json!({"jwk": recipient["public"]})).await;
    assert_eq!(exchanged.status, StatusCode::OK, "{}", exchanged.body);
    let access = &exchanged.body["access_token"];
    assert_eq!(access["encrypted_to"], recipient["jkt"]);
    let header = jwe_header(access["token"].as_str().unwrap());
    assert_eq!(header["alg"], "ECDH-ES");
    assert_eq!(header["epk"]["crv"], "P-256");
    // The family's next refresh token is a plain JWS.
    let next = exchanged.body["refresh_token"]["token"].as_str().unwrap();
    assert_eq!(next.split('.').count(), 3);
    let url = format!("{}/v1/rings/sealed/jwks.json", app.address);
    verify_expecting(
        Verifier::Jose,
        &url,
        &[access["token"].as_str().unwrap().to_owned()],
        Expect {
            typ: None,
            nested: Some((&recipient["private"], "ECDH-ES", "A256GCM")),
        },
    );
}

/// Nested tokens of every key-management algorithm, both content encryptions and both curves
/// open in npm `jose` and in jwcrypto, and the JWS inside verifies in each Python library.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_tokens_decrypt_and_verify_in_jose_and_python() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let cases = [
        ("RSA-OAEP-256", None, "A256GCM"),
        ("RSA-OAEP", None, "A128GCM"),
        ("ECDH-ES", Some("P-256"), "A256GCM"),
        ("ECDH-ES", Some("P-384"), "A128GCM"),
        ("ECDH-ES+A256KW", Some("P-256"), "A256GCM"),
        ("ECDH-ES+A256KW", Some("P-384"), "A256GCM"),
    ];
    let recipients: Vec<Value> = cases
        .iter()
        .map(|(alg, crv, _)| recipient_key(alg, *crv))
        .collect();
    let named: Vec<Value> = recipients
        .iter()
        .map(|r| json!({"jkt": r["jkt"]}))
        .collect();
    app.create_ring("sealed", json!({"policy": {"encrypt_to": named}}))
        .await;
    let (_, issuer) = app.create_client("svc", "issuer", &["sealed"]).await;
    let url = format!("{}/v1/rings/sealed/jwks.json", app.address);
    for ((alg, _, enc), recipient) in cases.iter().zip(&recipients) {
        let mut tokens = Vec::new();
        for i in 0..200 {
            let response = app
                .post(
                    "/v1/rings/sealed/sign",
                    &issuer,
                    json!({"claims": {"sub": format!("user-{i}"), "aud": "api"},
                           "encrypt_to": {"jwk": recipient["public"], "alg": alg, "enc": enc}}),
                )
                .await;
            assert_eq!(response.status, StatusCode::OK, "{}", response.body);
            tokens.push(response.body["token"].as_str().unwrap().to_owned());
        }
        for verifier in Verifier::ALL {
            verify_expecting(
                verifier,
                &url,
                &tokens,
                Expect {
                    typ: None,
                    nested: Some((&recipient["private"], alg, enc)),
                },
            );
        }
    }
}
