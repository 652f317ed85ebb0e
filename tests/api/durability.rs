//! No signature leaves without its audit record: under load while Postgres goes down and comes
//! back, when the server is killed with SIGKILL mid-load, and when SIGTERM stops it mid-load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;

use crate::helpers::{decode_parts, eventually, serve_process, terminate, Db, TestApp, TestDb};
use crate::private_postgres::PrivatePostgres;
use crate::store_tests;

const CLIENTS: usize = 64;

/// One sign request as a client saw it.
struct Outcome {
    started: Instant,
    finished: Instant,
    status: Option<StatusCode>,
    jti: Option<String>,
    /// Unique to the request: the audit record of its signature, if any, names it.
    sub: String,
}

/// `CLIENTS` clients signing in a loop against `base` until `stop`; every outcome is kept.
fn sign_in_a_loop(
    base: &str,
    issuer: &str,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<Outcome>>> {
    let http = crate::helpers::http_client();
    let url = format!("{base}/v1/rings/r/sign");
    (0..CLIENTS)
        .map(|client| {
            let (http, url, issuer, stop) =
                (http.clone(), url.clone(), issuer.to_owned(), stop.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let sub = format!("load-{client}-{}", outcomes.len());
                    let started = Instant::now();
                    let response = http
                        .post(&url)
                        .bearer_auth(&issuer)
                        .json(&json!({"claims": {"aud": "api", "sub": sub}}))
                        .timeout(Duration::from_secs(30))
                        .send()
                        .await;
                    let (status, jti) = if let Ok(response) = response {
                        let status = response.status();
                        let body: Value = response.json().await.unwrap_or(Value::Null);
                        let jti = body["token"]
                            .as_str()
                            .map(|token| decode_parts(token).1["jti"].as_str().unwrap().to_owned());
                        (Some(status), jti)
                    } else {
                        // The server is gone (killed): nothing more to ask.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        (None, None)
                    };
                    outcomes.push(Outcome {
                        started,
                        finished: Instant::now(),
                        status,
                        jti,
                        sub,
                    });
                }
                outcomes
            })
        })
        .collect()
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<Vec<Outcome>>>) -> Vec<Outcome> {
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

/// What the signature records in the store at `url` hold.
struct Audited {
    jtis: std::collections::HashSet<String>,
    subs: std::collections::HashSet<String>,
    /// The chain's verdict.
    report: Value,
}

async fn audited(url: &str) -> Audited {
    let store = signet::store::Store::connect(&secrecy::SecretString::from(url.to_owned()))
        .await
        .unwrap();
    let details: Vec<String> =
        sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'sign'")
            .fetch_all(&sqlx::AnyPool::connect(url).await.unwrap())
            .await
            .unwrap();
    let details: Vec<Value> = details
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let fact = |name: &str| {
        details
            .iter()
            .filter_map(|d| d[name].as_str().map(str::to_owned))
            .collect()
    };
    let report = signet::audit::verify::verify_chain(&store, None, None)
        .await
        .unwrap();
    store.close().await;
    Audited {
        jtis: fact("jti"),
        subs: fact("sub"),
        report: serde_json::to_value(report).unwrap(),
    }
}

/// Postgres crashes while 64 clients sign and stays down for at least 6 s (longer than the pool's 5 s
/// wait for a connection). Requests made and answered while it is down get 503; every token handed out
/// has its record; the chain has no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_under_load_gives_503_and_loses_no_record() {
    let postgres = PrivatePostgres::start();
    let data_dir = Arc::new(tempfile::tempdir().unwrap());
    let app = TestApp::start(data_dir, Arc::new(TestDb::existing(postgres.url()))).await;
    app.create_ring("r", json!({})).await;
    let (_, issuer) = app.create_client("svc", "issuer", &["r"]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let tasks = sign_in_a_loop(&app.address, &issuer, stop.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    postgres.crash();
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Beside the load, a request of the test's own while Postgres is down: refused, not hung.
    let refused = app.sign(&issuer, "r", json!({"aud": "api"})).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.body
    );
    let up = Instant::now();
    postgres.pg_ctl(&["start", "-w"]);
    eventually(60, "signing to resume after the outage", || async {
        app.sign(&issuer, "r", json!({"aud": "api"})).await.status == StatusCode::OK
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let outcomes = collect(tasks).await;

    // Requests made and answered while Postgres was down are all 503: none of them could have
    // its record committed. (On a busy machine there may be none: each waits for the pool.)
    let during = outcomes
        .iter()
        .filter(|o| o.started > down && o.finished < up);
    for outcome in during {
        assert_eq!(outcome.status, Some(StatusCode::SERVICE_UNAVAILABLE));
        assert!(outcome.jti.is_none());
    }
    for outcome in &outcomes {
        let status = outcome.status.expect("the server stays up");
        assert!(
            status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status}"
        );
    }
    let received: Vec<&String> = outcomes.iter().filter_map(|o| o.jti.as_ref()).collect();
    let Audited {
        jtis: audited,
        report,
        ..
    } = audited(&postgres.url()).await;
    for jti in &received {
        assert!(
            audited.contains(*jti),
            "token {jti} was returned without its record"
        );
    }
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["from_seq"], 1, "{report}");
    assert!(report["records"].as_u64().unwrap() >= u64::try_from(received.len()).unwrap());
    app.stop().await;
}

/// The database ends the audit writer's connection while it sits idle (a restart, a failover, a
/// proxy's idle timeout): the next signature's batch goes on a new connection, and no request
/// fails for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_connection_the_database_ended_fails_no_request() {
    let app = TestApp::spawn(Db::Postgres).await;
    app.create_ring("r", json!({})).await;
    let (_, issuer) = app.create_client("svc", "issuer", &["r"]).await;
    let first = app.sign(&issuer, "r", json!({"aud": "api"})).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let mut admin = sqlx::AnyConnection::connect(&app.db.url).await.unwrap();
    let ended: Vec<bool> = sqlx::query_scalar(
        // Each call returns once its session has ended (or 10 s have passed: false).
        "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!ended.is_empty(), "the server has no session to end");
    assert!(ended.iter().all(|&e| e), "a session did not end: {ended:?}");
    let second = app.sign(&issuer, "r", json!({"aud": "api"})).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    let audited = app
        .store
        .audit_actions()
        .await
        .unwrap()
        .into_iter()
        .filter(|(action, _, _)| action == "sign")
        .count();
    assert_eq!(audited, 2);
    app.stop().await;
}

/// On the `signet serve` process at `base` with its data directory at `dir`: the ring "r" and
/// an issuer for it, whose token this returns.
async fn ring_and_issuer(dir: &std::path::Path, base: &str) -> String {
    let admin = std::fs::read_to_string(dir.join("admin-token")).unwrap();
    let http = crate::helpers::http_client();
    let post = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(admin.trim())
            .json(&body)
            .send()
    };
    let created = post(
        "/v1/rings",
        json!({"name": "r", "policy": {"issuer": "https://issuer.test", "audiences": ["api"]}}),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let client: Value = post(
        "/v1/clients",
        json!({"name": "svc", "role": "issuer", "rings": ["r"]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    client["token"].as_str().unwrap().to_owned()
}

/// How a test ends a server under load.
enum Ending {
    Sigkill,
    Sigterm,
}

/// A `signet serve` process on a fresh store, 64 clients signing against it for 1.5 s, then
/// `ending`: every outcome, the store (with its directory), and the exit status.
async fn signing_until(
    db: Db,
    ending: Ending,
) -> (
    Vec<Outcome>,
    TestDb,
    tempfile::TempDir,
    std::process::ExitStatus,
) {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(db, dir.path()).await;
    let (mut server, base) = serve_process(dir.path(), &db.url, &[]).await;
    let issuer = ring_and_issuer(dir.path(), &base).await;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = sign_in_a_loop(&base, &issuer, stop.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = match ending {
        Ending::Sigkill => {
            server.kill().unwrap();
            server.wait().unwrap()
        }
        Ending::Sigterm => terminate(&mut server).await,
    };
    stop.store(true, Ordering::Relaxed);
    (collect(tasks).await, db, dir, status)
}

/// The server process is killed with SIGKILL while 64 clients sign: every token a client got
/// before the kill has its record, and the chain verifies.
async fn a_kill_9_mid_load_loses_no_record_of_a_returned_signature(db: Db) {
    let (outcomes, db, _dir, _) = signing_until(db, Ending::Sigkill).await;
    let received: Vec<&String> = outcomes.iter().filter_map(|o| o.jti.as_ref()).collect();
    assert!(
        received.len() > CLIENTS,
        "too little load to mean anything: {}",
        received.len()
    );
    let Audited {
        jtis: audited,
        report,
        ..
    } = audited(&db.url).await;
    for jti in &received {
        assert!(
            audited.contains(*jti),
            "token {jti} was returned without its record"
        );
    }
    assert_eq!(report["ok"], true, "{report}");
}

/// SIGTERM while 64 clients sign: every request is answered in full, or signed nothing (it found
/// the listener closed, or its connection was still in the listener's backlog when the server
/// exited), every token returned has its record, the chain verifies, and the server exits with
/// status 0.
async fn sigterm_mid_load_finishes_every_request_it_took(db: Db) {
    let (outcomes, db, _dir, status) = signing_until(db, Ending::Sigterm).await;
    assert_eq!(status.code(), Some(0), "{status}");

    let received: Vec<&String> = outcomes.iter().filter_map(|o| o.jti.as_ref()).collect();
    assert!(
        received.len() > CLIENTS,
        "too little load to mean anything: {}",
        received.len()
    );
    let audited = audited(&db.url).await;
    for outcome in &outcomes {
        match outcome.status {
            Some(StatusCode::OK) => {
                let jti = outcome.jti.as_ref().expect("an answer was cut off");
                assert!(
                    audited.jtis.contains(jti),
                    "token {jti} was returned without its record"
                );
            }
            Some(status) => panic!("a request was answered {status}"),
            // Refused, or its connection closed before the server read it (the listener's
            // backlog at exit): either way it signed nothing, so nothing was cut off.
            None => assert!(
                !audited.subs.contains(&outcome.sub),
                "request {} was signed but its answer never arrived",
                outcome.sub
            ),
        }
    }
    assert_eq!(audited.report["ok"], true, "{}", audited.report);
}

store_tests!(
    a_kill_9_mid_load_loses_no_record_of_a_returned_signature,
    sigterm_mid_load_finishes_every_request_it_took
);

/// A record the store refuses (here a trigger refuses one client's records, as a constraint
/// would refuse bad data) fails that client's requests only: the other clients' signatures, which
/// share batches with it, all succeed and the chain verifies. The refused requests answer 500
/// (the store is up; retrying will not help), never with a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refused_audit_record_fails_only_its_own_request() {
    let app = TestApp::spawn(Db::Postgres).await;
    app.create_ring("r", json!({})).await;
    let (_, good) = app.create_client("svc", "issuer", &["r"]).await;
    let (_, poison) = app.create_client("poison", "issuer", &["r"]).await;
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&app.db.url)
        .await
        .unwrap();
    for statement in [
        "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN \
           IF NEW.principal = 'client:poison' THEN RAISE EXCEPTION 'refused by the test'; END IF; \
           RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON audit_log \
           FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
    ] {
        sqlx::Executor::execute(&mut admin, statement)
            .await
            .unwrap();
    }

    let app = Arc::new(app);
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let app = app.clone();
            let token = if i % 4 == 0 {
                poison.clone()
            } else {
                good.clone()
            };
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..20 {
                    let signed = app.sign(&token, "r", json!({"aud": "api"})).await;
                    assert_eq!(
                        signed.body.get("token").is_some(),
                        signed.status == StatusCode::OK
                    );
                    statuses.push(signed.status);
                }
                (i % 4 == 0, statuses)
            })
        })
        .collect();
    let (mut refused, mut signed) = (0, 0);
    for task in tasks {
        let (is_poison, statuses) = task.await.unwrap();
        for status in statuses {
            if is_poison {
                assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
                refused += 1;
            } else {
                assert_eq!(status, StatusCode::OK, "a good client's signature failed");
                signed += 1;
            }
        }
    }
    assert_eq!((refused, signed), (120, 360));
    let report = app.get("/v1/audit/verify", Some(&app.admin_token)).await;
    assert_eq!(report.body["ok"], true, "{}", report.body);
}

