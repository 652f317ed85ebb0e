//! The audit writer: a signature is handed to its caller only after its audit record is
//! committed (fail closed), and records of concurrent requests share one transaction (group
//! commit), so durability costs one commit per batch rather than one per signature. Checkpoints
//! and denied requests go the same way. Each batch is appended to the hash chain under the chain
//! head's lock (`crate::store`); [`verify`] walks the chain.
//!
//! A batch the store refuses (rather than one it cannot take because it is down) is committed
//! record by record, so one bad record fails only its own request.

mod service;
mod tally;
pub mod verify;

pub use service::{AuditError, AuditPage, AuditService, KeyHistory, RingHistory};
pub use tally::Refusal;

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, Mutex};

use crate::domain::AuditRecord;
use crate::metrics::Metrics;
use crate::store::{AuditConnection, StoreError};
use crate::tasks::{self, Health};

/// The most records committed in one transaction.
const MAX_BATCH: usize = 512;

/// A record waiting to be written, and where to say how it went. The record goes back with
/// the answer, so that the request's thread, which allocated it, frees it: freed on the
/// writer's thread, a batch of records cost the writer more than writing them.
struct Entry {
    record: AuditRecord,
    committed: oneshot::Sender<(AuditRecord, Result<(), StoreError>)>,
}

/// The writer task's name in the log and in `/readyz`.
pub const WRITER: &str = "audit writer";

/// Handle to the writer task; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<Entry>,
    connection: Arc<Mutex<AuditConnection>>,
    metrics: Arc<Metrics>,
}

impl AuditLog {
    /// Starts the writer task on the current runtime, under supervision: a writer that panics is
    /// started again on the same queue (the records of the batch it was writing are refused).
    pub fn start(
        connection: AuditConnection,
        health: Arc<Health>,
        metrics: Arc<Metrics>,
    ) -> AuditLog {
        let (queue, receiver) = mpsc::channel(8 * MAX_BATCH);
        let receiver = Arc::new(Mutex::new(receiver));
        let connection = Arc::new(Mutex::new(connection));
        let writer = connection.clone();
        let writer_metrics = metrics.clone();
        tasks::supervise(WRITER, health.clone(), move || {
            write_batches(
                writer.clone(),
                receiver.clone(),
                health.clone(),
                writer_metrics.clone(),
            )
        });
        AuditLog {
            queue,
            connection,
            metrics,
        }
    }

    /// Closes the writer's connection once the batch under way is written: every record after
    /// this fails as `Unavailable`.
    pub async fn close(&self) {
        self.connection.lock().await.close().await;
    }

    /// Returns once `record` is committed; `Unavailable` if it could not be, or what the store
    /// refused it for (`Conflict`: a raw signature's `jti` already claimed).
    pub async fn record(&self, record: AuditRecord) -> Result<(), StoreError> {
        let (committed, done) = oneshot::channel();
        self.metrics.audit_queue.inc();
        self.queue
            .send(Entry { record, committed })
            .await
            .map_err(|_| {
                self.metrics.audit_queue.dec();
                StoreError::Unavailable("the audit writer has stopped".into())
            })?;
        let (_record, result) = done
            .await
            .map_err(|_| StoreError::Unavailable("the audit writer has stopped".into()))?;
        result
    }
}

async fn write_batches(
    connection: Arc<Mutex<AuditConnection>>,
    receiver: Arc<Mutex<mpsc::Receiver<Entry>>>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
) {
    let mut receiver = receiver.lock().await;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Waits for the first record, then takes whatever else has queued up meanwhile: under load,
    // requests that arrive during one commit ride together in the next, on a connection that
    // has not sat idle since (`in_use`).
    loop {
        let in_use = !receiver.is_empty();
        if receiver.recv_many(&mut batch, MAX_BATCH).await == 0 {
            break;
        }
        let (records, waiters): (Vec<AuditRecord>, Vec<_>) =
            batch.drain(..).map(|e| (e.record, e.committed)).unzip();
        let count = records.len() as u64;
        metrics
            .audit_queue
            .sub(i64::try_from(count).expect("a batch is at most MAX_BATCH"));
        let started = Instant::now();
        let mut store = connection.lock().await;
        match store.append(&records, in_use).await {
            Ok(()) => {
                metrics
                    .audit_commit_seconds
                    .observe(started.elapsed().as_secs_f64());
                metrics.audit_batch_records.observe(count as f64);
                metrics.audit_written.inc_by(count);
                health.ok(WRITER);
                for (record, waiter) in records.into_iter().zip(waiters) {
                    let _ = waiter.send((record, Ok(())));
                }
            }
            // The store is down: the whole batch fails, and every request with it.
            Err(e @ StoreError::Unavailable(_)) => {
                tracing::error!(error = %e, records = records.len(), "audit batch not committed");
                metrics.audit_refused.inc_by(count);
                for (record, waiter) in records.into_iter().zip(waiters) {
                    let _ = waiter.send((record, Err(e.clone())));
                }
            }
            // The store refused something in the batch: one record at a time, so that a record
            // it refuses fails its own request and no other.
            Err(e) => {
                tracing::warn!(error = %e, records = records.len(), "audit batch refused; committing its records one by one");
                for (record, waiter) in records.into_iter().zip(waiters) {
                    let result = store
                        .append(std::slice::from_ref(&record), false)
                        .await
                        .inspect_err(|e| {
                            tracing::warn!(error = %e, action = record.event().action().as_str(), "audit record not committed");
                        });
                    if result.is_ok() {
                        metrics.audit_written.inc();
                    } else {
                        metrics.audit_refused.inc();
                    }
                    let _ = waiter.send((record, result));
                }
            }
        }
    }
}
