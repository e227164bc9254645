//! Stream selector → log entries: one DataFusion scan of the tenant's
//! `logs` table with the time range, label equalities and the line filters
//! that read the stored line pushed down (so blocks are pruned by time and
//! bloom, and the vectorised string kernels drop most rows before any
//! per-line work), then every selector matcher applied exactly to each
//! stream's label set and the surviving rows handed to a callback as
//! pipeline [`Entry`]s. A scan for one shard of a sharded metric query
//! ([`super::shard`]) reads only the streams whose `stream_id` falls in the
//! shard's range (blocks are sorted by stream id, so page statistics skip
//! the others).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, MapArray};
use arrow::datatypes::{Int64Type, TimestampNanosecondType};
use datafusion::functions::core::expr_fn::get_field;
use datafusion::functions::expr_fn::{contains, regexp_like};
use datafusion::logical_expr::{Expr, col, lit};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use futures::StreamExt;

use super::LogqlError;
use super::ast::{LineFilter, LineFilterOp, LineFilterValue, MatchOp, Stage};
use super::pipeline::{Entry, LabelMatcher};
use crate::model::labels::{SeriesIdMap, map_row};
use crate::query::promql::Labels;
use crate::query::promql::shard::QueryShard;
use crate::query::scan_plan::filtered_scan;

/// What to read: matching streams' entries with timestamps in
/// `[start_ns, end_ns]` (both inclusive).
pub struct Scan<'a> {
    pub selector: &'a [LabelMatcher],
    pub start_ns: i64,
    pub end_ns: i64,
    /// Filters on the stored line, evaluated by DataFusion.
    pub line_filters: Vec<Expr>,
    /// When not empty: disjoint conditions, one scan each (see
    /// `trace_id_hint`); an entry passes through exactly one.
    pub branches: Vec<Expr>,
    /// Entries in time order (DataFusion sorts, spilling under the memory
    /// limit) instead of storage order; within each branch.
    pub ordered: Option<super::Direction>,
    /// Only the streams of one shard (a leg of a sharded metric query).
    pub shard: Option<StreamShard>,
}

/// The streams of one shard, and what would make a shard's answer differ
/// from its part of the whole one: lines of two streams forming one series.
/// A pipeline only adds labels — unless it removes or rewrites some
/// (`changed_labels`: the unwrapped label, `drop`, `label_format`) — so
/// that needs one of those to be a stream label, or structured metadata
/// overriding a stream label. The scan refuses with
/// [`LogqlError::ShardingUnsafe`] when it meets either, and the query runs
/// unsharded.
#[derive(Debug, Clone)]
pub struct StreamShard {
    pub shard: QueryShard,
    pub changed_labels: Vec<String>,
}

impl StreamShard {
    /// Refuses a stream one of whose labels the query removes or rewrites.
    fn check_stream(&self, labels: &Labels) -> Result<(), LogqlError> {
        match labels
            .iter()
            .find(|(n, _)| self.changed_labels.iter().any(|c| c == n))
        {
            Some((name, _)) => Err(LogqlError::ShardingUnsafe(format!(
                "the query removes or rewrites the stream label {name:?}: lines of several streams may form one series"
            ))),
            None => Ok(()),
        }
    }
}

