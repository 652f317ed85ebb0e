//! TLS on the listener (README, TLS): rustls on the aws-lc-rs provider, TLS 1.2 and 1.3 only,
//! the certificate chain and its key read from PEM files at start and read again on SIGHUP.
//! A reload changes the certificate of the handshakes that follow; connections already open keep
//! theirs. A reload that fails (a file missing, unreadable, or a key that is not the
//! certificate's) keeps the certificate in use and says why in the log.

use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use anyhow::{anyhow, Context};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::TlsFiles;

/// The certificate the listener presents, replaceable while it serves.
#[derive(Debug)]
pub struct Certificates {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

fn read(files: &TlsFiles, provider: &CryptoProvider) -> anyhow::Result<Arc<CertifiedKey>> {
    let named = |path: &Path, what: &str| format!("the TLS {what} {}", path.display());
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| anyhow!("{}: {e}", named(&files.cert, "certificate")))?;
    if chain.is_empty() {
        return Err(anyhow!(
            "{} holds no PEM certificate",
            named(&files.cert, "certificate")
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| anyhow!("{}: {e}", named(&files.key, "key")))?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| anyhow!("{}: {e}", named(&files.key, "key")))?;
    let certified = CertifiedKey::new(chain, key);
    certified.keys_match().map_err(|_| {
        anyhow!(
            "{} is not the key of {}",
            named(&files.key, "key"),
            named(&files.cert, "certificate")
        )
    })?;
    Ok(Arc::new(certified))
}

impl Certificates {
    /// Reads the certificate chain and key, or says which file is wrong and why.
    pub fn load(files: TlsFiles) -> anyhow::Result<Arc<Certificates>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let current = read(&files, &provider)?;
        Ok(Arc::new(Certificates {
            files,
            provider,
            current: RwLock::new(current),
        }))
    }

    /// Reads the files again; on success, the next handshakes present what they now hold.
    pub fn reload(&self) -> anyhow::Result<()> {
        let fresh = read(&self.files, &self.provider)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// The listener's configuration: TLS 1.2 and 1.3, HTTP/1.1, this certificate.
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<rustls::ServerConfig> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .context("configuring TLS")?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// Reads the certificate again at each SIGHUP, for as long as the server runs.
pub async fn reload_on_sighup(certificates: Arc<Certificates>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot listen for SIGHUP: the TLS certificate is read only at start");
        return;
    };
    while hangups.recv().await.is_some() {
        match certificates.reload() {
            Ok(()) => tracing::info!(
                cert = %certificates.files.cert.display(),
                "SIGHUP: the TLS certificate is read again; new connections get it"
            ),
            Err(e) => tracing::error!(
                error = %e,
                "SIGHUP: the TLS certificate could not be read again; the previous one stays"
            ),
        }
    }
}
