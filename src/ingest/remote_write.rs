//! Prometheus remote write 1.0 (`prometheus.WriteRequest`) and 2.0
//! (`io.prometheus.write.v2.Request`, labels as references into a symbol
//! table), after snappy: each time series is validated (labels, metric name,
//! limits, timestamps) and its samples appended to a canonical `samples`
//! batch. Invalid series and samples are counted as discards; the rest is
//! kept. Stale markers (Prometheus' special NaN) pass through bit for bit.
//! Native histograms (integer or float) are kept as histogram samples.
//! Exemplars and metadata are ignored.

use std::sync::Arc;

use super::distributor::{Decoded, Discards};
use super::limits::Limits;
use super::native_histogram::read_histogram;
use super::protobuf::{Reader, Value, as_i64, as_str};
use super::series_cache::{KnownSeries, SeriesCache};
use super::validate::{DecodeError, check_labels, check_time, render_labels};
use crate::model::Signal;
use crate::model::builders::SamplesBuilder;
use crate::model::histogram::FloatHistogram;
use crate::model::labels::series_id;

/// Series per output batch (bounds batch size for huge requests).
const ROWS_PER_BATCH: usize = 64 * 1024;

/// What the 1.0 and 2.0 decoders share: validating one decoded series and
/// appending its samples, and the request's batches and discards.
struct SeriesSink<'l> {
    limits: &'l Limits,
    now_ms: i64,
    builder: SamplesBuilder,
    batches: Vec<arrow::array::RecordBatch>,
    discards: Discards,
    /// The native histogram samples of the series being decoded.
    histograms: Vec<(i64, FloatHistogram)>,
}

impl<'l> SeriesSink<'l> {
    fn new(limits: &'l Limits, now_ms: i64) -> Self {
        SeriesSink {
            limits,
            now_ms,
            builder: SamplesBuilder::new(),
            batches: Vec::new(),
            discards: Discards::default(),
            histograms: Vec::new(),
        }
    }

    /// Validates one series (labels including `__name__`) and keeps its
    /// samples that are inside the tenant's time window. `bad_utf8` is the
    /// first label that was not UTF-8, if any. A valid series' labels are
    /// left canonical (sorted, without `__name__`) and its metric and id
    /// returned.
    fn series<'b>(
        &mut self,
        labels: &mut Vec<(&'b str, &'b str)>,
        samples: &mut Vec<(i64, f64)>,
        bad_utf8: Option<String>,
    ) -> Option<(&'b str, i64)> {
        if samples.is_empty() && self.histograms.is_empty() {
            return None;
        }
        // Discarded histograms are dropped with the next series' clear.
        let n = (samples.len() + self.histograms.len()) as u64;
        if let Some(e) = bad_utf8 {
            self.discards.add("label_invalid", n, || {
                format!("{e} in series {}", render_labels(labels))
            });
            return None;
        }
        if let Err(invalid) = check_labels(labels, self.limits) {
            self.discards.add(invalid.reason, n, || invalid.message);
            return None;
        }
        let Some(metric) = labels
            .iter()
            .find(|(k, _)| *k == "__name__")
            .map(|(_, v)| *v)
        else {
            self.discards.add("missing_metric_name", n, || {
                format!("series {} has no __name__ label", render_labels(labels))
            });
            return None;
        };
        labels.retain(|(k, _)| *k != "__name__");
        labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let id = series_id(metric, labels);
        self.valid_series(metric, labels, id, samples);
        Some((metric, id))
    }

    /// Keeps the samples of a valid series (canonical labels, its id) that
    /// are inside the tenant's time window.
    fn valid_series<K: AsRef<str>, V: AsRef<str>>(
        &mut self,
        metric: &str,
        labels: &[(K, V)],
        id: i64,
        samples: &mut Vec<(i64, f64)>,
    ) {
        // Whether a sample at `t` is inside the tenant's window (else counted).
        let (limits, now_ms, discards) = (self.limits, self.now_ms, &mut self.discards);
        let mut in_window = |t: i64| match check_time(Signal::Samples, t, limits, now_ms) {
            Ok(()) => true,
            Err(invalid) => {
                discards.add(invalid.reason, 1, || {
                    format!(
                        "{} for series {}{}",
                        invalid.message,
                        metric,
                        render_labels(labels)
                    )
                });
                false
            }
        };
        samples.retain(|&(t, _)| in_window(t));
        let mut histograms = std::mem::take(&mut self.histograms);
        histograms.retain(|(t, _)| in_window(*t));
        self.builder
            .push_series_with_id(metric, labels, id, samples);
        if !histograms.is_empty() {
            self.builder
                .push_histograms_with_id(metric, labels, id, &histograms);
        }
        if self.builder.len() >= ROWS_PER_BATCH {
            self.batches.push(self.builder.finish());
        }
    }

    fn finish(mut self) -> Decoded {
        if !self.builder.is_empty() {
            self.batches.push(self.builder.finish());
        }
        Decoded::costed_by_rows(Signal::Samples, self.batches, self.discards)
    }
}

