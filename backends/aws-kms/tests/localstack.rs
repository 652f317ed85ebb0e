//! The KMS backend against a real KMS API: LocalStack, which `scripts/test` installs, starts and
//! points these tests at with `SIGNET_TEST_KMS_ENDPOINT` (and test credentials in the standard
//! AWS variables).

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use aws_sdk_kms::types::KeyState;
use signet_aws_kms::{AwsKmsConfig, AwsKmsProvider};
use signet_core::{Algorithm, KeyId, KeyProvider, KeySpec, ProviderError, PublicKey};

fn config() -> AwsKmsConfig {
    let endpoint = std::env::var("SIGNET_TEST_KMS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "SIGNET_TEST_KMS_ENDPOINT is not set. Run the suite with scripts/test, which starts \
             LocalStack, or start it yourself (README, Test it) and set \
             SIGNET_TEST_KMS_ENDPOINT=http://127.0.0.1:<port> with AWS_ACCESS_KEY_ID=test and \
             AWS_SECRET_ACCESS_KEY=test"
        )
    });
    // LocalStack answers in seconds on a busy machine: only a real outage may fail a call.
    AwsKmsConfig {
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint),
        call_timeout: std::time::Duration::from_secs(30),
        ..AwsKmsConfig::default()
    }
}

async fn provider() -> AwsKmsProvider {
    AwsKmsProvider::open(&config())
        .await
        .expect("LocalStack KMS answers")
}

fn unique(name: &str) -> KeyId {
    let mut bytes = [0u8; 9];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    KeyId(format!("{name}-{suffix}"))
}

/// Verifies a JWS signature with the public key as a JWK carries it, independently of the
/// provider's own check (which starts from KMS's DER).
fn verify(public: &PublicKey, alg: Algorithm, message: &[u8], sig: &[u8]) -> bool {
    match public {
        PublicKey::Ec { x, y, .. } => {
            let point = [&[4u8][..], x, y].concat();
            let alg: &dyn signature::VerificationAlgorithm = if alg == Algorithm::ES256 {
                &signature::ECDSA_P256_SHA256_FIXED
            } else {
                &signature::ECDSA_P384_SHA384_FIXED
            };
            UnparsedPublicKey::new(alg, point)
                .verify(message, sig)
                .is_ok()
        }
        PublicKey::Rsa { n, e } => {
            let params = if alg == Algorithm::RS256 {
                &signature::RSA_PKCS1_2048_8192_SHA256
            } else {
                &signature::RSA_PSS_2048_8192_SHA256
            };
            RsaPublicKeyComponents { n, e }
                .verify(params, message, sig)
                .is_ok()
        }
        PublicKey::Ed25519 { .. } => false,
    }
}

#[tokio::test]
async fn every_algorithm_signs_short_and_long_messages_that_verify() {
    let kms = provider().await;
    let short = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0".to_vec();
    // Over the 4096-byte RAW limit: signed as a digest computed locally.
    let long = vec![b'a'; 5000];
    for (alg, spec, sig_len) in [
        (Algorithm::ES256, KeySpec::EcP256, 64),
        (Algorithm::ES384, KeySpec::EcP384, 96),
        (Algorithm::RS256, KeySpec::Rsa2048, 256),
        (Algorithm::PS256, KeySpec::Rsa3072, 384),
    ] {
        let key = kms.generate(&unique("sign"), spec).await.unwrap();
        assert!(key.reference.0.starts_with("awskms:arn:aws:kms:us-east-1:"));
        assert_eq!(
            kms.public_key(&key.reference).await.unwrap(),
            key.public_key
        );
        for message in [&short, &long] {
            let sig = kms.sign(&key.reference, alg, message).await.unwrap();
            assert_eq!(sig.len(), sig_len, "{alg}");
            assert!(verify(&key.public_key, alg, message, &sig), "{alg}");
            assert!(!verify(&key.public_key, alg, b"another message", &sig));
        }
        kms.destroy(&key.reference).await.unwrap();
    }
}

#[tokio::test]
async fn a_key_signs_only_with_its_own_algorithm() {
    let kms = provider().await;
    let key = kms.generate(&unique("alg"), KeySpec::EcP256).await.unwrap();
    let err = kms
        .sign(&key.reference, Algorithm::ES384, b"m")
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unsupported(_)), "{err}");
    kms.destroy(&key.reference).await.unwrap();
}

