//! The Loki HTTP query API (`/loki/api/v1/...`) on `--http-listen`,
//! answering like Loki 3.x so Grafana's Loki datasource, `logcli` and client
//! libraries work unmodified. Every request belongs to the tenant of its
//! `X-Scope-OrgID` header and sees only that tenant's logs.
//!
//! * `GET|POST /loki/api/v1/query`, `/loki/api/v1/query_range` — LogQL;
//! * `GET|POST /loki/api/v1/labels`, `/loki/api/v1/label/<name>/values`,
//!   `/loki/api/v1/series`, `/loki/api/v1/index/stats`;
//! * `GET /loki/api/v1/tail` — a websocket of new entries (`tail.rs`);
//! * `GET|POST /loki/api/v1/format_query`, `GET /loki/api/v1/status/buildinfo`;
//! * `POST|GET|DELETE /loki/api/v1/delete` — log deletion requests (`delete.rs`).
//!
//! Errors are plain text with the status Loki uses (400 for bad queries and
//! limits); evaluation is `crate::query::logql`.

mod delete;
mod json;
mod tail;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use datafusion::prelude::SessionContext;

use super::prometheus::ApiRequest;
use super::push;
use crate::engine::Engine;
use crate::query::frontend::{self, sharding::ShardingLimits};
use crate::query::logql::{
    self, Direction, LogqlError, LogqlOptions, ast, fetch, logs::compile_selector,
};
use crate::query::promql::QueryValue;

/// Loki's default `limit` of log queries.
const DEFAULT_LIMIT: usize = 100;

/// The routes, for `crate::server::http::router`.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/loki/api/v1/query", get(query).post(query))
        .route(
            "/loki/api/v1/query_range",
            get(query_range).post(query_range),
        )
        .route("/loki/api/v1/labels", get(labels).post(labels))
        .route("/loki/api/v1/label", get(labels).post(labels))
        .route(
            "/loki/api/v1/label/{name}/values",
            get(label_values).post(label_values),
        )
        .route("/loki/api/v1/series", get(series).post(series))
        .route(
            "/loki/api/v1/index/stats",
            get(index_stats).post(index_stats),
        )
        .route(
            "/loki/api/v1/format_query",
            get(format_query).post(format_query),
        )
        .route("/loki/api/v1/status/buildinfo", get(build_info))
        .route("/loki/api/v1/tail", get(tail::tail))
        .route(
            "/loki/api/v1/delete",
            get(delete::list)
                .post(delete::create)
                .put(delete::create)
                .delete(delete::cancel),
        )
}

/// Why a request failed; answered as plain text, as Loki does.
enum Failure {
    Tenant(push::Rejection),
    Query(LogqlError),
}

impl From<LogqlError> for Failure {
    fn from(e: LogqlError) -> Self {
        Failure::Query(e)
    }
}

impl From<push::Rejection> for Failure {
    fn from(r: push::Rejection) -> Self {
        Failure::Tenant(r)
    }
}

type Outcome = Result<String, Failure>;

fn respond(outcome: Outcome) -> Response {
    match outcome {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
            body,
        )
            .into_response(),
        Err(Failure::Tenant(rejection)) => rejection.into_response(),
        Err(Failure::Query(e)) => {
            let status =
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (
                status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("{e}\n"),
            )
                .into_response()
        }
    }
}

fn bad(message: impl Into<String>) -> Failure {
    Failure::Query(LogqlError::BadQuery(message.into()))
}

async fn session(engine: &Engine, headers: &HeaderMap) -> Result<SessionContext, Failure> {
    let tenant = push::tenant(engine, headers)?;
    Ok(tenant_session(engine, &tenant)?)
}

fn tenant_session(engine: &Engine, tenant: &str) -> Result<SessionContext, LogqlError> {
    engine
        .tables_session(tenant)
        .map_err(|e| LogqlError::Internal(e.to_string()))
}

