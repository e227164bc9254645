//! Selector → samples through the blocks' series directories
//! (`storage::series_index`): a selector's matchers are evaluated against
//! each block's series in memory, and the block is read at the rows of the
//! matching series in the time range only, with neither the `metric` nor
//! the `labels` column decoded. The head and blocks without a directory
//! are left to the column scan of [`super::fetch`], which is told which
//! blocks were read here.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMillisecondType};
use datafusion::catalog::TableProvider;
use datafusion::physical_plan::{SendableRecordBatchStream, execute_stream};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use parquet::arrow::arrow_reader::RowSelection;
use promql_parser::label::{MatchOp, Matcher};
use tokio::task::JoinSet;

use super::PromError;
use super::fetch::{RawSeries, histogram_at, set_matches_by};
use super::shard::query_shard;
use super::value::{Labels, METRIC_NAME};
use crate::catalog::{BlockChoice, SignalTable};
use crate::model::labels::SeriesIdMap;
use crate::storage::manifest::{BlockMeta, Manifest};
use crate::storage::row_index::row_selection;
use crate::storage::samples_cache::{CHUNK_ROWS, SampleChunk};
use crate::storage::series_index::{SeriesIndex, SeriesRun};

/// What a fetch wants of the matching series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wanted {
    /// Their samples, floats and histograms.
    Samples,
    /// Their histogram samples only.
    Histograms,
    /// Their label sets, for the series with a sample in the range.
    LabelSets,
}

/// What [`read_indexed_blocks`] left to the column scan.
pub(super) struct IndexedRead {
    /// The blocks read through their directories: the column scan skips them.
    pub blocks: HashSet<String>,
    /// Whether the head or a block without a directory may hold rows in
    /// the range (else the column scan has nothing to read).
    pub rest_needed: bool,
    /// Samples added to the found series.
    pub samples: usize,
}

/// series_id → index into the found series, or `None` when its labels do
/// not match (shared with the column scan, so both agree on each series).
pub(super) type FoundSeries = SeriesIdMap<Option<usize>>;

/// Reads the series matching `sets` in `[min_ms, max_ms]` from the raw
/// blocks of the tenant's `samples` table that have a series directory,
/// adding them (and, unless only label sets are wanted, their samples, at
/// most `max_samples`) to `series`. `None` when `samples` is not
/// o11ydb's own table.
pub(super) async fn read_indexed_blocks(
    ctx: &SessionContext,
    sets: &[Vec<Matcher>],
    (min_ms, max_ms): (i64, i64),
    found: &mut FoundSeries,
    series: &mut Vec<RawSeries>,
    max_samples: usize,
    wanted: Wanted,
) -> Result<Option<IndexedRead>, PromError> {
    let provider = ctx.table_provider("samples").await.map_err(internal)?;
    let Some(table) = provider.downcast_ref::<SignalTable>() else {
        return Ok(None);
    };
    let manifest = table.manifest();
    let mut read = IndexedRead {
        blocks: HashSet::new(),
        rest_needed: table
            .head_time_range()
            .is_some_and(|(lo, hi)| lo <= max_ms && hi >= min_ms),
        samples: 0,
    };
    let shard_ids = query_shard(sets)
        .map_err(PromError::BadData)?
        .map(|shard| shard.id_range());
    let metric = common_metric(sets);
    // Series whose labels match but whose rows must be read to know
    // whether they have a sample in the range (label sets only).
    let mut unconfirmed: SeriesIdMap<Labels> = SeriesIdMap::default();
    let mut rows_to_read: HashMap<String, RowSelection> = HashMap::new();
    // The chunks of the matching series' rows (samples), block by block.
    let mut chunks = ChunkPlan::default();
    // Blocks in time order, so each series' chunks are appended in order.
    let mut blocks: Vec<&BlockMeta> = manifest
        .blocks
        .iter()
        .filter(|b| b.is_raw() && b.overlaps(Some(min_ms), Some(max_ms)))
        .collect();
    blocks.sort_by_key(|b| (b.min_time, b.max_time));
    for block in blocks {
        let Some(index) = table.series_index(block).await else {
            read.rest_needed = true;
            continue;
        };
        read.blocks.insert(block.id.clone());
        let mut matches: Vec<Option<bool>> = vec![None; index.series_count()];
        let mut ranges: Vec<Range<u64>> = Vec::new();
        if wanted != Wanted::LabelSets {
            chunks.start_block(block, &index);
        }
        for run in index.runs_of(metric) {
            let s = index.series(run.series);
            let matching = *matches[run.series as usize].get_or_insert_with(|| {
                shard_ids.is_none_or(|(lo, hi)| s.id >= lo && hi.is_none_or(|hi| s.id < hi))
                    && sets
                        .iter()
                        .any(|set| set_matches_by(set, |name| s.label(name)))
            });
            if !matching {
                continue;
            }
            let Some(rows) = run.rows_between(min_ms, max_ms, index.mark_rows()) else {
                continue;
            };
            if wanted != Wanted::LabelSets {
                let slot = slot_of(found, series, s.id, || s.label_set.clone());
                chunks.add_run(slot, run, rows);
                continue;
            }
            if run.surely_has_sample_between(min_ms, max_ms) {
                slot_of(found, series, s.id, || s.label_set.clone());
                continue;
            }
            if !found.contains_key(&s.id) {
                unconfirmed
                    .entry(s.id)
                    .or_insert_with(|| s.label_set.clone());
            }
            match ranges.last_mut() {
                Some(last) if last.end == rows.start => last.end = rows.end,
                _ => ranges.push(rows),
            }
        }
        if !ranges.is_empty() {
            rows_to_read.insert(block.id.clone(), row_selection(&ranges, index.rows()));
        }
    }
    if wanted != Wanted::LabelSets {
        let budget = DecodeBudget {
            range: (min_ms, max_ms),
            floats: wanted == Wanted::Samples,
            max_samples,
            counted: AtomicUsize::new(0),
        };
        let budget = Arc::new(budget);
        let chunks = chunks
            .resolve(ctx, table, &manifest, budget.clone())
            .await?;
        append_chunks(&chunks, (min_ms, max_ms), series, wanted);
        read.samples = budget.counted.load(Ordering::Relaxed);
        return Ok(Some(read));
    }
    if !rows_to_read.is_empty() {
        confirm_label_sets(
            ctx,
            table,
            &manifest,
            &rows_to_read,
            (min_ms, max_ms),
            |id| {
                if let Some(labels) = unconfirmed.remove(&id) {
                    slot_of(found, series, id, || labels);
                }
            },
        )
        .await?;
    }
    Ok(Some(read))
}

