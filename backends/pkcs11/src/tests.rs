//! Against a real SoftHSM2 token: `scripts/test` creates one and exports its settings.

use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeInfo, AttributeType};
use secrecy::SecretString;
use signet_core::testkit::{self, Conformance, EncryptionClaim};
use signet_core::{verify, KeyUse};

use super::*;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set. Run the suite with scripts/test, which creates a SoftHSM2 token, \
             or set SOFTHSM2_CONF, SIGNET_TEST_PKCS11_MODULE, SIGNET_TEST_PKCS11_TOKEN and \
             SIGNET_TEST_PKCS11_PIN for a token of your own (see SoftHSM.md)"
        )
    })
}

/// Some tests log the whole process out of the token: run this module's tests one at a time.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

fn open_provider() -> Pkcs11Provider {
    Pkcs11Provider::open(Pkcs11Config {
        module: env("SIGNET_TEST_PKCS11_MODULE").into(),
        token_label: env("SIGNET_TEST_PKCS11_TOKEN"),
        pin: SecretString::from(env("SIGNET_TEST_PKCS11_PIN")),
        pool_size: Some(2),
    })
    .expect("the test token opens")
}

fn new_id() -> KeyId {
    testkit::unique_id("unit")
}

/// SoftHSM2 makes every kind of key and signs with every algorithm; references name the token.
/// It makes every kind of encryption key too, but decrypts RSA-OAEP with SHA-1 only: SoftHSM
/// 2.6.1 refuses SHA-256 OAEP parameters (CKR_ARGUMENTS_BAD), which must come back as
/// Unsupported.
#[tokio::test]
async fn the_pkcs11_backend_keeps_the_key_provider_contract() {
    let _serial = serial().await;
    let provider = open_provider();
    Conformance {
        claims: &testkit::EVERY_PAIR,
        unsupported: &[],
        encryption: &[
            EncryptionClaim::Ecdh(KeySpec::EcP256),
            EncryptionClaim::Ecdh(KeySpec::EcP384),
            EncryptionClaim::RsaOaep(KeySpec::Rsa2048, OaepHash::Sha1),
            EncryptionClaim::RsaOaep(KeySpec::Rsa3072, OaepHash::Sha1),
        ],
        unsupported_oaep: &[OaepHash::Sha256],
        reference_prefix: &format!(
            "pkcs11:token={};object=signet:",
            percent_encode(&env("SIGNET_TEST_PKCS11_TOKEN"))
        ),
    }
    .run(&provider, new_id)
    .await;
}

#[tokio::test]
async fn private_keys_are_sensitive_never_extractable_and_generated_on_the_token() {
    let _serial = serial().await;
    let provider = open_provider();
    let id = new_id();
    let generated = provider
        .generate(&id, KeySpec::EcP256, KeyUse::Sign)
        .await
        .unwrap();
    let key = provider.keys.read().unwrap()[&id.0];
    provider
        .pool
        .run(
            |session| {
                let value = session
                    .get_attribute_info(key.private, &[AttributeType::Value])
                    .unwrap();
                assert!(
                    matches!(value[0], AttributeInfo::Sensitive),
                    "C_GetAttributeValue(CKA_VALUE) must be refused, got {value:?}"
                );
                let flags = session
                    .get_attributes(
                        key.private,
                        &[
                            AttributeType::Sensitive,
                            AttributeType::AlwaysSensitive,
                            AttributeType::Extractable,
                            AttributeType::NeverExtractable,
                            AttributeType::Local,
                            AttributeType::Token,
                            AttributeType::Private,
                            AttributeType::Sign,
                            AttributeType::Decrypt,
                            AttributeType::Unwrap,
                            AttributeType::Derive,
                        ],
                    )
                    .unwrap();
                for expected in [
                    Attribute::Sensitive(true),
                    Attribute::AlwaysSensitive(true),
                    Attribute::Extractable(false),
                    Attribute::NeverExtractable(true),
                    Attribute::Local(true),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sign(true),
                    Attribute::Decrypt(false),
                    Attribute::Unwrap(false),
                    Attribute::Derive(false),
                ] {
                    assert!(flags.contains(&expected), "{expected:?} not in {flags:?}");
                }
                Ok(())
            },
            || {},
        )
        .unwrap();
    provider.destroy(&generated.reference).await.unwrap();
}

