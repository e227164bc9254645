//! A query-check file → a report: each line `ok<TAB>query` must parse and
//! each `err<TAB>query` must fail to; blank lines and `#` comments are
//! skipped. Used by `o11ydb check logql|promql|traceql FILE` and by the
//! tests that keep `tests/logql/check.txt` and `tests/traceql/check.txt`
//! passing.

use std::fmt::Write;

/// The outcome of checking one file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub passed: usize,
    /// One entry per failing line, already formatted.
    pub failures: Vec<String>,
}

impl CheckReport {
    /// Every failure on its own line, then `N passed, M failed`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.failures {
            let _ = writeln!(out, "{f}");
        }
        let _ = writeln!(
            out,
            "{} passed, {} failed",
            self.passed,
            self.failures.len()
        );
        out
    }

    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs every `ok`/`err` line of `text` through `parse` (an error rendered
/// as text). A line with another prefix counts as a failure.
pub fn check(text: &str, parse: impl Fn(&str) -> Result<(), String>) -> CheckReport {
    let mut report = CheckReport::default();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (expect_ok, query) = if let Some(q) = line.strip_prefix("ok\t") {
            (true, q)
        } else if let Some(q) = line.strip_prefix("err\t") {
            (false, q)
        } else {
            report.failures.push(format!(
                "line {n}: {line}\n  expected `ok<TAB>query` or `err<TAB>query`"
            ));
            continue;
        };
        match (expect_ok, parse(query)) {
            (true, Ok(())) | (false, Err(_)) => report.passed += 1,
            (true, Err(e)) => report
                .failures
                .push(format!("line {n}: {query}\n  unexpected error: {e}")),
            (false, Ok(())) => report.failures.push(format!(
                "line {n}: {query}\n  expected an error, parsed fine"
            )),
        }
    }
    report
}

/// [`check`] with the LogQL parser.
pub fn check_logql(text: &str) -> CheckReport {
    check(text, |q| {
        crate::query::logql::parse(q)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

/// [`check`] with the TraceQL parser and its validation.
pub fn check_traceql(text: &str) -> CheckReport {
    check(text, |q| {
        crate::query::traceql::parse(q)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

/// [`check`] with the PromQL parser.
pub fn check_promql(text: &str) -> CheckReport {
    check(text, |q| {
        crate::query::promql::parse(q)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_reports() {
        let text = "# c\n\nok\t{a=\"b\"}\nerr\t{a=\"b\"\nerr\t{a=\"b\"}\nok\t{\nbogus\n";
        let r = check_logql(text);
        assert_eq!(r.passed, 2);
        assert_eq!(r.failures.len(), 3);
        assert!(r.failures[0].contains("line 5") && r.failures[0].contains("parsed fine"));
        assert!(r.failures[1].contains("unexpected error: parse error at line 1, col 2"));
        assert!(r.render().ends_with("2 passed, 3 failed\n"));
    }

    #[test]
    fn promql_lines() {
        let r = check_promql("ok\tsum(up)\nerr\tsum(up\nok\t{a=\"b\"} |= \"x\"\n");
        assert_eq!(r.passed, 2);
        assert_eq!(r.failures.len(), 1);
        assert!(r.failures[0].starts_with("line 3:"));
    }

    #[test]
    fn traceql_check_file_passes() {
        let text = include_str!("../../tests/traceql/check.txt");
        let r = check_traceql(text);
        assert!(r.ok(), "{}", r.render());
        assert!(r.passed >= 200, "{} lines", r.passed);
    }

    #[test]
    fn logql_check_file_passes() {
        let text = include_str!("../../tests/logql/check.txt");
        let r = check_logql(text);
        assert!(r.ok(), "{}", r.render());
        assert!(r.passed >= 120, "{} lines", r.passed);
    }
}
