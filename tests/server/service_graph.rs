//! Service graphs and span metrics on the real binary: a known set of traces
//! goes in over OTLP/HTTP JSON; `service_graph()` and `span_metrics()` answer
//! over pgwire before and after a flush; the metrics generator writes Tempo's
//! series back, which PromQL reads, with exemplars naming the traces; and
//! bad arguments get errors that say what was wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Server, TEST_CONFIG, http_exchange, post_otlp_traces, sqlstate, tempdir};

const TRACE_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const TRACE_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const MS: i64 = 1_000_000;

/// `(span id, parent, kind, service, name, start ms, duration ms, status, attributes)`.
type Spec = (
    &'static str,
    &'static str,
    u8,
    &'static str,
    &'static str,
    i64,
    i64,
    u8,
    &'static [(&'static str, &'static str)],
);

// OTLP kinds: 2 server, 3 client, 4 producer, 5 consumer; status 1 ok, 2 error.
const SPANS_A: [Spec; 8] = [
    (
        "a000000000000001",
        "",
        2,
        "frontend",
        "GET /checkout",
        0,
        100,
        1,
        &[],
    ),
    (
        "a000000000000002",
        "a000000000000001",
        3,
        "frontend",
        "POST /checkout",
        5,
        80,
        0,
        &[],
    ),
    (
        "a000000000000003",
        "a000000000000002",
        2,
        "checkout",
        "POST /checkout",
        10,
        70,
        0,
        &[],
    ),
    (
        "a000000000000004",
        "a000000000000003",
        3,
        "checkout",
        "INSERT orders",
        15,
        10,
        0,
        &[("db.system", "postgresql"), ("db.name", "orders")],
    ),
    (
        "a000000000000005",
        "a000000000000003",
        3,
        "checkout",
        "GET cart",
        26,
        5,
        0,
        &[("db.system", "redis")],
    ),
    (
        "a000000000000006",
        "a000000000000003",
        3,
        "checkout",
        "charge",
        32,
        20,
        2,
        &[("peer.service", "payments-api")],
    ),
    (
        "a000000000000007",
        "a000000000000003",
        4,
        "checkout",
        "orders publish",
        53,
        2,
        0,
        &[],
    ),
    (
        "a000000000000008",
        "a000000000000007",
        5,
        "shipping",
        "orders process",
        60,
        30,
        0,
        &[],
    ),
];

const SPANS_B: [Spec; 3] = [
    (
        "b000000000000001",
        "",
        2,
        "frontend",
        "GET /checkout",
        0,
        200,
        1,
        &[],
    ),
    (
        "b000000000000002",
        "b000000000000001",
        3,
        "frontend",
        "POST /checkout",
        5,
        150,
        0,
        &[],
    ),
    (
        "b000000000000003",
        "b000000000000002",
        2,
        "checkout",
        "POST /checkout",
        10,
        140,
        2,
        &[],
    ),
];

