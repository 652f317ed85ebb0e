//! Keys and their lifecycle (docs/design.md, Key lifecycle):
//! `pending -> published -> active -> retiring -> retired -> destroyed`, and `revoked`.
//!
//! Each transition is a conditional UPDATE (`... WHERE state = <expected>`) in a transaction with
//! its audit record, so two replicas racing for the same transition cannot both make it: the
//! loser's UPDATE matches no row and its transaction rolls back. The unique index on the active
//! key per ring backs this up in the database itself.

use signet_core::KeySpec;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::change::Change;
use super::{opt_time, optional, parsed, Store, StoreError};
use crate::domain::{
    AuditRecord, BackendKind, KeyAlgorithm, KeyRecord, KeyState, Kid, RingName, UnixMillis,
};

const COLUMNS: &str = "id, ring, state, algorithm, key_spec, backend, reference, kid, public_jwk, \
    created_at, published_at, activate_after, activated_at, deactivated_at, retire_after, \
    retired_at, destroy_after, destroyed_at, revoked_at, revoked_reason, last_token_exp, \
    jwks_grace_ms";

fn from_row(row: &AnyRow) -> Result<KeyRecord, sqlx::Error> {
    let public_jwk: Option<String> = row.try_get("public_jwk")?;
    Ok(KeyRecord {
        id: row.try_get("id")?,
        ring: parsed(row, "ring", |s| RingName::parse(s).ok())?,
        state: parsed(row, "state", KeyState::parse)?,
        algorithm: parsed(row, "algorithm", KeyAlgorithm::parse)?,
        key_spec: parsed(row, "key_spec", KeySpec::parse)?,
        backend: parsed(row, "backend", BackendKind::parse)?,
        reference: row.try_get("reference")?,
        kid: optional(row, "kid", |s| Kid::parse(s).ok())?,
        public_jwk: public_jwk
            .map(|j| serde_json::from_str(&j))
            .transpose()
            .map_err(|e| sqlx::Error::Decode(e.into()))?,
        created_at: row.try_get("created_at")?,
        published_at: opt_time(row, "published_at")?,
        activate_after: opt_time(row, "activate_after")?,
        activated_at: opt_time(row, "activated_at")?,
        deactivated_at: opt_time(row, "deactivated_at")?,
        retire_after: opt_time(row, "retire_after")?,
        retired_at: opt_time(row, "retired_at")?,
        destroy_after: opt_time(row, "destroy_after")?,
        destroyed_at: opt_time(row, "destroyed_at")?,
        revoked_at: opt_time(row, "revoked_at")?,
        revoked_reason: row.try_get("revoked_reason")?,
        last_token_exp: opt_time(row, "last_token_exp")?,
        jwks_grace_ms: row.try_get("jwks_grace_ms")?,
    })
}

pub(super) async fn insert_pending(
    conn: &mut AnyConnection,
    key: &KeyRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO keys (id, ring, state, algorithm, key_spec, backend, created_at, jwks_grace_ms) \
         VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7)",
    )
    .bind(&key.id)
    .bind(key.ring.as_str())
    .bind(key.algorithm.as_str())
    .bind(key.key_spec.as_str())
    .bind(key.backend.as_str())
    .bind(key.created_at)
    .bind(key.jwks_grace_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves the ring's active key to `retiring`, to leave the JWKS after `retire_after`; `None`
/// when the ring had no active key.
async fn deactivate_current(
    conn: &mut AnyConnection,
    ring: &str,
    now: UnixMillis,
    retire_after: Option<UnixMillis>,
) -> Result<(), StoreError> {
    let Some(retire_after) = retire_after else {
        return Ok(());
    };
    sqlx::query(
        "UPDATE keys SET state = 'retiring', deactivated_at = $1, retire_after = $2 \
         WHERE ring = $3 AND state = 'active'",
    )
    .bind(now)
    .bind(retire_after)
    .bind(ring)
    .execute(conn)
    .await?;
    Ok(())
}

/// What becomes of a freshly generated key.
#[derive(Clone, Copy, Debug)]
pub enum Completion {
    /// Published now, activated by a later tick once `activate_after` has passed.
    Publish { activate_after: UnixMillis },
    /// Published and active at once; the ring's current active key (if any) starts retiring and
    /// leaves the JWKS after `retire_after`.
    Activate { retire_after: Option<UnixMillis> },
}

/// The public facts of a freshly generated key.
pub struct GeneratedRecord<'a> {
    pub reference: &'a str,
    pub kid: &'a str,
    pub public_jwk: &'a serde_json::Value,
}

