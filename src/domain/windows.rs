//! How long a key is in the JWKS before it signs and after it stops: pure functions of the ring's
//! timing and of what the key actually signed (docs/design.md, Timing invariants). The lifecycle
//! tick applies them; `crate::proptests` checks them against a model verifier.
//!
//! Changes that would shorten a window never shorten it for a key already on its way: a key
//! keeps the longest grace its ring gave it while published, and a shorter `jwks_max_age` only
//! lets a key activate sooner once every JWKS served under the longer one has expired.

use super::{Timing, UnixMillis};

/// How long every replica takes to refresh its view of the keys (one lifecycle tick,
/// [`super::TICK`]), in ms.
pub const REFRESH_MS: i64 = 1000;

/// What a key keeps in the JWKS after its last token has expired, in ms: the verifiers' leeway
/// plus the JWKS max-age.
pub fn grace_ms(timing: &Timing) -> i64 {
    1000 * (i64::from(timing.leeway_seconds) + i64::from(timing.jwks_max_age_seconds))
}

/// Until when a JWKS served so far may still sit in a verifier's cache under an earlier, longer
/// max-age, after the ring's timing changes from `before` to `after` at `now`. Replicas serve
/// the old max-age until they refresh.
pub fn cached_until(
    previous: Option<UnixMillis>,
    before: &Timing,
    after: &Timing,
    now: UnixMillis,
) -> Option<UnixMillis> {
    if after.jwks_max_age_seconds >= before.jwks_max_age_seconds {
        return previous;
    }
    let old = now.plus_ms(REFRESH_MS + 1000 * i64::from(before.jwks_max_age_seconds));
    Some(previous.map_or(old, |p| p.max(old)))
}

/// The earliest any key of the ring may activate: once every JWKS served under a longer max-age
/// (cached until `cached_until`) has been refreshed, plus leeway and the replicas' refresh.
pub fn activation_floor(timing: &Timing, cached_until: Option<UnixMillis>) -> Option<UnixMillis> {
    cached_until.map(|until| until.plus_ms(1000 * i64::from(timing.leeway_seconds) + REFRESH_MS))
}

/// When a key published at `published` activates: after the publish lead, and never before the
/// floor. The lead covers the max-age in force (`Timing::validate`).
pub fn activation_at(
    published: UnixMillis,
    timing: &Timing,
    cached_until: Option<UnixMillis>,
) -> UnixMillis {
    let after_lead = published.plus_ms(1000 * i64::from(timing.publish_lead_seconds));
    activation_floor(timing, cached_until).map_or(after_lead, |floor| floor.max(after_lead))
}

