//! The `o11ydb` binary: command line → [`o11ydb::Config`] → engine → servers.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use o11ydb::{Config, Engine, server};

#[derive(Parser)]
#[command(
    name = "o11ydb",
    version,
    about = "One observability database for logs, metrics and traces"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the database: Postgres wire and HTTP servers over local or object storage.
    Serve(ServeArgs),
    /// Benchmarks that need a whole engine (see benches/README.md).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Ingest generated samples into blocks; report bytes per sample and time an SQL aggregate.
    Samples(SamplesArgs),
    /// Send Prometheus remote-write load to a receiver and report samples/s.
    RemoteWrite(RemoteWriteArgs),
}

#[derive(clap::Args)]
struct RemoteWriteArgs {
    /// Receiver address (o11ydb's HTTP port, or Prometheus with --web.enable-remote-write-receiver).
    #[arg(long)]
    target: SocketAddr,
    /// Request path.
    #[arg(long, default_value = "/api/v1/write")]
    path: String,
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Scrapes per series to send (samples = series × scrapes).
    #[arg(long, default_value_t = 100)]
    scrapes: usize,
    /// Samples per request (Prometheus' max_samples_per_send).
    #[arg(long, default_value_t = 2_000)]
    samples_per_request: usize,
    /// Concurrent connections (Prometheus' shards).
    #[arg(long, default_value_t = 8)]
    connections: usize,
}

#[derive(clap::Args)]
struct SamplesArgs {
    /// Number of series.
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Scrapes per series (samples = series × scrapes).
    #[arg(long, default_value_t = 1_000)]
    scrapes: usize,
    /// Scrape interval.
    #[arg(long, default_value = "15s", value_parser = o11ydb::config::parse_duration)]
    interval: std::time::Duration,
    /// Data time per block (Prometheus cuts 2 h blocks).
    #[arg(long, default_value = "2h", value_parser = o11ydb::config::parse_duration)]
    block_span: std::time::Duration,
    /// Fresh directory for the engine's data (must not exist).
    #[arg(long)]
    dir: PathBuf,
    /// Also write the same samples as OpenMetrics text to this file (for promtool).
    #[arg(long)]
    openmetrics: Option<PathBuf>,
    /// SQL aggregate to time over the blocks.
    #[arg(
        long,
        default_value = "SELECT metric, count(*) AS n, avg(value) AS avg, max(value) AS max FROM samples \
                         WHERE timestamp >= '2026-01-01T01:00:00Z' GROUP BY metric ORDER BY metric"
    )]
    sql: String,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file; flags given here override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory for the WAL, the lock file and (by default) blocks [default: ./data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Object store for blocks: file:///path, s3://bucket/prefix or memory:// [default: DIR/blocks].
    #[arg(long, value_name = "URL")]
    storage: Option<String>,
    /// Postgres wire protocol address (port 0 picks a free port) [default: 127.0.0.1:5432].
    #[arg(long, value_name = "ADDR")]
    pg_listen: Option<SocketAddr>,
    /// HTTP address [default: 127.0.0.1:3100].
    #[arg(long, value_name = "ADDR")]
    http_listen: Option<SocketAddr>,
    /// Arrow Flight SQL address [default: 127.0.0.1:50051].
    #[arg(long, value_name = "ADDR")]
    flight_listen: Option<SocketAddr>,
    /// OTLP gRPC address [default: 127.0.0.1:4317].
    #[arg(long, value_name = "ADDR")]
    otlp_grpc_listen: Option<SocketAddr>,
    /// Load an hour of synthetic logs, metrics and traces and keep generating.
    #[arg(long)]
    demo: bool,
}

