//! A TraceQL spanset expression and one [`Trace`] → the spansets it yields.
//!
//! Field expressions are evaluated per span ([`Value`]s; attribute values
//! are stored as text, so a text value takes the type of what it is
//! compared with: `span.code = 200` compares numerically, `= "200"` as
//! text; a value that cannot take that type never matches, as a value of
//! another type never matches in Tempo). A condition on `event.`/`link.`
//! fields holds for a span when it holds for one of its events/links.
//! Spanset operators follow Tempo: `&&` needs both sides non-empty and
//! keeps the spans of both, `||` keeps either, structural operators keep
//! the right side's spans related to some left-side span (the negated
//! forms those related to none, the union forms both sides of each related
//! pair). Pipelines run stage by stage over the list of spansets.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;

use regex::Regex;

use super::ast::*;
use super::trace::{Trace, lookup};

/// A value of a field expression for one span.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Nil,
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Bool(bool),
    /// Nanoseconds.
    Duration(i64),
    Status(Status),
    Kind(Kind),
    /// An attribute's stored text: typed by what it meets.
    Text(&'a str),
}

impl Value<'_> {
    pub fn from_static(s: &Static) -> Value<'_> {
        match s {
            Static::Nil => Value::Nil,
            Static::Int(i) => Value::Int(*i),
            Static::Float(f) => Value::Float(*f),
            Static::Str(s) => Value::Str(Cow::Borrowed(s)),
            Static::Bool(b) => Value::Bool(*b),
            Static::Duration(d) => Value::Duration(*d),
            Static::Status(s) => Value::Status(*s),
            Static::Kind(k) => Value::Kind(*k),
        }
    }

    /// The value as a number (durations in nanoseconds), if it is one.
    pub fn number(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Duration(d) => Some(*d as f64),
            Value::Text(t) => t.trim().parse::<f64>().ok(),
            _ => None,
        }
    }

    fn is_true(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            Value::Text(t) => *t == "true",
            _ => false,
        }
    }

    fn text(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The value as text, for grouping keys and output.
    pub fn render(&self) -> String {
        match self {
            Value::Nil => "nil".into(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Str(s) => s.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Duration(d) => super::format::go_duration(*d),
            Value::Status(s) => s.name().into(),
            Value::Kind(k) => k.name().into(),
            Value::Text(t) => (*t).to_string(),
        }
    }

    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Nil => Value::Nil,
            Value::Int(i) => Value::Int(i),
            Value::Float(f) => Value::Float(f),
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
            Value::Bool(b) => Value::Bool(b),
            Value::Duration(d) => Value::Duration(d),
            Value::Status(s) => Value::Status(s),
            Value::Kind(k) => Value::Kind(k),
            Value::Text(t) => Value::Str(Cow::Owned(t.to_string())),
        }
    }
}

/// Errors while evaluating (regexes are checked at validation, so these
/// are limits and unsupported shapes).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EvalError {
    #[error(
        "spanset operators are not supported for multiple spansets per trace. consider using coalesce()"
    )]
    MultipleSpansets,
    #[error("invalid regular expression {0:?}")]
    Regex(String),
}

/// Compiled regexes by pattern, so each is built once per query.
#[derive(Default)]
pub struct Regexes {
    cache: HashMap<String, Regex>,
}

impl Regexes {
    fn get(&mut self, pattern: &str) -> Result<&Regex, EvalError> {
        if !self.cache.contains_key(pattern) {
            let re = Regex::new(&format!("^(?s:{pattern})$"))
                .map_err(|_| EvalError::Regex(pattern.to_string()))?;
            self.cache.insert(pattern.to_string(), re);
        }
        Ok(&self.cache[pattern])
    }
}

/// A set of spans of one trace, with the attributes stages attached.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Spanset {
    /// Indexes into `Trace::spans`, ascending.
    pub spans: Vec<usize>,
    /// `by(...)` values and scalar results, as (name, value).
    pub attributes: Vec<(String, Value<'static>)>,
}

