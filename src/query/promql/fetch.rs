//! Selector → samples: one DataFusion scan of the tenant's `samples` table
//! per PromQL selector, with the time range, the metric name and label
//! equalities pushed into the provider (so blocks are pruned by time and
//! bloom), then every matcher applied exactly as Prometheus does to each
//! series' label set, and the rows grouped into time-ordered series.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, MapArray};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMillisecondType};
use datafusion::functions::core::expr_fn::get_field;
use datafusion::logical_expr::{Expr, col, lit};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use futures::StreamExt;
use promql_parser::label::{MatchOp, Matcher, Matchers};

use super::PromError;
use super::value::{Labels, METRIC_NAME, compare_labels, sort_labels};
use crate::model::labels::map_row;

/// The samples of one series, in time order, one per timestamp.
#[derive(Debug, Clone)]
pub struct RawSeries {
    pub labels: Labels,
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
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

/// Whether a label set satisfies every matcher of one set (a missing label reads as "").
fn set_matches(set: &[Matcher], labels: &Labels) -> bool {
    set.iter().all(|m| {
        let value = labels
            .iter()
            .find(|(n, _)| *n == m.name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        m.is_match(value)
    })
}

/// The predicate pushed into the scan: equalities every alternative shares
/// (so the provider can prune by bloom) and the time range.
fn pushdown_filter(sets: &[Vec<Matcher>], min_ms: i64, max_ms: i64) -> Expr {
    let ts = |ms: i64| {
        lit(ScalarValue::TimestampMillisecond(
            Some(ms),
            Some("UTC".into()),
        ))
    };
    let mut filter = col("timestamp")
        .gt_eq(ts(min_ms))
        .and(col("timestamp").lt_eq(ts(max_ms)));
    if sets.len() == 1 {
        for m in &sets[0] {
            if m.op != MatchOp::Equal {
                continue;
            }
            if m.name == METRIC_NAME {
                filter = filter.and(col("metric").eq(lit(m.value.clone())));
            } else if !m.value.is_empty() {
                filter =
                    filter.and(get_field(col("labels"), m.name.as_str()).eq(lit(m.value.clone())));
            }
        }
    }
    filter
}

/// The series matching `sets` with samples in `[min_ms, max_ms]`; at most
/// `max_samples` samples in all, or [`PromError::TooManySamples`].
pub async fn fetch_series(
    ctx: &SessionContext,
    sets: &[Vec<Matcher>],
    min_ms: i64,
    max_ms: i64,
    max_samples: usize,
) -> Result<Vec<RawSeries>, PromError> {
    scan(ctx, sets, min_ms, max_ms, max_samples, true).await
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

async fn scan(
    ctx: &SessionContext,
    sets: &[Vec<Matcher>],
    min_ms: i64,
    max_ms: i64,
    max_samples: usize,
    keep_samples: bool,
) -> Result<Vec<RawSeries>, PromError> {
    if sets.is_empty() || min_ms > max_ms {
        return Ok(Vec::new());
    }
    let frame = ctx
        .table("samples")
        .await
        .map_err(internal)?
        .filter(pushdown_filter(sets, min_ms, max_ms))
        .map_err(internal)?
        .select_columns(if keep_samples {
            &["series_id", "metric", "labels", "timestamp", "value"]
        } else {
            &["series_id", "metric", "labels"]
        })
        .map_err(internal)?;
    let mut stream = frame.execute_stream().await.map_err(internal)?;
    // series_id → index into `series`, or None when its labels do not match.
    let mut index: HashMap<i64, Option<usize>> = HashMap::new();
    let mut series: Vec<RawSeries> = Vec::new();
    let mut total = 0usize;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(internal)?;
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let metrics = batch.column(1).as_string::<i32>();
        let maps = batch
            .column(2)
            .as_any()
            .downcast_ref::<MapArray>()
            .ok_or_else(|| PromError::Internal("samples.labels is not a map".into()))?;
        let samples = keep_samples.then(|| {
            (
                batch.column(3).as_primitive::<TimestampMillisecondType>(),
                batch.column(4).as_primitive::<Float64Type>(),
            )
        });
        for row in 0..batch.num_rows() {
            let id = ids.value(row);
            let slot = *index.entry(id).or_insert_with(|| {
                let labels = series_labels(metrics.value(row), maps, row);
                if sets.iter().any(|set| set_matches(set, &labels)) {
                    series.push(RawSeries {
                        labels,
                        timestamps: Vec::new(),
                        values: Vec::new(),
                    });
                    Some(series.len() - 1)
                } else {
                    None
                }
            });
            if let Some(i) = slot
                && let Some((times, values)) = samples
            {
                total += 1;
                if total > max_samples {
                    return Err(PromError::TooManySamples("query execution".into()));
                }
                series[i].timestamps.push(times.value(row));
                series[i].values.push(values.value(row));
            }
        }
    }
    for s in &mut series {
        order_by_time(s);
    }
    if keep_samples {
        series.retain(|s| !s.timestamps.is_empty());
    }
    // Storage order: by label set, as Prometheus' index returns series.
    series.sort_by(|a, b| compare_labels(&a.labels, &b.labels));
    Ok(series)
}

fn series_labels(metric: &str, maps: &MapArray, row: usize) -> Labels {
    let pairs = map_row(maps, row);
    let mut labels: Labels = Vec::with_capacity(pairs.len() + 1);
    if !metric.is_empty() {
        labels.push((METRIC_NAME.to_string(), metric.to_string()));
    }
    labels.extend(
        pairs
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    sort_labels(&mut labels);
    labels
}

/// Sorts a series' samples by time; of samples sharing a timestamp the last
/// written is kept.
fn order_by_time(s: &mut RawSeries) {
    if s.timestamps.is_sorted_by(|a, b| a < b) {
        return;
    }
    let mut order: Vec<usize> = (0..s.timestamps.len()).collect();
    order.sort_by_key(|&i| s.timestamps[i]);
    let mut timestamps = Vec::with_capacity(order.len());
    let mut values = Vec::with_capacity(order.len());
    for i in order {
        if timestamps.last() == Some(&s.timestamps[i]) {
            *values.last_mut().expect("paired with timestamps") = s.values[i];
        } else {
            timestamps.push(s.timestamps[i]);
            values.push(s.values[i]);
        }
    }
    s.timestamps = timestamps;
    s.values = values;
}

fn internal(e: impl std::fmt::Display) -> PromError {
    PromError::Internal(e.to_string())
}
