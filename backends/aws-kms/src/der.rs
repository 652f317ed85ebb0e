//! The two DER structures KMS hands back: ECDSA signatures (`SEQUENCE { r INTEGER, s INTEGER }`,
//! RFC 3279 §2.2.3), which JWS wants as fixed-length `r || s` (RFC 7518 §3.4), and public keys as
//! X.509 `SubjectPublicKeyInfo` (RFC 5280 §4.1.2.7), which a JWK wants as raw coordinates or
//! modulus and exponent. The reader is strict: definite minimal lengths, minimal positive
//! integers, no trailing bytes; anything else is refused rather than guessed at.
//!
//! And the one KMS takes: an ECDH peer's public key, as the `SubjectPublicKeyInfo` of an EC point
//! (RFC 5480 §2), for `DeriveSharedSecret`.

use signet_core::{KeySpec, PublicKey};

const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const SEQUENCE: u8 = 0x30;

/// `id-ecPublicKey` and the named curves' OIDs (RFC 5480 §2.1.1), as DER elements.
const EC_PUBLIC_KEY_OID: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// Splits one element with `tag` off the front of `input`: its contents and what follows.
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81 => {
            let (&len, rest) = rest.split_first()?;
            // Lengths below 128 must use the short form.
            (len >= 0x80).then_some((usize::from(len), rest))?
        }
        0x82 => {
            let (len, rest) = rest.split_first_chunk::<2>()?;
            let len = usize::from(u16::from_be_bytes(*len));
            (len >= 0x100).then_some((len, rest))?
        }
        _ => return None,
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// The contents of `input` if it is exactly one element with `tag`.
fn only(input: &[u8], tag: u8) -> Option<&[u8]> {
    match element(input, tag)? {
        (contents, []) => Some(contents),
        _ => None,
    }
}

/// A positive INTEGER's magnitude, big-endian and without its sign byte.
fn unsigned(contents: &[u8]) -> Option<&[u8]> {
    match contents {
        [] => None,
        [first, ..] if first & 0x80 != 0 => None,
        [0, next, ..] if next & 0x80 == 0 => None,
        [0, rest @ ..] if !rest.is_empty() => Some(rest),
        _ => Some(contents),
    }
}

/// Converts a DER ECDSA signature to `r || s`, each left-padded to `field_len` bytes.
pub(crate) fn ecdsa_to_fixed(der: &[u8], field_len: usize) -> Option<Vec<u8>> {
    let body = only(der, SEQUENCE)?;
    let (r, rest) = element(body, INTEGER)?;
    let s = only(rest, INTEGER)?;
    let mut fixed = vec![0; 2 * field_len];
    for (value, half) in [(r, 0), (s, 1)] {
        let magnitude = unsigned(value)?;
        if magnitude.len() > field_len || magnitude.iter().all(|b| *b == 0) {
            return None;
        }
        let end = (half + 1) * field_len;
        fixed[end - magnitude.len()..end].copy_from_slice(magnitude);
    }
    Some(fixed)
}

/// The key inside a `SubjectPublicKeyInfo`, as a [`PublicKey`] of `spec`. Only the shape is
/// checked here: the caller parses the same DER with aws-lc-rs, which checks the algorithm
/// identifier and that an EC point lies on its curve.
pub(crate) fn public_key(spki: &[u8], spec: KeySpec) -> Option<PublicKey> {
    let body = only(spki, SEQUENCE)?;
    let (_algorithm, rest) = element(body, SEQUENCE)?;
    let [0, key @ ..] = only(rest, BIT_STRING)? else {
        return None;
    };
    match spec {
        KeySpec::EcP256 | KeySpec::EcP384 => {
            let field_len = if spec == KeySpec::EcP256 { 32 } else { 48 };
            match key {
                [4, point @ ..] if point.len() == 2 * field_len => {
                    let (x, y) = point.split_at(field_len);
                    Some(PublicKey::Ec {
                        spec,
                        x: x.to_vec(),
                        y: y.to_vec(),
                    })
                }
                _ => None,
            }
        }
        KeySpec::Rsa2048 | KeySpec::Rsa3072 => {
            let (n, rest) = element(only(key, SEQUENCE)?, INTEGER)?;
            let e = only(rest, INTEGER)?;
            let (n, e) = (unsigned(n)?, unsigned(e)?);
            let bits = if spec == KeySpec::Rsa2048 { 2048 } else { 3072 };
            (n.len() * 8 == bits && n[0] & 0x80 != 0).then(|| PublicKey::Rsa {
                n: n.to_vec(),
                e: e.to_vec(),
            })
        }
        KeySpec::Ed25519 => (key.len() == 32).then(|| PublicKey::Ed25519 { x: key.to_vec() }),
    }
}

