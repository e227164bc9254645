//! The service-graph processor, after Tempo's: client and producer spans
//! open a half edge keyed by `(trace id, their span id)`; server and
//! consumer spans open or complete the one keyed by `(trace id, their
//! parent span id)`. A completed edge counts one request between the two
//! services. A client span naming a database (`db.name` or `db.system` plus
//! a name from `peer.service`, `server.address`, `network.peer.address` or
//! `db.name`) completes at once as a `database` edge. Half edges wait
//! `wait`; when one expires, a server root span becomes a request from the
//! virtual node `user` and a client span naming a peer (the
//! `peer_attributes`, in order) a request to that virtual node, both with
//! `connection_type="virtual_node"`; other unpaired spans are dropped. At
//! most `max_items` half edges wait; spans beyond are dropped and counted.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::registry::Registry;
use super::spans::Span;

pub const REQUEST_TOTAL: &str = "traces_service_graph_request_total";
pub const REQUEST_FAILED_TOTAL: &str = "traces_service_graph_request_failed_total";
pub const SERVER_SECONDS: &str = "traces_service_graph_request_server_seconds";
pub const CLIENT_SECONDS: &str = "traces_service_graph_request_client_seconds";

/// Tempo's `prometheus.ExponentialBuckets(0.1, 2, 8)`: 0.1 s to 12.8 s.
pub fn default_buckets() -> Vec<f64> {
    (0..8).map(|i| 0.1 * f64::powi(2.0, i)).collect()
}

/// Tempo's default `peer_attributes`, in precedence order.
pub fn default_peer_attributes() -> Vec<String> {
    ["peer.service", "db.name", "db.system"]
        .map(String::from)
        .to_vec()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ConnectionType {
    Direct,
    MessagingSystem,
    Database,
    VirtualNode,
}

impl ConnectionType {
    fn label(self) -> &'static str {
        match self {
            ConnectionType::Direct => "",
            ConnectionType::MessagingSystem => "messaging_system",
            ConnectionType::Database => "database",
            ConnectionType::VirtualNode => "virtual_node",
        }
    }
}

#[derive(Debug)]
struct Edge {
    seq: u64,
    trace_id: String,
    /// The server side's key had no parent span: a root span.
    root: bool,
    connection_type: ConnectionType,
    client: String,
    server: String,
    client_seconds: f64,
    server_seconds: f64,
    failed: bool,
    peer_node: String,
    expires: Instant,
}

impl Edge {
    fn complete(&self) -> bool {
        !self.client.is_empty() && !self.server.is_empty()
    }
}

/// What happened to the spans of one batch.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Outcome {
    pub completed: u64,
    /// Spans refused because `max_items` half edges were waiting.
    pub dropped: u64,
    /// Half edges that expired without their other side (virtual-node
    /// edges included).
    pub expired: u64,
}

#[derive(Debug)]
pub struct ServiceGraphs {
    wait: Duration,
    max_items: usize,
    peer_attributes: Vec<String>,
    buckets: Arc<[f64]>,
    edges: HashMap<(String, String), Edge>,
    /// Keys in insertion (and so expiry) order; entries whose `seq` no
    /// longer matches were completed.
    order: VecDeque<(u64, (String, String))>,
    next_seq: u64,
}

impl ServiceGraphs {
    pub fn new(
        wait: Duration,
        max_items: usize,
        peer_attributes: Vec<String>,
        buckets: Arc<[f64]>,
    ) -> Self {
        ServiceGraphs {
            wait,
            max_items,
            peer_attributes,
            buckets,
            edges: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
        }
    }

    pub fn waiting(&self) -> usize {
        self.edges.len()
    }

