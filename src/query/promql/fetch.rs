//! Selector → samples: one DataFusion scan of the tenant's `samples` table
//! per PromQL selector, with the time range, the metric name and label
//! equalities pushed into the provider (so blocks are pruned by time and
//! bloom), then every matcher applied exactly as Prometheus does to each
//! series' label set, and the rows grouped into time-ordered series.

use std::sync::Arc;

use arrow::array::{
    Array, AsArray, BinaryArray, Float64Array, Int64Array, MapArray, RecordBatch,
    TimestampMillisecondArray,
};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMillisecondType};
use datafusion::catalog::TableProvider;
use datafusion::functions::core::expr_fn::get_field;
use datafusion::logical_expr::{Expr, col, lit};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use futures::StreamExt;
use promql_parser::label::{MatchOp, Matcher, Matchers};

use super::PromError;
use super::indexed::{FoundSeries, IndexedRead, Wanted, read_indexed_blocks};
use super::shard::{QUERY_SHARD_LABEL, query_shard};
use super::value::{Hist, Labels, METRIC_NAME, compare_labels};
use crate::catalog::{BlockChoice, SignalTable};
use crate::model::histogram::{FloatHistogram, appended_counter_reset_hint};
use crate::model::labels::{SeriesIdMap, map_row};
use crate::query::scan_plan::{Output, filtered_scan, finish};
use crate::storage::codec::{PackedColumn, unpack_pairs};

/// The samples of one series: float samples (stale markers included) and
/// native histogram samples, each in time order, one per timestamp.
#[derive(Debug, Clone, Default)]
pub struct RawSeries {
    pub labels: Labels,
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
    /// (milliseconds, histogram), usually empty.
    pub histograms: Vec<(i64, Hist)>,
}

impl RawSeries {
    pub fn new(labels: Labels) -> Self {
        RawSeries {
            labels,
            ..Default::default()
        }
    }

    /// Adds one sample: a histogram when `histogram` holds one, else a float.
    pub(super) fn push(&mut self, t: i64, v: f64, histogram: Option<Hist>) {
        match histogram {
            Some(h) => self.histograms.push((t, h)),
            None => {
                self.timestamps.push(t);
                self.values.push(v);
            }
        }
    }

    /// Number of samples, floats and histograms.
    pub fn len(&self) -> usize {
        self.timestamps.len() + self.histograms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The histogram of row `row` of a `histogram` column, if it holds one.
pub(super) fn histogram_at(
    column: Option<&BinaryArray>,
    row: usize,
) -> Result<Option<Hist>, PromError> {
    match column {
        Some(c) if c.is_valid(row) => FloatHistogram::decode(c.value(row))
            .map(|h| Some(Arc::new(h)))
            .map_err(|e| PromError::Internal(format!("stored native histogram: {e}"))),
        _ => Ok(None),
    }
}

/// All matchers of a selector as one list of alternatives (`{a="1" or b="2"}`
/// gives two), each with the metric name folded in as a `__name__` matcher.
pub fn matcher_sets(name: Option<&str>, matchers: &Matchers) -> Vec<Vec<Matcher>> {
    let mut sets: Vec<Vec<Matcher>> = if matchers.or_matchers.is_empty() {
        vec![matchers.matchers.clone()]
    } else {
        matchers.or_matchers.clone()
    };
    if let Some(name) = name {
        for set in &mut sets {
            if !set
                .iter()
                .any(|m| m.name == METRIC_NAME && m.op == MatchOp::Equal && m.value == name)
            {
                set.push(Matcher::new(MatchOp::Equal, METRIC_NAME, name));
            }
        }
    }
    sets
}

/// Whether a label set satisfies every matcher of one set (a missing label
/// reads as ""). The `__query_shard__` pseudo matcher is not a label: the
/// scan applies it to the series id ([`pushdown_filter`]).
pub(crate) fn set_matches(set: &[Matcher], labels: &[(String, String)]) -> bool {
    set_matches_by(set, |name| {
        labels
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    })
}

/// [`set_matches`] over a label lookup (`""` for a missing label).
pub(super) fn set_matches_by<'a>(set: &[Matcher], label: impl Fn(&str) -> &'a str) -> bool {
    set.iter()
        .filter(|m| m.name != QUERY_SHARD_LABEL)
        .all(|m| m.is_match(label(&m.name)))
}

/// The values a regex matcher can only match when it is a plain
/// alternation of literals (`a|b|c`), none of them empty.
pub(crate) fn literal_alternatives(pattern: &str) -> Option<Vec<String>> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '/' | ' ');
    let values: Vec<String> = pattern.split('|').map(str::to_string).collect();
    values
        .iter()
        .all(|v| !v.is_empty() && v.chars().all(plain))
        .then_some(values)
}

