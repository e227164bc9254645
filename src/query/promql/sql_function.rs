//! PromQL inside SQL: the table function `promql(query [, time])` (instant)
//! and `promql(query, start, end, step [, max_source_resolution])` (range;
//! `'auto'` by default, `'raw'`, `'5m'` or `'1h'` as in Thanos). Arguments are constant
//! expressions (`now() - interval '1 hour'` works); the query runs over the
//! calling session's tables and its result comes back as rows of
//! `(timestamp, metric, labels, value, histogram)` — the `samples` shape
//! (a native histogram result has NaN `value` and the encoded histogram) —
//! so it joins with `logs` and `spans` like any table.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, BinaryBuilder, Float64Builder, RecordBatch, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::TableFunctionArgs;
use datafusion::catalog::{TableFunctionImpl, TableProvider};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use futures::FutureExt;
use futures::future::BoxFuture;

use super::value::{Hist, Labels, METRIC_NAME};
use super::{PromError, QueryOptions, QueryValue, SourceResolution, instant_query, range_query};
use crate::model::labels::build_string_map;
use crate::model::{string_map_type, timestamp_ms};
use crate::query::frontend::QueryFrontend;
use crate::query::frontend::sharding::ShardingLimits;
use crate::query::table_function::{
    LazyQuery, QueryTable, constant, display_time_ns, step_ns, text, time_ns,
};

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("timestamp", timestamp_ms(), false),
        Field::new("metric", DataType::Utf8, true),
        Field::new("labels", string_map_type(), false),
        Field::new("value", DataType::Float64, false),
        Field::new("histogram", DataType::Binary, true),
    ]))
});

/// `promql(...)`, registered in every session. With a frontend (and the
/// session's tenant), range queries are split, cached and queued like
/// `/api/v1/query_range`.
#[derive(Debug, Default)]
pub struct PromqlFunction {
    pub options: QueryOptions,
    pub frontend: Option<(Arc<QueryFrontend>, String)>,
    /// The tenant's query sharding (range queries through the frontend).
    pub sharding: ShardingLimits,
    /// The statement calling `promql()` holds a queue slot already; the
    /// parts of a range query run within it.
    pub within_slot: bool,
}

/// Registers `promql(...)` in a session whose statements each hold a slot
/// of `tenant`'s fair queue (pgwire, Flight SQL): range queries are still
/// split and cached, their parts run within the statement's slot.
pub fn register_within_slot(ctx: &SessionContext, engine: &crate::engine::Engine, tenant: &str) {
    ctx.register_udtf("promql", Arc::new(engine.promql_function(tenant, true)));
}

#[derive(Debug, Clone)]
enum Window {
    Instant(i64),
    Range { start: i64, end: i64, step: i64 },
}

impl TableFunctionImpl for PromqlFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let values: Vec<ScalarValue> = args
            .exprs()
            .iter()
            .map(|e| constant("promql", e))
            .collect::<Result<_>>()?;
        let query = text("promql", values.first())?;
        let ms = |v: &ScalarValue, name: &str| time_ns("promql", v, name).map(|t| t / 1_000_000);
        let mut options = self.options.clone();
        let window = match &values[1..] {
            [] => Window::Instant(chrono::Utc::now().timestamp_millis()),
            [t] => Window::Instant(ms(t, "time")?),
            [start, end, step] => Window::Range {
                start: ms(start, "start")?,
                end: ms(end, "end")?,
                step: (step_ns("promql", step)? / 1_000_000).max(1),
            },
            [start, end, step, resolution] => {
                let resolution = match resolution {
                    ScalarValue::Utf8(Some(t))
                    | ScalarValue::LargeUtf8(Some(t))
                    | ScalarValue::Utf8View(Some(t)) => t.clone(),
                    other => {
                        return plan_err!(
                            "promql(): max_source_resolution must be text such as '5m', not {other}"
                        );
                    }
                };
                options.max_source_resolution =
                    SourceResolution::parse(&resolution).map_err(|e| {
                        DataFusionError::Plan(format!("promql(): max_source_resolution: {e}"))
                    })?;
                Window::Range {
                    start: ms(start, "start")?,
                    end: ms(end, "end")?,
                    step: (step_ns("promql", step)? / 1_000_000).max(1),
                }
            }
            _ => {
                return plan_err!(
                    "promql() takes (query), (query, time) or (query, start, end, step [, max_source_resolution]); got {} arguments",
                    values.len()
                );
            }
        };
        Ok(Arc::new(QueryTable(Arc::new(PromqlQuery {
            query,
            window,
            options,
            frontend: self.frontend.clone(),
            sharding: self.sharding,
            within_slot: self.within_slot,
        }))))
    }
}

/// One PromQL query and its time window.
#[derive(Debug)]
struct PromqlQuery {
    query: String,
    window: Window,
    options: QueryOptions,
    frontend: Option<(Arc<QueryFrontend>, String)>,
    sharding: ShardingLimits,
    within_slot: bool,
}

