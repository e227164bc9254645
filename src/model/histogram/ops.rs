//! Arithmetic and bookkeeping of float histograms: `add`/`sub` (with
//! schema reduction, zero-threshold widening and reconciled custom bounds),
//! `mul`/`div`, `compact`, `detect_reset`, `reduce_resolution`, `validate`.

use super::*;

impl FloatHistogram {
    /// True if the schema is the custom-buckets schema (-53).
    pub fn uses_custom_buckets(&self) -> bool {
        is_custom_buckets_schema(self.schema)
    }

    /// The zero bucket `[-zero_threshold, zero_threshold]` (closed on both
    /// sides). Meaningless for custom-buckets histograms (Go panics there).
    pub fn zero_bucket(&self) -> Bucket {
        Bucket {
            lower: -self.zero_threshold,
            upper: self.zero_threshold,
            lower_inclusive: true,
            upper_inclusive: true,
            count: self.zero_count,
            index: 0,
        }
    }

    /// Bounds `(lower, upper)` of the zero bucket, or `None` for custom buckets.
    pub fn zero_bucket_bounds(&self) -> Option<(f64, f64)> {
        if self.uses_custom_buckets() {
            None
        } else {
            Some((-self.zero_threshold, self.zero_threshold))
        }
    }

    /// All positive buckets in ascending order (Go `PositiveBucketIterator`).
    pub fn positive_buckets_iter(&self) -> impl Iterator<Item = Bucket> + '_ {
        ForwardIter::new(self, true, 0.0, self.schema)
    }

    /// All negative buckets, starting next to zero and going down (Go
    /// `NegativeBucketIterator`).
    pub fn negative_buckets_iter(&self) -> impl Iterator<Item = Bucket> + '_ {
        ForwardIter::new(self, false, 0.0, self.schema)
    }

    /// Negative, zero and positive buckets in ascending order (Go
    /// `AllBucketIterator`), clamped to the zero threshold.
    pub fn all_buckets_iter(&self) -> impl Iterator<Item = Bucket> + '_ {
        AllIter::forward(self)
    }

    /// Like [`Self::all_buckets_iter`] but in descending order (Go
    /// `AllReverseBucketIterator`).
    pub fn all_buckets_rev_iter(&self) -> impl Iterator<Item = Bucket> + '_ {
        AllIter::reverse(self)
    }

    /// Scales counts, sum, zero count and buckets by `factor` (Go `Mul`).
    /// A negative factor turns the histogram into a gauge histogram.
    pub fn mul(&mut self, factor: f64) {
        self.zero_count *= factor;
        self.count *= factor;
        self.sum *= factor;
        self.positive_buckets.iter_mut().for_each(|b| *b *= factor);
        self.negative_buckets.iter_mut().for_each(|b| *b *= factor);
        if factor < 0.0 {
            self.counter_reset_hint = CounterResetHint::Gauge;
        }
    }

    /// Divides like [`Self::mul`] multiplies (Go `Div`). Dividing by 0 sets
    /// count, sum and zero count to ±Inf/NaN and removes all buckets (and,
    /// as in Go, leaves the counter reset hint alone). A negative divisor
    /// turns the histogram into a gauge histogram.
    pub fn div(&mut self, divisor: f64) {
        self.zero_count /= divisor;
        self.count /= divisor;
        self.sum /= divisor;
        if divisor == 0.0 {
            self.positive_buckets.clear();
            self.negative_buckets.clear();
            self.positive_spans.clear();
            self.negative_spans.clear();
            return;
        }
        self.positive_buckets.iter_mut().for_each(|b| *b /= divisor);
        self.negative_buckets.iter_mut().for_each(|b| *b /= divisor);
        if divisor < 0.0 {
            self.counter_reset_hint = CounterResetHint::Gauge;
        }
    }

    /// Adds `other` to `self` (Go `Add`): the result has the lower of both
    /// schemas and a zero threshold wide enough for both zero buckets;
    /// buckets missing in `self` are inserted. Custom-buckets histograms with
    /// different bounds are added on the intersection of both bound sets (as
    /// Prometheus 3 does). Mixing exponential and custom buckets is an error,
    /// as are inconsistent spans/buckets (which Go would panic on). The
    /// result may contain empty buckets; call [`Self::compact`] to tidy up.
    pub fn add(&mut self, other: &FloatHistogram) -> Result<(), HistogramError> {
        self.add_ext(other).map(|_| ())
    }

    /// Like [`Self::add`] but subtracts. As in Go, the counter reset hint is
    /// combined like for `add`; PromQL's `-` operator sets it to gauge afterwards.
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<(), HistogramError> {
        self.sub_ext(other).map(|_| ())
    }

    /// [`Self::add`] that also reports counter-reset collisions and custom
    /// bound reconciliation.
    pub fn add_ext(&mut self, other: &FloatHistogram) -> Result<AddOutcome, HistogramError> {
        self.add_or_sub(other, false)
    }

    /// [`Self::sub`] that also reports counter-reset collisions and custom
    /// bound reconciliation.
    pub fn sub_ext(&mut self, other: &FloatHistogram) -> Result<AddOutcome, HistogramError> {
        self.add_or_sub(other, true)
    }

    pub(super) fn add_or_sub(
        &mut self,
        other: &FloatHistogram,
        negative: bool,
    ) -> Result<AddOutcome, HistogramError> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(HistogramError::IncompatibleSchema);
        }
        // Go trusts its inputs here and panics on inconsistent ones; we
        // refuse them up front so that the span arithmetic below is safe.
        for h in [&*self, other] {
            check_histogram_spans(&h.positive_spans, h.positive_buckets.len(), "positive")?;
            check_histogram_spans(&h.negative_spans, h.negative_buckets.len(), "negative")?;
        }
        let mut outcome = AddOutcome {
            counter_reset_collision: self.adjust_counter_reset(other),
            nhcb_bounds_reconciled: false,
        };
        let sign = if negative { -1.0 } else { 1.0 };
        if !self.uses_custom_buckets() {
            let other_zero_count = self.reconcile_zero_buckets(other);
            self.zero_count += sign * other_zero_count;
        }
        self.count += sign * other.count;
        self.sum += sign * other.sum;

        if self.uses_custom_buckets() {
            let spans = std::mem::take(&mut self.positive_spans);
            let buckets = std::mem::take(&mut self.positive_buckets);
            if custom_bucket_bounds_match(&self.custom_values, &other.custom_values) {
                let (s, b) = add_buckets(
                    self.schema,
                    self.zero_threshold,
                    negative,
                    spans,
                    buckets,
                    &other.positive_spans,
                    &other.positive_buckets,
                );
                self.positive_spans = s;
                self.positive_buckets = b;
            } else {
                outcome.nhcb_bounds_reconciled = true;
                let intersected =
                    intersect_custom_bucket_bounds(&self.custom_values, &other.custom_values);
                let (s, b) = add_custom_buckets_with_mismatches(
                    negative,
                    &spans,
                    &buckets,
                    &self.custom_values,
                    &other.positive_spans,
                    &other.positive_buckets,
                    &other.custom_values,
                    &intersected,
                );
                self.positive_spans = s;
                self.positive_buckets = b;
                self.custom_values = intersected;
            }
            return Ok(outcome);
        }

        let mut h_pos_spans = std::mem::take(&mut self.positive_spans);
        let mut h_pos_buckets = std::mem::take(&mut self.positive_buckets);
        let mut h_neg_spans = std::mem::take(&mut self.negative_spans);
        let mut h_neg_buckets = std::mem::take(&mut self.negative_buckets);
        let reduced_other;
        let (o_pos_spans, o_pos_buckets, o_neg_spans, o_neg_buckets): (
            &[Span],
            &[f64],
            &[Span],
            &[f64],
        );
        if other.schema < self.schema {
            // Cannot fail: spans were checked above.
            let (s, b) = reduce_resolution_spans(
                &h_pos_spans,
                &h_pos_buckets,
                self.schema,
                other.schema,
                "positive",
            )?;
            h_pos_spans = s;
            h_pos_buckets = b;
            let (s, b) = reduce_resolution_spans(
                &h_neg_spans,
                &h_neg_buckets,
                self.schema,
                other.schema,
                "negative",
            )?;
            h_neg_spans = s;
            h_neg_buckets = b;
            self.schema = other.schema;
            (o_pos_spans, o_pos_buckets, o_neg_spans, o_neg_buckets) = (
                &other.positive_spans,
                &other.positive_buckets,
                &other.negative_spans,
                &other.negative_buckets,
            );
        } else if other.schema > self.schema {
            let p = reduce_resolution_spans(
                &other.positive_spans,
                &other.positive_buckets,
                other.schema,
                self.schema,
                "positive",
            )?;
            let n = reduce_resolution_spans(
                &other.negative_spans,
                &other.negative_buckets,
                other.schema,
                self.schema,
                "negative",
            )?;
            reduced_other = (p, n);
            (o_pos_spans, o_pos_buckets, o_neg_spans, o_neg_buckets) = (
                &reduced_other.0.0,
                &reduced_other.0.1,
                &reduced_other.1.0,
                &reduced_other.1.1,
            );
        } else {
            (o_pos_spans, o_pos_buckets, o_neg_spans, o_neg_buckets) = (
                &other.positive_spans,
                &other.positive_buckets,
                &other.negative_spans,
                &other.negative_buckets,
            );
        }
        let (s, b) = add_buckets(
            self.schema,
            self.zero_threshold,
            negative,
            h_pos_spans,
            h_pos_buckets,
            o_pos_spans,
            o_pos_buckets,
        );
        self.positive_spans = s;
        self.positive_buckets = b;
        let (s, b) = add_buckets(
            self.schema,
            self.zero_threshold,
            negative,
            h_neg_spans,
            h_neg_buckets,
            o_neg_spans,
            o_neg_buckets,
        );
        self.negative_spans = s;
        self.negative_buckets = b;
        Ok(outcome)
    }

    /// Go `adjustCounterReset`; returns true on a CounterReset/NotCounterReset collision.
    pub(super) fn adjust_counter_reset(&mut self, other: &FloatHistogram) -> bool {
        use CounterResetHint::*;
        let (mine, theirs) = (self.counter_reset_hint, other.counter_reset_hint);
        if theirs == mine || mine == Gauge {
            // Same kind, or adding something to a gauge: keep.
        } else if theirs == Gauge {
            self.counter_reset_hint = Gauge;
        } else if mine == Unknown {
            // Stays unknown.
        } else if theirs == Unknown {
            self.counter_reset_hint = Unknown;
        } else {
            // CounterReset vs. NotCounterReset.
            self.counter_reset_hint = Unknown;
            return true;
        }
        false
    }

    /// The zero count this histogram would have with the given larger (or
    /// equal) zero threshold, and the threshold actually needed: if the
    /// requested one falls inside a populated bucket, it is widened to that
    /// bucket's bound (Go `zeroCountForLargerThreshold`). A smaller threshold
    /// (a Go panic) returns the current zero count and threshold.
    pub(super) fn zero_count_for_larger_threshold(&self, larger_threshold: f64) -> (f64, f64) {
        let mut larger = larger_threshold;
        if larger <= self.zero_threshold {
            return (self.zero_count, self.zero_threshold.max(larger));
        }
        'outer: loop {
            let mut zero_count = self.zero_count;
            for b in ForwardIter::new(self, true, 0.0, self.schema) {
                if b.lower >= larger {
                    break;
                }
                zero_count += b.count; // Bucket merged into the zero bucket.
                if b.upper > larger {
                    // New threshold inside this bucket: widen if populated.
                    if b.count != 0.0 {
                        larger = b.upper;
                    }
                    break;
                }
            }
            for b in ForwardIter::new(self, false, 0.0, self.schema) {
                if b.upper <= -larger {
                    break;
                }
                zero_count += b.count;
                if b.lower < -larger {
                    if b.count != 0.0 {
                        // Widen and redo: the positive side is invalid now.
                        larger = -b.lower;
                        continue 'outer;
                    }
                    break;
                }
            }
            return (zero_count, larger);
        }
    }

    /// Zeroes all buckets inside the zero bucket and compacts (Go
    /// `trimBucketsInZeroBucket`). Their counts must already be in the zero count.
    pub(super) fn trim_buckets_in_zero_bucket(&mut self) {
        let zt = self.zero_threshold;
        let n_pos = ForwardIter::new(self, true, 0.0, self.schema)
            .take_while(|b| b.lower < zt)
            .count();
        let n_neg = ForwardIter::new(self, false, 0.0, self.schema)
            .take_while(|b| b.upper > -zt)
            .count();
        self.positive_buckets
            .iter_mut()
            .take(n_pos)
            .for_each(|b| *b = 0.0);
        self.negative_buckets
            .iter_mut()
            .take(n_neg)
            .for_each(|b| *b = 0.0);
        self.compact(0);
    }

    /// Widens the zero buckets of `self` and (virtually) `other` until they
    /// match; returns the zero count `other` would have (Go `reconcileZeroBuckets`).
    pub(super) fn reconcile_zero_buckets(&mut self, other: &FloatHistogram) -> f64 {
        let mut other_zero_count = other.zero_count;
        let mut other_threshold = other.zero_threshold;
        // Thresholds only grow, so this converges; the guard protects against NaN.
        let mut rounds = 0;
        while other_threshold != self.zero_threshold && rounds < 10_000 {
            rounds += 1;
            let mut progressed = false;
            if self.zero_threshold > other_threshold {
                (other_zero_count, other_threshold) =
                    other.zero_count_for_larger_threshold(self.zero_threshold);
                progressed = true;
            }
            if other_threshold > self.zero_threshold {
                (self.zero_count, self.zero_threshold) =
                    self.zero_count_for_larger_threshold(other_threshold);
                self.trim_buckets_in_zero_bucket();
                progressed = true;
            }
            if !progressed {
                break; // NaN thresholds.
            }
        }
        other_zero_count
    }

    /// Removes empty buckets at span edges, merges spans at most
    /// `max_empty_buckets` apart and splits spans with longer runs of empty
    /// buckets (Go `Compact`).
    pub fn compact(&mut self, max_empty_buckets: usize) {
        compact_buckets(
            &mut self.positive_buckets,
            &mut self.positive_spans,
            max_empty_buckets,
        );
        compact_buckets(
            &mut self.negative_buckets,
            &mut self.negative_spans,
            max_empty_buckets,
        );
    }

    /// True if `self` cannot be the successor of `previous` without a counter
    /// reset (Go `DetectReset`): a hint of CounterReset/NotCounterReset
    /// short-cuts; otherwise any decrease in count, zero count or any bucket
    /// (after reconciling schema and zero threshold, or custom bounds) is a reset.
    pub fn detect_reset(&self, previous: &FloatHistogram) -> bool {
        match self.counter_reset_hint {
            CounterResetHint::CounterReset => return true,
            CounterResetHint::NotCounterReset => return false,
            // Unknown and Gauge (gauges are treated as counters here, as in Go).
            _ => {}
        }
        if self.count < previous.count {
            return true;
        }
        if self.uses_custom_buckets() {
            if !previous.uses_custom_buckets() {
                return true;
            }
            if !custom_bucket_bounds_match(&self.custom_values, &previous.custom_values) {
                return self.detect_reset_with_mismatched_custom_bounds(previous);
            }
        }
        if self.schema > previous.schema {
            return true;
        }
        if previous.uses_custom_buckets() && !self.uses_custom_buckets() {
            // Unreachable in Go (exponential schemas are all > -53); kept for safety.
            return true;
        }
        if self.zero_threshold < previous.zero_threshold {
            return true;
        }
        let (previous_zero_count, new_threshold) =
            previous.zero_count_for_larger_threshold(self.zero_threshold);
        if new_threshold != self.zero_threshold {
            // The threshold is inside a populated bucket of previous.
            return true;
        }
        if self.zero_count < previous_zero_count {
            return true;
        }
        for positive in [true, false] {
            let curr = ForwardIter::new(self, positive, self.zero_threshold, self.schema);
            let prev = ForwardIter::new(previous, positive, self.zero_threshold, self.schema);
            if detect_reset_buckets(curr, prev) {
                return true;
            }
        }
        false
    }

    /// Go `detectResetWithMismatchedCustomBounds`: compares cumulative counts
    /// at the bounds both histograms share.
    pub(super) fn detect_reset_with_mismatched_custom_bounds(
        &self,
        previous: &FloatHistogram,
    ) -> bool {
        if !self.uses_custom_buckets() || !previous.uses_custom_buckets() {
            return false;
        }
        let (curr_bounds, prev_bounds) = (&self.custom_values, &previous.custom_values);
        let mut curr_it = ForwardIter::new(self, true, 0.0, self.schema);
        let mut prev_it = ForwardIter::new(previous, true, 0.0, previous.schema);

        // Sums the buckets with upper bound ≤ bound; returns the sum, the
        // first bucket beyond the bound and whether there is one.
        fn rollup(
            it: &mut ForwardIter<'_>,
            started: bool,
            bucket: Bucket,
            bound: f64,
        ) -> (f64, Bucket, bool) {
            let mut bucket = bucket;
            if !started {
                match it.next() {
                    Some(b) => bucket = b,
                    None => return (0.0, Bucket::default(), false),
                }
            }
            let mut sum = 0.0;
            while bucket.upper <= bound {
                sum += bucket.count;
                match it.next() {
                    Some(b) => bucket = b,
                    None => return (sum, Bucket::default(), false),
                }
            }
            (sum, bucket, true)
        }

        let (mut ci, mut pi) = (0usize, 0usize);
        let (mut curr_bucket, mut prev_bucket) = (Bucket::default(), Bucket::default());
        let (mut curr_started, mut curr_more, mut prev_started, mut prev_more) =
            (false, false, false, false);
        while ci <= curr_bounds.len() && pi <= prev_bounds.len() {
            let cb = curr_bounds.get(ci).copied().unwrap_or(f64::INFINITY);
            let pb = prev_bounds.get(pi).copied().unwrap_or(f64::INFINITY);
            if cb == pb {
                let mut curr_sum = 0.0;
                if !curr_started || curr_more {
                    (curr_sum, curr_bucket, curr_more) =
                        rollup(&mut curr_it, curr_started, curr_bucket, cb);
                    curr_started = true;
                }
                let mut prev_sum = 0.0;
                if !prev_started || prev_more {
                    (prev_sum, prev_bucket, prev_more) =
                        rollup(&mut prev_it, prev_started, prev_bucket, cb);
                    prev_started = true;
                }
                if curr_sum < prev_sum {
                    return true;
                }
                ci += 1;
                pi += 1;
            } else if cb < pb {
                ci += 1;
            } else {
                // Also taken for NaN bounds, which guarantees progress.
                pi += 1;
            }
        }
        false
    }

    /// Reduces the resolution to `target_schema` (Go `ReduceResolution`).
    /// Does nothing if that is not possible (custom buckets, target not
    /// lower than the current schema, inconsistent spans); see
    /// [`Self::try_reduce_resolution`] for the error.
    pub fn reduce_resolution(&mut self, target_schema: i32) {
        let _ = self.try_reduce_resolution(target_schema);
    }

    /// [`Self::reduce_resolution`] reporting why it could not be done.
    pub fn try_reduce_resolution(&mut self, target_schema: i32) -> Result<(), HistogramError> {
        if self.uses_custom_buckets() {
            return Err(HistogramError::ReduceResolution(
                "cannot reduce resolution when there are custom buckets".into(),
            ));
        }
        if is_custom_buckets_schema(target_schema) {
            return Err(HistogramError::ReduceResolution(
                "cannot reduce resolution to custom buckets schema".into(),
            ));
        }
        if target_schema >= self.schema {
            return Err(HistogramError::ReduceResolution(format!(
                "cannot reduce resolution from schema {} to {}",
                self.schema, target_schema
            )));
        }
        let (ps, pb) = reduce_resolution_spans(
            &self.positive_spans,
            &self.positive_buckets,
            self.schema,
            target_schema,
            "positive",
        )?;
        let (ns, nb) = reduce_resolution_spans(
            &self.negative_spans,
            &self.negative_buckets,
            self.schema,
            target_schema,
            "negative",
        )?;
        self.positive_spans = ps;
        self.positive_buckets = pb;
        self.negative_spans = ns;
        self.negative_buckets = nb;
        self.schema = target_schema;
        Ok(())
    }

    /// Consistency checks of Go `Validate`: spans vs. buckets, negative
    /// counts, custom bounds, and fields not allowed for the schema.
    pub fn validate(&self) -> Result<(), HistogramError> {
        if self.uses_custom_buckets() {
            check_custom_bounds(
                &self.custom_values,
                &self.positive_spans,
                self.positive_buckets.len(),
            )?;
            if self.zero_count != 0.0 {
                return Err(HistogramError::CustomBucketsZeroCount);
            }
            if self.zero_threshold != 0.0 {
                return Err(HistogramError::CustomBucketsZeroThreshold);
            }
            if !self.negative_spans.is_empty() {
                return Err(HistogramError::CustomBucketsNegativeSpans);
            }
            if !self.negative_buckets.is_empty() {
                return Err(HistogramError::CustomBucketsNegativeBuckets);
            }
        } else if is_exponential_schema(self.schema) {
            check_histogram_spans(
                &self.positive_spans,
                self.positive_buckets.len(),
                "positive",
            )?;
            check_histogram_spans(
                &self.negative_spans,
                self.negative_buckets.len(),
                "negative",
            )?;
            check_buckets(&self.negative_buckets, "negative")?;
            if self.zero_count < 0.0 {
                return Err(HistogramError::NegativeBucketCount {
                    side: "zero",
                    bucket_number: 0,
                    count: self.zero_count,
                });
            }
            if !self.custom_values.is_empty() {
                return Err(HistogramError::ExponentialSchemaCustomBounds);
            }
        } else {
            return Err(HistogramError::InvalidSchema(self.schema));
        }
        if self.count < 0.0 {
            return Err(HistogramError::NegativeCount(self.count));
        }
        check_buckets(&self.positive_buckets, "positive")
    }
}

