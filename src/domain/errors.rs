//! The stable error codes of the API: each names one reason a request was refused and has the
//! one HTTP status it is answered with. Clients branch on the code, never on the message; the
//! OpenAPI document lists every code with its status and meaning.

use serde::{Serialize, Serializer};

macro_rules! error_codes {
    ($($variant:ident = $code:literal, $status:literal, $meaning:literal;)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The HTTP status a request refused with this code is answered with.
            pub fn status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $status,)*
                }
            }

            /// What the code means, for the API's documentation.
            pub fn meaning(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $meaning,)*
                }
            }
        }
    };
}

error_codes! {
    InvalidRequest = "invalid_request", 400,
        "the body, query or path is not what the operation takes";
    DuplicateMember = "duplicate_member", 400, "a JSON object names one member twice";
    Unauthenticated = "unauthenticated", 401,
        "no bearer token, or one that names no active client";
    RefreshTokenReused = "refresh_token_reused", 401,
        "the refresh token was used already: its whole family is revoked";
    Forbidden = "forbidden", 403, "the client's role or rings do not allow the operation";
    NotFound = "not_found", 404, "no route has this path";
    RingNotFound = "ring_not_found", 404, "no ring has this name";
    KeyNotFound = "key_not_found", 404, "no key has this kid";
    ClientNotFound = "client_not_found", 404, "no client has this id";
    MethodNotAllowed = "method_not_allowed", 405,
        "the path does not take this method; Allow lists those it takes";
    BodyTimeout = "body_timeout", 408, "the request body did not arrive in time";
    Conflict = "conflict", 409, "the change conflicts with the stored state; read it and retry";
    RingExists = "ring_exists", 409, "a ring has this name already";
    ClientExists = "client_exists", 409, "a client has this name already";
    ClientRevoked = "client_revoked", 409, "the client is revoked: its token cannot be rotated";
    KeyChanged = "key_changed", 409, "the ring's signing key changed while signing; sign again";
    KeyStateChanged = "key_state_changed", 409,
        "another process changed the key at the same time; read it and retry";
    KeyNotRevocable = "key_not_revocable", 409, "the key is revoked or destroyed already";
    RotationInProgress = "rotation_in_progress", 409,
        "the ring has a key on its way in already";
    JtiReused = "jti_reused", 409, "the ring has signed a token with this jti already";
    BodyTooLarge = "body_too_large", 413, "the request body is over the size limit";
    UnsupportedMediaType = "unsupported_media_type", 415,
        "the body is not sent as application/json";
    TokenInvalid = "token_invalid", 422,
        "the token is malformed, signed by no published key, expired, or not what was expected";
    TokenRevoked = "token_revoked", 422, "the token has been revoked";
    UnsupportedByBackend = "unsupported_by_backend", 422,
        "the ring's backend cannot do what the request asks";
    BackendNotConfigured = "backend_not_configured", 422,
        "the backend named is not configured on this server";
    IssuerMismatch = "issuer_mismatch", 422, "the iss is not the ring's issuer";
    AudienceRequired = "audience_required", 422, "the ring requires an aud among its audiences";
    AudienceNotAllowed = "audience_not_allowed", 422, "an aud is not among the ring's audiences";
    TtlExceedsMax = "ttl_exceeds_max", 422, "the lifetime is over the ring's max_ttl_seconds";
    InvalidTtl = "invalid_ttl", 422, "the lifetime is zero, or exp is not in the future";
    ReservedClaim = "reserved_claim", 422, "a claim the server sets (iat, exp, jti, nbf) is given";
    ForbiddenClaim = "forbidden_claim", 422, "a claim the ring forbids is given";
    MissingRequiredClaim = "missing_required_claim", 422,
        "a claim the ring requires is missing or null";
    InvalidClaim = "invalid_claim", 422, "a claim has a value the ring cannot accept";
    ClaimRuleViolated = "claim_rule_violated", 422,
        "a claim's value breaks the ring's claim_rules; the message names the claim and rule";
    InvalidExpiry = "invalid_expiry", 422,
        "expires_at is not an RFC 3339 time in the future, at most 10 years ahead";
    InvalidMetadata = "invalid_metadata", 422,
        "metadata is not a JSON object of at most 32 members, 4096 bytes and depth 4";
    InvalidBoundClaims = "invalid_bound_claims", 422,
        "bound_claims is not an object of at most 16 claims with scalar values, or names a \
         claim the server sets";
    BoundClaimMismatch = "bound_claim_mismatch", 422,
        "a claim bound to the client is given with another value; the message names the claim";
    RawSigningRefused = "raw_signing_refused", 422,
        "a ring of refresh tokens signs only through /sign and /refresh";
    HeaderMismatch = "header_mismatch", 422,
        "the header's alg, kid, typ or cty is not what the ring signs with";
    TokenTooLarge = "token_too_large", 422, "the token would be over the ring's max_token_bytes";
    InvalidRecipient = "invalid_recipient", 422,
        "encrypt_to names a key signet cannot encrypt to, or an alg that does not fit it";
    RecipientNotAllowed = "recipient_not_allowed", 422,
        "the ring's policy.encrypt_to does not name the recipient's key";
    TokenUndecryptable = "token_undecryptable", 422,
        "the token is a well-formed JWE for the ring, but it does not decrypt";
    WrongRingUse = "wrong_ring_use", 422,
        "the ring's keys are for the other use: signing rings sign, encryption rings decrypt";
    RateLimited = "rate_limited", 429, "over the caller's rate limit; retry after Retry-After";
    InternalError = "internal_error", 500, "the server failed; the log has the detail";
    BackendKeyMissing = "backend_key_missing", 500, "the backend no longer holds the key";
    BackendError = "backend_error", 500, "the key backend failed";
    DatabaseUnavailable = "database_unavailable", 503, "the database is unavailable; retry";
    BackendUnavailable = "backend_unavailable", 503, "the key backend is unavailable; retry";
    NoActiveKey = "no_active_key", 503, "the ring has no active key; rotate it";
    JwksTooLarge = "jwks_too_large", 503,
        "the combined JWKS would list more keys than verifiers accept";
    ShuttingDown = "shutting_down", 503, "the server is shutting down (readiness only)";
    TaskFailing = "task_failing", 503, "a background task is failing (readiness only)";
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::ErrorCode;

    #[test]
    fn codes_are_distinct_snake_case_and_answered_with_an_error_status() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} is listed twice");
            assert!(code
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert!((400..600).contains(&code.status()), "{code}");
        }
    }
}
