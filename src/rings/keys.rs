//! Bringing a key in: the backend generates it for an intent record, the record is completed
//! (published ahead of activation, or active at once), and a published key is activated when
//! its time comes. A key is created in three steps so that a crash at any point is recoverable
//! (see `tick.rs`, reconciliation).

use signet_core::{KeyId, KeyRef, KeyUse, ProviderError, PublicKey};

use super::decryption::self_test;
use super::{provider_error, Actor, RingError, RingService};
use crate::clock::now_ms;
use crate::domain::{
    windows, AuditEvent, AuditRecord, ErrorCode, KeyRecord, KeyState, Kid, RingRecord, UnixMillis,
};
use crate::jose;
use crate::random::random_id;
use crate::store::{Completion, GeneratedRecord};

/// When `key`, the active key of `ring` until `now`, retires. A signing key leaves the JWKS once
/// what it has signed so far has expired (the lifecycle tick postpones it if a later signature
/// commits). An encryption key leaves the JWKS at once, but keeps decrypting until every token a
/// sender could still encrypt to it can have expired: a sender's cached JWKS may name it for the
/// JWKS max-age (in the grace), and the token then lives up to the ring's `max_ttl`.
fn retirement_from(ring: &RingRecord, key: &KeyRecord, now: UnixMillis) -> UnixMillis {
    let last_token_exp = match ring.algorithm.usage() {
        KeyUse::Sign => key.last_token_exp,
        KeyUse::Encrypt => {
            Some(now.plus_ms(windows::REFRESH_MS + 1000 * i64::from(ring.policy.max_ttl())))
        }
    };
    windows::retirement_at(now, last_token_exp, key.jwks_grace_ms)
}

/// The intent record of a key about to be generated for `ring`.
pub(super) fn pending_key(ring: &RingRecord, now: UnixMillis) -> KeyRecord {
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
        last_token_exp: None,
        jwks_grace_ms: windows::grace_ms(&ring.timing),
    }
}

impl RingService {
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
        let generated = provider
            .generate(
                &KeyId(pending.id.clone()),
                ring.key_spec,
                ring.algorithm.usage(),
            )
            .await;
        let generated = match generated {
            Ok(generated) => generated,
            Err(error) => {
                return Err(self
                    .generation_failed(actor, ring, pending, provider.name(), error)
                    .await)
            }
        };
        if let Err(error) = self_test(provider.as_ref(), ring, &generated).await {
            // A key that cannot do what the ring needs is of no use: it goes at once. If it
            // cannot, the intent record stays for reconciliation to find the key.
            if let Err(e) = provider.destroy(&generated.reference).await {
                tracing::warn!(error = %e, key = %pending.id, "a key that failed its self-test is left for reconciliation");
                return Err(provider_error(provider.name())(error));
            }
            return Err(self
                .generation_failed(actor, ring, pending, provider.name(), error)
                .await);
        }
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

    /// Records that the key for `pending` could not be made (`error`), drops the intent record,
    /// and returns the error to answer with.
    async fn generation_failed(
        &self,
        actor: &Actor,
        ring: &RingRecord,
        pending: &KeyRecord,
        backend: &'static str,
        error: ProviderError,
    ) -> RingError {
        let record = AuditRecord::of_ring(
            now_ms(),
            actor,
            &ring.name,
            None,
            AuditEvent::KeyGenerationFailed {
                error: error.to_string(),
            },
        );
        if let Err(e) = self.store.delete_pending_key(&pending.id, &record).await {
            tracing::warn!(error = %e, key = %pending.id, "pending key left for reconciliation");
        }
        provider_error(backend)(error)
    }

    /// Records a generated (or found) backend key for a pending record.
    pub(super) async fn complete(
        &self,
        actor: &Actor,
        ring: &RingRecord,
        pending: &KeyRecord,
        reference: KeyRef,
        public_key: &PublicKey,
        activate: bool,
    ) -> Result<KeyRecord, RingError> {
        let jwk = jose::public_jwk(public_key, ring.algorithm);
        let kid = jose::thumbprint(public_key);
        let now = now_ms();
        let record =
            |kid: Option<&Kid>, event| AuditRecord::of_ring(now, actor, &ring.name, kid, event);
        let mut records = vec![record(
            Some(&kid),
            AuditEvent::KeyPublished {
                key_id: pending.id.clone(),
                reference: reference.0.clone(),
            },
        )];
        let completion = if activate {
            records.push(record(
                Some(&kid),
                AuditEvent::KeyActivated {
                    key_id: pending.id.clone(),
                    reference: Some(reference.0.clone()),
                    replaces_revoked: None,
                },
            ));
            let keys = self.store.keys_of_ring(&ring.name).await?;
            let previous = keys.iter().find(|k| k.state == KeyState::Active);
            let retire_after = previous.map(|p| retirement_from(ring, p, now));
            if let (Some(previous), Some(retire_after)) = (previous, retire_after) {
                records.push(record(
                    previous.kid.as_ref(),
                    AuditEvent::KeyRetiring { retire_after },
                ));
            }
            Completion::Activate { retire_after }
        } else {
            // The ring as stored now: a timing change since `ring` was read may hold the
            // activation back (`windows::activation_floor`).
            let stored = self.ring_record(&ring.name).await?;
            let activate_after =
                windows::activation_at(now, &stored.timing, stored.jwks_cached_until);
            Completion::Publish { activate_after }
        };
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
                code: ErrorCode::KeyStateChanged,
                message: format!("key {} was completed by another process", pending.id),
            });
        }
        self.refresh().await;
        self.annotate(ring, &pending.id, &reference.0, activate)
            .await;
        self.store
            .key_by_kid(&kid)
            .await?
            .ok_or_else(|| RingError::KeyNotFound(kid.to_string()))
    }

    pub(super) async fn active_kid(&self, ring: &str) -> Result<Option<Kid>, RingError> {
        Ok(self
            .store
            .keys_of_ring(ring)
            .await?
            .into_iter()
            .find(|k| k.state == KeyState::Active)
            .and_then(|k| k.kid))
    }

    /// Makes a published key the active one now; the ring's active key starts retiring.
    /// `false` if another replica got there first.
    pub(super) async fn activate(
        &self,
        actor: &Actor,
        ring: &RingRecord,
        key: &KeyRecord,
        keys: &[KeyRecord],
    ) -> Result<bool, RingError> {
        let now = now_ms();
        let previous = keys.iter().find(|k| k.state == KeyState::Active);
        let retire_after = previous.map(|p| retirement_from(ring, p, now));
        let mut records = vec![AuditRecord::of_ring(
            now,
            actor,
            &ring.name,
            key.kid.as_ref(),
            AuditEvent::KeyActivated {
                key_id: key.id.clone(),
                reference: None,
                replaces_revoked: None,
            },
        )];
        if let (Some(previous), Some(retire_after)) = (previous, retire_after) {
            records.push(AuditRecord::of_ring(
                now,
                actor,
                &ring.name,
                previous.kid.as_ref(),
                AuditEvent::KeyRetiring { retire_after },
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
    pub(super) async fn annotate(
        &self,
        ring: &RingRecord,
        id: &str,
        reference: &str,
        active: bool,
    ) {
        let Ok(provider) = self.provider_for(ring.backend) else {
            return;
        };
        let (id, reference) = (KeyId(id.to_owned()), KeyRef(reference.to_owned()));
        if let Err(e) = provider.annotate(&id, &reference, &ring.name, active).await {
            tracing::warn!(error = %e, ring = %ring.name, key = %id, "could not name the key in its backend");
        }
    }
}
