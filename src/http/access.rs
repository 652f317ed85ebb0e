//! The outermost middleware: gives the request its id ([`RequestId`]), and once it is answered
//! counts it in the metrics and writes its access log line (target `signet::access`): method,
//! route template, status, latency, client name and ring; never a token, a claim or a path a
//! caller made up.

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{ConnectionType, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use tracing::Instrument;

use super::request_id::RequestId;
use super::Services;
use crate::auth::Principal;
use crate::domain::RingName;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Middleware (`actix_web::middleware::from_fn`), outermost.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(RequestId::given)
        .unwrap_or_else(RequestId::generate);
    let span = tracing::info_span!("request", id = %id);
    let mut response = id.scope(next.call(req).instrument(span.clone())).await?;
    response.headers_mut().insert(
        REQUEST_ID,
        HeaderValue::from_str(id.as_str()).expect("a request id is a header value"),
    );
    let request = response.request();
    let services = request.app_data::<web::Data<Services>>().cloned();
    if services
        .as_ref()
        .is_some_and(|s| s.rings.health().shutting_down())
    {
        // Shutting down: the caller's next request opens a new connection, which a balancer
        // that has seen /readyz sends to a replica that serves.
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    let request = response.request();
    let route = request.match_pattern();
    let route = route.as_deref().unwrap_or("unmatched");
    let status = response.status();
    let client = request.extensions().get::<Arc<Principal>>().cloned();
    if let Some(services) = &services {
        let metrics = &services.metrics;
        metrics.http_request(route, request.method().as_str(), status.as_u16());
        if status == StatusCode::TOO_MANY_REQUESTS {
            metrics.rate_limited(client.is_some());
        }
    }
    let ring = request
        .match_info()
        .get("ring")
        .and_then(|ring| RingName::parse(ring).ok());
    span.in_scope(|| {
        tracing::info!(
            target: "signet::access",
            method = %request.method(),
            route,
            status = status.as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            client = client.as_ref().map(|c| c.name.as_str()),
            ring = ring.as_deref(),
        );
    });
    Ok(response)
}
