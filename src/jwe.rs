//! JWE in the compact serialisation (RFC 7516 §7.1) for encryption rings whose private
//! key-management keys never leave their backend.
//!
//! The backend performs only the key-management primitive: RSA-OAEP decryption of the encrypted
//! key (RFC 7518 §4.3), or ECDH giving the shared secret Z for the sender's ephemeral public key
//! (RFC 7518 §4.6). Everything else is here, as pure functions on aws-lc-rs: parsing a token and
//! refusing what RFC 8725 §3 warns against, validating the `epk` point (RFC 7518 §4.6.1, against
//! the invalid-curve attack), the Concat KDF (RFC 7518 §4.6.2), AES key unwrap (RFC 7518 §4.4,
//! RFC 3394), AES-GCM content decryption (RFC 7518 §5.3, RFC 7516 §5.2), and encryption to a
//! public JWK (RFC 7516 §5.1, RFC 7518 §6.2/§6.3) for nested tokens.
//!
//! The encryption half serves `/sign` with `encrypt_to` (a signed token nested in a JWE to a
//! recipient's JWK or an encryption ring); the decryption half serves encryption rings
//! (`crate::rings::decryption`). Both are tested here against the RFC examples and each other.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
use aws_lc_rs::agreement::{
    self, EphemeralPrivateKey, ParsedPublicKey, UnparsedPublicKey, ECDH_P256, ECDH_P384,
};
use aws_lc_rs::digest::{self, SHA256};
use aws_lc_rs::error::Unspecified;
use aws_lc_rs::key_wrap::{AesKek, KeyWrap, AES_256};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    OaepPublicEncryptingKey, PublicEncryptingKey, PublicKeyComponents, OAEP_SHA1_MGF1SHA1,
    OAEP_SHA256_MGF1SHA256,
};
use secrecy::zeroize::Zeroizing;
use serde_json::{Map, Value};

use crate::domain::CallerText;
pub use crate::domain::{ContentEncryption, KeyManagement};
use crate::jose::{b64url, b64url_decode};
use crate::json::{self, JsonError};

/// The AES-GCM IV length (RFC 7518 §5.3).
const IV_LEN: usize = 12;
/// The AES-GCM tag length (RFC 7518 §5.3: the full 128 bits, never truncated).
const TAG_LEN: usize = 16;
/// What AES key wrap adds to the key it wraps (RFC 3394 §2.2.1).
const KEY_WRAP_OVERHEAD: usize = 8;
/// JWK members that belong to a private or symmetric key (RFC 7518 §6.2.2, §6.3.2, §6.4).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The AES-GCM of `enc`.
fn aead(enc: ContentEncryption) -> &'static aead::Algorithm {
    match enc {
        ContentEncryption::A256Gcm => &AES_256_GCM,
        ContentEncryption::A128Gcm => &AES_128_GCM,
    }
}

/// The curves ECDH-ES runs on here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

impl Curve {
    /// The JWK `crv` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }

    fn parse(crv: &str) -> Option<Curve> {
        [Curve::P256, Curve::P384]
            .into_iter()
            .find(|c| c.as_str() == crv)
    }

    /// The length of one coordinate (RFC 7518 §6.2.1.2: always the full length).
    fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }

    fn agreement(self) -> &'static agreement::Algorithm {
        match self {
            Curve::P256 => &ECDH_P256,
            Curve::P384 => &ECDH_P384,
        }
    }
}

/// An EC public key checked to be a point on its curve (not the point at infinity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcPublicKey {
    curve: Curve,
    point: Vec<u8>,
}

impl EcPublicKey {
    pub fn curve(&self) -> Curve {
        self.curve
    }

    /// The point, uncompressed (SEC 1 §2.3.3: `0x04 || x || y`).
    pub fn point(&self) -> &[u8] {
        &self.point
    }

    /// The affine coordinates `x` and `y`.
    pub fn coordinates(&self) -> (&[u8], &[u8]) {
        self.point[1..].split_at(self.curve.coordinate_len())
    }

    /// Reads a public EC JWK (RFC 7518 §6.2.1); `Err` says what is wrong, for "the epk …" or
    /// "the JWK …".
    fn from_jwk(jwk: &Value) -> Result<EcPublicKey, &'static str> {
        let member = |name: &str| jwk.get(name).and_then(Value::as_str);
        if !jwk.is_object() || member("kty") != Some("EC") {
            return Err("is not an EC JWK");
        }
        if PRIVATE_MEMBERS.iter().any(|m| jwk.get(m).is_some()) {
            return Err("carries private key members");
        }
        let curve = member("crv")
            .and_then(Curve::parse)
            .ok_or("is not on P-256 or P-384 (crv)")?;
        let coordinate = |name: &str| {
            member(name)
                .and_then(b64url_decode)
                .filter(|c| c.len() == curve.coordinate_len())
                .ok_or("has an x or y that is not a base64url coordinate of its curve's length")
        };
        let mut point = vec![0x04];
        point.extend(coordinate("x")?);
        point.extend(coordinate("y")?);
        ParsedPublicKey::try_from(UnparsedPublicKey::new(curve.agreement(), &point))
            .map_err(|_| "is not a point on its curve")?;
        Ok(EcPublicKey { curve, point })
    }

    fn to_jwk(&self) -> Value {
        let (x, y) = self.point[1..].split_at(self.curve.coordinate_len());
        serde_json::json!({"kty": "EC", "crv": self.curve.as_str(), "x": b64url(x), "y": b64url(y)})
    }
}

/// Why a token was refused or could not be decrypted, in our words (never a library's, never
/// more than [`CallerText::ECHOED_BYTES`] of what the caller sent).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum JweError {
    /// Malformed, or using what signet refuses: says which.
    #[error("the token is not an acceptable compact JWE: {0}")]
    Invalid(String),
    /// A recipient's public JWK that cannot be encrypted to (or not with the alg asked for).
    #[error("the recipient key cannot be encrypted to: {0}")]
    Recipient(String),
    /// Key unwrapping or content decryption failed. Deliberately says no more: which step
    /// failed, or why, would be an oracle.
    #[error("the token could not be decrypted")]
    Decryption,
}

fn invalid(why: impl Into<String>) -> JweError {
    JweError::Invalid(why.into())
}