/// The traces as one OTLP/HTTP JSON body, trace A at `base_ns`, B 1 s later.
fn otlp_body(base_ns: i64) -> Vec<u8> {
    let mut by_service: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for (trace, offset, specs) in [
        (TRACE_A, 0, &SPANS_A[..]),
        (TRACE_B, 1_000 * MS, &SPANS_B[..]),
    ] {
        for (id, parent, kind, service, name, start, duration, status, attrs) in specs {
            let start_ns = base_ns + offset + start * MS;
            let mut span = json!({
                "traceId": trace,
                "spanId": id,
                "name": name,
                "kind": kind,
                "startTimeUnixNano": start_ns.to_string(),
                "endTimeUnixNano": (start_ns + duration * MS).to_string(),
                "status": {"code": status},
                "attributes": attrs.iter().map(|(k, v)| json!({"key": k, "value": {"stringValue": v}})).collect::<Vec<_>>(),
            });
            if !parent.is_empty() {
                span["parentSpanId"] = json!(parent);
            }
            by_service.entry(service).or_default().push(span);
        }
    }
    let resource_spans: Vec<Value> = by_service
        .into_iter()
        .map(|(service, spans)| {
            json!({
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeSpans": [{"spans": spans}],
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "resourceSpans": resource_spans })).unwrap()
}

fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Spans start at a whole minute a few minutes ago (inside every limit).
fn base_ns() -> i64 {
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    (now / (60_000 * MS)) * 60_000 * MS - 3 * 60_000 * MS
}

/// `(client, server, connection_type, requests, failed, p50 s, client p50 s)`.
type EdgeSpec = (
    &'static str,
    &'static str,
    &'static str,
    i64,
    i64,
    Option<f64>,
    Option<f64>,
);

const EXPECTED_EDGES: [EdgeSpec; 6] = [
    (
        "checkout",
        "orders",
        "database",
        1,
        0,
        Some(0.01),
        Some(0.01),
    ),
    (
        "checkout",
        "payments-api",
        "virtual_node",
        1,
        1,
        None,
        Some(0.02),
    ),
    (
        "checkout",
        "redis",
        "virtual_node",
        1,
        0,
        Some(0.005),
        Some(0.005),
    ),
    (
        "checkout",
        "shipping",
        "messaging_system",
        1,
        0,
        Some(0.03),
        Some(0.002),
    ),
    ("frontend", "checkout", "", 2, 1, Some(0.105), Some(0.115)),
    ("user", "frontend", "virtual_node", 2, 0, Some(0.15), None),
];

type Edge = (String, String, String, i64, i64, Option<f64>, Option<f64>);

async fn edges(client: &tokio_postgres::Client, start: &str, end: &str) -> Vec<Edge> {
    let sql = format!(
        "SELECT client, server, connection_type, request_count, failed_count, \
         round(p50_seconds, 6), round(client_p50_seconds, 6) \
         FROM service_graph('{start}', '{end}') ORDER BY client, server"
    );
    client
        .query(&sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
            )
        })
        .collect()
}

fn expected_edges() -> Vec<Edge> {
    EXPECTED_EDGES
        .iter()
        .map(|(c, s, t, n, f, p, cp)| {
            (c.to_string(), s.to_string(), t.to_string(), *n, *f, *p, *cp)
        })
        .collect()
}

type MetricRow = (String, String, String, String, i64, i64, f64);

async fn span_metric_rows(
    client: &tokio_postgres::Client,
    start: &str,
    end: &str,
) -> Vec<MetricRow> {
    let sql = format!(
        "SELECT service, span_name, span_kind, status_code, calls, errors, \
         round(duration_sum_seconds, 6) \
         FROM span_metrics('{start}', '{end}', interval '1 hour') \
         ORDER BY service, span_name, span_kind, status_code"
    );
    client
        .query(&sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
            )
        })
        .collect()
}

fn expected_span_metrics() -> Vec<MetricRow> {
    [
        ("checkout", "GET cart", "client", "unset", 1, 0, 0.005),
        ("checkout", "INSERT orders", "client", "unset", 1, 0, 0.01),
        ("checkout", "POST /checkout", "server", "error", 1, 1, 0.14),
        ("checkout", "POST /checkout", "server", "unset", 1, 0, 0.07),
        ("checkout", "charge", "client", "error", 1, 1, 0.02),
        (
            "checkout",
            "orders publish",
            "producer",
            "unset",
            1,
            0,
            0.002,
        ),
        ("frontend", "GET /checkout", "server", "ok", 2, 0, 0.3),
        ("frontend", "POST /checkout", "client", "unset", 2, 0, 0.23),
        (
            "shipping",
            "orders process",
            "consumer",
            "unset",
            1,
            0,
            0.03,
        ),
    ]
    .iter()
    .map(|(s, n, k, c, calls, errors, sum)| {
        (
            s.to_string(),
            n.to_string(),
            k.to_string(),
            c.to_string(),
            *calls,
            *errors,
            *sum,
        )
    })
    .collect()
}

