//! JOSE encoding: JWKs (RFC 7517/7518 §6, RFC 8037 for OKP), RFC 7638 thumbprints as `kid`, the
//! compact JWS serialisation (RFC 7515 §7.1), and verification through `jsonwebtoken`.
//!
//! Signing itself happens in the key's backend: this module only builds the signing input and
//! assembles the token around the signature the backend returns.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde_json::{json, Map, Value};
use signet_core::{Algorithm, KeySpec, PublicKey};

use crate::domain::{CallerText, Kid};

pub fn b64url(bytes: &[u8]) -> String {
    B64URL.encode(bytes)
}

pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    B64URL.decode(text).ok()
}

/// The members of a public JWK that RFC 7638 hashes, in their lexicographic order.
fn required_members(key: &PublicKey) -> Vec<(&'static str, String)> {
    match key {
        PublicKey::Ec { spec, x, y } => vec![
            (
                "crv",
                if *spec == KeySpec::EcP384 {
                    "P-384"
                } else {
                    "P-256"
                }
                .to_owned(),
            ),
            ("kty", "EC".to_owned()),
            ("x", b64url(x)),
            ("y", b64url(y)),
        ],
        PublicKey::Rsa { n, e } => vec![
            ("e", b64url(e)),
            ("kty", "RSA".to_owned()),
            ("n", b64url(n)),
        ],
        PublicKey::Ed25519 { x } => vec![
            ("crv", "Ed25519".to_owned()),
            ("kty", "OKP".to_owned()),
            ("x", b64url(x)),
        ],
    }
}

/// The RFC 7638 JWK thumbprint (SHA-256, base64url): signet's `kid` on every backend.
pub fn thumbprint(key: &PublicKey) -> Kid {
    // Member names and values here never need JSON escaping (fixed names, base64url values).
    let canonical = format!(
        "{{{}}}",
        required_members(key)
            .iter()
            .map(|(k, v)| format!("\"{k}\":\"{v}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    Kid::from_thumbprint(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref(),
    )
}

/// The RFC 7638 thumbprint of a public JWK given as JSON (one that arrived from outside: a
/// saved JWKS, a stored row); `None` if it is not an EC, RSA or OKP public key.
pub fn jwk_thumbprint(jwk: &Value) -> Option<Kid> {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    let names: &[&str] = match member("kty")? {
        "EC" | "OKP" if jwk.get("y").is_some() => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        "RSA" => &["e", "kty", "n"],
        _ => return None,
    };
    let mut canonical = Map::new();
    for name in names {
        canonical.insert((*name).to_owned(), Value::String(member(name)?.to_owned()));
    }
    // Inserted in lexicographic order, as RFC 7638 requires (whatever order the map keeps).
    let text = Value::Object(canonical).to_string();
    Some(Kid::from_thumbprint(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes()).as_ref(),
    ))
}

/// The public JWK as published: the key's members plus `kid`, `alg` and `use`. Never any private
/// member: a [`PublicKey`] has none to give.
pub fn public_jwk(key: &PublicKey, alg: Algorithm) -> Value {
    let mut jwk: Map<String, Value> = required_members(key)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v)))
        .collect();
    jwk.insert("kid".into(), String::from(thumbprint(key)).into());
    jwk.insert("alg".into(), alg.as_str().into());
    jwk.insert("use".into(), "sig".into());
    Value::Object(jwk)
}

/// The protected header signet puts on every token it signs, base64url-encoded.
pub fn encoded_header(alg: Algorithm, kid: &str) -> String {
    b64url(
        json!({"alg": alg.as_str(), "kid": kid, "typ": "JWT"})
            .to_string()
            .as_bytes(),
    )
}

/// The length of a base64url (unpadded) encoding of `n` bytes.
pub fn b64url_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

/// The signature length a key of `spec` produces, for sizing a token before it is signed.
pub fn signature_len(spec: KeySpec) -> usize {
    match spec {
        KeySpec::EcP256 | KeySpec::Ed25519 => 64,
        KeySpec::EcP384 => 96,
        KeySpec::Rsa2048 => 256,
        KeySpec::Rsa3072 => 384,
    }
}

/// Why a token did not verify, in our words (never the JOSE library's, never more than a
/// bounded prefix of the token).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the token is not a well-formed compact JWS with a kid")]
    Malformed,
    #[error("no published key has kid {:?}", CallerText::echoed(.0).as_str())]
    UnknownKey(String),
    #[error("the token failed verification: {0}")]
    Invalid(&'static str),
}

impl From<jsonwebtoken::errors::Error> for VerifyError {
    fn from(e: jsonwebtoken::errors::Error) -> VerifyError {
        use jsonwebtoken::errors::ErrorKind;
        VerifyError::Invalid(match e.kind() {
            ErrorKind::InvalidSignature => "the signature does not verify",
            ErrorKind::ExpiredSignature => "the token has expired",
            ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
            ErrorKind::InvalidAudience => "the token is not for this audience",
            ErrorKind::InvalidAlgorithm => "the token's alg is not its key's",
            ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim (exp)",
            ErrorKind::InvalidToken
            | ErrorKind::Base64(_)
            | ErrorKind::Json(_)
            | ErrorKind::Utf8(_) => "the token is malformed",
            _ => "the token was refused",
        })
    }
}

