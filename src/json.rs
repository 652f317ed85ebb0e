//! Strict JSON for what callers send: an object may not name a member twice (readers disagree
//! on which duplicate wins, so a policy could check one value while a verifier reads the other),
//! and what is wrong is said in our words, pointing at the member, never in the parser's.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::domain::CallerText;

/// How deep objects and arrays may nest (the parser's own limit is 128).
const MAX_DEPTH: usize = 64;

#[derive(Debug, PartialEq, Eq)]
pub enum JsonError {
    /// Not JSON at all.
    Syntax { line: usize, column: usize },
    /// An object names `member` twice (at `path`).
    Duplicate { path: String },
    /// JSON, but not the shape expected at `path`.
    Invalid { path: String, why: String },
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::Syntax { line, column } => {
                write!(
                    f,
                    "the body is not valid JSON (line {line}, column {column})"
                )
            }
            JsonError::Duplicate { path } => {
                write!(f, "the member {path} appears more than once")
            }
            JsonError::Invalid { path, why } if path.is_empty() || path == "." => f.write_str(why),
            JsonError::Invalid { path, why } => write!(f, "{path}: {why}"),
        }
    }
}

/// Parses `bytes` as a `T`, refusing duplicate members anywhere in it.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    check_no_duplicates(bytes)?;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = CallerText::echoed(&e.path().to_string()).to_string();
        invalid(path, e.inner())
    })?;
    deserializer.end().map_err(|e| syntax(&e))?;
    Ok(value)
}

fn syntax(e: &serde_json::Error) -> JsonError {
    JsonError::Syntax {
        line: e.line(),
        column: e.column(),
    }
}

/// Our words for what serde found wrong: its own phrasings are replaced; a message our types
/// gave (a grammar, a range) is kept, bounded.
fn invalid(path: String, e: &serde_json::Error) -> JsonError {
    if e.is_syntax() || e.is_eof() {
        return syntax(e);
    }
    let message = e.to_string();
    let message = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(m, _)| m);
    let why = if message.starts_with("unknown field") {
        "is not a member this request takes".to_owned()
    } else if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default();
        format!(
            "the member {:?} is required",
            CallerText::echoed(field).as_str()
        )
    } else if message.starts_with("unknown variant") {
        "is not one of the accepted values".to_owned()
    } else if message.starts_with("invalid type") || message.starts_with("invalid length") {
        "has the wrong type".to_owned()
    } else if message.starts_with("invalid value") || message.starts_with("duplicate field") {
        "has an invalid value".to_owned()
    } else {
        CallerText::echoed(message).to_string()
    };
    JsonError::Invalid { path, why }
}

/// Walks `bytes` once, refusing an object that names a member twice.
pub fn check_no_duplicates(bytes: &[u8]) -> Result<(), JsonError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let mut duplicate = None;
    let walked = Walk {
        depth: 0,
        path: String::new(),
        duplicate: &mut duplicate,
    }
    .deserialize(&mut deserializer);
    if let Some(path) = duplicate {
        return Err(JsonError::Duplicate { path });
    }
    walked.map_err(|e| syntax(&e))?;
    deserializer.end().map_err(|e| syntax(&e))
}

struct Walk<'a> {
    depth: usize,
    path: String,
    duplicate: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(de::Error::custom("nested too deeply"));
        }
        let mut index = 0;
        loop {
            let element = Walk {
                depth: self.depth + 1,
                path: format!("{}[{index}]", self.path),
                duplicate: &mut *self.duplicate,
            };
            if seq.next_element_seed(element)?.is_none() {
                return Ok(());
            }
            if self.duplicate.is_some() {
                return Err(de::Error::custom("duplicate member"));
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(de::Error::custom("nested too deeply"));
        }
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = format!("{}.{key}", self.path);
            if !seen.insert(key) {
                *self.duplicate = Some(CallerText::echoed(&path).to_string());
                return Err(de::Error::custom("duplicate member"));
            }
            map.next_value_seed(Walk {
                depth: self.depth + 1,
                path,
                duplicate: &mut *self.duplicate,
            })?;
            if self.duplicate.is_some() {
                return Err(de::Error::custom("duplicate member"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::Value;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Request {
        #[allow(dead_code)]
        ttl: u32,
    }

    #[test]
    fn duplicate_members_are_refused_at_any_depth() {
        for (text, path) in [
            (r#"{"a":1,"a":2}"#, ".a"),
            (r#"{"c":{"iss":"x","iss":"y"}}"#, ".c.iss"),
            (r#"[{"k":1},{"k":1,"k":2}]"#, "[1].k"),
        ] {
            assert_eq!(
                from_slice::<Value>(text.as_bytes()),
                Err(JsonError::Duplicate { path: path.into() }),
                "{text}"
            );
        }
        assert!(from_slice::<Value>(br#"{"a":{"a":1},"b":[1,1]}"#).is_ok());
    }

    #[test]
    fn errors_are_ours_and_point_at_the_member() {
        let wrong = |text: &str| {
            from_slice::<Request>(text.as_bytes())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(wrong(r#"{"ttl":"x"}"#), "ttl: has the wrong type");
        assert_eq!(
            wrong(r#"{"ttl":1,"zzz":1}"#),
            "zzz: is not a member this request takes"
        );
        assert_eq!(wrong("{}"), "the member \"ttl\" is required");
        assert_eq!(wrong("{"), "the body is not valid JSON (line 1, column 1)");
        assert!(wrong(&format!(r#"{{"ttl":1,"{}":1}}"#, "k".repeat(5000))).len() < 200);
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(from_slice::<Value>(deep.as_bytes()).is_err());
    }
}
