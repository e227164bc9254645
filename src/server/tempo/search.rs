//! TraceQL over the Tempo HTTP API: request parameters → a parsed query →
//! [`crate::query::traceql`] → Tempo's JSON.
//!
//! * `GET /api/search` — `q` (TraceQL; or the older `tags=k=v …`),
//!   `start`/`end` (unix seconds; the last hour by default), `limit`
//!   (traces, default 20), `spss` (spans per spanset, default 3),
//!   `minDuration`/`maxDuration` (trace duration) → `{"traces": [{traceID,
//!   rootServiceName, rootTraceName, startTimeUnixNano, durationMs, spanSet,
//!   spanSets: [{spans: [...], matched, attributes}]}], "metrics": {...}}`.
//! * `GET /api/metrics/query_range` — `q`, `start`, `end`, `step` →
//!   `{"series": [{labels, samples: [{timestampMs, value}], promLabels}]}`.
//! * `GET /api/metrics/query` — `q`, `start`, `end` (or `since`) → one
//!   value per series over the whole window.
//!
//! Parse errors answer 400 with the position (`parse error at line 1, col
//! 9: …`), limits 400 naming the limit and the value.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::{DEFAULT_WINDOW_NS, Failure, SECOND_NS, count_param, json_response, now_ns};
use crate::engine::Engine;
use crate::query::traceql::ast::Root;
use crate::query::traceql::eval::Value;
use crate::query::traceql::metrics::{self, MetricsOptions, Series};
use crate::query::traceql::search::{self, SearchOptions, TraceMatch};
use crate::server::prometheus::ApiRequest;
use crate::server::prometheus::params::parse_duration;
use crate::server::push;

const DEFAULT_LIMIT: usize = 20;
const DEFAULT_SPANS_PER_SPANSET: usize = 3;
/// Exemplars per metrics series when the request does not say.
const DEFAULT_EXEMPLARS: usize = 100;
const MAX_EXEMPLARS: usize = 10_000;

pub(crate) async fn search(State(engine): State<Arc<Engine>>, request: ApiRequest) -> Response {
    match run_search(&engine, &request).await {
        Ok(body) => json_response(&body),
        Err(failure) => failure.into_response(),
    }
}

pub(crate) async fn metrics_query_range(
    State(engine): State<Arc<Engine>>,
    request: ApiRequest,
) -> Response {
    match run_metrics(&engine, &request, false).await {
        Ok(body) => json_response(&body),
        Err(failure) => failure.into_response(),
    }
}

pub(crate) async fn metrics_query(
    State(engine): State<Arc<Engine>>,
    request: ApiRequest,
) -> Response {
    match run_metrics(&engine, &request, true).await {
        Ok(body) => json_response(&body),
        Err(failure) => failure.into_response(),
    }
}

/// A time parameter: unix seconds (integer or fraction), unix nanoseconds
/// (integers past year 33658 in seconds), or RFC 3339.
fn time_param(request: &ApiRequest, name: &str) -> Result<Option<i64>, Failure> {
    let Some(text) = request.form.get(name) else {
        return Ok(None);
    };
    let text = text.trim();
    if let Ok(i) = text.parse::<i64>() {
        return Ok(Some(if i > 1_000_000_000_000 {
            i
        } else {
            i.saturating_mul(SECOND_NS)
        }));
    }
    if let Ok(f) = text.parse::<f64>()
        && f.is_finite()
    {
        return Ok(Some((f * 1e9) as i64));
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_nanos_opt());
    }
    Err(Failure::BadRequest(format!(
        "invalid {name}: {text:?} is neither unix epoch seconds nor RFC 3339"
    )))
}

/// `(start, end)` in nanoseconds: `end` defaults to now, `start` to
/// `end − DEFAULT_WINDOW_NS` (or `end − since`).
fn window(request: &ApiRequest) -> Result<(i64, i64), Failure> {
    let end = time_param(request, "end")?.unwrap_or_else(now_ns);
    let span = match request.form.get("since") {
        Some(since) => duration_param("since", since)?,
        None => DEFAULT_WINDOW_NS,
    };
    let start = time_param(request, "start")?.unwrap_or(end.saturating_sub(span));
    if end <= start {
        return Err(Failure::BadRequest(format!(
            "http parameter start must be before end. received start={} end={}",
            start / SECOND_NS,
            end / SECOND_NS
        )));
    }
    Ok((start, end))
}

