//! LogQL: query text → syntax tree ([`ast`]) → a scan of the tenant's `logs`
//! with the stream selector, time range and line filters pushed down → the
//! pipeline stages per line → log streams, or (metric queries) per-step
//! series evaluated by the same step-grid evaluator as PromQL.
//!
//! Text to tree: [`lexer`] (tokens with byte offsets) → [`parser`] (tree,
//! Loki's parse-time checks, errors with line and column); [`format`] prints
//! a tree back as canonical text.
//!
//! Tree to answer: [`fetch`] (scans with pushdown) → [`pipeline`] (stages
//! per entry) → [`logs`] (log queries) or [`metric`] (range aggregations,
//! then the PromQL evaluator); [`sql_function`] is `logql()` in SQL and
//! [`conformance`] the case-file runner. [`shard`] cuts metric queries into
//! per-stream-shard legs and a merge for the query frontend.

pub mod ast;
pub mod conformance;
pub mod fetch;
pub mod format;
#[cfg(test)]
mod fuzz;
pub mod lexer;
pub mod logs;
pub mod metric;
pub mod parser;
pub mod pipeline;
pub mod shard;
pub mod sql_function;

pub use lexer::ParseError;

use std::time::Duration;

use datafusion::prelude::SessionContext;

use crate::query::promql::shard::QueryShard;
use crate::query::promql::{Labels, QueryValue};

/// Limits of one LogQL query.
#[derive(Debug, Clone)]
pub struct LogqlOptions {
    /// Most samples a metric query may extract from log lines.
    pub max_samples: usize,
    /// Most entries a log query may return (Loki's `max_entries_limit_per_query`).
    pub max_entries: usize,
    /// Most series a metric query may return (Loki's `max_query_series`).
    pub max_series: usize,
    pub timeout: Duration,
}

impl Default for LogqlOptions {
    fn default() -> Self {
        LogqlOptions {
            max_samples: 50_000_000,
            max_entries: 5_000,
            max_series: 500,
            timeout: Duration::from_secs(120),
        }
    }
}

/// The order entries of a log query are returned in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    Forward,
    #[default]
    Backward,
}

impl std::str::FromStr for Direction {
    type Err = LogqlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "forward" => Ok(Direction::Forward),
            "backward" => Ok(Direction::Backward),
            _ => Err(LogqlError::BadQuery(format!(
                "invalid direction {s:?}: expected forward or backward"
            ))),
        }
    }
}

/// One returned log line.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub timestamp_ns: i64,
    pub line: String,
}

/// Entries sharing one label set, in the query's direction.
#[derive(Debug, Clone, PartialEq)]
pub struct LogStream {
    pub labels: Labels,
    pub entries: Vec<LogEntry>,
}

/// What a LogQL query returns.
#[derive(Debug, Clone)]
pub enum LogqlValue {
    Streams(Vec<LogStream>),
    Metric(QueryValue),
}

#[derive(Debug, thiserror::Error)]
pub enum LogqlError {
    /// The query text or a parameter is invalid (HTTP 400).
    #[error("{0}")]
    BadQuery(String),
    /// A limit was exceeded (HTTP 400, as Loki answers).
    #[error("{0}")]
    Limit(String),
    /// A metric query met lines its pipeline could not process (HTTP 400).
    #[error("{0}")]
    Pipeline(String),
    /// Evaluation failed (e.g. many-to-many vector matching; HTTP 422).
    #[error("{0}")]
    Execution(String),
    #[error("query timed out")]
    Timeout,
    #[error("internal error: {0}")]
    Internal(String),
    /// The tenant's query queue is full (HTTP 429).
    #[error("{0}")]
    TooManyRequests(String),
    /// A leg of a sharded metric query met lines that make its shard's
    /// answer differ from its part of the whole one ([`fetch::StreamShard`]);
    /// the query frontend then runs the query unsharded.
    #[error("query cannot be sharded: {0}")]
    ShardingUnsafe(String),
}

impl LogqlError {
    pub fn http_status(&self) -> u16 {
        match self {
            LogqlError::BadQuery(_) | LogqlError::Limit(_) | LogqlError::Pipeline(_) => 400,
            LogqlError::Execution(_) => 422,
            LogqlError::Timeout => 504,
            LogqlError::Internal(_) | LogqlError::ShardingUnsafe(_) => 500,
            LogqlError::TooManyRequests(_) => 429,
        }
    }
}

/// The window and shape of a range query (Loki's `query_range` parameters).
#[derive(Debug, Clone, Copy)]
pub struct RangeRequest {
    pub start_ns: i64,
    pub end_ns: i64,
    /// Metric queries: the evaluation step.
    pub step_ns: i64,
    /// Log queries: most entries returned.
    pub limit: usize,
    /// Log queries: newest (backward) or oldest (forward) first.
    pub direction: Direction,
    /// Log queries: an entry is returned only this far (or farther) from
    /// the previous one returned (Loki's `interval`); 0 returns all.
    pub interval_ns: i64,
}

