//! Service-graph edges from spans, one trace at a time.
//!
//! Spans come in as Arrow batches of [`COLUMNS`] (a `spans` scan whose
//! attribute maps stay packed label sets). Span blocks are sorted by trace
//! id, so nearly every trace is one run of consecutive rows:
//! [`PartitionEdges::push_batch`] hands each run to [`EdgeCounter::add_trace`],
//! which pairs the trace's client and server spans in memory and counts the
//! edges by Tempo's rules (as `sql/service_graph.sql` states them). The
//! traces that are *not* one run — spread over blocks, partitions, batches of
//! the unsorted head — were found by a first pass ([`RunHashes`]); their
//! spans are copied out ([`OwnedSpan`]) and grouped by trace id at the end
//! ([`finish`]), which also turns the counts into `service_graph()` rows with
//! exact `percentile_cont` latencies.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Builder, Int64Array, RecordBatch, StringArray, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimestampNanosecondType};
use datafusion::common::{HashMap, HashSet, exec_err};
use datafusion::error::{DataFusionError, Result};
use xxhash_rust::xxh3::xxh3_64;

use crate::storage::codec::{PackedColumn, PackedPairs};

/// The `spans` columns the edges are computed from, in this order.
pub const COLUMNS: [&str; 10] = [
    "trace_id",
    "span_id",
    "parent_span_id",
    "kind",
    "service",
    "start_time",
    "duration_ns",
    "status_code",
    "attributes",
    "resource_attributes",
];

/// The node name of the root servers' callers.
const USER: &str = "user";

/// The rows of `service_graph()`.
pub fn output_schema() -> SchemaRef {
    let seconds = |name: &str| Field::new(name, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        Field::new("client", DataType::Utf8, false),
        Field::new("server", DataType::Utf8, true),
        Field::new("connection_type", DataType::Utf8, false),
        Field::new("request_count", DataType::Int64, false),
        Field::new("failed_count", DataType::Int64, false),
        seconds("p50_seconds"),
        seconds("p95_seconds"),
        seconds("p99_seconds"),
        seconds("client_p50_seconds"),
        seconds("client_p95_seconds"),
        seconds("client_p99_seconds"),
    ]))
}

/// Tempo's `connection_type` label. The variants are in the order of their
/// texts, so rows keyed by it sort as the texts do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Connection {
    Direct,
    Database,
    MessagingSystem,
    VirtualNode,
}

impl Connection {
    pub(super) const ALL: [Connection; 4] = [
        Connection::Direct,
        Connection::Database,
        Connection::MessagingSystem,
        Connection::VirtualNode,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Connection::Direct => "",
            Connection::Database => "database",
            Connection::MessagingSystem => "messaging_system",
            Connection::VirtualNode => "virtual_node",
        }
    }
}

/// A span's part in the graph, from its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Client,
    Producer,
    Server,
    Consumer,
    Other,
}

impl Role {
    fn of(kind: &str) -> Role {
        match kind {
            "client" => Role::Client,
            "producer" => Role::Producer,
            "server" => Role::Server,
            "consumer" => Role::Consumer,
            _ => Role::Other,
        }
    }

    fn is_client(self) -> bool {
        matches!(self, Role::Client | Role::Producer)
    }

    fn is_server(self) -> bool {
        matches!(self, Role::Server | Role::Consumer)
    }
}

/// What a client span's attributes say about its peer (node names as ids).
#[derive(Debug, Clone, Copy, Default)]
struct Peer {
    /// The database it calls, when it calls one (and the name is known).
    db_server: Option<u32>,
    is_db: bool,
    /// The uninstrumented peer it names, if it has no server child.
    peer_node: Option<u32>,
}

/// Node names, each kept once.
#[derive(Debug, Default)]
pub(super) struct Names {
    ids: HashMap<Box<str>, u32>,
    pub names: Vec<Box<str>>,
}

impl Names {
    pub fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
}

/// One span as the pairing sees it.
#[derive(Debug, Clone, Copy)]
struct TraceSpan<'a> {
    span_id: &'a str,
    parent: Option<&'a str>,
    role: Role,
    service: u32,
    duration_ns: i64,
    failed: bool,
    peer: Peer,
}

