//! API clients: a name, a role, the rings an issuer may sign for, and the SHA-256 of its token.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::change::Change;
use super::{opt_i64, opt_time, parsed, Store, StoreError};
use crate::domain::{AuditRecord, ClientRecord, RateLimit, Role, UnixMillis};

const COLUMNS: &str =
    "id, name, role, rings, rate_per_second, rate_burst, token_hash, created_at, created_by, revoked_at";

fn from_row(row: &AnyRow) -> Result<ClientRecord, sqlx::Error> {
    let rings: String = row.try_get("rings")?;
    Ok(ClientRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: parsed(row, "role", Role::parse)?,
        rings: serde_json::from_str(&rings).map_err(|e| sqlx::Error::Decode(e.into()))?,
        rate_limit: match (
            opt_i64(row, "rate_per_second")?,
            opt_i64(row, "rate_burst")?,
        ) {
            (Some(rate), Some(burst)) => Some(
                RateLimit::new(
                    u32::try_from(rate).unwrap_or(0),
                    Some(u32::try_from(burst).unwrap_or(0)),
                )
                .map_err(|e| sqlx::Error::Decode(e.into()))?,
            ),
            _ => None,
        },
        token_hash: row.try_get("token_hash")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        revoked_at: opt_time(row, "revoked_at")?,
    })
}

impl Store {
    pub(crate) async fn insert_client(
        &self,
        client: &ClientRecord,
        record: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = Change::begin(self).await?;
        sqlx::query(
            "INSERT INTO clients (id, name, role, rings, rate_per_second, rate_burst, token_hash, \
             created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&client.id)
        .bind(&client.name)
        .bind(client.role.as_str())
        .bind(serde_json::to_string(&client.rings).expect("ring names serialise"))
        .bind(client.rate_limit.map(|l| i64::from(l.per_second)))
        .bind(client.rate_limit.map(|l| i64::from(l.burst)))
        .bind(&client.token_hash)
        .bind(client.created_at)
        .bind(&client.created_by)
        .execute(&mut *tx)
        .await?;
        tx.commit(std::slice::from_ref(record)).await?;
        Ok(())
    }

    /// The client holding the token with this hash, revoked or not.
    pub(crate) async fn client_by_token_hash(
        &self,
        hash: &str,
    ) -> Result<Option<ClientRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM clients WHERE token_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    pub async fn clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM clients ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    pub(crate) async fn count_clients(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM clients")
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    /// Sets the client's limit on sign requests (`None`: the server's default); `false` if
    /// there is no such live client.
    pub(crate) async fn set_client_rate_limit(
        &self,
        id: &str,
        limit: Option<RateLimit>,
        record: &AuditRecord,
    ) -> Result<bool, StoreError> {
        Change::one_row(
            self,
            sqlx::query(
                "UPDATE clients SET rate_per_second = $1, rate_burst = $2 \
                 WHERE id = $3 AND revoked_at IS NULL",
            )
            .bind(limit.map(|l| i64::from(l.per_second)))
            .bind(limit.map(|l| i64::from(l.burst)))
            .bind(id),
            record,
        )
        .await
    }

    /// Replaces a live client's token; `false` if there is no such live client.
    pub(crate) async fn set_client_token_hash(
        &self,
        id: &str,
        token_hash: &str,
        record: &AuditRecord,
    ) -> Result<bool, StoreError> {
        Change::one_row(
            self,
            sqlx::query("UPDATE clients SET token_hash = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(token_hash)
                .bind(id),
            record,
        )
        .await
    }

    /// Revokes the client; `false` if there is no such client or it was already revoked.
    pub(crate) async fn revoke_client(
        &self,
        id: &str,
        now: UnixMillis,
        record: &AuditRecord,
    ) -> Result<bool, StoreError> {
        Change::one_row(
            self,
            sqlx::query("UPDATE clients SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id),
            record,
        )
        .await
    }
}
