//! Ring, key and signing endpoints.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    kid_in_path, optional_json, ring_in_path, ApiError, Authenticated, Callers, ErrorBody, Json,
    Services,
};
use crate::api::{
    KeyInfo, KeyList, RawSignatureInfo, RevokedKey, RingInfo, RingList, SignedTokenInfo,
};
use crate::domain::{CallerText, Kid, RingName, Role};
use crate::rings::{NewRing, SignRequest};

#[utoipa::path(post, path = "/v1/rings", tag = "rings", security(("bearer" = [])), request_body = NewRing,
    responses(
        (status = 201, description = "The ring, with its first key active", body = RingInfo),
        (status = 409, description = "`ring_exists`", body = ErrorBody),
        (status = 422, description = "`backend_not_configured`, `unsupported_by_backend`", body = ErrorBody),
    ))]
pub async fn create(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    body: Json<NewRing>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin])?;
    let (ring, key) = state
        .rings
        .create_ring(&who.actor(), body.into_inner())
        .await?;
    Ok(HttpResponse::Created().json(RingInfo::new(&ring, key.kid.as_ref())))
}

#[utoipa::path(get, path = "/v1/rings", tag = "rings", security(("bearer" = [])),
    responses((status = 200, description = "Every ring", body = RingList)))]
pub async fn list(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Auditor])?;
    let rings = state.rings.rings().await?;
    Ok(HttpResponse::Ok().json(RingList {
        rings: rings
            .iter()
            .map(|(ring, active)| RingInfo::new(ring, active.as_ref()))
            .collect(),
    }))
}

#[utoipa::path(get, path = "/v1/rings/{ring}", tag = "rings", security(("bearer" = [])), params(("ring" = RingName, Path, description = "The ring's name")),
    responses((status = 200, description = "The ring", body = RingInfo), (status = 404, description = "`ring_not_found`", body = ErrorBody)))]
pub async fn show(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Auditor])?;
    let (ring, keys) = state.rings.ring(&ring_in_path(&path)?).await?;
    Ok(HttpResponse::Ok().json(RingInfo::with_keys(&ring, &keys)))
}

/// `PATCH /v1/rings/{ring}`: the settings of a ring that change without a new key.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RingUpdate {
    combined_jwks: bool,
}

#[utoipa::path(patch, path = "/v1/rings/{ring}", tag = "rings", security(("bearer" = [])), params(("ring" = RingName, Path, description = "The ring's name")),
    request_body = RingUpdate,
    responses((status = 200, description = "The ring as changed", body = RingInfo), (status = 404, description = "`ring_not_found`", body = ErrorBody)))]
pub async fn update(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
    body: Json<RingUpdate>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin])?;
    let (ring, keys) = state
        .rings
        .set_combined_jwks(&who.actor(), &ring_in_path(&path)?, body.combined_jwks)
        .await?;
    Ok(HttpResponse::Ok().json(RingInfo::with_keys(&ring, &keys)))
}

#[utoipa::path(get, path = "/v1/rings/{ring}/keys", tag = "rings", security(("bearer" = [])), params(("ring" = RingName, Path, description = "The ring's name")),
    responses((status = 200, description = "The ring's keys, in every state", body = KeyList),
        (status = 404, description = "`ring_not_found`", body = ErrorBody)))]
pub async fn keys(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Auditor])?;
    let (_, keys) = state.rings.ring(&ring_in_path(&path)?).await?;
    Ok(HttpResponse::Ok().json(KeyList::new(&keys)))
}

#[utoipa::path(post, path = "/v1/rings/{ring}/sign", tag = "signing", security(("bearer" = [])), params(("ring" = RingName, Path, description = "The ring's name")),
    request_body = SignRequest,
    responses(
        (status = 200, description = "The signed token; its audit record is committed", body = SignedTokenInfo),
        (status = 404, description = "`ring_not_found`", body = ErrorBody),
        (status = 409, description = "`key_changed`: sign again", body = ErrorBody),
        (status = 422, description = "`issuer_mismatch`, `audience_required`, `audience_not_allowed`, `ttl_exceeds_max`, `invalid_ttl`, `reserved_claim`, `forbidden_claim`, `missing_required_claim`, `invalid_claim`, `header_mismatch`, `token_too_large`: the ring's policy refuses the token; `bound_claim_mismatch`: a claim bound to the client has another value", body = ErrorBody),
    ))]
