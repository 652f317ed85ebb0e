//! signet's objects on the token: how a key pair is generated, found again, read and used to
//! sign (decryption and ECDH are in `encryption.rs`).
//!
//! Each key pair carries `CKA_LABEL = "signet:<key id>"` and `CKA_ID = <key id>` on both halves,
//! which ties it to signet's record of the key.

use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use signet_core::{Algorithm, KeySpec, KeyUse, PublicKey};

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::fault::Fault;

pub(crate) const LABEL_PREFIX: &str = "signet:";

/// SoftHSM 2.6.1 now and then fails object creation or removal that runs at the same time as
/// another with `CKR_GENERAL_ERROR` (its file object store; SoftHSMv2 issue 573), and reading
/// the token's info beside them too: this process changes the token's objects one at a time,
/// and reads the token's info when opening it while none changes. Key generation and destruction are rare
/// (rotations), so no token loses anything by it; signing is not serialised.
static TOKEN_CHANGES: Mutex<()> = Mutex::new(());

/// Holds off every other creation or removal of objects in this process while it lives.
pub(crate) fn changing_objects() -> MutexGuard<'static, ()> {
    TOKEN_CHANGES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// DER-encoded curve OIDs for `CKA_EC_PARAMS`.
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
const RSA_EXPONENT: &[u8] = &[0x01, 0x00, 0x01];

pub(crate) fn label(id: &str) -> Vec<u8> {
    format!("{LABEL_PREFIX}{id}").into_bytes()
}

/// A key pair on the token, as looked up once and then cached.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyObject {
    pub(crate) private: ObjectHandle,
    pub(crate) public: ObjectHandle,
    pub(crate) spec: KeySpec,
    pub(crate) usage: KeyUse,
}

impl KeyObject {
    /// Refuses with [`Fault::WrongUse`] unless the key is for `usage` and its spec is one of
    /// `specs`; `operation` names what was asked, for the error.
    pub(crate) fn require(
        &self,
        usage: KeyUse,
        specs: &[KeySpec],
        operation: &'static str,
    ) -> Result<(), Fault> {
        if self.usage == usage && specs.contains(&self.spec) {
            Ok(())
        } else {
            Err(Fault::WrongUse {
                spec: self.spec,
                usage: self.usage,
                operation,
            })
        }
    }
}

/// Generates a key pair of `spec` for `usage` for signet key `id`. The private half is
/// sensitive, never extractable, and can do only what `usage` says: a signing key signs, an RSA
/// encryption key decrypts with RSA-OAEP only, an EC encryption key derives with ECDH only.
pub(crate) fn generate(
    session: &Session,
    id: &str,
    spec: KeySpec,
    usage: KeyUse,
) -> Result<KeyObject, Fault> {
    let _one_at_a_time = changing_objects();
    let (mechanism, mut public) = match spec {
        KeySpec::EcP256 => (
            Mechanism::EccKeyPairGen,
            vec![Attribute::EcParams(P256_OID.to_vec())],
        ),
        KeySpec::EcP384 => (
            Mechanism::EccKeyPairGen,
            vec![Attribute::EcParams(P384_OID.to_vec())],
        ),
        KeySpec::Ed25519 => (
            Mechanism::EccEdwardsKeyPairGen,
            vec![Attribute::EcParams(ED25519_OID.to_vec())],
        ),
        KeySpec::Rsa2048 | KeySpec::Rsa3072 => (
            Mechanism::RsaPkcsKeyPairGen,
            vec![
                Attribute::ModulusBits(if spec == KeySpec::Rsa2048 { 2048 } else { 3072 }.into()),
                Attribute::PublicExponent(RSA_EXPONENT.to_vec()),
            ],
        ),
    };
    let signs = usage == KeyUse::Sign;
    let rsa = matches!(spec, KeySpec::Rsa2048 | KeySpec::Rsa3072);
    let tie = [
        Attribute::Label(label(id)),
        Attribute::Id(id.as_bytes().to_vec()),
    ];
    public.extend([
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(signs),
        Attribute::Encrypt(!signs && rsa),
        Attribute::Wrap(false),
    ]);
    public.extend(tie.iter().cloned());
    let mut private = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(signs),
        Attribute::Decrypt(!signs && rsa),
        Attribute::Unwrap(false),
        Attribute::Derive(!signs && !rsa),
    ];
    if !signs {
        // SoftHSM makes private keys able to sign with recovery unless told otherwise, and
        // CKA_DECRYPT alone lets an RSA key decrypt raw (CKM_RSA_X_509), which is signing by
        // another name: an encryption key is held to the one mechanism signet uses with it.
        public.push(Attribute::VerifyRecover(false));
        private.extend([
            Attribute::SignRecover(false),
            Attribute::AllowedMechanisms(vec![if rsa {
                MechanismType::RSA_PKCS_OAEP
            } else {
                MechanismType::ECDH1_DERIVE
            }]),
        ]);
    }
    private.extend(tie);
    let (public, private) = session
        .generate_key_pair(&mechanism, &public, &private)
        .map_err(Fault::call("generating a key pair"))?;
    Ok(KeyObject {
        private,
        public,
        spec,
        usage,
    })
}

