//! Audit records: appended, never updated. Signatures arrive in batches (one transaction for many
//! concurrent requests, see `crate::audit`); state changes write theirs inside their own
//! transaction.

use sqlx::AnyConnection;

use super::{Store, StoreError};

/// One audit event. `detail` holds what the action needs beyond the common columns; it never
/// holds secrets, tokens or claim values.
#[derive(Clone, Debug)]
pub struct AuditRecord {
    pub time: i64,
    pub action: &'static str,
    pub principal: String,
    pub ring: Option<String>,
    pub kid: Option<String>,
    pub detail: serde_json::Value,
}

pub(super) async fn insert(
    conn: &mut AnyConnection,
    record: &AuditRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (time, action, principal, ring, kid, detail) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(record.time)
    .bind(record.action)
    .bind(&record.principal)
    .bind(record.ring.as_deref())
    .bind(record.kid.as_deref())
    .bind(record.detail.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

impl Store {
    /// Commits all `records` in one transaction: all are durable when this returns `Ok`.
    pub async fn append_audit_batch(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for record in records {
            insert(&mut tx, record).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.append_audit_batch(std::slice::from_ref(record)).await
    }

    /// Every record's action, oldest first (for tests and small tools; auditors get a paged API
    /// in a later version).
    pub async fn audit_actions(&self) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        let rows: Vec<(String, String, Option<String>)> =
            sqlx::query_as("SELECT action, principal, kid FROM audit_log ORDER BY seq")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows)
    }
}
