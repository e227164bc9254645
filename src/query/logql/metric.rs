//! Metric queries: every range aggregation is computed here as per-step
//! series (its log range → samples per output label set → one value per
//! step from the window `(t − offset − range, t − offset]`). The rest of
//! the expression — vector aggregations, binary operators, `label_replace`,
//! `vector()`, sorting — is the same algebra as PromQL, so it is rewritten
//! into PromQL text whose leaves are those precomputed series and evaluated
//! by the PromQL step-grid evaluator.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::time::Instant;

use datafusion::prelude::SessionContext;

use super::ast::{Grouping, LogRange, MatchOp, MetricExpr, RangeOp, UnwrapConversion, VectorOp};
use super::fetch::{self, Scan, StreamShard, scan_entries, split_line_filters};
use super::logs::compile_selector;
use super::pipeline::{
    ERR_SAMPLE_EXTRACTION, ERROR_LABEL, Entry, Pipeline, go_quote, parse_go_float,
};
use super::{LogqlError, LogqlOptions};
use crate::query::promql::eval::{Evaluator, QueryBounds, StepSeries};
use crate::query::promql::shard::QueryShard;
use crate::query::promql::value::{compare_labels, format_float};
use crate::query::promql::{Labels, PromError};
use o11ydb_udfs::logql::units;

/// A range aggregation's samples: per output label set, (timestamp, value)
/// in time order.
type Samples = HashMap<Labels, Vec<(i64, f64)>>;

/// Evaluates a metric query at the step times `times_ns` — over the
/// streams of one `shard` only, for a leg of a sharded query; returns the
/// PromQL evaluator's value for the caller to shape as vector or matrix.
pub async fn metric_query(
    ctx: &SessionContext,
    query: &str,
    metric: &MetricExpr,
    shard: Option<QueryShard>,
    times_ns: &[i64],
    options: &LogqlOptions,
) -> Result<(crate::query::promql::eval::Val, Vec<i64>), LogqlError> {
    let deadline = Instant::now() + options.timeout;
    let mut leaves: Vec<(&MetricExpr, Option<Grouping>)> = Vec::new();
    collect_leaves(metric, &mut leaves);
    let mut leaf_series: Vec<Vec<StepSeries>> = Vec::with_capacity(leaves.len());
    let mut total_samples = 0usize;
    for (leaf, injected) in &leaves {
        let MetricExpr::RangeAggregation {
            op,
            range,
            param,
            grouping,
            ..
        } = leaf
        else {
            unreachable!("collect_leaves returns range aggregations only")
        };
        let samples = range_samples(
            ctx,
            query,
            range,
            *op,
            grouping.as_ref().or(injected.as_ref()),
            shard,
            times_ns,
            options,
            deadline,
            &mut total_samples,
        )
        .await?;
        leaf_series.push(step_series(*op, *param, range, &samples, times_ns));
    }
    let mut next_leaf = 0;
    let promql_text = to_promql(metric, &mut |e| match e {
        MetricExpr::RangeAggregation { .. } => {
            next_leaf += 1;
            Some(format!("{LEAF_PREFIX}{}", next_leaf - 1))
        }
        _ => None,
    });
    evaluate_rewritten(
        &promql_text,
        LEAF_PREFIX,
        leaf_series,
        times_ns,
        options,
        deadline,
    )
}

/// Evaluates the merge of a sharded metric query: `outer` is PromQL text
/// whose selectors are the placeholders `<`[`LEG_PREFIX`]`k>`, leg `k`
/// answering `legs[k]` (its shards' series, concatenated).
pub fn merge_shards(
    outer: &str,
    legs: Vec<Vec<StepSeries>>,
    times_ns: &[i64],
    options: &LogqlOptions,
) -> Result<(crate::query::promql::eval::Val, Vec<i64>), LogqlError> {
    let deadline = Instant::now() + options.timeout;
    evaluate_rewritten(outer, LEG_PREFIX, legs, times_ns, options, deadline)
}

