//! Syntax tree → canonical one-line LogQL text (`Display` for every node).
//!
//! Close to Loki's `String()`: strings are re-quoted with Go escaping,
//! durations use Prometheus units (`1h30m`), byte sizes the largest exact
//! unit (`20MB`, `1KiB`). Grouping goes between an aggregation and its
//! arguments (`sum by (app) (…)`), arguments and label lists are separated
//! by `, `, and binary operations print without added parentheses (the
//! parser keeps the written ones as `Paren`), so parsing the text again
//! gives the same tree.

use std::fmt::{self, Display, Formatter, Write};

use super::ast::*;
pub use crate::query::go_text::go_quote as quote;

/// Nanoseconds as a duration literal: Prometheus units when a whole number
/// of milliseconds, else `…ns`.
pub fn duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let abs = ns.unsigned_abs();
    if !abs.is_multiple_of(1_000_000) {
        return format!("{sign}{abs}ns");
    }
    let mut ms = abs / 1_000_000;
    let mut out = String::from(sign);
    for (unit, size) in [
        ("y", 365 * 86_400_000u64),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            let _ = write!(out, "{}{unit}", ms / size);
            ms %= size;
        }
    }
    out
}

fn bytes(b: f64) -> String {
    let b = b as u64;
    for (unit, size) in [
        ("PiB", 1u64 << 50),
        ("PB", 1_000_000_000_000_000),
        ("TiB", 1 << 40),
        ("TB", 1_000_000_000_000),
        ("GiB", 1 << 30),
        ("GB", 1_000_000_000),
        ("MiB", 1 << 20),
        ("MB", 1_000_000),
        ("KiB", 1 << 10),
        ("KB", 1_000),
    ] {
        if b >= size && b.is_multiple_of(size) {
            return format!("{}{unit}", b / size);
        }
    }
    format!("{b}B")
}

fn seconds(s: f64) -> String {
    duration((s * 1e9).round() as i64)
}

fn join<T: Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Log(l) => l.fmt(f),
            Expr::Metric(m) => m.fmt(f),
        }
    }
}

impl Display for LogExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{{{}}}", join(&self.selector))?;
        for stage in &self.pipeline {
            write!(f, " {stage}")?;
        }
        Ok(())
    }
}

impl Display for MatchOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Eq => "=",
            MatchOp::Neq => "!=",
            MatchOp::Re => "=~",
            MatchOp::Nre => "!~",
        })
    }
}

impl Display for Matcher {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.name, self.op, quote(&self.value))
    }
}

impl Display for LineFilterOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LineFilterOp::Contains => "|=",
            LineFilterOp::NotContains => "!=",
            LineFilterOp::Regex => "|~",
            LineFilterOp::NotRegex => "!~",
            LineFilterOp::Pattern => "|>",
            LineFilterOp::NotPattern => "!>",
        })
    }
}

impl Display for LineFilterValue {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            LineFilterValue::Text(s) => f.write_str(&quote(s)),
            LineFilterValue::Ip(s) => write!(f, "ip({})", quote(s)),
        }
    }
}

impl Display for LineFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.op)?;
        for (i, v) in self.values.iter().enumerate() {
            let sep = if i == 0 { " " } else { " or " };
            write!(f, "{sep}{v}")?;
        }
        Ok(())
    }
}

impl Display for LabelExtraction {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.label, quote(&self.expression))
    }
}

impl Display for ParserStage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            ParserStage::Json(ex) if ex.is_empty() => f.write_str("json"),
            ParserStage::Json(ex) => write!(f, "json {}", join(ex)),
            ParserStage::Logfmt {
                strict,
                keep_empty,
                extractions,
            } => {
                f.write_str("logfmt")?;
                if *strict {
                    f.write_str(" --strict")?;
                }
                if *keep_empty {
                    f.write_str(" --keep-empty")?;
                }
                if !extractions.is_empty() {
                    write!(f, " {}", join(extractions))?;
                }
                Ok(())
            }
            ParserStage::Regexp { pattern, .. } => write!(f, "regexp {}", quote(pattern)),
            ParserStage::Pattern { pattern, .. } => write!(f, "pattern {}", quote(pattern)),
            ParserStage::Unpack => f.write_str("unpack"),
        }
    }
}

impl Display for CompareOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CompareOp::Eq => "==",
            CompareOp::Neq => "!=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
        })
    }
}

