//! What can go wrong inside the PKCS#11 backend, and the one place it becomes a [`ProviderError`].

use cryptoki::error::{Error, RvError};
use signet_core::{Algorithm, KeySpec, KeyUse, ProviderError};

#[derive(Debug)]
pub(crate) enum Fault {
    /// A PKCS#11 call failed; `what` says which of ours.
    Call {
        what: &'static str,
        error: Error,
    },
    /// No object on the token for this key.
    NoSuchKey(String),
    /// A reference that does not name a key of this backend and token.
    BadReference(String),
    /// The token holds an object of a kind signet does not make (an unknown curve, key type, or
    /// an encoding it cannot read).
    Unrecognised(String),
    WrongAlgorithm {
        spec: KeySpec,
        alg: Algorithm,
    },
    /// A key asked to do what its use or spec does not allow (sign with an encryption key,
    /// decrypt with a signing or EC key, ECDH with an RSA key, an Ed25519 encryption key).
    WrongUse {
        spec: KeySpec,
        usage: KeyUse,
        operation: &'static str,
    },
    /// The token lacks a mechanism or parameter signet needs for this (RSA-OAEP with SHA-256 on
    /// SoftHSM 2.6.1); the PKCS#11 error says which.
    Lacks {
        what: &'static str,
        error: Error,
    },
    /// The key's operation refused its input (a ciphertext that does not decrypt, a point that
    /// is not on the key's curve).
    Rejected,
    TaskFailed(String),
    /// The provider was closed: the service is stopping.
    Closed,
}

impl Fault {
    pub(crate) fn call(what: &'static str) -> impl FnOnce(Error) -> Fault {
        move |error| Fault::Call { what, error }
    }

    /// Whether the session or the handles it used may have gone stale (token removed and
    /// reinserted, session closed under us, login lost): worth one retry on a fresh session.
    pub(crate) fn is_stale_session(&self) -> bool {
        matches!(
            self,
            Fault::Call {
                error: Error::Pkcs11(
                    RvError::SessionHandleInvalid
                        | RvError::SessionClosed
                        | RvError::UserNotLoggedIn
                        | RvError::DeviceRemoved
                        | RvError::TokenNotPresent
                        | RvError::KeyHandleInvalid
                        | RvError::ObjectHandleInvalid,
                    _
                ),
                ..
            }
        )
    }
}

impl From<Fault> for ProviderError {
    fn from(fault: Fault) -> ProviderError {
        match fault {
            Fault::Call { what, error } => {
                let message = format!("pkcs11 backend: {what} failed: {}", describe(&error));
                match error {
                    Error::Pkcs11(rv, _) => match rv {
                        RvError::SessionHandleInvalid
                        | RvError::SessionClosed
                        | RvError::SessionCount
                        | RvError::UserNotLoggedIn
                        | RvError::DeviceRemoved
                        | RvError::DeviceError
                        | RvError::DeviceMemory
                        | RvError::HostMemory
                        | RvError::TokenNotPresent
                        | RvError::FunctionFailed
                        | RvError::PinLocked
                        | RvError::CryptokiNotInitialized => ProviderError::Unavailable(message),
                        RvError::MechanismInvalid
                        | RvError::MechanismParamInvalid
                        | RvError::CurveNotSupported
                        | RvError::DomainParamsInvalid
                        | RvError::KeySizeRange
                        | RvError::KeyTypeInconsistent
                        | RvError::KeyFunctionNotPermitted
                        | RvError::TemplateInconsistent
                        | RvError::AttributeValueInvalid => ProviderError::Unsupported(message),
                        RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid => {
                            ProviderError::NotFound(message)
                        }
                        _ => ProviderError::Backend(message),
                    },
                    Error::LibraryLoading(_) => ProviderError::Unavailable(message),
                    _ => ProviderError::Backend(message),
                }
            }
            Fault::NoSuchKey(key) => {
                ProviderError::NotFound(format!("pkcs11 token has no key {key}"))
            }
            Fault::BadReference(reference) => ProviderError::NotFound(format!(
                "not a key of this pkcs11 backend and token: {reference:?}"
            )),
            Fault::Unrecognised(what) => ProviderError::Backend(format!("pkcs11 backend: {what}")),
            Fault::WrongAlgorithm { spec, alg } => {
                ProviderError::Unsupported(format!("a {} key cannot sign {alg}", spec.as_str()))
            }
            Fault::WrongUse {
                spec,
                usage,
                operation,
            } => ProviderError::Unsupported(format!(
                "pkcs11 backend: a {} key for {} cannot {operation}",
                spec.as_str(),
                match usage {
                    KeyUse::Sign => "signing",
                    KeyUse::Encrypt => "encryption",
                }
            )),
            Fault::Lacks { what, error } => ProviderError::Unsupported(format!(
                "pkcs11 backend: the token does not do {what} ({})",
                describe(&error)
            )),
            Fault::Rejected => ProviderError::Rejected,
            Fault::TaskFailed(e) => {
                ProviderError::Backend(format!("pkcs11 backend task failed: {e}"))
            }
            Fault::Closed => ProviderError::Unavailable("pkcs11 backend: closed".into()),
        }
    }
}

/// A PKCS#11 error in a line: the function and the return value's name (the crate's own
/// descriptions are paragraphs of the specification).
pub(crate) fn describe(error: &Error) -> String {
    match error {
        Error::Pkcs11(rv, function) => format!("{function:?} returned {rv:?}"),
        other => other.to_string(),
    }
}
