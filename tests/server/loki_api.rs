//! The Loki HTTP query API of the real binary: log and metric queries, the
//! JSON Loki writes, labels/series/index stats, format_query, errors as
//! plain text with Loki's status codes, tenants, and the requests Grafana's
//! Loki datasource sends. Data goes in through Loki push.

use serde_json::{Value, json};

use crate::common::{Server, TEST_CONFIG, http_exchange, tempdir};

struct Fixture {
    server: Server,
    /// The first line's timestamp (ns, a whole minute).
    base_ns: i64,
    _dir: tempfile::TempDir,
}

const SECOND: i64 = 1_000_000_000;

impl Fixture {
    /// Tenant `anonymous`: `{app="api", env="prod"}` with 10 logfmt lines, one
    /// every 10 s (every third an error with a latency), and `{app="web"}`
    /// with 5 JSON lines; tenant `other`: one line of `{app="api"}`.
    fn start() -> Fixture {
        Self::start_with(TEST_CONFIG)
    }

    fn start_with(config: &str) -> Fixture {
        let dir = tempdir();
        let server = Server::start_with(&dir.path().join("data"), config);
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
        let base_ns = (now / (60 * SECOND)) * 60 * SECOND - 10 * 60 * SECOND;
        let api: Vec<Value> = (0..10)
            .map(|i| {
                let level = if i % 3 == 0 { "error" } else { "info" };
                json!([
                    (base_ns + i * 10 * SECOND).to_string(),
                    format!(
                        "level={level} msg=\"request {i}\" latency={}ms",
                        10 * (i + 1)
                    )
                ])
            })
            .collect();
        let web: Vec<Value> = (0..5)
            .map(|i| {
                json!([
                    (base_ns + i * 10 * SECOND + SECOND).to_string(),
                    format!(
                        "{{\"status\":{},\"path\":\"/p{i}\"}}",
                        if i == 4 { 500 } else { 200 }
                    )
                ])
            })
            .collect();
        let fixture = Fixture {
            server,
            base_ns,
            _dir: dir,
        };
        fixture.push(
            None,
            json!({"streams": [
                {"stream": {"app": "api", "env": "prod"}, "values": api},
                {"stream": {"app": "web"}, "values": web},
            ]}),
        );
        fixture.push(
            Some("other"),
            json!({"streams": [
                {"stream": {"app": "api"}, "values": [[(base_ns + SECOND).to_string(), "other tenant"]]},
            ]}),
        );
        fixture
    }

    fn push(&self, tenant: Option<&str>, body: Value) {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(t) = tenant {
            headers.push(("X-Scope-OrgID", t));
        }
        let answer = http_exchange(
            self.server.http,
            "POST",
            "/loki/api/v1/push",
            &headers,
            body.to_string().as_bytes(),
        );
        assert_eq!(answer.status, 204, "push failed: {}", answer.body);
    }

    fn get(&self, path_and_query: &str, tenant: Option<&str>) -> (u16, String) {
        let mut headers = vec![];
        if let Some(t) = tenant {
            headers.push(("X-Scope-OrgID", t));
        }
        let a = http_exchange(self.server.http, "GET", path_and_query, &headers, b"");
        (a.status, a.body)
    }

