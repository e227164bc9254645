//! The Tempo HTTP query API of the real binary: traces by id (v1 and v2,
//! JSON and protobuf) read from the head and from blocks, id padding and
//! bad ids, tenants, tag names and values, and the requests Grafana's Tempo
//! datasource sends. Spans go in through OTLP/HTTP JSON.

use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, TracesData};
use prost::Message;
use serde_json::{Value, json};

use crate::common::{
    Server, TEST_CONFIG, http_exchange, http_exchange_raw, post_otlp_traces, tempdir,
};

const SECOND: i64 = 1_000_000_000;
const MS: i64 = 1_000_000;

/// Trace A: frontend → backend, 4 spans; its id has leading zeros.
const TRACE_A: &str = "00000000000000000af1e2d3c4b5a697";
const TRACE_A_SHORT: &str = "af1e2d3c4b5a697";
const TRACE_A_B64: &str = "AAAAAAAAAAAK8eLTxLWmlw==";
/// Trace B: one worker span, the target of a link from trace A.
const TRACE_B: &str = "5b8efff798038103d269b633813fc60c";
const TRACE_B_B64: &str = "W47/95gDgQPSabYzgT/GDA==";
const A1: &str = "a1a1a1a1a1a1a1a1";
const A2: &str = "a2a2a2a2a2a2a2a2";
const A3: &str = "a3a3a3a3a3a3a3a3";
const A4: &str = "a4a4a4a4a4a4a4a4";
const B1: &str = "b1b1b1b1b1b1b1b1";
const C1: &str = "c1c1c1c1c1c1c1c1";
const A1_B64: &str = "oaGhoaGhoaE=";
const A2_B64: &str = "oqKioqKioqI=";
const A3_B64: &str = "o6Ojo6Ojo6M=";
const A4_B64: &str = "pKSkpKSkpKQ=";
const B1_B64: &str = "sbGxsbGxsbE=";

struct Fixture {
    server: Server,
    /// Start of trace A (ns, a whole second, ten minutes ago).
    base_ns: i64,
    _dir: tempfile::TempDir,
}

