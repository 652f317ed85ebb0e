//! The HTTP API (actix-web). Handlers parse, authenticate, call the services
//! ([`crate::services`]) and render what they return ([`crate::api`]); they hold no other logic.

mod access;
mod audit;
mod body;
mod callers;
mod clients;
mod error;
mod jwks;
mod openapi;
mod refusals;
mod request_id;
mod rings;
mod schedules;
mod tokens;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::{header, Method};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse, Route};
use secrecy::SecretString;

pub use access::observe;
pub use body::{optional_json, Json, JsonOrForm};
pub use callers::Callers;
pub use error::{ApiError, ErrorBody};
pub use openapi::document as openapi_document;
pub use refusals::gate;

use crate::api::{Health, ReadinessInfo};
use crate::auth::{self, Principal};
use crate::domain::{CallerText, ErrorCode, Kid, RingName, Role};
use crate::rings::RingError;
use crate::services::Services;

/// The largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The authenticated client of a request (`Authorization: Bearer <token>`).
pub struct Authenticated(pub Arc<Principal>);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Authenticated, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|t| SecretString::from(t.trim().to_owned()));
        let state = req.app_data::<web::Data<Services>>().cloned();
        let callers = req.app_data::<web::Data<Callers>>().cloned();
        let req = req.clone();
        Box::pin(async move {
            let state = state.expect("the services are registered");
            let callers = callers.expect("the callers are registered");
            let result = match token {
                Some(token) => state.clients.authenticate(&token).await,
                None => Err(auth::AuthError::Missing),
            };
            match result {
                Ok(principal) => {
                    // For the record of a request this client is then denied.
                    req.extensions_mut().insert(principal.clone());
                    Ok(Authenticated(principal))
                }
                Err(e @ auth::AuthError::Store(_)) => Err(e.into()),
                Err(e) => {
                    tracing::info!(method = %req.method(), reason = %e, "request denied");
                    // A wrong token counts against its source's allowance, as no token does.
                    if req.headers().contains_key(header::AUTHORIZATION) {
                        callers.admit_anonymous(&callers.source(&req))?;
                    }
                    Err(e.into())
                }
            }
        })
    }
}

/// The ring a path names: a name outside the grammar names no ring.
pub fn ring_in_path(name: &str) -> Result<RingName, ApiError> {
    RingName::parse(name)
        .map_err(|_| RingError::RingNotFound(CallerText::echoed(name).to_string()).into())
}

/// The key a path names by its kid: a value that is no thumbprint names no key.
pub fn kid_in_path(kid: &str) -> Result<Kid, ApiError> {
    Kid::parse(kid).map_err(|_| RingError::KeyNotFound(CallerText::echoed(kid).to_string()).into())
}

fn query_error(err: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    let why = match err {
        actix_web::error::QueryPayloadError::Deserialize(e) => {
            let message = e.to_string();
            if message.starts_with("unknown field") {
                "a parameter is not one this request takes".to_owned()
            } else {
                "a query parameter has a value of the wrong type".to_owned()
            }
        }
        _ => "the query string cannot be read".to_owned(),
    };
    ApiError::bad_request(why).into()
}

fn path_error(_: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request("the path cannot be read").into()
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorCode::NotFound,
        format!(
            "no route for {} {}",
            CallerText::echoed(req.method().as_str()),
            CallerText::echoed(req.path())
        ),
    ))
}

/// `GET /metrics`: the Prometheus text format, for an admin's or an auditor's token.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(("bearer" = [])),
    responses((status = 200, description = "The Prometheus text format, version 0.0.4", body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8")))]
async fn metrics(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Auditor])?;
    let text = state.rings.render_metrics().await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}

#[utoipa::path(get, path = "/healthz", tag = "probes",
    responses((status = 200, description = "The process answers", body = Health)))]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Ready when the store answers and every configured backend can be reached. A backend is probed
