//! The contract between signet and the places its private keys live.
//!
//! A [`KeyProvider`] generates key pairs, reveals only their public halves, signs messages with
//! them and destroys them. It knows nothing of rings, HTTP or SQL: signet's ring service decides
//! which key signs what, and records every key in its store.
//!
//! Signatures come back in the form RFC 7515 puts into a JWS (RFC 7518 §3): ECDSA as the
//! fixed-length concatenation `r || s` (64 bytes for P-256, 96 for P-384), RSA as the raw
//! signature, Ed25519 as its 64 bytes.
//!
//! # Creating keys without orphans
//! signet records a key's intent (`pending`) before it calls [`KeyProvider::generate`], giving the
//! provider its own [`KeyId`]. The provider must tie the backend object to that id (a file name, a
//! PKCS#11 label, a KMS tag) so that after a crash between generation and recording,
//! [`KeyProvider::locate`] finds the object again and signet can adopt or destroy it. A record
//! therefore never points at a key that does not exist, and no backend key stays unaccounted for.

use std::fmt;

#[cfg(feature = "testkit")]
pub mod testkit;

use async_trait::async_trait;
use aws_lc_rs::agreement;
use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
pub use zeroize::Zeroizing;

/// A JWS signing algorithm signet issues tokens with (RFC 7518 §3.1; Ed25519 per RFC 9864,
/// which deprecates RFC 8037's polymorphic `EdDSA` name for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Algorithm {
    ES256,
    ES384,
    RS256,
    PS256,
    /// Ed25519 under its RFC 9864 name: what rings created since use.
    Ed25519,
    /// Ed25519 under its RFC 8037 name, kept by the rings created with it.
    EdDSA,
}

impl Algorithm {
    pub const ALL: [Algorithm; 6] = [
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::Ed25519,
        Algorithm::EdDSA,
    ];

    /// The name a new ring takes for this algorithm: `EdDSA` becomes `Ed25519` (RFC 9864).
    pub fn fully_specified(self) -> Algorithm {
        match self {
            Algorithm::EdDSA => Algorithm::Ed25519,
            other => other,
        }
    }

    /// The `alg` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::RS256 => "RS256",
            Algorithm::PS256 => "PS256",
            Algorithm::Ed25519 => "Ed25519",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.as_str() == s)
    }

    pub fn is_rsa(self) -> bool {
        matches!(self, Algorithm::RS256 | Algorithm::PS256)
    }

    /// Whether a key of `spec` can sign with this algorithm.
    pub fn accepts(self, spec: KeySpec) -> bool {
        match self {
            Algorithm::ES256 => spec == KeySpec::EcP256,
            Algorithm::ES384 => spec == KeySpec::EcP384,
            Algorithm::RS256 | Algorithm::PS256 => {
                matches!(spec, KeySpec::Rsa2048 | KeySpec::Rsa3072)
            }
            Algorithm::Ed25519 | Algorithm::EdDSA => spec == KeySpec::Ed25519,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of key pair to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum KeySpec {
    EcP256,
    EcP384,
    Rsa2048,
    Rsa3072,
    Ed25519,
}

impl KeySpec {
    pub fn as_str(self) -> &'static str {
        match self {
            KeySpec::EcP256 => "ec-p256",
            KeySpec::EcP384 => "ec-p384",
            KeySpec::Rsa2048 => "rsa2048",
            KeySpec::Rsa3072 => "rsa3072",
            KeySpec::Ed25519 => "ed25519",
        }
    }

    pub fn parse(s: &str) -> Option<KeySpec> {
        [
            KeySpec::EcP256,
            KeySpec::EcP384,
            KeySpec::Rsa2048,
            KeySpec::Rsa3072,
            KeySpec::Ed25519,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// What a key pair is for, as a JWK's `use` says (RFC 7517 §4.2). A backend makes the key able to
/// do that and nothing else: a signing key signs, an encryption key only decrypts (RSA-OAEP) or
/// agrees (ECDH), so that one key never serves both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum KeyUse {
    #[serde(rename = "sig")]
    Sign,
    #[serde(rename = "enc")]
    Encrypt,
}

impl KeyUse {
    /// The JWK `use` value.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyUse::Sign => "sig",
            KeyUse::Encrypt => "enc",
        }
    }

    /// Whether a key of `spec` can serve this use: encryption keys are EC (for ECDH) or RSA (for
    /// RSA-OAEP), never Ed25519.
    pub fn accepts(self, spec: KeySpec) -> bool {
        self == KeyUse::Sign || spec != KeySpec::Ed25519
    }
}

/// The hash RSA-OAEP runs with, for both the label digest and MGF1 (RFC 8017 §7.1): SHA-1 for
/// JWE's `RSA-OAEP`, SHA-256 for `RSA-OAEP-256` (RFC 7518 §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OaepHash {
    Sha1,
    Sha256,
}

