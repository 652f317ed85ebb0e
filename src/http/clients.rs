//! API client endpoints (admin only).

use actix_web::{web, HttpResponse};
use secrecy::ExposeSecret;

use serde::Deserialize;
use utoipa::ToSchema;

use super::{ApiError, Authenticated, ErrorBody, Json, Services};
use crate::api::{ClientInfo, ClientList, CreatedClientInfo};
use crate::auth::NewClient;
use crate::domain::{RateLimit, Role};

#[utoipa::path(post, path = "/v1/clients", tag = "clients", security(("bearer" = [])), request_body = NewClient,
    responses((status = 201, description = "The client, with its token: shown this once", body = CreatedClientInfo),
        (status = 409, description = "`client_exists`", body = ErrorBody)))]
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

#[utoipa::path(get, path = "/v1/clients", tag = "clients", security(("bearer" = [])),
    responses((status = 200, description = "Every client, never a token", body = ClientList)))]
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

#[utoipa::path(delete, path = "/v1/clients/{id}", tag = "clients", security(("bearer" = [])), params(("id" = String, Path, description = "The client's id")),
    responses((status = 204, description = "Revoked: its token is refused from now on"),
        (status = 404, description = "`client_not_found`", body = ErrorBody)))]
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
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitUpdate {
    /// `null`: the server's default.
    rate_limit: Option<RateLimit>,
}

#[utoipa::path(put, path = "/v1/clients/{id}/rate-limit", tag = "clients", security(("bearer" = [])), params(("id" = String, Path, description = "The client's id")),
    request_body = RateLimitUpdate,
    responses((status = 204, description = "Set; every replica applies it within a tick"),
        (status = 404, description = "`client_not_found`", body = ErrorBody)))]
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
