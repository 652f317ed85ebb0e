//! API client endpoints (admin only).

use actix_web::{web, HttpResponse};
use secrecy::ExposeSecret;

use serde::Deserialize;

use super::{ApiError, Authenticated, Json, Services};
use crate::api::{ClientInfo, ClientList, CreatedClientInfo};
use crate::auth::NewClient;
use crate::domain::{RateLimit, Role};

pub async fn create(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    body: Json<NewClient>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin])?;
    let created = state
        .clients
        .create(&who.actor(), body.into_inner())
        .await?;
    // The only time the token is shown.
    Ok(HttpResponse::Created().json(CreatedClientInfo {
        client: ClientInfo::from(&created.client),
        token: created.token.expose_secret().to_owned(),
    }))
}

pub async fn list(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin])?;
    let clients = state.clients.list().await?;
    Ok(HttpResponse::Ok().json(ClientList {
        clients: clients.iter().map(ClientInfo::from).collect(),
    }))
}

pub async fn revoke(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin])?;
    state.clients.revoke(&who.actor(), &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `PUT /v1/clients/{id}/rate-limit`: `{"rate_limit": {"per_second", "burst"}}`, or
/// `{"rate_limit": null}` for the server's default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitUpdate {
    rate_limit: Option<RateLimit>,
}

pub async fn set_rate_limit(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
    body: Json<RateLimitUpdate>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin])?;
    state
        .clients
        .set_rate_limit(&who.actor(), &path, body.rate_limit)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