/// A parsed compact JWE, its header checked and its `epk` (if any) on its curve. Nothing in it
/// has been decrypted or authenticated yet.
#[derive(Clone, Debug)]
pub struct Jwe {
    /// The protected header, as sent.
    pub header: Map<String, Value>,
    pub alg: KeyManagement,
    pub enc: ContentEncryption,
    pub kid: Option<String>,
    pub cty: Option<String>,
    /// The sender's ephemeral public key: present exactly when `alg` is ECDH-ES(+A256KW).
    pub epk: Option<EcPublicKey>,
    /// Agreement PartyUInfo and PartyVInfo (RFC 7518 §4.6.1.2-3), decoded; empty when absent.
    pub apu: Vec<u8>,
    pub apv: Vec<u8>,
    /// Empty for ECDH-ES.
    pub encrypted_key: Vec<u8>,
    pub iv: [u8; IV_LEN],
    pub ciphertext: Vec<u8>,
    pub tag: [u8; TAG_LEN],
    /// The protected header's base64url segment: the content encryption's AAD (RFC 7516 §5.1
    /// step 14).
    pub protected: String,
}

impl Jwe {
    /// Refuses a token whose `epk` is not on `expected`, the curve of the ring's key.
    pub fn check_curve(&self, expected: Curve) -> Result<(), JweError> {
        match &self.epk {
            Some(epk) if epk.curve == expected => Ok(()),
            Some(_) => Err(invalid(format!(
                "the epk is not on the key's curve, {}",
                expected.as_str()
            ))),
            None => Err(invalid("the token has no epk")),
        }
    }
}

/// Parses a compact JWE of at most `max_bytes`, refusing anything but the algorithms above.
pub fn parse(token: &str, max_bytes: usize) -> Result<Jwe, JweError> {
    if token.len() > max_bytes {
        return Err(invalid(format!("it is longer than {max_bytes} bytes")));
    }
    let segments: Vec<&str> = token.split('.').collect();
    let [protected, encrypted_key, iv, ciphertext, tag] = segments[..] else {
        return Err(invalid("it does not have five dot-separated segments"));
    };
    let decode = |segment: &str, name: &str| {
        b64url_decode(segment).ok_or_else(|| invalid(format!("its {name} is not base64url")))
    };

    let header: Map<String, Value> =
        json::from_slice(&decode(protected, "header")?).map_err(|e| match e {
            JsonError::Duplicate { path } => {
                invalid(format!("its header names {path} more than once"))
            }
            _ => invalid("its header is not a JSON object"),
        })?;
    check_header_members(&header)?;
    let string = |name: &str| match header.get(name) {
        None => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(_) => Err(invalid(format!("its header's {name} is not a string"))),
    };
    let alg = string("alg")?.ok_or_else(|| invalid("its header has no alg"))?;
    let alg = KeyManagement::parse(&alg).ok_or_else(|| refused_alg(&alg))?;
    let enc = string("enc")?.ok_or_else(|| invalid("its header has no enc"))?;
    let enc = ContentEncryption::parse(&enc).ok_or_else(|| {
        invalid(format!(
            "the enc {:?} is refused: only A256GCM and A128GCM are accepted",
            CallerText::echoed(&enc).as_str()
        ))
    })?;
    let party_info = |name: &str| match string(name)? {
        None => Ok(Vec::new()),
        Some(value) => decode(&value, name),
    };
    let epk = match header.get("epk") {
        _ if !alg.is_ecdh() => None,
        Some(epk) => {
            Some(EcPublicKey::from_jwk(epk).map_err(|why| invalid(format!("the epk {why}")))?)
        }
        None => return Err(invalid(format!("{} needs an epk", alg.as_str()))),
    };

    let encrypted_key = decode(encrypted_key, "encrypted key")?;
    let fits = match alg {
        KeyManagement::RsaOaep | KeyManagement::RsaOaep256 => !encrypted_key.is_empty(),
        KeyManagement::EcdhEs => encrypted_key.is_empty(),
        KeyManagement::EcdhEsA256Kw => encrypted_key.len() == enc.key_len() + KEY_WRAP_OVERHEAD,
    };
    if !fits {
        return Err(invalid(format!(
            "its encrypted key has the wrong length for {} with {}",
            alg.as_str(),
            enc.as_str()
        )));
    }
    let iv = decode(iv, "IV")?
        .try_into()
        .map_err(|_| invalid(format!("its IV is not {IV_LEN} bytes")))?;
    let ciphertext = decode(ciphertext, "ciphertext")?;
    let tag = decode(tag, "tag")?
        .try_into()
        .map_err(|_| invalid(format!("its tag is not {TAG_LEN} bytes")))?;
    Ok(Jwe {
        alg,
        enc,
        kid: string("kid")?,
        cty: string("cty")?,
        epk,
        apu: party_info("apu")?,
        apv: party_info("apv")?,
        encrypted_key,
        iv,
        ciphertext,
        tag,
        protected: protected.to_owned(),
        header,
    })
}

/// Header members signet refuses whatever the algorithm.
fn check_header_members(header: &Map<String, Value>) -> Result<(), JweError> {
    if header.contains_key("zip") {
        return Err(invalid(
            "compressed (zip) tokens are refused (RFC 8725 §3.6)",
        ));
    }
    if header.contains_key("crit") {
        return Err(invalid(
            "it names critical header parameters (crit), and signet understands none",
        ));
    }
    if ["jku", "jwk", "x5u"]
        .iter()
        .any(|m| header.contains_key(*m))
    {
        return Err(invalid(
            "its header carries or points at a key (jku, jwk, x5u); the ring's key is named by kid",
        ));
    }
    Ok(())
}

/// Why `alg` is refused.
fn refused_alg(alg: &str) -> JweError {
    invalid(match alg {
        "RSA1_5" => "the alg RSA1_5 is refused: RSAES-PKCS1-v1_5 is open to padding-oracle attacks (RFC 8725 §3.2)".to_owned(),
        "dir" => "the alg dir is refused: signet shares no content keys".to_owned(),
        "A128KW" | "A192KW" | "A256KW" | "A128GCMKW" | "A192GCMKW" | "A256GCMKW" => format!(
            "the alg {alg} is refused: encryption rings hold asymmetric keys, not shared ones"
        ),
        _ if alg.starts_with("PBES2-") => {
            "password-based key encryption (PBES2) is refused".to_owned()
        }
        _ => format!(
            "the alg {:?} is refused: only RSA-OAEP, RSA-OAEP-256, ECDH-ES and ECDH-ES+A256KW are accepted",
            CallerText::echoed(alg).as_str()
        ),
    })
}

