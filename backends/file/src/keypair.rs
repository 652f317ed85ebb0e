//! Key pairs in memory: generation, loading from PKCS#8, signing in JWS form, public halves.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    ECDSA_P384_SHA384_FIXED_SIGNING, RSA_PKCS1_SHA256, RSA_PSS_SHA256,
};
use signet_core::{Algorithm, KeySpec, PublicKey};
use zeroize::Zeroizing;

use crate::fault::Fault;

/// A private key ready to sign.
pub(crate) enum LoadedKey {
    Ec(KeySpec, EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

fn ec_algorithm(spec: KeySpec) -> &'static EcdsaSigningAlgorithm {
    match spec {
        KeySpec::EcP384 => &ECDSA_P384_SHA384_FIXED_SIGNING,
        _ => &ECDSA_P256_SHA256_FIXED_SIGNING,
    }
}

impl LoadedKey {
    /// Generates a key pair and returns it with its PKCS#8 encoding (in a zeroizing buffer).
    pub(crate) fn generate(spec: KeySpec) -> Result<(LoadedKey, Zeroizing<Vec<u8>>), Fault> {
        let pkcs8 = match spec {
            KeySpec::EcP256 | KeySpec::EcP384 => EcdsaKeyPair::generate(ec_algorithm(spec))
                .and_then(|k| k.to_pkcs8v1())
                .map(|doc| Zeroizing::new(doc.as_ref().to_vec())),
            KeySpec::Rsa2048 | KeySpec::Rsa3072 => {
                let size = if spec == KeySpec::Rsa2048 {
                    KeySize::Rsa2048
                } else {
                    KeySize::Rsa3072
                };
                RsaKeyPair::generate(size)
                    .and_then(|k| AsDer::<Pkcs8V1Der>::as_der(&k))
                    .map(|der| Zeroizing::new(der.as_ref().to_vec()))
            }
            KeySpec::Ed25519 => Ed25519KeyPair::generate()
                .and_then(|k| k.to_pkcs8v1())
                .map(|doc| Zeroizing::new(doc.as_ref().to_vec())),
        }
        .map_err(|_| Fault::Crypto("key generation"))?;
        let key = LoadedKey::from_pkcs8(spec, &pkcs8)?;
        Ok((key, pkcs8))
    }

    pub(crate) fn from_pkcs8(spec: KeySpec, pkcs8: &[u8]) -> Result<LoadedKey, Fault> {
        let rejected = |_| Fault::Crypto("parsing a stored private key");
        Ok(match spec {
            KeySpec::EcP256 | KeySpec::EcP384 => LoadedKey::Ec(
                spec,
                EcdsaKeyPair::from_pkcs8(ec_algorithm(spec), pkcs8).map_err(rejected)?,
            ),
            KeySpec::Rsa2048 | KeySpec::Rsa3072 => {
                LoadedKey::Rsa(RsaKeyPair::from_pkcs8(pkcs8).map_err(rejected)?)
            }
            KeySpec::Ed25519 => {
                LoadedKey::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(rejected)?)
            }
        })
    }

    fn spec(&self) -> KeySpec {
        match self {
            LoadedKey::Ec(spec, _) => *spec,
            LoadedKey::Rsa(k) if k.public_modulus_len() == 256 => KeySpec::Rsa2048,
            LoadedKey::Rsa(_) => KeySpec::Rsa3072,
            LoadedKey::Ed25519(_) => KeySpec::Ed25519,
        }
    }

    pub(crate) fn is_slow_to_sign(&self) -> bool {
        matches!(self, LoadedKey::Rsa(_))
    }

    pub(crate) fn sign(&self, alg: Algorithm, message: &[u8]) -> Result<Vec<u8>, Fault> {
        if !alg.accepts(self.spec()) {
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
        }
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
            LoadedKey::Rsa(k) => PublicKey::Rsa {
                n: k.public_key()
                    .modulus()
                    .big_endian_without_leading_zero()
                    .to_vec(),
                e: k.public_key()
                    .exponent()
                    .big_endian_without_leading_zero()
                    .to_vec(),
            },
            LoadedKey::Ed25519(k) => PublicKey::Ed25519 {
                x: k.public_key().as_ref().to_vec(),
            },
        }
    }
}
