//! `o11ydb bench logql`: log search and LogQL metric queries on o11ydb
//! beside ripgrep and DuckDB on the same data (see `benches/logql.sh`,
//! which runs the references).
//!
//! * [`LogsDataset`] generates a deterministic log set: 8 services × 4 pods
//!   (32 streams `{service, pod, env}`), half of the services writing JSON
//!   lines and half logfmt, with levels (also sent as structured metadata
//!   `detected_level`, as Loki's distributor adds it), HTTP fields, latencies
//!   and a 32-hex trace id per request (structured metadata `trace_id` too),
//!   spread evenly over `hours` ending at `end_ns`;
//! * `data` writes it as plain text (one line per entry, for ripgrep/grep)
//!   and/or pushes it to an o11ydb (Loki push, protobuf + snappy) and flushes;
//! * `query` times each query of [`queries`] over the Loki HTTP API (median
//!   of `runs` after a warm-up) and prints one line per query: name, median
//!   seconds, and a result digest (entries or the summed values) so the
//!   references can be checked against it.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::ingest::loki_push::{TestEntry, encode_push_request};

const SERVICES: [&str; 8] = [
    "api", "web", "auth", "cart", "checkout", "search", "db-proxy", "worker",
];
const PODS: usize = 4;
const PATHS: [&str; 6] = [
    "/api/cart",
    "/api/checkout",
    "/",
    "/api/search",
    "/login",
    "/api/users",
];
const MESSAGES: [&str; 8] = [
    "request handled",
    "cache miss",
    "upstream timeout",
    "retrying request",
    "connection reset by peer",
    "user logged in",
    "slow query",
    "payment authorised",
];

/// The generated log set (the same arguments give the same lines).
#[derive(Debug, Clone)]
pub struct LogsDataset {
    /// Approximate raw line bytes to generate.
    pub bytes: u64,
    pub hours: i64,
    /// Timestamp of the last line (ns).
    pub end_ns: i64,
}

/// One generated entry.
pub struct GeneratedLine<'a> {
    pub stream: usize,
    pub timestamp_ns: i64,
    pub line: &'a str,
    pub level: &'static str,
    pub trace_id: &'a str,
}

impl LogsDataset {
    /// Stream label sets, in stream index order.
    pub fn streams() -> Vec<String> {
        let mut out = Vec::new();
        for service in SERVICES {
            for pod in 0..PODS {
                out.push(format!(
                    r#"{{service="{service}", pod="{service}-{pod}", env="prod"}}"#
                ));
            }
        }
        out
    }

    /// Whether a service writes JSON lines (the others write logfmt).
    pub fn is_json(service: usize) -> bool {
        service.is_multiple_of(2)
    }

    /// The trace id of the request `n` of the set: deterministic, so the
    /// benchmark can search for one without reading the data.
    pub fn trace_id(n: u64) -> String {
        let h = xxhash_rust::xxh3::xxh3_128(&n.to_le_bytes());
        format!("{h:032x}")
    }

    /// The trace id the needle queries look for: one in the middle of the set.
    pub fn needle(&self) -> String {
        Self::trace_id(((self.bytes / 230) / 3 / 2).max(1))
    }

