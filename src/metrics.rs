//! Self-monitoring: counters, gauges and histograms kept in process
//! (`prometheus-client` metric families, labelled by name/value pairs in the
//! order given) and served on `GET /metrics` in the OpenMetrics text format.
//!
//! Components name their metrics with `&'static str`s and describe them
//! once ([`Metrics::describe`], [`Metrics::describe_histogram`]); a metric
//! used before it is described is registered as a counter (`add`) or a
//! gauge (`set`) without help text. Metrics owned by a component (the WAL's
//! fsync histogram) are shared with [`Metrics::register_histogram`].

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

use parking_lot::{Mutex, RwLock};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label name/value pairs, in the order they are rendered.
type LabelPairs = Vec<(String, String)>;

/// Buckets of latency histograms, in seconds: 1 ms to about 65 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 65.0,
];

/// Buckets of fsync latencies, in seconds: 50 µs to about 2 s.
pub const FSYNC_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.0,
];

#[derive(Clone)]
struct Buckets(&'static [f64]);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

#[derive(Clone)]
enum Metric {
    Counter(Family<LabelPairs, Counter<f64, AtomicU64>>),
    Gauge(Family<LabelPairs, Gauge<f64, AtomicU64>>),
    Histogram(Family<LabelPairs, Histogram, Buckets>),
}

#[derive(Debug, Default)]
pub struct Metrics {
    registry: Mutex<Registry>,
    metrics: RwLock<HashMap<&'static str, MetricHandle>>,
}

/// A registered family (Debug for [`Metrics`]).
#[derive(Clone)]
struct MetricHandle(Metric);

impl std::fmt::Debug for MetricHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Metric::Counter(_) => "counter",
            Metric::Gauge(_) => "gauge",
            Metric::Histogram(_) => "histogram",
        })
    }
}

fn pairs(labels: &[(&'static str, &str)]) -> LabelPairs {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Metrics {
    /// Declares a metric's help text and type (`counter` or `gauge`).
    /// A counter's name ends in `_total`.
    pub fn describe(&self, name: &'static str, kind: &'static str, help: &'static str) {
        let metric = match kind {
            "counter" => Metric::Counter(Family::default()),
            _ => Metric::Gauge(Family::default()),
        };
        self.register(name, help, metric);
    }

    /// Declares a histogram (observed values in seconds or bytes) with its buckets.
    pub fn describe_histogram(
        &self,
        name: &'static str,
        help: &'static str,
        buckets: &'static [f64],
    ) {
        let family = Family::new_with_constructor(Buckets(buckets));
        self.register(name, help, Metric::Histogram(family));
    }

    /// Serves a histogram a component owns (unlabelled) under `name`.
    pub fn register_histogram(&self, name: &'static str, help: &'static str, histogram: Histogram) {
        let help = help.trim_end_matches('.');
        self.registry.lock().register(name, help, histogram);
    }

    /// Serves a counter a component owns (unlabelled) under `name` (ending in `_total`).
    pub fn register_counter(&self, name: &'static str, help: &'static str, counter: Counter) {
        let (name, help) = (name.trim_end_matches("_total"), help.trim_end_matches('.'));
        self.registry.lock().register(name, help, counter);
    }

    /// A timer that records, when dropped, how long a query took in
    /// [`QUERY_DURATION`] by interface and language. Keep it with the
    /// query's result stream to time the whole answer.
    pub fn query_timer(
        self: &std::sync::Arc<Self>,
        interface: &'static str,
        language: &'static str,
    ) -> QueryTimer {
        QueryTimer {
            metrics: self.clone(),
            labels: [("interface", interface), ("language", language)],
            started: std::time::Instant::now(),
        }
    }

    /// Registers `metric` once; later registrations of the name are ignored.
    /// (The encoder ends help texts with a period itself.)
    fn register(&self, name: &'static str, help: &'static str, metric: Metric) -> Metric {
        let help = help.trim_end_matches('.');
        let mut metrics = self.metrics.write();
        if let Some(existing) = metrics.get(name) {
            return existing.0.clone();
        }
        let mut registry = self.registry.lock();
        match &metric {
            // The encoder appends `_total` to counters.
            Metric::Counter(f) => {
                registry.register(name.trim_end_matches("_total"), help, f.clone())
            }
            Metric::Gauge(f) => registry.register(name, help, f.clone()),
            Metric::Histogram(f) => registry.register(name, help, f.clone()),
        }
        metrics.insert(name, MetricHandle(metric.clone()));
        metric
    }

    fn get(&self, name: &'static str) -> Option<Metric> {
        self.metrics.read().get(name).map(|h| h.0.clone())
    }

    /// Adds `v` to a counter.
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], v: f64) {
        let metric = match self.get(name) {
            Some(m) => m,
            None => self.register(name, "", Metric::Counter(Family::default())),
        };
        match metric {
            Metric::Counter(f) => {
                f.get_or_create(&pairs(labels)).inc_by(v);
            }
            Metric::Gauge(f) => {
                f.get_or_create(&pairs(labels)).inc_by(v);
            }
            Metric::Histogram(f) => f.get_or_create(&pairs(labels)).observe(v),
        }
    }

    /// Sets a gauge.
    pub fn set(&self, name: &'static str, labels: &[(&'static str, &str)], v: f64) {
        let metric = match self.get(name) {
            Some(m) => m,
            None => self.register(name, "", Metric::Gauge(Family::default())),
        };
        match metric {
            Metric::Gauge(f) => {
                f.get_or_create(&pairs(labels)).set(v);
            }
            _ => tracing::warn!("metric {name} is not a gauge; not set"),
        }
    }

    /// Records one observation in a histogram described with [`Metrics::describe_histogram`].
    pub fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], v: f64) {
        match self.get(name) {
            Some(Metric::Histogram(f)) => f.get_or_create(&pairs(labels)).observe(v),
            _ => tracing::warn!("metric {name} is not a described histogram; not observed"),
        }
    }

    /// The current value of a counter or gauge series (0 if never set).
    pub fn value(&self, name: &'static str, labels: &[(&'static str, &str)]) -> f64 {
        match self.get(name) {
            Some(Metric::Counter(f)) => f.get(&pairs(labels)).map_or(0.0, |c| c.get()),
            Some(Metric::Gauge(f)) => f.get(&pairs(labels)).map_or(0.0, |g| g.get()),
            _ => 0.0,
        }
    }

    /// Everything in the OpenMetrics text format (ends with `# EOF`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry.lock()).expect("writing to a String cannot fail");
        out
    }
}

