//! Encryption rings: senders encrypt to a ring's JWKS with npm `jose` and jwcrypto, and a
//! decryptor has signet decrypt with the ring's key (`POST /v1/rings/{ring}/decrypt`); a signing
//! ring nests its tokens in a JWE to an encryption ring (`encrypt_to: {"ring"}`). Every
//! decryption is audited; a hostile token is refused before the backend is asked.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{merge, Backend, Db, Response, TestApp};
use crate::interop::{encrypt_to_jwks, Sender};
use crate::operability::scrape;
use crate::store_tests;

store_tests!(
    nested_tokens_to_a_ring_are_decrypted_verified_and_audited,
    hostile_tokens_are_refused_before_the_backend_is_asked,
    a_rotated_key_decrypts_until_no_sender_can_use_it
);

fn code(response: &Response) -> &str {
    response.body["error"]["code"].as_str().unwrap_or_default()
}

/// An encryption ring `name` with `alg` (`extra` merged over it), and a decryptor for it: the
/// ring and the decryptor's token.
pub async fn encryption_ring(
    app: &TestApp,
    name: &str,
    alg: &str,
    extra: Value,
) -> (Value, String) {
    let mut body = json!({
        "algorithm": alg,
        "policy": {"issuer": "https://senders.test", "audiences": [], "max_ttl_seconds": 600},
    });
    merge(&mut body, extra);
    let ring = app.create_ring(name, body).await;
    let (_, token) = app
        .create_client(&format!("{name}-reader"), "decryptor", &[name])
        .await;
    (ring, token)
}

pub async fn decrypt(app: &TestApp, decryptor: &str, ring: &str, token: &str) -> Response {
    app.post(
        &format!("/v1/rings/{ring}/decrypt"),
        decryptor,
        json!({"token": token}),
    )
    .await
}

/// The ring's JWKS as a sender fetches it.
async fn jwks(app: &TestApp, ring: &str) -> Value {
    let response = app.get(&format!("/v1/rings/{ring}/jwks.json"), None).await;
    assert_eq!(response.status, StatusCode::OK);
    response.body
}

