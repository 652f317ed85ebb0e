//! Claim-value rules of a ring's policy: per claim a type, an enumeration, a range, a maximum
//! length and whether it may be null. A rule checks a claim only when the claim is present;
//! `required_claims` says which must be.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{ErrorCode, Violation};

/// The JSON type a claim must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClaimType {
    String,
    Integer,
    Number,
    Boolean,
    /// An array of strings.
    StringArray,
}

/// The rules one claim's value must keep.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRule {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ClaimType>,
    /// The values the claim may take (for an array of strings: each of its items).
    #[serde(rename = "enum", default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 64)]
    pub one_of: Option<Vec<Value>>,
    /// The least value of an integer or number claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    /// The greatest value of an integer or number claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    /// The most characters of a string claim, or the most items of an array of strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 65_536)]
    pub max_length: Option<u32>,
    /// The claim, when present, may not be `null`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub non_null: bool,
}

/// The most rules a policy holds, and the most values an enumeration lists.
pub const MAX_RULES: usize = 64;
const MAX_ENUM_VALUES: usize = 64;
/// The longest enumerated value, serialised.
const MAX_ENUM_VALUE_BYTES: usize = 256;

fn broken(claim: &str, rule: &str, message: String) -> Violation {
    Violation {
        code: ErrorCode::ClaimRuleViolated,
        message: format!("claim {claim:?} breaks its rule {rule}: {message}"),
    }
}