/// Where a field expression is evaluated: a span, maybe one of its events
/// and links.
#[derive(Clone, Copy)]
struct At<'t> {
    trace: &'t Trace,
    span: usize,
    event: Option<usize>,
    link: Option<usize>,
}

fn uses_scope(e: &FieldExpr, events: bool) -> bool {
    match e {
        FieldExpr::Static(_) => false,
        FieldExpr::Attribute(a) => attribute_uses_scope(a, events),
        FieldExpr::Binary(_, l, r) => uses_scope(l, events) || uses_scope(r, events),
        FieldExpr::Unary(_, e) => uses_scope(e, events),
    }
}

/// Whether `a` is an event (`events`) or link field.
pub(super) fn attribute_uses_scope(a: &Attribute, events: bool) -> bool {
    match (a, events) {
        (Attribute::Named { scope, .. }, true) => *scope == Scope::Event,
        (Attribute::Named { scope, .. }, false) => *scope == Scope::Link,
        (Attribute::Intrinsic(i), true) => {
            matches!(i, Intrinsic::EventName | Intrinsic::EventTimeSinceStart)
        }
        (Attribute::Intrinsic(i), false) => {
            matches!(i, Intrinsic::LinkTraceId | Intrinsic::LinkSpanId)
        }
    }
}

/// The value of attribute `a` at a span.
pub fn attribute_value<'t>(trace: &'t Trace, span: usize, a: &Attribute) -> Value<'t> {
    attribute_at(
        At {
            trace,
            span,
            event: None,
            link: None,
        },
        a,
    )
}

fn attribute_at<'t>(at: At<'t>, a: &Attribute) -> Value<'t> {
    let s = &at.trace.spans[at.span];
    let text = |v: Option<&'t str>| v.map_or(Value::Nil, Value::Text);
    match a {
        Attribute::Named {
            scope,
            parent: false,
            name,
        } => match scope {
            Scope::None => text(lookup(&s.attributes, name).or_else(|| s.resource_attribute(name))),
            Scope::Span => text(lookup(&s.attributes, name)),
            Scope::Resource => text(s.resource_attribute(name)),
            Scope::Event => text(at.event.and_then(|e| lookup(&s.events[e].attributes, name))),
            Scope::Link => text(at.link.and_then(|l| lookup(&s.links[l].attributes, name))),
            Scope::Instrumentation => Value::Nil,
        },
        Attribute::Named { parent: true, .. } => Value::Nil,
        Attribute::Intrinsic(i) => match i {
            Intrinsic::Duration => Value::Duration(s.end_ns - s.start_ns),
            Intrinsic::Name => Value::Str(Cow::Borrowed(&s.name)),
            Intrinsic::Status => Value::Status(Status::from_stored(&s.status_code)),
            Intrinsic::StatusMessage => {
                Value::Str(Cow::Borrowed(s.status_message.as_deref().unwrap_or("")))
            }
            Intrinsic::Kind => Value::Kind(Kind::from_stored(&s.kind)),
            Intrinsic::ChildCount => Value::Int(at.trace.child_count[at.span] as i64),
            Intrinsic::Parent => Value::Nil,
            Intrinsic::TraceRootName => at
                .trace
                .root_name()
                .map_or(Value::Nil, |n| Value::Str(Cow::Borrowed(n))),
            Intrinsic::TraceRootService => at
                .trace
                .root_service()
                .map_or(Value::Nil, |n| Value::Str(Cow::Borrowed(n))),
            Intrinsic::TraceDuration => Value::Duration(at.trace.duration_ns()),
            Intrinsic::TraceId => Value::Str(Cow::Borrowed(&at.trace.trace_id)),
            Intrinsic::SpanId => Value::Str(Cow::Borrowed(&s.span_id)),
            Intrinsic::ParentId => s
                .parent_span_id
                .as_deref()
                .map_or(Value::Nil, |p| Value::Str(Cow::Borrowed(p))),
            Intrinsic::NestedSetLeft => Value::Int(at.trace.nested_set[at.span].0),
            Intrinsic::NestedSetRight => Value::Int(at.trace.nested_set[at.span].1),
            Intrinsic::NestedSetParent => Value::Int(at.trace.nested_set[at.span].2),
            Intrinsic::EventName => at
                .event
                .map_or(Value::Nil, |e| Value::Str(Cow::Borrowed(&s.events[e].name))),
            Intrinsic::EventTimeSinceStart => at.event.map_or(Value::Nil, |e| {
                Value::Duration(s.events[e].time_ns - s.start_ns)
            }),
            Intrinsic::LinkTraceId => at.link.map_or(Value::Nil, |l| {
                Value::Str(Cow::Borrowed(&s.links[l].trace_id))
            }),
            Intrinsic::LinkSpanId => at.link.map_or(Value::Nil, |l| {
                Value::Str(Cow::Borrowed(&s.links[l].span_id))
            }),
            Intrinsic::InstrumentationName => s
                .scope_name
                .as_deref()
                .map_or(Value::Nil, |n| Value::Str(Cow::Borrowed(n))),
            Intrinsic::InstrumentationVersion => s
                .scope_version
                .as_deref()
                .map_or(Value::Nil, |n| Value::Str(Cow::Borrowed(n))),
        },
    }
}

