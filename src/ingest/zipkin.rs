//! Zipkin v2 JSON spans (`POST /api/v2/spans`): a JSON array of Zipkin
//! spans in, canonical `spans` rows (the OpenTelemetry model) out.
//!
//! The mapping:
//!
//! * `traceId` (1–32 hex digits) → `trace_id`, lower-cased and left-padded
//!   with zeros to 32 digits (so 64-bit Zipkin trace ids join 128-bit ones
//!   the way Zipkin itself pads them); `id` / `parentId` (1–16 hex digits) →
//!   `span_id` / `parent_span_id`, padded to 16; an all-zero `parentId`
//!   means "no parent", an all-zero `traceId` or `id` is invalid;
//! * `kind` `CLIENT`/`SERVER`/`PRODUCER`/`CONSUMER` → `client`/`server`/…,
//!   absent → `unspecified`;
//! * `timestamp` and `duration` (microseconds) → `start_time`, `end_time`;
//! * `localEndpoint.serviceName` → `service` (default `unknown_service`) and
//!   the resource attribute `service.name`;
//! * `tags` → `attributes`, plus `peer.service`, `net.peer.ip` and
//!   `net.peer.port` from `remoteEndpoint` (a tag of the same name wins);
//! * `annotations` → span events named by their `value`;
//! * a tag `error` → `status_code = error` with its value as
//!   `status_message`, else `unset`.
//!
//! Span names and service names are kept as sent (Zipkin itself lower-cases
//! them). Spans with invalid ids, kinds or times are counted as discards and
//! the rest is kept; a body that is not a JSON array of span objects is
//! refused as a whole (400, naming the line and column).

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer;
use serde::de::{self, MapAccess, Visitor};
use serde_json::Number;

use super::distributor::{Decoded, Discards};
use super::limits::Limits;
use super::loki_push::JsonStr;
use super::validate::{DecodeError, Invalid, check_time};
use crate::model::builders::{SpanEvent, SpanRow, SpansBuilder, canonical};
use crate::model::{SPAN_KINDS, Signal};

/// Spans per output batch (bounds batch size for huge requests).
const ROWS_PER_BATCH: usize = 16 * 1024;

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ZipkinSpan<'a> {
    #[serde(borrow)]
    trace_id: Option<JsonStr<'a>>,
    #[serde(borrow)]
    id: Option<JsonStr<'a>>,
    #[serde(borrow)]
    parent_id: Option<JsonStr<'a>>,
    #[serde(borrow)]
    name: Option<JsonStr<'a>>,
    #[serde(borrow)]
    kind: Option<JsonStr<'a>>,
    timestamp: Option<Number>,
    duration: Option<Number>,
    #[serde(borrow)]
    local_endpoint: Option<Endpoint<'a>>,
    #[serde(borrow)]
    remote_endpoint: Option<Endpoint<'a>>,
    #[serde(borrow)]
    tags: Option<Tags<'a>>,
    #[serde(borrow)]
    annotations: Option<Vec<Annotation<'a>>>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint<'a> {
    #[serde(borrow)]
    service_name: Option<JsonStr<'a>>,
    #[serde(borrow)]
    ipv4: Option<JsonStr<'a>>,
    #[serde(borrow)]
    ipv6: Option<JsonStr<'a>>,
    port: Option<i64>,
}

#[derive(serde::Deserialize)]
struct Annotation<'a> {
    timestamp: Number,
    #[serde(borrow)]
    value: JsonStr<'a>,
}

/// Tag values: strings as sent; numbers and booleans (which some tracers
/// send although Zipkin's model has only strings) as their JSON text.
struct Tags<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'de: 'a, 'a> de::Deserialize<'de> for Tags<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TagValue<'a>(Cow<'a, str>);
        impl<'de> de::Deserialize<'de> for TagValue<'de> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = TagValue<'de>;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("a tag value (a string, number or boolean)")
                    }
                    fn visit_borrowed_str<E: de::Error>(
                        self,
                        v: &'de str,
                    ) -> Result<Self::Value, E> {
                        Ok(TagValue(Cow::Borrowed(v)))
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                        Ok(TagValue(Cow::Owned(v.to_string())))
                    }
                    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                        Ok(TagValue(Cow::Owned(v)))
                    }
                    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                        Ok(TagValue(Cow::Borrowed(if v { "true" } else { "false" })))
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                        Ok(TagValue(Cow::Owned(v.to_string())))
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                        Ok(TagValue(Cow::Owned(v.to_string())))
                    }
                    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                        Ok(TagValue(Cow::Owned(v.to_string())))
                    }
                }
                d.deserialize_any(V)
            }
        }
        struct TagsVisitor;
        impl<'de> Visitor<'de> for TagsVisitor {
            type Value = Tags<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of tags")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut tags = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((k, v)) = map.next_entry::<JsonStr<'de>, TagValue<'de>>()? {
                    tags.push((k.0, v.0));
                }
                Ok(Tags(tags))
            }
        }
        d.deserialize_map(TagsVisitor)
    }
}

