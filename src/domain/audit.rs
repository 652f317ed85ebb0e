//! What the audit log records: one [`AuditEvent`] variant per action, with typed details.
//!
//! [`Action`] is the one place that names each action. The names are stable: the README's
//! table, the store's filters and the Postgres auditor views depend on them.

use serde_json::{json, Value};
use signet_core::KeySpec;

use super::{
    BackendKind, BoundClaims, CallerText, ContentEncryption, ErrorCode, KeyAlgorithm, Kid, Policy,
    RateLimit, RingName, Role, Rule, Timing, UnixMillis,
};

macro_rules! actions {
    ($($variant:ident => $name:literal,)+) => {
        /// The name of an audit event, as stored in `audit_log.action`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Action {
            $($variant,)+
        }

        impl Action {
            /// Every action, in the order they are declared.
            pub const ALL: &'static [Action] = &[$(Action::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Action::$variant => $name,)+
                }
            }
        }
    };
}

actions! {
    Sign => "sign",
    SignRaw => "sign_raw",
    Decrypt => "decrypt",
    RingCreated => "ring_created",
    RingCreationFailed => "ring_creation_failed",
    RingChanged => "ring_changed",
    RotationRequested => "rotation_requested",
    RotationScheduled => "rotation_scheduled",
    KeyPublished => "key_published",
    KeyActivated => "key_activated",
    KeyRetiring => "key_retiring",
    KeyRetired => "key_retired",
    KeyDestroyed => "key_destroyed",
    KeyRevoked => "key_revoked",
    KeyGenerationFailed => "key_generation_failed",
    KeyGenerationAbandoned => "key_generation_abandoned",
    ScheduleChanged => "schedule_changed",
    SchedulePaused => "schedule_paused",
    ScheduleResumed => "schedule_resumed",
    ClientCreated => "client_created",
    ClientRevoked => "client_revoked",
    ClientRateLimitChanged => "client_rate_limit_changed",
    ClientTokenRotated => "client_token_rotated",
    TokenRevoked => "token_revoked",
    RefreshTokenUsed => "refresh_token_used",
    RefreshTokenReused => "refresh_token_reused",
    RequestDenied => "request_denied",
    RequestsDenied => "requests_denied",
    AuditCheckpoint => "audit_checkpoint",
}

/// A checkpoint of the audit chain is due after this many records...
pub const CHECKPOINT_EVERY_RECORDS: i64 = 10_000;
/// ...or this many milliseconds after the first record it would cover, whichever comes first.
pub const CHECKPOINT_EVERY_MS: i64 = 5 * 60 * 1000;

/// What a signature record keeps of the token: never the token or claim values beyond these.
#[derive(Clone, Debug, PartialEq)]
pub struct SignatureFacts {
    pub jti: Option<Value>,
    pub sub: Option<Value>,
    pub aud: Option<Value>,
    pub iat: Option<Value>,
    pub exp: Option<Value>,
    /// The names of the claims (the first [`SignatureFacts::MAX_ITEMS`]).
    pub claim_names: Vec<CallerText>,
    /// base64url SHA-256 of the signed payload.
    pub payload_sha256: String,
    /// The thumbprint of the recipient's key when the token was returned nested in a JWE.
    pub encrypted_to: Option<Kid>,
}

impl SignatureFacts {
    /// The most claim names, or members of an array claim, a record keeps.
    pub const MAX_ITEMS: usize = 32;

    /// What a record keeps of a claim's value: strings bounded, arrays cut to
    /// [`SignatureFacts::MAX_ITEMS`] (with a last element saying so), objects as bounded text.
    pub fn bounded(value: &Value) -> Value {
        match value {
            Value::String(text) => json!(CallerText::stored(text)),
            Value::Array(items) => {
                let mut kept: Vec<Value> = items
                    .iter()
                    .take(Self::MAX_ITEMS)
                    .map(Self::bounded)
                    .collect();
                if items.len() > Self::MAX_ITEMS {
                    kept.push(json!(format!("[{} more]", items.len() - Self::MAX_ITEMS)));
                }
                Value::Array(kept)
            }
            Value::Object(_) => json!(CallerText::stored(&value.to_string())),
            Value::Null | Value::Bool(_) | Value::Number(_) => value.clone(),
        }
    }

    /// The names of claims, bounded like [`SignatureFacts::bounded`] bounds an array.
    pub fn claim_names<'a>(names: impl ExactSizeIterator<Item = &'a String>) -> Vec<CallerText> {
        let total = names.len();
        let mut kept: Vec<CallerText> = names
            .take(Self::MAX_ITEMS)
            .map(|name| CallerText::stored(name))
            .collect();
        if total > Self::MAX_ITEMS {
            kept.push(CallerText::stored(&format!(
                "[{} more]",
                total - Self::MAX_ITEMS
            )));
        }
        kept
    }
}

