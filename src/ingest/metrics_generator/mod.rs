//! The metrics generator: Tempo's span-metrics and service-graph processors
//! inside o11ydb. Spans the distributor accepted are offered to a
//! [`SpanSink`] — a bounded channel, so ingest never waits on it (a full
//! queue drops the batch and counts it) — and one background task feeds
//! them to the processors enabled for their tenant
//! (`metrics_generator_processors` in `[limits]` / `[overrides.<tenant>]`).
//! Every `collection_interval` the task writes each tenant's cumulative
//! series as samples through the distributor into that tenant's `samples`
//! table, and their exemplars (trace ids) into the in-memory
//! [`ExemplarStore`] that `/api/v1/query_exemplars` reads.

pub mod exemplars;
pub mod registry;
pub mod service_graphs;
pub mod span_metrics;
pub mod spans;

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use self::exemplars::ExemplarStore;
use self::registry::Registry;
use self::service_graphs::ServiceGraphs;
use super::distributor::{Decoded, Discards, Distributor, PushError};
use super::limits::LimitsRegistry;
use crate::config::de_duration;
use crate::metrics::Metrics;
use crate::model::Signal;

/// A processor a tenant can have run on its spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum Processor {
    #[serde(rename = "service-graphs")]
    ServiceGraphs,
    #[serde(rename = "span-metrics")]
    SpanMetrics,
}

/// `[metrics_generator]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Whether the generator runs at all (`serve --demo` turns it on).
    pub enabled: bool,
    /// How often the series are written as samples (Tempo's
    /// `collection_interval`).
    #[serde(deserialize_with = "de_duration")]
    pub collection_interval: Duration,
    /// Series not updated for this long are no longer written (Tempo's
    /// `stale_duration`).
    #[serde(deserialize_with = "de_duration")]
    pub stale_duration: Duration,
    /// Span batches waiting for the generator; beyond, batches are dropped
    /// (`o11ydb_metrics_generator_dropped_batches_total`).
    pub queue_batches: usize,
    /// Exemplars kept per series, in memory only (0: none).
    pub max_exemplars_per_series: usize,
    /// Series with exemplars kept per tenant.
    pub max_exemplar_series: usize,
    pub service_graphs: ServiceGraphsConfig,
    pub span_metrics: SpanMetricsConfig,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            enabled: false,
            collection_interval: Duration::from_secs(15),
            stale_duration: Duration::from_secs(15 * 60),
            queue_batches: 1024,
            max_exemplars_per_series: 10,
            max_exemplar_series: 100_000,
            service_graphs: ServiceGraphsConfig::default(),
            span_metrics: SpanMetricsConfig::default(),
        }
    }
}

/// `[metrics_generator.service_graphs]`, Tempo's names and defaults.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceGraphsConfig {
    /// How long a half edge waits for its other side.
    #[serde(deserialize_with = "de_duration")]
    pub wait: Duration,
    /// Most half edges waiting per tenant.
    pub max_items: usize,
    /// Latency buckets, seconds.
    pub histogram_buckets: Vec<f64>,
    /// Span attributes naming a virtual server, in precedence order.
    pub peer_attributes: Vec<String>,
}

impl Default for ServiceGraphsConfig {
    fn default() -> Self {
        ServiceGraphsConfig {
            wait: Duration::from_secs(10),
            max_items: 10_000,
            histogram_buckets: service_graphs::default_buckets(),
            peer_attributes: service_graphs::default_peer_attributes(),
        }
    }
}

/// `[metrics_generator.span_metrics]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SpanMetricsConfig {
    /// Latency buckets, seconds.
    pub histogram_buckets: Vec<f64>,
}

impl Default for SpanMetricsConfig {
    fn default() -> Self {
        SpanMetricsConfig {
            histogram_buckets: span_metrics::default_buckets(),
        }
    }
}

