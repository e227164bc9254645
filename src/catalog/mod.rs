//! Table providers: `logs`, `samples` and `spans` of one tenant, each serving
//! its head ∪ its blocks.
//!
//! A provider is built for one tenant and can only see that tenant's head and
//! manifest — the tenant is part of the provider, not a filter a query could
//! forget. `scan` prunes head batches and blocks by time (from the manifest)
//! and by equality on indexed columns (from each block's bloom) before any
//! Parquet is opened, pushes the remaining filters and the projection into
//! the Parquet reader (row groups, page index, Parquet blooms; map entries
//! read from the packed label sets, [`packed_filter`]) and wraps it
//! all in a [`exec::SignalScanExec`] that shows the pruning in `EXPLAIN`.
//! `INSERT` goes through [`insert::IngestSink`] into the normal write path.

pub mod deleted;
pub mod downsampled;
pub mod exec;
pub mod filters;
pub mod insert;
pub mod label_sets;
pub mod line_filters;
pub mod line_programs;
pub mod packed_filter;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNode;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::common::{not_impl_err, plan_err};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::parquet::{
    CachedParquetFileReaderFactory, ParquetRowSelection,
};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::sink::DataSinkExec;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::expr_rewriter::unnormalize_col;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::optimizer::analyzer::type_coercion::TypeCoercionRewriter;
use datafusion::physical_expr::{PhysicalExpr, conjunction_opt};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::filter::FilterExecBuilder;
use datafusion::physical_plan::union::UnionExec;
use parquet::arrow::arrow_reader::RowSelection;

use crate::ingest::Ingester;
use crate::ingest::distributor::Distributor;
use crate::model::Signal;
use crate::model::labels::build_string_map;
use crate::storage::codec::{self, block_layout};
use crate::storage::manifest::{BlockMeta, Manifest};
use crate::storage::series_index::SeriesIndex;
use crate::storage::{Storage, datafusion_store_url, row_index};
use exec::{DecodeBlockExec, PackMapsExec, ScanSummary, SignalScanExec};
use filters::ScanPredicate;
use label_sets::{BlockLabelSets, RowGroupChoice};
use line_filters::{
    BlockVerdict, LineCondition, LineConditions, TemplateDecisions, TemplateFilter,
};
use packed_filter::PerLabelSet;

/// One tenant's table of one signal.
#[derive(Debug)]
pub struct SignalTable {
    tenant: String,
    signal: Signal,
    ingester: Arc<Ingester>,
    distributor: Arc<Distributor>,
    defaults: HashMap<String, Expr>,
}

impl SignalTable {
    pub fn new(tenant: &str, signal: Signal, distributor: Arc<Distributor>) -> Self {
        SignalTable {
            tenant: tenant.to_string(),
            signal,
            ingester: distributor.ingester().clone(),
            distributor,
            defaults: column_defaults(signal),
        }
    }

    fn storage(&self) -> &Arc<Storage> {
        self.ingester.storage()
    }

    pub fn signal(&self) -> Signal {
        self.signal
    }

    /// The current manifest of this table's tenant and signal.
    pub fn manifest(&self) -> Arc<crate::storage::manifest::Manifest> {
        self.storage().manifest(&self.tenant, self.signal)
    }

    /// The oldest and newest time in this table's head, if it holds rows.
    pub fn head_time_range(&self) -> Option<(i64, i64)> {
        let head = self.ingester.head(&self.tenant, self.signal)?;
        let (batches, ()) = head.snapshot_with(|| ());
        batches
            .iter()
            .map(|(_, range)| *range)
            .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)))
    }

    /// This tenant's samples blocks of one downsampled resolution, as a table.
    pub fn downsampled(&self, resolution_ms: i64) -> downsampled::DownsampledTable {
        downsampled::DownsampledTable::new(
            &self.tenant,
            self.storage().clone(),
            self.distributor.metrics().clone(),
            resolution_ms,
        )
    }
}

/// Defaults for columns an `INSERT` (or a Flight bulk ingest) may leave
/// out: empty maps, the derived ids (recomputed on ingest anyway) and the
/// span enums.
pub fn column_default_values(signal: Signal) -> HashMap<String, ScalarValue> {
    let mut out = HashMap::new();
    for field in signal.schema().fields() {
        let value = match field.data_type() {
            DataType::Map(..) => Some(ScalarValue::Map(Arc::new(build_string_map(
                std::iter::once(std::iter::empty::<(&str, &str)>()),
            )))),
            _ => match field.name().as_str() {
                "series_id" | "stream_id" | "duration_ns" => Some(ScalarValue::Int64(Some(0))),
                "kind" => Some(ScalarValue::Utf8(Some("unspecified".into()))),
                "status_code" => Some(ScalarValue::Utf8(Some("unset".into()))),
                "service" => Some(ScalarValue::Utf8(Some("unknown_service".into()))),
                _ => None,
            },
        };
        if let Some(v) = value {
            out.insert(field.name().clone(), v);
        }
    }
    out
}

fn column_defaults(signal: Signal) -> HashMap<String, Expr> {
    column_default_values(signal)
        .into_iter()
        .map(|(k, v)| (k, Expr::Literal(v, None)))
        .collect()
}

