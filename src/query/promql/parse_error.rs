//! Parse errors worded like Prometheus': `<line>:<column>: parse error:
//! <reason>`. `promql-parser` reports no positions, so they are found here
//! from its lexer: errors raised at the end of the input (unclosed
//! brackets, a dangling operator) sit after the last byte, and a value
//! followed directly by another value (`foo bar`, `1 2`) is reported at the
//! second one. Anything else keeps the parser's text without a position.

use lrpar::{Lexeme, Lexer};
use promql_parser::parser::lex::lexer;
use promql_parser::parser::token::{
    T_DURATION, T_IDENTIFIER, T_METRIC_IDENTIFIER, T_NUMBER, T_RIGHT_BRACE, T_RIGHT_BRACKET,
    T_RIGHT_PAREN, T_STRING, TokenId, TokenType,
};

/// What `promql-parser` says for any grammar error.
const GENERIC_PARSER_ERROR: &str = "invalid promql query";

/// The message of a failed parse of `query` whose parser error is `reason`.
pub fn parse_error_text(query: &str, reason: &str) -> String {
    match position_of(query, reason) {
        Some((offset, reason)) => {
            let (line, column) = line_column(query, offset);
            format!("{line}:{column}: parse error: {reason}")
        }
        None => format!("parse error: {reason}"),
    }
}

fn position_of(query: &str, reason: &str) -> Option<(usize, String)> {
    if query.trim().is_empty() {
        return None;
    }
    let at_end = query.len();
    if reason.starts_with("unclosed") || reason.contains("end of input") {
        return Some((at_end, reason.to_string()));
    }
    if reason != GENERIC_PARSER_ERROR {
        return None;
    }
    let lexed = lexer(query).ok()?;
    let tokens: Vec<(TokenId, usize, usize)> = lexed
        .iter()
        .filter_map(Result::ok)
        .map(|l| (l.tok_id(), l.span().start(), l.span().end()))
        .collect();
    for pair in tokens.windows(2) {
        let ((first, _, _), (second, start, end)) = (pair[0], pair[1]);
        if ends_value(first) && starts_value(second) {
            return Some((
                start,
                format!("unexpected {}", describe(second, &query[start..end])),
            ));
        }
    }
    let &(last, _, _) = tokens.last()?;
    if TokenType::new(last).is_operator() || !ends_value(last) {
        return Some((at_end, "unexpected end of input".into()));
    }
    None
}

fn ends_value(t: TokenId) -> bool {
    matches!(
        t,
        T_IDENTIFIER
            | T_METRIC_IDENTIFIER
            | T_NUMBER
            | T_STRING
            | T_DURATION
            | T_RIGHT_PAREN
            | T_RIGHT_BRACE
            | T_RIGHT_BRACKET
    )
}

fn starts_value(t: TokenId) -> bool {
    matches!(t, T_IDENTIFIER | T_METRIC_IDENTIFIER | T_NUMBER | T_STRING)
}

fn describe(t: TokenId, text: &str) -> String {
    match t {
        T_NUMBER => format!("number {text:?}"),
        T_STRING => format!("string {text}"),
        _ => format!("identifier {text:?}"),
    }
}

/// 1-based line and column of byte `offset`.
fn line_column(query: &str, offset: usize) -> (usize, usize) {
    let before = &query[..offset.min(query.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(query: &str) -> String {
        let reason = promql_parser::parser::parse(query).unwrap_err();
        parse_error_text(query, &reason)
    }

    #[test]
    fn positions_like_prometheus() {
        assert_eq!(error_of("1 +"), "1:4: parse error: unexpected end of input");
        assert_eq!(
            error_of("foo bar"),
            "1:5: parse error: unexpected identifier \"bar\""
        );
        assert_eq!(
            error_of("sum(rate(x[5m])"),
            "1:16: parse error: unclosed left parenthesis"
        );
        assert!(error_of("rate(x)").starts_with("parse error: expected type matrix"));
    }
}
