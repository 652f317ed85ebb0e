//! The `signet` command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use signet_core::Algorithm;

use crate::api::{ClientInfo, CreatedClientInfo, KeyInfo, KeyList, RingInfo};
use crate::audit::verify::{export_audit_jwks, verify_database, TrustAnchor};
use crate::auth::NewClient;
use crate::config::{Overrides, Settings};
use crate::domain::{
    BackendKind, DayOfMonth, Monthly, Policy, RateLimit, RingName, Role, TimeOfDay, Timing,
};
use crate::rings::NewRing;
use crate::schedule::ScheduleUpdate;
use crate::services::Services;
use crate::startup::{ensure_data_dir, open_services, Application};

#[derive(Parser)]
#[command(
    name = "signet",
    version,
    about = "Signs JWTs with keys that never leave their backend"
)]
pub struct Cli {
    /// A TOML configuration file.
    #[arg(long, global = true, env = "SIGNET_CONFIG")]
    config: Option<PathBuf>,
    /// Where the SQLite store and the file backend's keys live.
    #[arg(long, global = true, env = "SIGNET_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// postgres://... or sqlite://... (default: SQLite in the data directory).
    #[arg(
        long,
        global = true,
        env = "SIGNET_DATABASE_URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the HTTP service.
    Serve {
        /// The address to listen on.
        #[arg(long, env = "SIGNET_LISTEN")]
        listen: Option<String>,
    },
    /// Creates or upgrades the store's schema, then exits.
    Migrate,
    /// Reads the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    #[command(flatten)]
    Service(ServiceCommand),
}

/// The commands that act through the service (the server need not be running).
#[derive(Subcommand)]
enum ServiceCommand {
    /// Manages API clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// The bootstrap admin's token.
    #[command(subcommand)]
    AdminToken(AdminTokenCommand),
    /// Manages key rings.
    #[command(subcommand)]
    Ring(RingCommand),
    /// Starts a rotation of a ring's signing key.
    Rotate {
        ring: RingName,
        /// Activate the new key at once (verifiers with a cached JWKS will reject its tokens
        /// until their cache expires).
        #[arg(long)]
        immediate: bool,
    },
    /// Lists a ring's keys and their states.
    Keys { ring: RingName },
    /// Shows or changes a ring's rotation schedule.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
}

#[derive(Subcommand)]
enum AdminTokenCommand {
    /// Gives the bootstrap admin a new token, printed once, and deletes DATA_DIR/admin-token
    /// (which holds the old one, now refused).
    Rotate,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walks the hash chain and its signed checkpoints; fails naming the first bad record.
    Verify {
        /// Start at this record (default: the first chained record).
        #[arg(long)]
        from: Option<i64>,
        /// The audit ring's JWKS, saved earlier from a store you trusted (`audit export-jwks`):
        /// checkpoints must then be signed by its keys or keys the anchored chain introduced.
        /// Without it, checkpoints are checked against the store's own keys, which proves
        /// nothing against whoever can write the store.
        #[arg(long, value_name = "FILE")]
        trusted_jwks: Option<PathBuf>,
    },
    /// Prints the audit ring's public keys as a JWKS (or writes them to --out): keep it where
    /// the store's writers cannot reach, for `audit verify --trusted-jwks`.
    ExportJwks {
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ScheduleCommand {
    /// Prints the schedule, the scheduler's last outcome and the plan.
    Show { ring: RingName },
    /// Replaces the rule (monthly or every N seconds) and changes the timing given.
    Set(ScheduleSet),
    /// Stops scheduled rotations (keys on their way in still activate).
    Pause { ring: RingName },
    /// Starts scheduled rotations again; a missed one happens at once.
    Resume { ring: RingName },
}

#[derive(Args)]
struct ScheduleSet {
    ring: RingName,
    /// Rotate monthly on this day (29-31: the last day in shorter months).
    #[arg(
        long,
        conflicts_with = "every_seconds",
        required_unless_present = "every_seconds"
    )]
    monthly_day: Option<DayOfMonth>,
    /// The time of day (UTC) of a monthly rotation.
    #[arg(long, default_value = "00:00", requires = "monthly_day")]
    at: TimeOfDay,
    /// Rotate every this many seconds (at least 10).
    #[arg(long)]
    every_seconds: Option<u64>,
    #[arg(long)]
    jwks_max_age: Option<u32>,
    #[arg(long)]
    publish_lead: Option<u32>,
    #[arg(long)]
    max_token_ttl: Option<u32>,
    #[arg(long)]
    retain_retired: Option<u64>,
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Creates a client and prints its token (shown once).
    Create {
        #[arg(long)]
        name: String,
        /// admin, issuer or auditor.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// A ring an issuer may sign for (repeat for several).
        #[arg(long = "ring")]
        rings: Vec<RingName>,
        /// Its limit on sign requests, N per second or N/BURST (default: the server's).
        #[arg(long, value_parser = RateLimit::parse)]
        rate_limit: Option<RateLimit>,
    },
}

