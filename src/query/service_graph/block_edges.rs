//! A span block's service-graph edges, computed once when the block is
//! written and stored beside it as `blocks/<id>.edges`.
//!
//! Writing: the block's rows, in block order (sorted by trace id, so each
//! trace is one run), go through [`BlockEdgesBuilder`], which pairs each
//! trace's spans exactly as `service_graph()` does (`edges`) and records
//! every edge with its trace. Reading: `service_graph()` takes a block whose
//! spans all lie in its window from this file instead of reading the spans
//! ([`BlockEdges::count`]); the traces that also have spans elsewhere
//! (another block, the head) are left out here and gathered from the spans.
//!
//! File format: magic `O11EDG01`, then one zstd frame holding, as LEB128
//! varints unless said otherwise: node names (count, then length + UTF-8
//! each); edge keys (count, then client name, server name, connection
//! byte); traces (count, then length + id each, then each trace's edge
//! count); edges (count, then each edge's key index, then one flag byte per
//! edge, then the server durations present, then the client durations
//! present, zigzag-encoded); and a crc32 (4 bytes LE) of all of it.

use bytes::Bytes;
use datafusion::common::{HashMap, HashSet};
use xxhash_rust::xxh3::xxh3_64;

use arrow::array::RecordBatch;

use super::edges::{
    COLUMNS, Connection, EdgeCounter, EdgeFlags, EdgeKey, EdgeStats, Names, PartitionEdges,
    RecordedEdges,
};
use crate::error::{Error, Result};
use crate::storage::checksum::{append_crc32, verified_body};

const MAGIC: &[u8; 8] = b"O11EDG01";

/// The zstd level of the edges file: it is written at every flush.
const ZSTD_LEVEL: i32 = 3;

/// Records the edges of a block's spans, batch by batch in block order.
pub struct BlockEdgesBuilder {
    edges: PartitionEdges,
}

impl Default for BlockEdgesBuilder {
    fn default() -> Self {
        BlockEdgesBuilder {
            edges: PartitionEdges::recording(),
        }
    }
}

impl BlockEdgesBuilder {
    /// Adds rows of a span block in the storage schema (maps packed).
    pub fn push(&mut self, stored: &RecordBatch) -> Result<()> {
        let projection = COLUMNS
            .iter()
            .map(|c| stored.schema().index_of(c))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        self.edges
            .push_batch(stored.project(&projection)?)
            .map_err(|e| Error::Storage(format!("service-graph edges of a block: {e}")))
    }

    /// The edges file.
    pub fn finish(mut self) -> Result<Bytes> {
        self.edges
            .finish()
            .map_err(|e| Error::Storage(format!("service-graph edges of a block: {e}")))?;
        let counter = std::mem::take(&mut self.edges.counter);
        let recorded = counter.recorded.unwrap_or_default();
        encode(&counter.names, &recorded)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn encode(names: &Names, r: &RecordedEdges) -> Result<Bytes> {
    let mut out = Vec::with_capacity(64 + r.trace_ids.len() + r.edge_keys.len() * 8);
    put_varint(&mut out, names.names.len() as u64);
    for name in &names.names {
        put_bytes(&mut out, name.as_bytes());
    }
    put_varint(&mut out, r.keys.len() as u64);
    for &(client, server, connection) in &r.keys {
        put_varint(&mut out, client as u64);
        put_varint(&mut out, server as u64);
        out.push(connection as u8);
    }
    let traces = r.trace_id_ends.len();
    put_varint(&mut out, traces as u64);
    let mut from = 0;
    for &end in &r.trace_id_ends {
        put_bytes(&mut out, &r.trace_ids.as_bytes()[from..end as usize]);
        from = end as usize;
    }
    for t in 0..traces {
        let end = r
            .first_edges
            .get(t + 1)
            .map_or(r.edge_keys.len(), |&e| e as usize);
        put_varint(&mut out, (end - r.first_edges[t] as usize) as u64);
    }
    put_varint(&mut out, r.edge_keys.len() as u64);
    for &k in &r.edge_keys {
        put_varint(&mut out, k as u64);
    }
    out.extend_from_slice(&r.flags);
    for &ns in r.server_ns.iter().chain(&r.client_ns) {
        put_varint(&mut out, zigzag(ns));
    }
    append_crc32(&mut out);
    let mut file = MAGIC.to_vec();
    zstd::stream::copy_encode(out.as_slice(), &mut file, ZSTD_LEVEL)?;
    Ok(Bytes::from(file))
}

/// A reader over the decompressed body.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err(corrupt("truncated"));
            };
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(corrupt("varint too long"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(corrupt("truncated"));
        };
        let b = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    fn str(&mut self) -> Result<&'a str> {
        let n = self.count()?;
        std::str::from_utf8(self.take(n)?).map_err(|_| corrupt("a name is not UTF-8"))
    }

