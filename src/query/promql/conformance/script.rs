//! A promqltest script (`*.test`) → commands: `clear`, `load` blocks of
//! series with expanded values, and `eval`s with their expectations
//! (`/work/shared/conformance/promql/FORMAT.md` §2–§5). Native histogram
//! literals are parsed only far enough to be skipped; `@st` lines are ignored.

use std::sync::LazyLock;

use promql_parser::label::MatchOp;
use promql_parser::parser::Expr;
use regex::Regex;

use crate::model::STALE_NAN_BITS;
use crate::model::histogram::FloatHistogram;

mod lex;
use crate::query::promql::value::{Labels, METRIC_NAME, sort_labels};
pub use lex::{parse_duration, parse_number, parse_values, unquote};

/// A script that does not follow the format, with its 1-based line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ScriptError {
    pub line: usize,
    pub message: String,
}

fn err<T>(line: usize, message: impl Into<String>) -> Result<T, ScriptError> {
    Err(ScriptError {
        line,
        message: message.into(),
    })
}

/// One position of an expanded value sequence.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Value(f64),
    /// `_`: time advances, nothing is stored or expected.
    Omitted,
    /// A native histogram literal (`{{…}}`).
    Histogram(Box<TestHistogram>),
}

/// A native histogram of a script, and whether its counter reset hint was
/// written out (only then is it compared, §6.4).
#[derive(Debug, Clone, PartialEq)]
pub struct TestHistogram {
    pub histogram: FloatHistogram,
    pub hint_given: bool,
}

/// A label set with its values, from a `load` body or an `eval` body.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesDef {
    /// Sorted by name, `__name__` included when given.
    pub labels: Labels,
    pub items: Vec<Item>,
    pub line: usize,
}

/// How an error or annotation text must look.
#[derive(Debug, Clone)]
pub enum TextMatch {
    Any,
    /// Exact equality with the whole text.
    Msg(String),
    /// Unanchored search.
    Regex(Regex),
}

impl TextMatch {
    pub fn matches(&self, text: &str) -> bool {
        match self {
            TextMatch::Any => true,
            TextMatch::Msg(m) => m == text,
            TextMatch::Regex(r) => r.is_match(text),
        }
    }
}

impl std::fmt::Display for TextMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TextMatch::Any => write!(f, "any"),
            TextMatch::Msg(m) => write!(f, "msg:{m}"),
            TextMatch::Regex(r) => write!(f, "regex:{}", r.as_str()),
        }
    }
}

/// The `expect …` lines (and deprecated header variants) of one eval.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    /// The query must fail; every matcher must match the error text.
    pub fail: Option<Vec<TextMatch>>,
    pub ordered: bool,
    /// `expect warn` lines (`eval_warn` adds one `Any`).
    pub warn: Vec<TextMatch>,
    pub no_warn: bool,
    pub info: Vec<TextMatch>,
    pub no_info: bool,
    /// `expect range vector from a to b step s` (ms).
    pub range_vector: Option<(i64, i64, i64)>,
}

/// What an eval's result must be.
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    /// No series and no scalar line: an empty vector or matrix.
    Empty,
    Scalar(f64),
    String(String),
    /// In the order they were written (position = index + 1).
    Series(Vec<SeriesDef>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EvalKind {
    Instant { t: i64 },
    Range { start: i64, end: i64, step: i64 },
}

#[derive(Debug, Clone)]
pub struct Eval {
    /// Line of the `eval` header.
    pub line: usize,
    pub kind: EvalKind,
    pub expr: String,
    pub expect: Expectations,
    pub expected: Expected,
}

impl Eval {
    /// Whether any expected value is a native histogram.
    pub fn expects_histograms(&self) -> bool {
        matches!(&self.expected, Expected::Series(s)
            if s.iter().any(|d| d.items.iter().any(|i| matches!(i, Item::Histogram(_)))))
    }
}

#[derive(Debug, Clone)]
pub enum Command {
    Clear {
        line: usize,
    },
    Load {
        line: usize,
        step: i64,
        with_nhcb: bool,
        series: Vec<SeriesDef>,
    },
    Eval(Eval),
}

/// The staleness marker as a value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

static LOAD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^load(?:_(with_nhcb))?\s+(.+?)$").unwrap());
static EVAL_INSTANT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$").unwrap()
});
static EVAL_RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$",
    )
    .unwrap()
});
static EXPECT_RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^expect range vector\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+)$").unwrap()
});
static EXPECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^expect\s+(ordered|fail|warn|no_warn|info|no_info)(?:\s+(regex|msg):(.+))?$")
        .unwrap()
});
/// Parses a whole script.
pub fn parse_script(text: &str) -> Result<Vec<Command>, ScriptError> {
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| {
            let l = l.trim();
            if l.starts_with('#') { "" } else { l }
        })
        .collect();
    let mut commands = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.is_empty() {
            i += 1;
            continue;
        }
        let keyword = l
            .split([' ', '\t'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if keyword == "clear" {
            commands.push(Command::Clear { line: i + 1 });
            i += 1;
        } else if keyword.starts_with("load") {
            let (next, cmd) = parse_load(&lines, i)?;
            commands.push(cmd);
            i = next;
        } else if keyword.starts_with("eval") {
            let (next, cmd) = parse_eval(&lines, i)?;
            commands.push(Command::Eval(cmd));
            i = next;
        } else {
            return err(i + 1, format!("invalid command {l:?}"));
        }
    }
    Ok(commands)
}

