//! The step-grid evaluator: a PromQL AST and the samples its selectors
//! fetched → values at every evaluation time at once. Instant vectors are
//! series with one optional value per step; range vectors keep their raw
//! samples plus the window (range, offset, `@`) each step cuts from them;
//! scalars are one value per step. Functions, aggregations and binary
//! operators live in sibling modules and work on these shapes.

use std::collections::{HashMap, HashSet};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use promql_parser::parser::{AtModifier, Expr, Offset, SubqueryExpr, VectorSelector};

use super::fetch::RawSeries;
use super::value::{Hist, Labels, METRIC_NAME};
use super::{PromError, aggregate, binary, functions, parallel};
use crate::model::STALE_NAN_BITS;

/// An instant-vector series: its labels and a value (or none) per step.
#[derive(Debug, Clone)]
pub struct StepSeries {
    pub labels: Labels,
    /// The float value per step; `None` where there is none or where the
    /// step holds a histogram.
    pub values: Vec<Option<f64>>,
    /// The native histogram per step: empty when the series has none at
    /// all, else as long as `values`.
    pub histograms: Vec<Option<Hist>>,
    /// `__name__` is removed when the result is returned (Prometheus 3's
    /// delayed name removal).
    pub drop_name: bool,
}

impl StepSeries {
    /// A series of float values only.
    pub fn floats(labels: Labels, values: Vec<Option<f64>>, drop_name: bool) -> Self {
        StepSeries {
            labels,
            values,
            histograms: Vec::new(),
            drop_name,
        }
    }

    /// The histogram at step `i`, if the step holds one.
    pub fn histogram(&self, i: usize) -> Option<&Hist> {
        self.histograms.get(i).and_then(Option::as_ref)
    }

    /// Whether step `i` holds a sample, float or histogram.
    pub fn has_sample(&self, i: usize) -> bool {
        self.values[i].is_some() || self.histogram(i).is_some()
    }

    /// Whether any step holds a sample.
    pub fn any_sample(&self) -> bool {
        self.values.iter().any(Option::is_some) || self.histograms.iter().any(Option::is_some)
    }

    /// Puts a histogram at step `i` (the float slot is left as it is).
    pub fn set_histogram(&mut self, i: usize, h: Hist) {
        self.histograms.resize(self.values.len(), None);
        self.histograms[i] = Some(h);
    }

    /// Empties step `i`.
    pub fn clear_step(&mut self, i: usize) {
        self.values[i] = None;
        if let Some(h) = self.histograms.get_mut(i) {
            *h = None;
        }
    }

    /// Drops the histograms (the steps that held one are left empty).
    pub fn without_histograms(mut self) -> Self {
        self.histograms.clear();
        self
    }
}

/// A range-vector series: raw samples in time order, stale markers removed;
/// floats and native histograms apart.
#[derive(Debug, Clone)]
pub struct WindowSeries {
    pub labels: Labels,
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
    /// (milliseconds, histogram) in time order, usually empty.
    pub histograms: Vec<(i64, Hist)>,
    pub drop_name: bool,
}

/// Index range of the histograms of `points` in `(end − range, end]`.
pub fn histogram_window(points: &[(i64, Hist)], end: i64, range: i64) -> std::ops::Range<usize> {
    let lo = points.partition_point(|(t, _)| *t <= end.saturating_sub(range));
    let hi = points.partition_point(|(t, _)| *t <= end);
    lo..hi.max(lo)
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

/// [`window`] for one series at step after step: while the window ends
/// grow (as the steps of a grid do), each window's bounds move forward from
/// the last one's instead of being searched for again; an end that goes
/// back is searched for.
pub struct WindowCursor<'a> {
    timestamps: &'a [i64],
    /// First sample after the last window's start, first after its end.
    lo: usize,
    hi: usize,
    last_end: i64,
}