/// The Concat KDF of NIST SP 800-56A §5.8.1 with SHA-256, as RFC 7518 §4.6.2 uses it: `key_bits`
/// (a multiple of 8) derived from the shared secret `z`.
pub fn concat_kdf(
    z: &[u8],
    algorithm_id: &str,
    apu: &[u8],
    apv: &[u8],
    key_bits: usize,
) -> Zeroizing<Vec<u8>> {
    let len32 = |n: usize| {
        u32::try_from(n)
            .expect("a length within 32 bits")
            .to_be_bytes()
    };
    let mut other_info = Vec::new();
    for field in [algorithm_id.as_bytes(), apu, apv] {
        other_info.extend(len32(field.len()));
        other_info.extend(field);
    }
    other_info.extend(len32(key_bits));

    let key_len = key_bits / 8;
    let mut key = Zeroizing::new(Vec::with_capacity(key_len + SHA256.output_len));
    let mut counter: u32 = 1;
    while key.len() < key_len {
        let mut round = digest::Context::new(&SHA256);
        round.update(&counter.to_be_bytes());
        round.update(z);
        round.update(&other_info);
        key.extend(round.finish().as_ref());
        counter += 1;
    }
    key.truncate(key_len);
    key
}

/// What a backend's key-management step gave for a token.
#[derive(Clone, Copy)]
pub enum KeySecret<'a> {
    /// RSA-OAEP: the decrypted content-encryption key.
    Cek(&'a [u8]),
    /// ECDH-ES(+A256KW): the shared secret Z of the ring's key and the token's `epk`.
    SharedSecret(&'a [u8]),
}

/// The content-encryption key of `jwe`, from what the backend gave. A content key of the wrong
/// length, a failed key unwrap, or a secret of the other kind than `jwe.alg` needs, is a
/// [`JweError::Decryption`], like every other failure to decrypt.
pub fn content_key(jwe: &Jwe, secret: KeySecret<'_>) -> Result<Zeroizing<Vec<u8>>, JweError> {
    let key_len = jwe.enc.key_len();
    let cek = match (jwe.alg, secret) {
        (KeyManagement::RsaOaep | KeyManagement::RsaOaep256, KeySecret::Cek(cek)) => {
            Zeroizing::new(cek.to_vec())
        }
        (KeyManagement::EcdhEs, KeySecret::SharedSecret(z)) => {
            concat_kdf(z, jwe.enc.as_str(), &jwe.apu, &jwe.apv, key_len * 8)
        }
        (KeyManagement::EcdhEsA256Kw, KeySecret::SharedSecret(z)) => {
            let kek = concat_kdf(z, jwe.alg.as_str(), &jwe.apu, &jwe.apv, 256);
            let kek = AesKek::new(&AES_256, &kek).expect("a 256-bit key-encryption key");
            let mut cek = Zeroizing::new(vec![0; jwe.encrypted_key.len()]);
            let len = kek
                .unwrap(&jwe.encrypted_key, &mut cek)
                .map_err(|_| JweError::Decryption)?
                .len();
            cek.truncate(len);
            cek
        }
        _ => return Err(JweError::Decryption),
    };
    if cek.len() != key_len {
        return Err(JweError::Decryption);
    }
    Ok(cek)
}

/// Decrypts and authenticates the content of `jwe` with its content key (RFC 7516 §5.2 steps
/// 14-16): the full 128-bit tag, over the protected header as AAD.
pub fn decrypt(jwe: &Jwe, cek: &[u8]) -> Result<Vec<u8>, JweError> {
    let key = UnboundKey::new(aead(jwe.enc), cek).map_err(|_| JweError::Decryption)?;
    let mut in_out = [jwe.ciphertext.as_slice(), &jwe.tag].concat();
    let len = LessSafeKey::new(key)
        .open_in_place(
            Nonce::assume_unique_for_key(jwe.iv),
            Aad::from(jwe.protected.as_bytes()),
            &mut in_out,
        )
        .map_err(|_| JweError::Decryption)?
        .len();
    in_out.truncate(len);
    Ok(in_out)
}

/// The longest `kid` a recipient's JWK may carry into a token's header.
const MAX_KID_BYTES: usize = 256;

/// Encryption to one recipient's public key, with the `alg` and `enc` checked to go with it when
/// it is made, so that [`Encryption::seal`] cannot fail: a nested token is checked before it is
/// signed, and sealed after.
pub struct Encryption {
    recipient: Recipient,
    alg: KeyManagement,
    enc: ContentEncryption,
    /// The JWK's `kid`, named in the header so that the recipient finds its key.
    kid: Option<String>,
}

enum Recipient {
    Rsa(PublicEncryptingKey),
    Ec(EcPublicKey),
}

impl Encryption {
    /// Encryption to the public JWK `jwk`: RSA of 2048 to 4096 bits (RFC 7518 §6.3.1), or EC on
    /// P-256 or P-384 (§6.2.1) with its point checked. A JWK with private members, or not for
    /// encryption (`use`), is refused. `alg`: as asked, else the JWK's own `alg`, else
    /// RSA-OAEP-256 for RSA and ECDH-ES for EC; a JWK naming its `alg` is encrypted to with that
    /// one only.
    pub fn to_jwk(
        jwk: &Value,
        alg: Option<KeyManagement>,
        enc: ContentEncryption,
    ) -> Result<Encryption, JweError> {
        let refuse = |why: &str| JweError::Recipient(why.to_owned());
        let Some(members) = jwk.as_object() else {
            return Err(refuse("the JWK is not a JSON object"));
        };
        if PRIVATE_MEMBERS.iter().any(|m| members.contains_key(*m)) {
            return Err(refuse(
                "the JWK carries private key members: send the public key only",
            ));
        }
        if members.get("use").is_some_and(|u| *u != "enc") {
            return Err(refuse("the JWK is not for encryption (use)"));
        }
        let named = match members.get("alg") {
            None => None,
            Some(alg) => Some(
                alg.as_str()
                    .and_then(KeyManagement::parse)
                    .ok_or_else(|| refuse("the JWK's alg is not one signet encrypts with"))?,
            ),
        };
        let kid = match members.get("kid") {
            None => None,
            Some(Value::String(kid)) if (1..=MAX_KID_BYTES).contains(&kid.len()) => {
                Some(kid.clone())
            }
            Some(_) => {
                return Err(refuse(&format!(
                    "the JWK's kid is not a string of 1 to {MAX_KID_BYTES} bytes"
                )))
            }
        };
        let recipient = match members.get("kty").and_then(Value::as_str) {
            Some("RSA") => Recipient::Rsa(rsa_public_key(members)?),
            Some("EC") => Recipient::Ec(
                EcPublicKey::from_jwk(jwk)
                    .map_err(|why| JweError::Recipient(format!("the JWK {why}")))?,
            ),
            _ => return Err(refuse("the JWK's kty is not RSA or EC")),
        };
        let alg = match (alg.or(named), &recipient) {
            (Some(alg), _) if named.is_some_and(|named| named != alg) => {
                return Err(JweError::Recipient(format!(
                    "the JWK is not for {}",
                    alg.as_str()
                )))
            }
            (Some(alg), Recipient::Rsa(_)) if alg.is_ecdh() => {
                return Err(JweError::Recipient(format!(
                    "{} does not encrypt to an RSA key",
                    alg.as_str()
                )))
            }
            (Some(alg), Recipient::Ec(_)) if !alg.is_ecdh() => {
                return Err(JweError::Recipient(format!(
                    "{} does not encrypt to an EC key",
                    alg.as_str()
                )))
            }
            (Some(alg), _) => alg,
            (None, Recipient::Rsa(_)) => KeyManagement::RsaOaep256,
            (None, Recipient::Ec(_)) => KeyManagement::EcdhEs,
        };
        Ok(Encryption {
            recipient,
            alg,
            enc,
            kid,
        })
    }

    pub fn alg(&self) -> KeyManagement {
        self.alg
    }

    pub fn enc(&self) -> ContentEncryption {
        self.enc
    }

    /// Encrypts `plaintext` as a compact JWE, entirely in software (RFC 7516 §5.1). The header is
    /// `{"alg","enc","kid"?,"cty"?,"epk"?}`; no `apu`/`apv`.
    pub fn seal(&self, cty: Option<&str>, plaintext: &[u8]) -> String {
        let (alg, enc) = (self.alg, self.enc);
        let mut header = Map::new();
        header.insert("alg".into(), alg.as_str().into());
        header.insert("enc".into(), enc.as_str().into());
        if let Some(kid) = &self.kid {
            header.insert("kid".into(), kid.as_str().into());
        }
        if let Some(cty) = cty {
            header.insert("cty".into(), cty.into());
        }
        let (cek, encrypted_key) = match &self.recipient {
            Recipient::Rsa(key) => {
                let cek = random_key(enc.key_len());
                let padding = if alg == KeyManagement::RsaOaep {
                    &OAEP_SHA1_MGF1SHA1
                } else {
                    &OAEP_SHA256_MGF1SHA256
                };
                let oaep = OaepPublicEncryptingKey::new(key.clone()).expect("an RSA public key");
                let mut encrypted_key = vec![0; oaep.ciphertext_size()];
                let len = oaep
                    .encrypt(padding, &cek, &mut encrypted_key, None)
                    .expect("a content key fits RSA-OAEP on 2048 bits or more")
                    .len();
                encrypted_key.truncate(len);
                (cek, encrypted_key)
            }
            Recipient::Ec(key) => {
                let (derived, epk) = ecdh_es(key, alg, enc);
                header.insert("epk".into(), epk.to_jwk());
                if alg == KeyManagement::EcdhEs {
                    (derived, Vec::new())
                } else {
                    let cek = random_key(enc.key_len());
                    let kek =
                        AesKek::new(&AES_256, &derived).expect("a 256-bit key-encryption key");
                    let mut wrapped = vec![0; cek.len() + KEY_WRAP_OVERHEAD];
                    kek.wrap(&cek, &mut wrapped).expect("AES key wrap of a key");
                    (cek, wrapped)
                }
            }
        };

        let protected = b64url(Value::Object(header).to_string().as_bytes());
        let mut iv = [0u8; IV_LEN];
        aws_lc_rs::rand::fill(&mut iv).expect("system randomness");
        let key =
            LessSafeKey::new(UnboundKey::new(aead(enc), &cek).expect("a key of enc's length"));
        let mut ciphertext = plaintext.to_vec();
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(iv),
                Aad::from(protected.as_bytes()),
                &mut ciphertext,
            )
            .expect("AES-GCM sealing");
        format!(
            "{protected}.{}.{}.{}.{}",
            b64url(&encrypted_key),
            b64url(&iv),
            b64url(&ciphertext),
            b64url(tag.as_ref())
        )
    }
}

