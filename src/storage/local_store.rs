//! The block store of a local directory: `object_store`'s local file system
//! with small ranged reads done in place. Block readers (Parquet pages,
//! footers, bloom filters) ask for a few kilobytes at a time; the local
//! file system hands every request to a blocking thread (`spawn_blocking`:
//! a thread wake-up, an open and a stat), and a needle query that reads one
//! block makes a dozen such requests one after another. Reads of at most
//! [`INLINE_READ_BYTES`] are served with positional reads on the calling
//! task instead: from the page cache that is a memory copy. Larger reads,
//! writes, listings and deletions go to the local file system unchanged.

use std::fmt;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    Result,
};

/// The most bytes one request reads in place (summed over its ranges).
pub const INLINE_READ_BYTES: u64 = 1 << 20;

/// [`LocalFileSystem`] with small ranged reads served in place.
#[derive(Debug)]
pub struct LocalBlockStore {
    inner: LocalFileSystem,
}

impl LocalBlockStore {
    pub fn new(inner: LocalFileSystem) -> Self {
        LocalBlockStore { inner }
    }

    fn open(&self, location: &Path) -> Result<File> {
        let path = self.inner.path_to_filesystem(location)?;
        match File::open(&path) {
            Ok(file) => Ok(file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(object_store::Error::NotFound {
                    path: path.display().to_string(),
                    source: e.into(),
                })
            }
            Err(e) => Err(generic(e)),
        }
    }

    fn read_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let file = self.open(location)?;
        ranges.iter().map(|r| read_at(&file, r.clone())).collect()
    }
}

fn generic(e: impl std::error::Error + Send + Sync + 'static) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalBlockStore",
        source: Box::new(e),
    }
}

/// Reads exactly `range` of `file` (an error past its end).
fn read_at(file: &File, range: Range<u64>) -> Result<Bytes> {
    let len = usize::try_from(range.end.saturating_sub(range.start)).map_err(generic)?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, range.start).map_err(generic)?;
    Ok(Bytes::from(buf))
}

/// What the local file system reports for a file (its ETag scheme too, so
/// conditional requests see the same tags either way).
fn object_meta(location: &Path, metadata: &std::fs::Metadata) -> ObjectMeta {
    let mtime = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let micros = mtime
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    ObjectMeta {
        location: location.clone(),
        last_modified: mtime.into(),
        size: metadata.len(),
        e_tag: Some(format!(
            "{:x}-{micros:x}-{:x}",
            metadata.ino(),
            metadata.len()
        )),
        version: None,
    }
}

/// Whether a request is a plain bounded read small enough to serve in place.
fn inline_range(options: &GetOptions) -> Option<Range<u64>> {
    let plain = !options.head
        && options.if_match.is_none()
        && options.if_none_match.is_none()
        && options.if_modified_since.is_none()
        && options.if_unmodified_since.is_none()
        && options.version.is_none();
    match &options.range {
        Some(GetRange::Bounded(r))
            if plain && r.start <= r.end && r.end - r.start <= INLINE_READ_BYTES =>
        {
            Some(r.clone())
        }
        _ => None,
    }
}

