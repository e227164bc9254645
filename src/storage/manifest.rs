//! Manifests: the list of blocks that make up one tenant's signal.
//!
//! Each manifest is an immutable JSON object
//! `tenants/<tenant>/<signal>/manifests/<version, 20 digits>.json`, created
//! with a conditional put (`PutMode::Create`), so two writers can never both
//! publish the same version and a reader sees either the old or the new list
//! of blocks, never half of one. The newest version is the current state;
//! older ones are kept briefly for readers that started before.
//!
//! Blocks a compaction replaced (or retention dropped) leave `blocks` at
//! once but are listed in `pending_deletions` until their files are deleted,
//! `deletion_delay` later, so queries that pinned an older manifest keep
//! reading them.

use serde::{Deserialize, Serialize};

use crate::model::Signal;

/// One Parquet block and what is known about it without opening it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BlockMeta {
    /// Time-sortable unique id; the block is `blocks/<id>.parquet`, its bloom `blocks/<id>.index`.
    pub id: String,
    /// Inclusive event-time range, in the signal's unit (ms for samples, ns otherwise).
    pub min_time: i64,
    pub max_time: i64,
    pub rows: u64,
    pub bytes: u64,
    pub index_bytes: u64,
    /// Wall-clock creation time, ms since the epoch.
    pub created_at_ms: i64,
    /// Samples only: 0 for raw samples, else the window (ms) of a
    /// downsampled block's aggregates. Manifests written before
    /// downsampling existed have no field: their blocks are raw.
    #[serde(default, skip_serializing_if = "is_raw")]
    pub resolution_ms: i64,
    /// Span blocks: the size of the service-graph edges file
    /// `blocks/<id>.edges`; `None` for blocks written without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edges_bytes: Option<u64>,
    /// Log and samples blocks: the size of the row-index sidecar
    /// `blocks/<id>.rows` (row-segment blooms of a log block, see
    /// `storage::row_index`; the series directory of a samples block, see
    /// `storage::series_index`); `None` for blocks written without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_index_bytes: Option<u64>,
}

fn is_raw(resolution_ms: &i64) -> bool {
    *resolution_ms == 0
}

impl BlockMeta {
    /// Whether the block holds the signal's rows as written (not downsampled).
    pub fn is_raw(&self) -> bool {
        self.resolution_ms == 0
    }

    pub fn overlaps(&self, min: Option<i64>, max: Option<i64>) -> bool {
        min.is_none_or(|m| self.max_time >= m) && max.is_none_or(|m| self.min_time <= m)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Manifest {
    pub version: u64,
    pub tenant: String,
    pub signal: String,
    /// Every WAL record of this tenant's signal with an LSN up to this one is in `blocks`.
    pub flushed_lsn: Option<u64>,
    pub blocks: Vec<BlockMeta>,
    /// Blocks no longer part of the signal whose files are still kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_deletions: Vec<PendingDeletion>,
}

/// A replaced block whose files are deleted once `marked_at_ms` is older
/// than the compactor's `deletion_delay`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PendingDeletion {
    pub id: String,
    pub bytes: u64,
    pub index_bytes: u64,
    /// Wall-clock time the block left `blocks`, ms since the epoch.
    pub marked_at_ms: i64,
}

impl Manifest {
    pub fn empty(tenant: &str, signal: Signal) -> Self {
        Manifest {
            version: 0,
            tenant: tenant.to_string(),
            signal: signal.table_name().to_string(),
            flushed_lsn: None,
            blocks: Vec::new(),
            pending_deletions: Vec::new(),
        }
    }

    pub fn total_rows(&self) -> u64 {
        self.blocks.iter().map(|b| b.rows).sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.blocks.iter().map(|b| b.bytes).sum()
    }

