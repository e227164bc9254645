//! Native histogram samples in PromQL evaluation: the step series and
//! range windows of the evaluator in, floats or histograms out. Covers the
//! functions that read a histogram (`histogram_count`, `_sum`, `_avg`,
//! `_stddev`, `_stdvar`, `_fraction`, `_quantile(s)`), range functions over
//! histogram windows (`rate`, `increase`, `delta`, `*_over_time`) with
//! Prometheus' extrapolation and counter-reset handling, and the sums and
//! averages aggregations build. Float samples keep their own paths in
//! `functions` and `aggregate`; each step holds one kind or the other.

use std::sync::Arc;

use super::eval::{Evaluator, RangeVector, StepSeries, Val, histogram_window, window};
use super::functions::label;
use super::value::{Hist, METRIC_NAME};
use crate::model::histogram::{
    AddOutcome, CounterResetHint, FloatHistogram, HistogramError, histogram_fraction,
    histogram_quantile, histogram_stddev, histogram_stdvar,
};

/// One output sample of a function that may answer either kind.
pub enum Sample {
    Float(f64),
    Histogram(Hist),
}

/// The float a histogram-reading function takes from one histogram.
pub fn histogram_property(name: &str) -> Option<fn(&FloatHistogram) -> f64> {
    Some(match name {
        "histogram_count" => |h| h.count,
        "histogram_sum" => |h| h.sum,
        "histogram_avg" => |h| h.sum / h.count,
        "histogram_stddev" => histogram_stddev,
        "histogram_stdvar" => histogram_stdvar,
        _ => return None,
    })
}

/// `f(step, histogram)` at every step holding a histogram; float samples
/// are dropped, and so is the metric name.
pub fn map_histograms(
    series: &[StepSeries],
    f: impl Fn(usize, &FloatHistogram) -> f64,
) -> Vec<StepSeries> {
    series
        .iter()
        .filter(|s| !s.histograms.is_empty())
        .filter_map(|s| {
            let values: Vec<Option<f64>> = (0..s.values.len())
                .map(|i| s.histogram(i).map(|h| f(i, h)))
                .collect();
            values
                .iter()
                .any(Option::is_some)
                .then(|| StepSeries::floats(s.labels.clone(), values, true))
        })
        .collect()
}

/// `histogram_quantile(q, h)` per step over native histograms.
pub fn quantiles(series: &[StepSeries], q: &[f64]) -> Vec<StepSeries> {
    map_histograms(series, |i, h| histogram_quantile(q[i], h))
}

/// `histogram_fraction(lower, upper, h)` per step over native histograms.
pub fn fractions(series: &[StepSeries], lower: &[f64], upper: &[f64]) -> Vec<StepSeries> {
    map_histograms(series, |i, h| histogram_fraction(lower[i], upper[i], h))
}

/// `(line:column)` of the first argument of the call of `function`, where
/// Prometheus places annotations about it.
fn argument_position(ev: &Evaluator<'_>, function: &str) -> String {
    let needle = format!("{function}(");
    match ev.query.find(&needle) {
        Some(at) => {
            let start = at + needle.len();
            let skipped = ev.query[start..].len() - ev.query[start..].trim_start().len();
            ev.position_at(start + skipped)
        }
        None => ev.position_of(function),
    }
}

