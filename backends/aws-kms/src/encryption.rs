//! What an encryption key does in KMS: RSA-OAEP decryption through `kms:Decrypt`
//! (`RSAES_OAEP_SHA_1` or `RSAES_OAEP_SHA_256`) with an `ENCRYPT_DECRYPT` RSA key, and ECDH through
//! `kms:DeriveSharedSecret` with a `KEY_AGREEMENT` EC key, whose answer is the shared secret Z.

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{EncryptionAlgorithmSpec, KeyAgreementAlgorithmSpec};
use aws_sdk_kms::Client;
use signet_core::{KeySpec, KeyUse, OaepHash, ProviderError, PublicKey, Zeroizing};

use crate::der;
use crate::fault::refusal_or_from_sdk;
use crate::public::KmsPublicKey;

/// How `Decrypt` says a ciphertext does not decrypt. AWS KMS answers with
/// InvalidCiphertextException; LocalStack with its generic InternalError (HTTP 500, "Decryption
/// failed"), a code AWS KMS never sends (its own failures are KMSInternalException).
const UNDECRYPTABLE: &[&str] = &["InvalidCiphertextException", "InternalError"];

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
        .map_err(|e| refusal_or_from_sdk("Decrypt", e, UNDECRYPTABLE))?;
    answer
        .plaintext
        .map(|plaintext| Zeroizing::new(plaintext.into_inner()))
        .ok_or_else(|| ProviderError::Backend("aws-kms Decrypt: no plaintext in the answer".into()))
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