    /// Calls `sink` for every line, in time order.
    pub fn generate(&self, mut sink: impl FnMut(GeneratedLine<'_>) -> Result<()>) -> Result<()> {
        let mut rng = StdRng::seed_from_u64(17);
        // ~230 bytes per line on average.
        let lines = (self.bytes / 230).max(1);
        let span = self.hours * 3_600_000_000_000;
        let start = self.end_ns - span;
        let step = (span / lines as i64).max(1);
        let mut line = String::with_capacity(512);
        let mut request = 0u64;
        let mut trace = Self::trace_id(0);
        for i in 0..lines {
            // Three lines per request share a trace id.
            if i % 3 == 0 {
                request += 1;
                trace = Self::trace_id(request);
            }
            let stream = rng.random_range(0..SERVICES.len() * PODS);
            let service = stream / PODS;
            let level = match rng.random_range(0..100) {
                0..4 => "error",
                4..14 => "warn",
                14..74 => "info",
                _ => "debug",
            };
            let status = match level {
                "error" => [500, 502, 503][rng.random_range(0..3)],
                "warn" => [404, 429][rng.random_range(0..2)],
                _ => 200,
            };
            let message = MESSAGES[rng.random_range(0..MESSAGES.len())];
            let path = PATHS[rng.random_range(0..PATHS.len())];
            let latency = rng.random_range(0.2f64..1500.0);
            let bytes = rng.random_range(0..100_000);
            let user = rng.random_range(0..10_000);
            let ns = start + i as i64 * step;
            line.clear();
            if Self::is_json(service) {
                let _ = write!(
                    line,
                    r#"{{"level":"{level}","service":"{}","msg":"{message}","method":"GET","path":"{path}","status":{status},"latency_ms":{latency:.3},"bytes":{bytes},"user":"u{user}","trace_id":"{trace}"}}"#,
                    SERVICES[service]
                );
            } else {
                let _ = write!(
                    line,
                    r#"level={level} service={} msg="{message}" method=GET path={path} status={status} latency_ms={latency:.3} bytes={bytes} user=u{user} trace_id={trace}"#,
                    SERVICES[service]
                );
            }
            sink(GeneratedLine {
                stream,
                timestamp_ns: ns,
                line: &line,
                level,
                trace_id: &trace,
            })?;
        }
        Ok(())
    }
}

/// Writes the dataset as text (`text`) and/or pushes it to `push` and flushes.
pub fn load(dataset: &LogsDataset, text: Option<&Path>, push: Option<SocketAddr>) -> Result<u64> {
    let mut file = match text {
        Some(p) => Some(std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(p)?,
        )),
        None => None,
    };
    let streams = LogsDataset::streams();
    let mut pending: Vec<Vec<(i64, String, &'static str, String)>> =
        vec![Vec::new(); streams.len()];
    let mut pending_lines = 0usize;
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let mut total = 0u64;
    let encode = |pending: &mut Vec<Vec<(i64, String, &'static str, String)>>| {
        let request: Vec<(&str, Vec<TestEntry<'_>>)> = streams
            .iter()
            .zip(pending.iter())
            .filter(|(_, e)| !e.is_empty())
            .map(|(labels, entries)| {
                (
                    labels.as_str(),
                    entries
                        .iter()
                        .map(|(ns, line, level, trace)| {
                            (
                                *ns,
                                line.as_str(),
                                vec![("detected_level", *level), ("trace_id", trace.as_str())],
                            )
                        })
                        .collect(),
                )
            })
            .collect();
        let body = snap::raw::Encoder::new()
            .compress_vec(&encode_push_request(&request))
            .unwrap_or_default();
        for p in pending.iter_mut() {
            p.clear();
        }
        body
    };
    dataset.generate(|g| {
        total += g.line.len() as u64;
        if let Some(f) = file.as_mut() {
            f.write_all(g.line.as_bytes())?;
            f.write_all(b"\n")?;
        }
        if push.is_some() {
            pending[g.stream].push((
                g.timestamp_ns,
                g.line.to_string(),
                g.level,
                g.trace_id.to_string(),
            ));
            pending_lines += 1;
            if pending_lines >= 5000 {
                bodies.push(encode(&mut pending));
                pending_lines = 0;
            }
        }
        Ok(())
    })?;
    if pending_lines > 0 {
        bodies.push(encode(&mut pending));
    }
    if let Some(f) = file.as_mut() {
        f.flush()?;
    }
    if let Some(addr) = push {
        for body in &bodies {
            let mut backoff = Duration::from_millis(20);
            loop {
                let answer = super::prom_http::post(
                    addr,
                    "/loki/api/v1/push",
                    &[
                        ("Content-Type", "application/x-protobuf"),
                        ("Content-Encoding", "snappy"),
                    ],
                    body,
                )?;
                if matches!(answer.status, 429 | 503) {
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
                if !(200..300).contains(&answer.status) {
                    return Err(Error::Config(format!(
                        "push failed: {} {}",
                        answer.status, answer.body
                    )));
                }
                break;
            }
        }
        let answer = super::prom_http::post(addr, "/flush", &[], b"")?;
        if !(200..300).contains(&answer.status) {
            return Err(Error::Config(format!(
                "flush failed: {} {}",
                answer.status, answer.body
            )));
        }
    }
    Ok(total)
}

/// The timed queries: (name, LogQL, instant). Instant queries are evaluated
/// at the dataset's end over its whole span (`[HOURSh]`), so each reads
/// every line its selector matches: the figures are scan throughput.
pub fn queries(dataset: &LogsDataset) -> Vec<(&'static str, String, bool)> {
    let h = dataset.hours;
    let all = r#"{env="prod"}"#;
    vec![
        (
            "substring filter (count)",
            format!(r#"sum(count_over_time({all} |= "connection reset" [{h}h]))"#),
            true,
        ),
        (
            "regex filter (count)",
            format!(r#"sum(count_over_time({all} |~ "status[=\":]+50[23]" [{h}h]))"#),
            true,
        ),
        (
            "case-insensitive filter (count)",
            format!(r#"sum(count_over_time({all} |~ "(?i)UPSTREAM TIMEOUT" [{h}h]))"#),
            true,
        ),
        (
            "needle: one trace id (log query)",
            format!(r#"{all} | trace_id="{}""#, dataset.needle()),
            false,
        ),
        (
            "needle: trace id as a line filter (log query)",
            format!(r#"{all} |= "{}""#, dataset.needle()),
            false,
        ),
        (
            "count by level (5m buckets)",
            format!(r#"sum by (detected_level) (count_over_time({all} [5m]))"#),
            false,
        ),
        (
            "topk services by error ratio",
            format!(
                r#"topk(3, sum by (service) (count_over_time({all} | detected_level="error" [{h}h])) / sum by (service) (count_over_time({all} [{h}h])))"#
            ),
            true,
        ),
        (
            "json field extraction + aggregation",
            format!(r#"sum by (status) (count_over_time({{service="api"}} | json [{h}h]))"#),
            true,
        ),
        (
            "logfmt p99 of unwrapped latency",
            format!(
                r#"quantile_over_time(0.99, {{service="web"}} | logfmt | unwrap latency_ms [{h}h]) by (service)"#
            ),
            true,
        ),
    ]
}

/// Times every query; one result line per query.
pub fn query(
    addr: SocketAddr,
    dataset: &LogsDataset,
    runs: usize,
) -> Result<Vec<(String, Duration, String)>> {
    let start = dataset.end_ns - dataset.hours * 3_600_000_000_000;
    let mut out = Vec::new();
    for (name, q, instant) in queries(dataset) {
        let enc: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
        let path = if instant {
            format!("/loki/api/v1/query?query={enc}&time={}", dataset.end_ns)
        } else {
            format!(
                "/loki/api/v1/query_range?query={enc}&start={start}&end={}&step=300&limit=100",
                dataset.end_ns + 1
            )
        };
        let mut times = Vec::new();
        let mut digest = String::new();
        for run in 0..=runs {
            let started = Instant::now();
            let answer = super::prom_http::get(addr, &path)?;
            let elapsed = started.elapsed();
            if answer.status != 200 {
                return Err(Error::Config(format!(
                    "{name}: {} {}",
                    answer.status, answer.body
                )));
            }
            if run > 0 {
                times.push(elapsed);
            } else {
                digest = summarise(answer.body.as_bytes());
            }
        }
        times.sort();
        out.push((name.to_string(), times[times.len() / 2], digest));
    }
    Ok(out)
}

/// Entries returned (log queries) or the sum of all values and the series
/// count (metric queries), for checking against the references.
fn summarise(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let data = &v["data"];
    match data["resultType"].as_str() {
        Some("streams") => {
            let entries: usize = data["result"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .map(|s| s["values"].as_array().map_or(0, Vec::len))
                        .sum()
                })
                .unwrap_or(0);
            format!("{entries} entries")
        }
        Some("vector") | Some("matrix") => {
            let series = data["result"].as_array().cloned().unwrap_or_default();
            let mut sum = 0.0;
            for s in &series {
                let points: Vec<&serde_json::Value> = match s.get("value") {
                    Some(p) => vec![p],
                    None => s["values"]
                        .as_array()
                        .map(|a| a.iter().collect())
                        .unwrap_or_default(),
                };
                for p in points {
                    sum += p[1]
                        .as_str()
                        .and_then(|x| x.parse::<f64>().ok())
                        .unwrap_or(0.0);
                }
            }
            format!("{} series, sum {sum:.3}", series.len())
        }
        _ => "?".into(),
    }
}