fn string_attr(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

impl Fixture {
    /// Tenant `anonymous`: traces A and B; tenant `other`: one span `C1`
    /// under trace A's id, of service `intruder`.
    fn start() -> Fixture {
        Self::start_with(TEST_CONFIG)
    }

    fn start_with(config: &str) -> Fixture {
        let dir = tempdir();
        let server = Server::start_with(&dir.path().join("data"), config);
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
        let base_ns = (now / SECOND) * SECOND - 600 * SECOND;
        let fixture = Fixture {
            server,
            base_ns,
            _dir: dir,
        };
        let t = |offset_ns: i64| (base_ns + offset_ns).to_string();
        let frontend = json!({
            "resource": {"attributes": [
                string_attr("service.name", "frontend"),
                string_attr("deployment.environment", "prod"),
            ]},
            "scopeSpans": [{
                "scope": {"name": "http-server", "version": "1.2.0"},
                "spans": [
                    {
                        "traceId": TRACE_A, "spanId": A1, "name": "GET /checkout", "kind": 2,
                        "startTimeUnixNano": t(0), "endTimeUnixNano": t(900 * MS),
                        "attributes": [
                            string_attr("http.method", "GET"),
                            {"key": "http.status_code", "value": {"intValue": "200"}},
                        ],
                        "events": [{
                            "timeUnixNano": t(5 * MS), "name": "request.received",
                            "attributes": [{"key": "bytes", "value": {"intValue": "512"}}],
                        }],
                        "status": {"code": 1},
                    },
                    {
                        "traceId": TRACE_A, "spanId": A2, "parentSpanId": A1,
                        "name": "call backend", "kind": 3,
                        "startTimeUnixNano": t(10 * MS), "endTimeUnixNano": t(800 * MS),
                        "attributes": [string_attr("peer.service", "backend")],
                    },
                ],
            }],
        });
        let backend = json!({
            "resource": {"attributes": [
                string_attr("service.name", "backend"),
                string_attr("host.name", "db-1"),
            ]},
            "scopeSpans": [
                {
                    "scope": {"name": "payments", "version": "2.0"},
                    "spans": [{
                        "traceId": TRACE_A, "spanId": A3, "parentSpanId": A2,
                        "name": "POST /charge", "kind": 2,
                        "startTimeUnixNano": t(20 * MS), "endTimeUnixNano": t(700 * MS),
                        "attributes": [
                            string_attr("http.method", "POST"),
                            {"key": "retry", "value": {"boolValue": true}},
                        ],
                        "links": [{
                            "traceId": TRACE_B, "spanId": B1,
                            "attributes": [string_attr("link.kind", "follows")],
                        }],
                        "status": {"code": 2, "message": "card declined"},
                    }],
                },
                {
                    "scope": {"name": "db-driver", "version": "0.9"},
                    "spans": [{
                        "traceId": TRACE_A, "spanId": A4, "parentSpanId": A3,
                        "name": "db query", "kind": 1,
                        "startTimeUnixNano": t(30 * MS), "endTimeUnixNano": t(100 * MS),
                        "attributes": [
                            string_attr("db.system", "postgres"),
                            {"key": "db.ratio", "value": {"doubleValue": 0.25}},
                        ],
                    }],
                },
            ],
        });
        let worker = json!({
            "resource": {"attributes": [string_attr("service.name", "worker")]},
            "scopeSpans": [{"spans": [{
                "traceId": TRACE_B, "spanId": B1, "name": "consume", "kind": 5,
                "startTimeUnixNano": t(5 * SECOND), "endTimeUnixNano": t(6 * SECOND),
                "attributes": [string_attr("queue", "orders")],
            }]}],
        });
        fixture.export(None, json!({"resourceSpans": [frontend, backend, worker]}));
        let intruder = json!({
            "resource": {"attributes": [string_attr("service.name", "intruder")]},
            "scopeSpans": [{"spans": [{
                "traceId": TRACE_A, "spanId": C1, "name": "sneak", "kind": 2,
                "startTimeUnixNano": t(SECOND), "endTimeUnixNano": t(2 * SECOND),
                "attributes": [string_attr("http.method", "DELETE")],
            }]}],
        });
        fixture.export(Some("other"), json!({"resourceSpans": [intruder]}));
        fixture
    }

    fn export(&self, tenant: Option<&str>, body: Value) {
        post_otlp_traces(&self.server, body.to_string().as_bytes(), tenant);
    }

    fn get(&self, tenant: Option<&str>, path: &str) -> (u16, String) {
        let mut headers = vec![];
        if let Some(t) = tenant {
            headers.push(("X-Scope-OrgID", t));
        }
        let r = http_exchange(self.server.http, "GET", path, &headers, b"");
        (r.status, r.body)
    }

    fn get_json(&self, tenant: Option<&str>, path: &str) -> Value {
        let (status, body) = self.get(tenant, path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    fn get_protobuf(&self, tenant: Option<&str>, path: &str) -> Vec<u8> {
        let mut headers = vec![("Accept", "application/protobuf")];
        if let Some(t) = tenant {
            headers.push(("X-Scope-OrgID", t));
        }
        let r = http_exchange_raw(self.server.http, "GET", path, &headers, b"");
        assert_eq!(
            r.status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.header("content-type"), Some("application/protobuf"));
        r.body
    }

    fn seconds(&self, offset: i64) -> i64 {
        (self.base_ns + offset) / SECOND
    }

    /// Trace A's resource spans exactly as Tempo's JSON renders them.
    fn trace_a_batches(&self) -> Value {
        let t = |offset_ns: i64| (self.base_ns + offset_ns).to_string();
        json!([
            {
                "resource": {"attributes": [
                    string_attr("deployment.environment", "prod"),
                    string_attr("service.name", "frontend"),
                ]},
                "scopeSpans": [{
                    "scope": {"name": "http-server", "version": "1.2.0"},
                    "spans": [
                        {
                            "traceId": TRACE_A_B64, "spanId": A1_B64,
                            "name": "GET /checkout", "kind": "SPAN_KIND_SERVER",
                            "startTimeUnixNano": t(0), "endTimeUnixNano": t(900 * MS),
                            "attributes": [
                                string_attr("http.method", "GET"),
                                string_attr("http.status_code", "200"),
                            ],
                            "events": [{
                                "timeUnixNano": t(5 * MS), "name": "request.received",
                                "attributes": [string_attr("bytes", "512")],
                            }],
                            "status": {"code": "STATUS_CODE_OK"},
                        },
                        {
                            "traceId": TRACE_A_B64, "spanId": A2_B64, "parentSpanId": A1_B64,
                            "name": "call backend", "kind": "SPAN_KIND_CLIENT",
                            "startTimeUnixNano": t(10 * MS), "endTimeUnixNano": t(800 * MS),
                            "attributes": [string_attr("peer.service", "backend")],
                            "status": {},
                        },
                    ],
                }],
            },
            {
                "resource": {"attributes": [
                    string_attr("host.name", "db-1"),
                    string_attr("service.name", "backend"),
                ]},
                "scopeSpans": [
                    {
                        "scope": {"name": "payments", "version": "2.0"},
                        "spans": [{
                            "traceId": TRACE_A_B64, "spanId": A3_B64, "parentSpanId": A2_B64,
                            "name": "POST /charge", "kind": "SPAN_KIND_SERVER",
                            "startTimeUnixNano": t(20 * MS), "endTimeUnixNano": t(700 * MS),
                            "attributes": [
                                string_attr("http.method", "POST"),
                                string_attr("retry", "true"),
                            ],
                            "links": [{
                                "traceId": TRACE_B_B64, "spanId": B1_B64,
                                "attributes": [string_attr("link.kind", "follows")],
                            }],
                            "status": {"code": "STATUS_CODE_ERROR", "message": "card declined"},
                        }],
                    },
                    {
                        "scope": {"name": "db-driver", "version": "0.9"},
                        "spans": [{
                            "traceId": TRACE_A_B64, "spanId": A4_B64, "parentSpanId": A3_B64,
                            "name": "db query", "kind": "SPAN_KIND_INTERNAL",
                            "startTimeUnixNano": t(30 * MS), "endTimeUnixNano": t(100 * MS),
                            "attributes": [
                                string_attr("db.ratio", "0.25"),
                                string_attr("db.system", "postgres"),
                            ],
                            "status": {},
                        }],
                    },
                ],
            },
        ])
    }

    /// Trace A through every form of the by-id API.
    fn check_trace_a(&self) {
        let expected = self.trace_a_batches();
        let v1 = self.get_json(None, &format!("/api/traces/{TRACE_A}"));
        assert_eq!(v1, json!({"batches": expected}));
        let v2 = self.get_json(None, &format!("/api/v2/traces/{TRACE_A}"));
        assert_eq!(v2, json!({"trace": {"resourceSpans": expected}}));
        // The short form of the id (leading zeros dropped, odd length) and
        // upper case find the same trace.
        for id in [TRACE_A_SHORT, &TRACE_A_SHORT.to_ascii_uppercase()] {
            let v1 = self.get_json(None, &format!("/api/traces/{id}"));
            assert_eq!(v1, json!({"batches": expected}), "id {id}");
        }
        // Bounds that cover the trace find it; bounds before it do not.
        let (start, end) = (self.seconds(-60 * SECOND), self.seconds(60 * SECOND));
        let v2 = self.get_json(
            None,
            &format!("/api/v2/traces/{TRACE_A}?start={start}&end={end}"),
        );
        assert_eq!(v2, json!({"trace": {"resourceSpans": expected}}));
        let (start, end) = (self.seconds(-3600 * SECOND), self.seconds(-1800 * SECOND));
        let (status, body) = self.get(
            None,
            &format!("/api/traces/{TRACE_A}?start={start}&end={end}"),
        );
        assert_eq!(status, 404, "{body}");

        // Protobuf: v1 is tempopb.Trace (ResourceSpans at field 1, the wire
        // shape of TracesData), v2 wraps it in TraceByIDResponse.trace.
        let v1 = TracesData::decode(
            self.get_protobuf(None, &format!("/api/traces/{TRACE_A_SHORT}"))
                .as_slice(),
        )
        .expect("v1 protobuf decodes as tempopb.Trace");
        check_trace_a_proto(&v1.resource_spans);
        let v2 = TraceByIdResponse::decode(
            self.get_protobuf(None, &format!("/api/v2/traces/{TRACE_A}"))
                .as_slice(),
        )
        .expect("v2 protobuf decodes as TraceByIDResponse");
        check_trace_a_proto(&v2.trace.expect("v2 answer has a trace").resource_spans);
    }
}

/// `tempopb.TraceByIDResponse` (trace = 1; its `Trace` has OTLP's
/// `TracesData` wire shape).
#[derive(Clone, PartialEq, Message)]
struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    trace: Option<TracesData>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Spans of a decoded trace: (service, scope, span id, parent id, kind, name).
fn check_trace_a_proto(resource_spans: &[ResourceSpans]) {
    let mut spans = Vec::new();
    for rs in resource_spans {
        let resource = rs.resource.as_ref().expect("resource");
        let service = resource
            .attributes
            .iter()
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .map(|v| format!("{:?}", v.value))
            .expect("service.name");
        for ss in &rs.scope_spans {
            let scope = ss
                .scope
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            for s in &ss.spans {
                assert_eq!(hex(&s.trace_id), TRACE_A);
                spans.push((
                    service.clone(),
                    scope.clone(),
                    hex(&s.span_id),
                    hex(&s.parent_span_id),
                    s.kind,
                    s.name.clone(),
                    s.status.as_ref().map(|st| (st.code, st.message.clone())),
                ));
            }
        }
    }
    let svc = |s: &str| format!("Some(StringValue({s:?}))");
    assert_eq!(
        spans,
        vec![
            (
                svc("frontend"),
                "http-server".into(),
                A1.into(),
                "".into(),
                2,
                "GET /checkout".into(),
                Some((1, "".into()))
            ),
            (
                svc("frontend"),
                "http-server".into(),
                A2.into(),
                A1.into(),
                3,
                "call backend".into(),
                Some((0, "".into()))
            ),
            (
                svc("backend"),
                "payments".into(),
                A3.into(),
                A2.into(),
                2,
                "POST /charge".into(),
                Some((2, "card declined".into()))
            ),
            (
                svc("backend"),
                "db-driver".into(),
                A4.into(),
                A3.into(),
                1,
                "db query".into(),
                Some((0, "".into()))
            ),
        ]
    );
    let a3 = &resource_spans[1].scope_spans[0].spans[0];
    assert_eq!(hex(&a3.links[0].trace_id), TRACE_B);
    assert_eq!(hex(&a3.links[0].span_id), B1);
}

#[test]
fn traces_by_id_from_the_head_and_from_blocks() {
    let f = Fixture::start();
    f.check_trace_a();
    let b = f.get_json(None, &format!("/api/traces/{TRACE_B}"));
    let spans = &b["batches"][0]["scopeSpans"][0]["spans"];
    assert_eq!(spans.as_array().map(Vec::len), Some(1), "{b}");
    assert_eq!(spans[0]["spanId"], B1_B64);
    assert_eq!(spans[0]["kind"], "SPAN_KIND_CONSUMER");

    f.server.flush();
    f.check_trace_a();
    // After the flush the head is empty: the answers came from blocks.
    let (status, storage) = f.get(None, "/debug/storage");
    assert_eq!(status, 200);
    let storage: Value = serde_json::from_str(&storage).unwrap();
    assert_eq!(storage["tenants"]["anonymous"]["spans"]["head_rows"], 0);
    assert_eq!(storage["tenants"]["anonymous"]["spans"]["block_rows"], 5);
}

/// A trace id lookup opens only the blocks whose bloom may hold the id:
/// with the other block destroyed, it still answers.
#[test]
fn trace_by_id_reads_only_blocks_that_may_hold_it() {
    let f = Fixture::start();
    f.server.flush();
    let trace_d = "d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0";
    let t = (f.base_ns + 30 * SECOND).to_string();
    f.export(
        None,
        json!({"resourceSpans": [{
            "resource": {"attributes": [string_attr("service.name", "late")]},
            "scopeSpans": [{"spans": [{
                "traceId": trace_d, "spanId": "d1d1d1d1d1d1d1d1", "name": "later",
                "startTimeUnixNano": t, "endTimeUnixNano": t,
            }]}],
        }]}),
    );
    f.server.flush();
    let data = f._dir.path().join("data");
    let blocks = crate::pruning::latest_manifest_blocks(&data, "spans");
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    // The first block (traces A and B) is destroyed.
    let first = blocks
        .iter()
        .find(|b| b["rows"].as_i64() == Some(5))
        .unwrap_or_else(|| panic!("no block of 5 rows: {blocks:?}"));
    let path = data.join(format!(
        "blocks/tenants/anonymous/spans/blocks/{}.parquet",
        first["id"].as_str().unwrap()
    ));
    std::fs::write(path, b"not parquet any more").unwrap();
    let d = f.get_json(None, &format!("/api/v2/traces/{trace_d}"));
    let spans = &d["trace"]["resourceSpans"][0]["scopeSpans"][0]["spans"];
    assert_eq!(spans[0]["name"], "later", "{d}");
    let (status, body) = f.get(None, &format!("/api/traces/{TRACE_A}"));
    assert_eq!(
        status, 500,
        "a lookup that must read the destroyed block fails: {body}"
    );
    assert_eq!(f.get(None, "/api/echo"), (200, "echo".to_string()));
}

#[test]
fn bad_and_missing_trace_ids() {
    let f = Fixture::start();
    for (path, expected) in [
        ("/api/traces/12xz", vec!["\"12xz\"", "'x' at position 3"]),
        ("/api/v2/traces/not-a-trace", vec!["\"not-a-trace\"", "hex"]),
        (
            "/api/traces/000000000000000000000000000000001",
            vec!["000000000000000000000000000000001", "128 bits"],
        ),
        (
            "/api/v2/traces/abc?start=yesterday",
            vec!["invalid start", "yesterday"],
        ),
        (
            "/api/traces/abc?start=200&end=100",
            vec!["start must be before end", "start=200 end=100"],
        ),
    ] {
        let (status, body) = f.get(None, path);
        assert_eq!(status, 400, "{path}: {body}");
        for part in expected {
            assert!(body.contains(part), "{path}: {body:?} lacks {part:?}");
        }
    }
    for path in [
        "/api/traces/1234".to_string(),
        format!("/api/v2/traces/{}", "f".repeat(32)),
    ] {
        let (status, body) = f.get(None, &path);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body.contains("not found"), "{path}: {body}");
    }
    // Still serving.
    assert_eq!(f.get(None, "/api/echo"), (200, "echo".to_string()));
    f.check_trace_a();
}

#[test]
fn tenants_see_only_their_spans() {
    let f = Fixture::start();
    for flushed in [false, true] {
        let other = f.get_json(Some("other"), &format!("/api/traces/{TRACE_A}"));
        let batches = other["batches"].as_array().unwrap();
        assert_eq!(batches.len(), 1, "flushed={flushed}: {other}");
        let spans = batches[0]["scopeSpans"][0]["spans"].as_array().unwrap();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0]["name"], "sneak");
        let (status, _) = f.get(Some("other"), &format!("/api/traces/{TRACE_B}"));
        assert_eq!(status, 404);
        let services = f.get_json(
            Some("other"),
            "/api/v2/search/tag/resource.service.name/values",
        );
        assert_eq!(
            services["tagValues"],
            json!([{"type": "string", "value": "intruder"}])
        );
        // anonymous never sees the intruder, by id or in values.
        let mine = f.get_json(None, &format!("/api/v2/traces/{TRACE_A}"));
        assert!(!mine.to_string().contains("sneak"), "{mine}");
        let methods = f.get_json(None, "/api/search/tag/http.method/values");
        assert_eq!(methods["tagValues"], json!(["GET", "POST"]));
        for path in [
            format!("/api/traces/{TRACE_A}"),
            "/api/v2/search/tags?scope=intrinsic".into(),
            "/api/v2/search/tag/status/values".into(),
        ] {
            let (status, body) = f.get(Some("a|b"), &path);
            assert_eq!(status, 400, "{path}: {body}");
            assert!(body.contains("X-Scope-OrgID"), "{path}: {body}");
        }
        f.server.flush();
    }
}

