use std::os::unix::fs::PermissionsExt;

use secrecy::SecretString;
use signet_core::testkit::{self, Conformance};
use signet_core::{verify, KeyUse};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::fs;
use std::path::Path;

use super::*;

fn open(dir: &Path, kek: Option<KekSource>) -> Result<FileProvider, KekError> {
    FileProvider::open(FileConfig {
        dir: dir.to_owned(),
        kek,
    })
}

fn key_text(text: &str) -> KekSource {
    KekSource::key_from_text(&SecretString::from(text.to_owned())).unwrap()
}

const KEY_A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const KEY_B: &str = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// The file backend makes every kind of key, signs with every algorithm, and agrees and
/// decrypts (with both OAEP hashes) with every kind of encryption key.
#[tokio::test]
async fn the_file_backend_keeps_the_key_provider_contract() {
    let dir = tempfile::tempdir().unwrap();
    let provider = open(dir.path(), Some(key_text(KEY_A))).unwrap();
    let mut n = 0;
    Conformance {
        claims: &testkit::EVERY_PAIR,
        unsupported: &[],
        encryption: &testkit::EVERY_ENCRYPTION_CLAIM,
        unsupported_oaep: &[],
        reference_prefix: "file:",
    }
    .run(&provider, || {
        n += 1;
        KeyId(format!("k{n}"))
    })
    .await;
}

#[tokio::test]
async fn keys_survive_a_reopen_with_the_same_key_encryption_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = {
        let provider = open(dir.path(), Some(key_text(KEY_A))).unwrap();
        provider
            .generate(&KeyId("k".into()), KeySpec::EcP256, KeyUse::Sign)
            .await
            .unwrap()
    };
    let provider = open(dir.path(), Some(key_text(KEY_A))).unwrap();
    assert_eq!(
        provider.public_key(&key.reference).await.unwrap(),
        key.public_key
    );
    let signature = provider
        .sign(&key.reference, Algorithm::ES256, b"m")
        .await
        .unwrap();
    assert!(verify(&key.public_key, Algorithm::ES256, b"m", &signature));
}

#[tokio::test]
async fn a_wrong_or_missing_key_encryption_key_is_refused_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path(), Some(key_text(KEY_A)))
        .unwrap()
        .generate(&KeyId("k".into()), KeySpec::EcP256, KeyUse::Sign)
        .await
        .unwrap();
    let store_before = fs::read(dir.path().join("store.json")).unwrap();

    let wrong = open(dir.path(), Some(key_text(KEY_B))).err().unwrap();
    assert!(matches!(wrong, KekError::WrongKey(_)), "{wrong}");
    let missing = open(dir.path(), None).err().unwrap();
    assert!(matches!(missing, KekError::MissingKey(_)), "{missing}");
    assert!(matches!(missing, KekError::MissingKey(_)), "{missing}");
    let passphrase = open(
        dir.path(),
        Some(KekSource::Passphrase(SecretString::from("pw".to_owned()))),
    )
    .err()
    .unwrap();
    assert!(
        matches!(passphrase, KekError::KindMismatch(..)),
        "{passphrase}"
    );

    assert!(!dir.path().join("master.key").exists());
    assert_eq!(
        fs::read(dir.path().join("store.json")).unwrap(),
        store_before
    );
}

#[tokio::test]
async fn a_passphrase_store_opens_only_with_its_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let passphrase = |p: &str| Some(KekSource::Passphrase(SecretString::from(p.to_owned())));
    let key = open(dir.path(), passphrase("correct horse"))
        .unwrap()
        .generate(&KeyId("k".into()), KeySpec::Ed25519, KeyUse::Sign)
        .await
        .unwrap();
    let provider = open(dir.path(), passphrase("correct horse")).unwrap();
    provider
        .sign(&key.reference, Algorithm::EdDSA, b"m")
        .await
        .unwrap();
    let err = open(dir.path(), passphrase("wrong horse")).err().unwrap();
    assert!(matches!(err, KekError::WrongKey(_)), "{err}");
    let err = open(dir.path(), None).err().unwrap();
    assert!(matches!(err, KekError::MissingPassphrase(_)), "{err}");
}

#[tokio::test]
async fn the_quick_start_generates_a_private_master_key_and_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = open(dir.path(), None)
        .unwrap()
        .generate(&KeyId("k".into()), KeySpec::EcP256, KeyUse::Sign)
        .await
        .unwrap();
    let master = dir.path().join("master.key");
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&master), 0o600);
    assert_eq!(mode(&dir.path().join("keys/k.key")), 0o600);
    let master_before = fs::read(&master).unwrap();

    let provider = open(dir.path(), None).unwrap();
    provider
        .sign(&key.reference, Algorithm::ES256, b"m")
        .await
        .unwrap();
    assert_eq!(fs::read(&master).unwrap(), master_before);

    // Losing master.key must not make a fresh store over the sealed keys.
    fs::remove_file(&master).unwrap();
    assert!(matches!(
        open(dir.path(), None).err().unwrap(),
        KekError::MissingKey(_)
    ));
    assert!(!master.exists());
}

#[tokio::test]
async fn a_sealed_key_file_opens_only_under_its_own_id() {
    let dir = tempfile::tempdir().unwrap();
    let provider = open(dir.path(), Some(key_text(KEY_A))).unwrap();
    provider
        .generate(&KeyId("a".into()), KeySpec::EcP256, KeyUse::Sign)
        .await
        .unwrap();
    let text = fs::read_to_string(dir.path().join("keys/a.key")).unwrap();
    fs::write(
        dir.path().join("keys/b.key"),
        text.replace("\"a\"", "\"b\""),
    )
    .unwrap();
    let reopened = open(dir.path(), Some(key_text(KEY_A))).unwrap();
    let err = reopened
        .sign(&KeyRef("file:b".into()), Algorithm::ES256, b"m")
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Backend(_)), "{err}");
}

#[tokio::test]
async fn references_cannot_escape_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let provider = open(dir.path(), Some(key_text(KEY_A))).unwrap();
    for reference in ["file:../store", "file:", "pkcs11:token=x", "file:a/b"] {
        let err = provider
            .public_key(&KeyRef(reference.into()))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ProviderError::NotFound(_)),
            "{reference}: {err}"
        );
    }
}

#[test]
fn key_encryption_keys_parse_from_hex_and_base64_only_at_32_bytes() {
    assert!(KekSource::key_from_text(&SecretString::from(KEY_A.to_owned())).is_ok());
    let b64 = B64.encode([7u8; 32]);
    assert!(KekSource::key_from_text(&SecretString::from(b64)).is_ok());
    for bad in ["", "abcd", &B64.encode([7u8; 31])] {
        assert!(matches!(
            KekSource::key_from_text(&SecretString::from(bad.to_owned())),
            Err(KekError::InvalidKey)
        ));
    }
}
