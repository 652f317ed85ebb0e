//! Ring, key and signing endpoints.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{optional_body, ApiError, AppState, Authenticated};
use crate::clock::rfc3339;
use crate::domain::{KeyRecord, KeyState, RingRecord, Role};
use crate::rings::{NewRing, SignRequest};

pub fn ring_json(ring: &RingRecord, active_kid: Option<&str>) -> Value {
    json!({
        "name": ring.name,
        "backend": ring.backend,
        "algorithm": ring.algorithm,
        "key_spec": ring.key_spec,
        "policy": ring.policy,
        "timing": ring.timing,
        "active_kid": active_kid,
        "jwks_uri": format!("/v1/rings/{}/jwks.json", ring.name),
        "created_at": rfc3339(ring.created_at),
    })
}

pub fn key_json(key: &KeyRecord) -> Value {
    let time = |t: Option<i64>| t.map(rfc3339);
    json!({
        "id": key.id,
        "kid": key.kid,
        "ring": key.ring,
        "state": key.state,
        "algorithm": key.algorithm,
        "key_spec": key.key_spec,
        "backend": key.backend,
        "reference": key.reference,
        "created_at": rfc3339(key.created_at),
        "published_at": time(key.published_at),
        "activate_after": time(key.activate_after),
        "activated_at": time(key.activated_at),
        "deactivated_at": time(key.deactivated_at),
        "retire_after": time(key.retire_after),
        "retired_at": time(key.retired_at),
        "destroy_after": time(key.destroy_after),
        "destroyed_at": time(key.destroyed_at),
        "revoked_at": time(key.revoked_at),
        "revoked_reason": key.revoked_reason,
    })
}

pub async fn create(
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    body: web::Json<NewRing>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin])?;
    let (ring, key) = state
        .rings
        .create_ring(&who.actor(), body.into_inner())
        .await?;
    Ok(HttpResponse::Created().json(ring_json(&ring, key.kid.as_deref())))
}

pub async fn list(
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Auditor])?;
    let view = state.rings.view();
    let rings: Vec<Value> = state
        .rings
        .store()
        .rings()
        .await?
        .iter()
        .map(|r| {
            ring_json(
                r,
                view.rings
                    .get(&r.name)
                    .and_then(|v| v.signer.as_ref())
                    .map(|s| s.kid.as_str()),
            )
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "rings": rings })))
}

async fn ring_and_keys(
    state: &AppState,
    name: &str,
) -> Result<(RingRecord, Vec<KeyRecord>), ApiError> {
    let store = state.rings.store();
    let ring = store
        .ring(name)
        .await?
        .ok_or_else(|| crate::rings::RingError::RingNotFound(name.to_owned()))?;
    Ok((ring, store.keys_of_ring(name).await?))
}

pub async fn show(
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Auditor])?;
    let (ring, keys) = ring_and_keys(&state, &path).await?;
    let active = keys.iter().find(|k| k.state == KeyState::Active);
    Ok(HttpResponse::Ok().json(ring_json(&ring, active.and_then(|k| k.kid.as_deref()))))
}

pub async fn keys(
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Auditor])?;
    let (_, keys) = ring_and_keys(&state, &path).await?;
    Ok(HttpResponse::Ok().json(json!({ "keys": keys.iter().map(key_json).collect::<Vec<_>>() })))
}

pub async fn sign(
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
    body: web::Json<SignRequest>,
) -> Result<HttpResponse, ApiError> {
    who.require_issuer_of(&path)?;
    let signed = state
        .rings
        .sign(&who.actor(), &path, body.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "token": signed.token,
        "kid": signed.kid,
        "expires_at": rfc3339(signed.expires_at),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRawRequest {
    signing_input: String,
}

pub async fn sign_raw(
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
    body: web::Json<SignRawRequest>,
) -> Result<HttpResponse, ApiError> {
    who.require_issuer_of(&path)?;
    let signed = state
        .rings
        .sign_raw(&who.actor(), &path, &body.signing_input)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "signature": signed.signature, "kid": signed.kid })))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    #[serde(default)]
    immediate: bool,
}

pub async fn rotate(
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin])?;
    let request: RotateRequest = optional_body(&body)?;
    let key = state
        .rings
        .rotate(&who.actor(), &path, request.immediate)
        .await?;
    Ok(HttpResponse::Accepted().json(key_json(&key)))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    reason: Option<String>,
}

pub async fn revoke(
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin])?;
    let request: RevokeRequest = optional_body(&body)?;
    let reason = request.reason.unwrap_or_else(|| "unspecified".into());
    if reason.len() > 1024 {
        return Err(ApiError::bad_request(
            "reason is limited to 1024 characters",
        ));
    }
    let revocation = state.rings.revoke(&who.actor(), &path, &reason).await?;
    let mut body = key_json(&revocation.key);
    body["successor_kid"] = json!(revocation.successor_kid);
    Ok(HttpResponse::Ok().json(body))
}
