//! The rotation planner: pure functions of a rule, the ring's keys and a given time, so tests can
//! drive time wherever they like (month ends, leap years, downtime).
//!
//! A ring's next rotation is derived from its active key, not stored: the next activation is the
//! rule's first occurrence after the active key's activation, and the new key is published
//! `publish_lead` before that. A rotation that failed or was missed therefore stays due until it
//! happens, and a late one (the service was down) publishes at once and activates only once
//! `publish_lead` has passed since publication.

use crate::domain::{Rule, UnixMillis};

/// When the key after one activated at `since` activates: the rule's first occurrence after
/// `since`, unless that comes less than `publish_lead` after `since` (a ring created, or a key
/// activated by hand, just before an occurrence keeps its key until the following one).
pub fn next_activation(rule: &Rule, since: UnixMillis, publish_lead_seconds: u32) -> UnixMillis {
    let planned = rule.next_after(since);
    if planned.minus_ms(1000 * i64::from(publish_lead_seconds)) < since {
        rule.next_after(planned)
    } else {
        planned
    }
}

/// What the planner needs to know about a ring right now.
#[derive(Clone, Copy, Debug)]
pub struct RingState {
    /// When the active key became active; `None` if the ring has no active key.
    pub active_since: Option<UnixMillis>,
    /// Whether a key is already on its way in (pending or published).
    pub upcoming: bool,
    pub paused: bool,
    /// Not before this time (a failed attempt's backoff).
    pub retry_at: Option<UnixMillis>,
}

/// The next scheduled rotation: when its key is published and when it activates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Next {
    pub publish_at: UnixMillis,
    pub activate_at: UnixMillis,
}

/// When the next scheduled rotation publishes and activates, seen at `now`; `None` while paused
/// or while a rotation is already under way (its key's own times say what happens next).
pub fn next_rotation(
    rule: &Rule,
    publish_lead_seconds: u32,
    state: RingState,
    now: UnixMillis,
) -> Option<Next> {
    if state.paused || state.upcoming {
        return None;
    }
    let lead = 1000 * i64::from(publish_lead_seconds);
    let planned = match state.active_since {
        Some(since) => next_activation(rule, since, publish_lead_seconds),
        // No key signs: rotate at once.
        None => now,
    };
    // Missed (the service was down, or an attempt failed): publish now, and activate only once
    // the key has been published for the full lead.
    let mut publish_at = planned.minus_ms(lead).max(now);
    if let Some(retry_at) = state.retry_at {
        publish_at = publish_at.max(retry_at);
    }
    Some(Next {
        publish_at,
        activate_at: planned.max(publish_at.plus_ms(lead)),
    })
}

/// From when a scheduled rotation should start: the time at which [`next_rotation`]'s
/// `publish_at` stops lying ahead. Independent of the time it is asked at, so replicas index
/// rings by it; `None` while paused or while a rotation is under way.
pub fn due_at(rule: &Rule, publish_lead_seconds: u32, state: RingState) -> Option<UnixMillis> {
    if state.paused || state.upcoming {
        return None;
    }
    let lead = 1000 * i64::from(publish_lead_seconds);
    let publish = match state.active_since {
        Some(since) => next_activation(rule, since, publish_lead_seconds).minus_ms(lead),
        None => UnixMillis::from_millis(0), // no key signs: at once
    };
    Some(state.retry_at.map_or(publish, |retry| publish.max(retry)))
}

/// Whether a scheduled rotation should start at `now`.
pub fn rotation_due(
    rule: &Rule,
    publish_lead_seconds: u32,
    state: RingState,
    now: UnixMillis,
) -> bool {
    due_at(rule, publish_lead_seconds, state).is_some_and(|at| at <= now)
}