    /// Bytes of the blocks' sidecars: bloom indexes, edges files and row indexes.
    pub fn total_index_bytes(&self) -> u64 {
        self.blocks
            .iter()
            .map(|b| b.index_bytes + b.edges_bytes.unwrap_or(0) + b.row_index_bytes.unwrap_or(0))
            .sum()
    }
}

/// Object-store paths of a tenant's signal.
#[derive(Debug, Clone)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    pub fn new(tenant: &str, signal: Signal) -> Self {
        Layout {
            prefix: format!("tenants/{tenant}/{}", signal.table_name()),
        }
    }

    /// `tenants/<tenant>/<signal>`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn manifests_dir(&self) -> String {
        format!("{}/manifests", self.prefix)
    }

    pub fn manifest(&self, version: u64) -> String {
        format!("{}/manifests/{version:020}.json", self.prefix)
    }

    pub fn block(&self, id: &str) -> String {
        format!("{}/blocks/{id}.parquet", self.prefix)
    }

    pub fn index(&self, id: &str) -> String {
        format!("{}/blocks/{id}.index", self.prefix)
    }

    /// A span block's service-graph edges file.
    pub fn edges(&self, id: &str) -> String {
        format!("{}/blocks/{id}.edges", self.prefix)
    }

    /// A block's row-index sidecar (log: row-segment blooms; samples: series directory).
    pub fn row_index(&self, id: &str) -> String {
        format!("{}/blocks/{id}.rows", self.prefix)
    }

    /// The block id of a `blocks/<id>.parquet`, `.index`, `.edges` or `.rows` object.
    pub fn block_id_of(path: &str) -> Option<&str> {
        let name = path.rsplit('/').next()?;
        name.strip_suffix(".parquet")
            .or_else(|| name.strip_suffix(".index"))
            .or_else(|| name.strip_suffix(".edges"))
            .or_else(|| name.strip_suffix(".rows"))
    }

    /// Parses the version out of a manifest object name.
    pub fn version_of(path: &str) -> Option<u64> {
        path.rsplit('/').next()?.strip_suffix(".json")?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_paths_and_versions() {
        let l = Layout::new("acme", Signal::Spans);
        assert_eq!(
            l.manifest(7),
            "tenants/acme/spans/manifests/00000000000000000007.json"
        );
        assert_eq!(Layout::version_of(&l.manifest(7)), Some(7));
        assert_eq!(
            Layout::version_of("tenants/acme/spans/manifests/x.json"),
            None
        );
        assert_eq!(l.block("b1"), "tenants/acme/spans/blocks/b1.parquet");
    }

    #[test]
    fn manifests_without_resolutions_read_as_raw() {
        let old = r#"{"version":3,"tenant":"t","signal":"samples","flushed_lsn":null,
            "blocks":[{"id":"a","min_time":1,"max_time":2,"rows":3,"bytes":4,"index_bytes":5,"created_at_ms":6}]}"#;
        let m: Manifest = serde_json::from_str(old).unwrap();
        assert!(m.blocks[0].is_raw());
        let mut five = m.blocks[0].clone();
        five.resolution_ms = 300_000;
        let text = serde_json::to_string(&five).unwrap();
        assert!(text.contains("\"resolution_ms\":300000"), "{text}");
        assert!(
            !serde_json::to_string(&m.blocks[0])
                .unwrap()
                .contains("resolution")
        );
        let back: BlockMeta = serde_json::from_str(&text).unwrap();
        assert_eq!(back, five);
    }

    #[test]
    fn overlap_is_inclusive() {
        let b = BlockMeta {
            id: "x".into(),
            min_time: 10,
            max_time: 20,
            rows: 1,
            bytes: 1,
            index_bytes: 1,
            created_at_ms: 0,
            resolution_ms: 0,
            edges_bytes: None,
            row_index_bytes: None,
        };
        assert!(b.overlaps(Some(20), None));
        assert!(!b.overlaps(Some(21), None));
        assert!(b.overlaps(None, Some(10)));
        assert!(!b.overlaps(None, Some(9)));
        assert!(b.overlaps(None, None));
    }
}
