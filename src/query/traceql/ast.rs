//! The TraceQL syntax tree the parser builds and every later stage reads:
//! spanset filters over field expressions, spanset and structural operators
//! between them, pipelines (`by`, `coalesce`, `select`, scalar filters over
//! aggregates) and metrics queries (first-stage `rate()` & co., second-stage
//! `topk`/`bottomk`/filters, arithmetic between wrapped metrics pipelines),
//! with the query hints `with(...)`.

/// A whole query with its hints.
#[derive(Debug, Clone, PartialEq)]
pub struct Root {
    pub query: Query,
    pub hints: Vec<Hint>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// Returns spansets: a pipeline, or spanset operators between them.
    Spans(SpansetExpr),
    /// A metrics query.
    Metrics(MetricsExpr),
}

/// `with(name = value)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Hint {
    pub name: String,
    pub value: Static,
}

/// An expression producing spansets per trace.
#[derive(Debug, Clone, PartialEq)]
pub enum SpansetExpr {
    /// `{ … }`.
    Filter(FieldExpr),
    /// `lhs op rhs`.
    Op(SpansetOp, Box<SpansetExpr>, Box<SpansetExpr>),
    /// `first | stage | …`; a pipeline written in parentheses stays one node.
    Pipeline(Vec<Stage>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    Spanset(SpansetExpr),
    ScalarFilter(ScalarFilter),
    /// `by(expr)`.
    By(FieldExpr),
    Coalesce,
    /// `select(attr, …)`.
    Select(Vec<Attribute>),
}

/// `lhs op rhs` where at least one side holds an aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarFilter {
    pub op: BinaryOp,
    pub lhs: ScalarExpr,
    pub rhs: ScalarExpr,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ScalarExpr {
    Static(Static),
    Aggregate(AggregateOp, Option<Box<FieldExpr>>),
    Binary(BinaryOp, Box<ScalarExpr>, Box<ScalarExpr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateOp {
    Count,
    Avg,
    Max,
    Min,
    Sum,
}

impl AggregateOp {
    pub fn name(self) -> &'static str {
        match self {
            AggregateOp::Count => "count",
            AggregateOp::Avg => "avg",
            AggregateOp::Max => "max",
            AggregateOp::Min => "min",
            AggregateOp::Sum => "sum",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpansetOp {
    And,
    Union,
    Child,
    Parent,
    Descendant,
    Ancestor,
    Sibling,
    NotChild,
    NotParent,
    NotDescendant,
    NotAncestor,
    NotSibling,
    UnionChild,
    UnionParent,
    UnionDescendant,
    UnionAncestor,
    UnionSibling,
}

impl SpansetOp {
    pub fn symbol(self) -> &'static str {
        match self {
            SpansetOp::And => "&&",
            SpansetOp::Union => "||",
            SpansetOp::Child => ">",
            SpansetOp::Parent => "<",
            SpansetOp::Descendant => ">>",
            SpansetOp::Ancestor => "<<",
            SpansetOp::Sibling => "~",
            SpansetOp::NotChild => "!>",
            SpansetOp::NotParent => "!<",
            SpansetOp::NotDescendant => "!>>",
            SpansetOp::NotAncestor => "!<<",
            SpansetOp::NotSibling => "!~",
            SpansetOp::UnionChild => "&>",
            SpansetOp::UnionParent => "&<",
            SpansetOp::UnionDescendant => "&>>",
            SpansetOp::UnionAncestor => "&<<",
            SpansetOp::UnionSibling => "&~",
        }
    }

    /// The operator written as `symbol`, at spanset level.
    pub fn from_symbol(symbol: &str) -> Option<SpansetOp> {
        const ALL: [SpansetOp; 17] = [
            SpansetOp::And,
            SpansetOp::Union,
            SpansetOp::Child,
            SpansetOp::Parent,
            SpansetOp::Descendant,
            SpansetOp::Ancestor,
            SpansetOp::Sibling,
            SpansetOp::NotChild,
            SpansetOp::NotParent,
            SpansetOp::NotDescendant,
            SpansetOp::NotAncestor,
            SpansetOp::NotSibling,
            SpansetOp::UnionChild,
            SpansetOp::UnionParent,
            SpansetOp::UnionDescendant,
            SpansetOp::UnionAncestor,
            SpansetOp::UnionSibling,
        ];
        ALL.into_iter().find(|op| op.symbol() == symbol)
    }

    /// `&&` and `||` bind looser than the structural operators.
    pub fn precedence(self) -> u8 {
        match self {
            SpansetOp::And | SpansetOp::Union => 1,
            _ => 2,
        }
    }
}

/// An expression evaluated per span inside `{ }` (or in `by()`, aggregates).
#[derive(Debug, Clone, PartialEq)]
pub enum FieldExpr {
    Static(Static),
    Attribute(Attribute),
    Binary(BinaryOp, Box<FieldExpr>, Box<FieldExpr>),
    Unary(UnaryOp, Box<FieldExpr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Not,
    /// `x != nil`.
    Exists,
    /// `x = nil`.
    NotExists,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    Regex,
    NotRegex,
    And,
    Or,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Pow => "^",
            BinaryOp::Eq => "=",
            BinaryOp::Neq => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Lte => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Gte => ">=",
            BinaryOp::Regex => "=~",
            BinaryOp::NotRegex => "!~",
            BinaryOp::And => "&&",
            BinaryOp::Or => "||",
        }
    }

    /// Binding strength inside field expressions (higher binds tighter),
    /// as Tempo's grammar orders them: `&& ||` < comparisons < `+ -` <
    /// `* / %` < `^`.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::And | BinaryOp::Or => 1,
            BinaryOp::Eq
            | BinaryOp::Neq
            | BinaryOp::Lt
            | BinaryOp::Lte
            | BinaryOp::Gt
            | BinaryOp::Gte
            | BinaryOp::Regex
            | BinaryOp::NotRegex => 2,
            BinaryOp::Add | BinaryOp::Sub => 3,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => 5,
            BinaryOp::Pow => 6,
        }
    }

    pub fn is_comparison(self) -> bool {
        self.precedence() == 2
    }

    pub fn is_arithmetic(self) -> bool {
        self.precedence() >= 3
    }

    pub fn is_logical(self) -> bool {
        self.precedence() == 1
    }
}

/// A literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Static {
    Nil,
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    /// Nanoseconds.
    Duration(i64),
    Status(Status),
    Kind(Kind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Error,
    Ok,
    Unset,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Error => "error",
            Status::Ok => "ok",
            Status::Unset => "unset",
        }
    }

    /// As stored in `spans.status_code`.
    pub fn from_stored(s: &str) -> Status {
        match s {
            "error" => Status::Error,
            "ok" => Status::Ok,
            _ => Status::Unset,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Unspecified => "unspecified",
            Kind::Internal => "internal",
            Kind::Server => "server",
            Kind::Client => "client",
            Kind::Producer => "producer",
            Kind::Consumer => "consumer",
        }
    }

    /// As stored in `spans.kind`.
    pub fn from_stored(s: &str) -> Kind {
        match s {
            "internal" => Kind::Internal,
            "server" => Kind::Server,
            "client" => Kind::Client,
            "producer" => Kind::Producer,
            "consumer" => Kind::Consumer,
            _ => Kind::Unspecified,
        }
    }
}