/// One edge's requests.
#[derive(Debug, Default)]
pub(super) struct EdgeStats {
    pub requests: u64,
    pub failed: u64,
    pub server_ns: Vec<i64>,
    pub client_ns: Vec<i64>,
}

impl EdgeStats {
    /// One more request on the edge; returns how many durations it kept.
    pub fn add(&mut self, server_ns: Option<i64>, client_ns: Option<i64>, failed: bool) -> usize {
        self.requests += 1;
        self.failed += u64::from(failed);
        self.server_ns.extend(server_ns);
        self.client_ns.extend(client_ns);
        usize::from(server_ns.is_some()) + usize::from(client_ns.is_some())
    }
}

pub(super) type EdgeKey = (u32, u32, Connection);

/// Edges counted so far, keyed by node ids of its own [`Names`]; or, when
/// `recorded` is set, every edge of every trace as it was found (the
/// contents of a block's edges file, `block_edges`).
#[derive(Debug, Default)]
pub struct EdgeCounter {
    pub(super) names: Names,
    pub(super) edges: HashMap<EdgeKey, EdgeStats>,
    /// Durations kept, for memory accounting.
    pub(super) values: usize,
    has_child: Vec<bool>,
    pub(super) recorded: Option<RecordedEdges>,
}

/// Each trace's edges in the order found: what a block's edges file holds.
#[derive(Debug, Default)]
pub(super) struct RecordedEdges {
    /// Trace ids, concatenated; trace `i` ends at `trace_id_ends[i]`.
    pub trace_ids: String,
    pub trace_id_ends: Vec<u32>,
    /// Index of each trace's first edge.
    pub first_edges: Vec<u32>,
    pub keys: Vec<EdgeKey>,
    key_index: HashMap<EdgeKey, u32>,
    /// Per edge: its index in `keys`, [`EdgeFlags`] and the durations it has.
    pub edge_keys: Vec<u32>,
    pub flags: Vec<u8>,
    pub server_ns: Vec<i64>,
    pub client_ns: Vec<i64>,
}

/// Bits of [`RecordedEdges::flags`].
pub(super) struct EdgeFlags;

impl EdgeFlags {
    pub const SERVER: u8 = 1;
    pub const CLIENT: u8 = 2;
    pub const FAILED: u8 = 4;
}

impl RecordedEdges {
    fn begin_trace(&mut self, trace_id: &str) {
        self.trace_ids.push_str(trace_id);
        self.trace_id_ends.push(self.trace_ids.len() as u32);
        self.first_edges.push(self.edge_keys.len() as u32);
    }

    fn push(&mut self, key: EdgeKey, server_ns: Option<i64>, client_ns: Option<i64>, failed: bool) {
        let next = self.keys.len() as u32;
        let index = *self.key_index.entry(key).or_insert(next);
        if index == next {
            self.keys.push(key);
        }
        self.edge_keys.push(index);
        let mut flags = 0;
        if let Some(ns) = server_ns {
            flags |= EdgeFlags::SERVER;
            self.server_ns.push(ns);
        }
        if let Some(ns) = client_ns {
            flags |= EdgeFlags::CLIENT;
            self.client_ns.push(ns);
        }
        if failed {
            flags |= EdgeFlags::FAILED;
        }
        self.flags.push(flags);
    }
}

impl EdgeCounter {
    /// A counter holding edges counted elsewhere (a block's edges file).
    pub(super) fn of_counted(
        names: Names,
        edges: HashMap<EdgeKey, EdgeStats>,
        values: usize,
    ) -> Self {
        EdgeCounter {
            names,
            edges,
            values,
            ..Default::default()
        }
    }

    fn edge(&mut self, key: EdgeKey, server_ns: Option<i64>, client_ns: Option<i64>, failed: bool) {
        if let Some(recorded) = self.recorded.as_mut() {
            recorded.push(key, server_ns, client_ns, failed);
            return;
        }
        self.values += self
            .edges
            .entry(key)
            .or_default()
            .add(server_ns, client_ns, failed);
    }

