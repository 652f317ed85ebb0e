//! Creating a ring: its settings are checked, the ring and the intent record of its first key
//! commit together, then the first key is generated and activated at once. A ring whose first
//! key cannot be generated is taken back, so no ring exists that cannot sign.

use serde::Deserialize;
use signet_core::{Algorithm, KeySpec};

use super::keys::pending_key;
use super::{Actor, RingError, RingService};
use crate::clock::now_ms;
use crate::domain::{
    AuditEvent, AuditRecord, BackendKind, KeyRecord, Policy, RingName, RingRecord, Timing,
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
    #[serde(default = "default_algorithm")]
    pub algorithm: Algorithm,
    /// RSA modulus size for RS256/PS256: 2048 (the default) or 3072.
    pub rsa_bits: Option<u32>,
    pub policy: Policy,
    #[serde(default)]
    pub timing: Timing,
    /// Whether the ring's keys are listed in the combined `/.well-known/jwks.json` as well as in
    /// its own JWKS.
    #[serde(default)]
    pub combined_jwks: bool,
}

fn default_algorithm() -> Algorithm {
    Algorithm::ES256
}

fn key_spec(algorithm: Algorithm, rsa_bits: Option<u32>) -> Result<KeySpec, RingError> {
    match (algorithm, rsa_bits) {
        (Algorithm::ES256, None) => Ok(KeySpec::EcP256),
        (Algorithm::ES384, None) => Ok(KeySpec::EcP384),
        (Algorithm::Ed25519 | Algorithm::EdDSA, None) => Ok(KeySpec::Ed25519),
        (Algorithm::RS256 | Algorithm::PS256, None | Some(2048)) => Ok(KeySpec::Rsa2048),
        (Algorithm::RS256 | Algorithm::PS256, Some(3072)) => Ok(KeySpec::Rsa3072),
        (Algorithm::RS256 | Algorithm::PS256, Some(_)) => {
            Err(RingError::Invalid("rsa_bits must be 2048 or 3072".into()))
        }
        (_, Some(_)) => Err(RingError::Invalid(
            "rsa_bits applies only to RS256 and PS256".into(),
        )),
    }
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
        // `EdDSA` is taken as an alias: a new ring says `Ed25519` (RFC 9864).
        let algorithm = request.algorithm.fully_specified();
        let spec = key_spec(algorithm, request.rsa_bits)?;
        self.provider_for(request.backend)?;
        let now = now_ms();
        // The lifetime is stored as in force, so that it reads back as it is.
        let mut policy = request.policy;
        policy.max_ttl_seconds = Some(policy.max_ttl());
        let ring = RingRecord {
            name,
            backend: request.backend,
            algorithm,
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
