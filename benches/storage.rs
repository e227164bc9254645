//! Storage-path benchmarks (criterion) over realistic generated samples
//! ([`o11ydb::bench::samples::SampleGenerator`]):
//!
//! * `wal_append/sequential_1000rows` — one writer appending 1,000-row samples
//!   batches to a WAL in a temporary directory, one `fdatasync` per append
//!   (default [`WalOptions`], fsync on); throughput in rows/s.
//! * `wal_append/concurrent_8x1000rows` — 8 tokio tasks appending 1,000-row
//!   batches at once, so the writer thread's group commit shares one fsync
//!   among the waiting batches; throughput is the total rows/s of all writers.
//! * `block_write/samples_100k_rows` — [`write_block`] (sort, encode, Parquet
//!   with zstd) of one 100,000-row normalised batch; rows/s. The resulting
//!   bytes per sample are printed once on stderr.
//! * `line_templates/100k_lines` — the template column
//!   and variable columns
//!   ([`o11ydb::storage::line_template::template_columns`]) of 100,000 lines
//!   of the LogQL benchmark's log set, as a log block's flush computes it;
//!   throughput in line bytes/s.
//! * `scan/pruned` and `scan/full` — SQL aggregates through an engine session
//!   over 6 hours of samples (600 series × 1,440 scrapes at 15 s) stored as 6
//!   one-hour blocks: `pruned` restricts the time to one hour, so only one
//!   block is read (checked once with `EXPLAIN ANALYZE` before timing, which
//!   must show `blocks_scanned=1`); `full` aggregates all 6 blocks. Throughput
//!   is the rows the query covers.
//!
//! Run with `cargo bench --bench storage` (add `-- --quick` for a rough
//! pass, or a filter such as `-- scan/` for one group). The fsync numbers
//! depend entirely on the disk holding the temporary directory.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::Int64Type;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use o11ydb::Engine;
use o11ydb::bench::samples::SampleGenerator;
use o11ydb::bench::storage::{START_MS, SamplesBench, ingest_samples};
use o11ydb::ingest::wal::{Wal, WalOptions};
use o11ydb::model::Signal;
use o11ydb::model::normalize::normalize;
use o11ydb::storage::block::write_block;
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

const TENANT: &str = "bench";
const SCRAPE_MS: i64 = 15_000;
const HOUR_MS: i64 = 3_600_000;

/// Rows per WAL append.
const WAL_BATCH_ROWS: usize = 1_000;
/// Concurrent writers in the group-commit variant.
const WAL_WRITERS: usize = 8;
/// Appends each concurrent writer makes per timed iteration, so groups form
/// in a steady state rather than only at the start of an iteration.
const WAL_APPENDS_PER_WRITER: usize = 4;

const BLOCK_ROWS: usize = 100_000;

const SCAN_SERIES: usize = 600;
const SCAN_SCRAPES: usize = 1_440; // 6 h at 15 s
const SCAN_BLOCKS: usize = 6;

const PRUNED_SQL: &str = "SELECT count(*), avg(value) FROM samples \
     WHERE timestamp >= '2026-01-01T02:00:00Z' AND timestamp < '2026-01-01T03:00:00Z'";
const FULL_SQL: &str = "SELECT count(*), avg(value) FROM samples";

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// `series × scrapes` generated samples in batches of `rows_per_batch`.
fn generate(series: usize, scrapes: usize, rows_per_batch: usize) -> Vec<RecordBatch> {
    let mut generator = SampleGenerator::new(series, scrapes, SCRAPE_MS, START_MS, 1);
    std::iter::from_fn(|| generator.next_batch(rows_per_batch)).collect()
}

fn open_wal(dir: &Path) -> Wal {
    let (wal, _) = Wal::open(
        dir,
        WalOptions::default(),
        0,
        |_, _| Ok(()),
        Box::new(|_| {}),
    )
    .expect("open WAL");
    wal
}

/// Deletes the segments written so far (outside the timed section), so a long
/// run does not fill the disk.
fn trim_wal(wal: &Wal) {
    wal.remove_segments_before(wal.current_segment())
        .expect("remove WAL segments");
}

fn bench_wal_append(c: &mut Criterion) {
    let rt = runtime();
    // 16 distinct 1,000-row batches (1,000 series, one scrape each), cycled.
    let batches: Arc<Vec<RecordBatch>> = Arc::new(generate(WAL_BATCH_ROWS, 16, WAL_BATCH_ROWS));
    let mut group = c.benchmark_group("wal_append");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    let dir = tempfile::tempdir().expect("tempdir");
    let wal = open_wal(dir.path());
    group.throughput(Throughput::Elements(WAL_BATCH_ROWS as u64));
    group.bench_function("sequential_1000rows", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let wal = wal.clone();
            let batches = batches.clone();
            async move {
                let started = Instant::now();
                for i in 0..iters as usize {
                    let batch = batches[i % batches.len()].clone();
                    wal.append(TENANT, Signal::Samples, batch)
                        .await
                        .expect("WAL append");
                }
                let elapsed = started.elapsed();
                trim_wal(&wal);
                elapsed
            }
        });
    });
    drop(wal);
    drop(dir);

    let dir = tempfile::tempdir().expect("tempdir");
    let wal = open_wal(dir.path());
    group.throughput(Throughput::Elements(
        (WAL_WRITERS * WAL_APPENDS_PER_WRITER * WAL_BATCH_ROWS) as u64,
    ));
    group.bench_function("concurrent_8x1000rows", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let wal = wal.clone();
            let batches = batches.clone();
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    let mut writers = JoinSet::new();
                    for w in 0..WAL_WRITERS {
                        let wal = wal.clone();
                        let batches = batches.clone();
                        writers.spawn(async move {
                            for k in 0..WAL_APPENDS_PER_WRITER {
                                let batch = batches[(w + k * WAL_WRITERS) % batches.len()].clone();
                                wal.append(TENANT, Signal::Samples, batch)
                                    .await
                                    .expect("WAL append");
                            }
                        });
                    }
                    while let Some(done) = writers.join_next().await {
                        done.expect("writer task");
                    }
                    total += started.elapsed();
                    trim_wal(&wal);
                }
                total
            }
        });
    });
    group.finish();
    drop(wal);
    drop(dir);
}