/// by looking up a key id that never exists: reachable backends answer "no such key".
#[utoipa::path(get, path = "/readyz", tag = "probes", responses(
    (status = 200, description = "Ready to serve", body = ReadinessInfo),
    (status = 503, description = "Not ready: `errors` says why (database_unavailable, \
        backend_unavailable, shutting_down, task_failing)", body = ReadinessInfo),
))]
async fn readyz(state: web::Data<Services>) -> HttpResponse {
    let readiness = state.rings.readiness().await;
    let body = ReadinessInfo::new(&readiness);
    if readiness.is_ready() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// A path and the methods it takes, each with its handler; any other method gets 405 with
/// `Allow` listing them.
fn resource(path: &'static str, routes: Vec<(Method, Route)>) -> actix_web::Resource {
    let allow: Vec<&str> = routes.iter().map(|(method, _)| method.as_str()).collect();
    let allow = allow.join(", ");
    routes
        .into_iter()
        .fold(web::resource(path), |resource, (method, route)| {
            resource.route(route.method(method))
        })
        .default_service(web::to(move |req: HttpRequest| {
            let allow = allow.clone();
            async move {
                Err::<HttpResponse, _>(ApiError::method_not_allowed(
                    req.method().as_str(),
                    req.path(),
                    allow,
                ))
            }
        }))
}

/// Every route: a path and the methods it takes, each with its handler.
fn routes() -> Vec<(&'static str, Vec<(Method, Route)>)> {
    vec![
        ("/healthz", vec![(Method::GET, web::to(healthz))]),
        ("/readyz", vec![(Method::GET, web::to(readyz))]),
        ("/metrics", vec![(Method::GET, web::to(metrics))]),
        (
            "/v1/openapi.json",
            vec![(Method::GET, web::to(openapi::openapi_json))],
        ),
        (
            "/.well-known/jwks.json",
            vec![(Method::GET, web::to(jwks::all))],
        ),
        ("/v1/verify", vec![(Method::POST, web::to(tokens::verify))]),
        (
            "/v1/tokens/revoke",
            vec![(Method::POST, web::to(tokens::revoke))],
        ),
        (
            "/v1/introspect",
            vec![(Method::POST, web::to(tokens::introspect))],
        ),
        (
            "/v1/rings",
            vec![
                (Method::GET, web::to(rings::list)),
                (Method::POST, web::to(rings::create)),
            ],
        ),
        (
            "/v1/rings/{ring}",
            vec![
                (Method::GET, web::to(rings::show)),
                (Method::PATCH, web::to(rings::update)),
            ],
        ),
        (
            "/v1/rings/{ring}/keys",
            vec![(Method::GET, web::to(rings::keys))],
        ),
        (
            "/v1/rings/{ring}/jwks.json",
            vec![(Method::GET, web::to(jwks::ring))],
        ),
        (
            "/v1/rings/{ring}/sign",
            vec![(Method::POST, web::to(rings::sign))],
        ),
        (
            "/v1/rings/{ring}/refresh",
            vec![(Method::POST, web::to(tokens::refresh))],
        ),
        (
            "/v1/rings/{ring}/decrypt",
            vec![(Method::POST, web::to(tokens::decrypt))],
        ),
        (
            "/v1/rings/{ring}/sign-raw",
            vec![(Method::POST, web::to(rings::sign_raw))],
        ),
        (
            "/v1/rings/{ring}/rotate",
            vec![(Method::POST, web::to(rings::rotate))],
        ),
        (
            "/v1/rings/{ring}/schedule",
            vec![
                (Method::GET, web::to(schedules::show)),
                (Method::PUT, web::to(schedules::set)),
            ],
        ),
        (
            "/v1/rings/{ring}/schedule/pause",
            vec![(Method::POST, web::to(schedules::pause))],
        ),
        (
            "/v1/rings/{ring}/schedule/resume",
            vec![(Method::POST, web::to(schedules::resume))],
        ),
        (
            "/v1/keys/{kid}/revoke",
            vec![(Method::POST, web::to(rings::revoke))],
        ),
        (
            "/v1/keys/{kid}/history",
            vec![(Method::GET, web::to(audit::key_history))],
        ),
        (
            "/v1/rings/{ring}/history",
            vec![(Method::GET, web::to(audit::ring_history))],
        ),
        ("/v1/audit", vec![(Method::GET, web::to(audit::list))]),
        (
            "/v1/audit/verify",
            vec![(Method::GET, web::to(audit::verify))],
        ),
        (
            "/v1/clients",
            vec![
                (Method::GET, web::to(clients::list)),
                (Method::POST, web::to(clients::create)),
            ],
        ),
        (
            "/v1/clients/{id}",
            vec![(Method::DELETE, web::to(clients::revoke))],
        ),
        (
            "/v1/clients/{id}/rate-limit",
            vec![(Method::PUT, web::to(clients::set_rate_limit))],
        ),
        (
            "/v1/clients/{id}/rotate",
            vec![(Method::POST, web::to(clients::rotate))],
        ),
    ]
}

/// The paths the server answers and the methods each takes (as the OpenAPI document must list
/// them).
#[cfg(test)]
fn route_methods() -> Vec<(&'static str, Vec<Method>)> {
    routes()
        .into_iter()
        .map(|(path, routes)| (path, routes.into_iter().map(|(m, _)| m).collect()))
        .collect()
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::default().limit(MAX_BODY_BYTES))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .app_data(web::QueryConfig::default().error_handler(query_error));
    for (path, methods) in routes() {
        cfg.service(resource(path, methods));
    }
    cfg.default_service(web::to(not_found));
}
