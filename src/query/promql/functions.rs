//! PromQL function calls: arguments evaluated on the step grid → one value
//! per series and step. Range-vector functions cut each step's window and
//! hand it to the numeric kernels of `o11ydb_udfs::promql`; the rest map
//! instant-vector values or rewrite labels.

use chrono::{Datelike, TimeZone, Timelike, Utc};
use o11ydb_udfs::promql::{histogram, range as kernels};
use promql_parser::parser::{Call, Expr};
use regex::Regex;

use super::eval::{
    Evaluator, RangeVector, StepSeries, Val, WindowCursor, histogram_window, window, without_name,
};
use super::value::{Labels, METRIC_NAME, sort_labels};
use super::{PromError, native, parallel};

pub fn call(ev: &mut Evaluator<'_>, call: &Call, times: &[i64]) -> Result<Val, PromError> {
    let name = call.func.name;
    let args = &call.args.args;
    match name {
        "time" => {
            return Ok(Val::Scalar(
                times.iter().map(|&t| t as f64 / 1000.0).collect(),
            ));
        }
        "pi" => return Ok(Val::Scalar(vec![std::f64::consts::PI; times.len()])),
        "start" => {
            return Ok(Val::Scalar(vec![
                ev.bounds.start as f64 / 1000.0;
                times.len()
            ]));
        }
        "end" => {
            return Ok(Val::Scalar(vec![
                ev.bounds.end as f64 / 1000.0;
                times.len()
            ]));
        }
        "step" => {
            return Ok(Val::Scalar(vec![
                ev.bounds.step as f64 / 1000.0;
                times.len()
            ]));
        }
        "range" => {
            let range = (ev.bounds.end - ev.bounds.start) as f64 / 1000.0;
            return Ok(Val::Scalar(vec![range; times.len()]));
        }
        "min_of" | "max_of" => {
            let a = scalar_arg(ev, &args[0], times, name)?;
            let b = scalar_arg(ev, &args[1], times, name)?;
            let pick = if name == "min_of" { go_min } else { go_max };
            return Ok(Val::Scalar(
                a.iter().zip(&b).map(|(&a, &b)| pick(a, b)).collect(),
            ));
        }
        "timestamp" => {
            if let Some(vs) = selector_arg(&args[0]) {
                return Ok(Val::Vector(ev.selector_timestamps(vs, times)));
            }
            let series = vector_arg(ev, &args[0], times, name)?;
            return Ok(Val::Vector(
                series
                    .into_iter()
                    .map(|mut s| {
                        for (v, &t) in s.values.iter_mut().zip(times) {
                            if v.is_some() {
                                *v = Some(t as f64 / 1000.0);
                            }
                        }
                        s.drop_name = true;
                        s
                    })
                    .collect(),
            ));
        }
        "vector" => {
            let values = scalar_arg(ev, &args[0], times, name)?;
            return Ok(Val::Vector(vec![StepSeries {
                histograms: Vec::new(),
                labels: Labels::default(),
                values: values.into_iter().map(Some).collect(),
                drop_name: false,
            }]));
        }
        "scalar" => {
            let series = vector_arg(ev, &args[0], times, name)?;
            let values = (0..times.len())
                .map(|i| {
                    let mut present = series.iter().filter_map(|s| s.values[i]);
                    match (present.next(), present.next()) {
                        (Some(v), None) => v,
                        _ => f64::NAN,
                    }
                })
                .collect();
            return Ok(Val::Scalar(values));
        }
        "absent" => {
            let series = vector_arg(ev, &args[0], times, name)?;
            return Ok(absent(&args[0], times, |i| {
                series.iter().any(|s| s.has_sample(i))
            }));
        }
        "absent_over_time" => {
            let m = matrix_arg(ev, &args[0], times, name)?;
            return Ok(absent(&args[0], times, |i| {
                let end = m.window_end(times[i]);
                m.series.iter().any(|s| {
                    !window(&s.timestamps, end, m.range).is_empty()
                        || !histogram_window(&s.histograms, end, m.range).is_empty()
                })
            }));
        }
        "label_replace" => return label_replace(ev, args, times),
        "label_join" => return label_join(ev, args, times),
        "sort" | "sort_desc" => {
            // Histogram samples have no order: sort drops them.
            let mut series: Vec<StepSeries> = vector_arg(ev, &args[0], times, name)?
                .into_iter()
                .map(StepSeries::without_histograms)
                .filter(StepSeries::any_sample)
                .collect();
            ev.warn_sort_in_range_query(name, times);
            let desc = name == "sort_desc";
            series.sort_by(|a, b| {
                let (x, y) = (
                    a.values[0].unwrap_or(f64::NAN),
                    b.values[0].unwrap_or(f64::NAN),
                );
                // NaN sorts last either way.
                match (x.is_nan(), y.is_nan()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ if desc => y.total_cmp(&x),
                    _ => x.total_cmp(&y),
                }
            });
            return Ok(Val::Vector(series));
        }
        "sort_by_label" | "sort_by_label_desc" => {
            let mut series = vector_arg(ev, &args[0], times, name)?;
            ev.warn_sort_in_range_query(name, times);
            let mut keys = Vec::new();
            for a in &args[1..] {
                keys.push(string_arg(ev, a, times, name)?);
            }
            let desc = name == "sort_by_label_desc";
            series.sort_by(|a, b| {
                let mut ord = std::cmp::Ordering::Equal;
                for k in &keys {
                    ord = natural_cmp(label(&a.labels, k), label(&b.labels, k));
                    if ord.is_ne() {
                        break;
                    }
                }
                if ord.is_eq() {
                    ord = super::value::compare_labels(&a.labels, &b.labels);
                }
                if desc { ord.reverse() } else { ord }
            });
            return Ok(Val::Vector(series));
        }
        "histogram_quantile" => return histogram_quantile(ev, args, times),
        "histogram_quantiles" => return histogram_quantiles(ev, args, times),
        "histogram_fraction" => return histogram_fraction(ev, args, times),
        "clamp" | "clamp_min" | "clamp_max" => {
            let series = vector_arg(ev, &args[0], times, name)?;
            let (lo, hi) = match name {
                "clamp" => (
                    scalar_arg(ev, &args[1], times, name)?,
                    scalar_arg(ev, &args[2], times, name)?,
                ),
                "clamp_min" => (
                    scalar_arg(ev, &args[1], times, name)?,
                    vec![f64::INFINITY; times.len()],
                ),
                _ => (
                    vec![f64::NEG_INFINITY; times.len()],
                    scalar_arg(ev, &args[1], times, name)?,
                ),
            };
            return Ok(map_steps(series, |i, v| {
                if name == "clamp" && hi[i] < lo[i] {
                    return None;
                }
                Some(go_max(lo[i], go_min(hi[i], v)))
            }));
        }
        "round" => {
            let series = vector_arg(ev, &args[0], times, name)?;
            let nearest = match args.get(1) {
                Some(a) => scalar_arg(ev, a, times, name)?,
                None => vec![1.0; times.len()],
            };
            return Ok(map_steps(series, |i, v| {
                let inverse = 1.0 / nearest[i];
                Some((v * inverse + 0.5).floor() / inverse)
            }));
        }
        "days_in_month" | "day_of_month" | "day_of_week" | "day_of_year" | "hour" | "minute"
        | "month" | "year" => {
            let series = match args.first() {
                Some(a) => vector_arg(ev, a, times, name)?,
                None => vec![StepSeries {
                    histograms: Vec::new(),
                    labels: Labels::default(),
                    values: times.iter().map(|&t| Some(t as f64 / 1000.0)).collect(),
                    drop_name: false,
                }],
            };
            return Ok(map_steps(series, |_, v| date_part(name, v)));
        }
        "predict_linear" => {
            let m = matrix_arg(ev, &args[0], times, name)?;
            let duration = scalar_arg(ev, &args[1], times, name)?;
            native::note_mixed_windows(ev, name, &m, times);
            return Ok(over_windows(&m, times, true, |i, ts, vs, _| {
                kernels::predict_linear(ts, vs, times[i], duration[i])
            }));
        }
        "quantile_over_time" => {
            let q = scalar_arg(ev, &args[0], times, name)?;
            let m = matrix_arg(ev, &args[1], times, name)?;
            if q.iter().any(|q| !(0.0..=1.0).contains(q)) {
                ev.warnings.push(format!(
                    "PromQL warning: quantile value should be between 0 and 1, got {}",
                    q.iter()
                        .find(|q| !(0.0..=1.0).contains(*q))
                        .copied()
                        .unwrap_or(f64::NAN)
                ));
            }
            native::note_mixed_windows(ev, name, &m, times);
            return Ok(over_windows(&m, times, true, |i, _, vs, _| {
                Some(kernels::quantile_over_time(q[i], vs))
            }));
        }
        "double_exponential_smoothing" => {
            let m = matrix_arg(ev, &args[0], times, name)?;
            let sf = scalar_arg(ev, &args[1], times, name)?;
            let tf = scalar_arg(ev, &args[2], times, name)?;
            for i in 0..times.len() {
                if !(sf[i] > 0.0 && sf[i] < 1.0) {
                    return Err(PromError::Execution(format!(
                        "invalid smoothing factor. Expected: 0 < sf < 1, got: {}",
                        sf[i]
                    )));
                }
                if !(tf[i] > 0.0 && tf[i] < 1.0) {
                    return Err(PromError::Execution(format!(
                        "invalid trend factor. Expected: 0 < tf < 1, got: {}",
                        tf[i]
                    )));
                }
            }
            native::note_mixed_windows(ev, name, &m, times);
            return Ok(over_windows(&m, times, true, |i, _, vs, _| {
                kernels::double_exponential_smoothing(vs, sf[i], tf[i])
            }));
        }
        _ => {}
    }
    if let Some(f) = native::histogram_property(name) {
        let series = vector_arg(ev, &args[0], times, name)?;
        return Ok(Val::Vector(native::map_histograms(&series, |_, h| f(h))));
    }
    if let Some(window_fn) = range_function(name) {
        let m = matrix_arg(ev, &args[0], times, name)?;
        if m.series.iter().any(|s| !s.histograms.is_empty()) {
            return Ok(native::over_windows(ev, name, &m, times, window_fn));
        }
        let keep_name = matches!(name, "last_over_time" | "first_over_time");
        let result = over_windows(&m, times, !keep_name, |_, ts, vs, (start, end)| {
            window_fn(ts, vs, start, end)
        });
        if matches!(name, "rate" | "increase")
            && let Val::Vector(out) = &result
        {
            info_not_a_counter(ev, &m, out);
        }
        return Ok(result);
    }
    if let Some(f) = math_function(name) {
        let series = vector_arg(ev, &args[0], times, name)?;
        return Ok(map_steps(series, |_, v| Some(f(v))));
    }
    Err(PromError::BadData(format!(
        "function {name}() is not supported by o11ydb"
    )))
}

