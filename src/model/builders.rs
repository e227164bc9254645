//! Row builders for the ingest decoders: they produce batches already in
//! canonical form (exact schema, sorted label maps, derived ids filled in),
//! so the write path can skip re-normalising them. Label sets are hashed
//! once per series or stream, not once per row.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, Float64Builder, Int64Builder, ListBuilder, MapArray, RecordBatch,
    StringBuilder, StructBuilder, TimestampMillisecondBuilder, TimestampNanosecondBuilder,
};
use arrow::datatypes::DataType;

use super::histogram::FloatHistogram;
use super::labels::{build_string_map, canonical_pairs, series_id};
use super::{Signal, span_event_fields, span_link_fields};

/// Appends label sets as map rows, repeating a row cheaply.
#[derive(Default)]
struct MapColumn {
    keys: StringBuilder,
    values: StringBuilder,
    offsets: Vec<i32>,
}

impl MapColumn {
    fn new() -> Self {
        MapColumn {
            keys: StringBuilder::new(),
            values: StringBuilder::new(),
            offsets: vec![0],
        }
    }

    fn push<K: AsRef<str>, V: AsRef<str>>(&mut self, pairs: &[(K, V)]) {
        for (k, v) in pairs {
            self.keys.append_value(k.as_ref());
            self.values.append_value(v.as_ref());
        }
        self.offsets
            .push(*self.offsets.last().unwrap_or(&0) + pairs.len() as i32);
    }

    fn finish(&mut self) -> MapArray {
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        super::labels::map_from_parts(
            Arc::new(self.keys.finish()),
            Arc::new(self.values.finish()),
            offsets,
            None,
        )
    }
}

/// Canonical label pairs (sorted, last value of a repeated name wins).
pub fn canonical<K: AsRef<str> + Ord, V>(pairs: Vec<(K, V)>) -> Vec<(K, V)> {
    canonical_pairs(pairs)
}

/// Builds `samples` batches series by series.
pub struct SamplesBuilder {
    timestamp: TimestampMillisecondBuilder,
    metric: StringBuilder,
    labels: MapColumn,
    value: Float64Builder,
    series_id: Int64Builder,
    histogram: BinaryBuilder,
    rows: usize,
}

impl Default for SamplesBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl SamplesBuilder {
    pub fn new() -> Self {
        SamplesBuilder {
            timestamp: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            metric: StringBuilder::new(),
            labels: MapColumn::new(),
            value: Float64Builder::new(),
            series_id: Int64Builder::new(),
            histogram: BinaryBuilder::new(),
            rows: 0,
        }
    }

    /// Adds the samples of one series. `labels` must be canonical (see
    /// [`canonical`]) and must not contain `__name__`.
    pub fn push_series(
        &mut self,
        metric: &str,
        labels: &[(impl AsRef<str>, impl AsRef<str>)],
        samples: &[(i64, f64)],
    ) {
        self.push_series_with_id(metric, labels, series_id(metric, labels), samples);
    }

    /// [`Self::push_series`] for a series whose id (`series_id(metric,
    /// labels)`) is already known.
    pub fn push_series_with_id(
        &mut self,
        metric: &str,
        labels: &[(impl AsRef<str>, impl AsRef<str>)],
        id: i64,
        samples: &[(i64, f64)],
    ) {
        debug_assert_eq!(id, series_id(metric, labels));
        for &(ts, v) in samples {
            self.timestamp.append_value(ts);
            self.metric.append_value(metric);
            self.labels.push(labels);
            self.value.append_value(v);
            self.series_id.append_value(id);
        }
        self.histogram.append_nulls(samples.len());
        self.rows += samples.len();
    }

