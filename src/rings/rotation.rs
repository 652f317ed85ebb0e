//! Rotation: the one way a new key starts its way into a ring, whoever asks for it (an admin,
//! with or without `immediate`; the scheduler; a revocation that needs a successor). The intent
//! record commits with its audit record, then the key is generated and completed
//! (see `keys.rs`).

use super::keys::pending_key;
use super::{Actor, RingError, RingService};
use crate::clock::now_ms;
use crate::domain::{
    AuditEvent, AuditRecord, ErrorCode, KeyRecord, KeyState, RingName, RingRecord, RotationCause,
};
use crate::store::StoreError;

/// Who starts a rotation, and so how it is claimed and recorded.
pub(super) enum Trigger<'a> {
    /// Asked for by hand, or to replace a revoked key: refused while a key is on its way in.
    Asked(RotationCause),
    /// Due by the ring's schedule: claimed under the ring's lock, and only while `active_id`
    /// is still the ring's active key and no key is on its way in (replicas race for it).
    Schedule { active_id: Option<&'a str> },
}

impl RingService {
    /// Starts a rotation of `ring`: the new key is published, or active at once with
    /// `activate`. `None` when a scheduled rotation was claimed by another replica first.
    pub(super) async fn start_rotation(
        &self,
        actor: &Actor,
        ring: &RingRecord,
        trigger: Trigger<'_>,
        activate: bool,
    ) -> Result<Option<KeyRecord>, RingError> {
        let result = self
            .claim_and_generate(actor, ring, trigger, activate)
            .await;
        match &result {
            Ok(Some(_)) => self.metrics.rotation(&ring.name, true),
            // Not started: claimed by another replica, or refused while one is under way.
            Ok(None) | Err(RingError::Conflict { .. }) => {}
            Err(_) => self.metrics.rotation(&ring.name, false),
        }
        result
    }

    async fn claim_and_generate(
        &self,
        actor: &Actor,
        ring: &RingRecord,
        trigger: Trigger<'_>,
        activate: bool,
    ) -> Result<Option<KeyRecord>, RingError> {
        let now = now_ms();
        let pending = pending_key(ring, now);
        let key_id = pending.id.clone();
        let record = |event| AuditRecord::of_ring(now, actor, &ring.name, None, event);
        match trigger {
            Trigger::Asked(cause) => {
                let requested = record(AuditEvent::RotationRequested { key_id, cause });
                self.store
                    .insert_pending_key(&pending, &requested)
                    .await
                    .map_err(|e| match e {
                        StoreError::Conflict(_) => in_progress(&ring.name),
                        e => e.into(),
                    })?;
            }
            Trigger::Schedule { active_id } => {
                let scheduled = record(AuditEvent::RotationScheduled { key_id });
                if !self
                    .store
                    .claim_rotation(active_id, &pending, &scheduled)
                    .await?
                {
                    return Ok(None);
                }
            }
        }
        self.generate(actor, ring, &pending, activate)
            .await
            .map(Some)
    }

    /// Starts a rotation: a new key is published now and activated once `publish_lead` has passed
    /// (or at once with `immediate`, which breaks verifiers whose cached JWKS lacks the new key).
    /// With `immediate`, a key already published and waiting for its lead is activated instead.
    #[tracing::instrument(skip(self))]
    pub(crate) async fn rotate(
        &self,
        actor: &Actor,
        ring: &RingName,
        immediate: bool,
    ) -> Result<KeyRecord, RingError> {
        let record = self.ring_record(ring).await?;
        let keys = self.store.keys_of_ring(ring).await?;
        if let Some(upcoming) = keys
            .iter()
            .find(|k| matches!(k.state, KeyState::Pending | KeyState::Published))
        {
            if immediate && upcoming.state == KeyState::Published {
                self.activate(actor, &record, upcoming, &keys).await?;
                let kid = upcoming
                    .kid
                    .as_ref()
                    .map_or_else(String::new, ToString::to_string);
                return self
                    .store
                    .key_by_kid(&kid)
                    .await?
                    .ok_or(RingError::KeyNotFound(kid));
            }
            return Err(RingError::Conflict {
                code: ErrorCode::RotationInProgress,
                message: format!(
                    "ring {:?} already has a key on its way in (state {}); wait for it to activate or rotate with immediate",
                    ring.as_str(),
                    upcoming.state.as_str()
                ),
            });
        }
        // A ring without a signing key (its first key was revoked or lost) gets one at once.
        let activate = immediate || !keys.iter().any(|k| k.state == KeyState::Active);
        let trigger = Trigger::Asked(RotationCause::Request { immediate });
        self.start_rotation(actor, &record, trigger, activate)
            .await?
            .ok_or_else(|| in_progress(ring))
    }
}

fn in_progress(ring: &str) -> RingError {
    RingError::Conflict {
        code: ErrorCode::RotationInProgress,
        message: format!("ring {ring:?} already has a key on its way in"),
    }
}