#[tokio::test]
async fn service_graph_and_span_metrics_in_sql() {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let base = base_ns();
    post_otlp_traces(&server, &otlp_body(base), None);
    let client = server.client().await;
    let (start, end) = (rfc3339(base), rfc3339(base + 60_000 * MS));

    assert_eq!(edges(&client, &start, &end).await, expected_edges());
    assert_eq!(
        span_metric_rows(&client, &start, &end).await,
        expected_span_metrics()
    );
    // A window holding only trace B (it starts 1 s after A).
    let only_b = edges(&client, &rfc3339(base + 900 * MS), &end).await;
    let counts: Vec<(&str, &str, i64, i64)> = only_b
        .iter()
        .map(|e| (e.0.as_str(), e.1.as_str(), e.3, e.4))
        .collect();
    assert_eq!(
        counts,
        [("frontend", "checkout", 1, 1), ("user", "frontend", 1, 0)]
    );

    // The same answers from Parquet blocks.
    server.flush();
    assert_eq!(edges(&client, &start, &end).await, expected_edges());
    assert_eq!(
        span_metric_rows(&client, &start, &end).await,
        expected_span_metrics()
    );

    // The span_metrics view: one-minute buckets.
    let rows = client
        .query(
            "SELECT service, sum(calls)::BIGINT, sum(errors)::BIGINT, count(DISTINCT \"time\")::BIGINT \
             FROM span_metrics GROUP BY service ORDER BY service",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, i64, i64, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        got,
        [
            ("checkout".to_string(), 6, 2, 1),
            ("frontend".to_string(), 4, 0, 1),
            ("shipping".to_string(), 1, 0, 1)
        ]
    );

    // Bad arguments: a plan error naming the function and the problem.
    for (sql, want) in [
        (
            "SELECT * FROM service_graph(now())",
            "service_graph() takes (start, end); got 1 argument",
        ),
        (
            "SELECT * FROM service_graph(now(), now(), now())",
            "got 3 arguments",
        ),
        (
            "SELECT * FROM service_graph('last week', now())",
            "service_graph() start \"last week\" is neither RFC 3339 nor Unix seconds",
        ),
        (
            "SELECT * FROM service_graph(now(), 1.5)",
            "service_graph() end 1970-01-01T00:00:01.500Z is before start",
        ),
        (
            "SELECT * FROM service_graph(now(), true)",
            "service_graph() end must be a timestamp",
        ),
        (
            "SELECT * FROM span_metrics(0, 60, interval '0 seconds')",
            "span_metrics() step must be positive",
        ),
        (
            "SELECT * FROM span_metrics(60, 0, '1m')",
            "span_metrics() end 1970-01-01T00:00:00.000Z is before start 1970-01-01T00:01:00.000Z",
        ),
        (
            "SELECT * FROM span_metrics(0)",
            "span_metrics() takes (start, end) or (start, end, step); got 1 argument",
        ),
    ] {
        let err = client.query(sql, &[]).await.unwrap_err();
        let message = err
            .as_db_error()
            .map(|e| e.message().to_string())
            .unwrap_or_default();
        assert!(message.contains(want), "{sql}: {message}");
        assert_eq!(sqlstate(&err), "42000", "{sql}");
    }
    // ... and the server keeps serving.
    assert_eq!(edges(&client, &start, &end).await.len(), 6);
}

const GENERATOR_CONFIG: &str = r#"
[ingester]
flush_max_age = "1h"
flush_check_interval = "1h"
[query]
memory_limit = "512MiB"
[metrics_generator]
enabled = true
collection_interval = "300ms"
[metrics_generator.service_graphs]
wait = "1s"
[overrides.quiet]
metrics_generator_processors = []
[overrides.graphs-only]
metrics_generator_processors = ["service-graphs"]
"#;

