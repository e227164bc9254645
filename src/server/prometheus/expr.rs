//! PromQL text the handlers check themselves with `promql-parser`: the
//! `query` parameter (its parse errors worded like Prometheus',
//! `1:5: parse error: unclosed left parenthesis`) and `match[]` series
//! selectors.

use promql_parser::parser::{self, Expr};

use super::params::invalid_parameter;
use crate::query::promql::PromError;

/// Parses a PromQL expression; the error is Prometheus' `ParseErr` text.
pub fn parse_expr(query: &str) -> Result<Expr, String> {
    parser::parse(query).map_err(|reason| parse_error_text(query, &reason))
}

/// Parses the `query` parameter; errors are `invalid parameter "query": …`.
pub fn parse_query_param(query: &str) -> Result<Expr, PromError> {
    parse_expr(query).map_err(|e| invalid_parameter("query", e))
}

/// `<line>:<column>: parse error: <reason>`. `promql-parser` reports no
/// position; the errors it raises at the end of the input (unclosed
/// parentheses, braces, brackets, "unexpected end of input") sit where
/// Prometheus puts them, after the last byte. Others go without one.
fn parse_error_text(query: &str, reason: &str) -> String {
    let at_end_of_input = reason.starts_with("unclosed") || reason.contains("end of input");
    if at_end_of_input && !query.is_empty() {
        let line = 1 + query.matches('\n').count();
        let column = query.len() - query.rfind('\n').map_or(0, |i| i + 1) + 1;
        format!("{line}:{column}: parse error: {reason}")
    } else {
        format!("parse error: {reason}")
    }
}

/// Checks `match[]` values (`parseMatchersParam`): each a series selector
/// with at least one matcher that does not match the empty string.
pub fn check_selectors(selectors: &[String]) -> Result<(), String> {
    for selector in selectors {
        match parse_expr(selector)? {
            Expr::VectorSelector(vs) => {
                let name_matches_empty = vs.name.as_deref().is_none_or(str::is_empty);
                if name_matches_empty && vs.matchers.is_empty_matchers() {
                    return Err("match[] must contain at least one non-empty matcher".into());
                }
            }
            _ => {
                return Err(format!(
                    "parse error: {} is not a series selector",
                    super::params::go_quote(selector)
                ));
            }
        }
    }
    Ok(())
}

/// Whether an expression selects any series (`parser.ExtractSelectors` is
/// not empty).
pub fn has_selectors(expr: &Expr) -> bool {
    match expr {
        Expr::VectorSelector(_) | Expr::MatrixSelector(_) => true,
        Expr::Aggregate(e) => {
            has_selectors(&e.expr) || e.param.as_deref().is_some_and(has_selectors)
        }
        Expr::Unary(e) => has_selectors(&e.expr),
        Expr::Binary(e) => has_selectors(&e.lhs) || has_selectors(&e.rhs),
        Expr::Paren(e) => has_selectors(&e.expr),
        Expr::Subquery(e) => has_selectors(&e.expr),
        Expr::Call(e) => e.args.args.iter().any(|a| has_selectors(a)),
        Expr::Extension(_) | Expr::NumberLiteral(_) | Expr::StringLiteral(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_of_input_errors_carry_prometheus_positions() {
        assert_eq!(
            parse_expr("sum(").unwrap_err(),
            "1:5: parse error: unclosed left parenthesis"
        );
        assert_eq!(
            parse_expr("some{").unwrap_err(),
            "1:6: parse error: unexpected end of input inside braces"
        );
        assert_eq!(
            parse_expr("").unwrap_err(),
            "parse error: no expression found in input"
        );
        assert_eq!(
            parse_query_param("((1)").unwrap_err().to_string(),
            r#"invalid parameter "query": 1:5: parse error: unclosed left parenthesis"#
        );
    }

    #[test]
    fn selectors_must_be_selectors_with_a_non_empty_matcher() {
        assert!(check_selectors(&["up".into(), r#"{job="a"}"#.into()]).is_ok());
        assert!(check_selectors(&[r#"{job=~".*"}"#.into()]).is_err());
        assert!(check_selectors(&["up + 1".into()]).is_err());
        assert!(check_selectors(&["up{".into()]).is_err());
    }

    #[test]
    fn selector_extraction() {
        assert!(has_selectors(&parser::parse("rate(up[5m]) * 2").unwrap()));
        assert!(has_selectors(&parser::parse("sum(up)").unwrap()));
        assert!(!has_selectors(&parser::parse("1 + 1").unwrap()));
        assert!(!has_selectors(&parser::parse("time()").unwrap()));
    }
}
