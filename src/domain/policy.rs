//! A ring's signing policy and lifecycle timing, and the checks that bind every signature to them
//! (docs/design.md): the service never signs what the ring's policy does not allow.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::claim_rules::{self, ClaimRule};
use super::{CallerText, ErrorCode, RingName};

/// Claims the server sets itself; a request may not supply them.
const SERVER_CLAIMS: [&str; 4] = ["iat", "exp", "jti", "nbf"];

/// The `typ` of the tokens of the two profiles signet knows, and of every other ring's.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
pub const REFRESH_TOKEN_TYP: &str = "refresh+jwt";
const PLAIN_TYP: &str = "JWT";

/// What a ring's tokens are, by their `typ`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// `JWT` or a custom media type: the ring's other rules only.
    Plain,
    /// `at+jwt`: OAuth access tokens (RFC 9068), which must name `sub`, `aud` and `client_id`.
    Access,
    /// `refresh+jwt`: refresh tokens, each of a family named by its `sid` (`/refresh`).
    Refresh,
}

/// The claim a ring sets to the issuing client's id on every token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallerClaim {
    ClientId,
    Azp,
}

impl CallerClaim {
    pub fn as_str(self) -> &'static str {
        match self {
            CallerClaim::ClientId => "client_id",
            CallerClaim::Azp => "azp",
        }
    }
}

/// A `typ` as RFC 7515 §4.1.9 compares it: case-insensitive, `application/` optional.
pub fn media_type(typ: &str) -> String {
    let typ = typ.to_ascii_lowercase();
    match typ.strip_prefix("application/") {
        Some(rest) if !rest.contains('/') => rest.to_owned(),
        _ => typ,
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The `iss` of every token; a request naming another issuer is refused.
    #[schema(min_length = 1, max_length = 256)]
    pub issuer: String,
    /// Allowed `aud` values. When non-empty, every token must name at least one of them.
    #[serde(default)]
    #[schema(max_items = 64)]
    pub audiences: Vec<String>,
    /// The longest lifetime a token may have (`exp - iat`). Default: 900, or 604,800 (7 days)
    /// for a ring of refresh tokens.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2_678_400)]
    pub max_ttl_seconds: Option<u32>,
    #[serde(default)]
    #[schema(max_items = 64)]
    pub required_claims: Vec<String>,
    #[serde(default)]
    #[schema(max_items = 64)]
    pub forbidden_claims: Vec<String>,
    /// The largest compact JWS this ring will produce, in bytes.
    #[serde(default = "default_max_token_bytes")]
    #[schema(minimum = 256, maximum = 65_536)]
    pub max_token_bytes: u32,
    /// The `typ` and `cty` values a header built by an issuer (`/sign-raw`) may carry.
    #[serde(default = "default_header_types")]
    #[schema(max_items = 16)]
    pub header_types: Vec<String>,
    /// The `typ` of every token the ring signs: `JWT`, `at+jwt` (OAuth access tokens, RFC 9068,
    /// which must name `sub`, `aud` and `client_id`), `refresh+jwt` (refresh tokens, each of a
    /// family: `POST /v1/rings/{ring}/refresh`), or another media type.
    #[serde(default = "default_typ")]
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9.+_/-]{0,63}$")]
    pub typ: String,
    /// Set this claim to the issuing client's id on every token (a request may not supply it).
    #[serde(default)]
    pub caller_claim: Option<CallerClaim>,
    /// Rules for the values of claims, by claim name (checked when the claim is present).
    #[serde(default)]
    pub claim_rules: BTreeMap<String, ClaimRule>,
    /// Every token must carry a proof-of-possession key's thumbprint, `cnf.jkt` (RFC 7800,
    /// RFC 9449).
    #[serde(default)]
    pub require_cnf_jkt: bool,
    /// The recipients the ring's tokens may be encrypted to, each nested in a JWE (`/sign` with
    /// `encrypt_to`); empty: none.
    #[serde(default)]
    #[schema(max_items = 16)]
    pub encrypt_to: Vec<EncryptionRecipient>,
}

/// A recipient a ring's tokens may be encrypted to: an external key by its thumbprint, or one of
/// signet's encryption rings (whichever key is its current one). Exactly one of the two.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EncryptionRecipient {
    /// The RFC 7638 thumbprint (SHA-256, base64url) of the recipient's public JWK.
    #[schema(pattern = "^[A-Za-z0-9_-]{43}$")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    /// An encryption ring of this signet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring: Option<RingName>,
}

/// The most recipients a ring may encrypt to.
const MAX_RECIPIENTS: usize = 16;

fn default_typ() -> String {
    PLAIN_TYP.to_owned()
}

const DEFAULT_MAX_TTL: u32 = 900;
const DEFAULT_REFRESH_MAX_TTL: u32 = 7 * 24 * 3600;

fn default_max_token_bytes() -> u32 {
    4096
}

fn default_header_types() -> Vec<String> {
    vec!["JWT".to_owned()]
}

/// The longest `jti` a raw payload may carry.
const MAX_JTI_LEN: usize = 128;