impl Display for LabelFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            LabelFilter::And(l, r) => {
                // `or` binds looser, and both chain to the left.
                let wrap_l = matches!(**l, LabelFilter::Or(..));
                let wrap_r = matches!(**r, LabelFilter::Or(..) | LabelFilter::And(..));
                write_side(f, l, wrap_l)?;
                f.write_str(" and ")?;
                write_side(f, r, wrap_r)
            }
            LabelFilter::Or(l, r) => {
                write_side(f, l, false)?;
                f.write_str(" or ")?;
                write_side(f, r, matches!(**r, LabelFilter::Or(..)))
            }
            LabelFilter::String(m) => m.fmt(f),
            LabelFilter::Number {
                name, op, value, ..
            } => write!(f, "{name}{op}{value}"),
            LabelFilter::Duration {
                name,
                op,
                seconds: s,
                ..
            } => write!(f, "{name}{op}{}", seconds(*s)),
            LabelFilter::Bytes {
                name, op, bytes: b, ..
            } => write!(f, "{name}{op}{}", bytes(*b)),
            LabelFilter::Ip {
                name,
                negated,
                range,
                ..
            } => {
                let op = if *negated { "!=" } else { "=" };
                write!(f, "{name}{op}ip({})", quote(range))
            }
        }
    }
}

fn write_side(f: &mut Formatter<'_>, filter: &LabelFilter, wrap: bool) -> fmt::Result {
    if wrap {
        write!(f, "({filter})")
    } else {
        write!(f, "{filter}")
    }
}

impl Display for LabelFormatItem {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.source {
            LabelFormatSource::Rename(src) => write!(f, "{}={src}", self.target),
            LabelFormatSource::Template(t) => write!(f, "{}={}", self.target, quote(t)),
        }
    }
}

impl Display for LabelSelection {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            LabelSelection::Name(n) => f.write_str(n),
            LabelSelection::Matcher(m) => m.fmt(f),
        }
    }
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Stage::LineFilter(lf) => lf.fmt(f),
            Stage::Parser(p) => write!(f, "| {p}"),
            Stage::LabelFilter(lf) => write!(f, "| {lf}"),
            Stage::LineFormat { template, .. } => write!(f, "| line_format {}", quote(template)),
            Stage::LabelFormat(items) => write!(f, "| label_format {}", join(items)),
            Stage::Drop(items) => write!(f, "| drop {}", join(items)),
            Stage::Keep(items) => write!(f, "| keep {}", join(items)),
            Stage::Decolorize => f.write_str("| decolorize"),
        }
    }
}

impl Display for Unwrap {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.conversion {
            UnwrapConversion::Number => write!(f, "| unwrap {}", self.label)?,
            UnwrapConversion::Duration => write!(f, "| unwrap duration_seconds({})", self.label)?,
            UnwrapConversion::Bytes => write!(f, "| unwrap bytes({})", self.label)?,
        }
        for filter in &self.post_filters {
            write!(f, " | {filter}")?;
        }
        Ok(())
    }
}

impl Display for LogRange {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.log.fmt(f)?;
        if let Some(u) = &self.unwrap {
            write!(f, " {u}")?;
        }
        if !self.log.pipeline.is_empty() || self.unwrap.is_some() {
            f.write_str(" ")?;
        }
        write!(f, "[{}]", duration(self.range_ns))?;
        if self.offset_ns != 0 {
            write!(f, " offset {}", duration(self.offset_ns))?;
        }
        Ok(())
    }
}

impl Display for Grouping {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let kw = if self.without { "without" } else { "by" };
        write!(f, "{kw} ({})", self.labels.join(", "))
    }
}

/// `on (a) group_left (b)`, `ignoring (a)`, …
impl Display for VectorMatching {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let kw = if self.on { "on" } else { "ignoring" };
        write!(f, "{kw} ({})", self.labels.join(", "))?;
        if let Some(g) = &self.group {
            // Always with its list: `group_left (x)` before a parenthesised
            // operand would otherwise read the operand as the list.
            let kw = if g.left { "group_left" } else { "group_right" };
            write!(f, " {kw} ({})", g.labels.join(", "))?;
        }
        Ok(())
    }
}

impl Display for MetricExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            MetricExpr::RangeAggregation {
                op,
                range,
                param,
                grouping,
                ..
            } => {
                write!(f, "{}(", op.name())?;
                if let Some(p) = param {
                    write!(f, "{p}, ")?;
                }
                write!(f, "{range})")?;
                if let Some(g) = grouping {
                    write!(f, " {g}")?;
                }
                Ok(())
            }
            MetricExpr::VectorAggregation {
                op,
                expr,
                param,
                grouping,
                ..
            } => {
                f.write_str(op.name())?;
                if let Some(g) = grouping {
                    write!(f, " {g} ")?;
                }
                f.write_str("(")?;
                if let Some(p) = param {
                    write!(f, "{p}, ")?;
                }
                write!(f, "{expr})")
            }
            MetricExpr::Binary {
                op,
                lhs,
                rhs,
                return_bool,
                matching,
                ..
            } => {
                write!(f, "{lhs} {}", op.symbol())?;
                if *return_bool {
                    f.write_str(" bool")?;
                }
                if let Some(m) = matching {
                    write!(f, " {m}")?;
                }
                write!(f, " {rhs}")
            }
            MetricExpr::Number(v) => write!(f, "{v}"),
            MetricExpr::Vector(v) => write!(f, "vector({v})"),
            MetricExpr::LabelReplace {
                expr,
                destination,
                replacement,
                source,
                regex,
                ..
            } => write!(
                f,
                "label_replace({expr}, {}, {}, {}, {})",
                quote(destination),
                quote(replacement),
                quote(source),
                quote(regex)
            ),
            MetricExpr::Paren(inner) => write!(f, "({inner})"),
        }
    }
}

