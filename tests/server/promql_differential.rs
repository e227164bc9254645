//! PromQL differential test: the same scrape-shaped dataset in a real
//! Prometheus (Debian's 2.42, from `promtool tsdb create-blocks-from
//! openmetrics`) and in the real o11ydb binary (remote write, part of it
//! flushed to Parquet blocks, the rest in the head), then every query below
//! through both `/api/v1/query_range` (and `/api/v1/query`) endpoints.
//! o11ydb's query frontend splits its range queries by 20 minutes, so each
//! answer is also a check that split-and-merge changes nothing. The
//! answers must agree: same result type, same series label sets, same
//! timestamps, values within a relative 1e-6 (NaN equals NaN; magnitudes
//! under 1e-9 count as equal). Skips with a message when `prometheus` or
//! `promtool` is not installed (`.ci/run` installs them).
//!
//! The dataset (`o11ydb::bench::scrape_dataset`): 3 jobs × 3 instances × 21
//! series (counters with restarts, gauges, a classic histogram, `up`, an
//! `app_build_info` for joins), 3 h at 15 s with ±2 s jitter, gaps longer
//! than the lookback, a late-starting and an early-ending target; the data
//! ends an hour before now.
//!
//! o11ydb follows Prometheus 3.x where 3.x and 2.42 differ; the test keeps
//! to where they agree:
//! * **Window boundaries.** 3.x range and lookback windows are left-open
//!   `(t-r, t]`, 2.42's closed `[t-r, t]`. No sample has a whole-second
//!   timestamp and every query time, range, offset and `@` is whole seconds,
//!   so no sample sits on a boundary. Range queries start at `:17`, so a
//!   subquery's window never starts exactly on one of its epoch-aligned
//!   inner steps (3.x would leave that step out).
//! * **Left out: `holt_winters`** — renamed `double_exponential_smoothing`
//!   in 3.x (and behind a feature flag there).
//! * **Left out: `limitk`, `limit_ratio`, `sort_by_label`,
//!   `sort_by_label_desc`, `mad_over_time`, `info`** — not in 2.42 (parse
//!   errors there).
//! * **Left out: native-histogram functions** (`histogram_count`,
//!   `histogram_sum`, `histogram_avg`, `histogram_fraction`,
//!   `histogram_stddev`, `histogram_stdvar`) and native histograms — 2.42
//!   has neither the functions nor 3.x's interpolation; the promqltest
//!   scripts of the conformance test check them.
//! * **Left out: ties in `topk`/`bottomk`/`sort`** — which of two equal
//!   samples wins is unspecified in both; those are applied to values that
//!   never tie (memory bytes, latency sums).
//! * **Not compared: warnings and infos** — 2.42 has no info annotations
//!   and words its warnings differently.
//! * **Left out: `atan2` between vectors** — 3.x drops the metric name
//!   like the other arithmetic operators, 2.42 keeps the left side's.
//! * **Data shaped around `rate` extrapolation** — 2.42 clamps at the
//!   counter's zero point before testing whether the series starts inside
//!   the window, 3.x after; counters start high and restarting targets
//!   miss no scrape, so the clamp never decides (see the dataset's doc).

use std::net::SocketAddr;
use std::process::Command;

use o11ydb::bench::prom_http::{self, instant_query_path, query_range_path};
use o11ydb::bench::scrape_dataset::{
    DatasetSeries, DatasetShape, for_each_remote_write_body, generate, write_openmetrics,
};

use crate::common::{ChildGuard, Server, TEST_CONFIG, installed, tempdir};
use crate::prom_answers::{Answer, compare, parse};