fn options(engine: &Engine) -> LogqlOptions {
    engine.config().query.logql_options()
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Loki's timestamp parameter: RFC 3339, float seconds, or an integer that
/// is seconds when it has at most 10 digits and nanoseconds otherwise.
pub fn parse_timestamp(value: &str) -> Result<i64, String> {
    let invalid = || format!("cannot parse {value:?} to a valid timestamp");
    if value.contains('.')
        && let Ok(seconds) = value.parse::<f64>()
    {
        if !seconds.is_finite() {
            return Err(invalid());
        }
        let whole = seconds.trunc();
        let frac = ((seconds - whole) * 1000.0).round() / 1000.0;
        return Ok(whole as i64 * 1_000_000_000 + (frac * 1e9) as i64);
    }
    match value.parse::<i64>() {
        Ok(n) if value.trim_start_matches('-').len() <= 10 => {
            n.checked_mul(1_000_000_000).ok_or_else(invalid)
        }
        Ok(n) => Ok(n),
        Err(_) => chrono::DateTime::parse_from_rfc3339(value)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
            .ok_or_else(invalid),
    }
}

/// A step or `since`: float seconds or a duration (`5m`, `1h30m`), in ns.
pub fn parse_seconds_or_duration(value: &str) -> Result<i64, String> {
    if let Ok(seconds) = value.parse::<f64>() {
        if !seconds.is_finite() {
            return Err(format!("cannot parse {value:?} to a valid duration"));
        }
        return Ok((seconds * 1e9).round() as i64);
    }
    super::prometheus::params::parse_duration(value)
        .map_err(|_| format!("cannot parse {value:?} to a valid duration"))
}

struct TimeRange {
    start: i64,
    end: i64,
}

/// `start`/`end`/`since` as Loki reads them: end defaults to now, start to
/// `end − since` (since defaulting to one hour).
fn time_range(request: &ApiRequest) -> Result<TimeRange, Failure> {
    let form = &request.form;
    let end = match form.get("end") {
        Some(v) => parse_timestamp(v).map_err(bad)?,
        None => now_ns(),
    };
    let since = match form.get("since") {
        Some(v) => parse_seconds_or_duration(v).map_err(bad)?,
        None => 3_600_000_000_000,
    };
    let start = match form.get("start") {
        Some(v) => parse_timestamp(v).map_err(bad)?,
        None => end - since,
    };
    if end < start {
        return Err(bad(
            "end timestamp must not be before or equal to start time",
        ));
    }
    Ok(TimeRange { start, end })
}

fn limit_param(request: &ApiRequest) -> Result<usize, Failure> {
    match request.form.get("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => v.parse::<usize>().map_err(|_| {
            bad(format!(
                "invalid limit {v:?}: must be a non-negative integer"
            ))
        }),
    }
}

fn direction_param(request: &ApiRequest) -> Result<Direction, Failure> {
    match request.form.get("direction") {
        None => Ok(Direction::Backward),
        Some(v) => v.parse().map_err(Failure::Query),
    }
}

fn parse_query(request: &ApiRequest) -> Result<(String, ast::Expr), Failure> {
    let text = request.form.get("query").unwrap_or_default().to_string();
    let expr = logql::parse(&text).map_err(|e| bad(e.to_string()))?;
    Ok((text, expr))
}

// ---------------------------------------------------------------- queries

async fn query(State(engine): State<Arc<Engine>>, request: ApiRequest) -> Response {
    respond(run_query(&engine, &request).await)
}