#[async_trait]
impl TableProvider for SignalTable {
    fn schema(&self) -> SchemaRef {
        self.signal.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.defaults.get(column)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Filters prune blocks and row groups but are re-checked above the
        // scan — except, for logs, filters on the line alone (answered per
        // line template where it can, see `line_filters`) and on the keys
        // of one label column (answered per distinct label set, without
        // building the maps), which the scan answers exactly.
        Ok(filters
            .iter()
            .map(
                |f| match self.signal == Signal::Logs && answered_in_scan(f) {
                    true => TableProviderFilterPushDown::Exact,
                    false => TableProviderFilterPushDown::Inexact,
                },
            )
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.scan_with(
            state,
            projection,
            filters,
            limit,
            MapColumns::Decoded,
            BlockChoice::All,
        )
        .await
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return not_impl_err!(
                "{insert_op} on {} (only INSERT INTO ... appends are supported)",
                self.signal
            );
        }
        let sink = insert::IngestSink::new(&self.tenant, self.signal, self.distributor.clone());
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}

impl SignalTable {
    /// A span block's service-graph edges file, as stored.
    pub async fn block_edges(&self, id: &str) -> crate::error::Result<bytes::Bytes> {
        self.storage().block_edges(&self.tenant, id).await
    }

    /// A scan whose map columns stay packed label sets (see
    /// [`MapColumns::Packed`]), for operators that look up a few keys per
    /// row and would only throw the decoded maps away. No row limit; the
    /// filters prune blocks and row groups but are not re-checked. Each
    /// partition reads its own files in block order on every execution, so
    /// two such scans with the same filters yield the same rows in the same
    /// partitions (work stealing between partitions would not).
    pub async fn scan_packed(
        &self,
        state: &dyn Session,
        projection: &[usize],
        filters: &[Expr],
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.scan_packed_from(state, projection, filters, BlockChoice::All)
            .await
    }

    /// [`SignalTable::scan_packed`] over some of the blocks only.
    pub async fn scan_packed_from(
        &self,
        state: &dyn Session,
        projection: &[usize],
        filters: &[Expr],
        blocks: BlockChoice<'_>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let projection = projection.to_vec();
        self.scan_with(
            state,
            Some(&projection),
            filters,
            None,
            MapColumns::Packed,
            blocks,
        )
        .await
    }

