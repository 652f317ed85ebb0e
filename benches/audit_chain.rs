//! The ceiling of one audit hash chain: how many records per second it takes when nothing else
//! is in the way, with large batches, from one writer and from two at once (two replicas
//! sharing one store, whose appends serialise on the chain head).
//!
//! `cargo bench --bench audit_chain`: SQLite in a temporary directory, or a fresh database on
//! the Postgres at `SIGNET_BENCH_DATABASE_URL` (a user that may CREATE DATABASE). Each writer
//! appends batches of `SIGNET_BENCH_BATCH` (500) signature records, as the server writes them
//! (ring, kid, a typical detail), through `Store::append_audit_batch` for `SIGNET_BENCH_SECONDS`
//! (10). The records name no `exp`, so the update of the signing key's lifetime that the server
//! adds to each batch is left out.

use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::json;
use signet::domain::{AuditEvent, AuditRecord, Kid, RingName, SignatureFacts, UnixMillis};
use signet::store::Store;

// Only its databases: the server and load helpers are the HTTP benches'.
#[allow(dead_code)]
mod support;
use support::{drop_database, fresh_database};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One batch of signature records like the server's, from `writer` (replicas never write the
/// same record: their jtis differ).
fn batch(size: usize, writer: usize) -> Vec<AuditRecord> {
    let ring = RingName::parse("bench").unwrap();
    let kid = Kid::parse("0Kgd3hXv2tlmhHxMv3J7o3vUyPVm7gTfpk0z8wqMnSo").unwrap();
    let claims = ["aud", "exp", "iat", "iss", "jti", "scope", "sub"].map(String::from);
    (0..size)
        .map(|i| {
            let facts = SignatureFacts {
                jti: Some(json!(format!("jti-{writer}-{i:016}"))),
                sub: Some(json!("user-1")),
                aud: Some(json!("api")),
                iat: Some(json!(1_796_000_000)),
                exp: None,
                claim_names: SignatureFacts::claim_names(claims.iter()),
                payload_sha256: "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg".into(),
                encrypted_to: None,
            };
            AuditRecord::of_ring(
                UnixMillis::from_millis(1_796_000_000_000),
                "client:bench-issuer",
                &ring,
                Some(&kid),
                AuditEvent::Sign(facts),
            )
        })
        .collect()
}

/// Records per second appended by `writers` tasks at once, each with a store of its own (as
/// replicas have), for `seconds`.
async fn rate(url: &str, writers: usize, size: usize, seconds: u64) -> f64 {
    let url = SecretString::from(url.to_owned());
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let store = Store::connect(&url).await.expect("the store opens");
        tasks.push(tokio::spawn(async move {
            let records = batch(size, writer);
            let mut written = 0usize;
            while Instant::now() < deadline {
                store
                    .append_audit_batch(&records)
                    .await
                    .expect("a batch commits");
                written += records.len();
            }
            store.close().await;
            written
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not expect a run.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let seconds = env_or("SIGNET_BENCH_SECONDS", 10u64);
    let size = env_or("SIGNET_BENCH_BATCH", 500usize);
    let dir = tempfile::tempdir().unwrap();
    let admin = std::env::var("SIGNET_BENCH_DATABASE_URL").ok();
    let (url, database) = match &admin {
        Some(admin) => {
            let (url, name) = fresh_database(admin, "chain").await;
            (url, Some(name))
        }
        None => (
            format!("sqlite://{}/signet.db?mode=rwc", dir.path().display()),
            None,
        ),
    };
    let store = if database.is_some() {
        "Postgres"
    } else {
        "SQLite"
    };
    println!("audit chain on {store}, batches of {size}, {seconds} s each:");
    let one = rate(&url, 1, size, seconds).await;
    println!("  one writer:  {one:>10.0} records/s");
    let two = rate(&url, 2, size, seconds).await;
    println!(
        "  two writers: {two:>10.0} records/s ({:.2}x one)",
        two / one
    );
    if let (Some(admin), Some(name)) = (admin, database) {
        drop_database(&admin, &name).await;
    }
}
