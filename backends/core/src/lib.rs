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
use serde::{Deserialize, Serialize};

/// A JWS signing algorithm signet issues tokens with (RFC 7518 §3.1, RFC 8037 for EdDSA).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    ES256,
    ES384,
    RS256,
    PS256,
    EdDSA,
}

impl Algorithm {
    pub const ALL: [Algorithm; 5] = [
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::EdDSA,
    ];

    /// The `alg` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::RS256 => "RS256",
            Algorithm::PS256 => "PS256",
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
            Algorithm::EdDSA => spec == KeySpec::Ed25519,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of key pair to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

    /// Creates a key pair of `spec`, tied to `id`, and returns where it lives and its public half.
    /// Fails with `Unsupported` when the backend cannot make such a key. On failure no key is
    /// left behind, or one that [`KeyProvider::locate`] finds.
    async fn generate(&self, id: &KeyId, spec: KeySpec) -> Result<GeneratedKey, ProviderError>;

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
    use super::*;

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
    }
}
