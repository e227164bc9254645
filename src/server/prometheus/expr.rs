//! PromQL text the handlers check themselves with `promql-parser`: the
//! `query` parameter (its parse errors worded like Prometheus',
//! `1:5: parse error: unclosed left parenthesis`) and `match[]` series
//! selectors.

use promql_parser::label::Matchers;
use promql_parser::parser::Expr;

use super::params::invalid_parameter;
use crate::query::promql::PromError;

/// Parses a PromQL expression; the error is Prometheus' `ParseErr` text.
pub fn parse_expr(query: &str) -> Result<Expr, String> {
    crate::query::promql::parse(query).map_err(|e| match e {
        PromError::BadData(text) => text,
        other => other.to_string(),
    })
}

/// Parses the `query` parameter; errors are `invalid parameter "query": …`.
pub fn parse_query_param(query: &str) -> Result<Expr, PromError> {
    parse_expr(query).map_err(|e| invalid_parameter("query", e))
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

/// The series selectors of an expression (`parser.ExtractSelectors`):
/// metric name and matchers of every vector and matrix selector.
pub fn selectors(expr: &Expr) -> Vec<(Option<String>, Matchers)> {
    let mut out = Vec::new();
    collect_selectors(expr, &mut out);
    out
}

fn collect_selectors(expr: &Expr, out: &mut Vec<(Option<String>, Matchers)>) {
    match expr {
        Expr::VectorSelector(vs) => out.push((vs.name.clone(), vs.matchers.clone())),
        Expr::MatrixSelector(ms) => out.push((ms.vs.name.clone(), ms.vs.matchers.clone())),
        Expr::Aggregate(e) => {
            collect_selectors(&e.expr, out);
            if let Some(p) = e.param.as_deref() {
                collect_selectors(p, out);
            }
        }
        Expr::Unary(e) => collect_selectors(&e.expr, out),
        Expr::Binary(e) => {
            collect_selectors(&e.lhs, out);
            collect_selectors(&e.rhs, out);
        }
        Expr::Paren(e) => collect_selectors(&e.expr, out),
        Expr::Subquery(e) => collect_selectors(&e.expr, out),
        Expr::Call(e) => e.args.args.iter().for_each(|a| collect_selectors(a, out)),
        Expr::Extension(_) | Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use promql_parser::parser;

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
        let has = |q: &str| !selectors(&parser::parse(q).unwrap()).is_empty();
        assert!(has("rate(up[5m]) * 2"));
        assert!(has("sum(up)"));
        assert!(!has("1 + 1"));
        assert!(!has("time()"));
        let found = selectors(&parser::parse(r#"rate(a{x="1"}[5m]) / on() sum(b)"#).unwrap());
        let names: Vec<_> = found.iter().map(|(n, _)| n.as_deref()).collect();
        assert_eq!(names, [Some("a"), Some("b")]);
    }
}