/// Encryption keys are kept as signing keys are, and the token itself refuses to sign with them:
/// `C_SignInit`, sign-recover, and raw RSA, which would sign by another name.
#[tokio::test]
async fn encryption_keys_are_sensitive_never_extractable_and_cannot_sign() {
    let _serial = serial().await;
    let provider = open_provider();
    for spec in [KeySpec::Rsa2048, KeySpec::EcP384] {
        let id = new_id();
        let generated = provider.generate(&id, spec, KeyUse::Encrypt).await.unwrap();
        let key = provider.keys.read().unwrap()[&id.0];
        let rsa = spec == KeySpec::Rsa2048;
        // The secret part: an RSA key's private exponent, an EC key's scalar.
        let secret = if rsa {
            AttributeType::PrivateExponent
        } else {
            AttributeType::Value
        };
        let signing = if rsa {
            Mechanism::Sha256RsaPkcs
        } else {
            Mechanism::Ecdsa
        };
        // Asserted outside: a panic with a session checked out would hang the pool's close.
        let (secret, flags, signed, raw) = provider
            .pool
            .run(
                |session| {
                    let secret = session
                        .get_attribute_info(key.private, &[secret])
                        .map_err(Fault::call("reading attribute info"))?;
                    let flags = session
                        .get_attributes(
                            key.private,
                            &[
                                AttributeType::Sensitive,
                                AttributeType::AlwaysSensitive,
                                AttributeType::Extractable,
                                AttributeType::NeverExtractable,
                                AttributeType::Local,
                                AttributeType::Token,
                                AttributeType::Private,
                                AttributeType::Sign,
                                AttributeType::SignRecover,
                                AttributeType::Decrypt,
                                AttributeType::Unwrap,
                                AttributeType::Derive,
                                AttributeType::AllowedMechanisms,
                            ],
                        )
                        .map_err(Fault::call("reading attributes"))?;
                    let signed = session.sign(&signing, key.private, &[1; 32]).err();
                    let raw = session
                        .decrypt(&Mechanism::RsaX509, key.private, &[1; 256])
                        .err();
                    Ok((secret, flags, signed, raw))
                },
                || {},
            )
            .unwrap();
        assert!(
            matches!(secret[0], AttributeInfo::Sensitive),
            "{spec:?}: C_GetAttributeValue of the secret must be refused, got {secret:?}"
        );
        for expected in [
            Attribute::Sensitive(true),
            Attribute::AlwaysSensitive(true),
            Attribute::Extractable(false),
            Attribute::NeverExtractable(true),
            Attribute::Local(true),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sign(false),
            Attribute::SignRecover(false),
            Attribute::Decrypt(rsa),
            Attribute::Unwrap(false),
            Attribute::Derive(!rsa),
            Attribute::AllowedMechanisms(vec![if rsa {
                MechanismType::RSA_PKCS_OAEP
            } else {
                MechanismType::ECDH1_DERIVE
            }]),
        ] {
            assert!(
                flags.contains(&expected),
                "{spec:?}: {expected:?} not in {flags:?}"
            );
        }
        assert!(
            matches!(
                signed,
                Some(Error::Pkcs11(RvError::KeyFunctionNotPermitted, _))
            ),
            "{spec:?}: the token must refuse to sign, got {signed:?}"
        );
        // Raw RSA is not among an OAEP key's mechanisms (nor any decryption an EC key's).
        assert!(
            matches!(
                raw,
                Some(Error::Pkcs11(
                    RvError::MechanismInvalid | RvError::KeyFunctionNotPermitted,
                    _
                ))
            ),
            "{spec:?}: the token must refuse raw RSA, got {raw:?}"
        );
        let refused = provider
            .sign(&generated.reference, Algorithm::ES384, b"m")
            .await;
        assert!(
            matches!(refused, Err(ProviderError::Unsupported(_))),
            "{refused:?}"
        );
        provider.destroy(&generated.reference).await.unwrap();
    }
}

