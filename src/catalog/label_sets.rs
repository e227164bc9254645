//! The distinct label sets of a block's packed map column (stream labels of
//! logs, series labels of samples), per row group, read from the column
//! chunks' Parquet dictionary pages: an exact index of which streams or
//! series each row group holds, with no sidecar file.
//!
//! What flows through: the block's Parquet footer (DataFusion's file
//! metadata cache, shared with the scans), one byte range per row group (the
//! column chunk's dictionary page), and out the packed sets of each row
//! group — or `None` for a row group whose column chunk is not wholly
//! dictionary-encoded (a writer may fall back to plain pages when a
//! dictionary grows too big), which then has to be read. Decoded sets are
//! kept in the storage index cache, so a block's pages are read once.
//!
//! A scan evaluates its filters on one packed column
//! ([`super::packed_filter::PerLabelSet`]) against these sets: a block where
//! no row group has a passing set is skipped, and row groups without one are
//! left out of the rows read. Unlike a bloom, the answer has no false
//! positives.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BinaryArray};
use bytes::{Buf, Bytes};
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use object_store::{ObjectMeta, ObjectStore};
use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use parquet::basic::Encoding;
use parquet::column::page::{Page, PageReader};
use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData};
use parquet::file::page_index::offset_index::PageLocation;
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::serialized_reader::SerializedPageReader;

use crate::storage::index_cache::CachedIndex;

/// One block's label sets of one packed column.
#[derive(Debug)]
pub struct BlockLabelSets {
    /// Per row group: its rows and, when known, its distinct sets.
    row_groups: Vec<(u64, Option<ArrayRef>)>,
}

impl CachedIndex for BlockLabelSets {
    fn memory_bytes(&self) -> u64 {
        let sets: usize = self
            .row_groups
            .iter()
            .filter_map(|(_, sets)| sets.as_ref())
            .map(|s| s.get_array_memory_size())
            .sum();
        (sets + self.row_groups.len() * std::mem::size_of::<(u64, Option<ArrayRef>)>()) as u64
    }
}

/// Which row groups of a block may hold rows a scan wants.
#[derive(Debug, PartialEq)]
pub enum RowGroupChoice {
    /// Every row group.
    All,
    /// None: the block can be skipped.
    None,
    /// These rows (a selection over the whole block) and how many are skipped.
    Some(RowSelection, u64),
}

impl BlockLabelSets {
    /// The index cache kind of `column`'s sets.
    pub fn cache_kind(column: &str) -> String {
        format!("label_sets:{column}")
    }

    /// Reads `column`'s sets of the block at `object` (see the module doc).
    pub async fn read(
        store: &Arc<dyn ObjectStore>,
        metadata_cache: Arc<FileMetadataCache>,
        object: &ObjectMeta,
        column: &str,
    ) -> Result<BlockLabelSets> {
        let metadata = DFParquetMetadata::new(store.as_ref(), object)
            .with_file_metadata_cache(Some(metadata_cache))
            .fetch_metadata()
            .await?;
        let leaf = leaf_index(&metadata, column)?;
        let chunks: Vec<&ColumnChunkMetaData> = metadata
            .row_groups()
            .iter()
            .map(|rg| rg.column(leaf))
            .collect();
        // The dictionary page of each wholly dictionary-encoded chunk.
        let ranges: Vec<Option<std::ops::Range<u64>>> =
            chunks.iter().map(|c| dictionary_range(c)).collect();
        let wanted: Vec<std::ops::Range<u64>> = ranges.iter().flatten().cloned().collect();
        let mut pages = store
            .get_ranges(&object.location, &wanted)
            .await
            .map_err(|e| DataFusionError::ObjectStore(Box::new(e)))?
            .into_iter();
        let mut row_groups = Vec::with_capacity(chunks.len());
        for ((rg, chunk), range) in metadata.row_groups().iter().zip(&chunks).zip(ranges) {
            let sets = match range {
                None => None,
                Some(range) => {
                    let bytes = pages.next().ok_or_else(|| {
                        DataFusionError::Internal("a dictionary page range went unread".into())
                    })?;
                    Some(decode_dictionary(chunk, range, bytes)?)
                }
            };
            row_groups.push((rg.num_rows() as u64, sets));
        }
        Ok(BlockLabelSets { row_groups })
    }

