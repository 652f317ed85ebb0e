//! Rotation schedules and the scheduler's last outcome, per ring. A ring without a row has the
//! default schedule.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::Row;

use super::change::Change;
use super::{opt_time, Dialect, Store, StoreError};
use crate::domain::{
    windows, AuditRecord, KeyRecord, Policy, Rule, ScheduleRecord, Timing, UnixMillis,
};
use crate::store::keys;

/// A ring's new policy and timing, and until when a JWKS served under a longer max-age may
/// still be cached (`windows::cached_until`).
pub struct RingSettings<'a> {
    pub policy: &'a Policy,
    pub timing: &'a Timing,
    pub jwks_cached_until: Option<UnixMillis>,
}

fn from_row(row: &AnyRow) -> Result<(String, ScheduleRecord), sqlx::Error> {
    let rule: String = row.try_get("rule")?;
    Ok((
        row.try_get("ring")?,
        ScheduleRecord {
            rule: serde_json::from_str(&rule).map_err(|e| sqlx::Error::Decode(e.into()))?,
            paused: row.try_get::<i64, _>("paused")? != 0,
            failures: u32::try_from(row.try_get::<i64, _>("failures")?).unwrap_or(u32::MAX),
            last_error: row.try_get("last_error")?,
            last_failure_at: opt_time(row, "last_failure_at")?,
            retry_at: opt_time(row, "retry_at")?,
            last_rotation_at: opt_time(row, "last_rotation_at")?,
        },
    ))
}

const COLUMNS: &str =
    "ring, rule, paused, failures, last_error, last_failure_at, retry_at, last_rotation_at";

fn rule_json(rule: &Rule) -> String {
    serde_json::to_string(rule).expect("a rule serialises")
}

impl Store {
    /// Every ring's stored schedule, by ring name (a ring without one has the default). A row
    /// that does not parse (written around signet) is an error of its ring alone.
    pub(crate) async fn schedules(
        &self,
    ) -> Result<HashMap<String, Result<ScheduleRecord, StoreError>>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM schedules"))
            .fetch_all(&self.pool)
            .await?;
        let mut schedules = HashMap::with_capacity(rows.len());
        for row in &rows {
            let ring: String = row.try_get("ring")?;
            schedules.insert(ring, from_row(row).map(|(_, s)| s).map_err(Into::into));
        }
        Ok(schedules)
    }

    pub(crate) async fn schedule(&self, ring: &str) -> Result<ScheduleRecord, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM schedules WHERE ring = $1"))
            .bind(ring)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .as_ref()
            .map(from_row)
            .transpose()?
            .map(|(_, s)| s)
            .unwrap_or_default())
    }

    /// Writes a ring's rule and pause flag with its audit record; with `settings`, also the ring's
    /// policy and timing (they change together, validated together), and what they mean for the
    /// ring's keys on their way: a longer grace at once, and no activation before the floor
    /// (`windows`).
    pub(crate) async fn set_schedule(
        &self,
        ring: &str,
        schedule: &ScheduleRecord,
        settings: Option<RingSettings<'_>>,
        now: UnixMillis,
        record: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = Change::begin(self).await?;
        if let Some(settings) = settings {
            sqlx::query(
                "UPDATE rings SET policy = $1, timing = $2, jwks_cached_until = $3, updated_at = $4 \
                 WHERE name = $5",
            )
            .bind(serde_json::to_string(settings.policy).expect("policy serialises"))
            .bind(serde_json::to_string(settings.timing).expect("timing serialises"))
            .bind(settings.jwks_cached_until)
            .bind(now)
            .bind(ring)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE keys SET jwks_grace_ms = $1 WHERE ring = $2 AND jwks_grace_ms < $1 \
                 AND state IN ('pending', 'published', 'active', 'retiring')",
            )
            .bind(windows::grace_ms(settings.timing))
            .bind(ring)
            .execute(&mut *tx)
            .await?;
            if let Some(floor) =
                windows::activation_floor(settings.timing, settings.jwks_cached_until)
            {
                sqlx::query(
                    "UPDATE keys SET activate_after = $1 WHERE ring = $2 \
                     AND (activate_after IS NULL OR activate_after < $1) \
                     AND state IN ('pending', 'published')",
                )
                .bind(floor)
                .bind(ring)
                .execute(&mut *tx)
                .await?;
            }
        }
        sqlx::query(
            "INSERT INTO schedules (ring, rule, paused, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (ring) DO UPDATE SET rule = $2, paused = $3, updated_at = $4",
        )
        .bind(ring)
        .bind(rule_json(&schedule.rule))
        .bind(i64::from(schedule.paused))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit(std::slice::from_ref(record)).await?;
        Ok(())
    }

    /// Records the outcome of a scheduled rotation attempt, leaving the rule alone (no audit
    /// record: the rotation's own records, or its `key_generation_failed`, say what happened).
    pub(crate) async fn record_schedule_outcome(
        &self,
        ring: &str,
        outcome: &ScheduleRecord,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO schedules ({COLUMNS}, updated_at) VALUES ($1, $2, 0, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (ring) DO UPDATE SET failures = $3, last_error = $4, last_failure_at = $5, \
             retry_at = $6, last_rotation_at = $7, updated_at = $8"
        ))
        .bind(ring)
        .bind(rule_json(&Rule::default()))
        .bind(i64::from(outcome.failures))
        .bind(outcome.last_error.as_deref())
        .bind(outcome.last_failure_at)
        .bind(outcome.retry_at)
        .bind(outcome.last_rotation_at)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Claims a scheduled rotation: records its key's intent only if the ring's active key is
    /// still `active_id` and no key is on its way in. The ring's row is locked (Postgres) so that
    /// replicas deciding from the same state make the rotation once; `false` if another did.
    pub(crate) async fn claim_rotation(
        &self,
        active_id: Option<&str>,
        pending: &KeyRecord,
        record: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let mut tx = Change::begin(self).await?;
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT name FROM rings WHERE name = $1 FOR UPDATE")
                .bind(pending.ring.as_str())
                .execute(&mut *tx)
                .await?;
        }
        let rows = sqlx::query(
            "SELECT id, state FROM keys WHERE ring = $1 AND state IN ('active', 'pending', 'published')",
        )
        .bind(pending.ring.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let mut active = None;
        for row in &rows {
            let state: String = row.try_get("state")?;
            if state != "active" {
                return Ok(false);
            }
            active = Some(row.try_get::<String, _>("id")?);
        }
        if active.as_deref() != active_id {
            return Ok(false);
        }
        keys::insert_pending(&mut tx, pending).await?;
        tx.commit(std::slice::from_ref(record)).await?;
        Ok(true)
    }
}
