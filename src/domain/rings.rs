//! Key rings: a name, a backend, an algorithm, a signing policy and lifecycle timing.

use signet_core::{Algorithm, KeySpec};

use super::{BackendKind, Policy, RingName, Timing};

#[derive(Clone, Debug)]
pub struct RingRecord {
    pub name: RingName,
    pub backend: BackendKind,
    pub algorithm: Algorithm,
    pub key_spec: KeySpec,
    pub policy: Policy,
    pub timing: Timing,
    pub created_at: i64,
    pub updated_at: i64,
}
