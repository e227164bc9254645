//! OTLP (OpenTelemetry protocol) ingest: already-decoded
//! `Export{Trace,Logs,Metrics}ServiceRequest` messages — from OTLP/gRPC, or
//! OTLP/HTTP in protobuf or JSON — are turned into canonical `spans`, `logs`
//! and `samples` rows ([`Decoded`]) for the distributor.
//!
//! * [`traces`]: one `spans` row per span (ids as lowercase hex, kind and
//!   status as their canonical words, events, links, scope).
//! * [`logs`]: one `logs` row per log record, mapped as Loki's OTLP endpoint
//!   maps them (a fixed list of resource attributes become stream labels,
//!   everything else structured metadata).
//! * [`metrics`]: Prometheus samples, named and labelled as Prometheus' own
//!   OTLP receiver does with its default `UnderscoreEscapingWithSuffixes`
//!   translation strategy.
//!
//! This module holds what the three share: rendering OTLP `AnyValue`s as
//! text, ids as hex, and Prometheus label-name sanitising. Converters never
//! fail as a whole: items that cannot be stored are counted in
//! [`Discards`](super::distributor::Discards) with a reason and a message
//! naming the item.

pub mod logs;
pub mod metrics;
pub mod traces;

pub use logs::decode_logs;
pub use metrics::decode_metrics;
pub use traces::decode_traces;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// Rows per output batch (bounds batch size for huge requests).
pub(crate) const ROWS_PER_BATCH: usize = 64 * 1024;

/// `service.name` of a resource when it has none (the OpenTelemetry SDK default).
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0x0f) as usize] as char);
    }
    out
}

/// An OTLP id (trace id: 16 bytes, span id: 8 bytes) as lowercase hex.
/// `Ok(None)` when absent (empty), an error saying what is wrong when it has
/// the wrong length or is all zeros (both invalid per the W3C trace context).
pub fn id_hex(bytes: &[u8], len: usize, what: &str) -> Result<Option<String>, String> {
    if bytes.is_empty() {
        return Ok(None);
    }
    if bytes.len() != len {
        return Err(format!(
            "{what} is {} bytes long, it must be {len} bytes ({} hex characters)",
            bytes.len(),
            len * 2
        ));
    }
    if bytes.iter().all(|b| *b == 0) {
        return Err(format!("{what} is all zeros, which is not a valid id"));
    }
    Ok(Some(hex(bytes)))
}

/// Standard base64 with padding (how OTLP renders `bytesValue`).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A double as OpenTelemetry's collector renders it (`strconv.FormatFloat(v, 'f', -1, 64)`):
/// shortest round-tripping decimal, no exponent; `NaN`, `+Inf`, `-Inf`.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// An `AnyValue` as attribute text: strings as they are, numbers and
/// booleans as text, bytes as base64, arrays and key/value lists as JSON.
pub fn any_value_text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => format_float(*d),
        Some(Value::BytesValue(b)) => base64(b),
        Some(Value::StringValueStrindex(i)) => i.to_string(),
        Some(v @ (Value::ArrayValue(_) | Value::KvlistValue(_))) => {
            any_value_json(Some(v)).to_string()
        }
    }
}

/// An `AnyValue` as JSON (for arrays and key/value lists rendered as text).
fn any_value_json(value: Option<&Value>) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        None => J::Null,
        Some(Value::StringValue(s)) => J::String(s.clone()),
        Some(Value::BoolValue(b)) => J::Bool(*b),
        Some(Value::IntValue(i)) => J::from(*i),
        Some(Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or_else(|| J::String(format_float(*d)), J::Number)
        }
        Some(Value::BytesValue(b)) => J::String(base64(b)),
        Some(Value::StringValueStrindex(i)) => J::from(*i),
        Some(Value::ArrayValue(a)) => J::Array(
            a.values
                .iter()
                .map(|v| any_value_json(v.value.as_ref()))
                .collect(),
        ),
        Some(Value::KvlistValue(kv)) => J::Object(
            kv.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        any_value_json(kv.value.as_ref().and_then(|v| v.value.as_ref())),
                    )
                })
                .collect(),
        ),
    }
}

/// Attributes as canonical `(key, text)` pairs: sorted by key, the last of
/// repeated keys wins (the span/resource attribute columns).
pub fn attributes(kvs: &[KeyValue]) -> Vec<(String, String)> {
    crate::model::builders::canonical(
        kvs.iter()
            .map(|kv| (kv.key.clone(), any_value_text(kv.value.as_ref())))
            .collect(),
    )
}

/// The attributes of an optional resource.
pub fn resource_attributes(resource: Option<&Resource>) -> &[KeyValue] {
    resource.map_or(&[], |r| r.attributes.as_slice())
}

/// The text of attribute `key`, if present.
pub fn attribute<'a>(kvs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    kvs.iter()
        .rev()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

/// `service.name` of a resource, or `unknown_service`.
pub fn service_name(kvs: &[KeyValue]) -> String {
    match attribute(kvs, "service.name").map(|v| any_value_text(Some(v))) {
        Some(s) if !s.is_empty() => s,
        _ => UNKNOWN_SERVICE.to_string(),
    }
}