/// A range function over windows where some series hold histograms: per
/// step, a window of floats goes to `float_fn`; a window of histograms to
/// the histogram form of `name` where there is one (else no value); a
/// window of both gets Prometheus' annotation — a warning and no value for
/// the functions that read histograms, an info and the floats' value for
/// the others — except for the functions that count samples.
pub fn over_windows(
    ev: &mut Evaluator<'_>,
    name: &str,
    m: &RangeVector,
    times: &[i64],
    float_fn: impl Fn(&[i64], &[f64], i64, i64) -> Option<f64>,
) -> Val {
    let drop_name = !matches!(name, "last_over_time" | "first_over_time");
    let reads_histograms = matches!(
        name,
        "rate" | "increase" | "delta" | "irate" | "idelta" | "sum_over_time" | "avg_over_time"
    );
    let at = argument_position(ev, name);
    let mut out = Vec::new();
    for s in &m.series {
        let metric = label(&s.labels, METRIC_NAME).to_string();
        let mut series = StepSeries::floats(
            s.labels.clone(),
            vec![None; times.len()],
            drop_name || s.drop_name,
        );
        for (i, &t) in times.iter().enumerate() {
            let end = m.window_end(t);
            let start = end.saturating_sub(m.range);
            let w = window(&s.timestamps, end, m.range);
            let hw = histogram_window(&s.histograms, end, m.range);
            let (ts, vs) = (&s.timestamps[w.clone()], &s.values[w]);
            let hs = &s.histograms[hw];
            let merged = || merge(ts, vs, hs);
            let window_of = |points| HistogramWindow {
                metric: &metric,
                at: &at,
                points,
                start,
                end,
                range: m.range,
            };
            let sample = match name {
                "count_over_time" => {
                    (ts.len() + hs.len() > 0).then(|| Sample::Float((ts.len() + hs.len()) as f64))
                }
                "present_over_time" => (ts.len() + hs.len() > 0).then_some(Sample::Float(1.0)),
                "irate" | "idelta" => {
                    let samples = merged();
                    match samples.as_slice() {
                        [.., (_, Point::Float(_)), (_, Point::Float(_))] => {
                            float_fn(ts, vs, start, end).map(Sample::Float)
                        }
                        [.., (_, Point::Histogram(_)), (_, Point::Histogram(_))] => {
                            instant_histogram_rate(ev, name, &window_of(hs)).map(Sample::Histogram)
                        }
                        [_, _, ..] => {
                            warn_series(ev, SeriesWarning::MixedFloats, &metric, &at);
                            None
                        }
                        _ => None,
                    }
                }
                "resets" | "changes" => {
                    let samples = merged();
                    (!samples.is_empty()).then(|| Sample::Float(count_changes(name, &samples)))
                }
                "last_over_time"
                | "first_over_time"
                | "ts_of_last_over_time"
                | "ts_of_first_over_time" => {
                    let samples = merged();
                    let pick = if name.contains("last") {
                        samples.last()
                    } else {
                        samples.first()
                    };
                    pick.map(|(t, point)| match (name.starts_with("ts_of"), point) {
                        (true, _) => Sample::Float(*t as f64 / 1000.0),
                        (false, Point::Float(v)) => Sample::Float(*v),
                        (false, Point::Histogram(h)) => Sample::Histogram((*h).clone()),
                    })
                }
                _ if hs.is_empty() => {
                    if ts.is_empty() {
                        None
                    } else {
                        float_fn(ts, vs, start, end).map(Sample::Float)
                    }
                }
                _ if !ts.is_empty() && reads_histograms => {
                    warn_series(ev, SeriesWarning::MixedFloats, &metric, &at);
                    None
                }
                _ if !ts.is_empty() => {
                    info_ignored_histograms(ev, &metric, &at);
                    float_fn(ts, vs, start, end).map(Sample::Float)
                }
                _ if reads_histograms => {
                    histogram_window_fn(ev, name, &window_of(hs)).map(Sample::Histogram)
                }
                _ => None,
            };
            match sample {
                Some(Sample::Float(v)) => series.values[i] = Some(v),
                Some(Sample::Histogram(h)) => series.set_histogram(i, h),
                None => {}
            }
        }
        if series.any_sample() {
            out.push(series);
        }
    }
    Val::Vector(out)
}

/// Prometheus' info for a float-only range function whose window holds
/// histograms beside floats (the histograms are left out).
pub fn note_mixed_windows(ev: &mut Evaluator<'_>, name: &str, m: &RangeVector, times: &[i64]) {
    for s in m.series.iter().filter(|s| !s.histograms.is_empty()) {
        let mixed = times.iter().any(|&t| {
            let end = m.window_end(t);
            !window(&s.timestamps, end, m.range).is_empty()
                && !histogram_window(&s.histograms, end, m.range).is_empty()
        });
        if mixed {
            let at = argument_position(ev, name);
            info_ignored_histograms(ev, label(&s.labels, METRIC_NAME), &at);
        }
    }
}

/// One sample of a window, float or histogram.
enum Point<'a> {
    Float(f64),
    Histogram(&'a Hist),
}

