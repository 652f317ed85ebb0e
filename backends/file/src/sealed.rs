//! Sealed private-key files: AES-256-GCM under the KEK, the key's id and spec bound in as
//! associated data (so a file renamed to another id, or relabelled, fails to open), written
//! atomically (temp file, fsync, rename, fsync of the directory) with mode 0600.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use signet_core::{KeySpec, KeyUse};
use zeroize::Zeroizing;

use crate::fault::Fault;

/// A sealing key (the KEK) with the operations the store needs.
pub(crate) struct Sealer(LessSafeKey);

impl Sealer {
    pub(crate) fn new(key: &[u8; 32]) -> Sealer {
        Sealer(LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte AES-256-GCM key"),
        ))
    }

    /// Returns `nonce || ciphertext || tag`.
    pub(crate) fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).expect("system randomness");
        let mut out = Zeroizing::new(plaintext.to_vec());
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut *out,
            )
            .expect("AES-GCM sealing of a small buffer");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&out);
        sealed
    }

    /// Opens what [`Sealer::seal`] produced; `None` if the key, data or AAD do not match.
    pub(crate) fn open(&self, sealed: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        let len = self
            .0
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .ok()?
            .len();
        buf.truncate(len);
        Some(buf)
    }
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    version: u32,
    id: String,
    spec: KeySpec,
    /// Absent in files written before encryption keys existed: those are signing keys.
    #[serde(
        rename = "use",
        default = "signing",
        skip_serializing_if = "is_signing"
    )]
    usage: KeyUse,
    sealed: String,
}

fn signing() -> KeyUse {
    KeyUse::Sign
}

// serde's `skip_serializing_if` hands the field by reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_signing(usage: &KeyUse) -> bool {
    *usage == KeyUse::Sign
}

/// What a sealed key is bound to: its id, its spec and, for an encryption key, its use, so that
/// no edit of the file's clear fields turns a key into another or to another use.
fn aad(id: &str, spec: KeySpec, usage: KeyUse) -> Vec<u8> {
    match usage {
        KeyUse::Sign => format!("signet-file-key-v1|{id}|{}", spec.as_str()),
        KeyUse::Encrypt => format!("signet-file-key-v1|{id}|{}|enc", spec.as_str()),
    }
    .into_bytes()
}

/// Key ids become file names: only letters, digits, `-` and `_`, so no reference can name a path
/// outside the store.
pub(crate) fn check_id(id: &str) -> Result<(), Fault> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Fault::BadId(id.to_owned()))
    }
}

/// The `keys/` directory of a store.
pub(crate) struct KeyStore {
    dir: PathBuf,
    sealer: Sealer,
}

fn io_error(what: &'static str, path: &Path, error: std::io::Error) -> Fault {
    Fault::Io {
        what,
        path: path.to_owned(),
        error,
    }
}

impl KeyStore {
    pub(crate) fn new(dir: PathBuf, sealer: Sealer) -> KeyStore {
        KeyStore { dir, sealer }
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.key"))
    }

    /// Whether the key file exists; an error if the store itself cannot be reached.
    pub(crate) fn exists(&self, id: &str) -> Result<bool, Fault> {
        fs::metadata(&self.dir).map_err(|e| io_error("reaching", &self.dir, e))?;
        let path = self.path(id);
        match fs::metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error("reading", &path, e)),
        }
    }

    /// The ids of every key file in the store.
    pub(crate) fn ids(&self) -> Result<Vec<String>, Fault> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("listing", &self.dir, e)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let name = entry
                .map_err(|e| io_error("listing", &self.dir, e))?
                .file_name();
            if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".key")) {
                if check_id(id).is_ok() {
                    ids.push(id.to_owned());
                }
            }
        }
        Ok(ids)
    }

    pub(crate) fn write(
        &self,
        id: &str,
        spec: KeySpec,
        usage: KeyUse,
        pkcs8: &[u8],
    ) -> Result<(), Fault> {
        let file = KeyFile {
            version: 1,
            id: id.to_owned(),
            spec,
            usage,
            sealed: B64.encode(self.sealer.seal(pkcs8, &aad(id, spec, usage))),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("key file serialises");
        let path = self.path(id);
        if self.exists(id)? {
            return Err(Fault::AlreadyExists(id.to_owned()));
        }
        write_atomically(&path, &bytes).map_err(|e| io_error("writing", &path, e))
    }

    pub(crate) fn read(&self, id: &str) -> Result<(KeySpec, KeyUse, Zeroizing<Vec<u8>>), Fault> {
        let path = self.path(id);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Fault::NoSuchKey(id.to_owned()))
            }
            Err(e) => return Err(io_error("reading", &path, e)),
        };
        let corrupt = || Fault::Corrupt(path.clone());
        let file: KeyFile = serde_json::from_slice(&bytes).map_err(|_| corrupt())?;
        if file.id != id {
            return Err(corrupt());
        }
        let sealed = B64.decode(&file.sealed).map_err(|_| corrupt())?;
        let pkcs8 = self
            .sealer
            .open(&sealed, &aad(id, file.spec, file.usage))
            .ok_or_else(corrupt)?;
        Ok((file.spec, file.usage, pkcs8))
    }

    pub(crate) fn remove(&self, id: &str) -> Result<(), Fault> {
        let path = self.path(id);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir).map_err(|e| io_error("syncing", &self.dir, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("removing", &path, e)),
        }
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the whole new one.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("a file inside a directory");
    fs::create_dir_all(dir)?;
    let mut suffix = [0u8; 8];
    aws_lc_rs::rand::fill(&mut suffix).expect("system randomness");
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().expect("a file name").to_string_lossy(),
        suffix.iter().fold(String::new(), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
