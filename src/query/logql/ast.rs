//! The LogQL syntax tree: what the parser produces and the planner and
//! evaluator consume. A query is either a log query (stream selector plus a
//! pipeline of stages) or a metric query (range aggregations over log
//! ranges, combined by vector aggregations, binary operators and functions).
//!
//! Positions (`pos`) are byte offsets into the query text; they let errors
//! found after parsing (a template that does not compile, an unwrap of a
//! label a stage never produced) point at the construct. Durations are
//! nanoseconds, as log timestamps are.

/// A whole LogQL query.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Log(LogExpr),
    Metric(MetricExpr),
}

/// `{selector} | stage | stage …`
#[derive(Debug, Clone, PartialEq)]
pub struct LogExpr {
    pub selector: Vec<Matcher>,
    pub pipeline: Vec<Stage>,
}

/// One label matcher, in a stream selector, a `drop`/`keep` list or a
/// string label filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    pub pos: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `=~` (anchored, like Prometheus)
    Re,
    /// `!~`
    Nre,
}

/// A pipeline stage, in the order written.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// `|= "a" or "b"`, `!~ "x"`, `|> "<_> error <_>"`, `|= ip("10.0.0.0/8")`.
    LineFilter(LineFilter),
    /// `| json`, `| logfmt`, `| regexp "…"`, `| pattern "…"`, `| unpack`.
    Parser(ParserStage),
    /// `| status >= 400 and method = "GET"`
    LabelFilter(LabelFilter),
    /// `| line_format "{{.msg}}"`
    LineFormat { template: String, pos: usize },
    /// `| label_format dst=src, dst2="{{.a}}-{{.b}}"`
    LabelFormat(Vec<LabelFormatItem>),
    /// `| drop a, b="x"`
    Drop(Vec<LabelSelection>),
    /// `| keep a, b="x"`
    Keep(Vec<LabelSelection>),
    /// `| decolorize`
    Decolorize,
}

