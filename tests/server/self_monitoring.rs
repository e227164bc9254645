//! Self-monitoring on the real binary: `/metrics` in the OpenMetrics format
//! covers ingest, the WAL (bytes, fsync latency), heads, blocks per tenant,
//! query latency by interface and language and the query frontend; a real
//! Prometheus (Debian's) scrapes it; `/-/healthy` and `/-/ready` answer;
//! `--log-level` sets what is logged.

use std::time::{Duration, Instant};

use o11ydb::bench::prom_http::{self, instant_query_path};
use serde_json::Value;

use crate::common::{
    Launch, Server, TEST_CONFIG, http_exchange, http_request, installed, metric_value,
    start_prometheus, tempdir,
};

#[tokio::test(flavor = "multi_thread")]
async fn metrics_cover_ingest_wal_storage_and_queries() {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let now = chrono::Utc::now().timestamp_millis();
    let client = server.client().await;
    client
        .batch_execute(&format!(
            "INSERT INTO samples (timestamp, metric, labels, value) VALUES \
             (to_timestamp_millis({now}), 'up', map(['job'], ['a']), 1), \
             (to_timestamp_millis({now}), 'up', map(['job'], ['b']), 1)"
        ))
        .await
        .unwrap();
    server.flush();
    client
        .query("SELECT count(*) FROM samples", &[])
        .await
        .unwrap();
    let answer = prom_http::get(server.http, &instant_query_path("up", now)).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    let (status, _) = http_request(
        server.http,
        "GET",
        "/loki/api/v1/query_range?query=%7Ba%3D%22b%22%7D",
    );
    assert_eq!(status, 200);

    let answer = http_exchange(server.http, "GET", "/metrics", &[], b"");
    assert_eq!(answer.status, 200);
    assert!(
        answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        answer.header("content-type")
    );
    assert!(answer.body.ends_with("# EOF\n"));
    let value = |series: &str| metric_value(server.http, series);
    for (series, at_least) in [
        ("o11ydb_wal_written_bytes_total", 1.0),
        ("o11ydb_wal_fsync_duration_seconds_count", 1.0),
        ("o11ydb_memory_series{tenant=\"anonymous\"}", 2.0),
        (
            "o11ydb_blocks{tenant=\"anonymous\",signal=\"samples\"}",
            1.0,
        ),
        (
            "o11ydb_block_rows{tenant=\"anonymous\",signal=\"samples\"}",
            2.0,
        ),
        (
            "o11ydb_block_bytes{tenant=\"anonymous\",signal=\"samples\"}",
            100.0,
        ),
        // The flushed block's bloom, put in the cache as it is written.
        ("o11ydb_index_cache_entries", 1.0),
        ("o11ydb_index_cache_bytes", 64.0),
        (
            "o11ydb_query_duration_seconds_count{interface=\"http\",language=\"promql\"}",
            1.0,
        ),
        (
            "o11ydb_query_duration_seconds_count{interface=\"http\",language=\"logql\"}",
            1.0,
        ),
        (
            "o11ydb_query_duration_seconds_count{interface=\"pgwire\",language=\"sql\"}",
            2.0,
        ),
        (
            "o11ydb_query_frontend_queries_total{language=\"promql\"}",
            1.0,
        ),
    ] {
        let v = value(series);
        assert!(
            v >= at_least,
            "{series} is {v}, expected ≥ {at_least}:\n{}",
            answer.body
        );
    }
    assert!(
        answer
            .body
            .contains("o11ydb_query_duration_seconds_bucket{le=\"+Inf\",interface=\"http\",language=\"promql\"}"),
        "{}",
        answer.body
    );
    for path in ["/-/healthy", "/-/ready", "/ready"] {
        let (status, body) = http_request(server.http, "GET", path);
        assert_eq!(status, 200, "{path}: {body}");
    }
}

#[test]
fn a_real_prometheus_scrapes_the_metrics() {
    if !installed("prometheus") {
        assert!(
            std::env::var("CI").is_err(),
            "prometheus is missing in CI (.ci/run installs it)"
        );
        println!("skipped: the prometheus binary is not installed");
        return;
    }
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: o11ydb\n    static_configs:\n      - targets: ['{}']\n",
        server.http
    );
    let (_prometheus, addr) = start_prometheus(dir.path(), &config, &dir.path().join("tsdb"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = chrono::Utc::now().timestamp_millis();
        let query = "o11ydb_wal_fsync_duration_seconds_count or o11ydb_wal_disk_bytes";
        let answer = prom_http::get(addr, &instant_query_path(query, now)).unwrap();
        let v: Value = serde_json::from_str(&answer.body).unwrap();
        let up = prom_http::get(addr, &instant_query_path("up{job=\"o11ydb\"}", now)).unwrap();
        let up: Value = serde_json::from_str(&up.body).unwrap();
        let scraped = v["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty());
        if scraped && up["data"]["result"][0]["value"][1] == "1" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape o11ydb within 60 s: {v} {up}\n{}",
            std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn log_level_sets_what_is_logged() {
    let dir = tempdir();
    let launch = |name: &str, level: &str| {
        let data = dir.path().join(name);
        let mut server = Server::launch(Launch {
            data_dir: &data,
            config: TEST_CONFIG,
            prefix: vec![],
            args: vec!["--log-level".into(), level.into()],
        })
        .expect("server starts");
        server.stop();
        server.stderr()
    };
    let debug = launch("debug", "debug");
    assert!(debug.contains("DEBUG"), "{debug}");
    let quiet = launch("error", "error");
    assert!(
        !quiet.contains("INFO") && !quiet.contains("DEBUG"),
        "{quiet}"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_o11ydb"))
        .args(["serve", "--log-level", "chatty"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--log-level") && stderr.contains("debug"),
        "{stderr}"
    );
}