/// Range queries over the whole data (10 minutes either side) at a 60 s step.
/// `AT` is replaced by a whole-second time inside the data.
const RANGE_QUERIES: &[&str] = &[
    // counters
    "rate(http_requests_total[5m])",
    "irate(http_requests_total[5m])",
    "increase(http_requests_total[10m])",
    "sum by (job) (rate(http_requests_total[5m]))",
    "sum by (job, code) (increase(http_requests_total[1h]))",
    "sum by (job) (rate(http_requests_total{code=~\"5..\"}[5m])) / sum by (job) (rate(http_requests_total[5m]))",
    "resets(http_requests_total[30m])",
    "rate(process_cpu_seconds_total[2m])",
    "deriv(process_cpu_seconds_total[10m])",
    "increase(http_requests_total{method=\"POST\", code!=\"200\"}[15m])",
    "sum without (method) (rate(http_requests_total{code=~\"4..|5..\"}[5m]))",
    "avg by (code) (rate(http_requests_total[5m]))",
    "label_replace(rate(http_requests_total[5m]), \"class\", \"${1}xx\", \"code\", \"(.).*\")",
    // gauges
    "delta(node_temperature_celsius[10m])",
    "idelta(node_temperature_celsius[5m])",
    "deriv(process_resident_memory_bytes[10m])",
    "predict_linear(process_resident_memory_bytes[30m], 3600)",
    "avg_over_time(queue_depth[10m])",
    "min_over_time(node_temperature_celsius[15m])",
    "max_over_time(queue_depth[15m])",
    "sum_over_time(queue_depth[5m])",
    "count_over_time(up[10m])",
    "last_over_time(node_temperature_celsius[5m])",
    "stddev_over_time(node_temperature_celsius[20m])",
    "stdvar_over_time(queue_depth[20m])",
    "quantile_over_time(0.9, queue_depth[15m])",
    "changes(queue_depth[10m])",
    "present_over_time(up[5m])",
    "absent_over_time(up{job=\"api\"}[5m])",
    // histograms
    "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.5, sum by (job, le) (rate(http_request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.9, rate(http_request_duration_seconds_bucket[10m]))",
    "max by (job) (histogram_quantile(0.95, rate(http_request_duration_seconds_bucket[5m])))",
    "rate(http_request_duration_seconds_sum[5m]) / rate(http_request_duration_seconds_count[5m])",
    // aggregations
    "topk(3, process_resident_memory_bytes)",
    "bottomk(2, rate(http_request_duration_seconds_sum[5m]))",
    "topk by (job) (1, process_resident_memory_bytes)",
    "count_values(\"depth\", queue_depth)",
    "quantile(0.75, node_temperature_celsius)",
    "quantile by (job) (0.5, rate(http_requests_total[5m]))",
    "stddev by (job) (node_temperature_celsius)",
    "stdvar(process_resident_memory_bytes)",
    "avg by (instance) (node_temperature_celsius)",
    "min by (job) (queue_depth)",
    "max without (instance) (node_temperature_celsius)",
    "count by (job) (up)",
    "group by (job, version) (app_build_info)",
    "count(count by (version) (app_build_info))",
    "sum by (job) (up) / count by (job) (up)",
    // labels
    "label_replace(up, \"host\", \"$1\", \"instance\", \"(.*):.*\")",
    "label_join(up, \"job_instance\", \"/\", \"job\", \"instance\")",
    // offset and @
    "rate(http_requests_total[5m] offset 30m)",
    "sum(rate(http_requests_total[5m])) / sum(rate(http_requests_total[5m] offset 1h))",
    "increase(http_request_duration_seconds_count[15m] offset -10m)",
    "queue_depth @ AT",
    "rate(http_requests_total[20m] @ end())",
    "max_over_time(queue_depth[20m] @ start() offset -15m)",
    // subqueries
    "max_over_time(rate(http_requests_total[5m])[30m:1m])",
    "avg_over_time(sum by (job) (queue_depth)[15m:])",
    "min_over_time(deriv(node_temperature_celsius[5m])[20m:2m])",
    "sum_over_time(rate(process_cpu_seconds_total[5m])[10m:30s])",
    // vector matching
    "rate(http_requests_total[5m]) * on (job, instance) group_left (version) app_build_info",
    "sum by (job, instance) (rate(http_requests_total[5m])) / on (job) group_left sum by (job) (rate(http_requests_total[5m]))",
    "rate(http_request_duration_seconds_bucket{le=\"0.25\"}[5m]) / ignoring (le) rate(http_request_duration_seconds_count[5m])",
    "queue_depth + on (job, instance) node_temperature_celsius",
    "app_build_info * on (job, instance) group_right (version) rate(process_cpu_seconds_total[5m])",
    // set operators and comparisons
    "queue_depth > 50 and on (job, instance) node_temperature_celsius > 40",
    "queue_depth{job=\"api\"} or node_temperature_celsius",
    "up unless on (job, instance) (queue_depth > 80)",
    "queue_depth > bool 40",
    "node_temperature_celsius >= 45",
    "rate(http_requests_total[5m]) > 0.5",
    "sum by (job) (queue_depth) < bool 150",
    // scalars, absent, time
    "scalar(sum(up))",
    "queue_depth / scalar(max(queue_depth))",
    "vector(1)",
    "sum(up) * 2 - 1",
    "absent(nonexistent_metric)",
    "absent(up{job=\"nope\"})",
    "absent(up{job=\"api\"})",
    "time()",
    "minute()",
    "hour(timestamp(up))",
    "time() - timestamp(queue_depth)",
    "day_of_week()",
    "days_in_month()",
    "sort_desc(sum by (job) (rate(http_requests_total[5m])))",
    // arithmetic and math
    "abs(deriv(node_temperature_celsius[10m]))",
    "ceil(node_temperature_celsius)",
    "floor(node_temperature_celsius / 7)",
    "round(node_temperature_celsius, 0.5)",
    "sqrt(queue_depth)",
    "ln(queue_depth + 1)",
    "exp(node_temperature_celsius / 100)",
    "clamp(queue_depth, 10, 60)",
    "clamp_min(queue_depth, 20)",
    "clamp_max(queue_depth, 20)",
    "sgn(delta(node_temperature_celsius[5m]))",
    "log2(process_resident_memory_bytes)",
    "log10(process_resident_memory_bytes)",
    "-queue_depth % 7",
    "2 ^ (node_temperature_celsius / 10)",
    "sin(node_temperature_celsius) + cos(queue_depth)",
    // edges: short windows, negative horizons, several metrics, odd parameters
    "increase(http_requests_total{job=\"web\"}[90s])",
    "irate(process_cpu_seconds_total[20s])",
    "deriv(queue_depth[1m])",
    "predict_linear(node_temperature_celsius[5m], -600)",
    "resets(process_cpu_seconds_total[1h])",
    "delta(process_cpu_seconds_total[5m])",
    "changes(up[1h])",
    "count by (__name__) ({job=\"web\", __name__=~\"queue_depth|up|node_.*\"})",
    "{job=\"api\", __name__=~\"queue_depth|up\"}",
    "http_requests_total unless http_requests_total{code=\"200\"}",
    "1 - rate(http_requests_total{code=\"200\"}[5m]) / ignoring (code) group_left sum without (code) (rate(http_requests_total[5m]))",
    "scalar(up)",
    "last_over_time(up[1m:10s])",
    "quantile_over_time(0.5, rate(http_requests_total{job=\"api\"}[5m])[30m:1m])",
    "max_over_time(rate(http_requests_total{job=\"web\"}[5m])[30m:1m] @ AT)",
    "min_over_time(queue_depth[5m:15s] offset 1m)",
    "histogram_quantile(1, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    "histogram_quantile(-1, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.5, http_request_duration_seconds_bucket)",
    "count_values(\"v\", round(node_temperature_celsius))",
    "clamp(queue_depth, 60, 10)",
    "queue_depth == 10",
    "queue_depth != bool 10",
    "(queue_depth > 50) + 1",
    "sum_over_time(process_cpu_seconds_total[5m]) / count_over_time(process_cpu_seconds_total[5m])",
    "day_of_month(timestamp(up))",
    "month()",
    "year()",
    "acos(clamp(node_temperature_celsius / 100, -1, 1)) + deg(pi())",
    "topk(2, sum by (job, instance) (rate(http_request_duration_seconds_sum[5m])))",
    "avg without (instance) (process_resident_memory_bytes)",
    "timestamp(rate(http_requests_total{job=\"api\"}[5m]))",
    "absent_over_time(nonexistent[5m])",
    "label_replace(up, \"__name__\", \"renamed\", \"\", \"\")",
    "sum(rate(http_requests_total[5m])) by (job) > bool 1",
    "stddev_over_time(process_cpu_seconds_total[10m])",
    "quantile(0.2, rate(http_request_duration_seconds_sum[5m]))",
    "stddev(rate(http_request_duration_seconds_count[5m]))",
];

