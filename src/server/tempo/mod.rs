//! The Tempo HTTP query API on `--http-listen`, answering like Tempo 2.x so
//! Grafana's Tempo datasource, `tempo-cli` and client libraries work
//! unmodified. Every request belongs to the tenant of its `X-Scope-OrgID`
//! header and sees only that tenant's spans.
//!
//! * `GET /api/traces/<id>`, `/api/v2/traces/<id>` — one trace as OTLP,
//!   JSON or (`Accept: application/protobuf`) protobuf (`trace_by_id`);
//! * `GET /api/search/tags`, `/api/v2/search/tags`,
//!   `/api/search/tag/<tag>/values`, `/api/v2/search/tag/<tag>/values` —
//!   attribute names and values for the search editors (`tags`);
//! * `GET /api/search`, `/api/metrics/query_range`, `/api/metrics/query` —
//!   TraceQL searches and metrics queries (`search`);
//! * `GET /api/echo`, `/api/status/buildinfo`.
//!
//! `otlp_json` renders traces as Tempo's JSON. What every handler shares
//! lives here: the tenant's session, parameter parsing and errors, answered
//! as Tempo does — plain text naming the problem, 400 for bad requests, 404
//! for a trace that is not there.

pub(crate) mod otlp_json;
pub(crate) mod search;
pub(crate) mod tags;
pub(crate) mod trace_by_id;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use datafusion::prelude::SessionContext;

use super::prometheus::ApiRequest;
use super::push;
use crate::engine::Engine;

/// The Tempo version `/api/status/buildinfo` reports: the API level this
/// module answers like.
pub(crate) const TEMPO_API_VERSION: &str = "2.8.0";

/// The routes, for `crate::server::http::router`.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/api/traces/{trace_id}", get(trace_by_id::trace_v1))
        .route("/api/v2/traces/{trace_id}", get(trace_by_id::trace_v2))
        .route("/api/search/tags", get(tags::tags_v1))
        .route("/api/v2/search/tags", get(tags::tags_v2))
        .route("/api/search/tag/{tag}/values", get(tags::tag_values_v1))
        .route("/api/v2/search/tag/{tag}/values", get(tags::tag_values_v2))
        .route("/api/search", get(search::search))
        .route("/api/metrics/query_range", get(search::metrics_query_range))
        .route("/api/metrics/query", get(search::metrics_query))
        .route("/api/echo", get(|| async { "echo" }))
        .route("/api/status/buildinfo", get(build_info))
}

/// Why a Tempo API request failed; answered as plain text like Tempo.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The tenant header was refused (its own status and reason).
    Tenant(push::Rejection),
    /// 400: a parameter or path segment is wrong; the text names it.
    BadRequest(String),
    /// 404: nothing with that id.
    NotFound(String),
    /// 500: the query failed.
    Internal(String),
    /// 429: the tenant's query queue is full.
    TooManyRequests(String),
}

impl<E: Into<Failure>> From<crate::query::frontend::FrontendError<E>> for Failure {
    fn from(e: crate::query::frontend::FrontendError<E>) -> Self {
        use crate::query::frontend::FrontendError;
        match e {
            FrontendError::Query(e) => e.into(),
            FrontendError::QueueFull(full) => Failure::TooManyRequests(full.to_string()),
            FrontendError::Limit(m) => Failure::BadRequest(m),
            FrontendError::Internal(m) => Failure::Internal(m),
        }
    }
}

impl Failure {
    pub(crate) fn internal(e: impl std::fmt::Display) -> Failure {
        Failure::Internal(e.to_string())
    }
}

impl From<push::Rejection> for Failure {
    fn from(r: push::Rejection) -> Self {
        Failure::Tenant(r)
    }
}

impl From<datafusion::error::DataFusionError> for Failure {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Failure::Internal(e.to_string())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Tenant(rejection) => rejection.into_response(),
            Failure::BadRequest(text) => push::reply(400, text),
            Failure::NotFound(text) => push::reply(404, text),
            Failure::Internal(text) => push::reply(500, text),
            Failure::TooManyRequests(text) => push::reply(429, text),
        }
    }
}

/// A JSON answer.
pub(crate) fn json_response(value: &serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// The DataFusion session over the tables of the request's tenant.
pub(crate) fn session(engine: &Engine, headers: &HeaderMap) -> Result<SessionContext, Failure> {
    let tenant = push::tenant(engine, headers)?;
    engine.tables_session(&tenant).map_err(Failure::internal)
}

pub(crate) const SECOND_NS: i64 = 1_000_000_000;

/// The window of a search or tag request without `start`/`end`: the last
/// hour, Tempo's "recent data".
pub(crate) const DEFAULT_WINDOW_NS: i64 = 3600 * SECOND_NS;

/// A Tempo `start`/`end` parameter: whole unix epoch seconds, as
/// nanoseconds; `None` when absent or empty.
pub(crate) fn seconds_param(request: &ApiRequest, name: &str) -> Result<Option<i64>, Failure> {
    let Some(text) = request.form.get(name) else {
        return Ok(None);
    };
    text.trim()
        .parse::<i64>()
        .ok()
        .and_then(|s| s.checked_mul(SECOND_NS))
        .map(Some)
        .ok_or_else(|| {
            Failure::BadRequest(format!(
                "invalid {name}: {text:?} is not a time in unix epoch seconds"
            ))
        })
}

/// The `start` and `end` parameters (nanoseconds), refusing an `end` that
/// is not after `start` with Tempo's message.
pub(crate) fn time_bounds(request: &ApiRequest) -> Result<(Option<i64>, Option<i64>), Failure> {
    let start = seconds_param(request, "start")?;
    let end = seconds_param(request, "end")?;
    if let (Some(s), Some(e)) = (start, end)
        && e <= s
    {
        return Err(Failure::BadRequest(format!(
            "http parameter start must be before end. received start={} end={}",
            s / SECOND_NS,
            e / SECOND_NS
        )));
    }
    Ok((start, end))
}

/// A non-negative integer parameter such as `limit` (0 or absent: none).
pub(crate) fn count_param(request: &ApiRequest, name: &str) -> Result<Option<usize>, Failure> {
    let Some(text) = request.form.get(name) else {
        return Ok(None);
    };
    match text.trim().parse::<u32>() {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n as usize)),
        Err(_) => Err(Failure::BadRequest(format!(
            "invalid {name}: {text:?} is not a non-negative integer"
        ))),
    }
}

pub(crate) fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Tempo's build information (`version`, `revision`, `branch`, `buildUser`,
/// `buildDate`, `goVersion`): the Tempo API level answered, o11ydb's own
/// version as the revision.
async fn build_info() -> Response {
    json_response(&serde_json::json!({
        "version": TEMPO_API_VERSION,
        "revision": concat!("o11ydb-", env!("CARGO_PKG_VERSION")),
        "branch": "main",
        "buildUser": "o11ydb",
        "buildDate": "",
        "goVersion": "",
    }))
}