impl fmt::Display for LocalBlockStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalBlockStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for LocalBlockStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let Some(range) = inline_range(&options) else {
            return self.inner.get_opts(location, options).await;
        };
        let file = self.open(location)?;
        let metadata = file.metadata().map_err(generic)?;
        let meta = object_meta(location, &metadata);
        if range.end > meta.size {
            // The local file system's own answer for a range past the end.
            return self.inner.get_opts(location, options).await;
        }
        let bytes = read_at(&file, range.clone())?;
        Ok(GetResult {
            payload: GetResultPayload::Stream(Box::pin(futures::stream::once(
                async move { Ok(bytes) },
            ))),
            meta,
            range,
            attributes: Default::default(),
        })
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let total: u64 = ranges.iter().map(|r| r.end.saturating_sub(r.start)).sum();
        if total > INLINE_READ_BYTES {
            return self.inner.get_ranges(location, ranges).await;
        }
        match self.read_ranges(location, ranges) {
            // A range past the end: the local file system's own answer
            // (the bytes there are, or its error).
            Err(e) if !matches!(e, object_store::Error::NotFound { .. }) => {
                self.inner.get_ranges(location, ranges).await
            }
            result => result,
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    fn store() -> (tempfile::TempDir, LocalBlockStore, LocalFileSystem) {
        let dir = tempfile::tempdir().unwrap();
        let ours = LocalBlockStore::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let theirs = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        (dir, ours, theirs)
    }

    #[tokio::test]
    async fn reads_answer_as_the_local_file_system_does() {
        let (_dir, ours, theirs) = store();
        let path = Path::from("blocks/a.parquet");
        let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        ours.put(&path, PutPayload::from(body.clone()))
            .await
            .unwrap();

        // Small ranges in place, a large one through the local file system.
        let ranges = [0..10, 4096..4100, 2_999_990..3_000_000, 0..2_000_000];
        for r in &ranges {
            let a = ours.get_range(&path, r.clone()).await.unwrap();
            let b = theirs.get_range(&path, r.clone()).await.unwrap();
            assert_eq!(a, b);
            assert_eq!(&a[..], &body[r.start as usize..r.end as usize]);
        }
        let a = ours.get_ranges(&path, &ranges[..3]).await.unwrap();
        assert_eq!(a, theirs.get_ranges(&path, &ranges[..3]).await.unwrap());
        let a = ours.get_ranges(&path, &ranges).await.unwrap();
        assert_eq!(a, theirs.get_ranges(&path, &ranges).await.unwrap());

        let got = ours
            .get_opts(&path, GetOptions::new().with_range(Some(100..200)))
            .await
            .unwrap();
        let expected = theirs.head(&path).await.unwrap();
        assert_eq!(got.meta, expected);
        assert_eq!(got.range, 100..200);
        assert_eq!(
            got.bytes().await.unwrap(),
            Bytes::from(body[100..200].to_vec())
        );
    }

    #[tokio::test]
    async fn missing_files_and_ranges_past_the_end_answer_as_the_local_file_system() {
        let (_dir, ours, theirs) = store();
        let missing = ours.get_range(&Path::from("nope"), 0..4).await.unwrap_err();
        assert!(
            matches!(missing, object_store::Error::NotFound { .. }),
            "{missing}"
        );
        let missing = ours
            .get_ranges(&Path::from("nope"), std::slice::from_ref(&(0..4)))
            .await
            .unwrap_err();
        assert!(
            matches!(missing, object_store::Error::NotFound { .. }),
            "{missing}"
        );

        // Past the end: as the local file system answers (the bytes
        // there are; an error when none are).
        let path = Path::from("short");
        ours.put(&path, PutPayload::from(vec![1u8; 100]))
            .await
            .unwrap();
        for r in [50..150, 100..120, 200..300] {
            let a = ours
                .get_range(&path, r.clone())
                .await
                .map_err(|e| e.to_string());
            let b = theirs
                .get_range(&path, r.clone())
                .await
                .map_err(|e| e.to_string());
            assert_eq!(a, b, "{r:?}");
            let a = ours
                .get_ranges(&path, std::slice::from_ref(&r))
                .await
                .map_err(|e| e.to_string());
            let b = theirs
                .get_ranges(&path, std::slice::from_ref(&r))
                .await
                .map_err(|e| e.to_string());
            assert_eq!(a, b, "{r:?}");
        }
        // A reversed range: the local file system's own error (its length
        // is not computed here first).
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 80..60;
        let a = ours
            .get_range(&path, reversed.clone())
            .await
            .map_err(|e| e.to_string());
        let b = theirs
            .get_range(&path, reversed)
            .await
            .map_err(|e| e.to_string());
        assert!(a.is_err(), "{a:?}");
        assert_eq!(a, b);
    }
}
