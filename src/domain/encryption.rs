//! The JWE algorithms an encryption ring and a nested token use (RFC 7518 §4.1, §5.1).

use serde::{Deserialize, Serialize};

/// How the content-encryption key reaches the recipient (the JWE `alg`, RFC 7518 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum KeyManagement {
    /// RSAES-OAEP with SHA-1 and MGF1-SHA-1 (RFC 7518 §4.3).
    #[serde(rename = "RSA-OAEP")]
    RsaOaep,
    /// RSAES-OAEP with SHA-256 and MGF1-SHA-256 (RFC 7518 §4.3).
    #[serde(rename = "RSA-OAEP-256")]
    RsaOaep256,
    /// ECDH-ES, the derived key used directly as the content key (RFC 7518 §4.6).
    #[serde(rename = "ECDH-ES")]
    EcdhEs,
    /// ECDH-ES, the derived key wrapping the content key with AES-256 key wrap (RFC 7518 §4.6).
    #[serde(rename = "ECDH-ES+A256KW")]
    EcdhEsA256Kw,
}

impl KeyManagement {
    pub const ALL: [KeyManagement; 4] = [
        KeyManagement::RsaOaep,
        KeyManagement::RsaOaep256,
        KeyManagement::EcdhEs,
        KeyManagement::EcdhEsA256Kw,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyManagement::RsaOaep => "RSA-OAEP",
            KeyManagement::RsaOaep256 => "RSA-OAEP-256",
            KeyManagement::EcdhEs => "ECDH-ES",
            KeyManagement::EcdhEsA256Kw => "ECDH-ES+A256KW",
        }
    }

    pub fn parse(name: &str) -> Option<KeyManagement> {
        KeyManagement::ALL.into_iter().find(|a| a.as_str() == name)
    }

    pub fn is_ecdh(self) -> bool {
        matches!(self, KeyManagement::EcdhEs | KeyManagement::EcdhEsA256Kw)
    }
}

/// How the content is encrypted (the JWE `enc`, RFC 7518 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ContentEncryption {
    #[serde(rename = "A256GCM")]
    A256Gcm,
    #[serde(rename = "A128GCM")]
    A128Gcm,
}

impl ContentEncryption {
    pub const ALL: [ContentEncryption; 2] =
        [ContentEncryption::A256Gcm, ContentEncryption::A128Gcm];

    pub fn as_str(self) -> &'static str {
        match self {
            ContentEncryption::A256Gcm => "A256GCM",
            ContentEncryption::A128Gcm => "A128GCM",
        }
    }

    pub fn parse(name: &str) -> Option<ContentEncryption> {
        ContentEncryption::ALL
            .into_iter()
            .find(|e| e.as_str() == name)
    }

    /// The content-encryption key's length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            ContentEncryption::A256Gcm => 32,
            ContentEncryption::A128Gcm => 16,
        }
    }
}
