//! TraceQL: query text → syntax tree ([`ast`]) → a scan of the tenant's
//! `spans` with the query's conditions pushed down to find candidate traces
//! → those traces loaded whole → spansets per trace (filters, spanset and
//! structural operators, pipelines) → search results, or (metrics queries)
//! per-step series.
//!
//! Text to tree: [`lexer`] (tokens with byte offsets) → [`parser`] (tree,
//! errors with line and column) → [`validate`] (Tempo's type checks);
//! [`format`] prints a tree back as canonical text.
//!
//! Tree to answer: [`fetch`] (pushdown predicate, candidate trace ids,
//! whole traces) → [`trace`] (one trace's spans and structure) → [`eval`]
//! (spansets) → [`search`] (matched traces for the Tempo search API and
//! `traceql()`) or [`metrics`] (per-step series).

pub mod ast;
pub mod eval;
pub mod fetch;
pub mod format;
#[cfg(test)]
mod fuzz;
pub mod lexer;
pub mod metrics;
pub mod parser;
pub mod search;
pub mod sql_function;
pub mod trace;
pub mod validate;

pub use lexer::ParseError;
pub use parser::parse;

use std::time::Duration;

/// Limits of TraceQL queries.
#[derive(Debug, Clone)]
pub struct TraceqlOptions {
    /// Most candidate traces one query inspects.
    pub max_candidates: usize,
    /// Most traces one search may ask for.
    pub max_search_limit: usize,
    /// Most series one metrics query may return.
    pub max_series: usize,
    pub timeout: Duration,
}

impl Default for TraceqlOptions {
    fn default() -> Self {
        TraceqlOptions {
            max_candidates: 100_000,
            max_search_limit: 10_000,
            max_series: 1_000,
            timeout: Duration::from_secs(120),
        }
    }
}
