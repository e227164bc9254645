//! `o11ydb bench ingest`: a load generator that sends real ingest requests —
//! Prometheus remote write, Loki push (protobuf + snappy) or OTLP/HTTP traces
//! — to any receiver (o11ydb, or Prometheus' own
//! `--web.enable-remote-write-receiver`) and reports items and bytes per
//! second.
//!
//! Requests are built before the clock starts, in the shape real agents send
//! (Prometheus' shards, Promtail/Alloy batches, OTel SDK batch exports), so
//! the generator costs little CPU while timed. Each connection owns a fixed
//! share of the series/streams and sends its requests in time order, so no
//! receiver sees out-of-order data.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, status};
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::bench::samples::SampleGenerator;
use crate::error::{Error, Result};
use crate::ingest::loki_push::{TestEntry, encode_push_request};
use crate::ingest::remote_write::{SeriesSamples, encode_write_request};

/// What the load generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// Prometheus remote write 1.0: `items` series, one sample each per round.
    RemoteWrite,
    /// Loki push, protobuf + snappy: `items` streams, one line each per round.
    LokiPush,
    /// OTLP/HTTP protobuf traces: `items` traces of 10 spans per round.
    OtlpTraces,
}

impl Protocol {
    pub fn default_path(self) -> &'static str {
        match self {
            Protocol::RemoteWrite => "/api/v1/write",
            Protocol::LokiPush => "/loki/api/v1/push",
            Protocol::OtlpTraces => "/v1/traces",
        }
    }

    /// What one item is, for reports.
    pub fn item(self) -> &'static str {
        match self {
            Protocol::RemoteWrite => "samples",
            Protocol::LokiPush => "lines",
            Protocol::OtlpTraces => "spans",
        }
    }

    fn headers(self) -> &'static str {
        match self {
            Protocol::RemoteWrite => {
                "Content-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\n\
                 X-Prometheus-Remote-Write-Version: 0.1.0\r\n"
            }
            Protocol::LokiPush => "Content-Type: application/x-protobuf\r\n",
            Protocol::OtlpTraces => "Content-Type: application/x-protobuf\r\n",
        }
    }
}

#[derive(Debug, Clone)]
pub struct IngestBench {
    pub protocol: Protocol,
    pub addr: SocketAddr,
    pub path: String,
    /// Series (remote write), streams (Loki) or traces per round (OTLP).
    pub items: usize,
    /// Rounds: scrapes of every series, lines of every stream, trace batches.
    pub rounds: usize,
    /// Items per request (remote write samples, Loki lines, OTLP spans).
    pub per_request: usize,
    pub connections: usize,
    /// Time of the first round, ms since the epoch.
    pub start_ms: i64,
}

/// One prepared request: its body, the items in it, and their payload bytes
/// (log line bytes for Loki; the body size otherwise).
struct Prepared {
    body: Vec<u8>,
    items: u64,
    payload_bytes: u64,
}

#[derive(Debug, Clone, Default)]
pub struct IngestReport {
    /// Items acknowledged with a 2xx.
    pub items: u64,
    pub payload_bytes: u64,
    pub requests: u64,
    /// Bytes on the wire (compressed bodies).
    pub request_bytes: u64,
    pub elapsed: Duration,
    pub failed: u64,
    /// Requests answered 429/503 and sent again.
    pub retried: u64,
    pub first_failure: Option<String>,
}

impl IngestReport {
    pub fn items_per_second(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64()
    }

    pub fn payload_mb_per_second(&self) -> f64 {
        self.payload_bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }
}

/// Gathers items per connection and seals them into requests.
struct Batcher {
    per_connection: Vec<Vec<Prepared>>,
    snappy: snap::raw::Encoder,
}

impl Batcher {
    fn new(connections: usize) -> Self {
        Batcher {
            per_connection: (0..connections.max(1)).map(|_| Vec::new()).collect(),
            snappy: snap::raw::Encoder::new(),
        }
    }

    fn connections(&self) -> usize {
        self.per_connection.len()
    }

    fn seal(&mut self, conn: usize, body: Vec<u8>, items: u64, payload_bytes: Option<u64>) {
        let body = self
            .snappy
            .compress_vec(&body)
            .expect("snappy compresses any input");
        let payload_bytes = payload_bytes.unwrap_or(body.len() as u64);
        self.per_connection[conn].push(Prepared {
            body,
            items,
            payload_bytes,
        });
    }
}

