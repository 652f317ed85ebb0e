//! signet's embedded key backend: key pairs generated in-process with aws-lc-rs, each private key
//! sealed at rest with AES-256-GCM under a key-encryption key (KEK).
//!
//! Layout of the store directory:
//! - `store.json`: how the KEK is obtained (a configured 32-byte key, a passphrase through
//!   Argon2id with the salt kept here, or the generated `master.key`) and a sealed check value,
//!   so a wrong or missing KEK fails at start instead of creating a second store over the first.
//! - `master.key`: only for the quick start with nothing configured (0600, a warning is logged).
//! - `keys/<id>.key`: one sealed PKCS#8 private key per file, 0600, written atomically.
//!
//! Decrypted private keys live only inside aws-lc-rs key objects (freed and wiped by AWS-LC) and
//! transiently in zeroizing buffers; no error or log line carries key material.

mod fault;
mod kek;
mod keypair;
mod sealed;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use signet_core::{
    Algorithm, GeneratedKey, KeyId, KeyProvider, KeyRef, KeySpec, KeyUse, OaepHash, ProviderError,
    PublicKey, Zeroizing,
};

use fault::Fault;
pub use kek::{KekError, KekSource};
use keypair::LoadedKey;
use sealed::KeyStore;

const REFERENCE_PREFIX: &str = "file:";

/// What the file backend needs to open its store.
pub struct FileConfig {
    /// The store directory (created if missing).
    pub dir: PathBuf,
    /// Where the key-encryption key comes from; `None` means the quick start's `master.key`.
    pub kek: Option<KekSource>,
}

/// The file backend.
pub struct FileProvider {
    store: Arc<KeyStore>,
    loaded: RwLock<HashMap<String, Arc<LoadedKey>>>,
}

impl FileProvider {
    /// Opens (or, when the directory holds no store yet, creates) the store at `config.dir`.
    /// Runs Argon2id when a passphrase is configured, so call it off the async executor or
    /// accept a short block at start-up.
    pub fn open(config: FileConfig) -> Result<FileProvider, KekError> {
        let kek = kek::open_store(&config.dir, config.kek)?;
        Ok(FileProvider {
            store: Arc::new(KeyStore::new(config.dir.join("keys"), kek)),
            loaded: RwLock::new(HashMap::new()),
        })
    }

    async fn load(&self, reference: &KeyRef) -> Result<Arc<LoadedKey>, ProviderError> {
        let id = parse_reference(reference)?;
        if let Some(key) = self.loaded.read().expect("key cache poisoned").get(id) {
            return Ok(key.clone());
        }
        let store = self.store.clone();
        let owned_id = id.to_owned();
        let key = blocking(move || {
            let (spec, usage, pkcs8) = store.read(&owned_id)?;
            LoadedKey::from_pkcs8(spec, usage, &pkcs8)
        })
        .await?;
        let key = Arc::new(key);
        self.loaded
            .write()
            .expect("key cache poisoned")
            .insert(id.to_owned(), key.clone());
        Ok(key)
    }
}

#[async_trait]
impl KeyProvider for FileProvider {
    fn name(&self) -> &'static str {
        "file"
    }

    async fn generate(
        &self,
        id: &KeyId,
        spec: KeySpec,
        usage: KeyUse,
    ) -> Result<GeneratedKey, ProviderError> {
        sealed::check_id(&id.0)?;
        let store = self.store.clone();
        let owned_id = id.0.clone();
        let key = blocking(move || {
            let (key, pkcs8) = LoadedKey::generate(spec, usage)?;
            store.write(&owned_id, spec, usage, &pkcs8)?;
            Ok(key)
        })
        .await?;
        let public_key = key.public_key();
        self.loaded
            .write()
            .expect("key cache poisoned")
            .insert(id.0.clone(), Arc::new(key));
        Ok(GeneratedKey {
            reference: KeyRef(format!("{REFERENCE_PREFIX}{}", id.0)),
            public_key,
        })
    }

    async fn locate(&self, id: &KeyId) -> Result<Option<KeyRef>, ProviderError> {
        sealed::check_id(&id.0)?;
        let store = self.store.clone();
        let owned_id = id.0.clone();
        let exists = blocking(move || store.exists(&owned_id)).await?;
        Ok(exists.then(|| KeyRef(format!("{REFERENCE_PREFIX}{}", id.0))))
    }

    async fn inventory(&self) -> Result<Vec<KeyId>, ProviderError> {
        let store = self.store.clone();
        let ids = blocking(move || store.ids()).await?;
        Ok(ids.into_iter().map(KeyId).collect())
    }

    async fn public_key(&self, reference: &KeyRef) -> Result<PublicKey, ProviderError> {
        Ok(self.load(reference).await?.public_key())
    }

    async fn sign(
        &self,
        reference: &KeyRef,
        alg: Algorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, ProviderError> {
        let key = self.load(reference).await?;
        if key.is_slow() {
            // RSA private-key operations take milliseconds: keep them off the executor.
            let message = message.to_vec();
            blocking(move || key.sign(alg, &message)).await
        } else {
            Ok(key.sign(alg, message)?)
        }
    }

    async fn decrypt(
        &self,
        reference: &KeyRef,
        hash: OaepHash,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        let key = self.load(reference).await?;
        let ciphertext = ciphertext.to_vec();
        // RSA private-key operations take milliseconds: keep them off the executor.
        blocking(move || key.decrypt(hash, &ciphertext)).await
    }

    async fn agree(
        &self,
        reference: &KeyRef,
        peer: &PublicKey,
    ) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        Ok(self.load(reference).await?.agree(peer)?)
    }

    async fn destroy(&self, reference: &KeyRef) -> Result<Option<i64>, ProviderError> {
        let id = parse_reference(reference)?.to_owned();
        self.loaded.write().expect("key cache poisoned").remove(&id);
        let store = self.store.clone();
        blocking(move || store.remove(&id)).await?;
        Ok(None)
    }
}

fn parse_reference(reference: &KeyRef) -> Result<&str, Fault> {
    let id = reference
        .0
        .strip_prefix(REFERENCE_PREFIX)
        .ok_or_else(|| Fault::BadId(reference.0.clone()))?;
    sealed::check_id(id)?;
    Ok(id)
}

/// Runs file and crypto work on a blocking thread, mapping its faults to the trait's errors.
async fn blocking<T, F>(f: F) -> Result<T, ProviderError>
where
    F: FnOnce() -> Result<T, Fault> + Send + 'static,
    T: Send + 'static,
{
    // The caller's span (its request id) goes with the work onto the blocking thread.
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| Fault::TaskFailed(e.to_string()))?
        .map_err(ProviderError::from)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod wycheproof_tests;
