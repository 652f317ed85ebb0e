//! signet's PKCS#11 backend: key pairs generated on an HSM token (SoftHSM2 in tests; Luna,
//! nShield, CloudHSM or YubiHSM in production), used there and never extractable.
//!
//! - The module is loaded and initialised once per process while a provider uses it, and
//!   finalized once the last provider has closed ([`module`], [`KeyProvider::close`]); the
//!   token is found by its label, never by slot number (SoftHSM renumbers slots).
//! - A pool of long-lived logged-in sessions ([`pool`]) serves calls on blocking threads; object
//!   handles are cached per key, since finding an object before each signature costs ~100x once
//!   a token holds hundreds of keys.
//! - Objects are labelled `signet:<key id>` ([`objects`]), so `locate` finds a key generated
//!   before a crash, and [`KeyProvider::inventory`] lists every key signet made on the token.
//! - A key does one thing: sign, or, for an encryption key ([`encryption`]), decrypt with
//!   RSA-OAEP or agree with ECDH, each held to that one mechanism on the token
//!   (`CKA_ALLOWED_MECHANISMS`). An ECDH secret is derived into a session object that is read
//!   and destroyed at once. SoftHSM 2.6.1 decrypts RSA-OAEP with SHA-1 only: SHA-256 is
//!   `Unsupported` there.
//!
//! References have the form `pkcs11:token=<label>;object=signet:<key id>` (RFC 7512).

mod encryption;
mod fault;
mod module;
mod objects;
mod pool;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use cryptoki::error::{Error, RvError};
use secrecy::SecretString;
use signet_core::{
    Algorithm, GeneratedKey, KeyId, KeyProvider, KeyRef, KeySpec, KeyUse, OaepHash, ProviderError,
    PublicKey, Zeroizing,
};

use fault::Fault;
use module::Module;
use objects::KeyObject;
use pool::Pool;

/// Where the token is and how to log in to it.
pub struct Pkcs11Config {
    /// The PKCS#11 module (shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The label of the token to use.
    pub token_label: String,
    /// The user PIN.
    pub pin: SecretString,
    /// Sessions kept open; defaults to the number of CPUs.
    pub pool_size: Option<usize>,
}

/// Why the backend could not start; the variant says which setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot load the PKCS#11 module {path}: {reason}")]
    Module { path: PathBuf, reason: String },
    #[error("no token labelled {label:?} in {module} (tokens present: {present})")]
    NoToken {
        label: String,
        module: PathBuf,
        present: String,
    },
    #[error("token {label:?} refused the user PIN ({reason})")]
    Pin { label: String, reason: String },
    #[error("PKCS#11 module {module}: {reason}")]
    Call { module: PathBuf, reason: String },
}

/// The PKCS#11 backend.
pub struct Pkcs11Provider {
    token_label: String,
    pool: Arc<Pool>,
    keys: Arc<RwLock<HashMap<String, KeyObject>>>,
}

impl Pkcs11Provider {
    /// Loads the module, finds the token and logs in. Blocks (PKCS#11 is synchronous): call it
    /// off the async executor.
    pub fn open(config: Pkcs11Config) -> Result<Pkcs11Provider, OpenError> {
        let module_path = config.module.clone();
        let call = |reason: Error| OpenError::Call {
            module: module_path.clone(),
            reason: fault::describe(&reason),
        };
        let module = Module::load(&config.module).map_err(|e| OpenError::Module {
            path: config.module.clone(),
            reason: fault::describe(&e),
        })?;
        let mut present = Vec::new();
        let mut slot = None;
        // SoftHSM 2.6.1 fails C_GetTokenInfo with CKR_GENERAL_ERROR, as it fails object
        // changes, when another thread changes the token's objects meanwhile (a CI run saw it):
        // the token is read while no object changes (`objects::changing_objects`).
        let token_steady = objects::changing_objects();
        for candidate in module
            .context
            .get_slots_with_initialized_token()
            .map_err(call)?
        {
            let info = module.context.get_token_info(candidate).map_err(call)?;
            if info.label() == config.token_label {
                slot = Some(candidate);
                break;
            }
            present.push(format!("{:?}", info.label()));
        }
        drop(token_steady);
        let slot = slot.ok_or_else(|| OpenError::NoToken {
            label: config.token_label.clone(),
            module: config.module.clone(),
            present: if present.is_empty() {
                "none".into()
            } else {
                present.join(", ")
            },
        })?;
        let size = config.pool_size.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
        });
        let pool = Pool::open(module, slot, config.pin, size).map_err(|e| match e {
            Error::Pkcs11(
                RvError::PinIncorrect
                | RvError::PinInvalid
                | RvError::PinLenRange
                | RvError::PinLocked
                | RvError::PinExpired,
                _,
            ) => OpenError::Pin {
                label: config.token_label.clone(),
                reason: fault::describe(&e),
            },
            e => call(e),
        })?;
        Ok(Pkcs11Provider {
            token_label: config.token_label,
            pool: Arc::new(pool),
            keys: Arc::default(),
        })
    }

    fn reference(&self, id: &str) -> KeyRef {
        KeyRef(format!(
            "pkcs11:token={};object={}{id}",
            percent_encode(&self.token_label),
            objects::LABEL_PREFIX
        ))
    }

    fn key_id<'a>(&self, reference: &'a KeyRef) -> Result<&'a str, Fault> {
        let bad = || Fault::BadReference(reference.0.clone());
        let rest = reference.0.strip_prefix("pkcs11:token=").ok_or_else(bad)?;
        let (token, object) = rest.split_once(';').ok_or_else(bad)?;
        if token != percent_encode(&self.token_label) {
            return Err(bad());
        }
        object
            .strip_prefix("object=")
            .and_then(|o| o.strip_prefix(objects::LABEL_PREFIX))
            .filter(|id| !id.is_empty())
            .ok_or_else(bad)
    }

    /// Runs `op` with a pooled session on a blocking thread; handles cached for `op` are
    /// forgotten if the session went stale.
    async fn call<T: Send + 'static>(
        &self,
        op: impl Fn(&cryptoki::session::Session, &RwLock<HashMap<String, KeyObject>>) -> Result<T, Fault>
            + Send
            + 'static,
    ) -> Result<T, ProviderError> {
        let pool = self.pool.clone();
        let keys = self.keys.clone();
        // The caller's span (its request id) goes with the work onto the blocking thread.
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                pool.run(
                    |session| op(session, &keys),
                    || keys.write().expect("key cache poisoned").clear(),
                )
            })
        })
        .await
        .map_err(|e| Fault::TaskFailed(e.to_string()))?
        .map_err(ProviderError::from)
    }
}