/// Seconds a query took, from its arrival to its last row sent.
pub const QUERY_DURATION: &str = "o11ydb_query_duration_seconds";

/// See [`Metrics::query_timer`].
pub struct QueryTimer {
    metrics: std::sync::Arc<Metrics>,
    labels: [(&'static str, &'static str); 2],
    started: std::time::Instant,
}

impl Drop for QueryTimer {
    fn drop(&mut self) {
        let seconds = self.started.elapsed().as_secs_f64();
        self.metrics.observe(QUERY_DURATION, &self.labels, seconds);
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let m = Metrics::default();
        m.describe("o11ydb_x_total", "counter", "Things.");
        m.add("o11ydb_x_total", &[("tenant", "a\"b")], 2.0);
        m.add("o11ydb_x_total", &[("tenant", "a\"b")], 1.0);
        m.set("o11ydb_up", &[], 1.0);
        m.describe_histogram("o11ydb_wait_seconds", "Waits.", &[0.1, 1.0]);
        m.observe("o11ydb_wait_seconds", &[("kind", "x")], 0.5);
        let shared = Histogram::new([0.01]);
        m.register_histogram("o11ydb_shared_seconds", "Shared.", shared.clone());
        shared.observe(0.001);
        let text = m.render();
        assert!(text.contains("# TYPE o11ydb_x counter"), "{text}");
        assert!(text.contains("# HELP o11ydb_x Things."), "{text}");
        assert!(
            text.contains("o11ydb_x_total{tenant=\"a\\\"b\"} 3.0"),
            "{text}"
        );
        assert!(text.contains("o11ydb_up 1.0"), "{text}");
        assert!(
            text.contains("o11ydb_wait_seconds_bucket{le=\"1.0\",kind=\"x\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("o11ydb_wait_seconds_count{kind=\"x\"} 1"),
            "{text}"
        );
        assert!(text.contains("o11ydb_shared_seconds_count 1"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(m.value("o11ydb_x_total", &[("tenant", "a\"b")]), 3.0);
        assert_eq!(m.value("o11ydb_up", &[]), 1.0);
    }
}
