//! Progress of compaction runs, for `GET /compactor/status`, the log and
//! `/metrics`.
//!
//! What flows through: the run in progress reports each step here —
//! started (by whom), the tenants × signals it will visit, each signal
//! begun with the groups planned for it, each group finished with its
//! bytes and rows — and the finished run leaves its report. Readers get a
//! [`CompactorStatus`] snapshot; every finished group is logged at INFO
//! with the same counts, and the `o11ydb_compactor_job_*` gauges follow.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use serde::Serialize;

use super::CompactionReport;
use super::merge::MergeStats;
use crate::metrics::Metrics;

pub const GROUPS_DONE: &str = "o11ydb_compactor_job_groups_done";
pub const GROUPS_TOTAL: &str = "o11ydb_compactor_job_groups_total";
pub const SIGNALS_DONE: &str = "o11ydb_compactor_job_signals_done";
pub const SIGNALS_TOTAL: &str = "o11ydb_compactor_job_signals_total";
pub const JOB_RUNNING: &str = "o11ydb_compactor_job_running";

pub(super) const METRICS: [(&str, &str, &str); 5] = [
    (
        GROUPS_DONE,
        "gauge",
        "Groups of blocks the current (or last) compaction run has finished.",
    ),
    (
        GROUPS_TOTAL,
        "gauge",
        "Groups of blocks the current (or last) compaction run has planned so far.",
    ),
    (
        SIGNALS_DONE,
        "gauge",
        "Tenant signals (logs, samples, spans of each tenant) the current (or last) compaction run has finished.",
    ),
    (
        SIGNALS_TOTAL,
        "gauge",
        "Tenant signals the current (or last) compaction run visits.",
    ),
    (
        JOB_RUNNING,
        "gauge",
        "1 while a compaction run is under way.",
    ),
];

/// A run under way, as `GET /compactor/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunningJob {
    /// Runs are numbered from 1 since the process started.
    pub id: u64,
    /// `api` (`POST /compactor/run`) or `schedule` (every `compaction_interval`).
    pub trigger: &'static str,
    pub started_at: String,
    pub elapsed_seconds: f64,
    /// `tenant/signal` being compacted.
    pub current: Option<String>,
    /// Tenant signals finished, of the tenants × signals the run visits.
    pub signals_done: u64,
    pub signals_total: u64,
    /// Groups of blocks finished (merged, rewritten, left or failed), of
    /// those planned so far: each signal's groups are planned when the run
    /// reaches it.
    pub groups_done: u64,
    pub groups_total: u64,
    pub groups_failed: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub rows_read: u64,
    pub rows_written: u64,
    #[serde(skip)]
    started: Option<Instant>,
}

/// The last run that finished.
#[derive(Debug, Clone, Serialize)]
pub struct FinishedJob {
    pub id: u64,
    pub trigger: &'static str,
    pub started_at: String,
    pub finished_at: String,
    pub report: CompactionReport,
}

/// `GET /compactor/status`.
#[derive(Debug, Clone, Serialize)]
pub struct CompactorStatus {
    /// `running` or `idle`.
    pub state: &'static str,
    pub running: Option<RunningJob>,
    pub last: Option<FinishedJob>,
}

#[derive(Default)]
struct State {
    runs: u64,
    running: Option<RunningJob>,
    last: Option<FinishedJob>,
}

/// The progress of the compactor's runs (one at a time).
pub struct Progress {
    state: Mutex<State>,
    metrics: Arc<Metrics>,
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Progress {
    pub fn new(metrics: Arc<Metrics>) -> Progress {
        Progress {
            state: Mutex::new(State::default()),
            metrics,
        }
    }

    /// The run in progress and the last finished one.
    pub fn status(&self) -> CompactorStatus {
        let st = self.state.lock();
        let running = st.running.clone().map(|mut job| {
            job.elapsed_seconds = job.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
            job
        });
        CompactorStatus {
            state: if running.is_some() { "running" } else { "idle" },
            running,
            last: st.last.clone(),
        }
    }

    /// The run in progress, if any.
    pub fn running(&self) -> Option<RunningJob> {
        self.status().running
    }

    pub(super) fn start(&self, trigger: &'static str) {
        let mut st = self.state.lock();
        st.runs += 1;
        st.running = Some(RunningJob {
            id: st.runs,
            trigger,
            started_at: now_rfc3339(),
            elapsed_seconds: 0.0,
            current: None,
            signals_done: 0,
            signals_total: 0,
            groups_done: 0,
            groups_total: 0,
            groups_failed: 0,
            bytes_read: 0,
            bytes_written: 0,
            rows_read: 0,
            rows_written: 0,
            started: Some(Instant::now()),
        });
        drop(st);
        self.metrics.set(JOB_RUNNING, &[], 1.0);
        for name in [GROUPS_DONE, GROUPS_TOTAL, SIGNALS_DONE, SIGNALS_TOTAL] {
            self.metrics.set(name, &[], 0.0);
        }
    }

    fn update(&self, f: impl FnOnce(&mut RunningJob)) {
        let mut st = self.state.lock();
        let Some(job) = st.running.as_mut() else {
            return;
        };
        f(job);
        let job = job.clone();
        drop(st);
        let m = &self.metrics;
        m.set(GROUPS_DONE, &[], job.groups_done as f64);
        m.set(GROUPS_TOTAL, &[], job.groups_total as f64);
        m.set(SIGNALS_DONE, &[], job.signals_done as f64);
        m.set(SIGNALS_TOTAL, &[], job.signals_total as f64);
    }

    pub(super) fn set_signals_total(&self, n: u64) {
        self.update(|j| j.signals_total = n);
    }

    pub(super) fn begin_signal(&self, tenant: &str, signal: &str) {
        let current = format!("{tenant}/{signal}");
        self.update(|j| j.current = Some(current));
    }

    pub(super) fn add_groups(&self, n: u64) {
        self.update(|j| j.groups_total += n);
    }

    /// One group finished: `stats` when it was merged and swapped in,
    /// `failed` when it failed.
    pub(super) fn group_done(&self, stats: Option<&MergeStats>, failed: bool) {
        let mut logged = None;
        self.update(|j| {
            j.groups_done += 1;
            j.groups_failed += failed as u64;
            if let Some(s) = stats {
                j.bytes_read += s.bytes_in;
                j.bytes_written += s.bytes_out;
                j.rows_read += s.rows_in;
                j.rows_written += s.rows_out;
            }
            logged = Some(j.clone());
        });
        if let Some(j) = logged {
            tracing::info!(
                run = j.id,
                current = j.current.as_deref().unwrap_or(""),
                groups_done = j.groups_done,
                groups_total = j.groups_total,
                signals_done = j.signals_done,
                signals_total = j.signals_total,
                bytes_read = j.bytes_read,
                bytes_written = j.bytes_written,
                rows_read = j.rows_read,
                rows_written = j.rows_written,
                elapsed_seconds = j.started.map_or(0.0, |s| s.elapsed().as_secs_f64()),
                "compaction progress"
            );
        }
    }

    pub(super) fn signal_done(&self) {
        self.update(|j| j.signals_done += 1);
    }

    pub(super) fn finish(&self, report: &CompactionReport) {
        let mut st = self.state.lock();
        if let Some(job) = st.running.take() {
            st.last = Some(FinishedJob {
                id: job.id,
                trigger: job.trigger,
                started_at: job.started_at,
                finished_at: now_rfc3339(),
                report: report.clone(),
            });
        }
        drop(st);
        self.metrics.set(JOB_RUNNING, &[], 0.0);
    }
}
