//! Ring, key and signing endpoints.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::{
    kid_in_path, optional_json, ring_in_path, ApiError, Authenticated, Callers, Json, Services,
};
use crate::api::{
    KeyInfo, KeyList, RawSignatureInfo, RevokedKey, RingInfo, RingList, SignedTokenInfo,
};
use crate::clock::rfc3339;
use crate::domain::{CallerText, Role};
use crate::rings::{NewRing, SignRequest};

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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingUpdate {
    combined_jwks: bool,
}

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

pub async fn keys(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Auditor])?;
    let (_, keys) = state.rings.ring(&ring_in_path(&path)?).await?;
    Ok(HttpResponse::Ok().json(KeyList::new(&keys)))
}

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
        .sign(&who.actor(), &ring_in_path(&path)?, body.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(SignedTokenInfo {
        token: signed.token,
        kid: signed.kid,
        expires_at: rfc3339(signed.expires_at),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRawRequest {
    signing_input: String,
}

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
        .sign_raw(&who.actor(), &ring_in_path(&path)?, &body.signing_input)
        .await?;
    Ok(HttpResponse::Ok().json(RawSignatureInfo {
        signature: signed.signature,
        kid: signed.kid,
    }))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    #[serde(default)]
    immediate: bool,
}

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

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    reason: Option<String>,
}

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
