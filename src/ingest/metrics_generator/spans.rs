//! Canonical `spans` record batches → the few fields the processors read,
//! one [`Span`] per row, with the span's OTLP protobuf size (what Tempo's
//! `traces_spanmetrics_size_total` adds up).

use arrow::array::{Array, AsArray, ListArray, MapArray, RecordBatch, StructArray};
use arrow::datatypes::TimestampNanosecondType;

use crate::model::labels::map_row;

/// One span as the processors see it.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    /// `server`, `client`, ... (the `spans` table's spelling).
    pub kind: String,
    pub service: String,
    pub start_ns: i64,
    pub end_ns: i64,
    /// `unset`, `ok`, `error`.
    pub status_code: String,
    pub attributes: Vec<(String, String)>,
    pub resource_attributes: Vec<(String, String)>,
    /// Bytes of the span encoded as an OTLP `Span` message (attribute values
    /// as strings: the table keeps no other type).
    pub size: u64,
}

impl Span {
    pub fn duration_seconds(&self) -> f64 {
        (self.end_ns - self.start_ns).max(0) as f64 / 1e9
    }

    /// A span attribute, else a resource attribute (Tempo's lookup order).
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.span_attribute(key).or_else(|| {
            self.resource_attributes
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        })
    }

    pub fn span_attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The spans of a canonical batch (a batch of another shape gives none).
pub fn read(batch: &RecordBatch) -> Vec<Span> {
    let text = |name: &str| batch.column_by_name(name).map(|c| c.as_string::<i32>());
    let (
        Some(trace_id),
        Some(span_id),
        Some(parent),
        Some(name),
        Some(kind),
        Some(service),
        Some(status),
    ) = (
        text("trace_id"),
        text("span_id"),
        text("parent_span_id"),
        text("name"),
        text("kind"),
        text("service"),
        text("status_code"),
    )
    else {
        return Vec::new();
    };
    let time = |name: &str| {
        batch
            .column_by_name(name)
            .map(|c| c.as_primitive::<TimestampNanosecondType>())
    };
    let map = |name: &str| batch.column_by_name(name).map(|c| c.as_map());
    let (Some(start), Some(end), Some(attrs), Some(resource)) = (
        time("start_time"),
        time("end_time"),
        map("attributes"),
        map("resource_attributes"),
    ) else {
        return Vec::new();
    };
    let trace_state = text("trace_state");
    let status_message = text("status_message");
    let events = batch.column_by_name("events").map(|c| c.as_list::<i32>());
    let links = batch.column_by_name("links").map(|c| c.as_list::<i32>());

    (0..batch.num_rows())
        .map(|row| {
            let pairs = |m: &MapArray| -> Vec<(String, String)> {
                map_row(m, row)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            };
            let attributes = pairs(attrs);
            fn opt(a: Option<&arrow::array::StringArray>, row: usize) -> Option<&str> {
                a.filter(|a| a.is_valid(row)).map(|a| a.value(row))
            }
            let parent_span_id = parent.is_valid(row).then(|| parent.value(row).to_string());
            let kind_value = kind.value(row);
            let status_value = status.value(row);
            let mut size = 0u64;
            size += field_len(16); // trace_id
            size += field_len(8); // span_id
            size += opt(trace_state, row).map_or(0, |s| field_len(s.len() as u64));
            size += parent_span_id.as_ref().map_or(0, |_| field_len(8));
            size += field_len(name.value(row).len() as u64);
            size += kind_number(kind_value).map_or(0, |k| 1 + varint_len(k));
            size += 2 * 9; // start and end: fixed64
            size += attributes_len(&attributes);
            size += events.map_or(0, |l| events_len(l, row));
            size += links.map_or(0, |l| links_len(l, row));
            let status_len = opt(status_message, row).map_or(0, |m| field_len(m.len() as u64))
                + status_number(status_value).map_or(0, |c| 1 + varint_len(c));
            if status_len > 0 {
                size += field_len(status_len);
            }
            Span {
                trace_id: trace_id.value(row).to_string(),
                span_id: span_id.value(row).to_string(),
                parent_span_id,
                name: name.value(row).to_string(),
                kind: kind_value.to_string(),
                service: service.value(row).to_string(),
                start_ns: start.value(row),
                end_ns: end.value(row),
                status_code: status_value.to_string(),
                attributes,
                resource_attributes: pairs(resource),
                size,
            }
        })
        .collect()
}

fn varint_len(mut v: u64) -> u64 {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// A length-delimited field (one-byte tag) holding `len` bytes.
fn field_len(len: u64) -> u64 {
    1 + varint_len(len) + len
}

/// `KeyValue { key, value: AnyValue { string_value } }` per attribute.
fn attributes_len(pairs: &[(impl AsRef<str>, impl AsRef<str>)]) -> u64 {
    pairs
        .iter()
        .map(|(k, v)| {
            let any = field_len(v.as_ref().len() as u64);
            field_len(field_len(k.as_ref().len() as u64) + field_len(any))
        })
        .sum()
}

fn kind_number(kind: &str) -> Option<u64> {
    match kind {
        "internal" => Some(1),
        "server" => Some(2),
        "client" => Some(3),
        "producer" => Some(4),
        "consumer" => Some(5),
        _ => None,
    }
}

fn status_number(status: &str) -> Option<u64> {
    match status {
        "ok" => Some(1),
        "error" => Some(2),
        _ => None,
    }
}

fn struct_at(list: &ListArray, row: usize) -> Option<StructArray> {
    (list.is_valid(row)).then(|| list.value(row).as_struct().clone())
}

/// `Event { time_unix_nano, name, attributes }` per event.
fn events_len(list: &ListArray, row: usize) -> u64 {
    let Some(events) = struct_at(list, row) else {
        return 0;
    };
    let (Some(names), Some(attrs)) = (
        events.column_by_name("name").map(|c| c.as_string::<i32>()),
        events.column_by_name("attributes").map(|c| c.as_map()),
    ) else {
        return 0;
    };
    (0..events.len())
        .map(|i| {
            field_len(
                9 + field_len(names.value(i).len() as u64) + attributes_len(&map_row(attrs, i)),
            )
        })
        .sum()
}

/// `Link { trace_id, span_id, trace_state, attributes }` per link.
fn links_len(list: &ListArray, row: usize) -> u64 {
    let Some(links) = struct_at(list, row) else {
        return 0;
    };
    let (Some(state), Some(attrs)) = (
        links
            .column_by_name("trace_state")
            .map(|c| c.as_string::<i32>()),
        links.column_by_name("attributes").map(|c| c.as_map()),
    ) else {
        return 0;
    };
    (0..links.len())
        .map(|i| {
            let state = if state.is_valid(i) {
                field_len(state.value(i).len() as u64)
            } else {
                0
            };
            field_len(field_len(16) + field_len(8) + state + attributes_len(&map_row(attrs, i)))
        })
        .sum()
}
