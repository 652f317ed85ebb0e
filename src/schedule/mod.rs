//! Scheduled rotation: the rule of each ring (monthly on a day, or every so many seconds), the
//! planner that derives what happens next, and the shapes the schedule API speaks.

pub mod plan;

use serde::{Deserialize, Serialize};

use crate::clock::rfc3339;
use crate::domain::{
    KeyRecord, KeyState, Kid, Monthly, RingName, RingRecord, Rule, ScheduleRecord, UnixMillis,
};

/// `PUT /v1/rings/{ring}/schedule`: at most one rule (none: the ring keeps its rule), and the
/// timing settings to change; at least one of them.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleUpdate {
    pub monthly: Option<Monthly>,
    pub every_seconds: Option<u64>,
    pub jwks_max_age_seconds: Option<u32>,
    pub publish_lead_seconds: Option<u32>,
    pub max_token_ttl_seconds: Option<u32>,
    pub leeway_seconds: Option<u32>,
    pub retain_retired_seconds: Option<u64>,
    pub paused: Option<bool>,
}

impl ScheduleUpdate {
    /// The new rule, if the update names one.
    pub fn rule(&self) -> Result<Option<Rule>, String> {
        match (&self.monthly, self.every_seconds) {
            (Some(monthly), None) => Ok(Some(Rule::Monthly(monthly.clone()))),
            (None, Some(seconds)) => Ok(Some(Rule::EverySeconds(seconds))),
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err("give one rule, not both: {\"monthly\": {\"day\": 1, \"at\": \"00:00\"}} or {\"every_seconds\": n}".into()),
        }
    }

    /// Whether the update changes nothing at all.
    pub fn is_empty(&self) -> bool {
        let ScheduleUpdate {
            monthly,
            every_seconds,
            jwks_max_age_seconds,
            publish_lead_seconds,
            max_token_ttl_seconds,
            leeway_seconds,
            retain_retired_seconds,
            paused,
        } = self;
        monthly.is_none()
            && every_seconds.is_none()
            && jwks_max_age_seconds.is_none()
            && publish_lead_seconds.is_none()
            && max_token_ttl_seconds.is_none()
            && leeway_seconds.is_none()
            && retain_retired_seconds.is_none()
            && paused.is_none()
    }
}

/// What `GET /v1/rings/{ring}/schedule` answers: the rule, the timing, the scheduler's last
/// outcome, and the plan from now. Times are RFC 3339.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    pub ring: RingName,
    /// `"monthly": {"day", "at"}` or `"every_seconds": n`.
    #[serde(flatten)]
    pub rule: Rule,
    pub paused: bool,
    pub jwks_max_age_seconds: u32,
    pub publish_lead_seconds: u32,
    pub max_token_ttl_seconds: u32,
    pub leeway_seconds: u32,
    pub retain_retired_seconds: u64,
    pub last_rotation_at: Option<String>,
    pub failures: u32,
    pub last_error: Option<String>,
    pub last_failure_at: Option<String>,
    pub retry_at: Option<String>,
    pub plan: Plan,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Plan {
    pub next_publish_at: Option<String>,
    pub next_activation_at: Option<String>,
    /// What happens next to each key on its way in or out.
    pub keys: Vec<PlannedStep>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlannedStep {
    pub kid: Option<Kid>,
    pub state: KeyState,
    /// `activates`, `retires` or `is_destroyed`.
    pub event: &'static str,
    pub at: String,
}

/// The schedule of `ring` as seen at `now`.
pub fn view(
    ring: &RingRecord,
    schedule: &ScheduleRecord,
    keys: &[KeyRecord],
    now: UnixMillis,
) -> ScheduleView {
    let state = ring_state(schedule, keys);
    let next = plan::next_rotation(&schedule.rule, ring.timing.publish_lead_seconds, state, now);
    let mut steps = Vec::new();
    for key in keys {
        let (event, at) = match key.state {
            KeyState::Published => ("activates", key.activate_after),
            KeyState::Retiring => ("retires", key.retire_after),
            KeyState::Retired | KeyState::Revoked => ("is_destroyed", key.destroy_after),
            _ => continue,
        };
        if let Some(at) = at {
            steps.push(PlannedStep {
                kid: key.kid.clone(),
                state: key.state,
                event,
                at: rfc3339(at),
            });
        }
    }
    // The upcoming key activates at its own time; the rotation after it follows the rule.
    let upcoming = keys.iter().find(|k| k.state == KeyState::Published);
    let (next_publish, next_activation) = match (next, upcoming) {
        (Some(next), _) => (Some(next.publish_at), Some(next.activate_at)),
        (None, Some(key)) if !schedule.paused => {
            let activation = key.activate_after.unwrap_or(now);
            let after =
                plan::next_activation(&schedule.rule, activation, ring.timing.publish_lead_seconds);
            (
                Some(after.minus_ms(1000 * i64::from(ring.timing.publish_lead_seconds))),
                Some(after),
            )
        }
        _ => (None, None),
    };
    ScheduleView {
        ring: ring.name.clone(),
        rule: schedule.rule.clone(),
        paused: schedule.paused,
        jwks_max_age_seconds: ring.timing.jwks_max_age_seconds,
        publish_lead_seconds: ring.timing.publish_lead_seconds,
        max_token_ttl_seconds: ring.policy.max_ttl(),
        leeway_seconds: ring.timing.leeway_seconds,
        retain_retired_seconds: ring.timing.retain_retired_seconds,
        last_rotation_at: schedule.last_rotation_at.map(rfc3339),
        failures: schedule.failures,
        last_error: schedule.last_error.clone(),
        last_failure_at: schedule.last_failure_at.map(rfc3339),
        retry_at: schedule
            .retry_at
            .filter(|_| schedule.failures > 0)
            .map(rfc3339),
        plan: Plan {
            next_publish_at: next_publish.map(rfc3339),
            next_activation_at: next_activation.map(rfc3339),
            keys: steps,
        },
    }
}

/// The planner's view of a ring: its active key, whether a key is on its way in, the backoff.
pub fn ring_state(schedule: &ScheduleRecord, keys: &[KeyRecord]) -> plan::RingState {
    plan::RingState {
        active_since: keys
            .iter()
            .find(|k| k.state == KeyState::Active)
            .map(|k| k.activated_at.unwrap_or(k.created_at)),
        upcoming: keys
            .iter()
            .any(|k| matches!(k.state, KeyState::Pending | KeyState::Published)),
        paused: schedule.paused,
        retry_at: schedule.retry_at.filter(|_| schedule.failures > 0),
    }
}
