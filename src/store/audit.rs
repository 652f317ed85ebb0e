//! Audit records: appended, never updated. Signatures arrive in batches (one transaction for many
//! concurrent requests, see `crate::audit`); state changes write theirs inside their own
//! transaction.

use sqlx::{Any, AnyConnection, Transaction};

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

/// Rows per INSERT statement: 6 parameters each stays far below both databases' limits.
const ROWS_PER_STATEMENT: usize = 256;

pub(super) async fn insert(
    conn: &mut AnyConnection,
    record: &AuditRecord,
) -> Result<(), StoreError> {
    insert_many(conn, std::slice::from_ref(record)).await
}

/// Inserts `records` with multi-row INSERTs (one statement per chunk, not per record).
async fn insert_many(conn: &mut AnyConnection, records: &[AuditRecord]) -> Result<(), StoreError> {
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let values = (0..chunk.len())
            .map(|i| {
                let p = 6 * i;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5,
                    p + 6
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO audit_log (time, action, principal, ring, kid, detail) VALUES {values}"
        );
        let mut query = sqlx::query(&sql);
        for record in chunk {
            query = query
                .bind(record.time)
                .bind(record.action)
                .bind(&record.principal)
                .bind(record.ring.as_deref())
                .bind(record.kid.as_deref())
                .bind(record.detail.to_string());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Ends a conditional change: commits `tx` together with `records` when the change `happened`,
/// otherwise rolls it back (nothing changed, so nothing is recorded). Returns `happened`.
pub(super) async fn commit_if(
    mut tx: Transaction<'_, Any>,
    happened: bool,
    records: &[AuditRecord],
) -> Result<bool, StoreError> {
    if happened {
        insert_many(&mut tx, records).await?;
        tx.commit().await?;
    }
    Ok(happened)
}

impl Store {
    /// Commits all `records` in one transaction: all are durable when this returns `Ok`.
    pub async fn append_audit_batch(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_many(&mut tx, records).await?;
        tx.commit().await?;
        Ok(())
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
