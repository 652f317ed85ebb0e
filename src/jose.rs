//! JOSE encoding: JWKs (RFC 7517/7518 §6, RFC 8037 for OKP), RFC 7638 thumbprints as `kid`, the
//! compact JWS serialisation (RFC 7515 §7.1), and verification against a published key
//! (signatures checked by aws-lc-rs, through [`signet_core::verify`]).
//!
//! Signing itself happens in the key's backend: this module only builds the signing input and
//! assembles the token around the signature the backend returns.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde_json::{json, Map, Value};
use signet_core::{Algorithm, KeySpec, PublicKey};

use crate::clock::now_ms;
use crate::domain::{CallerText, KeyAlgorithm, Kid};
use crate::json;

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
pub fn public_jwk(key: &PublicKey, alg: KeyAlgorithm) -> Value {
    let mut jwk: Map<String, Value> = required_members(key)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v)))
        .collect();
    jwk.insert("kid".into(), String::from(thumbprint(key)).into());
    jwk.insert("alg".into(), alg.as_str().into());
    jwk.insert("use".into(), alg.usage().as_str().into());
    Value::Object(jwk)
}

/// The protected header signet puts on every token it signs, base64url-encoded.
pub fn encoded_header(alg: Algorithm, kid: &str, typ: &str) -> String {
    b64url(
        json!({"alg": alg.as_str(), "kid": kid, "typ": typ})
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

/// The verified contents of a token.
pub struct Verified {
    pub header: Value,
    pub claims: Value,
}

/// The three parts of a compact JWS: the signing input, its header part, and the payload and
/// signature parts.
struct Parts<'a> {
    signing_input: &'a str,
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
}

fn parts(token: &str) -> Result<Parts<'_>, VerifyError> {
    let (signing_input, signature) = token.rsplit_once('.').ok_or(VerifyError::Malformed)?;
    let (header, payload) = signing_input
        .split_once('.')
        .ok_or(VerifyError::Malformed)?;
    if payload.contains('.') {
        return Err(VerifyError::Malformed);
    }
    Ok(Parts {
        signing_input,
        header,
        payload,
        signature,
    })
}

/// A base64url part holding a JSON object, read strictly (no member named twice).
fn object(part: &str) -> Result<Map<String, Value>, VerifyError> {
    let bytes = b64url_decode(part).ok_or(VerifyError::Malformed)?;
    json::from_slice(&bytes).map_err(|_| VerifyError::Malformed)
}

/// Reads the `kid` of a compact JWS without trusting anything else in it.
pub fn peek_kid(token: &str) -> Result<String, VerifyError> {
    let header = object(parts(token)?.header)?;
    match header.get("kid") {
        Some(Value::String(kid)) => Ok(kid.clone()),
        _ => Err(VerifyError::Malformed),
    }
}

/// The public key of a JWK signet published, and the one algorithm it verifies.
fn published_key(jwk: &Value) -> Option<(PublicKey, Algorithm)> {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    let bytes = |name: &str| member(name).and_then(b64url_decode);
    let alg = Algorithm::parse(member("alg")?)?;
    let key = match (member("kty")?, member("crv")) {
        ("EC", Some(crv)) => PublicKey::Ec {
            spec: match crv {
                "P-256" => KeySpec::EcP256,
                "P-384" => KeySpec::EcP384,
                _ => return None,
            },
            x: bytes("x")?,
            y: bytes("y")?,
        },
        ("RSA", _) => PublicKey::Rsa {
            n: bytes("n")?,
            e: bytes("e")?,
        },
        ("OKP", Some("Ed25519")) => PublicKey::Ed25519 { x: bytes("x")? },
        _ => return None,
    };
    Some((key, alg))
}

/// What a verifier expects of a token beyond its signature: each `Some` must match.
#[derive(Clone, Copy, Debug, Default)]
pub struct Expect<'a> {
    /// One of the token's `aud` values.
    pub audience: Option<&'a str>,
    /// The token's `iss`.
    pub issuer: Option<&'a str>,
    /// The header's `typ` (compared case-insensitively, RFC 7515 §4.1.9, with or without the
    /// `application/` prefix).
    pub typ: Option<&'a str>,
    /// Slack, in seconds, for `exp`, `nbf` and `iat` against the clock.
    pub leeway_seconds: u32,
    /// The oldest `iat` accepted, in seconds before now.
    pub max_age_seconds: Option<u32>,
}

