//! PromQL: query text → `promql-parser` AST → a scan of the tenant's
//! `samples` table per selector (DataFusion, with time, metric and label
//! predicates pushed into the provider) → the step-grid evaluator → a
//! [`QueryValue`] shaped exactly like Prometheus' answer.
//!
//! Entry points: [`instant_query`], [`range_query`] (the Prometheus HTTP API
//! and the conformance runner), [`select_series`], [`label_names`] and
//! [`label_values`] (the metadata endpoints).

mod aggregate;
mod binary;
pub mod conformance;
pub mod downsampled;
pub mod eval;
pub(crate) mod fetch;
mod functions;
#[cfg(test)]
mod fuzz;
mod indexed;
mod native;
mod parallel;
pub mod parse_error;
pub mod shard;
pub mod sql_function;
pub mod value;

pub use downsampled::SourceResolution;
pub use value::{InstantSample, Labels, QueryOutput, QueryValue, RangeSeries};

use std::time::Duration;

/// Engine settings of one query; defaults are Prometheus'.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// How far back an instant selector looks for a sample (5 m).
    pub lookback_ms: i64,
    /// Most samples one query may hold in memory at once (50 M).
    pub max_samples: usize,
    /// A query running longer fails with `timeout` (2 m).
    pub timeout: Duration,
    /// Resolution of a subquery written without a step (`x[5m:]`): 1 m.
    pub default_subquery_step_ms: i64,
    /// Most series one query may fetch from storage, over all its
    /// selectors (the tenant's `max_fetched_series_per_query`; 0 = unlimited).
    pub max_fetched_series: usize,
    /// Which downsampled data range queries may read (`auto`).
    pub max_source_resolution: SourceResolution,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            lookback_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            default_subquery_step_ms: 60 * 1000,
            max_fetched_series: 0,
            max_source_resolution: SourceResolution::Auto,
        }
    }
}

/// Why a query failed, by Prometheus `errorType`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PromError {
    /// The query or a parameter is malformed (HTTP 400 `bad_data`).
    #[error("{0}")]
    BadData(String),
    /// The query is valid but cannot be evaluated (HTTP 422 `execution`).
    #[error("{0}")]
    Execution(String),
    /// The query ran past its timeout (HTTP 503 `timeout`).
    #[error("query timed out in {0}")]
    Timeout(String),
    /// The query needs more samples than `max_samples` (HTTP 422 `execution`).
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(String),
    /// The query selects more series than `max_fetched_series_per_query`
    /// allows (HTTP 422 `execution`, as Mimir answers).
    #[error(
        "the query exceeded the maximum number of series (limit: {limit} series, max_fetched_series_per_query; it selected at least {fetched}): add label matchers or shorten the time range"
    )]
    TooManySeries { limit: usize, fetched: usize },
    /// Storage or engine failure (HTTP 500 `internal`).
    #[error("{0}")]
    Internal(String),
    /// The tenant's query queue is full (HTTP 429).
    #[error("{0}")]
    TooManyRequests(String),
}

impl PromError {
    /// The Prometheus API `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            PromError::BadData(_) => "bad_data",
            PromError::Execution(_)
            | PromError::TooManySamples(_)
            | PromError::TooManySeries { .. } => "execution",
            PromError::Timeout(_) => "timeout",
            PromError::Internal(_) => "internal",
            PromError::TooManyRequests(_) => "too_many_requests",
        }
    }

    /// The HTTP status Prometheus answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            PromError::BadData(_) => 400,
            PromError::Execution(_)
            | PromError::TooManySamples(_)
            | PromError::TooManySeries { .. } => 422,
            PromError::Timeout(_) => 503,
            PromError::Internal(_) => 500,
            PromError::TooManyRequests(_) => 429,
        }
    }
}

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use datafusion::prelude::SessionContext;
use promql_parser::parser::{Expr, VectorSelector};

use eval::{
    Evaluator, QueryBounds, StepSeries, Val, selector_key, selector_ranges, selectors, window,
};
use fetch::{RawSeries, fetch_label_sets, fetch_series, matcher_sets};
use value::{METRIC_NAME, compare_labels};