/// Evaluates the PromQL text a metric query was rewritten into, whose
/// selectors are the placeholders `<prefix><k>` answering `series[k]`.
fn evaluate_rewritten(
    promql_text: &str,
    prefix: &str,
    mut series: Vec<Vec<StepSeries>>,
    times_ns: &[i64],
    options: &LogqlOptions,
    deadline: Instant,
) -> Result<(crate::query::promql::eval::Val, Vec<i64>), LogqlError> {
    let expr = Box::new(
        promql_parser::parser::parse(promql_text)
            .map_err(|e| LogqlError::Internal(format!("metric query rewrite failed: {e}")))?,
    );
    let mut nodes = Vec::new();
    crate::query::promql::eval::selectors(&expr, &mut nodes);
    let mut precomputed = HashMap::new();
    for vs in nodes {
        let index: usize = vs
            .name
            .as_deref()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|i| i.parse().ok())
            .filter(|&i| i < series.len())
            .ok_or_else(|| LogqlError::Internal("unexpected selector in rewrite".into()))?;
        precomputed.insert(
            crate::query::promql::eval::selector_key(vs),
            std::mem::take(&mut series[index]),
        );
    }
    let times_ms: Vec<i64> = times_ns.iter().map(|t| t.div_euclid(1_000_000)).collect();
    let mut evaluator = Evaluator {
        query: promql_text,
        bounds: QueryBounds {
            start: times_ms[0],
            end: *times_ms.last().unwrap_or(&times_ms[0]),
            step: 0,
        },
        lookback: 0,
        default_subquery_step: 60_000,
        data: HashMap::new(),
        moved: Default::default(),
        precomputed: &precomputed,
        zero_division_nan: true,
        deadline,
        max_samples: options.max_samples,
        warnings: Vec::new(),
        infos: Vec::new(),
    };
    let value = evaluator.eval(&expr, &times_ms).map_err(|e| match e {
        PromError::Timeout(_) => LogqlError::Timeout,
        PromError::TooManySamples(_) => LogqlError::Limit(format!(
            "the query would read too many samples (max_samples {})",
            options.max_samples
        )),
        other => LogqlError::Execution(other.to_string()),
    })?;
    Ok((value, times_ms))
}

const LEAF_PREFIX: &str = "__logql_range_aggregation_";

/// Name prefix of the placeholder selector standing for leg `k` of a
/// sharded metric query in its merge ([`super::shard::ShardPlan::outer`]).
pub const LEG_PREFIX: &str = "__logql_sharded_leg_";

/// The range aggregations of a metric query in evaluation order, each with
/// the grouping of an enclosing `sum` when that grouping can be applied as
/// the samples are extracted (see [`injectable`]).
fn collect_leaves<'e>(e: &'e MetricExpr, out: &mut Vec<(&'e MetricExpr, Option<Grouping>)>) {
    match e {
        MetricExpr::RangeAggregation { .. } => out.push((e, None)),
        MetricExpr::VectorAggregation {
            op: VectorOp::Sum,
            expr,
            grouping,
            ..
        } if injectable(expr) => {
            let mut inner: &MetricExpr = expr;
            while let MetricExpr::Paren(p) = inner {
                inner = p;
            }
            out.push((
                inner,
                Some(grouping.clone().unwrap_or(Grouping {
                    without: false,
                    labels: Vec::new(),
                })),
            ));
        }
        MetricExpr::VectorAggregation { expr, .. } | MetricExpr::LabelReplace { expr, .. } => {
            collect_leaves(expr, out)
        }
        MetricExpr::Binary { lhs, rhs, .. } => {
            collect_leaves(lhs, out);
            collect_leaves(rhs, out);
        }
        MetricExpr::Paren(inner) => collect_leaves(inner, out),
        MetricExpr::Number(_) | MetricExpr::Vector(_) => {}
    }
}

