//! Endpoints for auditors (and admins): the audit log with filters and cursor pagination, the
//! history of a key or a ring, and a check of the hash chain and its signed checkpoints.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, AppState, Authenticated};
use crate::audit::verify::verify_chain;
use crate::clock::rfc3339;
use crate::domain::Role;
use crate::rings::RingError;
use crate::store::{AuditQuery, StoredAuditRecord};

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

#[derive(Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Order {
    #[default]
    Desc,
    Asc,
}

/// The query string of `GET /v1/audit`; the history endpoints take its `limit`, `cursor` and
/// `order` only.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    ring: Option<String>,
    kid: Option<String>,
    principal: Option<String>,
    action: Option<String>,
    /// RFC 3339, inclusive.
    from: Option<String>,
    /// RFC 3339, exclusive.
    to: Option<String>,
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    order: Option<Order>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    limit: Option<u32>,
    cursor: Option<String>,
    order: Option<Order>,
}

impl PageParams {
    /// A history page: lifecycle events only, oldest first unless asked otherwise.
    fn history(&self) -> Result<AuditQuery, ApiError> {
        Ok(AuditQuery {
            events_only: true,
            ..page(
                self.limit,
                self.cursor.as_deref(),
                Some(self.order.unwrap_or(Order::Asc)),
            )?
        })
    }
}

fn millis(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|text| {
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|t| t.timestamp_millis())
                .map_err(|e| ApiError::bad_request(format!("{name} must be an RFC 3339 time: {e}")))
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

pub fn record_json(record: &StoredAuditRecord) -> Value {
    json!({
        "seq": record.seq,
        "time": rfc3339(record.time),
        "action": record.action,
        "ring": record.ring,
        "kid": record.kid,
        "principal": record.principal,
        "detail": serde_json::from_str::<Value>(&record.detail).unwrap_or(Value::Null),
        "hash": record.hash,
    })
}

/// One page: `limit` records and the cursor of the next page (`null` on the last).
async fn respond(
    state: &AppState,
    query: AuditQuery,
    extra: Value,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit;
    let records = state
        .rings
        .store()
        .audit_records(&AuditQuery {
            limit: limit + 1,
            ..query
        })
        .await?;
    let more = records.len() > limit as usize;
    let records = &records[..records.len().min(limit as usize)];
    let next_cursor = more.then(|| records.last().map(|r| r.seq.to_string()));
    let mut body = json!({
        "records": records.iter().map(record_json).collect::<Vec<_>>(),
        "next_cursor": next_cursor.flatten(),
    });
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    Ok(HttpResponse::Ok().json(body))
}

/// `GET /v1/audit`.
pub async fn list(
    state: web::Data<AppState>,
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
    respond(&state, query, json!({})).await
}

/// `GET /v1/keys/{kid}/history`: the key's lifecycle events (its signatures are in
/// `/v1/audit?kid=...&action=sign`).
pub async fn key_history(
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
    params: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Auditor])?;
    let key = state
        .rings
        .store()
        .key_by_kid(&path)
        .await?
        .ok_or_else(|| RingError::KeyNotFound(path.to_string()))?;
    let query = AuditQuery {
        kid: key.kid.clone(),
        ..params.history()?
    };
    respond(
        &state,
        query,
        json!({"kid": key.kid, "ring": key.ring, "state": key.state}),
    )
    .await
}

/// `GET /v1/rings/{ring}/history`: the ring's creation, rotations and key events.
pub async fn ring_history(
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    path: web::Path<String>,
    params: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Auditor])?;
    if state.rings.store().ring(&path).await?.is_none() {
        return Err(RingError::RingNotFound(path.to_string()).into());
    }
    let query = AuditQuery {
        ring: Some(path.to_string()),
        ..params.history()?
    };
    respond(&state, query, json!({"ring": path.as_str()})).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyParams {
    from: Option<i64>,
}

/// `GET /v1/audit/verify[?from=SEQ]`: 200 with `"ok": true`, or `"ok": false` and the first bad
/// record and why.
pub async fn verify(
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    params: web::Query<VerifyParams>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Auditor])?;
    let report = verify_chain(state.rings.store(), params.from).await?;
    Ok(HttpResponse::Ok().json(report))
}
