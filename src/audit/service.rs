//! What auditors ask of the audit log, and the one way records that are not about rings enter
//! it (denied requests): the only door to the log for the HTTP layer and the CLI.

use serde::Serialize;

use super::tally::{Refusal, RefusalTally};
use std::sync::{Arc, RwLock};

use super::verify::{verify_chain, TrustAnchor, VerifyReport};
use super::AuditLog;
use crate::api::AuditEntry;
use crate::domain::{AuditQuery, AuditRecord, KeyState, Kid, RingName, UnixMillis};
use crate::store::{Store, StoreError};

/// Why an auditor's question has no answer.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("no ring named {:?}", .0.as_str())]
    RingNotFound(RingName),
    #[error("no key with kid {:?}", .0.as_str())]
    KeyNotFound(Kid),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct AuditService {
    store: Store,
    log: AuditLog,
    refusals: RefusalTally,
    /// The audit-ring keys this process has seen published (kept current by the ring service).
    audit_keys_seen: Arc<RwLock<TrustAnchor>>,
}

/// One page of records, and the cursor of the next page (`None` on the last).
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub records: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

/// `GET /v1/keys/{kid}/history`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyHistory {
    pub kid: Option<Kid>,
    pub ring: RingName,
    pub state: KeyState,
    #[serde(flatten)]
    pub page: AuditPage,
}

/// `GET /v1/rings/{ring}/history`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RingHistory {
    pub ring: RingName,
    #[serde(flatten)]
    pub page: AuditPage,
}

impl AuditService {
    pub fn new(
        store: Store,
        log: AuditLog,
        audit_keys_seen: Arc<RwLock<TrustAnchor>>,
    ) -> AuditService {
        AuditService {
            store,
            log,
            refusals: RefusalTally::default(),
            audit_keys_seen,
        }
    }

    /// The records `query` asks for, `query.limit` at a time.
    pub async fn page(&self, query: AuditQuery) -> Result<AuditPage, StoreError> {
        let limit = query.limit as usize;
        // One more than asked for tells whether there is a next page.
        let records = self
            .store
            .audit_records(&AuditQuery {
                limit: query.limit + 1,
                ..query
            })
            .await?;
        let more = records.len() > limit;
        let records = &records[..records.len().min(limit)];
        Ok(AuditPage {
            next_cursor: records.last().filter(|_| more).map(|r| r.seq.to_string()),
            records: records.iter().map(AuditEntry::from).collect(),
        })
    }

    /// The lifecycle events of the key `kid` (its signatures are in the log under `sign`).
    pub async fn key_history(&self, kid: &Kid, page: AuditQuery) -> Result<KeyHistory, AuditError> {
        let key = self
            .store
            .key_by_kid(kid)
            .await?
            .ok_or_else(|| AuditError::KeyNotFound(kid.clone()))?;
        let page = self
            .page(AuditQuery {
                kid: key.kid.as_ref().map(ToString::to_string),
                events_only: true,
                ..page
            })
            .await?;
        Ok(KeyHistory {
            kid: key.kid,
            ring: key.ring,
            state: key.state,
            page,
        })
    }

    /// The creation, rotations and key events of the ring `ring`.
    pub async fn ring_history(
        &self,
        ring: &RingName,
        page: AuditQuery,
    ) -> Result<RingHistory, AuditError> {
        if self.store.ring(ring).await?.is_none() {
            return Err(AuditError::RingNotFound(ring.clone()));
        }
        let page = self
            .page(AuditQuery {
                ring: Some(ring.to_string()),
                events_only: true,
                ..page
            })
            .await?;
        Ok(RingHistory {
            ring: ring.clone(),
            page,
        })
    }

    /// Walks the chain from `from` (default: its start), anchored to the audit keys this process
    /// has seen since it started: see [`verify_chain`].
    pub async fn verify(&self, from: Option<i64>) -> Result<VerifyReport, StoreError> {
        let anchor = self
            .audit_keys_seen
            .read()
            .expect("audit keys lock poisoned")
            .clone();
        verify_chain(&self.store, from, Some(&anchor)).await
    }

    /// Records a request refused to an authenticated client (401, 403, 422). A failure is
    /// logged, not returned: the refusal stands either way.
    pub async fn record_denial(&self, record: AuditRecord) {
        if let Err(e) = self.log.record(record).await {
            tracing::error!(error = %e, "a denied request was not recorded");
        }
    }

    /// Counts a request refused without authentication, or over a rate limit: recorded in
    /// aggregate when its minute ends ([`RefusalTally`]).
    pub fn count_refusal(&self, refusal: Refusal) {
        self.refusals.count(refusal);
    }

    /// Closes the audit writer's connections: after the last record (`Services::close`).
    pub async fn close(&self) {
        self.log.close().await;
    }

    /// Writes the tallies whose minute has ended by `now`; every tally when `now` is `None`
    /// (when the server stops).
    pub async fn write_tallies(&self, now: Option<UnixMillis>) {
        for record in self.refusals.take_ended(now) {
            if let Err(e) = self.log.record(record).await {
                tracing::error!(error = %e, "a tally of refused requests was not recorded");
            }
        }
    }
}
