//! API client endpoints (admin only).

use actix_web::{web, HttpResponse};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::{ApiError, AppState, Authenticated};
use crate::auth::{self, NewClient};
use crate::clock::rfc3339;
use crate::domain::{ClientRecord, Role};

fn client_json(client: &ClientRecord) -> Value {
    json!({
        "id": client.id,
        "name": client.name,
        "role": client.role,
        "rings": client.rings,
        "created_at": rfc3339(client.created_at),
        "created_by": client.created_by,
        "revoked_at": client.revoked_at.map(rfc3339),
    })
}

pub async fn create(
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    body: web::Json<NewClient>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin])?;
    let created = auth::create_client(state.rings.store(), &who.actor(), body.into_inner()).await?;
    let mut body = client_json(&created.client);
    // The only time the token is shown.
    body["token"] = created.token.expose_secret().into();
    Ok(HttpResponse::Created().json(body))
}

pub async fn list(
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin])?;
    let clients = state.rings.store().clients().await?;
    Ok(HttpResponse::Ok()
        .json(json!({ "clients": clients.iter().map(client_json).collect::<Vec<_>>() })))
}

pub async fn revoke(
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin])?;
    auth::revoke_client(state.rings.store(), &who.actor(), &path).await?;
    state.authenticator.forget_all();
    Ok(HttpResponse::NoContent().finish())
}