/// How long to wait before retrying after `failures` consecutive failed attempts: 5 s doubling
/// to at most 5 minutes.
pub fn backoff_ms(failures: u32) -> i64 {
    (5_000i64 << failures.saturating_sub(1).min(6)).min(300_000)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Datelike};

    use super::*;
    use crate::domain::{DayOfMonth, Monthly, TimeOfDay};

    fn ms(n: i64) -> UnixMillis {
        UnixMillis::from_millis(n)
    }

    fn at(text: &str) -> UnixMillis {
        UnixMillis::from_millis(
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .timestamp_millis(),
        )
    }

    fn monthly(day: u8, time: &str) -> Rule {
        Rule::Monthly(Monthly {
            day: DayOfMonth::try_from(day).unwrap(),
            at: time.parse().unwrap(),
        })
    }

    const LEAD: u32 = 600;

    #[test]
    fn the_default_rule_is_the_first_of_the_month_at_midnight() {
        let rule = Rule::default();
        assert_eq!(
            rule.next_after(at("2026-01-15T10:00:00Z")),
            at("2026-02-01T00:00:00Z")
        );
        assert_eq!(
            rule.next_after(at("2026-12-01T00:00:00Z")),
            at("2027-01-01T00:00:00Z")
        );
        assert_eq!(
            rule.next_after(at("2026-11-30T23:59:59Z")),
            at("2026-12-01T00:00:00Z")
        );
    }

    #[test]
    fn monthly_days_past_a_month_end_fall_on_its_last_day_including_leap_years() {
        let rule = monthly(31, "12:30");
        assert_eq!(
            rule.next_after(at("2026-01-31T12:30:00Z")),
            at("2026-02-28T12:30:00Z")
        );
        assert_eq!(
            rule.next_after(at("2028-01-31T12:30:00Z")),
            at("2028-02-29T12:30:00Z")
        );
        assert_eq!(
            rule.next_after(at("2028-02-29T12:30:00Z")),
            at("2028-03-31T12:30:00Z")
        );
        assert_eq!(
            rule.next_after(at("2026-04-01T00:00:00Z")),
            at("2026-04-30T12:30:00Z")
        );
        let rule = monthly(29, "00:00");
        assert_eq!(
            rule.next_after(at("2100-02-01T00:00:00Z")),
            at("2100-02-28T00:00:00Z"),
            "2100 is not a leap year"
        );
        assert_eq!(
            rule.next_after(at("2000-02-01T00:00:00Z")),
            at("2000-02-29T00:00:00Z"),
            "2000 is"
        );
    }

    #[test]
    fn a_key_activated_just_before_an_occurrence_keeps_signing_until_the_next_one() {
        let rule = Rule::default();
        let created = at("2026-11-30T23:55:00Z");
        assert_eq!(
            next_activation(&rule, created, LEAD),
            at("2027-01-01T00:00:00Z")
        );
        let earlier = at("2026-11-30T23:49:00Z");
        assert_eq!(
            next_activation(&rule, earlier, LEAD),
            at("2026-12-01T00:00:00Z")
        );
        // Periods always leave the lead: the period exceeds it.
        assert_eq!(
            next_activation(&Rule::EverySeconds(60), ms(0), 30),
            ms(60_000)
        );
    }

    #[test]
    fn utc_has_no_daylight_saving_gaps() {
        // The nights European and US clocks change: still exactly 02:30 UTC.
        let rule = monthly(29, "02:30");
        assert_eq!(
            rule.next_after(at("2026-03-01T00:00:00Z")),
            at("2026-03-29T02:30:00Z")
        );
        let rule = monthly(8, "02:30");
        assert_eq!(
            rule.next_after(at("2026-03-01T00:00:00Z")),
            at("2026-03-08T02:30:00Z")
        );
    }

    #[test]
    fn periods_count_from_the_previous_activation() {
        let rule = Rule::EverySeconds(3600);
        assert_eq!(rule.next_after(ms(1_000)), ms(3_601_000));
        let state = RingState {
            active_since: Some(ms(0)),
            upcoming: false,
            paused: false,
            retry_at: None,
        };
        let next = next_rotation(&rule, 60, state, ms(10)).unwrap();
        assert_eq!(
            next,
            Next {
                publish_at: ms(3_540_000),
                activate_at: ms(3_600_000)
            }
        );
        assert!(!rotation_due(&rule, 60, state, ms(3_539_999)));
        assert!(rotation_due(&rule, 60, state, ms(3_540_000)));
    }

    #[test]
    fn paused_schedules_and_rotations_under_way_plan_nothing() {
        let rule = Rule::EverySeconds(60);
        let running = RingState {
            active_since: Some(ms(0)),
            upcoming: false,
            paused: false,
            retry_at: None,
        };
        let paused = RingState {
            paused: true,
            ..running
        };
        assert!(next_rotation(&rule, 10, paused, ms(1_000_000)).is_none());
        assert!(!rotation_due(&rule, 10, paused, ms(1_000_000)));
        let under_way = RingState {
            upcoming: true,
            ..running
        };
        assert!(!rotation_due(&rule, 10, under_way, ms(1_000_000)));
        // Resumed long after the due time: due at once, activating a full lead later.
        assert!(rotation_due(&rule, 10, running, ms(1_000_000)));
        assert_eq!(
            next_rotation(&rule, 10, running, ms(1_000_000)).unwrap(),
            Next {
                publish_at: ms(1_000_000),
                activate_at: ms(1_010_000)
            }
        );
    }

    #[test]
    fn after_downtime_it_publishes_now_and_activates_a_full_lead_later() {
        let rule = Rule::default();
        let state = RingState {
            active_since: Some(at("2026-01-01T00:00:00Z")),
            upcoming: false,
            paused: false,
            retry_at: None,
        };
        // Down from Jan 31 23:00 to Feb 1 09:00: the Feb 1 rotation was missed.
        let back = at("2026-02-01T09:00:00Z");
        let next = next_rotation(&rule, LEAD, state, back).unwrap();
        assert_eq!(next.publish_at, back);
        assert_eq!(next.activate_at, back.plus_ms(1000 * i64::from(LEAD)));
        // Up again shortly before the due time: the key is published now and still activates on time.
        let early = at("2026-01-31T23:55:00Z");
        let next = next_rotation(&rule, LEAD, state, early).unwrap();
        assert_eq!(next.publish_at, early);
        assert_eq!(
            next.activate_at,
            at("2026-02-01T00:05:00Z"),
            "a full lead after publication"
        );
    }

    #[test]
    fn failed_attempts_back_off_and_stay_due() {
        let rule = Rule::EverySeconds(100);
        let state = RingState {
            active_since: Some(ms(0)),
            upcoming: false,
            paused: false,
            retry_at: Some(ms(150_000)),
        };
        assert!(!rotation_due(&rule, 10, state, ms(120_000)));
        assert!(rotation_due(&rule, 10, state, ms(150_000)));
        assert_eq!(backoff_ms(1), 5_000);
        assert_eq!(backoff_ms(2), 10_000);
        assert_eq!(backoff_ms(30), 300_000);
    }

    #[test]
    fn rules_that_break_an_invariant_are_refused_naming_it() {
        let message = Rule::EverySeconds(600).validate(600).unwrap_err();
        assert!(
            message.contains("every_seconds (600) must exceed publish_lead_seconds (600)"),
            "{message}"
        );
        assert!(Rule::EverySeconds(9)
            .validate(1)
            .unwrap_err()
            .contains("at least 10"));
        assert!(DayOfMonth::try_from(0).is_err());
        assert!(DayOfMonth::try_from(32)
            .unwrap_err()
            .contains("monthly.day"));
        assert!("24:00".parse::<TimeOfDay>().unwrap_err().contains("HH:MM"));
        assert!("7:00".parse::<TimeOfDay>().is_err());
        assert!("12:60".parse::<TimeOfDay>().is_err());
        assert_eq!("07:05".parse::<TimeOfDay>().unwrap().to_string(), "07:05");
        assert!(monthly(1, "00:00")
            .validate(28 * 86_400)
            .unwrap_err()
            .contains("shortest monthly period"));
        assert!(monthly(31, "23:59").validate(LEAD).is_ok());
        assert!(Rule::EverySeconds(601).validate(600).is_ok());
    }

    #[test]
    fn a_ring_without_an_active_key_rotates_at_once() {
        let state = RingState {
            active_since: None,
            upcoming: false,
            paused: false,
            retry_at: None,
        };
        assert!(rotation_due(&Rule::default(), LEAD, state, ms(5)));
    }

    /// Two years of monthly rotations on every day of the month, with the service down at
    /// random: each planned step keeps the timing invariants of docs/design.md.
    #[test]
    fn every_planned_step_keeps_the_lifecycle_invariants() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut random = move |below: i64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            i64::try_from(seed % u64::try_from(below).unwrap()).unwrap()
        };
        let lead_ms = 1000 * i64::from(LEAD);
        for rule in (1..=31)
            .map(|day| monthly(day, "06:15"))
            .chain([Rule::EverySeconds(86_400), Rule::EverySeconds(3_600)])
        {
            rule.validate(LEAD).unwrap();
            let mut active_since = at("2026-01-01T06:15:00Z");
            let mut now = active_since;
            for _ in 0..24 {
                let state = RingState {
                    active_since: Some(active_since),
                    upcoming: false,
                    paused: false,
                    retry_at: None,
                };
                let next = next_rotation(&rule, LEAD, state, now).unwrap();
                let planned = next_activation(&rule, active_since, LEAD);
                // Never signs with a key published for less than the lead.
                assert!(
                    next.activate_at.ms_since(next.publish_at) >= lead_ms,
                    "{rule:?}"
                );
                // Never earlier than planned, and on time when nothing was missed.
                assert!(next.activate_at >= planned);
                if now <= planned.minus_ms(lead_ms) {
                    assert_eq!(
                        next,
                        Next {
                            publish_at: planned.minus_ms(lead_ms),
                            activate_at: planned
                        }
                    );
                }
                // Never in the past, and rotations move forward.
                assert!(next.publish_at >= now && next.activate_at > active_since);
                if let Rule::Monthly(m) = &rule {
                    let when = DateTime::from_timestamp_millis(planned.as_millis()).unwrap();
                    assert_eq!(when.format("%H:%M").to_string(), m.at.to_string());
                    let last_of_month =
                        when.date_naive().succ_opt().unwrap().month() != when.month();
                    assert!(when.day() == u32::from(u8::from(m.day)) || last_of_month);
                }
                // The service runs on, or is down for a while (sometimes past the due time).
                now = next.publish_at.plus_ms(random(3) * random(2 * lead_ms + 1));
                let state = RingState {
                    active_since: Some(active_since),
                    upcoming: false,
                    paused: false,
                    retry_at: None,
                };
                let late = next_rotation(&rule, LEAD, state, now).unwrap();
                assert!(rotation_due(&rule, LEAD, state, now));
                active_since = late.activate_at;
                now = active_since.plus_ms(random(1000));
            }
        }
    }

    #[test]
    fn a_rotation_is_due_exactly_when_its_publication_no_longer_lies_ahead() {
        let rules = [
            Rule::EverySeconds(60),
            Rule::EverySeconds(3_600),
            monthly(31, "12:30"),
        ];
        for rule in &rules {
            for active_since in [None, Some(at("2026-01-31T12:00:00Z"))] {
                for retry_at in [None, Some(at("2026-02-10T00:00:00Z"))] {
                    let state = RingState {
                        active_since,
                        upcoming: false,
                        paused: false,
                        retry_at,
                    };
                    let start = at("2026-01-31T12:00:00Z").as_millis();
                    for step in 0..2_000 {
                        let now = ms(start + step * 1_800_000);
                        let next = next_rotation(rule, LEAD, state, now).unwrap();
                        assert_eq!(
                            rotation_due(rule, LEAD, state, now),
                            next.publish_at <= now,
                            "{rule:?} {state:?} at {now:?}"
                        );
                    }
                }
            }
        }
    }
}