fn remote_write_requests(b: &IngestBench) -> Vec<Vec<Prepared>> {
    use arrow::array::AsArray;
    use arrow::datatypes::{Float64Type, TimestampMillisecondType};
    let mut generator = SampleGenerator::new(b.items, b.rounds, 15_000, b.start_ms, 7);
    let mut out = Batcher::new(b.connections);
    let mut pending: Vec<Vec<SeriesSamples>> = vec![Vec::new(); out.connections()];
    let flush = |out: &mut Batcher, conn: usize, series: &mut Vec<SeriesSamples>| {
        if !series.is_empty() {
            out.seal(
                conn,
                encode_write_request(series),
                series.len() as u64,
                None,
            );
            series.clear();
        }
    };
    while let Some(batch) = generator.next_batch(b.items) {
        let ts = batch.column(0).as_primitive::<TimestampMillisecondType>();
        let metric = batch.column(1).as_string::<i32>();
        let labels = batch.column(2).as_map();
        let value = batch.column(3).as_primitive::<Float64Type>();
        for row in 0..batch.num_rows() {
            let conn = row % out.connections();
            let mut pairs: Vec<(String, String)> =
                vec![("__name__".into(), metric.value(row).into())];
            pairs.extend(
                crate::model::labels::map_row(labels, row)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string())),
            );
            pending[conn].push((pairs, vec![(ts.value(row), value.value(row))]));
            if pending[conn].len() >= b.per_request {
                flush(&mut out, conn, &mut pending[conn]);
            }
        }
        // A scrape's leftovers go out before the next scrape's samples.
        for (conn, leftover) in pending.iter_mut().enumerate() {
            flush(&mut out, conn, leftover);
        }
    }
    out.per_connection
}

const SERVICES: [&str; 6] = ["checkout", "cart", "payment", "frontend", "search", "auth"];
const PATHS: [&str; 5] = ["/api/cart", "/api/checkout", "/", "/api/search", "/login"];

