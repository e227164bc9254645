//! TraceQL tokens → the syntax tree of [`super::ast`], by precedence
//! climbing in Tempo's operator order.
//!
//! One expression parser covers the query level: `|` binds loosest, then
//! the spanset operators `&&`/`||`, then comparisons and the structural
//! operators (`>`, `>>`, `~`, `!>`, `&>>`, …), then `+ -`, `* / %`, `^`.
//! Each operand is a typed [`Node`] (spansets, a metrics query, a literal,
//! an aggregate, a pipeline stage …), and each operator accepts only the
//! combinations Tempo's grammar does, so `{ } | count()` or `2 * 3` fail
//! with a message at the operator. Inside `{ }` a second climber parses
//! field expressions. Type checks that need the whole tree live in
//! [`super::validate`].

use super::ast::*;
use super::lexer::{ParseError, Token, TokenKind, lex};

/// Parses and validates a query.
pub fn parse(query: &str) -> Result<Root, ParseError> {
    let root = parse_syntax(query)?;
    super::validate::validate(&root).map_err(|message| ParseError::at(query, 0, message))?;
    Ok(root)
}

/// Parses without the type checks of [`super::validate`].
pub fn parse_syntax(query: &str) -> Result<Root, ParseError> {
    let tokens = lex(query)?;
    let mut parser = Parser {
        query,
        tokens,
        i: 0,
        depth: 0,
    };
    let start = parser.peek().pos;
    let node = parser.binary(0)?;
    let query_node = match node {
        Node::Spans(s) => Query::Spans(s),
        Node::Metrics(m) => Query::Metrics(m),
        Node::Stage(stage) => Query::Spans(SpansetExpr::Pipeline(vec![stage])),
        Node::ScalarFilter(f) => Query::Spans(SpansetExpr::Pipeline(vec![Stage::ScalarFilter(f)])),
        other => {
            return Err(parser.err(
                start,
                format!(
                    "syntax error: {} is not a query: it needs a spanset filter {{ … }}",
                    other.describe()
                ),
            ));
        }
    };
    let hints = parser.hints()?;
    let t = parser.peek();
    if t.kind != TokenKind::Eof {
        return Err(parser.unexpected(""));
    }
    Ok(Root {
        query: query_node,
        hints,
    })
}

/// The deepest nesting of parentheses, braces and unary operators accepted.
const MAX_DEPTH: usize = 200;

/// What an operand of the query-level climber is.
#[derive(Debug, Clone)]
enum Node {
    Spans(SpansetExpr),
    Metrics(MetricsExpr),
    /// A literal (numbers fold: `2 * 3s`).
    Static(Static),
    /// An expression holding an aggregate (`count()`, `avg(duration) * 2`).
    Scalar(ScalarExpr),
    ScalarFilter(ScalarFilter),
    /// `by()`, `coalesce()`, `select()`.
    Stage(Stage),
    /// `rate() by (…)` with any comparisons already applied to it.
    MetricsAggregate(MetricsAggregate, Vec<SecondStage>),
    /// `topk(n)`, `bottomk(n)`.
    SecondStage(SecondStage),
}

impl Node {
    fn describe(&self) -> &'static str {
        match self {
            Node::Spans(_) => "a spanset expression",
            Node::Metrics(_) => "a metrics query",
            Node::Static(_) => "a literal",
            Node::Scalar(_) => "an aggregate",
            Node::ScalarFilter(_) => "a scalar filter",
            Node::Stage(_) => "a pipeline stage",
            Node::MetricsAggregate(..) => "a metrics function",
            Node::SecondStage(_) => "a second-stage function",
        }
    }
}

struct Parser<'a> {
    query: &'a str,
    tokens: Vec<Token>,
    i: usize,
    depth: usize,
}

/// Query-level binary operators: (symbol, precedence, right-associative).
fn query_operator(t: &Token) -> Option<(&'static str, u8)> {
    let TokenKind::Op(op) = t.kind else {
        return None;
    };
    let prec = match op {
        "|" => 0,
        "&&" | "||" => 1,
        "=" | "!=" | "<" | "<=" | ">" | ">=" | "=~" | "!~" | ">>" | "<<" | "~" | "!>" | "!<"
        | "!>>" | "!<<" | "&>" | "&<" | "&>>" | "&<<" | "&~" => 2,
        "+" | "-" => 3,
        "*" | "/" | "%" => 5,
        "^" => 6,
        _ => return None,
    };
    Some((op, prec))
}

