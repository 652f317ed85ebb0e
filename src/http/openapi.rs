//! The API's contract: an OpenAPI 3.1 document generated from the handlers' annotations and the
//! types they read and answer with, served at `GET /v1/openapi.json` and committed as
//! `docs/openapi.json` (`signet openapi > docs/openapi.json`; a test keeps the two equal).
//!
//! Answers every operation can give are added here once rather than on each handler: the
//! refusals of the request gate (a body that is unreadable, late or too large; an anonymous
//! caller over its allowance), of authentication, and of the store.

use std::sync::LazyLock;

use actix_web::HttpResponse;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, Ref, RefOr};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::{audit, clients, jwks, rings, schedules, tokens};
use crate::domain::{DayOfMonth, ErrorCode, Kid, RateLimit, RingName, TimeOfDay};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "signet",
        description = "Signs JWTs with keys that never leave their backend, rotates them on a \
            schedule, publishes them as JWKS, and audits every signature in a hash chain. Every \
            error is answered with the `Error` body; its `code` is stable (see `ErrorCode`)."
    ),
    paths(
        super::healthz,
        super::readyz,
        super::metrics,
        openapi_json,
        jwks::all,
        jwks::ring,
        tokens::verify,
        tokens::revoke,
        tokens::introspect,
        tokens::refresh,
        tokens::decrypt,
        rings::list,
        rings::create,
        rings::show,
        rings::update,
        rings::keys,
        rings::sign,
        rings::sign_raw,
        rings::rotate,
        rings::revoke,
        schedules::show,
        schedules::set,
        schedules::pause,
        schedules::resume,
        audit::list,
        audit::verify,
        audit::key_history,
        audit::ring_history,
        clients::list,
        clients::create,
        clients::revoke,
        clients::set_rate_limit,
        clients::rotate,
    ),
    components(schemas(ErrorCode)),
    modifiers(&CommonAnswers),
    tags(
        (name = "probes", description = "Liveness and readiness, for orchestrators"),
        (name = "operations", description = "Metrics and this document"),
        (name = "keys", description = "Public keys, for anyone"),
        (name = "tokens", description = "Verification (anyone), revocation (issuers), \
            introspection (introspectors)"),
        (name = "rings", description = "Rings, their keys and rotation (admins; auditors read)"),
        (name = "signing", description = "Signing, for a ring's issuers"),
        (name = "schedules", description = "Scheduled rotation"),
        (name = "audit", description = "The audit log and its hash chain"),
        (name = "clients", description = "API clients and their tokens (admins)"),
    )
)]
struct Contract;

/// The document, as `GET /v1/openapi.json` serves it and `docs/openapi.json` holds it.
pub fn document() -> &'static str {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        let mut json = Contract::openapi()
            .to_pretty_json()
            .expect("the document serialises");
        json.push('\n');
        json
    });
    &JSON
}

/// `GET /v1/openapi.json`.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object)))]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}

/// The answers every operation but the probes can give, by status, and the bearer scheme.
struct CommonAnswers;

/// Statuses any gated request can be answered with, whatever it asks.
const GATE_STATUSES: [u16; 6] = [400, 408, 413, 429, 500, 503];

impl Modify for CommonAnswers {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API client's token (`signet client create`)"))
                    .build(),
            ),
        );
        let mut statuses: Vec<u16> = ErrorCode::ALL.iter().map(|c| c.status()).collect();
        statuses.sort_unstable();
        statuses.dedup();
        for status in statuses {
            components
                .responses
                .insert(response_name(status), error_response(status).into());
        }
        for (path, item) in &mut doc.paths.paths {
            if path == "/healthz" || path == "/readyz" {
                continue;
            }
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                add_common_answers(operation);
            }
        }
    }
}

fn add_common_answers(operation: &mut Operation) {
    let mut statuses = GATE_STATUSES.to_vec();
    if operation.security.is_some() {
        statuses.extend([401, 403]);
    }
    if operation.request_body.is_some() {
        statuses.push(415);
    }
    for status in statuses {
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(response_name(status))));
    }
}

fn response_name(status: u16) -> String {
    format!("Error{status}")
}

/// The `Error` answer with `status`, described by the codes it carries.
fn error_response(status: u16) -> utoipa::openapi::Response {
    let codes: Vec<String> = ErrorCode::ALL
        .iter()
        .filter(|c| c.status() == status)
        .map(|c| format!("`{}`: {}", c.as_str(), c.meaning()))
        .collect();
    ResponseBuilder::new()
        .description(codes.join("; "))
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Error")))
                .build(),
        )
        .build()
}

impl PartialSchema for ErrorCode {
    fn schema() -> RefOr<Schema> {
        let meanings: Vec<String> = ErrorCode::ALL
            .iter()
            .map(|c| format!("- `{}` ({}): {}", c.as_str(), c.status(), c.meaning()))
            .collect();
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(ErrorCode::ALL.iter().map(|c| c.as_str())))
            .description(Some(format!(
                "Why a request was refused, and the status it is answered with:\n{}",
                meanings.join("\n")
            )))
            .into()
    }
}

