//! Buckets and their iterators: a histogram's spans and counts → the
//! buckets in ascending (or descending) order of bounds, optionally at a
//! coarser target schema, positive, negative or all with the zero bucket.

use super::*;

/// One bucket with its bounds (Go `histogram.Bucket[float64]`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Bucket {
    pub lower: f64,
    pub upper: f64,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
    pub count: f64,
    /// Index within the schema (irrelevant for the zero bucket).
    pub index: i32,
}

impl Bucket {
    /// Go `Bucket.String()`: `(lower,upper]:count` with `[`/`]` for inclusive bounds.
    pub fn to_prom_string(&self) -> String {
        format!(
            "{}{},{}{}:{}",
            if self.lower_inclusive { '[' } else { '(' },
            format_go_float(self.lower),
            format_go_float(self.upper),
            if self.upper_inclusive { ']' } else { ')' },
            format_go_float(self.count)
        )
    }

    /// Fraction of this bucket's width at or below `v` (Go `FractionBelow`),
    /// linear or on a logarithmic scale. `v` must be strictly inside finite bounds.
    pub fn fraction_below(&self, v: f64, linear: bool) -> f64 {
        if linear {
            return (v - self.lower) / (self.upper - self.lower);
        }
        let log_lower = self.lower.abs().log2();
        let log_upper = self.upper.abs().log2();
        let log_v = v.abs().log2();
        if v > 0.0 {
            return (log_v - log_lower) / (log_upper - log_lower);
        }
        1.0 - ((log_v - log_upper) / (log_lower - log_upper))
    }
}

/// Builds the bucket at `idx` (Go `baseBucketIterator.at`).
pub(super) fn bucket_at(
    idx: i64,
    count: f64,
    schema: i32,
    positive: bool,
    custom_values: &[f64],
) -> Bucket {
    let (lower, upper) = if positive {
        (
            get_bound(idx - 1, schema, custom_values),
            get_bound(idx, schema, custom_values),
        )
    } else {
        (
            -get_bound(idx, schema, custom_values),
            -get_bound(idx - 1, schema, custom_values),
        )
    };
    let (lower_inclusive, upper_inclusive) = if is_custom_buckets_schema(schema) {
        (idx == 0, true)
    } else {
        (lower < 0.0, upper > 0.0)
    };
    Bucket {
        lower,
        upper,
        lower_inclusive,
        upper_inclusive,
        count,
        index: idx as i32,
    }
}

/// Forward iterator over one side's buckets, optionally merging them into a
/// lower `target_schema` and skipping buckets whose absolute upper bound is
/// ≤ `absolute_start_value` (Go `floatBucketIterator`). Bucket indices are
/// kept as i64 so that malformed offsets cannot overflow.
#[derive(Clone)]
pub(super) struct ForwardIter<'a> {
    pub(super) schema: i32,
    pub(super) target_schema: i32,
    pub(super) spans: &'a [Span],
    pub(super) buckets: &'a [f64],
    pub(super) positive: bool,
    pub(super) custom_values: &'a [f64],
    pub(super) spans_idx: usize,
    pub(super) idx_in_span: u32,
    pub(super) buckets_idx: usize,
    pub(super) curr_count: f64,
    pub(super) curr_idx: i64,
    pub(super) orig_idx: i64,
    pub(super) absolute_start_value: f64,
    pub(super) bound_reached_start_value: bool,
}

impl<'a> ForwardIter<'a> {
    /// Go `FloatHistogram.floatBucketIterator`. A target schema above the
    /// histogram's schema (a Go panic) is clamped to the histogram's schema.
    pub(super) fn new(
        h: &'a FloatHistogram,
        positive: bool,
        absolute_start_value: f64,
        target_schema: i32,
    ) -> Self {
        let target_schema = if h.uses_custom_buckets() || is_custom_buckets_schema(target_schema) {
            h.schema
        } else {
            target_schema.min(h.schema)
        };
        let (spans, buckets, custom_values): (&[Span], &[f64], &[f64]) = if positive {
            (&h.positive_spans, &h.positive_buckets, &h.custom_values)
        } else {
            (&h.negative_spans, &h.negative_buckets, &[])
        };
        ForwardIter {
            schema: h.schema,
            target_schema,
            spans,
            buckets,
            positive,
            custom_values,
            spans_idx: 0,
            idx_in_span: 0,
            buckets_idx: 0,
            curr_count: 0.0,
            curr_idx: 0,
            orig_idx: 0,
            absolute_start_value,
            bound_reached_start_value: absolute_start_value == 0.0,
        }
    }