/// `e` with every `pos` zeroed, to compare trees parsed from different text.
#[cfg(test)]
pub(crate) fn strip_positions(e: &Expr) -> Expr {
    fn matcher(m: &mut Matcher) {
        m.pos = 0;
    }
    fn filter(f: &mut LabelFilter) {
        match f {
            LabelFilter::And(l, r) | LabelFilter::Or(l, r) => {
                filter(l);
                filter(r);
            }
            LabelFilter::String(m) => matcher(m),
            LabelFilter::Number { pos, .. }
            | LabelFilter::Duration { pos, .. }
            | LabelFilter::Bytes { pos, .. }
            | LabelFilter::Ip { pos, .. } => *pos = 0,
        }
    }
    fn log(l: &mut LogExpr) {
        l.selector.iter_mut().for_each(matcher);
        for s in &mut l.pipeline {
            match s {
                Stage::LineFilter(lf) => lf.pos = 0,
                Stage::Parser(ParserStage::Json(ex))
                | Stage::Parser(ParserStage::Logfmt {
                    extractions: ex, ..
                }) => ex.iter_mut().for_each(|x| x.pos = 0),
                Stage::Parser(ParserStage::Regexp { pos, .. })
                | Stage::Parser(ParserStage::Pattern { pos, .. })
                | Stage::LineFormat { pos, .. } => *pos = 0,
                Stage::Parser(ParserStage::Unpack) | Stage::Decolorize => {}
                Stage::LabelFilter(f) => filter(f),
                Stage::LabelFormat(items) => items.iter_mut().for_each(|i| i.pos = 0),
                Stage::Drop(items) | Stage::Keep(items) => {
                    for i in items {
                        if let LabelSelection::Matcher(m) = i {
                            matcher(m);
                        }
                    }
                }
            }
        }
    }
    fn metric(m: &mut MetricExpr) {
        match m {
            MetricExpr::RangeAggregation { range, pos, .. } => {
                *pos = 0;
                log(&mut range.log);
                if let Some(u) = &mut range.unwrap {
                    u.pos = 0;
                    u.post_filters.iter_mut().for_each(filter);
                }
            }
            MetricExpr::VectorAggregation { expr, pos, .. }
            | MetricExpr::LabelReplace { expr, pos, .. } => {
                *pos = 0;
                metric(expr);
            }
            MetricExpr::Binary { lhs, rhs, pos, .. } => {
                *pos = 0;
                metric(lhs);
                metric(rhs);
            }
            MetricExpr::Paren(inner) => metric(inner),
            MetricExpr::Number(_) | MetricExpr::Vector(_) => {}
        }
    }
    let mut e = e.clone();
    match &mut e {
        Expr::Log(l) => log(l),
        Expr::Metric(m) => metric(m),
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::logql::parse;

    #[test]
    fn canonical_text() {
        for (q, want) in [
            (
                "sum by(app)(count_over_time({app=\"x\"}|=\"err\"[5m]))",
                "sum by (app) (count_over_time({app=\"x\"} |= \"err\" [5m]))",
            ),
            ("{a=\"\\x01é\\u00ff\"}", "{a=\"\\x01éÿ\"}"),
            (
                "{a=\"b\"} | x=\"1\" or (y=\"2\" or z=\"3\")",
                "{a=\"b\"} | x=\"1\" or (y=\"2\" or z=\"3\")",
            ),
            (
                "rate({a=\"b\"}[90s] offset 1500ms)",
                "rate({a=\"b\"}[1m30s] offset 1s500ms)",
            ),
        ] {
            assert_eq!(parse(q).unwrap().to_string(), want, "{q}");
        }
        assert_eq!(duration(2_000), "2000ns");
        assert_eq!(bytes(1024.0 * 1024.0), "1MiB");
    }

    #[test]
    fn every_check_file_query_round_trips() {
        let text = include_str!("../../../tests/logql/check.txt");
        let mut n = 0;
        for q in text.lines().filter_map(|l| l.strip_prefix("ok\t")) {
            let first = parse(q).unwrap();
            let shown = first.to_string();
            let again = parse(&shown).unwrap_or_else(|e| panic!("{q}\n{shown}\n{e}"));
            assert_eq!(
                strip_positions(&again),
                strip_positions(&first),
                "{q}\n{shown}"
            );
            assert_eq!(again.to_string(), shown);
            n += 1;
        }
        assert!(n >= 100);
    }
}
