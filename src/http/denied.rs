//! Every denied request (401, 403, 422) is recorded in the audit log with its reason, the client
//! if one was authenticated, and the ring or key it named; never the token that was presented.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};

use super::{ApiError, Services};
use crate::auth::Principal;
use crate::clock::now_ms;
use crate::domain::{AuditEvent, AuditRecord, Kid, RingName};

/// Middleware (`actix_web::middleware::from_fn`): answers only once the denial's record has
/// committed, or failed to (which is logged; the denial stands either way).
pub async fn record_denials(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let response = next.call(req).await?;
    let status = response.status();
    if !matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::UNPROCESSABLE_ENTITY
    ) {
        return Ok(response);
    }
    let request = response.request();
    let Some(state) = request.app_data::<web::Data<Services>>().cloned() else {
        return Ok(response);
    };
    let (code, reason) = response
        .response()
        .error()
        .and_then(|e| e.as_error::<ApiError>())
        .map(|e| (e.code, e.message.clone()))
        .unwrap_or_default();
    let principal = request
        .extensions()
        .get::<Principal>()
        .map_or_else(|| "anonymous".to_owned(), Principal::actor);
    let record = AuditRecord {
        time: now_ms(),
        principal,
        // Only names that can be a ring's or a key's: a path is the caller's to make up.
        ring: request
            .match_info()
            .get("ring")
            .and_then(|ring| RingName::parse(ring).ok()),
        kid: request
            .match_info()
            .get("kid")
            .and_then(|kid| Kid::parse(kid).ok()),
        event: AuditEvent::RequestDenied {
            method: request.method().as_str().to_owned(),
            path: request.path().to_owned(),
            status: status.as_u16(),
            code: code.to_owned(),
            reason,
        },
    };
    state.audit.record_denial(record).await;
    Ok(response)
}