/// What of a pipeline can run inside the scan: the line filters before the
/// first stage that rewrites the line (except `ip()` and pattern filters,
/// which have no SQL form) — those leave the pipeline — and a hint for a
/// `trace_id` label filter (see `trace_id_hint`), which stays in it.
/// Returns the scan filters, the disjoint scan branches and the stages
/// left for the pipeline.
pub fn split_line_filters(stages: &[Stage]) -> (Vec<Expr>, Vec<Expr>, Vec<Stage>) {
    let mut pushed = Vec::new();
    let mut branches = Vec::new();
    let mut rest = Vec::new();
    let mut rewritten = false;
    let mut labels_changed = false;
    for stage in stages {
        match stage {
            Stage::LineFilter(f) if !rewritten => match line_filter_expr(f) {
                Some(expr) => pushed.push(expr),
                None => rest.push(stage.clone()),
            },
            Stage::LabelFilter(f) => {
                if !labels_changed
                    && branches.is_empty()
                    && let Some(hint) = trace_id_hint(f)
                {
                    branches = hint;
                    rest.push(stage.clone());
                } else if !labels_changed && let Some(expr) = label_filter_expr(f) {
                    pushed.push(expr);
                } else {
                    rest.push(stage.clone());
                }
            }
            Stage::LineFormat { .. } | Stage::Decolorize => {
                rewritten = true;
                rest.push(stage.clone());
            }
            Stage::Parser(p) => {
                rewritten |= matches!(p, super::ast::ParserStage::Unpack);
                labels_changed = true;
                rest.push(stage.clone());
            }
            Stage::LabelFormat(_) | Stage::Drop(_) | Stage::Keep(_) => {
                labels_changed = true;
                rest.push(stage.clone());
            }
            _ => rest.push(stage.clone()),
        }
    }
    (pushed, branches, rest)
}

/// A label's value before any stage has changed labels: the entry's
/// structured metadata, else its stream label (NULL when neither has it).
pub fn base_label(name: &str) -> Expr {
    datafusion::functions::core::expr_fn::coalesce(vec![
        get_field(col("structured_metadata"), name),
        get_field(col("labels"), name),
    ])
}

/// A label filter before any stage that changes labels, as a scan filter
/// when it has an exact SQL form: equalities with a non-empty value (a
/// missing label reads as "" and fails them), joined by `and`.
fn label_filter_expr(f: &super::ast::LabelFilter) -> Option<Expr> {
    use super::ast::LabelFilter;
    match f {
        LabelFilter::And(a, b) => Some(label_filter_expr(a)?.and(label_filter_expr(b)?)),
        LabelFilter::String(m)
            if m.op == MatchOp::Eq && !m.value.is_empty() && !m.name.starts_with("__") =>
        {
            Some(base_label(&m.name).eq(lit(m.value.clone())))
        }
        _ => None,
    }
}

/// `| trace_id="<32 lowercase hex>"` before any stage that can add or
/// change labels: such a label comes from the stream labels or the
/// structured metadata, and ingest copies a metadata trace id of that form
/// into the `trace_id` column — so every entry that can pass has
/// `trace_id = v`, or else `labels['trace_id'] = v`. The two are scanned
/// separately: the first reads only the rows whose `trace_id` column
/// matches (the Parquet reader filters on that column before reading the
/// others) in blocks whose index knows the id; the second is pruned by the
/// index of stream labels, which in practice skips every block.
fn trace_id_hint(f: &super::ast::LabelFilter) -> Option<Vec<Expr>> {
    use super::ast::LabelFilter;
    match f {
        LabelFilter::And(a, b) => trace_id_hint(a).or_else(|| trace_id_hint(b)),
        LabelFilter::String(m)
            if m.name == "trace_id"
                && m.op == MatchOp::Eq
                && m.value.len() == 32
                && m.value
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            let v = || lit(m.value.clone());
            Some(vec![
                col("trace_id").eq(v()),
                get_field(col("labels"), "trace_id")
                    .eq(v())
                    .and(col("trace_id").is_null().or(col("trace_id").not_eq(v()))),
            ])
        }
        _ => None,
    }
}

