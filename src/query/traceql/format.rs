//! The syntax tree → canonical TraceQL text (`Display`), which parses back
//! to the same tree: every non-leaf operand is parenthesised, strings are
//! Go-quoted, durations print as Go does (`1.5s`, `1h30m0s`), attribute
//! names that need it are quoted.

use std::fmt::{self, Display, Formatter, Write};

use super::ast::*;
use super::lexer::is_attribute_char;
use crate::query::go_text::go_quote;

/// A Go `time.Duration` string: `0s`, `1.5s`, `1h30m0s`, `100µs`, `-2ms`.
pub fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let frac = |value: u64, scale: u64, digits: usize| -> String {
        let whole = value / scale;
        let rest = value % scale;
        if rest == 0 {
            return whole.to_string();
        }
        let s = format!("{rest:0digits$}");
        format!("{whole}.{}", s.trim_end_matches('0'))
    };
    if u < 1_000 {
        let _ = write!(out, "{u}ns");
    } else if u < 1_000_000 {
        let _ = write!(out, "{}µs", frac(u, 1_000, 3));
    } else if u < 1_000_000_000 {
        let _ = write!(out, "{}ms", frac(u, 1_000_000, 6));
    } else {
        let hours = u / 3_600_000_000_000;
        let minutes = (u / 60_000_000_000) % 60;
        let seconds = u % 60_000_000_000;
        if hours > 0 {
            let _ = write!(out, "{hours}h{minutes}m");
        } else if minutes > 0 {
            let _ = write!(out, "{minutes}m");
        }
        let _ = write!(out, "{}s", frac(seconds, 1_000_000_000, 9));
    }
    out
}

/// A literal as TraceQL text.
pub fn static_text(s: &Static) -> String {
    match s {
        Static::Nil => "nil".into(),
        Static::Int(i64::MIN) => "minInt".into(),
        Static::Int(i) => i.to_string(),
        Static::Float(f) => {
            let text = format!("{f:?}");
            if text.contains(['e', '.', 'N', 'i']) {
                text
            } else {
                format!("{text}.0")
            }
        }
        Static::Str(s) => go_quote(s),
        Static::Bool(b) => b.to_string(),
        Static::Duration(d) => go_duration(*d),
        Static::Status(s) => s.name().into(),
        Static::Kind(k) => k.name().into(),
    }
}

impl Display for Attribute {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Attribute::Intrinsic(i) => f.write_str(i.name()),
            Attribute::Named {
                scope,
                parent,
                name,
            } => {
                if *parent {
                    f.write_str("parent.")?;
                }
                match scope {
                    Scope::None if !*parent => f.write_str(".")?,
                    Scope::None => {}
                    other => write!(f, "{}.", other.prefix())?,
                }
                if name.chars().all(is_attribute_char) && !name.contains('"') && !name.is_empty() {
                    f.write_str(name)
                } else {
                    f.write_char('"')?;
                    for c in name.chars() {
                        if c == '"' || c == '\\' {
                            f.write_char('\\')?;
                        }
                        f.write_char(c)?;
                    }
                    f.write_char('"')
                }
            }
        }
    }
}

fn field_operand(e: &FieldExpr) -> String {
    match e {
        FieldExpr::Static(_) | FieldExpr::Attribute(_) => e.to_string(),
        _ => format!("({e})"),
    }
}

impl Display for FieldExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            FieldExpr::Static(s) => f.write_str(&static_text(s)),
            FieldExpr::Attribute(a) => write!(f, "{a}"),
            FieldExpr::Binary(op, l, r) => write!(
                f,
                "{} {} {}",
                field_operand(l),
                op.symbol(),
                field_operand(r)
            ),
            FieldExpr::Unary(op, e) => match op {
                UnaryOp::Neg => write!(f, "-{}", field_operand(e)),
                UnaryOp::Not => write!(f, "!{}", field_operand(e)),
                UnaryOp::Exists => write!(f, "{} != nil", field_operand(e)),
                UnaryOp::NotExists => write!(f, "{} = nil", field_operand(e)),
            },
        }
    }
}

fn spanset_operand(e: &SpansetExpr) -> String {
    match e {
        SpansetExpr::Filter(_) => e.to_string(),
        _ => format!("({e})"),
    }
}