/// Prometheus' hint when `rate`/`increase` read a series whose name does
/// not look like a counter's.
fn info_not_a_counter(ev: &mut Evaluator<'_>, m: &RangeVector, out: &[StepSeries]) {
    const COUNTER_SUFFIXES: [&str; 4] = ["_total", "_sum", "_count", "_bucket"];
    for s in &m.series {
        let name = label(&s.labels, METRIC_NAME);
        if name.is_empty() || COUNTER_SUFFIXES.iter().any(|x| name.ends_with(x)) {
            continue;
        }
        if !out.iter().any(|o| o.labels == s.labels) {
            continue;
        }
        let at = ev.position_of(name);
        ev.info(format!(
            "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {name:?} {at}"
        ));
    }
}

type WindowFn = fn(&[i64], &[f64], i64, i64) -> Option<f64>;

/// Functions of one window: (timestamps, values, window start, window end).
fn range_function(name: &str) -> Option<WindowFn> {
    Some(match name {
        "rate" => |ts, vs, s, e| kernels::extrapolated_rate(ts, vs, s, e, true, true),
        "increase" => |ts, vs, s, e| kernels::extrapolated_rate(ts, vs, s, e, true, false),
        "delta" => |ts, vs, s, e| kernels::extrapolated_rate(ts, vs, s, e, false, false),
        "irate" => |ts, vs, _, _| kernels::instant_rate(ts, vs, true),
        "idelta" => |ts, vs, _, _| kernels::instant_rate(ts, vs, false),
        "resets" => |_, vs, _, _| Some(kernels::resets(vs)),
        "changes" => |_, vs, _, _| Some(kernels::changes(vs)),
        "deriv" => |ts, vs, _, _| kernels::deriv(ts, vs),
        "avg_over_time" => |_, vs, _, _| Some(kernels::avg_over_time(vs)),
        "sum_over_time" => |_, vs, _, _| Some(kernels::sum_over_time(vs)),
        "min_over_time" => |_, vs, _, _| Some(kernels::min_over_time(vs)),
        "max_over_time" => |_, vs, _, _| Some(kernels::max_over_time(vs)),
        "count_over_time" => |_, vs, _, _| Some(vs.len() as f64),
        "last_over_time" => |_, vs, _, _| vs.last().copied(),
        "first_over_time" => |_, vs, _, _| vs.first().copied(),
        "present_over_time" => |_, _, _, _| Some(1.0),
        "stddev_over_time" => |_, vs, _, _| Some(kernels::stddev_over_time(vs)),
        "stdvar_over_time" => |_, vs, _, _| Some(kernels::stdvar_over_time(vs)),
        "mad_over_time" => |_, vs, _, _| Some(kernels::mad_over_time(vs)),
        "ts_of_first_over_time" => |ts, _, _, _| ts.first().map(|&t| t as f64 / 1000.0),
        "ts_of_last_over_time" => |ts, _, _, _| ts.last().map(|&t| t as f64 / 1000.0),
        "ts_of_max_over_time" => |ts, vs, _, _| Some(kernels::ts_of_max_over_time(ts, vs)),
        "ts_of_min_over_time" => |ts, vs, _, _| Some(kernels::ts_of_min_over_time(ts, vs)),
        _ => return None,
    })
}