    /// Counts the edges of one whole trace (every span of it in the window).
    fn add_trace(&mut self, spans: &[TraceSpan]) {
        let user = self.names.id(USER);
        let mut has_child = std::mem::take(&mut self.has_child);
        has_child.clear();
        has_child.resize(spans.len(), false);
        let pairable = |s: &TraceSpan| s.role.is_client() && s.peer.db_server.is_none();
        // Big traces look parents up in a map; small ones scan.
        let by_id: Option<HashMap<&str, Vec<usize>>> = (spans.len() > 32).then(|| {
            let mut map: HashMap<&str, Vec<usize>> = HashMap::new();
            for (i, s) in spans.iter().enumerate().filter(|(_, s)| pairable(s)) {
                map.entry(s.span_id).or_default().push(i);
            }
            map
        });
        for server in spans.iter().filter(|s| s.role.is_server()) {
            let Some(parent) = server.parent else {
                self.edge(
                    (user, server.service, Connection::VirtualNode),
                    Some(server.duration_ns),
                    None,
                    server.failed,
                );
                continue;
            };
            let mut pair = |c: usize, counter: &mut EdgeCounter| {
                let client = &spans[c];
                has_child[c] = true;
                let connection = if client.role == Role::Producer || server.role == Role::Consumer {
                    Connection::MessagingSystem
                } else {
                    Connection::Direct
                };
                counter.edge(
                    (client.service, server.service, connection),
                    Some(server.duration_ns),
                    Some(client.duration_ns),
                    client.failed || server.failed,
                );
            };
            match &by_id {
                Some(map) => {
                    for &c in map.get(parent).into_iter().flatten() {
                        pair(c, self);
                    }
                }
                None => {
                    for (c, client) in spans.iter().enumerate() {
                        if pairable(client) && client.span_id == parent {
                            pair(c, self);
                        }
                    }
                }
            }
        }
        for (client, &child) in spans.iter().zip(&has_child) {
            if !client.role.is_client() {
                continue;
            }
            let d = client.duration_ns;
            if let Some(db) = client.peer.db_server {
                self.edge(
                    (client.service, db, Connection::Database),
                    Some(d),
                    Some(d),
                    client.failed,
                );
            } else if !child && let Some(node) = client.peer.peer_node {
                self.edge(
                    (client.service, node, Connection::VirtualNode),
                    client.peer.is_db.then_some(d),
                    Some(d),
                    client.failed,
                );
            }
        }
        self.has_child = has_child;
    }

    /// Bytes held for the durations (the rest is small).
    pub fn bytes(&self) -> usize {
        self.values * std::mem::size_of::<i64>()
    }
}

/// The attributes a client's peer is named from, in lookup order.
const PEER_KEYS: [&str; 6] = [
    "db.name",
    "db.system",
    "peer.service",
    "server.address",
    "network.peer.address",
    "network.peer.port",
];
const DB_NAME: usize = 0;
const DB_SYSTEM: usize = 1;
const PEER_SERVICE: usize = 2;
const SERVER_ADDRESS: usize = 3;
const PEER_ADDRESS: usize = 4;
const PEER_PORT: usize = 5;

fn peer_attributes(packed: &[u8]) -> Result<[Option<&str>; 6]> {
    let mut found = [None; 6];
    for pair in PackedPairs::new(packed) {
        let (k, v) = pair.map_err(|e| DataFusionError::External(Box::new(e)))?;
        if let Some(i) = PEER_KEYS.iter().position(|&p| p == k) {
            found[i].get_or_insert(v);
        }
    }
    Ok(found)
}

/// A client's peer from its span (`a`) and resource (`r`) attributes:
/// the `coalesce`s of `sql/service_graph.sql`.
fn peer(names: &mut Names, a: &[Option<&str>; 6], r: &[Option<&str>; 6]) -> Peer {
    let either = |i: usize| a[i].or(r[i]);
    let is_db = either(DB_NAME).is_some() || either(DB_SYSTEM).is_some();
    let db_server = if is_db {
        let address = either(PEER_ADDRESS).map(|address| match either(PEER_PORT) {
            Some(port) => format!("{address}:{port}"),
            None => address.to_string(),
        });
        either(PEER_SERVICE)
            .or(either(SERVER_ADDRESS))
            .map(str::to_string)
            .or(address)
            .or(either(DB_NAME).map(str::to_string))
            .map(|n| names.id(&n))
    } else {
        None
    };
    let peer_node = a[PEER_SERVICE]
        .or(a[DB_NAME])
        .or(a[DB_SYSTEM])
        .map(|n| names.id(n));
    Peer {
        db_server,
        is_db,
        peer_node,
    }
}

