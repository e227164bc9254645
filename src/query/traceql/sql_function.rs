//! TraceQL inside SQL: `traceql(query, start, end [, limit])` for spans
//! queries — one row per matched span `(trace_id, span_id, parent_span_id,
//! name, service, kind, status_code, start_time, duration_ns, spanset)`
//! from at most `limit` traces (default 100), most recent first — and
//! `traceql(query, start, end, step)` for metrics queries — rows
//! `(timestamp, labels, value)`. Arguments are constant expressions; the
//! query runs at execution over the calling session's tables, so the rows
//! join with `spans` and `logs` on `trace_id`.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, Int64Builder, RecordBatch, StringBuilder, TimestampNanosecondBuilder, UInt32Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use futures::FutureExt;
use futures::future::BoxFuture;

use super::TraceqlOptions;
use super::ast::{Query, Root};
use super::metrics::{self, MetricsOptions};
use super::search;
use crate::model::timestamp_ns;
use crate::query::table_function::{
    LazyQuery, QueryTable, SERIES_SCHEMA, WindowedQueryArgs, display_time_ns, series_batch,
};

static SPANS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("trace_id", DataType::Utf8, false),
        Field::new("span_id", DataType::Utf8, false),
        Field::new("parent_span_id", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, false),
        Field::new("service", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("status_code", DataType::Utf8, false),
        Field::new("start_time", timestamp_ns(), false),
        Field::new("duration_ns", DataType::Int64, false),
        Field::new("spanset", DataType::UInt32, false),
    ]))
});

/// `traceql(...)`, registered in every session.
#[derive(Debug, Default)]
pub struct TraceqlFunction {
    pub options: TraceqlOptions,
}

impl TableFunctionImpl for TraceqlFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let args = WindowedQueryArgs::parse(
            "traceql",
            args.exprs(),
            "(query, start, end [, limit]) for spans queries or (query, start, end, step) for metrics queries",
        )?;
        let root = super::parse(&args.query)
            .map_err(|e| DataFusionError::Plan(format!("traceql(): {e}")))?;
        let mode = match &root.query {
            Query::Spans(_) => Mode::Spans {
                limit: args.limit("traceql", 1, 100)?,
            },
            Query::Metrics(_) => Mode::Metrics {
                step: args.step("traceql")?,
            },
        };
        Ok(Arc::new(QueryTable(Arc::new(TraceqlQuery {
            query: args.query,
            root,
            start: args.start,
            end: args.end,
            mode,
            options: self.options.clone(),
        }))))
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Spans { limit: usize },
    Metrics { step: i64 },
}

#[derive(Debug)]
struct TraceqlQuery {
    query: String,
    root: Root,
    start: i64,
    end: i64,
    mode: Mode,
    options: TraceqlOptions,
}

impl LazyQuery for TraceqlQuery {
    fn node_name(&self) -> &'static str {
        "TraceqlExec"
    }

    fn describe(&self) -> String {
        let window = format!(
            "{} to {}",
            display_time_ns(self.start),
            display_time_ns(self.end)
        );
        match self.mode {
            Mode::Spans { limit } => {
                format!("query={:?} spans {window} limit {limit}", self.query)
            }
            Mode::Metrics { step } => format!(
                "query={:?} range {window} step {}ms",
                self.query,
                step / 1_000_000
            ),
        }
    }

    fn schema(&self) -> SchemaRef {
        match self.mode {
            Mode::Spans { .. } => SPANS_SCHEMA.clone(),
            Mode::Metrics { .. } => SERIES_SCHEMA.clone(),
        }
    }

    fn check(&self) -> Result<()> {
        Ok(())
    }

    fn run(&self, ctx: SessionContext) -> BoxFuture<'static, Result<RecordBatch>> {
        let root = self.root.clone();
        let (start, end, mode, options) = (self.start, self.end, self.mode, self.options.clone());
        async move {
            match mode {
                Mode::Spans { limit } => spans_rows(&ctx, &root, start, end, limit, &options).await,
                Mode::Metrics { step } => {
                    let series = metrics::query_range(
                        &ctx,
                        &root,
                        &MetricsOptions {
                            start_ns: start,
                            end_ns: end,
                            step_ns: step,
                            instant: false,
                            exemplars: 0,
                            max_series: options.max_series,
                            max_candidates: options.max_candidates,
                        },
                    )
                    .await
                    .map_err(|e| DataFusionError::Execution(format!("traceql(): {e}")))?;
                    series_batch(series.iter().flat_map(|s| {
                        s.samples.iter().map(|&(t, v)| {
                            let labels = s
                                .labels
                                .iter()
                                .map(|(k, v)| (k.as_str(), v.as_str()))
                                .collect();
                            (t, labels, v)
                        })
                    }))
                }
            }
        }
        .boxed()
    }
}

async fn spans_rows(
    ctx: &SessionContext,
    root: &Root,
    start: i64,
    end: i64,
    limit: usize,
    options: &TraceqlOptions,
) -> Result<RecordBatch> {
    let Query::Spans(expr) = &root.query else {
        unreachable!("spans mode is chosen for spans queries");
    };
    let mut text: [StringBuilder; 7] = Default::default();
    let mut starts = TimestampNanosecondBuilder::new().with_timezone("UTC");
    let mut durations = Int64Builder::new();
    let mut spansets = UInt32Builder::new();
    let mut traces = 0usize;
    search::for_each_match(
        ctx,
        root,
        expr,
        start,
        end,
        options.max_candidates,
        |trace, sets| {
            traces += 1;
            for (n, ss) in sets.iter().enumerate() {
                for &i in &ss.spans {
                    let s = &trace.spans[i];
                    text[0].append_value(&trace.trace_id);
                    text[1].append_value(&s.span_id);
                    text[2].append_option(s.parent_span_id.as_deref());
                    text[3].append_value(&s.name);
                    text[4].append_value(&s.service);
                    text[5].append_value(&s.kind);
                    text[6].append_value(&s.status_code);
                    starts.append_value(s.start_ns);
                    durations.append_value(s.end_ns - s.start_ns);
                    spansets.append_value(n as u32);
                }
            }
            Ok(traces < limit)
        },
    )
    .await
    .map_err(|e| DataFusionError::Execution(format!("traceql(): {e}")))?;
    let mut columns: Vec<ArrayRef> = text
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    columns.push(Arc::new(starts.finish()));
    columns.push(Arc::new(durations.finish()));
    columns.push(Arc::new(spansets.finish()));
    Ok(RecordBatch::try_new(SPANS_SCHEMA.clone(), columns)?)
}
