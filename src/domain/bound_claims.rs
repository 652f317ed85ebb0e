//! Claims bound to an issuer client: every token it signs carries each with exactly its value
//! (docs/design.md, Access). A request that leaves one out gets it; one that gives another value
//! is refused (`bound_claim_mismatch`).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::{CallerText, ErrorCode, Violation};

/// At most this many claims are bound to one client.
const MAX_BOUND_CLAIMS: usize = 16;
/// The longest claim name, and the longest string value.
const MAX_BYTES: usize = 256;
/// Claims the server sets on every token (`sid`: a refresh token's family), never bound.
const SERVER_SET: [&str; 6] = ["iss", "exp", "nbf", "iat", "jti", "sid"];

/// Claim names and the scalar (string, number or boolean) each must have.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct BoundClaims(BTreeMap<String, Value>);

fn invalid(message: String) -> Violation {
    Violation {
        code: ErrorCode::InvalidBoundClaims,
        message,
    }
}

impl BoundClaims {
    /// Parses `bound_claims` as given when a client is created (or as stored).
    pub fn parse(value: Value) -> Result<BoundClaims, Violation> {
        let Value::Object(claims) = value else {
            return Err(invalid("bound_claims must be a JSON object".into()));
        };
        if claims.len() > MAX_BOUND_CLAIMS {
            return Err(invalid(format!(
                "bound_claims holds at most {MAX_BOUND_CLAIMS} claims"
            )));
        }
        for (name, value) in &claims {
            if name.is_empty() || name.len() > MAX_BYTES {
                return Err(invalid(format!(
                    "bound_claims names claims of 1-{MAX_BYTES} bytes"
                )));
            }
            if SERVER_SET.contains(&name.as_str()) {
                return Err(invalid(format!(
                    "claim {name:?} is set by the server and cannot be bound"
                )));
            }
            let scalar = match value {
                Value::String(s) => s.len() <= MAX_BYTES,
                Value::Number(_) | Value::Bool(_) => true,
                Value::Null | Value::Array(_) | Value::Object(_) => false,
            };
            if !scalar {
                return Err(invalid(format!(
                    "bound claim {:?} must be a string of at most {MAX_BYTES} bytes, a number or a boolean",
                    CallerText::echoed(name).as_str()
                )));
            }
        }
        Ok(BoundClaims(claims.into_iter().collect()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets each bound claim `claims` leaves out; refuses one given with another value.
    pub fn apply(&self, claims: &mut Map<String, Value>) -> Result<(), Violation> {
        self.check(claims, true)?;
        for (name, value) in &self.0 {
            claims.insert(name.clone(), value.clone());
        }
        Ok(())
    }

    /// Refuses `claims` (built by the issuer, so signet cannot add to them) unless each bound
    /// claim is there with its value.
    pub fn require(&self, claims: &Map<String, Value>) -> Result<(), Violation> {
        self.check(claims, false)
    }

    fn check(&self, claims: &Map<String, Value>, may_omit: bool) -> Result<(), Violation> {
        for (name, value) in &self.0 {
            match claims.get(name) {
                Some(given) if given == value => {}
                None if may_omit => {}
                _ => {
                    return Err(Violation {
                        code: ErrorCode::BoundClaimMismatch,
                        message: format!(
                            "claim {:?} is bound to this client: it must be {}",
                            CallerText::echoed(name).as_str(),
                            CallerText::echoed(&value.to_string()).as_str()
                        ),
                    })
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn bound_claims_are_set_kept_or_refused() {
        let bound = BoundClaims::parse(json!({"tenant": "acme", "tier": 2, "beta": true})).unwrap();
        let mut omitted = claims(json!({"sub": "u"}));
        bound.apply(&mut omitted).unwrap();
        assert_eq!(
            Value::Object(omitted),
            json!({"sub": "u", "tenant": "acme", "tier": 2, "beta": true})
        );
        let mut same = claims(json!({"tenant": "acme", "tier": 2}));
        bound.apply(&mut same).unwrap();
        assert_eq!(same["beta"], true);
        for other in [
            json!({"tenant": "other"}),
            json!({"tier": "2"}),
            json!({"beta": null}),
        ] {
            let violation = bound.apply(&mut claims(other.clone())).unwrap_err();
            assert_eq!(violation.code, ErrorCode::BoundClaimMismatch, "{other}");
        }
        let raw = bound.require(&claims(json!({"tenant": "acme", "tier": 2})));
        assert!(raw.unwrap_err().message.contains("\"beta\""));
        assert!(bound
            .require(&claims(json!({"tenant": "acme", "tier": 2, "beta": true})))
            .is_ok());
    }

    #[test]
    fn bound_claims_are_bounded_scalars_the_server_does_not_set() {
        let many: Map<String, Value> = (0..17).map(|i| (format!("c{i}"), json!(i))).collect();
        for bad in [
            json!([]),
            json!("tenant"),
            Value::Object(many),
            json!({"iss": "x"}),
            json!({"exp": 1}),
            json!({"sid": "f"}),
            json!({"": 1}),
            json!({"c": null}),
            json!({"c": [1]}),
            json!({"c": {"d": 1}}),
            json!({"c": "x".repeat(257)}),
        ] {
            let violation = BoundClaims::parse(bad.clone()).unwrap_err();
            assert_eq!(violation.code, ErrorCode::InvalidBoundClaims, "{bad}");
        }
        assert!(BoundClaims::parse(json!({})).unwrap().is_empty());
    }
}
