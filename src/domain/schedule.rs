//! Rotation schedules: the rule of each ring (monthly on a day, or every so many seconds) and the
//! scheduler's last outcome. A rule's day and time are parsed when they enter (the API, the
//! CLI, or a row read from the store), so the planner never meets an invalid one.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::UnixMillis;

/// Shortest period a schedule may have (tests run short ones).
pub const MIN_PERIOD_SECONDS: u64 = 10;

/// When keys rotate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// On `day` of every month (the last day in shorter months) at `at` (UTC).
    Monthly(Monthly),
    /// Every so many seconds after the previous activation.
    EverySeconds(u64),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Monthly {
    pub day: DayOfMonth,
    pub at: TimeOfDay,
}

/// A day of the month, 1-31; 29-31 mean the last day in shorter months.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct DayOfMonth(u8);

impl TryFrom<u8> for DayOfMonth {
    type Error = String;

    fn try_from(day: u8) -> Result<DayOfMonth, String> {
        if (1..=31).contains(&day) {
            Ok(DayOfMonth(day))
        } else {
            Err("monthly.day must be 1-31 (29-31 mean the last day in shorter months)".into())
        }
    }
}

impl FromStr for DayOfMonth {
    type Err = String;

    fn from_str(day: &str) -> Result<DayOfMonth, String> {
        day.parse::<u8>()
            .map_err(|_| format!("monthly.day must be a number 1-31, got {day:?}"))?
            .try_into()
    }
}

impl From<DayOfMonth> for u8 {
    fn from(day: DayOfMonth) -> u8 {
        day.0
    }
}

/// A time of day in UTC, written `HH:MM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeOfDay {
    hour: u32,
    minute: u32,
}

impl FromStr for TimeOfDay {
    type Err = String;

    fn from_str(at: &str) -> Result<TimeOfDay, String> {
        let bad = || format!("monthly.at must be HH:MM (UTC), got {at:?}");
        let (h, m) = at.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 || !(h.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let (hour, minute): (u32, u32) =
            (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if hour > 23 || minute > 59 {
            return Err(bad());
        }
        Ok(TimeOfDay { hour, minute })
    }
}

impl TryFrom<String> for TimeOfDay {
    type Error = String;

    fn try_from(at: String) -> Result<TimeOfDay, String> {
        at.parse()
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

impl From<TimeOfDay> for String {
    fn from(at: TimeOfDay) -> String {
        at.to_string()
    }
}

impl Default for Rule {
    /// The first of every month at midnight UTC.
    fn default() -> Rule {
        Rule::Monthly(Monthly {
            day: DayOfMonth(1),
            at: TimeOfDay { hour: 0, minute: 0 },
        })
    }
}

impl Rule {
    /// Checks the rule against the ring's `publish_lead_seconds`: the next key must be published
    /// after the current one activates.
    pub fn validate(&self, publish_lead_seconds: u32) -> Result<(), String> {
        let lead = u64::from(publish_lead_seconds);
        match self {
            // The shortest gap between two monthly occurrences: February's 28 days.
            Rule::Monthly(_) if lead >= 28 * 86_400 => Err(format!(
                "publish_lead_seconds ({lead}) must be less than the shortest monthly period (2419200 s, 28 days)"
            )),
            Rule::EverySeconds(period) if *period < MIN_PERIOD_SECONDS => Err(format!(
                "every_seconds ({period}) must be at least {MIN_PERIOD_SECONDS}"
            )),
            Rule::EverySeconds(period) if *period <= lead => Err(format!(
                "every_seconds ({period}) must exceed publish_lead_seconds ({lead}): the next key must be published after the current one activates"
            )),
            Rule::Monthly(_) | Rule::EverySeconds(_) => Ok(()),
        }
    }

    /// The first activation time strictly after `after`.
    pub fn next_after(&self, after: UnixMillis) -> UnixMillis {
        match self {
            Rule::EverySeconds(period) => {
                after.plus_ms(i64::try_from(*period).unwrap_or(i64::MAX / 1000) * 1000)
            }
            Rule::Monthly(monthly) => {
                let after_ms = after;
                let after = DateTime::from_timestamp_millis(after.as_millis()).unwrap_or_default();
                let (mut year, mut month) = (after.year(), after.month());
                loop {
                    let candidate = occurrence(year, month, monthly);
                    if candidate > after_ms {
                        return candidate;
                    }
                    (year, month) = if month == 12 {
                        (year + 1, 1)
                    } else {
                        (year, month + 1)
                    };
                }
            }
        }
    }
}

/// The number of days in `month` of `year` (28 to 31).
fn days_in_month(year: i32, month: u32) -> u32 {
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(next_year, next_month, 1)
        .and_then(|first_of_next| first_of_next.pred_opt())
        .map_or(28, |last| last.day())
}

/// The rule's day of `month` (clamped to its last day) at its time, UTC.
fn occurrence(year: i32, month: u32, monthly: &Monthly) -> UnixMillis {
    let day = u32::from(monthly.day.0).min(days_in_month(year, month));
    let TimeOfDay { hour, minute } = monthly.at;
    // Every field is in range and UTC has no gaps: `single` always has the one answer.
    Utc.with_ymd_and_hms(year, month, day, hour, minute, 0)
        .single()
        .map_or(UnixMillis::from_millis(i64::MAX), |at| {
            UnixMillis::from_millis(at.timestamp_millis())
        })
}

/// A ring's rotation rule and pause flag, and the scheduler's last outcome. A ring without a
/// stored schedule has the default one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScheduleRecord {
    pub rule: Rule,
    pub paused: bool,
    pub failures: u32,
    pub last_error: Option<String>,
    pub last_failure_at: Option<UnixMillis>,
    pub retry_at: Option<UnixMillis>,
    pub last_rotation_at: Option<UnixMillis>,
}
