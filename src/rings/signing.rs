//! Signing under a ring's policy (docs/design.md, Key lifecycle): tokens the server builds, and issuer-built
//! signing inputs. Every signature is returned only after its audit record has committed.

use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{provider_error, wrong_use, Actor, RingError, RingService, RingView, View};
use crate::clock::now_ms;
use crate::domain::{
    AuditEvent, AuditRecord, BoundClaims, CallerText, ErrorCode, KeyAlgorithm, Kid, Policy,
    Profile, RingName, SignatureFacts, UnixMillis, Violation,
};
use crate::jose;
use crate::json::{self, JsonError};
use crate::jwe::{ContentEncryption, Encryption, KeyManagement};
use crate::metrics::RingLabels;
use crate::random::random_id;
use crate::store::StoreError;

/// `POST /v1/rings/{ring}/sign`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    #[schema(value_type = Object)]
    pub claims: Map<String, Value>,
    pub ttl_seconds: Option<u32>,
    /// Also set `nbf` (to the issue time).
    #[serde(default)]
    pub nbf: bool,
    /// Return the signed token nested in a JWE to this recipient (`cty: "JWT"`), one the
    /// ring's `policy.encrypt_to` names.
    pub encrypt_to: Option<EncryptTo>,
}

/// The recipient of a nested token (`/sign` with `encrypt_to`): a public JWK, or an encryption
/// ring of this signet. Exactly one of the two.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EncryptTo {
    /// The recipient's public JWK: RSA of 2048 to 4096 bits, or EC on P-256 or P-384.
    #[schema(value_type = Option<Object>)]
    pub jwk: Option<Value>,
    /// An encryption ring: the token is encrypted to its current key, with its `alg` and `enc`.
    pub ring: Option<RingName>,
    /// For a `jwk`. Default: the JWK's own `alg`, else RSA-OAEP-256 for RSA keys and ECDH-ES
    /// for EC keys.
    pub alg: Option<KeyManagement>,
    /// For a `jwk`. Default: A256GCM.
    pub enc: Option<ContentEncryption>,
}

pub struct SignedToken {
    pub token: String,
    pub kid: Kid,
    pub expires_at: UnixMillis,
    /// The thumbprint of the key the token is encrypted to, when it is nested in a JWE.
    pub encrypted_to: Option<Kid>,
}

pub struct RawSignature {
    pub signature: String,
    pub kid: Kid,
}

/// Audit detail of a signature: never claim values beyond `sub`, `jti`, `aud` and times, and
/// those bounded.
fn signature_facts(
    claims: &Map<String, Value>,
    payload: &[u8],
    encrypted_to: Option<Kid>,
) -> SignatureFacts {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, payload);
    let fact = |name: &str| claims.get(name).map(SignatureFacts::bounded);
    SignatureFacts {
        jti: fact("jti"),
        sub: fact("sub"),
        aud: fact("aud"),
        iat: fact("iat"),
        exp: fact("exp"),
        claim_names: SignatureFacts::claim_names(claims.keys()),
        payload_sha256: jose::b64url(digest.as_ref()),
        encrypted_to,
    }
}

