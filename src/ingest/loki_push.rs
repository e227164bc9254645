//! Loki push API (`POST /loki/api/v1/push`): log streams in, canonical
//! `logs` rows out.
//!
//! Two encodings carry the same `PushRequest`:
//!
//! * JSON — `{"streams":[{"stream":{"app":"api"},"values":[["<unix ns>","<line>"],
//!   ["<unix ns>","<line>",{"<structured>":"<metadata>"}]]}]}`
//!   ([`decode_push_json`]);
//! * protobuf — `logproto.PushRequest` (after snappy, which the HTTP layer
//!   undoes), whose stream labels are one string in the Prometheus text form
//!   `{app="api", env="prod"}` ([`decode_push_protobuf`], [`parse_labels`]).
//!
//! Each stream's labels are validated like Prometheus labels (and must not be
//! empty); each entry's timestamp against the tenant's time window, its line
//! against `max_line_size` and its structured metadata against the label
//! name/value lengths. Invalid streams and entries are counted as discards
//! (with Loki's reasons and message style) and the rest is kept; only a body
//! that cannot be parsed at all is refused as a whole (400, naming what and
//! where). `severity` is taken from the structured metadata `level`,
//! `severity` or `detected_level` (in that order, as sent), `trace_id` and
//! `span_id` from `trace_id` / `span_id` when they are hex ids of the right
//! length (lower-cased); the metadata itself is kept whole.

use std::borrow::Cow;
use std::fmt;

use arrow::array::RecordBatch;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::distributor::{Decoded, Discards};
use super::limits::Limits;
use super::protobuf::{Reader, Value, as_str};
use super::validate::{DecodeError, Invalid, check_labels, check_time, render_labels};
use crate::model::Signal;
use crate::model::builders::{LogLine, LogsBuilder, canonical};

/// Lines per output batch (bounds batch size for huge requests).
const ROWS_PER_BATCH: usize = 64 * 1024;
/// Line bytes per output batch.
const BYTES_PER_BATCH: u64 = 32 << 20;

/// Discard reasons specific to Loki push (the others come from `validate`).
const INVALID_LABELS: &str = "invalid_labels";
const LINE_TOO_LONG: &str = "line_too_long";
const INVALID_TIMESTAMP: &str = "invalid_timestamp";
const INVALID_UTF8: &str = "invalid_utf8";
const STRUCTURED_METADATA_INVALID: &str = "structured_metadata_invalid";
const STRUCTURED_METADATA_TOO_LARGE: &str = "structured_metadata_too_large";

// ---------------------------------------------------------------------------
// Shared row building
// ---------------------------------------------------------------------------

/// Label (or structured metadata) pairs, borrowed from the body where possible.
pub type LabelPairs<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// A validated stream: canonical labels, id, and its rendering for messages.
struct Stream<'a> {
    labels: LabelPairs<'a>,
    id: i64,
    shown: String,
}

/// Collects rows and discards for one request.
struct Sink<'l> {
    limits: &'l Limits,
    now_ms: i64,
    builder: LogsBuilder,
    batches: Vec<RecordBatch>,
    discards: Discards,
    line_bytes: u64,
}

impl<'l> Sink<'l> {
    fn new(limits: &'l Limits, now_ms: i64) -> Self {
        Sink {
            limits,
            now_ms,
            builder: LogsBuilder::new(),
            batches: Vec::new(),
            discards: Discards::default(),
            line_bytes: 0,
        }
    }

