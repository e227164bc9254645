//! `o11ydb bench samples`: ingest generated samples through the real write
//! path into a fresh data directory, cutting a block every `block_span` of
//! data (as Prometheus cuts 2 h blocks), then report bytes per sample on
//! disk and time an SQL aggregate over the blocks.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bench::samples::SampleGenerator;
use crate::config::Config;
use crate::engine::Engine;
use crate::error::Result;
use crate::model::Signal;

#[derive(Debug, Clone)]
pub struct SamplesBench {
    pub series: usize,
    pub scrapes: usize,
    pub interval_ms: i64,
    /// Data time covered by one block (a flush is forced at each boundary).
    pub block_span_ms: i64,
    pub data_dir: PathBuf,
    pub seed: u64,
}

#[derive(Debug, Clone)]
pub struct SamplesReport {
    pub samples: u64,
    pub blocks: usize,
    pub block_bytes: u64,
    pub index_bytes: u64,
    pub ingest: Duration,
    pub blocks_dir: PathBuf,
}

impl SamplesReport {
    pub fn bytes_per_sample(&self) -> f64 {
        (self.block_bytes + self.index_bytes) as f64 / self.samples as f64
    }
}

/// The start of generated data: a fixed instant, so runs are comparable.
pub const START_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

pub async fn ingest_samples(b: &SamplesBench) -> Result<(std::sync::Arc<Engine>, SamplesReport)> {
    let mut config = Config {
        data_dir: b.data_dir.clone(),
        ..Config::default()
    };
    config.ingester.flush_max_bytes = u64::MAX;
    config.ingester.flush_max_age = Duration::from_secs(365 * 86400);
    let (engine, _) = Engine::open(config).await?;
    let ingester = engine.ingester().clone();
    let mut generator = SampleGenerator::new(b.series, b.scrapes, b.interval_ms, START_MS, b.seed);
    let started = Instant::now();
    let mut samples = 0u64;
    let mut next_cut = START_MS + b.block_span_ms;
    let rows_per_batch = b.series.clamp(1, 50_000);
    while let Some(batch) = generator.next_batch(rows_per_batch) {
        samples += batch.num_rows() as u64;
        // Cut blocks exactly at span boundaries, as a TSDB does.
        let (_, max) =
            crate::model::normalize::time_range(Signal::Samples, &batch).unwrap_or((0, 0));
        if max >= next_cut {
            let (before, after) = split_at_time(&batch, next_cut)?;
            ingester.append("bench", Signal::Samples, &before).await?;
            ingester.flush_all().await;
            next_cut += b.block_span_ms;
            ingester.append("bench", Signal::Samples, &after).await?;
        } else {
            ingester.append("bench", Signal::Samples, &batch).await?;
        }
    }
    ingester.flush_all().await;
    let ingest = started.elapsed();
    let manifest = ingester.storage().manifest("bench", Signal::Samples);
    let report = SamplesReport {
        samples,
        blocks: manifest.blocks.len(),
        block_bytes: manifest.blocks.iter().map(|m| m.bytes).sum(),
        index_bytes: manifest.blocks.iter().map(|m| m.index_bytes).sum(),
        ingest,
        blocks_dir: b.data_dir.join("blocks/tenants/bench/samples/blocks"),
    };
    Ok((engine, report))
}

/// The rows of a samples batch before `cut_ms` and those at or after it.
fn split_at_time(
    batch: &arrow::array::RecordBatch,
    cut_ms: i64,
) -> Result<(arrow::array::RecordBatch, arrow::array::RecordBatch)> {
    use arrow::array::{AsArray, BooleanArray};
    use arrow::datatypes::TimestampMillisecondType;
    let ts = batch.column(0).as_primitive::<TimestampMillisecondType>();
    let before: BooleanArray = ts.iter().map(|t| t.map(|t| t < cut_ms)).collect();
    let after = arrow::compute::not(&before)?;
    Ok((
        arrow::compute::filter_record_batch(batch, &before)?,
        arrow::compute::filter_record_batch(batch, &after)?,
    ))
}

/// Runs `sql` `runs` times in a fresh session of tenant `bench`; returns the
/// fastest wall time and the result rendered as text.
pub async fn time_sql(engine: &Engine, sql: &str, runs: usize) -> Result<(Duration, String)> {
    let ctx = engine.session("bench").await?;
    let mut best = Duration::MAX;
    let mut rendered = String::new();
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let batches = ctx.sql(sql).await?.collect().await?;
        best = best.min(started.elapsed());
        rendered = arrow::util::pretty::pretty_format_batches(&batches)?.to_string();
    }
    Ok((best, rendered))
}

/// Total size of the regular files under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                dir_bytes(&p)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}
