//! Range queries over downsampled data, as Thanos' `max_source_resolution`:
//! a resolution r is allowed when `step >= 5 × r` (`auto`, the default) or
//! up to the resolution asked for (`raw`/`0s`, `5m`, `1h`); instant queries
//! read raw samples. A selector's time span is cut into stretches, each
//! read from the coarsest allowed resolution whose blocks cover it and
//! from raw samples (blocks and head) elsewhere; the stretches are joined
//! into one series per label set whose values are the aggregate the
//! enclosing function needs (Thanos' `aggrsFromFunc`): `min`/`min_over_time`
//! → min, `max`/`max_over_time` → max, `count_over_time` → count (the call
//! becomes `sum_over_time` of the counts), `sum_over_time` → sum,
//! `rate`/`increase`/`irate`/`resets` → the reset-adjusted counter stitched
//! across blocks and raw data, anything else → sum / count.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, MapArray};
use arrow::datatypes::Int64Type;
use datafusion::catalog::TableProvider;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use promql_parser::label::Matcher;
use promql_parser::parser::Expr;

use super::PromError;
use super::eval::{SelectorKey, is_stale, selector_key};
use super::fetch::{
    RawSeries, fetch_histograms, fetch_series, pushdown_filter, series_labels, set_matches,
};
use super::value::{Labels, compare_labels};
use crate::catalog::SignalTable;
use crate::storage::compactor::downsample::{
    AggrColumns, AggrRow, COLUMNS, CounterStitcher, RAW, RES_1H, RES_5M,
};

/// The `max_source_resolution` of a range query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceResolution {
    /// Raw samples only (`raw`, `0s`).
    Raw,
    /// Resolutions up to this many ms (`5m`, `1h`, any duration).
    UpTo(i64),
    /// Up to a fifth of the step (`auto`).
    #[default]
    Auto,
}

impl SourceResolution {
    /// Parses a `max_source_resolution` value: `auto`, `raw` or a Prometheus
    /// duration (`0s` = raw).
    pub fn parse(text: &str) -> Result<SourceResolution, String> {
        match text.trim() {
            "auto" => Ok(SourceResolution::Auto),
            "raw" => Ok(SourceResolution::Raw),
            other => {
                let ms = crate::config::parse_duration(other)
                    .map_err(|e| {
                        format!(
                            "{other:?} is not a resolution (use auto, raw, 0s, 5m, 1h or a duration): {e}"
                        )
                    })?
                    .as_millis() as i64;
                Ok(if ms == 0 {
                    SourceResolution::Raw
                } else {
                    SourceResolution::UpTo(ms)
                })
            }
        }
    }

    /// The coarsest resolution (ms) a query with this step may read.
    pub fn max_for_step(self, step_ms: i64) -> i64 {
        match self {
            SourceResolution::Raw => RAW,
            SourceResolution::UpTo(ms) => ms,
            SourceResolution::Auto => step_ms / 5,
        }
    }

    /// Part of a results-cache key.
    pub fn key(self) -> String {
        match self {
            SourceResolution::Raw => "raw".into(),
            SourceResolution::UpTo(ms) => format!("{ms}ms"),
            SourceResolution::Auto => "auto".into(),
        }
    }
}

/// The aggregate a selector reads from downsampled data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Min,
    Max,
    Count,
    Sum,
    Counter,
    Average,
}

/// Thanos' `aggrsFromFunc`, with `count` limited to `count_over_time`.
pub fn aggregate_for(function: &str) -> Aggregate {
    match function {
        "min" | "min_over_time" => Aggregate::Min,
        "max" | "max_over_time" => Aggregate::Max,
        "count_over_time" => Aggregate::Count,
        "sum_over_time" => Aggregate::Sum,
        "rate" | "increase" | "irate" | "resets" => Aggregate::Counter,
        _ => Aggregate::Average,
    }
}

