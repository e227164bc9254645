//! The query frontend, in process: what stands between the query APIs and
//! evaluation, as in Mimir and Loki.
//!
//! A range query (PromQL, LogQL metric query, the `promql()` SQL function)
//! comes in with its tenant and a function that evaluates one time range.
//! [`QueryFrontend::range_query`] checks the tenant's query limits, splits the
//! range by `split_queries_by_interval` (`split`), answers the parts it can
//! from the results cache (`cache`, `codec`), runs the others in parallel,
//! each through the per-tenant fair queue (`queue`), stores the new parts
//! that are old enough to be final (`max_cache_freshness`), and merges the
//! parts into the answer the unsplit query gives. Instant queries only pass
//! the queue ([`QueryFrontend::run`]). PromQL and LogQL metric queries may
//! also be sharded by series or stream (`sharding`).

pub mod cache;
pub mod codec;
pub mod queue;
pub mod sharding;
pub mod split;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;

use crate::config::{de_duration, de_size};
use crate::ingest::limits::Limits;
use crate::metrics::Metrics;
use crate::query::promql::QueryOutput;
use cache::{MemoryCache, RedisCache, ResultsCache};
pub use queue::QueueFull;
use queue::{FairQueue, Permit};
use split::{Part, merge_parts, split_by_interval};

/// `[query_frontend]`: splitting, results cache and queueing.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FrontendConfig {
    /// Range queries are split into parts of this interval (aligned to the
    /// epoch), run in parallel; 0 turns splitting off.
    #[serde(deserialize_with = "de_duration")]
    pub split_queries_by_interval: Duration,
    /// Whether parts of step-aligned range queries are cached.
    pub cache_results: bool,
    /// Bytes the in-memory results cache may hold.
    #[serde(deserialize_with = "de_size")]
    pub results_cache_max_bytes: u64,
    /// `redis://host:port/db`: keep cached parts in Redis instead of memory.
    pub results_cache_redis_url: Option<String>,
    /// Longest wait for the external cache before answering without it.
    #[serde(deserialize_with = "de_duration")]
    pub results_cache_timeout: Duration,
    /// How long an entry lives in the external cache.
    #[serde(deserialize_with = "de_duration")]
    pub results_cache_ttl: Duration,
    /// Parts ending later than this before now are never cached: their data
    /// may still arrive.
    #[serde(deserialize_with = "de_duration")]
    pub max_cache_freshness: Duration,
    /// Queries (or parts) a tenant may have waiting; more are refused with 429.
    pub max_outstanding_requests_per_tenant: usize,
    /// Queries (or parts) running at once, over all tenants (0 = twice the cores).
    pub max_concurrent: usize,
}

impl Default for FrontendConfig {
    fn default() -> Self {
        FrontendConfig {
            split_queries_by_interval: Duration::from_secs(24 * 3600),
            cache_results: true,
            results_cache_max_bytes: 256 << 20,
            results_cache_redis_url: None,
            results_cache_timeout: Duration::from_millis(500),
            results_cache_ttl: Duration::from_secs(7 * 24 * 3600),
            max_cache_freshness: Duration::from_secs(600),
            max_outstanding_requests_per_tenant: 2048,
            max_concurrent: 0,
        }
    }
}

/// Why the frontend answered instead of the query.
#[derive(Debug, thiserror::Error)]
pub enum FrontendError<E> {
    #[error(transparent)]
    Query(E),
    #[error(transparent)]
    QueueFull(QueueFull),
    /// A per-tenant query limit refused the request (HTTP 400).
    #[error("{0}")]
    Limit(String),
    #[error("query frontend: {0}")]
    Internal(String),
}

