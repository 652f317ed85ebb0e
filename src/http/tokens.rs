//! Signed tokens: `POST /v1/verify` for resource servers that cannot verify offline (one token or
//! a batch), `POST /v1/tokens/revoke`, `POST /v1/introspect` (RFC 7662) and the exchange of a
//! refresh token, `POST /v1/rings/{ring}/refresh`; and the decryption of a token sent to an
//! encryption ring, `POST /v1/rings/{ring}/decrypt`.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    ring_in_path, ApiError, Authenticated, Callers, ErrorBody, Json, JsonOrForm, Services,
};
use crate::api::{
    DecryptedToken, ErrorEntry, Introspection, RefreshedTokens, RevokedTokens, SignedTokenInfo,
    Verification, VerifiedBatch, VerifiedToken, VerifyOutcome,
};
use crate::domain::{RingName, Role};
use crate::jose::Expect;
use crate::tokens::{Expectations, RefreshRequest, RevokeTokens, MAX_LEEWAY_SECONDS};

/// The most tokens one batch verifies.
const MAX_BATCH: usize = 100;
/// The largest `max_age_seconds`: a year.
const MAX_AGE_SECONDS: u32 = 366 * 24 * 3600;

/// `POST /v1/verify`: `token`, or `tokens` (a batch), and what the token(s) must be.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// A compact JWS.
    token: Option<String>,
    /// Up to 100 compact JWSs, each answered in `results`, in order.
    #[schema(max_items = 100)]
    tokens: Option<Vec<String>>,
    /// Only the keys of this ring; the token's `iss` must then be the ring's issuer.
    ring: Option<RingName>,
    /// The token's `iss` must be this.
    issuer: Option<String>,
    /// The token's `aud` must contain this.
    audience: Option<String>,
    /// The header's `typ` must be this (`JWT`, `at+jwt`, ...; case-insensitive).
    typ: Option<String>,
    /// Slack for `exp`, `nbf` and `max_age_seconds` against the clock [default: 0].
    #[schema(maximum = 300)]
    leeway_seconds: Option<u32>,
    /// Refuse tokens whose `iat` is older than this (at most a year).
    #[schema(maximum = 31_622_400)]
    max_age_seconds: Option<u32>,
}

#[utoipa::path(post, path = "/v1/verify", tag = "tokens", request_body = VerifyRequest,
    responses(
        (status = 200, description = "With `token`: the token verified against a key signet \
            publishes, as asked, and is not revoked. With `tokens`: each one's outcome.",
            body = Verification),
        (status = 422, description = "`token_invalid`, `token_revoked` (with `token`)", body = ErrorBody),
    ))]
pub async fn verify(
    state: web::Data<Services>,
    body: Json<VerifyRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let leeway_seconds = body.leeway_seconds.unwrap_or(0);
    if leeway_seconds > MAX_LEEWAY_SECONDS {
        return Err(ApiError::bad_request(format!(
            "leeway_seconds is at most {MAX_LEEWAY_SECONDS}"
        )));
    }
    if body
        .max_age_seconds
        .is_some_and(|age| age > MAX_AGE_SECONDS)
    {
        return Err(ApiError::bad_request(format!(
            "max_age_seconds is at most {MAX_AGE_SECONDS}"
        )));
    }
    let expect = Expectations {
        ring: body.ring.as_ref(),
        token: Expect {
            audience: body.audience.as_deref(),
            issuer: body.issuer.as_deref(),
            typ: body.typ.as_deref(),
            leeway_seconds,
            max_age_seconds: body.max_age_seconds,
        },
    };
    match (body.token, body.tokens) {
        (Some(token), None) => {
            let checked = state.tokens.verify(&token, &expect)?;
            Ok(HttpResponse::Ok().json(Verification::One(VerifiedToken::new(checked))))
        }
        (None, Some(tokens)) if tokens.len() <= MAX_BATCH => {
            let results = tokens
                .iter()
                .map(|token| match state.tokens.verify(token, &expect) {
                    Ok(checked) => VerifyOutcome::Valid(VerifiedToken::new(checked)),
                    Err(e) => {
                        let e = ApiError::from(e);
                        VerifyOutcome::Invalid {
                            valid: false,
                            error: ErrorEntry {
                                code: e.code,
                                message: e.message,
                            },
                        }
                    }
                })
                .collect();
            Ok(HttpResponse::Ok().json(Verification::Batch(VerifiedBatch { results })))
        }
        (None, Some(_)) => Err(ApiError::bad_request(format!(
            "tokens holds at most {MAX_BATCH} tokens"
        ))),
        _ => Err(ApiError::bad_request("give token or tokens")),
    }
}

/// `POST /v1/introspect`, as JSON or as RFC 7662's form.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntrospectRequest {
    /// A compact JWS.
    token: String,
    /// RFC 7662 §2.1: taken, and not needed (signet's tokens are JWSs of a ring it knows).
    #[allow(dead_code)]
    token_type_hint: Option<String>,
}

