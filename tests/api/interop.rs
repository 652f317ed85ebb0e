//! Tokens signed by signet verify in independent JOSE implementations, npm `jose`, PyJWT,
//! joserfc and jwcrypto, which fetch our JWKS over HTTP like any verifier would. The verifier scripts and their pinned
//! dependencies live in tests/interop; `scripts/test` installs them.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{decode_parts, Backend, Db, TestApp};

#[derive(Clone, Copy, Debug)]
pub enum Verifier {
    Jose,
    PyJwt,
    Joserfc,
    Jwcrypto,
}

impl Verifier {
    pub const ALL: [Verifier; 4] = [
        Verifier::Jose,
        Verifier::PyJwt,
        Verifier::Joserfc,
        Verifier::Jwcrypto,
    ];
}

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// `node <script>` in tests/interop, where npm `jose` is installed.
fn node(script: &str) -> Command {
    let dir = interop_dir();
    assert!(
        dir.join("node_modules/jose").exists(),
        "npm jose is not installed in tests/interop: run scripts/test (or `npm ci` in tests/interop)"
    );
    let node = std::env::var("SIGNET_TEST_NODE").unwrap_or_else(|_| "node".into());
    let mut command = Command::new(node);
    command.arg(dir.join(script));
    command
}

fn command(verifier: Verifier) -> Command {
    match verifier {
        Verifier::Jose => node("verify_jose.mjs"),
        Verifier::PyJwt | Verifier::Joserfc | Verifier::Jwcrypto => {
            let python = std::env::var("SIGNET_TEST_PYTHON").unwrap_or_else(|_| {
                panic!("SIGNET_TEST_PYTHON is not set: run scripts/test, which builds a venv with PyJWT, joserfc and jwcrypto from tests/interop/requirements.txt")
            });
            let script = match verifier {
                Verifier::PyJwt => "verify_pyjwt.py",
                Verifier::Joserfc => "verify_joserfc.py",
                _ => "verify_jwcrypto.py",
            };
            let mut command = Command::new(python);
            command.arg(interop_dir().join(script));
            command
        }
    }
}

/// A recipient's key pair for `alg` (and `crv`, for ECDH) made by npm `jose`:
/// `{"private", "public", "jkt"}`, the JWKs and the public one's RFC 7638 thumbprint.
pub fn recipient_key(alg: &str, crv: Option<&str>) -> Value {
    let output = node("recipient_key.mjs")
        .arg(alg)
        .args(crv)
        .output()
        .unwrap_or_else(|e| panic!("node could not start: {e}"));
    assert!(
        output.status.success(),
        "recipient_key.mjs {alg}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A sender's library that encrypts tokens to an encryption ring's JWKS.
#[derive(Clone, Copy, Debug)]
pub enum Sender {
    Jose,
    Jwcrypto,
}

/// `count` tokens encrypted by `sender` to the first key of `jwks` (as a sender picks it), with
/// `enc`: each carries the claims `{"sub": "user-<i>", "i": <i>, "sender": <library>}`.
pub fn encrypt_to_jwks(sender: Sender, jwks: &Value, enc: &str, count: usize) -> Vec<String> {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), jwks.to_string()).unwrap();
    let mut command = match sender {
        Sender::Jose => node("encrypt_jose.mjs"),
        Sender::Jwcrypto => {
            let python = std::env::var("SIGNET_TEST_PYTHON").unwrap_or_else(|_| {
                panic!("SIGNET_TEST_PYTHON is not set: run scripts/test, which builds a venv with jwcrypto from tests/interop/requirements.txt")
            });
            let mut command = Command::new(python);
            command.arg(interop_dir().join("encrypt_jwcrypto.py"));
            command
        }
    };
    let output = command
        .arg(file.path())
        .arg(enc)
        .arg(count.to_string())
        .output()
        .unwrap_or_else(|e| panic!("{sender:?} could not start: {e}"));
    assert!(
        output.status.success(),
        "{sender:?} could not encrypt: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tokens: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        tokens.len(),
        count,
        "{sender:?} made {} tokens",
        tokens.len()
    );
    tokens
}

/// What a verifier does besides the JWS: decrypt nested tokens with a private JWK.
#[derive(Default)]
pub struct Expect<'a> {
    /// The header's `typ` required (default `JWT`).
    pub typ: Option<&'a str>,
    /// Each token is a JWE to this private JWK, with this `alg` and `enc`, holding the JWS.
    pub nested: Option<(&'a Value, &'a str, &'a str)>,
}

/// Runs a verifier over `tokens` with the JWKS at `jwks_url`; panics unless every token verifies.
pub fn verify_all(verifier: Verifier, jwks_url: &str, tokens: &[String]) -> Value {
    verify_all_of_type(verifier, jwks_url, tokens, "JWT")
}