impl From<FrontendError<crate::query::promql::PromError>> for crate::query::promql::PromError {
    fn from(e: FrontendError<crate::query::promql::PromError>) -> Self {
        use crate::query::promql::PromError;
        match e {
            FrontendError::Query(e) => e,
            FrontendError::QueueFull(full) => PromError::TooManyRequests(full.to_string()),
            FrontendError::Limit(m) => PromError::BadData(m),
            FrontendError::Internal(m) => PromError::Internal(m),
        }
    }
}

impl From<FrontendError<crate::query::logql::LogqlError>> for crate::query::logql::LogqlError {
    fn from(e: FrontendError<crate::query::logql::LogqlError>) -> Self {
        use crate::query::logql::LogqlError;
        match e {
            FrontendError::Query(e) => e,
            FrontendError::QueueFull(full) => LogqlError::TooManyRequests(full.to_string()),
            FrontendError::Limit(m) => LogqlError::Limit(m),
            FrontendError::Internal(m) => LogqlError::Internal(m),
        }
    }
}

/// A range query as the frontend sees it; times in `unit_ns` nanoseconds
/// (1 000 000 for milliseconds, 1 for nanoseconds).
#[derive(Debug, Clone)]
pub struct RangeQuery<'a> {
    pub tenant: &'a str,
    /// `promql`, `logql`, … (metric labels and cache keys).
    pub language: &'static str,
    /// What, with the evaluation options, makes the answer (the query text
    /// and e.g. the lookback delta); `None` never caches.
    pub cache_key: Option<String>,
    /// Whether evaluating parts separately gives the same points (false for
    /// PromQL using `@ start()`/`@ end()`).
    pub splittable: bool,
    pub start: i64,
    pub end: i64,
    pub step: i64,
    pub unit_ns: i64,
}

impl<'a> RangeQuery<'a> {
    /// A PromQL range query (times in ms): split unless it uses `@ start()`
    /// or `@ end()`, cached unless it reads ahead of its steps, keyed by the
    /// text, the lookback delta and the `max_source_resolution`.
    pub fn promql(
        tenant: &'a str,
        text: &str,
        expr: &promql_parser::parser::Expr,
        (start, end, step): (i64, i64, i64),
        options: &crate::query::promql::QueryOptions,
    ) -> Self {
        let dependence = crate::query::promql::time_dependence(expr);
        let (lookback_ms, resolution) = (options.lookback_ms, options.max_source_resolution.key());
        RangeQuery {
            tenant,
            language: "promql",
            cache_key: (!dependence.reads_ahead)
                .then(|| format!("lookback={lookback_ms}\u{0}resolution={resolution}\u{0}{text}")),
            splittable: !dependence.on_range,
            start,
            end,
            step,
            unit_ns: 1_000_000,
        }
    }

    /// An instant query (at `time`) run as one part, never cached: how a
    /// sharded instant query passes the frontend.
    pub fn instant(tenant: &'a str, language: &'static str, time: i64, unit_ns: i64) -> Self {
        RangeQuery {
            tenant,
            language,
            cache_key: None,
            splittable: false,
            start: time,
            end: time,
            step: 1,
            unit_ns,
        }
    }
}

/// Evaluates the parts of a LogQL metric range query (times in ns) over
/// `ctx`, for [`QueryFrontend::range_query`].
pub fn logql_parts(
    ctx: datafusion::prelude::SessionContext,
    text: &str,
    expr: &crate::query::logql::ast::MetricExpr,
    step: i64,
    options: &crate::query::logql::LogqlOptions,
) -> impl Fn(
    i64,
    i64,
)
    -> futures::future::BoxFuture<'static, Result<QueryOutput, crate::query::logql::LogqlError>> {
    use crate::query::logql;
    let whole = logql::ast::Expr::Metric(expr.clone());
    let (text, options) = (text.to_string(), options.clone());
    move |start, end| {
        let (ctx, text, whole, options) =
            (ctx.clone(), text.clone(), whole.clone(), options.clone());
        Box::pin(async move {
            let part = logql::RangeRequest {
                start_ns: start,
                end_ns: end,
                step_ns: step,
                limit: 0,
                direction: logql::Direction::default(),
                interval_ns: 0,
            };
            match logql::query_range(&ctx, &text, &whole, &part, &options).await? {
                logql::LogqlValue::Metric(value) => Ok(QueryOutput {
                    value,
                    warnings: Vec::new(),
                    infos: Vec::new(),
                }),
                logql::LogqlValue::Streams(_) => Err(logql::LogqlError::Internal(
                    "a metric query answered log streams".into(),
                )),
            }
        })
    }
}