/// The predicate pushed into the scan: the time range, the series id range
/// of a `__query_shard__` (checked by [`check_query_shard`] first), and the
/// equalities and literal alternations (`=~"a|b"`) every alternative shares
/// on the metric name and on labels, so the provider can
/// prune blocks by bloom and pages by series id, and fewer rows reach the
/// evaluator.
pub(crate) fn pushdown_filter(sets: &[Vec<Matcher>], min_ms: i64, max_ms: i64) -> Expr {
    let filter = plain_filter(sets, min_ms, max_ms);
    match label_filter(sets) {
        Some(labels) => filter.and(labels),
        None => filter,
    }
}

/// The part of [`pushdown_filter`] on columns stored as they are: time,
/// series id and metric name.
fn plain_filter(sets: &[Vec<Matcher>], min_ms: i64, max_ms: i64) -> Expr {
    let ts = |ms: i64| {
        lit(ScalarValue::TimestampMillisecond(
            Some(ms),
            Some("UTC".into()),
        ))
    };
    let mut filter = col("timestamp")
        .gt_eq(ts(min_ms))
        .and(col("timestamp").lt_eq(ts(max_ms)));
    if let Ok(Some(shard)) = query_shard(sets) {
        let (lo, hi) = shard.id_range();
        if lo > i64::MIN {
            filter = filter.and(col("series_id").gt_eq(lit(lo)));
        }
        if let Some(hi) = hi {
            filter = filter.and(col("series_id").lt(lit(hi)));
        }
    }
    shared_conditions(sets, true)
        .into_iter()
        .fold(filter, Expr::and)
}

/// The part of [`pushdown_filter`] on labels, if any.
fn label_filter(sets: &[Vec<Matcher>]) -> Option<Expr> {
    shared_conditions(sets, false).into_iter().reduce(Expr::and)
}

/// The equalities and literal alternations of a single matcher set, as
/// conditions on the `metric` column (`metric`) or on `labels` entries.
fn shared_conditions(sets: &[Vec<Matcher>], metric: bool) -> Vec<Expr> {
    let [set] = sets else {
        return Vec::new();
    };
    set.iter()
        .filter(|m| (m.name == METRIC_NAME) == metric && m.name != QUERY_SHARD_LABEL)
        .filter_map(|m| {
            let target = if m.name == METRIC_NAME {
                col("metric")
            } else {
                get_field(col("labels"), m.name.as_str())
            };
            if let MatchOp::Re(_) = m.op
                && let Some(values) = literal_alternatives(&m.value)
            {
                return Some(target.in_list(values.into_iter().map(lit).collect(), false));
            }
            // An empty label value also matches series without the label.
            (m.op == MatchOp::Equal && (metric || !m.value.is_empty()))
                .then(|| target.eq(lit(m.value.clone())))
        })
        .collect()
}

/// The series matching `sets` with samples in `[min_ms, max_ms]`; at most
/// `max_samples` samples in all, or [`PromError::TooManySamples`], and at
/// most `max_series` series (0 = unlimited), or [`PromError::TooManySeries`].
pub async fn fetch_series(
    ctx: &SessionContext,
    sets: &[Vec<Matcher>],
    min_ms: i64,
    max_ms: i64,
    max_samples: usize,
    max_series: usize,
) -> Result<Vec<RawSeries>, PromError> {
    let series = scan(ctx, sets, min_ms, max_ms, max_samples, true).await?;
    if max_series > 0 && series.len() > max_series {
        return Err(PromError::TooManySeries {
            limit: max_series,
            fetched: series.len(),
        });
    }
    Ok(series)
}

