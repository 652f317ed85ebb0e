//! The AWS KMS backend against LocalStack (which `scripts/test` starts): what only this backend
//! has (aliases and scheduled deletion in KMS, messages signed as digests, Ed25519 refused where
//! the KMS lacks it, outages, start-up faults, keys reported by tag). The behaviour every backend
//! shares runs here too, through `backend_tests!` in lifecycle.rs, interop.rs and store.rs.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kms::types::{KeyState, KeyUsageType, Tag};
use reqwest::StatusCode;
use serde_json::json;
use signet::domain::BackendKind;
use signet_aws_kms::{AwsKmsConfig, AwsKmsProvider};
use signet_core::KeyId;

use crate::helpers::{
    eventually, kms_config, kms_endpoint, refused_start, Backend, Db, TestApp, TestDb,
};
use crate::interop::{verify_all, Verifier};

async fn kms() -> AwsKmsProvider {
    AwsKmsProvider::open(&kms_config(kms_endpoint()))
        .await
        .expect("LocalStack answers at SIGNET_TEST_KMS_ENDPOINT")
}

/// The ARN the KMS alias `alias` names.
async fn alias_target(kms: &AwsKmsProvider, alias: &str) -> String {
    let described = kms
        .client()
        .describe_key()
        .key_id(alias)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{alias}: {e}"));
    described.key_metadata().unwrap().arn().unwrap().to_owned()
}

fn arn_of(key: &serde_json::Value) -> String {
    key["reference"]
        .as_str()
        .unwrap()
        .strip_prefix("awskms:")
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eddsa_ring_is_refused_at_creation_where_the_kms_has_no_ed25519_keys() {
    let app = TestApp::spawn_on(Db::Sqlite, Backend::AwsKms).await;
    let response = app
        .post(
            "/v1/rings",
            &app.admin_token,
            json!({"name": "ed", "backend": "aws-kms", "algorithm": "EdDSA",
                   "policy": {"issuer": "https://issuer.test"}}),
        )
        .await;
    assert_eq!(
        response.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        response.body
    );
    assert_eq!(response.body["error"]["code"], "unsupported_by_backend");
    let message = response.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("ECC_NIST_EDWARDS25519"), "{message}");
    let ring = app.get("/v1/rings/ed", Some(&app.admin_token)).await;
    assert_eq!(
        ring.status,
        StatusCode::NOT_FOUND,
        "no half-made ring stays"
    );
}

