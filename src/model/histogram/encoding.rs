//! A histogram in and out: the storage encoding (`encode`/`decode`), the
//! texts users see (Go's `String()`, the HTTP API's `buckets`, promqltest
//! literals) and the comparisons tests use.

use super::*;

pub(super) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64); // Zig-zag.
}

/// Bounds-checked reader for [`FloatHistogram::decode`].
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    pub(super) fn err(&self, what: &str) -> HistogramError {
        HistogramError::Decode(format!("{what} at byte {}", self.pos))
    }

    pub(super) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(super) fn u8(&mut self, what: &str) -> Result<u8, HistogramError> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| self.err(&format!("truncated {what}")))?;
        self.pos += 1;
        Ok(b)
    }

    pub(super) fn f64(&mut self, what: &str) -> Result<f64, HistogramError> {
        let end = self.pos.checked_add(8).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(self.err(&format!("truncated {what}")));
        };
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&self.bytes[self.pos..end]);
        self.pos = end;
        Ok(f64::from_le_bytes(raw))
    }

    pub(super) fn uvarint(&mut self, what: &str) -> Result<u64, HistogramError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8(what)?;
            if shift == 63 && b > 1 {
                return Err(self.err(&format!("overflowing varint in {what}")));
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.err(&format!("overflowing varint in {what}")))
    }

    pub(super) fn varint_i32(&mut self, what: &str) -> Result<i32, HistogramError> {
        let u = self.uvarint(what)?;
        let v = ((u >> 1) as i64) ^ -((u & 1) as i64);
        i32::try_from(v).map_err(|_| self.err(&format!("{what} out of range")))
    }

    pub(super) fn u32(&mut self, what: &str) -> Result<u32, HistogramError> {
        let u = self.uvarint(what)?;
        u32::try_from(u).map_err(|_| self.err(&format!("{what} out of range")))
    }

    /// A length prefix, checked against the bytes left (each element takes
    /// at least `min_elem_size` bytes) so garbage cannot trigger huge allocations.
    pub(super) fn len(
        &mut self,
        what: &str,
        min_elem_size: usize,
    ) -> Result<usize, HistogramError> {
        let n = self.uvarint(what)?;
        if n > (self.remaining() / min_elem_size) as u64 {
            return Err(self.err(&format!("{what} length {n} exceeds input")));
        }
        Ok(n as usize)
    }

    pub(super) fn spans(&mut self, what: &str) -> Result<Vec<Span>, HistogramError> {
        let n = self.len(what, 2)?;
        let mut spans = Vec::with_capacity(n);
        for _ in 0..n {
            let offset = self.varint_i32(what)?;
            let length = self.u32(what)?;
            spans.push(Span { offset, length });
        }
        Ok(spans)
    }

    pub(super) fn floats(&mut self, what: &str) -> Result<Vec<f64>, HistogramError> {
        let n = self.len(what, 8)?;
        (0..n).map(|_| self.f64(what)).collect()
    }
}

impl FloatHistogram {
    /// Appends the compact binary encoding: version byte (1), counter reset
    /// hint byte, zig-zag varint schema, zero threshold, zero count, count,
    /// sum (f64 little-endian, bit-exact so NaN payloads such as the stale
    /// marker survive), then positive spans, negative spans (varint count,
    /// then zig-zag offset + varint length each), positive buckets, negative
    /// buckets and custom values (varint count, then f64 LE each).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(ENCODING_VERSION);
        out.push(self.counter_reset_hint.to_byte());
        put_varint(out, self.schema as i64);
        for v in [self.zero_threshold, self.zero_count, self.count, self.sum] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for spans in [&self.positive_spans, &self.negative_spans] {
            put_uvarint(out, spans.len() as u64);
            for s in spans.iter() {
                put_varint(out, s.offset as i64);
                put_uvarint(out, s.length as u64);
            }
        }
        for floats in [
            &self.positive_buckets,
            &self.negative_buckets,
            &self.custom_values,
        ] {
            put_uvarint(out, floats.len() as u64);
            for v in floats.iter() {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }

    /// Decodes what [`Self::encode`] wrote. Rejects unknown versions, unknown
    /// hints, truncated input, trailing bytes and out-of-range integers;
    /// never panics. It does not check semantic consistency (use
    /// [`Self::validate`] for that).
    pub fn decode(bytes: &[u8]) -> Result<FloatHistogram, HistogramError> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u8("version")?;
        if version != ENCODING_VERSION {
            return Err(HistogramError::Decode(format!(
                "unsupported version {version}"
            )));
        }
        let hint_byte = r.u8("counter reset hint")?;
        let counter_reset_hint = CounterResetHint::from_byte(hint_byte).ok_or_else(|| {
            HistogramError::Decode(format!("unknown counter reset hint {hint_byte}"))
        })?;
        let schema = r.varint_i32("schema")?;
        let zero_threshold = r.f64("zero threshold")?;
        let zero_count = r.f64("zero count")?;
        let count = r.f64("count")?;
        let sum = r.f64("sum")?;
        let positive_spans = r.spans("positive spans")?;
        let negative_spans = r.spans("negative spans")?;
        let positive_buckets = r.floats("positive buckets")?;
        let negative_buckets = r.floats("negative buckets")?;
        let custom_values = r.floats("custom values")?;
        if r.remaining() != 0 {
            return Err(r.err("trailing bytes"));
        }
        Ok(FloatHistogram {
            counter_reset_hint,
            schema,
            zero_threshold,
            zero_count,
            count,
            sum,
            positive_spans,
            negative_spans,
            positive_buckets,
            negative_buckets,
            custom_values,
        })
    }