impl LazyQuery for PromqlQuery {
    fn node_name(&self) -> &'static str {
        "PromqlExec"
    }

    fn describe(&self) -> String {
        let ms = |t: i64| display_time_ns(t.saturating_mul(1_000_000));
        match self.window {
            Window::Instant(t) => format!("query={:?} instant at {}", self.query, ms(t)),
            Window::Range { start, end, step } => {
                let mut text = format!(
                    "query={:?} range {} to {} step {}ms",
                    self.query,
                    ms(start),
                    ms(end),
                    step
                );
                if let Some((frontend, tenant)) = &self.frontend
                    && let Some(sharding) = frontend.describe_sharding(
                        tenant,
                        &self.query,
                        (start, end, step),
                        &self.options,
                        self.sharding,
                    )
                {
                    text.push(' ');
                    text.push_str(&sharding);
                }
                text
            }
        }
    }

    fn schema(&self) -> SchemaRef {
        SCHEMA.clone()
    }

    fn check(&self) -> Result<()> {
        super::parse(&self.query)
            .map(|_| ())
            .map_err(|e| DataFusionError::Plan(format!("promql(): {e}")))
    }

    fn run(&self, ctx: SessionContext) -> BoxFuture<'static, Result<RecordBatch>> {
        let (query, window, options, frontend, sharding, within_slot) = (
            self.query.clone(),
            self.window.clone(),
            self.options.clone(),
            self.frontend.clone(),
            self.sharding,
            self.within_slot,
        );
        async move {
            let output = match (window, frontend) {
                (Window::Instant(t), _) => instant_query(&ctx, &query, t, &options).await,
                (Window::Range { start, end, step }, None) => {
                    range_query(&ctx, &query, start, end, step, &options).await
                }
                (Window::Range { start, end, step }, Some((frontend, tenant))) => {
                    through_frontend(
                        &frontend,
                        &tenant,
                        ctx,
                        &query,
                        (start, end, step),
                        &options,
                        sharding,
                        within_slot,
                    )
                    .await
                }
            }
            .map_err(|e| match e {
                PromError::TooManySeries { limit, fetched } => {
                    DataFusionError::External(Box::new(crate::error::Error::LimitExceeded {
                        limit: "max_fetched_series_per_query",
                        value: fetched as u64,
                        max: limit as u64,
                    }))
                }
                e => DataFusionError::Execution(format!("promql(): {e}")),
            })?;
            to_batch(output.value)
        }
        .boxed()
    }
}

/// A range query split, cached, sharded and queued by the frontend, as over HTTP.
#[allow(clippy::too_many_arguments)]
async fn through_frontend(
    frontend: &QueryFrontend,
    tenant: &str,
    ctx: SessionContext,
    query: &str,
    (start, end, step): (i64, i64, i64),
    options: &QueryOptions,
    sharding: ShardingLimits,
    within_slot: bool,
) -> std::result::Result<super::QueryOutput, PromError> {
    if step <= 0 || end < start {
        // Refused by the evaluator with Prometheus' words.
        return range_query(&ctx, query, start, end, step, options).await;
    }
    let expr = super::parse(query)?;
    Ok(frontend
        .promql_range_query(
            tenant,
            ctx,
            query,
            &expr,
            (start, end, step),
            options,
            sharding,
            within_slot,
        )
        .await?)
}

/// One result row: time, labels, float value, histogram.
type Row<'v> = (i64, &'v Labels, f64, Option<&'v Hist>);

fn to_batch(value: QueryValue) -> Result<RecordBatch> {
    let mut rows: Vec<Row<'_>> = Vec::new();
    let empty = Labels::default();
    let scalar;
    match &value {
        QueryValue::Scalar { timestamp, value } => {
            scalar = (*timestamp, *value);
            rows.push((scalar.0, &empty, scalar.1, None));
        }
        QueryValue::String { .. } => {
            return exec_err!("promql(): a string result has no rows; query a vector or scalar");
        }
        QueryValue::Vector(samples) => rows.extend(
            samples
                .iter()
                .map(|s| (s.timestamp, &s.labels, s.value, s.histogram.as_ref())),
        ),
        QueryValue::Matrix(series) => {
            for s in series {
                rows.extend(s.points.iter().map(|&(t, v)| (t, &s.labels, v, None)));
                rows.extend(
                    s.histograms
                        .iter()
                        .map(|(t, h)| (*t, &s.labels, f64::NAN, Some(h))),
                );
            }
        }
    }
    let mut timestamps = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut metrics = StringBuilder::new();
    let mut values = Float64Builder::new();
    let mut histograms = BinaryBuilder::new();
    let mut encoded = Vec::new();
    let mut other_labels: Vec<Vec<(&str, &str)>> = Vec::with_capacity(rows.len());
    for (t, labels, v, h) in &rows {
        timestamps.append_value(*t);
        values.append_value(*v);
        match h {
            Some(h) => {
                encoded.clear();
                h.encode(&mut encoded);
                histograms.append_value(&encoded);
            }
            None => histograms.append_null(),
        }
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
        Arc::new(histograms.finish()),
    ];
    Ok(RecordBatch::try_new(SCHEMA.clone(), columns)?)
}