/// Evaluates the parts of a PromQL range query over `ctx` (a tenant's
/// session, shared by the parts), for [`QueryFrontend::range_query`].
pub fn promql_parts(
    ctx: datafusion::prelude::SessionContext,
    query: &str,
    step: i64,
    options: &crate::query::promql::QueryOptions,
) -> impl Fn(
    i64,
    i64,
)
    -> futures::future::BoxFuture<'static, Result<QueryOutput, crate::query::promql::PromError>> {
    let (query, options) = (query.to_string(), options.clone());
    move |start, end| {
        let (ctx, query, options) = (ctx.clone(), query.clone(), options.clone());
        Box::pin(async move {
            crate::query::promql::range_query(&ctx, &query, start, end, step, &options).await
        })
    }
}

pub const QUERIES: &str = "o11ydb_query_frontend_queries_total";
pub const PARTS: &str = "o11ydb_query_frontend_split_parts_total";
pub const CACHE_LOOKUPS: &str = "o11ydb_query_frontend_results_cache_lookups_total";
pub const CACHE_HITS: &str = "o11ydb_query_frontend_results_cache_hits_total";
pub const SHARDED_QUERIES: &str = "o11ydb_query_frontend_sharded_queries_total";
pub const SHARDS: &str = "o11ydb_query_frontend_query_shards_total";
pub const SHARDING_FALLBACKS: &str = "o11ydb_query_frontend_sharding_fallbacks_total";

/// How each time part of a query is evaluated: `count` pieces, each
/// `run(piece, start, end)`, then (more than one piece) `combine(start,
/// end, answers in piece order)`.
pub(crate) struct Pieces<R, C> {
    pub count: usize,
    pub run: R,
    pub combine: Option<C>,
}

pub(crate) type CombineFn<E> =
    fn(i64, i64, Vec<QueryOutput>) -> BoxFuture<'static, Result<QueryOutput, E>>;

type Fut2<E> = BoxFuture<'static, Result<QueryOutput, E>>;

/// What a finished task of a range query answered.
#[derive(Debug, Clone, Copy)]
enum Done {
    /// Piece `.1` of part `.0`.
    Piece(usize, usize),
    /// The combined answer of part `.0`.
    Part(usize),
}