/// The native histogram samples alone of the series matching `sets` in
/// `[min_ms, max_ms]` (at most `max_samples`): what a range read from
/// downsampled blocks, which hold floats only, takes from the raw ones.
pub async fn fetch_histograms(
    ctx: &SessionContext,
    sets: &[Vec<Matcher>],
    min_ms: i64,
    max_ms: i64,
    max_samples: usize,
) -> Result<Vec<RawSeries>, PromError> {
    check_query_shard(sets)?;
    if sets.is_empty() || min_ms > max_ms {
        return Ok(Vec::new());
    }
    let mut index = SeriesIndex::default();
    let mut series: Vec<RawSeries> = Vec::new();
    let rest = read_indexed_blocks(
        ctx,
        sets,
        (min_ms, max_ms),
        &mut index,
        &mut series,
        max_samples,
        Wanted::Histograms,
    )
    .await?;
    let Some(rest) = Rest::of(&rest, max_samples) else {
        return Ok(in_storage_order(series, true));
    };
    let filter = plain_filter(sets, min_ms, max_ms).and(col("histogram").is_not_null());
    read_rows(
        ctx,
        sets,
        (filter, label_filter(sets)),
        &mut index,
        &mut series,
        Some(rest.max_samples),
        true,
        rest.blocks,
    )
    .await?;
    Ok(in_storage_order(series, true))
}

/// The distinct label sets of the series matching `sets` in `[min_ms, max_ms]`.
pub async fn fetch_label_sets(
    ctx: &SessionContext,
    sets: &[Vec<Matcher>],
    min_ms: i64,
    max_ms: i64,
) -> Result<Vec<Labels>, PromError> {
    let series = scan(ctx, sets, min_ms, max_ms, usize::MAX, false).await?;
    Ok(series.into_iter().map(|s| s.labels).collect())
}

/// Over spans longer than this, labels are read from the span's last
/// stretch only (plus the few series that ended earlier), and the samples
/// without their label columns.
const LABEL_WINDOW_MS: i64 = 15 * 60 * 1000;

/// series_id → index into the found series, or `None` when its labels do
/// not match.
type SeriesIndex = FoundSeries;

/// What the column scan reads after [`read_indexed_blocks`]: every block
/// but those read through their series directories (and the head), up to
/// the samples left of the query's limit.
struct Rest<'a> {
    blocks: BlockChoice<'a>,
    max_samples: usize,
}

