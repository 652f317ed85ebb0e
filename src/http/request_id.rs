//! Every request gets an id: answered in `X-Request-Id` and in every error body, and carried by
//! every log line written while the request is served, so an operator finds the detail behind a
//! caller's "internal error".

use std::fmt;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

tokio::task_local! {
    static CURRENT: RequestId;
}

/// 64 random bits, shown as 16 hex digits.
#[derive(Clone, Copy)]
pub struct RequestId(u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The id of the request being served, if any.
pub fn current() -> Option<RequestId> {
    CURRENT.try_with(|id| *id).ok()
}

/// Middleware (`actix_web::middleware::from_fn`), outermost.
pub async fn assign(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = RequestId(crate::random::random_u64());
    let span = tracing::info_span!("request", id = %id);
    let mut response = CURRENT.scope(id, next.call(req).instrument(span)).await?;
    response.headers_mut().insert(
        HeaderName::from_static("x-request-id"),
        HeaderValue::from_str(&id.to_string()).expect("hex digits are a header value"),
    );
    Ok(response)
}