/// Each algorithm an encryption ring takes, with the settings that pick its key and `enc`.
pub const ALGORITHMS: [(&str, &str); 6] = [
    ("ECDH-ES", "{}"),
    ("ECDH-ES+A256KW", r#"{"curve": "P-384"}"#),
    ("ECDH-ES", r#"{"encryption": "A128GCM"}"#),
    ("RSA-OAEP-256", "{}"),
    (
        "RSA-OAEP-256",
        r#"{"rsa_bits": 3072, "encryption": "A128GCM"}"#,
    ),
    ("RSA-OAEP", "{}"),
];

/// For each of `algorithms`, an encryption ring on the app's backend whose JWKS npm `jose` and
/// jwcrypto encrypt `per_sender` tokens each to, and whose decryptor has signet decrypt every one
/// of them to the claims the sender put in.
pub async fn senders_round_trip(app: &TestApp, algorithms: &[(&str, &str)], per_sender: usize) {
    for (n, (alg, extra)) in algorithms.iter().enumerate() {
        let extra: Value = serde_json::from_str(extra).unwrap();
        let name = format!("inbox-{n}");
        let (ring, decryptor) = encryption_ring(app, &name, alg, extra.clone()).await;
        let enc = extra["encryption"].as_str().unwrap_or("A256GCM");
        assert_eq!(ring["algorithm"], *alg);
        assert_eq!(ring["encryption"], enc);
        let published = jwks(app, &name).await;
        let first = &published["keys"][0];
        assert_eq!(first["use"], "enc", "{published}");
        assert_eq!(first["alg"], *alg);
        assert_eq!(first["kid"], ring["active_kid"]);
        assert!(first.get("d").is_none() && first.get("p").is_none());
        for sender in [Sender::Jose, Sender::Jwcrypto] {
            let tokens = encrypt_to_jwks(sender, &published, enc, per_sender);
            for (i, token) in tokens.iter().enumerate() {
                let opened = decrypt(app, &decryptor, &name, token).await;
                let at = format!("{alg} {extra} from {sender:?}, token {i}");
                assert_eq!(opened.status, StatusCode::OK, "{at}: {}", opened.body);
                assert_eq!(opened.body["claims"]["i"], i, "{at}");
                assert_eq!(opened.body["claims"]["sub"], format!("user-{i}"), "{at}");
                assert_eq!(opened.body["kid"], ring["active_kid"], "{at}");
                assert_eq!(opened.body["alg"], *alg, "{at}");
                assert_eq!(opened.body["enc"], enc, "{at}");
                let payload =
                    signet::jose::b64url_decode(opened.body["payload"].as_str().unwrap()).unwrap();
                assert_eq!(
                    serde_json::from_slice::<Value>(&payload).unwrap(),
                    opened.body["claims"],
                    "{at}"
                );
            }
        }
        // A signing ring's token nested in a JWE to the ring opens and verifies the same way.
        let sealed = format!("sealed-{n}");
        app.create_ring(&sealed, json!({"policy": {"encrypt_to": [{"ring": name}]}}))
            .await;
        let (_, issuer) = app
            .create_client(&format!("{sealed}-svc"), "issuer", &[&sealed])
            .await;
        let signed = app
            .post(
                &format!("/v1/rings/{sealed}/sign"),
                &issuer,
                json!({"claims": {"sub": "nested", "aud": "api"}, "encrypt_to": {"ring": name}}),
            )
            .await;
        assert_eq!(signed.status, StatusCode::OK, "{alg}: {}", signed.body);
        let token = signed.body["token"].as_str().unwrap();
        let opened = decrypt(app, &decryptor, &name, token).await;
        assert_eq!(opened.status, StatusCode::OK, "{alg}: {}", opened.body);
        assert_eq!(opened.body["nested"]["ring"], sealed.as_str());
        assert_eq!(opened.body["nested"]["claims"]["sub"], "nested");
    }
}

/// Asks for an encryption ring of `alg` on the app's backend, which cannot do it: the creation is
/// refused with `422 unsupported_by_backend`, and no half-made ring stays.
pub async fn refused_at_creation(app: &TestApp, alg: &str) {
    let refused = app
        .post(
            "/v1/rings",
            &app.admin_token,
            json!({"name": "unsupported", "backend": app.backend.name(), "algorithm": alg,
                   "policy": {"issuer": "https://senders.test"}}),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{alg}: {}",
        refused.body
    );
    assert_eq!(refused.body["error"]["code"], "unsupported_by_backend");
    let ring = app
        .get("/v1/rings/unsupported", Some(&app.admin_token))
        .await;
    assert_eq!(
        ring.status,
        StatusCode::NOT_FOUND,
        "no half-made ring stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_jose_and_jwcrypto_encrypt_to_a_ring_are_decrypted() {
    let app = TestApp::spawn_on(Db::Sqlite, Backend::File).await;
    // 1,000 tokens per algorithm: 500 from each sender.
    senders_round_trip(&app, &ALGORITHMS, 500).await;
}

async fn nested_tokens_to_a_ring_are_decrypted_verified_and_audited(db: Db) {
    let app = TestApp::spawn(db).await;
    let (inbox, decryptor) = encryption_ring(&app, "inbox", "ECDH-ES", json!({})).await;
    app.create_ring(
        "sealed",
        json!({"policy": {"encrypt_to": [{"ring": "inbox"}]}}),
    )
    .await;
    app.create_ring("open", json!({})).await;
    let (_, issuer) = app
        .create_client("svc", "issuer", &["sealed", "open"])
        .await;
    let sign = |ring: &'static str, encrypt_to: Value| {
        let app = &app;
        let issuer = issuer.clone();
        async move {
            app.post(
                &format!("/v1/rings/{ring}/sign"),
                &issuer,
                json!({"claims": {"sub": "user-1", "aud": "api"}, "encrypt_to": encrypt_to}),
            )
            .await
        }
    };

    let sealed = sign("sealed", json!({"ring": "inbox"})).await;
    assert_eq!(sealed.status, StatusCode::OK, "{}", sealed.body);
    assert_eq!(sealed.body["encrypted_to"], inbox["active_kid"]);
    let token = sealed.body["token"].as_str().unwrap();
    let header: Value = serde_json::from_slice(
        &signet::jose::b64url_decode(token.split('.').next().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], inbox["active_kid"]);
    assert_eq!(header["cty"], "JWT");
    assert_eq!(header["alg"], "ECDH-ES");

    let opened = decrypt(&app, &decryptor, "inbox", token).await;
    assert_eq!(opened.status, StatusCode::OK, "{}", opened.body);
    let nested = &opened.body["nested"];
    assert_eq!(nested["valid"], true);
    assert_eq!(nested["ring"], "sealed");
    assert_eq!(nested["claims"]["sub"], "user-1");
    assert!(opened.body.get("claims").is_none(), "{}", opened.body);
    let jti = nested["claims"]["jti"].clone();

    // The record names the key, the caller, the size and the nested jti; never the plaintext.
    let records = app
        .get(
            "/v1/audit?action=decrypt&ring=inbox",
            Some(&app.admin_token),
        )
        .await
        .body;
    let records = records["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["kid"], inbox["active_kid"]);
    assert_eq!(records[0]["principal"], "client:inbox-reader");
    assert_eq!(records[0]["detail"]["nested_jti"], jti);
    assert_eq!(records[0]["detail"]["size"], token.len());
    let record = records[0].to_string();
    assert!(!record.contains(opened.body["payload"].as_str().unwrap()));
    assert!(!record.contains("user-1"));

    // A ring the policy does not name, a signing ring, and a ring with jwk both.
    for (ring, encrypt_to, expected) in [
        ("open", json!({"ring": "inbox"}), "recipient_not_allowed"),
        ("sealed", json!({"ring": "open"}), "recipient_not_allowed"),
        (
            "sealed",
            json!({"ring": "inbox", "alg": "ECDH-ES"}),
            "invalid_recipient",
        ),
        ("sealed", json!({}), "invalid_recipient"),
    ] {
        let refused = sign(ring, encrypt_to.clone()).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{encrypt_to}"
        );
        assert_eq!(code(&refused), expected, "{encrypt_to}: {}", refused.body);
    }

    // A nested token whose inner signature does not verify is refused, and so is a revoked one.
    let inner = sign("open", Value::Null).await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (head, signature) = inner.rsplit_once('.').unwrap();
    let mut forged = signet::jose::b64url_decode(signature).unwrap();
    forged[0] ^= 1;
    let forged = format!("{head}.{}", signet::jose::b64url(&forged));
    let jwk = jwks(&app, "inbox").await["keys"][0].clone();
    let seal = |plaintext: &str| {
        signet::jwe::Encryption::to_jwk(&jwk, None, signet::jwe::ContentEncryption::A256Gcm)
            .unwrap()
            .seal(Some("JWT"), plaintext.as_bytes())
    };
    let refused = decrypt(&app, &decryptor, "inbox", &seal(&forged)).await;
    assert_eq!(code(&refused), "token_invalid", "{}", refused.body);
    let revoked = app
        .post(
            "/v1/tokens/revoke",
            &app.admin_token,
            json!({"token": inner}),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    let refused = decrypt(&app, &decryptor, "inbox", &seal(&inner)).await;
    assert_eq!(code(&refused), "token_revoked", "{}", refused.body);
    // Neither was recorded as a decryption.
    let records = app
        .get(
            "/v1/audit?action=decrypt&ring=inbox",
            Some(&app.admin_token),
        )
        .await
        .body;
    assert_eq!(records["records"].as_array().unwrap().len(), 1);
}

/// Calls of `operation` on the backends, from a scrape.
fn backend_calls(scrape: &HashMap<String, f64>, operation: &str) -> f64 {
    scrape
        .iter()
        .filter(|(sample, _)| {
            sample.starts_with("signet_backend_call_seconds_count")
                && sample.contains(&format!("operation=\"{operation}\""))
        })
        .map(|(_, value)| value)
        .sum()
}

/// A compact JWE with the header `header` and the other segments of `token`.
fn with_header(token: &str, header: &Value) -> String {
    let (_, rest) = token.split_once('.').unwrap();
    format!(
        "{}.{rest}",
        signet::jose::b64url(header.to_string().as_bytes())
    )
}

fn header_of(token: &str) -> Value {
    serde_json::from_slice(&signet::jose::b64url_decode(token.split('.').next().unwrap()).unwrap())
        .unwrap()
}

async fn hostile_tokens_are_refused_before_the_backend_is_asked(db: Db) {
    let app = TestApp::spawn(db).await;
    let (ring, decryptor) = encryption_ring(
        &app,
        "inbox",
        "ECDH-ES",
        json!({"policy": {"max_token_bytes": 2048}}),
    )
    .await;
    let (_, rsa_decryptor) = encryption_ring(&app, "rsa-inbox", "RSA-OAEP-256", json!({})).await;
    let published = jwks(&app, "inbox").await;
    let good = encrypt_to_jwks(Sender::Jose, &published, "A256GCM", 1).remove(0);
    let header = header_of(&good);
    let before = scrape(&app).await;

    let mut refusals: Vec<(&str, String)> = Vec::new();
    for (why, change) in [
        ("RSA1_5", json!({"alg": "RSA1_5"})),
        ("dir", json!({"alg": "dir"})),
        ("PBES2", json!({"alg": "PBES2-HS256+A128KW"})),
        ("A256KW", json!({"alg": "A256KW"})),
        (
            "another alg of the ring's kind",
            json!({"alg": "ECDH-ES+A256KW"}),
        ),
        ("another enc", json!({"enc": "A128GCM"})),
        ("A128CBC-HS256", json!({"enc": "A128CBC-HS256"})),
        ("zip", json!({"zip": "DEF"})),
        ("crit", json!({"crit": ["exp"], "exp": 1})),
        ("jku", json!({"jku": "https://attacker.test/jwks"})),
        (
            "an unknown kid",
            json!({"kid": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}),
        ),
        ("no kid", json!({"kid": null})),
        (
            "the kid of another ring",
            json!({"kid": jwks(&app, "rsa-inbox").await["keys"][0]["kid"]}),
        ),
    ] {
        let mut changed = header.clone();
        merge(&mut changed, change);
        if changed["kid"].is_null() {
            changed.as_object_mut().unwrap().remove("kid");
        }
        refusals.push((why, with_header(&good, &changed)));
    }
    // The epk: off the curve, the point at infinity (no valid encoding), on another curve.
    let epk = &header["epk"];
    let mut off_curve = header.clone();
    let mut y = signet::jose::b64url_decode(epk["y"].as_str().unwrap()).unwrap();
    y[31] ^= 1;
    off_curve["epk"]["y"] = json!(signet::jose::b64url(&y));
    refusals.push(("an epk off the curve", with_header(&good, &off_curve)));
    let mut zero = header.clone();
    zero["epk"]["x"] = json!(signet::jose::b64url(&[0; 32]));
    zero["epk"]["y"] = json!(signet::jose::b64url(&[0; 32]));
    refusals.push(("an epk of zeros (infinity)", with_header(&good, &zero)));
    let p384 = signet::jose::b64url(&[1; 48]);
    let mut other_curve = header.clone();
    other_curve["epk"] = json!({"kty": "EC", "crv": "P-384", "x": p384, "y": p384});
    refusals.push(("an epk on P-384", with_header(&good, &other_curve)));
    // A token to a P-384 key that names the ring's P-256 kid.
    let mut impostor = crate::interop::recipient_key("ECDH-ES", Some("P-384"))["public"].clone();
    impostor["kid"] = ring["active_kid"].clone();
    impostor["use"] = json!("enc");
    impostor["alg"] = json!("ECDH-ES");
    let mut p384_ring = encrypt_to_jwks(Sender::Jose, &json!({"keys": [impostor]}), "A256GCM", 1);
    refusals.push(("a valid P-384 epk", p384_ring.remove(0)));
    refusals.push(("four segments", good.rsplit_once('.').unwrap().0.to_owned()));
    refusals.push((
        "over max_token_bytes",
        format!("{good}{}", "A".repeat(2048)),
    ));
    for (why, token) in &refusals {
        let refused = decrypt(&app, &decryptor, "inbox", token).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{why}: {}",
            refused.body
        );
        assert_eq!(code(&refused), "token_invalid", "{why}: {}", refused.body);
        let message = refused.body["error"]["message"].as_str().unwrap();
        assert!(message.len() < 300, "{why}: {message}");
    }
    // None of them reached the backend; the good token does, once.
    let after = scrape(&app).await;
    let calls = |scrape| backend_calls(scrape, "agree") - backend_calls(&before, "agree");
    assert!(calls(&after).abs() < 0.5, "{} ECDH calls", calls(&after));
    let opened = decrypt(&app, &decryptor, "inbox", &good).await;
    assert_eq!(opened.status, StatusCode::OK, "{}", opened.body);
    let after = scrape(&app).await;
    assert!(
        (calls(&after) - 1.0).abs() < 0.5,
        "{} ECDH calls",
        calls(&after)
    );

    // A tag, ciphertext or IV changed by one bit does not decrypt; nor does an RSA encrypted key.
    let segments: Vec<&str> = good.split('.').collect();
    for index in [2, 3, 4] {
        let mut bytes = signet::jose::b64url_decode(segments[index]).unwrap();
        bytes[0] ^= 1;
        let mut changed: Vec<String> = segments.iter().map(|s| (*s).to_owned()).collect();
        changed[index] = signet::jose::b64url(&bytes);
        let refused = decrypt(&app, &decryptor, "inbox", &changed.join(".")).await;
        assert_eq!(
            code(&refused),
            "token_undecryptable",
            "segment {index}: {}",
            refused.body
        );
    }
    let rsa_good =
        encrypt_to_jwks(Sender::Jose, &jwks(&app, "rsa-inbox").await, "A256GCM", 1).remove(0);
    let rsa_segments: Vec<&str> = rsa_good.split('.').collect();
    let mut key = signet::jose::b64url_decode(rsa_segments[1]).unwrap();
    key[10] ^= 1;
    let bad_key = [
        rsa_segments[0],
        &signet::jose::b64url(&key),
        rsa_segments[2],
        rsa_segments[3],
        rsa_segments[4],
    ]
    .join(".");
    let refused = decrypt(&app, &rsa_decryptor, "rsa-inbox", &bad_key).await;
    assert_eq!(code(&refused), "token_undecryptable", "{}", refused.body);
    let opened = decrypt(&app, &rsa_decryptor, "rsa-inbox", &rsa_good).await;
    assert_eq!(opened.status, StatusCode::OK, "{}", opened.body);

    // Only a decryptor of the ring decrypts; a ring decrypts and does not sign, and the other way.
    let (_, issuer) = app.create_client("svc", "issuer", &["inbox"]).await;
    let forbidden = decrypt(&app, &issuer, "inbox", &good).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    let forbidden = decrypt(&app, &rsa_decryptor, "inbox", &good).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    let signing = app
        .post(
            "/v1/rings/inbox/sign",
            &issuer,
            json!({"claims": {"sub": "x"}}),
        )
        .await;
    assert_eq!(code(&signing), "wrong_ring_use", "{}", signing.body);
    app.create_ring("signer", json!({})).await;
    let (_, signer_reader) = app
        .create_client("signer-reader", "decryptor", &["signer"])
        .await;
    let wrong = decrypt(&app, &signer_reader, "signer", &good).await;
    assert_eq!(code(&wrong), "wrong_ring_use", "{}", wrong.body);

    // An encryption key's kid names no key that verifies a signature.
    let forged_header = json!({"alg": "ES256", "kid": ring["active_kid"], "typ": "JWT"});
    let forged = format!(
        "{}.{}.{}",
        signet::jose::b64url(forged_header.to_string().as_bytes()),
        signet::jose::b64url(br#"{"sub":"x"}"#),
        signet::jose::b64url(&[7; 64])
    );
    let verified = app
        .post_raw("/v1/verify", None, json!({"token": forged}).to_string())
        .await;
    assert_eq!(code(&verified), "token_invalid", "{}", verified.body);
    assert!(
        verified.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no published key"),
        "{}",
        verified.body
    );

    // The good token still decrypts, after all of that.
    let opened = decrypt(&app, &decryptor, "inbox", &good).await;
    assert_eq!(opened.status, StatusCode::OK, "{}", opened.body);

    // Settings that do not fit an encryption ring are refused at creation.
    for (why, body) in [
        (
            "signing rules",
            json!({"algorithm": "ECDH-ES", "policy": {"audiences": ["api"]}}),
        ),
        (
            "combined JWKS",
            json!({"algorithm": "ECDH-ES", "combined_jwks": true, "policy": {"audiences": []}}),
        ),
        (
            "rsa_bits on ECDH",
            json!({"algorithm": "ECDH-ES", "rsa_bits": 2048, "policy": {"audiences": []}}),
        ),
        (
            "curve on RSA",
            json!({"algorithm": "RSA-OAEP", "curve": "P-256", "policy": {"audiences": []}}),
        ),
        (
            "encryption on a signing ring",
            json!({"encryption": "A256GCM"}),
        ),
        (
            "a curve we lack",
            json!({"algorithm": "ECDH-ES", "curve": "P-521", "policy": {"audiences": []}}),
        ),
    ] {
        let mut request = json!({
            "name": "bad", "backend": "file",
            "policy": {"issuer": "https://senders.test", "audiences": ["api"]},
        });
        merge(&mut request, body);
        let refused = app.post("/v1/rings", &app.admin_token, request).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{why}: {}",
            refused.body
        );
    }
}

/// A sender caches the ring's JWKS for its max-age and encrypts to the first key it lists. After
/// a rotation, every key a sender could have cached decrypts until its window has passed: then
/// it retires, and a token to it is refused.
async fn a_rotated_key_decrypts_until_no_sender_can_use_it(db: Db) {
    let app = TestApp::spawn(db).await;
    let (ring, decryptor) = encryption_ring(
        &app,
        "inbox",
        "ECDH-ES",
        json!({"policy": {"max_ttl_seconds": 1},
               "timing": {"jwks_max_age_seconds": 1, "leeway_seconds": 0, "publish_lead_seconds": 2}}),
    )
    .await;
    let old_kid = ring["active_kid"].clone();
    let cached = jwks(&app, "inbox").await;
    let early = encrypt_to_jwks(Sender::Jose, &cached, "A256GCM", 1).remove(0);

    // A rotation publishes the next key ahead: the JWKS lists it after the current one.
    let rotated = app
        .post("/v1/rings/inbox/rotate", &app.admin_token, json!({}))
        .await;
    assert_eq!(rotated.status, StatusCode::ACCEPTED, "{}", rotated.body);
    let next_kid = rotated.body["kid"].clone();
    let published = jwks(&app, "inbox").await;
    assert_eq!(published["keys"][0]["kid"], old_kid);
    assert_eq!(published["keys"][1]["kid"], next_kid);
    // The next key decrypts already (a sender may pick it up early).
    let mut next_first = published.clone();
    next_first["keys"].as_array_mut().unwrap().reverse();
    let to_next = encrypt_to_jwks(Sender::Jose, &next_first, "A256GCM", 1).remove(0);
    assert_eq!(
        decrypt(&app, &decryptor, "inbox", &to_next).await.status,
        StatusCode::OK
    );

    // Once it is current, the JWKS lists it alone, and the old key keeps decrypting while it
    // retires: a sender with the cached JWKS still encrypts to it.
    let state = |kid: Value| {
        let app = &app;
        async move {
            let keys = app
                .get("/v1/rings/inbox/keys", Some(&app.admin_token))
                .await
                .body;
            keys["keys"]
                .as_array()
                .unwrap()
                .iter()
                .find(|k| k["kid"] == kid)
                .map(|k| k["state"].as_str().unwrap().to_owned())
                .unwrap()
        }
    };
    while state(next_kid.clone()).await != "active" {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Each replica's view follows the store within a tick.
    let published = loop {
        let published = jwks(&app, "inbox").await;
        if published["keys"][0]["kid"] == next_kid {
            break published;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        published["keys"].as_array().unwrap().len(),
        1,
        "{published}"
    );
    let late = encrypt_to_jwks(Sender::Jose, &cached, "A256GCM", 1).remove(0);
    // The old key is retiring until its window ends, and decrypts as long as it is.
    let keys = app
        .get("/v1/rings/inbox/keys", Some(&app.admin_token))
        .await
        .body;
    let old = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == old_kid)
        .unwrap()
        .clone();
    assert_eq!(old["state"], "retiring", "{old}");
    let retire_after = chrono::DateTime::parse_from_rfc3339(old["retire_after"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    let deactivated = chrono::DateTime::parse_from_rfc3339(old["deactivated_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    // max_ttl 1 s + leeway 0 + max-age 1 s + the replicas' refresh 1 s.
    assert!(retire_after - deactivated >= 3000, "{old}");
    // A key still retiring after a decryption was retiring during it (states only move on).
    let mut decrypted_while_retiring = 0;
    for token in [&early, &late] {
        let opened = decrypt(&app, &decryptor, "inbox", token).await;
        if state(old_kid.clone()).await == "retiring" {
            assert_eq!(opened.status, StatusCode::OK, "{}", opened.body);
            decrypted_while_retiring += 1;
        }
    }
    assert!(
        decrypted_while_retiring > 0,
        "the old key retired before a token reached it"
    );

    // After its window, the old key retires, and then (within a tick) a token to it is refused.
    while state(old_kid.clone()).await == "retiring" {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let refused = loop {
        let answer = decrypt(&app, &decryptor, "inbox", &late).await;
        if answer.status != StatusCode::OK {
            break answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(code(&refused), "token_invalid", "{}", refused.body);
    assert_eq!(
        decrypt(&app, &decryptor, "inbox", &to_next).await.status,
        StatusCode::OK
    );
}
