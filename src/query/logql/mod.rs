//! LogQL: query text → syntax tree ([`ast`]) → a scan of the tenant's `logs`
//! with the stream selector, time range and line filters pushed down → the
//! pipeline stages per line → log streams, or (metric queries) per-step
//! series evaluated by the same step-grid evaluator as PromQL.
//!
//! Text to tree: [`lexer`] (tokens with byte offsets) → [`parser`] (tree,
//! Loki's parse-time checks, errors with line and column); [`format`] prints
//! a tree back as canonical text; [`check`] runs a file of `ok`/`err` query
//! lines through a parser.

pub mod ast;
pub mod check;
pub mod format;
#[cfg(test)]
mod fuzz;
pub mod lexer;
pub mod parser;

pub use lexer::ParseError;

/// Parses and validates one LogQL query.
pub fn parse(query: &str) -> Result<ast::Expr, ParseError> {
    parser::parse(query)
}
