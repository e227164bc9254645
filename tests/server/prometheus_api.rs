//! The Prometheus HTTP query API of the real binary: the JSON Prometheus
//! writes (checked byte for byte), GET and POST forms, parameter errors,
//! tenants, `promtool query` and the requests Grafana's Prometheus
//! datasource sends.
//!
//! Data goes in through remote write at minute-aligned times of the last
//! quarter hour, so every answer below is exact.

use std::process::Command;

use o11ydb::ingest::remote_write::encode_write_request;
use serde_json::{Value, json};

use crate::common::{HttpAnswer, Server, TEST_CONFIG, http_exchange, tempdir};

/// Seconds between the samples written.
const SCRAPE_SECS: i64 = 15;
/// Samples per series: ten minutes.
const POINTS: i64 = 41;

/// The written data: its first timestamp (ms, a whole minute) and the server.
struct Fixture {
    server: Server,
    base_ms: i64,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// A server holding, for tenant `anonymous`:
    /// `http_requests_total{job="api",instance="a:1",code="200"}` = 10·i,
    /// `http_requests_total{job="api",instance="b:1",code="500"}` = i,
    /// `temperature{room="kitchen"}` = 21.5, at `base + 15 s · i`, i = 0..40.
    fn start() -> Fixture {
        Self::start_with(TEST_CONFIG)
    }

    fn start_with(config: &str) -> Fixture {
        let dir = tempdir();
        let server = Server::start_with(&dir.path().join("data"), config);
        let now = chrono::Utc::now().timestamp_millis();
        let base_ms = (now / 60_000) * 60_000 - 11 * 60_000;
        let fixture = Fixture {
            server,
            base_ms,
            _dir: dir,
        };
        fixture.write(
            None,
            &[
                (
                    &[
                        ("__name__", "http_requests_total"),
                        ("code", "200"),
                        ("instance", "a:1"),
                        ("job", "api"),
                    ],
                    &|i| 10.0 * i as f64,
                ),
                (
                    &[
                        ("__name__", "http_requests_total"),
                        ("code", "500"),
                        ("instance", "b:1"),
                        ("job", "api"),
                    ],
                    &|i| i as f64,
                ),
                (&[("__name__", "temperature"), ("room", "kitchen")], &|_| {
                    21.5
                }),
            ],
        );
        fixture
    }

    /// Remote-writes `POINTS` samples per series, `value(i)` at `base + 15 s · i`.
    #[allow(clippy::type_complexity)]
    fn write(&self, tenant: Option<&str>, series: &[(&[(&str, &str)], &dyn Fn(i64) -> f64)]) {
        let series: Vec<_> = series
            .iter()
            .map(|(labels, value)| {
                let labels = labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                let samples = (0..POINTS)
                    .map(|i| (self.base_ms + i * SCRAPE_SECS * 1000, value(i)))
                    .collect();
                (labels, samples)
            })
            .collect();
        let body = snap::raw::Encoder::new()
            .compress_vec(&encode_write_request(&series))
            .unwrap();
        let mut headers = vec![
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "snappy"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ];
        if let Some(t) = tenant {
            headers.push(("X-Scope-OrgID", t));
        }
        let answer = http_exchange(self.server.http, "POST", "/api/v1/write", &headers, &body);
        assert_eq!(answer.status, 204, "remote write: {}", answer.body);
    }

    /// Seconds since the epoch of sample `i`, as a query parameter.
    fn at(&self, i: i64) -> String {
        ((self.base_ms + i * SCRAPE_SECS * 1000) / 1000).to_string()
    }

    fn get(&self, path: &str, params: &[(&str, &str)]) -> HttpAnswer {
        get(&self.server, path, params, None)
    }

    fn post(&self, path: &str, params: &[(&str, &str)]) -> HttpAnswer {
        post_form(&self.server, path, "", params, None)
    }
}

