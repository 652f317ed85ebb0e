//! Public verification endpoints.
//!
//! `GET /v1/rings/{ring}/jwks.json` and `GET /.well-known/jwks.json` serve the JWK Set (RFC 7517
//! §5) of published keys: during a rotation that is the active key, the next key (published
//! `publish_lead` before it signs, so a verifier's cached set already holds it) and every retiring
//! key whose tokens may still be valid. Revoked and retired keys are gone at once. The routes are
//! public: a JWKS holds public keys only. Responses carry `Cache-Control: public, max-age` (the
//! ring's `jwks_max_age`, which the rotation timing is built around) and a strong `ETag`; a
//! matching `If-None-Match` gets 304.
//!
//! `POST /v1/verify` checks a token for callers that cannot verify offline.

use std::time::Instant;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, Json, Services};
use crate::jose;
use crate::metrics::RingLabels;
use crate::rings::{CombinedTooLarge, Jwks, RingError, COMBINED_JWKS_MAX_KEYS};

fn serve(req: &HttpRequest, jwks: &Jwks) -> HttpResponse {
    let cache = format!("public, max-age={}", jwks.max_age_seconds);
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == jwks.etag || tag.trim() == "*")
        });
    let mut response = if matches {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ETAG, jwks.etag.clone()));
    if matches {
        response.finish()
    } else {
        response
            .content_type("application/jwk-set+json")
            .body(jwks.body.to_string())
    }
}

/// The keys of the rings created with `"combined_jwks": true`, refused rather than served
/// incomplete once they are more than verifiers accept.
pub async fn all(req: HttpRequest, state: web::Data<Services>) -> Result<HttpResponse, ApiError> {
    match &state.rings.view().combined {
        Ok(jwks) => Ok(serve(&req, jwks)),
        Err(CombinedTooLarge) => Err(ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "jwks_too_large",
            format!(
                "the combined JWKS would list more than {COMBINED_JWKS_MAX_KEYS} keys, more than \
                 verifiers accept; fetch each ring's /v1/rings/{{ring}}/jwks.json instead"
            ),
        )),
    }
}

pub async fn ring(
    req: HttpRequest,
    state: web::Data<Services>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let view = state.rings.view();
    let ring = view
        .rings
        .get(path.as_str())
        .ok_or_else(|| RingError::RingNotFound(path.into_inner()))?;
    Ok(serve(&req, &ring.jwks))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    token: String,
    /// When given, the token's `aud` must contain it.
    audience: Option<String>,
}

pub async fn verify(
    state: web::Data<Services>,
    body: Json<VerifyRequest>,
) -> Result<HttpResponse, ApiError> {
    let invalid = |e: jose::VerifyError| {
        ApiError::new(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            "token_invalid",
            e.to_string(),
        )
    };
    let kid = jose::peek_kid(&body.token).map_err(invalid)?;
    let view = state.rings.view();
    let (ring, jwk) = view
        .published_key(&kid)
        .ok_or_else(|| invalid(jose::VerifyError::UnknownKey(kid.clone())))?;
    let started = Instant::now();
    let verified = jose::verify(&body.token, jwk, body.audience.as_deref());
    state
        .metrics
        .verified(&RingLabels::of(&ring.record), started.elapsed());
    let verified = verified.map_err(invalid)?;
    Ok(HttpResponse::Ok().json(json!({
        "valid": true,
        "ring": ring.record.name,
        "kid": kid,
        "header": verified.header,
        "claims": verified.claims,
    })))
}
