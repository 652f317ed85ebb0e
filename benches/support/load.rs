//! Timed load: settings from the environment, and concurrent calls with their latencies.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The environment variable `name` parsed, or `default` when it is unset or does not parse.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The machine's cores (its available parallelism).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// `d` in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Calls per second and latency percentiles of one timed run.
pub struct Rates {
    pub rate: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// Calls `call` in a loop from `tasks` concurrent tasks for `duration`, timing each call. A call
/// that fails panics, and the first panic ends the run at once. Each call must wait for
/// something (I/O, a blocking task) at least once, or the tasks never let the timer end the run:
/// see [`drive_threads`].
pub async fn drive<F, Fut>(tasks: usize, duration: Duration, call: F) -> Rates
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let (call, stop) = (call.clone(), stop.clone());
        running.spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                call().await;
                latencies.push(started.elapsed());
            }
            latencies
        });
    }
    let start = Instant::now();
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        // Before the stop, a task ends only by failing.
        Some(ended) = running.join_next() => fail(ended.err()),
    }
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    while let Some(ended) = running.join_next().await {
        match ended {
            Ok(task) => latencies.extend(task),
            Err(e) => fail(Some(e)),
        }
    }
    Rates::of(latencies, start.elapsed())
}

/// Ends the run with the panic of a load task.
fn fail(ended: Option<tokio::task::JoinError>) -> ! {
    match ended {
        Some(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Some(e) => panic!("a load task was cancelled: {e}"),
        None => panic!("a load task ended before the run did"),
    }
}

/// Calls `call` in a loop from `threads` OS threads for `duration`, each driving its calls on a
/// current-thread runtime of its own and timing each call: for work that completes without
/// waiting (an in-process key operation), which would starve the timer of [`drive`]'s runtime.
/// The first call that panics ends the run.
// Only decrypt_throughput has such work (sign_throughput's raw loops are its own).
#[allow(dead_code)]
pub fn drive_threads<F, Fut>(threads: usize, duration: Duration, call: F) -> Rates
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()>,
{
    /// Raises the flag when its thread unwinds from a panic.
    struct Failure(Arc<AtomicBool>);
    impl Drop for Failure {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.store(true, Ordering::Relaxed);
            }
        }
    }

    let failed = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = start + duration;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (call, failed) = (call.clone(), failed.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let _failure = Failure(failed.clone());
                runtime.block_on(async move {
                    let mut latencies = Vec::new();
                    while Instant::now() < deadline && !failed.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        call().await;
                        latencies.push(started.elapsed());
                    }
                    latencies
                })
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for handle in handles {
        match handle.join() {
            Ok(thread) => latencies.extend(thread),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
    Rates::of(latencies, start.elapsed())
}

impl Rates {
    /// The rate and percentiles of `latencies`, the calls completed in `elapsed`.
    fn of(mut latencies: Vec<Duration>, elapsed: Duration) -> Rates {
        assert!(!latencies.is_empty(), "no call completed in {elapsed:?}");
        latencies.sort();
        // A quantile's index: within 0..len, so the cast neither truncates nor loses a sign.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let at =
            |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        Rates {
            rate: latencies.len() as f64 / elapsed.as_secs_f64(),
            p50: at(0.50),
            p99: at(0.99),
        }
    }
}
