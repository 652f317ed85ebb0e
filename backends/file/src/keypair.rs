//! Key pairs in memory: generation, loading from PKCS#8, signing in JWS form, RSA-OAEP
//! decryption and ECDH for encryption keys, public halves.

use aws_lc_rs::agreement::{self, ECDH_P256, ECDH_P384};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::error::Unspecified;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    KeyPair as RsaKeyPair, KeySize, OaepPrivateDecryptingKey, PrivateDecryptingKey,
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256,
};
use aws_lc_rs::signature::{
    EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    ECDSA_P384_SHA384_FIXED_SIGNING, RSA_PKCS1_SHA256, RSA_PSS_SHA256,
};
use signet_core::{Algorithm, KeySpec, KeyUse, OaepHash, PublicKey};
use zeroize::Zeroizing;

use crate::fault::Fault;

/// A private key ready to use: a signing key, or an encryption key that only decrypts (RSA) or
/// agrees (EC).
pub(crate) enum LoadedKey {
    Ec(KeySpec, EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
    EcAgreement(KeySpec, agreement::PrivateKey),
    /// The decrypting key, and the public half read from the same PKCS#8.
    RsaDecryption(OaepPrivateDecryptingKey, PublicKey),
}

fn ecdh_algorithm(spec: KeySpec) -> &'static agreement::Algorithm {
    match spec {
        KeySpec::EcP384 => &ECDH_P384,
        _ => &ECDH_P256,
    }
}

fn rsa_size(spec: KeySpec) -> KeySize {
    if spec == KeySpec::Rsa2048 {
        KeySize::Rsa2048
    } else {
        KeySize::Rsa3072
    }
}

fn ec_algorithm(spec: KeySpec) -> &'static EcdsaSigningAlgorithm {
    match spec {
        KeySpec::EcP384 => &ECDSA_P384_SHA384_FIXED_SIGNING,
        _ => &ECDSA_P256_SHA256_FIXED_SIGNING,
    }
}

impl LoadedKey {
    /// Generates a key pair for `usage` and returns it with its PKCS#8 encoding (in a
    /// zeroizing buffer).
    pub(crate) fn generate(
        spec: KeySpec,
        usage: KeyUse,
    ) -> Result<(LoadedKey, Zeroizing<Vec<u8>>), Fault> {
        if !usage.accepts(spec) {
            return Err(Fault::WrongUse {
                spec,
                usage: usage.as_str(),
            });
        }
        let pkcs8 = match (spec, usage) {
            (KeySpec::EcP256 | KeySpec::EcP384, KeyUse::Sign) => {
                EcdsaKeyPair::generate(ec_algorithm(spec))
                    .and_then(|k| k.to_pkcs8v1())
                    .map(|doc| Zeroizing::new(doc.as_ref().to_vec()))
            }
            (KeySpec::EcP256 | KeySpec::EcP384, KeyUse::Encrypt) => {
                agreement::PrivateKey::generate(ecdh_algorithm(spec))
                    .and_then(|k| AsDer::<Pkcs8V1Der>::as_der(&k))
                    .map(|der| Zeroizing::new(der.as_ref().to_vec()))
            }
            (KeySpec::Rsa2048 | KeySpec::Rsa3072, _) => RsaKeyPair::generate(rsa_size(spec))
                .and_then(|k| AsDer::<Pkcs8V1Der>::as_der(&k))
                .map(|der| Zeroizing::new(der.as_ref().to_vec())),
            (KeySpec::Ed25519, _) => Ed25519KeyPair::generate()
                .and_then(|k| k.to_pkcs8v1())
                .map(|doc| Zeroizing::new(doc.as_ref().to_vec())),
        }
        .map_err(|_| Fault::Crypto("key generation"))?;
        let key = LoadedKey::from_pkcs8(spec, usage, &pkcs8)?;
        Ok((key, pkcs8))
    }

