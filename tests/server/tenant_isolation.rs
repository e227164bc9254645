//! Tenant isolation matrix: one server, two tenants (`alpha`, `beta`) with
//! the same shapes — log streams with identical label sets, metric series
//! with identical labels, spans with identical trace ids, span ids and
//! services — but different values, written through the real ingest paths
//! (Loki push, remote write, OTLP/HTTP), half flushed to blocks and half left
//! in the head. Every interface (pgwire, Flight SQL, the Prometheus, Loki and
//! Tempo HTTP APIs, the ruler's API) and every table, view and table
//! function is asked the same question as each tenant; the answer must hold
//! that tenant's values and none of the other's. Then the ways SQL might
//! name another tenant (a `tenant` column, qualified names, `SET`, another
//! tenant's database, DDL over files, replayed Flight tickets and handles)
//! are tried and must not widen access.

use std::path::Path;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow_flight::FlightInfo;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{CommandGetDbSchemas, CommandGetTables};
use futures::TryStreamExt;
use o11ydb::ingest::remote_write::encode_write_request;
use serde_json::{Value, json};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};
use tonic::transport::Channel;

use crate::common::{Server, http_exchange, post_otlp_traces, remote_write_headers, tempdir};

const SECOND: i64 = 1_000_000_000;
const MS: i64 = 1_000_000;

/// Trace ids both tenants use: one written before the flush (in blocks),
/// one after (in the head).
const BLOCK_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const HEAD_TRACE: &str = "5b8efff798038103d269b633813fc60c";
/// Span ids both tenants use in each of those traces.
const ROOT_SPAN: &str = "1000000000000001";
const CLIENT_SPAN: &str = "2000000000000002";
const PAYMENTS_SPAN: &str = "3000000000000003";

/// One tenant of the matrix and the values only it has.
struct Tenant {
    name: &'static str,
    user: &'static str,
    password: &'static str,
    /// Sample `i` of `requests_total` is `base_value + i`.
    base_value: i64,
    /// Durations (ms) of the root, client and payments spans.
    durations_ms: [i64; 3],
    /// Lines of the shared log stream (alpha 3, beta 4: a count that mixed
    /// both tenants would be 7).
    shared_lines: usize,
    /// The trace only this tenant has.
    own_trace: &'static str,
}

const ALPHA: Tenant = Tenant {
    name: "alpha",
    user: "alpha-user",
    password: "alpha-secret",
    base_value: 1000,
    durations_ms: [100, 50, 40],
    shared_lines: 3,
    own_trace: "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
};

const BETA: Tenant = Tenant {
    name: "beta",
    user: "beta-user",
    password: "beta-secret",
    base_value: 5000,
    durations_ms: [700, 600, 500],
    shared_lines: 4,
    own_trace: "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2",
};

const TENANTS: [&Tenant; 2] = [&ALPHA, &BETA];

fn other(t: &Tenant) -> &'static Tenant {
    if t.name == ALPHA.name { &BETA } else { &ALPHA }
}

impl Tenant {
    fn value(&self, i: i64) -> i64 {
        self.base_value + i
    }
}

const SHARED_RULES: &str = r#"
groups:
  - name: shared
    rules:
      - record: job:requests:max
        expr: max by (job) (requests_total)
      - alert: RequestsSeen
        expr: requests_total > 0
        annotations:
          summary: "value {{ $value }}"
"#;

fn config(rules: &Path) -> String {
    format!(
        r#"
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
[ruler]
rule_path = {:?}
evaluation_interval = "1s"
poll_interval = "1s"
[[users]]
name = "{}"
password = "{}"
tenants = ["{}"]
[[users]]
name = "{}"
password = "{}"
tenants = ["{}"]
"#,
        rules.display().to_string(),
        ALPHA.user,
        ALPHA.password,
        ALPHA.name,
        BETA.user,
        BETA.password,
        BETA.name,
    )
}

/// The server, the data written and each tenant's Postgres connection.
struct World {
    server: Server,
    /// A whole minute, ten minutes ago: sample `i` is at `base + 15 s · i`.
    base_ns: i64,
    data_dir: std::path::PathBuf,
    pg: Vec<Client>,
    flight: Vec<FlightSqlServiceClient<Channel>>,
    _dir: tempfile::TempDir,
}

impl World {
    fn sample_ms(&self, i: i64) -> i64 {
        (self.base_ns + i * 15 * SECOND) / MS
    }

    fn index(t: &Tenant) -> usize {
        usize::from(t.name != ALPHA.name)
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn http(server: &Server, method: &str, path: &str, tenant: &str, body: &[u8]) -> (u16, String) {
    let answer = http_exchange(
        server.http,
        method,
        path,
        &[
            ("X-Scope-OrgID", tenant),
            ("Content-Type", "application/json"),
        ],
        body,
    );
    (answer.status, answer.body)
}

// ---- ingest -------------------------------------------------------------

fn push_logs(server: &Server, t: &Tenant, streams: Value) {
    let body = json!({ "streams": streams }).to_string();
    let (status, text) = http(server, "POST", "/loki/api/v1/push", t.name, body.as_bytes());
    assert_eq!(status, 204, "Loki push as {}: {text}", t.name);
}

/// One series to remote-write: its labels and its (ms, value) samples.
type Series<'a> = (Vec<(&'a str, &'a str)>, Vec<(i64, f64)>);

fn remote_write(server: &Server, t: &Tenant, series: Vec<Series<'_>>) {
    let series: Vec<_> = series
        .into_iter()
        .map(|(labels, samples)| {
            let labels = labels
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (labels, samples)
        })
        .collect();
    let body = snap::raw::Encoder::new()
        .compress_vec(&encode_write_request(&series))
        .unwrap();
    let answer = http_exchange(
        server.http,
        "POST",
        "/api/v1/write",
        &remote_write_headers(Some(t.name)),
        &body,
    );
    assert_eq!(
        answer.status, 204,
        "remote write as {}: {}",
        t.name, answer.body
    );
}

#[allow(clippy::too_many_arguments)]
fn span(
    trace: &str,
    id: &str,
    parent: Option<&str>,
    name: &str,
    kind: i64,
    start_ns: i64,
    duration_ms: i64,
    owner: &str,
) -> Value {
    let mut s = json!({
        "traceId": trace, "spanId": id, "name": name, "kind": kind,
        "startTimeUnixNano": start_ns.to_string(),
        "endTimeUnixNano": (start_ns + duration_ms * MS).to_string(),
        "attributes": [{"key": "owner", "value": {"stringValue": owner}}],
    });
    if let Some(p) = parent {
        s["parentSpanId"] = json!(p);
    }
    s
}

fn resource(service: &str, spans: Vec<Value>) -> Value {
    json!({
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": service}},
        ]},
        "scopeSpans": [{"scope": {"name": "isolation"}, "spans": spans}],
    })
}

