//! A conformance suite every [`KeyProvider`] is tested against, and the signature check it and
//! the backends' own tests share.
//!
//! Compiled only with signet-core's `testkit` feature (it brings in aws-lc-rs to verify
//! signatures, encrypt to RSA keys and run ECDH in software); nothing in signet's service uses
//! it. A backend crate takes signet-core with the feature as a dev-dependency:
//!
//! ```toml
//! [dev-dependencies]
//! signet-core = { workspace = true, features = ["testkit"] }
//! ```
//!
//! and runs the suite from one of its tests against a provider it opened, saying which keys and
//! algorithms the provider claims:
//!
//! ```no_run
//! use signet_core::testkit::{self, Conformance};
//! use signet_core::KeyProvider;
//!
//! async fn conforms(provider: &dyn KeyProvider) {
//!     Conformance {
//!         claims: &testkit::EVERY_PAIR,
//!         unsupported: &[],
//!         encryption: &testkit::EVERY_ENCRYPTION_CLAIM,
//!         unsupported_oaep: &[],
//!         reference_prefix: "file:",
//!     }
//!     .run(provider, || testkit::unique_id("conformance"))
//!     .await;
//! }
//! ```
//!
//! [`Conformance::run`] checks what the [`KeyProvider`] contract promises of every backend (see
//! its docs for the list), for signing keys and encryption keys alike, and panics, naming the
//! backend, the key and the step, at the first broken promise. What only one backend does (its reference syntax beyond a prefix, PKCS#11
//! attributes, KMS aliases and deletion windows, the file store's key-encryption key) stays in
//! that backend's own tests, which check signatures with [`verify`].

mod encryption;

use std::fmt;
use std::fmt::Write;

use crate::{
    verify, Algorithm, GeneratedKey, KeyId, KeyProvider, KeySpec, KeyUse, OaepHash, ProviderError,
    PublicKey,
};

pub use encryption::{EncryptionClaim, EVERY_ENCRYPTION_CLAIM};

/// Every (key spec, algorithm) pair signet has: what a backend that makes every kind of key and
/// signs with every algorithm claims.
pub const EVERY_PAIR: [(KeySpec, Algorithm); 8] = [
    (KeySpec::EcP256, Algorithm::ES256),
    (KeySpec::EcP384, Algorithm::ES384),
    (KeySpec::Rsa2048, Algorithm::RS256),
    (KeySpec::Rsa2048, Algorithm::PS256),
    (KeySpec::Rsa3072, Algorithm::RS256),
    (KeySpec::Rsa3072, Algorithm::PS256),
    (KeySpec::Ed25519, Algorithm::Ed25519),
    (KeySpec::Ed25519, Algorithm::EdDSA),
];

/// A key id no earlier run can have used: `prefix` and 18 random hex digits. For backends whose
/// keys outlive a test run (a token, a KMS account).
pub fn unique_id(prefix: &str) -> KeyId {
    let mut bytes = [0u8; 9];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system's random generator works");
    let suffix = bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    });
    KeyId(format!("{prefix}-{suffix}"))
}

/// What a backend claims, for [`Conformance::run`] to hold it to.
#[derive(Clone, Copy, Debug)]
pub struct Conformance<'a> {
    /// Every (key spec, algorithm) the backend makes signing keys of and signs with; each pair
    /// gets a key of its own. [`EVERY_PAIR`] for a backend that has them all.
    pub claims: &'a [(KeySpec, Algorithm)],
    /// Key specs the backend refuses to make signing keys of, if it has any (`&[]` if not).
    pub unsupported: &'a [KeySpec],
    /// Every kind of encryption key the backend makes and the operation it does with it (ECDH,
    /// or RSA-OAEP with a hash); each claim gets a key of its own. [`EVERY_ENCRYPTION_CLAIM`]
    /// for a backend that has them all, `&[]` for one that makes no encryption keys.
    pub encryption: &'a [EncryptionClaim],
    /// The OAEP hashes the backend lacks (`&[]` if it has both): every RSA encryption key the
    /// suite makes must refuse to decrypt with them with `Unsupported`, as signet refuses a ring
    /// whose backend lacks its hash by that answer.
    pub unsupported_oaep: &'a [OaepHash],
    /// What every reference the backend hands out starts with (`file:`, `pkcs11:token=`, ...).
    pub reference_prefix: &'a str,
}