#[test]
fn tag_names_and_values() {
    let f = Fixture::start();
    for _ in 0..2 {
        check_tags(&f);
        f.server.flush();
    }
    // Bad names and scopes are refused, naming what was wrong.
    for (path, part) in [
        ("/api/v2/search/tag/foo/values", "\"foo\""),
        ("/api/v2/search/tag/nope.x/values", "\"nope\""),
        ("/api/v2/search/tag/span./values", "empty attribute name"),
        ("/api/v2/search/tags?scope=everything", "\"everything\""),
        ("/api/search/tags?scope=spam", "\"spam\""),
        ("/api/search/tags?limit=-1", "invalid limit"),
        ("/api/v2/search/tag/name/values?end=soon", "invalid end"),
    ] {
        let (status, body) = f.get(None, path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(part), "{path}: {body:?} lacks {part:?}");
    }
    // A window without spans has no names and no values.
    let old = f.seconds(-7200 * SECOND);
    let window = format!("start={}&end={}", old - 60, old);
    let empty = f.get_json(None, &format!("/api/search/tags?{window}"));
    assert_eq!(empty, json!({"tagNames": []}));
    let empty = f.get_json(
        None,
        &format!("/api/v2/search/tag/resource.service.name/values?{window}"),
    );
    assert_eq!(empty["tagValues"], json!([]));
}