/// frontend `GET /checkout` (server) → frontend `POST /pay` (client) →
/// payments `POST /pay` (server), with the tenant's durations.
fn shared_trace(t: &Tenant, trace: &str, start_ns: i64) -> Vec<Value> {
    let [root, client, payments] = t.durations_ms;
    vec![
        resource(
            "frontend",
            vec![
                span(
                    trace,
                    ROOT_SPAN,
                    None,
                    "GET /checkout",
                    2,
                    start_ns,
                    root,
                    t.name,
                ),
                span(
                    trace,
                    CLIENT_SPAN,
                    Some(ROOT_SPAN),
                    "POST /pay",
                    3,
                    start_ns + MS,
                    client,
                    t.name,
                ),
            ],
        ),
        resource(
            "payments",
            vec![span(
                trace,
                PAYMENTS_SPAN,
                Some(CLIENT_SPAN),
                "POST /pay",
                2,
                start_ns + 2 * MS,
                payments,
                t.name,
            )],
        ),
    ]
}

fn post_spans(server: &Server, t: &Tenant, resource_spans: Vec<Value>) {
    let body = json!({ "resourceSpans": resource_spans }).to_string();
    post_otlp_traces(server, body.as_bytes(), Some(t.name));
}

/// The first half of every signal (flushed to blocks afterwards).
fn write_block_half(server: &Server, base_ns: i64, t: &Tenant) {
    let stream = json!({"app": "shop", "env": "prod"});
    push_logs(
        server,
        t,
        json!([{"stream": stream, "values": [
            [(base_ns + SECOND).to_string(), format!("{} line 1", t.name)],
            [(base_ns + 2 * SECOND).to_string(), format!("{} line 2", t.name)],
        ]}]),
    );
    let base_ms = base_ns / MS;
    remote_write(
        server,
        t,
        vec![(
            vec![
                ("__name__", "requests_total"),
                ("instance", "a:1"),
                ("job", "api"),
            ],
            (0..=20)
                .map(|i| (base_ms + i * 15_000, t.value(i) as f64))
                .collect(),
        )],
    );
    post_spans(
        server,
        t,
        shared_trace(t, BLOCK_TRACE, base_ns + 10 * SECOND),
    );
}

/// The second half (left in the head) and what only this tenant has.
fn write_head_half(server: &Server, base_ns: i64, t: &Tenant) {
    let shared: Vec<Value> = (3..=t.shared_lines)
        .map(|n| {
            json!([
                (base_ns + 300 * SECOND + n as i64 * SECOND).to_string(),
                format!("{} line {n}", t.name)
            ])
        })
        .collect();
    let own_label = format!("{}_team", t.name);
    push_logs(
        server,
        t,
        json!([
            {"stream": {"app": "shop", "env": "prod"}, "values": shared},
            {"stream": {"app": format!("{}-only", t.name), own_label: "yes"},
             "values": [[(base_ns + 310 * SECOND).to_string(), format!("{} only line", t.name)]]},
        ]),
    );
    let base_ms = base_ns / MS;
    let own_metric = format!("{}_only_total", t.name);
    let own_job = format!("{}-job", t.name);
    let own_label = format!("{}_label", t.name);
    remote_write(
        server,
        t,
        vec![
            (
                vec![
                    ("__name__", "requests_total"),
                    ("instance", "a:1"),
                    ("job", "api"),
                ],
                (21..=40)
                    .map(|i| (base_ms + i * 15_000, t.value(i) as f64))
                    .collect(),
            ),
            (
                vec![
                    ("__name__", own_metric.as_str()),
                    (own_label.as_str(), "x"),
                    ("job", own_job.as_str()),
                ],
                (21..=40)
                    .map(|i| (base_ms + i * 15_000, t.base_value as f64))
                    .collect(),
            ),
        ],
    );
    let mut spans = shared_trace(t, HEAD_TRACE, base_ns + 310 * SECOND);
    let mut own = span(
        t.own_trace,
        "4000000000000004",
        None,
        "GET /own",
        2,
        base_ns + 320 * SECOND,
        t.durations_ms[0],
        t.name,
    );
    own["attributes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": format!("{}.only", t.name), "value": {"stringValue": "yes"}}));
    spans.push(resource(&format!("{}-svc", t.name), vec![own]));
    post_spans(server, t, spans);
}

// ---- clients --------------------------------------------------------------

