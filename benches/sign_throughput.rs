//! Sign throughput over HTTP against the raw signing rate of the same machine, in one run.
//!
//! `cargo bench --bench sign_throughput` (or `scripts/bench`). It starts the release `signet`
//! binary on a free port (file backend; SQLite in a temp directory, or Postgres when
//! `SIGNET_BENCH_DATABASE_URL` is set), creates an ES256 ring and an issuer, drives
//! `POST /v1/rings/{ring}/sign` from `SIGNET_BENCH_CONNECTIONS` (default 64) concurrent keep-alive
//! connections for `SIGNET_BENCH_SECONDS` (default 10), and measures aws-lc-rs ES256 signing
//! in-process on every core for the same time. Every HTTP signature counted was audited (the
//! server answers only after the audit commit).
//!
//! With `SIGNET_BENCH_BASELINE_BIN` (another build of `signet`, e.g. an older commit's; see
//! `scripts/bench`), the same load runs against that binary too, right after, each server on a
//! fresh database of its own, and the ratio of the two rates is reported.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// ES256 signatures per second over `seconds`, one signing thread per core.
fn raw_signing_rate(seconds: u64) -> f64 {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let message = b"eyJhbGciOiJFUzI1NiIsImtpZCI6ImJlbmNoIiwidHlwIjoiSldUIn0.eyJhdWQiOiJhcGkiLCJleHAiOjE3OTU0MTMyNTgsImlhdCI6MTc5NTQxMjk1OCwiaXNzIjoiaHR0cHM6Ly9iZW5jaC5leGFtcGxlIiwianRpIjoiOHE5TE1vMnZtQWtTT2RJMnU4ZExfQSIsInN1YiI6InUxIn0";
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
                let rng = SystemRandom::new();
                let deadline = Instant::now() + Duration::from_secs(seconds);
                let mut n = 0u64;
                while Instant::now() < deadline {
                    for _ in 0..64 {
                        std::hint::black_box(key.sign(&rng, message).unwrap());
                    }
                    n += 64;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    total as f64 / start.elapsed().as_secs_f64()
}

struct Server {
    child: Child,
    _dir: tempfile::TempDir,
    /// (admin URL, name) of the Postgres database made for this server.
    database: Option<(String, String)>,
    address: String,
    admin_token: String,
}

impl Server {
    async fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some((admin, name)) = self.database.take() {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                .await
                .unwrap();
            sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh database on the Postgres server at `admin`, so that builds with different schemas
/// never meet; returns its URL and name.
async fn fresh_database(admin: &str, label: &str) -> (String, String) {
    let name = format!("signet_bench_{}_{label}", std::process::id());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin)
        .await
        .expect("SIGNET_BENCH_DATABASE_URL reachable");
    // One statement each: DROP and CREATE DATABASE refuse to run inside a transaction block.
    for statement in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::raw_sql(&statement).execute(&mut conn).await.unwrap();
    }
    let (base, _) = admin.rsplit_once('/').expect("a database URL with a path");
    (format!("{base}/{name}"), name)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_server(binary: &str, label: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = Command::new(binary);
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path())
        .env("SIGNET_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let mut database = None;
    if let Ok(admin) = std::env::var("SIGNET_BENCH_DATABASE_URL") {
        let (url, name) = fresh_database(&admin, label).await;
        command.arg("--database-url").arg(url);
        database = Some((admin, name));
    }
    let child = command.spawn().expect("signet starts");
    let address = format!("http://127.0.0.1:{port}");
    let token_path = dir.path().join("admin-token");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let up = reqwest::get(format!("{address}/healthz")).await.is_ok();
        if up && token_path.exists() {
            break;
        }
        assert!(Instant::now() < deadline, "signet did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let admin_token = std::fs::read_to_string(&token_path)
        .unwrap()
        .trim()
        .to_owned();
    Server {
        child,
        _dir: dir,
        database,
        address,
        admin_token,
    }
}

async fn post(client: &reqwest::Client, url: &str, token: &str, body: Value) -> Value {
    let response = client
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// (requests per second, p50, p99 latency) of signing over HTTP.
async fn http_signing_rate(
    server: &Server,
    connections: usize,
    seconds: u64,
) -> (f64, Duration, Duration) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap();
    let ring = format!("bench-{}", std::process::id());
    post(&client, &format!("{}/v1/rings", server.address), &server.admin_token, json!({
        "name": ring, "algorithm": "ES256", "policy": {"issuer": "https://bench.example", "audiences": ["api"]}
    }))
    .await;
    let issuer = post(
        &client,
        &format!("{}/v1/clients", server.address),
        &server.admin_token,
        json!({
            "name": format!("{ring}-issuer"), "role": "issuer", "rings": [ring]
        }),
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!("{}/v1/rings/{ring}/sign", server.address);
    let body = json!({"claims": {"sub": "user-1", "aud": "api", "scope": "read write"}, "ttl_seconds": 300}).to_string();

    let run = |duration: Duration| {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..connections)
            .map(|_| {
                let (client, url, issuer, body, stop) = (
                    client.clone(),
                    url.clone(),
                    issuer.clone(),
                    body.clone(),
                    stop.clone(),
                );
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let response = client
                            .post(&url)
                            .bearer_auth(&issuer)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .await
                            .unwrap();
                        assert!(
                            response.status().is_success(),
                            "sign failed: {}",
                            response.status()
                        );
                        response.bytes().await.unwrap();
                        latencies.push(started.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        async move {
            let start = Instant::now();
            tokio::time::sleep(duration).await;
            stop.store(true, Ordering::Relaxed);
            let mut all = Vec::new();
            for task in tasks {
                all.extend(task.await.unwrap());
            }
            (all, start.elapsed())
        }
    };
    run(Duration::from_secs(2)).await; // warm-up: connections, caches, SQLite pages
    let (mut latencies, elapsed) = run(Duration::from_secs(seconds)).await;
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    (
        latencies.len() as f64 / elapsed.as_secs_f64(),
        at(0.50),
        at(0.99),
    )
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not expect a run.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let seconds = env_or("SIGNET_BENCH_SECONDS", 10u64);
    let connections = env_or("SIGNET_BENCH_CONNECTIONS", 64usize);
    let store = if std::env::var("SIGNET_BENCH_DATABASE_URL").is_ok() {
        "postgres"
    } else {
        "sqlite"
    };

    let measure = |binary: String, label: String| async move {
        let server = start_server(&binary, &label).await;
        let rate = http_signing_rate(&server, connections, seconds).await;
        server.stop().await;
        rate
    };
    let baseline_bin = std::env::var("SIGNET_BENCH_BASELINE_BIN").ok();
    // With a baseline, the two alternate, each going first every other round, so drift in the
    // machine's load (other builds on the same cores) and going first fall on both alike.
    let rounds = env_or("SIGNET_BENCH_ROUNDS", 1usize).max(1);
    let (mut this_runs, mut base_runs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let this = env!("CARGO_BIN_EXE_signet").to_owned();
        if round % 2 == 0 {
            this_runs.push(measure(this.clone(), format!("this{round}")).await);
        }
        if let Some(binary) = &baseline_bin {
            base_runs.push(measure(binary.clone(), format!("baseline{round}")).await);
        }
        if round % 2 == 1 {
            this_runs.push(measure(this, format!("this{round}")).await);
        }
    }
    let mean = |runs: &[(f64, Duration, Duration)]| {
        runs.iter().map(|r| r.0).sum::<f64>() / runs.len() as f64
    };
    let (http, p50, p99) = (mean(&this_runs), this_runs[0].1, this_runs[0].2);
    let baseline =
        baseline_bin.map(|binary| ((mean(&base_runs), base_runs[0].1, base_runs[0].2), binary));
    let raw = raw_signing_rate(seconds);

    println!(
        "ES256 sign throughput, {seconds} s each, {rounds} round(s), {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("  raw aws-lc-rs in-process (all cores): {raw:>10.0} signatures/s");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  HTTP POST /sign, file backend, {store}, audited, {connections} connections: {http:>10.0} requests/s (rounds {:?}; p50 {:.2} ms, p99 {:.2} ms in round 1)",
        this_runs.iter().map(|r| r.0.round()).collect::<Vec<_>>(),
        ms(p50),
        ms(p99)
    );
    if let Some(((base, base_p50, base_p99), binary)) = baseline {
        println!(
            "  the same against the baseline {binary}: {base:>10.0} requests/s (rounds {:?}; p50 {:.2} ms, p99 {:.2} ms in round 1)",
            base_runs.iter().map(|r| r.0.round()).collect::<Vec<_>>(),
            ms(base_p50),
            ms(base_p99)
        );
        println!("  this build / baseline: {:.3}", http / base);
    }
    println!("  HTTP / raw: {:.3}", http / raw);
}