    /// Validates a stream's labels (in the sender's order). On failure the
    /// stream's `entries` are discarded and `None` is returned.
    fn stream<'a>(&mut self, labels: LabelPairs<'a>, entries: u64, at: &str) -> Option<Stream<'a>> {
        if let Err(invalid) = check_labels(&labels, self.limits) {
            self.discards.add(invalid.reason, entries, || {
                if labels.is_empty() {
                    // Loki's wording.
                    format!("error at least one label pair is required per stream ({at} has none)")
                } else {
                    format!("{} ({at})", invalid.message)
                }
            });
            return None;
        }
        let labels = canonical(labels);
        let id = LogsBuilder::stream_id(&labels);
        let shown = render_labels(&labels);
        Some(Stream { labels, id, shown })
    }

    /// Validates and adds one entry of `stream`; `at` names it for messages.
    fn entry(
        &mut self,
        stream: &Stream<'_>,
        at: &dyn Fn() -> String,
        timestamp_ns: Result<i64, Invalid>,
        line: &str,
        metadata: LabelPairs<'_>,
    ) {
        let timestamp_ns = match timestamp_ns {
            Ok(t) => t,
            Err(invalid) => {
                self.discards.add(invalid.reason, 1, || {
                    format!(
                        "{} ({} of stream '{}')",
                        invalid.message,
                        at(),
                        stream.shown
                    )
                });
                return;
            }
        };
        if let Err(invalid) = check_time(
            Signal::Logs,
            timestamp_ns.div_euclid(1_000_000),
            self.limits,
            self.now_ms,
        ) {
            self.discards.add(invalid.reason, 1, || {
                format!(
                    "entry for stream '{}': {} ({})",
                    stream.shown,
                    invalid.message,
                    at()
                )
            });
            return;
        }
        let max = self.limits.max_line_size;
        if max > 0 && line.len() as u64 > max {
            self.discards.add(LINE_TOO_LONG, 1, || {
                format!(
                    "Max entry size '{max}' bytes exceeded for stream '{}' while adding an entry with length '{}' bytes (max_line_size; {})",
                    stream.shown,
                    line.len(),
                    at()
                )
            });
            return;
        }
        for (k, v) in &metadata {
            let problem = if k.is_empty() {
                Some((
                    STRUCTURED_METADATA_INVALID,
                    "has a structured metadata entry with an empty name".to_string(),
                ))
            } else if k.len() > self.limits.max_label_name_length {
                Some((
                    STRUCTURED_METADATA_TOO_LARGE,
                    format!(
                        "has a structured metadata name {:?}… of {} bytes, more than max_label_name_length = {}",
                        k.chars().take(64).collect::<String>(),
                        k.len(),
                        self.limits.max_label_name_length
                    ),
                ))
            } else if v.len() > self.limits.max_label_value_length {
                Some((
                    STRUCTURED_METADATA_TOO_LARGE,
                    format!(
                        "has a value of structured metadata {k:?} of {} bytes, more than max_label_value_length = {}",
                        v.len(),
                        self.limits.max_label_value_length
                    ),
                ))
            } else {
                None
            };
            if let Some((reason, what)) = problem {
                self.discards.add(reason, 1, || {
                    format!("entry for stream '{}' {what} ({})", stream.shown, at())
                });
                return;
            }
        }
        let metadata: Vec<(String, String)> = canonical(
            metadata
                .into_iter()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        );
        let find = |name: &str| {
            metadata
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let severity = find("level")
            .or_else(|| find("severity"))
            .or_else(|| find("detected_level"));
        let trace_id = find("trace_id").and_then(|v| hex_id(v, 32));
        let span_id = find("span_id").and_then(|v| hex_id(v, 16));
        self.builder.push(
            &stream.labels,
            stream.id,
            &LogLine {
                timestamp_ns,
                line,
                metadata: &metadata,
                severity,
                trace_id: trace_id.as_deref(),
                span_id: span_id.as_deref(),
            },
        );
        if self.builder.len() >= ROWS_PER_BATCH || self.builder.line_bytes() >= BYTES_PER_BATCH {
            self.cut();
        }
    }

    fn cut(&mut self) {
        if !self.builder.is_empty() {
            self.line_bytes += self.builder.line_bytes();
            self.batches.push(self.builder.finish());
        }
    }

    fn finish(mut self) -> Decoded {
        self.cut();
        Decoded {
            signal: Signal::Logs,
            batches: self.batches,
            discards: self.discards,
            cost: self.line_bytes as f64,
        }
    }
}

/// `value` lower-cased when it is `len` hex digits, else `None` (the value
/// stays in the structured metadata either way).
fn hex_id(value: &str, len: usize) -> Option<String> {
    (value.len() == len && value.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| value.to_ascii_lowercase())
}

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------

/// A JSON string, borrowed from the body when it has no escapes.
struct StrSeed(&'static str);

impl<'de> DeserializeSeed<'de> for StrSeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for StrSeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// A JSON string, borrowed from the body when it has no escapes (for
/// serde-derived structs of other decoders).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JsonStr<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> de::Deserialize<'de> for JsonStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        StrSeed("a string").deserialize(d).map(JsonStr)
    }
}

/// A JSON object of string values, kept as pairs in the sender's order (so
/// duplicate names stay visible to validation).
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct JsonPairs<'a>(pub LabelPairs<'a>);

impl<'de: 'a, 'a> de::Deserialize<'de> for JsonPairs<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PairsVisitor;
        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = JsonPairs<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of string values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(k) = map.next_key_seed(StrSeed("a name"))? {
                    let v = map.next_value_seed(StrSeed("a string value"))?;
                    pairs.push((k, v));
                }
                Ok(JsonPairs(pairs))
            }
        }
        d.deserialize_map(PairsVisitor)
    }
}

#[derive(serde::Deserialize)]
struct JsonRequest<'a> {
    #[serde(borrow)]
    streams: Vec<JsonStream<'a>>,
}

#[derive(serde::Deserialize)]
struct JsonStream<'a> {
    #[serde(borrow)]
    stream: JsonPairs<'a>,
    #[serde(borrow)]
    values: Vec<JsonEntry<'a>>,
}

struct JsonEntry<'a> {
    timestamp: Cow<'a, str>,
    line: Cow<'a, str>,
    metadata: LabelPairs<'a>,
}

impl<'de: 'a, 'a> de::Deserialize<'de> for JsonEntry<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = JsonEntry<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"an entry ["<unix epoch in nanoseconds>", "<log line>"] or ["<ns>", "<line>", {"<structured metadata name>": "<value>"}]"#)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let timestamp = seq
                    .next_element_seed(StrSeed(
                        "the entry timestamp as a string of nanoseconds since the epoch",
                    ))?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let line = seq
                    .next_element_seed(StrSeed("the log line as a string"))?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                let metadata = seq
                    .next_element::<Option<JsonPairs<'de>>>()?
                    .flatten()
                    .unwrap_or_default()
                    .0;
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(4, &self));
                }
                Ok(JsonEntry {
                    timestamp,
                    line,
                    metadata,
                })
            }
        }
        d.deserialize_seq(EntryVisitor)
    }
}