/// Whether `sum by (g) (op(range))` equals `sum by (g)` of `op` over the
/// range's samples grouped by `g` as they are extracted: true for additive
/// aggregations without their own grouping. Extracting grouped samples
/// keeps a series per group instead of one per distinct label set (with
/// structured metadata such as trace ids, one per line), as Loki does.
fn injectable(e: &MetricExpr) -> bool {
    match e {
        MetricExpr::Paren(inner) => injectable(inner),
        MetricExpr::RangeAggregation { op, grouping, .. } => {
            grouping.is_none()
                && matches!(
                    op,
                    RangeOp::CountOverTime
                        | RangeOp::Rate
                        | RangeOp::BytesOverTime
                        | RangeOp::BytesRate
                        | RangeOp::SumOverTime
                )
        }
        _ => false,
    }
}

/// PromQL text for the metric expression: `replace` gives the text of the
/// nodes it answers for (the range aggregations, which have no PromQL form,
/// and the shardable aggregations of a shard plan), visited in the order
/// [`collect_leaves`] finds range aggregations; the rest is written as the
/// same algebra in PromQL.
pub(crate) fn to_promql(
    e: &MetricExpr,
    replace: &mut dyn FnMut(&MetricExpr) -> Option<String>,
) -> String {
    if let Some(text) = replace(e) {
        return text;
    }
    match e {
        MetricExpr::RangeAggregation { op, .. } => {
            format!("__logql_unreplaced_{}", op.name())
        }
        MetricExpr::VectorAggregation {
            op,
            expr,
            param,
            grouping,
            ..
        } => {
            let inner = to_promql(expr, replace);
            match op {
                VectorOp::Sort | VectorOp::SortDesc => format!("{}({inner})", op.name()),
                _ => {
                    let grouping = grouping
                        .as_ref()
                        .map(|g| format!(" {g} "))
                        .unwrap_or_default();
                    match param {
                        Some(k) => format!("{}{grouping}({}, {inner})", op.name(), number(*k)),
                        None => format!("{}{grouping}({inner})", op.name()),
                    }
                }
            }
        }
        MetricExpr::Binary {
            op,
            lhs,
            rhs,
            return_bool,
            matching,
            ..
        } => {
            let l = to_promql(lhs, replace);
            let r = to_promql(rhs, replace);
            let mut modifier = String::new();
            // Loki folds comparisons of two scalars to 0/1 without `bool`.
            if *return_bool || (op.is_comparison() && is_scalar(lhs) && is_scalar(rhs)) {
                modifier.push_str(" bool");
            }
            if let Some(m) = matching {
                modifier.push_str(&format!(" {m}"));
            }
            format!("({l}) {}{modifier} ({r})", op.symbol())
        }
        MetricExpr::Number(n) => number(*n),
        MetricExpr::Vector(n) => format!("vector({})", number(*n)),
        MetricExpr::LabelReplace {
            expr,
            destination,
            replacement,
            source,
            regex,
            ..
        } => format!(
            "label_replace({}, {}, {}, {}, {})",
            to_promql(expr, replace),
            go_quote(destination),
            go_quote(replacement),
            go_quote(source),
            go_quote(regex)
        ),
        MetricExpr::Paren(inner) => format!("({})", to_promql(inner, replace)),
    }
}

/// Whether an expression evaluates to a scalar (literals and arithmetic on them).
pub(crate) fn is_scalar(e: &MetricExpr) -> bool {
    match e {
        MetricExpr::Number(_) => true,
        MetricExpr::Paren(inner) => is_scalar(inner),
        MetricExpr::Binary { lhs, rhs, .. } => is_scalar(lhs) && is_scalar(rhs),
        _ => false,
    }
}

pub(crate) fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Inf".into() } else { "-Inf".into() }
    } else if v < 0.0 {
        format!("({})", format_float(v))
    } else {
        format_float(v)
    }
}