#[derive(Subcommand)]
enum RingCommand {
    /// Creates a ring and its first, active key.
    Create(RingCreate),
}

#[derive(Args)]
struct RingCreate {
    name: String,
    /// file, pkcs11 or aws-kms.
    #[arg(long, default_value = "file", value_parser = parse_backend)]
    backend: BackendKind,
    /// ES256, ES384, RS256, PS256 or EdDSA.
    #[arg(long, default_value = "ES256", value_parser = parse_algorithm)]
    algorithm: Algorithm,
    /// RSA modulus size for RS256/PS256 (2048 or 3072).
    #[arg(long)]
    rsa_bits: Option<u32>,
    /// The `iss` of every token.
    #[arg(long)]
    issuer: String,
    /// An allowed `aud` (repeat for several).
    #[arg(long = "audience")]
    audiences: Vec<String>,
    /// The longest token lifetime, in seconds.
    #[arg(long, default_value_t = 900)]
    max_ttl: u32,
    /// Seconds a new key is published before it signs.
    #[arg(long)]
    publish_lead: Option<u32>,
    /// The JWKS Cache-Control max-age, in seconds.
    #[arg(long)]
    jwks_max_age: Option<u32>,
    /// List the ring's keys in the combined /.well-known/jwks.json too.
    #[arg(long)]
    combined_jwks: bool,
}

fn parse_role(role: &str) -> Result<Role, String> {
    Role::parse(role).ok_or_else(|| "one of admin, issuer, auditor".into())
}

fn parse_backend(backend: &str) -> Result<BackendKind, String> {
    BackendKind::parse(backend).ok_or_else(|| "one of file, pkcs11, aws-kms".into())
}

fn parse_algorithm(algorithm: &str) -> Result<Algorithm, String> {
    Algorithm::parse(algorithm).ok_or_else(|| "one of ES256, ES384, RS256, PS256, EdDSA".into())
}

fn print(value: &impl Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON prints")
    );
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut overrides = Overrides {
        config: cli.config,
        data_dir: cli.data_dir,
        database_url: cli.database_url.map(SecretString::from),
        ..Overrides::default()
    };
    match cli.command {
        Command::Serve { listen } => {
            overrides.listen = listen;
            let settings = Settings::load(overrides)?;
            let store = settings
                .database_url
                .expose_secret()
                .split(':')
                .next()
                .unwrap_or_default()
                .to_owned();
            tracing::info!(
                listen = %settings.listen,
                data_dir = %settings.data_dir.display(),
                %store,
                file_kek = if settings.file_kek.is_some() { "configured" } else { "generated master.key" },
                pkcs11_token = settings.pkcs11.as_ref().map(|p| p.token_label.as_str()),
                aws_kms = settings.aws_kms.is_some(),
                "starting"
            );
            let app = Application::build(settings).await?;
            tracing::info!(port = app.port(), "signet is serving");
            app.run_until_stopped().await?;
        }
        Command::Migrate => {
            let settings = Settings::load(overrides)?;
            ensure_data_dir(&settings)?;
            crate::store::Store::connect(&settings.database_url).await?;
            println!("the store is up to date");
        }
        Command::Audit(AuditCommand::Verify { from, trusted_jwks }) => {
            let settings = Settings::load(overrides)?;
            let anchor = match &trusted_jwks {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    let jwks = serde_json::from_str(&text)
                        .with_context(|| format!("{} is not JSON", path.display()))?;
                    Some(
                        TrustAnchor::from_jwks(&jwks)
                            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
                    )
                }
                None => None,
            };
            let report = verify_database(&settings.database_url, from, anchor.as_ref()).await?;
            print(&report);
            if let Some(problem) = report.problem {
                anyhow::bail!(
                    "the audit log does not verify at record {}: {}",
                    problem.seq,
                    problem.reason
                );
            }
        }
        Command::Audit(AuditCommand::ExportJwks { out }) => {
            let settings = Settings::load(overrides)?;
            let jwks = export_audit_jwks(&settings.database_url).await?;
            let text = serde_json::to_string_pretty(&jwks)?;
            match out {
                Some(path) => std::fs::write(&path, text + "\n")
                    .with_context(|| format!("writing {}", path.display()))?,
                None => println!("{text}"),
            }
        }
        Command::Service(command) => {
            let settings = Settings::load(overrides)?;
            let data_dir = settings.data_dir.clone();
            let services = open_services(settings).await?;
            let result = run_on_services(&services, &data_dir, command).await;
            // Even after a failure: no backend may be left open at exit.
            services.close().await;
            result?;
        }
    }
    Ok(())
}

