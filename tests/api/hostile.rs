//! Hostile input: what an attacker can make the server do is bounded. Floods of anonymous
//! requests grow the audit log by a bounded amount, rate limits refuse with 429 and fail no
//! one within their limits, a stalled body is cut, errors echo a bounded prefix of the input,
//! and members named twice are refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use signet::config::HttpSettings;
use signet::domain::RateLimit;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tempfile::TempDir;

use crate::helpers::{Db, TestApp, TestDb};
use crate::store_tests;

store_tests!(
    an_anonymous_flood_grows_the_audit_log_by_a_few_records,
    anonymous_callers_are_limited_per_source_and_valid_clients_are_not,
);

/// The bytes the audit log holds, as near as its columns tell.
async fn audit_bytes(pool: &sqlx::AnyPool) -> i64 {
    sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(LENGTH(detail) + LENGTH(principal) + LENGTH(action) \
         + COALESCE(LENGTH(ring), 0) + COALESCE(LENGTH(kid), 0) + COALESCE(LENGTH(hash), 0) + 16), 0) \
         AS BIGINT) FROM audit_log",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The `requests_denied` tallies: (principal, detail) of each.
async fn tallies(pool: &sqlx::AnyPool) -> Vec<(String, Value)> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT principal, detail FROM audit_log WHERE action = 'requests_denied' ORDER BY seq",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(p, d)| (p, serde_json::from_str(&d).unwrap()))
        .collect()
}

fn unlimited() -> RateLimit {
    RateLimit {
        per_second: RateLimit::MAX,
        burst: RateLimit::MAX,
    }
}

/// Stops `app` (which writes the open tallies) and connects to its store; keep the second
/// value as long as the store is used (it holds the database).
async fn stopped(app: TestApp) -> (sqlx::AnyPool, (Arc<TempDir>, Arc<TestDb>)) {
    let url = app.db.url.clone();
    let kept = app.stop().await;
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    (pool, kept)
}

