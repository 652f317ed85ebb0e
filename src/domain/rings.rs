//! Key rings: a name, a backend, an algorithm, a signing policy and lifecycle timing.

use std::fmt;

use serde::{Deserialize, Serialize};
use signet_core::{Algorithm, KeySpec, KeyUse};

use super::{BackendKind, ContentEncryption, KeyManagement, Policy, RingName, Timing, UnixMillis};

/// What a ring's keys do, by the algorithm they do it with: sign tokens (a JWS `alg`), or
/// receive encrypted ones (a JWE key-management `alg`). Written as the bare name: `"ES256"`,
/// `"ECDH-ES"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum KeyAlgorithm {
    Sign(Algorithm),
    Encrypt(KeyManagement),
}

impl KeyAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Sign(alg) => alg.as_str(),
            KeyAlgorithm::Encrypt(alg) => alg.as_str(),
        }
    }

    pub fn parse(name: &str) -> Option<KeyAlgorithm> {
        Algorithm::parse(name)
            .map(KeyAlgorithm::Sign)
            .or_else(|| KeyManagement::parse(name).map(KeyAlgorithm::Encrypt))
    }

    pub fn usage(self) -> KeyUse {
        match self {
            KeyAlgorithm::Sign(_) => KeyUse::Sign,
            KeyAlgorithm::Encrypt(_) => KeyUse::Encrypt,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug)]
pub struct RingRecord {
    pub name: RingName,
    pub backend: BackendKind,
    pub algorithm: KeyAlgorithm,
    /// An encryption ring's content encryption (`enc`); `None` for a signing ring.
    pub encryption: Option<ContentEncryption>,
    pub key_spec: KeySpec,
    pub policy: Policy,
    pub timing: Timing,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    /// Until when a JWKS served under a longer max-age than today's may still be cached
    /// (`windows::cached_until`).
    pub jwks_cached_until: Option<UnixMillis>,
    /// Whether the ring's keys are listed in the combined `/.well-known/jwks.json`.
    pub combined_jwks: bool,
}

impl RingRecord {
    /// The algorithm the ring signs with; `None` for an encryption ring.
    pub fn signing_algorithm(&self) -> Option<Algorithm> {
        match self.algorithm {
            KeyAlgorithm::Sign(alg) => Some(alg),
            KeyAlgorithm::Encrypt(_) => None,
        }
    }
}
