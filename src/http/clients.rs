//! API client endpoints (admin only).

use actix_web::{web, HttpResponse};
use secrecy::ExposeSecret;

use serde::Deserialize;
use utoipa::ToSchema;

use super::{optional_json, ApiError, Authenticated, ErrorBody, Json, Services};
use crate::api::{ClientInfo, ClientList, CreatedClientInfo};
use crate::auth::{CreatedClient, NewClient};
use crate::domain::{Grace, RateLimit, Role};

/// The client with its new token: the only time the token is shown.
fn with_token(created: &CreatedClient) -> CreatedClientInfo {
    CreatedClientInfo {
        client: ClientInfo::from(&created.client),
        token: created.token.expose_secret().to_owned(),
    }
}

#[utoipa::path(post, path = "/v1/clients", tag = "clients", security(("bearer" = [])), request_body = NewClient,
    responses((status = 201, description = "The client, with its token: shown this once", body = CreatedClientInfo),
        (status = 409, description = "`client_exists`", body = ErrorBody),
        (status = 422, description = "`invalid_expiry`, `invalid_metadata`, `invalid_bound_claims`", body = ErrorBody)))]
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
    Ok(HttpResponse::Created().json(with_token(&created)))
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

/// `POST /v1/clients/{id}/rotate`.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RotateClientRequest {
    /// How long the replaced token is still accepted, in seconds [default: 3600].
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 604_800)]
    grace_seconds: Option<Grace>,
}

#[utoipa::path(post, path = "/v1/clients/{id}/rotate", tag = "clients", security(("bearer" = [])), params(("id" = String, Path, description = "The client's id")),
    request_body(content = Option<RotateClientRequest>, description = "May be left out: the \
        replaced token is accepted one more hour"),
    responses((status = 200, description = "The client, with its new token: shown this once", body = CreatedClientInfo),
        (status = 404, description = "`client_not_found`", body = ErrorBody),
        (status = 409, description = "`client_revoked`", body = ErrorBody)))]
pub async fn rotate(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin])?;
    let request: RotateClientRequest = optional_json(&body)?;
    let rotated = state
        .clients
        .rotate(
            &who.actor(),
            &path,
            request.grace_seconds.unwrap_or_default(),
        )
        .await?;
    Ok(HttpResponse::Ok().json(with_token(&rotated)))
}
