//! The PromQL conformance runner (`o11ydb conformance promql DIR`): each
//! Prometheus `*.test` script → [`script`] commands → a fresh in-memory
//! engine per file (and per `clear`) that `load` blocks append samples to →
//! every `eval` through [`instant_query`] / [`range_query`] → [`compare`]
//! against its expectations → one line per failing eval, a line per file
//! and a closing `N passed, M failed`.
//!
//! Script format: `/work/shared/conformance/promql/FORMAT.md`. Not done
//! here: the `@`-modifier variants of instant evals (§6.1), native histograms
//! (their values are skipped on load; an eval expecting one fails with
//! "native histograms are not stored"), the `load_with_nhcb` conversion
//! (the float series are loaded, no histogram is derived) and start
//! timestamps (`@st` lines are skipped). Expressions are not parsed when
//! the script is read; a parse error is the eval's failure.

pub mod compare;
mod nhcb;
pub mod script;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::prelude::SessionContext;
use futures::FutureExt;

use super::{PromError, QueryOptions, QueryOutput, instant_query, range_query};
use crate::engine::Engine;
use crate::model::Signal;
use crate::model::builders::{SamplesBuilder, canonical};
use crate::model::histogram::{FloatHistogram, appended_counter_reset_hint};
use crate::query::promql::functions::label;
use crate::query::promql::value::METRIC_NAME;
use script::{Command, Eval, EvalKind, Item, SeriesDef};

/// The tenant the scripts' data is loaded into.
pub const TENANT: &str = "conformance";

#[derive(Debug, thiserror::Error)]
pub enum ConformanceError {
    #[error("{file}:{source}")]
    Script {
        file: String,
        source: script::ScriptError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: engine: {source}")]
    Engine { file: String, source: crate::Error },
    #[error("no *.test file named {0:?}")]
    NoSuchFile(String),
}

/// How to run the scripts.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Check `expect warn/info/no_warn/no_info` (§6.5); off, they are ignored.
    pub check_annotations: bool,
    /// Only run the file with this name (`functions.test` or `functions`).
    pub file: Option<String>,
    /// Flush each `load` into a Parquet block (evals then read blocks
    /// through their series directories; off, they read the head).
    pub from_blocks: bool,
    pub query: QueryOptions,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            check_annotations: true,
            file: None,
            from_blocks: false,
            query: QueryOptions {
                lookback_ms: 300_000,
                default_subquery_step_ms: 60_000,
                ..QueryOptions::default()
            },
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileSummary {
    pub name: String,
    pub passed: usize,
    pub failed: usize,
    /// Failed evals whose value was right and only annotations were off
    /// (counted in `failed` when annotations are checked).
    pub annotations_only: usize,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub annotations_only: usize,
    pub files: Vec<FileSummary>,
}

/// Runs every `*.test` file of `dir` (sorted by name), writing the report to `out`.
pub async fn run_dir(
    dir: &Path,
    options: &RunOptions,
    out: &mut dyn Write,
) -> Result<Summary, ConformanceError> {
    let io = |source| ConformanceError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    files.retain(|p| p.extension().is_some_and(|e| e == "test"));
    if let Some(want) = &options.file {
        files.retain(|p| {
            p.file_name().is_some_and(|n| *n == **want)
                || p.file_stem().is_some_and(|n| *n == **want)
        });
        if files.is_empty() {
            return Err(ConformanceError::NoSuchFile(want.clone()));
        }
    }
    files.sort();
    let mut summary = Summary::default();
    for path in files {
        let file = run_file(&path, options, out).await?;
        summary.passed += file.passed;
        summary.failed += file.failed;
        summary.annotations_only += file.annotations_only;
        summary.files.push(file);
    }
    if options.check_annotations && summary.annotations_only > 0 {
        report(
            out,
            format_args!(
                "({} of the failed evals are right but for warnings/infos)",
                summary.annotations_only
            ),
        );
    }
    report(
        out,
        format_args!("{} passed, {} failed", summary.passed, summary.failed),
    );
    Ok(summary)
}

fn report(out: &mut dyn Write, line: std::fmt::Arguments<'_>) {
    // A closed pipe must not stop the run; the summary is still returned.
    let _ = writeln!(out, "{line}");
}

/// Runs one script against fresh engines.
pub async fn run_file(
    path: &Path,
    options: &RunOptions,
    out: &mut dyn Write,
) -> Result<FileSummary, ConformanceError> {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    let text = std::fs::read_to_string(path).map_err(|source| ConformanceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let commands = script::parse_script(&text).map_err(|source| ConformanceError::Script {
        file: name.clone(),
        source,
    })?;
    let engine_err = |source| ConformanceError::Engine {
        file: name.clone(),
        source,
    };
    let mut summary = FileSummary {
        name: name.clone(),
        ..FileSummary::default()
    };
    let mut store = Store::open().await.map_err(engine_err)?;
    for command in &commands {
        match command {
            Command::Clear { .. } => {
                store.close();
                store = Store::open().await.map_err(engine_err)?;
            }
            Command::Load {
                step,
                series,
                with_nhcb,
                ..
            } => {
                store
                    .load(*step, series, *with_nhcb)
                    .await
                    .map_err(engine_err)?;
                if options.from_blocks {
                    store.engine().flush().await;
                }
            }
            Command::Eval(eval) => {
                let ctx = store.session().await.map_err(engine_err)?;
                let verdict = run_eval(&ctx, eval, options).await;
                match verdict {
                    Verdict::Pass => summary.passed += 1,
                    Verdict::Fail {
                        reason,
                        annotations_only,
                    } => {
                        summary.failed += 1;
                        summary.annotations_only += usize::from(annotations_only);
                        report(
                            out,
                            format_args!("{name}:{}: {} — {reason}", eval.line, eval.expr),
                        );
                    }
                }
            }
        }
    }
    store.close();
    report(
        out,
        format_args!(
            "{name}: {} passed, {} failed",
            summary.passed, summary.failed
        ),
    );
    Ok(summary)
}

enum Verdict {
    Pass,
    Fail {
        reason: String,
        annotations_only: bool,
    },
}

fn fail(reason: impl Into<String>) -> Verdict {
    Verdict::Fail {
        reason: reason.into(),
        annotations_only: false,
    }
}

/// Runs one eval and all its checks.
async fn run_eval(ctx: &SessionContext, eval: &Eval, options: &RunOptions) -> Verdict {
    let opts = &options.query;
    let (result, t) = match eval.kind {
        EvalKind::Instant { t } => (guarded(instant_query(ctx, &eval.expr, t, opts)).await, t),
        EvalKind::Range { start, end, step } => (
            guarded(range_query(ctx, &eval.expr, start, end, step, opts)).await,
            start,
        ),
    };
    let output = match compare::check_error(eval, &result) {
        Err(reason) => return fail(reason),
        Ok(None) => return Verdict::Pass,
        Ok(Some(output)) => output,
    };
    let mut value = compare::compare_value(eval, &output.value);
    if value.is_ok() && compare::range_recheck_applies(eval) {
        let range = guarded(range_query(
            ctx,
            &eval.expr,
            t - 60_000,
            t + 60_000,
            60_000,
            opts,
        ))
        .await;
        value = compare::check_range_recheck(eval, t, &output.value, &range);
    }
    let annotations = compare::check_annotations(eval, output);
    match (value, annotations) {
        (Err(reason), _) => fail(reason),
        (Ok(()), Err(reason)) if options.check_annotations => Verdict::Fail {
            reason,
            annotations_only: true,
        },
        (Ok(()), _) => Verdict::Pass,
    }
}

/// Runs a query, turning a panic of the evaluator into an error.
async fn guarded(
    query: impl std::future::Future<Output = Result<QueryOutput, PromError>>,
) -> Result<QueryOutput, PromError> {
    match std::panic::AssertUnwindSafe(query).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(PromError::Internal(format!(
                "evaluator panicked: {message}"
            )))
        }
    }
}