    async fn scan_with(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
        maps: MapColumns,
        choice: BlockChoice<'_>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let signal = self.signal;
        let table_schema = signal.schema();
        let predicate = ScanPredicate::from_filters(signal, filters);
        // Lines deleted by the tenant's delete requests: the scan reads the
        // columns the filter needs too, and no row limit.
        let deletes = self.delete_filter(&predicate).await?;
        if deletes.is_some() && maps == MapColumns::Packed {
            return not_impl_err!(
                "a packed-map scan of {} while lines are deleted",
                self.signal
            );
        }
        // Filters on the line alone are answered here (exactly).
        let (line_conditions, line_filters): (Vec<LineCondition>, Vec<Expr>) =
            match signal == Signal::Logs {
                true => filters
                    .iter()
                    .filter_map(|f| LineCondition::of(f).map(|c| (c, f.clone())))
                    .unzip(),
                false => Default::default(),
            };
        let templates = (!line_conditions.is_empty())
            .then(|| LineConditions::shared(line_conditions, &line_filters));
        // Filters on one label column, answered here per label set.
        let label_filters: Vec<Expr> = match signal == Signal::Logs {
            true => filters
                .iter()
                .filter(|f| is_label_set_filter(f))
                .cloned()
                .collect(),
            false => Vec::new(),
        };
        let answered_here = !line_filters.is_empty() || !label_filters.is_empty();
        let mut output_columns = None;
        // With line filters applied here, a source's row limit would count
        // lines before they are filtered.
        let mut limit = limit.filter(|_| !answered_here);
        let widened;
        let projection = match &deletes {
            None => projection,
            Some(_) => {
                let mut columns: Vec<usize> = match projection {
                    Some(p) => p.clone(),
                    None => (0..table_schema.fields().len()).collect(),
                };
                output_columns = Some((0..columns.len()).collect::<Vec<usize>>());
                for name in deleted::FILTER_COLUMNS {
                    let i = table_schema.index_of(name)?;
                    if !columns.contains(&i) {
                        columns.push(i);
                    }
                }
                limit = None;
                widened = columns;
                Some(&widened)
            }
        };
        let projected_schema = match projection {
            Some(p) => Arc::new(table_schema.project(p)?),
            None => table_schema.clone(),
        };
        let projected_schema = match maps {
            MapColumns::Decoded => projected_schema,
            MapColumns::Packed => codec::packed_schema(&projected_schema),
        };
        let (head_batches, manifest) = match (choice, self.ingester.head(&self.tenant, signal)) {
            (BlockChoice::Rows(manifest, _), _) => (Vec::new(), manifest.clone()),
            (_, Some(head)) => head.snapshot_with(|| self.storage().manifest(&self.tenant, signal)),
            (_, None) => (Vec::new(), self.storage().manifest(&self.tenant, signal)),
        };

        // Downsampled blocks are read through [`SignalTable::downsampled`] only.
        let raw_blocks: Vec<&BlockMeta> = manifest.blocks.iter().filter(|b| b.is_raw()).collect();
        let mut summary = ScanSummary {
            table: signal.table_name(),
            tenant: self.tenant.clone(),
            blocks_total: raw_blocks.len(),
            head_batches_total: head_batches.len(),
            ..Default::default()
        };

        let head: Vec<RecordBatch> = head_batches
            .into_iter()
            .filter(|_| choice.reads_head())
            .filter(|(_, (min, max))| predicate.time_overlaps(*min, *max))
            .map(|(b, _)| b)
            .collect();
        summary.head_batches_scanned = head.len();

        // Key groups the blocks' row indexes answer (a trace-id needle).
        let row_keys: Vec<Vec<String>> = predicate
            .required_keys
            .iter()
            .filter(|any| any.iter().all(|k| row_index::covers(signal, k)))
            .cloned()
            .collect();
        // Planned once a block survives time and bloom pruning.
        let mut predicates: Option<BlockPredicates> = None;
        let mut blocks = Vec::new();
        // Whether every block read has had its rows chosen by a row index
        // fine enough that its Parquet bloom filters (on the same columns,
        // one per row group) can rule out next to nothing more.
        let mut every_block_row_indexed = true;
        // Blocks whose line filters their templates answer, and the
        // templates whose lines pass.
        let mut template_blocks = Vec::new();
        let mut decided_templates = TemplateDecisions::default();
        for block in raw_blocks {
            if !choice.reads(&block.id) {
                continue;
            }
            if !predicate.time_overlaps(block.min_time, block.max_time) {
                summary.blocks_pruned_by_time += 1;
                continue;
            }
            if !predicate.required_keys.is_empty() {
                let bloom = self
                    .storage()
                    .block_index(&self.tenant, signal, &block.id)
                    .await?;
                if !predicate.keys_may_match(|k| bloom.may_contain(k)) {
                    summary.blocks_pruned_by_bloom += 1;
                    continue;
                }
            }
            let predicates = match predicates {
                Some(ref p) => p,
                None => predicates.insert(self.parquet_predicate(state, filters)?),
            };
            let mut selection = None;
            match self
                .row_groups_to_read(state, block, &predicates.label_sets)
                .await
            {
                RowGroupChoice::All => {}
                RowGroupChoice::None => {
                    summary.blocks_pruned_by_label_sets += 1;
                    continue;
                }
                RowGroupChoice::Some(rows, skipped) => {
                    summary.rows_skipped_by_label_sets += skipped;
                    selection = Some(rows);
                }
            }
            if let Some(rows) = choice.rows(&block.id) {
                selection = Some(match selection {
                    Some(chosen) => rows.intersection(&chosen),
                    None => rows.clone(),
                });
            }
            let mut row_indexed = false;
            if !row_keys.is_empty() && block.row_index_bytes.is_some() {
                match self.block_rows_to_read(block, &row_keys).await {
                    Some((ranges, _)) if ranges.is_empty() => {
                        summary.blocks_pruned_by_bloom += 1;
                        continue;
                    }
                    Some((ranges, blooms_redundant)) => {
                        let read: u64 = ranges.iter().map(|r| r.end - r.start).sum();
                        summary.rows_skipped_by_row_index += block.rows - read;
                        let rows = row_index::row_selection(&ranges, block.rows);
                        selection = Some(match selection {
                            Some(chosen) => rows.intersection(&chosen),
                            None => rows,
                        });
                        row_indexed = blooms_redundant;
                    }
                    None => {}
                }
            }
            every_block_row_indexed &= row_indexed;
            if let Some(templates) = &templates
                && let Some(verdict) = self.template_verdict(block, templates).await
            {
                match verdict {
                    BlockVerdict::NoLine => {
                        summary.blocks_pruned_by_templates += 1;
                        continue;
                    }
                    BlockVerdict::Decided(decided) => {
                        summary.blocks_filtered_by_variables +=
                            usize::from(!decided.per_line.is_empty());
                        decided_templates.extend(decided);
                    }
                    BlockVerdict::ReadLines => {
                        blocks.push((block, selection));
                        continue;
                    }
                }
                summary.blocks_filtered_by_templates += 1;
                template_blocks.push((block, selection));
                continue;
            }
            blocks.push((block, selection));
        }
        summary.blocks_scanned = blocks.len() + template_blocks.len();
        if signal == Signal::Samples {
            downsampled::count_blocks_read(self.distributor.metrics(), 0, blocks.len());
        }

        // Inputs that filter lines themselves read the line too, when the
        // output does not have it, and drop it after filtering.
        let read_indices: Vec<usize> = {
            let mut columns: Vec<usize> = match projection {
                Some(p) => p.clone(),
                None => (0..table_schema.fields().len()).collect(),
            };
            if !line_filters.is_empty() {
                let line = table_schema.index_of("line")?;
                if !columns.contains(&line) {
                    columns.push(line);
                }
            }
            columns
        };
        // The head filters decoded rows, so it reads the label columns too.
        let head_indices: Vec<usize> = {
            let mut columns = read_indices.clone();
            for f in &label_filters {
                for c in f.column_refs() {
                    let i = table_schema.index_of(&c.name)?;
                    if !columns.contains(&i) {
                        columns.push(i);
                    }
                }
            }
            columns
        };
        let read_schema = {
            let schema = Arc::new(table_schema.project(&read_indices)?);
            match maps {
                MapColumns::Decoded => schema,
                MapColumns::Packed => codec::packed_schema(&schema),
            }
        };
        let output_width = projected_schema.fields().len();
        let filter_rows =
            |input: Arc<dyn ExecutionPlan>, filters: Vec<Expr>| -> Result<Arc<dyn ExecutionPlan>> {
                let unqualified = filters.into_iter().map(unnormalize_col);
                let Some(filter) = datafusion::logical_expr::utils::conjunction(unqualified) else {
                    return Ok(input);
                };
                let predicate =
                    state.create_physical_expr(filter, &DFSchema::try_from(input.schema())?)?;
                Ok(Arc::new(
                    FilterExecBuilder::new(predicate, input)
                        .apply_projection(Some((0..output_width).collect()))?
                        .build()?,
                ))
            };

        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if !head.is_empty() {
            let source = MemorySourceConfig::try_new(
                &split_round_robin(head, state.config().target_partitions()),
                table_schema.clone(),
                Some(head_indices),
            )?
            .with_limit(limit);
            let here: Vec<Expr> = line_filters.iter().chain(&label_filters).cloned().collect();
            let rows = filter_rows(DataSourceExec::from_data_source(source), here)?;
            inputs.push(match maps {
                MapColumns::Decoded => rows,
                // Packed as each batch is read, not while planning.
                MapColumns::Packed => Arc::new(PackMapsExec::new(rows, projected_schema.clone())),
            });
        }
        let reader = BlockReading {
            every_block_row_indexed,
            limit,
            maps,
            label_filters: &label_filters,
        };
        if !blocks.is_empty() {
            let predicate = predicates.as_ref().and_then(|p| p.parquet.clone());
            let scan = self.read_blocks(
                state,
                &reader,
                blocks,
                &read_indices,
                read_schema,
                None,
                predicate,
            )?;
            inputs.push(filter_rows(scan, line_filters.clone())?);
        }
        if !template_blocks.is_empty() {
            // The other filters, and the template column in place of the lines.
            let others: Vec<Expr> = filters
                .iter()
                .filter(|f| !line_filters.contains(f))
                .cloned()
                .collect();
            let decided = Arc::new(decided_templates);
            // The template filter is planned above the scan (`read_blocks`),
            // whence the physical optimizer moves it into the Parquet
            // reader: rows are filtered on their template and variables
            // first, and the other columns decoded only for those that pass.
            let predicate = self.parquet_predicate(state, &others)?.parquet;
            let indices: Vec<usize> = match projection {
                Some(p) => p.clone(),
                None => (0..table_schema.fields().len()).collect(),
            };
            let scan = self.read_blocks(
                state,
                &reader,
                template_blocks,
                &indices,
                projected_schema.clone(),
                Some(decided),
                predicate,
            )?;
            inputs.push(scan);
        }
        let plan = if inputs.is_empty() {
            Arc::new(EmptyExec::new(projected_schema)) as Arc<dyn ExecutionPlan>
        } else {
            UnionExec::try_new(inputs)?
        };
        let plan = match (deletes, output_columns) {
            (Some(filter), Some(output)) => {
                Arc::new(deleted::DeletedLinesExec::new(plan, filter, output)?)
            }
            _ => plan,
        };
        Ok(Arc::new(SignalScanExec::new(plan, summary)))
    }

