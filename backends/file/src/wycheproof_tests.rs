//! Wycheproof's test vectors for RSA-OAEP and ECDH, run through the [`KeyProvider`] trait on a
//! real store. The vectors are Wycheproof's JSON (Apache-2.0), as the `wycheproof` crate embeds
//! and parses it. Each vector's private key is sealed into the store's `keys/` as an encryption
//! key, the way the backend keeps its own, and the trait's `decrypt` or `agree` on its `file:`
//! reference must give what the vector says:
//! - valid: the message (`msg`) or shared secret (`shared`);
//! - invalid: [`ProviderError::Rejected`];
//! - acceptable (a weak or unusual input that a careful implementation may refuse): either of
//!   those two, never another error and never other bytes. None of the RSA files here has one.
//!
//! What cannot be said through the trait is counted, not run:
//! - skipped: an OAEP vector with a non-empty label (the trait decrypts with the empty label);
//! - refused: an ECDH peer key that is not the uncompressed point of a named P-256 or P-384 key
//!   (a compressed point, an explicitly encoded or unknown curve, malformed encoding), so it has
//!   no affine `x`, `y` to become a [`PublicKey::Ec`]. No valid vector may be refused.
//!
//! Wycheproof has no 3072-bit RSA-OAEP file with SHA-1 for both OAEP and MGF1 (only SHA-256 with
//! MGF1-SHA1, which the trait's [`OaepHash`] cannot name), so 3072-bit keys run with SHA-256 only.
//!
//! Every test pins its counts, so none can pass by running nothing; a failure names each tcId.

use std::collections::HashMap;

use aws_lc_rs::agreement::{self, ECDH_P256, ECDH_P384};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use secrecy::SecretBox;
use signet_core::{KeyProvider, KeyRef, KeySpec, KeyUse, OaepHash, ProviderError, PublicKey};
use wycheproof::{ecdh, rsa_oaep, EllipticCurve, HashFunction, Mgf, TestResult};

use crate::{FileConfig, FileProvider, KekSource};

/// How a file's vectors went: those run through the trait by expected result, and those that
/// could not be put to it.
#[derive(Debug, Default)]
struct Tally {
    valid: usize,
    invalid: usize,
    acceptable: usize,
    /// OAEP vectors with a label.
    skipped: usize,
    /// ECDH peer keys with no affine coordinates on a P-256 or P-384 curve.
    refused: usize,
}

/// A fresh store in `dir`, under a fixed test KEK.
fn store(dir: &std::path::Path) -> FileProvider {
    FileProvider::open(FileConfig {
        dir: dir.to_owned(),
        kek: Some(KekSource::Key(SecretBox::new(Box::new([7; 32])))),
    })
    .unwrap()
}

/// Seals `pkcs8` into the provider's store as encryption key `id`: the tests' own setup, since
/// the trait only generates keys.
fn seal(provider: &FileProvider, id: &str, spec: KeySpec, pkcs8: &[u8]) -> KeyRef {
    provider
        .store
        .write(id, spec, KeyUse::Encrypt, pkcs8)
        .unwrap();
    KeyRef(format!("file:{id}"))
}

/// Checks one answer of the trait against the vector's expected result, counting it, or notes
/// the tcId among the failures.
fn check(
    tally: &mut Tally,
    failures: &mut Vec<String>,
    (tc_id, comment): (usize, &str),
    expected: TestResult,
    got: Result<impl AsRef<[u8]>, ProviderError>,
    want: &[u8],
) {
    let ok = match (&got, expected) {
        (Ok(out), TestResult::Valid | TestResult::Acceptable) => out.as_ref() == want,
        (Err(ProviderError::Rejected), TestResult::Invalid | TestResult::Acceptable) => true,
        _ => false,
    };
    if !ok {
        let got = match got {
            Ok(out) if out.as_ref() == want => "the expected bytes".to_owned(),
            Ok(out) => format!("{} other bytes", out.as_ref().len()),
            Err(e) => format!("{e:?}"),
        };
        failures.push(format!(
            "tcId {tc_id} ({comment}): expected {expected:?}, got {got}"
        ));
    }
    match expected {
        TestResult::Valid => tally.valid += 1,
        TestResult::Invalid => tally.invalid += 1,
        TestResult::Acceptable => tally.acceptable += 1,
    }
}

