//! Range-vector functions: the samples of one series inside one window
//! (`ts` in milliseconds, `vals`, in time order) folded into one value.
//!
//! When `ts` and `vals` differ in length only their common prefix is used.
//! Functions returning a plain `f64` are only meaningful for a non-empty
//! window (Prometheus emits no sample for an empty one); given one anyway
//! they return NaN (or 0 for the counting functions).

use super::stats::{AvgAcc, kahan_sum_inc, quantile};

/// A duration in milliseconds as float seconds, rounded the way Prometheus
/// converts its range durations.
fn duration_seconds(ms: i64) -> f64 {
    let whole = ms / 1000;
    let nanos = (ms % 1000) * 1_000_000;
    whole as f64 + nanos as f64 / 1e9
}

/// Milliseconds between two timestamps as float seconds.
fn seconds_between(from: i64, to: i64) -> f64 {
    to.wrapping_sub(from) as f64 / 1000.0
}

/// `rate`/`increase`/`delta` with Prometheus 3.x extrapolation.
///
/// `range_start`/`range_end` are the window bounds in ms (the window is
/// left-open, `(range_start, range_end]`). `is_counter` (rate, increase)
/// compensates counter resets and never extrapolates below zero; `is_rate`
/// divides by the range in seconds. Returns None when fewer than 2 samples.
pub fn extrapolated_rate(
    ts: &[i64],
    vals: &[f64],
    range_start: i64,
    range_end: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    let n = ts.len().min(vals.len());
    if n < 2 {
        return None;
    }
    let (ts, vals) = (&ts[..n], &vals[..n]);
    let (first_t, last_t) = (ts[0], ts[n - 1]);

    let mut result = vals[n - 1] - vals[0];
    // Most windows hold no counter reset: a branch-free pass finds out
    // before the corrections are summed in order.
    if is_counter && has_decrease(vals) {
        for pair in vals.windows(2) {
            if pair[1] < pair[0] {
                result += pair[0];
            }
        }
    }

    let mut to_start = seconds_between(range_start, first_t);
    let mut to_end = seconds_between(last_t, range_end);
    let sampled = seconds_between(first_t, last_t);
    let average_gap = sampled / (n - 1) as f64;
    // Samples closer to a boundary than 110% of the average gap are
    // extrapolated all the way to it; otherwise the series is assumed to
    // start or end half an average gap beyond its outermost sample.
    let threshold = average_gap * 1.1;

    if to_start >= threshold {
        to_start = average_gap / 2.0;
    }
    if is_counter {
        // A counter cannot go below zero: stop the extrapolation where the
        // slope reaches zero if that comes first.
        let mut to_zero = to_start;
        if result > 0.0 && vals[0] >= 0.0 {
            to_zero = sampled * (vals[0] / result);
        }
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = average_gap / 2.0;
    }

    let mut factor = 1.0;
    if sampled != 0.0 {
        factor = (sampled + to_start + to_end) / sampled;
    }
    if is_rate {
        factor /= duration_seconds(range_end.wrapping_sub(range_start));
    }
    Some(result * factor)
}

/// Whether any value is below the one before it.
fn has_decrease(vals: &[f64]) -> bool {
    vals[1..]
        .iter()
        .zip(vals)
        .fold(false, |any, (next, prev)| any | (next < prev))
}

/// `irate` (`is_rate`) and `idelta`: from the last two samples only. For
/// irate a decrease counts as a counter reset (the rate is then the last
/// value over the gap). None with fewer than 2 samples or when the last
/// two share a timestamp.
pub fn instant_rate(ts: &[i64], vals: &[f64], is_rate: bool) -> Option<f64> {
    let n = ts.len().min(vals.len());
    if n < 2 {
        return None;
    }
    let (t0, t1) = (ts[n - 2], ts[n - 1]);
    let (v0, v1) = (vals[n - 2], vals[n - 1]);
    let gap_ms = t1.wrapping_sub(t0);
    if gap_ms == 0 {
        return None;
    }
    let mut result = v1;
    if !is_rate || v1 >= v0 || v1.is_nan() || v0.is_nan() {
        result = v1 - v0;
    }
    if is_rate {
        result /= gap_ms as f64 / 1000.0;
    }
    Some(result)
}