/// The aggregate of every selector: from the nearest enclosing call or
/// aggregation, looking through parentheses, unary minus and subqueries and
/// stopping at binary operators (Prometheus' `extractFuncFromPath`).
pub fn selector_aggregates(expr: &Expr) -> HashMap<SelectorKey, Aggregate> {
    fn walk(expr: &Expr, function: &str, out: &mut HashMap<SelectorKey, Aggregate>) {
        match expr {
            Expr::VectorSelector(vs) => {
                out.insert(selector_key(vs), aggregate_for(function));
            }
            Expr::MatrixSelector(ms) => {
                out.insert(selector_key(&ms.vs), aggregate_for(function));
            }
            Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, c.func.name, out)),
            Expr::Aggregate(a) => {
                let op = a.op.to_string().to_lowercase();
                walk(&a.expr, &op, out);
                if let Some(p) = &a.param {
                    walk(p, &op, out);
                }
            }
            Expr::Binary(b) => {
                walk(&b.lhs, "", out);
                walk(&b.rhs, "", out);
            }
            Expr::Paren(p) => walk(&p.expr, function, out),
            Expr::Unary(u) => walk(&u.expr, function, out),
            Expr::Subquery(s) => walk(&s.expr, function, out),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        }
    }
    let mut out = HashMap::new();
    walk(expr, "", &mut out);
    out
}

/// Turns `count_over_time(s[r])` into `sum_over_time(s[r])` where `s` was
/// read as counts per window (raw stretches as 1 per sample).
pub fn count_calls_to_sums(expr: &mut Expr, counted: &HashSet<SelectorKey>) {
    match expr {
        Expr::Call(c) => {
            if c.func.name == "count_over_time"
                && let Some(Expr::MatrixSelector(ms)) = c.args.args.first().map(|a| a.as_ref())
                && counted.contains(&selector_key(&ms.vs))
            {
                c.func.name = "sum_over_time";
            }
            for a in c.args.args.iter_mut() {
                count_calls_to_sums(a, counted);
            }
        }
        Expr::Aggregate(a) => {
            count_calls_to_sums(&mut a.expr, counted);
            if let Some(p) = a.param.as_mut() {
                count_calls_to_sums(p, counted);
            }
        }
        Expr::Binary(b) => {
            count_calls_to_sums(&mut b.lhs, counted);
            count_calls_to_sums(&mut b.rhs, counted);
        }
        Expr::Paren(p) => count_calls_to_sums(&mut p.expr, counted),
        Expr::Unary(u) => count_calls_to_sums(&mut u.expr, counted),
        Expr::Subquery(s) => count_calls_to_sums(&mut s.expr, counted),
        _ => {}
    }
}

/// Sorted, disjoint, inclusive ranges covering `ranges`.
fn merge_ranges(mut ranges: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    ranges.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match merged.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged
}

/// `ranges` without the times in `holes` (both sorted, disjoint, inclusive).
fn subtract(ranges: Vec<(i64, i64)>, holes: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    let mut out = Vec::with_capacity(ranges.len());
    for (mut lo, hi) in ranges {
        for &(a, b) in &holes {
            if b < lo || a > hi {
                continue;
            }
            if a > lo {
                out.push((lo, a - 1));
            }
            lo = b.saturating_add(1);
            if lo > hi {
                break;
            }
        }
        if lo <= hi {
            out.push((lo, hi));
        }
    }
    out
}

/// Where raw samples may exist that the aggregates at `resolution` lack:
/// raw blocks written after the 5m (or `resolution`) block over the same
/// time (samples backfilled into an already downsampled range: the
/// compactor does not aggregate them again), and the head. Queries read
/// raw samples there.
fn unaggregated_ranges(
    blocks: &[crate::storage::manifest::BlockMeta],
    resolution: i64,
    head: Option<(i64, i64)>,
) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = head.into_iter().collect();
    for raw in blocks.iter().filter(|b| b.is_raw()) {
        for aggregated in blocks
            .iter()
            .filter(|b| b.resolution_ms == RES_5M || b.resolution_ms == resolution)
        {
            if raw.created_at_ms > aggregated.created_at_ms
                && raw.overlaps(Some(aggregated.min_time), Some(aggregated.max_time))
            {
                out.push((
                    raw.min_time.max(aggregated.min_time),
                    raw.max_time.min(aggregated.max_time),
                ));
            }
        }
    }
    out
}

