//! API clients and their bearer tokens (docs/design.md, Access).
//!
//! A token is `signet_` followed by 32 random bytes in base64url. It is shown once, when created;
//! the store keeps only its SHA-256 (a fast hash is enough: the token has 256 bits of entropy).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use crate::clock::now_ms;
use crate::domain::{
    check_client_name, client_expiry, AuditEvent, AuditRecord, BoundClaims, CallerText,
    ClientMetadata, ClientRecord, ErrorCode, Grace, RateLimit, RingName, Role, UnixMillis,
    Violation,
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
    /// Claims every token it signs carries with exactly these values.
    pub bound_claims: BoundClaims,
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

/// A valid token remembered: when it was looked up, its client, and until when the token is
/// valid (the client's `expires_at`, or the end of a rotated-out token's grace), checked against
/// the time of every request.
struct Cached {
    at: Instant,
    principal: Arc<Principal>,
    until: Option<UnixMillis>,
}

impl Cached {
    fn usable(&self, now: UnixMillis) -> bool {
        self.at.elapsed() < CLIENT_CACHE_TTL && self.until.is_none_or(|until| now < until)
    }
}

/// Until when `client` accepts the token hashed `hash`: its `expires_at`, and for the token its
/// last rotation replaced the end of the grace too; `Err` if the token is not accepted now.
fn token_valid_until(
    client: &ClientRecord,
    hash: &str,
    now: UnixMillis,
) -> Result<Option<UnixMillis>, AuthError> {
    if client.revoked_at.is_some() {
        return Err(AuthError::Invalid);
    }
    let grace = if client.token_hash == hash {
        None
    } else {
        Some(client.previous_token_expires_at.unwrap_or_default())
    };
    let until = [client.expires_at, grace].into_iter().flatten().min();
    if until.is_some_and(|until| now >= until) {
        return Err(AuthError::Invalid);
    }
    Ok(until)
}

/// API clients: authenticating their bearer tokens, creating, listing, rotating and revoking
/// them. Valid tokens are remembered briefly so the signing path does not query the store for
/// every request; invalid tokens are never cached.
pub struct ClientService {
    store: Store,
    cache: RwLock<HashMap<String, Cached>>,
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
        if let Some(cached) = self.cache.read().expect("client cache poisoned").get(&hash) {
            if cached.usable(now_ms()) {
                return Ok(cached.principal.clone());
            }
        }
        let client = self
            .store
            .client_by_token_hash(&hash)
            .await?
            .ok_or(AuthError::Invalid)?;
        let until = token_valid_until(&client, &hash, now_ms())?;
        let principal = Arc::new(Principal {
            role: client.role,
            id: client.id,
            name: client.name,
            rings: client.rings,
            rate_limit: client.rate_limit,
            bound_claims: client.bound_claims,
        });
        let mut cache = self.cache.write().expect("client cache poisoned");
        if cache.len() >= CLIENT_CACHE_MAX {
            cache.clear();
        }
        cache.insert(
            hash,
            Cached {
                at: Instant::now(),
                principal: principal.clone(),
                until,
            },
        );
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

    /// Gives the client `id` a new token (shown once). The old one is accepted `grace` more,
    /// then refused; with no grace, at once on this replica and within [`CLIENT_CACHE_TTL`] on
    /// the others. Only the token replaced last is kept.
    pub async fn rotate(
        &self,
        actor: &str,
        id: &str,
        grace: Grace,
    ) -> Result<CreatedClient, ClientError> {
        let not_found = || ClientError::NotFound(CallerText::echoed(id).to_string());
        let client = self
            .store
            .client(id)
            .await
            .map_err(ClientError::Store)?
            .ok_or_else(not_found)?;
        if client.revoked_at.is_some() {
            return Err(ClientError::Revoked(client.id));
        }
        let token = SecretString::from(format!("{TOKEN_PREFIX}{}", random_id(32)));
        let now = now_ms();
        let record = AuditRecord::new(
            now,
            actor,
            AuditEvent::ClientTokenRotated {
                client_id: client.id.clone(),
                grace_seconds: grace.seconds(),
            },
        );
        let previous_until = now.plus_ms(i64::from(grace.seconds()) * 1000);
        let hash = hash_token(token.expose_secret());
        let rotated = self
            .store
            .rotate_client_token(&client.id, &hash, previous_until, &record)
            .await
            .map_err(ClientError::Store)?;
        self.forget_all();
        if !rotated {
            // Revoked since it was read.
            return Err(ClientError::Revoked(client.id));
        }
        Ok(CreatedClient {
            client: ClientRecord {
                previous_token_hash: Some(client.token_hash),
                previous_token_expires_at: Some(previous_until),
                token_hash: hash,
                ..client
            },
            token,
        })
    }

    /// Gives the bootstrap admin a new token (shown once), refusing the old one at once: the
    /// way back in when no admin token works.
    pub async fn rotate_bootstrap_token(&self, actor: &str) -> Result<SecretString, ClientError> {
        let clients = self.list().await?;
        let admin = clients
            .iter()
            .find(|c| c.name == BOOTSTRAP_ADMIN && c.revoked_at.is_none())
            .ok_or_else(|| ClientError::NotFound(BOOTSTRAP_ADMIN.into()))?;
        Ok(self.rotate(actor, &admin.id, Grace::NONE).await?.token)
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
            expires_at: None,
            metadata: None,
            bound_claims: None,
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

    pub fn require_decryptor_of(&self, ring: &str) -> Result<(), AuthError> {
        self.require(&[Role::Decryptor])?;
        if self.holds(ring) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(format!(
                "client {:?} may not decrypt for ring {:?}",
                self.name,
                CallerText::echoed(ring).as_str()
            )))
        }
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
    /// RFC 3339, in the future and at most 10 years ahead: the client's tokens are refused
    /// from then on [default: never].
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// A JSON object of at most 32 members, 4096 bytes and depth 4: stored and shown, never
    /// interpreted.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// For an issuer: claim name to the string, number or boolean every token it signs
    /// carries (at most 16; not `iss`, `exp`, `nbf`, `iat`, `jti` or `sid`).
    #[schema(value_type = Option<Object>)]
    pub bound_claims: Option<Value>,
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
    #[error("client {0:?} is revoked")]
    Revoked(String),
    #[error("{}", .0.message)]
    Refused(Violation),
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
        (Role::Issuer | Role::Introspector | Role::Decryptor, true) => {
            return Err(ClientError::Invalid(format!(
                "the {} role needs at least one ring in rings",
                request.role.as_str()
            )))
        }
        (Role::Admin | Role::Auditor, false) => {
            return Err(ClientError::Invalid(
                "rings applies only to issuers, introspectors and decryptors".into(),
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
    let now = now_ms();
    let expires_at = request
        .expires_at
        .map(|at| client_expiry(&at, now))
        .transpose()
        .map_err(ClientError::Refused)?;
    let metadata = request
        .metadata
        .map(ClientMetadata::parse)
        .transpose()
        .map_err(ClientError::Refused)?;
    let bound_claims = match request.bound_claims {
        None => BoundClaims::default(),
        Some(_) if request.role != Role::Issuer => {
            return Err(ClientError::Refused(Violation {
                code: ErrorCode::InvalidBoundClaims,
                message: "bound_claims applies only to issuers".into(),
            }))
        }
        Some(claims) => BoundClaims::parse(claims).map_err(ClientError::Refused)?,
    };
    let token = SecretString::from(format!("{TOKEN_PREFIX}{}", random_id(32)));
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
        expires_at,
        metadata,
        bound_claims,
        previous_token_hash: None,
        previous_token_expires_at: None,
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
            expires_at: client.expires_at,
            bound_claims: client.bound_claims.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn client(expires_at: Option<i64>, previous_until: Option<i64>) -> ClientRecord {
        ClientRecord {
            id: "id".into(),
            name: "svc".into(),
            role: Role::Issuer,
            rings: vec![],
            rate_limit: None,
            token_hash: "new".into(),
            created_at: UnixMillis::default(),
            created_by: "cli".into(),
            revoked_at: None,
            expires_at: expires_at.map(UnixMillis::from_millis),
            metadata: None,
            bound_claims: BoundClaims::default(),
            previous_token_hash: previous_until.map(|_| "old".into()),
            previous_token_expires_at: previous_until.map(UnixMillis::from_millis),
        }
    }

    #[test]
    fn a_token_is_valid_until_its_client_expires_or_its_grace_ends() {
        let at = UnixMillis::from_millis;
        let valid = |c: &ClientRecord, hash: &str, now: i64| {
            token_valid_until(c, hash, at(now)).map_err(|_| ())
        };
        let forever = client(None, Some(100));
        assert_eq!(valid(&forever, "new", 1_000), Ok(None));
        assert_eq!(valid(&forever, "old", 99), Ok(Some(at(100))));
        assert_eq!(valid(&forever, "old", 100), Err(()));
        let expiring = client(Some(50), Some(100));
        assert_eq!(valid(&expiring, "new", 49), Ok(Some(at(50))));
        assert_eq!(valid(&expiring, "old", 49), Ok(Some(at(50))));
        assert_eq!(valid(&expiring, "new", 50), Err(()));
        let revoked = ClientRecord {
            revoked_at: Some(at(1)),
            ..client(None, None)
        };
        assert_eq!(valid(&revoked, "new", 0), Err(()));
    }

    /// A cached client is checked against the time of each request, not of its lookup.
    #[test]
    fn a_cached_token_is_refused_once_it_is_no_longer_valid() {
        let cached = Cached {
            at: Instant::now(),
            principal: Arc::new(Principal {
                id: "id".into(),
                name: "svc".into(),
                role: Role::Issuer,
                rings: vec![],
                rate_limit: None,
                bound_claims: BoundClaims::default(),
            }),
            until: Some(UnixMillis::from_millis(100)),
        };
        assert!(cached.usable(UnixMillis::from_millis(99)));
        assert!(!cached.usable(UnixMillis::from_millis(100)));
        assert!(Cached {
            until: None,
            ..cached
        }
        .usable(UnixMillis::from_millis(i64::MAX)));
    }
}