    /// Adds native histogram samples of one series (`value` NaN, the
    /// histogram encoded in the `histogram` column).
    pub fn push_histograms_with_id(
        &mut self,
        metric: &str,
        labels: &[(impl AsRef<str>, impl AsRef<str>)],
        id: i64,
        samples: &[(i64, FloatHistogram)],
    ) {
        debug_assert_eq!(id, series_id(metric, labels));
        let mut encoded = Vec::new();
        for (ts, h) in samples {
            self.timestamp.append_value(*ts);
            self.metric.append_value(metric);
            self.labels.push(labels);
            self.value.append_value(f64::NAN);
            self.series_id.append_value(id);
            encoded.clear();
            h.encode(&mut encoded);
            self.histogram.append_value(&encoded);
        }
        self.rows += samples.len();
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn finish(&mut self) -> RecordBatch {
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.timestamp.finish()),
            Arc::new(self.metric.finish()),
            Arc::new(self.labels.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.series_id.finish()),
            Arc::new(self.histogram.finish()),
        ];
        RecordBatch::try_new(Signal::Samples.schema(), columns)
            .expect("samples builder matches its schema")
    }
}

/// One log line.
#[derive(Debug, Clone, Default)]
pub struct LogLine<'a> {
    pub timestamp_ns: i64,
    pub line: &'a str,
    /// Canonical pairs.
    pub metadata: &'a [(String, String)],
    pub severity: Option<&'a str>,
    pub trace_id: Option<&'a str>,
    pub span_id: Option<&'a str>,
}

/// Builds `logs` batches stream by stream.
pub struct LogsBuilder {
    timestamp: TimestampNanosecondBuilder,
    labels: MapColumn,
    line: StringBuilder,
    metadata: MapColumn,
    severity: StringBuilder,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    stream_id: Int64Builder,
    rows: usize,
    line_bytes: u64,
}

impl Default for LogsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LogsBuilder {
    pub fn new() -> Self {
        LogsBuilder {
            timestamp: TimestampNanosecondBuilder::new().with_timezone("UTC"),
            labels: MapColumn::new(),
            line: StringBuilder::new(),
            metadata: MapColumn::new(),
            severity: StringBuilder::new(),
            trace_id: StringBuilder::new(),
            span_id: StringBuilder::new(),
            stream_id: Int64Builder::new(),
            rows: 0,
            line_bytes: 0,
        }
    }

    /// The id of a stream with canonical `labels`, to pass to [`LogsBuilder::push`].
    pub fn stream_id(labels: &[(impl AsRef<str>, impl AsRef<str>)]) -> i64 {
        series_id("", labels)
    }

    /// Adds one line of the stream with canonical `labels` and id `stream_id`.
    pub fn push(
        &mut self,
        labels: &[(impl AsRef<str>, impl AsRef<str>)],
        stream_id: i64,
        line: &LogLine<'_>,
    ) {
        self.timestamp.append_value(line.timestamp_ns);
        self.labels.push(labels);
        self.line.append_value(line.line);
        self.metadata.push(line.metadata);
        self.severity.append_option(line.severity);
        self.trace_id.append_option(line.trace_id);
        self.span_id.append_option(line.span_id);
        self.stream_id.append_value(stream_id);
        self.rows += 1;
        self.line_bytes += line.line.len() as u64;
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Bytes of log lines added since the last `finish` (what log rate limits count).
    pub fn line_bytes(&self) -> u64 {
        self.line_bytes
    }

    pub fn finish(&mut self) -> RecordBatch {
        self.rows = 0;
        self.line_bytes = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.timestamp.finish()),
            Arc::new(self.labels.finish()),
            Arc::new(self.line.finish()),
            Arc::new(self.metadata.finish()),
            Arc::new(self.severity.finish()),
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.stream_id.finish()),
        ];
        RecordBatch::try_new(Signal::Logs.schema(), columns)
            .expect("logs builder matches its schema")
    }
}

/// A span event.
#[derive(Debug, Clone, Default)]
pub struct SpanEvent {
    pub time_ns: i64,
    pub name: String,
    pub attributes: Vec<(String, String)>,
}