/// The public half of a key pair, in the raw forms a JWK is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// An uncompressed point: the affine coordinates, each the curve's field size long.
    Ec {
        spec: KeySpec,
        x: Vec<u8>,
        y: Vec<u8>,
    },
    /// Big-endian modulus and public exponent, without leading zero bytes.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The 32-byte Ed25519 public key.
    Ed25519 { x: Vec<u8> },
}

/// Whether `signature` is a valid JWS signature (RFC 7518 §3, RFC 8037) of `message` by `public`
/// with `alg`: ES256/ES384 as the fixed-length `r || s`, RS256 as RSASSA-PKCS1-v1_5 with SHA-256,
/// PS256 as RSASSA-PSS with SHA-256 (MGF1 SHA-256, 32-byte salt), Ed25519 (or EdDSA) as Ed25519.
/// A key that cannot sign with `alg` (an EC key of the other curve, an RSA key for ES256) never
/// verifies.
pub fn verify(public: &PublicKey, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
    match (public, alg) {
        (PublicKey::Ec { spec, x, y }, Algorithm::ES256 | Algorithm::ES384) => {
            let algorithm = match (alg, spec) {
                (Algorithm::ES256, KeySpec::EcP256) => &signature::ECDSA_P256_SHA256_FIXED,
                (Algorithm::ES384, KeySpec::EcP384) => &signature::ECDSA_P384_SHA384_FIXED,
                _ => return false,
            };
            let point = [&[0x04][..], x, y].concat();
            UnparsedPublicKey::new(algorithm, point)
                .verify(message, signature)
                .is_ok()
        }
        (PublicKey::Rsa { n, e }, Algorithm::RS256 | Algorithm::PS256) => {
            let algorithm = if alg == Algorithm::RS256 {
                &signature::RSA_PKCS1_2048_8192_SHA256
            } else {
                &signature::RSA_PSS_2048_8192_SHA256
            };
            RsaPublicKeyComponents { n, e }
                .verify(algorithm, message, signature)
                .is_ok()
        }
        (PublicKey::Ed25519 { x }, Algorithm::Ed25519 | Algorithm::EdDSA) => {
            UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, signature)
                .is_ok()
        }
        _ => false,
    }
}

/// The uncompressed point `04 || X || Y` of `peer` if it is a point on the curve of `spec`
/// (P-256 or P-384): what a backend hands its token or service for ECDH with a key of `spec`,
/// after this check, so that no backend ever computes with a point of another curve or off the
/// curve (an invalid-curve attack learns a private key from such results). `None` for anything
/// else: another curve or spec, coordinates of the wrong length, a point off the curve.
pub fn ecdh_peer_point(peer: &PublicKey, spec: KeySpec) -> Option<Vec<u8>> {
    let (algorithm, field_len) = match spec {
        KeySpec::EcP256 => (&agreement::ECDH_P256, 32),
        KeySpec::EcP384 => (&agreement::ECDH_P384, 48),
        _ => return None,
    };
    let PublicKey::Ec {
        spec: peer_spec,
        x,
        y,
    } = peer
    else {
        return None;
    };
    if *peer_spec != spec || x.len() != field_len || y.len() != field_len {
        return None;
    }
    let point = [&[0x04][..], x, y].concat();
    agreement::ParsedPublicKey::try_from(agreement::UnparsedPublicKey::new(algorithm, &point))
        .ok()?;
    Some(point)
}

/// signet's own identifier for a key; providers tie backend objects to it (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyId(pub String);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a key lives in its backend, as a URI: `file:<id>`, `pkcs11:token=..;object=..`,
/// `awskms:<arn>`. Stored with the key's record; opaque to everything but its provider.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyRef(pub String);

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key the backend has just created.
#[derive(Clone, Debug)]
pub struct GeneratedKey {
    pub reference: KeyRef,
    pub public_key: PublicKey,
}

/// Why a provider call failed. Messages never contain key material or secrets.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The backend has no key at that reference (destroyed, or never created).
    #[error("key not found: {0}")]
    NotFound(String),
    /// The backend cannot do what was asked (an algorithm or key size it lacks).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The backend cannot be reached right now; the same call may succeed later.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// The backend refused or failed in a way a retry will not fix.
    #[error("backend failure: {0}")]
    Backend(String),
    /// The key's operation refused its input: a ciphertext that does not decrypt, a point that is
    /// not on the key's curve. Says no more, so that it cannot serve as an oracle.
    #[error("the key's operation refused its input")]
    Rejected,
}

