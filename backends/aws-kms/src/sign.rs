//! Signing through `kms:Sign`, with signatures checked against the key's public half.
//!
//! Messages up to 4096 bytes go to KMS whole (`MessageType=RAW`, KMS hashes); longer ones as a
//! digest computed here (`MessageType=DIGEST`). ECDSA signatures come back in DER and leave as
//! JWS `r || s` (see `der.rs`). Every signature is verified here against the key's public half
//! before it is returned, so a KMS or emulator bug (a double-hashed digest, a wrong PSS salt
//! length, a padding slip) becomes an error, never a token nobody can verify.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use aws_sdk_kms::Client;
use signet_core::{Algorithm, KeySpec, KeyUse, ProviderError};

use crate::der;
use crate::fault::from_sdk;
use crate::public::KmsPublicKey;

/// The largest message KMS accepts with `MessageType=RAW`.
pub(crate) const RAW_LIMIT: usize = 4096;

/// What aws-lc-rs verifies a JWS signature of `alg` with.
pub(crate) fn verification(alg: Algorithm) -> &'static dyn VerificationAlgorithm {
    match alg {
        Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::Ed25519 | Algorithm::EdDSA => &signature::ED25519,
    }
}

fn signing_algorithm(alg: Algorithm) -> SigningAlgorithmSpec {
    match alg {
        Algorithm::ES256 => SigningAlgorithmSpec::EcdsaSha256,
        Algorithm::ES384 => SigningAlgorithmSpec::EcdsaSha384,
        Algorithm::RS256 => SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
        Algorithm::PS256 => SigningAlgorithmSpec::RsassaPssSha256,
        Algorithm::Ed25519 | Algorithm::EdDSA => SigningAlgorithmSpec::Ed25519Sha512,
    }
}

/// What KMS is given to sign: the message itself, or its digest when it is too long.
fn kms_message(alg: Algorithm, message: &[u8]) -> Result<(MessageType, Vec<u8>), ProviderError> {
    if message.len() <= RAW_LIMIT {
        return Ok((MessageType::Raw, message.to_vec()));
    }
    let hash = match alg {
        Algorithm::ES384 => &digest::SHA384,
        // Ed25519 hashes inside the signature: there is no digest KMS could sign in its place.
        Algorithm::Ed25519 | Algorithm::EdDSA => {
            return Err(ProviderError::Unsupported(format!(
                "aws-kms signs Ed25519 messages of at most {RAW_LIMIT} bytes"
            )))
        }
        _ => &digest::SHA256,
    };
    Ok((
        MessageType::Digest,
        digest::digest(hash, message).as_ref().to_vec(),
    ))
}

/// Signs `message` with the key at `arn` and returns the JWS signature, checked against `key`.
pub(crate) async fn sign(
    kms: &Client,
    arn: &str,
    key: &KmsPublicKey,
    alg: Algorithm,
    message: &[u8],
) -> Result<Vec<u8>, ProviderError> {
    key.require(KeyUse::Sign, &[key.spec], "sign")?;
    if !alg.accepts(key.spec) {
        return Err(ProviderError::Unsupported(format!(
            "a {} key cannot sign {alg}",
            key.spec.as_str()
        )));
    }
    let (message_type, payload) = kms_message(alg, message)?;
    let answer = kms
        .sign()
        .key_id(arn)
        .message(Blob::new(payload))
        .message_type(message_type)
        .signing_algorithm(signing_algorithm(alg))
        .send()
        .await
        .map_err(|e| from_sdk("Sign", e))?;
    let raw = answer
        .signature()
        .map(std::convert::AsRef::as_ref)
        .ok_or_else(|| ProviderError::Backend("aws-kms Sign: no signature in the answer".into()))?;
    let jws = match key.spec {
        KeySpec::EcP256 => der::ecdsa_to_fixed(raw, 32),
        KeySpec::EcP384 => der::ecdsa_to_fixed(raw, 48),
        _ => Some(raw.to_vec()),
    }
    .ok_or_else(|| ProviderError::Backend("aws-kms Sign: a malformed ECDSA signature".into()))?;
    UnparsedPublicKey::new(verification(alg), &key.spki)
        .verify(message, &jws)
        .map_err(|_| {
            ProviderError::Backend(format!(
                "aws-kms Sign: KMS returned a {alg} signature that does not verify under the key's public key; refused"
            ))
        })?;
    Ok(jws)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_over_the_raw_limit_are_sent_as_their_digest() {
        let short = vec![7u8; RAW_LIMIT];
        let (kind, sent) = kms_message(Algorithm::ES256, &short).unwrap();
        assert_eq!((kind, sent), (MessageType::Raw, short));
        let long = vec![7u8; RAW_LIMIT + 1];
        let (kind, sent) = kms_message(Algorithm::PS256, &long).unwrap();
        assert_eq!(kind, MessageType::Digest);
        assert_eq!(sent, digest::digest(&digest::SHA256, &long).as_ref());
        let (_, sent) = kms_message(Algorithm::ES384, &long).unwrap();
        assert_eq!(sent, digest::digest(&digest::SHA384, &long).as_ref());
        assert!(matches!(
            kms_message(Algorithm::Ed25519, &long),
            Err(ProviderError::Unsupported(_))
        ));
    }
}
