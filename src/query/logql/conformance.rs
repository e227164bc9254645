//! The LogQL conformance runner: case files in the format of
//! `tests/logql/cases/README.md` (`load` blocks of log lines, `eval` of a log
//! or metric query, the expected streams or series) run against a real
//! engine — one per file and per `clear`, the lines appended through the
//! ingester into a throw-away store — and compared with what the query
//! returns. Used by `o11ydb conformance logql DIR` and the test suite.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::prelude::SessionContext;

use super::{Direction, LogqlOptions, LogqlValue};
use crate::engine::Engine;
use crate::model::Signal;
use crate::model::builders::{LogLine, LogsBuilder};
use crate::model::labels::canonical_pairs;
use crate::query::promql::QueryValue;
use crate::query::promql::value::format_float;

/// Label pairs as a script writes them (stream labels, structured metadata).
type Pairs = Vec<(String, String)>;

const TENANT: &str = "conformance";

/// Outcome of a run: counts and one line per failing case.
#[derive(Debug, Default)]
pub struct Report {
    pub passed: usize,
    pub failed: usize,
    pub failures: Vec<String>,
}

impl Report {
    pub fn summary(&self) -> String {
        format!("{} passed, {} failed", self.passed, self.failed)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Logs {
        start: i64,
        end: i64,
        limit: usize,
        direction: Direction,
        interval: i64,
    },
    Instant {
        time: i64,
    },
    Range {
        start: i64,
        end: i64,
        step: i64,
    },
    Error,
}

#[derive(Debug)]
enum Expect {
    Lines(Vec<String>),
    Empty,
    Error(String),
}

#[derive(Debug)]
struct Case {
    line: usize,
    kind: Kind,
    query: String,
    expect: Expect,
}

#[derive(Debug)]
enum Command {
    Load {
        labels: Pairs,
        metadata: Pairs,
        entries: Vec<(i64, String)>,
    },
    Clear,
    Eval(Case),
}

/// Runs every `*.test` file of `dir` (sorted by name); with `from_blocks`
/// each `load` is flushed into a block, so cases read blocks, not the head.
pub async fn run_dir(dir: &Path, from_blocks: bool) -> std::io::Result<Report> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    let mut report = Report::default();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        run_file(&name, &text, from_blocks, &mut report).await;
    }
    Ok(report)
}

/// Runs one case file, adding its outcome to `report`.
pub async fn run_file(name: &str, text: &str, from_blocks: bool, report: &mut Report) {
    let commands = match parse_file(text) {
        Ok(c) => c,
        Err((line, message)) => {
            report.failed += 1;
            report
                .failures
                .push(format!("{name}:{line}: cannot read the file: {message}"));
            return;
        }
    };
    let mut store: Option<Store> = None;
    for command in commands {
        match command {
            Command::Clear => store = None,
            Command::Load {
                labels,
                metadata,
                entries,
            } => {
                if !ensure_store(&mut store, name, report).await {
                    return;
                }
                if let Some(s) = store.as_mut()
                    && let Err(e) = s.load(&labels, &metadata, &entries, from_blocks).await
                {
                    report.failed += 1;
                    report.failures.push(format!("{name}: load: {e}"));
                    return;
                }
            }
            Command::Eval(case) => {
                if !ensure_store(&mut store, name, report).await {
                    return;
                }
                let Some(s) = store.as_mut() else { return };
                match s.check(&case).await {
                    Ok(()) => report.passed += 1,
                    Err(why) => {
                        report.failed += 1;
                        report.failures.push(format!(
                            "{name}:{}: {}\n    {}",
                            case.line,
                            case.query,
                            why.replace('\n', "\n    ")
                        ));
                    }
                }
            }
        }
    }
}

/// Opens the file's store if none is open; false (and a failure counted)
/// when the engine cannot start.
async fn ensure_store(store: &mut Option<Store>, name: &str, report: &mut Report) -> bool {
    if store.is_none() {
        match Store::open().await {
            Ok(s) => *store = Some(s),
            Err(e) => {
                report.failed += 1;
                report.failures.push(format!("{name}: engine: {e}"));
                return false;
            }
        }
    }
    true
}