/// A `Sample` message (both versions): `double value = 1; int64 timestamp = 2;`.
fn read_sample(mut sample: Reader<'_>) -> Result<(i64, f64), DecodeError> {
    let (mut v, mut t) = (0.0f64, 0i64);
    while let Some((f, val)) = sample.next_field()? {
        match (f, val) {
            (1, Value::Fixed64(bits)) => v = f64::from_bits(bits),
            (2, Value::Varint(x)) => t = as_i64(x),
            _ => {}
        }
    }
    Ok((t, v))
}

/// Decodes one uncompressed remote write 1.0 `prometheus.WriteRequest`.
pub fn decode_write_request(
    body: &[u8],
    limits: &Arc<Limits>,
    now_ms: i64,
) -> Result<Decoded, DecodeError> {
    decode_write_request_cached(body, limits, now_ms, &SeriesCache::default())
}

/// [`decode_write_request`] with the tenant's cache of validated series:
/// a series whose label bytes were seen before is not decoded again.
pub fn decode_write_request_cached(
    body: &[u8],
    limits: &Arc<Limits>,
    now_ms: i64,
    cache: &SeriesCache,
) -> Result<Decoded, DecodeError> {
    let mut request = Reader::new(body);
    let mut sink = SeriesSink::new(limits, now_ms);
    let mut known = cache.view(limits);
    let mut labels: Vec<(&str, &str)> = Vec::with_capacity(16);
    let mut samples: Vec<(i64, f64)> = Vec::with_capacity(8);
    while let Some((field, value)) = request.next_field()? {
        let (1, Value::Bytes(series_bytes)) = (field, value) else {
            continue; // metadata (3) and unknown fields
        };
        samples.clear();
        sink.histograms.clear();
        // The series' bytes up to the end of its last label: they decide
        // the label set, whatever else they hold.
        let mut labels_end = 0;
        let mut series = request.nested(series_bytes);
        while let Some((field, value)) = series.next_field()? {
            match (field, value) {
                (1, Value::Bytes(label_bytes)) => {
                    labels_end = label_bytes.as_ptr() as usize + label_bytes.len()
                        - series_bytes.as_ptr() as usize;
                }
                (2, Value::Bytes(sample_bytes)) => {
                    samples.push(read_sample(series.nested(sample_bytes))?);
                }
                (4, Value::Bytes(h)) => sink.histograms.push(read_histogram(series.nested(h))?),
                _ => {} // exemplars (3)
            }
        }
        if samples.is_empty() && sink.histograms.is_empty() {
            continue;
        }
        let label_bytes = &series_bytes[..labels_end];
        if let Some(series) = known.get(label_bytes) {
            let series = series.clone();
            sink.valid_series(
                &series.metric,
                &series.labels,
                series.series_id,
                &mut samples,
            );
            continue;
        }
        labels.clear();
        let mut bad_utf8: Option<String> = None;
        let mut prefix = request.nested(label_bytes);
        while let Some((field, value)) = prefix.next_field()? {
            let (1, Value::Bytes(label_bytes)) = (field, value) else {
                continue;
            };
            let mut label = prefix.nested(label_bytes);
            let (mut name, mut val) = ("", "");
            while let Some((f, v)) = label.next_field()? {
                match (f, v) {
                    (1, Value::Bytes(b)) => match as_str(b, "label name") {
                        Ok(s) => name = s,
                        Err(e) => bad_utf8 = bad_utf8.or(Some(e)),
                    },
                    (2, Value::Bytes(b)) => match as_str(b, "label value") {
                        Ok(s) => val = s,
                        Err(e) => bad_utf8 = bad_utf8.or(Some(e)),
                    },
                    _ => {}
                }
            }
            labels.push((name, val));
        }
        if let Some((metric, series_id)) = sink.series(&mut labels, &mut samples, bad_utf8) {
            let series = KnownSeries {
                metric: metric.into(),
                labels: labels
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
                series_id,
            };
            known.learn(label_bytes, Arc::new(series));
        }
    }
    known.finish(limits);
    Ok(sink.finish())
}

