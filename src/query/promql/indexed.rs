//! Selector → samples through the blocks' series directories
//! (`storage::series_index`): a selector's matchers are evaluated against
//! each block's series in memory, and the block is read at the rows of the
//! matching series in the time range only, with neither the `metric` nor
//! the `labels` column decoded. The head and blocks without a directory
//! are left to the column scan of [`super::fetch`], which is told which
//! blocks were read here.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use datafusion::catalog::TableProvider;
use datafusion::physical_plan::execute_stream;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use parquet::arrow::arrow_reader::RowSelection;
use promql_parser::label::{MatchOp, Matcher};

use super::PromError;
use super::fetch::{
    RawSeries, SAMPLE_COLUMNS, histogram_at, labels_of, sample_columns, set_matches_by,
};
use super::shard::query_shard;
use super::value::{Labels, METRIC_NAME};
use crate::catalog::{BlockChoice, SignalTable};
use crate::model::labels::SeriesIdMap;
use crate::storage::row_index::row_selection;
use crate::storage::series_index::IndexedSeries;

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
    // Rows to be read per found series (samples only).
    let mut expected: Vec<usize> = Vec::new();
    for block in manifest.blocks.iter().filter(|b| b.is_raw()) {
        if !block.overlaps(Some(min_ms), Some(max_ms)) {
            continue;
        }
        let Some(index) = table.series_index(block).await else {
            read.rest_needed = true;
            continue;
        };
        read.blocks.insert(block.id.clone());
        let mut matches: Vec<Option<bool>> = vec![None; index.series_count()];
        let mut ranges: Vec<Range<u64>> = Vec::new();
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
            if wanted == Wanted::LabelSets {
                if run.surely_has_sample_between(min_ms, max_ms) {
                    slot_of(found, series, s.id, || series_labels(s));
                    continue;
                }
                if !found.contains_key(&s.id) {
                    unconfirmed.entry(s.id).or_insert_with(|| series_labels(s));
                }
            } else {
                let slot = slot_of(found, series, s.id, || series_labels(s));
                if wanted == Wanted::Samples {
                    if expected.len() <= slot {
                        expected.resize(slot + 1, 0);
                    }
                    expected[slot] += (rows.end - rows.start) as usize;
                }
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
    if rows_to_read.is_empty() {
        return Ok(Some(read));
    }
    // Room for the rows to come, so each series' vectors grow once.
    for (slot, rows) in expected.into_iter().enumerate() {
        series[slot].timestamps.reserve(rows);
        series[slot].values.reserve(rows);
    }
    let schema = table.schema();
    let columns: Vec<usize> = SAMPLE_COLUMNS
        .iter()
        .map(|c| schema.index_of(c))
        .collect::<Result<_, _>>()
        .map_err(internal)?;
    let state = ctx.state();
    let plan = table
        .scan_packed_from(
            &state,
            &columns,
            &[],
            BlockChoice::Rows(&manifest, &rows_to_read),
        )
        .await
        .map_err(internal)?;
    let mut stream = execute_stream(plan, ctx.task_ctx()).map_err(internal)?;
    let mut last_slot: Option<(i64, Option<usize>)> = None;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(internal)?;
        let (ids, times, values, histograms) = sample_columns(&batch);
        for row in 0..batch.num_rows() {
            let t = times.value(row);
            if t < min_ms || t > max_ms {
                continue;
            }
            let id = ids.value(row);
            if wanted == Wanted::LabelSets {
                if let Some(labels) = unconfirmed.remove(&id) {
                    slot_of(found, series, id, || labels);
                }
                continue;
            }
            // A series' rows come together: its slot is looked up once.
            let slot = match last_slot {
                Some((last, slot)) if last == id => slot,
                _ => {
                    let slot = found.get(&id).copied().flatten();
                    last_slot = Some((id, slot));
                    slot
                }
            };
            let Some(slot) = slot else {
                continue;
            };
            let histogram = histogram_at(histograms, row)?;
            if wanted == Wanted::Histograms && histogram.is_none() {
                continue;
            }
            read.samples += 1;
            if read.samples > max_samples {
                return Err(PromError::TooManySamples("query execution".into()));
            }
            series[slot].push(t, values.value(row), histogram);
        }
    }
    Ok(Some(read))
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

fn series_labels(s: &IndexedSeries) -> Labels {
    labels_of(
        &s.metric,
        s.labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
    )
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

    #[tokio::test]
    async fn blocks_are_read_at_the_rows_of_matching_series_in_range() {
        let (engine, dir) = Engine::open_scratch("o11ydb-promql-indexed").await.unwrap();
        let ingester = engine.ingester();
        ingester
            .append_canonical("t", Signal::Samples, &samples(0).unwrap())
            .await
            .unwrap();
        engine.flush().await;
        // A later stretch stays in the head.
        ingester
            .append_canonical("t", Signal::Samples, &samples(2000).unwrap())
            .await
            .unwrap();
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

    fn regex_of(pattern: &str) -> regex::Regex {
        regex::Regex::new(&format!("^(?:{pattern})$")).unwrap()
    }
}