/// [`verify_all`], with the header's `typ` required to be `typ`.
pub fn verify_all_of_type(
    verifier: Verifier,
    jwks_url: &str,
    tokens: &[String],
    typ: &str,
) -> Value {
    verify_expecting(
        verifier,
        jwks_url,
        tokens,
        Expect {
            typ: Some(typ),
            ..Expect::default()
        },
    )
}

/// Runs `verifier` over `tokens` as `expect` says, and returns its report: whether each token
/// verified is for the caller to assert.
pub fn run_verifier(
    verifier: Verifier,
    jwks_url: &str,
    tokens: &[String],
    expect: Expect,
) -> (bool, Value) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), tokens.join("\n")).unwrap();
    let key_file = tempfile::NamedTempFile::new().unwrap();
    let mut command = command(verifier);
    command.env("SIGNET_EXPECT_TYP", expect.typ.unwrap_or("JWT"));
    if let Some((key, alg, enc)) = expect.nested {
        std::fs::write(key_file.path(), key.to_string()).unwrap();
        command
            .env("SIGNET_DECRYPT_KEY", key_file.path())
            .env("SIGNET_EXPECT_JWE_ALG", alg)
            .env("SIGNET_EXPECT_JWE_ENC", enc);
    }
    let output = command
        .arg(jwks_url)
        .arg(file.path())
        .arg("https://issuer.test")
        .arg("api")
        .output()
        .unwrap_or_else(|e| panic!("{verifier:?} verifier could not start: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "{verifier:?} printed no report: {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.success(), report)
}

/// [`verify_all`] as `expect` says.
pub fn verify_expecting(
    verifier: Verifier,
    jwks_url: &str,
    tokens: &[String],
    expect: Expect,
) -> Value {
    let (success, report) = run_verifier(verifier, jwks_url, tokens, expect);
    assert!(success, "{verifier:?}: {report}");
    assert_eq!(report["verified"], tokens.len(), "{verifier:?}: {report}");
    assert_eq!(report["failed"], 0, "{verifier:?}: {report}");
    report
}

pub async fn sign_many(app: &TestApp, issuer: &str, ring: &str, n: usize) -> Vec<String> {
    let mut tokens = Vec::with_capacity(n);
    for i in 0..n {
        let response = app
            .sign(
                issuer,
                ring,
                json!({"sub": format!("user-{i}"), "aud": "api"}),
            )
            .await;
        assert_eq!(
            response.status,
            reqwest::StatusCode::OK,
            "{}",
            response.body
        );
        tokens.push(response.body["token"].as_str().unwrap().to_owned());
    }
    tokens
}

/// `EdDSA` at creation is an alias: that ring signs as `Ed25519` too.
async fn tokens_of_every_algorithm_verify_in_every_verifier(db: Db, backend: Backend) {
    let app = TestApp::spawn_on(db, backend).await;
    let rings = [
        ("es256", json!({"algorithm": "ES256"})),
        ("es384", json!({"algorithm": "ES384"})),
        ("rs256", json!({"algorithm": "RS256"})),
        (
            "rs256-3072",
            json!({"algorithm": "RS256", "rsa_bits": 3072}),
        ),
        ("ps256", json!({"algorithm": "PS256"})),
        (
            "ps256-3072",
            json!({"algorithm": "PS256", "rsa_bits": 3072}),
        ),
        ("ed25519", json!({"algorithm": "Ed25519"})),
        ("eddsa", json!({"algorithm": "EdDSA"})),
    ];
    // LocalStack's KMS has no Ed25519 keys: aws_kms.rs checks that such a ring is refused.
    let rings: Vec<_> = rings
        .into_iter()
        .filter(|(name, _)| backend != Backend::AwsKms || !name.starts_with("ed"))
        .collect();
    let names: Vec<&str> = rings.iter().map(|(n, _)| *n).collect();
    for (name, body) in &rings {
        let mut body = body.clone();
        body["combined_jwks"] = json!(true);
        app.create_ring(name, body).await;
    }
    let (_, issuer) = app.create_client("svc", "issuer", &names).await;
    let mut all = Vec::new();
    for name in &names {
        let tokens = sign_many(&app, &issuer, name, 5).await;
        if name.starts_with("ed") {
            let (header, _) = decode_parts(&tokens[0]);
            assert_eq!(header["alg"], "Ed25519", "{name}");
        }
        let url = format!("{}/v1/rings/{name}/jwks.json", app.address);
        for verifier in Verifier::ALL {
            verify_all(verifier, &url, &tokens);
        }
        all.extend(tokens);
    }
    // The combined set serves every ring's keys.
    let url = format!("{}/.well-known/jwks.json", app.address);
    for verifier in Verifier::ALL {
        verify_all(verifier, &url, &all);
    }
}

/// A thousand ES256 signatures in a row: an r or s with leading zero bytes shows up about once in
/// 128 signatures, so a padding bug in the r || s encoding cannot hide here.
async fn a_thousand_es256_tokens_all_verify(db: Db, backend: Backend) {
    let app = TestApp::spawn_on(db, backend).await;
    app.create_ring("es256", json!({})).await;
    let (_, issuer) = app.create_client("svc", "issuer", &["es256"]).await;
    let tokens = sign_many(&app, &issuer, "es256", 1000).await;
    let url = format!("{}/v1/rings/es256/jwks.json", app.address);
    for verifier in Verifier::ALL {
        verify_all(verifier, &url, &tokens);
    }
}

backend_tests!(
    tokens_of_every_algorithm_verify_in_every_verifier,
    a_thousand_es256_tokens_all_verify
);

/// The verifiers themselves must fail on a bad token, or the tests above prove nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verifiers_reject_a_tampered_token() {
    let app = TestApp::spawn(Db::Sqlite).await;
    app.create_ring("es256", json!({})).await;
    let (_, issuer) = app.create_client("svc", "issuer", &["es256"]).await;
    let token = sign_many(&app, &issuer, "es256", 1).await.remove(0);
    let (header, rest) = token.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let forged_payload = signet::jose::b64url(json!({"iss": "https://issuer.test", "aud": "api", "sub": "admin", "exp": 4_000_000_000u64}).to_string().as_bytes());
    let forged = format!("{header}.{forged_payload}.{signature}");
    let url = format!("{}/v1/rings/es256/jwks.json", app.address);
    for verifier in Verifier::ALL {
        let (success, report) = run_verifier(
            verifier,
            &url,
            std::slice::from_ref(&forged),
            Expect::default(),
        );
        assert!(!success, "{verifier:?} accepted a forged token");
        assert_eq!(report["failed"], 1, "{verifier:?}: {report}");
    }
}

