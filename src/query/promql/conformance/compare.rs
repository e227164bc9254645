//! One eval's query result against its expectations (FORMAT.md §6): the
//! error check, the value comparison (vector, matrix on the step grid,
//! scalar, string, with Prometheus' almost-equal), the annotation check and
//! the range-mode re-check of instant evals. Each check answers `Ok(())` or
//! a one-line reason.

use std::sync::LazyLock;

use regex::Regex;

use super::script::{Eval, EvalKind, Expected, Item, SeriesDef, TestHistogram, TextMatch};
use crate::model::STALE_NAN_BITS;
use crate::model::histogram::{self, DEFAULT_TEST_EPSILON, FloatHistogram};
use crate::query::promql::PromError;
use crate::query::promql::value::{
    InstantSample, Labels, METRIC_NAME, QueryOutput, QueryValue, RangeSeries, compare_labels,
};

/// Relative tolerance of float comparisons (Prometheus' `defaultEpsilon`).
pub const EPSILON: f64 = DEFAULT_TEST_EPSILON;

pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Prometheus' `almost.Equal` with ε = 1e-6: staleness markers equal only
/// each other, any two NaNs are equal, and comparisons against 0 are exact.
pub fn almost_equal(a: f64, b: f64) -> bool {
    histogram::almost_equal(a, b, EPSILON)
}

/// A value as Prometheus prints it (`+Inf`, `NaN`, `stale`).
pub fn fmt_value(v: f64) -> String {
    if is_stale(v) {
        "stale".into()
    } else {
        crate::query::promql::value::format_float(v)
    }
}

/// `name{a="b"}`, or `{a="b"}` without a name.
pub fn fmt_labels(labels: &Labels) -> String {
    let name = labels
        .iter()
        .find(|(n, _)| n == METRIC_NAME)
        .map_or("", |(_, v)| v.as_str());
    let rest: Vec<String> = labels
        .iter()
        .filter(|(n, _)| n != METRIC_NAME)
        .map(|(n, v)| format!("{n}={v:?}"))
        .collect();
    if rest.is_empty() && !name.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", rest.join(", "))
    }
}

fn fmt_t(ms: i64) -> String {
    format!("{}s", ms as f64 / 1000.0)
}

/// Checks an error against `expect fail`. `Ok(None)`: the expected failure
/// happened (the eval passes, nothing more to check); `Ok(Some(out))`: a
/// result to compare.
pub fn check_error<'a>(
    eval: &Eval,
    result: &'a Result<QueryOutput, PromError>,
) -> Result<Option<&'a QueryOutput>, String> {
    match (result, &eval.expect.fail) {
        (Err(e), Some(matchers)) => {
            let text = e.to_string();
            match matchers.iter().find(|m| !m.matches(&text)) {
                Some(m) => Err(format!("error {text:?} does not match {m}")),
                None => Ok(None),
            }
        }
        (Err(e), None) => Err(format!("error: {e}")),
        (Ok(out), Some(_)) => Err(format!(
            "expected an error, got a {} result",
            out.value.result_type()
        )),
        (Ok(out), None) => Ok(Some(out)),
    }
}

/// `expect warn` / `info` / `no_warn` / `no_info` against the annotations (§6.5).
pub fn check_annotations(eval: &Eval, out: &QueryOutput) -> Result<(), String> {
    let e = &eval.expect;
    check_annotation_kind("warning", &e.warn, e.no_warn, &out.warnings)?;
    check_annotation_kind("info", &e.info, e.no_info, &out.infos)
}

fn check_annotation_kind(
    kind: &str,
    expects: &[TextMatch],
    none: bool,
    got: &[String],
) -> Result<(), String> {
    if none {
        return match got.first() {
            Some(a) => Err(format!("unexpected {kind}: {a}")),
            None => Ok(()),
        };
    }
    if expects.is_empty() {
        return Ok(());
    }
    if got.is_empty() {
        return Err(format!("expected a {kind}, got none"));
    }
    if let Some(m) = expects.iter().find(|m| !got.iter().any(|a| m.matches(a))) {
        return Err(format!("no {kind} matches {m}; got {got:?}"));
    }
    if let Some(a) = got.iter().find(|a| !expects.iter().any(|m| m.matches(a))) {
        return Err(format!("unexpected {kind}: {a}"));
    }
    Ok(())
}

