//! Tokens ([`super::lexer`]) → syntax tree ([`super::ast`]), with the checks
//! Loki makes at parse time. Binary operators are parsed by precedence
//! climbing (Prometheus precedence, `^` right-associative); everything else
//! by recursive descent. Every error carries the byte offset of the token it
//! is about; syntax errors read like Loki's (`syntax error: unexpected
//! IDENTIFIER, expecting {`).
//!
//! A node's `pos` is the offset of its first token: the label name of a
//! matcher or label filter, the operator of a line filter, the keyword of a
//! pipeline stage (`line_format`, `regexp`, `unwrap`, …), the function name
//! of an aggregation, the left operand of a binary operation.

use super::ast::*;
use super::lexer::{ParseError, Token, TokenKind, lex};

const ERR_EMPTY_COMPATIBLE: &str = "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will";

/// Parses and validates one LogQL query.
pub fn parse(query: &str) -> Result<Expr> {
    let tokens = lex(query)?;
    let mut p = Parser {
        query,
        tokens,
        i: 0,
    };
    let (expr, _) = p.binary(0)?;
    if !matches!(p.peek().kind, TokenKind::Eof) {
        return Err(p.unexpected(""));
    }
    Ok(expr)
}

struct Parser<'a> {
    query: &'a str,
    tokens: Vec<Token>,
    i: usize,
}

/// A log range before the check that it has its `[range]`.
struct PartialRange {
    log: LogExpr,
    range_ns: Option<i64>,
    offset_ns: i64,
    unwrap: Option<Unwrap>,
}

type Result<T> = std::result::Result<T, ParseError>;

