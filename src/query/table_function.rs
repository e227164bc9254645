//! What the query-language table functions of SQL (`promql(...)`,
//! `logql(...)`, `traceql(...)`) share: constant arguments folded to values, time and step
//! arguments read in every form a user writes them, and [`QueryTable`] /
//! [`QueryExec`] — a table whose single partition runs the query when the
//! plan executes (not when it is planned) and streams the result batch;
//! `EXPLAIN` shows the node with the query and its window.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, ScalarValue, exec_err, plan_err};
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::execution::context::SessionState;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, Partitioning, PlanProperties};
use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;

/// Folds a constant argument (`now() - interval '1 hour'`) to its value.
pub fn constant(function: &str, expr: &Expr) -> Result<ScalarValue> {
    let context = SimplifyContext::builder()
        .with_schema(Arc::new(DFSchema::empty()))
        .with_query_execution_start_time(Some(chrono::Utc::now()))
        .build();
    match ExprSimplifier::new(context).simplify(expr.clone())? {
        Expr::Literal(v, _) => Ok(v),
        other => plan_err!("{function}() arguments must be constants, got {other}"),
    }
}

/// The query text argument.
pub fn text(function: &str, value: Option<&ScalarValue>) -> Result<String> {
    match value {
        Some(
            ScalarValue::Utf8(Some(q))
            | ScalarValue::LargeUtf8(Some(q))
            | ScalarValue::Utf8View(Some(q)),
        ) => Ok(q.clone()),
        _ => plan_err!("{function}(query, ...) needs the query text as its first argument"),
    }
}

/// A time argument in nanoseconds: a timestamp, Unix seconds (integer or
/// float) or RFC 3339 text.
pub fn time_ns(function: &str, v: &ScalarValue, name: &str) -> Result<i64> {
    let ns = match v {
        ScalarValue::TimestampSecond(Some(t), _) => t.saturating_mul(1_000_000_000),
        ScalarValue::TimestampMillisecond(Some(t), _) => t.saturating_mul(1_000_000),
        ScalarValue::TimestampMicrosecond(Some(t), _) => t.saturating_mul(1000),
        ScalarValue::TimestampNanosecond(Some(t), _) => *t,
        ScalarValue::Int64(Some(s)) => s.saturating_mul(1_000_000_000),
        ScalarValue::Float64(Some(s)) => (s * 1e9).round() as i64,
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => t.timestamp_nanos_opt().unwrap_or(i64::MAX),
            Err(_) => match s.parse::<f64>() {
                Ok(secs) => (secs * 1e9).round() as i64,
                Err(_) => {
                    return plan_err!(
                        "{function}() {name} {s:?} is neither RFC 3339 nor Unix seconds"
                    );
                }
            },
        },
        other => {
            return plan_err!(
                "{function}() {name} must be a timestamp, Unix seconds or RFC 3339 text, got {other}"
            );
        }
    };
    Ok(ns)
}

/// `(query, start, end [, extra])` of a query-language table function:
/// start and end in nanoseconds (end not before start) and the optional
/// fourth argument; `usage` names the accepted forms in the error.
pub fn window_args<'a>(
    function: &str,
    values: &'a [ScalarValue],
    usage: &str,
) -> Result<(i64, i64, Option<&'a ScalarValue>)> {
    let (start, end, extra) = match values.get(1..).unwrap_or_default() {
        [start, end] => (start, end, None),
        [start, end, extra] => (start, end, Some(extra)),
        _ => {
            return plan_err!("{function}() takes {usage}; got {} arguments", values.len());
        }
    };
    let start = time_ns(function, start, "start")?;
    let end = time_ns(function, end, "end")?;
    if end < start {
        return plan_err!("{function}() end is before start");
    }
    Ok((start, end, extra))
}

/// The arguments of a `name(query, start, end [, extra])` table function,
/// folded to values: the query text, the window in nanoseconds and the
/// optional fourth argument (a limit or a step, by the kind of query).
pub struct WindowedQueryArgs {
    pub query: String,
    pub start: i64,
    pub end: i64,
    pub extra: Option<ScalarValue>,
}

impl WindowedQueryArgs {
    /// Folds and checks `exprs`; `usage` names the accepted forms.
    pub fn parse(function: &str, exprs: &[Expr], usage: &str) -> Result<Self> {
        let values: Vec<ScalarValue> = exprs
            .iter()
            .map(|e| constant(function, e))
            .collect::<Result<_>>()?;
        let query = text(function, values.first())?;
        let (start, end, extra) = window_args(function, &values, usage)?;
        Ok(WindowedQueryArgs {
            query,
            start,
            end,
            extra: extra.cloned(),
        })
    }

    /// The extra argument as a row limit of at least `min` (`default` when absent).
    pub fn limit(&self, function: &str, min: i64, default: usize) -> Result<usize> {
        match &self.extra {
            None => Ok(default),
            Some(ScalarValue::Int64(Some(n))) if *n >= min => Ok(*n as usize),
            Some(other) => {
                let kind = if min > 0 { "positive" } else { "non-negative" };
                plan_err!("{function}() limit must be a {kind} integer, got {other}")
            }
        }
    }

    /// The extra argument as a step (about 250 points when absent).
    pub fn step(&self, function: &str) -> Result<i64> {
        match &self.extra {
            Some(v) => step_ns(function, v),
            None => Ok(default_step_ns(self.start, self.end)),
        }
    }
}

