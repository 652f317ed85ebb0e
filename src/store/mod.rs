//! The store: rings, keys, API clients and the audit log, in Postgres (production, several
//! replicas) or SQLite (the embedded default), through one set of SQL statements.
//!
//! Every statement here is written once for both databases (`$N` placeholders, which SQLite also
//! understands, and types both share: TEXT, BIGINT millisecond timestamps, JSON as TEXT). The
//! migrations differ only where the dialects do (`migrations/postgres`, `migrations/sqlite`), and
//! so does one statement: the audit writer's append, the hottest path, which each database does in
//! one round trip its own way (`audit::append_at`).
//!
//! Every state change commits in one transaction together with its audit records: see
//! [`change`].

mod audit;
mod change;
mod clients;
mod keys;
mod rings;
mod schedules;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::domain::UnixMillis;

pub use audit::{AuditConnection, ChainHead, RevokedRow, StoredAuditRecord, GENESIS_HASH};
pub(crate) use keys::{Completion, GeneratedRecord};
pub use rings::RingChanges;
pub(crate) use schedules::RingSettings;

static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Why a store call failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write (a name taken, a second active key, ...).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached or timed out; the same call may succeed later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A stored value no parser accepts (a row written around signet).
    #[error("unreadable stored data: {0}")]
    Unreadable(String),
    /// What the write relied on has changed since it was read (a signature by a key that has
    /// stopped signing meanwhile); the same request may succeed once re-read.
    #[error("changed meanwhile: {0}")]
    Changed(String),
    #[error("database error: {0}")]
    Other(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.message().to_owned())
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Database(db) if is_unavailable_code(db.code().as_deref()) => {
                StoreError::Unavailable(db.message().to_owned())
            }
            sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => {
                StoreError::Unreadable(e.to_string())
            }
            _ => StoreError::Other(e.to_string()),
        }
    }
}

/// Why the first connection failed, saying what to check when it is the TLS handshake (the
/// database's certificate refused, or TLS asked of a server that has none).
fn connect_error(e: &sqlx::Error, url: &str) -> String {
    let certificate = match e {
        sqlx::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    match (certificate, e) {
        (Some(refused), _) => format!(
            "the database's TLS certificate is refused ({refused}): check sslrootcert and sslmode in the database URL"
        ),
        (None, sqlx::Error::Tls(_)) => format!(
            "the TLS connection to the database failed ({}): check sslmode in the database URL and the server's ssl setting",
            redact(&e.to_string(), url)
        ),
        _ => redact(&e.to_string(), url),
    }
}

/// Postgres admin-shutdown / cannot-connect classes, and SQLite's busy and locked codes.
fn is_unavailable_code(code: Option<&str>) -> bool {
    matches!(code, Some(c) if c.starts_with("08") || c.starts_with("57P") || c == "5" || c == "6")
}

/// Which database the store is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    /// Where this store's last append left the audit chain's head.
    head: audit::HeadHint,
}

/// Creates the file of a `sqlite://PATH` URL readable by its owner only (0600), or makes an
/// existing one so: it holds the audit log and the clients' token hashes. SQLite gives its `-wal`
/// and `-shm` files the database file's permissions. In-memory URLs are left alone.
/// The file a `sqlite:` URL names (`None` for another database, or SQLite in memory).
pub fn sqlite_path(url: &str) -> Option<&str> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?
        .split('?')
        .next()
        .unwrap_or_default();
    (!path.is_empty() && !path.starts_with(':') && !url.contains("mode=memory")).then_some(path)
}

/// Where a database URL points, for messages: the SQLite file, or the Postgres database, host
/// and port (never the user or password).
pub fn location(url: &str) -> String {
    if let Some(path) = sqlite_path(url) {
        return path.to_owned();
    }
    match reqwest::Url::parse(url) {
        Ok(url) if url.scheme().starts_with("postgres") => format!(
            "the Postgres database {} at {}:{}",
            url.path().trim_start_matches('/'),
            url.host_str().unwrap_or("localhost"),
            url.port().unwrap_or(5432)
        ),
        _ => "the database".to_owned(),
    }
}

