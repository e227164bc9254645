//! Trace by id: `GET /api/traces/<id>` and `/api/v2/traces/<id>`.
//!
//! The id from the path (hex, up to 32 characters, shorter ids left-padded
//! with zeros as Tempo pads them) becomes `trace_id = '<32 hex>'` on the
//! tenant's `spans` table — the trace id bloom index skips the blocks that
//! cannot hold it — optionally bounded by `start`/`end` (unix seconds: spans
//! that overlap the window, so a trace straddling it can come back partial,
//! as Tempo warns). The rows are grouped back into OTLP `ResourceSpans`
//! (one per resource, one `ScopeSpans` per instrumentation scope) and
//! answered as Tempo's JSON (`otlp_json`) or, with `Accept:
//! application/protobuf`, as protobuf: v1 `tempopb.Trace` (`batches = 1`),
//! v2 `tempopb.TraceByIDResponse` (`trace = 1`).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, MapArray, RecordBatch, StringArray, StructArray};
use arrow::datatypes::{DataType, TimestampNanosecondType};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use datafusion::common::ScalarValue;
use datafusion::prelude::{SessionContext, col, lit};
use futures::TryStreamExt;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, TracesData};
use prost::Message;

use super::{Failure, SECOND_NS, json_response, otlp_json, session, time_bounds};
use crate::engine::Engine;
use crate::query::scan_plan::filtered_scan;
use crate::server::prometheus::ApiRequest;

/// `tempopb.TraceByIDResponse` as far as o11ydb fills it: the trace
/// (`tempopb.Trace` has the wire shape of OTLP `TracesData`: its
/// `ResourceSpans` are field 1). Metrics, partial status and message are
/// never set.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    pub trace: Option<TracesData>,
}

/// A trace id from a URL as stored in `spans.trace_id`: 32 lowercase hex
/// characters, shorter ids left-padded with zeros. Errors name the id.
pub(crate) fn parse_trace_id(text: &str) -> Result<String, Failure> {
    let bad = |why: String| Failure::BadRequest(format!("invalid trace id {text:?}: {why}"));
    if text.is_empty() {
        return Err(bad("a trace id is required".into()));
    }
    if let Some((i, c)) = text.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(bad(format!(
            "trace IDs can only contain hex characters: invalid character {c:?} at position {}",
            i + 1
        )));
    }
    if text.len() > 32 {
        return Err(bad(format!(
            "trace IDs can't be larger than 128 bits ({} hex characters, at most 32)",
            text.len()
        )));
    }
    Ok(format!("{:0>32}", text.to_ascii_lowercase()))
}

/// Whether the client asked for protobuf (Tempo looks for the media type
/// anywhere in `Accept`).
pub(crate) fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/protobuf"))
}

pub(crate) async fn trace_v1(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    request: ApiRequest,
) -> Response {
    match lookup(&engine, &id, &request).await {
        Ok(trace) if wants_protobuf(&request.headers) => protobuf_response(
            TracesData {
                resource_spans: trace,
            }
            .encode_to_vec(),
        ),
        Ok(trace) => json_response(&otlp_json::trace_v1(&trace)),
        Err(failure) => failure.into_response(),
    }
}

pub(crate) async fn trace_v2(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    request: ApiRequest,
) -> Response {
    match lookup(&engine, &id, &request).await {
        Ok(trace) if wants_protobuf(&request.headers) => protobuf_response(
            TraceByIdResponse {
                trace: Some(TracesData {
                    resource_spans: trace,
                }),
            }
            .encode_to_vec(),
        ),
        Ok(trace) => json_response(&otlp_json::trace_by_id_v2(&trace)),
        Err(failure) => failure.into_response(),
    }
}

fn protobuf_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/protobuf")], body).into_response()
}

/// The trace of a request: parsed id and bounds, the tenant's spans, 404
/// when there are none.
async fn lookup(
    engine: &Engine,
    id: &str,
    request: &ApiRequest,
) -> Result<Vec<ResourceSpans>, Failure> {
    let trace_id = parse_trace_id(id)?;
    let (start, end) = time_bounds(request)?;
    let ctx = session(engine, &request.headers)?;
    let trace = find_trace(&ctx, &trace_id, start, end).await?;
    if trace.is_empty() {
        return Err(Failure::NotFound(format!("trace {trace_id} not found")));
    }
    Ok(trace)
}

