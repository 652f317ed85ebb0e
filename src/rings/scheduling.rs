//! Scheduled rotation on the ring service: the schedule API's operations, and the scheduler
//! step of the lifecycle tick that starts every rotation that is due.

use super::rotation::Trigger;
use super::{Actor, RingError, RingService, View, SCHEDULER};
use crate::clock::now_ms;
use crate::domain::{
    windows, AuditEvent, AuditRecord, KeyRecord, KeyState, RingName, RingRecord, ScheduleRecord,
    UnixMillis,
};
use crate::schedule::{self, plan, ScheduleUpdate, ScheduleView};
use crate::store::{RingSettings, StoreError};

impl RingService {
    /// The ring's schedule, the scheduler's last outcome and the plan from now.
    pub(crate) async fn schedule(&self, ring: &RingName) -> Result<ScheduleView, RingError> {
        let record = self.ring_record(ring).await?;
        let schedule = self.store.schedule(ring).await?;
        let keys = self.store.keys_of_ring(ring).await?;
        Ok(schedule::view(&record, &schedule, &keys, now_ms()))
    }

    /// Replaces the ring's rule if the update names one, and changes the timing settings
    /// given; everything is validated together before anything is written.
    pub(crate) async fn set_schedule(
        &self,
        actor: &Actor,
        ring: &RingName,
        update: ScheduleUpdate,
    ) -> Result<ScheduleView, RingError> {
        let record = self.ring_record(ring).await?;
        if update.is_empty() {
            return Err(RingError::Invalid(
                "give a rule or a timing setting to change".into(),
            ));
        }
        let rule = update.rule().map_err(RingError::Invalid)?;
        let mut timing = record.timing.clone();
        let mut policy = record.policy.clone();
        if let Some(v) = update.jwks_max_age_seconds {
            timing.jwks_max_age_seconds = v;
        }
        if let Some(v) = update.publish_lead_seconds {
            timing.publish_lead_seconds = v;
        }
        if let Some(v) = update.leeway_seconds {
            timing.leeway_seconds = v;
        }
        if let Some(v) = update.retain_retired_seconds {
            timing.retain_retired_seconds = v;
        }
        if let Some(v) = update.max_token_ttl_seconds {
            policy.max_ttl_seconds = Some(v);
        }
        policy.validate().map_err(RingError::Invalid)?;
        timing.validate().map_err(RingError::Invalid)?;
        let mut schedule = match (self.store.schedule(ring).await, &rule) {
            (Ok(schedule), _) => schedule,
            // An unreadable stored schedule is replaced whole: the scheduler starts afresh.
            (Err(StoreError::Unreadable(e)), Some(_)) => {
                tracing::warn!(%ring, error = %e, "replacing an unreadable stored schedule");
                ScheduleRecord::default()
            }
            (Err(StoreError::Unreadable(_)), None) => {
                return Err(RingError::Invalid(
                    "the stored schedule cannot be read: give a rule to replace it".into(),
                ))
            }
            (Err(e), _) => return Err(e.into()),
        };
        if let Some(rule) = rule {
            schedule.rule = rule;
        }
        schedule
            .rule
            .validate(timing.publish_lead_seconds)
            .map_err(RingError::Invalid)?;
        if let Some(paused) = update.paused {
            schedule.paused = paused;
        }
        let now = now_ms();
        let changed = AuditRecord::of_ring(
            now,
            actor,
            ring,
            None,
            AuditEvent::ScheduleChanged {
                rule: schedule.rule.clone(),
                paused: schedule.paused,
                timing: timing.clone(),
                max_token_ttl_seconds: policy.max_ttl(),
            },
        );
        let settings = RingSettings {
            policy: &policy,
            timing: &timing,
            jwks_cached_until: windows::cached_until(
                record.jwks_cached_until,
                &record.timing,
                &timing,
                now,
            ),
        };
        self.store
            .set_schedule(ring, &schedule, Some(settings), now, &changed)
            .await?;
        self.refresh().await;
        self.schedule(ring).await
    }