/// One allowed resolution: its window (ms), the time ranges its blocks
/// cover (sorted, disjoint, inclusive) and its table.
type Level = (i64, Vec<(i64, i64)>, Arc<dyn TableProvider>);

/// Where a range query's selectors read downsampled data.
pub struct SourcePlan {
    /// Allowed resolutions, finest first.
    levels: Vec<Level>,
}

impl SourcePlan {
    /// The plan of a range query with `step_ms` (none when only raw data
    /// is allowed or no downsampled block exists).
    pub async fn new(
        ctx: &SessionContext,
        step_ms: i64,
        resolution: SourceResolution,
    ) -> Option<SourcePlan> {
        let max = resolution.max_for_step(step_ms);
        if step_ms <= 0 || max < RES_5M {
            return None;
        }
        let provider = ctx.table_provider("samples").await.ok()?;
        let table = provider.downcast_ref::<SignalTable>()?;
        let manifest = table.manifest();
        let head = table.head_time_range();
        let mut levels = Vec::new();
        for res in [RES_5M, RES_1H] {
            if res > max {
                continue;
            }
            let ranges: Vec<(i64, i64)> = manifest
                .blocks
                .iter()
                .filter(|b| b.resolution_ms == res)
                .map(|b| (b.min_time, b.max_time))
                .collect();
            if ranges.is_empty() {
                continue;
            }
            let covered = subtract(
                merge_ranges(ranges),
                merge_ranges(unaggregated_ranges(&manifest.blocks, res, head)),
            );
            levels.push((
                res,
                covered,
                Arc::new(table.downsampled(res)) as Arc<dyn TableProvider>,
            ));
        }
        (!levels.is_empty()).then_some(SourcePlan { levels })
    }

    /// `[min, max]` cut into stretches `(from, to, resolution)`: the
    /// coarsest allowed resolution covering each, raw where none does.
    pub fn stretches(&self, min: i64, max: i64) -> Vec<(i64, i64, i64)> {
        let mut out = vec![(min, max, RAW)];
        for (res, ranges, _) in &self.levels {
            for &(a, b) in ranges {
                let mut next = Vec::with_capacity(out.len() + 2);
                for (lo, hi, r) in out {
                    if hi < a || lo > b {
                        next.push((lo, hi, r));
                        continue;
                    }
                    if lo < a {
                        next.push((lo, a - 1, r));
                    }
                    next.push((lo.max(a), hi.min(b), *res));
                    if hi > b {
                        next.push((b + 1, hi, r));
                    }
                }
                out = next;
            }
        }
        let mut merged: Vec<(i64, i64, i64)> = Vec::with_capacity(out.len());
        for s in out {
            match merged.last_mut() {
                Some(last) if last.2 == s.2 && last.1.saturating_add(1) == s.0 => last.1 = s.1,
                _ => merged.push(s),
            }
        }
        merged
    }

    /// The series of one selector over `[min, max]`, or `None` when no
    /// downsampled block covers any of it (read it raw).
    pub async fn fetch(
        &self,
        ctx: &SessionContext,
        sets: &[Vec<Matcher>],
        (min, max): (i64, i64),
        aggregate: Aggregate,
        max_samples: usize,
    ) -> Result<Option<Vec<RawSeries>>, PromError> {
        super::fetch::check_query_shard(sets)?;
        if sets.is_empty() || min > max {
            return Ok(None);
        }
        let stretches = self.stretches(min, max);
        if stretches.iter().all(|s| s.2 == RAW) {
            return Ok(None);
        }
        let mut joined: Vec<Joined> = Vec::new();
        let mut index: crate::model::labels::LabelsMap<Labels, usize> = Default::default();
        let mut slot = |labels: Labels, joined: &mut Vec<Joined>| -> usize {
            *index.entry(labels.clone()).or_insert_with(|| {
                joined.push(Joined::new(labels));
                joined.len() - 1
            })
        };
        for (from, to, res) in stretches {
            if res == RAW {
                // The series limit is checked over the joined answer by the caller.
                for s in fetch_series(ctx, sets, from, to, max_samples, 0).await? {
                    let i = slot(s.labels.clone(), &mut joined);
                    joined[i].add_raw(aggregate, &s);
                }
            } else {
                let table = self
                    .levels
                    .iter()
                    .find(|l| l.0 == res)
                    .map(|l| l.2.clone())
                    .expect("a stretch names a planned level");
                for (labels, rows) in
                    read_aggregates(ctx, table, sets, from, to, max_samples).await?
                {
                    let i = slot(labels, &mut joined);
                    joined[i].add_aggregated(aggregate, &rows);
                }
                // Native histograms are not downsampled: the raw blocks,
                // which stay beside the downsampled ones, still have them.
                for raw in fetch_histograms(ctx, sets, from, to, max_samples).await? {
                    let i = slot(raw.labels, &mut joined);
                    joined[i].series.histograms.extend(raw.histograms);
                }
            }
        }
        let mut series: Vec<RawSeries> = joined
            .into_iter()
            .filter(|j| !j.series.is_empty())
            .map(|j| j.series)
            .collect();
        series.sort_by(|a, b| compare_labels(&a.labels, &b.labels));
        Ok(Some(series))
    }
}

