//! The in-memory view of every ring that the hot paths read: which key signs for a ring and the
//! JWKS documents to serve. Rebuilt from the store after every local change and on every lifecycle
//! tick, so replicas converge on another replica's changes within one tick.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};
use signet_core::{KeyProvider, KeyRef};

use crate::domain::{KeyRecord, KeyState, Kid, RingRecord};
use crate::jose;
use crate::providers::Providers;

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
    pub kid: Kid,
    pub reference: KeyRef,
    pub provider: Arc<dyn KeyProvider>,
    /// The base64url protected header, the same for every token this key signs.
    pub header: String,
}

pub struct RingView {
    pub record: RingRecord,
    pub signer: Option<Signer>,
    pub jwks: Jwks,
    /// Published JWKs by `kid`, for verification.
    pub published: HashMap<String, Value>,
}

pub struct View {
    pub rings: HashMap<String, Arc<RingView>>,
    /// Every ring's published keys, served at `/.well-known/jwks.json`.
    pub all: Jwks,
}

impl View {
    pub(crate) fn build(rings: Vec<RingRecord>, keys: &[KeyRecord], providers: &Providers) -> View {
        let mut views = HashMap::new();
        let mut all_keys = Vec::new();
        let mut all_max_age = u32::MAX;
        for record in rings {
            let ring_keys: Vec<&KeyRecord> =
                keys.iter().filter(|k| k.ring == record.name).collect();
            let provider = providers.get(record.backend);
            let signer = ring_keys
                .iter()
                .find(|k| k.state == KeyState::Active)
                .and_then(|k| {
                    Some(Signer {
                        kid: k.kid.clone()?,
                        reference: KeyRef(k.reference.clone()?),
                        provider: provider?.clone(),
                        header: jose::encoded_header(k.algorithm, k.kid.as_deref()?),
                    })
                });
            // Active first, then the next key, then keys still covering unexpired tokens.
            let order = |s: KeyState| match s {
                KeyState::Active => 0,
                KeyState::Published => 1,
                _ => 2,
            };
            let mut published_keys: Vec<&KeyRecord> = ring_keys
                .into_iter()
                .filter(|k| k.state.is_published() && k.public_jwk.is_some())
                .collect();
            published_keys.sort_by_key(|k| (order(k.state), std::cmp::Reverse(k.created_at)));
            let jwks: Vec<Value> = published_keys
                .iter()
                .filter_map(|k| k.public_jwk.clone())
                .collect();
            // Audit checkpoint keys sign records, never tokens: they stay out of the combined set.
            if !record.name.is_audit() {
                all_keys.extend(jwks.iter().cloned());
                all_max_age = all_max_age.min(record.timing.jwks_max_age_seconds);
            }
            let published = published_keys
                .iter()
                .filter_map(|k| Some((k.kid.as_ref()?.to_string(), k.public_jwk.clone()?)))
                .collect();
            views.insert(
                record.name.to_string(),
                Arc::new(RingView {
                    jwks: Jwks::new(jwks, record.timing.jwks_max_age_seconds),
                    signer,
                    published,
                    record,
                }),
            );
        }
        let all_max_age = if all_max_age == u32::MAX {
            60
        } else {
            all_max_age
        };
        View {
            rings: views,
            all: Jwks::new(all_keys, all_max_age),
        }
    }

    /// The published JWK with this `kid`, and the ring it belongs to.
    pub(crate) fn published_key(&self, kid: &str) -> Option<(&RingView, &Value)> {
        self.rings
            .values()
            .find_map(|r| r.published.get(kid).map(|jwk| (r.as_ref(), jwk)))
    }
}