/// Most points a range query may return per series (Prometheus' limit).
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Evaluates `query` at one instant (`time_ms`, milliseconds since the epoch)
/// over the tenant tables of `ctx`, like Prometheus' `/api/v1/query`.
pub async fn instant_query(
    ctx: &SessionContext,
    query: &str,
    time_ms: i64,
    options: &QueryOptions,
) -> Result<QueryOutput, PromError> {
    run(ctx, query, time_ms, time_ms, 1, options, true).await
}

/// Evaluates `query` at every `step_ms` from `start_ms` to `end_ms`
/// (inclusive), like `/api/v1/query_range`; always answers a matrix.
pub async fn range_query(
    ctx: &SessionContext,
    query: &str,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    options: &QueryOptions,
) -> Result<QueryOutput, PromError> {
    if step_ms <= 0 {
        return Err(PromError::BadData(
            "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        ));
    }
    if end_ms < start_ms {
        return Err(PromError::BadData(
            "end timestamp must not be before start time".into(),
        ));
    }
    if end_ms.saturating_sub(start_ms) / step_ms > MAX_POINTS_PER_SERIES {
        return Err(PromError::BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
        ));
    }
    run(ctx, query, start_ms, end_ms, step_ms, options, false).await
}

/// How a query's answer depends on time beyond its evaluation steps, for
/// the query frontend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeDependence {
    /// `@ start()` or `@ end()`: points depend on the whole range, so the
    /// query must not be split.
    pub on_range: bool,
    /// `@ <time>` or a negative offset: points may read data newer than
    /// their step, so the answer is not final once the step is old.
    pub reads_ahead: bool,
}

/// The [`TimeDependence`] of a parsed query.
pub fn time_dependence(expr: &Expr) -> TimeDependence {
    use promql_parser::parser::{AtModifier, Offset};
    use promql_parser::util::{ExprVisitor, walk_expr};
    struct Visit(TimeDependence);
    impl Visit {
        fn note(&mut self, at: &Option<AtModifier>, offset: &Option<Offset>) {
            match at {
                Some(AtModifier::Start | AtModifier::End) => self.0.on_range = true,
                Some(AtModifier::At(_)) => self.0.reads_ahead = true,
                None => {}
            }
            if matches!(offset, Some(Offset::Neg(_))) {
                self.0.reads_ahead = true;
            }
        }
    }
    impl ExprVisitor for Visit {
        type Error = std::convert::Infallible;
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
            match expr {
                Expr::VectorSelector(vs) => self.note(&vs.at, &vs.offset),
                Expr::MatrixSelector(ms) => self.note(&ms.vs.at, &ms.vs.offset),
                Expr::Subquery(sq) => self.note(&sq.at, &sq.offset),
                _ => {}
            }
            Ok(true)
        }
    }
    let mut visit = Visit(TimeDependence::default());
    let _ = walk_expr(&mut visit, expr);
    visit.0
}

/// Parses a query as Prometheus does, errors as `bad_data`. Parsed
/// queries are kept (see [`PARSED`]): parsing compiles each regex matcher,
/// a noticeable part of a millisecond query, and one request parses its
/// text more than once (the API checks it, the frontend and the evaluator
/// read it); dashboards send the same texts again and again.
pub fn parse(query: &str) -> Result<Expr, PromError> {
    if query.len() > PARSED_MAX_TEXT {
        return parse_text(query);
    }
    if let Some(expr) = PARSED.lock().expect("parsed lock").get(query) {
        return Ok(expr.clone());
    }
    let expr = parse_text(query)?;
    let mut kept = PARSED.lock().expect("parsed lock");
    if kept.len() >= PARSED_KEPT {
        kept.clear();
    }
    kept.insert(query.to_string(), expr.clone());
    Ok(expr)
}

/// Successfully parsed query texts; at most [`PARSED_KEPT`], of at most
/// [`PARSED_MAX_TEXT`] bytes each (all are dropped when full).
static PARSED: std::sync::LazyLock<std::sync::Mutex<HashMap<String, Expr>>> =
    std::sync::LazyLock::new(Default::default);
