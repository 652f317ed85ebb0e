//! The suite's checks of encryption keys: ECDH against software ECDH with an ephemeral key,
//! RSA-OAEP decryption of what software encrypted to the key's public half, and the refusals of
//! bad input, of hashes a backend lacks and of uses a key does not serve.

use aws_lc_rs::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, ECDH_P256, ECDH_P384};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    OaepPublicEncryptingKey, PublicEncryptingKey, PublicKeyComponents, OAEP_SHA1_MGF1SHA1,
    OAEP_SHA256_MGF1SHA256,
};

use super::{ok, refused, At, Refusal};
use crate::{GeneratedKey, KeyProvider, KeySpec, OaepHash, PublicKey};

/// A kind of encryption key a backend makes, and the operation the suite holds it to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncryptionClaim {
    /// An EC key (P-256 or P-384) that agrees on ECDH shared secrets.
    Ecdh(KeySpec),
    /// An RSA key that decrypts RSAES-OAEP with the hash.
    RsaOaep(KeySpec, OaepHash),
}

/// Every encryption claim signet has: what a backend that makes every kind of encryption key
/// and decrypts with both OAEP hashes claims.
pub const EVERY_ENCRYPTION_CLAIM: [EncryptionClaim; 6] = [
    EncryptionClaim::Ecdh(KeySpec::EcP256),
    EncryptionClaim::Ecdh(KeySpec::EcP384),
    EncryptionClaim::RsaOaep(KeySpec::Rsa2048, OaepHash::Sha1),
    EncryptionClaim::RsaOaep(KeySpec::Rsa2048, OaepHash::Sha256),
    EncryptionClaim::RsaOaep(KeySpec::Rsa3072, OaepHash::Sha1),
    EncryptionClaim::RsaOaep(KeySpec::Rsa3072, OaepHash::Sha256),
];

impl EncryptionClaim {
    /// The spec of the key the claim is about.
    pub fn spec(self) -> KeySpec {
        match self {
            EncryptionClaim::Ecdh(spec) | EncryptionClaim::RsaOaep(spec, _) => spec,
        }
    }

    /// Whether signet has it: ECDH with a P-256 or P-384 key, RSA-OAEP with an RSA key.
    pub fn is_sound(self) -> bool {
        match self {
            EncryptionClaim::Ecdh(spec) => matches!(spec, KeySpec::EcP256 | KeySpec::EcP384),
            EncryptionClaim::RsaOaep(spec, _) => {
                matches!(spec, KeySpec::Rsa2048 | KeySpec::Rsa3072)
            }
        }
    }

    /// The operation, named as a JWE names the algorithm built on it (RFC 7518 §4.3, §4.6).
    pub(super) fn operation(self) -> &'static str {
        match self {
            EncryptionClaim::Ecdh(_) => "ECDH",
            EncryptionClaim::RsaOaep(_, OaepHash::Sha1) => "RSA-OAEP",
            EncryptionClaim::RsaOaep(_, OaepHash::Sha256) => "RSA-OAEP-256",
        }
    }
}

/// What an encryption key must do while it exists: its operation, its refusals of bad input and
/// of the other kind's operation. `probe` is a hash the backend has, to ask an EC key to decrypt
/// with, so that only the key's kind can be why it refuses.
pub(super) async fn check_operations(
    provider: &dyn KeyProvider,
    at: At,
    claim: EncryptionClaim,
    key: &GeneratedKey,
    unsupported_oaep: &[OaepHash],
    probe: OaepHash,
) {
    match claim {
        EncryptionClaim::Ecdh(spec) => {
            check_agreement(provider, at, spec, key).await;
            refused(
                provider.decrypt(&key.reference, probe, &[0x5a; 256]).await,
                Refusal::Unsupported,
                at,
                "decrypt (an ECDH key does not)",
            );
        }
        EncryptionClaim::RsaOaep(_, hash) => {
            check_decryption(provider, at, hash, key, unsupported_oaep).await;
            let (_, peer) = ephemeral(KeySpec::EcP256);
            refused(
                provider.agree(&key.reference, &peer).await,
                Refusal::Unsupported,
                at,
                "agree (an RSA-OAEP key does not)",
            );
        }
    }
}

