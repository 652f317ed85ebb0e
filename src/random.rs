//! Unpredictable identifiers: key ids, `jti`s, API tokens, request ids.

/// `bytes` random bytes from the system CSPRNG, as base64url.
pub fn random_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).expect("system randomness");
    crate::jose::b64url(&buf)
}

/// A random 64-bit number from the system CSPRNG.
pub fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    aws_lc_rs::rand::fill(&mut buf).expect("system randomness");
    u64::from_le_bytes(buf)
}