impl Parser<'_> {
    // ---- token helpers ----

    fn peek(&self) -> &Token {
        &self.tokens[self.i]
    }

    fn peek_at(&self, n: usize) -> &TokenKind {
        &self.tokens[(self.i + n).min(self.tokens.len() - 1)].kind
    }

    fn next(&mut self) -> Token {
        let t = self.tokens[self.i].clone();
        if self.i + 1 < self.tokens.len() {
            self.i += 1;
        }
        t
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek().kind, TokenKind::Op(o) if o == op)
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek().kind, TokenKind::Keyword(k) if k == kw)
    }

    fn err(&self, pos: usize, msg: impl Into<String>) -> ParseError {
        ParseError::at(self.query, pos, msg)
    }

    /// `syntax error: unexpected X[, expecting Y]` at the next token.
    fn unexpected(&self, expecting: &str) -> ParseError {
        let t = self.peek();
        let mut msg = format!("syntax error: unexpected {}", t.describe());
        if !expecting.is_empty() {
            msg.push_str(", expecting ");
            msg.push_str(expecting);
        }
        self.err(t.pos, msg)
    }

    fn expect_op(&mut self, op: &str) -> Result<Token> {
        if self.is_op(op) {
            Ok(self.next())
        } else {
            Err(self.unexpected(op))
        }
    }

    fn expect_string(&mut self) -> Result<(String, usize)> {
        match &self.peek().kind {
            TokenKind::Str(s) => {
                let s = s.clone();
                let pos = self.next().pos;
                Ok((s, pos))
            }
            _ => Err(self.unexpected("STRING")),
        }
    }

    fn expect_ident(&mut self) -> Result<(String, usize)> {
        match &self.peek().kind {
            TokenKind::Ident(s) => {
                let s = s.clone();
                let pos = self.next().pos;
                self.check_label_name(&s, pos)?;
                Ok((s, pos))
            }
            _ => Err(self.unexpected("IDENTIFIER")),
        }
    }

    fn check_label_name(&self, name: &str, pos: usize) -> Result<()> {
        if is_label_name(name) {
            Ok(())
        } else {
            Err(self.err(pos, format!("invalid label name {name:?}")))
        }
    }

    fn number(&self, text: &str, pos: usize) -> Result<f64> {
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            Ok(_) => Err(self.err(
                pos,
                format!("unable to parse literal as a float: {text}: value out of range"),
            )),
            Err(_) => Err(self.err(
                pos,
                format!("unable to parse literal as a float: {text}: invalid syntax"),
            )),
        }
    }

    // ---- expressions ----

    /// Precedence climbing over binary operators; returns the expression and
    /// the offset of its first token.
    fn binary(&mut self, min_prec: u8) -> Result<(Expr, usize)> {
        let (mut lhs, start) = self.primary()?;
        while let Some((op, prec)) = self.peek_binop() {
            if prec < min_prec {
                break;
            }
            let op_pos = self.next().pos;
            let mut return_bool = false;
            if self.is_kw("bool") {
                let pos = self.next().pos;
                if !op.is_comparison() {
                    return Err(self.err(
                        pos,
                        "bool modifier can only be used on comparison operators",
                    ));
                }
                return_bool = true;
            }
            let matching = self.vector_matching()?;
            let next_min = if op == BinaryOp::Pow { prec } else { prec + 1 };
            let (rhs, rhs_start) = self.binary(next_min)?;
            let lhs_m = self.require_metric(lhs, start, || {
                format!(
                    "unexpected type for left leg of binary operation ({}): log query",
                    op.symbol()
                )
            })?;
            let rhs_m = self.require_metric(rhs, rhs_start, || {
                format!(
                    "unexpected type for right leg of binary operation ({}): log query",
                    op.symbol()
                )
            })?;
            if op.is_set() {
                for (side, e, pos) in [("left", &lhs_m, start), ("right", &rhs_m, rhs_start)] {
                    if let MetricExpr::Number(v) = e {
                        return Err(self.err(
                            pos,
                            format!(
                                "unexpected literal for {side} leg of logical/set binary operation ({}): {v:.6}",
                                op.symbol()
                            ),
                        ));
                    }
                }
            }
            let _ = op_pos;
            lhs = Expr::Metric(MetricExpr::Binary {
                op,
                lhs: Box::new(lhs_m),
                rhs: Box::new(rhs_m),
                return_bool,
                matching,
                pos: start,
            });
        }
        Ok((lhs, start))
    }

    fn peek_binop(&self) -> Option<(BinaryOp, u8)> {
        let op = match &self.peek().kind {
            TokenKind::Keyword("or") => BinaryOp::Or,
            TokenKind::Keyword("and") => BinaryOp::And,
            TokenKind::Keyword("unless") => BinaryOp::Unless,
            TokenKind::Op(o) => match *o {
                "+" => BinaryOp::Add,
                "-" => BinaryOp::Sub,
                "*" => BinaryOp::Mul,
                "/" => BinaryOp::Div,
                "%" => BinaryOp::Mod,
                "^" => BinaryOp::Pow,
                "==" => BinaryOp::Eq,
                "!=" => BinaryOp::Neq,
                ">" => BinaryOp::Gt,
                ">=" => BinaryOp::Ge,
                "<" => BinaryOp::Lt,
                "<=" => BinaryOp::Le,
                _ => return None,
            },
            _ => return None,
        };
        let prec = match op {
            BinaryOp::Or => 1,
            BinaryOp::And | BinaryOp::Unless => 2,
            BinaryOp::Add | BinaryOp::Sub => 4,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => 5,
            BinaryOp::Pow => 6,
            _ => 3,
        };
        Some((op, prec))
    }

    fn vector_matching(&mut self) -> Result<Option<VectorMatching>> {
        let on = if self.is_kw("on") {
            true
        } else if self.is_kw("ignoring") {
            false
        } else {
            return Ok(None);
        };
        self.next();
        let labels = self.label_list()?;
        let left = if self.is_kw("group_left") {
            true
        } else if self.is_kw("group_right") {
            false
        } else {
            return Ok(Some(VectorMatching {
                on,
                labels,
                group: None,
            }));
        };
        self.next();
        let group_labels = if self.is_op("(") {
            self.label_list()?
        } else {
            Vec::new()
        };
        Ok(Some(VectorMatching {
            on,
            labels,
            group: Some(GroupModifier {
                left,
                labels: group_labels,
            }),
        }))
    }

    /// `( a, b )`, possibly empty.
    fn label_list(&mut self) -> Result<Vec<String>> {
        self.expect_op("(")?;
        let mut labels = Vec::new();
        if self.is_op(")") {
            self.next();
            return Ok(labels);
        }
        loop {
            labels.push(self.expect_ident()?.0);
            if self.is_op(",") {
                self.next();
            } else if self.is_op(")") {
                self.next();
                return Ok(labels);
            } else {
                return Err(self.unexpected(", or )"));
            }
        }
    }

    fn require_metric(
        &self,
        e: Expr,
        pos: usize,
        msg: impl FnOnce() -> String,
    ) -> Result<MetricExpr> {
        match e {
            Expr::Metric(m) => Ok(m),
            Expr::Log(_) => Err(self.err(pos, msg())),
        }
    }

    fn metric_arg(&mut self, what: &str) -> Result<MetricExpr> {
        let (e, pos) = self.binary(0)?;
        self.require_metric(e, pos, || {
            format!("{what} requires a metric query, not a log query")
        })
    }

    fn primary(&mut self) -> Result<(Expr, usize)> {
        let tok = self.peek().clone();
        let pos = tok.pos;
        match &tok.kind {
            TokenKind::Op("{") => Ok((Expr::Log(self.log_expr()?), pos)),
            TokenKind::Op("(") => {
                self.next();
                let (inner, _) = self.binary(0)?;
                self.expect_op(")")?;
                Ok(match inner {
                    Expr::Log(l) => (Expr::Log(l), pos),
                    Expr::Metric(m) => (Expr::Metric(MetricExpr::Paren(Box::new(m))), pos),
                })
            }
            TokenKind::Number(text) => {
                self.next();
                Ok((
                    Expr::Metric(MetricExpr::Number(self.number(text, pos)?)),
                    pos,
                ))
            }
            TokenKind::Op(sign @ ("+" | "-")) => {
                let negative = *sign == "-";
                self.next();
                let v = self.unsigned_number()?;
                Ok((
                    Expr::Metric(MetricExpr::Number(if negative { -v } else { v })),
                    pos,
                ))
            }
            TokenKind::Function(name) => Ok((Expr::Metric(self.function(name)?), pos)),
            TokenKind::Ident(name) if matches!(self.peek_at(1), TokenKind::Op("(")) => {
                Err(self.err(pos, format!("unknown function {name:?}")))
            }
            _ => Err(self.unexpected("")),
        }
    }

    fn unsigned_number(&mut self) -> Result<f64> {
        let t = self.peek().clone();
        match &t.kind {
            TokenKind::Number(text) => {
                self.next();
                self.number(text, t.pos)
            }
            _ => Err(self.unexpected("NUMBER")),
        }
    }

    fn function(&mut self, name: &str) -> Result<MetricExpr> {
        let pos = self.peek().pos;
        if let Some(op) = RangeOp::from_name(name) {
            return self.range_aggregation(op);
        }
        if let Some(op) = VectorOp::from_name(name) {
            return self.vector_aggregation(op);
        }
        match name {
            "vector" => {
                self.next();
                self.expect_op("(")?;
                let v = self.unsigned_number()?;
                self.expect_op(")")?;
                Ok(MetricExpr::Vector(v))
            }
            "label_replace" => self.label_replace(),
            "approx_topk" => Err(self.err(pos, "approx_topk is not supported")),
            _ => Err(self.unexpected("")),
        }
    }

    fn grouping(&mut self) -> Result<Option<(Grouping, usize)>> {
        let without = if self.is_kw("by") {
            false
        } else if self.is_kw("without") {
            true
        } else {
            return Ok(None);
        };
        let pos = self.next().pos;
        let labels = self.label_list()?;
        Ok(Some((Grouping { without, labels }, pos)))
    }

    /// `NUMBER ,` as first argument, if present: (text, value, pos).
    fn leading_param(&mut self) -> Result<Option<(String, usize)>> {
        if let TokenKind::Number(text) = &self.peek().kind
            && matches!(self.peek_at(1), TokenKind::Op(","))
        {
            let text = text.clone();
            let pos = self.next().pos;
            self.next();
            return Ok(Some((text, pos)));
        }
        Ok(None)
    }

    fn range_aggregation(&mut self, op: RangeOp) -> Result<MetricExpr> {
        let pos = self.next().pos;
        self.expect_op("(")?;
        let param = self.leading_param()?;
        let range = self.log_range()?;
        self.expect_op(")")?;
        let grouping = self.grouping()?;
        let param = match param {
            Some((text, ppos)) => {
                if op != RangeOp::QuantileOverTime {
                    return Err(self.err(
                        ppos,
                        format!("parameter {text} not supported for operation {}", op.name()),
                    ));
                }
                Some(self.number(&text, ppos)?)
            }
            None if op == RangeOp::QuantileOverTime => {
                return Err(self.err(
                    pos,
                    format!("parameter required for operation {}", op.name()),
                ));
            }
            None => None,
        };
        if let Some((_, gpos)) = &grouping
            && !matches!(
                op,
                RangeOp::AvgOverTime
                    | RangeOp::StddevOverTime
                    | RangeOp::StdvarOverTime
                    | RangeOp::QuantileOverTime
                    | RangeOp::MaxOverTime
                    | RangeOp::MinOverTime
                    | RangeOp::FirstOverTime
                    | RangeOp::LastOverTime
            )
        {
            return Err(self.err(
                *gpos,
                format!("grouping not allowed for {} aggregation", op.name()),
            ));
        }
        match &range.unwrap {
            Some(u) if op.forbids_unwrap() => {
                return Err(self.err(
                    u.pos,
                    format!("invalid aggregation {} with unwrap", op.name()),
                ));
            }
            None if op.requires_unwrap() => {
                return Err(self.err(
                    pos,
                    format!("invalid aggregation {} without unwrap", op.name()),
                ));
            }
            _ => {}
        }
        Ok(MetricExpr::RangeAggregation {
            op,
            range,
            param,
            grouping: grouping.map(|(g, _)| g),
            pos,
        })
    }

    fn vector_aggregation(&mut self, op: VectorOp) -> Result<MetricExpr> {
        let pos = self.next().pos;
        let before = self.grouping()?;
        self.expect_op("(")?;
        let param = self.leading_param()?;
        let expr = self.metric_arg(op.name())?;
        self.expect_op(")")?;
        let grouping = match before {
            Some(g) => Some(g),
            None => self.grouping()?,
        };
        let param = match (op, param) {
            (VectorOp::Topk | VectorOp::Bottomk, None) => {
                return Err(self.err(
                    pos,
                    format!("parameter required for operation {}", op.name()),
                ));
            }
            (VectorOp::Topk | VectorOp::Bottomk, Some((text, ppos))) => {
                let Ok(k) = text.parse::<i64>() else {
                    return Err(self.err(ppos, format!("invalid parameter {}({text},", op.name())));
                };
                if k <= 0 {
                    return Err(self.err(
                        ppos,
                        format!(
                            "invalid parameter (must be greater than 0) {}({text}",
                            op.name()
                        ),
                    ));
                }
                Some(k as f64)
            }
            (_, Some((text, ppos))) => {
                return Err(self.err(
                    ppos,
                    format!("unsupported parameter for operation {}({text},", op.name()),
                ));
            }
            (_, None) => None,
        };
        if let (VectorOp::Sort | VectorOp::SortDesc, Some((g, gpos))) = (op, &grouping)
            && !g.labels.is_empty()
        {
            return Err(self.err(*gpos, "sort and sort_desc doesn't allow grouping by "));
        }
        Ok(MetricExpr::VectorAggregation {
            op,
            expr: Box::new(expr),
            param,
            grouping: grouping.map(|(g, _)| g),
            pos,
        })
    }

    fn label_replace(&mut self) -> Result<MetricExpr> {
        let pos = self.next().pos;
        self.expect_op("(")?;
        let expr = self.metric_arg("label_replace")?;
        let mut strings = Vec::new();
        for _ in 0..4 {
            self.expect_op(",")?;
            strings.push(self.expect_string()?);
        }
        self.expect_op(")")?;
        let [
            (destination, dpos),
            (replacement, _),
            (source, _),
            (regex, rpos),
        ] = <[(String, usize); 4]>::try_from(strings).expect("four strings");
        if !is_label_name(&destination) {
            return Err(self.err(
                dpos,
                format!("invalid destination label name in label_replace(): {destination}"),
            ));
        }
        if let Err(e) = regex::Regex::new(&format!("^(?s:{regex})$")) {
            return Err(self.err(
                rpos,
                format!(
                    "invalid regex in label_replace: {}",
                    regex_message(&regex, &e)
                ),
            ));
        }
        Ok(MetricExpr::LabelReplace {
            expr: Box::new(expr),
            destination,
            replacement,
            source,
            regex,
            pos,
        })
    }

    // ---- log ranges ----

    fn log_range(&mut self) -> Result<LogRange> {
        let part = self.log_range_part()?;
        let Some(range_ns) = part.range_ns else {
            return Err(self.unexpected("RANGE"));
        };
        Ok(LogRange {
            log: part.log,
            range_ns,
            offset_ns: part.offset_ns,
            unwrap: part.unwrap,
        })
    }

    fn log_range_part(&mut self) -> Result<PartialRange> {
        if self.is_op("(") {
            self.next();
            let mut inner = self.log_range_part()?;
            self.expect_op(")")?;
            if inner.range_ns.is_none()
                && let Some(r) = self.take_range()?
            {
                inner.range_ns = Some(r.0);
                inner.offset_ns = r.1;
            }
            return Ok(inner);
        }
        if !self.is_op("{") {
            return Err(self.unexpected("{"));
        }
        let selector = self.selector()?;
        let mut range = self.take_range()?;
        let (pipeline, unwrap) = self.pipeline(true)?;
        if range.is_none() {
            range = self.take_range()?;
        }
        Ok(PartialRange {
            log: LogExpr { selector, pipeline },
            range_ns: range.map(|r| r.0),
            offset_ns: range.map_or(0, |r| r.1),
            unwrap,
        })
    }

    /// `[range] [offset d]`, if the next token is a range.
    fn take_range(&mut self) -> Result<Option<(i64, i64)>> {
        let TokenKind::Range(ns) = self.peek().kind else {
            return Ok(None);
        };
        self.next();
        let mut offset = 0;
        if self.is_kw("offset") {
            self.next();
            match self.peek().kind {
                TokenKind::Duration(d) => {
                    self.next();
                    offset = d;
                }
                _ => return Err(self.unexpected("DURATION")),
            }
        }
        Ok(Some((ns, offset)))
    }

    // ---- log queries ----

    fn log_expr(&mut self) -> Result<LogExpr> {
        let selector = self.selector()?;
        let (pipeline, _) = self.pipeline(false)?;
        Ok(LogExpr { selector, pipeline })
    }

    fn selector(&mut self) -> Result<Vec<Matcher>> {
        let open = self.expect_op("{")?.pos;
        let mut matchers = Vec::new();
        if !self.is_op("}") {
            loop {
                matchers.push(self.matcher()?);
                if self.is_op(",") {
                    self.next();
                } else if self.is_op("}") {
                    break;
                } else {
                    return Err(self.unexpected(", or }"));
                }
            }
        }
        self.next();
        if matchers.iter().all(matches_empty) {
            return Err(self.err(open, ERR_EMPTY_COMPATIBLE));
        }
        Ok(matchers)
    }

    fn match_op(&self) -> Option<MatchOp> {
        match self.peek().kind {
            TokenKind::Op("=") => Some(MatchOp::Eq),
            TokenKind::Op("!=") => Some(MatchOp::Neq),
            TokenKind::Op("=~") => Some(MatchOp::Re),
            TokenKind::Op("!~") => Some(MatchOp::Nre),
            _ => None,
        }
    }

    fn matcher(&mut self) -> Result<Matcher> {
        let (name, pos) = self.expect_ident()?;
        let Some(op) = self.match_op() else {
            return Err(self.unexpected("= or != or =~ or !~"));
        };
        self.next();
        self.matcher_value(name, op, pos)
    }

    fn matcher_value(&mut self, name: String, op: MatchOp, pos: usize) -> Result<Matcher> {
        let (value, vpos) = self.expect_string()?;
        if matches!(op, MatchOp::Re | MatchOp::Nre)
            && let Err(e) = anchored(&value)
        {
            return Err(self.err(
                vpos,
                format!("error parsing regexp: {}", regex_message(&value, &e)),
            ));
        }
        Ok(Matcher {
            name,
            op,
            value,
            pos,
        })
    }

    /// Stages up to the first token that cannot continue the pipeline. With
    /// `allow_unwrap`, a `| unwrap …` (and the label filters after it) ends it.
    fn pipeline(&mut self, allow_unwrap: bool) -> Result<(Vec<Stage>, Option<Unwrap>)> {
        let mut stages = Vec::new();
        loop {
            let t = self.peek().clone();
            let line_op = match t.kind {
                TokenKind::Op("|=") => Some(LineFilterOp::Contains),
                TokenKind::Op("!=") => Some(LineFilterOp::NotContains),
                TokenKind::Op("|~") => Some(LineFilterOp::Regex),
                TokenKind::Op("!~") => Some(LineFilterOp::NotRegex),
                TokenKind::Op("|>") => Some(LineFilterOp::Pattern),
                TokenKind::Op("!>") => Some(LineFilterOp::NotPattern),
                _ => None,
            };
            if let Some(op) = line_op {
                self.next();
                stages.push(Stage::LineFilter(self.line_filter(op, t.pos)?));
                continue;
            }
            if !self.is_op("|") {
                return Ok((stages, None));
            }
            self.next();
            if self.is_kw("unwrap") && allow_unwrap {
                return Ok((stages, Some(self.unwrap()?)));
            }
            stages.push(self.stage()?);
        }
    }

    fn line_filter(&mut self, op: LineFilterOp, pos: usize) -> Result<LineFilter> {
        let mut values = vec![self.line_filter_value(op)?];
        while self.is_kw("or") {
            self.next();
            values.push(self.line_filter_value(op)?);
        }
        Ok(LineFilter { op, values, pos })
    }

    fn line_filter_value(&mut self, op: LineFilterOp) -> Result<LineFilterValue> {
        let t = self.peek().clone();
        match &t.kind {
            TokenKind::Str(s) => {
                self.next();
                match op {
                    LineFilterOp::Regex | LineFilterOp::NotRegex => {
                        if let Err(e) = regex::Regex::new(s) {
                            return Err(self.err(
                                t.pos,
                                format!("error parsing regexp: {}", regex_message(s, &e)),
                            ));
                        }
                    }
                    LineFilterOp::Pattern | LineFilterOp::NotPattern => {
                        let nodes = pattern_nodes(s);
                        if let Some(c) = nodes.iter().find_map(|n| match n {
                            PatternNode::Capture(c) if c != "_" => Some(c),
                            _ => None,
                        }) {
                            return Err(self.err(
                                t.pos,
                                format!("named captures are not allowed: found '<{c}>'"),
                            ));
                        }
                    }
                    _ => {}
                }
                Ok(LineFilterValue::Text(s.clone()))
            }
            TokenKind::Function("ip") => {
                if !matches!(op, LineFilterOp::Contains | LineFilterOp::NotContains) {
                    return Err(self.err(t.pos, "ip line filter is only supported with |= and !="));
                }
                Ok(LineFilterValue::Ip(self.ip_call()?))
            }
            _ => Err(self.unexpected("STRING or ip")),
        }
    }

    /// `ip("…")`, validated.
    fn ip_call(&mut self) -> Result<String> {
        self.next();
        self.expect_op("(")?;
        let (s, pos) = self.expect_string()?;
        self.expect_op(")")?;
        if !valid_ip_pattern(&s) {
            return Err(self.err(pos, format!("ip: invalid pattern {s:?}")));
        }
        Ok(s)
    }

    fn unwrap(&mut self) -> Result<Unwrap> {
        let pos = self.next().pos;
        let (label, conversion) = match self.peek().kind {
            TokenKind::Function(f @ ("bytes" | "duration" | "duration_seconds")) => {
                self.next();
                self.expect_op("(")?;
                let (label, _) = self.expect_ident()?;
                self.expect_op(")")?;
                let conv = if f == "bytes" {
                    UnwrapConversion::Bytes
                } else {
                    UnwrapConversion::Duration
                };
                (label, conv)
            }
            TokenKind::Ident(_) => (self.expect_ident()?.0, UnwrapConversion::Number),
            _ => return Err(self.unexpected("IDENTIFIER")),
        };
        let mut post_filters = Vec::new();
        while self.is_op("|") && matches!(self.peek_at(1), TokenKind::Ident(_) | TokenKind::Op("("))
        {
            self.next();
            post_filters.push(self.label_filter()?);
        }
        Ok(Unwrap {
            label,
            conversion,
            post_filters,
            pos,
        })
    }

    /// The stage after a `|`.
    fn stage(&mut self) -> Result<Stage> {
        let t = self.peek().clone();
        let TokenKind::Keyword(kw) = t.kind else {
            if matches!(t.kind, TokenKind::Ident(_) | TokenKind::Op("(")) {
                return Ok(Stage::LabelFilter(self.label_filter()?));
            }
            return Err(self.unexpected("IDENTIFIER or a pipeline stage"));
        };
        match kw {
            "json" => {
                self.next();
                Ok(Stage::Parser(ParserStage::Json(self.extractions()?)))
            }
            "logfmt" => {
                self.next();
                let (mut strict, mut keep_empty) = (false, false);
                while let TokenKind::Flag(f) = self.peek().kind {
                    self.next();
                    match f {
                        "--strict" => strict = true,
                        _ => keep_empty = true,
                    }
                }
                Ok(Stage::Parser(ParserStage::Logfmt {
                    strict,
                    keep_empty,
                    extractions: self.extractions()?,
                }))
            }
            "regexp" => {
                self.next();
                let (pattern, spos) = self.expect_string()?;
                self.check_regexp_parser(&pattern, spos)?;
                Ok(Stage::Parser(ParserStage::Regexp {
                    pattern,
                    pos: t.pos,
                }))
            }
            "pattern" => {
                self.next();
                let (pattern, spos) = self.expect_string()?;
                self.check_pattern_parser(&pattern, spos)?;
                Ok(Stage::Parser(ParserStage::Pattern {
                    pattern,
                    pos: t.pos,
                }))
            }
            "unpack" => {
                self.next();
                Ok(Stage::Parser(ParserStage::Unpack))
            }
            "decolorize" => {
                self.next();
                Ok(Stage::Decolorize)
            }
            "line_format" => {
                self.next();
                let (template, _) = self.expect_string()?;
                Ok(Stage::LineFormat {
                    template,
                    pos: t.pos,
                })
            }
            "label_format" => {
                self.next();
                let mut items = Vec::new();
                loop {
                    let (target, pos) = self.expect_ident()?;
                    self.expect_op("=")?;
                    let source = match &self.peek().kind {
                        TokenKind::Str(s) => {
                            let s = s.clone();
                            self.next();
                            LabelFormatSource::Template(s)
                        }
                        TokenKind::Ident(_) => LabelFormatSource::Rename(self.expect_ident()?.0),
                        _ => return Err(self.unexpected("IDENTIFIER or STRING")),
                    };
                    if target == "__error__" {
                        return Err(self.err(pos, format!("{target} cannot be formatted")));
                    }
                    if items.iter().any(|i: &LabelFormatItem| i.target == target) {
                        return Err(self.err(
                            pos,
                            format!(
                                "multiple label name '{target}' not allowed in a single format operation"
                            ),
                        ));
                    }
                    items.push(LabelFormatItem {
                        target,
                        source,
                        pos,
                    });
                    if !self.is_op(",") {
                        break;
                    }
                    self.next();
                }
                Ok(Stage::LabelFormat(items))
            }
            "drop" | "keep" => {
                self.next();
                let mut items = Vec::new();
                loop {
                    let (name, pos) = self.expect_ident()?;
                    match self.match_op() {
                        Some(op) => {
                            self.next();
                            items.push(LabelSelection::Matcher(self.matcher_value(name, op, pos)?));
                        }
                        None => items.push(LabelSelection::Name(name)),
                    }
                    if !self.is_op(",") {
                        break;
                    }
                    self.next();
                }
                Ok(if kw == "drop" {
                    Stage::Drop(items)
                } else {
                    Stage::Keep(items)
                })
            }
            _ => Err(self.unexpected("")),
        }
    }

    /// `a="x.y", b` after `json`/`logfmt`, possibly none.
    fn extractions(&mut self) -> Result<Vec<LabelExtraction>> {
        let mut out = Vec::new();
        if !matches!(self.peek().kind, TokenKind::Ident(_)) {
            return Ok(out);
        }
        loop {
            let (label, pos) = self.expect_ident()?;
            let expression = if self.is_op("=") {
                self.next();
                self.expect_string()?.0
            } else {
                label.clone()
            };
            out.push(LabelExtraction {
                label,
                expression,
                pos,
            });
            if !self.is_op(",") {
                return Ok(out);
            }
            self.next();
        }
    }

    fn check_regexp_parser(&self, pattern: &str, pos: usize) -> Result<()> {
        let fail = |m: String| Err(self.err(pos, format!("invalid regexp parser: {m}")));
        let re = match regex::Regex::new(pattern) {
            Ok(re) => re,
            Err(e) => {
                return fail(format!(
                    "error parsing regexp: {}",
                    regex_message(pattern, &e)
                ));
            }
        };
        let mut seen = Vec::new();
        for name in re.capture_names().flatten() {
            if !is_label_name(name) {
                return fail(format!("invalid extracted label name '{name}'"));
            }
            if seen.contains(&name) {
                return fail(format!("duplicate extracted label name '{name}'"));
            }
            seen.push(name);
        }
        if seen.is_empty() {
            return fail("at least one named capture must be supplied".into());
        }
        Ok(())
    }

    fn check_pattern_parser(&self, pattern: &str, pos: usize) -> Result<()> {
        let fail = |m: String| Err(self.err(pos, format!("invalid pattern parser: {m}")));
        let nodes = pattern_nodes(pattern);
        let mut names: Vec<&str> = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            if let PatternNode::Capture(c) = n {
                if let Some(PatternNode::Capture(d)) = nodes.get(i + 1) {
                    return fail(format!(
                        "found consecutive capture '<{c}><{d}>': invalid expression"
                    ));
                }
                if c != "_" {
                    if names.contains(&c.as_str()) {
                        return fail(format!("duplicate capture name ({c}): invalid expression"));
                    }
                    names.push(c);
                }
            }
        }
        if names.is_empty() {
            return fail("at least one capture is required".into());
        }
        Ok(())
    }

    // ---- label filters ----

    /// Label filter comparisons joined by `or` (loosest), `and`, `,` or
    /// juxtaposition (both meaning and), with parentheses.
    fn label_filter(&mut self) -> Result<LabelFilter> {
        let mut left = self.label_filter_and()?;
        while self.is_kw("or") {
            self.next();
            let right = self.label_filter_and()?;
            left = LabelFilter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn label_filter_and(&mut self) -> Result<LabelFilter> {
        let mut left = self.label_filter_atom()?;
        loop {
            if self.is_kw("and") || self.is_op(",") {
                self.next();
            } else if !matches!(self.peek().kind, TokenKind::Ident(_) | TokenKind::Op("(")) {
                return Ok(left);
            }
            let right = self.label_filter_atom()?;
            left = LabelFilter::And(Box::new(left), Box::new(right));
        }
    }

    fn label_filter_atom(&mut self) -> Result<LabelFilter> {
        if self.is_op("(") {
            self.next();
            let inner = self.label_filter()?;
            self.expect_op(")")?;
            return Ok(inner);
        }
        let (name, pos) = self.expect_ident()?;
        let op_tok = self.peek().clone();
        let TokenKind::Op(op) = op_tok.kind else {
            return Err(self.unexpected("= or != or =~ or !~ or == or > or >= or < or <="));
        };
        let cmp = match op {
            "=~" | "!~" => {
                self.next();
                let op = if op == "=~" {
                    MatchOp::Re
                } else {
                    MatchOp::Nre
                };
                return Ok(LabelFilter::String(self.matcher_value(name, op, pos)?));
            }
            "=" => CompareOp::Eq,
            "==" => CompareOp::Eq,
            "!=" => CompareOp::Neq,
            ">" => CompareOp::Gt,
            ">=" => CompareOp::Ge,
            "<" => CompareOp::Lt,
            "<=" => CompareOp::Le,
            _ => {
                return Err(self.unexpected("= or != or =~ or !~ or == or > or >= or < or <="));
            }
        };
        self.next();
        let equality = matches!(op, "=" | "!=");
        let v = self.peek().clone();
        match &v.kind {
            TokenKind::Str(_) if equality => {
                let mop = if op == "=" { MatchOp::Eq } else { MatchOp::Neq };
                Ok(LabelFilter::String(self.matcher_value(name, mop, pos)?))
            }
            TokenKind::Function("ip") if equality => Ok(LabelFilter::Ip {
                name,
                negated: op == "!=",
                range: self.ip_call()?,
                pos,
            }),
            TokenKind::Duration(ns) => {
                self.next();
                Ok(LabelFilter::Duration {
                    name,
                    op: cmp,
                    seconds: *ns as f64 / 1e9,
                    pos,
                })
            }
            TokenKind::Bytes(b) => {
                self.next();
                Ok(LabelFilter::Bytes {
                    name,
                    op: cmp,
                    bytes: *b as f64,
                    pos,
                })
            }
            TokenKind::Number(_) | TokenKind::Op("+" | "-") => {
                let negative = self.is_op("-");
                if matches!(v.kind, TokenKind::Op(_)) {
                    self.next();
                }
                let value = self.unsigned_number()?;
                Ok(LabelFilter::Number {
                    name,
                    op: cmp,
                    value: if negative { -value } else { value },
                    pos,
                })
            }
            _ if equality => Err(self.unexpected("STRING or NUMBER or DURATION or BYTES or ip")),
            _ => Err(self.unexpected("NUMBER or DURATION or BYTES")),
        }
    }
}

/// Whether a matcher matches the empty string (Prometheus' "filter"
/// matchers, which cannot select streams on their own).
fn matches_empty(m: &Matcher) -> bool {
    match m.op {
        MatchOp::Eq => m.value.is_empty(),
        MatchOp::Neq => !m.value.is_empty(),
        MatchOp::Re => anchored(&m.value).is_ok_and(|re| re.is_match("")),
        MatchOp::Nre => !anchored(&m.value).is_ok_and(|re| re.is_match("")),
    }
}

fn anchored(re: &str) -> std::result::Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?s:{re})$"))
}