/// The columns of one batch of [`COLUMNS`].
struct SpanColumns<'a> {
    trace_id: &'a StringArray,
    span_id: &'a StringArray,
    parent: &'a StringArray,
    kind: &'a StringArray,
    service: &'a StringArray,
    start_ns: &'a [i64],
    duration_ns: &'a Int64Array,
    status: &'a StringArray,
    attributes: PackedColumn<'a>,
    resources: PackedColumn<'a>,
}

fn utf8(batch: &RecordBatch, i: usize) -> Result<&StringArray> {
    match batch.column(i).as_string_opt::<i32>() {
        Some(a) => Ok(a),
        None => exec_err!(
            "service_graph(): column {} has type {}, expected Utf8",
            COLUMNS[i],
            batch.column(i).data_type()
        ),
    }
}

impl<'a> SpanColumns<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self> {
        let Some(start_ns) = batch
            .column(5)
            .as_primitive_opt::<TimestampNanosecondType>()
        else {
            return exec_err!("service_graph(): start_time is not a nanosecond timestamp");
        };
        let Some(duration_ns) = batch.column(6).as_primitive_opt::<Int64Type>() else {
            return exec_err!("service_graph(): duration_ns is not Int64");
        };
        Ok(SpanColumns {
            trace_id: utf8(batch, 0)?,
            span_id: utf8(batch, 1)?,
            parent: utf8(batch, 2)?,
            kind: utf8(batch, 3)?,
            service: utf8(batch, 4)?,
            start_ns: start_ns.values(),
            duration_ns,
            status: utf8(batch, 7)?,
            attributes: PackedColumn::of(batch.column(8))?,
            resources: PackedColumn::of(batch.column(9))?,
        })
    }
}

/// The window the spans must start in, `[start, end)` in ns.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start_ns: i64,
    pub end_ns: i64,
}

impl Window {
    /// Every span.
    pub const EVERYTHING: Window = Window {
        start_ns: i64::MIN,
        end_ns: i64::MAX,
    };

    fn contains(&self, t: i64) -> bool {
        self.start_ns <= t && t < self.end_ns
    }
}

/// The first pass: a hash of each run of equal trace ids one partition
/// yields, in order (a run continues across batches).
#[derive(Debug, Default)]
pub struct RunHashes {
    pub hashes: Vec<u64>,
    last: Option<String>,
}

impl RunHashes {
    /// Runs already hashed (the traces of a block's edges file).
    pub fn of_hashes(hashes: Vec<u64>) -> Self {
        RunHashes { hashes, last: None }
    }

    /// Adds the runs of a batch whose first column is the trace id.
    pub fn push_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        let trace_id = utf8(batch, 0)?;
        for row in 0..trace_id.len() {
            let t = trace_id.value(row);
            let new_run = match &self.last {
                Some(last) if row == 0 => last != t,
                _ if row == 0 => true,
                _ => trace_id.value(row - 1) != t,
            };
            if new_run {
                self.hashes.push(xxh3_64(t.as_bytes()));
            }
        }
        if !trace_id.is_empty() {
            self.last = Some(trace_id.value(trace_id.len() - 1).to_string());
        }
        Ok(())
    }
}

/// The trace hashes seen in more than one run across all partitions.
pub fn split_traces(passes: Vec<RunHashes>) -> HashSet<u64> {
    repeated(passes.into_iter().flat_map(|p| p.hashes).collect())
}

/// The values that occur more than once.
fn repeated(mut hashes: Vec<u64>) -> HashSet<u64> {
    hashes.sort_unstable();
    hashes
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect()
}

/// A span of a split trace, kept until every partition is read.
#[derive(Debug)]
pub struct OwnedSpan {
    trace_id: Box<str>,
    span_id: Box<str>,
    parent: Option<Box<str>>,
    role: Role,
    service: Box<str>,
    duration_ns: i64,
    failed: bool,
    db_server: Option<Box<str>>,
    is_db: bool,
    peer_node: Option<Box<str>>,
}

impl OwnedSpan {
    /// Heap and inline bytes, for memory accounting.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.trace_id.len()
            + self.span_id.len()
            + self.parent.as_ref().map_or(0, |p| p.len())
            + self.service.len()
            + self.db_server.as_ref().map_or(0, |n| n.len())
            + self.peer_node.as_ref().map_or(0, |n| n.len())
    }
}