fn check_tags(f: &Fixture) {
    let v1 = f.get_json(None, "/api/search/tags");
    assert_eq!(
        v1,
        json!({"tagNames": [
            "db.ratio", "db.system", "deployment.environment", "host.name",
            "http.method", "http.status_code", "peer.service", "queue", "retry",
            "service.name",
        ]})
    );
    let resource = f.get_json(None, "/api/search/tags?scope=resource");
    assert_eq!(
        resource["tagNames"],
        json!(["deployment.environment", "host.name", "service.name"])
    );
    let intrinsic = f.get_json(None, "/api/search/tags?scope=intrinsic");
    let names = intrinsic["tagNames"].as_array().unwrap();
    for name in ["name", "status", "kind", "rootServiceName", "duration"] {
        assert!(names.contains(&json!(name)), "{intrinsic}");
    }

    let v2 = f.get_json(None, "/api/v2/search/tags");
    let scopes: Vec<&str> = v2["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(scopes, ["span", "resource", "event", "link", "intrinsic"]);
    assert_eq!(
        v2["scopes"][0]["tags"],
        json!([
            "db.ratio",
            "db.system",
            "http.method",
            "http.status_code",
            "peer.service",
            "queue",
            "retry",
        ])
    );
    assert_eq!(v2["scopes"][2]["tags"], json!(["bytes"]));
    assert_eq!(v2["scopes"][3]["tags"], json!(["link.kind"]));
    let only = f.get_json(None, "/api/v2/search/tags?scope=span&limit=2");
    assert_eq!(
        only,
        json!({"scopes": [{"name": "span", "tags": ["db.ratio", "db.system"]}]})
    );
    let intrinsic = f.get_json(None, "/api/v2/search/tags?scope=intrinsic");
    assert_eq!(intrinsic["scopes"].as_array().unwrap().len(), 1);
    assert_eq!(intrinsic["scopes"][0]["name"], "intrinsic");

    let strings = |values: &[&str]| -> Value {
        values
            .iter()
            .map(|v| json!({"type": "string", "value": v}))
            .collect()
    };
    for (tag, expected) in [
        (
            "resource.service.name",
            strings(&["backend", "frontend", "worker"]),
        ),
        ("span.http.method", strings(&["GET", "POST"])),
        ("span.http.status_code", strings(&["200"])),
        (".host.name", strings(&["db-1"])),
        ("resource.http.method", strings(&[])),
        ("event.bytes", strings(&["512"])),
        ("link.link.kind", strings(&["follows"])),
        (
            "name",
            strings(&[
                "GET /checkout",
                "POST /charge",
                "call backend",
                "consume",
                "db query",
            ]),
        ),
        ("rootServiceName", strings(&["frontend", "worker"])),
        ("trace:rootName", strings(&["GET /checkout", "consume"])),
        ("statusMessage", strings(&["card declined"])),
        ("event:name", strings(&["request.received"])),
        (
            "instrumentation:name",
            strings(&["db-driver", "http-server", "payments"]),
        ),
        ("duration", strings(&[])),
    ] {
        let got = f.get_json(None, &format!("/api/v2/search/tag/{tag}/values"));
        assert_eq!(
            got,
            json!({"tagValues": expected, "metrics": {}}),
            "tag {tag}"
        );
    }
    let status = f.get_json(None, "/api/v2/search/tag/status/values");
    assert_eq!(
        status["tagValues"],
        json!([
            {"type": "keyword", "value": "ok"},
            {"type": "keyword", "value": "error"},
            {"type": "keyword", "value": "unset"},
        ])
    );
    let kind = f.get_json(None, "/api/v2/search/tag/kind/values");
    assert_eq!(kind["tagValues"].as_array().unwrap().len(), 6);
    assert_eq!(
        kind["tagValues"][1],
        json!({"type": "keyword", "value": "server"})
    );

    let v1 = f.get_json(None, "/api/search/tag/service.name/values");
    assert_eq!(v1, json!({"tagValues": ["backend", "frontend", "worker"]}));
    let v1 = f.get_json(None, "/api/search/tag/status.code/values");
    assert_eq!(v1, json!({"tagValues": ["unset", "ok", "error"]}));
    let limited = f.get_json(None, "/api/search/tag/service.name/values?limit=1");
    assert_eq!(limited, json!({"tagValues": ["backend"]}));
}

#[test]
fn tag_values_are_cut_at_max_bytes_per_tag_values_query() {
    // "backend" + "frontend" are 15 bytes; "worker" would make 21.
    let f = Fixture::start_with(&format!(
        "{TEST_CONFIG}max_bytes_per_tag_values_query = 20\n"
    ));
    let values = f.get_json(None, "/api/search/tag/service.name/values");
    assert_eq!(values, json!({"tagValues": ["backend", "frontend"]}));
    // "db.ratio" + "db.system" are 17 bytes; "http.method" would make 28.
    let names = f.get_json(None, "/api/search/tags?scope=span");
    assert_eq!(names, json!({"tagNames": ["db.ratio", "db.system"]}));
}

/// The requests Grafana's Tempo datasource sends: the connection test, the
/// trace view (v2 by id, protobuf, with the time range), the search
/// editor's tag and value dropdowns (`limit`, `start`/`end`, a `q` filter).
#[test]
fn grafana_requests() {
    let f = Fixture::start();
    assert_eq!(f.get(None, "/api/echo"), (200, "echo".to_string()));
    let info = f.get_json(None, "/api/status/buildinfo");
    for key in ["version", "revision", "branch", "buildDate", "goVersion"] {
        assert!(info.get(key).is_some(), "buildinfo lacks {key}: {info}");
    }
    let (from, to) = (f.seconds(-1800 * SECOND), f.seconds(1800 * SECOND));
    let v2 = TraceByIdResponse::decode(
        f.get_protobuf(
            None,
            &format!("/api/v2/traces/{TRACE_A_SHORT}?start={from}&end={to}"),
        )
        .as_slice(),
    )
    .unwrap();
    check_trace_a_proto(&v2.trace.unwrap().resource_spans);

    let tags = f.get_json(
        None,
        &format!("/api/v2/search/tags?limit=5000&start={from}&end={to}"),
    );
    assert_eq!(tags["scopes"][1]["name"], "resource");
    assert_eq!(
        tags["scopes"][1]["tags"],
        json!(["deployment.environment", "host.name", "service.name"])
    );
    let resource = f.get_json(
        None,
        &format!("/api/v2/search/tags?scope=resource&start={from}&end={to}"),
    );
    assert_eq!(resource["scopes"][0]["name"], "resource");
    let values = f.get_json(
        None,
        &format!(
            "/api/v2/search/tag/resource.service.name/values?limit=5000&start={from}&end={to}"
        ),
    );
    assert_eq!(
        values["tagValues"][1],
        json!({"type": "string", "value": "frontend"})
    );
    // A `q` filter narrows the values to spans satisfying its conditions.
    let q = "%7Bresource.service.name%3D%22frontend%22%7D";
    let filtered = f.get_json(
        None,
        &format!("/api/v2/search/tag/span.http.method/values?q={q}&limit=5000"),
    );
    assert_eq!(
        filtered["tagValues"],
        json!([{"type": "string", "value": "GET"}])
    );
    // A `q` that is no filter of span rows (here: every span) narrows nothing.
    let everything = f.get_json(None, "/api/v2/search/tag/span.http.method/values?q=%7B%7D");
    assert_eq!(
        everything["tagValues"],
        json!([{"type": "string", "value": "GET"}, {"type": "string", "value": "POST"}])
    );
    let (status, body) = f.get(
        None,
        "/api/v2/search/tag/span.http.method/values?q=%7B.a%3D%7D",
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("invalid q: parse error at line 1, col"),
        "{body}"
    );
}