/// `agree` gives software ECDH's Z, and refuses points of the other curve or off the curve.
async fn check_agreement(provider: &dyn KeyProvider, at: At, spec: KeySpec, key: &GeneratedKey) {
    let (private, peer) = ephemeral(spec);
    let expected = software_z(private, spec, &key.public_key, at);
    let z = ok(
        provider.agree(&key.reference, &peer).await,
        at,
        "agree with a software ephemeral key",
    );
    let field_len = if spec == KeySpec::EcP256 { 32 } else { 48 };
    assert_eq!(
        z.len(),
        field_len,
        "{at}: agree returned a Z that is not the curve's field size long"
    );
    // Not assert_eq!: the secrets are not printed.
    assert!(
        z.as_slice() == expected.as_slice(),
        "{at}: agree returned another Z than software ECDH with the key's public half"
    );

    let other = if spec == KeySpec::EcP256 {
        KeySpec::EcP384
    } else {
        KeySpec::EcP256
    };
    let (_, foreign) = ephemeral(other);
    refused(
        provider.agree(&key.reference, &foreign).await,
        Refusal::Rejected,
        at,
        &format!("agree with a point of {}", other.as_str()),
    );
    let PublicKey::Ec { x, y, .. } = &peer else {
        unreachable!("ephemeral makes EC keys")
    };
    let off_curve = PublicKey::Ec {
        spec,
        x: x.clone(),
        y: plus_one(y),
    };
    refused(
        provider.agree(&key.reference, &off_curve).await,
        Refusal::Rejected,
        at,
        "agree with a point off the curve (a valid x with y + 1)",
    );
}

/// `decrypt` returns what software encrypted to the key with `hash`, and refuses a damaged
/// ciphertext and the hashes the backend lacks.
async fn check_decryption(
    provider: &dyn KeyProvider,
    at: At,
    hash: OaepHash,
    key: &GeneratedKey,
    unsupported_oaep: &[OaepHash],
) {
    let mut secret = [0u8; 32];
    aws_lc_rs::rand::fill(&mut secret).expect("the system's random generator works");
    let ciphertext = oaep_encrypt(&key.public_key, hash, &secret, at);
    let plaintext = ok(
        provider.decrypt(&key.reference, hash, &ciphertext).await,
        at,
        "decrypt what software encrypted to the public key",
    );
    // Not assert_eq!: the secrets are not printed.
    assert!(
        plaintext.as_slice() == secret,
        "{at}: decrypt returned other bytes than software encrypted"
    );

    // The last byte: flipping its low bit keeps the ciphertext below the modulus.
    let mut flipped = ciphertext.clone();
    *flipped.last_mut().expect("a ciphertext has bytes") ^= 1;
    refused(
        provider.decrypt(&key.reference, hash, &flipped).await,
        Refusal::Rejected,
        at,
        "decrypt a ciphertext with a byte flipped",
    );
    refused(
        provider
            .decrypt(&key.reference, hash, &ciphertext[1..])
            .await,
        Refusal::Rejected,
        at,
        "decrypt a ciphertext a byte short",
    );

    for &lacking in unsupported_oaep {
        let ciphertext = oaep_encrypt(&key.public_key, lacking, &secret, at);
        refused(
            provider.decrypt(&key.reference, lacking, &ciphertext).await,
            Refusal::Unsupported,
            at,
            &format!("decrypt with {lacking:?}, which the backend lacks,"),
        );
    }
}

/// A signing key neither decrypts (even a valid ciphertext to its public half, if it is RSA) nor
/// agrees (even with a point on its curve, if it is EC). `hash` is one the backend has.
pub(super) async fn check_signing_key_refuses(
    provider: &dyn KeyProvider,
    at: At,
    key: &GeneratedKey,
    hash: OaepHash,
) {
    let ciphertext = match key.public_key {
        PublicKey::Rsa { .. } => oaep_encrypt(&key.public_key, hash, &[7; 32], at),
        _ => vec![0x5a; 256],
    };
    refused(
        provider.decrypt(&key.reference, hash, &ciphertext).await,
        Refusal::Unsupported,
        at,
        "decrypt (a signing key does not)",
    );
    let curve = match key.public_key {
        PublicKey::Ec { spec, .. } => spec,
        _ => KeySpec::EcP256,
    };
    let (_, peer) = ephemeral(curve);
    refused(
        provider.agree(&key.reference, &peer).await,
        Refusal::Unsupported,
        at,
        "agree (a signing key does not)",
    );
}