/// A span link.
#[derive(Debug, Clone, Default)]
pub struct SpanLink {
    pub trace_id: String,
    pub span_id: String,
    pub trace_state: Option<String>,
    pub attributes: Vec<(String, String)>,
}

/// One span, already validated: ids in lowercase hex, `kind` and
/// `status_code` canonical, attribute lists canonical.
#[derive(Debug, Clone, Default)]
pub struct SpanRow {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub trace_state: Option<String>,
    pub name: String,
    pub kind: &'static str,
    pub service: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub status_code: &'static str,
    pub status_message: Option<String>,
    pub attributes: Vec<(String, String)>,
    pub resource_attributes: Vec<(String, String)>,
    pub scope_name: Option<String>,
    pub scope_version: Option<String>,
    pub events: Vec<SpanEvent>,
    pub links: Vec<SpanLink>,
}

/// Builds `spans` batches.
pub struct SpansBuilder {
    rows: Vec<SpanRow>,
}

impl Default for SpansBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl SpansBuilder {
    pub fn new() -> Self {
        SpansBuilder { rows: Vec::new() }
    }

    pub fn push(&mut self, span: SpanRow) {
        self.rows.push(span);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn finish(&mut self) -> RecordBatch {
        let rows = std::mem::take(&mut self.rows);
        let n = rows.len();
        let text = |f: &dyn Fn(&SpanRow) -> Option<&str>| -> ArrayRef {
            let mut b = StringBuilder::with_capacity(n, n * 16);
            for r in &rows {
                b.append_option(f(r));
            }
            Arc::new(b.finish())
        };
        let ts = |f: &dyn Fn(&SpanRow) -> i64| -> ArrayRef {
            let mut b = TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC");
            for r in &rows {
                b.append_value(f(r));
            }
            Arc::new(b.finish())
        };
        let map = |f: &dyn Fn(&SpanRow) -> &Vec<(String, String)>| -> ArrayRef {
            Arc::new(build_string_map(
                rows.iter()
                    .map(|r| f(r).iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            ))
        };
        let mut duration = Int64Builder::with_capacity(n);
        for r in &rows {
            duration.append_value(r.end_ns - r.start_ns);
        }
        let columns: Vec<ArrayRef> = vec![
            text(&|r| Some(&r.trace_id)),
            text(&|r| Some(&r.span_id)),
            text(&|r| r.parent_span_id.as_deref()),
            text(&|r| r.trace_state.as_deref()),
            text(&|r| Some(&r.name)),
            text(&|r| Some(r.kind)),
            text(&|r| Some(&r.service)),
            ts(&|r| r.start_ns),
            ts(&|r| r.end_ns),
            Arc::new(duration.finish()),
            text(&|r| Some(r.status_code)),
            text(&|r| r.status_message.as_deref()),
            map(&|r| &r.attributes),
            map(&|r| &r.resource_attributes),
            text(&|r| r.scope_name.as_deref()),
            text(&|r| r.scope_version.as_deref()),
            Arc::new(events_column(&rows)),
            Arc::new(links_column(&rows)),
        ];
        RecordBatch::try_new(Signal::Spans.schema(), columns)
            .expect("spans builder matches its schema")
    }
}

fn map_builder() -> arrow::array::MapBuilder<StringBuilder, StringBuilder> {
    arrow::array::MapBuilder::new(
        Some(arrow::array::MapFieldNames {
            entry: "entries".into(),
            key: "key".into(),
            value: "value".into(),
        }),
        StringBuilder::new(),
        StringBuilder::new(),
    )
}

fn append_map(
    b: &mut arrow::array::MapBuilder<StringBuilder, StringBuilder>,
    pairs: &[(String, String)],
) {
    for (k, v) in pairs {
        b.keys().append_value(k);
        b.values().append_value(v);
    }
    b.append(true).expect("map entries are balanced");
}

fn list_of(fields: arrow::datatypes::Fields) -> ListBuilder<StructBuilder> {
    let builders: Vec<Box<dyn arrow::array::ArrayBuilder>> = fields
        .iter()
        .map(|f| match f.data_type() {
            DataType::Map(..) => Box::new(map_builder()) as Box<dyn arrow::array::ArrayBuilder>,
            DataType::Timestamp(..) => {
                Box::new(TimestampNanosecondBuilder::new().with_timezone("UTC"))
            }
            _ => Box::new(StringBuilder::new()),
        })
        .collect();
    ListBuilder::new(StructBuilder::new(fields.clone(), builders)).with_field(Arc::new(
        arrow::datatypes::Field::new("item", DataType::Struct(fields), true),
    ))
}

fn events_column(rows: &[SpanRow]) -> arrow::array::ListArray {
    let mut list = list_of(span_event_fields());
    for r in rows {
        if r.events.is_empty() {
            list.append_null();
            continue;
        }
        let s = list.values();
        for e in &r.events {
            s.field_builder::<TimestampNanosecondBuilder>(0)
                .expect("time")
                .append_value(e.time_ns);
            s.field_builder::<StringBuilder>(1)
                .expect("name")
                .append_value(&e.name);
            append_map(
                s.field_builder::<arrow::array::MapBuilder<StringBuilder, StringBuilder>>(2)
                    .expect("attributes"),
                &e.attributes,
            );
            s.append(true);
        }
        list.append(true);
    }
    list.finish()
}

fn links_column(rows: &[SpanRow]) -> arrow::array::ListArray {
    let mut list = list_of(span_link_fields());
    for r in rows {
        if r.links.is_empty() {
            list.append_null();
            continue;
        }
        let s = list.values();
        for l in &r.links {
            s.field_builder::<StringBuilder>(0)
                .expect("trace_id")
                .append_value(&l.trace_id);
            s.field_builder::<StringBuilder>(1)
                .expect("span_id")
                .append_value(&l.span_id);
            s.field_builder::<StringBuilder>(2)
                .expect("trace_state")
                .append_option(l.trace_state.as_deref());
            append_map(
                s.field_builder::<arrow::array::MapBuilder<StringBuilder, StringBuilder>>(3)
                    .expect("attributes"),
                &l.attributes,
            );
            s.append(true);
        }
        list.append(true);
    }
    list.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::normalize::normalize;

    #[test]
    fn builders_produce_what_normalisation_would() {
        let mut s = SamplesBuilder::new();
        let labels = canonical(vec![("job", "api"), ("instance", "a:1")]);
        s.push_series("up", &labels, &[(1000, 1.0), (2000, 0.0)]);
        let batch = s.finish();
        assert_eq!(normalize(Signal::Samples, &batch).unwrap(), batch);

        let mut l = LogsBuilder::new();
        let labels = canonical(vec![("app".to_string(), "x".to_string())]);
        let id = LogsBuilder::stream_id(&labels);
        let md = vec![("user".to_string(), "u1".to_string())];
        l.push(
            &labels,
            id,
            &LogLine {
                timestamp_ns: 5,
                line: "hello",
                metadata: &md,
                severity: Some("info"),
                ..Default::default()
            },
        );
        assert_eq!(l.line_bytes(), 5);
        let batch = l.finish();
        assert_eq!(normalize(Signal::Logs, &batch).unwrap(), batch);

        let mut sp = SpansBuilder::new();
        sp.push(SpanRow {
            trace_id: "ab".into(),
            span_id: "cd".into(),
            name: "op".into(),
            kind: "server",
            service: "svc".into(),
            start_ns: 10,
            end_ns: 25,
            status_code: "error",
            events: vec![SpanEvent {
                time_ns: 12,
                name: "exception".into(),
                attributes: vec![("a".into(), "b".into())],
            }],
            links: vec![SpanLink {
                trace_id: "ef".into(),
                span_id: "01".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        let batch = sp.finish();
        assert_eq!(normalize(Signal::Spans, &batch).unwrap(), batch);
    }
}