/// Decodes one uncompressed remote write 2.0 `io.prometheus.write.v2.Request`:
/// label names and values are references into the request's `symbols`
/// table. Metadata, exemplars and created timestamps are ignored.
pub fn decode_write_request_v2(
    body: &[u8],
    limits: &Limits,
    now_ms: i64,
) -> Result<Decoded, DecodeError> {
    // Symbols first: the table may come after the series that use it.
    let mut symbols: Vec<Result<&str, String>> = Vec::new();
    let mut request = Reader::new(body);
    while let Some((field, value)) = request.next_field()? {
        if let (4, Value::Bytes(b)) = (field, value) {
            symbols.push(as_str(b, "symbol"));
        }
    }
    // A reference out of range is a malformed request; a symbol that is not
    // UTF-8 only makes the series using it invalid.
    let symbol = |r: u64| -> Result<&Result<&str, String>, DecodeError> {
        symbols.get(r as usize).ok_or_else(|| {
            DecodeError::bad_request(format!(
                "a label refers to symbol {r}, but the request has {} symbols",
                symbols.len()
            ))
        })
    };
    let mut sink = SeriesSink::new(limits, now_ms);
    let mut refs: Vec<u64> = Vec::with_capacity(32);
    let mut labels: Vec<(&str, &str)> = Vec::with_capacity(16);
    let mut samples: Vec<(i64, f64)> = Vec::with_capacity(8);
    let mut request = Reader::new(body);
    while let Some((field, value)) = request.next_field()? {
        let (5, Value::Bytes(series_bytes)) = (field, value) else {
            continue; // symbols (4) and unknown fields
        };
        refs.clear();
        labels.clear();
        samples.clear();
        sink.histograms.clear();
        let mut series = request.nested(series_bytes);
        while let Some((field, value)) = series.next_field()? {
            match (field, value) {
                (1, Value::Bytes(packed)) => {
                    let mut packed = series.nested(packed);
                    while let Some(r) = packed.next_varint()? {
                        refs.push(r);
                    }
                }
                (1, Value::Varint(r)) => refs.push(r),
                (2, Value::Bytes(sample_bytes)) => {
                    samples.push(read_sample(series.nested(sample_bytes))?);
                }
                (3, Value::Bytes(h)) => sink.histograms.push(read_histogram(series.nested(h))?),
                _ => {} // exemplars (4), metadata (5), created timestamp (6)
            }
        }
        if !refs.len().is_multiple_of(2) {
            return Err(DecodeError::bad_request(format!(
                "a time series has {} label references; names and values come in pairs",
                refs.len()
            )));
        }
        let mut bad_utf8 = None;
        for pair in refs.chunks_exact(2) {
            match (symbol(pair[0])?, symbol(pair[1])?) {
                (Ok(name), Ok(value)) => labels.push((name, value)),
                (Err(e), _) | (_, Err(e)) => bad_utf8 = bad_utf8.or_else(|| Some(e.clone())),
            }
        }
        let _ = sink.series(&mut labels, &mut samples, bad_utf8);
    }
    Ok(sink.finish())
}

/// One series to encode: labels including `__name__`, and `(timestamp ms, value)` samples.
pub type SeriesSamples = (Vec<(String, String)>, Vec<(i64, f64)>);