fn finish(name: &str, tally: Tally, failures: &[String]) -> Tally {
    println!("{name}: {tally:?}");
    assert!(
        failures.is_empty(),
        "{name}: {} vector(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    tally
}

/// Runs an RSA-OAEP file through [`KeyProvider::decrypt`] with `hash` (for both OAEP and MGF1).
async fn oaep(name: rsa_oaep::TestName, hash: OaepHash) -> Tally {
    let set = rsa_oaep::TestSet::load(name).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let provider = store(dir.path());
    let (mut tally, mut failures) = (Tally::default(), Vec::new());
    let want_hash = match hash {
        OaepHash::Sha1 => HashFunction::Sha1,
        OaepHash::Sha256 => HashFunction::Sha2_256,
    };
    for (n, group) in set.test_groups.iter().enumerate() {
        assert_eq!(
            (group.hash, group.mgf, group.mgf_hash),
            (want_hash, Mgf::Mgf1, want_hash),
            "{name:?}"
        );
        let spec = match group.key_size {
            2048 => KeySpec::Rsa2048,
            3072 => KeySpec::Rsa3072,
            other => panic!("{name:?}: a {other}-bit key"),
        };
        let key = seal(&provider, &format!("rsa{n}"), spec, &group.pkcs8);
        for test in &group.tests {
            if !test.label.is_empty() {
                tally.skipped += 1;
                continue;
            }
            let got = provider.decrypt(&key, hash, &test.ct).await;
            let id = (test.tc_id, test.comment.as_str());
            check(&mut tally, &mut failures, id, test.result, got, &test.pt);
        }
    }
    finish(&format!("{name:?}"), tally, &failures)
}

fn coordinate_len(spec: KeySpec) -> usize {
    if spec == KeySpec::EcP384 {
        48
    } else {
        32
    }
}

/// The peer as the trait takes it, from an uncompressed SEC1 point on `spec`'s curve; `None`
/// for any other encoding.
fn peer_from_point(spec: KeySpec, point: &[u8]) -> Option<PublicKey> {
    let n = coordinate_len(spec);
    match point {
        [0x04, xy @ ..] if xy.len() == 2 * n => Some(PublicKey::Ec {
            spec,
            x: xy[..n].to_vec(),
            y: xy[n..].to_vec(),
        }),
        _ => None,
    }
}

/// The DER of a SubjectPublicKeyInfo up to its point, for an id-ecPublicKey on a named curve.
const SPKI_P256: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const SPKI_P384: &[u8] = &[
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
    0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
];

/// The peer from a SubjectPublicKeyInfo: only the exact DER of an uncompressed P-256 or P-384
/// point under its named curve, whatever the curve of the key it meets (the trait must refuse
/// the other one). Explicit curve parameters, other curves and loose DER give `None`.
fn peer_from_spki(spki: &[u8]) -> Option<PublicKey> {
    [(KeySpec::EcP256, SPKI_P256), (KeySpec::EcP384, SPKI_P384)]
        .into_iter()
        .find_map(|(spec, header)| peer_from_point(spec, spki.strip_prefix(header)?))
}

/// The PKCS#8 of an ECDH private key from a vector's big-endian scalar, which may carry a
/// leading zero byte or be shorter than the field.
fn ecdh_pkcs8(spec: KeySpec, scalar: &[u8]) -> Vec<u8> {
    let n = coordinate_len(spec);
    let scalar = &scalar[scalar.iter().take_while(|b| **b == 0).count()..];
    assert!(scalar.len() <= n, "a scalar longer than the field");
    let mut padded = vec![0; n];
    padded[n - scalar.len()..].copy_from_slice(scalar);
    let algorithm = if spec == KeySpec::EcP384 {
        &ECDH_P384
    } else {
        &ECDH_P256
    };
    let key = agreement::PrivateKey::from_private_key(algorithm, &padded).unwrap();
    AsDer::<Pkcs8V1Der>::as_der(&key).unwrap().as_ref().to_vec()
}

/// Runs an ECDH file through [`KeyProvider::agree`], one stored key per distinct private scalar.
async fn ecdh(name: ecdh::TestName) -> Tally {
    let set = ecdh::TestSet::load(name).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let provider = store(dir.path());
    let (mut tally, mut failures) = (Tally::default(), Vec::new());
    let mut keys: HashMap<Vec<u8>, KeyRef> = HashMap::new();
    for group in &set.test_groups {
        let spec = match group.curve {
            EllipticCurve::Secp256r1 => KeySpec::EcP256,
            EllipticCurve::Secp384r1 => KeySpec::EcP384,
            other => panic!("{name:?}: curve {other:?}"),
        };
        for test in &group.tests {
            let peer = match group.encoding {
                ecdh::EcdhEncoding::EcPoint => peer_from_point(spec, &test.public_key),
                ecdh::EcdhEncoding::Asn1 => peer_from_spki(&test.public_key),
            };
            let Some(peer) = peer else {
                if test.result == TestResult::Valid {
                    failures.push(format!(
                        "tcId {} ({}): a valid peer key with no affine coordinates",
                        test.tc_id, test.comment
                    ));
                }
                tally.refused += 1;
                continue;
            };
            assert!(
                !test.flags.contains(&ecdh::TestFlag::CompressedPoint),
                "tcId {}: a compressed point converted",
                test.tc_id
            );
            let next = keys.len();
            let key = keys
                .entry(test.private_key.to_vec())
                .or_insert_with(|| {
                    let pkcs8 = ecdh_pkcs8(spec, &test.private_key);
                    seal(&provider, &format!("ec{next}"), spec, &pkcs8)
                })
                .clone();
            let got = provider.agree(&key, &peer).await;
            let id = (test.tc_id, test.comment.as_str());
            check(
                &mut tally,
                &mut failures,
                id,
                test.result,
                got,
                &test.shared_secret,
            );
        }
    }
    finish(&format!("{name:?}"), tally, &failures)
}

// The counts are those of the vectors in wycheproof 0.7: a new release that changes them is to
// be read before they are updated.

#[tokio::test]
async fn wycheproof_rsa_oaep_2048_sha1() {
    let tally = oaep(rsa_oaep::TestName::Rsa2048Sha1Mgf1Sha1, OaepHash::Sha1).await;
    let want = (10, 19, 0, 7);
    assert_eq!(
        (tally.valid, tally.invalid, tally.acceptable, tally.skipped),
        want
    );
}

#[tokio::test]
async fn wycheproof_rsa_oaep_2048_sha256() {
    let tally = oaep(
        rsa_oaep::TestName::Rsa2048Sha256Mgf1Sha256,
        OaepHash::Sha256,
    )
    .await;
    let want = (10, 19, 0, 8);
    assert_eq!(
        (tally.valid, tally.invalid, tally.acceptable, tally.skipped),
        want
    );
}

#[tokio::test]
async fn wycheproof_rsa_oaep_3072_sha256() {
    let tally = oaep(
        rsa_oaep::TestName::Rsa3072Sha256Mgf1Sha256,
        OaepHash::Sha256,
    )
    .await;
    let want = (10, 19, 0, 8);
    assert_eq!(
        (tally.valid, tally.invalid, tally.acceptable, tally.skipped),
        want
    );
}

/// Uncompressed points go through; compressed ones and the empty encoding are refused.
#[tokio::test]
async fn wycheproof_ecdh_p256_points() {
    let tally = ecdh(ecdh::TestName::EcdhSecp256r1Ecpoint).await;
    let want = (330, 16, 0, 9);
    assert_eq!(
        (tally.valid, tally.invalid, tally.acceptable, tally.refused),
        want
    );
}

#[tokio::test]
async fn wycheproof_ecdh_p384_points() {
    let tally = ecdh(ecdh::TestName::EcdhSecp384r1Ecpoint).await;
    let want = (771, 16, 0, 3);
    assert_eq!(
        (tally.valid, tally.invalid, tally.acceptable, tally.refused),
        want
    );
}

/// The same points in SubjectPublicKeyInfo, and more: a P-384 peer for the P-256 key goes to the
/// trait as such and must be rejected there; explicit curves and loose DER are refused.
#[tokio::test]
async fn wycheproof_ecdh_p256_spki() {
    let tally = ecdh(ecdh::TestName::EcdhSecp256r1).await;
    let want = (330, 19, 1, 262);
    assert_eq!(
        (tally.valid, tally.invalid, tally.acceptable, tally.refused),
        want
    );
}

#[tokio::test]
async fn wycheproof_ecdh_p384_spki() {
    let tally = ecdh(ecdh::TestName::EcdhSecp384r1).await;
    let want = (771, 20, 1, 255);
    assert_eq!(
        (tally.valid, tally.invalid, tally.acceptable, tally.refused),
        want
    );
}