/// Where an attribute is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `.name`: the span's attributes, then its resource's.
    None,
    Span,
    Resource,
    Event,
    Link,
    Instrumentation,
}

impl Scope {
    pub fn prefix(self) -> &'static str {
        match self {
            Scope::None => "",
            Scope::Span => "span",
            Scope::Resource => "resource",
            Scope::Event => "event",
            Scope::Link => "link",
            Scope::Instrumentation => "instrumentation",
        }
    }
}

/// Intrinsic fields: properties of every span, trace, event or link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Intrinsic {
    Duration,
    Name,
    Status,
    StatusMessage,
    Kind,
    ChildCount,
    Parent,
    TraceRootName,
    TraceRootService,
    TraceDuration,
    TraceId,
    SpanId,
    ParentId,
    NestedSetLeft,
    NestedSetRight,
    NestedSetParent,
    EventName,
    EventTimeSinceStart,
    LinkTraceId,
    LinkSpanId,
    InstrumentationName,
    InstrumentationVersion,
}

impl Intrinsic {
    /// The canonical spelling (scoped where Tempo only has a scoped form).
    pub fn name(self) -> &'static str {
        match self {
            Intrinsic::Duration => "duration",
            Intrinsic::Name => "name",
            Intrinsic::Status => "status",
            Intrinsic::StatusMessage => "statusMessage",
            Intrinsic::Kind => "kind",
            Intrinsic::ChildCount => "span:childCount",
            Intrinsic::Parent => "parent",
            Intrinsic::TraceRootName => "rootName",
            Intrinsic::TraceRootService => "rootServiceName",
            Intrinsic::TraceDuration => "traceDuration",
            Intrinsic::TraceId => "trace:id",
            Intrinsic::SpanId => "span:id",
            Intrinsic::ParentId => "span:parentID",
            Intrinsic::NestedSetLeft => "nestedSetLeft",
            Intrinsic::NestedSetRight => "nestedSetRight",
            Intrinsic::NestedSetParent => "nestedSetParent",
            Intrinsic::EventName => "event:name",
            Intrinsic::EventTimeSinceStart => "event:timeSinceStart",
            Intrinsic::LinkTraceId => "link:traceID",
            Intrinsic::LinkSpanId => "link:spanID",
            Intrinsic::InstrumentationName => "instrumentation:name",
            Intrinsic::InstrumentationVersion => "instrumentation:version",
        }
    }

    /// Unscoped intrinsic keywords.
    pub fn unscoped(word: &str) -> Option<Intrinsic> {
        Some(match word {
            "duration" => Intrinsic::Duration,
            "name" => Intrinsic::Name,
            "status" => Intrinsic::Status,
            "statusMessage" => Intrinsic::StatusMessage,
            "kind" => Intrinsic::Kind,
            "childCount" => Intrinsic::ChildCount,
            "parent" => Intrinsic::Parent,
            "rootName" => Intrinsic::TraceRootName,
            "rootServiceName" => Intrinsic::TraceRootService,
            "traceDuration" => Intrinsic::TraceDuration,
            "nestedSetLeft" => Intrinsic::NestedSetLeft,
            "nestedSetRight" => Intrinsic::NestedSetRight,
            "nestedSetParent" => Intrinsic::NestedSetParent,
            _ => return None,
        })
    }

    /// `scope:word` intrinsics.
    pub fn scoped(scope: &str, word: &str) -> Option<Intrinsic> {
        Some(match (scope, word) {
            ("trace", "duration") => Intrinsic::TraceDuration,
            ("trace", "rootName") => Intrinsic::TraceRootName,
            ("trace", "rootService") => Intrinsic::TraceRootService,
            ("trace", "id") => Intrinsic::TraceId,
            ("span", "duration") => Intrinsic::Duration,
            ("span", "name") => Intrinsic::Name,
            ("span", "kind") => Intrinsic::Kind,
            ("span", "status") => Intrinsic::Status,
            ("span", "statusMessage") => Intrinsic::StatusMessage,
            ("span", "id") => Intrinsic::SpanId,
            ("span", "parentID") => Intrinsic::ParentId,
            ("span", "childCount") => Intrinsic::ChildCount,
            ("event", "name") => Intrinsic::EventName,
            ("event", "timeSinceStart") => Intrinsic::EventTimeSinceStart,
            ("link", "traceID") => Intrinsic::LinkTraceId,
            ("link", "spanID") => Intrinsic::LinkSpanId,
            ("instrumentation", "name") => Intrinsic::InstrumentationName,
            ("instrumentation", "version") => Intrinsic::InstrumentationVersion,
            _ => return None,
        })
    }

    /// The type its values have.
    pub fn value_type(self) -> ValueType {
        match self {
            Intrinsic::Duration | Intrinsic::TraceDuration | Intrinsic::EventTimeSinceStart => {
                ValueType::Duration
            }
            Intrinsic::Status => ValueType::Status,
            Intrinsic::Kind => ValueType::Kind,
            Intrinsic::ChildCount
            | Intrinsic::NestedSetLeft
            | Intrinsic::NestedSetRight
            | Intrinsic::NestedSetParent => ValueType::Int,
            Intrinsic::Parent => ValueType::Nil,
            _ => ValueType::String,
        }
    }
}

