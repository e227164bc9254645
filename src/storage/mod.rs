//! Blocks on object storage: writing a frozen head as a Parquet block plus
//! its bloom index, publishing manifests atomically, and serving the current
//! manifest and block indexes to the table providers.
//!
//! The store is any `object_store` backend — a local directory by default,
//! `s3://` or `memory://` by URL — rooted at a prefix, so every path here is
//! relative (`tenants/<tenant>/<signal>/...`).

pub mod block;
pub mod bloom;
pub mod checksum;
pub mod codec;
pub mod compactor;
pub mod deletes;
pub mod index_cache;
pub mod line_template;
pub mod local_store;
pub mod manifest;
pub mod row_index;
pub mod samples_cache;
pub mod series_index;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use bytes::Bytes;
use datafusion::execution::object_store::ObjectStoreUrl;
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parking_lot::{Mutex, RwLock};
use url::Url;

use crate::error::{Error, Result};
use crate::model::Signal;
use bloom::Bloom;
use manifest::{BlockMeta, Layout, Manifest};

/// How many superseded manifest versions are kept for readers in flight.
const KEEP_OLD_MANIFESTS: u64 = 3;

/// How often a manifest change is retried from the newest version when
/// another process published first.
const MANIFEST_CONFLICT_RETRIES: usize = 5;

/// The per tenant and signal lock that orders manifest changes in this process.
type ManifestLock = Arc<tokio::sync::Mutex<()>>;

/// What a flush's block writer produces: the Parquet bytes, the bloom
/// index, a span block's edges file and a log block's row index.
type WrittenBlock = (Bytes, Bloom, Option<Bytes>, Option<Bytes>);

/// Held while a manifest change is published and installed.
pub type ManifestGuard = tokio::sync::OwnedMutexGuard<()>;

/// The URL under which the block store is registered in DataFusion's runtime.
pub fn datafusion_store_url() -> ObjectStoreUrl {
    ObjectStoreUrl::parse("o11ydb://blocks").expect("valid object store url")
}

pub struct Storage {
    store: Arc<dyn ObjectStore>,
    description: String,
    manifests: RwLock<HashMap<(String, Signal), Arc<Manifest>>>,
    /// Per-block indexes (blooms, row indexes, label sets), least recently
    /// used evicted past a budget.
    indexes: index_cache::IndexCache,
    /// Decoded samples of samples blocks, least recently used evicted past
    /// a budget.
    samples: samples_cache::SamplesCache,
    /// Serialises publish + install of one tenant's signal between the
    /// ingester's flushes and the compactor.
    manifest_locks: Mutex<HashMap<(String, Signal), ManifestLock>>,
    /// Log deletion requests of every tenant.
    delete_requests: deletes::DeleteRequests,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Storage({})", self.description)
    }
}

/// Opens the object store named by `url` (`file://`, `s3://`, `memory://`)
/// or, when `url` is `None`, the directory `<data_dir>/blocks`.
pub fn open_object_store(
    url: Option<&str>,
    data_dir: &Path,
) -> Result<(Arc<dyn ObjectStore>, String)> {
    let Some(url) = url else {
        let dir = data_dir.join("blocks");
        std::fs::create_dir_all(&dir)?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)?;
        let store = local_store::LocalBlockStore::new(store);
        return Ok((Arc::new(store), format!("file://{}", dir.display())));
    };
    let parsed = Url::parse(url).map_err(|e| Error::Config(format!("--storage {url:?}: {e}")))?;
    match parsed.scheme() {
        "file" => {
            let dir = parsed
                .to_file_path()
                .map_err(|_| Error::Config(format!("--storage {url:?}: not a local path")))?;
            std::fs::create_dir_all(&dir)?;
            let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)?;
            let store = local_store::LocalBlockStore::new(store);
            Ok((Arc::new(store), url.to_string()))
        }
        "memory" => Ok((
            Arc::new(object_store::memory::InMemory::new()),
            url.to_string(),
        )),
        "s3" | "s3a" => {
            let store = object_store::aws::AmazonS3Builder::from_env()
                .with_url(url)
                .build()?;
            let prefix = parsed.path().trim_matches('/');
            let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                Arc::new(store)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
            };
            Ok((store, url.to_string()))
        }
        other => Err(Error::Config(format!(
            "--storage {url:?}: unsupported scheme {other:?} (use file://, s3:// or memory://)"
        ))),
    }
}

