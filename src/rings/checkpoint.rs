//! Signed checkpoints of the audit chain (docs/design.md, Audit): every [`CHECKPOINT_EVERY_RECORDS`]
//! records or [`CHECKPOINT_EVERY_MS`], whichever comes first, the head of the chain (`seq` and
//! hash) is signed with the active key of the reserved ring [`AUDIT_RING`] and appended to the
//! chain itself. Rewriting the whole log with fresh hashes then needs that key's signature, which
//! anyone holding the ring's JWKS (`/v1/rings/_audit/jwks.json`) can check.
//!
//! The audit ring is created, by the scheduler, at the first start, on the strongest backend
//! configured. Its name cannot be taken by a user's ring, and no client may be made an issuer
//! of it.

use serde_json::json;

use super::{provider_error, NewRing, RingError, RingService, SCHEDULER};
use crate::clock::now_ms;
use crate::domain::{
    Action, AuditEvent, AuditRecord, BackendKind, KeyAlgorithm, RingName, Timing, AUDIT_RING,
    CHECKPOINT_EVERY_MS, CHECKPOINT_EVERY_RECORDS,
};
use crate::jose;

impl RingService {
    /// The audit ring lives on the strongest backend configured (a PKCS#11 token, else AWS
    /// KMS, else the file backend), so that whoever can write the database and the data
    /// directory still cannot sign checkpoints. A ring keeps its backend: an audit ring created
    /// before a stronger backend was configured stays where it is.
    fn audit_backend(&self) -> BackendKind {
        [BackendKind::Pkcs11, BackendKind::AwsKms]
            .into_iter()
            .find(|kind| self.providers.get(*kind).is_some())
            .unwrap_or(BackendKind::File)
    }

    /// Appends a checkpoint when enough records or time have passed since the last one.
    pub(crate) async fn checkpoint_audit_if_due(&self) -> Result<(), RingError> {
        let store = &self.store;
        let head = store.audit_head().await?;
        let since = match store.latest_audit_record(Action::AuditCheckpoint).await? {
            Some(last) => Some((last.seq, last.time)),
            None => store
                .audit_record(head.start_seq)
                .await?
                .map(|first| (head.start_seq - 1, first.time)),
        };
        let Some((last_seq, last_time)) = since else {
            return Ok(()); // nothing chained yet
        };
        let new_records = head.seq - last_seq;
        if new_records >= CHECKPOINT_EVERY_RECORDS
            || (new_records > 0 && now_ms().ms_since(last_time) >= CHECKPOINT_EVERY_MS)
        {
            self.checkpoint_audit().await?;
        }
        Ok(())
    }

    /// Creates the audit ring, and its first key, unless it exists: at every start, so that its
    /// JWKS can be saved before the first checkpoint, and again before a checkpoint. Replicas
    /// starting at once create it once.
    pub async fn ensure_audit_ring(&self) -> Result<(), RingError> {
        if self.view().rings.contains_key(AUDIT_RING) {
            return Ok(());
        }
        let request = NewRing {
            name: AUDIT_RING.into(),
            backend: self.audit_backend(),
            algorithm: KeyAlgorithm::Sign(signet_core::Algorithm::ES256),
            encryption: None,
            rsa_bits: None,
            curve: None,
            policy: serde_json::from_value(json!({"issuer": "signet-audit"}))
                .expect("a valid policy"),
            timing: Timing::default(),
            combined_jwks: false,
        };
        match self
            .create_named_ring(SCHEDULER, RingName::audit(), request)
            .await
        {
            Ok((_, key)) => {
                self.trust_audit_keys(key.public_jwk.iter());
                self.reload().await
            }
            Err(RingError::RingExists(_)) => self.reload().await,
            Err(e) => Err(e),
        }
    }

    /// Signs the current head of the chain with the audit ring's active key and appends the
    /// checkpoint. Replicas checkpointing at once only add a redundant checkpoint.
    pub async fn checkpoint_audit(&self) -> Result<(), RingError> {
        self.ensure_audit_ring().await?;
        let ring = self.signing_ring(AUDIT_RING)?;
        let signer = ring.signer.as_ref().expect("a signing ring has a signer");
        let head = self.store.audit_head().await?;
        let now = now_ms();
        let payload = json!({"iss": "signet-audit", "seq": head.seq, "hash": head.hash, "iat": now.as_secs()});
        let signing_input = format!(
            "{}.{}",
            signer.header,
            jose::b64url(payload.to_string().as_bytes())
        );
        let signature = signer
            .provider
            .sign(&signer.reference, signer.alg, signing_input.as_bytes())
            .await
            .map_err(provider_error(signer.provider.name()))?;
        let jws = format!("{signing_input}.{}", jose::b64url(&signature));
        self.audit
            .record(AuditRecord::of_ring(
                now,
                SCHEDULER,
                &ring.record.name,
                Some(&signer.kid),
                AuditEvent::AuditCheckpoint {
                    upto_seq: head.seq,
                    upto_hash: head.hash,
                    jws,
                },
            ))
            .await?;
        Ok(())
    }
}