/// Nanoseconds since the epoch as `i64` (OTLP sends `u64`; times past year
/// 2262 saturate and are then refused by the time checks).
pub fn ns(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// An OTLP attribute name as a Prometheus label name, as Prometheus'
/// `otlptranslator.LabelNamer` (UTF-8 not allowed) builds it: every
/// character outside `[a-zA-Z0-9_]` becomes `_`; a leading digit gets `key_`
/// in front, a leading single `_` gets `key`. `None` when nothing usable is
/// left (an empty name, or one of only underscores that was changed).
pub fn label_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    } else if out.starts_with('_') && !out.starts_with("__") {
        out.insert_str(0, "key");
    }
    if out != name && out.bytes().all(|b| b == b'_') {
        return None;
    }
    Some(out)
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Builders for OTLP test messages.
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    pub const NOW_MS: i64 = 1_767_225_600_000;
    pub const NOW_NS: u64 = NOW_MS as u64 * 1_000_000;

    pub fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    pub fn s(key: &str, value: &str) -> KeyValue {
        kv(key, Value::StringValue(value.into()))
    }

    pub fn resource(kvs: Vec<KeyValue>) -> Option<Resource> {
        Some(Resource {
            attributes: kvs,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    #[test]
    fn values_render_as_text() {
        let text = |v: Value| any_value_text(Some(&AnyValue { value: Some(v) }));
        assert_eq!(text(Value::StringValue("x".into())), "x");
        assert_eq!(text(Value::IntValue(-3)), "-3");
        assert_eq!(text(Value::DoubleValue(0.25)), "0.25");
        assert_eq!(text(Value::DoubleValue(1.0)), "1");
        assert_eq!(text(Value::BoolValue(true)), "true");
        assert_eq!(text(Value::BytesValue(b"hello".to_vec())), "aGVsbG8=");
        let array = Value::ArrayValue(ArrayValue {
            values: vec![
                AnyValue {
                    value: Some(Value::IntValue(1)),
                },
                AnyValue {
                    value: Some(Value::StringValue("a".into())),
                },
            ],
        });
        assert_eq!(text(array), r#"[1,"a"]"#);
        let kvlist = Value::KvlistValue(KeyValueList {
            values: vec![s("k", "v"), kv("n", Value::DoubleValue(f64::NAN))],
        });
        assert_eq!(text(kvlist), r#"{"k":"v","n":"NaN"}"#);
        assert_eq!(any_value_text(None), "");
    }

    #[test]
    fn base64_and_hex() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(hex(&[0x0a, 0xff]), "0aff");
        assert_eq!(
            id_hex(&[1; 8], 8, "span id").unwrap().as_deref(),
            Some("0101010101010101")
        );
        assert_eq!(id_hex(&[], 8, "span id").unwrap(), None);
        assert!(
            id_hex(&[0; 8], 8, "span id")
                .unwrap_err()
                .contains("all zeros")
        );
        assert!(
            id_hex(&[1; 7], 8, "span id")
                .unwrap_err()
                .contains("7 bytes")
        );
    }

    #[test]
    fn label_names_follow_prometheus_otlp_translation() {
        assert_eq!(label_name("http.method").as_deref(), Some("http_method"));
        assert_eq!(label_name("123invalid").as_deref(), Some("key_123invalid"));
        assert_eq!(label_name("_private").as_deref(), Some("key_private"));
        assert_eq!(label_name("__reserved__").as_deref(), Some("__reserved__"));
        assert_eq!(label_name("k8s.pod.name").as_deref(), Some("k8s_pod_name"));
        assert_eq!(label_name("ünï").as_deref(), Some("key_n_"));
        assert_eq!(label_name(""), None);
        assert_eq!(label_name("..."), None);
    }

    #[test]
    fn service_names() {
        assert_eq!(service_name(&[s("service.name", "cart")]), "cart");
        assert_eq!(service_name(&[s("service.name", "")]), UNKNOWN_SERVICE);
        assert_eq!(service_name(&[]), UNKNOWN_SERVICE);
        assert_eq!(ns(u64::MAX), i64::MAX);
    }
}

/// Fuzzing the OTLP path: valid requests of every signal, encoded, then
/// randomly corrupted (bytes flipped, cut, spliced) and decoded with prost and
/// converted. Whatever prost accepts must convert without a panic, and every
/// item must be either a row or a counted discard.
#[cfg(test)]
mod fuzz {
    use super::test_support::*;
    use super::*;
    use crate::ingest::limits::Limits;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
        ScopeMetrics, Sum, metric::Data, number_data_point,
    };
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};
    use proptest::prelude::*;
    use prost::Message;

    fn resource_kvs() -> Vec<KeyValue> {
        vec![
            s("service.name", "cart"),
            s("service.instance.id", "i-1"),
            kv("retries", Value::IntValue(3)),
        ]
    }

    fn traces() -> Vec<u8> {
        let span = |id: u8| Span {
            trace_id: vec![7; 16],
            span_id: vec![id; 8],
            parent_span_id: if id > 1 { vec![1; 8] } else { vec![] },
            name: format!("op {id}"),
            kind: 2,
            start_time_unix_nano: NOW_NS,
            end_time_unix_nano: NOW_NS + 1_000_000,
            attributes: vec![s("http.method", "GET"), kv("ok", Value::BoolValue(true))],
            events: vec![span::Event {
                time_unix_nano: NOW_NS + 10,
                name: "retry".into(),
                attributes: vec![s("why", "timeout")],
                ..Default::default()
            }],
            links: vec![span::Link {
                trace_id: vec![9; 16],
                span_id: vec![9; 8],
                ..Default::default()
            }],
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: resource(resource_kvs()),
                scope_spans: vec![ScopeSpans {
                    spans: (1..4).map(span).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    fn logs() -> Vec<u8> {
        let record = |i: u64| LogRecord {
            time_unix_nano: NOW_NS + i,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: Some(AnyValue {
                value: Some(Value::StringValue(format!("line {i}"))),
            }),
            attributes: vec![s("user", "u1")],
            trace_id: vec![7; 16],
            span_id: vec![1; 8],
            ..Default::default()
        };
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: resource(resource_kvs()),
                scope_logs: vec![ScopeLogs {
                    log_records: (0..3).map(record).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    fn metrics() -> Vec<u8> {
        let number = |v: f64| NumberDataPoint {
            attributes: vec![s("path", "/")],
            time_unix_nano: NOW_NS,
            value: Some(number_data_point::Value::AsDouble(v)),
            ..Default::default()
        };
        let metric = |name: &str, data: Data| Metric {
            name: name.into(),
            unit: "s".into(),
            data: Some(data),
            ..Default::default()
        };
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: resource(resource_kvs()),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![
                        metric(
                            "requests",
                            Data::Sum(Sum {
                                data_points: vec![number(3.0)],
                                aggregation_temporality: 2,
                                is_monotonic: true,
                            }),
                        ),
                        metric(
                            "queue",
                            Data::Gauge(Gauge {
                                data_points: vec![number(1.5)],
                            }),
                        ),
                        metric(
                            "latency",
                            Data::Histogram(Histogram {
                                data_points: vec![HistogramDataPoint {
                                    time_unix_nano: NOW_NS,
                                    count: 4,
                                    sum: Some(2.0),
                                    bucket_counts: vec![1, 2, 1],
                                    explicit_bounds: vec![0.1, 1.0],
                                    ..Default::default()
                                }],
                                aggregation_temporality: 2,
                            }),
                        ),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    /// Applies `edits` (position, byte) to `seed`, then cuts it at `cut`.
    fn corrupt(seed: &[u8], edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
        let mut bytes = seed.to_vec();
        for &(at, b) in edits {
            let i = at % bytes.len();
            bytes[i] = b;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        bytes
    }

    fn check<R: Message + Default>(
        bytes: &[u8],
        convert: impl Fn(R) -> crate::ingest::distributor::Decoded,
    ) {
        if let Ok(request) = R::decode(bytes) {
            let decoded = convert(request);
            let _ = decoded.rows() + decoded.discards.total();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1500))]

        #[test]
        fn corrupted_requests_never_panic(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
            cut in any::<usize>(),
        ) {
            let limits = Limits::default();
            check::<ExportTraceServiceRequest>(&corrupt(&traces(), &edits, cut), |r| decode_traces(r, &limits, NOW_MS));
            check::<ExportLogsServiceRequest>(&corrupt(&logs(), &edits, cut), |r| decode_logs(r, &limits, NOW_MS));
            check::<ExportMetricsServiceRequest>(&corrupt(&metrics(), &edits, cut), |r| decode_metrics(r, &limits, NOW_MS));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let limits = Limits::default();
            check::<ExportTraceServiceRequest>(&bytes, |r| decode_traces(r, &limits, NOW_MS));
            check::<ExportLogsServiceRequest>(&bytes, |r| decode_logs(r, &limits, NOW_MS));
            check::<ExportMetricsServiceRequest>(&bytes, |r| decode_metrics(r, &limits, NOW_MS));
        }
    }

    #[test]
    fn seeds_convert_fully() {
        let limits = Limits::default();
        let t = decode_traces(
            ExportTraceServiceRequest::decode(&traces()[..]).unwrap(),
            &limits,
            NOW_MS,
        );
        assert_eq!((t.rows(), t.discards.total()), (3, 0));
        let l = decode_logs(
            ExportLogsServiceRequest::decode(&logs()[..]).unwrap(),
            &limits,
            NOW_MS,
        );
        assert_eq!((l.rows(), l.discards.total()), (3, 0));
        let m = decode_metrics(
            ExportMetricsServiceRequest::decode(&metrics()[..]).unwrap(),
            &limits,
            NOW_MS,
        );
        assert!(m.rows() >= 7, "{}", m.rows());
        assert_eq!(m.discards.total(), 0);
    }
}
