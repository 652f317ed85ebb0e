//! Configuration: a TOML file (`--config`), overridden by `SIGNET_*` environment variables,
//! overridden by command-line flags. Secrets (the database URL, the file backend's key-encryption
//! key or passphrase) are held as `secrecy` types from the moment they are read.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! data_dir = "/var/lib/signet"
//! database_url = "postgres://signet@db/signet"   # or database_url_file = "/run/secrets/db-url"
//!
//! [file]
//! kek_file = "/run/secrets/signet-kek"   # or kek = "<64 hex digits or base64>", or passphrase(_file)
//!
//! [pkcs11]                                # optional: enables rings with "backend": "pkcs11"
//! module = "/usr/lib/softhsm/libsofthsm2.so"
//! token_label = "signet"
//! pin_file = "/run/secrets/signet-pin"    # or pin = "..."
//! pool_size = 4                           # sessions; default: the number of CPUs
//!
//! [aws_kms]                    # enables rings with "backend": "aws-kms" (so does AWS_REGION)
//! region = "eu-west-1"         # default: the AWS chain (AWS_REGION, AWS_DEFAULT_REGION, profile)
//! endpoint_url = "https://kms.eu-west-1.amazonaws.com"  # default: AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL
//! deletion_window_days = 30    # 7-30, or SIGNET_AWS_KMS_DELETION_WINDOW_DAYS
//! call_timeout_seconds = 10    # per KMS call, retries included
//! max_attempts = 3             # per KMS call, on throttling and transient errors
//!
//! [tls]                        # optional: serve HTTPS (README, TLS); read again on SIGHUP
//! cert_file = "/etc/signet/tls/cert.pem"   # the chain, leaf first (or --tls-cert, SIGNET_TLS_CERT)
//! key_file = "/etc/signet/tls/key.pem"     # its key, PKCS#8, PKCS#1 or SEC1 (or --tls-key, SIGNET_TLS_KEY)
//!
//! [http]                       # how callers are treated (README, Limits); all optional
//! trusted_proxy_header = "X-Forwarded-For"  # the caller's address comes from this header only
//! body_timeout_seconds = 10    # a request body must arrive within this
//! keep_alive_seconds = 15      # an idle connection is closed after this
//! max_connections = 1024       # per worker thread
//! shutdown_delay_seconds = 0    # on SIGTERM, serve this long unready before closing the listener
//! shutdown_timeout_seconds = 30  # then requests in flight get this long to finish
//! anonymous_rate_limit = "200/400"   # per source address: per second / burst
//! client_rate_limit = "20000/40000"  # sign requests per client unless its record says otherwise
//! ```
//!
//! Credentials for KMS come only from the standard AWS chain (environment, profile, SSO,
//! container or instance role); signet has no setting for them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use secrecy::SecretString;
use serde::Deserialize;
use signet_aws_kms::AwsKmsConfig;
use signet_file::KekSource;
use signet_pkcs11::Pkcs11Config;