    fn get_json(&self, path_and_query: &str) -> Value {
        let (status, body) = self.get(path_and_query, None);
        assert_eq!(status, 200, "{path_and_query}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    /// `start`/`end` covering all lines, in nanoseconds.
    fn range(&self) -> String {
        format!(
            "start={}&end={}",
            self.base_ns - 60 * SECOND,
            self.base_ns + 5 * 60 * SECOND
        )
    }
}

fn enc(q: &str) -> String {
    url::form_urlencoded::byte_serialize(q.as_bytes()).collect()
}

#[test]
fn loki_query_api_answers_like_loki() {
    let f = Fixture::start();
    let range = f.range();

    // A log query: backward, limit, the streams shape with nanosecond strings.
    let v = f.get_json(&format!(
        "/loki/api/v1/query_range?query={}&{range}&limit=3",
        enc(r#"{app="api"} |= "error""#)
    ));
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["resultType"], "streams");
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1);
    assert_eq!(result[0]["stream"], json!({"app": "api", "env": "prod"}));
    let values = result[0]["values"].as_array().unwrap();
    let times: Vec<i64> = values
        .iter()
        .map(|e| e[0].as_str().unwrap().parse().unwrap())
        .collect();
    // Errors at i = 0, 3, 6, 9; the newest three, newest first.
    assert_eq!(
        times,
        vec![
            f.base_ns + 90 * SECOND,
            f.base_ns + 60 * SECOND,
            f.base_ns + 30 * SECOND
        ]
    );
    assert_eq!(values[0][1], "level=error msg=\"request 9\" latency=100ms");
    assert!(v["data"]["stats"]["summary"]["totalEntriesReturned"] == 3);

    // Forward, with a parser: parsed labels split the stream.
    let v = f.get_json(&format!(
        "/loki/api/v1/query_range?query={}&{range}&direction=forward&limit=2",
        enc(r#"{app="api"} | logfmt | level="info""#)
    ));
    let result = v["data"]["result"].as_array().unwrap();
    let first = &result[0];
    assert_eq!(first["stream"]["level"], "info");
    assert_eq!(first["stream"]["msg"], "request 1");
    assert_eq!(
        first["values"][0][0].as_str().unwrap(),
        (f.base_ns + 10 * SECOND).to_string()
    );

    // `interval`: entries at least 25 s apart, oldest first: 0, 30, 60, 90 s.
    let v = f.get_json(&format!(
        "/loki/api/v1/query_range?query={}&{range}&direction=forward&interval=25s",
        enc(r#"{app="api"}"#)
    ));
    let times: Vec<i64> = v["data"]["result"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[0].as_str().unwrap().parse::<i64>().unwrap() - f.base_ns)
        .collect();
    assert_eq!(times, vec![0, 30 * SECOND, 60 * SECOND, 90 * SECOND]);

    // A metric range query: one series per level, values on the step grid.
    let start = f.base_ns + 60 * SECOND;
    let end = f.base_ns + 120 * SECOND;
    let v = f.get_json(&format!(
        "/loki/api/v1/query_range?query={}&start={start}&end={end}&step=60",
        enc(r#"sum by (level) (count_over_time({app="api"} | logfmt [1m]))"#)
    ));
    assert_eq!(v["data"]["resultType"], "matrix");
    let series = v["data"]["result"].as_array().unwrap();
    let by_level = |level: &str| -> Vec<Value> {
        series
            .iter()
            .find(|s| s["metric"]["level"] == level)
            .unwrap_or_else(|| panic!("no {level} series in {v}"))["values"]
            .as_array()
            .unwrap()
            .clone()
    };
    let start_s = start / SECOND;
    // Window (t-60s, t]: at start the lines 1..=6, at start+60 the lines 7..=9.
    assert_eq!(
        by_level("error"),
        vec![json!([start_s, "2"]), json!([start_s + 60, "1"])]
    );
    assert_eq!(
        by_level("info"),
        vec![json!([start_s, "4"]), json!([start_s + 60, "2"])]
    );

    // From here on the lines are read from a block.
    f.server.flush();
    // Counted in the scan, grouped by a stream label some streams lack
    // (read as structured metadata, else stream label).
    let v = f.get_json(&format!(
        "/loki/api/v1/query?query={}&time={}",
        enc(r#"sum by (env) (count_over_time({app=~"api|web"} [10m]))"#),
        f.base_ns + 5 * 60 * SECOND
    ));
    let mut counts: Vec<(String, String)> = v["data"]["result"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|s| {
            let env = s["metric"]["env"].as_str().unwrap_or("").to_string();
            (env, s["value"][1].as_str().unwrap().to_string())
        })
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        vec![
            (String::new(), "5".to_string()),
            ("prod".to_string(), "10".to_string())
        ],
        "{v}"
    );
    // A label filter before any parser is pushed into the scan.
    let v = f.get_json(&format!(
        "/loki/api/v1/query?query={}&time={}",
        enc(r#"sum(count_over_time({app=~"api|web"} | env="prod" [10m]))"#),
        f.base_ns + 5 * 60 * SECOND
    ));
    assert_eq!(v["data"]["result"][0]["value"][1], "10", "{v}");

    // An instant query: a vector; unwrap with a duration conversion.
    let v = f.get_json(&format!(
        "/loki/api/v1/query?query={}&time={}",
        enc(r#"max_over_time({app="api"} | logfmt | unwrap duration(latency) [10m]) by (app)"#),
        f.base_ns + 5 * 60 * SECOND
    ));
    assert_eq!(v["data"]["resultType"], "vector");
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 1, "{v}");
    let sample = &v["data"]["result"][0];
    assert_eq!(sample["metric"], json!({"app": "api"}));
    assert_eq!(sample["value"][1], "0.1");

    // Labels, values, series, index stats.
    let v = f.get_json(&format!("/loki/api/v1/labels?{range}"));
    assert_eq!(v, json!({"status": "success", "data": ["app", "env"]}));
    let v = f.get_json(&format!("/loki/api/v1/label/app/values?{range}"));
    assert_eq!(v["data"], json!(["api", "web"]));
    let v = f.get_json(&format!(
        "/loki/api/v1/label/env/values?{range}&query={}",
        enc(r#"{app="web"}"#)
    ));
    assert_eq!(v["data"], json!([]));
    let v = f.get_json(&format!(
        "/loki/api/v1/series?{range}&match[]={}",
        enc(r#"{app=~"a.*"}"#)
    ));
    assert_eq!(v["data"], json!([{"app": "api", "env": "prod"}]));
    let v = f.get_json(&format!(
        "/loki/api/v1/index/stats?{range}&query={}",
        enc(r#"{app="web"}"#)
    ));
    assert_eq!(v["streams"], 1);
    assert_eq!(v["entries"], 5);
    assert!(v["bytes"].as_u64().unwrap() > 5 * 20);

    // format_query.
    let v = f.get_json(&format!(
        "/loki/api/v1/format_query?query={}",
        enc(r#"sum by(app)(rate({app="api"}|="x"[5m]))"#)
    ));
    assert_eq!(v["status"], "success");
    assert!(v["data"].as_str().unwrap().contains("rate("), "{v}");

    // Tenants: the other tenant sees only its own line.
    let (status, body) = f.get(
        &format!(
            "/loki/api/v1/query_range?query={}&{range}",
            enc(r#"{app="api"}"#)
        ),
        Some("other"),
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["result"][0]["values"][0][1], "other tenant");
    assert_eq!(
        v["data"]["result"][0]["values"].as_array().unwrap().len(),
        1
    );
}

#[test]
fn loki_query_api_rejects_bad_requests_clearly() {
    let f = Fixture::start();
    let range = f.range();
    let bad = |path: String, needle: &str| {
        let (status, body) = f.get(&path, None);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(needle), "{path}: {body:?} lacks {needle:?}");
    };
    bad(
        format!(
            "/loki/api/v1/query_range?query={}&{range}",
            enc(r#"{app="api"} |= "#)
        ),
        "parse error at line 1, col",
    );
    bad(
        format!("/loki/api/v1/query?query={}", enc(r#"{app="api"}"#)),
        "log queries are not supported as an instant query type",
    );
    bad(
        format!(
            "/loki/api/v1/query_range?query={}&{range}&limit=100000",
            enc(r#"{app="api"}"#)
        ),
        "max_entries_limit_per_query",
    );
    bad(
        format!(
            "/loki/api/v1/query_range?query={}&{range}&step=60",
            enc(r#"sum_over_time({app="api"} | logfmt | unwrap msg [1m])"#)
        ),
        "SampleExtractionErr",
    );
    bad(
        format!(
            "/loki/api/v1/query_range?query={}&{range}&direction=sideways",
            enc(r#"{app="api"}"#)
        ),
        "direction",
    );
    bad(
        format!(
            "/loki/api/v1/query_range?query={}&start=abc",
            enc(r#"{app="api"}"#)
        ),
        "abc",
    );
    // Still serving.
    let v = f.get_json(&format!(
        "/loki/api/v1/query_range?query={}&{range}",
        enc(r#"{app="web"} | json | status >= 500"#)
    ));
    assert_eq!(v["data"]["result"][0]["stream"]["status"], "500");
}

/// `max_query_series` and `max_entries_limit_per_query` from the config.
#[test]
fn loki_query_limits_come_from_the_config() {
    let f = Fixture::start_with(&format!(
        "{TEST_CONFIG}max_query_series = 3\nmax_entries_limit_per_query = 4\n"
    ));
    let range = f.range();
    let (status, body) = f.get(
        &format!(
            "/loki/api/v1/query_range?query={}&{range}&step=60",
            enc(r#"count_over_time({app="api"} | logfmt [10m])"#)
        ),
        None,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("maximum number of series (3)"), "{body}");
    let (status, body) = f.get(
        &format!(
            "/loki/api/v1/query_range?query={}&{range}&limit=5",
            enc(r#"{app="api"}"#)
        ),
        None,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("(5 > 4)"), "{body}");
    // Within the limits.
    let v = f.get_json(&format!(
        "/loki/api/v1/query_range?query={}&{range}&step=60",
        enc(r#"sum by (level) (count_over_time({app="api"} | logfmt [10m]))"#)
    ));
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 2);
}

/// The requests Grafana's Loki datasource sends: health check, label
/// browser, log panel, logs volume and stats.
#[test]
fn grafana_loki_datasource_requests_work() {
    let f = Fixture::start();
    let start = f.base_ns - 60 * SECOND;
    let end = f.base_ns + 5 * 60 * SECOND;
    for path in [
        format!("/loki/api/v1/labels?start={start}&end={end}"),
        format!("/loki/api/v1/label/app/values?start={start}&end={end}"),
        format!(
            "/loki/api/v1/query_range?direction=backward&end={end}&limit=1000&query={}&start={start}&step=1s",
            enc(r#"{app="api"} |= `request`"#)
        ),
        format!(
            "/loki/api/v1/query_range?direction=backward&end={end}&query={}&start={start}&step=10s",
            enc(r#"sum by (level) (count_over_time({app="api"} | drop __error__[10s]))"#)
        ),
        format!(
            "/loki/api/v1/index/stats?query={}&start={start}&end={end}",
            enc(r#"{app="api"}"#)
        ),
        format!(
            "/loki/api/v1/series?match[]={}&start={start}&end={end}",
            enc(r#"{app="api"}"#)
        ),
        "/loki/api/v1/status/buildinfo".to_string(),
    ] {
        let (status, body) = f.get(&path, None);
        assert_eq!(status, 200, "{path}: {body}");
        let _: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}

/// `/loki/api/v1/tail`: a websocket that first sends the recent entries,
/// then each new one as it is pushed.
#[tokio::test(flavor = "multi_thread")]
async fn tail_streams_new_entries_over_a_websocket() {
    let f = tokio::task::spawn_blocking(Fixture::start).await.unwrap();
    let url = format!(
        "ws://{}/loki/api/v1/tail?query={}&start={}&limit=2",
        f.server.http,
        enc(r#"{app="api"} |= "error""#),
        f.base_ns - 60 * SECOND
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    // The two newest errors, oldest first within the stream.
    let first = next_json(&mut socket).await;
    let values = first["streams"][0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 2, "{first}");
    assert_eq!(values[1][1], "level=error msg=\"request 9\" latency=100ms");
    assert!(first["dropped_entries"].is_null());

    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let body = json!({"streams": [{"stream": {"app": "api", "env": "prod"},
        "values": [[now.to_string(), "level=error msg=\"live\""]]}]});
    let f = tokio::task::spawn_blocking(move || {
        f.push(None, body);
        f
    })
    .await
    .unwrap();
    let live = next_json(&mut socket).await;
    assert_eq!(
        live["streams"][0]["values"][0][1], "level=error msg=\"live\"",
        "{live}"
    );

    // A deletion request hides its lines from the live tail too (the tail
    // reads through the `logs` scan, which filters them).
    let (now_s, server) = (now / SECOND, f.server.http);
    let path = format!(
        "/loki/api/v1/delete?query={}&start={}&end={}",
        enc(r#"{app="api"} |= "secret""#),
        now_s - 3600,
        now_s + 3600
    );
    let answer =
        tokio::task::spawn_blocking(move || http_exchange(server, "POST", &path, &[], b""))
            .await
            .unwrap();
    assert_eq!(answer.status, 204, "{}", answer.body);
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let body = json!({"streams": [{"stream": {"app": "api", "env": "prod"},
        "values": [[now.to_string(), "level=error msg=\"secret\""],
                   [(now + 1).to_string(), "level=error msg=\"after\""]]}]});
    let _f = tokio::task::spawn_blocking(move || {
        f.push(None, body);
        f
    })
    .await
    .unwrap();
    let live = next_json(&mut socket).await;
    let values = live["streams"][0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 1, "{live}");
    assert_eq!(values[0][1], "level=error msg=\"after\"", "{live}");
    socket.close(None).await.unwrap();
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text message of a tail socket, as JSON.
async fn next_json(socket: &mut Socket) -> Value {
    use futures::StreamExt;
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(20), socket.next())
            .await
            .expect("a tail message within 20 s")
            .expect("socket open")
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            return serde_json::from_str::<Value>(&text).unwrap();
        }
    }
}