/// Go `detectReset` over two bucket iterators of the same schema.
fn detect_reset_buckets(mut curr_it: ForwardIter<'_>, mut prev_it: ForwardIter<'_>) -> bool {
    // Stripped buckets: (count, index) without computing bounds.
    fn next_stripped(it: &mut ForwardIter<'_>) -> Option<(f64, i64)> {
        if it.advance() {
            Some((it.curr_count, it.curr_idx))
        } else {
            None
        }
    }
    fn any_populated(first: (f64, i64), it: &mut ForwardIter<'_>) -> bool {
        let mut b = first;
        loop {
            if b.0 != 0.0 {
                return true;
            }
            match next_stripped(it) {
                Some(n) => b = n,
                None => return false,
            }
        }
    }
    let Some(mut prev) = next_stripped(&mut prev_it) else {
        return false; // Nothing in previous, nothing can be reset.
    };
    let Some(mut curr) = next_stripped(&mut curr_it) else {
        return any_populated(prev, &mut prev_it);
    };
    loop {
        // Forward curr until it reaches prev's index.
        while curr.1 < prev.1 {
            match next_stripped(&mut curr_it) {
                Some(c) => curr = c,
                None => return any_populated(prev, &mut prev_it),
            }
        }
        if curr.1 > prev.1 {
            // Previous has a bucket the current one lacks.
            if prev.0 != 0.0 {
                return true;
            }
        } else if curr.0 < prev.0 {
            return true;
        }
        match next_stripped(&mut prev_it) {
            Some(p) => prev = p,
            None => return false,
        }
    }
}