const PARSED_KEPT: usize = 256;
const PARSED_MAX_TEXT: usize = 4096;

fn parse_text(query: &str) -> Result<Expr, PromError> {
    // promql-parser 0.11 panics on some durations it cannot represent
    // (`x offset NaN` converts NaN seconds to a `Duration`): such a query is
    // bad input, not a crash of the request.
    let parsed =
        std::panic::catch_unwind(|| promql_parser::parser::parse(query)).map_err(|_| {
            PromError::BadData(parse_error::parse_error_text(
                query,
                "invalid duration (not a finite number of seconds)",
            ))
        })?;
    parsed.map_err(|reason| PromError::BadData(parse_error::parse_error_text(query, &reason)))
}

async fn run(
    ctx: &SessionContext,
    query: &str,
    start: i64,
    end: i64,
    step: i64,
    options: &QueryOptions,
    instant: bool,
) -> Result<QueryOutput, PromError> {
    // Boxed so selector nodes keep their address (their key) when moved.
    let expr = Box::new(parse(query)?);
    let grid = Grid {
        start,
        end,
        step,
        instant,
    };
    evaluate(ctx, query, expr, Vec::new(), grid, options).await
}

/// The evaluation times of a query: one instant (`instant`, at `start`) or
/// the range grid `start, start + step, … ≤ end` (milliseconds).
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    pub start: i64,
    pub end: i64,
    pub step: i64,
    pub instant: bool,
}

impl Grid {
    pub fn times(&self) -> Vec<i64> {
        if self.instant {
            return vec![self.start];
        }
        let steps = self.end.saturating_sub(self.start) / self.step + 1;
        (0..steps).map(|i| self.start + i * self.step).collect()
    }
}

/// Evaluates one shard's part of a sharded query: the text of a leg
/// restricted to a shard ([`shard::ShardPlan::leg_query`]); annotations
/// point into `annotate_as`, the query as the user wrote it.
pub async fn evaluate_shard_leg(
    ctx: &SessionContext,
    leg_query: &str,
    annotate_as: &str,
    grid: Grid,
    options: &QueryOptions,
) -> Result<QueryOutput, PromError> {
    let expr = Box::new(parse(leg_query)?);
    evaluate(ctx, annotate_as, expr, Vec::new(), grid, options).await
}

