//! Tag names and values for search editors: `GET /api/search/tags`,
//! `/api/v2/search/tags`, `/api/search/tag/<tag>/values` and
//! `/api/v2/search/tag/<tag>/values`.
//!
//! Names and values are read from the tenant's `spans` that start inside
//! the window `start`..`end` (unix seconds; without them the last hour,
//! Tempo's "recent data"): attribute keys of the `attributes`,
//! `resource_attributes`, event and link attribute maps, distinct values of
//! one key or of an intrinsic column. Intrinsic names are a fixed list, and
//! `status`/`kind` have fixed values, as in Tempo. Every answer is sorted
//! and cut once its names or values reach `[query]
//! max_bytes_per_tag_values_query` bytes (Tempo's limit of that name) or
//! the request's `limit`. Values are all typed `string`: the `spans` table
//! keeps attribute values as text. A TraceQL filter in `q` narrows v2 tag
//! values to spans satisfying its span-level conditions.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use datafusion::dataframe::DataFrame;
use datafusion::functions::core::expr_fn::get_field;
use datafusion::functions_nested::expr_fn::map_keys;
use datafusion::prelude::{Expr, SessionContext, col, lit};
use futures::StreamExt;
use serde_json::{Value, json};

use super::{
    DEFAULT_WINDOW_NS, Failure, SECOND_NS, count_param, json_response, now_ns, session, time_bounds,
};
use crate::engine::Engine;
use crate::server::prometheus::ApiRequest;

/// The intrinsic tag names Tempo lists under the `intrinsic` scope.
pub(crate) const INTRINSIC_TAGS: [&str; 25] = [
    "duration",
    "name",
    "status",
    "statusMessage",
    "kind",
    "rootServiceName",
    "rootName",
    "traceDuration",
    "event:name",
    "event:timeSinceStart",
    "link:spanID",
    "link:traceID",
    "instrumentation:name",
    "instrumentation:version",
    "trace:id",
    "span:id",
    "span:parentID",
    "span:status",
    "span:statusMessage",
    "span:duration",
    "span:name",
    "span:kind",
    "trace:rootName",
    "trace:rootService",
    "trace:duration",
];

/// A TraceQL attribute scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Span,
    Resource,
    Event,
    Link,
    Instrumentation,
}

impl Scope {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Scope::Span => "span",
            Scope::Resource => "resource",
            Scope::Event => "event",
            Scope::Link => "link",
            Scope::Instrumentation => "instrumentation",
        }
    }

    fn parse(name: &str) -> Option<Scope> {
        Some(match name {
            "span" => Scope::Span,
            "resource" => Scope::Resource,
            "event" => Scope::Event,
            "link" => Scope::Link,
            "instrumentation" => Scope::Instrumentation,
            _ => return None,
        })
    }
}

/// The `scope` parameter of the tag name endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScopeParam {
    /// Absent, empty or `none`.
    All,
    Intrinsic,
    Only(Scope),
}

fn scope_param(request: &ApiRequest) -> Result<ScopeParam, Failure> {
    match request.form.get("scope") {
        None | Some("none") => Ok(ScopeParam::All),
        Some("intrinsic") => Ok(ScopeParam::Intrinsic),
        Some(other) => Scope::parse(other).map(ScopeParam::Only).ok_or_else(|| {
            Failure::BadRequest(format!(
                "invalid scope: {other:?} (one of span, resource, event, link, instrumentation, intrinsic, none)"
            ))
        }),
    }
}

/// What a v2 tag name (a TraceQL identifier) designates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tag {
    /// An attribute looked up in each of `scopes` (`.name` means span and resource).
    Attribute {
        scopes: Vec<Scope>,
        name: String,
    },
    Intrinsic(Intrinsic),
}