/// A place private keys live and are used without ever leaving it.
///
/// Implementations are shared as `Arc<dyn KeyProvider>` across every worker, so each method must
/// be safe to call concurrently, and must not block the async executor (run blocking backend
/// calls on blocking threads).
#[async_trait]
pub trait KeyProvider: Send + Sync {
    /// A short name for logs and errors: `file`, `pkcs11`, `aws-kms`.
    fn name(&self) -> &'static str;

    /// Creates a key pair of `spec` for `usage`, tied to `id`, and returns where it lives and its
    /// public half. The key can do what `usage` says and nothing else (see [`KeyUse`]). Fails
    /// with `Unsupported` when the backend cannot make such a key. On failure no key is left
    /// behind, or one that [`KeyProvider::locate`] finds.
    async fn generate(
        &self,
        id: &KeyId,
        spec: KeySpec,
        usage: KeyUse,
    ) -> Result<GeneratedKey, ProviderError>;

    /// Finds the key created for `id`, if the backend has one (used to reconcile after a crash
    /// between generation and recording). `Ok(None)` means the backend certainly has no such key.
    async fn locate(&self, id: &KeyId) -> Result<Option<KeyRef>, ProviderError>;

    /// The ids of every key this backend holds for signet, so keys no record names (left by a
    /// crash, or a restored database) can be reported.
    async fn inventory(&self) -> Result<Vec<KeyId>, ProviderError>;

    /// Reads the public half of the key at `reference`; `NotFound` if there is none.
    async fn public_key(&self, reference: &KeyRef) -> Result<PublicKey, ProviderError>;

    /// Signs `message` with `alg` using the key at `reference`, and returns the signature in JWS
    /// form (see the module docs). `Unsupported` if the key cannot sign with `alg`.
    async fn sign(
        &self,
        reference: &KeyRef,
        alg: Algorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, ProviderError>;

    /// Decrypts `ciphertext` with RSAES-OAEP under `hash` (no label) using the RSA encryption key
    /// at `reference`, and returns the plaintext: a JWE's content-encryption key (RFC 7518
    /// §4.3). `Unsupported` if the key is not an RSA encryption key or the backend lacks `hash`;
    /// `Rejected` if the ciphertext does not decrypt.
    async fn decrypt(
        &self,
        reference: &KeyRef,
        hash: OaepHash,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ProviderError>;

    /// The ECDH shared secret Z (the x-coordinate of the shared point, the curve's field size
    /// long, SEC 1 §3.3.1) of the EC encryption key at `reference` and `peer`, a public key on
    /// the same curve (RFC 7518 §4.6: a JWE's `epk`). `Unsupported` if the key is not an EC
    /// encryption key; `Rejected` if `peer` is not a point on the key's curve.
    async fn agree(
        &self,
        reference: &KeyRef,
        peer: &PublicKey,
    ) -> Result<Zeroizing<Vec<u8>>, ProviderError>;

    /// Deletes the key at `reference` (or schedules its deletion, where the backend only does
    /// that). Destroying a key that is already gone succeeds, so a retry after a crash is safe.
    /// Returns when the backend deletes the key (milliseconds since the epoch) if it only
    /// scheduled the deletion, `None` if the key is gone now.
    async fn destroy(&self, reference: &KeyRef) -> Result<Option<i64>, ProviderError>;

    /// Names the key at `reference` for people who look into the backend (a KMS console): it
    /// is signet's key `id` in `ring`, and `active` says it is now the ring's signing key.
    /// signet calls this after recording a key and after each activation, and only logs a
    /// failure: these names are for people, signet never reads them. Backends whose keys have
    /// no such names keep this default, which does nothing.
    async fn annotate(
        &self,
        _id: &KeyId,
        _reference: &KeyRef,
        _ring: &str,
        _active: bool,
    ) -> Result<(), ProviderError> {
        Ok(())
    }

    /// Releases what the backend holds (sessions, a loaded library) when the service stops:
    /// waits for the calls in flight, after which every call fails with `Unavailable`. signet
    /// calls it once, after the last request. Backends that hold nothing needing release keep
    /// this default, which does nothing.
    async fn close(&self) {}
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    };

    use super::*;

    #[test]
    fn verify_accepts_only_the_signature_of_the_message_under_its_algorithm() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let ec =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let point = ec.public_key().as_ref();
        let ec_public = PublicKey::Ec {
            spec: KeySpec::EcP256,
            x: point[1..33].to_vec(),
            y: point[33..].to_vec(),
        };
        let sig = ec.sign(&rng, b"m").unwrap();
        assert!(verify(&ec_public, Algorithm::ES256, b"m", sig.as_ref()));
        assert!(!verify(&ec_public, Algorithm::ES256, b"n", sig.as_ref()));
        assert!(!verify(&ec_public, Algorithm::ES384, b"m", sig.as_ref()));
        let mislabelled = PublicKey::Ec {
            spec: KeySpec::EcP384,
            x: point[1..33].to_vec(),
            y: point[33..].to_vec(),
        };
        assert!(!verify(&mislabelled, Algorithm::ES256, b"m", sig.as_ref()));

        let pair = Ed25519KeyPair::generate().unwrap();
        let ed25519_public = PublicKey::Ed25519 {
            x: pair.public_key().as_ref().to_vec(),
        };
        let sig = pair.sign(b"m");
        assert!(verify(
            &ed25519_public,
            Algorithm::Ed25519,
            b"m",
            sig.as_ref()
        ));
        assert!(verify(
            &ed25519_public,
            Algorithm::EdDSA,
            b"m",
            sig.as_ref()
        ));
        assert!(!verify(
            &ed25519_public,
            Algorithm::Ed25519,
            b"n",
            sig.as_ref()
        ));
        assert!(!verify(
            &ed25519_public,
            Algorithm::ES256,
            b"m",
            sig.as_ref()
        ));
    }