/// Parses the `load` block at `lines[i]`; returns the index after it.
fn parse_load(lines: &[&str], i: usize) -> Result<(usize, Command), ScriptError> {
    let line = i + 1;
    let Some(caps) = LOAD.captures(lines[i]) else {
        return err(line, format!("invalid load command {:?}", lines[i]));
    };
    let with_nhcb = caps.get(1).is_some();
    let step_text = &caps[2];
    let step = parse_duration(step_text).ok_or_else(|| ScriptError {
        line,
        message: format!("invalid step {step_text:?}"),
    })?;
    let mut series: Vec<SeriesDef> = Vec::new();
    let mut j = i + 1;
    while j < lines.len() && !lines[j].is_empty() {
        let (selector, rest) = split_selector(lines[j], j + 1)?;
        if rest.starts_with("@st") {
            // Start timestamps: o11ydb does not store them.
            j += 1;
            continue;
        }
        let def = SeriesDef {
            labels: parse_labels(selector, j + 1)?,
            items: parse_values(rest, j + 1)?,
            line: j + 1,
        };
        // A later definition of the same label set replaces the earlier one.
        series.retain(|s| s.labels != def.labels);
        series.push(def);
        j += 1;
    }
    Ok((
        j,
        Command::Load {
            line,
            step,
            with_nhcb,
            series,
        },
    ))
}

fn duration_at(text: &str, line: usize, what: &str) -> Result<i64, ScriptError> {
    parse_duration(text.trim()).ok_or_else(|| ScriptError {
        line,
        message: format!("invalid {what} {text:?}"),
    })
}

/// Parses the `eval` block at `lines[i]`; returns the index after it.
fn parse_eval(lines: &[&str], i: usize) -> Result<(usize, Eval), ScriptError> {
    let line = i + 1;
    let header = lines[i];
    let mut expect = Expectations::default();
    let (kind, expr, modifier) = if let Some(c) = EVAL_INSTANT.captures(header) {
        let Some(at) = c.get(2) else {
            return err(line, "instant eval without `at <time>`");
        };
        let t = duration_at(at.as_str(), line, "time")?;
        (
            EvalKind::Instant { t },
            c[3].to_string(),
            c.get(1).map(|m| m.as_str().to_string()),
        )
    } else if let Some(c) = EVAL_RANGE.captures(header) {
        let start = duration_at(&c[2], line, "start")?;
        let end = duration_at(&c[3], line, "end")?;
        let step = duration_at(&c[4], line, "step")?;
        if end < start {
            return err(line, "end time is before start time");
        }
        if step <= 0 {
            return err(line, "step must be positive");
        }
        (
            EvalKind::Range { start, end, step },
            c[5].to_string(),
            c.get(1).map(|m| m.as_str().to_string()),
        )
    } else {
        return err(line, format!("invalid eval command {header:?}"));
    };
    match modifier.as_deref() {
        Some("fail") => expect.fail = Some(Vec::new()),
        Some("warn") => expect.warn.push(TextMatch::Any),
        Some("info") => expect.info.push(TextMatch::Any),
        Some("ordered") => expect.ordered = true,
        _ => {}
    }
    let mut expected: Option<Expected> = None;
    let mut series: Vec<SeriesDef> = Vec::new();
    let mut kind = kind;
    let mut j = i + 1;
    while j < lines.len() && !lines[j].is_empty() {
        let l = lines[j];
        let ln = j + 1;
        j += 1;
        if let Some(fails) = expect.fail.as_mut() {
            if let Some(msg) = l.strip_prefix("expected_fail_message") {
                fails.push(TextMatch::Msg(msg.trim().to_string()));
                break;
            }
            if let Some(re) = l.strip_prefix("expected_fail_regexp") {
                fails.push(TextMatch::Regex(compile(re.trim(), ln)?));
                break;
            }
        }
        if l.starts_with("expect range vector") {
            let Some(c) = EXPECT_RANGE.captures(l) else {
                return err(ln, format!("invalid range vector expectation {l:?}"));
            };
            let a = duration_at(&c[1], ln, "range vector start")?;
            let b = duration_at(&c[2], ln, "range vector end")?;
            let s = duration_at(&c[3], ln, "range vector step")?;
            if s <= 0 || b < a {
                return err(ln, "invalid range vector grid");
            }
            if !matches!(kind, EvalKind::Instant { .. }) {
                return err(ln, "expect range vector is only for instant evals");
            }
            expect.range_vector = Some((a, b, s));
            kind = EvalKind::Instant { t: b };
            continue;
        }
        if let Some(rest) = l.strip_prefix("expect string") {
            let Some(s) = unquote(rest.trim()) else {
                return err(ln, format!("invalid string expectation {l:?}"));
            };
            expected = Some(Expected::String(s));
            continue;
        }
        if l.split([' ', '\t']).next() == Some("expect") {
            parse_expect_line(l, ln, &mut expect)?;
            continue;
        }
        if let Some(v) = parse_number(l) {
            expected = Some(Expected::Scalar(v));
            break;
        }
        let (selector, rest) = split_selector(l, ln)?;
        let def = SeriesDef {
            labels: parse_labels(selector, ln)?,
            items: parse_values(rest, ln)?,
            line: ln,
        };
        if expect.range_vector.is_none()
            && matches!(kind, EvalKind::Instant { .. })
            && def.items.len() > 1
        {
            return err(
                ln,
                "expecting multiple values in instant evaluation not allowed",
            );
        }
        series.push(def);
    }
    let expected = match expected {
        Some(e) if series.is_empty() => e,
        Some(_) => return err(line, "an eval expects both series and a scalar or string"),
        None if series.is_empty() => Expected::Empty,
        None => Expected::Series(series),
    };
    Ok((
        j,
        Eval {
            line,
            kind,
            expr,
            expect,
            expected,
        },
    ))
}