impl<'a> Rest<'a> {
    /// `None` when nothing is left to read.
    fn of(indexed: &'a Option<IndexedRead>, max_samples: usize) -> Option<Rest<'a>> {
        match indexed {
            None => Some(Rest {
                blocks: BlockChoice::All,
                max_samples,
            }),
            Some(read) if !read.rest_needed => None,
            Some(read) => Some(Rest {
                blocks: BlockChoice::Except(&read.blocks),
                max_samples: max_samples.saturating_sub(read.samples),
            }),
        }
    }
}

async fn scan(
    ctx: &SessionContext,
    sets: &[Vec<Matcher>],
    min_ms: i64,
    max_ms: i64,
    max_samples: usize,
    keep_samples: bool,
) -> Result<Vec<RawSeries>, PromError> {
    check_query_shard(sets)?;
    if sets.is_empty() || min_ms > max_ms {
        return Ok(Vec::new());
    }
    let mut index = SeriesIndex::default();
    let mut series: Vec<RawSeries> = Vec::new();
    let wanted = match keep_samples {
        true => Wanted::Samples,
        false => Wanted::LabelSets,
    };
    let indexed = read_indexed_blocks(
        ctx,
        sets,
        (min_ms, max_ms),
        &mut index,
        &mut series,
        max_samples,
        wanted,
    )
    .await?;
    let Some(Rest {
        blocks,
        max_samples,
    }) = Rest::of(&indexed, max_samples)
    else {
        return Ok(in_storage_order(series, keep_samples));
    };
    if !keep_samples || max_ms.saturating_sub(min_ms) <= LABEL_WINDOW_MS {
        let filter = (plain_filter(sets, min_ms, max_ms), label_filter(sets));
        read_rows(
            ctx,
            sets,
            filter,
            &mut index,
            &mut series,
            Some(max_samples),
            keep_samples,
            blocks,
        )
        .await?;
    } else {
        // Labels of the series present at the end of the span, matching or
        // not (so the samples of those that do not match can be skipped)...
        let end_window = plain_filter(sets, max_ms - LABEL_WINDOW_MS, max_ms);
        read_labels(ctx, sets, end_window, &mut index, &mut series, blocks).await?;
        // ...then every sample, label columns left unread...
        let span = (min_ms, max_ms);
        let pending =
            read_samples(ctx, sets, span, &index, &mut series, max_samples, blocks).await?;
        // ...and the labels of the series that ended earlier.
        if !pending.is_empty() {
            let ids: Vec<Expr> = pending.keys().map(|&id| lit(id)).collect();
            let filter =
                plain_filter(sets, min_ms, max_ms).and(col("series_id").in_list(ids, false));
            read_labels(ctx, sets, filter, &mut index, &mut series, blocks).await?;
            for (id, samples) in pending {
                if let Some(Some(i)) = index.get(&id) {
                    let s = &mut series[*i];
                    s.timestamps.extend(samples.timestamps);
                    s.values.extend(samples.values);
                    s.histograms.extend(samples.histograms);
                }
            }
        }
    }
    Ok(in_storage_order(series, keep_samples))
}

/// The series a scan found, each in time order with its histograms' reset
/// hints set, those without samples dropped (`keep_samples`), sorted by
/// label set as Prometheus' index returns them.
fn in_storage_order(mut series: Vec<RawSeries>, keep_samples: bool) -> Vec<RawSeries> {
    for s in &mut series {
        order_by_time(s);
        mark_counter_resets(&mut s.histograms);
    }
    if keep_samples {
        series.retain(|s| !s.is_empty());
    }
    series.sort_by(|a, b| compare_labels(&a.labels, &b.labels));
    series
}

/// Reads series ids with their metric and labels (and, with `keep_samples`,
/// their samples, at most `max_samples`) of the rows `exact` selects,
/// adding series not yet indexed; `labels` (conditions on label entries)
/// only narrows the blocks and pages read, as every series' labels are
/// matched against `sets` here. Only `blocks` are read.
#[allow(clippy::too_many_arguments)]
async fn read_rows(
    ctx: &SessionContext,
    sets: &[Vec<Matcher>],
    (exact, labels): (Expr, Option<Expr>),
    index: &mut SeriesIndex,
    series: &mut Vec<RawSeries>,
    max_samples: Option<usize>,
    keep_samples: bool,
    blocks: BlockChoice<'_>,
) -> Result<(), PromError> {
    let columns: &[&str] = if keep_samples {
        &[
            "series_id",
            "metric",
            "labels",
            "timestamp",
            "value",
            "histogram",
        ]
    } else {
        &["series_id", "metric", "labels"]
    };
    let mut stream = labeled_rows_stream(ctx, exact, labels, columns, blocks).await?;
    let mut total = 0usize;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(internal)?;
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let metrics = batch.column(1).as_string::<i32>();
        let label_sets = LabelColumn::of(batch.column(2))?;
        let samples = keep_samples.then(|| {
            (
                batch.column(3).as_primitive::<TimestampMillisecondType>(),
                batch.column(4).as_primitive::<Float64Type>(),
                batch.column(5).as_binary_opt::<i32>(),
            )
        });
        for row in 0..batch.num_rows() {
            let id = ids.value(row);
            let slot = match index.get(&id) {
                Some(slot) => *slot,
                None => {
                    let labels = label_sets.labels(metrics.value(row), row)?;
                    let slot = sets.iter().any(|set| set_matches(set, &labels)).then(|| {
                        series.push(RawSeries::new(labels));
                        series.len() - 1
                    });
                    index.insert(id, slot);
                    slot
                }
            };
            if let Some(i) = slot
                && let Some((times, values, histograms)) = samples
            {
                total += 1;
                if max_samples.is_some_and(|max| total > max) {
                    return Err(PromError::TooManySamples("query execution".into()));
                }
                let histogram = histogram_at(histograms, row)?;
                series[i].push(times.value(row), values.value(row), histogram);
            }
        }
    }
    Ok(())
}

/// [`read_rows`] of series ids and labels alone, of the rows `filter`
/// (on columns stored as they are) selects.
async fn read_labels(
    ctx: &SessionContext,
    sets: &[Vec<Matcher>],
    filter: Expr,
    index: &mut SeriesIndex,
    series: &mut Vec<RawSeries>,
    blocks: BlockChoice<'_>,
) -> Result<(), PromError> {
    let rows = (filter, None);
    read_rows(ctx, sets, rows, index, series, None, false, blocks).await
}

