//! Unpredictable identifiers: key ids, `jti`s, API tokens.

/// `bytes` random bytes from the system CSPRNG, as base64url.
pub fn random_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).expect("system randomness");
    crate::jose::b64url(&buf)
}
