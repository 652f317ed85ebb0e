//! Walks the audit chain and its checkpoints, and names the first record that is not as written.
//!
//! The chain catches an edited, deleted or reordered record (its hash no longer matches its
//! contents and its predecessor, or its `seq` is missing), and deleted newest records (the chain
//! head, which only moves forward, is ahead of the table). A rewrite of the whole table with fresh
//! hashes is caught by the checkpoints: each one carries the hash of the chain at some `seq`,
//! signed by a key of the audit ring, whose public keys anyone may hold from its JWKS.

use secrecy::SecretString;
use serde::Serialize;
use serde_json::Value;

use crate::domain::Action;
use crate::jose;
use crate::store::{Store, StoreError, StoredAuditRecord, GENESIS_HASH};

/// Records read per round trip while walking.
const PAGE: u32 = 2000;

#[derive(Debug, Serialize)]
pub struct Problem {
    /// The first record found wrong (or missing).
    pub seq: i64,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    /// The first and last `seq` checked.
    pub from_seq: i64,
    pub to_seq: i64,
    pub records: u64,
    pub checkpoints: u64,
    /// Records below this `seq` were written before the chain existed and are not covered.
    pub chain_start_seq: i64,
    pub problem: Option<Problem>,
}

/// Connects to the store at `url` and checks its chain (`signet audit verify`): needs no key
/// backend and writes nothing.
pub async fn verify_database(
    url: &SecretString,
    from: Option<i64>,
) -> Result<VerifyReport, StoreError> {
    let store = Store::connect(url).await?;
    let report = verify_chain(&store, from).await;
    store.close().await;
    report
}

/// Checks the chain from `from` (default: its start) to the head, then every checkpoint met on
/// the way.
pub async fn verify_chain(store: &Store, from: Option<i64>) -> Result<VerifyReport, StoreError> {
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
            if record.action == Action::AuditCheckpoint.as_str() {
                checkpoints.push(record);
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
    for checkpoint in &checkpoints {
        if let Err(reason) = check_checkpoint(store, checkpoint).await? {
            return fail(report, checkpoint.seq, reason);
        }
        report.checkpoints += 1;
    }
    report.ok = true;
    Ok(report)
}

/// `Err(reason)` when the checkpoint's signature does not verify with the audit key it names, or
/// the chain does not hold the hash it signed.
async fn check_checkpoint(
    store: &Store,
    checkpoint: &StoredAuditRecord,
) -> Result<Result<(), String>, StoreError> {
    let detail: Value = serde_json::from_str(&checkpoint.detail).unwrap_or(Value::Null);
    let (Some(jws), Some(kid)) = (detail["jws"].as_str(), checkpoint.kid.as_deref()) else {
        return Ok(Err("checkpoint without a signature or key".into()));
    };
    let Some(jwk) = store.key_by_kid(kid).await?.and_then(|k| k.public_jwk) else {
        return Ok(Err(format!("checkpoint signed by an unknown key {kid}")));
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
    Ok(Ok(()))
}
