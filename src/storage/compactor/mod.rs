//! The compactor: merges the many small blocks the ingester flushes into
//! fewer, larger ones per tenant and signal, drops duplicates and rows past
//! retention, and deletes replaced blocks once no query can still read them.
//!
//! One run, per tenant and signal (each with the newest manifest):
//!
//! 1. **expire** — blocks wholly past retention leave the manifest;
//! 2. **plan** — blocks are grouped by time window ([`plan`]), and blocks
//!    with rows past retention become groups of one;
//! 3. **merge** — each group is merged into one block ([`merge`]), written
//!    but not yet listed;
//! 4. **swap** — one manifest version removes the group's blocks and adds the
//!    output ([`Storage::update_manifest`]: serialised with flushes in this
//!    process, retried from the newest manifest when another process
//!    published first);
//! 5. **downsample** (samples, `downsample = true`) — raw blocks whose
//!    newest sample is older than `downsample_5m_after` get a block of
//!    5-minute aggregates over the same time range, 5-minute blocks older
//!    than `downsample_1h_after` one of 1-hour aggregates ([`downsample`]);
//!    each is published by its own manifest version, the sources stay;
//! 6. **delete** — blocks removed more than `deletion_delay` ago lose their
//!    files and leave the manifest's pending deletions; block files no
//!    manifest lists (a crash between writing and publishing) are deleted
//!    once older than the delay.
//!
//! The merge and retention steps work on raw blocks only; a downsampled
//! block leaves the manifest whole once its newest row is past retention.
//!
//! A failed group (an unreadable block) is reported with the block's name
//! and skipped; its blocks stay as they were. The compactor reads and writes
//! only object storage and manifests, so it can run beside the ingester in
//! one process (the default) or as its own process over the same store.

pub mod downsample;
pub mod failpoint;
pub mod merge;
pub mod plan;
pub mod progress;
pub mod retention;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use datafusion::execution::memory_pool::MemoryPool;
use serde::{Deserialize, Deserializer, Serialize};

use crate::config::{de_duration, parse_duration};
use crate::error::{Error, Result};
use crate::ingest::limits::{DeletionMode, LimitsRegistry};
use crate::metrics::Metrics;
use crate::model::Signal;
use crate::storage::Storage;
use crate::storage::deletes::{DeleteFilter, DeleteRequest, DeleteStatus};
use crate::storage::manifest::{BlockMeta, Layout, Manifest, PendingDeletion};
use merge::{MergeSettings, MergeStats};
use progress::{CompactorStatus, Progress, RunningJob};
use retention::RetentionRules;

/// The `[compactor]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CompactorConfig {
    /// Whether `serve` runs the compactor loop.
    pub enabled: bool,
    /// How often the compactor runs (Mimir `compaction_interval`).
    #[serde(deserialize_with = "de_duration")]
    pub compaction_interval: Duration,
    /// Time windows blocks are merged into, smallest first, each a multiple
    /// of the one before (Mimir `block_ranges`).
    #[serde(deserialize_with = "de_durations")]
    pub block_ranges: Vec<Duration>,
    /// How long replaced blocks stay readable for queries in flight before
    /// their files are deleted (Mimir `deletion_delay`).
    #[serde(deserialize_with = "de_duration")]
    pub deletion_delay: Duration,
    /// Whether rows past each tenant's `retention_period` and
    /// `retention_stream` rules are deleted (Loki `retention_enabled`).
    pub retention_enabled: bool,
    /// Most blocks merged in one step (bounds open inputs and memory).
    pub max_blocks_per_compaction: usize,
    /// How long a log deletion request can be cancelled; after it the
    /// compactor removes its lines from blocks (Loki
    /// `delete_request_cancel_period`).
    #[serde(deserialize_with = "de_duration")]
    pub delete_request_cancel_period: Duration,
    /// Whether old samples blocks get 5m and 1h aggregates (Thanos downsampling).
    pub downsample: bool,
    /// Raw blocks whose newest sample is older than this get 5m aggregates
    /// (Thanos: 40h).
    #[serde(deserialize_with = "de_duration")]
    pub downsample_5m_after: Duration,
    /// 5m blocks whose newest sample is older than this get 1h aggregates
    /// (Thanos: 10d).
    #[serde(deserialize_with = "de_duration")]
    pub downsample_1h_after: Duration,
}

impl Default for CompactorConfig {
    fn default() -> Self {
        CompactorConfig {
            enabled: true,
            compaction_interval: Duration::from_secs(5 * 60),
            block_ranges: vec![
                Duration::from_secs(2 * 3600),
                Duration::from_secs(12 * 3600),
                Duration::from_secs(24 * 3600),
            ],
            deletion_delay: Duration::from_secs(10 * 60),
            retention_enabled: true,
            max_blocks_per_compaction: 32,
            delete_request_cancel_period: Duration::from_secs(24 * 3600),
            downsample: true,
            downsample_5m_after: Duration::from_secs(40 * 3600),
            downsample_1h_after: Duration::from_secs(10 * 24 * 3600),
        }
    }
}

impl CompactorConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.block_ranges.is_empty() {
            return Err("[compactor] block_ranges must name at least one range".into());
        }
        for (i, r) in self.block_ranges.iter().enumerate() {
            if r.as_millis() == 0 {
                return Err(format!(
                    "[compactor] block_ranges[{i}] must be at least 1ms"
                ));
            }
            if i > 0 {
                let prev = self.block_ranges[i - 1];
                if *r <= prev || r.as_millis() % prev.as_millis() != 0 {
                    return Err(format!(
                        "[compactor] block_ranges[{i}] = {r:?} must be a larger multiple of block_ranges[{}] = {prev:?}",
                        i - 1
                    ));
                }
            }
        }
        if self.compaction_interval.is_zero() {
            return Err("[compactor] compaction_interval must be above 0".into());
        }
        if self.max_blocks_per_compaction < 2 {
            return Err(format!(
                "[compactor] max_blocks_per_compaction must be at least 2, not {}",
                self.max_blocks_per_compaction
            ));
        }
        if self.downsample && self.downsample_1h_after < self.downsample_5m_after {
            return Err(format!(
                "[compactor] downsample_1h_after ({:?}) must not be shorter than downsample_5m_after ({:?})",
                self.downsample_1h_after, self.downsample_5m_after
            ));
        }
        Ok(())
    }

    /// The block ranges in a signal's time unit.
    fn ranges_for(&self, signal: Signal) -> Vec<i64> {
        self.block_ranges
            .iter()
            .map(|r| match signal {
                Signal::Samples => r.as_millis() as i64,
                Signal::Logs | Signal::Spans => r.as_nanos() as i64,
            })
            .collect()
    }
}

