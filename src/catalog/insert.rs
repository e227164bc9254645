//! SQL `INSERT INTO logs|samples|spans ...`: the rows DataFusion produces are
//! normalised and handed, batch by batch, to the distributor — the same
//! limits, WAL and head every other ingest protocol uses. The statement
//! returns once every batch is durable; the row count is what was written.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::datasource::sink::DataSink;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use futures::StreamExt;

use crate::error::Error;
use crate::ingest::distributor::{Decoded, Discards, Distributor};
use crate::model::Signal;
use crate::model::normalize::normalize;

pub struct IngestSink {
    tenant: String,
    signal: Signal,
    schema: SchemaRef,
    distributor: Arc<Distributor>,
}

impl IngestSink {
    pub fn new(tenant: &str, signal: Signal, distributor: Arc<Distributor>) -> Self {
        IngestSink {
            tenant: tenant.to_string(),
            signal,
            // Nullable everywhere: not-null constraints are checked by
            // normalisation, which names the column and row in its 23502 error.
            schema: signal.relaxed_schema(),
            distributor,
        }
    }
}

impl fmt::Debug for IngestSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IngestSink({}/{})", self.tenant, self.signal)
    }
}

impl DisplayAs for IngestSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "IngestSink: table={} tenant={}",
            self.signal, self.tenant
        )
    }
}

#[async_trait]
impl DataSink for IngestSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        mut data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let mut rows = 0u64;
        while let Some(batch) = data.next().await {
            rows += self.write_batch(&batch?).await?;
        }
        Ok(rows)
    }
}

impl IngestSink {
    /// Normalises one batch of the signal's relaxed schema and pushes it
    /// through the distributor; the rows written once durable.
    pub async fn write_batch(&self, batch: &RecordBatch) -> crate::error::Result<u64> {
        let batch = normalize(self.signal, batch)?;
        self.push(batch).await
    }

    /// Checks and completes one batch for the table (what
    /// [`Self::write_batch`] does before writing).
    pub fn normalize(&self, batch: &RecordBatch) -> crate::error::Result<RecordBatch> {
        normalize(self.signal, batch)
    }

    /// Pushes normalised batches as one batch (one WAL record), so they are
    /// written together or not at all.
    pub async fn write_normalized(&self, batches: Vec<RecordBatch>) -> crate::error::Result<u64> {
        let Some(first) = batches.first() else {
            return Ok(0);
        };
        let one = arrow::compute::concat_batches(&first.schema(), &batches)?;
        drop(batches);
        self.push(one).await
    }

    async fn push(&self, batch: RecordBatch) -> crate::error::Result<u64> {
        let cost = match self.signal {
            Signal::Logs => arrow::array::AsArray::as_string::<i32>(batch.column(2))
                .values()
                .len() as f64,
            _ => batch.num_rows() as f64,
        };
        let decoded = Decoded {
            signal: self.signal,
            batches: vec![batch],
            discards: Discards::default(),
            cost,
        };
        Ok(self.distributor.push(&self.tenant, decoded).await?)
    }

    /// A client's batch in the signal's relaxed schema: columns matched by
    /// name and cast to the table's types, missing ones defaulted as in an
    /// `INSERT` (or null, so normalisation names a required column); an
    /// unknown column is an error naming it.
    pub fn conform(&self, batch: &RecordBatch) -> crate::error::Result<RecordBatch> {
        let schema = batch.schema();
        if let Some(unknown) = schema
            .fields()
            .iter()
            .find(|f| self.schema.field_with_name(f.name()).is_err())
        {
            return Err(Error::InvalidValue {
                table: self.signal.table_name(),
                column: unknown.name().clone(),
                row: 0,
                reason: format!("no column {:?} in {}", unknown.name(), self.signal),
            });
        }
        let defaults = super::column_default_values(self.signal);
        let columns = self
            .schema
            .fields()
            .iter()
            .map(|field| match batch.column_by_name(field.name()) {
                Some(c) if c.data_type() == field.data_type() => Ok(c.clone()),
                Some(c) => {
                    arrow::compute::cast(c, field.data_type()).map_err(|e| Error::InvalidValue {
                        table: self.signal.table_name(),
                        column: field.name().clone(),
                        row: 0,
                        reason: format!(
                            "cannot cast {} to {}: {e}",
                            c.data_type(),
                            field.data_type()
                        ),
                    })
                }
                None => match defaults.get(field.name()) {
                    Some(v) => Ok(v.to_array_of_size(batch.num_rows())?),
                    None => Ok(arrow::array::new_null_array(
                        field.data_type(),
                        batch.num_rows(),
                    )),
                },
            })
            .collect::<crate::error::Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}
