//! The key-encryption key (KEK): where it comes from, and the `store.json` that pins a store to
//! one KEK so that a wrong or missing one is refused at start, never papered over with a new store.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use argon2::{Argon2, Params};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::sealed::{write_atomically, Sealer};

const STORE_FILE: &str = "store.json";
const MASTER_KEY_FILE: &str = "master.key";
const CHECK_PLAINTEXT: &[u8] = b"signet file store v1";
const CHECK_AAD: &[u8] = b"signet-file-store-check-v1";

/// Where the key-encryption key comes from.
pub enum KekSource {
    /// A 32-byte key supplied by the operator.
    Key(SecretBox<[u8; 32]>),
    /// A passphrase, stretched with Argon2id and the salt kept in `store.json`.
    Passphrase(SecretString),
}

impl KekSource {
    /// Parses a 32-byte key written as 64 hex digits or as base64 (standard or URL-safe).
    pub fn key_from_text(text: &SecretString) -> Result<KekSource, KekError> {
        let text = text.expose_secret().trim();
        let bytes = Zeroizing::new(
            if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
                (0..32)
                    .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex digits"))
                    .collect::<Vec<u8>>()
            } else {
                let trimmed = text.trim_end_matches('=');
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(trimmed)
                    .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
                    .map_err(|_| KekError::InvalidKey)?
            },
        );
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KekError::InvalidKey)?;
        Ok(KekSource::Key(SecretBox::new(Box::new(key))))
    }
}

/// Why the store could not be opened. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum KekError {
    #[error("the file backend's key-encryption key must be 32 bytes, written as 64 hex digits or as base64")]
    InvalidKey,
    #[error("the file key store at {0} holds keys sealed under a key-encryption key that is not configured: supply it, or restore {0}/master.key")]
    MissingKey(PathBuf),
    #[error("the file key store at {0} was created with a passphrase, and none is configured")]
    MissingPassphrase(PathBuf),
    #[error("the file key store at {0} was created with a {1}, but a {2} is configured")]
    KindMismatch(PathBuf, &'static str, &'static str),
    #[error("the configured key-encryption key does not open the file key store at {0} (wrong key or passphrase)")]
    WrongKey(PathBuf),
    #[error("the file key store at {0} is damaged: {1}")]
    Corrupt(PathBuf, String),
    #[error("the file key store at {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

#[derive(Serialize, Deserialize)]
struct StoreFile {
    version: u32,
    /// `key` (a 32-byte key, configured or `master.key`) or `passphrase`.
    kek: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    argon2id: Option<Argon2Settings>,
    check: String,
}

#[derive(Clone, Serialize, Deserialize)]
struct Argon2Settings {
    salt: String,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
}

impl KekSource {
    fn kind(&self) -> &'static str {
        match self {
            KekSource::Key(_) => "key",
            KekSource::Passphrase(_) => "passphrase",
        }
    }
}

/// Opens the store at `dir` (creating it when it holds none) and returns the sealer for its keys.
pub(crate) fn open_store(dir: &Path, source: Option<KekSource>) -> Result<Sealer, KekError> {
    let io = |e| KekError::Io(dir.to_owned(), e);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir.join("keys"))
        .map_err(io)?;
    let store_path = dir.join(STORE_FILE);
    match fs::read(&store_path) {
        Ok(bytes) => {
            let store: StoreFile = serde_json::from_slice(&bytes)
                .map_err(|e| KekError::Corrupt(dir.to_owned(), format!("{STORE_FILE}: {e}")))?;
            open_existing(dir, &store, source)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(dir, source),
        Err(e) => Err(io(e)),
    }
}

fn open_existing(
    dir: &Path,
    store: &StoreFile,
    source: Option<KekSource>,
) -> Result<Sealer, KekError> {
    let key = match (store.kek.as_str(), source) {
        ("key", Some(KekSource::Key(key))) => Zeroizing::new(*key.expose_secret()),
        ("key", None) => {
            read_master_key(dir)?.ok_or_else(|| KekError::MissingKey(dir.to_owned()))?
        }
        ("passphrase", Some(KekSource::Passphrase(passphrase))) => {
            let settings = store.argon2id.as_ref().ok_or_else(|| {
                KekError::Corrupt(
                    dir.to_owned(),
                    "passphrase store without Argon2id settings".into(),
                )
            })?;
            stretch(dir, &passphrase, settings)?
        }
        ("passphrase", None) => return Err(KekError::MissingPassphrase(dir.to_owned())),
        ("key", Some(other)) => {
            return Err(KekError::KindMismatch(dir.to_owned(), "key", other.kind()))
        }
        ("passphrase", Some(other)) => {
            return Err(KekError::KindMismatch(
                dir.to_owned(),
                "passphrase",
                other.kind(),
            ))
        }
        (other, _) => {
            return Err(KekError::Corrupt(
                dir.to_owned(),
                format!("unknown key-encryption key kind {other:?}"),
            ))
        }
    };
    let sealer = Sealer::new(&key);
    let check = B64
        .decode(&store.check)
        .map_err(|_| KekError::Corrupt(dir.to_owned(), "unreadable check value".into()))?;
    match sealer.open(&check, CHECK_AAD) {
        Some(plain) if plain.as_slice() == CHECK_PLAINTEXT => Ok(sealer),
        _ => Err(KekError::WrongKey(dir.to_owned())),
    }
}

