//! Rotation schedule endpoints: show (with the plan), replace, pause, resume.

use actix_web::{web, HttpResponse};

use super::{ring_in_path, ApiError, Authenticated, ErrorBody, Json, Services};
use crate::domain::RingName;
use crate::domain::Role;
use crate::schedule::{ScheduleUpdate, ScheduleView};

#[utoipa::path(get, path = "/v1/rings/{ring}/schedule", tag = "schedules", security(("bearer" = [])), params(("ring" = RingName, Path, description = "The ring's name")),
    responses((status = 200, description = "The rule, the timing and the plan from now", body = ScheduleView), (status = 404, description = "`ring_not_found`", body = ErrorBody)))]
pub async fn show(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Auditor])?;
    Ok(HttpResponse::Ok().json(state.rings.schedule(&ring_in_path(&path)?).await?))
}

#[utoipa::path(put, path = "/v1/rings/{ring}/schedule", tag = "schedules", security(("bearer" = [])), params(("ring" = RingName, Path, description = "The ring's name")),
    request_body = ScheduleUpdate,
    responses((status = 200, description = "The schedule as changed", body = ScheduleView), (status = 404, description = "`ring_not_found`", body = ErrorBody)))]
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

#[utoipa::path(post, path = "/v1/rings/{ring}/schedule/pause", tag = "schedules", security(("bearer" = [])), params(("ring" = RingName, Path, description = "The ring's name")),
    responses((status = 200, description = "Paused: no scheduled rotation until resumed", body = ScheduleView), (status = 404, description = "`ring_not_found`", body = ErrorBody)))]
pub async fn pause(
    state: web::Data<Services>,
    who: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_paused(state, who, &path, true).await
}

#[utoipa::path(post, path = "/v1/rings/{ring}/schedule/resume", tag = "schedules", security(("bearer" = [])), params(("ring" = RingName, Path, description = "The ring's name")),
    responses((status = 200, description = "Resumed", body = ScheduleView), (status = 404, description = "`ring_not_found`", body = ErrorBody)))]
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