/// The JWS signing input the suite signs, and a message longer than 4096 bytes (the most AWS KMS
/// takes whole: longer ones are signed as a digest), which a JWT with many claims can be.
const SHORT_MESSAGE: &[u8] = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjb25mb3JtYW5jZSJ9";
const LONG_MESSAGE: [u8; 5000] = [b'a'; 5000];
/// Signed by no key in the suite: no signature may verify for it.
const OTHER_MESSAGE: &[u8] = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbm90aGVyIn0";

impl Conformance<'_> {
    /// Holds `provider` to the [`KeyProvider`] contract, with a fresh id from `new_id` for each
    /// key it makes, and panics at the first promise broken. It checks that:
    /// - each spec in `unsupported` is refused by `generate` for signing with `Unsupported`, and
    ///   an Ed25519 encryption key (which no backend makes) likewise, leaving nothing `locate`
    ///   finds;
    /// - for each claimed (spec, algorithm) and each encryption claim: `locate` finds nothing
    ///   before `generate`; `generate` returns a reference with the claimed prefix and a public
    ///   key of the spec asked for (curve and coordinate sizes, modulus size, Ed25519 length);
    ///   after it, `locate` returns that reference and `inventory` lists the id; `public_key`
    ///   returns the key `generate` did;
    /// - a signing key's signatures of a short and a long message have the algorithm's length
    ///   and verify with its public key ([`verify`]), and not for another message; signing with
    ///   every algorithm the key cannot do is refused with `Unsupported`, and so are `decrypt`
    ///   (of a ciphertext encrypted to an RSA key's public half) and `agree` (with a point on an
    ///   EC key's curve);
    /// - an ECDH key's `agree` with a fresh software ephemeral key gives the Z that software ECDH
    ///   of the ephemeral key with the key's public half gives, field-size long; `agree` with a
    ///   point of the other curve, or off the curve (a valid x with y + 1), is `Rejected`;
    /// - an RSA-OAEP key's `decrypt` of 32 random bytes encrypted in software to its public half
    ///   with the claimed hash returns them; the ciphertext with a byte flipped, or a byte short,
    ///   is `Rejected`; a valid ciphertext under a hash in `unsupported_oaep` is `Unsupported`;
    /// - an encryption key refuses to sign with every algorithm, and the operation of the other
    ///   kind of encryption key (`agree` for RSA, `decrypt` for EC), with `Unsupported`;
    /// - `destroy` succeeds, reports a deletion date in the future if it only schedules one,
    ///   succeeds again with the same answer, and afterwards `locate` finds nothing, `inventory`
    ///   lacks the id, and `public_key` and the key's own operation (`sign`, `agree`, `decrypt`)
    ///   fail with `NotFound`.
    ///
    /// It destroys every key it made when all checks pass; a failed check can leave keys behind.
    pub async fn run(&self, provider: &dyn KeyProvider, mut new_id: impl FnMut() -> KeyId) {
        let backend = provider.name();
        assert!(
            !self.claims.is_empty(),
            "{backend} backend: the conformance suite needs at least one claimed algorithm"
        );
        self.check_encryption_claims(backend);

        for &spec in self.unsupported {
            check_refused_generate(provider, backend, spec, KeyUse::Sign, new_id()).await;
        }
        check_refused_generate(
            provider,
            backend,
            KeySpec::Ed25519,
            KeyUse::Encrypt,
            new_id(),
        )
        .await;

        let signing = self.claims.iter().map(|&(spec, alg)| At {
            backend,
            spec,
            job: Job::Sign(alg),
        });
        let encrypting = self.encryption.iter().map(|&claim| At {
            backend,
            spec: claim.spec(),
            job: Job::Encrypt(claim),
        });
        let mut keys = Vec::with_capacity(self.claims.len() + self.encryption.len());
        for at in signing.chain(encrypting) {
            let (spec, job) = (at.spec, at.job);
            if let Job::Sign(alg) = job {
                assert!(
                    alg.accepts(spec),
                    "{at}: a claim signet does not have (a {} key cannot sign {alg})",
                    spec.as_str()
                );
            }
            let id = new_id();
            let before = ok(provider.locate(&id).await, at, "locate before generate");
            assert_eq!(before, None, "{at}: locate found a key before generate");
            let key = ok(
                provider.generate(&id, spec, job.usage()).await,
                at,
                "generate",
            );
            assert!(
                key.reference.0.starts_with(self.reference_prefix),
                "{at}: generate returned the reference {:?}, which does not start with {:?}",
                key.reference.0,
                self.reference_prefix
            );
            check_shape(&key.public_key, at);
            keys.push((at, id, key));
        }

        let inventory = ok(
            provider.inventory().await,
            keys[0].0,
            "inventory after generate",
        );
        for (at, id, _) in &keys {
            assert!(
                inventory.contains(id),
                "{at}: inventory after generate does not list {id}"
            );
        }

        for (at, id, key) in &keys {
            self.check_key(provider, *at, id, key).await;
        }

        for (at, id, key) in &keys {
            check_destroy(provider, *at, id, key).await;
        }

        let inventory = ok(
            provider.inventory().await,
            keys[0].0,
            "inventory after destroy",
        );
        for (at, id, _) in &keys {
            assert!(
                !inventory.contains(id),
                "{at}: inventory after destroy still lists {id}"
            );
        }
    }

    /// The encryption claims are ones signet has, and say the same as `unsupported_oaep`.
    fn check_encryption_claims(&self, backend: &str) {
        for claim in self.encryption {
            assert!(
                claim.is_sound(),
                "{backend} backend: {claim:?} is a claim signet does not have (ECDH is for EC \
                 keys, RSA-OAEP for RSA keys)"
            );
            if let EncryptionClaim::RsaOaep(_, hash) = claim {
                assert!(
                    !self.unsupported_oaep.contains(hash),
                    "{backend} backend: claims {claim:?} and lists {hash:?} as unsupported"
                );
            }
        }
        assert!(
            self.unsupported_oaep.is_empty() || self.oaep_hash().is_some(),
            "{backend} backend: unsupported OAEP hashes are checked with an RSA encryption key, \
             and no RSA-OAEP claim makes one"
        );
    }

    /// A hash the backend decrypts with, if it claims one.
    fn oaep_hash(&self) -> Option<OaepHash> {
        self.encryption.iter().find_map(|claim| match claim {
            EncryptionClaim::RsaOaep(_, hash) => Some(*hash),
            EncryptionClaim::Ecdh(_) => None,
        })
    }

    /// What a key generated for `id` must do while it exists.
    async fn check_key(&self, provider: &dyn KeyProvider, at: At, id: &KeyId, key: &GeneratedKey) {
        let located = ok(provider.locate(id).await, at, "locate after generate");
        assert_eq!(
            located.as_ref(),
            Some(&key.reference),
            "{at}: locate after generate does not return the reference generate did"
        );
        let public = ok(
            provider.public_key(&key.reference).await,
            at,
            "public_key after generate",
        );
        assert_eq!(
            public, key.public_key,
            "{at}: public_key returned another key than generate"
        );
        // A hash the backend has, so that only the key's use can be why it refuses to decrypt.
        let probe = self.oaep_hash().unwrap_or(OaepHash::Sha256);
        match at.job {
            Job::Sign(alg) => {
                check_signatures(provider, at, alg, key).await;
                encryption::check_signing_key_refuses(provider, at, key, probe).await;
            }
            Job::Encrypt(claim) => {
                encryption::check_operations(
                    provider,
                    at,
                    claim,
                    key,
                    self.unsupported_oaep,
                    probe,
                )
                .await;
                for alg in Algorithm::ALL {
                    refused(
                        provider.sign(&key.reference, alg, SHORT_MESSAGE).await,
                        Refusal::Unsupported,
                        at,
                        &format!("sign with {alg} (an encryption key signs nothing)"),
                    );
                }
            }
        }
    }
}