fn line_filter_expr(f: &LineFilter) -> Option<Expr> {
    let texts: Vec<&str> = f
        .values
        .iter()
        .map(|v| match v {
            LineFilterValue::Text(t) => Some(t.as_str()),
            LineFilterValue::Ip(_) => None,
        })
        .collect::<Option<_>>()?;
    let one = |t: &str| -> Option<Expr> {
        match f.op {
            LineFilterOp::Contains | LineFilterOp::NotContains => {
                Some(contains(col("line"), lit(t.to_string())))
            }
            LineFilterOp::Regex | LineFilterOp::NotRegex => {
                // The pattern was compiled by the pipeline already; the same
                // engine (the regex crate) evaluates it here.
                Some(regexp_like(col("line"), lit(t.to_string()), None))
            }
            LineFilterOp::Pattern | LineFilterOp::NotPattern => None,
        }
    };
    let any = texts
        .iter()
        .map(|t| one(t))
        .collect::<Option<Vec<_>>>()?
        .into_iter()
        .reduce(Expr::or)?;
    Some(match f.op {
        LineFilterOp::NotContains | LineFilterOp::NotRegex => datafusion::logical_expr::not(any),
        _ => any,
    })
}

fn pushdown_filter(scan: &Scan<'_>) -> Expr {
    let ts = |ns: i64| {
        lit(ScalarValue::TimestampNanosecond(
            Some(ns),
            Some("UTC".into()),
        ))
    };
    let mut filter = col("timestamp")
        .gt_eq(ts(scan.start_ns))
        .and(col("timestamp").lt_eq(ts(scan.end_ns)));
    if let Some(shard) = &scan.shard {
        let (lo, hi) = shard.shard.id_range();
        if lo > i64::MIN {
            filter = filter.and(col("stream_id").gt_eq(lit(lo)));
        }
        if let Some(hi) = hi {
            filter = filter.and(col("stream_id").lt(lit(hi)));
        }
    }
    for m in scan.selector {
        let target = || get_field(col("labels"), m.name.as_str());
        match m.op {
            MatchOp::Eq if !m.value.is_empty() => {
                filter = filter.and(target().eq(lit(m.value.clone())));
            }
            MatchOp::Re => {
                if let Some(values) = crate::query::promql::fetch::literal_alternatives(&m.value) {
                    filter =
                        filter.and(target().in_list(values.into_iter().map(lit).collect(), false));
                }
            }
            _ => {}
        }
    }
    for f in &scan.line_filters {
        filter = filter.and(f.clone());
    }
    filter
}

/// A stream the selector matched: its labels, sorted, shared by its entries.
struct StreamInfo {
    labels: Labels,
}