    pub(crate) fn from_pkcs8(
        spec: KeySpec,
        usage: KeyUse,
        pkcs8: &[u8],
    ) -> Result<LoadedKey, Fault> {
        let rejected = |_| Fault::Crypto("parsing a stored private key");
        Ok(match (spec, usage) {
            (KeySpec::EcP256 | KeySpec::EcP384, KeyUse::Sign) => LoadedKey::Ec(
                spec,
                EcdsaKeyPair::from_pkcs8(ec_algorithm(spec), pkcs8).map_err(rejected)?,
            ),
            (KeySpec::EcP256 | KeySpec::EcP384, KeyUse::Encrypt) => LoadedKey::EcAgreement(
                spec,
                agreement::PrivateKey::from_private_key_der(ecdh_algorithm(spec), pkcs8)
                    .map_err(rejected)?,
            ),
            (KeySpec::Rsa2048 | KeySpec::Rsa3072, KeyUse::Sign) => {
                LoadedKey::Rsa(RsaKeyPair::from_pkcs8(pkcs8).map_err(rejected)?)
            }
            (KeySpec::Rsa2048 | KeySpec::Rsa3072, KeyUse::Encrypt) => {
                let public = rsa_public(&RsaKeyPair::from_pkcs8(pkcs8).map_err(rejected)?);
                let key = PrivateDecryptingKey::from_pkcs8(pkcs8).map_err(rejected)?;
                let key = OaepPrivateDecryptingKey::new(key)
                    .map_err(|_| Fault::Crypto("parsing a stored private key"))?;
                LoadedKey::RsaDecryption(key, public)
            }
            (KeySpec::Ed25519, _) => {
                LoadedKey::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(rejected)?)
            }
        })
    }

    fn spec(&self) -> KeySpec {
        match self {
            LoadedKey::Ec(spec, _) | LoadedKey::EcAgreement(spec, _) => *spec,
            LoadedKey::Rsa(k) if k.public_modulus_len() == 256 => KeySpec::Rsa2048,
            LoadedKey::RsaDecryption(k, _) if k.key_size_bytes() == 256 => KeySpec::Rsa2048,
            LoadedKey::Rsa(_) | LoadedKey::RsaDecryption(..) => KeySpec::Rsa3072,
            LoadedKey::Ed25519(_) => KeySpec::Ed25519,
        }
    }

    fn usage(&self) -> KeyUse {
        match self {
            LoadedKey::EcAgreement(..) | LoadedKey::RsaDecryption(..) => KeyUse::Encrypt,
            _ => KeyUse::Sign,
        }
    }

    /// Whether its private-key operations take milliseconds (RSA), to be kept off the executor.
    pub(crate) fn is_slow(&self) -> bool {
        matches!(self, LoadedKey::Rsa(_) | LoadedKey::RsaDecryption(..))
    }

    pub(crate) fn sign(&self, alg: Algorithm, message: &[u8]) -> Result<Vec<u8>, Fault> {
        if self.usage() != KeyUse::Sign || !alg.accepts(self.spec()) {
            return Err(Fault::WrongAlgorithm {
                spec: self.spec(),
                alg,
            });
        }
        match self {
            // The FIXED algorithms already produce JWS-form r || s.
            LoadedKey::Ec(_, k) => k
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| Fault::Crypto("signing")),
            LoadedKey::Rsa(k) => {
                let padding = if alg == Algorithm::PS256 {
                    &RSA_PSS_SHA256
                } else {
                    &RSA_PKCS1_SHA256
                };
                let mut signature = vec![0; k.public_modulus_len()];
                k.sign(padding, &SystemRandom::new(), message, &mut signature)
                    .map_err(|_| Fault::Crypto("signing"))?;
                Ok(signature)
            }
            LoadedKey::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
            LoadedKey::EcAgreement(..) | LoadedKey::RsaDecryption(..) => {
                unreachable!("checked to be a signing key above")
            }
        }
    }

    /// RSAES-OAEP decryption with `hash`, no label.
    pub(crate) fn decrypt(
        &self,
        hash: OaepHash,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Fault> {
        let LoadedKey::RsaDecryption(key, _) = self else {
            return Err(Fault::WrongUse {
                spec: self.spec(),
                usage: "RSA-OAEP decryption",
            });
        };
        let padding = match hash {
            OaepHash::Sha1 => &OAEP_SHA1_MGF1SHA1,
            OaepHash::Sha256 => &OAEP_SHA256_MGF1SHA256,
        };
        let mut plaintext = Zeroizing::new(vec![0; key.min_output_size()]);
        let len = key
            .decrypt(padding, ciphertext, &mut plaintext, None)
            .map_err(|_| Fault::Rejected)?
            .len();
        plaintext.truncate(len);
        Ok(plaintext)
    }

    /// ECDH with `peer`, an uncompressed point on the key's curve: the shared secret Z.
    pub(crate) fn agree(&self, peer: &PublicKey) -> Result<Zeroizing<Vec<u8>>, Fault> {
        let LoadedKey::EcAgreement(spec, key) = self else {
            return Err(Fault::WrongUse {
                spec: self.spec(),
                usage: "ECDH",
            });
        };
        let point = signet_core::ecdh_peer_point(peer, *spec).ok_or(Fault::Rejected)?;
        agreement::agree(
            key,
            agreement::UnparsedPublicKey::new(ecdh_algorithm(*spec), point),
            Unspecified,
            |z| Ok(Zeroizing::new(z.to_vec())),
        )
        .map_err(|_| Fault::Rejected)
    }

    pub(crate) fn public_key(&self) -> PublicKey {
        match self {
            LoadedKey::Ec(spec, k) => {
                // Uncompressed SEC1 point: 0x04 || X || Y.
                let point = k.public_key().as_ref();
                let coordinate_len = (point.len() - 1) / 2;
                PublicKey::Ec {
                    spec: *spec,
                    x: point[1..=coordinate_len].to_vec(),
                    y: point[1 + coordinate_len..].to_vec(),
                }
            }
            LoadedKey::EcAgreement(spec, k) => {
                let point = k
                    .compute_public_key()
                    .expect("an EC private key has a public point");
                let point = point.as_ref();
                let coordinate_len = (point.len() - 1) / 2;
                PublicKey::Ec {
                    spec: *spec,
                    x: point[1..=coordinate_len].to_vec(),
                    y: point[1 + coordinate_len..].to_vec(),
                }
            }
            LoadedKey::Rsa(k) => rsa_public(k),
            LoadedKey::RsaDecryption(_, public) => public.clone(),
            LoadedKey::Ed25519(k) => PublicKey::Ed25519 {
                x: k.public_key().as_ref().to_vec(),
            },
        }
    }
}

fn rsa_public(key: &RsaKeyPair) -> PublicKey {
    PublicKey::Rsa {
        n: key
            .public_key()
            .modulus()
            .big_endian_without_leading_zero()
            .to_vec(),
        e: key
            .public_key()
            .exponent()
            .big_endian_without_leading_zero()
            .to_vec(),
    }
}