    pub fn process(
        &mut self,
        registry: &mut Registry,
        span: &Span,
        now: Instant,
        now_ms: i64,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        let (key, client_side, messaging) = match span.kind.as_str() {
            "client" => ((span.trace_id.clone(), span.span_id.clone()), true, false),
            "producer" => ((span.trace_id.clone(), span.span_id.clone()), true, true),
            "server" | "consumer" => (
                (
                    span.trace_id.clone(),
                    span.parent_span_id.clone().unwrap_or_default(),
                ),
                false,
                span.kind == "consumer",
            ),
            _ => return outcome,
        };
        let connection_type = if messaging {
            ConnectionType::MessagingSystem
        } else {
            ConnectionType::Direct
        };
        let failed = span.status_code == "error";
        let update = |e: &mut Edge, peer_attributes: &[String]| {
            e.trace_id = span.trace_id.clone();
            e.connection_type = connection_type;
            e.failed |= failed;
            if let Some(peer) = peer_attributes.iter().find_map(|k| span.span_attribute(k)) {
                e.peer_node = peer.to_string();
            }
            if client_side {
                e.client = span.service.clone();
                e.client_seconds = span.duration_seconds();
                database_request(e, span);
            } else {
                e.server = span.service.clone();
                e.server_seconds = span.duration_seconds();
            }
        };
        if let Some(e) = self.edges.get_mut(&key) {
            update(e, &self.peer_attributes);
            if e.complete() {
                let e = self.edges.remove(&key).expect("present");
                self.record(registry, &e, now_ms);
                outcome.completed += 1;
            }
            return outcome;
        }
        let mut e = Edge {
            seq: self.next_seq,
            trace_id: String::new(),
            root: !client_side && span.parent_span_id.is_none(),
            connection_type,
            client: String::new(),
            server: String::new(),
            client_seconds: 0.0,
            server_seconds: 0.0,
            failed: false,
            peer_node: String::new(),
            expires: now + self.wait,
        };
        update(&mut e, &self.peer_attributes);
        if e.complete() {
            self.record(registry, &e, now_ms);
            outcome.completed += 1;
            return outcome;
        }
        if self.edges.len() >= self.max_items {
            outcome.dropped += 1;
            return outcome;
        }
        self.next_seq += 1;
        self.order.push_back((e.seq, key.clone()));
        self.edges.insert(key, e);
        outcome
    }

    /// Expires half edges whose wait is over, recording the virtual-node
    /// edges among them.
    pub fn expire(&mut self, registry: &mut Registry, now: Instant, now_ms: i64) -> Outcome {
        let mut outcome = Outcome::default();
        while let Some((seq, key)) = self.order.front() {
            let Some(e) = self.edges.get(key) else {
                self.order.pop_front();
                continue;
            };
            if e.seq != *seq {
                self.order.pop_front();
                continue;
            }
            if e.expires > now {
                break;
            }
            let (_, key) = self.order.pop_front().expect("front");
            let mut e = self.edges.remove(&key).expect("present");
            outcome.expired += 1;
            e.connection_type = ConnectionType::VirtualNode;
            if e.client.is_empty() {
                if e.root {
                    e.client = "user".into();
                    self.record(registry, &e, now_ms);
                }
            } else if e.server.is_empty() && !e.peer_node.is_empty() {
                e.server = std::mem::take(&mut e.peer_node);
                self.record(registry, &e, now_ms);
            }
        }
        outcome
    }

    fn record(&self, registry: &mut Registry, e: &Edge, now_ms: i64) {
        let mut labels = vec![
            ("client".to_string(), e.client.clone()),
            ("server".to_string(), e.server.clone()),
        ];
        // An empty label value is no label in Prometheus.
        if !e.connection_type.label().is_empty() {
            labels.push((
                "connection_type".to_string(),
                e.connection_type.label().to_string(),
            ));
        }
        registry.add(REQUEST_TOTAL, labels.clone(), 1.0, now_ms);
        if e.failed {
            registry.add(REQUEST_FAILED_TOTAL, labels.clone(), 1.0, now_ms);
        }
        registry.observe(
            SERVER_SECONDS,
            labels.clone(),
            &self.buckets,
            e.server_seconds,
            &e.trace_id,
            now_ms,
        );
        registry.observe(
            CLIENT_SECONDS,
            labels,
            &self.buckets,
            e.client_seconds,
            &e.trace_id,
            now_ms,
        );
    }
}