    /// A block's line templates' verdict on a scan's line conditions, when
    /// its sidecar lists its templates.
    async fn template_verdict(
        &self,
        block: &BlockMeta,
        conditions: &parking_lot::Mutex<LineConditions>,
    ) -> Option<BlockVerdict> {
        block.row_index_bytes?;
        let loaded = self
            .storage()
            .block_row_index(&self.tenant, self.signal, &block.id)
            .await;
        let index = index_over_block(block, "row index", loaded, row_index::RowIndex::rows)?;
        let templates = index.templates()?;
        Some(
            conditions
                .lock()
                .block_verdict(templates, index.stored_variables()),
        )
    }

    /// One Parquet scan of `blocks` (each with the rows to read, if not
    /// all), decoded into the table columns `table_indices` (`out_schema`).
    /// With `templates`, only the rows whose line template they pass.
    #[allow(clippy::too_many_arguments)]
    fn read_blocks(
        &self,
        state: &dyn Session,
        reading: &BlockReading<'_>,
        blocks: Vec<(&BlockMeta, Option<RowSelection>)>,
        table_indices: &[usize],
        out_schema: SchemaRef,
        templates: Option<Arc<TemplateDecisions>>,
        predicate: Option<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let signal = self.signal;
        let layout = block_layout(signal);
        let (mut storage_projection, mut decoders) = layout.project(table_indices);
        if reading.maps == MapColumns::Packed {
            for d in decoders.iter_mut() {
                if let codec::Stored::PackedMap(i) = *d {
                    *d = codec::Stored::Plain(i);
                }
            }
        }
        // Label columns the label filters read, packed, and not decoded
        // unless the output has them.
        for f in reading.label_filters {
            for c in f.column_refs() {
                let table_index = signal.schema().index_of(&c.name)?;
                if let codec::Stored::PackedMap(i) = layout.columns[table_index]
                    && !storage_projection.contains(&i)
                {
                    storage_projection.push(i);
                }
            }
        }
        // The template and variable columns the template filter reads, not
        // decoded.
        let decoded_width = storage_projection.len();
        if let Some(decided) = &templates {
            if layout.template.is_none() {
                return plan_err!("{signal} blocks have no line templates");
            }
            for name in TemplateFilter::columns_read(decided) {
                let column = layout.read_schema.index_of(&name)?;
                if !storage_projection.contains(&column) {
                    storage_projection.push(column);
                }
            }
        }
        let read_width = storage_projection.len();
        // Footers and page indexes of immutable blocks are cached across queries.
        let reader_factory = CachedParquetFileReaderFactory::new(
            state.runtime_env().object_store(datafusion_store_url())?,
            state.runtime_env().cache_manager.get_file_metadata_cache(),
        );
        let mut options = datafusion::config::TableParquetOptions::default();
        if reading.every_block_row_indexed {
            // The reader's predicate cache decodes a filter column in
            // whole batches (8,192 rows) around each selected row, so
            // four times the pages of a needle's 2,048-row segments;
            // it pays only when most rows are read.
            options.global.max_predicate_cache_size = Some(0);
        }
        let mut source = ParquetSource::new(layout.read_schema.clone())
            .with_table_parquet_options(options)
            .with_parquet_file_reader_factory(Arc::new(reader_factory))
            .with_enable_page_index(true)
            .with_bloom_filter_on_read(!reading.every_block_row_indexed)
            .with_pushdown_filters(true)
            .with_reorder_filters(true);
        if let Some(p) = predicate {
            source = source.with_predicate(p);
        }
        let files: Vec<PartitionedFile> = blocks
            .into_iter()
            .map(|(b, selection)| {
                let file = PartitionedFile::new(
                    self.storage().block_path(&self.tenant, signal, &b.id),
                    b.bytes,
                );
                match selection {
                    Some(rows) => file.with_extension(ParquetRowSelection::new(rows)),
                    None => file,
                }
            })
            .collect();
        let groups = split_round_robin(files, state.config().target_partitions())
            .into_iter()
            .map(FileGroup::new)
            .collect();
        let config = FileScanConfigBuilder::new(datafusion_store_url(), Arc::new(source))
            .with_projection_indices(Some(storage_projection))?
            .with_file_groups(groups)
            .with_limit(reading.limit)
            // Packed scans keep each partition's files (no work
            // stealing), so two scans see the same rows per partition.
            .with_preserve_order(reading.maps == MapColumns::Packed)
            .build();
        let mut scan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
        let on_label_sets: Vec<Arc<dyn PhysicalExpr>> = reading
            .label_filters
            .iter()
            .map(|f| {
                label_set_predicate(state, signal, f, &scan.schema())?.ok_or_else(|| {
                    datafusion::error::DataFusionError::Internal(format!(
                        "{f} has no form over packed label sets"
                    ))
                })
            })
            .collect::<Result<_>>()?;
        // Rows are filtered on their stored columns before they are decoded;
        // the template filter's columns go no further (so the Parquet
        // reader, filtering rows with them, need not keep them).
        let mut before_decoding = on_label_sets;
        if let Some(decided) = templates {
            before_decoding.push(TemplateFilter::over(&scan.schema(), decided)?);
        }
        if let Some(predicate) = conjunction_opt(before_decoding) {
            let mut filter = FilterExecBuilder::new(predicate, scan);
            if decoded_width < read_width {
                filter = filter.apply_projection(Some((0..decoded_width).collect()))?;
            }
            scan = Arc::new(filter.build()?);
        }
        Ok(Arc::new(DecodeBlockExec::new(scan, decoders, out_schema)))
    }

