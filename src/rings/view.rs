//! The in-memory view of every ring that the hot paths read: which key signs for a ring, the
//! JWKS documents to serve, and when each ring's next scheduled rotation is due. Replicas keep
//! it current by reading only the rings whose revision moved (`Store::ring_changes`): a change
//! rebuilds the view of its ring alone, and the rest of the view is shared with the one before.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{json, Value};
use signet_core::{Algorithm, KeyProvider, KeyRef, KeySpec, KeyUse};

use crate::domain::{KeyRecord, KeyState, Kid, RingRecord, ScheduleRecord, UnixMillis};
use crate::jose;
use crate::providers::Providers;
use crate::schedule::{self, plan};

/// The most keys the combined `/.well-known/jwks.json` lists: verifiers such as AWS IAM OIDC
/// federation accept no more.
pub const COMBINED_JWKS_MAX_KEYS: usize = 100;

/// A JWKS document ready to serve.
#[derive(Clone, Debug)]
pub struct Jwks {
    pub body: Arc<str>,
    /// A strong validator: the SHA-256 of the body.
    pub etag: String,
    pub max_age_seconds: u32,
}

impl Jwks {
    fn new(keys: Vec<Value>, max_age_seconds: u32) -> Jwks {
        let body = json!({ "keys": keys }).to_string();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body.as_bytes());
        Jwks {
            etag: format!("\"{}\"", jose::b64url(&digest.as_ref()[..16])),
            body: body.into(),
            max_age_seconds,
        }
    }
}

/// The key that signs for a ring, with what signing needs at hand.
pub struct Signer {
    pub alg: Algorithm,
    pub kid: Kid,
    pub reference: KeyRef,
    pub provider: Arc<dyn KeyProvider>,
    /// The base64url protected header, the same for every token this key signs.
    pub header: String,
}

/// When the lifecycle tick should look at a ring's schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheduled {
    /// A scheduled rotation starts at this time (or at once, if it has passed).
    At(UnixMillis),
    /// Paused, or a rotation is under way: the ring's next change says what comes next.
    Idle,
    /// The stored schedule cannot be read: the ring does not rotate until it is set again.
    Unreadable,
}

/// A key that decrypts for an encryption ring: its current key, the next one, or one retiring
/// that senders may still have encrypted to.
pub struct Decrypter {
    pub kid: Kid,
    pub reference: KeyRef,
    pub key_spec: KeySpec,
}

pub struct RingView {
    pub record: RingRecord,
    /// A signing ring's active key.
    pub signer: Option<Signer>,
    /// An encryption ring's keys that decrypt, with the provider they live in.
    pub decrypters: Vec<Decrypter>,
    /// An encryption ring's active key, the one senders encrypt to: its kid and public JWK.
    pub recipient: Option<(Kid, Value)>,
    pub provider: Option<Arc<dyn KeyProvider>>,
    pub jwks: Jwks,
    /// Published JWKs with their `kid`, in the order the ring's JWKS lists them.
    pub published: Vec<(String, Value)>,
    pub scheduled: Scheduled,
}

