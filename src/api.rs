//! The JSON bodies signet answers with, over HTTP and on the CLI: typed, so a field cannot go
//! missing or change its type in one place and not another. Times are RFC 3339 (UTC).

use serde::Serialize;
use serde_json::{Map, Value};
use signet_core::KeySpec;
use utoipa::ToSchema;

use crate::clock::rfc3339;
use crate::domain::{
    BackendKind, BoundClaims, ClientMetadata, ClientRecord, ContentEncryption, ErrorCode,
    KeyAlgorithm, KeyManagement, KeyRecord, KeyState, Kid, Policy, RateLimit, RingName, RingRecord,
    Role, Timing, UnixMillis,
};
use crate::rings::{Readiness, SignedToken};
use crate::store::StoredAuditRecord;
use crate::tokens::Checked;

/// A ring, as `POST /v1/rings`, `GET /v1/rings[/{ring}]` and `signet ring create` show it.
#[derive(Serialize, ToSchema)]
pub struct RingInfo {
    pub name: RingName,
    pub backend: BackendKind,
    /// A JWS `alg` for a signing ring, a JWE key-management `alg` for an encryption ring.
    pub algorithm: KeyAlgorithm,
    /// An encryption ring's content encryption (`enc`); absent for a signing ring.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<ContentEncryption>,
    pub key_spec: KeySpec,
    pub policy: Policy,
    pub timing: Timing,
    pub active_kid: Option<Kid>,
    pub jwks_uri: String,
    /// Whether `/.well-known/jwks.json` lists the ring's keys too.
    pub combined_jwks: bool,
    pub created_at: String,
}

impl RingInfo {
    pub fn new(ring: &RingRecord, active_kid: Option<&Kid>) -> RingInfo {
        RingInfo {
            name: ring.name.clone(),
            backend: ring.backend,
            algorithm: ring.algorithm,
            encryption: ring.encryption,
            key_spec: ring.key_spec,
            policy: ring.policy.clone(),
            timing: ring.timing.clone(),
            active_kid: active_kid.cloned(),
            jwks_uri: format!("/v1/rings/{}/jwks.json", ring.name),
            combined_jwks: ring.combined_jwks,
            created_at: rfc3339(ring.created_at),
        }
    }

    /// The ring with the kid of its active key among `keys`.
    pub fn with_keys(ring: &RingRecord, keys: &[KeyRecord]) -> RingInfo {
        let active = keys.iter().find(|k| k.state == KeyState::Active);
        RingInfo::new(ring, active.and_then(|k| k.kid.as_ref()))
    }
}

#[derive(Serialize, ToSchema)]
pub struct RingList {
    pub rings: Vec<RingInfo>,
}

/// A key and its lifecycle times.
#[derive(Serialize, ToSchema)]
pub struct KeyInfo {
    pub id: String,
    pub kid: Option<Kid>,
    pub ring: RingName,
    pub state: KeyState,
    pub algorithm: KeyAlgorithm,
    pub key_spec: KeySpec,
    pub backend: BackendKind,
    pub reference: Option<String>,
    pub created_at: String,
    pub published_at: Option<String>,
    pub activate_after: Option<String>,
    pub activated_at: Option<String>,
    pub deactivated_at: Option<String>,
    pub retire_after: Option<String>,
    pub retired_at: Option<String>,
    pub destroy_after: Option<String>,
    pub destroyed_at: Option<String>,
    pub revoked_at: Option<String>,
    pub revoked_reason: Option<String>,
    /// The latest `exp` of any token the key signed: it stays in the JWKS until then, plus
    /// leeway and max-age.
    pub last_token_exp: Option<String>,
}

