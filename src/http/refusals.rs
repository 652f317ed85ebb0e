//! The gate every request passes: a caller without a client token is held to its source
//! address's rate limit before anything else is done for it, and every refused request is
//! accounted for in the audit log (README, Audit log):
//! - refused to an authenticated client (401, 403, 422): one record each, written before the
//!   answer is sent;
//! - refused without authentication, or over a rate limit (429): counted per principal, source,
//!   status, code and minute (`crate::audit`'s tally), so no flood of them can grow the log or
//!   slow the audit writer by more than a bounded amount. The token presented is never recorded.
//!
//! It also reads the body within its deadline ([`body::read_within`]) once the caller is
//! admitted.

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, ConnectionType, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};

use super::{body, ApiError, Callers, Services};
use crate::audit::Refusal;
use crate::auth::Principal;
use crate::clock::now_ms;
use crate::domain::{AuditEvent, AuditRecord, CallerText, ErrorCode, Kid, RingName};

/// Paths never limited or recorded: what orchestrators poll.
const PROBES: [&str; 2] = ["/healthz", "/readyz"];

/// Middleware (`actix_web::middleware::from_fn`).
pub async fn gate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if PROBES.contains(&req.path()) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let callers = req
        .app_data::<web::Data<Callers>>()
        .cloned()
        .expect("the callers are registered");
    let source = callers.source(req.request());
    let mut req = req;
    let admitted = if req.headers().contains_key(header::AUTHORIZATION) {
        Ok(())
    } else {
        callers.admit_anonymous(&source)
    };
    if let Err(refused) = admitted {
        let response = req
            .into_response(refused.error_response())
            .map_into_right_body();
        account(&response, source, Some(&refused)).await;
        return Ok(response);
    }
    if let Err(refused) = body::read_within(&mut req, callers.settings().body_timeout).await {
        let mut response = refused.error_response();
        response
            .head_mut()
            .set_connection_type(ConnectionType::Close);
        return Ok(req.into_response(response).map_into_right_body());
    }
    let response = next.call(req).await?.map_into_left_body();
    account(&response, source, None).await;
    Ok(response)
}

/// Records or counts `response` if it is a refusal.
async fn account<B>(response: &ServiceResponse<B>, source: String, error: Option<&ApiError>) {
    let status = response.status();
    if !matches!(
        status,
        StatusCode::UNAUTHORIZED
            | StatusCode::FORBIDDEN
            | StatusCode::UNPROCESSABLE_ENTITY
            | StatusCode::TOO_MANY_REQUESTS
    ) {
        return;
    }
    let request = response.request();
    let Some(services) = request.app_data::<web::Data<Services>>().cloned() else {
        return;
    };
    let (code, reason) = error
        .or_else(|| {
            response
                .response()
                .error()
                .and_then(|e| e.as_error::<ApiError>())
        })
        // Every refusal of ours is an ApiError; a status from elsewhere is named by its class.
        .map_or_else(
            || {
                let code = match status {
                    StatusCode::UNAUTHORIZED => ErrorCode::Unauthenticated,
                    StatusCode::FORBIDDEN => ErrorCode::Forbidden,
                    StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
                    _ => ErrorCode::InvalidRequest,
                };
                (code, String::new())
            },
            |e| (e.code, e.message.clone()),
        );
    // Only names that can be a ring's or a key's: a path is the caller's to make up.
    let ring = request
        .match_info()
        .get("ring")
        .and_then(|ring| RingName::parse(ring).ok());
    let kid = request
        .match_info()
        .get("kid")
        .and_then(|kid| Kid::parse(kid).ok());
    let principal = request.extensions().get::<Arc<Principal>>().cloned();
    match principal {
        Some(client) if status != StatusCode::TOO_MANY_REQUESTS => {
            let mut record = AuditRecord::new(
                now_ms(),
                &client.actor(),
                AuditEvent::RequestDenied {
                    method: CallerText::stored(request.method().as_str()),
                    path: CallerText::stored(request.path()),
                    status: status.as_u16(),
                    code,
                    reason: CallerText::stored(&reason),
                },
            );
            record.ring = ring;
            record.kid = kid;
            services.audit.record_denial(record).await;
        }
        client => services.audit.count_refusal(Refusal {
            time: now_ms(),
            principal: client.map_or_else(|| "anonymous".to_owned(), |c| c.actor()),
            source,
            status: status.as_u16(),
            code,
            reason,
            method: request.method().as_str().to_owned(),
            path: request.path().to_owned(),
            ring,
            kid,
        }),
    }
}