/// Reads the series ids of the rows of `rows_to_read` and calls `seen`
/// with the id of each row in `[min_ms, max_ms]`.
async fn confirm_label_sets(
    ctx: &SessionContext,
    table: &SignalTable,
    manifest: &Arc<Manifest>,
    rows_to_read: &HashMap<String, RowSelection>,
    (min_ms, max_ms): (i64, i64),
    mut seen: impl FnMut(i64),
) -> Result<(), PromError> {
    let columns = column_indices(table, &["series_id", "timestamp"])?;
    let state = ctx.state();
    let plan = table
        .scan_packed_from(
            &state,
            &columns,
            &[],
            BlockChoice::Rows(manifest, rows_to_read),
        )
        .await
        .map_err(internal)?;
    let mut stream = execute_stream(plan, ctx.task_ctx()).map_err(internal)?;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(internal)?;
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let times = batch.column(1).as_primitive::<TimestampMillisecondType>();
        for (id, t) in ids.values().iter().zip(times.values().iter()) {
            if (min_ms..=max_ms).contains(t) {
                seen(*id);
            }
        }
    }
    Ok(())
}

/// The positions of `names` in the table's schema.
fn column_indices(table: &SignalTable, names: &[&str]) -> Result<Vec<usize>, PromError> {
    let schema = table.schema();
    names
        .iter()
        .map(|c| schema.index_of(c))
        .collect::<Result<_, _>>()
        .map_err(internal)
}

/// One chunk of a found series' rows in one block.
struct Piece {
    /// The found series it belongs to.
    slot: usize,
    /// Position of its block in time order.
    block: usize,
    /// The chunk's first row in the block, and its row count.
    row: u64,
    rows: u64,
    chunk: Option<Arc<SampleChunk>>,
}

/// The chunks a read needs, per block: those the samples cache holds, and
/// those to be read from the blocks.
#[derive(Default)]
struct ChunkPlan {
    pieces: Vec<Piece>,
    /// Per block: its id, its row count, and where its pieces start.
    blocks: Vec<(String, u64, usize)>,
}

impl ChunkPlan {
    fn start_block(&mut self, block: &BlockMeta, index: &SeriesIndex) {
        self.blocks
            .push((block.id.clone(), index.rows(), self.pieces.len()));
    }