/// Lifecycle timing (docs/design.md, Timing invariants), all in seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    /// The `Cache-Control: max-age` of the ring's JWKS.
    #[serde(default = "default_jwks_max_age")]
    #[schema(maximum = 86_400)]
    pub jwks_max_age_seconds: u32,
    /// How long a new key is published before it signs.
    #[serde(default = "default_publish_lead")]
    #[schema(maximum = 31_622_400)]
    pub publish_lead_seconds: u32,
    /// Slack for clock skew between replicas and verifiers.
    #[serde(default = "default_leeway")]
    #[schema(maximum = 3600)]
    pub leeway_seconds: u32,
    /// How long a retired (or revoked) key is kept in its backend before it is destroyed.
    #[serde(default = "default_retain_retired")]
    #[schema(maximum = 315_360_000)]
    pub retain_retired_seconds: u64,
}

fn default_jwks_max_age() -> u32 {
    300
}

fn default_publish_lead() -> u32 {
    600
}

fn default_leeway() -> u32 {
    60
}

fn default_retain_retired() -> u64 {
    90 * 24 * 3600
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            jwks_max_age_seconds: default_jwks_max_age(),
            publish_lead_seconds: default_publish_lead(),
            leeway_seconds: default_leeway(),
            retain_retired_seconds: default_retain_retired(),
        }
    }
}

/// A rule a request broke; `code` is stable and names the rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub code: ErrorCode,
    pub message: String,
}

fn violation(code: ErrorCode, message: impl Into<String>) -> Violation {
    Violation {
        code,
        message: message.into(),
    }
}

const MAX_TTL_CEILING: u32 = 31 * 24 * 3600;
/// The largest token a ring may be set to produce (64 KiB, the largest request body).
const MAX_TOKEN_BYTES_CEILING: u32 = 64 * 1024;
/// The longest issuer, audience or claim name a policy may hold, and the most entries per list.
const MAX_NAME_BYTES: usize = 256;
const MAX_LIST_LEN: usize = 64;
/// Every duration is bounded, so that no sum of times can overflow.
const MAX_RETAIN_RETIRED_SECONDS: u64 = 10 * 365 * 24 * 3600;
const MAX_PUBLISH_LEAD_SECONDS: u32 = 366 * 24 * 3600;

impl Policy {
    /// The policy of a ring issuing as `issuer`, everything else at its default.
    pub fn new(issuer: String) -> Policy {
        Policy {
            issuer,
            audiences: vec![],
            max_ttl_seconds: None,
            required_claims: vec![],
            forbidden_claims: vec![],
            max_token_bytes: default_max_token_bytes(),
            header_types: default_header_types(),
            typ: default_typ(),
            caller_claim: None,
            claim_rules: BTreeMap::new(),
            require_cnf_jkt: false,
            encrypt_to: vec![],
        }
    }

    /// Refuses signing rules in an encryption ring's policy. Such a ring receives tokens: only its
    /// `issuer` (for people), `max_ttl_seconds` (how long a token encrypted to it may live, which
    /// sets how long a replaced key keeps decrypting) and `max_token_bytes` (the largest JWE it
    /// takes) apply.
    pub fn validate_for_encryption(&self) -> Result<(), String> {
        let receiving = Policy {
            max_ttl_seconds: self.max_ttl_seconds,
            max_token_bytes: self.max_token_bytes,
            ..Policy::new(self.issuer.clone())
        };
        if *self == receiving {
            Ok(())
        } else {
            Err("an encryption ring's policy takes only issuer, max_ttl_seconds and max_token_bytes: the other members are rules for signing".into())
        }
    }

    /// What the ring's tokens are, by their `typ`.
    pub fn profile(&self) -> Profile {
        match media_type(&self.typ).as_str() {
            ACCESS_TOKEN_TYP => Profile::Access,
            REFRESH_TOKEN_TYP => Profile::Refresh,
            _ => Profile::Plain,
        }
    }

    /// The longest lifetime a token may have, in seconds.
    pub fn max_ttl(&self) -> u32 {
        self.max_ttl_seconds.unwrap_or(match self.profile() {
            Profile::Refresh => DEFAULT_REFRESH_MAX_TTL,
            Profile::Plain | Profile::Access => DEFAULT_MAX_TTL,
        })
    }

    /// Checks the policy itself, when a ring is created.
    pub fn validate(&self) -> Result<(), String> {
        if self.issuer.trim().is_empty() {
            return Err("policy.issuer must not be empty".into());
        }
        // Bounded before any of them is named in a message or a record.
        let lists = [
            &self.audiences,
            &self.required_claims,
            &self.forbidden_claims,
        ];
        if self.issuer.len() > MAX_NAME_BYTES
            || lists.iter().any(|list| {
                list.len() > MAX_LIST_LEN || list.iter().any(|v| v.len() > MAX_NAME_BYTES)
            })
        {
            return Err(format!(
                "policy.issuer, and each of up to {MAX_LIST_LEN} audiences, required_claims and forbidden_claims, are at most {MAX_NAME_BYTES} bytes"
            ));
        }
        if self
            .max_ttl_seconds
            .is_some_and(|ttl| ttl == 0 || ttl > MAX_TTL_CEILING)
        {
            return Err(format!(
                "policy.max_ttl_seconds must be between 1 and {MAX_TTL_CEILING}"
            ));
        }
        if !(256..=MAX_TOKEN_BYTES_CEILING).contains(&self.max_token_bytes) {
            return Err(format!(
                "policy.max_token_bytes must be between 256 and {MAX_TOKEN_BYTES_CEILING}"
            ));
        }
        if self.header_types.len() > 16
            || self
                .header_types
                .iter()
                .any(|t| !(1..=64).contains(&t.len()) || !t.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(
                "policy.header_types holds up to 16 values of 1-64 printable ASCII characters"
                    .into(),
            );
        }
        if let Some(c) = self
            .required_claims
            .iter()
            .find(|c| self.forbidden_claims.contains(c))
        {
            return Err(format!("claim {c:?} is both required and forbidden"));
        }
        if let Some(c) = self
            .forbidden_claims
            .iter()
            .find(|c| ["iss", "iat", "exp", "jti"].contains(&c.as_str()))
        {
            return Err(format!(
                "claim {c:?} is set on every token and cannot be forbidden"
            ));
        }
        self.validate_profile()
    }