fn compile(re: &str, line: usize) -> Result<Regex, ScriptError> {
    Regex::new(re).map_err(|e| ScriptError {
        line,
        message: format!("invalid regex {re:?}: {e}"),
    })
}

fn parse_expect_line(l: &str, ln: usize, expect: &mut Expectations) -> Result<(), ScriptError> {
    let Some(c) = EXPECT.captures(l) else {
        return err(ln, format!("invalid expect statement {l:?}"));
    };
    let matcher = match (c.get(2).map(|m| m.as_str()), c.get(3)) {
        (Some("msg"), Some(t)) => TextMatch::Msg(t.as_str().trim().to_string()),
        (Some(_), Some(t)) => TextMatch::Regex(compile(t.as_str().trim(), ln)?),
        _ => TextMatch::Any,
    };
    match &c[1] {
        "ordered" => expect.ordered = true,
        "fail" => {
            if expect.fail.is_some() {
                return err(ln, "more than one `expect fail`");
            }
            expect.fail = Some(vec![matcher]);
        }
        "warn" => expect.warn.push(matcher),
        "no_warn" => expect.no_warn = true,
        "info" => expect.info.push(matcher),
        "no_info" => expect.no_info = true,
        _ => unreachable!("the regex lists the kinds"),
    }
    if expect.no_warn && !expect.warn.is_empty() {
        return err(ln, "`expect warn` and `expect no_warn` together");
    }
    if expect.no_info && !expect.info.is_empty() {
        return err(ln, "`expect info` and `expect no_info` together");
    }
    Ok(())
}

/// Splits `name{…} values` into the selector and the rest (trimmed).
fn split_selector(l: &str, line: usize) -> Result<(&str, &str), ScriptError> {
    let b = l.as_bytes();
    let mut k = 0;
    while k < b.len() && (b[k].is_ascii_alphanumeric() || b[k] == b'_' || b[k] == b':') {
        k += 1;
    }
    if k < b.len() && b[k] == b'{' {
        let mut quote: Option<u8> = None;
        k += 1;
        loop {
            let Some(&c) = b.get(k) else {
                return err(line, format!("unterminated label set in {l:?}"));
            };
            k += 1;
            match quote {
                Some(q) if c == b'\\' && q != b'`' => k += 1,
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if matches!(c, b'"' | b'\'' | b'`') => quote = Some(c),
                None if c == b'}' => break,
                None => {}
            }
        }
    }
    if k == 0 {
        return err(line, format!("expected a series selector in {l:?}"));
    }
    Ok((&l[..k], l[k..].trim()))
}

/// The label set a selector such as `name{a="b"}` or `{__name__="x"}` defines.
fn parse_labels(selector: &str, line: usize) -> Result<Labels, ScriptError> {
    let (name, body) = match selector.find('{') {
        Some(p) => (&selector[..p], &selector[p + 1..selector.len() - 1]),
        None => (selector, ""),
    };
    let mut labels = Labels::default();
    if body.trim().is_empty() {
        if !name.is_empty() {
            labels.push((METRIC_NAME.to_string(), name.to_string()));
        }
        return Ok(labels);
    }
    let expr = promql_parser::parser::parse(selector).map_err(|e| ScriptError {
        line,
        message: format!("invalid series selector {selector:?}: {e}"),
    })?;
    let Expr::VectorSelector(vs) = expr else {
        return err(line, format!("{selector:?} is not a series selector"));
    };
    if let Some(n) = vs.name {
        labels.push((METRIC_NAME.to_string(), n));
    }
    for m in vs.matchers.matchers {
        if !matches!(m.op, MatchOp::Equal) {
            return err(
                line,
                format!("only `=` matchers define a series: {selector:?}"),
            );
        }
        if labels.iter().any(|(n, _)| *n == m.name) {
            labels.retain(|(n, _)| *n != m.name);
        }
        labels.push((m.name, m.value));
    }
    sort_labels(&mut labels);
    Ok(labels)
}

#[cfg(test)]
mod tests;
