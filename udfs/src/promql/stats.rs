//! Summation, quantile and running mean/variance with the exact float
//! behaviour of the Prometheus engine.

use std::cmp::Ordering;

/// One step of Kahan–Neumaier compensated summation: adds `inc` to `sum`
/// whose running compensation is `c`, returning the new `(sum, c)`.
///
/// The compensation is reset to 0 once the sum becomes infinite, as
/// Prometheus does; the final value is `sum + c` (unless `sum` is infinite).
pub fn kahan_sum_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Ascending order with every NaN first, the order Prometheus sorts sample
/// values in before picking quantiles.
pub(crate) fn nan_first_cmp(a: &f64, b: &f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    }
}

/// The φ-quantile of an unsorted set of values (a sorted copy is made).
///
/// Between two values the result is their weighted average. Special cases,
/// as Prometheus does: empty set → NaN, NaN `q` → NaN, `q < 0` → -Inf,
/// `q > 1` → +Inf. NaN values sort below every number.
pub fn quantile(q: f64, values: &[f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(nan_first_cmp);
    quantile_of_sorted(q, &sorted)
}

/// Interpolating quantile of values already sorted by [`nan_first_cmp`];
/// `q` must be within [0, 1] and `sorted` non-empty.
fn quantile_of_sorted(q: f64, sorted: &[f64]) -> f64 {
    let n = sorted.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    let at = |i: f64| sorted[(i as usize).min(sorted.len() - 1)];
    at(lower) * (1.0 - weight) + at(upper) * weight
}

/// Running Kahan-compensated sum, as the `sum` aggregation computes it.
#[derive(Debug, Clone, Copy)]
pub struct SumAcc {
    sum: f64,
    c: f64,
}

impl SumAcc {
    /// Starts the sum with its first value.
    pub fn new(first: f64) -> Self {
        Self { sum: first, c: 0.0 }
    }

    /// Adds one more value.
    pub fn add(&mut self, v: f64) {
        (self.sum, self.c) = kahan_sum_inc(v, self.sum, self.c);
    }

    /// The compensated sum so far.
    pub fn value(&self) -> f64 {
        self.sum + self.c
    }
}

/// Running mean as the `avg` aggregation (and `avg_over_time`) computes it:
/// a Kahan-compensated sum divided by the count at the end, switching for
/// good to an incremental, compensated mean once the sum would overflow.
#[derive(Debug, Clone, Copy)]
pub struct AvgAcc {
    sum: f64,
    c: f64,
    mean: f64,
    count: f64,
    incremental: bool,
}

impl AvgAcc {
    /// Starts the mean with its first value.
    pub fn new(first: f64) -> Self {
        Self {
            sum: first,
            c: 0.0,
            mean: first,
            count: 1.0,
            incremental: false,
        }
    }

    /// Adds one more value.
    pub fn add(&mut self, v: f64) {
        self.count += 1.0;
        if !self.incremental {
            let (sum, c) = kahan_sum_inc(v, self.sum, self.c);
            if !sum.is_infinite() {
                self.sum = sum;
                self.c = c;
                return;
            }
            // The sum would overflow: continue with the mean so far.
            self.incremental = true;
            self.mean = self.sum / (self.count - 1.0);
            self.c /= self.count - 1.0;
        }
        let q = (self.count - 1.0) / self.count;
        (self.mean, self.c) = kahan_sum_inc(v / self.count, q * self.mean, q * self.c);
    }

    /// The mean of the values added so far.
    pub fn value(&self) -> f64 {
        if self.incremental {
            self.mean + self.c
        } else {
            self.sum / self.count + self.c / self.count
        }
    }
}

/// Running population variance as the `stddev`/`stdvar` aggregations
/// compute it (Welford's update without compensation). A first value that
/// is NaN or ±Inf makes the result NaN.
#[derive(Debug, Clone, Copy)]
pub struct VarianceAcc {
    mean: f64,
    m2: f64,
    count: f64,
}

impl VarianceAcc {
    /// Starts the variance with its first value.
    pub fn new(first: f64) -> Self {
        let m2 = if first.is_finite() { 0.0 } else { f64::NAN };
        Self {
            mean: first,
            m2,
            count: 1.0,
        }
    }

    /// Adds one more value.
    pub fn add(&mut self, v: f64) {
        self.count += 1.0;
        let delta = v - self.mean;
        self.mean += delta / self.count;
        self.m2 += delta * (v - self.mean);
    }

    /// Population variance of the values added so far.
    pub fn stdvar(&self) -> f64 {
        self.m2 / self.count
    }

    /// Population standard deviation of the values added so far.
    pub fn stddev(&self) -> f64 {
        self.stdvar().sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avg(values: &[f64]) -> f64 {
        let mut acc = AvgAcc::new(values[0]);
        values[1..].iter().for_each(|&v| acc.add(v));
        acc.value()
    }

    fn sum(values: &[f64]) -> f64 {
        let mut acc = SumAcc::new(values[0]);
        values[1..].iter().for_each(|&v| acc.add(v));
        acc.value()
    }

    fn variance(values: &[f64]) -> VarianceAcc {
        let mut acc = VarianceAcc::new(values[0]);
        values[1..].iter().for_each(|&v| acc.add(v));
        acc
    }

    const BIG: f64 = 9.988_465_674_311_58e307;
    const INF: f64 = f64::INFINITY;

    #[test]
    fn kahan_keeps_small_terms_next_to_huge_ones() {
        assert_eq!(sum(&[2.0, 8.0, 1e100, -1e100]), 10.0);
        assert_eq!(avg(&[2.0, 8.0, 1e100, -1e100]), 2.5);
        let (s, c) = kahan_sum_inc(INF, 1.0, 0.5);
        assert_eq!((s, c), (INF, 0.0));
    }

    #[test]
    fn sum_and_avg_with_infinities_and_nan() {
        assert_eq!(sum(&[INF, 2.0]), INF);
        assert_eq!(avg(&[2.0, -INF]), -INF);
        assert!(sum(&[INF, -INF]).is_nan());
        assert!(avg(&[INF, -INF]).is_nan());
        assert!(avg(&[f64::NAN, 2.0]).is_nan());
        assert!(avg(&[-INF, 0.0, INF]).is_nan());
    }

    #[test]
    fn avg_switches_to_incremental_mean_on_overflow() {
        assert_eq!(avg(&[BIG; 4]), BIG);
        assert_eq!(avg(&[-BIG; 4]), -BIG);
        assert_eq!(avg(&[-BIG, -BIG, BIG, BIG]), 0.0);
        assert_eq!(avg(&[52.0; 11]), 52.0);
    }

    #[test]
    fn variance_as_the_engine_computes_it() {
        // Values of http_requests at 50m in aggregators.test.
        let v = variance(&[100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0]);
        assert_eq!(v.stdvar(), 52500.0);
        assert!((v.stddev() - 229.12878474779).abs() < 1e-9);
        assert_eq!(variance(&[13.3, 13.3, 13.3]).stddev(), 0.0);
        assert_eq!(variance(&[1.0, 2.0]).stddev(), 0.5);
        assert_eq!(variance(&[1.0, 2.0]).stdvar(), 0.25);
        assert!(variance(&[INF, 1.0]).stdvar().is_nan());
        assert!(variance(&[1.0, f64::NAN]).stdvar().is_nan());
        assert_eq!(variance(&[5.0]).stddev(), 0.0);
    }

    #[test]
    fn quantile_interpolates_and_handles_edges() {
        assert_eq!(quantile(0.5, &[1.0, 0.0]), 0.5);
        assert_eq!(quantile(0.75, &[0.0, 1.0, 2.0]), 1.5);
        // 2.8 up to float rounding, as in Prometheus.
        assert!((quantile(0.8, &[4.0, 0.0, 1.0]) - 2.8).abs() < 1e-12);
        assert_eq!(quantile(1.0, &[0.0, 1.0, 4.0]), 4.0);
        assert_eq!(quantile(-1.0, &[0.0, 1.0]), f64::NEG_INFINITY);
        assert_eq!(quantile(2.0, &[0.0, 1.0]), INF);
        assert!(quantile(f64::NAN, &[0.0, 1.0]).is_nan());
        assert!(quantile(0.5, &[]).is_nan());
        // NaN sorts first.
        assert_eq!(quantile(1.0, &[f64::NAN, 3.0, 1.0]), 3.0);
        assert!(quantile(0.0, &[3.0, f64::NAN, 1.0]).is_nan());
    }
}