fn encode(params: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

fn get(server: &Server, path: &str, params: &[(&str, &str)], tenant: Option<&str>) -> HttpAnswer {
    let target = if params.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", encode(params))
    };
    let headers: Vec<(&str, &str)> = tenant.map(|t| ("X-Scope-OrgID", t)).into_iter().collect();
    http_exchange(server.http, "GET", &target, &headers, b"")
}

/// A POST with an `application/x-www-form-urlencoded` body and, optionally,
/// URL parameters (`url_query`, already encoded).
fn post_form(
    server: &Server,
    path: &str,
    url_query: &str,
    params: &[(&str, &str)],
    tenant: Option<&str>,
) -> HttpAnswer {
    let target = if url_query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{url_query}")
    };
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(t) = tenant {
        headers.push(("X-Scope-OrgID", t));
    }
    http_exchange(
        server.http,
        "POST",
        &target,
        &headers,
        encode(params).as_bytes(),
    )
}

/// A 200 JSON answer, parsed.
fn ok_json(answer: &HttpAnswer) -> Value {
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}: {}", answer.body))
}

/// Asserts a Prometheus error answer: status, errorType and error text.
fn assert_error(answer: &HttpAnswer, status: u16, error_type: &str, error: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let expected = json!({"status": "error", "errorType": error_type, "error": error});
    assert_eq!(
        serde_json::from_str::<Value>(&answer.body).unwrap(),
        expected,
        "{}",
        answer.body
    );
}

