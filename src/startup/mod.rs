//! Builds the service from its settings and runs it: `Application::build` binds the listener
//! first (port 0 in tests), then `run_until_stopped` serves until a signal stops it.

use std::net::TcpListener;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, RwLock};

use actix_web::{web, App, HttpServer};
use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};

use signet_aws_kms::StartError;
use signet_file::KekError;
use signet_pkcs11::OpenError;

use crate::audit::verify::TrustAnchor;
use crate::audit::{AuditLog, AuditService};
use crate::auth::ClientService;
use crate::clock::now_ms;
use crate::config::Settings;
use crate::domain::{BackendKind, TICK};
use crate::http::{self, Callers};
use crate::metrics::Metrics;
use crate::providers::Providers;
use crate::rings::{RingService, LIFECYCLE};
use crate::services::Services;
use crate::store::{self, Store};
use crate::tasks::{self, Health};
use crate::tokens::TokenService;
use data_dir::{ADMIN_TOKEN_FILE, FILE_BACKEND_DIR};
use tls::Certificates;

pub use data_dir::existing_store;

mod data_dir;
mod tls;

/// Creates the data directory (0700) if it is missing.
fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))
}

/// Opens the backends outside the machine (PKCS#11, AWS KMS): first, so that when one cannot be
/// opened, nothing has been created yet. Closes those already open when a later one fails.
async fn open_remote_backends(settings: &mut Settings) -> anyhow::Result<Providers> {
    let mut providers = Providers::default();
    if let Some(config) = settings.pkcs11.take() {
        let token =
            tokio::task::spawn_blocking(move || signet_pkcs11::Pkcs11Provider::open(config))
                .await?
                .map_err(|e| {
                    let setting = match e {
                        OpenError::Module { .. } => "SIGNET_PKCS11_MODULE",
                        OpenError::NoToken { .. } => "SIGNET_PKCS11_TOKEN_LABEL",
                        OpenError::Pin { .. } => "SIGNET_PKCS11_PIN",
                        OpenError::Call { .. } => "opening the PKCS#11 token",
                    };
                    anyhow::anyhow!("{setting}: {e}")
                })?;
        providers = providers.with(BackendKind::Pkcs11, Arc::new(token));
    }
    if let Some(config) = &settings.aws_kms {
        match signet_aws_kms::AwsKmsProvider::open(config).await {
            Ok(kms) => providers = providers.with(BackendKind::AwsKms, Arc::new(kms)),
            Err(e) => {
                providers.close().await;
                let setting = match e {
                    StartError::NoRegion => "; set AWS_REGION, or region in [aws_kms]",
                    _ => "",
                };
                anyhow::bail!("opening the aws-kms key backend: {e}{setting}");
            }
        }
    }
    Ok(providers)
}

/// Creates the data directory if it is missing, opens the file backend and the store, and
/// starts the audit writer: with `remote`, everything but the HTTP server.
async fn open_local(settings: Settings, remote: Providers) -> anyhow::Result<Services> {
    create_data_dir(&settings.data_dir)?;
    let file_config = signet_file::FileConfig {
        dir: settings.data_dir.join(FILE_BACKEND_DIR),
        kek: settings.file_kek,
    };
    let file = tokio::task::spawn_blocking(move || signet_file::FileProvider::open(file_config))
        .await?
        .map_err(|e| {
            let setting = match e {
                KekError::MissingKey(_) => "; set SIGNET_FILE_KEK or SIGNET_FILE_KEK_FILE",
                KekError::MissingPassphrase(_) => {
                    "; set SIGNET_FILE_PASSPHRASE or SIGNET_FILE_PASSPHRASE_FILE"
                }
                _ => "",
            };
            anyhow::anyhow!("opening the file key backend: {e}{setting}")
        })?;
    let providers = remote.with(BackendKind::File, Arc::new(file));
    let store = Store::connect(&settings.database_url)
        .await
        .with_context(|| {
            format!(
                "opening the store {}",
                store::location(settings.database_url.expose_secret())
            )
        })?;
    let health = Arc::new(Health::default());
    let metrics = Arc::new(Metrics::default());
    // One batch at a time: one connection.
    let log = AuditLog::start(store.audit_connection(), health.clone(), metrics.clone());
    let audit_keys_seen = Arc::new(RwLock::new(TrustAnchor::default()));
    let rings = Arc::new(
        RingService::new(
            store.clone(),
            providers.measured(&metrics),
            log.clone(),
            health,
            audit_keys_seen.clone(),
            metrics.clone(),
        )
        .await?,
    );
    Ok(Services {
        clients: ClientService::new(store.clone()),
        audit: AuditService::new(store.clone(), log, audit_keys_seen),
        tokens: TokenService::new(store, rings.clone(), metrics.clone()).await?,
        rings,
        metrics,
    })
}

/// What the first start does once the services are open (and every start checks): the
/// bootstrap admin and its token file, and the audit ring.
async fn first_start(services: &Services, data_dir: &Path) -> anyhow::Result<()> {
    if let Some(created) = services.clients.bootstrap_admin().await? {
        announce_bootstrap_token(data_dir, &created.token)?;
    }
    services
        .rings
        .ensure_audit_ring()
        .await
        .context("creating the audit ring's key")
}

pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    services: web::Data<Services>,
    callers: web::Data<Callers>,
    /// `None`: plain HTTP.
    certificates: Option<Arc<Certificates>>,
}

