//! The one error shape of the API (docs/design.md, API conventions):
//! `{"error": {"code", "message", "request_id"}}` with the status chosen by the error's variant,
//! never by its text. Codes are stable; messages are for people, are ours (never a library's or
//! the database's text), and echo at most a bounded prefix of the caller's input. A 5xx says
//! only what kind of thing failed: the detail goes to the log, under the same request id.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;
use signet_core::ProviderError;

use super::request_id;
use crate::audit::AuditError;
use crate::auth::{AuthError, ClientError};
use crate::domain::CallerText;
use crate::rings::RingError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds, for a 429 or a 503 that knows when to come back.
    retry_after: Option<u64>,
    /// The methods the path takes, for a 405.
    allow: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            allow: None,
        }
    }

    /// 405: the path exists, but not for this method.
    pub fn method_not_allowed(method: &str, path: &str, allow: String) -> ApiError {
        let message = format!(
            "{} takes {allow}, not {}",
            CallerText::echoed(path),
            CallerText::echoed(method)
        );
        ApiError {
            allow: Some(allow),
            ..ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                message,
            )
        }
    }

    pub fn retry_after(self, seconds: u64) -> ApiError {
        ApiError {
            retry_after: Some(seconds),
            ..self
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds));
        }
        if let Some(allow) = &self.allow {
            response.insert_header((header::ALLOW, allow.as_str()));
        }
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(id) = request_id::current() {
            error["request_id"] = json!(id.as_str());
        }
        response.json(json!({ "error": error }))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Unavailable(detail) => {
                tracing::error!(%detail, "database unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database is unavailable; retry later",
                )
            }
            StoreError::Conflict(detail) | StoreError::Changed(detail) => {
                tracing::info!(%detail, "conflicting change refused");
                ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "the change conflicts with the stored state; read it and retry",
                )
            }
            StoreError::Other(detail) | StoreError::Unreadable(detail) => {
                tracing::error!(%detail, "database error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "an internal database error occurred",
                )
            }
        }
    }
}

impl From<RingError> for ApiError {
    fn from(e: RingError) -> ApiError {
        let message = e.to_string();
        match e {
            RingError::Invalid(_) => ApiError::bad_request(message),
            RingError::DuplicateMember(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "duplicate_member", message)
            }
            RingError::RingNotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "ring_not_found", message)
            }
            RingError::KeyNotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "key_not_found", message)
            }
            RingError::RingExists(_) => ApiError::new(StatusCode::CONFLICT, "ring_exists", message),
            RingError::Conflict { code, .. } => ApiError::new(StatusCode::CONFLICT, code, message),
            RingError::Policy(v) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, v.code, v.message)
            }
            RingError::NoActiveKey(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_active_key", message)
            }
            RingError::BackendNotConfigured(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "backend_not_configured",
                message,
            ),
            RingError::Provider { backend, error } => {
                let (status, code, public) = match error {
                    ProviderError::Unavailable(_) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "backend_unavailable",
                        format!("the {backend} backend is unavailable; retry later"),
                    ),
                    // The backend crate's own words about what it lacks: ours, and no secret.
                    ProviderError::Unsupported(_) => (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "unsupported_by_backend",
                        message.clone(),
                    ),
                    ProviderError::NotFound(_) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "backend_key_missing",
                        format!("the {backend} backend no longer holds this key"),
                    ),
                    ProviderError::Backend(_) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "backend_error",
                        format!("the {backend} backend failed"),
                    ),
                };
                tracing::error!(error = %message, "key backend error");
                ApiError::new(status, code, public)
            }
            RingError::UnreadableSchedules(_) => {
                tracing::error!(error = %message, "stored data cannot be read");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "stored data cannot be read",
                )
            }
            RingError::Store(e) => e.into(),
        }
    }
}

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> ApiError {
        let message = e.to_string();
        match e {
            AuditError::RingNotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "ring_not_found", message)
            }
            AuditError::KeyNotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "key_not_found", message)
            }
            AuditError::Store(e) => e.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        let message = e.to_string();
        match e {
            AuthError::Missing | AuthError::Invalid => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
            }
            AuthError::Forbidden(_) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
            AuthError::Store(e) => e.into(),
        }
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> ApiError {
        let message = e.to_string();
        match e {
            ClientError::Invalid(_) => ApiError::bad_request(message),
            ClientError::Exists(_) => ApiError::new(StatusCode::CONFLICT, "client_exists", message),
            ClientError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "client_not_found", message)
            }
            ClientError::Store(e) => e.into(),
        }
    }
}