    /// Adds the chunks of `run` that hold `rows` (found series `slot`).
    fn add_run(&mut self, slot: usize, run: &SeriesRun, rows: Range<u64>) {
        let block = self.blocks.len() - 1;
        let first = (rows.start - run.first_row) / CHUNK_ROWS;
        let last = (rows.end - 1 - run.first_row) / CHUNK_ROWS;
        for k in first..=last {
            let row = run.first_row + k * CHUNK_ROWS;
            self.pieces.push(Piece {
                slot,
                block,
                row,
                rows: CHUNK_ROWS.min(run.first_row + run.rows - row),
                chunk: None,
            });
        }
    }

    /// Every piece with its chunk: from the samples cache, or read from
    /// the blocks (each block with chunks missing in a task of its own,
    /// the chunks then cached). The samples wanted, cached or decoded,
    /// count against `budget`: reads stop once it is exceeded (and when
    /// the query is dropped).
    async fn resolve(
        mut self,
        ctx: &SessionContext,
        table: &SignalTable,
        manifest: &Arc<Manifest>,
        budget: Arc<DecodeBudget>,
    ) -> Result<Vec<Piece>, PromError> {
        let cache = table.samples_cache();
        let columns = column_indices(table, &SAMPLE_CHUNK_COLUMNS)?;
        let state = ctx.state();
        let mut reads: Vec<(String, Vec<usize>)> = Vec::new();
        let mut tasks = JoinSet::new();
        for (b, (id, block_rows, start)) in self.blocks.iter().enumerate() {
            let end = self.blocks.get(b + 1).map_or(self.pieces.len(), |n| n.2);
            let pieces = &mut self.pieces[*start..end];
            let rows: Vec<u64> = pieces.iter().map(|p| p.row).collect();
            let mut missing: Vec<usize> = Vec::new();
            for (i, (piece, cached)) in pieces.iter_mut().zip(cache.get_many(id, &rows)).enumerate()
            {
                match cached {
                    Some(chunk) => {
                        budget.count(&chunk)?;
                        piece.chunk = Some(chunk);
                    }
                    None => missing.push(start + i),
                }
            }
            if missing.is_empty() {
                continue;
            }
            let ranges: Vec<Range<u64>> = missing
                .iter()
                .map(|&i| self.pieces[i].row..self.pieces[i].row + self.pieces[i].rows)
                .collect();
            let selection = HashMap::from([(id.clone(), row_selection(&ranges, *block_rows))]);
            let plan = table
                .scan_packed_from(
                    &state,
                    &columns,
                    &[],
                    BlockChoice::Rows(manifest, &selection),
                )
                .await
                .map_err(internal)?;
            let stream = execute_stream(plan, ctx.task_ctx()).map_err(internal)?;
            let lengths: Vec<u64> = ranges.iter().map(|r| r.end - r.start).collect();
            let (read, budget) = (reads.len(), budget.clone());
            tasks.spawn(async move { (read, decode_chunks(stream, lengths, &budget).await) });
            reads.push((id.clone(), missing));
        }
        // Dropping the set (an error, or the query dropped) aborts the rest.
        while let Some(done) = tasks.join_next().await {
            let (read, decoded) = done.map_err(internal)?;
            let decoded = decoded?;
            let (id, missing) = std::mem::take(&mut reads[read]);
            cache.insert_many(
                &id,
                missing
                    .iter()
                    .zip(&decoded)
                    .map(|(&i, chunk)| (self.pieces[i].row, chunk.clone())),
            );
            for (i, chunk) in missing.into_iter().zip(decoded) {
                self.pieces[i].chunk = Some(chunk);
            }
        }
        Ok(self.pieces)
    }
}

/// The columns a chunk is decoded from, in this order.
const SAMPLE_CHUNK_COLUMNS: [&str; 3] = ["timestamp", "value", "histogram"];

/// The samples one read wants (in its time range: histograms, and floats
/// too with `floats`), counted as chunks are taken from the cache or
/// decoded, against the query's limit, so a read over the limit fails
/// before it holds all it would read.
struct DecodeBudget {
    range: (i64, i64),
    floats: bool,
    max_samples: usize,
    counted: AtomicUsize,
}

impl DecodeBudget {
    fn count(&self, chunk: &SampleChunk) -> Result<(), PromError> {
        let samples = chunk.samples_between(self.range, self.floats);
        if self.counted.fetch_add(samples, Ordering::Relaxed) + samples > self.max_samples {
            return Err(PromError::TooManySamples("query execution".into()));
        }
        Ok(())
    }
}

