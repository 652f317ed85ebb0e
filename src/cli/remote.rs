//! The CLI as a client of a running signet: its HTTP API at `SIGNET_ADDR`, authorised by the
//! client token in `SIGNET_TOKEN`, so that every change is authorised and audited like any API
//! call and reaches every replica.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use reqwest::{Method, StatusCode, Url};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::config::DEFAULT_DATA_DIR;

pub const DEFAULT_ADDR: &str = "http://127.0.0.1:8080";

/// How long one request may take: a rotation on a remote KMS takes a few seconds at most.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A request to the API: the method, the path's segments (each percent-encoded), the body.
pub struct Call {
    pub method: Method,
    pub path: Vec<String>,
    pub body: Option<Value>,
}

impl Call {
    pub fn get(path: &[&str]) -> Call {
        Call::new(Method::GET, path, None)
    }

    pub fn new(method: Method, path: &[&str], body: Option<Value>) -> Call {
        Call {
            method,
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            body,
        }
    }
}

/// TLS for an `https://` SIGNET_ADDR: rustls on aws-lc-rs, as the server, trusting the system's
/// certificate authorities and the one in `ca_file` (SIGNET_CACERT, PEM), for a private CA.
fn tls_config(ca_file: Option<PathBuf>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(file) = ca_file {
        let unreadable = |e: &dyn std::fmt::Display| {
            anyhow!(
                "SIGNET_CACERT {}: not a readable PEM certificate ({e})",
                file.display()
            )
        };
        let certs = CertificateDer::pem_file_iter(&file)
            .map_err(|e| unreadable(&e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unreadable(&e))?;
        if certs.is_empty() {
            return Err(unreadable(&"it holds no certificate"));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| unreadable(&e))?;
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| anyhow!("TLS: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

pub struct Remote {
    base: Url,
    token: Option<SecretString>,
    /// Where the token came from, for the message when the server refuses it.
    token_source: String,
    http: reqwest::Client,
}

impl Remote {
    /// `SIGNET_ADDR` (default [`DEFAULT_ADDR`]); `SIGNET_TOKEN`, else the bootstrap admin's token
    /// file in `SIGNET_DATA_DIR` (default `./signet-data`) when there is one.
    pub fn from_env() -> anyhow::Result<Remote> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let addr = env("SIGNET_ADDR").unwrap_or_else(|| DEFAULT_ADDR.to_owned());
        let base = Url::parse(&addr)
            .ok()
            .filter(|url| ["http", "https"].contains(&url.scheme()) && url.has_host())
            .ok_or_else(|| {
                anyhow!("SIGNET_ADDR must be an http:// or https:// URL such as {DEFAULT_ADDR}")
            })?;
        let token_file = PathBuf::from(env("SIGNET_DATA_DIR").unwrap_or(DEFAULT_DATA_DIR.into()))
            .join("admin-token");
        let (token, token_source) = match env("SIGNET_TOKEN") {
            Some(token) => (Some(SecretString::from(token)), "SIGNET_TOKEN".to_owned()),
            None => match std::fs::read_to_string(&token_file) {
                Ok(text) => (
                    Some(SecretString::from(text.trim().to_owned())),
                    token_file.display().to_string(),
                ),
                Err(_) => (None, String::new()),
            },
        };
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .use_preconfigured_tls(tls_config(env("SIGNET_CACERT").map(PathBuf::from))?)
            .build()
            .map_err(|e| anyhow!("starting the HTTP client: {e}"))?;
        Ok(Remote {
            base,
            token,
            token_source,
            http,
        })
    }

    /// Sends `call`; returns the answer's JSON (`None` for 204), or an error that says what the
    /// server refused and why, in its words.
    pub async fn send(&self, call: Call) -> anyhow::Result<Option<Value>> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| anyhow!("SIGNET_ADDR cannot take a path"))?
            .pop_if_empty()
            .extend(&call.path);
        let mut request = self.http.request(call.method, url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose_secret());
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            let cause = deepest_cause(&e);
            if certificate_refused(&e) {
                anyhow!(
                    "signet at {} presented a certificate this client does not trust ({cause}): set SIGNET_CACERT to the PEM file of the authority that issued it",
                    self.base
                )
            } else if e.is_connect() {
                anyhow!(
                    "cannot reach signet at {} ({cause}): start it with `signet serve`, or set SIGNET_ADDR to where it runs",
                    self.base
                )
            } else {
                anyhow!("no answer from signet at {} ({cause})", self.base)
            }
        })?;
        let status = response.status();
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let body: Value = response.json().await.map_err(|_| {
            anyhow!(
                "{} answered HTTP {status} without signet's JSON: is SIGNET_ADDR a signet?",
                self.base
            )
        })?;
        if status.is_success() {
            return Ok(Some(body));
        }
        let error = &body["error"];
        let (code, message) = (
            error["code"].as_str().unwrap_or("unknown"),
            error["message"].as_str().unwrap_or("no message"),
        );
        let hint = match (status, &self.token) {
            (StatusCode::UNAUTHORIZED, None) => format!(
                "; no token was sent: set SIGNET_TOKEN to a client's token (a fresh server writes its admin's to {DEFAULT_DATA_DIR}/admin-token)"
            ),
            (StatusCode::UNAUTHORIZED, Some(_)) => {
                format!("; the token from {} was refused", self.token_source)
            }
            _ => String::new(),
        };
        bail!("{message} ({code}, HTTP {}){hint}", status.as_u16())
    }
}

/// The innermost cause of a failed request, e.g. "Connection refused (os error 111)".
/// Whether the TLS handshake failed on the server's certificate (the rustls error can sit inside
/// I/O errors inside I/O errors, which `source()` skips).
fn certificate_refused(error: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(rustls::Error::InvalidCertificate(_)) = error.downcast_ref::<rustls::Error>() {
        return true;
    }
    if let Some(inner) = error
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
    {
        return certificate_refused(inner);
    }
    error.source().is_some_and(certificate_refused)
}

fn deepest_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}
