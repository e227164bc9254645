//! A TraceQL metrics query and a time range → series, as Tempo computes
//! them: the range is aligned to the step (start rounded down, end up),
//! each matching span falls in the interval `(t − step, t]` holding its
//! start time and is reported at `t`; `rate()` is count per second,
//! `count_over_time()` the count, `min/max/avg/sum_over_time(x)` over the
//! values of `x` (durations in seconds), `quantile_over_time(x, q…)` one
//! series per quantile (label `p`; exact, interpolated between ranks,
//! where Tempo estimates from power-of-two buckets), `histogram_over_time(x)` one series per
//! power-of-two bucket (label `__bucket`, seconds for durations; values
//! below 2 are skipped). Series are keyed by the `by(...)` attribute
//! values, or `__name__` = the function when ungrouped (except quantiles
//! and histograms, which have only `p` / `__bucket`); a quantile series is
//! 0 in intervals without values. Second stages filter samples or keep the k
//! largest/smallest series per timestamp; arithmetic joins series with the
//! same labels.

use std::collections::BTreeMap;

use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;

use super::ast::*;
use super::eval::{self, Value};
use super::search;

#[derive(Debug, Clone)]
pub struct MetricsOptions {
    pub start_ns: i64,
    pub end_ns: i64,
    pub step_ns: i64,
    /// One interval `(start, end]` without step alignment.
    pub instant: bool,
    /// Most exemplars per series (0: none).
    pub exemplars: usize,
    pub max_series: usize,
    pub max_candidates: usize,
}

/// One output series: labels and `(timestamp ms, value)` samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<(i64, f64)>,
    /// Spans behind the samples, at most one per interval.
    pub exemplars: Vec<Exemplar>,
}

/// A span that contributed to a series: its ids, start and observed value
/// (the aggregated attribute, or the span's duration in seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub trace_id: String,
    pub span_id: String,
    pub timestamp_ms: i64,
    pub value: f64,
}

/// The step-aligned grid of a request.
#[derive(Debug, Clone, Copy)]
struct Grid {
    start: i64,
    step: i64,
    intervals: usize,
}

impl Grid {
    fn new(opts: &MetricsOptions) -> Grid {
        if opts.instant {
            return Grid {
                start: opts.start_ns,
                step: (opts.end_ns - opts.start_ns).max(1),
                intervals: 1,
            };
        }
        let step = opts.step_ns.max(1);
        let start = opts.start_ns - opts.start_ns.rem_euclid(step);
        let end = if opts.end_ns.rem_euclid(step) == 0 {
            opts.end_ns
        } else {
            opts.end_ns + (step - opts.end_ns.rem_euclid(step))
        };
        Grid {
            start,
            step,
            intervals: ((end - start) / step).max(0) as usize,
        }
    }

    /// The interval `(start + i·step, start + (i+1)·step]` holding `ts`.
    fn interval(&self, ts: i64) -> Option<usize> {
        let offset = ts - self.start;
        if offset <= 0 {
            return None;
        }
        let i = ((offset - 1) / self.step) as usize;
        (i < self.intervals).then_some(i)
    }

    fn timestamp_ms(&self, i: usize) -> i64 {
        (self.start + (i as i64 + 1) * self.step) / 1_000_000
    }
}

/// Observations of one series in one interval.
#[derive(Debug, Clone, Default)]
struct Cell {
    count: u64,
    values: Vec<f64>,
    exemplar: Option<Exemplar>,
}

pub async fn query_range(
    ctx: &SessionContext,
    root: &Root,
    opts: &MetricsOptions,
) -> Result<Vec<Series>> {
    let Query::Metrics(m) = &root.query else {
        return Err(DataFusionError::Plan(
            "not a metrics query: add a metrics function such as | rate()".into(),
        ));
    };
    evaluate(ctx, root, m, opts).await
}

