//! API clients: a name, a role, the rings an issuer may sign for, and the SHA-256 of its token.

use serde::{Deserialize, Serialize};

/// What a client may do (docs/design.md, Clients and roles).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Issuer,
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Issuer => "issuer",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Admin, Role::Issuer, Role::Auditor]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

#[derive(Clone, Debug)]
pub struct ClientRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub rings: Vec<String>,
    pub token_hash: String,
    pub created_at: i64,
    pub created_by: String,
    pub revoked_at: Option<i64>,
}
