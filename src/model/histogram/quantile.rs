//! PromQL's reductions of one histogram to a float: `histogram_quantile`,
//! `histogram_fraction`, `histogram_stddev`/`_stdvar`, and the counter
//! reset hint a TSDB append gives a histogram.

use super::*;

/// The counter reset hint Prometheus' TSDB gives `current` when it is
/// appended after `previous` in the same series, if `current` has none
/// (`Unknown`): `CounterReset` when it is one, else `NotCounterReset`.
/// Other hints (gauges, hints set by the sender) stay as they are.
pub fn appended_counter_reset_hint(
    previous: &FloatHistogram,
    current: &FloatHistogram,
) -> Option<CounterResetHint> {
    if current.counter_reset_hint != CounterResetHint::Unknown {
        return None;
    }
    Some(if current.detect_reset(previous) {
        CounterResetHint::CounterReset
    } else {
        CounterResetHint::NotCounterReset
    })
}

/// `histogram_quantile` for native histograms (Go `HistogramQuantile`,
/// without annotations).
///
/// q < 0 → -Inf, q > 1 → +Inf, NaN q or zero count → NaN. Within
/// exponential buckets the result is interpolated exponentially (on a log2
/// scale); within custom buckets and the zero bucket linearly. A natural
/// lower (upper) bound of 0 is assumed for the zero bucket if there are only
/// positive (negative) buckets; custom buckets use 0 as lower bound of a
/// first bucket with positive upper bound, return the upper bound of a first
/// bucket with non-positive upper bound and the lower bound of the +Inf bucket.
/// With NaN observations (sum NaN) a rank beyond all buckets yields NaN.
pub fn histogram_quantile(q: f64, h: &FloatHistogram) -> f64 {
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    if h.count == 0.0 || q.is_nan() {
        return f64::NAN;
    }
    let forward = h.sum.is_nan() || q < 0.5;
    // Forward iteration for NaN observations or q < 0.5, otherwise reverse.
    let (mut it, mut rank) = if forward {
        (AllIter::forward(h), q * h.count)
    } else {
        (AllIter::reverse(h), (1.0 - q) * h.count)
    };
    let mut bucket = Bucket::default();
    let mut count = 0.0;
    for b in it.by_ref() {
        bucket = b;
        if b.count == 0.0 {
            continue;
        }
        count += b.count;
        if count >= rank {
            break;
        }
    }
    if !h.uses_custom_buckets() && bucket.lower < 0.0 && bucket.upper > 0.0 {
        if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
            // Zero bucket with only positive buckets: 0 is the lower bound.
            bucket.lower = 0.0;
        } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
            // Zero bucket with only negative buckets: 0 is the upper bound.
            bucket.upper = 0.0;
        }
    } else if h.uses_custom_buckets() {
        if bucket.lower == f64::NEG_INFINITY {
            // First bucket, with lower bound -Inf.
            if bucket.upper <= 0.0 {
                return bucket.upper;
            }
            bucket.lower = 0.0;
        } else if bucket.upper == f64::INFINITY {
            // Last bucket, with upper bound +Inf.
            return bucket.lower;
        }
    }
    // Numerical inaccuracies could make count exceed h.count.
    if count > h.count {
        count = h.count;
    }
    if count < rank {
        // Rank beyond all buckets: only expected with NaN observations.
        if h.sum.is_nan() {
            return f64::NAN;
        }
        return bucket.upper;
    }
    if forward {
        rank -= count - bucket.count;
    } else {
        rank = count - rank;
    }
    if h.sum.is_nan() {
        // Go drains the iterator here (to detect NaN skew for an annotation)
        // and in doing so overwrites `bucket` with the last remaining
        // bucket. Ported faithfully so results stay bit-identical.
        for b in it.by_ref() {
            bucket = b;
        }
    }
    let fraction = rank / bucket.count;
    // Linear interpolation for custom buckets and the zero bucket.
    if h.uses_custom_buckets() || (bucket.lower <= 0.0 && bucket.upper >= 0.0) {
        return bucket.lower + (bucket.upper - bucket.lower) * fraction;
    }
    // Exponential interpolation: linear on a log2 scale.
    let log_lower = bucket.lower.abs().log2();
    let log_upper = bucket.upper.abs().log2();
    if bucket.lower > 0.0 {
        return (log_lower + (log_upper - log_lower) * fraction).exp2();
    }
    // Negative bucket: mirrored.
    -(log_upper + (log_lower - log_upper) * (1.0 - fraction)).exp2()
}

/// `histogram_fraction` for native histograms (Go `HistogramFraction`,
/// without annotations): the estimated fraction of observations between
/// `lower` and `upper`, interpolating like [`histogram_quantile`]. Zero
/// count or NaN bounds → NaN; `lower >= upper` → 0. NaN observations are in
/// no bucket, so the fraction over (-Inf, +Inf) can be below 1 then.
pub fn histogram_fraction(lower: f64, upper: f64, h: &FloatHistogram) -> f64 {
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut count, mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut it = AllIter::forward(h);
    for mut b in it.by_ref() {
        count += b.count;
        let mut zero_bucket = false;
        if b.lower <= 0.0 && b.upper >= 0.0 {
            zero_bucket = true;
            if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
                b.lower = 0.0;
            } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
                b.upper = 0.0;
            }
        }
        let linear = h.uses_custom_buckets() || zero_bucket;
        // Rank at a finite `v` strictly inside the bucket.
        let interpolate = |v: f64| -> f64 {
            if linear {
                // No interpolation in a bucket reaching down to -Inf
                // (counts as fully below v), nor up to +Inf (the formula
                // yields no contribution there).
                if b.lower == f64::NEG_INFINITY {
                    return b.count;
                }
                return rank + b.count * b.fraction_below(v, true);
            }
            rank + b.count * b.fraction_below(v, false)
        };
        if !lower_set && b.lower >= lower {
            // The lower value is at the lower bucket boundary.
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && b.lower >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && b.lower < lower && b.upper > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && b.lower < upper && b.upper > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank += b.count;
    }
    if h.sum.is_nan() {
        // NaN observations are in no bucket: use the bucket total.
        for b in it {
            count += b.count;
        }
    } else {
        count = h.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / h.count
}

/// `histogram_stdvar`: estimated variance of the observations, taking each
/// bucket's observations to be at its geometric mean (exponential buckets),
/// arithmetic mean (custom buckets) or 0 (zero bucket); Kahan-summed as in Go.
pub fn histogram_stdvar(h: &FloatHistogram) -> f64 {
    let mean = h.sum / h.count;
    let (mut variance, mut c) = (0.0, 0.0);
    for b in h.all_buckets_iter() {
        if b.count == 0.0 {
            continue;
        }
        let val = if h.uses_custom_buckets() {
            (b.upper + b.lower) / 2.0
        } else if b.lower <= 0.0 && b.upper >= 0.0 {
            0.0
        } else {
            let v = (b.upper * b.lower).sqrt();
            if b.upper < 0.0 { -v } else { v }
        };
        let delta = val - mean;
        (variance, c) = kahan_sum_inc(b.count * delta * delta, variance, c);
    }
    (variance + c) / h.count
}

/// `histogram_stddev`: square root of [`histogram_stdvar`].
pub fn histogram_stddev(h: &FloatHistogram) -> f64 {
    histogram_stdvar(h).sqrt()
}
