//! `o11ydb bench downsampling`: generated samples over `days` old enough
//! for both resolutions, ingested through the real write path (one flush per
//! day), one compactor run (merge + downsampling); reports the bytes of the
//! raw, 5m and 1h blocks for the same range and the time of a long-range
//! `rate` query at step 1h over raw data vs 5m vs 1h data.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::bench::samples::SampleGenerator;
use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::Signal;
use crate::query::promql::{self, QueryOptions, QueryValue, SourceResolution};
use crate::storage::compactor::downsample::{RAW, RES_1H, RES_5M};

#[derive(Debug, Clone)]
pub struct DownsamplingBench {
    pub series: usize,
    pub days: usize,
    pub interval_ms: i64,
    pub data_dir: PathBuf,
    pub seed: u64,
    /// Timed runs of each query (the best counts).
    pub runs: usize,
}

/// Blocks, rows and bytes (Parquet + index) of one resolution.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    pub blocks: usize,
    pub rows: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone)]
pub struct DownsamplingFigures {
    pub raw: Resolution,
    pub five_minutes: Resolution,
    pub one_hour: Resolution,
    pub ingest: Duration,
    pub compaction: Duration,
    pub query: String,
    /// Best query time reading raw, 5m and 1h data, and the series answered.
    pub query_raw: Duration,
    pub query_5m: Duration,
    pub query_1h: Duration,
    pub series: usize,
}

const TENANT: &str = "bench";
const DAY_MS: i64 = 86_400_000;

fn resolution(engine: &Engine, resolution_ms: i64) -> Resolution {
    let m = engine
        .ingester()
        .storage()
        .manifest(TENANT, Signal::Samples);
    let mut r = Resolution::default();
    for b in m.blocks.iter().filter(|b| b.resolution_ms == resolution_ms) {
        r.blocks += 1;
        r.rows += b.rows;
        r.bytes += b.bytes + b.index_bytes;
    }
    r
}

pub async fn run(b: &DownsamplingBench) -> Result<DownsamplingFigures> {
    let mut config = Config {
        data_dir: b.data_dir.clone(),
        ..Config::default()
    };
    config.ingester.flush_max_bytes = u64::MAX;
    config.ingester.flush_max_age = Duration::from_secs(365 * 86400);
    config.compactor.downsample = true;
    let (engine, _) = Engine::open(config).await?;
    let ingester = engine.ingester().clone();

    // The data ends 11 days ago: past both downsampling ages.
    let now = chrono::Utc::now().timestamp_millis();
    let end = now - now.rem_euclid(DAY_MS) - 11 * DAY_MS;
    let start = end - b.days as i64 * DAY_MS;
    let interval = b.interval_ms.max(1);
    let scrapes_per_day = (DAY_MS / interval) as usize;
    let started = Instant::now();
    let mut generator =
        SampleGenerator::new(b.series, scrapes_per_day * b.days, interval, start, b.seed);
    let per_flush = (b.series * scrapes_per_day) as u64;
    let mut pending = 0u64;
    while let Some(batch) = generator.next_batch(b.series.clamp(1, 50_000)) {
        pending += batch.num_rows() as u64;
        ingester.append(TENANT, Signal::Samples, &batch).await?;
        if pending >= per_flush {
            ingester.flush_all().await;
            pending = 0;
        }
    }
    ingester.flush_all().await;
    let ingest = started.elapsed();

    let started = Instant::now();
    let report = engine.compactor().run().await;
    let compaction = started.elapsed();
    if let Some(failure) = report.failed.first() {
        return Err(Error::Storage(format!("compaction failed: {failure}")));
    }

    let query = "sum by (job) (rate(http_requests_total[1h]))".to_string();
    let ctx = engine.tables_session(TENANT)?;
    let (q_start, q_end) = (start + DAY_MS / 4, end - DAY_MS / 4);
    let mut timings = Vec::new();
    let mut answers = Vec::new();
    for max in [RAW, RES_5M, RES_1H] {
        let options = QueryOptions {
            max_source_resolution: if max == RAW {
                SourceResolution::Raw
            } else {
                SourceResolution::UpTo(max)
            },
            ..engine.config().query.promql_options()
        };
        let mut best = Duration::MAX;
        let mut answer = None;
        for _ in 0..b.runs.max(1) {
            let t = Instant::now();
            let out = promql::range_query(&ctx, &query, q_start, q_end, 3_600_000, &options)
                .await
                .map_err(|e| Error::Storage(format!("{query}: {e}")))?;
            best = best.min(t.elapsed());
            answer = Some(out.value);
        }
        timings.push(best);
        answers.push(answer.expect("at least one run"));
    }
    let series = match &answers[0] {
        QueryValue::Matrix(m) => m.len(),
        _ => 0,
    };
    Ok(DownsamplingFigures {
        raw: resolution(&engine, RAW),
        five_minutes: resolution(&engine, RES_5M),
        one_hour: resolution(&engine, RES_1H),
        ingest,
        compaction,
        query,
        query_raw: timings[0],
        query_5m: timings[1],
        query_1h: timings[2],
        series,
    })
}
