//! The public keys, as JWK Sets.
//!
//! `GET /v1/rings/{ring}/jwks.json` and `GET /.well-known/jwks.json` serve the JWK Set (RFC 7517
//! §5) of published keys: during a rotation that is the active key, the next key (published
//! `publish_lead` before it signs, so a verifier's cached set already holds it) and every retiring
//! key whose tokens may still be valid. Revoked and retired keys are gone at once. The routes are
//! public: a JWKS holds public keys only. Responses carry `Cache-Control: public, max-age` (the
//! ring's `jwks_max_age`, which the rotation timing is built around) and a strong `ETag`; a
//! matching `If-None-Match` gets 304.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::openapi::JwkSet;
use super::{ApiError, ErrorBody, Services};
use crate::domain::{ErrorCode, RingName};
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
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "keys", params(("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer")),
    responses(
        (status = 200, description = "The keys of every ring listed in the combined JWKS", body = JwkSet, content_type = "application/jwk-set+json", headers(("ETag" = String, description = "A strong validator of the body"), ("Cache-Control" = String, description = "public, max-age=N: the ring's jwks_max_age_seconds"))),
        (status = 304, description = "Not modified since the ETag given", headers(("ETag" = String, description = "A strong validator of the body"), ("Cache-Control" = String, description = "public, max-age=N: the ring's jwks_max_age_seconds"))),
        (status = 503, description = "`jwks_too_large`", body = ErrorBody),
    ))]
pub async fn all(req: HttpRequest, state: web::Data<Services>) -> Result<HttpResponse, ApiError> {
    match &state.rings.view().combined {
        Ok(jwks) => Ok(serve(&req, jwks)),
        Err(CombinedTooLarge) => Err(ApiError::new(
            ErrorCode::JwksTooLarge,
            format!(
                "the combined JWKS would list more than {COMBINED_JWKS_MAX_KEYS} keys, more than \
                 verifiers accept; fetch each ring's /v1/rings/{{ring}}/jwks.json instead"
            ),
        )),
    }
}

#[utoipa::path(get, path = "/v1/rings/{ring}/jwks.json", tag = "keys", params(("ring" = RingName, Path, description = "The ring's name"), ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer")),
    responses(
        (status = 200, description = "The ring's published keys", body = JwkSet, content_type = "application/jwk-set+json", headers(("ETag" = String, description = "A strong validator of the body"), ("Cache-Control" = String, description = "public, max-age=N: the ring's jwks_max_age_seconds"))),
        (status = 304, description = "Not modified since the ETag given", headers(("ETag" = String, description = "A strong validator of the body"), ("Cache-Control" = String, description = "public, max-age=N: the ring's jwks_max_age_seconds"))),
        (status = 404, description = "`ring_not_found`", body = ErrorBody),
    ))]
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