/// `generate` refuses a `spec` key for `usage` with `Unsupported`, and leaves nothing behind.
async fn check_refused_generate(
    provider: &dyn KeyProvider,
    backend: &str,
    spec: KeySpec,
    usage: KeyUse,
    id: KeyId,
) {
    let what = format!(
        "{backend} backend, unsupported {} keys for {}",
        spec.as_str(),
        usage.as_str()
    );
    match provider.generate(&id, spec, usage).await {
        Err(ProviderError::Unsupported(_)) => {}
        Ok(key) => {
            // Best effort: do not leave a key of a test that failed anyway.
            let _ = provider.destroy(&key.reference).await;
            panic!("{what}: generate made one instead of refusing with Unsupported")
        }
        Err(other) => panic!("{what}: generate must refuse with Unsupported, got {other:?}"),
    }
    let located = provider
        .locate(&id)
        .await
        .unwrap_or_else(|e| panic!("{what}: locate after the refusal: {e}"));
    assert_eq!(
        located, None,
        "{what}: the refused generate left a key behind"
    );
}

/// What a key in the suite is for: signing with one algorithm, or one encryption claim.
#[derive(Clone, Copy, Debug)]
enum Job {
    Sign(Algorithm),
    Encrypt(EncryptionClaim),
}

impl Job {
    fn usage(self) -> KeyUse {
        match self {
            Job::Sign(_) => KeyUse::Sign,
            Job::Encrypt(_) => KeyUse::Encrypt,
        }
    }
}

