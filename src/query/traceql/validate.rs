//! A parsed TraceQL tree → `Ok` or the reason it cannot run, as Tempo's
//! validation phrases it: spanset filters must be boolean, operands must
//! have compatible types (`1 = "foo"` is an error, `1 < 1h` is not),
//! regular expressions must compile, intrinsics cannot be nil, aggregates
//! and `by()` must reference the span, `topk`/`bottomk` need k > 0.
//! Constructs Tempo parses but does not run (`parent.` attributes,
//! aggregates compared with aggregates, `compare()`) are reported as
//! unsupported, naming the construct.

use super::ast::*;

pub fn validate(root: &Root) -> Result<(), String> {
    match &root.query {
        Query::Spans(s) => spanset(s),
        Query::Metrics(m) => metrics(m),
    }
}

fn unsupported(what: &str) -> String {
    format!("unsupported: {what} is not supported yet")
}

fn spanset(e: &SpansetExpr) -> Result<(), String> {
    match e {
        SpansetExpr::Filter(f) => filter(f),
        SpansetExpr::Op(_, l, r) => {
            spanset(l)?;
            spanset(r)
        }
        SpansetExpr::Pipeline(stages) => {
            for s in stages {
                stage(s)?;
            }
            Ok(())
        }
    }
}

fn filter(f: &FieldExpr) -> Result<(), String> {
    let t = field_type(f)?;
    if !matches!(t, ValueType::Bool | ValueType::Attribute) {
        return Err(format!(
            "invalid spanset filter: {f} is of type {}, but a filter must be boolean",
            t.name()
        ));
    }
    Ok(())
}

fn references_span(e: &FieldExpr) -> bool {
    match e {
        FieldExpr::Static(_) => false,
        FieldExpr::Attribute(_) => true,
        FieldExpr::Binary(_, l, r) => references_span(l) || references_span(r),
        FieldExpr::Unary(_, e) => references_span(e),
    }
}

fn stage(s: &Stage) -> Result<(), String> {
    match s {
        Stage::Spanset(e) => spanset(e),
        Stage::ScalarFilter(sf) => scalar_filter(sf),
        Stage::By(e) => {
            field_type(e)?;
            if !references_span(e) {
                return Err(format!("invalid by({e}): it must reference the span"));
            }
            Ok(())
        }
        Stage::Coalesce => Ok(()),
        Stage::Select(attrs) => {
            for a in attrs {
                attribute_supported(a)?;
            }
            Ok(())
        }
    }
}

fn count_aggregates(e: &ScalarExpr) -> usize {
    match e {
        ScalarExpr::Static(_) => 0,
        ScalarExpr::Aggregate(..) => 1,
        ScalarExpr::Binary(_, l, r) => count_aggregates(l) + count_aggregates(r),
    }
}

fn scalar_filter(sf: &ScalarFilter) -> Result<(), String> {
    let lt = scalar_type(&sf.lhs)?;
    let rt = scalar_type(&sf.rhs)?;
    if !lt.is_numeric() || !rt.is_numeric() {
        return Err(format!(
            "invalid scalar filter {sf}: both sides must be numbers"
        ));
    }
    if count_aggregates(&sf.lhs) + count_aggregates(&sf.rhs) > 1 {
        return Err(unsupported("a scalar filter with more than one aggregate"));
    }
    Ok(())
}

fn scalar_type(e: &ScalarExpr) -> Result<ValueType, String> {
    match e {
        ScalarExpr::Static(s) => Ok(static_type(s)),
        ScalarExpr::Aggregate(_, None) => Ok(ValueType::Int),
        ScalarExpr::Aggregate(op, Some(arg)) => {
            let t = field_type(arg)?;
            if !t.is_numeric() {
                return Err(format!(
                    "invalid aggregate {}({arg}): the argument must be numeric, not {}",
                    op.name(),
                    t.name()
                ));
            }
            if !references_span(arg) {
                return Err(format!(
                    "invalid aggregate {}({arg}): it must reference the span",
                    op.name()
                ));
            }
            Ok(if t == ValueType::Duration {
                ValueType::Duration
            } else {
                ValueType::Float
            })
        }
        ScalarExpr::Binary(op, l, r) => {
            let (lt, rt) = (scalar_type(l)?, scalar_type(r)?);
            if !lt.is_numeric() || !rt.is_numeric() {
                return Err(format!(
                    "invalid scalar expression {e}: operator {} needs numbers",
                    op.symbol()
                ));
            }
            Ok(ValueType::Float)
        }
    }
}

pub fn static_type(s: &Static) -> ValueType {
    match s {
        Static::Nil => ValueType::Nil,
        Static::Int(_) => ValueType::Int,
        Static::Float(_) => ValueType::Float,
        Static::Str(_) => ValueType::String,
        Static::Bool(_) => ValueType::Bool,
        Static::Duration(_) => ValueType::Duration,
        Static::Status(_) => ValueType::Status,
        Static::Kind(_) => ValueType::Kind,
    }
}

fn attribute_supported(a: &Attribute) -> Result<(), String> {
    match a {
        Attribute::Named { parent: true, .. } => {
            Err(unsupported(&format!("the parent scope ({a})")))
        }
        Attribute::Intrinsic(Intrinsic::Parent) => Err(unsupported("the parent intrinsic")),
        _ => Ok(()),
    }
}

