//! The write path: normalise → WAL (fsync, group commit) → head → block.
//!
//! [`Ingester::append`] is the one entry point every protocol (SQL `INSERT`,
//! and later remote write, Loki push, OTLP, Flight `DoPut`) uses. It returns
//! once the batch is durable and visible to queries. A background task
//! flushes heads past their size or age into Parquet blocks, publishes the
//! manifest, and then deletes the WAL segments no head needs any more.

pub mod distributor;
pub mod head;
pub mod limits;
pub mod loki_push;
pub mod metrics_generator;
pub mod native_histogram;
pub mod otlp;
pub mod protobuf;
pub mod remote_write;
pub mod series_cache;
pub mod validate;
pub mod wal;
pub mod wal_samples;
pub mod zipkin;

use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use tokio::sync::Mutex as AsyncMutex;

use crate::config::IngesterConfig;
use crate::error::{Error, Result};
use crate::model::Signal;
use crate::model::normalize::normalize;
use crate::storage::Storage;
use head::{Head, Heads};
use wal::{Durable, ReplayReport, Wal, WalOptions};

pub struct Ingester {
    wal: Wal,
    heads: Arc<Heads>,
    storage: Arc<Storage>,
    config: IngesterConfig,
    flush_lock: AsyncMutex<()>,
    /// Woken when a head grows past `flush_max_bytes`, so the flush loop does
    /// not wait for its next tick while memory grows.
    flush_wanted: tokio::sync::Notify,
}

/// What a flush did, for logs and tests.
#[derive(Debug, Default, Clone)]
pub struct FlushReport {
    pub blocks: usize,
    pub rows: u64,
    pub failed: Vec<String>,
    pub wal_segments_removed: usize,
}

impl Ingester {
    /// Replays the WAL in `wal_dir` into heads — skipping records already in a
    /// published block — and starts the WAL writer.
    pub fn open(
        wal_dir: &Path,
        storage: Arc<Storage>,
        config: IngesterConfig,
    ) -> Result<(Arc<Ingester>, ReplayReport)> {
        let heads = Arc::new(Heads::default());
        let applied_heads = heads.clone();
        let replay_heads = heads.clone();
        let replay_storage = storage.clone();
        // LSNs must keep growing even when every segment was already deleted.
        let min_next_lsn = storage.max_flushed_lsn().map_or(0, |l| l + 1);
        let (wal, report) = Wal::open(
            wal_dir,
            WalOptions {
                segment_bytes: config.wal_segment_bytes,
                fsync: true,
            },
            min_next_lsn,
            move |record, durable| {
                let flushed = replay_storage
                    .manifest(&record.tenant, record.signal)
                    .flushed_lsn;
                if flushed.is_none_or(|f| record.lsn > f) {
                    replay_heads
                        .get_or_create(&record.tenant, record.signal)
                        .push(record.batch, durable.lsn, durable.segment);
                }
                Ok(())
            },
            Box::new(move |records| {
                for (record, durable) in records {
                    applied_heads
                        .get_or_create(&record.tenant, record.signal)
                        .push(record.batch.clone(), durable.lsn, durable.segment);
                }
            }),
        )?;
        let ingester = Arc::new(Ingester {
            wal,
            heads,
            storage,
            config,
            flush_lock: AsyncMutex::new(()),
            flush_wanted: tokio::sync::Notify::new(),
        });
        Ok((ingester, report))
    }

    /// Validates and appends a batch; returns once it is durable and queryable.
    pub async fn append(
        &self,
        tenant: &str,
        signal: Signal,
        batch: &RecordBatch,
    ) -> Result<Durable> {
        let normalized = normalize(signal, batch)?;
        self.append_durable(tenant, signal, normalized).await
    }

    /// Appends a batch already in canonical form (built with
    /// `model::builders`), skipping normalisation.
    pub async fn append_canonical(
        &self,
        tenant: &str,
        signal: Signal,
        batch: &RecordBatch,
    ) -> Result<Durable> {
        debug_assert_eq!(batch.schema(), signal.schema());
        self.append_durable(tenant, signal, batch.clone()).await
    }

    async fn append_durable(
        &self,
        tenant: &str,
        signal: Signal,
        batch: RecordBatch,
    ) -> Result<Durable> {
        if batch.num_rows() == 0 {
            return Ok(Durable {
                lsn: self.wal.next_lsn(),
                segment: self.wal.current_segment(),
            });
        }
        let durable = self.wal.append(tenant, signal, batch).await?;
        if self
            .head(tenant, signal)
            .is_some_and(|h| h.stats().active_bytes as u64 >= self.config.flush_max_bytes)
        {
            self.flush_wanted.notify_one();
        }
        Ok(durable)
    }

