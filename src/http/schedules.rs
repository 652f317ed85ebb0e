//! Rotation schedule endpoints: show (with the plan), replace, pause, resume.

use actix_web::{web, HttpResponse};

use super::{ring_in_path, ApiError, Authenticated, Json, Services};
use crate::domain::Role;
use crate::schedule::ScheduleUpdate;

pub async fn show(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Auditor])?;
    Ok(HttpResponse::Ok().json(state.rings.schedule(&ring_in_path(&path)?).await?))
}

pub async fn set(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
    body: Json<ScheduleUpdate>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin])?;
    let schedule = state
        .rings
        .set_schedule(&who.actor(), &ring_in_path(&path)?, body.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(schedule))
}

pub async fn pause(
    state: web::Data<Services>,
    who: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_paused(state, who, &path, true).await
}

pub async fn resume(
    state: web::Data<Services>,
    who: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_paused(state, who, &path, false).await
}

async fn set_paused(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    ring: &str,
    paused: bool,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin])?;
    let schedule = state
        .rings
        .pause_schedule(&who.actor(), &ring_in_path(ring)?, paused)
        .await?;
    Ok(HttpResponse::Ok().json(schedule))
}
