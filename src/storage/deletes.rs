//! Log deletion requests (Loki's `/loki/api/v1/delete`): a tenant's
//! requests — a LogQL stream selector with optional line and label filters,
//! and a time range — kept as one JSON object per tenant in object storage
//! (`tenants/<tenant>/logs/delete_requests.json`), so they survive restarts
//! and every process over the same store sees them.
//!
//! From the moment a request is stored, [`DeleteFilter`] drops the lines it
//! matches from every scan of the tenant's `logs` table (the catalog applies
//! it once, for SQL, Flight, LogQL and the Loki API alike). Once a request is
//! older than `delete_request_cancel_period` the compactor rewrites the
//! affected blocks without those lines and marks it `processed`; until then
//! it can be cancelled.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{Int64Type, TimestampNanosecondType};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::labels::map_row;
use crate::query::logql::ast::{Expr, Stage};
use crate::query::logql::pipeline::{Entry, LabelMatcher, Pipeline};

/// Where a request is in its life (Loki's `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteStatus {
    /// Accepted: filtered at query time, not yet removed from blocks.
    Received,
    /// The compactor has rewritten every block it touched.
    Processed,
}

impl DeleteStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeleteStatus::Received => "received",
            DeleteStatus::Processed => "processed",
        }
    }
}

/// One deletion request as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteRequest {
    pub request_id: String,
    /// First and last timestamp (ns, both inclusive) of the lines deleted.
    pub start_ns: i64,
    pub end_ns: i64,
    pub query: String,
    pub status: DeleteStatus,
    pub created_at_ms: i64,
}

/// A request compiled for matching log entries.
#[derive(Debug)]
struct CompiledDelete {
    start_ns: i64,
    end_ns: i64,
    selector: Vec<LabelMatcher>,
    /// Line and label filters (`None` when the query has none).
    filters: Option<Pipeline>,
}

/// Checks a deletion query: a stream selector followed only by line filters
/// and label filters (no parsers, formatters or metric operations, as Loki
/// requires). The error says what is wrong.
pub fn validate_query(query: &str) -> std::result::Result<(), String> {
    compile(query, 0, 0).map(|_| ())
}

fn compile(query: &str, start_ns: i64, end_ns: i64) -> std::result::Result<CompiledDelete, String> {
    let parsed = crate::query::logql::parse(query).map_err(|e| format!("invalid query: {e}"))?;
    let log = match parsed {
        Expr::Log(log) => log,
        Expr::Metric(_) => {
            return Err(format!(
                "invalid query {query:?}: a deletion query is a log stream selector with optional line and label filters, not a metric query"
            ));
        }
    };
    for stage in &log.pipeline {
        let what = match stage {
            Stage::LineFilter(_) | Stage::LabelFilter(_) => continue,
            Stage::Parser(_) => "a parser",
            Stage::LineFormat { .. } => "line_format",
            Stage::LabelFormat(_) => "label_format",
            Stage::Drop(_) => "drop",
            Stage::Keep(_) => "keep",
            Stage::Decolorize => "decolorize",
        };
        return Err(format!(
            "invalid query {query:?}: a deletion query may only have line filters and label filters after its stream selector, not {what}"
        ));
    }
    let selector = log
        .selector
        .iter()
        .map(|m| LabelMatcher::compile(m, query))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid query: {e}"))?;
    let filters = if log.pipeline.is_empty() {
        None
    } else {
        Some(Pipeline::compile(&log, query).map_err(|e| format!("invalid query: {e}"))?)
    };
    Ok(CompiledDelete {
        start_ns,
        end_ns,
        selector,
        filters,
    })
}

/// The requests of one tenant that delete lines, compiled: which rows of a
/// `logs` batch they remove.
#[derive(Debug)]
pub struct DeleteFilter {
    requests: Vec<CompiledDelete>,
    min_ns: i64,
    max_ns: i64,
}