    /// Checks `typ`, `caller_claim` and `claim_rules`.
    fn validate_profile(&self) -> Result<(), String> {
        let typ = self.typ.as_bytes();
        if !(1..=64).contains(&typ.len())
            || !typ[0].is_ascii_alphanumeric()
            || !typ
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b".+_/-".contains(b))
        {
            return Err(
                "policy.typ is 1-64 characters of A-Z, a-z, 0-9, '.', '+', '_', '/' and '-', starting with a letter or digit"
                    .into(),
            );
        }
        if self.profile() == Profile::Access && self.audiences.is_empty() {
            return Err("access tokens (typ at+jwt) name an aud: give policy.audiences".into());
        }
        let required = self.profile_claims();
        if let Some(c) = required
            .iter()
            .find(|c| self.forbidden_claims.iter().any(|f| f == *c))
        {
            return Err(format!(
                "claim {c:?} is required by policy.typ {:?} and cannot be forbidden",
                self.typ
            ));
        }
        if let Some(caller) = self.caller_claim {
            if self.forbidden_claims.iter().any(|f| f == caller.as_str()) {
                return Err(format!(
                    "claim {:?} is set by policy.caller_claim and cannot be forbidden",
                    caller.as_str()
                ));
            }
        }
        if self.require_cnf_jkt && self.forbidden_claims.iter().any(|f| f == "cnf") {
            return Err(
                "claim \"cnf\" is required by policy.require_cnf_jkt and cannot be forbidden"
                    .into(),
            );
        }
        if self.claim_rules.len() > claim_rules::MAX_RULES {
            return Err(format!(
                "policy.claim_rules holds at most {} rules",
                claim_rules::MAX_RULES
            ));
        }
        for (claim, rule) in &self.claim_rules {
            if claim.is_empty() || claim.len() > MAX_NAME_BYTES {
                return Err(format!(
                    "policy.claim_rules names claims of 1-{MAX_NAME_BYTES} bytes"
                ));
            }
            if SERVER_CLAIMS.contains(&claim.as_str()) || claim == "iss" {
                return Err(format!(
                    "claim {claim:?} is set by the server and takes no rule"
                ));
            }
            rule.validate(claim)?;
        }
        self.validate_recipients()
    }

    /// Checks `encrypt_to`.
    fn validate_recipients(&self) -> Result<(), String> {
        let named = |r: &EncryptionRecipient| match (&r.jkt, &r.ring) {
            (Some(jkt), None) => is_thumbprint(jkt),
            (None, Some(_)) => true,
            _ => false,
        };
        if self.encrypt_to.len() > MAX_RECIPIENTS || !self.encrypt_to.iter().all(named) {
            return Err(format!(
                "policy.encrypt_to names up to {MAX_RECIPIENTS} recipients, each by jkt, the base64url SHA-256 thumbprint of its JWK (43 characters), or by ring, an encryption ring"
            ));
        }
        if self.profile() == Profile::Refresh && !self.encrypt_to.is_empty() {
            return Err(
                "a refresh token comes back to /refresh as it was signed: policy.encrypt_to is for rings of other tokens"
                    .into(),
            );
        }
        Ok(())
    }

    /// Refuses to encrypt a token to a recipient the policy does not name, by the thumbprint of
    /// its JWK.
    pub fn check_recipient(&self, jkt: &str) -> Result<(), Violation> {
        if self
            .encrypt_to
            .iter()
            .any(|r| r.jkt.as_deref() == Some(jkt))
        {
            Ok(())
        } else {
            Err(violation(
                ErrorCode::RecipientNotAllowed,
                format!(
                    "this ring's policy.encrypt_to does not name the key with thumbprint {jkt}"
                ),
            ))
        }
    }

    /// Refuses to encrypt a token to an encryption ring the policy does not name.
    pub fn check_ring_recipient(&self, ring: &RingName) -> Result<(), Violation> {
        if self
            .encrypt_to
            .iter()
            .any(|r| r.ring.as_ref() == Some(ring))
        {
            Ok(())
        } else {
            Err(violation(
                ErrorCode::RecipientNotAllowed,
                format!("this ring's policy.encrypt_to does not name the ring {ring}"),
            ))
        }
    }

    /// The claims the ring's profile requires besides those the server sets.
    fn profile_claims(&self) -> &'static [&'static str] {
        match self.profile() {
            Profile::Plain => &[],
            Profile::Access => &["sub", "aud", "client_id"],
            Profile::Refresh => &["sub", "sid"],
        }
    }

    /// The claims of a token to sign now: the request's claims checked against the policy, plus
    /// the ones the server sets. `now` and the result's times are seconds since the epoch.
    /// `caller` is the issuing client's id, set as `caller_claim` when the ring names one.
    pub fn token_claims(
        &self,
        mut claims: Map<String, Value>,
        ttl_seconds: Option<u32>,
        not_before: bool,
        now: i64,
        jti: String,
        caller: &str,
    ) -> Result<Map<String, Value>, Violation> {
        if let Some(c) = SERVER_CLAIMS.iter().find(|c| claims.contains_key(**c)) {
            return Err(violation(
                ErrorCode::ReservedClaim,
                format!("claim {c:?} is set by the server and may not be supplied"),
            ));
        }
        if let Some(c) = self.caller_claim {
            if claims
                .insert(c.as_str().to_owned(), caller.into())
                .is_some()
            {
                return Err(violation(
                    ErrorCode::ReservedClaim,
                    format!(
                        "claim {:?} is set by the server to the issuing client's id",
                        c.as_str()
                    ),
                ));
            }
        }
        let max_ttl = self.max_ttl();
        let ttl = ttl_seconds.unwrap_or(match self.profile() {
            Profile::Refresh => max_ttl,
            Profile::Plain | Profile::Access => max_ttl.min(300),
        });
        if ttl == 0 {
            return Err(violation(
                ErrorCode::InvalidTtl,
                "ttl_seconds must be at least 1",
            ));
        }
        if ttl > max_ttl {
            return Err(violation(
                ErrorCode::TtlExceedsMax,
                format!("ttl_seconds {ttl} exceeds this ring's max_ttl_seconds {max_ttl}"),
            ));
        }
        match claims.get("iss") {
            None => {
                claims.insert("iss".into(), self.issuer.clone().into());
            }
            Some(Value::String(iss)) if *iss == self.issuer => {}
            Some(_) => {
                return Err(violation(
                    ErrorCode::IssuerMismatch,
                    format!("this ring issues tokens only with iss {:?}", self.issuer),
                ))
            }
        }
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + i64::from(ttl)).into());
        if not_before {
            claims.insert("nbf".into(), now.into());
        }
        claims.insert("jti".into(), jti.into());
        self.check_claims(&claims)?;
        Ok(claims)
    }

    /// Checks the `typ` and `cty` of an issuer-built header against `header_types`; a ring
    /// whose `typ` is not `JWT` takes only headers of its own `typ`.
    pub fn check_header_types(&self, header: &Map<String, Value>) -> Result<(), Violation> {
        if self.typ != PLAIN_TYP {
            let typ = header.get("typ").and_then(Value::as_str);
            if typ.map(media_type) != Some(media_type(&self.typ)) {
                return Err(violation(
                    ErrorCode::HeaderMismatch,
                    format!("the header's typ must be this ring's typ {:?}", self.typ),
                ));
            }
        }
        for member in ["typ", "cty"] {
            if member == "typ" && self.typ != PLAIN_TYP {
                continue;
            }
            if let Some(value) = header.get(member) {
                if !value
                    .as_str()
                    .is_some_and(|v| self.header_types.iter().any(|t| t == v))
                {
                    return Err(violation(
                        ErrorCode::HeaderMismatch,
                        format!(
                            "the header's {member} must be one of this ring's header_types {:?}",
                            self.header_types
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks an issuer-built payload for raw signing: the same rules, with `exp` required and
    /// within `max_ttl_seconds` of `now` (seconds since the epoch), `iat` required and within
    /// `leeway` seconds of `now`, and a `jti` of 1-128 printable ASCII characters (its reuse is
    /// refused by the store).
    /// When the ring names a `caller_claim`, the payload must carry it with `caller`, the
    /// issuing client's id.
    pub fn check_raw_claims(
        &self,
        claims: &Map<String, Value>,
        now: i64,
        leeway: u32,
        caller: &str,
    ) -> Result<(), Violation> {
        if let Some(c) = self.caller_claim {
            if claims.get(c.as_str()).and_then(Value::as_str) != Some(caller) {
                return Err(violation(
                    ErrorCode::InvalidClaim,
                    format!(
                        "the payload's {} must be the issuing client's id",
                        c.as_str()
                    ),
                ));
            }
        }
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(violation(
                ErrorCode::IssuerMismatch,
                format!("the payload's iss must be {:?}", self.issuer),
            ));
        }
        let exp = claims.get("exp").and_then(Value::as_i64).ok_or_else(|| {
            violation(
                ErrorCode::MissingRequiredClaim,
                "the payload must carry a numeric exp",
            )
        })?;
        if exp <= now {
            return Err(violation(
                ErrorCode::InvalidTtl,
                "the payload's exp is not in the future",
            ));
        }
        if exp - now > i64::from(self.max_ttl()) {
            return Err(violation(
                ErrorCode::TtlExceedsMax,
                format!(
                    "exp is more than max_ttl_seconds ({}) from now",
                    self.max_ttl()
                ),
            ));
        }
        let iat = claims.get("iat").and_then(Value::as_i64).ok_or_else(|| {
            violation(
                ErrorCode::MissingRequiredClaim,
                "the payload must carry a numeric iat",
            )
        })?;
        if iat.abs_diff(now) > u64::from(leeway) {
            return Err(violation(
                ErrorCode::InvalidClaim,
                format!("iat must be within leeway_seconds ({leeway}) of now"),
            ));
        }
        match claims.get("jti") {
            None | Some(Value::Null) => {
                return Err(violation(
                    ErrorCode::MissingRequiredClaim,
                    "the payload must carry a jti",
                ))
            }
            Some(Value::String(jti))
                if (1..=MAX_JTI_LEN).contains(&jti.len())
                    && jti.bytes().all(|b| b.is_ascii_graphic()) => {}
            Some(_) => {
                return Err(violation(
                    ErrorCode::InvalidClaim,
                    format!("jti must be 1-{MAX_JTI_LEN} printable ASCII characters"),
                ))
            }
        }
        self.check_claims(claims)
    }

    fn check_claims(&self, claims: &Map<String, Value>) -> Result<(), Violation> {
        let audiences: Vec<&str> = match claims.get("aud") {
            None => vec![],
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|a| {
                    a.as_str()
                        .ok_or_else(|| violation(ErrorCode::InvalidClaim, "aud must hold strings"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(violation(
                    ErrorCode::InvalidClaim,
                    "aud must be a string or a non-empty array of strings",
                ))
            }
        };
        if !self.audiences.is_empty() && audiences.is_empty() {
            return Err(violation(
                ErrorCode::AudienceRequired,
                format!(
                    "tokens of this ring must name an aud among {:?}",
                    self.audiences
                ),
            ));
        }
        if let Some(a) = audiences
            .iter()
            .find(|a| !self.audiences.iter().any(|allowed| allowed == *a))
        {
            return Err(violation(
                ErrorCode::AudienceNotAllowed,
                format!(
                    "aud {:?} is not among this ring's audiences {:?}",
                    CallerText::echoed(a).as_str(),
                    self.audiences
                ),
            ));
        }
        if let Some(c) = self
            .required_claims
            .iter()
            .find(|c| claims.get(c.as_str()).is_none_or(Value::is_null))
        {
            return Err(violation(
                ErrorCode::MissingRequiredClaim,
                format!("claim {c:?} is required by this ring (and may not be null)"),
            ));
        }
        if let Some(c) = self
            .forbidden_claims
            .iter()
            .find(|c| claims.contains_key(c.as_str()))
        {
            return Err(violation(
                ErrorCode::ForbiddenClaim,
                format!("claim {c:?} is forbidden by this ring"),
            ));
        }
        if let Some(c) = self
            .profile_claims()
            .iter()
            .find(|c| claims.get(**c).is_none_or(Value::is_null))
        {
            return Err(violation(
                ErrorCode::MissingRequiredClaim,
                format!("claim {c:?} is required of tokens of typ {:?}", self.typ),
            ));
        }
        check_confirmation(claims.get("cnf"), self.require_cnf_jkt)?;
        claim_rules::check_rules(&self.claim_rules, claims)
    }

    /// Refuses a token that would be longer than `max_token_bytes`.
    pub fn check_size(&self, token_len: usize) -> Result<(), Violation> {
        if token_len > self.max_token_bytes as usize {
            return Err(violation(
                ErrorCode::TokenTooLarge,
                format!(
                    "the token would be {token_len} bytes; this ring's max_token_bytes is {}",
                    self.max_token_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// The length of a base64url SHA-256 thumbprint.
const JKT_LEN: usize = 43;

/// Checks `cnf`: when present, an object whose `jkt` (if any) is a base64url SHA-256 thumbprint;
/// `required`: `cnf.jkt` must be there.
fn check_confirmation(cnf: Option<&Value>, required: bool) -> Result<(), Violation> {
    let jkt = match cnf {
        None => None,
        Some(Value::Object(cnf)) => cnf.get("jkt"),
        Some(_) => {
            return Err(violation(
                ErrorCode::InvalidClaim,
                "cnf must be an object (RFC 7800)",
            ))
        }
    };
    match jkt {
        None if required => Err(violation(
            ErrorCode::MissingRequiredClaim,
            "this ring requires cnf.jkt, the thumbprint of the key the token is bound to",
        )),
        None => Ok(()),
        Some(Value::String(jkt)) if is_thumbprint(jkt) => Ok(()),
        Some(_) => Err(violation(
            ErrorCode::InvalidClaim,
            "cnf.jkt must be a base64url SHA-256 thumbprint (43 characters)",
        )),
    }
}

/// Whether `jkt` is the unpadded base64url encoding of 32 bytes: 43 characters of the alphabet,
/// the last one carrying no bits beyond the 256th.
fn is_thumbprint(jkt: &str) -> bool {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let index = |b: &u8| ALPHABET.iter().position(|a| a == b);
    jkt.len() == JKT_LEN
        && jkt.as_bytes().iter().all(|b| index(b).is_some())
        && jkt
            .as_bytes()
            .last()
            .and_then(index)
            .is_some_and(|i| i % 4 == 0)
}

impl Timing {
    /// Checks the invariants of docs/design.md (Timing invariants) that timing alone decides.
    pub fn validate(&self) -> Result<(), String> {
        if self.jwks_max_age_seconds > 86_400 {
            return Err("timing.jwks_max_age_seconds must be at most 86400".into());
        }
        if self.leeway_seconds > 3600 {
            return Err("timing.leeway_seconds must be at most 3600".into());
        }
        if self.retain_retired_seconds > MAX_RETAIN_RETIRED_SECONDS {
            return Err(format!(
                "timing.retain_retired_seconds must be at most {MAX_RETAIN_RETIRED_SECONDS} (10 years)"
            ));
        }
        if self.publish_lead_seconds > MAX_PUBLISH_LEAD_SECONDS {
            return Err(format!(
                "timing.publish_lead_seconds must be at most {MAX_PUBLISH_LEAD_SECONDS} (a year)"
            ));
        }
        // Every replica reloads its view of the keys once a tick: a verifier's cached JWKS can
        // be that much older than the newest key.
        let refresh = u32::try_from(super::TICK.as_secs()).unwrap_or(u32::MAX);
        let needed = self.jwks_max_age_seconds + self.leeway_seconds + refresh;
        if self.publish_lead_seconds < needed {
            return Err(format!(
                "timing.publish_lead_seconds ({}) must be at least jwks_max_age_seconds + leeway_seconds + {refresh} \
                 (the replicas' refresh interval) = {needed}, so that every verifier's cached JWKS holds a key before it signs",
                self.publish_lead_seconds
            ));
        }
        Ok(())
    }

    /// How long a retired or revoked key is kept in its backend, in milliseconds (a stored
    /// value beyond the bound counts as the bound: never less than asked for).
    pub fn retain_retired_ms(&self) -> i64 {
        let seconds = self.retain_retired_seconds.min(MAX_RETAIN_RETIRED_SECONDS);
        1000 * i64::try_from(seconds).expect("bounded")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn policy() -> Policy {
        Policy {
            audiences: vec!["api".into(), "web".into()],
            max_ttl_seconds: Some(900),
            required_claims: vec!["sub".into()],
            forbidden_claims: vec!["password".into()],
            max_token_bytes: 1024,
            ..Policy::new("https://issuer.example".into())
        }
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn code(result: Result<Map<String, Value>, Violation>) -> &'static str {
        result.unwrap_err().code.as_str()
    }

    #[test]
    fn names_in_a_policy_are_bounded() {
        let mut p = policy();
        p.audiences.push("a".repeat(MAX_NAME_BYTES + 1));
        assert!(p.validate().is_err());
        let mut p = policy();
        p.forbidden_claims = (0..=MAX_LIST_LEN).map(|i| format!("c{i}")).collect();
        assert!(p.validate().is_err());
        assert!(policy().validate().is_ok());
    }

    #[test]
    fn durations_are_bounded_so_no_time_overflows() {
        let mut timing = Timing {
            retain_retired_seconds: u64::MAX / 1000 + 1,
            ..Timing::default()
        };
        assert!(timing.validate().is_err());
        assert!(
            timing.retain_retired_ms() > 0,
            "a stored value beyond the bound is the bound"
        );
        timing.retain_retired_seconds = MAX_RETAIN_RETIRED_SECONDS;
        assert!(timing.validate().is_ok());
        timing.publish_lead_seconds = u32::MAX;
        assert!(timing.validate().is_err());
    }

    #[test]
    fn the_server_sets_issuer_times_and_jti() {
        let out = policy()
            .token_claims(
                claims(json!({"sub": "u1", "aud": "api"})),
                Some(60),
                true,
                1000,
                "j1".into(),
                "c1",
            )
            .unwrap();
        assert_eq!(out["iss"], "https://issuer.example");
        assert_eq!(out["iat"], 1000);
        assert_eq!(out["nbf"], 1000);
        assert_eq!(out["exp"], 1060);
        assert_eq!(out["jti"], "j1");
    }

    #[test]
    fn each_rule_is_refused_with_its_own_code() {
        let p = policy();
        let sign = |c: Value, ttl| p.token_claims(claims(c), ttl, false, 0, "j".into(), "c1");
        assert_eq!(
            code(sign(json!({"sub": "u", "aud": "api", "exp": 5}), None)),
            "reserved_claim"
        );
        assert_eq!(
            code(sign(json!({"sub": "u", "aud": "api", "iss": "evil"}), None)),
            "issuer_mismatch"
        );
        assert_eq!(code(sign(json!({"sub": "u"}), None)), "audience_required");
        assert_eq!(
            code(sign(json!({"sub": "u", "aud": ["api", "other"]}), None)),
            "audience_not_allowed"
        );
        assert_eq!(
            code(sign(json!({"sub": "u", "aud": 7}), None)),
            "invalid_claim"
        );
        assert_eq!(
            code(sign(json!({"aud": "api"}), None)),
            "missing_required_claim"
        );
        assert_eq!(
            code(sign(
                json!({"sub": "u", "aud": "api", "password": "x"}),
                None
            )),
            "forbidden_claim"
        );
        assert_eq!(
            code(sign(json!({"sub": "u", "aud": "api"}), Some(901))),
            "ttl_exceeds_max"
        );
        assert_eq!(
            code(sign(json!({"sub": "u", "aud": "api"}), Some(0))),
            "invalid_ttl"
        );
        assert!(sign(
            json!({"sub": "u", "aud": ["web"], "iss": "https://issuer.example"}),
            Some(900)
        )
        .is_ok());
        assert_eq!(
            p.check_size(1025).unwrap_err().code,
            ErrorCode::TokenTooLarge
        );
        assert!(p.check_size(1024).is_ok());
    }

    #[test]
    fn raw_payloads_need_a_bounded_exp_and_the_ring_issuer() {
        let p = policy();
        let ok = claims(
            json!({"iss": "https://issuer.example", "sub": "u", "aud": "api", "exp": 1900,
                          "iat": 1000, "jti": "j-1"}),
        );
        assert!(p.check_raw_claims(&ok, 1000, 5, "c1").is_ok());
        for (member, value, code) in [
            ("iat", json!(1006), "invalid_claim"),
            ("iat", json!("1000"), "missing_required_claim"),
            ("jti", json!(null), "missing_required_claim"),
            ("jti", json!(""), "invalid_claim"),
            ("jti", json!("a b"), "invalid_claim"),
            ("jti", json!("x".repeat(129)), "invalid_claim"),
        ] {
            let mut bad = ok.clone();
            bad.insert(member.into(), value);
            assert_eq!(
                p.check_raw_claims(&bad, 1000, 5, "c1")
                    .unwrap_err()
                    .code
                    .as_str(),
                code,
                "{member}"
            );
        }
        let mut far = ok.clone();
        far.insert("exp".into(), json!(1901));
        assert_eq!(
            p.check_raw_claims(&far, 1000, 5, "c1").unwrap_err().code,
            ErrorCode::TtlExceedsMax
        );
        let mut no_exp = ok.clone();
        no_exp.remove("exp");
        assert_eq!(
            p.check_raw_claims(&no_exp, 1000, 5, "c1").unwrap_err().code,
            ErrorCode::MissingRequiredClaim
        );
        let mut other_iss = ok.clone();
        other_iss.remove("iss");
        assert_eq!(
            p.check_raw_claims(&other_iss, 1000, 5, "c1")
                .unwrap_err()
                .code,
            ErrorCode::IssuerMismatch
        );
    }

    #[test]
    fn timing_refuses_a_publish_lead_shorter_than_the_jwks_cache() {
        let mut t = Timing::default();
        assert!(t.validate().is_ok());
        t.publish_lead_seconds = 361;
        assert!(t.validate().is_ok());
        t.publish_lead_seconds = 360;
        let err = t.validate().unwrap_err();
        assert!(
            err.contains(
                "jwks_max_age_seconds + leeway_seconds + 1 (the replicas' refresh interval) = 361"
            ),
            "{err}"
        );
    }

    fn profiled(value: Value) -> Policy {
        let mut p: Policy = serde_json::from_value(value).unwrap();
        p.issuer = "https://issuer.example".into();
        p.validate().unwrap();
        p
    }

    #[test]
    fn access_tokens_need_sub_aud_and_client_id() {
        let p = profiled(json!({"issuer": "x", "typ": "application/AT+JWT", "audiences": ["api"]}));
        assert_eq!(p.profile(), Profile::Access);
        assert_eq!(p.max_ttl(), 900);
        let sign = |c: Value| p.token_claims(claims(c), None, false, 0, "j".into(), "c1");
        assert!(sign(json!({"sub": "u", "aud": "api", "client_id": "app"})).is_ok());
        for (missing, code) in [
            ("sub", ErrorCode::MissingRequiredClaim),
            ("client_id", ErrorCode::MissingRequiredClaim),
            ("aud", ErrorCode::AudienceRequired),
        ] {
            let mut c = json!({"sub": "u", "aud": "api", "client_id": "app"});
            c.as_object_mut().unwrap().remove(missing);
            let err = sign(c).unwrap_err();
            assert_eq!(err.code, code, "{missing}");
        }
        let header = |typ: &str| claims(json!({"alg": "ES256", "typ": typ}));
        assert!(p.check_header_types(&header("at+jwt")).is_ok());
        assert!(p.check_header_types(&header("JWT")).is_err());
        assert!(p
            .check_header_types(&claims(json!({"alg": "ES256"})))
            .is_err());
    }

    #[test]
    fn the_caller_claim_names_the_issuing_client() {
        let p = profiled(
            json!({"issuer": "x", "typ": "at+jwt", "caller_claim": "client_id", "audiences": ["a"]}),
        );
        let out = p
            .token_claims(
                claims(json!({"sub": "u", "aud": "a"})),
                None,
                false,
                0,
                "j".into(),
                "c1",
            )
            .unwrap();
        assert_eq!(out["client_id"], "c1");
        let supplied = p.token_claims(
            claims(json!({"sub": "u", "aud": "a", "client_id": "other"})),
            None,
            false,
            0,
            "j".into(),
            "c1",
        );
        assert_eq!(code(supplied), "reserved_claim");
        let raw = claims(
            json!({"iss": "https://issuer.example", "sub": "u", "aud": "a",
            "exp": 100, "iat": 0, "jti": "j", "client_id": "c1"}),
        );
        assert!(p.check_raw_claims(&raw, 0, 5, "c1").is_ok());
        assert_eq!(
            p.check_raw_claims(&raw, 0, 5, "c2").unwrap_err().code,
            ErrorCode::InvalidClaim
        );
    }

    #[test]
    fn refresh_rings_live_a_week_and_need_a_family() {
        let p = profiled(json!({"issuer": "x", "typ": "refresh+jwt"}));
        assert_eq!(p.profile(), Profile::Refresh);
        assert_eq!(p.max_ttl(), 7 * 24 * 3600);
        let out = p
            .token_claims(
                claims(json!({"sub": "u", "sid": "f"})),
                None,
                false,
                0,
                "j".into(),
                "c",
            )
            .unwrap();
        assert_eq!(
            out["exp"],
            7 * 24 * 3600,
            "a refresh token lives its ring's longest"
        );
        assert_eq!(
            code(p.token_claims(claims(json!({"sub": "u"})), None, false, 0, "j".into(), "c")),
            "missing_required_claim"
        );
    }

    #[test]
    fn a_ring_may_require_a_key_thumbprint() {
        let p = profiled(json!({"issuer": "x", "require_cnf_jkt": true}));
        let jkt = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
        let sign = |c: Value| p.token_claims(claims(c), None, false, 0, "j".into(), "c");
        assert!(sign(json!({"cnf": {"jkt": jkt}})).is_ok());
        assert_eq!(code(sign(json!({}))), "missing_required_claim");
        assert_eq!(
            code(sign(json!({"cnf": {"jwk": {}}}))),
            "missing_required_claim"
        );
        for bad in [
            json!("x"),
            json!({"jkt": &jkt[1..]}),
            json!({"jkt": format!("{}=", &jkt[1..])}),
            json!({"jkt": format!("{}t", &jkt[..42])}),
            json!({"jkt": 7}),
        ] {
            assert_eq!(
                code(sign(json!({"cnf": bad.clone()}))),
                "invalid_claim",
                "{bad}"
            );
        }
        let optional = Policy::new("x".into());
        let sign = |c: Value| optional.token_claims(claims(c), None, false, 0, "j".into(), "c");
        assert!(sign(json!({})).is_ok());
        assert_eq!(
            code(sign(json!({"cnf": {"jkt": "short"}}))),
            "invalid_claim"
        );
    }

    #[test]
    fn claim_rules_apply_to_built_and_raw_tokens() {
        let p = profiled(json!({"issuer": "x",
            "claim_rules": {"device_trust": {"type": "integer", "minimum": 0, "maximum": 100}}}));
        let sign = |c: Value| p.token_claims(claims(c), None, false, 0, "j".into(), "c");
        assert!(sign(json!({"device_trust": 100})).is_ok());
        assert_eq!(
            code(sign(json!({"device_trust": 101}))),
            "claim_rule_violated"
        );
        let raw = claims(
            json!({"iss": "https://issuer.example", "exp": 100, "iat": 0, "jti": "j",
            "device_trust": -1}),
        );
        assert_eq!(
            p.check_raw_claims(&raw, 0, 5, "c").unwrap_err().code,
            ErrorCode::ClaimRuleViolated
        );
    }

    #[test]
    fn profiles_and_rules_are_checked_when_the_ring_is_made() {
        for bad in [
            json!({"typ": ""}),
            json!({"typ": "a b"}),
            json!({"typ": "at+jwt", "audiences": ["a"], "forbidden_claims": ["client_id"]}),
            json!({"typ": "at+jwt"}),
            json!({"caller_claim": "azp", "forbidden_claims": ["azp"]}),
            json!({"require_cnf_jkt": true, "forbidden_claims": ["cnf"]}),
            json!({"claim_rules": {"exp": {"type": "integer"}}}),
            json!({"claim_rules": {"x": {"type": "string", "minimum": 1}}}),
        ] {
            let mut body = bad.clone();
            body["issuer"] = json!("x");
            let p: Policy = serde_json::from_value(body).unwrap();
            assert!(p.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn rings_encrypt_only_to_the_recipients_their_policy_names() {
        let jkt = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
        let p = profiled(json!({"issuer": "x", "encrypt_to": [{"jkt": jkt}]}));
        assert!(p.validate().is_ok());
        assert!(p.check_recipient(jkt).is_ok());
        let other = "A".repeat(43);
        assert_eq!(
            p.check_recipient(&other).unwrap_err().code,
            ErrorCode::RecipientNotAllowed
        );
        assert_eq!(
            Policy::new("x".into())
                .check_recipient(jkt)
                .unwrap_err()
                .code,
            ErrorCode::RecipientNotAllowed
        );
        let many: Vec<Value> = (0..17).map(|_| json!({"jkt": jkt})).collect();
        for bad in [
            json!({"encrypt_to": [{"jkt": "short"}]}),
            json!({"encrypt_to": many}),
            json!({"typ": "refresh+jwt", "encrypt_to": [{"jkt": jkt}]}),
        ] {
            let mut body = bad.clone();
            body["issuer"] = json!("x");
            let p: Policy = serde_json::from_value(body).unwrap();
            assert!(p.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn policies_that_contradict_themselves_are_refused() {
        let mut p = policy();
        p.forbidden_claims.push("sub".into());
        assert!(p.validate().is_err());
        let mut p = policy();
        p.forbidden_claims = vec!["exp".into()];
        assert!(p.validate().is_err());
        let mut p = policy();
        p.max_ttl_seconds = Some(0);
        assert!(p.validate().is_err());
    }
}