/// Decodes a Loki push request in JSON (already decompressed).
pub fn decode_push_json(body: &[u8], limits: &Limits, now_ms: i64) -> Result<Decoded, DecodeError> {
    let request: JsonRequest<'_> = serde_json::from_slice(body)
        .map_err(|e| DecodeError::bad_request(format!("invalid Loki push JSON: {e}")))?;
    let mut sink = Sink::new(limits, now_ms);
    for (s, stream) in request.streams.into_iter().enumerate() {
        let Some(valid) = sink.stream(
            stream.stream.0,
            stream.values.len() as u64,
            &format!("streams[{s}]"),
        ) else {
            continue;
        };
        for (e, entry) in stream.values.into_iter().enumerate() {
            let timestamp = entry.timestamp.parse::<i64>().map_err(|_| {
                Invalid::new(
                    INVALID_TIMESTAMP,
                    format!(
                        "timestamp {:?} is not an integer number of nanoseconds since the epoch",
                        shorten(&entry.timestamp)
                    ),
                )
            });
            let at = || format!("streams[{s}].values[{e}]");
            sink.entry(&valid, &at, timestamp, &entry.line, entry.metadata);
        }
    }
    Ok(sink.finish())
}

fn shorten(s: &str) -> String {
    if s.len() <= 64 {
        return s.to_string();
    }
    let mut cut = 64;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut])
}

// ---------------------------------------------------------------------------
// Protobuf
// ---------------------------------------------------------------------------

/// Decodes one uncompressed `logproto.PushRequest`.
pub fn decode_push_protobuf(
    body: &[u8],
    limits: &Limits,
    now_ms: i64,
) -> Result<Decoded, DecodeError> {
    let mut request = Reader::new(body);
    let mut sink = Sink::new(limits, now_ms);
    let mut entries: Vec<Reader<'_>> = Vec::new();
    let mut s = 0usize;
    while let Some((field, value)) = request.next_field()? {
        let (1, Value::Bytes(stream_bytes)) = (field, value) else {
            continue;
        };
        let at_stream = format!("streams[{s}]");
        s += 1;
        let mut stream = request.nested(stream_bytes);
        let mut labels_bytes: &[u8] = b"";
        entries.clear();
        while let Some((field, value)) = stream.next_field()? {
            match (field, value) {
                (1, Value::Bytes(b)) => labels_bytes = b,
                (2, Value::Bytes(b)) => entries.push(stream.nested(b)),
                _ => {} // hash (3) and unknown fields
            }
        }
        let n = entries.len() as u64;
        let labels = match as_str(labels_bytes, "the stream labels").and_then(|text| {
            parse_labels(text).map_err(|e| format!("error parsing labels '{}': {e}", shorten(text)))
        }) {
            Ok(labels) => labels,
            Err(message) => {
                sink.discards
                    .add(INVALID_LABELS, n, || format!("{message} ({at_stream})"));
                continue;
            }
        };
        let Some(valid) = sink.stream(labels, n, &at_stream) else {
            continue;
        };
        for (e, entry) in entries.iter_mut().enumerate() {
            let at = || format!("{at_stream}.entries[{e}]");
            let mut timestamp = Ok(0i64);
            let mut line: Result<&str, String> = Ok("");
            let mut metadata: LabelPairs<'_> = Vec::new();
            let mut bad_metadata: Option<String> = None;
            while let Some((field, value)) = entry.next_field()? {
                match (field, value) {
                    (1, Value::Bytes(b)) => timestamp = read_timestamp(&mut entry.nested(b))?,
                    (2, Value::Bytes(b)) => line = as_str(b, "the log line"),
                    (3, Value::Bytes(b)) => {
                        let mut pair = entry.nested(b);
                        let (mut name, mut val) = (Ok(""), Ok(""));
                        while let Some((f, v)) = pair.next_field()? {
                            match (f, v) {
                                (1, Value::Bytes(b)) => {
                                    name = as_str(b, "a structured metadata name")
                                }
                                (2, Value::Bytes(b)) => {
                                    val = as_str(b, "a structured metadata value")
                                }
                                _ => {}
                            }
                        }
                        match (name, val) {
                            (Ok(k), Ok(v)) => metadata.push((Cow::Borrowed(k), Cow::Borrowed(v))),
                            (Err(e), _) | (_, Err(e)) => bad_metadata = bad_metadata.or(Some(e)),
                        }
                    }
                    _ => {}
                }
            }
            let line = match line.and_then(|l| bad_metadata.map_or(Ok(l), Err)) {
                Ok(l) => l,
                Err(e) => {
                    sink.discards.add(INVALID_UTF8, 1, || {
                        format!("entry for stream '{}': {e} ({})", valid.shown, at())
                    });
                    continue;
                }
            };
            sink.entry(&valid, &at, timestamp, line, metadata);
        }
    }
    Ok(sink.finish())
}