/// When a key that stopped signing at `deactivated` leaves the JWKS: once every replica has
/// stopped signing with it and the last token it signed (`last_token_exp`) has expired, plus
/// its grace.
pub fn retirement_at(
    deactivated: UnixMillis,
    last_token_exp: Option<UnixMillis>,
    grace_ms: i64,
) -> UnixMillis {
    let stopped = deactivated.plus_ms(REFRESH_MS);
    last_token_exp
        .map_or(stopped, |exp| exp.max(stopped))
        .plus_ms(grace_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(max_age: u32, lead: u32, leeway: u32) -> Timing {
        Timing {
            jwks_max_age_seconds: max_age,
            publish_lead_seconds: lead,
            leeway_seconds: leeway,
            ..Timing::default()
        }
    }

    #[test]
    fn a_key_retires_after_its_last_token_not_after_the_policy_in_force() {
        let t = UnixMillis::from_secs(1000);
        let grace = grace_ms(&timing(2, 4, 1));
        assert_eq!(grace, 3000);
        // The last token expires 51 s after the key stopped signing.
        let exp = t.plus_ms(51_000);
        assert_eq!(retirement_at(t, Some(exp), grace), exp.plus_ms(3000));
        // A key that signed nothing recently leaves once the replicas have stopped using it.
        assert_eq!(
            retirement_at(t, Some(t.minus_ms(5000)), grace),
            t.plus_ms(REFRESH_MS + 3000)
        );
        assert_eq!(retirement_at(t, None, grace), t.plus_ms(REFRESH_MS + 3000));
    }

    #[test]
    fn a_shorter_max_age_holds_back_activation_until_old_caches_expire() {
        let now = UnixMillis::from_secs(1000);
        let (long, short) = (timing(3600, 3700, 10), timing(2, 13, 10));
        let until = cached_until(None, &long, &short, now);
        assert_eq!(until, Some(now.plus_ms(REFRESH_MS + 3_600_000)));
        // A key published right after the change activates once those caches have expired.
        assert_eq!(
            activation_at(now, &short, until),
            now.plus_ms(REFRESH_MS + 3_600_000 + 10_000 + REFRESH_MS)
        );
        // Long after, the lead alone decides.
        let later = now.plus_ms(10_000_000);
        assert_eq!(activation_at(later, &short, until), later.plus_ms(13_000));
        // A longer max-age changes nothing: the lead covers it.
        assert_eq!(cached_until(until, &short, &long, later), until);
        assert_eq!(cached_until(None, &short, &long, later), None);
    }
}

/// The windows against a model verifier, over random histories of up to a year: timing and
/// lifetime changes, signatures with random lifetimes within the limits in force, rotations and
/// revocations. A verifier honours the max-age it was served and may have fetched the JWKS at
/// any moment: no token is refused before its `exp` (but those of revoked keys, and of the key
/// that replaces a revoked one at once, which the README says reach cached verifiers only as
/// their caches expire), and no key stays published longer than its last token needs plus the
/// windows.
#[cfg(test)]
mod model {
    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Event {
        /// A lifetime of this many thousandths of the maximum in force (at least a second).
        Sign {
            ttl_permille: i64,
        },
        Retime {
            timing: Timing,
            max_ttl: u32,
        },
        Rotate,
        Revoke,
    }

    fn timing() -> impl Strategy<Value = Timing> {
        let max_age = prop::sample::select(vec![0u32, 1, 2, 5, 60, 300, 3600]);
        let leeway = prop::sample::select(vec![0u32, 1, 5, 60]);
        let extra_lead = prop::sample::select(vec![0u32, 1, 30, 600]);
        (max_age, leeway, extra_lead).prop_map(|(max_age, leeway, extra)| Timing {
            jwks_max_age_seconds: max_age,
            leeway_seconds: leeway,
            // The least `Timing::validate` allows, or more.
            publish_lead_seconds: max_age + leeway + 1 + extra,
            ..Timing::default()
        })
    }

    fn event() -> impl Strategy<Value = Event> {
        let max_ttl = prop::sample::select(vec![1u32, 2, 60, 900, 3600, 86_400]);
        prop_oneof![
            6 => (0..=1000i64).prop_map(|ttl_permille| Event::Sign { ttl_permille }),
            2 => (timing(), max_ttl).prop_map(|(timing, max_ttl)| Event::Retime { timing, max_ttl }),
            2 => Just(Event::Rotate),
            1 => Just(Event::Revoke),
        ]
    }

    /// Seconds before the next event: moments, minutes, or days.
    fn gap() -> impl Strategy<Value = i64> {
        prop_oneof![1..=5i64, 5..=600i64, 3600..=3 * 86_400i64]
    }

    #[derive(Debug, Default)]
    struct Key {
        published: UnixMillis,
        activate_after: UnixMillis,
        activated: Option<UnixMillis>,
        deactivated: Option<UnixMillis>,
        retired: Option<UnixMillis>,
        revoked: bool,
        /// Activated at once in place of a revoked key.
        emergency: bool,
        last_token_exp: Option<UnixMillis>,
        grace_ms: i64,
    }

    impl Key {
        fn published(now: UnixMillis, activate_after: UnixMillis, timing: &Timing) -> Key {
            Key {
                published: now,
                activate_after,
                grace_ms: grace_ms(timing),
                ..Key::default()
            }
        }

        fn live(&self) -> bool {
            self.retired.is_none() && !self.revoked
        }

        fn retirement(&self) -> Option<UnixMillis> {
            let deactivated = self.deactivated?;
            self.live()
                .then(|| retirement_at(deactivated, self.last_token_exp, self.grace_ms))
        }
    }

    struct Ring {
        timing: Timing,
        max_ttl: u32,
        cached_until: Option<UnixMillis>,
        /// Each timing from the moment it was set.
        timings: Vec<(UnixMillis, Timing)>,
        keys: Vec<Key>,
        active: usize,
        /// (key, signed at, exp)
        tokens: Vec<(usize, UnixMillis, UnixMillis)>,
    }

    impl Ring {
        fn new(timing: Timing, max_ttl: u32) -> Ring {
            let start = UnixMillis::default();
            let mut first = Key::published(start, start, &timing);
            first.activated = Some(start);
            Ring {
                timings: vec![(start, timing.clone())],
                timing,
                max_ttl,
                cached_until: None,
                keys: vec![first],
                active: 0,
                tokens: Vec::new(),
            }
        }

        fn upcoming(&self) -> Option<usize> {
            self.keys
                .iter()
                .position(|k| k.activated.is_none() && k.live())
        }

        fn activate(&mut self, key: usize, at: UnixMillis) {
            self.keys[self.active].deactivated = Some(at);
            self.keys[key].activated = Some(at);
            self.active = key;
        }

        /// What the lifecycle tick does up to `now`, each transition at its moment.
        fn advance_to(&mut self, now: UnixMillis) {
            loop {
                let activation = self
                    .upcoming()
                    .map(|k| (self.keys[k].activate_after, Some(k)));
                let retirement = self
                    .keys
                    .iter()
                    .filter_map(Key::retirement)
                    .map(|at| (at, None))
                    .min();
                match activation.into_iter().chain(retirement).min() {
                    Some((at, Some(key))) if at <= now => self.activate(key, at),
                    Some((at, None)) if at <= now => {
                        let key = self
                            .keys
                            .iter()
                            .position(|k| k.retirement() == Some(at))
                            .expect("the key that retires");
                        self.keys[key].retired = Some(at);
                    }
                    _ => return,
                }
            }
        }

        fn apply(&mut self, event: Event, now: UnixMillis) {
            match event {
                Event::Sign { ttl_permille } => {
                    let ttl = ((i64::from(self.max_ttl) * ttl_permille + 999) / 1000).max(1);
                    let exp = now.plus_ms(1000 * ttl);
                    let key = &mut self.keys[self.active];
                    key.last_token_exp = Some(key.last_token_exp.map_or(exp, |e| e.max(exp)));
                    self.tokens.push((self.active, now, exp));
                }
                Event::Retime { timing, max_ttl } => {
                    self.cached_until = cached_until(self.cached_until, &self.timing, &timing, now);
                    let floor = activation_floor(&timing, self.cached_until);
                    for key in self.keys.iter_mut().filter(|k| k.live()) {
                        key.grace_ms = key.grace_ms.max(grace_ms(&timing));
                        if let (None, Some(floor)) = (key.activated, floor) {
                            key.activate_after = key.activate_after.max(floor);
                        }
                    }
                    self.timings.push((now, timing.clone()));
                    self.timing = timing;
                    self.max_ttl = max_ttl;
                }
                Event::Rotate => {
                    if self.upcoming().is_none() {
                        let at = activation_at(now, &self.timing, self.cached_until);
                        self.keys.push(Key::published(now, at, &self.timing));
                    }
                }
                Event::Revoke => {
                    let revoked = self.active;
                    let next = self.upcoming().unwrap_or_else(|| {
                        self.keys.push(Key::published(now, now, &self.timing));
                        self.keys.len() - 1
                    });
                    self.keys[next].emergency = true;
                    self.activate(next, now);
                    self.keys[revoked].revoked = true;
                }
            }
        }

        /// The latest moment until which a JWKS fetched before `published` may still be
        /// cached: each timing's max-age was served from when it was set until every replica
        /// had the next one.
        fn cached_before(&self, published: UnixMillis) -> UnixMillis {
            let mut latest = UnixMillis::default();
            for (i, (from, timing)) in self.timings.iter().enumerate() {
                if *from >= published {
                    break;
                }
                let served_until = self
                    .timings
                    .get(i + 1)
                    .map_or(published, |(to, _)| to.plus_ms(REFRESH_MS).min(published));
                let max_age = 1000 * i64::from(timing.jwks_max_age_seconds);
                latest = latest.max(served_until.plus_ms(max_age));
            }
            latest
        }

        /// The longest grace of any timing in force while `key` was published.
        fn longest_grace(&self, key: &Key, until: UnixMillis) -> i64 {
            let mut longest = 0;
            for (i, (from, timing)) in self.timings.iter().enumerate() {
                let to = self.timings.get(i + 1).map(|(to, _)| *to);
                if *from <= until && to.is_none_or(|to| to > key.published) {
                    longest = longest.max(grace_ms(timing));
                }
            }
            longest
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn no_token_meets_a_verifier_without_its_key(
            first in timing(),
            history in prop::collection::vec((gap(), event()), 1..400),
        ) {
            let mut ring = Ring::new(first, 900);
            let mut now = UnixMillis::default();
            for (gap, event) in history {
                now = now.plus_ms(1000 * gap);
                ring.advance_to(now);
                ring.apply(event, now);
            }
            // Long enough for every key that can retire to have retired.
            ring.advance_to(now.plus_ms(1000 * 400 * 86_400));
            for &(k, signed, exp) in &ring.tokens {
                let key = &ring.keys[k];
                if key.revoked {
                    continue;
                }
                // A JWT is refused from its exp on (RFC 7519): the key must last until then.
                prop_assert!(
                    key.retired.is_none_or(|retired| retired >= exp),
                    "key {k} left the JWKS at {:?}, before its token's exp {exp}", key.retired
                );
                if !key.emergency {
                    let cached = ring.cached_before(key.published);
                    prop_assert!(
                        cached <= signed,
                        "key {k} signed at {signed}, while a JWKS without it may be cached until {cached}"
                    );
                }
            }
            for (k, key) in ring.keys.iter().enumerate() {
                if let (Some(retired), Some(deactivated)) = (key.retired, key.deactivated) {
                    let needed = key
                        .last_token_exp
                        .map_or(deactivated, |exp| exp.max(deactivated))
                        .plus_ms(REFRESH_MS + ring.longest_grace(key, retired));
                    prop_assert!(
                        retired <= needed,
                        "key {k} stayed published until {retired}, its tokens and windows need {needed}"
                    );
                }
            }
        }
    }
}