#[test]
fn instant_queries_answer_vectors_scalars_and_strings_like_prometheus() {
    let f = Fixture::start();
    let t = f.at(40);
    // Byte for byte: labels sorted, values as strings, integer timestamps
    // without a fraction.
    let answer = f.get(
        "/api/v1/query",
        &[("query", "sum(http_requests_total)"), ("time", &t)],
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body,
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[{t},"440"]}}]}}}}"#
        )
    );
    let answer = f.get("/api/v1/query", &[("query", "temperature"), ("time", &t)]);
    assert_eq!(
        answer.body,
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"__name__":"temperature","room":"kitchen"}},"value":[{t},"21.5"]}}]}}}}"#
        )
    );
    // Milliseconds: three digits, trailing zeros kept (jsonutil.MarshalTimestamp).
    let half = format!("{t}.5");
    let answer = f.get(
        "/api/v1/query",
        &[("query", "temperature"), ("time", &half)],
    );
    assert!(
        answer.body.contains(&format!("[{t}.500,\"21.5\"]")),
        "{}",
        answer.body
    );
    // RFC 3339 time.
    let rfc3339 = chrono::DateTime::from_timestamp_millis(f.base_ms + 40 * 15_000)
        .unwrap()
        .to_rfc3339();
    let v = ok_json(&f.get(
        "/api/v1/query",
        &[("query", "sum(http_requests_total)"), ("time", &rfc3339)],
    ));
    assert_eq!(v["data"]["result"][0]["value"][1], "440");
    // Scalars and strings: [t, "v"], t written as a plain JSON number.
    let answer = f.get("/api/v1/query", &[("query", "1+1"), ("time", "4")]);
    assert_eq!(
        answer.body,
        r#"{"status":"success","data":{"resultType":"scalar","result":[4,"2"]}}"#
    );
    let answer = f.get("/api/v1/query", &[("query", "1/0"), ("time", "1.5")]);
    assert_eq!(
        answer.body,
        r#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"+Inf"]}}"#
    );
    let answer = f.get("/api/v1/query", &[("query", r#""hello""#), ("time", "4")]);
    assert_eq!(
        answer.body,
        r#"{"status":"success","data":{"resultType":"string","result":[4,"hello"]}}"#
    );
    // A range selector answers a matrix.
    let v = ok_json(&f.get(
        "/api/v1/query",
        &[("query", "temperature[30s]"), ("time", &t)],
    ));
    assert_eq!(v["data"]["resultType"], "matrix");
    // limit cuts the vector and says so.
    let v = ok_json(&f.get(
        "/api/v1/query",
        &[
            ("query", "http_requests_total"),
            ("time", &t),
            ("limit", "1"),
        ],
    ));
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 1);
    assert_eq!(v["warnings"], json!(["results truncated due to limit"]));
    // Without time: now, and the answer is still a vector.
    let v = ok_json(&f.get("/api/v1/query", &[("query", "temperature")]));
    assert_eq!(v["data"]["resultType"], "vector");
}

#[test]
fn range_queries_answer_sorted_matrices() {
    let f = Fixture::start();
    let (start, end) = (f.at(0), f.at(4));
    let answer = f.get(
        "/api/v1/query_range",
        &[
            ("query", r#"http_requests_total{code="500"}"#),
            ("start", &start),
            ("end", &end),
            ("step", "15s"),
        ],
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let s = |i: i64| f.at(i);
    assert_eq!(
        answer.body,
        format!(
            r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{"__name__":"http_requests_total","code":"500","instance":"b:1","job":"api"}},"values":[[{},"0"],[{},"1"],[{},"2"],[{},"3"],[{},"4"]]}}]}}}}"#,
            s(0),
            s(1),
            s(2),
            s(3),
            s(4)
        )
    );
    // Two series come back in label order; step as float seconds.
    let v = ok_json(&f.get(
        "/api/v1/query_range",
        &[
            ("query", "http_requests_total"),
            ("start", &start),
            ("end", &end),
            ("step", "30"),
        ],
    ));
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 2);
    assert_eq!(result[0]["metric"]["instance"], "a:1");
    assert_eq!(result[1]["metric"]["instance"], "b:1");
    assert_eq!(result[0]["values"].as_array().unwrap().len(), 3);
    // Fractional start: millisecond timestamps with three digits.
    let half = format!("{start}.25");
    let answer = f.get(
        "/api/v1/query_range",
        &[
            ("query", "temperature"),
            ("start", &half),
            ("end", &end),
            ("step", "15"),
        ],
    );
    assert!(
        answer.body.contains(&format!("[{start}.250,\"21.5\"]")),
        "{}",
        answer.body
    );
    // A rate over the counter: exact per-second values.
    let v = ok_json(&f.get(
        "/api/v1/query_range",
        &[
            ("query", r#"rate(http_requests_total{code="200"}[1m])"#),
            ("start", &f.at(8)),
            ("end", &f.at(8)),
            ("step", "15"),
        ],
    ));
    // Four samples 15 s apart in the 1 m window, extrapolated to 60 s:
    // 30 · 60/45 / 60 per second.
    let rate: f64 = v["data"]["result"][0]["values"][0][1]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .parse()
        .unwrap();
    assert!((rate - 2.0 / 3.0).abs() < 1e-12, "{v}");
    // Exactly 11,000 steps is still allowed.
    let v = ok_json(&f.get(
        "/api/v1/query_range",
        &[
            ("query", "up"),
            ("start", "0"),
            ("end", "11000"),
            ("step", "1"),
        ],
    ));
    assert_eq!(v["data"], json!({"resultType": "matrix", "result": []}));
}