fn comparison(op: &str) -> Option<BinaryOp> {
    Some(match op {
        "=" => BinaryOp::Eq,
        "!=" => BinaryOp::Neq,
        "<" => BinaryOp::Lt,
        "<=" => BinaryOp::Lte,
        ">" => BinaryOp::Gt,
        ">=" => BinaryOp::Gte,
        _ => return None,
    })
}

fn arithmetic(op: &str) -> Option<BinaryOp> {
    Some(match op {
        "+" => BinaryOp::Add,
        "-" => BinaryOp::Sub,
        "*" => BinaryOp::Mul,
        "/" => BinaryOp::Div,
        "%" => BinaryOp::Mod,
        "^" => BinaryOp::Pow,
        _ => return None,
    })
}

fn field_operator(op: &str) -> Option<BinaryOp> {
    Some(match op {
        "&&" => BinaryOp::And,
        "||" => BinaryOp::Or,
        "=~" => BinaryOp::Regex,
        "!~" => BinaryOp::NotRegex,
        other => return comparison(other).or_else(|| arithmetic(other)),
    })
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.i.min(self.tokens.len() - 1)]
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        &self.tokens[(self.i + ahead).min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.i < self.tokens.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn err(&self, pos: usize, message: impl Into<String>) -> ParseError {
        ParseError::at(self.query, pos, message)
    }

    fn unexpected(&self, expecting: &str) -> ParseError {
        let t = self.peek();
        let mut message = format!("syntax error: unexpected {}", t.describe());
        if !expecting.is_empty() {
            message.push_str(", expecting ");
            message.push_str(expecting);
        }
        self.err(t.pos, message)
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek().kind, TokenKind::Op(o) if o == op)
    }

    fn expect_op(&mut self, op: &'static str) -> Result<Token, ParseError> {
        if self.peek().kind == TokenKind::Op(op) {
            Ok(self.next())
        } else {
            Err(self.unexpected(op))
        }
    }

    fn is_ident(&self, word: &str) -> bool {
        matches!(&self.peek().kind, TokenKind::Ident(w) if w == word)
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(
                self.peek().pos,
                format!("query nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    // ---- query level -------------------------------------------------

    fn binary(&mut self, min_prec: u8) -> Result<Node, ParseError> {
        self.enter()?;
        let mut lhs = self.primary()?;
        while let Some((op, prec)) = query_operator(self.peek()) {
            if prec < min_prec {
                break;
            }
            let op_token = self.next();
            let next_min = if op == "^" { prec } else { prec + 1 };
            let rhs = self.binary(next_min)?;
            lhs = self.combine(op, op_token.pos, lhs, rhs)?;
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn combine(
        &self,
        op: &'static str,
        pos: usize,
        lhs: Node,
        rhs: Node,
    ) -> Result<Node, ParseError> {
        let fail = |lhs: &Node, rhs: &Node| {
            self.err(
                pos,
                format!(
                    "syntax error: operator {op} cannot combine {} with {}",
                    lhs.describe(),
                    rhs.describe()
                ),
            )
        };
        if op == "|" {
            if matches!(lhs, Node::Stage(Stage::Coalesce)) {
                return Err(self.err(pos, "syntax error: a pipeline cannot start with coalesce()"));
            }
            return match (lhs, rhs) {
                (Node::Spans(s), Node::Spans(stage)) => Ok(pipe(s, Stage::Spanset(stage))),
                (Node::Spans(s), Node::ScalarFilter(f)) => Ok(pipe(s, Stage::ScalarFilter(f))),
                (Node::Spans(s), Node::Stage(stage)) => Ok(pipe(s, stage)),
                (Node::Stage(first), Node::Spans(stage)) => Ok(pipe(
                    SpansetExpr::Pipeline(vec![first]),
                    Stage::Spanset(stage),
                )),
                (Node::Stage(first), Node::Stage(stage)) => {
                    Ok(pipe(SpansetExpr::Pipeline(vec![first]), stage))
                }
                (Node::Stage(first), Node::ScalarFilter(f)) => Ok(pipe(
                    SpansetExpr::Pipeline(vec![first]),
                    Stage::ScalarFilter(f),
                )),
                (Node::ScalarFilter(first), Node::Spans(stage)) => Ok(pipe(
                    SpansetExpr::Pipeline(vec![Stage::ScalarFilter(first)]),
                    Stage::Spanset(stage),
                )),
                (Node::Spans(s), Node::MetricsAggregate(aggregate, second)) => {
                    Ok(Node::Metrics(MetricsExpr::Pipeline {
                        spans: s,
                        aggregate,
                        second,
                    }))
                }
                (Node::Metrics(m), Node::SecondStage(stage)) => {
                    Ok(Node::Metrics(add_second(m, stage)))
                }
                (Node::Spans(_), rhs @ Node::Scalar(_)) => Err(self.err(
                    pos,
                    format!(
                        "syntax error: {} must be compared in a pipeline (e.g. count() > 1)",
                        rhs.describe()
                    ),
                )),
                (lhs, Node::SecondStage(_)) => Err(self.err(
                    pos,
                    format!(
                        "syntax error: topk/bottomk need a metrics query before them, not {}",
                        lhs.describe()
                    ),
                )),
                (lhs, rhs) => Err(fail(&lhs, &rhs)),
            };
        }
        if let Some(spanset_op) = SpansetOp::from_symbol(op)
            && let (Node::Spans(l), Node::Spans(r)) = (&lhs, &rhs)
        {
            return Ok(Node::Spans(SpansetExpr::Op(
                spanset_op,
                Box::new(l.clone()),
                Box::new(r.clone()),
            )));
        }
        if let Some(cmp) = comparison(op) {
            return match (lhs, rhs) {
                (Node::Scalar(l), Node::Scalar(r)) => Ok(Node::ScalarFilter(ScalarFilter {
                    op: cmp,
                    lhs: l,
                    rhs: r,
                })),
                (Node::Scalar(l), Node::Static(r)) => Ok(Node::ScalarFilter(ScalarFilter {
                    op: cmp,
                    lhs: l,
                    rhs: ScalarExpr::Static(r),
                })),
                (Node::Static(l), Node::Scalar(r)) => Ok(Node::ScalarFilter(ScalarFilter {
                    op: cmp,
                    lhs: ScalarExpr::Static(l),
                    rhs: r,
                })),
                (Node::MetricsAggregate(a, mut second), Node::Static(v)) => {
                    second.push(SecondStage::Filter(cmp, self.metrics_scalar(pos, &v)?));
                    Ok(Node::MetricsAggregate(a, second))
                }
                (Node::Metrics(m), Node::Static(v)) => {
                    let value = self.metrics_scalar(pos, &v)?;
                    Ok(Node::Metrics(add_second(
                        m,
                        SecondStage::Filter(cmp, value),
                    )))
                }
                (lhs, rhs) => Err(fail(&lhs, &rhs)),
            };
        }
        if let Some(arith) = arithmetic(op) {
            return match (lhs, rhs) {
                (Node::Static(l), Node::Static(r)) => fold(arith, &l, &r)
                    .map(Node::Static)
                    .map_err(|m| self.err(pos, m)),
                (Node::Scalar(l), Node::Scalar(r)) => Ok(Node::Scalar(ScalarExpr::Binary(
                    arith,
                    Box::new(l),
                    Box::new(r),
                ))),
                (Node::Scalar(l), Node::Static(r)) => Ok(Node::Scalar(ScalarExpr::Binary(
                    arith,
                    Box::new(l),
                    Box::new(ScalarExpr::Static(r)),
                ))),
                (Node::Static(l), Node::Scalar(r)) => Ok(Node::Scalar(ScalarExpr::Binary(
                    arith,
                    Box::new(ScalarExpr::Static(l)),
                    Box::new(r),
                ))),
                (Node::Metrics(l), Node::Metrics(r)) if metrics_math(arith) => Ok(Node::Metrics(
                    MetricsExpr::Binary(arith, Box::new(l), Box::new(r)),
                )),
                (Node::Metrics(l), Node::Static(r)) if metrics_math(arith) => {
                    let value = self.metrics_scalar(pos, &r)?;
                    Ok(Node::Metrics(MetricsExpr::Binary(
                        arith,
                        Box::new(l),
                        Box::new(MetricsExpr::Scalar(value)),
                    )))
                }
                (Node::Static(l), Node::Metrics(r)) if metrics_math(arith) => {
                    let value = self.metrics_scalar(pos, &l)?;
                    Ok(Node::Metrics(MetricsExpr::Binary(
                        arith,
                        Box::new(MetricsExpr::Scalar(value)),
                        Box::new(r),
                    )))
                }
                (lhs, rhs) => Err(fail(&lhs, &rhs)),
            };
        }
        Err(fail(&lhs, &rhs))
    }

    /// A literal used with a metrics query: a finite number, not a duration.
    fn metrics_scalar(&self, pos: usize, value: &Static) -> Result<f64, ParseError> {
        match value {
            Static::Int(i) => Ok(*i as f64),
            Static::Float(f) if f.is_finite() => Ok(*f),
            other => Err(self.err(
                pos,
                format!(
                    "syntax error: a metrics query can only be combined with a number, not {}",
                    super::format::static_text(other)
                ),
            )),
        }
    }

    fn primary(&mut self) -> Result<Node, ParseError> {
        let t = self.peek().clone();
        match &t.kind {
            TokenKind::Op("{") => Ok(Node::Spans(SpansetExpr::Filter(self.spanset_filter()?))),
            TokenKind::Op("(") => {
                self.next();
                let inner = self.binary(0)?;
                self.expect_op(")")?;
                Ok(inner)
            }
            TokenKind::Op("-") => {
                self.next();
                self.enter()?;
                let operand = self.primary()?;
                self.depth -= 1;
                match operand {
                    Node::Static(s) => fold(BinaryOp::Sub, &zero_like(&s), &s)
                        .map(Node::Static)
                        .map_err(|m| self.err(t.pos, m)),
                    other => Err(self.err(
                        t.pos,
                        format!("syntax error: unary - cannot apply to {}", other.describe()),
                    )),
                }
            }
            TokenKind::Int(i) => {
                self.next();
                Ok(Node::Static(Static::Int(*i)))
            }
            TokenKind::Float(f) => {
                self.next();
                Ok(Node::Static(Static::Float(*f)))
            }
            TokenKind::Duration(d) => {
                self.next();
                Ok(Node::Static(Static::Duration(*d)))
            }
            TokenKind::Ident(word) if self.peek_at(1).kind == TokenKind::Op("(") => {
                self.function(word.clone(), t.pos)
            }
            _ => Err(self.unexpected("{ or (")),
        }
    }

    fn function(&mut self, name: String, pos: usize) -> Result<Node, ParseError> {
        let aggregate = match name.as_str() {
            "count" => Some(AggregateOp::Count),
            "avg" => Some(AggregateOp::Avg),
            "max" => Some(AggregateOp::Max),
            "min" => Some(AggregateOp::Min),
            "sum" => Some(AggregateOp::Sum),
            _ => None,
        };
        self.next(); // name
        self.next(); // (
        if let Some(op) = aggregate {
            if op == AggregateOp::Count {
                self.expect_op(")")?;
                return Ok(Node::Scalar(ScalarExpr::Aggregate(op, None)));
            }
            if self.is_op(")") {
                return Err(self.unexpected("a field expression"));
            }
            let e = self.field(0)?;
            self.expect_op(")")?;
            return Ok(Node::Scalar(ScalarExpr::Aggregate(op, Some(Box::new(e)))));
        }
        match name.as_str() {
            "by" => {
                if self.is_op(")") {
                    return Err(self.unexpected("a field expression"));
                }
                let e = self.field(0)?;
                self.expect_op(")")?;
                Ok(Node::Stage(Stage::By(e)))
            }
            "coalesce" => {
                self.expect_op(")")?;
                Ok(Node::Stage(Stage::Coalesce))
            }
            "select" => {
                let attrs = self.attribute_list()?;
                self.expect_op(")")?;
                Ok(Node::Stage(Stage::Select(attrs)))
            }
            "topk" | "bottomk" => {
                let t = self.next();
                let TokenKind::Int(k) = t.kind else {
                    return Err(self.err(t.pos, format!("syntax error: {name} needs an integer")));
                };
                self.expect_op(")")?;
                Ok(Node::SecondStage(if name == "topk" {
                    SecondStage::TopK(k)
                } else {
                    SecondStage::BottomK(k)
                }))
            }
            _ => match MetricsOp::from_name(&name) {
                Some(op) => self.metrics_aggregate(op),
                None => Err(self.err(pos, format!("syntax error: unknown function {name}"))),
            },
        }
    }

    /// After `name(`: the arguments, `)` and an optional `by (…)`.
    fn metrics_aggregate(&mut self, op: MetricsOp) -> Result<Node, ParseError> {
        let mut aggregate = MetricsAggregate {
            op,
            attribute: None,
            quantiles: Vec::new(),
            by: Vec::new(),
            compare: None,
        };
        match op {
            MetricsOp::Rate | MetricsOp::CountOverTime => {}
            MetricsOp::Compare => {
                let filter = self.spanset_filter()?;
                let mut numbers = Vec::new();
                while self.is_op(",") {
                    self.next();
                    let t = self.next();
                    let TokenKind::Int(n) = t.kind else {
                        return Err(self.err(t.pos, "syntax error: compare() takes integers"));
                    };
                    numbers.push(n);
                }
                let (top, start, end) = match numbers[..] {
                    [] => (10, 0, 0),
                    [top] => (top, 0, 0),
                    [top, start, end] => (top, start, end),
                    _ => {
                        return Err(self.unexpected(")"));
                    }
                };
                aggregate.compare = Some((Box::new(filter), top, start, end));
            }
            _ => {
                aggregate.attribute = Some(self.attribute()?);
                if op == MetricsOp::QuantileOverTime {
                    self.expect_op(",")?;
                    loop {
                        let t = self.next();
                        let q = match t.kind {
                            TokenKind::Int(i) => i as f64,
                            TokenKind::Float(f) => f,
                            _ => return Err(self.err(t.pos, "syntax error: quantiles are numbers")),
                        };
                        aggregate.quantiles.push(q);
                        if !self.is_op(",") {
                            break;
                        }
                        self.next();
                    }
                }
            }
        }
        self.expect_op(")")?;
        if self.is_ident("by") && self.peek_at(1).kind == TokenKind::Op("(") {
            self.next();
            self.next();
            aggregate.by = self.attribute_list()?;
            self.expect_op(")")?;
        }
        Ok(Node::MetricsAggregate(aggregate, Vec::new()))
    }

    fn attribute_list(&mut self) -> Result<Vec<Attribute>, ParseError> {
        let mut attrs = vec![self.attribute()?];
        while self.is_op(",") {
            self.next();
            attrs.push(self.attribute()?);
        }
        Ok(attrs)
    }

    /// An attribute or intrinsic (not an arbitrary expression).
    fn attribute(&mut self) -> Result<Attribute, ParseError> {
        match self.field_primary_attribute()? {
            Some(a) => Ok(a),
            None => Err(self.unexpected("an attribute or intrinsic")),
        }
    }

    /// `with(name = value, …)`.
    fn hints(&mut self) -> Result<Vec<Hint>, ParseError> {
        let mut hints = Vec::new();
        if !(self.is_ident("with") && self.peek_at(1).kind == TokenKind::Op("(")) {
            return Ok(hints);
        }
        self.next();
        self.next();
        loop {
            let t = self.next();
            let TokenKind::Ident(name) = t.kind else {
                return Err(self.err(t.pos, "syntax error: expecting a hint name"));
            };
            self.expect_op("=")?;
            let v = self.next();
            let value = match v.kind {
                TokenKind::Int(i) => Static::Int(i),
                TokenKind::Float(f) => Static::Float(f),
                TokenKind::Str(s) => Static::Str(s),
                TokenKind::Duration(d) => Static::Duration(d),
                TokenKind::Ident(w) if w == "true" || w == "false" => Static::Bool(w == "true"),
                _ => return Err(self.err(v.pos, "syntax error: a hint value is a literal")),
            };
            hints.push(Hint { name, value });
            if self.is_op(",") {
                self.next();
                continue;
            }
            self.expect_op(")")?;
            return Ok(hints);
        }
    }

    // ---- field expressions -------------------------------------------

    /// `{ … }`.
    fn spanset_filter(&mut self) -> Result<FieldExpr, ParseError> {
        self.expect_op("{")?;
        if self.is_op("}") {
            self.next();
            return Ok(FieldExpr::Static(Static::Bool(true)));
        }
        let e = self.field(0)?;
        self.expect_op("}")?;
        Ok(e)
    }

    fn field(&mut self, min_prec: u8) -> Result<FieldExpr, ParseError> {
        self.enter()?;
        let mut lhs = self.field_unary()?;
        while let TokenKind::Op(op) = self.peek().kind {
            let Some(bop) = field_operator(op) else { break };
            let prec = bop.precedence();
            if prec < min_prec {
                break;
            }
            self.next();
            let next_min = if bop == BinaryOp::Pow { prec } else { prec + 1 };
            let rhs = self.field(next_min)?;
            lhs = match (bop, &lhs, &rhs) {
                (
                    BinaryOp::Eq | BinaryOp::Neq,
                    FieldExpr::Static(Static::Nil),
                    FieldExpr::Static(Static::Nil),
                ) => FieldExpr::Static(Static::Bool(false)),
                (BinaryOp::Neq, e, FieldExpr::Static(Static::Nil))
                | (BinaryOp::Neq, FieldExpr::Static(Static::Nil), e) => {
                    FieldExpr::Unary(UnaryOp::Exists, Box::new(e.clone()))
                }
                (BinaryOp::Eq, e, FieldExpr::Static(Static::Nil))
                | (BinaryOp::Eq, FieldExpr::Static(Static::Nil), e) => {
                    FieldExpr::Unary(UnaryOp::NotExists, Box::new(e.clone()))
                }
                _ => FieldExpr::Binary(bop, Box::new(lhs), Box::new(rhs)),
            };
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn field_unary(&mut self) -> Result<FieldExpr, ParseError> {
        if self.is_op("-") {
            self.next();
            let operand = self.field(BinaryOp::Add.precedence() + 1)?;
            return Ok(FieldExpr::Unary(UnaryOp::Neg, Box::new(operand)));
        }
        if self.is_op("!") {
            self.next();
            let operand = self.field(BinaryOp::Mul.precedence())?;
            return Ok(FieldExpr::Unary(UnaryOp::Not, Box::new(operand)));
        }
        if self.is_op("(") {
            self.next();
            let e = self.field(0)?;
            self.expect_op(")")?;
            return Ok(e);
        }
        if let Some(a) = self.field_primary_attribute()? {
            return Ok(FieldExpr::Attribute(a));
        }
        let t = self.peek().clone();
        let value = match &t.kind {
            TokenKind::Str(s) => Static::Str(s.clone()),
            TokenKind::Int(i) => Static::Int(*i),
            TokenKind::Float(f) => Static::Float(*f),
            TokenKind::Duration(d) => Static::Duration(*d),
            TokenKind::Ident(w) => match w.as_str() {
                "true" => Static::Bool(true),
                "false" => Static::Bool(false),
                "nil" => Static::Nil,
                "ok" => Static::Status(Status::Ok),
                "error" => Static::Status(Status::Error),
                "unset" => Static::Status(Status::Unset),
                "unspecified" => Static::Kind(Kind::Unspecified),
                "internal" => Static::Kind(Kind::Internal),
                "server" => Static::Kind(Kind::Server),
                "client" => Static::Kind(Kind::Client),
                "producer" => Static::Kind(Kind::Producer),
                "consumer" => Static::Kind(Kind::Consumer),
                "minInt" => Static::Int(i64::MIN),
                "maxInt" => Static::Int(i64::MAX),
                other => {
                    return Err(self.err(
                        t.pos,
                        format!(
                            "unknown identifier: {other} (attributes are written .{other}, span.{other} or resource.{other})"
                        ),
                    ));
                }
            },
            _ => return Err(self.unexpected("a field expression")),
        };
        self.next();
        Ok(FieldExpr::Static(value))
    }

    /// An attribute token or an intrinsic word at the cursor, consumed.
    fn field_primary_attribute(&mut self) -> Result<Option<Attribute>, ParseError> {
        let t = self.peek().clone();
        let attr = match t.kind {
            TokenKind::Attribute {
                scope,
                parent,
                name,
            } => Attribute::Named {
                scope,
                parent,
                name,
            },
            TokenKind::ScopedIntrinsic(scope, word) => match Intrinsic::scoped(&scope, &word) {
                Some(i) => Attribute::Intrinsic(i),
                None => {
                    return Err(self.err(
                        t.pos,
                        format!("syntax error: unknown intrinsic {scope}:{word}"),
                    ));
                }
            },
            TokenKind::Ident(word) => match Intrinsic::unscoped(&word) {
                Some(i) => Attribute::Intrinsic(i),
                None => return Ok(None),
            },
            _ => return Ok(None),
        };
        self.next();
        Ok(Some(attr))
    }
}

fn pipe(lhs: SpansetExpr, stage: Stage) -> Node {
    let mut stages = match lhs {
        SpansetExpr::Pipeline(stages) => stages,
        other => vec![Stage::Spanset(other)],
    };
    stages.push(stage);
    Node::Spans(SpansetExpr::Pipeline(stages))
}

fn add_second(m: MetricsExpr, stage: SecondStage) -> MetricsExpr {
    match m {
        MetricsExpr::Pipeline {
            spans,
            aggregate,
            mut second,
        } => {
            second.push(stage);
            MetricsExpr::Pipeline {
                spans,
                aggregate,
                second,
            }
        }
        MetricsExpr::Staged(inner, mut second) => {
            second.push(stage);
            MetricsExpr::Staged(inner, second)
        }
        other => MetricsExpr::Staged(Box::new(other), vec![stage]),
    }
}

fn metrics_math(op: BinaryOp) -> bool {
    matches!(
        op,
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div
    )
}

fn zero_like(s: &Static) -> Static {
    match s {
        Static::Float(_) => Static::Float(0.0),
        Static::Duration(_) => Static::Duration(0),
        _ => Static::Int(0),
    }
}

/// Constant arithmetic on literals: ints stay ints (`1/2` is 0), a float
/// makes the result float, a duration with a number stays a duration.
pub fn fold(op: BinaryOp, l: &Static, r: &Static) -> Result<Static, String> {
    let number = |s: &Static| -> Option<(f64, u8)> {
        match s {
            Static::Int(i) => Some((*i as f64, 0)),
            Static::Float(f) => Some((*f, 1)),
            Static::Duration(d) => Some((*d as f64, 2)),
            _ => None,
        }
    };
    let (Some((a, ka)), Some((b, kb))) = (number(l), number(r)) else {
        return Err(format!(
            "syntax error: operator {} needs numbers, not {} and {}",
            op.symbol(),
            super::format::static_text(l),
            super::format::static_text(r)
        ));
    };
    if let (Static::Int(x), Static::Int(y)) = (l, r) {
        let v = match op {
            BinaryOp::Add => x.checked_add(*y),
            BinaryOp::Sub => x.checked_sub(*y),
            BinaryOp::Mul => x.checked_mul(*y),
            BinaryOp::Div => {
                if *y == 0 {
                    return Err("division by zero".into());
                }
                x.checked_div(*y)
            }
            BinaryOp::Mod => {
                if *y == 0 {
                    return Err("division by zero".into());
                }
                x.checked_rem(*y)
            }
            BinaryOp::Pow => u32::try_from(*y).ok().and_then(|e| x.checked_pow(e)),
            _ => None,
        };
        return v
            .map(Static::Int)
            .ok_or_else(|| format!("integer overflow in {x} {} {y}", op.symbol()));
    }
    let v = match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Mod => a % b,
        BinaryOp::Pow => a.powf(b),
        _ => return Err(format!("operator {} is not arithmetic", op.symbol())),
    };
    Ok(if ka == 2 || kb == 2 {
        Static::Duration(v as i64)
    } else {
        Static::Float(v)
    })
}