/// `resets`: how many times the value decreased.
pub fn resets(vals: &[f64]) -> f64 {
    vals.windows(2).filter(|p| p[1] < p[0]).count() as f64
}

/// `changes`: how many times the value changed (NaN to NaN is no change).
pub fn changes(vals: &[f64]) -> f64 {
    vals.windows(2)
        .filter(|p| p[1] != p[0] && !(p[1].is_nan() && p[0].is_nan()))
        .count() as f64
}

/// Least-squares fit of `vals` over time in seconds relative to
/// `intercept_ms`: returns (slope per second, value at `intercept_ms`).
/// Constant input gives slope 0 exactly, or NaN if that constant is ±Inf.
fn linear_regression(ts: &[i64], vals: &[f64], intercept_ms: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut c_x, mut sum_y, mut c_y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut c_xy, mut sum_x2, mut c_x2) = (0.0, 0.0, 0.0, 0.0);
    let first_y = vals[0];
    let mut constant = true;
    for (i, (&t, &y)) in ts.iter().zip(vals).enumerate() {
        if constant && i > 0 && y != first_y {
            constant = false;
        }
        n += 1.0;
        let x = seconds_between(intercept_ms, t);
        (sum_x, c_x) = kahan_sum_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_sum_inc(y, sum_y, c_y);
        (sum_xy, c_xy) = kahan_sum_inc(x * y, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_sum_inc(x * x, sum_x2, c_x2);
    }
    if constant {
        if first_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, first_y);
    }
    sum_x += c_x;
    sum_y += c_y;
    sum_xy += c_xy;
    sum_x2 += c_x2;

    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

/// `deriv`: per-second slope of the least-squares line. None with fewer
/// than 2 samples.
pub fn deriv(ts: &[i64], vals: &[f64]) -> Option<f64> {
    let n = ts.len().min(vals.len());
    if n < 2 {
        return None;
    }
    // Regress around the first sample's time to keep the sums small.
    Some(linear_regression(&ts[..n], &vals[..n], ts[0]).0)
}

/// `predict_linear`: the least-squares line's value `duration_s` seconds
/// after the evaluation time `eval_ts` (ms). None with fewer than 2 samples.
pub fn predict_linear(ts: &[i64], vals: &[f64], eval_ts: i64, duration_s: f64) -> Option<f64> {
    let n = ts.len().min(vals.len());
    if n < 2 {
        return None;
    }
    let (slope, intercept) = linear_regression(&ts[..n], &vals[..n], eval_ts);
    Some(slope * duration_s + intercept)
}

/// `avg_over_time`: compensated sum over count, falling back to an
/// incremental mean if the sum would overflow.
pub fn avg_over_time(vals: &[f64]) -> f64 {
    let Some((&first, rest)) = vals.split_first() else {
        return f64::NAN;
    };
    let mut acc = AvgAcc::new(first);
    rest.iter().for_each(|&v| acc.add(v));
    acc.value()
}

/// `sum_over_time`: Kahan-compensated sum.
pub fn sum_over_time(vals: &[f64]) -> f64 {
    let (mut sum, mut c) = (0.0, 0.0);
    for &v in vals {
        (sum, c) = kahan_sum_inc(v, sum, c);
    }
    if sum.is_infinite() { sum } else { sum + c }
}

/// The first value `better` prefers over all others, where a NaN so far is
/// always replaced; returns its index.
fn pick_index(vals: &[f64], better: impl Fn(f64, f64) -> bool) -> Option<usize> {
    let mut best = 0;
    for (i, &v) in vals.iter().enumerate() {
        if better(v, vals[best]) || vals[best].is_nan() {
            best = i;
        }
    }
    (!vals.is_empty()).then_some(best)
}

/// `min_over_time`: NaN values are skipped unless all values are NaN.
pub fn min_over_time(vals: &[f64]) -> f64 {
    pick_index(vals, |v, best| v < best).map_or(f64::NAN, |i| vals[i])
}

/// `max_over_time`: NaN values are skipped unless all values are NaN.
pub fn max_over_time(vals: &[f64]) -> f64 {
    pick_index(vals, |v, best| v > best).map_or(f64::NAN, |i| vals[i])
}