/// Orders two values when they have a common type.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    use Value::*;
    match (a, b) {
        (Nil, _) | (_, Nil) => None,
        (Status(x), Status(y)) => (x == y).then_some(Ordering::Equal).or(Some(Ordering::Less)),
        (Kind(x), Kind(y)) => (x == y).then_some(Ordering::Equal).or(Some(Ordering::Less)),
        (Status(x), Text(t)) | (Text(t), Status(x)) => Some(if x.name() == *t {
            Ordering::Equal
        } else {
            Ordering::Less
        }),
        (Kind(x), Text(t)) | (Text(t), Kind(x)) => Some(if x.name() == *t {
            Ordering::Equal
        } else {
            Ordering::Less
        }),
        (Bool(x), Bool(y)) => Some(x.cmp(y)),
        (Bool(x), Text(t)) => match *t {
            "true" => Some(x.cmp(&true)),
            "false" => Some(x.cmp(&false)),
            _ => None,
        },
        (Text(t), Bool(y)) => match *t {
            "true" => Some(true.cmp(y)),
            "false" => Some(false.cmp(y)),
            _ => None,
        },
        (Str(x), Str(y)) => Some(x.as_ref().cmp(y.as_ref())),
        (Str(x), Text(y)) => Some(x.as_ref().cmp(y)),
        (Text(x), Str(y)) => Some((*x).cmp(y.as_ref())),
        (Text(x), Text(y)) => match (a.number(), b.number()) {
            (Some(p), Some(q)) => p.partial_cmp(&q),
            _ => Some(x.cmp(y)),
        },
        (Duration(x), Text(t)) => parse_text_duration(t).map(|d| x.cmp(&d)),
        (Text(t), Duration(y)) => parse_text_duration(t).map(|d| d.cmp(y)),
        _ => match (a.number(), b.number()) {
            (Some(p), Some(q)) => p.partial_cmp(&q),
            _ => None,
        },
    }
}

/// A text attribute compared with a duration: a Go duration string or a
/// number of nanoseconds.
fn parse_text_duration(t: &str) -> Option<i64> {
    super::lexer::parse_duration(t).or_else(|| t.trim().parse::<i64>().ok())
}

fn arithmetic<'a>(op: BinaryOp, a: &Value, b: &Value) -> Value<'a> {
    if let (Value::Int(x), Value::Int(y)) = (a, b) {
        let r = match op {
            BinaryOp::Add => x.checked_add(*y),
            BinaryOp::Sub => x.checked_sub(*y),
            BinaryOp::Mul => x.checked_mul(*y),
            BinaryOp::Div => x.checked_div(*y),
            BinaryOp::Mod => x.checked_rem(*y),
            BinaryOp::Pow => u32::try_from(*y).ok().and_then(|e| x.checked_pow(e)),
            _ => None,
        };
        return r.map_or(Value::Nil, Value::Int);
    }
    let (Some(x), Some(y)) = (a.number(), b.number()) else {
        return Value::Nil;
    };
    let r = match op {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        BinaryOp::Div => x / y,
        BinaryOp::Mod => x % y,
        BinaryOp::Pow => x.powf(y),
        _ => return Value::Nil,
    };
    let duration = matches!(a, Value::Duration(_)) || matches!(b, Value::Duration(_));
    if duration && r.is_finite() {
        Value::Duration(r as i64)
    } else {
        Value::Float(r)
    }
}

