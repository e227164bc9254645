//! A query language's fetch — `SELECT columns FROM table WHERE filter
//! [ORDER BY keys]` — planned straight into a physical plan: the table
//! provider's scan with the filter's conjuncts pushed down (so blocks, row
//! groups and rows are pruned exactly as for SQL), a `FilterExec` that
//! re-checks the conjuncts the provider does not answer exactly, an optional sort and the projection, then the
//! session's physical optimizer rules (byte-range partitions, coalesced
//! batches, a sort's merge). It is the plan DataFusion's SQL planner
//! reaches for that statement, without running the logical optimizer and
//! the physical planner over a plan whose shape is known: their cost was
//! most of a short, pruned query's time (a LogQL needle search).

use std::sync::Arc;

use arrow::compute::SortOptions;
use datafusion::common::{DFSchema, Result};
use datafusion::execution::SessionState;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, col, lit};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::{LexOrdering, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::filter::FilterExecBuilder;
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream, execute_stream};
use datafusion::prelude::SessionContext;

/// The rows of `table` that `filter` passes, as the `columns` expressions
/// (each named by its alias, or its column name), in storage order or by
/// the `order` keys (column, ascending when true; NULLs last).
pub async fn filtered_scan(
    ctx: &SessionContext,
    table: &str,
    filter: Expr,
    columns: &[Expr],
    order: &[(&str, bool)],
) -> Result<SendableRecordBatchStream> {
    let provider = ctx.table_provider(table).await?;
    let schema = provider.schema();
    let state = ctx.state();
    // The provider turns its filters into predicates of its own, as it
    // would from an optimized logical plan: they are simplified first.
    let filter = simplified(&state, filter, &DFSchema::try_from(schema.clone())?)?;
    let conjuncts = split_conjunction_owned(filter);
    // Conjuncts the provider answers exactly are not checked again, and
    // their columns are read only if the output needs them.
    let exact = provider.supports_filters_pushdown(&conjuncts.iter().collect::<Vec<_>>())?;
    let recheck: Vec<Expr> = conjuncts
        .iter()
        .zip(&exact)
        .filter(|(_, how)| **how != TableProviderFilterPushDown::Exact)
        .map(|(f, _)| f.clone())
        .collect();
    let recheck = conjunction(recheck).unwrap_or(lit(true));
    let mut read: Vec<usize> = Vec::new();
    let referenced = columns
        .iter()
        .chain(std::iter::once(&recheck))
        .flat_map(|e| e.column_refs())
        .map(|c| c.name.clone())
        .chain(order.iter().map(|(name, _)| name.to_string()));
    for name in referenced {
        let i = schema.index_of(&name)?;
        if !read.contains(&i) {
            read.push(i);
        }
    }
    read.sort_unstable();
    let scan = provider.scan(&state, Some(&read), &conjuncts, None).await?;
    plan_over(&state, scan, recheck, Output::Exprs(columns), order)
}

/// What a plan built by [`finish`] yields.
pub enum Output<'a> {
    /// The scan's first `n` columns, as they are.
    Leading(usize),
    /// Expressions over the scan's columns.
    Exprs(&'a [Expr]),
}

/// `scan` with the rows `filter` passes, sorted by the `order` keys if any
/// (columns of the scan; for [`Output::Leading`] leading ones),
/// projected to `output`, through the session's physical optimizer rules,
/// executing.
pub fn finish(
    state: &SessionState,
    scan: Arc<dyn ExecutionPlan>,
    filter: Expr,
    output: Output<'_>,
    order: &[(&str, bool)],
) -> Result<SendableRecordBatchStream> {
    let filter = simplified(state, filter, &DFSchema::try_from(scan.schema())?)?;
    plan_over(state, scan, filter, output, order)
}

