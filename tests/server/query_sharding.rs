//! Query sharding on the real binary: ~45 PromQL range and instant queries
//! (shardable and not) answer the same with `query_sharding_total_shards =
//! 4` as without sharding, over the same data directory (samples partly in
//! flushed blocks, partly in the head); floats compared with a relative
//! tolerance of 1e-9 (sharded sums add in another order), cold and from
//! the results cache. The sharded
//! queries are exactly the shardable ones (`o11ydb_query_frontend_
//! sharded_queries_total`), `EXPLAIN` of `promql()` says how a query is
//! sharded, the `__query_shard__` matcher selects disjoint shards, and a
//! malformed one is refused with 400.

use o11ydb::bench::prom_http::{self, instant_query_path, query_range_path};
use o11ydb::bench::scrape_dataset::{DatasetShape, for_each_remote_write_body, generate};
use serde_json::Value;

use crate::common::{Server, TEST_CONFIG, metric_value, tempdir};

const MINUTE_MS: i64 = 60_000;

/// Queries, whether they are sharded, with `{AT}` standing for a time (s)
/// inside the data.
const QUERIES: &[(&str, bool)] = &[
    ("sum(rate(http_requests_total[5m]))", true),
    ("sum by (job) (rate(http_requests_total[5m]))", true),
    (
        "sum without (instance) (rate(http_requests_total[5m]))",
        true,
    ),
    ("count(up)", true),
    ("count by (job) (http_requests_total)", true),
    ("avg(process_resident_memory_bytes)", true),
    ("avg by (job) (node_temperature_celsius)", true),
    (
        "avg without (method, code) (rate(http_requests_total[5m]))",
        true,
    ),
    ("min(node_temperature_celsius)", true),
    ("max by (job) (queue_depth)", true),
    ("group by (job, instance) (up)", true),
    ("group(http_requests_total)", true),
    ("topk(3, rate(http_requests_total[5m]))", true),
    ("bottomk(2, node_temperature_celsius)", true),
    ("topk by (job) (1, process_resident_memory_bytes)", true),
    ("max(sum by (job) (rate(http_requests_total[5m])))", true),
    (
        "sum(sum by (instance) (rate(http_requests_total[5m])))",
        true,
    ),
    ("count(count by (job) (up))", true),
    ("sum(rate(http_requests_total[5m])) * 2", true),
    (
        "100 * sum by (code) (rate(http_requests_total[10m])) / ignoring (code) group_left sum(rate(http_requests_total[10m]))",
        true,
    ),
    (
        "sum(rate(http_requests_total{code=~\"5..\"}[5m])) / sum(rate(http_requests_total[5m]))",
        true,
    ),
    ("sum(rate(http_requests_total[5m] offset 30m))", true),
    ("sum(process_resident_memory_bytes @ {AT})", true),
    ("sum(rate(http_requests_total[5m] @ end()))", true),
    (
        "sum(max_over_time(rate(process_cpu_seconds_total[1m])[10m:1m]))",
        true,
    ),
    (
        "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[10m])))",
        true,
    ),
    (
        "histogram_quantile(0.5, sum by (job, le) (rate(http_request_duration_seconds_bucket[5m])))",
        true,
    ),
    ("sum(up == 1)", true),
    ("sum(http_requests_total > bool 100)", true),
    ("count(rate(http_requests_total[5m]) > 0.5)", true),
    (
        "avg(label_replace(up, \"host\", \"$1\", \"instance\", \"(.*):.*\"))",
        true,
    ),
    (
        "sum by (net) (label_replace(rate(http_requests_total[5m]), \"net\", \"$1\", \"instance\", \"10.0.([0-9]+).*\"))",
        true,
    ),
    (
        "sort_desc(sum by (job) (rate(http_requests_total[5m])))",
        true,
    ),
    ("sum(deriv(node_temperature_celsius[15m]))", true),
    ("min by (instance) (clamp_max(queue_depth, 5))", true),
    (
        "sum(sum_over_time(queue_depth[10m])) / sum(count_over_time(queue_depth[10m]))",
        true,
    ),
    ("time() - max(timestamp(up))", true),
    ("scalar(sum(up))", true),
    ("sum(-node_temperature_celsius)", true),
    ("quantile(0.5, rate(http_requests_total[5m]))", false),
    ("stddev(node_temperature_celsius)", false),
    ("count_values(\"v\", up)", false),
    (
        "sum(rate(http_requests_total[5m]) * on (job, instance) group_left up)",
        false,
    ),
    ("rate(http_requests_total[5m])", false),
    ("absent(nonexistent_metric)", false),
    (
        "max_over_time(sum(rate(http_requests_total[5m]))[30m:5m])",
        false,
    ),
];

