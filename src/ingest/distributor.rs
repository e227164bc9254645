//! The distributor: the one gate every ingest protocol passes through after
//! decoding. It applies the tenant's rate limit, series limit and
//! out-of-order rules, writes what is valid through the ingester (WAL, then
//! head) and reports what was discarded and why — Mimir's and Loki's
//! behaviour: valid items of a request are kept even when others are not,
//! and the answer names the first failure and the counts.

use std::collections::{BTreeMap, HashMap};

use std::sync::Arc;

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{Int64Type, TimestampMillisecondType};
use parking_lot::Mutex;

use super::Ingester;
use super::limits::{LimitsRegistry, RateLimited};
use super::metrics_generator::SpanSink;
use super::series_cache::SeriesCache;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::model::Signal;
use crate::model::labels::SeriesIdMap;

/// Items a decoder or the distributor refused, by reason.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Discards {
    by_reason: BTreeMap<&'static str, u64>,
    first: Option<String>,
}

impl Discards {
    /// Counts `n` items refused for `reason`; `message` (called only for the
    /// first refusal of the request) says which item and why.
    pub fn add(&mut self, reason: &'static str, n: u64, message: impl FnOnce() -> String) {
        if n == 0 {
            return;
        }
        *self.by_reason.entry(reason).or_default() += n;
        if self.first.is_none() {
            self.first = Some(message());
        }
    }

    pub fn total(&self) -> u64 {
        self.by_reason.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_reason.is_empty()
    }

    pub fn first(&self) -> Option<&str> {
        self.first.as_deref()
    }

    pub fn by_reason(&self) -> &BTreeMap<&'static str, u64> {
        &self.by_reason
    }

    /// `(reason, count)` pairs in reason order.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        self.by_reason.iter().map(|(r, n)| (*r, *n)).collect()
    }

    pub fn merge(&mut self, other: Discards) {
        if self.first.is_none() {
            self.first = other.first;
        }
        for (r, n) in other.by_reason {
            *self.by_reason.entry(r).or_default() += n;
        }
    }
}

/// What a decoder made of a request: canonical rows (see
/// `model::builders`) and the items it refused.
#[derive(Debug)]
pub struct Decoded {
    pub signal: Signal,
    pub batches: Vec<RecordBatch>,
    pub discards: Discards,
    /// What the rate limit counts: items, or log line bytes for logs.
    pub cost: f64,
}

impl Decoded {
    /// A decoded request whose rate-limit cost is its row count (samples, spans).
    pub fn costed_by_rows(signal: Signal, batches: Vec<RecordBatch>, discards: Discards) -> Self {
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        Decoded {
            signal,
            batches,
            discards,
            cost: rows as f64,
        }
    }

    pub fn rows(&self) -> u64 {
        self.batches.iter().map(|b| b.num_rows() as u64).sum()
    }
}

/// Why a push was not (entirely) accepted, with the HTTP status it maps to.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Some or all items were invalid (the valid ones are written). 400.
    #[error("{message}")]
    Invalid { message: String, accepted: u64 },
    /// The tenant is over its rate limit; nothing was written. 429.
    #[error(
        "ingestion rate limit ({limit}) exceeded for tenant {tenant:?}: the limit is {rate} per second with a burst of {burst}, this request needed {requested}"
    )]
    RateLimited {
        tenant: String,
        limit: &'static str,
        rate: f64,
        burst: f64,
        requested: f64,
    },
    /// The server cannot take more right now; retry later. 503.
    #[error("{0}")]
    Overloaded(String),
    /// The write path failed (disk full, WAL error); nothing was written. 503.
    #[error("{0}")]
    Unavailable(String),
}

impl PushError {
    pub fn http_status(&self) -> u16 {
        match self {
            PushError::Invalid { .. } => 400,
            PushError::RateLimited { .. } => 429,
            PushError::Overloaded(_) | PushError::Unavailable(_) => 503,
        }
    }
}

/// Newest sample time per series, for the out-of-order rule and the series limit.
#[derive(Debug, Default)]
struct TenantSeries {
    newest: SeriesIdMap<i64>,
}

/// How long a push waits for flushes to bring the heads back under
/// `max_head_bytes` before it is refused with 503.
const OVERLOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// Pushes allowed to wait at once (each holds its decoded rows); more are
/// refused at once.
const MAX_WAITING_PUSHES: usize = 64;
/// How often a waiting push looks at the heads again.
const OVERLOAD_POLL: std::time::Duration = std::time::Duration::from_millis(20);