/// The cached handles of `id`, looked up on the token the first time.
fn cached(
    session: &cryptoki::session::Session,
    keys: &RwLock<HashMap<String, KeyObject>>,
    id: &str,
) -> Result<KeyObject, Fault> {
    if let Some(key) = keys.read().expect("key cache poisoned").get(id) {
        return Ok(*key);
    }
    let key = objects::find(session, id)?;
    keys.write()
        .expect("key cache poisoned")
        .insert(id.to_owned(), key);
    Ok(key)
}

#[async_trait]
impl KeyProvider for Pkcs11Provider {
    fn name(&self) -> &'static str {
        "pkcs11"
    }

    async fn generate(
        &self,
        id: &KeyId,
        spec: KeySpec,
        usage: KeyUse,
    ) -> Result<GeneratedKey, ProviderError> {
        if !usage.accepts(spec) {
            return Err(Fault::WrongUse {
                spec,
                usage,
                operation: "be made",
            }
            .into());
        }
        let owned = id.0.clone();
        let (key, public_key) = self
            .call(move |session, _| {
                if objects::exists(session, &owned)? {
                    return Err(Fault::Unrecognised(format!(
                        "the token already holds a key labelled for {owned}"
                    )));
                }
                let key = objects::generate(session, &owned, spec, usage)?;
                Ok((key, objects::public_key(session, &key)?))
            })
            .await?;
        self.keys
            .write()
            .expect("key cache poisoned")
            .insert(id.0.clone(), key);
        Ok(GeneratedKey {
            reference: self.reference(&id.0),
            public_key,
        })
    }

    async fn locate(&self, id: &KeyId) -> Result<Option<KeyRef>, ProviderError> {
        let owned = id.0.clone();
        let exists = self
            .call(move |session, _| objects::exists(session, &owned))
            .await?;
        Ok(exists.then(|| self.reference(&id.0)))
    }

    async fn inventory(&self) -> Result<Vec<KeyId>, ProviderError> {
        let ids = self.call(|session, _| objects::inventory(session)).await?;
        Ok(ids.into_iter().map(KeyId).collect())
    }

    async fn public_key(&self, reference: &KeyRef) -> Result<PublicKey, ProviderError> {
        let id = self.key_id(reference)?.to_owned();
        self.call(move |session, keys| {
            let key = cached(session, keys, &id)?;
            objects::public_key(session, &key)
        })
        .await
    }

    async fn sign(
        &self,
        reference: &KeyRef,
        alg: Algorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, ProviderError> {
        let id = self.key_id(reference)?.to_owned();
        let message = message.to_vec();
        self.call(move |session, keys| {
            let key = cached(session, keys, &id)?;
            let (mechanism, data) = objects::signing_input(&key, alg, &message)?;
            session
                .sign(&mechanism, key.private, &data)
                .map_err(Fault::call("signing"))
        })
        .await
    }

    async fn decrypt(
        &self,
        reference: &KeyRef,
        hash: OaepHash,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        let id = self.key_id(reference)?.to_owned();
        let ciphertext = ciphertext.to_vec();
        self.call(move |session, keys| {
            let key = cached(session, keys, &id)?;
            encryption::decrypt(session, &key, hash, &ciphertext)
        })
        .await
    }

    async fn agree(
        &self,
        reference: &KeyRef,
        peer: &PublicKey,
    ) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        let id = self.key_id(reference)?.to_owned();
        let peer = peer.clone();
        self.call(move |session, keys| {
            let key = cached(session, keys, &id)?;
            encryption::agree(session, &key, &peer)
        })
        .await
    }

    async fn destroy(&self, reference: &KeyRef) -> Result<Option<i64>, ProviderError> {
        let id = self.key_id(reference)?.to_owned();
        self.keys.write().expect("key cache poisoned").remove(&id);
        self.call(move |session, _| {
            let _one_at_a_time = objects::changing_objects();
            for object in objects::find_all(session, &id)? {
                session
                    .destroy_object(object)
                    .map_err(Fault::call("destroying a key"))?;
            }
            Ok(())
        })
        .await?;
        Ok(None)
    }

    async fn close(&self) {
        let pool = self.pool.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || pool.close()).await {
            tracing::warn!("closing the PKCS#11 sessions: {e}");
        }
    }
}

/// Percent-encodes a token label for a PKCS#11 URI (RFC 7512 §2.3): unreserved characters stay.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}