impl Store {
    /// Records a key about to be generated (the intent that makes a crash recoverable).
    /// `Conflict` when the ring already has a key on its way in.
    pub(crate) async fn insert_pending_key(
        &self,
        key: &KeyRecord,
        record: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = Change::begin(self).await?;
        insert_pending(&mut tx, key).await?;
        tx.commit(std::slice::from_ref(record)).await?;
        Ok(())
    }

    /// Drops the intent record of a key that the backend does not have.
    pub(crate) async fn delete_pending_key(
        &self,
        id: &str,
        record: &AuditRecord,
    ) -> Result<bool, StoreError> {
        Change::one_row(
            self,
            sqlx::query("DELETE FROM keys WHERE id = $1 AND state = 'pending'").bind(id),
            record,
        )
        .await
    }

    /// Records the generated key and publishes or activates it. `false` if the key was no
    /// longer pending (another replica finished it).
    pub(crate) async fn complete_key(
        &self,
        ring: &str,
        id: &str,
        generated: GeneratedRecord<'_>,
        now: UnixMillis,
        completion: Completion,
        records: &[AuditRecord],
    ) -> Result<bool, StoreError> {
        let mut tx = Change::begin(self).await?;
        let (state, activate_after, activated_at) = match completion {
            Completion::Publish { activate_after } => ("published", activate_after, None),
            Completion::Activate { retire_after } => {
                deactivate_current(&mut tx, ring, now, retire_after).await?;
                ("active", now, Some(now))
            }
        };
        // A published key never activates before a floor that a timing change set on its
        // pending record (`set_schedule`).
        let done = sqlx::query(
            "UPDATE keys SET state = $1, reference = $2, kid = $3, public_jwk = $4, \
             published_at = $5, activated_at = $7, activate_after = CASE \
             WHEN $1 = 'published' AND activate_after > $6 THEN activate_after ELSE $6 END \
             WHERE id = $8 AND state = 'pending'",
        )
        .bind(state)
        .bind(generated.reference)
        .bind(generated.kid)
        .bind(generated.public_jwk.to_string())
        .bind(now)
        .bind(activate_after)
        .bind(activated_at)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        tx.commit_if(done, records).await
    }