/// One engine over a throw-away data directory and in-memory blocks.
struct Store {
    engine: Option<Arc<Engine>>,
    dir: PathBuf,
    session: Option<SessionContext>,
}

impl Store {
    async fn open() -> crate::Result<Store> {
        let (engine, dir) = Engine::open_scratch("o11ydb-conformance").await?;
        Ok(Store {
            engine: Some(engine),
            dir,
            session: None,
        })
    }

    fn engine(&self) -> &Arc<Engine> {
        self.engine.as_ref().expect("store is open")
    }

    /// Appends one `load` block: item i of each series at `i * step`;
    /// `load_with_nhcb` adds the custom-bucket histograms of its classic
    /// histogram families ([`nhcb::convert`]).
    async fn load(
        &mut self,
        step: i64,
        series: &[SeriesDef],
        with_nhcb: bool,
    ) -> crate::Result<()> {
        let mut builder = SamplesBuilder::new();
        for def in series {
            let metric = label(&def.labels, METRIC_NAME);
            let labels = canonical(
                def.labels
                    .iter()
                    .filter(|(n, _)| n != METRIC_NAME)
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect(),
            );
            let samples: Vec<(i64, f64)> = def
                .items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| match item {
                    Item::Value(v) => Some((i as i64 * step, *v)),
                    Item::Omitted | Item::Histogram(_) => None,
                })
                .collect();
            let mut histograms: Vec<(i64, FloatHistogram)> = def
                .items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| match item {
                    Item::Histogram(h) => Some((i as i64 * step, h.histogram.clone())),
                    Item::Omitted | Item::Value(_) => None,
                })
                .collect();
            // Hints as the upstream harness' TSDB appender sets them.
            for i in 1..histograms.len() {
                if let Some(hint) =
                    appended_counter_reset_hint(&histograms[i - 1].1, &histograms[i].1)
                {
                    histograms[i].1.counter_reset_hint = hint;
                }
            }
            if !histograms.is_empty() {
                let id = crate::model::labels::series_id(metric, &labels);
                builder.push_histograms_with_id(metric, &labels, id, &histograms);
            }
            builder.push_series(metric, &labels, &samples);
        }
        if with_nhcb {
            for (metric, labels, histograms) in nhcb::convert(series, step) {
                let labels: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                let id = crate::model::labels::series_id(&metric, &labels);
                builder.push_histograms_with_id(&metric, &labels, id, &histograms);
            }
        }
        let batch = builder.finish();
        self.engine()
            .ingester()
            .append_canonical(TENANT, Signal::Samples, &batch)
            .await?;
        self.session = None;
        Ok(())
    }

    /// The tenant's session, made once per loaded state.
    async fn session(&mut self) -> crate::Result<SessionContext> {
        if self.session.is_none() {
            self.session = Some(self.engine().tables_session(TENANT)?);
        }
        Ok(self.session.clone().expect("just made"))
    }

    /// Drops the engine (releasing the data-directory lock) and its directory.
    fn close(&mut self) {
        self.session = None;
        self.engine = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}
