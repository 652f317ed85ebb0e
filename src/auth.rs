//! API clients and their bearer tokens (docs/design.md, Access).
//!
//! A token is `signet_` followed by 32 random bytes in base64url. It is shown once, when created;
//! the store keeps only its SHA-256 (a fast hash is enough: the token has 256 bits of entropy).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::clock::now_ms;
use crate::domain::{
    check_client_name, AuditEvent, AuditRecord, CallerText, ClientRecord, RateLimit, RingName, Role,
};
use crate::random::random_id;
use crate::store::{Store, StoreError};

const TOKEN_PREFIX: &str = "signet_";
/// The first admin, made on an empty store.
const BOOTSTRAP_ADMIN: &str = "bootstrap-admin";

/// An authenticated API client.
#[derive(Clone, Debug)]
pub struct Principal {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub rings: Vec<RingName>,
    /// Its own limit on sign requests; `None`: the server's default.
    pub rate_limit: Option<RateLimit>,
}

impl Principal {
    /// How the audit log names this client.
    pub fn actor(&self) -> String {
        format!("client:{}", self.name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token: send Authorization: Bearer <token>")]
    Missing,
    #[error("invalid or revoked token")]
    Invalid,
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub fn hash_token(token: &str) -> String {
    crate::jose::b64url(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref(),
    )
}

/// How long a looked-up client is trusted without asking the store again: a client revoked on
/// another replica (or by the CLI) is refused everywhere within this time; on the replica that
/// revoked it, at once.
const CLIENT_CACHE_TTL: Duration = Duration::from_secs(1);
/// A bound on the cache, whatever tokens are presented.
const CLIENT_CACHE_MAX: usize = 10_000;

/// API clients: authenticating their bearer tokens, creating, listing and revoking them. Valid
/// tokens are remembered briefly so the signing path does not query the store for every request;
/// invalid tokens are never cached.
pub struct ClientService {
    store: Store,
    cache: RwLock<HashMap<String, (Instant, Arc<Principal>)>>,
}

impl ClientService {
    pub fn new(store: Store) -> ClientService {
        ClientService {
            store,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Finds the live client holding `token`.
    pub async fn authenticate(&self, token: &SecretString) -> Result<Arc<Principal>, AuthError> {
        let token = token.expose_secret();
        if !token.starts_with(TOKEN_PREFIX) {
            return Err(AuthError::Invalid);
        }
        let hash = hash_token(token);
        if let Some((at, principal)) = self.cache.read().expect("client cache poisoned").get(&hash)
        {
            if at.elapsed() < CLIENT_CACHE_TTL {
                return Ok(principal.clone());
            }
        }
        let client = self
            .store
            .client_by_token_hash(&hash)
            .await?
            .ok_or(AuthError::Invalid)?;
        if client.revoked_at.is_some() {
            return Err(AuthError::Invalid);
        }
        let principal = Arc::new(Principal {
            role: client.role,
            id: client.id,
            name: client.name,
            rings: client.rings,
            rate_limit: client.rate_limit,
        });
        let mut cache = self.cache.write().expect("client cache poisoned");
        if cache.len() >= CLIENT_CACHE_MAX {
            cache.clear();
        }
        cache.insert(hash, (Instant::now(), principal.clone()));
        Ok(principal)
    }

    /// Drops every cached client (after a revocation on this replica).
    fn forget_all(&self) {
        self.cache.write().expect("client cache poisoned").clear();
    }

    pub async fn list(&self) -> Result<Vec<ClientRecord>, ClientError> {
        self.store.clients().await.map_err(ClientError::Store)
    }

    pub async fn create(
        &self,
        actor: &str,
        request: NewClient,
    ) -> Result<CreatedClient, ClientError> {
        create_client(&self.store, actor, request).await
    }

    /// Sets the client's limit on sign requests (`None`: the server's default): in force at
    /// once on this replica, within [`CLIENT_CACHE_TTL`] on the others.
    pub async fn set_rate_limit(
        &self,
        actor: &str,
        id: &str,
        limit: Option<RateLimit>,
    ) -> Result<(), ClientError> {
        let record = AuditRecord::new(
            now_ms(),
            actor,
            AuditEvent::ClientRateLimitChanged {
                client_id: id.to_owned(),
                rate_limit: limit,
            },
        );
        let changed = self
            .store
            .set_client_rate_limit(id, limit, &record)
            .await
            .map_err(ClientError::Store)?;
        self.forget_all();
        if changed {
            Ok(())
        } else {
            Err(ClientError::NotFound(CallerText::echoed(id).to_string()))
        }
    }

    /// Gives the bootstrap admin a new token (shown once); the old one is refused at once on
    /// this replica, within [`CLIENT_CACHE_TTL`] on the others.
    pub async fn rotate_bootstrap_token(&self, actor: &str) -> Result<SecretString, ClientError> {
        let clients = self.list().await?;
        let admin = clients
            .iter()
            .find(|c| c.name == BOOTSTRAP_ADMIN && c.revoked_at.is_none())
            .ok_or_else(|| ClientError::NotFound(BOOTSTRAP_ADMIN.into()))?;
        let token = SecretString::from(format!("{TOKEN_PREFIX}{}", random_id(32)));
        let record = AuditRecord::new(
            now_ms(),
            actor,
            AuditEvent::ClientTokenRotated {
                client_id: admin.id.clone(),
            },
        );
        let rotated = self
            .store
            .set_client_token_hash(&admin.id, &hash_token(token.expose_secret()), &record)
            .await
            .map_err(ClientError::Store)?;
        self.forget_all();
        if rotated {
            Ok(token)
        } else {
            Err(ClientError::NotFound(BOOTSTRAP_ADMIN.into()))
        }
    }

    /// Revokes the client `id`: refused at once on this replica, within
    /// [`CLIENT_CACHE_TTL`] on the others.
    pub async fn revoke(&self, actor: &str, id: &str) -> Result<(), ClientError> {
        let record = AuditRecord::new(
            now_ms(),
            actor,
            AuditEvent::ClientRevoked {
                client_id: id.to_owned(),
            },
        );
        let revoked = self
            .store
            .revoke_client(id, now_ms(), &record)
            .await
            .map_err(ClientError::Store)?;
        self.forget_all();
        if revoked {
            Ok(())
        } else {
            Err(ClientError::NotFound(CallerText::echoed(id).to_string()))
        }
    }

    /// On a store with no clients at all, creates the first admin (`bootstrap-admin`). `None`
    /// if the store already has clients (or another replica bootstrapped it first).
    pub async fn bootstrap_admin(&self) -> Result<Option<CreatedClient>, ClientError> {
        if self
            .store
            .count_clients()
            .await
            .map_err(ClientError::Store)?
            > 0
        {
            return Ok(None);
        }
        let request = NewClient {
            name: BOOTSTRAP_ADMIN.into(),
            role: Role::Admin,
            rings: vec![],
            rate_limit: None,
        };
        match self.create("bootstrap", request).await {
            Ok(created) => Ok(Some(created)),
            Err(ClientError::Exists(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Principal {
    pub fn require(&self, roles: &[Role]) -> Result<(), AuthError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(format!(
                "this needs the {} role; client {:?} is {}",
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
                self.name,
                self.role.as_str()
            )))
        }
    }

    /// Whether the client's `rings` name `ring` (an issuer's or an introspector's).
    pub fn holds(&self, ring: &str) -> bool {
        self.rings.iter().any(|r| r.as_str() == ring)
    }

    pub fn require_issuer_of(&self, ring: &str) -> Result<(), AuthError> {
        self.require(&[Role::Issuer])?;
        if self.holds(ring) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(format!(
                "client {:?} may not sign for ring {:?}",
                self.name,
                CallerText::echoed(ring).as_str()
            )))
        }
    }
}

/// `POST /v1/clients`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub rings: Vec<RingName>,
    /// Its limit on sign requests; absent: the server's default.
    pub rate_limit: Option<RateLimit>,
}

/// A new client and its token: the only time the token exists outside the caller's hands.
pub struct CreatedClient {
    pub client: ClientRecord,
    pub token: SecretString,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Invalid(String),
    #[error("a client named {0:?} already exists")]
    Exists(String),
    #[error("no client with id {0:?}")]
    NotFound(String),
    #[error(transparent)]
    Store(StoreError),
}

async fn create_client(
    store: &Store,
    actor: &str,
    request: NewClient,
) -> Result<CreatedClient, ClientError> {
    let name = request.name.as_str();
    check_client_name(name).map_err(ClientError::Invalid)?;
    match (request.role, request.rings.is_empty()) {
        (Role::Issuer | Role::Introspector, true) => {
            return Err(ClientError::Invalid(format!(
                "an {} needs at least one ring in rings",
                request.role.as_str()
            )))
        }
        (Role::Admin | Role::Auditor, false) => {
            return Err(ClientError::Invalid(
                "rings applies only to issuers and introspectors".into(),
            ))
        }
        _ => {}
    }
    for ring in &request.rings {
        if ring.is_audit() {
            return Err(ClientError::Invalid(format!(
                "ring {:?} signs only audit checkpoints",
                ring.as_str()
            )));
        }
        if store
            .ring(ring)
            .await
            .map_err(ClientError::Store)?
            .is_none()
        {
            return Err(ClientError::Invalid(format!(
                "no ring named {:?}",
                ring.as_str()
            )));
        }
    }
    let token = SecretString::from(format!("{TOKEN_PREFIX}{}", random_id(32)));
    let now = now_ms();
    let client = ClientRecord {
        id: random_id(12),
        name: name.to_owned(),
        role: request.role,
        rings: request.rings,
        rate_limit: request.rate_limit,
        token_hash: hash_token(token.expose_secret()),
        created_at: now,
        created_by: actor.to_owned(),
        revoked_at: None,
    };
    let record = AuditRecord::new(
        now,
        actor,
        AuditEvent::ClientCreated {
            client_id: client.id.clone(),
            name: client.name.clone(),
            role: client.role,
            rings: client.rings.clone(),
            rate_limit: client.rate_limit,
        },
    );
    store
        .insert_client(&client, &record)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ClientError::Exists(client.name.clone()),
            e => ClientError::Store(e),
        })?;
    Ok(CreatedClient { client, token })
}
