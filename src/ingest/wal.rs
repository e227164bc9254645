//! The write-ahead log: every accepted batch is appended here, and fsynced,
//! before it is acknowledged.
//!
//! Layout: a directory of segments `<20-digit id>.wal`, each starting with
//! the magic `O11WAL02`, followed by records
//! `[payload length u32 LE][crc32 of payload u32 LE][payload]`, where the
//! payload is `[lsn u64][signal u8][tenant length u16][tenant][body kind u8][body]`.
//! The body is an LZ4-compressed Arrow IPC stream (logs, spans) or, for
//! samples, rows referring to series defined once per segment
//! ([`super::wal_samples`]). Segments of the first format (`O11WAL01`, the
//! payload ends in the IPC stream, no body kind) are still replayed.
//!
//! Writes go through one writer thread doing *group commit*: it takes every
//! request waiting in its queue, writes them all, calls `fdatasync` once, hands
//! the records to the `on_durable` callback (which applies them to the head,
//! in LSN order) and only then acknowledges each caller.
//!
//! On open, segments are replayed in order; a torn or corrupt tail (short
//! header, short payload, checksum mismatch) is truncated with a warning and
//! the log continues from a fresh segment. Segments are deleted by
//! [`Wal::remove_segments_before`] once their data is in a manifest.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use arrow::array::RecordBatch;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use super::wal_samples::{self, DefinedSeries, SeriesDefinitions};
use crate::error::{Error, Result};
use crate::model::Signal;

const MAGIC: &[u8; 8] = b"O11WAL02";
/// Segments written before samples were stored by series reference.
const MAGIC_V1: &[u8; 8] = b"O11WAL01";
const BODY_IPC: u8 = 0;
const BODY_SAMPLES: u8 = 1;
const RECORD_HEADER: usize = 8;
/// Upper bound of one record, to reject garbage lengths in a corrupt tail.
const MAX_RECORD_BYTES: u32 = 1 << 30;

/// One logical write: a normalised batch of one signal for one tenant.
#[derive(Debug, Clone)]
pub struct WalRecord {
    pub lsn: u64,
    pub tenant: String,
    pub signal: Signal,
    pub batch: RecordBatch,
}

/// Where a durable record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durable {
    pub lsn: u64,
    pub segment: u64,
}

#[derive(Debug, Clone)]
pub struct WalOptions {
    /// A new segment is started once the current one exceeds this size.
    pub segment_bytes: u64,
    /// Whether to fsync before acknowledging (always on outside benchmarks).
    pub fsync: bool,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: 64 << 20,
            fsync: true,
        }
    }
}

/// Called by the writer thread with records that are durable, in LSN order,
/// before their writers are acknowledged.
pub type OnDurable = Box<dyn Fn(&[(WalRecord, Durable)]) + Send + Sync>;

struct AppendRequest {
    tenant: String,
    signal: Signal,
    batch: RecordBatch,
    body: Body,
    reply: oneshot::Sender<Result<Durable>>,
}

/// A record's body: encoded by the caller, or (samples) by the writer thread,
/// which knows which series the current segment already defines.
enum Body {
    Ipc(Vec<u8>),
    Samples,
}

impl AppendRequest {
    /// About how many bytes the record will take, for sizing a group.
    fn estimated_bytes(&self) -> usize {
        match &self.body {
            Body::Ipc(encoded) => encoded.len(),
            Body::Samples => self.batch.num_rows() * 24,
        }
    }
}

struct Shared {
    dir: PathBuf,
    current_segment: AtomicU64,
    next_lsn: AtomicU64,
    /// Serialises segment deletion against rotation.
    segments_lock: Mutex<()>,
    /// Seconds each group commit's fsync took (self-monitoring).
    fsync_seconds: prometheus_client::metrics::histogram::Histogram,
    /// Record bytes written (self-monitoring).
    written_bytes: prometheus_client::metrics::counter::Counter,
}