/// A regex error worded as Go's `regexp` package words it (Loki's
/// messages): `missing closing ): `(``; other errors as the regex crate
/// describes them.
fn regex_message(pattern: &str, e: &regex::Error) -> String {
    use regex_syntax::ast::ErrorKind as K;
    if let Err(err) = regex_syntax::ast::parse::Parser::new().parse(pattern) {
        let span = err.span();
        let fragment = pattern
            .get(span.start.offset..span.end.offset)
            .unwrap_or(pattern);
        let go = match err.kind() {
            K::GroupUnclosed => Some(("missing closing )", pattern)),
            K::GroupUnopened => Some(("unexpected )", pattern)),
            K::ClassUnclosed => Some(("missing closing ]", fragment)),
            K::RepetitionMissing => Some(("missing argument to repetition operator", fragment)),
            K::EscapeUnrecognized | K::EscapeUnexpectedEof => {
                Some(("invalid escape sequence", fragment))
            }
            K::RepetitionCountInvalid
            | K::RepetitionCountUnclosed
            | K::RepetitionCountDecimalEmpty => Some(("invalid repeat count", fragment)),
            K::ClassRangeInvalid => Some(("invalid character class range", fragment)),
            K::FlagUnrecognized | K::GroupNameInvalid | K::GroupNameUnexpectedEof => {
                Some(("invalid or unsupported Perl syntax", fragment))
            }
            _ => None,
        };
        if let Some((text, offending)) = go {
            return format!("{text}: `{offending}`");
        }
    }
    let text = e.to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("error: "))
        .map_or_else(|| text.replace('\n', " "), str::to_string)
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[derive(Debug, PartialEq)]
enum PatternNode {
    Literal,
    Capture(String),
}