/// After `destroy`, the key's operation fails with `NotFound`.
pub(super) async fn check_gone(
    provider: &dyn KeyProvider,
    at: At,
    claim: EncryptionClaim,
    key: &GeneratedKey,
) {
    match claim {
        EncryptionClaim::Ecdh(spec) => {
            let (_, peer) = ephemeral(spec);
            refused(
                provider.agree(&key.reference, &peer).await,
                Refusal::NotFound,
                at,
                "agree after destroy",
            );
        }
        EncryptionClaim::RsaOaep(_, hash) => {
            let ciphertext = oaep_encrypt(&key.public_key, hash, &[7; 32], at);
            refused(
                provider.decrypt(&key.reference, hash, &ciphertext).await,
                Refusal::NotFound,
                at,
                "decrypt after destroy",
            );
        }
    }
}

fn ecdh_algorithm(spec: KeySpec) -> &'static agreement::Algorithm {
    if spec == KeySpec::EcP384 {
        &ECDH_P384
    } else {
        &ECDH_P256
    }
}

/// A fresh software key pair on the curve of `spec`: the private half, and the public half as a
/// JWE's `epk` carries it.
fn ephemeral(spec: KeySpec) -> (EphemeralPrivateKey, PublicKey) {
    let private = EphemeralPrivateKey::generate(ecdh_algorithm(spec), &SystemRandom::new())
        .expect("aws-lc-rs generates an ephemeral key");
    let public = private
        .compute_public_key()
        .expect("an EC private key has a public point");
    // An uncompressed point: 0x04 || X || Y.
    let coordinates = &public.as_ref()[1..];
    let (x, y) = coordinates.split_at(coordinates.len() / 2);
    (
        private,
        PublicKey::Ec {
            spec,
            x: x.to_vec(),
            y: y.to_vec(),
        },
    )
}

/// Z of software ECDH between `private` and `public`, a key on the curve of `spec`.
fn software_z(private: EphemeralPrivateKey, spec: KeySpec, public: &PublicKey, at: At) -> Vec<u8> {
    let PublicKey::Ec { x, y, .. } = public else {
        panic!("{at}: the key's public half is not an EC point")
    };
    let point = [&[0x04][..], x, y].concat();
    agreement::agree_ephemeral(
        private,
        UnparsedPublicKey::new(ecdh_algorithm(spec), point),
        (),
        |z| Ok(z.to_vec()),
    )
    .unwrap_or_else(|()| panic!("{at}: software ECDH refuses the key's public half"))
}

/// `y + 1` as a big-endian number of the same length (wrapping, which no coordinate does).
fn plus_one(y: &[u8]) -> Vec<u8> {
    let mut out = y.to_vec();
    for byte in out.iter_mut().rev() {
        let (sum, carry) = byte.overflowing_add(1);
        *byte = sum;
        if !carry {
            break;
        }
    }
    out
}

/// RSAES-OAEP encryption of `plaintext` to `public` with `hash`, no label, in software.
fn oaep_encrypt(public: &PublicKey, hash: OaepHash, plaintext: &[u8], at: At) -> Vec<u8> {
    let PublicKey::Rsa { n, e } = public else {
        panic!("{at}: the key's public half is not an RSA key")
    };
    let components = PublicKeyComponents {
        n: n.as_slice(),
        e: e.as_slice(),
    };
    let key: PublicEncryptingKey = components
        .try_into()
        .unwrap_or_else(|_| panic!("{at}: aws-lc-rs refuses the key's public half"));
    let key = OaepPublicEncryptingKey::new(key)
        .unwrap_or_else(|_| panic!("{at}: aws-lc-rs refuses the key for OAEP"));
    let algorithm = match hash {
        OaepHash::Sha1 => &OAEP_SHA1_MGF1SHA1,
        OaepHash::Sha256 => &OAEP_SHA256_MGF1SHA256,
    };
    let mut ciphertext = vec![0; key.ciphertext_size()];
    let len = key
        .encrypt(algorithm, plaintext, &mut ciphertext, None)
        .unwrap_or_else(|_| panic!("{at}: software OAEP encryption to the key failed"))
        .len();
    ciphertext.truncate(len);
    ciphertext
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_one_carries() {
        assert_eq!(plus_one(&[0x00, 0xff, 0xff]), [0x01, 0x00, 0x00]);
        assert_eq!(plus_one(&[0x12, 0x34]), [0x12, 0x35]);
    }
}