pub struct Distributor {
    ingester: Arc<Ingester>,
    limits: Arc<LimitsRegistry>,
    metrics: Arc<Metrics>,
    series: Mutex<HashMap<String, TenantSeries>>,
    max_head_bytes: u64,
    /// See [`OVERLOAD_WAIT`] and [`MAX_WAITING_PUSHES`].
    overload_wait: std::time::Duration,
    overload_waiters: tokio::sync::Semaphore,
    /// Where accepted spans go for the metrics generator, when it runs.
    span_sink: std::sync::OnceLock<SpanSink>,
    /// Validated remote-write series per tenant.
    series_caches: Mutex<HashMap<String, Arc<SeriesCache>>>,
}

impl std::fmt::Debug for Distributor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Distributor").finish_non_exhaustive()
    }
}

/// The newest sample of every series in the samples heads — after a restart,
/// what the WAL replayed — so the out-of-order rule and the series limit
/// hold across restarts as they do in a Mimir ingester rebuilt from its WAL.
fn series_in_heads(ingester: &Ingester) -> HashMap<String, TenantSeries> {
    let mut out: HashMap<String, TenantSeries> = HashMap::new();
    for ((tenant, signal), head) in ingester.heads().all() {
        if signal != Signal::Samples {
            continue;
        }
        let tenant_series = out.entry(tenant).or_default();
        let (batches, ()) = head.snapshot_with(|| ());
        for (batch, _) in batches {
            let ts = batch.column(0).as_primitive::<TimestampMillisecondType>();
            let Some(ids) = batch.column_by_name("series_id") else {
                continue;
            };
            let ids = ids.as_primitive::<Int64Type>();
            for row in 0..batch.num_rows() {
                let newest = tenant_series
                    .newest
                    .entry(ids.value(row))
                    .or_insert(i64::MIN);
                *newest = (*newest).max(ts.value(row));
            }
        }
    }
    out
}

/// Metric names of received and discarded items, per signal.
pub fn item_metrics(signal: Signal) -> (&'static str, &'static str) {
    match signal {
        Signal::Samples => (
            "o11ydb_received_samples_total",
            "o11ydb_discarded_samples_total",
        ),
        Signal::Logs => (
            "o11ydb_received_log_lines_total",
            "o11ydb_discarded_log_lines_total",
        ),
        Signal::Spans => (
            "o11ydb_received_spans_total",
            "o11ydb_discarded_spans_total",
        ),
    }
}

impl Distributor {
    pub fn new(
        ingester: Arc<Ingester>,
        limits: Arc<LimitsRegistry>,
        metrics: Arc<Metrics>,
        max_head_bytes: u64,
    ) -> Self {
        for signal in Signal::ALL {
            let (received, discarded) = item_metrics(signal);
            metrics.describe(
                received,
                "counter",
                "Items received by the distributor, per tenant.",
            );
            metrics.describe(
                discarded,
                "counter",
                "Items refused by the distributor, per tenant and reason.",
            );
        }
        let series = series_in_heads(&ingester);
        Distributor {
            ingester,
            limits,
            metrics,
            series: Mutex::new(series),
            max_head_bytes,
            overload_wait: OVERLOAD_WAIT,
            overload_waiters: tokio::sync::Semaphore::new(MAX_WAITING_PUSHES),
            span_sink: std::sync::OnceLock::new(),
            series_caches: Mutex::default(),
        }
    }

    /// In-memory series per tenant (what `max_global_series_per_user` counts).
    pub fn series_per_tenant(&self) -> Vec<(String, usize)> {
        self.series
            .lock()
            .iter()
            .map(|(tenant, s)| (tenant.clone(), s.newest.len()))
            .collect()
    }

    /// The tenant's cache of validated remote-write series.
    pub fn series_cache(&self, tenant: &str) -> Arc<SeriesCache> {
        let mut caches = self.series_caches.lock();
        if let Some(cache) = caches.get(tenant) {
            return cache.clone();
        }
        caches.entry(tenant.to_string()).or_default().clone()
    }

    /// Sends accepted spans to the metrics generator from now on.
    pub fn set_span_sink(&self, sink: SpanSink) {
        let _ = self.span_sink.set(sink);
    }

    /// The metrics generator's sink, when it runs.
    pub fn span_sink(&self) -> Option<&SpanSink> {
        self.span_sink.get()
    }