async fn pg_connect(
    server: &Server,
    user: &str,
    password: &str,
    database: &str,
) -> Result<Client, tokio_postgres::Error> {
    let conninfo = format!(
        "host={} port={} user={user} password={password} dbname={database}",
        server.pg.ip(),
        server.pg.port()
    );
    let (client, connection) = tokio_postgres::connect(&conninfo, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Rows of a simple query as text, one `a|b|c` line per row.
async fn pg_text(client: &Client, sql: &str) -> Result<String, tokio_postgres::Error> {
    let mut out = String::new();
    for message in client.simple_query(sql).await? {
        if let SimpleQueryMessage::Row(row) = message {
            let cells: Vec<&str> = (0..row.len())
                .map(|i| row.get(i).unwrap_or("NULL"))
                .collect();
            out.push_str(&cells.join("|"));
            out.push('\n');
        }
    }
    Ok(out)
}

async fn flight_connect(server: &Server, t: &Tenant) -> FlightSqlServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", server.flight))
        .unwrap()
        .connect()
        .await
        .expect("connect to the Flight SQL port");
    let mut client = FlightSqlServiceClient::new(channel);
    client
        .handshake(t.user, t.password)
        .await
        .unwrap_or_else(|e| panic!("Flight handshake as {}: {e}", t.user));
    client
}

async fn flight_fetch(
    client: &mut FlightSqlServiceClient<Channel>,
    info: FlightInfo,
) -> Vec<RecordBatch> {
    let mut batches = vec![];
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("endpoint has a ticket");
        let stream = client.do_get(ticket).await.expect("do_get");
        batches.extend(stream.try_collect::<Vec<_>>().await.expect("stream"));
    }
    batches
}

fn render(batches: &[RecordBatch]) -> String {
    arrow::util::pretty::pretty_format_batches(batches)
        .unwrap()
        .to_string()
}

