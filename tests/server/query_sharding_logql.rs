//! Query sharding of LogQL metric queries on the real binary: ~30 range
//! and instant queries through the Loki API (shardable and not, with
//! `| logfmt` and `| json`, unwrap, binary operators) answer the same with
//! `query_sharding_total_shards = 4` as without sharding, over the same data
//! directory (lines partly flushed to blocks, partly in the head); floats
//! compared with a relative tolerance of 1e-9, cold and from the results
//! cache. The sharded queries are exactly the shardable ones
//! (`o11ydb_query_frontend_sharded_queries_total{language="logql"}`), and a
//! query whose legs unwrap or rewrite a stream label falls back to the
//! unsharded path (`…_sharding_fallbacks_total`) with the unsharded answer.

use serde_json::{Value, json};

use crate::common::{Server, TEST_CONFIG, http_exchange, metric_value, tempdir, urlencode};
use crate::query_sharding::assert_equivalent;

const MINUTE_NS: i64 = 60_000_000_000;

/// Queries and whether they are sharded (`Fallback`: planned, then run
/// unsharded because a leg met lines of two streams forming one series).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sharded {
    Yes,
    No,
    Fallback,
}

const QUERIES: &[(&str, Sharded)] = &[
    (
        r#"sum(count_over_time({job="shardtest"}[5m]))"#,
        Sharded::Yes,
    ),
    (
        r#"sum by (app) (rate({job="shardtest"}[5m]))"#,
        Sharded::Yes,
    ),
    (
        r#"sum without (pod) (bytes_rate({job="shardtest"}[5m]))"#,
        Sharded::Yes,
    ),
    (
        r#"count(count_over_time({job="shardtest"}[5m]))"#,
        Sharded::Yes,
    ),
    (
        r#"count by (level) (rate({job="shardtest"} |= "GET" [5m]))"#,
        Sharded::Yes,
    ),
    (
        r#"min by (app) (count_over_time({job="shardtest"}[10m]))"#,
        Sharded::Yes,
    ),
    (
        r#"max(bytes_over_time({job="shardtest"}[5m]))"#,
        Sharded::Yes,
    ),
    (
        r#"topk(3, count_over_time({job="shardtest"}[5m]))"#,
        Sharded::Yes,
    ),
    (
        r#"bottomk by (app) (2, bytes_rate({job="shardtest"}[5m]))"#,
        Sharded::Yes,
    ),
    (
        r#"avg(count_over_time({job="shardtest"}[5m]))"#,
        Sharded::Yes,
    ),
    (
        r#"avg by (app) (sum_over_time({format="logfmt"} | logfmt method, latency | unwrap latency [5m]))"#,
        Sharded::Yes,
    ),
    (
        r#"sum by (method) (sum_over_time({format="json"} | json method, size | unwrap size [5m]))"#,
        Sharded::Yes,
    ),
    (
        r#"max by (method) (max_over_time({format="logfmt"} | logfmt method, latency | unwrap latency [5m]))"#,
        Sharded::Yes,
    ),
    (
        r#"topk by (method) (2, avg_over_time({format="json"} | json method, latency | unwrap latency [10m]))"#,
        Sharded::Yes,
    ),
    (
        r#"sum(rate({format="logfmt"} | logfmt status | status >= 500 [5m])) / sum(rate({format="logfmt"}[5m]))"#,
        Sharded::Yes,
    ),
    (
        r#"sum by (app) (rate({job="shardtest"}[5m])) * 60"#,
        Sharded::Yes,
    ),
    (
        r#"count(count_over_time({job="shardtest"}[5m]) > 4)"#,
        Sharded::Yes,
    ),
    (
        r#"sort_desc(sum by (app) (rate({job="shardtest"}[5m])))"#,
        Sharded::Yes,
    ),
    (
        r#"max(stddev_over_time({format="logfmt"} | logfmt latency | unwrap latency [10m]))"#,
        Sharded::Yes,
    ),
    (
        r#"min without (pod) (last_over_time({format="json"} | json latency | unwrap latency [5m]))"#,
        Sharded::Yes,
    ),
    (
        r#"sum by (method) (rate({format="json"} | json method, size | unwrap size [5m]))"#,
        Sharded::Yes,
    ),
    (
        r#"max(sum by (app) (count_over_time({job="shardtest"} |~ "status.?.?500" [10m])))"#,
        Sharded::Yes,
    ),
    (
        r#"max by (app) (max_over_time({format="logfmt"} | logfmt latency | drop __error__, __error_details__ | unwrap latency [5m]))"#,
        Sharded::Yes,
    ),
    (
        r#"quantile_over_time(0.9, {format="logfmt"} | logfmt latency | unwrap latency [5m]) by (app)"#,
        Sharded::No,
    ),
    (
        r#"sort(count_over_time({job="shardtest", app="api"}[5m]))"#,
        Sharded::No,
    ),
    (
        r#"label_replace(rate({job="shardtest", app="web"}[5m]), "x", "$1", "pod", "(.*)")"#,
        Sharded::No,
    ),
    (
        r#"sum(label_replace(rate({job="shardtest"}[5m]), "p", "$1", "pod", "(.)"))"#,
        Sharded::No,
    ),
    (
        r#"sum by (app) (max_over_time({format="logfmt"} | logfmt latency | unwrap latency [5m]) by (app))"#,
        Sharded::No,
    ),
    (
        r#"rate({job="shardtest", app="db", pod="1"}[5m])"#,
        Sharded::No,
    ),
    (
        r#"count(max_over_time({format="logfmt"} | unwrap pod [5m]))"#,
        Sharded::Fallback,
    ),
    (
        r#"avg by (app) (sum_over_time({format="json"} | unwrap pod [5m]))"#,
        Sharded::Fallback,
    ),
    (
        r#"count(count_over_time({job="shardtest"} | label_format pod="all" [5m]))"#,
        Sharded::Fallback,
    ),
];