/// Whether values of types `a` and `b` may be compared.
fn comparable(a: ValueType, b: ValueType) -> bool {
    a == ValueType::Attribute
        || b == ValueType::Attribute
        || a == b
        || (a.is_numeric() && b.is_numeric())
}

/// The type of a field expression, or why it has none.
pub fn field_type(e: &FieldExpr) -> Result<ValueType, String> {
    match e {
        FieldExpr::Static(s) => Ok(static_type(s)),
        FieldExpr::Attribute(a) => {
            attribute_supported(a)?;
            Ok(match a {
                Attribute::Intrinsic(i) => i.value_type(),
                Attribute::Named { .. } => ValueType::Attribute,
            })
        }
        FieldExpr::Unary(op, inner) => {
            let t = field_type(inner)?;
            match op {
                UnaryOp::Neg => {
                    if !t.is_numeric() {
                        return Err(format!(
                            "invalid operand -{inner}: {} is not numeric",
                            t.name()
                        ));
                    }
                    Ok(t)
                }
                UnaryOp::Not => {
                    if !matches!(t, ValueType::Bool | ValueType::Attribute) {
                        return Err(format!(
                            "invalid operand !{inner}: {} is not boolean",
                            t.name()
                        ));
                    }
                    Ok(ValueType::Bool)
                }
                UnaryOp::Exists | UnaryOp::NotExists => {
                    let nil_able = match &**inner {
                        FieldExpr::Attribute(Attribute::Named { scope, name, .. }) => {
                            !(*scope == Scope::Resource && name == "service.name")
                        }
                        FieldExpr::Attribute(Attribute::Intrinsic(i)) => {
                            i.value_type() == ValueType::String
                        }
                        _ => true,
                    };
                    if !nil_able {
                        return Err(format!(
                            "invalid comparison of {inner} with nil: it is never nil"
                        ));
                    }
                    Ok(ValueType::Bool)
                }
            }
        }
        FieldExpr::Binary(op, l, r) => {
            let (lt, rt) = (field_type(l)?, field_type(r)?);
            let mismatch = || {
                format!(
                    "binary operations must operate on the same type: {e} ({} {} {})",
                    lt.name(),
                    op.symbol(),
                    rt.name()
                )
            };
            if op.is_arithmetic() {
                if !lt.is_numeric() || !rt.is_numeric() {
                    return Err(mismatch());
                }
                return Ok(
                    if lt == ValueType::Attribute || rt == ValueType::Attribute {
                        ValueType::Attribute
                    } else if lt == ValueType::Duration || rt == ValueType::Duration {
                        ValueType::Duration
                    } else if lt == ValueType::Int && rt == ValueType::Int {
                        ValueType::Int
                    } else {
                        ValueType::Float
                    },
                );
            }
            if op.is_logical() {
                let boolish = |t| matches!(t, ValueType::Bool | ValueType::Attribute);
                if !boolish(lt) || !boolish(rt) {
                    return Err(mismatch());
                }
                return Ok(ValueType::Bool);
            }
            match op {
                BinaryOp::Regex | BinaryOp::NotRegex => {
                    let stringish = |t| matches!(t, ValueType::String | ValueType::Attribute);
                    if !stringish(lt) || !stringish(rt) {
                        return Err(mismatch());
                    }
                    if let FieldExpr::Static(Static::Str(pattern)) = &**r {
                        regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|err| {
                            format!("invalid regular expression {pattern:?}: {err}")
                        })?;
                    }
                }
                BinaryOp::Eq | BinaryOp::Neq => {
                    if !comparable(lt, rt) {
                        return Err(mismatch());
                    }
                }
                _ => {
                    let ordered =
                        |t| !matches!(t, ValueType::Status | ValueType::Kind | ValueType::Nil);
                    if !comparable(lt, rt) || !ordered(lt) || !ordered(rt) {
                        return Err(mismatch());
                    }
                }
            }
            Ok(ValueType::Bool)
        }
    }
}

fn metrics(m: &MetricsExpr) -> Result<(), String> {
    match m {
        MetricsExpr::Pipeline {
            spans,
            aggregate,
            second,
        } => {
            spanset(spans)?;
            if aggregate.op == MetricsOp::Compare {
                if !second.is_empty() {
                    return Err("compare() cannot be followed by second-stage functions".into());
                }
                return Err(unsupported("compare()"));
            }
            if let Some(a) = &aggregate.attribute {
                attribute_supported(a)?;
            }
            for q in &aggregate.quantiles {
                if !(0.0..=1.0).contains(q) {
                    return Err(format!(
                        "invalid quantile {q}: quantiles are between 0 and 1"
                    ));
                }
            }
            for a in &aggregate.by {
                attribute_supported(a)?;
            }
            second_stages(second)
        }
        MetricsExpr::Binary(_, l, r) => {
            metrics(l)?;
            metrics(r)
        }
        MetricsExpr::Scalar(_) => Ok(()),
        MetricsExpr::Staged(inner, second) => {
            metrics(inner)?;
            second_stages(second)
        }
    }
}

fn second_stages(second: &[SecondStage]) -> Result<(), String> {
    for s in second {
        if let SecondStage::TopK(k) | SecondStage::BottomK(k) = s
            && *k <= 0
        {
            return Err(format!(
                "invalid topk/bottomk limit {k}: it must be greater than 0"
            ));
        }
    }
    Ok(())
}