async fn run_query(engine: &Engine, request: &ApiRequest) -> Outcome {
    let (text, expr) = parse_query(request)?;
    let time = match request.form.get("time") {
        Some(v) => parse_timestamp(v).map_err(bad)?,
        None => now_ns(),
    };
    let started = std::time::Instant::now();
    let tenant = push::tenant(engine, &request.headers)?;
    let ctx = tenant_session(engine, &tenant)?;
    let value = match &expr {
        ast::Expr::Metric(metric) => {
            let sharding = ShardingLimits::of(&engine.distributor().limits().get(&tenant));
            let value = engine
                .frontend()
                .logql_instant_query(
                    &tenant,
                    ctx,
                    &text,
                    metric,
                    time,
                    &options(engine),
                    sharding,
                )
                .await
                .map_err(LogqlError::from)?;
            logql::LogqlValue::Metric(value)
        }
        // Refused by the evaluator with Loki's words.
        ast::Expr::Log(_) => {
            logql::instant_query(&ctx, &text, &expr, time, &options(engine)).await?
        }
    };
    Ok(json::query_response(&value, started.elapsed()))
}

async fn query_range(State(engine): State<Arc<Engine>>, request: ApiRequest) -> Response {
    respond(run_query_range(&engine, &request).await)
}

async fn run_query_range(engine: &Arc<Engine>, request: &ApiRequest) -> Outcome {
    let (text, expr) = parse_query(request)?;
    let range = time_range(request)?;
    let limit = limit_param(request)?;
    let direction = direction_param(request)?;
    let step = match request.form.get("step") {
        Some(v) => parse_seconds_or_duration(v).map_err(bad)?,
        None => default_step(range.start, range.end),
    };
    let interval = match request.form.get("interval") {
        Some(v) => parse_seconds_or_duration(v).map_err(bad)?.max(0),
        None => 0,
    };
    let started = std::time::Instant::now();
    let tenant = push::tenant(engine, &request.headers)?;
    let limits = engine.distributor().limits().get(&tenant);
    let grid = if matches!(expr, ast::Expr::Metric(_)) {
        step
    } else {
        1
    };
    let Some(start) = frontend::apply_query_limits(&limits, range.start, range.end, grid, 1)
        .map_err(|e| Failure::Query(LogqlError::Limit(e)))?
    else {
        let empty = match expr {
            ast::Expr::Log(_) => logql::LogqlValue::Streams(Vec::new()),
            ast::Expr::Metric(_) => logql::LogqlValue::Metric(QueryValue::Matrix(Vec::new())),
        };
        return Ok(json::query_response(&empty, started.elapsed()));
    };
    let options = options(engine);
    let request = logql::RangeRequest {
        start_ns: start,
        end_ns: range.end,
        step_ns: step,
        limit,
        direction,
        interval_ns: interval,
    };
    let value = match &expr {
        ast::Expr::Log(_) => {
            let ctx = tenant_session(engine, &tenant)?;
            let evaluation = logql::query_range(&ctx, &text, &expr, &request, &options);
            engine
                .frontend()
                .run(&tenant, "logql", evaluation)
                .await
                .map_err(LogqlError::from)?
        }
        ast::Expr::Metric(_) if step <= 0 || range.end < start => {
            // Refused by the evaluator with Loki's words.
            let ctx = tenant_session(engine, &tenant)?;
            logql::query_range(&ctx, &text, &expr, &request, &options).await?
        }
        ast::Expr::Metric(metric) => {
            let ctx = tenant_session(engine, &tenant)?;
            let output = engine
                .frontend()
                .logql_range_query(
                    &tenant,
                    ctx,
                    &text,
                    metric,
                    (start, range.end, step),
                    &options,
                    ShardingLimits::of(&limits),
                )
                .await
                .map_err(LogqlError::from)?;
            logql::check_series(&output.value, &options)?;
            logql::LogqlValue::Metric(output.value)
        }
    };
    Ok(json::query_response(&value, started.elapsed()))
}

/// Loki's default step: the range split in 250 points, at least one second.
fn default_step(start: i64, end: i64) -> i64 {
    let seconds = ((end - start) as f64 / 1e9 / 250.0).floor().max(1.0);
    (seconds * 1e9) as i64
}

// --------------------------------------------------------------- metadata

