//! Deleted log lines leave every scan here: [`DeletedLinesExec`] sits on a
//! `logs` scan of a tenant with log deletion requests, drops the rows they
//! match ([`crate::storage::deletes::DeleteFilter`]) and then projects the
//! columns the query asked for. The scan below it reads the columns the
//! filter needs as well, and no row limit (rows it drops must not count).

use std::fmt;
use std::sync::Arc;

use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};
use futures::StreamExt;

use crate::storage::deletes::DeleteFilter;

/// The `logs` columns [`DeleteFilter::deleted`] reads.
pub const FILTER_COLUMNS: [&str; 5] = [
    "timestamp",
    "labels",
    "line",
    "structured_metadata",
    "stream_id",
];

#[derive(Debug)]
pub struct DeletedLinesExec {
    input: Arc<dyn ExecutionPlan>,
    filter: Arc<DeleteFilter>,
    /// Positions in the input of the output columns.
    output: Vec<usize>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl DeletedLinesExec {
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        filter: Arc<DeleteFilter>,
        output: Vec<usize>,
    ) -> Result<Self> {
        let schema = Arc::new(input.schema().project(&output)?);
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            input.output_partitioning().clone(),
            input.pipeline_behavior(),
            input.boundedness(),
        );
        Ok(DeletedLinesExec {
            input,
            filter,
            output,
            schema,
            properties: Arc::new(properties),
        })
    }
}

impl DisplayAs for DeletedLinesExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "DeletedLinesExec: delete_requests applied")
    }
}

impl ExecutionPlan for DeletedLinesExec {
    fn name(&self) -> &str {
        "DeletedLinesExec"
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
        Ok(Arc::new(DeletedLinesExec::new(
            children.swap_remove(0),
            self.filter.clone(),
            self.output.clone(),
        )?))
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        // Orderings are not carried through the projection.
        vec![false]
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let filter = self.filter.clone();
        let output = self.output.clone();
        let stream = input.map(move |batch| {
            let mut batch = batch?;
            if let Some(deleted) = filter
                .deleted(&batch)
                .map_err(|e| DataFusionError::External(Box::new(e)))?
            {
                batch = filter_record_batch(&batch, &arrow::compute::not(&deleted)?)?;
            }
            Ok(batch.project(&output)?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream,
        )))
    }
}