/// A `google.protobuf.Timestamp` as nanoseconds since the epoch. A malformed
/// message is a request error; a time outside what nanoseconds since 1970 in
/// an `i64` can hold (years 1677–2262) or `nanos` outside 0..1e9 is an
/// invalid entry.
fn read_timestamp(ts: &mut Reader<'_>) -> Result<Result<i64, Invalid>, DecodeError> {
    let (mut seconds, mut nanos) = (0i64, 0i64);
    while let Some((field, value)) = ts.next_field()? {
        match (field, value) {
            (1, Value::Varint(v)) => seconds = v as i64,
            (2, Value::Varint(v)) => nanos = i64::from(v as i32),
            _ => {}
        }
    }
    if !(0..1_000_000_000).contains(&nanos) {
        return Ok(Err(Invalid::new(
            INVALID_TIMESTAMP,
            format!("timestamp nanos {nanos} is outside 0..999999999"),
        )));
    }
    Ok(seconds
        .checked_mul(1_000_000_000)
        .and_then(|ns| ns.checked_add(nanos))
        .ok_or_else(|| {
            Invalid::new(
                INVALID_TIMESTAMP,
                format!("timestamp of {seconds} seconds since the epoch is outside the representable range (years 1677 to 2262)"),
            )
        }))
}

// ---------------------------------------------------------------------------
// Label-set text
// ---------------------------------------------------------------------------

/// Parses a label set in the Prometheus text form Loki clients send in the
/// protobuf `labels` field: `{name="value", other="x\"y"}`. Values are
/// double-quoted with Go escapes (`\"`, `\\`, `\n`, `\t`, `\r`, `\a`, `\b`,
/// `\f`, `\v`, `\'`, `\xNN` below 0x80, `\uNNNN`, `\UNNNNNNNN`); a trailing
/// comma is allowed. Names are returned as written (validation checks them);
/// errors name the byte offset.
pub fn parse_labels(text: &str) -> Result<LabelPairs<'_>, String> {
    let b = text.as_bytes();
    let mut pos = 0usize;
    let skip_ws = |pos: &mut usize| {
        while *pos < b.len() && b[*pos].is_ascii_whitespace() {
            *pos += 1;
        }
    };
    let found = |pos: usize| match text[pos..].chars().next() {
        Some(c) => format!("{c:?}"),
        None => "the end".to_string(),
    };
    skip_ws(&mut pos);
    if b.get(pos) != Some(&b'{') {
        return Err(format!("expected '{{' at byte {pos}, found {}", found(pos)));
    }
    pos += 1;
    let mut labels = Vec::new();
    loop {
        skip_ws(&mut pos);
        if b.get(pos) == Some(&b'}') {
            pos += 1;
            break;
        }
        let start = pos;
        while pos < b.len() && !b[pos].is_ascii_whitespace() && !b"=,{}\"'`!~".contains(&b[pos]) {
            pos += 1;
        }
        if pos == start {
            return Err(format!(
                "expected a label name or '}}' at byte {pos}, found {}",
                found(pos)
            ));
        }
        let name = &text[start..pos];
        skip_ws(&mut pos);
        if b.get(pos) != Some(&b'=') {
            return Err(format!(
                "expected '=' after label name {name:?} at byte {pos}, found {}",
                found(pos)
            ));
        }
        pos += 1;
        skip_ws(&mut pos);
        let value = parse_quoted(text, &mut pos)?;
        labels.push((Cow::Borrowed(name), value));
        skip_ws(&mut pos);
        match b.get(pos) {
            Some(b',') => pos += 1,
            Some(b'}') => {
                pos += 1;
                break;
            }
            _ => {
                return Err(format!(
                    "expected ',' or '}}' after the value of label {name:?} at byte {pos}, found {}",
                    found(pos)
                ));
            }
        }
    }
    skip_ws(&mut pos);
    if pos < b.len() {
        return Err(format!(
            "unexpected {} at byte {pos} after the closing '}}'",
            found(pos)
        ));
    }
    Ok(labels)
}

