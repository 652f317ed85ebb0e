//! The revocation list as each replica holds it in memory: revoked tokens by ring and `jti`,
//! revoked subjects by ring and `sub` with the time before which their tokens were issued.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};

use crate::store::RevokedRow;

#[derive(Default)]
struct RingRevocations {
    /// `jti` -> when the revocation lapses (seconds).
    tokens: HashMap<String, i64>,
    /// `sub` -> (tokens issued before this are revoked, when the revocation lapses), seconds.
    subjects: HashMap<String, (i64, i64)>,
}

/// What an entry of the list revokes, in a ring.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Entry {
    Token(String),
    Subject(String),
}

#[derive(Default)]
pub struct RevocationList {
    /// The `seq` of the newest row held: the rows above it are what a refresh reads.
    seq: i64,
    rings: HashMap<String, RingRevocations>,
    /// Every entry by when it lapses, earliest first, so that forgetting costs what lapsed, not
    /// what is held. An entry whose lapse moved later is here twice; the earlier one is skipped.
    lapses: BTreeSet<(i64, String, Entry)>,
    entries: usize,
}

impl RevocationList {
    pub fn seq(&self) -> i64 {
        self.seq
    }

    /// How many tokens and subjects the list holds.
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    pub fn add(&mut self, row: RevokedRow) {
        self.seq = self.seq.max(row.seq);
        let ring = self.rings.entry(row.ring.clone()).or_default();
        let (entry, new) = match (row.jti, row.sub, row.issued_before) {
            (Some(jti), _, _) => {
                let new = !ring.tokens.contains_key(&jti);
                let expires = ring.tokens.entry(jti.clone()).or_insert(row.expires);
                *expires = (*expires).max(row.expires);
                (Entry::Token(jti), new)
            }
            (None, Some(sub), Some(issued_before)) => {
                let new = !ring.subjects.contains_key(&sub);
                let held = ring
                    .subjects
                    .entry(sub.clone())
                    .or_insert((issued_before, row.expires));
                *held = (held.0.max(issued_before), held.1.max(row.expires));
                (Entry::Subject(sub), new)
            }
            // The table's CHECK makes every row one of the two.
            _ => return,
        };
        self.entries += usize::from(new);
        self.lapses.insert((row.expires, row.ring, entry));
    }

    /// Drops what covers no token at `now` (seconds) any more.
    pub fn forget_expired(&mut self, now: i64) {
        while let Some((expires, ring, entry)) = self.lapses.first().cloned() {
            if expires >= now {
                break;
            }
            self.lapses.pop_first();
            let Some(held) = self.rings.get_mut(&ring) else {
                continue;
            };
            // Only if this was the entry's last lapse: a later revocation may have moved it.
            let forgotten = match &entry {
                Entry::Token(jti) => {
                    held.tokens.get(jti) == Some(&expires) && held.tokens.remove(jti).is_some()
                }
                Entry::Subject(sub) => {
                    held.subjects.get(sub).map(|(_, e)| *e) == Some(expires)
                        && held.subjects.remove(sub).is_some()
                }
            };
            self.entries -= usize::from(forgotten);
            if held.tokens.is_empty() && held.subjects.is_empty() {
                self.rings.remove(&ring);
            }
        }
    }

    /// Whether the token of `ring` with `claims` is revoked: its `jti` is listed, or its `sub`
    /// is and it was issued (`iat`) before the time given, or carries no `iat`.
    pub fn revoked(&self, ring: &str, claims: &Map<String, Value>) -> bool {
        let Some(listed) = self.rings.get(ring) else {
            return false;
        };
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        if text("jti").is_some_and(|jti| listed.tokens.contains_key(jti)) {
            return true;
        }
        text("sub")
            .and_then(|sub| listed.subjects.get(sub))
            .is_some_and(|(issued_before, _)| {
                claims
                    .get("iat")
                    .and_then(Value::as_f64)
                    .is_none_or(|iat| iat < *issued_before as f64)
            })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn row(seq: i64, jti: Option<&str>, sub: Option<(&str, i64)>, expires: i64) -> RevokedRow {
        RevokedRow {
            seq,
            ring: "orders".into(),
            jti: jti.map(Into::into),
            sub: sub.map(|(s, _)| s.into()),
            issued_before: sub.map(|(_, t)| t),
            expires,
        }
    }

    fn claims(value: serde_json::Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn a_token_is_revoked_by_its_jti_and_a_subject_by_issue_time() {
        let mut list = RevocationList::default();
        list.add(row(3, Some("t-1"), None, 500));
        list.add(row(7, None, Some(("alice", 100)), 900));
        assert_eq!((list.seq(), list.len()), (7, 2));

        assert!(list.revoked("orders", &claims(json!({"jti": "t-1", "sub": "bob"}))));
        assert!(!list.revoked("orders", &claims(json!({"jti": "t-2", "sub": "bob"}))));
        assert!(!list.revoked("other", &claims(json!({"jti": "t-1"}))));
        let alice = |iat: serde_json::Value| {
            list.revoked(
                "orders",
                &claims(json!({"jti": "t-3", "sub": "alice", "iat": iat})),
            )
        };
        assert!(alice(json!(99)));
        assert!(!alice(json!(100)));
        assert!(list.revoked("orders", &claims(json!({"sub": "alice"}))));
    }

    #[test]
    fn what_covers_no_token_any_more_is_forgotten() {
        let mut list = RevocationList::default();
        list.add(row(1, Some("t-1"), None, 500));
        list.add(row(2, Some("t-1"), None, 600));
        list.add(row(3, None, Some(("alice", 100)), 700));
        assert_eq!(list.len(), 2);
        // The first revocation of t-1 lapses; the second still holds it.
        list.forget_expired(550);
        assert_eq!(list.len(), 2);
        assert!(list.revoked("orders", &claims(json!({"jti": "t-1"}))));
        list.forget_expired(601);
        assert_eq!(list.len(), 1);
        assert!(!list.revoked("orders", &claims(json!({"jti": "t-1"}))));
        list.forget_expired(701);
        assert_eq!(list.len(), 0);
        assert_eq!(list.seq(), 3);
    }
}