/// The step grid `(start, end, step)` matrix results are read on.
pub fn grid(eval: &Eval) -> (i64, i64, i64) {
    match (eval.kind, eval.expect.range_vector) {
        (_, Some(g)) => g,
        (EvalKind::Range { start, end, step }, None) => (start, end, step),
        (EvalKind::Instant { t }, None) => (t, t, 0),
    }
}

/// Compares a query value with what the eval expects (§6.4).
pub fn compare_value(eval: &Eval, value: &QueryValue) -> Result<(), String> {
    let expected_series: &[SeriesDef] = match &eval.expected {
        Expected::Series(s) => s,
        _ => &[],
    };
    match (value, &eval.expected) {
        (QueryValue::Scalar { value, .. }, Expected::Scalar(e)) => {
            if almost_equal(*value, *e) {
                Ok(())
            } else {
                Err(format!(
                    "value mismatch: got {}, expected {}",
                    fmt_value(*value),
                    fmt_value(*e)
                ))
            }
        }
        (QueryValue::String { value, .. }, Expected::String(e)) => {
            if value == e {
                Ok(())
            } else {
                Err(format!("got string {value:?}, expected {e:?}"))
            }
        }
        (QueryValue::Vector(v), Expected::Series(_) | Expected::Empty) => {
            if eval.expect.range_vector.is_some() {
                return Err("expected a range vector, got an instant vector".into());
            }
            compare_vector(v, expected_series, eval.expect.ordered)
        }
        (QueryValue::Matrix(m), Expected::Series(_) | Expected::Empty) => {
            if eval.expect.ordered {
                return Err("expected an ordered vector, got a matrix".into());
            }
            compare_matrix(m, expected_series, grid(eval))
        }
        (got, want) => Err(format!(
            "expected {}, got {}",
            describe_expected(want),
            describe_value(got)
        )),
    }
}

fn describe_expected(e: &Expected) -> String {
    match e {
        Expected::Empty => "an empty result".into(),
        Expected::Scalar(v) => format!("scalar {}", fmt_value(*v)),
        Expected::String(s) => format!("string {s:?}"),
        Expected::Series(s) => format!("{} series", s.len()),
    }
}

fn describe_value(v: &QueryValue) -> String {
    match v {
        QueryValue::Scalar { value, .. } => format!("scalar {}", fmt_value(*value)),
        QueryValue::String { value, .. } => format!("string {value:?}"),
        QueryValue::Vector(s) => format!("a vector of {} samples", s.len()),
        QueryValue::Matrix(s) => format!("a matrix of {} series", s.len()),
    }
}

fn find_expected<'a>(expected: &'a [SeriesDef], labels: &Labels) -> Option<(usize, &'a SeriesDef)> {
    expected
        .iter()
        .enumerate()
        .find(|(_, d)| d.labels == *labels)
}

