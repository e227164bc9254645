//! `histogram_quantile` and `histogram_fraction` over classic histograms:
//! one series per bucket, each giving `(upper bound le, cumulative count)`.

use std::cmp::Ordering;

/// Relative difference between neighbouring bucket counts below which it is
/// taken as float noise and silently evened out.
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

/// Bit pattern of the staleness marker, a NaN that only equals itself.
const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Full outcome of [`bucket_quantile`], including what the
/// forced-monotonicity info annotation reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketQuantile {
    pub value: f64,
    /// Some bucket count was lower than a lower bucket's and was raised.
    pub forced_monotonicity: bool,
    /// Some numerically insignificant count difference was evened out.
    pub fixed_precision: bool,
    /// Lowest upper bound whose count was raised (+Inf if none).
    pub min_forced_bucket: f64,
    /// Highest upper bound whose count was raised (-Inf if none).
    pub max_forced_bucket: f64,
    /// Largest amount a count was raised by (0 if none).
    pub max_forced_diff: f64,
}

/// `histogram_quantile` over classic buckets given as `(le, cumulative
/// count)` in any order (the slice is sorted and rewritten in place).
///
/// Returns `(value, forced_monotonicity, fixed_precision)`; see
/// [`bucket_quantile_detailed`] for the semantics.
pub fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> (f64, bool, bool) {
    let r = bucket_quantile_detailed(q, buckets);
    (r.value, r.forced_monotonicity, r.fixed_precision)
}

/// `histogram_quantile` over classic buckets, as Prometheus computes it.
///
/// * NaN `q` → NaN, `q < 0` → -Inf, `q > 1` → +Inf (buckets untouched).
/// * The highest bucket must be `+Inf`, else NaN. Buckets with the same
///   upper bound are merged (counts added); fewer than 2 left → NaN; a
///   total count of 0 → NaN.
/// * Counts are made monotonic: tiny relative differences (< 1e-12) are
///   evened out (`fixed_precision`), decreases are raised to the count
///   below (`forced_monotonicity`).
/// * The quantile is interpolated linearly inside its bucket, the lowest
///   bucket starting at 0 — unless its upper bound is <= 0, in which case
///   that upper bound is the result. A quantile in the `+Inf` bucket gives
///   the second-highest upper bound.
///
/// A NaN upper bound sorts above `+Inf`, so it makes the result NaN.
pub fn bucket_quantile_detailed(q: f64, buckets: &mut [(f64, f64)]) -> BucketQuantile {
    let mut result = BucketQuantile {
        value: f64::NAN,
        forced_monotonicity: false,
        fixed_precision: false,
        min_forced_bucket: 0.0,
        max_forced_bucket: 0.0,
        max_forced_diff: 0.0,
    };
    if q.is_nan() {
        return result;
    }
    if q < 0.0 {
        result.value = f64::NEG_INFINITY;
        return result;
    }
    if q > 1.0 {
        result.value = f64::INFINITY;
        return result;
    }
    let Some(buckets) = sorted_and_merged(buckets) else {
        return result;
    };
    let fix = ensure_monotonic(buckets, SMALL_DELTA_TOLERANCE);
    result.forced_monotonicity = fix.forced;
    result.fixed_precision = fix.fixed_precision;
    result.min_forced_bucket = fix.min_bucket;
    result.max_forced_bucket = fix.max_bucket;
    result.max_forced_diff = fix.max_diff;

    let n = buckets.len();
    if n < 2 {
        return result;
    }
    let observations = buckets[n - 1].1;
    if observations == 0.0 {
        return result;
    }
    let mut rank = q * observations;
    let b = search(n - 1, |i| buckets[i].1 >= rank);
    result.value = if b == n - 1 {
        buckets[n - 2].0
    } else if b == 0 && buckets[0].0 <= 0.0 {
        buckets[0].0
    } else {
        let (end, mut count) = buckets[b];
        let mut start = 0.0;
        if b > 0 {
            start = buckets[b - 1].0;
            count -= buckets[b - 1].1;
            rank -= buckets[b - 1].1;
        }
        start + (end - start) * (rank / count)
    };
    result
}