    /// Whether each row group may hold a row passing a filter, given
    /// `any_passes` for a column of that row group's sets (a row group whose
    /// sets are unknown may).
    pub fn row_groups_passing(
        &self,
        mut any_passes: impl FnMut(&ArrayRef) -> Result<bool>,
    ) -> Result<Vec<bool>> {
        self.row_groups
            .iter()
            .map(|(_, sets)| match sets {
                Some(sets) => any_passes(sets),
                None => Ok(true),
            })
            .collect()
    }

    /// The rows of each row group.
    pub fn row_group_rows(&self) -> impl Iterator<Item = u64> + '_ {
        self.row_groups.iter().map(|(rows, _)| *rows)
    }
}

impl RowGroupChoice {
    /// The choice keeping the row groups marked in `keep` (`rows` each).
    pub fn keeping(keep: &[bool], rows: impl Iterator<Item = u64>) -> RowGroupChoice {
        if keep.iter().all(|k| *k) {
            return RowGroupChoice::All;
        }
        if keep.iter().all(|k| !*k) {
            return RowGroupChoice::None;
        }
        let mut skipped = 0;
        let selectors: Vec<RowSelector> = rows
            .zip(keep)
            .map(|(rows, keep)| match keep {
                true => RowSelector::select(rows as usize),
                false => {
                    skipped += rows;
                    RowSelector::skip(rows as usize)
                }
            })
            .collect();
        RowGroupChoice::Some(RowSelection::from(selectors), skipped)
    }
}

/// The leaf column of a top-level column named `column`.
fn leaf_index(metadata: &ParquetMetaData, column: &str) -> Result<usize> {
    metadata
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().parts() == [column])
        .ok_or_else(|| DataFusionError::Plan(format!("block has no column {column}")))
}

/// The byte range of a column chunk's dictionary page, when every data
/// page of the chunk is dictionary-encoded (so the dictionary holds every
/// value of the chunk).
fn dictionary_range(chunk: &ColumnChunkMetaData) -> Option<std::ops::Range<u64>> {
    let start = u64::try_from(chunk.dictionary_page_offset()?).ok()?;
    let data = u64::try_from(chunk.data_page_offset()).ok()?;
    let dictionary_only =
        |e: &Encoding| matches!(e, Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY);
    let all_dictionary = match (
        chunk.page_encoding_stats_mask(),
        chunk.page_encoding_stats(),
    ) {
        (Some(mask), _) => {
            mask.is_only(Encoding::RLE_DICTIONARY) || mask.is_only(Encoding::PLAIN_DICTIONARY)
        }
        (None, Some(stats)) => stats
            .iter()
            .filter(|s| {
                matches!(
                    s.page_type,
                    parquet::basic::PageType::DATA_PAGE | parquet::basic::PageType::DATA_PAGE_V2
                )
            })
            .all(|s| dictionary_only(&s.encoding)),
        (None, None) => false,
    };
    (all_dictionary && start < data).then_some(start..data)
}

/// The bytes of one range of a file, readable at the file's offsets.
struct FileRange {
    start: u64,
    bytes: Bytes,
}

