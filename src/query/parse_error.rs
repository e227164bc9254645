//! The position-carrying error every query-language parser returns: a
//! message at a byte offset of the query text, rendered with the 1-based
//! line and column (`parse error at line 1, col 14: …`), as Loki and Tempo
//! word it.

use thiserror::Error;

/// A syntax or validation error at a byte offset of a query text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("parse error at line {line}, col {col}: {message}")]
pub struct ParseError {
    /// Byte offset into the query text.
    pub pos: usize,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
    pub message: String,
}

impl ParseError {
    pub fn at(query: &str, pos: usize, message: impl Into<String>) -> ParseError {
        let mut pos = pos.min(query.len());
        while !query.is_char_boundary(pos) {
            pos -= 1;
        }
        let before = &query[..pos];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        ParseError {
            pos,
            line,
            col,
            message: message.into(),
        }
    }
}
