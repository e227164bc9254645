//! Span and bucket algorithms behind the arithmetic (ports of Prometheus'
//! Go helpers): adding bucket sets span by span, compacting, reducing
//! spans to a coarser schema, intersecting custom bounds.

use super::*;

/// Adds (or, if `negative`, subtracts) the buckets of B to those of A,
/// inserting buckets missing in A (Go `addBuckets`). Both must use `schema`.
/// Buckets of B with an upper bound ≤ `threshold` (exponential schemas
/// only) are ignored: they are inside the zero bucket. Indices are tracked
/// as i64 and every access is checked, so inconsistent input cannot panic.
pub(super) fn add_buckets(
    schema: i32,
    threshold: f64,
    negative: bool,
    mut spans_a: Vec<Span>,
    mut buckets_a: Vec<f64>,
    spans_b: &[Span],
    buckets_b: &[f64],
) -> (Vec<Span>, Vec<f64>) {
    let mut i_span: i64 = -1; // -1: not yet positioned in A.
    let mut i_bucket: i64 = -1;
    let mut i_in_span: i64 = 0;
    let mut index_a: i64 = 0;
    let mut index_b: i64 = 0;
    let mut b_idx_b: usize = 0;
    let mut lower_than_threshold = true;

    for span_b in spans_b {
        index_b += span_b.offset as i64;
        for _ in 0..span_b.length {
            'body: {
                if lower_than_threshold
                    && is_exponential_schema(schema)
                    && get_bound_exponential(index_b, schema) <= threshold
                {
                    break 'body;
                }
                lower_than_threshold = false;

                let Some(&b) = buckets_b.get(b_idx_b) else {
                    return (spans_a, buckets_a);
                };
                let bucket_b = if negative { -b } else { b };

                if i_span == -1 {
                    let first_offset = spans_a.first().map(|s| s.offset as i64);
                    if first_offset.is_none_or(|o| o > index_b) {
                        // Add bucket before all others.
                        buckets_a.insert(0, bucket_b);
                        if first_offset == Some(index_b + 1) {
                            spans_a[0].length += 1;
                            spans_a[0].offset -= 1;
                            break 'body;
                        }
                        spans_a.insert(
                            0,
                            Span {
                                offset: index_b as i32,
                                length: 1,
                            },
                        );
                        if let Some(s) = spans_a.get_mut(1) {
                            // Absolute offset of the formerly first span becomes relative.
                            s.offset = (s.offset as i64 - (index_b + 1)) as i32;
                        }
                        break 'body;
                    } else if first_offset == Some(index_b) {
                        // Just add to the first bucket.
                        match buckets_a.get_mut(0) {
                            Some(v) => *v += bucket_b,
                            None => return (spans_a, buckets_a),
                        }
                        break 'body;
                    }
                    i_span = 0;
                    i_bucket = 0;
                    i_in_span = 0;
                    index_a = first_offset.unwrap_or(0);
                }
                let mut delta_index = index_b - index_a;
                loop {
                    let Some(span) = spans_a.get(i_span as usize) else {
                        return (spans_a, buckets_a);
                    };
                    let remaining_in_span = span.length as i64 - i_in_span;
                    if delta_index < remaining_in_span {
                        // Bucket is in the current span.
                        i_bucket += delta_index;
                        i_in_span += delta_index;
                        match usize::try_from(i_bucket)
                            .ok()
                            .and_then(|i| buckets_a.get_mut(i))
                        {
                            Some(v) => *v += bucket_b,
                            None => return (spans_a, buckets_a),
                        }
                        break;
                    }
                    delta_index -= remaining_in_span;
                    i_bucket += remaining_in_span;
                    i_span += 1;
                    let next_offset = spans_a.get(i_span as usize).map(|s| s.offset as i64);
                    if next_offset.is_none_or(|o| delta_index < o) {
                        // Bucket is in the gap behind the previous span (or
                        // there are no further spans).
                        let ib = match usize::try_from(i_bucket) {
                            Ok(ib) if ib <= buckets_a.len() => ib,
                            _ => return (spans_a, buckets_a),
                        };
                        buckets_a.insert(ib, bucket_b);
                        if delta_index == 0 {
                            // Directly after the previous span: extend it.
                            if let Some(s) = spans_a.get_mut(i_span as usize) {
                                s.offset -= 1;
                            }
                            i_span -= 1;
                            let prev = &mut spans_a[i_span as usize];
                            i_in_span = prev.length as i64;
                            prev.length += 1;
                        } else if next_offset.is_some_and(|o| delta_index == o - 1) {
                            // Directly before the next span: extend it.
                            i_in_span = 0;
                            let next = &mut spans_a[i_span as usize];
                            next.offset -= 1;
                            next.length += 1;
                        } else {
                            // Not adjacent to anything: new span.
                            i_in_span = 0;
                            if let Some(s) = spans_a.get_mut(i_span as usize) {
                                s.offset = (s.offset as i64 - (delta_index + 1)) as i32;
                            }
                            spans_a.insert(
                                i_span as usize,
                                Span {
                                    length: 1,
                                    offset: delta_index as i32,
                                },
                            );
                        }
                        break 'body;
                    }
                    // Try the start of the next span.
                    delta_index -= next_offset.unwrap_or(0);
                    i_in_span = 0;
                }
            }
            // nextLoop:
            index_a = index_b;
            index_b += 1;
            b_idx_b += 1;
        }
    }
    (spans_a, buckets_a)
}

