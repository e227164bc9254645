//! `service_graph(start, end)`: the edges between services in the spans
//! that started in `[start, end)`, computed by [`ServiceGraphExec`] from a
//! scan of the tenant's `spans` rather than planned as SQL joins.
//!
//! `sql/service_graph.sql` states the rules (Tempo's service-graph
//! processor: client/server and producer/consumer pairs, databases, virtual
//! nodes, the `user` node) and stays the reference: tests check this
//! operator's rows against that SQL over the same spans. The operator reads
//! the spans once per partition, in block order (sorted by trace id), and
//! pairs each trace's spans in memory (`edges`), with no global hash join;
//! attributes stay packed label sets and only client spans' peer keys are
//! looked up. A first pass over the trace ids finds the few traces that are
//! not one run of rows (split over blocks or partitions, or in the unsorted
//! head); those are gathered whole before they are counted.
//!
//! A block whose spans all started in the window is not read at all when it
//! has an edges file (`block_edges`, written with the block): its traces'
//! edges come from that file, and only its traces that also have spans
//! elsewhere are gathered from its rows (by trace id).

pub mod block_edges;
mod edges;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::SessionState;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, col, lit};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties,
};
use futures::StreamExt;

use crate::catalog::{BlockChoice, SignalTable};
use crate::query::table_function::display_time_ns;
use arrow::datatypes::SchemaRef;
use block_edges::BlockEdges;
use edges::{PartitionEdges, RunHashes, Window};

pub use edges::output_schema;

/// The result of `service_graph(start, end)` as a table.
#[derive(Debug)]
pub struct ServiceGraphTable {
    window: Window,
}

impl ServiceGraphTable {
    pub fn new(start_ns: i64, end_ns: i64) -> Self {
        ServiceGraphTable {
            window: Window { start_ns, end_ns },
        }
    }
}

fn timestamp(ns: i64) -> Expr {
    lit(ScalarValue::TimestampNanosecond(
        Some(ns),
        Some("UTC".into()),
    ))
}

#[async_trait]
impl TableProvider for ServiceGraphTable {
    fn schema(&self) -> SchemaRef {
        output_schema()
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
        let Some(session) = state.as_any().downcast_ref::<SessionState>() else {
            return plan_err!("service_graph() needs a full DataFusion session");
        };
        let provider = session.schema_for_ref("spans")?.table("spans").await?;
        let Some((provider, spans)) = provider.as_ref().and_then(|p| {
            p.downcast_ref::<SignalTable>()
                .map(|spans| (p.clone(), spans))
        }) else {
            return plan_err!("service_graph() needs the tenant's spans table");
        };
        let schema = spans.schema();
        let columns = edges::COLUMNS
            .iter()
            .map(|c| schema.index_of(c))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let filters = vec![
            col("start_time").gt_eq(timestamp(self.window.start_ns)),
            col("start_time").lt(timestamp(self.window.end_ns)),
        ];
        // Blocks wholly in the window are taken from their edges files,
        // the others scanned: both from one manifest version (else a
        // compaction publishing in between could put the same spans on
        // both sides), so the plans are made again if it changed.
        let mut attempts = 0;
        let (edge_files, trace_ids, rows) = loop {
            let manifest = spans.manifest();
            let edge_files: HashSet<String> = manifest
                .blocks
                .iter()
                .filter(|b| b.is_raw() && b.edges_bytes.is_some())
                .filter(|b| self.window.start_ns <= b.min_time && b.max_time < self.window.end_ns)
                .map(|b| b.id.clone())
                .collect();
            let rest = BlockChoice::Except(&edge_files);
            let trace_ids = spans
                .scan_packed_from(state, &columns[..1], &filters, rest)
                .await?;
            let rows = spans
                .scan_packed_from(state, &columns, &filters, rest)
                .await?;
            if spans.manifest().version == manifest.version {
                break (edge_files, trace_ids, rows);
            }
            attempts += 1;
            if attempts == MANIFEST_ATTEMPTS {
                return plan_err!(
                    "service_graph(): the spans manifest changed under {MANIFEST_ATTEMPTS} attempts to plan over one version"
                );
            }
        };
        let mut edge_files: Vec<String> = edge_files.into_iter().collect();
        edge_files.sort();
        let from_edges = Arc::new(FromEdgeFiles {
            blocks: edge_files,
            spans: provider,
            state: session.clone(),
            columns,
            filters,
        });
        Ok(Arc::new(ServiceGraphExec::new(
            self.window,
            trace_ids,
            rows,
            from_edges,
            projection.cloned(),
        )?))
    }
}