struct Data {
    start_ms: i64,
    end_ms: i64,
}

/// Six hours of scrapes ending an hour ago: the first four hours flushed
/// to blocks, the rest left in the head.
fn load(server: &Server) -> Data {
    let now = chrono::Utc::now().timestamp_millis();
    let end_ms = now.div_euclid(MINUTE_MS) * MINUTE_MS - 60 * MINUTE_MS;
    let shape = DatasetShape {
        jobs: 2,
        instances_per_job: 3,
        start_ms: end_ms - 360 * MINUTE_MS,
        scrapes: 721,
        interval_ms: 30_000,
        jitter_ms: 1_000,
        seed: 11,
    };
    let data = generate(&shape);
    let cut = shape.start_ms + 240 * MINUTE_MS;
    let send = |from: i64, to: i64| {
        for_each_remote_write_body(&data, 5_000, from, to, |body, _| {
            let answer = prom_http::remote_write(server.http, &body).expect("remote write");
            assert_eq!(answer.status, 204, "remote write: {}", answer.body);
        });
    };
    send(i64::MIN, cut);
    server.flush();
    send(cut, i64::MAX);
    Data {
        start_ms: shape.start_ms,
        end_ms,
    }
}

fn with_time(query: &str, data: &Data) -> String {
    query.replace("{AT}", &((data.end_ms - 90 * MINUTE_MS) / 1000).to_string())
}

/// Every query's range answer (the data and ten minutes either side, by
/// minute) and its instant answer (two hours before the end), each with
/// how much `sharded_queries_total` grew meanwhile.
fn answers(server: &Server, data: &Data) -> Vec<(String, Value, f64)> {
    let sharded = |s: &Server| {
        metric_value(
            s.http,
            "o11ydb_query_frontend_sharded_queries_total{language=\"promql\"}",
        )
    };
    let start = data.start_ms - 10 * MINUTE_MS;
    let end = data.end_ms + 10 * MINUTE_MS;
    let mut out = Vec::new();
    for (query, _) in QUERIES {
        let query = with_time(query, data);
        for (kind, path) in [
            ("range", query_range_path(&query, start, end, MINUTE_MS)),
            (
                "instant",
                instant_query_path(&query, data.end_ms - 120 * MINUTE_MS),
            ),
        ] {
            let before = sharded(server);
            let answer = prom_http::get(server.http, &path).expect("query");
            assert_eq!(answer.status, 200, "{kind} {query}: {}", answer.body);
            let body: Value = serde_json::from_str(&answer.body).unwrap();
            out.push((format!("{kind} {query}"), body, sharded(server) - before));
        }
    }
    out
}

fn labels_key(series: &Value) -> String {
    series["metric"].to_string()
}

fn same_float(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_str(), b.as_str()) else {
        return false;
    };
    if a == b {
        return true;
    }
    let (x, y): (f64, f64) = (a.parse().unwrap(), b.parse().unwrap());
    (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
}

/// `[t, "v"]` pairs equal in time, values within the tolerance.
fn same_points(a: &Value, b: &Value) -> bool {
    a[0] == b[0] && same_float(&a[1], &b[1])
}

/// Two Prometheus answers equal up to series order and float tolerance.
pub(crate) fn assert_equivalent(query: &str, sharded: &Value, reference: &Value) {
    assert_eq!(sharded["status"], "success", "{query}: {sharded}");
    for key in ["warnings", "infos"] {
        assert_eq!(sharded[key], reference[key], "{query}: {key}");
    }
    let (a, b) = (&sharded["data"], &reference["data"]);
    assert_eq!(a["resultType"], b["resultType"], "{query}");
    let result = |v: &Value| -> Vec<Value> {
        let mut r = match (&v["resultType"], &v["result"]) {
            (Value::String(t), scalar) if t == "scalar" => {
                vec![serde_json::json!({"metric": {}, "value": scalar})]
            }
            (_, Value::Array(r)) => r.clone(),
            (_, other) => panic!("{query}: result {other}"),
        };
        r.sort_by_key(labels_key);
        r
    };
    let (ra, rb) = (result(a), result(b));
    assert_eq!(
        ra.iter().map(labels_key).collect::<Vec<_>>(),
        rb.iter().map(labels_key).collect::<Vec<_>>(),
        "{query}: series differ"
    );
    for (x, y) in ra.iter().zip(&rb) {
        if let (Some(px), Some(py)) = (x["values"].as_array(), y["values"].as_array()) {
            assert_eq!(px.len(), py.len(), "{query}: {} points", labels_key(x));
            for (p, q) in px.iter().zip(py) {
                assert!(same_points(p, q), "{query}: {} {p} vs {q}", labels_key(x));
            }
        } else {
            assert!(
                same_points(&x["value"], &y["value"]),
                "{query}: {} {} vs {}",
                labels_key(x),
                x["value"],
                y["value"]
            );
        }
    }
}

