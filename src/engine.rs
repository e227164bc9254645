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
    compactor: Arc<Compactor>,
    runtime: Arc<RuntimeEnv>,
    _lock: File,
}

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
                compactor,
                runtime,
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
    /// views, so it is cheap to create: what PromQL queries run in.
    pub fn tables_session(&self, tenant: &str) -> Result<SessionContext> {
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
        ctx.register_udtf(
            "promql",
            Arc::new(crate::query::promql::sql_function::PromqlFunction {
                options: self.config.query.promql_options(),
            }),
        );
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

    /// Flushes every head; used at shutdown and by `POST /flush`.
    pub async fn flush(&self) -> crate::ingest::FlushReport {
        self.ingester.flush_all().await
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
