//! Property tests over what callers control: arbitrary input to the JSON parser, the JOSE
//! parsing of `/v1/verify` and the signing policy never panics, and the policy never passes
//! claims it forbids.

use proptest::prelude::*;
use serde_json::{Map, Value};

use crate::domain::Policy;
use crate::{jose, json};

/// Any JSON value, a few levels deep, with claim-like member names.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z]{0,6}|\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(member_name(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn member_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "iss", "sub", "aud", "exp", "iat", "nbf", "jti", "role", "password"
        ])
        .prop_map(str::to_owned),
        "\\PC{0,8}",
    ]
}

fn claims() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(member_name(), any_json(), 0..8)
        .prop_map(|m| m.into_iter().collect())
}

fn policy() -> Policy {
    Policy {
        audiences: vec!["api".into(), "web".into()],
        required_claims: vec!["sub".into()],
        forbidden_claims: vec!["password".into()],
        max_ttl_seconds: Some(600),
        ..Policy::new("https://issuer.example".into())
    }
}

/// What every claim set the policy lets through must satisfy.
fn obeys(policy: &Policy, claims: &Map<String, Value>, now: i64) -> Result<(), String> {
    if claims.get("iss").and_then(Value::as_str) != Some(policy.issuer.as_str()) {
        return Err("iss".into());
    }
    let exp = claims.get("exp").and_then(Value::as_i64).ok_or("exp")?;
    if exp <= now || exp - now > i64::from(policy.max_ttl()) {
        return Err("exp".into());
    }
    let audiences: Vec<&Value> = match claims.get("aud") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one) => vec![one],
        None => vec![],
    };
    if audiences.is_empty()
        || audiences.iter().any(|a| {
            !a.as_str()
                .is_some_and(|a| policy.audiences.iter().any(|p| p == a))
        })
    {
        return Err("aud".into());
    }
    if claims.get("sub").is_none_or(Value::is_null) || claims.contains_key("password") {
        return Err("required or forbidden claim".into());
    }
    Ok(())
}

proptest! {
    #[test]
    fn the_strict_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = json::from_slice::<Value>(&bytes);
    }

    #[test]
    fn the_strict_parser_refuses_every_duplicate(value in any_json(), name in member_name()) {
        let text = format!(
            "{{{}:{value},{}:{value}}}",
            Value::String(name.clone()),
            Value::String(name)
        );
        let refused = matches!(
            json::from_slice::<Value>(text.as_bytes()),
            Err(json::JsonError::Duplicate { .. })
        );
        prop_assert!(refused);
    }

    #[test]
    fn reading_a_token_never_panics(token in "[A-Za-z0-9_.=-]{0,200}|\\PC{0,64}") {
        let _ = jose::peek_kid(&token);
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "alg": "ES256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
        let expect = jose::Expect {
            audience: Some("api"),
            ..jose::Expect::default()
        };
        let _ = jose::verify(&token, &jwk, &expect);
        let _ = jose::jwk_thumbprint(&Value::String(token));
    }

    #[test]
    fn signed_claims_always_obey_the_policy(
        mut claims in claims(),
        ttl in proptest::option::of(any::<u32>()),
        nbf in any::<bool>(),
        aud in proptest::option::of(any_json()),
        sub in proptest::bool::ANY,
    ) {
        let policy = policy();
        let now = 1_800_000_000;
        // Often near the policy's edge, not only far from it.
        claims.insert("aud".into(), aud.unwrap_or_else(|| "api".into()));
        if sub {
            claims.insert("sub".into(), "u".into());
        }
        if let Ok(signed) = policy.token_claims(claims, ttl, nbf, now, "j".into(), "c") {
            prop_assert_eq!(obeys(&policy, &signed, now), Ok(()));
        }
    }

    #[test]
    fn raw_claims_pass_only_when_they_obey_the_policy(
        mut claims in claims(),
        iss in proptest::bool::ANY,
        exp in -1000i64..2000,
        iat in -100i64..100,
        aud in proptest::option::of(any_json()),
    ) {
        let policy = policy();
        let now = 1_800_000_000;
        claims.insert("aud".into(), aud.unwrap_or_else(|| "api".into()));
        claims.entry("sub").or_insert_with(|| "u".into());
        claims.entry("jti").or_insert_with(|| "j-1".into());
        if iss {
            claims.insert("iss".into(), policy.issuer.clone().into());
        }
        claims.insert("exp".into(), (now + exp).into());
        claims.insert("iat".into(), (now + iat).into());
        if policy.check_raw_claims(&claims, now, 60, "c").is_ok() {
            prop_assert_eq!(obeys(&policy, &claims, now), Ok(()));
        }
    }
}
