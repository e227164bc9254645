//! `o11ydb bench promql`: PromQL query latency of o11ydb beside Prometheus
//! on the same data (see `benches/promql.sh`, which starts both servers).
//!
//! * `data` generates the [`scrape_dataset`](super::scrape_dataset) of the
//!   given size and writes it as OpenMetrics (for `promtool tsdb
//!   create-blocks-from openmetrics`) and/or remote-writes it to an o11ydb
//!   and flushes it to Parquet blocks;
//! * `query` times each query of [`QUERIES`] against both HTTP APIs, one
//!   system after the other per run so both see the same machine state, and
//!   reports the median of `runs` timed runs after one untimed warm-up each.
//!   A run's time is from sending the request to the last byte of the
//!   answer (as `curl`'s `time_total`); parsing the answer's JSON is the
//!   client's work and is not timed. Every answer must be a success, and
//!   both must answer with as many series, or the run fails (the
//!   differential test checks the values).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::prom_http::{self, instant_query_path, query_range_path};
use super::scrape_dataset::{DatasetSeries, for_each_remote_write_body};

/// The timed queries: (name, PromQL).
pub const QUERIES: &[(&str, &str)] = &[
    (
        "sum by job of rate",
        "sum by (job) (rate(http_requests_total[5m]))",
    ),
    (
        "5xx error ratio",
        "sum by (job) (rate(http_requests_total{code=~\"5..\"}[5m])) / sum by (job) (rate(http_requests_total[5m]))",
    ),
    (
        "histogram_quantile p99",
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    ),
    ("topk of rate", "topk(10, rate(http_requests_total[5m]))"),
    (
        "avg_over_time",
        "avg_over_time(node_temperature_celsius[10m])",
    ),
    (
        "group_left info join",
        "sum by (job, instance) (rate(http_requests_total[5m])) * on (job, instance) group_left (version) app_build_info",
    ),
    (
        "offset 1h ratio",
        "sum by (job) (rate(http_requests_total[5m])) / sum by (job) (rate(http_requests_total[5m] offset 1h))",
    ),
    (
        "subquery max of rate",
        "max_over_time(sum by (job) (rate(http_requests_total[5m]))[30m:1m])",
    ),
    (
        "regex selector increase",
        "sum by (job) (increase(http_requests_total{job=~\"api|web|search\", code=~\"4..\"}[1h]))",
    ),
    (
        "quantile_over_time",
        "quantile_over_time(0.9, queue_depth[15m])",
    ),
    ("raw series fetch", "process_resident_memory_bytes"),
    ("count of series", "count({__name__=~\".+\"})"),
];

/// What a query is evaluated over.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// `/api/v1/query_range` from `start_ms` to `end_ms` every `step_ms`.
    Range {
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    },
    /// `/api/v1/query` at `time_ms`.
    Instant { time_ms: i64 },
}

impl Shape {
    fn path(&self, query: &str) -> String {
        match *self {
            Shape::Range {
                start_ms,
                end_ms,
                step_ms,
            } => query_range_path(query, start_ms, end_ms, step_ms),
            Shape::Instant { time_ms } => instant_query_path(query, time_ms),
        }
    }
}

/// Medians of one query on both systems.
#[derive(Debug, Clone)]
pub struct Timing {
    pub name: &'static str,
    pub o11ydb: Duration,
    pub prometheus: Duration,
    /// Series in the answer (the same in both).
    pub series: usize,
}

impl Timing {
    pub fn ratio(&self) -> f64 {
        self.o11ydb.as_secs_f64() / self.prometheus.as_secs_f64()
    }
}

/// Series in a successful answer, or the reason it is not one.
fn answer_series(addr: SocketAddr, path: &str) -> Result<usize, String> {
    series_of(addr, &fetch(addr, path)?)
}

/// The whole HTTP answer to a GET of `path`.
fn fetch(addr: SocketAddr, path: &str) -> Result<prom_http::Answer, String> {
    prom_http::get(addr, path).map_err(|e| format!("{addr}: {e}"))
}