fn rsa_public_key(jwk: &Map<String, Value>) -> Result<PublicEncryptingKey, JweError> {
    let refuse = |why: &str| JweError::Recipient(why.to_owned());
    let component = |name: &str| {
        jwk.get(name)
            .and_then(Value::as_str)
            .and_then(b64url_decode)
            .ok_or_else(|| refuse("the JWK's n or e is missing or not base64url"))
    };
    let key: PublicEncryptingKey = PublicKeyComponents {
        n: component("n")?,
        e: component("e")?,
    }
    .try_into()
    .map_err(|_| refuse("the JWK's n and e are not an RSA public key"))?;
    if !(2048..=4096).contains(&key.key_size_bits()) {
        return Err(refuse("the JWK's RSA key is not of 2048 to 4096 bits"));
    }
    Ok(key)
}

/// The sender's half of ECDH-ES (RFC 7518 §4.6): a fresh ephemeral key on the recipient's curve,
/// and the key derived from its agreement with `recipient` (the content key for ECDH-ES, the
/// key-encryption key for ECDH-ES+A256KW).
fn ecdh_es(
    recipient: &EcPublicKey,
    alg: KeyManagement,
    enc: ContentEncryption,
) -> (Zeroizing<Vec<u8>>, EcPublicKey) {
    let (algorithm_id, key_bits) = if alg == KeyManagement::EcdhEs {
        (enc.as_str(), enc.key_len() * 8)
    } else {
        (alg.as_str(), 256)
    };
    let curve = recipient.curve;
    let ephemeral = EphemeralPrivateKey::generate(curve.agreement(), &SystemRandom::new())
        .expect("an ephemeral EC key");
    let epk = EcPublicKey {
        curve,
        point: ephemeral
            .compute_public_key()
            .expect("the ephemeral key's public point")
            .as_ref()
            .to_vec(),
    };
    let derived = agreement::agree_ephemeral(
        ephemeral,
        UnparsedPublicKey::new(curve.agreement(), &recipient.point),
        Unspecified,
        |z| Ok(concat_kdf(z, algorithm_id, &[], &[], key_bits)),
    )
    .expect("ECDH with a point checked to be on the curve");
    (derived, epk)
}