/// The `SubjectPublicKeyInfo` of `point` (`04 || X || Y`), a point on the curve of `spec` (P-256
/// or P-384, which the caller has checked).
pub(crate) fn ec_public_key(spec: KeySpec, point: &[u8]) -> Vec<u8> {
    let curve = if spec == KeySpec::EcP384 {
        P384_OID
    } else {
        P256_OID
    };
    let algorithm = encoded(SEQUENCE, &[EC_PUBLIC_KEY_OID, curve].concat());
    // The leading 0: no unused bits in the BIT STRING.
    let key = encoded(BIT_STRING, &[&[0][..], point].concat());
    encoded(SEQUENCE, &[algorithm, key].concat())
}

/// One element: `tag`, the minimal definite length of `contents`, and `contents` (which are
/// never 64 KiB long here).
fn encoded(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match u8::try_from(contents.len()) {
        Ok(short @ 0..=0x7f) => out.push(short),
        Ok(long) => out.extend([0x81, long]),
        Err(_) => {
            let len = u16::try_from(contents.len()).expect("a DER element under 64 KiB");
            out.push(0x82);
            out.extend(len.to_be_bytes());
        }
    }
    out.extend_from_slice(contents);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SEQUENCE { INTEGER r, INTEGER s }` from the integers' DER contents.
    fn signature(r: &[u8], s: &[u8]) -> Vec<u8> {
        let mut body = vec![INTEGER, u8::try_from(r.len()).unwrap()];
        body.extend_from_slice(r);
        body.extend_from_slice(&[INTEGER, u8::try_from(s.len()).unwrap()]);
        body.extend_from_slice(s);
        let mut der = vec![SEQUENCE, u8::try_from(body.len()).unwrap()];
        der.extend(body);
        der
    }

    #[test]
    fn a_full_length_r_and_s_are_concatenated() {
        let r = [0x11; 32];
        let s = [0x22; 32];
        let fixed = ecdsa_to_fixed(&signature(&r, &s), 32).unwrap();
        assert_eq!(&fixed[..32], &r);
        assert_eq!(&fixed[32..], &s);
    }

    #[test]
    fn the_sign_byte_before_a_high_bit_never_reaches_the_output() {
        let mut r = vec![0x00];
        r.extend([0xff; 32]);
        let mut s = vec![0x00];
        s.extend([0x80; 48]);
        let fixed = ecdsa_to_fixed(&signature(&r, &[0x01; 32]), 32).unwrap();
        assert_eq!(fixed.len(), 64);
        assert_eq!(&fixed[..32], &[0xff; 32]);
        let fixed = ecdsa_to_fixed(&signature(&[0x05; 48], &s), 48).unwrap();
        assert_eq!(fixed.len(), 96);
        assert_eq!(&fixed[48..], &[0x80; 48]);
    }

    #[test]
    fn short_r_and_s_are_left_padded_with_zeros() {
        // A 31-byte r (about 1 in 256 signatures) and a 1-byte s.
        let r = [0x42; 31];
        let fixed = ecdsa_to_fixed(&signature(&r, &[0x07]), 32).unwrap();
        assert_eq!(fixed[0], 0);
        assert_eq!(&fixed[1..32], &r);
        assert_eq!(&fixed[32..63], &[0; 31]);
        assert_eq!(fixed[63], 0x07);
        // A sign byte in front of a short value is stripped, then padded back to length.
        let mut s = vec![0x00, 0x9a];
        s.extend([0x33; 29]);
        let fixed = ecdsa_to_fixed(&signature(&[0x01; 32], &s), 32).unwrap();
        assert_eq!(&fixed[32..34], &[0, 0]);
        assert_eq!(fixed[34], 0x9a);
    }

    #[test]
    fn a_signature_with_a_long_form_length_is_read() {
        // P-384 signatures exceed 127 bytes only with sign bytes: 2 + 49 + 2 + 49 = 102, so build
        // a longer sequence by hand to exercise the 0x81 form.
        let mut r = vec![0x00];
        r.extend([0xf0; 64]);
        let mut s = vec![0x00];
        s.extend([0xe0; 64]);
        let mut body = vec![INTEGER, 65];
        body.extend(&r);
        body.extend([INTEGER, 65]);
        body.extend(&s);
        let mut der = vec![SEQUENCE, 0x81, u8::try_from(body.len()).unwrap()];
        der.extend(body);
        let fixed = ecdsa_to_fixed(&der, 66).unwrap();
        assert_eq!(&fixed[..3], &[0, 0, 0xf0]);
        assert_eq!(&fixed[66..69], &[0, 0, 0xe0]);
    }

    #[test]
    fn malformed_signatures_are_refused() {
        let good = signature(&[0x11; 32], &[0x22; 32]);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("truncated", good[..good.len() - 1].to_vec()),
            ("trailing byte", [good.clone(), vec![0]].concat()),
            ("r too long", signature(&[0x11; 33], &[0x22; 32])),
            ("negative r", signature(&[0x81; 32], &[0x22; 32])),
            ("non-minimal r", signature(&[0x00, 0x11], &[0x22; 32])),
            ("empty s", signature(&[0x11; 32], &[])),
            ("zero s", signature(&[0x11; 32], &[0x00])),
            ("not a sequence", [vec![0x31], good[1..].to_vec()].concat()),
            (
                "long form for a short length",
                [vec![SEQUENCE, 0x81, good[1]], good[2..].to_vec()].concat(),
            ),
            ("one integer", vec![SEQUENCE, 3, INTEGER, 1, 1]),
        ];
        for (what, der) in cases {
            assert_eq!(ecdsa_to_fixed(&der, 32), None, "{what}");
        }
    }

    /// Signatures with short or sign-padded integers, made by aws-lc-rs itself in DER and
    /// checked against the same key's verification of the converted fixed form.
    #[test]
    fn der_signatures_from_aws_lc_convert_to_fixed_signatures_that_verify() {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{
            EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1_SIGNING,
            ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_ASN1_SIGNING, ECDSA_P384_SHA384_FIXED,
        };
        let rng = SystemRandom::new();
        for (signing, verifying, field_len) in [
            (
                &ECDSA_P256_SHA256_ASN1_SIGNING,
                &ECDSA_P256_SHA256_FIXED,
                32,
            ),
            (
                &ECDSA_P384_SHA384_ASN1_SIGNING,
                &ECDSA_P384_SHA384_FIXED,
                48,
            ),
        ] {
            let key = EcdsaKeyPair::generate(signing).unwrap();
            let public = UnparsedPublicKey::new(verifying, key.public_key().as_ref().to_vec());
            let (mut short, mut padded) = (0, 0);
            // About 1 in 128 signatures has a short r or s: 3000 make missing both kinds unlikely
            // beyond any concern (e^-23).
            for i in 0..3000u32 {
                let message = i.to_be_bytes();
                let der = key.sign(&rng, &message).unwrap();
                // The integers' length bytes: below field_len is short, above has a sign byte.
                let der = der.as_ref();
                let r_len = der[3] as usize;
                for len in [r_len, der[5 + r_len] as usize] {
                    match len {
                        n if n < field_len => short += 1,
                        n if n > field_len => padded += 1,
                        _ => {}
                    }
                }
                let fixed = ecdsa_to_fixed(der, field_len).unwrap();
                assert_eq!(fixed.len(), 2 * field_len);
                public.verify(&message, &fixed).unwrap();
            }
            assert!(short > 0 && padded > 0, "short {short}, padded {padded}");
        }
    }

    #[test]
    fn public_keys_are_read_from_aws_lc_subject_public_key_infos() {
        use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
        use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P384_SHA384_FIXED_SIGNING};

        let ec = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        let spki = AsDer::<PublicKeyX509Der>::as_der(ec.public_key()).unwrap();
        let Some(PublicKey::Ec { spec, x, y }) = public_key(spki.as_ref(), KeySpec::EcP384) else {
            panic!("not an EC key");
        };
        assert_eq!(spec, KeySpec::EcP384);
        assert_eq!([&[4][..], &x, &y].concat(), ec.public_key().as_ref());
        assert_eq!(public_key(spki.as_ref(), KeySpec::EcP256), None);

        let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let spki = AsDer::<PublicKeyX509Der>::as_der(rsa.public_key()).unwrap();
        let Some(PublicKey::Rsa { n, e }) = public_key(spki.as_ref(), KeySpec::Rsa2048) else {
            panic!("not an RSA key");
        };
        assert_eq!(n.len(), 256);
        assert_eq!(e, vec![1, 0, 1]);
        assert_eq!(public_key(spki.as_ref(), KeySpec::Rsa3072), None);
        assert_eq!(public_key(&spki.as_ref()[1..], KeySpec::Rsa2048), None);
    }

    #[test]
    fn ec_public_keys_are_written_as_aws_lc_writes_them_and_read_back() {
        use aws_lc_rs::agreement::{PrivateKey, ECDH_P256, ECDH_P384};
        use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};

        for (algorithm, spec) in [(&ECDH_P256, KeySpec::EcP256), (&ECDH_P384, KeySpec::EcP384)] {
            let public = PrivateKey::generate(algorithm)
                .unwrap()
                .compute_public_key()
                .unwrap();
            let spki = ec_public_key(spec, public.as_ref());
            let expected = AsDer::<PublicKeyX509Der>::as_der(&public).unwrap();
            assert_eq!(spki, expected.as_ref(), "{spec:?}");
            let Some(PublicKey::Ec { x, y, .. }) = public_key(&spki, spec) else {
                panic!("{spec:?}: not read back");
            };
            assert_eq!([&[4][..], &x, &y].concat(), public.as_ref());
        }
    }

    #[test]
    fn lengths_are_written_in_their_minimal_form() {
        assert_eq!(encoded(INTEGER, &[7; 3])[..2], [INTEGER, 3]);
        assert_eq!(encoded(INTEGER, &[7; 0x7f])[..2], [INTEGER, 0x7f]);
        assert_eq!(encoded(INTEGER, &[7; 0x80])[..3], [INTEGER, 0x81, 0x80]);
        assert_eq!(encoded(INTEGER, &[7; 0x100])[..4], [INTEGER, 0x82, 1, 0]);
        let long = encoded(SEQUENCE, &[1; 300]);
        assert_eq!(only(&long, SEQUENCE), Some(&[1; 300][..]));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_converters(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            for field_len in [32, 48] {
                if let Some(fixed) = ecdsa_to_fixed(&bytes, field_len) {
                    proptest::prop_assert_eq!(fixed.len(), 2 * field_len);
                }
            }
            for spec in [KeySpec::EcP256, KeySpec::EcP384, KeySpec::Rsa2048, KeySpec::Ed25519] {
                let _ = public_key(&bytes, spec);
            }
        }

        #[test]
        fn any_der_integer_pair_converts_to_its_padded_values(
            r in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..=32),
            s in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..=32),
        ) {
            let integer = |v: &[u8]| {
                let v: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
                let mut body = if v.first().is_some_and(|b| b & 0x80 != 0) { vec![0] } else { vec![] };
                body.extend(&v);
                let mut out = vec![0x02, u8::try_from(body.len()).unwrap()];
                out.extend(body);
                (out, v)
            };
            let ((r_der, r_mag), (s_der, s_mag)) = (integer(&r), integer(&s));
            let mut der = vec![0x30, u8::try_from(r_der.len() + s_der.len()).unwrap()];
            der.extend(&r_der);
            der.extend(&s_der);
            let fixed = ecdsa_to_fixed(&der, 32);
            if r_mag.is_empty() || s_mag.is_empty() {
                proptest::prop_assert!(fixed.is_none(), "a zero r or s is refused");
            } else {
                let fixed = fixed.unwrap();
                proptest::prop_assert_eq!(&fixed[32 - r_mag.len()..32], &r_mag[..]);
                proptest::prop_assert_eq!(&fixed[64 - s_mag.len()..], &s_mag[..]);
            }
        }
    }
}