fn hex_token(rng: &mut StdRng, bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// A logfmt access-log line of about 200 bytes with ids, durations and paths.
fn log_line(rng: &mut StdRng, ns: i64) -> String {
    let level = match rng.random_range(0..100) {
        0..3 => "error",
        3..10 => "warn",
        10..80 => "info",
        _ => "debug",
    };
    let status = if level == "error" { 500 } else { 200 };
    format!(
        "ts={ns} level={level} msg=\"request handled\" method=GET path={}?id={} status={status} \
         duration_ms={:.3} bytes={} trace_id={} user=u{} region=eu-west-{}",
        PATHS[rng.random_range(0..PATHS.len())],
        rng.random_range(0..100_000),
        rng.random_range(0.1f64..900.0),
        rng.random_range(0..65_536),
        hex_token(rng, 16),
        rng.random_range(0..5000),
        rng.random_range(1..4),
    )
}

fn loki_requests(b: &IngestBench) -> Vec<Vec<Prepared>> {
    let mut rng = StdRng::seed_from_u64(11);
    let mut out = Batcher::new(b.connections);
    let streams: Vec<String> = (0..b.items)
        .map(|i| {
            format!(
                r#"{{service_name="{}", namespace="shop", pod="pod-{i}", level="info"}}"#,
                SERVICES[i % SERVICES.len()]
            )
        })
        .collect();
    // Every stream logs a line per millisecond.
    let step_ns = 1_000_000;
    // Each connection owns every n-th stream and sends `per_request` lines at a time.
    for conn in 0..out.connections() {
        let mine: Vec<&String> = streams
            .iter()
            .skip(conn)
            .step_by(out.connections())
            .collect();
        if mine.is_empty() {
            continue;
        }
        let per_stream = (b.per_request / mine.len()).max(1);
        let mut round = 0;
        while round < b.rounds {
            let rounds = per_stream.min(b.rounds - round);
            let mut lines: Vec<Vec<(i64, String)>> = Vec::with_capacity(mine.len());
            let mut payload = 0u64;
            for _ in &mine {
                let entries: Vec<(i64, String)> = (round..round + rounds)
                    .map(|r| {
                        let ns = b.start_ms * 1_000_000 + r as i64 * step_ns;
                        let line = log_line(&mut rng, ns);
                        payload += line.len() as u64;
                        (ns, line)
                    })
                    .collect();
                lines.push(entries);
            }
            let request: Vec<(&str, Vec<TestEntry<'_>>)> = mine
                .iter()
                .zip(&lines)
                .map(|(labels, entries)| {
                    (
                        labels.as_str(),
                        entries
                            .iter()
                            .map(|(ns, line)| (*ns, line.as_str(), vec![]))
                            .collect(),
                    )
                })
                .collect();
            let items = (mine.len() * rounds) as u64;
            out.seal(conn, encode_push_request(&request), items, Some(payload));
            round += rounds;
        }
    }
    out.per_connection
}

fn string_attribute(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// One trace of 10 spans across the shop's services, as SDKs batch them.
fn trace_spans(rng: &mut StdRng, start_ns: u64) -> Vec<(usize, Span)> {
    let trace_id: Vec<u8> = (0..16).map(|_| rng.random()).collect();
    let mut spans = Vec::with_capacity(10);
    let mut parent = Vec::new();
    for depth in 0..10 {
        let span_id: Vec<u8> = (0..8).map(|_| rng.random::<u8>() | 1).collect();
        let error = rng.random_range(0..100) < 3;
        let start = start_ns + depth as u64 * 1_000_000;
        spans.push((
            depth % SERVICES.len(),
            Span {
                trace_id: trace_id.clone(),
                span_id: span_id.clone(),
                parent_span_id: parent.clone(),
                name: format!("GET {}", PATHS[depth % PATHS.len()]),
                kind: if depth == 0 { 2 } else { 3 },
                start_time_unix_nano: start,
                end_time_unix_nano: start + rng.random_range(100_000..50_000_000),
                attributes: vec![
                    string_attribute("http.request.method", "GET"),
                    string_attribute("url.path", PATHS[depth % PATHS.len()]),
                    string_attribute(
                        "http.response.status_code",
                        if error { "500" } else { "200" },
                    ),
                    string_attribute("user.id", format!("u{}", rng.random_range(0..5000))),
                ],
                status: Some(Status {
                    code: if error {
                        status::StatusCode::Error as i32
                    } else {
                        status::StatusCode::Unset as i32
                    },
                    message: if error {
                        "upstream failed".into()
                    } else {
                        String::new()
                    },
                }),
                ..Default::default()
            },
        ));
        parent = span_id;
    }
    spans
}

fn otlp_requests(b: &IngestBench) -> Vec<Vec<Prepared>> {
    let mut rng = StdRng::seed_from_u64(13);
    let mut out = Batcher::new(b.connections);
    let traces_per_request = (b.per_request / 10).max(1);
    let total = b.items * b.rounds;
    let mut made = 0;
    let mut request_index = 0;
    while made < total {
        let n = traces_per_request.min(total - made);
        let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
        for t in 0..n {
            let start = (b.start_ms as u64) * 1_000_000 + (made + t) as u64 * 1_000_000;
            for (service, span) in trace_spans(&mut rng, start) {
                by_service[service].push(span);
            }
        }
        let request = ExportTraceServiceRequest {
            resource_spans: by_service
                .into_iter()
                .enumerate()
                .map(|(i, spans)| ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![
                            string_attribute("service.name", SERVICES[i]),
                            string_attribute("service.instance.id", format!("{}-0", SERVICES[i])),
                            string_attribute("deployment.environment", "bench"),
                        ],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        spans,
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        };
        let conn = request_index % out.connections();
        // OTLP/HTTP bodies go uncompressed (the exporters' default).
        let body = request.encode_to_vec();
        out.per_connection[conn].push(Prepared {
            payload_bytes: body.len() as u64,
            items: (n * 10) as u64,
            body,
        });
        made += n;
        request_index += 1;
    }
    out.per_connection
}

/// One keep-alive HTTP/1.1 connection posting bodies in order.
async fn post_all(
    addr: SocketAddr,
    path: &str,
    headers: &str,
    requests: Vec<Prepared>,
) -> Result<IngestReport> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut report = IngestReport::default();
    let mut line = String::new();
    for request in requests {
        // Retryable answers (429, 503) are sent again after a backoff, as
        // Prometheus, Promtail and the OTel SDK do: what is timed is the
        // sustained rate the receiver accepts.
        let mut backoff = Duration::from_millis(20);
        let (status, response) = loop {
            let (status, response) = post_one(
                &mut read,
                &mut write,
                addr,
                path,
                headers,
                &request.body,
                &mut line,
            )
            .await?;
            if matches!(status, 429 | 503) {
                report.retried += 1;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
            break (status, response);
        };
        report.requests += 1;
        report.request_bytes += request.body.len() as u64;
        if (200..300).contains(&status) {
            report.items += request.items;
            report.payload_bytes += request.payload_bytes;
        } else {
            report.failed += 1;
            report
                .first_failure
                .get_or_insert_with(|| format!("{status}: {}", String::from_utf8_lossy(&response)));
        }
    }
    Ok(report)
}

/// Sends one request on the connection and reads its answer.
async fn post_one(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    addr: SocketAddr,
    path: &str,
    headers: &str,
    body: &[u8],
    line: &mut String,
) -> Result<(u16, Vec<u8>)> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}User-Agent: o11ydb-bench\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    write.write_all(head.as_bytes()).await?;
    write.write_all(body).await?;
    line.clear();
    read.read_line(line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Config(format!("bad HTTP status line {line:?}")))?;
    let mut content_length = 0usize;
    loop {
        line.clear();
        read.read_line(line).await?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            content_length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut response = vec![0u8; content_length];
    read.read_exact(&mut response).await?;
    Ok((status, response))
}

/// Builds the requests, sends them over `connections` connections and times it.
pub async fn run(b: &IngestBench) -> Result<IngestReport> {
    let per_connection = match b.protocol {
        Protocol::RemoteWrite => remote_write_requests(b),
        Protocol::LokiPush => loki_requests(b),
        Protocol::OtlpTraces => otlp_requests(b),
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for requests in per_connection {
        let path = b.path.clone();
        let (addr, headers) = (b.addr, b.protocol.headers());
        tasks.push(tokio::spawn(async move {
            post_all(addr, &path, headers, requests).await
        }));
    }
    let mut report = IngestReport::default();
    for t in tasks {
        let one = t
            .await
            .map_err(|e| Error::Config(format!("load generator task failed: {e}")))??;
        report.items += one.items;
        report.payload_bytes += one.payload_bytes;
        report.requests += one.requests;
        report.request_bytes += one.request_bytes;
        report.failed += one.failed;
        report.retried += one.retried;
        report.first_failure = report.first_failure.or(one.first_failure);
    }
    report.elapsed = started.elapsed();
    Ok(report)
}