// ------------------------------------------------------------------ reading

fn parse_file(text: &str) -> Result<Vec<Command>, (usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let indented = |l: &str| l.starts_with(' ') || l.starts_with('\t');
    let skip = |l: &str| l.trim().is_empty() || l.trim_start().starts_with('#');
    while i < lines.len() {
        let line = lines[i];
        if skip(line) {
            i += 1;
            continue;
        }
        let at = i + 1;
        let trimmed = line.trim();
        if trimmed == "clear" {
            out.push(Command::Clear);
            i += 1;
        } else if let Some(rest) = trimmed.strip_prefix("load ") {
            let (labels, rest) = parse_labels(rest.trim()).map_err(|e| (at, e))?;
            let metadata = if rest.trim().is_empty() {
                Vec::new()
            } else {
                parse_labels(rest.trim()).map_err(|e| (at, e))?.0
            };
            i += 1;
            let mut entries = Vec::new();
            while i < lines.len() && (indented(lines[i]) || skip(lines[i])) {
                let l = lines[i];
                i += 1;
                if skip(l) && !l.trim_start().starts_with(|c: char| c.is_ascii_digit()) {
                    continue;
                }
                let l = l.trim_start().trim_end();
                let (ts, line) = l.split_once(' ').unwrap_or((l, ""));
                let ts = parse_seconds(ts).map_err(|e| (i, e))?;
                entries.push((ts, line.to_string()));
            }
            out.push(Command::Load {
                labels,
                metadata,
                entries,
            });
        } else if let Some(rest) = trimmed.strip_prefix("eval") {
            let kind = parse_kind(rest.trim()).map_err(|e| (at, e))?;
            i += 1;
            let mut query = Vec::new();
            while i < lines.len() && !lines[i].trim().starts_with("expect") {
                if !skip(lines[i]) {
                    query.push(lines[i].trim());
                }
                i += 1;
            }
            if i >= lines.len() {
                return Err((at, "eval without expect".into()));
            }
            let header = lines[i].trim();
            i += 1;
            let expect = if header == "expect empty" {
                Expect::Empty
            } else if let Some(rest) = header.strip_prefix("expect error") {
                Expect::Error(rest.trim().to_string())
            } else if header == "expect" {
                let mut expected = Vec::new();
                while i < lines.len() && (indented(lines[i]) || skip(lines[i])) {
                    if !skip(lines[i]) {
                        expected.push(lines[i].trim().to_string());
                    }
                    i += 1;
                }
                Expect::Lines(expected)
            } else {
                return Err((i, format!("unknown expectation {header:?}")));
            };
            out.push(Command::Eval(Case {
                line: at,
                kind,
                query: query.join(" "),
                expect,
            }));
        } else {
            return Err((at, format!("unknown command {trimmed:?}")));
        }
    }
    Ok(out)
}

fn parse_kind(text: &str) -> Result<Kind, String> {
    let mut words = text.split_whitespace();
    let kind = words.next().unwrap_or("");
    let mut params = std::collections::HashMap::new();
    for w in words {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| format!("parameter {w:?} is not key=value"))?;
        params.insert(k.to_string(), v.to_string());
    }
    let seconds = |name: &str, default: i64| -> Result<i64, String> {
        params
            .get(name)
            .map(|v| parse_seconds(v))
            .unwrap_or(Ok(default))
    };
    Ok(match kind {
        "logs" => Kind::Logs {
            start: seconds("start", 0)?,
            end: seconds("end", 3_600_000_000_000)?,
            limit: params
                .get("limit")
                .map(|v| v.parse().map_err(|_| format!("bad limit {v:?}")))
                .unwrap_or(Ok(100))?,
            direction: match params.get("direction") {
                Some(d) => d.parse().map_err(|e: super::LogqlError| e.to_string())?,
                None => Direction::Backward,
            },
            interval: seconds("interval", 0)?,
        },
        "instant" => Kind::Instant {
            time: seconds("time", 0)?,
        },
        "range" => Kind::Range {
            start: seconds("start", 0)?,
            end: seconds("end", 0)?,
            step: seconds("step", 60_000_000_000)?,
        },
        "error" => Kind::Error,
        other => return Err(format!("unknown eval kind {other:?}")),
    })
}