/// A signing input over KMS's 4096-byte limit for raw messages is hashed here and signed as a
/// digest; the token must still verify in both verifiers, for every algorithm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_longer_than_kms_raw_messages_are_signed_over_their_digest_and_verify() {
    let app = TestApp::spawn_on(Db::Sqlite, Backend::AwsKms).await;
    let names = ["es256", "es384", "rs256", "ps256"];
    for name in names {
        app.create_ring(
            name,
            json!({"algorithm": name.to_uppercase(), "policy": {"max_token_bytes": 16384}}),
        )
        .await;
    }
    let (_, issuer) = app.create_client("svc", "issuer", &names).await;
    for name in names {
        let response = app
            .sign(
                &issuer,
                name,
                json!({"aud": "api", "blob": "x".repeat(6000)}),
            )
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        let token = response.body["token"].as_str().unwrap().to_owned();
        assert!(token.rsplit_once('.').unwrap().0.len() > 4096);
        let url = format!("{}/v1/rings/{name}/jwks.json", app.address);
        for verifier in Verifier::ALL {
            verify_all(verifier, &url, std::slice::from_ref(&token));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_follow_rotation_and_a_destroyed_key_is_pending_deletion_in_kms() {
    let app = TestApp::spawn_on(Db::Postgres, Backend::AwsKms).await;
    // Tokens of at most 1 s, caches of 1 s, retired keys destroyed after 1 s.
    let ring = format!("aliases-{}", signet::random::random_id(4).to_lowercase());
    app.create_ring(
        &ring,
        json!({"policy": {"max_ttl_seconds": 1},
               "timing": {"jwks_max_age_seconds": 1, "leeway_seconds": 0,
                          "publish_lead_seconds": 2, "retain_retired_seconds": 1}}),
    )
    .await;
    let kms = kms().await;
    let first = app.keys(&ring).await.remove(0);
    let active_alias = format!("alias/signet/{ring}/active");
    assert_eq!(alias_target(&kms, &active_alias).await, arn_of(&first));

    let rotated = app.rotate_immediately(&ring).await;
    assert_eq!(rotated.status, StatusCode::ACCEPTED, "{}", rotated.body);
    let second = rotated.body;
    assert_eq!(alias_target(&kms, &active_alias).await, arn_of(&second));
    for key in [&first, &second] {
        let alias = format!("alias/signet/{ring}/{}", key["id"].as_str().unwrap());
        assert_eq!(alias_target(&kms, &alias).await, arn_of(key));
    }

    let old = first["kid"].as_str().unwrap().to_owned();
    eventually(60, "the old key to be destroyed", || async {
        app.keys(&ring)
            .await
            .iter()
            .any(|k| k["kid"] == old.as_str() && k["state"] == "destroyed")
    })
    .await;
    let described = kms
        .client()
        .describe_key()
        .key_id(arn_of(&first))
        .send()
        .await
        .unwrap();
    let metadata = described.key_metadata().unwrap();
    assert_eq!(metadata.key_state(), Some(&KeyState::PendingDeletion));
    // The record keeps the date KMS deletes the key: the default 30-day window ahead.
    let destroyed = app.keys(&ring).await;
    let destroyed = destroyed.iter().find(|k| k["kid"] == old.as_str()).unwrap();
    let at = chrono::DateTime::parse_from_rfc3339(destroyed["destroyed_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert_eq!(at, metadata.deletion_date().unwrap().secs());
    let days = (at - chrono::Utc::now().timestamp()) as f64 / 86_400.0;
    assert!((29.9..=30.1).contains(&days), "deleted in {days} days");
    // The active alias stays with the signing key.
    assert_eq!(alias_target(&kms, &active_alias).await, arn_of(&second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_keys_that_no_record_names_are_reported_by_their_tag() {
    let app = TestApp::spawn_on(Db::Sqlite, Backend::AwsKms).await;
    app.create_ring("r", json!({})).await;
    let recorded = KeyId(app.keys("r").await[0]["id"].as_str().unwrap().to_owned());
    // What a crash between CreateKey and its alias leaves: a key only the tag names.
    let stray = KeyId(format!("orphan-{}", signet::random::random_id(6)));
    let kms = kms().await;
    let created = kms
        .client()
        .create_key()
        .key_usage(KeyUsageType::SignVerify)
        .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
        .tags(
            Tag::builder()
                .tag_key("signet:key-id")
                .tag_value(&stray.0)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let orphans = app.services.rings.orphaned_keys().await.unwrap();
    assert!(orphans.contains(&(BackendKind::AwsKms, stray.clone())));
    assert!(!orphans.iter().any(|(_, id)| *id == recorded));
    let arn = created.key_metadata().unwrap().arn().unwrap();
    let described = kms
        .client()
        .describe_key()
        .key_id(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.key_metadata().unwrap().key_state(),
        Some(&KeyState::Enabled),
        "reported, not deleted"
    );
}

/// A LocalStack of the test's own, so stopping it disturbs no other test.
struct OwnLocalStack {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl OwnLocalStack {
    async fn start() -> OwnLocalStack {
        let python = std::env::var("SIGNET_TEST_LOCALSTACK_PYTHON").unwrap_or_else(|_| {
            panic!("SIGNET_TEST_LOCALSTACK_PYTHON is not set: run scripts/test, which installs LocalStack into a venv and names its python")
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(python)
            .args(["-m", "localstack.runtime.main"])
            .current_dir(dir.path())
            .env("GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
            .env("SERVICES", "kms")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("LocalStack starts");
        let endpoint = format!("http://127.0.0.1:{port}");
        let health = format!("{endpoint}/_localstack/health");
        eventually(90, "the test's own LocalStack to serve KMS", || {
            let health = health.clone();
            async move {
                match crate::helpers::http_client().get(&health).send().await {
                    Ok(r) => r
                        .text()
                        .await
                        .is_ok_and(|t| t.contains("\"kms\": \"available\"")),
                    Err(_) => false,
                }
            }
        })
        .await;
        OwnLocalStack {
            child,
            endpoint,
            _dir: dir,
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for OwnLocalStack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// KMS stops answering (a frozen process: every call times out) and then goes away (connection
/// refused): signing answers 503 with a clear error within the call timeout, never hangs, and
/// works again as soon as KMS is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kms_outage_answers_503_without_hanging_and_signing_resumes_after_it() {
    let mut localstack = OwnLocalStack::start().await;
    // LocalStack loads its KMS on the first call, in seconds on a busy machine: make that call
    // with the tests' long timeout, so that the production one below times only the outage.
    AwsKmsProvider::open(&kms_config(localstack.endpoint.clone()))
        .await
        .expect("the test's own LocalStack answers");
    let data_dir = Arc::new(tempfile::tempdir().unwrap());
    let db = Arc::new(TestDb::new(Db::Sqlite, data_dir.path()).await);
    let mut settings = crate::helpers::settings(data_dir.path().to_owned(), &db.url);
    // The timeout is what this test measures: the production default, not the tests' long one.
    let call_timeout = AwsKmsConfig::default().call_timeout;
    settings.aws_kms = Some(AwsKmsConfig {
        call_timeout,
        ..kms_config(localstack.endpoint.clone())
    });
    let mut app = TestApp::start_with(settings, data_dir, db).await;
    app.backend = Backend::AwsKms;
    app.create_ring("r", json!({})).await;
    let (_, issuer) = app.create_client("svc", "issuer", &["r"]).await;
    let sign = || app.sign(&issuer, "r", json!({"aud": "api"}));
    assert_eq!(sign().await.status, StatusCode::OK);

    localstack.signal("-STOP");
    let started = Instant::now();
    let frozen = sign().await;
    let took = started.elapsed();
    localstack.signal("-CONT");
    assert_eq!(
        frozen.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        frozen.body
    );
    assert_eq!(frozen.body["error"]["code"], "backend_unavailable");
    // What failed is in the log, under the request id; the caller learns only which backend.
    let message = frozen.body["error"]["message"].as_str().unwrap();
    assert_eq!(message, "the aws-kms backend is unavailable; retry later");
    assert!(frozen.body["error"]["request_id"].is_string());
    assert!(
        took < call_timeout + Duration::from_secs(2),
        "answered after {took:?}"
    );
    eventually(60, "signing to resume once KMS answers again", || async {
        sign().await.status == StatusCode::OK
    })
    .await;

    let _ = localstack.child.kill();
    let _ = localstack.child.wait();
    let started = Instant::now();
    let gone = sign().await;
    assert_eq!(
        gone.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        gone.body
    );
    assert_eq!(gone.body["error"]["code"], "backend_unavailable");
    assert!(started.elapsed() < call_timeout + Duration::from_secs(2));
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        ready.body["backends"]["aws-kms"], "unavailable",
        "{}",
        ready.body
    );
}

#[test]
fn missing_credentials_or_an_unknown_region_stop_the_start_with_a_clear_error() {
    let endpoint = kms_endpoint();
    // No credentials anywhere in the chain: empty environment variables, no profile files, no
    // instance metadata.
    let stderr = refused_start(&[
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL_KMS", &endpoint),
        ("AWS_ACCESS_KEY_ID", ""),
        ("AWS_SECRET_ACCESS_KEY", ""),
        ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        ),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    assert!(
        stderr.contains("opening the aws-kms key backend"),
        "{stderr}"
    );
    assert!(stderr.contains("no usable AWS credentials"), "{stderr}");

    // A region with no KMS endpoint (no override): the start fails naming the region.
    let stderr = refused_start(&[
        ("AWS_REGION", "xx-nowhere-1"),
        ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    assert!(stderr.contains("KMS in region xx-nowhere-1"), "{stderr}");
}

/// Encryption rings in KMS: npm `jose` and jwcrypto encrypt 1,000 tokens per algorithm LocalStack
/// can do to the ring's JWKS, and signet decrypts each with `Decrypt` or `DeriveSharedSecret`:
/// the private keys never leave KMS. The keys are made for that use alone (`ENCRYPT_DECRYPT`,
/// `KEY_AGREEMENT`). RSA-OAEP (SHA-1), which real KMS has and LocalStack does not, is refused
/// when the ring is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encryption_rings_in_kms_decrypt_with_keys_made_for_that_use() {
    let app = TestApp::spawn_on(Db::Sqlite, Backend::AwsKms).await;
    crate::decryption::senders_round_trip(
        &app,
        &[
            ("RSA-OAEP-256", "{}"),
            ("ECDH-ES", "{}"),
            ("ECDH-ES+A256KW", r#"{"curve": "P-384"}"#),
        ],
        500,
    )
    .await;
    let kms = kms().await;
    for (ring, usage) in [
        ("inbox-0", KeyUsageType::EncryptDecrypt),
        ("inbox-1", KeyUsageType::KeyAgreement),
        ("inbox-2", KeyUsageType::KeyAgreement),
    ] {
        let key = &app.keys(ring).await[0];
        let described = kms
            .client()
            .describe_key()
            .key_id(arn_of(key))
            .send()
            .await
            .unwrap();
        let metadata = described.key_metadata().unwrap();
        assert_eq!(metadata.key_usage(), Some(&usage), "{ring}");
    }

    crate::decryption::refused_at_creation(&app, "RSA-OAEP").await;
}