/// Where in the suite a check failed: the backend, and the key and what it is for.
#[derive(Clone, Copy, Debug)]
struct At {
    backend: &'static str,
    spec: KeySpec,
    job: Job,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spec = self.spec.as_str();
        match self.job {
            Job::Sign(alg) => write!(f, "{} backend, {alg} with a {spec} key", self.backend),
            Job::Encrypt(claim) => write!(
                f,
                "{} backend, {} with a {spec} encryption key",
                self.backend,
                claim.operation()
            ),
        }
    }
}

fn ok<T>(result: Result<T, ProviderError>, at: At, step: &str) -> T {
    result.unwrap_or_else(|e| panic!("{at}: {step} failed: {e}"))
}

/// The error a step must fail with.
#[derive(Clone, Copy, Debug)]
enum Refusal {
    NotFound,
    Unsupported,
    Rejected,
}

/// `result` is the failure `expected`; what a step returned on success is not shown (it can be a
/// secret).
fn refused<T>(result: Result<T, ProviderError>, expected: Refusal, at: At, step: &str) {
    let Err(error) = result else {
        panic!("{at}: {step} succeeded; it must fail with {expected:?}")
    };
    let right = matches!(
        (&error, expected),
        (ProviderError::NotFound(_), Refusal::NotFound)
            | (ProviderError::Unsupported(_), Refusal::Unsupported)
            | (ProviderError::Rejected, Refusal::Rejected)
    );
    assert!(
        right,
        "{at}: {step} must fail with {expected:?}, got {error:?}"
    );
}

/// The public half is of the spec asked for, in the sizes a JWK of it has.
fn check_shape(public: &PublicKey, at: At) {
    let shaped = match (at.spec, public) {
        (KeySpec::EcP256 | KeySpec::EcP384, PublicKey::Ec { spec, x, y }) => {
            let size = if at.spec == KeySpec::EcP256 { 32 } else { 48 };
            *spec == at.spec && x.len() == size && y.len() == size
        }
        (KeySpec::Rsa2048 | KeySpec::Rsa3072, PublicKey::Rsa { n, e }) => {
            let size = if at.spec == KeySpec::Rsa2048 {
                256
            } else {
                384
            };
            n.len() == size && n[0] != 0 && e.first().is_some_and(|&b| b != 0)
        }
        (KeySpec::Ed25519, PublicKey::Ed25519 { x }) => x.len() == 32,
        _ => false,
    };
    assert!(
        shaped,
        "{at}: generate returned a public key that is not a {} key in JWK form: {public:?}",
        at.spec.as_str()
    );
}

/// The length of a JWS signature by a key of `spec`.
fn signature_len(spec: KeySpec) -> usize {
    match spec {
        KeySpec::EcP256 | KeySpec::Ed25519 => 64,
        KeySpec::EcP384 => 96,
        KeySpec::Rsa2048 => 256,
        KeySpec::Rsa3072 => 384,
    }
}