impl Length for FileRange {
    fn len(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
}

impl ChunkReader for FileRange {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(self
            .get_bytes(start, (self.len() - start.min(self.len())) as usize)?
            .reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let from = start
            .checked_sub(self.start)
            .map(|f| f as usize)
            .filter(|f| f + length <= self.bytes.len())
            .ok_or_else(|| {
                parquet::errors::ParquetError::General(format!(
                    "read of {length} bytes at {start} outside the dictionary page"
                ))
            })?;
        Ok(self.bytes.slice(from..from + length))
    }
}

/// The values of a chunk's dictionary page (`bytes`, the file's `range`).
fn decode_dictionary(
    chunk: &ColumnChunkMetaData,
    range: std::ops::Range<u64>,
    bytes: Bytes,
) -> Result<ArrayRef> {
    let first_data_page = PageLocation {
        offset: range.end as i64,
        compressed_page_size: 0,
        first_row_index: 0,
    };
    let reader = Arc::new(FileRange {
        start: range.start,
        bytes,
    });
    let mut pages = SerializedPageReader::new(reader, chunk, 0, Some(vec![first_data_page]))?;
    let Some(Page::DictionaryPage {
        buf,
        num_values,
        encoding: Encoding::PLAIN | Encoding::PLAIN_DICTIONARY,
        ..
    }) = pages.get_next_page()?
    else {
        return Err(DataFusionError::Internal(format!(
            "column {} has no plain dictionary page at {}",
            chunk.column_path(),
            range.start
        )));
    };
    plain_byte_arrays(&buf, num_values as usize).ok_or_else(|| {
        DataFusionError::Internal(format!(
            "corrupt dictionary page of column {} at {}",
            chunk.column_path(),
            range.start
        ))
    })
}

/// `count` PLAIN-encoded byte arrays (each a u32 LE length and its bytes).
fn plain_byte_arrays(mut buf: &[u8], count: usize) -> Option<ArrayRef> {
    let mut values: Vec<&[u8]> = Vec::with_capacity(count);
    for _ in 0..count {
        let len = u32::from_le_bytes(buf.get(..4)?.try_into().ok()?) as usize;
        values.push(buf.get(4..4 + len)?);
        buf = &buf[4 + len..];
    }
    Some(Arc::new(BinaryArray::from(values)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::execution::runtime_env::RuntimeEnv;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStoreExt, PutPayload};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    /// A file of `row_groups` row groups of 100 rows, row group `i` holding
    /// the values `values(i, row)`, and its label sets.
    async fn sets_of(
        props: WriterProperties,
        row_groups: usize,
        values: impl Fn(usize, usize) -> String,
    ) -> BlockLabelSets {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "labels",
            DataType::Binary,
            false,
        )]));
        let mut file = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut file, schema.clone(), Some(props)).unwrap();
        for rg in 0..row_groups {
            let column: Vec<Vec<u8>> = (0..100).map(|row| values(rg, row).into_bytes()).collect();
            let column = BinaryArray::from_iter_values(column);
            let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(column)]).unwrap();
            writer.write(&batch).unwrap();
            writer.flush().unwrap();
        }
        writer.close().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("block.parquet");
        store.put(&path, PutPayload::from(file)).await.unwrap();
        let object = store.head(&path).await.unwrap();
        let cache = RuntimeEnv::default()
            .cache_manager
            .get_file_metadata_cache();
        BlockLabelSets::read(&store, cache, &object, "labels")
            .await
            .unwrap()
    }

    fn holds(value: &'static [u8]) -> impl FnMut(&ArrayRef) -> Result<bool> {
        move |sets| Ok(sets.as_binary::<i32>().iter().any(|v| v == Some(value)))
    }

    #[tokio::test]
    async fn dictionary_pages_give_each_row_groups_sets() {
        let sets = sets_of(WriterProperties::default(), 3, |rg, row| match rg {
            0 => "a".into(),
            1 => ["b", "c"][row % 2].into(),
            _ => ["c", "d"][row % 2].into(),
        })
        .await;
        assert_eq!(
            sets.row_groups_passing(holds(b"a")).unwrap(),
            [true, false, false]
        );
        assert_eq!(
            sets.row_groups_passing(holds(b"c")).unwrap(),
            [false, true, true]
        );
        let rows: Vec<u64> = sets.row_group_rows().collect();
        assert_eq!(rows, [100, 100, 100]);
        let choice = |keep: &[bool]| RowGroupChoice::keeping(keep, rows.iter().copied());
        assert_eq!(choice(&[true, true, true]), RowGroupChoice::All);
        assert_eq!(choice(&[false, false, false]), RowGroupChoice::None);
        let RowGroupChoice::Some(selection, skipped) = choice(&[false, true, false]) else {
            panic!("some row groups are kept");
        };
        assert_eq!(skipped, 200);
        assert_eq!(selection.row_count(), 100);
        assert_eq!(
            Vec::from(selection),
            [
                RowSelector::skip(100),
                RowSelector::select(100),
                RowSelector::skip(100)
            ]
        );
    }

    #[tokio::test]
    async fn row_groups_without_a_whole_dictionary_are_always_read() {
        // A dictionary page limit the distinct values outgrow: the writer
        // falls back to plain pages, and the dictionary is incomplete.
        let props = WriterProperties::builder()
            .set_dictionary_page_size_limit(64)
            .set_data_page_row_count_limit(10)
            .set_write_batch_size(10)
            .build();
        let sets = sets_of(props, 2, |rg, row| match rg {
            0 => "a".into(),
            _ => format!("value-{row}"),
        })
        .await;
        assert_eq!(sets.row_groups_passing(holds(b"x")).unwrap(), [false, true]);
    }
}