/// Evaluates the outer expression of a sharded query
/// ([`shard::ShardPlan::outer`]): its placeholder of leg `k` answers
/// `leg_outputs[k]` (the shards' answers of that leg, concatenated), its
/// other selectors are fetched as usual.
pub async fn evaluate_shard_merge(
    ctx: &SessionContext,
    outer: &Expr,
    leg_outputs: Vec<Vec<QueryOutput>>,
    annotate_as: &str,
    grid: Grid,
    options: &QueryOptions,
) -> Result<QueryOutput, PromError> {
    let times = grid.times();
    let mut warnings: Vec<String> = Vec::new();
    let mut infos: Vec<String> = Vec::new();
    let mut inputs = Vec::with_capacity(leg_outputs.len());
    for shards in leg_outputs {
        let mut series = Vec::new();
        for output in shards {
            for w in output.warnings {
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
            for i in output.infos {
                if !infos.contains(&i) {
                    infos.push(i);
                }
            }
            series.extend(step_series_of(output.value, &times)?);
        }
        // Storage order, as the unsharded query sees its series (so ties
        // in topk/bottomk resolve alike).
        series.sort_by(|a, b| compare_labels(&a.labels, &b.labels));
        inputs.push(series);
    }
    let mut merged = evaluate(
        ctx,
        annotate_as,
        Box::new(outer.clone()),
        inputs,
        grid,
        options,
    )
    .await?;
    for w in merged.warnings {
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
    for i in merged.infos {
        if !infos.contains(&i) {
            infos.push(i);
        }
    }
    merged.warnings = warnings;
    merged.infos = infos;
    Ok(merged)
}

/// A shard's answer (a matrix of a range query, a vector of an instant
/// one) as step series on `times`.
pub(crate) fn step_series_of(
    value: QueryValue,
    times: &[i64],
) -> Result<Vec<StepSeries>, PromError> {
    let unexpected = |v: &QueryValue| {
        PromError::Internal(format!(
            "a shard of a sharded query answered a {}",
            v.result_type()
        ))
    };
    match value {
        QueryValue::Matrix(matrix) => Ok(matrix
            .into_iter()
            .map(|s| {
                let mut series = StepSeries::floats(s.labels, vec![None; times.len()], false);
                for (t, v) in s.points {
                    if let Ok(i) = times.binary_search(&t) {
                        series.values[i] = Some(v);
                    }
                }
                for (t, h) in s.histograms {
                    if let Ok(i) = times.binary_search(&t) {
                        series.set_histogram(i, h);
                    }
                }
                series
            })
            .collect()),
        QueryValue::Vector(vector) if times.len() == 1 => Ok(vector
            .into_iter()
            .map(|s| match s.histogram {
                Some(h) => StepSeries {
                    histograms: vec![Some(h)],
                    labels: s.labels,
                    values: vec![None],
                    drop_name: false,
                },
                None => StepSeries::floats(s.labels, vec![Some(s.value)], false),
            })
            .collect()),
        other => Err(unexpected(&other)),
    }
}

/// Evaluates a parsed query; `leg_inputs[k]` is what the placeholder of
/// leg `k` of a shard plan answers (empty for an ordinary query).
async fn evaluate(
    ctx: &SessionContext,
    query: &str,
    mut expr: Box<Expr>,
    leg_inputs: Vec<Vec<StepSeries>>,
    grid: Grid,
    options: &QueryOptions,
) -> Result<QueryOutput, PromError> {
    let Grid {
        start,
        end,
        step,
        instant,
    } = grid;
    let deadline = Instant::now() + options.timeout;
    let bounds = QueryBounds {
        start,
        end,
        step: if instant { 0 } else { step },
    };
    let mut precomputed: HashMap<usize, Vec<StepSeries>> = HashMap::new();
    if !leg_inputs.is_empty() {
        let mut leg_inputs: Vec<Option<Vec<StepSeries>>> =
            leg_inputs.into_iter().map(Some).collect();
        let mut nodes = Vec::new();
        selectors(&expr, &mut nodes);
        for vs in nodes {
            if let Some(k) = shard::ShardPlan::leg_of(vs) {
                let series = leg_inputs
                    .get_mut(k)
                    .and_then(Option::take)
                    .ok_or_else(|| {
                        PromError::Internal(format!(
                            "sharded query: leg {k} answered twice or never"
                        ))
                    })?;
                precomputed.insert(selector_key(vs), series);
            }
        }
    }
    let (data, counted) = tokio::time::timeout(
        options.timeout,
        fetch_all(ctx, &expr, bounds, options, &precomputed),
    )
    .await
    .map_err(|_| PromError::Timeout("query execution".into()))??;
    if !counted.is_empty() {
        downsampled::count_calls_to_sums(&mut expr, &counted);
    }
    let options = options.clone();
    let query = query.to_string();
    tokio::task::spawn_blocking(move || {
        let times = grid.times();
        let mut evaluator = Evaluator {
            query: &query,
            bounds,
            lookback: options.lookback_ms,
            default_subquery_step: options.default_subquery_step_ms,
            data,
            moved: HashSet::new(),
            precomputed: &precomputed,
            zero_division_nan: false,
            deadline,
            max_samples: options.max_samples,
            warnings: Vec::new(),
            infos: Vec::new(),
        };
        let value = evaluator.eval(&expr, &times)?;
        let value = if instant {
            instant_value(value, start)?
        } else {
            range_value(value, &times)?
        };
        let mut warnings = evaluator.warnings;
        warnings.dedup();
        let mut infos = evaluator.infos;
        infos.dedup();
        Ok(QueryOutput {
            value,
            warnings,
            infos,
        })
    })
    .await
    .map_err(|e| PromError::Internal(format!("query evaluation failed: {e}")))?
}

/// Fetches the samples of every selector over the span the query needs
/// (range queries: from downsampled blocks where allowed); also returns the
/// selectors read as counts per window for `count_over_time`.
async fn fetch_all(
    ctx: &SessionContext,
    expr: &Expr,
    bounds: QueryBounds,
    options: &QueryOptions,
    precomputed: &HashMap<usize, Vec<StepSeries>>,
) -> Result<(HashMap<usize, Vec<RawSeries>>, HashSet<usize>), PromError> {
    let plan = downsampled::SourcePlan::new(ctx, bounds.step, options.max_source_resolution).await;
    let aggregates = match &plan {
        Some(_) => downsampled::selector_aggregates(expr),
        None => HashMap::new(),
    };
    let mut ranges = HashMap::new();
    selector_ranges(
        expr,
        bounds.start,
        bounds.end,
        bounds,
        options.lookback_ms,
        &mut ranges,
    );
    let mut nodes: Vec<&VectorSelector> = Vec::new();
    selectors(expr, &mut nodes);
    // Selectors are fetched concurrently, each within the whole budget;
    // together they must still fit it.
    let fetches = nodes.into_iter().filter_map(|vs| {
        let key = selector_key(vs);
        if precomputed.contains_key(&key) {
            return None;
        }
        let &(min, max) = ranges.get(&key)?;
        let sets = matcher_sets(vs.name.as_deref(), &vs.matchers);
        let (plan, aggregate) = (plan.as_ref(), aggregates.get(&key).copied());
        Some(async move {
            if let (Some(plan), Some(aggregate)) = (plan, aggregate)
                && let Some(series) = plan
                    .fetch(ctx, &sets, (min, max), aggregate, options.max_samples)
                    .await?
            {
                return Ok::<_, PromError>((
                    key,
                    series,
                    aggregate == downsampled::Aggregate::Count,
                ));
            }
            let series = fetch_series(
                ctx,
                &sets,
                min,
                max,
                options.max_samples,
                options.max_fetched_series,
            )
            .await?;
            Ok::<_, PromError>((key, series, false))
        })
    });
    let mut counted = HashSet::new();
    let data: HashMap<usize, Vec<RawSeries>> = futures::future::try_join_all(fetches)
        .await?
        .into_iter()
        .map(|(key, series, as_counts)| {
            if as_counts {
                counted.insert(key);
            }
            (key, series)
        })
        .collect();
    let total: usize = data
        .values()
        .flat_map(|series| series.iter().map(|s| s.timestamps.len()))
        .sum();
    if total > options.max_samples {
        return Err(PromError::TooManySamples("query execution".into()));
    }
    if options.max_fetched_series > 0 {
        let distinct: std::collections::HashSet<&Labels> = data
            .values()
            .flat_map(|series| series.iter().map(|s| &s.labels))
            .collect();
        if distinct.len() > options.max_fetched_series {
            return Err(PromError::TooManySeries {
                limit: options.max_fetched_series,
                fetched: distinct.len(),
            });
        }
    }
    Ok((data, counted))
}

/// The series of a vector with `__name__` removed where asked; two series
/// ending with the same labels at the same step are an error.
fn finish_series(series: Vec<StepSeries>) -> Result<Vec<StepSeries>, PromError> {
    let mut out: Vec<StepSeries> = Vec::with_capacity(series.len());
    let mut index: crate::model::labels::LabelsMap<Labels, usize> = Default::default();
    for mut s in series {
        if s.drop_name {
            s.labels.retain(|(n, _)| n != METRIC_NAME);
        }
        match index.get(&s.labels) {
            Some(&i) => {
                let target = &mut out[i];
                let duplicate = || {
                    PromError::Execution(
                        "vector cannot contain metrics with the same labelset".into(),
                    )
                };
                for step in 0..s.values.len() {
                    if !s.has_sample(step) {
                        continue;
                    }
                    if target.has_sample(step) {
                        return Err(duplicate());
                    }
                    target.values[step] = s.values[step];
                    if let Some(h) = s.histogram(step) {
                        target.set_histogram(step, h.clone());
                    }
                }
            }
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
        }
    }
    Ok(out)
}

pub(crate) fn instant_value(value: Val, t: i64) -> Result<QueryValue, PromError> {
    Ok(match value {
        Val::Scalar(v) => QueryValue::Scalar {
            timestamp: t,
            value: v[0],
        },
        Val::String(s) => QueryValue::String {
            timestamp: t,
            value: s,
        },
        Val::Vector(series) => QueryValue::Vector(
            finish_series(series)?
                .into_iter()
                .filter_map(|s| match (s.values[0], s.histogram(0)) {
                    (_, Some(h)) => Some(InstantSample {
                        histogram: Some(h.clone()),
                        labels: s.labels,
                        timestamp: t,
                        value: f64::NAN,
                    }),
                    (Some(value), None) => Some(InstantSample {
                        labels: s.labels,
                        timestamp: t,
                        value,
                        histogram: None,
                    }),
                    (None, None) => None,
                })
                .collect(),
        ),
        Val::Matrix(m) => {
            let end = m.window_end(t);
            let mut out: Vec<RangeSeries> = m
                .series
                .into_iter()
                .filter_map(|s| {
                    let w = window(&s.timestamps, end, m.range);
                    let points: Vec<(i64, f64)> = s.timestamps[w.clone()]
                        .iter()
                        .copied()
                        .zip(s.values[w].iter().copied())
                        .collect();
                    let histograms =
                        s.histograms[eval::histogram_window(&s.histograms, end, m.range)].to_vec();
                    (!points.is_empty() || !histograms.is_empty()).then_some(RangeSeries {
                        labels: s.labels,
                        points,
                        histograms,
                    })
                })
                .collect();
            out.sort_by(|a, b| compare_labels(&a.labels, &b.labels));
            QueryValue::Matrix(out)
        }
    })
}

pub(crate) fn range_value(value: Val, times: &[i64]) -> Result<QueryValue, PromError> {
    let series = match value {
        Val::Scalar(v) => {
            return Ok(QueryValue::Matrix(vec![RangeSeries {
                labels: Labels::default(),
                points: times.iter().copied().zip(v).collect(),
                histograms: vec![],
            }]));
        }
        Val::Vector(series) => series,
        other => {
            return Err(PromError::BadData(format!(
                "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                other.type_name()
            )));
        }
    };
    let mut out: Vec<RangeSeries> = finish_series(series)?
        .into_iter()
        .map(|s| RangeSeries {
            points: times
                .iter()
                .zip(&s.values)
                .filter_map(|(&t, v)| v.map(|v| (t, v)))
                .collect(),
            histograms: times
                .iter()
                .zip(&s.histograms)
                .filter_map(|(&t, h)| h.clone().map(|h| (t, h)))
                .collect(),
            labels: s.labels,
        })
        .filter(|s| !s.points.is_empty() || !s.histograms.is_empty())
        .collect();
    out.sort_by(|a, b| compare_labels(&a.labels, &b.labels));
    Ok(QueryValue::Matrix(out))
}

/// Parses `match[]` selectors into matcher alternatives.
fn selector_sets(
    selectors: &[String],
) -> Result<Vec<Vec<promql_parser::label::Matcher>>, PromError> {
    let mut sets = Vec::new();
    for text in selectors {
        match parse(text)? {
            Expr::VectorSelector(vs) => sets.extend(matcher_sets(vs.name.as_deref(), &vs.matchers)),
            _ => {
                return Err(PromError::BadData(format!(
                    "{text:?} is not a series selector"
                )));
            }
        }
    }
    Ok(sets)
}

/// The label sets of the series matching any of the `match[]` selectors
/// with a sample in `[start_ms, end_ms]` (`None` = unbounded), sorted.
pub async fn select_series(
    ctx: &SessionContext,
    selectors: &[String],
    start_ms: Option<i64>,
    end_ms: Option<i64>,
) -> Result<Vec<Labels>, PromError> {
    let sets = selector_sets(selectors)?;
    let mut labels = fetch_label_sets(
        ctx,
        &sets,
        start_ms.unwrap_or(i64::MIN / 2),
        end_ms.unwrap_or(i64::MAX / 2),
    )
    .await?;
    labels.sort_by(compare_labels);
    labels.dedup();
    Ok(labels)
}

/// The label sets of all series (no selectors) or of the matching ones.
async fn label_sets(
    ctx: &SessionContext,
    selectors: &[String],
    start_ms: Option<i64>,
    end_ms: Option<i64>,
) -> Result<Vec<Labels>, PromError> {
    let sets = if selectors.is_empty() {
        vec![vec![]]
    } else {
        selector_sets(selectors)?
    };
    fetch_label_sets(
        ctx,
        &sets,
        start_ms.unwrap_or(i64::MIN / 2),
        end_ms.unwrap_or(i64::MAX / 2),
    )
    .await
}

/// Label names of the series matching `selectors` (all series when empty), sorted.
pub async fn label_names(
    ctx: &SessionContext,
    selectors: &[String],
    start_ms: Option<i64>,
    end_ms: Option<i64>,
) -> Result<Vec<String>, PromError> {
    let mut names: Vec<String> = label_sets(ctx, selectors, start_ms, end_ms)
        .await?
        .into_iter()
        .flat_map(|l| l.into_iter().map(|(n, _)| n))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Values of label `name` over the series matching `selectors` (all when empty), sorted.
pub async fn label_values(
    ctx: &SessionContext,
    name: &str,
    selectors: &[String],
    start_ms: Option<i64>,
    end_ms: Option<i64>,
) -> Result<Vec<String>, PromError> {
    let mut values: Vec<String> = label_sets(ctx, selectors, start_ms, end_ms)
        .await?
        .into_iter()
        .filter_map(|l| l.into_iter().find(|(n, _)| n == name).map(|(_, v)| v))
        .collect();
    values.sort();
    values.dedup();
    Ok(values)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::histogram::FloatHistogram;

    #[test]
    fn kept_parses_answer_like_fresh_ones() {
        let text = r#"sum(rate(http_requests_total{job=~"api|web", code!~"2.."}[5m]))"#;
        let fresh = parse_text(text).unwrap();
        assert_eq!(parse(text).unwrap().to_string(), fresh.to_string());
        assert!(PARSED.lock().unwrap().contains_key(text));
        assert_eq!(parse(text).unwrap().to_string(), fresh.to_string());
        // Errors are not kept; texts over the limit are parsed each time.
        let bad = "sum(rate(x[5m])";
        assert_eq!(parse(bad).unwrap_err(), parse_text(bad).unwrap_err());
        assert!(!PARSED.lock().unwrap().contains_key(bad));
        let long = format!("x{{a=\"{}\"}}", "v".repeat(PARSED_MAX_TEXT));
        assert!(parse(&long).is_ok());
        assert!(!PARSED.lock().unwrap().contains_key(long.as_str()));
    }

    /// Shard answers carry native histograms into the merging evaluation.
    #[test]
    fn shard_answers_keep_their_histograms() {
        let h = Arc::new(FloatHistogram {
            count: 2.0,
            sum: 1.0,
            ..Default::default()
        });
        let labels = Labels::from(vec![("job".into(), "a".into())]);
        let matrix = QueryValue::Matrix(vec![RangeSeries {
            labels: labels.clone(),
            points: vec![(0, 1.0)],
            histograms: vec![(60_000, h.clone())],
        }]);
        let series = step_series_of(matrix, &[0, 60_000]).unwrap();
        assert_eq!(series[0].values, vec![Some(1.0), None]);
        assert_eq!(series[0].histogram(1), Some(&h));
        let vector = QueryValue::Vector(vec![InstantSample {
            labels,
            timestamp: 0,
            value: f64::NAN,
            histogram: Some(h.clone()),
        }]);
        let series = step_series_of(vector, &[0]).unwrap();
        assert_eq!(
            (series[0].values.clone(), series[0].histogram(0)),
            (vec![None], Some(&h))
        );
    }
}
