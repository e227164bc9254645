//! Log queries: entries from [`super::fetch::scan_entries`] run through the
//! pipeline; the first `limit` in the query's direction are kept (a bounded
//! heap, so memory is `limit` entries whatever the scan reads) and grouped
//! into streams by their final label set. With Loki's `interval`, a
//! time-ordered scan returns entries spaced at least that far apart and
//! stops at the limit.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

use datafusion::prelude::SessionContext;

use super::ast::LogExpr;
use super::fetch::{Scan, scan_entries, split_line_filters};
use super::pipeline::{LabelMatcher, Pipeline};
use super::{Direction, LogEntry, LogStream, LogqlError, LogqlOptions, RangeRequest};
use crate::model::labels::LabelsMap;
use crate::query::promql::Labels;
use crate::query::promql::value::compare_labels;

/// One kept entry of a log query, ordered by time then labels then line.
#[derive(Debug, PartialEq, Eq)]
struct Kept {
    timestamp_ns: i64,
    labels: Labels,
    line: String,
    /// Backward queries keep the newest: order reversed so the heap's top
    /// is always the entry to evict.
    backward: bool,
}

impl Ord for Kept {
    fn cmp(&self, other: &Self) -> Ordering {
        let natural = self
            .timestamp_ns
            .cmp(&other.timestamp_ns)
            .then_with(|| compare_labels(&self.labels, &other.labels))
            .then_with(|| self.line.cmp(&other.line));
        // The heap's max is evicted first: for forward queries the latest,
        // for backward queries the earliest.
        if self.backward {
            natural.reverse()
        } else {
            natural
        }
    }
}

impl PartialOrd for Kept {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The compiled selector of a log expression.
pub fn compile_selector(log: &LogExpr, query: &str) -> Result<Vec<LabelMatcher>, LogqlError> {
    log.selector
        .iter()
        .map(|m| LabelMatcher::compile(m, query))
        .collect()
}

/// Runs a log query over `[start_ns, end_ns)`.
pub async fn log_query(
    ctx: &SessionContext,
    query: &str,
    log: &LogExpr,
    request: &RangeRequest,
    options: &LogqlOptions,
) -> Result<Vec<LogStream>, LogqlError> {
    let RangeRequest {
        start_ns,
        end_ns,
        limit,
        direction,
        interval_ns,
        ..
    } = *request;
    if interval_ns > 0 {
        return log_query_at_interval(ctx, query, log, request, options).await;
    }
    let selector = compile_selector(log, query)?;
    let (line_filters, branches, stages) = split_line_filters(&log.pipeline);
    let pipeline = Pipeline::compile_stages(&stages, query)?;
    let deadline = Instant::now() + options.timeout;
    let backward = direction == Direction::Backward;
    let mut heap: BinaryHeap<Kept> = BinaryHeap::with_capacity(limit.min(1 << 16) + 1);
    let scan = Scan {
        selector: &selector,
        start_ns,
        end_ns: end_ns.saturating_sub(1),
        line_filters,
        branches,
        ordered: None,
        shard: None,
    };
    let mut seen = 0usize;
    if limit > 0 {
        scan_entries(ctx, &scan, |mut entry| {
            seen += 1;
            if seen.is_multiple_of(4096) && Instant::now() > deadline {
                return Err(LogqlError::Timeout);
            }
            // An entry that cannot make the cut is not worth running the pipeline on.
            if heap.len() == limit
                && let Some(top) = heap.peek()
            {
                let worse = if backward {
                    entry.timestamp_ns < top.timestamp_ns
                } else {
                    entry.timestamp_ns > top.timestamp_ns
                };
                if worse {
                    return Ok(true);
                }
            }
            if !pipeline.process(&mut entry) {
                return Ok(true);
            }
            let mut labels = entry.labels;
            labels.sort();
            heap.push(Kept {
                timestamp_ns: entry.timestamp_ns,
                labels,
                line: entry.line.into_owned(),
                backward,
            });
            if heap.len() > limit {
                heap.pop();
            }
            Ok(true)
        })
        .await?;
    }
    // Ascending in the heap's order = the direction's order.
    Ok(into_streams(heap.into_sorted_vec()))
}

/// A log query with Loki's `interval`: entries in the direction's order,
/// each returned only if it is `interval` or more from the previous one
/// returned (across streams), until `limit` are returned. The scan is
/// sorted by time, so it stops as soon as the limit is reached.
async fn log_query_at_interval(
    ctx: &SessionContext,
    query: &str,
    log: &LogExpr,
    request: &RangeRequest,
    options: &LogqlOptions,
) -> Result<Vec<LogStream>, LogqlError> {
    let selector = compile_selector(log, query)?;
    let (line_filters, branches, stages) = split_line_filters(&log.pipeline);
    let pipeline = Pipeline::compile_stages(&stages, query)?;
    let deadline = Instant::now() + options.timeout;
    let backward = request.direction == Direction::Backward;
    let scan = Scan {
        selector: &selector,
        start_ns: request.start_ns,
        end_ns: request.end_ns.saturating_sub(1),
        line_filters,
        // One time-ordered scan: the interval rule needs every candidate in order.
        branches: if branches.is_empty() {
            branches
        } else {
            vec![
                branches
                    .into_iter()
                    .reduce(datafusion::logical_expr::Expr::or)
                    .expect("not empty"),
            ]
        },
        ordered: Some(request.direction),
        shard: None,
    };
    let mut kept: Vec<Kept> = Vec::new();
    let mut last: Option<i64> = None;
    let mut seen = 0usize;
    if request.limit > 0 {
        scan_entries(ctx, &scan, |mut entry| {
            seen += 1;
            if seen.is_multiple_of(4096) && Instant::now() > deadline {
                return Err(LogqlError::Timeout);
            }
            if let Some(prev) = last {
                let far_enough = if backward {
                    entry.timestamp_ns <= prev - request.interval_ns
                } else {
                    entry.timestamp_ns >= prev + request.interval_ns
                };
                if !far_enough {
                    return Ok(true);
                }
            }
            if !pipeline.process(&mut entry) {
                return Ok(true);
            }
            last = Some(entry.timestamp_ns);
            let mut labels = entry.labels;
            labels.sort();
            kept.push(Kept {
                timestamp_ns: entry.timestamp_ns,
                labels,
                line: entry.line.into_owned(),
                backward,
            });
            Ok(kept.len() < request.limit)
        })
        .await?;
    }
    Ok(into_streams(kept))
}

/// Kept entries (in the order to return them) grouped into streams by
/// their label sets, each stream's entries in that order.
fn into_streams(kept: Vec<Kept>) -> Vec<LogStream> {
    let mut streams: Vec<LogStream> = Vec::new();
    let mut index: LabelsMap<Labels, usize> = Default::default();
    for k in kept {
        let i = *index.entry(k.labels.clone()).or_insert_with(|| {
            streams.push(LogStream {
                labels: k.labels.clone(),
                entries: Vec::new(),
            });
            streams.len() - 1
        });
        streams[i].entries.push(LogEntry {
            timestamp_ns: k.timestamp_ns,
            line: k.line,
        });
    }
    streams
}
