//! The key backends this server has, chosen by each ring's `backend`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use signet_core::KeyProvider;

/// Every backend signet knows. A ring asking for one this server has not configured (no PKCS#11
/// token set up, say) is refused as not configured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    #[default]
    File,
    Pkcs11,
    AwsKms,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::File => "file",
            BackendKind::Pkcs11 => "pkcs11",
            BackendKind::AwsKms => "aws-kms",
        }
    }

    pub fn parse(s: &str) -> Option<BackendKind> {
        [BackendKind::File, BackendKind::Pkcs11, BackendKind::AwsKms]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