/// A `labels` column as a scan returns it: packed label sets (o11ydb's
/// own table, read without building maps) or a map column.
enum LabelColumn<'a> {
    Packed(PackedColumn<'a>),
    Map(&'a MapArray),
}

impl<'a> LabelColumn<'a> {
    fn of(column: &'a arrow::array::ArrayRef) -> Result<Self, PromError> {
        match column.as_any().downcast_ref::<MapArray>() {
            Some(map) => Ok(LabelColumn::Map(map)),
            None => PackedColumn::of(column)
                .map(LabelColumn::Packed)
                .map_err(bad_label_column),
        }
    }

    /// The label set of row `row`, `metric` as its `__name__`.
    fn labels(&self, metric: &str, row: usize) -> Result<Labels, PromError> {
        match self {
            LabelColumn::Map(maps) => Ok(series_labels(metric, maps, row)),
            LabelColumn::Packed(packed) => {
                let pairs = match packed.set(row) {
                    Some((_, bytes)) => unpack_pairs(bytes).map_err(bad_label_column)?,
                    None => Vec::new(),
                };
                Ok(Labels::of_series(metric, &pairs))
            }
        }
    }
}

fn bad_label_column(e: crate::error::Error) -> PromError {
    PromError::Internal(format!("samples.labels: {e}"))
}

/// Samples of series not indexed yet, by series id (labels left empty).
type PendingSamples = SeriesIdMap<RawSeries>;

/// Reads `series_id, timestamp, value` only: samples of matching indexed
/// series are added, those of unknown series kept aside until their labels
/// are known; each kind is held to `max_samples`. Only `blocks` are read.
async fn read_samples(
    ctx: &SessionContext,
    sets: &[Vec<Matcher>],
    (min_ms, max_ms): (i64, i64),
    index: &SeriesIndex,
    series: &mut [RawSeries],
    max_samples: usize,
    blocks: BlockChoice<'_>,
) -> Result<PendingSamples, PromError> {
    let filter = plain_filter(sets, min_ms, max_ms);
    let mut stream = labeled_rows_stream(ctx, filter, None, &SAMPLE_COLUMNS, blocks).await?;
    let mut pending = PendingSamples::default();
    let (mut kept, mut held) = (0usize, 0usize);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(internal)?;
        let (ids, times, values, histograms) = sample_columns(&batch);
        for row in 0..batch.num_rows() {
            let id = ids.value(row);
            let (target, count) = match index.get(&id) {
                Some(None) => continue,
                Some(Some(i)) => (&mut series[*i], &mut kept),
                None => (pending.entry(id).or_default(), &mut held),
            };
            *count += 1;
            if *count > max_samples {
                return Err(PromError::TooManySamples("query execution".into()));
            }
            let histogram = histogram_at(histograms, row)?;
            target.push(times.value(row), values.value(row), histogram);
        }
    }
    Ok(pending)
}

/// The columns a read of samples alone returns, in this order.
const SAMPLE_COLUMNS: [&str; 4] = ["series_id", "timestamp", "value", "histogram"];

/// The [`SAMPLE_COLUMNS`] of a batch: ids, times, values and histograms.
fn sample_columns(
    batch: &RecordBatch,
) -> (
    &Int64Array,
    &TimestampMillisecondArray,
    &Float64Array,
    Option<&BinaryArray>,
) {
    (
        batch.column(0).as_primitive::<Int64Type>(),
        batch.column(1).as_primitive::<TimestampMillisecondType>(),
        batch.column(2).as_primitive::<Float64Type>(),
        batch.column(3).as_binary_opt::<i32>(),
    )
}

/// Refuses a malformed or inconsistent `__query_shard__` matcher (`bad_data`).
pub(crate) fn check_query_shard(sets: &[Vec<Matcher>]) -> Result<(), PromError> {
    query_shard(sets).map(|_| ()).map_err(PromError::BadData)
}

async fn samples_stream(
    ctx: &SessionContext,
    filter: Expr,
    columns: &[&str],
) -> Result<datafusion::physical_plan::SendableRecordBatchStream, PromError> {
    let columns: Vec<Expr> = columns.iter().map(|c| col(*c)).collect();
    filtered_scan(ctx, "samples", filter, &columns, &[])
        .await
        .map_err(internal)
}

