//! Synthetic demo data: a small shop of five microservices (`frontend`,
//! `checkout`, `cart`, `payment`, `inventory` in namespace `shop`) talking to
//! an uninstrumented PostgreSQL database and a Kafka topic.
//!
//! What flows through this module: a deterministic generator (seeded
//! [`StdRng`]) turns time windows into rows of all three signals — trace
//! spans (HTTP server/client, database, producer/consumer, internal; a few
//! percent with errors and `exception` events), log lines correlated with
//! those traces (logfmt and JSON) plus background chatter, and Prometheus
//! style scrapes every 15 s (counters, gauges, request latency as a classic
//! and as a native histogram). The rows
//! become Arrow record batches of the canonical schemas and go through
//! [`Ingester::append`], the same write path every protocol uses: first one
//! hour of backfill ending now, in batches of a few thousand rows, then a
//! trickle every five seconds until shutdown.

use std::collections::BTreeMap;
use std::f64::consts::TAU;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow::array::RecordBatch;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use crate::error::Result;
use crate::ingest::Ingester;
use crate::ingest::metrics_generator::SpanSink;
use crate::model::Signal;
use crate::model::builders::{self, LogLine, LogsBuilder, SamplesBuilder, SpansBuilder};
use crate::model::histogram::{FloatHistogram, Span};
use crate::model::labels::{LabelSet, series_id};

/// The generator is deterministic: the same seed and start time give the same data.
const SEED: u64 = 0x0011_7db0_de30_2024;
const NAMESPACE: &str = "shop";
const ENVIRONMENT: &str = "demo";
const PODS_PER_SERVICE: usize = 2;

const NS_PER_MS: i64 = 1_000_000;
const NS_PER_S: i64 = 1_000_000_000;

/// How much history is loaded at start, and in which steps it is generated.
const BACKFILL_NS: i64 = 3_600 * NS_PER_S;
const BACKFILL_WINDOW_NS: i64 = 60 * NS_PER_S;
/// Rows per appended record batch (at most).
const BATCH_ROWS: usize = 4_096;
/// Live generation cadence after the backfill.
const LIVE_TICK: Duration = Duration::from_secs(5);

const SCRAPE_INTERVAL_MS: i64 = 15_000;
const SCRAPE_INTERVAL_S: f64 = 15.0;
const MAX_SCRAPE_JITTER_MS: i64 = 5;
/// Scrapes simulated (not emitted) before the first one, so counters do not start at zero.
const WARMUP_SCRAPES: i64 = 20;

/// Sampled traces started per second by the frontend, before the traffic curve.
const TRACES_PER_SECOND: f64 = 0.6;
/// Share of frontend requests that hit a fault.
const ERROR_RATE: f64 = 0.03;

/// Classic histogram bucket bounds of `http_request_duration_seconds`.
const BUCKETS: [(&str, f64); 12] = [
    ("0.005", 0.005),
    ("0.01", 0.01),
    ("0.025", 0.025),
    ("0.05", 0.05),
    ("0.1", 0.1),
    ("0.25", 0.25),
    ("0.5", 0.5),
    ("1", 1.0),
    ("2.5", 2.5),
    ("5", 5.0),
    ("10", 10.0),
    ("+Inf", f64::INFINITY),
];

const HTTP_SCOPE: (&str, &str) = ("io.opentelemetry.http", "1.26.0");
const DB_SCOPE: (&str, &str) = ("io.opentelemetry.sql", "1.26.0");
const KAFKA_SCOPE: (&str, &str) = ("io.opentelemetry.kafka", "1.26.0");

const GATEWAY_HOST: &str = "api.payment-gateway.example";
const KAFKA_TOPIC: &str = "orders";

