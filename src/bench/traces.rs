//! `o11ydb bench traces`: trace queries on o11ydb beside DuckDB on the same
//! Parquet blocks (see `benches/traces.sh`, which runs the reference).
//!
//! * [`TracesDataset`] generates a deterministic trace set: requests enter a
//!   gateway and fan out over 13 instrumented services (HTTP client/server
//!   pairs across services, PostgreSQL/Redis/Elasticsearch client spans with
//!   `db.system` and a parameterised `db.statement`, a Kafka
//!   producer/consumer hop, internal spans), with OpenTelemetry semantic
//!   convention attributes, per-pod resources and ~2 % failing requests
//!   (errors propagate to the callers, with `exception` events);
//! * `data` sends it to an o11ydb as OTLP/HTTP protobuf export requests
//!   (about `batch` spans each, grouped by resource as SDKs batch them) over
//!   several connections, measures spans/s up to the last acknowledgement,
//!   then flushes;
//! * `query` times each query of [`queries`] over pgwire (median of `runs`
//!   after a warm-up) and prints one line per query: name, median seconds
//!   and a digest of the answer (rows, and the sum of every integer column
//!   except the approximate percentiles) that `benches/duckdb_traces.py`
//!   prints for its own answer.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, status};
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};

/// Instrumented services; `PODS` pods each.
const SERVICES: [&str; 13] = [
    "gateway",
    "frontend",
    "auth",
    "catalog",
    "search",
    "recommendation",
    "cart",
    "checkout",
    "payment",
    "fraud",
    "inventory",
    "shipping",
    "notification",
];
const PODS: usize = 3;

/// A service's index in [`SERVICES`].
fn svc(name: &str) -> usize {
    SERVICES
        .iter()
        .position(|s| *s == name)
        .expect("known service")
}