    /// The rows of `block` its row index says may meet every group of
    /// `keys` (ascending ranges; empty: none), and whether the index makes
    /// the block's Parquet bloom filters redundant. None when the index is
    /// unreadable or was built over other rows: the whole block is read.
    async fn block_rows_to_read(
        &self,
        block: &BlockMeta,
        keys: &[Vec<String>],
    ) -> Option<(Vec<std::ops::Range<u64>>, bool)> {
        let loaded = self
            .storage()
            .block_row_index(&self.tenant, self.signal, &block.id)
            .await;
        let index = index_over_block(block, "row index", loaded, row_index::RowIndex::rows)?;
        Some((
            index.candidate_ranges(keys),
            index.makes_parquet_blooms_redundant(),
        ))
    }

    /// Decoded samples of samples blocks kept between queries.
    pub fn samples_cache(&self) -> &crate::storage::samples_cache::SamplesCache {
        self.storage().samples_cache()
    }

    /// A raw samples block's series directory, when it has one built over
    /// the block's rows (else, with a warning for a damaged one, `None`:
    /// the block is read as a whole).
    pub async fn series_index(&self, block: &BlockMeta) -> Option<Arc<SeriesIndex>> {
        if self.signal != Signal::Samples || !block.is_raw() || block.row_index_bytes.is_none() {
            return None;
        }
        let loaded = self
            .storage()
            .block_series_index(&self.tenant, &block.id)
            .await;
        index_over_block(block, "series index", loaded, SeriesIndex::rows)
    }

    /// The tenant's log deletion filter when it can delete rows this scan reads.
    async fn delete_filter(
        &self,
        predicate: &ScanPredicate,
    ) -> Result<Option<Arc<crate::storage::deletes::DeleteFilter>>> {
        use crate::ingest::limits::DeletionMode;
        if self.signal != Signal::Logs
            || self.distributor.limits().get(&self.tenant).deletion_mode == DeletionMode::Disabled
        {
            return Ok(None);
        }
        let deletes = self
            .storage()
            .delete_requests()
            .get(&self.tenant)
            .await
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        Ok(deletes.filter.clone().filter(|f| {
            let (min, max) = f.time_range();
            predicate.time_overlaps(min, max)
        }))
    }

    /// The filters that only touch columns stored as-is in blocks, as one
    /// physical predicate for the Parquet reader, and those of them on one
    /// packed label column (they also choose row groups by label sets).
    fn parquet_predicate(&self, state: &dyn Session, filters: &[Expr]) -> Result<BlockPredicates> {
        let layout = block_layout(self.signal);
        let table = self.signal.schema();
        // Against the schema the reader produces: a filter on a log line
        // reads it as a view, copying nothing (its literals are coerced).
        let df_schema = DFSchema::try_from(layout.read_schema.as_ref().clone())?;
        // Map entries are read from the packed label sets (packed_filter).
        let packed = packed_columns(self.signal);
        let mut label_filters = Vec::new();
        let pushable: Vec<Arc<dyn PhysicalExpr>> = filters
            .iter()
            .filter_map(|f| packed_filter::rewrite(unnormalize_col(f.clone()), &packed))
            .filter(|f| {
                f.column_refs().iter().all(|c| {
                    table
                        .index_of(&c.name)
                        .is_ok_and(|t| layout.is_plain(t) || packed.contains(c.name.as_str()))
                })
            })
            .filter_map(|f| {
                let on_one_packed_column = matches!(
                    f.column_refs().iter().collect::<Vec<_>>().as_slice(),
                    [c] if packed.contains(c.name.as_str())
                );
                let f = coerced_physical(state, f, &df_schema).ok()?;
                match on_one_packed_column {
                    true => match PerLabelSet::try_new(f.clone()) {
                        Ok(Some(wrapped)) => {
                            let wrapped = Arc::new(wrapped);
                            label_filters.push(wrapped.clone());
                            Some(wrapped as Arc<dyn PhysicalExpr>)
                        }
                        _ => Some(f),
                    },
                    false => Some(f),
                }
            })
            .collect();
        Ok(BlockPredicates {
            parquet: conjunction_opt(pushable),
            label_sets: label_filters,
        })
    }