fn field<'t>(at: At<'t>, e: &'t FieldExpr, re: &mut Regexes) -> Result<Value<'t>, EvalError> {
    Ok(match e {
        FieldExpr::Static(s) => Value::from_static(s),
        FieldExpr::Attribute(a) => attribute_at(at, a),
        FieldExpr::Unary(op, inner) => {
            let v = field(at, inner, re)?;
            match op {
                UnaryOp::Neg => match v {
                    Value::Int(i) => Value::Int(-i),
                    Value::Duration(d) => Value::Duration(-d),
                    other => other.number().map_or(Value::Nil, |n| Value::Float(-n)),
                },
                UnaryOp::Not => match v {
                    Value::Bool(b) => Value::Bool(!b),
                    Value::Text("true") => Value::Bool(false),
                    Value::Text("false") => Value::Bool(true),
                    _ => Value::Bool(false),
                },
                UnaryOp::Exists => Value::Bool(v != Value::Nil),
                UnaryOp::NotExists => Value::Bool(v == Value::Nil),
            }
        }
        FieldExpr::Binary(op, l, r) => {
            if op.is_logical() {
                let lv = field(at, l, re)?.is_true();
                // Short-circuit like Tempo: `false && x` and `true || x`.
                return Ok(Value::Bool(match op {
                    BinaryOp::And => lv && field(at, r, re)?.is_true(),
                    _ => lv || field(at, r, re)?.is_true(),
                }));
            }
            let lv = field(at, l, re)?;
            let rv = field(at, r, re)?;
            if op.is_arithmetic() {
                return Ok(arithmetic(*op, &lv, &rv));
            }
            match op {
                BinaryOp::Regex | BinaryOp::NotRegex => {
                    let (Some(text), Some(pattern)) = (lv.text(), rv.text()) else {
                        return Ok(Value::Bool(false));
                    };
                    let m = re.get(pattern)?.is_match(text);
                    Value::Bool(if *op == BinaryOp::Regex { m } else { !m })
                }
                _ => {
                    let Some(ord) = compare(&lv, &rv) else {
                        return Ok(Value::Bool(false));
                    };
                    Value::Bool(match op {
                        BinaryOp::Eq => ord == Ordering::Equal,
                        BinaryOp::Neq => ord != Ordering::Equal,
                        BinaryOp::Lt => ord == Ordering::Less,
                        BinaryOp::Lte => ord != Ordering::Greater,
                        BinaryOp::Gt => ord == Ordering::Greater,
                        _ => ord != Ordering::Less,
                    })
                }
            }
        }
    })
}

/// The value of `e` at a span (event/link scopes see no event or link).
pub fn span_value<'t>(
    trace: &'t Trace,
    span: usize,
    e: &'t FieldExpr,
    re: &mut Regexes,
) -> Result<Value<'t>, EvalError> {
    field(
        At {
            trace,
            span,
            event: None,
            link: None,
        },
        e,
        re,
    )
}

