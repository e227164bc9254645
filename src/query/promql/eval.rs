//! The step-grid evaluator: a PromQL AST and the samples its selectors
//! fetched → values at every evaluation time at once. Instant vectors are
//! series with one optional value per step; range vectors keep their raw
//! samples plus the window (range, offset, `@`) each step cuts from them;
//! scalars are one value per step. Functions, aggregations and binary
//! operators live in sibling modules and work on these shapes.

use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use promql_parser::parser::{AtModifier, Expr, Offset, SubqueryExpr, VectorSelector};

use super::fetch::RawSeries;
use super::value::{Labels, METRIC_NAME};
use super::{PromError, aggregate, binary, functions};
use crate::model::STALE_NAN_BITS;

/// An instant-vector series: its labels and a value (or none) per step.
#[derive(Debug, Clone)]
pub struct StepSeries {
    pub labels: Labels,
    pub values: Vec<Option<f64>>,
    /// `__name__` is removed when the result is returned (Prometheus 3's
    /// delayed name removal).
    pub drop_name: bool,
}

/// A range-vector series: raw samples in time order, stale markers removed.
#[derive(Debug, Clone)]
pub struct WindowSeries {
    pub labels: Labels,
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
    pub drop_name: bool,
}

/// A range vector: series plus how each step cuts its window
/// `(t − offset − range, t − offset]`, `t` being the step time or the `@` time.
#[derive(Debug, Clone)]
pub struct RangeVector {
    pub series: Vec<WindowSeries>,
    pub range: i64,
    pub offset: i64,
    pub at: Option<i64>,
}

impl RangeVector {
    /// The window end of step time `t`.
    pub fn window_end(&self, t: i64) -> i64 {
        self.at.unwrap_or(t).saturating_sub(self.offset)
    }
}

/// Index range of the samples of `timestamps` in `(end − range, end]`.
pub fn window(timestamps: &[i64], end: i64, range: i64) -> std::ops::Range<usize> {
    let lo = timestamps.partition_point(|&t| t <= end.saturating_sub(range));
    let hi = timestamps.partition_point(|&t| t <= end);
    lo..hi.max(lo)
}

#[derive(Debug, Clone)]
pub enum Val {
    Scalar(Vec<f64>),
    String(String),
    Vector(Vec<StepSeries>),
    Matrix(RangeVector),
}

impl Val {
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Scalar(_) => "scalar",
            Val::String(_) => "string",
            Val::Vector(_) => "instant vector",
            Val::Matrix(_) => "range vector",
        }
    }
}

/// Identity of a selector node in the parsed query (its address; the AST is
/// not moved between fetching and evaluating).
pub type SelectorKey = usize;

pub fn selector_key(vs: &VectorSelector) -> SelectorKey {
    vs as *const VectorSelector as usize
}

/// The time bounds of one query, for `@ start()` / `@ end()`.
#[derive(Debug, Clone, Copy)]
pub struct QueryBounds {
    pub start: i64,
    pub end: i64,
    /// 0 for instant queries.
    pub step: i64,
}

pub fn at_ms(at: &Option<AtModifier>, bounds: QueryBounds) -> Option<i64> {
    at.as_ref().map(|a| match a {
        AtModifier::Start => bounds.start,
        AtModifier::End => bounds.end,
        AtModifier::At(t) => system_time_ms(*t),
    })
}

pub fn system_time_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

pub fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    }
}

/// Most evaluation steps one subquery may run (its inner grid).
const MAX_SUBQUERY_POINTS: i64 = 11_000_000;

pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

pub struct Evaluator<'a> {
    /// The query text, for positions in annotations.
    pub query: &'a str,
    pub bounds: QueryBounds,
    pub lookback: i64,
    pub default_subquery_step: i64,
    pub data: &'a HashMap<SelectorKey, Vec<RawSeries>>,
    /// Selectors whose per-step values were computed elsewhere (the range
    /// aggregations of a LogQL metric query), returned as they are.
    pub precomputed: &'a HashMap<SelectorKey, Vec<StepSeries>>,
    /// `x / 0` and `x % 0` are NaN (LogQL) rather than ±Inf/NaN by IEEE rules.
    pub zero_division_nan: bool,
    pub deadline: Instant,
    pub max_samples: usize,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