#[utoipa::path(post, path = "/v1/introspect", tag = "tokens", security(("bearer" = [])),
    request_body(content(
        (IntrospectRequest = "application/json"),
        (IntrospectRequest = "application/x-www-form-urlencoded"),
    )),
    responses((status = 200, description = "RFC 7662: `{\"active\": false}` alone, unless the \
        token verifies, is not revoked, and is of a ring the caller may introspect (an \
        introspector's rings; an admin's, all)", body = Introspection)))]
pub async fn introspect(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    JsonOrForm(body): JsonOrForm<IntrospectRequest>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Introspector])?;
    Ok(HttpResponse::Ok().json(state.tokens.introspect(&who, &body.token)))
}

#[utoipa::path(post, path = "/v1/tokens/revoke", tag = "tokens", security(("bearer" = [])),
    request_body = RevokeTokens,
    responses(
        (status = 200, description = "Revoked on every replica within a second: `/v1/verify` \
            and `/v1/introspect` refuse the token(s) until they would have expired anyway",
            body = RevokedTokens),
        (status = 404, description = "`ring_not_found`", body = ErrorBody),
        (status = 422, description = "`token_invalid`: the token is not one signet signed", body = ErrorBody),
    ))]
pub async fn revoke(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    body: Json<RevokeTokens>,
    callers: web::Data<Callers>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Issuer])?;
    if who.role == Role::Issuer {
        callers.admit_signature(&who)?;
    }
    let revoked: RevokedTokens = state.tokens.revoke(&who, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(revoked))
}

#[utoipa::path(post, path = "/v1/rings/{ring}/refresh", tag = "tokens", security(("bearer" = [])),
    params(("ring" = RingName, Path, description = "The ring of refresh tokens (`policy.typ` `refresh+jwt`)")),
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new access token from `access_ring`, and the family's \
            next refresh token; the presented one is spent. Every signature is audited.",
            body = RefreshedTokens),
        (status = 401, description = "`refresh_token_reused`: the token was spent already; its \
            family is revoked, and the access tokens of `access_ring` issued to its subject until now", body = ErrorBody),
        (status = 404, description = "`ring_not_found`", body = ErrorBody),
        (status = 409, description = "`key_changed`: sign again", body = ErrorBody),
        (status = 422, description = "`token_invalid`, `token_revoked` (the refresh token, or its \
            family); `reserved_claim`, `bound_claim_mismatch` (refused before the refresh token \
            is spent) and the access ring's policy refusals", body = ErrorBody),
    ))]
pub async fn refresh(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
    body: Json<RefreshRequest>,
    callers: web::Data<Callers>,
) -> Result<HttpResponse, ApiError> {
    who.require_issuer_of(&path)?;
    who.require_issuer_of(body.access_ring.as_str())?;
    callers.admit_signature(&who)?;
    let refreshed = state
        .tokens
        .refresh(&who, &ring_in_path(&path)?, body.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(RefreshedTokens {
        access_token: SignedTokenInfo::of(refreshed.access_token),
        refresh_token: SignedTokenInfo::of(refreshed.refresh_token),
    }))
}

/// `POST /v1/rings/{ring}/decrypt`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecryptRequest {
    /// A compact JWE encrypted to one of the ring's keys (its `kid` in the header).
    token: String,
}

#[utoipa::path(post, path = "/v1/rings/{ring}/decrypt", tag = "tokens", security(("bearer" = [])),
    params(("ring" = RingName, Path, description = "The encryption ring the token was sent to")),
    request_body = DecryptRequest,
    responses(
        (status = 200, description = "The plaintext; the decryption's audit record is committed. \
            A nested token (`cty: JWT`) is verified, and refused if it does not verify.",
            body = DecryptedToken),
        (status = 404, description = "`ring_not_found`", body = ErrorBody),
        (status = 422, description = "`token_invalid`: not a compact JWE signet accepts (an alg \
            or enc other than the ring's, a kid of no key that decrypts, an epk off the key's \
            curve, `zip`, over the ring's max_token_bytes), or a nested token that does not \
            verify; `token_undecryptable`: it does not decrypt; `token_revoked`: the nested token \
            is revoked; `wrong_ring_use`: a signing ring", body = ErrorBody),
    ))]
pub async fn decrypt(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
    body: Json<DecryptRequest>,
    callers: web::Data<Callers>,
) -> Result<HttpResponse, ApiError> {
    who.require_decryptor_of(&path)?;
    callers.admit_signature(&who)?;
    let decrypted = state
        .tokens
        .decrypt(&who, &ring_in_path(&path)?, &body.token)
        .await?;
    Ok(HttpResponse::Ok().json(decrypted))
}