/// A Zipkin id: 1..=`max` hex digits, not all zeros; lower-cased and
/// left-padded with zeros to `width`.
fn zipkin_id(raw: &str, max: usize, width: usize) -> Result<String, String> {
    if raw.is_empty() {
        return Err("is empty".into());
    }
    if raw.len() > max {
        return Err(format!(
            "{:?} has {} characters, more than {max}",
            shorten(raw),
            raw.len()
        ));
    }
    if let Some(c) = raw.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!("{raw:?} contains {c:?}, which is not a hex digit"));
    }
    if raw.bytes().all(|b| b == b'0') {
        return Err(format!("{raw:?} is all zeros"));
    }
    let mut id = String::with_capacity(width);
    id.extend(std::iter::repeat_n('0', width - raw.len()));
    id.push_str(&raw.to_ascii_lowercase());
    Ok(id)
}

fn shorten(s: &str) -> String {
    s.chars().take(40).collect()
}

/// A JSON number of microseconds as an integer (fractions are truncated).
fn micros(n: &Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.is_finite() && f.abs() < 9.0e18)
            .map(|f| f as i64)
    })
}

/// Decodes a Zipkin v2 JSON span list (already decompressed).
pub fn decode_spans_json(
    body: &[u8],
    limits: &Limits,
    now_ms: i64,
) -> Result<Decoded, DecodeError> {
    let spans: Vec<ZipkinSpan<'_>> = serde_json::from_slice(body).map_err(|e| {
        DecodeError::bad_request(format!(
            "invalid Zipkin v2 JSON (expected an array of spans): {e}"
        ))
    })?;
    let mut builder = SpansBuilder::new();
    let mut batches = Vec::new();
    let mut discards = Discards::default();
    for (i, span) in spans.into_iter().enumerate() {
        match convert(span, limits, now_ms) {
            Ok(row) => {
                builder.push(row);
                if builder.len() >= ROWS_PER_BATCH {
                    batches.push(builder.finish());
                }
            }
            Err(invalid) => discards.add(invalid.reason, 1, || {
                format!("spans[{i}]: {}", invalid.message)
            }),
        }
    }
    if !builder.is_empty() {
        batches.push(builder.finish());
    }
    Ok(Decoded::costed_by_rows(Signal::Spans, batches, discards))
}

