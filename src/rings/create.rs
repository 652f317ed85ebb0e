//! Creating a ring: its settings are checked, the ring and the intent record of its first key
//! commit together, then the first key is generated and activated at once. A ring whose first
//! key cannot be generated is taken back, so no ring exists that cannot sign.

use serde::Deserialize;
use signet_core::{Algorithm, KeySpec};

use super::keys::pending_key;
use super::{Actor, RingError, RingService};
use crate::clock::now_ms;
use crate::domain::{
    AuditEvent, AuditRecord, BackendKind, ContentEncryption, KeyAlgorithm, KeyManagement,
    KeyRecord, Policy, RingName, RingRecord, Timing,
};
use crate::store::StoreError;

/// `POST /v1/rings`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRing {
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    pub name: String,
    #[serde(default)]
    pub backend: BackendKind,
    /// What the ring's keys do: a JWS `alg` for a signing ring (ES256 by default), or a JWE
    /// key-management `alg` for an encryption ring (`ECDH-ES`, `ECDH-ES+A256KW`, `RSA-OAEP-256`,
    /// `RSA-OAEP`).
    #[serde(default = "default_algorithm")]
    pub algorithm: KeyAlgorithm,
    /// An encryption ring's content encryption: A256GCM (the default) or A128GCM.
    pub encryption: Option<ContentEncryption>,
    /// RSA modulus size for RS256/PS256/RSA-OAEP(-256): 2048 (the default) or 3072.
    pub rsa_bits: Option<u32>,
    /// An ECDH-ES ring's curve: `P-256` (the default) or `P-384`.
    #[schema(pattern = "^P-(256|384)$")]
    pub curve: Option<String>,
    pub policy: Policy,
    #[serde(default)]
    pub timing: Timing,
    /// Whether the ring's keys are listed in the combined `/.well-known/jwks.json` as well as in
    /// its own JWKS.
    #[serde(default)]
    pub combined_jwks: bool,
}

fn default_algorithm() -> KeyAlgorithm {
    KeyAlgorithm::Sign(Algorithm::ES256)
}

/// The key spec `request` asks for, and its content encryption for an encryption ring; refuses
/// settings that do not go with the algorithm.
fn key_spec(request: &NewRing) -> Result<(KeySpec, Option<ContentEncryption>), RingError> {
    let refuse = |message: &str| Err(RingError::Invalid(message.into()));
    let rsa = match request.rsa_bits {
        None | Some(2048) => Ok(KeySpec::Rsa2048),
        Some(3072) => Ok(KeySpec::Rsa3072),
        Some(_) => Err(RingError::Invalid("rsa_bits must be 2048 or 3072".into())),
    };
    let is_rsa = matches!(
        request.algorithm,
        KeyAlgorithm::Sign(Algorithm::RS256 | Algorithm::PS256)
            | KeyAlgorithm::Encrypt(KeyManagement::RsaOaep | KeyManagement::RsaOaep256)
    );
    if request.rsa_bits.is_some() && !is_rsa {
        return refuse("rsa_bits applies only to RS256, PS256, RSA-OAEP and RSA-OAEP-256");
    }
    let is_ecdh = matches!(request.algorithm, KeyAlgorithm::Encrypt(alg) if alg.is_ecdh());
    if request.curve.is_some() && !is_ecdh {
        return refuse("curve applies only to ECDH-ES and ECDH-ES+A256KW");
    }
    let KeyAlgorithm::Encrypt(alg) = request.algorithm else {
        if request.encryption.is_some() {
            return refuse("encryption applies only to encryption rings");
        }
        let spec = match request.algorithm {
            KeyAlgorithm::Sign(Algorithm::ES256) => KeySpec::EcP256,
            KeyAlgorithm::Sign(Algorithm::ES384) => KeySpec::EcP384,
            KeyAlgorithm::Sign(Algorithm::Ed25519 | Algorithm::EdDSA) => KeySpec::Ed25519,
            _ => rsa?,
        };
        return Ok((spec, None));
    };
    let spec = if alg.is_ecdh() {
        match request.curve.as_deref() {
            None | Some("P-256") => KeySpec::EcP256,
            Some("P-384") => KeySpec::EcP384,
            Some(_) => return refuse("curve must be P-256 or P-384"),
        }
    } else {
        rsa?
    };
    Ok((
        spec,
        Some(request.encryption.unwrap_or(ContentEncryption::A256Gcm)),
    ))
}

