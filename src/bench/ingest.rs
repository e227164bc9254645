//! `o11ydb bench remote-write`: a load generator that sends Prometheus
//! remote-write requests to any receiver (o11ydb, or Prometheus' own
//! `--web.enable-remote-write-receiver`) and reports samples per second.
//!
//! Requests are built before the clock starts (snappy-compressed
//! `WriteRequest`s of `samples_per_request` series with one sample each, the
//! shape Prometheus sends), so the generator costs little CPU while timed.
//! Each connection owns a fixed share of the series and sends its requests
//! in time order, as Prometheus' shards do, so no receiver sees
//! out-of-order samples.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::bench::samples::SampleGenerator;
use crate::error::{Error, Result};
use crate::ingest::remote_write::{SeriesSamples, encode_write_request};

#[derive(Debug, Clone)]
pub struct RemoteWriteBench {
    pub addr: SocketAddr,
    pub path: String,
    pub series: usize,
    /// Scrapes of every series to send (samples = series × scrapes).
    pub scrapes: usize,
    pub samples_per_request: usize,
    pub connections: usize,
    /// Timestamp of the first scrape, ms since the epoch.
    pub start_ms: i64,
}

#[derive(Debug, Clone)]
pub struct RemoteWriteReport {
    pub samples: u64,
    pub requests: u64,
    pub request_bytes: u64,
    pub elapsed: Duration,
    pub failed: u64,
    pub first_failure: Option<String>,
}

impl RemoteWriteReport {
    pub fn samples_per_second(&self) -> f64 {
        self.samples as f64 / self.elapsed.as_secs_f64()
    }
}

/// Builds every request body up front: per connection, its requests in time order.
fn build_requests(b: &RemoteWriteBench) -> Vec<Vec<(Vec<u8>, u64)>> {
    use arrow::array::AsArray;
    use arrow::datatypes::{Float64Type, TimestampMillisecondType};
    let mut generator = SampleGenerator::new(b.series, b.scrapes, 15_000, b.start_ms, 7);
    let mut per_connection: Vec<Vec<(Vec<u8>, u64)>> = vec![Vec::new(); b.connections.max(1)];
    let mut pending: Vec<Vec<SeriesSamples>> = vec![Vec::new(); b.connections.max(1)];
    let mut snappy = snap::raw::Encoder::new();
    let mut flush =
        |conn: usize, series: &mut Vec<SeriesSamples>, out: &mut Vec<Vec<(Vec<u8>, u64)>>| {
            if series.is_empty() {
                return;
            }
            let body = encode_write_request(series);
            let compressed = snappy
                .compress_vec(&body)
                .expect("snappy compresses any input");
            out[conn].push((compressed, series.len() as u64));
            series.clear();
        };
    while let Some(batch) = generator.next_batch(b.series) {
        let ts = batch.column(0).as_primitive::<TimestampMillisecondType>();
        let metric = batch.column(1).as_string::<i32>();
        let labels = batch.column(2).as_map();
        let value = batch.column(3).as_primitive::<Float64Type>();
        for row in 0..batch.num_rows() {
            let conn = row % per_connection.len();
            let mut pairs: Vec<(String, String)> =
                vec![("__name__".into(), metric.value(row).into())];
            pairs.extend(
                crate::model::labels::map_row(labels, row)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string())),
            );
            pending[conn].push((pairs, vec![(ts.value(row), value.value(row))]));
            if pending[conn].len() >= b.samples_per_request {
                flush(conn, &mut pending[conn], &mut per_connection);
            }
        }
        // A scrape's leftovers go out before the next scrape's samples.
        for (conn, leftover) in pending.iter_mut().enumerate() {
            flush(conn, leftover, &mut per_connection);
        }
    }
    per_connection
}

/// One keep-alive HTTP/1.1 connection posting bodies; returns (ok, failed, first failure).
async fn post_all(
    addr: SocketAddr,
    path: &str,
    requests: Vec<(Vec<u8>, u64)>,
) -> Result<(u64, u64, u64, Option<String>)> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let (mut ok_samples, mut requests_done, mut failed) = (0u64, 0u64, 0u64);
    let mut first_failure = None;
    let mut line = String::new();
    for (body, samples) in requests {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-protobuf\r\n\
             Content-Encoding: snappy\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\n\
             User-Agent: o11ydb-bench\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        write.write_all(head.as_bytes()).await?;
        write.write_all(&body).await?;
        line.clear();
        read.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Config(format!("bad HTTP status line {line:?}")))?;
        let mut content_length = 0usize;
        loop {
            line.clear();
            read.read_line(&mut line).await?;
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
        requests_done += 1;
        if (200..300).contains(&status) {
            ok_samples += samples;
        } else {
            failed += 1;
            first_failure
                .get_or_insert_with(|| format!("{status}: {}", String::from_utf8_lossy(&response)));
        }
    }
    Ok((ok_samples, requests_done, failed, first_failure))
}

/// Sends all requests over `connections` connections and times it.
pub async fn run_remote_write(b: &RemoteWriteBench) -> Result<RemoteWriteReport> {
    let per_connection = build_requests(b);
    let request_bytes: u64 = per_connection
        .iter()
        .flat_map(|c| c.iter().map(|(body, _)| body.len() as u64))
        .sum();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for requests in per_connection {
        let path = b.path.clone();
        let addr = b.addr;
        tasks.push(tokio::spawn(async move {
            post_all(addr, &path, requests).await
        }));
    }
    let mut report = RemoteWriteReport {
        samples: 0,
        requests: 0,
        request_bytes,
        elapsed: Duration::ZERO,
        failed: 0,
        first_failure: None,
    };
    for t in tasks {
        let (samples, requests, failed, first) = t
            .await
            .map_err(|e| Error::Config(format!("load generator task failed: {e}")))??;
        report.samples += samples;
        report.requests += requests;
        report.failed += failed;
        report.first_failure = report.first_failure.or(first);
    }
    report.elapsed = started.elapsed();
    Ok(report)
}
