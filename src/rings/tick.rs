//! The lifecycle tick: every second, on every replica, each key whose time has come moves on
//! (activation, retirement, destruction), scheduled rotations start, pending keys abandoned by a
//! crash are reconciled, and the audit chain gets its checkpoint when due. Replicas tick at
//! once safely: each transition is a conditional update that only one of them wins.

use std::collections::HashSet;

use signet_core::{KeyId, KeyRef};

use super::{provider_error, RingError, RingService, SCHEDULER};
use crate::clock::now_ms;
use crate::domain::{
    windows, AuditEvent, AuditRecord, BackendKind, KeyRecord, KeyState, RingRecord, UnixMillis,
};

/// How long a `pending` key may stay pending before the lifecycle tick treats its creator as dead.
const PENDING_GRACE_MS: i64 = 60_000;

impl RingService {
    /// Advances every key whose time has come, starts the scheduled rotations that are due and
    /// checkpoints the audit chain when due. The work is what is due, never every ring: the
    /// keys in motion come from one indexed read, the due rotations from the view. A step that
    /// fails is logged and retried on the next tick; the tick fails when the store cannot be
    /// read, or a ring's stored schedule cannot be (after every other step has run).
    pub async fn advance(&self) -> Result<(), RingError> {
        let now = now_ms();
        let view = self.view();
        let schedules = self.run_schedules(&view, now).await;
        for key in self.store.keys_in_motion(now).await? {
            let Some(ring) = view.rings.get(key.ring.as_str()) else {
                continue; // a ring created since the view was read: the next tick has it
            };
            if let Err(e) = self.step(&ring.record, &key, now).await {
                tracing::warn!(error = %e, ring = %ring.record.name, key = %key.id, state = key.state.as_str(), "lifecycle step failed; retrying on the next tick");
            }
        }
        if let Err(e) = self.checkpoint_audit_if_due().await {
            tracing::warn!(error = %e, "audit checkpoint failed; retrying on the next tick");
        }
        // A raw token's jti stays claimed until it has expired, plus the longest leeway.
        if let Err(e) = self.store.purge_raw_jtis(now.as_secs() - 3600).await {
            tracing::warn!(error = %e, "expired jtis not purged; retrying on the next tick");
        }
        self.reload().await?;
        schedules
    }

    /// Moves `key` on if its time has come.
    async fn step(
        &self,
        ring: &RingRecord,
        key: &KeyRecord,
        now: UnixMillis,
    ) -> Result<(), RingError> {
        let due = |at: Option<UnixMillis>| at.is_some_and(|at| at <= now);
        match key.state {
            KeyState::Published if due(key.activate_after) => {
                let ring_keys = self.store.live_keys_of_ring(&ring.name).await?;
                self.activate(SCHEDULER, ring, key, &ring_keys).await?;
            }
            KeyState::Retiring => {
                let (Some(stored), Some(deactivated)) = (key.retire_after, key.deactivated_at)
                else {
                    return Ok(());
                };
                // A token committed after the key stopped signing (a replica's view not yet
                // refreshed) or a longer grace given since moves the retirement later, never
                // earlier.
                let planned =
                    windows::retirement_at(deactivated, key.last_token_exp, key.jwks_grace_ms);
                let record = |event| {
                    AuditRecord::of_ring(now, SCHEDULER, &ring.name, key.kid.as_ref(), event)
                };
                if planned > stored {
                    let event = AuditEvent::KeyRetiring {
                        retire_after: planned,
                    };
                    self.store
                        .postpone_retirement(key, planned, &record(event))
                        .await?;
                } else if due(Some(stored)) {
                    let destroy_after = now.plus_ms(ring.timing.retain_retired_ms());
                    let event = AuditEvent::KeyRetired { destroy_after };
                    self.store
                        .retire_key(key, now, destroy_after, &record(event))
                        .await?;
                }
            }
            KeyState::Retired | KeyState::Revoked if due(key.destroy_after) => {
                self.destroy(ring, key).await?;
            }
            KeyState::Pending if key.created_at.plus_ms(PENDING_GRACE_MS) <= now => {
                self.reconcile(ring, key).await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Destroys the backend key; `destroyed_at` is when the backend deletes it (now, or the end
    /// of a KMS deletion window).
    async fn destroy(&self, ring: &RingRecord, key: &KeyRecord) -> Result<(), RingError> {
        let provider = self.provider_for(ring.backend)?;
        let mut scheduled = None;
        if let Some(reference) = &key.reference {
            scheduled = provider
                .destroy(&KeyRef(reference.clone()))
                .await
                .map_err(provider_error(provider.name()))?
                .map(UnixMillis::from_millis);
        }
        let now = now_ms();
        let record = AuditRecord::of_ring(
            now,
            SCHEDULER,
            &ring.name,
            key.kid.as_ref(),
            AuditEvent::KeyDestroyed {
                key_id: key.id.clone(),
                deletion_scheduled_for: scheduled,
            },
        );
        self.store
            .mark_key_destroyed(&key.id, scheduled.unwrap_or(now), &record)
            .await?;
        Ok(())
    }

    /// A pending key whose creator died: adopt the backend key if it exists, else drop the intent.
    async fn reconcile(&self, ring: &RingRecord, key: &KeyRecord) -> Result<(), RingError> {
        let provider = self.provider_for(ring.backend)?;
        let error = provider_error(provider.name());
        if let Some(reference) = provider
            .locate(&KeyId(key.id.clone()))
            .await
            .map_err(&error)?
        {
            let public_key = provider.public_key(&reference).await.map_err(&error)?;
            let has_active = self.active_kid(&ring.name).await?.is_some();
            tracing::info!(ring = %ring.name, key = %key.id, "adopting a key generated before a crash");
            // A ring without a signing key (its creation was interrupted) gets it at once;
            // otherwise the key is published and activates after the usual lead.
            self.complete(SCHEDULER, ring, key, reference, &public_key, !has_active)
                .await?;
        } else {
            let record = AuditRecord::of_ring(
                now_ms(),
                SCHEDULER,
                &ring.name,
                None,
                AuditEvent::KeyGenerationAbandoned {
                    key_id: key.id.clone(),
                },
            );
            self.store.delete_pending_key(&key.id, &record).await?;
        }
        Ok(())
    }

    /// Backend keys that no live record names: generated for an intent that was dropped, or
    /// still present after their record was destroyed. signet never signs with them; they are
    /// reported (see [`Application::run_until_stopped`](crate::startup::Application)), not
    /// deleted, so an operator decides (a restored database may be what is wrong).
    pub async fn orphaned_keys(&self) -> Result<Vec<(BackendKind, KeyId)>, RingError> {
        let live: HashSet<String> = self
            .store
            .live_keys()
            .await?
            .into_iter()
            .map(|key| key.id)
            .collect();
        let mut orphans = Vec::new();
        for (kind, provider) in self.providers.iter() {
            let held = provider
                .inventory()
                .await
                .map_err(provider_error(provider.name()))?;
            orphans.extend(
                held.into_iter()
                    .filter(|id| !live.contains(&id.0))
                    .map(|id| (kind, id)),
            );
        }
        Ok(orphans)
    }
}