    /// A count, bounded by the bytes left (each item takes at least one).
    fn count(&mut self) -> Result<usize> {
        let n = self.varint()?;
        if n > (self.bytes.len() - self.pos) as u64 {
            return Err(corrupt("a count exceeds the file"));
        }
        Ok(n as usize)
    }
}

fn corrupt(what: &str) -> Error {
    Error::Storage(format!("corrupt service-graph edges file: {what}"))
}

/// A block's edges file, decoded.
#[derive(Debug)]
pub struct BlockEdges {
    names: Vec<Box<str>>,
    keys: Vec<EdgeKey>,
    trace_ids: Vec<Box<str>>,
    /// The hash of each trace id (as the first pass hashes runs).
    trace_hashes: Vec<u64>,
    /// Edges per trace, in trace order.
    trace_edges: Vec<u32>,
    edge_keys: Vec<u32>,
    flags: Vec<u8>,
    server_ns: Vec<i64>,
    client_ns: Vec<i64>,
}

impl BlockEdges {
    pub fn decode(file: &[u8]) -> Result<BlockEdges> {
        let Some(frame) = file.strip_prefix(MAGIC.as_slice()) else {
            return Err(corrupt("bad magic"));
        };
        let body = zstd::stream::decode_all(frame)?;
        if body.len() < 4 {
            return Err(corrupt("truncated"));
        }
        let body = verified_body(&body).ok_or_else(|| corrupt("checksum mismatch"))?;
        let mut r = Reader {
            bytes: body,
            pos: 0,
        };
        let n = r.count()?;
        let names = (0..n)
            .map(|_| r.str().map(Box::from))
            .collect::<Result<Vec<_>>>()?;
        // Keys index the names as written; `count` numbers them the same
        // way only if none repeats.
        if names.iter().collect::<HashSet<_>>().len() != names.len() {
            return Err(corrupt("a node name repeats"));
        }
        let n = r.count()?;
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            let client = r.varint()?;
            let server = r.varint()?;
            let connection = r.take(1)?[0];
            let Some(&connection) = Connection::ALL.get(connection as usize) else {
                return Err(corrupt("unknown connection type"));
            };
            if client >= names.len() as u64 || server >= names.len() as u64 {
                return Err(corrupt("a node name index is out of range"));
            }
            keys.push((client as u32, server as u32, connection));
        }
        let traces = r.count()?;
        let trace_ids: Vec<Box<str>> = (0..traces)
            .map(|_| r.str().map(Box::from))
            .collect::<Result<Vec<_>>>()?;
        let trace_edges = (0..traces)
            .map(|_| r.varint().map(|v| v as u32))
            .collect::<Result<Vec<_>>>()?;
        let edges = r.count()?;
        if trace_edges.iter().map(|&e| e as u64).sum::<u64>() != edges as u64 {
            return Err(corrupt("the traces' edge counts do not add up"));
        }
        let edge_keys = (0..edges)
            .map(|_| match r.varint()? {
                k if k < keys.len() as u64 => Ok(k as u32),
                _ => Err(corrupt("an edge key index is out of range")),
            })
            .collect::<Result<Vec<_>>>()?;
        let flags = r.take(edges)?.to_vec();
        let with = |bit: u8| flags.iter().filter(|&&f| f & bit != 0).count();
        let server_ns = (0..with(EdgeFlags::SERVER))
            .map(|_| r.varint().map(unzigzag))
            .collect::<Result<Vec<_>>>()?;
        let client_ns = (0..with(EdgeFlags::CLIENT))
            .map(|_| r.varint().map(unzigzag))
            .collect::<Result<Vec<_>>>()?;
        if r.pos != body.len() {
            return Err(corrupt("trailing bytes"));
        }
        let trace_hashes = trace_ids.iter().map(|t| xxh3_64(t.as_bytes())).collect();
        Ok(BlockEdges {
            names,
            keys,
            trace_ids,
            trace_hashes,
            trace_edges,
            edge_keys,
            flags,
            server_ns,
            client_ns,
        })
    }

    /// Bytes held, for memory accounting.
    pub fn bytes(&self) -> usize {
        let ids: usize = self.trace_ids.iter().map(|t| t.len() + 24).sum();
        ids + self.trace_edges.len() * 4
            + self.edge_keys.len() * 5
            + (self.server_ns.len() + self.client_ns.len()) * 8
    }

    /// The hash of each trace id (as the first pass hashes runs).
    pub fn trace_hashes(&self) -> &[u64] {
        &self.trace_hashes
    }

    /// The trace ids whose hash is in `split`.
    pub fn split_trace_ids(&self, split: &HashSet<u64>) -> Vec<String> {
        self.trace_ids
            .iter()
            .zip(&self.trace_hashes)
            .filter(|(_, hash)| split.contains(*hash))
            .map(|(t, _)| t.to_string())
            .collect()
    }

    /// The edges of every trace not in `split`, counted as
    /// `service_graph()` counts a partition's whole traces.
    pub fn count(self, split: &HashSet<u64>) -> PartitionEdges {
        let mut stats: Vec<EdgeStats> = self.keys.iter().map(|_| EdgeStats::default()).collect();
        let mut counted = Vec::with_capacity(self.trace_ids.len());
        let (mut edge, mut server, mut client) = (0usize, 0usize, 0usize);
        let mut values = 0;
        for (&hash, &n) in self.trace_hashes.iter().zip(&self.trace_edges) {
            let whole = !split.contains(&hash);
            if whole {
                counted.push(hash);
            }
            for e in edge..edge + n as usize {
                let flags = self.flags[e];
                let s = (flags & EdgeFlags::SERVER != 0).then(|| {
                    server += 1;
                    self.server_ns[server - 1]
                });
                let c = (flags & EdgeFlags::CLIENT != 0).then(|| {
                    client += 1;
                    self.client_ns[client - 1]
                });
                if !whole {
                    continue;
                }
                values +=
                    stats[self.edge_keys[e] as usize].add(s, c, flags & EdgeFlags::FAILED != 0);
            }
            edge += n as usize;
        }
        let mut names = Names::default();
        for name in &self.names {
            names.id(name);
        }
        let edges: HashMap<EdgeKey, EdgeStats> = self
            .keys
            .into_iter()
            .zip(stats)
            .filter(|(_, s)| s.requests > 0)
            .collect();
        PartitionEdges::counted(EdgeCounter::of_counted(names, edges, values), counted)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::common::HashSet;

    use super::*;
    use crate::bench::traces::{TracesDataset, export_request};
    use crate::ingest::limits::Limits;
    use crate::ingest::otlp::decode_traces;
    use crate::model::Signal;
    use crate::query::service_graph::edges::{self, Window};
    use crate::storage::block::sort_for_block;
    use crate::storage::codec::encode_for_block;

    /// 200 generated traces as one span block's rows (storage schema).
    fn block_rows() -> RecordBatch {
        let spans = (0..200u64)
            .flat_map(|n| TracesDataset::trace(n, 1_700_000_000_000_000_000 + n * 1_000_000))
            .collect();
        let now_ms = 1_700_000_000_000 + 3_600_000;
        let decoded = decode_traces(export_request(spans), &Limits::default(), now_ms);
        assert!(decoded.discards.is_empty(), "{:?}", decoded.discards);
        let batch =
            arrow::compute::concat_batches(&decoded.batches[0].schema(), &decoded.batches).unwrap();
        encode_for_block(
            Signal::Spans,
            &sort_for_block(Signal::Spans, &batch).unwrap(),
        )
        .unwrap()
    }

    fn edges_file(rows: &RecordBatch) -> Bytes {
        let mut builder = BlockEdgesBuilder::default();
        // In two batches, so that a trace runs over the boundary.
        let half = rows.num_rows() / 2 + 3;
        builder.push(&rows.slice(0, half)).unwrap();
        builder
            .push(&rows.slice(half, rows.num_rows() - half))
            .unwrap();
        builder.finish().unwrap()
    }

    /// The rows `service_graph()` makes of the spans themselves.
    fn from_spans(rows: &RecordBatch, split: &Arc<HashSet<u64>>) -> RecordBatch {
        let projection: Vec<usize> = edges::COLUMNS
            .iter()
            .map(|c| rows.schema().index_of(c).unwrap())
            .collect();
        let mut partition = PartitionEdges::new(Window::EVERYTHING, split.clone());
        partition
            .push_batch(rows.project(&projection).unwrap())
            .unwrap();
        partition.finish().unwrap();
        // The split traces' spans are counted by `finish` on their own.
        edges::finish(vec![partition]).unwrap()
    }

    #[test]
    fn an_edges_file_counts_as_the_spans_do() {
        let rows = block_rows();
        let file = BlockEdges::decode(&edges_file(&rows)).unwrap();
        let hashes = file.trace_hashes().to_vec();
        assert_eq!(hashes.len(), 200);
        let none = Arc::new(HashSet::new());
        let want = from_spans(&rows, &none);
        assert!(want.num_rows() > 10, "{want:?}");
        assert_eq!(edges::finish(vec![file.count(&none)]).unwrap(), want);

        // Traces said to be split elsewhere are left out of the count and
        // named for gathering.
        let split: Arc<HashSet<u64>> = Arc::new(hashes.iter().copied().step_by(7).collect());
        let file = BlockEdges::decode(&edges_file(&rows)).unwrap();
        assert_eq!(file.split_trace_ids(&split).len(), split.len());
        let counted = file.count(&split);
        assert_eq!(counted.counted.len(), 200 - split.len());
        let mut gathered = PartitionEdges::gathering(Window::EVERYTHING, split.clone());
        let projection: Vec<usize> = edges::COLUMNS
            .iter()
            .map(|c| rows.schema().index_of(c).unwrap())
            .collect();
        gathered
            .push_batch(rows.project(&projection).unwrap())
            .unwrap();
        gathered.finish().unwrap();
        assert!(gathered.counted.is_empty());
        assert_eq!(edges::finish(vec![counted, gathered]).unwrap(), want);
    }

    /// `body` (an edges file's content) as a file with a valid checksum.
    fn file_of(mut body: Vec<u8>) -> Vec<u8> {
        crate::storage::checksum::append_crc32(&mut body);
        let mut file = MAGIC.to_vec();
        zstd::stream::copy_encode(body.as_slice(), &mut file, 1).unwrap();
        file
    }

    proptest::proptest! {
        /// A body damaged anywhere, with a checksum that matches it (so
        /// the damage reaches the parser), decodes to an error or to edges
        /// that count and finish without panicking.
        #[test]
        fn damaged_bodies_never_panic(at in 0usize..4096, len in 0usize..64, byte in 0u8..=255, mode in 0u8..3) {
            static BODY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
            let body = BODY.get_or_init(|| {
                let file = edges_file(&block_rows());
                let mut body = zstd::stream::decode_all(&file[MAGIC.len()..]).unwrap();
                body.truncate(body.len() - 4);
                body
            });
            let mut damaged = body.clone();
            let at = at % damaged.len();
            match mode {
                0 => damaged[at] ^= byte | 1,
                1 => { damaged.drain(at..(at + len).min(body.len())); }
                _ => damaged.splice(at..at, std::iter::repeat_n(byte, len + 1)).for_each(drop),
            }
            if let Ok(edges) = BlockEdges::decode(&file_of(damaged)) {
                let _ = edges::finish(vec![edges.count(&HashSet::new())]);
            }
        }
    }

    #[test]
    fn a_damaged_edges_file_is_an_error() {
        let file = edges_file(&block_rows());
        assert!(BlockEdges::decode(&file[..file.len() / 2]).is_err());
        assert!(BlockEdges::decode(b"O11EDG01").is_err());
        assert!(BlockEdges::decode(b"nonsense").is_err());
        // A valid frame of garbage fails its checksum or its counts.
        let mut garbage = MAGIC.to_vec();
        let body: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        zstd::stream::copy_encode(body.as_slice(), &mut garbage, 1).unwrap();
        let err = BlockEdges::decode(&garbage).unwrap_err().to_string();
        assert!(err.contains("corrupt service-graph edges file"), "{err}");
    }
}