/// Reads the log range of a range aggregation and turns each entry that
/// leaves its pipeline into a sample of its output series.
#[allow(clippy::too_many_arguments)]
async fn range_samples(
    ctx: &SessionContext,
    query: &str,
    range: &LogRange,
    op: RangeOp,
    grouping: Option<&Grouping>,
    shard: Option<QueryShard>,
    times_ns: &[i64],
    options: &LogqlOptions,
    deadline: Instant,
    total_samples: &mut usize,
) -> Result<Samples, LogqlError> {
    let selector = compile_selector(&range.log, query)?;
    let (line_filters, branches, stages) = split_line_filters(&range.log.pipeline);
    let pipeline = Pipeline::compile_stages(&stages, query)?;
    let post = match &range.unwrap {
        Some(u) => Pipeline::compile_stages(
            &u.post_filters
                .iter()
                .cloned()
                .map(super::ast::Stage::LabelFilter)
                .collect::<Vec<_>>(),
            query,
        )?,
        None => Pipeline::compile_stages(&[], query)?,
    };
    let first = times_ns.first().copied().unwrap_or(0);
    let last = times_ns.last().copied().unwrap_or(0);
    let scan = Scan {
        selector: &selector,
        start_ns: first
            .saturating_sub(range.offset_ns)
            .saturating_sub(range.range_ns)
            .saturating_add(1),
        end_ns: last.saturating_sub(range.offset_ns),
        line_filters,
        branches,
        ordered: None,
        shard: shard.map(|shard| StreamShard {
            shard,
            changed_labels: super::shard::changed_labels(range),
        }),
    };
    // Unwrapped samples lose the unwrapped label; grouping keeps (or drops) the listed ones.
    let (group_labels, without): (Vec<String>, bool) = match (grouping, &range.unwrap) {
        (Some(g), Some(u)) if g.without => {
            let mut l = g.labels.clone();
            l.push(u.label.clone());
            (l, true)
        }
        (Some(g), _) => (g.labels.clone(), g.without),
        (None, Some(u)) => (vec![u.label.clone()], true),
        (None, None) => (Vec::new(), true),
    };
    let max_samples = options.max_samples;
    // Counting with nothing left to run per line: no entry is built.
    let counts_only = matches!(
        op,
        RangeOp::CountOverTime | RangeOp::Rate | RangeOp::BytesOverTime | RangeOp::BytesRate
    );
    if counts_only
        && stages.is_empty()
        && range.unwrap.is_none()
        && !without
        && fetch::selector_pushed_exactly(&selector)
    {
        // The scan's timestamps (and line lengths), one series per
        // combination of the grouping labels, are the samples.
        let with_bytes = matches!(op, RangeOp::BytesOverTime | RangeOp::BytesRate);
        let budget = max_samples.saturating_sub(*total_samples);
        let Some(groups) =
            fetch::scan_grouped_times(ctx, &scan, &group_labels, with_bytes, budget).await?
        else {
            return Err(LogqlError::Limit(format!(
                "the query would read too many samples (max_samples {max_samples})"
            )));
        };
        let mut samples: Samples = HashMap::new();
        for (labels, mut points) in groups {
            *total_samples += points.len();
            points.sort_unstable_by_key(|(t, _)| *t);
            samples.insert(labels, points);
        }
        return Ok(samples);
    }
    let mut samples: Samples = HashMap::new();
    let mut seen = 0usize;
    let mut error: Option<LogqlError> = None;
    scan_entries(ctx, &scan, |mut entry| {
        seen += 1;
        if seen.is_multiple_of(4096) && Instant::now() > deadline {
            return Err(LogqlError::Timeout);
        }
        if !pipeline.process(&mut entry) {
            return Ok(true);
        }
        let value = match &range.unwrap {
            None => match op {
                RangeOp::BytesOverTime | RangeOp::BytesRate => entry.line.len() as f64,
                _ => 1.0,
            },
            Some(u) => {
                let text = entry.get(&u.label).unwrap_or("").to_string();
                if text.is_empty() {
                    return Ok(true);
                }
                let converted = match u.conversion {
                    UnwrapConversion::Number => parse_go_float(&text).ok_or_else(|| {
                        format!("strconv.ParseFloat: parsing {}: invalid syntax", go_quote(&text))
                    }),
                    UnwrapConversion::Duration => units::parse_duration_seconds(&text)
                        .ok_or_else(|| format!("time: invalid duration {}", go_quote(&text))),
                    UnwrapConversion::Bytes => units::parse_bytes(&text).ok_or_else(|| {
                        format!("strconv.ParseFloat: parsing {}: invalid syntax", go_quote(&text))
                    }),
                };
                let value = match converted {
                    Ok(v) => v,
                    Err(details) => {
                        entry.set_error(ERR_SAMPLE_EXTRACTION, details);
                        0.0
                    }
                };
                if !post.process(&mut entry) {
                    return Ok(true);
                }
                value
            }
        };
        let labels = output_labels(&entry, &group_labels, without);
        if let Some(err) = labels.iter().find(|(n, _)| n == ERROR_LABEL) {
            error = Some(LogqlError::Pipeline(format!(
                "pipeline error: '{}' for series: '{}'.\nUse a label filter to intentionally skip this error. (e.g | __error__!=\"{}\").\nTo skip all potential errors you can match empty errors.(e.g __error__=\"\")\nThe label filter can also be specified after unwrap. (e.g | unwrap latency | __error__=\"\" )",
                err.1,
                labels_text(&labels),
                err.1
            )));
            return Ok(false);
        }
        *total_samples += 1;
        if *total_samples > max_samples {
            error = Some(LogqlError::Limit(format!(
                "the query would read too many samples (max_samples {max_samples})"
            )));
            return Ok(false);
        }
        samples
            .entry(labels)
            .or_default()
            .push((entry.timestamp_ns, value));
        Ok(true)
    })
    .await?;
    if let Some(e) = error {
        return Err(e);
    }
    for points in samples.values_mut() {
        points.sort_by_key(|(t, _)| *t);
    }
    Ok(samples)
}