/// Why a rotation was asked for by hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationCause {
    /// `POST /v1/rings/{ring}/rotate` or `signet rotate`.
    Request { immediate: bool },
    /// The ring's active key was revoked and no key was waiting to take over.
    Revocation,
}

/// One event of the audit log, with what it needs beyond the record's common columns (time,
/// principal, ring, kid). Details never hold secrets, tokens or claim values.
#[derive(Clone, Debug, PartialEq)]
pub enum AuditEvent {
    Sign(SignatureFacts),
    SignRaw(SignatureFacts),
    /// A token decrypted with the record's key: its size in bytes, and the `jti` of the signed
    /// token nested in it, if any. Never the plaintext or the content key.
    Decrypt {
        size: usize,
        nested_jti: Option<Value>,
    },
    RingCreated {
        backend: BackendKind,
        algorithm: KeyAlgorithm,
        /// An encryption ring's `enc`.
        encryption: Option<ContentEncryption>,
        key_spec: KeySpec,
        policy: Policy,
        timing: Timing,
        combined_jwks: bool,
    },
    RingCreationFailed {
        error: String,
    },
    RingChanged {
        combined_jwks: bool,
    },
    RotationRequested {
        key_id: String,
        cause: RotationCause,
    },
    RotationScheduled {
        key_id: String,
    },
    KeyPublished {
        key_id: String,
        reference: String,
    },
    KeyActivated {
        key_id: String,
        /// Given when the key is activated as it is recorded.
        reference: Option<String>,
        /// The kid of the revoked key this one replaces.
        replaces_revoked: Option<String>,
    },
    KeyRetiring {
        retire_after: UnixMillis,
    },
    KeyRetired {
        destroy_after: UnixMillis,
    },
    KeyDestroyed {
        key_id: String,
        /// When the backend deletes the key, if it only scheduled the deletion.
        deletion_scheduled_for: Option<UnixMillis>,
    },
    KeyRevoked {
        reason: String,
    },
    KeyGenerationFailed {
        error: String,
    },
    KeyGenerationAbandoned {
        key_id: String,
    },
    ScheduleChanged {
        rule: Rule,
        paused: bool,
        timing: Timing,
        max_token_ttl_seconds: u32,
    },
    SchedulePaused,
    ScheduleResumed,
    ClientCreated {
        client_id: String,
        name: String,
        role: Role,
        rings: Vec<RingName>,
        rate_limit: Option<RateLimit>,
        expires_at: Option<UnixMillis>,
        bound_claims: BoundClaims,
    },
    ClientRevoked {
        client_id: String,
    },
    /// Never the token: the old one is accepted `grace_seconds` more.
    ClientTokenRotated {
        client_id: String,
        grace_seconds: u32,
    },
    ClientRateLimitChanged {
        client_id: String,
        /// `None`: the server's default.
        rate_limit: Option<RateLimit>,
    },
    /// A request denied to an authenticated client.
    RequestDenied {
        method: CallerText,
        path: CallerText,
        status: u16,
        code: ErrorCode,
        reason: CallerText,
    },
    /// The requests of one source denied in one window without authentication, or refused
    /// over a rate limit: counted, with the first as a sample (`crate::audit` tally).
    RequestsDenied {
        source: CallerText,
        status: u16,
        code: ErrorCode,
        count: u64,
        /// The window is [start, end).
        window_start: UnixMillis,
        window_end: UnixMillis,
        method: CallerText,
        path: CallerText,
        reason: CallerText,
    },
    /// A token (`jti`), or every token of `sub` issued before `issued_before` (seconds),
    /// revoked in the record's ring until `expires` (seconds), when none can verify any more.
    TokenRevoked {
        jti: Option<String>,
        sub: Option<String>,
        issued_before: Option<i64>,
        expires: i64,
    },
    /// A refresh token (`jti`) of the family `family` exchanged: it is spent. The family is
    /// kept until `expires` (seconds), when no token of it can verify any more.
    RefreshTokenUsed {
        family: String,
        jti: String,
        sub: String,
        expires: i64,
    },
    /// A spent refresh token presented again: its family is revoked.
    RefreshTokenReused {
        family: String,
        jti: String,
    },
    AuditCheckpoint {
        upto_seq: i64,
        upto_hash: String,
        jws: String,
    },
}

