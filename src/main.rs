//! The `o11ydb` binary: command line → [`o11ydb::Config`] → engine → servers.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use o11ydb::{Config, Engine, server};

// mimalloc for the many short-lived Arrow and protobuf buffers of ingest: in
// the remote-write benchmark it was as fast as glibc's malloc at best and
// steadier across runs (1.65–1.75 M samples/s against 1.46–1.77 M).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "o11ydb",
    version,
    about = "One observability database for logs, metrics and traces"
)]
struct Cli {
    /// Least severe log level written to stderr: error, warn, info, debug or
    /// trace (`RUST_LOG`, when set, takes precedence and may name modules).
    #[arg(long, global = true, default_value = "info", value_parser = ["error", "warn", "info", "debug", "trace"])]
    log_level: String,
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
    /// Run upstream query-language test scripts against an in-memory engine and report.
    #[command(subcommand)]
    Conformance(ConformanceCommand),
    /// Parse a file of queries, one per line prefixed `ok<TAB>` or `err<TAB>`;
    /// prints each line whose outcome differs and `N passed, M failed`
    /// (exit code 1 if any failed).
    #[command(subcommand)]
    Check(CheckCommand),
    /// Read a password from stdin (one line) and print its SCRAM-SHA-256
    /// verifier for `password_hash` in `[[users]]`.
    HashPassword,
    /// Import Parquet files into a running server over Flight SQL (bulk
    /// ingest through its distributor), with progress on stderr.
    Import(ImportArgs),
}

#[derive(clap::Args)]
struct ImportArgs {
    /// The table the rows go to.
    #[arg(long, value_parser = ["logs", "samples", "spans"])]
    table: String,
    /// The tenant (x-scope-orgid) [default: the server's default tenant].
    #[arg(long)]
    tenant: Option<String>,
    /// The server's Flight SQL address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    server: String,
    /// A user of the server's `[[users]]`; the password is read from the
    /// O11YDB_PASSWORD environment variable (as PGPASSWORD for psql).
    #[arg(long)]
    user: Option<String>,
    /// Most rows sent in one ingest call.
    #[arg(long, default_value_t = 65_536)]
    batch_rows: usize,
    /// Parquet files, imported in order; the first error stops the import.
    #[arg(required = true, value_name = "FILE.parquet")]
    files: Vec<PathBuf>,
}

#[derive(Subcommand)]
enum CheckCommand {
    /// Check LogQL queries.
    Logql(CheckArgs),
    /// Check PromQL queries.
    Promql(CheckArgs),
    /// Check TraceQL queries.
    Traceql(CheckArgs),
    /// Check rule files like `promtool check rules`: YAML, fields, names,
    /// expressions and templates; each problem with file and line (exit
    /// code 1 if any file fails).
    Rules(CheckRulesArgs),
}

