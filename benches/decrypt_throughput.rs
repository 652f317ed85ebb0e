//! Decrypt throughput over HTTP against the raw key-management rate of the same backend and key,
//! in one run, for each JWE algorithm the backend supports.
//!
//! `cargo bench --bench decrypt_throughput` (or `scripts/bench-decrypt`). For each algorithm it
//! starts the release `signet` binary on a free port (SQLite in a temp directory, or a fresh
//! database on the Postgres at `SIGNET_BENCH_DATABASE_URL`), creates an encryption ring of that
//! algorithm (A256GCM; P-256 or RSA 2048, the defaults) and a `decryptor` client for it, and
//! encrypts a pool of `SIGNET_BENCH_TOKENS` (default 2000) tokens to the first key of the ring's
//! JWKS, each a small JSON claims set (`sub`, `aud`, `scope`, `jti`, `iat`, `exp`), with signet's
//! own `jwe::Encryption`. It then drives `POST /v1/rings/{ring}/decrypt` from
//! `SIGNET_BENCH_CONNECTIONS` (default 64) concurrent keep-alive connections, cycling through
//! the pool, for a 2 s warm-up and then `SIGNET_BENCH_SECONDS` (default 10). Only 200 answers
//! are counted; any other answer ends the run with its status and body. Every decryption counted
//! was audited (the server answers only after the audit record commits).
//!
//! Then the server stops, and the raw rate of the backend's part of a decryption is measured on
//! the same key for the same time (after a 1 s warm-up): `KeyProvider::decrypt` (RSA-OAEP, of
//! the pool's encrypted keys) or `KeyProvider::agree` (ECDH, with the pool's `epk` points), the
//! only step a backend performs; the content-key derivation or unwrap and AES-GCM run in signet
//! and are part of the HTTP figure only. The table prints, per (backend, algorithm), the HTTP
//! decryptions per second with their p50 and p99, the raw operations per second, and HTTP / raw.
//!
//! `SIGNET_BENCH_BACKEND` picks the rings' backend, and with it the algorithms measured:
//! - `file` (default): RSA-OAEP-256, RSA-OAEP, ECDH-ES, ECDH-ES+A256KW. The raw rate is a
//!   `signet_file::FileProvider` opened in-process on the server's own store (its quick-start
//!   `master.key`, or `SIGNET_FILE_KEK` when set), one task per core.
//! - `pkcs11`: RSA-OAEP, ECDH-ES, ECDH-ES+A256KW (SoftHSM2 lacks RSA-OAEP with SHA-256). The
//!   server gets the token from `SIGNET_PKCS11_MODULE`, `SIGNET_PKCS11_TOKEN_LABEL` and
//!   `SIGNET_PKCS11_PIN` (and `SOFTHSM2_CONF` for SoftHSM); the raw rate is a
//!   `signet_pkcs11::Pkcs11Provider` on the same token with one session per core, one task per
//!   core.
//! - `aws-kms`: RSA-OAEP-256, ECDH-ES, ECDH-ES+A256KW (KMS has no RSA-OAEP with SHA-1). The
//!   server gets `AWS_REGION=us-east-1` and `AWS_ENDPOINT_URL_KMS` from
//!   `SIGNET_BENCH_KMS_ENDPOINT` (LocalStack; credentials from the AWS environment variables);
//!   the raw rate is a `signet_aws_kms::AwsKmsProvider` against the same endpoint from as many
//!   concurrent tasks as there are connections, and signet's added latency is the difference of
//!   the two runs' p50 and p99. LocalStack decrypts RSA some 20 times a second: with 64
//!   connections, calls queue past the backend's 3.3 s attempt timeout and the server answers
//!   503, which ends the run; use `SIGNET_BENCH_CONNECTIONS=8` against it.
//!
//! `SIGNET_BENCH_ALGORITHMS` (e.g. `"ECDH-ES RSA-OAEP-256"`, space- or comma-separated)
//! measures only those of the backend's algorithms.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use signet::jwe::{ContentEncryption, Encryption, KeyManagement};
use signet_core::{KeyProvider, KeyRef, KeySpec, OaepHash, PublicKey};

mod support;
use support::load::{cores, drive, drive_threads, env_or, ms, Rates};
use support::server::{
    backend, http_client, kms_provider, required, send_json, start_server, store, Server,
    FILE_BACKEND_DIR,
};

