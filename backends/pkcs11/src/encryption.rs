//! What an encryption key does on the token: RSA-OAEP decryption (`CKM_RSA_PKCS_OAEP`, MGF1 with
//! the same hash, no label) and ECDH (`CKM_ECDH1_DERIVE` with `CKD_NULL`), whose shared secret
//! the token derives into a session object that is read and destroyed at once.

use cryptoki::context::Function;
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use cryptoki::session::Session;
use signet_core::{KeySpec, KeyUse, OaepHash, PublicKey, Zeroizing};

use crate::fault::Fault;
use crate::objects::KeyObject;

/// Decrypts `ciphertext` with RSAES-OAEP under `hash` with the RSA encryption key `key`.
pub(crate) fn decrypt(
    session: &Session,
    key: &KeyObject,
    hash: OaepHash,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Fault> {
    key.require(
        KeyUse::Encrypt,
        &[KeySpec::Rsa2048, KeySpec::Rsa3072],
        "decrypt with RSA-OAEP",
    )?;
    let (hash_alg, mgf, what) = match hash {
        OaepHash::Sha1 => (
            MechanismType::SHA1,
            PkcsMgfType::MGF1_SHA1,
            "RSA-OAEP with SHA-1",
        ),
        OaepHash::Sha256 => (
            MechanismType::SHA256,
            PkcsMgfType::MGF1_SHA256,
            "RSA-OAEP with SHA-256",
        ),
    };
    // A ciphertext is as long as the modulus (RFC 8017 §7.1.2): the token never sees another.
    let modulus_len = if key.spec == KeySpec::Rsa2048 {
        256
    } else {
        384
    };
    if ciphertext.len() != modulus_len {
        return Err(Fault::Rejected);
    }
    let mechanism =
        Mechanism::RsaPkcsOaep(PkcsOaepParams::new(hash_alg, mgf, PkcsOaepSource::empty()));
    session
        .decrypt(&mechanism, key.private, ciphertext)
        .map(Zeroizing::new)
        .map_err(|error| match error {
            // C_DecryptInit checks the mechanism and its parameters: SoftHSM 2.6.1 decrypts
            // with SHA-1 only and answers SHA-256 with CKR_ARGUMENTS_BAD.
            Error::Pkcs11(
                RvError::MechanismInvalid | RvError::MechanismParamInvalid | RvError::ArgumentsBad,
                Function::DecryptInit,
            ) => Fault::Lacks { what, error },
            // A ciphertext that does not decrypt. SoftHSM 2.6.1 says so with CKR_GENERAL_ERROR
            // from C_Decrypt (later versions with CKR_ENCRYPTED_DATA_INVALID), once
            // C_DecryptInit has accepted the key and mechanism.
            Error::Pkcs11(
                RvError::EncryptedDataInvalid
                | RvError::EncryptedDataLenRange
                | RvError::GeneralError,
                Function::Decrypt,
            ) => Fault::Rejected,
            error => Fault::Call {
                what: "decrypting",
                error,
            },
        })
}

/// The ECDH shared secret Z of the EC encryption key `key` and `peer`, a point on its curve.
pub(crate) fn agree(
    session: &Session,
    key: &KeyObject,
    peer: &PublicKey,
) -> Result<Zeroizing<Vec<u8>>, Fault> {
    key.require(
        KeyUse::Encrypt,
        &[KeySpec::EcP256, KeySpec::EcP384],
        "agree with ECDH",
    )?;
    // Checked here, whatever the token checks: a point off the curve must never reach it.
    let point = signet_core::ecdh_peer_point(peer, key.spec).ok_or(Fault::Rejected)?;
    let field_len = point.len() / 2;
    // CKD_NULL: the derived value is Z itself, as long as CKA_VALUE_LEN asks (its field size).
    let mechanism = Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(EcKdf::null(), &point));
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::ValueLen(if key.spec == KeySpec::EcP256 { 32 } else { 48 }.into()),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ];
    // A session object, which SoftHSM keeps in memory beside its file store: it needs no
    // `changing_objects` turn (36,000 agreements beside 240 key generations and removals on
    // SoftHSM 2.6.1 failed none).
    let derived = session
        .derive_key(&mechanism, key.private, &template)
        .map_err(Fault::call("deriving an ECDH secret"))?;
    // The secret leaves the token now: its object is destroyed whether or not it could be read.
    let read = session
        .get_attributes(derived, &[AttributeType::Value])
        .map_err(Fault::call("reading an ECDH secret"));
    let destroyed = session
        .destroy_object(derived)
        .map_err(Fault::call("destroying an ECDH secret"));
    let z = read?.into_iter().find_map(|attribute| match attribute {
        Attribute::Value(value) => Some(Zeroizing::new(value)),
        _ => None,
    });
    destroyed?;
    z.filter(|z| z.len() == field_len).ok_or_else(|| {
        Fault::Unrecognised("the token derived an ECDH secret of another length".into())
    })
}