/// Something an endpoint does while serving a request.
#[derive(Clone, Copy)]
enum Call {
    /// An HTTP call to endpoint `.0` with probability `.1`.
    Http(usize, f64),
    /// A database call: system, operation, statement, probability.
    Db(&'static str, &'static str, &'static str, f64),
    /// Publishes to Kafka; the first `.0` [`CONSUMERS`] process the message in the same trace.
    Publish(usize),
    /// An internal span with this name.
    Internal(&'static str),
}

/// One server (or consumer) operation of a service.
struct Endpoint {
    service: &'static str,
    method: &'static str,
    route: &'static str,
    /// Median self time, ms.
    self_ms: f64,
    /// Own failure probability.
    error_rate: f64,
    calls: &'static [Call],
}

const fn ep(
    service: &'static str,
    method: &'static str,
    route: &'static str,
    self_ms: f64,
    error_rate: f64,
    calls: &'static [Call],
) -> Endpoint {
    Endpoint {
        service,
        method,
        route,
        self_ms,
        error_rate,
        calls,
    }
}

use Call::{Db, Http, Internal, Publish};

/// The topology: endpoint indexes are positions in this list.
const ENDPOINTS: [Endpoint; 20] = [
    // 0..=3: entry points at the gateway.
    ep(
        "gateway",
        "GET",
        "/",
        0.4,
        0.0,
        &[Http(6, 1.0), Http(4, 1.0)],
    ),
    ep(
        "gateway",
        "GET",
        "/product/{id}",
        0.4,
        0.0,
        &[Http(4, 1.0), Http(7, 1.0)],
    ),
    ep(
        "gateway",
        "POST",
        "/cart",
        0.4,
        0.0,
        &[Http(4, 1.0), Http(12, 1.0)],
    ),
    ep(
        "gateway",
        "POST",
        "/checkout",
        0.4,
        0.0,
        &[Http(4, 1.0), Http(5, 1.0)],
    ),
    // 4: auth
    ep(
        "auth",
        "GET",
        "/api/session",
        0.3,
        0.001,
        &[
            Db("redis", "GET", "GET session:?", 1.0),
            Db(
                "postgresql",
                "SELECT",
                "SELECT id, name FROM users WHERE id = $1",
                0.1,
            ),
        ],
    ),
    // 5: frontend checkout page
    ep(
        "frontend",
        "POST",
        "/checkout",
        2.0,
        0.0,
        &[Internal("render checkout"), Http(11, 1.0), Http(13, 1.0)],
    ),
    // 6: frontend home page
    ep(
        "frontend",
        "GET",
        "/",
        3.0,
        0.0,
        &[
            Http(8, 1.0),
            Http(9, 0.8),
            Http(11, 0.5),
            Internal("render home"),
        ],
    ),
    // 7: frontend product page
    ep(
        "frontend",
        "GET",
        "/product/{id}",
        2.0,
        0.005,
        &[
            Http(10, 1.0),
            Http(9, 1.0),
            Http(16, 0.7),
            Internal("render product"),
        ],
    ),
    // 8: catalog list
    ep(
        "catalog",
        "GET",
        "/api/products",
        1.0,
        0.0,
        &[
            Db(
                "postgresql",
                "SELECT",
                "SELECT id, name, price FROM products WHERE category = $1 LIMIT $2",
                1.0,
            ),
            Http(18, 0.5),
        ],
    ),
    // 9: recommendations
    ep(
        "recommendation",
        "GET",
        "/api/recommendations",
        4.0,
        0.002,
        &[Db("redis", "MGET", "MGET rec:?", 1.0), Http(10, 0.5)],
    ),
    // 10: catalog product
    ep(
        "catalog",
        "GET",
        "/api/products/{id}",
        0.8,
        0.001,
        &[Db(
            "postgresql",
            "SELECT",
            "SELECT * FROM products WHERE id = $1",
            1.0,
        )],
    ),
    // 11: cart view
    ep(
        "cart",
        "GET",
        "/api/cart",
        0.5,
        0.0,
        &[Db("redis", "HGETALL", "HGETALL cart:?", 1.0)],
    ),
    // 12: frontend add to cart
    ep("frontend", "POST", "/cart", 1.0, 0.0, &[Http(14, 1.0)]),
    // 13: checkout
    ep(
        "checkout",
        "POST",
        "/api/checkout",
        3.0,
        0.005,
        &[
            Http(11, 1.0),
            Http(17, 1.0),
            Http(15, 1.0),
            Db(
                "postgresql",
                "INSERT",
                "INSERT INTO orders (user_id, total, created_at) VALUES ($1, $2, $3)",
                1.0,
            ),
            Publish(2),
        ],
    ),
    // 14: cart add item
    ep(
        "cart",
        "POST",
        "/api/cart/items",
        0.6,
        0.002,
        &[Db("redis", "HSET", "HSET cart:? ? ?", 1.0), Http(16, 1.0)],
    ),
    // 15: payment
    ep(
        "payment",
        "POST",
        "/api/charge",
        5.0,
        0.02,
        &[
            Http(19, 1.0),
            Db(
                "postgresql",
                "INSERT",
                "INSERT INTO payments (order_id, amount, status) VALUES ($1, $2, $3)",
                1.0,
            ),
        ],
    ),
    // 16: inventory stock
    ep(
        "inventory",
        "GET",
        "/api/stock/{id}",
        0.4,
        0.001,
        &[Db(
            "postgresql",
            "SELECT",
            "SELECT quantity FROM stock WHERE product_id = $1",
            1.0,
        )],
    ),
    // 17: shipping quote
    ep(
        "shipping",
        "POST",
        "/api/quote",
        1.5,
        0.003,
        &[Db(
            "postgresql",
            "SELECT",
            "SELECT rate FROM shipping_rates WHERE zone = $1",
            1.0,
        )],
    ),
    // 18: search
    ep(
        "search",
        "GET",
        "/api/search",
        2.0,
        0.002,
        &[Db("elasticsearch", "search", "GET /products/_search", 1.0)],
    ),
    // 19: fraud check
    ep(
        "fraud",
        "POST",
        "/api/score",
        6.0,
        0.003,
        &[
            Db("redis", "GET", "GET risk:?", 1.0),
            Internal("score transaction"),
        ],
    ),
];

/// Kafka consumers of the `orders` topic (reached through [`Call::Publish`]).
const CONSUMERS: [Endpoint; 2] = [
    ep(
        "shipping",
        "",
        "orders process",
        1.0,
        0.002,
        &[Db(
            "postgresql",
            "INSERT",
            "INSERT INTO shipments (order_id, zone) VALUES ($1, $2)",
            1.0,
        )],
    ),
    ep(
        "notification",
        "",
        "orders process",
        2.0,
        0.004,
        &[
            Internal("render email"),
            Db(
                "postgresql",
                "SELECT",
                "SELECT email FROM users WHERE id = $1",
                1.0,
            ),
        ],
    ),
];

/// Entry endpoints and their shares of traffic.
const ENTRIES: [(usize, f64); 4] = [(0, 0.35), (1, 0.4), (2, 0.15), (3, 0.1)];

fn endpoint(i: usize) -> &'static Endpoint {
    &ENDPOINTS[i]
}

/// The generated trace set (the same arguments give the same spans).
#[derive(Debug, Clone)]
pub struct TracesDataset {
    /// Spans to generate (whole traces: the last one may overshoot).
    pub spans: u64,
    pub hours: i64,
    /// Start time of the last trace (ns).
    pub end_ns: i64,
}

/// One generated span and the resource (service, pod) that emits it.
pub struct GeneratedSpan {
    pub service: usize,
    pub pod: usize,
    pub span: Span,
}

fn kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn kv_int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;
const INTERNAL: i32 = 1;

/// Builds one trace.
struct TraceBuilder<'a> {
    rng: &'a mut StdRng,
    trace_id: Vec<u8>,
    /// Pod serving this request, per service.
    pods: [usize; SERVICES.len()],
    out: Vec<GeneratedSpan>,
}