/// The verified contents of a token.
pub struct Verified {
    pub header: Value,
    pub claims: Value,
}

/// Reads the `kid` of a compact JWS without trusting anything else in it.
pub fn peek_kid(token: &str) -> Result<String, VerifyError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    header.kid.ok_or(VerifyError::Malformed)
}

/// The decoding key of a published `jwk` and the one algorithm it may verify.
fn decoding_key(
    jwk: &Value,
) -> Result<(jsonwebtoken::DecodingKey, jsonwebtoken::Algorithm), VerifyError> {
    // A published key is one of ours: one we cannot use is a bug, not the caller's doing.
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone())
        .map_err(|_| VerifyError::Invalid("the published key is unusable"))?;
    let alg = match jwk.common.key_algorithm {
        Some(jsonwebtoken::jwk::KeyAlgorithm::ES256) => jsonwebtoken::Algorithm::ES256,
        Some(jsonwebtoken::jwk::KeyAlgorithm::ES384) => jsonwebtoken::Algorithm::ES384,
        Some(jsonwebtoken::jwk::KeyAlgorithm::RS256) => jsonwebtoken::Algorithm::RS256,
        Some(jsonwebtoken::jwk::KeyAlgorithm::PS256) => jsonwebtoken::Algorithm::PS256,
        Some(jsonwebtoken::jwk::KeyAlgorithm::EdDSA) => jsonwebtoken::Algorithm::EdDSA,
        _ => return Err(VerifyError::Invalid("the published key is unusable")),
    };
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk)?;
    Ok((key, alg))
}

/// Verifies `token` against the published `jwk`: signature, the JWK's algorithm (a token cannot
/// pick another), `exp` and `nbf` (no leeway), and the audience when one is expected.
pub fn verify(token: &str, jwk: &Value, audience: Option<&str>) -> Result<Verified, VerifyError> {
    let (key, alg) = decoding_key(jwk)?;
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.leeway = 0;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp"]);
    match audience {
        Some(aud) => validation.set_audience(&[aud]),
        None => validation.validate_aud = false,
    }
    decode(token, &key, &validation)
}

/// Verifies only the signature of a JWS whose payload is a record rather than a token (an audit
/// checkpoint): no time claims are required or checked.
pub fn verify_signature(token: &str, jwk: &Value) -> Result<Verified, VerifyError> {
    let (key, alg) = decoding_key(jwk)?;
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.set_required_spec_claims::<&str>(&[]);
    validation.validate_exp = false;
    validation.validate_aud = false;
    decode(token, &key, &validation)
}

fn decode(
    token: &str,
    key: &jsonwebtoken::DecodingKey,
    validation: &jsonwebtoken::Validation,
) -> Result<Verified, VerifyError> {
    let data = jsonwebtoken::decode::<Value>(token, key, validation)?;
    let header = serde_json::to_value(&data.header).expect("a header serialises");
    Ok(Verified {
        header,
        claims: data.claims,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // RFC 7638 §3.1: the example RSA key and its thumbprint.
        let n = b64url_decode(
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        )
        .unwrap();
        let key = PublicKey::Rsa {
            n,
            e: b64url_decode("AQAB").unwrap(),
        };
        assert_eq!(
            thumbprint(&key),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn published_jwks_carry_no_private_members() {
        let key = PublicKey::Ec {
            spec: KeySpec::EcP256,
            x: vec![1; 32],
            y: vec![2; 32],
        };
        let jwk = public_jwk(&key, Algorithm::ES256);
        let members: Vec<&str> = jwk
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(!members.contains(&private));
        }
        assert_eq!(jwk["kid"], thumbprint(&key).as_str());
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["crv"], "P-256");
    }

    #[test]
    fn a_jwk_given_as_json_has_the_thumbprint_of_its_key() {
        let key = PublicKey::Ec {
            spec: KeySpec::EcP256,
            x: vec![1; 32],
            y: vec![2; 32],
        };
        let jwk = public_jwk(&key, Algorithm::ES256);
        assert_eq!(jwk_thumbprint(&jwk), Some(thumbprint(&key)));
        let mut other = jwk.clone();
        other["x"] = json!(b64url(&[3; 32]));
        assert_ne!(jwk_thumbprint(&other), Some(thumbprint(&key)));
        assert_eq!(jwk_thumbprint(&json!({"kty": "oct", "k": "x"})), None);
    }

    #[test]
    fn base64url_length_is_exact() {
        for n in 0..100 {
            assert_eq!(b64url_len(n), b64url(&vec![0u8; n]).len());
        }
    }
}
