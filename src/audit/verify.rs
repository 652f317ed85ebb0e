//! Walks the audit chain and its checkpoints, and names the first record that is not as written.
//!
//! The chain catches an edited, deleted or reordered record (its hash no longer matches its
//! contents and its predecessor, or its `seq` is missing), and deleted newest records (the chain
//! head, which only moves forward, is ahead of the table). A rewrite of the whole table with fresh
//! hashes is caught by the checkpoints: each one carries the hash of the chain at some `seq`,
//! signed by a key of the audit ring.
//!
//! Whoever can write the database can also add a key row of their own and sign checkpoints with
//! it, so the keys that count come from outside the store: a [`TrustAnchor`] (a JWKS of the audit
//! ring saved earlier, or the audit keys this process has seen since it started). A checkpoint
//! signed by an anchored key vouches for the whole chain up to it, and with it for the audit keys
//! that chain introduced (their kid is the thumbprint of their public key, so no row can swap the
//! key behind a kid): the newest checkpoint must be anchored. Without an anchor, checkpoints are
//! checked against the audit ring's keys in the store, which proves nothing against a writer of
//! the store. Checkpoints that came later than their cadence are reported as `cadence_gaps`.

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::Serialize;
use serde_json::Value;

use crate::domain::{Action, UnixMillis, AUDIT_RING, CHECKPOINT_EVERY_MS};
use crate::jose;
use crate::store::{Store, StoreError, StoredAuditRecord, GENESIS_HASH};

/// How late a checkpoint may be before it is reported: the lifecycle tick's delays, a restart.
const CADENCE_GRACE_MS: i64 = 60_000;

/// Public keys of the audit ring trusted to have signed checkpoints, by kid, from outside the
/// store being checked.
#[derive(Clone, Debug, Default)]
pub struct TrustAnchor {
    keys: BTreeMap<String, Value>,
}

impl TrustAnchor {
    /// The keys of a JWKS (`{"keys": [...]}`), each of whose `kid` must be its thumbprint.
    pub fn from_jwks(jwks: &Value) -> Result<TrustAnchor, String> {
        let keys = jwks["keys"]
            .as_array()
            .ok_or("a JWKS is an object with a \"keys\" array")?;
        let mut anchor = TrustAnchor::default();
        for jwk in keys {
            if !anchor.add(jwk) {
                return Err(
                    "every key of the JWKS must carry its RFC 7638 thumbprint as kid".into(),
                );
            }
        }
        if anchor.keys.is_empty() {
            return Err("the JWKS holds no key".into());
        }
        Ok(anchor)
    }