impl Evaluator<'_> {
    /// `(line:column)` of the first occurrence of `needle` in the query
    /// (1-based, as Prometheus prints positions in annotations).
    pub fn position_of(&self, needle: &str) -> String {
        let offset = self.query.find(needle).unwrap_or(0);
        let before = &self.query[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        format!("({line}:{column})")
    }

    pub fn eval(&mut self, expr: &Expr, times: &[i64]) -> Result<Val, PromError> {
        if Instant::now() > self.deadline {
            return Err(PromError::Timeout("query execution".into()));
        }
        let value = match expr {
            Expr::NumberLiteral(n) => Val::Scalar(vec![n.val; times.len()]),
            Expr::StringLiteral(s) => Val::String(s.val.clone()),
            Expr::Paren(p) => self.eval(&p.expr, times)?,
            Expr::Unary(u) => match self.eval(&u.expr, times)? {
                Val::Scalar(v) => Val::Scalar(v.into_iter().map(|x| -x).collect()),
                Val::Vector(series) => Val::Vector(
                    series
                        .into_iter()
                        .map(|mut s| {
                            s.values.iter_mut().flatten().for_each(|v| *v = -*v);
                            s.drop_name = true;
                            s
                        })
                        .collect(),
                ),
                other => {
                    return Err(PromError::BadData(format!(
                        "unary expression only allowed on expressions of type scalar or instant vector, got {:?}",
                        other.type_name()
                    )));
                }
            },
            Expr::VectorSelector(vs) => match self.precomputed.get(&selector_key(vs)) {
                Some(series) => Val::Vector(series.clone()),
                None => Val::Vector(self.instant_selector(vs, times)),
            },
            Expr::MatrixSelector(ms) => {
                let series = self
                    .selected(&ms.vs)
                    .iter()
                    .map(without_stale)
                    .filter(|s| !s.timestamps.is_empty())
                    .collect();
                Val::Matrix(RangeVector {
                    series,
                    range: ms.range.as_millis() as i64,
                    offset: offset_ms(&ms.vs.offset),
                    at: at_ms(&ms.vs.at, self.bounds),
                })
            }
            Expr::Subquery(sq) => Val::Matrix(self.subquery(sq, times)?),
            Expr::Call(call) => functions::call(self, call, times)?,
            Expr::Aggregate(agg) => aggregate::aggregate(self, agg, times)?,
            Expr::Binary(b) => binary::binary(self, b, times)?,
            Expr::Extension(_) => {
                return Err(PromError::BadData(
                    "extension expressions are not supported".into(),
                ));
            }
        };
        self.check_samples(&value)?;
        Ok(value)
    }

    /// Sorting a range query's result does nothing: Prometheus warns.
    pub fn warn_sort_in_range_query(&mut self, function: &str, times: &[i64]) {
        if times.len() > 1 {
            let at = self.position_of(function);
            self.warnings.push(format!(
                "PromQL warning: sort is ineffective for range queries since results are always ordered by labels {at}"
            ));
        }
    }

    fn check_samples(&self, value: &Val) -> Result<(), PromError> {
        let points: usize = match value {
            Val::Vector(series) => series
                .iter()
                .map(|s| s.values.iter().filter(|v| v.is_some()).count())
                .sum(),
            Val::Matrix(m) => m.series.iter().map(|s| s.timestamps.len()).sum(),
            _ => 0,
        };
        if points > self.max_samples {
            return Err(PromError::TooManySamples("query execution".into()));
        }
        Ok(())
    }

    pub fn selected(&self, vs: &VectorSelector) -> &[RawSeries] {
        self.data
            .get(&selector_key(vs))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The newest sample in `(t − offset − lookback, t − offset]` of each
    /// series at each step; a stale marker there means no value.
    fn instant_selector(&self, vs: &VectorSelector, times: &[i64]) -> Vec<StepSeries> {
        self.newest_samples(vs, times, false, |_, v| v)
    }

    /// The timestamps of the samples `instant_selector` picks (`timestamp(x)`).
    pub fn selector_timestamps(&self, vs: &VectorSelector, times: &[i64]) -> Vec<StepSeries> {
        self.newest_samples(vs, times, true, |t, _| t as f64 / 1000.0)
    }

    /// Per series and step, `pick(timestamp, value)` of the newest non-stale
    /// sample within the lookback window.
    fn newest_samples(
        &self,
        vs: &VectorSelector,
        times: &[i64],
        drop_name: bool,
        pick: impl Fn(i64, f64) -> f64,
    ) -> Vec<StepSeries> {
        let offset = offset_ms(&vs.offset);
        let at = at_ms(&vs.at, self.bounds);
        self.selected(vs)
            .iter()
            .filter_map(|raw| {
                let values: Vec<Option<f64>> = times
                    .iter()
                    .map(|&t| {
                        let t = at.unwrap_or(t).saturating_sub(offset);
                        let idx = raw.timestamps.partition_point(|&x| x <= t);
                        if idx == 0 || raw.timestamps[idx - 1] <= t.saturating_sub(self.lookback) {
                            return None;
                        }
                        let v = raw.values[idx - 1];
                        (!is_stale(v)).then(|| pick(raw.timestamps[idx - 1], v))
                    })
                    .collect();
                values.iter().any(Option::is_some).then(|| StepSeries {
                    labels: raw.labels.clone(),
                    values,
                    drop_name,
                })
            })
            .collect()
    }

    /// Evaluates the inner expression on its own grid — multiples of the
    /// subquery step after each window's start — and keeps the results as
    /// the samples of a range vector.
    fn subquery(&mut self, sq: &SubqueryExpr, times: &[i64]) -> Result<RangeVector, PromError> {
        let step = sq
            .step
            .map(|d| d.as_millis() as i64)
            .unwrap_or(self.default_subquery_step)
            .max(1);
        let range = sq.range.as_millis() as i64;
        let offset = offset_ms(&sq.offset);
        let at = at_ms(&sq.at, self.bounds);
        let ends: Vec<i64> = times
            .iter()
            .map(|&t| at.unwrap_or(t).saturating_sub(offset))
            .collect();
        let (Some(&first), Some(&last)) = (ends.iter().min(), ends.iter().max()) else {
            return Ok(RangeVector {
                series: vec![],
                range,
                offset,
                at,
            });
        };
        let window_start = first.saturating_sub(range);
        let inner_start = window_start
            .div_euclid(step)
            .saturating_mul(step)
            .saturating_add(step);
        let points = if last < inner_start {
            0
        } else {
            (last - inner_start) / step + 1
        };
        if points > MAX_SUBQUERY_POINTS {
            return Err(PromError::TooManySamples("subquery evaluation".into()));
        }
        let inner_times: Vec<i64> = (0..points).map(|i| inner_start + i * step).collect();
        let inner = self.eval(&sq.expr, &inner_times)?;
        let series = match inner {
            Val::Vector(series) => series
                .into_iter()
                .map(|s| {
                    let (timestamps, values) = inner_times
                        .iter()
                        .zip(&s.values)
                        .filter_map(|(&t, v)| v.map(|v| (t, v)))
                        .unzip();
                    WindowSeries {
                        labels: s.labels,
                        timestamps,
                        values,
                        drop_name: s.drop_name,
                    }
                })
                .collect(),
            other => {
                return Err(PromError::BadData(format!(
                    "subquery is only allowed on instant vector, got {} instead",
                    other.type_name()
                )));
            }
        };
        // The windows are placed by step time, `@` and offset like a selector's.
        Ok(RangeVector {
            series,
            range,
            offset,
            at,
        })
    }
}

fn without_stale(raw: &RawSeries) -> WindowSeries {
    let (timestamps, values) = raw
        .timestamps
        .iter()
        .zip(&raw.values)
        .filter(|(_, v)| !is_stale(**v))
        .map(|(&t, &v)| (t, v))
        .unzip();
    WindowSeries {
        labels: raw.labels.clone(),
        timestamps,
        values,
        drop_name: false,
    }
}

/// `labels` without `__name__`.
pub fn without_name(labels: &Labels) -> Labels {
    labels
        .iter()
        .filter(|(n, _)| n != METRIC_NAME)
        .cloned()
        .collect()
}

/// The time span (min, max) of samples each selector needs, given the
/// evaluation times `[t_min, t_max]` of the node it sits in.
pub fn selector_ranges(
    expr: &Expr,
    t_min: i64,
    t_max: i64,
    bounds: QueryBounds,
    lookback: i64,
    out: &mut HashMap<SelectorKey, (i64, i64)>,
) {
    let mut widen = |vs: &VectorSelector, span: i64| {
        let offset = offset_ms(&vs.offset);
        let (lo, hi) = match at_ms(&vs.at, bounds) {
            Some(at) => (at, at),
            None => (t_min, t_max),
        };
        let range = (
            lo.saturating_sub(offset)
                .saturating_sub(span)
                .saturating_add(1),
            hi.saturating_sub(offset),
        );
        let entry = out.entry(selector_key(vs)).or_insert(range);
        entry.0 = entry.0.min(range.0);
        entry.1 = entry.1.max(range.1);
    };
    match expr {
        Expr::VectorSelector(vs) => widen(vs, lookback),
        Expr::MatrixSelector(ms) => widen(&ms.vs, ms.range.as_millis() as i64),
        Expr::Subquery(sq) => {
            let offset = offset_ms(&sq.offset);
            let range = sq.range.as_millis() as i64;
            let (lo, hi) = match at_ms(&sq.at, bounds) {
                Some(at) => (at, at),
                None => (t_min, t_max),
            };
            selector_ranges(
                &sq.expr,
                lo.saturating_sub(offset).saturating_sub(range),
                hi.saturating_sub(offset),
                bounds,
                lookback,
                out,
            );
        }
        Expr::Paren(p) => selector_ranges(&p.expr, t_min, t_max, bounds, lookback, out),
        Expr::Unary(u) => selector_ranges(&u.expr, t_min, t_max, bounds, lookback, out),
        Expr::Binary(b) => {
            selector_ranges(&b.lhs, t_min, t_max, bounds, lookback, out);
            selector_ranges(&b.rhs, t_min, t_max, bounds, lookback, out);
        }
        Expr::Aggregate(a) => {
            selector_ranges(&a.expr, t_min, t_max, bounds, lookback, out);
            if let Some(p) = &a.param {
                selector_ranges(p, t_min, t_max, bounds, lookback, out);
            }
        }
        Expr::Call(c) => {
            for arg in &c.args.args {
                selector_ranges(arg, t_min, t_max, bounds, lookback, out);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Every selector of the query with its matchers, in AST order.
pub fn selectors<'e>(expr: &'e Expr, out: &mut Vec<&'e VectorSelector>) {
    match expr {
        Expr::VectorSelector(vs) => out.push(vs),
        Expr::MatrixSelector(ms) => out.push(&ms.vs),
        Expr::Subquery(sq) => selectors(&sq.expr, out),
        Expr::Paren(p) => selectors(&p.expr, out),
        Expr::Unary(u) => selectors(&u.expr, out),
        Expr::Binary(b) => {
            selectors(&b.lhs, out);
            selectors(&b.rhs, out);
        }
        Expr::Aggregate(a) => {
            selectors(&a.expr, out);
            if let Some(p) = &a.param {
                selectors(p, out);
            }
        }
        Expr::Call(c) => c.args.args.iter().for_each(|a| selectors(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}