    #[test]
    fn ecdh_peers_are_points_on_the_key_curve_only() {
        let private = agreement::PrivateKey::generate(&agreement::ECDH_P256).unwrap();
        let point = private.compute_public_key().unwrap();
        let point = point.as_ref();
        let peer = |spec, x: &[u8], y: &[u8]| PublicKey::Ec {
            spec,
            x: x.to_vec(),
            y: y.to_vec(),
        };
        let (x, y) = (&point[1..33], &point[33..]);
        assert_eq!(
            ecdh_peer_point(&peer(KeySpec::EcP256, x, y), KeySpec::EcP256).as_deref(),
            Some(point)
        );
        let mut other_y = y.to_vec();
        other_y[31] ^= 1;
        for (what, candidate, spec) in [
            (
                "off the curve",
                peer(KeySpec::EcP256, x, &other_y),
                KeySpec::EcP256,
            ),
            (
                "of another curve",
                peer(KeySpec::EcP256, x, y),
                KeySpec::EcP384,
            ),
            (
                "labelled another curve",
                peer(KeySpec::EcP384, x, y),
                KeySpec::EcP256,
            ),
            (
                "a short x",
                peer(KeySpec::EcP256, &x[1..], y),
                KeySpec::EcP256,
            ),
            (
                "for an RSA key",
                peer(KeySpec::EcP256, x, y),
                KeySpec::Rsa2048,
            ),
            (
                "not EC",
                PublicKey::Ed25519 { x: x.to_vec() },
                KeySpec::EcP256,
            ),
        ] {
            assert_eq!(ecdh_peer_point(&candidate, spec), None, "{what}");
        }
    }

    #[test]
    fn algorithms_round_trip_through_their_names() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::parse(alg.as_str()), Some(alg));
        }
        assert_eq!(Algorithm::parse("HS256"), None);
        assert_eq!(Algorithm::parse("none"), None);
    }

    #[test]
    fn each_algorithm_accepts_only_its_key_specs() {
        assert!(Algorithm::ES256.accepts(KeySpec::EcP256));
        assert!(!Algorithm::ES256.accepts(KeySpec::EcP384));
        assert!(Algorithm::PS256.accepts(KeySpec::Rsa3072));
        assert!(!Algorithm::RS256.accepts(KeySpec::Ed25519));
        assert!(Algorithm::EdDSA.accepts(KeySpec::Ed25519));
        assert!(Algorithm::Ed25519.accepts(KeySpec::Ed25519));
        assert!(!Algorithm::Ed25519.accepts(KeySpec::EcP256));
    }

    #[test]
    fn new_rings_take_the_fully_specified_name() {
        assert_eq!(Algorithm::EdDSA.fully_specified(), Algorithm::Ed25519);
        assert_eq!(Algorithm::ES256.fully_specified(), Algorithm::ES256);
    }
}