    pub fn head(&self, tenant: &str, signal: Signal) -> Option<Arc<Head>> {
        self.heads.get(tenant, signal)
    }

    pub fn heads(&self) -> &Heads {
        &self.heads
    }

    pub fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }

    pub fn wal(&self) -> &Wal {
        &self.wal
    }

    /// Flushes heads that are over their size or age limit.
    pub async fn flush_due(&self) -> FlushReport {
        self.flush_where(|stats| {
            stats.active_bytes as u64 >= self.config.flush_max_bytes
                || stats.age.is_some_and(|a| a >= self.config.flush_max_age)
        })
        .await
    }

    /// Flushes every non-empty head (Loki's `POST /flush`, and shutdown).
    pub async fn flush_all(&self) -> FlushReport {
        self.flush_where(|stats| stats.rows > 0).await
    }

    async fn flush_where(&self, due: impl Fn(&head::HeadStats) -> bool) -> FlushReport {
        let _one_flush_at_a_time = self.flush_lock.lock().await;
        let mut report = FlushReport::default();
        for ((tenant, signal), head) in self.heads.all() {
            if !due(&head.stats()) {
                continue;
            }
            match self.flush_head(&tenant, signal, &head).await {
                Ok(Some(rows)) => {
                    report.blocks += 1;
                    report.rows += rows;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(tenant, %signal, "flush failed, data stays in the WAL and head: {e}");
                    report.failed.push(format!("{tenant}/{signal}: {e}"));
                }
            }
        }
        match self.remove_flushed_segments() {
            Ok(n) => report.wal_segments_removed = n,
            Err(e) => tracing::warn!("could not remove flushed WAL segments: {e}"),
        }
        report
    }

    async fn flush_head(&self, tenant: &str, signal: Signal, head: &Head) -> Result<Option<u64>> {
        let Some(part) = head.freeze() else {
            return Ok(None);
        };
        let result = async {
            let batches: Vec<RecordBatch> = part.batches.iter().map(|(b, _)| b.clone()).collect();
            let meta = self.storage.write_block(tenant, signal, &batches).await?;
            // Held until the manifest is installed: the compactor changes
            // this manifest too.
            let guard = self.storage.lock_manifest(tenant, signal).await;
            let manifest = self
                .storage
                .publish(tenant, signal, vec![meta], part.max_lsn)
                .await?;
            Ok::<_, Error>((manifest, guard))
        }
        .await;
        match result {
            Ok((manifest, _guard)) => {
                head.complete_flush(|| self.storage.install(manifest));
                tracing::info!(tenant, %signal, rows = part.rows, "flushed head to a block");
                Ok(Some(part.rows as u64))
            }
            Err(e) => {
                head.abort_flush();
                Err(e)
            }
        }
    }

    /// Deletes WAL segments whose every record is in a published block.
    fn remove_flushed_segments(&self) -> Result<usize> {
        // Read the current segment first: a record being written right now is
        // in it or a later one, so it is never below the limit computed here.
        let current = self.wal.current_segment();
        let needed = self
            .heads
            .all()
            .iter()
            .filter_map(|(_, h)| h.stats().min_segment)
            .min()
            .unwrap_or(current);
        self.wal.remove_segments_before(needed.min(current))
    }

    /// Runs [`Ingester::flush_due`] every `flush_check_interval`, and at once
    /// when a head outgrows `flush_max_bytes`, until `shutdown` fires.
    pub fn spawn_flush_loop(
        self: &Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(this.config.flush_check_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = this.flush_wanted.notified() => {}
                    _ = shutdown.changed() => break,
                }
                let report = this.flush_due().await;
                if report.blocks > 0 {
                    tracing::debug!(?report, "flush");
                }
            }
        })
    }
}

impl std::fmt::Debug for Ingester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingester").finish_non_exhaustive()
    }
}

