//! Prometheus' `Histogram` protobuf message (remote write 1.0
//! `prometheus.Histogram` and 2.0 `io.prometheus.write.v2.Histogram` share
//! its fields) → a [`FloatHistogram`] and its timestamp. Integer histograms
//! carry bucket counts as deltas, float histograms as absolute counts; both
//! become absolute float counts.

use super::protobuf::{Reader, Value, as_i64};
use super::validate::DecodeError;
use crate::model::histogram::{CounterResetHint, FloatHistogram, Span};

/// Decodes one `Histogram` message: (timestamp ms, histogram).
pub fn read_histogram(mut message: Reader<'_>) -> Result<(i64, FloatHistogram), DecodeError> {
    let mut h = FloatHistogram::default();
    let mut timestamp = 0i64;
    let (mut positive_deltas, mut negative_deltas) = (Vec::new(), Vec::new());
    while let Some((field, value)) = message.next_field()? {
        match (field, value) {
            (1, Value::Varint(n)) => h.count = n as f64,
            (2, Value::Fixed64(bits)) => h.count = f64::from_bits(bits),
            (3, Value::Fixed64(bits)) => h.sum = f64::from_bits(bits),
            (4, Value::Varint(n)) => h.schema = zigzag(n) as i32,
            (5, Value::Fixed64(bits)) => h.zero_threshold = f64::from_bits(bits),
            (6, Value::Varint(n)) => h.zero_count = n as f64,
            (7, Value::Fixed64(bits)) => h.zero_count = f64::from_bits(bits),
            (8, Value::Bytes(b)) => h.negative_spans.push(read_span(message.nested(b))?),
            (9, v) => sint64s(&message, v, &mut negative_deltas)?,
            (10, v) => doubles(v, &mut h.negative_buckets)?,
            (11, Value::Bytes(b)) => h.positive_spans.push(read_span(message.nested(b))?),
            (12, v) => sint64s(&message, v, &mut positive_deltas)?,
            (13, v) => doubles(v, &mut h.positive_buckets)?,
            (14, Value::Varint(n)) => {
                h.counter_reset_hint = match n {
                    1 => CounterResetHint::CounterReset,
                    2 => CounterResetHint::NotCounterReset,
                    3 => CounterResetHint::Gauge,
                    _ => CounterResetHint::Unknown,
                }
            }
            (15, Value::Varint(n)) => timestamp = as_i64(n),
            (16, v) => doubles(v, &mut h.custom_values)?,
            _ => {}
        }
    }
    if !positive_deltas.is_empty() {
        h.positive_buckets = absolute(&positive_deltas);
    }
    if !negative_deltas.is_empty() {
        h.negative_buckets = absolute(&negative_deltas);
    }
    check_layout(&h)?;
    // What Prometheus' TSDB checks on append (negative counts, span
    // offsets, a count below its buckets', custom bounds).
    h.validate()
        .map_err(|e| DecodeError::bad_request(format!("native histogram: {e}")))?;
    Ok((timestamp, h))
}

/// Encodes a float histogram as a `Histogram` message (float counts): what
/// a sender such as Prometheus writes; used by tests and load generators.
pub fn encode_histogram(t_ms: i64, h: &FloatHistogram) -> Vec<u8> {
    use super::protobuf::{put_bytes_field, put_varint};
    let mut out = Vec::new();
    let key =
        |out: &mut Vec<u8>, field: u32, wire: u32| put_varint(out, u64::from(field << 3 | wire));
    let double = |out: &mut Vec<u8>, field: u32, v: f64| {
        key(out, field, 1);
        out.extend_from_slice(&v.to_le_bytes());
    };
    let doubles = |out: &mut Vec<u8>, field: u32, values: &[f64]| {
        let packed: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        put_bytes_field(out, field, &packed);
    };
    let spans = |out: &mut Vec<u8>, field: u32, spans: &[Span]| {
        for s in spans {
            let mut span = Vec::new();
            key(&mut span, 1, 0);
            put_varint(&mut span, zigzag_encode(i64::from(s.offset)));
            key(&mut span, 2, 0);
            put_varint(&mut span, u64::from(s.length));
            put_bytes_field(out, field, &span);
        }
    };
    double(&mut out, 2, h.count);
    double(&mut out, 3, h.sum);
    key(&mut out, 4, 0);
    put_varint(&mut out, zigzag_encode(i64::from(h.schema)));
    double(&mut out, 5, h.zero_threshold);
    double(&mut out, 7, h.zero_count);
    spans(&mut out, 8, &h.negative_spans);
    doubles(&mut out, 10, &h.negative_buckets);
    spans(&mut out, 11, &h.positive_spans);
    doubles(&mut out, 13, &h.positive_buckets);
    key(&mut out, 14, 0);
    put_varint(
        &mut out,
        match h.counter_reset_hint {
            CounterResetHint::Unknown => 0,
            CounterResetHint::CounterReset => 1,
            CounterResetHint::NotCounterReset => 2,
            CounterResetHint::Gauge => 3,
        },
    );
    key(&mut out, 15, 0);
    put_varint(&mut out, t_ms as u64);
    doubles(&mut out, 16, &h.custom_values);
    out
}