    /// Go `floatBucketIterator.Next`.
    pub(super) fn advance(&mut self) -> bool {
        loop {
            if !self.advance_once() {
                return false;
            }
            // Skip buckets before absolute_start_value for exponential schemas.
            if !self.bound_reached_start_value
                && is_exponential_schema(self.target_schema)
                && get_bound_exponential(self.curr_idx, self.target_schema)
                    <= self.absolute_start_value
            {
                continue;
            }
            self.bound_reached_start_value = true;
            return true;
        }
    }

    pub(super) fn advance_once(&mut self) -> bool {
        let Some(&first_span) = self.spans.get(self.spans_idx) else {
            return false;
        };
        let mut span = first_span;
        if self.schema == self.target_schema {
            // Fast path for the common case.
            if self.buckets_idx == 0 {
                self.curr_idx = span.offset as i64;
            } else {
                self.curr_idx += 1;
            }
            if self.buckets_idx >= self.buckets.len() {
                return false;
            }
            while self.idx_in_span >= span.length {
                // Current span exhausted (also handles spans of length 0).
                self.idx_in_span = 0;
                self.spans_idx += 1;
                let Some(&s) = self.spans.get(self.spans_idx) else {
                    return false;
                };
                span = s;
                self.curr_idx += span.offset as i64;
            }
            self.curr_count = self.buckets[self.buckets_idx];
            self.idx_in_span += 1;
            self.buckets_idx += 1;
            return true;
        }
        // Merge all original buckets that fall into one target bucket. Work
        // on local copies so we can look ahead and roll back.
        let (mut orig_idx, mut spans_idx, mut idx_in_span) =
            (self.orig_idx, self.spans_idx, self.idx_in_span);
        let mut first_pass = true;
        self.curr_count = 0.0;
        'merge: loop {
            if self.buckets_idx == 0 {
                orig_idx = span.offset as i64;
            } else {
                orig_idx += 1;
            }
            if self.buckets_idx >= self.buckets.len() {
                if first_pass {
                    return false;
                }
                break 'merge;
            }
            while idx_in_span >= span.length {
                idx_in_span = 0;
                spans_idx += 1;
                let Some(&s) = self.spans.get(spans_idx) else {
                    if first_pass {
                        return false;
                    }
                    break 'merge;
                };
                span = s;
                orig_idx += span.offset as i64;
            }
            let curr = target_idx(orig_idx, self.schema, self.target_schema);
            if first_pass {
                self.curr_idx = curr;
                first_pass = false;
            } else if curr != self.curr_idx {
                // Reached the next target bucket: don't consume it.
                break 'merge;
            }
            self.curr_count += self.buckets[self.buckets_idx];
            idx_in_span += 1;
            self.buckets_idx += 1;
            self.orig_idx = orig_idx;
            self.spans_idx = spans_idx;
            self.idx_in_span = idx_in_span;
        }
        true
    }

    pub(super) fn at(&self) -> Bucket {
        bucket_at(
            self.curr_idx,
            self.curr_count,
            self.target_schema,
            self.positive,
            self.custom_values,
        )
    }
}

impl Iterator for ForwardIter<'_> {
    type Item = Bucket;
    fn next(&mut self) -> Option<Bucket> {
        if self.advance() {
            Some(self.at())
        } else {
            None
        }
    }
}

/// Iterator over one side's buckets from the highest index down (Go
/// `reverseFloatBucketIterator`).
#[derive(Clone)]
pub(super) struct ReverseIter<'a> {
    pub(super) schema: i32,
    pub(super) spans: &'a [Span],
    pub(super) buckets: &'a [f64],
    pub(super) positive: bool,
    pub(super) custom_values: &'a [f64],
    pub(super) spans_idx: isize,
    pub(super) buckets_idx: isize,
    pub(super) idx_in_span: i64,
    pub(super) curr_idx: i64,
    pub(super) curr_count: f64,
}