fn math_function(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sgn" => |v| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        },
        "acos" => f64::acos,
        "acosh" => f64::acosh,
        "asin" => f64::asin,
        "asinh" => f64::asinh,
        "atan" => f64::atan,
        "atanh" => f64::atanh,
        "cos" => f64::cos,
        "cosh" => f64::cosh,
        "sin" => f64::sin,
        "sinh" => f64::sinh,
        "tan" => f64::tan,
        "tanh" => f64::tanh,
        "deg" => f64::to_degrees,
        "rad" => f64::to_radians,
        _ => return None,
    })
}

/// Go's `math.Max`: NaN wins.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn date_part(name: &str, v: f64) -> Option<f64> {
    if !v.is_finite() {
        return Some(f64::NAN);
    }
    let t = Utc.timestamp_opt(v.floor() as i64, 0).single()?;
    Some(match name {
        "days_in_month" => {
            let (y, m) = (t.year(), t.month());
            let next = if m == 12 {
                Utc.with_ymd_and_hms(y + 1, 1, 1, 0, 0, 0)
            } else {
                Utc.with_ymd_and_hms(y, m + 1, 1, 0, 0, 0)
            };
            let first = Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0);
            (next.single()? - first.single()?).num_days() as f64
        }
        "day_of_month" => t.day() as f64,
        "day_of_week" => t.weekday().num_days_from_sunday() as f64,
        "day_of_year" => t.ordinal() as f64,
        "hour" => t.hour() as f64,
        "minute" => t.minute() as f64,
        "month" => t.month() as f64,
        _ => t.year() as f64,
    })
}

