//! OTLP traces → `spans` rows. Each span becomes one row: ids as lowercase
//! hex, `kind` and `status_code` as their canonical words, `service` from the
//! resource's `service.name` (`unknown_service` without one), span and
//! resource attributes as text maps, scope name and version, events and
//! links. Spans with a missing, wrong-length or all-zero trace or span id, an
//! invalid parent id, an end before their start, or a start outside the
//! tenant's accepted time window are discarded with a reason; links with
//! invalid ids are dropped from their span.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;

use super::{ROWS_PER_BATCH, attributes, id_hex, ns, resource_attributes, service_name};
use crate::ingest::distributor::{Decoded, Discards};
use crate::ingest::limits::Limits;
use crate::ingest::validate::check_time;
use crate::model::Signal;
use crate::model::builders::{SpanEvent, SpanLink, SpanRow, SpansBuilder};

/// `Span.kind` (the OTLP enum number) as stored in `spans.kind`.
fn kind(k: i32) -> &'static str {
    match k {
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "unspecified",
    }
}

/// `Status.code` as stored in `spans.status_code`.
fn status_code(c: i32) -> &'static str {
    match c {
        1 => "ok",
        2 => "error",
        _ => "unset",
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Converts one request; never fails as a whole (see the module docs).
pub fn decode_traces(request: ExportTraceServiceRequest, limits: &Limits, now_ms: i64) -> Decoded {
    let mut builder = SpansBuilder::new();
    let mut batches = Vec::new();
    let mut discards = Discards::default();
    for resource_spans in request.resource_spans {
        let resource = resource_attributes(resource_spans.resource.as_ref());
        let service = service_name(resource);
        let resource_attrs = attributes(resource);
        for scope_spans in resource_spans.scope_spans {
            let (scope_name, scope_version) = match scope_spans.scope {
                Some(scope) => (non_empty(scope.name), non_empty(scope.version)),
                None => (None, None),
            };
            for span in scope_spans.spans {
                match span_row(
                    span,
                    &service,
                    &resource_attrs,
                    &scope_name,
                    &scope_version,
                    limits,
                    now_ms,
                ) {
                    Ok(row) => builder.push(row),
                    Err((reason, message)) => discards.add(reason, 1, || message),
                }
                if builder.len() >= ROWS_PER_BATCH {
                    batches.push(builder.finish());
                }
            }
        }
    }
    if !builder.is_empty() {
        batches.push(builder.finish());
    }
    Decoded::costed_by_rows(Signal::Spans, batches, discards)
}

type Refused = (&'static str, String);

fn span_row(
    span: Span,
    service: &str,
    resource_attrs: &[(String, String)],
    scope_name: &Option<String>,
    scope_version: &Option<String>,
    limits: &Limits,
    now_ms: i64,
) -> Result<SpanRow, Refused> {
    let which = || {
        format!(
            "span {:?} (trace id {}, span id {}) of service {service:?}",
            span.name,
            super::hex(&span.trace_id),
            super::hex(&span.span_id)
        )
    };
    let trace_id = match id_hex(&span.trace_id, 16, "trace id") {
        Ok(Some(id)) => id,
        Ok(None) => {
            return Err((
                "invalid_trace_id",
                format!("{}: trace id is missing", which()),
            ));
        }
        Err(e) => return Err(("invalid_trace_id", format!("{}: {e}", which()))),
    };
    let span_id = match id_hex(&span.span_id, 8, "span id") {
        Ok(Some(id)) => id,
        Ok(None) => {
            return Err((
                "invalid_span_id",
                format!("{}: span id is missing", which()),
            ));
        }
        Err(e) => return Err(("invalid_span_id", format!("{}: {e}", which()))),
    };
    // An all-zero parent id is how some exporters say "no parent".
    let parent_span_id =
        if !span.parent_span_id.is_empty() && span.parent_span_id.iter().all(|b| *b == 0) {
            None
        } else {
            id_hex(&span.parent_span_id, 8, "parent span id")
                .map_err(|e| ("invalid_parent_span_id", format!("{}: {e}", which())))?
        };
    let (start_ns, end_ns) = (ns(span.start_time_unix_nano), ns(span.end_time_unix_nano));
    if end_ns < start_ns {
        return Err((
            "span_end_before_start",
            format!(
                "{}: end time {} ns is before start time {} ns",
                which(),
                span.end_time_unix_nano,
                span.start_time_unix_nano
            ),
        ));
    }
    check_time(
        Signal::Spans,
        start_ns.div_euclid(1_000_000),
        limits,
        now_ms,
    )
    .map_err(|invalid| {
        (
            invalid.reason,
            format!("{}: start {}", which(), invalid.message),
        )
    })?;
    let (status_code, status_message) = match span.status {
        Some(s) => (status_code(s.code), non_empty(s.message)),
        None => ("unset", None),
    };
    let events = span
        .events
        .into_iter()
        .map(|e| SpanEvent {
            time_ns: ns(e.time_unix_nano),
            name: e.name,
            attributes: attributes(&e.attributes),
        })
        .collect();
    let links = span
        .links
        .into_iter()
        .filter_map(|l| {
            let trace_id = id_hex(&l.trace_id, 16, "trace id").ok().flatten()?;
            let span_id = id_hex(&l.span_id, 8, "span id").ok().flatten()?;
            Some(SpanLink {
                trace_id,
                span_id,
                trace_state: non_empty(l.trace_state),
                attributes: attributes(&l.attributes),
            })
        })
        .collect();
    Ok(SpanRow {
        trace_id,
        span_id,
        parent_span_id,
        trace_state: non_empty(span.trace_state),
        kind: kind(span.kind),
        service: service.to_string(),
        start_ns,
        end_ns,
        status_code,
        status_message,
        attributes: attributes(&span.attributes),
        resource_attributes: resource_attrs.to_vec(),
        scope_name: scope_name.clone(),
        scope_version: scope_version.clone(),
        events,
        links,
        name: span.name,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use arrow::array::{Array, AsArray, RecordBatch};
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status};

    const TRACE: [u8; 16] = [
        0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47,
        0x36,
    ];

    fn span(name: &str, span_id: u8, parent: Option<u8>) -> Span {
        Span {
            trace_id: TRACE.to_vec(),
            span_id: vec![span_id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: name.into(),
            kind: 2,
            start_time_unix_nano: NOW_NS,
            end_time_unix_nano: NOW_NS + 250_000_000,
            ..Default::default()
        }
    }

    fn request(service: Option<&str>, spans: Vec<Span>) -> ExportTraceServiceRequest {
        let mut res = vec![s("host.name", "h1")];
        if let Some(svc) = service {
            res.push(s("service.name", svc));
        }
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: resource(res),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "my.lib".into(),
                        version: "1.2".into(),
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn text(batch: &RecordBatch, column: &str, row: usize) -> Option<String> {
        let c = batch.column_by_name(column).unwrap().as_string::<i32>();
        c.is_valid(row).then(|| c.value(row).to_string())
    }

    #[test]
    fn spans_become_canonical_rows() {
        let mut root = span("GET /cart", 1, None);
        root.attributes = vec![
            s("http.route", "/cart"),
            kv("http.response.status_code", Value::IntValue(200)),
        ];
        root.status = Some(Status {
            code: 2,
            message: "boom".into(),
        });
        root.events = vec![Event {
            time_unix_nano: NOW_NS + 1,
            name: "exception".into(),
            attributes: vec![s("exception.type", "E")],
            ..Default::default()
        }];
        root.links = vec![
            Link {
                trace_id: vec![7; 16],
                span_id: vec![8; 8],
                ..Default::default()
            },
            Link {
                trace_id: vec![0; 16],
                span_id: vec![8; 8],
                ..Default::default()
            },
        ];
        let mut child = span("SELECT", 2, Some(1));
        child.kind = 3;
        let d = decode_traces(
            request(Some("cart"), vec![root, child]),
            &Limits::default(),
            NOW_MS,
        );
        assert!(d.discards.is_empty(), "{:?}", d.discards);
        assert_eq!((d.rows(), d.cost), (2, 2.0));
        let b = &d.batches[0];
        assert_eq!(
            crate::model::normalize::normalize(Signal::Spans, b).unwrap(),
            *b,
            "canonical"
        );
        assert_eq!(
            text(b, "trace_id", 0).unwrap(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(text(b, "span_id", 0).unwrap(), "0101010101010101");
        assert_eq!(text(b, "parent_span_id", 0), None);
        assert_eq!(text(b, "parent_span_id", 1).unwrap(), "0101010101010101");
        assert_eq!(text(b, "kind", 0).unwrap(), "server");
        assert_eq!(text(b, "kind", 1).unwrap(), "client");
        assert_eq!(text(b, "service", 1).unwrap(), "cart");
        assert_eq!(text(b, "status_code", 0).unwrap(), "error");
        assert_eq!(text(b, "status_message", 0).unwrap(), "boom");
        assert_eq!(text(b, "status_code", 1).unwrap(), "unset");
        assert_eq!(text(b, "scope_name", 0).unwrap(), "my.lib");
        assert_eq!(text(b, "scope_version", 0).unwrap(), "1.2");
        let attrs = b.column_by_name("attributes").unwrap().as_map();
        let keys = attrs
            .value(0)
            .column(0)
            .as_string::<i32>()
            .iter()
            .flatten()
            .map(String::from)
            .collect::<Vec<_>>();
        let values = attrs
            .value(0)
            .column(1)
            .as_string::<i32>()
            .iter()
            .flatten()
            .map(String::from)
            .collect::<Vec<_>>();
        assert_eq!(keys, ["http.response.status_code", "http.route"]);
        assert_eq!(values, ["200", "/cart"]);
        let events = b.column_by_name("events").unwrap().as_list::<i32>();
        assert_eq!(events.value(0).len(), 1);
        assert!(events.is_null(1));
        let links = b.column_by_name("links").unwrap().as_list::<i32>();
        assert_eq!(
            links.value(0).len(),
            1,
            "the link with an all-zero trace id is dropped"
        );
    }

    #[test]
    fn missing_service_name_is_unknown_service() {
        let d = decode_traces(
            request(None, vec![span("x", 1, None)]),
            &Limits::default(),
            NOW_MS,
        );
        assert_eq!(
            text(&d.batches[0], "service", 0).unwrap(),
            "unknown_service"
        );
    }

    #[test]
    fn invalid_spans_are_discarded_with_reasons() {
        let mut short_trace = span("short", 1, None);
        short_trace.trace_id = vec![1; 8];
        let mut zero_span = span("zero", 0, None);
        zero_span.span_id = vec![0; 8];
        let mut no_span = span("none", 1, None);
        no_span.span_id.clear();
        let bad_parent = Span {
            parent_span_id: vec![1, 2, 3],
            ..span("bad parent", 3, None)
        };
        let zero_parent = Span {
            parent_span_id: vec![0; 8],
            ..span("zero parent is root", 4, None)
        };
        let mut backwards = span("backwards", 5, None);
        backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1;
        let mut old = span("old", 6, None);
        old.start_time_unix_nano = 1;
        old.end_time_unix_nano = 2;
        let mut future = span("future", 7, None);
        future.start_time_unix_nano = u64::MAX - 1;
        future.end_time_unix_nano = u64::MAX;
        let d = decode_traces(
            request(
                Some("svc"),
                vec![
                    short_trace,
                    zero_span,
                    no_span,
                    bad_parent,
                    zero_parent,
                    backwards,
                    old,
                    future,
                ],
            ),
            &Limits::default(),
            NOW_MS,
        );
        let reasons = d.discards.counts();
        assert_eq!(
            reasons,
            vec![
                ("invalid_parent_span_id", 1),
                ("invalid_span_id", 2),
                ("invalid_trace_id", 1),
                ("span_end_before_start", 1),
                ("span_too_far_in_future", 1),
                ("span_too_old", 1),
            ]
        );
        assert_eq!(d.rows(), 1);
        assert_eq!(
            text(&d.batches[0], "name", 0).unwrap(),
            "zero parent is root"
        );
        let first = d.discards.first().unwrap();
        assert!(
            first.contains("\"short\"") && first.contains("8 bytes"),
            "{first}"
        );
    }

    #[test]
    fn empty_request_is_empty() {
        let d = decode_traces(
            ExportTraceServiceRequest::default(),
            &Limits::default(),
            NOW_MS,
        );
        assert!(d.batches.is_empty() && d.discards.is_empty());
    }
}