fn de_durations<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrString {
        Num(u64),
        Str(String),
    }
    Vec::<NumOrString>::deserialize(d)?
        .into_iter()
        .map(|v| match v {
            NumOrString::Num(n) => Ok(Duration::from_secs(n)),
            NumOrString::Str(s) => parse_duration(&s).map_err(serde::de::Error::custom),
        })
        .collect()
}

/// One merge (or retention rewrite) a run did.
#[derive(Debug, Clone, Serialize)]
pub struct CompactionJob {
    pub tenant: String,
    pub signal: &'static str,
    /// `merge` (a group of blocks), `retention` (one block rewritten
    /// without expired rows) or `delete` (one block rewritten without the
    /// lines of log deletion requests).
    pub kind: &'static str,
    pub inputs: Vec<String>,
    /// The new block (none when no row survived).
    pub output: Option<String>,
    #[serde(flatten)]
    pub stats: MergeStats,
}

/// One downsampled block a run wrote.
#[derive(Debug, Clone, Serialize)]
pub struct DownsampleJob {
    pub tenant: String,
    pub inputs: Vec<String>,
    pub output: String,
    #[serde(flatten)]
    pub stats: downsample::DownsampleStats,
}

/// What one run did, as `POST /compactor/run` answers it.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CompactionReport {
    pub jobs: Vec<CompactionJob>,
    pub blocks_in: u64,
    pub blocks_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub rows_in: u64,
    pub rows_out: u64,
    pub rows_deduplicated: u64,
    pub samples_conflicting: u64,
    pub rows_expired: u64,
    /// Log lines removed by deletion requests.
    pub rows_deleted: u64,
    /// Log deletion requests marked processed.
    pub delete_requests_processed: u64,
    /// Blocks dropped whole because every row was past retention.
    pub blocks_expired: u64,
    /// Replaced blocks whose files were deleted after `deletion_delay`.
    pub blocks_deleted: u64,
    /// Unpublished block files (left by a crash) that were deleted.
    pub orphans_deleted: u64,
    /// Downsampled blocks written (each beside its sources).
    pub downsampled: Vec<DownsampleJob>,
    pub failed: Vec<String>,
    pub duration_ms: u64,
}

impl CompactionReport {
    fn add_job(&mut self, job: CompactionJob) {
        let s = &job.stats;
        self.blocks_in += job.inputs.len() as u64;
        self.blocks_out += job.output.is_some() as u64;
        self.bytes_in += s.bytes_in;
        self.bytes_out += s.bytes_out;
        self.rows_in += s.rows_in;
        self.rows_out += s.rows_out;
        self.rows_deduplicated += s.rows_deduplicated;
        self.samples_conflicting += s.samples_conflicting;
        self.rows_expired += s.rows_expired;
        self.rows_deleted += s.rows_deleted;
        self.jobs.push(job);
    }
}

pub struct Compactor {
    storage: Arc<Storage>,
    limits: Arc<LimitsRegistry>,
    metrics: Arc<Metrics>,
    pool: Arc<dyn MemoryPool>,
    scratch_dir: PathBuf,
    config: CompactorConfig,
    /// One run at a time (the loop and `POST /compactor/run`).
    running: tokio::sync::Mutex<()>,
    /// What the run under way has done, and the last run's report.
    progress: Progress,
    /// Blocks read for retention that had nothing expired, by id, with when.
    retention_checked: parking_lot::Mutex<HashMap<String, i64>>,
}

/// Log deletion requests the compactor has not processed yet.
struct PendingDeletes {
    filter: DeleteFilter,
    request_ids: Vec<String>,
}

/// How long a block read for retention with nothing expired is not read again.
const RETENTION_RECHECK_MS: i64 = 3_600_000;

