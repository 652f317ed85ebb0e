//! The PKCS#11 backend against the real SoftHSM2 token `scripts/test` creates: what only this
//! backend has (keys that cannot leave the token, start-up faults, the token surviving a
//! restart, concurrency through the session pool). The behaviour every backend shares runs here
//! too, through `backend_tests!` in lifecycle.rs and interop.rs.

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};
use signet::domain::BackendKind;
use signet_core::{KeyId, KeyProvider, KeySpec, KeyUse};
use signet_pkcs11::{Pkcs11Config, Pkcs11Provider};

use crate::helpers::{
    pkcs11_env, refused_start, serve_process, terminate, Backend, Db, TestApp, TestDb,
};

fn token_provider() -> Pkcs11Provider {
    Pkcs11Provider::open(Pkcs11Config {
        module: pkcs11_env("SIGNET_TEST_PKCS11_MODULE").into(),
        token_label: pkcs11_env("SIGNET_TEST_PKCS11_TOKEN"),
        pin: SecretString::from(pkcs11_env("SIGNET_TEST_PKCS11_PIN")),
        pool_size: Some(1),
    })
    .expect("the test token opens")
}

/// `pkcs11-tool --list-objects --type privkey`, as an operator would check the token.
fn listed_private_keys() -> String {
    let output = Command::new("pkcs11-tool")
        .args(["--module", &pkcs11_env("SIGNET_TEST_PKCS11_MODULE")])
        .args(["--token-label", &pkcs11_env("SIGNET_TEST_PKCS11_TOKEN")])
        .args(["--login", "--pin", &pkcs11_env("SIGNET_TEST_PKCS11_PIN")])
        .args(["--list-objects", "--type", "privkey"])
        .output()
        .expect("pkcs11-tool (Debian package opensc) is installed: run scripts/test");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The object of `listing` ([`listed_private_keys`]) that holds signet's key `id`.
fn private_key_object<'a>(listing: &'a str, id: &str) -> &'a str {
    listing
        .split("Private Key Object")
        .find(|object| {
            object
                .lines()
                .any(|line| line.trim() == format!("label:      signet:{id}"))
        })
        .unwrap_or_else(|| panic!("no private key labelled signet:{id} in:\n{listing}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkcs11_tool_sees_the_keys_as_sensitive_never_extractable_and_local() {
    let app = TestApp::spawn_on(Db::Sqlite, Backend::Pkcs11).await;
    app.create_ring("es256", json!({})).await;
    app.create_ring("rs256", json!({"algorithm": "RS256"}))
        .await;
    for ring in ["es256", "rs256"] {
        let id = app.keys(ring).await[0]["id"].as_str().unwrap().to_owned();
        let listing = listed_private_keys();
        let object = private_key_object(&listing, &id);
        assert!(
            object.contains("Access:     sensitive, always sensitive, never extractable, local"),
            "{object}"
        );
        assert!(object.contains("Usage:      sign"), "{object}");
        assert!(!object.contains("decrypt"), "{object}");
    }
}

/// Ring "r"'s keys but for the latest exp each has signed, which every signature moves.
async fn keys_but_last_exp(app: &TestApp) -> Vec<serde_json::Value> {
    let mut keys = app.keys("r").await;
    for key in &mut keys {
        key.as_object_mut().unwrap().remove("last_token_exp");
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_keys_are_found_on_the_token_and_sign_without_regeneration() {
    let app = TestApp::spawn_on(Db::Postgres, Backend::Pkcs11).await;
    let ring = app.create_ring("r", json!({"algorithm": "PS256"})).await;
    let (_, issuer) = app.create_client("svc", "issuer", &["r"]).await;
    let kid = ring["active_kid"].as_str().unwrap().to_owned();
    let before = keys_but_last_exp(&app).await;
    assert_eq!(
        app.sign(&issuer, "r", json!({"aud": "api"})).await.status,
        StatusCode::OK
    );

    let app = app.restart().await;
    let signed = app.sign(&issuer, "r", json!({"aud": "api"})).await;
    assert_eq!(signed.status, StatusCode::OK, "{}", signed.body);
    assert_eq!(signed.body["kid"], kid.as_str());
    assert_eq!(
        keys_but_last_exp(&app).await,
        before,
        "no key was generated or changed"
    );
    let verified = app
        .request(
            reqwest::Method::POST,
            "/v1/verify",
            None,
            Some(json!({"token": signed.body["token"]})),
        )
        .await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
}

/// 64 clients sign for a minute through the session pool: every token verifies, nothing fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_signers_for_a_minute_get_only_valid_tokens() {
    let app = Arc::new(TestApp::spawn_on(Db::Postgres, Backend::Pkcs11).await);
    app.create_ring("r", json!({})).await;
    let (_, issuer) = app.create_client("svc", "issuer", &["r"]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tasks = Vec::new();
    for client in 0..64 {
        let (app, issuer) = (app.clone(), issuer.clone());
        tasks.push(tokio::spawn(async move {
            let mut tokens = Vec::new();
            while Instant::now() < deadline {
                let claims =
                    json!({"aud": "api", "sub": format!("client-{client}-{}", tokens.len())});
                let response = app.sign(&issuer, "r", claims).await;
                assert_eq!(response.status, StatusCode::OK, "{}", response.body);
                tokens.push(response.body["token"].as_str().unwrap().to_owned());
            }
            tokens
        }));
    }
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.extend(task.await.expect("no signer panicked"));
    }
    assert!(
        tokens.len() > 64 * 10,
        "only {} tokens in a minute",
        tokens.len()
    );
    let jwks = app.get("/v1/rings/r/jwks.json", None).await.body;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    let jwk = jwks["keys"][0].clone();
    let count = tokens.len();
    let failures = tokio::task::spawn_blocking(move || {
        tokens
            .iter()
            .filter(|token| {
                let expect = signet::jose::Expect {
                    audience: Some("api"),
                    ..signet::jose::Expect::default()
                };
                signet::jose::verify(token, &jwk, &expect).is_err()
            })
            .count()
    })
    .await
    .unwrap();
    assert_eq!(failures, 0, "{failures} of {count} tokens did not verify");
}

/// `signet serve` on the token signs, then exits with status 0 on SIGTERM: it closes its sessions
/// and finalizes the module before the process tears the library down. Twenty restarts in a row
/// on one data directory, each signing with the same key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_on_the_token_exits_cleanly_on_sigterm_after_signing() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(Db::Sqlite, dir.path()).await;
    let (module, label, pin) = (
        pkcs11_env("SIGNET_TEST_PKCS11_MODULE"),
        pkcs11_env("SIGNET_TEST_PKCS11_TOKEN"),
        pkcs11_env("SIGNET_TEST_PKCS11_PIN"),
    );
    let env = [
        ("SIGNET_PKCS11_MODULE", module.as_str()),
        ("SIGNET_PKCS11_TOKEN_LABEL", label.as_str()),
        ("SIGNET_PKCS11_PIN", pin.as_str()),
    ];
    let mut issuer = None;
    let mut kids = HashSet::new();
    for run in 1..=20 {
        let (mut server, base) = serve_process(dir.path(), &db.url, &env).await;
        // A client of its own, dropped before the signal: no keep-alive connection holds the stop.
        let http = crate::helpers::http_client();
        let issuer = if let Some(token) = &issuer {
            token
        } else {
            let admin = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
            let admin = admin.trim();
            let created = http
                .post(format!("{base}/v1/rings"))
                .bearer_auth(admin)
                .json(&json!({"name": "r", "backend": "pkcs11",
                    "policy": {"issuer": "https://issuer.test", "audiences": ["api"]}}))
                .send()
                .await
                .unwrap();
            assert_eq!(created.status(), StatusCode::CREATED);
            let client: Value = http
                .post(format!("{base}/v1/clients"))
                .bearer_auth(admin)
                .json(&json!({"name": "svc", "role": "issuer", "rings": ["r"]}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            issuer.insert(client["token"].as_str().unwrap().to_owned())
        };
        let signed = http
            .post(format!("{base}/v1/rings/r/sign"))
            .bearer_auth(issuer)
            .json(&json!({"claims": {"aud": "api"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(signed.status(), StatusCode::OK, "run {run}");
        let signed: Value = signed.json().await.unwrap();
        kids.insert(signed["kid"].as_str().unwrap().to_owned());
        drop(http);

        let status = terminate(&mut server).await;
        assert_eq!(status.code(), Some(0), "run {run}: {status}");
    }
    assert_eq!(kids.len(), 1, "one key on the token throughout: {kids:?}");
}

/// A key on the token that no record names (its intent was dropped, or the database restored
/// from an older backup) is reported, never used, and never silently deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_on_the_token_that_no_record_names_are_reported() {
    let app = TestApp::spawn_on(Db::Sqlite, Backend::Pkcs11).await;
    app.create_ring("r", json!({})).await;
    let recorded = KeyId(app.keys("r").await[0]["id"].as_str().unwrap().to_owned());
    let token = token_provider();
    let stray = KeyId(format!("orphan-{}", signet::random::random_id(6)));
    let generated = token
        .generate(&stray, KeySpec::EcP256, KeyUse::Sign)
        .await
        .unwrap();

    let orphans = app.services.rings.orphaned_keys().await.unwrap();
    assert!(orphans.contains(&(BackendKind::Pkcs11, stray.clone())));
    assert!(!orphans.iter().any(|(_, id)| *id == recorded));
    assert!(
        token.locate(&stray).await.unwrap().is_some(),
        "reported, not deleted"
    );
    token.destroy(&generated.reference).await.unwrap();
}

#[test]
fn a_wrong_pin_a_missing_token_or_a_missing_module_stops_the_start_with_the_setting_named() {
    let module = pkcs11_env("SIGNET_TEST_PKCS11_MODULE");
    let label = pkcs11_env("SIGNET_TEST_PKCS11_TOKEN");
    let wrong_pin = "wrong-pin-31337";
    let stderr = refused_start(&[
        ("SIGNET_PKCS11_MODULE", &module),
        ("SIGNET_PKCS11_TOKEN_LABEL", &label),
        ("SIGNET_PKCS11_PIN", wrong_pin),
    ]);
    assert!(stderr.contains("SIGNET_PKCS11_PIN: token"), "{stderr}");
    assert!(stderr.contains("refused the user PIN"), "{stderr}");
    assert!(!stderr.contains(wrong_pin), "the PIN leaked: {stderr}");

    let stderr = refused_start(&[
        ("SIGNET_PKCS11_MODULE", &module),
        ("SIGNET_PKCS11_TOKEN_LABEL", "no-such-token"),
        ("SIGNET_PKCS11_PIN", &pkcs11_env("SIGNET_TEST_PKCS11_PIN")),
    ]);
    assert!(
        stderr.contains("SIGNET_PKCS11_TOKEN_LABEL: no token labelled \"no-such-token\""),
        "{stderr}"
    );

    let stderr = refused_start(&[
        ("SIGNET_PKCS11_MODULE", "/nonexistent/libpkcs11.so"),
        ("SIGNET_PKCS11_TOKEN_LABEL", &label),
        ("SIGNET_PKCS11_PIN", "1234"),
    ]);
    assert!(
        stderr.contains(
            "SIGNET_PKCS11_MODULE: cannot load the PKCS#11 module /nonexistent/libpkcs11.so"
        ),
        "{stderr}"
    );
}

/// Rings on a backend this server has no configuration for are refused up front.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pkcs11_ring_on_a_server_without_a_token_is_refused() {
    let data_dir = Arc::new(tempfile::tempdir().unwrap());
    let db = Arc::new(crate::helpers::TestDb::new(Db::Sqlite, data_dir.path()).await);
    let mut settings = crate::helpers::settings(data_dir.path().to_owned(), &db.url);
    settings.pkcs11 = None;
    let app = TestApp::start_with(settings, data_dir, db).await;
    let response = app
        .post(
            "/v1/rings",
            &app.admin_token,
            json!({"name": "r", "backend": "pkcs11", "policy": {"issuer": "https://i.test", "audiences": ["api"]}}),
        )
        .await;
    assert_eq!(
        response.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        response.body
    );
    assert_eq!(response.body["error"]["code"], "backend_not_configured");
}

/// Encryption rings on the token: npm `jose` and jwcrypto encrypt 1,000 tokens per algorithm
/// SoftHSM2 can do to the ring's JWKS, and signet decrypts each with a key that never leaves the
/// token. RSA-OAEP-256, which SoftHSM2 lacks, is refused when the ring is created, leaving no
/// ring and no key behind. `pkcs11-tool` sees the keys as sensitive, never extractable, and able
/// to decrypt (RSA) or derive (EC) only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encryption_rings_on_the_token_decrypt_and_their_keys_cannot_leave_it() {
    let app = TestApp::spawn_on(Db::Sqlite, Backend::Pkcs11).await;
    crate::decryption::senders_round_trip(
        &app,
        &[
            ("RSA-OAEP", "{}"),
            ("ECDH-ES", "{}"),
            ("ECDH-ES+A256KW", "{}"),
        ],
        500,
    )
    .await;

    let before = listed_private_keys().matches("Private Key Object").count();
    crate::decryption::refused_at_creation(&app, "RSA-OAEP-256").await;
    assert_eq!(
        listed_private_keys().matches("Private Key Object").count(),
        before,
        "the key that failed its self-test is gone from the token"
    );

    let listing = listed_private_keys();
    for (ring, usage) in [("inbox-0", "decrypt"), ("inbox-1", "derive")] {
        let id = app.keys(ring).await[0]["id"].as_str().unwrap().to_owned();
        let object = private_key_object(&listing, &id);
        assert!(
            object.contains("Access:     sensitive, always sensitive, never extractable, local"),
            "{object}"
        );
        let usage_line = object
            .lines()
            .find(|line| line.trim().starts_with("Usage:"))
            .unwrap_or_else(|| panic!("no usage line in {object}"));
        assert!(usage_line.contains(usage), "{usage_line}");
        assert!(!usage_line.contains("sign"), "{usage_line}");
    }
}
