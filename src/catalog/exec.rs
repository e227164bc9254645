//! Execution nodes of a table scan.
//!
//! * [`UnpackMapsExec`] turns the packed label columns of blocks back into
//!   `Map<Utf8, Utf8>` columns (see `storage::codec`).
//! * [`SignalScanExec`] wraps the whole scan (head ∪ blocks) and reports, in
//!   `EXPLAIN` and `EXPLAIN ANALYZE`, how many blocks were scanned and how
//!   many were pruned by time or by bloom before any Parquet was opened.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};
use futures::StreamExt;

use crate::storage::codec::unpack_column;

/// Decodes packed map columns (listed by position in the child's output).
#[derive(Debug)]
pub struct UnpackMapsExec {
    input: Arc<dyn ExecutionPlan>,
    packed: Vec<usize>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl UnpackMapsExec {
    /// `schema` is the output schema: the child's, with maps where `packed` says.
    pub fn new(input: Arc<dyn ExecutionPlan>, packed: Vec<usize>, schema: SchemaRef) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            input.output_partitioning().clone(),
            input.pipeline_behavior(),
            input.boundedness(),
        );
        UnpackMapsExec {
            input,
            packed,
            schema,
            properties: Arc::new(properties),
        }
    }
}

impl DisplayAs for UnpackMapsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let names: Vec<&str> = self
            .packed
            .iter()
            .map(|&i| self.schema.field(i).name().as_str())
            .collect();
        write!(f, "UnpackMapsExec: columns=[{}]", names.join(", "))
    }
}

impl ExecutionPlan for UnpackMapsExec {
    fn name(&self) -> &str {
        "UnpackMapsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
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
        Ok(Arc::new(UnpackMapsExec::new(
            children.swap_remove(0),
            self.packed.clone(),
            self.schema.clone(),
        )))
    }

    /// Rows keep their order, but the ordering is not advertised: column
    /// types change here, so the child's equivalences cannot be carried over
    /// and sorts must stay above this node.
    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let packed = self.packed.clone();
        let schema = self.schema.clone();
        let out_schema = schema.clone();
        let stream = input.map(move |batch| {
            let batch = batch?;
            let mut columns = batch.columns().to_vec();
            for &i in &packed {
                columns[i] = unpack_column(&columns[i])?;
            }
            Ok(RecordBatch::try_new_with_options(
                out_schema.clone(),
                columns,
                &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
            )?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// What the provider decided before execution.
#[derive(Debug, Clone, Default)]
pub struct ScanSummary {
    pub table: &'static str,
    pub tenant: String,
    pub blocks_total: usize,
    pub blocks_pruned_by_time: usize,
    pub blocks_pruned_by_bloom: usize,
    pub blocks_scanned: usize,
    pub head_batches_total: usize,
    pub head_batches_scanned: usize,
}

/// The root of every table scan; execution is delegated to its child.
#[derive(Debug)]
pub struct SignalScanExec {
    input: Arc<dyn ExecutionPlan>,
    summary: ScanSummary,
    metrics: ExecutionPlanMetricsSet,
}

impl SignalScanExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, summary: ScanSummary) -> Self {
        SignalScanExec {
            input,
            summary,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    pub fn summary(&self) -> &ScanSummary {
        &self.summary
    }
}

impl DisplayAs for SignalScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let s = &self.summary;
        write!(
            f,
            "SignalScanExec: table={} tenant={} blocks_scanned={} blocks_pruned={} \
             (time={}, bloom={}) of {} blocks, head_batches={}/{}",
            s.table,
            s.tenant,
            s.blocks_scanned,
            s.blocks_pruned_by_time + s.blocks_pruned_by_bloom,
            s.blocks_pruned_by_time,
            s.blocks_pruned_by_bloom,
            s.blocks_total,
            s.head_batches_scanned,
            s.head_batches_total,
        )
    }
}

impl ExecutionPlan for SignalScanExec {
    fn name(&self) -> &str {
        "SignalScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
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
        Ok(Arc::new(SignalScanExec::new(
            children.swap_remove(0),
            self.summary.clone(),
        )))
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition == 0 {
            let s = &self.summary;
            let gauge = |name: &'static str, v: usize| {
                MetricBuilder::new(&self.metrics)
                    .global_counter(name)
                    .add(v);
            };
            gauge("blocks_scanned", s.blocks_scanned);
            gauge("blocks_pruned_by_time", s.blocks_pruned_by_time);
            gauge("blocks_pruned_by_bloom", s.blocks_pruned_by_bloom);
            gauge("head_batches_scanned", s.head_batches_scanned);
        }
        self.input.execute(partition, context)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}
