//! A TraceQL spans query and a time window → matching traces: candidate
//! traces from [`super::fetch`] (most recently started first) are loaded in
//! batches and evaluated by [`super::eval`] until `limit` traces matched;
//! each match reports its root, start, duration and spansets, each spanset
//! at most `spans_per_spanset` spans with the attributes the query names
//! or selects, and how many spans matched.

use std::collections::BTreeSet;

use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;

use super::ast::*;
use super::eval::{self, Regexes, Value};
use super::fetch;
use super::trace::Trace;

/// Trace ids loaded per batch.
const BATCH: usize = 256;

#[derive(Debug, Clone)]
pub struct SearchOptions {
    pub start_ns: i64,
    pub end_ns: i64,
    /// Most traces returned.
    pub limit: usize,
    /// Most spans listed per spanset (`spss`).
    pub spans_per_spanset: usize,
    /// Trace duration bounds (`minDuration`, `maxDuration`).
    pub min_duration_ns: Option<i64>,
    pub max_duration_ns: Option<i64>,
    /// Most candidate traces inspected.
    pub max_candidates: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpanMatch {
    pub span_id: String,
    pub name: String,
    pub service: String,
    pub start_ns: i64,
    pub duration_ns: i64,
    pub attributes: Vec<(String, Value<'static>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpansetMatch {
    pub spans: Vec<SpanMatch>,
    pub matched: usize,
    pub attributes: Vec<(String, Value<'static>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TraceMatch {
    pub trace_id: String,
    pub root_service_name: Option<String>,
    pub root_trace_name: Option<String>,
    pub start_ns: i64,
    pub duration_ns: i64,
    pub spansets: Vec<SpansetMatch>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchResult {
    pub traces: Vec<TraceMatch>,
    pub inspected_traces: usize,
    pub inspected_spans: usize,
}

/// The spans query of `root`, or an error for a metrics query.
pub fn spans_query(root: &Root) -> Result<&SpansetExpr> {
    match &root.query {
        Query::Spans(s) => Ok(s),
        Query::Metrics(_) => Err(DataFusionError::Plan(
            "a metrics query cannot be used to search traces; use the metrics API".into(),
        )),
    }
}

/// Attributes to report on matched spans: those the filters name and
/// those `select()` asks for.
pub fn reported_attributes(e: &SpansetExpr) -> Vec<Attribute> {
    fn field(f: &FieldExpr, out: &mut Vec<Attribute>) {
        match f {
            FieldExpr::Attribute(a @ Attribute::Named { .. }) => out.push(a.clone()),
            FieldExpr::Attribute(Attribute::Intrinsic(
                i @ (Intrinsic::Status | Intrinsic::Kind | Intrinsic::StatusMessage),
            )) => out.push(Attribute::Intrinsic(*i)),
            FieldExpr::Binary(_, l, r) => {
                field(l, out);
                field(r, out);
            }
            FieldExpr::Unary(_, e) => field(e, out),
            _ => {}
        }
    }
    fn walk(e: &SpansetExpr, out: &mut Vec<Attribute>) {
        match e {
            SpansetExpr::Filter(f) => field(f, out),
            SpansetExpr::Op(_, l, r) => {
                walk(l, out);
                walk(r, out);
            }
            SpansetExpr::Pipeline(stages) => {
                for s in stages {
                    match s {
                        Stage::Spanset(e) => walk(e, out),
                        Stage::Select(attrs) => out.extend(attrs.iter().cloned()),
                        _ => {}
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(e, &mut out);
    let mut seen = BTreeSet::new();
    out.retain(|a| seen.insert(a.to_string()));
    out
}

/// The key an attribute is reported under: its name without scope.
pub fn attribute_key(a: &Attribute) -> String {
    match a {
        Attribute::Named { name, .. } => name.clone(),
        Attribute::Intrinsic(i) => i.name().rsplit(':').next().unwrap_or_default().to_string(),
    }
}

/// The spansets of one trace as reported matches.
pub fn trace_match(
    trace: &Trace,
    spansets: &[eval::Spanset],
    reported: &[Attribute],
    spans_per_spanset: usize,
) -> TraceMatch {
    let spansets = spansets
        .iter()
        .map(|ss| {
            // Latest-starting spans first, as Tempo lists them.
            let mut order = ss.spans.clone();
            order.sort_by_key(|i| std::cmp::Reverse(trace.spans[*i].start_ns));
            let spans = order
                .iter()
                .take(spans_per_spanset)
                .map(|&i| {
                    let s = &trace.spans[i];
                    let attributes = reported
                        .iter()
                        .filter_map(|a| {
                            let v = eval::attribute_value(trace, i, a);
                            (v != Value::Nil).then(|| (attribute_key(a), v.into_owned()))
                        })
                        .collect();
                    SpanMatch {
                        span_id: s.span_id.clone(),
                        name: s.name.clone(),
                        service: s.service.clone(),
                        start_ns: s.start_ns,
                        duration_ns: s.end_ns - s.start_ns,
                        attributes,
                    }
                })
                .collect();
            SpansetMatch {
                spans,
                matched: ss.spans.len(),
                attributes: ss.attributes.clone(),
            }
        })
        .collect();
    TraceMatch {
        trace_id: trace.trace_id.clone(),
        root_service_name: trace.root_service().map(str::to_string),
        root_trace_name: trace.root_name().map(str::to_string),
        start_ns: trace.start_ns,
        duration_ns: trace.duration_ns(),
        spansets,
    }
}

/// Runs a spans query.
pub async fn search(
    ctx: &SessionContext,
    root: &Root,
    opts: &SearchOptions,
) -> Result<SearchResult> {
    let expr = spans_query(root)?;
    let reported = reported_attributes(expr);
    let needs = fetch::needs(root);
    let candidates = fetch::candidate_traces(
        ctx,
        fetch::candidate_filter(expr),
        opts.start_ns,
        opts.end_ns,
        opts.max_candidates,
    )
    .await?;
    let mut result = SearchResult::default();
    let mut regexes = Regexes::default();
    'batches: for chunk in candidates.chunks(BATCH) {
        let traces = fetch::load_traces(ctx, chunk, opts.start_ns, opts.end_ns, needs).await?;
        for trace in &traces {
            result.inspected_traces += 1;
            result.inspected_spans += trace.spans.len();
            let d = trace.duration_ns();
            if opts.min_duration_ns.is_some_and(|min| d < min)
                || opts.max_duration_ns.is_some_and(|max| d > max)
            {
                continue;
            }
            let spansets = eval::evaluate(trace, expr, &mut regexes)
                .map_err(|e| DataFusionError::Execution(e.to_string()))?;
            if spansets.is_empty() {
                continue;
            }
            result.traces.push(trace_match(
                trace,
                &spansets,
                &reported,
                opts.spans_per_spanset,
            ));
            if result.traces.len() >= opts.limit {
                break 'batches;
            }
        }
    }
    // Most recently started traces first, as Tempo lists them.
    result.traces.sort_by(|a, b| {
        b.start_ns
            .cmp(&a.start_ns)
            .then_with(|| a.trace_id.cmp(&b.trace_id))
    });
    Ok(result)
}

/// Every matching span of a spans query in the window, per trace, for
/// metrics and the `traceql()` table function: calls `visit` with each
/// trace and its spansets until it returns `false`.
pub async fn for_each_match(
    ctx: &SessionContext,
    root: &Root,
    expr: &SpansetExpr,
    start_ns: i64,
    end_ns: i64,
    max_candidates: usize,
    mut visit: impl FnMut(&Trace, &[eval::Spanset]) -> Result<bool>,
) -> Result<()> {
    let needs = fetch::needs(root);
    let candidates = fetch::candidate_traces(
        ctx,
        fetch::candidate_filter(expr),
        start_ns,
        end_ns,
        max_candidates,
    )
    .await?;
    let mut regexes = Regexes::default();
    for chunk in candidates.chunks(BATCH) {
        let traces = fetch::load_traces(ctx, chunk, start_ns, end_ns, needs).await?;
        for trace in &traces {
            let spansets = eval::evaluate(trace, expr, &mut regexes)
                .map_err(|e| DataFusionError::Execution(e.to_string()))?;
            if !spansets.is_empty() && !visit(trace, &spansets)? {
                return Ok(());
            }
        }
    }
    Ok(())
}