fn evaluate<'a>(
    ctx: &'a SessionContext,
    root: &'a Root,
    m: &'a MetricsExpr,
    opts: &'a MetricsOptions,
) -> futures::future::BoxFuture<'a, Result<Vec<Series>>> {
    Box::pin(async move {
        match m {
            MetricsExpr::Pipeline {
                spans,
                aggregate,
                second,
            } => {
                let series = first_stage(ctx, root, spans, aggregate, opts).await?;
                Ok(second_stages(series, second))
            }
            MetricsExpr::Staged(inner, second) => {
                let series = evaluate(ctx, root, inner, opts).await?;
                Ok(second_stages(series, second))
            }
            MetricsExpr::Scalar(_) => Err(DataFusionError::Plan(
                "a metrics query needs a metrics function, not only a number".into(),
            )),
            MetricsExpr::Binary(op, l, r) => {
                let grid = Grid::new(opts);
                let scalar_series = |v: f64| {
                    vec![Series {
                        labels: Vec::new(),
                        samples: (0..grid.intervals)
                            .map(|i| (grid.timestamp_ms(i), v))
                            .collect(),
                        exemplars: Vec::new(),
                    }]
                };
                let lhs = match &**l {
                    MetricsExpr::Scalar(v) => scalar_series(*v),
                    other => evaluate(ctx, root, other, opts).await?,
                };
                let rhs = match &**r {
                    MetricsExpr::Scalar(v) => scalar_series(*v),
                    other => evaluate(ctx, root, other, opts).await?,
                };
                Ok(binary(
                    *op,
                    lhs,
                    rhs,
                    matches!(**l, MetricsExpr::Scalar(_)),
                    matches!(**r, MetricsExpr::Scalar(_)),
                ))
            }
        }
    })
}

/// The value observed for a span: the attribute's number (durations in
/// seconds).
fn observe(v: &Value) -> Option<f64> {
    match v {
        Value::Duration(d) => Some(*d as f64 / 1e9),
        other => other.number(),
    }
}

/// Tempo's power-of-two bucket of a value (as an integer).
fn log2_bucket(v: u64) -> f64 {
    if v < 2 {
        return -1.0;
    }
    (1u128 << (64 - (v - 1).leading_zeros())) as f64
}

