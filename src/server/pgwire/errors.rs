//! Postgres `ErrorResponse`s from o11ydb and DataFusion errors: the right
//! SQLSTATE (see [`crate::error`]) and, where the error points into the
//! query, the 1-based character position Postgres clients use to draw the
//! `^` under the offending text.

use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;
use pgwire::error::{ErrorInfo, PgWireError};

use crate::error::datafusion_sqlstate;

/// An `ERROR` with `code` and `message`.
pub fn user_error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        code.to_string(),
        message.into(),
    )))
}

/// Maps a DataFusion error raised for `query` to an `ErrorResponse`.
pub fn from_datafusion(err: &DataFusionError, query: Option<&str>) -> PgWireError {
    let code = datafusion_sqlstate(err);
    let mut info = ErrorInfo::new("ERROR".to_string(), code.to_string(), clean_message(err));
    if let Some(query) = query {
        info.position = position_of(err, query).map(|p| p.to_string());
    }
    if code == "53200" {
        info.hint = Some(
            "the query needs more memory than query.memory_limit allows; narrow the time range \
             or raise the limit"
                .to_string(),
        );
    }
    PgWireError::UserError(Box::new(info))
}

/// Maps a SQL parser error for `query`.
pub fn from_parser(err: &ParserError, query: &str) -> PgWireError {
    let message = err.to_string();
    let mut info = ErrorInfo::new(
        "ERROR".to_string(),
        "42601".to_string(),
        message
            .strip_prefix("sql parser error: ")
            .unwrap_or(&message)
            .to_string(),
    );
    info.position = parser_error_position(&message, query).map(|p| p.to_string());
    PgWireError::UserError(Box::new(info))
}

/// Where a parse error is. The compatibility parser drops token locations,
/// so the query is parsed again with the plain Postgres dialect (which keeps
/// them); failing that, the offending token named in the message is searched.
fn parser_error_position(message: &str, query: &str) -> Option<usize> {
    if let Some((l, c)) = line_column_in(message) {
        return char_position(query, l, c);
    }
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    if let Err(e) = Parser::parse_sql(&PostgreSqlDialect {}, query)
        && let Some((l, c)) = line_column_in(&e.to_string())
    {
        return char_position(query, l, c);
    }
    let found = message.rsplit_once("found: ")?.1.trim();
    let found = found.split(" at Line").next().unwrap_or(found);
    if found.is_empty() || found == "EOF" {
        return Some(query.chars().count() + 1);
    }
    query.find(found).map(|i| query[..i].chars().count() + 1)
}

/// The message without DataFusion's layer prefixes ("Error during planning: ").
pub fn clean_message(err: &DataFusionError) -> String {
    let root = err.find_root();
    let text = match root {
        DataFusionError::External(e) => e.to_string(),
        DataFusionError::SQL(e, _) => e.to_string(),
        DataFusionError::Plan(m)
        | DataFusionError::Execution(m)
        | DataFusionError::NotImplemented(m) => m.clone(),
        DataFusionError::ResourcesExhausted(m) => format!("resources exhausted: {m}"),
        DataFusionError::SchemaError(e, _) => e.to_string(),
        DataFusionError::ArrowError(e, _) => e.to_string(),
        other => other.to_string(),
    };
    let text = text
        .strip_prefix("sql parser error: ")
        .unwrap_or(&text)
        .to_string();
    if matches!(root, DataFusionError::ResourcesExhausted(_)) {
        text
    } else {
        text.lines().next().unwrap_or_default().to_string()
    }
}

/// Where in `query` an error points, as a 1-based character index.
fn position_of(err: &DataFusionError, query: &str) -> Option<usize> {
    if let Some(d) = err.diagnostic()
        && let Some(span) = d.span
    {
        return char_position(query, span.start.line as usize, span.start.column as usize);
    }
    let message = err.to_string();
    if let Some((line, col)) = line_column_in(&message) {
        return char_position(query, line, col);
    }
    // Name-based fallbacks: unknown tables and columns are quoted in the message.
    let name = quoted_name_after(&message, "table '")
        .or_else(|| quoted_name_after(&message, "No field named "))?;
    let name = name.rsplit('.').next().unwrap_or(name).trim_matches('"');
    find_identifier(query, name)
}

/// `... at Line: 1, Column: 8` in sqlparser messages.
fn line_column_in(message: &str) -> Option<(usize, usize)> {
    let at = message.rfind("Line: ")?;
    let rest = &message[at + 6..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let col: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some((line.trim().parse().ok()?, col.parse().ok()?))
}

/// 1-based (line, column) to a 1-based character position.
fn char_position(query: &str, line: usize, column: usize) -> Option<usize> {
    if line == 0 || column == 0 {
        return None;
    }
    let mut pos = 0;
    for (i, l) in query.split('\n').enumerate() {
        if i + 1 == line {
            return Some(pos + column.min(l.chars().count() + 1));
        }
        pos += l.chars().count() + 1;
    }
    None
}

fn quoted_name_after<'a>(message: &'a str, marker: &str) -> Option<&'a str> {
    let start = message.find(marker)? + marker.len();
    let rest = &message[start..];
    let rest = rest.strip_prefix('\'').unwrap_or(rest);
    let end = rest.find(['\'', ' ', ',']).unwrap_or(rest.len());
    Some(rest[..end].trim_end_matches('.'))
}

/// First whole-word, case-insensitive occurrence of `name` in `query`.
fn find_identifier(query: &str, name: &str) -> Option<usize> {
    if name.is_empty() {
        return None;
    }
    let lower = query.to_lowercase();
    let needle = name.to_lowercase();
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(i) = lower[from..].find(&needle) {
        let start = from + i;
        let end = start + needle.len();
        let before = lower[..start].chars().next_back();
        let after = lower[end..].chars().next();
        if !before.is_some_and(is_ident) && !after.is_some_and(is_ident) {
            return Some(lower[..start].chars().count() + 1);
        }
        from = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_from_line_and_column() {
        assert_eq!(char_position("SELECT x", 1, 8), Some(8));
        assert_eq!(char_position("SELECT\n  x", 2, 3), Some(10));
        assert_eq!(
            line_column_in(
                "sql parser error: Expected: end of statement, found: x at Line: 1, Column: 8"
            ),
            Some((1, 8))
        );
    }

    #[test]
    fn parse_errors_point_at_the_offending_token() {
        assert_eq!(
            parser_error_position("Expected: an SQL statement, found: SELEC", "SELEC 1"),
            Some(1)
        );
        // `FORM` is an alias here; the plain parser locates the real culprit.
        assert_eq!(
            parser_error_position("Expected: end of statement, found: t", "SELECT 1 FORM t"),
            Some(15)
        );
        assert_eq!(
            quoted_name_after("No field named nope. Did you mean 'x'?", "No field named "),
            Some("nope")
        );
    }

    #[test]
    fn identifiers_are_found_as_whole_words() {
        assert_eq!(
            find_identifier("SELECT spanx, span FROM t", "span"),
            Some(15)
        );
        assert_eq!(find_identifier("select * from NOPE", "nope"), Some(15));
        assert_eq!(find_identifier("select 1", "nope"), None);
    }
}