/// Decimal seconds → nanoseconds, exactly.
fn parse_seconds(text: &str) -> Result<i64, String> {
    let bad = || format!("bad seconds {text:?}");
    let (neg, t) = match text.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, text),
    };
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if frac.len() > 9 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    let frac: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    let ns = whole * 1_000_000_000 + frac;
    Ok(if neg { -ns } else { ns })
}

/// `{a="x", b="y"}` → sorted pairs and the rest of the text.
fn parse_labels(text: &str) -> Result<(Pairs, &str), String> {
    let body = text
        .strip_prefix('{')
        .ok_or_else(|| format!("expected a label set, got {text:?}"))?;
    let mut labels = Vec::new();
    let mut rest = body.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            labels.sort();
            return Ok((labels, after));
        }
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("label without value in {text:?}"))?;
        let name = rest[..eq].trim().to_string();
        let after = rest[eq + 1..].trim_start();
        let quoted = after
            .strip_prefix('"')
            .ok_or_else(|| format!("label value must be quoted in {text:?}"))?;
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, 't')) => value.push('\t'),
                    Some((_, other)) => value.push(other),
                    None => break,
                },
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.ok_or_else(|| format!("unterminated label value in {text:?}"))?;
        labels.push((name, value));
        rest = quoted[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
}

fn labels_text(labels: &[(String, String)]) -> String {
    super::metric::labels_text(labels)
}

// ------------------------------------------------------------------ running