/// How often planning starts again when the manifest changed meanwhile.
const MANIFEST_ATTEMPTS: usize = 5;

fn edges_file_error(block: &str, e: crate::error::Error) -> DataFusionError {
    DataFusionError::Execution(format!(
        "service_graph(): the edges file of block {block}: {e}"
    ))
}

/// The blocks counted from their edges files, and what is needed to
/// gather their split traces' spans.
#[derive(Debug)]
struct FromEdgeFiles {
    blocks: Vec<String>,
    /// The tenant's `spans` table (a [`SignalTable`]).
    spans: Arc<dyn TableProvider>,
    state: SessionState,
    columns: Vec<usize>,
    filters: Vec<Expr>,
}

impl FromEdgeFiles {
    fn spans(&self) -> Result<&SignalTable> {
        match self.spans.downcast_ref::<SignalTable>() {
            Some(t) => Ok(t),
            None => exec_err!("service_graph() needs the tenant's spans table"),
        }
    }

    /// Reads and decodes every block's edges file, in parallel.
    async fn read(&self) -> Result<Vec<BlockEdges>> {
        let spans = self.spans()?;
        let reads = self.blocks.iter().map(|id| async move {
            let bytes = spans
                .block_edges(id)
                .await
                .map_err(|e| edges_file_error(id, e))?;
            let id = id.clone();
            SpawnedTask::spawn_blocking(move || {
                BlockEdges::decode(&bytes).map_err(|e| edges_file_error(&id, e))
            })
            .join()
            .await
            .map_err(|e| DataFusionError::ExecutionJoin(Box::new(e)))?
        });
        futures::future::try_join_all(reads).await
    }

    /// A scan of the blocks in `ids` for the spans of `trace_ids`.
    async fn gather_scan(
        &self,
        ids: &HashSet<String>,
        trace_ids: Vec<String>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut filters = self.filters.clone();
        filters.push(col("trace_id").in_list(trace_ids.into_iter().map(lit).collect(), false));
        self.spans()?
            .scan_packed_from(&self.state, &self.columns, &filters, BlockChoice::Only(ids))
            .await
    }
}