#[derive(clap::Args)]
struct CheckRulesArgs {
    /// Rule files (Prometheus rule-file YAML).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Language of the expressions: promql (`[ruler] rule_path`) or logql (`loki_rule_path`).
    #[arg(long, value_enum, default_value = "promql")]
    language: RuleLanguage,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RuleLanguage {
    Promql,
    Logql,
}

#[derive(clap::Args)]
struct CheckArgs {
    /// The file of `ok`/`err` query lines (blank lines and `#` comments skipped).
    file: PathBuf,
}

#[derive(Subcommand)]
enum ConformanceCommand {
    /// Run every Prometheus promqltest `*.test` script in DIR; prints one line
    /// per failing eval and `N passed, M failed` (exit code 0 either way).
    Promql(PromqlConformanceArgs),
    /// Run every LogQL case file (`*.test`, format in tests/logql/cases/README.md)
    /// in DIR; prints each failing case and `N passed, M failed` (exit code 0 either way).
    Logql(LogqlConformanceArgs),
}

#[derive(clap::Args)]
struct LogqlConformanceArgs {
    /// Directory holding the `*.test` case files.
    dir: PathBuf,
    /// Flush each `load` into a Parquet block, so evals read blocks (and
    /// decide line filters per line template) instead of the in-memory head.
    #[arg(long)]
    from_blocks: bool,
}

#[derive(clap::Args)]
struct PromqlConformanceArgs {
    /// Directory holding the `*.test` scripts.
    dir: PathBuf,
    /// Ignore `expect warn/info/no_warn/no_info` lines.
    #[arg(long)]
    no_annotations: bool,
    /// Run only this script (`functions.test` or `functions`).
    #[arg(long, value_name = "NAME")]
    file: Option<String>,
    /// Flush each `load` into a Parquet block, so evals read blocks (through
    /// their series directories) instead of the in-memory head.
    #[arg(long)]
    from_blocks: bool,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Ingest generated samples into blocks; report bytes per sample and time an SQL aggregate.
    Samples(SamplesArgs),
    /// Flush many small blocks of samples and logs, compact once; report MB/s and bytes per row.
    Compaction(CompactionArgs),
    /// Samples over old days, one compactor run with downsampling; bytes of
    /// raw vs 5m vs 1h blocks and a long `rate` query at step 1h on each.
    Downsampling(DownsamplingArgs),
    /// Send remote-write, Loki push or OTLP load to a receiver and report items/s and MB/s.
    Ingest(IngestArgs),
    /// PromQL query latency beside Prometheus on the same data (benches/promql.sh).
    #[command(subcommand)]
    Promql(PromqlBenchCommand),
    /// Log search and LogQL query times on generated logs (benches/logql.sh adds ripgrep and DuckDB).
    #[command(subcommand)]
    Logql(LogqlBenchCommand),
    /// Trace query times on generated traces (benches/traces.sh adds DuckDB).
    #[command(subcommand)]
    Traces(TracesBenchCommand),
    /// A 7-day PromQL range query unsplit, split with a cold cache and warm (in process).
    Frontend(FrontendBenchArgs),
    /// Rule evaluation latency: N rules (mixed recording/alerting) over a
    /// generated dataset, every group evaluated once per round; p50/p99 per group and round.
    Ruler(RulerBenchArgs),
    /// Many concurrent Postgres clients running a mix of small statements
    /// against a running server (over `bench samples` data); p50/p99 latency, errors.
    PgClients(PgClientsArgs),
}

#[derive(clap::Args)]
struct PgClientsArgs {
    /// Connection string of the server, e.g. "host=127.0.0.1 port=5432 user=o11ydb".
    #[arg(long)]
    conn: String,
    /// Clients connected at once.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Statements each client runs.
    #[arg(long, default_value_t = 50)]
    statements: usize,
}

#[derive(clap::Args)]
struct FrontendBenchArgs {
    /// Jobs (scrape target groups); each target has 21 series.
    #[arg(long, default_value_t = 4)]
    jobs: usize,
    /// Instances per job.
    #[arg(long, default_value_t = 4)]
    instances: usize,
    /// Days of data and of the queried range.
    #[arg(long, default_value_t = 7)]
    days: i64,
    /// Scrape interval.
    #[arg(long, default_value = "60s", value_parser = o11ydb::config::parse_duration)]
    interval: std::time::Duration,
    /// Query step.
    #[arg(long, default_value = "5m", value_parser = o11ydb::config::parse_duration)]
    step: std::time::Duration,
    /// Timed runs of each way (medians are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct RulerBenchArgs {
    #[command(subcommand)]
    command: Option<RulerBenchCommand>,
    #[command(flatten)]
    rule_set: RuleSetArgs,
    /// Evaluation rounds (each evaluates every group once).
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Groups evaluated at the same time [default: the number of cores].
    #[arg(long)]
    concurrency: Option<usize>,
    /// Instances per job; each exposes 21 series.
    #[arg(long, default_value_t = 60)]
    instances: usize,
}

/// The generated rule file's size.
#[derive(clap::Args)]
struct RuleSetArgs {
    /// Rules in total (three in five recording, two in five alerting).
    #[arg(long, default_value_t = 1000)]
    rules: usize,
    /// Rules per group.
    #[arg(long, default_value_t = 20)]
    rules_per_group: usize,
    /// Jobs of the dataset (rules are spread over them).
    #[arg(long, default_value_t = 8)]
    jobs: usize,
}

#[derive(Subcommand)]
enum RulerBenchCommand {
    /// Only write the benchmark's rule file (Prometheus rule-file YAML).
    Rules(RulerRulesArgs),
    /// Watch o11ydb and Prometheus evaluate the same rules through their
    /// rules APIs for N rounds; compare evaluation times (benches/ruler.sh).
    Compare(RulerCompareArgs),
}

#[derive(clap::Args)]
struct RulerRulesArgs {
    #[command(flatten)]
    rule_set: RuleSetArgs,
    /// Where to write the YAML.
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
struct RulerCompareArgs {
    /// o11ydb's HTTP address.
    #[arg(long)]
    o11ydb: SocketAddr,
    /// Prometheus' HTTP address.
    #[arg(long)]
    prometheus: SocketAddr,
    /// Evaluations of every group to wait for on both sides.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// How often both rules APIs are read (shorter than the groups' interval).
    #[arg(long, default_value = "2s", value_parser = o11ydb::config::parse_duration)]
    poll: std::time::Duration,
    /// Give up after this long.
    #[arg(long, default_value = "30m", value_parser = o11ydb::config::parse_duration)]
    timeout: std::time::Duration,
    /// The data's first and last sample times (ms since the epoch), to
    /// check the evaluations against.
    #[arg(long)]
    data_start_ms: i64,
    #[arg(long)]
    data_end_ms: i64,
}

#[derive(Subcommand)]
enum TracesBenchCommand {
    /// Generate the trace set, send it to o11ydb over OTLP/HTTP, flush; report spans/s.
    Data(TracesDataArgs),
    /// Time each benchmark query over pgwire (medians) and print a table.
    Query(TracesQueryArgs),
}

/// The trace set's size and place in time (the same arguments give the same spans).
#[derive(clap::Args)]
struct TracesDatasetArgs {
    /// Spans to generate (whole traces, about).
    #[arg(long, default_value_t = 1_000_000)]
    spans: u64,
    /// Hours the traces are spread over.
    #[arg(long, default_value_t = 1)]
    hours: i64,
    /// Start time of the last trace, ns since the epoch.
    #[arg(long)]
    end_ns: i64,
}

impl TracesDatasetArgs {
    fn dataset(&self) -> o11ydb::bench::traces::TracesDataset {
        o11ydb::bench::traces::TracesDataset {
            spans: self.spans,
            hours: self.hours,
            end_ns: self.end_ns,
        }
    }
}

#[derive(clap::Args)]
struct TracesDataArgs {
    #[command(flatten)]
    dataset: TracesDatasetArgs,
    /// o11ydb's HTTP address (OTLP/HTTP `/v1/traces`, then `/flush`).
    #[arg(long)]
    push: SocketAddr,
    /// Spans per export request (whole traces, about).
    #[arg(long, default_value_t = 1024)]
    batch: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
}

#[derive(clap::Args)]
struct TracesQueryArgs {
    #[command(flatten)]
    dataset: TracesDatasetArgs,
    /// o11ydb's pgwire address.
    #[arg(long)]
    pg: SocketAddr,
    /// Timed runs per query (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

#[derive(Subcommand)]
enum LogqlBenchCommand {
    /// Generate the log set; write it as text and/or push it to o11ydb and flush.
    Data(LogqlDataArgs),
    /// Time each benchmark query over the Loki HTTP API (medians) and print a table.
    Query(LogqlQueryArgs),
}

/// The log set's size and place in time (the same arguments give the same lines).
#[derive(clap::Args)]
struct LogsDatasetArgs {
    /// Raw line bytes to generate, in MB.
    #[arg(long, default_value_t = 1024)]
    mb: u64,
    /// Hours the lines are spread over.
    #[arg(long, default_value_t = 6)]
    hours: i64,
    /// Timestamp of the last line, ns since the epoch.
    #[arg(long)]
    end_ns: i64,
}

impl LogsDatasetArgs {
    fn dataset(&self) -> o11ydb::bench::logql::LogsDataset {
        o11ydb::bench::logql::LogsDataset {
            bytes: self.mb * 1_000_000,
            hours: self.hours,
            end_ns: self.end_ns,
        }
    }
}

#[derive(clap::Args)]
struct LogqlDataArgs {
    #[command(flatten)]
    dataset: LogsDatasetArgs,
    /// Write the lines here, one per line (for ripgrep and grep).
    #[arg(long)]
    text: Option<PathBuf>,
    /// Push the lines to this o11ydb HTTP address (Loki push), then flush.
    #[arg(long)]
    push: Option<SocketAddr>,
}

#[derive(clap::Args)]
struct LogqlQueryArgs {
    #[command(flatten)]
    dataset: LogsDatasetArgs,
    /// o11ydb's HTTP address.
    #[arg(long)]
    o11ydb: SocketAddr,
    /// Timed runs per query (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

#[derive(Subcommand)]
enum PromqlBenchCommand {
    /// Generate the dataset; write it as OpenMetrics and/or remote-write it to o11ydb and flush.
    Data(PromqlDataArgs),
    /// Time each benchmark query on o11ydb and on Prometheus (medians) and print a table.
    Query(PromqlQueryArgs),
}

/// The dataset's size and place in time (the same arguments give the same data).
#[derive(clap::Args)]
struct PromqlDatasetArgs {
    /// Jobs (scrape target groups).
    #[arg(long, default_value_t = 8)]
    jobs: usize,
    /// Instances per job; each exposes 21 series.
    #[arg(long, default_value_t = 60)]
    instances: usize,
    /// Hours of data at a 15 s scrape interval.
    #[arg(long, default_value_t = 6)]
    hours: i64,
    /// Nominal time of the last scrape, ms since the epoch (a whole minute).
    #[arg(long)]
    end_ms: i64,
}

#[derive(clap::Args)]
struct PromqlDataArgs {
    #[command(flatten)]
    dataset: PromqlDatasetArgs,
    /// Write the samples as OpenMetrics text here (for promtool).
    #[arg(long)]
    openmetrics: Option<PathBuf>,
    /// Remote-write the samples to this o11ydb HTTP address, then flush.
    #[arg(long)]
    push: Option<SocketAddr>,
}

#[derive(clap::Args)]
struct PromqlQueryArgs {
    #[command(flatten)]
    dataset: PromqlDatasetArgs,
    /// o11ydb's HTTP address.
    #[arg(long)]
    o11ydb: SocketAddr,
    /// Prometheus' HTTP address.
    #[arg(long)]
    prometheus: SocketAddr,
    /// Timed runs per query and system (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Range query step.
    #[arg(long, default_value = "60s", value_parser = o11ydb::config::parse_duration)]
    step: std::time::Duration,
}

#[derive(clap::Args)]
struct IngestArgs {
    /// What to send.
    #[arg(long, value_enum, default_value = "remote-write")]
    protocol: o11ydb::bench::ingest::Protocol,
    /// Receiver address (o11ydb's HTTP port, or Prometheus with --web.enable-remote-write-receiver).
    #[arg(long)]
    target: SocketAddr,
    /// Request path [default: /api/v1/write, /loki/api/v1/push or /v1/traces].
    #[arg(long)]
    path: Option<String>,
    /// Series (remote write), streams (Loki) or traces per round (OTLP)
    /// [default: 10000, 1000, 1000].
    #[arg(long)]
    items: Option<usize>,
    /// Rounds: scrapes per series, lines per stream, batches of traces
    /// [default: 100, 2000, 200].
    #[arg(long)]
    rounds: Option<usize>,
    /// Samples, lines or spans per request (Prometheus' max_samples_per_send,
    /// Promtail's batch, the OTel SDK's max export batch) [default: 2000, 5000, 1000].
    #[arg(long)]
    per_request: Option<usize>,
    /// Concurrent connections (Prometheus' shards).
    #[arg(long, default_value_t = 8)]
    connections: usize,
}

#[derive(clap::Args)]
struct CompactionArgs {
    /// Number of series.
    #[arg(long, default_value_t = 5_000)]
    series: usize,
    /// Scrapes per series (480 × 15s = one 2h compaction window).
    #[arg(long, default_value_t = 480)]
    scrapes: usize,
    /// Scrape interval.
    #[arg(long, default_value = "15s", value_parser = o11ydb::config::parse_duration)]
    interval: std::time::Duration,
    /// Log streams.
    #[arg(long, default_value_t = 100)]
    log_streams: usize,
    /// Lines per log stream.
    #[arg(long, default_value_t = 5_000)]
    log_lines: usize,
    /// Blocks each signal is flushed into before compaction.
    #[arg(long, default_value_t = 24)]
    flushes: usize,
    /// Fresh directory for the engine's data (must not exist).
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(clap::Args)]
struct DownsamplingArgs {
    /// Number of series.
    #[arg(long, default_value_t = 500)]
    series: usize,
    /// Days of data (ending 11 days ago, so both resolutions are written).
    #[arg(long, default_value_t = 30)]
    days: usize,
    /// Scrape interval.
    #[arg(long, default_value = "60s", value_parser = o11ydb::config::parse_duration)]
    interval: std::time::Duration,
    /// Timed runs of each query (the best counts).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Fresh directory for the engine's data (must not exist).
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value_t = 1)]
    seed: u64,
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

/// Turns transparent huge pages off for this process. Ingest allocates and
/// frees many multi-megabyte buffers; with huge pages every first touch of a
/// region zeroes 2 MiB at once, which profiles showed as a third of the CPU
/// time of a remote-write load.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_THP_DISABLE) only sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// mimalloc's `purge_delay` option (`mi_option_purge_delay` in mimalloc.h,
/// the same position in its v2 and v3 option enums).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// mimalloc hands freed pages back to the OS 10 ms after they empty. Ingest
/// frees and re-allocates multi-megabyte Arrow buffers (head merges, flush
/// sorts, WAL records) faster than that, so the kernel zeroed every new
/// buffer page by page again: up to a fifth of the CPU of a sustained
/// remote-write load. A quarter second removes most of that; memory still
/// goes back to the OS once a load stops. `MIMALLOC_PURGE_DELAY` overrides.
fn keep_freed_pages_briefly() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: sets an integer option of the linked mimalloc (the global
    // allocator); any value is valid and it is read on every purge.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 250) }
}

fn main() -> anyhow::Result<()> {
    disable_transparent_huge_pages();
    keep_freed_pages_briefly();
    let cli = Cli::parse();
    // The libraries' own chatter stays at warn unless asked for by RUST_LOG.
    let quiet = match cli.log_level.as_str() {
        "error" => "error",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                format!("{},datafusion={quiet},pgwire={quiet}", cli.log_level).into()
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Command::Check(CheckCommand::Rules(args)) = &cli.command {
        use o11ydb::ruler::rules::{Language, check_files};
        let language = match args.language {
            RuleLanguage::Promql => Language::Promql,
            RuleLanguage::Logql => Language::Logql,
        };
        let report = check_files(&args.files, language);
        print!("{}", report.text);
        if !report.ok {
            std::process::exit(1);
        }
        return Ok(());
    }
    if let Command::Check(command) = &cli.command {
        return check_queries(command);
    }
    if let Command::HashPassword = &cli.command {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        let password = line.strip_suffix('\n').unwrap_or(&line);
        let password = password.strip_suffix('\r').unwrap_or(password);
        anyhow::ensure!(!password.is_empty(), "the password on stdin is empty");
        println!("{}", o11ydb::server::users::hash_password(password));
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("o11ydb")
        .build()
        .context("cannot start the async runtime")?;
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Import(args) => runtime.block_on(import(args)),
        Command::Bench(BenchCommand::Samples(args)) => runtime.block_on(bench_samples(args)),
        Command::Bench(BenchCommand::Frontend(args)) => {
            let bench = o11ydb::bench::frontend::FrontendBench {
                jobs: args.jobs,
                instances_per_job: args.instances,
                days: args.days,
                interval_ms: args.interval.as_millis() as i64,
                step_ms: args.step.as_millis() as i64,
                runs: args.runs,
            };
            let r = runtime.block_on(o11ydb::bench::frontend::run(&bench))?;
            println!(
                "{} samples in {} series, loaded and flushed in {:.1} s",
                r.samples,
                r.series,
                r.load.as_secs_f64()
            );
            let shards = o11ydb::bench::frontend::SHARDS;
            println!(
                "| query | parts | series | unsplit | split, cold cache | split, warm cache | unsplit, {shards} shards | split, {shards} shards, cold | cold ÷ unsplit | warm ÷ unsplit | sharded ÷ unsplit | split sharded ÷ cold |"
            );
            println!(
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
            );
            for t in r.timings {
                let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
                println!(
                    "| {} | {} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.2} | {:.3} | {:.2} | {:.2} |",
                    t.name,
                    t.parts,
                    t.series,
                    ms(t.unsplit),
                    ms(t.cold),
                    ms(t.warm),
                    ms(t.sharded),
                    ms(t.split_sharded),
                    ms(t.cold) / ms(t.unsplit),
                    ms(t.warm) / ms(t.unsplit),
                    ms(t.sharded) / ms(t.unsplit),
                    ms(t.split_sharded) / ms(t.cold)
                );
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Compaction(args)) => runtime.block_on(bench_compaction(args)),
        Command::Bench(BenchCommand::Downsampling(args)) => {
            runtime.block_on(bench_downsampling(args))
        }
        Command::Bench(BenchCommand::Ingest(args)) => runtime.block_on(bench_ingest(args)),
        Command::Bench(BenchCommand::PgClients(args)) => {
            let bench = o11ydb::bench::pg_clients::PgClientsBench {
                conn: args.conn,
                clients: args.clients,
                statements_per_client: args.statements,
            };
            let report = runtime.block_on(o11ydb::bench::pg_clients::run(&bench))?;
            print!("{}", report.summary());
            anyhow::ensure!(report.errors == 0, "{} statements failed", report.errors);
            Ok(())
        }
        Command::Bench(BenchCommand::Promql(PromqlBenchCommand::Data(args))) => {
            bench_promql_data(args)
        }
        Command::Bench(BenchCommand::Promql(PromqlBenchCommand::Query(args))) => {
            bench_promql_query(args)
        }
        Command::Bench(BenchCommand::Logql(LogqlBenchCommand::Data(args))) => {
            let dataset = args.dataset.dataset();
            let bytes = o11ydb::bench::logql::load(&dataset, args.text.as_deref(), args.push)?;
            println!("{bytes} bytes of log lines");
            Ok(())
        }
        Command::Bench(BenchCommand::Traces(TracesBenchCommand::Data(args))) => {
            let dataset = args.dataset.dataset();
            let r = o11ydb::bench::traces::load(&dataset, args.push, args.batch, args.connections)?;
            println!("traces\t{}", r.traces);
            println!("spans\t{}", r.spans);
            println!("requests\t{}\t{} bytes", r.requests, r.request_bytes);
            println!("ingest seconds\t{:.3}", r.ingest.as_secs_f64());
            println!("ingest spans/s\t{:.0}", r.spans_per_second());
            println!("flush seconds\t{:.3}", r.flush.as_secs_f64());
            println!("needle\t{}", dataset.needle());
            Ok(())
        }
        Command::Bench(BenchCommand::Traces(TracesBenchCommand::Query(args))) => {
            let dataset = args.dataset.dataset();
            let needle = dataset.needle();
            let conn = format!(
                "host={} port={} user=o11ydb dbname=o11ydb",
                args.pg.ip(),
                args.pg.port()
            );
            let timings =
                runtime.block_on(o11ydb::bench::traces::query(&conn, &needle, args.runs))?;
            println!("needle\t{needle}");
            for (name, median, digest) in timings {
                println!("{name}\t{:.4}\t{digest}", median.as_secs_f64());
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Logql(LogqlBenchCommand::Query(args))) => {
            let dataset = args.dataset.dataset();
            let timings = o11ydb::bench::logql::query(args.o11ydb, &dataset, args.runs)?;
            println!("needle\t{}", dataset.needle());
            for (name, median, digest) in timings {
                println!("{name}\t{:.3}\t{digest}", median.as_secs_f64());
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Ruler(args)) => runtime.block_on(bench_ruler(args)),
        Command::Conformance(ConformanceCommand::Promql(args)) => {
            runtime.block_on(conformance_promql(args))
        }
        Command::Conformance(ConformanceCommand::Logql(args)) => runtime.block_on(async move {
            let report =
                o11ydb::query::logql::conformance::run_dir(&args.dir, args.from_blocks).await?;
            for failure in &report.failures {
                println!("{failure}");
            }
            println!("{}", report.summary());
            Ok(())
        }),
        Command::Check(_) | Command::HashPassword => {
            unreachable!("handled before the runtime starts")
        }
    };
    // A query stuck in one long computation must not hold up the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    result
}

/// `o11ydb import`: each file in turn, progress lines every second and a
/// summary per file and overall on stderr.
async fn import(args: ImportArgs) -> anyhow::Result<()> {
    use o11ydb::import::{ImportOptions, connect, import_file};
    let options = ImportOptions {
        table: args.table.parse().map_err(|e| anyhow::anyhow!("{e}"))?,
        tenant: args.tenant,
        server: args.server,
        credentials: match args.user {
            Some(user) => {
                let password = std::env::var("O11YDB_PASSWORD").map_err(|_| {
                    anyhow::anyhow!("--user {user:?} needs its password in O11YDB_PASSWORD")
                })?;
                Some((user, password))
            }
            None => None,
        },
        batch_rows: args.batch_rows,
        progress_interval: std::time::Duration::from_secs(1),
    };
    let mut client = connect(&options).await?;
    let started = std::time::Instant::now();
    let (mut rows, mut bytes) = (0u64, 0u64);
    for file in &args.files {
        let done = import_file(&mut client, &options, file, &mut |p| eprintln!("{p}")).await?;
        eprintln!(
            "{}: imported {} rows ({:.1} MiB) in {} batches into {} in {:.1}s, {:.0} rows/s",
            file.display(),
            done.rows,
            done.bytes as f64 / (1024.0 * 1024.0),
            done.batches,
            args.table,
            done.elapsed.as_secs_f64(),
            done.rows_per_second()
        );
        rows += done.rows;
        bytes += done.bytes;
    }
    if args.files.len() > 1 {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "imported {rows} rows ({:.1} MiB) from {} files in {secs:.1}s, {:.0} rows/s",
            bytes as f64 / (1024.0 * 1024.0),
            args.files.len(),
            if secs > 0.0 { rows as f64 / secs } else { 0.0 }
        );
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = args.config()?;
    if args.demo {
        // The demo's traces come with their span metrics and service graph.
        config.metrics_generator.enabled = true;
    }
    let (engine, report) = Engine::open(config.clone()).await?;
    if report.replay.records > 0 {
        tracing::info!(
            records = report.replay.records,
            segments = report.replay.segments,
            "replayed the WAL"
        );
    }
    let running = server::start(engine.clone(), &config).await?;
    let ruler = o11ydb::ruler::start(&engine, running.shutdown_signal());
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
        "  promql:    http://{}   (Prometheus API for Grafana; try: promtool query instant http://{} 'up')",
        addrs.http, addrs.http
    );
    println!(
        "  otlp grpc:  {}   (OTLP/HTTP: POST /v1/traces, /v1/logs, /v1/metrics on http)",
        addrs.otlp_grpc
    );
    let flight_scheme = if config.flight.tls_cert.is_some() {
        "grpc+tls"
    } else {
        "grpc"
    };
    println!(
        "  flight:    {}   (Arrow Flight SQL; ADBC: {flight_scheme}://{})",
        addrs.flight, addrs.flight
    );
    if ruler.is_some() {
        let r = &config.ruler;
        let paths: Vec<String> = [&r.rule_path, &r.loki_rule_path]
            .into_iter()
            .flatten()
            .map(|p| p.display().to_string())
            .collect();
        println!(
            "  ruler:     {}   (GET /api/v1/rules, /api/v1/alerts; alertmanager: {})",
            paths.join(", "),
            if r.alertmanager_url.is_empty() {
                "none".to_string()
            } else {
                r.alertmanager_url.join(", ")
            }
        );
    }
    let demo = if args.demo {
        let tenant = config.pgwire.default_tenant.clone();
        println!("  demo:      loading an hour of logs, metrics and traces into tenant {tenant:?}");
        let ingester = engine.ingester().clone();
        let span_sink = engine.distributor().span_sink().cloned();
        let shutdown = running.shutdown_signal();
        Some(tokio::spawn(async move {
            if let Err(e) = o11ydb::demo::run(ingester, span_sink, tenant, shutdown).await {
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
    if let Some(r) = ruler {
        let _ = r.await;
    }
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

impl RuleSetArgs {
    fn bench(&self) -> o11ydb::bench::ruler::RulerBench {
        o11ydb::bench::ruler::RulerBench {
            rules: self.rules,
            rules_per_group: self.rules_per_group,
            rounds: 1,
            jobs: self.jobs,
            instances: 1,
            concurrency: 1,
        }
    }
}

fn bench_ruler_compare(args: RulerCompareArgs) -> anyhow::Result<()> {
    use o11ydb::bench::ruler_compare::{markdown_table, watch};
    let (ours, theirs) = watch(
        args.o11ydb,
        args.prometheus,
        args.rounds,
        args.poll,
        args.timeout,
    )
    .map_err(anyhow::Error::msg)?;
    let (a, b) = (ours.summary(args.rounds), theirs.summary(args.rounds));
    let at = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.format("%H:%M:%S%.3f").to_string())
            .unwrap_or_default()
    };
    println!(
        "data: {} to {} ({:.1} h)",
        at(args.data_start_ms),
        at(args.data_end_ms),
        (args.data_end_ms - args.data_start_ms) as f64 / 3.6e6
    );
    for (name, s) in [("o11ydb", &a), ("Prometheus", &b)] {
        println!(
            "{name}: {} groups, {} rules, {} rounds; evaluations from {} to {} ({:.1} s to {:.1} s after the data's last scrape)",
            s.groups,
            s.rules,
            args.rounds,
            at(s.first_ms),
            at(s.last_ms),
            (s.first_ms - args.data_end_ms) as f64 / 1000.0,
            (s.last_ms - args.data_end_ms) as f64 / 1000.0
        );
        let sums: Vec<String> = s
            .round_sums
            .iter()
            .map(|d| format!("{:.1}", d.as_secs_f64() * 1000.0))
            .collect();
        println!("{name} round sums ms: {}", sums.join(" "));
    }
    println!(
        "active alerts at the end: o11ydb {}, Prometheus {}",
        ours.active_alerts, theirs.active_alerts
    );
    println!("rules in health err: none on either side");
    println!();
    print!("{}", markdown_table(&a, &b));
    let first = a.first_ms.min(b.first_ms);
    anyhow::ensure!(
        first > args.data_end_ms && first - args.data_start_ms >= 3_600_000 - 15_000,
        "the data does not cover the hour before the first evaluation"
    );
    anyhow::ensure!(
        a.last_ms.max(b.last_ms) - args.data_end_ms <= 240_000,
        "the last evaluation is more than 4 minutes after the data's last scrape: \
         5 m rate windows would hold less than a minute of data (fewer rounds or a shorter interval)"
    );
    Ok(())
}

async fn bench_ruler(args: RulerBenchArgs) -> anyhow::Result<()> {
    use o11ydb::bench::ruler::{RulerBench, percentile, rule_file, run};
    match args.command {
        Some(RulerBenchCommand::Rules(r)) => {
            std::fs::write(&r.out, rule_file(&r.rule_set.bench()))?;
            println!("rules: {} written to {}", r.rule_set.rules, r.out.display());
            return Ok(());
        }
        Some(RulerBenchCommand::Compare(c)) => {
            return tokio::task::spawn_blocking(move || bench_ruler_compare(c)).await?;
        }
        None => {}
    }
    let bench = RulerBench {
        rounds: args.rounds,
        instances: args.instances,
        concurrency: args
            .concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        ..args.rule_set.bench()
    };
    let r = run(&bench).await?;
    println!("series: {}", r.series);
    println!("samples: {}", r.samples);
    println!(
        "rules: {} ({} recording, {} alerting) in {} groups",
        r.rules, r.recording, r.alerting, r.groups
    );
    println!("rounds: {}", r.round_times.len());
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    println!(
        "group_ms: p50 {:.1}  p99 {:.1}  max {:.1}",
        ms(percentile(&r.group_times, 50.0)),
        ms(percentile(&r.group_times, 99.0)),
        ms(percentile(&r.group_times, 100.0))
    );
    println!(
        "round_ms: p50 {:.1}  p99 {:.1}  max {:.1}",
        ms(percentile(&r.round_times, 50.0)),
        ms(percentile(&r.round_times, 99.0)),
        ms(percentile(&r.round_times, 100.0))
    );
    let total: f64 = r.round_times.iter().map(|d| d.as_secs_f64()).sum();
    println!(
        "rule_evaluations_per_second: {:.0}",
        (r.rules * r.round_times.len()) as f64 / total
    );
    println!("failed_evaluations: {}", r.failures);
    anyhow::ensure!(r.failures == 0, "{} rule evaluations failed", r.failures);
    Ok(())
}

async fn bench_compaction(args: CompactionArgs) -> anyhow::Result<()> {
    use o11ydb::bench::compaction::{CompactionBench, run};
    anyhow::ensure!(
        !args.dir.exists(),
        "--dir {} already exists",
        args.dir.display()
    );
    let bench = CompactionBench {
        series: args.series,
        scrapes: args.scrapes,
        interval_ms: args.interval.as_millis() as i64,
        log_streams: args.log_streams,
        log_lines: args.log_lines,
        flushes: args.flushes,
        data_dir: args.dir.clone(),
        seed: args.seed,
    };
    let f = run(&bench).await?;
    for (name, s) in [("samples", &f.samples), ("logs", &f.logs)] {
        println!("{name}_rows: {}", s.rows);
        println!("{name}_blocks: {} -> {}", s.blocks_before, s.blocks_after);
        println!("{name}_bytes: {} -> {}", s.bytes_before, s.bytes_after);
        println!(
            "{name}_bytes_per_row: {:.3} -> {:.3}",
            s.bytes_per_row_before(),
            s.bytes_per_row_after()
        );
    }
    println!("ingest_seconds: {:.2}", f.ingest.as_secs_f64());
    println!("compaction_seconds: {:.2}", f.compaction.as_secs_f64());
    println!("compaction_mb_in_per_second: {:.1}", f.mb_per_second());
    println!("compaction_rows_per_second: {:.0}", f.rows_per_second());
    println!("bytes: {} -> {}", f.bytes_in, f.bytes_out);
    Ok(())
}

async fn bench_downsampling(args: DownsamplingArgs) -> anyhow::Result<()> {
    use o11ydb::bench::downsampling::{DownsamplingBench, run};
    anyhow::ensure!(
        !args.dir.exists(),
        "--dir {} already exists",
        args.dir.display()
    );
    let f = run(&DownsamplingBench {
        series: args.series,
        days: args.days,
        interval_ms: args.interval.as_millis() as i64,
        data_dir: args.dir.clone(),
        seed: args.seed,
        runs: args.runs,
    })
    .await?;
    for (name, r) in [
        ("raw", &f.raw),
        ("5m", &f.five_minutes),
        ("1h", &f.one_hour),
    ] {
        println!(
            "{name}: blocks {} rows {} bytes {} ({:.1}x smaller than raw)",
            r.blocks,
            r.rows,
            r.bytes,
            f.raw.bytes as f64 / r.bytes.max(1) as f64
        );
    }
    println!("ingest_seconds: {:.2}", f.ingest.as_secs_f64());
    println!("compaction_seconds: {:.2}", f.compaction.as_secs_f64());
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    println!("query: {} at step 1h ({} series)", f.query, f.series);
    println!("query_raw_ms: {:.1}", ms(f.query_raw));
    println!(
        "query_5m_ms: {:.1} ({:.1}x faster)",
        ms(f.query_5m),
        ms(f.query_raw) / ms(f.query_5m)
    );
    println!(
        "query_1h_ms: {:.1} ({:.1}x faster)",
        ms(f.query_1h),
        ms(f.query_raw) / ms(f.query_1h)
    );
    Ok(())
}

async fn bench_ingest(args: IngestArgs) -> anyhow::Result<()> {
    use o11ydb::bench::ingest::{IngestBench, Protocol, run};
    let (items, rounds, per_request) = match args.protocol {
        Protocol::RemoteWrite => (10_000, 100, 2_000),
        Protocol::LokiPush => (1_000, 2_000, 5_000),
        Protocol::OtlpTraces => (1_000, 200, 1_000),
    };
    let rounds = args.rounds.unwrap_or(rounds);
    // The data ends now, so no receiver refuses it as too old or too new
    // (remote write scrapes every 15 s, Loki streams log every millisecond).
    let span_ms = match args.protocol {
        Protocol::RemoteWrite => rounds as i64 * 15_000,
        _ => rounds as i64,
    };
    let bench = IngestBench {
        protocol: args.protocol,
        addr: args.target,
        path: args
            .path
            .unwrap_or_else(|| args.protocol.default_path().to_string()),
        items: args.items.unwrap_or(items),
        rounds,
        per_request: args.per_request.unwrap_or(per_request),
        connections: args.connections,
        start_ms: chrono::Utc::now().timestamp_millis() - span_ms - 60_000,
    };
    let report = run(&bench).await?;
    let item = args.protocol.item();
    println!("{item}: {}", report.items);
    println!("payload_bytes: {}", report.payload_bytes);
    println!("requests: {}", report.requests);
    println!("request_bytes: {}", report.request_bytes);
    println!("failed_requests: {}", report.failed);
    println!("retried_requests: {}", report.retried);
    if let Some(f) = &report.first_failure {
        println!("first_failure: {}", f.trim());
    }
    println!("seconds: {:.3}", report.elapsed.as_secs_f64());
    println!("{item}_per_second: {:.0}", report.items_per_second());
    println!(
        "payload_mb_per_second: {:.1}",
        report.payload_mb_per_second()
    );
    anyhow::ensure!(report.failed == 0, "{} requests failed", report.failed);
    Ok(())
}

impl PromqlDatasetArgs {
    fn shape(&self) -> o11ydb::bench::scrape_dataset::DatasetShape {
        let scrapes = (self.hours * 240 + 1) as usize;
        o11ydb::bench::scrape_dataset::DatasetShape {
            jobs: self.jobs,
            instances_per_job: self.instances,
            start_ms: self.end_ms - (scrapes as i64 - 1) * 15_000,
            scrapes,
            interval_ms: 15_000,
            jitter_ms: 2_000,
            seed: 42,
        }
    }
}

fn bench_promql_data(args: PromqlDataArgs) -> anyhow::Result<()> {
    use o11ydb::bench::scrape_dataset::{generate, write_openmetrics};
    let shape = args.dataset.shape();
    let started = std::time::Instant::now();
    let data = generate(&shape);
    let samples: usize = data.iter().map(|s| s.points.len()).sum();
    println!(
        "dataset: {} series, {samples} samples, generated in {:.1} s",
        data.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &args.openmetrics {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        let n = write_openmetrics(&data, &mut out)?;
        std::io::Write::flush(&mut out)?;
        println!("openmetrics: {n} samples written to {}", path.display());
    }
    if let Some(addr) = args.push {
        let started = std::time::Instant::now();
        let n = o11ydb::bench::promql::load_o11ydb(addr, &data).map_err(anyhow::Error::msg)?;
        println!(
            "o11ydb: {n} samples remote-written and flushed in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn bench_promql_query(args: PromqlQueryArgs) -> anyhow::Result<()> {
    use o11ydb::bench::promql::{Shape, markdown_table, time_queries};
    let shape = args.dataset.shape();
    let step_ms = args.step.as_millis() as i64;
    // Whole-second times off the minute grid, as dashboards send them.
    let range = Shape::Range {
        start_ms: shape.start_ms + 17_000,
        end_ms: shape.end_ms() + 17_000,
        step_ms,
    };
    let instant = Shape::Instant {
        time_ms: shape.end_ms() + 17_000,
    };
    for (title, shape) in [
        (
            format!(
                "range queries over {} h, step {} s",
                args.dataset.hours,
                step_ms / 1000
            ),
            range,
        ),
        ("instant queries at the data's end".to_string(), instant),
    ] {
        let timings = time_queries(args.o11ydb, args.prometheus, shape, args.runs)
            .map_err(anyhow::Error::msg)?;
        println!("\n{title} (median of {} runs)\n", args.runs);
        print!("{}", markdown_table(&timings));
    }
    Ok(())
}

async fn conformance_promql(args: PromqlConformanceArgs) -> anyhow::Result<()> {
    use o11ydb::query::promql::conformance::{RunOptions, run_dir};
    let options = RunOptions {
        check_annotations: !args.no_annotations,
        file: args.file,
        from_blocks: args.from_blocks,
        ..RunOptions::default()
    };
    let mut out = std::io::stdout().lock();
    // Failing evals are the report, not an error: only script and I/O errors fail.
    run_dir(&args.dir, &options, &mut out).await?;
    Ok(())
}

fn check_queries(command: &CheckCommand) -> anyhow::Result<()> {
    use o11ydb::query::check::{check_logql, check_promql, check_traceql};
    let (args, check): (_, fn(&str) -> _) = match command {
        CheckCommand::Logql(args) => (args, check_logql),
        CheckCommand::Promql(args) => (args, check_promql),
        CheckCommand::Traceql(args) => (args, check_traceql),
        CheckCommand::Rules(_) => unreachable!("checked in main"),
    };
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let report = check(&text);
    print!("{}", report.render());
    if !report.ok() {
        std::process::exit(1);
    }
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