/// `histogram_fraction(lower, upper)` over classic buckets given as `(le,
/// cumulative count)` in any order: the estimated share of observations
/// between `lower` and `upper`, interpolating linearly inside buckets (the
/// lowest starts at 0 if its upper bound is positive, else at -Inf; nothing
/// is interpolated inside infinitely wide buckets).
///
/// NaN when the highest bucket is not `+Inf`, the total count is 0 or a
/// bound is NaN; 0 when `lower >= upper`.
pub fn bucket_fraction(lower: f64, upper: f64, buckets: &mut [(f64, f64)]) -> f64 {
    let Some(buckets) = sorted_and_merged(buckets) else {
        return f64::NAN;
    };
    let count = buckets[buckets.len() - 1].1;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }

    let mut rank = 0.0;
    let (mut lower_rank, mut upper_rank) = (None, None);
    let mut lower_bound = if buckets[0].0 <= 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    };
    for (i, &(upper_bound, bucket_count)) in buckets.iter().enumerate() {
        if i > 0 {
            lower_bound = buckets[i - 1].0;
        }
        let interpolate = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                bucket_count
            } else {
                rank + (bucket_count - rank) * (v - lower_bound) / (upper_bound - lower_bound)
            }
        };
        if lower_rank.is_none() && lower_bound >= lower {
            lower_rank = Some(rank);
        }
        if upper_rank.is_none() && lower_bound >= upper {
            upper_rank = Some(rank);
        }
        if lower_rank.is_some() && upper_rank.is_some() {
            break;
        }
        if lower_rank.is_none() && lower_bound < lower && upper_bound > lower {
            lower_rank = Some(interpolate(lower));
        }
        if upper_rank.is_none() && lower_bound < upper && upper_bound > upper {
            upper_rank = Some(interpolate(upper));
        }
        if lower_rank.is_some() && upper_rank.is_some() {
            break;
        }
        rank = bucket_count;
    }
    let clamp = |r: Option<f64>| match r {
        Some(r) if r <= count => r,
        _ => count,
    };
    (clamp(upper_rank) - clamp(lower_rank)) / count
}

/// Sorts buckets by upper bound, checks that the highest is `+Inf` and
/// merges buckets with equal upper bounds; None if the input is empty or
/// the highest bound is not `+Inf`.
fn sorted_and_merged(buckets: &mut [(f64, f64)]) -> Option<&mut [(f64, f64)]> {
    buckets.sort_by(|a, b| upper_bound_cmp(a.0, b.0));
    if buckets.last()?.0 != f64::INFINITY {
        return None;
    }
    let mut kept = 0;
    for i in 1..buckets.len() {
        if buckets[i].0 == buckets[kept].0 {
            buckets[kept].1 += buckets[i].1;
        } else {
            kept += 1;
            buckets[kept] = buckets[i];
        }
    }
    Some(&mut buckets[..=kept])
}

