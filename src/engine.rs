//! The engine: everything a running o11ydb holds — the data-directory lock,
//! the block storage, the ingester (WAL + heads) and the DataFusion runtime
//! (memory pool, spill directory, object store registry) — and the one
//! factory every front end uses to get a tenant's SQL session.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::catalog::tables_for;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ingest::Ingester;
use crate::ingest::distributor::Distributor;
use crate::ingest::limits::LimitsRegistry;
use crate::ingest::metrics_generator::{self, exemplars::ExemplarStore};
use crate::ingest::wal::ReplayReport;
use crate::metrics::Metrics;
use crate::query::frontend::QueryFrontend;
use crate::storage::compactor::Compactor;
use crate::storage::{Storage, datafusion_store_url, open_object_store};

/// SQL shipped with the binary (views), loaded into every session.
/// (`sql/service_graph.sql` and `sql/span_metrics_window.sql` take
/// parameters: the table functions of `query::span_functions` plan them.)
const SHIPPED_SQL: [(&str, &str); 4] = [
    ("traces.sql", include_str!("../sql/traces.sql")),
    ("span_metrics.sql", include_str!("../sql/span_metrics.sql")),
    ("log_streams.sql", include_str!("../sql/log_streams.sql")),
    ("series.sql", include_str!("../sql/series.sql")),
];

pub struct Engine {
    config: Config,
    ingester: Arc<Ingester>,
    distributor: Arc<Distributor>,
    metrics: Arc<Metrics>,
    exemplars: Arc<ExemplarStore>,
    frontend: Arc<QueryFrontend>,
    compactor: Arc<Compactor>,
    runtime: Arc<RuntimeEnv>,
    /// The ruler, once started (see `crate::ruler::start`).
    ruler: std::sync::OnceLock<Arc<crate::ruler::Ruler>>,
    /// Each tenant's PromQL session (see [`Engine::promql_session`]).
    promql_sessions: std::sync::Mutex<std::collections::HashMap<String, SessionContext>>,
    _lock: File,
}

/// Tenants whose PromQL sessions are kept; past this many the kept
/// sessions are dropped and built again as tenants query.
const PROMQL_SESSIONS_KEPT: usize = 1024;

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.config.data_dir)
            .finish_non_exhaustive()
    }
}

/// What opening the engine found, for the start-up banner.
#[derive(Debug, Clone)]
pub struct OpenReport {
    pub storage: String,
    pub replay: ReplayReport,
}