    /// The row groups of `block` where a label set of each filter's packed
    /// column passes it (see [`label_sets`]); all of them when the sets
    /// cannot be read.
    async fn row_groups_to_read(
        &self,
        state: &dyn Session,
        block: &BlockMeta,
        filters: &[Arc<PerLabelSet>],
    ) -> RowGroupChoice {
        if filters.is_empty() {
            return RowGroupChoice::All;
        }
        let mut keep: Option<Vec<bool>> = None;
        let mut rows = Vec::new();
        for filter in filters {
            let sets = match self.block_label_sets(state, block, filter.column()).await {
                Ok(sets) => sets,
                Err(e) => {
                    tracing::warn!(block = %block.id, error = %e, "label sets unreadable; reading every row group");
                    return RowGroupChoice::All;
                }
            };
            let passing = match sets.row_groups_passing(|s| filter.any_set_passes(s)) {
                Ok(passing) => passing,
                Err(e) => {
                    tracing::warn!(block = %block.id, error = %e, "label sets not evaluated; reading every row group");
                    return RowGroupChoice::All;
                }
            };
            rows = sets.row_group_rows().collect();
            keep = Some(match keep {
                None => passing,
                Some(k) => k.iter().zip(passing).map(|(a, b)| *a && b).collect(),
            });
        }
        match keep {
            Some(keep) if keep.len() == rows.len() => {
                RowGroupChoice::keeping(&keep, rows.into_iter())
            }
            _ => RowGroupChoice::All,
        }
    }

    /// `column`'s label sets of `block`, from the index cache or the block.
    async fn block_label_sets(
        &self,
        state: &dyn Session,
        block: &BlockMeta,
        column: &str,
    ) -> Result<Arc<BlockLabelSets>> {
        let kind = BlockLabelSets::cache_kind(column);
        let cache = self.storage().index_cache();
        if let Some(sets) = cache.get::<BlockLabelSets>(&block.id, &kind) {
            return Ok(sets);
        }
        let file = PartitionedFile::new(
            self.storage()
                .block_path(&self.tenant, self.signal, &block.id),
            block.bytes,
        );
        let sets = Arc::new(
            BlockLabelSets::read(
                &state.runtime_env().object_store(datafusion_store_url())?,
                state.runtime_env().cache_manager.get_file_metadata_cache(),
                &file.object_meta,
                column,
            )
            .await?,
        );
        cache.insert(&block.id, &kind, sets.clone());
        Ok(sets)
    }
}

/// Whether a logs scan answers `filter` exactly itself (see
/// `supports_filters_pushdown`).
fn answered_in_scan(filter: &Expr) -> bool {
    LineCondition::of(filter).is_some() || is_label_set_filter(filter)
}

/// Whether a logs filter reads only the keys of one packed label column
/// (`labels['env'] = 'prod'`, `structured_metadata['level'] IN (…)`): such
/// a filter is decided once per distinct label set.
fn is_label_set_filter(filter: &Expr) -> bool {
    let packed = packed_columns(Signal::Logs);
    let refs = filter.column_refs();
    let [column] = refs.iter().collect::<Vec<_>>()[..] else {
        return false;
    };
    packed.contains(column.name.as_str())
        && !filter.is_volatile()
        && packed_filter::rewrite(unnormalize_col(filter.clone()), &packed).is_some()
}

/// The table columns of `signal` stored as packed label sets.
fn packed_columns(signal: Signal) -> HashSet<&'static str> {
    let layout = block_layout(signal);
    layout
        .columns
        .iter()
        .filter_map(|stored| match *stored {
            codec::Stored::PackedMap(i) => Some(layout.schema.field(i).name().as_str()),
            _ => None,
        })
        .collect()
}

/// `filter` (an [`is_label_set_filter`] of `signal`) over `schema`, the
/// packed storage columns a block scan reads, decided per distinct label set.
fn label_set_predicate(
    state: &dyn Session,
    signal: Signal,
    filter: &Expr,
    schema: &SchemaRef,
) -> Result<Option<Arc<dyn PhysicalExpr>>> {
    let packed = packed_columns(signal);
    let Some(rewritten) = packed_filter::rewrite(unnormalize_col(filter.clone()), &packed) else {
        return Ok(None);
    };
    let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
    Ok(Some(PerLabelSet::wrap(coerced_physical(
        state, rewritten, &df_schema,
    )?)?))
}

/// `filter` over `schema` with its literals coerced to the columns' types,
/// made physical.
fn coerced_physical(
    state: &dyn Session,
    filter: Expr,
    schema: &DFSchema,
) -> Result<Arc<dyn PhysicalExpr>> {
    let coerced = filter.rewrite(&mut TypeCoercionRewriter::new(schema))?.data;
    state.create_physical_expr(coerced, schema)
}