async fn first_stage(
    ctx: &SessionContext,
    root: &Root,
    spans: &SpansetExpr,
    aggregate: &MetricsAggregate,
    opts: &MetricsOptions,
) -> Result<Vec<Series>> {
    if aggregate.op == MetricsOp::Compare {
        return Err(DataFusionError::NotImplemented(
            "TraceQL compare() is not supported".into(),
        ));
    }
    let grid = Grid::new(opts);
    let window_start = grid.start;
    let window_end = grid.start + grid.step * grid.intervals as i64;
    let mut cells: BTreeMap<Vec<(String, String)>, Vec<Cell>> = BTreeMap::new();
    let mut too_many = false;
    let max_series = opts.max_series;
    let want_exemplars = opts.exemplars > 0 && !opts.instant;
    let duration_attribute = aggregate.attribute.as_ref().is_some_and(
        |a| matches!(a, Attribute::Intrinsic(i) if i.value_type() == ValueType::Duration),
    );
    search::for_each_match(
        ctx,
        root,
        spans,
        window_start,
        window_end,
        opts.max_candidates,
        |trace, spansets| {
            let mut seen = std::collections::HashSet::new();
            for ss in spansets {
                for &i in &ss.spans {
                    if !seen.insert(i) {
                        continue;
                    }
                    let Some(interval) = grid.interval(trace.spans[i].start_ns) else {
                        continue;
                    };
                    let value = match &aggregate.attribute {
                        Some(a) => match observe(&eval::attribute_value(trace, i, a)) {
                            Some(v) => Some(v),
                            None => continue,
                        },
                        None => None,
                    };
                    let mut labels: Vec<(String, String)> = aggregate
                        .by
                        .iter()
                        .map(|a| {
                            let v = eval::attribute_value(trace, i, a);
                            (
                                a.to_string(),
                                if v == Value::Nil {
                                    "nil".to_string()
                                } else {
                                    v.render()
                                },
                            )
                        })
                        .collect();
                    // Like Tempo, only ungrouped series of functions
                    // without a label of their own are named.
                    if labels.is_empty()
                        && !matches!(
                            aggregate.op,
                            MetricsOp::HistogramOverTime | MetricsOp::QuantileOverTime
                        )
                    {
                        labels.push(("__name__".into(), aggregate.op.name().into()));
                    }
                    if aggregate.op == MetricsOp::HistogramOverTime
                        && let Some(v) = value
                    {
                        let bucket = if duration_attribute {
                            log2_bucket((v * 1e9).round() as u64) / 1e9
                        } else {
                            log2_bucket(v.max(0.0) as u64)
                        };
                        // Values below 2 have no bucket: Tempo skips them.
                        if bucket < 0.0 {
                            continue;
                        }
                        labels.push(("__bucket".into(), format_number(bucket)));
                    }
                    if !cells.contains_key(&labels) && cells.len() >= max_series {
                        too_many = true;
                        continue;
                    }
                    let row = cells
                        .entry(labels)
                        .or_insert_with(|| vec![Cell::default(); grid.intervals]);
                    let cell = &mut row[interval];
                    cell.count += 1;
                    if let Some(v) = value {
                        cell.values.push(v);
                    }
                    if want_exemplars && cell.exemplar.is_none() {
                        let span = &trace.spans[i];
                        cell.exemplar = Some(Exemplar {
                            trace_id: trace.trace_id.clone(),
                            span_id: span.span_id.clone(),
                            timestamp_ms: span.start_ns / 1_000_000,
                            value: value.unwrap_or((span.end_ns - span.start_ns) as f64 / 1e9),
                        });
                    }
                }
            }
            Ok(true)
        },
    )
    .await?;
    if too_many {
        return Err(DataFusionError::ResourcesExhausted(format!(
            "the metrics query produces more than {max_series} series (max_series); add filters or fewer by() attributes"
        )));
    }
    let step_seconds = grid.step as f64 / 1e9;
    let mut out = Vec::new();
    for (labels, row) in cells {
        let quantiles: Vec<Option<f64>> = if aggregate.op == MetricsOp::QuantileOverTime {
            aggregate.quantiles.iter().map(|q| Some(*q)).collect()
        } else {
            vec![None]
        };
        for q in quantiles {
            let mut samples = Vec::new();
            for (i, cell) in row.iter().enumerate() {
                let value = match aggregate.op {
                    MetricsOp::Rate => Some(cell.count as f64 / step_seconds),
                    MetricsOp::CountOverTime | MetricsOp::HistogramOverTime => {
                        Some(cell.count as f64)
                    }
                    MetricsOp::MinOverTime => cell.values.iter().copied().reduce(f64::min),
                    MetricsOp::MaxOverTime => cell.values.iter().copied().reduce(f64::max),
                    MetricsOp::SumOverTime => {
                        (!cell.values.is_empty()).then(|| cell.values.iter().sum())
                    }
                    MetricsOp::AvgOverTime => (!cell.values.is_empty())
                        .then(|| cell.values.iter().sum::<f64>() / cell.values.len() as f64),
                    // An interval without values is 0, as in Tempo.
                    MetricsOp::QuantileOverTime => {
                        Some(quantile(&cell.values, q.unwrap_or(0.5)).unwrap_or(0.0))
                    }
                    MetricsOp::Compare => None,
                };
                if let Some(v) = value {
                    samples.push((grid.timestamp_ms(i), v));
                }
            }
            let mut labels = labels.clone();
            if let Some(q) = q {
                labels.push(("p".into(), format_number(q)));
            }
            let exemplars = spread(
                row.iter().filter_map(|c| c.exemplar.clone()).collect(),
                opts.exemplars,
            );
            out.push(Series {
                labels,
                samples,
                exemplars,
            });
        }
    }
    Ok(out)
}

