//! Execution nodes of a table scan.
//!
//! * [`DecodeBlockExec`] turns block storage columns back into table columns
//!   (packed label sets into maps, decimal mantissas into floats; see
//!   `storage::codec`); [`PackMapsExec`] does the reverse for the head rows
//!   of a packed-map scan (map columns into packed label sets).
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

use crate::storage::codec::{Stored, decode_columns, pack_map_columns};

/// Decodes a block scan's storage columns into the projected table columns.
#[derive(Debug)]
pub struct DecodeBlockExec {
    input: Arc<dyn ExecutionPlan>,
    decoders: Vec<Stored>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl DecodeBlockExec {
    /// `schema` is the output (projected table) schema; `decoders` say where
    /// each of its columns is in the child's output.
    pub fn new(input: Arc<dyn ExecutionPlan>, decoders: Vec<Stored>, schema: SchemaRef) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            input.output_partitioning().clone(),
            input.pipeline_behavior(),
            input.boundedness(),
        );
        DecodeBlockExec {
            input,
            decoders,
            schema,
            properties: Arc::new(properties),
        }
    }
}

impl DisplayAs for DecodeBlockExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let decoded: Vec<String> = self
            .decoders
            .iter()
            .zip(self.schema.fields())
            .filter_map(|(d, field)| match d {
                Stored::Plain(_) => None,
                Stored::PackedMap(_) => Some(format!("{}(labels)", field.name())),
                Stored::Decimal { .. } => Some(format!("{}(decimal)", field.name())),
                Stored::EndTime { .. } => Some(format!("{}(start+duration)", field.name())),
            })
            .collect();
        write!(f, "DecodeBlockExec: decode=[{}]", decoded.join(", "))
    }
}

impl ExecutionPlan for DecodeBlockExec {
    fn name(&self) -> &str {
        "DecodeBlockExec"
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
        Ok(Arc::new(DecodeBlockExec::new(
            children.swap_remove(0),
            self.decoders.clone(),
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
        let decoders = self.decoders.clone();
        let schema = self.schema.clone();
        let out_schema = schema.clone();
        let stream = input.map(move |batch| {
            let batch = batch?;
            let columns = decode_columns(batch.columns(), &decoders)?;
            Ok(RecordBatch::try_new_with_options(
                out_schema.clone(),
                columns,
                &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
            )?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// Packs the map columns of head rows into label sets as each batch is
/// read, for packed-map scans (blocks store them packed already).
#[derive(Debug)]
pub struct PackMapsExec {
    input: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl PackMapsExec {
    /// `schema`: the input's schema with map columns packed
    /// (`codec::packed_schema`).
    pub fn new(input: Arc<dyn ExecutionPlan>, schema: SchemaRef) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            input.output_partitioning().clone(),
            input.pipeline_behavior(),
            input.boundedness(),
        );
        PackMapsExec {
            input,
            schema,
            properties: Arc::new(properties),
        }
    }
}

impl DisplayAs for PackMapsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PackMapsExec")
    }
}

impl ExecutionPlan for PackMapsExec {
    fn name(&self) -> &str {
        "PackMapsExec"
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
        Ok(Arc::new(PackMapsExec::new(
            children.swap_remove(0),
            self.schema.clone(),
        )))
    }

    /// Rows keep their order; as for [`DecodeBlockExec`], column types
    /// change, so the ordering is not advertised.
    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = self.schema.clone();
        let packed = schema.clone();
        let stream = input.map(move |batch| Ok(pack_map_columns(&batch?, &packed)?));
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
    /// Rows of scanned blocks their row indexes ruled out (never read).
    pub rows_skipped_by_row_index: u64,
    /// Blocks where no label set of a row group passes the label filters.
    pub blocks_pruned_by_label_sets: usize,
    /// Rows of scanned blocks in row groups no label set of which passes.
    pub rows_skipped_by_label_sets: u64,
    /// Log blocks none of whose line templates passes the line filters.
    pub blocks_pruned_by_templates: usize,
    /// Log blocks whose line filters were answered from their templates
    /// (their lines are not read for the filters).
    pub blocks_filtered_by_templates: usize,
    /// Of those, blocks where some template's lines were decided from their
    /// stored variables.
    pub blocks_filtered_by_variables: usize,
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
             (time={}, bloom={}, label_sets={}) of {} blocks, head_batches={}/{}",
            s.table,
            s.tenant,
            s.blocks_scanned,
            s.blocks_pruned_by_time
                + s.blocks_pruned_by_bloom
                + s.blocks_pruned_by_label_sets
                + s.blocks_pruned_by_templates,
            s.blocks_pruned_by_time,
            s.blocks_pruned_by_bloom,
            s.blocks_pruned_by_label_sets,
            s.blocks_total,
            s.head_batches_scanned,
            s.head_batches_total,
        )?;
        if s.rows_skipped_by_row_index > 0 {
            write!(
                f,
                ", rows_skipped_by_row_index={}",
                s.rows_skipped_by_row_index
            )?;
        }
        if s.rows_skipped_by_label_sets > 0 {
            write!(
                f,
                ", rows_skipped_by_label_sets={}",
                s.rows_skipped_by_label_sets
            )?;
        }
        if s.blocks_pruned_by_templates + s.blocks_filtered_by_templates > 0 {
            write!(
                f,
                ", line_templates(pruned={}, filtered={}",
                s.blocks_pruned_by_templates, s.blocks_filtered_by_templates
            )?;
            if s.blocks_filtered_by_variables > 0 {
                write!(f, ", by_variables={}", s.blocks_filtered_by_variables)?;
            }
            write!(f, ")")?;
        }
        Ok(())
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
            gauge("blocks_pruned_by_label_sets", s.blocks_pruned_by_label_sets);
            gauge("blocks_pruned_by_templates", s.blocks_pruned_by_templates);
            gauge(
                "blocks_filtered_by_templates",
                s.blocks_filtered_by_templates,
            );
            gauge(
                "blocks_filtered_by_variables",
                s.blocks_filtered_by_variables,
            );
            gauge(
                "rows_skipped_by_label_sets",
                s.rows_skipped_by_label_sets as usize,
            );
            gauge("head_batches_scanned", s.head_batches_scanned);
            gauge(
                "rows_skipped_by_row_index",
                s.rows_skipped_by_row_index as usize,
            );
        }
        self.input.execute(partition, context)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}
