//! The services, the only doors to the store, the key backends and the audit log: the HTTP
//! handlers and the CLI call these and render what they return (docs/design.md, Layers).

use std::sync::Arc;

use crate::audit::AuditService;
use crate::auth::ClientService;
use crate::metrics::Metrics;
use crate::rings::RingService;
use crate::tokens::TokenService;

pub struct Services {
    /// Rings and keys: creation, signing, rotation, revocation, schedules, the lifecycle tick.
    pub rings: Arc<RingService>,
    /// Signed tokens: verification, revocation, introspection.
    pub tokens: TokenService,
    /// API clients and the authentication of their tokens.
    pub clients: ClientService,
    /// The audit log for auditors, and the records of denied requests.
    pub audit: AuditService,
    /// What `GET /metrics` renders; the services above count into it too.
    pub metrics: Arc<Metrics>,
}

impl Services {
    /// Writes the open tallies of refused requests, then closes the backends, the store and the
    /// audit writer's connections: after the last request and tick, before exit.
    pub async fn close(&self) {
        self.audit.write_tallies(None).await;
        self.rings.close().await;
        self.audit.close().await;
    }
}