/// Anonymous requests whose path segment decodes to a NUL byte (which Postgres refuses in text)
/// fail no one else's signature, and every one of them is counted in the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_denied_path_fails_no_other_request() {
    let app = Arc::new(TestApp::spawn(Db::Postgres).await);
    app.create_ring("r", json!({})).await;
    let (_, issuer) = app.create_client("svc", "issuer", &["r"]).await;
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let (app, issuer) = (app.clone(), issuer.clone());
            tokio::spawn(async move {
                let attacker = i % 3 == 0;
                for n in 0..20 {
                    if attacker {
                        let path = if n % 2 == 0 {
                            "/v1/rings/%00/sign"
                        } else {
                            "/v1/keys/%00/revoke"
                        };
                        let denied = app.request(Method::POST, path, None, Some(json!({}))).await;
                        assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
                    } else {
                        let signed = app.sign(&issuer, "r", json!({"aud": "api"})).await;
                        assert_eq!(signed.status, StatusCode::OK, "{}", signed.body);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("no request failed");
    }
    // Denials without authentication are counted, and written when the server stops.
    let app = Arc::into_inner(app).expect("no request holds the app");
    let url = app.db.url.clone();
    let _kept = app.stop().await;
    let store = sqlx::AnyPool::connect(&url).await.unwrap();
    let counts: Vec<String> =
        sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'requests_denied'")
            .fetch_all(&store)
            .await
            .unwrap();
    let denied: u64 = counts
        .iter()
        .map(|d| {
            serde_json::from_str::<serde_json::Value>(d).unwrap()["count"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(denied, 8 * 20, "every denial is accounted for");
}