impl TraceBuilder<'_> {
    fn span_id(&mut self) -> Vec<u8> {
        (self.rng.random::<u64>() | 1).to_be_bytes().to_vec()
    }

    fn lognormal_ns(&mut self, median_ms: f64) -> u64 {
        let u1: f64 = self.rng.random_range(1e-12..1.0);
        let u2: f64 = self.rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        (median_ms * 1e6 * (0.6 * z).exp()).max(1_000.0) as u64
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        service: usize,
        span_id: Vec<u8>,
        parent: &[u8],
        name: String,
        kind: i32,
        start: u64,
        end: u64,
        attributes: Vec<KeyValue>,
        error: Option<&str>,
    ) {
        let events = match error {
            Some(msg) if kind == SERVER || kind == CONSUMER => vec![Event {
                time_unix_nano: end.saturating_sub(1_000),
                name: "exception".into(),
                attributes: vec![
                    kv("exception.type", "UpstreamError"),
                    kv("exception.message", msg),
                ],
                ..Default::default()
            }],
            _ => Vec::new(),
        };
        self.out.push(GeneratedSpan {
            service,
            pod: self.pods[service],
            span: Span {
                trace_id: self.trace_id.clone(),
                span_id,
                parent_span_id: parent.to_vec(),
                name,
                kind,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes,
                events,
                status: Some(Status {
                    code: if error.is_some() {
                        status::StatusCode::Error as i32
                    } else {
                        status::StatusCode::Unset as i32
                    },
                    message: error.unwrap_or_default().to_string(),
                }),
                ..Default::default()
            },
        });
    }

    /// A server (or consumer) span of `ep` and everything below it; returns
    /// its end time and whether it failed.
    fn serve(&mut self, ep: &Endpoint, parent: &[u8], start: u64, consumer: bool) -> (u64, bool) {
        let service = svc(ep.service);
        let id = self.span_id();
        let mut t = start + self.lognormal_ns(ep.self_ms * 0.3);
        let mut failed = false;
        let calls = ep.calls;
        for call in calls {
            match *call {
                Http(target, p) => {
                    if self.rng.random::<f64>() >= p {
                        continue;
                    }
                    let (end, err) = self.call(service, &id, endpoint(target), t);
                    t = end + self.lognormal_ns(0.05);
                    // Most failures of a dependency fail the request.
                    failed |= err && self.rng.random::<f64>() < 0.8;
                }
                Db(system, op, statement, p) => {
                    if self.rng.random::<f64>() >= p {
                        continue;
                    }
                    let cid = self.span_id();
                    let median = match system {
                        "redis" => 0.3,
                        "elasticsearch" => 6.0,
                        _ => 1.5,
                    };
                    let end = t + self.lognormal_ns(median);
                    let err = self.rng.random::<f64>() < 0.002;
                    let (name, db_name, peer) = match system {
                        "postgresql" => (format!("{op} shop"), "shop", "postgres.shop.svc"),
                        "redis" => (op.to_string(), "0", "redis.shop.svc"),
                        _ => (format!("{op} products"), "products", "search.shop.svc"),
                    };
                    self.push(
                        service,
                        cid,
                        &id,
                        name,
                        CLIENT,
                        t,
                        end,
                        vec![
                            kv("db.system", system),
                            kv("db.name", db_name),
                            kv("db.operation", op),
                            kv("db.statement", statement),
                            kv("net.peer.name", peer),
                        ],
                        err.then_some("database error"),
                    );
                    failed |= err;
                    t = end + self.lognormal_ns(0.02);
                }
                Publish(consumer) => {
                    let pid = self.span_id();
                    let end = t + self.lognormal_ns(0.8);
                    self.push(
                        service,
                        pid.clone(),
                        &id,
                        "orders publish".into(),
                        PRODUCER,
                        t,
                        end,
                        vec![
                            kv("messaging.system", "kafka"),
                            kv("messaging.destination.name", "orders"),
                            kv("messaging.operation", "publish"),
                        ],
                        None,
                    );
                    // Consumers handle the message later, outside the request.
                    let mut at = end + self.lognormal_ns(40.0);
                    for c in &CONSUMERS[..consumer.min(CONSUMERS.len())] {
                        let (done, _) = self.serve(c, &pid, at, true);
                        at = done.min(at + 1_000_000);
                    }
                    t = end;
                }
                Internal(name) => {
                    let iid = self.span_id();
                    let end = t + self.lognormal_ns(ep.self_ms * 0.5);
                    self.push(
                        service,
                        iid,
                        &id,
                        name.into(),
                        INTERNAL,
                        t,
                        end,
                        vec![kv("code.function", name.replace(' ', "_"))],
                        None,
                    );
                    t = end;
                }
            }
        }
        failed |= self.rng.random::<f64>() < ep.error_rate;
        let end = t + self.lognormal_ns(ep.self_ms * 0.7);
        let (name, kind, attributes) = if consumer {
            (
                ep.route.to_string(),
                CONSUMER,
                vec![
                    kv("messaging.system", "kafka"),
                    kv("messaging.destination.name", "orders"),
                    kv("messaging.operation", "process"),
                    kv("messaging.kafka.consumer.group", ep.service),
                ],
            )
        } else {
            let status = if !failed {
                200
            } else if ep.service == "payment" && self.rng.random::<f64>() < 0.5 {
                402
            } else {
                500
            };
            let mut attrs = vec![
                kv("http.method", ep.method),
                kv("http.route", ep.route),
                kv_int("http.status_code", status),
                kv("http.scheme", "http"),
            ];
            if ep.route.contains("{id}") {
                let product = self.rng.random_range(1..=2_000);
                attrs.push(kv(
                    "http.target",
                    ep.route.replace("{id}", &product.to_string()),
                ));
            } else {
                attrs.push(kv("http.target", ep.route));
            }
            if ep.service == "gateway" {
                attrs.push(kv(
                    "user_agent.original",
                    [
                        "Mozilla/5.0 (X11; Linux x86_64)",
                        "Mozilla/5.0 (iPhone)",
                        "okhttp/4.12",
                    ][self.rng.random_range(0..3)],
                ));
            }
            (format!("{} {}", ep.method, ep.route), SERVER, attrs)
        };
        self.push(
            service,
            id,
            parent,
            name,
            kind,
            start,
            end,
            attributes,
            failed.then_some("request failed"),
        );
        (end, failed)
    }

    /// A client span in `from` calling `target`, and the server side.
    fn call(&mut self, from: usize, parent: &[u8], target: &Endpoint, start: u64) -> (u64, bool) {
        let cid = self.span_id();
        let server_start = start + self.lognormal_ns(0.15);
        let (server_end, err) = self.serve(target, &cid, server_start, false);
        let end = server_end + self.lognormal_ns(0.15);
        let status = if err { 500 } else { 200 };
        self.push(
            from,
            cid,
            parent,
            target.method.to_string(),
            CLIENT,
            start,
            end,
            vec![
                kv("http.method", target.method),
                kv(
                    "http.url",
                    format!("http://{}:8080{}", target.service, target.route),
                ),
                kv_int("http.status_code", status),
                kv("net.peer.name", target.service),
            ],
            err.then_some("HTTP 500"),
        );
        (end, err)
    }
}

