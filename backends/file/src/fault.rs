//! What can go wrong inside the file backend, and the one place it becomes a [`ProviderError`].

use std::path::PathBuf;

use signet_core::{KeySpec, ProviderError};

#[derive(Debug)]
pub(crate) enum Fault {
    /// The file system refused (missing directory, permissions, full disk): may pass.
    Io {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    /// aws-lc-rs failed to generate, parse or sign (it says no more than that).
    Crypto(&'static str),
    /// A key file that does not open under the KEK, or does not belong to its name.
    Corrupt(PathBuf),
    NoSuchKey(String),
    /// A key id or reference that cannot name a key of this backend.
    BadId(String),
    AlreadyExists(String),
    WrongAlgorithm {
        spec: KeySpec,
        alg: signet_core::Algorithm,
    },
    /// A key asked to do what its use does not allow (sign with an encryption key, decrypt with
    /// a signing key), or an Ed25519 encryption key.
    WrongUse {
        spec: KeySpec,
        usage: &'static str,
    },
    /// The key's operation refused its input (a ciphertext that does not decrypt, a point off the
    /// curve).
    Rejected,
    TaskFailed(String),
}

impl From<Fault> for ProviderError {
    fn from(fault: Fault) -> ProviderError {
        match fault {
            Fault::Io { what, path, error } => ProviderError::Unavailable(format!(
                "file backend: {what} {}: {error}",
                path.display()
            )),
            Fault::Crypto(what) => ProviderError::Backend(format!("file backend: {what} failed")),
            Fault::Corrupt(path) => ProviderError::Backend(format!(
                "file backend: {} is corrupt or sealed under another key",
                path.display()
            )),
            Fault::NoSuchKey(id) => ProviderError::NotFound(format!("file:{id}")),
            Fault::BadId(id) => ProviderError::NotFound(format!("not a file backend key: {id:?}")),
            Fault::AlreadyExists(id) => {
                ProviderError::Backend(format!("file backend: a key file for {id} already exists"))
            }
            Fault::WrongAlgorithm { spec, alg } => {
                ProviderError::Unsupported(format!("a {} key cannot sign {alg}", spec.as_str()))
            }
            Fault::WrongUse { spec, usage } => ProviderError::Unsupported(format!(
                "a {} key of the file backend cannot serve {usage}",
                spec.as_str()
            )),
            Fault::Rejected => ProviderError::Rejected,
            Fault::TaskFailed(e) => {
                ProviderError::Backend(format!("file backend task failed: {e}"))
            }
        }
    }
}