/// Every object labelled for `id` (both halves, or whatever a crash left).
pub(crate) fn find_all(session: &Session, id: &str) -> Result<Vec<ObjectHandle>, Fault> {
    session
        .find_objects(&[Attribute::Token(true), Attribute::Label(label(id))])
        .map_err(Fault::call("finding objects"))
}

fn find_one(
    session: &Session,
    id: &str,
    class: ObjectClass,
) -> Result<Option<ObjectHandle>, Fault> {
    let found = session
        .find_objects(&[Attribute::Class(class), Attribute::Label(label(id))])
        .map_err(Fault::call("finding a key"))?;
    Ok(found.first().copied())
}

/// Whether the token holds the private key of `id`.
pub(crate) fn exists(session: &Session, id: &str) -> Result<bool, Fault> {
    Ok(find_one(session, id, ObjectClass::PRIVATE_KEY)?.is_some())
}

/// Finds the key pair of `id` and works out its spec from the public half, and its use from
/// what the private half may do (sign, or not: an encryption key).
pub(crate) fn find(session: &Session, id: &str) -> Result<KeyObject, Fault> {
    let missing = || Fault::NoSuchKey(id.to_owned());
    let private = find_one(session, id, ObjectClass::PRIVATE_KEY)?.ok_or_else(missing)?;
    let public = find_one(session, id, ObjectClass::PUBLIC_KEY)?.ok_or_else(missing)?;
    let attributes = session
        .get_attributes(
            public,
            &[
                AttributeType::KeyType,
                AttributeType::EcParams,
                AttributeType::Modulus,
            ],
        )
        .map_err(Fault::call("reading a key's type"))?;
    let mut key_type = None;
    let mut params = None;
    let mut modulus_len = 0;
    for attribute in attributes {
        match attribute {
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::EcParams(p) => params = Some(p),
            Attribute::Modulus(n) => modulus_len = strip_zeros(&n).len(),
            _ => {}
        }
    }
    let signs = session
        .get_attributes(private, &[AttributeType::Sign])
        .map_err(Fault::call("reading a key's use"))?
        .contains(&Attribute::Sign(true));
    let spec = match (key_type, params.as_deref()) {
        (Some(KeyType::EC), Some(P256_OID)) => KeySpec::EcP256,
        (Some(KeyType::EC), Some(P384_OID)) => KeySpec::EcP384,
        (Some(KeyType::EC_EDWARDS), Some(_)) => KeySpec::Ed25519,
        (Some(KeyType::RSA), _) if modulus_len == 256 => KeySpec::Rsa2048,
        (Some(KeyType::RSA), _) if modulus_len == 384 => KeySpec::Rsa3072,
        (key_type, _) => {
            return Err(Fault::Unrecognised(format!(
                "key {id} on the token is of a type signet does not make ({key_type:?})"
            )))
        }
    };
    Ok(KeyObject {
        private,
        public,
        spec,
        usage: if signs { KeyUse::Sign } else { KeyUse::Encrypt },
    })
}

/// The ids of every key pair signet made on the token (by their labels).
pub(crate) fn inventory(session: &Session) -> Result<Vec<String>, Fault> {
    let handles = session
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .map_err(Fault::call("listing private keys"))?;
    let mut ids = Vec::new();
    for handle in handles {
        let attributes = session
            .get_attributes(handle, &[AttributeType::Label])
            .map_err(Fault::call("reading a label"))?;
        for attribute in attributes {
            if let Attribute::Label(label) = attribute {
                if let Some(id) = String::from_utf8_lossy(&label).strip_prefix(LABEL_PREFIX) {
                    ids.push(id.to_owned());
                }
            }
        }
    }
    Ok(ids)
}

