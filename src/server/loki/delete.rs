//! Loki's log deletion API (`/loki/api/v1/delete`), for the tenant of
//! `X-Scope-OrgID`:
//!
//! * `POST|PUT ?query=<selector with line/label filters>&start=&end=` — stores
//!   a request (204); its lines leave queries at once;
//! * `GET` — the tenant's requests as Loki lists them;
//! * `DELETE ?request_id=` — cancels a request still inside
//!   `[compactor] delete_request_cancel_period`.
//!
//! A tenant whose `deletion_mode` is `disabled` gets 403. The requests
//! live in [`crate::storage::deletes`].

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::parse_timestamp;
use crate::engine::Engine;
use crate::ingest::limits::DeletionMode;
use crate::server::prometheus::ApiRequest;
use crate::server::push;
use crate::storage::deletes::{self, CancelError};

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    let mut message = message.into();
    message.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

/// The tenant, when deletion is enabled for it (else the answer to give).
fn tenant(engine: &Engine, request: &ApiRequest) -> Result<String, Box<Response>> {
    let tenant = push::tenant(engine, &request.headers)
        .map_err(|r| Box::new(IntoResponse::into_response(r)))?;
    let limits = engine.distributor().limits().get(&tenant);
    if limits.deletion_mode == DeletionMode::Disabled {
        return Err(Box::new(text(
            StatusCode::FORBIDDEN,
            "deletion is not available for this tenant",
        )));
    }
    Ok(tenant)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub async fn create(State(engine): State<Arc<Engine>>, request: ApiRequest) -> Response {
    match try_create(&engine, &request).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => r,
    }
}

async fn try_create(engine: &Engine, request: &ApiRequest) -> Result<(), Response> {
    let tenant = tenant(engine, request).map_err(|r| *r)?;
    let bad = |m: String| text(StatusCode::BAD_REQUEST, m);
    let query = match request.form.get("query") {
        Some(q) if !q.trim().is_empty() => q.to_string(),
        _ => return Err(bad(
            "query not set: give a LogQL stream selector such as query={app=\"api\"} |= \"secret\""
                .into(),
        )),
    };
    deletes::validate_query(&query).map_err(bad)?;
    let start = match request.form.get("start") {
        Some(v) => parse_timestamp(v).map_err(|e| bad(format!("invalid start time: {e}")))?,
        None => {
            return Err(bad(
                "start time not set: give start as RFC 3339 or a unix timestamp".into(),
            ));
        }
    };
    let end = match request.form.get("end") {
        Some(v) => parse_timestamp(v).map_err(|e| bad(format!("invalid end time: {e}")))?,
        None => chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX),
    };
    if start > end {
        return Err(bad(format!(
            "start time ({start}ns) can't be greater than end time ({end}ns)"
        )));
    }
    let stored = engine
        .ingester()
        .storage()
        .delete_requests()
        .add(&tenant, &query, start, end, now_ms())
        .await
        .map_err(|e| text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    tracing::info!(
        tenant,
        request_id = stored.request_id,
        query,
        "log deletion request received"
    );
    Ok(())
}

/// Loki's `model.Time` in JSON: seconds with up to millisecond decimals.
fn seconds(ms: i64) -> serde_json::Value {
    if ms % 1000 == 0 {
        serde_json::json!(ms / 1000)
    } else {
        serde_json::json!(ms as f64 / 1000.0)
    }
}

pub async fn list(State(engine): State<Arc<Engine>>, request: ApiRequest) -> Response {
    let tenant = match tenant(&engine, &request) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let requests = match engine
        .ingester()
        .storage()
        .delete_requests()
        .reload(&tenant)
        .await
    {
        Ok(r) => r,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let body: Vec<serde_json::Value> = requests
        .requests
        .iter()
        .map(|r| {
            serde_json::json!({
                "request_id": r.request_id,
                "start_time": seconds(r.start_ns.div_euclid(1_000_000)),
                "end_time": seconds(r.end_ns.div_euclid(1_000_000)),
                "query": r.query,
                "status": r.status.as_str(),
                "created_at": seconds(r.created_at_ms),
            })
        })
        .collect();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::Value::Array(body).to_string(),
    )
        .into_response()
}

pub async fn cancel(State(engine): State<Arc<Engine>>, request: ApiRequest) -> Response {
    let tenant = match tenant(&engine, &request) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let Some(id) = request.form.get("request_id").filter(|v| !v.is_empty()) else {
        return text(StatusCode::BAD_REQUEST, "request_id not set");
    };
    let period = engine.config().compactor.delete_request_cancel_period;
    match engine
        .ingester()
        .storage()
        .delete_requests()
        .cancel(&tenant, id, period, now_ms())
        .await
    {
        Ok(()) => {
            tracing::info!(tenant, request_id = id, "log deletion request cancelled");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e @ CancelError::NotFound) => text(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ CancelError::TooLate(_)) => text(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