fn compare_vector(
    got: &[InstantSample],
    expected: &[SeriesDef],
    ordered: bool,
) -> Result<(), String> {
    let mut seen = vec![false; expected.len()];
    for (k, s) in got.iter().enumerate() {
        let Some((i, def)) = find_expected(expected, &s.labels) else {
            return Err(format!(
                "unexpected series {} = {}",
                fmt_labels(&s.labels),
                fmt_value(s.value)
            ));
        };
        if std::mem::replace(&mut seen[i], true) {
            return Err(format!("series {} appears twice", fmt_labels(&s.labels)));
        }
        if ordered && i != k {
            return Err(format!(
                "series {} at position {}, expected at {}",
                fmt_labels(&s.labels),
                k + 1,
                i + 1
            ));
        }
        match (def.items.as_slice(), &s.histogram) {
            ([Item::Value(e)], None) if almost_equal(s.value, *e) => {}
            ([Item::Value(e)], None) => {
                return Err(format!(
                    "value mismatch for {}: got {}, expected {}",
                    fmt_labels(&s.labels),
                    fmt_value(s.value),
                    fmt_value(*e)
                ));
            }
            ([Item::Histogram(e)], Some(h)) => {
                if !histograms_match(e, h) {
                    return Err(format!(
                        "histogram mismatch for {}: got {}, expected {}",
                        fmt_labels(&s.labels),
                        h.to_prom_string(),
                        e.histogram.to_prom_string()
                    ));
                }
            }
            ([Item::Value(e)], Some(h)) => {
                return Err(format!(
                    "{}: got histogram {}, expected float {}",
                    fmt_labels(&s.labels),
                    h.to_prom_string(),
                    fmt_value(*e)
                ));
            }
            ([Item::Histogram(e)], None) => {
                return Err(format!(
                    "{}: got float {}, expected histogram {}",
                    fmt_labels(&s.labels),
                    fmt_value(s.value),
                    e.histogram.to_prom_string()
                ));
            }
            _ => {
                return Err(format!(
                    "series {} has no single expected value",
                    fmt_labels(&s.labels)
                ));
            }
        }
    }
    match expected.iter().zip(&seen).find(|(_, s)| !**s) {
        Some((def, _)) => Err(format!("missing series {}", fmt_labels(&def.labels))),
        None => Ok(()),
    }
}

/// Series must be sorted strictly by label set (Prometheus `labels.Compare`).
pub fn check_sorted(m: &[RangeSeries]) -> Result<(), String> {
    for w in m.windows(2) {
        if compare_labels(&w[0].labels, &w[1].labels) != std::cmp::Ordering::Less {
            return Err(format!(
                "matrix not sorted by labels: {} before {}",
                fmt_labels(&w[0].labels),
                fmt_labels(&w[1].labels)
            ));
        }
    }
    Ok(())
}

fn compare_matrix(
    got: &[RangeSeries],
    expected: &[SeriesDef],
    grid: (i64, i64, i64),
) -> Result<(), String> {
    check_sorted(got)?;
    let (start, end, step) = grid;
    let mut seen = vec![false; expected.len()];
    for s in got {
        let name = fmt_labels(&s.labels);
        let Some((i, def)) = find_expected(expected, &s.labels) else {
            return Err(format!(
                "unexpected series {name} ({} points)",
                s.points.len()
            ));
        };
        seen[i] = true;
        let mut want: Vec<(i64, f64)> = Vec::new();
        let mut want_histograms: Vec<(i64, &TestHistogram)> = Vec::new();
        for (k, item) in def.items.iter().enumerate() {
            let ts = start + k as i64 * step;
            if ts > end {
                return Err(format!(
                    "{name}: {} values expected, more than the query's steps",
                    def.items.len()
                ));
            }
            match item {
                Item::Value(v) => want.push((ts, *v)),
                Item::Histogram(h) => want_histograms.push((ts, h)),
                Item::Omitted => {}
            }
        }
        if want_histograms.len() != s.histograms.len() {
            return Err(format!(
                "{name}: got {} histograms, expected {}",
                s.histograms.len(),
                want_histograms.len()
            ));
        }
        for ((gt, g), (wt, w)) in s.histograms.iter().zip(&want_histograms) {
            if gt != wt || !histograms_match(w, g) {
                return Err(format!(
                    "{name}: histogram mismatch: got {} at t={}, expected {} at t={}",
                    g.to_prom_string(),
                    fmt_t(*gt),
                    w.histogram.to_prom_string(),
                    fmt_t(*wt)
                ));
            }
        }
        if want.len() != s.points.len() {
            return Err(format!(
                "{name}: got {} points {}, expected {} {}",
                s.points.len(),
                fmt_points(&s.points),
                want.len(),
                fmt_points(&want)
            ));
        }
        for (&(gt, gv), &(wt, wv)) in s.points.iter().zip(&want) {
            if gt != wt {
                return Err(format!(
                    "{name}: point at t={}, expected t={} (got {})",
                    fmt_t(gt),
                    fmt_t(wt),
                    fmt_points(&s.points)
                ));
            }
            if !almost_equal(gv, wv) {
                return Err(format!(
                    "{name}: value mismatch at t={}: got {}, expected {}",
                    fmt_t(gt),
                    fmt_value(gv),
                    fmt_value(wv)
                ));
            }
        }
    }
    match expected.iter().zip(&seen).find(|(_, s)| !**s) {
        Some((def, _)) => Err(format!("missing series {}", fmt_labels(&def.labels))),
        None => Ok(()),
    }
}