/// At most `n` of `all`, evenly spread over them.
fn spread(all: Vec<Exemplar>, n: usize) -> Vec<Exemplar> {
    if all.len() <= n {
        return all;
    }
    let len = all.len();
    all.into_iter()
        .enumerate()
        .filter(|(i, _)| (i * n / len) != ((i + 1) * n / len))
        .map(|(_, e)| e)
        .collect()
}

fn format_number(v: f64) -> String {
    let mut text = format!("{v}");
    if text.ends_with(".0") {
        text.truncate(text.len() - 2);
    }
    text
}

/// The `q`-quantile of `values` by linear interpolation between ranks.
fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = q * (sorted.len() - 1) as f64;
    let lower = rank.floor() as usize;
    let upper = rank.ceil() as usize;
    let weight = rank - lower as f64;
    Some(sorted[lower] * (1.0 - weight) + sorted[upper] * weight)
}

fn second_stages(mut series: Vec<Series>, stages: &[SecondStage]) -> Vec<Series> {
    for stage in stages {
        series = match stage {
            SecondStage::Filter(op, threshold) => {
                for s in &mut series {
                    s.samples.retain(|(_, v)| match op {
                        BinaryOp::Eq => v == threshold,
                        BinaryOp::Neq => v != threshold,
                        BinaryOp::Lt => v < threshold,
                        BinaryOp::Lte => v <= threshold,
                        BinaryOp::Gt => v > threshold,
                        _ => v >= threshold,
                    });
                }
                series.retain(|s| !s.samples.is_empty());
                series
            }
            SecondStage::TopK(k) | SecondStage::BottomK(k) => {
                let top = matches!(stage, SecondStage::TopK(_));
                top_k(series, *k as usize, top)
            }
        };
    }
    series
}

/// Keeps, at each timestamp, the samples of the `k` largest (smallest)
/// series; series left without samples are dropped.
fn top_k(mut series: Vec<Series>, k: usize, largest: bool) -> Vec<Series> {
    // Each timestamp's samples, gathered in one pass over the series.
    let mut by_time: BTreeMap<i64, Vec<(usize, f64)>> = BTreeMap::new();
    for (i, s) in series.iter().enumerate() {
        for &(t, v) in &s.samples {
            if !v.is_nan() {
                by_time.entry(t).or_default().push((i, v));
            }
        }
    }
    let mut keep: Vec<std::collections::HashSet<i64>> = vec![Default::default(); series.len()];
    for (t, mut at) in by_time {
        at.sort_by(|a, b| {
            if largest {
                b.1.total_cmp(&a.1)
            } else {
                a.1.total_cmp(&b.1)
            }
        });
        for (i, _) in at.into_iter().take(k) {
            keep[i].insert(t);
        }
    }
    for (s, keep) in series.iter_mut().zip(keep) {
        s.samples.retain(|(t, _)| keep.contains(t));
    }
    series.retain(|s| !s.samples.is_empty());
    series
}

fn key_without_name(labels: &[(String, String)]) -> Vec<(String, String)> {
    labels
        .iter()
        .filter(|(k, _)| k != "__name__")
        .cloned()
        .collect()
}