/// The intrinsics whose values can be listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intrinsic {
    Name,
    Status,
    StatusMessage,
    Kind,
    RootServiceName,
    RootName,
    /// `duration`, `traceDuration`, …: no values to list (Tempo answers none).
    Duration,
    EventName,
    InstrumentationName,
    InstrumentationVersion,
    /// Ids and times: valid names, values not listed.
    Unlisted,
}

/// Parses a tag name as TraceQL names attributes and intrinsics:
/// `resource.service.name`, `span.http.method`, `.foo`,
/// `span."name with spaces"`, `status`, `span:name`, …
pub(crate) fn parse_tag(text: &str) -> Result<Tag, Failure> {
    let bad = |why: &str| {
        Failure::BadRequest(format!(
            "please provide a valid tagName: {text:?} {why} (a TraceQL attribute such as \
             resource.service.name, span.http.method or .name, or an intrinsic such as status)"
        ))
    };
    let intrinsic = match text {
        "name" | "span:name" => Some(Intrinsic::Name),
        "status" | "span:status" => Some(Intrinsic::Status),
        "statusMessage" | "span:statusMessage" => Some(Intrinsic::StatusMessage),
        "kind" | "span:kind" => Some(Intrinsic::Kind),
        "rootServiceName" | "trace:rootService" => Some(Intrinsic::RootServiceName),
        "rootName" | "trace:rootName" => Some(Intrinsic::RootName),
        "duration" | "span:duration" | "traceDuration" | "trace:duration" => {
            Some(Intrinsic::Duration)
        }
        "event:name" => Some(Intrinsic::EventName),
        "instrumentation:name" => Some(Intrinsic::InstrumentationName),
        "instrumentation:version" => Some(Intrinsic::InstrumentationVersion),
        "event:timeSinceStart"
        | "link:spanID"
        | "link:traceID"
        | "trace:id"
        | "span:id"
        | "span:parentID"
        | "span:childCount"
        | "parent"
        | "traceStartTime" => Some(Intrinsic::Unlisted),
        _ => None,
    };
    if let Some(i) = intrinsic {
        return Ok(Tag::Intrinsic(i));
    }
    let (scopes, rest) = if let Some(rest) = text.strip_prefix('.') {
        (vec![Scope::Span, Scope::Resource], rest)
    } else {
        let Some((scope, rest)) = text.split_once('.') else {
            return Err(bad("is neither an intrinsic nor a scoped attribute"));
        };
        let Some(scope) = Scope::parse(scope) else {
            return Err(bad(&format!("has an unknown scope {scope:?}")));
        };
        (vec![scope], rest)
    };
    let name = unquote(rest).ok_or_else(|| bad("has an unterminated quoted name"))?;
    if name.is_empty() {
        return Err(bad("has an empty attribute name"));
    }
    Ok(Tag::Attribute { scopes, name })
}

/// A TraceQL attribute name, quoted (`"a b"`, with `\"` and `\\`) or not.
fn unquote(text: &str) -> Option<String> {
    let Some(inner) = text.strip_prefix('"') else {
        return Some(text.to_string());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next()?);
        } else if c == '"' {
            return None;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// The window searched: `[start, end]` in ns (`end` covers its whole second).
fn window(request: &ApiRequest) -> Result<(i64, i64), Failure> {
    let (start, end) = time_bounds(request)?;
    let end = end.map_or_else(now_ns, |e| e.saturating_add(SECOND_NS - 1));
    let start = start.unwrap_or(end.saturating_sub(DEFAULT_WINDOW_NS));
    Ok((start, end))
}

/// The tenant's spans starting inside the window.
async fn spans_in(ctx: &SessionContext, (start, end): (i64, i64)) -> Result<DataFrame, Failure> {
    let ts = |ns: i64| {
        lit(datafusion::common::ScalarValue::TimestampNanosecond(
            Some(ns),
            Some("UTC".into()),
        ))
    };
    Ok(ctx.table("spans").await?.filter(
        col("start_time")
            .gt_eq(ts(start))
            .and(col("start_time").lt_eq(ts(end))),
    )?)
}

/// Distinct non-empty texts of `sources` (frames of one text column `v`),
/// sorted, cut by the byte budget and `limit`.
async fn distinct_texts(
    sources: Vec<DataFrame>,
    budget: &mut Budget,
    limit: Option<usize>,
) -> Result<Vec<String>, Failure> {
    let mut sources = sources.into_iter();
    let Some(first) = sources.next() else {
        return Ok(Vec::new());
    };
    let mut all = first;
    for next in sources {
        all = all.union(next)?;
    }
    let df = all
        .filter(col("v").is_not_null().and(col("v").not_eq(lit(""))))?
        .distinct()?
        .sort(vec![col("v").sort(true, false)])?;
    let mut stream = df.execute_stream().await?;
    let mut out = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let array = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)
            .map_err(Failure::internal)?;
        let texts = arrow::array::AsArray::as_string::<i32>(&array);
        for text in texts.iter().flatten() {
            if limit.is_some_and(|l| out.len() >= l) || !budget.take(text.len()) {
                return Ok(out);
            }
            out.push(text.to_string());
        }
    }
    Ok(out)
}