/// The commands that act through the services (the server need not be running).
async fn run_on_services(
    services: &Services,
    data_dir: &std::path::Path,
    command: ServiceCommand,
) -> anyhow::Result<()> {
    let actor = "cli";
    let rings = &services.rings;
    match command {
        ServiceCommand::AdminToken(AdminTokenCommand::Rotate) => {
            let token = services.clients.rotate_bootstrap_token(actor).await?;
            let file = data_dir.join("admin-token");
            match std::fs::remove_file(&file) {
                Ok(()) => eprintln!("signet: deleted {} (it held the old token)", file.display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("deleting {}", file.display()));
                }
            }
            println!("{}", token.expose_secret());
        }
        ServiceCommand::Client(ClientCommand::Create {
            name,
            role,
            rings,
            rate_limit,
        }) => {
            let request = NewClient {
                name,
                role,
                rings,
                rate_limit,
            };
            let created = services.clients.create(actor, request).await?;
            print(&CreatedClientInfo {
                client: ClientInfo::from(&created.client),
                token: created.token.expose_secret().to_owned(),
            });
        }
        ServiceCommand::Ring(RingCommand::Create(args)) => {
            let defaults = Timing::default();
            let request = NewRing {
                name: args.name,
                backend: args.backend,
                algorithm: args.algorithm,
                rsa_bits: args.rsa_bits,
                policy: Policy {
                    audiences: args.audiences,
                    max_ttl_seconds: args.max_ttl,
                    ..Policy::new(args.issuer)
                },
                timing: Timing {
                    publish_lead_seconds: args
                        .publish_lead
                        .unwrap_or(defaults.publish_lead_seconds),
                    jwks_max_age_seconds: args
                        .jwks_max_age
                        .unwrap_or(defaults.jwks_max_age_seconds),
                    ..defaults
                },
                combined_jwks: args.combined_jwks,
            };
            let (ring, key) = rings.create_ring(actor, request).await?;
            print(&RingInfo::new(&ring, key.kid.as_ref()));
        }
        ServiceCommand::Rotate { ring, immediate } => {
            print(&KeyInfo::from(
                &rings.rotate(actor, &ring, immediate).await?,
            ));
        }
        ServiceCommand::Keys { ring } => {
            let (_, keys) = rings.ring(&ring).await?;
            print(&KeyList::new(&keys));
        }
        ServiceCommand::Schedule(command) => {
            print(&match command {
                ScheduleCommand::Show { ring } => rings.schedule(&ring).await?,
                ScheduleCommand::Pause { ring } => rings.pause_schedule(actor, &ring, true).await?,
                ScheduleCommand::Resume { ring } => {
                    rings.pause_schedule(actor, &ring, false).await?
                }
                ScheduleCommand::Set(args) => {
                    let update = ScheduleUpdate {
                        monthly: args.monthly_day.map(|day| Monthly { day, at: args.at }),
                        every_seconds: args.every_seconds,
                        jwks_max_age_seconds: args.jwks_max_age,
                        publish_lead_seconds: args.publish_lead,
                        max_token_ttl_seconds: args.max_token_ttl,
                        retain_retired_seconds: args.retain_retired,
                        ..ScheduleUpdate::default()
                    };
                    rings.set_schedule(actor, &args.ring, update).await?
                }
            });
        }
    }
    Ok(())
}