/// The spans of `trace_id` (32 lowercase hex) as OTLP resource spans, in
/// start time order; with bounds (ns), only spans overlapping
/// `[start, end + 1s)` (`end` is a whole second). Empty when there are none.
pub(crate) async fn find_trace(
    ctx: &SessionContext,
    trace_id: &str,
    start_ns: Option<i64>,
    end_ns: Option<i64>,
) -> Result<Vec<ResourceSpans>, Failure> {
    let ts = |ns: i64| {
        lit(ScalarValue::TimestampNanosecond(
            Some(ns),
            Some("UTC".into()),
        ))
    };
    let mut filter = col("trace_id").eq(lit(trace_id));
    if let Some(start) = start_ns {
        filter = filter.and(col("end_time").gt_eq(ts(start)));
    }
    if let Some(end) = end_ns {
        filter = filter.and(col("start_time").lt(ts(end.saturating_add(SECOND_NS))));
    }
    let provider = ctx.table_provider("spans").await?;
    let columns: Vec<_> = provider
        .schema()
        .fields()
        .iter()
        .map(|f| col(f.name()))
        .collect();
    let order = [("start_time", true), ("span_id", true)];
    let batches: Vec<RecordBatch> = filtered_scan(ctx, "spans", filter, &columns, &order)
        .await?
        .try_collect()
        .await?;
    resource_spans(&batches)
}

/// Kind words of `spans.kind` as OTLP `SpanKind` numbers.
pub(crate) fn kind_number(kind: &str) -> i32 {
    match kind {
        "internal" => 1,
        "server" => 2,
        "client" => 3,
        "producer" => 4,
        "consumer" => 5,
        _ => 0,
    }
}

/// `spans.status_code` words as OTLP `StatusCode` numbers.
pub(crate) fn status_number(code: &str) -> i32 {
    match code {
        "ok" => 1,
        "error" => 2,
        _ => 0,
    }
}

/// A stored id as bytes: its hex decoded, or (for ids written through SQL
/// that are not hex) its text as it is.
pub(crate) fn id_bytes(text: &str) -> Vec<u8> {
    let digits = text.as_bytes();
    let value = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    if digits.len().is_multiple_of(2) && digits.iter().all(|c| value(*c).is_some()) {
        digits
            .chunks(2)
            .map(|p| (value(p[0]).unwrap_or(0) << 4) | value(p[1]).unwrap_or(0))
            .collect()
    } else {
        digits.to_vec()
    }
}

/// Text attributes as OTLP key/values (every value a `stringValue`: the
/// `spans` table keeps attribute values as text).
pub(crate) fn key_values<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<KeyValue> {
    pairs
        .into_iter()
        .map(|(k, v)| KeyValue {
            key: k.to_string(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(v.to_string())),
            }),
            ..Default::default()
        })
        .collect()
}