/// A fresh random key of `len` bytes.
pub fn random_key(len: usize) -> Zeroizing<Vec<u8>> {
    let mut key = Zeroizing::new(vec![0; len]);
    aws_lc_rs::rand::fill(&mut key).expect("system randomness");
    key
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::{KeyPairComponents, OaepPrivateDecryptingKey, PrivateDecryptingKey};
    use serde_json::json;

    use super::*;

    const MAX: usize = 64 * 1024;

    /// A recipient's private key, used the way a backend would.
    enum PrivateKey {
        Rsa(PrivateDecryptingKey),
        Ec(agreement::PrivateKey),
    }

    impl PrivateKey {
        fn rsa() -> PrivateKey {
            PrivateKey::Rsa(
                PrivateDecryptingKey::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap(),
            )
        }

        fn ec(curve: Curve) -> PrivateKey {
            PrivateKey::Ec(agreement::PrivateKey::generate(curve.agreement()).unwrap())
        }

        fn public_jwk(&self) -> Value {
            match self {
                PrivateKey::Rsa(key) => {
                    let der = key.public_key().as_der().unwrap();
                    let public = aws_lc_rs::rsa::PublicKey::from_der(der.as_ref()).unwrap();
                    json!({
                        "kty": "RSA",
                        "n": b64url(public.modulus().big_endian_without_leading_zero()),
                        "e": b64url(public.exponent().big_endian_without_leading_zero()),
                    })
                }
                PrivateKey::Ec(key) => {
                    let curve = if key.algorithm() == &ECDH_P256 {
                        Curve::P256
                    } else {
                        Curve::P384
                    };
                    let point = key.compute_public_key().unwrap().as_ref().to_vec();
                    EcPublicKey { curve, point }.to_jwk()
                }
            }
        }

        /// The backend's key-management step, then the content key and the plaintext.
        fn open(&self, jwe: &Jwe) -> Result<Vec<u8>, JweError> {
            let cek = match self {
                PrivateKey::Rsa(key) => {
                    let padding = if jwe.alg == KeyManagement::RsaOaep {
                        &OAEP_SHA1_MGF1SHA1
                    } else {
                        &OAEP_SHA256_MGF1SHA256
                    };
                    let key = OaepPrivateDecryptingKey::new(key.clone()).unwrap();
                    let mut out = vec![0; key.min_output_size()];
                    let cek = key
                        .decrypt(padding, &jwe.encrypted_key, &mut out, None)
                        .map_err(|_| JweError::Decryption)?;
                    content_key(jwe, KeySecret::Cek(cek))?
                }
                PrivateKey::Ec(key) => {
                    let epk = jwe.epk.as_ref().unwrap();
                    let z = agreement::agree(
                        key,
                        UnparsedPublicKey::new(epk.curve().agreement(), epk.point()),
                        (),
                        |z| Ok(z.to_vec()),
                    )
                    .unwrap();
                    content_key(jwe, KeySecret::SharedSecret(&z))?
                }
            };
            decrypt(jwe, &cek)
        }
    }

    fn encrypt_to(key: &PrivateKey, alg: KeyManagement, enc: ContentEncryption) -> String {
        Encryption::to_jwk(&key.public_jwk(), Some(alg), enc)
            .unwrap()
            .seal(None, b"a secret")
    }

    fn message(result: Result<Jwe, JweError>) -> String {
        result.unwrap_err().to_string()
    }

    /// The token with its protected header replaced (`edit` gets the header to change).
    fn with_header(token: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
        let (protected, rest) = token.split_once('.').unwrap();
        let mut header: Map<String, Value> =
            serde_json::from_slice(&b64url_decode(protected).unwrap()).unwrap();
        edit(&mut header);
        format!(
            "{}.{rest}",
            b64url(Value::Object(header).to_string().as_bytes())
        )
    }

    /// The token with segment `index` replaced by `f` of its decoded bytes.
    fn with_segment(token: &str, index: usize, f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut segments: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut bytes = b64url_decode(&segments[index]).unwrap();
        f(&mut bytes);
        segments[index] = b64url(&bytes);
        segments.join(".")
    }

    #[test]
    fn every_alg_and_enc_round_trips() {
        let rsa = PrivateKey::rsa();
        let p256 = PrivateKey::ec(Curve::P256);
        let p384 = PrivateKey::ec(Curve::P384);
        for alg in KeyManagement::ALL {
            for enc in ContentEncryption::ALL {
                let keys = if alg.is_ecdh() {
                    vec![&p256, &p384]
                } else {
                    vec![&rsa]
                };
                for key in keys {
                    let mut jwk = key.public_jwk();
                    jwk["kid"] = "k1".into();
                    let token = Encryption::to_jwk(&jwk, Some(alg), enc)
                        .unwrap()
                        .seal(Some("JWT"), b"hello");
                    let jwe = parse(&token, MAX).unwrap();
                    assert_eq!((jwe.alg, jwe.enc), (alg, enc));
                    assert_eq!(jwe.kid.as_deref(), Some("k1"));
                    assert_eq!(jwe.cty.as_deref(), Some("JWT"));
                    assert_eq!(jwe.header["alg"], alg.as_str());
                    assert_eq!(key.open(&jwe).unwrap(), b"hello", "{alg:?} {enc:?}");
                    if let PrivateKey::Ec(private) = key {
                        let curve = jwe.epk.as_ref().unwrap().curve();
                        assert_eq!(curve.agreement(), private.algorithm());
                        assert!(jwe.check_curve(curve).is_ok());
                    }
                }
            }
        }
        // An empty plaintext is a JWE too.
        let token = Encryption::to_jwk(&p256.public_jwk(), None, ContentEncryption::A256Gcm)
            .unwrap()
            .seal(None, b"");
        assert_eq!(p256.open(&parse(&token, MAX).unwrap()).unwrap(), b"");
    }

    #[test]
    fn concat_kdf_matches_rfc7518_appendix_c() {
        let bob_d = b64url_decode("VEmDZpDXXK8p8N0Cndsxs924q6nS1RXFASRl6BfUqdw").unwrap();
        let bob = agreement::PrivateKey::from_private_key(&ECDH_P256, &bob_d).unwrap();
        let alice = EcPublicKey::from_jwk(&json!({
            "kty": "EC",
            "crv": "P-256",
            "x": "gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0",
            "y": "SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps",
        }))
        .unwrap();
        let z = agreement::agree(
            &bob,
            UnparsedPublicKey::new(&ECDH_P256, alice.point()),
            (),
            |z| Ok(z.to_vec()),
        )
        .unwrap();
        assert_eq!(z[..4], [158, 86, 217, 29]);
        let key = concat_kdf(&z, "A128GCM", b"Alice", b"Bob", 128);
        assert_eq!(b64url(&key), "VqqN6vgjbSBcIijNcacQGg");
        // Two SHA-256 rounds, the second cut (checked with Python cryptography's ConcatKDFHash).
        assert_eq!(
            b64url(&concat_kdf(&z, "ECDH-ES+A256KW", b"Alice", b"Bob", 384)),
            "VDcgIne7Prg73kAK4ZBKbSRH3u7kNQajN8NzU31GpNGF0IQzhg9F0oez82uJ5JUp"
        );
    }

    #[test]
    fn decrypts_the_rfc7516_appendix_a1_example() {
        // RFC 7516 Appendix A.1: RSA-OAEP and A256GCM, with the recipient's key of A.1.3.
        let token = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.\
            OKOawDo13gRp2ojaHV7LFpZcgV7T6DVZKTyKOMTYUmKoTCVJRgckCL9kiMT03JGe\
            ipsEdY3mx_etLbbWSrFr05kLzcSr4qKAq7YN7e9jwQRb23nfa6c9d-StnImGyFDb\
            Sv04uVuxIp5Zms1gNxKKK2Da14B8S4rzVRltdYwam_lDp5XnZAYpQdb76FdIKLaV\
            mqgfwX7XWRxv2322i-vDxRfqNzo_tETKzpVLzfiwQyeyPGLBIO56YJ7eObdv0je8\
            1860ppamavo35UgoRdbYaBcoh9QcfylQr66oc6vFWXRcZ_ZT2LawVCWTIy3brGPi\
            6UklfCpIMfIjf7iGdXKHzg.\
            48V1_ALb6US04U3b.\
            5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6ji\
            SdiwkIr3ajwQzaBtQD_A.\
            XFBoMYUZodetZdvTiFvSkQ";
        let component = |text: &str| b64url_decode(text).unwrap();
        let components = KeyPairComponents {
            public_key: PublicKeyComponents {
                n: component(
                    "oahUIoWw0K0usKNuOR6H4wkf4oBUXHTxRvgb48E-BVvxkeDNjbC4he8rUW\
                     cJoZmds2h7M70imEVhRU5djINXtqllXI4DFqcI1DgjT9LewND8MW2Krf3S\
                     psk_ZkoFnilakGygTwpZ3uesH-PFABNIUYpOiN15dsQRkgr0vEhxN92i2a\
                     sbOenSZeyaxziK72UwxrrKoExv6kc5twXTq4h-QChLOln0_mtUZwfsRaMS\
                     tPs6mS6XrgxnxbWhojf663tuEQueGC-FCMfra36C9knDFGzKsNa7LZK2dj\
                     YgyD3JR_MB_4NUJW_TqOQtwHYbxevoJArm-L5StowjzGy-_bq6Gw",
                ),
                e: component("AQAB"),
            },
            d: component(
                "kLdtIj6GbDks_ApCSTYQtelcNttlKiOyPzMrXHeI-yk1F7-kpDxY4-WY5N\
                 WV5KntaEeXS1j82E375xxhWMHXyvjYecPT9fpwR_M9gV8n9Hrh2anTpTD9\
                 3Dt62ypW3yDsJzBnTnrYu1iwWRgBKrEYY46qAZIrA2xAwnm2X7uGR1hghk\
                 qDp0Vqj3kbSCz1XyfCs6_LehBwtxHIyh8Ripy40p24moOAbgxVw3rxT_vl\
                 t3UVe4WO3JkJOzlpUf-KTVI2Ptgm-dARxTEtE-id-4OJr0h-K-VFs3VSnd\
                 VTIznSxfyrj8ILL6MG_Uv8YAu7VILSB3lOW085-4qE3DzgrTjgyQ",
            ),
            p: component(
                "1r52Xk46c-LsfB5P442p7atdPUrxQSy4mti_tZI3Mgf2EuFVbUoDBvaRQ-\
                 SWxkbkmoEzL7JXroSBjSrK3YIQgYdMgyAEPTPjXv_hI2_1eTSPVZfzL0lf\
                 fNn03IXqWF5MDFuoUYE0hzb2vhrlN_rKrbfDIwUbTrjjgieRbwC6Cl0",
            ),
            q: component(
                "wLb35x7hmQWZsWJmB_vle87ihgZ19S8lBEROLIsZG4ayZVe9Hi9gDVCOBm\
                 UDdaDYVTSNx_8Fyw1YYa9XGrGnDew00J28cRUoeBB_jKI1oma0Orv1T9aX\
                 IWxKwd4gvxFImOWr3QRL9KEBRzk2RatUBnmDZJTIAfwTs0g68UZHvtc",
            ),
            dP: component(
                "ZK-YwE7diUh0qR1tR7w8WHtolDx3MZ_OTowiFvgfeQ3SiresXjm9gZ5KL\
                 hMXvo-uz-KUJWDxS5pFQ_M0evdo1dKiRTjVw_x4NyqyXPM5nULPkcpU827\
                 rnpZzAJKpdhWAgqrXGKAECQH0Xt4taznjnd_zVpAmZZq60WPMBMfKcuE",
            ),
            dQ: component(
                "Dq0gfgJ1DdFGXiLvQEZnuKEN0UUmsJBxkjydc3j4ZYdBiMRAy86x0vHCj\
                 ywcMlYYg4yoC4YZa9hNVcsjqA3FeiL19rk8g6Qn29Tt0cj8qqyFpz9vNDB\
                 UfCAiJVeESOjJDZPYHdHY8v1b-o-Z2X5tvLx-TCekf7oxyeKDUqKWjis",
            ),
            qInv: component(
                "VIMpMYbPf47dT1w_zDUXfPimsSegnMOA1zTaX7aGk_8urY6R8-ZW1FxU7\
                 AlWAyLWybqq6t16VFd7hQd0y6flUK4SlOydB61gwanOsXGOAOv82cHq0E3\
                 eL4HrtZkUuKvnPrMnsUUFlfUdybVzxyjz9JF_XyaY14ardLSjf4L_FNY",
            ),
        };
        let pkcs8 = aws_lc_rs::rsa::KeyPair::from_components(&components)
            .unwrap()
            .as_der()
            .unwrap();
        let key = PrivateKey::Rsa(PrivateDecryptingKey::from_pkcs8(pkcs8.as_ref()).unwrap());
        let jwe = parse(token, MAX).unwrap();
        assert_eq!(
            (jwe.alg, jwe.enc),
            (KeyManagement::RsaOaep, ContentEncryption::A256Gcm)
        );
        assert_eq!(
            key.open(&jwe).unwrap(),
            b"The true sign of intelligence is not knowledge but imagination."
        );
    }

    #[test]
    fn tampering_fails_as_an_undistinguished_decryption_error() {
        let rsa = PrivateKey::rsa();
        let p256 = PrivateKey::ec(Curve::P256);
        for (key, alg) in [
            (&rsa, KeyManagement::RsaOaep256),
            (&p256, KeyManagement::EcdhEs),
            (&p256, KeyManagement::EcdhEsA256Kw),
        ] {
            let token = encrypt_to(key, alg, ContentEncryption::A256Gcm);
            let flip_last = |bytes: &mut Vec<u8>| *bytes.last_mut().unwrap() ^= 1;
            let mut tampered = vec![
                with_segment(&token, 3, flip_last),
                with_segment(&token, 4, flip_last),
                with_segment(&token, 2, flip_last),
                with_header(&token, |h| {
                    h.insert("kid".into(), "k2".into());
                }),
            ];
            if alg != KeyManagement::EcdhEs {
                tampered.push(with_segment(&token, 1, flip_last));
            }
            for token in tampered {
                let jwe = parse(&token, MAX).unwrap();
                assert_eq!(key.open(&jwe), Err(JweError::Decryption), "{alg:?}");
            }
        }
        assert_eq!(
            JweError::Decryption.to_string(),
            "the token could not be decrypted"
        );
        // A secret of the wrong kind, or a content key of the wrong length.
        let jwe = parse(
            &encrypt_to(&rsa, KeyManagement::RsaOaep, ContentEncryption::A256Gcm),
            MAX,
        )
        .unwrap();
        assert!(content_key(&jwe, KeySecret::SharedSecret(&[1; 32])).is_err());
        assert!(content_key(&jwe, KeySecret::Cek(&[1; 16])).is_err());
        assert!(decrypt(&jwe, &[1; 16]).is_err());
    }

    #[test]
    fn refused_algorithms_and_header_members() {
        let token = encrypt_to(
            &PrivateKey::rsa(),
            KeyManagement::RsaOaep,
            ContentEncryption::A256Gcm,
        );
        assert!(parse(&token, MAX).is_ok());
        let refused = |edit: &dyn Fn(&mut Map<String, Value>)| {
            message(parse(&with_header(&token, edit), MAX))
        };
        for (member, value, why) in [
            ("zip", json!("DEF"), "zip"),
            ("crit", json!(["exp"]), "crit"),
            ("jku", json!("https://evil.test/jwks"), "jku"),
            ("jwk", json!({"kty": "oct", "k": "AAAA"}), "jku"),
            ("x5u", json!("https://evil.test/x5u"), "jku"),
            ("alg", json!("RSA1_5"), "RSA1_5 is refused"),
            ("alg", json!("dir"), "dir is refused"),
            ("alg", json!("A256KW"), "asymmetric"),
            ("alg", json!("PBES2-HS256+A128KW"), "PBES2"),
            ("alg", json!("ECDH-ES+A128KW"), "only RSA-OAEP"),
            ("alg", json!("none"), "only RSA-OAEP"),
            ("alg", json!(1), "not a string"),
            ("enc", json!("A128CBC-HS256"), "only A256GCM and A128GCM"),
            ("kid", json!(7), "kid is not a string"),
            ("apu", json!("!!"), "apu is not base64url"),
        ] {
            let why_message = refused(&|h| {
                h.insert(member.into(), value.clone());
            });
            assert!(why_message.contains(why), "{member}: {why_message}");
        }
        assert!(refused(&|h| {
            h.remove("enc");
        })
        .contains("no enc"));
        let long = "A".repeat(5000);
        assert!(
            refused(&|h| {
                h.insert("alg".into(), long.clone().into());
            })
            .len()
                < 300
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let token = encrypt_to(
            &PrivateKey::rsa(),
            KeyManagement::RsaOaep256,
            ContentEncryption::A128Gcm,
        );
        assert!(message(parse(&token, token.len() - 1)).contains("longer than"));
        assert!(parse(&token, token.len()).is_ok());
        for bad in [
            token.rsplit_once('.').unwrap().0.to_owned(),
            format!("{token}."),
            token.replacen('.', ".!", 1),
            format!("{token}="),
            "....".to_owned(),
        ] {
            assert!(parse(&bad, MAX).is_err(), "{bad}");
        }
        assert!(
            message(parse(&with_segment(&token, 2, |iv| iv.truncate(11)), MAX))
                .contains("IV is not 12 bytes")
        );
        assert!(
            message(parse(&with_segment(&token, 4, |tag| tag.truncate(15)), MAX))
                .contains("tag is not 16 bytes")
        );
        assert!(message(parse(&with_segment(&token, 1, Vec::clear), MAX)).contains("encrypted key"));
        let (_, rest) = token.split_once('.').unwrap();
        let twice = format!(
            "{}.{rest}",
            b64url(br#"{"alg":"RSA-OAEP-256","enc":"A128GCM","alg":"RSA-OAEP"}"#)
        );
        assert!(message(parse(&twice, MAX)).contains(".alg more than once"));
        let array = format!("{}.{rest}", b64url(b"[1]"));
        assert!(message(parse(&array, MAX)).contains("not a JSON object"));
    }

    #[test]
    fn the_epk_must_be_a_point_on_the_keys_curve() {
        let p256 = PrivateKey::ec(Curve::P256);
        let token = encrypt_to(&p256, KeyManagement::EcdhEs, ContentEncryption::A256Gcm);
        let jwe = parse(&token, MAX).unwrap();
        assert!(jwe.check_curve(Curve::P256).is_ok());
        assert!(jwe
            .check_curve(Curve::P384)
            .unwrap_err()
            .to_string()
            .contains("curve"));

        let edit_epk = |edit: &dyn Fn(&mut Map<String, Value>)| {
            message(parse(
                &with_header(&token, |h| {
                    edit(h["epk"].as_object_mut().unwrap());
                }),
                MAX,
            ))
        };
        let y = jwe.header["epk"]["y"].as_str().unwrap().to_owned();
        let mut off_curve = b64url_decode(&y).unwrap();
        off_curve[31] ^= 1;
        assert!(edit_epk(&|epk| {
            epk.insert("y".into(), b64url(&off_curve).into());
        })
        .contains("not a point on its curve"));
        // The point at infinity has no affine coordinates: (0, 0) is what a JWK could say.
        assert!(edit_epk(&|epk| {
            epk.insert("x".into(), b64url(&[0; 32]).into());
            epk.insert("y".into(), b64url(&[0; 32]).into());
        })
        .contains("not a point on its curve"));
        assert!(edit_epk(&|epk| {
            epk.insert("crv".into(), "P-384".into());
        })
        .contains("length"));
        assert!(edit_epk(&|epk| {
            epk.insert("crv".into(), "secp256k1".into());
        })
        .contains("crv"));
        assert!(edit_epk(&|epk| {
            epk.insert("kty".into(), "OKP".into());
        })
        .contains("not an EC JWK"));
        assert!(edit_epk(&|epk| {
            epk.insert("d".into(), "AAAA".into());
        })
        .contains("private"));
        let missing = with_header(&token, |h| {
            h.remove("epk");
        });
        assert!(message(parse(&missing, MAX)).contains("needs an epk"));

        // A valid point, but on P-384, for a P-256 key: parsed, then refused by the curve check.
        let p384 = PrivateKey::ec(Curve::P384);
        let other = parse(
            &encrypt_to(
                &p384,
                KeyManagement::EcdhEsA256Kw,
                ContentEncryption::A256Gcm,
            ),
            MAX,
        )
        .unwrap();
        assert!(other.check_curve(Curve::P256).is_err());
        // ECDH-ES+A256KW wraps the content key: 40 bytes for A256GCM, 24 for A128GCM.
        assert_eq!(other.encrypted_key.len(), 40);
        let short = encrypt_to(
            &p384,
            KeyManagement::EcdhEsA256Kw,
            ContentEncryption::A128Gcm,
        );
        assert_eq!(parse(&short, MAX).unwrap().encrypted_key.len(), 24);
        assert!(parse(&with_segment(&short, 1, |k| k.extend([0; 16])), MAX).is_err());
        let padded = with_segment(&token, 1, |k| k.push(0));
        assert!(message(parse(&padded, MAX)).contains("encrypted key"));
    }

    #[test]
    fn recipient_keys_are_public_encryption_keys_only() {
        let enc = ContentEncryption::A256Gcm;
        let refused = |jwk: Value| match Encryption::to_jwk(&jwk, None, enc) {
            Err(JweError::Recipient(why)) => why,
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("accepted {jwk}"),
        };
        let ec = PrivateKey::ec(Curve::P256).public_jwk();
        let rsa = PrivateKey::rsa().public_jwk();
        // Without an alg asked for or named: ECDH-ES to EC keys, RSA-OAEP-256 to RSA keys.
        assert_eq!(
            Encryption::to_jwk(&ec, None, enc).unwrap().alg(),
            KeyManagement::EcdhEs
        );
        assert_eq!(
            Encryption::to_jwk(&rsa, None, enc).unwrap().alg(),
            KeyManagement::RsaOaep256
        );
        let with = |jwk: &Value, member: &str, value: Value| {
            let mut jwk = jwk.clone();
            jwk[member] = value;
            jwk
        };
        assert!(refused(with(&ec, "d", json!("AAAA"))).contains("private"));
        assert!(refused(with(&rsa, "p", json!("AAAA"))).contains("private"));
        assert!(refused(with(&ec, "use", json!("sig"))).contains("use"));
        assert!(refused(with(&ec, "alg", json!("ES256"))).contains("alg"));
        assert!(refused(json!({"kty": "oct"})).contains("kty"));
        assert!(refused(json!("RSA")).contains("object"));
        let mut y = b64url_decode(ec["y"].as_str().unwrap()).unwrap();
        y[0] ^= 1;
        assert!(refused(with(&ec, "y", json!(b64url(&y)))).contains("point"));
        let small = json!({"kty": "RSA", "n": b64url(&[0xc1; 128]), "e": "AQAB"});
        assert!(refused(small).contains("RSA"));

        assert!(refused(with(&ec, "kid", json!(7))).contains("kid"));
        assert!(refused(with(&ec, "kid", json!("k".repeat(257)))).contains("kid"));

        // A JWK naming its alg is encrypted to with that alg only; a key of the other kind not
        // at all.
        let pinned = with(&ec, "alg", json!("ECDH-ES"));
        let to = |jwk: &Value, alg| Encryption::to_jwk(jwk, Some(alg), enc);
        assert!(to(&pinned, KeyManagement::EcdhEs).is_ok());
        assert!(to(&pinned, KeyManagement::EcdhEsA256Kw).is_err());
        assert_eq!(
            Encryption::to_jwk(&pinned, None, enc).unwrap().alg(),
            KeyManagement::EcdhEs
        );
        let rsa = with(&rsa, "use", json!("enc"));
        assert!(to(&rsa, KeyManagement::EcdhEs).is_err());
        assert!(to(&ec, KeyManagement::RsaOaep).is_err());
    }

    #[test]
    fn algorithm_names_round_trip_through_serde() {
        for alg in KeyManagement::ALL {
            let json = serde_json::to_value(alg).unwrap();
            assert_eq!(json, alg.as_str());
            assert_eq!(serde_json::from_value::<KeyManagement>(json).unwrap(), alg);
        }
        for enc in ContentEncryption::ALL {
            let json = serde_json::to_value(enc).unwrap();
            assert_eq!(json, enc.as_str());
            assert_eq!(ContentEncryption::parse(enc.as_str()), Some(enc));
        }
        assert_eq!(KeyManagement::parse("RSA1_5"), None);
    }
}