    /// Go `FloatHistogram.String()`, e.g.
    /// `{count:20, sum:10, [-2,-1):1, [-1,-0.5):2, [-0.001,0.001]:2, (0.5,1]:1, (1,2]:2}`.
    /// Lists non-empty buckets in ascending order; bucket bounds are not
    /// clamped to the zero threshold here (unlike [`Self::api_buckets`]).
    pub fn to_prom_string(&self) -> String {
        let mut s = format!(
            "{{count:{}, sum:{}",
            format_go_float(self.count),
            format_go_float(self.sum)
        );
        let negative: Vec<Bucket> = self
            .negative_buckets_iter()
            .filter(|b| b.count != 0.0)
            .collect();
        for b in negative.iter().rev() {
            s.push_str(", ");
            s.push_str(&b.to_prom_string());
        }
        if self.zero_count != 0.0 && !self.uses_custom_buckets() {
            s.push_str(", ");
            s.push_str(&self.zero_bucket().to_prom_string());
        }
        for b in self.positive_buckets_iter().filter(|b| b.count != 0.0) {
            s.push_str(", ");
            s.push_str(&b.to_prom_string());
        }
        s.push('}');
        s
    }

    /// Every bucket with a non-zero count in ascending order, as the HTTP
    /// API's JSON `buckets` lists them (Prometheus `jsonutil.MarshalHistogram`
    /// over `AllBucketIterator`): `(boundary rule, lower, upper, count)` with
    /// rule 0 = (lower, upper], 1 = [lower, upper), 2 = (lower, upper),
    /// 3 = [lower, upper]. Exponential positive buckets are rule 0, negative
    /// ones rule 1, the zero bucket rule 3; custom buckets are rule 0 except
    /// the first, `[-Inf, b0]`, which is rule 3. Buckets overlapping the zero
    /// bucket are clamped to the zero threshold.
    pub fn api_buckets(&self) -> Vec<(u8, f64, f64, f64)> {
        self.all_buckets_iter()
            .filter(|b| b.count != 0.0)
            .map(|b| {
                let rule = match (b.lower_inclusive, b.upper_inclusive) {
                    (true, true) => 3,
                    (true, false) => 1,
                    (false, true) => 0,
                    (false, false) => 2,
                };
                (rule, b.lower, b.upper, b.count)
            })
            .collect()
    }

    /// Go `TestExpression()`: the promqltest literal (with `{{`/`}}`) of the
    /// histogram after compacting it into at most one span per side.
    pub fn to_test_expression(&self) -> String {
        let mut m = self.clone();
        m.compact(usize::MAX);
        let mut res: Vec<String> = Vec::new();
        if m.schema != 0 {
            res.push(format!("schema:{}", m.schema));
        }
        if m.count != 0.0 {
            res.push(format!("count:{}", format_go_float(m.count)));
        }
        if m.sum != 0.0 {
            res.push(format!("sum:{}", format_go_float(m.sum)));
        }
        if m.zero_count != 0.0 {
            res.push(format!("z_bucket:{}", format_go_float(m.zero_count)));
        }
        if m.zero_threshold != 0.0 {
            res.push(format!("z_bucket_w:{}", format_go_float(m.zero_threshold)));
        }
        if m.uses_custom_buckets() {
            res.push(format!(
                "custom_values:[{}]",
                join_go_floats(&m.custom_values)
            ));
        }
        match m.counter_reset_hint {
            CounterResetHint::Unknown => {}
            CounterResetHint::CounterReset => res.push("counter_reset_hint:reset".into()),
            CounterResetHint::NotCounterReset => res.push("counter_reset_hint:not_reset".into()),
            CounterResetHint::Gauge => res.push("counter_reset_hint:gauge".into()),
        }
        for (buckets, spans, bkey, okey) in [
            (&m.positive_buckets, &m.positive_spans, "buckets", "offset"),
            (
                &m.negative_buckets,
                &m.negative_spans,
                "n_buckets",
                "n_offset",
            ),
        ] {
            // Go panics on more than one span; after compact(MAX) there is at most one.
            if let Some(span) = spans.first().filter(|s| s.offset != 0) {
                res.push(format!("{okey}:{}", span.offset));
            }
            if !buckets.is_empty() {
                res.push(format!("{bkey}:[{}]", join_go_floats(buckets)));
            }
        }
        format!("{{{{{}}}}}", res.join(" "))
    }

