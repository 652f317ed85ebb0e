//! Every request has an id: the caller's `X-Request-Id` when it is well-formed (1 to 64 of
//! `A-Z a-z 0-9 . _ : -`), else 64 random bits as 16 hex digits. It is answered in
//! `X-Request-Id` and in every error body, and carried by every log line written while the
//! request is served, so an operator finds the detail behind a caller's "internal error" and a
//! caller's proxy can follow its own id through ours.

use std::fmt;

use actix_web::http::header::HeaderValue;

tokio::task_local! {
    static CURRENT: RequestId;
}

const MAX_LEN: usize = 64;

/// A request id: at most 64 bytes of a header-safe alphabet, kept inline.
#[derive(Clone, Copy)]
pub struct RequestId {
    bytes: [u8; MAX_LEN],
    len: u8,
}

impl RequestId {
    /// The caller's id, if it is well-formed.
    pub fn given(value: &HeaderValue) -> Option<RequestId> {
        let given = value.as_bytes();
        let allowed = |b: &u8| b.is_ascii_alphanumeric() || b".-_:".contains(b);
        if given.is_empty() || given.len() > MAX_LEN || !given.iter().all(allowed) {
            return None;
        }
        let mut bytes = [0; MAX_LEN];
        bytes[..given.len()].copy_from_slice(given);
        Some(RequestId {
            bytes,
            len: u8::try_from(given.len()).expect("at most 64"),
        })
    }

    /// A new random id.
    pub fn generate() -> RequestId {
        let hex = format!("{:016x}", crate::random::random_u64());
        RequestId::given(&HeaderValue::from_str(&hex).expect("hex digits are a header value"))
            .expect("16 hex digits are a well-formed id")
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).expect("checked to be ASCII")
    }

    /// Runs `f` with this as the current request's id.
    pub async fn scope<F: std::future::Future>(self, f: F) -> F::Output {
        CURRENT.scope(self, f).await
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The id of the request being served, if any.
pub fn current() -> Option<RequestId> {
    CURRENT.try_with(|id| *id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_well_formed_id_is_kept_and_anything_else_replaced() {
        let id = |s: &str| RequestId::given(&HeaderValue::from_str(s).unwrap());
        assert_eq!(id("req-42_a.b:c").unwrap().as_str(), "req-42_a.b:c");
        assert_eq!(id(&"a".repeat(64)).unwrap().as_str().len(), 64);
        assert!(id(&"a".repeat(65)).is_none());
        assert!(id("").is_none());
        assert!(id("has space").is_none());
        assert!(id("quote\"").is_none());
        assert_eq!(RequestId::generate().as_str().len(), 16);
    }
}