/// Reads every matching entry, calling `on_entry` with each (in storage
/// order unless the scan asks for time order); `on_entry` returns false to
/// stop early.
pub async fn scan_entries(
    ctx: &SessionContext,
    scan: &Scan<'_>,
    mut on_entry: impl FnMut(Entry<'_>) -> Result<bool, LogqlError>,
) -> Result<(), LogqlError> {
    if scan.start_ns > scan.end_ns {
        return Ok(());
    }
    let filters = branch_filters(scan);
    let mut streams: SeriesIdMap<Option<Arc<StreamInfo>>> = SeriesIdMap::default();
    for filter in filters {
        if !scan_filtered(ctx, scan, filter, &mut streams, &mut on_entry).await? {
            break;
        }
    }
    Ok(())
}

/// The filter of each scan a [`Scan`] makes: one, or one per branch.
fn branch_filters(scan: &Scan<'_>) -> Vec<Expr> {
    if scan.branches.is_empty() {
        vec![pushdown_filter(scan)]
    } else {
        scan.branches
            .iter()
            .map(|b| pushdown_filter(scan).and(b.clone()))
            .collect()
    }
}

/// Whether the scan's label filters select exactly the selector's streams
/// (equalities with a value, literal alternations), so no stream's labels
/// need checking afterwards.
pub fn selector_pushed_exactly(selector: &[LabelMatcher]) -> bool {
    selector.iter().all(|m| match m.op {
        MatchOp::Eq => !m.value.is_empty(),
        MatchOp::Re => crate::query::promql::fetch::literal_alternatives(&m.value).is_some(),
        _ => false,
    })
}

/// The values of the grouping labels of one entry (None: absent).
type GroupKey = Vec<Option<String>>;

/// The timestamps (and, with `with_bytes`, line lengths; else 1) of the
/// matching entries, reading no other column but the labels `names`
/// (structured metadata, else stream label): per distinct combination of
/// their values, the label set (names with a value, sorted) and its points,
/// unsorted. For counting metric queries whose pipeline ran entirely in the
/// scan and whose selector is pushed exactly ([`selector_pushed_exactly`]).
/// None past `max_samples`.
pub async fn scan_grouped_times(
    ctx: &SessionContext,
    scan: &Scan<'_>,
    names: &[String],
    with_bytes: bool,
    max_samples: usize,
) -> Result<Option<Vec<(Labels, Vec<(i64, f64)>)>>, LogqlError> {
    let mut groups: Vec<(GroupKey, Vec<(i64, f64)>)> = Vec::new();
    let mut index: HashMap<GroupKey, usize> = HashMap::new();
    let mut total = 0usize;
    if scan.start_ns <= scan.end_ns {
        for filter in branch_filters(scan) {
            let mut columns = vec![col("timestamp")];
            columns.push(if with_bytes {
                datafusion::functions::expr_fn::octet_length(col("line")).alias("bytes")
            } else {
                lit(1i32).alias("bytes")
            });
            for (i, name) in names.iter().enumerate() {
                columns.push(base_label(name).alias(format!("g{i}")));
            }
            let mut stream = filtered_scan(ctx, "logs", filter, &columns, &[])
                .await
                .map_err(internal)?;
            let mut key: GroupKey = Vec::with_capacity(names.len());
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(internal)?;
                total += batch.num_rows();
                if total > max_samples {
                    return Ok(None);
                }
                let times = batch.column(0).as_primitive::<TimestampNanosecondType>();
                let values = batch
                    .column(1)
                    .as_primitive::<arrow::datatypes::Int32Type>();
                let labels: Vec<arrow::array::StringArray> = (0..names.len())
                    .map(|i| {
                        arrow::compute::cast(batch.column(2 + i), &arrow::datatypes::DataType::Utf8)
                            .map(|a| a.as_string::<i32>().clone())
                    })
                    .collect::<Result<_, _>>()
                    .map_err(internal)?;
                for row in 0..batch.num_rows() {
                    key.clear();
                    key.extend(
                        labels
                            .iter()
                            .map(|a| (!a.is_null(row)).then(|| a.value(row).to_string())),
                    );
                    let i = match index.get(&key) {
                        Some(&i) => i,
                        None => {
                            index.insert(key.clone(), groups.len());
                            groups.push((key.clone(), Vec::new()));
                            groups.len() - 1
                        }
                    };
                    groups[i]
                        .1
                        .push((times.value(row), values.value(row) as f64));
                }
            }
        }
    }
    Ok(Some(
        groups
            .into_iter()
            .map(|(values, points)| {
                let mut labels: Labels = names
                    .iter()
                    .zip(values)
                    .filter_map(|(n, v)| v.map(|v| (n.clone(), v)))
                    .collect();
                labels.sort();
                (labels, points)
            })
            .collect(),
    ))
}

