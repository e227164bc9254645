//! `o11ydb bench compaction`: ingest generated samples and log lines through
//! the real write path, flushing many small blocks (as a busy ingester
//! does), then run the compactor once and report its throughput and the
//! bytes per sample and per log line before and after.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::bench::samples::SampleGenerator;
use crate::bench::storage::START_MS;
use crate::config::Config;
use crate::engine::Engine;
use crate::error::Result;
use crate::model::Signal;
use crate::model::builders::{LogLine, LogsBuilder};

#[derive(Debug, Clone)]
pub struct CompactionBench {
    pub series: usize,
    pub scrapes: usize,
    pub interval_ms: i64,
    pub log_streams: usize,
    pub log_lines: usize,
    /// Blocks each signal's data is flushed into.
    pub flushes: usize,
    pub data_dir: PathBuf,
    pub seed: u64,
}

/// One signal's blocks before and after.
#[derive(Debug, Clone, Default)]
pub struct SignalFigures {
    pub rows: u64,
    pub blocks_before: usize,
    pub bytes_before: u64,
    pub blocks_after: usize,
    pub bytes_after: u64,
}

impl SignalFigures {
    pub fn bytes_per_row_before(&self) -> f64 {
        self.bytes_before as f64 / self.rows.max(1) as f64
    }

    pub fn bytes_per_row_after(&self) -> f64 {
        self.bytes_after as f64 / self.rows.max(1) as f64
    }
}

#[derive(Debug, Clone)]
pub struct CompactionFigures {
    pub samples: SignalFigures,
    pub logs: SignalFigures,
    pub ingest: Duration,
    pub compaction: Duration,
    /// Block bytes (Parquet + index) read and written by the run.
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub rows_in: u64,
}

impl CompactionFigures {
    pub fn mb_per_second(&self) -> f64 {
        self.bytes_in as f64 / 1e6 / self.compaction.as_secs_f64()
    }

    pub fn rows_per_second(&self) -> f64 {
        self.rows_in as f64 / self.compaction.as_secs_f64()
    }
}

const TENANT: &str = "bench";

fn totals(engine: &Engine, signal: Signal) -> (usize, u64, u64) {
    let m = engine.ingester().storage().manifest(TENANT, signal);
    (
        m.blocks.len(),
        m.total_bytes() + m.total_index_bytes(),
        m.total_rows(),
    )
}

/// A log line of stream `stream` at `n`: an access log with some variety.
fn log_line(stream: usize, n: usize, out: &mut String) {
    use std::fmt::Write;
    out.clear();
    let method = ["GET", "GET", "GET", "POST", "PUT", "DELETE"][n % 6];
    let status = [200, 200, 200, 200, 201, 404, 500][(n * 7 + stream) % 7];
    let _ = write!(
        out,
        "level=info method={method} path=/api/v1/items/{} status={status} duration_ms={} user=u{} trace={:016x}",
        (n * 31 + stream) % 5000,
        (n * 13) % 900 + 3,
        (n * 17 + stream * 3) % 250,
        (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ stream as u64,
    );
}

pub async fn run(b: &CompactionBench) -> Result<CompactionFigures> {
    let mut config = Config {
        data_dir: b.data_dir.clone(),
        ..Config::default()
    };
    config.ingester.flush_max_bytes = u64::MAX;
    config.ingester.flush_max_age = Duration::from_secs(365 * 86400);
    let (engine, _) = Engine::open(config).await?;
    let ingester = engine.ingester().clone();
    let flushes = b.flushes.max(1);
    let started = Instant::now();

    // Samples: series × scrapes, cut into `flushes` blocks.
    let total = (b.series * b.scrapes) as u64;
    let per_flush = total.div_ceil(flushes as u64).max(1);
    let mut generator = SampleGenerator::new(b.series, b.scrapes, b.interval_ms, START_MS, b.seed);
    let mut pending = 0u64;
    while let Some(batch) = generator.next_batch(b.series.clamp(1, 50_000)) {
        pending += batch.num_rows() as u64;
        ingester.append(TENANT, Signal::Samples, &batch).await?;
        if pending >= per_flush {
            ingester.flush_all().await;
            pending = 0;
        }
    }

    // Logs: streams × lines, spread over the same time span.
    let span_ns = (b.scrapes as i64 * b.interval_ms).max(1) * 1_000_000;
    let step_ns = (span_ns / b.log_lines.max(1) as i64).max(1);
    let lines_per_flush = b.log_lines.div_ceil(flushes).max(1);
    let streams: Vec<Vec<(String, String)>> = (0..b.log_streams)
        .map(|s| {
            vec![
                ("app".to_string(), format!("app{}", s % 20)),
                ("env".to_string(), "prod".to_string()),
                ("pod".to_string(), format!("pod-{s}")),
            ]
        })
        .collect();
    let ids: Vec<i64> = streams.iter().map(|l| LogsBuilder::stream_id(l)).collect();
    let mut text = String::new();
    let mut builder = LogsBuilder::new();
    for n in 0..b.log_lines {
        for (s, labels) in streams.iter().enumerate() {
            log_line(s, n, &mut text);
            builder.push(
                labels,
                ids[s],
                &LogLine {
                    timestamp_ns: START_MS * 1_000_000 + n as i64 * step_ns + s as i64,
                    line: &text,
                    ..Default::default()
                },
            );
        }
        if (n + 1) % lines_per_flush == 0 || n + 1 == b.log_lines {
            let batch = builder.finish();
            ingester.append(TENANT, Signal::Logs, &batch).await?;
            ingester.flush_all().await;
        }
    }
    ingester.flush_all().await;
    let ingest = started.elapsed();

    let (samples_blocks, samples_bytes, samples_rows) = totals(&engine, Signal::Samples);
    let (logs_blocks, logs_bytes, logs_rows) = totals(&engine, Signal::Logs);
    let started = Instant::now();
    let report = engine.compactor().run().await;
    let compaction = started.elapsed();
    if let Some(failure) = report.failed.first() {
        return Err(crate::error::Error::Storage(format!(
            "compaction failed: {failure}"
        )));
    }
    let (samples_after, samples_bytes_after, samples_rows_after) = totals(&engine, Signal::Samples);
    let (logs_after, logs_bytes_after, logs_rows_after) = totals(&engine, Signal::Logs);
    if samples_rows_after != samples_rows || logs_rows_after != logs_rows {
        return Err(crate::error::Error::Storage(format!(
            "compaction changed row counts: samples {samples_rows} → {samples_rows_after}, logs {logs_rows} → {logs_rows_after}"
        )));
    }
    Ok(CompactionFigures {
        samples: SignalFigures {
            rows: samples_rows,
            blocks_before: samples_blocks,
            bytes_before: samples_bytes,
            blocks_after: samples_after,
            bytes_after: samples_bytes_after,
        },
        logs: SignalFigures {
            rows: logs_rows,
            blocks_before: logs_blocks,
            bytes_before: logs_bytes,
            blocks_after: logs_after,
            bytes_after: logs_bytes_after,
        },
        ingest,
        compaction,
        bytes_in: samples_bytes + logs_bytes,
        bytes_out: samples_bytes_after + logs_bytes_after,
        rows_in: report.rows_in,
    })
}