/// Whether the filter holds for the span (for some event/link if it
/// names them).
pub fn span_matches(
    trace: &Trace,
    span: usize,
    e: &FieldExpr,
    re: &mut Regexes,
) -> Result<bool, EvalError> {
    let s = &trace.spans[span];
    let events: Vec<Option<usize>> = if uses_scope(e, true) && !s.events.is_empty() {
        (0..s.events.len()).map(Some).collect()
    } else {
        vec![None]
    };
    let links: Vec<Option<usize>> = if uses_scope(e, false) && !s.links.is_empty() {
        (0..s.links.len()).map(Some).collect()
    } else {
        vec![None]
    };
    for event in &events {
        for link in &links {
            let at = At {
                trace,
                span,
                event: *event,
                link: *link,
            };
            if field(at, e, re)?.is_true() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Evaluates a spanset expression over `input` spansets of `trace`.
pub fn spansets(
    trace: &Trace,
    e: &SpansetExpr,
    input: &[Spanset],
    re: &mut Regexes,
) -> Result<Vec<Spanset>, EvalError> {
    match e {
        SpansetExpr::Filter(f) => {
            let mut out = Vec::new();
            for ss in input {
                let mut spans = Vec::new();
                for &i in &ss.spans {
                    if span_matches(trace, i, f, re)? {
                        spans.push(i);
                    }
                }
                if !spans.is_empty() {
                    out.push(Spanset {
                        spans,
                        attributes: ss.attributes.clone(),
                    });
                }
            }
            Ok(out)
        }
        SpansetExpr::Op(op, l, r) => {
            let mut out = Vec::new();
            for ss in input {
                let one = std::slice::from_ref(ss);
                let lhs = spansets(trace, l, one, re)?;
                let rhs = spansets(trace, r, one, re)?;
                let matched = match op {
                    SpansetOp::And => {
                        if lhs.is_empty() || rhs.is_empty() {
                            Vec::new()
                        } else {
                            union(&lhs, &rhs)
                        }
                    }
                    SpansetOp::Union => union(&lhs, &rhs),
                    structural => {
                        if lhs.len() > 1 || rhs.len() > 1 {
                            return Err(EvalError::MultipleSpansets);
                        }
                        let Some(r) = rhs.first() else { continue };
                        let l = lhs.first().map_or(&[][..], |s| &s.spans[..]);
                        relate(trace, *structural, l, &r.spans)
                    }
                };
                if !matched.is_empty() {
                    out.push(Spanset {
                        spans: matched,
                        attributes: ss.attributes.clone(),
                    });
                }
            }
            Ok(out)
        }
        SpansetExpr::Pipeline(stages) => {
            let mut current = input.to_vec();
            for stage in stages {
                current = run_stage(trace, stage, &current, re)?;
                if current.is_empty() {
                    break;
                }
            }
            Ok(current)
        }
    }
}

fn union(a: &[Spanset], b: &[Spanset]) -> Vec<usize> {
    let mut spans: Vec<usize> = a
        .iter()
        .chain(b.iter())
        .flat_map(|s| s.spans.iter().copied())
        .collect();
    spans.sort_unstable();
    spans.dedup();
    spans
}

/// The spans a structural operator keeps from `lhs` and `rhs`.
fn relate(trace: &Trace, op: SpansetOp, lhs: &[usize], rhs: &[usize]) -> Vec<usize> {
    use SpansetOp::*;
    if lhs.is_empty() && rhs.is_empty() {
        return Vec::new();
    }
    // related(l, r): the relation the operator asks of a left/right pair.
    let related = |l: usize, r: usize| -> bool {
        match op {
            Child | NotChild | UnionChild => trace.parent[r] == Some(l),
            Parent | NotParent | UnionParent => trace.parent[l] == Some(r),
            Descendant | NotDescendant | UnionDescendant => trace.is_ancestor(l, r),
            Ancestor | NotAncestor | UnionAncestor => trace.is_ancestor(r, l),
            Sibling | NotSibling | UnionSibling => {
                l != r && trace.parent[l].is_some() && trace.parent[l] == trace.parent[r]
            }
            And | Union => false,
        }
    };
    let negated = matches!(
        op,
        NotChild | NotParent | NotDescendant | NotAncestor | NotSibling
    );
    let is_union = matches!(
        op,
        UnionChild | UnionParent | UnionDescendant | UnionAncestor | UnionSibling
    );
    let mut out = Vec::new();
    if is_union {
        for &r in rhs {
            let mut any = false;
            for &l in lhs {
                if related(l, r) {
                    any = true;
                    out.push(l);
                }
            }
            if any {
                out.push(r);
            }
        }
        out.sort_unstable();
        out.dedup();
        return out;
    }
    for &r in rhs {
        let any = lhs.iter().any(|&l| related(l, r));
        if any != negated {
            out.push(r);
        }
    }
    out
}

fn run_stage(
    trace: &Trace,
    stage: &Stage,
    input: &[Spanset],
    re: &mut Regexes,
) -> Result<Vec<Spanset>, EvalError> {
    match stage {
        Stage::Spanset(e) => spansets(trace, e, input, re),
        Stage::ScalarFilter(sf) => {
            let mut out = Vec::new();
            for ss in input {
                let l = scalar(trace, &sf.lhs, ss, re)?;
                let r = scalar(trace, &sf.rhs, ss, re)?;
                let keep = compare(&l, &r).is_some_and(|ord| match sf.op {
                    BinaryOp::Eq => ord == Ordering::Equal,
                    BinaryOp::Neq => ord != Ordering::Equal,
                    BinaryOp::Lt => ord == Ordering::Less,
                    BinaryOp::Lte => ord != Ordering::Greater,
                    BinaryOp::Gt => ord == Ordering::Greater,
                    _ => ord != Ordering::Less,
                });
                if keep {
                    let mut kept = ss.clone();
                    let aggregate = if matches!(sf.lhs, ScalarExpr::Static(_)) {
                        (&sf.rhs, r)
                    } else {
                        (&sf.lhs, l)
                    };
                    kept.attributes
                        .push((aggregate.0.to_string(), aggregate.1.into_owned()));
                    out.push(kept);
                }
            }
            Ok(out)
        }
        Stage::By(e) => {
            let name = format!("by({e})");
            let mut out = Vec::new();
            for ss in input {
                let mut groups: Vec<(String, Spanset)> = Vec::new();
                let mut index: HashMap<String, usize> = HashMap::new();
                for &i in &ss.spans {
                    let v = span_value(trace, i, e, re)?;
                    let key = format!("{v:?}");
                    let g = *index.entry(key.clone()).or_insert_with(|| {
                        let mut attributes = ss.attributes.clone();
                        attributes.push((name.clone(), v.clone().into_owned()));
                        groups.push((
                            key,
                            Spanset {
                                spans: Vec::new(),
                                attributes,
                            },
                        ));
                        groups.len() - 1
                    });
                    groups[g].1.spans.push(i);
                }
                out.extend(groups.into_iter().map(|(_, g)| g));
            }
            Ok(out)
        }
        Stage::Coalesce => {
            let mut spans: Vec<usize> =
                input.iter().flat_map(|s| s.spans.iter().copied()).collect();
            spans.sort_unstable();
            spans.dedup();
            Ok(vec![Spanset {
                spans,
                attributes: Vec::new(),
            }])
        }
        // Selected attributes are attached when results are rendered.
        Stage::Select(_) => Ok(input.to_vec()),
    }
}

/// A scalar expression over one spanset.
fn scalar<'t>(
    trace: &'t Trace,
    e: &'t ScalarExpr,
    ss: &Spanset,
    re: &mut Regexes,
) -> Result<Value<'t>, EvalError> {
    Ok(match e {
        ScalarExpr::Static(s) => Value::from_static(s),
        ScalarExpr::Binary(op, l, r) => {
            let lv = scalar(trace, l, ss, re)?;
            let rv = scalar(trace, r, ss, re)?;
            arithmetic(*op, &lv, &rv)
        }
        ScalarExpr::Aggregate(AggregateOp::Count, _) => Value::Int(ss.spans.len() as i64),
        ScalarExpr::Aggregate(op, Some(arg)) => {
            let mut values = Vec::new();
            let mut all_durations = true;
            for &i in &ss.spans {
                let v = span_value(trace, i, arg, re)?;
                all_durations &= matches!(v, Value::Duration(_));
                if let Some(n) = v.number() {
                    values.push(n);
                }
            }
            if values.is_empty() {
                return Ok(Value::Nil);
            }
            let result = match op {
                AggregateOp::Sum => values.iter().sum(),
                AggregateOp::Avg => values.iter().sum::<f64>() / values.len() as f64,
                AggregateOp::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
                AggregateOp::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                AggregateOp::Count => values.len() as f64,
            };
            if all_durations {
                Value::Duration(result.round() as i64)
            } else {
                Value::Float(result)
            }
        }
        ScalarExpr::Aggregate(_, None) => Value::Nil,
    })
}

/// The spansets a spans query yields for one trace.
pub fn evaluate(
    trace: &Trace,
    e: &SpansetExpr,
    re: &mut Regexes,
) -> Result<Vec<Spanset>, EvalError> {
    let all = Spanset {
        spans: (0..trace.spans.len()).collect(),
        attributes: Vec::new(),
    };
    spansets(trace, e, &[all], re)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::traceql::parse;
    use crate::query::traceql::trace::{Event, Span};

    /// root(frontend, server) ─ a(frontend, client) ─ b(cart, server, error) ─ c(db, client)
    ///                        └ d(frontend, internal)
    fn trace() -> Trace {
        let span = |id: &str, parent: Option<&str>, service: &str, kind: &str, start: i64| Span {
            span_id: id.into(),
            parent_span_id: parent.map(Into::into),
            name: format!("op-{id}"),
            kind: kind.into(),
            service: service.into(),
            start_ns: start,
            end_ns: start + 1_000_000 * (10 - start),
            status_code: "unset".into(),
            resource_attributes: vec![("service.name".into(), service.into())],
            ..Default::default()
        };
        let mut spans = vec![
            span("root", None, "frontend", "server", 1),
            span("a", Some("root"), "frontend", "client", 2),
            span("b", Some("a"), "cart", "server", 3),
            span("c", Some("b"), "db", "client", 4),
            span("d", Some("root"), "frontend", "internal", 5),
        ];
        spans[2].status_code = "error".into();
        spans[2].attributes = vec![
            ("http.status_code".into(), "503".into()),
            ("http.route".into(), "/cart".into()),
        ];
        spans[3].attributes = vec![("db.system".into(), "postgresql".into())];
        spans[4].events = vec![Event {
            time_ns: 7,
            name: "exception".into(),
            attributes: vec![("exception.type".into(), "Timeout".into())],
        }];
        Trace::new("t1".into(), spans)
    }

    /// The span ids of each spanset the query yields.
    fn run(query: &str) -> Vec<Vec<String>> {
        let t = trace();
        let root = parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
        let crate::query::traceql::ast::Query::Spans(expr) = &root.query else {
            panic!("not a spans query")
        };
        evaluate(&t, expr, &mut Regexes::default())
            .unwrap()
            .into_iter()
            .map(|ss| {
                let mut ids: Vec<String> = ss
                    .spans
                    .iter()
                    .map(|&i| t.spans[i].span_id.clone())
                    .collect();
                ids.sort();
                ids
            })
            .collect()
    }

    fn one(query: &str) -> Vec<String> {
        let mut sets = run(query);
        assert!(sets.len() <= 1, "{query}: {sets:?}");
        sets.pop().unwrap_or_default()
    }

    #[test]
    fn filters_on_intrinsics_and_attributes() {
        assert_eq!(one("{ status = error }"), ["b"]);
        assert_eq!(one("{ kind = client }"), ["a", "c"]);
        assert_eq!(one("{ span.http.status_code >= 500 }"), ["b"]);
        assert_eq!(one("{ span.http.status_code = 503 }"), ["b"]);
        assert_eq!(one("{ span.http.status_code = \"503\" }"), ["b"]);
        assert_eq!(one("{ span.http.status_code > 600 }"), Vec::<String>::new());
        assert_eq!(one("{ .db.system =~ \"post.*\" }"), ["c"]);
        assert_eq!(one("{ .db.system != nil }"), ["c"]);
        assert_eq!(
            one("{ resource.service.name = \"frontend\" }"),
            ["a", "d", "root"]
        );
        assert_eq!(
            one("{ rootServiceName = \"frontend\" && kind = server }"),
            ["b", "root"]
        );
        assert_eq!(one("{ duration >= 7ms }"), ["a", "b", "root"]);
        assert_eq!(one("{ span:childCount = 2 }"), ["root"]);
        assert_eq!(
            one("{ event:name = \"exception\" && event.exception.type = \"Timeout\" }"),
            ["d"]
        );
        assert_eq!(
            one("{ event.exception.type = \"Other\" }"),
            Vec::<String>::new()
        );
        assert_eq!(one("{ traceDuration > 1ms }").len(), 5);
        assert_eq!(
            one("{ name = \"op-a\" || span.http.route = \"/cart\" }"),
            ["a", "b"]
        );
    }

    #[test]
    fn spanset_operators() {
        assert_eq!(one("{ status = error } && { kind = internal }"), ["b", "d"]);
        assert!(one("{ status = error } && { kind = producer }").is_empty());
        assert_eq!(one("{ status = error } || { kind = producer }"), ["b"]);
    }

    #[test]
    fn structural_operators_keep_the_right_side() {
        assert_eq!(one("{ kind = client } > { kind = server }"), ["b"]);
        assert_eq!(
            one("{ name = \"op-root\" } >> { kind = client }"),
            ["a", "c"]
        );
        assert_eq!(one("{ name = \"op-c\" } < { }"), ["b"]);
        assert_eq!(one("{ name = \"op-c\" } << { }"), ["a", "b", "root"]);
        assert_eq!(one("{ name = \"op-a\" } ~ { }"), ["d"]);
        assert_eq!(one("{ kind = client } !> { kind = server }"), ["root"]);
        assert_eq!(one("{ name = \"op-root\" } !>> { }"), ["root"]);
        assert_eq!(one("{ name = \"op-a\" } !~ { }"), ["a", "b", "c", "root"]);
        assert_eq!(one("{ kind = client } &> { kind = server }"), ["a", "b"]);
        assert_eq!(
            one("{ name = \"op-root\" } &>> { kind = client }"),
            ["a", "c", "root"]
        );
        assert_eq!(one("{ name = \"op-c\" } &< { }"), ["b", "c"]);
        assert_eq!(one("{ name = \"op-a\" } &~ { }"), ["a", "d"]);
        assert_eq!(
            one("{ kind = server } > { kind = client } > { kind = server }"),
            ["b"]
        );
    }

    #[test]
    fn pipelines() {
        assert_eq!(one("{ kind = client } | count() = 2"), ["a", "c"]);
        assert!(one("{ kind = client } | count() > 2").is_empty());
        assert_eq!(
            one("{ } | max(duration) >= 9ms"),
            ["a", "b", "c", "d", "root"]
        );
        assert_eq!(
            run("{ } | by(resource.service.name)"),
            vec![vec!["a", "d", "root"], vec!["b"], vec!["c"]]
        );
        assert_eq!(
            run("{ } | by(resource.service.name) | count() > 1"),
            vec![vec!["a", "d", "root"]]
        );
        assert_eq!(
            run("{ } | by(resource.service.name) | coalesce()"),
            vec![vec!["a", "b", "c", "d", "root"]]
        );
        assert_eq!(one("{ } | { kind = server } | { status = error }"), ["b"]);
        assert_eq!(
            one("({ kind = client } | count() > 1) && { status = error }"),
            ["a", "b", "c"]
        );
        let t = trace();
        let root = parse("{ } | by(kind) | count() > 1").unwrap();
        let crate::query::traceql::ast::Query::Spans(e) = &root.query else {
            unreachable!()
        };
        let sets = evaluate(&t, e, &mut Regexes::default()).unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0].attributes[0].0, "by(kind)");
        assert_eq!(sets[0].attributes[1], ("count()".into(), Value::Int(2)));
    }

    #[test]
    fn structural_operators_need_one_spanset_per_side() {
        let t = trace();
        let root = parse("({ } | by(kind)) > { }").unwrap();
        let crate::query::traceql::ast::Query::Spans(e) = &root.query else {
            unreachable!()
        };
        assert_eq!(
            evaluate(&t, e, &mut Regexes::default()).unwrap_err(),
            EvalError::MultipleSpansets
        );
    }
}
