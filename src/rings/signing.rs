//! Signing under a ring's policy (docs/design.md, Key lifecycle): tokens the server builds, and issuer-built
//! signing inputs. Every signature is returned only after its audit record has committed.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{provider_error, Actor, RingError, RingService, RingView};
use crate::clock::now_ms;
use crate::domain::{AuditEvent, AuditRecord, Kid, RingName, SignatureFacts, Violation};
use crate::jose;
use crate::random::random_id;

/// `POST /v1/rings/{ring}/sign`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    pub claims: Map<String, Value>,
    pub ttl_seconds: Option<u32>,
    /// Also set `nbf` (to the issue time).
    #[serde(default)]
    pub nbf: bool,
}

pub struct SignedToken {
    pub token: String,
    pub kid: Kid,
    pub expires_at: i64,
}

pub struct RawSignature {
    pub signature: String,
    pub kid: Kid,
}

/// Audit detail of a signature: never claim values beyond `sub`, `jti`, `aud` and times.
fn signature_facts(claims: &Map<String, Value>, payload: &[u8]) -> SignatureFacts {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, payload);
    SignatureFacts {
        jti: claims.get("jti").cloned(),
        sub: claims.get("sub").cloned(),
        aud: claims.get("aud").cloned(),
        iat: claims.get("iat").cloned(),
        exp: claims.get("exp").cloned(),
        claim_names: claims.keys().cloned().collect(),
        payload_sha256: jose::b64url(digest.as_ref()),
    }
}

impl RingService {
    /// The view of a ring that can sign now.
    pub(super) fn signing_ring(&self, ring: &str) -> Result<Arc<RingView>, RingError> {
        let view = self
            .view()
            .rings
            .get(ring)
            .cloned()
            .ok_or_else(|| RingError::RingNotFound(ring.to_owned()))?;
        if view.signer.is_none() {
            return Err(RingError::NoActiveKey(ring.to_owned()));
        }
        Ok(view)
    }

    /// Signs `signing_input` with the ring's active key once the finished token passes the size
    /// cap, and returns the signature (JWS form) only after its audit record has committed.
    async fn sign_audited(
        &self,
        actor: &Actor,
        ring: &RingView,
        event: fn(SignatureFacts) -> AuditEvent,
        signing_input: &str,
        claims: &Map<String, Value>,
        payload: &[u8],
    ) -> Result<Vec<u8>, RingError> {
        let record = &ring.record;
        let signer = ring
            .signer
            .as_ref()
            .ok_or_else(|| RingError::NoActiveKey(record.name.to_string()))?;
        let token_len =
            signing_input.len() + 1 + jose::b64url_len(jose::signature_len(record.key_spec));
        record
            .policy
            .check_size(token_len)
            .map_err(RingError::Policy)?;
        let signature = signer
            .provider
            .sign(
                &signer.reference,
                record.algorithm,
                signing_input.as_bytes(),
            )
            .await
            .map_err(provider_error(signer.provider.name()))?;
        self.audit
            .record(AuditRecord::of_ring(
                now_ms(),
                actor,
                &record.name,
                Some(&signer.kid),
                event(signature_facts(claims, payload)),
            ))
            .await?;
        Ok(signature)
    }

    /// Signs a token for `ring` under its policy. The token is returned only after its audit
    /// record has committed.
    pub(crate) async fn sign(
        &self,
        actor: &Actor,
        ring: &RingName,
        request: SignRequest,
    ) -> Result<SignedToken, RingError> {
        let ring = self.signing_ring(ring)?;
        let signer = ring.signer.as_ref().expect("a signing ring has a signer");
        let claims = ring
            .record
            .policy
            .token_claims(
                request.claims,
                request.ttl_seconds,
                request.nbf,
                now_ms() / 1000,
                random_id(16),
            )
            .map_err(RingError::Policy)?;
        let payload = serde_json::to_vec(&claims).expect("claims serialise");
        let signing_input = format!("{}.{}", signer.header, jose::b64url(&payload));
        let signature = self
            .sign_audited(
                actor,
                &ring,
                AuditEvent::Sign,
                &signing_input,
                &claims,
                &payload,
            )
            .await?;
        let expires_at = claims["exp"].as_i64().expect("exp set by the policy");
        Ok(SignedToken {
            token: format!("{signing_input}.{}", jose::b64url(&signature)),
            kid: signer.kid.clone(),
            expires_at: expires_at * 1000,
        })
    }

    /// Signs an issuer-built JWS signing input whose header names this ring's algorithm and active
    /// key, after checking its payload against the ring's policy.
    pub(crate) async fn sign_raw(
        &self,
        actor: &Actor,
        ring: &RingName,
        signing_input: &str,
    ) -> Result<RawSignature, RingError> {
        let ring = self.signing_ring(ring)?;
        let signer = ring.signer.as_ref().expect("a signing ring has a signer");
        let record = &ring.record;
        let invalid = |m: &str| RingError::Invalid(format!("signing_input: {m}"));
        let (header, payload_b64) = signing_input
            .split_once('.')
            .ok_or_else(|| invalid("expected <base64url header>.<base64url payload>"))?;
        let decode_object = |part: &str| -> Option<Map<String, Value>> {
            serde_json::from_slice(&jose::b64url_decode(part)?).ok()
        };
        let header = decode_object(header)
            .ok_or_else(|| invalid("the header is not a base64url JSON object"))?;
        let payload = jose::b64url_decode(payload_b64)
            .ok_or_else(|| invalid("the payload is not base64url"))?;
        let claims: Map<String, Value> = serde_json::from_slice(&payload)
            .map_err(|_| invalid("the payload is not a JSON object"))?;
        let header_error = |message: String| {
            RingError::Policy(Violation {
                code: "header_mismatch",
                message,
            })
        };
        if header.get("alg").and_then(Value::as_str) != Some(record.algorithm.as_str()) {
            return Err(header_error(format!(
                "the header's alg must be {}",
                record.algorithm
            )));
        }
        if header.get("kid").and_then(Value::as_str) != Some(signer.kid.as_str()) {
            return Err(header_error(format!(
                "the header's kid must be the active key {}",
                signer.kid
            )));
        }
        if let Some(extra) = header
            .keys()
            .find(|k| !["alg", "kid", "typ", "cty"].contains(&k.as_str()))
        {
            return Err(header_error(format!(
                "header member {extra:?} is not allowed (only alg, kid, typ, cty)"
            )));
        }
        record
            .policy
            .check_raw_claims(&claims, now_ms() / 1000)
            .map_err(RingError::Policy)?;
        let signature = self
            .sign_audited(
                actor,
                &ring,
                AuditEvent::SignRaw,
                signing_input,
                &claims,
                &payload,
            )
            .await?;
        Ok(RawSignature {
            signature: jose::b64url(&signature),
            kid: signer.kid.clone(),
        })
    }
}