struct Data {
    start_ns: i64,
    end_ns: i64,
}

/// 4 apps (two writing logfmt, two JSON) × 4 pods × 3 levels = 48 streams,
/// a line a minute each for three hours ending an hour ago: the first two
/// hours flushed to blocks, the rest left in the head.
fn load(server: &Server) -> Data {
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let end_ns = now.div_euclid(MINUTE_NS) * MINUTE_NS - 60 * MINUTE_NS;
    let start_ns = end_ns - 180 * MINUTE_NS;
    let cut = start_ns + 120 * MINUTE_NS;
    let push = |from: i64, to: i64| {
        let mut streams = Vec::new();
        let mut seed = 17u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 33
        };
        for (app, format) in [
            ("api", "logfmt"),
            ("web", "logfmt"),
            ("db", "json"),
            ("cache", "json"),
        ] {
            for pod in 1..=4 {
                for level in ["info", "warn", "error"] {
                    let mut values = Vec::new();
                    for i in 0..180 {
                        let r = next();
                        let t = start_ns + i * MINUTE_NS + (r % 50_000) as i64 * 1_000_000;
                        if t < from || t >= to {
                            continue;
                        }
                        // Some minutes are quiet, so streams differ.
                        if r % 7 == 0 && level != "error" {
                            continue;
                        }
                        let method = ["GET", "GET", "POST", "PUT"][(r % 4) as usize];
                        let status = [200, 200, 201, 404, 500][((r >> 3) % 5) as usize];
                        let latency = ((r >> 7) % 2000) as f64 / 1000.0 + 0.001;
                        let size = 100 + (r >> 11) % 4000;
                        let line = if format == "logfmt" {
                            format!(
                                "level={level} method={method} status={status} latency={latency} msg=\"handled {}\"",
                                "x".repeat((r % 13) as usize)
                            )
                        } else {
                            json!({"level": level, "method": method, "status": status, "latency": latency, "size": size})
                                .to_string()
                        };
                        values.push(json!([t.to_string(), line]));
                    }
                    streams.push(json!({
                        "stream": {"job": "shardtest", "app": app, "format": format, "pod": pod.to_string(), "level": level},
                        "values": values,
                    }));
                }
            }
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
    };
    push(i64::MIN, cut);
    server.flush();
    push(cut, i64::MAX);
    Data { start_ns, end_ns }
}