/// A sidecar index of `block` as loaded (`kind` names it in warnings),
/// when it was built over the block's rows (`rows` of the index); else,
/// with a warning, `None`: the block is read as a whole.
fn index_over_block<T>(
    block: &BlockMeta,
    kind: &str,
    loaded: crate::error::Result<Arc<T>>,
    rows: impl Fn(&T) -> u64,
) -> Option<Arc<T>> {
    match loaded {
        Ok(index) if rows(&index) == block.rows => Some(index),
        Ok(index) => {
            tracing::warn!(
                block = %block.id,
                index = kind,
                index_rows = rows(&index),
                block_rows = block.rows,
                "block index does not match its block; reading the whole block"
            );
            None
        }
        Err(e) => {
            tracing::warn!(block = %block.id, index = kind, error = %e, "block index unreadable; reading the whole block");
            None
        }
    }
}

/// How a scan's Parquet readers read its blocks.
struct BlockReading<'a> {
    /// Every block's rows were chosen by a fine row index (see the scan).
    every_block_row_indexed: bool,
    limit: Option<usize>,
    maps: MapColumns,
    /// Filters on one packed label column each, applied to the packed
    /// label sets before the rows are decoded.
    label_filters: &'a [Expr],
}

/// What a scan's filters ask of the blocks it reads.
struct BlockPredicates {
    /// For the Parquet reader (row groups, pages, rows).
    parquet: Option<Arc<dyn PhysicalExpr>>,
    /// Those of them on one packed label column, which also choose row
    /// groups by their label sets.
    label_sets: Vec<Arc<PerLabelSet>>,
}

/// Which blocks of a table a scan reads, and whether it reads the head.
#[derive(Debug, Clone, Copy)]
pub enum BlockChoice<'a> {
    /// The head and every block.
    All,
    /// The head and every block but these.
    Except(&'a HashSet<String>),
    /// These blocks, and not the head.
    Only(&'a HashSet<String>),
    /// The blocks of this manifest (not necessarily the newest) given rows
    /// to read, only those rows, and not the head.
    Rows(&'a Arc<Manifest>, &'a HashMap<String, RowSelection>),
}

impl<'a> BlockChoice<'a> {
    fn reads_head(&self) -> bool {
        matches!(self, BlockChoice::All | BlockChoice::Except(_))
    }

    fn reads(&self, id: &str) -> bool {
        match self {
            BlockChoice::All => true,
            BlockChoice::Except(ids) => !ids.contains(id),
            BlockChoice::Only(ids) => ids.contains(id),
            BlockChoice::Rows(_, rows) => rows.contains_key(id),
        }
    }

    /// The only rows of block `id` to read, if the choice names them.
    fn rows(&self, id: &str) -> Option<&'a RowSelection> {
        match self {
            BlockChoice::Rows(_, rows) => rows.get(id),
            _ => None,
        }
    }
}

/// How a scan returns the table's map columns (labels, attributes, metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapColumns {
    /// As `Map<Utf8, Utf8>`, the table's type.
    Decoded,
    /// As packed label sets (`storage::codec::packed_map_type`), the form
    /// blocks store them in: no per-row map is built.
    Packed,
}

/// Spreads items over at most `n` non-empty groups.
fn split_round_robin<T>(items: Vec<T>, n: usize) -> Vec<Vec<T>> {
    let n = n.max(1).min(items.len().max(1));
    let mut groups: Vec<Vec<T>> = (0..n).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        groups[i % n].push(item);
    }
    groups.retain(|g| !g.is_empty());
    groups
}

