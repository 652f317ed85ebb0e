//! `POST /v1/rings/{ring}/decrypt`: a token sent to an encryption ring, decrypted by the ring's
//! key (`crate::rings`), its nested signed token verified, and the decryption recorded before
//! the plaintext is returned.

use serde_json::{Map, Value};

use super::{Expectations, TokenError, TokenService};
use crate::api::{DecryptedToken, VerifiedToken};
use crate::auth::Principal;
use crate::domain::{RingName, SignatureFacts};
use crate::jose;
use crate::json;

impl TokenService {
    /// Decrypts `token` for `who`, a decryptor of `ring`. A plaintext that is a JSON object
    /// comes back as its claims too; a nested token (`cty: JWT`) must verify against a key signet
    /// publishes and not be revoked, or the whole token is refused. Returns once the
    /// decryption's audit record has committed.
    pub async fn decrypt(
        &self,
        who: &Principal,
        ring: &RingName,
        token: &str,
    ) -> Result<DecryptedToken, TokenError> {
        let opened = self.rings.decrypt(ring, token).await?;
        let nested = match opened.cty.as_deref() {
            Some(cty) if cty.eq_ignore_ascii_case("JWT") => {
                let inner = std::str::from_utf8(&opened.plaintext).map_err(|_| {
                    TokenError::Invalid(jose::VerifyError::Invalid(
                        "the nested token is not a compact JWS",
                    ))
                })?;
                Some(self.verify(inner, &Expectations::default())?)
            }
            _ => None,
        };
        let claims = match &nested {
            Some(_) => None,
            None => json::from_slice::<Map<String, Value>>(&opened.plaintext).ok(),
        };
        let nested_jti = nested
            .as_ref()
            .and_then(|checked| checked.claims.get("jti"))
            .map(SignatureFacts::bounded);
        self.rings
            .record_decryption(&who.actor(), &opened, nested_jti)
            .await?;
        Ok(DecryptedToken {
            kid: opened.kid,
            alg: opened.alg,
            enc: opened.enc,
            payload: jose::b64url(&opened.plaintext),
            claims,
            nested: nested.map(VerifiedToken::new),
        })
    }
}