impl AuditEvent {
    /// Signatures and denials: records of requests, not of changes.
    fn records_a_request(&self) -> bool {
        matches!(
            self,
            AuditEvent::Sign(_)
                | AuditEvent::SignRaw(_)
                | AuditEvent::Decrypt { .. }
                | AuditEvent::RefreshTokenUsed { .. }
                | AuditEvent::RequestDenied { .. }
                | AuditEvent::RequestsDenied { .. }
        )
    }

    /// Whether the event changes its ring as replicas hold it in memory (its settings, keys or
    /// schedule): what signs, what is published and what is due. Requests and checkpoints do
    /// not.
    pub fn changes_ring(&self) -> bool {
        !self.records_a_request()
            && !matches!(
                self,
                AuditEvent::AuditCheckpoint { .. }
                    | AuditEvent::TokenRevoked { .. }
                    | AuditEvent::RefreshTokenReused { .. }
            )
    }

    /// Whether a person watching the server's log wants a line for the event once it is
    /// recorded: every change and checkpoint. Signatures are too many; denials are logged
    /// where they are refused.
    pub fn is_event_for_operators(&self) -> bool {
        !self.records_a_request()
    }

    pub fn action(&self) -> Action {
        match self {
            AuditEvent::Sign(_) => Action::Sign,
            AuditEvent::SignRaw(_) => Action::SignRaw,
            AuditEvent::Decrypt { .. } => Action::Decrypt,
            AuditEvent::RingCreated { .. } => Action::RingCreated,
            AuditEvent::RingCreationFailed { .. } => Action::RingCreationFailed,
            AuditEvent::RingChanged { .. } => Action::RingChanged,
            AuditEvent::RotationRequested { .. } => Action::RotationRequested,
            AuditEvent::RotationScheduled { .. } => Action::RotationScheduled,
            AuditEvent::KeyPublished { .. } => Action::KeyPublished,
            AuditEvent::KeyActivated { .. } => Action::KeyActivated,
            AuditEvent::KeyRetiring { .. } => Action::KeyRetiring,
            AuditEvent::KeyRetired { .. } => Action::KeyRetired,
            AuditEvent::KeyDestroyed { .. } => Action::KeyDestroyed,
            AuditEvent::KeyRevoked { .. } => Action::KeyRevoked,
            AuditEvent::KeyGenerationFailed { .. } => Action::KeyGenerationFailed,
            AuditEvent::KeyGenerationAbandoned { .. } => Action::KeyGenerationAbandoned,
            AuditEvent::ScheduleChanged { .. } => Action::ScheduleChanged,
            AuditEvent::SchedulePaused => Action::SchedulePaused,
            AuditEvent::ScheduleResumed => Action::ScheduleResumed,
            AuditEvent::ClientCreated { .. } => Action::ClientCreated,
            AuditEvent::ClientRevoked { .. } => Action::ClientRevoked,
            AuditEvent::ClientRateLimitChanged { .. } => Action::ClientRateLimitChanged,
            AuditEvent::ClientTokenRotated { .. } => Action::ClientTokenRotated,
            AuditEvent::TokenRevoked { .. } => Action::TokenRevoked,
            AuditEvent::RefreshTokenUsed { .. } => Action::RefreshTokenUsed,
            AuditEvent::RefreshTokenReused { .. } => Action::RefreshTokenReused,
            AuditEvent::RequestDenied { .. } => Action::RequestDenied,
            AuditEvent::RequestsDenied { .. } => Action::RequestsDenied,
            AuditEvent::AuditCheckpoint { .. } => Action::AuditCheckpoint,
        }
    }

