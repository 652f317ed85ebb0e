//! Refusals that are counted rather than recorded one by one: requests denied to callers who did
//! not authenticate, and requests refused for going over a rate limit. Each becomes one
//! `requests_denied` record per principal, source address, status, code and minute, with the
//! count and the first request of the minute as a sample, written when the minute ends (or when
//! the server stops). So however many such requests arrive, the log grows by a bounded amount per
//! minute, and a flood cannot make the audit writer the bottleneck of everyone's signatures.
//!
//! At most [`MAX_TALLIES`] tallies are open at once; beyond that, new sources are counted
//! together under the source `other`. A crash loses the counts of the minute under way (the log
//! line of each refusal remains).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::domain::{AuditEvent, AuditRecord, CallerText, ErrorCode, Kid, RingName, UnixMillis};

/// The length of one tally, in milliseconds.
pub const WINDOW_MS: i64 = 60_000;
/// The most tallies open at once.
pub const MAX_TALLIES: usize = 4096;
/// The source under which refusals are counted once [`MAX_TALLIES`] are open.
const OTHER_SOURCES: &str = "other";

/// One refused request, as the tally counts it.
pub struct Refusal {
    pub time: UnixMillis,
    /// `anonymous`, or the client that was refused.
    pub principal: String,
    /// The caller's address (or what the trusted proxy header says it is).
    pub source: String,
    pub status: u16,
    pub code: ErrorCode,
    pub reason: String,
    pub method: String,
    pub path: String,
    pub ring: Option<RingName>,
    pub kid: Option<Kid>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    window: UnixMillis,
    principal: String,
    source: String,
    status: u16,
    code: ErrorCode,
}

struct Tally {
    count: u64,
    first: Refusal,
}

#[derive(Default)]
pub struct RefusalTally {
    open: Mutex<HashMap<Key, Tally>>,
}

impl RefusalTally {
    pub fn count(&self, refusal: Refusal) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let mut key = Key {
            window: refusal
                .time
                .minus_ms(refusal.time.as_millis().rem_euclid(WINDOW_MS)),
            principal: refusal.principal.clone(),
            source: refusal.source.clone(),
            status: refusal.status,
            code: refusal.code,
        };
        if open.len() >= MAX_TALLIES && !open.contains_key(&key) {
            OTHER_SOURCES.clone_into(&mut key.source);
        }
        open.entry(key)
            .or_insert_with(|| Tally {
                count: 0,
                first: refusal,
            })
            .count += 1;
    }

    /// The records of every tally whose minute ended by `now` (all of them when `now` is
    /// `None`), removed from the tally.
    pub fn take_ended(&self, now: Option<UnixMillis>) -> Vec<AuditRecord> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let ended: Vec<Key> = open
            .keys()
            .filter(|key| now.is_none_or(|now| key.window.plus_ms(WINDOW_MS) <= now))
            .cloned()
            .collect();
        let mut records: Vec<AuditRecord> = ended
            .into_iter()
            .filter_map(|key| open.remove(&key).map(|tally| record(key, tally)))
            .collect();
        records.sort_by_key(|r| r.time);
        records
    }
}

fn record(key: Key, tally: Tally) -> AuditRecord {
    let first = tally.first;
    let mut record = AuditRecord::new(
        first.time,
        &key.principal,
        AuditEvent::RequestsDenied {
            source: CallerText::stored(&key.source),
            status: key.status,
            code: key.code,
            count: tally.count,
            window_start: key.window,
            window_end: key.window.plus_ms(WINDOW_MS),
            method: CallerText::stored(&first.method),
            path: CallerText::stored(&first.path),
            reason: CallerText::stored(&first.reason),
        },
    );
    record.ring = first.ring;
    record.kid = first.kid;
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(time: i64, source: &str) -> Refusal {
        Refusal {
            time: UnixMillis::from_millis(time),
            principal: "anonymous".into(),
            source: source.into(),
            status: 401,
            code: ErrorCode::Unauthenticated,
            reason: "missing bearer token".into(),
            method: "POST".into(),
            path: format!("/v1/rings/{time}/sign"),
            ring: None,
            kid: None,
        }
    }

    #[test]
    fn refusals_of_one_source_and_minute_make_one_record() {
        let tally = RefusalTally::default();
        for t in 0..1000 {
            tally.count(refusal(t, "10.0.0.1"));
        }
        tally.count(refusal(WINDOW_MS + 5, "10.0.0.1"));
        assert!(tally
            .take_ended(Some(UnixMillis::from_millis(WINDOW_MS - 1)))
            .is_empty());
        let records = tally.take_ended(Some(UnixMillis::from_millis(WINDOW_MS)));
        assert_eq!(records.len(), 1);
        let AuditEvent::RequestsDenied { count, path, .. } = records[0].event() else {
            panic!("a tally record");
        };
        assert_eq!(*count, 1000);
        assert_eq!(
            path.as_str(),
            "/v1/rings/0/sign",
            "the first request is the sample"
        );
        assert_eq!(
            tally.take_ended(None).len(),
            1,
            "the next minute is written at close"
        );
        assert!(tally.take_ended(None).is_empty());
    }

    #[test]
    fn sources_beyond_the_bound_are_counted_together() {
        let tally = RefusalTally::default();
        for n in 0..MAX_TALLIES + 500 {
            tally.count(refusal(0, &format!("10.0.{}.{}", n / 256, n % 256)));
        }
        let records = tally.take_ended(None);
        assert_eq!(records.len(), MAX_TALLIES + 1);
        let other: u64 = records
            .iter()
            .filter_map(|r| match r.event() {
                AuditEvent::RequestsDenied { source, count, .. } if source.as_str() == "other" => {
                    Some(*count)
                }
                _ => None,
            })
            .sum();
        assert_eq!(other, 500);
    }
}