/// `lhs op rhs` between series with the same labels (ignoring `__name__`);
/// a scalar side applies to every series of the other.
fn binary(
    op: BinaryOp,
    lhs: Vec<Series>,
    rhs: Vec<Series>,
    l_scalar: bool,
    r_scalar: bool,
) -> Vec<Series> {
    let apply = |a: f64, b: f64| match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        _ => a / b,
    };
    let combine = |l: &Series, r: &Series, labels: Vec<(String, String)>| {
        let right: std::collections::HashMap<i64, f64> = r.samples.iter().copied().collect();
        let samples = l
            .samples
            .iter()
            .filter_map(|(t, a)| right.get(t).map(|b| (*t, apply(*a, *b))))
            .collect();
        Series {
            labels,
            samples,
            exemplars: Vec::new(),
        }
    };
    let mut out = Vec::new();
    if r_scalar {
        if let Some(r) = rhs.first() {
            for l in &lhs {
                out.push(combine(l, r, l.labels.clone()));
            }
        }
    } else if l_scalar {
        if let Some(l) = lhs.first() {
            for r in &rhs {
                out.push(combine(l, r, r.labels.clone()));
            }
        }
    } else {
        for l in &lhs {
            let key = key_without_name(&l.labels);
            if let Some(r) = rhs.iter().find(|r| key_without_name(&r.labels) == key) {
                let mut labels = key.clone();
                let name = |s: &Series| {
                    s.labels
                        .iter()
                        .find(|(k, _)| k == "__name__")
                        .map(|(_, v)| v.clone())
                };
                if let (Some(a), Some(b)) = (name(l), name(r)) {
                    labels.insert(0, ("__name__".into(), format!("({a} {} {b})", op.symbol())));
                }
                out.push(combine(l, r, labels));
            }
        }
    }
    out.retain(|s| !s.samples.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_intervals_are_right_closed() {
        let g = Grid::new(&MetricsOptions {
            start_ns: 10_000_000_000,
            end_ns: 20_000_000_000,
            step_ns: 5_000_000_000,
            instant: false,
            exemplars: 0,
            max_series: 10,
            max_candidates: 10,
        });
        assert_eq!(g.intervals, 2);
        assert_eq!(g.interval(10_000_000_000), None);
        assert_eq!(g.interval(10_000_000_001), Some(0));
        assert_eq!(g.interval(15_000_000_000), Some(0));
        assert_eq!(g.interval(15_000_000_001), Some(1));
        assert_eq!(g.interval(20_000_000_001), None);
        assert_eq!(g.timestamp_ms(0), 15_000);
    }

    #[test]
    fn log2_buckets_as_tempo() {
        assert_eq!(log2_bucket(1), -1.0);
        assert_eq!(log2_bucket(2), 2.0);
        assert_eq!(log2_bucket(3), 4.0);
        assert_eq!(log2_bucket(1024), 1024.0);
        assert_eq!(log2_bucket(1025), 2048.0);
    }

    #[test]
    fn exemplars_spread_evenly() {
        let e = |i: i64| Exemplar {
            trace_id: i.to_string(),
            span_id: String::new(),
            timestamp_ms: i,
            value: 0.0,
        };
        let picked: Vec<i64> = spread((0..10).map(e).collect(), 3)
            .iter()
            .map(|x| x.timestamp_ms)
            .collect();
        assert_eq!(picked.len(), 3);
        assert_eq!(spread((0..2).map(e).collect(), 3).len(), 2);
    }

    #[test]
    fn top_k_keeps_the_largest_series_per_timestamp() {
        let series = |name: &str, samples: Vec<(i64, f64)>| Series {
            labels: vec![("s".into(), name.into())],
            samples,
            exemplars: Vec::new(),
        };
        let input = vec![
            series("a", vec![(1, 1.0), (2, 5.0)]),
            series("b", vec![(1, 3.0), (2, 2.0)]),
            series("c", vec![(1, 2.0), (2, f64::NAN)]),
        ];
        let top = top_k(input.clone(), 1, true);
        assert_eq!(
            top.iter()
                .map(|s| (s.labels[0].1.as_str(), s.samples.clone()))
                .collect::<Vec<_>>(),
            [("a", vec![(2, 5.0)]), ("b", vec![(1, 3.0)])]
        );
        let bottom = top_k(input, 1, false);
        assert_eq!(
            bottom
                .iter()
                .map(|s| (s.labels[0].1.as_str(), s.samples.clone()))
                .collect::<Vec<_>>(),
            [("a", vec![(1, 1.0)]), ("b", vec![(2, 2.0)])]
        );
        let sum = binary(
            BinaryOp::Add,
            vec![series("a", vec![(1, 1.0), (2, 2.0)])],
            vec![series("a", vec![(2, 10.0), (3, 1.0)])],
            false,
            false,
        );
        assert_eq!(sum[0].samples, [(2, 12.0)]);
    }

    #[test]
    fn quantiles_interpolate() {
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.5));
        assert_eq!(quantile(&[5.0], 0.99), Some(5.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