/// One engine over a throw-away data directory and in-memory blocks.
struct Store {
    engine: Arc<Engine>,
    dir: PathBuf,
    session: Option<SessionContext>,
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Store {
    async fn open() -> crate::Result<Store> {
        let (engine, dir) = Engine::open_scratch("o11ydb-logql-conformance").await?;
        Ok(Store {
            engine,
            dir,
            session: None,
        })
    }

    async fn load(
        &mut self,
        labels: &Pairs,
        metadata: &Pairs,
        entries: &[(i64, String)],
        to_block: bool,
    ) -> crate::Result<()> {
        let labels = canonical_pairs(labels.clone());
        let stream_id = LogsBuilder::stream_id(&labels);
        let metadata = canonical_pairs(metadata.clone());
        let mut builder = LogsBuilder::new();
        for (ts, line) in entries {
            builder.push(
                &labels,
                stream_id,
                &LogLine {
                    timestamp_ns: *ts,
                    line,
                    metadata: &metadata,
                    severity: None,
                    trace_id: None,
                    span_id: None,
                },
            );
        }
        let batch = builder.finish();
        self.engine
            .ingester()
            .append_canonical(TENANT, Signal::Logs, &batch)
            .await?;
        if to_block {
            self.engine.flush().await;
        }
        self.session = None;
        Ok(())
    }

    async fn session(&mut self) -> Result<SessionContext, String> {
        if self.session.is_none() {
            self.session = Some(
                self.engine
                    .tables_session(TENANT)
                    .map_err(|e| e.to_string())?,
            );
        }
        Ok(self.session.clone().expect("just made"))
    }

    async fn check(&mut self, case: &Case) -> Result<(), String> {
        let ctx = self.session().await?;
        let options = LogqlOptions::default();
        let result = run_case(&ctx, case, &options).await;
        match (&case.expect, result) {
            (Expect::Error(needle), Err(message)) => {
                if message.contains(needle.as_str()) {
                    Ok(())
                } else {
                    Err(format!("error {message:?} does not contain {needle:?}"))
                }
            }
            (Expect::Error(_), Ok(got)) => {
                Err(format!("expected an error, got:\n{}", got.join("\n")))
            }
            (_, Err(message)) => Err(format!("unexpected error: {message}")),
            (Expect::Empty, Ok(got)) => {
                if got.is_empty() {
                    Ok(())
                } else {
                    Err(format!("expected nothing, got:\n{}", got.join("\n")))
                }
            }
            (Expect::Lines(expected), Ok(got)) => {
                let expected = normalise_expected(&case.kind, expected)?;
                if outputs_equal(&expected, &got) {
                    Ok(())
                } else {
                    Err(format!(
                        "expected:\n{}\ngot:\n{}",
                        expected.join("\n"),
                        got.join("\n")
                    ))
                }
            }
        }
    }
}

/// The query's result as canonical text lines (see [`normalise_expected`]).
async fn run_case(
    ctx: &SessionContext,
    case: &Case,
    options: &LogqlOptions,
) -> Result<Vec<String>, String> {
    let expr = super::parse(&case.query).map_err(|e| e.to_string())?;
    let value = match case.kind {
        Kind::Logs {
            start,
            end,
            limit,
            direction,
            interval,
        } => super::query_range(
            ctx,
            &case.query,
            &expr,
            &super::RangeRequest {
                start_ns: start,
                end_ns: end,
                step_ns: 1_000_000_000,
                limit,
                direction,
                interval_ns: interval,
            },
            options,
        )
        .await
        .map_err(|e| e.to_string())?,
        Kind::Instant { time } => super::instant_query(ctx, &case.query, &expr, time, options)
            .await
            .map_err(|e| e.to_string())?,
        Kind::Range { start, end, step } => super::query_range(
            ctx,
            &case.query,
            &expr,
            &super::RangeRequest {
                start_ns: start,
                end_ns: end,
                step_ns: step,
                limit: 100,
                direction: Direction::Backward,
                interval_ns: 0,
            },
            options,
        )
        .await
        .map_err(|e| e.to_string())?,
        Kind::Error => {
            let hour = 3_600_000_000_000;
            super::query_range(
                ctx,
                &case.query,
                &expr,
                &super::RangeRequest {
                    start_ns: 0,
                    end_ns: hour,
                    step_ns: 60_000_000_000,
                    limit: 100,
                    direction: Direction::Backward,
                    interval_ns: 0,
                },
                options,
            )
            .await
            .map_err(|e| e.to_string())?
        }
    };
    Ok(match value {
        LogqlValue::Streams(streams) => {
            let backward = !matches!(
                case.kind,
                Kind::Logs {
                    direction: Direction::Forward,
                    ..
                }
            );
            let mut rows: Vec<(i64, String, String)> = streams
                .iter()
                .flat_map(|s| {
                    let labels = labels_text(&s.labels);
                    s.entries
                        .iter()
                        .map(move |e| (e.timestamp_ns, labels.clone(), e.line.clone()))
                })
                .collect();
            sort_entries(&mut rows, backward);
            rows.into_iter()
                .map(|(t, l, line)| format!("{l} {} {line}", seconds_text(t)))
                .collect()
        }
        LogqlValue::Metric(QueryValue::Scalar { value, .. }) => {
            vec![format!("scalar {}", format_float(value))]
        }
        LogqlValue::Metric(QueryValue::Vector(samples)) => {
            let mut out: Vec<String> = samples
                .iter()
                .map(|s| format!("{} {}", labels_text(&s.labels), format_float(s.value)))
                .collect();
            if !case.query.contains("sort")
                && !case.query.contains("topk")
                && !case.query.contains("bottomk")
            {
                out.sort();
            }
            out
        }
        LogqlValue::Metric(QueryValue::Matrix(series)) => {
            let Kind::Range { start, end, step } = case.kind else {
                return Ok(series.iter().map(|s| labels_text(&s.labels)).collect());
            };
            let steps = ((end - start) / step + 1) as usize;
            let mut out: Vec<String> = series
                .iter()
                .map(|s| {
                    let mut values = vec!["_".to_string(); steps];
                    for &(t, v) in &s.points {
                        let i = ((t * 1_000_000 - start) / step) as usize;
                        if i < steps {
                            values[i] = format_float(v);
                        }
                    }
                    format!("{} {}", labels_text(&s.labels), values.join(" "))
                })
                .collect();
            out.sort();
            out
        }
        LogqlValue::Metric(QueryValue::String { value, .. }) => vec![format!("string {value}")],
    })
}

fn sort_entries(rows: &mut [(i64, String, String)], backward: bool) {
    rows.sort_by(|a, b| {
        let by_time = if backward {
            b.0.cmp(&a.0)
        } else {
            a.0.cmp(&b.0)
        };
        by_time
            .then_with(|| a.1.cmp(&b.1))
            .then_with(|| a.2.cmp(&b.2))
    });
}

fn seconds_text(ns: i64) -> String {
    let whole = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    if frac == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{}", format!("{frac:09}").trim_end_matches('0'))
    }
}

