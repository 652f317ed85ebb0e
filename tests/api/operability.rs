//! What an operator watches: `/metrics` after real traffic, request ids, the access log, and
//! `/readyz` once shutdown begins.

// The samples compared are counts: whole numbers, exact in an f64.
#![allow(clippy::float_cmp)]

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    serve_process, serve_process_logging, sigterm, terminate, Db, TestApp, TestDb,
};
use crate::store_tests;

/// A scrape: each sample's name with its labels (as written) to its value.
pub async fn scrape(app: &TestApp) -> HashMap<String, f64> {
    let response = crate::helpers::http_client()
        .get(format!("{}/metrics", app.address))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (sample, value) = line.rsplit_once(' ').expect("a sample has a value");
            (
                sample.to_owned(),
                value.parse().expect("a sample's value is a number"),
            )
        })
        .collect()
}

fn moved(before: &HashMap<String, f64>, after: &HashMap<String, f64>, sample: &str) -> f64 {
    let value = |scrape: &HashMap<String, f64>| scrape.get(sample).copied().unwrap_or(0.0);
    value(after) - value(before)
}

async fn metrics_count_exactly_the_traffic_sent(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_ring("m", json!({})).await;
    let (_, issuer) = app.create_client("svc", "issuer", &["m"]).await;
    let (_, auditor) = app.create_client("aud", "auditor", &[]).await;

    // Only an admin's or an auditor's token reads the metrics.
    assert_eq!(
        app.get("/metrics", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/metrics", Some(&issuer)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get("/metrics", Some(&auditor)).await.status,
        StatusCode::OK
    );

    let before = scrape(&app).await;
    let mut tokens = Vec::new();
    for n in 0..7 {
        let signed = app
            .sign(
                &issuer,
                "m",
                json!({"sub": format!("user-{n}"), "aud": "api"}),
            )
            .await;
        assert_eq!(signed.status, StatusCode::OK, "{}", signed.body);
        tokens.push(signed.body["token"].as_str().unwrap().to_owned());
    }
    for _ in 0..3 {
        let refused = app
            .post(
                "/v1/rings/m/sign",
                &issuer,
                json!({"claims": {"sub": "x", "aud": "api"}, "ttl_seconds": 100_000}),
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let anonymous = app
        .request(Method::POST, "/v1/rings/m/sign", None, Some(json!({})))
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    for token in &tokens[..2] {
        let verified = app
            .request(
                Method::POST,
                "/v1/verify",
                None,
                Some(json!({"token": token})),
            )
            .await;
        assert_eq!(verified.status, StatusCode::OK);
    }
    let after = scrape(&app).await;

    let sign_route = |status: &str| {
        format!("signet_http_requests_total{{method=\"POST\",route=\"/v1/rings/{{ring}}/sign\",status=\"{status}\"}}")
    };
    assert_eq!(moved(&before, &after, &sign_route("200")), 7.0);
    assert_eq!(moved(&before, &after, &sign_route("422")), 3.0);
    assert_eq!(moved(&before, &after, &sign_route("401")), 1.0);
    assert_eq!(
        moved(
            &before,
            &after,
            "signet_http_requests_total{method=\"POST\",route=\"/v1/verify\",status=\"200\"}"
        ),
        2.0
    );
    let ring_labels = "{algorithm=\"ES256\",backend=\"file\",ring=\"m\"}";
    assert_eq!(
        moved(
            &before,
            &after,
            &format!("signet_sign_seconds_count{ring_labels}")
        ),
        7.0
    );
    assert_eq!(
        moved(
            &before,
            &after,
            &format!("signet_verify_seconds_count{ring_labels}")
        ),
        2.0
    );
    // Other records (checkpoints, the refusals' tallies) may commit meanwhile: at least these.
    assert!(moved(&before, &after, "signet_audit_records_written_total") >= 7.0 + 3.0);
    assert!(
        moved(
            &before,
            &after,
            "signet_backend_call_seconds_count{backend=\"file\",operation=\"sign\"}"
        ) >= 7.0
    );
    assert_eq!(after["signet_audit_records_refused_total"], 0.0);
    assert_eq!(after["signet_keys{ring=\"m\",state=\"active\"}"], 1.0);
    assert!(after["signet_next_rotation_seconds{ring=\"m\"}"] > 0.0);
    assert_eq!(after["signet_build_info{version=\"0.1.0\"}"], 1.0);

    let rotated = app.rotate("m").await;
    assert!(rotated.status.is_success(), "{}", rotated.body);
    let rotation = scrape(&app).await;
    assert_eq!(
        moved(
            &after,
            &rotation,
            "signet_rotations_total{outcome=\"done\",ring=\"m\"}"
        ),
        1.0
    );
    assert_eq!(rotation["signet_keys{ring=\"m\",state=\"published\"}"], 1.0);
    // A rotation refused while one is under way is no rotation, done or failed.
    assert_eq!(app.rotate("m").await.status, StatusCode::CONFLICT);
    let refused = scrape(&app).await;
    assert_eq!(
        moved(
            &rotation,
            &refused,
            "signet_rotations_total{outcome=\"done\",ring=\"m\"}"
        ),
        0.0
    );
    assert!(!refused.contains_key("signet_rotations_total{outcome=\"failed\",ring=\"m\"}"));
}

store_tests!(metrics_count_exactly_the_traffic_sent);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_request_id_is_answered_and_a_malformed_one_replaced() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let http = crate::helpers::http_client();
    let ask = |id: &'static str| {
        http.get(format!("{}/v1/rings/nope", app.address))
            .bearer_auth(&app.admin_token)
            .header("x-request-id", id)
            .send()
    };
    let kept = ask("edge-7f3a:01.b_c").await.unwrap();
    assert_eq!(kept.headers()["x-request-id"], "edge-7f3a:01.b_c");
    let body: Value = kept.json().await.unwrap();
    assert_eq!(body["error"]["request_id"], "edge-7f3a:01.b_c");

    for malformed in ["two words", "x\"y", ""] {
        let replaced = ask(malformed).await.unwrap();
        let id = replaced.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(id.len(), 16, "{malformed:?} was replaced by {id:?}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        let body: Value = replaced.json().await.unwrap();
        assert_eq!(body["error"]["request_id"], id);
    }
}

/// `--log-format json`: one object per line; the access line of a request carries its id, route
/// template, status, client and ring, and no line carries the token or a claim's value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_access_log_names_the_request_and_never_its_token_or_claims() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(Db::Sqlite, dir.path()).await;
    let log_path = dir.path().join("signet.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let (mut server, base) = serve_process_logging(
        dir.path(),
        &db.url,
        &[("SIGNET_LOG", "info"), ("SIGNET_LOG_FORMAT", "json")],
        log.into(),
    )
    .await;
    let admin = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let http = crate::helpers::http_client();
    let created = http
        .post(format!("{base}/v1/rings"))
        .bearer_auth(admin.trim())
        .json(&json!({"name": "logged", "backend": "file", "policy": {"issuer": "https://i.test", "audiences": ["api"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let client: Value = http
        .post(format!("{base}/v1/clients"))
        .bearer_auth(admin.trim())
        .json(&json!({"name": "issuer-svc", "role": "issuer", "rings": ["logged"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let issuer_token = client["token"].as_str().unwrap();
    let signed = http
        .post(format!("{base}/v1/rings/logged/sign"))
        .bearer_auth(issuer_token)
        .header("x-request-id", "trace-me-1")
        .json(&json!({"claims": {"sub": "subject-secret-42", "aud": "api"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::OK);
    let token = signed.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    drop(http);
    // A clean stop writes every queued log line.
    assert!(terminate(&mut server).await.success());

    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let access = lines
        .iter()
        .find(|line| line["span"]["id"] == "trace-me-1" && line["target"] == "signet::access")
        .unwrap_or_else(|| panic!("no access line for the request in {log}"));
    let fields = &access["fields"];
    assert_eq!(fields["method"], "POST");
    assert_eq!(fields["route"], "/v1/rings/{ring}/sign");
    assert_eq!(fields["status"], 200);
    assert_eq!(fields["client"], "issuer-svc");
    assert_eq!(fields["ring"], "logged");
    assert!(fields["latency_ms"].as_f64().unwrap() > 0.0);
    for secret in [
        issuer_token,
        admin.trim(),
        token.as_str(),
        "subject-secret-42",
    ] {
        assert!(!log.contains(secret), "the log holds {secret}");
    }
}

/// SIGTERM with a shutdown delay: the server goes on serving (so a load balancer that polls
/// `/readyz` stops sending before the listener closes), `/readyz` answers 503 `shutting_down`
/// and every answer closes its connection; a second SIGTERM ends the delay and the server exits
/// with status 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_unready_as_soon_as_shutdown_begins() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(Db::Sqlite, dir.path()).await;
    let (mut server, base) = serve_process(
        dir.path(),
        &db.url,
        &[("SIGNET_SHUTDOWN_DELAY_SECONDS", "3600")],
    )
    .await;
    let http = crate::helpers::http_client();
    let readyz = || async {
        let answer = http.get(format!("{base}/readyz")).send().await.unwrap();
        let closes = answer
            .headers()
            .get("connection")
            .map(|v| v.to_str().unwrap().to_owned());
        (
            answer.status(),
            closes,
            answer.json::<Value>().await.unwrap(),
        )
    };
    assert_eq!(readyz().await.0, StatusCode::OK);
    sigterm(&server);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (closes, body) = loop {
        let (status, closes, body) = readyz().await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break (closes, body);
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            std::time::Instant::now() < deadline,
            "still ready 60 s after SIGTERM"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(closes.as_deref(), Some("close"));
    assert_eq!(body["status"], "unavailable");
    assert!(body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["code"] == "shutting_down"));
    // Still serving meanwhile.
    let healthz = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(healthz.status(), StatusCode::OK);
    drop(http);
    assert!(terminate(&mut server).await.success());
}