/// An attribute or intrinsic reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attribute {
    Intrinsic(Intrinsic),
    /// `parent.`-prefixed attributes are parsed but not supported.
    Named {
        scope: Scope,
        parent: bool,
        name: String,
    },
}

/// The static type of an expression, as far as it is known before a span
/// is seen (attributes are `Attribute`: any type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Nil,
    Int,
    Float,
    String,
    Bool,
    Duration,
    Status,
    Kind,
    Attribute,
}

impl ValueType {
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            ValueType::Int | ValueType::Float | ValueType::Duration | ValueType::Attribute
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            ValueType::Nil => "nil",
            ValueType::Int => "int",
            ValueType::Float => "float",
            ValueType::String => "string",
            ValueType::Bool => "boolean",
            ValueType::Duration => "duration",
            ValueType::Status => "status",
            ValueType::Kind => "kind",
            ValueType::Attribute => "attribute",
        }
    }
}

/// A metrics query: pipelines feeding a first-stage aggregation, then
/// second stages, or arithmetic between such wrapped queries.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricsExpr {
    Pipeline {
        spans: SpansetExpr,
        aggregate: MetricsAggregate,
        second: Vec<SecondStage>,
    },
    Binary(BinaryOp, Box<MetricsExpr>, Box<MetricsExpr>),
    Scalar(f64),
    /// A metrics expression followed by second stages (`(a) / (b) | topk(3)`).
    Staged(Box<MetricsExpr>, Vec<SecondStage>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricsAggregate {
    pub op: MetricsOp,
    pub attribute: Option<Attribute>,
    /// `quantile_over_time` quantiles.
    pub quantiles: Vec<f64>,
    pub by: Vec<Attribute>,
    /// `compare({filter}, topN, start, end)`.
    pub compare: Option<(Box<FieldExpr>, i64, i64, i64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsOp {
    Rate,
    CountOverTime,
    MinOverTime,
    MaxOverTime,
    AvgOverTime,
    SumOverTime,
    QuantileOverTime,
    HistogramOverTime,
    Compare,
}

impl MetricsOp {
    pub fn name(self) -> &'static str {
        match self {
            MetricsOp::Rate => "rate",
            MetricsOp::CountOverTime => "count_over_time",
            MetricsOp::MinOverTime => "min_over_time",
            MetricsOp::MaxOverTime => "max_over_time",
            MetricsOp::AvgOverTime => "avg_over_time",
            MetricsOp::SumOverTime => "sum_over_time",
            MetricsOp::QuantileOverTime => "quantile_over_time",
            MetricsOp::HistogramOverTime => "histogram_over_time",
            MetricsOp::Compare => "compare",
        }
    }

    pub fn from_name(name: &str) -> Option<MetricsOp> {
        Some(match name {
            "rate" => MetricsOp::Rate,
            "count_over_time" => MetricsOp::CountOverTime,
            "min_over_time" => MetricsOp::MinOverTime,
            "max_over_time" => MetricsOp::MaxOverTime,
            "avg_over_time" => MetricsOp::AvgOverTime,
            "sum_over_time" => MetricsOp::SumOverTime,
            "quantile_over_time" => MetricsOp::QuantileOverTime,
            "histogram_over_time" => MetricsOp::HistogramOverTime,
            "compare" => MetricsOp::Compare,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SecondStage {
    TopK(i64),
    BottomK(i64),
    /// `> 10` applied to every sample.
    Filter(BinaryOp, f64),
}
