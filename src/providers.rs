//! The key backends this server has, chosen by each ring's `backend`; every call to one is
//! timed and counted in the metrics ([`Measured`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use signet_core::{
    Algorithm, GeneratedKey, KeyId, KeyProvider, KeyRef, KeySpec, KeyUse, OaepHash, ProviderError,
    PublicKey, Zeroizing,
};

use crate::domain::BackendKind;
use crate::metrics::Metrics;

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

    /// The same providers, each call timed and counted in `metrics`.
    pub fn measured(self, metrics: &Arc<Metrics>) -> Providers {
        Providers {
            by_kind: self
                .by_kind
                .into_iter()
                .map(|(kind, inner)| {
                    let measured: Arc<dyn KeyProvider> = Arc::new(Measured {
                        inner,
                        kind,
                        metrics: metrics.clone(),
                    });
                    (kind, measured)
                })
                .collect(),
        }
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

/// A provider whose calls are timed and counted (`signet_backend_call_seconds`,
/// `signet_backend_errors_total`), by backend and operation.
struct Measured {
    inner: Arc<dyn KeyProvider>,
    kind: BackendKind,
    metrics: Arc<Metrics>,
}

impl Measured {
    async fn time<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        let started = Instant::now();
        let result = call.await;
        self.metrics
            .backend_call(self.kind, operation, started.elapsed(), result.is_ok());
        result
    }
}

#[async_trait]
impl KeyProvider for Measured {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn generate(
        &self,
        id: &KeyId,
        spec: KeySpec,
        usage: KeyUse,
    ) -> Result<GeneratedKey, ProviderError> {
        self.time("generate", self.inner.generate(id, spec, usage))
            .await
    }

    async fn locate(&self, id: &KeyId) -> Result<Option<KeyRef>, ProviderError> {
        self.time("locate", self.inner.locate(id)).await
    }

    async fn inventory(&self) -> Result<Vec<KeyId>, ProviderError> {
        self.time("inventory", self.inner.inventory()).await
    }

    async fn public_key(&self, reference: &KeyRef) -> Result<PublicKey, ProviderError> {
        self.time("public_key", self.inner.public_key(reference))
            .await
    }

    async fn sign(
        &self,
        reference: &KeyRef,
        alg: Algorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, ProviderError> {
        self.time("sign", self.inner.sign(reference, alg, message))
            .await
    }

    async fn decrypt(
        &self,
        reference: &KeyRef,
        hash: OaepHash,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        self.time("decrypt", self.inner.decrypt(reference, hash, ciphertext))
            .await
    }

    async fn agree(
        &self,
        reference: &KeyRef,
        peer: &PublicKey,
    ) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        self.time("agree", self.inner.agree(reference, peer)).await
    }

    async fn destroy(&self, reference: &KeyRef) -> Result<Option<i64>, ProviderError> {
        self.time("destroy", self.inner.destroy(reference)).await
    }

    async fn annotate(
        &self,
        id: &KeyId,
        reference: &KeyRef,
        ring: &str,
        active: bool,
    ) -> Result<(), ProviderError> {
        self.time("annotate", self.inner.annotate(id, reference, ring, active))
            .await
    }

    async fn close(&self) {
        self.inner.close().await;
    }
}
