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
                // A key pending deletion (or otherwise unusable) can no longer sign: for signet
                // it is gone, like a destroyed key.
                "NotFoundException" | "KMSInvalidStateException" => {
                    ProviderError::NotFound(message)
                }
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

/// As [`from_sdk`], except that the KMS error codes in `refusals`, by which `operation` says a
/// key refused its input (a ciphertext, a peer's public key), become `Rejected`, which says no
/// more than that.
pub(crate) fn refusal_or_from_sdk<E, R>(
    operation: &'static str,
    error: SdkError<E, R>,
    refusals: &[&str],
) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match &error {
        SdkError::ServiceError(service)
            if service
                .err()
                .code()
                .is_some_and(|code| refusals.contains(&code)) =>
        {
            ProviderError::Rejected
        }
        _ => from_sdk(operation, error),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_kms::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_kms::operation::sign::SignError;

    use super::*;

    fn service(code: &str) -> ProviderError {
        let err = SignError::generic(
            ErrorMetadata::builder()
                .code(code)
                .message("what KMS said")
                .build(),
        );
        from_sdk("Sign", SdkError::service_error(err, ()))
    }

    #[test]
    fn kms_error_codes_map_to_what_a_caller_can_do_about_them() {
        for code in [
            "ThrottlingException",
            "KMSInternalException",
            "DependencyTimeoutException",
            "KeyUnavailableException",
        ] {
            assert!(
                matches!(service(code), ProviderError::Unavailable(_)),
                "{code}"
            );
        }
        for code in ["NotFoundException", "KMSInvalidStateException"] {
            assert!(
                matches!(service(code), ProviderError::NotFound(_)),
                "{code}"
            );
        }
        for code in ["UnsupportedOperationException", "InvalidKeyUsageException"] {
            assert!(
                matches!(service(code), ProviderError::Unsupported(_)),
                "{code}"
            );
        }
        for code in [
            "DisabledException",
            "AccessDeniedException",
            "ValidationException",
        ] {
            match service(code) {
                ProviderError::Backend(message) => {
                    assert!(message.contains(code), "{message}");
                    assert!(message.contains("aws-kms Sign: what KMS said"), "{message}");
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    #[test]
    fn only_the_named_refusals_become_rejected() {
        let refusal = |code: &str| {
            let err = SignError::generic(
                ErrorMetadata::builder()
                    .code(code)
                    .message("what KMS said")
                    .build(),
            );
            refusal_or_from_sdk(
                "Decrypt",
                SdkError::service_error(err, ()),
                &["InvalidCiphertextException"],
            )
        };
        assert!(matches!(
            refusal("InvalidCiphertextException"),
            ProviderError::Rejected
        ));
        assert!(matches!(
            refusal("NotFoundException"),
            ProviderError::NotFound(_)
        ));
        assert!(matches!(
            refusal("ThrottlingException"),
            ProviderError::Unavailable(_)
        ));
        let timeout = SdkError::<SignError, ()>::timeout_error("slow");
        assert!(matches!(
            refusal_or_from_sdk("Decrypt", timeout, &["InvalidCiphertextException"]),
            ProviderError::Unavailable(_)
        ));
    }

    #[test]
    fn no_answer_is_unavailable_and_a_request_that_cannot_be_built_is_not() {
        let timeout = SdkError::<SignError, ()>::timeout_error("slow");
        assert!(matches!(
            from_sdk("Sign", timeout),
            ProviderError::Unavailable(_)
        ));
        let refused =
            SdkError::<SignError, ()>::dispatch_failure(ConnectorError::io("refused".into()));
        assert!(matches!(
            from_sdk("Sign", refused),
            ProviderError::Unavailable(_)
        ));
        let unbuilt = SdkError::<SignError, ()>::construction_failure("no region");
        assert!(matches!(
            from_sdk("Sign", unbuilt),
            ProviderError::Backend(_)
        ));
    }
}