/// Go `compactBuckets` for absolute float counts.
pub(super) fn compact_buckets(
    buckets: &mut Vec<f64>,
    spans: &mut Vec<Span>,
    max_empty_buckets: usize,
) {
    let max_empty = i64::try_from(max_empty_buckets).unwrap_or(i64::MAX);
    // Fast path: no empty bucket, no small offset, no empty span.
    if !buckets.contains(&0.0)
        && spans
            .iter()
            .all(|s| (s.offset as i64) > max_empty && s.length != 0)
    {
        return;
    }

    // Merge spans with zero offset into their predecessor.
    if spans.len() > 1 {
        let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
        for (i, &span) in spans.iter().enumerate() {
            match merged.last_mut() {
                Some(last) if i > 0 && span.offset == 0 => {
                    last.length = last.length.wrapping_add(span.length)
                }
                _ => merged.push(span),
            }
        }
        *spans = merged;
    }
    // Drop zero-length spans, carrying their offset to the next span.
    let mut kept: Vec<Span> = Vec::with_capacity(spans.len());
    let mut carry: i32 = 0;
    for &span in spans.iter() {
        if span.length == 0 {
            carry = carry.wrapping_add(span.offset);
            continue;
        }
        kept.push(Span {
            offset: span.offset.wrapping_add(carry),
            length: span.length,
        });
        carry = 0;
    }
    *spans = kept;
    if spans.is_empty() {
        buckets.clear();
        return;
    }

    // Cut empty buckets from the start and end of spans, and from their
    // middle if more than max_empty_buckets are consecutive.
    let (mut i_bucket, mut i_span, mut pos_in_span) = (0usize, 0usize, 0u32);
    while i_bucket < buckets.len() && i_span < spans.len() {
        // Number of consecutive empty buckets from here, within the span.
        let mut n_empty = 0usize;
        {
            let len = spans[i_span].length;
            let mut v = buckets[i_bucket];
            while (n_empty as u64 + pos_in_span as u64) < len as u64 && v == 0.0 {
                n_empty += 1;
                match buckets.get(i_bucket + n_empty) {
                    Some(&x) => v = x,
                    None => break,
                }
            }
        }
        if n_empty > 0 {
            let remaining = spans[i_span].length.wrapping_sub(pos_in_span) as u64;
            if pos_in_span > 0 && (n_empty as u64) < remaining && (n_empty as i64) <= max_empty {
                // Few enough empty buckets in the middle of a span: keep them.
                i_bucket += n_empty;
                pos_in_span += n_empty as u32;
                continue;
            }
            buckets.drain(i_bucket..i_bucket + n_empty);
            if pos_in_span == 0 {
                // Start of span.
                if n_empty as u64 == spans[i_span].length as u64 {
                    // The whole span is empty.
                    let offset = spans[i_span].offset;
                    spans.remove(i_span);
                    if let Some(s) = spans.get_mut(i_span) {
                        s.offset = s.offset.wrapping_add(offset).wrapping_add(n_empty as i32);
                    }
                    continue;
                }
                spans[i_span].length = spans[i_span].length.wrapping_sub(n_empty as u32);
                spans[i_span].offset = spans[i_span].offset.wrapping_add(n_empty as i32);
                continue;
            }
            // In the middle or at the end of the span: split it.
            let new_span = Span {
                offset: n_empty as i32,
                length: spans[i_span]
                    .length
                    .wrapping_sub(pos_in_span)
                    .wrapping_sub(n_empty as u32),
            };
            spans[i_span].length = pos_in_span;
            i_span += 1;
            pos_in_span = 0;
            if new_span.length == 0 {
                // We were at the end of the span already.
                if let Some(s) = spans.get_mut(i_span) {
                    s.offset = s.offset.wrapping_add(n_empty as i32);
                }
                continue;
            }
            spans.insert(i_span, new_span);
            continue;
        }
        i_bucket += 1;
        pos_in_span += 1;
        if pos_in_span >= spans[i_span].length {
            pos_in_span = 0;
            i_span += 1;
        }
    }
    if max_empty == 0 || buckets.is_empty() {
        return;
    }

    // Merge spans whose gap is at most max_empty_buckets, filling in zeros.
    let Some(first) = spans.first() else { return };
    let mut i_bucket = first.length as usize;
    let mut i_span = 1;
    while i_span < spans.len() {
        let offset = spans[i_span].offset as i64;
        let len = spans[i_span].length as usize;
        if offset > max_empty {
            i_bucket += len;
            i_span += 1;
            continue;
        }
        let gap = offset.max(0) as usize;
        spans[i_span - 1].length = spans[i_span - 1]
            .length
            .wrapping_add(gap as u32)
            .wrapping_add(len as u32);
        spans.remove(i_span);
        let at = i_bucket.min(buckets.len());
        buckets.splice(at..at, std::iter::repeat_n(0.0, gap));
        i_bucket += gap + len;
    }
}