impl Application {
    pub async fn build(mut settings: Settings) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(&settings.listen)
            .with_context(|| format!("binding {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        // Read before anything is created: a wrong file stops the start with nothing to undo.
        let certificates = settings.tls.clone().map(Certificates::load).transpose()?;
        let data_dir = settings.data_dir.clone();
        let http_settings = settings.http.clone();
        let callers = web::Data::new(Callers::new(http_settings.clone()));
        let footprint = data_dir::check(&settings)?;
        let remote = open_remote_backends(&mut settings).await?;
        let services = match open_local(settings, remote.clone()).await {
            Ok(services) => web::Data::new(services),
            Err(e) => {
                remote.close().await;
                footprint.remove();
                return Err(e);
            }
        };
        // From here on a failure keeps what was created: the store may hold the first admin's
        // client, and a backend a key the store records.
        if let Err(e) = first_start(&services, &data_dir).await {
            services.close().await;
            return Err(e);
        }
        let state = services.clone();
        let app_callers = callers.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(app_callers.clone())
                .wrap(actix_web::middleware::from_fn(http::gate))
                .wrap(actix_web::middleware::from_fn(http::observe))
                .configure(http::configure)
        })
        // The request head must arrive within the body's deadline too.
        .client_request_timeout(http_settings.body_timeout)
        .keep_alive(http_settings.keep_alive)
        .max_connections(http_settings.max_connections)
        .shutdown_timeout(http_settings.shutdown_timeout.as_secs())
        // `run_until_stopped` handles SIGTERM and SIGINT, to turn unready first.
        .disable_signals();
        let server = if let Some(certificates) = &certificates {
            server.listen_rustls_0_23(listener, certificates.server_config()?)?
        } else {
            tracing::info!("serving plain HTTP: signet expects a TLS-terminating proxy in front (or set --tls-cert and --tls-key)");
            server.listen(listener)?
        }
        .run();
        Ok(Application {
            port,
            server,
            services,
            callers,
            certificates,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn services(&self) -> Arc<Services> {
        self.services.clone().into_inner()
    }

    /// Stops the server from elsewhere (graceful with `stop(true)`).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (or [`Application::handle`]'s stop), advancing key
    /// lifecycles every [`TICK`] meanwhile, and reading the TLS certificate again at each
    /// SIGHUP. On SIGTERM or SIGINT: `/readyz` turns unready and every answer from then on closes
    /// its connection; after the shutdown delay (or a second signal) the listener closes, and
    /// the requests in flight get the shutdown timeout to finish. Then the tick stops and the
    /// service closes (the tallies of refused requests written, the backends released, PKCS#11
    /// finalized), so that no backend call is in flight and every backend is released when this
    /// returns.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (services, callers) = (self.services.clone(), self.callers.clone());
        let health = services.rings.health().clone();
        let signals = tokio::spawn(stop_on_signal(
            self.server.handle(),
            health.clone(),
            self.callers.settings().shutdown_delay,
        ));
        let reloads = self
            .certificates
            .clone()
            .map(|certificates| tokio::spawn(tls::reload_on_sighup(certificates)));
        let notices = {
            let services = services.clone();
            tokio::spawn(async move { services.tokens.follow_notices().await })
        };
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let ticker = tasks::supervise(LIFECYCLE, health, move || {
            let (services, callers) = (services.clone(), callers.clone());
            let mut stopping = stopping.clone();
            async move {
                // The backends' work is cut short when the server stops (`close` then waits
                // for a call in flight)...
                tokio::select! {
                    _ = stopping.wait_for(|stop| *stop) => return,
                    () = report_orphans(&services.rings) => {}
                }
                let mut interval = tokio::time::interval(TICK);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = stopping.wait_for(|stop| *stop) => return,
                        () = async {
                            interval.tick().await;
                            services.rings.tick().await;
                            services.tokens.tick().await;
                        } => {}
                    }
                    // ...but never the writing of the tallies it took from the count.
                    services.audit.write_tallies(Some(now_ms())).await;
                    callers.forget_idle();
                }
            }
        });
        let result = self.server.await;
        signals.abort();
        notices.abort();
        if let Some(reloads) = reloads {
            reloads.abort();
        }
        // Ends the ticker between two steps (the sender lives until here).
        let _ = stop.send(true);
        let _ = ticker.await;
        self.services.close().await;
        result
    }
}

/// Waits for SIGTERM or SIGINT, then turns the server unready, waits for `delay` or another
/// signal, and stops it gracefully.
async fn stop_on_signal(
    server: actix_web::dev::ServerHandle,
    health: Arc<Health>,
    delay: std::time::Duration,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for SIGTERM and SIGINT; stop signet with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    health.begin_shutdown();
    if !delay.is_zero() {
        tracing::info!(
            ?delay,
            "shutting down: unready; serving until the delay ends or another signal comes"
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    tracing::info!("shutting down: no new connections; finishing the requests in flight");
    server.stop(true).await;
}

/// Logs each backend key that no live record names (they are kept: see `orphaned_keys`).
async fn report_orphans(rings: &RingService) {
    match rings.orphaned_keys().await {
        Ok(orphans) => {
            for (backend, id) in orphans {
                tracing::warn!(%backend, key = %id, "the backend holds a key no live record names; signet never uses it: delete it by hand once you have checked (see README, Crash recovery)");
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not check the backends for unrecorded keys"),
    }
}

/// Shows the first admin token once (stdout, not the log) and keeps it in `DIR/admin-token` (0600).
fn announce_bootstrap_token(data_dir: &Path, token: &SecretString) -> anyhow::Result<()> {
    use std::io::Write;
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    // `mode` applies only to a new file: an old one keeps its permissions unless set here.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    writeln!(file, "{}", token.expose_secret())?;
    file.sync_all()?;
    println!(
        "signet: created the bootstrap admin token (shown once; also in {}):\n{}",
        path.display(),
        token.expose_secret()
    );
    Ok(())
}
