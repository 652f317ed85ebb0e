//! Sign throughput over HTTP against the raw signing rate of the same machine, in one run.
//!
//! `cargo bench --bench sign_throughput` (or `scripts/bench`). It starts the release `signet`
//! binary on a free port (SQLite in a temp directory, or Postgres when `SIGNET_BENCH_DATABASE_URL`
//! is set), creates an ES256 ring and an issuer, drives `POST /v1/rings/{ring}/sign` from
//! `SIGNET_BENCH_CONNECTIONS` (default 64) concurrent keep-alive connections for
//! `SIGNET_BENCH_SECONDS` (default 10), then measures the raw signing rate of the same backend for
//! the same time. Every HTTP signature counted was audited (the server answers only after the
//! audit commit).
//!
//! `SIGNET_BENCH_BACKEND` picks the ring's backend:
//! - `file` (default): the raw rate is aws-lc-rs ES256 in-process on every core;
//! - `pkcs11`: the server gets the token from `SIGNET_PKCS11_MODULE`, `SIGNET_PKCS11_TOKEN_LABEL`
//!   and `SIGNET_PKCS11_PIN` (and `SOFTHSM2_CONF` for SoftHSM); the raw rate is a `cryptoki`
//!   `C_Sign` loop with the ring's own key on the same token, one logged-in session per core,
//!   hashing each message here as signet does.
//! - `aws-kms`: the server gets `AWS_REGION=us-east-1` and `AWS_ENDPOINT_URL_KMS` from
//!   `SIGNET_BENCH_KMS_ENDPOINT` (LocalStack; credentials from the AWS environment variables);
//!   the direct rate is `aws-sdk-kms` `Sign` calls (ES256, `MessageType=RAW`) with the ring's own
//!   key from as many concurrent tasks as there are connections, and signet's added latency is
//!   the difference of the two runs' p50 and p99.
//!
//! With `SIGNET_BENCH_REVOCATIONS=N`, it measures instead `POST /v1/verify` and `POST
//! /v1/introspect` of one token with an empty revocation list, then again once N other tokens of
//! its ring are revoked, and prints the ratios.
//!
//! With `SIGNET_BENCH_RAW_ONLY` set, it prints only the raw aws-lc-rs rate (`RAW
//! es256_per_second=N`) and starts no server.
//!
//! With `SIGNET_BENCH_BASELINE_BIN` (another build of `signet`, e.g. an older commit's; see
//! `scripts/bench`), the same HTTP load also runs against that binary, each server on a fresh
//! database of its own, alternating round by round (`SIGNET_BENCH_ROUNDS`, default 1) so drift in
//! the machine's load falls on both alike, and the ratio of the two rates is reported.

use std::time::{Duration, Instant};

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;

mod support;
use support::load::{cores, drive, env_or, ms, Rates};
use support::server::{
    backend, http_client, kms_provider, post, required, send_json, start_server, store, Server,
};

const MESSAGE: &[u8] = b"eyJhbGciOiJFUzI1NiIsImtpZCI6ImJlbmNoIiwidHlwIjoiSldUIn0.eyJhdWQiOiJhcGkiLCJleHAiOjE3OTU0MTMyNTgsImlhdCI6MTc5NTQxMjk1OCwiaXNzIjoiaHR0cHM6Ly9iZW5jaC5leGFtcGxlIiwianRpIjoiOHE5TE1vMnZtQWtTT2RJMnU4ZExfQSIsInN1YiI6InUxIn0";