#[test]
fn post_forms_merge_with_url_parameters_body_first() {
    let f = Fixture::start();
    let t = f.at(40);
    // The body's query wins over the URL's; the URL's time is used.
    let url_query = encode(&[("query", "temperature"), ("time", &t)]);
    let v = ok_json(&post_form(
        &f.server,
        "/api/v1/query",
        &url_query,
        &[("query", "sum(http_requests_total)")],
        None,
    ));
    assert_eq!(
        v["data"]["result"][0]["value"],
        json!([t.parse::<i64>().unwrap(), "440"])
    );
    let v = ok_json(&f.post(
        "/api/v1/query_range",
        &[
            ("query", "temperature"),
            ("start", &f.at(0)),
            ("end", &f.at(2)),
            ("step", "15"),
        ],
    ));
    assert_eq!(
        v["data"]["result"][0]["values"].as_array().unwrap().len(),
        3
    );
    // format_query needs no data: the POST form alone.
    let v = ok_json(&f.post(
        "/api/v1/format_query",
        &[("query", "sum(rate(x[5m]))by(job)")],
    ));
    assert_eq!(
        v,
        json!({"status": "success", "data": "sum by (job) (rate(x[5m]))"})
    );
    // match[] from both the body and the URL.
    let v = ok_json(&post_form(
        &f.server,
        "/api/v1/series",
        &encode(&[("match[]", "temperature")]),
        &[("match[]", r#"http_requests_total{code="500"}"#)],
        None,
    ));
    assert_eq!(v["data"].as_array().unwrap().len(), 2, "{v}");
}

#[test]
fn series_labels_and_label_values() {
    let f = Fixture::start();
    let answer = f.get(
        "/api/v1/series",
        &[("match[]", r#"http_requests_total{code="200"}"#)],
    );
    assert_eq!(
        answer.body,
        r#"{"status":"success","data":[{"__name__":"http_requests_total","code":"200","instance":"a:1","job":"api"}]}"#
    );
    let v = ok_json(&f.get(
        "/api/v1/series",
        &[
            ("match[]", "temperature"),
            ("match[]", "http_requests_total"),
            ("start", &f.at(0)),
            ("end", &f.at(40)),
        ],
    ));
    assert_eq!(v["data"].as_array().unwrap().len(), 3, "{v}");
    let v = ok_json(&f.get(
        "/api/v1/series",
        &[("match[]", "http_requests_total"), ("limit", "1")],
    ));
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["warnings"], json!(["results truncated due to limit"]));
    // A range before any data has no series.
    let v = ok_json(&f.get(
        "/api/v1/series",
        &[("match[]", "temperature"), ("start", "100"), ("end", "200")],
    ));
    assert_eq!(v["data"], json!([]));

    let answer = f.get("/api/v1/labels", &[]);
    assert_eq!(
        answer.body,
        r#"{"status":"success","data":["__name__","code","instance","job","room"]}"#
    );
    let v = ok_json(&f.get("/api/v1/labels", &[("match[]", "temperature")]));
    assert_eq!(v["data"], json!(["__name__", "room"]));

    let answer = f.get("/api/v1/label/__name__/values", &[]);
    assert_eq!(
        answer.body,
        r#"{"status":"success","data":["http_requests_total","temperature"]}"#
    );
    let v = ok_json(&f.get(
        "/api/v1/label/instance/values",
        &[("match[]", r#"{code="500"}"#)],
    ));
    assert_eq!(v["data"], json!(["b:1"]));
    let v = ok_json(&f.get("/api/v1/label/nonexistent/values", &[]));
    assert_eq!(v["data"], json!([]));
    // Prometheus 3.x escaped names: U__ then __ for _.
    let v = ok_json(&f.get("/api/v1/label/U______name____/values", &[]));
    assert_eq!(v["data"], json!(["http_requests_total", "temperature"]));
    let v = ok_json(&f.get("/api/v1/labels", &[("limit", "2")]));
    assert_eq!(v["data"], json!(["__name__", "code"]));
    assert_eq!(v["warnings"], json!(["results truncated due to limit"]));
}

#[test]
fn buildinfo_metadata_exemplars_and_format_query() {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let v = ok_json(&get(&server, "/api/v1/status/buildinfo", &[], None));
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["version"], env!("CARGO_PKG_VERSION"));
    for field in ["revision", "branch", "buildUser", "buildDate", "goVersion"] {
        assert!(v["data"][field].is_string(), "{field}: {v}");
    }
    assert!(
        v["data"].get("features").is_none(),
        "Grafana would take us for Mimir"
    );

    let answer = get(&server, "/api/v1/metadata", &[], None);
    assert_eq!(answer.body, r#"{"status":"success","data":{}}"#);

    let answer = get(
        &server,
        "/api/v1/query_exemplars",
        &[("query", "rate(x[5m])"), ("start", "0"), ("end", "100")],
        None,
    );
    assert_eq!(answer.body, r#"{"status":"success","data":[]}"#);
    // A query selecting no series: 204, as Prometheus answers.
    let answer = get(
        &server,
        "/api/v1/query_exemplars",
        &[("query", "1+1")],
        None,
    );
    assert_eq!(answer.status, 204, "{}", answer.body);
    let answer = get(
        &server,
        "/api/v1/query_exemplars",
        &[("query", "sum(")],
        None,
    );
    assert_error(
        &answer,
        400,
        "bad_data",
        "1:5: parse error: unclosed left parenthesis",
    );

    let answer = get(
        &server,
        "/api/v1/format_query",
        &[(
            "query",
            r#"sum by(job)(rate(http_requests_total{job="api",code=~"5.."}[5m]))/sum by(job)(rate(http_requests_total{job="api"}[5m]))"#,
        )],
        None,
    );
    let v = ok_json(&answer);
    assert_eq!(
        v["data"],
        "  sum by (job) (rate(http_requests_total{code=~\"5..\",job=\"api\"}[5m]))\n/\n  sum by (job) (rate(http_requests_total{job=\"api\"}[5m]))"
    );
    let answer = get(&server, "/api/v1/format_query", &[("query", "foo{")], None);
    assert_error(
        &answer,
        400,
        "bad_data",
        r#"invalid parameter "query": 1:5: parse error: unexpected end of input inside braces"#,
    );
}

#[test]
fn parameter_errors_name_the_parameter() {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let query = |params: &[(&str, &str)]| get(&server, "/api/v1/query", params, None);
    let range = |params: &[(&str, &str)]| get(&server, "/api/v1/query_range", params, None);

    assert_error(
        &query(&[("query", "up"), ("time", "abc")]),
        400,
        "bad_data",
        r#"invalid parameter "time": invalid time value for 'time': cannot parse "abc" to a valid timestamp"#,
    );
    assert_error(
        &query(&[("query", "sum(")]),
        400,
        "bad_data",
        r#"invalid parameter "query": 1:5: parse error: unclosed left parenthesis"#,
    );
    assert_error(
        &query(&[("query", "up"), ("timeout", "soon")]),
        400,
        "bad_data",
        r#"invalid parameter "timeout": cannot parse "soon" to a valid duration"#,
    );
    assert_error(
        &query(&[("query", "up"), ("limit", "many")]),
        400,
        "bad_data",
        r#"invalid parameter "limit": strconv.Atoi: parsing "many": invalid syntax"#,
    );
    assert_error(
        &query(&[("query", "up"), ("lookback_delta", "long")]),
        400,
        "bad_data",
        r#"error parsing lookback delta duration: cannot parse "long" to a valid duration"#,
    );
    // A valid range query with one parameter replaced.
    let range_with = |key: &str, value: &str| {
        let params: Vec<(&str, &str)> = [
            ("query", "up"),
            ("start", "100"),
            ("end", "200"),
            ("step", "15s"),
        ]
        .into_iter()
        .map(|(k, v)| (k, if k == key { value } else { v }))
        .collect();
        range(&params)
    };
    assert_error(
        &range_with("start", "abc"),
        400,
        "bad_data",
        r#"invalid parameter "start": cannot parse "abc" to a valid timestamp"#,
    );
    assert_error(
        &range(&[("query", "up"), ("end", "200"), ("step", "15")]),
        400,
        "bad_data",
        r#"invalid parameter "start": cannot parse "" to a valid timestamp"#,
    );
    assert_error(
        &range_with("end", "50"),
        400,
        "bad_data",
        r#"invalid parameter "end": end timestamp must not be before start time"#,
    );
    assert_error(
        &range_with("step", "0"),
        400,
        "bad_data",
        r#"invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer"#,
    );
    assert_error(
        &range_with("step", "-15s"),
        400,
        "bad_data",
        r#"invalid parameter "step": cannot parse "-15s" to a valid duration"#,
    );
    assert_error(
        &range_with("step", "-1"),
        400,
        "bad_data",
        r#"invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer"#,
    );
    assert_error(
        &range(&[
            ("query", "up"),
            ("start", "0"),
            ("end", "11001"),
            ("step", "1"),
        ]),
        400,
        "bad_data",
        "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
    );

    assert_error(
        &get(&server, "/api/v1/series", &[], None),
        400,
        "bad_data",
        "no match[] parameter provided",
    );
    assert_error(
        &get(
            &server,
            "/api/v1/series",
            &[("match[]", "up"), ("start", "yesterday")],
            None,
        ),
        400,
        "bad_data",
        r#"invalid parameter "start": invalid time value for 'start': cannot parse "yesterday" to a valid timestamp"#,
    );
    let answer = get(&server, "/api/v1/series", &[("match[]", "up{")], None);
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(
        answer
            .body
            .contains(r#""error":"invalid parameter \"match[]\": "#),
        "{}",
        answer.body
    );
    let answer = get(
        &server,
        "/api/v1/labels",
        &[("match[]", r#"{job=~".*"}"#)],
        None,
    );
    assert_eq!(answer.status, 400, "{}", answer.body);
    // Only GET serves label values, as in Prometheus.
    let answer = http_exchange(server.http, "POST", "/api/v1/label/job/values", &[], b"");
    assert_eq!(answer.status, 405);
}

#[test]
fn tenants_see_only_their_own_series() {
    let f = Fixture::start();
    f.write(
        Some("team-b"),
        &[(&[("__name__", "secret_metric"), ("owner", "b")], &|_| 42.0)],
    );
    let t = f.at(40);
    let query = [("query", "secret_metric"), ("time", t.as_str())];
    let v = ok_json(&get(&f.server, "/api/v1/query", &query, Some("team-b")));
    assert_eq!(v["data"]["result"][0]["value"][1], "42", "{v}");
    for tenant in [None, Some("team-c")] {
        let v = ok_json(&get(&f.server, "/api/v1/query", &query, tenant));
        assert_eq!(v["data"]["result"], json!([]), "{tenant:?}");
        let v = ok_json(&get(
            &f.server,
            "/api/v1/series",
            &[("match[]", "secret_metric")],
            tenant,
        ));
        assert_eq!(v["data"], json!([]), "{tenant:?}");
        let v = ok_json(&get(&f.server, "/api/v1/label/owner/values", &[], tenant));
        assert_eq!(v["data"], json!([]), "{tenant:?}");
    }
    // And team-b does not see anonymous' series.
    let v = ok_json(&get(
        &f.server,
        "/api/v1/label/__name__/values",
        &[],
        Some("team-b"),
    ));
    assert_eq!(v["data"], json!(["secret_metric"]));
}

#[test]
fn auth_enabled_requires_a_tenant() {
    let dir = tempdir();
    let config = format!("auth_enabled = true\n{TEST_CONFIG}");
    let server = Server::start_with(&dir.path().join("data"), &config);
    let answer = get(&server, "/api/v1/query", &[("query", "1")], None);
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert!(answer.body.contains("X-Scope-OrgID"), "{}", answer.body);
    let answer = get(&server, "/api/v1/labels", &[], None);
    assert_eq!(answer.status, 401, "{}", answer.body);
    let answer = get(
        &server,
        "/api/v1/format_query",
        &[("query", "up")],
        Some("team-a"),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
}

/// Runs `promtool` with `args`; `None` when it is not installed.
fn promtool(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("promtool").args(args).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("promtool: {e}"),
    }
}

#[test]
fn promtool_queries_the_server() {
    if promtool(&["--version"]).is_none() {
        eprintln!(
            "SKIPPED promtool_queries_the_server: promtool is not installed \
             (apt-get install prometheus; .ci/run installs it)"
        );
        return;
    }
    let f = Fixture::start();
    let url = format!("http://{}", f.server.http);
    let run = |args: &[&str]| {
        let out = promtool(args).unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "promtool {args:?}: {stdout}{stderr}");
        stdout
    };
    let t = f.at(40);
    let out = run(&[
        "query",
        "instant",
        &format!("--time={t}"),
        &url,
        "sum(http_requests_total)",
    ]);
    assert!(out.contains(&format!("{{}} => 440 @[{t}]")), "{out}");

    let out = run(&[
        "query",
        "range",
        &format!("--start={}", f.at(0)),
        &format!("--end={}", f.at(2)),
        "--step=15s",
        &url,
        r#"http_requests_total{code="500"}"#,
    ]);
    for (i, v) in ["0", "1", "2"].iter().enumerate() {
        let ts = f.at(i as i64);
        assert!(out.contains(&format!("{v} @[{ts}]")), "{out}");
    }

    let out = run(&["query", "series", "--match=temperature", &url]);
    assert!(
        out.contains(r#"{__name__="temperature", room="kitchen"}"#),
        "{out}"
    );
    let out = run(&["query", "labels", &url, "instance"]);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["a:1", "b:1"], "{out}");
}

/// The requests Grafana's Prometheus datasource sends (pkg/promlib): the
/// health check, the metrics browser (label names, `__name__` values,
/// series, metadata) and a panel's range query, POSTed as forms with
/// float-second times.
#[test]
fn grafana_datasource_requests() {
    let f = Fixture::start();
    let tenant = Some("anonymous");
    // Health check: an instant query `1+1` at the end of a 1 s..4 s range.
    let answer = post_form(
        &f.server,
        "/api/v1/query",
        "",
        &[("query", "1+1"), ("time", "4")],
        tenant,
    );
    assert_eq!(
        answer.body,
        r#"{"status":"success","data":{"resultType":"scalar","result":[4,"2"]}}"#
    );
    // Heuristics: buildinfo, GET only.
    let v = ok_json(&get(&f.server, "/api/v1/status/buildinfo", &[], tenant));
    assert!(v["data"]["version"].is_string());

    // Metrics browser.
    let (start, end) = (f.at(0), f.at(40));
    let range = [
        ("start", start.as_str()),
        ("end", end.as_str()),
        ("limit", "40000"),
    ];
    let v = ok_json(&get(
        &f.server,
        "/api/v1/label/__name__/values",
        &range,
        tenant,
    ));
    assert_eq!(v["data"], json!(["http_requests_total", "temperature"]));
    let v = ok_json(&post_form(&f.server, "/api/v1/labels", "", &range, tenant));
    assert_eq!(
        v["data"],
        json!(["__name__", "code", "instance", "job", "room"])
    );
    let mut with_match = range.to_vec();
    with_match.push(("match[]", "http_requests_total"));
    let v = ok_json(&post_form(
        &f.server,
        "/api/v1/labels",
        "",
        &with_match,
        tenant,
    ));
    assert_eq!(v["data"], json!(["__name__", "code", "instance", "job"]));
    let v = ok_json(&post_form(
        &f.server,
        "/api/v1/series",
        "",
        &with_match,
        tenant,
    ));
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let v = ok_json(&get(&f.server, "/api/v1/metadata", &[], tenant));
    assert_eq!(v["data"], json!({}));

    // A panel: query_range POSTed with float seconds and a float step.
    let start_f = format!("{}.123", f.at(0));
    let end_f = format!("{}.123", f.at(4));
    let v = ok_json(&post_form(
        &f.server,
        "/api/v1/query_range",
        "",
        &[
            ("end", &end_f),
            ("query", r#"sum by (code) (http_requests_total)"#),
            ("start", &start_f),
            ("step", "15"),
        ],
        tenant,
    ));
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 2, "{v}");
    assert_eq!(result[0]["metric"], json!({"code": "200"}));
    let first_ts = result[0]["values"][0][0].as_f64().unwrap();
    assert_eq!(first_ts, start_f.parse::<f64>().unwrap());
}