pub struct QueryFrontend {
    config: FrontendConfig,
    cache: Option<ResultsCache>,
    queue: Arc<FairQueue>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for QueryFrontend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryFrontend")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl QueryFrontend {
    pub fn new(config: &FrontendConfig, metrics: Arc<Metrics>) -> Result<Self, String> {
        let cache = match (&config.results_cache_redis_url, config.cache_results) {
            (_, false) => None,
            (Some(url), true) => Some(ResultsCache::Redis(RedisCache::new(
                url,
                config.results_cache_timeout,
                config.results_cache_ttl,
            )?)),
            (None, true) => Some(ResultsCache::Memory(MemoryCache::new(
                config.results_cache_max_bytes as usize,
            ))),
        };
        let max_concurrent = match config.max_concurrent {
            0 => 2 * std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        metrics.describe(QUERIES, "counter", "Queries through the query frontend.");
        metrics.describe(PARTS, "counter", "Parts range queries were split into.");
        metrics.describe(
            CACHE_LOOKUPS,
            "counter",
            "Parts of range queries looked up in the results cache.",
        );
        metrics.describe(
            CACHE_HITS,
            "counter",
            "Parts of range queries answered from the results cache.",
        );
        metrics.describe(
            SHARDED_QUERIES,
            "counter",
            "Queries sharded by series or stream (query_sharding_total_shards).",
        );
        metrics.describe(
            SHARDS,
            "counter",
            "Shard queries run for sharded queries (time parts × legs × shards).",
        );
        metrics.describe(
            SHARDING_FALLBACKS,
            "counter",
            "Sharded LogQL queries run again unsharded: a shard met lines that would make the merge differ.",
        );
        Ok(QueryFrontend {
            config: config.clone(),
            cache,
            queue: FairQueue::new(
                max_concurrent,
                config.max_outstanding_requests_per_tenant,
                metrics.clone(),
            ),
            metrics,
        })
    }

    pub fn config(&self) -> &FrontendConfig {
        &self.config
    }

    /// Waits for a slot in the tenant's queue.
    pub async fn slot(&self, tenant: &str) -> Result<Permit, QueueFull> {
        self.queue.acquire(tenant).await
    }

    /// Runs one query (an instant query, a log query) in its turn.
    pub async fn run<T, E>(
        &self,
        tenant: &str,
        language: &'static str,
        query: impl Future<Output = Result<T, E>>,
    ) -> Result<T, FrontendError<E>> {
        self.metrics.add(QUERIES, &[("language", language)], 1.0);
        let _permit = self.slot(tenant).await.map_err(FrontendError::QueueFull)?;
        query.await.map_err(FrontendError::Query)
    }

    /// Runs a range query: `run_part(start, end)` evaluates the grid points
    /// `start..=end` (`step` apart) and must answer a matrix.
    pub async fn range_query<F, Fut, E>(
        &self,
        query: RangeQuery<'_>,
        run_part: F,
    ) -> Result<QueryOutput, FrontendError<E>>
    where
        F: Fn(i64, i64) -> Fut,
        Fut: Future<Output = Result<QueryOutput, E>> + Send + 'static,
        E: Send + 'static,
    {
        self.split_and_cache(query, run_part, true).await
    }

    /// [`Self::range_query`] for a caller that already holds a slot of the
    /// tenant's queue (a SQL statement over pgwire or Flight SQL): the parts
    /// run within that slot. Queueing them too could deadlock once every
    /// slot is held by a statement waiting for its parts.
    pub async fn range_query_within_slot<F, Fut, E>(
        &self,
        query: RangeQuery<'_>,
        run_part: F,
    ) -> Result<QueryOutput, FrontendError<E>>
    where
        F: Fn(i64, i64) -> Fut,
        Fut: Future<Output = Result<QueryOutput, E>> + Send + 'static,
        E: Send + 'static,
    {
        self.split_and_cache(query, run_part, false).await
    }

    async fn split_and_cache<F, Fut, E>(
        &self,
        query: RangeQuery<'_>,
        run_part: F,
        queue_parts: bool,
    ) -> Result<QueryOutput, FrontendError<E>>
    where
        F: Fn(i64, i64) -> Fut,
        Fut: Future<Output = Result<QueryOutput, E>> + Send + 'static,
        E: Send + 'static,
    {
        let whole = Pieces {
            count: 1,
            run: |_piece: usize, start: i64, end: i64| run_part(start, end),
            combine: None::<CombineFn<E>>,
        };
        self.split_and_cache_pieces(query, whole, queue_parts).await
    }

    /// Splits by time and caches like [`Self::range_query`]; each part not
    /// cached runs as `pieces.count` pieces in parallel (each in its own
    /// queue slot when `queue_parts`), joined by `pieces.combine` (in its
    /// own slot too) into the part's answer.
    pub(crate) async fn split_and_cache_pieces<R, Fut, C, E>(
        &self,
        query: RangeQuery<'_>,
        pieces: Pieces<R, C>,
        queue_parts: bool,
    ) -> Result<QueryOutput, FrontendError<E>>
    where
        R: Fn(usize, i64, i64) -> Fut,
        Fut: Future<Output = Result<QueryOutput, E>> + Send + 'static,
        C: Fn(i64, i64, Vec<QueryOutput>) -> BoxFuture<'static, Result<QueryOutput, E>>,
        E: Send + 'static,
    {
        let language = [("language", query.language)];
        self.metrics.add(QUERIES, &language, 1.0);
        let parts = self.parts(&query);
        self.metrics.add(PARTS, &language, parts.len() as f64);
        let keys: Vec<Option<String>> = parts.iter().map(|p| self.part_key(&query, p)).collect();

        let mut answers: Vec<Option<QueryOutput>> = vec![None; parts.len()];
        if let Some(cache) = &self.cache {
            for (i, key) in keys.iter().enumerate() {
                let Some(key) = key else { continue };
                self.metrics.add(CACHE_LOOKUPS, &language, 1.0);
                if let Some(bytes) = cache.get(key).await
                    && let Some(output) = codec::decode(key, &bytes)
                {
                    self.metrics.add(CACHE_HITS, &language, 1.0);
                    answers[i] = Some(output);
                }
            }
        }

        let count = pieces.count.max(1);
        let mut piece_answers: Vec<Vec<Option<QueryOutput>>> = vec![Vec::new(); parts.len()];
        let mut running = tokio::task::JoinSet::new();
        let spawn = |running: &mut tokio::task::JoinSet<_>, done: Done, evaluation: Fut2<E>| {
            let queue = queue_parts.then(|| self.queue.clone());
            let tenant = query.tenant.to_string();
            running.spawn(async move {
                let _permit = match queue {
                    Some(queue) => Some(
                        queue
                            .acquire(&tenant)
                            .await
                            .map_err(FrontendError::QueueFull)?,
                    ),
                    None => None,
                };
                let output = evaluation.await.map_err(FrontendError::Query)?;
                Ok::<_, FrontendError<E>>((done, output))
            });
        };
        for (i, part) in parts.iter().enumerate() {
            if answers[i].is_some() {
                continue;
            }
            piece_answers[i] = vec![None; count];
            for piece in 0..count {
                let evaluation: Fut2<E> = Box::pin((pieces.run)(piece, part.start, part.end));
                spawn(&mut running, Done::Piece(i, piece), evaluation);
            }
            if count > 1 {
                self.metrics.add(SHARDS, &language, count as f64);
            }
        }
        while let Some(joined) = running.join_next().await {
            let (done, output) =
                joined.map_err(|e| FrontendError::Internal(format!("a part failed: {e}")))??;
            let i = match done {
                Done::Piece(i, piece) => {
                    piece_answers[i][piece] = Some(output);
                    if piece_answers[i].iter().any(Option::is_none) {
                        continue;
                    }
                    let outputs: Vec<QueryOutput> = piece_answers[i]
                        .drain(..)
                        .map(|a| a.expect("answered"))
                        .collect();
                    match &pieces.combine {
                        Some(combine) if count > 1 => {
                            let evaluation = combine(parts[i].start, parts[i].end, outputs);
                            spawn(&mut running, Done::Part(i), evaluation);
                            continue;
                        }
                        _ => {
                            answers[i] = outputs.into_iter().next();
                            i
                        }
                    }
                }
                Done::Part(i) => {
                    answers[i] = Some(output);
                    i
                }
            };
            if let (Some(cache), Some(key), Some(output)) = (&self.cache, &keys[i], &answers[i])
                && let Some(bytes) = codec::encode(key, output)
            {
                cache.put(key, bytes).await;
            }
        }
        let answers: Vec<QueryOutput> = answers
            .into_iter()
            .map(|a| a.expect("every part answered"))
            .collect();
        if answers.len() == 1 {
            return Ok(answers.into_iter().next().expect("one part"));
        }
        merge_parts(answers).map_err(FrontendError::Internal)
    }

    /// The time parts `query` runs as.
    pub(crate) fn parts(&self, query: &RangeQuery<'_>) -> Vec<Part> {
        let interval = self.config.split_queries_by_interval.as_nanos() as i64 / query.unit_ns;
        if query.splittable {
            split_by_interval(query.start, query.end, query.step, interval)
        } else {
            split_by_interval(query.start, query.end, query.step, 0)
        }
    }

    /// The cache key of a part, if it may be cached: the query is step
    /// aligned and the part ends at least `max_cache_freshness` ago.
    fn part_key(&self, query: &RangeQuery<'_>, part: &Part) -> Option<String> {
        let key = query.cache_key.as_ref()?;
        self.cache.as_ref()?;
        if query.start.rem_euclid(query.step) != 0 {
            return None;
        }
        let now = chrono::Utc::now().timestamp_nanos_opt()? / query.unit_ns;
        let freshness = self.config.max_cache_freshness.as_nanos() as i64 / query.unit_ns;
        if part.end > now - freshness {
            return None;
        }
        Some(format!(
            "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{key}",
            query.language, query.tenant, query.unit_ns, query.step, part.start, part.end
        ))
    }
}

/// What the tenant's `max_query_lookback` and `max_query_length` make of a
/// range `[start, end]` on a `step` grid (times in `unit_ns` nanoseconds):
/// the start moved up to the lookback (on the grid), `None` when the whole
/// range is before it (an empty answer), or the limit error.
pub fn apply_query_limits(
    limits: &Limits,
    start: i64,
    end: i64,
    step: i64,
    unit_ns: i64,
) -> Result<Option<i64>, String> {
    let mut start = start;
    let lookback = limits.max_query_lookback.as_nanos() as i64 / unit_ns;
    if lookback > 0 {
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX) / unit_ns;
        let min_start = now - lookback;
        if end < min_start {
            return Ok(None);
        }
        if start < min_start {
            let step = step.max(1);
            start += (min_start - start + step - 1) / step * step;
            if start > end {
                return Ok(None);
            }
        }
    }
    let max_length = limits.max_query_length.as_nanos() as i64 / unit_ns;
    if max_length > 0 && end - start > max_length {
        let go = |v: i64| crate::query::traceql::format::go_duration(v.saturating_mul(unit_ns));
        return Err(format!(
            "the query time range exceeds the limit (query length: {}, limit: {}) (max_query_length)",
            go(end - start),
            go(max_length)
        ));
    }
    Ok(Some(start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_move_the_start_or_refuse_the_length() {
        let hour = 3_600_000i64;
        let now = chrono::Utc::now().timestamp_millis();
        let limits = Limits {
            max_query_length: Duration::from_secs(48 * 3600),
            max_query_lookback: Duration::from_secs(24 * 3600),
            ..Limits::default()
        };
        // Entirely before the lookback: empty.
        assert_eq!(
            apply_query_limits(&limits, now - 50 * hour, now - 30 * hour, 1000, 1_000_000),
            Ok(None)
        );
        // Partly before: the start moves up on the step grid.
        let start = now - 30 * hour;
        let moved = apply_query_limits(&limits, start, now, 60_000, 1_000_000)
            .unwrap()
            .unwrap();
        assert!(moved >= now - 24 * hour && moved < now - 24 * hour + 60_000 + 1000);
        assert_eq!((moved - start) % 60_000, 0);
        // Too long (without lookback): refused with both durations named.
        let no_lookback = Limits {
            max_query_lookback: Duration::ZERO,
            ..limits
        };
        let err =
            apply_query_limits(&no_lookback, now - 49 * hour, now, 1000, 1_000_000).unwrap_err();
        assert!(
            err.contains("query length: 49h0m0s, limit: 48h0m0s"),
            "{err}"
        );
    }
}