/// One label set's points, joined stretch by stretch in time order.
struct Joined {
    series: RawSeries,
    stitcher: CounterStitcher,
    /// The raw value where the last aggregated stretch ended.
    pending_last: Option<f64>,
}

impl Joined {
    fn new(labels: Labels) -> Self {
        Joined {
            series: RawSeries::new(labels),
            stitcher: CounterStitcher::default(),
            pending_last: None,
        }
    }

    fn push(&mut self, t: i64, v: f64) {
        self.series.timestamps.push(t);
        self.series.values.push(v);
    }

    fn add_raw(&mut self, aggregate: Aggregate, raw: &RawSeries) {
        // Histograms are not downsampled: raw stretches keep theirs too.
        self.series
            .histograms
            .extend(raw.histograms.iter().cloned());
        for (&t, &v) in raw.timestamps.iter().zip(&raw.values) {
            match aggregate {
                Aggregate::Counter => {
                    if v.is_nan() {
                        continue;
                    }
                    if let Some(last) = self.pending_last.take() {
                        self.stitcher.set_last_raw(last);
                    }
                    if let Some(total) = self.stitcher.push(t, v) {
                        self.push(t, total);
                    }
                }
                // Stale markers stay: range functions drop them.
                Aggregate::Count => self.push(t, if is_stale(v) { v } else { 1.0 }),
                _ => self.push(t, v),
            }
        }
    }

    fn add_aggregated(&mut self, aggregate: Aggregate, rows: &[AggrRow]) {
        for r in rows {
            let v = match aggregate {
                Aggregate::Min => r.min,
                Aggregate::Max => r.max,
                Aggregate::Count => r.count,
                Aggregate::Sum => r.sum,
                Aggregate::Average => r.sum / r.count,
                Aggregate::Counter => {
                    if let Some((ft, fv)) = r.first {
                        if let Some(last) = self.pending_last.take() {
                            self.stitcher.set_last_raw(last);
                        }
                        if let Some(total) = self.stitcher.push(ft, fv) {
                            self.push(ft, total);
                        }
                    }
                    if let Some(total) = self.stitcher.push(r.t, r.counter) {
                        self.push(r.t, total);
                    }
                    self.pending_last = Some(r.counter_last);
                    continue;
                }
            };
            self.push(r.t, v);
        }
    }
}