/// Computes the service graph's edges from two scans of the same spans:
/// the trace ids alone (which traces are split), then the spans.
#[derive(Debug)]
pub struct ServiceGraphExec {
    window: Window,
    trace_ids: Arc<dyn ExecutionPlan>,
    rows: Arc<dyn ExecutionPlan>,
    from_edges: Arc<FromEdgeFiles>,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl ServiceGraphExec {
    fn new(
        window: Window,
        trace_ids: Arc<dyn ExecutionPlan>,
        rows: Arc<dyn ExecutionPlan>,
        from_edges: Arc<FromEdgeFiles>,
        projection: Option<Vec<usize>>,
    ) -> Result<Self> {
        let full = output_schema();
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
        Ok(ServiceGraphExec {
            window,
            trace_ids,
            rows,
            from_edges,
            projection,
            schema,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

impl DisplayAs for ServiceGraphExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "ServiceGraphExec: window=[{}, {}), edges_files={}",
            display_time_ns(self.window.start_ns),
            display_time_ns(self.window.end_ns),
            self.from_edges.blocks.len()
        )
    }
}

impl ExecutionPlan for ServiceGraphExec {
    fn name(&self) -> &str {
        "ServiceGraphExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.trace_ids, &self.rows]
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    /// Both inputs must keep their partitions and order: a trace is found
    /// as a run of rows within one partition.
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false, false]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false, false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let rows = children.pop();
        let trace_ids = children.pop();
        let (Some(trace_ids), Some(rows)) = (trace_ids, rows) else {
            return exec_err!("ServiceGraphExec takes two children");
        };
        Ok(Arc::new(ServiceGraphExec::new(
            self.window,
            trace_ids,
            rows,
            self.from_edges.clone(),
            self.projection.clone(),
        )?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return exec_err!("ServiceGraphExec has one partition, not {partition}");
        }
        let window = self.window;
        let trace_ids = self.trace_ids.clone();
        let rows = self.rows.clone();
        let from_edges = self.from_edges.clone();
        let projection = self.projection.clone();
        let metric = MetricBuilder::new(&self.metrics);
        let counted = metric.clone().counter("whole_traces", partition);
        let gathered = metric.clone().counter("split_traces", partition);
        let edges_time = metric.clone().subset_time("edges_files_time", partition);
        let first_time = metric.clone().subset_time("first_pass_time", partition);
        let second_time = metric.clone().subset_time("second_pass_time", partition);
        let finish_time = metric.subset_time("finish_time", partition);
        let result = async move {
            let memory = Memory::new(&context);
            let timer = edges_time.timer();
            let files = from_edges.read().await?;
            memory.track(0, files.iter().map(BlockEdges::bytes).sum())?;
            timer.done();
            let timer = first_time.timer();
            let mut runs = first_pass(&trace_ids, &context, &memory).await?;
            runs.extend(
                files
                    .iter()
                    .map(|f| edges::RunHashes::of_hashes(f.trace_hashes().to_vec())),
            );
            let split = Arc::new(edges::split_traces(runs));
            timer.done();
            gathered.add(split.len());
            let timer = second_time.timer();
            let mut partitions = count_partitions(&rows, &context, &memory, || {
                PartitionEdges::new(window, split.clone())
            })
            .await?;
            // The edges files' split traces come from their blocks' rows.
            let mut split_in_files = HashSet::new();
            let mut split_ids = Vec::new();
            for (id, file) in from_edges.blocks.iter().zip(&files) {
                let ids = file.split_trace_ids(&split);
                if !ids.is_empty() {
                    split_in_files.insert(id.clone());
                    split_ids.extend(ids);
                }
            }
            if !split_ids.is_empty() {
                split_ids.sort();
                split_ids.dedup();
                let plan = from_edges.gather_scan(&split_in_files, split_ids).await?;
                let gathered = count_partitions(&plan, &context, &memory, || {
                    PartitionEdges::gathering(window, split.clone())
                })
                .await?;
                partitions.extend(gathered);
            }
            let counts = files.into_iter().map(|file| {
                let split = split.clone();
                SpawnedTask::spawn_blocking(move || file.count(&split))
            });
            for count in counts.collect::<Vec<_>>() {
                partitions.push(
                    count
                        .join()
                        .await
                        .map_err(|e| DataFusionError::ExecutionJoin(Box::new(e)))?,
                );
            }
            timer.done();
            counted.add(partitions.iter().map(|p| p.counted.len()).sum());
            let _timer = finish_time.timer();
            let batch = edges::finish(partitions)?;
            Ok(match projection {
                Some(p) => batch.project(&p)?,
                None => batch,
            })
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::once(result),
        )))
    }
}

/// The memory the operator holds (run hashes, durations, split traces),
/// reserved from the session's pool so a huge window fails cleanly.
#[derive(Clone)]
struct Memory(Arc<parking_lot::Mutex<MemoryReservation>>);

impl Memory {
    fn new(context: &TaskContext) -> Self {
        let reservation = MemoryConsumer::new("ServiceGraphExec").register(context.memory_pool());
        Memory(Arc::new(parking_lot::Mutex::new(reservation)))
    }

    /// One task held `held` bytes and now holds `now`: grows the shared
    /// reservation by the difference (it never shrinks while the operator
    /// runs) and returns what the task has reserved.
    fn track(&self, held: usize, now: usize) -> Result<usize> {
        if now > held {
            self.0.lock().try_grow(now - held)?;
        }
        Ok(now.max(held))
    }
}

/// Runs `work` over every partition of `plan` in parallel.
async fn each_partition<T, F, Fut>(
    plan: &Arc<dyn ExecutionPlan>,
    context: &Arc<TaskContext>,
    work: F,
) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(SendableRecordBatchStream) -> Fut,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    let n = plan.output_partitioning().partition_count();
    let mut tasks = Vec::with_capacity(n);
    for p in 0..n {
        let stream = plan.execute(p, context.clone())?;
        tasks.push(SpawnedTask::spawn(work(stream)));
    }
    let mut out = Vec::with_capacity(n);
    for task in tasks {
        out.push(
            task.join()
                .await
                .map_err(|e| DataFusionError::ExecutionJoin(Box::new(e)))??,
        );
    }
    Ok(out)
}

async fn first_pass(
    plan: &Arc<dyn ExecutionPlan>,
    context: &Arc<TaskContext>,
    memory: &Memory,
) -> Result<Vec<RunHashes>> {
    each_partition(plan, context, |mut stream| {
        let memory = memory.clone();
        async move {
            let mut runs = RunHashes::default();
            let mut held = 0;
            while let Some(batch) = stream.next().await {
                runs.push_batch(&batch?)?;
                held = memory.track(held, runs.hashes.len() * 8)?;
            }
            Ok(runs)
        }
    })
    .await
}