/// Tenant ids follow Cortex/Mimir rules: 1–150 bytes of `[A-Za-z0-9!-_.*'()]`,
/// and not `.` or `..`.
pub fn validate_tenant(tenant: &str) -> Result<()> {
    let bad = |why: String| {
        Err(Error::InvalidValue {
            table: "tenant",
            column: "X-Scope-OrgID".into(),
            row: 0,
            reason: why,
        })
    };
    if tenant.is_empty() {
        return bad("tenant id is empty".into());
    }
    if tenant.len() > 150 {
        return bad(format!(
            "tenant id is {} bytes long, the limit is 150",
            tenant.len()
        ));
    }
    if tenant == "." || tenant == ".." {
        return bad(format!("tenant id {tenant:?} is not allowed"));
    }
    if let Some(c) = tenant
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "!-_.*'()".contains(*c)))
    {
        return bad(format!("tenant id contains unsupported character {c:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::labels::build_string_map;
    use arrow::array::{Float64Array, Int64Array, StringArray, TimestampMillisecondArray};
    use std::time::Duration;

    fn samples(n: usize) -> RecordBatch {
        RecordBatch::try_new(
            Signal::Samples.schema(),
            vec![
                Arc::new(TimestampMillisecondArray::from(vec![1_000; n]).with_timezone("UTC")),
                Arc::new(StringArray::from(vec!["up"; n])),
                Arc::new(build_string_map((0..n).map(|_| [("job", "api")]))),
                Arc::new(Float64Array::from(vec![1.0; n])),
                Arc::new(Int64Array::from(vec![0; n])),
                arrow::array::new_null_array(&arrow::datatypes::DataType::Binary, n),
            ],
        )
        .unwrap()
    }

    async fn open(dir: &Path, config: IngesterConfig) -> Arc<Ingester> {
        let store = Arc::new(object_store::memory::InMemory::new());
        let storage = Arc::new(Storage::open(store, "memory://".into()).await.unwrap());
        Ingester::open(&dir.join("wal"), storage, config).unwrap().0
    }

    #[tokio::test]
    async fn heads_flush_by_size_and_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let by_size = open(
            dir.path(),
            IngesterConfig {
                flush_max_bytes: 1,
                flush_max_age: Duration::from_secs(3600),
                ..IngesterConfig::default()
            },
        )
        .await;
        by_size
            .append("t", Signal::Samples, &samples(3))
            .await
            .unwrap();
        let report = by_size.flush_due().await;
        assert_eq!((report.blocks, report.rows), (1, 3));
        assert_eq!(
            by_size
                .storage()
                .manifest("t", Signal::Samples)
                .total_rows(),
            3
        );
        drop(by_size);

        let dir = tempfile::tempdir().unwrap();
        let by_age = open(
            dir.path(),
            IngesterConfig {
                flush_max_bytes: u64::MAX,
                flush_max_age: Duration::from_millis(50),
                ..IngesterConfig::default()
            },
        )
        .await;
        by_age
            .append("t", Signal::Samples, &samples(2))
            .await
            .unwrap();
        assert_eq!(by_age.flush_due().await.blocks, 0, "too young to flush");
        tokio::time::sleep(Duration::from_millis(80)).await;
        let report = by_age.flush_due().await;
        assert_eq!((report.blocks, report.rows), (1, 2));
        assert_eq!(by_age.head("t", Signal::Samples).unwrap().stats().rows, 0);
    }

    /// A head past `flush_max_bytes` is flushed at once, not at the next tick.
    #[tokio::test]
    async fn an_oversized_head_wakes_the_flush_loop() {
        let dir = tempfile::tempdir().unwrap();
        let ingester = open(
            dir.path(),
            IngesterConfig {
                flush_max_bytes: 1,
                flush_max_age: Duration::from_secs(3600),
                flush_check_interval: Duration::from_secs(3600),
                ..IngesterConfig::default()
            },
        )
        .await;
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        let flush_loop = ingester.spawn_flush_loop(shutdown);
        // The loop's first tick fires at once; wait for it to pass.
        tokio::time::sleep(Duration::from_millis(50)).await;
        ingester
            .append("t", Signal::Samples, &samples(4))
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while ingester
            .storage()
            .manifest("t", Signal::Samples)
            .total_rows()
            < 4
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the head was not flushed within 10 s although the tick is an hour away"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        flush_loop.abort();
    }

    #[test]
    fn tenant_rules() {
        assert!(validate_tenant("anonymous").is_ok());
        assert!(validate_tenant("team-a_1.prod").is_ok());
        assert!(validate_tenant("").is_err());
        assert!(validate_tenant("..").is_err());
        assert!(validate_tenant("a/b").is_err());
        assert!(validate_tenant(&"x".repeat(151)).is_err());
    }
}