/// Scratch engines opened so far by this process (their directory names).
static SCRATCH_ENGINES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Engine {
    /// An engine over a fresh directory under the system temp dir (named
    /// `<prefix>-<pid>-<n>`) with blocks in memory: for conformance runs.
    /// The caller removes the returned directory when done.
    pub async fn open_scratch(prefix: &str) -> Result<(Arc<Engine>, std::path::PathBuf)> {
        let dir = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            SCRATCH_ENGINES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let config = Config {
            data_dir: dir.clone(),
            storage: Some("memory://".into()),
            ..Config::default()
        };
        let (engine, _) = Engine::open(config).await?;
        Ok((engine, dir))
    }

    /// Locks the data directory, opens storage, replays the WAL.
    pub async fn open(config: Config) -> Result<(Arc<Engine>, OpenReport)> {
        let limits = Arc::new(LimitsRegistry::new(config.limits_config()?));
        config.metrics_generator.validate().map_err(Error::Config)?;
        config.ruler.validate().map_err(Error::Config)?;
        config.compactor.validate().map_err(Error::Config)?;
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            Error::Config(format!(
                "cannot create data directory {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let lock = lock_data_dir(&config.data_dir)?;
        let (store, description) = open_object_store(config.storage.as_deref(), &config.data_dir)?;
        let storage = Arc::new(Storage::open(store.clone(), description.clone()).await?);
        storage.set_index_cache_bytes(config.query.index_cache_size);
        storage.set_samples_cache_bytes(config.query.samples_cache_size);
        let (ingester, replay) = Ingester::open(
            &config.data_dir.join("wal"),
            storage,
            config.ingester.clone(),
        )?;

        let spill_dir = config.data_dir.join("spill");
        std::fs::create_dir_all(&spill_dir)?;
        let pool = TrackConsumersPool::new(
            FairSpillPool::new(config.query.memory_limit as usize),
            std::num::NonZeroUsize::new(5).expect("non-zero"),
        );
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(pool))
            .with_disk_manager_builder(
                DiskManagerBuilder::default()
                    .with_mode(DiskManagerMode::Directories(vec![spill_dir])),
            )
            .build_arc()?;
        runtime.register_object_store(datafusion_store_url().as_ref(), store);

        let metrics = Arc::new(Metrics::default());
        describe_self_metrics(&metrics, &ingester);
        let frontend = Arc::new(
            QueryFrontend::new(&config.query_frontend, metrics.clone()).map_err(Error::Config)?,
        );
        let compactor = Arc::new(Compactor::new(
            ingester.storage().clone(),
            limits.clone(),
            metrics.clone(),
            runtime.memory_pool.clone(),
            config.data_dir.join("compactor"),
            config.compactor.clone(),
        ));
        let distributor = Arc::new(Distributor::new(
            ingester.clone(),
            limits.clone(),
            metrics.clone(),
            config.ingester.max_head_bytes,
        ));
        let generator = &config.metrics_generator;
        let exemplars = Arc::new(ExemplarStore::new(
            generator.max_exemplars_per_series,
            generator.max_exemplar_series,
        ));
        if generator.enabled {
            distributor.set_span_sink(metrics_generator::start(
                generator,
                Arc::downgrade(&distributor),
                limits,
                metrics.clone(),
                exemplars.clone(),
            ));
        }
        Ok((
            Arc::new(Engine {
                config,
                ingester,
                distributor,
                metrics,
                exemplars,
                frontend,
                compactor,
                runtime,
                ruler: std::sync::OnceLock::new(),
                promql_sessions: Default::default(),
                _lock: lock,
            }),
            OpenReport {
                storage: description,
                replay,
            },
        ))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn ingester(&self) -> &Arc<Ingester> {
        &self.ingester
    }

    /// The gate every write passes: limits, validation counts, then the ingester.
    pub fn distributor(&self) -> &Arc<Distributor> {
        &self.distributor
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Query limits, splitting, results cache and the fair queue.
    pub fn frontend(&self) -> &Arc<QueryFrontend> {
        &self.frontend
    }

    /// The running ruler, if `[ruler]` is on and it has started.
    pub fn ruler(&self) -> Option<&Arc<crate::ruler::Ruler>> {
        self.ruler.get()
    }

    /// Records the started ruler (once) for the rules API.
    pub fn set_ruler(&self, ruler: Arc<crate::ruler::Ruler>) {
        let _ = self.ruler.set(ruler);
    }

    /// Merges blocks, applies retention, deletes replaced blocks.
    pub fn compactor(&self) -> &Arc<Compactor> {
        &self.compactor
    }

    /// Exemplars the metrics generator recorded (in memory only).
    pub fn exemplars(&self) -> &Arc<ExemplarStore> {
        &self.exemplars
    }

    /// Re-reads `[limits]` and `[overrides]` from the config file every
    /// `every` until `shutdown` fires; an invalid file is logged and ignored.
    pub fn spawn_limits_reload(
        self: &Arc<Self>,
        path: PathBuf,
        every: std::time::Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.changed() => return,
                }
                let loaded = Config::from_file(&path).and_then(|c| c.limits_config());
                match loaded {
                    Ok(limits) => {
                        let registry = this.distributor.limits();
                        if *registry.config() != limits {
                            registry.reload(limits);
                            tracing::info!(path = %path.display(), "reloaded limits and overrides");
                        }
                    }
                    Err(e) => tracing::warn!("keeping the current limits: {e}"),
                }
            }
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    /// A session with only `tenant`'s tables and the functions — no shipped
    /// views, so it is cheap to create: what LogQL, TraceQL and the ruler
    /// run in.
    pub fn tables_session(&self, tenant: &str) -> Result<SessionContext> {
        let ctx = self.functions_session(tenant)?;
        ctx.register_udtf("promql", Arc::new(self.promql_function(tenant, false)));
        ctx.register_udtf(
            "traceql",
            Arc::new(crate::query::traceql::sql_function::TraceqlFunction {
                options: self.config.query.traceql_options(),
            }),
        );
        ctx.register_udtf(
            "logql",
            Arc::new(crate::query::logql::sql_function::LogqlFunction {
                options: self.config.query.logql_options(),
            }),
        );
        ctx.register_udtf(
            "service_graph",
            Arc::new(crate::query::span_functions::ServiceGraphFunction),
        );
        ctx.register_udtf(
            "span_metrics",
            Arc::new(crate::query::span_functions::SpanMetricsFunction),
        );
        Ok(ctx)
    }

    /// The session the Prometheus HTTP API runs PromQL in: `tenant`'s
    /// tables and scalar functions, built once per tenant and shared by its
    /// queries (building one is a noticeable part of a millisecond query).
    /// Read-only: nothing may be registered in it, and it has no table
    /// functions (whose limits would go stale).
    pub fn promql_session(&self, tenant: &str) -> Result<SessionContext> {
        let mut kept = self.promql_sessions.lock().expect("sessions lock");
        if let Some(ctx) = kept.get(tenant) {
            return Ok(ctx.clone());
        }
        let ctx = self.functions_session(tenant)?;
        if kept.len() >= PROMQL_SESSIONS_KEPT {
            kept.clear();
        }
        kept.insert(tenant.to_string(), ctx.clone());
        Ok(ctx)
    }

    /// A session with `tenant`'s tables and the scalar functions.
    fn functions_session(&self, tenant: &str) -> Result<SessionContext> {
        let mut session_config = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema("datafusion", "public")
            .set_bool("datafusion.sql_parser.enable_ident_normalization", true)
            .set_bool("datafusion.sql_parser.collect_spans", true)
            .set_str("datafusion.sql_parser.dialect", "PostgreSQL")
            .set_str("datafusion.execution.time_zone", "UTC");
        if self.config.query.target_partitions > 0 {
            session_config =
                session_config.with_target_partitions(self.config.query.target_partitions);
        }
        let ctx = SessionContext::new_with_config_rt(session_config, self.runtime.clone());
        for (name, table) in tables_for(tenant, &self.distributor) {
            ctx.register_table(name, table)?;
        }
        o11ydb_udfs::register_all(&ctx);
        crate::query::histogram_functions::register(&ctx);
        Ok(ctx)
    }

    /// `promql(...)` for `tenant`'s SQL sessions: the tenant's limits, range
    /// queries split and cached by the query frontend; `within_slot` when
    /// each calling statement already holds a queue slot (pgwire, Flight SQL).
    pub fn promql_function(
        &self,
        tenant: &str,
        within_slot: bool,
    ) -> crate::query::promql::sql_function::PromqlFunction {
        let limits = self.distributor.limits().get(tenant);
        crate::query::promql::sql_function::PromqlFunction {
            options: crate::query::promql::QueryOptions {
                max_fetched_series: usize::try_from(limits.max_fetched_series_per_query)
                    .unwrap_or(usize::MAX),
                ..self.config.query.promql_options()
            },
            frontend: Some((self.frontend.clone(), tenant.to_string())),
            sharding: crate::query::frontend::sharding::ShardingLimits::of(&limits),
            within_slot,
        }
    }

    /// A new SQL session over `tenant`'s tables (and nothing else's), with
    /// the views shipped in `sql/`.
    pub async fn session(&self, tenant: &str) -> Result<SessionContext> {
        let ctx = self.tables_session(tenant)?;
        for (file, text) in SHIPPED_SQL {
            for statement in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                let body: String = statement
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join("\n");
                if body.trim().is_empty() {
                    continue;
                }
                ctx.sql(&body).await.map_err(|e| {
                    Error::Config(format!("shipped SQL sql/{file} does not load: {e}"))
                })?;
            }
        }
        Ok(ctx)
    }

    /// Sets the gauges of the WAL, heads and blocks from their current
    /// state; called before `/metrics` is rendered.
    pub fn refresh_self_metrics(&self) {
        let m = &self.metrics;
        m.set(WAL_BYTES, &[], self.ingester.wal().disk_bytes() as f64);
        for ((tenant, signal), head) in self.ingester.heads().all() {
            let stats = head.stats();
            let labels = [("tenant", tenant.as_str()), ("signal", signal.table_name())];
            m.set(HEAD_ROWS, &labels, stats.rows as f64);
            m.set(HEAD_BYTES, &labels, stats.memory_bytes() as f64);
        }
        for (tenant, series) in self.distributor.series_per_tenant() {
            m.set(MEMORY_SERIES, &[("tenant", tenant.as_str())], series as f64);
        }
        let storage = self.ingester.storage();
        let (cache_bytes, cache_entries) = storage.index_cache().usage();
        m.set(INDEX_CACHE_BYTES, &[], cache_bytes as f64);
        m.set(INDEX_CACHE_ENTRIES, &[], cache_entries as f64);
        let (samples_bytes, samples_chunks) = storage.samples_cache().usage();
        m.set(SAMPLES_CACHE_BYTES, &[], samples_bytes as f64);
        m.set(SAMPLES_CACHE_CHUNKS, &[], samples_chunks as f64);
        for tenant in storage.tenants() {
            for signal in crate::model::Signal::ALL {
                let manifest = storage.manifest(&tenant, signal);
                let labels = [("tenant", tenant.as_str()), ("signal", signal.table_name())];
                m.set(BLOCKS, &labels, manifest.blocks.len() as f64);
                m.set(BLOCK_BYTES, &labels, manifest.total_bytes() as f64);
                m.set(BLOCK_ROWS, &labels, manifest.total_rows() as f64);
            }
        }
    }

    /// Flushes every head; used at shutdown and by `POST /flush`.
    pub async fn flush(&self) -> crate::ingest::FlushReport {
        self.ingester.flush_all().await
    }
}

/// The metrics of the engine's own state (see [`Engine::refresh_self_metrics`]).
const WAL_BYTES: &str = "o11ydb_wal_disk_bytes";
const HEAD_ROWS: &str = "o11ydb_head_rows";
const HEAD_BYTES: &str = "o11ydb_head_bytes";
const MEMORY_SERIES: &str = "o11ydb_memory_series";
const BLOCKS: &str = "o11ydb_blocks";
const BLOCK_BYTES: &str = "o11ydb_block_bytes";
const BLOCK_ROWS: &str = "o11ydb_block_rows";
const INDEX_CACHE_BYTES: &str = "o11ydb_index_cache_bytes";
const INDEX_CACHE_ENTRIES: &str = "o11ydb_index_cache_entries";
const SAMPLES_CACHE_BYTES: &str = "o11ydb_samples_cache_bytes";
const SAMPLES_CACHE_CHUNKS: &str = "o11ydb_samples_cache_chunks";

fn describe_self_metrics(metrics: &Metrics, ingester: &Ingester) {
    let (fsync, written) = ingester.wal().self_metrics();
    metrics.register_histogram(
        "o11ydb_wal_fsync_duration_seconds",
        "Seconds each WAL group commit's fsync took.",
        fsync,
    );
    metrics.register_counter(
        "o11ydb_wal_written_bytes_total",
        "Bytes of records written to the WAL.",
        written,
    );
    metrics.describe_histogram(
        crate::metrics::QUERY_DURATION,
        "Seconds a query took, from arrival to its last row, by interface and language.",
        crate::metrics::LATENCY_BUCKETS,
    );
    for (name, help) in [
        (WAL_BYTES, "Bytes of WAL segments on disk."),
        (
            HEAD_ROWS,
            "Rows in the in-memory head, per tenant and signal.",
        ),
        (
            HEAD_BYTES,
            "Bytes of the in-memory head, per tenant and signal.",
        ),
        (
            MEMORY_SERIES,
            "In-memory series per tenant (counted against max_global_series_per_user).",
        ),
        (
            BLOCKS,
            "Blocks in the current manifest, per tenant and signal.",
        ),
        (
            BLOCK_BYTES,
            "Bytes of Parquet blocks, per tenant and signal.",
        ),
        (BLOCK_ROWS, "Rows in blocks, per tenant and signal."),
        (
            INDEX_CACHE_BYTES,
            "Bytes of block indexes (blooms, row indexes, label sets) held in memory ([query] index_cache_size).",
        ),
        (INDEX_CACHE_ENTRIES, "Block indexes held in memory."),
        (
            SAMPLES_CACHE_BYTES,
            "Bytes of decoded samples of samples blocks held in memory ([query] samples_cache_size).",
        ),
        (
            SAMPLES_CACHE_CHUNKS,
            "Chunks of decoded samples (up to 256 rows of one series in one block) held in memory.",
        ),
    ] {
        metrics.describe(name, "gauge", help);
    }
}

/// Takes an exclusive lock on `<data_dir>/o11ydb.lock` for the life of the process.
fn lock_data_dir(dir: &Path) -> Result<File> {
    let path: PathBuf = dir.join("o11ydb.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)?;
    if let Err(e) = file.try_lock() {
        let source = match e {
            std::fs::TryLockError::WouldBlock => std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "another process holds the lock",
            ),
            std::fs::TryLockError::Error(e) => e,
        };
        return Err(Error::Locked {
            path: dir.display().to_string(),
            lock: path.display().to_string(),
            source,
        });
    }
    use std::io::Write;
    let mut f = &file;
    let _ = f.set_len(0);
    let _ = writeln!(f, "{}", std::process::id());
    Ok(file)
}
