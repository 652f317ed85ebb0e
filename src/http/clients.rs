//! API client endpoints (admin only).

use actix_web::{web, HttpResponse};
use secrecy::ExposeSecret;

use super::{ApiError, Authenticated, Services};
use crate::api::{ClientInfo, ClientList, CreatedClientInfo};
use crate::auth::NewClient;
use crate::domain::Role;

pub async fn create(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    body: web::Json<NewClient>,
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