impl GeneratorConfig {
    /// Refuses settings the generator cannot run with.
    pub fn validate(&self) -> Result<(), String> {
        for (name, buckets) in [
            ("service_graphs", &self.service_graphs.histogram_buckets),
            ("span_metrics", &self.span_metrics.histogram_buckets),
        ] {
            if buckets.is_empty() || buckets.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!(
                    "metrics_generator.{name}.histogram_buckets must be increasing and not empty, got {buckets:?}"
                ));
            }
        }
        if self.collection_interval.is_zero() {
            return Err("metrics_generator.collection_interval must be positive".into());
        }
        Ok(())
    }
}

/// Where the distributor offers accepted spans.
#[derive(Debug, Clone)]
pub struct SpanSink {
    tx: mpsc::Sender<(String, RecordBatch)>,
    limits: Arc<LimitsRegistry>,
    metrics: Arc<Metrics>,
}

const DROPPED_BATCHES: &str = "o11ydb_metrics_generator_dropped_batches_total";
const DROPPED_SPANS: &str = "o11ydb_metrics_generator_service_graph_dropped_spans_total";
const EXPIRED_EDGES: &str = "o11ydb_metrics_generator_service_graph_expired_edges_total";
const WRITE_FAILURES: &str = "o11ydb_metrics_generator_write_failures_total";
const ACTIVE_SERIES: &str = "o11ydb_metrics_generator_active_series";

impl SpanSink {
    /// Hands a batch of accepted spans to the generator if the tenant has a
    /// processor; never waits.
    pub fn offer(&self, tenant: &str, batch: &RecordBatch) {
        if batch.num_rows() == 0
            || self
                .limits
                .get(tenant)
                .metrics_generator_processors
                .is_empty()
        {
            return;
        }
        if self
            .tx
            .try_send((tenant.to_string(), batch.clone()))
            .is_err()
        {
            self.metrics
                .add(DROPPED_BATCHES, &[("tenant", tenant)], 1.0);
        }
    }
}

/// One tenant's processors and series.
struct TenantState {
    registry: Registry,
    graphs: ServiceGraphs,
}

/// Starts the generator task; returns the sink the distributor offers
/// spans to. The task ends when every sink is dropped.
pub fn start(
    config: &GeneratorConfig,
    distributor: Weak<Distributor>,
    limits: Arc<LimitsRegistry>,
    metrics: Arc<Metrics>,
    exemplars: Arc<ExemplarStore>,
) -> SpanSink {
    metrics.describe(
        DROPPED_BATCHES,
        "counter",
        "Span batches the metrics generator's full queue refused, per tenant.",
    );
    metrics.describe(
        DROPPED_SPANS,
        "counter",
        "Spans the service-graph processor dropped because max_items half edges were waiting.",
    );
    metrics.describe(
        EXPIRED_EDGES,
        "counter",
        "Service-graph half edges that expired before their other side came (virtual-node edges included).",
    );
    metrics.describe(
        WRITE_FAILURES,
        "counter",
        "Collections whose samples the distributor refused, per tenant.",
    );
    metrics.describe(
        ACTIVE_SERIES,
        "gauge",
        "Series the metrics generator writes, per tenant.",
    );
    let (tx, rx) = mpsc::channel(config.queue_batches.max(1));
    let task = Task {
        config: config.clone(),
        span_buckets: config.span_metrics.histogram_buckets.clone().into(),
        graph_buckets: config.service_graphs.histogram_buckets.clone().into(),
        distributor,
        limits: limits.clone(),
        metrics: metrics.clone(),
        exemplars,
        tenants: HashMap::new(),
    };
    tokio::spawn(task.run(rx));
    SpanSink {
        tx,
        limits,
        metrics,
    }
}

