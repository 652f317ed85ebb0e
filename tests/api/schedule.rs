//! Scheduled rotation: the schedule API, rings rotating by themselves under a verifier that
//! caches the JWKS as `max-age` allows, replicas rotating exactly once, and a backend outage.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{decode_parts, eventually, serve_process, Backend, Db, TestApp};
use crate::store_tests;

/// Rotations every 10 s: keys published 3 s ahead, JWKS cached for 1 s, tokens of at most 2 s.
fn fast_schedule() -> Value {
    json!({"every_seconds": 10, "publish_lead_seconds": 3, "jwks_max_age_seconds": 1,
           "leeway_seconds": 0, "max_token_ttl_seconds": 2})
}

/// What creates a ring with the timing and token lifetime of `schedule` from the start (a ring
/// that lowered its max-age later would hold its next key back until caches of the old one
/// have expired).
fn ring_for(schedule: &Value) -> Value {
    let timing: serde_json::Map<String, Value> = schedule
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| name.ends_with("_seconds") && *name != "every_seconds")
        .filter(|(name, _)| *name != "max_token_ttl_seconds")
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    json!({"policy": {"max_ttl_seconds": schedule["max_token_ttl_seconds"]}, "timing": timing})
}

/// Ring "r"'s schedule, as an admin sees it.
async fn schedule_of(app: &TestApp) -> Value {
    let response = app
        .get("/v1/rings/r/schedule", Some(&app.admin_token))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.body
}