/// promqltest's histogram comparison (both compacted; floats within
/// [`EPSILON`]); the counter reset hint only when the script wrote it.
fn histograms_match(expected: &TestHistogram, got: &FloatHistogram) -> bool {
    expected.histogram.equals_for_test(got, expected.hint_given)
}

fn fmt_points(points: &[(i64, f64)]) -> String {
    const SHOWN: usize = 6;
    let mut parts: Vec<String> = points
        .iter()
        .take(SHOWN)
        .map(|&(t, v)| format!("{}@{}", fmt_value(v), fmt_t(t)))
        .collect();
    if points.len() > SHOWN {
        parts.push("…".into());
    }
    format!("[{}]", parts.join(" "))
}

static DURATION_FUNCTIONS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(start|end|range|step)\s*\(").unwrap());

/// Whether an instant eval is re-run as a range query `T−1m..T+1m` (§6.1).
pub fn range_recheck_applies(eval: &Eval) -> bool {
    matches!(eval.kind, EvalKind::Instant { .. })
        && eval.expect.fail.is_none()
        && eval.expect.range_vector.is_none()
        && !matches!(eval.expected, Expected::String(_))
        && !DURATION_FUNCTIONS.is_match(&eval.expr)
}

/// Checks the range-mode re-run of an instant eval at `t`: it must not
/// fail, must be sorted, and its points at `t` must meet the expectations.
pub fn check_range_recheck(
    eval: &Eval,
    t: i64,
    instant: &QueryValue,
    range: &Result<QueryOutput, PromError>,
) -> Result<(), String> {
    let out = range
        .as_ref()
        .map_err(|e| format!("range mode: error: {e}"))?;
    if eval.expect.ordered {
        return Ok(());
    }
    let QueryValue::Matrix(m) = &out.value else {
        return Err(format!("range mode: got a {}", out.value.result_type()));
    };
    check_sorted(m).map_err(|e| format!("range mode: {e}"))?;
    let vector: Vec<InstantSample> = m
        .iter()
        .filter_map(|s| {
            if let Some((timestamp, h)) = s.histograms.iter().find(|(ts, _)| *ts == t) {
                return Some(InstantSample {
                    labels: s.labels.clone(),
                    timestamp: *timestamp,
                    value: f64::NAN,
                    histogram: Some(h.clone()),
                });
            }
            let &(timestamp, value) = s.points.iter().find(|(ts, _)| *ts == t)?;
            Some(InstantSample {
                labels: s.labels.clone(),
                timestamp,
                value,
                histogram: None,
            })
        })
        .collect();
    let value = if matches!(instant, QueryValue::Scalar { .. }) {
        let Some(first) = vector.first() else {
            return Err(format!("range mode: no point at t={}", fmt_t(t)));
        };
        QueryValue::Scalar {
            timestamp: t,
            value: first.value,
        }
    } else {
        QueryValue::Vector(vector)
    };
    compare_value(eval, &value).map_err(|e| format!("range mode: {e}"))
}

#[cfg(test)]
mod tests;
