//! What a start needs of the file system, checked before anything is created: the data
//! directory, and the SQLite store and file backend in it. Errors name the path, what signet
//! tried and why it could not. What a failed first start created is removed again
//! ([`Footprint::remove`]).

use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rustix::fs::{Access, AtFlags, CWD};
use secrecy::ExposeSecret;

use crate::config::Settings;
use crate::store::sqlite_path;

/// The file backend's directory in the data directory.
pub const FILE_BACKEND_DIR: &str = "file-backend";

/// Where the bootstrap admin's token is written, in the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// What this start will create if it is missing, so that a failed start can remove it.
pub struct Footprint {
    /// Removed whole: the data directory's topmost missing ancestor, when it was missing.
    data_dir: Option<PathBuf>,
    /// Removed one by one, from a data directory that existed (or a store outside it).
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Footprint {
    /// Removes what this start created (call only when the start failed).
    pub fn remove(self) {
        let removed = |path: &Path, result: std::io::Result<()>| match result {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                tracing::warn!(path = %path.display(), error = %e, "could not remove what the failed start created");
            }
            _ => {}
        };
        if let Some(dir) = &self.data_dir {
            removed(dir, std::fs::remove_dir_all(dir));
        }
        for file in &self.files {
            removed(file, std::fs::remove_file(file));
        }
        for dir in &self.dirs {
            removed(dir, std::fs::remove_dir_all(dir));
        }
    }
}

/// Checks that signet can create or use the data directory, and open what it finds there of
/// the store and the file backend; returns what the start will create.
pub fn check(settings: &Settings) -> anyhow::Result<Footprint> {
    let dir = &settings.data_dir;
    let mut footprint = Footprint {
        data_dir: None,
        files: Vec::new(),
        dirs: Vec::new(),
    };
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => bail!(
            "the data directory {} is not a directory: point --data-dir (or SIGNET_DATA_DIR, or data_dir in the configuration file) at a directory, or at a path that does not exist yet",
            dir.display()
        ),
        Ok(_) => require(dir, Access::READ_OK | Access::WRITE_OK | Access::EXEC_OK, "the data directory ")?,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let (ancestor, topmost_missing) = existing_ancestor(dir);
            if !ancestor.is_dir() {
                bail!(
                    "cannot create the data directory {}: {} is not a directory",
                    dir.display(),
                    ancestor.display()
                );
            }
            if !allowed(&ancestor, Access::WRITE_OK | Access::EXEC_OK) {
                bail!(
                    "cannot create the data directory {}: {}",
                    dir.display(),
                    denied(&ancestor, &format!("{} ", ancestor.display()))
                );
            }
            footprint.data_dir = Some(topmost_missing);
        }
        Err(e) => bail!("cannot read the data directory {}: {e}", dir.display()),
    }
    let rw = Access::READ_OK | Access::WRITE_OK;
    if let Some(db) = sqlite_path(settings.database_url.expose_secret()) {
        let db = PathBuf::from(db);
        if db.exists() {
            require(&db, rw, "the store ")?;
            for suffix in ["-wal", "-shm"] {
                let side = PathBuf::from(format!("{}{suffix}", db.display()));
                if side.exists() {
                    require(&side, rw, "the store's journal ")?;
                }
            }
        } else {
            for suffix in ["", "-wal", "-shm"] {
                footprint
                    .files
                    .push(PathBuf::from(format!("{}{suffix}", db.display())));
            }
        }
    }
    let backend = dir.join(FILE_BACKEND_DIR);
    if backend.exists() {
        let rwx = rw | Access::EXEC_OK;
        require(&backend, rwx, "the file backend's directory ")?;
        for (name, access) in [("master.key", Access::READ_OK), ("keys", rwx)] {
            let path = backend.join(name);
            if path.exists() {
                require(&path, access, "")?;
            }
        }
    } else {
        footprint.dirs.push(backend);
    }
    let token = dir.join(ADMIN_TOKEN_FILE);
    if !token.exists() {
        footprint.files.push(token);
    }
    Ok(footprint)
}

/// Checks that the SQLite store the settings name exists (commands other than `serve` never
/// create one).
pub fn existing_store(settings: &Settings) -> anyhow::Result<()> {
    let Some(db) = sqlite_path(settings.database_url.expose_secret()) else {
        return Ok(());
    };
    let db = Path::new(db);
    match std::fs::metadata(db) {
        Ok(_) => require(db, Access::READ_OK | Access::WRITE_OK, "the store "),
        Err(e) if e.kind() == ErrorKind::NotFound => bail!(
            "no signet store at {}: pass --data-dir or SIGNET_DATA_DIR (or --database-url) to name the one your server uses; only `signet serve` creates a store",
            db.display()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", db.display())),
    }
}

/// The nearest ancestor of `path` that exists, and the topmost one that does not.
fn existing_ancestor(path: &Path) -> (PathBuf, PathBuf) {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut missing = absolute.clone();
    let mut ancestor = absolute.parent().map(Path::to_owned);
    while let Some(candidate) = ancestor {
        if candidate.exists() {
            return (candidate, missing);
        }
        ancestor = candidate.parent().map(Path::to_owned);
        missing = candidate;
    }
    (PathBuf::from("/"), missing)
}

fn allowed(path: &Path, access: Access) -> bool {
    rustix::fs::accessat(CWD, path, access, AtFlags::EACCESS).is_ok()
}

/// Fails with "cannot open {what}{path} for writing: permission denied; ..." unless signet's
/// user may `access` the path.
fn require(path: &Path, access: Access, what: &str) -> anyhow::Result<()> {
    if allowed(path, access) {
        return Ok(());
    }
    let doing = if access.contains(Access::WRITE_OK) {
        "for writing"
    } else {
        "for reading"
    };
    bail!(
        "cannot open {what}{} {doing}: {}",
        path.display(),
        denied(path, "it ")
    )
}

/// "permission denied; it belongs to root and signet runs as nobody", or the mode when the
/// owner is signet's own user.
fn denied(path: &Path, subject: &str) -> String {
    let me = rustix::process::geteuid().as_raw();
    match std::fs::metadata(path) {
        Ok(meta) if meta.uid() == me => format!(
            "permission denied; {subject}belongs to {} (signet's user), with mode {:o}",
            user_name(me),
            meta.permissions().mode() & 0o7777
        ),
        Ok(meta) => format!(
            "permission denied; {subject}belongs to {} and signet runs as {}",
            user_name(meta.uid()),
            user_name(me)
        ),
        Err(e) => e.to_string(),
    }
}

/// The user's name from /etc/passwd, or "uid N".
fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}