/// Handle to the write-ahead log; cheap to clone.
#[derive(Clone)]
pub struct Wal {
    shared: Arc<Shared>,
    tx: mpsc::Sender<AppendRequest>,
    _writer: Arc<WriterThread>,
}

struct WriterThread(Mutex<Option<JoinHandle<()>>>);

impl Drop for WriterThread {
    fn drop(&mut self) {
        // The channel is closed when the last `Wal` is dropped; wait for the
        // thread to finish what it has.
        if let Some(handle) = self.0.lock().take() {
            let _ = handle.join();
        }
    }
}

/// Statistics of a replay, for the start-up log.
#[derive(Debug, Default, Clone)]
pub struct ReplayReport {
    pub segments: usize,
    pub records: usize,
    pub truncated: Vec<String>,
}

impl Wal {
    /// Opens the log in `dir`, feeding every intact record to `replay` in LSN
    /// order, then starts a fresh segment and the writer thread.
    pub fn open(
        dir: &Path,
        options: WalOptions,
        min_next_lsn: u64,
        mut replay: impl FnMut(WalRecord, Durable) -> Result<()>,
        on_durable: OnDurable,
    ) -> Result<(Wal, ReplayReport)> {
        fs::create_dir_all(dir)?;
        let mut report = ReplayReport::default();
        let segments = list_segments(dir)?;
        let mut next_lsn = min_next_lsn;
        for &(id, ref path) in &segments {
            report.segments += 1;
            let outcome = read_segment(path, |record| {
                next_lsn = next_lsn.max(record.lsn + 1);
                report.records += 1;
                let durable = Durable {
                    lsn: record.lsn,
                    segment: id,
                };
                replay(record, durable)
            })?;
            if let Some(problem) = outcome {
                tracing::warn!(segment = %path.display(), "{problem}; truncated the WAL tail");
                report
                    .truncated
                    .push(format!("{}: {problem}", path.display()));
            }
        }
        let first_segment = segments.last().map(|(id, _)| id + 1).unwrap_or(1);
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            current_segment: AtomicU64::new(first_segment),
            next_lsn: AtomicU64::new(next_lsn),
            segments_lock: Mutex::new(()),
            fsync_seconds: prometheus_client::metrics::histogram::Histogram::new(
                crate::metrics::FSYNC_BUCKETS.iter().copied(),
            ),
            written_bytes: Default::default(),
        });
        let file = create_segment(dir, first_segment)?;
        let (tx, rx) = mpsc::channel::<AppendRequest>(4096);
        let writer_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name("o11ydb-wal".into())
            .spawn(move || writer_loop(writer_shared, file, rx, options, on_durable))?;
        Ok((
            Wal {
                shared,
                tx,
                _writer: Arc::new(WriterThread(Mutex::new(Some(handle)))),
            },
            report,
        ))
    }

    /// Appends a batch and waits until it is durable (and applied by
    /// `on_durable`).
    pub async fn append(
        &self,
        tenant: &str,
        signal: Signal,
        batch: RecordBatch,
    ) -> Result<Durable> {
        let body = if signal == Signal::Samples && wal_samples::can_encode(&batch) {
            Body::Samples
        } else {
            Body::Ipc(encode_ipc(&batch)?)
        };
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(AppendRequest {
                tenant: tenant.to_string(),
                signal,
                batch,
                body,
                reply,
            })
            .await
            .map_err(|_| Error::WriteUnavailable("the WAL writer has stopped".into()))?;
        rx.await
            .map_err(|_| Error::WriteUnavailable("the WAL writer has stopped".into()))?
    }

    /// The segment new records currently go to. Read this *before* looking at
    /// which segments the heads still need, so a record written concurrently
    /// is never in a segment considered deletable.
    pub fn current_segment(&self) -> u64 {
        self.shared.current_segment.load(Ordering::SeqCst)
    }

    /// The LSN the next record will get.
    pub fn next_lsn(&self) -> u64 {
        self.shared.next_lsn.load(Ordering::SeqCst)
    }

    /// Deletes every segment with an id below `segment` (never the current one).
    pub fn remove_segments_before(&self, segment: u64) -> Result<usize> {
        let _guard = self.shared.segments_lock.lock();
        let limit = segment.min(self.current_segment());
        let mut removed = 0;
        for (id, path) in list_segments(&self.shared.dir)? {
            if id < limit {
                fs::remove_file(&path)?;
                removed += 1;
            }
        }
        if removed > 0 {
            sync_dir(&self.shared.dir)?;
        }
        Ok(removed)
    }

    /// The fsync latency histogram and the written-bytes counter, for `/metrics`.
    pub fn self_metrics(
        &self,
    ) -> (
        prometheus_client::metrics::histogram::Histogram,
        prometheus_client::metrics::counter::Counter,
    ) {
        (
            self.shared.fsync_seconds.clone(),
            self.shared.written_bytes.clone(),
        )
    }

    /// Total bytes of all segments on disk.
    pub fn disk_bytes(&self) -> u64 {
        list_segments(&self.shared.dir)
            .map(|segs| {
                segs.iter()
                    .filter_map(|(_, p)| fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

fn writer_loop(
    shared: Arc<Shared>,
    file: File,
    mut rx: mpsc::Receiver<AppendRequest>,
    options: WalOptions,
    on_durable: OnDurable,
) {
    let mut segment = SegmentWriter::new(file);
    while let Some(first) = rx.blocking_recv() {
        let mut group_bytes = first.estimated_bytes();
        let mut group = vec![first];
        while group_bytes < (16 << 20) {
            match rx.try_recv() {
                Ok(req) => {
                    group_bytes += req.estimated_bytes();
                    group.push(req);
                }
                Err(_) => break,
            }
        }
        let result = write_group(&shared, &mut segment, &group, &options);
        match result {
            Ok(durables) => {
                let records: Vec<(WalRecord, Durable)> = group
                    .iter()
                    .zip(&durables)
                    .map(|(req, d)| {
                        (
                            WalRecord {
                                lsn: d.lsn,
                                tenant: req.tenant.clone(),
                                signal: req.signal,
                                batch: req.batch.clone(),
                            },
                            *d,
                        )
                    })
                    .collect();
                on_durable(&records);
                for (req, d) in group.into_iter().zip(durables) {
                    let _ = req.reply.send(Ok(d));
                }
            }
            Err(e) => {
                tracing::error!("WAL write failed: {e}");
                let message = e.to_string();
                for req in group {
                    let _ = req.reply.send(Err(Error::WriteUnavailable(format!(
                        "WAL write failed: {message}"
                    ))));
                }
            }
        }
    }
    if let Err(e) = segment.file.get_ref().sync_all() {
        tracing::error!("WAL final sync failed: {e}");
    }
}

struct SegmentWriter {
    file: BufWriter<File>,
    /// Bytes known to be written and synced; the file is cut back to this on failure.
    good_len: u64,
    /// Series whose definitions are in this segment's good part.
    defined: DefinedSeries,
    /// Reused buffer for one record's payload.
    payload: Vec<u8>,
}

impl SegmentWriter {
    fn new(file: File) -> Self {
        SegmentWriter {
            file: BufWriter::with_capacity(1 << 20, file),
            good_len: MAGIC.len() as u64,
            defined: DefinedSeries::default(),
            payload: Vec::new(),
        }
    }

    /// Builds the payload of one record: its start in `self.payload` (the
    /// whole payload for samples, encoded here) and, for a body the caller
    /// encoded, that body, written after it as it is rather than copied.
    fn encode_payload<'r>(&mut self, lsn: u64, req: &'r AppendRequest) -> Result<&'r [u8]> {
        let payload = &mut self.payload;
        payload.clear();
        payload.extend_from_slice(&lsn.to_le_bytes());
        payload.push(req.signal.code());
        payload.extend_from_slice(&(req.tenant.len() as u16).to_le_bytes());
        payload.extend_from_slice(req.tenant.as_bytes());
        match &req.body {
            Body::Ipc(encoded) => {
                payload.push(BODY_IPC);
                Ok(encoded)
            }
            Body::Samples => {
                payload.push(BODY_SAMPLES);
                wal_samples::encode(&req.batch, &mut self.defined, payload)?;
                Ok(&[])
            }
        }
    }
}

fn write_group(
    shared: &Shared,
    segment: &mut SegmentWriter,
    group: &[AppendRequest],
    options: &WalOptions,
) -> Result<Vec<Durable>> {
    if segment.good_len >= options.segment_bytes {
        let _guard = shared.segments_lock.lock();
        let next = shared.current_segment.load(Ordering::SeqCst) + 1;
        let file = create_segment(&shared.dir, next)?;
        segment.file.flush()?;
        *segment = SegmentWriter::new(file);
        shared.current_segment.store(next, Ordering::SeqCst);
    }
    let segment_id = shared.current_segment.load(Ordering::SeqCst);
    let first_lsn = shared.next_lsn.load(Ordering::SeqCst);
    let mut durables = Vec::with_capacity(group.len());
    let mut written = 0u64;
    let attempt = (|| -> Result<()> {
        for (i, req) in group.iter().enumerate() {
            let lsn = first_lsn + i as u64;
            let body = segment.encode_payload(lsn, req)?;
            let start = &segment.payload;
            let len = start.len() + body.len();
            let payload_len = u32::try_from(len)
                .ok()
                .filter(|&len| len <= MAX_RECORD_BYTES)
                .ok_or_else(|| {
                    Error::Wal(format!(
                        "a record of {len} bytes is over the {MAX_RECORD_BYTES}-byte limit"
                    ))
                })?;
            let mut crc = crc32fast::Hasher::new();
            crc.update(start);
            crc.update(body);
            segment.file.write_all(&payload_len.to_le_bytes())?;
            segment.file.write_all(&crc.finalize().to_le_bytes())?;
            segment.file.write_all(start)?;
            segment.file.write_all(body)?;
            written += RECORD_HEADER as u64 + payload_len as u64;
            durables.push(Durable {
                lsn,
                segment: segment_id,
            });
        }
        segment.file.flush()?;
        if options.fsync {
            let started = std::time::Instant::now();
            segment.file.get_ref().sync_data()?;
            shared
                .fsync_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        Ok(())
    })();
    match attempt {
        Ok(()) => {
            shared.written_bytes.inc_by(written);
            segment.good_len += written;
            shared
                .next_lsn
                .store(first_lsn + group.len() as u64, Ordering::SeqCst);
            Ok(durables)
        }
        Err(e) => {
            // Drop whatever is buffered and cut the file back to its last
            // good length, so a later write does not follow garbage. Series
            // defined in the cut part are defined again by later records:
            // the writer forgets every definition (even if the file cannot
            // be reopened below).
            segment.defined.clear();
            let good = segment.good_len;
            let file = segment.file.get_ref().try_clone();
            if let Ok(file) = file {
                let _ = file.set_len(good);
                let mut fresh = SegmentWriter::new(file);
                fresh.good_len = good;
                let _ = fresh.file.seek(SeekFrom::Start(good));
                // Discard the old buffer without flushing it.
                let old = std::mem::replace(segment, fresh);
                let (_, _) = old.file.into_parts();
            }
            Err(e)
        }
    }
}

/// Arrow IPC with LZ4-compressed buffers: label maps repeat row after row,
/// so records shrink several times for little CPU (replay reads both forms).
fn encode_ipc(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(batch.get_array_memory_size() / 8 + 256);
    {
        let options = IpcWriteOptions::default()
            .try_with_compression(Some(arrow::ipc::CompressionType::LZ4_FRAME))?;
        let mut writer = StreamWriter::try_new_with_options(&mut buf, &batch.schema(), options)?;
        writer.write(batch)?;
        writer.finish()?;
    }
    Ok(buf)
}

fn decode_ipc(bytes: &[u8]) -> Result<RecordBatch> {
    let mut reader = StreamReader::try_new(bytes, None)?;
    match reader.next() {
        Some(batch) => Ok(batch?),
        None => Err(Error::Wal("record holds no batch".into())),
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.wal"))
}

fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".wal")
            && let Ok(id) = stem.parse::<u64>()
        {
            out.push((id, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn create_segment(dir: &Path, id: u64) -> Result<File> {
    let path = segment_path(dir, id);
    let mut file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::Wal(format!("cannot create segment {}: {e}", path.display())))?;
    file.write_all(MAGIC)?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok(file)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Reads every intact record of a segment. Returns a description of the
/// damage if the segment had to be truncated.
fn read_segment(
    path: &Path,
    mut on_record: impl FnMut(WalRecord) -> Result<()>,
) -> Result<Option<String>> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    let mut data = Vec::with_capacity(len as usize);
    file.read_to_end(&mut data)?;
    let magic = data.get(..MAGIC.len());
    let has_body_kind = magic == Some(MAGIC);
    if !has_body_kind && magic != Some(MAGIC_V1) {
        // A segment without a complete header holds no acknowledged record
        // (the header is synced at creation); start it afresh.
        file.set_len(0)?;
        file.write_all(MAGIC)?;
        file.sync_all()?;
        return Ok(Some("missing or damaged segment header".into()));
    }
    let mut pos = MAGIC.len();
    let mut definitions = SeriesDefinitions::default();
    let problem = loop {
        if pos == data.len() {
            break None;
        }
        if data.len() - pos < RECORD_HEADER {
            break Some(format!("torn record header at offset {pos}"));
        }
        let payload_len = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap());
        let crc = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().unwrap());
        if !(11..=MAX_RECORD_BYTES).contains(&payload_len) {
            break Some(format!(
                "implausible record length {payload_len} at offset {pos}"
            ));
        }
        let start = pos + RECORD_HEADER;
        let end = start + payload_len as usize;
        if end > data.len() {
            break Some(format!("torn record at offset {pos}"));
        }
        let payload = &data[start..end];
        if crc32fast::hash(payload) != crc {
            break Some(format!("checksum mismatch at offset {pos}"));
        }
        match parse_payload(payload, has_body_kind, &mut definitions) {
            Ok(record) => on_record(record)?,
            Err(e) => break Some(format!("undecodable record at offset {pos}: {e}")),
        }
        pos = end;
    };
    if problem.is_some() {
        file.set_len(pos as u64)?;
        file.sync_all()?;
    }
    Ok(problem)
}

fn parse_payload(
    payload: &[u8],
    has_body_kind: bool,
    definitions: &mut SeriesDefinitions,
) -> Result<WalRecord> {
    let lsn = u64::from_le_bytes(payload[0..8].try_into().unwrap());
    let signal = Signal::from_code(payload[8])
        .ok_or_else(|| Error::Wal(format!("unknown signal code {}", payload[8])))?;
    let tenant_len = u16::from_le_bytes(payload[9..11].try_into().unwrap()) as usize;
    if payload.len() < 11 + tenant_len {
        return Err(Error::Wal("tenant overruns record".into()));
    }
    let tenant = std::str::from_utf8(&payload[11..11 + tenant_len])
        .map_err(|e| Error::Wal(format!("tenant is not UTF-8: {e}")))?
        .to_string();
    let rest = &payload[11 + tenant_len..];
    let batch = match (has_body_kind, rest.split_first()) {
        (false, _) => decode_ipc(rest)?,
        (true, Some((&BODY_IPC, body))) => decode_ipc(body)?,
        (true, Some((&BODY_SAMPLES, body))) => wal_samples::decode(body, definitions)?,
        (true, Some((kind, _))) => return Err(Error::Wal(format!("unknown body kind {kind}"))),
        (true, None) => return Err(Error::Wal("record has no body".into())),
    };
    let batch = crate::model::normalize::upgrade(signal, batch)?;
    Ok(WalRecord {
        lsn,
        tenant,
        signal,
        batch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::atomic::AtomicUsize;

    fn batch(v: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![v, v + 1]))]).unwrap()
    }

    fn open(dir: &Path) -> (Wal, Vec<WalRecord>, ReplayReport) {
        let mut replayed = Vec::new();
        let (wal, report) = Wal::open(
            dir,
            WalOptions::default(),
            0,
            |r, _| {
                replayed.push(r);
                Ok(())
            },
            Box::new(|_| {}),
        )
        .unwrap();
        (wal, replayed, report)
    }

    #[tokio::test]
    async fn appended_records_replay_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, replayed, _) = open(dir.path());
            assert!(replayed.is_empty());
            for i in 0..5 {
                let d = wal.append("t1", Signal::Samples, batch(i)).await.unwrap();
                assert_eq!(d.lsn, i as u64);
            }
        }
        let (wal, replayed, report) = open(dir.path());
        assert_eq!(report.records, 5);
        assert!(report.truncated.is_empty());
        assert_eq!(
            replayed.iter().map(|r| r.lsn).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
        assert_eq!(replayed[3].batch, batch(3));
        assert_eq!(replayed[0].tenant, "t1");
        // LSNs continue after a restart.
        let d = wal.append("t1", Signal::Logs, batch(9)).await.unwrap();
        assert_eq!(d.lsn, 5);
    }

    #[tokio::test]
    async fn torn_tail_is_truncated_and_earlier_records_survive() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, _, _) = open(dir.path());
            for i in 0..3 {
                wal.append("t", Signal::Samples, batch(i)).await.unwrap();
            }
        }
        let (_, path) = list_segments(dir.path()).unwrap().pop().unwrap();
        let len = fs::metadata(&path).unwrap().len();
        // Cut the last record in half.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 20)
            .unwrap();
        let (_, replayed, report) = open(dir.path());
        assert_eq!(replayed.len(), 2);
        assert_eq!(report.truncated.len(), 1, "{report:?}");
    }

    #[tokio::test]
    async fn corrupt_byte_stops_replay_at_that_record() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, _, _) = open(dir.path());
            for i in 0..3 {
                wal.append("t", Signal::Samples, batch(i)).await.unwrap();
            }
        }
        let (_, path) = list_segments(dir.path()).unwrap().pop().unwrap();
        let mut bytes = fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 5] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        let (_, replayed, report) = open(dir.path());
        assert_eq!(replayed.len(), 2);
        assert!(report.truncated[0].contains("checksum"), "{report:?}");
    }

    #[tokio::test]
    async fn group_commit_acknowledges_after_on_durable() {
        let dir = tempfile::tempdir().unwrap();
        let applied = Arc::new(AtomicUsize::new(0));
        let seen = applied.clone();
        let (wal, _) = Wal::open(
            dir.path(),
            WalOptions::default(),
            0,
            |_, _| Ok(()),
            Box::new(move |records| {
                seen.fetch_add(records.len(), Ordering::SeqCst);
            }),
        )
        .unwrap();
        let mut tasks = Vec::new();
        for i in 0..50 {
            let wal = wal.clone();
            tasks.push(tokio::spawn(async move {
                wal.append("t", Signal::Spans, batch(i)).await.unwrap()
            }));
        }
        let mut lsns = Vec::new();
        for t in tasks {
            lsns.push(t.await.unwrap().lsn);
        }
        lsns.sort();
        assert_eq!(lsns, (0..50).collect::<Vec<_>>());
        assert_eq!(applied.load(Ordering::SeqCst), 50);
    }

    #[tokio::test]
    async fn segments_rotate_and_old_ones_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(
            dir.path(),
            WalOptions {
                segment_bytes: 1,
                fsync: false,
            },
            0,
            |_, _| Ok(()),
            Box::new(|_| {}),
        )
        .unwrap();
        for i in 0..4 {
            wal.append("t", Signal::Samples, batch(i)).await.unwrap();
        }
        let current = wal.current_segment();
        assert!(list_segments(dir.path()).unwrap().len() >= 4);
        wal.remove_segments_before(current).unwrap();
        let left = list_segments(dir.path()).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].0, current);
    }

    fn samples(round: i64, series: std::ops::Range<i64>) -> RecordBatch {
        let mut builder = crate::model::builders::SamplesBuilder::new();
        for s in series {
            let instance = format!("host-{s}");
            builder.push_series(
                "up",
                &[("instance", instance.as_str()), ("job", "node")],
                &[(round * 1000, s as f64 + 0.5)],
            );
        }
        builder.finish()
    }

    #[tokio::test]
    async fn samples_by_series_reference_survive_rotation_and_segment_removal() {
        let dir = tempfile::tempdir().unwrap();
        let options = WalOptions {
            segment_bytes: 600,
            fsync: false,
        };
        let written: Vec<RecordBatch> = (0..8)
            .map(|round| samples(round, 0..(4 + round % 3)))
            .collect();
        {
            let (wal, _) = Wal::open(
                dir.path(),
                options.clone(),
                0,
                |_, _| Ok(()),
                Box::new(|_| {}),
            )
            .unwrap();
            for batch in &written {
                wal.append("t", Signal::Samples, batch.clone())
                    .await
                    .unwrap();
            }
            assert!(list_segments(dir.path()).unwrap().len() > 2);
        }
        let (wal, replayed, report) = open(dir.path());
        assert!(report.truncated.is_empty(), "{report:?}");
        let batches: Vec<RecordBatch> = replayed.into_iter().map(|r| r.batch).collect();
        assert_eq!(batches, written);
        // Without the older segments, the newer ones still resolve every series.
        let keep_from = list_segments(dir.path()).unwrap()[2].0;
        let current = wal.current_segment();
        drop(wal);
        for (id, path) in list_segments(dir.path()).unwrap() {
            if id < keep_from {
                fs::remove_file(path).unwrap();
            }
        }
        let (_, replayed, report) = open(dir.path());
        assert!(report.truncated.is_empty(), "{report:?}");
        assert!(!replayed.is_empty() && current > keep_from);
        let first_kept = written.len() - replayed.len();
        assert_eq!(
            replayed.into_iter().map(|r| r.batch).collect::<Vec<_>>(),
            written[first_kept..]
        );
    }

    #[tokio::test]
    async fn first_format_segments_still_replay() {
        let dir = tempfile::tempdir().unwrap();
        let batch = samples(1, 0..3);
        let mut payload = 7u64.to_le_bytes().to_vec();
        payload.push(Signal::Samples.code());
        payload.extend_from_slice(&2u16.to_le_bytes());
        payload.extend_from_slice(b"t1");
        payload.extend_from_slice(&encode_ipc(&batch).unwrap());
        let mut segment = MAGIC_V1.to_vec();
        segment.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        segment.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        segment.extend_from_slice(&payload);
        fs::write(segment_path(dir.path(), 1), segment).unwrap();
        let (wal, replayed, report) = open(dir.path());
        assert!(report.truncated.is_empty(), "{report:?}");
        assert_eq!(replayed.len(), 1);
        assert_eq!((replayed[0].lsn, replayed[0].tenant.as_str()), (7, "t1"));
        assert_eq!(replayed[0].batch, batch);
        // New records go to a new segment in the current format.
        wal.append("t1", Signal::Samples, samples(2, 0..3))
            .await
            .unwrap();
        let (_, newest) = list_segments(dir.path()).unwrap().pop().unwrap();
        assert_eq!(&fs::read(newest).unwrap()[..8], MAGIC);
    }
}