impl RingService {
    #[tracing::instrument(skip(self, request), fields(ring = %request.name))]
    pub(crate) async fn create_ring(
        &self,
        actor: &Actor,
        request: NewRing,
    ) -> Result<(RingRecord, KeyRecord), RingError> {
        // The audit ring's name is reserved: a user asking for it meets the grammar users have.
        let name = RingName::parse(&request.name)
            .ok()
            .filter(|name| !name.is_audit())
            .ok_or_else(|| RingError::Invalid(RingName::GRAMMAR.into()))?;
        self.create_named_ring(actor, name, request).await
    }

    /// Creates the ring `name` (checked, or the reserved audit ring's) as `request` asks.
    pub(super) async fn create_named_ring(
        &self,
        actor: &Actor,
        name: RingName,
        request: NewRing,
    ) -> Result<(RingRecord, KeyRecord), RingError> {
        request.policy.validate().map_err(RingError::Invalid)?;
        request.timing.validate().map_err(RingError::Invalid)?;
        let (spec, encryption) = key_spec(&request)?;
        let algorithm = match request.algorithm {
            // `EdDSA` is taken as an alias: a new ring says `Ed25519` (RFC 9864).
            KeyAlgorithm::Sign(alg) => KeyAlgorithm::Sign(alg.fully_specified()),
            KeyAlgorithm::Encrypt(alg) => {
                request
                    .policy
                    .validate_for_encryption()
                    .map_err(RingError::Invalid)?;
                if request.combined_jwks {
                    return Err(RingError::Invalid(
                        "the combined JWKS lists signing keys: an encryption ring publishes its keys in its own JWKS only".into(),
                    ));
                }
                KeyAlgorithm::Encrypt(alg)
            }
        };
        self.provider_for(request.backend)?;
        let now = now_ms();
        // The lifetime is stored as in force, so that it reads back as it is.
        let mut policy = request.policy;
        policy.max_ttl_seconds = Some(policy.max_ttl());
        let ring = RingRecord {
            name,
            backend: request.backend,
            algorithm,
            encryption,
            key_spec: spec,
            policy,
            timing: request.timing,
            created_at: now,
            updated_at: now,
            jwks_cached_until: None,
            combined_jwks: request.combined_jwks,
        };
        let pending = pending_key(&ring, now);
        let created = AuditRecord::of_ring(
            now,
            actor,
            &ring.name,
            None,
            AuditEvent::RingCreated {
                backend: ring.backend,
                algorithm: ring.algorithm,
                encryption: ring.encryption,
                key_spec: spec,
                policy: ring.policy.clone(),
                timing: ring.timing.clone(),
                combined_jwks: ring.combined_jwks,
            },
        );
        self.store
            .insert_ring(&ring, &pending, &created)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => RingError::RingExists(ring.name.to_string()),
                e => e.into(),
            })?;
        match self.generate(actor, &ring, &pending, true).await {
            Ok(key) => Ok((ring, key)),
            Err(e @ RingError::Provider { .. }) => {
                // The ring never had a key: take it back rather than leave a ring that cannot sign.
                let failed = AuditRecord::of_ring(
                    now_ms(),
                    actor,
                    &ring.name,
                    None,
                    AuditEvent::RingCreationFailed {
                        error: e.to_string(),
                    },
                );
                self.store.delete_unborn_ring(&ring.name, &failed).await?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }
}