async fn an_anonymous_flood_grows_the_audit_log_by_a_few_records(db: Db) {
    let http = HttpSettings {
        anonymous_rate_limit: unlimited(),
        ..HttpSettings::default()
    };
    let app = Arc::new(TestApp::spawn_with_http(db, http).await);
    app.create_ring("r", json!({})).await;
    let before = audit_bytes(&sqlx::AnyPool::connect(&app.db.url).await.unwrap()).await;
    let long_ring = "x".repeat(8000);
    let long_kid = "k".repeat(45_000);
    let forged = format!(
        "{}.e30.c2ln",
        signet::jose::b64url(
            json!({"alg": "ES256", "kid": long_kid})
                .to_string()
                .as_bytes()
        )
    );
    let started = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|task| {
            let (app, long_ring, forged) = (app.clone(), long_ring.clone(), forged.clone());
            tokio::spawn(async move {
                for n in 0..5000 / 16 + usize::from(task < 5000 % 16) {
                    let response = match (task + n) % 4 {
                        0 => {
                            let path = format!("/v1/rings/{long_ring}/sign");
                            app.request(Method::POST, &path, None, Some(json!({})))
                                .await
                        }
                        1 => {
                            let body = Some(json!({"token": forged}));
                            app.request(Method::POST, "/v1/verify", None, body).await
                        }
                        2 => app.get("/v1/audit", Some("signet_guessed-token")).await,
                        _ => {
                            let path = "/v1/keys/%00/revoke";
                            app.request(Method::POST, path, None, None).await
                        }
                    };
                    assert!(
                        [StatusCode::UNAUTHORIZED, StatusCode::UNPROCESSABLE_ENTITY]
                            .contains(&response.status),
                        "{}: {}",
                        response.status,
                        response.body
                    );
                    let message = response.body["error"]["message"].as_str().unwrap();
                    assert!(message.len() < 200, "a bounded message: {message}");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // The minutes the flood touched: two codes (401, 422) make at most two records in each.
    let minutes = i64::try_from(started.elapsed().as_secs() / 60 + 2).unwrap();
    let app = Arc::into_inner(app).expect("no request holds the app");
    let (pool, _kept) = stopped(app).await;
    let grown = audit_bytes(&pool).await - before;
    let tallies = tallies(&pool).await;
    let counted: u64 = tallies
        .iter()
        .map(|(_, d)| d["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 5000, "every refusal is counted: {tallies:?}");
    let records = i64::try_from(tallies.len()).unwrap();
    assert!(
        records <= 2 * minutes,
        "one record per code and minute: {tallies:?}"
    );
    assert!(
        grown <= records * 1024,
        "each record is under a kilobyte; the log grew by {grown} bytes"
    );
    for (principal, detail) in &tallies {
        assert_eq!(principal, "anonymous");
        assert_eq!(detail["source"], "127.0.0.1");
        assert!(detail["path"].as_str().unwrap().len() <= 256 + "…[cut]".len());
    }
}

async fn anonymous_callers_are_limited_per_source_and_valid_clients_are_not(db: Db) {
    let http = HttpSettings {
        anonymous_rate_limit: RateLimit {
            per_second: 1,
            burst: 5,
        },
        ..HttpSettings::default()
    };
    let app = TestApp::spawn_with_http(db, http).await;
    app.create_ring("r", json!({})).await;
    let (_, issuer) = app.create_client("svc", "issuer", &["r"]).await;
    let started = Instant::now();
    let (mut served, mut limited) = (0u64, 0u64);
    for _ in 0..30 {
        let jwks = app.get("/v1/rings/r/jwks.json", None).await;
        match jwks.status {
            StatusCode::OK => served += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                assert_eq!(jwks.body["error"]["code"], "rate_limited");
                let retry: u64 = jwks.headers["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(retry >= 1);
            }
            other => panic!("{other}: {}", jwks.body),
        }
        // A client with a valid token is not held to its address's allowance.
        let signed = app.sign(&issuer, "r", json!({"aud": "api"})).await;
        assert_eq!(signed.status, StatusCode::OK, "{}", signed.body);
        assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);
    }
    // The bucket holds 5 and refills 1 a second: no more can have been served.
    let allowance = 5 + started.elapsed().as_secs() + 1;
    assert!(
        served <= allowance,
        "{served} served, allowance {allowance}"
    );
    assert!(limited > 0);
    // A wrong token counts against the same allowance.
    let mut refused_guesses = 0;
    for _ in 0..10 {
        let guess = app.get("/v1/audit", Some("signet_guess")).await;
        if guess.status == StatusCode::TOO_MANY_REQUESTS {
            refused_guesses += 1;
        } else {
            assert_eq!(guess.status, StatusCode::UNAUTHORIZED);
        }
    }
    assert!(refused_guesses > 0);
    let (pool, _kept) = stopped(app).await;
    let throttled: u64 = tallies(&pool)
        .await
        .iter()
        .filter(|(p, d)| p == "anonymous" && d["code"] == "rate_limited")
        .map(|(_, d)| d["count"].as_u64().unwrap())
        .sum();
    assert_eq!(throttled, limited + refused_guesses);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_limit_gets_429_and_others_sign_on() {
    let app = TestApp::spawn(Db::Postgres).await;
    app.create_ring("r", json!({})).await;
    let created = app
        .post(
            "/v1/clients",
            &app.admin_token,
            json!({"name": "slow", "role": "issuer", "rings": ["r"],
                   "rate_limit": {"per_second": 1, "burst": 3}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(
        created.body["rate_limit"],
        json!({"per_second": 1, "burst": 3})
    );
    let slow = created.body["token"].as_str().unwrap().to_owned();
    let slow_id = created.body["id"].as_str().unwrap().to_owned();
    let (_, fast) = app.create_client("fast", "issuer", &["r"]).await;
    let started = Instant::now();
    let (mut signed, mut limited) = (0u64, 0u64);
    for _ in 0..15 {
        let response = app.sign(&slow, "r", json!({"aud": "api"})).await;
        match response.status {
            StatusCode::OK => signed += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                assert_eq!(response.body["error"]["code"], "rate_limited");
                assert!(response.headers.contains_key("retry-after"));
                assert!(response.body.get("token").is_none());
            }
            other => panic!("{other}: {}", response.body),
        }
        let other = app.sign(&fast, "r", json!({"aud": "api"})).await;
        assert_eq!(other.status, StatusCode::OK, "{}", other.body);
    }
    assert!(signed >= 3, "the burst is served");
    assert!(signed <= 3 + started.elapsed().as_secs() + 1);
    assert!(limited > 0);
    // An admin lifts the limit (back to the server's default).
    let lifted = app
        .request(
            Method::PUT,
            &format!("/v1/clients/{slow_id}/rate-limit"),
            Some(&app.admin_token),
            Some(json!({"rate_limit": null})),
        )
        .await;
    assert_eq!(lifted.status, StatusCode::NO_CONTENT, "{}", lifted.body);
    for _ in 0..10 {
        let response = app.sign(&slow, "r", json!({"aud": "api"})).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    }
    let (pool, _kept) = stopped(app).await;
    let throttled: u64 = tallies(&pool)
        .await
        .iter()
        .filter(|(p, d)| p == "client:slow" && d["code"] == "rate_limited")
        .map(|(_, d)| d["count"].as_u64().unwrap())
        .sum();
    assert_eq!(throttled, limited);
    let changes: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'client_rate_limit_changed'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(changes, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_cut_while_other_requests_are_served() {
    let deadline = Duration::from_secs(2);
    let http = HttpSettings {
        body_timeout: deadline,
        ..HttpSettings::default()
    };
    let app = TestApp::spawn_with_http(Db::Sqlite, http).await;
    app.create_ring("r", json!({})).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let started = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut conn = tokio::net::TcpStream::connect(&address).await.unwrap();
        conn.write_all(
            b"POST /v1/verify HTTP/1.1\r\nHost: signet\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
        stalled.push(conn);
    }
    for _ in 0..5 {
        let jwks = app.get("/v1/rings/r/jwks.json", None).await;
        assert_eq!(jwks.status, StatusCode::OK);
    }
    for mut conn in stalled {
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), conn.read_to_end(&mut answer))
            .await
            .expect("the server closes a stalled connection")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("body_timeout"), "{answer}");
    }
    assert!(started.elapsed() >= deadline);
    let jwks = app.get("/v1/rings/r/jwks.json", None).await;
    assert_eq!(jwks.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_echo_a_bounded_prefix_and_carry_the_request_id() {
    let app = TestApp::spawn(Db::Sqlite).await;
    app.create_ring("r", json!({})).await;
    let long = "y".repeat(5000);
    let answers = [
        app.get(&format!("/v1/rings/{long}/keys"), Some(&app.admin_token))
            .await,
        app.get(&format!("/nowhere/{long}"), None).await,
        app.post("/v1/rings", &app.admin_token, {
            let mut body = json!({"name": "s", "policy": {"issuer": "i"}});
            body[&long] = json!(1);
            body
        })
        .await,
        app.post(
            "/v1/clients",
            &app.admin_token,
            json!({"name": "svc", "role": "issuer", "rings": [long.clone()]}),
        )
        .await,
        app.request(
            Method::POST,
            "/v1/verify",
            None,
            Some(json!({"token": format!("{long}.{long}.{long}")})),
        )
        .await,
    ];
    for answer in answers {
        assert!(answer.status.is_client_error(), "{}", answer.body);
        let message = answer.body["error"]["message"].as_str().unwrap();
        assert!(message.len() < 200, "{message}");
        assert!(!message.contains(&"y".repeat(100)), "{message}");
        let id = answer.headers["x-request-id"].to_str().unwrap();
        assert_eq!(answer.body["error"]["request_id"], id);
        assert_eq!(id.len(), 16);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_named_twice_and_unprintable_names_are_refused() {
    let app = TestApp::spawn(Db::Sqlite).await;
    app.create_ring("r", json!({})).await;
    let (_, issuer) = app.create_client("svc", "issuer", &["r"]).await;
    let ambiguous = app
        .post_raw(
            "/v1/rings/r/sign",
            Some(&issuer),
            r#"{"claims": {"aud": "other", "aud": "api"}}"#.into(),
        )
        .await;
    assert_eq!(
        ambiguous.status,
        StatusCode::BAD_REQUEST,
        "{}",
        ambiguous.body
    );
    assert_eq!(ambiguous.body["error"]["code"], "duplicate_member");
    for name in ["a\nb", "a\u{0}b", "\u{1b}[31mred", "admin\u{202e}", "a b"] {
        let created = app
            .post(
                "/v1/clients",
                &app.admin_token,
                json!({"name": name, "role": "auditor"}),
            )
            .await;
        assert_eq!(created.status, StatusCode::BAD_REQUEST, "{name:?}");
    }
    // A required claim is not satisfied by null.
    app.create_ring("strict", json!({"policy": {"required_claims": ["sub"]}}))
        .await;
    let (_, strict) = app.create_client("strict", "issuer", &["strict"]).await;
    let null_sub = app
        .sign(&strict, "strict", json!({"aud": "api", "sub": null}))
        .await;
    assert_eq!(null_sub.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(null_sub.body["error"]["code"], "missing_required_claim");
    // Durations are bounded: nothing overflows into an early destruction.
    let too_long = app
        .post(
            "/v1/rings",
            &app.admin_token,
            json!({"name": "forever", "policy": {"issuer": "i"},
                   "timing": {"retain_retired_seconds": u64::MAX / 1000 + 1}}),
        )
        .await;
    assert_eq!(
        too_long.status,
        StatusCode::BAD_REQUEST,
        "{}",
        too_long.body
    );
}