    /// Trusts `jwk` if its `kid` is its thumbprint; `false` (and nothing trusted) otherwise.
    pub fn add(&mut self, jwk: &Value) -> bool {
        match (jose::jwk_thumbprint(jwk), jwk["kid"].as_str()) {
            (Some(thumbprint), Some(kid)) if thumbprint == kid => {
                self.keys.insert(kid.to_owned(), jwk.clone());
                true
            }
            _ => false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A checkpoint that came later than the cadence asks (an outage, or a checkpoint removed).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CadenceGap {
    /// The oldest record that waited for the checkpoint.
    pub from_seq: i64,
    /// The checkpoint that came at last.
    pub checkpoint_seq: i64,
    /// How long after that record was written it came, in seconds.
    pub after_seconds: i64,
}

/// Records read per round trip while walking.
const PAGE: u32 = 2000;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// The first record found wrong (or missing).
    pub seq: i64,
    pub reason: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerifyReport {
    pub ok: bool,
    /// The first and last `seq` checked.
    pub from_seq: i64,
    pub to_seq: i64,
    pub records: u64,
    pub checkpoints: u64,
    /// Records below this `seq` were written before the chain existed and are not covered.
    pub chain_start_seq: i64,
    /// What the checkpoints were checked against: `anchor` (keys from outside the store) or
    /// `store` (the audit ring's keys in the store: no proof against a writer of the store).
    pub trust: &'static str,
    /// The newest record a checkpoint signed by an anchored key vouches for.
    pub anchored_to_seq: Option<i64>,
    pub cadence_gaps: Vec<CadenceGap>,
    pub problem: Option<Problem>,
}

/// Connects to the store at `url` and checks its chain (`signet audit verify`): needs no key
/// backend and writes nothing.
pub async fn verify_database(
    url: &SecretString,
    from: Option<i64>,
    anchor: Option<&TrustAnchor>,
) -> Result<VerifyReport, StoreError> {
    let store = Store::connect(url).await?;
    let report = verify_chain(&store, from, anchor).await;
    store.close().await;
    report
}

/// The audit ring's public keys as the store holds them, as a JWKS (`signet audit
/// export-jwks`): save it while the store is trusted, give it to `--trusted-jwks` later.
pub async fn export_audit_jwks(url: &SecretString) -> Result<Value, StoreError> {
    let store = Store::connect(url).await?;
    let keys = store.keys_of_ring(AUDIT_RING).await;
    store.close().await;
    let keys: Vec<Value> = keys?.into_iter().filter_map(|k| k.public_jwk).collect();
    Ok(serde_json::json!({ "keys": keys }))
}

/// Checks the chain from `from` (default: its start) to the head, then every checkpoint met on
/// the way, against `anchor` when given.
pub async fn verify_chain(
    store: &Store,
    from: Option<i64>,
    anchor: Option<&TrustAnchor>,
) -> Result<VerifyReport, StoreError> {
    let head = store.audit_head().await?;
    let start = from
        .unwrap_or(head.start_seq)
        .max(head.start_seq)
        .min(head.seq + 1);
    let mut report = VerifyReport {
        ok: false,
        from_seq: start,
        to_seq: start - 1,
        records: 0,
        checkpoints: 0,
        chain_start_seq: head.start_seq,
        trust: if anchor.is_some() { "anchor" } else { "store" },
        anchored_to_seq: None,
        cadence_gaps: Vec::new(),
        problem: None,
    };
    let fail = |mut report: VerifyReport, seq: i64, reason: String| {
        report.problem = Some(Problem { seq, reason });
        Ok(report)
    };
    let mut prev = if start == head.start_seq {
        GENESIS_HASH.to_owned()
    } else if let Some(hash) = store.audit_record(start - 1).await?.and_then(|r| r.hash) {
        hash
    } else {
        let reason = "the record before the starting point is missing".into();
        return fail(report, start - 1, reason);
    };
    let mut checkpoints = Vec::new();
    // Audit keys as the chain introduces them, and the oldest record awaiting a checkpoint.
    let mut introduced: Vec<(i64, String)> = Vec::new();
    let mut waiting: Option<(i64, UnixMillis)> = None;
    let mut expected = start;
    loop {
        // Up to the head read above: records appended meanwhile are the next walk's.
        let page = store
            .audit_records_between(expected, head.seq, PAGE)
            .await?;
        let complete = page.len() < PAGE as usize;
        for record in page {
            if record.seq != expected {
                let reason = format!(
                    "record {expected} is missing: the next record is {}",
                    record.seq
                );
                return fail(report, expected, reason);
            }
            if record.expected_hash(&prev) != record.hash {
                let reason = format!(
                    "record {} ({}) is not as written: its hash does not match its contents and the record before it",
                    record.seq, record.action
                );
                return fail(report, record.seq, reason);
            }
            prev = record.hash.clone().expect("a matching hash");
            if record.ring.as_deref() == Some(AUDIT_RING)
                && [Action::KeyPublished.as_str(), Action::KeyActivated.as_str()]
                    .contains(&record.action.as_str())
            {
                if let Some(kid) = &record.kid {
                    introduced.push((record.seq, kid.clone()));
                }
            }
            if record.action == Action::AuditCheckpoint.as_str() {
                if let Some((from_seq, since)) = waiting.take() {
                    if record.time.ms_since(since) > CHECKPOINT_EVERY_MS + CADENCE_GRACE_MS {
                        report.cadence_gaps.push(CadenceGap {
                            from_seq,
                            checkpoint_seq: record.seq,
                            after_seconds: record.time.ms_since(since) / 1000,
                        });
                    }
                }
                checkpoints.push(record);
            } else if waiting.is_none_or(|(_, since)| record.time < since) {
                // The oldest record awaiting a checkpoint.
                waiting = Some((record.seq, record.time));
            }
            report.records += 1;
            report.to_seq = expected;
            expected += 1;
        }
        if complete {
            break;
        }
    }
    if report.to_seq < head.seq {
        let reason = format!(
            "records {expected} to {} are missing: the chain head is at {}",
            head.seq, head.seq
        );
        return fail(report, expected, reason);
    }
    if report.to_seq >= head.start_seq && prev != head.hash {
        let reason = "the chain head does not match the newest record".into();
        let seq = report.to_seq;
        return fail(report, seq, reason);
    }
    let mut trusted = anchor.cloned().unwrap_or_default();
    let mut newest_anchored = true;
    for checkpoint in &checkpoints {
        let upto = match check_checkpoint(store, checkpoint, anchor.map(|_| &trusted)).await? {
            Ok(checked) => checked,
            Err(reason) => return fail(report, checkpoint.seq, reason),
        };
        report.checkpoints += 1;
        newest_anchored = upto.anchored;
        if upto.anchored {
            report.anchored_to_seq = Some(upto.seq);
            // The chain up to this checkpoint is vouched for: so are the audit keys it introduced.
            for (_, kid) in introduced.iter().filter(|(seq, _)| *seq <= upto.seq) {
                if let Some(jwk) = store.key_by_kid(kid).await?.and_then(|k| k.public_jwk) {
                    trusted.add(&jwk);
                }
            }
        }
    }
    if anchor.is_some() && !newest_anchored {
        let newest = checkpoints.last().expect("an unanchored checkpoint");
        let reason = format!(
            "checkpoint {} is signed by key {}, which neither the trust anchor nor any audit key the anchored chain introduced holds: the log may have been rewritten (or the anchor is older than the audit ring's rotations: export it again from a store you trust)",
            newest.seq,
            newest.kid.as_deref().unwrap_or("?")
        );
        return fail(report, newest.seq, reason);
    }
    report.ok = true;
    Ok(report)
}

/// What a checkpoint that checks out vouches for.
struct Vouched {
    /// The newest record it signed the chain's hash at.
    seq: i64,
    /// Signed by a key of the trust anchor.
    anchored: bool,
}

/// `Err(reason)` when the checkpoint's key is not an audit key, its signature does not verify,
/// or the chain does not hold the hash it signed. With `trusted` keys, a checkpoint whose kid
/// they hold is verified with the trusted key.
async fn check_checkpoint(
    store: &Store,
    checkpoint: &StoredAuditRecord,
    trusted: Option<&TrustAnchor>,
) -> Result<Result<Vouched, String>, StoreError> {
    let detail: Value = serde_json::from_str(&checkpoint.detail).unwrap_or(Value::Null);
    let (Some(jws), Some(kid)) = (detail["jws"].as_str(), checkpoint.kid.as_deref()) else {
        return Ok(Err("checkpoint without a signature or key".into()));
    };
    let anchored = trusted.and_then(|t| t.keys.get(kid));
    let jwk = if let Some(jwk) = anchored {
        jwk.clone()
    } else {
        let Some(key) = store.key_by_kid(kid).await? else {
            return Ok(Err(format!("checkpoint signed by an unknown key {kid}")));
        };
        if !key.ring.is_audit() || checkpoint.ring.as_deref() != Some(AUDIT_RING) {
            return Ok(Err(format!(
                "checkpoint signed by key {kid} of ring {}, not of the audit ring",
                key.ring
            )));
        }
        match key.public_jwk {
            Some(jwk) if jose::jwk_thumbprint(&jwk).is_some_and(|t| t == kid) => jwk,
            _ => {
                return Ok(Err(format!(
                    "the stored public key of {kid} is not the key that kid names"
                )))
            }
        }
    };
    let claims = match jose::verify_signature(jws, &jwk) {
        Ok(verified) => verified.claims,
        Err(e) => return Ok(Err(format!("checkpoint signature does not verify: {e}"))),
    };
    let (Some(seq), Some(hash)) = (claims["seq"].as_i64(), claims["hash"].as_str()) else {
        return Ok(Err("checkpoint payload lacks seq or hash".into()));
    };
    if detail["upto_seq"].as_i64() != Some(seq) || detail["upto_hash"].as_str() != Some(hash) {
        return Ok(Err("checkpoint detail differs from what was signed".into()));
    }
    let chained = store.audit_record(seq).await?.and_then(|r| r.hash);
    if chained.as_deref() != Some(hash) {
        return Ok(Err(format!(
            "the chain at record {seq} is not what checkpoint {} signed: the log was rewritten",
            checkpoint.seq
        )));
    }
    Ok(Ok(Vouched {
        seq,
        anchored: anchored.is_some(),
    }))
}
