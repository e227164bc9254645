//! LogQL inside SQL: the table function `logql(query, start, end [, limit])`
//! for log queries — rows `(timestamp, labels, line)`, newest first, at most
//! `limit` (default 100) — and `logql(query, start, end [, step])` for
//! metric queries — rows `(timestamp, labels, value)`. Arguments are
//! constant expressions; the query runs at execution over the calling
//! session's tables, so the result joins with `logs`, `samples`, `spans`.

use std::sync::{Arc, LazyLock};

use arrow::array::{ArrayRef, RecordBatch, StringBuilder, TimestampNanosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::TableFunctionArgs;
use datafusion::catalog::{TableFunctionImpl, TableProvider};
use datafusion::common::exec_err;
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use futures::FutureExt;
use futures::future::BoxFuture;

use super::{Direction, LogqlOptions, LogqlValue, ast};
use crate::model::labels::build_string_map;
use crate::model::{string_map_type, timestamp_ns};
use crate::query::promql::{Labels, QueryValue};
use crate::query::table_function::{
    LazyQuery, QueryTable, SERIES_SCHEMA, WindowedQueryArgs, display_time_ns, series_batch,
};

static LOG_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("timestamp", timestamp_ns(), false),
        Field::new("labels", string_map_type(), false),
        Field::new("line", DataType::Utf8, false),
    ]))
});

/// `logql(...)`, registered in every session.
#[derive(Debug, Default)]
pub struct LogqlFunction {
    pub options: LogqlOptions,
}

impl TableFunctionImpl for LogqlFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let args = WindowedQueryArgs::parse(
            "logql",
            args.exprs(),
            "(query, start, end [, limit]) for log queries or (query, start, end [, step]) for metric queries",
        )?;
        let expr = super::parse(&args.query)
            .map_err(|e| DataFusionError::Plan(format!("logql(): {e}")))?;
        let mode = match &expr {
            ast::Expr::Log(_) => Mode::Log {
                limit: args.limit("logql", 0, 100)?,
            },
            ast::Expr::Metric(_) => Mode::Metric {
                step: args.step("logql")?,
            },
        };
        Ok(Arc::new(QueryTable(Arc::new(LogqlQuery {
            query: args.query,
            expr,
            start: args.start,
            end: args.end,
            mode,
            options: self.options.clone(),
        }))))
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Log { limit: usize },
    Metric { step: i64 },
}

#[derive(Debug)]
struct LogqlQuery {
    query: String,
    expr: ast::Expr,
    start: i64,
    end: i64,
    mode: Mode,
    options: LogqlOptions,
}

impl LazyQuery for LogqlQuery {
    fn node_name(&self) -> &'static str {
        "LogqlExec"
    }

    fn describe(&self) -> String {
        let window = format!(
            "{} to {}",
            display_time_ns(self.start),
            display_time_ns(self.end)
        );
        match self.mode {
            Mode::Log { limit } => format!("query={:?} logs {window} limit {limit}", self.query),
            Mode::Metric { step } => format!(
                "query={:?} range {window} step {}ms",
                self.query,
                step / 1_000_000
            ),
        }
    }

    fn schema(&self) -> SchemaRef {
        match self.mode {
            Mode::Log { .. } => LOG_SCHEMA.clone(),
            Mode::Metric { .. } => SERIES_SCHEMA.clone(),
        }
    }

    fn check(&self) -> Result<()> {
        Ok(())
    }

    fn run(&self, ctx: SessionContext) -> BoxFuture<'static, Result<RecordBatch>> {
        let query = self.query.clone();
        let expr = self.expr.clone();
        let (start, end, mode, options) = (self.start, self.end, self.mode, self.options.clone());
        async move {
            let (step, limit) = match mode {
                Mode::Log { limit } => (1, limit),
                Mode::Metric { step } => (step, 0),
            };
            let value = super::query_range(
                &ctx,
                &query,
                &expr,
                &super::RangeRequest {
                    start_ns: start,
                    end_ns: end,
                    step_ns: step,
                    limit,
                    direction: Direction::Backward,
                    interval_ns: 0,
                },
                &options,
            )
            .await
            .map_err(|e| DataFusionError::Execution(format!("logql(): {e}")))?;
            match value {
                LogqlValue::Streams(streams) => {
                    let mut rows: Vec<(i64, &Labels, &str)> = streams
                        .iter()
                        .flat_map(|s| {
                            s.entries
                                .iter()
                                .map(|e| (e.timestamp_ns, &s.labels, e.line.as_str()))
                        })
                        .collect();
                    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
                    let mut timestamps = TimestampNanosecondBuilder::new().with_timezone("UTC");
                    let mut lines = StringBuilder::new();
                    for (t, _, line) in &rows {
                        timestamps.append_value(*t);
                        lines.append_value(line);
                    }
                    let columns: Vec<ArrayRef> = vec![
                        Arc::new(timestamps.finish()),
                        Arc::new(label_maps(rows.iter().map(|r| r.1))),
                        Arc::new(lines.finish()),
                    ];
                    Ok(RecordBatch::try_new(LOG_SCHEMA.clone(), columns)?)
                }
                LogqlValue::Metric(QueryValue::Matrix(series)) => {
                    series_batch(series.iter().flat_map(|s| {
                        s.points.iter().map(|&(t, v)| {
                            let labels = s
                                .labels
                                .iter()
                                .map(|(k, v)| (k.as_str(), v.as_str()))
                                .collect();
                            (t, labels, v)
                        })
                    }))
                }
                LogqlValue::Metric(other) => {
                    exec_err!("logql(): unexpected {} result", other.result_type())
                }
            }
        }
        .boxed()
    }
}

fn label_maps<'a>(rows: impl Iterator<Item = &'a Labels>) -> arrow::array::MapArray {
    let rows: Vec<Vec<(&str, &str)>> = rows
        .map(|l| l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
        .collect();
    build_string_map(rows.iter().map(|l| l.iter().copied()))
}
