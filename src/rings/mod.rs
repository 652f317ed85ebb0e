//! Key rings: creating them, signing with their active key under their policy, rotating and
//! revoking keys, and advancing each key through its lifecycle (docs/design.md, Key lifecycle).
//!
//! Data flows one way: HTTP handlers and the CLI call this service; it calls the store, the key
//! providers and the audit log. A key is created in three steps so that a crash at any point is
//! recoverable: an intent record (`pending`) commits first, then the backend generates the key
//! tied to the record's id, then the record is completed. A pending record left behind by a crash
//! is reconciled by [`RingService::advance`]: adopted if the backend has the key, dropped if not.

mod checkpoint;
mod create;
mod decryption;
mod keys;
mod readiness;
mod revocation;
mod rotation;
mod scheduling;
mod signing;
mod tick;
mod view;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use signet_core::ProviderError;

pub use create::NewRing;
pub use decryption::Opened;
pub use readiness::Readiness;
pub use revocation::Revocation;
pub use signing::{EncryptTo, RawSignature, SignRequest, SignedToken};
pub use view::{CombinedTooLarge, Jwks, RingView, View, COMBINED_JWKS_MAX_KEYS};

use crate::audit::verify::TrustAnchor;
use crate::audit::AuditLog;
use crate::clock::now_ms;
use crate::domain::{
    AuditEvent, AuditRecord, BackendKind, ErrorCode, KeyRecord, Kid, RingName, RingRecord,
    ScheduleRecord, Violation, AUDIT_RING,
};
use crate::metrics::Metrics;
use crate::providers::Providers;
use crate::store::{Store, StoreError};
use crate::tasks::Health;

/// Who acts, as written in the audit log: `client:<name>`, `cli` or `scheduler`.
pub type Actor = str;

pub const SCHEDULER: &Actor = "scheduler";

/// More changed rings than this in one reload rebuild the whole view (one read of every ring
/// instead of two per changed ring).
const REBUILD_ABOVE_CHANGES: usize = 256;

/// The lifecycle tick's name in the log and in `/readyz`.
pub const LIFECYCLE: &str = "lifecycle tick";

