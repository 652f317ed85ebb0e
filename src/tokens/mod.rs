//! Tokens after they are signed: verification for resource servers (`POST /v1/verify`),
//! revocation (`POST /v1/tokens/revoke`) and introspection (`POST /v1/introspect`, RFC 7662).
//!
//! Each replica holds the revocation list in memory ([`RevocationList`]) and brings it up to date
//! on a Postgres notice of a revocation, every lifecycle tick (1 s), and after each revocation it
//! makes itself, reading only the rows newer than it holds; verification and introspection never
//! read the store.

mod decryption;
mod list;
mod refresh;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

pub use list::RevocationList;
pub use refresh::{RefreshRequest, Refreshed};

use crate::api::{Introspection, RevokedTokens};
use crate::auth::{AuthError, Principal};
use crate::clock::{now_ms, rfc3339};
use crate::domain::{AuditEvent, AuditRecord, CallerText, RingName, Role, UnixMillis};
use crate::jose::{self, Expect, VerifyError};
use crate::metrics::{Metrics, RingLabels};
use crate::rings::{RingError, RingService};
use crate::store::{Store, StoreError};

/// The largest leeway a verifier may ask for, in seconds: a revocation outlives its token's
/// `exp` by this much, so that no verifier accepts the token meanwhile.
pub const MAX_LEEWAY_SECONDS: u32 = 300;

/// The name of the list's refresh in the log and in `/readyz`.
pub const REVOCATION_LIST: &str = "revocation list";

const MAX_JTI_BYTES: usize = 128;
const MAX_SUB_BYTES: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Invalid(#[from] VerifyError),
    #[error("the token has been revoked")]
    Revoked,
    #[error("the refresh token was used already: its family is revoked; sign in again")]
    Reused,
    #[error("{0}")]
    Request(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Ring(#[from] RingError),
}

impl From<StoreError> for TokenError {
    fn from(e: StoreError) -> TokenError {
        TokenError::Ring(RingError::Store(e))
    }
}

/// A token that verified.
pub struct Checked {
    pub ring: RingName,
    pub kid: String,
    pub header: Value,
    pub claims: Map<String, Value>,
}

/// What a verification expects beyond the signature and times: [`Expect`], and the ring whose
/// keys alone may have signed (then `iss` must be that ring's issuer).
#[derive(Clone, Copy, Default)]
pub struct Expectations<'a> {
    pub ring: Option<&'a RingName>,
    pub token: Expect<'a>,
}

/// `POST /v1/tokens/revoke`: one token (`token`, or `ring` and `jti`), or every token of a
/// subject issued before a time (`ring`, `sub` and `issued_before`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeTokens {
    /// A compact JWS signed by a key signet publishes.
    pub token: Option<String>,
    pub ring: Option<RingName>,
    /// The `jti` of the token to revoke, 1-128 printable ASCII characters.
    #[schema(min_length = 1, max_length = 128)]
    pub jti: Option<String>,
    /// The subject whose tokens to revoke, up to 256 bytes of printable text.
    #[schema(min_length = 1, max_length = 256)]
    pub sub: Option<String>,
    /// RFC 3339, not in the future: the subject's tokens issued (`iat`) before it are revoked.
    #[schema(format = DateTime)]
    pub issued_before: Option<String>,
}

pub struct TokenService {
    store: Store,
    rings: Arc<RingService>,
    metrics: Arc<Metrics>,
    list: RwLock<RevocationList>,
    /// Held by the refresh under way.
    refreshing: tokio::sync::Mutex<()>,
    /// How many Postgres notices of a revocation this replica has read.
    notices: AtomicU64,
    /// Whether it is listening for them now.
    listening: AtomicBool,
}

impl TokenService {
    /// The service, with every revocation still in force read from the store.
    pub(crate) async fn new(
        store: Store,
        rings: Arc<RingService>,
        metrics: Arc<Metrics>,
    ) -> Result<TokenService, StoreError> {
        let service = TokenService {
            store,
            rings,
            metrics,
            list: RwLock::new(RevocationList::default()),
            refreshing: tokio::sync::Mutex::new(()),
            notices: AtomicU64::new(0),
            listening: AtomicBool::new(false),
        };
        service.read_revocations().await?;
        Ok(service)
    }

    fn list(&self) -> std::sync::RwLockReadGuard<'_, RevocationList> {
        self.list.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many tokens and subjects this replica holds as revoked.
    pub fn revoked_count(&self) -> usize {
        self.list().len()
    }

    /// Reads the revocations newer than the list holds and forgets those that have lapsed.
    async fn read_revocations(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let now = now_ms().as_secs();
        let seq = self.list().seq();
        let rows = self.store.revocations_after(seq, now).await?;
        let mut list = self.list.write().unwrap_or_else(PoisonError::into_inner);
        for row in rows {
            list.add(row);
        }
        list.forget_expired(now);
        self.metrics
            .revocations
            .set(i64::try_from(list.len()).unwrap_or(i64::MAX));
        Ok(())
    }

    /// How many Postgres notices of a revocation this replica has read.
    pub fn notices(&self) -> u64 {
        self.notices.load(Ordering::Relaxed)
    }