/// Applies `f(step, value)` to every present value; the name is dropped.
fn map_steps(series: Vec<StepSeries>, f: impl Fn(usize, f64) -> Option<f64>) -> Val {
    Val::Vector(
        series
            .into_iter()
            .filter_map(|mut s| {
                for (i, v) in s.values.iter_mut().enumerate() {
                    *v = v.and_then(|x| f(i, x));
                }
                // Float functions skip histogram samples.
                s.histograms.clear();
                s.drop_name = true;
                s.values.iter().any(Option::is_some).then_some(s)
            })
            .collect(),
    )
}

/// Runs `f(step, timestamps, values, (window start, window end))` over every
/// non-empty window of every series.
fn over_windows(
    m: &RangeVector,
    times: &[i64],
    drop_name: bool,
    f: impl Fn(usize, &[i64], &[f64], (i64, i64)) -> Option<f64> + Sync,
) -> Val {
    Val::Vector(parallel::filter_map_series(&m.series, times.len(), |s| {
        let mut cursor = WindowCursor::new(&s.timestamps);
        let values: Vec<Option<f64>> = times
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let end = m.window_end(t);
                let w = cursor.window(end, m.range);
                if w.is_empty() {
                    return None;
                }
                f(
                    i,
                    &s.timestamps[w.clone()],
                    &s.values[w],
                    (end.saturating_sub(m.range), end),
                )
            })
            .collect();
        values.iter().any(Option::is_some).then(|| StepSeries {
            histograms: Vec::new(),
            labels: s.labels.clone(),
            values,
            drop_name: drop_name || s.drop_name,
        })
    }))
}

