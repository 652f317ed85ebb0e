//! HTTPS on the listener: the certificate given is served over TLS 1.3 and 1.2; a SIGHUP makes
//! new connections get the certificate the files now hold while a connection already open goes
//! on; files that cannot be read at a SIGHUP keep the certificate in use; and wrong files stop
//! the start with a message naming them.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, pki_types::CertificateDer};

use crate::certs::TestCa;
use crate::helpers::{refused_start, signet_process, terminate, Db, TestDb};

fn write_pair(dir: &Path, (cert, key, _): &(String, String, CertificateDer<'static>)) {
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
}

type Connection = BufReader<TlsStream<tokio::net::TcpStream>>;

async fn connect(
    connector: &tokio_rustls::TlsConnector,
    address: &str,
) -> std::io::Result<Connection> {
    let tcp = tokio::net::TcpStream::connect(address).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    Ok(BufReader::new(connector.connect(name, tcp).await?))
}

fn served_certificate(connection: &Connection) -> CertificateDer<'static> {
    connection
        .get_ref()
        .get_ref()
        .1
        .peer_certificates()
        .unwrap()[0]
        .clone()
}

/// `GET /healthz` on the connection, kept alive; the status.
async fn healthz(connection: &mut Connection) -> u16 {
    connection
        .get_mut()
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut head = String::new();
    loop {
        let mut line = String::new();
        connection.read_line(&mut line).await.unwrap();
        assert!(!line.is_empty(), "the connection closed before an answer");
        if line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0; length];
    connection.read_exact(&mut body).await.unwrap();
    head[9..12].parse().unwrap()
}