/// Cuts the rows of `stream` (of [`SAMPLE_CHUNK_COLUMNS`]) into chunks of
/// `lengths` rows each, in order, counting each against `budget`.
async fn decode_chunks(
    mut stream: SendableRecordBatchStream,
    lengths: Vec<u64>,
    budget: &DecodeBudget,
) -> Result<Vec<Arc<SampleChunk>>, PromError> {
    let mut chunks = Vec::with_capacity(lengths.len());
    let mut lengths = lengths.into_iter();
    let mut left = lengths.next();
    let (mut times, mut values, mut histograms) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(internal)?;
        let batch_times = batch.column(0).as_primitive::<TimestampMillisecondType>();
        let batch_values = batch.column(1).as_primitive::<Float64Type>();
        let batch_histograms = batch
            .column(2)
            .as_binary_opt::<i32>()
            .filter(|h| h.null_count() < h.len());
        let mut row = 0;
        while row < batch.num_rows() {
            let Some(rows) = left.as_mut() else {
                return Err(internal("a block returned more rows than its directory"));
            };
            let take = (*rows as usize).min(batch.num_rows() - row);
            let stretch = row..row + take;
            match batch_histograms {
                None => {
                    times.extend_from_slice(&batch_times.values()[stretch.clone()]);
                    values.extend_from_slice(&batch_values.values()[stretch]);
                }
                Some(column) => {
                    for i in stretch {
                        match histogram_at(Some(column), i)? {
                            Some(h) => histograms.push((batch_times.value(i), h)),
                            None => {
                                times.push(batch_times.value(i));
                                values.push(batch_values.value(i));
                            }
                        }
                    }
                }
            }
            row += take;
            *rows -= take as u64;
            if *rows == 0 {
                let chunk = SampleChunk::new(
                    &times,
                    std::mem::take(&mut values),
                    std::mem::take(&mut histograms),
                );
                budget.count(&chunk)?;
                chunks.push(Arc::new(chunk));
                times.clear();
                left = lengths.next();
            }
        }
    }
    if left.is_some() {
        return Err(internal("a block returned fewer rows than its directory"));
    }
    Ok(chunks)
}

/// Appends the samples of every piece in `[min_ms, max_ms]` to its series,
/// each series' chunks in time order (their number was held to the
/// query's limit by the [`DecodeBudget`] that resolved them).
fn append_chunks(pieces: &[Piece], range: (i64, i64), series: &mut [RawSeries], wanted: Wanted) {
    let mut order: Vec<usize> = (0..pieces.len()).collect();
    order.sort_by_key(|&i| (pieces[i].slot, pieces[i].block, pieces[i].row));
    if wanted == Wanted::Samples {
        // Room for the samples to come, so each series' vectors grow once.
        let mut room = vec![0usize; series.len()];
        for piece in pieces {
            room[piece.slot] += piece.chunk.as_ref().map_or(0, |c| c.floats_between(range));
        }
        for (s, room) in series.iter_mut().zip(room) {
            s.timestamps.reserve_exact(room);
            s.values.reserve_exact(room);
        }
    }
    for i in order {
        let Some(chunk) = &pieces[i].chunk else {
            continue;
        };
        let s = &mut series[pieces[i].slot];
        if wanted == Wanted::Samples {
            chunk.append_floats(range, &mut s.timestamps, &mut s.values);
        }
        chunk.append_histograms(range, &mut s.histograms);
    }
}

/// The metric every alternative of a selector names by equality, if one.
fn common_metric(sets: &[Vec<Matcher>]) -> Option<&str> {
    fn name_of(set: &[Matcher]) -> Option<&str> {
        set.iter()
            .find(|m| m.name == METRIC_NAME && m.op == MatchOp::Equal)
            .map(|m| m.value.as_str())
    }
    let first = name_of(sets.first()?)?;
    sets.iter()
        .all(|set| name_of(set) == Some(first))
        .then_some(first)
}

/// The found series' slot of series `id`, added with `labels` when new.
fn slot_of(
    found: &mut FoundSeries,
    series: &mut Vec<RawSeries>,
    id: i64,
    labels: impl FnOnce() -> Labels,
) -> usize {
    if let Some(&Some(slot)) = found.get(&id) {
        return slot;
    }
    series.push(RawSeries::new(labels()));
    found.insert(id, Some(series.len() - 1));
    series.len() - 1
}

fn internal(e: impl std::fmt::Display) -> PromError {
    PromError::Internal(e.to_string())
}

