//! The `signet` command line. `serve`, `migrate`, `audit` and `admin-token` work on the store
//! itself; every other command is a client of a running signet's HTTP API ([`remote`]).

mod remote;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};

use crate::audit::verify::{export_audit_jwks, verify_database, TrustAnchor};
use crate::auth::ClientService;
use crate::config::{Overrides, Settings};
use crate::startup::{existing_store, Application};
use crate::store::Store;
use remote::{Call, Remote};

/// Shown under every command that talks to a running signet.
const REMOTE_HELP: &str = "Talks to the signet at SIGNET_ADDR (default http://127.0.0.1:8080) \
with the client token in SIGNET_TOKEN (default: the contents of $SIGNET_DATA_DIR/admin-token, \
./signet-data/admin-token, when there is such a file).";

#[derive(Parser)]
#[command(
    name = "signet",
    version,
    about = "Signs JWTs with keys that never leave their backend",
    after_help = "serve, migrate, audit and admin-token work on the store itself (--data-dir, \
--database-url). Every other command talks to a running signet over its HTTP API: SIGNET_ADDR \
(default http://127.0.0.1:8080) and SIGNET_TOKEN (default: the contents of \
./signet-data/admin-token when there is such a file)."
)]
pub struct Cli {
    /// How log lines are written to standard error: text for people, json (one object per
    /// line) for log pipelines.
    #[arg(long, global = true, env = "SIGNET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Cli {
    /// Sends the log to standard error in the chosen format, filtered by `SIGNET_LOG` (default
    /// `info`). Lines are written by a thread of their own, so a slow standard error never holds
    /// a request; keep the guard until exit, when it writes the lines still queued.
    pub fn init_logging(&self) -> tracing_appender::non_blocking::WorkerGuard {
        let filter = tracing_subscriber::EnvFilter::try_from_env("SIGNET_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
        let logger = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer);
        match self.log_format {
            LogFormat::Text => logger.init(),
            LogFormat::Json => logger.json().init(),
        }
        guard
    }
}

#[derive(Subcommand)]
enum Command {
    /// Runs the HTTP service; the first start creates the data directory and the store.
    Serve(Serve),
    /// Upgrades an existing store's schema (or creates it in an empty Postgres database), then
    /// exits.
    Migrate(StoreArgs),
    /// Checks the audit log, reading the store itself.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The bootstrap admin's token, changed in the store itself (for when no admin token works).
    #[command(subcommand)]
    AdminToken(AdminTokenCommand),
    /// Prints the API's OpenAPI 3.1 document (as served at /v1/openapi.json; the repository keeps
    /// it as docs/openapi.json).
    Openapi,
    #[command(flatten)]
    Remote(RemoteCommand),
}

/// Where the store is: the settings of the commands that open it.
#[derive(Args)]
struct StoreArgs {
    /// A TOML configuration file (see the README, Configuration).
    #[arg(long, env = "SIGNET_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the SQLite store, the file backend's keys and the admin token live [default:
    /// ./signet-data, or data_dir in the configuration file].
    #[arg(long, env = "SIGNET_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// postgres://... or sqlite://... [default: sqlite://DIR/signet.db]. A URL with a password
    /// belongs in the environment or SIGNET_DATABASE_URL_FILE, not on the command line.
    #[arg(
        long,
        env = "SIGNET_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    database_url: Option<String>,
}

impl StoreArgs {
    fn settings(self, serve: Option<ServeArgs>) -> anyhow::Result<Settings> {
        let ServeArgs {
            listen,
            tls_cert,
            tls_key,
        } = serve.unwrap_or_default();
        Settings::load(Overrides {
            config: self.config,
            listen,
            data_dir: self.data_dir,
            database_url: self.database_url.map(SecretString::from),
            tls_cert,
            tls_key,
        })
    }
}

#[derive(Args)]
struct Serve {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    serve: ServeArgs,
}

/// The listener's settings, which only `serve` takes.
#[derive(Args, Default)]
struct ServeArgs {
    /// The address to listen on [default: 127.0.0.1:8080, or listen in the configuration file].
    #[arg(long, env = "SIGNET_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM, leaf first), read again on SIGHUP; with
    /// --tls-key [default: [tls] cert_file in the configuration file, else plain HTTP].
    #[arg(long, env = "SIGNET_TLS_CERT", value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "SIGNET_TLS_KEY", value_name = "PEM")]
    tls_key: Option<PathBuf>,
}