#[tokio::test]
async fn eddsa_is_refused_clearly_where_the_kms_has_no_ed25519_keys() {
    let kms = provider().await;
    let err = kms
        .generate(&unique("ed"), KeySpec::Ed25519)
        .await
        .unwrap_err();
    match err {
        ProviderError::Unsupported(message) => {
            assert!(message.contains("ECC_NIST_EDWARDS25519"), "{message}");
            assert!(message.contains("EdDSA"), "{message}");
        }
        other => panic!("expected Unsupported, got {other}"),
    }
}

#[tokio::test]
async fn a_key_is_located_by_its_alias_and_inventoried_by_its_tag() {
    let kms = provider().await;
    let id = unique("find");
    let key = kms.generate(&id, KeySpec::EcP256).await.unwrap();
    assert_eq!(kms.locate(&id).await.unwrap(), Some(key.reference.clone()));
    assert_eq!(kms.locate(&unique("never")).await.unwrap(), None);

    // A key only the tag names (a crash before its alias) is listed too: tests/api/aws_kms.rs.
    assert!(kms.inventory().await.unwrap().contains(&id));

    kms.destroy(&key.reference).await.unwrap();
    assert_eq!(kms.locate(&id).await.unwrap(), None);
    assert!(!kms.inventory().await.unwrap().contains(&id));
}

#[tokio::test]
async fn destroy_schedules_deletion_after_the_window_and_is_idempotent() {
    let mut config = config();
    config.deletion_window_days = 7;
    let kms = AwsKmsProvider::open(&config).await.unwrap();
    let key = kms
        .generate(&unique("gone"), KeySpec::EcP256)
        .await
        .unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let date = kms.destroy(&key.reference).await.unwrap().unwrap();
    let days = (date - before) as f64 / 86_400_000.0;
    assert!((6.9..=7.1).contains(&days), "deletion in {days} days");
    assert_eq!(kms.destroy(&key.reference).await.unwrap(), Some(date));
    let arn = key.reference.0.trim_start_matches("awskms:");
    let described = kms
        .client()
        .describe_key()
        .key_id(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.key_metadata().unwrap().key_state(),
        Some(&KeyState::PendingDeletion)
    );
    for err in [
        kms.public_key(&key.reference).await.unwrap_err(),
        kms.sign(&key.reference, Algorithm::ES256, b"m")
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, ProviderError::NotFound(_)), "{err}");
    }
}

#[tokio::test]
async fn annotations_name_the_ring_and_move_its_active_alias() {
    let kms = provider().await;
    let ring = unique("ring").0;
    let (a, b) = (unique("a"), unique("b"));
    let key_a = kms.generate(&a, KeySpec::EcP256).await.unwrap();
    let key_b = kms.generate(&b, KeySpec::EcP256).await.unwrap();
    kms.annotate(&a, &key_a.reference, &ring, true)
        .await
        .unwrap();
    kms.annotate(&b, &key_b.reference, &ring, false)
        .await
        .unwrap();
    let target = |alias: String| {
        let client = kms.client().clone();
        async move {
            let described = client.describe_key().key_id(alias).send().await.unwrap();
            format!(
                "awskms:{}",
                described.key_metadata().unwrap().arn().unwrap()
            )
        }
    };
    assert_eq!(
        target(format!("alias/signet/{ring}/active")).await,
        key_a.reference.0
    );
    assert_eq!(
        target(format!("alias/signet/{ring}/{b}")).await,
        key_b.reference.0
    );
    kms.annotate(&b, &key_b.reference, &ring, true)
        .await
        .unwrap();
    assert_eq!(
        target(format!("alias/signet/{ring}/active")).await,
        key_b.reference.0
    );
    assert_eq!(
        target(format!("alias/signet/{ring}/{a}")).await,
        key_a.reference.0
    );
    // LocalStack's ListResourceTags takes the key id only (AWS also takes the ARN).
    let key_id = key_b.reference.0.rsplit('/').next().unwrap();
    let tags = kms
        .client()
        .list_resource_tags()
        .key_id(key_id)
        .send()
        .await
        .unwrap();
    assert!(tags
        .tags()
        .iter()
        .any(|t| t.tag_key() == "signet:ring" && t.tag_value() == ring));
}

#[tokio::test]
async fn an_unreachable_endpoint_stops_the_start_with_a_clear_error_quickly() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = AwsKmsConfig {
        endpoint_url: Some(format!("http://127.0.0.1:{port}")),
        call_timeout: std::time::Duration::from_secs(3),
        ..config()
    };
    let started = std::time::Instant::now();
    let err = AwsKmsProvider::open(&config).await.err().unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let message = err.to_string();
    assert!(message.contains("us-east-1"), "{message}");
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(message.contains("did not answer"), "{message}");
}