/// A line filter with its `or` alternatives: the line passes a positive
/// filter when any alternative matches, and a negative filter when none does.
#[derive(Debug, Clone, PartialEq)]
pub struct LineFilter {
    pub op: LineFilterOp,
    pub values: Vec<LineFilterValue>,
    pub pos: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFilterOp {
    /// `|=`
    Contains,
    /// `!=`
    NotContains,
    /// `|~` (unanchored regex)
    Regex,
    /// `!~`
    NotRegex,
    /// `|>` (pattern)
    Pattern,
    /// `!>`
    NotPattern,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LineFilterValue {
    /// A string (double-quoted with escapes or backtick raw), as unescaped.
    Text(String),
    /// `ip("…")`: the line contains an IP address in the given address,
    /// range or CIDR. Only with `|=` and `!=`.
    Ip(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ParserStage {
    /// `json` or `json a="x.y", b` (an extraction without expression uses
    /// the label name as the expression).
    Json(Vec<LabelExtraction>),
    /// `logfmt [--strict] [--keep-empty] [a="x", b]`
    Logfmt {
        strict: bool,
        keep_empty: bool,
        extractions: Vec<LabelExtraction>,
    },
    /// `regexp "(?P<name>…)"`
    Regexp { pattern: String, pos: usize },
    /// `pattern "<ip> - <_>"`
    Pattern { pattern: String, pos: usize },
    /// `unpack`
    Unpack,
}

/// `label="expression"` in `json`/`logfmt` with parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelExtraction {
    pub label: String,
    pub expression: String,
    pub pos: usize,
}

/// A label filter expression: comparisons combined with `and` (also written
/// `,` or a space) and `or`; `and` binds tighter; parentheses allowed.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelFilter {
    And(Box<LabelFilter>, Box<LabelFilter>),
    Or(Box<LabelFilter>, Box<LabelFilter>),
    /// `name op "string"` with `=`, `!=`, `=~`, `!~`.
    String(Matcher),
    /// `name op 1.5` (`=` and `==` both mean equal).
    Number {
        name: String,
        op: CompareOp,
        value: f64,
        pos: usize,
    },
    /// `name op 250ms`; the value in seconds.
    Duration {
        name: String,
        op: CompareOp,
        seconds: f64,
        pos: usize,
    },
    /// `name op 20MB`; the value in bytes.
    Bytes {
        name: String,
        op: CompareOp,
        bytes: f64,
        pos: usize,
    },
    /// `name = ip("…")` or `name != ip("…")`.
    Ip {
        name: String,
        negated: bool,
        range: String,
        pos: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Neq,
    Gt,
    Ge,
    Lt,
    Le,
}

/// One `label_format` assignment.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelFormatItem {
    pub target: String,
    pub source: LabelFormatSource,
    pub pos: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LabelFormatSource {
    /// `dst=src`: rename (the source label is removed).
    Rename(String),
    /// `dst="{{…}}"`: a template.
    Template(String),
}

/// One entry of a `drop`/`keep` list: a bare name, or a matcher that drops
/// (keeps) the label only when its value matches.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelSelection {
    Name(String),
    Matcher(Matcher),
}

/// A metric query.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricExpr {
    /// `count_over_time({…} | … [5m] offset 1h)`,
    /// `quantile_over_time(0.99, {…} | unwrap latency [1m]) by (x)`.
    RangeAggregation {
        op: RangeOp,
        range: LogRange,
        /// The quantile of `quantile_over_time`.
        param: Option<f64>,
        grouping: Option<Grouping>,
        pos: usize,
    },
    /// `sum by (a) (…)`, `topk(5, …)`, `sort_desc(…)`.
    VectorAggregation {
        op: VectorOp,
        expr: Box<MetricExpr>,
        /// `k` of topk/bottomk.
        param: Option<f64>,
        grouping: Option<Grouping>,
        pos: usize,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<MetricExpr>,
        rhs: Box<MetricExpr>,
        /// `bool` after a comparison operator.
        return_bool: bool,
        matching: Option<VectorMatching>,
        pos: usize,
    },
    /// A number literal (a scalar).
    Number(f64),
    /// `vector(1)`
    Vector(f64),
    /// `label_replace(expr, "dst", "replacement", "src", "regex")`
    LabelReplace {
        expr: Box<MetricExpr>,
        destination: String,
        replacement: String,
        source: String,
        regex: String,
        pos: usize,
    },
    /// `( … )`, kept so that formatting round-trips.
    Paren(Box<MetricExpr>),
}

/// A log range: `{…} | … [5m]` (the range may also follow the selector
/// directly, `{…}[5m] | …`), optionally with `| unwrap` and an offset.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRange {
    pub log: LogExpr,
    pub range_ns: i64,
    pub offset_ns: i64,
    pub unwrap: Option<Unwrap>,
}