/// Range queries over 45 minutes at a 15 s step (the scrape interval).
const FINE_RANGE_QUERIES: &[&str] = &[
    "queue_depth",
    "rate(http_requests_total{job=\"web\"}[1m])",
    "irate(http_requests_total{job=\"worker\"}[1m])",
    "timestamp(node_temperature_celsius)",
    "histogram_quantile(0.75, sum by (job, le) (rate(http_request_duration_seconds_bucket[2m])))",
    "changes(node_temperature_celsius[2m])",
];

/// Range queries over the whole data at a 5 m step.
const COARSE_RANGE_QUERIES: &[&str] = &[
    "increase(http_requests_total[1h])",
    "max_over_time(rate(http_requests_total[5m])[1h:5m])",
    "avg_over_time(node_temperature_celsius[1h])",
];

/// Instant queries, each evaluated at three times (inside the data, near
/// its end, and after it within the lookback).
const INSTANT_QUERIES: &[&str] = &[
    "http_requests_total{job=\"api\"}[5m]",
    "queue_depth[10m] offset 5m",
    "sort_desc(sum by (job) (rate(http_requests_total[5m])))",
    "sort(process_resident_memory_bytes)",
    "topk(5, rate(http_request_duration_seconds_sum[5m]))",
    "count_values(\"depth\", queue_depth)",
    "histogram_quantile(0.9, sum by (job, le) (rate(http_request_duration_seconds_bucket[5m])))",
    "scalar(sum(up))",
    "time()",
    "vector(time())",
    "1 + 2 * 3",
    "\"a string\"",
    "max_over_time(rate(http_requests_total[5m])[30m:1m])",
    "absent(up{job=\"nope\"})",
    "up @ AT",
    "rate(http_requests_total[5m] @ AT)",
];