/// The aggregate rows of the series matching `sets` in `[min, max]`, in time order.
async fn read_aggregates(
    ctx: &SessionContext,
    table: Arc<dyn TableProvider>,
    sets: &[Vec<Matcher>],
    min: i64,
    max: i64,
    max_samples: usize,
) -> Result<Vec<(Labels, Vec<AggrRow>)>, PromError> {
    let internal = |e: datafusion::error::DataFusionError| PromError::Internal(e.to_string());
    let mut stream = ctx
        .read_table(table)
        .map_err(internal)?
        .filter(pushdown_filter(sets, min, max))
        .map_err(internal)?
        .select_columns(&COLUMNS)
        .map_err(internal)?
        .execute_stream()
        .await
        .map_err(internal)?;
    let mut index: HashMap<i64, Option<usize>> = HashMap::new();
    let mut series: Vec<(Labels, Vec<AggrRow>)> = Vec::new();
    let mut total = 0usize;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(internal)?;
        let rows = AggrColumns::of(&batch).map_err(|e| PromError::Internal(e.to_string()))?;
        let ids = batch.column(3).as_primitive::<Int64Type>();
        let metrics = batch.column(1).as_string::<i32>();
        let maps = batch
            .column(2)
            .as_any()
            .downcast_ref::<MapArray>()
            .ok_or_else(|| PromError::Internal("downsampled labels are not a map".into()))?;
        for row in 0..batch.num_rows() {
            if ids.is_null(row) {
                continue;
            }
            let slot = *index.entry(ids.value(row)).or_insert_with(|| {
                let labels = series_labels(metrics.value(row), maps, row);
                if sets.iter().any(|set| set_matches(set, &labels)) {
                    series.push((labels, Vec::new()));
                    Some(series.len() - 1)
                } else {
                    None
                }
            });
            if let Some(i) = slot {
                total += 1;
                if total > max_samples {
                    return Err(PromError::TooManySamples("query execution".into()));
                }
                series[i].1.push(rows.row(row));
            }
        }
    }
    for (_, rows) in &mut series {
        rows.sort_by_key(|r| r.t);
        rows.dedup_by_key(|r| r.t);
    }
    Ok(series)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolutions_parse_like_thanos() {
        assert_eq!(SourceResolution::parse("auto"), Ok(SourceResolution::Auto));
        assert_eq!(SourceResolution::parse("raw"), Ok(SourceResolution::Raw));
        assert_eq!(SourceResolution::parse("0s"), Ok(SourceResolution::Raw));
        assert_eq!(
            SourceResolution::parse("5m"),
            Ok(SourceResolution::UpTo(RES_5M))
        );
        assert_eq!(
            SourceResolution::parse("1h"),
            Ok(SourceResolution::UpTo(RES_1H))
        );
        let err = SourceResolution::parse("fast").unwrap_err();
        assert!(err.contains("\"fast\""), "{err}");
        // auto: 5m data from a 25m step, 1h data from a 5h step.
        assert!(SourceResolution::Auto.max_for_step(24 * 60_000) < RES_5M);
        assert_eq!(SourceResolution::Auto.max_for_step(25 * 60_000), RES_5M);
        assert!(SourceResolution::Auto.max_for_step(5 * 3_600_000) >= RES_1H);
        assert!(SourceResolution::Auto.max_for_step(4 * 3_600_000) < RES_1H);
    }

    #[test]
    fn the_enclosing_function_picks_the_aggregate() {
        let cases = [
            ("rate(x[1h])", Aggregate::Counter),
            ("sum by (job) (increase(x[1h]))", Aggregate::Counter),
            ("max_over_time(x[1h])", Aggregate::Max),
            ("min(x)", Aggregate::Min),
            ("count_over_time(x[1h])", Aggregate::Count),
            ("sum_over_time(x[1h])", Aggregate::Sum),
            ("avg_over_time(x[1h])", Aggregate::Average),
            ("x", Aggregate::Average),
            ("sum(x)", Aggregate::Average),
            ("max(x * 2)", Aggregate::Average),
            ("-(max_over_time(x[1h]))", Aggregate::Max),
            ("max_over_time(rate(x[5m])[1h:])", Aggregate::Counter),
        ];
        for (query, want) in cases {
            let expr = promql_parser::parser::parse(query).unwrap();
            let got = selector_aggregates(&expr);
            assert_eq!(got.len(), 1, "{query}");
            assert_eq!(*got.values().next().unwrap(), want, "{query}");
        }
    }

    #[test]
    fn count_over_time_of_counts_becomes_a_sum() {
        let mut expr =
            promql_parser::parser::parse("count_over_time(x[1h]) + count_over_time(y[1h])")
                .unwrap();
        let keys = selector_aggregates(&expr);
        let Expr::Binary(b) = &expr else { panic!() };
        let Expr::Call(c) = b.lhs.as_ref() else {
            panic!()
        };
        let Expr::MatrixSelector(ms) = c.args.args[0].as_ref() else {
            panic!()
        };
        let counted: HashSet<SelectorKey> = [selector_key(&ms.vs)].into();
        assert_eq!(keys.len(), 2);
        count_calls_to_sums(&mut expr, &counted);
        let text = expr.to_string();
        assert!(text.starts_with("sum_over_time(x[1h])"), "{text}");
        assert!(text.ends_with("count_over_time(y[1h])"), "{text}");
    }

    #[test]
    fn raw_data_newer_than_the_aggregates_is_read_raw() {
        use crate::storage::manifest::BlockMeta;
        let block = |id: &str, min, max, created, resolution_ms| BlockMeta {
            id: id.into(),
            min_time: min,
            max_time: max,
            rows: 1,
            bytes: 1,
            index_bytes: 0,
            created_at_ms: created,
            resolution_ms,
            edges_bytes: None,
            row_index_bytes: None,
        };
        let blocks = vec![
            block("raw", 0, 999, 10, RAW),
            block("5m", 0, 999, 20, RES_5M),
            block("1h", 0, 999, 30, RES_1H),
            // Backfilled after the 5m block, before the 1h one: in neither.
            block("late", 200, 299, 25, RAW),
            // Backfilled after both.
            block("later", 600, 1_400, 40, RAW),
        ];
        let five = merge_ranges(unaggregated_ranges(&blocks, RES_5M, None));
        assert_eq!(five, vec![(200, 299), (600, 999)]);
        let hour = merge_ranges(unaggregated_ranges(&blocks, RES_1H, Some((950, 2_000))));
        assert_eq!(hour, vec![(200, 299), (600, 2_000)]);
        assert_eq!(subtract(vec![(0, 999)], hour), vec![(0, 199), (300, 599)]);
        assert_eq!(
            subtract(vec![(0, 9), (20, 29)], vec![(5, 22)]),
            vec![(0, 4), (23, 29)]
        );
        assert_eq!(subtract(vec![(0, 9)], vec![]), vec![(0, 9)]);
    }

    #[test]
    fn stretches_take_the_coarsest_cover() {
        let dummy: Arc<dyn TableProvider> =
            Arc::new(datafusion::datasource::empty::EmptyTable::new(Arc::new(
                arrow::datatypes::Schema::empty(),
            )));
        let plan = SourcePlan {
            levels: vec![
                (RES_5M, vec![(100, 199), (300, 399)], dummy.clone()),
                (RES_1H, vec![(150, 349)], dummy),
            ],
        };
        assert_eq!(
            plan.stretches(0, 500),
            vec![
                (0, 99, RAW),
                (100, 149, RES_5M),
                (150, 349, RES_1H),
                (350, 399, RES_5M),
                (400, 500, RAW),
            ]
        );
        assert_eq!(plan.stretches(10, 20), vec![(10, 20, RAW)]);
    }

    #[test]
    fn joined_counters_match_raw_increase() {
        // Raw 0,10,...,90 then a reset to 5 and 15; a block covers t ≤ 50
        // as one window (adjusted counter 50), raw afterwards.
        let mut j = Joined::new(Labels::default());
        j.add_aggregated(
            Aggregate::Counter,
            &[AggrRow {
                t: 50,
                count: 6.0,
                sum: 150.0,
                min: 0.0,
                max: 50.0,
                counter: 50.0,
                counter_last: 50.0,
                first: Some((0, 0.0)),
            }],
        );
        j.add_raw(
            Aggregate::Counter,
            &RawSeries {
                labels: Labels::default(),
                timestamps: vec![60, 70, 80, 90, 100, 110],
                values: vec![60.0, 70.0, 80.0, 90.0, 5.0, 15.0],
                histograms: vec![],
            },
        );
        assert_eq!(j.series.timestamps, vec![0, 50, 60, 70, 80, 90, 100, 110]);
        assert_eq!(j.series.values.last(), Some(&(90.0 + 5.0 + 10.0)));
    }
}
