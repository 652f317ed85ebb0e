//! The key backends this server has, chosen by each ring's `backend`.

use std::collections::HashMap;
use std::sync::Arc;

use signet_core::KeyProvider;

use crate::domain::BackendKind;

/// The configured providers.
#[derive(Clone, Default)]
pub struct Providers {
    by_kind: HashMap<BackendKind, Arc<dyn KeyProvider>>,
}

impl Providers {
    pub fn with(mut self, kind: BackendKind, provider: Arc<dyn KeyProvider>) -> Providers {
        self.by_kind.insert(kind, provider);
        self
    }

    /// The provider for `kind`, or `None` when this server has none configured.
    pub fn get(&self, kind: BackendKind) -> Option<&Arc<dyn KeyProvider>> {
        self.by_kind.get(&kind)
    }

    /// Every configured backend with its provider.
    pub fn iter(&self) -> impl Iterator<Item = (BackendKind, &Arc<dyn KeyProvider>)> {
        self.by_kind
            .iter()
            .map(|(kind, provider)| (*kind, provider))
    }

    /// Closes every backend ([`KeyProvider::close`]): after the last request, before exit.
    pub async fn close(&self) {
        for provider in self.by_kind.values() {
            provider.close().await;
        }
    }
}