#[cfg(test)]
mod tests {
    use promql_parser::label::{MatchOp, Matcher};

    use super::super::fetch::{fetch_label_sets, fetch_series, matcher_sets};
    use crate::engine::Engine;
    use crate::model::Signal;
    use crate::model::builders::SamplesBuilder;

    /// `up{job}` series: `a` every 10 ms over [0, 2000), `b` at 0..100 and
    /// 1900..2000 only (a gap), `c` of another metric.
    fn samples(from: i64) -> crate::Result<arrow::array::RecordBatch> {
        let mut b = SamplesBuilder::new();
        let every: Vec<(i64, f64)> = (0..200).map(|i| (from + 10 * i, i as f64)).collect();
        let gapped: Vec<(i64, f64)> = every
            .iter()
            .copied()
            .filter(|(t, _)| (t - from) < 100 || (t - from) >= 1900)
            .collect();
        b.push_series("up", &[("job", "a")], &every);
        b.push_series("up", &[("job", "b")], &gapped);
        b.push_series("other", &[("job", "a")], &every);
        crate::model::normalize::normalize(Signal::Samples, &b.finish())
    }

    /// The matcher sets of the selector `{__name__="<name>"}`.
    fn metric_sets(name: &str) -> Vec<Vec<Matcher>> {
        let matcher = Matcher::new(MatchOp::Equal, "__name__", name);
        matcher_sets(None, &promql_parser::label::Matchers::new(vec![matcher]))
    }

    /// Tenant `t`'s samples from 0 in a block, a later stretch (from 2000)
    /// in the head.
    async fn write_block_and_head(engine: &Engine) {
        let ingester = engine.ingester();
        ingester
            .append_canonical("t", Signal::Samples, &samples(0).unwrap())
            .await
            .unwrap();
        engine.flush().await;
        ingester
            .append_canonical("t", Signal::Samples, &samples(2000).unwrap())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn blocks_are_read_at_the_rows_of_matching_series_in_range() {
        let (engine, dir) = Engine::open_scratch("o11ydb-promql-indexed").await.unwrap();
        write_block_and_head(&engine).await;
        let ctx = engine.tables_session("t").unwrap();
        let name = |v: &str| Matcher::new(MatchOp::Equal, "__name__", v);
        let up = matcher_sets(None, &promql_parser::label::Matchers::new(vec![name("up")]));

        // The block was read through its directory, the head is left over.
        let mut found = super::FoundSeries::default();
        let mut series = Vec::new();
        let read = super::read_indexed_blocks(
            &ctx,
            &up,
            (1000, 1100),
            &mut found,
            &mut series,
            1_000,
            super::Wanted::Samples,
        )
        .await
        .unwrap()
        .expect("o11ydb's own samples table");
        assert_eq!(
            (read.blocks.len(), read.rest_needed, read.samples),
            (1, false, 11)
        );
        assert_eq!(series.len(), 2, "a and b match; b has no sample here");

        // A range within a's block rows 1000..1100: 11 samples, none of b's
        // (in its gap), none of `other`.
        let series = fetch_series(&ctx, &up, 1000, 1100, 1_000, 0).await.unwrap();
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].labels[1], ("job".into(), "a".into()));
        assert_eq!(
            series[0].timestamps,
            (100..=110).map(|i| i * 10).collect::<Vec<_>>()
        );
        assert_eq!(series[0].values[0], 100.0);