fn create(dir: &Path, source: Option<KekSource>) -> Result<Sealer, KekError> {
    let has_keys = fs::read_dir(dir.join("keys"))
        .map_err(|e| KekError::Io(dir.to_owned(), e))?
        .filter_map(Result::ok)
        .any(|entry| entry.file_name().to_string_lossy().ends_with(".key"));
    if has_keys {
        return Err(KekError::Corrupt(
            dir.to_owned(),
            format!("{STORE_FILE} is missing but sealed keys exist; restore it from a backup"),
        ));
    }
    let (kind, argon2id, key) = match source {
        Some(KekSource::Key(key)) => ("key", None, Zeroizing::new(*key.expose_secret())),
        Some(KekSource::Passphrase(passphrase)) => {
            let mut salt = [0u8; 16];
            aws_lc_rs::rand::fill(&mut salt).expect("system randomness");
            let settings = Argon2Settings {
                salt: B64.encode(salt),
                memory_kib: 64 * 1024,
                iterations: 3,
                parallelism: 1,
            };
            let key = stretch(dir, &passphrase, &settings)?;
            ("passphrase", Some(settings), key)
        }
        None => ("key", None, master_key(dir)?),
    };
    let sealer = Sealer::new(&key);
    let store = StoreFile {
        version: 1,
        kek: kind.to_owned(),
        argon2id,
        check: B64.encode(sealer.seal(CHECK_PLAINTEXT, CHECK_AAD)),
    };
    let bytes = serde_json::to_vec_pretty(&store).expect("store file serialises");
    write_atomically(&dir.join(STORE_FILE), &bytes).map_err(|e| KekError::Io(dir.to_owned(), e))?;
    Ok(sealer)
}

/// The quick start's generated KEK: reused if a previous start wrote it, else created (0600).
fn master_key(dir: &Path) -> Result<Zeroizing<[u8; 32]>, KekError> {
    if let Some(key) = read_master_key(dir)? {
        return Ok(key);
    }
    let mut key = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(key.as_mut()).expect("system randomness");
    let text = Zeroizing::new(B64.encode(key.as_ref()));
    let path = dir.join(MASTER_KEY_FILE);
    write_atomically(&path, text.as_bytes()).map_err(|e| KekError::Io(path.clone(), e))?;
    tracing::warn!(
        path = %path.display(),
        "generated a key-encryption key for the file backend next to the keys it protects; \
         in production configure a key-encryption key or a passphrase of your own"
    );
    Ok(key)
}

fn read_master_key(dir: &Path) -> Result<Option<Zeroizing<[u8; 32]>>, KekError> {
    let path = dir.join(MASTER_KEY_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => SecretString::from(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(KekError::Io(path, e)),
    };
    let mode = fs::metadata(&path)
        .map_err(|e| KekError::Io(path.clone(), e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "master.key is readable by other users; chmod 600 it");
    }
    match KekSource::key_from_text(&text) {
        Ok(KekSource::Key(key)) => Ok(Some(Zeroizing::new(*key.expose_secret()))),
        _ => Err(KekError::Corrupt(
            dir.to_owned(),
            format!("{MASTER_KEY_FILE} is not a 32-byte key"),
        )),
    }
}

fn stretch(
    dir: &Path,
    passphrase: &SecretString,
    settings: &Argon2Settings,
) -> Result<Zeroizing<[u8; 32]>, KekError> {
    let corrupt = |what: String| KekError::Corrupt(dir.to_owned(), what);
    let salt = B64
        .decode(&settings.salt)
        .map_err(|_| corrupt("unreadable Argon2id salt".into()))?;
    let params = Params::new(
        settings.memory_kib,
        settings.iterations,
        settings.parallelism,
        Some(32),
    )
    .map_err(|e| corrupt(format!("Argon2id settings: {e}")))?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(passphrase.expose_secret().as_bytes(), &salt, key.as_mut())
        .map_err(|e| corrupt(format!("Argon2id: {e}")))?;
    Ok(key)
}
