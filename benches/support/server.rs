//! A `signet` server for a benchmark: the release binary on a free port, with its data directory
//! in a temporary directory and its store in it (SQLite) or in a fresh Postgres database
//! (`SIGNET_BENCH_DATABASE_URL`), and the backend of `SIGNET_BENCH_BACKEND` configured.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{drop_database, fresh_database};

/// The file backend's directory inside a server's data directory (signet's `FILE_BACKEND_DIR`).
// Only decrypt_throughput reads the file store itself.
#[allow(dead_code)]
pub const FILE_BACKEND_DIR: &str = "file-backend";

/// `SIGNET_BENCH_BACKEND`: `file` (the default), `pkcs11` or `aws-kms`.
pub fn backend() -> String {
    std::env::var("SIGNET_BENCH_BACKEND").unwrap_or_else(|_| "file".into())
}

/// `SIGNET_BENCH_KMS_ENDPOINT`, LocalStack's URL, which `SIGNET_BENCH_BACKEND=aws-kms` needs.
fn kms_endpoint() -> String {
    std::env::var("SIGNET_BENCH_KMS_ENDPOINT")
        .expect("SIGNET_BENCH_BACKEND=aws-kms needs SIGNET_BENCH_KMS_ENDPOINT (LocalStack's URL)")
}

/// The bench's own KMS provider, on the endpoint the server gets (`us-east-1` at
/// `SIGNET_BENCH_KMS_ENDPOINT`).
pub async fn kms_provider() -> signet_aws_kms::AwsKmsProvider {
    let config = signet_aws_kms::AwsKmsConfig {
        region: Some("us-east-1".into()),
        endpoint_url: Some(kms_endpoint()),
        ..signet_aws_kms::AwsKmsConfig::default()
    };
    signet_aws_kms::AwsKmsProvider::open(&config)
        .await
        .expect("KMS answers")
}

/// The environment variable `name`, which `SIGNET_BENCH_BACKEND=pkcs11` needs.
pub fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("SIGNET_BENCH_BACKEND=pkcs11 needs {name}"))
}

/// "sqlite", or "postgres" when `SIGNET_BENCH_DATABASE_URL` is set.
pub fn store() -> &'static str {
    if std::env::var("SIGNET_BENCH_DATABASE_URL").is_ok() {
        "postgres"
    } else {
        "sqlite"
    }
}

/// reqwest is built with rustls and no crypto provider of its own (the CLI configures one): the
/// bench's clients use aws-lc-rs, the process default from here on.
fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A client with room for `connections` idle keep-alive connections to the server.
pub fn http_client(connections: usize) -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap()
}

/// Sends `request` (`what`, in a failure's message), which must succeed: the answer's JSON.
async fn answer(request: reqwest::RequestBuilder, what: &str) -> Value {
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{what}: {status}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// `POST url` with `body` as `token`, which must succeed: the answer's JSON.
pub async fn post(client: &reqwest::Client, url: &str, token: &str, body: &Value) -> Value {
    let request = client.post(url).bearer_auth(token).json(body);
    answer(request, &format!("POST {url}")).await
}

/// `POST url` with the JSON text `body` as `token`: the answer, whatever its status (a call of
/// the timed load, which checks the status itself).
pub async fn send_json(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: String,
) -> reqwest::Response {
    client
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

/// A running `signet serve`; killed when dropped.
pub struct Server {
    child: Child,
    dir: tempfile::TempDir,
    pub address: String,
    pub admin_token: String,
    /// (admin URL, name) of the Postgres database made for this server.
    database: Option<(String, String)>,
}

impl Server {
    /// The server's data directory (kept until [`Server::stop`]).
    // Only decrypt_throughput reads the file store itself.
    #[allow(dead_code)]
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Ends the server's process, keeping its data directory and database.
    pub fn halt(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Ends the server's process, and drops its database.
    pub async fn stop(mut self) {
        self.halt();
        if let Some((admin, name)) = self.database.take() {
            drop_database(&admin, &name).await;
        }
    }

    /// `POST {path}` with `body` as `token`, which must succeed: the answer's JSON.
    pub async fn post(
        &self,
        client: &reqwest::Client,
        path: &str,
        token: &str,
        body: &Value,
    ) -> Value {
        post(client, &format!("{}{path}", self.address), token, body).await
    }

    /// `GET {path}` as the admin, which must succeed: the answer's JSON.
    pub async fn get(&self, client: &reqwest::Client, path: &str) -> Value {
        let request = client
            .get(format!("{}{path}", self.address))
            .bearer_auth(&self.admin_token);
        answer(request, &format!("GET {path}")).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.halt();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `binary` (`signet`) on a free port and waits until it answers and has written its
/// admin token; `label` names its Postgres database, if any (lower-case letters, digits, `_`).
pub async fn start_server(binary: &str, label: &str) -> Server {
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
    if backend() == "aws-kms" {
        command
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL_KMS", kms_endpoint());
    }
    let child = command.spawn().expect("signet starts");
    let address = format!("http://127.0.0.1:{port}");
    let token_path = dir.path().join("admin-token");
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = http_client(1);
    loop {
        let up = client
            .get(format!("{address}/healthz"))
            .send()
            .await
            .is_ok();
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
        dir,
        address,
        admin_token,
        database,
    }
}
