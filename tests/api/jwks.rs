//! The published JWK Sets.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Db, TestApp};
use crate::store_tests;

async fn the_jwks_is_cacheable_with_etag_and_304(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_ring(
        "r",
        json!({"timing": {"jwks_max_age_seconds": 120, "publish_lead_seconds": 200}}),
    )
    .await;
    let first = app.get("/v1/rings/r/jwks.json", None).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.headers["content-type"], "application/jwk-set+json");
    assert_eq!(first.headers["cache-control"], "public, max-age=120");
    let etag = first.headers["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'));

    let client = crate::helpers::http_client();
    let cached = client
        .get(format!("{}/v1/rings/r/jwks.json", app.address))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(cached.headers()["etag"], etag.as_str());
    assert!(cached.text().await.unwrap().is_empty());

    // A rotation changes the set, and so the validator.
    let rotated = app.rotate("r").await;
    assert_eq!(rotated.status, StatusCode::ACCEPTED, "{}", rotated.body);
    let after = client
        .get(format!("{}/v1/rings/r/jwks.json", app.address))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::OK);
    assert_ne!(after.headers()["etag"], etag.as_str());

    let missing = app.get("/v1/rings/ghost/jwks.json", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["error"]["code"], "ring_not_found");
}

async fn no_jwks_ever_holds_private_members(db: Db) {
    let app = TestApp::spawn(db).await;
    let algorithms = [
        ("es256", "ES256", None),
        ("es384", "ES384", None),
        ("rs256", "RS256", None),
        ("ps256", "PS256", Some(3072)),
        ("eddsa", "EdDSA", None),
    ];
    for (name, alg, bits) in algorithms {
        let mut body = json!({"algorithm": alg, "combined_jwks": true});
        if let Some(bits) = bits {
            body["rsa_bits"] = json!(bits);
        }
        app.create_ring(name, body).await;
    }
    let all = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(all.status, StatusCode::OK);
    let keys = all.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), algorithms.len());
    for key in keys {
        let members = key.as_object().unwrap();
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(!members.contains_key(private), "{private} in {key}");
        }
        assert_eq!(key["use"], "sig");
        assert!(key["kid"].is_string() && key["alg"].is_string());
    }
    let kty: Vec<&str> = keys.iter().map(|k| k["kty"].as_str().unwrap()).collect();
    assert!(kty.contains(&"EC") && kty.contains(&"RSA") && kty.contains(&"OKP"));
    let rsa3072 = keys.iter().find(|k| k["alg"] == "PS256").unwrap();
    assert_eq!(
        signet::jose::b64url_decode(rsa3072["n"].as_str().unwrap())
            .unwrap()
            .len(),
        384
    );
}

/// `/.well-known/jwks.json` lists the rings that opted in, and is refused once it would list
/// more keys than verifiers accept (100), while every ring's own set is still served.
async fn the_combined_jwks_lists_opted_in_rings_up_to_a_hundred_keys(db: Db) {
    let app = TestApp::spawn(db).await;
    let own = app.create_ring("own", json!({})).await;
    let own_kid = own["active_kid"].as_str().unwrap().to_owned();
    assert_eq!(own["combined_jwks"], false);
    let combined_kids = || async {
        let all = app.get("/.well-known/jwks.json", None).await;
        assert_eq!(all.status, StatusCode::OK, "{}", all.body);
        let keys = all.body["keys"].as_array().unwrap().clone();
        keys.iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert!(combined_kids().await.is_empty());
    for i in 0..100 {
        let ring = app
            .create_ring(&format!("c{i:03}"), json!({"combined_jwks": true}))
            .await;
        assert_eq!(ring["combined_jwks"], true);
    }
    let kids = combined_kids().await;
    assert_eq!(kids.len(), 100);
    assert!(
        !kids.contains(&own_kid),
        "a ring that did not opt in is not listed"
    );

    app.create_ring("c100", json!({"combined_jwks": true}))
        .await;
    let refused = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.body["error"]["code"], "jwks_too_large");
    assert_eq!(app.jwks_kids("c100").await.len(), 1);
    assert_eq!(app.jwks_kids("own").await, vec![own_kid.clone()]);

    // Taking one ring out serves the set again; the change is audited.
    let out = app
        .request(
            reqwest::Method::PATCH,
            "/v1/rings/c000",
            Some(&app.admin_token),
            Some(json!({"combined_jwks": false})),
        )
        .await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert_eq!(out.body["combined_jwks"], false);
    let kids = combined_kids().await;
    assert_eq!(kids.len(), 100);
    assert!(!kids.contains(&app.jwks_kids("c000").await[0]));
    let changed = app
        .get("/v1/audit?action=ring_changed", Some(&app.admin_token))
        .await;
    assert_eq!(changed.body["records"][0]["ring"], "c000");
    assert_eq!(changed.body["records"][0]["detail"]["combined_jwks"], false);
}

store_tests!(
    the_jwks_is_cacheable_with_etag_and_304,
    no_jwks_ever_holds_private_members,
    the_combined_jwks_lists_opted_in_rings_up_to_a_hundred_keys
);