fn private_sqlite_file(url: &str) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    let Some(path) = sqlite_path(url) else {
        return Ok(());
    };
    let unreadable = |e: std::io::Error| StoreError::Unavailable(format!("{path}: {e}"));
    // Never open an existing database file here: closing a descriptor drops every POSIX lock
    // this process holds on the file, including those of SQLite connections already open.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(unreadable)
        }
        Err(e) => Err(unreadable(e)),
    }
}

/// How long a query waits for a connection before the store counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

impl Store {
    /// Connects to `url` (`postgres://...` or `sqlite://...`) and applies pending migrations.
    #[tracing::instrument(skip(url))]
    pub async fn connect(url: &SecretString) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let url = url.expose_secret();
        let dialect = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Dialect::Postgres
        } else if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else {
            return Err(StoreError::Other(
                "the database URL must start with postgres:// or sqlite://".into(),
            ));
        };
        if dialect == Dialect::Sqlite {
            private_sqlite_file(url)?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(match dialect {
                Dialect::Postgres => 16,
                Dialect::Sqlite => 8,
            })
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .map_err(|e| StoreError::Unavailable(connect_error(&e, url)))?;
        let store = Store {
            pool,
            dialect,
            head: audit::HeadHint::default(),
        };
        if dialect == Dialect::Sqlite {
            // WAL lets readers proceed during a write; set once, it persists in the file.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&store.pool)
                .await?;
        }
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.dialect {
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
        };
        if self.is_up_to_date(migrator).await {
            return Ok(());
        }
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Other(format!("migrating the store: {e}")))
    }

    /// Whether every migration is recorded as applied, unchanged. Then nothing runs, so a role
    /// that may not create tables (Postgres `signet_app`) can start the service.
    async fn is_up_to_date(&self, migrator: &sqlx::migrate::Migrator) -> bool {
        let applied: Vec<(i64, Vec<u8>)> =
            match sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await
            {
                Ok(applied) => applied,
                Err(_) => return false,
            };
        migrator.iter().all(|m| {
            applied
                .iter()
                .any(|(version, checksum)| *version == m.version && *checksum == *m.checksum)
        })
    }

    /// A cheap round trip, for readiness checks.
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Connection errors can echo the URL, password included: cut it out.
fn redact(message: &str, url: &str) -> String {
    message.replace(url, "<database url>")
}

/// Reads a text column into a domain value: a value `parse` refuses is a decode error of that
/// row, never a panic further on.
fn parsed<T>(
    row: &AnyRow,
    column: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, sqlx::Error> {
    let text: String = row.try_get(column)?;
    parse(&text)
        .ok_or_else(|| sqlx::Error::Decode(format!("{column}: unknown value {text:?}").into()))
}

/// As [`parsed`], for a nullable column.
fn optional<T>(
    row: &AnyRow,
    column: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, sqlx::Error> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|text| {
        parse(&text)
            .ok_or_else(|| sqlx::Error::Decode(format!("{column}: unknown value {text:?}").into()))
    })
    .transpose()
}

fn opt_i64(row: &AnyRow, column: &str) -> Result<Option<i64>, sqlx::Error> {
    row.try_get::<Option<i64>, _>(column)
}

fn opt_time(row: &AnyRow, column: &str) -> Result<Option<UnixMillis>, sqlx::Error> {
    row.try_get::<Option<UnixMillis>, _>(column)
}

// Moments are BIGINT columns of Unix milliseconds.
impl sqlx::Type<sqlx::Any> for UnixMillis {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <i64 as sqlx::Type<sqlx::Any>>::type_info()
    }

    fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
        <i64 as sqlx::Type<sqlx::Any>>::compatible(ty)
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Any> for UnixMillis {
    fn encode_by_ref(
        &self,
        buf: &mut <sqlx::Any as sqlx::Database>::ArgumentBuffer<'q>,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <i64 as sqlx::Encode<'q, sqlx::Any>>::encode_by_ref(&self.as_millis(), buf)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Any> for UnixMillis {
    fn decode(
        value: <sqlx::Any as sqlx::Database>::ValueRef<'r>,
    ) -> Result<UnixMillis, sqlx::error::BoxDynError> {
        <i64 as sqlx::Decode<'r, sqlx::Any>>::decode(value).map(UnixMillis::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_do_not_repeat_the_url() {
        let url = "postgres://signet:hunter2@db/signet";
        assert_eq!(
            redact(&format!("cannot reach {url}: refused"), url),
            "cannot reach <database url>: refused"
        );
    }
}