/// Test and benchmark helper: encodes a `WriteRequest` from series.
pub fn encode_write_request(series: &[SeriesSamples]) -> Vec<u8> {
    use super::protobuf::{put_bytes_field as bytes_field, put_varint as varint};
    let mut out = Vec::new();
    let mut ts = Vec::new();
    let mut tmp = Vec::new();
    for (labels, samples) in series {
        ts.clear();
        for (k, v) in labels {
            tmp.clear();
            bytes_field(&mut tmp, 1, k.as_bytes());
            bytes_field(&mut tmp, 2, v.as_bytes());
            bytes_field(&mut ts, 1, &tmp);
        }
        for (t, v) in samples {
            tmp.clear();
            tmp.push(0x09);
            tmp.extend_from_slice(&v.to_bits().to_le_bytes());
            tmp.push(0x10);
            varint(&mut tmp, *t as u64);
            bytes_field(&mut ts, 2, &tmp);
        }
        bytes_field(&mut out, 1, &ts);
    }
    out
}

/// Test and benchmark helper: encodes a remote write 2.0 `Request` from
/// series, with a deduplicated symbol table (`""` first, as the spec asks).
pub fn encode_write_request_v2(series: &[SeriesSamples]) -> Vec<u8> {
    use super::protobuf::{put_bytes_field as bytes_field, put_varint as varint};
    let mut symbols: Vec<&str> = vec![""];
    let mut index: std::collections::HashMap<&str, u64> = [("", 0)].into();
    let mut timeseries = Vec::new();
    for (labels, samples) in series {
        let mut refs = Vec::new();
        for (k, v) in labels {
            for s in [k.as_str(), v.as_str()] {
                let r = *index.entry(s).or_insert_with(|| {
                    symbols.push(s);
                    symbols.len() as u64 - 1
                });
                varint(&mut refs, r);
            }
        }
        let mut ts = Vec::new();
        bytes_field(&mut ts, 1, &refs);
        for (t, v) in samples {
            let mut sample = vec![0x09];
            sample.extend_from_slice(&v.to_bits().to_le_bytes());
            sample.push(0x10);
            varint(&mut sample, *t as u64);
            bytes_field(&mut ts, 2, &sample);
        }
        timeseries.push(ts);
    }
    let mut out = Vec::new();
    for s in symbols {
        bytes_field(&mut out, 4, s.as_bytes());
    }
    for ts in timeseries {
        bytes_field(&mut out, 5, &ts);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::Float64Type;

    fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> SeriesSamples {
        (
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            samples.to_vec(),
        )
    }

    const NOW: i64 = 1_767_225_600_000;

    fn limits() -> Arc<Limits> {
        Arc::new(Limits::default())
    }

    #[test]
    fn valid_series_become_rows_and_stale_markers_keep_their_bits() {
        let stale = f64::from_bits(crate::model::STALE_NAN_BITS);
        let body = encode_write_request(&[
            series(
                &[("__name__", "up"), ("job", "api"), ("instance", "a:1")],
                &[(NOW, 1.0), (NOW + 15_000, stale)],
            ),
            series(&[("job", "db"), ("__name__", "up")], &[(NOW, 0.0)]),
        ]);
        let d = decode_write_request(&body, &limits(), NOW).unwrap();
        assert!(d.discards.is_empty(), "{:?}", d.discards);
        assert_eq!(d.cost, 3.0);
        let b = &d.batches[0];
        let canonical = crate::model::normalize::normalize(Signal::Samples, b).unwrap();
        assert_eq!(&canonical, b, "the decoder's batches are canonical");
        let values = b.column(3).as_primitive::<Float64Type>();
        assert_eq!(values.value(1).to_bits(), stale.to_bits());
    }

    #[test]
    fn invalid_series_and_samples_are_discarded_with_reasons() {
        let body = encode_write_request(&[
            series(&[("job", "no-name")], &[(NOW, 1.0)]),
            series(&[("__name__", "1bad")], &[(NOW, 1.0)]),
            series(&[("__name__", "ok"), ("a", "1"), ("a", "2")], &[(NOW, 1.0)]),
            series(
                &[("__name__", "ok")],
                &[
                    (NOW - 30 * 86_400_000, 1.0),
                    (NOW + 86_400_000, 1.0),
                    (NOW, 5.0),
                ],
            ),
        ]);
        let d = decode_write_request(&body, &limits(), NOW).unwrap();
        let reasons = d.discards.counts();
        assert_eq!(
            reasons,
            vec![
                ("duplicate_label_names", 1),
                ("metric_name_invalid", 1),
                ("missing_metric_name", 1),
                ("sample_too_far_in_future", 1),
                ("sample_too_old", 1),
            ]
        );
        assert_eq!(d.rows(), 1);
        assert!(
            d.discards.first().unwrap().contains("__name__"),
            "{:?}",
            d.discards.first()
        );
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(decode_write_request(&[0x0a, 0xff, 0xff, 0x01], &limits(), NOW).is_err());
        assert!(decode_write_request(b"not protobuf at all", &limits(), NOW).is_err());
    }

    fn rows(d: &Decoded) -> Vec<String> {
        let b = &d.batches[0];
        let metric = b.column(1).as_string::<i32>();
        let value = b.column(3).as_primitive::<Float64Type>();
        let labels = b.column(2).as_map();
        (0..b.num_rows())
            .map(|i| {
                format!(
                    "{}{:?} {}",
                    metric.value(i),
                    crate::model::labels::map_row(labels, i),
                    value.value(i)
                )
            })
            .collect()
    }

    #[test]
    fn v2_decodes_like_v1() {
        let request = vec![
            series(
                &[("__name__", "up"), ("job", "api"), ("instance", "a:1")],
                &[(NOW - 15_000, 1.0), (NOW, 0.0)],
            ),
            series(
                &[("job", "api"), ("__name__", "http_requests_total")],
                &[(NOW, 7.5)],
            ),
            series(&[("job", "api")], &[(NOW, 1.0)]),
        ];
        let v1 = decode_write_request(&encode_write_request(&request), &limits(), NOW).unwrap();
        let v2 =
            decode_write_request_v2(&encode_write_request_v2(&request), &Limits::default(), NOW)
                .unwrap();
        assert_eq!(rows(&v1), rows(&v2));
        assert_eq!(v2.rows(), 3);
        assert_eq!(v2.discards.counts(), vec![("missing_metric_name", 1)]);
        assert_eq!(v1.discards.counts(), v2.discards.counts());
    }

    #[test]
    fn v2_symbol_errors() {
        use crate::ingest::protobuf::{put_bytes_field, put_varint};
        // A reference past the symbol table is a malformed request.
        let mut body = Vec::new();
        put_bytes_field(&mut body, 4, b"");
        put_bytes_field(&mut body, 4, b"__name__");
        let mut refs = Vec::new();
        put_varint(&mut refs, 1);
        put_varint(&mut refs, 9);
        let mut ts = Vec::new();
        put_bytes_field(&mut ts, 1, &refs);
        put_bytes_field(&mut body, 5, &ts);
        let e = decode_write_request_v2(&body, &Limits::default(), NOW).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(
            e.message.contains("symbol 9") && e.message.contains("2 symbols"),
            "{}",
            e.message
        );

        // An odd number of references cannot be name/value pairs.
        let mut body = Vec::new();
        put_bytes_field(&mut body, 4, b"");
        let mut ts = Vec::new();
        put_bytes_field(&mut ts, 1, &[0]);
        put_bytes_field(&mut body, 5, &ts);
        let e = decode_write_request_v2(&body, &Limits::default(), NOW).unwrap_err();
        assert!(e.message.contains("pairs"), "{}", e.message);

        // A symbol that is not UTF-8 only invalidates the series using it.
        let mut body = encode_write_request_v2(&[
            series(&[("__name__", "ok")], &[(NOW, 1.0)]),
            series(&[("__name__", "bad")], &[(NOW, 2.0)]),
        ]);
        let at = body.windows(3).position(|w| w == b"bad").unwrap();
        body[at] = 0xff;
        let d = decode_write_request_v2(&body, &Limits::default(), NOW).unwrap();
        assert_eq!(d.rows(), 1);
        assert_eq!(d.discards.counts(), vec![("label_invalid", 1)]);
    }

    #[test]
    fn a_warm_series_cache_decodes_like_a_cold_one() {
        let limits = limits();
        let cache = SeriesCache::default();
        let request = |t: i64| {
            encode_write_request(&[
                series(&[("__name__", "up"), ("job", "api")], &[(t, 1.0)]),
                series(&[("job", "db"), ("__name__", "up")], &[(t, 0.0)]),
                series(&[("__name__", "1bad")], &[(t, 1.0)]),
            ])
        };
        let cold = decode_write_request(&request(NOW), &limits, NOW).unwrap();
        let first = decode_write_request_cached(&request(NOW), &limits, NOW, &cache).unwrap();
        assert_eq!(cache.len(), 2, "only the valid series are kept");
        let warm = decode_write_request_cached(&request(NOW), &limits, NOW, &cache).unwrap();
        for d in [&first, &warm] {
            assert_eq!(d.batches, cold.batches);
            assert_eq!(d.discards, cold.discards);
        }
        // New samples of known series; one too old for the time window.
        let later =
            decode_write_request_cached(&request(NOW + 15_000), &limits, NOW, &cache).unwrap();
        assert_eq!(
            rows(&later),
            vec![r#"up[("job", "api")] 1"#, r#"up[("job", "db")] 0"#]
        );
        let old = NOW - 30 * 86_400_000;
        let stale = decode_write_request_cached(&request(old), &limits, NOW, &cache).unwrap();
        assert_eq!(stale.rows(), 0);
        assert_eq!(
            stale.discards.counts(),
            vec![("metric_name_invalid", 1), ("sample_too_old", 2)]
        );
        assert!(
            stale.discards.first().unwrap().contains("job=\"api\""),
            "{:?}",
            stale.discards.first()
        );
    }

    #[test]
    fn new_limits_are_checked_again() {
        let cache = SeriesCache::default();
        let body = encode_write_request(&[series(
            &[("__name__", "up"), ("job", "a-long-job-name")],
            &[(NOW, 1.0)],
        )]);
        let d = decode_write_request_cached(&body, &limits(), NOW, &cache).unwrap();
        assert_eq!(d.rows(), 1);
        let strict = Arc::new(Limits {
            max_label_value_length: 4,
            ..Limits::default()
        });
        let d = decode_write_request_cached(&body, &strict, NOW, &cache).unwrap();
        assert_eq!(d.rows(), 0);
        assert_eq!(d.discards.counts(), vec![("label_value_too_long", 1)]);
        assert!(
            cache.is_empty(),
            "series valid under other limits are forgotten"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any bytes decode to a request or a clean error — never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = decode_write_request(&bytes, &limits(), NOW);
            let _ = decode_write_request_v2(&bytes, &Limits::default(), NOW);
        }

        /// Well-formed requests with arbitrary names and values are either
        /// written or discarded with a reason; rows + discards = samples sent.
        #[test]
        fn every_sample_is_written_or_counted(
            series in proptest::collection::vec(
                (
                    proptest::collection::vec(("[a-z_:]{0,6}", "\\PC{0,8}"), 0..5),
                    proptest::collection::vec((-1_000_000_000i64..1_000_000_000i64, proptest::prelude::any::<f64>()), 0..4),
                ),
                0..8,
            )
        ) {
            let encoded: Vec<SeriesSamples> = series
                .iter()
                .map(|(l, s)| (l.clone(), s.iter().map(|(t, v)| (NOW + t, *v)).collect()))
                .collect();
            let sent: u64 = encoded.iter().map(|(_, s)| s.len() as u64).sum();
            let d = decode_write_request(&encode_write_request(&encoded), &limits(), NOW).unwrap();
            proptest::prop_assert_eq!(d.rows() + d.discards.total(), sent);
            // Twice through one cache: the second time known series are not
            // decoded again, with the same result.
            let (limits, cache) = (limits(), SeriesCache::default());
            for _ in 0..2 {
                let warm = decode_write_request_cached(&encode_write_request(&encoded), &limits, NOW, &cache).unwrap();
                proptest::prop_assert_eq!(&warm.batches, &d.batches);
                proptest::prop_assert_eq!(&warm.discards, &d.discards);
            }
            let d2 = decode_write_request_v2(&encode_write_request_v2(&encoded), &Limits::default(), NOW).unwrap();
            proptest::prop_assert_eq!(d2.rows(), d.rows());
            proptest::prop_assert_eq!(d2.discards.counts(), d.discards.counts());
        }
    }
}