impl Display for SpansetExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            SpansetExpr::Filter(FieldExpr::Static(Static::Bool(true))) => f.write_str("{ }"),
            SpansetExpr::Filter(e) => write!(f, "{{ {e} }}"),
            SpansetExpr::Op(op, l, r) => write!(
                f,
                "{} {} {}",
                spanset_operand(l),
                op.symbol(),
                spanset_operand(r)
            ),
            SpansetExpr::Pipeline(stages) => {
                for (i, stage) in stages.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" | ")?;
                    }
                    write!(f, "{stage}")?;
                }
                Ok(())
            }
        }
    }
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            // A pipeline or operator chain inside a stage keeps its own grouping.
            Stage::Spanset(e @ SpansetExpr::Pipeline(_)) => write!(f, "({e})"),
            Stage::Spanset(e) => write!(f, "{e}"),
            Stage::ScalarFilter(sf) => write!(f, "{sf}"),
            Stage::By(e) => write!(f, "by({e})"),
            Stage::Coalesce => f.write_str("coalesce()"),
            Stage::Select(attrs) => {
                f.write_str("select(")?;
                write_list(f, attrs)?;
                f.write_str(")")
            }
        }
    }
}

fn write_list(f: &mut Formatter<'_>, attrs: &[Attribute]) -> fmt::Result {
    for (i, a) in attrs.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{a}")?;
    }
    Ok(())
}

fn scalar_operand(e: &ScalarExpr) -> String {
    match e {
        ScalarExpr::Binary(..) => format!("({e})"),
        _ => e.to_string(),
    }
}

impl Display for ScalarExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            ScalarExpr::Static(s) => f.write_str(&static_text(s)),
            ScalarExpr::Aggregate(op, None) => write!(f, "{}()", op.name()),
            ScalarExpr::Aggregate(op, Some(e)) => write!(f, "{}({e})", op.name()),
            ScalarExpr::Binary(op, l, r) => write!(
                f,
                "{} {} {}",
                scalar_operand(l),
                op.symbol(),
                scalar_operand(r)
            ),
        }
    }
}

impl Display for ScalarFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            scalar_operand(&self.lhs),
            self.op.symbol(),
            scalar_operand(&self.rhs)
        )
    }
}

impl Display for MetricsAggregate {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.op.name())?;
        if let Some((filter, top, start, end)) = &self.compare {
            write!(f, "{}", SpansetExpr::Filter((**filter).clone()))?;
            write!(f, ", {top}")?;
            if *start != 0 || *end != 0 {
                write!(f, ", {start}, {end}")?;
            }
        }
        if let Some(a) = &self.attribute {
            write!(f, "{a}")?;
        }
        for q in &self.quantiles {
            write!(f, ", {}", static_text(&Static::Float(*q)))?;
        }
        f.write_str(")")?;
        if !self.by.is_empty() {
            f.write_str(" by (")?;
            write_list(f, &self.by)?;
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl Display for SecondStage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            SecondStage::TopK(k) => write!(f, " | topk({k})"),
            SecondStage::BottomK(k) => write!(f, " | bottomk({k})"),
            SecondStage::Filter(op, v) => {
                write!(f, " {} {}", op.symbol(), static_text(&Static::Float(*v)))
            }
        }
    }
}

impl Display for MetricsExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            MetricsExpr::Pipeline {
                spans,
                aggregate,
                second,
            } => {
                match spans {
                    SpansetExpr::Pipeline(_) | SpansetExpr::Filter(_) => write!(f, "{spans}")?,
                    other => write!(f, "({other})")?,
                }
                write!(f, " | {aggregate}")?;
                for s in second {
                    write!(f, "{s}")?;
                }
                Ok(())
            }
            MetricsExpr::Binary(op, l, r) => {
                let operand = |e: &MetricsExpr| match e {
                    MetricsExpr::Scalar(v) => static_text(&Static::Float(*v)),
                    other => format!("({other})"),
                };
                write!(f, "{} {} {}", operand(l), op.symbol(), operand(r))
            }
            MetricsExpr::Scalar(v) => f.write_str(&static_text(&Static::Float(*v))),
            MetricsExpr::Staged(inner, second) => {
                write!(f, "({inner})")?;
                for s in second {
                    write!(f, "{s}")?;
                }
                Ok(())
            }
        }
    }
}

impl Display for Root {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.query {
            Query::Spans(s) => write!(f, "{s}")?,
            Query::Metrics(m) => write!(f, "{m}")?,
        }
        if !self.hints.is_empty() {
            f.write_str(" with(")?;
            for (i, h) in self.hints.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{}={}", h.name, static_text(&h.value))?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go() {
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(5_400_000_000_000), "1h30m0s");
        assert_eq!(go_duration(100_000), "100µs");
        assert_eq!(go_duration(2_500_000), "2.5ms");
        assert_eq!(go_duration(-2_000_000), "-2ms");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
    }
}