    /// The record's `detail` column: JSON text with its members in name order. A signature's,
    /// written for every token, is serialised directly; the others go through a `Value`.
    pub fn detail_text(&self) -> String {
        /// A signature's detail, its members in name order like a `Value`'s.
        #[derive(serde::Serialize)]
        struct Signature<'a> {
            aud: &'a Option<Value>,
            claims: &'a [CallerText],
            #[serde(skip_serializing_if = "Option::is_none")]
            encrypted_to: &'a Option<Kid>,
            exp: &'a Option<Value>,
            iat: &'a Option<Value>,
            jti: &'a Option<Value>,
            payload_sha256: &'a str,
            sub: &'a Option<Value>,
        }
        match self {
            AuditEvent::Sign(facts) | AuditEvent::SignRaw(facts) => {
                serde_json::to_string(&Signature {
                    aud: &facts.aud,
                    claims: &facts.claim_names,
                    encrypted_to: &facts.encrypted_to,
                    exp: &facts.exp,
                    iat: &facts.iat,
                    jti: &facts.jti,
                    payload_sha256: &facts.payload_sha256,
                    sub: &facts.sub,
                })
                .expect("a signature's detail serialises")
            }
            _ => self.detail().to_string(),
        }
    }

    /// The record's `detail` column, as JSON.
    fn detail(&self) -> Value {
        match self {
            AuditEvent::Sign(facts) | AuditEvent::SignRaw(facts) => {
                let mut detail = json!({
                    "jti": facts.jti,
                    "sub": facts.sub,
                    "aud": facts.aud,
                    "iat": facts.iat,
                    "exp": facts.exp,
                    "claims": facts.claim_names,
                    "payload_sha256": facts.payload_sha256,
                });
                if let Some(jkt) = &facts.encrypted_to {
                    detail["encrypted_to"] = json!(jkt);
                }
                detail
            }
            AuditEvent::Decrypt { size, nested_jti } => {
                json!({"size": size, "nested_jti": nested_jti})
            }
            AuditEvent::RingCreated {
                backend,
                algorithm,
                encryption,
                key_spec,
                policy,
                timing,
                combined_jwks,
            } => {
                let mut detail = json!({"backend": backend, "algorithm": algorithm,
                    "key_spec": key_spec, "policy": policy, "timing": timing,
                    "combined_jwks": combined_jwks});
                if let Some(enc) = encryption {
                    detail["encryption"] = json!(enc);
                }
                detail
            }
            AuditEvent::RingCreationFailed { error }
            | AuditEvent::KeyGenerationFailed { error } => {
                json!({"error": error})
            }
            AuditEvent::RotationRequested { key_id, cause } => match cause {
                RotationCause::Request { immediate } => {
                    json!({"key_id": key_id, "immediate": immediate})
                }
                RotationCause::Revocation => json!({"key_id": key_id, "for": "revocation"}),
            },
            AuditEvent::RotationScheduled { key_id }
            | AuditEvent::KeyGenerationAbandoned { key_id } => json!({"key_id": key_id}),
            AuditEvent::KeyPublished { key_id, reference } => {
                json!({"key_id": key_id, "reference": reference})
            }
            AuditEvent::KeyActivated {
                key_id,
                reference,
                replaces_revoked,
            } => {
                let mut detail = json!({"key_id": key_id});
                if let Some(reference) = reference {
                    detail["reference"] = json!(reference);
                }
                if let Some(kid) = replaces_revoked {
                    detail["replaces_revoked"] = json!(kid);
                }
                detail
            }
            AuditEvent::KeyRetiring { retire_after } => json!({"retire_after": retire_after}),
            AuditEvent::KeyRetired { destroy_after } => json!({"destroy_after": destroy_after}),
            AuditEvent::KeyDestroyed {
                key_id,
                deletion_scheduled_for,
            } => json!({"key_id": key_id, "deletion_scheduled_for": deletion_scheduled_for}),
            AuditEvent::KeyRevoked { reason } => json!({"reason": reason}),
            AuditEvent::RingChanged { combined_jwks } => json!({"combined_jwks": combined_jwks}),
            AuditEvent::ScheduleChanged {
                rule,
                paused,
                timing,
                max_token_ttl_seconds,
            } => json!({"rule": rule, "paused": paused, "timing": timing,
                        "max_token_ttl_seconds": max_token_ttl_seconds}),
            AuditEvent::SchedulePaused | AuditEvent::ScheduleResumed => json!({}),
            AuditEvent::ClientCreated {
                client_id,
                name,
                role,
                rings,
                rate_limit,
                expires_at,
                bound_claims,
            } => json!({"client_id": client_id, "name": name, "role": role, "rings": rings,
                        "rate_limit": rate_limit, "expires_at": expires_at,
                        "bound_claims": bound_claims}),
            AuditEvent::ClientRevoked { client_id } => json!({"client_id": client_id}),
            AuditEvent::ClientTokenRotated {
                client_id,
                grace_seconds,
            } => json!({"client_id": client_id, "grace_seconds": grace_seconds}),
            AuditEvent::ClientRateLimitChanged {
                client_id,
                rate_limit,
            } => json!({"client_id": client_id, "rate_limit": rate_limit}),
            AuditEvent::TokenRevoked {
                jti,
                sub,
                issued_before,
                expires,
            } => json!({"jti": jti, "sub": sub, "issued_before": issued_before,
                        "expires": expires}),
            AuditEvent::RefreshTokenUsed {
                family,
                jti,
                sub,
                expires,
            } => json!({"family": family, "jti": jti, "sub": sub, "expires": expires}),
            AuditEvent::RefreshTokenReused { family, jti } => {
                json!({"family": family, "jti": jti})
            }
            AuditEvent::RequestDenied {
                method,
                path,
                status,
                code,
                reason,
            } => json!({"method": method, "path": path, "status": status, "code": code,
                        "reason": reason}),
            AuditEvent::RequestsDenied {
                source,
                status,
                code,
                count,
                window_start,
                window_end,
                method,
                path,
                reason,
            } => json!({"source": source, "status": status, "code": code, "count": count,
                        "window_start": window_start, "window_end": window_end,
                        "method": method, "path": path, "reason": reason}),
            AuditEvent::AuditCheckpoint {
                upto_seq,
                upto_hash,
                jws,
            } => json!({"upto_seq": upto_seq, "upto_hash": upto_hash, "jws": jws}),
        }
    }
}