/// Reads the public half of `key` in the raw form a JWK is made of.
pub(crate) fn public_key(session: &Session, key: &KeyObject) -> Result<PublicKey, Fault> {
    let read = |types: &[AttributeType]| {
        session
            .get_attributes(key.public, types)
            .map_err(Fault::call("reading a public key"))
    };
    let unreadable =
        || Fault::Unrecognised(format!("cannot read a {} public key", key.spec.as_str()));
    match key.spec {
        KeySpec::EcP256 | KeySpec::EcP384 | KeySpec::Ed25519 => {
            let point = read(&[AttributeType::EcPoint])?
                .into_iter()
                .find_map(|a| match a {
                    Attribute::EcPoint(p) => Some(p),
                    _ => None,
                })
                .ok_or_else(unreadable)?;
            let raw = unwrap_point(&point, key.spec).ok_or_else(unreadable)?;
            Ok(match key.spec {
                KeySpec::Ed25519 => PublicKey::Ed25519 { x: raw.to_vec() },
                spec => {
                    let coordinates = &raw[1..];
                    let (x, y) = coordinates.split_at(coordinates.len() / 2);
                    PublicKey::Ec {
                        spec,
                        x: x.to_vec(),
                        y: y.to_vec(),
                    }
                }
            })
        }
        KeySpec::Rsa2048 | KeySpec::Rsa3072 => {
            let (mut n, mut e) = (None, None);
            for attribute in read(&[AttributeType::Modulus, AttributeType::PublicExponent])? {
                match attribute {
                    Attribute::Modulus(v) => n = Some(strip_zeros(&v).to_vec()),
                    Attribute::PublicExponent(v) => e = Some(strip_zeros(&v).to_vec()),
                    _ => {}
                }
            }
            Ok(PublicKey::Rsa {
                n: n.ok_or_else(unreadable)?,
                e: e.ok_or_else(unreadable)?,
            })
        }
    }
}

/// The point inside `CKA_EC_POINT`: a DER OCTET STRING around `04 || X || Y` (or around the
/// 32-byte Ed25519 key). Some modules return the bare point: both are accepted, told apart by
/// length.
fn unwrap_point(value: &[u8], spec: KeySpec) -> Option<&[u8]> {
    let (raw_len, uncompressed) = match spec {
        KeySpec::EcP256 => (65, true),
        KeySpec::EcP384 => (97, true),
        KeySpec::Ed25519 => (32, false),
        KeySpec::Rsa2048 | KeySpec::Rsa3072 => return None,
    };
    let raw = if value.len() == raw_len {
        value
    } else if value.len() == raw_len + 2 && value[0] == 0x04 && usize::from(value[1]) == raw_len {
        &value[2..]
    } else {
        return None;
    };
    (!uncompressed || raw[0] == 0x04).then_some(raw)
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// The mechanism that makes a JWS signature of `alg` with the signing key `key`, and the data to
/// hand it: the token's `CKM_ECDSA` signs a digest we compute (its output is already `r || s`);
/// the others hash inside the token.
pub(crate) fn signing_input(
    key: &KeyObject,
    alg: Algorithm,
    message: &[u8],
) -> Result<(Mechanism<'static>, Vec<u8>), Fault> {
    key.require(KeyUse::Sign, &[key.spec], "sign")?;
    if !alg.accepts(key.spec) {
        return Err(Fault::WrongAlgorithm {
            spec: key.spec,
            alg,
        });
    }
    let digest = |algorithm| {
        aws_lc_rs::digest::digest(algorithm, message)
            .as_ref()
            .to_vec()
    };
    Ok(match alg {
        Algorithm::ES256 => (Mechanism::Ecdsa, digest(&aws_lc_rs::digest::SHA256)),
        Algorithm::ES384 => (Mechanism::Ecdsa, digest(&aws_lc_rs::digest::SHA384)),
        Algorithm::RS256 => (Mechanism::Sha256RsaPkcs, message.to_vec()),
        Algorithm::PS256 => (
            Mechanism::Sha256RsaPkcsPss(PkcsPssParams {
                hash_alg: MechanismType::SHA256,
                mgf: PkcsMgfType::MGF1_SHA256,
                s_len: 32.into(),
            }),
            message.to_vec(),
        ),
        Algorithm::Ed25519 | Algorithm::EdDSA => (
            Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
            message.to_vec(),
        ),
    })
}