impl std::fmt::Debug for Compactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compactor")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Compactor {
    /// `scratch_dir` holds merge outputs while they are written; whatever a
    /// crash left there is removed now.
    pub fn new(
        storage: Arc<Storage>,
        limits: Arc<LimitsRegistry>,
        metrics: Arc<Metrics>,
        pool: Arc<dyn MemoryPool>,
        scratch_dir: PathBuf,
        config: CompactorConfig,
    ) -> Compactor {
        let _ = std::fs::remove_dir_all(&scratch_dir);
        for (name, kind, help) in METRICS.into_iter().chain(progress::METRICS) {
            metrics.describe(name, kind, help);
        }
        Compactor {
            storage,
            limits,
            progress: Progress::new(metrics.clone()),
            metrics,
            pool,
            scratch_dir,
            config,
            running: tokio::sync::Mutex::new(()),
            retention_checked: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &CompactorConfig {
        &self.config
    }

    /// The run under way (with its progress) and the last finished one.
    pub fn status(&self) -> CompactorStatus {
        self.progress.status()
    }

    /// Runs once over every tenant and signal, after the run under way if
    /// there is one (the `compaction_interval` loop).
    pub async fn run(self: &Arc<Self>) -> CompactionReport {
        let one_run = self.running.lock().await;
        self.run_locked(one_run, "schedule").await
    }

    /// Runs once now (`POST /compactor/run`), unless a run is under way:
    /// then `Err` with that run (`None` only if it ended meanwhile).
    pub async fn try_run(
        self: &Arc<Self>,
    ) -> std::result::Result<CompactionReport, Option<RunningJob>> {
        match self.running.try_lock() {
            Ok(one_run) => Ok(self.run_locked(one_run, "api").await),
            Err(_) => Err(self.progress.running()),
        }
    }

    /// The work runs on a blocking thread, so merging never stalls the
    /// threads serving requests.
    async fn run_locked(
        self: &Arc<Self>,
        _one_run: tokio::sync::MutexGuard<'_, ()>,
        trigger: &'static str,
    ) -> CompactionReport {
        self.progress.start(trigger);
        let this = self.clone();
        let handle = tokio::runtime::Handle::current();
        let started = std::time::Instant::now();
        let mut report = tokio::task::spawn_blocking(move || handle.block_on(this.run_all()))
            .await
            .unwrap_or_else(|e| CompactionReport {
                failed: vec![format!("compactor task failed: {e}")],
                ..Default::default()
            });
        report.duration_ms = started.elapsed().as_millis() as u64;
        self.record(&report);
        self.progress.finish(&report);
        report
    }

    fn record(&self, r: &CompactionReport) {
        let m = &self.metrics;
        m.add("o11ydb_compactor_runs_total", &[], 1.0);
        if r.failed.is_empty() {
            m.set(
                "o11ydb_compactor_last_successful_run_timestamp_seconds",
                &[],
                chrono::Utc::now().timestamp_millis() as f64 / 1000.0,
            );
        } else {
            m.add("o11ydb_compactor_runs_failed_total", &[], 1.0);
        }
        m.add(
            "o11ydb_compactor_blocks_compacted_total",
            &[],
            r.blocks_in as f64,
        );
        m.add(
            "o11ydb_compactor_blocks_written_total",
            &[],
            r.blocks_out as f64,
        );
        m.add("o11ydb_compactor_bytes_read_total", &[], r.bytes_in as f64);
        m.add(
            "o11ydb_compactor_bytes_written_total",
            &[],
            r.bytes_out as f64,
        );
        m.add(
            "o11ydb_compactor_rows_deduplicated_total",
            &[],
            r.rows_deduplicated as f64,
        );
        m.add(
            "o11ydb_compactor_samples_conflicting_total",
            &[],
            r.samples_conflicting as f64,
        );
        m.add(
            "o11ydb_compactor_rows_expired_total",
            &[],
            r.rows_expired as f64,
        );
        m.add(
            "o11ydb_compactor_rows_deleted_total",
            &[],
            r.rows_deleted as f64,
        );
        m.add(
            "o11ydb_compactor_blocks_expired_total",
            &[],
            r.blocks_expired as f64,
        );
        m.add(
            "o11ydb_compactor_blocks_deleted_total",
            &[],
            (r.blocks_deleted + r.orphans_deleted) as f64,
        );
        for job in &r.downsampled {
            let labels = [("resolution", job.stats.resolution.as_str())];
            m.add("o11ydb_compactor_downsampled_blocks_total", &labels, 1.0);
            m.add(
                "o11ydb_compactor_downsampled_bytes_written_total",
                &labels,
                job.stats.bytes_out as f64,
            );
        }
    }

    async fn run_all(self: Arc<Self>) -> CompactionReport {
        let mut report = CompactionReport::default();
        let tenants = match self.storage.stored_tenants().await {
            Ok(t) => t,
            Err(e) => {
                report.failed.push(format!("cannot list tenants: {e}"));
                return report;
            }
        };
        self.progress
            .set_signals_total((tenants.len() * Signal::ALL.len()) as u64);
        for tenant in tenants {
            for signal in Signal::ALL {
                self.progress.begin_signal(&tenant, signal.table_name());
                if let Err(e) = self.compact_signal(&tenant, signal, &mut report).await {
                    tracing::error!(tenant, %signal, "compaction failed: {e}");
                    report.failed.push(format!("{tenant}/{signal}: {e}"));
                }
                self.progress.signal_done();
            }
        }
        if !report.jobs.is_empty()
            || !report.downsampled.is_empty()
            || report.blocks_deleted > 0
            || report.blocks_expired > 0
        {
            tracing::info!(
                jobs = report.jobs.len(),
                blocks_in = report.blocks_in,
                blocks_out = report.blocks_out,
                rows_deduplicated = report.rows_deduplicated,
                rows_expired = report.rows_expired,
                blocks_deleted = report.blocks_deleted,
                downsampled = report.downsampled.len(),
                "compaction run"
            );
        }
        report
    }

    async fn compact_signal(
        &self,
        tenant: &str,
        signal: Signal,
        report: &mut CompactionReport,
    ) -> Result<()> {
        let manifest = self.storage.reload_manifest(tenant, signal).await?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let rules = if self.config.retention_enabled {
            let rules = RetentionRules::compile(&self.limits.get(tenant))
                .map_err(|e| Error::Config(format!("retention of tenant {tenant:?}: {e}")))?;
            Some(rules).filter(|r| !r.keeps_everything())
        } else {
            None
        };

        // Log deletion requests past their cancel period: their lines leave
        // every block merged from now on; blocks they touch that no merge
        // reads are rewritten below.
        let (deletions, pending_deletes) = self.due_deletions(tenant, signal, now_ms).await?;

        // 1. Whole blocks past the longest retention any row can have.
        let mut blocks = manifest.blocks.clone();
        if let Some(longest) = rules.as_ref().and_then(|r| r.longest(signal)) {
            let cut = retention::cutoff(signal, now_ms, longest);
            let expired: Vec<BlockMeta> = blocks
                .iter()
                .filter(|b| b.max_time < cut)
                .cloned()
                .collect();
            if !expired.is_empty() {
                self.swap(tenant, signal, &expired, None, now_ms).await?;
                failpoint::hit("after_expire");
                report.blocks_expired += expired.len() as u64;
                report.rows_expired += expired.iter().map(|b| b.rows).sum::<u64>();
                tracing::info!(tenant, %signal, blocks = expired.len(), "dropped blocks past retention");
                blocks.retain(|b| b.max_time >= cut);
            }
        }

        // 2. Groups, and blocks holding rows past the shortest retention
        // (raw blocks: downsampled ones only ever leave whole).
        blocks.retain(|b| b.is_raw());
        let mut jobs: Vec<(&'static str, Vec<BlockMeta>)> = plan::plan(
            &blocks,
            &self.config.ranges_for(signal),
            self.config.max_blocks_per_compaction,
        )
        .into_iter()
        .map(|g| ("merge", g.blocks))
        .collect();
        if let Some(shortest) = rules.as_ref().and_then(|r| r.shortest(signal)) {
            let cut = retention::cutoff(signal, now_ms, shortest);
            let grouped: HashSet<String> = jobs
                .iter()
                .flat_map(|(_, g)| g.iter().map(|b| b.id.clone()))
                .collect();
            let mut checked = self.retention_checked.lock();
            checked.retain(|_, at| now_ms.saturating_sub(*at) < RETENTION_RECHECK_MS);
            for b in &blocks {
                if b.min_time < cut && !grouped.contains(&b.id) && !checked.contains_key(&b.id) {
                    jobs.push(("retention", vec![b.clone()]));
                }
            }
        }
        if let Some(pending) = &pending_deletes {
            let (min, max) = pending.filter.time_range();
            let queued: HashSet<String> = jobs
                .iter()
                .flat_map(|(_, g)| g.iter().map(|b| b.id.clone()))
                .collect();
            for b in &blocks {
                if b.max_time >= min && b.min_time <= max && !queued.contains(&b.id) {
                    jobs.push(("delete", vec![b.clone()]));
                }
            }
        }
        let failed_before = report.failed.len();
        self.progress.add_groups(jobs.len() as u64);

        // 3 + 4. Merge each group and swap it in.
        for (kind, inputs) in jobs {
            match self
                .compact_group(
                    tenant,
                    signal,
                    kind,
                    &inputs,
                    (rules.as_ref(), deletions.as_deref()),
                    now_ms,
                )
                .await
            {
                Ok(Some(job)) => {
                    self.progress.group_done(Some(&job.stats), false);
                    report.add_job(job)
                }
                Ok(None) => self.progress.group_done(None, false),
                Err(e) => {
                    self.progress.group_done(None, true);
                    let ids: Vec<&str> = inputs.iter().map(|b| b.id.as_str()).collect();
                    tracing::error!(tenant, %signal, blocks = ?ids, "compaction of a group failed, its blocks stay: {e}");
                    report.failed.push(format!("{tenant}/{signal}: {e}"));
                }
            }
        }

        // Every block the pending requests touched is rewritten.
        if let Some(pending) = pending_deletes
            && report.failed.len() == failed_before
        {
            self.storage
                .delete_requests()
                .mark_processed(tenant, &pending.request_ids)
                .await?;
            report.delete_requests_processed += pending.request_ids.len() as u64;
            tracing::info!(tenant, requests = ?pending.request_ids, "log deletion requests processed");
        }

        // 5. Aggregates of old samples blocks.
        if signal == Signal::Samples && self.config.downsample {
            self.downsample(tenant, rules.as_ref(), now_ms, report)
                .await?;
        }

        // 6. Deletions that are due, and orphans.
        self.delete_due(tenant, signal, now_ms, report).await?;
        self.delete_orphans(tenant, signal, now_ms, report).await?;
        Ok(())
    }

    async fn compact_group(
        &self,
        tenant: &str,
        signal: Signal,
        kind: &'static str,
        inputs: &[BlockMeta],
        (rules, deletions): (Option<&RetentionRules>, Option<&DeleteFilter>),
        now_ms: i64,
    ) -> Result<Option<CompactionJob>> {
        let settings = MergeSettings {
            storage: &self.storage,
            pool: self.pool.clone(),
            scratch_dir: self.scratch_dir.clone(),
            retention: rules,
            deletions,
            now_ms,
        };
        let out = merge::merge_blocks(&settings, tenant, signal, inputs).await?;
        if kind != "merge" && out.stats.rows_expired == 0 && out.stats.rows_deleted == 0 {
            // Nothing of this block has expired or been deleted: keep it as it is.
            if kind == "retention" {
                self.retention_checked
                    .lock()
                    .insert(inputs[0].id.clone(), now_ms);
            }
            if let Some(block) = &out.block {
                self.storage
                    .delete_block_files(tenant, signal, &block.id)
                    .await?;
            }
            return Ok(None);
        }
        failpoint::hit("after_output");
        if let Err(e) = self
            .swap(tenant, signal, inputs, out.block.clone(), now_ms)
            .await
        {
            if let Some(block) = &out.block {
                let _ = self
                    .storage
                    .delete_block_files(tenant, signal, &block.id)
                    .await;
            }
            return Err(e);
        }
        failpoint::hit("after_publish");
        tracing::info!(
            tenant, %signal, kind,
            inputs = inputs.len(),
            rows_in = out.stats.rows_in,
            rows_out = out.stats.rows_out,
            rows_deduplicated = out.stats.rows_deduplicated,
            rows_expired = out.stats.rows_expired,
            rows_deleted = out.stats.rows_deleted,
            "compacted blocks"
        );
        Ok(Some(CompactionJob {
            tenant: tenant.to_string(),
            signal: signal.table_name(),
            kind,
            inputs: inputs.iter().map(|b| b.id.clone()).collect(),
            output: out.block.map(|b| b.id),
            stats: out.stats,
        }))
    }

    /// The log deletion requests of a tenant in `filter-and-delete` mode
    /// whose cancel period has passed, as one filter, and those of them not
    /// yet processed.
    async fn due_deletions(
        &self,
        tenant: &str,
        signal: Signal,
        now_ms: i64,
    ) -> Result<(Option<Arc<DeleteFilter>>, Option<PendingDeletes>)> {
        if signal != Signal::Logs
            || self.limits.get(tenant).deletion_mode != DeletionMode::FilterAndDelete
        {
            return Ok((None, None));
        }
        let requests = self.storage.delete_requests().reload(tenant).await?;
        let cancel_ms = self.config.delete_request_cancel_period.as_millis() as i64;
        let due: Vec<&DeleteRequest> = requests
            .requests
            .iter()
            .filter(|r| now_ms.saturating_sub(r.created_at_ms) >= cancel_ms)
            .collect();
        let pending: Vec<&DeleteRequest> = due
            .iter()
            .copied()
            .filter(|r| r.status == DeleteStatus::Received)
            .collect();
        let pending = DeleteFilter::new(pending.iter().copied()).map(|filter| PendingDeletes {
            filter,
            request_ids: pending.iter().map(|r| r.request_id.clone()).collect(),
        });
        Ok((DeleteFilter::new(due).map(Arc::new), pending))
    }

    /// Writes the 5m blocks due (then the 1h blocks due, from 5m blocks):
    /// the source blocks old enough whose time range no block of the target
    /// resolution overlaps, in clusters of overlapping blocks, one output
    /// each. A source range that is already (partly) covered is left alone,
    /// so a run after a crash or a finished run writes nothing new.
    async fn downsample(
        &self,
        tenant: &str,
        rules: Option<&RetentionRules>,
        now_ms: i64,
        report: &mut CompactionReport,
    ) -> Result<()> {
        let signal = Signal::Samples;
        let steps = [
            (
                downsample::RAW,
                downsample::RES_5M,
                self.config.downsample_5m_after,
            ),
            (
                downsample::RES_5M,
                downsample::RES_1H,
                self.config.downsample_1h_after,
            ),
        ];
        for (source, target, after) in steps {
            let cut = now_ms.saturating_sub(after.as_millis() as i64);
            let manifest = self.storage.manifest(tenant, signal);
            for cluster in downsample_plan(&manifest.blocks, source, target, cut) {
                let settings = MergeSettings {
                    storage: &self.storage,
                    pool: self.pool.clone(),
                    scratch_dir: self.scratch_dir.clone(),
                    retention: rules,
                    deletions: None,
                    now_ms,
                };
                let out = match downsample::downsample_blocks(&settings, tenant, &cluster, target)
                    .await
                {
                    Ok(out) => out,
                    Err(e) => {
                        tracing::error!(tenant, resolution = %downsample::resolution_name(target), "downsampling failed, its source blocks stay raw-only: {e}");
                        report.failed.push(format!("{tenant}/{signal}: {e}"));
                        continue;
                    }
                };
                failpoint::hit("after_downsample_output");
                let block = out.block.clone();
                let published = self
                    .storage
                    .update_manifest(tenant, signal, |current| {
                        if current.blocks.iter().any(|b| {
                            b.resolution_ms == target
                                && b.overlaps(Some(block.min_time), Some(block.max_time))
                        }) {
                            return Err(Error::Storage(format!(
                                "a {} block over {}..{} was published meanwhile (another compactor)",
                                downsample::resolution_name(target),
                                block.min_time,
                                block.max_time
                            )));
                        }
                        let mut next = current.clone();
                        next.blocks.push(block.clone());
                        Ok(Some(next))
                    })
                    .await;
                if let Err(e) = published {
                    let _ = self
                        .storage
                        .delete_block_files(tenant, signal, &block.id)
                        .await;
                    report.failed.push(format!("{tenant}/{signal}: {e}"));
                    continue;
                }
                tracing::info!(
                    tenant,
                    resolution = %out.stats.resolution,
                    inputs = cluster.len(),
                    rows_in = out.stats.rows_in,
                    rows_out = out.stats.rows_out,
                    "downsampled blocks"
                );
                report.downsampled.push(DownsampleJob {
                    tenant: tenant.to_string(),
                    inputs: cluster.iter().map(|b| b.id.clone()).collect(),
                    output: block.id,
                    stats: out.stats,
                });
            }
        }
        Ok(())
    }

    /// Publishes one manifest version without `removed` (now pending
    /// deletion) and with `added`. Fails if another writer already removed
    /// one of them.
    async fn swap(
        &self,
        tenant: &str,
        signal: Signal,
        removed: &[BlockMeta],
        added: Option<BlockMeta>,
        now_ms: i64,
    ) -> Result<Arc<Manifest>> {
        let ids: HashSet<&str> = removed.iter().map(|b| b.id.as_str()).collect();
        let updated = self
            .storage
            .update_manifest(tenant, signal, |current| {
                let present = current
                    .blocks
                    .iter()
                    .filter(|b| ids.contains(b.id.as_str()))
                    .count();
                if present != ids.len() {
                    return Err(Error::Storage(format!(
                        "blocks {:?} are no longer all in manifest version {} (another compactor changed it)",
                        ids, current.version
                    )));
                }
                let mut next = current.clone();
                // The output takes the place of the oldest input: block order
                // is publish order, which decides which duplicate is kept.
                let at = next
                    .blocks
                    .iter()
                    .position(|b| ids.contains(b.id.as_str()))
                    .expect("inputs are present");
                next.blocks.retain(|b| !ids.contains(b.id.as_str()));
                next.pending_deletions
                    .extend(removed.iter().map(|b| PendingDeletion {
                        id: b.id.clone(),
                        bytes: b.bytes,
                        index_bytes: b.index_bytes,
                        marked_at_ms: now_ms,
                    }));
                if let Some(block) = added.clone() {
                    next.blocks.insert(at, block);
                }
                Ok(Some(next))
            })
            .await?;
        Ok(updated.expect("a swap always changes the manifest"))
    }

    async fn delete_due(
        &self,
        tenant: &str,
        signal: Signal,
        now_ms: i64,
        report: &mut CompactionReport,
    ) -> Result<()> {
        let delay = self.config.deletion_delay.as_millis() as i64;
        let manifest = self.storage.manifest(tenant, signal);
        let due: Vec<&PendingDeletion> = manifest
            .pending_deletions
            .iter()
            .filter(|p| now_ms.saturating_sub(p.marked_at_ms) >= delay)
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        for (i, p) in due.iter().enumerate() {
            self.storage
                .delete_block_files(tenant, signal, &p.id)
                .await?;
            if i == 0 {
                failpoint::hit("during_delete");
            }
        }
        let ids: HashSet<&str> = due.iter().map(|p| p.id.as_str()).collect();
        self.storage
            .update_manifest(tenant, signal, |current| {
                if !current
                    .pending_deletions
                    .iter()
                    .any(|p| ids.contains(p.id.as_str()))
                {
                    return Ok(None);
                }
                let mut next = current.clone();
                next.pending_deletions
                    .retain(|p| !ids.contains(p.id.as_str()));
                Ok(Some(next))
            })
            .await?;
        report.blocks_deleted += due.len() as u64;
        tracing::info!(tenant, %signal, blocks = due.len(), "deleted replaced blocks");
        Ok(())
    }

    /// Deletes block files no manifest lists once they are older than the
    /// deletion delay (a writer publishes well within it).
    async fn delete_orphans(
        &self,
        tenant: &str,
        signal: Signal,
        now_ms: i64,
        report: &mut CompactionReport,
    ) -> Result<()> {
        let delay = self.config.deletion_delay.as_millis() as i64;
        let files = self.storage.list_block_files(tenant, signal).await?;
        let manifest = self.storage.manifest(tenant, signal);
        let known: HashSet<&str> = manifest
            .blocks
            .iter()
            .map(|b| b.id.as_str())
            .chain(manifest.pending_deletions.iter().map(|p| p.id.as_str()))
            .collect();
        let mut orphans: Vec<String> = files
            .iter()
            .filter(|f| now_ms.saturating_sub(f.last_modified.timestamp_millis()) >= delay)
            .filter_map(|f| Layout::block_id_of(f.location.as_ref()))
            .filter(|id| !known.contains(id))
            .map(str::to_string)
            .collect();
        orphans.sort();
        orphans.dedup();
        for id in &orphans {
            tracing::info!(tenant, %signal, block = id, "deleting a block no manifest lists");
            self.storage.delete_block_files(tenant, signal, id).await?;
        }
        report.orphans_deleted += orphans.len() as u64;
        Ok(())
    }

    /// Runs [`Compactor::run`] every `compaction_interval` until `shutdown` fires.
    pub fn spawn_loop(
        self: &Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(this.config.compaction_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.changed() => break,
                }
                let report = this.run().await;
                if !report.failed.is_empty() {
                    tracing::warn!(failed = ?report.failed, "compaction run had failures");
                }
            }
        })
    }
}