#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    DuplicateMember(String),
    #[error("no ring named {0:?}")]
    RingNotFound(String),
    #[error("no key with kid {0:?}")]
    KeyNotFound(String),
    #[error("a ring named {0:?} already exists")]
    RingExists(String),
    #[error("{message}")]
    Conflict { code: ErrorCode, message: String },
    #[error("{}", .0.message)]
    Policy(Violation),
    #[error("ring {0:?} has no active key; rotate it to make one")]
    NoActiveKey(String),
    #[error("the {0} backend is not configured on this server")]
    BackendNotConfigured(BackendKind),
    #[error("the {backend} backend: {error}")]
    Provider {
        backend: &'static str,
        error: ProviderError,
    },
    #[error("the stored schedule of these rings cannot be read: {0:?}")]
    UnreadableSchedules(Vec<String>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A request for what the ring's keys are not for: `what` says what the ring does instead.
fn wrong_use(ring: &str, what: &str) -> RingError {
    RingError::Conflict {
        code: ErrorCode::WrongRingUse,
        message: format!("ring {ring:?} {what}"),
    }
}

fn provider_error(backend: &'static str) -> impl Fn(ProviderError) -> RingError {
    move |error| RingError::Provider { backend, error }
}

pub struct RingService {
    store: Store,
    providers: Providers,
    audit: AuditLog,
    health: Arc<Health>,
    /// The audit-ring keys published when this process started, and those it made itself: the
    /// trust anchor of `GET /v1/audit/verify` (`crate::audit::verify`).
    audit_keys_seen: Arc<RwLock<TrustAnchor>>,
    view: RwLock<Arc<View>>,
    /// Held by the reload under way.
    reloading: tokio::sync::Mutex<()>,
    reloads: AtomicU64,
    metrics: Arc<Metrics>,
}

impl RingService {
    /// Builds the service and its first view of the store.
    pub(crate) async fn new(
        store: Store,
        providers: Providers,
        audit: AuditLog,
        health: Arc<Health>,
        audit_keys_seen: Arc<RwLock<TrustAnchor>>,
        metrics: Arc<Metrics>,
    ) -> Result<RingService, RingError> {
        let service = RingService {
            store,
            providers,
            audit,
            health,
            audit_keys_seen,
            view: RwLock::new(Arc::new(View::default())),
            reloading: tokio::sync::Mutex::new(()),
            reloads: AtomicU64::new(0),
            metrics,
        };
        // The audit keys published when the process starts anchor the chain; later ones are
        // trusted through it (`crate::audit::verify`), or because this process made them.
        let view = service.build_all().await?;
        if let Some(audit_ring) = view.rings.get(AUDIT_RING) {
            service.trust_audit_keys(audit_ring.published.iter().map(|(_, jwk)| jwk));
        }
        *service.view.write().expect("view lock poisoned") = Arc::new(view);
        Ok(service)
    }

    /// The background tasks' health (the tick's, the audit writer's).
    pub(crate) fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// Every ring, with the kid of its signing key (as this replica's view has it).
    pub(crate) async fn rings(&self) -> Result<Vec<(RingRecord, Option<Kid>)>, RingError> {
        let view = self.view();
        Ok(self
            .store
            .rings()
            .await?
            .into_iter()
            .map(|ring| {
                let active = view
                    .rings
                    .get(ring.name.as_str())
                    .and_then(|v| v.signer.as_ref())
                    .map(|s| s.kid.clone());
                (ring, active)
            })
            .collect())
    }

    /// The ring `name` and every key it has had.
    pub(crate) async fn ring(
        &self,
        name: &RingName,
    ) -> Result<(RingRecord, Vec<KeyRecord>), RingError> {
        let ring = self.ring_record(name).await?;
        Ok((ring, self.store.keys_of_ring(name).await?))
    }

    /// Lists the ring in the combined `/.well-known/jwks.json`, or takes it out.
    pub(crate) async fn set_combined_jwks(
        &self,
        actor: &Actor,
        name: &RingName,
        combined_jwks: bool,
    ) -> Result<(RingRecord, Vec<KeyRecord>), RingError> {
        let now = now_ms();
        let record = AuditRecord::of_ring(
            now,
            actor,
            name,
            None,
            AuditEvent::RingChanged { combined_jwks },
        );
        if !self
            .store
            .set_combined_jwks(name, combined_jwks, now, &record)
            .await?
        {
            return Err(RingError::RingNotFound(name.to_string()));
        }
        self.refresh().await;
        self.ring(name).await
    }

    /// One lifecycle tick ([`RingService::advance`]), its outcome reported as the health of the
    /// [`LIFECYCLE`] task.
    pub(crate) async fn tick(&self) {
        match self.advance().await {
            Ok(()) => self.health.ok(LIFECYCLE),
            Err(e) => {
                tracing::warn!(error = %e, "lifecycle tick failed");
                self.health.failed(LIFECYCLE, e.to_string());
            }
        }
    }

    /// Closes the key backends (waiting for their calls in flight) and the store. Call it once,
    /// after the last request and tick: every backend call after it fails.
    pub async fn close(&self) {
        self.providers.close().await;
        self.store.close().await;
    }

    /// The metrics in the Prometheus text format, with the gauges of every ring's keys and
    /// next scheduled rotation as they are now.
    pub(crate) async fn render_metrics(&self) -> Result<String, RingError> {
        let keys = self.store.live_keys().await?;
        let now = now_ms();
        let next_rotations: Vec<(String, f64)> = self
            .view()
            .rings
            .values()
            .filter_map(|ring| match ring.scheduled {
                view::Scheduled::At(at) => Some((
                    ring.record.name.to_string(),
                    at.ms_since(now) as f64 / 1000.0,
                )),
                view::Scheduled::Idle | view::Scheduled::Unreadable => None,
            })
            .collect();
        Ok(self.metrics.render(&keys, &next_rotations))
    }

    /// The current view (cheap: an `Arc` clone).
    pub fn view(&self) -> Arc<View> {
        self.view.read().expect("view lock poisoned").clone()
    }

    /// How many reloads have completed: one that completes after a change committed has it.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::SeqCst)
    }

    /// Brings the view up to date with the store: reads what changed since the view's revision
    /// and rebuilds the changed rings' views alone. Reloads (the tick's, and the one after each
    /// change) run one at a time, each from the view the previous one installed; a burst of
    /// changes rebuilds the whole view.
    pub(crate) async fn reload(&self) -> Result<(), RingError> {
        let _one_at_a_time = self.reloading.lock().await;
        let current = self.view();
        let changes = self.store.ring_changes(current.revision).await?;
        if changes.revision > current.revision {
            let view = if changes.rings.len() > REBUILD_ABOVE_CHANGES {
                self.build_all().await?
            } else {
                let mut views = Vec::with_capacity(changes.rings.len());
                for record in changes.rings {
                    views.push(self.build_ring(record).await?);
                }
                current.with(&changes.removed, views, changes.revision)
            };
            *self.view.write().expect("view lock poisoned") = Arc::new(view);
        }
        self.reloads.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// The view of every ring, read from the store.
    async fn build_all(&self) -> Result<View, RingError> {
        let (rings, revision) = self.store.rings_and_revision().await?;
        let mut keys: HashMap<String, Vec<KeyRecord>> = HashMap::new();
        for key in self.store.live_keys().await? {
            keys.entry(key.ring.to_string()).or_default().push(key);
        }
        let mut schedules = self.store.schedules().await?;
        let views = rings
            .into_iter()
            .map(|record| {
                let schedule = match schedules.remove(record.name.as_str()) {
                    None => Ok(ScheduleRecord::default()),
                    Some(schedule) => schedule.map_err(|e| e.to_string()),
                };
                let ring_keys = keys.remove(record.name.as_str()).unwrap_or_default();
                RingView::build(record, &ring_keys, schedule, &self.providers)
            })
            .collect();
        Ok(View::default().with(&[], views, revision))
    }

    /// The view of one ring, read from the store.
    async fn build_ring(&self, record: RingRecord) -> Result<RingView, RingError> {
        let keys = self.store.live_keys_of_ring(&record.name).await?;
        let schedule = match self.store.schedule(&record.name).await {
            Ok(schedule) => Ok(schedule),
            Err(StoreError::Unreadable(e)) => Err(e),
            Err(e) => return Err(e.into()),
        };
        Ok(RingView::build(record, &keys, schedule, &self.providers))
    }

    fn trust_audit_keys<'a>(&self, jwks: impl Iterator<Item = &'a serde_json::Value>) {
        let mut seen = self
            .audit_keys_seen
            .write()
            .expect("audit keys lock poisoned");
        for jwk in jwks {
            seen.add(jwk);
        }
    }

    /// Reloads after a change that has committed; a failure here only delays the view until the
    /// next tick, so it is logged rather than turned into an error for a change that happened.
    async fn refresh(&self) {
        if let Err(e) = self.reload().await {
            tracing::warn!(error = %e, "could not refresh the ring view; the next tick will");
        }
    }

    fn provider_for(
        &self,
        kind: BackendKind,
    ) -> Result<&Arc<dyn signet_core::KeyProvider>, RingError> {
        self.providers
            .get(kind)
            .ok_or(RingError::BackendNotConfigured(kind))
    }

    async fn ring_record(&self, name: &str) -> Result<RingRecord, RingError> {
        self.store
            .ring(name)
            .await?
            .ok_or_else(|| RingError::RingNotFound(name.to_owned()))
    }
}
