//! Refresh-token families (`POST /v1/rings/{ring}/refresh`): a refresh token is exchanged once
//! for an access token and the next refresh token of its family; presenting a spent one again
//! revokes the family, and the access tokens issued to its subject until then.
//!
//! A family is named by its tokens' `sid`, which the server sets when `/sign` on a ring of
//! refresh tokens starts one. The exchange spends the token in the transaction of its audit
//! record (`store::audit`), so of two exchanges of one token on any replicas, one succeeds.

use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{bounded, Expectations, TokenError, TokenService, MAX_LEEWAY_SECONDS};
use crate::auth::Principal;
use crate::clock::now_ms;
use crate::domain::{
    AuditEvent, AuditRecord, CallerClaim, ErrorCode, Profile, RingName, Violation,
    REFRESH_TOKEN_TYP,
};
use crate::jose::{Expect, VerifyError};
use crate::rings::{EncryptTo, RingError, SignRequest, SignedToken};
use crate::store::StoreError;

/// `POST /v1/rings/{ring}/refresh`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// A refresh token of the ring in the path, not yet exchanged.
    pub refresh_token: String,
    /// The ring that signs the new access token.
    pub access_ring: RingName,
    /// The access token's claims besides those it takes from the refresh token (`sub`, `sid`,
    /// `cnf`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub claims: Map<String, Value>,
    /// The access token's lifetime [default: its ring's default].
    pub ttl_seconds: Option<u32>,
    /// The device asking, as the caller established it: required, and must match, when the
    /// refresh token names a `device_id`.
    #[schema(max_length = 256)]
    pub device_id: Option<String>,
    /// The thumbprint of the key whose possession the caller checked (a DPoP proof's, RFC
    /// 9449): required, and must match, when the refresh token carries `cnf.jkt`.
    #[schema(min_length = 43, max_length = 43)]
    pub jkt: Option<String>,
    /// Return the access token nested in a JWE to this recipient, as `/sign` does.
    pub encrypt_to: Option<EncryptTo>,
}

/// What an exchange returns.
pub struct Refreshed {
    pub access_token: SignedToken,
    pub refresh_token: SignedToken,
}

/// Claims a refresh token hands on to the tokens exchanged for it; a request may not set them.
const FAMILY_CLAIMS: [&str; 3] = ["sub", "sid", "cnf"];
/// Claims of a refresh token that its successor gets anew.
const FRESH_CLAIMS: [&str; 5] = ["iss", "iat", "exp", "nbf", "jti"];
const MAX_SID_BYTES: usize = 128;