impl RingView {
    /// The view of one ring from its record, its keys that are not destroyed and its schedule.
    pub(crate) fn build(
        record: RingRecord,
        keys: &[KeyRecord],
        schedule: Result<ScheduleRecord, String>,
        providers: &Providers,
    ) -> RingView {
        let provider = providers.get(record.backend);
        let signer = keys
            .iter()
            .find(|k| k.state == KeyState::Active)
            .and_then(|k| {
                let alg = record.signing_algorithm()?;
                Some(Signer {
                    alg,
                    kid: k.kid.clone()?,
                    reference: KeyRef(k.reference.clone()?),
                    provider: provider?.clone(),
                    header: jose::encoded_header(alg, k.kid.as_deref()?, &record.policy.typ),
                })
            });
        let encrypting = record.algorithm.usage() == KeyUse::Encrypt;
        let decrypters = keys
            .iter()
            .filter(|k| encrypting && k.state.is_published())
            .filter_map(|k| {
                Some(Decrypter {
                    kid: k.kid.clone()?,
                    reference: KeyRef(k.reference.clone()?),
                    key_spec: k.key_spec,
                })
            })
            .collect();
        let recipient = keys
            .iter()
            .filter(|k| encrypting && k.state == KeyState::Active)
            .find_map(|k| Some((k.kid.clone()?, k.public_jwk.clone()?)));
        // Active first, then the next key, then keys still covering unexpired tokens. An
        // encryption ring lists only its current and next keys: a retiring key still decrypts,
        // but no sender should encrypt to it any more.
        let order = |s: KeyState| match s {
            KeyState::Active => 0,
            KeyState::Published => 1,
            _ => 2,
        };
        let mut published_keys: Vec<&KeyRecord> = keys
            .iter()
            .filter(|k| k.state.is_published() && k.public_jwk.is_some())
            .filter(|k| !(encrypting && k.state == KeyState::Retiring))
            .collect();
        published_keys.sort_by_key(|k| (order(k.state), std::cmp::Reverse(k.created_at)));
        let published: Vec<(String, Value)> = published_keys
            .iter()
            .filter_map(|k| Some((k.kid.as_ref()?.to_string(), k.public_jwk.clone()?)))
            .collect();
        let scheduled = match schedule {
            Ok(schedule) => {
                let state = schedule::ring_state(&schedule, keys);
                plan::due_at(&schedule.rule, record.timing.publish_lead_seconds, state)
                    .map_or(Scheduled::Idle, Scheduled::At)
            }
            Err(_) => Scheduled::Unreadable,
        };
        RingView {
            jwks: Jwks::new(
                published.iter().map(|(_, jwk)| jwk.clone()).collect(),
                record.timing.jwks_max_age_seconds,
            ),
            signer,
            decrypters,
            recipient,
            provider: provider.cloned(),
            published,
            scheduled,
            record,
        }
    }

    fn name(&self) -> Arc<str> {
        Arc::from(self.record.name.as_str())
    }
}

/// The combined set would list more keys than verifiers accept.
#[derive(Clone, Copy, Debug)]
pub struct CombinedTooLarge;

#[derive(Clone)]
pub struct View {
    pub rings: HashMap<Arc<str>, Arc<RingView>>,
    /// The ring that publishes each `kid`.
    kids: HashMap<Arc<str>, Arc<RingView>>,
    /// The rings listed in the combined set, in name order.
    combined_rings: BTreeSet<Arc<str>>,
    /// The keys of every ring in `combined_rings`, served at `/.well-known/jwks.json`.
    pub combined: Result<Jwks, CombinedTooLarge>,
    /// Rings by the time their next scheduled rotation is due.
    due: BTreeSet<(UnixMillis, Arc<str>)>,
    unreadable: BTreeSet<Arc<str>>,
    /// Every ring change up to this revision is in the view.
    pub(crate) revision: i64,
}

impl Default for View {
    fn default() -> View {
        View {
            rings: HashMap::new(),
            kids: HashMap::new(),
            combined_rings: BTreeSet::new(),
            combined: Ok(Jwks::new(vec![], 60)),
            due: BTreeSet::new(),
            unreadable: BTreeSet::new(),
            revision: 0,
        }
    }
}

impl View {
    /// This view without the `removed` rings and with `changed` replacing the views of their
    /// rings, up to `revision`. Only those rings are indexed again; the others' views are
    /// shared with this one.
    pub(crate) fn with(&self, removed: &[String], changed: Vec<RingView>, revision: i64) -> View {
        let mut view = self.clone();
        let mut combined_changed = false;
        for name in removed {
            if let Some((name, old)) = view.rings.remove_entry(name.as_str()) {
                view.unindex(&name, &old);
                combined_changed |= old.record.combined_jwks;
            }
        }
        for ring in changed {
            let ring = Arc::new(ring);
            let name = ring.name();
            if let Some(old) = view.rings.remove(&name) {
                view.unindex(&name, &old);
                combined_changed |= old.record.combined_jwks;
            }
            combined_changed |= ring.record.combined_jwks;
            view.index(&name, &ring);
            view.rings.insert(name, ring);
        }
        if combined_changed {
            view.combined = view.combine();
        }
        view.revision = revision.max(self.revision);
        view
    }

    fn index(&mut self, name: &Arc<str>, ring: &Arc<RingView>) {
        // Tokens are verified with signing keys only: an encryption key's kid names no signer.
        if ring.record.signing_algorithm().is_some() {
            for (kid, _) in &ring.published {
                self.kids.insert(Arc::from(kid.as_str()), ring.clone());
            }
        }
        // Audit checkpoint keys sign records, never tokens: they stay out of the combined set.
        if ring.record.combined_jwks && !ring.record.name.is_audit() {
            self.combined_rings.insert(name.clone());
        }
        match ring.scheduled {
            Scheduled::At(at) => {
                self.due.insert((at, name.clone()));
            }
            Scheduled::Unreadable => {
                self.unreadable.insert(name.clone());
            }
            Scheduled::Idle => {}
        }
    }