/// A signing key signs with `alg`, and with nothing its spec cannot do.
async fn check_signatures(provider: &dyn KeyProvider, at: At, alg: Algorithm, key: &GeneratedKey) {
    for (what, message) in [
        ("a short message", SHORT_MESSAGE),
        ("a 5000-byte message", &LONG_MESSAGE[..]),
    ] {
        let step = format!("sign {what}");
        let signature = ok(provider.sign(&key.reference, alg, message).await, at, &step);
        assert_eq!(
            signature.len(),
            signature_len(at.spec),
            "{at}: {step}: the signature has the wrong length for {alg}"
        );
        assert!(
            verify(&key.public_key, alg, message, &signature),
            "{at}: {step}: the signature does not verify with the public key"
        );
        assert!(
            !verify(&key.public_key, alg, OTHER_MESSAGE, &signature),
            "{at}: {step}: the signature verifies for another message too"
        );
    }

    for wrong in Algorithm::ALL.into_iter().filter(|a| !a.accepts(at.spec)) {
        refused(
            provider.sign(&key.reference, wrong, SHORT_MESSAGE).await,
            Refusal::Unsupported,
            at,
            &format!("sign with {wrong}, which the key cannot do,"),
        );
    }
}

/// `destroy` removes the key for good, and may be repeated.
async fn check_destroy(provider: &dyn KeyProvider, at: At, id: &KeyId, key: &GeneratedKey) {
    let first = ok(provider.destroy(&key.reference).await, at, "destroy");
    if let Some(date) = first {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_millis();
        assert!(
            i128::from(date) > i128::try_from(now).unwrap_or(i128::MAX),
            "{at}: destroy scheduled the deletion at {date} ms, which is not in the future"
        );
    }
    let second = ok(
        provider.destroy(&key.reference).await,
        at,
        "destroy a second time (it must be idempotent)",
    );
    assert_eq!(
        second, first,
        "{at}: a second destroy answered otherwise than the first"
    );

    let located = ok(provider.locate(id).await, at, "locate after destroy");
    assert_eq!(
        located, None,
        "{at}: locate still finds the key after destroy"
    );
    refused(
        provider.public_key(&key.reference).await,
        Refusal::NotFound,
        at,
        "public_key after destroy",
    );
    match at.job {
        Job::Sign(alg) => refused(
            provider.sign(&key.reference, alg, SHORT_MESSAGE).await,
            Refusal::NotFound,
            at,
            "sign after destroy",
        ),
        Job::Encrypt(claim) => encryption::check_gone(provider, at, claim, key).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_is_every_pair_signet_has() {
        let specs = [
            KeySpec::EcP256,
            KeySpec::EcP384,
            KeySpec::Rsa2048,
            KeySpec::Rsa3072,
            KeySpec::Ed25519,
        ];
        let all: Vec<_> = specs
            .into_iter()
            .flat_map(|s| Algorithm::ALL.into_iter().map(move |a| (s, a)))
            .filter(|(s, a)| a.accepts(*s))
            .collect();
        assert_eq!(all, EVERY_PAIR);
    }

    #[test]
    fn every_encryption_claim_is_every_one_signet_has() {
        let ec = [KeySpec::EcP256, KeySpec::EcP384].map(EncryptionClaim::Ecdh);
        let rsa = [KeySpec::Rsa2048, KeySpec::Rsa3072]
            .into_iter()
            .flat_map(|spec| {
                [OaepHash::Sha1, OaepHash::Sha256].map(|hash| EncryptionClaim::RsaOaep(spec, hash))
            });
        let all: Vec<_> = ec.into_iter().chain(rsa).collect();
        assert_eq!(all, EVERY_ENCRYPTION_CLAIM);
        assert!(all.iter().all(|claim| claim.is_sound()));
        assert!(!EncryptionClaim::Ecdh(KeySpec::Rsa2048).is_sound());
        assert!(!EncryptionClaim::RsaOaep(KeySpec::EcP256, OaepHash::Sha1).is_sound());
        assert!(!EncryptionClaim::Ecdh(KeySpec::Ed25519).is_sound());
    }

    #[test]
    fn unique_ids_differ() {
        assert_ne!(unique_id("a"), unique_id("a"));
        assert!(unique_id("unit").0.starts_with("unit-"));
    }
}