/// `ts_of_min_over_time`: timestamp in seconds of the last occurrence of
/// the minimum (NaN values skipped unless all are NaN).
pub fn ts_of_min_over_time(ts: &[i64], vals: &[f64]) -> f64 {
    let n = ts.len().min(vals.len());
    pick_index(&vals[..n], |v, best| v <= best).map_or(f64::NAN, |i| ts[i] as f64 / 1000.0)
}

/// `ts_of_max_over_time`: timestamp in seconds of the last occurrence of
/// the maximum (NaN values skipped unless all are NaN).
pub fn ts_of_max_over_time(ts: &[i64], vals: &[f64]) -> f64 {
    let n = ts.len().min(vals.len());
    pick_index(&vals[..n], |v, best| v >= best).map_or(f64::NAN, |i| ts[i] as f64 / 1000.0)
}

/// Population variance with Kahan-compensated running mean and sum of
/// squared deviations, as the `*_over_time` variance functions compute it.
fn variance_over_time(vals: &[f64]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &v in vals {
        count += 1.0;
        let delta = v - (mean + c_mean);
        (mean, c_mean) = kahan_sum_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_sum_inc(delta * (v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

/// `stddev_over_time`: population standard deviation.
pub fn stddev_over_time(vals: &[f64]) -> f64 {
    variance_over_time(vals).sqrt()
}

/// `stdvar_over_time`: population variance.
pub fn stdvar_over_time(vals: &[f64]) -> f64 {
    variance_over_time(vals)
}

/// `quantile_over_time`: see [`quantile`] for the edge cases of `q`.
pub fn quantile_over_time(q: f64, vals: &[f64]) -> f64 {
    quantile(q, vals)
}

/// `mad_over_time`: median absolute deviation from the median. Any NaN
/// value makes the result NaN.
pub fn mad_over_time(vals: &[f64]) -> f64 {
    if vals.is_empty() || vals.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let median = quantile(0.5, vals);
    let deviations: Vec<f64> = vals.iter().map(|v| (v - median).abs()).collect();
    quantile(0.5, &deviations)
}

/// `double_exponential_smoothing` (formerly `holt_winters`): the smoothed
/// value after the last sample. None with fewer than 2 samples; the caller
/// checks that both factors lie strictly between 0 and 1.
pub fn double_exponential_smoothing(
    vals: &[f64],
    smoothing_factor: f64,
    trend_factor: f64,
) -> Option<f64> {
    if vals.len() < 2 {
        return None;
    }
    let (sf, tf) = (smoothing_factor, trend_factor);
    let mut previous = 0.0;
    let mut smoothed = vals[0];
    let mut trend = vals[1] - vals[0];
    for (i, &v) in vals.iter().enumerate().skip(1) {
        if i > 1 {
            trend = tf * (smoothed - previous) + (1.0 - tf) * trend;
        }
        let next = sf * v + (1.0 - sf) * (smoothed + trend);
        previous = smoothed;
        smoothed = next;
    }
    Some(smoothed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const INF: f64 = f64::INFINITY;
    const NAN: f64 = f64::NAN;

    /// A loaded series: `values[i]` at `i * step_ms`; None is a gap.
    struct Series {
        step_ms: i64,
        values: Vec<Option<f64>>,
    }

    impl Series {
        fn new(step_ms: i64, values: &[f64]) -> Self {
            Self::sparse(
                step_ms,
                &values.iter().map(|&v| Some(v)).collect::<Vec<_>>(),
            )
        }

        fn sparse(step_ms: i64, values: &[Option<f64>]) -> Self {
            Self {
                step_ms,
                values: values.to_vec(),
            }
        }

        /// `start+incrementxtimes`, as written in test load directives.
        fn linear(step_ms: i64, start: f64, increment: f64, times: usize) -> Self {
            Self::new(
                step_ms,
                &(0..=times)
                    .map(|i| start + increment * i as f64)
                    .collect::<Vec<_>>(),
            )
        }

        fn then(mut self, other: Series) -> Self {
            self.values.extend(other.values);
            self
        }

        /// Samples in `(at - range, at]`.
        fn window(&self, at: i64, range: i64) -> (Vec<i64>, Vec<f64>) {
            self.values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.map(|v| (i as i64 * self.step_ms, v)))
                .filter(|&(t, _)| t > at - range && t <= at)
                .unzip()
        }

        fn rate(&self, at: i64, range: i64, is_counter: bool, is_rate: bool) -> Option<f64> {
            let (ts, vals) = self.window(at, range);
            extrapolated_rate(&ts, &vals, at - range, at, is_counter, is_rate)
        }

        fn vals(&self, at: i64, range: i64) -> Vec<f64> {
            self.window(at, range).1
        }
    }

    fn assert_close(got: f64, want: f64) {
        let ok = (got.is_nan() && want.is_nan())
            || got == want
            || (got - want).abs() <= 1e-9 * want.abs().max(1e-300);
        assert!(ok, "got {got}, want {want}");
    }

    #[test]
    fn increase_extrapolates_towards_zero_and_boundaries() {
        let step = 5 * MIN;
        let foo = Series::linear(step, 0.0, 10.0, 10);
        let bar = Series::linear(step, 0.0, 18.0, 5).then(Series::linear(step, 0.0, 18.0, 5));
        let dings = Series::linear(step, 10.0, 10.0, 10);
        let bumms = Series::linear(step, 1.0, 10.0, 10);
        for (s, want) in [
            (&foo, 100.0),
            (&bar, 160.0),
            (&dings, 100.0),
            (&bumms, 100.0),
        ] {
            assert_close(s.rate(50 * MIN, 50 * MIN, true, false).unwrap(), want);
        }
        for (s, want) in [
            (&foo, 100.0),
            (&bar, 162.0),
            (&dings, 105.0),
            (&bumms, 101.0),
        ] {
            assert_close(s.rate(50 * MIN, 100 * MIN, true, false).unwrap(), want);
        }
        let reset = Series::new(step, &[0.0, 1.0, 2.0, 3.0, 2.0, 3.0, 4.0]);
        assert_close(reset.rate(30 * MIN, 30 * MIN, true, false).unwrap(), 7.0);
    }

    #[test]
    fn rate_handles_resets_and_short_windows() {
        let step = 5 * MIN;
        let middle = Series::linear(step, 0.0, 27.0, 4).then(Series::linear(step, 0.0, 27.0, 5));
        assert_close(middle.rate(50 * MIN, 50 * MIN, true, true).unwrap(), 0.08);
        let end = Series::linear(step, 0.0, 10.0, 9).then(Series::new(step, &[0.0, 10.0]));
        assert_eq!(end.rate(50 * MIN, 5 * MIN, true, true), None);
        assert_close(end.rate(50 * MIN, 6 * MIN, true, true).unwrap(), 0.0);

        let window = Series::linear(step, 0.0, 80.0, 10);
        assert_close(
            window.rate(50 * MIN, 50 * MIN, true, true).unwrap(),
            0.26666666666666666,
        );
        // `[10m] offset 5m` at 50m.
        let a = Series::linear(step, 0.0, 10.0, 10);
        let b = Series::linear(step, 0.0, 20.0, 10);
        assert_close(
            a.rate(45 * MIN, 10 * MIN, true, true).unwrap(),
            0.03333333333333333,
        );
        assert_close(
            b.rate(45 * MIN, 10 * MIN, true, true).unwrap(),
            0.06666666666666667,
        );
    }

    #[test]
    fn rate_zero_cutoff_on_the_left() {
        let step = 4 * MIN;
        let starts = [0.0, 60.0, 120.0, 180.0, 240.0, 300.0];
        let at_10m = [0.5, 0.55, 0.6, 0.6, 0.6, 0.6];
        for (start, want) in starts.iter().zip(at_10m) {
            let s = Series::linear(step, *start, 240.0, 10);
            assert_close(s.rate(10 * MIN, 20 * MIN, true, true).unwrap(), want);
            assert_close(s.rate(50 * MIN, 20 * MIN, true, true).unwrap(), 0.6);
        }
    }

    #[test]
    fn delta_is_not_a_counter() {
        let step = 5 * MIN;
        let up = Series::new(step, &[0.0, 50.0, 100.0, 150.0, 200.0]);
        let down = Series::new(step, &[200.0, 150.0, 100.0, 50.0, 0.0]);
        assert_close(up.rate(20 * MIN, 20 * MIN, false, false).unwrap(), 200.0);
        assert_close(down.rate(20 * MIN, 20 * MIN, false, false).unwrap(), -200.0);
    }

    #[test]
    fn rate_never_panics_on_odd_input() {
        assert_eq!(extrapolated_rate(&[], &[], 0, 1, true, true), None);
        assert_eq!(extrapolated_rate(&[5], &[1.0], 0, 10, true, true), None);
        // Same timestamp twice: no extrapolation factor, range of zero.
        let v = extrapolated_rate(&[5, 5], &[1.0, 2.0], 5, 5, true, true).unwrap();
        assert!(v.is_infinite());
        assert!(
            extrapolated_rate(&[1, 2], &[NAN, 1.0], 0, 2, true, true)
                .unwrap()
                .is_nan()
        );
        extrapolated_rate(
            &[i64::MIN, i64::MAX],
            &[1.0, 2.0],
            i64::MIN,
            i64::MAX,
            true,
            true,
        );
    }

    #[test]
    fn irate_and_idelta() {
        let step = 5 * MIN;
        let foo = Series::linear(step, 0.0, 10.0, 10);
        let bar = Series::linear(step, 0.0, 10.0, 5).then(Series::linear(step, 0.0, 10.0, 5));
        let irate = |s: &Series, at, range| {
            let (ts, vals) = s.window(at, range);
            instant_rate(&ts, &vals, true)
        };
        assert_close(
            irate(&foo, 50 * MIN, 50 * MIN).unwrap(),
            0.03333333333333333,
        );
        assert_close(
            irate(&bar, 50 * MIN, 50 * MIN).unwrap(),
            0.03333333333333333,
        );
        assert_close(irate(&bar, 30 * MIN, 50 * MIN).unwrap(), 0.0);

        let nan = Series::new(step, &[1.0, NAN, NAN, 5.0, 11.0]);
        let range = 15 * MIN + 1000;
        let got: Vec<Option<f64>> = (0..=4).map(|i| irate(&nan, i * step, range)).collect();
        assert_eq!(got[0], None);
        assert!(got[1..4].iter().all(|v| v.unwrap().is_nan()));
        assert_close(got[4].unwrap(), 0.02);

        let idelta = |s: &Series, at, range| {
            let (ts, vals) = s.window(at, range);
            instant_rate(&ts, &vals, false)
        };
        let up = Series::new(step, &[0.0, 50.0, 100.0, 150.0]);
        let reset = Series::new(step, &[0.0, 50.0, 100.0, 50.0]);
        assert_eq!(idelta(&up, 20 * MIN, 20 * MIN), Some(50.0));
        assert_eq!(idelta(&reset, 20 * MIN, 20 * MIN), Some(-50.0));
        assert_eq!(idelta(&nan, 20 * MIN, range), Some(6.0));
        assert!(idelta(&nan, 15 * MIN, range).unwrap().is_nan());
        assert_eq!(instant_rate(&[7, 7], &[1.0, 2.0], true), None);
    }

    #[test]
    fn resets_and_changes() {
        let step = 5 * MIN;
        let foo = Series::new(step, &[1.0, 2.0, 3.0, 0.0, 1.0, 0.0, 0.0, 1.0, 2.0, 0.0]);
        let bar = Series::new(step, &[1.0, 2.0, 3.0, 4.0, 5.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        let biz = Series::new(step, &[0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        let at = 50 * MIN;
        // resets
        for (range, want) in [
            (20, [1.0, 0.0, 0.0]),
            (30, [1.0, 0.0, 0.0]),
            (32, [2.0, 1.0, 0.0]),
            (50, [3.0, 1.0, 0.0]),
        ] {
            let got = [&foo, &bar, &biz].map(|s| resets(&s.vals(at, range * MIN)));
            assert_eq!(got, want, "resets[{range}m]");
        }
        // changes
        for (range, want) in [
            (6, [0.0, 0.0, 0.0]),
            (20, [2.0, 2.0, 0.0]),
            (30, [3.0, 4.0, 0.0]),
            (50, [7.0, 8.0, 1.0]),
        ] {
            let got = [&foo, &bar, &biz].map(|s| changes(&s.vals(at, range * MIN)));
            assert_eq!(got, want, "changes[{range}m]");
        }
        assert_eq!(changes(&[NAN, NAN, NAN]), 0.0);
        assert_eq!(changes(&[0.0, NAN, 0.0]), 2.0);
        assert_eq!(resets(&[]), 0.0);
        assert_eq!(changes(&[]), 0.0);
    }

    #[test]
    fn deriv_and_predict_linear() {
        let step = 5 * MIN;
        let middle = Series::linear(step, 0.0, 10.0, 4).then(Series::linear(step, 0.0, 10.0, 5));
        let total = Series::linear(step, 0.0, 80.0, 10);
        let (ts, vals) = total.window(50 * MIN, 50 * MIN);
        assert_close(deriv(&ts, &vals).unwrap(), 0.26666666666666666);
        let (ts, vals) = middle.window(50 * MIN, 100 * MIN);
        assert_close(deriv(&ts, &vals).unwrap(), 0.010606060606060607);

        let (ts, vals) = middle.window(50 * MIN, 50 * MIN);
        assert_close(predict_linear(&ts, &vals, 50 * MIN, 3600.0).unwrap(), 70.0);
        // `[55m] @ 3000` evaluated at 50m, 10m and 70m.
        let (ts, vals) = middle.window(50 * MIN, 55 * MIN);
        assert_close(
            predict_linear(&ts, &vals, 50 * MIN, 3600.0).unwrap(),
            76.81818181818181,
        );
        assert_close(
            predict_linear(&ts, &vals, 10 * MIN, 3600.0).unwrap(),
            51.36363636363637,
        );
        assert_close(
            predict_linear(&ts, &vals, 70 * MIN, 3600.0).unwrap(),
            89.54545454545455,
        );

        let mut inf = vec![-INF];
        inf.extend((0..=10).map(|i| 80.0 * i as f64));
        inf.push(INF);
        let (ts, vals) = Series::new(step, &inf).window(100 * MIN, 100 * MIN);
        assert!(deriv(&ts, &vals).unwrap().is_nan());
        assert!(
            predict_linear(&ts, &vals, 100 * MIN, 6000.0)
                .unwrap()
                .is_nan()
        );

        assert_eq!(deriv(&[1, 2], &[INF, INF]).map(f64::is_nan), Some(true));
        assert_eq!(deriv(&[1, 2], &[3.0, 3.0]), Some(0.0));
        assert_eq!(predict_linear(&[1, 2], &[3.0, 3.0], 2, 100.0), Some(3.0));
        assert_eq!(deriv(&[1], &[3.0]), None);
    }

    #[test]
    fn avg_and_sum_over_time_extremes() {
        let big = 9.988_465_674_311_58e307;
        let cases: &[(&[f64], f64)] = &[
            (&[1.0, 2.0, 3.0, 4.0, 5.0], 3.0),
            (&[1.0, 2.0, 3.0, 4.0, INF], INF),
            (&[1.0, 2.0, 3.0, 4.0, -INF], -INF),
            (&[1.0, 2.0, 3.0, INF, -INF], NAN),
            (&[INF, 0.0, INF], INF),
            (&[INF, INF, INF, -INF], NAN),
            (&[-INF, 0.0, -INF], -INF),
            (&[1.0, 2.0, -INF, -INF, INF], NAN),
            (&[big, big], big),
            (&[-big, -big, -big], -big),
            (&[-big, big], 0.0),
            (&[1.0, 2.0, 3.0, NAN], NAN),
            (&[1.0, 1e100, 1.0, -1e100], 0.5),
            (&[1e10, 1e-6, 1e-6, 1e-6, 1e-6, 1e-6], 1.6666666666666675e9),
            (
                &[
                    5.30921651659898,
                    0.961118537914768,
                    1.62091361305318,
                    0.865089463758091,
                    0.323055185914577,
                    0.951811357687154,
                ],
                1.67186744582113,
            ),
            (
                &[1.78264e50, 0.76342771, 1.9592258, 7.69805412, 458.90154],
                3.56528e49,
            ),
            (
                &[
                    1.78264e50, 0.76342771, 1.9592258, 2.258e220, 7.69805412, 458.90154,
                ],
                3.76333333333333e219,
            ),
            (
                &[
                    -1.78264e215,
                    0.76342771,
                    1.9592258,
                    2.258e220,
                    7.69805412,
                    -458.90154,
                ],
                3.76330362266667e219,
            ),
            (
                &[
                    -1.78264e215,
                    0.76342771,
                    1.9592258,
                    2.258e220,
                    7.69805412,
                    1.78264e215,
                    -458.90154,
                ],
                3.225714285714286e219,
            ),
            (
                &[
                    -1.78264e219,
                    0.76342771,
                    1.9592258,
                    2.3757689e217,
                    -2.3757689e217,
                    2.258e220,
                    7.69805412,
                    1.78264e219,
                    -458.90154,
                ],
                2.5088888888888888e219,
            ),
            (
                &[
                    -2.258e220,
                    -1.78264e219,
                    0.76342771,
                    1.9592258,
                    2.3757689e217,
                    -2.3757689e217,
                    2.258e220,
                    7.69805412,
                    1.78264e219,
                    -458.90154,
                ],
                0.0,
            ),
        ];
        for (vals, want) in cases {
            let got = avg_over_time(vals);
            let ok = (got.is_nan() && want.is_nan())
                || got == *want
                || (got - want).abs() <= 1e-6 * want.abs();
            assert!(ok, "avg_over_time({vals:?}) = {got}, want {want}");
        }
        assert_eq!(sum_over_time(&[big, big]) / 2.0, INF);
        assert_eq!(sum_over_time(&[1.0, 1e100, 1.0, -1e100]), 2.0);
        assert_eq!(sum_over_time(&[1.0; 1003]), 1003.0);
        assert!(sum_over_time(&[INF, -INF]).is_nan());
        assert_eq!(sum_over_time(&[]), 0.0);
        assert!(avg_over_time(&[]).is_nan());
        // Exact equality for a long constant series.
        for n in 10..=13 {
            assert_eq!(avg_over_time(&vec![52.0; n]), 52.0);
        }
    }

    #[test]
    fn min_max_over_time_skip_nan() {
        let cases: &[(&[f64], f64, f64)] = &[
            (&[0.0, 1.0, 2.0, 3.0], 0.0, 3.0),
            (&[NAN, 0.0, 1.0, 2.0], 0.0, 2.0),
            (&[1.0, 2.0, NAN], 1.0, 2.0),
            (&[NAN, NAN, 1.0, 0.0], 0.0, 1.0),
            (&[NAN, NAN, NAN], NAN, NAN),
            (&[5.0, 2.0, 4.0], 2.0, 5.0),
        ];
        for &(vals, min, max) in cases {
            assert_eq!(min_over_time(vals).to_bits(), min.to_bits(), "min {vals:?}");
            assert_eq!(max_over_time(vals).to_bits(), max.to_bits(), "max {vals:?}");
        }
        assert!(min_over_time(&[]).is_nan());
    }

    #[test]
    fn ts_of_min_and_max_over_time() {
        let s = Series::new(10_053, &[1.0, 2.0, 3.0, 0.0, 5.0, 6.0, 2.0, 1.0, 4.0]);
        let (ts, vals) = s.window(90_000, 90_000);
        assert_eq!(ts_of_min_over_time(&ts, &vals), 30.159);
        assert_eq!(ts_of_max_over_time(&ts, &vals), 50.265);
        // The last of equal extremes wins.
        assert_eq!(ts_of_max_over_time(&[1000, 2000], &[3.0, 3.0]), 2.0);
        assert_eq!(ts_of_min_over_time(&[1000, 2000], &[NAN, 3.0]), 2.0);
        assert!(ts_of_min_over_time(&[], &[]).is_nan());
    }

    #[test]
    fn stddev_and_stdvar_over_time() {
        let s = Series::new(10_000, &[0.0, 8.0, 8.0, 2.0, 3.0]);
        let vals = s.vals(MIN, 2 * MIN);
        assert_close(stdvar_over_time(&vals), 10.56);
        assert!((stddev_over_time(&vals) - 3.249615).abs() < 1e-6);
        let same = [1.5990505637277868; 3];
        assert_eq!(stdvar_over_time(&same), 0.0);
        assert_eq!(stddev_over_time(&same), 0.0);
        assert_eq!(stddev_over_time(&[1.0, 1.0, 1.0]), 0.0);
        assert!(stdvar_over_time(&[]).is_nan());
    }

    #[test]
    fn quantile_and_mad_over_time() {
        let two = [0.0, 1.0];
        let three = [0.0, 1.0, 2.0];
        let uneven = [0.0, 1.0, 4.0];
        for (q, want) in [
            (0.0, [0.0, 0.0, 0.0]),
            (0.5, [0.5, 1.0, 1.0]),
            (0.75, [0.75, 1.5, 2.5]),
            (0.8, [0.8, 1.6, 2.8]),
            (1.0, [1.0, 2.0, 4.0]),
        ] {
            let got = [&two[..], &three, &uneven].map(|v| quantile_over_time(q, v));
            for (g, w) in got.iter().zip(want) {
                assert_close(*g, w);
            }
        }
        assert_eq!(quantile_over_time(-1.0, &two), -INF);
        assert_eq!(quantile_over_time(2.0, &two), INF);

        assert_eq!(mad_over_time(&[4.0, 6.0, 2.0, 1.0, 999.0, 1.0, 2.0]), 1.0);
        assert_eq!(mad_over_time(&[1.0, 2.0, 3.0, 4.0, 5.0]), 1.0);
        assert_eq!(mad_over_time(&[7.0; 5]), 0.0);
        assert_eq!(mad_over_time(&[5.0]), 0.0);
        assert!(mad_over_time(&[1.0, 2.0, NAN, 4.0]).is_nan());
        assert!(mad_over_time(&[]).is_nan());
    }

    #[test]
    fn double_exponential_smoothing_follows_trends() {
        let at = 8_000_000;
        let step = 10_000;
        let smooth =
            |s: &Series, at| double_exponential_smoothing(&s.vals(at, MIN), 0.01, 0.1).unwrap();
        let up = [
            (
                Series::linear(step, 0.0, 10.0, 1000).then(Series::linear(step, 100.0, 30.0, 1000)),
                8000.0,
            ),
            (
                Series::linear(step, 0.0, 20.0, 1000).then(Series::linear(step, 200.0, 30.0, 1000)),
                16000.0,
            ),
            (
                Series::linear(step, 0.0, 30.0, 1000).then(Series::linear(step, 300.0, 80.0, 1000)),
                24000.0,
            ),
            (Series::linear(step, 0.0, 40.0, 2000), 32000.0),
        ];
        for (s, want) in &up {
            assert_close(smooth(s, at), *want);
        }
        let later = [30100.0, 30200.0, 80300.0, 80000.0];
        for ((s, _), want) in up.iter().zip(later) {
            assert_close(smooth(s, 20_010_000), want);
        }
        let down = [
            (Series::linear(step, 8000.0, -10.0, 1000), 0.0),
            (Series::linear(step, 0.0, -20.0, 1000), -16000.0),
            (
                Series::linear(step, 0.0, 30.0, 1000)
                    .then(Series::linear(step, 300.0, -80.0, 1000)),
                24000.0,
            ),
            (
                Series::linear(step, 0.0, -40.0, 1000).then(Series::linear(step, 0.0, 40.0, 1000)),
                -32000.0,
            ),
        ];
        for (s, want) in &down {
            let got = smooth(s, at);
            assert!((got - want).abs() < 1e-6, "got {got}, want {want}");
        }
        assert_eq!(double_exponential_smoothing(&[1.0], 0.5, 0.5), None);
        assert_eq!(
            double_exponential_smoothing(&[1.0, 3.0], 0.5, 0.5),
            Some(3.0)
        );
    }

    #[test]
    fn sparse_windows_select_only_present_samples() {
        let s = Series::sparse(10_000, &[None, Some(5.0), Some(2.0), None, Some(4.0), None]);
        let vals = s.vals(MIN, 2 * MIN);
        assert_eq!(min_over_time(&vals), 2.0);
        assert_eq!(max_over_time(&vals), 5.0);
    }

    #[test]
    fn range_seconds_match_duration_conversion() {
        assert_eq!(duration_seconds(3_000_000), 3000.0);
        assert_eq!(duration_seconds(901_000), 901.0);
        assert_eq!(duration_seconds(1_001), 1.0 + 1e6 / 1e9);
    }
}
