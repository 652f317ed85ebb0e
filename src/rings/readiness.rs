//! Whether this replica can serve: the store answers, every configured backend answers, and no
//! background task is failing, and it is not shutting down (`GET /readyz`).

use signet_core::KeyId;

use super::RingService;
use crate::domain::BackendKind;

pub struct Readiness {
    pub database: bool,
    /// Every configured backend, and whether it answered.
    pub backends: Vec<(BackendKind, bool)>,
    /// The names of the background tasks failing now.
    pub failing_tasks: Vec<&'static str>,
    /// The server has begun to shut down (SIGTERM or SIGINT).
    pub shutting_down: bool,
}

impl Readiness {
    pub(crate) fn is_ready(&self) -> bool {
        self.database
            && self.backends.iter().all(|(_, ok)| *ok)
            && self.failing_tasks.is_empty()
            && !self.shutting_down
    }
}

impl RingService {
    /// Probes the store and each backend (a `locate` of a key that does not exist).
    pub(crate) async fn readiness(&self) -> Readiness {
        let database = match self.store.ping().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "not ready: store");
                false
            }
        };
        let mut backends = Vec::new();
        for (kind, provider) in self.providers.iter() {
            let probe = provider.locate(&KeyId("readiness-probe".into())).await;
            if let Err(e) = &probe {
                tracing::warn!(backend = provider.name(), error = %e, "not ready: backend");
            }
            backends.push((kind, probe.is_ok()));
        }
        Readiness {
            database,
            backends,
            failing_tasks: self.health.failing(),
            shutting_down: self.health.shutting_down(),
        }
    }
}
