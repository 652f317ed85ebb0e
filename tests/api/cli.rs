//! The `signet` binary's commands, run as real processes: the API commands against a real
//! server on a real socket, the store commands on the store itself.

use std::path::Path;
use std::process::Output;

use serde_json::{json, Value};

use crate::helpers::{serve_process, signet_process};

/// A running `signet serve` on SQLite, its data directory at `DIR/signet-data` (where the CLI
/// finds the admin token when run from DIR).
struct Server {
    dir: tempfile::TempDir,
    child: std::process::Child,
    addr: String,
    admin: String,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("signet-data");
        let url = format!("sqlite://{}/signet.db?mode=rwc", data_dir.display());
        let (child, addr) = serve_process(&data_dir, &url, &[]).await;
        let admin = std::fs::read_to_string(data_dir.join("admin-token"))
            .unwrap()
            .trim()
            .to_owned();
        Server {
            dir,
            child,
            addr,
            admin,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `signet ARGS` in `cwd` with only `env` of the CLI's own settings.
fn run_in(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = signet_process(args, env);
    for name in [
        "SIGNET_ADDR",
        "SIGNET_TOKEN",
        "SIGNET_DATA_DIR",
        "SIGNET_CONFIG",
    ] {
        if !env.iter().any(|(set, _)| *set == name) {
            command.env_remove(name);
        }
    }
    command.current_dir(cwd).output().expect("signet runs")
}

/// The JSON a command that must succeed printed.
fn ok(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the command prints JSON")
}

/// The stderr of a command that must fail; it printed nothing on stdout.
fn refused(output: &Output) -> String {
    assert!(!output.status.success(), "succeeded: {output:?}");
    assert!(output.stdout.is_empty(), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_command_works_against_a_running_server_and_is_audited() {
    let server = Server::start().await;
    // Run from elsewhere: a directory with no store, the token in SIGNET_TOKEN.
    let elsewhere = tempfile::tempdir().unwrap();
    let admin_env = [
        ("SIGNET_ADDR", server.addr.as_str()),
        ("SIGNET_TOKEN", server.admin.as_str()),
    ];
    let admin = |args: &[&str]| run_in(elsewhere.path(), &admin_env, args);

    let ring = ok(&admin(&[
        "ring",
        "create",
        "orders",
        "--issuer",
        "https://issuer.test",
        "--audience",
        "api",
        "--algorithm",
        "EdDSA",
        "--max-ttl",
        "600",
        "--leeway",
        "30",
    ]));
    assert_eq!(
        (
            &ring["name"],
            &ring["algorithm"],
            &ring["policy"]["max_ttl_seconds"]
        ),
        // EdDSA is an alias: the ring takes the RFC 9864 name.
        (&json!("orders"), &json!("Ed25519"), &json!(600))
    );
    assert_eq!(ring["timing"]["leeway_seconds"], 30);
    let first = ring["active_kid"].as_str().unwrap().to_owned();
    let names: Vec<Value> = ok(&admin(&["ring", "list"]))["rings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("_audit"), json!("orders")]);
    assert_eq!(ok(&admin(&["ring", "show", "orders"]))["name"], "orders");
    let updated = ok(&admin(&[
        "ring",
        "update",
        "orders",
        "--combined-jwks",
        "true",
    ]));
    assert_eq!(updated["combined_jwks"], true);

    let client = ok(&admin(&[
        "client",
        "create",
        "--name",
        "orders-svc",
        "--role",
        "issuer",
        "--ring",
        "orders",
        "--rate-limit",
        "50/100",
    ]));
    let (client_id, issuer_token) = (
        client["id"].as_str().unwrap().to_owned(),
        client["token"].as_str().unwrap().to_owned(),
    );
    assert_eq!(
        client["rate_limit"],
        json!({"per_second": 50, "burst": 100})
    );
    let limited = admin(&["client", "rate-limit", &client_id, "70"]);
    assert!(
        limited.status.success() && limited.stdout.is_empty(),
        "{limited:?}"
    );
    let listed = ok(&admin(&["client", "list"]));
    let svc = listed["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == client_id.as_str())
        .unwrap();
    assert_eq!(svc["rate_limit"], json!({"per_second": 70, "burst": 140}));

    let issuer_env = [
        ("SIGNET_ADDR", server.addr.as_str()),
        ("SIGNET_TOKEN", issuer_token.as_str()),
    ];
    let signed = ok(&run_in(
        elsewhere.path(),
        &issuer_env,
        &[
            "sign",
            "orders",
            "--claims",
            r#"{"sub": "user-1", "aud": "api"}"#,
            "--ttl",
            "120",
        ],
    ));
    assert_eq!(signed["kid"], first.as_str());
    let token = signed["token"].as_str().unwrap();
    // Verification needs no token at all.
    let verified = ok(&run_in(
        elsewhere.path(),
        &[("SIGNET_ADDR", server.addr.as_str())],
        &["verify", token, "--audience", "api"],
    ));
    assert_eq!(
        (&verified["valid"], &verified["claims"]["sub"]),
        (&json!(true), &json!("user-1"))
    );
    // The issuer revokes it; the admin introspects it, and it is inactive.
    let jti = ok(&admin(&["token", "introspect", token]))["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = ok(&run_in(
        elsewhere.path(),
        &issuer_env,
        &["token", "revoke", "--ring", "orders", "--jti", &jti],
    ));
    assert_eq!(revoked["jti"], jti.as_str());
    assert_eq!(
        ok(&admin(&["token", "introspect", token])),
        json!({"active": false})
    );

    let rotated = ok(&admin(&["rotate", "orders"]));
    assert_eq!(rotated["state"], "published");
    let states: Vec<(String, String)> = ok(&admin(&["keys", "orders"]))["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let next = rotated["kid"].as_str().unwrap().to_owned();
    assert_eq!(
        states,
        vec![
            (first.clone(), "active".to_owned()),
            (next.clone(), "published".to_owned())
        ]
    );
    let revoked = ok(&admin(&[
        "key",
        "revoke",
        &next,
        "--reason",
        "test of the CLI",
    ]));
    assert_eq!(revoked["state"], "revoked");

    let shown = ok(&admin(&["schedule", "show", "orders"]));
    assert_eq!(shown["monthly"]["day"], 1);
    let set = ok(&admin(&[
        "schedule",
        "set",
        "orders",
        "--monthly-day",
        "15",
        "--at",
        "06:30",
        "--publish-lead",
        "900",
    ]));
    assert_eq!(set["monthly"], json!({"day": 15, "at": "06:30"}));
    assert!(set["plan"]["next_activation_at"]
        .as_str()
        .unwrap()
        .contains("-15T06:30:00Z"));
    // Timing alone keeps the rule.
    let timing = ok(&admin(&[
        "schedule",
        "set",
        "orders",
        "--publish-lead",
        "1200",
        "--leeway",
        "45",
        "--max-ttl",
        "300",
    ]));
    assert_eq!(
        (
            &timing["monthly"],
            &timing["publish_lead_seconds"],
            &timing["leeway_seconds"],
            &timing["max_token_ttl_seconds"]
        ),
        (
            &json!({"day": 15, "at": "06:30"}),
            &json!(1200),
            &json!(45),
            &json!(300)
        )
    );
    let every = ok(&admin(&[
        "schedule",
        "set",
        "orders",
        "--every-seconds",
        "86400",
    ]));
    assert_eq!(
        (&every["every_seconds"], &every["publish_lead_seconds"]),
        (&json!(86400), &json!(1200))
    );
    assert_eq!(ok(&admin(&["schedule", "pause", "orders"]))["paused"], true);
    assert_eq!(
        ok(&admin(&["schedule", "resume", "orders"]))["paused"],
        false
    );
    let stderr = refused(&admin(&[
        "schedule",
        "set",
        "orders",
        "--every-seconds",
        "600",
    ]));
    assert!(
        stderr.contains("every_seconds (600) must exceed publish_lead_seconds (1200)")
            && stderr.contains("HTTP 400"),
        "{stderr}"
    );

    // A revoked client's token is refused from then on.
    let revoke = admin(&["client", "revoke", &client_id]);
    assert!(
        revoke.status.success() && revoke.stdout.is_empty(),
        "{revoke:?}"
    );
    let stderr = refused(&run_in(
        elsewhere.path(),
        &issuer_env,
        &["sign", "orders", "--claims", r#"{"sub": "user-1"}"#],
    ));
    assert!(stderr.contains("HTTP 401"), "{stderr}");

    // Every change went through the API: audited under the admin client's name.
    let http = crate::helpers::http_client();
    let audit: Value = http
        .get(format!("{}/v1/audit?limit=100", server.addr))
        .bearer_auth(&server.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let by_admin: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["principal"] == "client:bootstrap-admin")
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for action in [
        "ring_created",
        "ring_changed",
        "client_created",
        "client_rate_limit_changed",
        "rotation_requested",
        "key_revoked",
        "schedule_changed",
        "schedule_paused",
        "schedule_resumed",
        "client_revoked",
    ] {
        assert!(by_admin.contains(&action), "{action} not in {by_admin:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_says_why_a_call_was_refused_and_where_the_token_comes_from() {
    let server = Server::start().await;
    let addr = ("SIGNET_ADDR", server.addr.as_str());
    // From the directory holding signet-data/, the admin token is read from there.
    let keys = run_in(server.dir.path(), &[addr], &["ring", "list"]);
    assert_eq!(ok(&keys)["rings"][0]["name"], "_audit");

    let elsewhere = tempfile::tempdir().unwrap();
    let stderr = refused(&run_in(elsewhere.path(), &[addr], &["ring", "list"]));
    assert!(
        stderr.contains("HTTP 401") && stderr.contains("no token was sent: set SIGNET_TOKEN"),
        "{stderr}"
    );
    let stderr = refused(&run_in(
        elsewhere.path(),
        &[addr, ("SIGNET_TOKEN", "signet_not-a-token")],
        &["ring", "list"],
    ));
    assert!(
        stderr.contains("invalid or revoked token")
            && stderr.contains("the token from SIGNET_TOKEN was refused"),
        "{stderr}"
    );
    let admin = ("SIGNET_TOKEN", server.admin.as_str());
    let stderr = refused(&run_in(
        elsewhere.path(),
        &[addr, admin],
        &["keys", "no-such-ring"],
    ));
    assert!(
        stderr.contains(r#"no ring named "no-such-ring" (ring_not_found, HTTP 404)"#),
        "{stderr}"
    );
    // A path segment is sent as one segment, however it is spelled.
    let stderr = refused(&run_in(
        elsewhere.path(),
        &[addr, admin],
        &["keys", "../clients"],
    ));
    assert!(stderr.contains("ring_not_found"), "{stderr}");

    // Nothing listens at this address any more.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", gone.local_addr().unwrap());
    drop(gone);
    let stderr = refused(&run_in(
        elsewhere.path(),
        &[("SIGNET_ADDR", nowhere.as_str()), admin],
        &["ring", "list"],
    ));
    assert!(
        stderr.contains(&format!("cannot reach signet at {nowhere}/"))
            && stderr.contains("signet serve"),
        "{stderr}"
    );
    let stderr = refused(&run_in(
        elsewhere.path(),
        &[("SIGNET_ADDR", "localhost:8080")],
        &["ring", "list"],
    ));
    assert!(
        stderr.contains("SIGNET_ADDR must be an http:// or https:// URL"),
        "{stderr}"
    );
    // None of this created anything where it ran.
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

/// Commands that work on the store itself never create one: run where there is none, each
/// says so and leaves the directory as it was.
#[test]
fn store_commands_refuse_a_missing_store_and_create_nothing() {
    let empty = tempfile::tempdir().unwrap();
    for args in [
        &["migrate"][..],
        &["audit", "verify"],
        &["audit", "export-jwks"],
        &["admin-token", "rotate"],
    ] {
        let stderr = refused(&run_in(empty.path(), &[], args));
        assert!(
            stderr.contains(
                "no signet store at ./signet-data/signet.db: pass --data-dir or SIGNET_DATA_DIR"
            ),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}

/// `signet admin-token rotate`: the bootstrap admin's old token (the one in DATA_DIR/admin-token)
/// is refused, the file is gone, and the new token, printed once, works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_admin_token_can_be_rotated_and_its_file_removed() {
    let app = crate::helpers::TestApp::spawn(crate::helpers::Db::Sqlite).await;
    let old = app.admin_token.clone();
    let (data_dir, db) = app.stop().await;
    let output = signet_process(
        &[
            "admin-token",
            "rotate",
            "--data-dir",
            data_dir.path().to_str().unwrap(),
        ],
        &[("SIGNET_DATABASE_URL", db.url.as_str())],
    )
    .output()
    .expect("signet runs");
    assert!(output.status.success(), "{output:?}");
    let new = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(new.starts_with("signet_") && new != old);
    assert!(!data_dir.path().join("admin-token").exists());
    let app = crate::helpers::TestApp::start(data_dir, db).await;
    let refused = app.get("/v1/clients", Some(&old)).await;
    assert_eq!(refused.status, reqwest::StatusCode::UNAUTHORIZED);
    let listed = app.get("/v1/clients", Some(&new)).await;
    assert_eq!(listed.status, reqwest::StatusCode::OK, "{}", listed.body);
    let rotations = app
        .get("/v1/audit?action=client_token_rotated", Some(&new))
        .await;
    assert_eq!(rotations.body["records"].as_array().unwrap().len(), 1);
}

/// `signet client create` with an expiry, metadata and bound claims, and `signet client rotate`:
/// the new token is printed once, the old one (no grace) refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_create_and_rotate_take_the_lifecycle_options() {
    let app = crate::helpers::TestApp::spawn(crate::helpers::Db::Sqlite).await;
    app.create_ring("orders", json!({})).await;
    let elsewhere = tempfile::tempdir().unwrap();
    let env = [
        ("SIGNET_ADDR", app.address.clone()),
        ("SIGNET_TOKEN", app.admin_token.clone()),
    ];
    let cli = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let env = env.clone();
        let cwd = elsewhere.path().to_owned();
        async move {
            tokio::task::spawn_blocking(move || {
                let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                run_in(&cwd, &env, &args)
            })
            .await
            .unwrap()
        }
    };
    let create = |expires_at: String| {
        cli(&[
            "client",
            "create",
            "--name",
            "orders-svc",
            "--role",
            "issuer",
            "--ring",
            "orders",
            "--expires-at",
            &expires_at,
            "--metadata",
            r#"{"team": "payments"}"#,
            "--bound-claims",
            r#"{"tenant": "acme"}"#,
        ])
    };
    let far = refused(&create("2099-01-01T00:00:00Z".into()).await);
    assert!(far.contains("(invalid_expiry, HTTP 422)"), "{far}");
    let expires_at = (chrono::Utc::now() + chrono::Duration::days(365))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let created = ok(&create(expires_at.clone()).await);
    assert_eq!(created["expires_at"], expires_at);
    assert_eq!(created["metadata"], json!({"team": "payments"}));
    assert_eq!(created["bound_claims"], json!({"tenant": "acme"}));
    let (id, old) = (
        created["id"].as_str().unwrap().to_owned(),
        created["token"].as_str().unwrap().to_owned(),
    );
    let signed = app.sign(&old, "orders", json!({"aud": "api"})).await;
    assert_eq!(signed.status, reqwest::StatusCode::OK, "{}", signed.body);

    let rotated = ok(&cli(&["client", "rotate", &id, "--grace", "0"]).await);
    let new = rotated["token"].as_str().unwrap();
    assert_ne!(new, old);
    let refused_old = app.sign(&old, "orders", json!({"aud": "api"})).await;
    assert_eq!(refused_old.status, reqwest::StatusCode::UNAUTHORIZED);
    let signed = app.sign(new, "orders", json!({"aud": "api"})).await;
    assert_eq!(signed.status, reqwest::StatusCode::OK, "{}", signed.body);

    let introspector = ok(&cli(&[
        "client",
        "create",
        "--name",
        "reader",
        "--role",
        "introspector",
        "--ring",
        "orders",
    ])
    .await);
    assert_eq!(introspector["role"], "introspector");
}

/// `ring create` makes encryption rings, and `client create` decryptors for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_encryption_rings_and_their_decryptors() {
    let app = crate::helpers::TestApp::spawn(crate::helpers::Db::Sqlite).await;
    let elsewhere = tempfile::tempdir().unwrap();
    let env = [
        ("SIGNET_ADDR", app.address.clone()),
        ("SIGNET_TOKEN", app.admin_token.clone()),
    ];
    let cli = |args: &'static [&'static str]| {
        let env = env.clone();
        let cwd = elsewhere.path().to_owned();
        async move {
            tokio::task::spawn_blocking(move || {
                let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
                run_in(&cwd, &env, args)
            })
            .await
            .unwrap()
        }
    };
    let ring = ok(&cli(&[
        "ring",
        "create",
        "inbox",
        "--issuer",
        "https://senders.test",
        "--algorithm",
        "ECDH-ES+A256KW",
        "--curve",
        "P-384",
        "--encryption",
        "A128GCM",
    ])
    .await);
    assert_eq!(
        (&ring["algorithm"], &ring["encryption"], &ring["key_spec"]),
        (
            &json!("ECDH-ES+A256KW"),
            &json!("A128GCM"),
            &json!("ec-p384")
        )
    );
    let client = ok(&cli(&[
        "client",
        "create",
        "--name",
        "inbox-reader",
        "--role",
        "decryptor",
        "--ring",
        "inbox",
    ])
    .await);
    assert_eq!(client["role"], "decryptor");
    let refused = refused(
        &cli(&[
            "ring",
            "create",
            "bad",
            "--issuer",
            "https://senders.test",
            "--algorithm",
            "ES256",
            "--encryption",
            "A256GCM",
        ])
        .await,
    );
    assert!(refused.contains("HTTP 400"), "{refused}");
}
