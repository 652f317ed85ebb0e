//! The key backends signet knows.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Every backend signet knows. A ring asking for one this server has not configured (no PKCS#11
/// token set up, say) is refused as not configured.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    #[default]
    File,
    Pkcs11,
    AwsKms,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::File => "file",
            BackendKind::Pkcs11 => "pkcs11",
            BackendKind::AwsKms => "aws-kms",
        }
    }

    pub fn parse(s: &str) -> Option<BackendKind> {
        [BackendKind::File, BackendKind::Pkcs11, BackendKind::AwsKms]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
