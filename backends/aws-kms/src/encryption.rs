//! What an encryption key does in KMS: RSA-OAEP decryption through `kms:Decrypt`
//! (`RSAES_OAEP_SHA_1` or `RSAES_OAEP_SHA_256`) with an `ENCRYPT_DECRYPT` RSA key, and ECDH through
//! `kms:DeriveSharedSecret` with a `KEY_AGREEMENT` EC key, whose answer is the shared secret Z.

use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::operation::decrypt::DecryptError;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{EncryptionAlgorithmSpec, KeyAgreementAlgorithmSpec};
use aws_sdk_kms::Client;
use signet_core::{KeySpec, KeyUse, OaepHash, ProviderError, PublicKey, Zeroizing};

use crate::der;
use crate::fault::refusal_or_from_sdk;
use crate::public::KmsPublicKey;

/// How AWS KMS's `Decrypt` says a ciphertext does not decrypt.
const UNDECRYPTABLE: &str = "InvalidCiphertextException";

/// LocalStack's generic error (HTTP 500), a code AWS KMS never sends (its own failures are
/// KMSInternalException). LocalStack answers every ciphertext it cannot decrypt with it, and it
/// decrypts RSA-OAEP with SHA-256 whatever algorithm it is asked for: with SHA-256 the code
/// means that the ciphertext does not decrypt, with SHA-1 that this KMS has no SHA-1 (every
/// SHA-1 ciphertext fails there).
const LOCALSTACK_FAILURE: &str = "InternalError";

/// How `DeriveSharedSecret` says it refuses the peer's public key (LocalStack for a point off the
/// curve). signet checks the point first, so KMS should never see one it refuses.
const UNUSABLE_PEER: &[&str] = &["ValidationException"];

/// Decrypts `ciphertext` with RSAES-OAEP under `hash` with the RSA encryption key at `arn`.
pub(crate) async fn decrypt(
    kms: &Client,
    arn: &str,
    key: &KmsPublicKey,
    hash: OaepHash,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
    key.require(
        KeyUse::Encrypt,
        &[KeySpec::Rsa2048, KeySpec::Rsa3072],
        "decrypt with RSA-OAEP",
    )?;
    // A ciphertext is as long as the modulus (RFC 8017 §7.1.2): KMS never sees another.
    let modulus_len = if key.spec == KeySpec::Rsa2048 {
        256
    } else {
        384
    };
    if ciphertext.len() != modulus_len {
        return Err(ProviderError::Rejected);
    }
    let algorithm = match hash {
        OaepHash::Sha1 => EncryptionAlgorithmSpec::RsaesOaepSha1,
        OaepHash::Sha256 => EncryptionAlgorithmSpec::RsaesOaepSha256,
    };
    let answer = kms
        .decrypt()
        .key_id(arn)
        .ciphertext_blob(Blob::new(ciphertext))
        .encryption_algorithm(algorithm)
        .send()
        .await
        .map_err(|e| decryption_error(hash, e))?;
    answer
        .plaintext
        .map(|plaintext| Zeroizing::new(plaintext.into_inner()))
        .ok_or_else(|| ProviderError::Backend("aws-kms Decrypt: no plaintext in the answer".into()))
}

/// What a failed `Decrypt` with `hash` means (see [`LOCALSTACK_FAILURE`]).
fn decryption_error<R: std::fmt::Debug>(
    hash: OaepHash,
    error: SdkError<DecryptError, R>,
) -> ProviderError {
    if hash == OaepHash::Sha1 && error.code() == Some(LOCALSTACK_FAILURE) {
        return ProviderError::Unsupported(
            "aws-kms Decrypt: this KMS does not decrypt RSAES_OAEP_SHA_1 (LocalStack decrypts \
             with SHA-256 whatever it is asked for)"
                .into(),
        );
    }
    refusal_or_from_sdk("Decrypt", error, &[UNDECRYPTABLE, LOCALSTACK_FAILURE])
}

/// The ECDH shared secret Z of the EC encryption key at `arn` and `peer`, a point on its curve.
pub(crate) async fn agree(
    kms: &Client,
    arn: &str,
    key: &KmsPublicKey,
    peer: &PublicKey,
) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
    key.require(
        KeyUse::Encrypt,
        &[KeySpec::EcP256, KeySpec::EcP384],
        "agree with ECDH",
    )?;
    // Checked here, whatever KMS checks: a point off the curve must never reach it.
    let point = signet_core::ecdh_peer_point(peer, key.spec).ok_or(ProviderError::Rejected)?;
    let field_len = point.len() / 2;
    let answer = kms
        .derive_shared_secret()
        .key_id(arn)
        .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
        .public_key(Blob::new(der::ec_public_key(key.spec, &point)))
        .send()
        .await
        .map_err(|e| refusal_or_from_sdk("DeriveSharedSecret", e, UNUSABLE_PEER))?;
    answer
        .shared_secret
        .map(|z| Zeroizing::new(z.into_inner()))
        .filter(|z| z.len() == field_len)
        .ok_or_else(|| {
            ProviderError::Backend(
                "aws-kms DeriveSharedSecret: no shared secret of the curve's size in the answer"
                    .into(),
            )
        })
}

#[cfg(test)]
mod tests {
    use aws_sdk_kms::error::ErrorMetadata;

    use super::*;

    fn failed(hash: OaepHash, code: &str) -> ProviderError {
        let err = DecryptError::generic(ErrorMetadata::builder().code(code).build());
        decryption_error(hash, SdkError::service_error(err, ()))
    }

    #[test]
    fn a_ciphertext_that_does_not_decrypt_is_rejected_and_localstacks_sha1_unsupported() {
        for hash in [OaepHash::Sha1, OaepHash::Sha256] {
            assert!(matches!(
                failed(hash, "InvalidCiphertextException"),
                ProviderError::Rejected
            ));
            assert!(matches!(
                failed(hash, "KMSInvalidStateException"),
                ProviderError::NotFound(_)
            ));
        }
        assert!(matches!(
            failed(OaepHash::Sha256, "InternalError"),
            ProviderError::Rejected
        ));
        match failed(OaepHash::Sha1, "InternalError") {
            ProviderError::Unsupported(message) => {
                assert!(message.contains("RSAES_OAEP_SHA_1"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
