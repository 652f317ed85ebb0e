//! A client's metadata: a free-form JSON object an admin attaches, stored and shown, never
//! interpreted. Bounded, so that listing clients stays cheap.

use serde::Serialize;
use serde_json::{Map, Value};

use super::{ErrorCode, Violation};

const MAX_MEMBERS: usize = 32;
const MAX_BYTES: usize = 4096;
/// The object itself is at depth 1; each object or array inside it one deeper.
const MAX_DEPTH: usize = 4;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct ClientMetadata(Map<String, Value>);

fn depth(value: &Value) -> usize {
    match value {
        Value::Object(members) => 1 + members.values().map(depth).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

impl ClientMetadata {
    /// Parses `metadata` as given when a client is created (or as stored).
    pub fn parse(value: Value) -> Result<ClientMetadata, Violation> {
        let refused = |message: String| Violation {
            code: ErrorCode::InvalidMetadata,
            message,
        };
        if serde_json::to_string(&value).map_or(usize::MAX, |s| s.len()) > MAX_BYTES {
            return Err(refused(format!(
                "metadata is at most {MAX_BYTES} bytes as JSON"
            )));
        }
        if depth(&value) > MAX_DEPTH {
            return Err(refused(format!(
                "metadata nests objects and arrays at most {MAX_DEPTH} deep"
            )));
        }
        match value {
            Value::Object(members) if members.len() <= MAX_MEMBERS => Ok(ClientMetadata(members)),
            Value::Object(_) => Err(refused(format!(
                "metadata has at most {MAX_MEMBERS} members"
            ))),
            _ => Err(refused("metadata must be a JSON object".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn metadata_is_a_bounded_object() {
        let members: Map<String, Value> = (0..32).map(|i| (format!("m{i}"), json!(i))).collect();
        let at_most = Value::Object(members.clone());
        assert!(ClientMetadata::parse(at_most).is_ok());
        let mut over = members;
        over.insert("m32".into(), json!(32));
        let deep = json!({"a": {"b": {"c": {"d": 1}}}});
        assert!(ClientMetadata::parse(deep).is_ok());
        for bad in [
            Value::Object(over),
            json!({"a": {"b": {"c": {"d": {}}}}}),
            json!({"a": [[[[]]]]}),
            json!({"a": "x".repeat(4096)}),
            json!([]),
            json!("text"),
            json!(null),
        ] {
            let violation = ClientMetadata::parse(bad.clone()).unwrap_err();
            assert_eq!(violation.code, ErrorCode::InvalidMetadata, "{bad}");
        }
    }
}
