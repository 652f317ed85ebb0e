//! `TestApp`: a signet server on port 0 with its own data directory and database, and one way to
//! talk to it.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};
use signet::config::{HttpSettings, Settings};
use signet::services::Services;
use signet::startup::Application;
use signet::store::Store;
use signet_aws_kms::{AwsKmsConfig, AwsKmsProvider};
use signet_core::KeyProvider;
use signet_file::{FileConfig, FileProvider, KekSource};
use signet_pkcs11::{Pkcs11Config, Pkcs11Provider};
use tempfile::TempDir;

/// The auditor views: objects only the Postgres migrations create, by design, in
/// migrations/postgres/0020_audit_chain.sql, granted to the `signet_auditor` role, which SQLite
/// has no counterpart of (migrations/sqlite/0020_audit_chain.sql says so).
pub const AUDITOR_VIEWS: [&str; 8] = [
    "audit_records",
    "audit_events",
    "key_history",
    "key_states",
    "signatures_by_key",
    "admin_actions",
    "denied_requests",
    "audit_checkpoints",
];

/// The store a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Runs an async test body once per store: `store_tests!(name)` expects `async fn name(db: Db)`.
#[macro_export]
macro_rules! store_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Db::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Db::Postgres).await
                }
            )+
        }
    };
}

/// The key backend a test's rings use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    File,
    Pkcs11,
    AwsKms,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::File => "file",
            Backend::Pkcs11 => "pkcs11",
            Backend::AwsKms => "aws-kms",
        }
    }
}

/// Runs an async test body on every backend: `backend_tests!(name)` expects
/// `async fn name(db: Db, backend: Backend)`. The file backend runs on both stores, the PKCS#11
/// token and AWS KMS (LocalStack) with Postgres (the store makes no difference to a backend).
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        $crate::backend_tests!(@mod file_sqlite, Sqlite, File, $($name),+);
        $crate::backend_tests!(@mod file_postgres, Postgres, File, $($name),+);
        $crate::backend_tests!(@mod pkcs11, Postgres, Pkcs11, $($name),+);
        $crate::backend_tests!(@mod aws_kms, Postgres, AwsKms, $($name),+);
    };
    (@mod $module:ident, $db:ident, $backend:ident, $($name:ident),+) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(
                        $crate::helpers::Db::$db,
                        $crate::helpers::Backend::$backend,
                    )
                    .await
                }
            )+
        }
    };
}

/// A setting of the test token, which `scripts/test` creates; a clear failure without it.
pub fn pkcs11_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set. Run the suite with scripts/test, which creates a SoftHSM2 token, \
             or set SOFTHSM2_CONF, SIGNET_TEST_PKCS11_MODULE, SIGNET_TEST_PKCS11_TOKEN and \
             SIGNET_TEST_PKCS11_PIN for a token of your own (see SoftHSM.md)"
        )
    })
}

/// The test token, if its settings are in the environment.
fn pkcs11_config() -> Option<Pkcs11Config> {
    std::env::var("SIGNET_TEST_PKCS11_MODULE").ok()?;
    Some(Pkcs11Config {
        module: pkcs11_env("SIGNET_TEST_PKCS11_MODULE").into(),
        token_label: pkcs11_env("SIGNET_TEST_PKCS11_TOKEN"),
        pin: SecretString::from(pkcs11_env("SIGNET_TEST_PKCS11_PIN")),
        pool_size: None,
    })
}

/// The LocalStack KMS endpoint `scripts/test` starts; a clear failure without it.
pub fn kms_endpoint() -> String {
    std::env::var("SIGNET_TEST_KMS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "SIGNET_TEST_KMS_ENDPOINT is not set. Run the suite with scripts/test, which starts \
             LocalStack, or start LocalStack yourself (tests/localstack/requirements.txt) and set \
             SIGNET_TEST_KMS_ENDPOINT=http://127.0.0.1:<port>, AWS_ACCESS_KEY_ID=test and \
             AWS_SECRET_ACCESS_KEY=test"
        )
    })
}