/// The algorithms `backend` decrypts, in the order they are measured.
fn algorithms(backend: &str) -> Vec<KeyManagement> {
    let all = match backend {
        "file" => vec![
            KeyManagement::RsaOaep256,
            KeyManagement::RsaOaep,
            KeyManagement::EcdhEs,
            KeyManagement::EcdhEsA256Kw,
        ],
        "pkcs11" => vec![
            KeyManagement::RsaOaep,
            KeyManagement::EcdhEs,
            KeyManagement::EcdhEsA256Kw,
        ],
        "aws-kms" => vec![
            KeyManagement::RsaOaep256,
            KeyManagement::EcdhEs,
            KeyManagement::EcdhEsA256Kw,
        ],
        other => panic!("SIGNET_BENCH_BACKEND={other}: expected file, pkcs11 or aws-kms"),
    };
    let Ok(chosen) = std::env::var("SIGNET_BENCH_ALGORITHMS") else {
        return all;
    };
    let chosen: Vec<KeyManagement> = chosen
        .split([' ', ','])
        .filter(|name| !name.is_empty())
        .map(|name| {
            let alg = KeyManagement::parse(name)
                .unwrap_or_else(|| panic!("SIGNET_BENCH_ALGORITHMS: {name} is no JWE alg"));
            assert!(
                all.contains(&alg),
                "SIGNET_BENCH_ALGORITHMS: the {backend} backend does not decrypt {name}"
            );
            alg
        })
        .collect();
    all.into_iter().filter(|alg| chosen.contains(alg)).collect()
}

/// `alg`'s name in lower case with `separator` between its words: for ring and database names.
fn slug(alg: KeyManagement, separator: char) -> String {
    alg.as_str()
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c
            } else {
                separator
            }
        })
        .collect()
}

/// An encryption ring ready for the load.
struct Ring {
    name: String,
    /// The decryptor client's bearer token.
    decryptor: String,
    /// Where the ring's current key lives in its backend.
    reference: KeyRef,
    spec: KeySpec,
    /// Compact JWEs to the ring's current key.
    tokens: Vec<String>,
}