/// The bytes an answer may still hold (`max_bytes_per_tag_values_query`).
struct Budget {
    left: usize,
    exceeded: bool,
}

impl Budget {
    fn new(engine: &Engine) -> Budget {
        Budget {
            left: engine.config().query.max_bytes_per_tag_values_query as usize,
            exceeded: false,
        }
    }

    /// Takes `n` bytes; false (and remembered) when they do not fit.
    fn take(&mut self, n: usize) -> bool {
        if n > self.left {
            self.exceeded = true;
            return false;
        }
        self.left -= n;
        true
    }

    fn warn_if_exceeded(&self, what: &str) {
        if self.exceeded {
            tracing::warn!(
                "{what}: answer cut at max_bytes_per_tag_values_query; narrow the time range or raise the limit"
            );
        }
    }
}

/// Frames of the attribute keys of `scope` in `spans`.
fn key_sources(spans: &DataFrame, scope: Scope) -> Result<Vec<DataFrame>, Failure> {
    let keys = |df: DataFrame, map: Expr| -> Result<DataFrame, Failure> {
        Ok(df
            .select(vec![map_keys(map).alias("v")])?
            .unnest_columns(&["v"])?)
    };
    let nested = |list: &str| -> Result<DataFrame, Failure> {
        let items = spans
            .clone()
            .select_columns(&[list])?
            .unnest_columns(&[list])?;
        keys(items, get_field(col(list), "attributes"))
    };
    Ok(match scope {
        Scope::Span => vec![keys(spans.clone(), col("attributes"))?],
        Scope::Resource => vec![
            keys(spans.clone(), col("resource_attributes"))?,
            // Every span has a service, also when written without resource attributes.
            spans.clone().select(vec![lit("service.name").alias("v")])?,
        ],
        Scope::Event => vec![nested("events")?],
        Scope::Link => vec![nested("links")?],
        // Instrumentation scope attributes are not stored.
        Scope::Instrumentation => vec![],
    })
}

/// Frames of the values of attribute `name` in `scope`.
fn value_sources(spans: &DataFrame, scope: Scope, name: &str) -> Result<Vec<DataFrame>, Failure> {
    let one = |expr: Expr| -> Result<DataFrame, Failure> {
        Ok(spans.clone().select(vec![expr.alias("v")])?)
    };
    let nested = |list: &str| -> Result<DataFrame, Failure> {
        Ok(spans
            .clone()
            .select_columns(&[list])?
            .unnest_columns(&[list])?
            .select(vec![
                get_field(get_field(col(list), "attributes"), name).alias("v"),
            ])?)
    };
    Ok(match scope {
        Scope::Span => vec![one(get_field(col("attributes"), name))?],
        Scope::Resource if name == "service.name" => vec![one(col("service"))?],
        Scope::Resource => vec![one(get_field(col("resource_attributes"), name))?],
        Scope::Event => vec![nested("events")?],
        Scope::Link => vec![nested("links")?],
        Scope::Instrumentation => vec![],
    })
}