/// The second pass over one partition.
pub struct PartitionEdges {
    window: Window,
    split: Arc<HashSet<u64>>,
    /// Only the split traces' spans are taken; the other runs are skipped
    /// (they were counted from a block's edges file).
    only_split: bool,
    pub counter: EdgeCounter,
    pub split_spans: Vec<OwnedSpan>,
    /// Hashes of the traces counted here, to prove each was whole.
    pub counted: Vec<u64>,
    /// The last run of the previous batch, which may go on.
    carry: Option<RecordBatch>,
    /// Peers by the dictionary keys of (attributes, resource attributes),
    /// valid for the dictionaries in `peers_source`.
    peers: HashMap<(u32, u32), Peer>,
    peers_source: Option<(ArrayRef, ArrayRef)>,
}

impl PartitionEdges {
    pub fn new(window: Window, split: Arc<HashSet<u64>>) -> Self {
        PartitionEdges {
            window,
            split,
            only_split: false,
            counter: EdgeCounter::default(),
            split_spans: Vec::new(),
            counted: Vec::new(),
            carry: None,
            peers: HashMap::new(),
            peers_source: None,
        }
    }

    /// Takes the spans of the `split` traces only, to be counted by
    /// [`finish`] with their other pieces.
    pub fn gathering(window: Window, split: Arc<HashSet<u64>>) -> Self {
        let mut edges = PartitionEdges::new(window, split);
        edges.only_split = true;
        edges
    }

    /// A partition's result made elsewhere: `counter` holds the traces
    /// whose hashes are `counted` (a block's edges file).
    pub fn counted(counter: EdgeCounter, counted: Vec<u64>) -> Self {
        let mut edges = PartitionEdges::new(Window::EVERYTHING, Arc::new(HashSet::new()));
        edges.counter = counter;
        edges.counted = counted;
        edges
    }

    /// Records each trace's edges instead of counting them (the spans of
    /// one block, all of them whole: see `block_edges`).
    pub fn recording() -> Self {
        let mut edges = PartitionEdges::new(Window::EVERYTHING, Arc::new(HashSet::new()));
        edges.counter.recorded = Some(RecordedEdges::default());
        edges
    }

    /// Counts the batch's runs; the last one waits for the next batch.
    pub fn push_batch(&mut self, batch: RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let columns = SpanColumns::of(&batch)?;
        let trace_id = columns.trace_id;
        let run_end = |from: usize| -> usize {
            let t = trace_id.value(from);
            (from + 1..n).find(|&r| trace_id.value(r) != t).unwrap_or(n)
        };
        let mut from = 0;
        if let Some(carry) = self.carry.take() {
            let carried = SpanColumns::of(&carry)?;
            if carried.trace_id.value(0) == trace_id.value(0) {
                let end = run_end(0);
                let joined = arrow::compute::concat_batches(
                    &batch.schema(),
                    [&carry, &batch.slice(0, end)],
                )?;
                if end == n {
                    self.carry = Some(joined);
                    return Ok(());
                }
                self.run(&SpanColumns::of(&joined)?, 0, joined.num_rows())?;
                from = end;
            } else {
                self.run(&carried, 0, carry.num_rows())?;
            }
        }
        while from < n {
            let end = run_end(from);
            if end == n {
                self.carry = Some(batch.slice(from, n - from));
                break;
            }
            self.run(&columns, from, end)?;
            from = end;
        }
        Ok(())
    }

    /// Counts the last run.
    pub fn finish(&mut self) -> Result<()> {
        if let Some(carry) = self.carry.take() {
            self.run(&SpanColumns::of(&carry)?, 0, carry.num_rows())?;
        }
        Ok(())
    }