impl DeleteFilter {
    /// Compiles `requests` (`None` when there are none). A request whose
    /// query no longer compiles is skipped with a warning.
    pub fn new<'a>(requests: impl IntoIterator<Item = &'a DeleteRequest>) -> Option<DeleteFilter> {
        let compiled: Vec<CompiledDelete> = requests
            .into_iter()
            .filter_map(|r| match compile(&r.query, r.start_ns, r.end_ns) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(request_id = r.request_id, "delete request skipped: {e}");
                    None
                }
            })
            .collect();
        if compiled.is_empty() {
            return None;
        }
        Some(DeleteFilter {
            min_ns: compiled.iter().map(|c| c.start_ns).min().unwrap_or(0),
            max_ns: compiled.iter().map(|c| c.end_ns).max().unwrap_or(0),
            requests: compiled,
        })
    }

    /// The first and last timestamp any request deletes.
    pub fn time_range(&self) -> (i64, i64) {
        (self.min_ns, self.max_ns)
    }

    /// Whether lines in `[min_ns, max_ns]` may be deleted.
    pub fn overlaps(&self, min_ns: i64, max_ns: i64) -> bool {
        min_ns <= self.max_ns && max_ns >= self.min_ns
    }

    /// True for each row of `batch` (a `logs` batch with at least the
    /// columns `timestamp`, `labels`, `line`, `structured_metadata` and
    /// `stream_id`) that a request deletes; `None` when no row is deleted.
    pub fn deleted(&self, batch: &RecordBatch) -> Result<Option<BooleanArray>> {
        let column = |name: &str| {
            batch.column_by_name(name).ok_or_else(|| {
                Error::Storage(format!("delete filter: the batch has no {name} column"))
            })
        };
        let times = column("timestamp")?.as_primitive::<TimestampNanosecondType>();
        let labels = column("labels")?.as_map();
        let lines = column("line")?.as_string::<i32>();
        let metadata = column("structured_metadata")?.as_map();
        let streams = column("stream_id")?.as_primitive::<Int64Type>();
        // Which requests' selectors each stream matches, per batch.
        let mut by_stream: HashMap<i64, Vec<usize>> = HashMap::new();
        let mut any = false;
        let deleted: BooleanArray = (0..batch.num_rows())
            .map(|row| {
                let ts = times.value(row);
                if ts < self.min_ns || ts > self.max_ns {
                    return Some(false);
                }
                let matching = by_stream.entry(streams.value(row)).or_insert_with(|| {
                    let pairs = map_row(labels, row);
                    self.requests
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| {
                            r.selector.iter().all(|m| {
                                m.matches(
                                    pairs
                                        .iter()
                                        .find(|(n, _)| *n == m.name)
                                        .map_or("", |(_, v)| v),
                                )
                            })
                        })
                        .map(|(i, _)| i)
                        .collect()
                });
                let hit = matching.iter().any(|&i| {
                    let r = &self.requests[i];
                    if ts < r.start_ns || ts > r.end_ns {
                        return false;
                    }
                    let Some(filters) = &r.filters else {
                        return true;
                    };
                    let entry_labels = map_row(labels, row)
                        .into_iter()
                        .chain(map_row(metadata, row))
                        .map(|(n, v)| (n.to_string(), v.to_string()))
                        .collect();
                    let mut entry = Entry::new(ts, lines.value(row).into(), entry_labels);
                    filters.process(&mut entry)
                });
                any |= hit;
                Some(hit)
            })
            .collect();
        Ok(any.then_some(deleted))
    }
}

/// Why a cancellation was refused.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("could not find delete request with given id")]
    NotFound,
    #[error(
        "deletion of request which is in process or already processed is not allowed (the cancel period of {0} has passed)"
    )]
    TooLate(String),
    #[error("{0}")]
    Storage(#[from] Error),
}

/// One tenant's requests and their compiled filter.
#[derive(Debug, Default)]
pub struct TenantDeletes {
    pub requests: Vec<DeleteRequest>,
    pub filter: Option<Arc<DeleteFilter>>,
}

impl TenantDeletes {
    fn new(requests: Vec<DeleteRequest>) -> Self {
        TenantDeletes {
            filter: DeleteFilter::new(&requests).map(Arc::new),
            requests,
        }
    }
}

/// Every tenant's deletion requests: cached in memory, stored in object storage.
pub struct DeleteRequests {
    store: Arc<dyn ObjectStore>,
    tenants: RwLock<HashMap<String, Arc<TenantDeletes>>>,
    /// Serialises read-modify-write of the stored objects in this process.
    write: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for DeleteRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeleteRequests").finish_non_exhaustive()
    }
}

fn path(tenant: &str) -> StorePath {
    StorePath::from(format!("tenants/{tenant}/logs/delete_requests.json"))
}