/// Verifies `token` against the published `jwk`: the signature, the JWK's algorithm (a token
/// cannot pick another), `exp` (required) and `nbf` at the time now (with `expect`'s leeway),
/// and whatever else `expect` names.
pub fn verify(token: &str, jwk: &Value, expect: &Expect<'_>) -> Result<Verified, VerifyError> {
    let verified = verify_signature(token, jwk)?;
    let claims = verified
        .claims
        .as_object()
        .ok_or(VerifyError::Invalid("the payload is not a JSON object"))?;
    let now = now_ms().as_secs() as f64;
    let leeway = f64::from(expect.leeway_seconds);
    let time = |name: &str| match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_f64()
            .map(Some)
            .ok_or(VerifyError::Invalid("a time claim is not a number")),
    };
    let exp = time("exp")?.ok_or(VerifyError::Invalid(
        "the token lacks a required claim (exp)",
    ))?;
    if now >= exp + leeway {
        return Err(VerifyError::Invalid("the token has expired"));
    }
    if time("nbf")?.is_some_and(|nbf| now + leeway < nbf) {
        return Err(VerifyError::Invalid("the token is not valid yet (nbf)"));
    }
    if let Some(max_age) = expect.max_age_seconds {
        let iat = time("iat")?.ok_or(VerifyError::Invalid(
            "the token lacks the iat its age is checked by",
        ))?;
        if iat + f64::from(max_age) + leeway < now {
            return Err(VerifyError::Invalid(
                "the token is older than max_age_seconds",
            ));
        }
    }
    if let Some(expected) = expect.audience {
        let listed = match claims.get("aud") {
            Some(Value::String(aud)) => aud == expected,
            Some(Value::Array(auds)) => auds.iter().any(|aud| aud.as_str() == Some(expected)),
            _ => false,
        };
        if !listed {
            return Err(VerifyError::Invalid("the token is not for this audience"));
        }
    }
    if let Some(expected) = expect.issuer {
        if claims.get("iss").and_then(Value::as_str) != Some(expected) {
            return Err(VerifyError::Invalid("the token is not from this issuer"));
        }
    }
    if let Some(expected) = expect.typ {
        let typ = verified.header.get("typ").and_then(Value::as_str);
        if typ.map(crate::domain::media_type) != Some(crate::domain::media_type(expected)) {
            return Err(VerifyError::Invalid("the token is not of this type (typ)"));
        }
    }
    Ok(verified)
}