    /// Equality as promqltest compares expected and actual histograms: both
    /// compacted with `compact(0)`, schema and zero threshold equal, custom
    /// values equal (custom schema only), equivalent span layouts, and
    /// count, sum, zero count and buckets equal within promqltest's relative
    /// tolerance [`DEFAULT_TEST_EPSILON`] (NaN equals NaN, StaleNaN only
    /// equals StaleNaN). The counter reset hint is compared only when
    /// `compare_hint`. Use [`Self::equals_for_test_eps`] with epsilon 0 for
    /// exact float comparison.
    pub fn equals_for_test(&self, other: &FloatHistogram, compare_hint: bool) -> bool {
        self.equals_for_test_eps(other, compare_hint, DEFAULT_TEST_EPSILON)
    }

    /// [`Self::equals_for_test`] with an explicit relative tolerance.
    pub fn equals_for_test_eps(
        &self,
        other: &FloatHistogram,
        compare_hint: bool,
        epsilon: f64,
    ) -> bool {
        let mut exp = self.clone();
        let mut cur = other.clone();
        exp.compact(0);
        cur.compact(0);
        let eq = |a: f64, b: f64| almost_equal(a, b, epsilon);
        let buckets_eq =
            |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| eq(*x, *y));
        if exp.schema != cur.schema || !eq(exp.count, cur.count) || !eq(exp.sum, cur.sum) {
            return false;
        }
        if exp.uses_custom_buckets()
            && !custom_bucket_bounds_match(&exp.custom_values, &cur.custom_values)
        {
            return false;
        }
        if exp.zero_threshold != cur.zero_threshold || !eq(exp.zero_count, cur.zero_count) {
            return false;
        }
        if !spans_match(&exp.negative_spans, &cur.negative_spans)
            || !buckets_eq(&exp.negative_buckets, &cur.negative_buckets)
            || !spans_match(&exp.positive_spans, &cur.positive_spans)
            || !buckets_eq(&exp.positive_buckets, &cur.positive_buckets)
        {
            return false;
        }
        !compare_hint || exp.counter_reset_hint == cur.counter_reset_hint
    }
}

/// Prometheus `almost.Equal`.
pub fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    let stale_a = a.to_bits() == STALE_NAN_BITS;
    let stale_b = b.to_bits() == STALE_NAN_BITS;
    if stale_a || stale_b {
        return stale_a && stale_b;
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE; // Smallest positive normal f64.
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// promqltest `spansMatch`: same bucket layout, ignoring zero-length spans.
pub(super) fn spans_match(s1: &[Span], s2: &[Span]) -> bool {
    if s1.is_empty() && s2.is_empty() {
        return true;
    }
    fn all_empty(s: &[Span]) -> bool {
        s.iter().all(|x| x.length == 0)
    }
    // Folds a run of zero-length spans into the next non-empty one.
    fn next(s: &[Span], idx: &mut usize) -> Span {
        let mut cur = s[*idx];
        *idx += 1;
        if cur.length == 0 {
            while *idx < s.len() && s[*idx].length == 0 {
                cur.offset = cur.offset.wrapping_add(s[*idx].offset);
                *idx += 1;
            }
            if *idx < s.len() {
                cur.offset = cur.offset.wrapping_add(s[*idx].offset);
                cur.length = s[*idx].length;
                *idx += 1;
            }
        }
        cur
    }
    let (mut i1, mut i2) = (0, 0);
    loop {
        if i1 >= s1.len() {
            return all_empty(&s2[i2..]);
        }
        if i2 >= s2.len() {
            return all_empty(&s1[i1..]);
        }
        let c1 = next(s1, &mut i1);
        let c2 = next(s2, &mut i2);
        if c1.length == 0 && c2.length == 0 {
            return true;
        }
        if c1 != c2 {
            return false;
        }
    }
}

pub(super) fn join_go_floats(v: &[f64]) -> String {
    v.iter()
        .map(|x| format_go_float(*x))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Formats a float like Go's `fmt` `%g`/`%v` (= `strconv.FormatFloat(x,
/// 'g', -1, 64)`, as Prometheus' `String()` uses): shortest round-trip
/// digits, exponent form with at least two exponent digits (`1e-05`,
/// `1.5e+06`) when the decimal exponent is < -4 or ≥ 6, plus `+Inf`,
/// `-Inf`, `NaN` and `-0`.
pub fn format_go_float(x: f64) -> String {
    o11ydb_udfs::logql::template::format_float_v(x)
}