/// `| unwrap [duration(|duration_seconds(|bytes(]label[)]` followed by
/// optional label filters applied after the conversion (`| __error__=""`).
#[derive(Debug, Clone, PartialEq)]
pub struct Unwrap {
    pub label: String,
    pub conversion: UnwrapConversion,
    pub post_filters: Vec<LabelFilter>,
    pub pos: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnwrapConversion {
    /// Plain float parsing.
    Number,
    /// `duration(x)` / `duration_seconds(x)`: a Go duration in seconds.
    Duration,
    /// `bytes(x)`: a humanized byte size.
    Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOp {
    CountOverTime,
    Rate,
    RateCounter,
    BytesOverTime,
    BytesRate,
    AbsentOverTime,
    SumOverTime,
    AvgOverTime,
    MinOverTime,
    MaxOverTime,
    StddevOverTime,
    StdvarOverTime,
    QuantileOverTime,
    FirstOverTime,
    LastOverTime,
}

impl RangeOp {
    pub const ALL: [RangeOp; 15] = [
        RangeOp::CountOverTime,
        RangeOp::Rate,
        RangeOp::RateCounter,
        RangeOp::BytesOverTime,
        RangeOp::BytesRate,
        RangeOp::AbsentOverTime,
        RangeOp::SumOverTime,
        RangeOp::AvgOverTime,
        RangeOp::MinOverTime,
        RangeOp::MaxOverTime,
        RangeOp::StddevOverTime,
        RangeOp::StdvarOverTime,
        RangeOp::QuantileOverTime,
        RangeOp::FirstOverTime,
        RangeOp::LastOverTime,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RangeOp::CountOverTime => "count_over_time",
            RangeOp::Rate => "rate",
            RangeOp::RateCounter => "rate_counter",
            RangeOp::BytesOverTime => "bytes_over_time",
            RangeOp::BytesRate => "bytes_rate",
            RangeOp::AbsentOverTime => "absent_over_time",
            RangeOp::SumOverTime => "sum_over_time",
            RangeOp::AvgOverTime => "avg_over_time",
            RangeOp::MinOverTime => "min_over_time",
            RangeOp::MaxOverTime => "max_over_time",
            RangeOp::StddevOverTime => "stddev_over_time",
            RangeOp::StdvarOverTime => "stdvar_over_time",
            RangeOp::QuantileOverTime => "quantile_over_time",
            RangeOp::FirstOverTime => "first_over_time",
            RangeOp::LastOverTime => "last_over_time",
        }
    }

    pub fn from_name(name: &str) -> Option<RangeOp> {
        RangeOp::ALL.into_iter().find(|op| op.name() == name)
    }

    /// Whether the aggregation needs `| unwrap` (`rate` works both ways).
    pub fn requires_unwrap(self) -> bool {
        !matches!(
            self,
            RangeOp::CountOverTime
                | RangeOp::Rate
                | RangeOp::BytesOverTime
                | RangeOp::BytesRate
                | RangeOp::AbsentOverTime
        )
    }

    /// Whether the aggregation may not have `| unwrap`.
    pub fn forbids_unwrap(self) -> bool {
        matches!(
            self,
            RangeOp::CountOverTime | RangeOp::BytesOverTime | RangeOp::BytesRate
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Sort,
    SortDesc,
}

impl VectorOp {
    pub const ALL: [VectorOp; 11] = [
        VectorOp::Sum,
        VectorOp::Avg,
        VectorOp::Min,
        VectorOp::Max,
        VectorOp::Count,
        VectorOp::Stddev,
        VectorOp::Stdvar,
        VectorOp::Topk,
        VectorOp::Bottomk,
        VectorOp::Sort,
        VectorOp::SortDesc,
    ];

    pub fn name(self) -> &'static str {
        match self {
            VectorOp::Sum => "sum",
            VectorOp::Avg => "avg",
            VectorOp::Min => "min",
            VectorOp::Max => "max",
            VectorOp::Count => "count",
            VectorOp::Stddev => "stddev",
            VectorOp::Stdvar => "stdvar",
            VectorOp::Topk => "topk",
            VectorOp::Bottomk => "bottomk",
            VectorOp::Sort => "sort",
            VectorOp::SortDesc => "sort_desc",
        }
    }

    pub fn from_name(name: &str) -> Option<VectorOp> {
        VectorOp::ALL.into_iter().find(|op| op.name() == name)
    }
}

/// `by (a, b)` or `without (a, b)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Grouping {
    pub without: bool,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    Unless,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eq,
    Neq,
    Gt,
    Ge,
    Lt,
    Le,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Unless => "unless",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Pow => "^",
            BinaryOp::Eq => "==",
            BinaryOp::Neq => "!=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq
                | BinaryOp::Neq
                | BinaryOp::Gt
                | BinaryOp::Ge
                | BinaryOp::Lt
                | BinaryOp::Le
        )
    }

    pub fn is_set(self) -> bool {
        matches!(self, BinaryOp::Or | BinaryOp::And | BinaryOp::Unless)
    }
}

/// `on (a) group_left (b)`, `ignoring (a)`, …
#[derive(Debug, Clone, PartialEq)]
pub struct VectorMatching {
    /// `on` (true) or `ignoring` (false).
    pub on: bool,
    pub labels: Vec<String>,
    pub group: Option<GroupModifier>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupModifier {
    /// `group_left` (true) or `group_right` (false).
    pub left: bool,
    pub labels: Vec<String>,
}
