//! PromQL inside SQL: the table function `promql(query [, time])` (instant)
//! and `promql(query, start, end, step)` (range). Arguments are constant
//! expressions (`now() - interval '1 hour'` works); the query runs over the
//! calling session's tables and its result comes back as rows of
//! `(timestamp, metric, labels, value)` — the `samples` shape — so it joins
//! with `logs` and `spans` like any table.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, Float64Builder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::TableFunctionArgs;
use datafusion::catalog::{Session, TableFunctionImpl, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, ScalarValue, exec_err, plan_err};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
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

use super::value::{Labels, METRIC_NAME};
use super::{QueryOptions, QueryValue, instant_query, range_query};
use crate::model::labels::build_string_map;
use crate::model::{string_map_type, timestamp_ms};

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("timestamp", timestamp_ms(), false),
        Field::new("metric", DataType::Utf8, true),
        Field::new("labels", string_map_type(), false),
        Field::new("value", DataType::Float64, false),
    ]))
});

/// `promql(...)`, registered in every session.
#[derive(Debug, Default)]
pub struct PromqlFunction {
    pub options: QueryOptions,
}

#[derive(Debug, Clone)]
enum Window {
    Instant(i64),
    Range { start: i64, end: i64, step: i64 },
}

impl TableFunctionImpl for PromqlFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let values: Vec<ScalarValue> = args.exprs().iter().map(constant).collect::<Result<_>>()?;
        let query = match values.first() {
            Some(
                ScalarValue::Utf8(Some(q))
                | ScalarValue::LargeUtf8(Some(q))
                | ScalarValue::Utf8View(Some(q)),
            ) => q.clone(),
            _ => {
                return plan_err!(
                    "promql(query, ...) needs the PromQL query text as its first argument"
                );
            }
        };
        let window = match &values[1..] {
            [] => Window::Instant(chrono::Utc::now().timestamp_millis()),
            [t] => Window::Instant(time_ms(t, "time")?),
            [start, end, step] => Window::Range {
                start: time_ms(start, "start")?,
                end: time_ms(end, "end")?,
                step: step_ms(step)?,
            },
            _ => {
                return plan_err!(
                    "promql() takes (query), (query, time) or (query, start, end, step); got {} arguments",
                    values.len()
                );
            }
        };
        Ok(Arc::new(PromqlTable {
            query,
            window,
            options: self.options.clone(),
        }))
    }
}

/// Folds a constant argument (`now() - interval '1 hour'`) to its value.
fn constant(expr: &Expr) -> Result<ScalarValue> {
    let context = SimplifyContext::builder()
        .with_schema(Arc::new(DFSchema::empty()))
        .with_query_execution_start_time(Some(chrono::Utc::now()))
        .build();
    match ExprSimplifier::new(context).simplify(expr.clone())? {
        Expr::Literal(v, _) => Ok(v),
        other => plan_err!("promql() arguments must be constants, got {other}"),
    }
}

fn time_ms(v: &ScalarValue, name: &str) -> Result<i64> {
    let ms = match v {
        ScalarValue::TimestampSecond(Some(t), _) => t * 1000,
        ScalarValue::TimestampMillisecond(Some(t), _) => *t,
        ScalarValue::TimestampMicrosecond(Some(t), _) => t / 1000,
        ScalarValue::TimestampNanosecond(Some(t), _) => t / 1_000_000,
        ScalarValue::Int64(Some(s)) => s * 1000,
        ScalarValue::Float64(Some(s)) => (s * 1000.0).round() as i64,
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => t.timestamp_millis(),
            Err(_) => match s.parse::<f64>() {
                Ok(secs) => (secs * 1000.0).round() as i64,
                Err(_) => {
                    return plan_err!("promql() {name} {s:?} is neither RFC 3339 nor Unix seconds");
                }
            },
        },
        other => {
            return plan_err!(
                "promql() {name} must be a timestamp, Unix seconds or RFC 3339 text, got {other}"
            );
        }
    };
    Ok(ms)
}

fn step_ms(v: &ScalarValue) -> Result<i64> {
    let ms = match v {
        ScalarValue::IntervalMonthDayNano(Some(i)) if i.months == 0 => {
            i.days as i64 * 86_400_000 + i.nanoseconds / 1_000_000
        }
        ScalarValue::IntervalDayTime(Some(i)) => i.days as i64 * 86_400_000 + i.milliseconds as i64,
        ScalarValue::Int64(Some(s)) => s * 1000,
        ScalarValue::Float64(Some(s)) => (s * 1000.0).round() as i64,
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => match promql_parser::util::parse_duration(s) {
            Ok(d) => d.as_millis() as i64,
            Err(_) => match s.parse::<f64>() {
                Ok(secs) => (secs * 1000.0).round() as i64,
                Err(_) => return plan_err!("promql() step {s:?} is not a duration"),
            },
        },
        other => {
            return plan_err!(
                "promql() step must be an interval, seconds or a duration like '15s', got {other}"
            );
        }
    };
    if ms <= 0 {
        return plan_err!("promql() step must be positive, got {ms} ms");
    }
    Ok(ms)
}