/// Merges buckets of `origin_schema` into the lower `target_schema` (Go
/// `reduceResolution` for absolute counts). Errors on inconsistent spans.
pub(super) fn reduce_resolution_spans(
    origin_spans: &[Span],
    origin_buckets: &[f64],
    origin_schema: i32,
    target_schema: i32,
    side: &'static str,
) -> Result<(Vec<Span>, Vec<f64>), HistogramError> {
    let mut target_spans: Vec<Span> = Vec::new();
    let mut target_buckets: Vec<f64> = Vec::new();
    let mut bucket_idx: i64 = 0;
    let mut bucket_count_idx: usize = 0;
    let mut last_target_idx: i64 = 0;
    let mut needed: u64 = 0;
    for (n, span) in origin_spans.iter().enumerate() {
        if n > 0 && span.offset < 0 {
            return Err(HistogramError::SpanNegativeOffset {
                side,
                span_number: n + 1,
                offset: span.offset,
            });
        }
        needed += span.length as u64;
        bucket_idx += span.offset as i64;
        for _ in 0..span.length {
            let Some(&count) = origin_buckets.get(bucket_count_idx) else {
                let total: u64 = origin_spans.iter().map(|s| s.length as u64).sum();
                return Err(HistogramError::SpansBucketsMismatch {
                    side,
                    spans_need: total,
                    have: origin_buckets.len(),
                });
            };
            let t = target_idx(bucket_idx, origin_schema, target_schema);
            if target_spans.is_empty() {
                target_spans.push(Span {
                    offset: t as i32,
                    length: 1,
                });
                target_buckets.push(count);
                last_target_idx = t;
            } else if last_target_idx == t {
                if let Some(last) = target_buckets.last_mut() {
                    *last += count;
                }
            } else if last_target_idx + 1 == t {
                if let Some(last) = target_spans.last_mut() {
                    last.length += 1;
                }
                last_target_idx += 1;
                target_buckets.push(count);
            } else {
                target_spans.push(Span {
                    offset: (t - last_target_idx - 1) as i32,
                    length: 1,
                });
                last_target_idx = t;
                target_buckets.push(count);
            }
            bucket_idx += 1;
            bucket_count_idx += 1;
        }
    }
    if bucket_count_idx != origin_buckets.len() {
        return Err(HistogramError::SpansBucketsMismatch {
            side,
            spans_need: needed,
            have: origin_buckets.len(),
        });
    }
    Ok((target_spans, target_buckets))
}