impl ToSchema for ErrorCode {}

fn string(pattern: &str, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
        .into()
}

impl PartialSchema for RingName {
    fn schema() -> RefOr<Schema> {
        string(
            "^(_audit|[a-z0-9][a-z0-9_-]{0,63})$",
            "A ring's name: 1-64 characters of a-z, 0-9, '-' and '_', starting with a letter or \
             a digit (`_audit` is the reserved ring of the audit checkpoints)",
        )
    }
}

impl ToSchema for RingName {}

impl PartialSchema for Kid {
    fn schema() -> RefOr<Schema> {
        string(
            "^[A-Za-z0-9_-]{43}$",
            "A key's id: the RFC 7638 thumbprint of its public key, in base64url",
        )
    }
}

impl ToSchema for Kid {}

impl PartialSchema for TimeOfDay {
    fn schema() -> RefOr<Schema> {
        string(
            "^([01][0-9]|2[0-3]):[0-5][0-9]$",
            "A time of day in UTC, HH:MM",
        )
    }
}

impl ToSchema for TimeOfDay {}

impl PartialSchema for DayOfMonth {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(31))
            .description(Some(
                "A day of the month; 29-31 mean the last day in shorter months",
            ))
            .into()
    }
}

impl ToSchema for DayOfMonth {}

impl PartialSchema for RateLimit {
    fn schema() -> RefOr<Schema> {
        let count = || {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(RateLimit::MAX))
        };
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "A token bucket: `burst` requests at once, refilled at `per_second`",
            ))
            .property("per_second", count())
            .property(
                "burst",
                count()
                    .schema_type(SchemaType::Array(vec![Type::Integer, Type::Null]))
                    .description(Some("Left out or null: twice the rate")),
            )
            .required("per_second")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .into()
    }
}

impl ToSchema for RateLimit {}

/// A JSON Web Key Set as the JWKS endpoints serve it.
pub struct JwkSet;

impl PartialSchema for JwkSet {
    fn schema() -> RefOr<Schema> {
        let member = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(description))
        };
        let jwk = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("A public key (RFC 7517)"))
            .property("kty", member("EC, RSA or OKP"))
            .property("kid", Kid::schema())
            .property("alg", member("The algorithm the key signs with"))
            .property("use", member("sig"))
            .property("crv", member("P-256, P-384 or Ed25519 (EC and OKP)"))
            .property("x", member("base64url (EC and OKP)"))
            .property("y", member("base64url (EC)"))
            .property("n", member("base64url (RSA)"))
            .property("e", member("base64url (RSA)"))
            .required("kty")
            .required("kid")
            .required("alg")
            .required("use");
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("keys", ArrayBuilder::new().items(jwk))
            .required("keys")
            .into()
    }
}

impl ToSchema for JwkSet {}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::document;

    fn operations(doc: &Value) -> BTreeSet<(String, String)> {
        doc["paths"]
            .as_object()
            .expect("the document has paths")
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .expect("a path item is an object")
                    .keys()
                    .filter(|key| ["get", "put", "post", "delete", "patch"].contains(&key.as_str()))
                    .map(|method| (path.clone(), method.to_uppercase()))
            })
            .collect()
    }

    #[test]
    fn the_document_lists_every_route_and_no_other() {
        let doc: Value = serde_json::from_str(document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let served: BTreeSet<(String, String)> = super::super::route_methods()
            .into_iter()
            .flat_map(|(path, methods)| {
                methods
                    .into_iter()
                    .map(move |m| (path.to_owned(), m.as_str().to_owned()))
            })
            .collect();
        let documented = operations(&doc);
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty(),
            "routes the document lacks: {undocumented:?}"
        );
        assert!(
            unserved.is_empty(),
            "documented, but not served: {unserved:?}"
        );
    }

    #[test]
    fn every_error_code_and_answer_is_in_the_document() {
        let doc: Value = serde_json::from_str(document()).unwrap();
        let codes = &doc["components"]["schemas"]["ErrorCode"]["enum"];
        for code in crate::domain::ErrorCode::ALL {
            assert!(
                codes
                    .as_array()
                    .unwrap()
                    .contains(&Value::from(code.as_str())),
                "{code} is not in the document"
            );
        }
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let responses = operation["responses"].as_object().unwrap();
                assert!(
                    responses.keys().any(|status| status.starts_with('2')),
                    "{method} {path} documents no success"
                );
                if path != "/healthz" && path != "/readyz" {
                    for status in ["400", "429", "500", "503"] {
                        assert!(responses.contains_key(status), "{method} {path}: {status}");
                    }
                }
            }
        }
    }

    /// `docs/openapi.json` is what the code generates: regenerate it with
    /// `cargo run -- openapi > docs/openapi.json` after changing the API.
    #[test]
    fn the_committed_document_is_the_generated_one() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == document(),
            "docs/openapi.json differs from the document the code generates; \
             run `cargo run -- openapi > docs/openapi.json` and commit it"
        );
    }
}
