//! Decryption for encryption rings: a compact JWE sent to a ring is checked against the ring
//! (its `alg` and `enc`, a `kid` of a key that still decrypts, an `epk` on the key's curve)
//! before the backend is asked for anything; the backend performs only the key-management step
//! (RSA-OAEP or ECDH), and the rest runs here (`crate::jwe`). A new encryption key proves it can
//! do that step before it is recorded ([`self_test`]).

use signet_core::{GeneratedKey, KeyProvider, KeyRef, KeySpec, OaepHash, ProviderError, PublicKey};

use super::view::Decrypter;
use super::{provider_error, wrong_use, Actor, RingError, RingService};
use crate::clock::now_ms;
use crate::domain::{
    AuditEvent, AuditRecord, ContentEncryption, ErrorCode, KeyAlgorithm, KeyManagement, Kid,
    RingName, RingRecord, Violation,
};
use crate::jose;
use crate::jwe::{self, Curve, Encryption, Jwe, JweError, KeySecret};

/// A token decrypted by a ring's key; nothing of it is recorded yet.
pub struct Opened {
    pub ring: RingName,
    pub kid: Kid,
    pub alg: KeyManagement,
    pub enc: ContentEncryption,
    pub cty: Option<String>,
    pub plaintext: Vec<u8>,
    /// The token's size in bytes.
    pub size: usize,
}

/// Why a token did not open.
enum OpenError {
    /// The key-management step or the content decryption failed: said no more precisely.
    Undecryptable,
    Provider(ProviderError),
}

fn refused(code: ErrorCode, message: String) -> RingError {
    RingError::Policy(Violation { code, message })
}

fn curve(spec: KeySpec) -> Curve {
    if spec == KeySpec::EcP384 {
        Curve::P384
    } else {
        Curve::P256
    }
}

/// The plaintext of `jwe`, whose `epk` (if any) is checked to be on the curve of the key at
/// `reference` (of `spec`). An RSA-OAEP failure goes on with a random content key, so that it
/// fails where a wrong tag does and the two cannot be told apart (RFC 7516 §11.5).
async fn open(
    provider: &dyn KeyProvider,
    reference: &KeyRef,
    spec: KeySpec,
    jwe: &Jwe,
) -> Result<Vec<u8>, OpenError> {
    let cek = match jwe.alg {
        KeyManagement::RsaOaep | KeyManagement::RsaOaep256 => {
            let hash = if jwe.alg == KeyManagement::RsaOaep {
                OaepHash::Sha1
            } else {
                OaepHash::Sha256
            };
            let cek = match provider.decrypt(reference, hash, &jwe.encrypted_key).await {
                Ok(cek) => cek,
                Err(ProviderError::Rejected) => jwe::random_key(jwe.enc.key_len()),
                Err(e) => return Err(OpenError::Provider(e)),
            };
            jwe::content_key(jwe, KeySecret::Cek(&cek))
        }
        KeyManagement::EcdhEs | KeyManagement::EcdhEsA256Kw => {
            let epk = jwe.epk.as_ref().ok_or(OpenError::Undecryptable)?;
            let (x, y) = epk.coordinates();
            let peer = PublicKey::Ec {
                spec,
                x: x.to_vec(),
                y: y.to_vec(),
            };
            let z = match provider.agree(reference, &peer).await {
                Ok(z) => z,
                Err(ProviderError::Rejected) => return Err(OpenError::Undecryptable),
                Err(e) => return Err(OpenError::Provider(e)),
            };
            jwe::content_key(jwe, KeySecret::SharedSecret(&z))
        }
    }
    .map_err(|_| OpenError::Undecryptable)?;
    jwe::decrypt(jwe, &cek).map_err(|_| OpenError::Undecryptable)
}

/// What a new key of an encryption ring must decrypt before it is recorded.
const SELF_TEST: &[u8] = b"signet: a new encryption key's self-test";