/// The step of a range query when none is given: about 250 points, at
/// least one second.
pub fn default_step_ns(start_ns: i64, end_ns: i64) -> i64 {
    (((end_ns - start_ns) as f64 / 1e9 / 250.0).floor().max(1.0) * 1e9) as i64
}

/// `(timestamp, labels, value)`: what metric queries answer in SQL.
pub static SERIES_SCHEMA: std::sync::LazyLock<SchemaRef> = std::sync::LazyLock::new(|| {
    Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("timestamp", crate::model::timestamp_ms(), false),
        arrow::datatypes::Field::new("labels", crate::model::string_map_type(), false),
        arrow::datatypes::Field::new("value", arrow::datatypes::DataType::Float64, false),
    ]))
});

/// One [`SERIES_SCHEMA`] batch from `(timestamp ms, labels, value)` rows.
pub fn series_batch<'a>(
    rows: impl Iterator<Item = (i64, Vec<(&'a str, &'a str)>, f64)>,
) -> Result<RecordBatch> {
    let mut timestamps = arrow::array::TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut values = arrow::array::Float64Builder::new();
    let mut labels = Vec::new();
    for (t, l, v) in rows {
        timestamps.append_value(t);
        values.append_value(v);
        labels.push(l);
    }
    let columns: Vec<arrow::array::ArrayRef> = vec![
        Arc::new(timestamps.finish()),
        Arc::new(crate::model::labels::build_string_map(
            labels.iter().map(|l| l.iter().copied()),
        )),
        Arc::new(values.finish()),
    ];
    Ok(RecordBatch::try_new(SERIES_SCHEMA.clone(), columns)?)
}

/// A step argument in nanoseconds: an interval, seconds, or a duration
/// text like `'15s'`; positive.
pub fn step_ns(function: &str, v: &ScalarValue) -> Result<i64> {
    let ns = match v {
        ScalarValue::IntervalMonthDayNano(Some(i)) if i.months == 0 => {
            i.days as i64 * 86_400_000_000_000 + i.nanoseconds
        }
        ScalarValue::IntervalDayTime(Some(i)) => {
            (i.days as i64 * 86_400_000 + i.milliseconds as i64) * 1_000_000
        }
        ScalarValue::Int64(Some(s)) => s.saturating_mul(1_000_000_000),
        ScalarValue::Float64(Some(s)) => (s * 1e9).round() as i64,
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => match promql_parser::util::parse_duration(s) {
            Ok(d) => d.as_nanos() as i64,
            Err(_) => match s.parse::<f64>() {
                Ok(secs) => (secs * 1e9).round() as i64,
                Err(_) => return plan_err!("{function}() step {s:?} is not a duration"),
            },
        },
        other => {
            return plan_err!(
                "{function}() step must be an interval, seconds or a duration like '15s', got {other}"
            );
        }
    };
    if ns <= 0 {
        return plan_err!("{function}() step must be positive, got {ns} ns");
    }
    Ok(ns)
}

/// A query that runs over a session and answers one record batch.
pub trait LazyQuery: std::fmt::Debug + Send + Sync + 'static {
    /// The plan node's name (`PromqlExec`).
    fn node_name(&self) -> &'static str;
    /// What `EXPLAIN` prints after the name.
    fn describe(&self) -> String;
    fn schema(&self) -> SchemaRef;
    /// Fails at planning time on a query that does not parse.
    fn check(&self) -> Result<()>;
    fn run(&self, ctx: SessionContext) -> BoxFuture<'static, Result<RecordBatch>>;
}

/// A query's result as a table.
#[derive(Debug)]
pub struct QueryTable<Q: LazyQuery>(pub Arc<Q>);

#[async_trait]
impl<Q: LazyQuery> TableProvider for QueryTable<Q> {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(state) = state.as_any().downcast_ref::<SessionState>() else {
            return exec_err!("{} needs a full DataFusion session", self.0.node_name());
        };
        self.0.check()?;
        Ok(Arc::new(QueryExec::new(
            self.0.clone(),
            state.clone(),
            projection.cloned(),
        )?))
    }
}

/// Runs the query when executed and streams its result.
pub struct QueryExec<Q: LazyQuery> {
    query: Arc<Q>,
    session: SessionState,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl<Q: LazyQuery> std::fmt::Debug for QueryExec<Q> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(self.query.node_name())
            .field("query", &self.query)
            .finish_non_exhaustive()
    }
}

impl<Q: LazyQuery> QueryExec<Q> {
    fn new(query: Arc<Q>, session: SessionState, projection: Option<Vec<usize>>) -> Result<Self> {
        let full = query.schema();
        let schema = match &projection {
            Some(p) => Arc::new(full.project(p)?),
            None => full,
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Ok(QueryExec {
            query,
            session,
            projection,
            schema,
            properties: Arc::new(properties),
        })
    }
}

impl<Q: LazyQuery> DisplayAs for QueryExec<Q> {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}: {}", self.query.node_name(), self.query.describe())
    }
}

impl<Q: LazyQuery> ExecutionPlan for QueryExec<Q> {
    fn name(&self) -> &str {
        self.query.node_name()
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let ctx = SessionContext::new_with_state(self.session.clone());
        let run = self.query.run(ctx);
        let projection = self.projection.clone();
        let rows = async move {
            let batch = run.await?;
            Ok(match projection {
                Some(p) => batch.project(&p)?,
                None => batch,
            })
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::once(rows),
        )))
    }
}

/// RFC 3339 with milliseconds, for `EXPLAIN` texts.
pub fn display_time_ns(t: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