/// The encryption of a nested token to `to`, and the thumbprint of its key, checked against the
/// ring's policy (and, for a ring recipient, `view`) before anything is signed.
fn encryption(
    view: &View,
    policy: &Policy,
    to: &EncryptTo,
) -> Result<(Encryption, Kid), RingError> {
    let invalid = |message: String| {
        RingError::Policy(Violation {
            code: ErrorCode::InvalidRecipient,
            message: format!("encrypt_to: {message}"),
        })
    };
    match (&to.jwk, &to.ring) {
        (Some(jwk), None) => {
            let encryption =
                Encryption::to_jwk(jwk, to.alg, to.enc.unwrap_or(ContentEncryption::A256Gcm))
                    .map_err(|e| invalid(e.to_string()))?;
            let jkt = jose::jwk_thumbprint(jwk)
                .ok_or_else(|| invalid("the JWK has no thumbprint".into()))?;
            policy
                .check_recipient(jkt.as_str())
                .map_err(RingError::Policy)?;
            Ok((encryption, jkt))
        }
        (None, Some(ring)) => {
            if to.alg.is_some() || to.enc.is_some() {
                return Err(invalid(
                    "a ring is encrypted to with its own alg and enc: give ring alone".into(),
                ));
            }
            policy
                .check_ring_recipient(ring)
                .map_err(RingError::Policy)?;
            let target = view
                .rings
                .get(ring.as_str())
                .ok_or_else(|| invalid(format!("there is no ring {ring}")))?;
            let (KeyAlgorithm::Encrypt(alg), Some(enc)) =
                (target.record.algorithm, target.record.encryption)
            else {
                return Err(invalid(format!("ring {ring} is not an encryption ring")));
            };
            let (kid, jwk) = target
                .recipient
                .as_ref()
                .ok_or_else(|| RingError::NoActiveKey(ring.to_string()))?;
            let encryption =
                Encryption::to_jwk(jwk, Some(alg), enc).map_err(|e| invalid(e.to_string()))?;
            Ok((encryption, kid.clone()))
        }
        _ => Err(invalid("give jwk or ring, not both".into())),
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
        if view.record.signing_algorithm().is_none() {
            return Err(wrong_use(ring, "decrypts tokens: it does not sign"));
        }
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
        event: AuditEvent,
        signing_input: &str,
    ) -> Result<Vec<u8>, RingError> {
        let started = Instant::now();
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
            .sign(&signer.reference, signer.alg, signing_input.as_bytes())
            .await
            .map_err(provider_error(signer.provider.name()))?;
        let recorded = self
            .audit
            .record(AuditRecord::of_ring(
                now_ms(),
                actor,
                &record.name,
                Some(&signer.kid),
                event,
            ))
            .await;
        if let Err(StoreError::Changed(_)) = recorded {
            // This view's key left the signing states before the record committed: the next
            // request signs with the key that replaced it.
            self.refresh().await;
            return Err(RingError::Conflict {
                code: ErrorCode::KeyChanged,
                message: "the ring's signing key changed while signing; sign again".into(),
            });
        }
        recorded?;
        self.metrics
            .signed(&RingLabels::of(record), started.elapsed());
        Ok(signature)
    }

    /// Signs a token for `ring` under its policy, for the client `caller` (its id), with the
    /// claims bound to it. A token of a ring of refresh tokens starts a family: the server names
    /// it in `sid`. The token is returned only after its audit record has committed.
    pub(crate) async fn sign(
        &self,
        actor: &Actor,
        caller: &str,
        bound: &BoundClaims,
        ring: &RingName,
        mut request: SignRequest,
    ) -> Result<SignedToken, RingError> {
        let ring = self.signing_ring(ring)?;
        bound
            .apply(&mut request.claims)
            .map_err(RingError::Policy)?;
        if ring.record.policy.profile() == Profile::Refresh
            && request
                .claims
                .insert("sid".into(), random_id(16).into())
                .is_some()
        {
            return Err(RingError::Policy(Violation {
                code: ErrorCode::ReservedClaim,
                message: "claim \"sid\" names a refresh token's family and is set by the server"
                    .into(),
            }));
        }
        self.sign_with(actor, caller, &ring, request).await
    }

    /// Checks `request` against `ring`'s policy as [`RingService::sign_with`] does, signing
    /// nothing.
    pub(crate) fn check(
        &self,
        caller: &str,
        ring: &RingView,
        request: &SignRequest,
    ) -> Result<(), RingError> {
        let policy = &ring.record.policy;
        policy
            .token_claims(
                request.claims.clone(),
                request.ttl_seconds,
                request.nbf,
                now_ms().as_secs(),
                String::new(),
                caller,
            )
            .map_err(RingError::Policy)?;
        if let Some(to) = &request.encrypt_to {
            encryption(&self.view(), policy, to)?;
        }
        Ok(())
    }

    /// Signs a token with `ring`'s active key under its policy; the token is returned only after
    /// its audit record has committed.
    pub(crate) async fn sign_with(
        &self,
        actor: &Actor,
        caller: &str,
        ring: &RingView,
        request: SignRequest,
    ) -> Result<SignedToken, RingError> {
        let signer = ring
            .signer
            .as_ref()
            .ok_or_else(|| RingError::NoActiveKey(ring.record.name.to_string()))?;
        let claims = ring
            .record
            .policy
            .token_claims(
                request.claims,
                request.ttl_seconds,
                request.nbf,
                now_ms().as_secs(),
                random_id(16),
                caller,
            )
            .map_err(RingError::Policy)?;
        let encryption = request
            .encrypt_to
            .as_ref()
            .map(|to| encryption(&self.view(), &ring.record.policy, to))
            .transpose()?;
        let payload = serde_json::to_vec(&claims).expect("claims serialise");
        let signing_input = format!("{}.{}", signer.header, jose::b64url(&payload));
        let facts = signature_facts(
            &claims,
            &payload,
            encryption.as_ref().map(|(_, jkt)| jkt.clone()),
        );
        let signature = self
            .sign_audited(actor, ring, AuditEvent::Sign(facts), &signing_input)
            .await?;
        let expires_at = claims["exp"].as_i64().expect("exp set by the policy");
        let token = format!("{signing_input}.{}", jose::b64url(&signature));
        let (token, encrypted_to) = match encryption {
            Some((encryption, jkt)) => (encryption.seal(Some("JWT"), token.as_bytes()), Some(jkt)),
            None => (token, None),
        };
        Ok(SignedToken {
            token,
            kid: signer.kid.clone(),
            expires_at: UnixMillis::from_secs(expires_at),
            encrypted_to,
        })
    }

    /// Signs an issuer-built JWS signing input whose header names this ring's algorithm and active
    /// key, after checking its payload against the ring's policy and the claims bound to the
    /// client `caller` (its id).
    pub(crate) async fn sign_raw(
        &self,
        actor: &Actor,
        caller: &str,
        bound: &BoundClaims,
        ring: &RingName,
        signing_input: &str,
    ) -> Result<RawSignature, RingError> {
        let ring = self.signing_ring(ring)?;
        if ring.record.policy.profile() == Profile::Refresh {
            return Err(RingError::Policy(Violation {
                code: ErrorCode::RawSigningRefused,
                message: "a ring of refresh tokens signs only through /sign and /refresh".into(),
            }));
        }
        let signer = ring.signer.as_ref().expect("a signing ring has a signer");
        let record = &ring.record;
        let invalid = |m: &str| RingError::Invalid(format!("signing_input: {m}"));
        let (header, payload_b64) = signing_input
            .split_once('.')
            .ok_or_else(|| invalid("expected <base64url header>.<base64url payload>"))?;
        // Strict JSON: a member named twice would let the policy and a verifier read different
        // values.
        let object = |bytes: &[u8], what: &str| -> Result<Map<String, Value>, RingError> {
            json::from_slice(bytes).map_err(|e| match e {
                JsonError::Duplicate { path } => RingError::DuplicateMember(format!(
                    "signing_input: the {what}'s member {path} appears more than once"
                )),
                _ => invalid(&format!("the {what} is not a JSON object")),
            })
        };
        let header =
            jose::b64url_decode(header).ok_or_else(|| invalid("the header is not base64url"))?;
        let header = object(&header, "header")?;
        let payload = jose::b64url_decode(payload_b64)
            .ok_or_else(|| invalid("the payload is not base64url"))?;
        let claims = object(&payload, "payload")?;
        bound.require(&claims).map_err(RingError::Policy)?;
        let header_error = |message: String| {
            RingError::Policy(Violation {
                code: ErrorCode::HeaderMismatch,
                message,
            })
        };
        if header.get("alg").and_then(Value::as_str) != Some(signer.alg.as_str()) {
            return Err(header_error(format!(
                "the header's alg must be {}",
                signer.alg
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
                "header member {:?} is not allowed (only alg, kid, typ, cty)",
                CallerText::echoed(extra).as_str()
            )));
        }
        record
            .policy
            .check_header_types(&header)
            .map_err(RingError::Policy)?;
        record
            .policy
            .check_raw_claims(
                &claims,
                now_ms().as_secs(),
                record.timing.leeway_seconds,
                caller,
            )
            .map_err(RingError::Policy)?;
        let signature = self
            .sign_audited(
                actor,
                &ring,
                AuditEvent::SignRaw(signature_facts(&claims, &payload, None)),
                signing_input,
            )
            .await
            .map_err(|e| match e {
                RingError::Store(StoreError::Conflict(_)) => RingError::Conflict {
                    code: ErrorCode::JtiReused,
                    message: "this ring has already signed a token with this jti".into(),
                },
                e => e,
            })?;
        Ok(RawSignature {
            signature: jose::b64url(&signature),
            kid: signer.kid.clone(),
        })
    }
}
