//! The Prometheus HTTP query API (`/api/v1/...`) on `--http-listen`, answering
//! like Prometheus 3.x so Grafana's Prometheus datasource, `promtool query`
//! and client libraries work unmodified. Every request belongs to the tenant
//! of its `X-Scope-OrgID` header and sees only that tenant's samples.
//!
//! * `GET|POST /api/v1/query`, `/api/v1/query_range` — PromQL;
//! * `GET|POST /api/v1/series`, `/api/v1/labels`, `GET /api/v1/label/<name>/values`;
//! * `GET|POST /api/v1/format_query`, `/api/v1/query_exemplars`;
//! * `GET /api/v1/metadata`, `/api/v1/status/buildinfo`.
//!
//! `params` reads parameters, `expr` checks PromQL text, `json` writes the
//! answers; evaluation is `crate::query::promql`.

mod expr;
pub(crate) mod json;
pub(crate) mod params;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use datafusion::prelude::SessionContext;

use self::params::{Form, invalid_parameter};
use super::push::{self, Rejection};
use crate::engine::Engine;
use crate::query::frontend::{self, sharding::ShardingLimits};
use crate::query::promql::{self, PromError, QueryOptions, QueryOutput, QueryValue};

/// Annotations of each kind returned with one answer; the rest are counted.
const MAX_ANNOTATIONS: usize = 10;

/// The routes, for `crate::server::http::router`.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(label_names).post(label_names))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/format_query", get(format_query).post(format_query))
        .route(
            "/api/v1/query_exemplars",
            get(query_exemplars).post(query_exemplars),
        )
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/status/buildinfo", get(build_info))
}

/// A request to the API: its headers (for the tenant) and its parameters.
pub struct ApiRequest {
    pub(crate) headers: HeaderMap,
    pub(crate) form: Form,
}

impl<S: Send + Sync> FromRequest<S> for ApiRequest {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let method = request.method().clone();
        let query = request.uri().query().map(str::to_owned);
        let headers = request.headers().clone();
        let body = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let form = Form::parse(&method, query.as_deref(), &headers, &body);
        Ok(ApiRequest { headers, form })
    }
}

/// A handler's answer: the JSON `data` and annotations, or 204 No Content.
enum Answer {
    Data {
        json: String,
        warnings: Vec<String>,
        infos: Vec<String>,
    },
    NoContent,
}

impl Answer {
    fn data(json: String) -> Self {
        Answer::Data {
            json,
            warnings: vec![],
            infos: vec![],
        }
    }
}

/// Why a request failed: the tenant was refused (plain text, as on the
/// write endpoints) or the API error Prometheus would answer.
enum Failure {
    Tenant(Rejection),
    Api(PromError),
}

impl From<PromError> for Failure {
    fn from(e: PromError) -> Self {
        Failure::Api(e)
    }
}

impl From<Rejection> for Failure {
    fn from(r: Rejection) -> Self {
        Failure::Tenant(r)
    }
}

type Outcome = Result<Answer, Failure>;

