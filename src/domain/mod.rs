//! The vocabulary of signet: rings and their policy and timing, keys and their states, schedule
//! rules, clients and roles, backend kinds, audit events. Everything else depends on this module; it depends
//! on nothing of signet's. Values enter through parsers that refuse what is invalid, so code
//! that holds one of these types never needs to check it again.
//!
//! See docs/design.md for the layers and which may use which.

mod audit;
mod backend;
mod bound_claims;
mod claim_rules;
mod clients;
mod encryption;
mod errors;
mod keys;
mod limits;
mod metadata;
mod names;
mod policy;
mod rings;
mod schedule;
mod text;
mod time;
pub mod windows;

use std::time::Duration;

pub use audit::{
    Action, AuditEvent, AuditQuery, AuditRecord, RotationCause, SignatureFacts,
    CHECKPOINT_EVERY_MS, CHECKPOINT_EVERY_RECORDS,
};
pub use backend::BackendKind;
pub use bound_claims::BoundClaims;
pub use claim_rules::{ClaimRule, ClaimType};
pub use clients::{check_client_name, client_expiry, ClientRecord, Grace, Role};
pub use encryption::{ContentEncryption, KeyManagement};
pub use errors::ErrorCode;
pub use keys::{KeyRecord, KeyState};
pub use limits::RateLimit;
pub use metadata::ClientMetadata;
pub use names::{Kid, RingName, AUDIT_RING};
pub use policy::{
    media_type, CallerClaim, Policy, Profile, Timing, Violation, ACCESS_TOKEN_TYP,
    REFRESH_TOKEN_TYP,
};
pub use rings::{KeyAlgorithm, RingRecord};
pub use schedule::{DayOfMonth, Monthly, Rule, ScheduleRecord, TimeOfDay, MIN_PERIOD_SECONDS};
pub use text::CallerText;
pub use time::UnixMillis;

/// How often each replica advances key lifecycles and refreshes its view of the store. The
/// timing rules count on it: a verifier's cached JWKS can be this much older than the newest key.
pub const TICK: Duration = Duration::from_millis(windows::REFRESH_MS.unsigned_abs());
