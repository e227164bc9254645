//! The JSON bodies of the Loki query API, shaped as Loki 3.x writes them:
//! `{"status":"success","data":{"resultType":…,"result":…,"stats":…}}` for
//! queries (streams carry `[["<ns>","<line>"],…]`, metrics the Prometheus
//! shapes), bare lists for labels and series, a bare object for index stats.

use std::time::Duration;

use crate::query::logql::fetch::StreamSummary;
use crate::query::logql::{LogEntry, LogStream, LogqlValue};
use crate::query::promql::Labels;
use crate::server::prometheus::json::{JsonWriter, query_data};

/// The answer of `query` / `query_range`.
pub fn query_response(value: &LogqlValue, elapsed: Duration) -> String {
    let mut w = JsonWriter::new();
    w.raw("{")
        .key("status")
        .string("success")
        .raw(",")
        .key("data");
    let (lines, bytes, returned) = match value {
        LogqlValue::Streams(streams) => {
            w.raw("{").key("resultType").string("streams");
            w.raw(",").key("result");
            let (lines, bytes) = streams_array(&mut w, streams, false);
            (lines, bytes, lines)
        }
        LogqlValue::Metric(value) => {
            let data = query_data(value);
            // query_data closes the object; stats are added before that.
            w.raw(&data[..data.len() - 1]);
            (0, 0, 0)
        }
    };
    w.raw(",").key("stats");
    stats(&mut w, lines, bytes, returned, elapsed);
    w.raw("}}");
    w.finish()
}

/// `[{"stream":{…},"values":[["<ns>","<line>"],…]},…]`, each stream's
/// entries in their order or (`reversed`) the opposite one; returns the
/// entries and line bytes written.
pub fn streams_array(w: &mut JsonWriter, streams: &[LogStream], reversed: bool) -> (u64, u64) {
    let (mut lines, mut bytes) = (0u64, 0u64);
    w.raw("[");
    for (i, s) in streams.iter().enumerate() {
        if i > 0 {
            w.raw(",");
        }
        w.raw("{").key("stream").labels(&s.labels);
        w.raw(",").key("values").raw("[");
        let mut entries: Vec<&LogEntry> = s.entries.iter().collect();
        if reversed {
            entries.reverse();
        }
        for (j, e) in entries.into_iter().enumerate() {
            if j > 0 {
                w.raw(",");
            }
            w.raw("[")
                .string(&e.timestamp_ns.to_string())
                .raw(",")
                .string(&e.line)
                .raw("]");
            lines += 1;
            bytes += e.line.len() as u64;
        }
        w.raw("]}");
    }
    w.raw("]");
    (lines, bytes)
}

/// The `stats.summary` Loki sends with every query answer.
fn stats(w: &mut JsonWriter, lines: u64, bytes: u64, returned: u64, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    let per_second = |n: u64| {
        if seconds > 0.0 {
            (n as f64 / seconds) as u64
        } else {
            0
        }
    };
    w.raw("{").key("summary").raw("{");
    let fields: [(&str, String); 10] = [
        ("bytesProcessedPerSecond", per_second(bytes).to_string()),
        ("linesProcessedPerSecond", per_second(lines).to_string()),
        ("totalBytesProcessed", bytes.to_string()),
        ("totalLinesProcessed", lines.to_string()),
        ("execTime", format!("{seconds}")),
        ("queueTime", "0".into()),
        ("subqueries", "0".into()),
        ("totalEntriesReturned", returned.to_string()),
        ("splits", "0".into()),
        ("shards", "0".into()),
    ];
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            w.raw(",");
        }
        w.key(name).raw(value);
    }
    w.raw("}}");
}

/// `{"status":"success","data":["a","b"]}`
pub fn string_list(items: &[&str]) -> String {
    let mut w = JsonWriter::new();
    w.raw("{")
        .key("status")
        .string("success")
        .raw(",")
        .key("data");
    w.string_array(items).raw("}");
    w.finish()
}

/// `{"status":"success","data":[{"app":"x"},…]}`
pub fn series_list(series: &[Labels]) -> String {
    let mut w = JsonWriter::new();
    w.raw("{")
        .key("status")
        .string("success")
        .raw(",")
        .key("data")
        .raw("[");
    for (i, labels) in series.iter().enumerate() {
        if i > 0 {
            w.raw(",");
        }
        w.labels(labels);
    }
    w.raw("]}");
    w.finish()
}

/// `{"streams":N,"chunks":N,"bytes":N,"entries":N}`: chunks are counted as
/// streams (one head or block part per stream and range).
pub fn index_stats(streams: &[StreamSummary]) -> String {
    let entries: u64 = streams.iter().map(|s| s.entries).sum();
    let bytes: u64 = streams.iter().map(|s| s.bytes).sum();
    format!(
        "{{\"streams\":{},\"chunks\":{},\"bytes\":{bytes},\"entries\":{entries}}}",
        streams.len(),
        streams.len()
    )
}

/// `{"status":"success","data":"<query>"}`
pub fn format_query(formatted: &str) -> String {
    let mut w = JsonWriter::new();
    w.raw("{")
        .key("status")
        .string("success")
        .raw(",")
        .key("data");
    w.string(formatted).raw("}");
    w.finish()
}

pub fn build_info() -> String {
    let mut w = JsonWriter::new();
    w.raw("{").key("version").string("3.5.0");
    w.raw(",").key("revision").string(env!("CARGO_PKG_VERSION"));
    w.raw(",").key("branch").string("main");
    w.raw(",").key("buildUser").string("o11ydb");
    w.raw(",").key("buildDate").string("");
    w.raw(",").key("goVersion").string("");
    w.raw("}");
    w.finish()
}
