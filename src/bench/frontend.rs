//! `o11ydb bench frontend`: a 7-day PromQL range query through the query
//! frontend five ways — unsplit and uncached, split by day with an empty
//! results cache (cold), the same again (warm: every part but the newest,
//! which ends now, comes from the cache), and sharded by series into
//! [`SHARDS`] shards, unsplit and split (cold) — over the scrape-shaped
//! dataset flushed to one Parquet block per day in a scratch engine
//! (blocks in memory).
//! Every way must answer the same series and points (sharded ways: values
//! within a relative 1e-9, as sums add in another order), or the run fails.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::scrape_dataset::{DatasetShape, generate};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::Signal;
use crate::model::builders::{SamplesBuilder, canonical};
use crate::query::frontend::sharding::ShardingLimits;
use crate::query::frontend::{FrontendConfig, QueryFrontend};
use crate::query::promql::{self, QueryOutput, QueryValue};

const TENANT: &str = "bench";

/// Shards of the sharded ways.
pub const SHARDS: usize = 4;

const UNSHARDED: ShardingLimits = ShardingLimits {
    total_shards: 0,
    max_sharded_queries: 0,
};
const SHARDED: ShardingLimits = ShardingLimits {
    total_shards: SHARDS,
    max_sharded_queries: 0,
};

/// The timed queries: (name, PromQL).
pub const QUERIES: &[(&str, &str)] = &[
    (
        "sum by job of rate",
        "sum by (job) (rate(http_requests_total[5m]))",
    ),
    (
        "histogram_quantile p99",
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    ),
    (
        "subquery max of rate",
        "max_over_time(sum by (job) (rate(http_requests_total[5m]))[30m:1m])",
    ),
];

#[derive(Debug, Clone)]
pub struct FrontendBench {
    pub jobs: usize,
    pub instances_per_job: usize,
    pub days: i64,
    pub interval_ms: i64,
    pub step_ms: i64,
    /// Timed runs of each way (medians are reported).
    pub runs: usize,
}

#[derive(Debug, Clone)]
pub struct FrontendTiming {
    pub name: &'static str,
    pub unsplit: Duration,
    pub cold: Duration,
    pub warm: Duration,
    /// Unsplit, [`SHARDS`] shards.
    pub sharded: Duration,
    /// Split by day, [`SHARDS`] shards per part, cold cache.
    pub split_sharded: Duration,
    pub parts: usize,
    pub series: usize,
}

#[derive(Debug, Clone)]
pub struct FrontendReport {
    pub samples: u64,
    pub series: usize,
    pub load: Duration,
    pub timings: Vec<FrontendTiming>,
}

pub async fn run(b: &FrontendBench) -> Result<FrontendReport> {
    let (engine, dir) = Engine::open_scratch("o11ydb-bench-frontend").await?;
    let report = measure(&engine, b).await;
    drop(engine);
    let _ = std::fs::remove_dir_all(dir);
    report
}

async fn measure(engine: &Arc<Engine>, b: &FrontendBench) -> Result<FrontendReport> {
    let now = chrono::Utc::now().timestamp_millis();
    let end = now.div_euclid(b.step_ms) * b.step_ms;
    let start = end - b.days * 86_400_000;
    let loading = Instant::now();
    let (samples, series) = load(engine, b, start - 3_600_000, now).await?;
    let load = loading.elapsed();

    let unsplit = frontend(engine, Duration::ZERO, false)?;
    let mut timings = Vec::new();
    for (name, query) in QUERIES {
        let mut unsplit_times = Vec::new();
        let mut cold_times = Vec::new();
        let mut warm_times = Vec::new();
        let mut sharded_times = Vec::new();
        let mut split_sharded_times = Vec::new();
        let mut reference = None;
        let mut parts = 0;
        for _ in 0..b.runs.max(1) {
            let range = (start, end, b.step_ms);
            let (t, answer) = timed(engine, &unsplit, query, range, UNSHARDED).await?;
            unsplit_times.push(t);
            reference.get_or_insert(answer);
            let split = frontend(engine, Duration::from_secs(86_400), true)?;
            let (t, cold) = timed(engine, &split, query, range, UNSHARDED).await?;
            cold_times.push(t);
            let (t, warm) = timed(engine, &split, query, range, UNSHARDED).await?;
            warm_times.push(t);
            let (t, sharded) = timed(engine, &unsplit, query, range, SHARDED).await?;
            sharded_times.push(t);
            let split = frontend(engine, Duration::from_secs(86_400), true)?;
            let (t, split_sharded) = timed(engine, &split, query, range, SHARDED).await?;
            split_sharded_times.push(t);
            let reference = reference.as_ref().expect("set above");
            for (way, answer, tolerance) in [
                ("split", &cold, 0.0),
                ("cached", &warm, 0.0),
                ("sharded", &sharded, 1e-9),
                ("split and sharded", &split_sharded, 1e-9),
            ] {
                if !same(reference, answer, tolerance) {
                    return Err(Error::Storage(format!(
                        "{name}: the {way} answer differs from the unsplit one"
                    )));
                }
            }
            parts =
                crate::query::frontend::split::split_by_interval(start, end, b.step_ms, 86_400_000)
                    .len();
        }
        let series = match &reference.expect("one run").value {
            QueryValue::Matrix(m) => m.len(),
            _ => 0,
        };
        timings.push(FrontendTiming {
            name,
            unsplit: median(unsplit_times),
            cold: median(cold_times),
            warm: median(warm_times),
            sharded: median(sharded_times),
            split_sharded: median(split_sharded_times),
            parts,
            series,
        });
    }
    Ok(FrontendReport {
        samples,
        series,
        load,
        timings,
    })
}