/// A ring created as `EdDSA` before signet took the RFC 9864 name keeps that name: its header
/// and its JWK say `EdDSA`, and every verifier accepts its tokens. (The ring is made as an
/// Ed25519 ring, then its rows are rewritten to what an older signet stored.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_created_as_eddsa_keeps_the_name() {
    let app = TestApp::spawn(Db::Sqlite).await;
    app.create_ring("legacy", json!({"algorithm": "EdDSA"}))
        .await;
    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    for statement in [
        "UPDATE rings SET algorithm = 'EdDSA' WHERE name = 'legacy'",
        "UPDATE keys SET algorithm = 'EdDSA', \
           public_jwk = replace(public_jwk, '\"alg\":\"Ed25519\"', '\"alg\":\"EdDSA\"') \
         WHERE ring = 'legacy'",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let app = app.restart().await;
    let (_, issuer) = app.create_client("svc", "issuer", &["legacy"]).await;
    let tokens = sign_many(&app, &issuer, "legacy", 3).await;
    let (header, _) = decode_parts(&tokens[0]);
    assert_eq!(header["alg"], "EdDSA");
    let jwks = app.get("/v1/rings/legacy/jwks.json", None).await;
    assert_eq!(jwks.body["keys"][0]["alg"], "EdDSA");
    let url = format!("{}/v1/rings/legacy/jwks.json", app.address);
    for verifier in Verifier::ALL {
        verify_all(verifier, &url, &tokens);
    }
    let verified = app
        .request(
            reqwest::Method::POST,
            "/v1/verify",
            None,
            Some(json!({"token": tokens[0]})),
        )
        .await;
    assert_eq!(
        verified.status,
        reqwest::StatusCode::OK,
        "{}",
        verified.body
    );
}

/// An OAuth access token (`at+jwt`, RFC 9068) verifies in npm `jose` and PyJWT with its type
/// required, and a plain `JWT` is refused where that type is required.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_tokens_verify_with_their_type_required() {
    let app = TestApp::spawn(Db::Sqlite).await;
    app.create_ring(
        "access",
        json!({"policy": {"typ": "at+jwt", "caller_claim": "client_id"}}),
    )
    .await;
    app.create_ring("plain", json!({})).await;
    let (_, issuer) = app
        .create_client("svc", "issuer", &["access", "plain"])
        .await;
    let access = sign_many(&app, &issuer, "access", 20).await;
    let access_url = format!("{}/v1/rings/access/jwks.json", app.address);
    for verifier in [Verifier::Jose, Verifier::PyJwt] {
        verify_all_of_type(verifier, &access_url, &access, "at+jwt");
    }
    let plain = sign_many(&app, &issuer, "plain", 1).await;
    let plain_url = format!("{}/v1/rings/plain/jwks.json", app.address);
    for verifier in [Verifier::Jose, Verifier::PyJwt] {
        let expect = Expect {
            typ: Some("at+jwt"),
            ..Expect::default()
        };
        let (success, report) = run_verifier(verifier, &plain_url, &plain, expect);
        assert!(
            !success && report["failed"] == 1,
            "{verifier:?} took a JWT for an access token: {report}"
        );
    }
}