fn convert(span: ZipkinSpan<'_>, limits: &Limits, now_ms: i64) -> Result<SpanRow, Invalid> {
    fn id_of(
        field: &str,
        raw: &Option<JsonStr<'_>>,
        max: usize,
        width: usize,
        reason: &'static str,
    ) -> Result<String, Invalid> {
        match raw {
            None => Err(Invalid::new(reason, format!("{field} is missing"))),
            Some(JsonStr(raw)) => zipkin_id(raw, max, width)
                .map_err(|why| Invalid::new(reason, format!("{field} {why}"))),
        }
    }
    let trace_id = id_of("traceId", &span.trace_id, 32, 32, "invalid_trace_id")?;
    let span_id = id_of("id", &span.id, 16, 16, "invalid_span_id")?;
    let parent_span_id = match &span.parent_id {
        Some(JsonStr(p)) if !p.is_empty() && p.bytes().all(|b| b == b'0') => None,
        Some(JsonStr(p)) if p.is_empty() => None,
        None => None,
        parent => Some(id_of("parentId", parent, 16, 16, "invalid_parent_span_id")?),
    };
    let at = |what: String| format!("{what} (traceId {trace_id}, id {span_id})");

    let kind = match &span.kind {
        None => "unspecified",
        Some(JsonStr(k)) => {
            let lower = k.to_ascii_lowercase();
            SPAN_KINDS
                .iter()
                .copied()
                .find(|known| *known == lower)
                .ok_or_else(|| {
                    Invalid::new(
                        "invalid_span_kind",
                        at(format!(
                            "kind {:?} is not one of CLIENT, SERVER, PRODUCER, CONSUMER",
                            shorten(k)
                        )),
                    )
                })?
        }
    };

    let start_us = match &span.timestamp {
        None => {
            return Err(Invalid::new(
                "invalid_timestamp",
                at("the span has no timestamp".into()),
            ));
        }
        Some(n) => micros(n).filter(|&t| t >= 0).ok_or_else(|| {
            Invalid::new(
                "invalid_timestamp",
                at(format!(
                    "timestamp {n} is not a count of microseconds since the epoch"
                )),
            )
        })?,
    };
    check_time(Signal::Spans, start_us / 1000, limits, now_ms)
        .map_err(|invalid| Invalid::new(invalid.reason, at(invalid.message)))?;
    // Within the accepted window, microseconds fit in nanoseconds.
    let start_ns = start_us.checked_mul(1000).ok_or_else(|| {
        Invalid::new(
            "invalid_timestamp",
            at(format!("timestamp {start_us} is out of range")),
        )
    })?;
    let duration_us = match &span.duration {
        None => 0,
        Some(n) => micros(n).filter(|&d| d >= 0).ok_or_else(|| {
            Invalid::new(
                "invalid_duration",
                at(format!("duration {n} is not a count of microseconds")),
            )
        })?,
    };
    let end_ns = duration_us
        .checked_mul(1000)
        .and_then(|d| start_ns.checked_add(d))
        .ok_or_else(|| {
            Invalid::new(
                "invalid_duration",
                at(format!("duration {duration_us} µs is out of range")),
            )
        })?;

    let mut events = Vec::new();
    for a in span.annotations.unwrap_or_default() {
        let time_ns = micros(&a.timestamp)
            .and_then(|t| t.checked_mul(1000))
            .ok_or_else(|| {
                Invalid::new(
                    "invalid_timestamp",
                    at(format!(
                        "annotation {:?} has timestamp {}, not a count of microseconds",
                        shorten(&a.value.0),
                        a.timestamp
                    )),
                )
            })?;
        events.push(SpanEvent {
            time_ns,
            name: a.value.0.into_owned(),
            attributes: Vec::new(),
        });
    }

    let service = span
        .local_endpoint
        .as_ref()
        .and_then(|e| e.service_name.as_ref())
        .map(|s| s.0.as_ref())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown_service")
        .to_string();

    let mut attributes: Vec<(String, String)> = Vec::new();
    if let Some(remote) = &span.remote_endpoint {
        let text = |v: &Option<JsonStr<'_>>| {
            v.as_ref()
                .map(|s| s.0.to_string())
                .filter(|s| !s.is_empty())
        };
        if let Some(peer) = text(&remote.service_name) {
            attributes.push(("peer.service".into(), peer));
        }
        if let Some(ip) = text(&remote.ipv4).or_else(|| text(&remote.ipv6)) {
            attributes.push(("net.peer.ip".into(), ip));
        }
        if let Some(port) = remote.port.filter(|&p| p > 0) {
            attributes.push(("net.peer.port".into(), port.to_string()));
        }
    }
    let mut status_message = None;
    for (k, v) in span.tags.map(|t| t.0).unwrap_or_default() {
        if k == "error" {
            status_message = Some(v.to_string());
        }
        attributes.push((k.into_owned(), v.into_owned()));
    }
    let status_code = if status_message.is_some() {
        "error"
    } else {
        "unset"
    };

    Ok(SpanRow {
        trace_id,
        span_id,
        parent_span_id,
        trace_state: None,
        name: span.name.map(|n| n.0.into_owned()).unwrap_or_default(),
        kind,
        resource_attributes: vec![("service.name".into(), service.clone())],
        service,
        start_ns,
        end_ns,
        status_code,
        status_message: status_message.filter(|m| !m.is_empty()),
        attributes: canonical(attributes),
        scope_name: None,
        scope_version: None,
        events,
        links: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::labels::map_row;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int64Type, TimestampNanosecondType};

    const NOW: i64 = 1_767_225_600_000;
    const NOW_US: i64 = NOW * 1000;

    fn reasons(d: &Decoded) -> Vec<(&'static str, u64)> {
        d.discards.counts()
    }

    #[test]
    fn zipkin_client_and_server_spans_map_to_the_otel_model() {
        let body = format!(
            r#"[
              {{"traceId":"5AF7183FB1D4CF5F","id":"6b221d5bc9e6496c","name":"get /api","kind":"CLIENT",
                "timestamp":{NOW_US},"duration":207000,
                "localEndpoint":{{"serviceName":"frontend","ipv4":"127.0.0.1"}},
                "remoteEndpoint":{{"serviceName":"backend","ipv4":"192.168.99.101","port":9000}},
                "tags":{{"http.method":"GET","http.path":"/api","retries":2,"cached":false}},
                "annotations":[{{"timestamp":{},"value":"ws"}}]}},
              {{"traceId":"5af7183fb1d4cf5f","id":"352bff9a74ca9ad2","parentId":"6b221d5bc9e6496c","name":"get /api",
                "kind":"SERVER","timestamp":{},"duration":50,"shared":true,"debug":false,
                "localEndpoint":{{"serviceName":"backend"}},"tags":{{"error":"boom"}}}},
              {{"traceId":"463ac35c9f6413ad48485a3953bb6124","id":"a","parentId":"0000000000000000","timestamp":{NOW_US}}}
            ]"#,
            NOW_US + 10,
            NOW_US + 100
        );
        let d = decode_spans_json(body.as_bytes(), &Limits::default(), NOW).unwrap();
        assert!(d.discards.is_empty(), "{:?}", d.discards);
        assert_eq!((d.rows(), d.cost), (3, 3.0));
        let b = &d.batches[0];
        assert_eq!(
            &crate::model::normalize::normalize(Signal::Spans, b).unwrap(),
            b,
            "canonical"
        );
        let text = |name: &str| b.column_by_name(name).unwrap().as_string::<i32>().clone();
        assert_eq!(
            text("trace_id").value(0),
            "00000000000000005af7183fb1d4cf5f"
        );
        assert_eq!(
            text("trace_id").value(2),
            "463ac35c9f6413ad48485a3953bb6124"
        );
        assert_eq!(text("span_id").value(2), "000000000000000a");
        assert!(text("parent_span_id").is_null(0) && text("parent_span_id").is_null(2));
        assert_eq!(text("parent_span_id").value(1), "6b221d5bc9e6496c");
        assert_eq!(
            (
                text("kind").value(0),
                text("kind").value(1),
                text("kind").value(2)
            ),
            ("client", "server", "unspecified")
        );
        assert_eq!(
            (text("service").value(0), text("service").value(2)),
            ("frontend", "unknown_service")
        );
        assert_eq!(
            (text("name").value(0), text("name").value(2)),
            ("get /api", "")
        );
        assert_eq!(
            (text("status_code").value(0), text("status_code").value(1)),
            ("unset", "error")
        );
        assert_eq!(text("status_message").value(1), "boom");
        let start = b
            .column_by_name("start_time")
            .unwrap()
            .as_primitive::<TimestampNanosecondType>();
        assert_eq!(start.value(0), NOW_US * 1000);
        let duration = b
            .column_by_name("duration_ns")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(
            (duration.value(0), duration.value(1)),
            (207_000_000, 50_000)
        );
        let attrs = b.column_by_name("attributes").unwrap().as_map();
        assert_eq!(
            map_row(attrs, 0),
            vec![
                ("cached", "false"),
                ("http.method", "GET"),
                ("http.path", "/api"),
                ("net.peer.ip", "192.168.99.101"),
                ("net.peer.port", "9000"),
                ("peer.service", "backend"),
                ("retries", "2"),
            ]
        );
        let resource = b.column_by_name("resource_attributes").unwrap().as_map();
        assert_eq!(map_row(resource, 1), vec![("service.name", "backend")]);
        let events = b.column_by_name("events").unwrap().as_list::<i32>();
        assert!(!events.is_null(0) && events.is_null(1));
        let first = events.value(0);
        let first = first.as_struct();
        assert_eq!(first.column(1).as_string::<i32>().value(0), "ws");
        assert_eq!(
            first
                .column(0)
                .as_primitive::<TimestampNanosecondType>()
                .value(0),
            (NOW_US + 10) * 1000
        );
    }

    #[test]
    fn zipkin_invalid_spans_are_discarded_with_reasons() {
        let span = |trace: &str, id: &str, extra: &str| {
            format!(r#"{{"traceId":"{trace}","id":"{id}","timestamp":{NOW_US}{extra}}}"#)
        };
        let body = format!(
            "[{}]",
            [
                r#"{"id":"2","timestamp":1}"#.to_string(),
                span("xyz", "2", ""),
                span("000", "2", ""),
                span("123456789012345678901234567890123", "2", ""),
                span("1", "", ""),
                span("1", "12345678901234567", ""),
                span("1", "2", r#","parentId":"g""#),
                span("1", "2", r#","kind":"SIDEWAYS""#),
                r#"{"traceId":"1","id":"2"}"#.to_string(),
                span("1", "2", r#","duration":-5"#),
                r#"{"traceId":"1","id":"2","timestamp":0}"#.to_string(),
                format!(
                    r#"{{"traceId":"1","id":"2","timestamp":{}}}"#,
                    NOW_US + 86_400_000_000
                ),
                r#"{"traceId":"1","id":"2","timestamp":-1}"#.to_string(),
                span("1", "2", r#","name":"kept""#),
            ]
            .join(",")
        );
        let d = decode_spans_json(body.as_bytes(), &Limits::default(), NOW).unwrap();
        assert_eq!(
            reasons(&d),
            vec![
                ("invalid_duration", 1),
                ("invalid_parent_span_id", 1),
                ("invalid_span_id", 2),
                ("invalid_span_kind", 1),
                ("invalid_timestamp", 2),
                ("invalid_trace_id", 4),
                ("span_too_far_in_future", 1),
                ("span_too_old", 1),
            ]
        );
        assert_eq!(d.rows(), 1);
        assert_eq!(d.discards.first(), Some("spans[0]: traceId is missing"));
        let body = format!("[{}]", span("12x4", "2", ""));
        let d = decode_spans_json(body.as_bytes(), &Limits::default(), NOW).unwrap();
        assert_eq!(
            d.discards.first(),
            Some(r#"spans[0]: traceId "12x4" contains 'x', which is not a hex digit"#)
        );
        let body = format!("[{}]", span("1", "2", r#","kind":"SIDEWAYS""#));
        let d = decode_spans_json(body.as_bytes(), &Limits::default(), NOW).unwrap();
        assert!(
            d.discards
                .first()
                .unwrap()
                .contains("(traceId 00000000000000000000000000000001, id 0000000000000002)"),
            "{:?}",
            d.discards.first()
        );
    }

    #[test]
    fn zipkin_malformed_bodies_are_request_errors() {
        for (body, expect) in [
            (r#"{"traceId":"1"}"#, "expected a sequence"),
            (r#"[{"traceId":1}]"#, "expected a string"),
            (r#"[{"traceId":"1","tags":{"a":{}}}]"#, "tag value"),
            (
                r#"[{"annotations":[{"value":"x"}]}]"#,
                "missing field `timestamp`",
            ),
            ("[", "EOF"),
            ("", "EOF"),
        ] {
            let e = decode_spans_json(body.as_bytes(), &Limits::default(), NOW).unwrap_err();
            assert_eq!(e.status, 400);
            assert!(
                e.message.contains(expect) && e.message.contains("line 1 column"),
                "{body}: {e}"
            );
        }
        assert_eq!(
            decode_spans_json(b"[]", &Limits::default(), NOW)
                .unwrap()
                .rows(),
            0
        );
    }

    #[test]
    fn zipkin_decoder_never_panics_on_random_input() {
        use proptest::prelude::*;
        let limits = Limits::default();
        let mut runner = proptest::test_runner::TestRunner::default();
        runner
            .run(&proptest::collection::vec(any::<u8>(), 0..512), |bytes| {
                let _ = decode_spans_json(&bytes, &limits, NOW);
                Ok(())
            })
            .unwrap();
        runner
            .run(
                &r#"\[\{"traceId":"[0-9a-fA-Fx]{0,34}","id":"[0-9a-f]{0,17}",("parentId":"[0-9a-z]{0,17}",)?("kind":"[A-Z]{0,8}",)?"timestamp":-?[0-9]{0,20}(\.[0-9])?,"duration":-?[0-9]{0,20}(,"annotations":\[\{"timestamp":-?[0-9]{0,20},"value":"x"\}\])?\}\]"#,
                |text| {
                    let _ = decode_spans_json(text.as_bytes(), &limits, NOW);
                    Ok(())
                },
            )
            .unwrap();
    }
}
