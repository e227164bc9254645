//! Prometheus remote write into the real binary: a real Prometheus (the
//! Debian package) scraping itself and remote-writing to o11ydb, plus
//! hand-built requests for stale markers, tenants, limits and bad input.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use o11ydb::ingest::native_histogram::encode_histogram;
use o11ydb::ingest::protobuf::put_bytes_field;
use o11ydb::ingest::remote_write::{encode_write_request, encode_write_request_v2};
use o11ydb::model::histogram::{FloatHistogram, Span};

use crate::common::{ChildGuard, Server, free_port, http_exchange, http_send, tempdir, urlencode};

const NOW_SLACK_MS: i64 = 1000;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn snappy(body: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(body).unwrap()
}

/// POSTs a remote-write body (snappy-compressed here) with optional extra headers.
fn write(server: &Server, body: &[u8], tenant: Option<&str>) -> (u16, String) {
    let compressed = snappy(body);
    let headers = crate::common::remote_write_headers(tenant);
    http_send(server.http, "POST", "/api/v1/write", &headers, &compressed)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_remote_writes_its_own_metrics() {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!(
            "the prometheus binary is required (apt-get install prometheus); .ci/run installs it"
        );
    }
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n\
             remote_write:\n  - url: http://{}/api/v1/write\n    queue_config:\n      batch_send_deadline: 1s\n",
            server.http
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prometheus = ChildGuard(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let client = server.client().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let count = loop {
        let rows = client
            .query(
                "SELECT count(*) FROM samples WHERE metric = 'prometheus_build_info' \
                 AND labels['job'] = 'prometheus'",
                &[],
            )
            .await
            .unwrap();
        let n: i64 = rows[0].get(0);
        if n > 0 || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let prometheus_log =
        std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    assert!(
        count > 0,
        "no samples arrived from Prometheus within 60 s; its log:\n{prometheus_log}"
    );
    let rows = client
        .query(
            "SELECT count(DISTINCT metric), count(DISTINCT series_id) FROM samples \
             WHERE labels['instance'] = $1",
            &[&format!("127.0.0.1:{port}")],
        )
        .await
        .unwrap();
    let (metrics, series): (i64, i64) = (rows[0].get(0), rows[0].get(1));
    assert!(
        metrics > 50 && series > 100,
        "{metrics} metrics, {series} series"
    );
    let (_, text) = server.http_get("/metrics");
    assert!(
        text.contains("o11ydb_received_samples_total{tenant=\"anonymous\"}"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_markers_tenants_and_partial_failures() {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let now = now_ms() - NOW_SLACK_MS;
    let stale = f64::from_bits(o11ydb::model::STALE_NAN_BITS);
    let body = encode_write_request(&[
        (
            labels(&[("__name__", "up"), ("job", "api"), ("instance", "a:1")]),
            vec![(now - 15_000, 1.0), (now, stale)],
        ),
        (
            labels(&[("__name__", "temperature"), ("room", "b")]),
            vec![(now, f64::INFINITY)],
        ),
    ]);
    let (status, text) = write(&server, &body, None);
    assert_eq!(status, 204, "{text}");
    let client = server.client().await;
    let rows = client
        .query(
            "SELECT value FROM samples WHERE metric = 'up' ORDER BY timestamp",
            &[],
        )
        .await
        .unwrap();
    let values: Vec<f64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(values[0], 1.0);
    assert_eq!(
        values[1].to_bits(),
        stale.to_bits(),
        "the stale marker keeps its bits"
    );
    let rows = client
        .query(
            "SELECT value FROM samples WHERE metric = 'temperature'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, f64>(0), f64::INFINITY);

    // Another tenant's data is invisible to this (anonymous) session.
    let body = encode_write_request(&[(labels(&[("__name__", "secret")]), vec![(now, 42.0)])]);
    assert_eq!(write(&server, &body, Some("team-b")).0, 204);
    let rows = client
        .query("SELECT count(*) FROM samples WHERE metric = 'secret'", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 0);

    // One invalid series among valid ones: 400 naming it, the rest written.
    let body = encode_write_request(&[
        (
            labels(&[("__name__", "good"), ("x", "1")]),
            vec![(now, 1.0)],
        ),
        (
            labels(&[("__name__", "bad"), ("x", "1"), ("x", "2")]),
            vec![(now, 1.0)],
        ),
        (
            labels(&[("__name__", "old")]),
            vec![(now - 30 * 86_400_000, 1.0)],
        ),
    ]);
    let (status, text) = write(&server, &body, None);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("duplicate label name \"x\""), "{text}");
    assert!(text.contains("2 of 3 items rejected"), "{text}");
    let rows = client
        .query(
            "SELECT count(*) FROM samples WHERE metric IN ('good', 'bad', 'old')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 1);
    let (_, metrics) = server.http_get("/metrics");
    assert!(
        metrics.contains(
            "o11ydb_discarded_samples_total{tenant=\"anonymous\",reason=\"duplicate_label_names\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("reason=\"sample_too_old\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_clear_4xx_and_the_server_keeps_serving() {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let now = now_ms() - NOW_SLACK_MS;
    let valid = encode_write_request(&[(labels(&[("__name__", "up")]), vec![(now, 1.0)])]);
    assert_eq!(write(&server, &valid, None).0, 204);

    let post = |headers: &[(&str, &str)], body: &[u8]| {
        http_send(server.http, "POST", "/api/v1/write", headers, body)
    };
    let proto = [
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "snappy"),
    ];

    let (status, text) = post(&proto, b"this is not snappy");
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("snappy"), "{text}");

    let (status, text) = post(&proto, &snappy(b"\x0a\xff\xff\xff\x0f garbage"));
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("malformed protobuf at byte"), "{text}");

    let truncated = &valid[..valid.len() - 3];
    let (status, text) = post(&proto, &snappy(truncated));
    assert_eq!(status, 400, "{text}");

    let (status, text) = post(&[("Content-Type", "application/json")], b"{}");
    assert_eq!(status, 415, "{text}");

    let huge = vec![b'x'; 100 << 20];
    let (status, _) = post(&proto, &huge);
    assert_eq!(status, 413);

    let bad_utf8 = {
        let mut b = encode_write_request(&[(
            labels(&[("__name__", "up"), ("job", "zz")]),
            vec![(now, 1.0)],
        )]);
        let i = b.windows(2).position(|w| w == b"zz").unwrap();
        b[i] = 0xff;
        b
    };
    let (status, text) = write(&server, &bad_utf8, None);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("not valid UTF-8"), "{text}");

    let many: Vec<(String, String)> = std::iter::once(("__name__".to_string(), "wide".to_string()))
        .chain((0..10_000).map(|i| (format!("l{i}"), "v".to_string())))
        .collect();
    let (status, text) = write(
        &server,
        &encode_write_request(&[(many, vec![(now, 1.0)])]),
        None,
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("max_label_names_per_series"), "{text}");

    let future =
        encode_write_request(&[(labels(&[("__name__", "f")]), vec![(now + 86_400_000, 1.0)])]);
    let (status, text) = write(&server, &future, None);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("too far in the future"), "{text}");

    for bad_tenant in ["a/b", "..", "a|b", &"x".repeat(200)] {
        let (status, text) = write(&server, &valid, Some(bad_tenant));
        assert_eq!(status, 400, "tenant {bad_tenant:?}: {text}");
        assert!(text.contains("X-Scope-OrgID"), "{text}");
    }

    // Everything acknowledged is still there and the server still serves.
    let client = server.client().await;
    let rows = client
        .query("SELECT count(*) FROM samples WHERE metric = 'up'", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 1);
    assert_eq!(write(&server, &valid, Some("other")).0, 204);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_answer_429_and_overrides_reload_without_restart() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let config_path = data.with_extension("toml");
    let config = |rate: u32| {
        format!(
            "{}\n[limits]\ningestion_rate = 10\ningestion_burst_size = 10\n[overrides.big]\ningestion_rate = {rate}\ningestion_burst_size = {rate}\n",
            crate::common::TEST_CONFIG
        )
    };
    let server = Server::start_with(&data, &config(20));
    let now = now_ms() - NOW_SLACK_MS;
    let body = |n: usize, name: &str| {
        encode_write_request(
            &(0..n)
                .map(|i| {
                    (
                        labels(&[("__name__", name), ("i", &i.to_string())]),
                        vec![(now, 1.0)],
                    )
                })
                .collect::<Vec<_>>(),
        )
    };
    let (status, text) = write(&server, &body(50, "m"), Some("small"));
    assert_eq!(status, 429, "{text}");
    assert!(
        text.contains("ingestion_rate") && text.contains("\"small\"") && text.contains("10"),
        "{text}"
    );
    assert_eq!(
        write(&server, &body(15, "m"), Some("big")).0,
        204,
        "override of 20 applies"
    );
    assert_eq!(write(&server, &body(50, "n"), Some("big")).0, 429);
    // Raise the override in the file; the server picks it up within seconds.
    std::fs::write(&config_path, config(1000)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, text) = write(&server, &body(50, "o"), Some("big"));
        if status == 204 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "override never reloaded: {status} {text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, metrics) = server.http_get("/metrics");
    assert!(
        metrics.contains("tenant=\"small\",reason=\"rate_limited\"} 50"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_write_2_is_negotiated_by_content_type() {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let now = now_ms() - NOW_SLACK_MS;
    let series = [
        (
            labels(&[
                ("__name__", "rw2_requests_total"),
                ("job", "api"),
                ("code", "200"),
            ]),
            vec![(now - 15_000, 10.0), (now, 12.0)],
        ),
        (
            labels(&[
                ("__name__", "rw2_requests_total"),
                ("job", "api"),
                ("code", "500"),
            ]),
            vec![(now, 1.0)],
        ),
        // No metric name: refused, the rest written.
        (labels(&[("job", "api")]), vec![(now, 1.0)]),
    ];
    let v2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request";
    let body = snappy(&encode_write_request_v2(&series));
    let send = |content_type: &str, body: &[u8]| {
        http_exchange(
            server.http,
            "POST",
            "/api/v1/write",
            &[
                ("Content-Type", content_type),
                ("Content-Encoding", "snappy"),
                ("X-Prometheus-Remote-Write-Version", "2.0.0"),
            ],
            body,
        )
    };
    let answer = send(v2, &body);
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(answer.body.contains("__name__"), "{}", answer.body);
    assert_eq!(
        answer.header("X-Prometheus-Remote-Write-Samples-Written"),
        Some("3")
    );
    assert_eq!(
        answer.header("X-Prometheus-Remote-Write-Histograms-Written"),
        Some("0")
    );

    let client = server.client().await;
    let rows = client
        .query(
            "SELECT labels['code'], value FROM samples WHERE metric = 'rw2_requests_total' \
             ORDER BY timestamp, 1",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, f64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        vec![
            ("200".to_string(), 10.0),
            ("200".to_string(), 12.0),
            ("500".to_string(), 1.0)
        ]
    );

    // A 2.0 body sent as 1.0 is not mistaken for data; an unknown proto is 415.
    let answer = send(
        "application/x-protobuf;proto=io.prometheus.write.v3.Request",
        &body,
    );
    assert_eq!(answer.status, 415, "{}", answer.body);
    assert!(answer.body.contains("io.prometheus.write.v3.Request"));
    let v1 = send(
        "application/x-protobuf;proto=prometheus.WriteRequest",
        &snappy(&encode_write_request(&[(
            labels(&[("__name__", "rw1_up"), ("job", "api")]),
            vec![(now, 1.0)],
        )])),
    );
    assert_eq!(v1.status, 204, "{}", v1.body);
    assert_eq!(v1.header("X-Prometheus-Remote-Write-Samples-Written"), None);
}

/// A remote-write 1.0 request with one series of native histograms.
fn histogram_request(labels: &[(&str, &str)], samples: &[(i64, FloatHistogram)]) -> Vec<u8> {
    let mut series = Vec::new();
    for (name, value) in labels {
        let mut label = Vec::new();
        put_bytes_field(&mut label, 1, name.as_bytes());
        put_bytes_field(&mut label, 2, value.as_bytes());
        put_bytes_field(&mut series, 1, &label);
    }
    for (t, h) in samples {
        put_bytes_field(&mut series, 4, &encode_histogram(*t, h));
    }
    let mut request = Vec::new();
    put_bytes_field(&mut request, 1, &series);
    request
}

#[tokio::test(flavor = "multi_thread")]
async fn native_histograms_are_stored_and_queried_as_histograms() {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let now = (now_ms() - NOW_SLACK_MS) / 1000 * 1000;
    let histogram = |count: f64, buckets: Vec<f64>| FloatHistogram {
        schema: 0,
        count,
        sum: count * 1.5,
        positive_spans: vec![Span {
            offset: 1,
            length: buckets.len() as u32,
        }],
        positive_buckets: buckets,
        ..Default::default()
    };
    let body = histogram_request(
        &[("__name__", "rpc_duration_seconds"), ("job", "api")],
        &[
            (now - 30_000, histogram(4.0, vec![1.0, 3.0])),
            (now, histogram(10.0, vec![4.0, 6.0])),
        ],
    );
    let (status, answer) = write(&server, &body, None);
    assert_eq!(status, 204, "{answer}");

    let query = |q: &str| {
        let path = format!(
            "/api/v1/query?query={}&time={}",
            urlencode(q),
            now as f64 / 1000.0
        );
        http_send(server.http, "GET", &path, &[], b"")
    };
    let (status, raw) = query("rpc_duration_seconds");
    assert_eq!(status, 200, "{raw}");
    assert!(
        raw.contains(r#""histogram":["#)
            && raw.contains(r#""count":"10","sum":"15""#)
            && raw.contains(r#""buckets":[[0,"1","2","4"],[0,"2","4","6"]]"#),
        "{raw}"
    );
    let (_, count) = query("histogram_count(rpc_duration_seconds)");
    assert!(
        count.contains(r#""value":["#) && count.contains(r#","10"]"#),
        "{count}"
    );
    // increase over 30 s of data in a 1 m window, extrapolated like Prometheus.
    let (_, rate) = query("histogram_count(rate(rpc_duration_seconds[1m]))");
    assert!(
        rate.contains(r#""resultType":"vector""#) && rate.contains(r#""value""#),
        "{rate}"
    );

    // In SQL the row carries the encoded histogram and a NaN value.
    let client = server.client().await;
    let rows = client
        .query(
            "SELECT value, histogram IS NOT NULL FROM samples \
             WHERE metric = 'rpc_duration_seconds' ORDER BY timestamp",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| r.get::<_, f64>(0).is_nan() && r.get::<_, bool>(1))
    );
    // SQL reads the histograms with the histogram_* functions.
    let rows = client
        .query(
            "SELECT histogram_count(histogram), histogram_sum(histogram) FROM samples \
             WHERE metric = 'rpc_duration_seconds' ORDER BY timestamp",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(f64, f64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![(4.0, 6.0), (10.0, 15.0)]);
    // promql() in SQL answers the histogram in its `histogram` column.
    let rows = client
        .query(
            &format!(
                "SELECT metric, histogram IS NOT NULL FROM promql('rpc_duration_seconds', '{}')",
                now as f64 / 1000.0
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), "rpc_duration_seconds");
    assert!(rows[0].get::<_, bool>(1));

    // Spans that do not cover the counts: refused with a clear 400.
    let mut bad = histogram(1.0, vec![1.0]);
    bad.positive_spans[0].length = 3;
    let body = histogram_request(&[("__name__", "bad_hist")], &[(now, bad)]);
    let (status, answer) = write(&server, &body, None);
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("spans cover 3 buckets but 1"), "{answer}");
}