async fn the_schedule_api_shows_sets_validates_and_pauses(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_ring("r", json!({})).await;
    let shown = app
        .get("/v1/rings/r/schedule", Some(&app.admin_token))
        .await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert_eq!(shown.body["monthly"], json!({"day": 1, "at": "00:00"}));
    assert_eq!(shown.body["paused"], false);
    let next = shown.body["plan"]["next_activation_at"].as_str().unwrap();
    assert!(next.ends_with("-01T00:00:00Z"), "{next}");
    let publish = chrono::DateTime::parse_from_rfc3339(
        shown.body["plan"]["next_publish_at"].as_str().unwrap(),
    )
    .unwrap();
    let activate = chrono::DateTime::parse_from_rfc3339(next).unwrap();
    assert_eq!(
        (activate - publish).num_seconds(),
        600,
        "published the default lead ahead"
    );

    let set = app
        .put_schedule(
        "r",
        json!({"every_seconds": 3600, "publish_lead_seconds": 900, "jwks_max_age_seconds": 600}),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(set.body["every_seconds"], 3600);
    assert!(set.body.get("monthly").is_none());
    assert_eq!(set.body["publish_lead_seconds"], 900);
    let ring = app.get("/v1/rings/r", Some(&app.admin_token)).await.body;
    assert_eq!(
        ring["timing"]["jwks_max_age_seconds"], 600,
        "the ring's JWKS max-age follows"
    );

    for (body, needle) in [
        (
            json!({"every_seconds": 600, "publish_lead_seconds": 900}),
            "every_seconds (600) must exceed publish_lead_seconds (900)",
        ),
        (
            json!({"every_seconds": 3600, "publish_lead_seconds": 100, "jwks_max_age_seconds": 300}),
            "must be at least jwks_max_age_seconds + leeway_seconds",
        ),
        (json!({"every_seconds": 5}), "at least 10"),
        (
            json!({"monthly": {"day": 32, "at": "00:00"}}),
            "monthly.day",
        ),
        (json!({"monthly": {"day": 1, "at": "25:00"}}), "HH:MM"),
        (
            json!({"monthly": {"day": 1, "at": "00:00"}, "every_seconds": 60}),
            "one rule, not both",
        ),
        (json!({}), "give a rule or a timing setting"),
        // Without a rule, the timing is checked against the ring's rule (every 3600 s).
        (
            json!({"publish_lead_seconds": 3600}),
            "every_seconds (3600) must exceed publish_lead_seconds (3600)",
        ),
    ] {
        let refused = app.put_schedule("r", body.clone()).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            refused.body
        );
        let message = refused.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message}");
    }
    let unknown_field = app
        .put_schedule("r", json!({"every_seconds": 60, "hourly": true}))
        .await;
    assert_eq!(unknown_field.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.put_schedule("nope", json!({"every_seconds": 60}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Nothing was changed by the refusals.
    let shown = app
        .get("/v1/rings/r/schedule", Some(&app.admin_token))
        .await;
    assert_eq!(shown.body["every_seconds"], 3600);
    assert_eq!(shown.body["publish_lead_seconds"], 900);

    // Timing alone: the rule stays.
    let timing = app
        .put_schedule(
            "r",
            json!({"publish_lead_seconds": 1200, "leeway_seconds": 30}),
        )
        .await;
    assert_eq!(timing.status, StatusCode::OK, "{}", timing.body);
    assert_eq!(timing.body["every_seconds"], 3600);
    assert_eq!(timing.body["publish_lead_seconds"], 1200);
    assert_eq!(timing.body["leeway_seconds"], 30);

    let paused = app
        .post("/v1/rings/r/schedule/pause", &app.admin_token, json!({}))
        .await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.body);
    assert_eq!(paused.body["paused"], true);
    assert!(paused.body["plan"]["next_activation_at"].is_null());
    let resumed = app
        .post("/v1/rings/r/schedule/resume", &app.admin_token, json!({}))
        .await;
    assert_eq!(resumed.body["paused"], false);
    assert!(resumed.body["plan"]["next_activation_at"].is_string());

    // Admins change schedules; auditors may look; issuers may not.
    let (_, issuer) = app.create_client("svc", "issuer", &["r"]).await;
    let (_, auditor) = app.create_client("audit", "auditor", &[]).await;
    assert_eq!(
        app.get("/v1/rings/r/schedule", Some(&issuer)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get("/v1/rings/r/schedule", Some(&auditor)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/v1/rings/r/schedule", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let by_auditor = app
        .request(
            Method::PUT,
            "/v1/rings/r/schedule",
            Some(&auditor),
            Some(json!({"every_seconds": 60})),
        )
        .await;
    assert_eq!(by_auditor.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.post("/v1/rings/r/schedule/pause", &issuer, json!({}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    let actions: Vec<(String, String, Option<String>)> = app.store.audit_actions().await.unwrap();
    let schedule_actions: Vec<&str> = actions
        .iter()
        .filter(|(a, _, _)| a.starts_with("schedule_"))
        .map(|(a, _, _)| a.as_str())
        .collect();
    assert_eq!(
        schedule_actions,
        [
            "schedule_changed",
            "schedule_changed",
            "schedule_paused",
            "schedule_resumed"
        ]
    );
}

/// A ring rotates by itself every 10 s while a client signs continuously (through three
/// rotations) and a verifier caches the JWKS for as long as `max-age` allows: no token ever names
/// a key the cached JWKS lacks, and every fresh JWKS holds every key with an unexpired token.
async fn a_ring_rotates_by_itself_without_a_verification_failure(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_ring("r", ring_for(&fast_schedule())).await;
    let (_, issuer) = app.create_client("svc", "issuer", &["r"]).await;
    assert_eq!(
        app.put_schedule("r", fast_schedule()).await.status,
        StatusCode::OK
    );

    let (mut cached, mut max_age) = app.jwks_and_max_age("r").await;
    let mut fetched_at = Instant::now();
    let mut unexpired: Vec<(String, i64)> = Vec::new();
    let mut kids_seen = Vec::<String>::new();
    // Until three rotations have signed (about 40 s; the deadline only stops a hang).
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut signed = 0;
    while kids_seen.len() < 4 {
        assert!(
            Instant::now() < deadline,
            "fewer than three rotations in 150 s: saw {kids_seen:?} over {signed} tokens"
        );
        if fetched_at.elapsed() >= max_age {
            (cached, max_age) = app.jwks_and_max_age("r").await;
            fetched_at = Instant::now();
            let now = chrono::Utc::now().timestamp();
            unexpired.retain(|(_, exp)| *exp >= now);
            for (kid, _) in &unexpired {
                assert!(
                    cached.contains(kid),
                    "a key with unexpired tokens left the JWKS: {kid}"
                );
            }
        }
        let response = app.sign(&issuer, "r", json!({"aud": "api"})).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        let token = response.body["token"].as_str().unwrap();
        let (header, claims) = decode_parts(token);
        let kid = header["kid"].as_str().unwrap().to_owned();
        assert!(
            cached.contains(&kid),
            "token signed by {kid}, which the verifier's cached JWKS ({cached:?}, fetched {:?} ago) lacks",
            fetched_at.elapsed()
        );
        if kids_seen.last() != Some(&kid) {
            kids_seen.push(kid.clone());
        }
        unexpired.push((kid, claims["exp"].as_i64().unwrap()));
        signed += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        kids_seen.iter().collect::<HashSet<_>>().len(),
        kids_seen.len(),
        "never back to an old key"
    );
    let schedule = schedule_of(&app).await;
    assert!(schedule["last_rotation_at"].is_string());
    assert_eq!(schedule["failures"], 0);
    let actions: Vec<(String, String, Option<String>)> = app.store.audit_actions().await.unwrap();
    let scheduled = actions
        .iter()
        .filter(|(a, who, _)| a == "rotation_scheduled" && who == "scheduler")
        .count();
    assert!(
        scheduled >= 3 && scheduled <= kids_seen.len(),
        "{scheduled} scheduled rotations"
    );
}

/// Three replicas share Postgres and rotate a ring every 10 s: each rotation happens once, every
/// replica publishes the keys in the same order and never serves a key again once it has
/// dropped it, and all replicas settle on the same JWKS. (How soon they agree after a change
/// depends on the machine's load, so it is not asserted: the publish lead covers one refresh.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_rotate_each_ring_exactly_once() {
    let first = TestApp::spawn(Db::Postgres).await;
    let second = TestApp::start(first.data_dir.clone(), first.db.clone()).await;
    let third = TestApp::start(first.data_dir.clone(), first.db.clone()).await;
    let mut schedule = fast_schedule();
    schedule["jwks_max_age_seconds"] = json!(2);
    first.create_ring("r", ring_for(&schedule)).await;
    assert_eq!(
        first.put_schedule("r", schedule).await.status,
        StatusCode::OK
    );
    let replicas = Arc::new([first, second, third]);
    for replica in replicas.iter() {
        eventually(30, "every replica to know the ring", || async {
            replica.get("/v1/rings/r/jwks.json", None).await.status == StatusCode::OK
        })
        .await;
    }

    let started = Instant::now();
    // Per replica: the kids in the order it first served them, and those it has dropped.
    let mut order: [Vec<String>; 3] = Default::default();
    let mut dropped: [HashSet<String>; 3] = Default::default();
    // Until three rotations have been published (about 35 s; the deadline only stops a hang).
    let mut published_kids = HashSet::new();
    while published_kids.len() < 4 {
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "fewer than three rotations in 150 s: {published_kids:?}"
        );
        for (i, replica) in replicas.iter().enumerate() {
            let served = replica.jwks_and_max_age("r").await.0;
            for kid in &served {
                assert!(
                    !dropped[i].contains(kid),
                    "replica {i} served {kid} again after dropping it"
                );
                if !order[i].contains(kid) {
                    order[i].push(kid.clone());
                }
            }
            let gone: Vec<String> = order[i]
                .iter()
                .filter(|k| !served.contains(*k))
                .cloned()
                .collect();
            dropped[i].extend(gone);
            published_kids.extend(served);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A replica that has seen fewer keys so far has seen the first of them in the same order.
    for i in 1..3 {
        let common = order[0].len().min(order[i].len());
        assert_eq!(
            order[0][..common],
            order[i][..common],
            "replicas 0 and {i} published keys in different orders"
        );
    }
    // Stop the rotations, so that the keys and the audit log are read from one settled state.
    let paused = replicas[0]
        .post(
            "/v1/rings/r/schedule/pause",
            &replicas[0].admin_token,
            json!({}),
        )
        .await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.body);
    // A replica may have claimed a rotation just before the pause: wait until none is under way,
    // and take the keys read between two reads of the audit log that agree on the rotations.
    let count = |actions: &[(String, String, Option<String>)], action: &str| {
        actions.iter().filter(|(a, _, _)| a == action).count()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (keys, actions) = loop {
        let before = replicas[0].store.audit_actions().await.unwrap();
        let keys = replicas[0].keys("r").await;
        let actions = replicas[0].store.audit_actions().await.unwrap();
        if keys.iter().all(|k| k["state"] != "pending")
            && ["rotation_scheduled", "key_published"]
                .iter()
                .all(|action| count(&before, action) == count(&actions, action))
        {
            break (keys, actions);
        }
        assert!(
            Instant::now() < deadline,
            "rotations still under way 60 s after the pause"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let scheduled = count(&actions, "rotation_scheduled");
    let kids: HashSet<&str> = keys.iter().map(|k| k["kid"].as_str().unwrap()).collect();
    let of_ring = |action: &str| {
        actions
            .iter()
            .filter(|(a, _, kid)| a == action && kid.as_deref().is_some_and(|k| kids.contains(k)))
            .count()
    };
    let (published, activated) = (of_ring("key_published"), of_ring("key_activated"));
    assert!(scheduled >= 3, "{scheduled} rotations");
    assert_eq!(keys.len(), 1 + scheduled, "one key per rotation: {keys:?}");
    assert_eq!(published, keys.len(), "each key published once");
    assert!(
        activated == keys.len() || activated + 1 == keys.len(),
        "each key activated once"
    );
    let per_key: HashMap<&str, usize> = keys.iter().fold(HashMap::new(), |mut m, k| {
        *m.entry(k["state"].as_str().unwrap()).or_default() += 1;
        m
    });
    assert_eq!(per_key.get("active"), Some(&1), "{per_key:?}");
    eventually(60, "the replicas to serve the same JWKS", || async {
        let mut sets = Vec::new();
        for replica in replicas.iter() {
            sets.push(replica.jwks_and_max_age("r").await.0);
        }
        sets.iter().all(|s| *s == sets[0])
    })
    .await;
}

/// The file backend's key directory stops being writable while a rotation is due: signing goes
/// on with the current key, the scheduler backs off and reports the failure, and the rotation
/// completes once the backend is back.
async fn a_backend_outage_delays_the_rotation_but_not_signing(db: Db) {
    let app = TestApp::spawn(db).await;
    let ring = app.create_ring("r", ring_for(&fast_schedule())).await;
    let old = ring["active_kid"].as_str().unwrap().to_owned();
    let (_, issuer) = app.create_client("svc", "issuer", &["r"]).await;
    // Break the backend: its keys directory becomes a file (root ignores read-only modes).
    let keys_dir = app.data_dir.path().join("file-backend/keys");
    let aside = app.data_dir.path().join("file-backend/keys.aside");
    std::fs::rename(&keys_dir, &aside).unwrap();
    std::fs::write(&keys_dir, b"not a directory").unwrap();
    assert_eq!(
        app.put_schedule("r", fast_schedule()).await.status,
        StatusCode::OK
    );

    eventually(30, "a failed scheduled rotation to be reported", || async {
        let schedule = schedule_of(&app).await;
        schedule["failures"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    let schedule = schedule_of(&app).await;
    assert!(
        schedule["last_error"]
            .as_str()
            .unwrap()
            .contains("file backend"),
        "{schedule}"
    );
    assert!(schedule["retry_at"].is_string());
    let signed = app.sign(&issuer, "r", json!({"aud": "api"})).await;
    assert_eq!(signed.status, StatusCode::OK, "{}", signed.body);
    assert_eq!(signed.body["kid"], old.as_str(), "still the current key");
    assert_eq!(app.keys("r").await.len(), 1, "no half-made key");

    std::fs::remove_file(&keys_dir).unwrap();
    std::fs::rename(&aside, &keys_dir).unwrap();
    eventually(
        30,
        "the rotation to complete once the backend is back",
        || async {
            app.keys("r").await.iter().any(|k| {
                k["state"] == "published" || (k["state"] == "active" && k["kid"] != old.as_str())
            })
        },
    )
    .await;
    eventually(30, "the schedule to record the success", || async {
        schedule_of(&app).await["failures"] == 0
    })
    .await;
    let schedule = schedule_of(&app).await;
    assert!(
        schedule["last_error"].is_string(),
        "the last failure stays visible"
    );
}

/// A schedule row that a writer of the database made unreadable (a day 40) stops that ring's
/// rotations and makes `/readyz` name the failing lifecycle tick; the tick goes on for every
/// other ring, and setting the schedule again heals it.
/// A schedule row written around signet is read when the ring's rotation comes due (or when
/// the ring changes): from then on the tick reports it until the schedule is set again.
async fn an_unreadable_stored_schedule_is_reported_and_the_tick_goes_on(db: Db) {
    let app = TestApp::spawn(db).await;
    let fast = fast_schedule();
    app.create_ring("r", ring_for(&fast)).await;
    assert_eq!(app.put_schedule("r", fast).await.status, StatusCode::OK);
    app.create_ring(
        "other",
        json!({"timing": {"jwks_max_age_seconds": 1, "leeway_seconds": 0, "publish_lead_seconds": 2}}),
    )
    .await;
    assert_eq!(app.get("/readyz", None).await.status, StatusCode::OK);

    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    sqlx::query(
        r#"UPDATE schedules SET rule = '{"monthly":{"day":40,"at":"00:00"}}' WHERE ring = 'r'"#,
    )
    .execute(&pool)
    .await
    .unwrap();
    eventually(60, "readiness to name the failing tick", || async {
        let ready = app.get("/readyz", None).await;
        ready.status == StatusCode::SERVICE_UNAVAILABLE
            && ready.body["errors"].as_array().unwrap().iter().any(|e| {
                e["code"] == "task_failing"
                    && e["message"].as_str().unwrap().contains("lifecycle tick")
            })
    })
    .await;
    // The tick still activates another ring's key.
    let new = app.rotate("other").await.body["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually(30, "the other ring's new key to activate", || async {
        app.keys("other")
            .await
            .iter()
            .any(|k| k["kid"] == new.as_str() && k["state"] == "active")
    })
    .await;

    let monthly = json!({"monthly": {"day": 1, "at": "00:00"}});
    assert_eq!(app.put_schedule("r", monthly).await.status, StatusCode::OK);
    eventually(30, "readiness to recover", || async {
        app.get("/readyz", None).await.status == StatusCode::OK
    })
    .await;
}

store_tests!(
    the_schedule_api_shows_sets_validates_and_pauses,
    a_ring_rotates_by_itself_without_a_verification_failure,
    a_backend_outage_delays_the_rotation_but_not_signing,
    an_unreadable_stored_schedule_is_reported_and_the_tick_goes_on,
);

/// One replica runs as a separate `signet serve` process and is killed with SIGKILL at random
/// points, 24 times, while rotations (scheduled every 10 s, and immediate ones an admin asks it
/// for just before the kill) are under way. A second replica keeps running. Afterwards: never two
/// active keys, every pending key reconciled, every backend key recorded and every record's key
/// present, and signing works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_killed_mid_rotation_leave_a_consistent_state() {
    let survivor = TestApp::spawn(Db::Postgres).await;
    let fast = json!({"every_seconds": 10, "publish_lead_seconds": 2, "jwks_max_age_seconds": 1,
                      "leeway_seconds": 0, "max_token_ttl_seconds": 1, "retain_retired_seconds": 1});
    survivor.create_ring("r", ring_for(&fast)).await;
    assert_eq!(
        survivor.put_schedule("r", fast).await.status,
        StatusCode::OK
    );
    let pool = sqlx::AnyPool::connect(&survivor.db.url).await.unwrap();
    let active_keys = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM keys WHERE ring = 'r' AND state = 'active'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let http = crate::helpers::http_client();
    let mut seed = u64::from(std::process::id()) | 1;
    let mut random = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    for trial in 0..24 {
        let (mut child, address) =
            serve_process(survivor.data_dir.path(), &survivor.db.url, &[]).await;
        tokio::time::sleep(Duration::from_millis(random(1500))).await;
        if trial % 2 == 0 {
            // Ask the doomed replica for an immediate rotation, and kill it while it works on it.
            let request = http
                .post(format!("{address}/v1/rings/r/rotate"))
                .bearer_auth(&survivor.admin_token)
                .json(&json!({"immediate": true}))
                .send();
            let _ = tokio::time::timeout(Duration::from_millis(random(40)), request).await;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert!(active_keys().await <= 1, "trial {trial}: two active keys");
    }

    // Converge: abandoned intents are reconciled after their grace period, then, with the
    // schedule paused, every old key retires and is destroyed.
    eventually(90, "every pending key to be reconciled", || async {
        !survivor
            .keys("r")
            .await
            .iter()
            .any(|k| k["state"] == "pending")
    })
    .await;
    let paused = survivor
        .post(
            "/v1/rings/r/schedule/pause",
            &survivor.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(paused.status, StatusCode::OK);
    eventually(30, "every old key to be destroyed", || async {
        survivor
            .keys("r")
            .await
            .iter()
            .all(|k| k["state"] == "active" || k["state"] == "destroyed")
    })
    .await;
    assert_eq!(active_keys().await, 1);
    let keys = survivor.keys("r").await;
    let active = keys.iter().find(|k| k["state"] == "active").unwrap();
    let file = survivor.open_backend(Backend::File).await;
    let held: HashSet<String> = file
        .inventory()
        .await
        .unwrap()
        .into_iter()
        .map(|id| id.0)
        .collect();
    // Every live record's key on the file backend is in it, and it holds no other (the audit
    // ring's key is there too unless a PKCS#11 token is configured).
    let live: HashSet<String> = sqlx::query_scalar::<_, String>(
        "SELECT id FROM keys WHERE state <> 'destroyed' AND backend = 'file'",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert!(live.contains(active["id"].as_str().unwrap()));
    assert_eq!(held, live, "the backend holds exactly the live keys");
    let (_, issuer) = survivor.create_client("svc", "issuer", &["r"]).await;
    let signed = survivor.sign(&issuer, "r", json!({"aud": "api"})).await;
    assert_eq!(signed.status, StatusCode::OK, "{}", signed.body);
    assert_eq!(signed.body["kid"], active["kid"]);
}