struct Task {
    config: GeneratorConfig,
    span_buckets: Arc<[f64]>,
    graph_buckets: Arc<[f64]>,
    distributor: Weak<Distributor>,
    limits: Arc<LimitsRegistry>,
    metrics: Arc<Metrics>,
    exemplars: Arc<ExemplarStore>,
    tenants: HashMap<String, TenantState>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<(String, RecordBatch)>) {
        let mut collect = tokio::time::interval(self.config.collection_interval);
        collect.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        collect.tick().await;
        // Tempo sweeps expired half edges every 2 s; a shorter wait gets a
        // sweep at least as often as the edges expire.
        let sweep_every = self
            .config
            .service_graphs
            .wait
            .min(Duration::from_secs(2))
            .max(Duration::from_millis(50));
        let mut sweep = tokio::time::interval(sweep_every);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                received = rx.recv() => match received {
                    Some((tenant, batch)) => self.consume(&tenant, &batch),
                    None => return,
                },
                _ = sweep.tick() => self.expire(),
                _ = collect.tick() => {
                    self.expire();
                    self.collect().await;
                }
            }
        }
    }

    fn state(&mut self, tenant: &str) -> &mut TenantState {
        let config = &self.config.service_graphs;
        let buckets = &self.graph_buckets;
        self.tenants
            .entry(tenant.to_string())
            .or_insert_with(|| TenantState {
                registry: Registry::default(),
                graphs: ServiceGraphs::new(
                    config.wait,
                    config.max_items,
                    config.peer_attributes.clone(),
                    buckets.clone(),
                ),
            })
    }

    fn consume(&mut self, tenant: &str, batch: &RecordBatch) {
        let processors = self.limits.get(tenant).metrics_generator_processors.clone();
        if processors.is_empty() {
            return;
        }
        let span_metrics = processors.contains(&Processor::SpanMetrics);
        let graphs = processors.contains(&Processor::ServiceGraphs);
        let span_buckets = self.span_buckets.clone();
        let (now, now_ms) = (Instant::now(), now_ms());
        let state = self.state(tenant);
        let mut dropped = 0;
        for span in spans::read(batch) {
            if span_metrics {
                span_metrics::process(&mut state.registry, &span_buckets, &span, now_ms);
            }
            if graphs {
                dropped += state
                    .graphs
                    .process(&mut state.registry, &span, now, now_ms)
                    .dropped;
            }
        }
        if dropped > 0 {
            self.metrics
                .add(DROPPED_SPANS, &[("tenant", tenant)], dropped as f64);
        }
    }

    fn expire(&mut self) {
        let (now, now_ms) = (Instant::now(), now_ms());
        for (tenant, state) in &mut self.tenants {
            if state.graphs.waiting() == 0 {
                continue;
            }
            let outcome = state.graphs.expire(&mut state.registry, now, now_ms);
            if outcome.expired > 0 {
                self.metrics
                    .add(EXPIRED_EDGES, &[("tenant", tenant)], outcome.expired as f64);
            }
        }
    }

    /// Writes every tenant's series at one timestamp.
    async fn collect(&mut self) {
        let Some(distributor) = self.distributor.upgrade() else {
            return;
        };
        let now = now_ms();
        let stale_before = now - self.config.stale_duration.as_millis() as i64;
        let mut idle = Vec::new();
        for (tenant, state) in &mut self.tenants {
            let collected = state.registry.collect(now, stale_before);
            self.metrics.set(
                ACTIVE_SERIES,
                &[("tenant", tenant)],
                collected.series as f64,
            );
            if collected.series == 0 {
                if state.graphs.waiting() == 0 {
                    idle.push(tenant.clone());
                }
                continue;
            }
            self.exemplars.add(tenant, collected.exemplars, now);
            let decoded = Decoded::costed_by_rows(
                Signal::Samples,
                vec![collected.samples],
                Discards::default(),
            );
            match distributor.push(tenant, decoded).await {
                Ok(_) => {}
                Err(e) => {
                    self.metrics.add(WRITE_FAILURES, &[("tenant", tenant)], 1.0);
                    match e {
                        PushError::Invalid { .. } => {
                            tracing::warn!(tenant, "metrics generator: some samples refused: {e}")
                        }
                        _ => tracing::warn!(tenant, "metrics generator: samples not written: {e}"),
                    }
                }
            }
        }
        for tenant in idle {
            self.tenants.remove(&tenant);
        }
    }
}