    fn unindex(&mut self, name: &Arc<str>, ring: &RingView) {
        for (kid, _) in &ring.published {
            self.kids.remove(kid.as_str());
        }
        self.combined_rings.remove(name);
        if let Scheduled::At(at) = ring.scheduled {
            self.due.remove(&(at, name.clone()));
        }
        self.unreadable.remove(name);
    }

    fn combine(&self) -> Result<Jwks, CombinedTooLarge> {
        let mut keys = Vec::new();
        let mut max_age = None::<u32>;
        for name in &self.combined_rings {
            let ring = &self.rings[name];
            keys.extend(ring.published.iter().map(|(_, jwk)| jwk.clone()));
            if keys.len() > COMBINED_JWKS_MAX_KEYS {
                return Err(CombinedTooLarge);
            }
            let ring_max_age = ring.record.timing.jwks_max_age_seconds;
            max_age = Some(max_age.map_or(ring_max_age, |m| m.min(ring_max_age)));
        }
        Ok(Jwks::new(keys, max_age.unwrap_or(60)))
    }

    /// The published JWK with this `kid`, and the ring it belongs to.
    pub(crate) fn published_key(&self, kid: &str) -> Option<(&RingView, &Value)> {
        let ring = self.kids.get(kid)?;
        let (_, jwk) = ring.published.iter().find(|(k, _)| k == kid)?;
        Some((ring.as_ref(), jwk))
    }

    /// The rings whose scheduled rotation is due at `now`.
    pub(crate) fn due(&self, now: UnixMillis) -> impl Iterator<Item = &Arc<RingView>> {
        self.due
            .iter()
            .take_while(move |(at, _)| *at <= now)
            .filter_map(|(_, name)| self.rings.get(name))
    }

    /// The rings whose stored schedule cannot be read.
    pub(crate) fn unreadable_schedules(&self) -> impl Iterator<Item = &Arc<str>> {
        self.unreadable.iter()
    }
}

#[cfg(test)]
mod tests {
    use signet_core::{Algorithm, KeySpec};

    use super::*;
    use crate::domain::{BackendKind, KeyAlgorithm, Policy, RingName, Timing};

    fn ring(name: &str) -> RingView {
        let record = RingRecord {
            name: RingName::parse(name).unwrap(),
            backend: BackendKind::File,
            algorithm: KeyAlgorithm::Sign(Algorithm::ES256),
            encryption: None,
            key_spec: KeySpec::EcP256,
            policy: Policy::new("https://issuer.test".into()),
            timing: Timing::default(),
            created_at: UnixMillis::from_millis(0),
            updated_at: UnixMillis::from_millis(0),
            jwks_cached_until: None,
            combined_jwks: false,
        };
        RingView::build(
            record,
            &[],
            Ok(ScheduleRecord::default()),
            &Providers::default(),
        )
    }

    #[test]
    fn a_change_replaces_its_ring_alone_and_a_removal_takes_it_out() {
        let view = View::default().with(&[], vec![ring("a"), ring("b")], 5);
        let (a, b) = (view.rings["a"].clone(), view.rings["b"].clone());
        // A ring without an active key is due for a rotation at once.
        assert_eq!(view.due(UnixMillis::from_millis(0)).count(), 2);

        let changed = view.with(&[], vec![ring("b")], 6);
        assert!(Arc::ptr_eq(&a, &changed.rings["a"]));
        assert!(!Arc::ptr_eq(&b, &changed.rings["b"]));
        assert_eq!(changed.due(UnixMillis::from_millis(0)).count(), 2);

        let removed = changed.with(&["b".into()], vec![], 7);
        assert!(!removed.rings.contains_key("b"));
        assert!(Arc::ptr_eq(&a, &removed.rings["a"]));
        assert_eq!(removed.due(UnixMillis::from_millis(0)).count(), 1);
        assert_eq!(removed.revision, 7);

        // Taken back and made again between two reloads: the new ring stays.
        let again = removed.with(&["a".into()], vec![ring("a")], 9);
        assert!(again.rings.contains_key("a"));
        assert!(!Arc::ptr_eq(&a, &again.rings["a"]));
        assert_eq!(again.due(UnixMillis::from_millis(0)).count(), 1);
    }
}