#[derive(Subcommand)]
enum AdminTokenCommand {
    /// Gives the bootstrap admin a new token, printed once, and deletes DIR/admin-token (which
    /// holds the old one, now refused).
    Rotate(StoreArgs),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walks the hash chain and its signed checkpoints; fails naming the first bad record.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// Start at this record [default: the first chained record].
        #[arg(long, value_name = "SEQ")]
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
        #[command(flatten)]
        store: StoreArgs,
        /// Write the JWKS to this file instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// The commands that talk to a running signet.
#[derive(Subcommand)]
enum RemoteCommand {
    /// Creates, lists, shows and changes key rings.
    #[command(subcommand, after_help = REMOTE_HELP)]
    Ring(RingCommand),
    /// Starts a rotation of a ring's signing key.
    #[command(after_help = REMOTE_HELP)]
    Rotate {
        /// The ring.
        ring: String,
        /// Activate the new key at once (verifiers with a cached JWKS will reject its tokens
        /// until their cache expires).
        #[arg(long)]
        immediate: bool,
    },
    /// Lists a ring's keys and their states.
    #[command(after_help = REMOTE_HELP)]
    Keys {
        /// The ring.
        ring: String,
    },
    /// Revokes a key.
    #[command(subcommand, after_help = REMOTE_HELP)]
    Key(KeyCommand),
    /// Shows or changes a ring's rotation schedule.
    #[command(subcommand, after_help = REMOTE_HELP)]
    Schedule(ScheduleCommand),
    /// Creates, lists, rotates and revokes API clients.
    #[command(subcommand, after_help = REMOTE_HELP)]
    Client(ClientCommand),
    /// Signs a token with a ring's active key (needs an issuer's token for the ring).
    #[command(after_help = REMOTE_HELP)]
    Sign {
        /// The ring.
        ring: String,
        /// The claims, as a JSON object; the server adds iss, iat, exp and jti.
        #[arg(long, default_value = "{}", value_name = "JSON")]
        claims: String,
        /// The token's lifetime in seconds [default: the ring's max_ttl].
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<u32>,
        /// Set nbf to the issue time too.
        #[arg(long)]
        nbf: bool,
    },
    /// Verifies a token against every key signet publishes (no token needed).
    #[command(after_help = REMOTE_HELP)]
    Verify {
        /// The compact JWS.
        token: String,
        /// Require this value in the token's aud.
        #[arg(long)]
        audience: Option<String>,
    },
    /// Revokes tokens, or shows the state of one.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Revokes a token (give the token, or --ring and --jti), or every token of a subject issued
    /// before a time (--ring, --sub and --issued-before); needs an admin's token or the ring's
    /// issuer's.
    #[command(after_help = REMOTE_HELP)]
    Revoke {
        /// The compact JWS to revoke.
        #[arg(conflicts_with_all = ["ring", "jti", "sub", "issued_before"])]
        token: Option<String>,
        /// The ring whose token(s) to revoke.
        #[arg(long)]
        ring: Option<String>,
        /// The jti of the token to revoke.
        #[arg(long, requires = "ring", conflicts_with = "sub")]
        jti: Option<String>,
        /// The subject whose tokens to revoke.
        #[arg(long, requires_all = ["ring", "issued_before"])]
        sub: Option<String>,
        /// RFC 3339: the subject's tokens issued before this are revoked.
        #[arg(long, requires = "sub")]
        issued_before: Option<String>,
    },
    /// Shows whether a token is active, and its claims (RFC 7662 introspection); needs an
    /// admin's token or an introspector's of the token's ring.
    #[command(after_help = REMOTE_HELP)]
    Introspect {
        /// The compact JWS.
        token: String,
    },
}

#[derive(Subcommand)]
enum RingCommand {
    /// Creates a ring and its first, active key.
    Create(Box<RingCreate>),
    /// Lists the rings.
    List,
    /// Shows a ring: its policy, timing and keys.
    Show {
        /// The ring.
        ring: String,
    },
    /// Changes whether a ring's keys are listed in the combined /.well-known/jwks.json.
    Update {
        /// The ring.
        ring: String,
        /// List its keys in the combined JWKS (true) or only in its own (false).
        #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
        combined_jwks: bool,
    },
}

/// The timing settings `ring create` and `schedule set` share: unset ones keep their value, or
/// take the default on a new ring.
#[derive(Args)]
struct TimingArgs {
    /// Seconds a new key is published before it signs [new rings: 600].
    #[arg(long, value_name = "SECONDS")]
    publish_lead: Option<u32>,
    /// The JWKS Cache-Control max-age, in seconds [new rings: 300].
    #[arg(long, value_name = "SECONDS")]
    jwks_max_age: Option<u32>,
    /// Slack for clock skew, in seconds [new rings: 60].
    #[arg(long, value_name = "SECONDS")]
    leeway: Option<u32>,
    /// Seconds a retired or revoked key is kept in its backend before it is destroyed [new
    /// rings: 7776000, 90 days].
    #[arg(long, value_name = "SECONDS")]
    retain_retired: Option<u64>,
}

impl TimingArgs {
    /// The settings given, under the API's names.
    fn fields(&self) -> Map<String, Value> {
        let mut fields = Map::new();
        let mut put = |name: &str, value: Option<Value>| {
            if let Some(value) = value {
                fields.insert(name.to_owned(), value);
            }
        };
        put("publish_lead_seconds", self.publish_lead.map(Value::from));
        put("jwks_max_age_seconds", self.jwks_max_age.map(Value::from));
        put("leeway_seconds", self.leeway.map(Value::from));
        put(
            "retain_retired_seconds",
            self.retain_retired.map(Value::from),
        );
        fields
    }
}

#[derive(Args)]
struct RingCreate {
    /// The ring's name: lowercase letters, digits, '-' and '_'.
    name: String,
    /// The `iss` of every token.
    #[arg(long)]
    issuer: String,
    /// An allowed `aud` (repeat for several) [default: any].
    #[arg(long = "audience", value_name = "AUDIENCE")]
    audiences: Vec<String>,
    /// Where its keys live.
    #[arg(long, default_value = "file", value_parser = ["file", "pkcs11", "aws-kms"])]
    backend: String,
    /// The signing algorithm (EdDSA is taken as Ed25519, its RFC 9864 name), or an encryption
    /// ring's key management (ECDH-ES, ECDH-ES+A256KW, RSA-OAEP-256, RSA-OAEP).
    #[arg(long, default_value = "ES256", value_parser = ["ES256", "ES384", "RS256", "PS256", "Ed25519", "EdDSA", "ECDH-ES", "ECDH-ES+A256KW", "RSA-OAEP-256", "RSA-OAEP"])]
    algorithm: String,
    /// An encryption ring's content encryption [default: A256GCM].
    #[arg(long, value_parser = ["A256GCM", "A128GCM"])]
    encryption: Option<String>,
    /// An ECDH-ES ring's curve [default: P-256].
    #[arg(long, value_parser = ["P-256", "P-384"])]
    curve: Option<String>,
    /// RSA modulus size for RS256/PS256/RSA-OAEP(-256) (2048 or 3072) [default: 2048].
    #[arg(long, value_name = "BITS")]
    rsa_bits: Option<u32>,
    /// The longest token lifetime, in seconds [new rings: 900].
    #[arg(long, value_name = "SECONDS")]
    max_ttl: Option<u32>,
    #[command(flatten)]
    timing: TimingArgs,
    /// List the ring's keys in the combined /.well-known/jwks.json too.
    #[arg(long)]
    combined_jwks: bool,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Revokes a key at once: it leaves the JWKS and never signs again; if it was active, a new
    /// key takes over.
    Revoke {
        /// The key's kid.
        #[arg(allow_hyphen_values = true)]
        kid: String,
        /// Why, for the audit log.
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Subcommand)]
enum ScheduleCommand {
    /// Prints the schedule, the scheduler's last outcome and the plan.
    Show {
        /// The ring.
        ring: String,
    },
    /// Changes the rule (monthly or every N seconds) and the timing given; what is not given
    /// stays as it is.
    Set(ScheduleSet),
    /// Stops scheduled rotations (keys on their way in still activate).
    Pause {
        /// The ring.
        ring: String,
    },
    /// Starts scheduled rotations again; a missed one happens at once.
    Resume {
        /// The ring.
        ring: String,
    },
}

#[derive(Args)]
struct ScheduleSet {
    /// The ring.
    ring: String,
    /// Rotate monthly on this day (29-31: the last day in shorter months).
    #[arg(long, value_name = "DAY", conflicts_with = "every_seconds")]
    monthly_day: Option<u8>,
    /// The time of day (UTC) of a monthly rotation.
    #[arg(
        long,
        default_value = "00:00",
        value_name = "HH:MM",
        requires = "monthly_day"
    )]
    at: String,
    /// Rotate every this many seconds (at least 10).
    #[arg(long, value_name = "SECONDS")]
    every_seconds: Option<u64>,
    /// The longest token lifetime, in seconds [new rings: 900].
    #[arg(long, value_name = "SECONDS")]
    max_ttl: Option<u32>,
    #[command(flatten)]
    timing: TimingArgs,
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Creates a client and prints its token (shown once).
    Create {
        /// A name for people; unique.
        #[arg(long)]
        name: String,
        /// What it may do.
        #[arg(long, value_parser = ["admin", "issuer", "auditor", "introspector", "decryptor"])]
        role: String,
        /// A ring an issuer may sign for, an introspector read, or a decryptor decrypt for
        /// (repeat for several).
        #[arg(long = "ring", value_name = "RING")]
        rings: Vec<String>,
        /// Its limit on sign requests, N per second or N/BURST [default: the server's].
        #[arg(long, value_name = "N[/BURST]", value_parser = crate::domain::RateLimit::parse)]
        rate_limit: Option<crate::domain::RateLimit>,
        /// When its tokens stop working, RFC 3339 (at most 10 years ahead) [default: never].
        #[arg(long, value_name = "TIME")]
        expires_at: Option<String>,
        /// A JSON object kept with the client and shown, never interpreted.
        #[arg(long, value_name = "JSON", value_parser = json_object)]
        metadata: Option<Value>,
        /// An issuer's bound claims, a JSON object: every token it signs carries each with
        /// exactly this value.
        #[arg(long, value_name = "JSON", value_parser = json_object)]
        bound_claims: Option<Value>,
    },
    /// Gives a client a new token, printed once; the old one keeps working for the grace.
    Rotate {
        /// The client's id.
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// How long the old token keeps working, in seconds (0 to 604800) [default: 3600].
        #[arg(long, value_name = "SECONDS")]
        grace: Option<u32>,
    },
    /// Lists the clients (never their tokens).
    List,
    /// Revokes a client: its token is refused from now on.
    Revoke {
        /// The client's id.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Sets a client's limit on sign requests.
    RateLimit {
        /// The client's id.
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// N per second or N/BURST.
        #[arg(
            value_name = "N[/BURST]",
            value_parser = crate::domain::RateLimit::parse,
            required_unless_present = "default",
            conflicts_with = "default"
        )]
        limit: Option<crate::domain::RateLimit>,
        /// Use the server's default instead.
        #[arg(long)]
        default: bool,
    },
}