/// Bounds present in both sorted bound sets (Go `intersectCustomBucketBounds`).
pub(super) fn intersect_custom_bucket_bounds(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut result = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            result.push(a[i]);
            i += 1;
            j += 1;
        } else if a[i] < b[j] {
            i += 1;
        } else {
            j += 1;
        }
    }
    result
}

/// Adds/subtracts custom-bucket histograms with different bounds by mapping
/// both onto the intersected bounds (Go `addCustomBucketsWithMismatches`).
/// Each source bucket goes to the first intersected bucket whose upper
/// bound is ≥ its own upper bound. Zero-valued result buckets are dropped.
#[allow(clippy::too_many_arguments)]
pub(super) fn add_custom_buckets_with_mismatches(
    negative: bool,
    spans_a: &[Span],
    buckets_a: &[f64],
    bounds_a: &[f64],
    spans_b: &[Span],
    buckets_b: &[f64],
    bounds_b: &[f64],
    intersected: &[f64],
) -> (Vec<Span>, Vec<f64>) {
    let n = intersected.len() + 1;
    let mut target = vec![0.0; n];
    let mut comp = vec![0.0; n];

    let mut map_buckets = |spans: &[Span], buckets: &[f64], bounds: &[f64], negative: bool| {
        let mut src_idx: i64 = 0;
        let mut bucket_idx = 0usize;
        let mut intersect_idx = 0usize;
        for span in spans {
            src_idx += span.offset as i64;
            for _ in 0..span.length {
                if let Some(&value) = buckets.get(bucket_idx) {
                    let mut t = n - 1; // Default: the +Inf bucket.
                    if src_idx >= 0 && (src_idx as usize) < bounds.len() {
                        let src_bound = bounds[src_idx as usize];
                        while intersect_idx < intersected.len() {
                            if intersected[intersect_idx] >= src_bound {
                                t = intersect_idx;
                                break;
                            }
                            intersect_idx += 1;
                        }
                    }
                    let inc = if negative { -value } else { value };
                    (target[t], comp[t]) = kahan_sum_inc(inc, target[t], comp[t]);
                }
                src_idx += 1;
                bucket_idx += 1;
            }
        }
    };
    map_buckets(spans_a, buckets_a, bounds_a, false);
    map_buckets(spans_b, buckets_b, bounds_b, negative);

    // As in Go, the result takes the Kahan sums without their compensation.
    let mut spans: Vec<Span> = Vec::new();
    let mut buckets = Vec::new();
    let mut last_idx: i64 = -1;
    for i in 0..n {
        if target[i] == 0.0 && comp[i] == 0.0 {
            continue;
        }
        buckets.push(target[i]);
        let idx = i as i64;
        match spans.last_mut() {
            Some(last) if idx == last_idx + 1 => last.length += 1,
            Some(_) => spans.push(Span {
                offset: (idx - last_idx - 1) as i32,
                length: 1,
            }),
            None => spans.push(Span {
                offset: idx as i32,
                length: 1,
            }),
        }
        last_idx = idx;
    }
    (spans, buckets)
}
