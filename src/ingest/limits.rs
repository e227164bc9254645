//! Per-tenant ingest and query limits, named after Mimir's and Loki's `limits_config`.
//!
//! Defaults come from the `[limits]` section of the config file and each
//! tenant may override any of them under `[overrides.<tenant>]`. Both are
//! re-read from the config file while running (see [`LimitsRegistry::reload`]),
//! so a limit can be raised without a restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use serde::Deserialize;

use super::metrics_generator::Processor;
use crate::config::{de_duration, de_size};
use crate::model::Signal;

/// The limits of one tenant.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Samples per second a tenant may push (Mimir `ingestion_rate`).
    pub ingestion_rate: f64,
    /// Samples a single burst may hold (Mimir `ingestion_burst_size`).
    pub ingestion_burst_size: u64,
    /// Log line bytes per second, in MB (Loki `ingestion_rate_mb`).
    pub logs_ingestion_rate_mb: f64,
    /// Log line bytes a burst may hold, in MB (Loki `ingestion_burst_size_mb`).
    pub logs_ingestion_burst_size_mb: f64,
    /// Spans per second.
    pub spans_ingestion_rate: f64,
    /// Spans a burst may hold.
    pub spans_ingestion_burst_size: u64,
    /// In-memory series a tenant may have (Mimir `max_global_series_per_user`; 0 = unlimited).
    pub max_global_series_per_user: u64,
    /// Longest time range a range query may span (Loki/Mimir
    /// `max_query_length`; 0 = unlimited).
    #[serde(deserialize_with = "de_duration")]
    pub max_query_length: Duration,
    /// How far back in time queries may look (Mimir/Loki
    /// `max_query_lookback`; 0 = unlimited): earlier starts are moved up.
    #[serde(deserialize_with = "de_duration")]
    pub max_query_lookback: Duration,
    /// Labels per series or stream (Mimir/Loki `max_label_names_per_series`).
    pub max_label_names_per_series: usize,
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
    /// Longest log line accepted (Loki `max_line_size`; 0 = unlimited).
    #[serde(deserialize_with = "de_size")]
    pub max_line_size: u64,
    /// Whether items older than `reject_old_samples_max_age` are refused.
    pub reject_old_samples: bool,
    #[serde(deserialize_with = "de_duration")]
    pub reject_old_samples_max_age: Duration,
    /// How far in the future an item may be (Mimir/Loki `creation_grace_period`).
    #[serde(deserialize_with = "de_duration")]
    pub creation_grace_period: Duration,
    /// How far behind a series' newest sample a sample may be (Mimir
    /// `out_of_order_time_window`; 0 = only in-order samples).
    #[serde(deserialize_with = "de_duration")]
    pub out_of_order_time_window: Duration,
    /// The metrics-generator processors run on the tenant's spans when
    /// `[metrics_generator] enabled` (Tempo's `metrics_generator_processors`):
    /// `"service-graphs"`, `"span-metrics"`; `[]` for none.
    pub metrics_generator_processors: Vec<Processor>,
    /// How long the compactor keeps a tenant's logs, samples and spans
    /// (Loki/Mimir `retention_period`; 0 = forever).
    #[serde(deserialize_with = "de_duration")]
    pub retention_period: Duration,
    /// Per-stream retention of logs (and series of samples): the matching
    /// rule of highest priority wins (Loki `retention_stream`).
    pub retention_stream: Vec<StreamRetention>,
    /// Whether the tenant may delete log lines through
    /// `/loki/api/v1/delete` and how (Loki `deletion_mode`).
    pub deletion_mode: DeletionMode,
    /// Most series one PromQL query may fetch (Mimir
    /// `max_fetched_series_per_query`; 0 = unlimited).
    pub max_fetched_series_per_query: u64,
    /// Shards a shardable PromQL query is split into by series, and a
    /// shardable LogQL metric query by stream, run in parallel (Mimir
    /// `query_sharding_total_shards`; 0 = no sharding).
    pub query_sharding_total_shards: u64,
    /// Most shard queries one query may run over its time parts (Mimir
    /// `query_sharding_max_sharded_queries`; 0 = unlimited): fewer shards
    /// are used to stay within it.
    pub query_sharding_max_sharded_queries: u64,
}