/// A command-line argument that must be a JSON object.
fn json_object(text: &str) -> Result<Value, String> {
    serde_json::from_str(text)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| "expected a JSON object, such as '{\"team\": \"payments\"}'".into())
}

fn print(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON prints")
    );
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(Serve { store, serve: args }) => serve(store.settings(Some(args))?).await,
        Command::Migrate(store) => {
            let settings = store.settings(None)?;
            existing_store(&settings)?;
            Store::connect(&settings.database_url).await?;
            println!("the store is up to date");
            Ok(())
        }
        Command::Audit(command) => audit(command).await,
        Command::Openapi => {
            print!("{}", crate::http::openapi_document());
            Ok(())
        }
        Command::AdminToken(AdminTokenCommand::Rotate(store)) => {
            let settings = store.settings(None)?;
            existing_store(&settings)?;
            let store = Store::connect(&settings.database_url).await?;
            let token = ClientService::new(store)
                .rotate_bootstrap_token("cli")
                .await?;
            let file = settings.data_dir.join("admin-token");
            match std::fs::remove_file(&file) {
                Ok(()) => eprintln!("signet: deleted {} (it held the old token)", file.display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("deleting {}", file.display())),
            }
            println!("{}", token.expose_secret());
            Ok(())
        }
        Command::Remote(command) => {
            let remote = Remote::from_env()?;
            if let Some(answer) = remote.send(call(command)?).await? {
                print(&answer);
            }
            Ok(())
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
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
    Ok(())
}