impl TokenService {
    /// Exchanges `request.refresh_token`, a token of `ring`, for `who`, an issuer of both rings.
    pub async fn refresh(
        &self,
        who: &Principal,
        ring: &RingName,
        request: RefreshRequest,
    ) -> Result<Refreshed, TokenError> {
        let view = self.rings.view();
        let refresh_ring = view
            .rings
            .get(ring.as_str())
            .cloned()
            .ok_or_else(|| RingError::RingNotFound(ring.to_string()))?;
        let access_ring = view
            .rings
            .get(request.access_ring.as_str())
            .cloned()
            .ok_or_else(|| RingError::RingNotFound(request.access_ring.to_string()))?;
        drop(view);
        if refresh_ring.record.policy.profile() != Profile::Refresh {
            return Err(TokenError::Request(format!(
                "ring {ring} does not issue refresh tokens (its policy.typ is not {REFRESH_TOKEN_TYP})"
            )));
        }
        if access_ring.record.policy.profile() == Profile::Refresh {
            return Err(TokenError::Request(
                "access_ring must be a ring of access tokens, not of refresh tokens".into(),
            ));
        }
        if let Some(c) = FAMILY_CLAIMS
            .iter()
            .find(|c| request.claims.contains_key(**c))
        {
            return Err(RingError::Policy(Violation {
                code: ErrorCode::ReservedClaim,
                message: format!("claim {c:?} is taken from the refresh token"),
            })
            .into());
        }
        let checked = self.verify(
            &request.refresh_token,
            &Expectations {
                ring: Some(ring),
                token: Expect {
                    typ: Some(REFRESH_TOKEN_TYP),
                    ..Expect::default()
                },
            },
        )?;
        let text = |name: &str| {
            checked
                .claims
                .get(name)
                .and_then(Value::as_str)
                .ok_or(VerifyError::Invalid(
                    "the refresh token lacks sub, sid or jti",
                ))
        };
        let bound = |claim: Option<&Value>, presented: &Option<String>| match claim {
            None => true,
            Some(value) => presented
                .as_deref()
                .is_some_and(|p| value.as_str() == Some(p)),
        };
        if !bound(checked.claims.get("device_id"), &request.device_id) {
            return Err(VerifyError::Invalid(
                "the refresh token is bound to a device_id: give the same device_id",
            )
            .into());
        }
        let jkt = checked.claims.get("cnf").and_then(|cnf| cnf.get("jkt"));
        if !bound(jkt, &request.jkt) {
            return Err(VerifyError::Invalid(
                "the refresh token is bound to a key (cnf.jkt): give its thumbprint as jkt",
            )
            .into());
        }
        let family = bounded("sid", text("sid")?, MAX_SID_BYTES)?;
        let jti = text("jti")?.to_owned();
        let sub = text("sub")?.to_owned();
        let policy = &refresh_ring.record.policy;

        let mut access_claims = request.claims;
        let mut next_claims = checked.claims;
        for name in FAMILY_CLAIMS {
            if let Some(value) = next_claims.get(name) {
                access_claims.insert(name.to_owned(), value.clone());
            }
        }
        for name in FRESH_CLAIMS
            .into_iter()
            .chain(policy.caller_claim.map(CallerClaim::as_str))
        {
            next_claims.remove(name);
        }
        // Both tokens are this client's: a claim bound to it refuses the exchange before the
        // refresh token is spent.
        for claims in [&mut access_claims, &mut next_claims] {
            who.bound_claims.apply(claims).map_err(RingError::Policy)?;
        }

        let access_request = SignRequest {
            claims: access_claims,
            ttl_seconds: request.ttl_seconds,
            nbf: false,
            encrypt_to: request.encrypt_to,
        };
        // Checked before the refresh token is spent: a request the access ring refuses leaves it
        // as it was.
        self.rings.check(&who.id, &access_ring, &access_request)?;

        let now = now_ms();
        let expires = now.as_secs() + i64::from(policy.max_ttl()) + i64::from(MAX_LEEWAY_SECONDS);
        let kid = checked.kid.parse().ok();
        let spend = AuditRecord::of_ring(
            now,
            &who.actor(),
            ring,
            kid.as_ref(),
            AuditEvent::RefreshTokenUsed {
                family: family.clone(),
                jti: jti.clone(),
                sub: sub.clone(),
                expires,
            },
        );
        match self.store.append_audit_batch(&[spend]).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(self
                    .refused(who, ring, &request.access_ring, &family, &jti, &sub)
                    .await)
            }
            Err(e) => return Err(e.into()),
        }

        let actor = who.actor();
        let access_token = self
            .rings
            .sign_with(&actor, &who.id, &access_ring, access_request)
            .await?;
        let refresh_token = self
            .rings
            .sign_with(
                &actor,
                &who.id,
                &refresh_ring,
                SignRequest {
                    claims: next_claims,
                    ttl_seconds: None,
                    nbf: false,
                    encrypt_to: None,
                },
            )
            .await?;
        Ok(Refreshed {
            access_token,
            refresh_token,
        })
    }

    /// Why the store refused to spend a refresh token: its family was revoked, or it was spent
    /// already. A reuse revokes the family, and every access token of `access_ring` issued to
    /// its subject until now.
    async fn refused(
        &self,
        who: &Principal,
        ring: &RingName,
        access_ring: &RingName,
        family: &str,
        jti: &str,
        sub: &str,
    ) -> TokenError {
        let (spent, revoked) = match self.store.refresh_token_state(ring, family, jti).await {
            Ok(state) => state,
            Err(e) => return e.into(),
        };
        if !spent {
            return if revoked {
                TokenError::Revoked
            } else {
                // Neither: the store refused for a reason of its own.
                StoreError::Unavailable("the refresh token could not be spent".into()).into()
            };
        }
        let now = now_ms();
        let reuse = AuditRecord::of_ring(
            now,
            &who.actor(),
            ring,
            None,
            AuditEvent::RefreshTokenReused {
                family: family.to_owned(),
                jti: jti.to_owned(),
            },
        );
        // Every token issued before the end of this second: the exchange that won the race may
        // have signed one in it.
        let records = match self.subject_revocation(access_ring.clone(), sub, now.as_secs() + 1) {
            Ok(revocation) => vec![reuse, revocation.record(&who.actor(), now)],
            Err(e) => return e,
        };
        if let Err(e) = self.store.append_audit_batch(&records).await {
            return e.into();
        }
        self.update_list().await;
        TokenError::Reused
    }
}