/// Loads demo data into `tenant` and keeps generating until `shutdown` fires.
/// Live spans (not the backfilled hour) are also offered to `span_sink`, the
/// metrics generator, when it runs.
pub async fn run(
    ingester: Arc<Ingester>,
    span_sink: Option<SpanSink>,
    tenant: String,
    mut shutdown: watch::Receiver<bool>,
) -> crate::Result<()> {
    let end = now_ns();
    let start = end - BACKFILL_NS;
    let mut generator = Generator::new(SEED, start);
    let Some(counts) = backfill(&ingester, &tenant, &mut generator, start, end, &shutdown).await?
    else {
        return Ok(());
    };
    tracing::info!(
        tenant,
        logs = counts.logs,
        samples = counts.samples,
        spans = counts.spans,
        traces = generator.traces,
        "demo: loaded one hour of data, now generating live"
    );

    let mut last = end;
    let mut rows = Rows::default();
    let mut counts = Counts::default();
    let mut tick = tokio::time::interval(LIVE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        tokio::select! {
            _ = tick.tick() => {
                let now = now_ns().max(last);
                generator.generate(last, now, &mut rows);
                last = now;
                if let Some(sink) = &span_sink
                    && !rows.spans.is_empty()
                {
                    sink.offer(&tenant, &spans_batch(&rows.spans)?);
                }
                write(&ingester, &tenant, &mut rows, true, &mut counts).await?;
            }
            changed = shutdown.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

/// Generates `[from, to)` window by window and appends it; `None` if
/// `shutdown` fired on the way.
async fn backfill(
    ingester: &Ingester,
    tenant: &str,
    generator: &mut Generator,
    from: i64,
    to: i64,
    shutdown: &watch::Receiver<bool>,
) -> Result<Option<Counts>> {
    let mut rows = Rows::default();
    let mut counts = Counts::default();
    let mut t = from;
    while t < to {
        if *shutdown.borrow() {
            return Ok(None);
        }
        let until = (t + BACKFILL_WINDOW_NS).min(to);
        generator.generate(t, until, &mut rows);
        write(ingester, tenant, &mut rows, false, &mut counts).await?;
        tokio::task::yield_now().await;
        t = until;
    }
    write(ingester, tenant, &mut rows, true, &mut counts).await?;
    Ok(Some(counts))
}

/// Rows appended so far, per signal.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    logs: usize,
    samples: usize,
    spans: usize,
}

/// Appends full batches of buffered rows (all of them when `all`).
async fn write(
    ingester: &Ingester,
    tenant: &str,
    rows: &mut Rows,
    all: bool,
    counts: &mut Counts,
) -> Result<()> {
    counts.logs += drain(
        ingester,
        tenant,
        Signal::Logs,
        &mut rows.logs,
        all,
        logs_batch,
    )
    .await?;
    counts.samples += drain(
        ingester,
        tenant,
        Signal::Samples,
        &mut rows.samples,
        all,
        samples_batch,
    )
    .await?;
    counts.spans += drain(
        ingester,
        tenant,
        Signal::Spans,
        &mut rows.spans,
        all,
        spans_batch,
    )
    .await?;
    Ok(())
}

async fn drain<T: Sync>(
    ingester: &Ingester,
    tenant: &str,
    signal: Signal,
    buffer: &mut Vec<T>,
    all: bool,
    build: fn(&[T]) -> Result<RecordBatch>,
) -> Result<usize> {
    let n = if all {
        buffer.len()
    } else {
        buffer.len() / BATCH_ROWS * BATCH_ROWS
    };
    for chunk in buffer[..n].chunks(BATCH_ROWS) {
        let batch = build(chunk)?;
        ingester.append(tenant, signal, &batch).await?;
    }
    buffer.drain(..n);
    Ok(n)
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Rows and their record batches
// ---------------------------------------------------------------------------

/// Generated rows not yet appended.
#[derive(Debug, Default)]
struct Rows {
    logs: Vec<LogRow>,
    samples: Vec<SampleRow>,
    spans: Vec<SpanRow>,
}

#[derive(Debug, Clone)]
struct LogRow {
    ts: i64,
    stream: Arc<LabelSet>,
    line: String,
    /// Sorted by key.
    metadata: Vec<(&'static str, String)>,
    severity: &'static str,
    trace_id: Option<String>,
    span_id: Option<String>,
}

#[derive(Debug, Clone)]
struct SampleRow {
    ts_ms: i64,
    metric: &'static str,
    labels: Arc<LabelSet>,
    value: f64,
    /// A native histogram sample (then `value` is unused).
    histogram: Option<Arc<FloatHistogram>>,
}

#[derive(Debug, Clone)]
struct SpanRow {
    trace_id: String,
    span_id: String,
    parent_span_id: Option<String>,
    name: String,
    kind: &'static str,
    svc: Svc,
    start: i64,
    end: i64,
    status_code: &'static str,
    status_message: Option<String>,
    attributes: Vec<(&'static str, String)>,
    resource: Arc<Vec<(&'static str, String)>>,
    scope: (&'static str, &'static str),
    events: Vec<SpanEvent>,
    links: Vec<SpanLink>,
}

#[derive(Debug, Clone)]
struct SpanEvent {
    time: i64,
    name: &'static str,
    attributes: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone)]
struct SpanLink {
    trace_id: String,
    span_id: String,
    attributes: Vec<(&'static str, String)>,
}

fn owned(v: &[(&'static str, String)]) -> Vec<(String, String)> {
    v.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

fn label_pairs(labels: &LabelSet) -> Vec<(&str, &str)> {
    labels
        .pairs()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn logs_batch(rows: &[LogRow]) -> Result<RecordBatch> {
    let mut builder = LogsBuilder::new();
    for r in rows {
        let labels = label_pairs(&r.stream);
        let metadata = owned(&r.metadata);
        let line = LogLine {
            timestamp_ns: r.ts,
            line: &r.line,
            metadata: &metadata,
            severity: Some(r.severity),
            trace_id: r.trace_id.as_deref(),
            span_id: r.span_id.as_deref(),
        };
        builder.push(&labels, LogsBuilder::stream_id(&labels), &line);
    }
    Ok(builder.finish())
}

fn samples_batch(rows: &[SampleRow]) -> Result<RecordBatch> {
    let mut builder = SamplesBuilder::new();
    for r in rows {
        let labels = label_pairs(&r.labels);
        match &r.histogram {
            Some(h) => {
                let id = series_id(r.metric, &labels);
                builder.push_histograms_with_id(r.metric, &labels, id, &[(r.ts_ms, (**h).clone())]);
            }
            None => builder.push_series(r.metric, &labels, &[(r.ts_ms, r.value)]),
        }
    }
    Ok(builder.finish())
}

fn spans_batch(rows: &[SpanRow]) -> Result<RecordBatch> {
    let mut builder = SpansBuilder::new();
    for r in rows {
        builder.push(builders::SpanRow {
            trace_id: r.trace_id.clone(),
            span_id: r.span_id.clone(),
            parent_span_id: r.parent_span_id.clone(),
            trace_state: None,
            name: r.name.clone(),
            kind: r.kind,
            service: r.svc.name().to_string(),
            start_ns: r.start,
            end_ns: r.end,
            status_code: r.status_code,
            status_message: r.status_message.clone(),
            attributes: owned(&r.attributes),
            resource_attributes: owned(&r.resource),
            scope_name: Some(r.scope.0.to_string()),
            scope_version: Some(r.scope.1.to_string()),
            events: r
                .events
                .iter()
                .map(|e| builders::SpanEvent {
                    time_ns: e.time,
                    name: e.name.to_string(),
                    attributes: owned(&e.attributes),
                })
                .collect(),
            links: r
                .links
                .iter()
                .map(|l| builders::SpanLink {
                    trace_id: l.trace_id.clone(),
                    span_id: l.span_id.clone(),
                    trace_state: None,
                    attributes: owned(&l.attributes),
                })
                .collect(),
        });
    }
    Ok(builder.finish())
}

// ---------------------------------------------------------------------------
// The application being simulated
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Svc {
    Frontend,
    Checkout,
    Cart,
    Payment,
    Inventory,
}

const SERVICES: [Svc; 5] = [
    Svc::Frontend,
    Svc::Checkout,
    Svc::Cart,
    Svc::Payment,
    Svc::Inventory,
];

/// One HTTP route of a service as the metrics see it.
struct Route {
    method: &'static str,
    route: &'static str,
    /// Requests per second per pod (all traffic, not only sampled traces).
    rps: f64,
    /// Response statuses and their shares.
    statuses: &'static [(&'static str, f64)],
}

const fn route(
    method: &'static str,
    route: &'static str,
    rps: f64,
    statuses: &'static [(&'static str, f64)],
) -> Route {
    Route {
        method,
        route,
        rps,
        statuses,
    }
}

const FRONTEND_ROUTES: [Route; 5] = [
    route("GET", "/", 6.0, &[("200", 1.0)]),
    route("GET", "/product/{id}", 8.0, &[("200", 0.98), ("404", 0.02)]),
    route("POST", "/cart", 2.0, &[("200", 0.99), ("500", 0.01)]),
    route("GET", "/checkout", 1.0, &[("200", 1.0)]),
    route("POST", "/checkout", 0.8, &[("200", 0.97), ("500", 0.03)]),
];
const CHECKOUT_ROUTES: [Route; 2] = [
    route(
        "POST",
        "/api/checkout",
        0.8,
        &[("200", 0.97), ("500", 0.03)],
    ),
    route("GET", "/api/shipping/quote", 1.0, &[("200", 1.0)]),
];
const CART_ROUTES: [Route; 2] = [
    route("GET", "/api/cart", 5.0, &[("200", 1.0)]),
    route(
        "POST",
        "/api/cart/items",
        2.0,
        &[("200", 0.99), ("500", 0.01)],
    ),
];
const PAYMENT_ROUTES: [Route; 1] = [route(
    "POST",
    "/api/charge",
    0.8,
    &[("200", 0.95), ("402", 0.03), ("500", 0.02)],
)];
const INVENTORY_ROUTES: [Route; 2] = [
    route(
        "GET",
        "/api/products/{id}",
        8.0,
        &[("200", 0.98), ("404", 0.02)],
    ),
    route("GET", "/api/stock/{id}", 3.0, &[("200", 1.0)]),
];

impl Svc {
    fn name(self) -> &'static str {
        match self {
            Svc::Frontend => "frontend",
            Svc::Checkout => "checkout",
            Svc::Cart => "cart",
            Svc::Payment => "payment",
            Svc::Inventory => "inventory",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn version(self) -> &'static str {
        match self {
            Svc::Frontend => "2.14.1",
            Svc::Checkout => "1.9.0",
            Svc::Cart => "1.4.7",
            Svc::Payment => "3.0.2",
            Svc::Inventory => "1.12.3",
        }
    }

    /// Whether the service logs JSON (otherwise logfmt).
    fn json_logs(self) -> bool {
        matches!(self, Svc::Frontend | Svc::Cart)
    }

    /// Background (not request-bound) log lines per second, all pods together.
    fn background_log_rate(self) -> f64 {
        match self {
            Svc::Frontend => 1.8,
            Svc::Checkout => 0.6,
            Svc::Cart => 1.0,
            Svc::Payment => 0.5,
            Svc::Inventory => 1.2,
        }
    }

    fn routes(self) -> &'static [Route] {
        match self {
            Svc::Frontend => &FRONTEND_ROUTES,
            Svc::Checkout => &CHECKOUT_ROUTES,
            Svc::Cart => &CART_ROUTES,
            Svc::Payment => &PAYMENT_ROUTES,
            Svc::Inventory => &INVENTORY_ROUTES,
        }
    }

    /// Median request latency in seconds, for the histograms.
    fn latency_median_s(self) -> f64 {
        match self {
            Svc::Frontend => 0.045,
            Svc::Checkout => 0.21,
            Svc::Cart => 0.004,
            Svc::Payment => 0.19,
            Svc::Inventory => 0.003,
        }
    }

    fn memory_base_bytes(self) -> f64 {
        match self {
            Svc::Frontend => 182e6,
            Svc::Checkout => 96e6,
            Svc::Cart => 64e6,
            Svc::Payment => 71e6,
            Svc::Inventory => 118e6,
        }
    }

    fn internal_scope(self) -> (&'static str, &'static str) {
        let name = match self {
            Svc::Frontend => "shop.frontend",
            Svc::Checkout => "shop.checkout",
            Svc::Cart => "shop.cart",
            Svc::Payment => "shop.payment",
            Svc::Inventory => "shop.inventory",
        };
        (name, self.version())
    }

    /// The work queue a service reports as `queue_depth`, if any.
    fn queue(self) -> Option<&'static str> {
        match self {
            Svc::Checkout => Some("orders-outbox"),
            Svc::Inventory => Some("orders"),
            _ => None,
        }
    }
}

/// Traffic multiplier over time: a slow wave and a faster ripple.
/// Schema of the demo's native latency histograms (2^(1/8) growth per bucket).
const NATIVE_SCHEMA: i32 = 3;

/// The native histogram bucket (schema [`NATIVE_SCHEMA`]) holding `v > 0`:
/// bucket `i` covers `(2^((i−1)/8), 2^(i/8)]`.
fn native_bucket(v: f64) -> i32 {
    (v.log2() * f64::from(1 << NATIVE_SCHEMA)).ceil() as i32
}

/// A cumulative native histogram from its non-empty buckets.
fn native_histogram(buckets: &BTreeMap<i32, f64>, count: f64, sum: f64) -> FloatHistogram {
    let mut spans: Vec<Span> = Vec::new();
    let mut previous: Option<i32> = None;
    for &index in buckets.keys() {
        match (previous, spans.last_mut()) {
            (Some(p), Some(last)) if index == p + 1 => last.length += 1,
            _ => spans.push(Span {
                offset: previous.map_or(index, |p| index - p - 1),
                length: 1,
            }),
        }
        previous = Some(index);
    }
    FloatHistogram {
        schema: NATIVE_SCHEMA,
        zero_threshold: 2f64.powi(-128),
        count,
        sum,
        positive_spans: spans,
        positive_buckets: buckets.values().copied().collect(),
        ..Default::default()
    }
}

fn traffic(ts_ns: i64) -> f64 {
    let t = ts_ns as f64 / NS_PER_S as f64;
    1.0 + 0.25 * (t * TAU / 2_400.0).sin() + 0.08 * (t * TAU / 300.0).sin()
}

// ---------------------------------------------------------------------------
// Random helpers
// ---------------------------------------------------------------------------

fn normal(rng: &mut StdRng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
}

fn lognormal(rng: &mut StdRng, median: f64, sigma: f64) -> f64 {
    median * (sigma * normal(rng)).exp()
}

/// Exponentially distributed waiting time (ns) for a Poisson process of `rate` per second.
fn wait_ns(rng: &mut StdRng, rate: f64) -> i64 {
    let u = 1.0 - rng.random::<f64>();
    ((-u.ln() / rate.max(1e-6)) * NS_PER_S as f64) as i64 + 1
}

fn poisson(rng: &mut StdRng, lambda: f64) -> u64 {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda > 30.0 {
        return (lambda + lambda.sqrt() * normal(rng)).round().max(0.0) as u64;
    }
    let limit = (-lambda).exp();
    let mut k = 0;
    let mut p = rng.random::<f64>();
    while p > limit {
        k += 1;
        p *= rng.random::<f64>();
    }
    k
}

fn random_token(rng: &mut StdRng, len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

// ---------------------------------------------------------------------------
// Log line formatting
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Val {
    S(String),
    I(i64),
    F(f64),
}

fn s(v: impl Into<String>) -> Val {
    Val::S(v.into())
}

fn ms_val(ns: i64) -> Val {
    Val::F((ns as f64 / NS_PER_MS as f64 * 100.0).round() / 100.0)
}

fn push_json_string(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_logfmt_string(out: &mut String, v: &str) {
    let needs_quotes = v.is_empty()
        || v.chars()
            .any(|c| c == ' ' || c == '=' || c == '"' || c == '\\');
    if !needs_quotes {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn format_line(json: bool, level: &str, msg: &str, fields: &[(&str, Val)]) -> String {
    let mut out = String::with_capacity(160);
    if json {
        out.push_str("{\"level\":");
        push_json_string(&mut out, level);
        out.push_str(",\"msg\":");
        push_json_string(&mut out, msg);
        for (k, v) in fields {
            out.push(',');
            push_json_string(&mut out, k);
            out.push(':');
            match v {
                Val::S(v) => push_json_string(&mut out, v),
                Val::I(v) => out.push_str(&v.to_string()),
                Val::F(v) if v.is_finite() => out.push_str(&v.to_string()),
                Val::F(_) => out.push_str("null"),
            }
        }
        out.push('}');
    } else {
        out.push_str("level=");
        out.push_str(level);
        out.push_str(" msg=");
        push_logfmt_string(&mut out, msg);
        for (k, v) in fields {
            out.push(' ');
            out.push_str(k);
            out.push('=');
            match v {
                Val::S(v) => push_logfmt_string(&mut out, v),
                Val::I(v) => out.push_str(&v.to_string()),
                Val::F(v) => out.push_str(&v.to_string()),
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------

/// One pod of a service: its log stream and its OpenTelemetry resource.
struct Pod {
    svc: Svc,
    name: String,
    ip: String,
    stream: Arc<LabelSet>,
    resource: Arc<Vec<(&'static str, String)>>,
}

/// One `http_requests_total` series.
struct Counter {
    labels: Arc<LabelSet>,
    /// Requests per second at traffic factor 1.
    rate: f64,
    value: f64,
}

/// One scrape target (a pod's `:8080/metrics`) and the state of its series.
struct Target {
    svc: Svc,
    base_labels: Arc<LabelSet>,
    counters: Vec<Counter>,
    bucket_labels: Vec<Arc<LabelSet>>,
    histogram_labels: Arc<LabelSet>,
    queue_labels: Option<Arc<LabelSet>>,
    buckets: [u64; BUCKETS.len()],
    /// The same latencies as a native histogram: bucket index → count.
    native_buckets: BTreeMap<i32, f64>,
    sum: f64,
    count: u64,
    cpu_seconds: f64,
    memory: f64,
    goroutines: f64,
    queue: f64,
}

impl Target {
    fn new(pod: &Pod) -> Target {
        let job = pod.svc.name();
        let instance = format!("{}:8080", pod.name);
        let base = [("instance", instance.as_str()), ("job", job)];
        let with = |extra: &[(&str, &str)]| {
            Arc::new(LabelSet::from_pairs(
                base.iter().chain(extra.iter()).copied(),
            ))
        };
        let counters = pod
            .svc
            .routes()
            .iter()
            .flat_map(|r| {
                r.statuses.iter().map(|(status, share)| Counter {
                    labels: with(&[
                        ("service", job),
                        ("method", r.method),
                        ("route", r.route),
                        ("status", status),
                    ]),
                    rate: r.rps * share,
                    value: 0.0,
                })
            })
            .collect();
        Target {
            svc: pod.svc,
            base_labels: with(&[]),
            counters,
            bucket_labels: BUCKETS
                .iter()
                .map(|(le, _)| with(&[("service", job), ("le", le)]))
                .collect(),
            histogram_labels: with(&[("service", job)]),
            queue_labels: pod.svc.queue().map(|q| with(&[("queue", q)])),
            buckets: [0; BUCKETS.len()],
            native_buckets: BTreeMap::new(),
            sum: 0.0,
            count: 0,
            cpu_seconds: 0.0,
            memory: pod.svc.memory_base_bytes(),
            goroutines: 40.0,
            queue: 0.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The first database query of the request hits the statement timeout.
    DbTimeout,
    /// The payment gateway does not answer in time.
    GatewayTimeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    HttpServer,
    HttpClient,
    Db,
    Producer,
    Consumer,
    Internal,
}

impl Op {
    fn kind(self) -> &'static str {
        match self {
            Op::HttpServer => "server",
            Op::HttpClient | Op::Db => "client",
            Op::Producer => "producer",
            Op::Consumer => "consumer",
            Op::Internal => "internal",
        }
    }

    fn scope(self, svc: Svc) -> (&'static str, &'static str) {
        match self {
            Op::HttpServer | Op::HttpClient => HTTP_SCOPE,
            Op::Db => DB_SCOPE,
            Op::Producer | Op::Consumer => KAFKA_SCOPE,
            Op::Internal => svc.internal_scope(),
        }
    }
}

/// Spans and logs of one frontend request (and the consumer trace it causes).
#[derive(Default)]
struct Group {
    spans: Vec<SpanRow>,
    /// Pod index of each span.
    pods: Vec<usize>,
    logs: Vec<LogRow>,
    fault: Option<Fault>,
    user: String,
}

impl Group {
    fn attr(&mut self, span: usize, key: &'static str, value: impl Into<String>) {
        self.spans[span].attributes.push((key, value.into()));
    }

    fn close(&mut self, span: usize, end: i64) {
        self.spans[span].end = end;
    }

    fn fail(&mut self, span: usize, message: impl Into<String>) {
        self.spans[span].status_code = "error";
        self.spans[span].status_message = Some(message.into());
    }

    fn exception(&mut self, span: usize, time: i64, kind: &str, message: &str) {
        self.spans[span].events.push(SpanEvent {
            time,
            name: "exception",
            attributes: vec![
                ("exception.message", message.to_string()),
                ("exception.type", kind.to_string()),
            ],
        });
    }
}

/// Where a span starts: its trace, parent, service and pod.
struct SpanStart {
    trace_id: String,
    parent: Option<usize>,
    pod: usize,
    op: Op,
    name: String,
    start: i64,
}

/// A request from one service to another.
struct Req {
    method: &'static str,
    route: &'static str,
    path: String,
}

fn req(method: &'static str, route: &'static str, path: impl Into<String>) -> Req {
    Req {
        method,
        route,
        path: path.into(),
    }
}

/// When a unit of work ended and how it went (an HTTP status).
#[derive(Debug, Clone, Copy)]
struct Outcome {
    end: i64,
    status: u16,
}

impl Outcome {
    fn failed(self) -> bool {
        self.status >= 500
    }
}

struct Query {
    op: &'static str,
    table: &'static str,
    statement: &'static str,
    median_ms: f64,
}

const CART_SELECT: Query = Query {
    op: "SELECT",
    table: "cart_items",
    statement: "SELECT sku, quantity FROM cart_items WHERE user_id = $1",
    median_ms: 1.2,
};
const CART_UPSERT: Query = Query {
    op: "INSERT",
    table: "cart_items",
    statement: "INSERT INTO cart_items (user_id, sku, quantity) VALUES ($1, $2, $3) \
                ON CONFLICT (user_id, sku) DO UPDATE SET quantity = cart_items.quantity + EXCLUDED.quantity",
    median_ms: 2.4,
};
const PRODUCT_SELECT: Query = Query {
    op: "SELECT",
    table: "products",
    statement: "SELECT id, name, description, price_cents FROM products WHERE sku = $1",
    median_ms: 1.0,
};
const STOCK_SELECT: Query = Query {
    op: "SELECT",
    table: "stock",
    statement: "SELECT available FROM stock WHERE sku = $1",
    median_ms: 0.8,
};
const STOCK_UPDATE: Query = Query {
    op: "UPDATE",
    table: "stock",
    statement: "UPDATE stock SET available = available - $2, reserved = reserved + $2 WHERE sku = $1",
    median_ms: 3.2,
};
const ORDER_INSERT: Query = Query {
    op: "INSERT",
    table: "orders",
    statement: "INSERT INTO orders (id, user_id, total_cents, status) VALUES ($1, $2, $3, 'placed')",
    median_ms: 2.8,
};
const PAYMENT_INSERT: Query = Query {
    op: "INSERT",
    table: "payments",
    statement: "INSERT INTO payments (order_id, amount_cents, provider_ref, status) VALUES ($1, $2, $3, 'authorized')",
    median_ms: 2.2,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    Home,
    Product,
    AddToCart,
    Checkout,
    PlaceOrder,
}

const PAGES: [(Page, u32); 5] = [
    (Page::Home, 30),
    (Page::Product, 35),
    (Page::AddToCart, 15),
    (Page::Checkout, 10),
    (Page::PlaceOrder, 10),
];

const USER_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
];

/// Turns time windows into rows of all three signals; keeps the state that
/// must carry over between windows (counters, next arrival times).
struct Generator {
    rng: StdRng,
    pods: Vec<Pod>,
    targets: Vec<Target>,
    next_trace_ns: i64,
    next_log_ns: [i64; SERVICES.len()],
    next_scrape_ms: i64,
    /// Traces generated so far (frontend requests and order consumers).
    traces: usize,
}

impl Generator {
    fn new(seed: u64, start_ns: i64) -> Generator {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut pods = Vec::new();
        for svc in SERVICES {
            let replica_set = random_token(&mut rng, 10);
            for k in 0..PODS_PER_SERVICE {
                let name = format!("{}-{replica_set}-{}", svc.name(), random_token(&mut rng, 5));
                let stream = Arc::new(LabelSet::from_pairs([
                    ("env", ENVIRONMENT),
                    ("namespace", NAMESPACE),
                    ("pod", name.as_str()),
                    ("service_name", svc.name()),
                ]));
                let mut resource = vec![
                    ("deployment.environment", ENVIRONMENT.to_string()),
                    ("k8s.namespace.name", NAMESPACE.to_string()),
                    ("k8s.pod.name", name.clone()),
                    ("service.instance.id", name.clone()),
                    ("service.name", svc.name().to_string()),
                    ("service.namespace", NAMESPACE.to_string()),
                    ("service.version", svc.version().to_string()),
                    ("telemetry.sdk.language", "go".to_string()),
                    ("telemetry.sdk.name", "opentelemetry".to_string()),
                ];
                resource.sort_by(|a, b| a.0.cmp(b.0));
                pods.push(Pod {
                    svc,
                    ip: format!("10.42.{}.{}", svc.index() + 1, 10 + k),
                    name,
                    stream,
                    resource: Arc::new(resource),
                });
            }
        }
        let targets = pods.iter().map(Target::new).collect();
        let first_scrape_ms = (start_ns / NS_PER_MS + SCRAPE_INTERVAL_MS - 1)
            .div_euclid(SCRAPE_INTERVAL_MS)
            * SCRAPE_INTERVAL_MS;
        let mut generator = Generator {
            next_trace_ns: start_ns + wait_ns(&mut rng, TRACES_PER_SECOND),
            next_log_ns: [start_ns; SERVICES.len()],
            next_scrape_ms: first_scrape_ms,
            rng,
            pods,
            targets,
            traces: 0,
        };
        for (i, svc) in SERVICES.iter().enumerate() {
            generator.next_log_ns[i] += wait_ns(&mut generator.rng, svc.background_log_rate());
        }
        // Let the counters run for a while so the first scrape is not all zeros.
        let mut scratch = Vec::new();
        for k in (1..=WARMUP_SCRAPES).rev() {
            for t in 0..generator.targets.len() {
                generator.scrape(t, first_scrape_ms - k * SCRAPE_INTERVAL_MS, &mut scratch);
            }
            scratch.clear();
        }
        generator
    }

    /// Appends everything that happens in `[from, to)` to `out`. Traces
    /// starting in the window are moved back so that they end by `to`.
    fn generate(&mut self, from: i64, to: i64, out: &mut Rows) {
        while self.next_scrape_ms + MAX_SCRAPE_JITTER_MS < to / NS_PER_MS {
            let at = self.next_scrape_ms;
            for t in 0..self.targets.len() {
                self.scrape(t, at, &mut out.samples);
            }
            self.next_scrape_ms += SCRAPE_INTERVAL_MS;
        }
        while self.next_trace_ns < to {
            let at = self.next_trace_ns.max(from);
            self.request(at, to, out);
            let rate = TRACES_PER_SECOND * traffic(at);
            self.next_trace_ns = at + wait_ns(&mut self.rng, rate);
        }
        for (i, svc) in SERVICES.iter().enumerate() {
            while self.next_log_ns[i] < to {
                let at = self.next_log_ns[i].max(from);
                let row = self.background_log(*svc, at);
                out.logs.push(row);
                let rate = svc.background_log_rate() * traffic(at).sqrt();
                self.next_log_ns[i] = at + wait_ns(&mut self.rng, rate);
            }
        }
    }

    // -- metrics -----------------------------------------------------------

    fn scrape(&mut self, target: usize, at_ms: i64, out: &mut Vec<SampleRow>) {
        let Generator { rng, targets, .. } = self;
        let t = &mut targets[target];
        let ts_ms = at_ms + rng.random_range(0..=MAX_SCRAPE_JITTER_MS);
        let factor = traffic(at_ms * NS_PER_MS);
        let mut requests = 0u64;
        for c in &mut t.counters {
            let n = poisson(rng, c.rate * factor * SCRAPE_INTERVAL_S);
            c.value += n as f64;
            requests += n;
        }
        let median = t.svc.latency_median_s();
        for _ in 0..requests {
            let v = lognormal(rng, median, 0.7);
            t.sum += v;
            for (i, (_, le)) in BUCKETS.iter().enumerate() {
                if v <= *le {
                    t.buckets[i] += 1;
                }
            }
            *t.native_buckets.entry(native_bucket(v)).or_default() += 1.0;
        }
        t.count += requests;
        let rps = requests as f64 / SCRAPE_INTERVAL_S;
        t.cpu_seconds += SCRAPE_INTERVAL_S * (0.012 + 0.0021 * rps) * lognormal(rng, 1.0, 0.2);
        let base = t.svc.memory_base_bytes() * (1.0 + 0.004 * rps);
        t.memory += 0.15 * (base - t.memory) + normal(rng) * base * 0.01;
        t.memory = t.memory.max(base * 0.5);
        t.goroutines += 0.3 * (24.0 + 1.5 * rps - t.goroutines) + normal(rng) * 2.0;
        t.goroutines = t.goroutines.max(8.0);
        t.queue = (t.queue * 0.6 + normal(rng).abs() * 3.0 * factor).max(0.0);
        if rng.random_bool(0.04) {
            t.queue += rng.random_range(20.0..90.0);
        }

        out.push(SampleRow {
            ts_ms,
            metric: "http_request_duration_seconds",
            labels: t.histogram_labels.clone(),
            value: f64::NAN,
            histogram: Some(Arc::new(native_histogram(
                &t.native_buckets,
                t.count as f64,
                t.sum,
            ))),
        });
        let mut push = |metric: &'static str, labels: &Arc<LabelSet>, value: f64| {
            out.push(SampleRow {
                ts_ms,
                metric,
                labels: labels.clone(),
                value,
                histogram: None,
            });
        };
        push("up", &t.base_labels, 1.0);
        push("process_cpu_seconds_total", &t.base_labels, t.cpu_seconds);
        push(
            "process_resident_memory_bytes",
            &t.base_labels,
            t.memory.round(),
        );
        push("go_goroutines", &t.base_labels, t.goroutines.round());
        if let Some(labels) = &t.queue_labels {
            push("queue_depth", labels, t.queue.round());
        }
        for c in &t.counters {
            push("http_requests_total", &c.labels, c.value);
        }
        for (labels, value) in t.bucket_labels.iter().zip(t.buckets) {
            push("http_request_duration_seconds_bucket", labels, value as f64);
        }
        push(
            "http_request_duration_seconds_sum",
            &t.histogram_labels,
            t.sum,
        );
        push(
            "http_request_duration_seconds_count",
            &t.histogram_labels,
            t.count as f64,
        );
    }

    // -- logs --------------------------------------------------------------

    fn log_row(
        &mut self,
        pod: usize,
        ts: i64,
        level: &'static str,
        msg: &str,
        mut fields: Vec<(&'static str, Val)>,
        trace: Option<(&str, &str)>,
    ) -> LogRow {
        let svc = self.pods[pod].svc;
        let mut metadata = Vec::new();
        if let Some((trace_id, span_id)) = trace {
            fields.push(("trace_id", s(trace_id)));
            fields.push(("span_id", s(span_id)));
            if !svc.json_logs() {
                metadata.push(("trace_id", trace_id.to_string()));
            }
        }
        if svc == Svc::Frontend
            && let Some((_, Val::S(user))) = fields.iter().find(|(k, _)| *k == "user_id")
        {
            metadata.push(("user_id", user.clone()));
        }
        metadata.sort_by(|a, b| a.0.cmp(b.0));
        LogRow {
            ts,
            stream: self.pods[pod].stream.clone(),
            line: format_line(svc.json_logs(), level, msg, &fields),
            metadata,
            severity: level,
            trace_id: trace.map(|(t, _)| t.to_string()),
            span_id: trace.map(|(_, s)| s.to_string()),
        }
    }

    /// A log line written while handling `span`.
    fn trace_log(
        &mut self,
        g: &mut Group,
        span: usize,
        ts: i64,
        level: &'static str,
        msg: &str,
        fields: Vec<(&'static str, Val)>,
    ) {
        let pod = g.pods[span];
        let trace_id = g.spans[span].trace_id.clone();
        let span_id = g.spans[span].span_id.clone();
        let row = self.log_row(pod, ts, level, msg, fields, Some((&trace_id, &span_id)));
        g.logs.push(row);
    }

    fn background_log(&mut self, svc: Svc, ts: i64) -> LogRow {
        let pod = self.pick_pod(svc);
        let r = self.rng.random::<f64>();
        let rng = &mut self.rng;
        let (level, msg, fields): (&'static str, &str, Vec<(&'static str, Val)>) = match svc {
            Svc::Frontend if r < 0.45 => {
                let assets = [
                    "/static/js/app.js",
                    "/static/css/main.css",
                    "/static/img/logo.svg",
                ];
                (
                    "debug",
                    "served static asset",
                    vec![
                        ("path", s(assets[rng.random_range(0..assets.len())])),
                        ("bytes", Val::I(rng.random_range(2_000..180_000))),
                        (
                            "duration_ms",
                            ms_val((lognormal(rng, 0.8, 0.5) * 1e6) as i64),
                        ),
                    ],
                )
            }
            Svc::Frontend if r < 0.80 => (
                "info",
                "health check",
                vec![("path", s("/healthz")), ("status", Val::I(200))],
            ),
            Svc::Frontend if r < 0.96 => (
                "info",
                "session created",
                vec![
                    ("user_id", s(format!("u{:05}", rng.random_range(1..4_000)))),
                    (
                        "country",
                        s(["US", "DE", "FR", "GB", "BR", "JP"][rng.random_range(0..6)]),
                    ),
                ],
            ),
            Svc::Frontend if r < 0.995 => (
                "warn",
                "slow request",
                vec![
                    ("route", s("/product/{id}")),
                    (
                        "duration_ms",
                        ms_val((lognormal(rng, 1_400.0, 0.3) * 1e6) as i64),
                    ),
                ],
            ),
            Svc::Frontend => (
                "error",
                "upstream connection reset",
                vec![
                    ("upstream", s("cart:8080")),
                    (
                        "err",
                        s(
                            "read tcp 10.42.1.10:41234->10.42.3.11:8080: read: connection reset by peer",
                        ),
                    ),
                ],
            ),
            Svc::Checkout if r < 0.55 => (
                "debug",
                "outbox poll",
                vec![("pending", Val::I(rng.random_range(0..6)))],
            ),
            Svc::Checkout if r < 0.88 => (
                "info",
                "cache refreshed",
                vec![
                    ("cache", s("shipping_rates")),
                    ("entries", Val::I(rng.random_range(180..240))),
                ],
            ),
            Svc::Checkout if r < 0.99 => (
                "warn",
                "kafka producer retry",
                vec![
                    ("topic", s(KAFKA_TOPIC)),
                    ("attempt", Val::I(rng.random_range(1..4))),
                    ("err", s("kafka: broker not available")),
                ],
            ),
            Svc::Checkout => (
                "error",
                "failed to refresh exchange rates",
                vec![("err", s("context deadline exceeded"))],
            ),
            Svc::Cart if r < 0.6 => (
                "debug",
                "cache hit",
                vec![("key", s(format!("cart:u{:05}", rng.random_range(1..4_000))))],
            ),
            Svc::Cart if r < 0.93 => (
                "info",
                "expired carts swept",
                vec![
                    ("removed", Val::I(rng.random_range(0..25))),
                    (
                        "duration_ms",
                        ms_val((lognormal(rng, 12.0, 0.5) * 1e6) as i64),
                    ),
                ],
            ),
            Svc::Cart if r < 0.995 => (
                "warn",
                "slow query",
                vec![
                    ("table", s("cart_items")),
                    (
                        "duration_ms",
                        ms_val((lognormal(rng, 350.0, 0.3) * 1e6) as i64),
                    ),
                ],
            ),
            Svc::Cart => (
                "error",
                "database connection lost",
                vec![("err", s("pq: unexpected EOF")), ("reconnect", s("true"))],
            ),
            Svc::Payment if r < 0.5 => (
                "info",
                "gateway pool stats",
                vec![
                    ("active", Val::I(rng.random_range(0..8))),
                    ("idle", Val::I(rng.random_range(2..16))),
                ],
            ),
            Svc::Payment if r < 0.9 => (
                "debug",
                "gateway token refreshed",
                vec![("expires_in", Val::I(3_600))],
            ),
            Svc::Payment if r < 0.99 => (
                "warn",
                "gateway latency high",
                vec![("p99_ms", Val::I(rng.random_range(800..2_500)))],
            ),
            Svc::Payment => (
                "error",
                "webhook signature mismatch",
                vec![("event_id", s(format!("evt_{}", random_token(rng, 14))))],
            ),
            Svc::Inventory if r < 0.45 => (
                "info",
                "consumer lag",
                vec![
                    ("topic", s(KAFKA_TOPIC)),
                    ("partition", Val::I(rng.random_range(0..3))),
                    ("lag", Val::I(poisson(rng, 3.0) as i64)),
                ],
            ),
            Svc::Inventory if r < 0.85 => (
                "debug",
                "stock cache miss",
                vec![("sku", s(format!("SKU-{:04}", rng.random_range(1..250))))],
            ),
            Svc::Inventory if r < 0.98 => (
                "info",
                "reindexed products",
                vec![
                    ("count", Val::I(rng.random_range(240..260))),
                    (
                        "duration_ms",
                        ms_val((lognormal(rng, 85.0, 0.4) * 1e6) as i64),
                    ),
                ],
            ),
            Svc::Inventory => (
                "warn",
                "consumer group rebalancing",
                vec![("group", s("inventory")), ("topic", s(KAFKA_TOPIC))],
            ),
        };
        self.log_row(pod, ts, level, msg, fields, None)
    }

    // -- traces ------------------------------------------------------------

    fn pick_pod(&mut self, svc: Svc) -> usize {
        svc.index() * PODS_PER_SERVICE + self.rng.random_range(0..PODS_PER_SERVICE)
    }

    fn trace_id(&mut self) -> String {
        format!("{:032x}", self.rng.random::<u128>().max(1))
    }

    fn span_id(&mut self) -> String {
        format!("{:016x}", self.rng.random::<u64>().max(1))
    }

    /// A log-normal duration in ns with the given median in milliseconds.
    fn ms(&mut self, median_ms: f64, sigma: f64) -> i64 {
        ((lognormal(&mut self.rng, median_ms, sigma) * NS_PER_MS as f64) as i64).max(1_000)
    }

    /// One network hop inside the cluster.
    fn hop(&mut self) -> i64 {
        self.ms(0.35, 0.4)
    }

    fn open(&mut self, g: &mut Group, s: SpanStart) -> usize {
        let pod = &self.pods[s.pod];
        let row = SpanRow {
            trace_id: s.trace_id,
            span_id: String::new(),
            parent_span_id: s.parent.map(|p| g.spans[p].span_id.clone()),
            name: s.name,
            kind: s.op.kind(),
            svc: pod.svc,
            start: s.start,
            end: s.start,
            status_code: "unset",
            status_message: None,
            attributes: Vec::new(),
            resource: pod.resource.clone(),
            scope: s.op.scope(pod.svc),
            events: Vec::new(),
            links: Vec::new(),
        };
        g.spans.push(row);
        g.pods.push(s.pod);
        let idx = g.spans.len() - 1;
        g.spans[idx].span_id = self.span_id();
        idx
    }

    /// Starts a new trace.
    fn root(&mut self, g: &mut Group, svc: Svc, op: Op, name: String, start: i64) -> usize {
        let pod = self.pick_pod(svc);
        let trace_id = self.trace_id();
        self.traces += 1;
        self.open(
            g,
            SpanStart {
                trace_id,
                parent: None,
                pod,
                op,
                name,
                start,
            },
        )
    }

    /// A child of `parent` in service `svc` (same pod when the service is the parent's).
    fn child(
        &mut self,
        g: &mut Group,
        parent: usize,
        svc: Svc,
        op: Op,
        name: String,
        start: i64,
    ) -> usize {
        let pod = if g.spans[parent].svc == svc {
            g.pods[parent]
        } else {
            self.pick_pod(svc)
        };
        let trace_id = g.spans[parent].trace_id.clone();
        self.open(
            g,
            SpanStart {
                trace_id,
                parent: Some(parent),
                pod,
                op,
                name,
                start,
            },
        )
    }

    /// One sampled frontend request (a trace, sometimes two), placed at `at`
    /// and moved back if it would end after `limit`.
    fn request(&mut self, at: i64, limit: i64, out: &mut Rows) {
        let mut g = Group {
            user: format!("u{:05}", self.rng.random_range(1..4_000)),
            ..Group::default()
        };
        let total: u32 = PAGES.iter().map(|(_, w)| w).sum();
        let mut pick = self.rng.random_range(0..total);
        let mut page = Page::Home;
        for (p, w) in PAGES {
            if pick < w {
                page = p;
                break;
            }
            pick -= w;
        }
        if self.rng.random_bool(ERROR_RATE) {
            g.fault = Some(if page == Page::PlaceOrder && self.rng.random_bool(0.5) {
                Fault::GatewayTimeout
            } else {
                Fault::DbTimeout
            });
        }
        self.frontend(&mut g, page, at);

        let last = g
            .spans
            .iter()
            .map(|s| s.end)
            .chain(g.logs.iter().map(|l| l.ts))
            .max()
            .unwrap_or(at);
        let shift = (last - limit).max(0);
        for span in &mut g.spans {
            span.start -= shift;
            span.end -= shift;
            for e in &mut span.events {
                e.time -= shift;
            }
        }
        for log in &mut g.logs {
            log.ts -= shift;
        }
        out.spans.append(&mut g.spans);
        out.logs.append(&mut g.logs);
    }

    fn frontend(&mut self, g: &mut Group, page: Page, start: i64) {
        let sku = format!("SKU-{:04}", self.rng.random_range(1..250));
        let (method, route, path) = match page {
            Page::Home => ("GET", "/", "/".to_string()),
            Page::Product => ("GET", "/product/{id}", format!("/product/{sku}")),
            Page::AddToCart => ("POST", "/cart", "/cart".to_string()),
            Page::Checkout => ("GET", "/checkout", "/checkout".to_string()),
            Page::PlaceOrder => ("POST", "/checkout", "/checkout".to_string()),
        };
        let root = self.root(
            g,
            Svc::Frontend,
            Op::HttpServer,
            format!("{method} {route}"),
            start,
        );
        g.attr(root, "http.request.method", method);
        g.attr(root, "http.route", route);
        g.attr(root, "url.path", path.clone());
        g.attr(root, "url.scheme", "https");
        g.attr(root, "server.address", "shop.demo.example");
        g.attr(root, "server.port", "443");
        g.attr(root, "network.protocol.version", "1.1");
        let agent = USER_AGENTS[self.rng.random_range(0..USER_AGENTS.len())];
        g.attr(root, "user_agent.original", agent);
        let client = format!("203.0.113.{}", self.rng.random_range(1..255));
        g.attr(root, "client.address", client);
        g.attr(root, "enduser.id", g.user.clone());

        let calls = match page {
            Page::Home => {
                let mut calls = vec![(Svc::Cart, req("GET", "/api/cart", "/api/cart"))];
                for _ in 0..self.rng.random_range(2..=4) {
                    let sku = format!("SKU-{:04}", self.rng.random_range(1..250));
                    calls.push((
                        Svc::Inventory,
                        req("GET", "/api/products/{id}", format!("/api/products/{sku}")),
                    ));
                }
                calls
            }
            Page::Product => vec![
                (
                    Svc::Inventory,
                    req("GET", "/api/products/{id}", format!("/api/products/{sku}")),
                ),
                (
                    Svc::Inventory,
                    req("GET", "/api/stock/{id}", format!("/api/stock/{sku}")),
                ),
            ],
            Page::AddToCart => vec![(Svc::Cart, req("POST", "/api/cart/items", "/api/cart/items"))],
            Page::Checkout => vec![
                (Svc::Cart, req("GET", "/api/cart", "/api/cart")),
                (
                    Svc::Checkout,
                    req("GET", "/api/shipping/quote", "/api/shipping/quote"),
                ),
            ],
            Page::PlaceOrder => {
                vec![(Svc::Checkout, req("POST", "/api/checkout", "/api/checkout"))]
            }
        };

        let mut cursor = start + self.ms(0.4, 0.4);
        let mut status = 200;
        for (svc, r) in calls {
            let out = self.call(g, root, svc, r, cursor);
            cursor = out.end + self.ms(0.05, 0.5);
            if out.failed() {
                status = 500;
                break;
            }
        }
        if status == 200 {
            cursor += self.ms(3.0, 0.5); // render the page
        }
        let end = cursor + self.ms(0.1, 0.5);
        g.close(root, end);
        g.attr(root, "http.response.status_code", status.to_string());
        let mut fields = vec![
            ("method", s(method)),
            ("route", s(route)),
            ("path", s(path)),
            ("status", Val::I(status.into())),
            ("duration_ms", ms_val(end - start)),
        ];
        if page != Page::Home || self.rng.random_bool(0.5) {
            fields.push(("user_id", s(g.user.clone())));
        }
        if status >= 500 {
            g.fail(root, format!("HTTP {status}"));
            self.trace_log(g, root, end, "error", "request failed", fields);
        } else {
            self.trace_log(g, root, end, "info", "request completed", fields);
        }
    }

    /// An instrumented HTTP call from the service of `parent` to `to`: a
    /// client span there, a server span in `to`, and whatever `to` does.
    fn call(&mut self, g: &mut Group, parent: usize, to: Svc, r: Req, start: i64) -> Outcome {
        let from = g.spans[parent].svc;
        let name = format!("{} {}", r.method, r.route);
        let client = self.child(g, parent, from, Op::HttpClient, name.clone(), start);
        g.attr(client, "http.request.method", r.method);
        g.attr(
            client,
            "url.full",
            format!("http://{}:8080{}", to.name(), r.path),
        );
        g.attr(client, "url.template", r.route);
        g.attr(client, "server.address", to.name());
        g.attr(client, "server.port", "8080");

        let server_start = start + self.hop();
        let server = self.child(g, client, to, Op::HttpServer, name, server_start);
        g.attr(server, "http.request.method", r.method);
        g.attr(server, "http.route", r.route);
        g.attr(server, "url.path", r.path.clone());
        g.attr(server, "url.scheme", "http");
        g.attr(server, "server.address", to.name());
        g.attr(server, "server.port", "8080");
        let caller_ip = self.pods[g.pods[client]].ip.clone();
        g.attr(server, "client.address", caller_ip);

        let work_start = server_start + self.ms(0.08, 0.5);
        let out = self.handle(g, server, &r, work_start);
        let server_end = out.end + self.ms(0.05, 0.5);
        g.close(server, server_end);
        let level = if out.failed() { "warn" } else { "debug" };
        let fields = vec![
            ("method", s(r.method)),
            ("route", s(r.route)),
            ("status", Val::I(out.status.into())),
            ("duration_ms", ms_val(server_end - server_start)),
        ];
        self.trace_log(g, server, server_end, level, "handled request", fields);
        g.attr(server, "http.response.status_code", out.status.to_string());
        let client_end = server_end + self.hop();
        g.close(client, client_end);
        g.attr(client, "http.response.status_code", out.status.to_string());
        if out.failed() {
            g.fail(server, format!("HTTP {}", out.status));
            g.fail(client, format!("HTTP {}", out.status));
            g.attr(client, "error.type", out.status.to_string());
        }
        Outcome {
            end: client_end,
            status: out.status,
        }
    }

    /// What a service does for a request; `server` is its server span.
    fn handle(&mut self, g: &mut Group, server: usize, r: &Req, start: i64) -> Outcome {
        match (g.spans[server].svc, r.route) {
            (Svc::Cart, "/api/cart") => {
                let q = self.db(g, server, &CART_SELECT, start);
                if q.failed() {
                    return q;
                }
                let items = self.rng.random_range(0..6);
                let fields = vec![("user_id", s(g.user.clone())), ("items", Val::I(items))];
                self.trace_log(g, server, q.end, "debug", "cart loaded", fields);
                Outcome {
                    end: q.end + self.ms(0.2, 0.5),
                    status: 200,
                }
            }
            (Svc::Cart, "/api/cart/items") => {
                let sku = format!("SKU-{:04}", self.rng.random_range(1..250));
                let stock = self.call(
                    g,
                    server,
                    Svc::Inventory,
                    req("GET", "/api/stock/{id}", format!("/api/stock/{sku}")),
                    start,
                );
                if stock.failed() {
                    return Outcome {
                        end: stock.end,
                        status: 500,
                    };
                }
                let at = stock.end + self.ms(0.1, 0.5);
                let q = self.db(g, server, &CART_UPSERT, at);
                if q.failed() {
                    return q;
                }
                let qty = self.rng.random_range(1..4);
                let fields = vec![
                    ("user_id", s(g.user.clone())),
                    ("sku", s(sku)),
                    ("quantity", Val::I(qty)),
                ];
                self.trace_log(g, server, q.end, "info", "item added to cart", fields);
                Outcome {
                    end: q.end + self.ms(0.2, 0.5),
                    status: 200,
                }
            }
            (Svc::Inventory, "/api/products/{id}") => {
                let q = self.db(g, server, &PRODUCT_SELECT, start);
                Outcome {
                    end: q.end + self.ms(0.3, 0.5),
                    status: q.status,
                }
            }
            (Svc::Inventory, _) => {
                let q = self.db(g, server, &STOCK_SELECT, start);
                Outcome {
                    end: q.end + self.ms(0.1, 0.5),
                    status: q.status,
                }
            }
            (Svc::Checkout, "/api/shipping/quote") => {
                let span = self.child(
                    g,
                    server,
                    Svc::Checkout,
                    Op::Internal,
                    "calculate shipping quote".into(),
                    start,
                );
                let end = start + self.ms(0.9, 0.4);
                g.close(span, end);
                let cost = self.rng.random_range(399..1_999) as f64 / 100.0;
                let fields = vec![("carrier", s("ups")), ("cost_usd", Val::F(cost))];
                self.trace_log(g, server, end, "debug", "shipping quote computed", fields);
                Outcome { end, status: 200 }
            }
            (Svc::Checkout, _) => self.place_order(g, server, start),
            (Svc::Payment, _) => self.charge(g, server, start),
            _ => Outcome {
                end: start + self.ms(0.5, 0.5),
                status: 404,
            },
        }
    }

    fn place_order(&mut self, g: &mut Group, server: usize, start: i64) -> Outcome {
        let order_id = format!("ord_{}", random_token(&mut self.rng, 12));
        let cart = self.call(
            g,
            server,
            Svc::Cart,
            req("GET", "/api/cart", "/api/cart"),
            start,
        );
        let mut cursor = cart.end;
        let fail = |this: &mut Self, g: &mut Group, at: i64, reason: &str| {
            let fields = vec![("order_id", s(order_id.clone())), ("err", s(reason))];
            this.trace_log(g, server, at, "error", "checkout failed", fields);
            Outcome {
                end: at + this.ms(0.2, 0.5),
                status: 500,
            }
        };
        if cart.failed() {
            return fail(self, g, cursor, "cart service returned 500");
        }
        let items = self.rng.random_range(1..=3);
        let mut total_cents = 0i64;
        let mut skus = Vec::new();
        for _ in 0..items {
            let sku = format!("SKU-{:04}", self.rng.random_range(1..250));
            let stock = self.call(
                g,
                server,
                Svc::Inventory,
                req("GET", "/api/stock/{id}", format!("/api/stock/{sku}")),
                cursor,
            );
            cursor = stock.end;
            if stock.failed() {
                return fail(self, g, cursor, "inventory service returned 500");
            }
            total_cents += self.rng.random_range(499..19_999);
            skus.push(sku);
        }
        let at = cursor + self.ms(0.1, 0.5);
        let charge = req("POST", "/api/charge", "/api/charge");
        let payment = self.call(g, server, Svc::Payment, charge, at);
        cursor = payment.end;
        if payment.failed() {
            return fail(
                self,
                g,
                cursor,
                &format!("payment service returned {}", payment.status),
            );
        }
        let at = cursor + self.ms(0.1, 0.5);
        let q = self.db(g, server, &ORDER_INSERT, at);
        cursor = q.end;
        if q.failed() {
            return fail(self, g, cursor, "could not store order");
        }

        let at = cursor + self.ms(0.05, 0.5);
        let name = format!("publish {KAFKA_TOPIC}");
        let producer = self.child(g, server, Svc::Checkout, Op::Producer, name, at);
        let partition = self.rng.random_range(0..3).to_string();
        g.attr(producer, "messaging.system", "kafka");
        g.attr(producer, "messaging.destination.name", KAFKA_TOPIC);
        g.attr(producer, "messaging.operation", "publish");
        g.attr(producer, "messaging.kafka.message.key", order_id.clone());
        g.attr(
            producer,
            "messaging.kafka.destination.partition",
            partition.clone(),
        );
        g.attr(producer, "peer.service", "kafka");
        g.attr(producer, "server.address", "kafka");
        g.attr(producer, "server.port", "9092");
        let published = g.spans[producer].start + self.ms(1.8, 0.5);
        g.close(producer, published);
        cursor = published;

        let fields = vec![
            ("order_id", s(order_id.clone())),
            ("user_id", s(g.user.clone())),
            ("items", Val::I(items)),
            ("total_usd", Val::F(total_cents as f64 / 100.0)),
            ("duration_ms", ms_val(cursor - start)),
        ];
        self.trace_log(g, server, cursor, "info", "order placed", fields);
        self.consume_order(g, producer, &order_id, &skus, &partition);
        Outcome {
            end: cursor + self.ms(0.2, 0.5),
            status: 200,
        }
    }

    /// The inventory service consuming the order event: a trace of its own,
    /// linked to the producer span.
    fn consume_order(
        &mut self,
        g: &mut Group,
        producer: usize,
        order_id: &str,
        skus: &[String],
        partition: &str,
    ) {
        let fault = g.fault.take();
        let start = g.spans[producer].end + self.ms(25.0, 1.0);
        let root = self.root(
            g,
            Svc::Inventory,
            Op::Consumer,
            format!("process {KAFKA_TOPIC}"),
            start,
        );
        let link = SpanLink {
            trace_id: g.spans[producer].trace_id.clone(),
            span_id: g.spans[producer].span_id.clone(),
            attributes: Vec::new(),
        };
        g.spans[root].links.push(link);
        g.attr(root, "messaging.system", "kafka");
        g.attr(root, "messaging.destination.name", KAFKA_TOPIC);
        g.attr(root, "messaging.operation", "process");
        g.attr(root, "messaging.kafka.consumer.group", "inventory");
        g.attr(root, "messaging.kafka.message.key", order_id);
        g.attr(root, "messaging.kafka.destination.partition", partition);
        g.attr(
            root,
            "messaging.kafka.message.offset",
            (self.traces * 3 + 17_000).to_string(),
        );
        let mut cursor = start + self.ms(0.2, 0.5);
        for _ in skus {
            let q = self.db(g, root, &STOCK_UPDATE, cursor);
            cursor = q.end + self.ms(0.05, 0.5);
        }
        let fields = vec![
            ("order_id", s(order_id)),
            ("skus", s(skus.join(","))),
            ("partition", s(partition)),
        ];
        self.trace_log(g, root, cursor, "info", "reserved stock for order", fields);
        let end = cursor + self.ms(0.3, 0.5);
        g.close(root, end);
        g.fault = fault;
    }

    fn charge(&mut self, g: &mut Group, server: usize, start: i64) -> Outcome {
        let validate = self.child(
            g,
            server,
            Svc::Payment,
            Op::Internal,
            "validate card".into(),
            start,
        );
        let brand = ["visa", "mastercard", "amex"][self.rng.random_range(0..3)];
        g.attr(validate, "payment.card.brand", brand);
        let validated = start + self.ms(0.3, 0.4);
        g.close(validate, validated);

        let gateway_start = validated + self.ms(0.05, 0.5);
        let gateway = self.child(
            g,
            server,
            Svc::Payment,
            Op::HttpClient,
            "POST /v1/charges".into(),
            gateway_start,
        );
        g.attr(gateway, "http.request.method", "POST");
        g.attr(
            gateway,
            "url.full",
            format!("https://{GATEWAY_HOST}/v1/charges"),
        );
        g.attr(gateway, "server.address", GATEWAY_HOST);
        g.attr(gateway, "server.port", "443");
        g.attr(gateway, "peer.service", "payment-gateway");
        if g.fault == Some(Fault::GatewayTimeout) {
            g.fault = None;
            let end = gateway_start + 3_000 * NS_PER_MS + self.ms(0.5, 0.5);
            g.close(gateway, end);
            let message =
                format!("Post \"https://{GATEWAY_HOST}/v1/charges\": context deadline exceeded");
            g.attr(gateway, "error.type", "timeout");
            g.fail(gateway, message.clone());
            g.exception(gateway, end, "*url.Error", &message);
            let fields = vec![("gateway", s(GATEWAY_HOST)), ("err", s(message))];
            self.trace_log(
                g,
                gateway,
                end,
                "error",
                "payment gateway request failed",
                fields,
            );
            return Outcome {
                end: end + self.ms(0.2, 0.5),
                status: 502,
            };
        }
        let end = gateway_start + self.ms(170.0, 0.35);
        g.close(gateway, end);
        g.attr(gateway, "http.response.status_code", "200");

        let at = end + self.ms(0.1, 0.5);
        let q = self.db(g, server, &PAYMENT_INSERT, at);
        if q.failed() {
            return q;
        }
        let amount = self.rng.random_range(499..59_999) as f64 / 100.0;
        let fields = vec![
            ("amount", Val::F(amount)),
            ("currency", s("USD")),
            ("card_brand", s(brand)),
            (
                "provider_ref",
                s(format!("ch_{}", random_token(&mut self.rng, 16))),
            ),
        ];
        self.trace_log(g, server, q.end, "info", "payment authorized", fields);
        Outcome {
            end: q.end + self.ms(0.2, 0.5),
            status: 200,
        }
    }

    /// A query against PostgreSQL (not instrumented itself: only the client span).
    fn db(&mut self, g: &mut Group, parent: usize, q: &Query, start: i64) -> Outcome {
        let svc = g.spans[parent].svc;
        let name = format!("{} {NAMESPACE}.{}", q.op, q.table);
        let span = self.child(g, parent, svc, Op::Db, name, start);
        g.attr(span, "db.system", "postgresql");
        g.attr(span, "db.name", NAMESPACE);
        g.attr(span, "db.statement", q.statement);
        g.attr(span, "db.operation", q.op);
        g.attr(span, "db.sql.table", q.table);
        g.attr(span, "db.user", svc.name());
        g.attr(span, "peer.service", "postgres");
        g.attr(span, "server.address", "postgres");
        g.attr(span, "server.port", "5432");
        if g.fault == Some(Fault::DbTimeout) {
            g.fault = None;
            let end = start + 2_000 * NS_PER_MS + self.ms(0.8, 0.5);
            g.close(span, end);
            let message = "pq: canceling statement due to statement timeout";
            g.fail(span, message);
            g.attr(span, "error.type", "57014");
            g.exception(span, end, "*pq.Error", message);
            let fields = vec![
                ("table", s(q.table)),
                ("err", s(message)),
                ("duration_ms", ms_val(end - start)),
            ];
            self.trace_log(g, span, end, "error", "query failed", fields);
            return Outcome { end, status: 500 };
        }
        let end = start + self.ms(q.median_ms, 0.5);
        g.close(span, end);
        Outcome { end, status: 200 }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap, HashSet};

    use super::*;
    use crate::model::normalize::normalize;

    /// A fixed start time, so the tests see the same data every run.
    const T0: i64 = 1_750_000_000 * NS_PER_S;
    const MINUTE: i64 = 60 * NS_PER_S;

    fn generate(minutes: i64) -> (Generator, Rows) {
        let mut generator = Generator::new(SEED, T0);
        let mut rows = Rows::default();
        for m in 0..minutes {
            generator.generate(T0 + m * MINUTE, T0 + (m + 1) * MINUTE, &mut rows);
        }
        (generator, rows)
    }

    #[test]
    fn one_minute_of_each_signal_normalizes() {
        let (_, rows) = generate(1);
        assert!(!rows.logs.is_empty() && !rows.samples.is_empty() && !rows.spans.is_empty());
        let batches = [
            (Signal::Logs, logs_batch(&rows.logs).unwrap()),
            (Signal::Samples, samples_batch(&rows.samples).unwrap()),
            (Signal::Spans, spans_batch(&rows.spans).unwrap()),
        ];
        for (signal, batch) in batches {
            let normalized = normalize(signal, &batch).unwrap();
            assert_eq!(normalized.num_rows(), batch.num_rows(), "{signal}");
            assert_eq!(normalized.schema(), signal.schema(), "{signal}");
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_counters_monotonic() {
        let (_, rows) = generate(10);
        // (instance, scrape) -> (le, bucket value) pairs, and _count.
        type Scrape = (Vec<(f64, f64)>, Option<f64>);
        let mut histograms: BTreeMap<(String, i64), Scrape> = BTreeMap::new();
        let mut native: BTreeMap<(String, i64), Arc<FloatHistogram>> = BTreeMap::new();
        let mut last: HashMap<(&str, &LabelSet), f64> = HashMap::new();
        for r in &rows.samples {
            assert!(r.labels.get("__name__").is_none());
            assert!(r.labels.get("job").is_some() && r.labels.get("instance").is_some());
            assert!(r.labels.get("instance").unwrap().ends_with(":8080"));
            if r.histogram.is_some() {
                // Checked against the classic histogram below.
                let key = (r.labels.get("instance").unwrap().to_string(), r.ts_ms);
                native.insert(key, r.histogram.clone().unwrap());
                continue;
            }
            let cumulative = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| r.metric.ends_with(suffix));
            if cumulative && let Some(prev) = last.insert((r.metric, &r.labels), r.value) {
                assert!(r.value >= prev, "{} {:?} went down", r.metric, r.labels);
            }
            let key = (r.labels.get("instance").unwrap().to_string(), r.ts_ms);
            match r.metric {
                "http_request_duration_seconds_bucket" => {
                    let le = r.labels.get("le").unwrap();
                    let le = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().unwrap()
                    };
                    histograms.entry(key).or_default().0.push((le, r.value));
                }
                "http_request_duration_seconds_count" => {
                    histograms.entry(key).or_default().1 = Some(r.value);
                }
                _ => {}
            }
        }
        assert_eq!(
            histograms.len(),
            10 * 40,
            "10 targets, 40 scrapes in 10 minutes"
        );
        for ((instance, ts), (mut buckets, count)) in histograms {
            assert_eq!(buckets.len(), BUCKETS.len(), "{instance} at {ts}");
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert!(
                buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                "{instance} {buckets:?}"
            );
            assert_eq!(
                buckets.last().map(|b| b.1),
                count,
                "+Inf bucket equals _count"
            );
            assert!(count.unwrap() > 0.0);
            // The native histogram saw the same observations.
            let h = &native[&(instance.clone(), ts)];
            assert_eq!(Some(h.count), count);
            assert_eq!(h.positive_buckets.iter().sum::<f64>(), h.count);
            let median = crate::model::histogram::histogram_quantile(0.5, h);
            assert!(
                median > 0.001 && median < 10.0,
                "{instance}: median {median}"
            );
        }
    }

    #[test]
    fn span_parents_exist_and_children_nest() {
        let (_, rows) = generate(10);
        let mut traces: HashMap<&str, HashMap<&str, &SpanRow>> = HashMap::new();
        for span in &rows.spans {
            assert_eq!(span.trace_id.len(), 32);
            assert_eq!(span.span_id.len(), 16);
            let hex = |s: &str| s.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
            assert!(hex(&span.trace_id) && hex(&span.span_id));
            assert!(span.end >= span.start);
            let previous = traces
                .entry(&span.trace_id)
                .or_default()
                .insert(&span.span_id, span);
            assert!(previous.is_none(), "duplicate span id");
        }
        let mut roots = 0;
        for spans in traces.values() {
            for span in spans.values() {
                match &span.parent_span_id {
                    None => roots += 1,
                    Some(parent) => {
                        let parent = spans
                            .get(parent.as_str())
                            .expect("parent in the same trace");
                        assert!(
                            span.start >= parent.start && span.end <= parent.end,
                            "{} [{}, {}] outside {} [{}, {}]",
                            span.name,
                            span.start,
                            span.end,
                            parent.name,
                            parent.start,
                            parent.end
                        );
                        if span.kind == "server" {
                            assert_eq!(parent.kind, "client");
                            assert_ne!(parent.svc, span.svc);
                        }
                    }
                }
                for link in &span.links {
                    assert_eq!(span.kind, "consumer");
                    let target = traces[link.trace_id.as_str()][link.span_id.as_str()];
                    assert_eq!(target.kind, "producer");
                    assert!(span.start >= target.end);
                }
            }
        }
        assert_eq!(roots, traces.len(), "one root per trace");
        let kinds: HashSet<&str> = rows.spans.iter().map(|s| s.kind).collect();
        for kind in ["server", "client", "producer", "consumer", "internal"] {
            assert!(kinds.contains(kind), "no {kind} spans");
        }
        assert!(rows.spans.iter().any(|s| {
            s.attributes
                .iter()
                .any(|(k, v)| *k == "db.system" && v == "postgresql")
        }));
    }

    #[test]
    fn about_200_series_over_an_hour() {
        let (_, rows) = generate(60);
        let series: HashSet<(&str, &LabelSet)> = rows
            .samples
            .iter()
            .map(|r| (r.metric, r.labels.as_ref()))
            .collect();
        assert!(
            (180..=240).contains(&series.len()),
            "{} series",
            series.len()
        );
        // One sample per series per 15 s scrape.
        assert_eq!(rows.samples.len(), series.len() * 240);
        let metrics: HashSet<&str> = rows.samples.iter().map(|r| r.metric).collect();
        for m in [
            "up",
            "http_requests_total",
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "go_goroutines",
            "queue_depth",
            "http_request_duration_seconds_bucket",
            "http_request_duration_seconds_sum",
            "http_request_duration_seconds_count",
        ] {
            assert!(metrics.contains(m), "missing {m}");
        }
        for r in &rows.samples {
            let jitter = r.ts_ms.rem_euclid(SCRAPE_INTERVAL_MS);
            assert!(jitter <= MAX_SCRAPE_JITTER_MS, "scrape at {}", r.ts_ms);
        }
    }

    #[test]
    fn rates_and_errors_are_realistic() {
        let (generator, rows) = generate(60);
        let per_minute = generator.traces as f64 / 60.0;
        assert!(
            (20.0..=60.0).contains(&per_minute),
            "{per_minute} traces/min"
        );
        let per_second = rows.logs.len() as f64 / 3_600.0;
        assert!((5.0..=20.0).contains(&per_second), "{per_second} lines/s");

        let error_traces: HashSet<&str> = rows
            .spans
            .iter()
            .filter(|s| s.status_code == "error")
            .map(|s| s.trace_id.as_str())
            .collect();
        let share = error_traces.len() as f64 / generator.traces as f64;
        assert!((0.02..=0.05).contains(&share), "{share} of traces fail");
        for trace in &error_traces {
            let exception = rows.spans.iter().filter(|s| s.trace_id == *trace).any(|s| {
                s.events.iter().any(|e| {
                    e.name == "exception"
                        && e.attributes.iter().any(|(k, _)| *k == "exception.type")
                        && e.attributes.iter().any(|(k, _)| *k == "exception.message")
                })
            });
            assert!(exception, "error trace {trace} has no exception event");
        }
        // Everything lies within the hour.
        assert!(
            rows.spans
                .iter()
                .all(|s| s.start >= T0 - MINUTE && s.end <= T0 + 60 * MINUTE)
        );
        assert!(
            rows.logs
                .iter()
                .all(|l| l.ts >= T0 && l.ts <= T0 + 60 * MINUTE)
        );
    }

    #[test]
    fn logs_correlate_with_traces_and_carry_streams() {
        let (_, rows) = generate(10);
        let spans: HashSet<(&str, &str)> = rows
            .spans
            .iter()
            .map(|s| (s.trace_id.as_str(), s.span_id.as_str()))
            .collect();
        let mut correlated = 0;
        let mut streams = HashSet::new();
        for log in &rows.logs {
            assert!(["debug", "info", "warn", "error"].contains(&log.severity));
            assert!(log.stream.get("level").is_none());
            assert_eq!(log.stream.get("namespace"), Some("shop"));
            assert_eq!(log.stream.get("env"), Some("demo"));
            streams.insert(log.stream.clone());
            if let (Some(t), Some(s)) = (&log.trace_id, &log.span_id) {
                assert!(
                    spans.contains(&(t.as_str(), s.as_str())),
                    "log refers to unknown span"
                );
                assert!(log.line.contains(t.as_str()));
                correlated += 1;
            }
            if log.line.starts_with('{') {
                let parsed: serde_json::Value = serde_json::from_str(&log.line).unwrap();
                assert_eq!(parsed["level"], log.severity);
            } else {
                assert!(
                    log.line
                        .starts_with(&format!("level={} msg=", log.severity))
                );
            }
        }
        assert_eq!(streams.len(), SERVICES.len() * PODS_PER_SERVICE);
        assert!(
            correlated * 5 > rows.logs.len(),
            "{correlated} of {}",
            rows.logs.len()
        );
        assert!(
            rows.logs
                .iter()
                .any(|l| l.metadata.iter().any(|(k, _)| *k == "trace_id"))
        );
        assert!(
            rows.logs
                .iter()
                .any(|l| l.metadata.iter().any(|(k, _)| *k == "user_id"))
        );
    }

    #[test]
    fn generation_is_deterministic() {
        let (_, a) = generate(2);
        let (_, b) = generate(2);
        let lines = |r: &Rows| r.logs.iter().map(|l| l.line.clone()).collect::<Vec<_>>();
        let ids = |r: &Rows| {
            r.spans
                .iter()
                .map(|s| s.span_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(lines(&a), lines(&b));
        assert_eq!(ids(&a), ids(&b));
    }

    async fn ingester(dir: &std::path::Path) -> Arc<Ingester> {
        let store = Arc::new(object_store::memory::InMemory::new());
        let storage = crate::storage::Storage::open(store, "memory://".into())
            .await
            .unwrap();
        let (ingester, _) = Ingester::open(
            &dir.join("wal"),
            Arc::new(storage),
            crate::config::IngesterConfig::default(),
        )
        .unwrap();
        ingester
    }

    #[tokio::test]
    async fn backfill_writes_through_the_ingester() {
        let dir = tempfile::tempdir().unwrap();
        let ingester = ingester(dir.path()).await;
        let mut generator = Generator::new(SEED, T0);
        let (_tx, rx) = watch::channel(false);
        let counts = backfill(&ingester, "demo", &mut generator, T0, T0 + 10 * MINUTE, &rx)
            .await
            .unwrap()
            .expect("not shut down");
        assert!(counts.samples > BATCH_ROWS, "{counts:?}");
        for (signal, n) in [
            (Signal::Logs, counts.logs),
            (Signal::Samples, counts.samples),
            (Signal::Spans, counts.spans),
        ] {
            let head = ingester.head("demo", signal).expect("head exists");
            assert_eq!(head.stats().rows, n, "{signal}");
        }
    }

    #[tokio::test]
    async fn run_returns_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let ingester = ingester(dir.path()).await;
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(run(ingester.clone(), None, "demo".into(), rx));
        tokio::time::sleep(Duration::from_millis(100)).await;
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("run stops promptly")
            .unwrap()
            .unwrap();
    }
}