/// Runs `query` over `[start_ns, end_ns)` (log queries) or at every
/// `step_ns` from `start_ns` to `end_ns` inclusive (metric queries), like
/// Loki's `/loki/api/v1/query_range`.
pub async fn query_range(
    ctx: &SessionContext,
    query: &str,
    expr: &ast::Expr,
    request: &RangeRequest,
    options: &LogqlOptions,
) -> Result<LogqlValue, LogqlError> {
    let RangeRequest {
        start_ns,
        end_ns,
        step_ns,
        limit,
        ..
    } = *request;
    if end_ns < start_ns {
        return Err(LogqlError::BadQuery(
            "end timestamp must not be before or equal to start time".into(),
        ));
    }
    match expr {
        ast::Expr::Log(log) => {
            check_limit(limit, options)?;
            let streams = logs::log_query(ctx, query, log, request, options).await?;
            Ok(LogqlValue::Streams(streams))
        }
        ast::Expr::Metric(metric) => {
            if step_ns <= 0 {
                return Err(LogqlError::BadQuery(
                    "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
                ));
            }
            if (end_ns - start_ns) / step_ns > crate::query::promql::MAX_POINTS_PER_SERIES {
                return Err(LogqlError::BadQuery(
                    "exceeded maximum resolution of 11,000 points per timeseries. Try increasing the value of the step parameter".into(),
                ));
            }
            let steps = (end_ns - start_ns) / step_ns + 1;
            let times: Vec<i64> = (0..steps).map(|i| start_ns + i * step_ns).collect();
            let (value, times_ms) =
                metric::metric_query(ctx, query, metric, None, &times, options).await?;
            let value = crate::query::promql::range_value(value, &times_ms)
                .map_err(|e| LogqlError::Execution(e.to_string()))?;
            check_series(&value, options)?;
            Ok(LogqlValue::Metric(value))
        }
    }
}

/// Evaluates a metric query at one instant, like Loki's `/loki/api/v1/query`.
/// Log queries are refused there, as Loki does.
pub async fn instant_query(
    ctx: &SessionContext,
    query: &str,
    expr: &ast::Expr,
    time_ns: i64,
    options: &LogqlOptions,
) -> Result<LogqlValue, LogqlError> {
    match expr {
        ast::Expr::Log(_) => Err(LogqlError::BadQuery(
            "log queries are not supported as an instant query type, please change your query to a range query type".into(),
        )),
        ast::Expr::Metric(metric) => {
            let (value, times_ms) =
                metric::metric_query(ctx, query, metric, None, &[time_ns], options).await?;
            let value = crate::query::promql::instant_value(value, times_ms[0])
                .map_err(|e| LogqlError::Execution(e.to_string()))?;
            check_series(&value, options)?;
            Ok(LogqlValue::Metric(value))
        }
    }
}

/// Evaluates leg `leg` of a sharded metric query ([`shard::plan`]) over the
/// streams of `shard` at the step times `times_ns`: a matrix, or (`instant`)
/// a vector. Positions in errors point into `query`, the whole query.
pub async fn evaluate_shard_leg(
    ctx: &SessionContext,
    query: &str,
    leg: &ast::MetricExpr,
    shard: QueryShard,
    times_ns: &[i64],
    instant: bool,
    options: &LogqlOptions,
) -> Result<QueryValue, LogqlError> {
    let (value, times_ms) =
        metric::metric_query(ctx, query, leg, Some(shard), times_ns, options).await?;
    shape(value, &times_ms, instant)
}

/// Evaluates the merge of a sharded metric query: `outer` (a plan's
/// [`shard::ShardPlan::outer`]) over `legs[k]`, the answers of leg `k` on
/// every shard, at the step times `times_ns`.
pub fn evaluate_shard_merge(
    outer: &str,
    legs: Vec<Vec<QueryValue>>,
    times_ns: &[i64],
    instant: bool,
    options: &LogqlOptions,
) -> Result<QueryValue, LogqlError> {
    let times_ms: Vec<i64> = times_ns.iter().map(|t| t.div_euclid(1_000_000)).collect();
    let mut inputs = Vec::with_capacity(legs.len());
    for shards in legs {
        let mut series = Vec::new();
        for value in shards {
            series.extend(
                crate::query::promql::step_series_of(value, &times_ms)
                    .map_err(|e| LogqlError::Internal(e.to_string()))?,
            );
        }
        // In label order, as the unsharded query sees its series (so ties
        // in topk/bottomk resolve alike).
        series.sort_by(|a, b| crate::query::promql::value::compare_labels(&a.labels, &b.labels));
        inputs.push(series);
    }
    let (value, times_ms) = metric::merge_shards(outer, inputs, times_ns, options)?;
    shape(value, &times_ms, instant)
}

/// The evaluator's value as a range query's matrix or an instant vector.
fn shape(
    value: crate::query::promql::eval::Val,
    times_ms: &[i64],
    instant: bool,
) -> Result<QueryValue, LogqlError> {
    let shaped = if instant {
        crate::query::promql::instant_value(value, times_ms[0])
    } else {
        crate::query::promql::range_value(value, times_ms)
    };
    shaped.map_err(|e| LogqlError::Execution(e.to_string()))
}

/// Parses and validates one LogQL query.
pub fn parse(query: &str) -> Result<ast::Expr, ParseError> {
    parser::parse(query)
}

/// Loki's `max_query_series` on a metric query's answer.
pub fn check_series(value: &QueryValue, options: &LogqlOptions) -> Result<(), LogqlError> {
    let series = match value {
        QueryValue::Vector(v) => v.len(),
        QueryValue::Matrix(m) => m.len(),
        _ => 0,
    };
    if series > options.max_series {
        return Err(LogqlError::Limit(format!(
            "maximum number of series ({}) reached for a single query; consider reducing query cardinality by adding more filters or by reducing the number of labels (max_query_series)",
            options.max_series
        )));
    }
    Ok(())
}

fn check_limit(limit: usize, options: &LogqlOptions) -> Result<(), LogqlError> {
    if limit > options.max_entries {
        return Err(LogqlError::Limit(format!(
            "max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {})",
            options.max_entries
        )));
    }
    Ok(())
}