#[tokio::test]
async fn keys_are_found_by_label_listed_and_destroyed_with_both_halves() {
    let _serial = serial().await;
    let provider = open_provider();
    let id = new_id();
    assert_eq!(provider.locate(&id).await.unwrap(), None);
    let generated = provider
        .generate(&id, KeySpec::EcP256, KeyUse::Sign)
        .await
        .unwrap();
    // Another process (a restart) finds it by its label, with no cached handles.
    let restarted = open_provider();
    assert_eq!(
        restarted.locate(&id).await.unwrap(),
        Some(generated.reference.clone())
    );
    assert!(restarted.inventory().await.unwrap().contains(&id));
    let sig = restarted
        .sign(&generated.reference, Algorithm::ES256, b"m")
        .await
        .unwrap();
    assert!(verify(&generated.public_key, Algorithm::ES256, b"m", &sig));

    restarted.destroy(&generated.reference).await.unwrap();
    assert_eq!(provider.locate(&id).await.unwrap(), None);
    assert!(!provider.inventory().await.unwrap().contains(&id));
    let objects = provider
        .pool
        .run(|session| objects::find_all(session, &id.0), || {})
        .unwrap();
    assert!(objects.is_empty(), "both halves are gone");
    // The other provider's cached handles are stale now: a clear not-found, then idempotent destroy.
    assert!(matches!(
        provider
            .sign(&generated.reference, Algorithm::ES256, b"m")
            .await,
        Err(ProviderError::NotFound(_))
    ));
    provider.destroy(&generated.reference).await.unwrap();
    assert!(provider
        .generate(&id, KeySpec::EcP256, KeyUse::Sign)
        .await
        .is_ok());
    provider.destroy(&provider.reference(&id.0)).await.unwrap();
}

#[tokio::test]
async fn a_lost_login_is_restored_and_the_call_retried() {
    let _serial = serial().await;
    let provider = open_provider();
    let generated = provider
        .generate(&new_id(), KeySpec::EcP256, KeyUse::Sign)
        .await
        .unwrap();
    // Log the whole application out of the token, as a token reset would.
    provider
        .pool
        .run(
            |session| session.logout().map_err(Fault::call("logging out")),
            || {},
        )
        .unwrap();
    let sig = provider
        .sign(&generated.reference, Algorithm::ES256, b"after logout")
        .await
        .expect("the pool logs in again and retries");
    assert!(verify(
        &generated.public_key,
        Algorithm::ES256,
        b"after logout",
        &sig
    ));
    provider.destroy(&generated.reference).await.unwrap();
}

#[tokio::test]
async fn a_closed_provider_refuses_calls_and_the_token_opens_again_afterwards() {
    let _serial = serial().await;
    let provider = open_provider();
    let generated = provider
        .generate(&new_id(), KeySpec::EcP256, KeyUse::Sign)
        .await
        .unwrap();
    provider.close().await;
    provider.close().await;
    assert!(matches!(
        provider
            .sign(&generated.reference, Algorithm::ES256, b"m")
            .await,
        Err(ProviderError::Unavailable(_))
    ));
    // With no provider left, the module was finalized: the next one initialises it again.
    let reopened = open_provider();
    let sig = reopened
        .sign(&generated.reference, Algorithm::ES256, b"m")
        .await
        .unwrap();
    assert!(verify(&generated.public_key, Algorithm::ES256, b"m", &sig));
    reopened.destroy(&generated.reference).await.unwrap();
}

#[tokio::test]
async fn references_of_other_tokens_or_backends_are_refused() {
    let _serial = serial().await;
    let provider = open_provider();
    for reference in [
        "file:abc",
        "pkcs11:token=another;object=signet:abc",
        "pkcs11:token=",
        &format!(
            "pkcs11:token={};object=signet:",
            percent_encode(&env("SIGNET_TEST_PKCS11_TOKEN"))
        ),
    ] {
        assert!(
            matches!(
                provider
                    .sign(&KeyRef(reference.into()), Algorithm::ES256, b"m")
                    .await,
                Err(ProviderError::NotFound(_))
            ),
            "{reference}"
        );
    }
    assert_eq!(percent_encode("my token/1"), "my%20token%2F1");
}

#[test]
fn start_up_faults_name_the_setting_to_fix() {
    let config = |module: &str, label: &str| Pkcs11Config {
        module: module.into(),
        token_label: label.into(),
        pin: SecretString::from(env("SIGNET_TEST_PKCS11_PIN")),
        pool_size: None,
    };
    let missing = Pkcs11Provider::open(config("/nonexistent/libpkcs11.so", "x"))
        .err()
        .unwrap();
    assert!(
        matches!(missing, OpenError::Module { .. })
            && missing.to_string().starts_with("cannot load"),
        "{missing}"
    );
    let module = env("SIGNET_TEST_PKCS11_MODULE");
    let no_token = Pkcs11Provider::open(config(&module, "no-such-token"))
        .err()
        .unwrap();
    let message = no_token.to_string();
    assert!(
        matches!(no_token, OpenError::NoToken { .. })
            && message.starts_with("no token labelled \"no-such-token\""),
        "{message}"
    );
    assert!(
        message.contains(&env("SIGNET_TEST_PKCS11_TOKEN")),
        "lists the tokens present: {message}"
    );
}