pub async fn sign(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
    body: Json<SignRequest>,
    callers: web::Data<Callers>,
) -> Result<HttpResponse, ApiError> {
    who.require_issuer_of(&path)?;
    callers.admit_signature(&who)?;
    let signed = state
        .rings
        .sign(
            &who.actor(),
            &who.id,
            &who.bound_claims,
            &ring_in_path(&path)?,
            body.into_inner(),
        )
        .await?;
    Ok(HttpResponse::Ok().json(SignedTokenInfo::of(signed)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRawRequest {
    /// `BASE64URL(header).BASE64URL(payload)`, as the issuer built it.
    signing_input: String,
}

#[utoipa::path(post, path = "/v1/rings/{ring}/sign-raw", tag = "signing", security(("bearer" = [])), params(("ring" = RingName, Path, description = "The ring's name")),
    request_body = SignRawRequest,
    responses(
        (status = 200, description = "The signature; its audit record is committed", body = RawSignatureInfo),
        (status = 404, description = "`ring_not_found`", body = ErrorBody),
        (status = 409, description = "`key_changed`: sign again; `jti_reused`", body = ErrorBody),
        (status = 422, description = "`issuer_mismatch`, `audience_required`, `audience_not_allowed`, `ttl_exceeds_max`, `invalid_ttl`, `reserved_claim`, `forbidden_claim`, `missing_required_claim`, `invalid_claim`, `header_mismatch`, `token_too_large`: the ring's policy refuses the token; `bound_claim_mismatch`: a claim bound to the client is missing or has another value", body = ErrorBody),
    ))]
pub async fn sign_raw(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
    body: Json<SignRawRequest>,
    callers: web::Data<Callers>,
) -> Result<HttpResponse, ApiError> {
    who.require_issuer_of(&path)?;
    callers.admit_signature(&who)?;
    let signed = state
        .rings
        .sign_raw(
            &who.actor(),
            &who.id,
            &who.bound_claims,
            &ring_in_path(&path)?,
            &body.signing_input,
        )
        .await?;
    Ok(HttpResponse::Ok().json(RawSignatureInfo {
        signature: signed.signature,
        kid: signed.kid,
    }))
}

#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    /// Activate the new key at once, without publishing it first.
    #[serde(default)]
    immediate: bool,
}

#[utoipa::path(post, path = "/v1/rings/{ring}/rotate", tag = "rings", security(("bearer" = [])), params(("ring" = RingName, Path, description = "The ring's name")),
    request_body(content = Option<RotateRequest>, description = "May be left out: a rotation \
        that publishes the new key first"),
    responses(
        (status = 202, description = "The new key, published (or active, when immediate)", body = KeyInfo),
        (status = 404, description = "`ring_not_found`", body = ErrorBody),
        (status = 409, description = "`rotation_in_progress`, `key_state_changed`", body = ErrorBody),
        (status = 422, description = "`unsupported_by_backend`, `backend_not_configured`", body = ErrorBody),
    ))]
pub async fn rotate(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin])?;
    let request: RotateRequest = optional_json(&body)?;
    let key = state
        .rings
        .rotate(&who.actor(), &ring_in_path(&path)?, request.immediate)
        .await?;
    Ok(HttpResponse::Accepted().json(KeyInfo::from(&key)))
}

#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    /// Printable text, kept in the audit record.
    #[schema(max_length = 256)]
    reason: Option<String>,
}

#[utoipa::path(post, path = "/v1/keys/{kid}/revoke", tag = "rings", security(("bearer" = [])), params(("kid" = Kid, Path, description = "The key's kid")),
    request_body(content = Option<RevokeRequest>, description = "May be left out: reason \
        `unspecified`"),
    responses(
        (status = 200, description = "The revoked key, and the key that signs in its place", body = RevokedKey),
        (status = 404, description = "`key_not_found`", body = ErrorBody),
        (status = 409, description = "`key_not_revocable`, `key_state_changed`, `rotation_in_progress`", body = ErrorBody),
        (status = 422, description = "`unsupported_by_backend`, `backend_not_configured`", body = ErrorBody),
    ))]
pub async fn revoke(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin])?;
    let request: RevokeRequest = optional_json(&body)?;
    let reason = request.reason.unwrap_or_else(|| "unspecified".into());
    if reason.len() > CallerText::STORED_BYTES || reason != CallerText::stored(&reason).as_str() {
        return Err(ApiError::bad_request(format!(
            "reason is up to {} bytes of printable text",
            CallerText::STORED_BYTES
        )));
    }
    let revocation = state
        .rings
        .revoke(&who.actor(), &kid_in_path(&path)?, &reason)
        .await?;
    Ok(HttpResponse::Ok().json(RevokedKey {
        key: KeyInfo::from(&revocation.key),
        successor_kid: revocation.successor_kid,
    }))
}