/// Creates the ring for `alg` on `server`, a decryptor client for it, and `pool` tokens
/// encrypted to the first key of its JWKS; checks that one of them decrypts over HTTP.
async fn prepare(
    server: &Server,
    client: &reqwest::Client,
    alg: KeyManagement,
    pool: usize,
) -> Ring {
    let name = format!("decrypt-{}", slug(alg, '-'));
    let admin = &server.admin_token;
    server
        .post(
            client,
            "/v1/rings",
            admin,
            &json!({
                "name": name, "backend": backend(), "algorithm": alg.as_str(),
                "encryption": "A256GCM",
                "policy": {"issuer": "https://bench.example", "audiences": [], "max_ttl_seconds": 600}
            }),
        )
        .await;
    let decryptor = server
        .post(
            client,
            "/v1/clients",
            admin,
            &json!({"name": format!("{name}-decryptor"), "role": "decryptor", "rings": [name]}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let jwks = server
        .get(client, &format!("/v1/rings/{name}/jwks.json"))
        .await;
    let jwk = jwks["keys"][0].clone();
    assert_eq!(jwk["use"], "enc", "the ring's JWKS: {jwks}");
    assert_eq!(jwk["alg"], alg.as_str(), "the ring's JWKS: {jwks}");
    let kid = jwk["kid"].as_str().expect("the JWK's kid").to_owned();
    let keys = server.get(client, &format!("/v1/rings/{name}/keys")).await;
    let key = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("no key of {name} has the kid {kid}: {keys}"));
    let reference = KeyRef(key["reference"].as_str().unwrap().to_owned());
    let spec = KeySpec::parse(key["key_spec"].as_str().unwrap()).unwrap();

    let encryption = Encryption::to_jwk(&jwk, None, ContentEncryption::A256Gcm)
        .expect("the ring's JWK takes encryption");
    assert_eq!(encryption.alg(), alg);
    let claims = |i: usize| {
        json!({
            "sub": "user-1", "aud": "api", "scope": "read write", "jti": format!("bench-{i}"),
            "iat": 1_796_000_000, "exp": 1_796_000_300
        })
    };
    let tokens: Vec<String> = (0..pool)
        .map(|i| encryption.seal(None, claims(i).to_string().as_bytes()))
        .collect();

    let first = server
        .post(
            client,
            &format!("/v1/rings/{name}/decrypt"),
            &decryptor,
            &json!({"token": tokens[0]}),
        )
        .await;
    assert_eq!(first["kid"], kid.as_str(), "{first}");
    assert_eq!(first["alg"], alg.as_str(), "{first}");
    assert_eq!(first["claims"], claims(0), "{first}");
    Ring {
        name,
        decryptor,
        reference,
        spec,
        tokens,
    }
}

/// `POST /v1/rings/{ring}/decrypt` from `connections` tasks, each taking the pool's next token,
/// for a 2 s warm-up and then `seconds`; every answer must be 200.
async fn http_rates(
    server: &Server,
    client: &reqwest::Client,
    ring: &Ring,
    connections: usize,
    seconds: u64,
) -> Rates {
    let url = format!("{}/v1/rings/{}/decrypt", server.address, ring.name);
    let bodies: Arc<Vec<String>> = Arc::new(
        ring.tokens
            .iter()
            .map(|token| json!({"token": token}).to_string())
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let (client, token) = (client.clone(), ring.decryptor.clone());
    let call = move || {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        let body = bodies[next.fetch_add(1, Ordering::Relaxed) % bodies.len()].clone();
        async move {
            let response = send_json(&client, &url, &token, body).await;
            let status = response.status();
            let text = response.text().await.unwrap();
            assert!(
                status == reqwest::StatusCode::OK,
                "POST {url}: {status}: {text}"
            );
        }
    };
    drive(connections, Duration::from_secs(2), call.clone()).await;
    drive(connections, Duration::from_secs(seconds), call).await
}

/// What one call of the raw primitive takes, from a token of the pool.
enum RawInput {
    /// RSA-OAEP: the token's encrypted key.
    Decrypt(OaepHash, Vec<u8>),
    /// ECDH: the token's `epk`.
    Agree(PublicKey),
}

fn raw_inputs(ring: &Ring) -> Vec<RawInput> {
    ring.tokens
        .iter()
        .map(|token| {
            let jwe = signet::jwe::parse(token, token.len()).expect("a token of the pool parses");
            match jwe.alg {
                KeyManagement::RsaOaep => RawInput::Decrypt(OaepHash::Sha1, jwe.encrypted_key),
                KeyManagement::RsaOaep256 => RawInput::Decrypt(OaepHash::Sha256, jwe.encrypted_key),
                KeyManagement::EcdhEs | KeyManagement::EcdhEsA256Kw => {
                    let (x, y) = jwe.epk.as_ref().expect("an ECDH token's epk").coordinates();
                    RawInput::Agree(PublicKey::Ec {
                        spec: ring.spec,
                        x: x.to_vec(),
                        y: y.to_vec(),
                    })
                }
            }
        })
        .collect()
}

/// The bench's own provider on the backend the server used (stopped now): the same store, token
/// or endpoint.
async fn raw_provider(server: &Server) -> Arc<dyn KeyProvider> {
    match backend().as_str() {
        "file" => {
            let kek = std::env::var("SIGNET_FILE_KEK").ok().map(|kek| {
                signet_file::KekSource::key_from_text(&secrecy::SecretString::from(kek))
                    .expect("SIGNET_FILE_KEK")
            });
            let config = signet_file::FileConfig {
                dir: server.data_dir().join(FILE_BACKEND_DIR),
                kek,
            };
            let provider = tokio::task::spawn_blocking(move || {
                signet_file::FileProvider::open(config)
                    .expect("the server's file store opens (set SIGNET_FILE_KEK as it had it)")
            })
            .await
            .unwrap();
            Arc::new(provider)
        }
        "pkcs11" => {
            let config = signet_pkcs11::Pkcs11Config {
                module: required("SIGNET_PKCS11_MODULE").into(),
                token_label: required("SIGNET_PKCS11_TOKEN_LABEL"),
                pin: secrecy::SecretString::from(required("SIGNET_PKCS11_PIN")),
                pool_size: Some(cores()),
            };
            let provider = tokio::task::spawn_blocking(move || {
                signet_pkcs11::Pkcs11Provider::open(config).expect("the PKCS#11 token opens")
            })
            .await
            .unwrap();
            Arc::new(provider)
        }
        "aws-kms" => Arc::new(kms_provider().await),
        other => panic!("SIGNET_BENCH_BACKEND={other}: expected file, pkcs11 or aws-kms"),
    }
}

/// `KeyProvider::decrypt` or `agree` with the ring's key on `provider`, each call taking the next
/// of `inputs`, for a 1 s warm-up and then `seconds`: from `tasks` tasks on KMS (whose calls wait
/// on the network), else from one thread per core.
async fn raw_rates(
    provider: &Arc<dyn KeyProvider>,
    ring: &Ring,
    inputs: Vec<RawInput>,
    tasks: usize,
    seconds: u64,
) -> Rates {
    let inputs = Arc::new(inputs);
    let next = Arc::new(AtomicUsize::new(0));
    let (provider, reference) = (provider.clone(), ring.reference.clone());
    let call = move || {
        let (provider, reference, inputs) = (provider.clone(), reference.clone(), inputs.clone());
        let i = next.fetch_add(1, Ordering::Relaxed) % inputs.len();
        async move {
            let secret = match &inputs[i] {
                RawInput::Decrypt(hash, ciphertext) => {
                    provider.decrypt(&reference, *hash, ciphertext).await
                }
                RawInput::Agree(peer) => provider.agree(&reference, peer).await,
            }
            .unwrap_or_else(|e| panic!("{} {reference}: {e}", provider.name()));
            assert!(!secret.is_empty());
        }
    };
    let (warm_up, duration) = (Duration::from_secs(1), Duration::from_secs(seconds));
    if backend() == "aws-kms" {
        drive(tasks, warm_up, call.clone()).await;
        drive(tasks, duration, call).await
    } else {
        // The file backend's ECDH completes without ever waiting: tasks of this runtime would
        // never let its timer end the run.
        tokio::task::spawn_blocking(move || {
            drive_threads(tasks, warm_up, call.clone());
            drive_threads(tasks, duration, call)
        })
        .await
        .unwrap()
    }
}

/// The figures of one algorithm.
struct Row {
    alg: KeyManagement,
    spec: KeySpec,
    http: Rates,
    raw: Rates,
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not expect a run.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let seconds = env_or("SIGNET_BENCH_SECONDS", 10u64);
    let connections = env_or("SIGNET_BENCH_CONNECTIONS", 64usize);
    let pool = env_or("SIGNET_BENCH_TOKENS", 2000usize).max(1);
    let backend = backend();
    let raw_tasks = if backend == "aws-kms" {
        connections
    } else {
        cores()
    };
    let client = http_client(connections);

    let mut rows = Vec::new();
    for alg in algorithms(&backend) {
        let mut server = start_server(
            env!("CARGO_BIN_EXE_signet"),
            &format!("decrypt_{}", slug(alg, '_')),
        )
        .await;
        let ring = prepare(&server, &client, alg, pool).await;
        let http = http_rates(&server, &client, &ring, connections, seconds).await;
        // The raw rate runs alone, on the store, token or endpoint the server used.
        server.halt();
        let provider = raw_provider(&server).await;
        let raw = raw_rates(&provider, &ring, raw_inputs(&ring), raw_tasks, seconds).await;
        provider.close().await;
        server.stop().await;
        eprintln!(
            "{backend} {}: HTTP {:.0}/s, raw {:.0}/s",
            alg.as_str(),
            http.rate,
            raw.rate
        );
        rows.push(Row {
            alg,
            spec: ring.spec,
            http,
            raw,
        });
    }

    let raw_name = match backend.as_str() {
        "file" => "KeyProvider::decrypt/agree in-process on the server's store, one thread per core",
        "pkcs11" => {
            "KeyProvider::decrypt/agree of a Pkcs11Provider on the same token, one thread and session per core"
        }
        _ => "KeyProvider::decrypt/agree of an AwsKmsProvider on the same endpoint, as many tasks as connections",
    };
    println!(
        "Decrypt throughput, {backend} backend, {}, audited, {connections} connections, {pool} tokens per ring, {seconds} s each, {} cores",
        store(),
        cores()
    );
    println!("  HTTP: POST /v1/rings/{{ring}}/decrypt, A256GCM, JSON claims; raw: {raw_name} ({raw_tasks} at a time)");
    println!(
        "  {:<8} {:<15} {:<8} {:>18} {:>8} {:>8} {:>12} {:>9}",
        "backend", "alg", "key", "HTTP decryptions/s", "p50 ms", "p99 ms", "raw ops/s", "HTTP/raw"
    );
    for row in &rows {
        println!(
            "  {:<8} {:<15} {:<8} {:>18.0} {:>8.2} {:>8.2} {:>12.0} {:>9.3}",
            backend,
            row.alg.as_str(),
            row.spec.as_str(),
            row.http.rate,
            ms(row.http.p50),
            ms(row.http.p99),
            row.raw.rate,
            row.http.rate / row.raw.rate
        );
    }
    if backend == "aws-kms" {
        for row in &rows {
            println!(
                "  {}: direct latency p50 {:.2} ms, p99 {:.2} ms; signet adds p50 {:+.2} ms, p99 {:+.2} ms",
                row.alg.as_str(),
                ms(row.raw.p50),
                ms(row.raw.p99),
                ms(row.http.p50) - ms(row.raw.p50),
                ms(row.http.p99) - ms(row.raw.p99)
            );
        }
    }
}