/// The stream selector of the `query` parameter (empty: every stream).
fn selector_param(
    request: &ApiRequest,
    name: &str,
) -> Result<Vec<logql::pipeline::LabelMatcher>, Failure> {
    let Some(text) = request.form.get(name) else {
        return Ok(Vec::new());
    };
    let expr = logql::parse(text).map_err(|e| bad(e.to_string()))?;
    let log = match &expr {
        ast::Expr::Log(log) => log,
        ast::Expr::Metric(_) => {
            return Err(bad(format!(
                "invalid {name}: a stream selector is required, got a metric query"
            )));
        }
    };
    Ok(compile_selector(log, text)?)
}

async fn summaries(
    engine: &Engine,
    request: &ApiRequest,
    selector: &[logql::pipeline::LabelMatcher],
    with_sizes: bool,
) -> Result<Vec<fetch::StreamSummary>, Failure> {
    let range = time_range(request)?;
    let ctx = session(engine, &request.headers).await?;
    Ok(fetch::stream_summaries(&ctx, selector, range.start, range.end, with_sizes).await?)
}

async fn labels(State(engine): State<Arc<Engine>>, request: ApiRequest) -> Response {
    respond(run_labels(&engine, &request).await)
}

async fn run_labels(engine: &Engine, request: &ApiRequest) -> Outcome {
    let selector = selector_param(request, "query")?;
    let streams = summaries(engine, request, &selector, false).await?;
    let mut names: Vec<&str> = streams
        .iter()
        .flat_map(|s| s.labels.iter().map(|(n, _)| n.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    Ok(json::string_list(&names))
}

async fn label_values(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    request: ApiRequest,
) -> Response {
    respond(run_label_values(&engine, &name, &request).await)
}

async fn run_label_values(engine: &Engine, name: &str, request: &ApiRequest) -> Outcome {
    let selector = selector_param(request, "query")?;
    let streams = summaries(engine, request, &selector, false).await?;
    let mut values: Vec<&str> = streams
        .iter()
        .filter_map(|s| {
            s.labels
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        })
        .collect();
    values.sort_unstable();
    values.dedup();
    Ok(json::string_list(&values))
}

async fn series(State(engine): State<Arc<Engine>>, request: ApiRequest) -> Response {
    respond(run_series(&engine, &request).await)
}

async fn run_series(engine: &Engine, request: &ApiRequest) -> Outcome {
    let mut selectors = request.form.all("match[]");
    selectors.extend(request.form.all("match"));
    if selectors.is_empty() {
        selectors.push(String::new());
    }
    let mut found: Vec<crate::query::promql::Labels> = Vec::new();
    for text in selectors.iter() {
        let selector = if text.is_empty() {
            Vec::new()
        } else {
            let expr = logql::parse(text).map_err(|e| bad(e.to_string()))?;
            match &expr {
                ast::Expr::Log(log) => compile_selector(log, text)?,
                ast::Expr::Metric(_) => {
                    return Err(bad("invalid match[]: a stream selector is required"));
                }
            }
        };
        for s in summaries(engine, request, &selector, false).await? {
            if !found.contains(&s.labels) {
                found.push(s.labels);
            }
        }
    }
    found.sort_by(crate::query::promql::value::compare_labels);
    Ok(json::series_list(&found))
}

async fn index_stats(State(engine): State<Arc<Engine>>, request: ApiRequest) -> Response {
    respond(run_index_stats(&engine, &request).await)
}

async fn run_index_stats(engine: &Engine, request: &ApiRequest) -> Outcome {
    let selector = selector_param(request, "query")?;
    let streams = summaries(engine, request, &selector, true).await?;
    Ok(json::index_stats(&streams))
}

async fn format_query(request: ApiRequest) -> Response {
    respond(parse_query(&request).map(|(_, expr)| json::format_query(&expr.to_string())))
}

async fn build_info() -> Response {
    respond(Ok(json::build_info()))
}