/// One audit record to append: the event, who caused it, and the ring and key it concerns.
#[derive(Clone, Debug)]
pub struct AuditRecord {
    pub time: UnixMillis,
    /// `client:<name>`, `cli`, `scheduler`, `bootstrap` or `anonymous`.
    pub principal: String,
    pub ring: Option<RingName>,
    pub kid: Option<Kid>,
    event: AuditEvent,
    /// The event's `detail` text, made with the record: on the request's thread, not on the
    /// audit writer's, whose batches wait on each other.
    detail: String,
}

impl AuditRecord {
    /// An event with no ring or key.
    pub fn new(time: UnixMillis, principal: &str, event: AuditEvent) -> AuditRecord {
        AuditRecord {
            time,
            principal: principal.to_owned(),
            ring: None,
            kid: None,
            detail: event.detail_text(),
            event,
        }
    }

    pub fn event(&self) -> &AuditEvent {
        &self.event
    }

    /// The record's `detail` column ([`AuditEvent::detail_text`]).
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// An event about `ring`, and about its key `kid` when given.
    pub fn of_ring(
        time: UnixMillis,
        principal: &str,
        ring: &RingName,
        kid: Option<&Kid>,
        event: AuditEvent,
    ) -> AuditRecord {
        AuditRecord {
            ring: Some(ring.clone()),
            kid: kid.cloned(),
            ..AuditRecord::new(time, principal, event)
        }
    }
}

/// Which records an auditor asks for. Every filter is optional; records come newest first unless
/// `oldest_first`, `limit` at a time, after the `cursor` (a `seq`) of the previous page.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub ring: Option<String>,
    pub kid: Option<String>,
    pub principal: Option<String>,
    pub action: Option<String>,
    /// Inclusive.
    pub from: Option<UnixMillis>,
    /// Exclusive.
    pub to: Option<UnixMillis>,
    /// Leave out signatures and denied requests (what a key's or ring's history shows).
    pub events_only: bool,
    pub oldest_first: bool,
    pub cursor: Option<i64>,
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's table of action names is what auditors rely on: every action is in it.
    #[test]
    fn every_action_is_in_the_readmes_table() {
        let readme = include_str!("../../README.md");
        let table = readme
            .split("Action names (stable):")
            .nth(1)
            .and_then(|rest| {
                rest.split("\n\n")
                    .find(|block| block.contains("| action |"))
            })
            .expect("the README has a table after \"Action names (stable):\"");
        for action in Action::ALL {
            assert!(
                table.contains(&format!("`{}`", action.as_str())),
                "action {:?} is missing from the README's table",
                action.as_str()
            );
        }
    }

    /// The direct serialisation of a signature's detail is the text its `Value` gives, members
    /// in the same order, missing facts as null.
    #[test]
    fn a_signatures_detail_text_is_its_values_text() {
        let claims: serde_json::Map<String, Value> = serde_json::from_value(json!({
            "sub": "user \"1\"\n", "aud": ["a", "b"], "exp": 2, "scope": {"x": 1}
        }))
        .unwrap();
        let full = SignatureFacts {
            jti: None,
            sub: claims.get("sub").map(SignatureFacts::bounded),
            aud: claims.get("aud").map(SignatureFacts::bounded),
            iat: Some(json!(1)),
            exp: claims.get("exp").map(SignatureFacts::bounded),
            claim_names: SignatureFacts::claim_names(claims.keys()),
            payload_sha256: "abc_-".into(),
            encrypted_to: None,
        };
        let encrypted = SignatureFacts {
            encrypted_to: Some(Kid::from_thumbprint(&[7; 32])),
            ..full.clone()
        };
        for event in [
            AuditEvent::Sign(full.clone()),
            AuditEvent::SignRaw(full),
            AuditEvent::Sign(encrypted),
        ] {
            assert_eq!(event.detail_text(), event.detail().to_string());
        }
    }
}
