//! Ring names and key ids: parsed where they enter (a request path or body, a CLI argument, a
//! stored row), so a value that reaches a lookup, a log line or an audit record is one of these.

use std::fmt;
use std::ops::Deref;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// The name of the reserved ring whose keys sign audit checkpoints. No user ring may take it.
pub const AUDIT_RING: &str = "_audit";

/// A ring's name: 1-64 characters of `a-z`, `0-9`, `-` and `_`, starting with a letter or a
/// digit; or the reserved [`AUDIT_RING`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RingName(String);

impl RingName {
    pub const GRAMMAR: &'static str =
        "ring names are 1-64 characters of a-z, 0-9, '-' and '_', starting with a letter or digit";

    pub fn parse(name: &str) -> Result<RingName, String> {
        let ok = name == AUDIT_RING
            || ((1..=64).contains(&name.len())
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                })
                && name.as_bytes()[0].is_ascii_alphanumeric());
        if ok {
            Ok(RingName(name.to_owned()))
        } else {
            Err(RingName::GRAMMAR.into())
        }
    }

    /// The reserved audit ring's name.
    pub fn audit() -> RingName {
        RingName(AUDIT_RING.to_owned())
    }

    pub fn is_audit(&self) -> bool {
        self.0 == AUDIT_RING
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A key's `kid`: the RFC 7638 thumbprint of its public key, 43 characters of base64url.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Kid(String);

impl Kid {
    pub fn parse(kid: &str) -> Result<Kid, String> {
        if kid.len() == 43
            && kid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            Ok(Kid(kid.to_owned()))
        } else {
            Err("a kid is the 43-character base64url thumbprint of a key".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The kid of a key whose RFC 7638 thumbprint (the SHA-256 of its canonical JWK) is
    /// `digest`.
    pub fn from_thumbprint(digest: &[u8]) -> Kid {
        Kid(URL_SAFE_NO_PAD.encode(digest))
    }
}

macro_rules! text_type {
    ($name:ident) => {
        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(text: &str) -> Result<$name, String> {
                $name::parse(text)
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(text: String) -> Result<$name, String> {
                $name::parse(&text)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

text_type!(RingName);
text_type!(Kid);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_names_follow_their_grammar() {
        for good in ["orders", "a", "0-api_v2", AUDIT_RING, &"x".repeat(64)] {
            assert!(RingName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Orders",
            "-x",
            "_x",
            "a/b",
            "a\0b",
            "é",
            &"x".repeat(65),
        ] {
            assert!(RingName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(RingName::audit().is_audit());
    }

    #[test]
    fn kids_are_thumbprints() {
        assert!(Kid::parse("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs").is_ok());
        for bad in [
            "",
            "no-such-kid",
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9X=",
            "a\0",
        ] {
            assert!(Kid::parse(bad).is_err(), "{bad:?}");
        }
    }
}