/// One scan of [`scan_entries`]; false when `on_entry` asked to stop.
async fn scan_filtered(
    ctx: &SessionContext,
    scan: &Scan<'_>,
    filter: Expr,
    streams: &mut SeriesIdMap<Option<Arc<StreamInfo>>>,
    on_entry: &mut impl FnMut(Entry<'_>) -> Result<bool, LogqlError>,
) -> Result<bool, LogqlError> {
    let columns = [
        "stream_id",
        "timestamp",
        "labels",
        "line",
        "structured_metadata",
    ]
    .map(col);
    let order = scan
        .ordered
        .map(|direction| ("timestamp", direction == super::Direction::Forward));
    let mut stream = filtered_scan(ctx, "logs", filter, &columns, order.as_slice())
        .await
        .map_err(internal)?;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(internal)?;
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let times = batch.column(1).as_primitive::<TimestampNanosecondType>();
        let label_maps = as_map(batch.column(2))?;
        let lines = batch.column(3).as_string::<i32>();
        let metadata = as_map(batch.column(4))?;
        for row in 0..batch.num_rows() {
            let info = match streams.get(&ids.value(row)) {
                Some(info) => info.clone(),
                None => {
                    let mut labels: Labels = map_row(label_maps, row)
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                    labels.sort();
                    let matched = scan.selector.iter().all(|m| m.matches_labels(&labels));
                    if matched && let Some(shard) = &scan.shard {
                        shard.check_stream(&labels)?;
                    }
                    let info = matched.then(|| Arc::new(StreamInfo { labels }));
                    streams.insert(ids.value(row), info.clone());
                    info
                }
            };
            let Some(info) = info else { continue };
            let mut labels = info.labels.clone();
            if !metadata.is_null(row) {
                for (k, v) in map_row(metadata, row) {
                    match labels.iter_mut().find(|(n, _)| n == k) {
                        Some(slot) => {
                            if scan.shard.is_some() && slot.1 != v {
                                return Err(LogqlError::ShardingUnsafe(format!(
                                    "structured metadata {k:?} overrides a stream label: lines of several streams may form one series"
                                )));
                            }
                            slot.1 = v.to_string()
                        }
                        None => labels.push((k.to_string(), v.to_string())),
                    }
                }
            }
            let entry = Entry::new(times.value(row), Cow::Borrowed(lines.value(row)), labels);
            if !on_entry(entry)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

fn as_map(array: &Arc<dyn Array>) -> Result<&MapArray, LogqlError> {
    array
        .as_any()
        .downcast_ref::<MapArray>()
        .ok_or_else(|| LogqlError::Internal("logs label column is not a map".into()))
}

fn internal(e: impl std::fmt::Display) -> LogqlError {
    LogqlError::Internal(e.to_string())
}

/// One stream found in a time range: its labels, and (when asked) how many
/// entries and line bytes it has there.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSummary {
    pub labels: Labels,
    pub entries: u64,
    pub bytes: u64,
}

/// The streams matching `selector` (all streams when empty) with entries in
/// `[start_ns, end_ns]`, sorted by label set; `with_sizes` also counts their
/// entries and bytes (reading the line column).
pub async fn stream_summaries(
    ctx: &SessionContext,
    selector: &[LabelMatcher],
    start_ns: i64,
    end_ns: i64,
    with_sizes: bool,
) -> Result<Vec<StreamSummary>, LogqlError> {
    let scan = Scan {
        selector,
        start_ns,
        end_ns,
        line_filters: Vec::new(),
        branches: Vec::new(),
        ordered: None,
        shard: None,
    };
    let mut columns = vec![col("stream_id"), col("labels")];
    if with_sizes {
        columns.push(datafusion::functions::expr_fn::octet_length(col("line")).alias("bytes"));
    }
    let mut stream = filtered_scan(ctx, "logs", pushdown_filter(&scan), &columns, &[])
        .await
        .map_err(internal)?;
    let mut index: SeriesIdMap<Option<usize>> = SeriesIdMap::default();
    let mut out: Vec<StreamSummary> = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(internal)?;
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let maps = as_map(batch.column(1))?;
        let sizes = with_sizes.then(|| {
            batch
                .column(2)
                .as_primitive::<arrow::datatypes::Int32Type>()
        });
        for row in 0..batch.num_rows() {
            let slot = *index.entry(ids.value(row)).or_insert_with(|| {
                let mut labels: Labels = map_row(maps, row)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                labels.sort();
                selector.iter().all(|m| m.matches_labels(&labels)).then(|| {
                    out.push(StreamSummary {
                        labels,
                        entries: 0,
                        bytes: 0,
                    });
                    out.len() - 1
                })
            });
            if let Some(i) = slot {
                out[i].entries += 1;
                if let Some(sizes) = sizes {
                    out[i].bytes += sizes.value(row).max(0) as u64;
                }
            }
        }
    }
    out.sort_by(|a, b| crate::query::promql::value::compare_labels(&a.labels, &b.labels));
    Ok(out)
}