/// Frames of the values of an intrinsic (`None`: fixed values or none).
fn intrinsic_sources(spans: &DataFrame, intrinsic: Intrinsic) -> Result<Vec<DataFrame>, Failure> {
    let one = |df: DataFrame, expr: Expr| -> Result<Vec<DataFrame>, Failure> {
        Ok(vec![df.select(vec![expr.alias("v")])?])
    };
    let roots = || spans.clone().filter(col("parent_span_id").is_null());
    match intrinsic {
        Intrinsic::Name => one(spans.clone(), col("name")),
        Intrinsic::StatusMessage => one(spans.clone(), col("status_message")),
        Intrinsic::RootServiceName => one(roots()?, col("service")),
        Intrinsic::RootName => one(roots()?, col("name")),
        Intrinsic::InstrumentationName => one(spans.clone(), col("scope_name")),
        Intrinsic::InstrumentationVersion => one(spans.clone(), col("scope_version")),
        Intrinsic::EventName => one(
            spans
                .clone()
                .select_columns(&["events"])?
                .unnest_columns(&["events"])?,
            get_field(col("events"), "name"),
        ),
        Intrinsic::Status | Intrinsic::Kind | Intrinsic::Duration | Intrinsic::Unlisted => {
            Ok(vec![])
        }
    }
}

/// The fixed values of an intrinsic, as Tempo lists them.
fn fixed_values(intrinsic: Intrinsic) -> &'static [&'static str] {
    match intrinsic {
        Intrinsic::Status => &["ok", "error", "unset"],
        Intrinsic::Kind => &[
            "client",
            "server",
            "producer",
            "consumer",
            "internal",
            "unspecified",
        ],
        _ => &[],
    }
}

// ------------------------------------------------------------------ names

pub(crate) async fn tags_v1(State(engine): State<Arc<Engine>>, request: ApiRequest) -> Response {
    match run_tags_v1(&engine, &request).await {
        Ok(body) => json_response(&body),
        Err(failure) => failure.into_response(),
    }
}

/// `{"tagNames": [...]}`: attribute keys of span and resource (or of the
/// requested scope, or the intrinsic names), unscoped.
async fn run_tags_v1(engine: &Engine, request: &ApiRequest) -> Result<Value, Failure> {
    let scope = scope_param(request)?;
    let limit = count_param(request, "limit")?;
    let ctx = session(engine, &request.headers)?;
    let mut budget = Budget::new(engine);
    let names = match scope {
        ScopeParam::Intrinsic => {
            let mut names: Vec<String> = INTRINSIC_TAGS.iter().map(|s| s.to_string()).collect();
            names.sort();
            names
        }
        ScopeParam::All | ScopeParam::Only(_) => {
            let spans = spans_in(&ctx, window(request)?).await?;
            let scopes = match scope {
                ScopeParam::Only(s) => vec![s],
                _ => vec![Scope::Span, Scope::Resource],
            };
            let mut sources = Vec::new();
            for s in scopes {
                sources.extend(key_sources(&spans, s)?);
            }
            distinct_texts(sources, &mut budget, limit).await?
        }
    };
    budget.warn_if_exceeded("tag names");
    Ok(json!({ "tagNames": names }))
}

pub(crate) async fn tags_v2(State(engine): State<Arc<Engine>>, request: ApiRequest) -> Response {
    match run_tags_v2(&engine, &request).await {
        Ok(body) => json_response(&body),
        Err(failure) => failure.into_response(),
    }
}