    /// One run of a trace: rows `[from, to)`.
    fn run(&mut self, c: &SpanColumns, from: usize, to: usize) -> Result<()> {
        let trace_id = c.trace_id.value(from);
        if let Some(recorded) = self.counter.recorded.as_mut() {
            recorded.begin_trace(trace_id);
        }
        let hash = xxh3_64(trace_id.as_bytes());
        let split = self.split.contains(&hash);
        if self.only_split && !split {
            return Ok(());
        }
        if !split && self.counter.recorded.is_none() {
            self.counted.push(hash);
        }
        // Peers are cached by dictionary keys while the dictionaries stay
        // the same (batches of one row group share them).
        let cacheable = match (c.attributes.dictionary(), c.resources.dictionary()) {
            (Some(a), Some(r)) => {
                let same = self
                    .peers_source
                    .as_ref()
                    .is_some_and(|(pa, pr)| Arc::ptr_eq(a, pa) && Arc::ptr_eq(r, pr));
                if !same {
                    self.peers.clear();
                    self.peers_source = Some((a.clone(), r.clone()));
                }
                true
            }
            _ => false,
        };
        let mut views: Vec<TraceSpan> = Vec::with_capacity(to - from);
        for row in from..to {
            if !self.window.contains(c.start_ns[row]) {
                continue;
            }
            let role = Role::of(c.kind.value(row));
            if role == Role::Other {
                continue;
            }
            let mut peer_of = Peer::default();
            if role.is_client() {
                // The map columns are never null; a null would read as empty.
                let (a_id, a) = c.attributes.set(row).unwrap_or((u32::MAX, &[]));
                let (r_id, r) = c.resources.set(row).unwrap_or((u32::MAX, &[]));
                peer_of = match self.peers.get(&(a_id, r_id)).filter(|_| cacheable) {
                    Some(p) => *p,
                    None => {
                        let p = peer(
                            &mut self.counter.names,
                            &peer_attributes(a)?,
                            &peer_attributes(r)?,
                        );
                        if cacheable {
                            self.peers.insert((a_id, r_id), p);
                        }
                        p
                    }
                };
            }
            views.push(TraceSpan {
                span_id: c.span_id.value(row),
                parent: (!c.parent.is_null(row)).then(|| c.parent.value(row)),
                role,
                service: self.counter.names.id(c.service.value(row)),
                duration_ns: c.duration_ns.value(row),
                failed: c.status.value(row) == "error",
                peer: peer_of,
            });
        }
        if split {
            let names = &self.counter.names;
            let trace_id: Box<str> = c.trace_id.value(from).into();
            self.split_spans.extend(views.iter().map(|s| OwnedSpan {
                trace_id: trace_id.clone(),
                span_id: s.span_id.into(),
                parent: s.parent.map(Into::into),
                role: s.role,
                service: names.name(s.service).into(),
                duration_ns: s.duration_ns,
                failed: s.failed,
                db_server: s.peer.db_server.map(|n| names.name(n).into()),
                is_db: s.peer.is_db,
                peer_node: s.peer.peer_node.map(|n| names.name(n).into()),
            }));
        } else if !views.is_empty() {
            self.counter.add_trace(&views);
        }
        Ok(())
    }
}

/// Counts the split traces, merges every partition's edges and builds the
/// rows of `service_graph()`, ordered by client, server and connection type.
pub fn finish(partitions: Vec<PartitionEdges>) -> Result<RecordBatch> {
    let counted = partitions
        .iter()
        .flat_map(|p| p.counted.iter().copied())
        .collect();
    if !repeated(counted).is_empty() {
        return exec_err!(
            "service_graph(): a trace was read in two pieces that the first pass saw as one"
        );
    }
    let mut counters = Vec::with_capacity(partitions.len() + 1);
    let mut split_spans = Vec::new();
    for p in partitions {
        counters.push(p.counter);
        split_spans.extend(p.split_spans);
    }
    counters.push(count_split_traces(split_spans));

    let mut merged: BTreeMap<(String, String, Connection), EdgeStats> = BTreeMap::new();
    for counter in counters {
        for ((client, server, connection), stats) in counter.edges {
            let key = (
                counter.names.name(client).to_string(),
                counter.names.name(server).to_string(),
                connection,
            );
            let into = merged.entry(key).or_default();
            into.requests += stats.requests;
            into.failed += stats.failed;
            into.server_ns.extend(stats.server_ns);
            into.client_ns.extend(stats.client_ns);
        }
    }
    // In key order: client, server, then connection type (whose variants
    // are ordered as their texts).
    let rows = merged;

    let mut client = StringBuilder::new();
    let mut server = StringBuilder::new();
    let mut connection = StringBuilder::new();
    let mut requests = Vec::with_capacity(rows.len());
    let mut failed = Vec::with_capacity(rows.len());
    let mut quantiles: [Float64Builder; 6] = std::array::from_fn(|_| Float64Builder::new());
    for ((c, s, conn), mut stats) in rows {
        client.append_value(c);
        server.append_value(s);
        connection.append_value(conn.as_str());
        requests.push(stats.requests as i64);
        failed.push(stats.failed as i64);
        for (values, builders) in [(&mut stats.server_ns, 0..3), (&mut stats.client_ns, 3..6)] {
            let q = percentiles(values, [0.5, 0.95, 0.99]);
            for (b, v) in builders.zip(q) {
                quantiles[b].append_option(v);
            }
        }
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(client.finish()),
        Arc::new(server.finish()),
        Arc::new(connection.finish()),
        Arc::new(Int64Array::from(requests)),
        Arc::new(Int64Array::from(failed)),
    ];
    columns.extend(
        quantiles
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef),
    );
    Ok(RecordBatch::try_new(output_schema(), columns)?)
}

