//! TraceQL on the real binary: `/api/search`, `/api/metrics/query_range`
//! and `/api/metrics/query` over HTTP and `traceql()` over pgwire, against
//! a small known trace set sent as OTLP/HTTP JSON, answered from the head
//! and again from blocks after `POST /flush`; bad input gets a 400 (or an
//! SQL error) naming the problem and the server keeps serving.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::common::{Server, post_otlp_traces, tempdir};

const SECOND: i64 = 1_000_000_000;
const MS: i64 = 1_000_000;

/// Trace 1 (10 s after the base): frontend → payments, five spans, an
/// error, an event; its id has leading zeros.
const T1: &str = "00000000000000000000000000a1b2c3";
const T1_SEARCH: &str = "a1b2c3";
/// Trace 2 (70 s after the base): frontend only, two spans.
const T2: &str = "22222222222222222222222222222222";
/// Trace 3 (130 s after the base): worker, two spans, a link to trace 2.
const T3: &str = "33333333333333333333333333333333";
/// Trace 4 (20 s after the base) of tenant `other`.
const T4: &str = "44444444444444444444444444444444";

const S11: &str = "1100000000000011";
const S12: &str = "1200000000000012";
const S13: &str = "1300000000000013";
const S14: &str = "1400000000000014";
const S15: &str = "1500000000000015";
const S21: &str = "2100000000000021";
const S22: &str = "2200000000000022";
const S31: &str = "3100000000000031";
const S32: &str = "3200000000000032";
const S41: &str = "4100000000000041";

struct Fixture {
    server: Server,
    /// A whole minute, five minutes ago: every trace starts after it.
    base_ns: i64,
    _dir: tempfile::TempDir,
}

/// A search answer's trace: its id and each spanset's (matched, span ids).
type TraceSpansets = (String, Vec<(u64, Vec<String>)>);