/// `{"scopes": [{"name": "span", "tags": [...]}, ...]}`: the requested
/// scope, or for all scopes span, resource, then event and link when they
/// have any, and the intrinsics (listed first against the byte budget, as
/// Tempo does, so they are never cut).
async fn run_tags_v2(engine: &Engine, request: &ApiRequest) -> Result<Value, Failure> {
    let scope = scope_param(request)?;
    let limit = count_param(request, "limit")?;
    let ctx = session(engine, &request.headers)?;
    let mut budget = Budget::new(engine);
    let intrinsics = || {
        let tags: Vec<&str> = INTRINSIC_TAGS.to_vec();
        json!({"name": "intrinsic", "tags": tags})
    };
    let mut scopes = Vec::new();
    let attribute_scopes = match scope {
        ScopeParam::Intrinsic => vec![],
        ScopeParam::Only(s) => vec![s],
        ScopeParam::All => vec![Scope::Span, Scope::Resource, Scope::Event, Scope::Link],
    };
    if matches!(scope, ScopeParam::All | ScopeParam::Intrinsic) {
        budget.take(INTRINSIC_TAGS.iter().map(|t| t.len()).sum());
    }
    if !attribute_scopes.is_empty() {
        let spans = spans_in(&ctx, window(request)?).await?;
        for s in attribute_scopes {
            let tags = distinct_texts(key_sources(&spans, s)?, &mut budget, limit).await?;
            let optional = scope == ScopeParam::All && matches!(s, Scope::Event | Scope::Link);
            if !(optional && tags.is_empty()) {
                scopes.push(json!({"name": s.name(), "tags": tags}));
            }
        }
    }
    if matches!(scope, ScopeParam::All | ScopeParam::Intrinsic) {
        scopes.push(intrinsics());
    }
    budget.warn_if_exceeded("tag names");
    Ok(json!({ "scopes": scopes }))
}

// ----------------------------------------------------------------- values

pub(crate) async fn tag_values_v1(
    State(engine): State<Arc<Engine>>,
    Path(tag): Path<String>,
    request: ApiRequest,
) -> Response {
    match run_tag_values_v1(&engine, &tag, &request).await {
        Ok(body) => json_response(&body),
        Err(failure) => failure.into_response(),
    }
}

/// `{"tagValues": [...]}` of an unscoped attribute name (span and resource
/// attributes), with Tempo's virtual values of `status.code` and `error`.
async fn run_tag_values_v1(
    engine: &Engine,
    tag: &str,
    request: &ApiRequest,
) -> Result<Value, Failure> {
    if tag.is_empty() {
        return Err(Failure::BadRequest(
            "please provide a non-empty tagName".into(),
        ));
    }
    let limit = count_param(request, "limit")?;
    let mut budget = Budget::new(engine);
    let mut values: Vec<String> = match tag {
        "status.code" => vec!["unset".into(), "ok".into(), "error".into()],
        "error" => vec!["true".into()],
        _ => vec![],
    };
    for v in &values {
        budget.take(v.len());
    }
    let ctx = session(engine, &request.headers)?;
    let spans = spans_in(&ctx, window(request)?).await?;
    let mut sources = value_sources(&spans, Scope::Span, tag)?;
    sources.extend(value_sources(&spans, Scope::Resource, tag)?);
    for v in distinct_texts(sources, &mut budget, limit).await? {
        if !values.contains(&v) {
            values.push(v);
        }
    }
    budget.warn_if_exceeded("tag values");
    Ok(json!({ "tagValues": values }))
}

pub(crate) async fn tag_values_v2(
    State(engine): State<Arc<Engine>>,
    Path(tag): Path<String>,
    request: ApiRequest,
) -> Response {
    match run_tag_values_v2(&engine, &tag, &request).await {
        Ok(body) => json_response(&body),
        Err(failure) => failure.into_response(),
    }
}

