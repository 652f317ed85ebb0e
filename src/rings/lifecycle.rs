//! Creating rings and keys, rotation, revocation, and the lifecycle tick that advances keys
//! through their states (DESIGN.md §4).

use serde::Deserialize;
use serde_json::json;
use signet_core::{Algorithm, KeyId, KeyRef, KeySpec};

use super::{audit, provider_error, Actor, RingError, RingService, SCHEDULER};
use crate::clock::now_ms;
use crate::domain::{BackendKind, KeyRecord, KeyState, Policy, RingRecord, Timing};
use crate::jose;
use crate::random::random_id;
use crate::store::{Completion, GeneratedRecord, StoreError};

/// How long a `pending` key may stay pending before the lifecycle tick treats its creator as dead.
const PENDING_GRACE_MS: i64 = 60_000;

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

/// What a revocation did.
pub struct Revocation {
    pub key: KeyRecord,
    /// The key that took over signing, when the revoked key was the active one.
    pub successor_kid: Option<String>,
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

pub(super) fn pending_key(ring: &RingRecord, now: i64) -> KeyRecord {
    KeyRecord {
        id: random_id(18),
        ring: ring.name.clone(),
        state: KeyState::Pending,
        algorithm: ring.algorithm,
        key_spec: ring.key_spec,
        backend: ring.backend,
        reference: None,
        kid: None,
        public_jwk: None,
        created_at: now,
        published_at: None,
        activate_after: None,
        activated_at: None,
        deactivated_at: None,
        retire_after: None,
        retired_at: None,
        destroy_after: None,
        destroyed_at: None,
        revoked_at: None,
        revoked_reason: None,
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
        let created = audit(
            now,
            "ring_created",
            actor,
            &ring.name,
            None,
            json!({"backend": ring.backend, "algorithm": ring.algorithm, "key_spec": spec,
                   "policy": ring.policy, "timing": ring.timing}),
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
                let failed = audit(
                    now_ms(),
                    "ring_creation_failed",
                    actor,
                    &ring.name,
                    None,
                    json!({"error": e.to_string()}),
                );
                self.store.delete_unborn_ring(&ring.name, &failed).await?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Generates the backend key for a pending record and completes it: active at once
    /// (`activate`) or published ahead of activation. A provider failure drops the intent record.
    pub(super) async fn generate(
        &self,
        actor: &Actor,
        ring: &RingRecord,
        pending: &KeyRecord,
        activate: bool,
    ) -> Result<KeyRecord, RingError> {
        let provider = self.provider_for(ring.backend)?;
        let generated = match provider
            .generate(&KeyId(pending.id.clone()), ring.key_spec)
            .await
        {
            Ok(generated) => generated,
            Err(error) => {
                let record = audit(
                    now_ms(),
                    "key_generation_failed",
                    actor,
                    &ring.name,
                    None,
                    json!({"error": error.to_string()}),
                );
                if let Err(e) = self.store.delete_pending_key(&pending.id, &record).await {
                    tracing::warn!(error = %e, key = %pending.id, "pending key left for reconciliation");
                }
                return Err(provider_error(provider.name())(error));
            }
        };
        self.complete(
            actor,
            ring,
            pending,
            generated.reference,
            &generated.public_key,
            activate,
        )
        .await
    }

    /// Records a generated (or found) backend key for a pending record.
    async fn complete(
        &self,
        actor: &Actor,
        ring: &RingRecord,
        pending: &KeyRecord,
        reference: KeyRef,
        public_key: &signet_core::PublicKey,
        activate: bool,
    ) -> Result<KeyRecord, RingError> {
        let jwk = jose::public_jwk(public_key, ring.algorithm);
        let kid = jose::thumbprint(public_key);
        let now = now_ms();
        let retire_after = now + ring.timing.retiring_window_ms(ring.policy.max_ttl_seconds);
        let (completion, mut records) = if activate {
            let previous = self.active_kid(&ring.name).await?;
            let mut records = vec![audit(
                now,
                "key_activated",
                actor,
                &ring.name,
                Some(&kid),
                json!({"key_id": pending.id, "reference": reference.0}),
            )];
            if let Some(previous) = previous {
                records.push(audit(
                    now,
                    "key_retiring",
                    actor,
                    &ring.name,
                    Some(&previous),
                    json!({"retire_after": retire_after}),
                ));
            }
            (Completion::Activate { retire_after }, records)
        } else {
            let activate_after = now + 1000 * i64::from(ring.timing.publish_lead_seconds);
            (Completion::Publish { activate_after }, vec![])
        };
        records.insert(
            0,
            audit(
                now,
                "key_published",
                actor,
                &ring.name,
                Some(&kid),
                json!({"key_id": pending.id, "reference": reference.0}),
            ),
        );
        let generated = GeneratedRecord {
            reference: &reference.0,
            kid: &kid,
            public_jwk: &jwk,
        };
        if !self
            .store
            .complete_key(
                &ring.name,
                &pending.id,
                generated,
                now,
                completion,
                &records,
            )
            .await?
        {
            return Err(RingError::Conflict {
                code: "key_state_changed",
                message: format!("key {} was completed by another process", pending.id),
            });
        }
        self.refresh().await;
        self.annotate(ring, &pending.id, &reference.0, activate)
            .await;
        self.store
            .key_by_kid(&kid)
            .await?
            .ok_or(RingError::KeyNotFound(kid))
    }

    async fn active_kid(&self, ring: &str) -> Result<Option<String>, RingError> {
        Ok(self
            .store
            .keys_of_ring(ring)
            .await?
            .into_iter()
            .find(|k| k.state == KeyState::Active)
            .and_then(|k| k.kid))
    }

    /// Starts a rotation: a new key is published now and activated once `publish_lead` has passed
    /// (or at once with `immediate`, which breaks verifiers whose cached JWKS lacks the new key).
    #[tracing::instrument(skip(self))]
    pub async fn rotate(
        &self,
        actor: &Actor,
        ring: &str,
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
                return self
                    .store
                    .key_by_kid(upcoming.kid.as_deref().unwrap_or_default())
                    .await?
                    .ok_or_else(|| {
                        RingError::KeyNotFound(upcoming.kid.clone().unwrap_or_default())
                    });
            }
            return Err(RingError::Conflict {
                code: "rotation_in_progress",
                message: format!(
                    "ring {ring:?} already has a key on its way in (state {}); wait for it to activate or rotate with immediate",
                    upcoming.state.as_str()
                ),
            });
        }
        let now = now_ms();
        let pending = pending_key(&record, now);
        let requested = audit(
            now,
            "rotation_requested",
            actor,
            ring,
            None,
            json!({"key_id": pending.id, "immediate": immediate}),
        );
        self.store
            .insert_pending_key(&pending, &requested)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => RingError::Conflict {
                    code: "rotation_in_progress",
                    message: format!("ring {ring:?} already has a key on its way in"),
                },
                e => e.into(),
            })?;
        // A ring without a signing key (its first key was revoked or lost) gets one at once.
        let activate = immediate || !keys.iter().any(|k| k.state == KeyState::Active);
        self.generate(actor, &record, &pending, activate).await
    }

    /// Makes a published key the active one now.
    async fn activate(
        &self,
        actor: &Actor,
        ring: &RingRecord,
        key: &KeyRecord,
        keys: &[KeyRecord],
    ) -> Result<bool, RingError> {
        let now = now_ms();
        let retire_after = now + ring.timing.retiring_window_ms(ring.policy.max_ttl_seconds);
        let mut records = vec![audit(
            now,
            "key_activated",
            actor,
            &ring.name,
            key.kid.as_deref(),
            json!({"key_id": key.id}),
        )];
        if let Some(previous) = keys.iter().find(|k| k.state == KeyState::Active) {
            records.push(audit(
                now,
                "key_retiring",
                actor,
                &ring.name,
                previous.kid.as_deref(),
                json!({"retire_after": retire_after}),
            ));
        }
        let done = self
            .store
            .activate_key(&ring.name, &key.id, now, retire_after, &records)
            .await?;
        self.refresh().await;
        if done {
            if let Some(reference) = &key.reference {
                self.annotate(ring, &key.id, reference, true).await;
            }
        }
        Ok(done)
    }

    /// Names a key in its backend for people (a KMS alias); a failure is only logged.
    async fn annotate(&self, ring: &RingRecord, id: &str, reference: &str, active: bool) {
        let Ok(provider) = self.provider_for(ring.backend) else {
            return;
        };
        let (id, reference) = (KeyId(id.to_owned()), KeyRef(reference.to_owned()));
        if let Err(e) = provider.annotate(&id, &reference, &ring.name, active).await {
            tracing::warn!(error = %e, ring = %ring.name, key = %id, "could not name the key in its backend");
        }
    }

    /// Revokes a key: it leaves the JWKS at once and never signs again. If it was the ring's
    /// active key, the next key takes over at once (the published one, or a new one).
    #[tracing::instrument(skip(self))]
    pub async fn revoke(
        &self,
        actor: &Actor,
        kid: &str,
        reason: &str,
    ) -> Result<Revocation, RingError> {
        let key = self
            .store
            .key_by_kid(kid)
            .await?
            .ok_or_else(|| RingError::KeyNotFound(kid.to_owned()))?;
        if matches!(key.state, KeyState::Revoked | KeyState::Destroyed) {
            return Err(RingError::Conflict {
                code: "key_not_revocable",
                message: format!("key {kid} is already {}", key.state.as_str()),
            });
        }
        let ring = self.ring_record(&key.ring).await?;
        let now = now_ms();
        let destroy_after = now
            + 1000 * i64::try_from(ring.timing.retain_retired_seconds).unwrap_or(i64::MAX / 2000);
        let mut successor = None;
        if key.state == KeyState::Active {
            let keys = self.store.keys_of_ring(&ring.name).await?;
            successor = match keys.into_iter().find(|k| k.state == KeyState::Published) {
                Some(published) => Some(published),
                None => self.successor_for_revocation(actor, &ring).await,
            };
        }
        let mut records = vec![audit(
            now,
            "key_revoked",
            actor,
            &ring.name,
            Some(kid),
            json!({"reason": reason}),
        )];
        if let Some(s) = &successor {
            records.push(audit(
                now,
                "key_activated",
                actor,
                &ring.name,
                s.kid.as_deref(),
                json!({"key_id": s.id, "replaces_revoked": kid}),
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
                code: "key_state_changed",
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
                .ok_or_else(|| RingError::KeyNotFound(kid.to_owned()))?,
            successor_kid: successor.and_then(|s| s.kid),
        })
    }

    /// A freshly published key to take over from a revoked active key. Revocation goes ahead
    /// without one if it cannot be made (the ring then refuses to sign until rotated).
    async fn successor_for_revocation(
        &self,
        actor: &Actor,
        ring: &RingRecord,
    ) -> Option<KeyRecord> {
        let pending = pending_key(ring, now_ms());
        let requested = audit(
            now_ms(),
            "rotation_requested",
            actor,
            &ring.name,
            None,
            json!({"key_id": pending.id, "for": "revocation"}),
        );
        let made = async {
            self.store.insert_pending_key(&pending, &requested).await?;
            self.generate(actor, ring, &pending, false).await
        }
        .await;
        made.map_err(|e| tracing::error!(error = %e, ring = %ring.name, "no successor for a revoked active key"))
            .ok()
    }

    /// Advances every key whose time has come: activations, retirements, destructions, and the
    /// reconciliation of pending keys abandoned by a crash. Safe to run on several replicas at
    /// once: each transition is a conditional update that only one of them wins.
    pub async fn advance(&self) -> Result<(), RingError> {
        let now = now_ms();
        let rings = self.store.rings().await?;
        let keys = self.store.live_keys().await?;
        let schedules = self.run_schedules(&rings, &keys, now).await;
        for key in &keys {
            let Some(ring) = rings.iter().find(|r| r.name == key.ring) else {
                continue;
            };
            let due = |at: Option<i64>| at.is_some_and(|at| at <= now);
            let result = match key.state {
                KeyState::Published if due(key.activate_after) => {
                    let ring_keys: Vec<KeyRecord> = keys
                        .iter()
                        .filter(|k| k.ring == ring.name)
                        .cloned()
                        .collect();
                    self.activate(SCHEDULER, ring, key, &ring_keys)
                        .await
                        .map(drop)
                }
                KeyState::Retiring if due(key.retire_after) => {
                    let destroy_after = now
                        + 1000
                            * i64::try_from(ring.timing.retain_retired_seconds)
                                .unwrap_or(i64::MAX / 2000);
                    let record = audit(
                        now,
                        "key_retired",
                        SCHEDULER,
                        &ring.name,
                        key.kid.as_deref(),
                        json!({"destroy_after": destroy_after}),
                    );
                    self.store
                        .retire_key(&key.id, now, destroy_after, &record)
                        .await
                        .map(drop)
                        .map_err(Into::into)
                }
                KeyState::Retired | KeyState::Revoked if due(key.destroy_after) => {
                    self.destroy(ring, key).await
                }
                KeyState::Pending if key.created_at + PENDING_GRACE_MS <= now => {
                    self.reconcile(ring, key).await
                }
                _ => Ok(()),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, ring = %ring.name, key = %key.id, state = key.state.as_str(), "lifecycle step failed; retrying on the next tick");
            }
        }
        if let Err(e) = self.checkpoint_audit_if_due().await {
            tracing::warn!(error = %e, "audit checkpoint failed; retrying on the next tick");
        }
        self.reload().await?;
        schedules
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
                .map_err(provider_error(provider.name()))?;
        }
        let now = now_ms();
        let record = audit(
            now,
            "key_destroyed",
            SCHEDULER,
            &ring.name,
            key.kid.as_deref(),
            json!({"key_id": key.id, "deletion_scheduled_for": scheduled}),
        );
        self.store
            .mark_key_destroyed(&key.id, scheduled.unwrap_or(now), &record)
            .await?;
        Ok(())
    }

    /// Backend keys that no live record names: generated for an intent that was dropped, or
    /// still present after their record was destroyed. signet never signs with them; they are
    /// reported (see [`Application::run_until_stopped`](crate::startup::Application)), not
    /// deleted, so an operator decides (a restored database may be what is wrong).
    pub async fn orphaned_keys(&self) -> Result<Vec<(BackendKind, KeyId)>, RingError> {
        let live: std::collections::HashSet<String> = self
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

    /// A pending key whose creator died: adopt the backend key if it exists, else drop the intent.
    async fn reconcile(&self, ring: &RingRecord, key: &KeyRecord) -> Result<(), RingError> {
        let provider = self.provider_for(ring.backend)?;
        let error = provider_error(provider.name());
        match provider
            .locate(&KeyId(key.id.clone()))
            .await
            .map_err(&error)?
        {
            Some(reference) => {
                let public_key = provider.public_key(&reference).await.map_err(&error)?;
                let has_active = self.active_kid(&ring.name).await?.is_some();
                tracing::info!(ring = %ring.name, key = %key.id, "adopting a key generated before a crash");
                // A ring without a signing key (its creation was interrupted) gets it at once;
                // otherwise the key is published and activates after the usual lead.
                self.complete(SCHEDULER, ring, key, reference, &public_key, !has_active)
                    .await
                    .map(drop)
            }
            None => {
                let record = audit(
                    now_ms(),
                    "key_generation_abandoned",
                    SCHEDULER,
                    &ring.name,
                    None,
                    json!({"key_id": key.id}),
                );
                self.store
                    .delete_pending_key(&key.id, &record)
                    .await
                    .map(drop)
                    .map_err(Into::into)
            }
        }
    }
}
