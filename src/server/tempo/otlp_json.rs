//! OTLP traces → the JSON Tempo answers with. Tempo marshals its protobuf
//! messages with gogo's `jsonpb`, and clients of its API read that shape:
//! camelCase field names, fields at their default value left out, 64-bit
//! integers (times, `intValue`) as strings, enums by name
//! (`SPAN_KIND_SERVER`, `STATUS_CODE_ERROR`) and — unlike the OTLP/JSON
//! specification's hex — trace and span ids in base64.
//!
//! * `trace_v1` answers `/api/traces/<id>`: `{"batches": [ResourceSpans…]}`;
//! * `trace_by_id_v2` answers `/api/v2/traces/<id>`:
//!   `{"trace": {"resourceSpans": [ResourceSpans…]}}`;
//! * `resource_spans`, `span`, `key_values` are the pieces, for other
//!   answers that carry spans.

use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde_json::{Map, Value, json};

use crate::ingest::otlp::base64;

/// The answer of `/api/traces/<id>` (Tempo's `MarshalToJSONV1`: the
/// `resourceSpans` of `tempopb.Trace` under their historical name
/// `batches`).
pub(crate) fn trace_v1(trace: &[ResourceSpans]) -> Value {
    let mut out = Map::new();
    if !trace.is_empty() {
        out.insert(
            "batches".into(),
            Value::Array(trace.iter().map(resource_spans).collect()),
        );
    }
    Value::Object(out)
}

/// The answer of `/api/v2/traces/<id>` (`tempopb.TraceByIDResponse`).
pub(crate) fn trace_by_id_v2(trace: &[ResourceSpans]) -> Value {
    let mut inner = Map::new();
    if !trace.is_empty() {
        inner.insert(
            "resourceSpans".into(),
            Value::Array(trace.iter().map(resource_spans).collect()),
        );
    }
    json!({ "trace": inner })
}

/// Inserts `value` under `key` unless it is the field's default.
fn put(out: &mut Map<String, Value>, key: &str, value: Value) {
    let empty = match &value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Number(n) => n.as_i64() == Some(0) || n.as_u64() == Some(0),
        Value::Bool(b) => !b,
        Value::Object(_) => false,
    };
    if !empty {
        out.insert(key.into(), value);
    }
}

/// A 64-bit integer as jsonpb writes it: a string, left out when 0.
fn put_u64(out: &mut Map<String, Value>, key: &str, value: u64) {
    if value != 0 {
        out.insert(key.into(), Value::String(value.to_string()));
    }
}

/// An id as jsonpb writes `bytes`: standard base64.
pub(crate) fn id(bytes: &[u8]) -> Value {
    Value::String(base64(bytes))
}

pub(crate) fn resource_spans(rs: &ResourceSpans) -> Value {
    let mut out = Map::new();
    if let Some(resource) = &rs.resource {
        let mut r = Map::new();
        put(&mut r, "attributes", key_values(&resource.attributes));
        out.insert("resource".into(), Value::Object(r));
    }
    put(
        &mut out,
        "scopeSpans",
        Value::Array(rs.scope_spans.iter().map(scope_spans).collect()),
    );
    put(&mut out, "schemaUrl", Value::String(rs.schema_url.clone()));
    Value::Object(out)
}

fn scope(scope: &InstrumentationScope) -> Value {
    let mut out = Map::new();
    put(&mut out, "name", Value::String(scope.name.clone()));
    put(&mut out, "version", Value::String(scope.version.clone()));
    put(&mut out, "attributes", key_values(&scope.attributes));
    Value::Object(out)
}

fn scope_spans(ss: &ScopeSpans) -> Value {
    let mut out = Map::new();
    if let Some(s) = &ss.scope {
        out.insert("scope".into(), scope(s));
    }
    put(
        &mut out,
        "spans",
        Value::Array(ss.spans.iter().map(span).collect()),
    );
    put(&mut out, "schemaUrl", Value::String(ss.schema_url.clone()));
    Value::Object(out)
}

/// One span as Tempo's JSON.
pub(crate) fn span(span: &Span) -> Value {
    let mut out = Map::new();
    put(&mut out, "traceId", id(&span.trace_id));
    put(&mut out, "spanId", id(&span.span_id));
    put(
        &mut out,
        "traceState",
        Value::String(span.trace_state.clone()),
    );
    put(&mut out, "parentSpanId", id(&span.parent_span_id));
    put(&mut out, "flags", json!(span.flags));
    put(&mut out, "name", Value::String(span.name.clone()));
    if span.kind != 0 {
        let name = SpanKind::try_from(span.kind)
            .map(|k| Value::String(k.as_str_name().to_string()))
            .unwrap_or_else(|_| json!(span.kind));
        out.insert("kind".into(), name);
    }
    put_u64(&mut out, "startTimeUnixNano", span.start_time_unix_nano);
    put_u64(&mut out, "endTimeUnixNano", span.end_time_unix_nano);
    put(&mut out, "attributes", key_values(&span.attributes));
    put(
        &mut out,
        "events",
        Value::Array(span.events.iter().map(event).collect()),
    );
    put(
        &mut out,
        "links",
        Value::Array(span.links.iter().map(link).collect()),
    );
    if let Some(s) = &span.status {
        out.insert("status".into(), status(s));
    }
    Value::Object(out)
}