/// ES256 signatures per second over `seconds`, one signing thread per core.
fn raw_signing_rate(seconds: u64) -> f64 {
    let threads = cores();
    let message = MESSAGE;
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

/// ES256 `C_Sign` calls per second with the key `key_id` on the configured token, one logged-in
/// session per core, each hashing the message first (as `CKM_ECDSA` wants a digest).
fn raw_pkcs11_rate(seconds: u64, key_id: &str) -> f64 {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::{Attribute, ObjectClass};
    use cryptoki::session::UserType;

    let context = Pkcs11::new(required("SIGNET_PKCS11_MODULE")).unwrap();
    context
        .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let label = required("SIGNET_PKCS11_TOKEN_LABEL");
    let slot = context
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|slot| context.get_token_info(*slot).unwrap().label() == label)
        .expect("the token");
    let pin = secrecy::SecretString::from(required("SIGNET_PKCS11_PIN"));
    let sessions: Vec<_> = (0..cores())
        .map(|_| {
            let session = context.open_rw_session(slot).unwrap();
            let _ = session.login(UserType::User, Some(&pin)); // already logged in after the first
            session
        })
        .collect();
    let key = sessions[0]
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(format!("signet:{key_id}").into_bytes()),
        ])
        .unwrap()[0];
    let start = Instant::now();
    let handles: Vec<_> = sessions
        .into_iter()
        .map(|session| {
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(seconds);
                let mut n = 0u64;
                while Instant::now() < deadline {
                    for _ in 0..64 {
                        let hash = digest(&SHA256, MESSAGE);
                        std::hint::black_box(
                            session.sign(&Mechanism::Ecdsa, key, hash.as_ref()).unwrap(),
                        );
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

struct HttpRun {
    rates: Rates,
    /// signet's id of the ring's key (its label on a token).
    key_id: String,
    /// Where the ring's key lives (`awskms:<arn>` on KMS).
    reference: String,
}

/// Signing over HTTP on a new ring of the bench's backend.
async fn http_signing_rate(server: &Server, connections: usize, seconds: u64) -> HttpRun {
    let client = http_client(connections);
    let ring = format!("bench-{}", std::process::id());
    server
        .post(
            &client,
            "/v1/rings",
            &server.admin_token,
            &json!({
                "name": ring, "algorithm": "ES256", "backend": backend(),
                "policy": {"issuer": "https://bench.example", "audiences": ["api"]}
            }),
        )
        .await;
    let keys = server.get(&client, &format!("/v1/rings/{ring}/keys")).await;
    let key_id = keys["keys"][0]["id"].as_str().unwrap().to_owned();
    let reference = keys["keys"][0]["reference"].as_str().unwrap().to_owned();
    let issuer = server
        .post(
            &client,
            "/v1/clients",
            &server.admin_token,
            &json!({
                "name": format!("{ring}-issuer"), "role": "issuer", "rings": [ring]
            }),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!("{}/v1/rings/{ring}/sign", server.address);
    let body = json!({"claims": {"sub": "user-1", "aud": "api", "scope": "read write"}, "ttl_seconds": 300}).to_string();

    // Warm-up: connections, caches, SQLite pages.
    let rates = post_rate(
        &client,
        url,
        issuer,
        body,
        connections,
        (Duration::from_secs(2), Duration::from_secs(seconds)),
    )
    .await;
    HttpRun {
        rates,
        key_id,
        reference,
    }
}

/// `POST url` with `body` from `tasks` concurrent tasks, as fast as answered, for a warm-up and
/// then for the timed run: its requests per second (each must succeed).
async fn post_rate(
    client: &reqwest::Client,
    url: String,
    token: String,
    body: String,
    tasks: usize,
    (warm_up, duration): (Duration, Duration),
) -> Rates {
    let client = client.clone();
    let call = move || {
        let (client, url, token, body) = (client.clone(), url.clone(), token.clone(), body.clone());
        async move {
            let response = send_json(&client, &url, &token, body).await;
            assert!(
                response.status().is_success(),
                "{url}: {}",
                response.status()
            );
            response.bytes().await.unwrap();
        }
    };
    drive(tasks, warm_up, call.clone()).await;
    drive(tasks, duration, call).await
}

/// `POST /v1/verify` and `POST /v1/introspect` of one valid token with an empty revocation list,
/// then with `revocations` tokens of the same ring revoked (by `jti`, as an admin).
async fn revocation_list_cost(revocations: usize, connections: usize, seconds: u64) {
    let server = start_server(env!("CARGO_BIN_EXE_signet"), "revocations").await;
    let client = http_client(connections);
    let (address, admin) = (server.address.clone(), server.admin_token.clone());
    server
        .post(
            &client,
            "/v1/rings",
            &admin,
            &json!({"name": "revocations", "policy": {"issuer": "https://bench.example", "max_ttl_seconds": 3600}}),
        )
        .await;
    let issuer = server
        .post(
            &client,
            "/v1/clients",
            &admin,
            &json!({"name": "revocations-issuer", "role": "issuer", "rings": ["revocations"]}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = server
        .post(
            &client,
            "/v1/rings/revocations/sign",
            &issuer,
            &json!({"claims": {"sub": "user-1"}, "ttl_seconds": 3600}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({"token": token}).to_string();
    let duration = Duration::from_secs(seconds);
    let measure = |path: &'static str| {
        post_rate(
            &client,
            format!("{address}{path}"),
            admin.clone(),
            body.clone(),
            connections,
            (Duration::from_secs(1), duration),
        )
    };
    let empty = [measure("/v1/verify").await, measure("/v1/introspect").await];

    let started = Instant::now();
    let per_task = revocations.div_ceil(connections);
    let revokers: Vec<_> = (0..connections)
        .map(|task| {
            let (client, url, admin) = (
                client.clone(),
                format!("{address}/v1/tokens/revoke"),
                admin.clone(),
            );
            tokio::spawn(async move {
                for i in (task * per_task..(task + 1) * per_task).take_while(|i| *i < revocations) {
                    post(
                        &client,
                        &url,
                        &admin,
                        &json!({"ring": "revocations", "jti": format!("revoked-{i}")}),
                    )
                    .await;
                }
            })
        })
        .collect();
    for task in revokers {
        task.await.unwrap();
    }
    let filled_in = started.elapsed();
    let full = [measure("/v1/verify").await, measure("/v1/introspect").await];
    server.stop().await;

    println!(
        "Revocation list: {revocations} revocations in {:.1} s ({:.0}/s), {connections} connections, {seconds} s each",
        filled_in.as_secs_f64(),
        revocations as f64 / filled_in.as_secs_f64()
    );
    for (i, name) in ["POST /v1/verify", "POST /v1/introspect"]
        .into_iter()
        .enumerate()
    {
        println!(
            "  {name}: empty {:.0}/s (p99 {:.2} ms), {revocations} revoked {:.0}/s (p99 {:.2} ms): {:.3}",
            empty[i].rate,
            ms(empty[i].p99),
            full[i].rate,
            ms(full[i].p99),
            full[i].rate / empty[i].rate
        );
    }
}

/// Direct `kms:Sign` calls (ES256, RAW) with the key at `reference`, from `tasks` concurrent tasks.
async fn direct_kms_rates(reference: &str, tasks: usize, seconds: u64) -> Rates {
    use aws_sdk_kms::primitives::Blob;
    use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};

    let kms = kms_provider().await.client().clone();
    let arn = reference.strip_prefix("awskms:").unwrap().to_owned();
    let sign = move || {
        let (kms, arn) = (kms.clone(), arn.clone());
        async move {
            kms.sign()
                .key_id(arn)
                .message(Blob::new(MESSAGE))
                .message_type(MessageType::Raw)
                .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
                .send()
                .await
                .expect("kms:Sign");
        }
    };
    drive(tasks, Duration::from_secs(2), sign.clone()).await;
    drive(tasks, Duration::from_secs(seconds), sign).await
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not expect a run.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let seconds = env_or("SIGNET_BENCH_SECONDS", 10u64);
    if std::env::var("SIGNET_BENCH_RAW_ONLY").is_ok() {
        // For scripts/bench-vs-peer's table: the in-process ceiling alone.
        println!("RAW es256_per_second={:.0}", raw_signing_rate(seconds));
        return;
    }
    let connections = env_or("SIGNET_BENCH_CONNECTIONS", 64usize);
    if let Ok(revocations) = std::env::var("SIGNET_BENCH_REVOCATIONS") {
        let revocations = revocations
            .parse()
            .expect("SIGNET_BENCH_REVOCATIONS is a number");
        revocation_list_cost(revocations, connections, seconds).await;
        return;
    }
    let store = store();

    let backend = backend();
    let measure = |binary: String, label: String| async move {
        let server = start_server(&binary, &label).await;
        let run = http_signing_rate(&server, connections, seconds).await;
        server.stop().await;
        run
    };
    let this = env!("CARGO_BIN_EXE_signet").to_owned();
    let baseline_bin = std::env::var("SIGNET_BENCH_BASELINE_BIN").ok();
    let rounds = env_or("SIGNET_BENCH_ROUNDS", 1usize).max(1);
    let (mut this_runs, mut base_runs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        if round % 2 == 0 {
            this_runs.push(measure(this.clone(), format!("this{round}")).await);
        }
        if let Some(binary) = &baseline_bin {
            base_runs.push(measure(binary.clone(), format!("baseline{round}")).await);
        }
        if round % 2 == 1 {
            this_runs.push(measure(this.clone(), format!("this{round}")).await);
        }
    }
    let mean =
        |runs: &[HttpRun]| runs.iter().map(|r| r.rates.rate).sum::<f64>() / runs.len() as f64;
    let rate = mean(&this_runs);
    let http = &this_runs[0];
    let mut direct_kms = None;
    let (raw, raw_name) = match backend.as_str() {
        "file" => (
            raw_signing_rate(seconds),
            "raw aws-lc-rs in-process (all cores)",
        ),
        "pkcs11" => (
            raw_pkcs11_rate(seconds, &http.key_id),
            "raw cryptoki C_Sign loop, same token and key (one session per core)",
        ),
        "aws-kms" => {
            let rates = direct_kms_rates(&http.reference, connections, seconds).await;
            let rate = rates.rate;
            direct_kms = Some(rates);
            (
                rate,
                "direct aws-sdk-kms Sign, same key, as many concurrent tasks as connections",
            )
        }
        other => panic!("SIGNET_BENCH_BACKEND={other}: expected file, pkcs11 or aws-kms"),
    };

    let rates = |runs: &[HttpRun]| {
        runs.iter()
            .map(|r| r.rates.rate.round())
            .collect::<Vec<_>>()
    };
    println!(
        "ES256 sign throughput, {seconds} s each, {rounds} round(s), {} cores",
        cores()
    );
    println!("  {raw_name}: {raw:>10.0} signatures/s");
    println!(
        "  HTTP POST /sign, {backend} backend, {store}, audited, {connections} connections: {rate:>10.0} requests/s (rounds {:?}; p50 {:.2} ms, p99 {:.2} ms in round 1)",
        rates(&this_runs),
        ms(http.rates.p50),
        ms(http.rates.p99)
    );
    println!("  HTTP / raw: {:.3}", rate / raw);
    if let Some(binary) = &baseline_bin {
        let base = mean(&base_runs);
        println!(
            "  the same against the baseline {binary}: {base:>10.0} requests/s (rounds {:?}; p50 {:.2} ms, p99 {:.2} ms in round 1)",
            rates(&base_runs),
            ms(base_runs[0].rates.p50),
            ms(base_runs[0].rates.p99)
        );
        println!("  this build / baseline: {:.3}", rate / base);
    }
    if let Some(direct) = direct_kms {
        println!(
            "  direct Sign latency: p50 {:.2} ms, p99 {:.2} ms; signet adds p50 {:+.2} ms, p99 {:+.2} ms",
            ms(direct.p50),
            ms(direct.p99),
            ms(http.rates.p50) - ms(direct.p50),
            ms(http.rates.p99) - ms(direct.p99)
        );
    }
}