/// Writes the dataset into the engine's head and flushes it to blocks.
async fn load(engine: &Engine, b: &FrontendBench, from: i64, until: i64) -> Result<(u64, usize)> {
    let shape = DatasetShape {
        jobs: b.jobs,
        instances_per_job: b.instances_per_job,
        start_ms: from,
        scrapes: ((until - from) / b.interval_ms) as usize,
        interval_ms: b.interval_ms,
        jitter_ms: 2_000,
        seed: 11,
    };
    let data = generate(&shape);
    // One block per day, as the ingester's flushes and the compactor's
    // 24 h ranges leave them, so a day's part reads about one block.
    let mut samples = 0u64;
    let mut day_start = from.div_euclid(86_400_000) * 86_400_000;
    while day_start < until {
        let day_end = day_start + 86_400_000;
        let mut builder = SamplesBuilder::new();
        for s in &data {
            let labels = canonical(
                s.labels
                    .iter()
                    .filter(|(n, _)| n != "__name__")
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect(),
            );
            let lo = s.points.partition_point(|(t, _)| *t < day_start);
            let hi = s.points.partition_point(|(t, _)| *t < day_end);
            builder.push_series(s.metric(), &labels, &s.points[lo..hi]);
            samples += (hi - lo) as u64;
        }
        if !builder.is_empty() {
            let batch = builder.finish();
            engine
                .ingester()
                .append_canonical(TENANT, Signal::Samples, &batch)
                .await?;
            let report = engine.flush().await;
            if !report.failed.is_empty() {
                return Err(Error::Storage(format!("flush failed: {:?}", report.failed)));
            }
        }
        day_start = day_end;
    }
    Ok((samples, data.len()))
}

fn frontend(engine: &Engine, split: Duration, cache: bool) -> Result<Arc<QueryFrontend>> {
    let config = FrontendConfig {
        split_queries_by_interval: split,
        cache_results: cache,
        ..FrontendConfig::default()
    };
    Ok(Arc::new(
        QueryFrontend::new(&config, engine.metrics().clone()).map_err(Error::Config)?,
    ))
}

async fn timed(
    engine: &Arc<Engine>,
    frontend: &QueryFrontend,
    query: &str,
    range: (i64, i64, i64),
    sharding: ShardingLimits,
) -> Result<(Duration, QueryOutput)> {
    let options = engine.config().query.promql_options();
    let expr = promql::parse(query).map_err(|e| Error::Config(e.to_string()))?;
    let started = Instant::now();
    let ctx = engine.tables_session(TENANT)?;
    let output = frontend
        .promql_range_query(TENANT, ctx, query, &expr, range, &options, sharding, false)
        .await
        .map_err(|e| Error::Storage(format!("{query}: {e}")))?;
    Ok((started.elapsed(), output))
}

/// Same series, timestamps and values (within a relative `tolerance`;
/// 0: bit for bit; NaN equals NaN).
fn same(a: &QueryOutput, b: &QueryOutput, tolerance: f64) -> bool {
    let close = |x: f64, y: f64| {
        x.to_bits() == y.to_bits() || (x - y).abs() <= tolerance * x.abs().max(y.abs())
    };
    let (QueryValue::Matrix(a), QueryValue::Matrix(b)) = (&a.value, &b.value) else {
        return false;
    };
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.labels == y.labels
                && x.points.len() == y.points.len()
                && x.points
                    .iter()
                    .zip(&y.points)
                    .all(|(p, q)| p.0 == q.0 && close(p.1, q.1))
        })
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}
