//! SQL `INSERT INTO logs|samples|spans ...`: the rows DataFusion produces are
//! normalised and handed, batch by batch, to the distributor — the same
//! limits, WAL and head every other ingest protocol uses. The statement
//! returns once every batch is durable; the row count is what was written.

use std::fmt;
use std::sync::Arc;

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
            let batch = normalize(self.signal, &batch?)?;
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
            rows += self
                .distributor
                .push(&self.tenant, decoded)
                .await
                .map_err(Error::Push)?;
        }
        Ok(rows)
    }
}