impl TracesDataset {
    /// The trace id of trace `n`: deterministic, so a benchmark can look one
    /// up without reading the data.
    pub fn trace_id(n: u64) -> [u8; 16] {
        xxhash_rust::xxh3::xxh3_128(&(n ^ 0x7ace).to_le_bytes()).to_be_bytes()
    }

    /// Generates trace `n` (with its own rng, so traces are independent of
    /// how many came before) starting at `start_ns`.
    pub fn trace(n: u64, start_ns: u64) -> Vec<GeneratedSpan> {
        let mut rng = StdRng::seed_from_u64(0x7ace_0000 ^ n);
        let pods = std::array::from_fn(|_| rng.random_range(0..PODS));
        let mut pick: f64 = rng.random();
        let mut entry = ENTRIES[0].0;
        for (e, share) in ENTRIES {
            if pick < share {
                entry = e;
                break;
            }
            pick -= share;
        }
        let mut b = TraceBuilder {
            rng: &mut rng,
            trace_id: Self::trace_id(n).to_vec(),
            pods,
            out: Vec::with_capacity(48),
        };
        b.serve(endpoint(entry), &[], start_ns, false);
        b.out
    }

    /// Average spans per trace, from a sample of traces.
    fn spans_per_trace() -> f64 {
        let sample = 2_000;
        let total: usize = (0..sample).map(|n| Self::trace(n, 0).len()).sum();
        total as f64 / sample as f64
    }