/// A double-quoted Go string starting at `*pos`; leaves `*pos` after the closing quote.
fn parse_quoted<'a>(text: &'a str, pos: &mut usize) -> Result<Cow<'a, str>, String> {
    let b = text.as_bytes();
    let open = *pos;
    if b.get(open) != Some(&b'"') {
        let found = text[open..]
            .chars()
            .next()
            .map_or("the end".to_string(), |c| format!("{c:?}"));
        return Err(format!(
            "expected a double-quoted label value at byte {open}, found {found}"
        ));
    }
    let mut i = open + 1;
    let mut owned: Option<String> = None;
    let mut run = i; // start of the unescaped run not yet copied into `owned`
    loop {
        let Some(&c) = b.get(i) else {
            return Err(format!(
                "unterminated quoted string starting at byte {open}"
            ));
        };
        match c {
            b'"' => {
                *pos = i + 1;
                return Ok(match owned {
                    None => Cow::Borrowed(&text[open + 1..i]),
                    Some(mut s) => {
                        s.push_str(&text[run..i]);
                        Cow::Owned(s)
                    }
                });
            }
            b'\n' => {
                return Err(format!(
                    "newline inside the quoted string starting at byte {open} (at byte {i})"
                ));
            }
            b'\\' => {
                let s = owned.get_or_insert_with(String::new);
                s.push_str(&text[run..i]);
                let esc = i;
                let Some(&e) = b.get(i + 1) else {
                    return Err(format!(
                        "unterminated quoted string starting at byte {open}"
                    ));
                };
                i += 2;
                let simple = match e {
                    b'"' => Some('"'),
                    b'\\' => Some('\\'),
                    b'\'' => Some('\''),
                    b'n' => Some('\n'),
                    b't' => Some('\t'),
                    b'r' => Some('\r'),
                    b'a' => Some('\x07'),
                    b'b' => Some('\x08'),
                    b'f' => Some('\x0c'),
                    b'v' => Some('\x0b'),
                    _ => None,
                };
                match (simple, e) {
                    (Some(ch), _) => s.push(ch),
                    (None, b'x' | b'u' | b'U') => {
                        let digits = match e {
                            b'x' => 2,
                            b'u' => 4,
                            _ => 8,
                        };
                        let hex = b
                            .get(i..i + digits)
                            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                            .ok_or_else(|| {
                                format!(
                                    "escape at byte {esc} needs {digits} hex digits after \\{}",
                                    e as char
                                )
                            })?;
                        let code = u32::from_str_radix(std::str::from_utf8(hex).unwrap_or("0"), 16)
                            .unwrap_or(0);
                        if e == b'x' && code >= 0x80 {
                            return Err(format!(
                                "escape at byte {esc} is a raw byte 0x{code:02x}, which is not valid UTF-8 on its own"
                            ));
                        }
                        let ch = char::from_u32(code).ok_or_else(|| {
                            format!(
                                "escape at byte {esc} is not a Unicode scalar value (0x{code:x})"
                            )
                        })?;
                        s.push(ch);
                        i += digits;
                    }
                    _ => {
                        let shown = text[esc + 1..].chars().next().unwrap_or('?');
                        return Err(format!("unknown escape \\{shown} at byte {esc}"));
                    }
                }
                run = i;
            }
            _ => i += 1,
        }
    }
}

// ---------------------------------------------------------------------------
// Test helper
// ---------------------------------------------------------------------------

/// One entry for [`encode_push_request`]: nanoseconds, line, structured metadata.
pub type TestEntry<'a> = (i64, &'a str, Vec<(&'a str, &'a str)>);

