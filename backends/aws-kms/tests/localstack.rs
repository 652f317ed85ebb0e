//! The KMS backend against a real KMS API: LocalStack, which `scripts/test` installs, starts and
//! points these tests at with `SIGNET_TEST_KMS_ENDPOINT` (and test credentials in the standard
//! AWS variables).

use aws_sdk_kms::types::KeyState;
use signet_aws_kms::{AwsKmsConfig, AwsKmsProvider};
use signet_core::testkit::{self, Conformance, EncryptionClaim};
use signet_core::{Algorithm, KeyId, KeyProvider, KeySpec, KeyUse, OaepHash, ProviderError};

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
    testkit::unique_id(name)
}

/// KMS signs ES256, ES384, RS256 and PS256 (messages over its 4096-byte RAW limit as a digest
/// computed locally: the suite signs a 5000-byte message too). LocalStack makes no
/// ECC_NIST_EDWARDS25519 keys, so Ed25519 is not claimed and must be refused. Locating
/// finds a key by its alias and the inventory lists it by its tag; a key only the tag names (a
/// crash before its alias) is listed too: tests/api/aws_kms.rs.
///
/// KMS agrees with P-256 and P-384 keys and decrypts RSA-OAEP with SHA-1 and SHA-256. Only
/// SHA-256 is claimed here: LocalStack's Decrypt runs OAEP with SHA-256 whatever algorithm it is
/// asked for, so every SHA-1 ciphertext fails there (with its InternalError, "Decryption
/// failed"), which the backend answers with Unsupported; AWS KMS decrypts them.
#[tokio::test]
async fn the_kms_backend_keeps_the_key_provider_contract() {
    let kms = provider().await;
    let claims: Vec<_> = testkit::EVERY_PAIR
        .into_iter()
        .filter(|&(spec, _)| spec != KeySpec::Ed25519)
        .collect();
    Conformance {
        claims: &claims,
        unsupported: &[KeySpec::Ed25519],
        encryption: &[
            EncryptionClaim::Ecdh(KeySpec::EcP256),
            EncryptionClaim::Ecdh(KeySpec::EcP384),
            EncryptionClaim::RsaOaep(KeySpec::Rsa2048, OaepHash::Sha256),
            EncryptionClaim::RsaOaep(KeySpec::Rsa3072, OaepHash::Sha256),
        ],
        unsupported_oaep: &[OaepHash::Sha1],
        reference_prefix: "awskms:arn:aws:kms:us-east-1:",
    }
    .run(&kms, || unique("conformance"))
    .await;
}

/// An encryption key is a KMS key of one usage, ENCRYPT_DECRYPT (RSA) or KEY_AGREEMENT (EC):
/// KMS itself refuses to sign with it, not only signet.
#[tokio::test]
async fn encryption_keys_are_kms_keys_that_cannot_sign() {
    use aws_sdk_kms::error::ProvideErrorMetadata;
    use aws_sdk_kms::primitives::Blob;
    use aws_sdk_kms::types::{KeyUsageType, SigningAlgorithmSpec};

    let kms = provider().await;
    for (spec, usage, algorithm) in [
        (
            KeySpec::Rsa2048,
            KeyUsageType::EncryptDecrypt,
            SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
        ),
        (
            KeySpec::EcP256,
            KeyUsageType::KeyAgreement,
            SigningAlgorithmSpec::EcdsaSha256,
        ),
    ] {
        let key = kms
            .generate(&unique("enc"), spec, KeyUse::Encrypt)
            .await
            .unwrap();
        let arn = key.reference.0.trim_start_matches("awskms:");
        let described = kms
            .client()
            .describe_key()
            .key_id(arn)
            .send()
            .await
            .unwrap();
        assert_eq!(
            described.key_metadata().unwrap().key_usage(),
            Some(&usage),
            "{spec:?}"
        );
        let signed = kms
            .client()
            .sign()
            .key_id(arn)
            .message(Blob::new(b"m".to_vec()))
            .signing_algorithm(algorithm)
            .send()
            .await;
        let code = signed.map(drop).map_err(|e| e.code().map(str::to_owned));
        assert_eq!(
            code,
            Err(Some("InvalidKeyUsageException".into())),
            "{spec:?}"
        );
        let refused = kms.sign(&key.reference, Algorithm::RS256, b"m").await;
        assert!(
            matches!(refused, Err(ProviderError::Unsupported(_))),
            "{spec:?}: {refused:?}"
        );
        kms.destroy(&key.reference).await.unwrap();
    }
}

#[tokio::test]
async fn ed25519_is_refused_clearly_where_the_kms_has_no_ed25519_keys() {
    let kms = provider().await;
    let err = kms
        .generate(&unique("ed"), KeySpec::Ed25519, KeyUse::Sign)
        .await
        .unwrap_err();
    match err {
        ProviderError::Unsupported(message) => {
            assert!(message.contains("ECC_NIST_EDWARDS25519"), "{message}");
            assert!(message.contains("Ed25519"), "{message}");
        }
        other => panic!("expected Unsupported, got {other}"),
    }
}

#[tokio::test]
async fn destroy_schedules_deletion_after_the_window_and_is_idempotent() {
    let mut config = config();
    config.deletion_window_days = 7;
    let kms = AwsKmsProvider::open(&config).await.unwrap();
    let key = kms
        .generate(&unique("gone"), KeySpec::EcP256, KeyUse::Sign)
        .await
        .unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let before = i64::try_from(before).unwrap();
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
    let key_a = kms
        .generate(&a, KeySpec::EcP256, KeyUse::Sign)
        .await
        .unwrap();
    let key_b = kms
        .generate(&b, KeySpec::EcP256, KeyUse::Sign)
        .await
        .unwrap();
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