#[test]
fn sharded_answers_equal_the_unsharded_answers() {
    let dir = tempdir();
    let sharded_config = format!(
        "{TEST_CONFIG}\n[query_frontend]\nsplit_queries_by_interval = \"2h\"\n[limits]\nquery_sharding_total_shards = 4\n"
    );
    let mut server = Server::start_with(dir.path(), &sharded_config);
    let data = load(&server);
    let sharded = answers(&server, &data);
    let shards_run = metric_value(
        server.http,
        "o11ydb_query_frontend_query_shards_total{language=\"promql\"}",
    );
    // Again: the merged parts come from the results cache.
    let cached = answers(&server, &data);
    let hits = metric_value(
        server.http,
        "o11ydb_query_frontend_results_cache_hits_total{language=\"promql\"}",
    );
    assert!(hits >= 3.0 * 35.0, "{hits} cache hits");
    // Cached parts run no shard queries; instant queries and `@ <time>`
    // are never cached.
    let rerun = metric_value(
        server.http,
        "o11ydb_query_frontend_query_shards_total{language=\"promql\"}",
    ) - shards_run;
    assert!(
        rerun < shards_run / 3.0,
        "{rerun} of {shards_run} shard queries ran again"
    );
    // EXPLAIN tells how promql() in SQL is sharded.
    let explain = server.psql(&format!(
        "EXPLAIN SELECT * FROM promql('avg(up)', {}, {}, '60s')",
        data.start_ms / 1000,
        data.end_ms / 1000
    ));
    let plan = String::from_utf8_lossy(&explain.stdout).to_string();
    assert!(
        plan.contains("sharded: 2 legs × 4 shards per time part"),
        "{plan}"
    );
    // The pseudo matcher selects disjoint shards that cover every series,
    // and a malformed one is refused.
    let t = data.end_ms - 120 * MINUTE_MS;
    let value_of = |query: &str| -> f64 {
        let answer = prom_http::get(server.http, &instant_query_path(query, t)).unwrap();
        assert_eq!(answer.status, 200, "{query}: {}", answer.body);
        let v: Value = serde_json::from_str(&answer.body).unwrap();
        v["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let parts: Vec<f64> = (1..=3)
        .map(|i| {
            value_of(&format!(
                "count(http_requests_total{{__query_shard__=\"{i}_of_3\"}})"
            ))
        })
        .collect();
    assert_eq!(
        parts.iter().sum::<f64>(),
        value_of("count(http_requests_total)")
    );
    assert!(parts.iter().all(|&n| n > 0.0), "{parts:?}");
    let bad = prom_http::get(
        server.http,
        &instant_query_path("up{__query_shard__=\"5_of_4\"}", t),
    )
    .unwrap();
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("\\\"5_of_4\\\""), "{}", bad.body);
    server.stop();

    let server = Server::start_with(
        dir.path(),
        &format!(
            "{TEST_CONFIG}\n[query_frontend]\nsplit_queries_by_interval = \"2h\"\ncache_results = false\n"
        ),
    );
    let reference = answers(&server, &data);
    let mut sharded_count = 0;
    for (((query, got, grew), (_, want, grew_unsharded)), (_, warm, _)) in
        sharded.iter().zip(&reference).zip(&cached)
    {
        assert_equivalent(query, got, want);
        assert_equivalent(query, warm, want);
        let expected = QUERIES
            .iter()
            .find(|(q, _)| query.split_once(' ').unwrap().1 == with_time(q, &data))
            .map(|(_, s)| *s)
            .unwrap();
        assert_eq!(*grew, if expected { 1.0 } else { 0.0 }, "{query} sharded?");
        assert_eq!(*grew_unsharded, 0.0, "{query} sharded with sharding off");
        sharded_count += expected as usize;
        let points = |v: &Value| v["data"]["result"].as_array().map_or(1, |r| r.len());
        if !query.contains("absent") && !query.contains("5m] @ end") {
            assert!(points(want) > 0, "{query}: empty reference answer");
        }
    }
    assert!(sharded_count >= 2 * 35, "{sharded_count} sharded queries");
    // Range queries over 6 h 20 m in 2 h parts: 4 parts × 4 shards a leg at least.
    assert!(
        shards_run >= (sharded_count as f64 / 2.0) * 16.0,
        "{shards_run}"
    );
}