/// Test and benchmark helper: encodes a `logproto.PushRequest` from streams
/// of `(labels text, entries)` (uncompressed).
pub fn encode_push_request(streams: &[(&str, Vec<TestEntry<'_>>)]) -> Vec<u8> {
    use super::protobuf::{put_bytes_field as bytes_field, put_varint as varint};
    let mut out = Vec::new();
    for (labels, entries) in streams {
        let mut stream = Vec::new();
        bytes_field(&mut stream, 1, labels.as_bytes());
        for (ns, line, metadata) in entries {
            let mut entry = Vec::new();
            let mut ts = Vec::new();
            varint(&mut ts, 1 << 3);
            varint(&mut ts, ns.div_euclid(1_000_000_000) as u64);
            varint(&mut ts, 2 << 3);
            varint(&mut ts, ns.rem_euclid(1_000_000_000) as u64);
            bytes_field(&mut entry, 1, &ts);
            bytes_field(&mut entry, 2, line.as_bytes());
            for (k, v) in metadata {
                let mut pair = Vec::new();
                bytes_field(&mut pair, 1, k.as_bytes());
                bytes_field(&mut pair, 2, v.as_bytes());
                bytes_field(&mut entry, 3, &pair);
            }
            bytes_field(&mut stream, 2, &entry);
        }
        bytes_field(&mut out, 1, &stream);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::labels::map_row;
    use arrow::array::{Array, AsArray};

    const NOW: i64 = 1_767_225_600_000;
    const NOW_NS: i64 = NOW * 1_000_000;

    fn reasons(d: &Decoded) -> Vec<(&'static str, u64)> {
        d.discards.counts()
    }

    fn column<'a>(d: &'a Decoded, name: &str) -> &'a dyn Array {
        d.batches[0].column_by_name(name).unwrap().as_ref()
    }

    #[test]
    fn loki_json_streams_become_canonical_rows() {
        let body = format!(
            r#"{{"streams":[
                {{"stream":{{"job":"api","app":"cart"}},"values":[
                    ["{NOW_NS}","first line"],
                    ["{}","second \"quoted\" line",{{"level":"warn","trace_id":"4BF92F3577B34DA6A3CE929D0E0E4736","span_id":"00f067aa0ba902b7","user":"u1"}}]
                ]}},
                {{"stream":{{"app":"db"}},"values":[["{}","x",{{"severity":"error","trace_id":"nothex"}}]]}}
            ]}}"#,
            NOW_NS + 1,
            NOW_NS + 2
        );
        let d = decode_push_json(body.as_bytes(), &Limits::default(), NOW).unwrap();
        assert!(d.discards.is_empty(), "{:?}", d.discards);
        assert_eq!(d.rows(), 3);
        assert_eq!(d.cost, (10 + 20 + 1) as f64);
        let b = &d.batches[0];
        assert_eq!(
            &crate::model::normalize::normalize(Signal::Logs, b).unwrap(),
            b,
            "canonical"
        );
        let labels = column(&d, "labels").as_map();
        assert_eq!(map_row(labels, 0), vec![("app", "cart"), ("job", "api")]);
        assert_eq!(
            column(&d, "line").as_string::<i32>().value(1),
            "second \"quoted\" line"
        );
        let severity = column(&d, "severity").as_string::<i32>();
        assert!(severity.is_null(0));
        assert_eq!((severity.value(1), severity.value(2)), ("warn", "error"));
        let trace = column(&d, "trace_id").as_string::<i32>();
        assert_eq!(trace.value(1), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(
            trace.is_null(2),
            "a trace_id that is not an id stays only in the metadata"
        );
        assert_eq!(
            column(&d, "span_id").as_string::<i32>().value(1),
            "00f067aa0ba902b7"
        );
        let md = column(&d, "structured_metadata").as_map();
        assert_eq!(
            map_row(md, 2),
            vec![("severity", "error"), ("trace_id", "nothex")]
        );
    }

    #[test]
    fn loki_json_invalid_items_are_discarded_and_the_rest_kept() {
        let limits = Limits {
            max_line_size: 8,
            ..Limits::default()
        };
        let body = format!(
            r#"{{"streams":[
                {{"stream":{{}},"values":[["{NOW_NS}","a"]]}},
                {{"stream":{{"bad-name":"x"}},"values":[["{NOW_NS}","a"],["{NOW_NS}","b"]]}},
                {{"stream":{{"app":"x","app":"y"}},"values":[["{NOW_NS}","a"]]}},
                {{"stream":{{"app":"ok"}},"values":[
                    ["not-a-number","a"],
                    ["{NOW_NS}","this line is too long"],
                    ["0","too old"],
                    ["{}","too new"],
                    ["{NOW_NS}","md",{{"":"empty name"}}],
                    ["{NOW_NS}","kept"]
                ]}}
            ]}}"#,
            NOW_NS + 86_400_000_000_000
        );
        let d = decode_push_json(body.as_bytes(), &limits, NOW).unwrap();
        assert_eq!(
            reasons(&d),
            vec![
                ("duplicate_label_names", 1),
                ("greater_than_max_sample_age", 1),
                ("invalid_timestamp", 1),
                ("label_invalid", 2),
                ("line_too_long", 1),
                ("missing_labels", 1),
                ("structured_metadata_invalid", 1),
                ("too_far_in_future", 1),
            ]
        );
        assert_eq!(d.rows(), 1);
        assert!(
            d.discards.first().unwrap().contains("streams[0]"),
            "{:?}",
            d.discards.first()
        );
        assert_eq!(d.cost, 4.0);

        // Loki's message for long lines, naming the limit and the entry.
        let body = format!(
            r#"{{"streams":[{{"stream":{{"app":"ok"}},"values":[["{NOW_NS}","0123456789"]]}}]}}"#
        );
        let d = decode_push_json(body.as_bytes(), &limits, NOW).unwrap();
        let msg = d.discards.first().unwrap();
        assert!(
            msg.starts_with("Max entry size '8' bytes exceeded for stream '{app=\"ok\"}' while adding an entry with length '10' bytes")
                && msg.contains("max_line_size")
                && msg.contains("streams[0].values[0]"),
            "{msg}"
        );

        let body = format!(
            r#"{{"streams":[{{"stream":{{"app":"ok"}},"values":[["12x","a"],["{NOW_NS}","b"]]}}]}}"#
        );
        let d = decode_push_json(body.as_bytes(), &limits, NOW).unwrap();
        let msg = d.discards.first().unwrap();
        assert!(
            msg.contains("\"12x\"") && msg.contains("streams[0].values[0]"),
            "{msg}"
        );
        assert_eq!(d.rows(), 1);
    }

    #[test]
    fn loki_json_malformed_bodies_are_request_errors_naming_where() {
        let limits = Limits::default();
        for (body, expect) in [
            (
                r#"{"streams":[{"stream":{"a":"b"},"values":[[1,"x"]]}]}"#,
                "timestamp as a string",
            ),
            (
                r#"{"streams":[{"stream":{"a":"b"},"values":[["1"]]}]}"#,
                "invalid length 1",
            ),
            (
                r#"{"streams":[{"stream":{"a":"b"},"values":[["1","x",{"k":1}]]}]}"#,
                "a string value",
            ),
            (
                r#"{"streams":[{"stream":{"a":"b"},"values":[["1","x",{},"extra"]]}]}"#,
                "invalid length",
            ),
            (
                r#"{"streams":[{"stream":{"a":1},"values":[]}]}"#,
                "a string value",
            ),
            (
                r#"{"streams":[{"stream":{"a":"b"}}]}"#,
                "missing field `values`",
            ),
            (r#"{"streams": [}"#, "line 1 column"),
            ("", "EOF"),
            ("not json", "expected"),
        ] {
            let e = decode_push_json(body.as_bytes(), &limits, NOW).unwrap_err();
            assert_eq!(e.status, 400);
            assert!(
                e.message.contains(expect) && e.message.contains("Loki push JSON"),
                "{body}: {e}"
            );
        }
        let e = decode_push_json(
            b"{\n\"streams\": [\n  {\"stream\": {\"a\": \"b\"}, \"values\": [[\"1\", 2]]}]}",
            &limits,
            NOW,
        )
        .unwrap_err();
        assert!(
            e.message.contains("log line as a string") && e.message.contains("line 3"),
            "{e}"
        );
        // A request without streams is valid and empty.
        assert_eq!(
            decode_push_json(br#"{"streams":[]}"#, &limits, NOW)
                .unwrap()
                .rows(),
            0
        );
    }

    #[test]
    fn loki_protobuf_streams_become_rows() {
        let body = encode_push_request(&[
            (
                r#"{app="cart", job="api\"x\\y\n"}"#,
                vec![
                    (NOW_NS, "one", vec![]),
                    (
                        NOW_NS + 5,
                        "two",
                        vec![("detected_level", "info"), ("span_id", "00F067AA0BA902B7")],
                    ),
                ],
            ),
            ("{app=\"db\",}", vec![(NOW_NS - 1, "three", vec![])]),
        ]);
        let d = decode_push_protobuf(&body, &Limits::default(), NOW).unwrap();
        assert!(d.discards.is_empty(), "{:?}", d.discards);
        assert_eq!(d.rows(), 3);
        assert_eq!(d.cost, 11.0);
        let b = &d.batches[0];
        assert_eq!(
            &crate::model::normalize::normalize(Signal::Logs, b).unwrap(),
            b,
            "canonical"
        );
        let labels = column(&d, "labels").as_map();
        assert_eq!(
            map_row(labels, 0),
            vec![("app", "cart"), ("job", "api\"x\\y\n")]
        );
        let ts =
            column(&d, "timestamp").as_primitive::<arrow::datatypes::TimestampNanosecondType>();
        assert_eq!((ts.value(1), ts.value(2)), (NOW_NS + 5, NOW_NS - 1));
        assert_eq!(column(&d, "severity").as_string::<i32>().value(1), "info");
        assert_eq!(
            column(&d, "span_id").as_string::<i32>().value(1),
            "00f067aa0ba902b7"
        );
    }

    #[test]
    fn loki_protobuf_bad_labels_and_utf8_discard_streams_not_the_request() {
        let body = encode_push_request(&[
            (
                r#"{ab""#,
                vec![(NOW_NS, "a", vec![]), (NOW_NS, "b", vec![])],
            ),
            ("{}", vec![(NOW_NS, "a", vec![])]),
            (r#"{app="ok"}"#, vec![(NOW_NS, "kept", vec![])]),
        ]);
        let d = decode_push_protobuf(&body, &Limits::default(), NOW).unwrap();
        assert_eq!(
            reasons(&d),
            vec![("invalid_labels", 2), ("missing_labels", 1)]
        );
        assert_eq!(d.rows(), 1);
        let msg = d.discards.first().unwrap();
        assert!(
            msg.contains(r#"error parsing labels '{ab"'"#)
                && msg.contains("byte 3")
                && msg.contains("streams[0]"),
            "{msg}"
        );

        // Invalid UTF-8 in the labels discards the stream; in a line, the entry.
        let mut body = encode_push_request(&[(r#"{app="XX"}"#, vec![(NOW_NS, "a", vec![])])]);
        let at = body.windows(2).position(|w| w == b"XX").unwrap();
        body[at] = 0xff;
        body.extend(encode_push_request(&[(
            r#"{app="ok"}"#,
            vec![(NOW_NS, "YY", vec![]), (NOW_NS, "fine", vec![])],
        )]));
        let at = body.windows(2).position(|w| w == b"YY").unwrap();
        body[at] = 0xc3;
        let d = decode_push_protobuf(&body, &Limits::default(), NOW).unwrap();
        assert_eq!(
            reasons(&d),
            vec![("invalid_labels", 1), ("invalid_utf8", 1)]
        );
        assert!(
            d.discards.first().unwrap().contains("not valid UTF-8"),
            "{:?}",
            d.discards.first()
        );
        assert_eq!(d.rows(), 1);

        // Timestamps: nanos outside 0..1e9 are invalid; 1970 is too old.
        let with_timestamp = |ts: &[u8]| {
            let mut entry = vec![0x0a, ts.len() as u8];
            entry.extend_from_slice(ts);
            entry.extend_from_slice(&[0x12, 0x01, b'x']);
            let mut stream = vec![0x0a, 0x07];
            stream.extend_from_slice(br#"{a="b"}"#);
            stream.extend_from_slice(&[0x12, entry.len() as u8]);
            stream.extend_from_slice(&entry);
            let mut body = vec![0x0a, stream.len() as u8];
            body.extend_from_slice(&stream);
            decode_push_protobuf(&body, &Limits::default(), NOW).unwrap()
        };
        let d = with_timestamp(&[0x08, 0x01, 0x10, 0x80, 0x94, 0xeb, 0xdc, 0x03]);
        assert_eq!(reasons(&d), vec![("invalid_timestamp", 1)]);
        assert!(
            d.discards.first().unwrap().contains("nanos 1000000000"),
            "{:?}",
            d.discards.first()
        );
        let d = with_timestamp(&[0x08, 0x01, 0x10, 0x7f]);
        assert_eq!(reasons(&d), vec![("greater_than_max_sample_age", 1)]);
        let mut huge = vec![0x08];
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]); // i64::MAX seconds
        let d = with_timestamp(&huge);
        assert_eq!(reasons(&d), vec![("invalid_timestamp", 1)]);
    }

    #[test]
    fn loki_protobuf_garbage_is_a_request_error() {
        for body in [
            &b"\x0a\xff\xff\x01"[..],
            b"not protobuf at all",
            b"\x0a\x03\x12\x05ab",
        ] {
            let e = decode_push_protobuf(body, &Limits::default(), NOW).unwrap_err();
            assert_eq!(e.status, 400);
            assert!(e.message.contains("malformed protobuf at byte"), "{e}");
        }
    }

    #[test]
    fn loki_labels_text_parser() {
        let owned = |v: LabelPairs<'_>| -> Vec<(String, String)> {
            v.into_iter()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        };
        let p = |s: &str| parse_labels(s).map(owned);
        assert_eq!(p("{}").unwrap(), vec![]);
        assert_eq!(
            p(r#" { a = "b" ,c="d\u00e9\t\x41" , } "#).unwrap(),
            vec![("a".into(), "b".into()), ("c".into(), "dé\tA".into())]
        );
        assert!(matches!(
            parse_labels(r#"{a="plain"}"#).unwrap()[0].1,
            Cow::Borrowed("plain")
        ));
        for (text, expect) in [
            ("", "expected '{' at byte 0, found the end"),
            ("a=\"b\"", "expected '{' at byte 0"),
            (
                r#"{a="b""#,
                "expected ',' or '}' after the value of label \"a\" at byte 6",
            ),
            (r#"{a="b"#, "unterminated quoted string starting at byte 3"),
            (
                r#"{a!="b"}"#,
                "expected '=' after label name \"a\" at byte 2, found '!'",
            ),
            (
                r#"{a=b}"#,
                "expected a double-quoted label value at byte 3, found 'b'",
            ),
            (r#"{="b"}"#, "expected a label name or '}' at byte 1"),
            (
                r#"{a="b" c="d"}"#,
                "expected ',' or '}' after the value of label \"a\" at byte 7",
            ),
            (r#"{a="b\q"}"#, "unknown escape \\q at byte 5"),
            (r#"{a="b\xff"}"#, "not valid UTF-8"),
            (r#"{a="\ud800"}"#, "not a Unicode scalar value"),
            (r#"{a="\u12"}"#, "needs 4 hex digits"),
            ("{a=\"x\ny\"}", "newline inside"),
            (r#"{a="b"} x"#, "unexpected 'x' at byte 8"),
            (r#"{a="é"}é"#, "unexpected 'é' at byte 8"),
        ] {
            let e = parse_labels(text).unwrap_err();
            assert!(e.contains(expect), "{text:?}: {e}");
        }
    }

    #[test]
    fn loki_decoders_never_panic_on_random_bytes() {
        use proptest::prelude::*;
        let limits = Limits::default();
        let mut runner = proptest::test_runner::TestRunner::default();
        runner
            .run(&proptest::collection::vec(any::<u8>(), 0..512), |bytes| {
                let _ = decode_push_protobuf(&bytes, &limits, NOW);
                let _ = decode_push_json(&bytes, &limits, NOW);
                if let Ok(text) = std::str::from_utf8(&bytes) {
                    let _ = parse_labels(text);
                }
                Ok(())
            })
            .unwrap();
        // Structured inputs reach deeper than random bytes.
        runner
            .run(&"\\{[a-z\"=,\\\\ ux0-9é\n}]{0,40}", |text| {
                let _ = parse_labels(&text);
                let body = encode_push_request(&[(&text, vec![(NOW_NS, "x", vec![])])]);
                let _ = decode_push_protobuf(&body, &limits, NOW);
                for cut in 0..body.len() {
                    let _ = decode_push_protobuf(&body[..cut], &limits, NOW);
                }
                Ok(())
            })
            .unwrap();
        runner
            .run(
                &r#"\{"streams":\[\{"stream":\{("[a-z_]{1,3}":"[a-z]{0,3}",?)*\},"values":\[(\["-?[0-9]{0,20}","[a-z\\"]{0,5}"(,\{\})?\],?)*\]\}\]\}"#,
                |text| {
                    let _ = decode_push_json(text.as_bytes(), &limits, NOW);
                    Ok(())
                },
            )
            .unwrap();
    }
}