/// The floats and histograms of a window in time order.
fn merge<'a>(ts: &[i64], vs: &[f64], hs: &'a [(i64, Hist)]) -> Vec<(i64, Point<'a>)> {
    let mut out: Vec<(i64, Point<'a>)> = ts
        .iter()
        .zip(vs)
        .map(|(&t, &v)| (t, Point::Float(v)))
        .chain(hs.iter().map(|(t, h)| (*t, Point::Histogram(h))))
        .collect();
    out.sort_by_key(|(t, _)| *t);
    out
}

/// `resets` or `changes` over floats and histograms in time order: a
/// switch between the two kinds counts as one.
fn count_changes(name: &str, samples: &[(i64, Point<'_>)]) -> f64 {
    let mut count = 0.0;
    for pair in samples.windows(2) {
        let counts = match (&pair[0].1, &pair[1].1) {
            (Point::Float(a), Point::Float(b)) if name == "resets" => b < a,
            (Point::Float(a), Point::Float(b)) => a != b && !(a.is_nan() && b.is_nan()),
            (Point::Histogram(a), Point::Histogram(b)) if name == "resets" => b.detect_reset(a),
            (Point::Histogram(a), Point::Histogram(b)) => !a.equals_for_test_eps(b, false, 0.0),
            _ => true,
        };
        if counts {
            count += 1.0;
        }
    }
    count
}

/// One step's window of histograms, with what annotations about it name.
struct HistogramWindow<'a> {
    /// The series' metric name.
    metric: &'a str,
    /// Position of the function's argument in the query.
    at: &'a str,
    points: &'a [(i64, Hist)],
    /// `(end − range, end]`, milliseconds.
    start: i64,
    end: i64,
    range: i64,
}

/// The histogram form of a range function over a window of histograms only.
fn histogram_window_fn(
    ev: &mut Evaluator<'_>,
    name: &str,
    w: &HistogramWindow<'_>,
) -> Option<Hist> {
    let (metric, at, points) = (w.metric, w.at, w.points);
    match name {
        "sum_over_time" | "avg_over_time" => {
            let mut sum = points[0].1.as_ref().clone();
            for (_, h) in &points[1..] {
                if let Err(e) = sum.add(h) {
                    warn_incompatible(ev, metric, at, &e);
                    return None;
                }
            }
            if name == "avg_over_time" {
                sum.div(points.len() as f64);
            }
            Some(Arc::new(sum))
        }
        "rate" | "increase" | "delta" => extrapolated_histogram_rate(ev, name, w),
        _ => None,
    }
}

/// Prometheus' info when a subtraction used only the custom bucket bounds
/// both histograms share.
fn note_reconciled(ev: &mut Evaluator<'_>, outcome: &AddOutcome, at: &str) {
    if outcome.nhcb_bounds_reconciled {
        ev.info(format!(
            "PromQL info: mismatched custom buckets were reconciled during subtraction {at}"
        ));
    }
}

/// Prometheus' warnings about how one series' samples are used.
enum SeriesWarning {
    /// A window (or the last two samples) holds floats and histograms.
    MixedFloats,
    /// A counter function read a gauge histogram.
    NotCounter,
    /// `delta`/`idelta` read a histogram not marked as a gauge.
    NotGauge,
}

/// The info of a float-only function over a window that also held histograms.
fn info_ignored_histograms(ev: &mut Evaluator<'_>, metric: &str, at: &str) {
    ev.info(format!(
        "PromQL info: ignored histograms in a range containing both floats and histograms for metric name {metric:?} {at}"
    ));
}

fn warn_series(ev: &mut Evaluator<'_>, warning: SeriesWarning, metric: &str, at: &str) {
    let what = match warning {
        SeriesWarning::MixedFloats => {
            format!("encountered a mix of histograms and floats for metric name {metric:?}")
        }
        SeriesWarning::NotCounter => {
            format!("this native histogram metric is not a counter: {metric:?}")
        }
        SeriesWarning::NotGauge => {
            format!("this native histogram metric is not a gauge: {metric:?}")
        }
    };
    ev.warn(format!("PromQL warning: {what} {at}"));
}

/// Prometheus' warning when histograms' bucket layouts cannot be combined.
fn warn_incompatible(ev: &mut Evaluator<'_>, metric: &str, at: &str, error: &HistogramError) {
    ev.warn(format!(
        "PromQL warning: {} for metric name {metric:?} {at}",
        incompatibility(error)
    ));
}

/// The annotation text (without metric and position) for a failed
/// combination of histograms.
pub fn incompatibility(error: &HistogramError) -> &'static str {
    match error {
        HistogramError::IncompatibleSchema => {
            "vector contains a mix of histograms with exponential and custom buckets schemas"
        }
        _ => "vector contains histograms with incompatible custom buckets",
    }
}

/// Prometheus' `histogramRate` and `extrapolatedRate` for a window of
/// histograms: last − first (counter resets added back for counters), the
/// result extrapolated to the window's edges like a float rate.
fn extrapolated_histogram_rate(
    ev: &mut Evaluator<'_>,
    name: &str,
    w: &HistogramWindow<'_>,
) -> Option<Hist> {
    let (metric, at, points) = (w.metric, w.at, w.points);
    let (start, end, range) = (w.start, w.end, w.range);
    if points.len() < 2 {
        return None;
    }
    let is_counter = name != "delta";
    let first = &points[0].1;
    let last = &points[points.len() - 1].1;
    let mut prev: FloatHistogram = first.as_ref().clone();
    if is_counter
        && (first.counter_reset_hint == CounterResetHint::Gauge
            || last.counter_reset_hint == CounterResetHint::Gauge)
    {
        warn_series(ev, SeriesWarning::NotCounter, metric, at);
    }
    // A reset between the first two samples: the first is not looked at.
    if is_counter && points[1].1.detect_reset(&prev) {
        prev = FloatHistogram {
            schema: points[1].1.schema,
            custom_values: points[1].1.custom_values.clone(),
            ..Default::default()
        };
    }
    if last.uses_custom_buckets() != prev.uses_custom_buckets()
        || points
            .iter()
            .any(|(_, h)| h.uses_custom_buckets() != last.uses_custom_buckets())
    {
        warn_incompatible(ev, metric, at, &HistogramError::IncompatibleSchema);
        return None;
    }
    let mut min_schema = prev.schema.min(last.schema);
    if is_counter {
        for (_, h) in &points[1..points.len() - 1] {
            if h.counter_reset_hint == CounterResetHint::Gauge {
                warn_series(ev, SeriesWarning::NotCounter, metric, at);
            }
            min_schema = min_schema.min(h.schema);
        }
    }
    let mut result = last.as_ref().clone();
    if result.schema > min_schema {
        result.reduce_resolution(min_schema);
    }
    let failed = |ev: &mut Evaluator<'_>, e: &HistogramError| {
        warn_incompatible(ev, metric, at, e);
    };
    match result.sub_ext(&prev) {
        Ok(outcome) => note_reconciled(ev, &outcome, at),
        Err(e) => {
            failed(ev, &e);
            return None;
        }
    }
    if is_counter {
        let mut previous: &FloatHistogram = &prev;
        for (_, h) in &points[1..] {
            if h.detect_reset(previous)
                && let Err(e) = result.add(previous)
            {
                failed(ev, &e);
                return None;
            }
            previous = h;
        }
    } else if first.counter_reset_hint != CounterResetHint::Gauge
        || last.counter_reset_hint != CounterResetHint::Gauge
    {
        warn_series(ev, SeriesWarning::NotGauge, metric, at);
    }
    let (first_t, last_t) = (points[0].0, points[points.len() - 1].0);
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let average = sampled / (points.len() - 1) as f64;
    let threshold = average * 1.1;
    let mut to_start = (first_t - start) as f64 / 1000.0;
    let mut to_end = (end - last_t) as f64 / 1000.0;
    if to_start >= threshold {
        to_start = average / 2.0;
    }
    if to_end >= threshold {
        to_end = average / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if name == "rate" {
        factor /= range as f64 / 1000.0;
    }
    result.mul(factor);
    result.counter_reset_hint = CounterResetHint::Gauge;
    result.compact(0);
    Some(Arc::new(result))
}

/// Prometheus' `instantValue` for the last two histograms of a window:
/// `irate` is last − previous (or the last alone after a counter reset)
/// per second, `idelta` last − previous.
fn instant_histogram_rate(
    ev: &mut Evaluator<'_>,
    name: &str,
    w: &HistogramWindow<'_>,
) -> Option<Hist> {
    let (metric, at, points) = (w.metric, w.at, w.points);
    let [.., (previous_t, previous), (last_t, last)] = points else {
        return None;
    };
    let is_rate = name == "irate";
    let gauge = |h: &FloatHistogram| h.counter_reset_hint == CounterResetHint::Gauge;
    if is_rate && (gauge(last) || gauge(previous)) {
        warn_series(ev, SeriesWarning::NotCounter, metric, at);
    }
    let both_gauges = gauge(last) && gauge(previous);
    if !is_rate && !both_gauges {
        warn_series(ev, SeriesWarning::NotGauge, metric, at);
    }
    let mut result = last.as_ref().clone();
    if !is_rate || !last.detect_reset(previous) {
        match result.sub_ext(previous) {
            Ok(outcome) => note_reconciled(ev, &outcome, at),
            Err(e) => {
                warn_incompatible(ev, metric, at, &e);
                return None;
            }
        }
    }
    result.counter_reset_hint = CounterResetHint::Gauge;
    result.compact(0);
    if is_rate {
        result.div((last_t - previous_t) as f64 / 1000.0);
    }
    Some(Arc::new(result))
}

/// Sum (or, with `average`, mean) of the histograms of one group at one
/// step, or the error text when their bucket layouts cannot be combined.
pub fn sum_histograms(histograms: &[&Hist], average: bool) -> Result<Hist, String> {
    let mut sum = histograms[0].as_ref().clone();
    for h in &histograms[1..] {
        sum.add(h).map_err(|e| incompatibility(&e).to_string())?;
    }
    if average {
        sum.div(histograms.len() as f64);
    }
    sum.counter_reset_hint = CounterResetHint::Gauge;
    sum.compact(0);
    Ok(Arc::new(sum))
}