/// Ascending by value, NaN above everything (a total order, so sorting
/// never misbehaves).
fn upper_bound_cmp(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// The smallest `i` in `0..n` for which `pred` holds, assuming it holds for
/// every index after it; `n` if none (binary search, probing the same
/// indices Prometheus does so non-monotonic input gives the same answer).
fn search(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

struct MonotonicFix {
    forced: bool,
    fixed_precision: bool,
    min_bucket: f64,
    max_bucket: f64,
    max_diff: f64,
}

/// Evens out float-noise differences between neighbouring counts and
/// raises any count lower than the (kept) count below it.
fn ensure_monotonic(buckets: &mut [(f64, f64)], tolerance: f64) -> MonotonicFix {
    let mut fix = MonotonicFix {
        forced: false,
        fixed_precision: false,
        min_bucket: f64::INFINITY,
        max_bucket: f64::NEG_INFINITY,
        max_diff: 0.0,
    };
    let Some(&(_, mut prev)) = buckets.first() else {
        return fix;
    };
    for bucket in buckets.iter_mut().skip(1) {
        let curr = bucket.1;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, tolerance) {
            bucket.1 = prev;
            fix.fixed_precision = true;
            continue;
        }
        if curr < prev {
            bucket.1 = prev;
            fix.forced = true;
            fix.min_bucket = fix.min_bucket.min(bucket.0);
            fix.max_bucket = fix.max_bucket.max(bucket.0);
            fix.max_diff = fix.max_diff.max(prev - curr);
            continue;
        }
        prev = curr;
    }
    fix
}

/// Whether `a` and `b` differ by less than `epsilon` relative to their
/// magnitude; any two NaNs are equal, except that a staleness marker only
/// equals another one.
fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    let (a_stale, b_stale) = (a.to_bits() == STALE_NAN_BITS, b.to_bits() == STALE_NAN_BITS);
    if a_stale || b_stale {
        return a_stale && b_stale;
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < epsilon * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

#[cfg(test)]
mod tests {
    use super::*;

    const INF: f64 = f64::INFINITY;

    fn quantile(q: f64, buckets: &[(f64, f64)]) -> f64 {
        bucket_quantile(q, &mut buckets.to_vec()).0
    }

    fn assert_close(got: f64, want: f64) {
        let ok = (got.is_nan() && want.is_nan())
            || got == want
            || (got - want).abs() <= 1e-9 * want.abs();
        assert!(ok, "got {got}, want {want}");
    }

    // Bucket counts at 50m of the test histograms in histograms.test.
    const POSITIVE: &[(f64, f64)] = &[(0.1, 50.0), (0.2, 70.0), (1.0, 110.0), (INF, 120.0)];
    const NEGATIVE: &[(f64, f64)] = &[(-0.2, 10.0), (-0.1, 20.0), (0.3, 20.0), (INF, 30.0)];
    const POSITIVE3: &[(f64, f64)] = &[
        (0.0, 0.0),
        (0.1, 50.0),
        (0.2, 70.0),
        (1.0, 110.0),
        (INF, 110.0),
    ];
    const NEGATIVE3: &[(f64, f64)] = &[
        (-0.25, 0.0),
        (-0.2, 10.0),
        (-0.1, 20.0),
        (0.3, 20.0),
        (INF, 20.0),
    ];

    #[test]
    fn quantiles_of_test_histograms() {
        for (q, pos, neg) in [
            (0.0, 0.0, -0.25),
            (0.25, 0.055, -0.225),
            (0.5, 0.125, -0.2),
            (0.75, 0.45, -0.15),
            (1.0, 1.0, -0.1),
        ] {
            assert_close(quantile(q, POSITIVE3), pos);
            assert_close(quantile(q, NEGATIVE3), neg);
        }
        for (q, pos, neg) in [
            (0.0, 0.0, -0.2),
            (1.0, 1.0, 0.3),
            (0.2, 0.048, -0.2),
            (0.5, 0.15, -0.15),
            (0.8, 0.72, 0.3),
        ] {
            assert_close(quantile(q, POSITIVE), pos);
            assert_close(quantile(q, NEGATIVE), neg);
        }
        // Rates scale every count alike: same quantiles.
        let rated: Vec<(f64, f64)> = POSITIVE.iter().map(|&(le, c)| (le, c / 600.0)).collect();
        assert_close(quantile(0.8, &rated), 0.72);
        // Exactly in the middle of a bucket.
        let h2 = [(INF, 3.0), (6.0, 3.0), (4.0, 2.0), (2.0, 1.0), (0.0, 0.0)];
        assert_close(quantile(1.0 / 6.0, &h2), 1.0);
        assert_close(quantile(0.5, &h2), 3.0);
        assert_close(quantile(5.0 / 6.0, &h2), 5.0);
    }

    #[test]
    fn aggregated_buckets() {
        // sum by (le) of the four request_duration_seconds histograms.
        let all = [(0.1, 10.0), (0.2, 19.0), (INF, 25.0)];
        assert_close(quantile(0.3, &all), 0.075);
        assert_close(quantile(0.5, &all), 0.1277777777777778);
        let job2 = [(0.1, 7.0), (0.2, 11.0), (INF, 15.0)];
        assert_close(quantile(0.3, &job2), 0.0642857142857143);
        assert_close(quantile(0.5, &job2), 0.1125);
    }

    #[test]
    fn out_of_range_quantiles() {
        assert_eq!(quantile(-0.1, POSITIVE), -INF);
        assert_eq!(quantile(1.01, NEGATIVE), INF);
        assert!(quantile(f64::NAN, POSITIVE).is_nan());
        // Even without a +Inf bucket.
        assert_eq!(quantile(-0.1, &[(1.0, 1.0)]), -INF);
    }

    #[test]
    fn degenerate_bucket_sets_give_nan() {
        assert!(quantile(0.5, &[]).is_nan());
        assert!(quantile(0.5, &[(1.0, 1.0), (2.0, 2.0)]).is_nan());
        assert!(quantile(0.5, &[(INF, 5.0)]).is_nan());
        assert!(quantile(0.5, &[(1.0, 0.0), (INF, 0.0)]).is_nan());
        assert!(quantile(0.5, &[(f64::NAN, 1.0), (1.0, 1.0), (INF, 2.0)]).is_nan());
        // Two spellings of +Inf merge into one bucket.
        assert!(quantile(0.5, &[(INF, 0.0), (INF, 0.0)]).is_nan());
        // Three spellings of 0.2 merge.
        let mixed = [(0.1, 1.0), (0.2, 1.0), (0.2, 1.0), (0.2, 1.0), (INF, 4.0)];
        assert_close(quantile(0.5, &mixed), 0.15);
        // NaN counts do not panic.
        quantile(0.5, &[(1.0, f64::NAN), (INF, 2.0)]);
        quantile(0.5, &[(1.0, 2.0), (INF, f64::NAN)]);
    }

    #[test]
    fn non_monotonic_buckets_are_fixed() {
        let buckets = [
            (0.1, 20.0),
            (1.0, 10.0),
            (10.0, 50.0),
            (100.0, 40.0),
            (1000.0, 90.0),
            (INF, 80.0),
        ];
        for (q, want) in [(0.01, 0.0045), (0.5, 8.5), (0.99, 979.75)] {
            let r = bucket_quantile_detailed(q, &mut buckets.to_vec());
            assert_close(r.value, want);
            assert!(r.forced_monotonicity && !r.fixed_precision);
            assert_eq!(
                (r.min_forced_bucket, r.max_forced_bucket, r.max_forced_diff),
                (1.0, INF, 10.0)
            );
        }
        let noisy = [
            (1.0, 10.0),
            (2.0, 10.0 * (1.0 + 1e-14)),
            (3.0, 10.0),
            (INF, 20.0),
        ];
        let (v, forced, fixed) = bucket_quantile(0.5, &mut noisy.to_vec());
        assert!(!forced && fixed);
        assert_close(v, 1.0);
    }

    #[test]
    fn almost_equal_edges() {
        assert!(almost_equal(f64::NAN, f64::NAN, 1e-12));
        let stale = f64::from_bits(STALE_NAN_BITS);
        assert!(!almost_equal(stale, f64::NAN, 1e-12));
        assert!(almost_equal(stale, stale, 1e-12));
        assert!(!almost_equal(0.0, 1e-300, 1e-12));
        assert!(almost_equal(1.0, 1.0 + 1e-13, 1e-12));
    }

    #[test]
    fn fractions() {
        let h2 = [(0.0, 0.0), (2.0, 1.0), (4.0, 2.0), (6.0, 3.0), (INF, 3.0)];
        let frac = |l, u, b: &[(f64, f64)]| bucket_fraction(l, u, &mut b.to_vec());
        assert_close(frac(0.0, 4.0, &h2), 0.6666666666666666);
        assert_close(frac(0.0, 6.0, &h2), 1.0);
        assert_close(frac(0.0, 3.5, &h2), 0.5833333333333334);
        assert_close(frac(0.0, 0.2, POSITIVE3), 0.6363636363636364);
        assert_close(frac(0.0, 0.2, NEGATIVE3), 0.0);

        let pos = [(1.0, 1.0), (2.0, 3.0), (3.0, 6.0), (INF, 100.0)];
        let neg = [(-3.0, 10.0), (-2.0, 12.0), (-1.0, 15.0), (INF, 100.0)];
        assert_close(frac(0.0, 1.5, &pos), 0.02);
        assert_close(frac(-4.0, -2.0, &neg), 0.02);
        assert_close(frac(-INF, -1.5, &neg), 0.135);
        assert_close(frac(-INF, INF, &pos), 1.0);
        assert_close(frac(-INF, INF, &neg), 1.0);
        assert_close(frac(4.0, 5.0, &pos), 0.0);
        assert_close(frac(0.0, 1.0, &neg), 0.0);
        assert_close(frac(2.0, 5.0, &pos), 0.03);
        assert_close(frac(400.0, INF, &pos), 0.94);
        assert_eq!(frac(2.0, 2.0, &pos), 0.0);
        assert_eq!(frac(3.0, 2.0, &pos), 0.0);
        assert!(frac(f64::NAN, 1.0, &pos).is_nan());
        assert!(frac(0.0, f64::NAN, &pos).is_nan());
        assert!(frac(0.0, 1.0, &[(1.0, 0.0), (INF, 0.0)]).is_nan());
        assert!(frac(0.0, 1.0, &[(1.0, 1.0)]).is_nan());
        assert!(frac(0.0, 1.0, &[]).is_nan());
    }
}