        // Across block and head: b's samples on both sides of the boundary.
        let b = matcher_sets(
            None,
            &promql_parser::label::Matchers::new(vec![
                name("up"),
                Matcher::new(MatchOp::Re(regex_of("b|z")), "job", "b|z"),
            ]),
        );
        let series = fetch_series(&ctx, &b, 1980, 2020, 1_000, 0).await.unwrap();
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].timestamps, vec![1980, 1990, 2000, 2010, 2020]);

        // The sample limit counts block and head samples alike (220 + 220).
        let err = fetch_series(&ctx, &up, 0, 4000, 300, 0).await.unwrap_err();
        assert!(err.to_string().contains("query execution"), "{err}");

        // Label sets: only series with a sample in the range, though b's
        // first and last samples bracket it.
        let sets = fetch_label_sets(&ctx, &up, 500, 600).await.unwrap();
        assert_eq!(sets.len(), 1, "{sets:?}");
        let sets = fetch_label_sets(&ctx, &up, 50, 600).await.unwrap();
        assert_eq!(sets.len(), 2, "{sets:?}");
        let all = matcher_sets(
            None,
            &promql_parser::label::Matchers::new(vec![Matcher::new(
                MatchOp::Re(regex_of(".+")),
                "job",
                ".+",
            )]),
        );
        assert_eq!(
            fetch_label_sets(&ctx, &all, 1200, 1300)
                .await
                .unwrap()
                .len(),
            2
        );
        drop(ctx);
        drop(engine);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_tenants_shared_promql_session_sees_data_written_after_it() {
        let (engine, dir) = Engine::open_scratch("o11ydb-promql-session").await.unwrap();
        let ctx = engine.promql_session("t").unwrap();
        let up = metric_sets("up");
        assert!(
            fetch_series(&ctx, &up, 0, 3000, 1_000, 0)
                .await
                .unwrap()
                .is_empty()
        );
        write_block_and_head(&engine).await;
        // The same session, now reading the new block and the head.
        let again = engine.promql_session("t").unwrap();
        assert_eq!(again.session_id(), ctx.session_id());
        let series = fetch_series(&again, &up, 1900, 2100, 1_000, 0)
            .await
            .unwrap();
        assert_eq!(series.len(), 2);
        // Another tenant has its own session and sees none of it; no
        // table functions (whose limits would go stale) are registered.
        let other = engine.promql_session("u").unwrap();
        assert_ne!(other.session_id(), ctx.session_id());
        assert!(
            fetch_series(&other, &up, 0, 3000, 1_000, 0)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(ctx.table_function("promql").is_err());
        drop((ctx, again, other));
        drop(engine);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn chunks_are_cached_and_cut_to_each_range() {
        let (engine, dir) = Engine::open_scratch("o11ydb-promql-chunks").await.unwrap();
        // Two series of 1,000 samples every 10 ms: four chunks each.
        let mut b = SamplesBuilder::new();
        let every: Vec<(i64, f64)> = (0..1000).map(|i| (10 * i, i as f64)).collect();
        b.push_series("up", &[("job", "a")], &every);
        b.push_series("up", &[("job", "b")], &every);
        let batch = crate::model::normalize::normalize(Signal::Samples, &b.finish()).unwrap();
        engine
            .ingester()
            .append_canonical("t", Signal::Samples, &batch)
            .await
            .unwrap();
        engine.flush().await;
        let ctx = engine.tables_session("t").unwrap();
        let cache = engine.ingester().storage().samples_cache();
        let up = metric_sets("up");
        let ranges = [
            (2550, 2570),
            (0, 9990),
            (2500, 5200),
            (9990, 20000),
            (-50, 5),
        ];
        let check = |series: &[super::RawSeries], (lo, hi): (i64, i64)| {
            let want: Vec<i64> = (lo.max(0)..=hi.min(9990)).filter(|t| t % 10 == 0).collect();
            assert_eq!(series.len(), 2, "[{lo}, {hi}]");
            for s in series {
                assert_eq!(s.timestamps, want, "[{lo}, {hi}]");
                let values: Vec<f64> = want.iter().map(|&t| (t / 10) as f64).collect();
                assert_eq!(s.values, values, "[{lo}, {hi}]");
            }
        };
        // A read over the sample limit stops decoding and keeps nothing.
        let err = fetch_series(&ctx, &up, 0, 9990, 1_999, 0)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("query execution"), "{err}");
        assert_eq!(cache.usage(), (0, 0));
        // Decoded from the block, then from the cache.
        for _ in 0..2 {
            for range in ranges {
                let series = fetch_series(&ctx, &up, range.0, range.1, 10_000, 0)
                    .await
                    .unwrap();
                check(&series, range);
            }
        }
        assert_eq!(cache.usage().1, 8, "four chunks of each series");
        // The sample limit counts cached samples too.
        let err = fetch_series(&ctx, &up, 0, 9990, 1_999, 0)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("query execution"), "{err}");
        // With the cache off, the same answers, and nothing kept.
        engine.ingester().storage().set_samples_cache_bytes(0);
        assert_eq!(cache.usage(), (0, 0));
        for range in ranges {
            let series = fetch_series(&ctx, &up, range.0, range.1, 10_000, 0)
                .await
                .unwrap();
            check(&series, range);
        }
        assert_eq!(cache.usage(), (0, 0));
        drop(ctx);
        drop(engine);
        let _ = std::fs::remove_dir_all(dir);
    }

    fn regex_of(pattern: &str) -> regex::Regex {
        regex::Regex::new(&format!("^(?:{pattern})$")).unwrap()
    }
}