    pub fn limits(&self) -> &Arc<LimitsRegistry> {
        &self.limits
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn ingester(&self) -> &Arc<Ingester> {
        &self.ingester
    }

    fn count(&self, tenant: &str, signal: Signal, received: u64, discards: &Discards) {
        let (r, d) = item_metrics(signal);
        self.metrics.add(r, &[("tenant", tenant)], received as f64);
        for (reason, n) in discards.by_reason() {
            self.metrics
                .add(d, &[("tenant", tenant), ("reason", reason)], *n as f64);
        }
    }

    /// How long a push may wait for room in the heads (see [`OVERLOAD_WAIT`]).
    pub fn with_overload_wait(mut self, wait: std::time::Duration) -> Self {
        self.overload_wait = wait;
        self
    }

    /// Returns at once while the heads are under `max_head_bytes`. Over it,
    /// a push waits (a bounded time, a bounded number of pushes) for a flush
    /// to make room: the sender sees a slower answer rather than a 503 and
    /// a resend of a request already decoded. Err: why it was refused.
    async fn wait_for_head_room(&self) -> Result<(), String> {
        let refusal = |head_bytes: u64, waited: std::time::Duration| {
            format!(
                "ingester overloaded: {head_bytes} bytes in memory are waiting to be flushed, over ingester.max_head_bytes = {} (waited {} ms for flushes); retry later",
                self.max_head_bytes,
                waited.as_millis()
            )
        };
        let head_bytes = self.ingester.heads().memory_bytes();
        if head_bytes <= self.max_head_bytes {
            return Ok(());
        }
        let Ok(_waiting) = self.overload_waiters.try_acquire() else {
            return Err(refusal(head_bytes, std::time::Duration::ZERO));
        };
        let started = std::time::Instant::now();
        loop {
            let left = self.overload_wait.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(refusal(
                    self.ingester.heads().memory_bytes(),
                    started.elapsed(),
                ));
            }
            tokio::time::sleep(left.min(OVERLOAD_POLL)).await;
            if self.ingester.heads().memory_bytes() <= self.max_head_bytes {
                return Ok(());
            }
        }
    }

    /// Applies limits to `decoded` and writes what passes. Returns the
    /// number of items written.
    pub async fn push(&self, tenant: &str, decoded: Decoded) -> Result<u64, PushError> {
        let signal = decoded.signal;
        let mut discards = decoded.discards;
        let rows = decoded
            .batches
            .iter()
            .map(|b| b.num_rows() as u64)
            .sum::<u64>();
        let received = rows + discards.total();

        if let Err(message) = self.wait_for_head_room().await {
            self.count(tenant, signal, received, &discards);
            return Err(PushError::Overloaded(message));
        }

        if rows > 0
            && let Err(RateLimited {
                limit,
                rate,
                burst,
                requested,
            }) = self.limits.take(tenant, signal, decoded.cost)
        {
            discards.add("rate_limited", rows, String::new);
            self.count(tenant, signal, received, &discards);
            return Err(PushError::RateLimited {
                tenant: tenant.to_string(),
                limit,
                rate,
                burst,
                requested,
            });
        }

        let mut batches = decoded.batches;
        if signal == Signal::Samples {
            batches = batches
                .into_iter()
                .map(|b| self.check_series(tenant, b, &mut discards))
                .collect();
        }
        let mut accepted = 0u64;
        for batch in batches.iter().filter(|b| b.num_rows() > 0) {
            match self.ingester.append_canonical(tenant, signal, batch).await {
                Ok(_) => {
                    accepted += batch.num_rows() as u64;
                    if signal == Signal::Spans
                        && let Some(sink) = self.span_sink.get()
                    {
                        sink.offer(tenant, batch);
                    }
                }
                Err(e) => {
                    discards.add("write_failed", (batch.num_rows() as u64).max(1), || {
                        e.to_string()
                    });
                    self.count(tenant, signal, received, &discards);
                    return Err(match e {
                        Error::WriteUnavailable(m) => PushError::Unavailable(m),
                        other => PushError::Unavailable(other.to_string()),
                    });
                }
            }
        }
        self.count(tenant, signal, received, &discards);
        if discards.is_empty() {
            return Ok(accepted);
        }
        let counts: Vec<String> = discards
            .by_reason()
            .iter()
            .map(|(r, n)| format!("{r}: {n}"))
            .collect();
        Err(PushError::Invalid {
            message: format!(
                "{} ({} of {} items rejected: {}; the other {} were written)",
                discards.first().unwrap_or("invalid items"),
                discards.total(),
                received,
                counts.join(", "),
                accepted
            ),
            accepted,
        })
    }

