//! Creating a ring: its settings are checked, the ring and the intent record of its first key
//! commit together, then the first key is generated and activated at once. A ring whose first
//! key cannot be generated is taken back, so no ring exists that cannot sign.

use serde::Deserialize;
use signet_core::{Algorithm, KeySpec};

use super::keys::pending_key;
use super::{Actor, RingError, RingService};
use crate::clock::now_ms;
use crate::domain::{AuditEvent, AuditRecord, BackendKind, KeyRecord, Policy, RingRecord, Timing};
use crate::store::StoreError;

/// `POST /v1/rings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRing {
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
}

fn default_algorithm() -> Algorithm {
    Algorithm::ES256
}

fn check_ring_name(name: &str) -> Result<(), RingError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(RingError::Invalid(
            "ring names are 1-64 characters of a-z, 0-9, '-' and '_', starting with a letter or digit".into(),
        ))
    }
}

fn key_spec(algorithm: Algorithm, rsa_bits: Option<u32>) -> Result<KeySpec, RingError> {
    match (algorithm, rsa_bits) {
        (Algorithm::ES256, None) => Ok(KeySpec::EcP256),
        (Algorithm::ES384, None) => Ok(KeySpec::EcP384),
        (Algorithm::EdDSA, None) => Ok(KeySpec::Ed25519),
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
    pub async fn create_ring(
        &self,
        actor: &Actor,
        request: NewRing,
    ) -> Result<(RingRecord, KeyRecord), RingError> {
        check_ring_name(&request.name)?;
        self.create_named_ring(actor, request).await
    }

    /// Creates a ring whose name is checked or reserved (the audit ring's).
    pub(super) async fn create_named_ring(
        &self,
        actor: &Actor,
        request: NewRing,
    ) -> Result<(RingRecord, KeyRecord), RingError> {
        request.policy.validate().map_err(RingError::Invalid)?;
        request.timing.validate().map_err(RingError::Invalid)?;
        let spec = key_spec(request.algorithm, request.rsa_bits)?;
        self.provider_for(request.backend)?;
        let now = now_ms();
        let ring = RingRecord {
            name: request.name,
            backend: request.backend,
            algorithm: request.algorithm,
            key_spec: spec,
            policy: request.policy,
            timing: request.timing,
            created_at: now,
            updated_at: now,
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
            },
        );
        self.store
            .insert_ring(&ring, &pending, &created)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => RingError::RingExists(ring.name.clone()),
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