/// Series in `answer` if it is a success, or the reason it is not one.
fn series_of(addr: SocketAddr, answer: &prom_http::Answer) -> Result<usize, String> {
    let json: serde_json::Value = serde_json::from_str(&answer.body)
        .map_err(|e| format!("{addr}: HTTP {} not JSON: {e}", answer.status))?;
    if answer.status != 200 || json["status"] != "success" {
        return Err(format!(
            "{addr}: HTTP {}: {}",
            answer.status,
            json["error"].as_str().unwrap_or(&answer.body)
        ));
    }
    Ok(match &json["data"]["result"] {
        serde_json::Value::Array(a) => a.len(),
        _ => 1,
    })
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Times every query of [`QUERIES`] on both systems: `runs` timed runs
/// (after one warm-up), the two systems alternating within each run.
pub fn time_queries(
    o11ydb: SocketAddr,
    prometheus: SocketAddr,
    shape: Shape,
    runs: usize,
) -> Result<Vec<Timing>, String> {
    let mut out = Vec::new();
    for (name, query) in QUERIES {
        let path = shape.path(query);
        let ours = answer_series(o11ydb, &path)?;
        let theirs = answer_series(prometheus, &path)?;
        if ours != theirs {
            return Err(format!(
                "{name}: o11ydb answered {ours} series, Prometheus {theirs}"
            ));
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..runs.max(1) {
            for (addr, times) in [(o11ydb, &mut a), (prometheus, &mut b)] {
                // The time a client waits for the whole answer; the
                // answer is checked (JSON parsed) after the clock stops.
                let started = Instant::now();
                let answer = fetch(addr, &path)?;
                times.push(started.elapsed());
                series_of(addr, &answer)?;
            }
        }
        out.push(Timing {
            name,
            o11ydb: median(a),
            prometheus: median(b),
            series: ours,
        });
    }
    Ok(out)
}

/// Remote-writes the dataset to o11ydb (`/api/v1/push`, 2,000 samples per
/// request, retrying 429/503 as Prometheus does) and flushes it to blocks.
/// Returns the samples written.
pub fn load_o11ydb(addr: SocketAddr, data: &[DatasetSeries]) -> Result<u64, String> {
    let mut written = 0u64;
    let mut failure = None;
    for_each_remote_write_body(data, 2_000, i64::MIN, i64::MAX, |body, samples| {
        if failure.is_some() {
            return;
        }
        let mut backoff = Duration::from_millis(20);
        loop {
            match prom_http::remote_write(addr, &body) {
                Ok(a) if a.status == 204 || a.status == 200 => {
                    written += samples as u64;
                    break;
                }
                Ok(a) if a.status == 429 || a.status == 503 => {
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Ok(a) => {
                    failure = Some(format!("remote write: HTTP {}: {}", a.status, a.body));
                    break;
                }
                Err(e) => {
                    failure = Some(format!("remote write: {e}"));
                    break;
                }
            }
        }
    });
    if let Some(f) = failure {
        return Err(f);
    }
    let flushed = prom_http::post(addr, "/flush", &[], b"").map_err(|e| e.to_string())?;
    if flushed.status != 204 {
        return Err(format!("flush: HTTP {}: {}", flushed.status, flushed.body));
    }
    Ok(written)
}

/// The results as a Markdown table.
pub fn markdown_table(timings: &[Timing]) -> String {
    let mut out = String::from(
        "| query | series | o11ydb ms | Prometheus ms | o11ydb / Prometheus |\n| --- | ---: | ---: | ---: | ---: |\n",
    );
    for t in timings {
        out.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {:.2} |\n",
            t.name,
            t.series,
            t.o11ydb.as_secs_f64() * 1000.0,
            t.prometheus.as_secs_f64() * 1000.0,
            t.ratio()
        ));
    }
    out
}
