//! The query frontend on the real binary: split range queries and cached
//! parts answer exactly what the unsplit, uncached query answers (PromQL and
//! LogQL, the same data directory served twice with different settings);
//! a Redis results cache (Debian's `redis-server`) serves hits and the
//! server keeps answering when Redis goes away; the per-tenant fair queue
//! serves a quiet tenant ahead of a flooding one's backlog and refuses a
//! full queue with 429; `max_query_length` and `max_query_lookback`.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use o11ydb::bench::prom_http::{self, instant_query_path, query_range_path};
use o11ydb::bench::scrape_dataset::{DatasetShape, for_each_remote_write_body, generate};
use serde_json::{Value, json};

use crate::common::{
    ChildGuard, Server, TEST_CONFIG, free_port, http_exchange, installed, metric_value, tempdir,
    urlencode,
};

const MINUTE_MS: i64 = 60_000;

const PROMQL: &[&str] = &[
    "rate(node_cpu_seconds_total[5m])",
    "sum by (job) (rate(http_requests_total[10m]))",
    "topk(2, sum by (instance) (rate(http_requests_total[5m])))",
    "max_over_time(rate(http_requests_total[5m])[30m:1m])",
    "avg_over_time(process_resident_memory_bytes[20m] offset 30m)",
    "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[10m])))",
    "absent(nothing_here)",
    "up * on (job, instance) group_left (version) app_build_info",
    "process_resident_memory_bytes @ end()",
    "time() - timestamp(up)",
];

const LOGQL: &[&str] = &[
    "sum by (app) (count_over_time({app=~\".+\"}[5m]))",
    "sum by (level) (rate({app=\"api\"} |= \"GET\" [10m]))",
    "topk(1, sum by (app) (bytes_over_time({app=~\".+\"} | logfmt [15m])))",
    "avg_over_time({app=\"api\"} | logfmt | unwrap latency_ms [10m]) by (app)",
];

/// Data: six hours ending an hour ago (samples every 30 s; a log line every 20 s).
struct Data {
    start_ms: i64,
    end_ms: i64,
}

