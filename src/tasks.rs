//! Background tasks under supervision: the lifecycle tick (activations, retirements, scheduled
//! rotations, checkpoints, the view refresh) and the audit writer.
//!
//! A supervised task that panics is logged, reported as failing and started again after a
//! backoff (1 s, doubling to 30 s). A task also reports its own errors ([`Health::failed`]) and
//! recoveries ([`Health::ok`]). `/readyz` answers 503 while any task is failing, naming it. We
//! restart rather than exit: the requests that do not need the task keep being served, and an
//! orchestrator watching `/readyz` sees the failure either way.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Which background tasks are failing, and why (for the log, not for callers); and whether the
/// server has begun to shut down.
#[derive(Default)]
pub struct Health {
    failing: Mutex<BTreeMap<&'static str, String>>,
    shutting_down: AtomicBool,
}

impl Health {
    /// From now on `/readyz` answers 503 and every response closes its connection.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    pub fn ok(&self, task: &'static str) {
        self.failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(task);
    }

    pub fn failed(&self, task: &'static str, why: String) {
        self.failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(task, why);
    }

    /// The names of the tasks failing now.
    pub fn failing(&self) -> Vec<&'static str> {
        self.failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect()
    }
}

/// Runs the task `start` makes, and makes and runs it again whenever it panics. Ends when a run
/// ends by itself (its input closed) or when the returned handle is aborted, which aborts the
/// run under way too.
pub fn supervise<F, Fut>(task: &'static str, health: Arc<Health>, mut start: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let mut run = AbortOnDrop(tokio::spawn(start()));
            let Err(error) = (&mut run.0).await else {
                return;
            };
            if error.is_cancelled() {
                return;
            }
            let why = panic_message(error.into_panic());
            tracing::error!(task, panic = %why, ?backoff, "background task panicked; restarting it");
            health.failed(task, format!("panicked: {why}"));
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}

/// Aborts the task when the supervisor itself is aborted (dropped mid-await).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    #[tokio::test]
    async fn a_task_that_panics_is_reported_and_started_again() {
        let health = Arc::new(Health::default());
        let runs = Arc::new(AtomicU32::new(0));
        let (done, finished) = tokio::sync::oneshot::channel();
        let done = Arc::new(Mutex::new(Some(done)));
        let supervisor = {
            let (health, runs) = (health.clone(), runs.clone());
            supervise("flaky", health.clone(), move || {
                let (health, runs, done) = (health.clone(), runs.clone(), done.clone());
                async move {
                    if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                        assert!(health.failing().is_empty());
                        panic!("the first run fails");
                    }
                    // The second run sees the first one's failure, then recovers.
                    assert_eq!(health.failing(), ["flaky"]);
                    health.ok("flaky");
                    let _ = done.lock().unwrap().take().unwrap().send(());
                }
            })
        };
        finished.await.expect("the task was started again");
        supervisor.await.expect("the supervisor ends with the task");
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(health.failing().is_empty());
    }

    #[tokio::test]
    async fn aborting_the_supervisor_stops_the_task() {
        let health = Arc::new(Health::default());
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        let (dropped, gone) = tokio::sync::oneshot::channel::<()>();
        let slots = Arc::new(Mutex::new(Some((started, dropped))));
        let supervisor = supervise("endless", health, move || {
            let slots = slots.clone();
            async move {
                let (started, dropped) = slots.lock().unwrap().take().unwrap();
                started.send(()).unwrap();
                // Held until the task is dropped: the receiver then sees the sender go.
                let _dropped = dropped;
                std::future::pending::<()>().await;
            }
        });
        running.await.unwrap();
        supervisor.abort();
        assert!(
            gone.await.is_err(),
            "the task was dropped, not left running"
        );
    }
}