fn respond(outcome: Outcome) -> Response {
    match outcome {
        Ok(Answer::Data {
            json,
            warnings,
            infos,
        }) => json_response(
            StatusCode::OK,
            json::success(&json, &capped(warnings, "warning"), &capped(infos, "info")),
        ),
        Ok(Answer::NoContent) => StatusCode::NO_CONTENT.into_response(),
        Err(Failure::Tenant(rejection)) => rejection.into_response(),
        Err(Failure::Api(e)) => {
            let status =
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            json_response(status, json::error(e.error_type(), &e.to_string()))
        }
    }
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// At most [`MAX_ANNOTATIONS`], then `N more warning annotations omitted`
/// (`annotations.AsStrings`).
fn capped(mut texts: Vec<String>, kind: &str) -> Vec<String> {
    if texts.len() > MAX_ANNOTATIONS {
        let omitted = texts.len() - MAX_ANNOTATIONS;
        texts.truncate(MAX_ANNOTATIONS);
        texts.push(format!("{omitted} more {kind} annotations omitted"));
    }
    texts
}

/// The tenant's shared PromQL session (tables only: PromQL needs no views).
async fn session(engine: &Engine, headers: &HeaderMap) -> Result<SessionContext, Failure> {
    let tenant = push::tenant(engine, headers)?;
    Ok(tenant_session(engine, &tenant)?)
}

fn tenant_session(engine: &Engine, tenant: &str) -> Result<SessionContext, PromError> {
    engine
        .promql_session(tenant)
        .map_err(|e| PromError::Internal(e.to_string()))
}

/// The answer of a range query whose whole range is before `max_query_lookback`.
fn empty_matrix() -> QueryOutput {
    QueryOutput {
        value: QueryValue::Matrix(Vec::new()),
        warnings: Vec::new(),
        infos: Vec::new(),
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

// ---------------------------------------------------------------- queries

async fn query(State(engine): State<Arc<Engine>>, request: ApiRequest) -> Response {
    respond(run_instant_query(&engine, &request).await)
}

async fn run_instant_query(engine: &Engine, request: &ApiRequest) -> Outcome {
    let form = &request.form;
    let limit = params::limit_param(form)?;
    let time = params::time_param(form, "time", now_ms())?;
    let mut options = query_options(engine, form)?;
    let text = form.get("query").unwrap_or_default();
    expr::parse_query_param(text)?;
    let tenant = push::tenant(engine, &request.headers)?;
    options.max_fetched_series = max_fetched_series(engine, &tenant);
    let ctx = tenant_session(engine, &tenant)?;
    let sharding = ShardingLimits::of(&engine.distributor().limits().get(&tenant));
    let evaluation = engine
        .frontend()
        .promql_instant_query(&tenant, ctx, text, time, &options, sharding);
    let output = with_timeout(&options, async { Ok(evaluation.await?) }).await?;
    Ok(query_answer(output, limit))
}

async fn query_range(State(engine): State<Arc<Engine>>, request: ApiRequest) -> Response {
    respond(run_range_query(&engine, &request).await)
}

async fn run_range_query(engine: &Engine, request: &ApiRequest) -> Outcome {
    let form = &request.form;
    let limit = params::limit_param(form)?;
    let time = |name| {
        params::parse_time(form.get(name).unwrap_or_default())
            .map_err(|e| invalid_parameter(name, e))
    };
    let start = time("start")?;
    let end = time("end")?;
    if end < start {
        return Err(invalid_parameter("end", "end timestamp must not be before start time").into());
    }
    let step_ns = params::parse_duration(form.get("step").unwrap_or_default())
        .map_err(|e| invalid_parameter("step", e))?;
    // A step under a millisecond (which Prometheus' millisecond evaluator
    // would truncate to zero) is refused like a zero step.
    let step_ms = step_ns / 1_000_000;
    if step_ms <= 0 {
        return Err(invalid_parameter(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        )
        .into());
    }
    // Prometheus: end.Sub(start)/step > 11000, in nanoseconds.
    let steps = (end as i128 - start as i128) * 1_000_000 / step_ns as i128;
    if steps > promql::MAX_POINTS_PER_SERIES as i128 {
        return Err(PromError::BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
        )
        .into());
    }
    let mut options = query_options(engine, form)?;
    let text = form.get("query").unwrap_or_default();
    let parsed = expr::parse_query_param(text)?;
    let tenant = push::tenant(engine, &request.headers)?;
    options.max_fetched_series = max_fetched_series(engine, &tenant);
    let limits = engine.distributor().limits().get(&tenant);
    let Some(start) = frontend::apply_query_limits(&limits, start, end, step_ms, 1_000_000)
        .map_err(PromError::BadData)?
    else {
        return Ok(query_answer(empty_matrix(), limit));
    };
    let ctx = tenant_session(engine, &tenant)?;
    let evaluation = engine.frontend().promql_range_query(
        &tenant,
        ctx,
        text,
        &parsed,
        (start, end, step_ms),
        &options,
        ShardingLimits::of(&limits),
        false,
    );
    let output = with_timeout(&options, async { Ok(evaluation.await?) }).await?;
    Ok(query_answer(output, limit))
}

/// The tenant's `max_fetched_series_per_query`.
fn max_fetched_series(engine: &Engine, tenant: &str) -> usize {
    let limit = engine
        .distributor()
        .limits()
        .get(tenant)
        .max_fetched_series_per_query;
    usize::try_from(limit).unwrap_or(usize::MAX)
}

/// The engine settings of `[query]`, narrowed by the request's `timeout`
/// (it can only shorten the configured one) and `lookback_delta`.
fn query_options(engine: &Engine, form: &Form) -> Result<QueryOptions, PromError> {
    let mut options = engine.config().query.promql_options();
    if let Some(timeout) = form.get("timeout") {
        let ns = params::parse_duration(timeout).map_err(|e| invalid_parameter("timeout", e))?;
        let requested = std::time::Duration::from_nanos(ns.max(0) as u64);
        options.timeout = options.timeout.min(requested);
    }
    if let Some(lookback) = form.get("lookback_delta") {
        let ns = params::parse_duration(lookback).map_err(|e| {
            PromError::BadData(format!("error parsing lookback delta duration: {e}"))
        })?;
        // Zero or negative keeps the default, as in Prometheus.
        if ns >= 1_000_000 {
            options.lookback_ms = ns / 1_000_000;
        }
    }
    // Thanos: which downsampled data a range query may read (instant queries read raw).
    if let Some(resolution) = form.get("max_source_resolution") {
        options.max_source_resolution = promql::SourceResolution::parse(resolution)
            .map_err(|e| invalid_parameter("max_source_resolution", e))?;
    }
    Ok(options)
}

/// Runs an evaluation under the query timeout (the evaluator checks it too;
/// this bounds time spent outside its checks).
async fn with_timeout(
    options: &QueryOptions,
    evaluation: impl Future<Output = Result<QueryOutput, PromError>>,
) -> Result<QueryOutput, PromError> {
    match tokio::time::timeout(options.timeout, evaluation).await {
        Ok(result) => result.map_err(query_error),
        Err(_) => Err(PromError::Timeout("expression evaluation".into())),
    }
}

/// Evaluator errors as Prometheus words them: a query it refuses to start
/// is an invalid `query` parameter.
fn query_error(e: PromError) -> PromError {
    match e {
        PromError::BadData(m) if !m.starts_with("invalid parameter") => {
            invalid_parameter("query", m)
        }
        other => other,
    }
}

/// The answer to a query: matrices sorted by label set, vectors and
/// matrices cut to `limit` series with a warning.
fn query_answer(output: QueryOutput, limit: usize) -> Answer {
    let QueryOutput {
        mut value,
        mut warnings,
        infos,
    } = output;
    if let QueryValue::Matrix(series) = &mut value {
        series.sort_by(|a, b| promql::value::compare_labels(&a.labels, &b.labels));
    }
    let truncated = match &mut value {
        QueryValue::Vector(v) if limit > 0 && v.len() > limit => {
            v.truncate(limit);
            true
        }
        QueryValue::Matrix(m) if limit > 0 && m.len() > limit => {
            m.truncate(limit);
            true
        }
        _ => false,
    };
    if truncated {
        warnings.push("results truncated due to limit".into());
    }
    Answer::Data {
        json: json::query_data(&value),
        warnings,
        infos,
    }
}

// --------------------------------------------------------------- metadata

async fn series(State(engine): State<Arc<Engine>>, request: ApiRequest) -> Response {
    respond(run_series(&engine, &request).await)
}

async fn run_series(engine: &Engine, request: &ApiRequest) -> Outcome {
    let form = &request.form;
    let selectors = form.all("match[]");
    if selectors.is_empty() {
        return Err(PromError::BadData("no match[] parameter provided".into()).into());
    }
    let limit = params::limit_param(form)?;
    let (start, end) = params::optional_range(form)?;
    expr::check_selectors(&selectors).map_err(|e| invalid_parameter("match[]", e))?;
    let ctx = session(engine, &request.headers).await?;
    let mut found = promql::select_series(&ctx, &selectors, start, end).await?;
    let warnings = truncate(&mut found, limit);
    let mut w = json::JsonWriter::new();
    w.raw("[");
    for (i, labels) in found.iter().enumerate() {
        if i > 0 {
            w.raw(",");
        }
        w.labels(labels);
    }
    w.raw("]");
    Ok(Answer::Data {
        json: w.finish(),
        warnings,
        infos: vec![],
    })
}

async fn label_names(State(engine): State<Arc<Engine>>, request: ApiRequest) -> Response {
    respond(run_label_names(&engine, &request).await)
}

async fn run_label_names(engine: &Engine, request: &ApiRequest) -> Outcome {
    let q = label_query(engine, request).await?;
    // Sorted and distinct already.
    let names = promql::label_names(&q.ctx, &q.selectors, q.start, q.end)
        .await
        .map_err(as_execution_error)?;
    string_list(names, q.limit)
}

/// What the label-name and label-value endpoints share: the tenant's
/// session, checked `match[]` selectors, the time range and the limit.
struct LabelQuery {
    ctx: SessionContext,
    selectors: Vec<String>,
    start: Option<i64>,
    end: Option<i64>,
    limit: usize,
}

async fn label_query(engine: &Engine, request: &ApiRequest) -> Result<LabelQuery, Failure> {
    let form = &request.form;
    let limit = params::limit_param(form)?;
    let (start, end) = params::optional_range(form)?;
    let selectors = form.all("match[]");
    expr::check_selectors(&selectors).map_err(PromError::BadData)?;
    let ctx = session(engine, &request.headers).await?;
    Ok(LabelQuery {
        ctx,
        selectors,
        start,
        end,
        limit,
    })
}

async fn label_values(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    request: ApiRequest,
) -> Response {
    respond(run_label_values(&engine, &name, &request).await)
}

async fn run_label_values(engine: &Engine, name: &str, request: &ApiRequest) -> Outcome {
    let name = match name.strip_prefix("U__") {
        Some(escaped) => unescape_label_name(escaped).unwrap_or_else(|| name.to_string()),
        None => name.to_string(),
    };
    if name.is_empty() {
        return Err(
            PromError::BadData(format!("invalid label name: {}", params::go_quote(&name))).into(),
        );
    }
    let q = label_query(engine, request).await?;
    // Sorted and distinct already.
    let values = promql::label_values(&q.ctx, &name, &q.selectors, q.start, q.end)
        .await
        .map_err(as_execution_error)?;
    string_list(values, q.limit)
}

/// Storage failures while listing labels are `execution` errors in
/// Prometheus (its label handlers answer `errorExec`).
fn as_execution_error(e: PromError) -> PromError {
    match e {
        PromError::Internal(m) => PromError::Execution(m),
        other => other,
    }
}

/// Cuts `items` to `limit` (0 = all); the warning Prometheus adds when it did.
fn truncate<T>(items: &mut Vec<T>, limit: usize) -> Vec<String> {
    if limit > 0 && items.len() > limit {
        items.truncate(limit);
        vec!["results truncated due to limit".into()]
    } else {
        vec![]
    }
}

fn string_list(mut items: Vec<String>, limit: usize) -> Outcome {
    let warnings = truncate(&mut items, limit);
    let mut w = json::JsonWriter::new();
    w.string_array(&items);
    Ok(Answer::Data {
        json: w.finish(),
        warnings,
        infos: vec![],
    })
}

/// Prometheus 3.x' value-encoding escape of a label name in a URL path
/// (`model.UnescapeName` with `ValueEncodingEscaping`, after the `U__`
/// prefix): `__` is `_`, `_<hex>_` is that code point, the rest as is.
/// `None` when the escape is malformed (the name is then taken literally).
fn unescape_label_name(escaped: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        let mut code: u32 = 0;
        let mut digits = 0;
        loop {
            match chars.next()? {
                '_' if digits == 0 => {
                    out.push('_');
                    break;
                }
                '_' => {
                    out.push(char::from_u32(code)?);
                    break;
                }
                h => {
                    if digits == 6 {
                        return None;
                    }
                    code = code * 16 + h.to_digit(16)?;
                    digits += 1;
                }
            }
        }
    }
    Some(out)
}

// ------------------------------------------------------------------ other

async fn format_query(request: ApiRequest) -> Response {
    let text = request.form.get("query").unwrap_or_default();
    respond(
        expr::parse_query_param(text)
            .map(|expr| {
                let mut w = json::JsonWriter::new();
                w.string(&expr.prettify());
                Answer::data(w.finish())
            })
            .map_err(Failure::from),
    )
}

/// Exemplars the metrics generator recorded (kept in memory, see
/// `ingest::metrics_generator::exemplars`) of the series any selector of
/// the query matches, in `[start, end]`; a query that selects no series
/// gets 204 like Prometheus.
async fn query_exemplars(State(engine): State<Arc<Engine>>, request: ApiRequest) -> Response {
    respond(run_query_exemplars(&engine, &request).await)
}

async fn run_query_exemplars(engine: &Engine, request: &ApiRequest) -> Outcome {
    let form = &request.form;
    let (start, end) = params::optional_range(form)?;
    if let (Some(start), Some(end)) = (start, end)
        && end < start
    {
        return Err(
            PromError::BadData("end timestamp must not be before start timestamp".into()).into(),
        );
    }
    let expr =
        expr::parse_expr(form.get("query").unwrap_or_default()).map_err(PromError::BadData)?;
    let tenant = push::tenant(engine, &request.headers)?;
    let selectors = expr::selectors(&expr);
    if selectors.is_empty() {
        return Ok(Answer::NoContent);
    }
    let sets: Vec<_> = selectors
        .iter()
        .map(|(name, matchers)| promql::fetch::matcher_sets(name.as_deref(), matchers))
        .collect();
    let found = engine.exemplars().query(
        &tenant,
        &sets,
        start.unwrap_or(i64::MIN),
        end.unwrap_or(i64::MAX),
    );
    let mut w = json::JsonWriter::new();
    w.raw("[");
    for (i, (series, exemplars)) in found.iter().enumerate() {
        if i > 0 {
            w.raw(",");
        }
        w.raw("{").key("seriesLabels").labels(series);
        w.raw(",").key("exemplars").raw("[");
        for (j, e) in exemplars.iter().enumerate() {
            if j > 0 {
                w.raw(",");
            }
            w.raw("{").key("labels").labels(&e.labels);
            w.raw(",").key("value").string(&json::sample_value(e.value));
            w.raw(",")
                .key("timestamp")
                .raw(&json::sample_timestamp(e.timestamp_ms));
            w.raw("}");
        }
        w.raw("]}");
    }
    w.raw("]");
    Ok(Answer::data(w.finish()))
}

/// o11ydb keeps no metric metadata (type, help, unit) yet — remote write 1.0
/// sends it separately and it is not stored — so the answer is always `{}`.
async fn metadata(State(engine): State<Arc<Engine>>, request: ApiRequest) -> Response {
    respond(push::tenant(&engine, &request.headers).map_or_else(
        |r| Err(Failure::Tenant(r)),
        |_| Ok(Answer::data("{}".into())),
    ))
}

/// Prometheus' build information fields, which Grafana reads to recognise
/// the server (no `features` object: a plain Prometheus, no ruler API).
async fn build_info() -> Response {
    let mut w = json::JsonWriter::new();
    w.raw("{");
    let fields = [
        ("version", env!("CARGO_PKG_VERSION")),
        (
            "revision",
            option_env!("O11YDB_GIT_REVISION").unwrap_or("unknown"),
        ),
        (
            "branch",
            option_env!("O11YDB_GIT_BRANCH").unwrap_or("unknown"),
        ),
        ("buildUser", ""),
        ("buildDate", ""),
        ("goVersion", ""),
    ];
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            w.raw(",");
        }
        w.key(key).string(value);
    }
    w.raw("}");
    respond(Ok(Answer::data(w.finish())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_encoding_escapes() {
        assert_eq!(
            unescape_label_name("my__label").as_deref(),
            Some("my_label")
        );
        assert_eq!(
            unescape_label_name("http_2e_status").as_deref(),
            Some("http.status")
        );
        assert_eq!(
            unescape_label_name("_1f600_smile").as_deref(),
            Some("\u{1f600}smile")
        );
        assert_eq!(unescape_label_name("bad_zz_"), None);
        assert_eq!(unescape_label_name("unterminated_2e"), None);
    }

    #[test]
    fn annotations_are_capped_at_ten() {
        let many: Vec<String> = (0..12).map(|i| i.to_string()).collect();
        let capped = capped(many, "warning");
        assert_eq!(capped.len(), 11);
        assert_eq!(capped[10], "2 more warning annotations omitted");
    }
}