/// Expected lines in the canonical form [`run_case`] prints: label sets
/// re-rendered sorted, timestamps and numbers normalised, entries and
/// unsorted series ordered the same way.
fn normalise_expected(kind: &Kind, expected: &[String]) -> Result<Vec<String>, String> {
    match kind {
        Kind::Logs { direction, .. } => {
            let mut rows = Vec::new();
            for line in expected {
                let (labels, rest) = parse_labels(line)?;
                let rest = rest.trim_start();
                let (ts, text) = rest.split_once(' ').unwrap_or((rest, ""));
                rows.push((parse_seconds(ts)?, labels_text(&labels), text.to_string()));
            }
            sort_entries(&mut rows, *direction == Direction::Backward);
            Ok(rows
                .into_iter()
                .map(|(t, l, line)| format!("{l} {} {line}", seconds_text(t)))
                .collect())
        }
        _ => {
            let mut out = Vec::new();
            for line in expected {
                if let Some(values) = line.strip_prefix("scalar ") {
                    out.push(format!("scalar {}", normalise_values(values)?));
                    continue;
                }
                let (labels, rest) = parse_labels(line)?;
                out.push(format!(
                    "{} {}",
                    labels_text(&labels),
                    normalise_values(rest)?
                ));
            }
            Ok(out)
        }
    }
}

fn normalise_values(text: &str) -> Result<String, String> {
    text.split_whitespace()
        .map(|v| {
            if v == "_" {
                Ok("_".to_string())
            } else {
                super::pipeline::parse_go_float(v)
                    .map(format_float)
                    .ok_or_else(|| format!("bad value {v:?}"))
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|v| v.join(" "))
}

/// Equal line by line, numbers within a relative 1e-6; metric lines in any
/// order unless both sides are ordered the same.
fn outputs_equal(expected: &[String], got: &[String]) -> bool {
    if expected.len() != got.len() {
        return false;
    }
    let same = |a: &[String], b: &[String]| a.iter().zip(b).all(|(x, y)| line_equal(x, y));
    if same(expected, got) {
        return true;
    }
    let mut e = expected.to_vec();
    let mut g = got.to_vec();
    e.sort();
    g.sort();
    same(&e, &g)
}

fn line_equal(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    // Compare the trailing numbers with a tolerance.
    let split = |s: &str| -> (String, Vec<String>) {
        match s.rfind('}') {
            Some(i) => (
                s[..=i].to_string(),
                s[i + 1..].split_whitespace().map(str::to_string).collect(),
            ),
            None => (
                String::new(),
                s.split_whitespace().map(str::to_string).collect(),
            ),
        }
    };
    let (la, va) = split(a);
    let (lb, vb) = split(b);
    la == lb
        && va.len() == vb.len()
        && va.iter().zip(&vb).all(|(x, y)| {
            if x == y {
                return true;
            }
            match (
                super::pipeline::parse_go_float(x),
                super::pipeline::parse_go_float(y),
            ) {
                (Some(p), Some(q)) => {
                    (p.is_nan() && q.is_nan())
                        || p == q
                        || (p - q).abs() <= 1e-6 * p.abs().max(q.abs())
                }
                _ => false,
            }
        })
}