/// The aws-kms backend on the KMS at `endpoint` (LocalStack: any credentials, region us-east-1).
/// LocalStack answers in milliseconds on a quiet machine and in seconds on a busy one: the call
/// timeout is three times the production default, so that only a real outage fails a call.
pub fn kms_config(endpoint: String) -> AwsKmsConfig {
    AwsKmsConfig {
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint),
        call_timeout: std::time::Duration::from_secs(30),
        ..AwsKmsConfig::default()
    }
}

/// A database for one test: a SQLite file in the data directory, or a fresh Postgres database
/// (dropped when the test ends).
pub struct TestDb {
    pub url: String,
    postgres: Option<(String, String)>,
}

pub const TEST_KEK: &str = "8f1c2a9e4b7d6053f2e1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9";

fn postgres_admin_url() -> String {
    std::env::var("SIGNET_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "SIGNET_TEST_DATABASE_URL is not set. Run the suite with scripts/test, which starts a \
             throwaway Postgres, or point SIGNET_TEST_DATABASE_URL at a server where this user may \
             CREATE DATABASE"
        )
    })
}

impl TestDb {
    pub async fn new(db: Db, data_dir: &std::path::Path) -> TestDb {
        match db {
            Db::Sqlite => TestDb {
                url: format!("sqlite://{}?mode=rwc", data_dir.join("signet.db").display()),
                postgres: None,
            },
            Db::Postgres => {
                let admin = postgres_admin_url();
                let name = format!(
                    "signet_test_{}",
                    signet::random::random_id(9)
                        .to_lowercase()
                        .replace(['-', '_'], "x")
                );
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("cannot reach the test Postgres at SIGNET_TEST_DATABASE_URL ({e}); run scripts/test"));
                sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
                    .await
                    .expect("CREATE DATABASE");
                let (base, _) = admin.rsplit_once('/').expect("a database URL with a path");
                TestDb {
                    url: format!("{base}/{name}"),
                    postgres: Some((admin, name)),
                }
            }
        }
    }
}