/// The blocks of resolution `source` to aggregate into `target` blocks: those
/// whose newest row is before `cut` and whose range no `target` block
/// overlaps, grouped into clusters of blocks that overlap or share a
/// `target` window (oldest first). A window's rows then come from one
/// downsampling of all the blocks holding its samples — one row per series
/// and window, as Thanos keeps it — even when flushes cut it (small blocks
/// that no block range merges, or blocks spanning more than the largest).
fn downsample_plan(
    blocks: &[BlockMeta],
    source: i64,
    target: i64,
    cut: i64,
) -> Vec<Vec<BlockMeta>> {
    let window = |t: i64| t.div_euclid(target);
    let shares_window = |b: &BlockMeta, start: i64, end: i64| {
        window(b.min_time) <= window(end) && window(start) <= window(b.max_time)
    };
    let covered: Vec<&BlockMeta> = blocks
        .iter()
        .filter(|b| b.resolution_ms == target)
        .collect();
    let mut due: Vec<BlockMeta> = blocks
        .iter()
        .filter(|b| b.resolution_ms == source && b.max_time < cut)
        .filter(|b| {
            !covered
                .iter()
                .any(|c| c.overlaps(Some(b.min_time), Some(b.max_time)))
        })
        .cloned()
        .collect();
    due.sort_by_key(|b| (b.min_time, b.max_time));
    let mut clusters: Vec<(i64, Vec<BlockMeta>)> = Vec::new();
    for b in due {
        match clusters.last_mut() {
            Some((end, members)) if window(b.min_time) <= window(*end) => {
                *end = (*end).max(b.max_time);
                members.push(b);
            }
            _ => clusters.push((b.max_time, vec![b])),
        }
    }
    // A cluster that a younger source block overlaps or shares a window
    // with waits until that one is old enough too (and joins the cluster).
    let young: Vec<&BlockMeta> = blocks
        .iter()
        .filter(|b| b.resolution_ms == source && b.max_time >= cut)
        .collect();
    clusters
        .into_iter()
        .filter(|(end, members)| {
            let start = members[0].min_time;
            !young.iter().any(|y| shares_window(y, start, *end))
        })
        .map(|(_, members)| members)
        .collect()
}