/// The rows `exact` selects, as [`samples_stream`] would return them, but
/// from o11ydb's own `samples` table with `labels` as packed label sets:
/// no label map is built for rows whose series is already known. `exact`
/// may only name columns stored as they are (time, ids, metric,
/// histogram); `labels` prunes blocks and pages and is not re-checked.
/// Only `blocks` are read (all of them from another table).
async fn labeled_rows_stream(
    ctx: &SessionContext,
    exact: Expr,
    labels: Option<Expr>,
    columns: &[&str],
    blocks: BlockChoice<'_>,
) -> Result<datafusion::physical_plan::SendableRecordBatchStream, PromError> {
    let provider = ctx.table_provider("samples").await.map_err(internal)?;
    let Some(table) = provider.downcast_ref::<SignalTable>() else {
        let filter = labels.into_iter().fold(exact, Expr::and);
        return samples_stream(ctx, filter, columns).await;
    };
    let schema = table.schema();
    let mut read: Vec<usize> = columns
        .iter()
        .map(|c| schema.index_of(c))
        .collect::<Result<_, _>>()
        .map_err(internal)?;
    for column in exact.column_refs() {
        let i = schema.index_of(&column.name).map_err(internal)?;
        if !read.contains(&i) {
            read.push(i);
        }
    }
    let state = ctx.state();
    let mut filters = vec![exact.clone()];
    filters.extend(labels);
    let scan = table
        .scan_packed_from(&state, &read, &filters, blocks)
        .await
        .map_err(internal)?;
    finish(&state, scan, exact, Output::Leading(columns.len()), &[]).map_err(internal)
}

pub(crate) fn series_labels(metric: &str, maps: &MapArray, row: usize) -> Labels {
    Labels::of_series(metric, &map_row(maps, row))
}

/// Sets the counter reset hint of each histogram after the first whose
/// hint is unknown, as Prometheus' TSDB does when it appends them:
/// `reset` when it is a counter reset against the one before, else
/// `not_reset`. Gauge histograms keep theirs.
fn mark_counter_resets(histograms: &mut [(i64, Hist)]) {
    for i in 1..histograms.len() {
        let (done, rest) = histograms.split_at_mut(i);
        if let Some(hint) = appended_counter_reset_hint(&done[i - 1].1, &rest[0].1) {
            Arc::make_mut(&mut rest[0].1).counter_reset_hint = hint;
        }
    }
}

/// Sorts a series' samples by time; of samples sharing a timestamp the last
/// written is kept.
fn order_by_time(s: &mut RawSeries) {
    if !s.histograms.is_sorted_by(|a, b| a.0 < b.0) {
        s.histograms.sort_by_key(|(t, _)| *t);
        // Of histograms sharing a timestamp, the last written (the stable
        // sort kept write order) is kept.
        let mut kept: Vec<(i64, Hist)> = Vec::with_capacity(s.histograms.len());
        for (t, h) in std::mem::take(&mut s.histograms) {
            match kept.last_mut() {
                Some(last) if last.0 == t => *last = (t, h),
                _ => kept.push((t, h)),
            }
        }
        s.histograms = kept;
    }
    if s.timestamps.is_sorted_by(|a, b| a < b) {
        return;
    }
    // Sorted as pairs (the stable sort keeps write order among equal
    // times, and finds the sorted runs of each block a series came from).
    let mut pairs: Vec<(i64, f64)> = s
        .timestamps
        .iter()
        .copied()
        .zip(s.values.iter().copied())
        .collect();
    pairs.sort_by_key(|&(t, _)| t);
    s.timestamps.clear();
    s.values.clear();
    for (t, v) in pairs {
        if s.timestamps.last() == Some(&t) {
            *s.values.last_mut().expect("paired with timestamps") = v;
        } else {
            s.timestamps.push(t);
            s.values.push(v);
        }
    }
}

fn internal(e: impl std::fmt::Display) -> PromError {
    PromError::Internal(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::literal_alternatives;

    #[test]
    fn only_plain_alternations_become_in_lists() {
        assert_eq!(
            literal_alternatives("api|web-1|db:5432"),
            Some(vec!["api".into(), "web-1".into(), "db:5432".into()])
        );
        for pattern in ["a.*", "a|", "", "(a|b)", "a+", "x\\|y", "a|b.c"] {
            assert_eq!(literal_alternatives(pattern), None, "{pattern}");
        }
    }
}
