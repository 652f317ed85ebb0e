//! API clients: a name, a role, the rings an issuer may sign for, and the SHA-256 of its token.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::change::Change;
use super::{opt_i64, opt_time, parsed, Store, StoreError};
use crate::domain::{
    AuditRecord, BoundClaims, ClientMetadata, ClientRecord, RateLimit, Role, UnixMillis, Violation,
};

const COLUMNS: &str =
    "id, name, role, rings, rate_per_second, rate_burst, token_hash, created_at, created_by, \
     revoked_at, expires_at, metadata, bound_claims, previous_token_hash, previous_token_expires_at";

/// A JSON column read with its parser; `None` when NULL.
fn opt_json<T>(
    row: &AnyRow,
    column: &str,
    parse: impl Fn(serde_json::Value) -> Result<T, Violation>,
) -> Result<Option<T>, sqlx::Error> {
    let decode = |e: String| sqlx::Error::Decode(format!("{column}: {e}").into());
    row.try_get::<Option<String>, _>(column)?
        .map(|text| {
            let value = serde_json::from_str(&text).map_err(|e| decode(e.to_string()))?;
            parse(value).map_err(|v| decode(v.message))
        })
        .transpose()
}

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
        expires_at: opt_time(row, "expires_at")?,
        metadata: opt_json(row, "metadata", ClientMetadata::parse)?,
        bound_claims: opt_json(row, "bound_claims", BoundClaims::parse)?.unwrap_or_default(),
        previous_token_hash: row.try_get("previous_token_hash")?,
        previous_token_expires_at: opt_time(row, "previous_token_expires_at")?,
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
             created_at, created_by, expires_at, metadata, bound_claims) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
        .bind(client.expires_at)
        .bind(
            client
                .metadata
                .as_ref()
                .map(|m| serde_json::to_string(m).expect("metadata serialises")),
        )
        .bind(
            (!client.bound_claims.is_empty()).then(|| {
                serde_json::to_string(&client.bound_claims).expect("bound claims serialise")
            }),
        )
        .execute(&mut *tx)
        .await?;
        tx.commit(std::slice::from_ref(record)).await?;
        Ok(())
    }

    /// The client holding the token with this hash, revoked or not, as its token or as the one
    /// its last rotation replaced.
    pub(crate) async fn client_by_token_hash(
        &self,
        hash: &str,
    ) -> Result<Option<ClientRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM clients WHERE token_hash = $1 OR previous_token_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    pub(crate) async fn client(&self, id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM clients WHERE id = $1"))
            .bind(id)
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

    /// Replaces a live client's token, keeping the one replaced (and only it) until
    /// `previous_until`; `false` if there is no such live client.
    pub(crate) async fn rotate_client_token(
        &self,
        id: &str,
        token_hash: &str,
        previous_until: UnixMillis,
        record: &AuditRecord,
    ) -> Result<bool, StoreError> {
        Change::one_row(
            self,
            sqlx::query(
                "UPDATE clients SET previous_token_hash = token_hash, \
                 previous_token_expires_at = $1, token_hash = $2 \
                 WHERE id = $3 AND revoked_at IS NULL",
            )
            .bind(previous_until)
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