fn output_labels(entry: &Entry<'_>, names: &[String], without: bool) -> Labels {
    let mut labels: Labels = entry
        .labels
        .iter()
        .filter(|(n, _)| names.iter().any(|g| g == n) != without)
        .cloned()
        .collect();
    labels.sort();
    labels
}

/// `{a="1", b="2"}` as Prometheus prints a label set.
pub fn labels_text(labels: &[(String, String)]) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// One value per step for each output series of a range aggregation.
fn step_series(
    op: RangeOp,
    param: Option<f64>,
    range: &LogRange,
    samples: &Samples,
    times_ns: &[i64],
) -> Vec<StepSeries> {
    let range_ns = range.range_ns;
    let seconds = range_ns as f64 / 1e9;
    if op == RangeOp::AbsentOverTime {
        let mut values = Vec::with_capacity(times_ns.len());
        for &t in times_ns {
            let end = t - range.offset_ns;
            let present = samples
                .values()
                .any(|points| !window(points, end, range_ns).is_empty());
            values.push((!present).then_some(1.0));
        }
        let mut labels: Labels = range
            .log
            .selector
            .iter()
            .filter(|m| m.op == MatchOp::Eq)
            .map(|m| (m.name.clone(), m.value.clone()))
            .collect();
        labels.sort();
        labels.dedup_by(|a, b| a.0 == b.0);
        return vec![StepSeries {
            histograms: Vec::new(),
            labels,
            values,
            drop_name: false,
        }];
    }
    let mut out: Vec<StepSeries> = samples
        .iter()
        .map(|(labels, points)| {
            let values = times_ns
                .iter()
                .map(|&t| {
                    let end = t - range.offset_ns;
                    let w = window(points, end, range_ns);
                    if w.is_empty() {
                        return None;
                    }
                    Some(aggregate(
                        op,
                        param,
                        w,
                        end,
                        range_ns,
                        seconds,
                        range.unwrap.is_some(),
                    ))
                })
                .collect();
            StepSeries {
                histograms: Vec::new(),
                labels: labels.clone(),
                values,
                drop_name: false,
            }
        })
        .collect();
    out.sort_by(|a, b| compare_labels(&a.labels, &b.labels));
    out
}

