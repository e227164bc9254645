//! The downsampled samples of one tenant and resolution as a table: the
//! blocks of that resolution (pruned by time and bloom like `samples`)
//! decoded into the aggregate schema of
//! [`crate::storage::compactor::downsample`] — `timestamp, metric, labels,
//! series_id, count, sum, min, max, counter, counter_last,
//! counter_first_time, counter_first`. Not registered in sessions: PromQL
//! range queries build it (from the session's `samples` table) for the
//! stretches of time a resolution covers.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::DFSchema;
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::logical_expr::expr_rewriter::unnormalize_col;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;

use super::exec::{DecodeBlockExec, ScanSummary, SignalScanExec};
use super::filters::ScanPredicate;
use super::split_round_robin;
use crate::metrics::Metrics;
use crate::model::Signal;
use crate::storage::compactor::downsample::{self, resolution_name};
use crate::storage::{Storage, datafusion_store_url};

/// Samples blocks opened by queries, by resolution.
pub const BLOCKS_READ: &str = "o11ydb_samples_blocks_read_total";

/// Counts `n` samples blocks of `resolution_ms` opened by a query.
pub fn count_blocks_read(metrics: &Metrics, resolution_ms: i64, n: usize) {
    metrics.describe(
        BLOCKS_READ,
        "counter",
        "Samples blocks opened by queries, by resolution (raw, 5m, 1h).",
    );
    let resolution = resolution_name(resolution_ms);
    metrics.add(BLOCKS_READ, &[("resolution", &resolution)], n as f64);
}

#[derive(Debug)]
pub struct DownsampledTable {
    tenant: String,
    storage: Arc<Storage>,
    metrics: Arc<Metrics>,
    resolution_ms: i64,
}

impl DownsampledTable {
    pub fn new(
        tenant: &str,
        storage: Arc<Storage>,
        metrics: Arc<Metrics>,
        resolution_ms: i64,
    ) -> Self {
        DownsampledTable {
            tenant: tenant.to_string(),
            storage,
            metrics,
            resolution_ms,
        }
    }

    fn table_name(&self) -> &'static str {
        match self.resolution_ms {
            downsample::RES_5M => "samples_5m",
            downsample::RES_1H => "samples_1h",
            _ => "samples_downsampled",
        }
    }
}

#[async_trait]
impl TableProvider for DownsampledTable {
    fn schema(&self) -> SchemaRef {
        downsample::schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let table_schema = downsample::schema();
        let projected_schema = match projection {
            Some(p) => Arc::new(table_schema.project(p)?),
            None => table_schema.clone(),
        };
        // The columns filters name (timestamp, metric, labels) are the samples'.
        let predicate = ScanPredicate::from_filters(Signal::Samples, filters);
        let manifest = self.storage.manifest(&self.tenant, Signal::Samples);
        let candidates: Vec<_> = manifest
            .blocks
            .iter()
            .filter(|b| b.resolution_ms == self.resolution_ms)
            .collect();
        let mut summary = ScanSummary {
            table: self.table_name(),
            tenant: self.tenant.clone(),
            blocks_total: candidates.len(),
            ..Default::default()
        };
        let mut blocks = Vec::new();
        for block in candidates {
            if !predicate.time_overlaps(block.min_time, block.max_time) {
                summary.blocks_pruned_by_time += 1;
                continue;
            }
            if !predicate.required_keys.is_empty() {
                let bloom = self
                    .storage
                    .block_index(&self.tenant, Signal::Samples, &block.id)
                    .await?;
                if !predicate.keys_may_match(|k| bloom.may_contain(k)) {
                    summary.blocks_pruned_by_bloom += 1;
                    continue;
                }
            }
            blocks.push(block);
        }
        summary.blocks_scanned = blocks.len();
        count_blocks_read(&self.metrics, self.resolution_ms, blocks.len());
        if blocks.is_empty() {
            return Ok(Arc::new(SignalScanExec::new(
                Arc::new(EmptyExec::new(projected_schema)),
                summary,
            )));
        }
        let layout = downsample::layout();
        let table_indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..table_schema.fields().len()).collect(),
        };
        let (storage_projection, decoders) = layout.project(&table_indices);
        let reader_factory = CachedParquetFileReaderFactory::new(
            state.runtime_env().object_store(datafusion_store_url())?,
            state.runtime_env().cache_manager.get_file_metadata_cache(),
        );
        let mut source = ParquetSource::new(layout.schema.clone())
            .with_parquet_file_reader_factory(Arc::new(reader_factory))
            .with_enable_page_index(true)
            .with_pushdown_filters(true)
            .with_reorder_filters(true);
        // Filters on columns stored as they are (all but labels) go into the reader.
        let df_schema = DFSchema::try_from(layout.schema.as_ref().clone())?;
        let pushable: Vec<Expr> = filters
            .iter()
            .map(|f| unnormalize_col(f.clone()))
            .filter(|f| {
                f.column_refs().iter().all(|c| {
                    table_schema
                        .index_of(&c.name)
                        .is_ok_and(|t| layout.is_plain(t))
                })
            })
            .collect();
        if let Some(expr) = conjunction(pushable)
            && let Ok(p) = state.create_physical_expr(expr, &df_schema)
        {
            source = source.with_predicate(p);
        }
        let files: Vec<PartitionedFile> = blocks
            .iter()
            .map(|b| {
                PartitionedFile::new(
                    self.storage
                        .block_path(&self.tenant, Signal::Samples, &b.id),
                    b.bytes,
                )
            })
            .collect();
        let groups = split_round_robin(files, state.config().target_partitions())
            .into_iter()
            .map(FileGroup::new)
            .collect();
        let config = FileScanConfigBuilder::new(datafusion_store_url(), Arc::new(source))
            .with_projection_indices(Some(storage_projection))?
            .with_file_groups(groups)
            .with_limit(limit)
            .build();
        let scan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
        let plan = Arc::new(DecodeBlockExec::new(scan, decoders, projected_schema));
        Ok(Arc::new(SignalScanExec::new(plan, summary)))
    }
}