/// Verifies only the signature of a JWS (under the JWK's algorithm), and returns its header and
/// payload: for a payload that is a record rather than a token (an audit checkpoint), no claim is
/// required or checked.
pub fn verify_signature(token: &str, jwk: &Value) -> Result<Verified, VerifyError> {
    // A published key is one of ours: one we cannot use is a bug, not the caller's doing.
    let (key, alg) =
        published_key(jwk).ok_or(VerifyError::Invalid("the published key is unusable"))?;
    let parts = parts(token)?;
    let header = object(parts.header)?;
    if header.get("alg").and_then(Value::as_str) != Some(alg.as_str()) {
        return Err(VerifyError::Invalid("the token's alg is not its key's"));
    }
    // RFC 7515 §4.1.11: extensions a verifier does not understand must fail it; signet's tokens
    // have none.
    if header.contains_key("crit") {
        return Err(VerifyError::Invalid(
            "the token names critical header parameters",
        ));
    }
    let signature = b64url_decode(parts.signature).ok_or(VerifyError::Malformed)?;
    if !signet_core::verify(&key, alg, parts.signing_input.as_bytes(), &signature) {
        return Err(VerifyError::Invalid("the signature does not verify"));
    }
    let payload = b64url_decode(parts.payload).ok_or(VerifyError::Malformed)?;
    let claims = json::from_slice(&payload).map_err(|_| VerifyError::Malformed)?;
    Ok(Verified {
        header: Value::Object(header),
        claims,
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
        let jwk = public_jwk(&key, KeyAlgorithm::Sign(Algorithm::ES256));
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
        let jwk = public_jwk(&key, KeyAlgorithm::Sign(Algorithm::ES256));
        assert_eq!(jwk_thumbprint(&jwk), Some(thumbprint(&key)));
        let mut other = jwk.clone();
        other["x"] = json!(b64url(&[3; 32]));
        assert_ne!(jwk_thumbprint(&other), Some(thumbprint(&key)));
        assert_eq!(jwk_thumbprint(&json!({"kty": "oct", "k": "x"})), None);
    }

    /// A token of `header` and `claims` signed by a new Ed25519 key, and the key's JWK as
    /// published for `alg`.
    fn signed(header: &Value, claims: &Value, alg: Algorithm) -> (String, Value) {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
        let pair = Ed25519KeyPair::generate().unwrap();
        let key = PublicKey::Ed25519 {
            x: pair.public_key().as_ref().to_vec(),
        };
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let signature = b64url(pair.sign(input.as_bytes()).as_ref());
        (
            format!("{input}.{signature}"),
            public_jwk(&key, KeyAlgorithm::Sign(alg)),
        )
    }

    #[test]
    fn verification_checks_issuer_type_age_and_leeway_when_asked() {
        let now = now_ms().as_secs();
        let header = json!({"alg": "Ed25519", "kid": "k", "typ": "at+jwt"});
        let claims = json!({"exp": now - 10, "iat": now - 100, "iss": "https://a.test"});
        let (token, jwk) = signed(&header, &claims, Algorithm::Ed25519);
        let check = |expect: Expect<'_>| verify(&token, &jwk, &expect).map(|_| ());
        let lenient = Expect {
            leeway_seconds: 30,
            ..Expect::default()
        };
        assert!(check(Expect::default()).is_err(), "expired 10 s ago");
        assert!(check(lenient).is_ok());
        for (expect, refused) in [
            (
                Expect {
                    issuer: Some("https://a.test"),
                    ..lenient
                },
                false,
            ),
            (
                Expect {
                    issuer: Some("https://b.test"),
                    ..lenient
                },
                true,
            ),
            (
                Expect {
                    typ: Some("application/AT+JWT"),
                    ..lenient
                },
                false,
            ),
            (
                Expect {
                    typ: Some("JWT"),
                    ..lenient
                },
                true,
            ),
            (
                Expect {
                    max_age_seconds: Some(80),
                    ..lenient
                },
                false,
            ),
            (
                Expect {
                    max_age_seconds: Some(60),
                    ..lenient
                },
                true,
            ),
        ] {
            assert_eq!(check(expect).is_err(), refused, "{expect:?}");
        }
    }

    #[test]
    fn verification_checks_the_signature_the_algorithm_and_the_times() {
        let now = now_ms().as_secs();
        let header = json!({"alg": "Ed25519", "kid": "k", "typ": "JWT"});
        let claims = json!({"exp": now + 60, "aud": ["api", "web"]});
        let (token, jwk) = signed(&header, &claims, Algorithm::Ed25519);
        let verified = verify(
            &token,
            &jwk,
            &Expect {
                audience: Some("web"),
                ..Expect::default()
            },
        )
        .unwrap();
        assert_eq!(verified.claims, claims);
        assert_eq!(verified.header, header);
        assert_eq!(peek_kid(&token).unwrap(), "k");

        let refused = |token: &str, jwk: &Value, expect: Expect<'_>| {
            verify(token, jwk, &expect).err().unwrap().to_string()
        };
        let any = Expect::default();
        let audience = Expect {
            audience: Some("admin"),
            ..any
        };
        assert!(refused(&token, &jwk, audience).contains("audience"));
        let (_, other_key) = signed(&header, &claims, Algorithm::Ed25519);
        assert!(refused(&token, &other_key, any).contains("signature"));
        // The JWK names the algorithm: a token under its other name does not verify with it.
        let (legacy, legacy_jwk) = signed(
            &json!({"alg": "EdDSA", "kid": "k"}),
            &claims,
            Algorithm::EdDSA,
        );
        assert!(verify(&legacy, &legacy_jwk, &any).is_ok());
        let (renamed, _) = signed(
            &json!({"alg": "EdDSA", "kid": "k"}),
            &claims,
            Algorithm::EdDSA,
        );
        assert!(refused(&renamed, &jwk, any).contains("alg"));
        let (none, _) = signed(
            &json!({"alg": "none", "kid": "k"}),
            &claims,
            Algorithm::Ed25519,
        );
        assert!(refused(&none, &jwk, any).contains("alg"));
        let (critical, critical_jwk) = signed(
            &json!({"alg": "Ed25519", "kid": "k", "crit": ["exp"]}),
            &claims,
            Algorithm::Ed25519,
        );
        assert!(refused(&critical, &critical_jwk, any).contains("critical"));

        for (times, why) in [
            (json!({"exp": now}), "expired"),
            (json!({"exp": now - 1}), "expired"),
            (json!({"iat": now}), "exp"),
            (json!({"exp": "tomorrow"}), "number"),
            (json!({"exp": now + 60, "nbf": now + 30}), "nbf"),
        ] {
            let (token, jwk) = signed(&header, &times, Algorithm::Ed25519);
            assert!(refused(&token, &jwk, any).contains(why), "{times}");
        }
        let (token, jwk) = signed(
            &header,
            &json!({"exp": now + 60, "nbf": now}),
            Algorithm::Ed25519,
        );
        assert!(verify(&token, &jwk, &Expect::default()).is_ok());

        for malformed in [
            "a.b",
            "a.b.c.d",
            &format!("{token}x"),
            &token.replacen('.', ".!", 1),
        ] {
            assert!(
                verify(malformed, &jwk, &Expect::default()).is_err(),
                "{malformed}"
            );
        }
        // A header naming a member twice is not read.
        let twice = format!(
            "{}.{}",
            b64url(br#"{"alg":"Ed25519","kid":"k","kid":"other"}"#),
            token.split_once('.').unwrap().1
        );
        assert!(matches!(peek_kid(&twice), Err(VerifyError::Malformed)));
    }

    #[test]
    fn base64url_length_is_exact() {
        for n in 0..100 {
            assert_eq!(b64url_len(n), b64url(&vec![0u8; n]).len());
        }
    }
}