/// Groups the spans of split traces by trace and counts each trace.
fn count_split_traces(mut spans: Vec<OwnedSpan>) -> EdgeCounter {
    spans.sort_by(|a, b| a.trace_id.cmp(&b.trace_id));
    let mut counter = EdgeCounter::default();
    let mut views = Vec::new();
    for trace in spans.chunk_by(|a, b| a.trace_id == b.trace_id) {
        views.clear();
        for s in trace {
            let names = &mut counter.names;
            views.push(TraceSpan {
                span_id: &s.span_id,
                parent: s.parent.as_deref(),
                role: s.role,
                service: names.id(&s.service),
                duration_ns: s.duration_ns,
                failed: s.failed,
                peer: Peer {
                    db_server: s.db_server.as_deref().map(|n| names.id(n)),
                    is_db: s.is_db,
                    peer_node: s.peer_node.as_deref().map(|n| names.id(n)),
                },
            });
        }
        counter.add_trace(&views);
    }
    counter
}

/// `percentile_cont` of durations in ns, as seconds: linear interpolation
/// between the closest ranks (as Postgres computes it); `None` without
/// values. `qs` ascending; each rank is selected within what is left above
/// the previous one, not by sorting everything.
fn percentiles<const N: usize>(ns: &mut [i64], qs: [f64; N]) -> [Option<f64>; N] {
    if ns.is_empty() {
        return [None; N];
    }
    let last = (ns.len() - 1) as f64;
    let mut from = 0;
    qs.map(|q| {
        let rank = q * last;
        let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
        let (_, at, above) = ns[from..].select_nth_unstable(lo - from);
        let a = *at as f64 / 1e9;
        let value = if hi == lo {
            a
        } else {
            let b = *above.iter().min().expect("a rank above lo exists") as f64 / 1e9;
            a + (b - a) * (rank - lo as f64)
        };
        from = lo;
        Some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::percentiles;

    #[test]
    fn connection_types_sort_as_their_texts() {
        use super::Connection::*;
        let all = [VirtualNode, Direct, MessagingSystem, Database];
        let mut by_variant = all.to_vec();
        by_variant.sort();
        let mut by_text = all.to_vec();
        by_text.sort_by_key(|c| c.as_str());
        assert_eq!(by_variant, by_text);
    }

    #[test]
    fn percentiles_interpolate_like_postgres() {
        // percentile_cont(0.5 / 0.95 / 0.99) over 1..=10 s in Postgres:
        // 5.5, 9.55, 9.91.
        let mut ns: Vec<i64> = (1..=10).rev().map(|s| s * 1_000_000_000).collect();
        let got = percentiles(&mut ns, [0.5, 0.95, 0.99]);
        let want = [5.5, 9.55, 9.91];
        for (g, w) in got.iter().zip(want) {
            assert!((g.unwrap() - w).abs() < 1e-12, "{got:?}");
        }
        assert_eq!(
            percentiles(&mut [7_000_000_000], [0.5, 0.99]),
            [Some(7.0), Some(7.0)]
        );
        assert_eq!(percentiles(&mut [], [0.5]), [None]);
        let mut two = [3_000_000_000, 1_000_000_000];
        assert_eq!(
            percentiles(&mut two, [0.0, 0.5, 1.0]),
            [Some(1.0), Some(2.0), Some(3.0)]
        );
    }
}