impl Storage {
    /// Wraps a store and loads the current manifest of every tenant's signals.
    pub async fn open(store: Arc<dyn ObjectStore>, description: String) -> Result<Storage> {
        let storage = Storage {
            delete_requests: deletes::DeleteRequests::new(store.clone()),
            store,
            description,
            manifests: RwLock::new(HashMap::new()),
            indexes: index_cache::IndexCache::new(index_cache::DEFAULT_INDEX_CACHE_BYTES),
            samples: samples_cache::SamplesCache::new(samples_cache::DEFAULT_SAMPLES_CACHE_BYTES),
            manifest_locks: Mutex::new(HashMap::new()),
        };
        for tenant in storage.list_tenants().await? {
            for signal in Signal::ALL {
                if let Some(m) = storage.load_latest_manifest(&tenant, signal).await? {
                    storage
                        .manifests
                        .write()
                        .insert((tenant.clone(), signal), Arc::new(m));
                }
            }
        }
        Ok(storage)
    }

    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// The tenants' log deletion requests.
    pub fn delete_requests(&self) -> &deletes::DeleteRequests {
        &self.delete_requests
    }

    async fn list_tenants(&self) -> Result<Vec<String>> {
        let listing = self
            .store
            .list_with_delimiter(Some(&StorePath::from("tenants")))
            .await?;
        Ok(listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }

    async fn list_manifest_versions(&self, layout: &Layout) -> Result<Vec<u64>> {
        let prefix = StorePath::from(layout.manifests_dir());
        let objects: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        let mut versions: Vec<u64> = objects
            .iter()
            .filter_map(|o| Layout::version_of(o.location.as_ref()))
            .collect();
        versions.sort_unstable();
        Ok(versions)
    }

    async fn load_latest_manifest(&self, tenant: &str, signal: Signal) -> Result<Option<Manifest>> {
        let layout = Layout::new(tenant, signal);
        let Some(&version) = self.list_manifest_versions(&layout).await?.last() else {
            return Ok(None);
        };
        let bytes = self
            .store
            .get(&StorePath::from(layout.manifest(version)))
            .await?
            .bytes()
            .await?;
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Storage(format!(
                "manifest {} is unreadable: {e}",
                layout.manifest(version)
            ))
        })?;
        Ok(Some(manifest))
    }

    /// The current manifest of a tenant's signal (empty if it has no blocks).
    pub fn manifest(&self, tenant: &str, signal: Signal) -> Arc<Manifest> {
        self.manifests
            .read()
            .get(&(tenant.to_string(), signal))
            .cloned()
            .unwrap_or_else(|| Arc::new(Manifest::empty(tenant, signal)))
    }

    /// The highest LSN any manifest records as flushed.
    pub fn max_flushed_lsn(&self) -> Option<u64> {
        self.manifests
            .read()
            .values()
            .filter_map(|m| m.flushed_lsn)
            .max()
    }

    /// Tenants that have at least one manifest.
    pub fn tenants(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .manifests
            .read()
            .keys()
            .map(|(t, _)| t.clone())
            .collect();
        t.sort();
        t.dedup();
        t
    }

    /// Writes `batches` (a frozen head) as one new block and its index. The
    /// block is not visible until [`Storage::publish`] puts it in a manifest.
    pub async fn write_block(
        &self,
        tenant: &str,
        signal: Signal,
        batches: &[RecordBatch],
    ) -> Result<BlockMeta> {
        let layout = Layout::new(tenant, signal);
        let (min_time, max_time) = batches
            .iter()
            .filter_map(|b| crate::model::normalize::time_range(signal, b))
            .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)))
            .ok_or_else(|| Error::Storage("cannot write an empty block".into()))?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let id = new_block_id();
        let (parquet, bloom, edges, row_index) = {
            let batches = batches.to_vec();
            tokio::task::spawn_blocking(move || -> Result<WrittenBlock> {
                // Each value is added to the bloom once per run of equal
                // values, so it reads the order with the longest runs: sorted
                // samples (a request holds one sample of each of thousands
                // of series), logs and spans as they arrived (a push groups
                // lines by stream and spans by trace and service; sorted by
                // stream, a trace's lines would scatter).
                let sorted = block::sort_batches_for_block(signal, &batches)?;
                let mut bloom = bloom::BloomBuilder::new(signal);
                match signal {
                    Signal::Samples => bloom.add_batch(&sorted),
                    Signal::Logs | Signal::Spans => batches.iter().for_each(|b| bloom.add_batch(b)),
                }
                let mut row_index = row_index::RowsSidecarBuilder::new(signal);
                if let Some(b) = row_index.as_mut() {
                    b.add_batch(&sorted)?;
                }
                let stored = codec::encode_for_block(signal, &sorted)?;
                drop(sorted);
                let row_index = row_index.map(|mut b| {
                    b.add_stored(&stored);
                    b.finish()
                });
                let edges = match signal {
                    Signal::Spans => Some(service_graph_edges(&stored)?),
                    Signal::Samples | Signal::Logs => None,
                };
                let parquet = block::write_stored_block(signal, &stored)?;
                Ok((parquet, bloom.finish(), edges, row_index))
            })
            .await
            .map_err(|e| Error::Storage(format!("block writer task failed: {e}")))??
        };
        let index = bloom.encode();
        let meta = BlockMeta {
            id: id.clone(),
            min_time,
            max_time,
            rows: rows as u64,
            bytes: parquet.len() as u64,
            index_bytes: index.len() as u64,
            created_at_ms: chrono::Utc::now().timestamp_millis(),
            resolution_ms: 0,
            edges_bytes: self.put_edges(tenant, &id, edges).await?,
            row_index_bytes: self.put_row_index(tenant, signal, &id, row_index).await?,
        };
        self.store
            .put(&StorePath::from(layout.index(&id)), PutPayload::from(index))
            .await?;
        self.store
            .put(
                &StorePath::from(layout.block(&id)),
                PutPayload::from(parquet),
            )
            .await?;
        self.indexes
            .insert(&id, index_cache::BLOOM, Arc::new(bloom));
        Ok(meta)
    }

    /// Publishes a manifest with `added` blocks (and `flushed_lsn`), as the
    /// next version. Returns the new manifest; the caller installs it with
    /// [`Storage::install`] at the moment it drops the flushed head part,
    /// holding [`Storage::lock_manifest`] from before this call until then.
    pub async fn publish(
        &self,
        tenant: &str,
        signal: Signal,
        added: Vec<BlockMeta>,
        flushed_lsn: Option<u64>,
    ) -> Result<Arc<Manifest>> {
        let current = self.manifest(tenant, signal);
        let mut next = (*current).clone();
        next.version = current.version + 1;
        next.blocks.extend(added);
        next.flushed_lsn = match (current.flushed_lsn, flushed_lsn) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        match self.put_manifest(&next).await {
            Ok(()) => Ok(Arc::new(next)),
            Err(e) => {
                if matches!(e, PutError::Conflict(_)) {
                    // The next attempt starts from what the other writer published.
                    if let Err(reload) = self.reload_manifest(tenant, signal).await {
                        tracing::warn!(tenant, %signal, "could not reload the manifest: {reload}");
                    }
                }
                Err(e.into())
            }
        }
    }

    /// Creates `manifest` as its version (refused if that version exists)
    /// and trims old versions.
    async fn put_manifest(&self, manifest: &Manifest) -> std::result::Result<(), PutError> {
        let signal: Signal = manifest.signal.parse().expect("manifest of a known signal");
        let layout = Layout::new(&manifest.tenant, signal);
        let body = serde_json::to_vec_pretty(manifest)
            .map_err(|e| PutError::Other(Error::Storage(format!("cannot encode manifest: {e}"))))?;
        self.store
            .put_opts(
                &StorePath::from(layout.manifest(manifest.version)),
                PutPayload::from(body),
                PutOptions::from(PutMode::Create),
            )
            .await
            .map_err(|e| match e {
                object_store::Error::AlreadyExists { path, .. } => PutError::Conflict(path),
                other => PutError::Other(Error::ObjectStore(other)),
            })?;
        // Old versions are only a courtesy to readers in other processes.
        if manifest.version > KEEP_OLD_MANIFESTS {
            let old = StorePath::from(layout.manifest(manifest.version - KEEP_OLD_MANIFESTS - 1));
            if let Err(e) = self.store.delete(&old).await
                && !matches!(e, object_store::Error::NotFound { .. })
            {
                tracing::warn!("could not delete old manifest {old}: {e}");
            }
        }
        Ok(())
    }

    /// The lock every change of a tenant's signal manifest in this process
    /// holds from reading the current manifest until installing the next.
    pub async fn lock_manifest(&self, tenant: &str, signal: Signal) -> ManifestGuard {
        let lock = self
            .manifest_locks
            .lock()
            .entry((tenant.to_string(), signal))
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// Changes a tenant's signal manifest: `change` gets the current
    /// manifest and returns the next one (its version is set here) or `None`
    /// for no change. Serialised with flushes by [`Storage::lock_manifest`];
    /// when another process published the same version first, the newest
    /// manifest is loaded and `change` runs again on it. The new manifest is
    /// installed before this returns.
    pub async fn update_manifest(
        &self,
        tenant: &str,
        signal: Signal,
        mut change: impl FnMut(&Manifest) -> Result<Option<Manifest>>,
    ) -> Result<Option<Arc<Manifest>>> {
        let _guard = self.lock_manifest(tenant, signal).await;
        for _ in 0..MANIFEST_CONFLICT_RETRIES {
            let current = self.manifest(tenant, signal);
            let Some(mut next) = change(&current)? else {
                return Ok(None);
            };
            next.version = current.version + 1;
            match self.put_manifest(&next).await {
                Ok(()) => {
                    let next = Arc::new(next);
                    self.install(next.clone());
                    return Ok(Some(next));
                }
                Err(PutError::Conflict(path)) => {
                    tracing::info!(tenant, %signal, "manifest {path} was published by another writer; retrying from it");
                    self.reload_manifest(tenant, signal).await?;
                }
                Err(PutError::Other(e)) => return Err(e),
            }
        }
        Err(Error::Storage(format!(
            "the {signal} manifest of tenant {tenant:?} kept changing under {MANIFEST_CONFLICT_RETRIES} attempts to update it"
        )))
    }

    /// Loads the newest manifest version from the store and installs it if
    /// it is newer than the one in memory.
    pub async fn reload_manifest(&self, tenant: &str, signal: Signal) -> Result<Arc<Manifest>> {
        if let Some(m) = self.load_latest_manifest(tenant, signal).await? {
            self.install(Arc::new(m));
        }
        Ok(self.manifest(tenant, signal))
    }

    /// Makes `manifest` the current one for queries in this process
    /// (unless a newer version already is).
    pub fn install(&self, manifest: Arc<Manifest>) {
        let signal: Signal = manifest.signal.parse().expect("manifest of a known signal");
        let mut manifests = self.manifests.write();
        let key = (manifest.tenant.clone(), signal);
        if manifests
            .get(&key)
            .is_none_or(|m| m.version < manifest.version)
        {
            manifests.insert(key, manifest);
        }
    }

    /// The memory budget of the block index cache (`[query] index_cache_size`).
    pub fn set_index_cache_bytes(&self, budget: u64) {
        self.indexes.set_budget(budget);
    }

    /// The memory budget of the decoded samples cache (`[query] samples_cache_size`).
    pub fn set_samples_cache_bytes(&self, budget: u64) {
        self.samples.set_budget(budget);
    }

    /// The decoded samples of samples blocks held between queries.
    pub fn samples_cache(&self) -> &samples_cache::SamplesCache {
        &self.samples
    }

    /// Puts a freshly written block's bloom in the index cache.
    pub fn cache_index(&self, id: &str, bloom: Arc<Bloom>) {
        self.indexes.insert(id, index_cache::BLOOM, bloom);
    }

    /// Deletes a block's Parquet file and sidecars (missing files are fine).
    pub async fn delete_block_files(&self, tenant: &str, signal: Signal, id: &str) -> Result<()> {
        let layout = Layout::new(tenant, signal);
        self.indexes.remove(id);
        self.samples.remove(id);
        for path in [
            layout.block(id),
            layout.index(id),
            layout.edges(id),
            layout.row_index(id),
        ] {
            match self.store.delete(&StorePath::from(path)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Every object under a tenant's signal `blocks/` directory.
    pub async fn list_block_files(&self, tenant: &str, signal: Signal) -> Result<Vec<ObjectMeta>> {
        let dir = StorePath::from(format!("{}/blocks", Layout::new(tenant, signal).prefix()));
        Ok(self.store.list(Some(&dir)).try_collect().await?)
    }

    /// Tenants with a directory in the store (whether or not they have a manifest yet).
    pub async fn stored_tenants(&self) -> Result<Vec<String>> {
        self.list_tenants().await
    }

    /// The bloom index of a block, from cache or the store.
    pub async fn block_index(&self, tenant: &str, signal: Signal, id: &str) -> Result<Arc<Bloom>> {
        let path = Layout::new(tenant, signal).index(id);
        self.cached_sidecar(id, index_cache::BLOOM, path, Bloom::decode)
            .await
    }

    /// Block `id`'s index of `kind`, from the index cache, or else read
    /// from the sidecar file at `path`, decoded and cached.
    async fn cached_sidecar<T: index_cache::CachedIndex>(
        &self,
        id: &str,
        kind: &str,
        path: String,
        decode: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<Arc<T>> {
        if let Some(index) = self.indexes.get(id, kind) {
            return Ok(index);
        }
        let bytes = self
            .store
            .get(&StorePath::from(path))
            .await?
            .bytes()
            .await?;
        let index = Arc::new(decode(&bytes)?);
        self.indexes.insert(id, kind, index.clone());
        Ok(index)
    }

    /// Stores a span block's service-graph edges file, if it has one;
    /// returns its size for the block's [`BlockMeta::edges_bytes`].
    pub async fn put_edges(
        &self,
        tenant: &str,
        id: &str,
        edges: Option<Bytes>,
    ) -> Result<Option<u64>> {
        let path = Layout::new(tenant, Signal::Spans).edges(id);
        self.put_sidecar(path, edges).await
    }

    /// Stores a block's row-index sidecar (see
    /// [`row_index::RowsSidecarBuilder`]), if it has one; returns its size
    /// for the block's [`BlockMeta::row_index_bytes`].
    pub async fn put_row_index(
        &self,
        tenant: &str,
        signal: Signal,
        id: &str,
        row_index: Option<Bytes>,
    ) -> Result<Option<u64>> {
        let path = Layout::new(tenant, signal).row_index(id);
        self.put_sidecar(path, row_index).await
    }

    /// Stores a block's optional sidecar file at `path`; returns its size.
    async fn put_sidecar(&self, path: String, bytes: Option<Bytes>) -> Result<Option<u64>> {
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let size = bytes.len() as u64;
        self.store
            .put(&StorePath::from(path), PutPayload::from(bytes))
            .await?;
        Ok(Some(size))
    }

    /// A log block's row-segment blooms, from cache or the store (a query
    /// reads them only for blocks its block index could not rule out).
    pub async fn block_row_index(
        &self,
        tenant: &str,
        signal: Signal,
        id: &str,
    ) -> Result<Arc<row_index::RowIndex>> {
        let path = Layout::new(tenant, signal).row_index(id);
        self.cached_sidecar(
            id,
            index_cache::ROW_INDEX,
            path,
            row_index::RowIndex::decode,
        )
        .await
    }

    /// A samples block's series directory, from cache or the store.
    pub async fn block_series_index(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Arc<series_index::SeriesIndex>> {
        let path = Layout::new(tenant, Signal::Samples).row_index(id);
        self.cached_sidecar(
            id,
            index_cache::SERIES_INDEX,
            path,
            series_index::SeriesIndex::decode,
        )
        .await
    }

    /// The index cache, for indexes read above the storage layer (the
    /// label sets of a block's packed columns).
    pub fn index_cache(&self) -> &index_cache::IndexCache {
        &self.indexes
    }

    /// A span block's service-graph edges file (see
    /// [`crate::query::service_graph::block_edges`]), as stored.
    pub async fn block_edges(&self, tenant: &str, id: &str) -> Result<Bytes> {
        let path = StorePath::from(Layout::new(tenant, Signal::Spans).edges(id));
        Ok(self.store.get(&path).await?.bytes().await?)
    }

    /// The store path of a block's Parquet file.
    pub fn block_path(&self, tenant: &str, signal: Signal, id: &str) -> String {
        Layout::new(tenant, signal).block(id)
    }
}

/// Why a manifest put failed: another writer created that version, or anything else.
enum PutError {
    Conflict(String),
    Other(Error),
}

impl From<PutError> for Error {
    fn from(e: PutError) -> Error {
        match e {
            PutError::Conflict(path) => Error::Storage(format!(
                "manifest {path} was published concurrently by another writer"
            )),
            PutError::Other(e) => e,
        }
    }
}

/// The service-graph edges file of a span block's rows (storage schema,
/// block order) in one batch.
pub fn service_graph_edges(stored: &RecordBatch) -> Result<Bytes> {
    let mut edges = crate::query::service_graph::block_edges::BlockEdgesBuilder::default();
    edges.push(stored)?;
    edges.finish()
}

/// A unique, time-sortable block id: creation time in ms (hex) + random suffix.
pub fn new_block_id() -> String {
    let ms = chrono::Utc::now().timestamp_millis();
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{ms:012x}-{}", &rand[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn publish_is_versioned_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let (store, desc) = open_object_store(None, dir.path()).unwrap();
        let storage = Storage::open(store.clone(), desc.clone()).await.unwrap();
        assert_eq!(storage.manifest("t", Signal::Logs).version, 0);
        let meta = BlockMeta {
            id: "b1".into(),
            min_time: 1,
            max_time: 2,
            rows: 3,
            bytes: 4,
            index_bytes: 5,
            created_at_ms: 6,
            resolution_ms: 0,
            edges_bytes: None,
            row_index_bytes: None,
        };
        let m = storage
            .publish("t", Signal::Logs, vec![meta.clone()], Some(9))
            .await
            .unwrap();
        assert_eq!(m.version, 1);
        storage.install(m);
        // A concurrent writer publishing the same version is refused.
        let other = Storage::open(store.clone(), desc.clone()).await.unwrap();
        let again = Storage::open(store.clone(), desc.clone()).await.unwrap();
        other
            .publish("t", Signal::Logs, vec![], None)
            .await
            .unwrap();
        let err = again
            .publish("t", Signal::Logs, vec![], None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("concurrently"), "{err}");
        let reopened = Storage::open(store, desc).await.unwrap();
        let m = reopened.manifest("t", Signal::Logs);
        assert_eq!(m.version, 2);
        assert_eq!(m.blocks, vec![meta]);
        assert_eq!(m.flushed_lsn, Some(9));
        assert_eq!(reopened.tenants(), vec!["t".to_string()]);
    }
}