/// Queries that may legitimately answer nothing over this data.
fn may_be_empty(query: &str) -> bool {
    query.contains("absent") || query.starts_with("clamp(queue_depth, 60, 10)")
}

const MINUTE_MS: i64 = 60_000;

/// Writes the dataset as OpenMetrics, turns it into TSDB blocks with
/// promtool and starts Prometheus over them.
fn start_prometheus(dir: &std::path::Path, data: &[DatasetSeries]) -> (ChildGuard, SocketAddr) {
    let text = dir.join("data.om.txt");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&text).unwrap());
    write_openmetrics(data, &mut out).unwrap();
    drop(out);
    let tsdb = dir.join("tsdb");
    let made = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&text)
        .arg(&tsdb)
        .output()
        .expect("run promtool");
    assert!(
        made.status.success(),
        "promtool tsdb create-blocks-from openmetrics failed:\n{}{}",
        String::from_utf8_lossy(&made.stdout),
        String::from_utf8_lossy(&made.stderr)
    );
    crate::common::start_prometheus(
        dir,
        "global:\n  scrape_interval: 1h\nscrape_configs: []\n",
        &tsdb,
    )
}

/// Remote-writes the data before `flush_before_ms`, flushes it to blocks,
/// then writes the rest (which stays in the head).
fn load_o11ydb(server: &Server, data: &[DatasetSeries], flush_before_ms: i64) {
    let push = |from, to| {
        for_each_remote_write_body(data, 2_000, from, to, |body, _| {
            let answer = prom_http::remote_write(server.http, &body).expect("remote write");
            assert_eq!(answer.status, 204, "remote write: {}", answer.body);
        });
    };
    push(i64::MIN, flush_before_ms);
    server.flush();
    push(flush_before_ms, i64::MAX);
}

/// One query to run against both systems.
struct Case {
    query: String,
    path: String,
    /// Instant vectors keep their order (`sort`, `sort_desc`).
    ordered: bool,
}

struct Outcome {
    query: String,
    summary: String,
    failure: Option<String>,
}

fn run_case(case: &Case, o11ydb: SocketAddr, prometheus: SocketAddr) -> Outcome {
    let fetch = |addr| {
        prom_http::get(addr, &case.path)
            .map_err(|e| format!("request failed: {e}"))
            .and_then(|a| parse(&a.body).map_err(|e| format!("HTTP {}: {e}", a.status)))
    };
    let (ours, theirs) = (fetch(o11ydb), fetch(prometheus));
    let summary = match &theirs {
        Ok(a) => a.summary(),
        Err(e) => e.clone(),
    };
    let failure = match (&ours, &theirs) {
        (Ok(o), Ok(t)) => compare(o, t, case.ordered)
            .err()
            .or_else(|| empty_answer(t, &case.query)),
        (Err(e), _) => Some(format!("o11ydb: {e}")),
        (_, Err(e)) => Some(format!("Prometheus: {e}")),
    };
    Outcome {
        query: case.query.clone(),
        summary,
        failure,
    }
}

/// An empty Prometheus answer compares equal to anything empty; flag it, so
/// a dataset that did not load cannot pass.
fn empty_answer(theirs: &Answer, query: &str) -> Option<String> {
    let empty = match theirs {
        Answer::Vector(v) => v.is_empty(),
        Answer::Matrix(m) => m.is_empty(),
        _ => false,
    };
    (empty && !may_be_empty(query))
        .then(|| "Prometheus answered nothing (did the data load?)".to_string())
}