impl ClaimRule {
    /// Checks the rule itself, when a ring is created.
    pub fn validate(&self, claim: &str) -> Result<(), String> {
        let numeric = matches!(self.kind, Some(ClaimType::Integer | ClaimType::Number));
        if (self.minimum.is_some() || self.maximum.is_some()) && !numeric {
            return Err(format!(
                "claim_rules.{claim}: minimum and maximum need type integer or number"
            ));
        }
        if let (Some(min), Some(max)) = (self.minimum, self.maximum) {
            if min > max {
                return Err(format!(
                    "claim_rules.{claim}: minimum is greater than maximum"
                ));
            }
        }
        if self.max_length.is_some()
            && !matches!(self.kind, Some(ClaimType::String | ClaimType::StringArray))
        {
            return Err(format!(
                "claim_rules.{claim}: max_length needs type string or string_array"
            ));
        }
        if self.max_length == Some(0) {
            return Err(format!(
                "claim_rules.{claim}: max_length must be at least 1"
            ));
        }
        if let Some(values) = &self.one_of {
            if values.is_empty() || values.len() > MAX_ENUM_VALUES {
                return Err(format!(
                    "claim_rules.{claim}: enum lists 1 to {MAX_ENUM_VALUES} values"
                ));
            }
            if values
                .iter()
                .any(|v| v.to_string().len() > MAX_ENUM_VALUE_BYTES)
            {
                return Err(format!(
                    "claim_rules.{claim}: each enum value is at most {MAX_ENUM_VALUE_BYTES} bytes"
                ));
            }
            let item_kind = match self.kind {
                Some(ClaimType::StringArray) => Some(ClaimType::String),
                kind => kind,
            };
            if let Some(kind) = item_kind {
                if !values.iter().all(|v| has_type(v, kind)) {
                    return Err(format!(
                        "claim_rules.{claim}: every enum value must be of the rule's type"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks a present claim's value against the rule.
    fn check(&self, claim: &str, value: &Value) -> Result<(), Violation> {
        if value.is_null() {
            return if self.non_null {
                Err(broken(claim, "non_null", "it is null".into()))
            } else {
                Ok(())
            };
        }
        if let Some(kind) = self.kind {
            if !has_type(value, kind) {
                return Err(broken(
                    claim,
                    "type",
                    format!("it must be {}", type_name(kind)),
                ));
            }
        }
        if let Some(n) = value.as_f64() {
            if self.minimum.is_some_and(|min| n < min) {
                return Err(broken(
                    claim,
                    "minimum",
                    format!("it is below {}", self.minimum.unwrap_or_default()),
                ));
            }
            if self.maximum.is_some_and(|max| n > max) {
                return Err(broken(
                    claim,
                    "maximum",
                    format!("it is above {}", self.maximum.unwrap_or_default()),
                ));
            }
        }
        if let Some(max) = self.max_length {
            let length = match value {
                Value::String(s) => s.chars().count(),
                Value::Array(items) => items.len(),
                _ => 0,
            };
            if length > max as usize {
                return Err(broken(
                    claim,
                    "max_length",
                    format!("it is longer than {max}"),
                ));
            }
        }
        if let Some(allowed) = &self.one_of {
            let items = match value {
                Value::Array(items) if self.kind == Some(ClaimType::StringArray) => {
                    items.iter().collect()
                }
                value => vec![value],
            };
            if !items.iter().all(|item| allowed.contains(item)) {
                return Err(broken(
                    claim,
                    "enum",
                    "it is not among the allowed values".into(),
                ));
            }
        }
        Ok(())
    }
}

fn has_type(value: &Value, kind: ClaimType) -> bool {
    match kind {
        ClaimType::String => value.is_string(),
        ClaimType::Integer => value.is_i64() || value.is_u64(),
        ClaimType::Number => value.is_number(),
        ClaimType::Boolean => value.is_boolean(),
        ClaimType::StringArray => value
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_string)),
    }
}

fn type_name(kind: ClaimType) -> &'static str {
    match kind {
        ClaimType::String => "a string",
        ClaimType::Integer => "an integer",
        ClaimType::Number => "a number",
        ClaimType::Boolean => "a boolean",
        ClaimType::StringArray => "an array of strings",
    }
}

/// Checks every present claim that has a rule.
pub fn check_rules(
    rules: &BTreeMap<String, ClaimRule>,
    claims: &Map<String, Value>,
) -> Result<(), Violation> {
    for (claim, rule) in rules {
        if let Some(value) = claims.get(claim) {
            rule.check(claim, value)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rules(value: Value) -> BTreeMap<String, ClaimRule> {
        serde_json::from_value(value).unwrap()
    }

    fn broken_rule(rules: &BTreeMap<String, ClaimRule>, claims: Value) -> Option<String> {
        check_rules(rules, claims.as_object().unwrap())
            .err()
            .map(|v| {
                assert_eq!(v.code, ErrorCode::ClaimRuleViolated);
                v.message
            })
    }

    #[test]
    fn each_rule_is_named_when_broken() {
        let r = rules(json!({
            "device_trust": {"type": "integer", "minimum": 0, "maximum": 100, "non_null": true},
            "tier": {"type": "string", "enum": ["gold", "silver"]},
            "nick": {"type": "string", "max_length": 3},
            "roles": {"type": "string_array", "enum": ["read", "write"], "max_length": 2},
            "score": {"type": "number"},
            "beta": {"type": "boolean"}
        }));
        assert_eq!(
            broken_rule(
                &r,
                json!({"device_trust": 50, "tier": "gold", "nick": "abc",
                "roles": ["read", "write"], "score": 0.5, "beta": true})
            ),
            None
        );
        assert_eq!(
            broken_rule(&r, json!({})),
            None,
            "absent claims are not ruled"
        );
        for (claims, rule) in [
            (json!({"device_trust": 101}), "maximum"),
            (json!({"device_trust": -1}), "minimum"),
            (json!({"device_trust": 1.5}), "type"),
            (json!({"device_trust": "50"}), "type"),
            (json!({"device_trust": null}), "non_null"),
            (json!({"tier": "bronze"}), "enum"),
            (json!({"nick": "abcd"}), "max_length"),
            (json!({"roles": ["read", "admin"]}), "enum"),
            (json!({"roles": ["read", "read", "write"]}), "max_length"),
            (json!({"roles": ["read", 1]}), "type"),
            (json!({"score": "high"}), "type"),
            (json!({"beta": 1}), "type"),
        ] {
            let message = broken_rule(&r, claims.clone()).unwrap_or_default();
            let claim = claims.as_object().unwrap().keys().next().unwrap().clone();
            assert!(
                message.contains(&format!("{claim:?} breaks its rule {rule}")),
                "{claims}: {message}"
            );
        }
        assert_eq!(broken_rule(&r, json!({"tier": null})), None, "null allowed");
    }

    #[test]
    fn rules_that_contradict_themselves_are_refused() {
        for bad in [
            json!({"type": "string", "minimum": 1}),
            json!({"type": "integer", "minimum": 5, "maximum": 1}),
            json!({"type": "integer", "max_length": 3}),
            json!({"type": "string", "max_length": 0}),
            json!({"type": "integer", "enum": ["a"]}),
            json!({"enum": []}),
            json!({"minimum": 1}),
        ] {
            let rule: ClaimRule = serde_json::from_value(bad.clone()).unwrap();
            assert!(rule.validate("c").is_err(), "{bad}");
        }
        let good: ClaimRule =
            serde_json::from_value(json!({"type": "string_array", "enum": ["a"], "max_length": 4}))
                .unwrap();
        assert!(good.validate("c").is_ok());
    }
}
