//! The one error shape of the API (docs/design.md, API conventions):
//! `{"error": {"code", "message", "request_id"}}` with the status chosen by the error's variant,
//! never by its text. Codes are stable; messages are for people, are ours (never a library's or
//! the database's text), and echo at most a bounded prefix of the caller's input. A 5xx says
//! only what kind of thing failed: the detail goes to the log, under the same request id.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use signet_core::ProviderError;
use utoipa::ToSchema;

use super::request_id;
use crate::audit::AuditError;
use crate::auth::{AuthError, ClientError};
use crate::domain::{CallerText, ErrorCode};
use crate::rings::RingError;
use crate::store::StoreError;
use crate::tokens::TokenError;

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds, for a 429 or a 503 that knows when to come back.
    retry_after: Option<u64>,
    /// The methods the path takes, for a 405.
    allow: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
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
            ..ApiError::new(ErrorCode::MethodNotAllowed, message)
        }
    }

    pub fn retry_after(self, seconds: u64) -> ApiError {
        ApiError {
            retry_after: Some(seconds),
            ..self
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidRequest, message)
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).expect("error codes carry valid statuses")
    }
}

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize, ToSchema)]
struct ErrorDetail<'a> {
    code: ErrorCode,
    /// For people: ours, never a library's text, echoing at most a bounded prefix of the input.
    message: &'a str,
    /// The request's id, as in the `X-Request-Id` answer header and the server's log.
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status(), self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status());
        if self.code == ErrorCode::Unauthenticated {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds));
        }
        if let Some(allow) = &self.allow {
            response.insert_header((header::ALLOW, allow.as_str()));
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                request_id: request_id::current().map(|id| id.as_str().to_owned()),
            },
        })
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Unavailable(detail) => {
                tracing::error!(%detail, "database unavailable");
                ApiError::new(
                    ErrorCode::DatabaseUnavailable,
                    "the database is unavailable; retry later",
                )
            }
            StoreError::Conflict(detail) | StoreError::Changed(detail) => {
                tracing::info!(%detail, "conflicting change refused");
                ApiError::new(
                    ErrorCode::Conflict,
                    "the change conflicts with the stored state; read it and retry",
                )
            }
            StoreError::Other(detail) | StoreError::Unreadable(detail) => {
                tracing::error!(%detail, "database error");
                ApiError::new(
                    ErrorCode::InternalError,
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
            RingError::DuplicateMember(_) => ApiError::new(ErrorCode::DuplicateMember, message),
            RingError::RingNotFound(_) => ApiError::new(ErrorCode::RingNotFound, message),
            RingError::KeyNotFound(_) => ApiError::new(ErrorCode::KeyNotFound, message),
            RingError::RingExists(_) => ApiError::new(ErrorCode::RingExists, message),
            RingError::Conflict { code, .. } => ApiError::new(code, message),
            RingError::Policy(v) => ApiError::new(v.code, v.message),
            RingError::NoActiveKey(_) => ApiError::new(ErrorCode::NoActiveKey, message),
            RingError::BackendNotConfigured(_) => {
                ApiError::new(ErrorCode::BackendNotConfigured, message)
            }
            RingError::Provider { backend, error } => {
                let (code, public) = match error {
                    ProviderError::Unavailable(_) => (
                        ErrorCode::BackendUnavailable,
                        format!("the {backend} backend is unavailable; retry later"),
                    ),
                    // The backend crate's own words about what it lacks: ours, and no secret.
                    ProviderError::Unsupported(_) => {
                        (ErrorCode::UnsupportedByBackend, message.clone())
                    }
                    ProviderError::NotFound(_) => (
                        ErrorCode::BackendKeyMissing,
                        format!("the {backend} backend no longer holds this key"),
                    ),
                    ProviderError::Backend(_) => (
                        ErrorCode::BackendError,
                        format!("the {backend} backend failed"),
                    ),
                    ProviderError::Rejected => (
                        ErrorCode::TokenUndecryptable,
                        "the token could not be decrypted".to_owned(),
                    ),
                };
                tracing::error!(error = %message, "key backend error");
                ApiError::new(code, public)
            }
            RingError::UnreadableSchedules(_) => {
                tracing::error!(error = %message, "stored data cannot be read");
                ApiError::new(ErrorCode::InternalError, "stored data cannot be read")
            }
            RingError::Store(e) => e.into(),
        }
    }
}

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> ApiError {
        let message = e.to_string();
        match e {
            AuditError::RingNotFound(_) => ApiError::new(ErrorCode::RingNotFound, message),
            AuditError::KeyNotFound(_) => ApiError::new(ErrorCode::KeyNotFound, message),
            AuditError::Store(e) => e.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        let message = e.to_string();
        match e {
            AuthError::Missing | AuthError::Invalid => {
                ApiError::new(ErrorCode::Unauthenticated, message)
            }
            AuthError::Forbidden(_) => ApiError::new(ErrorCode::Forbidden, message),
            AuthError::Store(e) => e.into(),
        }
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> ApiError {
        let message = e.to_string();
        match e {
            ClientError::Invalid(_) => ApiError::bad_request(message),
            ClientError::Exists(_) => ApiError::new(ErrorCode::ClientExists, message),
            ClientError::NotFound(_) => ApiError::new(ErrorCode::ClientNotFound, message),
            ClientError::Revoked(_) => ApiError::new(ErrorCode::ClientRevoked, message),
            ClientError::Refused(v) => ApiError::new(v.code, v.message),
            ClientError::Store(e) => e.into(),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> ApiError {
        let message = e.to_string();
        match e {
            TokenError::Invalid(_) => ApiError::new(ErrorCode::TokenInvalid, message),
            TokenError::Revoked => ApiError::new(ErrorCode::TokenRevoked, message),
            TokenError::Reused => ApiError::new(ErrorCode::RefreshTokenReused, message),
            TokenError::Request(_) => ApiError::bad_request(message),
            TokenError::Auth(e) => e.into(),
            TokenError::Ring(e) => e.into(),
        }
    }
}