/// `/api/v1/query` for `tenant`: each series' labels (without `__name__`,
/// as `k=v` joined by `,`) → value.
fn instant(server: &Server, query: &str, tenant: &str) -> BTreeMap<String, f64> {
    let path = format!("/api/v1/query?query={}", urlencode(query));
    let answer = http_exchange(server.http, "GET", &path, &[("X-Scope-OrgID", tenant)], b"");
    assert_eq!(answer.status, 200, "{query}: {}", answer.body);
    let v: Value = serde_json::from_str(&answer.body).unwrap();
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels: Vec<String> = s["metric"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k != "__name__")
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
                .collect();
            (
                labels.join(","),
                s["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn metrics_generator_writes_tempo_series_and_exemplars() {
    let dir = tempdir();
    let server = Server::start_with(&dir.path().join("data"), GENERATOR_CONFIG);
    assert_ne!(GENERATOR_CONFIG, TEST_CONFIG);
    let base = base_ns();
    let body = otlp_body(base);
    post_otlp_traces(&server, &body, None);
    post_otlp_traces(&server, &body, Some("quiet"));
    post_otlp_traces(&server, &body, Some("graphs-only"));

    // Root spans become `user` edges once their wait (1 s) is over.
    let deadline = Instant::now() + Duration::from_secs(30);
    let requests = loop {
        let got = instant(&server, "traces_service_graph_request_total", "anonymous");
        if got.get("client=user,connection_type=virtual_node,server=frontend") == Some(&2.0)
            || Instant::now() > deadline
        {
            break got;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let want: BTreeMap<String, f64> = [
        (
            "client=checkout,connection_type=database,server=orders",
            1.0,
        ),
        (
            "client=checkout,connection_type=messaging_system,server=shipping",
            1.0,
        ),
        (
            "client=checkout,connection_type=virtual_node,server=payments-api",
            1.0,
        ),
        (
            "client=checkout,connection_type=virtual_node,server=redis",
            1.0,
        ),
        ("client=frontend,server=checkout", 2.0),
        (
            "client=user,connection_type=virtual_node,server=frontend",
            2.0,
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(requests, want);
    let failed = instant(
        &server,
        "traces_service_graph_request_failed_total",
        "anonymous",
    );
    assert_eq!(
        failed,
        [
            (
                "client=checkout,connection_type=virtual_node,server=payments-api".to_string(),
                1.0
            ),
            ("client=frontend,server=checkout".to_string(), 1.0)
        ]
        .into_iter()
        .collect()
    );
    // Server latencies 0.07 s and 0.14 s in Tempo's 0.1·2^k buckets.
    let buckets = instant(
        &server,
        r#"traces_service_graph_request_server_seconds_bucket{client="frontend",server="checkout"}"#,
        "anonymous",
    );
    let by_le = |m: &BTreeMap<String, f64>| -> BTreeMap<String, f64> {
        m.iter()
            .map(|(k, v)| {
                let le = k
                    .split(',')
                    .find_map(|p| p.strip_prefix("le="))
                    .unwrap()
                    .to_string();
                (le, *v)
            })
            .collect()
    };
    let le = by_le(&buckets);
    assert_eq!(le.len(), 9, "{le:?}");
    assert_eq!(
        (le["0.1"], le["0.2"], le["0.4"], le["12.8"], le["+Inf"]),
        (1.0, 2.0, 2.0, 2.0, 2.0)
    );
    let count = instant(
        &server,
        r#"traces_service_graph_request_client_seconds_count{client="frontend"}"#,
        "anonymous",
    );
    assert_eq!(count.values().copied().collect::<Vec<_>>(), [2.0]);

    // Span metrics: calls per service, kind and status, with OTLP's names.
    let calls = instant(
        &server,
        r#"traces_spanmetrics_calls_total{service="frontend"}"#,
        "anonymous",
    );
    assert_eq!(
        calls,
        [
            ("service=frontend,span_kind=SPAN_KIND_CLIENT,span_name=POST /checkout,status_code=STATUS_CODE_UNSET".to_string(), 2.0),
            ("service=frontend,span_kind=SPAN_KIND_SERVER,span_name=GET /checkout,status_code=STATUS_CODE_OK".to_string(), 2.0),
        ]
        .into_iter()
        .collect()
    );
    let total = instant(&server, "sum(traces_spanmetrics_calls_total)", "anonymous");
    assert_eq!(total[""], 11.0);
    // Frontend server latencies 0.1 s and 0.2 s in the 0.002·2^k buckets.
    let latency = by_le(&instant(
        &server,
        r#"traces_spanmetrics_latency_bucket{service="frontend",span_kind="SPAN_KIND_SERVER"}"#,
        "anonymous",
    ));
    assert_eq!(latency.len(), 15);
    assert_eq!(
        (
            latency["0.064"],
            latency["0.128"],
            latency["0.256"],
            latency["+Inf"]
        ),
        (0.0, 1.0, 2.0, 2.0)
    );
    let sum = instant(
        &server,
        r#"traces_spanmetrics_latency_sum{span_kind="SPAN_KIND_SERVER",service="frontend"}"#,
        "anonymous",
    );
    assert!((sum.values().next().unwrap() - 0.3).abs() < 1e-9, "{sum:?}");
    let size = instant(
        &server,
        r#"traces_spanmetrics_size_total{service="shipping"}"#,
        "anonymous",
    );
    assert!(size.values().all(|v| *v > 50.0 && *v < 200.0), "{size:?}");

    // Per-tenant processors: none for `quiet`, only service graphs for `graphs-only`.
    assert!(instant(&server, "traces_spanmetrics_calls_total", "quiet").is_empty());
    assert!(instant(&server, "traces_service_graph_request_total", "quiet").is_empty());
    assert!(instant(&server, "traces_spanmetrics_calls_total", "graphs-only").is_empty());
    assert_eq!(
        instant(
            &server,
            r#"traces_service_graph_request_total{client="frontend"}"#,
            "graphs-only"
        )
        .values()
        .copied()
        .collect::<Vec<_>>(),
        [2.0]
    );

    // Exemplars: the trace ids of the observations, on their buckets.
    let now = chrono::Utc::now().timestamp();
    let path = format!(
        "/api/v1/query_exemplars?query={}&start={}&end={}",
        urlencode(r#"rate(traces_spanmetrics_latency_bucket{service="frontend"}[5m])"#),
        now - 600,
        now + 60
    );
    let answer = http_exchange(server.http, "GET", &path, &[], b"");
    assert_eq!(answer.status, 200, "{}", answer.body);
    let v: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(v["status"], "success");
    let mut found = BTreeSet::new();
    for series in v["data"].as_array().unwrap() {
        let labels = &series["seriesLabels"];
        assert_eq!(labels["__name__"], "traces_spanmetrics_latency_bucket");
        for e in series["exemplars"].as_array().unwrap() {
            assert!(e["timestamp"].as_f64().unwrap() > (now - 600) as f64);
            found.insert((
                labels["span_kind"].as_str().unwrap().to_string(),
                labels["le"].as_str().unwrap().to_string(),
                e["labels"]["traceID"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            ));
        }
    }
    let want: BTreeSet<(String, String, String, String)> = [
        ("SPAN_KIND_CLIENT", "0.128", TRACE_A, "0.08"),
        ("SPAN_KIND_CLIENT", "0.256", TRACE_B, "0.15"),
        ("SPAN_KIND_SERVER", "0.128", TRACE_A, "0.1"),
        ("SPAN_KIND_SERVER", "0.256", TRACE_B, "0.2"),
    ]
    .iter()
    .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
    .collect();
    assert_eq!(found, want);
    // Another tenant sees none; a query selecting no series gets 204; a bad one 400.
    let other = http_exchange(
        server.http,
        "GET",
        &path,
        &[("X-Scope-OrgID", "quiet")],
        b"",
    );
    assert_eq!(
        (other.status, other.body.contains("\"data\":[]")),
        (200, true),
        "{}",
        other.body
    );
    let none = http_exchange(
        server.http,
        "GET",
        "/api/v1/query_exemplars?query=1%2B1",
        &[],
        b"",
    );
    assert_eq!(none.status, 204);
    let bad = http_exchange(
        server.http,
        "GET",
        "/api/v1/query_exemplars?query=sum(",
        &[],
        b"",
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("bad_data"), "{}", bad.body);

    // The queries Grafana's Tempo datasource sends for its service graph tab
    // (to the Prometheus datasource), with `$__range` = 5m.
    let rates = instant(
        &server,
        "sum by (client, server) (rate(traces_service_graph_request_total[5m]))",
        "anonymous",
    );
    let edges: BTreeSet<&str> = rates.keys().map(String::as_str).collect();
    assert_eq!(
        edges,
        [
            "client=checkout,server=orders",
            "client=checkout,server=payments-api",
            "client=checkout,server=redis",
            "client=checkout,server=shipping",
            "client=frontend,server=checkout",
            "client=user,server=frontend",
        ]
        .into_iter()
        .collect(),
        "{rates:?}"
    );
    assert!(rates.values().all(|v| *v > 0.0), "{rates:?}");
    let failed_rates = instant(
        &server,
        "sum by (client, server) (rate(traces_service_graph_request_failed_total[5m]))",
        "anonymous",
    );
    assert_eq!(
        failed_rates.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "client=checkout,server=payments-api",
            "client=frontend,server=checkout"
        ]
    );
    let p90 = instant(
        &server,
        "histogram_quantile(0.9, sum by (client, server, le) (rate(traces_service_graph_request_server_seconds_bucket[5m])))",
        "anonymous",
    );
    let frontend_checkout = p90["client=frontend,server=checkout"];
    assert!(
        frontend_checkout > 0.1 && frontend_checkout <= 0.2,
        "{p90:?}"
    );
}