    /// Whether it listens for Postgres notices of revocations now.
    pub fn listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }

    /// On Postgres, refreshes the list as soon as a revocation commits on any replica; returns
    /// at once on SQLite. Runs until the server stops: a lost connection is opened again after
    /// a second, and the tick reads what came meanwhile.
    pub(crate) async fn follow_notices(&self) {
        loop {
            match self.store.revocation_notices().await {
                Ok(None) => return,
                Ok(Some(mut listener)) => loop {
                    self.listening.store(true, Ordering::Relaxed);
                    if let Err(e) = listener.recv().await {
                        self.listening.store(false, Ordering::Relaxed);
                        tracing::warn!(error = %e, "revocation notices interrupted; the tick reads revocations meanwhile");
                        break;
                    }
                    self.notices.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = self.read_revocations().await {
                        tracing::warn!(error = %e, "the revocation list could not be refreshed; the next tick will");
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for revocation notices; the tick reads revocations meanwhile");
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// The tick's part: purge the lapsed revocations from the store, then refresh. A failure is
    /// reported as the health of [`REVOCATION_LIST`]: a replica that cannot see revocations
    /// turns unready rather than accept revoked tokens for long.
    pub(crate) async fn tick(&self) {
        let now = now_ms().as_secs();
        let outcome = match self.store.purge_revocations(now).await {
            Ok(_) => match self.store.purge_refresh_families(now).await {
                Ok(_) => self.read_revocations().await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let health = self.rings.health();
        match outcome {
            Ok(()) => health.ok(REVOCATION_LIST),
            Err(e) => {
                tracing::warn!(error = %e, "the revocation list could not be refreshed");
                health.failed(REVOCATION_LIST, e.to_string());
            }
        }
    }

    /// Verifies `token` against the keys signet publishes, as `expect` asks, and against the
    /// revocation list.
    pub fn verify(&self, token: &str, expect: &Expectations<'_>) -> Result<Checked, TokenError> {
        let checked = self.verify_signed(token, expect)?;
        if self.list().revoked(checked.ring.as_str(), &checked.claims) {
            return Err(TokenError::Revoked);
        }
        Ok(checked)
    }

    /// [`TokenService::verify`] but for the revocation list.
    fn verify_signed(&self, token: &str, expect: &Expectations<'_>) -> Result<Checked, TokenError> {
        let kid = jose::peek_kid(token)?;
        let view = self.rings.view();
        let (ring, jwk) = view
            .published_key(&kid)
            .ok_or_else(|| VerifyError::UnknownKey(kid.clone()))?;
        if expect.ring.is_some_and(|name| *name != ring.record.name) {
            return Err(
                VerifyError::Invalid("the token is not signed by a key of this ring").into(),
            );
        }
        let mut wanted = expect.token;
        if expect.ring.is_some() {
            // The ring's tokens carry its issuer: one asked for besides must be the same.
            if wanted
                .issuer
                .is_some_and(|issuer| issuer != ring.record.policy.issuer)
            {
                return Err(VerifyError::Invalid("the token is not from this issuer").into());
            }
            wanted.issuer = Some(&ring.record.policy.issuer);
        }
        let started = Instant::now();
        let verified = jose::verify(token, jwk, &wanted);
        self.metrics
            .verified(&RingLabels::of(&ring.record), started.elapsed());
        let verified = verified?;
        let Value::Object(claims) = verified.claims else {
            return Err(VerifyError::Invalid("the payload is not a JSON object").into());
        };
        Ok(Checked {
            ring: ring.record.name.clone(),
            kid,
            header: verified.header,
            claims,
        })
    }

    /// RFC 7662: the state of `token` for `who` (an admin, or an introspector of the token's
    /// ring). A token that does not verify, is revoked, or is of a ring `who` may not read is
    /// inactive, and nothing more is said of it.
    pub fn introspect(&self, who: &Principal, token: &str) -> Introspection {
        match self.verify(token, &Expectations::default()) {
            Ok(checked) if who.role == Role::Admin || who.holds(checked.ring.as_str()) => {
                Introspection::active(checked)
            }
            _ => Introspection::inactive(),
        }
    }

    /// Revokes what `request` names, for `who`: an admin, or an issuer of the ring.
    pub async fn revoke(
        &self,
        who: &Principal,
        request: RevokeTokens,
    ) -> Result<RevokedTokens, TokenError> {
        let now = now_ms();
        let revocation = self.revocation(request, now)?;
        if who.role != Role::Admin && !(who.role == Role::Issuer && who.holds(&revocation.ring)) {
            return Err(AuthError::Forbidden(format!(
                "client {:?} may not revoke tokens of ring {:?}",
                who.name,
                revocation.ring.as_str()
            ))
            .into());
        }
        let record = revocation.record(&who.actor(), now);
        self.store.append_audit_batch(&[record]).await?;
        self.update_list().await;
        Ok(RevokedTokens {
            ring: revocation.ring,
            jti: revocation.jti,
            sub: revocation.sub,
            issued_before: revocation.issued_before.map(secs_rfc3339),
            expires_at: secs_rfc3339(revocation.expires),
        })
    }

    /// Brings the list up to date after a revocation on this replica; on failure, the next tick
    /// will.
    async fn update_list(&self) {
        if let Err(e) = self.read_revocations().await {
            tracing::warn!(error = %e, "the revocation list could not be refreshed; the next tick will");
        }
    }

    /// Every token of `ring` issued to `sub` before `before` (seconds), until none of them can
    /// verify any more.
    fn subject_revocation(
        &self,
        ring: RingName,
        sub: &str,
        before: i64,
    ) -> Result<Revocation, TokenError> {
        let max_ttl = self
            .rings
            .view()
            .rings
            .get(ring.as_str())
            .map(|r| i64::from(r.record.policy.max_ttl()))
            .ok_or_else(|| RingError::RingNotFound(ring.to_string()))?;
        Ok(Revocation {
            jti: None,
            sub: Some(bounded("sub", sub, MAX_SUB_BYTES)?),
            issued_before: Some(before),
            expires: before + max_ttl + i64::from(MAX_LEEWAY_SECONDS),
            ring,
        })
    }

    /// What `request` revokes, checked, and until when.
    fn revocation(&self, request: RevokeTokens, now: UnixMillis) -> Result<Revocation, TokenError> {
        let view = self.rings.view();
        let max_ttl = |ring: &RingName| {
            view.rings
                .get(ring.as_str())
                .map(|r| i64::from(r.record.policy.max_ttl()))
                .ok_or_else(|| RingError::RingNotFound(ring.to_string()))
        };
        let slack = i64::from(MAX_LEEWAY_SECONDS);
        match request {
            RevokeTokens {
                token: Some(token),
                ring: None,
                jti: None,
                sub: None,
                issued_before: None,
            } => {
                let lenient = Expectations {
                    ring: None,
                    token: Expect {
                        leeway_seconds: MAX_LEEWAY_SECONDS,
                        ..Expect::default()
                    },
                };
                // A token revoked already is revoked again, as asked (and audited again).
                let checked = self.verify_signed(&token, &lenient)?;
                let jti = checked
                    .claims
                    .get("jti")
                    .and_then(Value::as_str)
                    .ok_or(VerifyError::Invalid("the token has no jti to revoke it by"))?;
                let exp = checked.claims.get("exp").and_then(Value::as_f64).ok_or(
                    VerifyError::Invalid("the token lacks a required claim (exp)"),
                )?;
                Ok(Revocation {
                    jti: Some(bounded("jti", jti, MAX_JTI_BYTES)?),
                    sub: None,
                    issued_before: None,
                    #[allow(clippy::cast_possible_truncation)]
                    expires: exp.ceil() as i64 + slack,
                    ring: checked.ring,
                })
            }
            RevokeTokens {
                token: None,
                ring: Some(ring),
                jti: Some(jti),
                sub: None,
                issued_before: None,
            } => Ok(Revocation {
                jti: Some(bounded("jti", &jti, MAX_JTI_BYTES)?),
                sub: None,
                issued_before: None,
                expires: now.as_secs() + max_ttl(&ring)? + slack,
                ring,
            }),
            RevokeTokens {
                token: None,
                ring: Some(ring),
                jti: None,
                sub: Some(sub),
                issued_before: Some(before),
            } => {
                let before = chrono::DateTime::parse_from_rfc3339(&before)
                    .map_err(|_| {
                        TokenError::Request(
                            "issued_before must be an RFC 3339 time, like 2026-12-02T10:00:00Z"
                                .into(),
                        )
                    })?
                    .timestamp();
                if before > now.as_secs() {
                    return Err(TokenError::Request(
                        "issued_before must not be in the future".into(),
                    ));
                }
                self.subject_revocation(ring, &sub, before)
            }
            _ => Err(TokenError::Request(
                "give token; or ring and jti; or ring, sub and issued_before".into(),
            )),
        }
    }
}

struct Revocation {
    ring: RingName,
    jti: Option<String>,
    sub: Option<String>,
    issued_before: Option<i64>,
    expires: i64,
}

impl Revocation {
    /// Its audit record, which lists it in the store (`store::audit`).
    fn record(&self, actor: &str, now: UnixMillis) -> AuditRecord {
        AuditRecord::of_ring(
            now,
            actor,
            &self.ring,
            None,
            AuditEvent::TokenRevoked {
                jti: self.jti.clone(),
                sub: self.sub.clone(),
                issued_before: self.issued_before,
                expires: self.expires,
            },
        )
    }
}

/// `value` if it is 1 to `max` bytes of printable text (it is kept in the audit record).
fn bounded(name: &str, value: &str, max: usize) -> Result<String, TokenError> {
    if value.is_empty() || value.len() > max || CallerText::stored(value).as_str() != value {
        return Err(TokenError::Request(format!(
            "{name} is 1 to {max} bytes of printable text"
        )));
    }
    Ok(value.to_owned())
}

fn secs_rfc3339(seconds: i64) -> String {
    rfc3339(UnixMillis::from_millis(seconds.saturating_mul(1000)))
}