/// Rows of `spans` (any subset of rows, all the columns) grouped into OTLP
/// resource spans: one per distinct resource (its attributes, with
/// `service.name` from the `service` column when they lack it), within it
/// one scope spans per (scope name, version), spans in row order. A span id
/// repeated with the same kind (a retried export) is kept once.
pub(crate) fn resource_spans(batches: &[RecordBatch]) -> Result<Vec<ResourceSpans>, Failure> {
    type ResourceKey = Vec<(String, String)>;
    let mut resources: Vec<(ResourceKey, Vec<ScopeSpans>)> = Vec::new();
    let mut resource_index: HashMap<ResourceKey, usize> = HashMap::new();
    let mut seen: std::collections::HashSet<(Vec<u8>, i32)> = Default::default();
    for batch in batches {
        let c = Columns::of(batch)?;
        for row in 0..batch.num_rows() {
            let span = c.span(row);
            if !seen.insert((span.span_id.clone(), span.kind)) {
                continue;
            }
            let mut resource: ResourceKey = c
                .map(&c.resource_attributes, row)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            if !resource.iter().any(|(k, _)| k == "service.name") {
                resource.push(("service.name".into(), c.service.value(row).to_string()));
                resource.sort();
            }
            let index = *resource_index.entry(resource.clone()).or_insert_with(|| {
                resources.push((resource, Vec::new()));
                resources.len() - 1
            });
            let scopes = &mut resources[index].1;
            let scope = InstrumentationScope {
                name: c.opt_text(&c.scope_name, row).to_string(),
                version: c.opt_text(&c.scope_version, row).to_string(),
                ..Default::default()
            };
            match scopes.iter_mut().find(|s| s.scope.as_ref() == Some(&scope)) {
                Some(s) => s.spans.push(span),
                None => scopes.push(ScopeSpans {
                    scope: Some(scope),
                    spans: vec![span],
                    ..Default::default()
                }),
            }
        }
    }
    Ok(resources
        .into_iter()
        .map(|(attributes, scope_spans)| ResourceSpans {
            resource: Some(Resource {
                attributes: key_values(attributes.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                ..Default::default()
            }),
            scope_spans,
            ..Default::default()
        })
        .collect())
}

/// The columns of a `spans` batch, typed.
struct Columns {
    trace_id: StringArray,
    span_id: StringArray,
    parent_span_id: StringArray,
    trace_state: StringArray,
    name: StringArray,
    kind: StringArray,
    service: StringArray,
    start_time: ArrayRef,
    end_time: ArrayRef,
    status_code: StringArray,
    status_message: StringArray,
    attributes: ArrayRef,
    resource_attributes: ArrayRef,
    scope_name: StringArray,
    scope_version: StringArray,
    events: ArrayRef,
    links: ArrayRef,
}

fn column(batch: &RecordBatch, name: &str) -> Result<ArrayRef, Failure> {
    batch
        .column_by_name(name)
        .cloned()
        .ok_or_else(|| Failure::Internal(format!("spans batch lacks column {name}")))
}

/// A text column as `Utf8` (string views are cast).
fn text(array: &ArrayRef) -> Result<StringArray, Failure> {
    let array = if array.data_type() == &DataType::Utf8 {
        array.clone()
    } else {
        arrow::compute::cast(array, &DataType::Utf8).map_err(Failure::internal)?
    };
    Ok(array.as_string::<i32>().clone())
}

fn text_column(batch: &RecordBatch, name: &str) -> Result<StringArray, Failure> {
    text(&column(batch, name)?)
}

fn check(array: &ArrayRef, expected: &str, ok: bool) -> Result<(), Failure> {
    if ok {
        Ok(())
    } else {
        Err(Failure::Internal(format!(
            "spans column has type {}, expected {expected}",
            array.data_type()
        )))
    }
}

impl Columns {
    fn of(batch: &RecordBatch) -> Result<Columns, Failure> {
        let c = Columns {
            trace_id: text_column(batch, "trace_id")?,
            span_id: text_column(batch, "span_id")?,
            parent_span_id: text_column(batch, "parent_span_id")?,
            trace_state: text_column(batch, "trace_state")?,
            name: text_column(batch, "name")?,
            kind: text_column(batch, "kind")?,
            service: text_column(batch, "service")?,
            start_time: column(batch, "start_time")?,
            end_time: column(batch, "end_time")?,
            status_code: text_column(batch, "status_code")?,
            status_message: text_column(batch, "status_message")?,
            attributes: column(batch, "attributes")?,
            resource_attributes: column(batch, "resource_attributes")?,
            scope_name: text_column(batch, "scope_name")?,
            scope_version: text_column(batch, "scope_version")?,
            events: column(batch, "events")?,
            links: column(batch, "links")?,
        };
        for t in [&c.start_time, &c.end_time] {
            check(
                t,
                "timestamp(ns)",
                t.as_primitive_opt::<TimestampNanosecondType>().is_some(),
            )?;
        }
        for m in [&c.attributes, &c.resource_attributes] {
            check(m, "map", m.as_any().downcast_ref::<MapArray>().is_some())?;
        }
        for l in [&c.events, &c.links] {
            check(l, "list", l.as_list_opt::<i32>().is_some())?;
        }
        Ok(c)
    }

    fn opt_text<'a>(&self, array: &'a StringArray, row: usize) -> &'a str {
        if array.is_null(row) {
            ""
        } else {
            array.value(row)
        }
    }

    fn map<'a>(&self, array: &'a ArrayRef, row: usize) -> Vec<(&'a str, &'a str)> {
        match array.as_any().downcast_ref::<MapArray>() {
            Some(map) => crate::model::labels::map_row(map, row),
            None => Vec::new(),
        }
    }

    fn time(&self, array: &ArrayRef, row: usize) -> u64 {
        let times = array.as_primitive::<TimestampNanosecondType>();
        if times.is_null(row) {
            0
        } else {
            u64::try_from(times.value(row)).unwrap_or(0)
        }
    }

    fn span(&self, row: usize) -> Span {
        let status_message = self.opt_text(&self.status_message, row).to_string();
        Span {
            trace_id: id_bytes(self.trace_id.value(row)),
            span_id: id_bytes(self.span_id.value(row)),
            trace_state: self.opt_text(&self.trace_state, row).to_string(),
            parent_span_id: id_bytes(self.opt_text(&self.parent_span_id, row)),
            name: self.name.value(row).to_string(),
            kind: kind_number(self.kind.value(row)),
            start_time_unix_nano: self.time(&self.start_time, row),
            end_time_unix_nano: self.time(&self.end_time, row),
            attributes: key_values(self.map(&self.attributes, row)),
            events: self.events(row),
            links: self.links(row),
            status: Some(Status {
                code: status_number(self.status_code.value(row)),
                message: status_message,
            }),
            ..Default::default()
        }
    }

    /// The struct array of list row `row` (`None` for a null or empty list).
    fn items(array: &ArrayRef, row: usize) -> Option<StructArray> {
        let list = array.as_list::<i32>();
        if list.is_null(row) {
            return None;
        }
        let items = list.value(row);
        items.as_struct_opt().cloned()
    }

    fn events(&self, row: usize) -> Vec<Event> {
        let Some(items) = Self::items(&self.events, row) else {
            return Vec::new();
        };
        let (Some(time), Some(name), Some(attributes)) = (
            items.column_by_name("time").cloned(),
            items.column_by_name("name").and_then(|a| text(a).ok()),
            items.column_by_name("attributes").cloned(),
        ) else {
            return Vec::new();
        };
        (0..items.len())
            .filter(|i| items.is_valid(*i))
            .map(|i| Event {
                time_unix_nano: time
                    .as_primitive_opt::<TimestampNanosecondType>()
                    .filter(|t| t.is_valid(i))
                    .map_or(0, |t| u64::try_from(t.value(i)).unwrap_or(0)),
                name: self.opt_text(&name, i).to_string(),
                attributes: key_values(self.map(&attributes, i)),
                ..Default::default()
            })
            .collect()
    }

    fn links(&self, row: usize) -> Vec<Link> {
        let Some(items) = Self::items(&self.links, row) else {
            return Vec::new();
        };
        let (Some(trace_id), Some(span_id), Some(trace_state), Some(attributes)) = (
            items.column_by_name("trace_id").and_then(|a| text(a).ok()),
            items.column_by_name("span_id").and_then(|a| text(a).ok()),
            items
                .column_by_name("trace_state")
                .and_then(|a| text(a).ok()),
            items.column_by_name("attributes").cloned(),
        ) else {
            return Vec::new();
        };
        (0..items.len())
            .filter(|i| items.is_valid(*i))
            .map(|i| Link {
                trace_id: id_bytes(self.opt_text(&trace_id, i)),
                span_id: id_bytes(self.opt_text(&span_id, i)),
                trace_state: self.opt_text(&trace_state, i).to_string(),
                attributes: key_values(self.map(&attributes, i)),
                ..Default::default()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_are_left_padded_and_lowercased() {
        assert_eq!(
            parse_trace_id("ABC").unwrap(),
            "00000000000000000000000000000abc"
        );
        let full = "0123456789abcdef0123456789ABCDEF";
        assert_eq!(parse_trace_id(full).unwrap(), full.to_ascii_lowercase());
    }

    #[test]
    fn bad_ids_name_the_id_and_the_problem() {
        let Err(Failure::BadRequest(text)) = parse_trace_id("12xz") else {
            panic!("accepted a non-hex id")
        };
        assert!(
            text.contains("\"12xz\"") && text.contains("'x' at position 3"),
            "{text}"
        );
        let long = "1".repeat(33);
        let Err(Failure::BadRequest(text)) = parse_trace_id(&long) else {
            panic!("accepted a 33-digit id")
        };
        assert!(text.contains(&long) && text.contains("128 bits"), "{text}");
    }

    #[test]
    fn ids_decode_from_hex_and_keep_non_hex_text() {
        assert_eq!(id_bytes("00ff10"), vec![0, 255, 16]);
        assert_eq!(id_bytes("trace-1"), b"trace-1".to_vec());
        assert_eq!(id_bytes(""), Vec::<u8>::new());
    }
}