/// `{"tagValues": [{"type": …, "value": …}], "metrics": {}}` of a TraceQL
/// name: `string` values read from the window, or the `keyword` values of
/// `status` and `kind`.
async fn run_tag_values_v2(
    engine: &Engine,
    tag: &str,
    request: &ApiRequest,
) -> Result<Value, Failure> {
    let parsed = parse_tag(tag)?;
    let limit = count_param(request, "limit")?;
    let ctx = session(engine, &request.headers)?;
    let mut budget = Budget::new(engine);
    let typed = |kind: &str, values: Vec<String>| -> Vec<Value> {
        values
            .into_iter()
            .map(|v| json!({"type": kind, "value": v}))
            .collect()
    };
    let values = match &parsed {
        Tag::Intrinsic(i) if !fixed_values(*i).is_empty() => typed(
            "keyword",
            fixed_values(*i).iter().map(|v| v.to_string()).collect(),
        ),
        _ => {
            let mut spans = spans_in(&ctx, window(request)?).await?;
            if let Some(condition) = query_condition(request)? {
                spans = spans.filter(condition)?;
            }
            let sources = match &parsed {
                Tag::Intrinsic(i) => intrinsic_sources(&spans, *i)?,
                Tag::Attribute { scopes, name } => {
                    let mut sources = Vec::new();
                    for s in scopes {
                        sources.extend(value_sources(&spans, *s, name)?);
                    }
                    sources
                }
            };
            let found = distinct_texts(sources, &mut budget, limit).await?;
            typed("string", found)
        }
    };
    budget.warn_if_exceeded("tag values");
    Ok(json!({ "tagValues": values, "metrics": {} }))
}

/// The span-level conditions of the TraceQL filter in `q` (Grafana sends
/// the filters already chosen in its search editor): values then come only
/// from spans that satisfy them. Conditions a span row cannot express
/// (structure, trace-level intrinsics) do not narrow.
fn query_condition(request: &ApiRequest) -> Result<Option<datafusion::prelude::Expr>, Failure> {
    let Some(q) = request.form.get("q").filter(|q| !q.trim().is_empty()) else {
        return Ok(None);
    };
    let root = crate::query::traceql::parse(q)
        .map_err(|e| Failure::BadRequest(format!("invalid q: {e}")))?;
    Ok(match &root.query {
        crate::query::traceql::ast::Query::Spans(expr) => {
            crate::query::traceql::fetch::candidate_filter(expr)
        }
        crate::query::traceql::ast::Query::Metrics(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attribute(scopes: Vec<Scope>, name: &str) -> Tag {
        Tag::Attribute {
            scopes,
            name: name.into(),
        }
    }

    #[test]
    fn tag_names_parse_as_traceql_identifiers() {
        assert_eq!(
            parse_tag("resource.service.name").unwrap(),
            attribute(vec![Scope::Resource], "service.name")
        );
        assert_eq!(
            parse_tag("span.http.method").unwrap(),
            attribute(vec![Scope::Span], "http.method")
        );
        assert_eq!(
            parse_tag(".foo").unwrap(),
            attribute(vec![Scope::Span, Scope::Resource], "foo")
        );
        assert_eq!(
            parse_tag(r#"span."a \"b\"""#).unwrap(),
            attribute(vec![Scope::Span], "a \"b\"")
        );
        assert_eq!(
            parse_tag("status").unwrap(),
            Tag::Intrinsic(Intrinsic::Status)
        );
        assert_eq!(
            parse_tag("trace:rootService").unwrap(),
            Tag::Intrinsic(Intrinsic::RootServiceName)
        );
        for bad in ["foo", "nope.x", "span.", "span.\"open", "."] {
            let Err(Failure::BadRequest(text)) = parse_tag(bad) else {
                panic!("{bad:?} accepted")
            };
            assert!(text.contains(&format!("{bad:?}")), "{text}");
        }
    }

    #[test]
    fn every_listed_intrinsic_parses() {
        for name in INTRINSIC_TAGS {
            assert!(
                matches!(parse_tag(name), Ok(Tag::Intrinsic(_))),
                "{name} is listed but not understood"
            );
        }
    }
}