fn bench_block_write(c: &mut Criterion) {
    // 1,000 series × 100 scrapes, normalised as the ingester would before the WAL.
    let parts = generate(1_000, BLOCK_ROWS / 1_000, 10_000);
    let batch = concat_batches(&Signal::Samples.schema(), &parts).expect("concat");
    let batch = normalize(Signal::Samples, &batch).expect("normalize");
    assert_eq!(batch.num_rows(), BLOCK_ROWS);
    let bytes = write_block(Signal::Samples, &batch).expect("write_block");
    eprintln!(
        "block_write: {} rows -> {} bytes of Parquet = {:.3} bytes/sample",
        BLOCK_ROWS,
        bytes.len(),
        bytes.len() as f64 / BLOCK_ROWS as f64
    );

    let mut group = c.benchmark_group("block_write");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(BLOCK_ROWS as u64));
    group.bench_function("samples_100k_rows", |b| {
        b.iter(|| write_block(Signal::Samples, &batch).expect("write_block"));
    });
    group.finish();
}

/// Ingests 6 h of samples through the engine with a block cut exactly at
/// every hour of data time (the same path as `o11ydb bench samples`), so a
/// one-hour query overlaps exactly one block.
async fn build_scan_engine(dir: &Path) -> Arc<Engine> {
    let bench = SamplesBench {
        series: SCAN_SERIES,
        scrapes: SCAN_SCRAPES,
        interval_ms: SCRAPE_MS,
        block_span_ms: HOUR_MS,
        data_dir: dir.join("engine"),
        seed: 1,
    };
    let (engine, report) = ingest_samples(&bench).await.expect("ingest samples");
    assert_eq!(
        report.blocks, SCAN_BLOCKS,
        "expected one block per hour of data"
    );
    engine
}

async fn query_count(ctx: &datafusion::prelude::SessionContext, sql: &str) -> i64 {
    let batches = ctx
        .sql(sql)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

fn bench_scan(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = rt.block_on(build_scan_engine(dir.path()));
    let ctx = rt.block_on(engine.session(TENANT)).expect("session");

    // Make sure the pruned query really reads one block before timing it.
    let explain = rt.block_on(async {
        let batches = ctx
            .sql(&format!("EXPLAIN ANALYZE {PRUNED_SQL}"))
            .await
            .expect("plan EXPLAIN ANALYZE")
            .collect()
            .await
            .expect("run EXPLAIN ANALYZE");
        arrow::util::pretty::pretty_format_batches(&batches)
            .expect("render plan")
            .to_string()
    });
    let scan_line = explain
        .lines()
        .find(|l| l.contains("SignalScanExec"))
        .unwrap_or_else(|| panic!("no SignalScanExec in the plan:\n{explain}"));
    eprintln!(
        "scan/pruned plan: {}",
        scan_line.trim_matches(|c: char| c == '|' || c.is_whitespace())
    );
    assert!(
        scan_line.contains("blocks_scanned=1 ") || scan_line.contains("blocks_scanned=1,"),
        "the pruned query must read exactly one block:\n{explain}"
    );

    let pruned_rows = rt.block_on(query_count(&ctx, PRUNED_SQL));
    let full_rows = rt.block_on(query_count(&ctx, FULL_SQL));
    assert_eq!(full_rows, (SCAN_SERIES * SCAN_SCRAPES) as i64);
    eprintln!("scan: pruned query covers {pruned_rows} rows, full query {full_rows} rows");

    let mut group = c.benchmark_group("scan");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    let ctx = &ctx;
    for (name, sql, rows) in [
        ("pruned", PRUNED_SQL, pruned_rows),
        ("full", FULL_SQL, full_rows),
    ] {
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(move || async move {
                ctx.sql(sql)
                    .await
                    .expect("plan")
                    .collect()
                    .await
                    .expect("run")
            });
        });
    }
    group.finish();
    drop(engine);
    drop(dir);
}

fn bench_line_templates(c: &mut Criterion) {
    let dataset = o11ydb::bench::logql::LogsDataset {
        bytes: 100_000 * 230,
        hours: 1,
        end_ns: 1_767_225_600_000_000_000,
    };
    let mut lines = Vec::new();
    dataset
        .generate(|l| {
            lines.push(l.line.to_string());
            Ok(())
        })
        .expect("generate");
    let bytes: usize = lines.iter().map(String::len).sum();
    let lines: arrow::array::ArrayRef = Arc::new(arrow::array::StringArray::from(lines));
    let column = o11ydb::storage::line_template::template_columns(&lines).templates;
    eprintln!(
        "line_templates: {} lines, {} distinct templates",
        lines.len(),
        column
            .as_dictionary::<arrow::datatypes::Int32Type>()
            .values()
            .len()
    );
    let mut group = c.benchmark_group("line_templates");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("100k_lines", |b| {
        b.iter(|| o11ydb::storage::line_template::template_columns(&lines));
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_wal_append,
    bench_block_write,
    bench_line_templates,
    bench_scan
);
criterion_main!(benches);
