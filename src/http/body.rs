//! Request bodies: read whole, within a deadline and a size limit, before any handler runs (a
//! body that trickles in or never arrives is cut, and its connection closed), then parsed as
//! strict JSON ([`crate::json`]) by the [`Json`] extractor and [`optional_json`].

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::dev::{Payload, ServiceRequest};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use super::{ApiError, MAX_BODY_BYTES};
use crate::domain::ErrorCode;
use crate::json::{self, JsonError};

/// Reads the body of `req` into memory and puts it back, so that handlers find it whole.
/// `Err` is the answer to send instead (and the connection is to be closed).
pub async fn read_within(req: &mut ServiceRequest, deadline: Duration) -> Result<(), ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let (request, payload) = req.parts_mut();
    let read = web::Bytes::from_request(request, payload);
    let body = tokio::time::timeout(deadline, read)
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::BodyTimeout,
                format!(
                    "the request body did not arrive within {} seconds",
                    deadline.as_secs()
                ),
            )
        })?
        .map_err(|e| match e.as_error::<PayloadError>() {
            Some(PayloadError::Overflow) => too_large(),
            _ => ApiError::bad_request("the request body could not be read"),
        })?;
    req.set_payload(Payload::from(body));
    Ok(())
}

fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::BodyTooLarge,
        format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
    )
}

/// The API's answer to a body that is not the JSON a request takes.
fn refused(error: &JsonError) -> ApiError {
    match error {
        JsonError::Duplicate { .. } => ApiError::new(ErrorCode::DuplicateMember, error.to_string()),
        JsonError::Syntax { .. } | JsonError::Invalid { .. } => {
            ApiError::bad_request(error.to_string())
        }
    }
}

/// How a body is encoded, by its `Content-Type`.
enum Encoding {
    /// `application/json`, or a `+json` type.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
}

/// The encoding `req` says its body has, of those taken (forms only where `forms`); parameters
/// such as `charset` are ignored.
fn encoding(req: &HttpRequest, forms: bool) -> Option<Encoding> {
    let essence = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|essence| essence.trim().to_ascii_lowercase())?;
    if essence == "application/json" || essence.ends_with("+json") {
        Some(Encoding::Json)
    } else if forms && essence == "application/x-www-form-urlencoded" {
        Some(Encoding::Form)
    } else {
        None
    }
}

type Extracted<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

/// The body of `req`, read strictly as JSON, or (where `forms`) as a form.
fn parse<T: DeserializeOwned + 'static>(
    req: &HttpRequest,
    payload: &mut Payload,
    forms: bool,
) -> Extracted<T> {
    let encoding = encoding(req, forms);
    let bytes = web::Bytes::from_request(req, payload);
    Box::pin(async move {
        let Some(encoding) = encoding else {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                if forms {
                    "send JSON (Content-Type: application/json) or a form \
                     (application/x-www-form-urlencoded)"
                } else {
                    "send JSON with Content-Type: application/json"
                },
            ));
        };
        let bytes = bytes.await.map_err(|_| too_large())?;
        match encoding {
            Encoding::Json => json::from_slice(&bytes).map_err(|e| refused(&e)),
            Encoding::Form => serde_urlencoded::from_bytes(&bytes).map_err(|_| {
                ApiError::bad_request("the form does not hold what this request takes")
            }),
        }
    })
}

/// A JSON body, required, with `Content-Type: application/json`.
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Extracted<Json<T>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = parse(req, payload, false);
        Box::pin(async move { body.await.map(Json) })
    }
}

/// A body in JSON or form-encoded, for an endpoint whose RFC speaks forms (RFC 7662).
pub struct JsonOrForm<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonOrForm<T> {
    type Error = ApiError;
    type Future = Extracted<JsonOrForm<T>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = parse(req, payload, true);
        Box::pin(async move { body.await.map(JsonOrForm) })
    }
}

/// A JSON body that may be left out (empty or `null` means the type's default), parsed by the
/// handler once it has checked who is asking.
pub fn optional_json<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    json::from_slice::<Option<T>>(body)
        .map(Option::unwrap_or_default)
        .map_err(|e| refused(&e))
}