fn status(status: &Status) -> Value {
    let mut out = Map::new();
    put(&mut out, "message", Value::String(status.message.clone()));
    if status.code != 0 {
        let name = StatusCode::try_from(status.code)
            .map(|c| Value::String(c.as_str_name().to_string()))
            .unwrap_or_else(|_| json!(status.code));
        out.insert("code".into(), name);
    }
    Value::Object(out)
}

fn event(event: &Event) -> Value {
    let mut out = Map::new();
    put_u64(&mut out, "timeUnixNano", event.time_unix_nano);
    put(&mut out, "name", Value::String(event.name.clone()));
    put(&mut out, "attributes", key_values(&event.attributes));
    Value::Object(out)
}

fn link(link: &Link) -> Value {
    let mut out = Map::new();
    put(&mut out, "traceId", id(&link.trace_id));
    put(&mut out, "spanId", id(&link.span_id));
    put(
        &mut out,
        "traceState",
        Value::String(link.trace_state.clone()),
    );
    put(&mut out, "attributes", key_values(&link.attributes));
    Value::Object(out)
}

/// Attributes: `[{"key": …, "value": {"stringValue": …}}, …]`.
pub(crate) fn key_values(kvs: &[KeyValue]) -> Value {
    Value::Array(
        kvs.iter()
            .map(|kv| {
                let mut out = Map::new();
                put(&mut out, "key", Value::String(kv.key.clone()));
                if let Some(v) = &kv.value {
                    out.insert("value".into(), any_value(v));
                }
                Value::Object(out)
            })
            .collect(),
    )
}

/// An `AnyValue` (`{"stringValue": …}`, `{"intValue": "…"}`, …).
pub(crate) fn any_value(value: &AnyValue) -> Value {
    let mut out = Map::new();
    match &value.value {
        None => {}
        Some(Any::StringValue(s)) => {
            out.insert("stringValue".into(), Value::String(s.clone()));
        }
        Some(Any::BoolValue(b)) => {
            out.insert("boolValue".into(), Value::Bool(*b));
        }
        Some(Any::IntValue(i)) => {
            out.insert("intValue".into(), Value::String(i.to_string()));
        }
        Some(Any::DoubleValue(d)) => {
            let number = serde_json::Number::from_f64(*d)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(crate::ingest::otlp::format_float(*d)));
            out.insert("doubleValue".into(), number);
        }
        Some(Any::BytesValue(b)) => {
            out.insert("bytesValue".into(), Value::String(base64(b)));
        }
        Some(Any::ArrayValue(a)) => {
            out.insert(
                "arrayValue".into(),
                json!({ "values": a.values.iter().map(any_value).collect::<Vec<_>>() }),
            );
        }
        Some(Any::KvlistValue(kv)) => {
            out.insert(
                "kvlistValue".into(),
                json!({ "values": key_values(&kv.values) }),
            );
        }
        Some(Any::StringValueStrindex(i)) => {
            out.insert("stringValueStrindex".into(), json!(i));
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_render_like_tempo_jsonpb() {
        let s = Span {
            trace_id: vec![0; 15].into_iter().chain([1]).collect(),
            span_id: vec![0, 0, 0, 0, 0, 0, 0, 2],
            name: "GET /".into(),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_500_000_000,
            attributes: crate::server::tempo::trace_by_id::key_values([("http.method", "GET")]),
            status: Some(Status {
                code: 2,
                message: "boom".into(),
            }),
            ..Default::default()
        };
        assert_eq!(
            span(&s),
            json!({
                "traceId": "AAAAAAAAAAAAAAAAAAAAAQ==",
                "spanId": "AAAAAAAAAAI=",
                "name": "GET /",
                "kind": "SPAN_KIND_SERVER",
                "startTimeUnixNano": "1700000000000000000",
                "endTimeUnixNano": "1700000000500000000",
                "attributes": [{"key": "http.method", "value": {"stringValue": "GET"}}],
                "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
            })
        );
        // Defaults are left out: no parent, kind unspecified, status unset.
        let root = Span {
            status: Some(Status::default()),
            ..Default::default()
        };
        assert_eq!(span(&root), json!({"status": {}}));
    }

    #[test]
    fn typed_values_render_as_jsonpb_does() {
        let v = |value| AnyValue { value: Some(value) };
        assert_eq!(any_value(&v(Any::IntValue(42))), json!({"intValue": "42"}));
        assert_eq!(
            any_value(&v(Any::BoolValue(true))),
            json!({"boolValue": true})
        );
        assert_eq!(
            any_value(&v(Any::DoubleValue(1.5))),
            json!({"doubleValue": 1.5})
        );
    }

    #[test]
    fn v1_names_resource_spans_batches_and_v2_wraps_them() {
        let rs = ResourceSpans::default();
        assert_eq!(
            trace_v1(std::slice::from_ref(&rs)),
            json!({"batches": [{}]})
        );
        assert_eq!(
            trace_by_id_v2(&[rs]),
            json!({"trace": {"resourceSpans": [{}]}})
        );
        assert_eq!(trace_by_id_v2(&[]), json!({"trace": {}}));
    }
}