async fn audit(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify {
            store,
            from,
            trusted_jwks,
        } => {
            let settings = store.settings(None)?;
            existing_store(&settings)?;
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
            print(&serde_json::to_value(&report)?);
            if let Some(problem) = report.problem {
                anyhow::bail!(
                    "the audit log does not verify at record {}: {}",
                    problem.seq,
                    problem.reason
                );
            }
        }
        AuditCommand::ExportJwks { store, out } => {
            let settings = store.settings(None)?;
            existing_store(&settings)?;
            let jwks = export_audit_jwks(&settings.database_url).await?;
            let text = serde_json::to_string_pretty(&jwks)?;
            match out {
                Some(path) => std::fs::write(&path, text + "\n")
                    .with_context(|| format!("writing {}", path.display()))?,
                None => println!("{text}"),
            }
        }
    }
    Ok(())
}

/// The API request a command makes.
fn call(command: RemoteCommand) -> anyhow::Result<Call> {
    Ok(match command {
        RemoteCommand::Ring(RingCommand::Create(args)) => {
            let args = *args;
            let mut policy = json!({"issuer": args.issuer, "audiences": args.audiences});
            if let Some(max_ttl) = args.max_ttl {
                policy["max_ttl_seconds"] = json!(max_ttl);
            }
            let mut body = json!({
                "name": args.name,
                "backend": args.backend,
                "algorithm": args.algorithm,
                "policy": policy,
                "timing": args.timing.fields(),
                "combined_jwks": args.combined_jwks,
            });
            if let Some(bits) = args.rsa_bits {
                body["rsa_bits"] = json!(bits);
            }
            if let Some(encryption) = args.encryption {
                body["encryption"] = json!(encryption);
            }
            if let Some(curve) = args.curve {
                body["curve"] = json!(curve);
            }
            Call::new(Method::POST, &["v1", "rings"], Some(body))
        }
        RemoteCommand::Ring(RingCommand::List) => Call::get(&["v1", "rings"]),
        RemoteCommand::Ring(RingCommand::Show { ring }) => Call::get(&["v1", "rings", &ring]),
        RemoteCommand::Ring(RingCommand::Update {
            ring,
            combined_jwks,
        }) => Call::new(
            Method::PATCH,
            &["v1", "rings", &ring],
            Some(json!({"combined_jwks": combined_jwks})),
        ),
        RemoteCommand::Rotate { ring, immediate } => Call::new(
            Method::POST,
            &["v1", "rings", &ring, "rotate"],
            Some(json!({"immediate": immediate})),
        ),
        RemoteCommand::Keys { ring } => Call::get(&["v1", "rings", &ring, "keys"]),
        RemoteCommand::Key(KeyCommand::Revoke { kid, reason }) => {
            let body = reason.map_or_else(|| json!({}), |reason| json!({"reason": reason}));
            Call::new(Method::POST, &["v1", "keys", &kid, "revoke"], Some(body))
        }
        RemoteCommand::Schedule(command) => schedule_call(command),
        RemoteCommand::Client(command) => client_call(command),
        RemoteCommand::Sign {
            ring,
            claims,
            ttl,
            nbf,
        } => {
            let claims: Value = serde_json::from_str(&claims)
                .ok()
                .filter(Value::is_object)
                .context("--claims must be a JSON object, such as '{\"sub\": \"user-1\"}'")?;
            let mut body = json!({"claims": claims, "nbf": nbf});
            if let Some(ttl) = ttl {
                body["ttl_seconds"] = json!(ttl);
            }
            Call::new(Method::POST, &["v1", "rings", &ring, "sign"], Some(body))
        }
        RemoteCommand::Verify { token, audience } => {
            let mut body = json!({"token": token});
            if let Some(audience) = audience {
                body["audience"] = json!(audience);
            }
            Call::new(Method::POST, &["v1", "verify"], Some(body))
        }
        RemoteCommand::Token(TokenCommand::Revoke {
            token,
            ring,
            jti,
            sub,
            issued_before,
        }) => {
            let fields = [
                ("token", token),
                ("ring", ring),
                ("jti", jti),
                ("sub", sub),
                ("issued_before", issued_before),
            ];
            let body: Map<String, Value> = fields
                .into_iter()
                .filter_map(|(name, value)| Some((name.to_owned(), Value::String(value?))))
                .collect();
            Call::new(
                Method::POST,
                &["v1", "tokens", "revoke"],
                Some(Value::Object(body)),
            )
        }
        RemoteCommand::Token(TokenCommand::Introspect { token }) => Call::new(
            Method::POST,
            &["v1", "introspect"],
            Some(json!({"token": token})),
        ),
    })
}