fn load(server: &Server) -> Data {
    let now = chrono::Utc::now().timestamp_millis();
    let end_ms = now.div_euclid(MINUTE_MS) * MINUTE_MS - 60 * MINUTE_MS;
    let shape = DatasetShape {
        jobs: 2,
        instances_per_job: 2,
        start_ms: end_ms - 360 * MINUTE_MS,
        scrapes: 721,
        interval_ms: 30_000,
        jitter_ms: 1_000,
        seed: 7,
    };
    let data = generate(&shape);
    for_each_remote_write_body(&data, 5_000, i64::MIN, i64::MAX, |body, _| {
        let answer = prom_http::remote_write(server.http, &body).expect("remote write");
        assert_eq!(answer.status, 204, "remote write: {}", answer.body);
    });
    let mut streams = Vec::new();
    for (app, level) in [("api", "info"), ("api", "error"), ("web", "info")] {
        let values: Vec<Value> = (0..360 * 3)
            .map(|i| {
                let t_ns = (shape.start_ms + i * 20_000 + 7) as i128 * 1_000_000;
                let method = if i % 3 == 0 { "POST" } else { "GET" };
                let line = format!(
                    "level={level} method={method} path=/v1/{} latency_ms={}",
                    i % 7,
                    (i * 37) % 500
                );
                json!([t_ns.to_string(), line])
            })
            .collect();
        streams.push(json!({"stream": {"app": app, "level": level}, "values": values}));
    }
    let body = json!({ "streams": streams }).to_string();
    let answer = http_exchange(
        server.http,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(answer.status, 204, "loki push: {}", answer.body);
    server.flush();
    Data {
        start_ms: shape.start_ms,
        end_ms,
    }
}

/// Every query's answer body: Prometheus JSON whole, Loki JSON's `data.result`.
fn answers(server: &Server, data: &Data) -> Vec<(String, String)> {
    // Step-aligned, ten minutes either side of the data: every part is old
    // enough to be cached.
    let start = data.start_ms - 10 * MINUTE_MS;
    let end = data.end_ms + 10 * MINUTE_MS;
    let mut out = Vec::new();
    for q in PROMQL {
        let answer = prom_http::get(server.http, &query_range_path(q, start, end, MINUTE_MS))
            .expect("query_range");
        assert_eq!(answer.status, 200, "{q}: {}", answer.body);
        out.push((q.to_string(), answer.body));
    }
    for q in LOGQL {
        let path = format!(
            "/loki/api/v1/query_range?query={}&start={}&end={}&step=60",
            urlencode(q),
            start * 1_000_000,
            end * 1_000_000
        );
        let answer = http_exchange(server.http, "GET", &path, &[], b"");
        assert_eq!(answer.status, 200, "{q}: {}", answer.body);
        let v: Value = serde_json::from_str(&answer.body).unwrap();
        let result = &v["data"]["result"];
        assert!(
            result.as_array().is_some_and(|r| !r.is_empty()),
            "{q}: empty answer {}",
            answer.body
        );
        out.push((q.to_string(), result.to_string()));
    }
    out
}

fn assert_same(label: &str, a: &[(String, String)], b: &[(String, String)]) {
    for ((q, x), (_, y)) in a.iter().zip(b) {
        assert!(x == y, "{label}: {q} answers differently:\n{x}\nvs\n{y}");
    }
}

#[test]
fn split_and_cached_answers_equal_the_unsplit_answer() {
    let dir = tempdir();
    let split = format!("{TEST_CONFIG}\n[query_frontend]\nsplit_queries_by_interval = \"1h\"\n");
    let mut server = Server::start_with(dir.path(), &split);
    let data = load(&server);
    let hits = |s: &Server, language: &str| {
        metric_value(
            s.http,
            &format!("o11ydb_query_frontend_results_cache_hits_total{{language=\"{language}\"}}"),
        )
    };
    let parts = |s: &Server| {
        metric_value(
            s.http,
            "o11ydb_query_frontend_split_parts_total{language=\"promql\"}",
        )
    };
    let cold = answers(&server, &data);
    assert_eq!(hits(&server, "promql"), 0.0);
    let parts_cold = parts(&server);
    // 6 h 20 m over 1 h intervals: 7 or 8 parts a query, 1 for `@ end()`.
    assert!(parts_cold >= 9.0 * 6.0, "{parts_cold} parts");
    let warm = answers(&server, &data);
    assert_same("cached vs first answer", &warm, &cold);
    // `time() - timestamp(up)` and the rest are cached; `@ end()` too (one part).
    assert!(
        hits(&server, "promql") >= parts_cold,
        "{} hits of {parts_cold} parts",
        hits(&server, "promql")
    );
    assert!(hits(&server, "logql") >= 4.0 * 6.0);
    server.stop();

    let unsplit = format!(
        "{TEST_CONFIG}\n[query_frontend]\nsplit_queries_by_interval = \"0s\"\ncache_results = false\n"
    );
    let server = Server::start_with(dir.path(), &unsplit);
    let reference = answers(&server, &data);
    assert_eq!(parts(&server), PROMQL.len() as f64, "one part per query");
    assert_same("split vs unsplit", &cold, &reference);
}

#[test]
fn a_query_ending_now_leaves_its_newest_part_uncached() {
    let dir = tempdir();
    let config = format!(
        "{TEST_CONFIG}\n[query_frontend]\nsplit_queries_by_interval = \"1h\"\nmax_cache_freshness = \"10m\"\n"
    );
    let server = Server::start_with(dir.path(), &config);
    let now = chrono::Utc::now().timestamp_millis();
    let end = now.div_euclid(MINUTE_MS) * MINUTE_MS;
    let start = end - 5 * 60 * MINUTE_MS;
    let path = query_range_path("vector(1) + time()", start, end, MINUTE_MS);
    let first = prom_http::get(server.http, &path).unwrap();
    let lookups = |s: &Server| {
        metric_value(
            s.http,
            "o11ydb_query_frontend_results_cache_lookups_total{language=\"promql\"}",
        )
    };
    let cacheable = lookups(&server);
    let parts = metric_value(
        server.http,
        "o11ydb_query_frontend_split_parts_total{language=\"promql\"}",
    );
    assert!(
        cacheable < parts && cacheable >= parts - 2.0,
        "{cacheable} of {parts} parts were cacheable"
    );
    let second = prom_http::get(server.http, &path).unwrap();
    assert_eq!(first.body, second.body);
    let hits = metric_value(
        server.http,
        "o11ydb_query_frontend_results_cache_hits_total{language=\"promql\"}",
    );
    assert_eq!(hits, cacheable, "every cacheable part hit the second time");
}

fn start_redis(port: u16) -> ChildGuard {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    ChildGuard(child)
}

fn redis_keys(port: u16) -> usize {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "dbsize"])
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn redis_results_cache_serves_hits_and_outlives_redis() {
    if !installed("redis-server") {
        assert!(
            std::env::var("CI").is_err(),
            "redis-server is missing in CI (.ci/run installs it)"
        );
        println!("skipped: redis-server is not installed (apt-get install redis-server)");
        return;
    }
    let port = free_port();
    let redis = start_redis(port);
    let dir = tempdir();
    let config = format!(
        "{TEST_CONFIG}\n[query_frontend]\nsplit_queries_by_interval = \"1h\"\nresults_cache_redis_url = \"redis://127.0.0.1:{port}/\"\n"
    );
    let server = Server::start_with(dir.path(), &config);
    let data = load(&server);
    let first = answers(&server, &data);
    let stored = redis_keys(port);
    assert!(
        stored >= 6 * (PROMQL.len() + LOGQL.len()),
        "{stored} keys in Redis"
    );
    let hits = |s: &Server| {
        metric_value(
            s.http,
            "o11ydb_query_frontend_results_cache_hits_total{language=\"promql\"}",
        )
    };
    let second = answers(&server, &data);
    assert_same("from Redis vs first answer", &second, &first);
    let hits_warm = hits(&server);
    assert!(hits_warm >= 6.0 * PROMQL.len() as f64, "{hits_warm} hits");

    drop(redis);
    let started = Instant::now();
    let third = answers(&server, &data);
    assert_same("without Redis vs first answer", &third, &first);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "answers without Redis took {:?}",
        started.elapsed()
    );
    assert_eq!(hits(&server), hits_warm, "no hits while Redis is down");
}