/// One PromQL query's result as a table.
#[derive(Debug)]
struct PromqlTable {
    query: String,
    window: Window,
    options: QueryOptions,
}

#[async_trait]
impl TableProvider for PromqlTable {
    fn schema(&self) -> SchemaRef {
        SCHEMA.clone()
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
            return exec_err!("promql() needs a full DataFusion session");
        };
        // Fail at planning time on a query that does not parse.
        super::parse(&self.query).map_err(|e| DataFusionError::Plan(format!("promql(): {e}")))?;
        Ok(Arc::new(PromqlExec::new(
            self.query.clone(),
            self.window.clone(),
            self.options.clone(),
            state.clone(),
            projection.cloned(),
        )?))
    }
}

/// Runs one PromQL query when executed (not when planned) and streams its
/// result rows; `EXPLAIN` shows the query and its time window.
struct PromqlExec {
    query: String,
    window: Window,
    options: QueryOptions,
    session: SessionState,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl std::fmt::Debug for PromqlExec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromqlExec")
            .field("query", &self.query)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl PromqlExec {
    fn new(
        query: String,
        window: Window,
        options: QueryOptions,
        session: SessionState,
        projection: Option<Vec<usize>>,
    ) -> Result<Self> {
        let schema = match &projection {
            Some(p) => Arc::new(SCHEMA.project(p)?),
            None => SCHEMA.clone(),
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Ok(PromqlExec {
            query,
            window,
            options,
            session,
            projection,
            schema,
            properties: Arc::new(properties),
        })
    }
}

impl DisplayAs for PromqlExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let ms = |t: i64| {
            chrono::DateTime::from_timestamp_millis(t)
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_else(|| t.to_string())
        };
        match self.window {
            Window::Instant(t) => {
                write!(f, "PromqlExec: query={:?} instant at {}", self.query, ms(t))
            }
            Window::Range { start, end, step } => write!(
                f,
                "PromqlExec: query={:?} range {} to {} step {}ms",
                self.query,
                ms(start),
                ms(end),
                step
            ),
        }
    }
}

impl ExecutionPlan for PromqlExec {
    fn name(&self) -> &str {
        "PromqlExec"
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
        let (query, window, options) = (
            self.query.clone(),
            self.window.clone(),
            self.options.clone(),
        );
        let projection = self.projection.clone();
        let rows = async move {
            let output = match window {
                Window::Instant(t) => instant_query(&ctx, &query, t, &options).await,
                Window::Range { start, end, step } => {
                    range_query(&ctx, &query, start, end, step, &options).await
                }
            }
            .map_err(|e| DataFusionError::Execution(format!("promql(): {e}")))?;
            let batch = to_batch(output.value)?;
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

fn to_batch(value: QueryValue) -> Result<RecordBatch> {
    let mut rows: Vec<(i64, &Labels, f64)> = Vec::new();
    let empty: Labels = Vec::new();
    let scalar;
    match &value {
        QueryValue::Scalar { timestamp, value } => {
            scalar = (*timestamp, *value);
            rows.push((scalar.0, &empty, scalar.1));
        }
        QueryValue::String { .. } => {
            return exec_err!("promql(): a string result has no rows; query a vector or scalar");
        }
        QueryValue::Vector(samples) => {
            rows.extend(samples.iter().map(|s| (s.timestamp, &s.labels, s.value)))
        }
        QueryValue::Matrix(series) => {
            for s in series {
                rows.extend(s.points.iter().map(|&(t, v)| (t, &s.labels, v)));
            }
        }
    }
    let mut timestamps = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut metrics = StringBuilder::new();
    let mut values = Float64Builder::new();
    let mut other_labels: Vec<Vec<(&str, &str)>> = Vec::with_capacity(rows.len());
    for (t, labels, v) in &rows {
        timestamps.append_value(*t);
        values.append_value(*v);
        metrics.append_option(
            labels
                .iter()
                .find(|(n, _)| n == METRIC_NAME)
                .map(|(_, v)| v.as_str()),
        );
        other_labels.push(
            labels
                .iter()
                .filter(|(n, _)| n != METRIC_NAME)
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect(),
        );
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(timestamps.finish()),
        Arc::new(metrics.finish()),
        Arc::new(build_string_map(
            other_labels.iter().map(|l| l.iter().copied()),
        )),
        Arc::new(values.finish()),
    ];
    Ok(RecordBatch::try_new(SCHEMA.clone(), columns)?)
}