/// Spans must cover exactly the buckets sent.
fn check_layout(h: &FloatHistogram) -> Result<(), DecodeError> {
    for (side, spans, buckets) in [
        ("positive", &h.positive_spans, h.positive_buckets.len()),
        ("negative", &h.negative_spans, h.negative_buckets.len()),
    ] {
        let covered: u64 = spans.iter().map(|s| u64::from(s.length)).sum();
        if covered != buckets as u64 {
            return Err(DecodeError::bad_request(format!(
                "native histogram: {side} spans cover {covered} buckets but {buckets} counts were sent"
            )));
        }
    }
    if !(-53..=8).contains(&h.schema) || (h.schema < -4 && h.schema != -53) {
        return Err(DecodeError::bad_request(format!(
            "native histogram: schema {} is not supported (-4..8 or -53)",
            h.schema
        )));
    }
    Ok(())
}

fn zigzag_encode(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn zigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

fn absolute(deltas: &[i64]) -> Vec<f64> {
    let mut running = 0i64;
    deltas
        .iter()
        .map(|d| {
            running = running.wrapping_add(*d);
            running as f64
        })
        .collect()
}

fn read_span(mut span: Reader<'_>) -> Result<Span, DecodeError> {
    let mut out = Span {
        offset: 0,
        length: 0,
    };
    while let Some((field, value)) = span.next_field()? {
        match (field, value) {
            (1, Value::Varint(n)) => out.offset = zigzag(n) as i32,
            (2, Value::Varint(n)) => out.length = n as u32,
            _ => {}
        }
    }
    Ok(out)
}

/// A repeated `sint64`, packed or not.
fn sint64s(message: &Reader<'_>, value: Value<'_>, out: &mut Vec<i64>) -> Result<(), DecodeError> {
    match value {
        Value::Varint(n) => out.push(zigzag(n)),
        Value::Bytes(b) => {
            let mut packed = message.nested(b);
            while let Some(n) = packed.next_varint()? {
                out.push(zigzag(n));
            }
        }
        _ => {}
    }
    Ok(())
}

/// A repeated `double`, packed or not.
fn doubles(value: Value<'_>, out: &mut Vec<f64>) -> Result<(), DecodeError> {
    match value {
        Value::Fixed64(bits) => out.push(f64::from_bits(bits)),
        Value::Bytes(b) => {
            if !b.len().is_multiple_of(8) {
                return Err(DecodeError::bad_request(
                    "native histogram: packed doubles are not a multiple of 8 bytes".to_string(),
                ));
            }
            out.extend(
                b.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))),
            );
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::protobuf::{put_bytes_field, put_varint};

    fn varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
        put_varint(out, u64::from(field << 3));
        put_varint(out, v);
    }

    #[test]
    fn integer_histogram_deltas_become_absolute_counts() {
        let mut msg = Vec::new();
        varint_field(&mut msg, 1, 7); // count_int
        msg.push((3 << 3) | 1);
        msg.extend_from_slice(&12.5f64.to_le_bytes()); // sum
        varint_field(&mut msg, 4, zigzag_encode(1)); // schema 1
        varint_field(&mut msg, 6, 1); // zero_count_int
        let mut span = Vec::new();
        varint_field(&mut span, 1, zigzag_encode(-1));
        varint_field(&mut span, 2, 3);
        put_bytes_field(&mut msg, 11, &span);
        let mut deltas = Vec::new();
        for d in [2i64, -1, 2] {
            put_varint(&mut deltas, zigzag_encode(d));
        }
        put_bytes_field(&mut msg, 12, &deltas);
        varint_field(&mut msg, 14, 3); // gauge
        varint_field(&mut msg, 15, 1_000);
        let (t, h) = read_histogram(Reader::new(&msg)).unwrap();
        assert_eq!(t, 1_000);
        assert_eq!(h.count, 7.0);
        assert_eq!(h.sum, 12.5);
        assert_eq!(h.schema, 1);
        assert_eq!(h.zero_count, 1.0);
        assert_eq!(
            h.positive_spans,
            vec![Span {
                offset: -1,
                length: 3
            }]
        );
        assert_eq!(h.positive_buckets, vec![2.0, 1.0, 3.0]);
        assert_eq!(h.counter_reset_hint, CounterResetHint::Gauge);
    }

    #[test]
    fn float_histograms_round_trip() {
        let h = FloatHistogram {
            counter_reset_hint: CounterResetHint::NotCounterReset,
            schema: -53,
            count: 5.5,
            sum: -2.25,
            positive_spans: vec![Span {
                offset: 0,
                length: 3,
            }],
            positive_buckets: vec![1.5, 0.0, 4.0],
            custom_values: vec![0.5, 2.0],
            ..Default::default()
        };
        let (t, back) = read_histogram(Reader::new(&encode_histogram(-7, &h))).unwrap();
        assert_eq!((t, back), (-7, h));
    }

    #[test]
    fn histograms_prometheus_would_not_append_are_refused() {
        let h = FloatHistogram {
            count: 1.0,
            positive_spans: vec![Span {
                offset: 0,
                length: 1,
            }],
            positive_buckets: vec![-3.0],
            ..Default::default()
        };
        let e = read_histogram(Reader::new(&encode_histogram(0, &h))).unwrap_err();
        assert!(e.to_string().starts_with("native histogram: "), "{e}");
    }

    #[test]
    fn spans_that_do_not_cover_the_counts_are_refused() {
        let mut msg = Vec::new();
        let mut span = Vec::new();
        varint_field(&mut span, 2, 2);
        put_bytes_field(&mut msg, 11, &span);
        let mut deltas = Vec::new();
        put_varint(&mut deltas, zigzag_encode(1));
        put_bytes_field(&mut msg, 12, &deltas);
        let e = read_histogram(Reader::new(&msg)).unwrap_err();
        assert!(e.to_string().contains("cover 2 buckets but 1"), "{e}");
    }
}