/// `absent(x)`: 1 at steps where nothing is present, labelled with the
/// selector's equality matchers (a name matched twice is left out).
fn absent(arg: &Expr, times: &[i64], present: impl Fn(usize) -> bool) -> Val {
    let values: Vec<Option<f64>> = (0..times.len())
        .map(|i| (!present(i)).then_some(1.0))
        .collect();
    if values.iter().all(Option::is_none) {
        return Val::Vector(vec![]);
    }
    let mut labels = Labels::default();
    let selector = match unwrap_parens(arg) {
        Expr::VectorSelector(vs) => Some(vs),
        Expr::MatrixSelector(ms) => Some(&ms.vs),
        _ => None,
    };
    if let Some(vs) = selector {
        let mut seen: Vec<&str> = Vec::new();
        let mut repeated: Vec<&str> = Vec::new();
        for m in &vs.matchers.matchers {
            if m.name == METRIC_NAME {
                continue;
            }
            if seen.contains(&m.name.as_str()) {
                repeated.push(&m.name);
            }
            seen.push(&m.name);
        }
        for m in &vs.matchers.matchers {
            if m.name != METRIC_NAME
                && m.op == promql_parser::label::MatchOp::Equal
                && !repeated.contains(&m.name.as_str())
            {
                labels.push((m.name.clone(), m.value.clone()));
            }
        }
        sort_labels(&mut labels);
    }
    Val::Vector(vec![StepSeries {
        histograms: Vec::new(),
        labels,
        values,
        drop_name: false,
    }])
}