fn schedule_call(command: ScheduleCommand) -> Call {
    match command {
        ScheduleCommand::Show { ring } => Call::get(&["v1", "rings", &ring, "schedule"]),
        ScheduleCommand::Pause { ring } => Call::new(
            Method::POST,
            &["v1", "rings", &ring, "schedule", "pause"],
            None,
        ),
        ScheduleCommand::Resume { ring } => Call::new(
            Method::POST,
            &["v1", "rings", &ring, "schedule", "resume"],
            None,
        ),
        ScheduleCommand::Set(args) => {
            let mut body = args.timing.fields();
            if let Some(day) = args.monthly_day {
                body.insert("monthly".into(), json!({"day": day, "at": args.at}));
            }
            if let Some(seconds) = args.every_seconds {
                body.insert("every_seconds".into(), json!(seconds));
            }
            if let Some(max_ttl) = args.max_ttl {
                body.insert("max_token_ttl_seconds".into(), json!(max_ttl));
            }
            Call::new(
                Method::PUT,
                &["v1", "rings", &args.ring, "schedule"],
                Some(Value::Object(body)),
            )
        }
    }
}

fn client_call(command: ClientCommand) -> Call {
    match command {
        ClientCommand::Create {
            name,
            role,
            rings,
            rate_limit,
            expires_at,
            metadata,
            bound_claims,
        } => {
            let mut body =
                json!({"name": name, "role": role, "rings": rings, "rate_limit": rate_limit});
            for (field, value) in [
                ("expires_at", expires_at.map(Value::String)),
                ("metadata", metadata),
                ("bound_claims", bound_claims),
            ] {
                if let Some(value) = value {
                    body[field] = value;
                }
            }
            Call::new(Method::POST, &["v1", "clients"], Some(body))
        }
        ClientCommand::Rotate { id, grace } => {
            let body = grace.map_or_else(|| json!({}), |grace| json!({"grace_seconds": grace}));
            Call::new(Method::POST, &["v1", "clients", &id, "rotate"], Some(body))
        }
        ClientCommand::List => Call::get(&["v1", "clients"]),
        ClientCommand::Revoke { id } => Call::new(Method::DELETE, &["v1", "clients", &id], None),
        ClientCommand::RateLimit { id, limit, .. } => Call::new(
            Method::PUT,
            &["v1", "clients", &id, "rate-limit"],
            Some(json!({ "rate_limit": limit })),
        ),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    /// Client ids and kids are base64url: one may start with '-'.
    #[test]
    fn ids_and_kids_may_start_with_a_hyphen() {
        for args in [
            &["signet", "client", "revoke", "-u5x"][..],
            &["signet", "client", "rotate", "-u5x", "--grace", "0"],
            &["signet", "client", "rate-limit", "-u5x", "10/20"],
            &["signet", "client", "rate-limit", "-u5x", "--default"],
            &["signet", "key", "revoke", "-Jq0", "--reason", "lost"],
        ] {
            assert!(Cli::try_parse_from(args).is_ok(), "{args:?}");
        }
    }
}