    /// How many traces make `spans` spans (about), and their spacing in ns.
    pub fn plan(&self) -> (u64, u64) {
        let traces = ((self.spans as f64 / Self::spans_per_trace()).ceil() as u64).max(1);
        let step = (self.hours.max(1) as u64 * 3_600_000_000_000) / traces;
        (traces, step.max(1))
    }

    /// The trace id the lookup query asks for: one from the middle of the set.
    pub fn needle(&self) -> String {
        hex(&Self::trace_id(self.plan().0 / 2))
    }

    /// Calls `sink` with every trace in start order.
    pub fn generate(&self, mut sink: impl FnMut(Vec<GeneratedSpan>) -> Result<()>) -> Result<()> {
        let (traces, step) = self.plan();
        let first = self.end_ns as u64 - (traces - 1) * step;
        for n in 0..traces {
            sink(Self::trace(n, first + n * step))?;
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn resource(service: usize, pod: usize) -> Resource {
    let name = SERVICES[service];
    Resource {
        attributes: vec![
            kv("service.name", name),
            kv("service.namespace", "shop"),
            kv(
                "service.version",
                format!("1.{}.{}", service % 4, service % 7),
            ),
            kv("service.instance.id", format!("{name}-{pod}")),
            kv("k8s.pod.name", format!("{name}-7d9f8c-{pod}")),
            kv("deployment.environment", "bench"),
            kv(
                "telemetry.sdk.language",
                if service.is_multiple_of(3) {
                    "go"
                } else {
                    "java"
                },
            ),
        ],
        ..Default::default()
    }
}

/// One OTLP export request of `spans`, grouped by resource and scope.
pub fn export_request(spans: Vec<GeneratedSpan>) -> ExportTraceServiceRequest {
    let mut by_resource: Vec<Vec<Span>> = (0..SERVICES.len() * PODS).map(|_| Vec::new()).collect();
    for s in spans {
        by_resource[s.service * PODS + s.pod].push(s.span);
    }
    ExportTraceServiceRequest {
        resource_spans: by_resource
            .into_iter()
            .enumerate()
            .filter(|(_, s)| !s.is_empty())
            .map(|(i, spans)| ResourceSpans {
                resource: Some(resource(i / PODS, i % PODS)),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "io.opentelemetry.bench".into(),
                        version: "1.32.0".into(),
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

/// What `data` measured.
#[derive(Debug)]
pub struct LoadReport {
    pub traces: u64,
    pub spans: u64,
    pub requests: u64,
    pub request_bytes: u64,
    /// From the first request to the last acknowledgement.
    pub ingest: Duration,
    pub flush: Duration,
}

impl LoadReport {
    pub fn spans_per_second(&self) -> f64 {
        self.spans as f64 / self.ingest.as_secs_f64()
    }
}

/// Sends the dataset to `addr` as OTLP/HTTP protobuf requests of about
/// `batch` spans over `connections` connections, then flushes.
pub fn load(
    dataset: &TracesDataset,
    addr: SocketAddr,
    batch: usize,
    connections: usize,
) -> Result<LoadReport> {
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(connections * 4);
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let started = Instant::now();
    let senders: Vec<_> = (0..connections.max(1))
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || -> Result<()> {
                loop {
                    let body = match rx.lock().expect("receiver lock").recv() {
                        Ok(b) => b,
                        Err(_) => return Ok(()),
                    };
                    send(addr, &body)?;
                }
            })
        })
        .collect();
    // Only the senders hold the receiver: if they all stop, sends fail
    // instead of blocking.
    drop(rx);
    let mut report = LoadReport {
        traces: 0,
        spans: 0,
        requests: 0,
        request_bytes: 0,
        ingest: Duration::ZERO,
        flush: Duration::ZERO,
    };
    let mut pending: Vec<GeneratedSpan> = Vec::with_capacity(batch + 64);
    // False once every sender has stopped (each stops only on an error).
    let emit = |pending: &mut Vec<GeneratedSpan>, report: &mut LoadReport| -> bool {
        let body = export_request(std::mem::take(pending)).encode_to_vec();
        report.requests += 1;
        report.request_bytes += body.len() as u64;
        tx.send(body).is_ok()
    };
    let stopped = || Error::Config("every OTLP sender stopped".into());
    let generated = dataset.generate(|trace| {
        report.traces += 1;
        report.spans += trace.len() as u64;
        pending.extend(trace);
        if pending.len() >= batch && !emit(&mut pending, &mut report) {
            return Err(stopped());
        }
        Ok(())
    });
    let generated = generated.and_then(|()| {
        if !pending.is_empty() && !emit(&mut pending, &mut report) {
            return Err(stopped());
        }
        Ok(())
    });
    drop(tx);
    // A sender's own error says more than "stopped".
    for s in senders {
        s.join()
            .map_err(|_| Error::Config("an OTLP sender thread panicked".into()))??;
    }
    generated?;
    report.ingest = started.elapsed();
    let flush_started = Instant::now();
    let answer = super::prom_http::post(addr, "/flush", &[], b"")?;
    if !(200..300).contains(&answer.status) {
        return Err(Error::Config(format!(
            "flush failed: {} {}",
            answer.status, answer.body
        )));
    }
    report.flush = flush_started.elapsed();
    Ok(report)
}

/// Posts one export request, retrying while the server pushes back.
fn send(addr: SocketAddr, body: &[u8]) -> Result<()> {
    let mut backoff = Duration::from_millis(20);
    loop {
        let answer = super::prom_http::post(
            addr,
            "/v1/traces",
            &[("Content-Type", "application/x-protobuf")],
            body,
        )?;
        if matches!(answer.status, 429 | 503) {
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(1));
            continue;
        }
        if !(200..300).contains(&answer.status) {
            return Err(Error::Config(format!(
                "OTLP export failed: {} {}",
                answer.status, answer.body
            )));
        }
        // Spans refused inside an OK answer would make the figures lie.
        let response = ExportTraceServiceResponse::decode(answer.bytes.as_slice())
            .map_err(|e| Error::Config(format!("OTLP answer is not a protobuf response: {e}")))?;
        if let Some(partial) = response.partial_success
            && partial.rejected_spans > 0
        {
            return Err(Error::Config(format!(
                "o11ydb rejected {} spans: {}",
                partial.rejected_spans, partial.error_message
            )));
        }
        return Ok(());
    }
}

/// The timed queries: (name, SQL). The same text runs in DuckDB
/// (`benches/duckdb_traces.py`), except for the attribute lookup, which
/// DuckDB has to do on the packed map bytes.
pub fn queries(needle: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "service graph",
            "SELECT c.service AS client, s.service AS server, count(*) AS calls, \
             sum(CASE WHEN s.status_code = 'error' THEN 1 ELSE 0 END) AS failed, \
             approx_percentile_cont(s.duration_ns, 0.95) AS p95_ns \
             FROM spans c JOIN spans s ON s.trace_id = c.trace_id AND s.parent_span_id = c.span_id \
             WHERE c.kind IN ('client', 'producer') AND s.kind IN ('server', 'consumer') \
             AND c.service <> s.service \
             GROUP BY c.service, s.service ORDER BY client, server"
                .into(),
        ),
        ("service_graph() function", SERVICE_GRAPH_PAIRS.into()),
        (
            "RED by service and operation",
            "SELECT service, name, count(*) AS requests, \
             sum(CASE WHEN status_code = 'error' THEN 1 ELSE 0 END) AS errors, \
             approx_percentile_cont(duration_ns, 0.5) AS p50_ns, \
             approx_percentile_cont(duration_ns, 0.95) AS p95_ns \
             FROM spans WHERE kind IN ('server', 'consumer') \
             GROUP BY service, name ORDER BY service, name"
                .into(),
        ),
        (
            "trace by id",
            format!(
                "SELECT span_id, parent_span_id, service, name, kind, start_time, duration_ns, \
                 status_code FROM spans WHERE trace_id = '{needle}' ORDER BY start_time, span_id"
            ),
        ),
        (
            "attribute filter",
            "SELECT count(*) AS spans FROM spans \
             WHERE service = 'payment' AND attributes['http.status_code'] = '500'"
                .into(),
        ),
        (
            "structural: checkout spans with a failing payment child",
            "SELECT count(*) AS spans, count(DISTINCT p.trace_id) AS traces \
             FROM spans p JOIN spans c ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id \
             WHERE p.service = 'checkout' AND c.service = 'payment' AND c.status_code = 'error'"
                .into(),
        ),
        (
            "TraceQL structural: checkout > failing payment",
            format!(
                "SELECT count(*) AS spans, count(DISTINCT trace_id) AS traces FROM traceql(\
                 '{TRACEQL_STRUCTURAL}', '2000-01-01T00:00:00Z', '2100-01-01T00:00:00Z', 100000000)"
            ),
        ),
    ]
}

/// The client → server pairs of `service_graph()`, summed as the "service
/// graph" self-join counts them. The function computes every edge kind
/// (databases, virtual nodes, the `user` node) and six exact latency
/// percentiles per edge before this filter; DuckDB runs the self-join.
pub const SERVICE_GRAPH_PAIRS: &str = "SELECT client, server, sum(request_count) AS calls, \
     sum(failed_count) AS failed \
     FROM service_graph('2000-01-01T00:00:00Z', '2100-01-01T00:00:00Z') \
     WHERE connection_type IN ('', 'messaging_system') AND client <> server \
     GROUP BY client, server ORDER BY client, server";

/// The TraceQL form of the structural query: the failing payment spans
/// whose parent is a checkout span (DuckDB answers it with the self-join).
pub const TRACEQL_STRUCTURAL: &str = r#"{ resource.service.name = "checkout" } > { resource.service.name = "payment" && status = error }"#;

/// Rows, and the sum of each integer column not named `p…` (approximate
/// percentiles differ between engines), in column order.
pub fn digest(columns: &[String], rows: &[Vec<Option<String>>]) -> String {
    let mut out = format!("{} rows", rows.len());
    for (i, name) in columns.iter().enumerate() {
        if name.starts_with('p') {
            continue;
        }
        let ints: Option<Vec<i64>> = rows
            .iter()
            .map(|r| r[i].as_deref().and_then(|v| v.parse::<i64>().ok()))
            .collect();
        if let Some(ints) = ints.filter(|v| !v.is_empty()) {
            out.push_str(&format!(", {name} {}", ints.iter().sum::<i64>()));
        }
    }
    out
}

/// Times every query over pgwire (`conn`: a libpq connection string).
pub async fn query(
    conn: &str,
    needle: &str,
    runs: usize,
) -> Result<Vec<(String, Duration, String)>> {
    let (client, connection) = tokio_postgres::connect(conn, tokio_postgres::NoTls)
        .await
        .map_err(|e| Error::Config(format!("cannot connect to {conn:?}: {e}")))?;
    let connection = tokio::spawn(connection);
    let mut out = Vec::new();
    for (name, sql) in queries(needle) {
        let mut times = Vec::new();
        let mut answer = String::new();
        for run in 0..=runs {
            let started = Instant::now();
            let messages = client
                .simple_query(&sql)
                .await
                .map_err(|e| Error::Config(format!("{name}: {e}")))?;
            let elapsed = started.elapsed();
            if run > 0 {
                times.push(elapsed);
                continue;
            }
            let mut columns: Vec<String> = Vec::new();
            let mut rows = Vec::new();
            for m in messages {
                match m {
                    tokio_postgres::SimpleQueryMessage::RowDescription(cols) => {
                        columns = cols.iter().map(|c| c.name().to_string()).collect();
                    }
                    tokio_postgres::SimpleQueryMessage::Row(row) => {
                        if columns.is_empty() {
                            columns = row.columns().iter().map(|c| c.name().to_string()).collect();
                        }
                        rows.push(
                            (0..row.len())
                                .map(|i| row.get(i).map(str::to_string))
                                .collect(),
                        );
                    }
                    _ => {}
                }
            }
            answer = digest(&columns, &rows);
        }
        times.sort();
        out.push((name.to_string(), times[times.len() / 2], answer));
    }
    drop(client);
    let _ = connection.await;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_are_deterministic_and_well_formed() {
        let a = TracesDataset::trace(42, 1_000);
        let b = TracesDataset::trace(42, 1_000);
        assert_eq!(a.len(), b.len());
        assert!(a.iter().zip(&b).all(|(x, y)| x.span == y.span));
        // One root; every other span's parent is in the trace.
        let ids: std::collections::HashSet<&[u8]> =
            a.iter().map(|s| s.span.span_id.as_slice()).collect();
        assert_eq!(ids.len(), a.len(), "span ids are unique");
        let roots = a
            .iter()
            .filter(|s| s.span.parent_span_id.is_empty())
            .count();
        assert_eq!(roots, 1);
        assert!(
            a.iter()
                .filter(|s| !s.span.parent_span_id.is_empty())
                .all(|s| ids.contains(s.span.parent_span_id.as_slice()))
        );
        assert!(
            a.iter()
                .all(|s| s.span.end_time_unix_nano >= s.span.start_time_unix_nano)
        );
    }

    #[test]
    fn dataset_has_the_promised_shape() {
        let d = TracesDataset {
            spans: 20_000,
            hours: 1,
            end_ns: 2_000_000_000_000_000_000,
        };
        let mut services = std::collections::HashSet::new();
        let mut kinds = std::collections::HashSet::new();
        let (mut spans, mut errors, mut db) = (0u64, 0u64, 0u64);
        d.generate(|trace| {
            for s in trace {
                spans += 1;
                services.insert(s.service);
                kinds.insert(s.span.kind);
                errors += u64::from(s.span.status.as_ref().is_some_and(|st| st.code == 2));
                db += u64::from(s.span.attributes.iter().any(|a| a.key == "db.system"));
            }
            Ok(())
        })
        .unwrap();
        assert!((20_000..21_000).contains(&spans), "{spans}");
        assert!(services.len() >= 10, "{services:?}");
        assert_eq!(kinds.len(), 5, "{kinds:?}");
        assert!(errors > 0 && errors < spans / 10, "{errors}");
        assert!(db > spans / 10, "{db}");
    }

    #[test]
    fn digest_sums_integer_columns_but_not_percentiles() {
        let cols = vec!["a".to_string(), "calls".into(), "p95_ns".into()];
        let rows = vec![
            vec![Some("x".into()), Some("2".into()), Some("10".into())],
            vec![Some("y".into()), Some("3".into()), Some("11".into())],
        ];
        assert_eq!(digest(&cols, &rows), "2 rows, calls 5");
    }
}
