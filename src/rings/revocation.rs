//! Revocation: a key leaves the JWKS at once and never signs again. If it was the ring's active
//! key, the next key takes over in the same transaction: the published one, or a new one made
//! for the purpose (a rotation, see `rotation.rs`).

use super::rotation::Trigger;
use super::{Actor, RingError, RingService};
use crate::clock::now_ms;
use crate::domain::{
    AuditEvent, AuditRecord, ErrorCode, KeyRecord, KeyState, Kid, RingRecord, RotationCause,
};

/// What a revocation did.
pub struct Revocation {
    pub key: KeyRecord,
    /// The key that took over signing, when the revoked key was the active one.
    pub successor_kid: Option<String>,
}

impl RingService {
    #[tracing::instrument(skip(self))]
    pub(crate) async fn revoke(
        &self,
        actor: &Actor,
        kid: &Kid,
        reason: &str,
    ) -> Result<Revocation, RingError> {
        let key = self
            .store
            .key_by_kid(kid)
            .await?
            .ok_or_else(|| RingError::KeyNotFound(kid.to_string()))?;
        if matches!(key.state, KeyState::Revoked | KeyState::Destroyed) {
            return Err(RingError::Conflict {
                code: ErrorCode::KeyNotRevocable,
                message: format!("key {kid} is already {}", key.state.as_str()),
            });
        }
        let ring = self.ring_record(&key.ring).await?;
        let now = now_ms();
        let destroy_after = now.plus_ms(ring.timing.retain_retired_ms());
        let mut successor = None;
        if key.state == KeyState::Active {
            let keys = self.store.keys_of_ring(&ring.name).await?;
            successor = match keys.into_iter().find(|k| k.state == KeyState::Published) {
                Some(published) => Some(published),
                None => self.successor_for_revocation(actor, &ring).await,
            };
        }
        let mut records = vec![AuditRecord::of_ring(
            now,
            actor,
            &ring.name,
            Some(kid),
            AuditEvent::KeyRevoked {
                reason: reason.to_owned(),
            },
        )];
        if let Some(s) = &successor {
            records.push(AuditRecord::of_ring(
                now,
                actor,
                &ring.name,
                s.kid.as_ref(),
                AuditEvent::KeyActivated {
                    key_id: s.id.clone(),
                    reference: None,
                    replaces_revoked: Some(kid.to_string()),
                },
            ));
        }
        let done = self
            .store
            .revoke_key(
                &key.id,
                reason,
                now,
                destroy_after,
                successor.as_ref().map(|s| s.id.as_str()),
                &records,
            )
            .await?;
        self.refresh().await;
        if !done {
            return Err(RingError::Conflict {
                code: ErrorCode::KeyStateChanged,
                message: format!("key {kid} changed state while it was being revoked; retry"),
            });
        }
        if let Some(s) = &successor {
            if let Some(reference) = &s.reference {
                self.annotate(&ring, &s.id, reference, true).await;
            }
        }
        Ok(Revocation {
            key: self
                .store
                .key_by_kid(kid)
                .await?
                .ok_or_else(|| RingError::KeyNotFound(kid.to_string()))?,
            successor_kid: successor.and_then(|s| s.kid).map(String::from),
        })
    }

    /// A freshly published key to take over from a revoked active key. Revocation goes ahead
    /// without one if it cannot be made (the ring then refuses to sign until rotated).
    async fn successor_for_revocation(
        &self,
        actor: &Actor,
        ring: &RingRecord,
    ) -> Option<KeyRecord> {
        let trigger = Trigger::Asked(RotationCause::Revocation);
        match self.start_rotation(actor, ring, trigger, false).await {
            Ok(key) => key,
            Err(e) => {
                tracing::error!(error = %e, ring = %ring.name, "no successor for a revoked active key");
                None
            }
        }
    }
}
