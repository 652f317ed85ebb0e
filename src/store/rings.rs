//! Key rings: a name, a backend, an algorithm, a signing policy and lifecycle timing.

use signet_core::KeySpec;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::change::Change;
use super::keys;
use super::{opt_time, optional, parsed, Store, StoreError};
use crate::domain::{
    Action, AuditRecord, BackendKind, ContentEncryption, KeyAlgorithm, KeyRecord, RingName,
    RingRecord, UnixMillis,
};

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, sqlx::Error> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(e.into()))
}

pub(super) fn from_row(row: &AnyRow) -> Result<RingRecord, sqlx::Error> {
    Ok(RingRecord {
        name: parsed(row, "name", |s| RingName::parse(s).ok())?,
        backend: parsed(row, "backend", BackendKind::parse)?,
        algorithm: parsed(row, "algorithm", KeyAlgorithm::parse)?,
        encryption: optional(row, "encryption", ContentEncryption::parse)?,
        key_spec: parsed(row, "key_spec", KeySpec::parse)?,
        policy: decode(&row.try_get::<String, _>("policy")?)?,
        timing: decode(&row.try_get::<String, _>("timing")?)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        jwks_cached_until: opt_time(row, "jwks_cached_until")?,
        combined_jwks: row.try_get::<i64, _>("combined_jwks")? != 0,
    })
}

const COLUMNS: &str =
    "name, backend, algorithm, key_spec, policy, timing, created_at, updated_at, \
     jwks_cached_until, combined_jwks, encryption";

/// What changed among the rings since a revision.
pub struct RingChanges {
    /// Rings taken back since (a creation whose first key could not be generated); a ring of
    /// the same name made again since is among `rings` too.
    pub removed: Vec<String>,
    /// The changed rings, oldest change first.
    pub rings: Vec<RingRecord>,
    /// Everything up to this revision has been read: read above it next time.
    pub revision: i64,
}

impl Store {
    /// Creates the ring together with the intent record of its first key.
    pub(crate) async fn insert_ring(
        &self,
        ring: &RingRecord,
        first_key: &KeyRecord,
        record: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = Change::begin(self).await?;
        sqlx::query(&format!(
            "INSERT INTO rings ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(ring.name.as_str())
        .bind(ring.backend.as_str())
        .bind(ring.algorithm.as_str())
        .bind(ring.key_spec.as_str())
        .bind(serde_json::to_string(&ring.policy).expect("policy serialises"))
        .bind(serde_json::to_string(&ring.timing).expect("timing serialises"))
        .bind(ring.created_at)
        .bind(ring.updated_at)
        .bind(ring.jwks_cached_until)
        .bind(i64::from(ring.combined_jwks))
        .bind(ring.encryption.map(ContentEncryption::as_str))
        .execute(&mut *tx)
        .await?;
        keys::insert_pending(&mut tx, first_key).await?;
        tx.commit(std::slice::from_ref(record)).await?;
        Ok(())
    }

    /// Removes a ring whose first key could not be generated (nothing else refers to it yet).
    pub(crate) async fn delete_unborn_ring(
        &self,
        name: &str,
        record: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = Change::begin(self).await?;
        sqlx::query("DELETE FROM keys WHERE ring = $1 AND state = 'pending'")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM rings WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM keys WHERE ring = $1)",
        )
        .bind(name)
        .execute(&mut *tx)
        .await?;
        tx.commit(std::slice::from_ref(record)).await?;
        Ok(())
    }

    /// Lists the ring in the combined JWKS or takes it out. `false` if there is no such ring.
    pub(crate) async fn set_combined_jwks(
        &self,
        name: &str,
        combined: bool,
        now: UnixMillis,
        record: &AuditRecord,
    ) -> Result<bool, StoreError> {
        Change::one_row(
            self,
            sqlx::query("UPDATE rings SET combined_jwks = $1, updated_at = $2 WHERE name = $3")
                .bind(i64::from(combined))
                .bind(now)
                .bind(name),
            record,
        )
        .await
    }

    pub(crate) async fn ring(&self, name: &str) -> Result<Option<RingRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM rings WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    pub(crate) async fn rings(&self) -> Result<Vec<RingRecord>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM rings ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Every ring, and the highest revision among them: what a replica's view starts from.
    pub(crate) async fn rings_and_revision(&self) -> Result<(Vec<RingRecord>, i64), StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT revision, {COLUMNS} FROM rings ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?;
        let mut revision = 0;
        let mut rings = Vec::with_capacity(rows.len());
        for row in &rows {
            revision = revision.max(row.try_get("revision")?);
            rings.push(from_row(row)?);
        }
        Ok((rings, revision))
    }

    /// What changed among the rings after revision `since`, through indexes only: nothing
    /// scales with the number of rings. Removals are read first, from their audit records
    /// (`ring_creation_failed`, the same transaction as the removal): every revision below a
    /// removal seen there has committed before it, so the highest revision read next covers it.
    pub(crate) async fn ring_changes(&self, since: i64) -> Result<RingChanges, StoreError> {
        let removals =
            sqlx::query("SELECT seq, ring FROM audit_log WHERE action = $1 AND seq > $2")
                .bind(Action::RingCreationFailed.as_str())
                .bind(since)
                .fetch_all(&self.pool)
                .await?;
        let mut removed = Vec::with_capacity(removals.len());
        let mut revision = since;
        for row in &removals {
            revision = revision.max(row.try_get("seq")?);
            removed.extend(row.try_get::<Option<String>, _>("ring")?);
        }
        let latest: Option<i64> = sqlx::query("SELECT MAX(revision) AS revision FROM rings")
            .fetch_one(&self.pool)
            .await?
            .try_get("revision")?;
        let latest = latest.unwrap_or(0);
        let mut rings = Vec::new();
        if latest > since {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM rings WHERE revision > $1 AND revision <= $2 \
                 ORDER BY revision"
            ))
            .bind(since)
            .bind(latest)
            .fetch_all(&self.pool)
            .await?;
            rings = rows.iter().map(from_row).collect::<Result<_, _>>()?;
        }
        Ok(RingChanges {
            removed,
            rings,
            revision: revision.max(latest),
        })
    }
}