impl TestDb {
    /// A database that someone else made and will remove (a private Postgres cluster).
    pub fn existing(url: String) -> TestDb {
        TestDb {
            url,
            postgres: None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.postgres.take() {
            // Drop runs inside the test's runtime: drop the database from a thread of its own.
            let _ = std::thread::spawn(move || {
                tokio::runtime::Runtime::new().unwrap().block_on(async {
                    if let Ok(mut conn) =
                        <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await
                    {
                        let _ = sqlx::Executor::execute(
                            &mut conn,
                            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                        )
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

/// An HTTP client for the tests. reqwest is built with rustls and no crypto provider of its own
/// (the CLI configures one): the tests' clients use aws-lc-rs, the process default from here on.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::new()
}

pub struct TestApp {
    pub address: String,
    /// The backend of the rings `create_ring` makes.
    pub backend: Backend,
    pub admin_token: String,
    pub data_dir: Arc<TempDir>,
    pub db: Arc<TestDb>,
    pub services: Arc<Services>,
    /// The test's own connection to the server's store, to look at what it recorded.
    pub store: Store,
    http: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
    /// The task serving until stopped; `None` once stopped.
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// A test that ends without [`TestApp::stop`] still shuts its server down before the next test
/// starts: no server thread may be left inside a backend (the PKCS#11 library) when the process
/// exits.
impl Drop for TestApp {
    fn drop(&mut self) {
        if self.server.is_some() {
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(self.shut_down());
            });
        }
    }
}

pub struct Response {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Response {
    async fn from(response: reqwest::Response) -> Response {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Response {
            status,
            headers,
            body,
        }
    }
}

impl TestApp {
    pub async fn spawn(db: Db) -> TestApp {
        TestApp::spawn_on(db, Backend::File).await
    }

    /// A server whose `create_ring` makes rings on `backend`.
    pub async fn spawn_on(db: Db, backend: Backend) -> TestApp {
        if backend == Backend::Pkcs11 {
            pkcs11_env("SIGNET_TEST_PKCS11_MODULE");
        }
        let data_dir = Arc::new(tempfile::tempdir().unwrap());
        let db = Arc::new(TestDb::new(db, data_dir.path()).await);
        TestApp::start_on(data_dir, db, backend).await
    }

    /// A server on the file backend whose HTTP settings (limits, deadlines) are `http`.
    pub async fn spawn_with_http(db: Db, http: HttpSettings) -> TestApp {
        let data_dir = Arc::new(tempfile::tempdir().unwrap());
        let db = Arc::new(TestDb::new(db, data_dir.path()).await);
        let mut settings = settings(data_dir.path().to_owned(), &db.url);
        settings.http = http;
        TestApp::start_with(settings, data_dir, db).await
    }

    /// Sends `body` as it is, with `Content-Type: application/json`.
    pub async fn post_raw(&self, path: &str, token: Option<&str>, body: String) -> Response {
        let mut request = self
            .http
            .post(format!("{}{path}", self.address))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Response::from(request.send().await.expect("the server answers")).await
    }

    /// Starts a server with `backend` configured on an existing data directory and database.
    /// Only a server for PKCS#11 rings opens the test token: a first start makes the audit
    /// ring's key on the strongest backend configured, and SoftHSM 2.6.1 now and then fails a
    /// key generation that runs beside other changes to the token (see
    /// `signet_pkcs11::objects`), so the other tests keep their keys off it.
    pub async fn start_on(data_dir: Arc<TempDir>, db: Arc<TestDb>, backend: Backend) -> TestApp {
        let mut settings = settings(data_dir.path().to_owned(), &db.url);
        if backend != Backend::Pkcs11 {
            settings.pkcs11 = None;
        }
        if backend == Backend::AwsKms {
            settings.aws_kms = Some(kms_config(kms_endpoint()));
        }
        let mut app = TestApp::start_with(settings, data_dir, db).await;
        app.backend = backend;
        app
    }

    /// Starts a server on an existing data directory and database (a restart, or a replica).
    pub async fn start(data_dir: Arc<TempDir>, db: Arc<TestDb>) -> TestApp {
        let settings = settings(data_dir.path().to_owned(), &db.url);
        TestApp::start_with(settings, data_dir, db).await
    }

    pub async fn start_with(
        settings: Settings,
        data_dir: Arc<TempDir>,
        db: Arc<TestDb>,
    ) -> TestApp {
        // The servers' warnings (or what SIGNET_LOG asks for) in the output of a failing test.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("SIGNET_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .try_init();
        let app = Application::build(settings)
            .await
            .expect("the server starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let services = app.services();
        let store = Store::connect(&SecretString::from(db.url.clone()))
            .await
            .expect("the test connects to the server's store");
        let handle = app.handle();
        let server = tokio::spawn(app.run_until_stopped());
        let admin_token = std::fs::read_to_string(data_dir.path().join("admin-token"))
            .map(|t| t.trim().to_owned())
            .unwrap_or_default();
        TestApp {
            address,
            backend: Backend::File,
            admin_token,
            data_dir,
            db,
            services,
            store,
            http: http_client(),
            handle,
            server: Some(server),
        }
    }

    /// Stops the server and waits until it has closed its backends and store.
    pub async fn stop(mut self) -> (Arc<TempDir>, Arc<TestDb>) {
        self.shut_down().await;
        self.store.close().await;
        (self.data_dir.clone(), self.db.clone())
    }

    /// A provider of `backend` of its own on the keys this server uses (its file-backend
    /// directory, the test token, LocalStack): the backend as a fresh reader sees it, apart
    /// from the server and its caches.
    pub async fn open_backend(&self, backend: Backend) -> Arc<dyn KeyProvider> {
        match backend {
            Backend::File => {
                let config = FileConfig {
                    dir: self.data_dir.path().join("file-backend"),
                    kek: Some(
                        KekSource::key_from_text(&SecretString::from(TEST_KEK.to_owned())).unwrap(),
                    ),
                };
                Arc::new(FileProvider::open(config).expect("the file backend opens"))
            }
            Backend::Pkcs11 => {
                let config = pkcs11_config().expect("the test token is configured");
                Arc::new(Pkcs11Provider::open(config).expect("the test token opens"))
            }
            Backend::AwsKms => Arc::new(
                AwsKmsProvider::open(&kms_config(kms_endpoint()))
                    .await
                    .expect("LocalStack answers"),
            ),
        }
    }

    async fn shut_down(&mut self) {
        if let Some(server) = self.server.take() {
            self.handle.stop(true).await;
            let stopped = server.await;
            // Not while unwinding from a failed assertion: that failure is the one to report.
            if !std::thread::panicking() {
                stopped
                    .expect("the server task ends")
                    .expect("the server stops cleanly");
            }
        }
    }

    pub async fn restart(self) -> TestApp {
        let backend = self.backend;
        let (data_dir, db) = self.stop().await;
        TestApp::start_on(data_dir, db, backend).await
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut request = self.http.request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Response::from(request.send().await.expect("the server answers")).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.request(Method::POST, path, Some(token), Some(body))
            .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token, None).await
    }

    /// Creates a ring (admin) on the app's backend; `extra` is merged over a default ES256 ring
    /// issuing for "api".
    pub async fn create_ring(&self, name: &str, extra: Value) -> Value {
        let mut body = json!({
            "name": name,
            "backend": self.backend.name(),
            "policy": {"issuer": "https://issuer.test", "audiences": ["api"], "max_ttl_seconds": 900},
        });
        merge(&mut body, extra);
        let response = self.post("/v1/rings", &self.admin_token, body).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
        response.body
    }

    /// Creates a client and returns (id, token).
    pub async fn create_client(&self, name: &str, role: &str, rings: &[&str]) -> (String, String) {
        let response = self
            .post(
                "/v1/clients",
                &self.admin_token,
                json!({"name": name, "role": role, "rings": rings}),
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
        (
            response.body["id"].as_str().unwrap().to_owned(),
            response.body["token"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn sign(&self, token: &str, ring: &str, claims: Value) -> Response {
        self.post(
            &format!("/v1/rings/{ring}/sign"),
            token,
            json!({"claims": claims}),
        )
        .await
    }

    /// Starts a rotation of `ring` as the admin (new key published, activating after its lead).
    pub async fn rotate(&self, ring: &str) -> Response {
        self.request(
            Method::POST,
            &format!("/v1/rings/{ring}/rotate"),
            Some(&self.admin_token),
            None,
        )
        .await
    }

    /// Rotates `ring` with a key that signs at once; returns the rotation's answer (the new key).
    pub async fn rotate_immediately(&self, ring: &str) -> Response {
        self.post(
            &format!("/v1/rings/{ring}/rotate"),
            &self.admin_token,
            json!({"immediate": true}),
        )
        .await
    }

    /// The `kid`s in a ring's JWKS.
    pub async fn jwks_kids(&self, ring: &str) -> Vec<String> {
        let response = self.get(&format!("/v1/rings/{ring}/jwks.json"), None).await;
        assert_eq!(response.status, StatusCode::OK);
        response.body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Sets a ring's schedule and timing as the admin.
    pub async fn put_schedule(&self, ring: &str, body: Value) -> Response {
        self.request(
            Method::PUT,
            &format!("/v1/rings/{ring}/schedule"),
            Some(&self.admin_token),
            Some(body),
        )
        .await
    }

    /// The `kid`s in a ring's JWKS and how long it may be cached (its `Cache-Control: max-age`).
    pub async fn jwks_and_max_age(&self, ring: &str) -> (HashSet<String>, Duration) {
        let response = self.get(&format!("/v1/rings/{ring}/jwks.json"), None).await;
        let cache_control = response.headers["cache-control"]
            .to_str()
            .unwrap()
            .to_owned();
        let max_age = cache_control
            .split(',')
            .find_map(|d| d.trim().strip_prefix("max-age="))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no max-age in {cache_control}"));
        let kids = response.body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        (kids, Duration::from_secs(max_age))
    }

    pub async fn keys(&self, ring: &str) -> Vec<Value> {
        let response = self
            .get(&format!("/v1/rings/{ring}/keys"), Some(&self.admin_token))
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        response.body["keys"].as_array().unwrap().clone()
    }
}

pub fn settings(data_dir: PathBuf, database_url: &str) -> Settings {
    Settings {
        listen: "127.0.0.1:0".into(),
        data_dir,
        database_url: SecretString::from(database_url.to_owned()),
        file_kek: Some(KekSource::key_from_text(&SecretString::from(TEST_KEK.to_owned())).unwrap()),
        pkcs11: pkcs11_config(),
        aws_kms: None,
        http: HttpSettings::default(),
        tls: None,
    }
}

pub fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(base), Value::Object(extra)) => {
            for (k, v) in extra {
                merge(base.entry(k).or_insert(Value::Null), v);
            }
        }
        (base, extra) => *base = extra,
    }
}

/// The decoded header and payload of a compact JWS (no verification).
pub fn decode_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut part = || {
        let bytes = signet::jose::b64url_decode(parts.next().unwrap()).unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()
    };
    (part(), part())
}

/// The `signet` binary as a process of its own: `args`, the test key-encryption key, no
/// database URL from the environment, then `env`.
pub fn signet_process(args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_signet"));
    command
        .args(args)
        .env("SIGNET_FILE_KEK", TEST_KEK)
        .env_remove("SIGNET_DATABASE_URL")
        .envs(env.iter().copied());
    command
}

/// `signet serve` as a process of its own (for tests that kill or signal it), on a free port,
/// with `data_dir`, `database_url` and `env`; returns it and its base URL once it answers
/// `/healthz` (by then the bootstrap admin token, if it made one, is in `data_dir/admin-token`).
pub async fn serve_process(
    data_dir: &std::path::Path,
    database_url: &str,
    env: &[(&str, &str)],
) -> (std::process::Child, String) {
    serve_process_logging(data_dir, database_url, env, std::process::Stdio::inherit()).await
}

/// [`serve_process`] with its standard error (the log) sent to `log`.
pub async fn serve_process_logging(
    data_dir: &std::path::Path,
    database_url: &str,
    env: &[(&str, &str)],
    log: std::process::Stdio,
) -> (std::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let data_dir = data_dir.to_str().expect("a UTF-8 temporary directory");
    let child = signet_process(
        &[
            "serve",
            "--data-dir",
            data_dir,
            "--listen",
            &listen,
            "--database-url",
            database_url,
        ],
        &[&[("SIGNET_LOG", "error")], env].concat(),
    )
    .stdout(std::process::Stdio::null())
    .stderr(log)
    .spawn()
    .expect("signet starts");
    let base = format!("http://{listen}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while http_client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(std::time::Instant::now() < deadline, "signet did not start");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    (child, base)
}

/// Sends SIGTERM to a process.
pub fn sigterm(process: &std::process::Child) {
    let pid = process.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
}

/// Sends SIGTERM to a `signet serve` process and returns its exit status (within 60 s).
pub async fn terminate(server: &mut std::process::Child) -> std::process::ExitStatus {
    sigterm(server);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(status) = server.try_wait().unwrap() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit within 60 s of SIGTERM"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Runs `signet serve` with `env` on a data directory that does not exist yet and expects it to
/// refuse to start, leaving no data directory behind; returns its stderr.
pub fn refused_start(env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut child = signet_process(
        &[
            "serve",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        env,
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Only stops a hang: a refused start takes a second or two.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("signet started with {env:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    assert!(
        !data_dir.exists(),
        "the failed start left {}",
        data_dir.display()
    );
    String::from_utf8(output.stderr).unwrap()
}

/// Waits (polling) until `check` holds, for at most `seconds`.
pub async fn eventually<F, Fut>(seconds: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out after {seconds}s waiting for: {what}");
}