fn cases(shape: &DatasetShape) -> Vec<Case> {
    let (first, last) = (shape.start_ms, shape.end_ms());
    let at = first + 100 * MINUTE_MS + 13_000;
    let with_at = |q: &str| q.replace("AT", &prom_http::seconds(at));
    let mut cases = Vec::new();
    let range = |queries: &[&str], start: i64, end: i64, step: i64, cases: &mut Vec<Case>| {
        for q in queries {
            let query = with_at(q);
            cases.push(Case {
                path: query_range_path(&query, start, end, step),
                query: format!("{query}  [range step {}s]", step / 1000),
                ordered: false,
            });
        }
    };
    let start = first - 10 * MINUTE_MS + 17_000;
    let end = last + 10 * MINUTE_MS + 17_000;
    range(RANGE_QUERIES, start, end, MINUTE_MS, &mut cases);
    let fine_start = first + 60 * MINUTE_MS + 3_000;
    range(
        FINE_RANGE_QUERIES,
        fine_start,
        fine_start + 45 * MINUTE_MS,
        15_000,
        &mut cases,
    );
    range(COARSE_RANGE_QUERIES, start, end, 5 * MINUTE_MS, &mut cases);
    let instants = [
        first + 60 * MINUTE_MS + 7_000,
        last - 2 * MINUTE_MS + 3_000,
        last + 4 * MINUTE_MS + 11_000,
    ];
    for q in INSTANT_QUERIES {
        let query = with_at(q);
        for (i, t) in instants.iter().enumerate() {
            cases.push(Case {
                path: instant_query_path(&query, *t),
                query: format!("{query}  [instant #{}]", i + 1),
                ordered: query.starts_with("sort"),
            });
        }
    }
    cases
}

#[test]
fn promql_answers_match_prometheus() {
    for binary in ["prometheus", "promtool"] {
        if !installed(binary) {
            println!(
                "skipped: the {binary} binary is not installed (apt-get install prometheus; .ci/run installs it)"
            );
            return;
        }
    }
    let dir = tempdir();
    let now = chrono::Utc::now().timestamp_millis();
    let end = now.div_euclid(MINUTE_MS) * MINUTE_MS - 60 * MINUTE_MS;
    let shape = DatasetShape {
        jobs: 3,
        instances_per_job: 3,
        start_ms: end - 180 * MINUTE_MS,
        scrapes: 721,
        interval_ms: 15_000,
        jitter_ms: 2_000,
        seed: 42,
    };
    let data = generate(&shape);
    let samples: usize = data.iter().map(|s| s.points.len()).sum();
    println!("dataset: {} series, {samples} samples", data.len());

    let (_prometheus, prometheus) = start_prometheus(dir.path(), &data);
    let config = format!("{TEST_CONFIG}\n[query_frontend]\nsplit_queries_by_interval = \"20m\"\n");
    let server = Server::start_with(&dir.path().join("o11ydb"), &config);
    load_o11ydb(&server, &data, shape.start_ms + 120 * MINUTE_MS);
    let probe = prom_http::get(server.http, &instant_query_path("vector(1)", now)).unwrap();
    assert_eq!(
        probe.status, 200,
        "o11ydb's Prometheus query API answered {}: {}",
        probe.status, probe.body
    );

    let cases = cases(&shape);
    let range_cases = cases
        .iter()
        .filter(|c| c.path.contains("query_range"))
        .count();
    assert!(range_cases >= 50, "{range_cases} range queries");
    let outcomes: Vec<Outcome> = cases
        .iter()
        .map(|c| run_case(c, server.http, prometheus))
        .collect();
    let failures: Vec<&Outcome> = outcomes.iter().filter(|o| o.failure.is_some()).collect();
    let parts = crate::common::metric_value(
        server.http,
        "o11ydb_query_frontend_split_parts_total{language=\"promql\"}",
    );
    assert!(
        parts >= 5.0 * range_cases as f64,
        "range queries were not split: {parts} parts for {range_cases} queries"
    );
    for o in &outcomes {
        let verdict = if o.failure.is_some() { "DIFF" } else { "ok  " };
        println!("{verdict} {:<28} {}", o.summary, o.query);
    }
    println!(
        "{} of {} queries agree ({} range, {} instant)",
        outcomes.len() - failures.len(),
        outcomes.len(),
        range_cases,
        outcomes.len() - range_cases
    );
    let report: Vec<String> = failures
        .iter()
        .map(|o| format!("{}\n    {}", o.query, o.failure.as_deref().unwrap_or("")))
        .collect();
    assert!(
        failures.is_empty(),
        "{} queries differ from Prometheus (o11ydb vs Prometheus):\n{}",
        failures.len(),
        report.join("\n")
    );
}
