//! Keys and their lifecycle (docs/design.md, Key lifecycle):
//! `pending -> published -> active -> retiring -> retired -> destroyed`, and `revoked`.

use signet_core::KeySpec;

use super::{BackendKind, KeyAlgorithm, Kid, RingName, UnixMillis};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Pending,
    Published,
    Active,
    Retiring,
    Retired,
    Destroyed,
    Revoked,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Pending => "pending",
            KeyState::Published => "published",
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
            KeyState::Retired => "retired",
            KeyState::Destroyed => "destroyed",
            KeyState::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<KeyState> {
        [
            KeyState::Pending,
            KeyState::Published,
            KeyState::Active,
            KeyState::Retiring,
            KeyState::Retired,
            KeyState::Destroyed,
            KeyState::Revoked,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Whether keys in this state appear in the JWKS.
    pub fn is_published(self) -> bool {
        matches!(
            self,
            KeyState::Published | KeyState::Active | KeyState::Retiring
        )
    }
}

#[derive(Clone, Debug)]
pub struct KeyRecord {
    pub id: String,
    pub ring: RingName,
    pub state: KeyState,
    pub algorithm: KeyAlgorithm,
    pub key_spec: KeySpec,
    pub backend: BackendKind,
    pub reference: Option<String>,
    pub kid: Option<Kid>,
    pub public_jwk: Option<serde_json::Value>,
    pub created_at: UnixMillis,
    pub published_at: Option<UnixMillis>,
    pub activate_after: Option<UnixMillis>,
    pub activated_at: Option<UnixMillis>,
    pub deactivated_at: Option<UnixMillis>,
    pub retire_after: Option<UnixMillis>,
    pub retired_at: Option<UnixMillis>,
    pub destroy_after: Option<UnixMillis>,
    pub destroyed_at: Option<UnixMillis>,
    pub revoked_at: Option<UnixMillis>,
    pub revoked_reason: Option<String>,
    /// The latest `exp` of any token the key signed (committed with the signatures' audit
    /// records, so never lower than a returned token's).
    pub last_token_exp: Option<UnixMillis>,
    /// What the key keeps in the JWKS after its last token has expired: the longest
    /// `windows::grace_ms` of its ring while the key was published.
    pub jwks_grace_ms: i64,
}
