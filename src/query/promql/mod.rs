//! PromQL: query text → `promql-parser` AST → a scan of the tenant's
//! `samples` table per selector (DataFusion, with time, metric and label
//! predicates pushed into the provider) → the step-grid evaluator → a
//! [`QueryValue`] shaped exactly like Prometheus' answer.
//!
//! Entry points: [`instant_query`], [`range_query`] (the Prometheus HTTP API
//! and the conformance runner), [`select_series`], [`label_names`] and
//! [`label_values`] (the metadata endpoints).

pub mod value;

pub use value::{InstantSample, Labels, QueryOutput, QueryValue, RangeSeries};

use std::time::Duration;

/// Engine settings of one query; defaults are Prometheus'.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// How far back an instant selector looks for a sample (5 m).
    pub lookback_ms: i64,
    /// Most samples one query may hold in memory at once (50 M).
    pub max_samples: usize,
    /// A query running longer fails with `timeout` (2 m).
    pub timeout: Duration,
    /// Resolution of a subquery written without a step (`x[5m:]`): 1 m.
    pub default_subquery_step_ms: i64,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            lookback_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            default_subquery_step_ms: 60 * 1000,
        }
    }
}

/// Why a query failed, by Prometheus `errorType`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PromError {
    /// The query or a parameter is malformed (HTTP 400 `bad_data`).
    #[error("{0}")]
    BadData(String),
    /// The query is valid but cannot be evaluated (HTTP 422 `execution`).
    #[error("{0}")]
    Execution(String),
    /// The query ran past its timeout (HTTP 503 `timeout`).
    #[error("query timed out in {0}")]
    Timeout(String),
    /// The query needs more samples than `max_samples` (HTTP 422 `execution`).
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(String),
    /// Storage or engine failure (HTTP 500 `internal`).
    #[error("{0}")]
    Internal(String),
}

impl PromError {
    /// The Prometheus API `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            PromError::BadData(_) => "bad_data",
            PromError::Execution(_) | PromError::TooManySamples(_) => "execution",
            PromError::Timeout(_) => "timeout",
            PromError::Internal(_) => "internal",
        }
    }

    /// The HTTP status Prometheus answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            PromError::BadData(_) => 400,
            PromError::Execution(_) | PromError::TooManySamples(_) => 422,
            PromError::Timeout(_) => 503,
            PromError::Internal(_) => 500,
        }
    }
}

use datafusion::prelude::SessionContext;

/// Evaluates `query` at one instant (`time_ms`, milliseconds since the epoch)
/// over the tenant tables of `ctx`, like Prometheus' `/api/v1/query`.
pub async fn instant_query(
    ctx: &SessionContext,
    query: &str,
    time_ms: i64,
    options: &QueryOptions,
) -> Result<QueryOutput, PromError> {
    let _ = (ctx, query, time_ms, options);
    Err(PromError::Internal(
        "PromQL evaluation is not wired yet".into(),
    ))
}

/// Evaluates `query` at every `step_ms` from `start_ms` to `end_ms`
/// (inclusive), like `/api/v1/query_range`; always answers a matrix.
pub async fn range_query(
    ctx: &SessionContext,
    query: &str,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    options: &QueryOptions,
) -> Result<QueryOutput, PromError> {
    let _ = (ctx, query, start_ms, end_ms, step_ms, options);
    Err(PromError::Internal(
        "PromQL evaluation is not wired yet".into(),
    ))
}

/// The label sets of the series matching any of the `match[]` selectors
/// with a sample in `[start_ms, end_ms]` (`None` = unbounded), sorted.
pub async fn select_series(
    ctx: &SessionContext,
    selectors: &[String],
    start_ms: Option<i64>,
    end_ms: Option<i64>,
) -> Result<Vec<Labels>, PromError> {
    let _ = (ctx, selectors, start_ms, end_ms);
    Err(PromError::Internal(
        "series selection is not wired yet".into(),
    ))
}

/// Label names of the series matching `selectors` (all series when empty), sorted.
pub async fn label_names(
    ctx: &SessionContext,
    selectors: &[String],
    start_ms: Option<i64>,
    end_ms: Option<i64>,
) -> Result<Vec<String>, PromError> {
    let _ = (ctx, selectors, start_ms, end_ms);
    Err(PromError::Internal("label names are not wired yet".into()))
}

/// Values of label `name` over the series matching `selectors` (all when empty), sorted.
pub async fn label_values(
    ctx: &SessionContext,
    name: &str,
    selectors: &[String],
    start_ms: Option<i64>,
    end_ms: Option<i64>,
) -> Result<Vec<String>, PromError> {
    let _ = (ctx, name, selectors, start_ms, end_ms);
    Err(PromError::Internal("label values are not wired yet".into()))
}