async fn flight_text(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> String {
    let info = client
        .execute(sql.to_string(), None)
        .await
        .unwrap_or_else(|e| panic!("Flight SQL {sql}: {e}"));
    render(&flight_fetch(client, info).await)
}

/// Polls `check` until it holds or `timeout` passes.
fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

// ---- the matrix ------------------------------------------------------------

/// How a case asks its question.
enum Ask {
    /// SQL over the tenant's Postgres connection.
    Pg(String),
    /// SQL over the tenant's Flight SQL client.
    Flight(String),
    /// `GET` with the tenant's `X-Scope-OrgID` (must answer 200).
    Http(String),
}

/// What an answer to a tenant must hold.
type Needles = dyn Fn(&Tenant) -> Vec<String>;

/// One question: asked as each tenant, its answer must hold every needle
/// of that tenant and none of the other tenant's (nor its name).
struct Case {
    name: &'static str,
    ask: Ask,
    needles: Box<Needles>,
}

fn case(name: &'static str, ask: Ask, needles: impl Fn(&Tenant) -> Vec<String> + 'static) -> Case {
    Case {
        name,
        ask,
        needles: Box::new(needles),
    }
}

fn sql_ts(ns: i64) -> String {
    let t = chrono::DateTime::from_timestamp_nanos(ns);
    format!("TIMESTAMP '{}'", t.format("%Y-%m-%dT%H:%M:%S%.3fZ"))
}

fn cases(w: &World) -> Vec<Case> {
    use Ask::{Flight, Http, Pg};
    let base = w.base_ns;
    let (start_ns, end_ns) = (base - 60 * SECOND, base + 900 * SECOND);
    let (start_s, end_s) = (start_ns / SECOND, end_ns / SECOND);
    let last_s = w.sample_ms(40) / 1000;
    let block_s = w.sample_ms(10) / 1000;
    let (sql_start, sql_end) = (sql_ts(start_ns), sql_ts(end_ns));
    let loki_range = format!("start={start_ns}&end={end_ns}&limit=100");
    let tempo_range = format!("start={start_s}&end={end_s}");
    let lines = |t: &Tenant| {
        (1..=t.shared_lines)
            .map(|n| format!("{} line {n}", t.name))
            .chain([format!("{} only line", t.name)])
            .collect::<Vec<_>>()
    };
    let values = |t: &Tenant| vec![t.value(0).to_string(), t.value(40).to_string()];
    let svc = |t: &Tenant| vec![format!("{}-svc", t.name)];
    let durations = |t: &Tenant| {
        t.durations_ms
            .iter()
            .map(|d| format!("|{}|", d * MS))
            .collect::<Vec<_>>()
    };
    let name = |t: &Tenant| vec![t.name.to_string()];
    let catalog = |_: &Tenant| {
        [
            "logs",
            "samples",
            "spans",
            "traces",
            "log_streams",
            "series",
        ]
        .map(String::from)
        .to_vec()
    };
    vec![
        // pgwire: tables, views, table functions, catalogs.
        case(
            "pgwire logs",
            Pg("SELECT line FROM logs ORDER BY timestamp".into()),
            lines,
        ),
        case(
            "pgwire samples",
            Pg("SELECT value FROM samples WHERE metric = 'requests_total' ORDER BY timestamp"
                .into()),
            values,
        ),
        case(
            "pgwire spans",
            Pg("SELECT trace_id, span_id, service, duration_ns, attributes FROM spans ORDER BY start_time"
                .into()),
            move |t| {
                let mut n = durations(t);
                n.extend([
                    BLOCK_TRACE.to_string(),
                    HEAD_TRACE.to_string(),
                    t.own_trace.to_string(),
                    format!("\"owner\":\"{}\"", t.name),
                ]);
                n
            },
        ),
        case(
            "pgwire traces view",
            Pg("SELECT trace_id, root_service, duration_ns, span_count FROM traces ORDER BY trace_id"
                .into()),
            |t| {
                vec![
                    format!("{BLOCK_TRACE}|frontend|{}|3", t.durations_ms[0] * MS),
                    format!("{HEAD_TRACE}|frontend|{}|3", t.durations_ms[0] * MS),
                    format!("{}|{}-svc", t.own_trace, t.name),
                ]
            },
        ),
        case(
            "pgwire log_streams view",
            Pg("SELECT labels, lines FROM log_streams ORDER BY lines".into()),
            |t| {
                vec![
                    format!("{}-only", t.name),
                    format!("\"env\":\"prod\"}}|{}", t.shared_lines),
                ]
            },
        ),
        case(
            "pgwire series view",
            Pg("SELECT metric, labels, samples FROM series WHERE metric NOT LIKE 'traces%' ORDER BY metric"
                .into()),
            |t| {
                vec![
                    format!("{}_only_total", t.name),
                    "requests_total|{\"instance\":\"a:1\",\"job\":\"api\"}|41".into(),
                ]
            },
        ),
        case(
            "pgwire span_metrics view",
            Pg("SELECT service, span_name, calls, duration_sum_seconds FROM span_metrics ORDER BY service, span_name"
                .into()),
            svc,
        ),
        case(
            "pgwire promql() instant",
            Pg(format!(
                "SELECT labels, value FROM promql('requests_total', '{last_s}')"
            )),
            |t| vec![format!("|{}", t.value(40))],
        ),
        case(
            "pgwire promql() range",
            Pg(format!(
                "SELECT value FROM promql('requests_total', {}, {sql_end}, '150s') ORDER BY timestamp",
                sql_ts(base)
            )),
            values,
        ),
        case(
            "pgwire logql()",
            Pg(format!(
                "SELECT line FROM logql('{{app=~\".+\"}}', {sql_start}, {sql_end}, 100)"
            )),
            lines,
        ),
        case(
            "pgwire logql() metric",
            Pg(format!(
                "SELECT value FROM logql('sum(count_over_time({{app=\"shop\"}}[1h]))', {sql_start}, {sql_end}, interval '15 minutes') ORDER BY timestamp DESC LIMIT 1"
            )),
            |t| vec![format!("{}\n", t.shared_lines)],
        ),
        case(
            "pgwire traceql()",
            Pg(format!(
                "SELECT t.trace_id, s.duration_ns, s.attributes['owner'] AS owner \
                 FROM traceql('{{ .owner != \"\" }}', {sql_start}, {sql_end}) t \
                 JOIN spans s USING (trace_id, span_id) ORDER BY 1, 2"
            )),
            move |t| {
                let mut n = durations(t);
                n.push(t.own_trace.to_string());
                n.push(format!("|{}\n", t.name));
                n
            },
        ),
        case(
            "pgwire service_graph()",
            Pg(format!(
                "SELECT * FROM service_graph({sql_start}, {sql_end}) ORDER BY 1, 2"
            )),
            svc,
        ),
        case(
            "pgwire span_metrics()",
            Pg(format!(
                "SELECT service, calls, duration_sum_seconds FROM span_metrics({sql_start}, {sql_end}, interval '1 hour') ORDER BY 1"
            )),
            svc,
        ),
        case(
            "pgwire information_schema.tables",
            Pg("SELECT table_catalog, table_schema, table_name FROM information_schema.tables ORDER BY 1, 2, 3"
                .into()),
            catalog,
        ),
        case(
            "pgwire information_schema.schemata",
            Pg("SELECT catalog_name, schema_name FROM information_schema.schemata".into()),
            |_| vec!["public".into()],
        ),
        case(
            "pgwire pg_catalog listings",
            Pg("SELECT 'class', relname FROM pg_catalog.pg_class \
                UNION ALL SELECT 'namespace', nspname FROM pg_catalog.pg_namespace \
                UNION ALL SELECT 'database', datname FROM pg_catalog.pg_database \
                UNION ALL SELECT 'tables', tablename FROM pg_catalog.pg_tables"
                .into()),
            catalog,
        ),
        case(
            "pgwire labels naming a tenant",
            Pg("SELECT count(*) FROM logs WHERE labels['tenant'] = 'beta' OR labels['tenant'] = 'alpha' OR labels['X-Scope-OrgID'] IS NOT NULL"
                .into()),
            |_| vec!["0\n".into()],
        ),
        // Flight SQL.
        case(
            "flight logs",
            Flight("SELECT line FROM logs ORDER BY timestamp".into()),
            lines,
        ),
        case(
            "flight samples",
            Flight("SELECT value FROM samples WHERE metric = 'requests_total'".into()),
            values,
        ),
        case(
            "flight traces view and promql()",
            Flight(format!(
                "SELECT trace_id, root_service FROM traces \
                 UNION ALL SELECT CAST(value AS VARCHAR), 'promql' FROM promql('requests_total', '{last_s}')"
            )),
            |t| {
                vec![
                    format!("{}-svc", t.name),
                    t.own_trace.into(),
                    t.value(40).to_string(),
                ]
            },
        ),
        case(
            "flight information_schema",
            Flight("SELECT table_catalog, table_schema, table_name FROM information_schema.tables".into()),
            catalog,
        ),
        // Prometheus HTTP API.
        case(
            "prometheus query (head)",
            Http(format!("/api/v1/query?query=requests_total&time={last_s}")),
            |t| vec![format!("\"{}\"", t.value(40))],
        ),
        case(
            "prometheus query (blocks)",
            Http(format!("/api/v1/query?query=requests_total&time={block_s}")),
            |t| vec![format!("\"{}\"", t.value(10))],
        ),
        case(
            "prometheus query_range",
            Http(format!(
                "/api/v1/query_range?query=requests_total&start={}&end={last_s}&step=150",
                base / SECOND
            )),
            |t| {
                vec![
                    format!("\"{}\"", t.value(0)),
                    format!("\"{}\"", t.value(40)),
                ]
            },
        ),
        case(
            "prometheus query of the tenant-only series",
            Http(format!(
                "/api/v1/query?query={}&time={last_s}",
                urlencode(r#"{__name__=~".+_only_total"}"#)
            )),
            |t| vec![format!("{}_only_total", t.name)],
        ),
        case(
            "prometheus series",
            Http(format!(
                "/api/v1/series?match[]={}&start={start_s}&end={end_s}",
                urlencode(r#"{job=~".+"}"#)
            )),
            |t| vec![format!("{}_only_total", t.name), format!("{}-job", t.name)],
        ),
        case(
            "prometheus labels",
            Http(format!("/api/v1/labels?start={start_s}&end={end_s}")),
            |t| vec![format!("{}_label", t.name)],
        ),
        case(
            "prometheus label values",
            Http(format!(
                "/api/v1/label/job/values?start={start_s}&end={end_s}"
            )),
            |t| vec![format!("{}-job", t.name)],
        ),
        case(
            "prometheus metric names",
            Http(format!(
                "/api/v1/label/__name__/values?start={start_s}&end={end_s}"
            )),
            |t| vec![format!("{}_only_total", t.name)],
        ),
        case(
            "prometheus span metrics from the generator",
            Http(format!(
                "/api/v1/query?query={}",
                urlencode("sum by (service) (traces_spanmetrics_calls_total)")
            )),
            svc,
        ),
        case(
            "prometheus service graph from the generator",
            Http(format!(
                "/api/v1/query?query={}",
                urlencode("traces_service_graph_request_total")
            )),
            svc,
        ),
        case(
            "prometheus exemplars",
            Http(format!(
                "/api/v1/query_exemplars?query={}&start={start_s}&end={}",
                urlencode("traces_spanmetrics_latency_bucket"),
                chrono::Utc::now().timestamp() + 600
            )),
            |t| {
                let mut n = vec![t.own_trace.to_string()];
                n.extend(
                    t.durations_ms
                        .iter()
                        .map(|d| format!("\"value\":\"{}\"", *d as f64 / 1000.0)),
                );
                n
            },
        ),
        case(
            "prometheus recording rule output",
            Http(format!(
                "/api/v1/query?query={}",
                urlencode("job:requests:max")
            )),
            |t| vec![format!("\"{}\"", t.value(40))],
        ),
        // The ruler's API.
        case("rules", Http("/api/v1/rules".into()), |t| {
            vec![format!("{}:only:max", t.name)]
        }),
        case("alerts", Http("/api/v1/alerts".into()), |t| {
            vec![format!("value {}", t.value(40))]
        }),
        // Loki HTTP API.
        case(
            "loki query_range",
            Http(format!(
                "/loki/api/v1/query_range?query={}&{loki_range}",
                urlencode(r#"{app=~".+"}"#)
            )),
            lines,
        ),
        case(
            "loki metric query",
            Http(format!(
                "/loki/api/v1/query?query={}&time={end_ns}",
                urlencode(r#"sum(count_over_time({app="shop"}[1h]))"#)
            )),
            |t| vec![format!(",\"{}\"]", t.shared_lines)],
        ),
        case(
            "loki labels",
            Http(format!("/loki/api/v1/labels?start={start_ns}&end={end_ns}")),
            |t| vec![format!("{}_team", t.name)],
        ),
        case(
            "loki label values",
            Http(format!(
                "/loki/api/v1/label/app/values?start={start_ns}&end={end_ns}"
            )),
            |t| vec![format!("{}-only", t.name)],
        ),
        case(
            "loki series",
            Http(format!(
                "/loki/api/v1/series?match[]={}&start={start_ns}&end={end_ns}",
                urlencode(r#"{app=~".+"}"#)
            )),
            |t| vec![format!("{}-only", t.name)],
        ),
        case(
            "loki index stats",
            Http(format!(
                "/loki/api/v1/index/stats?query={}&start={start_ns}&end={end_ns}",
                urlencode(r#"{app=~".+"}"#)
            )),
            |t| vec![format!("\"entries\":{}", t.shared_lines + 1)],
        ),
        // Tempo HTTP API: the same trace ids, each tenant's own spans.
        case(
            "tempo trace by id (blocks)",
            Http(format!("/api/traces/{BLOCK_TRACE}")),
            name,
        ),
        case(
            "tempo trace by id (head), v2",
            Http(format!("/api/v2/traces/{HEAD_TRACE}")),
            name,
        ),
        case(
            "tempo search",
            Http(format!(
                "/api/search?q={}&{tempo_range}&spss=10",
                urlencode(r#"{ .owner != "" }"#)
            )),
            |t| vec![t.own_trace.to_string(), t.name.to_string()],
        ),
        case(
            "tempo search durations",
            Http(format!(
                "/api/search?q={}&{tempo_range}",
                urlencode(r#"{ resource.service.name = "frontend" }"#)
            )),
            |t| vec![format!("\"durationMs\":{}", t.durations_ms[0])],
        ),
        case(
            "tempo tag names",
            Http(format!("/api/search/tags?{tempo_range}")),
            |t| vec![format!("{}.only", t.name)],
        ),
        case(
            "tempo tag names v2",
            Http(format!("/api/v2/search/tags?{tempo_range}")),
            |t| vec![format!("{}.only", t.name)],
        ),
        case(
            "tempo tag values",
            Http(format!("/api/search/tag/owner/values?{tempo_range}")),
            name,
        ),
        case(
            "tempo tag values v2",
            Http(format!(
                "/api/v2/search/tag/resource.service.name/values?{tempo_range}"
            )),
            svc,
        ),
        case(
            "tempo metrics query_range",
            Http(format!(
                "/api/metrics/query_range?q={}&{tempo_range}&step=60s",
                urlencode("{ } | count_over_time() by (resource.service.name)")
            )),
            svc,
        ),
    ]
}

async fn ask(w: &mut World, t: &Tenant, ask: &Ask) -> String {
    let i = World::index(t);
    match ask {
        Ask::Pg(sql) => pg_text(&w.pg[i], sql)
            .await
            .unwrap_or_else(|e| panic!("pgwire as {}: {sql}: {e:?}", t.name)),
        Ask::Flight(sql) => flight_text(&mut w.flight[i], sql).await,
        Ask::Http(path) => {
            let (status, body) = http(&w.server, "GET", path, t.name, b"");
            assert_eq!(status, 200, "{path} as {}: {body}", t.name);
            body
        }
    }
}

/// Checks one answer: every needle of `t`, no needle only the other tenant
/// has, and not the other tenant's name.
fn check(case: &str, t: &Tenant, answer: &str, needles: &dyn Fn(&Tenant) -> Vec<String>) {
    let own = needles(t);
    for n in &own {
        assert!(
            answer.contains(n.as_str()),
            "{case} as {}: {n:?} missing from\n{answer}",
            t.name
        );
    }
    let o = other(t);
    for n in needles(o).iter().filter(|n| !own.contains(n)) {
        assert!(
            !answer.contains(n.as_str()),
            "{case} as {}: LEAK of {}'s {n:?} in\n{answer}",
            t.name,
            o.name
        );
    }
    assert!(
        !answer.contains(o.name),
        "{case} as {}: LEAK, {:?} appears in\n{answer}",
        t.name,
        o.name
    );
}

/// Writes both tenants' data (half flushed to blocks, half in the head),
/// waits for the metrics generator and the ruler, connects the clients.
async fn world() -> World {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    for t in TENANTS {
        let d = rules.join(t.name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("shared.yaml"), SHARED_RULES).unwrap();
        std::fs::write(
            d.join("only.yaml"),
            format!(
                "groups:\n  - name: only\n    rules:\n      - record: {0}:only:max\n        expr: max({0}_only_total)\n",
                t.name
            ),
        )
        .unwrap();
    }
    let data_dir = dir.path().join("data");
    let server = Server::start_with(&data_dir, &config(&rules));
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let base_ns = (now / (60 * SECOND)) * 60 * SECOND - 10 * 60 * SECOND;
    for t in TENANTS {
        write_block_half(&server, base_ns, t);
    }
    server.flush();
    for t in TENANTS {
        write_head_half(&server, base_ns, t);
    }
    // The generator's series (root spans become `user` edges after 1 s)
    // and the ruler's first evaluations over the head half.
    for t in TENANTS {
        let ready = |path: String, needle: String| {
            let server = &server;
            move || {
                let (status, body) = http(server, "GET", &path, t.name, b"");
                status == 200 && body.contains(&needle)
            }
        };
        wait_until(
            &format!("the service graph of {}", t.name),
            Duration::from_secs(60),
            ready(
                "/api/v1/query?query=traces_service_graph_request_total".into(),
                format!("{}-svc", t.name),
            ),
        );
        wait_until(
            &format!("the alert of {}", t.name),
            Duration::from_secs(60),
            ready("/api/v1/alerts".into(), format!("value {}", t.value(40))),
        );
        wait_until(
            &format!("the recording rule of {}", t.name),
            Duration::from_secs(60),
            ready(
                format!("/api/v1/query?query={}", urlencode("job:requests:max")),
                format!("\"{}\"", t.value(40)),
            ),
        );
    }
    let mut pg = vec![];
    let mut flight = vec![];
    for t in TENANTS {
        pg.push(
            pg_connect(&server, t.user, t.password, t.name)
                .await
                .unwrap_or_else(|e| panic!("pgwire login as {}: {e}", t.user)),
        );
        flight.push(flight_connect(&server, t).await);
    }
    World {
        server,
        base_ns,
        data_dir,
        pg,
        flight,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_interface_answers_each_tenant_with_only_its_own_data() {
    let mut w = world().await;

    // The matrix: every case as each tenant.
    for c in cases(&w) {
        for t in TENANTS {
            let answer = ask(&mut w, t, &c.ask).await;
            check(c.name, t, &answer, c.needles.as_ref());
        }
    }
    // A trace only the other tenant has is not found.
    for t in TENANTS {
        for path in ["/api/traces/", "/api/v2/traces/"] {
            let path = format!("{path}{}", other(t).own_trace);
            let (status, body) = http(&w.server, "GET", &path, t.name, b"");
            assert_eq!(status, 404, "{path} as {}: {body}", t.name);
        }
    }

    // Flight SQL metadata: the same objects for both, none naming a tenant.
    for t in TENANTS {
        let client = &mut w.flight[World::index(t)];
        let info = client
            .get_tables(CommandGetTables {
                include_schema: false,
                ..Default::default()
            })
            .await
            .unwrap();
        let tables = render(&flight_fetch(client, info).await);
        check("flight GetTables", t, &tables, &|_| {
            vec!["logs".into(), "samples".into(), "spans".into()]
        });
        let info = client
            .get_db_schemas(CommandGetDbSchemas::default())
            .await
            .unwrap();
        let schemas = render(&flight_fetch(client, info).await);
        check("flight GetDbSchemas", t, &schemas, &|_| {
            vec!["public".into()]
        });
    }

    sql_cannot_name_another_tenant(&w).await;
    flight_handles_and_tickets_stay_with_their_tenant(&mut w).await;
    writes_land_in_the_callers_tenant_only(&mut w).await;
}

/// A `tenant` column, qualified names, `SET`, another tenant's database,
/// DDL or `COPY` over the data directory: none reaches the other tenant.
async fn sql_cannot_name_another_tenant(w: &World) {
    let server = &w.server;
    for t in TENANTS {
        let o = other(t);
        let client = pg_connect(server, t.user, t.password, t.name)
            .await
            .unwrap();
        // There is no tenant column, and no catalog or schema per tenant.
        for sql in [
            format!("SELECT line FROM logs WHERE tenant = '{}'", o.name),
            format!("SELECT line FROM {}.logs", o.name),
            format!("SELECT line FROM {}.public.logs", o.name),
            format!("SELECT line FROM datafusion.{}.logs", o.name),
            format!("SELECT line FROM \"{}\".\"logs\"", o.name),
        ] {
            let e = pg_text(&client, &sql)
                .await
                .expect_err(&format!("{sql} as {} must fail", t.name));
            assert!(e.as_db_error().is_some(), "{sql}: {e:?}");
        }
        // Files of the data directory are not tables.
        let blocks = w.data_dir.display().to_string();
        for sql in [
            format!("CREATE EXTERNAL TABLE stolen STORED AS PARQUET LOCATION '{blocks}/'"),
            "CREATE TABLE mine AS SELECT * FROM logs".to_string(),
            "CREATE VIEW mine AS SELECT * FROM logs".to_string(),
        ] {
            let e = pg_text(&client, &sql)
                .await
                .expect_err(&format!("{sql} as {} must fail", t.name));
            assert_eq!(
                crate::common::sqlstate(&e),
                "0A000",
                "{sql} as {}: {e:?}",
                t.name
            );
        }
        let copy_target = w.data_dir.join(format!("copied-by-{}.parquet", t.name));
        let sql = format!(
            "COPY (SELECT line FROM logs) TO '{}' STORED AS PARQUET",
            copy_target.display()
        );
        let copied = pg_text(&client, &sql).await;
        assert!(
            copied.is_err() && !copy_target.exists(),
            "{sql} as {} wrote a file on the server: {copied:?}",
            t.name
        );

        // SET cannot move the session to another tenant.
        let setter = pg_connect(server, t.user, t.password, t.name)
            .await
            .unwrap();
        for sql in [
            format!("SET search_path = '{}'", o.name),
            format!("SET search_path TO {}, public", o.name),
            format!("SET x_scope_orgid = '{}'", o.name),
            format!("SET \"X-Scope-OrgID\" = '{}'", o.name),
            format!("SET tenant = '{}'", o.name),
            format!("SET ROLE \"{}\"", o.user),
            format!("SET SESSION AUTHORIZATION \"{}\"", o.user),
            format!("SET datafusion.catalog.default_schema = '{}'", o.name),
            format!("SET datafusion.catalog.default_catalog = '{}'", o.name),
            format!("SELECT set_config('search_path', '{}', false)", o.name),
        ] {
            let _ = setter.simple_query(&sql).await;
            for client in [&setter, &client] {
                let lines = pg_text(client, "SELECT line FROM logs ORDER BY timestamp")
                    .await
                    .unwrap_or_else(|e| panic!("after {sql} as {}: {e:?}", t.name));
                assert!(
                    lines.contains(&format!("{} line 1", t.name)) && !lines.contains(o.name),
                    "after {sql} as {}: {lines}",
                    t.name
                );
            }
        }

        // The options of the session a tenant's connections share are not
        // the connection's to change.
        for sql in [
            "SET datafusion.catalog.default_schema = 'public'",
            "SET datafusion.runtime.memory_limit = '100G'",
        ] {
            let e = setter.simple_query(sql).await.unwrap_err();
            assert_eq!(crate::common::sqlstate(&e), "0A000", "{sql}: {e:?}");
        }

        // Another tenant's database is refused, so is another user's password.
        let Err(e) = pg_connect(server, t.user, t.password, o.name).await else {
            panic!("another tenant's database is refused");
        };
        assert_eq!(crate::common::sqlstate(&e), "3D000", "{e:?}");
        let Err(e) = pg_connect(server, t.user, o.password, t.name).await else {
            panic!("another user's password is refused");
        };
        assert_eq!(crate::common::sqlstate(&e), "28P01", "{e:?}");

        // Flight SQL: the handshake cannot pick another user's tenant.
        let channel = Channel::from_shared(format!("http://{}", server.flight))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = FlightSqlServiceClient::new(channel);
        client.set_header("x-scope-orgid", o.name);
        let e = client.handshake(t.user, t.password).await.unwrap_err();
        assert!(
            e.to_string().contains("PermissionDenied")
                || e.to_string().contains("permission denied")
                || e.to_string().contains(t.name),
            "{e}"
        );
    }
}

/// A ticket or prepared-statement handle of one tenant, redeemed by the
/// other, gives the other its own data or nothing.
async fn flight_handles_and_tickets_stay_with_their_tenant(w: &mut World) {
    use arrow::array::StringArray;
    for t in TENANTS {
        let o = other(t);
        let (own, theirs) = if World::index(t) == 0 {
            let (a, b) = w.flight.split_at_mut(1);
            (&mut a[0], &mut b[0])
        } else {
            let (a, b) = w.flight.split_at_mut(1);
            (&mut b[0], &mut a[0])
        };
        // A statement ticket runs as whoever redeems it.
        let info = own
            .execute("SELECT line FROM logs".into(), None)
            .await
            .unwrap();
        let stolen = render(&flight_fetch(theirs, info).await);
        assert!(
            !stolen.contains(t.name) && stolen.contains(&format!("{} line 1", o.name)),
            "{}'s ticket redeemed by {}: {stolen}",
            t.name,
            o.name
        );
        // A prepared statement belongs to its tenant.
        let mut prepared = own
            .prepare(
                "SELECT line FROM logs WHERE line LIKE $1 ORDER BY timestamp".into(),
                None,
            )
            .await
            .unwrap();
        let pattern = RecordBatch::try_from_iter([(
            "$1",
            std::sync::Arc::new(StringArray::from(vec!["%line%"])) as _,
        )])
        .unwrap();
        prepared.set_parameters(pattern).unwrap();
        let info = prepared.execute().await.unwrap();
        let answer = render(&flight_fetch(own, info.clone()).await);
        check("flight prepared statement", t, &answer, &|t| {
            vec![format!("{} line 1", t.name), format!("{} line 3", t.name)]
        });
        // Its FlightInfo's ticket redeemed by the other tenant.
        let mut leaked = String::new();
        for endpoint in info.endpoint {
            if let Ok(stream) = theirs.do_get(endpoint.ticket.unwrap()).await
                && let Ok(batches) = stream.try_collect::<Vec<_>>().await
            {
                leaked.push_str(&render(&batches));
            }
        }
        assert!(
            !leaked.contains(t.name),
            "{}'s prepared statement run by {}: {leaked}",
            t.name,
            o.name
        );
        prepared.close().await.unwrap();
    }
}

/// Flight `DoPut` ingest, SQL `INSERT`, Loki tail and the deletion API act
/// on the caller's tenant only.
async fn writes_land_in_the_callers_tenant_only(w: &mut World) {
    use arrow::array::{Array, MapBuilder, StringArray, StringBuilder, TimestampNanosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use arrow_flight::sql::CommandStatementIngest;
    use std::sync::Arc;

    let at = w.base_ns + 400 * SECOND;
    for t in TENANTS {
        let i = World::index(t);
        // Flight bulk ingest.
        let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        labels.keys().append_value("app");
        labels.values().append_value("bulk");
        labels.append(true).unwrap();
        let labels = labels.finish();
        let schema = Schema::new(vec![
            Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                false,
            ),
            Field::new("labels", labels.data_type().clone(), false),
            Field::new("line", DataType::Utf8, false),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(TimestampNanosecondArray::from(vec![at])),
                Arc::new(labels),
                Arc::new(StringArray::from(vec![format!("{} bulk line", t.name)])),
            ],
        )
        .unwrap();
        let rows = w.flight[i]
            .execute_ingest(
                CommandStatementIngest {
                    table: "logs".into(),
                    ..Default::default()
                },
                futures::stream::iter(vec![Ok(batch)]),
            )
            .await
            .expect("Flight bulk ingest");
        assert_eq!(rows, 1);
        // SQL INSERT over pgwire.
        let inserted = w.pg[i]
            .execute(
                &format!(
                    "INSERT INTO logs (timestamp, labels, line) VALUES (to_timestamp_nanos({}), map(['app'], ['insert']), '{} inserted line')",
                    at + SECOND,
                    t.name
                ),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(inserted, 1);
    }
    for t in TENANTS {
        let i = World::index(t);
        let needles = |t: &Tenant| {
            vec![
                format!("{} bulk line", t.name),
                format!("{} inserted line", t.name),
            ]
        };
        let sql = "SELECT line FROM logs WHERE labels['app'] IN ('bulk', 'insert')";
        let answer = pg_text(&w.pg[i], sql).await.unwrap();
        check("writes over pgwire", t, &answer, &needles);
        let answer = flight_text(&mut w.flight[i], sql).await;
        check("writes over Flight SQL", t, &answer, &needles);
    }

    // Loki tail: the recent entries, then a new one, of the caller only.
    for t in TENANTS {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let o = other(t);
        let url = format!(
            "ws://{}/loki/api/v1/tail?query={}&start={}&limit=100",
            w.server.http,
            urlencode(r#"{app=~".+"}"#),
            w.base_ns - 60 * SECOND
        );
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("X-Scope-OrgID", t.name.parse().unwrap());
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let mut next = async || loop {
            let message = tokio::time::timeout(Duration::from_secs(20), socket.next())
                .await
                .expect("a tail message within 20 s")
                .expect("socket open")
                .unwrap();
            if let Message::Text(text) = message {
                return text.to_string();
            }
        };
        let first = next().await;
        check("loki tail", t, &first, &|t| {
            vec![
                format!("{} line 1", t.name),
                format!("{} only line", t.name),
            ]
        });
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
        for writer in [o, t] {
            push_logs(
                &w.server,
                writer,
                json!([{"stream": {"app": "live"},
                        "values": [[now.to_string(), format!("{} live line", writer.name)]]}]),
            );
        }
        let mut live = String::new();
        while !live.contains(&format!("{} live line", t.name)) {
            live.push_str(&next().await);
        }
        check("loki tail (live)", t, &live, &|t| {
            vec![format!("{} live line", t.name)]
        });
    }

    // The deletion API: alpha deletes its line 2; beta's line 2 stays.
    let query = urlencode(r#"{app="shop"} |= "line 2""#);
    let (start_s, end_s) = (w.base_ns / SECOND - 60, w.base_ns / SECOND + 900);
    let (status, body) = http(
        &w.server,
        "POST",
        &format!("/loki/api/v1/delete?query={query}&start={start_s}&end={end_s}"),
        ALPHA.name,
        b"",
    );
    assert_eq!(status, 204, "delete as alpha: {body}");
    for t in TENANTS {
        let (status, list) = http(&w.server, "GET", "/loki/api/v1/delete", t.name, b"");
        assert_eq!(status, 200, "{list}");
        let requests: Value = serde_json::from_str(&list).unwrap();
        let expected = usize::from(t.name == ALPHA.name);
        assert_eq!(
            requests.as_array().unwrap().len(),
            expected,
            "deletion requests listed for {}: {list}",
            t.name
        );
        let lines = pg_text(
            &w.pg[World::index(t)],
            "SELECT line FROM logs WHERE labels['app'] = 'shop' ORDER BY timestamp",
        )
        .await
        .unwrap();
        let line_2 = format!("{} line 2", t.name);
        assert_eq!(
            lines.contains(&line_2),
            t.name == BETA.name,
            "after alpha's deletion, {}'s lines: {lines}",
            t.name
        );
        assert!(lines.contains(&format!("{} line 1", t.name)), "{lines}");
    }
}
