//! Key rings: a name, a backend, an algorithm, a signing policy and lifecycle timing.

use signet_core::{Algorithm, KeySpec};

use super::{BackendKind, Policy, RingName, Timing, UnixMillis};

#[derive(Clone, Debug)]
pub struct RingRecord {
    pub name: RingName,
    pub backend: BackendKind,
    pub algorithm: Algorithm,
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
