//! The HTTP API (actix-web). Handlers parse, authenticate, call the services
//! ([`crate::services`]) and render what they return ([`crate::api`]); they hold no other logic.

mod audit;
mod body;
mod callers;
mod clients;
mod error;
mod jwks;
mod refusals;
mod request_id;
mod rings;
mod schedules;

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use secrecy::SecretString;
use serde_json::json;

pub use body::{optional_json, Json};
pub use callers::Callers;
pub use error::ApiError;
pub use refusals::gate;
pub use request_id::assign as assign_request_ids;

use crate::auth::{self, Principal};
use crate::domain::{CallerText, Kid, RingName};
use crate::rings::RingError;
use crate::services::Services;

/// The largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The authenticated client of a request (`Authorization: Bearer <token>`).
pub struct Authenticated(pub Principal);

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
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no route for {} {}",
            CallerText::echoed(req.method().as_str()),
            CallerText::echoed(req.path())
        ),
    ))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the store answers and every configured backend can be reached. A backend is probed
/// by looking up a key id that never exists: reachable backends answer "no such key".
async fn readyz(state: web::Data<Services>) -> HttpResponse {
    let readiness = state.rings.readiness().await;
    let mut problems = Vec::new();
    if !readiness.database {
        problems.push(
            json!({"code": "database_unavailable", "message": "the database is unavailable"}),
        );
    }
    let mut backends = serde_json::Map::new();
    for (kind, ok) in &readiness.backends {
        backends.insert(
            kind.as_str().into(),
            json!(if *ok { "ok" } else { "unavailable" }),
        );
        if !ok {
            problems.push(json!({"code": "backend_unavailable", "message": format!("the {kind} backend is unavailable")}));
        }
    }
    for task in &readiness.failing_tasks {
        problems.push(json!({"code": "task_failing", "message": format!("the background task {task:?} is failing; see the server log")}));
    }
    if readiness.is_ready() {
        HttpResponse::Ok().json(json!({"status": "ready", "backends": backends}))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(json!({"status": "unavailable", "backends": backends, "errors": problems}))
    }
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::default().limit(MAX_BODY_BYTES))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/.well-known/jwks.json", web::get().to(jwks::all))
        .route("/v1/verify", web::post().to(jwks::verify))
        .route("/v1/rings", web::post().to(rings::create))
        .route("/v1/rings", web::get().to(rings::list))
        .route("/v1/rings/{ring}", web::get().to(rings::show))
        .route("/v1/rings/{ring}", web::patch().to(rings::update))
        .route("/v1/rings/{ring}/keys", web::get().to(rings::keys))
        .route("/v1/rings/{ring}/jwks.json", web::get().to(jwks::ring))
        .route("/v1/rings/{ring}/sign", web::post().to(rings::sign))
        .route("/v1/rings/{ring}/sign-raw", web::post().to(rings::sign_raw))
        .route("/v1/rings/{ring}/rotate", web::post().to(rings::rotate))
        .route("/v1/rings/{ring}/schedule", web::get().to(schedules::show))
        .route("/v1/rings/{ring}/schedule", web::put().to(schedules::set))
        .route(
            "/v1/rings/{ring}/schedule/pause",
            web::post().to(schedules::pause),
        )
        .route(
            "/v1/rings/{ring}/schedule/resume",
            web::post().to(schedules::resume),
        )
        .route("/v1/keys/{kid}/revoke", web::post().to(rings::revoke))
        .route("/v1/keys/{kid}/history", web::get().to(audit::key_history))
        .route(
            "/v1/rings/{ring}/history",
            web::get().to(audit::ring_history),
        )
        .route("/v1/audit", web::get().to(audit::list))
        .route("/v1/audit/verify", web::get().to(audit::verify))
        .route("/v1/clients", web::post().to(clients::create))
        .route("/v1/clients", web::get().to(clients::list))
        .route("/v1/clients/{id}", web::delete().to(clients::revoke))
        .route(
            "/v1/clients/{id}/rate-limit",
            web::put().to(clients::set_rate_limit),
        )
        .default_service(web::to(not_found));
}