fn counter(server: &Server, name: &str) -> f64 {
    metric_value(
        server.http,
        &format!("o11ydb_query_frontend_{name}{{language=\"logql\"}}"),
    )
}

/// Every query's range answer (the data and ten minutes either side, by
/// minute) and instant answer (100 minutes before the end), each with how
/// much the sharded-queries and fallbacks counters grew meanwhile.
fn answers(server: &Server, data: &Data) -> Vec<(String, Value, f64, f64)> {
    let start = data.start_ns - 10 * MINUTE_NS;
    let end = data.end_ns + 10 * MINUTE_NS;
    let mut out = Vec::new();
    for (query, _) in QUERIES {
        for (kind, path) in [
            (
                "range",
                format!(
                    "/loki/api/v1/query_range?query={}&start={start}&end={end}&step=60",
                    urlencode(query)
                ),
            ),
            (
                "instant",
                format!(
                    "/loki/api/v1/query?query={}&time={}",
                    urlencode(query),
                    data.end_ns - 100 * MINUTE_NS
                ),
            ),
        ] {
            let sharded = counter(server, "sharded_queries_total");
            let fallbacks = counter(server, "sharding_fallbacks_total");
            let answer = http_exchange(server.http, "GET", &path, &[], b"");
            assert_eq!(answer.status, 200, "{kind} {query}: {}", answer.body);
            let body: Value = serde_json::from_str(&answer.body).unwrap();
            out.push((
                format!("{kind} {query}"),
                body,
                counter(server, "sharded_queries_total") - sharded,
                counter(server, "sharding_fallbacks_total") - fallbacks,
            ));
        }
    }
    out
}

#[test]
fn sharded_logql_answers_equal_the_unsharded_answers() {
    let dir = tempdir();
    let sharded_config = format!(
        "{TEST_CONFIG}\n[query_frontend]\nsplit_queries_by_interval = \"1h\"\n[limits]\nquery_sharding_total_shards = 4\n"
    );
    let mut server = Server::start_with(dir.path(), &sharded_config);
    let data = load(&server);
    let sharded = answers(&server, &data);
    let shards_run = counter(&server, "query_shards_total");
    // Again: the merged parts come from the results cache.
    let cached = answers(&server, &data);
    assert!(
        counter(&server, "results_cache_hits_total") >= 3.0 * 20.0,
        "cache hits"
    );
    server.stop();

    let server = Server::start_with(
        dir.path(),
        &format!(
            "{TEST_CONFIG}\n[query_frontend]\nsplit_queries_by_interval = \"1h\"\ncache_results = false\n"
        ),
    );
    let reference = answers(&server, &data);
    let mut sharded_count = 0;
    for (((query, got, grew, fell_back), (_, want, grew_unsharded, _)), (_, warm, _, _)) in
        sharded.iter().zip(&reference).zip(&cached)
    {
        assert_equivalent(query, got, want);
        assert_equivalent(query, warm, want);
        let expected = QUERIES
            .iter()
            .find(|(q, _)| query.split_once(' ').unwrap().1 == *q)
            .map(|(_, s)| *s)
            .unwrap();
        let planned = expected != Sharded::No;
        assert_eq!(*grew, if planned { 1.0 } else { 0.0 }, "{query} sharded?");
        assert_eq!(
            *fell_back,
            if expected == Sharded::Fallback {
                1.0
            } else {
                0.0
            },
            "{query} fell back?"
        );
        assert_eq!(*grew_unsharded, 0.0, "{query} sharded with sharding off");
        sharded_count += (expected == Sharded::Yes) as usize;
        let series = want["data"]["result"].as_array().map_or(0, |r| r.len());
        assert!(series > 0, "{query}: empty reference answer {want}");
    }
    assert!(sharded_count >= 2 * 20, "{sharded_count} sharded queries");
    // Range queries over 3 h 20 m in 1 h parts: 4 parts × 4 shards a leg at least.
    assert!(
        shards_run >= (sharded_count as f64 / 2.0) * 16.0,
        "{shards_run}"
    );
}