/// Go `checkHistogramSpans`.
fn check_histogram_spans(
    spans: &[Span],
    num_buckets: usize,
    side: &'static str,
) -> Result<(), HistogramError> {
    let mut span_buckets: u64 = 0;
    for (n, span) in spans.iter().enumerate() {
        if n > 0 && span.offset < 0 {
            return Err(HistogramError::SpanNegativeOffset {
                side,
                span_number: n + 1,
                offset: span.offset,
            });
        }
        span_buckets += span.length as u64;
    }
    if span_buckets != num_buckets as u64 {
        return Err(HistogramError::SpansBucketsMismatch {
            side,
            spans_need: span_buckets,
            have: num_buckets,
        });
    }
    Ok(())
}

/// Go `checkHistogramBuckets` for absolute counts.
fn check_buckets(buckets: &[f64], side: &'static str) -> Result<(), HistogramError> {
    match buckets.iter().position(|&c| c < 0.0) {
        Some(i) => Err(HistogramError::NegativeBucketCount {
            side,
            bucket_number: i + 1,
            count: buckets[i],
        }),
        None => Ok(()),
    }
}

/// Go `checkHistogramCustomBounds`.
fn check_custom_bounds(
    bounds: &[f64],
    spans: &[Span],
    num_buckets: usize,
) -> Result<(), HistogramError> {
    let mut prev = f64::NEG_INFINITY;
    for (i, &curr) in bounds.iter().enumerate() {
        if curr.is_nan() {
            return Err(HistogramError::CustomBucketsNaN);
        }
        if i > 0 && curr <= prev {
            return Err(HistogramError::CustomBucketsNotIncreasing { prev, curr });
        }
        prev = curr;
    }
    if prev == f64::INFINITY {
        return Err(HistogramError::CustomBucketsInfinite);
    }
    let mut span_buckets: u64 = 0;
    let mut total_span_length: i64 = 0;
    for (n, span) in spans.iter().enumerate() {
        if span.offset < 0 {
            return Err(HistogramError::SpanNegativeOffset {
                side: "positive",
                span_number: n + 1,
                offset: span.offset,
            });
        }
        span_buckets += span.length as u64;
        total_span_length += span.length as i64 + span.offset as i64;
    }
    if span_buckets != num_buckets as u64 {
        return Err(HistogramError::SpansBucketsMismatch {
            side: "positive",
            spans_need: span_buckets,
            have: num_buckets,
        });
    }
    if (bounds.len() as i64 + 1) < total_span_length {
        return Err(HistogramError::CustomBucketsTooFew {
            bounds: bounds.len(),
            span_length: total_span_length as u64,
        });
    }
    Ok(())
}
