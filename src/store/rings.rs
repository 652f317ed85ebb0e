//! Key rings: a name, a backend, an algorithm, a signing policy and lifecycle timing.

use signet_core::{Algorithm, KeySpec};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::change::Change;
use super::keys;
use super::{opt_time, parsed, Store, StoreError};
use crate::domain::{AuditRecord, BackendKind, KeyRecord, RingName, RingRecord};

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, sqlx::Error> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(e.into()))
}

pub(super) fn from_row(row: &AnyRow) -> Result<RingRecord, sqlx::Error> {
    Ok(RingRecord {
        name: parsed(row, "name", |s| RingName::parse(s).ok())?,
        backend: parsed(row, "backend", BackendKind::parse)?,
        algorithm: parsed(row, "algorithm", Algorithm::parse)?,
        key_spec: parsed(row, "key_spec", KeySpec::parse)?,
        policy: decode(&row.try_get::<String, _>("policy")?)?,
        timing: decode(&row.try_get::<String, _>("timing")?)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        jwks_cached_until: opt_time(row, "jwks_cached_until")?,
    })
}

const COLUMNS: &str =
    "name, backend, algorithm, key_spec, policy, timing, created_at, updated_at, jwks_cached_until";

impl Store {
    /// Creates the ring together with the intent record of its first key.
    pub(crate) async fn insert_ring(
        &self,
        ring: &RingRecord,
        first_key: &KeyRecord,
        record: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = Change::begin(&self.pool).await?;
        sqlx::query(&format!(
            "INSERT INTO rings ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
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
        let mut tx = Change::begin(&self.pool).await?;
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
}