    /// Drops samples older than their series' newest sample (beyond
    /// `out_of_order_time_window`) and samples of new series past
    /// `max_global_series_per_user`.
    fn check_series(
        &self,
        tenant: &str,
        batch: RecordBatch,
        discards: &mut Discards,
    ) -> RecordBatch {
        let limits = self.limits.get(tenant);
        let window = limits.out_of_order_time_window.as_millis() as i64;
        let ts = batch.column(0).as_primitive::<TimestampMillisecondType>();
        let ids = batch
            .column_by_name("series_id")
            .expect("samples have series ids")
            .as_primitive::<Int64Type>();
        let mut keep = Vec::with_capacity(batch.num_rows());
        let mut all_kept = true;
        let mut series = self.series.lock();
        let tenant_series = series.entry(tenant.to_string()).or_default();
        for row in 0..batch.num_rows() {
            let (id, t) = (ids.value(row), ts.value(row));
            let ok = match tenant_series.newest.get_mut(&id) {
                Some(newest) => {
                    if t + window < *newest {
                        discards.add("sample_out_of_order", 1, || {
                            format!(
                                "out-of-order sample: timestamp {t} is older than the series' newest sample {} (out_of_order_time_window is {window} ms)",
                                *newest
                            )
                        });
                        false
                    } else {
                        *newest = (*newest).max(t);
                        true
                    }
                }
                None => {
                    let max = limits.max_global_series_per_user;
                    if max > 0 && tenant_series.newest.len() as u64 >= max {
                        discards.add("per_user_series_limit", 1, || {
                            format!(
                                "per-tenant series limit (max_global_series_per_user) of {max} reached for tenant {tenant:?}"
                            )
                        });
                        false
                    } else {
                        tenant_series.newest.insert(id, t);
                        true
                    }
                }
            };
            all_kept &= ok;
            keep.push(ok);
        }
        drop(series);
        if all_kept {
            return batch;
        }
        arrow::compute::filter_record_batch(&batch, &BooleanArray::from(keep))
            .expect("filter with a mask of the batch's length")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IngesterConfig;
    use crate::ingest::limits::LimitsConfig;
    use crate::model::builders::{SamplesBuilder, canonical};
    use crate::storage::Storage;

    async fn distributor(dir: &std::path::Path, limits: LimitsConfig) -> Distributor {
        distributor_with_head_limit(dir, limits, u64::MAX).await
    }

    async fn distributor_with_head_limit(
        dir: &std::path::Path,
        limits: LimitsConfig,
        max_head_bytes: u64,
    ) -> Distributor {
        let store = Arc::new(object_store::memory::InMemory::new());
        let storage = Arc::new(Storage::open(store, "memory://".into()).await.unwrap());
        let (ingester, _) =
            Ingester::open(&dir.join("wal"), storage, IngesterConfig::default()).unwrap();
        Distributor::new(
            ingester,
            Arc::new(LimitsRegistry::new(limits)),
            Arc::new(Metrics::default()),
            max_head_bytes,
        )
    }

    #[tokio::test]
    async fn over_max_head_bytes_a_push_waits_for_a_flush_then_gets_503() {
        let dir = tempfile::tempdir().unwrap();
        let d = distributor_with_head_limit(dir.path(), LimitsConfig::default(), 1)
            .await
            .with_overload_wait(std::time::Duration::from_millis(150));
        d.push("t", samples(&[("a", &[(10, 1.0)])])).await.unwrap();
        // The head is over its 1-byte limit and nothing flushes it.
        let started = std::time::Instant::now();
        let err = d
            .push("t", samples(&[("a", &[(20, 2.0)])]))
            .await
            .unwrap_err();
        assert!(started.elapsed() >= std::time::Duration::from_millis(150));
        assert_eq!(err.http_status(), 503);
        let message = err.to_string();
        assert!(
            message.contains("max_head_bytes = 1") && message.contains("retry later"),
            "{message}"
        );
        assert_eq!(head_rows(&d), 1, "nothing of the refused push is written");
        // The flush empties the head; the resent push goes through.
        d.ingester().flush_all().await;
        d.push("t", samples(&[("a", &[(20, 2.0)])])).await.unwrap();
        assert_eq!(head_rows(&d), 1);
    }

    #[tokio::test]
    async fn a_waiting_push_goes_through_once_a_flush_makes_room() {
        let dir = tempfile::tempdir().unwrap();
        let d = Arc::new(
            distributor_with_head_limit(dir.path(), LimitsConfig::default(), 1)
                .await
                .with_overload_wait(std::time::Duration::from_secs(30)),
        );
        d.push("t", samples(&[("a", &[(10, 1.0)])])).await.unwrap();
        let waiting = tokio::spawn({
            let d = d.clone();
            async move { d.push("t", samples(&[("a", &[(20, 2.0)])])).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(
            !waiting.is_finished(),
            "the push waits while the head is full"
        );
        d.ingester().flush_all().await;
        assert_eq!(waiting.await.unwrap().unwrap(), 1);
        assert_eq!(head_rows(&d), 1);
    }

    fn samples(series: &[(&str, &[(i64, f64)])]) -> Decoded {
        let mut b = SamplesBuilder::new();
        for (job, points) in series {
            b.push_series("up", &canonical(vec![("job", *job)]), points);
        }
        Decoded::costed_by_rows(Signal::Samples, vec![b.finish()], Discards::default())
    }

    fn head_rows(d: &Distributor) -> usize {
        d.ingester()
            .head("t", Signal::Samples)
            .unwrap()
            .stats()
            .rows
    }

    #[tokio::test]
    async fn out_of_order_samples_are_dropped_and_the_rest_written() {
        let dir = tempfile::tempdir().unwrap();
        let d = distributor(dir.path(), LimitsConfig::default()).await;
        assert_eq!(
            d.push("t", samples(&[("a", &[(10, 1.0), (20, 2.0)])]))
                .await
                .unwrap(),
            2
        );
        let err = d
            .push(
                "t",
                samples(&[("a", &[(15, 1.5), (30, 3.0)]), ("b", &[(5, 1.0)])]),
            )
            .await
            .unwrap_err();
        match &err {
            PushError::Invalid { message, accepted } => {
                assert_eq!(*accepted, 2);
                assert!(
                    message.contains("out-of-order") && message.contains("1 of 3"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(err.http_status(), 400);
        assert_eq!(head_rows(&d), 4);
        assert_eq!(
            d.metrics.value(
                "o11ydb_discarded_samples_total",
                &[("tenant", "t"), ("reason", "sample_out_of_order")]
            ),
            1.0
        );
        assert_eq!(
            d.metrics
                .value("o11ydb_received_samples_total", &[("tenant", "t")]),
            5.0
        );
    }

    /// The out-of-order rule survives a restart: the WAL replay refills the
    /// head and the distributor learns each series' newest sample from it.
    #[tokio::test]
    async fn out_of_order_state_is_rebuilt_from_the_wal_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let d = distributor(dir.path(), LimitsConfig::default()).await;
            d.push("t", samples(&[("a", &[(10, 1.0), (20, 2.0)])]))
                .await
                .unwrap();
        }
        let d = distributor(dir.path(), LimitsConfig::default()).await;
        assert_eq!(head_rows(&d), 2);
        let err = d
            .push("t", samples(&[("a", &[(15, 1.5)])]))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("out-of-order"), "{err}");
        assert_eq!(
            d.push("t", samples(&[("a", &[(25, 2.5)])])).await.unwrap(),
            1
        );
    }

    #[tokio::test]
    async fn rate_and_series_limits() {
        let dir = tempfile::tempdir().unwrap();
        let mut limits = LimitsConfig::default();
        limits.defaults.ingestion_rate = 1.0;
        limits.defaults.ingestion_burst_size = 3;
        limits.defaults.max_global_series_per_user = 1;
        let d = distributor(dir.path(), limits).await;
        let err = d
            .push("t", samples(&[("a", &[(1, 1.0)]), ("b", &[(1, 1.0)])]))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("max_global_series_per_user"),
            "{err}"
        );
        let err = d
            .push("t", samples(&[("a", &[(2, 1.0), (3, 1.0)])]))
            .await
            .unwrap_err();
        assert_eq!(err.http_status(), 429, "{err}");
        assert!(
            err.to_string().contains("ingestion_rate") && err.to_string().contains("\"t\""),
            "{err}"
        );
    }
}