impl<'a> WindowCursor<'a> {
    pub fn new(timestamps: &'a [i64]) -> Self {
        WindowCursor {
            timestamps,
            lo: 0,
            hi: 0,
            last_end: i64::MIN,
        }
    }

    /// Index range of the samples in `(end − range, end]`.
    pub fn window(&mut self, end: i64, range: i64) -> std::ops::Range<usize> {
        let ts = self.timestamps;
        let start = end.saturating_sub(range);
        if end < self.last_end || self.lo > 0 && ts[self.lo - 1] > start {
            let w = window(ts, end, range);
            (self.lo, self.hi, self.last_end) = (w.start, w.end, end);
            return w;
        }
        self.last_end = end;
        // Far ahead (the first window, or a large step): search.
        if ts.get(self.lo + 64).is_some_and(|&t| t <= start) {
            self.lo += ts[self.lo..].partition_point(|&t| t <= start);
        }
        while self.lo < ts.len() && ts[self.lo] <= start {
            self.lo += 1;
        }
        self.hi = self.hi.max(self.lo);
        if ts.get(self.hi + 64).is_some_and(|&t| t <= end) {
            self.hi += ts[self.hi..].partition_point(|&t| t <= end);
        }
        while self.hi < ts.len() && ts[self.hi] <= end {
            self.hi += 1;
        }
        self.lo..self.hi
    }
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
    /// The samples each selector fetched; a range selector's are moved out
    /// when it is evaluated (each node is evaluated once).
    pub data: HashMap<SelectorKey, Vec<RawSeries>>,
    /// The range selectors whose samples were moved out of `data`.
    pub moved: HashSet<SelectorKey>,
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
    /// Adds a `PromQL info:` annotation once (the same text twice is one).
    pub fn info(&mut self, text: String) {
        if !self.infos.contains(&text) {
            self.infos.push(text);
        }
    }

    /// Adds a `PromQL warning:` annotation once.
    pub fn warn(&mut self, text: String) {
        if !self.warnings.contains(&text) {
            self.warnings.push(text);
        }
    }

    /// `(line:column)` of the first occurrence of `needle` in the query
    /// (1-based, as Prometheus prints positions in annotations).
    pub fn position_of(&self, needle: &str) -> String {
        self.position_at(self.query.find(needle).unwrap_or(0))
    }