/// Loki's `deletion_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum DeletionMode {
    /// Delete requests are refused (403).
    #[serde(rename = "disabled")]
    Disabled,
    /// Matching lines are filtered out of queries, never removed from storage.
    #[serde(rename = "filter-only")]
    FilterOnly,
    /// Filtered out of queries at once, removed from blocks by the
    /// compactor after `delete_request_cancel_period`.
    #[serde(rename = "filter-and-delete")]
    FilterAndDelete,
}

/// One `retention_stream` rule: streams matching `selector` (a LogQL stream
/// selector such as `{namespace="dev"}`) are kept for `period`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StreamRetention {
    pub selector: String,
    #[serde(default)]
    pub priority: u32,
    #[serde(deserialize_with = "de_duration")]
    pub period: Duration,
}

impl serde::Serialize for StreamRetention {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("selector", &self.selector)?;
        m.serialize_entry("priority", &self.priority)?;
        m.serialize_entry("period", &format!("{}ms", self.period.as_millis()))?;
        m.end()
    }
}

impl Default for Limits {
    fn default() -> Self {
        // Sized for one machine serving a few agents; raise them per tenant.
        Limits {
            ingestion_rate: 1_000_000.0,
            ingestion_burst_size: 2_000_000,
            logs_ingestion_rate_mb: 64.0,
            logs_ingestion_burst_size_mb: 128.0,
            spans_ingestion_rate: 200_000.0,
            spans_ingestion_burst_size: 400_000,
            max_global_series_per_user: 1_000_000,
            max_query_length: Duration::from_secs(721 * 3600),
            max_query_lookback: Duration::ZERO,
            max_label_names_per_series: 30,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            max_line_size: 256 * 1024,
            reject_old_samples: true,
            reject_old_samples_max_age: Duration::from_secs(7 * 86_400),
            creation_grace_period: Duration::from_secs(600),
            out_of_order_time_window: Duration::ZERO,
            metrics_generator_processors: vec![Processor::ServiceGraphs, Processor::SpanMetrics],
            retention_period: Duration::ZERO,
            retention_stream: Vec::new(),
            deletion_mode: DeletionMode::FilterAndDelete,
            max_fetched_series_per_query: 0,
            query_sharding_total_shards: 0,
            query_sharding_max_sharded_queries: 128,
        }
    }
}

impl Limits {
    /// The rate (items or bytes per second) and burst of a signal.
    pub fn rate_and_burst(&self, signal: Signal) -> (f64, f64) {
        match signal {
            Signal::Samples => (self.ingestion_rate, self.ingestion_burst_size as f64),
            Signal::Logs => (
                self.logs_ingestion_rate_mb * 1024.0 * 1024.0,
                self.logs_ingestion_burst_size_mb * 1024.0 * 1024.0,
            ),
            Signal::Spans => (
                self.spans_ingestion_rate,
                self.spans_ingestion_burst_size as f64,
            ),
        }
    }

    /// The name of the limit [`Limits::rate_and_burst`] applies, for errors.
    pub fn rate_limit_name(signal: Signal) -> &'static str {
        match signal {
            Signal::Samples => "ingestion_rate",
            Signal::Logs => "logs_ingestion_rate_mb",
            Signal::Spans => "spans_ingestion_rate",
        }
    }

    /// Oldest acceptable time (ms since the epoch) at `now_ms`.
    pub fn min_time_ms(&self, now_ms: i64) -> Option<i64> {
        self.reject_old_samples
            .then(|| now_ms - self.reject_old_samples_max_age.as_millis() as i64)
    }

    /// Newest acceptable time (ms since the epoch) at `now_ms`.
    pub fn max_time_ms(&self, now_ms: i64) -> i64 {
        now_ms + self.creation_grace_period.as_millis() as i64
    }
}

/// The `[limits]` defaults and the `[overrides.<tenant>]` tables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LimitsConfig {
    pub defaults: Limits,
    /// Raw per-tenant tables: only the keys given override the defaults.
    pub overrides: HashMap<String, toml::Table>,
}

impl LimitsConfig {
    /// The effective limits of `tenant`.
    pub fn for_tenant(&self, tenant: &str) -> Result<Limits, String> {
        let Some(table) = self.overrides.get(tenant) else {
            return Ok(self.defaults.clone());
        };
        let mut merged = toml::Table::try_from(&self.defaults).map_err(|e| e.to_string())?;
        for (k, v) in table {
            merged.insert(k.clone(), v.clone());
        }
        merged
            .try_into::<Limits>()
            .map_err(|e| format!("overrides for tenant {tenant:?}: {e}"))
    }