impl<'a> ReverseIter<'a> {
    pub(super) fn new(
        spans: &'a [Span],
        buckets: &'a [f64],
        schema: i32,
        positive: bool,
        custom_values: &'a [f64],
    ) -> Self {
        let spans_idx = spans.len() as isize - 1;
        let idx_in_span = spans.last().map_or(0, |s| s.length as i64 - 1);
        let curr_idx = spans
            .iter()
            .map(|s| s.offset as i64 + s.length as i64)
            .sum();
        ReverseIter {
            schema,
            spans,
            buckets,
            positive,
            custom_values,
            spans_idx,
            buckets_idx: buckets.len() as isize - 1,
            idx_in_span,
            curr_idx,
            curr_count: 0.0,
        }
    }
}

impl Iterator for ReverseIter<'_> {
    type Item = Bucket;
    fn next(&mut self) -> Option<Bucket> {
        self.curr_idx -= 1;
        if self.buckets_idx < 0 {
            return None;
        }
        while self.idx_in_span < 0 {
            // Current span exhausted (also handles spans of length 0).
            self.spans_idx -= 1;
            if self.spans_idx < 0 {
                return None;
            }
            let s = self.spans.get(self.spans_idx as usize)?;
            self.idx_in_span = s.length as i64 - 1;
            let next = self.spans.get(self.spans_idx as usize + 1)?;
            self.curr_idx -= next.offset as i64;
        }
        self.curr_count = *self.buckets.get(self.buckets_idx as usize)?;
        self.buckets_idx -= 1;
        self.idx_in_span -= 1;
        Some(bucket_at(
            self.curr_idx,
            self.curr_count,
            self.schema,
            self.positive,
            self.custom_values,
        ))
    }
}

/// Iterator over all buckets (one side, the zero bucket, the other side),
/// clamping buckets that overlap the zero bucket to the zero threshold (Go
/// `allFloatBucketIterator`). Ascending when created by [`AllIter::forward`],
/// descending when created by [`AllIter::reverse`].
pub(super) struct AllIter<'a> {
    pub(super) h: &'a FloatHistogram,
    pub(super) left: ReverseIter<'a>,
    pub(super) right: ForwardIter<'a>,
    pub(super) state: i8,
}

impl<'a> AllIter<'a> {
    /// Go `AllBucketIterator`: ascending order.
    pub(super) fn forward(h: &'a FloatHistogram) -> Self {
        AllIter {
            h,
            left: ReverseIter::new(&h.negative_spans, &h.negative_buckets, h.schema, false, &[]),
            right: ForwardIter::new(h, true, 0.0, h.schema),
            state: -1,
        }
    }

    /// Go `AllReverseBucketIterator`: descending order.
    pub(super) fn reverse(h: &'a FloatHistogram) -> Self {
        AllIter {
            h,
            left: ReverseIter::new(
                &h.positive_spans,
                &h.positive_buckets,
                h.schema,
                true,
                &h.custom_values,
            ),
            right: ForwardIter::new(h, false, 0.0, h.schema),
            state: -1,
        }
    }

    pub(super) fn clamp(&self, mut b: Bucket) -> Bucket {
        let zt = self.h.zero_threshold;
        if b.upper < 0.0 && b.upper > -zt {
            b.upper = -zt;
        } else if b.lower > 0.0 && b.lower < zt {
            b.lower = zt;
        }
        b
    }
}

impl Iterator for AllIter<'_> {
    type Item = Bucket;
    fn next(&mut self) -> Option<Bucket> {
        loop {
            match self.state {
                -1 => {
                    if let Some(b) = self.left.next() {
                        return Some(self.clamp(b));
                    }
                    self.state = 0;
                }
                0 => {
                    self.state = 1;
                    // Go would panic on a custom-buckets histogram with a zero count.
                    if self.h.zero_count > 0.0 && !self.h.uses_custom_buckets() {
                        return Some(self.h.zero_bucket());
                    }
                }
                1 => {
                    if let Some(b) = self.right.next() {
                        return Some(self.clamp(b));
                    }
                    self.state = 42;
                    return None;
                }
                _ => return None,
            }
        }
    }
}
