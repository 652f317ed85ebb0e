//! API clients: a name, a role, the rings an issuer may sign for, and the SHA-256 of its token.

use serde::{Deserialize, Serialize};

use super::{BoundClaims, ClientMetadata, ErrorCode, RateLimit, RingName, UnixMillis, Violation};

/// What a client may do (docs/design.md, Clients and roles).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Issuer,
    Auditor,
    /// Reads the state of its rings' tokens (`POST /v1/introspect`).
    Introspector,
    /// Decrypts tokens sent to its encryption rings (`POST /v1/rings/{ring}/decrypt`).
    Decryptor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Issuer => "issuer",
            Role::Auditor => "auditor",
            Role::Introspector => "introspector",
            Role::Decryptor => "decryptor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [
            Role::Admin,
            Role::Issuer,
            Role::Auditor,
            Role::Introspector,
            Role::Decryptor,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

#[derive(Clone, Debug)]
pub struct ClientRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The rings an issuer may sign for, an introspector read, or a decryptor decrypt for (empty
    /// for other roles).
    pub rings: Vec<RingName>,
    /// Its limit on sign requests; `None`: the server's default.
    pub rate_limit: Option<RateLimit>,
    pub token_hash: String,
    pub created_at: UnixMillis,
    pub created_by: String,
    pub revoked_at: Option<UnixMillis>,
    /// After it, the client's tokens are refused.
    pub expires_at: Option<UnixMillis>,
    /// Free-form, never interpreted.
    pub metadata: Option<ClientMetadata>,
    /// Claims every token an issuer signs carries with exactly these values.
    pub bound_claims: BoundClaims,
    /// The token a rotation replaced, still accepted until `previous_token_expires_at`.
    pub previous_token_hash: Option<String>,
    pub previous_token_expires_at: Option<UnixMillis>,
}

/// The furthest ahead a client's `expires_at` may be: ten years.
const MAX_EXPIRY_MS: i64 = 10 * 366 * 24 * 3600 * 1000;

/// A client's `expires_at` (RFC 3339): after `now`, at most ten years ahead.
pub fn client_expiry(text: &str, now: UnixMillis) -> Result<UnixMillis, Violation> {
    let refused = |message: &str| Violation {
        code: ErrorCode::InvalidExpiry,
        message: message.into(),
    };
    let at = chrono::DateTime::parse_from_rfc3339(text)
        .map(|at| UnixMillis::from_millis(at.timestamp_millis()))
        .map_err(|_| refused("expires_at must be an RFC 3339 time, like 2027-12-02T10:00:00Z"))?;
    if at <= now {
        return Err(refused("expires_at must be in the future"));
    }
    if at.ms_since(now) > MAX_EXPIRY_MS {
        return Err(refused("expires_at is at most 10 years ahead"));
    }
    Ok(at)
}

/// How long a rotated-out token keeps working: 0 to 7 days, 1 hour unless given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u32")]
pub struct Grace(u32);

impl Grace {
    pub const MAX_SECONDS: u32 = 7 * 24 * 3600;
    /// The old token is refused at once.
    pub const NONE: Grace = Grace(0);

    pub fn seconds(self) -> u32 {
        self.0
    }
}

impl Default for Grace {
    fn default() -> Grace {
        Grace(3600)
    }
}

impl TryFrom<u32> for Grace {
    type Error = String;

    fn try_from(seconds: u32) -> Result<Grace, String> {
        if seconds <= Grace::MAX_SECONDS {
            Ok(Grace(seconds))
        } else {
            Err(format!("grace_seconds is 0 to {}", Grace::MAX_SECONDS))
        }
    }
}

/// A client's name: 1-64 characters of `A-Z`, `a-z`, `0-9`, `.`, `_` and `-`, starting with a
/// letter or digit (it names the client in every audit record it causes, so it may hold nothing
/// that renders as something else).
pub fn check_client_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err("client names are 1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or digit".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_in_the_future_and_at_most_ten_years_ahead() {
        let now = UnixMillis::from_secs(1_800_000_000); // 2027-01-15T08:00:00Z
        let code = |text: &str| client_expiry(text, now).map_err(|v| v.code);
        assert_eq!(
            code("2027-01-15T08:00:01Z"),
            Ok(UnixMillis::from_secs(1_800_000_001))
        );
        assert!(code("2036-12-31T00:00:00Z").is_ok());
        for bad in [
            "2027-01-15T08:00:00Z",
            "2020-01-01T00:00:00Z",
            "2037-02-01T00:00:00Z",
            "tomorrow",
            "",
        ] {
            assert_eq!(code(bad), Err(ErrorCode::InvalidExpiry), "{bad}");
        }
    }

    #[test]
    fn grace_is_at_most_a_week() {
        assert_eq!(Grace::default().seconds(), 3600);
        assert_eq!(Grace::try_from(604_800).map(Grace::seconds), Ok(604_800));
        assert!(Grace::try_from(604_801).is_err());
    }

    #[test]
    fn client_names_are_plain() {
        for good in ["svc", "bootstrap-admin", "A.b_c-9", &"x".repeat(64)] {
            assert!(check_client_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-x",
            "a b",
            "a\0",
            "a\nb",
            "\u{1b}[31m",
            "a\u{202e}b",
            "é",
            &"x".repeat(65),
        ] {
            assert!(check_client_name(bad).is_err(), "{bad:?}");
        }
    }
}