    /// Checks every override once, so a bad file is refused as a whole.
    pub fn validate(&self) -> Result<(), String> {
        use crate::storage::compactor::retention::RetentionRules;
        RetentionRules::compile(&self.defaults).map_err(|e| format!("[limits] {e}"))?;
        for tenant in self.overrides.keys() {
            let limits = self.for_tenant(tenant)?;
            RetentionRules::compile(&limits)
                .map_err(|e| format!("overrides for tenant {tenant:?}: {e}"))?;
        }
        Ok(())
    }
}

impl serde::Serialize for Limits {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("ingestion_rate", &self.ingestion_rate)?;
        m.serialize_entry("ingestion_burst_size", &self.ingestion_burst_size)?;
        m.serialize_entry("logs_ingestion_rate_mb", &self.logs_ingestion_rate_mb)?;
        m.serialize_entry(
            "logs_ingestion_burst_size_mb",
            &self.logs_ingestion_burst_size_mb,
        )?;
        m.serialize_entry("spans_ingestion_rate", &self.spans_ingestion_rate)?;
        m.serialize_entry(
            "spans_ingestion_burst_size",
            &self.spans_ingestion_burst_size,
        )?;
        m.serialize_entry(
            "max_global_series_per_user",
            &self.max_global_series_per_user,
        )?;
        m.serialize_entry(
            "max_query_length",
            &format!("{}ms", self.max_query_length.as_millis()),
        )?;
        m.serialize_entry(
            "max_query_lookback",
            &format!("{}ms", self.max_query_lookback.as_millis()),
        )?;
        m.serialize_entry(
            "max_label_names_per_series",
            &(self.max_label_names_per_series as u64),
        )?;
        m.serialize_entry(
            "max_label_name_length",
            &(self.max_label_name_length as u64),
        )?;
        m.serialize_entry(
            "max_label_value_length",
            &(self.max_label_value_length as u64),
        )?;
        m.serialize_entry("max_line_size", &self.max_line_size)?;
        m.serialize_entry("reject_old_samples", &self.reject_old_samples)?;
        m.serialize_entry(
            "reject_old_samples_max_age",
            &format!("{}ms", self.reject_old_samples_max_age.as_millis()),
        )?;
        m.serialize_entry(
            "creation_grace_period",
            &format!("{}ms", self.creation_grace_period.as_millis()),
        )?;
        m.serialize_entry(
            "out_of_order_time_window",
            &format!("{}ms", self.out_of_order_time_window.as_millis()),
        )?;
        m.serialize_entry(
            "metrics_generator_processors",
            &self.metrics_generator_processors,
        )?;
        m.serialize_entry(
            "retention_period",
            &format!("{}ms", self.retention_period.as_millis()),
        )?;
        m.serialize_entry("retention_stream", &self.retention_stream)?;
        m.serialize_entry("deletion_mode", &self.deletion_mode)?;
        m.serialize_entry(
            "max_fetched_series_per_query",
            &self.max_fetched_series_per_query,
        )?;
        m.serialize_entry(
            "query_sharding_total_shards",
            &self.query_sharding_total_shards,
        )?;
        m.serialize_entry(
            "query_sharding_max_sharded_queries",
            &self.query_sharding_max_sharded_queries,
        )?;
        m.end()
    }
}

/// A token bucket: `rate` tokens per second, at most `burst` stored.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The current limits of every tenant, and their rate-limit buckets.
#[derive(Debug)]
pub struct LimitsRegistry {
    config: RwLock<Arc<LimitsConfig>>,
    resolved: RwLock<HashMap<String, Arc<Limits>>>,
    buckets: Mutex<HashMap<(String, Signal), Bucket>>,
}

/// A refused rate-limit check.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimited {
    pub limit: &'static str,
    /// Items (or bytes) per second allowed.
    pub rate: f64,
    pub burst: f64,
    /// What the request needed.
    pub requested: f64,
}

