//! API clients: a name, a role, the rings an issuer may sign for, and the SHA-256 of its token.

use serde::{Deserialize, Serialize};

use super::{RateLimit, RingName, UnixMillis};

/// What a client may do (docs/design.md, Clients and roles).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Issuer,
    Auditor,
    /// Reads the state of its rings' tokens (`POST /v1/introspect`).
    Introspector,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Issuer => "issuer",
            Role::Auditor => "auditor",
            Role::Introspector => "introspector",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Admin, Role::Issuer, Role::Auditor, Role::Introspector]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

#[derive(Clone, Debug)]
pub struct ClientRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The rings an issuer may sign for, or an introspector read (empty for other roles).
    pub rings: Vec<RingName>,
    /// Its limit on sign requests; `None`: the server's default.
    pub rate_limit: Option<RateLimit>,
    pub token_hash: String,
    pub created_at: UnixMillis,
    pub created_by: String,
    pub revoked_at: Option<UnixMillis>,
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