/// Tempo's `upsertDatabaseRequest`: a client span with `db.name` or
/// `db.system` is a database request; the database is named by
/// `peer.service`, `server.address`, `network.peer.address[:port]` or
/// `db.name`, in that order, and its latency is the client span's.
fn database_request(e: &mut Edge, span: &Span) {
    let db_name = span.attribute("db.name");
    if db_name.is_none() && span.attribute("db.system").is_none() {
        return;
    }
    e.connection_type = ConnectionType::Database;
    e.server_seconds = span.duration_seconds();
    let name = span
        .attribute("peer.service")
        .or_else(|| span.attribute("server.address"))
        .map(str::to_string)
        .or_else(|| {
            span.attribute("network.peer.address").map(|host| {
                match span.attribute("network.peer.port") {
                    Some(port) => format!("{host}:{port}"),
                    None => host.to_string(),
                }
            })
        })
        .or_else(|| db_name.map(str::to_string));
    if let Some(name) = name {
        e.server = name;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::AsArray;
    use arrow::datatypes::Float64Type;

    use super::*;
    use crate::model::builders::SpansBuilder;
    use crate::model::labels::map_row;
    use crate::query::span_functions::test_spans::{TRACE_A_ID, shop};

    /// `metric{labels}` → value, from one collection.
    fn collect(registry: &mut Registry) -> BTreeMap<String, f64> {
        let c = registry.collect(10_000, 0);
        let b = &c.samples;
        let (metrics, labels, values) = (
            b.column(1).as_string::<i32>(),
            b.column(2).as_map(),
            b.column(3).as_primitive::<Float64Type>(),
        );
        let mut out = BTreeMap::new();
        for row in 0..b.num_rows() {
            let pairs: Vec<String> = map_row(labels, row)
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            // The last sample of a series wins (a new series starts with 0).
            out.insert(
                format!("{}{{{}}}", metrics.value(row), pairs.join(",")),
                values.value(row),
            );
        }
        out
    }

    #[test]
    fn edges_pair_expire_into_virtual_nodes_and_count_failures() {
        let mut b = SpansBuilder::new();
        for row in shop(0) {
            b.push(row);
        }
        let spans = crate::ingest::metrics_generator::spans::read(&b.finish());
        let mut graphs = ServiceGraphs::new(
            Duration::from_secs(10),
            100,
            default_peer_attributes(),
            default_buckets().into(),
        );
        let mut registry = Registry::default();
        let t0 = Instant::now();
        let mut completed = 0;
        for span in &spans {
            completed += graphs.process(&mut registry, span, t0, 0).completed;
        }
        // frontend→checkout twice, checkout→orders, checkout→shipping.
        assert_eq!(completed, 4);
        // Waiting: two root servers, redis and payments-api clients.
        assert_eq!(graphs.waiting(), 4);
        assert_eq!(graphs.expire(&mut registry, t0, 0).expired, 0);
        let out = graphs.expire(&mut registry, t0 + Duration::from_secs(10), 0);
        assert_eq!(out.expired, 4);
        let got = collect(&mut registry);
        let total = |labels: &str| got[&format!("{REQUEST_TOTAL}{{{labels}}}")];
        assert_eq!(total("client=frontend,server=checkout"), 2.0);
        assert_eq!(
            total("client=user,connection_type=virtual_node,server=frontend"),
            2.0
        );
        assert_eq!(
            total("client=checkout,connection_type=database,server=orders"),
            1.0
        );
        assert_eq!(
            total("client=checkout,connection_type=messaging_system,server=shipping"),
            1.0
        );
        assert_eq!(
            total("client=checkout,connection_type=virtual_node,server=redis"),
            1.0
        );
        assert_eq!(
            total("client=checkout,connection_type=virtual_node,server=payments-api"),
            1.0
        );
        let failed: Vec<&String> = got
            .keys()
            .filter(|k| k.starts_with(REQUEST_FAILED_TOTAL))
            .collect();
        assert_eq!(
            failed,
            [
                "traces_service_graph_request_failed_total{client=checkout,connection_type=virtual_node,server=payments-api}",
                "traces_service_graph_request_failed_total{client=frontend,server=checkout}"
            ]
        );
        // Server latencies 0.07 s and 0.14 s: both in the first two buckets.
        assert_eq!(
            got["traces_service_graph_request_server_seconds_bucket{client=frontend,le=0.1,server=checkout}"],
            1.0
        );
        assert_eq!(
            got["traces_service_graph_request_server_seconds_bucket{client=frontend,le=0.2,server=checkout}"],
            2.0
        );
        assert_eq!(
            got["traces_service_graph_request_server_seconds_bucket{client=frontend,le=+Inf,server=checkout}"],
            2.0
        );
        assert!(
            (got["traces_service_graph_request_server_seconds_sum{client=frontend,server=checkout}"]
                - 0.21)
                .abs() < 1e-9
        );
        assert_eq!(TRACE_A_ID.len(), 32);
    }

    #[test]
    fn max_items_drops_spans() {
        let mut b = SpansBuilder::new();
        for row in shop(0) {
            b.push(row);
        }
        let spans = crate::ingest::metrics_generator::spans::read(&b.finish());
        let mut graphs =
            ServiceGraphs::new(Duration::from_secs(10), 1, vec![], default_buckets().into());
        let mut registry = Registry::default();
        let dropped: u64 = spans
            .iter()
            .map(|s| graphs.process(&mut registry, s, Instant::now(), 0).dropped)
            .sum();
        assert!(dropped > 0);
        assert_eq!(graphs.waiting(), 1);
    }
}