use crate::domain::RateLimit;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./signet-data";

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<SecretString>,
    database_url_file: Option<PathBuf>,
    #[serde(default)]
    file: FileSection,
    #[serde(default)]
    pkcs11: Pkcs11Section,
    aws_kms: Option<AwsKmsSection>,
    #[serde(default)]
    http: HttpSection,
    #[serde(default)]
    tls: TlsSection,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpSection {
    trusted_proxy_header: Option<String>,
    body_timeout_seconds: Option<u64>,
    keep_alive_seconds: Option<u64>,
    max_connections: Option<usize>,
    shutdown_delay_seconds: Option<u64>,
    shutdown_timeout_seconds: Option<u64>,
    anonymous_rate_limit: Option<String>,
    client_rate_limit: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSection {
    kek: Option<SecretString>,
    kek_file: Option<PathBuf>,
    passphrase: Option<SecretString>,
    passphrase_file: Option<PathBuf>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pkcs11Section {
    module: Option<PathBuf>,
    token_label: Option<String>,
    pin: Option<SecretString>,
    pin_file: Option<PathBuf>,
    pool_size: Option<usize>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AwsKmsSection {
    region: Option<String>,
    endpoint_url: Option<String>,
    deletion_window_days: Option<i32>,
    call_timeout_seconds: Option<u64>,
    max_attempts: Option<u32>,
}

/// Environment variables of the AWS chain that turn the aws-kms backend on by themselves.
pub const AWS_REGION_ENV: [&str; 2] = ["AWS_REGION", "AWS_DEFAULT_REGION"];

/// Values given on the command line (clap has already folded in their environment variables).
#[derive(Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<SecretString>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// The listener's certificate chain and its private key, PEM files (README, TLS).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The resolved configuration.
pub struct Settings {
    pub listen: String,
    pub data_dir: PathBuf,
    pub database_url: SecretString,
    /// `None`: the quick start's generated `master.key`.
    pub file_kek: Option<KekSource>,
    /// `None`: no PKCS#11 token configured (rings cannot use the `pkcs11` backend).
    pub pkcs11: Option<Pkcs11Config>,
    /// `None`: no `[aws_kms]` section and no AWS region in the environment (rings cannot use
    /// the `aws-kms` backend).
    pub aws_kms: Option<AwsKmsConfig>,
    pub http: HttpSettings,
    /// `None`: plain HTTP, for a TLS-terminating proxy in front.
    pub tls: Option<TlsFiles>,
}

/// How the HTTP server treats its callers (README, Limits).
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// The header a trusted proxy puts the caller's address in; `None`: the peer's address.
    pub trusted_proxy_header: Option<actix_web::http::header::HeaderName>,
    /// A request body must have arrived this long after its head.
    pub body_timeout: Duration,
    /// An idle kept-alive connection is closed after this.
    pub keep_alive: Duration,
    /// Open connections per worker thread; beyond it, new ones wait to be accepted.
    pub max_connections: usize,
    /// On SIGTERM or SIGINT, how long the server goes on serving, unready, before it closes its
    /// listener (so that a load balancer has stopped sending it requests); a second signal ends
    /// the wait.
    pub shutdown_delay: Duration,
    /// Then, how long requests in flight get to finish before their connections are closed.
    pub shutdown_timeout: Duration,
    /// Per source address, for requests that present no valid client token.
    pub anonymous_rate_limit: RateLimit,
    /// Sign requests per client, for clients whose record names no limit.
    pub client_rate_limit: RateLimit,
}

impl Default for HttpSettings {
    fn default() -> HttpSettings {
        HttpSettings {
            trusted_proxy_header: None,
            body_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(15),
            max_connections: 1024,
            shutdown_delay: Duration::ZERO,
            shutdown_timeout: Duration::from_secs(30),
            anonymous_rate_limit: RateLimit {
                per_second: 200,
                burst: 400,
            },
            client_rate_limit: RateLimit {
                per_second: 20_000,
                burst: 40_000,
            },
        }
    }
}

fn read_secret(path: &Path, what: &str) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {what} from {}", path.display()))?;
    Ok(SecretString::from(text.trim().to_owned()))
}

impl Settings {
    /// Resolves the settings from `overrides`, the process environment and the config file.
    pub fn load(overrides: Overrides) -> anyhow::Result<Settings> {
        Settings::resolve(overrides, &|name| std::env::var(name).ok())
    }

    fn resolve(
        overrides: Overrides,
        environment: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Settings> {
        let env = |name: &str| environment(name).filter(|v| !v.is_empty());
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
        let url_file = env("SIGNET_DATABASE_URL_FILE")
            .map(PathBuf::from)
            .or(file.database_url_file);
        let database_url = match (overrides.database_url.or(file.database_url), url_file) {
            (Some(_), Some(_)) => bail!("configure one of SIGNET_DATABASE_URL and SIGNET_DATABASE_URL_FILE (or database_url and database_url_file), not both"),
            (Some(url), None) => url,
            (None, Some(path)) => read_secret(&path, "the database URL")?,
            (None, None) => sqlite_url(&data_dir),
        };

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
        let tls = match (
            overrides.tls_cert.or(file.tls.cert_file),
            overrides.tls_key.or(file.tls.key_file),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => bail!("give both --tls-cert and --tls-key (SIGNET_TLS_CERT and SIGNET_TLS_KEY, or [tls] cert_file and key_file), or neither"),
        };
        Ok(Settings {
            listen,
            data_dir,
            database_url,
            file_kek,
            pkcs11: pkcs11(file.pkcs11, &env)?,
            aws_kms: aws_kms(file.aws_kms, &env)?,
            http: http(file.http, &env)?,
            tls,
        })
    }
}

/// The PKCS#11 token, if one is configured: module and token label are both needed, with a PIN.
fn pkcs11(
    section: Pkcs11Section,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<Pkcs11Config>> {
    let module = env("SIGNET_PKCS11_MODULE")
        .map(PathBuf::from)
        .or(section.module);
    let token_label = env("SIGNET_PKCS11_TOKEN_LABEL").or(section.token_label);
    let pin = env("SIGNET_PKCS11_PIN")
        .map(SecretString::from)
        .or(section.pin);
    let pin_file = env("SIGNET_PKCS11_PIN_FILE")
        .map(PathBuf::from)
        .or(section.pin_file);
    let pool_size =
        match env("SIGNET_PKCS11_POOL_SIZE") {
            Some(size) => Some(size.parse::<usize>().ok().filter(|n| *n > 0).with_context(
                || format!("SIGNET_PKCS11_POOL_SIZE {size:?} is not a positive number"),
            )?),
            None => section.pool_size,
        };
    let (module, token_label) = match (module, token_label) {
        (None, None) if pin.is_none() && pin_file.is_none() => return Ok(None),
        (Some(module), Some(label)) => (module, label),
        (None, _) => bail!("SIGNET_PKCS11_MODULE (or [pkcs11] module) is not set, but other PKCS#11 settings are"),
        (_, None) => bail!("SIGNET_PKCS11_TOKEN_LABEL (or [pkcs11] token_label) is not set, but other PKCS#11 settings are"),
    };
    let pin = match (pin, pin_file) {
        (Some(pin), None) => pin,
        (None, Some(path)) => read_secret(&path, "the PKCS#11 user PIN")?,
        (Some(_), Some(_)) => {
            bail!("configure one of SIGNET_PKCS11_PIN and SIGNET_PKCS11_PIN_FILE, not both")
        }
        (None, None) => bail!(
            "SIGNET_PKCS11_PIN or SIGNET_PKCS11_PIN_FILE is not set: the token needs its user PIN"
        ),
    };
    Ok(Some(Pkcs11Config {
        module,
        token_label,
        pin,
        pool_size,
    }))
}

/// The KMS backend's settings, when there is an `[aws_kms]` section or an AWS region in the
/// environment; the AWS chain supplies the rest.
fn aws_kms(
    section: Option<AwsKmsSection>,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<AwsKmsConfig>> {
    let section = match section {
        Some(section) => section,
        None if AWS_REGION_ENV.iter().any(|name| env(name).is_some()) => AwsKmsSection::default(),
        None => return Ok(None),
    };
    let defaults = AwsKmsConfig::default();
    let deletion_window_days = match env("SIGNET_AWS_KMS_DELETION_WINDOW_DAYS") {
        Some(days) => Some(days.parse().with_context(|| {
            format!("SIGNET_AWS_KMS_DELETION_WINDOW_DAYS {days:?} is not a number of days")
        })?),
        None => section.deletion_window_days,
    }
    .unwrap_or(defaults.deletion_window_days);
    if !(7..=30).contains(&deletion_window_days) {
        bail!("the aws-kms deletion window (SIGNET_AWS_KMS_DELETION_WINDOW_DAYS or [aws_kms] deletion_window_days) must be 7 to 30 days, not {deletion_window_days}");
    }
    if section.max_attempts == Some(0) || section.call_timeout_seconds == Some(0) {
        bail!("[aws_kms] max_attempts and call_timeout_seconds must be at least 1");
    }
    Ok(Some(AwsKmsConfig {
        region: section.region,
        endpoint_url: section.endpoint_url,
        deletion_window_days,
        call_timeout: section
            .call_timeout_seconds
            .map_or(defaults.call_timeout, std::time::Duration::from_secs),
        max_attempts: section.max_attempts.unwrap_or(defaults.max_attempts),
    }))
}

/// The default store: SQLite in `data_dir/signet.db`.
fn http(
    section: HttpSection,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<HttpSettings> {
    let defaults = HttpSettings::default();
    let seconds_from = |least: u64,
                        name: &str,
                        given: Option<u64>,
                        default: Duration|
     -> anyhow::Result<Duration> {
        let value = match env(name) {
            Some(text) => Some(
                text.parse::<u64>()
                    .ok()
                    .with_context(|| format!("{name} {text:?} is not a number of seconds"))?,
            ),
            None => given,
        };
        match value {
            Some(s) if (least..=3600).contains(&s) => Ok(Duration::from_secs(s)),
            Some(s) => {
                bail!("{name} (or its [http] setting) must be {least} to 3600 seconds, not {s}")
            }
            None => Ok(default),
        }
    };
    let seconds =
        |name: &str, given: Option<u64>, default: Duration| seconds_from(1, name, given, default);
    let limit =
        |name: &str, given: Option<String>, default: RateLimit| -> anyhow::Result<RateLimit> {
            match env(name).or(given) {
                Some(text) => RateLimit::parse(&text).map_err(|e| anyhow::anyhow!("{name}: {e}")),
                None => Ok(default),
            }
        };
    let trusted_proxy_header =
        match env("SIGNET_TRUSTED_PROXY_HEADER").or(section.trusted_proxy_header) {
            Some(name) => Some(
                actix_web::http::header::HeaderName::try_from(name.as_str())
                    .ok()
                    .with_context(|| {
                        format!("SIGNET_TRUSTED_PROXY_HEADER {name:?} is not a header name")
                    })?,
            ),
            None => None,
        };
    let max_connections =
        match env("SIGNET_MAX_CONNECTIONS") {
            Some(text) => Some(text.parse::<usize>().ok().filter(|n| *n > 0).with_context(
                || format!("SIGNET_MAX_CONNECTIONS {text:?} is not a positive number"),
            )?),
            None => section.max_connections,
        };
    Ok(HttpSettings {
        trusted_proxy_header,
        body_timeout: seconds(
            "SIGNET_BODY_TIMEOUT_SECONDS",
            section.body_timeout_seconds,
            defaults.body_timeout,
        )?,
        keep_alive: seconds(
            "SIGNET_KEEP_ALIVE_SECONDS",
            section.keep_alive_seconds,
            defaults.keep_alive,
        )?,
        max_connections: max_connections.unwrap_or(defaults.max_connections),
        shutdown_delay: seconds_from(
            0,
            "SIGNET_SHUTDOWN_DELAY_SECONDS",
            section.shutdown_delay_seconds,
            defaults.shutdown_delay,
        )?,
        shutdown_timeout: seconds(
            "SIGNET_SHUTDOWN_TIMEOUT_SECONDS",
            section.shutdown_timeout_seconds,
            defaults.shutdown_timeout,
        )?,
        anonymous_rate_limit: limit(
            "SIGNET_ANONYMOUS_RATE_LIMIT",
            section.anonymous_rate_limit,
            defaults.anonymous_rate_limit,
        )?,
        client_rate_limit: limit(
            "SIGNET_CLIENT_RATE_LIMIT",
            section.client_rate_limit,
            defaults.client_rate_limit,
        )?,
    })
}

fn sqlite_url(data_dir: &Path) -> SecretString {
    SecretString::from(format!(
        "sqlite://{}?mode=rwc",
        data_dir.join("signet.db").display()
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::ExposeSecret;

    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn resolve(toml: &str, overrides: Overrides, env: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signet.toml");
        std::fs::write(&path, toml).unwrap();
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::resolve(
            Overrides {
                config: Some(path),
                ..overrides
            },
            &|name| env.get(name).cloned(),
        )
    }

    #[test]
    fn the_database_url_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("url");
        std::fs::write(&path, "postgres://u:secret@db/signet\n").unwrap();
        let file = path.to_str().unwrap();
        let settings = resolve(
            "",
            Overrides::default(),
            &[("SIGNET_DATABASE_URL_FILE", file)],
        )
        .unwrap();
        assert_eq!(
            settings.database_url.expose_secret(),
            "postgres://u:secret@db/signet"
        );
        let both = Overrides {
            database_url: Some(SecretString::from("postgres://x@db/y")),
            ..Overrides::default()
        };
        assert!(resolve("", both, &[("SIGNET_DATABASE_URL_FILE", file)]).is_err());
    }

    #[test]
    fn defaults_need_nothing() {
        let settings = resolve("", Overrides::default(), &[]).unwrap();
        assert_eq!(settings.listen, DEFAULT_LISTEN);
        assert_eq!(settings.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(
            settings.database_url.expose_secret(),
            "sqlite://./signet-data/signet.db?mode=rwc"
        );
        assert!(settings.file_kek.is_none());
        assert!(settings.pkcs11.is_none());
        assert!(settings.aws_kms.is_none());
    }

    #[test]
    fn a_pkcs11_token_needs_module_label_and_pin() {
        let dir = tempfile::tempdir().unwrap();
        let pin_file = dir.path().join("pin");
        std::fs::write(&pin_file, "98765\n").unwrap();
        let toml = format!(
            "[pkcs11]\nmodule = \"/lib/x.so\"\ntoken_label = \"from-file\"\npin_file = \"{}\"\npool_size = 3\n",
            pin_file.display()
        );
        let settings = resolve(
            &toml,
            Overrides::default(),
            &[("SIGNET_PKCS11_TOKEN_LABEL", "hsm")],
        )
        .unwrap();
        let pkcs11 = settings.pkcs11.unwrap();
        assert_eq!(pkcs11.module, PathBuf::from("/lib/x.so"));
        assert_eq!(pkcs11.token_label, "hsm");
        assert_eq!(pkcs11.pin.expose_secret(), "98765");
        assert_eq!(pkcs11.pool_size, Some(3));

        let refusals = [
            (
                vec![
                    ("SIGNET_PKCS11_MODULE", "/lib/x.so"),
                    ("SIGNET_PKCS11_PIN", "1"),
                ],
                "SIGNET_PKCS11_TOKEN_LABEL",
            ),
            (
                vec![
                    ("SIGNET_PKCS11_TOKEN_LABEL", "t"),
                    ("SIGNET_PKCS11_PIN", "1"),
                ],
                "SIGNET_PKCS11_MODULE",
            ),
            (
                vec![
                    ("SIGNET_PKCS11_MODULE", "/lib/x.so"),
                    ("SIGNET_PKCS11_TOKEN_LABEL", "t"),
                ],
                "SIGNET_PKCS11_PIN",
            ),
            (
                vec![
                    ("SIGNET_PKCS11_MODULE", "/lib/x.so"),
                    ("SIGNET_PKCS11_TOKEN_LABEL", "t"),
                    ("SIGNET_PKCS11_PIN", "4321"),
                    ("SIGNET_PKCS11_POOL_SIZE", "0"),
                ],
                "SIGNET_PKCS11_POOL_SIZE",
            ),
        ];
        for (env, named) in refusals {
            let message = format!(
                "{:#}",
                resolve("", Overrides::default(), &env).err().unwrap()
            );
            assert!(message.contains(named), "{message}");
            assert!(!message.contains("4321"));
        }
    }

    #[test]
    fn aws_kms_is_on_with_a_section_or_an_aws_region_and_checks_its_window() {
        let from_region = resolve("", Overrides::default(), &[("AWS_REGION", "eu-west-1")])
            .unwrap()
            .aws_kms
            .unwrap();
        assert_eq!(from_region, AwsKmsConfig::default());
        let toml = "[aws_kms]\nregion = \"eu-west-1\"\nendpoint_url = \"http://localstack:4566\"\ndeletion_window_days = 7\ncall_timeout_seconds = 2\nmax_attempts = 5\n";
        let configured = resolve(toml, Overrides::default(), &[])
            .unwrap()
            .aws_kms
            .unwrap();
        assert_eq!(configured.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            configured.endpoint_url.as_deref(),
            Some("http://localstack:4566")
        );
        assert_eq!(configured.deletion_window_days, 7);
        assert_eq!(configured.call_timeout, std::time::Duration::from_secs(2));
        assert_eq!(configured.max_attempts, 5);
        let from_env = resolve(
            "[aws_kms]\n",
            Overrides::default(),
            &[("SIGNET_AWS_KMS_DELETION_WINDOW_DAYS", "10")],
        )
        .unwrap();
        assert_eq!(from_env.aws_kms.unwrap().deletion_window_days, 10);
        for days in ["6", "31", "x"] {
            let refused = resolve(
                "[aws_kms]\n",
                Overrides::default(),
                &[("SIGNET_AWS_KMS_DELETION_WINDOW_DAYS", days)],
            )
            .err()
            .unwrap();
            assert!(
                format!("{refused:#}").contains("SIGNET_AWS_KMS_DELETION_WINDOW_DAYS"),
                "{refused:#}"
            );
        }
    }

    /// docker-compose.yml gives signet only settings it reads, and they add up to a service with
    /// the aws-kms backend on LocalStack, the pkcs11 backend on the SoftHSM2 token the image's
    /// entrypoint initialises, and its store on the Postgres service.
    #[test]
    fn docker_compose_names_the_settings_signet_reads() {
        use clap::CommandFactory;

        fn flag_variables(command: &clap::Command, names: &mut Vec<String>) {
            for arg in command.get_arguments() {
                names.extend(arg.get_env().map(|e| e.to_string_lossy().into_owned()));
            }
            for sub in command.get_subcommands() {
                flag_variables(sub, names);
            }
        }

        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml");
        let compose: serde_json::Value =
            serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let services = &compose["services"];
        let environment: HashMap<String, String> = services["signet"]["environment"]
            .as_object()
            .expect("signet's environment is a mapping")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("string values").to_owned()))
            .collect();

        // What signet reads: its flags' variables, what `resolve` asks for, and the AWS chain's.
        let mut read = Vec::new();
        flag_variables(&crate::cli::Cli::command(), &mut read);
        let asked = std::cell::RefCell::new(Vec::new());
        // The PIN file exists in the container's volume only: a stand-in is read here.
        let pin = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(pin.path(), "0123").unwrap();
        let var = |name: &str| match name {
            "SIGNET_PKCS11_PIN_FILE" => Some(pin.path().to_str().unwrap().to_owned()),
            _ => environment.get(name).cloned(),
        };
        let settings = Settings::resolve(
            Overrides {
                config: None,
                listen: var("SIGNET_LISTEN"),
                data_dir: var("SIGNET_DATA_DIR").map(PathBuf::from),
                database_url: var("SIGNET_DATABASE_URL").map(SecretString::from),
                tls_cert: var("SIGNET_TLS_CERT").map(PathBuf::from),
                tls_key: var("SIGNET_TLS_KEY").map(PathBuf::from),
            },
            &|name| {
                asked.borrow_mut().push(name.to_owned());
                var(name)
            },
        )
        .unwrap();
        let aws_chain = [
            "AWS_ENDPOINT_URL_KMS",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ];
        for name in environment.keys() {
            assert!(
                read.contains(name)
                    || asked.borrow().contains(name)
                    || aws_chain.contains(&name.as_str()),
                "docker-compose.yml sets {name}, which signet does not read"
            );
        }

        assert_eq!(settings.listen, "0.0.0.0:8080");
        assert_eq!(services["signet"]["ports"][0], "8080:8080");
        let postgres = &services["postgres"]["environment"];
        assert_eq!(
            settings.database_url.expose_secret(),
            format!(
                "postgres://{}:{}@postgres:5432/{}",
                postgres["POSTGRES_USER"].as_str().unwrap(),
                postgres["POSTGRES_PASSWORD"].as_str().unwrap(),
                postgres["POSTGRES_DB"].as_str().unwrap()
            )
        );
        let kms = settings
            .aws_kms
            .expect("AWS_REGION turns the aws-kms backend on");
        assert_eq!(kms.deletion_window_days, 7);
        assert_eq!(
            environment["AWS_ENDPOINT_URL_KMS"],
            "http://localstack:4566"
        );
        assert_eq!(services["localstack"]["environment"]["SERVICES"], "kms");
        assert!(services["signet"]["depends_on"]["localstack"].is_object());

        // The token and PIN file the entrypoint makes, in the volume it makes them in.
        let pkcs11 = settings
            .pkcs11
            .expect("the SIGNET_PKCS11_* settings turn pkcs11 on");
        assert_eq!(
            pkcs11.module,
            PathBuf::from("/usr/lib/softhsm/libsofthsm2.so")
        );
        let entrypoint =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker/entrypoint.sh"))
                .unwrap();
        assert!(entrypoint.contains(&format!("--label {}", pkcs11.token_label)));
        assert!(
            entrypoint.contains("dir=/var/lib/softhsm") && entrypoint.contains("\"$dir/user-pin\"")
        );
        assert_eq!(
            environment["SIGNET_PKCS11_PIN_FILE"],
            "/var/lib/softhsm/user-pin"
        );
        assert_eq!(services["signet"]["volumes"][1], "softhsm:/var/lib/softhsm");
        let dockerfile =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
        assert!(
            dockerfile.contains("softhsm2")
                && dockerfile.contains("ENTRYPOINT [\"signet-entrypoint\"]")
        );
    }

    #[test]
    fn flags_beat_the_file_and_the_environment_beats_the_file_for_secrets() {
        let toml =
            "listen = \"0.0.0.0:9000\"\ndata_dir = \"/srv/signet\"\n[file]\nkek = \"not-a-key\"\n";
        let overrides = Overrides {
            listen: Some("127.0.0.1:7000".into()),
            ..Overrides::default()
        };
        let settings = resolve(toml, overrides, &[("SIGNET_FILE_KEK", KEY)]).unwrap();
        assert_eq!(settings.listen, "127.0.0.1:7000");
        assert_eq!(settings.data_dir, PathBuf::from("/srv/signet"));
        assert!(settings
            .database_url
            .expose_secret()
            .starts_with("sqlite:///srv/signet/signet.db"));
        assert!(matches!(settings.file_kek, Some(KekSource::Key(_))));
    }

    #[test]
    fn a_key_file_and_a_passphrase_are_read_from_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let kek = dir.path().join("kek");
        std::fs::write(&kek, format!("{KEY}\n")).unwrap();
        let toml = format!("[file]\nkek_file = \"{}\"\n", kek.display());
        assert!(matches!(
            resolve(&toml, Overrides::default(), &[]).unwrap().file_kek,
            Some(KekSource::Key(_))
        ));
        let pass = dir.path().join("pass");
        std::fs::write(&pass, "correct horse\n").unwrap();
        let settings = resolve(
            "",
            Overrides::default(),
            &[("SIGNET_FILE_PASSPHRASE_FILE", pass.to_str().unwrap())],
        )
        .unwrap();
        match settings.file_kek {
            Some(KekSource::Passphrase(p)) => assert_eq!(p.expose_secret(), "correct horse"),
            _ => panic!("expected a passphrase"),
        }
    }

    #[test]
    fn bad_configuration_is_refused_with_a_message_and_no_secret() {
        let unknown = resolve("listne = \"x\"", Overrides::default(), &[])
            .err()
            .unwrap();
        assert!(format!("{unknown:#}").contains("listne"));
        let several = resolve(
            "",
            Overrides::default(),
            &[("SIGNET_FILE_KEK", KEY), ("SIGNET_FILE_PASSPHRASE", "p")],
        )
        .err()
        .unwrap();
        assert!(several.to_string().contains("not several"));
        let short = resolve(
            "",
            Overrides::default(),
            &[("SIGNET_FILE_KEK", "c2VjcmV0LWJ1dC1zaG9ydA")],
        )
        .err()
        .unwrap();
        let message = format!("{short:#}");
        assert!(message.contains("32 bytes"), "{message}");
        assert!(!message.contains("c2VjcmV0LWJ1dC1zaG9ydA"));
    }
}