    /// `(line:column)` of byte `offset` of the query.
    pub fn position_at(&self, offset: usize) -> String {
        let offset = offset.min(self.query.len());
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
                            for h in s.histograms.iter_mut().flatten() {
                                let mut negated = h.as_ref().clone();
                                negated.mul(-1.0);
                                *h = Hist::new(negated);
                            }
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
                let key = selector_key(&ms.vs);
                if !self.moved.insert(key) {
                    return Err(PromError::Internal(
                        "a range selector was evaluated twice".into(),
                    ));
                }
                let raw = self.data.remove(&key).unwrap_or_default();
                let series = raw
                    .into_iter()
                    .map(without_stale)
                    .filter(|s| !s.timestamps.is_empty() || !s.histograms.is_empty())
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
                .map(|s| {
                    s.values.iter().filter(|v| v.is_some()).count()
                        + s.histograms.iter().filter(|h| h.is_some()).count()
                })
                .sum(),
            Val::Matrix(m) => m
                .series
                .iter()
                .map(|s| s.timestamps.len() + s.histograms.len())
                .sum(),
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
    /// series at each step, float or histogram; a stale marker there means
    /// no value.
    fn instant_selector(&self, vs: &VectorSelector, times: &[i64]) -> Vec<StepSeries> {
        self.newest_samples(vs, times, false)
    }

    /// The timestamps of the samples `instant_selector` picks (`timestamp(x)`).
    pub fn selector_timestamps(&self, vs: &VectorSelector, times: &[i64]) -> Vec<StepSeries> {
        self.newest_samples(vs, times, true)
    }

    /// Per series and step, the newest non-stale sample within the lookback
    /// window — or, with `timestamps`, its time in seconds as a float.
    fn newest_samples(
        &self,
        vs: &VectorSelector,
        times: &[i64],
        timestamps: bool,
    ) -> Vec<StepSeries> {
        let offset = offset_ms(&vs.offset);
        let at = at_ms(&vs.at, self.bounds);
        let lookback = self.lookback;
        parallel::filter_map_series(self.selected(vs), times.len(), |raw| {
            let mut series =
                StepSeries::floats(raw.labels.clone(), vec![None; times.len()], timestamps);
            let mut cursor = WindowCursor::new(&raw.timestamps);
            for (step, &t) in times.iter().enumerate() {
                let t = at.unwrap_or(t).saturating_sub(offset);
                let floor = t.saturating_sub(lookback);
                let w = cursor.window(t, lookback);
                let float =
                    (!w.is_empty()).then(|| (raw.timestamps[w.end - 1], raw.values[w.end - 1]));
                let h_idx = raw.histograms.partition_point(|(x, _)| *x <= t);
                let histogram = (h_idx > 0 && raw.histograms[h_idx - 1].0 > floor)
                    .then(|| &raw.histograms[h_idx - 1]);
                match (float, histogram) {
                    (f, Some((th, h))) if f.is_none_or(|(tf, _)| *th > tf) => {
                        if timestamps {
                            series.values[step] = Some(*th as f64 / 1000.0);
                        } else {
                            series.set_histogram(step, h.clone());
                        }
                    }
                    (Some((tf, v)), _) if !is_stale(v) => {
                        series.values[step] = Some(if timestamps { tf as f64 / 1000.0 } else { v });
                    }
                    _ => {}
                }
            }
            series.any_sample().then_some(series)
        })
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
                    let histograms = inner_times
                        .iter()
                        .zip(&s.histograms)
                        .filter_map(|(&t, h)| h.clone().map(|h| (t, h)))
                        .collect();
                    WindowSeries {
                        labels: s.labels,
                        timestamps,
                        values,
                        histograms,
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

fn without_stale(raw: RawSeries) -> WindowSeries {
    let RawSeries {
        labels,
        mut timestamps,
        mut values,
        histograms,
    } = raw;
    if values.iter().any(|&v| is_stale(v)) {
        let mut kept = 0;
        for i in 0..values.len() {
            if !is_stale(values[i]) {
                timestamps[kept] = timestamps[i];
                values[kept] = values[i];
                kept += 1;
            }
        }
        timestamps.truncate(kept);
        values.truncate(kept);
    }
    WindowSeries {
        labels,
        timestamps,
        values,
        histograms,
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

#[cfg(test)]
mod tests {
    use super::{WindowCursor, window};

    #[test]
    fn a_cursor_finds_the_windows_a_search_finds() {
        // Irregular samples with gaps and repeated times; ends that grow by
        // small and large steps, stand still, and go back.
        let mut ts: Vec<i64> = Vec::new();
        let mut t = 1_000;
        for i in 0..2_000i64 {
            t += match i % 7 {
                0 => 0,
                3 => 5_000,
                _ => 15 + i % 11,
            };
            ts.push(t);
        }
        let last = *ts.last().unwrap();
        for (range, step) in [(60, 7), (300, 1), (1_000, 250), (5, 3_000), (50_000, 10)] {
            let mut cursor = WindowCursor::new(&ts);
            let mut end = -500;
            let mut i = 0;
            while end < last + 1_000 {
                assert_eq!(
                    cursor.window(end, range),
                    window(&ts, end, range),
                    "range {range}, end {end}"
                );
                i += 1;
                end += match i % 13 {
                    0 => -3 * step,
                    5 => 0,
                    _ => step,
                };
            }
        }
        // No samples at all.
        assert_eq!(WindowCursor::new(&[]).window(10, 5), 0..0);
    }
}
