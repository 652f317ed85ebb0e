//! Configuration: a TOML file (`--config`), overridden by `SIGNET_*` environment variables,
//! overridden by command-line flags. Secrets (the database URL, the file backend's key-encryption
//! key or passphrase) are held as `secrecy` types from the moment they are read.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! data_dir = "/var/lib/signet"
//! database_url = "postgres://signet@db/signet"
//!
//! [file]
//! kek_file = "/run/secrets/signet-kek"   # or kek = "<64 hex digits or base64>", or passphrase(_file)
//! ```

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use secrecy::SecretString;
use serde::Deserialize;
use signet_file::KekSource;

use crate::store::Store;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./signet-data";

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<SecretString>,
    #[serde(default)]
    file: FileSection,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSection {
    kek: Option<SecretString>,
    kek_file: Option<PathBuf>,
    passphrase: Option<SecretString>,
    passphrase_file: Option<PathBuf>,
}

/// Values given on the command line (clap has already folded in their environment variables).
#[derive(Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<SecretString>,
}

/// The resolved configuration.
pub struct Settings {
    pub listen: String,
    pub data_dir: PathBuf,
    pub database_url: SecretString,
    /// `None`: the quick start's generated `master.key`.
    pub file_kek: Option<KekSource>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn read_secret(path: &Path, what: &str) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {what} from {}", path.display()))?;
    Ok(SecretString::from(text.trim().to_owned()))
}

impl Settings {
    pub fn load(overrides: Overrides) -> anyhow::Result<Settings> {
        let file: ConfigFile = match &overrides.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => ConfigFile::default(),
        };
        let listen = overrides
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let data_dir = overrides
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = overrides
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| Store::sqlite_url(&data_dir));

        let section = file.file;
        let kek = env("SIGNET_FILE_KEK")
            .map(SecretString::from)
            .or(section.kek);
        let kek_file = env("SIGNET_FILE_KEK_FILE")
            .map(PathBuf::from)
            .or(section.kek_file);
        let passphrase = env("SIGNET_FILE_PASSPHRASE")
            .map(SecretString::from)
            .or(section.passphrase);
        let passphrase_file = env("SIGNET_FILE_PASSPHRASE_FILE")
            .map(PathBuf::from)
            .or(section.passphrase_file);
        let given = [
            kek.is_some(),
            kek_file.is_some(),
            passphrase.is_some(),
            passphrase_file.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            bail!("configure one of SIGNET_FILE_KEK, SIGNET_FILE_KEK_FILE, SIGNET_FILE_PASSPHRASE, SIGNET_FILE_PASSPHRASE_FILE (or their [file] settings), not several");
        }
        let file_kek = if let Some(kek) = kek {
            Some(KekSource::key_from_text(&kek).context("SIGNET_FILE_KEK")?)
        } else if let Some(path) = kek_file {
            let kek = read_secret(&path, "the key-encryption key")?;
            Some(
                KekSource::key_from_text(&kek)
                    .with_context(|| format!("SIGNET_FILE_KEK_FILE {}", path.display()))?,
            )
        } else if let Some(passphrase) = passphrase {
            Some(KekSource::Passphrase(passphrase))
        } else if let Some(path) = passphrase_file {
            Some(KekSource::Passphrase(read_secret(&path, "the passphrase")?))
        } else {
            None
        };
        Ok(Settings {
            listen,
            data_dir,
            database_url,
            file_kek,
        })
    }
}