impl From<&KeyRecord> for KeyInfo {
    fn from(key: &KeyRecord) -> KeyInfo {
        let time = |t: Option<UnixMillis>| t.map(rfc3339);
        KeyInfo {
            id: key.id.clone(),
            kid: key.kid.clone(),
            ring: key.ring.clone(),
            state: key.state,
            algorithm: key.algorithm,
            key_spec: key.key_spec,
            backend: key.backend,
            reference: key.reference.clone(),
            created_at: rfc3339(key.created_at),
            published_at: time(key.published_at),
            activate_after: time(key.activate_after),
            activated_at: time(key.activated_at),
            deactivated_at: time(key.deactivated_at),
            retire_after: time(key.retire_after),
            retired_at: time(key.retired_at),
            destroy_after: time(key.destroy_after),
            destroyed_at: time(key.destroyed_at),
            revoked_at: time(key.revoked_at),
            revoked_reason: key.revoked_reason.clone(),
            last_token_exp: time(key.last_token_exp),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyInfo>,
}

impl KeyList {
    pub fn new(keys: &[KeyRecord]) -> KeyList {
        KeyList {
            keys: keys.iter().map(KeyInfo::from).collect(),
        }
    }
}

/// `POST /v1/keys/{kid}/revoke`: the revoked key, and the key that took over signing.
#[derive(Serialize, ToSchema)]
pub struct RevokedKey {
    #[serde(flatten)]
    pub key: KeyInfo,
    pub successor_kid: Option<String>,
}

/// `POST /v1/rings/{ring}/sign`.
#[derive(Serialize, ToSchema)]
pub struct SignedTokenInfo {
    /// A compact JWS, or with `encrypt_to` a compact JWE (`cty: "JWT"`) holding it.
    pub token: String,
    /// The signing key.
    pub kid: Kid,
    pub expires_at: String,
    /// With `encrypt_to`: the RFC 7638 thumbprint of the key the token is encrypted to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypted_to: Option<Kid>,
}

impl SignedTokenInfo {
    pub fn of(signed: SignedToken) -> SignedTokenInfo {
        SignedTokenInfo {
            token: signed.token,
            kid: signed.kid,
            expires_at: rfc3339(signed.expires_at),
            encrypted_to: signed.encrypted_to,
        }
    }
}

/// `POST /v1/rings/{ring}/refresh`: the two tokens of one exchange.
#[derive(Serialize, ToSchema)]
pub struct RefreshedTokens {
    pub access_token: SignedTokenInfo,
    /// The family's next refresh token: the one presented is spent.
    pub refresh_token: SignedTokenInfo,
}

/// `POST /v1/rings/{ring}/sign-raw`.
#[derive(Serialize, ToSchema)]
pub struct RawSignatureInfo {
    pub signature: String,
    pub kid: Kid,
}

/// An API client (never its token, except once in [`CreatedClientInfo`]).
#[derive(Serialize, ToSchema)]
pub struct ClientInfo {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub rings: Vec<RingName>,
    /// Its limit on sign requests; `null`: the server's default.
    pub rate_limit: Option<RateLimit>,
    pub created_at: String,
    pub created_by: String,
    pub revoked_at: Option<String>,
    /// From then on its tokens are refused; `null`: never.
    pub expires_at: Option<String>,
    /// As given at creation; never interpreted.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<ClientMetadata>,
    /// Claims every token it signs carries with exactly these values.
    #[schema(value_type = Object)]
    pub bound_claims: BoundClaims,
    /// Until then the token its last rotation replaced is still accepted.
    pub previous_token_expires_at: Option<String>,
}

impl From<&ClientRecord> for ClientInfo {
    fn from(client: &ClientRecord) -> ClientInfo {
        ClientInfo {
            id: client.id.clone(),
            name: client.name.clone(),
            role: client.role,
            rings: client.rings.clone(),
            rate_limit: client.rate_limit,
            created_at: rfc3339(client.created_at),
            created_by: client.created_by.clone(),
            revoked_at: client.revoked_at.map(rfc3339),
            expires_at: client.expires_at.map(rfc3339),
            metadata: client.metadata.clone(),
            bound_claims: client.bound_claims.clone(),
            previous_token_expires_at: client.previous_token_expires_at.map(rfc3339),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ClientList {
    pub clients: Vec<ClientInfo>,
}

/// A client just created or rotated, with its new token: the only time the token is shown.
#[derive(Serialize, ToSchema)]
pub struct CreatedClientInfo {
    #[serde(flatten)]
    pub client: ClientInfo,
    pub token: String,
}

/// One audit record as stored, its detail parsed.
#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    pub time: String,
    pub action: String,
    pub ring: Option<String>,
    pub kid: Option<String>,
    pub principal: String,
    #[schema(value_type = Object)]
    pub detail: Value,
    pub hash: Option<String>,
}

impl From<&StoredAuditRecord> for AuditEntry {
    fn from(record: &StoredAuditRecord) -> AuditEntry {
        AuditEntry {
            seq: record.seq,
            time: rfc3339(record.time),
            action: record.action.clone(),
            ring: record.ring.clone(),
            kid: record.kid.clone(),
            principal: record.principal.clone(),
            detail: serde_json::from_str(&record.detail).unwrap_or(Value::Null),
            hash: record.hash.clone(),
        }
    }
}

/// `POST /v1/verify`: a token that verified, its ring and kid, and what it says.
#[derive(Serialize, ToSchema)]
pub struct VerifiedToken {
    /// Always `true`: a token that does not verify is answered with `token_invalid`.
    pub valid: bool,
    pub ring: RingName,
    #[schema(value_type = Kid)]
    pub kid: String,
    #[schema(value_type = Object)]
    pub header: Value,
    #[schema(value_type = Object)]
    pub claims: Value,
}

impl VerifiedToken {
    pub fn new(checked: Checked) -> VerifiedToken {
        VerifiedToken {
            valid: true,
            ring: checked.ring,
            kid: checked.kid,
            header: checked.header,
            claims: Value::Object(checked.claims),
        }
    }
}

/// `POST /v1/rings/{ring}/decrypt`: the plaintext of a token sent to the ring, and the key that
/// decrypted it.
#[derive(Serialize, ToSchema)]
pub struct DecryptedToken {
    pub kid: Kid,
    pub alg: KeyManagement,
    pub enc: ContentEncryption,
    /// The plaintext, base64url.
    pub payload: String,
    /// The plaintext as a JSON object, when it is one (and not a nested token).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub claims: Option<Map<String, Value>>,
    /// The nested signed token (`cty: JWT`), verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nested: Option<VerifiedToken>,
}

/// One answer of a batch `POST /v1/verify`, in the order of the tokens sent.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum VerifyOutcome {
    Valid(VerifiedToken),
    Invalid {
        /// Always `false`.
        valid: bool,
        error: ErrorEntry,
    },
}

/// A batch `POST /v1/verify`.
#[derive(Serialize, ToSchema)]
pub struct VerifiedBatch {
    pub results: Vec<VerifyOutcome>,
}

/// `POST /v1/verify`: the answer for `token`, or for `tokens`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Verification {
    One(VerifiedToken),
    Batch(VerifiedBatch),
}

/// `POST /v1/tokens/revoke`: what is revoked, and until when the revocation is kept (after it,
/// no token it covers can verify anyway).
#[derive(Serialize, ToSchema)]
pub struct RevokedTokens {
    pub ring: RingName,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_before: Option<String>,
    pub expires_at: String,
}

/// `POST /v1/introspect` (RFC 7662): `{"active": false}` alone for a token that is not active;
/// for one that is, its claims, `token_type` (its header's `typ`), and the `ring` and `kid` that
/// signed it.
#[derive(Serialize, ToSchema)]
pub struct Introspection {
    pub active: bool,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

impl Introspection {
    pub fn inactive() -> Introspection {
        Introspection {
            active: false,
            fields: Map::new(),
        }
    }

    pub fn active(checked: Checked) -> Introspection {
        let mut fields = checked.claims;
        fields.remove("active");
        if let Some(typ) = checked.header.get("typ") {
            fields.insert("token_type".into(), typ.clone());
        }
        fields.insert("ring".into(), Value::from(checked.ring.as_str()));
        fields.insert("kid".into(), Value::from(checked.kid));
        Introspection {
            active: true,
            fields,
        }
    }
}

/// `GET /healthz`: the process answers.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// `GET /readyz`.
#[derive(Serialize, ToSchema)]
pub struct ReadinessInfo {
    /// `ready` (200) or `unavailable` (503).
    pub status: &'static str,
    /// Each configured backend (`file`, `pkcs11`, `aws-kms`): `ok` or `unavailable`.
    pub backends: std::collections::BTreeMap<&'static str, &'static str>,
    /// Why the server is not ready; left out when it is.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorEntry>,
}

/// A reason, as in an error body: a stable code and a message for people.
#[derive(Serialize, ToSchema)]
pub struct ErrorEntry {
    pub code: ErrorCode,
    pub message: String,
}

impl ReadinessInfo {
    pub fn new(readiness: &Readiness) -> ReadinessInfo {
        let mut errors = Vec::new();
        let mut problem = |code, message: String| errors.push(ErrorEntry { code, message });
        if !readiness.database {
            problem(
                ErrorCode::DatabaseUnavailable,
                "the database is unavailable".into(),
            );
        }
        let mut backends = std::collections::BTreeMap::new();
        for (kind, ok) in &readiness.backends {
            backends.insert(kind.as_str(), if *ok { "ok" } else { "unavailable" });
            if !ok {
                problem(
                    ErrorCode::BackendUnavailable,
                    format!("the {kind} backend is unavailable"),
                );
            }
        }
        if readiness.shutting_down {
            problem(
                ErrorCode::ShuttingDown,
                "the server is shutting down".into(),
            );
        }
        for task in &readiness.failing_tasks {
            problem(
                ErrorCode::TaskFailing,
                format!("the background task {task:?} is failing; see the server log"),
            );
        }
        ReadinessInfo {
            status: if readiness.is_ready() {
                "ready"
            } else {
                "unavailable"
            },
            backends,
            errors,
        }
    }
}
