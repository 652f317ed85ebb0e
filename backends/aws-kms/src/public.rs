//! The public half of a KMS key, read once with `GetPublicKey`: what signet returns as the key's
//! JWK, what signatures are checked against, and what the key is for (its `KeyUsage`), which
//! decides what it may be asked to do.

use aws_lc_rs::signature;
use aws_sdk_kms::types::KeyUsageType;
use aws_sdk_kms::Client;
use signet_core::{Algorithm, KeySpec, KeyUse, ProviderError, PublicKey};

use crate::fault::from_sdk;
use crate::{der, sign};

/// A key's public half as KMS gave it (`SubjectPublicKeyInfo` DER) and as a JWK needs it, with
/// what the key is for.
pub(crate) struct KmsPublicKey {
    pub(crate) spec: KeySpec,
    pub(crate) usage: KeyUse,
    pub(crate) public_key: PublicKey,
    pub(crate) spki: Vec<u8>,
}

impl KmsPublicKey {
    /// Refuses with `Unsupported` unless the key is for `usage` and its spec is one of `specs`;
    /// `operation` names what was asked, for the error.
    pub(crate) fn require(
        &self,
        usage: KeyUse,
        specs: &[KeySpec],
        operation: &str,
    ) -> Result<(), ProviderError> {
        if self.usage == usage && specs.contains(&self.spec) {
            return Ok(());
        }
        Err(ProviderError::Unsupported(format!(
            "aws-kms: a {} key for {} cannot {operation}",
            self.spec.as_str(),
            match self.usage {
                KeyUse::Sign => "signing",
                KeyUse::Encrypt => "encryption",
            }
        )))
    }
}

/// Reads the key's public half and use with `GetPublicKey`.
pub(crate) async fn fetch(kms: &Client, arn: &str) -> Result<KmsPublicKey, ProviderError> {
    let answer = kms
        .get_public_key()
        .key_id(arn)
        .send()
        .await
        .map_err(|e| from_sdk("GetPublicKey", e))?;
    let spec = answer
        .key_spec()
        .and_then(crate::keys::signet_spec)
        .ok_or_else(|| {
            ProviderError::Unsupported(format!(
                "aws-kms: {arn} is a {:?} key, which signet does not use",
                answer.key_spec()
            ))
        })?;
    let usage = answer
        .key_usage()
        .and_then(|usage| signet_usage(usage, spec))
        .ok_or_else(|| {
            ProviderError::Unsupported(format!(
                "aws-kms: {arn} is a {} key for {:?}, which signet does not use",
                spec.as_str(),
                answer.key_usage()
            ))
        })?;
    let spki = answer
        .public_key()
        .map(|b| b.as_ref().to_vec())
        .ok_or_else(|| ProviderError::Backend("aws-kms GetPublicKey: no public key".into()))?;
    let malformed =
        || ProviderError::Backend(format!("aws-kms: the public key of {arn} is malformed"));
    let public_key = der::public_key(&spki, spec).ok_or_else(malformed)?;
    // aws-lc-rs checks what the shape check above does not: the algorithm and that an EC point
    // lies on its curve. A verification algorithm of the spec reads the key of an encryption
    // key as well as a signing key's.
    signature::ParsedPublicKey::new(sign::verification(jws_algorithm(spec)), &spki)
        .map_err(|_| malformed())?;
    Ok(KmsPublicKey {
        spec,
        usage,
        public_key,
        spki,
    })
}

/// One algorithm a key of `spec` signs with, to validate the public key.
fn jws_algorithm(spec: KeySpec) -> Algorithm {
    match spec {
        KeySpec::EcP256 => Algorithm::ES256,
        KeySpec::EcP384 => Algorithm::ES384,
        KeySpec::Rsa2048 | KeySpec::Rsa3072 => Algorithm::RS256,
        KeySpec::Ed25519 => Algorithm::Ed25519,
    }
}

/// What a key of `spec` with KMS's `usage` is for in signet, if it is one signet makes: signing
/// keys sign, RSA keys decrypt (`ENCRYPT_DECRYPT`), EC keys agree (`KEY_AGREEMENT`).
fn signet_usage(usage: &KeyUsageType, spec: KeySpec) -> Option<KeyUse> {
    let rsa = matches!(spec, KeySpec::Rsa2048 | KeySpec::Rsa3072);
    let ec = matches!(spec, KeySpec::EcP256 | KeySpec::EcP384);
    match usage {
        KeyUsageType::SignVerify => Some(KeyUse::Sign),
        KeyUsageType::EncryptDecrypt if rsa => Some(KeyUse::Encrypt),
        KeyUsageType::KeyAgreement if ec => Some(KeyUse::Encrypt),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_uses_signet_makes_are_read() {
        use KeyUsageType as Kms;
        for (usage, spec, expected) in [
            (Kms::SignVerify, KeySpec::Ed25519, Some(KeyUse::Sign)),
            (Kms::SignVerify, KeySpec::Rsa2048, Some(KeyUse::Sign)),
            (Kms::EncryptDecrypt, KeySpec::Rsa3072, Some(KeyUse::Encrypt)),
            (Kms::KeyAgreement, KeySpec::EcP384, Some(KeyUse::Encrypt)),
            (Kms::EncryptDecrypt, KeySpec::EcP256, None),
            (Kms::KeyAgreement, KeySpec::Rsa2048, None),
            (Kms::KeyAgreement, KeySpec::Ed25519, None),
            (Kms::GenerateVerifyMac, KeySpec::EcP256, None),
        ] {
            assert_eq!(signet_usage(&usage, spec), expected, "{usage:?} {spec:?}");
        }
    }
}