fn label_replace(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    times: &[i64],
) -> Result<Val, PromError> {
    let series = vector_arg(ev, &args[0], times, "label_replace")?;
    let dst = string_arg(ev, &args[1], times, "label_replace")?;
    let replacement = string_arg(ev, &args[2], times, "label_replace")?;
    let src = string_arg(ev, &args[3], times, "label_replace")?;
    let pattern = string_arg(ev, &args[4], times, "label_replace")?;
    let re = Regex::new(&format!("^(?s:{pattern})$")).map_err(|e| {
        PromError::Execution(format!(
            "invalid regular expression in label_replace(): {pattern}: {e}"
        ))
    })?;
    if !valid_label_name(&dst) {
        return Err(PromError::Execution(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let out = series
        .into_iter()
        .map(|mut s| {
            let value = label(&s.labels, &src).to_string();
            if let Some(caps) = re.captures(&value) {
                let mut result = String::new();
                caps.expand(&replacement, &mut result);
                set_label(&mut s.labels, &dst, &result);
                if dst == METRIC_NAME {
                    s.drop_name = false;
                }
            }
            s
        })
        .collect();
    Ok(Val::Vector(out))
}

fn label_join(ev: &mut Evaluator<'_>, args: &[Box<Expr>], times: &[i64]) -> Result<Val, PromError> {
    let series = vector_arg(ev, &args[0], times, "label_join")?;
    let dst = string_arg(ev, &args[1], times, "label_join")?;
    let separator = string_arg(ev, &args[2], times, "label_join")?;
    let mut sources = Vec::new();
    for a in &args[3..] {
        let src = string_arg(ev, a, times, "label_join")?;
        if !valid_label_name(&src) {
            return Err(PromError::Execution(format!(
                "invalid source label name in label_join(): {src}"
            )));
        }
        sources.push(src);
    }
    if !valid_label_name(&dst) {
        return Err(PromError::Execution(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let out = series
        .into_iter()
        .map(|mut s| {
            let joined = sources
                .iter()
                .map(|src| label(&s.labels, src))
                .collect::<Vec<_>>()
                .join(&separator);
            set_label(&mut s.labels, &dst, &joined);
            if dst == METRIC_NAME {
                s.drop_name = false;
            }
            s
        })
        .collect();
    Ok(Val::Vector(out))
}

/// `histogram_quantile(q, buckets)` over classic `_bucket{le}` series.
fn histogram_quantile(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    times: &[i64],
) -> Result<Val, PromError> {
    let q = scalar_arg(ev, &args[0], times, "histogram_quantile")?;
    let series = vector_arg(ev, &args[1], times, "histogram_quantile")?;
    warn_quantiles_out_of_range(ev, &q);
    let at = ev.position_of(&args[1].to_string());
    let classic = classic_histograms(ev, &series, times.len(), &at, |i, buckets| {
        let (value, forced_monotonicity, _) = histogram::bucket_quantile(q[i], buckets);
        (value, forced_monotonicity)
    });
    let native = native::quantiles(&series, &q);
    Ok(Val::Vector(classic_and_native(ev, classic, native, &at)))
}

/// `histogram_quantiles(buckets, "label", q1, q2, …)`: one series per
/// quantile, told apart by `label`.
fn histogram_quantiles(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    times: &[i64],
) -> Result<Val, PromError> {
    let series = vector_arg(ev, &args[0], times, "histogram_quantiles")?;
    let label_name = string_arg(ev, &args[1], times, "histogram_quantiles")?;
    if !valid_label_name(&label_name) {
        return Err(PromError::Execution(format!(
            "invalid quantile label name in histogram_quantiles(): {label_name}"
        )));
    }
    if series
        .iter()
        .any(|s| s.labels.iter().any(|(n, _)| *n == label_name))
    {
        return Err(PromError::Execution(format!(
            "label {label_name:?} already exists on an input series of histogram_quantiles()"
        )));
    }
    let mut out = Vec::new();
    for arg in &args[2..] {
        let q = scalar_arg(ev, arg, times, "histogram_quantiles")?;
        warn_quantiles_out_of_range(ev, &q);
        let text = quantile_label(q[0]);
        let at = ev.position_of(&args[0].to_string());
        let classic = classic_histograms(ev, &series, times.len(), &at, |i, buckets| {
            let (value, forced_monotonicity, _) = histogram::bucket_quantile(q[i], buckets);
            (value, forced_monotonicity)
        });
        let native = native::quantiles(&series, &q);
        for mut s in classic_and_native(ev, classic, native, &at) {
            set_label(&mut s.labels, &label_name, &text);
            out.push(s);
        }
    }
    Ok(Val::Vector(out))
}

/// A quantile as a label value: always with a decimal point (`0.0`, `0.25`).
fn quantile_label(q: f64) -> String {
    let text = super::value::format_float(q);
    if q.is_finite() && !text.contains('.') && !text.contains('e') {
        format!("{text}.0")
    } else {
        text
    }
}

/// `histogram_fraction(lower, upper, buckets)` over classic buckets.
fn histogram_fraction(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    times: &[i64],
) -> Result<Val, PromError> {
    let lower = scalar_arg(ev, &args[0], times, "histogram_fraction")?;
    let upper = scalar_arg(ev, &args[1], times, "histogram_fraction")?;
    let series = vector_arg(ev, &args[2], times, "histogram_fraction")?;
    let at = ev.position_of(&args[2].to_string());
    let classic = classic_histograms(ev, &series, times.len(), &at, |i, buckets| {
        (
            histogram::bucket_fraction(lower[i], upper[i], buckets),
            false,
        )
    });
    let native = native::fractions(&series, &lower, &upper);
    Ok(Val::Vector(classic_and_native(ev, classic, native, &at)))
}

fn warn_quantiles_out_of_range(ev: &mut Evaluator<'_>, q: &[f64]) {
    if let Some(bad) = q.iter().find(|q| !(0.0..=1.0).contains(*q)) {
        let at = ev.position_of("histogram_quantile");
        ev.warnings.push(format!(
            "PromQL warning: quantile value should be between 0 and 1, got {} {at}",
            super::value::format_float(*bad)
        ));
    }
}

/// Groups classic bucket series (`le` label) by their other labels and
/// folds each group's buckets per step with `f` into (value, whether
/// monotonicity had to be forced); malformed `le` values are skipped with a
/// warning.
fn classic_histograms(
    ev: &mut Evaluator<'_>,
    series: &[StepSeries],
    steps: usize,
    at: &str,
    f: impl Fn(usize, &mut [(f64, f64)]) -> (f64, bool),
) -> Vec<StepSeries> {
    let mut groups: Vec<(Labels, Vec<(f64, usize)>)> = Vec::new();
    let mut index: crate::model::labels::LabelsMap<Labels, usize> = Default::default();
    // Series of native histograms only are not classic buckets.
    let floats = series
        .iter()
        .enumerate()
        .filter(|(_, s)| s.values.iter().any(Option::is_some));
    for (idx, s) in floats {
        let le = label(&s.labels, "le");
        let Some(upper) = parse_le(le) else {
            let name = label(&s.labels, METRIC_NAME).to_string();
            ev.warn(format!(
                "PromQL warning: bucket label \"le\" is missing or has a malformed value of {le:?} for metric name {name:?} {at}"
            ));
            continue;
        };
        // Keyed with the metric name, dropped at the end: buckets of two
        // metrics never merge, and two results left with one label set are
        // an error, as in Prometheus.
        let key: Labels = s
            .labels
            .iter()
            .filter(|(n, _)| n != "le")
            .cloned()
            .collect();
        let g = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push((upper, idx));
    }
    let mut out = Vec::new();
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for (labels, members) in groups {
        let mut values = vec![None; steps];
        for (i, value) in values.iter_mut().enumerate() {
            buckets.clear();
            buckets.extend(
                members
                    .iter()
                    .filter_map(|&(upper, idx)| series[idx].values[i].map(|v| (upper, v))),
            );
            if buckets.is_empty() {
                continue;
            }
            let (result, forced_monotonicity) = f(i, &mut buckets);
            if forced_monotonicity {
                ev.info(format!(
                    "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {:?} {at}",
                    label(&labels, METRIC_NAME)
                ));
            }
            *value = Some(result);
        }
        if values.iter().any(Option::is_some) {
            out.push(StepSeries::floats(labels, values, true));
        }
    }
    out
}

/// The results of classic and native histograms together; where both
/// answer for the same series and step, neither is kept and Prometheus'
/// warning says why.
fn classic_and_native(
    ev: &mut Evaluator<'_>,
    mut classic: Vec<StepSeries>,
    native: Vec<StepSeries>,
    at: &str,
) -> Vec<StepSeries> {
    let mut out = Vec::with_capacity(classic.len() + native.len());
    for mut n in native {
        let same = classic
            .iter_mut()
            .find(|c| without_name(&c.labels) == without_name(&n.labels));
        if let Some(c) = same {
            for i in 0..n.values.len() {
                if c.values[i].is_some() && n.values[i].is_some() {
                    c.values[i] = None;
                    n.values[i] = None;
                    let name = label(&n.labels, METRIC_NAME).to_string();
                    ev.warn(format!(
                        "PromQL warning: vector contains a mix of classic and native histograms for metric name {name:?} {at}"
                    ));
                }
            }
        }
        out.push(n);
    }
    out.extend(classic);
    out.retain(StepSeries::any_sample);
    out
}

fn parse_le(v: &str) -> Option<f64> {
    match v.trim() {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub fn label<'l>(labels: &'l Labels, name: &str) -> &'l str {
    labels
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

pub fn set_label(labels: &mut Labels, name: &str, value: &str) {
    labels.retain(|(n, _)| n != name);
    if !value.is_empty() {
        labels.push((name.to_string(), value.to_string()));
        sort_labels(labels);
    }
}

/// Natural order: digit runs compare by number, the rest by bytes.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let nx = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let ny = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (dx, dy) = (&x[..nx], &y[..ny]);
                let tx = dx.iter().skip_while(|&&c| c == b'0').count();
                let ty = dy.iter().skip_while(|&&c| c == b'0').count();
                let ord = tx.cmp(&ty).then_with(|| dx[nx - tx..].cmp(&dy[ny - ty..]));
                if ord.is_ne() {
                    return ord;
                }
                x = &x[nx..];
                y = &y[ny..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

pub fn unwrap_parens(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unwrap_parens(&p.expr),
        other => other,
    }
}

fn selector_arg(e: &Expr) -> Option<&promql_parser::parser::VectorSelector> {
    match unwrap_parens(e) {
        Expr::VectorSelector(vs) => Some(vs),
        _ => None,
    }
}

pub fn vector_arg(
    ev: &mut Evaluator<'_>,
    e: &Expr,
    times: &[i64],
    function: &str,
) -> Result<Vec<StepSeries>, PromError> {
    match ev.eval(e, times)? {
        Val::Vector(v) => Ok(v),
        other => Err(PromError::BadData(format!(
            "expected type instant vector in call to function {function:?}, got {}",
            other.type_name()
        ))),
    }
}

fn matrix_arg(
    ev: &mut Evaluator<'_>,
    e: &Expr,
    times: &[i64],
    function: &str,
) -> Result<RangeVector, PromError> {
    match ev.eval(e, times)? {
        Val::Matrix(m) => Ok(m),
        other => Err(PromError::BadData(format!(
            "expected type range vector in call to function {function:?}, got {}",
            other.type_name()
        ))),
    }
}

pub fn scalar_arg(
    ev: &mut Evaluator<'_>,
    e: &Expr,
    times: &[i64],
    function: &str,
) -> Result<Vec<f64>, PromError> {
    match ev.eval(e, times)? {
        Val::Scalar(v) => Ok(v),
        other => Err(PromError::BadData(format!(
            "expected type scalar in call to function {function:?}, got {}",
            other.type_name()
        ))),
    }
}

pub fn string_arg(
    ev: &mut Evaluator<'_>,
    e: &Expr,
    times: &[i64],
    function: &str,
) -> Result<String, PromError> {
    match ev.eval(e, times)? {
        Val::String(s) => Ok(s),
        other => Err(PromError::BadData(format!(
            "expected type string in call to function {function:?}, got {}",
            other.type_name()
        ))),
    }
}