impl ServeArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(d) = &self.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(s) = &self.storage {
            config.storage = Some(s.clone());
        }
        if let Some(a) = self.pg_listen {
            config.server.pg_listen = a;
        }
        if let Some(a) = self.http_listen {
            config.server.http_listen = a;
        }
        if let Some(a) = self.flight_listen {
            config.server.flight_listen = a;
        }
        if let Some(a) = self.otlp_grpc_listen {
            config.server.otlp_grpc_listen = a;
        }
        Ok(config)
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,datafusion=warn,pgwire=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("o11ydb")
        .build()
        .context("cannot start the async runtime")?;
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Bench(BenchCommand::Samples(args)) => runtime.block_on(bench_samples(args)),
        Command::Bench(BenchCommand::RemoteWrite(args)) => {
            runtime.block_on(bench_remote_write(args))
        }
    };
    // A query stuck in one long computation must not hold up the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    result
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let (engine, report) = Engine::open(config.clone()).await?;
    if report.replay.records > 0 {
        tracing::info!(
            records = report.replay.records,
            segments = report.replay.segments,
            "replayed the WAL"
        );
    }
    let running = server::start(engine.clone(), &config).await?;
    let addrs = running.addrs.clone();
    println!("o11ydb {} is running", env!("CARGO_PKG_VERSION"));
    println!("  data dir:  {}", config.data_dir.display());
    println!("  storage:   {}", report.storage);
    println!(
        "  postgres:  {}   psql -h {} -p {} -U o11ydb",
        addrs.pg,
        addrs.pg.ip(),
        addrs.pg.port()
    );
    println!(
        "  http:      http://{}   (GET /ready, POST /flush)",
        addrs.http
    );
    println!(
        "  otlp grpc:  {}   (OTLP/HTTP: POST /v1/traces, /v1/logs, /v1/metrics on http)",
        addrs.otlp_grpc
    );
    println!(
        "  flight:    {} is not served by this build yet",
        config.server.flight_listen
    );
    let demo = if args.demo {
        let tenant = config.pgwire.default_tenant.clone();
        println!("  demo:      loading an hour of logs, metrics and traces into tenant {tenant:?}");
        let ingester = engine.ingester().clone();
        let shutdown = running.shutdown_signal();
        Some(tokio::spawn(async move {
            if let Err(e) = o11ydb::demo::run(ingester, tenant, shutdown).await {
                tracing::error!("demo generator stopped: {e}");
            }
        }))
    } else {
        None
    };
    use std::io::Write;
    let _ = std::io::stdout().flush();

    wait_for_shutdown().await;
    tracing::info!("shutting down");
    running.stop().await;
    if let Some(d) = demo {
        let _ = d.await;
    }
    Ok(())
}

async fn bench_samples(args: SamplesArgs) -> anyhow::Result<()> {
    use o11ydb::bench::samples::{SampleGenerator, write_openmetrics};
    use o11ydb::bench::storage::{START_MS, SamplesBench, ingest_samples, time_sql};
    anyhow::ensure!(
        !args.dir.exists(),
        "--dir {} already exists",
        args.dir.display()
    );
    let interval_ms = args.interval.as_millis() as i64;
    if let Some(path) = &args.openmetrics {
        let generator =
            SampleGenerator::new(args.series, args.scrapes, interval_ms, START_MS, args.seed);
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        let n = write_openmetrics(generator, &mut out)?;
        println!("openmetrics: {n} samples written to {}", path.display());
    }
    let bench = SamplesBench {
        series: args.series,
        scrapes: args.scrapes,
        interval_ms,
        block_span_ms: args.block_span.as_millis() as i64,
        data_dir: args.dir.clone(),
        seed: args.seed,
    };
    let (engine, report) = ingest_samples(&bench).await?;
    println!("samples: {}", report.samples);
    println!("blocks: {}", report.blocks);
    println!("block_bytes: {}", report.block_bytes);
    println!("index_bytes: {}", report.index_bytes);
    println!("bytes_per_sample: {:.3}", report.bytes_per_sample());
    println!(
        "ingest_samples_per_second: {:.0}",
        report.samples as f64 / report.ingest.as_secs_f64()
    );
    println!("blocks_dir: {}", report.blocks_dir.display());
    let (best, rendered) = time_sql(&engine, &args.sql, 5).await?;
    println!("sql: {}", args.sql);
    println!("sql_best_seconds: {:.4}", best.as_secs_f64());
    println!("{rendered}");
    Ok(())
}

async fn bench_remote_write(args: RemoteWriteArgs) -> anyhow::Result<()> {
    use o11ydb::bench::ingest::{RemoteWriteBench, run_remote_write};
    // The data ends now, so no receiver refuses it as too old or too new.
    let start_ms = chrono::Utc::now().timestamp_millis() - args.scrapes as i64 * 15_000;
    let bench = RemoteWriteBench {
        addr: args.target,
        path: args.path,
        series: args.series,
        scrapes: args.scrapes,
        samples_per_request: args.samples_per_request,
        connections: args.connections,
        start_ms,
    };
    let report = run_remote_write(&bench).await?;
    println!("samples: {}", report.samples);
    println!("requests: {}", report.requests);
    println!("request_bytes: {}", report.request_bytes);
    println!("failed_requests: {}", report.failed);
    if let Some(f) = &report.first_failure {
        println!("first_failure: {}", f.trim());
    }
    println!("seconds: {:.3}", report.elapsed.as_secs_f64());
    println!("samples_per_second: {:.0}", report.samples_per_second());
    anyhow::ensure!(report.failed == 0, "{} requests failed", report.failed);
    Ok(())
}

async fn wait_for_shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