impl DeleteRequests {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        DeleteRequests {
            store,
            tenants: RwLock::new(HashMap::new()),
            write: tokio::sync::Mutex::new(()),
        }
    }

    /// A tenant's requests, read from the store the first time.
    pub async fn get(&self, tenant: &str) -> Result<Arc<TenantDeletes>> {
        if let Some(t) = self.tenants.read().get(tenant) {
            return Ok(t.clone());
        }
        self.reload(tenant).await
    }

    /// Reads a tenant's requests from the store (another process may have
    /// changed them) and caches them.
    pub async fn reload(&self, tenant: &str) -> Result<Arc<TenantDeletes>> {
        let requests = self.load(tenant).await?;
        let loaded = Arc::new(TenantDeletes::new(requests));
        self.tenants
            .write()
            .insert(tenant.to_string(), loaded.clone());
        Ok(loaded)
    }

    async fn load(&self, tenant: &str) -> Result<Vec<DeleteRequest>> {
        let path = path(tenant);
        let bytes = match self.store.get(&path).await {
            Ok(got) => got.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Storage(format!("delete requests {path} are unreadable: {e}")))
    }

    /// Reads, changes and writes back a tenant's requests; `change` returns
    /// what to answer, or an error that leaves them as they were.
    async fn modify<T, E: From<Error>>(
        &self,
        tenant: &str,
        change: impl FnOnce(&mut Vec<DeleteRequest>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let _one_writer = self.write.lock().await;
        let mut requests = self.load(tenant).await?;
        let answer = change(&mut requests)?;
        let body = serde_json::to_vec_pretty(&requests)
            .map_err(|e| Error::Storage(format!("cannot encode delete requests: {e}")))?;
        self.store
            .put(&path(tenant), PutPayload::from(body))
            .await
            .map_err(Error::from)?;
        self.tenants
            .write()
            .insert(tenant.to_string(), Arc::new(TenantDeletes::new(requests)));
        Ok(answer)
    }

    /// Stores a new request (the query must pass [`validate_query`]).
    pub async fn add(
        &self,
        tenant: &str,
        query: &str,
        start_ns: i64,
        end_ns: i64,
        now_ms: i64,
    ) -> Result<DeleteRequest> {
        let request = DeleteRequest {
            request_id: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
            start_ns,
            end_ns,
            query: query.to_string(),
            status: DeleteStatus::Received,
            created_at_ms: now_ms,
        };
        let stored = request.clone();
        self.modify(tenant, move |all| {
            all.push(stored);
            Ok::<_, Error>(())
        })
        .await?;
        Ok(request)
    }

    /// Removes a request still inside its cancel period.
    pub async fn cancel(
        &self,
        tenant: &str,
        request_id: &str,
        cancel_period: std::time::Duration,
        now_ms: i64,
    ) -> std::result::Result<(), CancelError> {
        self.modify(tenant, |all| {
            let at = all
                .iter()
                .position(|r| r.request_id == request_id)
                .ok_or(CancelError::NotFound)?;
            let r = &all[at];
            let period_ms = cancel_period.as_millis() as i64;
            if r.status != DeleteStatus::Received
                || now_ms.saturating_sub(r.created_at_ms) >= period_ms
            {
                return Err(CancelError::TooLate(humantime_ms(
                    cancel_period.as_millis() as u64,
                )));
            }
            all.remove(at);
            Ok(())
        })
        .await
    }

    /// Marks requests as processed (those still stored).
    pub async fn mark_processed(&self, tenant: &str, request_ids: &[String]) -> Result<()> {
        self.modify(tenant, |all| {
            for r in all.iter_mut() {
                if request_ids.contains(&r.request_id) {
                    r.status = DeleteStatus::Processed;
                }
            }
            Ok::<_, Error>(())
        })
        .await
    }
}

fn humantime_ms(ms: u64) -> String {
    if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::builders::{LogLine, LogsBuilder};

    fn request(query: &str, start_ns: i64, end_ns: i64) -> DeleteRequest {
        DeleteRequest {
            request_id: "r".into(),
            start_ns,
            end_ns,
            query: query.into(),
            status: DeleteStatus::Received,
            created_at_ms: 0,
        }
    }

    #[test]
    fn queries_beyond_selectors_and_filters_are_refused() {
        assert!(validate_query(r#"{app="a"}"#).is_ok());
        assert!(validate_query(r#"{app="a"} |= "x" != "y" |~ "z.*""#).is_ok());
        assert!(validate_query(r#"{app="a"} | trace_id="abc""#).is_ok());
        let parser = validate_query(r#"{app="a"} | json"#).unwrap_err();
        assert!(parser.contains("not a parser"), "{parser}");
        let metric = validate_query(r#"count_over_time({app="a"}[1m])"#).unwrap_err();
        assert!(metric.contains("metric query"), "{metric}");
        assert!(validate_query("app").unwrap_err().contains("invalid query"));
    }

    #[test]
    fn deletes_lines_matching_selector_filters_and_time() {
        let mut b = LogsBuilder::new();
        for (ts, app, line) in [
            (10, "a", "secret 1"),
            (20, "a", "public"),
            (30, "b", "secret 2"),
            (40, "a", "secret 3"),
        ] {
            let labels = [("app", app)];
            b.push(
                &labels,
                LogsBuilder::stream_id(&labels),
                &LogLine {
                    timestamp_ns: ts,
                    line,
                    ..Default::default()
                },
            );
        }
        let batch = b.finish();
        let filter = DeleteFilter::new(&[request(r#"{app="a"} |= "secret""#, 0, 30)]).unwrap();
        let deleted = filter.deleted(&batch).unwrap().unwrap();
        let lines = batch.column_by_name("line").unwrap().as_string::<i32>();
        let gone: Vec<&str> = (0..batch.num_rows())
            .filter(|&i| deleted.value(i))
            .map(|i| lines.value(i))
            .collect();
        assert_eq!(gone, vec!["secret 1"]);
        assert!(filter.overlaps(30, 100) && !filter.overlaps(31, 100));
        let none = DeleteFilter::new(&[request(r#"{app="c"}"#, 0, 100)]).unwrap();
        assert!(none.deleted(&batch).unwrap().is_none());
    }
}