fn string_attr(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

fn int_attr(key: &str, value: i64) -> Value {
    json!({"key": key, "value": {"intValue": value.to_string()}})
}

/// One OTLP span; times are ms after `start_ns`.
#[allow(clippy::too_many_arguments)]
fn span(
    trace: &str,
    id: &str,
    parent: Option<&str>,
    name: &str,
    kind: i64,
    start_ns: i64,
    (from_ms, to_ms): (i64, i64),
    attributes: Vec<Value>,
) -> Value {
    let mut s = json!({
        "traceId": trace, "spanId": id, "name": name, "kind": kind,
        "startTimeUnixNano": (start_ns + from_ms * MS).to_string(),
        "endTimeUnixNano": (start_ns + to_ms * MS).to_string(),
        "attributes": attributes,
    });
    if let Some(p) = parent {
        s["parentSpanId"] = json!(p);
    }
    s
}

fn resource(service: &str, env: &str, spans: Vec<Value>) -> Value {
    json!({
        "resource": {"attributes": [
            string_attr("service.name", service),
            string_attr("deployment.environment", env),
        ]},
        "scopeSpans": [{"scope": {"name": "test", "version": "1"}, "spans": spans}],
    })
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Fixture {
    fn start() -> Fixture {
        let dir = tempdir();
        let server = Server::start(&dir.path().join("data"));
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
        let base_ns = (now / (60 * SECOND)) * 60 * SECOND - 5 * 60 * SECOND;
        let f = Fixture {
            server,
            base_ns,
            _dir: dir,
        };
        let t1 = base_ns + 10 * SECOND;
        let t2 = base_ns + 70 * SECOND;
        let t3 = base_ns + 130 * SECOND;
        let frontend = resource(
            "frontend",
            "prod",
            vec![
                span(
                    T1,
                    S11,
                    None,
                    "GET /checkout",
                    2,
                    t1,
                    (0, 500),
                    vec![
                        string_attr("http.method", "GET"),
                        int_attr("http.status_code", 200),
                        string_attr("http.url", "/checkout"),
                    ],
                ),
                span(
                    T1,
                    S12,
                    Some(S11),
                    "POST /pay",
                    3,
                    t1,
                    (10, 410),
                    vec![
                        string_attr("http.url", "http://payments/pay"),
                        int_attr("http.status_code", 502),
                    ],
                ),
                span(
                    T2,
                    S21,
                    None,
                    "GET /home",
                    2,
                    t2,
                    (0, 100),
                    vec![
                        string_attr("http.method", "GET"),
                        int_attr("http.status_code", 200),
                        string_attr("http.url", "/home"),
                    ],
                ),
                span(
                    T2,
                    S22,
                    Some(S21),
                    "render",
                    1,
                    t2,
                    (10, 60),
                    vec![string_attr("template", "home")],
                ),
            ],
        );
        let mut failing = span(
            T1,
            S13,
            Some(S12),
            "POST /pay",
            2,
            t1,
            (20, 400),
            vec![int_attr("http.status_code", 502), int_attr("retries", 3)],
        );
        failing["status"] = json!({"code": 2, "message": "upstream failed"});
        failing["events"] = json!([{
            "timeUnixNano": (t1 + 390 * MS).to_string(), "name": "exception",
            "attributes": [string_attr("exception.type", "Timeout")],
        }]);
        let mut cache = span(T1, S15, Some(S13), "cache get", 1, t1, (140, 150), vec![]);
        cache["attributes"] = json!([{"key": "cache.hit", "value": {"boolValue": false}}]);
        let payments = resource(
            "payments",
            "prod",
            vec![
                failing,
                span(
                    T1,
                    S14,
                    Some(S13),
                    "db query",
                    1,
                    t1,
                    (30, 130),
                    vec![
                        string_attr("db.system", "postgres"),
                        int_attr("db.rows", 42),
                    ],
                ),
                cache,
            ],
        );
        let mut consume = span(
            T3,
            S31,
            None,
            "consume orders",
            5,
            t3,
            (0, 2000),
            vec![string_attr("messaging.system", "kafka")],
        );
        consume["links"] = json!([{
            "traceId": T2, "spanId": S21,
            "attributes": [string_attr("link.reason", "retry")],
        }]);
        let worker = resource(
            "worker",
            "staging",
            vec![
                consume,
                span(
                    T3,
                    S32,
                    Some(S31),
                    "process order",
                    1,
                    t3,
                    (100, 1900),
                    vec![int_attr("order.items", 7)],
                ),
            ],
        );
        let body = json!({"resourceSpans": [frontend, payments, worker]});
        post_otlp_traces(&f.server, body.to_string().as_bytes(), None);
        let intruder = resource(
            "frontend",
            "prod",
            vec![span(
                T4,
                S41,
                None,
                "GET /checkout",
                2,
                base_ns + 20 * SECOND,
                (0, 300),
                vec![int_attr("http.status_code", 500)],
            )],
        );
        let body = json!({"resourceSpans": [intruder]});
        post_otlp_traces(&f.server, body.to_string().as_bytes(), Some("other"));
        f
    }

    fn seconds(&self, offset_s: i64) -> i64 {
        self.base_ns / SECOND + offset_s
    }

    fn get(&self, tenant: Option<&str>, path: &str) -> (u16, String) {
        let mut headers = vec![];
        if let Some(t) = tenant {
            headers.push(("X-Scope-OrgID", t));
        }
        let r = crate::common::http_exchange(self.server.http, "GET", path, &headers, b"");
        (r.status, r.body)
    }

    fn get_json(&self, tenant: Option<&str>, path: &str) -> Value {
        let (status, body) = self.get(tenant, path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// `/api/search` over the fixture's window with extra parameters.
    fn search_with(&self, tenant: Option<&str>, params: &str) -> Value {
        let path = format!(
            "/api/search?start={}&end={}&{params}",
            self.seconds(0),
            self.seconds(300)
        );
        self.get_json(tenant, &path)
    }

    /// Search `q` listing every span: trace id → spansets as (matched,
    /// span ids sorted), traces in answer order.
    fn search(&self, tenant: Option<&str>, q: &str) -> Vec<TraceSpansets> {
        let v = self.search_with(tenant, &format!("q={}&spss=100", urlencode(q)));
        spansets(&v)
    }

    /// Trace id → sorted span ids of every spanset, for `q`.
    fn found(&self, q: &str) -> BTreeMap<String, Vec<String>> {
        self.search(None, q)
            .into_iter()
            .map(|(t, sets)| {
                let mut spans: Vec<String> = sets.into_iter().flat_map(|(_, s)| s).collect();
                spans.sort();
                spans.dedup();
                (t, spans)
            })
            .collect()
    }

    fn metrics(&self, path: &str, q: &str, params: &str) -> Value {
        self.get_json(None, &format!("{path}?q={}&{params}", urlencode(q)))
    }
}

/// (trace id, [(matched, span ids)]) of a search answer; checks that every
/// spanset lists all it matched (the tests ask for enough spans) and that
/// `spanSet` is the first of `spanSets`.
fn spansets(v: &Value) -> Vec<TraceSpansets> {
    v["traces"]
        .as_array()
        .unwrap_or_else(|| panic!("no traces in {v}"))
        .iter()
        .map(|t| {
            let sets: Vec<(u64, Vec<String>)> = t["spanSets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|ss| {
                    let mut ids: Vec<String> = ss["spans"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s["spanID"].as_str().unwrap().to_string())
                        .collect();
                    ids.sort();
                    (ss["matched"].as_u64().unwrap(), ids)
                })
                .collect();
            assert_eq!(t["spanSet"], t["spanSets"][0], "{t}");
            (t["traceID"].as_str().unwrap().to_string(), sets)
        })
        .collect()
}

fn expect(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(t, spans)| {
            let mut s: Vec<String> = spans.iter().map(|s| s.to_string()).collect();
            s.sort();
            (t.to_string(), s)
        })
        .collect()
}

/// The attribute `key` of an OTLP JSON attribute list, as its JSON value.
fn attribute<'a>(attrs: &'a Value, key: &str) -> Option<&'a Value> {
    attrs
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

fn check_search(f: &Fixture) {
    let linked = format!(r#"{{ link:traceID = "{T2}" }}"#);
    // Intrinsics.
    let cases: Vec<(&str, BTreeMap<String, Vec<String>>)> = vec![
        (
            r#"{ name = "POST /pay" }"#,
            expect(&[(T1_SEARCH, &[S12, S13])]),
        ),
        ("{ status = error }", expect(&[(T1_SEARCH, &[S13])])),
        (
            "{ kind = server }",
            expect(&[(T1_SEARCH, &[S11, S13]), (T2, &[S21])]),
        ),
        (
            "{ duration > 450ms }",
            expect(&[(T1_SEARCH, &[S11]), (T3, &[S31, S32])]),
        ),
        (
            r#"{ rootServiceName = "worker" }"#,
            expect(&[(T3, &[S31, S32])]),
        ),
        ("{ traceDuration > 1s }", expect(&[(T3, &[S31, S32])])),
        (
            r#"{ statusMessage = "upstream failed" }"#,
            expect(&[(T1_SEARCH, &[S13])]),
        ),
        // Attributes: typed comparisons, scopes, regexes, existence.
        (
            "{ span.http.status_code >= 500 }",
            expect(&[(T1_SEARCH, &[S12, S13])]),
        ),
        (
            "{ span.http.status_code = 200 && kind = server }",
            expect(&[(T1_SEARCH, &[S11]), (T2, &[S21])]),
        ),
        (
            r#"{ resource.service.name = "payments" }"#,
            expect(&[(T1_SEARCH, &[S13, S14, S15])]),
        ),
        (
            r#"{ .deployment.environment = "staging" }"#,
            expect(&[(T3, &[S31, S32])]),
        ),
        (
            r#"{ .http.url =~ "/(home|checkout)" }"#,
            expect(&[(T1_SEARCH, &[S11]), (T2, &[S21])]),
        ),
        (r#"{ .http.url !~ "/.*" }"#, expect(&[(T1_SEARCH, &[S12])])),
        ("{ span.db.rows != nil }", expect(&[(T1_SEARCH, &[S14])])),
        ("{ span.cache.hit = false }", expect(&[(T1_SEARCH, &[S15])])),
        ("{ .order.items > 5 }", expect(&[(T3, &[S32])])),
        // Events and links.
        (
            r#"{ event.exception.type = "Timeout" }"#,
            expect(&[(T1_SEARCH, &[S13])]),
        ),
        (
            r#"{ event:name = "exception" }"#,
            expect(&[(T1_SEARCH, &[S13])]),
        ),
        (&*linked, expect(&[(T3, &[S31])])),
        (r#"{ link.link.reason = "retry" }"#, expect(&[(T3, &[S31])])),
        // Spanset operators.
        (
            r#"{ resource.service.name = "frontend" } && { status = error }"#,
            expect(&[(T1_SEARCH, &[S11, S12, S13])]),
        ),
        (
            r#"{ name = "render" } || { kind = consumer }"#,
            expect(&[(T2, &[S22]), (T3, &[S31])]),
        ),
        // Structural operators.
        (
            "{ kind = client } > { kind = server }",
            expect(&[(T1_SEARCH, &[S13])]),
        ),
        (
            r#"{ name = "GET /checkout" } >> { kind = internal }"#,
            expect(&[(T1_SEARCH, &[S14, S15])]),
        ),
        (
            r#"{ name = "db query" } < { kind = server }"#,
            expect(&[(T1_SEARCH, &[S13])]),
        ),
        (
            r#"{ name = "db query" } << { }"#,
            expect(&[(T1_SEARCH, &[S11, S12, S13])]),
        ),
        (
            r#"{ name = "db query" } ~ { }"#,
            expect(&[(T1_SEARCH, &[S15])]),
        ),
        (
            "{ kind = server } !> { kind = internal }",
            expect(&[(T3, &[S32])]),
        ),
        (
            r#"{ name = "GET /checkout" } &>> { kind = internal }"#,
            expect(&[(T1_SEARCH, &[S11, S14, S15])]),
        ),
        // Pipelines.
        (
            r#"{ resource.service.name = "payments" } | count() > 1"#,
            expect(&[(T1_SEARCH, &[S13, S14, S15])]),
        ),
        (
            r#"{ resource.service.name != "payments" } | count() > 2"#,
            BTreeMap::new(),
        ),
        (
            "{ kind = internal } | avg(duration) > 52ms",
            expect(&[(T1_SEARCH, &[S14, S15]), (T3, &[S32])]),
        ),
        (
            "{ kind = internal } | avg(duration) > 60ms",
            expect(&[(T3, &[S32])]),
        ),
    ];
    for (q, want) in &cases {
        assert_eq!(&f.found(q), want, "{q}");
    }

    // Results come most recently started first, with the trace's root,
    // start and duration; matched counts every matching span.
    let v = f.search_with(None, "q=%7B%7D&spss=100");
    let traces = v["traces"].as_array().unwrap();
    let ids: Vec<&str> = traces
        .iter()
        .map(|t| t["traceID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [T3, T2, T1_SEARCH]);
    let summary: Vec<(&str, &str, String, i64, u64)> = traces
        .iter()
        .map(|t| {
            (
                t["rootServiceName"].as_str().unwrap(),
                t["rootTraceName"].as_str().unwrap(),
                t["startTimeUnixNano"].as_str().unwrap().to_string(),
                t["durationMs"].as_i64().unwrap(),
                t["spanSet"]["matched"].as_u64().unwrap(),
            )
        })
        .collect();
    let start = |s: i64| (f.base_ns + s * SECOND).to_string();
    assert_eq!(
        summary,
        [
            ("worker", "consume orders", start(130), 2000, 2),
            ("frontend", "GET /home", start(70), 100, 2),
            ("frontend", "GET /checkout", start(10), 500, 5),
        ]
    );
    let checkout_span = &traces[2]["spanSet"]["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["spanID"] == S11)
        .unwrap()
        .clone();
    assert_eq!(checkout_span["name"], "GET /checkout");
    assert_eq!(checkout_span["startTimeUnixNano"], start(10));
    assert_eq!(checkout_span["durationNanos"], (500 * MS).to_string());
    assert_eq!(
        attribute(&checkout_span["attributes"], "service.name"),
        Some(&json!({"stringValue": "frontend"}))
    );

    // The attributes a filter names come back on its spans.
    let v = f.search_with(
        None,
        &format!("q={}", urlencode("{ span.http.status_code >= 500 }")),
    );
    let spans = v["traces"][0]["spanSet"]["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2);
    for s in spans {
        assert_eq!(
            attribute(&s["attributes"], "http.status_code"),
            Some(&json!({"stringValue": "502"})),
            "{s}"
        );
    }

    // by(): one spanset per service, each carrying the by() value.
    let v = f.search_with(
        None,
        &format!(
            "q={}&spss=100",
            urlencode("{ } | by(resource.service.name)")
        ),
    );
    let mut groups: Vec<(String, String, Vec<String>)> = Vec::new();
    for t in v["traces"].as_array().unwrap() {
        for ss in t["spanSets"].as_array().unwrap() {
            let by = attribute(&ss["attributes"], "by(resource.service.name)")
                .unwrap_or_else(|| panic!("no by() attribute in {ss}"));
            let mut ids: Vec<String> = ss["spans"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["spanID"].as_str().unwrap().to_string())
                .collect();
            ids.sort();
            groups.push((
                t["traceID"].as_str().unwrap().to_string(),
                by["stringValue"].as_str().unwrap().to_string(),
                ids,
            ));
        }
    }
    groups.sort();
    let strings = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        groups,
        [
            (T2.to_string(), "frontend".to_string(), strings(&[S21, S22])),
            (T3.to_string(), "worker".to_string(), strings(&[S31, S32])),
            (
                T1_SEARCH.to_string(),
                "frontend".to_string(),
                strings(&[S11, S12])
            ),
            (
                T1_SEARCH.to_string(),
                "payments".to_string(),
                strings(&[S13, S14, S15])
            ),
        ]
    );

    // select(): the selected attribute appears on the spans.
    let v = f.search_with(
        None,
        &format!(
            "q={}",
            urlencode(r#"{ kind = server } | select(span.http.url)"#)
        ),
    );
    let mut urls = Vec::new();
    for t in v["traces"].as_array().unwrap() {
        for s in t["spanSet"]["spans"].as_array().unwrap() {
            urls.push((
                s["spanID"].as_str().unwrap().to_string(),
                attribute(&s["attributes"], "http.url").cloned(),
            ));
        }
    }
    urls.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        urls,
        [
            (S11.to_string(), Some(json!({"stringValue": "/checkout"}))),
            (S13.to_string(), None),
            (S21.to_string(), Some(json!({"stringValue": "/home"}))),
        ]
    );

    // limit: the most recent traces; spss: the latest-starting spans.
    let v = f.search_with(None, "q=%7B%7D&limit=2");
    let ids: Vec<&str> = v["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["traceID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [T3, T2]);
    let v = f.search_with(
        None,
        &format!(
            "q={}&spss=1",
            urlencode(r#"{ resource.service.name = "payments" }"#)
        ),
    );
    assert_eq!(
        spansets(&v),
        [(T1_SEARCH.to_string(), vec![(3, vec![S15.to_string()])])]
    );

    // minDuration / maxDuration bound the trace's duration.
    let traces = |v: &Value| -> Vec<String> { spansets(v).into_iter().map(|(t, _)| t).collect() };
    assert_eq!(
        traces(&f.search_with(None, "q=%7B%7D&minDuration=1s")),
        [T3]
    );
    assert_eq!(
        traces(&f.search_with(None, "q=%7B%7D&maxDuration=200ms")),
        [T2]
    );
    assert_eq!(
        traces(&f.search_with(None, "minDuration=200ms&maxDuration=1s")),
        [T1_SEARCH]
    );

    // The older tags= parameter.
    let tags = |t: &str| spansets(&f.search_with(None, &format!("tags={}&spss=100", urlencode(t))));
    assert_eq!(
        tags("service.name=payments"),
        [(
            T1_SEARCH.to_string(),
            vec![(3, vec![S13.to_string(), S14.to_string(), S15.to_string()])]
        )]
    );
    assert_eq!(
        tags(r#"name="GET /home" http.status_code=200"#),
        [(T2.to_string(), vec![(1, vec![S21.to_string()])])]
    );
    assert_eq!(
        tags("status.code=error"),
        [(T1_SEARCH.to_string(), vec![(1, vec![S13.to_string()])])]
    );

    // Tenants see only their traces.
    assert_eq!(
        f.search(None, r#"{ name = "GET /checkout" }"#),
        [(T1_SEARCH.to_string(), vec![(1, vec![S11.to_string()])])]
    );
    assert_eq!(
        f.search(Some("other"), r#"{ name = "GET /checkout" }"#),
        [(T4.to_string(), vec![(1, vec![S41.to_string()])])]
    );
    assert_eq!(
        f.search(Some("other"), "{ span.http.status_code >= 500 }"),
        [(T4.to_string(), vec![(1, vec![S41.to_string()])])]
    );
    assert!(f.search(Some("nobody"), "{ }").is_empty());
}

/// Series labels as `k=v` joined by `,`: attribute values are strings,
/// the quantile (`p`) and bucket (`__bucket`) labels numbers.
fn label_text(labels: &Value) -> String {
    let pairs: Vec<String> = labels
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let key = l["key"].as_str().unwrap();
            let value = &l["value"];
            let text = if key == "p" || key == "__bucket" {
                value["doubleValue"]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{key} is not a doubleValue: {l}"))
                    .to_string()
            } else {
                value["stringValue"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{key} is not a stringValue: {l}"))
                    .to_string()
            };
            format!("{key}={text}")
        })
        .collect();
    pairs.join(",")
}

/// (labels as `k=v` joined by `,`) → [(timestamp ms, value)].
fn series(v: &Value) -> BTreeMap<String, Vec<(i64, f64)>> {
    v["series"]
        .as_array()
        .unwrap_or_else(|| panic!("no series in {v}"))
        .iter()
        .map(|s| {
            let labels = label_text(&s["labels"]);
            let samples = s["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p["timestampMs"].as_str().unwrap().parse().unwrap(),
                        p["value"].as_f64().unwrap(),
                    )
                })
                .collect();
            (labels, samples)
        })
        .collect()
}

fn instant_values(v: &Value) -> BTreeMap<String, f64> {
    v["series"]
        .as_array()
        .unwrap_or_else(|| panic!("no series in {v}"))
        .iter()
        .map(|s| {
            let labels = label_text(&s["labels"]);
            (labels, s["value"].as_f64().unwrap())
        })
        .collect()
}

fn check_metrics(f: &Fixture) {
    let ms = |s: i64| (f.base_ns + s * SECOND) / MS;
    let range = format!("start={}&end={}&step=60s", f.seconds(0), f.seconds(180));
    let count = series(&f.metrics(
        "/api/metrics/query_range",
        "{ } | count_over_time() by (resource.service.name)",
        &range,
    ));
    let want = |values: [[f64; 3]; 3]| -> BTreeMap<String, Vec<(i64, f64)>> {
        ["frontend", "payments", "worker"]
            .iter()
            .zip(values)
            .map(|(s, v)| {
                (
                    format!("resource.service.name={s}"),
                    vec![(ms(60), v[0]), (ms(120), v[1]), (ms(180), v[2])],
                )
            })
            .collect()
    };
    assert_eq!(
        count,
        want([[2.0, 2.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    );
    // An unaligned range is widened to the step grid.
    let unaligned = format!("start={}&end={}&step=60s", f.seconds(5), f.seconds(175));
    assert_eq!(
        series(&f.metrics(
            "/api/metrics/query_range",
            "{ } | count_over_time() by (resource.service.name)",
            &unaligned,
        )),
        count
    );
    let rate = series(&f.metrics(
        "/api/metrics/query_range",
        "{ } | rate() by (resource.service.name)",
        &range,
    ));
    assert_eq!(
        rate,
        want([
            [2.0 / 60.0, 2.0 / 60.0, 0.0],
            [3.0 / 60.0, 0.0, 0.0],
            [0.0, 0.0, 2.0 / 60.0]
        ])
    );
    // Ungrouped: the series is named after the function.
    let errors = series(&f.metrics(
        "/api/metrics/query_range",
        "{ status = error } | count_over_time()",
        &range,
    ));
    assert_eq!(
        errors,
        BTreeMap::from([(
            "__name__=count_over_time".to_string(),
            vec![(ms(60), 1.0), (ms(120), 0.0), (ms(180), 0.0)]
        )])
    );

    // Instant: one value over the whole window.
    let window = format!("start={}&end={}", f.seconds(0), f.seconds(180));
    let instant = instant_values(&f.metrics(
        "/api/metrics/query",
        "{ } | count_over_time() by (resource.service.name)",
        &window,
    ));
    assert_eq!(
        instant,
        BTreeMap::from([
            ("resource.service.name=frontend".to_string(), 4.0),
            ("resource.service.name=payments".to_string(), 3.0),
            ("resource.service.name=worker".to_string(), 2.0),
        ])
    );

    // quantile_over_time: one series per quantile, label p; durations in
    // seconds. payments spans: 380 ms, 100 ms, 10 ms.
    let quantiles = instant_values(&f.metrics(
        "/api/metrics/query",
        r#"{ resource.service.name = "payments" } | quantile_over_time(duration, .5, .9)"#,
        &window,
    ));
    let keys: Vec<&String> = quantiles.keys().collect();
    assert_eq!(keys, ["p=0.5", "p=0.9"]);
    assert!((quantiles["p=0.5"] - 0.1).abs() < 1e-9, "{quantiles:?}");
    assert!((quantiles["p=0.9"] - 0.324).abs() < 1e-9, "{quantiles:?}");
    // Grouped, over steps: an interval without spans is 0.
    let quantiles = series(&f.metrics(
        "/api/metrics/query_range",
        "{ } | quantile_over_time(duration, .5) by (resource.service.name)",
        &range,
    ));
    let rounded: BTreeMap<String, Vec<(i64, f64)>> = quantiles
        .into_iter()
        .map(|(k, v)| {
            let v = v
                .into_iter()
                .map(|(t, x)| (t, (x * 1e6).round() / 1e6))
                .collect();
            (k, v)
        })
        .collect();
    let p = |service: &str| format!("resource.service.name={service},p=0.5");
    assert_eq!(
        rounded,
        BTreeMap::from([
            (
                p("frontend"),
                vec![(ms(60), 0.45), (ms(120), 0.075), (ms(180), 0.0)]
            ),
            (
                p("payments"),
                vec![(ms(60), 0.1), (ms(120), 0.0), (ms(180), 0.0)]
            ),
            (
                p("worker"),
                vec![(ms(60), 0.0), (ms(120), 0.0), (ms(180), 1.9)]
            ),
        ])
    );
    // histogram_over_time: one series per power-of-two bucket (seconds).
    let histogram = series(&f.metrics(
        "/api/metrics/query_range",
        r#"{ resource.service.name = "frontend" } | histogram_over_time(duration)"#,
        &range,
    ));
    let buckets: BTreeMap<String, Vec<f64>> = histogram
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().map(|(_, v)| v).collect()))
        .collect();
    assert_eq!(
        buckets,
        BTreeMap::from([
            // 50 ms (render)
            ("__bucket=0.067108864".to_string(), vec![0.0, 1.0, 0.0]),
            // 100 ms (GET /home)
            ("__bucket=0.134217728".to_string(), vec![0.0, 1.0, 0.0]),
            // 400 ms and 500 ms (GET /checkout, POST /pay)
            ("__bucket=0.536870912".to_string(), vec![2.0, 0.0, 0.0]),
        ])
    );
}

/// Checks both from the head and, after a flush, from blocks.
#[test]
fn search_and_metrics_from_head_and_blocks() {
    let f = Fixture::start();
    check_search(&f);
    check_metrics(&f);
    f.server.flush();
    check_search(&f);
    check_metrics(&f);
}

fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `traceql()` rows: matched spans joined back to `spans`, and metrics.
async fn check_sql(f: &Fixture, client: &tokio_postgres::Client) {
    let start = rfc3339(f.base_ns);
    let end = rfc3339(f.base_ns + 300 * SECOND);
    let sql = format!(
        "SELECT t.trace_id, t.span_id, t.parent_span_id, t.name, t.service, t.kind, \
                t.status_code, t.duration_ns, s.attributes['http.status_code'] AS code \
         FROM traceql('{{ span.http.status_code >= 500 }}', '{start}', '{end}') t \
         JOIN spans s ON s.trace_id = t.trace_id AND s.span_id = t.span_id \
         ORDER BY t.span_id"
    );
    let rows = client
        .query(sql.as_str(), &[])
        .await
        .expect("traceql() join");
    type Row = (
        String,
        String,
        Option<String>,
        String,
        String,
        String,
        String,
        i64,
        String,
    );
    let got: Vec<Row> = rows
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
                r.get(7),
                r.get(8),
            )
        })
        .collect();
    let row = |span: &str, parent: &str, service: &str, kind: &str, status: &str, ms: i64| {
        (
            T1.to_string(),
            span.to_string(),
            Some(parent.to_string()),
            "POST /pay".to_string(),
            service.to_string(),
            kind.to_string(),
            status.to_string(),
            ms * MS,
            "502".to_string(),
        )
    };
    assert_eq!(
        got,
        [
            row(S12, S11, "frontend", "client", "unset", 400),
            row(S13, S12, "payments", "server", "error", 380),
        ]
    );

    // limit counts traces, most recent first; spanset numbers by().
    let sql = format!(
        "SELECT trace_id, count(*), max(spanset) FROM traceql('{{ }} | by(resource.service.name)', \
         '{start}', '{end}', 2) GROUP BY trace_id ORDER BY trace_id"
    );
    let rows = client
        .query(sql.as_str(), &[])
        .await
        .expect("traceql() limit");
    let got: Vec<(String, i64, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2)))
        .collect();
    assert_eq!(got, [(T2.to_string(), 2, 0), (T3.to_string(), 2, 0)]);
    let sql = format!(
        "SELECT count(*), max(spanset) FROM traceql('{{ }} | by(resource.service.name)', \
         '{start}', '{end}') WHERE trace_id = '{T1}'"
    );
    let row = client.query_one(sql.as_str(), &[]).await.unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (5, 1));

    // Metrics with a step: (timestamp, labels, value) rows.
    let end180 = rfc3339(f.base_ns + 180 * SECOND);
    for step in ["'60s'", "INTERVAL '1 minute'", "60"] {
        let sql = format!(
            "SELECT to_unixtime(timestamp), labels['resource.service.name'] AS service, value \
             FROM traceql('{{ }} | count_over_time() by (resource.service.name)', \
                          '{start}', '{end180}', {step}) \
             WHERE value > 0 ORDER BY service, 1"
        );
        let rows = client
            .query(sql.as_str(), &[])
            .await
            .expect("traceql() metrics");
        let got: Vec<(i64, String, f64)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let at = |s: i64| f.seconds(s);
        assert_eq!(
            got,
            [
                (at(60), "frontend".to_string(), 2.0),
                (at(120), "frontend".to_string(), 2.0),
                (at(60), "payments".to_string(), 3.0),
                (at(180), "worker".to_string(), 2.0),
            ],
            "step {step}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn traceql_table_function_over_pgwire() {
    let f = Fixture::start();
    let client = f.server.client().await;
    check_sql(&f, &client).await;
    f.server.flush();
    check_sql(&f, &client).await;

    // Bad arguments are SQL errors naming the problem.
    let start = rfc3339(f.base_ns);
    let end = rfc3339(f.base_ns + 300 * SECOND);
    let bad = [
        (
            format!("traceql('{{ name = }}', '{start}', '{end}')"),
            "parse error at line 1, col 10",
        ),
        (
            format!("traceql('{{ }}', '{start}')"),
            "traceql() takes (query, start, end [, limit])",
        ),
        (
            format!("traceql('{{ }}', '{end}', '{start}')"),
            "end is before start",
        ),
        (
            format!("traceql('{{ }}', '{start}', '{end}', -1)"),
            "limit must be a positive integer",
        ),
        (
            format!("traceql('{{ }} | rate()', '{start}', '{end}', 'often')"),
            "step \"often\" is not a duration",
        ),
        (
            format!("traceql('{{ }}', 'yesterday', '{end}')"),
            "start \"yesterday\" is neither RFC 3339 nor Unix seconds",
        ),
        (
            format!("traceql(42, '{start}', '{end}')"),
            "needs the query text",
        ),
    ];
    for (call, want) in &bad {
        let sql = format!("SELECT * FROM {call}");
        let e = client
            .query(sql.as_str(), &[])
            .await
            .expect_err(&sql)
            .as_db_error()
            .unwrap_or_else(|| panic!("{sql}: not a server error"))
            .message()
            .to_string();
        assert!(e.contains(want), "{sql}: {e}");
    }
    // The session keeps working.
    let sql = format!("SELECT count(*) FROM traceql('{{ }}', '{start}', '{end}')");
    let n: i64 = client.query_one(sql.as_str(), &[]).await.unwrap().get(0);
    assert_eq!(n, 9);
}

#[test]
fn bad_requests_get_400_naming_the_problem() {
    let f = Fixture::start();
    let window = format!("start={}&end={}", f.seconds(0), f.seconds(300));
    let q = |q: &str| urlencode(q);
    let bad = [
        (
            format!("/api/search?q={}&{window}", q("{ name = }")),
            "parse error at line 1, col 10",
        ),
        (
            format!("/api/search?q={}&{window}", q(r#"{ name = "a" "#)),
            "parse error at line 1",
        ),
        (
            format!("/api/search?q={}&{window}", q("{ } | rate()")),
            "a metrics query cannot be used to search traces",
        ),
        (
            format!("/api/metrics/query_range?q={}&{window}", q("{ }")),
            "not a metrics query",
        ),
        (
            format!("/api/metrics/query?q={}&{window}", q("{ status = error }")),
            "not a metrics query",
        ),
        (format!("/api/metrics/query_range?{window}"), "missing q"),
        (
            format!("/api/search?q=%7B%7D&limit=10001&{window}"),
            "invalid limit: 10001 is more than the maximum of 10000 (traceql_max_search_limit)",
        ),
        (format!("/api/search?q=%7B%7D&limit=many&{window}"), "limit"),
        (format!("/api/search?q=%7B%7D&spss=-1&{window}"), "spss"),
        (
            "/api/search?q=%7B%7D&start=yesterday&end=1".to_string(),
            "invalid start",
        ),
        (
            format!(
                "/api/search?q=%7B%7D&start={}&end={}",
                f.seconds(300),
                f.seconds(0)
            ),
            "start must be before end",
        ),
        (
            format!("/api/search?q=%7B%7D&minDuration=fast&{window}"),
            "invalid minDuration",
        ),
        (
            format!("/api/search?q=%7B%7D&minDuration=2s&maxDuration=1s&{window}"),
            "invalid maxDuration",
        ),
        (format!("/api/search?tags=novalue&{window}"), "invalid tags"),
        (
            format!(
                "/api/metrics/query_range?q={}&step=often&{window}",
                q("{ } | rate()")
            ),
            "invalid step",
        ),
        (
            format!(
                "/api/metrics/query_range?q={}&step=0s&{window}",
                q("{ } | rate()")
            ),
            "invalid step",
        ),
        (
            format!(
                "/api/metrics/query_range?q={}&step=1ms&{window}",
                q("{ } | rate()")
            ),
            "exceeded maximum resolution",
        ),
    ];
    for (path, want) in &bad {
        let (status, body) = f.get(None, path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(want), "{path}: {body}");
    }
    // Still serving.
    let v = f.search_with(None, "q=%7B%7D");
    assert_eq!(v["traces"].as_array().unwrap().len(), 3);
}

/// What Grafana's Tempo datasource sends: the search panel (TraceQL and
/// the query builder's filters) and the metrics panel.
#[test]
fn grafana_requests() {
    let f = Fixture::start();
    let (start, end) = (f.seconds(0), f.seconds(300));
    let v = f.get_json(
        None,
        &format!("/api/search?q=%7B%7D&limit=20&spss=3&start={start}&end={end}"),
    );
    let traces = v["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 3);
    let t1 = &traces[2];
    assert_eq!(t1["traceID"], T1_SEARCH);
    assert_eq!(t1["spanSet"]["matched"], 5);
    let listed: Vec<&str> = t1["spanSet"]["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["spanID"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [S15, S14, S13], "the latest-starting spans first");
    assert!(
        v["metrics"]["inspectedTraces"].as_u64().unwrap() >= 3,
        "{v}"
    );

    // The query builder joins its filters without spaces.
    let q = urlencode(r#"{resource.service.name="frontend" && name="GET /home"}"#);
    let v = f.get_json(
        None,
        &format!("/api/search?q={q}&limit=20&spss=3&start={start}&end={end}"),
    );
    assert_eq!(
        spansets(&v),
        [(T2.to_string(), vec![(1, vec![S21.to_string()])])]
    );
    // An empty tags search with only a limit and times.
    let v = f.get_json(
        None,
        &format!("/api/search?tags=&minDuration=&maxDuration=&limit=20&start={start}&end={end}"),
    );
    assert_eq!(v["traces"].as_array().unwrap().len(), 3);

    // The metrics panel (with the exemplars parameter it adds).
    let q = urlencode("{ } | rate() by (resource.service.name)");
    let (s, e) = (f.seconds(0), f.seconds(180));
    let v = f.get_json(
        None,
        &format!("/api/metrics/query_range?q={q}&start={s}&end={e}&step=60s&exemplars=100"),
    );
    let got = series(&v);
    assert_eq!(got["resource.service.name=payments"][0].1, 3.0 / 60.0);
    // Exemplars link each series to spans of its traces (payments only runs in T1).
    let payments = v["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["promLabels"] == "{resource.service.name=\"payments\"}")
        .unwrap();
    let exemplars = payments["exemplars"].as_array().unwrap();
    assert!(!exemplars.is_empty(), "{payments}");
    for x in exemplars {
        assert_eq!(x["labels"][0]["key"], "trace:id");
        assert_eq!(x["labels"][0]["value"]["stringValue"], T1);
        assert_eq!(x["labels"][1]["key"], "span:id");
        assert!(x["value"].as_f64().unwrap() > 0.0, "{x}");
    }
    for s in v["series"].as_array().unwrap() {
        let name = attribute(&s["labels"], "resource.service.name").unwrap()["stringValue"]
            .as_str()
            .unwrap();
        assert_eq!(
            s["promLabels"],
            format!("{{resource.service.name=\"{name}\"}}")
        );
    }
    let v = f.get_json(None, &format!("/api/metrics/query?q={q}&start={s}&end={e}"));
    let values = instant_values(&v);
    assert_eq!(values["resource.service.name=payments"], 3.0 / 180.0);
}