    /// Pauses or resumes the ring's scheduled rotations. Keys already on their way in still
    /// activate, and retiring keys still retire: pausing stops new rotations only.
    pub(crate) async fn pause_schedule(
        &self,
        actor: &Actor,
        ring: &RingName,
        paused: bool,
    ) -> Result<ScheduleView, RingError> {
        self.ring_record(ring).await?;
        let mut schedule = self.store.schedule(ring).await?;
        schedule.paused = paused;
        let now = now_ms();
        let event = if paused {
            AuditEvent::SchedulePaused
        } else {
            AuditEvent::ScheduleResumed
        };
        let record = AuditRecord::of_ring(now, actor, ring, None, event);
        self.store
            .set_schedule(ring, &schedule, None, now, &record)
            .await?;
        self.schedule(ring).await
    }

    /// Starts each scheduled rotation that is due at `now` (a step of the lifecycle tick): the
    /// rings the view has due, each checked again against its schedule and keys as stored now
    /// (another replica may have rotated it, or backed off after a failure). Returns the rings
    /// whose stored schedule cannot be read: they do not rotate until it is rewritten
    /// (`PUT /v1/rings/{ring}/schedule`); every other ring goes on.
    pub(super) async fn run_schedules(
        &self,
        view: &View,
        now: UnixMillis,
    ) -> Result<(), RingError> {
        let mut unreadable: Vec<String> = view
            .unreadable_schedules()
            .map(ToString::to_string)
            .collect();
        for ring in view.due(now) {
            let ring = &ring.record;
            if self.provider_for(ring.backend).is_err() {
                continue; // a replica without this ring's backend leaves it to one that has it
            }
            match self.rotate_if_due(ring, now).await {
                Ok(()) => {}
                Err(RingError::Store(StoreError::Unreadable(_))) => {
                    unreadable.push(ring.name.to_string());
                }
                Err(e) => {
                    tracing::warn!(error = %e, ring = %ring.name, "scheduled rotation failed; retrying after a backoff");
                }
            }
        }
        for ring in &unreadable {
            tracing::error!(%ring, "the ring's stored schedule cannot be read; it does not rotate until the schedule is set again");
        }
        if unreadable.is_empty() {
            Ok(())
        } else {
            Err(RingError::UnreadableSchedules(unreadable))
        }
    }

    /// Starts the ring's scheduled rotation if it is due as stored now.
    async fn rotate_if_due(&self, ring: &RingRecord, now: UnixMillis) -> Result<(), RingError> {
        let schedule = self.store.schedule(&ring.name).await?;
        let keys = self.store.live_keys_of_ring(&ring.name).await?;
        let state = schedule::ring_state(&schedule, &keys);
        if plan::rotation_due(&schedule.rule, ring.timing.publish_lead_seconds, state, now) {
            self.scheduled_rotation(ring, &keys, schedule).await?;
        }
        Ok(())
    }

    /// One scheduled rotation: claimed (only one replica wins), generated, published; its
    /// outcome is kept with the schedule so failures back off and show in the schedule API.
    async fn scheduled_rotation(
        &self,
        ring: &RingRecord,
        keys: &[KeyRecord],
        mut outcome: ScheduleRecord,
    ) -> Result<(), RingError> {
        let active = keys.iter().find(|k| k.state == KeyState::Active);
        let now = now_ms();
        let trigger = Trigger::Schedule {
            active_id: active.map(|k| k.id.as_str()),
        };
        let result = match self
            .start_rotation(SCHEDULER, ring, trigger, active.is_none())
            .await
        {
            Ok(None) => return Ok(()), // another replica (or an admin) started this rotation
            Ok(Some(key)) => {
                tracing::info!(ring = %ring.name, kid = key.kid.as_deref().unwrap_or_default(), "scheduled rotation: new key published");
                outcome.failures = 0;
                outcome.retry_at = None;
                outcome.last_rotation_at = Some(now);
                Ok(())
            }
            Err(e) => {
                outcome.failures = outcome.failures.saturating_add(1);
                outcome.last_error = Some(e.to_string());
                outcome.last_failure_at = Some(now);
                outcome.retry_at = Some(now_ms().plus_ms(plan::backoff_ms(outcome.failures)));
                Err(e)
            }
        };
        self.store
            .record_schedule_outcome(&ring.name, &outcome, now_ms())
            .await?;
        result
    }
}