fn duration_param(name: &str, text: &str) -> Result<i64, Failure> {
    parse_duration(text.trim())
        .map_err(|e| Failure::BadRequest(format!("invalid {name}: {e}")))
        .and_then(|d| {
            if d < 0 {
                Err(Failure::BadRequest(format!(
                    "invalid {name}: {text:?} is negative"
                )))
            } else {
                Ok(d)
            }
        })
}

/// The query of a request: `q`, or the `tags` logfmt pairs as TraceQL.
fn query_text(request: &ApiRequest) -> Result<String, Failure> {
    if let Some(q) = request.form.get("q").filter(|q| !q.trim().is_empty()) {
        return Ok(q.to_string());
    }
    let Some(tags) = request.form.get("tags").filter(|t| !t.trim().is_empty()) else {
        return Ok("{}".into());
    };
    let mut conditions = Vec::new();
    for (key, value) in logfmt_pairs(tags)? {
        let quoted = crate::query::go_text::go_quote(&value);
        conditions.push(match key.as_str() {
            "name" => format!("name = {quoted}"),
            "status.code" => format!("status = {value}"),
            _ => format!(".{} = {quoted}", attribute_name(&key)),
        });
    }
    Ok(format!("{{ {} }}", conditions.join(" && ")))
}

/// `key` as a TraceQL attribute name (quoted when it needs to be).
fn attribute_name(key: &str) -> String {
    if key
        .chars()
        .all(crate::query::traceql::lexer::is_attribute_char)
        && !key.contains('"')
    {
        key.to_string()
    } else {
        format!("\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// `k=v k2="v 2"` pairs.
fn logfmt_pairs(text: &str) -> Result<Vec<(String, String)>, Failure> {
    let mut pairs = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else {
            return Err(Failure::BadRequest(format!(
                "invalid tags: {rest:?} is not key=value"
            )));
        };
        let key = rest[..eq].trim().to_string();
        rest = &rest[eq + 1..];
        let value = if rest.starts_with('"') {
            let (v, len) = crate::query::go_text::go_unquote_prefix(rest).map_err(|(_, m)| {
                Failure::BadRequest(format!("invalid tags: value of {key}: {m}"))
            })?;
            rest = &rest[len..];
            v
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let v = rest[..end].to_string();
            rest = &rest[end..];
            v
        };
        if key.is_empty() {
            return Err(Failure::BadRequest("invalid tags: empty key".into()));
        }
        pairs.push((key, value));
        rest = rest.trim_start();
    }
    Ok(pairs)
}

fn parse_query(text: &str) -> Result<Root, Failure> {
    crate::query::traceql::parse(text).map_err(|e| Failure::BadRequest(e.to_string()))
}

async fn run_search(engine: &Engine, request: &ApiRequest) -> Result<Json, Failure> {
    let options = engine.config().query.traceql_options();
    let text = query_text(request)?;
    let root = parse_query(&text)?;
    search::spans_query(&root).map_err(|e| Failure::BadRequest(e.to_string()))?;
    let (start_ns, end_ns) = window(request)?;
    let limit = count_param(request, "limit")?.unwrap_or(DEFAULT_LIMIT);
    if limit > options.max_search_limit {
        return Err(Failure::BadRequest(format!(
            "invalid limit: {limit} is more than the maximum of {} (traceql_max_search_limit)",
            options.max_search_limit
        )));
    }
    let spss = count_param(request, "spss")?.unwrap_or(DEFAULT_SPANS_PER_SPANSET);
    let duration = |name: &str| -> Result<Option<i64>, Failure> {
        request
            .form
            .get(name)
            .filter(|t| !t.is_empty())
            .map(|t| duration_param(name, t))
            .transpose()
    };
    let min_duration_ns = duration("minDuration")?;
    let max_duration_ns = duration("maxDuration")?;
    if let (Some(min), Some(max)) = (min_duration_ns, max_duration_ns)
        && max < min
    {
        return Err(Failure::BadRequest(
            "invalid maxDuration: it is less than minDuration".into(),
        ));
    }
    let tenant = push::tenant(engine, &request.headers)?;
    let ctx = engine.tables_session(&tenant).map_err(Failure::internal)?;
    let opts = SearchOptions {
        start_ns,
        end_ns,
        limit,
        spans_per_spanset: spss,
        min_duration_ns,
        max_duration_ns,
        max_candidates: options.max_candidates,
    };
    let queued = engine
        .frontend()
        .run(&tenant, "traceql", search::search(&ctx, &root, &opts));
    let result = tokio::time::timeout(options.timeout, queued)
        .await
        .map_err(|_| Failure::Internal(format!("query timed out after {:?}", options.timeout)))??;
    Ok(json!({
        "traces": result.traces.iter().map(trace_json).collect::<Vec<_>>(),
        "metrics": {
            "inspectedTraces": result.inspected_traces,
            "inspectedSpans": result.inspected_spans.to_string(),
            "inspectedBytes": "0",
            "completedJobs": 1,
            "totalJobs": 1,
        },
    }))
}

/// An attribute value as OTLP JSON `AnyValue`.
fn any_value(v: &Value) -> Json {
    match v {
        Value::Int(i) => json!({"intValue": i.to_string()}),
        Value::Float(f) => json!({"doubleValue": f}),
        Value::Bool(b) => json!({"boolValue": b}),
        other => json!({"stringValue": other.render()}),
    }
}

fn attributes_json(attrs: &[(String, Value<'static>)]) -> Vec<Json> {
    attrs
        .iter()
        .map(|(k, v)| json!({"key": k, "value": any_value(v)}))
        .collect()
}

/// Trace ids in search results are hex without leading zeros, as Tempo
/// prints them.
fn search_trace_id(id: &str) -> String {
    let trimmed = id.trim_start_matches('0');
    if trimmed.is_empty() { "0" } else { trimmed }.to_string()
}

fn trace_json(t: &TraceMatch) -> Json {
    let spansets: Vec<Json> = t
        .spansets
        .iter()
        .map(|ss| {
            let spans: Vec<Json> = ss
                .spans
                .iter()
                .map(|s| {
                    let mut span = json!({
                        "spanID": s.span_id,
                        "name": s.name,
                        "startTimeUnixNano": s.start_ns.to_string(),
                        "durationNanos": s.duration_ns.to_string(),
                    });
                    let mut attributes = attributes_json(&s.attributes);
                    if !s.attributes.iter().any(|(k, _)| k == "service.name") {
                        attributes.push(
                            json!({"key": "service.name", "value": {"stringValue": s.service}}),
                        );
                    }
                    span["attributes"] = Json::Array(attributes);
                    span
                })
                .collect();
            let mut set = json!({"spans": spans, "matched": ss.matched});
            if !ss.attributes.is_empty() {
                set["attributes"] = Json::Array(attributes_json(&ss.attributes));
            }
            set
        })
        .collect();
    let mut trace = json!({
        "traceID": search_trace_id(&t.trace_id),
        "startTimeUnixNano": t.start_ns.to_string(),
        "durationMs": t.duration_ns / 1_000_000,
    });
    if let Some(s) = &t.root_service_name {
        trace["rootServiceName"] = json!(s);
    } else {
        trace["rootServiceName"] = json!("<root span not yet received>");
    }
    if let Some(n) = &t.root_trace_name {
        trace["rootTraceName"] = json!(n);
    }
    if let Some(first) = spansets.first() {
        trace["spanSet"] = first.clone();
    }
    trace["spanSets"] = Json::Array(spansets);
    trace
}

fn prom_labels(labels: &[(String, String)]) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", crate::query::go_text::go_quote(v)))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// Series labels as OTLP key-values: the quantile (`p`) and bucket
/// (`__bucket`) labels are numbers (`doubleValue`), as Tempo writes them;
/// attribute values are text, as stored.
fn labels_json(labels: &[(String, String)]) -> Vec<Json> {
    labels
        .iter()
        .map(|(k, v)| match v.parse::<f64>() {
            Ok(f) if k == "p" || k == "__bucket" => json!({"key": k, "value": {"doubleValue": f}}),
            _ => json!({"key": k, "value": {"stringValue": v}}),
        })
        .collect()
}

fn finite(v: f64) -> Json {
    if v.is_finite() {
        json!(v)
    } else {
        json!(v.to_string())
    }
}

async fn run_metrics(
    engine: &Engine,
    request: &ApiRequest,
    instant: bool,
) -> Result<Json, Failure> {
    let options = engine.config().query.traceql_options();
    let Some(text) = request.form.get("q").filter(|q| !q.trim().is_empty()) else {
        return Err(Failure::BadRequest(
            "missing q: a TraceQL metrics query".into(),
        ));
    };
    let root = parse_query(text)?;
    if !matches!(root.query, crate::query::traceql::ast::Query::Metrics(_)) {
        return Err(Failure::BadRequest(
            "not a metrics query: add a metrics function such as | rate()".into(),
        ));
    }
    let (start_ns, end_ns) = window(request)?;
    let step_ns = if instant {
        end_ns - start_ns
    } else {
        match request.form.get("step").filter(|s| !s.is_empty()) {
            Some(step) => {
                let step = duration_param("step", step)?;
                if step == 0 {
                    return Err(Failure::BadRequest(
                        "invalid step: it must be positive".into(),
                    ));
                }
                step
            }
            // Tempo's default: about 240 points, at least a second.
            None => ((end_ns - start_ns) / 240).max(SECOND_NS),
        }
    };
    let points = (end_ns - start_ns) / step_ns.max(1);
    if points > 11_000 {
        return Err(Failure::BadRequest(format!(
            "exceeded maximum resolution of 11,000 points per timeseries: {points} points; try a larger step"
        )));
    }
    let tenant = push::tenant(engine, &request.headers)?;
    let ctx = engine.tables_session(&tenant).map_err(Failure::internal)?;
    let opts = MetricsOptions {
        start_ns,
        end_ns,
        step_ns,
        instant,
        exemplars: match count_param(request, "exemplars")? {
            Some(n) => n.min(MAX_EXEMPLARS),
            None => DEFAULT_EXEMPLARS,
        },
        max_series: options.max_series,
        max_candidates: options.max_candidates,
    };
    let evaluation = async {
        metrics::query_range(&ctx, &root, &opts)
            .await
            .map_err(|e| match e {
                datafusion::error::DataFusionError::ResourcesExhausted(m)
                | datafusion::error::DataFusionError::NotImplemented(m)
                | datafusion::error::DataFusionError::Plan(m) => Failure::BadRequest(m),
                other => Failure::internal(other),
            })
    };
    let queued = engine.frontend().run(&tenant, "traceql", evaluation);
    let series = tokio::time::timeout(options.timeout, queued)
        .await
        .map_err(|_| Failure::Internal(format!("query timed out after {:?}", options.timeout)))??;
    let series: Vec<Json> = series.iter().map(|s| series_json(s, instant)).collect();
    Ok(json!({"series": series, "metrics": {"completedJobs": 1, "totalJobs": 1}}))
}

fn series_json(s: &Series, instant: bool) -> Json {
    let mut out = json!({
        "labels": labels_json(&s.labels),
        "promLabels": prom_labels(&s.labels),
    });
    if instant {
        out["value"] = s.samples.last().map_or(json!(0), |(_, v)| finite(*v));
    } else {
        out["samples"] = Json::Array(
            s.samples
                .iter()
                .map(|(t, v)| json!({"timestampMs": t.to_string(), "value": finite(*v)}))
                .collect(),
        );
        out["exemplars"] = Json::Array(
            s.exemplars
                .iter()
                .map(|e| {
                    json!({
                        "labels": [
                            {"key": "trace:id", "value": {"stringValue": e.trace_id}},
                            {"key": "span:id", "value": {"stringValue": e.span_id}},
                        ],
                        "value": finite(e.value),
                        "timestampMs": e.timestamp_ms.to_string(),
                    })
                })
                .collect(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_become_traceql() {
        let pairs = logfmt_pairs(r#"service.name=api http.url="/a b" name=GET"#).unwrap();
        assert_eq!(pairs.len(), 3);
        assert_eq!(pairs[1], ("http.url".into(), "/a b".into()));
        assert!(logfmt_pairs("novalue").is_err());
        assert_eq!(search_trace_id("00ab"), "ab");
        assert_eq!(prom_labels(&[("a".into(), "x\"y".into())]), r#"{a="x\"y"}"#);
        assert_eq!(
            labels_json(&[("p".into(), "0.9".into()), ("span.p".into(), "1".into())]),
            [
                json!({"key": "p", "value": {"doubleValue": 0.9}}),
                json!({"key": "span.p", "value": {"stringValue": "1"}}),
            ]
        );
    }
}
