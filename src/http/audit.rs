//! Endpoints for auditors (and admins): the audit log with filters and cursor pagination, the
//! history of a key or a ring, and a check of the hash chain and its signed checkpoints.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{kid_in_path, ring_in_path, ApiError, Authenticated, ErrorBody, Services};
use crate::audit::verify::VerifyReport;
use crate::audit::{AuditPage, KeyHistory, RingHistory};
use crate::domain::Role;
use crate::domain::{AuditQuery, UnixMillis};
use crate::domain::{Kid, RingName};

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

#[derive(Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum Order {
    #[default]
    Desc,
    Asc,
}

/// The query string of `GET /v1/audit`; the history endpoints take its `limit`, `cursor` and
/// `order` only.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    ring: Option<String>,
    kid: Option<String>,
    principal: Option<String>,
    action: Option<String>,
    /// RFC 3339, inclusive.
    #[param(format = DateTime)]
    from: Option<String>,
    /// RFC 3339, exclusive.
    #[param(format = DateTime)]
    to: Option<String>,
    /// Records per page [default: 100].
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[+-]?[0-9]{1,18}$")]
    cursor: Option<String>,
    /// `desc` (newest first, the default) or `asc`.
    #[param(inline)]
    order: Option<Order>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// Records per page [default: 100].
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[+-]?[0-9]{1,18}$")]
    cursor: Option<String>,
    /// `asc` (oldest first, the default) or `desc`.
    #[param(inline)]
    order: Option<Order>,
}

impl PageParams {
    /// A history page: oldest first unless asked otherwise.
    fn query(&self) -> Result<AuditQuery, ApiError> {
        page(
            self.limit,
            self.cursor.as_deref(),
            Some(self.order.unwrap_or(Order::Asc)),
        )
    }
}

fn millis(name: &str, value: Option<&str>) -> Result<Option<UnixMillis>, ApiError> {
    value
        .map(|text| {
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|t| UnixMillis::from_millis(t.timestamp_millis()))
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "{name} must be an RFC 3339 time, like 2026-12-02T10:00:00Z"
                    ))
                })
        })
        .transpose()
}

fn page(
    limit: Option<u32>,
    cursor: Option<&str>,
    order: Option<Order>,
) -> Result<AuditQuery, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    let cursor = cursor
        .map(|c| {
            c.parse::<i64>().map_err(|_| {
                ApiError::bad_request("cursor must be a next_cursor from a previous page")
            })
        })
        .transpose()?;
    Ok(AuditQuery {
        oldest_first: matches!(order.unwrap_or_default(), Order::Asc),
        cursor,
        limit,
        ..AuditQuery::default()
    })
}

/// `GET /v1/audit`.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", security(("bearer" = [])), params(AuditParams),
    responses((status = 200, description = "A page of audit records", body = AuditPage)))]
pub async fn list(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    params: web::Query<AuditParams>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Auditor])?;
    let params = params.into_inner();
    let query = AuditQuery {
        from: millis("from", params.from.as_deref())?,
        to: millis("to", params.to.as_deref())?,
        ring: params.ring,
        kid: params.kid,
        principal: params.principal,
        action: params.action,
        ..page(params.limit, params.cursor.as_deref(), params.order)?
    };
    Ok(HttpResponse::Ok().json(state.audit.page(query).await?))
}

/// `GET /v1/keys/{kid}/history`: the key's lifecycle events (its signatures are in
/// `/v1/audit?kid=...&action=sign`).
#[utoipa::path(get, path = "/v1/keys/{kid}/history", tag = "audit", security(("bearer" = [])), params(("kid" = Kid, Path, description = "The key's kid"), PageParams),
    responses((status = 200, description = "The key's records, oldest first by default", body = KeyHistory),
        (status = 404, description = "`key_not_found`", body = ErrorBody)))]
pub async fn key_history(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
    params: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Auditor])?;
    let history = state
        .audit
        .key_history(&kid_in_path(&path)?, params.query()?)
        .await?;
    Ok(HttpResponse::Ok().json(history))
}

/// `GET /v1/rings/{ring}/history`: the ring's creation, rotations and key events.
#[utoipa::path(get, path = "/v1/rings/{ring}/history", tag = "audit", security(("bearer" = [])), params(("ring" = RingName, Path, description = "The ring's name"), PageParams),
    responses((status = 200, description = "The ring's records, oldest first by default", body = RingHistory),
        (status = 404, description = "`ring_not_found`", body = ErrorBody)))]
pub async fn ring_history(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
    params: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Auditor])?;
    let history = state
        .audit
        .ring_history(&ring_in_path(&path)?, params.query()?)
        .await?;
    Ok(HttpResponse::Ok().json(history))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VerifyParams {
    from: Option<i64>,
}

/// `GET /v1/audit/verify[?from=SEQ]`: 200 with `"ok": true`, or `"ok": false` and the first bad
/// record and why.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", security(("bearer" = [])), params(VerifyParams),
    responses((status = 200, description = "What the walk of the hash chain found; `ok` is false when \
        a record or checkpoint is wrong or missing", body = VerifyReport)))]
pub async fn verify(
    state: web::Data<Services>,
    Authenticated(who): Authenticated,
    params: web::Query<VerifyParams>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Auditor])?;
    let report = state.audit.verify(params.from).await?;
    Ok(HttpResponse::Ok().json(report))
}
