//! The one place AWS SDK errors become [`ProviderError`]s.
//!
//! KMS error codes are matched by name (`ProvideErrorMetadata::code`), so one function serves every
//! operation's error type. Throttling and transient failures have already been retried by the
//! SDK (see `client.rs`) when they arrive here: they become `Unavailable`, which the API answers
//! with 503. Messages name the operation and KMS's own explanation, never credentials.

use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use signet_core::ProviderError;

/// Maps an SDK error from `operation` (`"Sign"`, `"CreateKey"`, ...) to the trait's error enum.
pub(crate) fn from_sdk<E, R>(operation: &'static str, error: SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let detail = |message: Option<&str>| {
        format!(
            "aws-kms {operation}: {}",
            message.unwrap_or("no detail from KMS")
        )
    };
    match &error {
        SdkError::ServiceError(service) => {
            let err = service.err();
            let message = detail(err.message());
            match err.code().unwrap_or_default() {
                "NotFoundException" => ProviderError::NotFound(message),
                // A key pending deletion (or otherwise unusable) can no longer sign: for signet
                // it is gone, like a destroyed key.
                "KMSInvalidStateException" => ProviderError::NotFound(message),
                "ThrottlingException"
                | "LimitExceededException"
                | "KMSInternalException"
                | "DependencyTimeoutException"
                | "KeyUnavailableException"
                | "ServiceUnavailableException"
                | "InternalFailure" => ProviderError::Unavailable(message),
                "UnsupportedOperationException" | "InvalidKeyUsageException" => {
                    ProviderError::Unsupported(message)
                }
                // DisabledException (someone disabled the key in KMS), AccessDeniedException,
                // UnrecognizedClientException, ValidationException...: a retry will not fix them.
                code => ProviderError::Backend(format!("{message} ({code})")),
            }
        }
        // No answer: connection refused, DNS, timeouts. The same call may work later.
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ProviderError::Unavailable(format!(
                "aws-kms {operation}: KMS did not answer ({})",
                DisplayErrorContext(&error)
            ))
        }
        // The request could not be built: missing credentials or region, a bad endpoint.
        _ => ProviderError::Backend(format!(
            "aws-kms {operation}: {}",
            DisplayErrorContext(&error)
        )),
    }
}