impl LimitsRegistry {
    pub fn new(config: LimitsConfig) -> Self {
        LimitsRegistry {
            config: RwLock::new(Arc::new(config)),
            resolved: RwLock::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The limits of `tenant` (overrides applied).
    pub fn get(&self, tenant: &str) -> Arc<Limits> {
        if let Some(l) = self.resolved.read().get(tenant) {
            return l.clone();
        }
        let config = self.config.read().clone();
        // Overrides are validated when loaded, so this cannot fail here.
        let limits = Arc::new(
            config
                .for_tenant(tenant)
                .unwrap_or_else(|_| config.defaults.clone()),
        );
        self.resolved
            .write()
            .insert(tenant.to_string(), limits.clone());
        limits
    }

    /// Replaces defaults and overrides (already validated).
    pub fn reload(&self, config: LimitsConfig) {
        *self.config.write() = Arc::new(config);
        self.resolved.write().clear();
    }

    pub fn config(&self) -> Arc<LimitsConfig> {
        self.config.read().clone()
    }

    /// Takes `cost` tokens from the tenant's bucket for `signal`, or refuses
    /// without taking any.
    pub fn take(&self, tenant: &str, signal: Signal, cost: f64) -> Result<(), RateLimited> {
        let limits = self.get(tenant);
        let (rate, burst) = limits.rate_and_burst(signal);
        let refused = RateLimited {
            limit: Limits::rate_limit_name(signal),
            rate,
            burst,
            requested: cost,
        };
        if cost > burst {
            return Err(refused);
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        let bucket = buckets
            .entry((tenant.to_string(), signal))
            .or_insert(Bucket {
                tokens: burst,
                updated: now,
            });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.updated = now;
        if bucket.tokens < cost {
            return Err(refused);
        }
        bucket.tokens -= cost;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_merge_over_defaults() {
        let mut config = LimitsConfig::default();
        let table: toml::Table =
            toml::from_str("ingestion_rate = 5\nmax_line_size = \"1KiB\"").unwrap();
        config.overrides.insert("team-a".into(), table);
        config.validate().unwrap();
        let a = config.for_tenant("team-a").unwrap();
        assert_eq!(a.ingestion_rate, 5.0);
        assert_eq!(a.max_line_size, 1024);
        assert_eq!(
            a.max_label_name_length,
            Limits::default().max_label_name_length
        );
        assert_eq!(config.for_tenant("other").unwrap(), Limits::default());
        let generator: toml::Table =
            toml::from_str("metrics_generator_processors = [\"span-metrics\"]").unwrap();
        config.overrides.insert("team-c".into(), generator);
        assert_eq!(
            config
                .for_tenant("team-c")
                .unwrap()
                .metrics_generator_processors,
            vec![Processor::SpanMetrics]
        );
        let bad: toml::Table =
            toml::from_str("metrics_generator_processors = [\"local-blocks\"]").unwrap();
        config.overrides.insert("team-d".into(), bad);
        let err = config.validate().unwrap_err();
        assert!(
            err.contains("team-d") && err.contains("local-blocks"),
            "{err}"
        );
        config.overrides.remove("team-d");
        let bad: toml::Table = toml::from_str("ingestion_ratee = 5").unwrap();
        config.overrides.insert("team-b".into(), bad);
        let err = config.validate().unwrap_err();
        assert!(
            err.contains("team-b") && err.contains("ingestion_ratee"),
            "{err}"
        );
    }

    #[test]
    fn token_bucket_refuses_over_burst_and_refills() {
        let mut config = LimitsConfig::default();
        config.defaults.ingestion_rate = 1000.0;
        config.defaults.ingestion_burst_size = 100;
        let r = LimitsRegistry::new(config);
        assert!(
            r.take("t", Signal::Samples, 101.0).is_err(),
            "over the burst"
        );
        assert!(r.take("t", Signal::Samples, 100.0).is_ok());
        let refused = r.take("t", Signal::Samples, 50.0).unwrap_err();
        assert_eq!(refused.limit, "ingestion_rate");
        assert_eq!(refused.rate, 1000.0);
        std::thread::sleep(Duration::from_millis(60));
        assert!(
            r.take("t", Signal::Samples, 50.0).is_ok(),
            "refilled at 1000/s"
        );
        assert!(
            r.take("other", Signal::Samples, 100.0).is_ok(),
            "tenants have own buckets"
        );
    }
}