/// [`finish`] for a `filter` already coerced and simplified.
fn plan_over(
    state: &SessionState,
    scan: Arc<dyn ExecutionPlan>,
    filter: Expr,
    output: Output<'_>,
    order: &[(&str, bool)],
) -> Result<SendableRecordBatchStream> {
    let scanned = DFSchema::try_from(scan.schema())?;
    let mut plan: Arc<dyn ExecutionPlan> = match output {
        // Nothing left to check (the provider answered every conjunct).
        Output::Exprs(_) if filter == lit(true) => scan,
        Output::Leading(n) => {
            let predicate = state.create_physical_expr(filter, &scanned)?;
            let filtered = FilterExecBuilder::new(predicate, scan);
            Arc::new(filtered.apply_projection(Some((0..n).collect()))?.build()?)
        }
        Output::Exprs(_) => {
            let predicate = state.create_physical_expr(filter, &scanned)?;
            Arc::new(FilterExecBuilder::new(predicate, scan).build()?)
        }
    };
    if !order.is_empty() {
        let sorted = DFSchema::try_from(plan.schema())?;
        let keys = order
            .iter()
            .map(|(column, ascending)| {
                let options = SortOptions {
                    descending: !ascending,
                    nulls_first: false,
                };
                Ok(PhysicalSortExpr::new(
                    physical(state, col(*column), &sorted)?,
                    options,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let ordering = LexOrdering::new(keys).expect("at least one sort key");
        plan = Arc::new(SortExec::new(ordering, plan));
    }
    if let Output::Exprs(exprs) = output {
        let projection = exprs
            .iter()
            .map(|e| projected(state, e.clone(), &scanned))
            .collect::<Result<Vec<_>>>()?;
        plan = Arc::new(ProjectionExec::try_new(projection, plan)?);
    }
    for rule in state.physical_optimizers() {
        plan = rule.optimize(plan, state.config_options())?;
    }
    execute_stream(plan, state.task_ctx())
}

/// One output column: `expr` (an alias names it; it is then unwrapped)
/// over the scanned columns.
fn projected(state: &SessionState, expr: Expr, scanned: &DFSchema) -> Result<ProjectionExpr> {
    let (expr, alias) = match expr {
        Expr::Alias(a) => (*a.expr, a.name),
        other => {
            let name = other.schema_name().to_string();
            (other, name)
        }
    };
    Ok(ProjectionExpr {
        expr: physical(state, expr, scanned)?,
        alias,
    })
}

/// `expr` over `schema` as the logical optimizer would leave it — types
/// coerced, then simplified (some functions, `coalesce` among them, have
/// no physical form until rewritten) — made physical.
fn physical(state: &SessionState, expr: Expr, schema: &DFSchema) -> Result<Arc<dyn PhysicalExpr>> {
    state.create_physical_expr(simplified(state, expr, schema)?, schema)
}

/// `expr` over `schema` with its types coerced, then simplified.
fn simplified(state: &SessionState, expr: Expr, schema: &DFSchema) -> Result<Expr> {
    let context = SimplifyContext::builder()
        .with_schema(Arc::new(schema.clone()))
        .with_config_options(Arc::clone(state.config_options()))
        .with_query_execution_start_time(state.execution_props().query_execution_start_time)
        .build();
    let simplifier = ExprSimplifier::new(context);
    simplifier.simplify(simplifier.coerce(expr, schema)?)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::functions::expr_fn::octet_length;
    use datafusion::logical_expr::lit;
    use futures::TryStreamExt;

    use super::*;

    /// Two partitions of (t, line) rows, registered as `t`.
    fn context() -> SessionContext {
        let schema = Arc::new(Schema::new(vec![
            Field::new("t", DataType::Int64, false),
            Field::new("line", DataType::Utf8, true),
        ]));
        let batch = |t: Vec<i64>, line: Vec<Option<&str>>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(t)),
                    Arc::new(StringArray::from(line)),
                ],
            )
            .unwrap()
        };
        let partitions = vec![
            vec![batch(vec![5, 1, 9], vec![Some("a b"), Some("b"), None])],
            vec![batch(vec![3, 7], vec![Some("bb c"), Some("a b")])],
        ];
        let ctx = SessionContext::new();
        let table = MemTable::try_new(schema.clone(), partitions).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        ctx
    }

    async fn rows(stream: SendableRecordBatchStream) -> String {
        let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    }

    #[tokio::test]
    async fn answers_as_the_sql_statement_does() {
        let ctx = context();
        // `coalesce` has no physical form until simplified into a CASE.
        let filter = datafusion::functions::expr_fn::contains(
            datafusion::functions::core::expr_fn::coalesce(vec![col("line"), lit("")]),
            lit("b"),
        )
        .and(col("t").gt(lit(1i64)));
        let columns = [col("t"), octet_length(col("line")).alias("bytes")];
        let orders: [(&[(&str, bool)], &str); 3] = [
            (&[("t", true)], "t ASC"),
            (&[("t", false)], "t DESC"),
            (&[("line", false), ("t", true)], "line DESC, t ASC"),
        ];
        for (order, sql_order) in orders {
            let planned = filtered_scan(&ctx, "t", filter.clone(), &columns, order)
                .await
                .unwrap();
            let sql = ctx
                .sql(&format!(
                    "SELECT t, octet_length(line) AS bytes FROM t \
                     WHERE contains(coalesce(line, ''), 'b') AND t > 1 ORDER BY {sql_order}"
                ))
                .await
                .unwrap()
                .execute_stream()
                .await
                .unwrap();
            let planned = rows(planned).await;
            assert_eq!(planned, rows(sql).await);
            assert_eq!(planned.lines().count(), 7, "{planned}");
        }
    }

    #[tokio::test]
    async fn leading_columns_are_the_scans_own() {
        let ctx = context();
        let state = ctx.state();
        let provider = ctx.table_provider("t").await.unwrap();
        let scan = provider
            .scan(&state, Some(&vec![0, 1]), &[], None)
            .await
            .unwrap();
        let stream = finish(&state, scan, col("line").is_null(), Output::Leading(1), &[]).unwrap();
        assert_eq!(stream.schema().fields().len(), 1);
        let text = rows(stream).await;
        assert!(text.contains("| 9 |"), "{text}");
        assert_eq!(text.lines().count(), 5, "{text}");
    }

    #[tokio::test]
    async fn a_column_the_table_lacks_is_an_error() {
        let ctx = context();
        let err = filtered_scan(&ctx, "t", col("nope").eq(lit(1i64)), &[col("t")], &[])
            .await
            .err()
            .expect("no column nope");
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