/// Proves that the new `key` of `ring` decrypts a JWE encrypted to it with the ring's `alg` and
/// `enc`, through its backend: a backend that cannot (SoftHSM2 lacks RSA-OAEP with SHA-256) is
/// found out when the ring is created, with `Unsupported`, never when a token arrives. Signing
/// keys pass at once.
pub(super) async fn self_test(
    provider: &dyn KeyProvider,
    ring: &RingRecord,
    key: &GeneratedKey,
) -> Result<(), ProviderError> {
    let (KeyAlgorithm::Encrypt(alg), Some(enc)) = (ring.algorithm, ring.encryption) else {
        return Ok(());
    };
    let failed = |why: &str| ProviderError::Backend(format!("a new encryption key {why}"));
    let jwk = jose::public_jwk(&key.public_key, ring.algorithm);
    let token = Encryption::to_jwk(&jwk, Some(alg), enc)
        .map_err(|_| failed("has a public half that cannot be encrypted to"))?
        .seal(None, SELF_TEST);
    let jwe = jwe::parse(&token, token.len()).map_err(|_| failed("made an unreadable JWE"))?;
    match open(provider, &key.reference, ring.key_spec, &jwe).await {
        Ok(plaintext) if plaintext == SELF_TEST => Ok(()),
        Ok(_) | Err(OpenError::Undecryptable) => Err(failed("did not decrypt its self-test")),
        Err(OpenError::Provider(e)) => Err(e),
    }
}

impl RingService {
    /// Decrypts `token`, a compact JWE sent to the encryption ring `ring`. Nothing is recorded:
    /// the caller records the decryption ([`RingService::record_decryption`]) before it returns
    /// the plaintext to anyone.
    pub async fn decrypt(&self, ring: &RingName, token: &str) -> Result<Opened, RingError> {
        let view = self
            .view()
            .rings
            .get(ring.as_str())
            .cloned()
            .ok_or_else(|| RingError::RingNotFound(ring.to_string()))?;
        let record = &view.record;
        let (KeyAlgorithm::Encrypt(alg), Some(enc)) = (record.algorithm, record.encryption) else {
            return Err(wrong_use(
                ring.as_str(),
                "signs tokens: it does not decrypt",
            ));
        };
        let invalid = |message: String| refused(ErrorCode::TokenInvalid, message);
        let max_bytes = usize::try_from(record.policy.max_token_bytes).unwrap_or(usize::MAX);
        let jwe = jwe::parse(token, max_bytes).map_err(|e| invalid(e.to_string()))?;
        if jwe.alg != alg || jwe.enc != enc {
            return Err(invalid(format!(
                "the token is not encrypted with the ring's {} and {}",
                alg.as_str(),
                enc.as_str()
            )));
        }
        let Some(Decrypter {
            kid,
            reference,
            key_spec,
        }) = jwe
            .kid
            .as_deref()
            .and_then(|kid| view.decrypters.iter().find(|d| d.kid.as_str() == kid))
        else {
            return Err(invalid(
                "the header's kid names no current or retiring key of the ring".into(),
            ));
        };
        if alg.is_ecdh() {
            jwe.check_curve(curve(*key_spec))
                .map_err(|e| invalid(e.to_string()))?;
        }
        let provider = view
            .provider
            .as_ref()
            .ok_or(RingError::BackendNotConfigured(record.backend))?;
        let plaintext = match open(provider.as_ref(), reference, *key_spec, &jwe).await {
            Ok(plaintext) => plaintext,
            Err(OpenError::Undecryptable) => {
                return Err(refused(
                    ErrorCode::TokenUndecryptable,
                    JweError::Decryption.to_string(),
                ))
            }
            Err(OpenError::Provider(e)) => return Err(provider_error(provider.name())(e)),
        };
        Ok(Opened {
            ring: ring.clone(),
            kid: kid.clone(),
            alg,
            enc,
            cty: jwe.cty,
            plaintext,
            size: token.len(),
        })
    }

    /// Records the decryption of `opened` by `actor`, and returns once the record has committed.
    pub async fn record_decryption(
        &self,
        actor: &Actor,
        opened: &Opened,
        nested_jti: Option<serde_json::Value>,
    ) -> Result<(), RingError> {
        self.audit
            .record(AuditRecord::of_ring(
                now_ms(),
                actor,
                &opened.ring,
                Some(&opened.kid),
                AuditEvent::Decrypt {
                    size: opened.size,
                    nested_jti,
                },
            ))
            .await?;
        Ok(())
    }
}