/// The samples in `(end − range, end]`.
fn window(points: &[(i64, f64)], end: i64, range: i64) -> &[(i64, f64)] {
    let lo = points.partition_point(|(t, _)| *t <= end - range);
    let hi = points.partition_point(|(t, _)| *t <= end);
    &points[lo..hi.max(lo)]
}

fn aggregate(
    op: RangeOp,
    param: Option<f64>,
    w: &[(i64, f64)],
    end: i64,
    range_ns: i64,
    seconds: f64,
    unwrapped: bool,
) -> f64 {
    let values = || w.iter().map(|(_, v)| *v);
    match op {
        RangeOp::CountOverTime => w.len() as f64,
        RangeOp::Rate if !unwrapped => w.len() as f64 / seconds,
        RangeOp::Rate | RangeOp::BytesRate => values().sum::<f64>() / seconds,
        RangeOp::BytesOverTime | RangeOp::SumOverTime => values().sum(),
        RangeOp::RateCounter => extrapolated_rate(w, end, range_ns),
        RangeOp::AvgOverTime => {
            let mut mean = 0.0f64;
            let mut count = 0.0f64;
            for v in values() {
                count += 1.0;
                if mean.is_infinite() {
                    if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                        continue;
                    }
                    if !v.is_infinite() && !v.is_nan() {
                        continue;
                    }
                }
                mean += v / count - mean / count;
            }
            mean
        }
        RangeOp::MaxOverTime => {
            values().fold(w[0].1, |m, v| if v > m || m.is_nan() { v } else { m })
        }
        RangeOp::MinOverTime => {
            values().fold(w[0].1, |m, v| if v < m || m.is_nan() { v } else { m })
        }
        RangeOp::StdvarOverTime | RangeOp::StddevOverTime => {
            let (mut aux, mut count, mut mean) = (0.0f64, 0.0f64, 0.0f64);
            for v in values() {
                count += 1.0;
                let delta = v - mean;
                mean += delta / count;
                aux += delta * (v - mean);
            }
            let var = aux / count;
            if op == RangeOp::StddevOverTime {
                var.sqrt()
            } else {
                var
            }
        }
        RangeOp::QuantileOverTime => {
            let q = param.unwrap_or(f64::NAN);
            let mut sorted: Vec<f64> = values().collect();
            quantile(q, &mut sorted)
        }
        RangeOp::FirstOverTime => w[0].1,
        RangeOp::LastOverTime => w[w.len() - 1].1,
        RangeOp::AbsentOverTime => 1.0,
    }
}

/// Loki's quantile: linear interpolation between the closest ranks.
fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal));
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// `rate_counter`: Prometheus' extrapolated counter rate with the window
/// bounds taken from the query (nanosecond timestamps).
fn extrapolated_rate(w: &[(i64, f64)], range_end: i64, range_ns: i64) -> f64 {
    if w.len() < 2 {
        return 0.0;
    }
    let range_start = range_end - range_ns;
    let mut result = w[w.len() - 1].1 - w[0].1;
    let mut last = 0.0f64;
    for &(_, v) in w {
        if v < last {
            result += last;
        }
        last = v;
    }
    let mut to_start = (w[0].0 - range_start) as f64 / 1e9;
    let mut to_end = (range_end - w[w.len() - 1].0) as f64 / 1e9;
    let sampled = (w[w.len() - 1].0 - w[0].0) as f64 / 1e9;
    let average = sampled / (w.len() - 1) as f64;
    let threshold = average * 1.1;
    if to_start >= threshold {
        to_start = average / 2.0;
    }
    let mut to_zero = to_start;
    if result > 0.0 && w[0].1 >= 0.0 {
        to_zero = sampled * (w[0].1 / result);
    }
    if to_zero < to_start {
        to_start = to_zero;
    }
    if to_end >= threshold {
        to_end = average / 2.0;
    }
    let extrapolated = sampled + to_start + to_end;
    result * (extrapolated / sampled) / (range_ns as f64 / 1e9)
}