fn sighup(server: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Connects anew until the server presents `expected` (for at most 60 s).
async fn until_served(
    connector: &tokio_rustls::TlsConnector,
    address: &str,
    expected: &CertificateDer<'_>,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut connection = connect(connector, address).await.unwrap();
        if served_certificate(&connection) == *expected {
            assert_eq!(healthz(&mut connection).await, 200);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate is not served 60 s after SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `signet serve` over HTTPS with `dir`'s cert.pem and key.pem; returns it, its address
/// (127.0.0.1:port) and its log file once it accepts connections.
async fn start_https(dir: &Path, db: &TestDb) -> (std::process::Child, String, std::path::PathBuf) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let log_path = dir.join("signet.log");
    let server = signet_process(
        &[
            "serve",
            "--data-dir",
            dir.to_str().unwrap(),
            "--listen",
            &address,
            "--database-url",
            &db.url,
            "--tls-cert",
            dir.join("cert.pem").to_str().unwrap(),
            "--tls-key",
            dir.join("key.pem").to_str().unwrap(),
        ],
        &[("SIGNET_LOG", "info")],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::fs::File::create(&log_path).unwrap())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(&address).await.is_err()
        || !dir.join("admin-token").exists()
    {
        assert!(Instant::now() < deadline, "signet did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (server, address, log_path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_the_certificate_and_a_sighup_replaces_it_for_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(Db::Sqlite, dir.path()).await;
    let ca = TestCa::new();
    let first = ca.leaf();
    write_pair(dir.path(), &first);
    let (mut server, address, log_path) = start_https(dir.path(), &db).await;
    let tls13 = ca.client(&[&rustls::version::TLS13]);
    let mut open = connect(&tls13, &address).await.unwrap();
    assert_eq!(served_certificate(&open), first.2);
    assert_eq!(healthz(&mut open).await, 200);
    let mut tls12 = connect(&ca.client(&[&rustls::version::TLS12]), &address)
        .await
        .unwrap();
    assert_eq!(
        tls12.get_ref().get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(healthz(&mut tls12).await, 200);

    let second = ca.leaf();
    write_pair(dir.path(), &second);
    sighup(&server);
    until_served(&tls13, &address, &second.2).await;
    // The connection opened before the reload is still served, with the certificate it got.
    assert_eq!(healthz(&mut open).await, 200);
    assert_eq!(served_certificate(&open), first.2);

    // A key that is not the certificate's: the reload fails and the second certificate stays.
    std::fs::write(dir.path().join("key.pem"), ca.leaf().1).unwrap();
    sighup(&server);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log_path)
        .unwrap()
        .contains("could not be read again")
    {
        assert!(Instant::now() < deadline, "no failed reload in the log");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut after_failure = connect(&tls13, &address).await.unwrap();
    assert_eq!(served_certificate(&after_failure), second.2);
    assert_eq!(healthz(&mut after_failure).await, 200);

    drop((open, tls12, after_failure));
    assert!(terminate(&mut server).await.success());
}

/// The CLI speaks HTTPS to an `https://` SIGNET_ADDR, trusting the system's authorities and the
/// one in SIGNET_CACERT; a server whose certificate it cannot trust is refused, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_speaks_https_trusting_the_ca_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(Db::Sqlite, dir.path()).await;
    let ca = TestCa::new();
    write_pair(dir.path(), &ca.leaf());
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let (mut server, address, _) = start_https(dir.path(), &db).await;
    let port = address.rsplit_once(':').unwrap().1;
    let url = format!("https://localhost:{port}");
    let data_dir = dir.path().to_str().unwrap();
    let cli = |env: &[(&str, &str)]| {
        let mut command = signet_process(&["ring", "list"], &[]);
        command
            .env_remove("SIGNET_TOKEN")
            .env_remove("SIGNET_CACERT")
            .envs(env.iter().copied());
        command.output().unwrap()
    };

    let ca_file = dir.path().join("ca.pem");
    let trusted = cli(&[
        ("SIGNET_ADDR", &url),
        ("SIGNET_DATA_DIR", data_dir),
        ("SIGNET_CACERT", ca_file.to_str().unwrap()),
    ]);
    let stdout = String::from_utf8_lossy(&trusted.stdout);
    assert!(
        trusted.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    let answer: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(answer["rings"].is_array(), "{answer}");

    let untrusted = cli(&[("SIGNET_ADDR", &url), ("SIGNET_DATA_DIR", data_dir)]);
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(!untrusted.status.success());
    assert!(
        stderr.contains("a certificate this client does not trust")
            && stderr.contains("UnknownIssuer")
            && stderr.contains("SIGNET_CACERT"),
        "{stderr}"
    );

    let not_pem = cli(&[
        ("SIGNET_ADDR", &url),
        ("SIGNET_DATA_DIR", data_dir),
        (
            "SIGNET_CACERT",
            dir.path().join("key.pem").to_str().unwrap(),
        ),
    ]);
    let stderr = String::from_utf8_lossy(&not_pem.stderr);
    assert!(!not_pem.status.success());
    assert!(
        stderr.contains("not a readable PEM certificate"),
        "{stderr}"
    );

    assert!(terminate(&mut server).await.success());
}

#[test]
fn wrong_tls_files_stop_the_start_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    write_pair(dir.path(), &ca.leaf());
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let other_key = dir.path().join("other-key.pem");
    std::fs::write(&other_key, ca.leaf().1).unwrap();
    let missing = dir.path().join("missing.pem");
    let path = |p: &Path| p.to_str().unwrap().to_owned();

    let alone = refused_start(&[("SIGNET_TLS_CERT", &path(&cert))]);
    assert!(
        alone.contains("give both --tls-cert and --tls-key"),
        "{alone}"
    );
    let gone = refused_start(&[
        ("SIGNET_TLS_CERT", &path(&missing)),
        ("SIGNET_TLS_KEY", &path(&key)),
    ]);
    assert!(
        gone.contains(&format!("the TLS certificate {}", missing.display())),
        "{gone}"
    );
    let swapped = refused_start(&[
        ("SIGNET_TLS_CERT", &path(&key)),
        ("SIGNET_TLS_KEY", &path(&cert)),
    ]);
    assert!(swapped.contains("holds no PEM certificate"), "{swapped}");
    let mismatched = refused_start(&[
        ("SIGNET_TLS_CERT", &path(&cert)),
        ("SIGNET_TLS_KEY", &path(&other_key)),
    ]);
    assert!(
        mismatched.contains(&format!(
            "the TLS key {} is not the key of the TLS certificate {}",
            other_key.display(),
            cert.display()
        )),
        "{mismatched}"
    );
}