/// Feeds each partition of `plan` to its own [`PartitionEdges`].
async fn count_partitions(
    plan: &Arc<dyn ExecutionPlan>,
    context: &Arc<TaskContext>,
    memory: &Memory,
    new: impl Fn() -> PartitionEdges,
) -> Result<Vec<PartitionEdges>> {
    each_partition(plan, context, |mut stream| {
        let memory = memory.clone();
        let mut edges = new();
        async move {
            let mut held = 0;
            let mut split_bytes = 0;
            let mut split_counted = 0;
            while let Some(batch) = stream.next().await {
                edges.push_batch(batch?)?;
                for s in &edges.split_spans[split_counted..] {
                    split_bytes += s.bytes();
                }
                split_counted = edges.split_spans.len();
                held = memory.track(
                    held,
                    edges.counter.bytes() + split_bytes + edges.counted.len() * 8,
                )?;
            }
            edges.finish()?;
            Ok(edges)
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray, RecordBatch};
    use arrow::datatypes::{Float64Type, Int64Type};

    use crate::bench::traces::{GeneratedSpan, TracesDataset, export_request};
    use crate::engine::Engine;
    use crate::ingest::limits::Limits;
    use crate::ingest::otlp::decode_traces;
    use crate::model::Signal;
    use crate::query::span_functions::service_graph_reference;

    const MINUTE_NS: i64 = 60_000_000_000;

    async fn append(engine: &Engine, spans: Vec<GeneratedSpan>) {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let decoded = decode_traces(export_request(spans), &Limits::default(), now_ms);
        assert!(decoded.discards.is_empty(), "{:?}", decoded.discards);
        for batch in &decoded.batches {
            engine
                .ingester()
                .append_canonical("t", Signal::Spans, batch)
                .await
                .unwrap();
        }
    }

    async fn rows(engine: &Engine, table: &str, start_ns: i64, end_ns: i64) -> RecordBatch {
        let ctx = engine.session("t").await.unwrap();
        let reference = service_graph_reference(&ctx.state(), start_ns, end_ns).unwrap();
        ctx.register_table("reference", reference).unwrap();
        let from = match table {
            "reference" => "reference".to_string(),
            _ => format!(
                "service_graph(to_timestamp_nanos({start_ns}), to_timestamp_nanos({end_ns}))"
            ),
        };
        let batches = ctx
            .sql(&format!(
                "SELECT * FROM {from} ORDER BY client, server, connection_type"
            ))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
    }

    async fn explain_analyze(engine: &Engine, (start, end): (i64, i64)) -> String {
        let ctx = engine.session("t").await.unwrap();
        let explain = ctx
            .sql(&format!(
                "EXPLAIN ANALYZE SELECT * FROM service_graph(to_timestamp_nanos({start}), \
                 to_timestamp_nanos({end}))"
            ))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        arrow::util::pretty::pretty_format_batches(&explain)
            .unwrap()
            .to_string()
    }

    /// Same rows as `sql/service_graph.sql`: names and counts exactly,
    /// latencies within the interpolation rounding of DataFusion's
    /// `percentile_cont` (its weights are quantised to 1e-6).
    fn assert_same(got: &RecordBatch, want: &RecordBatch) {
        assert_eq!(got.schema(), want.schema());
        assert_eq!(got.num_rows(), want.num_rows(), "{got:?}\n{want:?}");
        for c in 0..got.num_columns() {
            let (g, w) = (got.column(c), want.column(c));
            let name = got.schema().field(c).name().clone();
            if let Some(g) = g.as_primitive_opt::<Float64Type>() {
                let w = w.as_primitive::<Float64Type>();
                for r in 0..g.len() {
                    assert_eq!(g.is_null(r), w.is_null(r), "{name} row {r}");
                    let (a, b) = (g.value(r), w.value(r));
                    assert!(
                        (a - b).abs() <= 1e-6 * a.abs().max(b.abs()) + 1e-12,
                        "{name} row {r}: {a} vs {b}"
                    );
                }
            } else if let Some(g) = g.as_primitive_opt::<Int64Type>() {
                assert_eq!(g, w.as_primitive::<Int64Type>(), "{name}");
            } else {
                assert_eq!(g.as_ref(), w.as_ref(), "{name}");
            }
        }
    }

    /// Traces in blocks (one run each), traces split over two blocks and
    /// the head, and traces only in the unsorted head, over the whole set
    /// and over a window that cuts traces in two.
    #[tokio::test]
    async fn edges_match_the_sql_reference() {
        let (engine, dir) = Engine::open_scratch("o11ydb-service-graph").await.unwrap();
        // In one 2 h compaction window, so that the compactor merges it.
        let two_hours = 120 * MINUTE_NS;
        let an_hour_ago = chrono::Utc::now().timestamp_nanos_opt().unwrap() - 60 * MINUTE_NS;
        let first_ns = an_hour_ago.div_euclid(two_hours) * two_hours + MINUTE_NS;
        let step_ns = 2_000_000_000;
        let trace = |n: u64| TracesDataset::trace(n, (first_ns + n as i64 * step_ns) as u64);
        // Every tenth trace of the first two parts leaves its second half
        // to the next part: split over two blocks, or a block and the head.
        let mut carried = Vec::new();
        for part in 0..3u64 {
            let mut spans: Vec<GeneratedSpan> = std::mem::take(&mut carried);
            for n in part * 150..(part + 1) * 150 {
                let mut t = trace(n);
                if n % 10 == 0 && part < 2 {
                    carried.extend(t.split_off(t.len() / 2));
                }
                spans.extend(t);
            }
            append(&engine, spans).await;
            if part < 2 {
                engine.ingester().flush_all().await;
            }
        }
        let blocks = engine
            .ingester()
            .storage()
            .manifest("t", Signal::Spans)
            .blocks
            .len();
        assert_eq!(blocks, 2);
        let end_ns = first_ns + 450 * step_ns + MINUTE_NS;
        let whole = (first_ns - MINUTE_NS, end_ns);
        let cut = (first_ns + 200 * step_ns + 7, first_ns + 320 * step_ns);
        let same_as_reference = async |(start, end): (i64, i64)| {
            let got = rows(&engine, "service_graph", start, end).await;
            let want = rows(&engine, "reference", start, end).await;
            assert!(got.num_rows() > 10, "{got:?}");
            assert_same(&got, &want);
        };
        same_as_reference(whole).await;
        same_as_reference(cut).await;
        // Over the whole set both blocks were counted from their edges
        // files; the split traces went the gathering way: 30 traces over
        // two pieces each (and the head's traces, unsorted, often more).
        let text = explain_analyze(&engine, whole).await;
        let metric = |name: &str| -> usize {
            let at = text.find(&format!("{name}=")).expect(name) + name.len() + 1;
            text[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        assert!(metric("split_traces") >= 30, "{text}");
        assert!(metric("whole_traces") >= 250, "{text}");
        assert!(text.contains("ServiceGraphExec: window=["), "{text}");
        assert!(text.contains("edges_files=2"), "{text}");
        // A window that cuts the blocks reads their spans.
        assert!(
            explain_analyze(&engine, cut)
                .await
                .contains("edges_files=0")
        );

        // Blocks written without an edges file (before there were any)
        // are read as spans.
        let storage = engine.ingester().storage();
        let first = storage.manifest("t", Signal::Spans).blocks[0].id.clone();
        storage
            .update_manifest("t", Signal::Spans, |m| {
                let mut next = m.clone();
                next.blocks[0].edges_bytes = None;
                Ok(Some(next))
            })
            .await
            .unwrap();
        same_as_reference(whole).await;
        assert!(
            explain_analyze(&engine, whole)
                .await
                .contains("edges_files=1")
        );
        // The compactor writes edges files for the blocks it merges.
        let report = engine.compactor().run().await;
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        let manifest = storage.manifest("t", Signal::Spans);
        assert!(manifest.blocks.iter().all(|b| b.id != first));
        assert!(manifest.blocks.iter().all(|b| b.edges_bytes.is_some()));
        same_as_reference(whole).await;
        let text = explain_analyze(&engine, whole).await;
        assert!(
            text.contains(&format!("edges_files={}", manifest.blocks.len())),
            "{text}"
        );
        // What it holds comes from the session's memory pool: too little
        // of it is a clear error, not unbounded growth.
        let ctx = engine.session("t").await.unwrap();
        ctx.sql("SET datafusion.runtime.memory_limit = '32K'")
            .await
            .unwrap();
        let err = ctx
            .sql(&format!(
                "SELECT * FROM service_graph(to_timestamp_nanos({}), to_timestamp_nanos({end_ns}))",
                first_ns - MINUTE_NS
            ))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("Resources exhausted"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
