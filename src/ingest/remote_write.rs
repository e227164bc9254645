//! Prometheus remote write 1.0 (`prometheus.WriteRequest`, after snappy):
//! each time series is validated (labels, metric name, limits, timestamps)
//! and its samples appended to a canonical `samples` batch. Invalid series
//! and samples are counted as discards; the rest is kept. Stale markers
//! (Prometheus' special NaN) pass through bit for bit. Exemplars and
//! metadata are ignored; native histograms are refused (counted).

use super::distributor::{Decoded, Discards};
use super::limits::Limits;
use super::protobuf::{Reader, Value, as_i64, as_str};
use super::validate::{DecodeError, check_labels, check_time, render_labels};
use crate::model::Signal;
use crate::model::builders::SamplesBuilder;

/// Series per output batch (bounds batch size for huge requests).
const ROWS_PER_BATCH: usize = 64 * 1024;

/// Decodes one uncompressed `WriteRequest`.
pub fn decode_write_request(
    body: &[u8],
    limits: &Limits,
    now_ms: i64,
) -> Result<Decoded, DecodeError> {
    let mut request = Reader::new(body);
    let mut builder = SamplesBuilder::new();
    let mut batches = Vec::new();
    let mut discards = Discards::default();
    let mut labels: Vec<(&str, &str)> = Vec::with_capacity(16);
    let mut samples: Vec<(i64, f64)> = Vec::with_capacity(8);
    let mut native_histograms = 0u64;
    while let Some((field, value)) = request.next_field()? {
        let (1, Value::Bytes(series_bytes)) = (field, value) else {
            continue; // metadata (3) and unknown fields
        };
        labels.clear();
        samples.clear();
        let mut histograms = 0u64;
        let mut bad_utf8: Option<String> = None;
        let mut series = request.nested(series_bytes);
        while let Some((field, value)) = series.next_field()? {
            match (field, value) {
                (1, Value::Bytes(label_bytes)) => {
                    let mut label = series.nested(label_bytes);
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
                (2, Value::Bytes(sample_bytes)) => {
                    let mut sample = series.nested(sample_bytes);
                    let (mut v, mut t) = (0.0f64, 0i64);
                    while let Some((f, val)) = sample.next_field()? {
                        match (f, val) {
                            (1, Value::Fixed64(bits)) => v = f64::from_bits(bits),
                            (2, Value::Varint(x)) => t = as_i64(x),
                            _ => {}
                        }
                    }
                    samples.push((t, v));
                }
                (4, Value::Bytes(_)) => histograms += 1,
                _ => {} // exemplars (3)
            }
        }
        native_histograms += histograms;
        if samples.is_empty() {
            continue;
        }
        let n = samples.len() as u64;
        if let Some(e) = bad_utf8 {
            discards.add("label_invalid", n, || {
                format!("{e} in series {}", render_labels(&labels))
            });
            continue;
        }
        if let Err(invalid) = check_labels(&labels, limits) {
            discards.add(invalid.reason, n, || invalid.message);
            continue;
        }
        let Some(metric) = labels
            .iter()
            .find(|(k, _)| *k == "__name__")
            .map(|(_, v)| *v)
        else {
            discards.add("missing_metric_name", n, || {
                format!("series {} has no __name__ label", render_labels(&labels))
            });
            continue;
        };
        labels.retain(|(k, _)| *k != "__name__");
        labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
        // Samples must be in time order within a series; outside the window they are refused.
        samples.retain(
            |&(t, _)| match check_time(Signal::Samples, t, limits, now_ms) {
                Ok(()) => true,
                Err(invalid) => {
                    discards.add(invalid.reason, 1, || {
                        format!(
                            "{} for series {}{}",
                            invalid.message,
                            metric,
                            render_labels(&labels)
                        )
                    });
                    false
                }
            },
        );
        builder.push_series(metric, &labels, &samples);
        if builder.len() >= ROWS_PER_BATCH {
            batches.push(builder.finish());
        }
    }
    if native_histograms > 0 {
        discards.add("native_histogram_unsupported", native_histograms, || {
            "native histograms are not supported yet; send classic histograms".to_string()
        });
    }
    if !builder.is_empty() {
        batches.push(builder.finish());
    }
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    Ok(Decoded {
        signal: Signal::Samples,
        batches,
        discards,
        cost: rows as f64,
    })
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

    #[test]
    fn valid_series_become_rows_and_stale_markers_keep_their_bits() {
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let body = encode_write_request(&[
            series(
                &[("__name__", "up"), ("job", "api"), ("instance", "a:1")],
                &[(NOW, 1.0), (NOW + 15_000, stale)],
            ),
            series(&[("job", "db"), ("__name__", "up")], &[(NOW, 0.0)]),
        ]);
        let d = decode_write_request(&body, &Limits::default(), NOW).unwrap();
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
        let d = decode_write_request(&body, &Limits::default(), NOW).unwrap();
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
        assert!(decode_write_request(&[0x0a, 0xff, 0xff, 0x01], &Limits::default(), NOW).is_err());
        assert!(decode_write_request(b"not protobuf at all", &Limits::default(), NOW).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any bytes decode to a request or a clean error — never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = decode_write_request(&bytes, &Limits::default(), NOW);
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
            let body = encode_write_request(&encoded);
            let d = decode_write_request(&body, &Limits::default(), NOW).unwrap();
            let sent: u64 = encoded.iter().map(|(_, s)| s.len() as u64).sum();
            proptest::prop_assert_eq!(d.rows() + d.discards.total(), sent);
        }
    }
}
