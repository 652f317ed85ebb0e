//! The one error shape of the API (docs/design.md, API conventions): `{"error": {"code", "message"}}` with the status
//! chosen by the error's variant, never by its text. Codes are stable; messages are for people.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;
use signet_core::ProviderError;

use crate::auth::{AuthError, ClientError};
use crate::rings::RingError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
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
        response.json(json!({"error": {"code": self.code, "message": self.message}}))
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
            StoreError::Conflict(detail) => ApiError::new(StatusCode::CONFLICT, "conflict", detail),
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
            RingError::Provider { error, .. } => {
                let (status, code) = match error {
                    ProviderError::Unavailable(_) => {
                        (StatusCode::SERVICE_UNAVAILABLE, "backend_unavailable")
                    }
                    ProviderError::Unsupported(_) => {
                        (StatusCode::UNPROCESSABLE_ENTITY, "unsupported_by_backend")
                    }
                    ProviderError::NotFound(_) => {
                        (StatusCode::INTERNAL_SERVER_ERROR, "backend_key_missing")
                    }
                    ProviderError::Backend(_) => {
                        (StatusCode::INTERNAL_SERVER_ERROR, "backend_error")
                    }
                };
                tracing::error!(error = %message, "key backend error");
                ApiError::new(status, code, message)
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