/// Quantiles over a week at one-second resolution: about a second of work.
const SLOW: &str = "quantile_over_time(0.5, vector(time())[10d:1s])";

fn get_as(addr: SocketAddr, path: &str, tenant: &str) -> (u16, String) {
    let a = http_exchange(addr, "GET", path, &[("X-Scope-OrgID", tenant)], b"");
    (a.status, a.body)
}

#[test]
fn a_flooding_tenant_waits_its_turn() {
    let dir = tempdir();
    let config = format!(
        "{TEST_CONFIG}\n[query_frontend]\nsplit_queries_by_interval = \"0s\"\ncache_results = false\nmax_concurrent = 1\nmax_outstanding_requests_per_tenant = 2\n"
    );
    let server = Server::start_with(dir.path(), &config);
    let addr = server.http;
    let now = chrono::Utc::now().timestamp_millis();
    let slow = query_range_path(SLOW, now - 60 * MINUTE_MS, now, MINUTE_MS);
    let queue_length = |tenant: &str| {
        metric_value(
            addr,
            &format!("o11ydb_query_scheduler_queue_length{{tenant=\"{tenant}\"}}"),
        )
    };

    let finished = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut flood = Vec::new();
    for i in 0..3 {
        let (finished, slow) = (finished.clone(), slow.clone());
        flood.push(std::thread::spawn(move || {
            let (status, body) = get_as(addr, &slow, "noisy");
            assert_eq!(status, 200, "{body}");
            finished.lock().unwrap().push(format!("noisy{i}"));
        }));
        // One runs, then two wait.
        let deadline = Instant::now() + Duration::from_secs(30);
        while (i == 0 && metric_value(addr, "o11ydb_query_scheduler_running_queries") < 1.0)
            || queue_length("noisy") < i as f64
        {
            assert!(Instant::now() < deadline, "the flood did not queue");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // A third waiting query of the same tenant is refused at once.
    let (status, body) = get_as(addr, &slow, "noisy");
    assert_eq!(status, 429, "{body}");
    assert!(
        body.contains("max_outstanding_requests_per_tenant"),
        "{body}"
    );
    assert_eq!(
        metric_value(
            addr,
            "o11ydb_query_scheduler_discarded_requests_total{tenant=\"noisy\"}"
        ),
        1.0
    );
    // The quiet tenant is served next, before the flood's backlog.
    let (status, body) = get_as(addr, &instant_query_path("vector(1)", now), "quiet");
    assert_eq!(status, 200, "{body}");
    finished.lock().unwrap().push("quiet".into());
    for t in flood {
        t.join().unwrap();
    }
    let order = finished.lock().unwrap().clone();
    let quiet_at = order.iter().position(|o| o == "quiet").unwrap();
    // Served when the running query ended (its thread may record it a
    // moment after), before the two that waited.
    assert!(
        quiet_at <= 1,
        "the quiet tenant waited behind the flood: {order:?}"
    );
    assert_eq!(queue_length("noisy"), 0.0);
}

#[test]
fn query_length_and_lookback_limits() {
    let dir = tempdir();
    let config = format!(
        "{TEST_CONFIG}\n[overrides.limited]\nmax_query_length = \"1h\"\nmax_query_lookback = \"2h\"\n"
    );
    let server = Server::start_with(dir.path(), &config);
    let now = chrono::Utc::now().timestamp_millis().div_euclid(MINUTE_MS) * MINUTE_MS;

    // Too long a range: 400, both lengths named, for PromQL and LogQL.
    let long = query_range_path("vector(1)", now - 90 * MINUTE_MS, now, MINUTE_MS);
    let (status, body) = get_as(server.http, &long, "limited");
    assert_eq!(status, 400, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["errorType"], "bad_data");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("query length: 1h30m0s, limit: 1h0m0s"),
        "{body}"
    );
    let loki = format!(
        "/loki/api/v1/query_range?query={}&start={}&end={}&step=60",
        urlencode("count_over_time({a=\"b\"}[1m])"),
        (now - 90 * MINUTE_MS) * 1_000_000,
        now * 1_000_000
    );
    let (status, body) = get_as(server.http, &loki, "limited");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("max_query_length"), "{body}");
    // Other tenants keep the default (721 h).
    let (status, body) = get_as(server.http, &long, "other");
    assert_eq!(status, 200, "{body}");

    // Lookback: a range before it answers nothing, one across it starts at it.
    let old = query_range_path(
        "vector(1)",
        now - 4 * 60 * MINUTE_MS,
        now - 3 * 60 * MINUTE_MS,
        MINUTE_MS,
    );
    let (status, body) = get_as(server.http, &old, "limited");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["result"], json!([]), "{body}");
    let across = query_range_path(
        "vector(1)",
        now - 150 * MINUTE_MS,
        now - 90 * MINUTE_MS,
        MINUTE_MS,
    );
    let (status, body) = get_as(server.http, &across, "limited");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let first = v["data"]["result"][0]["values"][0][0].as_f64().unwrap() * 1000.0;
    let lookback_start = (now - 120 * MINUTE_MS) as f64;
    assert!(
        first >= lookback_start && first <= lookback_start + 180_000.0,
        "first point {first}, lookback starts {lookback_start}"
    );
}