/// A `pattern` expression split into literals and `<name>` captures.
fn pattern_nodes(pattern: &str) -> Vec<PatternNode> {
    let mut nodes = Vec::new();
    let mut rest = pattern;
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('<') {
            let len = inner
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(inner.len());
            let name = &inner[..len];
            let starts_ok = name
                .chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_');
            if starts_ok && inner[len..].starts_with('>') {
                nodes.push(PatternNode::Capture(name.to_string()));
                rest = &inner[len + 1..];
                continue;
            }
        }
        let c = rest.chars().next().expect("non-empty");
        if nodes.last() != Some(&PatternNode::Literal) {
            nodes.push(PatternNode::Literal);
        }
        rest = &rest[c.len_utf8()..];
    }
    nodes
}

/// An address, an `a-b` range or a CIDR, IPv4 or IPv6.
fn valid_ip_pattern(s: &str) -> bool {
    use std::net::IpAddr;
    let s = s.trim();
    if let Some((addr, bits)) = s.split_once('/') {
        let Ok(addr) = addr.trim().parse::<IpAddr>() else {
            return false;
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        return bits.trim().parse::<u8>().is_ok_and(|b| b <= max);
    }
    if let Some((a, b)) = s.split_once('-') {
        return matches!(
            (a.trim().parse::<IpAddr>(), b.trim().parse::<IpAddr>()),
            (Ok(a), Ok(b)) if a.is_ipv4() == b.is_ipv4()
        );
    }
    s.parse::<IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::logql::format::strip_positions;

    fn log(q: &str) -> LogExpr {
        match parse(q).unwrap() {
            Expr::Log(l) => l,
            e => panic!("not a log query: {e:?}"),
        }
    }

    fn metric(q: &str) -> MetricExpr {
        match strip_positions(&parse(q).unwrap()) {
            Expr::Metric(m) => m,
            e => panic!("not a metric query: {e:?}"),
        }
    }

    fn err(q: &str) -> ParseError {
        parse(q).expect_err(q)
    }

    fn m(name: &str, op: MatchOp, value: &str) -> Matcher {
        Matcher {
            name: name.into(),
            op,
            value: value.into(),
            pos: 0,
        }
    }

    #[test]
    fn selector_with_positions() {
        let l = log(r#"{app="x", env!~"dev|qa"}"#);
        assert_eq!(l.selector[0].pos, 1);
        assert_eq!(l.selector[1].pos, 10);
        assert_eq!(l.selector[1].op, MatchOp::Nre);
        assert!(l.pipeline.is_empty());
    }

    #[test]
    fn line_filters() {
        let l = log(r#"{a="b"} |= "x" or ip("10.0.0.0/8") !~ "y""#);
        assert_eq!(
            l.pipeline,
            vec![
                Stage::LineFilter(LineFilter {
                    op: LineFilterOp::Contains,
                    values: vec![
                        LineFilterValue::Text("x".into()),
                        LineFilterValue::Ip("10.0.0.0/8".into())
                    ],
                    pos: 8,
                }),
                Stage::LineFilter(LineFilter {
                    op: LineFilterOp::NotRegex,
                    values: vec![LineFilterValue::Text("y".into())],
                    pos: 35,
                }),
            ]
        );
    }

    #[test]
    fn parsers_and_formats() {
        let l = strip_positions(&Expr::Log(log(
            r#"{a="b"} | logfmt --keep-empty x, y="z.w" | regexp "(?P<n>.)" | label_format p=q, r="{{.s}}" | drop a, b="c""#,
        )));
        let Expr::Log(l) = l else { unreachable!() };
        assert_eq!(
            l.pipeline[0],
            Stage::Parser(ParserStage::Logfmt {
                strict: false,
                keep_empty: true,
                extractions: vec![
                    LabelExtraction {
                        label: "x".into(),
                        expression: "x".into(),
                        pos: 0
                    },
                    LabelExtraction {
                        label: "y".into(),
                        expression: "z.w".into(),
                        pos: 0
                    },
                ],
            })
        );
        assert!(
            matches!(&l.pipeline[1], Stage::Parser(ParserStage::Regexp { pattern, .. }) if pattern == "(?P<n>.)")
        );
        assert_eq!(
            l.pipeline[2],
            Stage::LabelFormat(vec![
                LabelFormatItem {
                    target: "p".into(),
                    source: LabelFormatSource::Rename("q".into()),
                    pos: 0
                },
                LabelFormatItem {
                    target: "r".into(),
                    source: LabelFormatSource::Template("{{.s}}".into()),
                    pos: 0
                },
            ])
        );
        assert_eq!(
            l.pipeline[3],
            Stage::Drop(vec![
                LabelSelection::Name("a".into()),
                LabelSelection::Matcher(m("b", MatchOp::Eq, "c")),
            ])
        );
    }

    #[test]
    fn label_filter_precedence_and_units() {
        let l = log(r#"{a="b"} | x="1" y > 2 or d >= 1m30s, s < 1KiB"#);
        let Stage::LabelFilter(f) = &l.pipeline[0] else {
            panic!()
        };
        let LabelFilter::Or(left, right) = f else {
            panic!("{f:?}")
        };
        assert!(matches!(**left, LabelFilter::And(..)));
        let LabelFilter::And(d, s) = &**right else {
            panic!("{right:?}")
        };
        assert!(
            matches!(**d, LabelFilter::Duration { seconds, op: CompareOp::Ge, .. } if seconds == 90.0)
        );
        assert!(
            matches!(**s, LabelFilter::Bytes { bytes, op: CompareOp::Lt, pos: 37, .. } if bytes == 1024.0)
        );
    }

    #[test]
    fn range_aggregation_with_unwrap() {
        let e = metric(
            r#"quantile_over_time(0.9, {a="b"} | json | unwrap duration(lat) | __error__="" [5m] offset 1h) by (x)"#,
        );
        let MetricExpr::RangeAggregation {
            op,
            range,
            param,
            grouping,
            ..
        } = e
        else {
            panic!()
        };
        assert_eq!(op, RangeOp::QuantileOverTime);
        assert_eq!(param, Some(0.9));
        assert_eq!(range.range_ns, 300_000_000_000);
        assert_eq!(range.offset_ns, 3_600_000_000_000);
        let u = range.unwrap.unwrap();
        assert_eq!(u.label, "lat");
        assert_eq!(u.conversion, UnwrapConversion::Duration);
        assert_eq!(
            u.post_filters,
            vec![LabelFilter::String(m("__error__", MatchOp::Eq, ""))]
        );
        assert_eq!(
            grouping,
            Some(Grouping {
                without: false,
                labels: vec!["x".into()]
            })
        );
    }

    #[test]
    fn range_after_selector_is_the_same_tree() {
        assert_eq!(
            metric(r#"rate({a="b"}[1m] | json | unwrap x)"#),
            metric(r#"rate({a="b"} | json | unwrap x [1m])"#)
        );
    }

    #[test]
    fn binary_precedence() {
        // 1 + 2 * 3 ^ 2 ^ 2 or vector(1) → (1 + (2 * (3 ^ (2 ^ 2)))) or vector(1)
        let e = metric("1 + 2 * 3 ^ 2 ^ 2 or vector(1)");
        let MetricExpr::Binary { op, lhs, .. } = e else {
            panic!()
        };
        assert_eq!(op, BinaryOp::Or);
        let MetricExpr::Binary { op, rhs, .. } = *lhs else {
            panic!()
        };
        assert_eq!(op, BinaryOp::Add);
        let MetricExpr::Binary { op, rhs, .. } = *rhs else {
            panic!()
        };
        assert_eq!(op, BinaryOp::Mul);
        let MetricExpr::Binary { op, rhs, .. } = *rhs else {
            panic!()
        };
        assert_eq!(op, BinaryOp::Pow);
        assert!(matches!(
            *rhs,
            MetricExpr::Binary {
                op: BinaryOp::Pow,
                ..
            }
        ));
    }

    #[test]
    fn vector_matching_and_aggregations() {
        let e = metric(
            r#"topk by (a) (2, sum(rate({a="b"}[1m])) > bool on (a) group_left (c) sum(rate({a="c"}[1m])))"#,
        );
        let MetricExpr::VectorAggregation {
            op,
            expr,
            param,
            grouping,
            ..
        } = e
        else {
            panic!()
        };
        assert_eq!((op, param), (VectorOp::Topk, Some(2.0)));
        assert_eq!(grouping.unwrap().labels, vec!["a".to_string()]);
        let MetricExpr::Binary {
            return_bool,
            matching,
            ..
        } = *expr
        else {
            panic!()
        };
        assert!(return_bool);
        assert_eq!(
            matching,
            Some(VectorMatching {
                on: true,
                labels: vec!["a".into()],
                group: Some(GroupModifier {
                    left: true,
                    labels: vec!["c".into()]
                }),
            })
        );
    }

    #[test]
    fn error_positions() {
        let e = err(r#"{app="x"} |= "#);
        assert_eq!((e.pos, e.line, e.col), (13, 1, 14));
        assert_eq!(
            e.to_string(),
            "parse error at line 1, col 14: syntax error: unexpected $end, expecting STRING or ip"
        );
        let e = err("sum(\n  rate({a=\"b\"}[5m]) by (x)\n)");
        assert_eq!((e.line, e.col), (2, 21));
        assert_eq!(e.message, "grouping not allowed for rate aggregation");
        let e = err(r#"{é="x", b=~"("}"#);
        assert_eq!((e.pos, e.col), (1, 2));
        let e = err(r#"{a="x", b=~"("}"#);
        assert_eq!((e.pos, e.col), (11, 12));
        assert!(e.message.starts_with("error parsing regexp"));
        let e = err(r#"{a="x"} | json | unwrap x"#);
        assert_eq!(e.message, "syntax error: unexpected unwrap");
        assert_eq!(e.pos, 17);
        let e = err("x");
        assert_eq!(e.message, "syntax error: unexpected IDENTIFIER");
        let e = err("foo(1)");
        assert_eq!(e.message, "unknown function \"foo\"");
        let e = err(r#"{a!="x"}"#);
        assert!(e.message.starts_with("queries require at least one regexp"));
        let e = err(r#"{a="b"} / 2"#);
        assert_eq!(e.pos, 0);
        assert!(e.message.contains("left leg"));
    }
}