/// The three tables of `tenant`, by name.
pub fn tables_for(
    tenant: &str,
    distributor: &Arc<Distributor>,
) -> Vec<(&'static str, Arc<dyn TableProvider>)> {
    Signal::ALL
        .iter()
        .map(|&s| {
            (
                s.table_name(),
                Arc::new(SignalTable::new(tenant, s, distributor.clone()))
                    as Arc<dyn TableProvider>,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, RecordBatch};
    use arrow::datatypes::{Field, Int64Type, Schema, TimestampNanosecondType};
    use object_store::path::Path as StorePath;
    use object_store::{ObjectStoreExt, PutPayload};
    use parquet::arrow::ArrowWriter;

    use crate::engine::Engine;
    use crate::model::Signal;
    use crate::model::builders::{SpanRow, SpansBuilder};
    use crate::storage::manifest::{BlockMeta, Layout};
    use crate::storage::{block, bloom, codec};

    /// Span blocks written before `end_time` was derived on read still
    /// carry the column; they must answer exactly like new blocks.
    #[tokio::test]
    async fn span_blocks_with_a_stored_end_time_still_read() {
        let (engine, dir) = Engine::open_scratch("o11ydb-legacy-spans").await.unwrap();
        let mut b = SpansBuilder::new();
        for (i, (start, end)) in [(5_000i64, 9_000i64), (1_000, 1_000), (3_000, 70_000)]
            .into_iter()
            .enumerate()
        {
            b.push(SpanRow {
                trace_id: format!("{:032x}", 7),
                span_id: format!("{:016x}", i + 1),
                name: "GET /".into(),
                kind: "server",
                service: "api".into(),
                start_ns: start,
                end_ns: end,
                status_code: "unset",
                ..Default::default()
            });
        }
        let batch = crate::model::normalize::normalize(Signal::Spans, &b.finish()).unwrap();
        // The old layout: today's storage columns plus end_time after start_time.
        let sorted = block::sort_for_block(Signal::Spans, &batch).unwrap();
        let stored = codec::encode_for_block(Signal::Spans, &sorted).unwrap();
        let at = stored.schema().index_of("start_time").unwrap() + 1;
        let mut fields: Vec<Field> = stored
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let mut columns = stored.columns().to_vec();
        let end_field = Signal::Spans
            .schema()
            .field_with_name("end_time")
            .unwrap()
            .clone();
        fields.insert(at, end_field);
        columns.insert(at, sorted.column_by_name("end_time").unwrap().clone());
        let legacy = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let mut parquet = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut parquet, legacy.schema(), None).unwrap();
        writer.write(&legacy).unwrap();
        writer.close().unwrap();

        publish_block(
            &engine,
            Signal::Spans,
            "legacy",
            &batch,
            parquet,
            (1_000, 5_000),
        )
        .await;

        let ctx = engine.session("t").await.unwrap();
        let rows = ctx
            .sql(
                "SELECT end_time, duration_ns FROM spans \
                 WHERE end_time >= to_timestamp_nanos(9000) ORDER BY end_time",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let batch = arrow::compute::concat_batches(&rows[0].schema(), &rows).unwrap();
        let ends: Vec<i64> = batch
            .column(0)
            .as_primitive::<TimestampNanosecondType>()
            .values()
            .to_vec();
        let durations: Vec<i64> = batch
            .column(1)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        assert_eq!(ends, vec![9_000, 70_000]);
        assert_eq!(durations, vec![4_000, 67_000]);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Publishes a hand-made block of tenant `t` (its Parquet bytes, and
    /// the table rows it holds for the bloom index).
    async fn publish_block(
        engine: &Engine,
        signal: Signal,
        id: &str,
        rows: &RecordBatch,
        parquet: Vec<u8>,
        (min_time, max_time): (i64, i64),
    ) -> BlockMeta {
        let storage = engine.ingester().storage();
        let layout = Layout::new("t", signal);
        let store = storage.object_store();
        let mut bloom = bloom::BloomBuilder::new(signal);
        bloom.add_batch(rows);
        let index = bloom.finish().encode();
        let meta = BlockMeta {
            id: id.into(),
            min_time,
            max_time,
            rows: rows.num_rows() as u64,
            bytes: parquet.len() as u64,
            index_bytes: index.len() as u64,
            created_at_ms: 0,
            resolution_ms: 0,
            edges_bytes: None,
            row_index_bytes: None,
        };
        store
            .put(&StorePath::from(layout.index(id)), PutPayload::from(index))
            .await
            .unwrap();
        store
            .put(
                &StorePath::from(layout.block(id)),
                PutPayload::from(parquet),
            )
            .await
            .unwrap();
        let manifest = storage
            .publish("t", signal, vec![meta.clone()], None)
            .await
            .unwrap();
        storage.install(manifest);
        meta
    }

    /// Samples blocks written before native histograms had a column read
    /// with null histograms, beside blocks that have one, and merge with them.
    #[tokio::test]
    async fn samples_blocks_without_a_histogram_column_read_and_merge() {
        use crate::model::builders::SamplesBuilder;
        use crate::model::histogram::FloatHistogram;
        use crate::model::normalize::normalize;
        use crate::storage::compactor::merge::{MergeSettings, merge_blocks};

        let (engine, dir) = Engine::open_scratch("o11ydb-legacy-samples").await.unwrap();
        let mut floats = SamplesBuilder::new();
        floats.push_series("up", &[("job", "a")], &[(1_000, 1.0), (2_000, 2.0)]);
        let floats = normalize(Signal::Samples, &floats.finish()).unwrap();
        let sorted = block::sort_for_block(Signal::Samples, &floats).unwrap();
        let stored = codec::encode_for_block(Signal::Samples, &sorted).unwrap();
        let keep: Vec<usize> = (0..stored.num_columns())
            .filter(|&i| stored.schema().field(i).name() != "histogram")
            .collect();
        let legacy = stored.project(&keep).unwrap();
        let mut parquet = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut parquet, legacy.schema(), None).unwrap();
        writer.write(&legacy).unwrap();
        writer.close().unwrap();
        let old = publish_block(
            &engine,
            Signal::Samples,
            "legacy",
            &floats,
            parquet,
            (1_000, 2_000),
        )
        .await;

        let mut histograms = SamplesBuilder::new();
        let h = FloatHistogram {
            count: 2.0,
            sum: 3.0,
            ..Default::default()
        };
        let id = crate::model::labels::series_id("latency", &[("job", "a")]);
        histograms.push_histograms_with_id("latency", &[("job", "a")], id, &[(3_000, h.clone())]);
        let histograms = normalize(Signal::Samples, &histograms.finish()).unwrap();
        let parquet = block::write_block(Signal::Samples, &histograms)
            .unwrap()
            .to_vec();
        let new = publish_block(
            &engine,
            Signal::Samples,
            "current",
            &histograms,
            parquet,
            (3_000, 3_000),
        )
        .await;

        let ctx = engine.session("t").await.unwrap();
        let rows = ctx
            .sql("SELECT metric, histogram IS NULL AS float FROM samples ORDER BY timestamp")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let batch = arrow::compute::concat_batches(&rows[0].schema(), &rows).unwrap();
        let floats: Vec<bool> = batch.column(1).as_boolean().iter().flatten().collect();
        assert_eq!(floats, vec![true, true, false]);

        let storage = engine.ingester().storage();
        let settings = MergeSettings {
            storage,
            pool: Arc::new(datafusion::execution::memory_pool::UnboundedMemoryPool::default()),
            scratch_dir: dir.join("merge-scratch"),
            retention: None,
            deletions: None,
            now_ms: 10_000,
        };
        let merged = merge_blocks(&settings, "t", Signal::Samples, &[old, new])
            .await
            .unwrap();
        assert_eq!(merged.block.expect("rows survive").rows, 3);
        let _ = std::fs::remove_dir_all(dir);
    }
}