/// The compactor's self-monitoring series: name, type, help.
const METRICS: [(&str, &str, &str); 15] = [
    ("o11ydb_compactor_runs_total", "counter", "Compaction runs."),
    (
        "o11ydb_compactor_runs_failed_total",
        "counter",
        "Compaction runs in which some step failed.",
    ),
    (
        "o11ydb_compactor_blocks_compacted_total",
        "counter",
        "Blocks read and replaced by compaction.",
    ),
    (
        "o11ydb_compactor_blocks_written_total",
        "counter",
        "Blocks written by compaction.",
    ),
    (
        "o11ydb_compactor_bytes_read_total",
        "counter",
        "Bytes of blocks replaced by compaction.",
    ),
    (
        "o11ydb_compactor_bytes_written_total",
        "counter",
        "Bytes of blocks written by compaction.",
    ),
    (
        "o11ydb_compactor_rows_deduplicated_total",
        "counter",
        "Duplicate rows dropped while merging.",
    ),
    (
        "o11ydb_compactor_samples_conflicting_total",
        "counter",
        "Duplicate samples whose values differed (the oldest was kept).",
    ),
    (
        "o11ydb_compactor_rows_expired_total",
        "counter",
        "Rows deleted by retention.",
    ),
    (
        "o11ydb_compactor_rows_deleted_total",
        "counter",
        "Log lines removed from blocks by deletion requests.",
    ),
    (
        "o11ydb_compactor_blocks_expired_total",
        "counter",
        "Blocks dropped whole by retention.",
    ),
    (
        "o11ydb_compactor_blocks_deleted_total",
        "counter",
        "Block files deleted (replaced blocks after the deletion delay, and orphans).",
    ),
    (
        "o11ydb_compactor_downsampled_blocks_total",
        "counter",
        "Downsampled blocks written, by resolution.",
    ),
    (
        "o11ydb_compactor_downsampled_bytes_written_total",
        "counter",
        "Bytes of downsampled blocks written, by resolution.",
    ),
    (
        "o11ydb_compactor_last_successful_run_timestamp_seconds",
        "gauge",
        "When the last compaction run without failures ended.",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::engine::Engine;
    use crate::model::builders::{LogLine, LogsBuilder, SamplesBuilder, SpanRow, SpansBuilder};
    use arrow::array::{AsArray, RecordBatch};
    use arrow::datatypes::Float64Type;
    use object_store::ObjectStoreExt;
    use object_store::path::Path as StorePath;

    async fn engine(toml: &str) -> (Arc<Engine>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        // These tests write samples near the epoch: downsampling (tested on
        // its own) would add blocks to every manifest they look at.
        let toml = if toml.contains("downsample") {
            toml.to_string()
        } else if toml.contains("[compactor]") {
            toml.replacen("[compactor]", "[compactor]\ndownsample = false", 1)
        } else {
            format!("{toml}\n[compactor]\ndownsample = false")
        };
        let mut config = Config::from_toml(&format!("storage = \"memory://\"\n{toml}")).unwrap();
        config.data_dir = dir.path().to_path_buf();
        let (engine, _) = Engine::open(config).await.unwrap();
        (engine, dir)
    }

    async fn put_block(engine: &Engine, signal: Signal, batch: &RecordBatch) -> BlockMeta {
        let storage = engine.ingester().storage();
        let meta = storage
            .write_block("t", signal, std::slice::from_ref(batch))
            .await
            .unwrap();
        let m = storage
            .publish("t", signal, vec![meta.clone()], None)
            .await
            .unwrap();
        storage.install(m);
        meta
    }

    fn samples(series: &[(&str, &[(i64, f64)])]) -> RecordBatch {
        let mut b = SamplesBuilder::new();
        for (job, points) in series {
            b.push_series("up", &[("job", *job)], points);
        }
        b.finish()
    }

    async fn sql_row(engine: &Engine, sql: &str) -> Vec<f64> {
        let ctx = engine.session("t").await.unwrap();
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let batch = &batches[0];
        (0..batch.num_columns())
            .map(|i| {
                let c = arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Float64)
                    .unwrap();
                c.as_primitive::<Float64Type>().value(0)
            })
            .collect()
    }

    async fn exists(engine: &Engine, signal: Signal, id: &str) -> bool {
        let storage = engine.ingester().storage();
        let path = StorePath::from(storage.block_path("t", signal, id));
        storage.object_store().head(&path).await.is_ok()
    }

    #[tokio::test]
    async fn overlapping_sample_blocks_merge_into_one_without_duplicates() {
        let (engine, _dir) = engine("[compactor]\ndeletion_delay = \"1h\"").await;
        let a = put_block(
            &engine,
            Signal::Samples,
            &samples(&[("a", &[(1000, 1.0), (2000, 2.0), (3000, 3.0)])]),
        )
        .await;
        // Repeats two of a's samples, one with another value, and adds one.
        let b = put_block(
            &engine,
            Signal::Samples,
            &samples(&[
                ("a", &[(2000, 2.0), (3000, 30.0), (4000, 4.0)]),
                ("b", &[(1500, 7.0)]),
            ]),
        )
        .await;
        let c = put_block(&engine, Signal::Samples, &samples(&[("c", &[(500, 5.0)])])).await;
        let before = engine.ingester().storage().manifest("t", Signal::Samples);
        let report = engine.compactor().run().await;
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!((report.blocks_in, report.blocks_out), (3, 1));
        assert_eq!((report.rows_in, report.rows_out), (8, 6));
        assert_eq!(report.rows_deduplicated, 2);
        assert_eq!(report.samples_conflicting, 1);
        let storage = engine.ingester().storage();
        let after = storage.manifest("t", Signal::Samples);
        assert_eq!(
            after.version,
            before.version + 1,
            "one manifest version swaps the blocks"
        );
        assert_eq!(after.blocks.len(), 1);
        let merged = &after.blocks[0];
        assert_eq!(
            (merged.min_time, merged.max_time, merged.rows),
            (500, 4000, 6)
        );
        let pending: Vec<&str> = after
            .pending_deletions
            .iter()
            .map(|p| p.id.as_str())
            .collect();
        assert_eq!(pending, vec![a.id.as_str(), b.id.as_str(), c.id.as_str()]);
        // The first write of a sample wins: 1 + 2 + 3 + 4 + 7 + 5.
        assert_eq!(
            sql_row(&engine, "SELECT count(*), sum(value) FROM samples").await,
            vec![6.0, 22.0]
        );
        // Replaced blocks stay readable until the deletion delay has passed.
        for block in &before.blocks {
            assert!(exists(&engine, Signal::Samples, &block.id).await);
        }
        let bloom = storage
            .block_index("t", Signal::Samples, &merged.id)
            .await
            .unwrap();
        assert!(bloom.may_contain("labels[job]=b"));
        assert!(!bloom.may_contain("labels[job]=zzz"));
        // Nothing left to do.
        let again = engine.compactor().run().await;
        assert!(
            again.jobs.is_empty() && again.failed.is_empty(),
            "{again:?}"
        );
    }

    #[tokio::test]
    async fn replaced_blocks_and_orphans_are_deleted_after_the_delay() {
        let (engine, _dir) = engine("[compactor]\ndeletion_delay = \"0s\"").await;
        let a = put_block(&engine, Signal::Samples, &samples(&[("a", &[(1, 1.0)])])).await;
        let b = put_block(&engine, Signal::Samples, &samples(&[("a", &[(2, 2.0)])])).await;
        let storage = engine.ingester().storage();
        // Written but never published, as after a crash.
        let orphan = storage
            .write_block("t", Signal::Samples, &[samples(&[("o", &[(3, 3.0)])])])
            .await
            .unwrap();
        let report = engine.compactor().run().await;
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!((report.blocks_deleted, report.orphans_deleted), (2, 1));
        for id in [&a.id, &b.id, &orphan.id] {
            assert!(
                !exists(&engine, Signal::Samples, id).await,
                "{id} is deleted"
            );
        }
        let m = storage.manifest("t", Signal::Samples);
        assert!(m.pending_deletions.is_empty());
        assert!(exists(&engine, Signal::Samples, &m.blocks[0].id).await);
        assert_eq!(
            sql_row(&engine, "SELECT count(*), sum(value) FROM samples").await,
            vec![2.0, 3.0]
        );
    }

    #[tokio::test]
    async fn identical_log_entries_and_spans_appear_once() {
        let (engine, _dir) = engine("").await;
        let labels = [("app", "api")];
        let id = LogsBuilder::stream_id(&labels);
        let logs = |lines: &[(i64, &str)]| {
            let mut b = LogsBuilder::new();
            for (ts, line) in lines {
                b.push(
                    &labels,
                    id,
                    &LogLine {
                        timestamp_ns: *ts,
                        line,
                        ..Default::default()
                    },
                );
            }
            b.finish()
        };
        put_block(
            &engine,
            Signal::Logs,
            &logs(&[(10, "x"), (10, "y"), (20, "z")]),
        )
        .await;
        put_block(
            &engine,
            Signal::Logs,
            &logs(&[(10, "y"), (10, "w"), (20, "z"), (30, "z")]),
        )
        .await;
        let spans = |ids: &[(&str, &str, i64)]| {
            let mut b = SpansBuilder::new();
            for (trace, span, start) in ids {
                b.push(SpanRow {
                    trace_id: trace.to_string(),
                    span_id: span.to_string(),
                    name: "GET /".into(),
                    kind: "server",
                    service: "api".into(),
                    start_ns: *start,
                    end_ns: start + 5,
                    status_code: "unset",
                    ..Default::default()
                });
            }
            crate::model::normalize::normalize(Signal::Spans, &b.finish()).unwrap()
        };
        let t1 = format!("{:032x}", 1);
        let t2 = format!("{:032x}", 2);
        put_block(
            &engine,
            Signal::Spans,
            &spans(&[(&t1, "a1", 100), (&t1, "a2", 200)]),
        )
        .await;
        put_block(
            &engine,
            Signal::Spans,
            &spans(&[(&t1, "a2", 200), (&t2, "a1", 150)]),
        )
        .await;
        let report = engine.compactor().run().await;
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(report.rows_deduplicated, 3);
        assert_eq!(
            sql_row(&engine, "SELECT count(*) FROM logs").await,
            vec![5.0]
        );
        assert_eq!(
            sql_row(
                &engine,
                "SELECT count(DISTINCT concat(CAST(timestamp AS VARCHAR), line)) FROM logs"
            )
            .await,
            vec![5.0]
        );
        assert_eq!(
            sql_row(&engine, "SELECT count(*) FROM spans").await,
            vec![3.0]
        );
        let storage = engine.ingester().storage();
        assert_eq!(storage.manifest("t", Signal::Logs).blocks.len(), 1);
        assert_eq!(storage.manifest("t", Signal::Spans).blocks.len(), 1);
    }

    #[tokio::test]
    async fn an_unreadable_block_fails_its_group_only() {
        // Windows of 1s: [0, 1000) and [1000, 2000).
        let (engine, _dir) = engine("[compactor]\nblock_ranges = [\"1s\"]").await;
        let bad = put_block(&engine, Signal::Samples, &samples(&[("a", &[(10, 1.0)])])).await;
        put_block(&engine, Signal::Samples, &samples(&[("a", &[(20, 2.0)])])).await;
        put_block(&engine, Signal::Samples, &samples(&[("a", &[(1010, 3.0)])])).await;
        put_block(&engine, Signal::Samples, &samples(&[("a", &[(1020, 4.0)])])).await;
        let storage = engine.ingester().storage();
        let path = StorePath::from(storage.block_path("t", Signal::Samples, &bad.id));
        let garbage = vec![7u8; bad.bytes as usize];
        storage
            .object_store()
            .put(&path, garbage.into())
            .await
            .unwrap();
        let report = engine.compactor().run().await;
        assert_eq!(report.failed.len(), 1, "{report:?}");
        assert!(report.failed[0].contains(&bad.id), "{:?}", report.failed);
        assert_eq!((report.blocks_in, report.blocks_out), (2, 1));
        let m = storage.manifest("t", Signal::Samples);
        assert_eq!(m.blocks.len(), 3, "the failed group's blocks stay");
        assert!(m.blocks.iter().any(|b| b.id == bad.id));
        assert!(
            m.blocks
                .iter()
                .any(|b| b.min_time == 1010 && b.max_time == 1020)
        );
    }

    #[tokio::test]
    async fn retention_drops_old_blocks_and_rewrites_partly_expired_ones() {
        let (engine, _dir) = engine(
            r#"
            [limits]
            retention_period = "10h"
            [[limits.retention_stream]]
            selector = '{job="short"}'
            priority = 1
            period = "1h"
            [compactor]
            block_ranges = ["1m"]
            "#,
        )
        .await;
        let now = chrono::Utc::now().timestamp_millis();
        let h = 3_600_000;
        let old = put_block(
            &engine,
            Signal::Samples,
            &samples(&[("long", &[(now - 12 * h, 1.0)])]),
        )
        .await;
        // Two minutes apart: never in one merge window.
        put_block(
            &engine,
            Signal::Samples,
            &samples(&[
                ("long", &[(now - 2 * h, 2.0)]),
                (
                    "short",
                    &[(now - 2 * h - 120_000, 4.0), (now - 60_000, 8.0)],
                ),
            ]),
        )
        .await;
        let report = engine.compactor().run().await;
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(report.blocks_expired, 1);
        assert_eq!(report.rows_expired, 2);
        assert_eq!(report.jobs.len(), 1);
        assert_eq!(report.jobs[0].kind, "retention");
        let m = engine.ingester().storage().manifest("t", Signal::Samples);
        assert!(m.pending_deletions.iter().any(|p| p.id == old.id));
        assert_eq!(
            sql_row(&engine, "SELECT count(*), sum(value) FROM samples").await,
            vec![2.0, 10.0]
        );
        // Nothing more has expired: the block is read but kept as it is.
        let again = engine.compactor().run().await;
        assert!(
            again.jobs.is_empty() && again.rows_expired == 0,
            "{again:?}"
        );
        assert_eq!(
            engine
                .metrics()
                .value("o11ydb_compactor_rows_expired_total", &[]),
            2.0
        );
        assert_eq!(
            engine.metrics().value("o11ydb_compactor_runs_total", &[]),
            2.0
        );
    }

    #[test]
    fn downsampling_clusters_blocks_that_share_a_window() {
        let minute = 60_000;
        let block = |id: &str, min_time: i64, max_time: i64, resolution_ms: i64| BlockMeta {
            id: id.into(),
            min_time,
            max_time,
            rows: 1,
            bytes: 1,
            index_bytes: 0,
            created_at_ms: 0,
            resolution_ms,
            edges_bytes: None,
            row_index_bytes: None,
        };
        let raw = |id: &str, from_min: i64, to_min: i64| {
            block(id, from_min * minute, to_min * minute - 1, 0)
        };
        let ids = |plan: Vec<Vec<BlockMeta>>| -> Vec<Vec<String>> {
            plan.into_iter()
                .map(|c| c.into_iter().map(|b| b.id).collect())
                .collect()
        };
        // Cut at minutes 18 and 38 (inside 5m windows), 60 (on a window edge).
        let blocks = vec![
            raw("a", 0, 18),
            raw("b", 18, 38),
            raw("c", 38, 60),
            raw("d", 60, 90),
        ];
        let cut = 200 * minute;
        let five = downsample::RES_5M;
        assert_eq!(
            ids(downsample_plan(&blocks, 0, five, cut)),
            vec![vec!["a", "b", "c"], vec!["d"]]
        );
        assert_eq!(
            ids(downsample_plan(&blocks, 0, downsample::RES_1H, cut)),
            vec![vec!["a", "b", "c"], vec!["d"]]
        );
        // A young block sharing the last window holds its cluster back.
        let young_cut = 70 * minute;
        assert_eq!(
            ids(downsample_plan(&blocks, 0, five, 37 * minute)),
            Vec::<Vec<String>>::new()
        );
        assert_eq!(
            ids(downsample_plan(&blocks, 0, five, young_cut)),
            vec![vec!["a", "b", "c"]]
        );
        // Blocks a target block overlaps are done.
        let mut done = blocks.clone();
        done.push(block("a5", 0, 60 * minute - 1, five));
        assert_eq!(ids(downsample_plan(&done, 0, five, cut)), vec![vec!["d"]]);
    }

    #[test]
    fn config_is_validated() {
        let bad = |toml: &str| {
            let c: Config = Config::from_toml(toml).unwrap();
            c.compactor.validate().unwrap_err()
        };
        assert!(bad("[compactor]\nblock_ranges = [\"2h\", \"3h\"]").contains("block_ranges[1]"));
        assert!(bad("[compactor]\nblock_ranges = []").contains("at least one"));
        assert!(bad("[compactor]\nmax_blocks_per_compaction = 1").contains("at least 2"));
        let ok = Config::from_toml(
            "[compactor]\nblock_ranges = [\"1h\", \"4h\"]\ndeletion_delay = \"30s\"",
        )
        .unwrap();
        ok.compactor.validate().unwrap();
        assert_eq!(ok.compactor.deletion_delay, Duration::from_secs(30));
        assert!(Config::from_toml("[compactor]\nblock_ranges = [\"2 parsecs\"]").is_err());
    }

    #[tokio::test]
    async fn a_manifest_change_retries_from_what_another_process_published() {
        let (engine, _dir) = engine("").await;
        let storage = engine.ingester().storage();
        put_block(&engine, Signal::Samples, &samples(&[("a", &[(1, 1.0)])])).await;
        // Another process over the same store publishes version 2.
        let other = Storage::open(storage.object_store(), "other".into())
            .await
            .unwrap();
        let meta = other
            .write_block("t", Signal::Samples, &[samples(&[("b", &[(2, 2.0)])])])
            .await
            .unwrap();
        other
            .publish("t", Signal::Samples, vec![meta.clone()], None)
            .await
            .unwrap();
        let mut calls = 0;
        let m = storage
            .update_manifest("t", Signal::Samples, |current| {
                calls += 1;
                let mut next = current.clone();
                next.flushed_lsn = Some(42);
                Ok(Some(next))
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(calls, 2, "the first attempt conflicted");
        assert_eq!(m.version, 3);
        assert_eq!(m.blocks.len(), 2, "the other process' block is kept");
        assert_eq!(storage.manifest("t", Signal::Samples).version, 3);
    }
}