    /// Makes the published key `id` the ring's active key; the previous one (if any) starts
    /// retiring. `false` if `id` was no longer published (another replica got there first).
    pub(crate) async fn activate_key(
        &self,
        ring: &str,
        id: &str,
        now: UnixMillis,
        retire_after: Option<UnixMillis>,
        records: &[AuditRecord],
    ) -> Result<bool, StoreError> {
        let mut tx = Change::begin(self).await?;
        deactivate_current(&mut tx, ring, now, retire_after).await?;
        let done = sqlx::query(
            "UPDATE keys SET state = 'active', activated_at = $1 WHERE id = $2 AND state = 'published'",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        tx.commit_if(done, records).await
    }

    /// A retiring key leaves the JWKS: `false` if it is no longer retiring or has signed a
    /// token since `key` was read (its retirement is planned again).
    pub(crate) async fn retire_key(
        &self,
        key: &KeyRecord,
        now: UnixMillis,
        destroy_after: UnixMillis,
        record: &AuditRecord,
    ) -> Result<bool, StoreError> {
        Change::one_row(
            self,
            sqlx::query(
                "UPDATE keys SET state = 'retired', retired_at = $1, destroy_after = $2 \
                 WHERE id = $3 AND state = 'retiring' AND COALESCE(last_token_exp, -1) = $4",
            )
            .bind(now)
            .bind(destroy_after)
            .bind(&key.id)
            .bind(key.last_token_exp.map_or(-1, UnixMillis::as_millis)),
            record,
        )
        .await
    }

    /// A retiring key stays in the JWKS until `retire_after`, later than planned before.
    pub(crate) async fn postpone_retirement(
        &self,
        key: &KeyRecord,
        retire_after: UnixMillis,
        record: &AuditRecord,
    ) -> Result<bool, StoreError> {
        Change::one_row(
            self,
            sqlx::query(
                "UPDATE keys SET retire_after = $1 \
                 WHERE id = $2 AND state = 'retiring' AND retire_after < $1",
            )
            .bind(retire_after)
            .bind(&key.id),
            record,
        )
        .await
    }

    /// The backend key is gone: only the record remains.
    pub(crate) async fn mark_key_destroyed(
        &self,
        id: &str,
        now: UnixMillis,
        record: &AuditRecord,
    ) -> Result<bool, StoreError> {
        Change::one_row(
            self,
            sqlx::query(
                "UPDATE keys SET state = 'destroyed', destroyed_at = $1 \
                 WHERE id = $2 AND state IN ('retired', 'revoked')",
            )
            .bind(now)
            .bind(id),
            record,
        )
        .await
    }

    /// Revokes key `id` (it leaves the JWKS and never signs again); when `successor` is given, that
    /// published key becomes active in the same transaction so the ring keeps a signing key.
    pub(crate) async fn revoke_key(
        &self,
        id: &str,
        reason: &str,
        now: UnixMillis,
        destroy_after: UnixMillis,
        successor: Option<&str>,
        records: &[AuditRecord],
    ) -> Result<bool, StoreError> {
        let mut tx = Change::begin(self).await?;
        let done = sqlx::query(
            "UPDATE keys SET state = 'revoked', revoked_at = $1, revoked_reason = $2, \
             destroy_after = $3, deactivated_at = CASE WHEN state = 'active' THEN $1 ELSE deactivated_at END \
             WHERE id = $4 AND state IN ('published', 'active', 'retiring', 'retired')",
        )
        .bind(now)
        .bind(reason)
        .bind(destroy_after)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !done {
            return Ok(false);
        }
        if let Some(successor) = successor {
            let activated = sqlx::query(
                "UPDATE keys SET state = 'active', activated_at = $1 WHERE id = $2 AND state = 'published'",
            )
            .bind(now)
            .bind(successor)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !activated {
                return Ok(false);
            }
        }
        tx.commit(records).await?;
        Ok(true)
    }

    pub(crate) async fn keys_of_ring(&self, ring: &str) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM keys WHERE ring = $1 ORDER BY created_at, id"
        ))
        .bind(ring)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    pub(crate) async fn key_by_kid(&self, kid: &str) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM keys WHERE kid = $1"))
            .bind(kid)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    /// Every key that is not destroyed: the working set of the JWKS and signing.
    pub(crate) async fn live_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM keys WHERE state <> 'destroyed' ORDER BY ring, created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// The ring's keys that are not destroyed.
    pub(crate) async fn live_keys_of_ring(&self, ring: &str) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM keys WHERE ring = $1 AND state <> 'destroyed' \
             ORDER BY created_at, id"
        ))
        .bind(ring)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// The keys the lifecycle tick may have to move at `now`: those on their way in or out
    /// (pending, published, retiring; a handful per rotation under way) and the retired or
    /// revoked ones due for destruction. Read through the `(state, destroy_after)` index, never
    /// every key.
    pub(crate) async fn keys_in_motion(
        &self,
        now: UnixMillis,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM keys WHERE state IN ('pending', 'published', 'retiring') \
             OR (state IN ('retired', 'revoked') AND destroy_after <= $1) \
             ORDER BY ring, created_at, id"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }
}
