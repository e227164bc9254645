//! Line filters of a logs scan decided per line template. A conjunct that
//! tests only the `line` column — `contains(line, '…')`, `regexp_like(line,
//! '…')` and the `~`, `~*`, `!~`, `!~*` operators, `line [NOT] LIKE '…'`,
//! and `NOT`/`AND`/`OR` of those — becomes a
//! [`LineCondition`]. For each distinct template of a block (listed in its
//! `.rows` sidecar, see `storage::line_template`) the condition's verdict is
//! worked out once: every line of the template passes, none does, or it
//! depends on the variables. When no template of a block depends, the block
//! is read with a [`TemplateFilter`] on its small template column instead of
//! the line filter on its lines, and the lines are not read unless asked
//! for.
//!
//! A verdict runs the pattern's lazy DFA over the template: a static byte
//! steps every state, a variable steps every state by every non-empty run of
//! the bytes its kind allows (one byte per byte class of the DFA, to a
//! fixed point).
//! Every path reaching a match state: all lines pass; none: no line can.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::buffer::BooleanBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Int32Type, Schema};
use datafusion::common::{Result, internal_err};
use datafusion::logical_expr::{BinaryExpr, ColumnarValue, Expr, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use parking_lot::Mutex;
use regex_automata::Anchored;
use regex_automata::hybrid::LazyStateID;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::util::start;

use super::filters::string_literal;
use crate::storage::line_template::{Piece, VariableKind, pieces};

/// What a condition says about every line of one template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every line of the template passes.
    Pass,
    /// No line of the template passes.
    Fail,
    /// It depends on the line's variables.
    Depends,
}

impl Verdict {
    fn not(self) -> Verdict {
        match self {
            Verdict::Pass => Verdict::Fail,
            Verdict::Fail => Verdict::Pass,
            Verdict::Depends => Verdict::Depends,
        }
    }

    fn and(self, other: Verdict) -> Verdict {
        match (self, other) {
            (Verdict::Fail, _) | (_, Verdict::Fail) => Verdict::Fail,
            (Verdict::Pass, Verdict::Pass) => Verdict::Pass,
            _ => Verdict::Depends,
        }
    }

    fn or(self, other: Verdict) -> Verdict {
        self.not().and(other.not()).not()
    }
}

/// A filter on the line alone, in a form decided per template.
#[derive(Debug, Clone)]
pub enum LineCondition {
    /// The line has a match of the pattern.
    Matches(Arc<TemplateMatcher>),
    Not(Box<LineCondition>),
    And(Box<LineCondition>, Box<LineCondition>),
    Or(Box<LineCondition>, Box<LineCondition>),
}

impl LineCondition {
    /// `filter` as a condition on the `line` column, when it is one of the
    /// recognised forms.
    pub fn of(filter: &Expr) -> Option<LineCondition> {
        match filter {
            Expr::Not(inner) => Some(LineCondition::Not(Box::new(Self::of(inner)?))),
            Expr::BinaryExpr(BinaryExpr { left, op, right })
                if matches!(
                    op,
                    Operator::RegexMatch
                        | Operator::RegexIMatch
                        | Operator::RegexNotMatch
                        | Operator::RegexNotIMatch
                ) =>
            {
                if !is_line(left) {
                    return None;
                }
                let pattern = string_literal(right)?;
                let pattern = match op {
                    Operator::RegexIMatch | Operator::RegexNotIMatch => format!("(?i){pattern}"),
                    _ => pattern.to_string(),
                };
                let matches = LineCondition::Matches(Arc::new(TemplateMatcher::new(&pattern)?));
                Some(match op {
                    Operator::RegexNotMatch | Operator::RegexNotIMatch => {
                        LineCondition::Not(Box::new(matches))
                    }
                    _ => matches,
                })
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (l, r) = (Self::of(left)?, Self::of(right)?);
                match op {
                    Operator::And => Some(LineCondition::And(Box::new(l), Box::new(r))),
                    Operator::Or => Some(LineCondition::Or(Box::new(l), Box::new(r))),
                    _ => None,
                }
            }
            Expr::ScalarFunction(f) => {
                let [target, pattern] = f.args.as_slice() else {
                    return None;
                };
                if !is_line(target) {
                    return None;
                }
                let text = string_literal(pattern)?;
                let pattern = match f.func.name() {
                    "contains" => regex_syntax::escape(text),
                    "regexp_like" => text.to_string(),
                    _ => return None,
                };
                TemplateMatcher::new(&pattern).map(|m| LineCondition::Matches(Arc::new(m)))
            }
            Expr::Like(like)
                if !like.case_insensitive && like.escape_char.is_none() && is_line(&like.expr) =>
            {
                let pattern = like_to_regex(string_literal(&like.pattern)?)?;
                let matcher = Arc::new(TemplateMatcher::new(&pattern)?);
                let matches = LineCondition::Matches(matcher);
                Some(match like.negated {
                    true => LineCondition::Not(Box::new(matches)),
                    false => matches,
                })
            }
            _ => None,
        }
    }

    /// The condition's verdict on every line of `template`.
    pub fn verdict(&self, template: &[Piece]) -> Verdict {
        match self {
            LineCondition::Matches(m) => m.verdict(template),
            LineCondition::Not(c) => c.verdict(template).not(),
            LineCondition::And(a, b) => match a.verdict(template) {
                Verdict::Fail => Verdict::Fail,
                v => v.and(b.verdict(template)),
            },
            LineCondition::Or(a, b) => match a.verdict(template) {
                Verdict::Pass => Verdict::Pass,
                v => v.or(b.verdict(template)),
            },
        }
    }
}

fn is_line(e: &Expr) -> bool {
    matches!(e, Expr::Column(c) if c.name == "line")
}

/// A SQL `LIKE` pattern (`\` escapes) as an anchored regex over the whole line.
fn like_to_regex(pattern: &str) -> Option<String> {
    let mut out = String::from("(?s)^");
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => out.push_str(".*"),
            '_' => out.push('.'),
            '\\' => out.push_str(&regex_syntax::escape(&chars.next()?.to_string())),
            c => out.push_str(&regex_syntax::escape(&c.to_string())),
        }
    }
    out.push('$');
    Some(out)
}

/// Every condition of a scan, AND-ed, with its verdicts remembered per
/// template (blocks share most of their templates).
#[derive(Debug)]
pub struct LineConditions {
    conditions: Vec<LineCondition>,
    verdicts: HashMap<String, Verdict>,
}

/// What a block's template list says about a scan's line conditions.
#[derive(Debug, Clone)]
pub enum BlockVerdict {
    /// No line of the block passes.
    NoLine,
    /// Exactly the lines of these templates (some of the block's) pass.
    Passing(Vec<String>),
    /// Some template's lines depend on their variables: read the lines.
    ReadLines,
}

impl LineConditions {
    pub fn new(conditions: Vec<LineCondition>) -> Self {
        LineConditions {
            conditions,
            verdicts: HashMap::new(),
        }
    }

    /// The verdict on a block whose distinct templates are `templates`.
    pub fn block_verdict(&mut self, templates: &[String]) -> BlockVerdict {
        let mut passing = Vec::new();
        for template in templates {
            let verdict = match self.verdicts.get(template) {
                Some(v) => *v,
                None => {
                    let parts = pieces(template);
                    let v = self.conditions.iter().fold(Verdict::Pass, |v, c| match v {
                        Verdict::Fail => Verdict::Fail,
                        v => v.and(c.verdict(&parts)),
                    });
                    self.verdicts.insert(template.clone(), v);
                    v
                }
            };
            match verdict {
                Verdict::Depends => return BlockVerdict::ReadLines,
                Verdict::Pass => passing.push(template.clone()),
                Verdict::Fail => {}
            }
        }
        match passing.is_empty() {
            true => BlockVerdict::NoLine,
            false => BlockVerdict::Passing(passing),
        }
    }
}

/// A pattern's lazy DFA, run over templates.
pub struct TemplateMatcher {
    pattern: String,
    dfa: DFA,
    cache: Mutex<Cache>,
    /// Per variable kind, one byte of each of the DFA's byte classes that
    /// holds a byte the kind allows.
    variable_bytes: [Vec<u8>; 3],
}

impl fmt::Debug for TemplateMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TemplateMatcher({:?})", self.pattern)
    }
}

/// The lazy DFA's cache: a template with more states than fit says `Depends`.
const DFA_CACHE_BYTES: usize = 8 << 20;

/// A template's run stops (its verdict `Depends`) past this many DFA steps.
const MAX_STEPS_PER_TEMPLATE: usize = 1 << 20;

/// Why a run over a template gave up.
struct GaveUp;

impl TemplateMatcher {
    /// None when the pattern does not compile into a lazy DFA.
    pub fn new(pattern: &str) -> Option<TemplateMatcher> {
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .cache_capacity(DFA_CACHE_BYTES)
                    .unicode_word_boundary(true),
            )
            .build(pattern)
            .ok()?;
        let cache = dfa.create_cache();
        let classes = dfa.byte_classes();
        let bytes_of = |kind: VariableKind| {
            let mut seen = HashSet::new();
            (0..=255u8)
                .filter(|&b| kind.allows(b) && seen.insert(classes.get(b)))
                .collect()
        };
        let variable_bytes = [
            bytes_of(VariableKind::Number),
            bytes_of(VariableKind::Hex),
            bytes_of(VariableKind::Other),
        ];
        Some(TemplateMatcher {
            pattern: pattern.to_string(),
            dfa,
            cache: Mutex::new(cache),
            variable_bytes,
        })
    }

    /// Whether every, no or some lines of `template` have a match.
    pub fn verdict(&self, template: &[Piece]) -> Verdict {
        let mut cache = self.cache.lock();
        let clears = cache.clear_count();
        let verdict = self.run(&mut cache, template).unwrap_or(Verdict::Depends);
        // A cleared cache renumbers its states: the sets above were stale.
        match cache.clear_count() == clears {
            true => verdict,
            false => Verdict::Depends,
        }
    }

    fn run(&self, cache: &mut Cache, template: &[Piece]) -> std::result::Result<Verdict, GaveUp> {
        let start = self
            .dfa
            .start_state(cache, &start::Config::new().anchored(Anchored::No))
            .map_err(|_| GaveUp)?;
        let mut run = Run {
            dfa: &self.dfa,
            cache,
            some_path_matched: false,
            some_path_failed: false,
            steps: 0,
        };
        // States of the paths that have not matched yet.
        let mut open = vec![start];
        for piece in template {
            match piece {
                Piece::Static(bytes) => {
                    for &b in bytes {
                        if open.is_empty() {
                            break;
                        }
                        let mut next = Vec::with_capacity(open.len());
                        for &state in &open {
                            if let Some(s) = run.step(state, b)? {
                                next.push(s);
                            }
                        }
                        next.sort_unstable();
                        next.dedup();
                        open = next;
                    }
                }
                Piece::Variable(kind) => {
                    let bytes = match kind {
                        VariableKind::Number => &self.variable_bytes[0],
                        VariableKind::Hex => &self.variable_bytes[1],
                        VariableKind::Other => &self.variable_bytes[2],
                    };
                    open = run.variable(&open, bytes)?
                }
            }
        }
        for &state in &open {
            let end = run
                .dfa
                .next_eoi_state(run.cache, state)
                .map_err(|_| GaveUp)?;
            if end.is_quit() {
                return Err(GaveUp);
            }
            match end.is_match() {
                true => run.some_path_matched = true,
                false => run.some_path_failed = true,
            }
        }
        Ok(match (run.some_path_matched, run.some_path_failed) {
            (false, _) => Verdict::Fail,
            (true, false) => Verdict::Pass,
            (true, true) => Verdict::Depends,
        })
    }
}

/// One run of a DFA over a template, tracking whether some path matched and
/// whether some path can no longer match.
struct Run<'a> {
    dfa: &'a DFA,
    cache: &'a mut Cache,
    some_path_matched: bool,
    some_path_failed: bool,
    steps: usize,
}

impl Run<'_> {
    /// The next state on `byte`, None when the path is decided (matched or dead).
    fn step(
        &mut self,
        state: LazyStateID,
        byte: u8,
    ) -> std::result::Result<Option<LazyStateID>, GaveUp> {
        self.steps += 1;
        if self.steps > MAX_STEPS_PER_TEMPLATE {
            return Err(GaveUp);
        }
        let next = self
            .dfa
            .next_state(self.cache, state, byte)
            .map_err(|_| GaveUp)?;
        if next.is_quit() {
            return Err(GaveUp);
        }
        if next.is_match() {
            self.some_path_matched = true;
            return Ok(None);
        }
        if next.is_dead() {
            self.some_path_failed = true;
            return Ok(None);
        }
        Ok(Some(next))
    }

    /// The open states after a variable: every non-empty run of
    /// non-delimiter bytes from each of `open`.
    fn variable(
        &mut self,
        open: &[LazyStateID],
        bytes: &[u8],
    ) -> std::result::Result<Vec<LazyStateID>, GaveUp> {
        let mut reached: HashSet<LazyStateID> = HashSet::new();
        let mut frontier = open.to_vec();
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for &state in &frontier {
                for &b in bytes {
                    if let Some(s) = self.step(state, b)?
                        && reached.insert(s)
                    {
                        next.push(s);
                    }
                }
            }
            frontier = next;
        }
        let mut out: Vec<LazyStateID> = reached.into_iter().collect();
        out.sort_unstable();
        Ok(out)
    }
}

/// `template_in(line_template)`: whether a row's template is one of a set —
/// the exact form of a scan's line conditions over a block whose every
/// template has a verdict. Decided once per dictionary value of the column
/// (its Parquet dictionary, kept when read).
#[derive(Debug)]
pub struct TemplateFilter {
    column: Arc<dyn PhysicalExpr>,
    passing: Arc<HashSet<String>>,
    /// The last dictionaries seen and which of their values pass; the
    /// dictionary arrays are held, so their buffers are not reused.
    seen: Mutex<Vec<(ArrayRef, Arc<Vec<bool>>)>>,
}

/// Dictionaries remembered per filter (one per partition reading at once).
const REMEMBERED_DICTIONARIES: usize = 8;

impl TemplateFilter {
    pub fn new(column: Arc<dyn PhysicalExpr>, passing: Arc<HashSet<String>>) -> Self {
        TemplateFilter {
            column,
            passing,
            seen: Mutex::new(Vec::new()),
        }
    }

    /// The passing set over `templates`' column index, for a plan's schema.
    pub fn over(schema: &Schema, passing: Arc<HashSet<String>>) -> Result<Arc<dyn PhysicalExpr>> {
        let name = crate::storage::line_template::TEMPLATE_COLUMN;
        let column = Arc::new(Column::new(name, schema.index_of(name)?));
        Ok(Arc::new(TemplateFilter::new(column, passing)))
    }

    fn passing_values(&self, values: &ArrayRef) -> Arc<Vec<bool>> {
        let same = |a: &ArrayRef| a.len() == values.len() && a.to_data().ptr_eq(&values.to_data());
        let mut seen = self.seen.lock();
        if let Some((_, passes)) = seen.iter().find(|(a, _)| same(a)) {
            return passes.clone();
        }
        let passes: Arc<Vec<bool>> = Arc::new(match values.as_string_opt::<i32>() {
            Some(strings) => strings
                .iter()
                .map(|v| v.is_some_and(|v| self.passing.contains(v)))
                .collect(),
            None => vec![false; values.len()],
        });
        if seen.len() >= REMEMBERED_DICTIONARIES {
            seen.remove(0);
        }
        seen.push((values.clone(), passes.clone()));
        passes
    }
}

impl PartialEq for TemplateFilter {
    fn eq(&self, other: &Self) -> bool {
        *self.column == *other.column && Arc::ptr_eq(&self.passing, &other.passing)
    }
}

impl Eq for TemplateFilter {}

impl Hash for TemplateFilter {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.column.hash(state);
        self.passing.len().hash(state);
    }
}

impl fmt::Display for TemplateFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "template_in({}, {} templates)",
            self.column,
            self.passing.len()
        )
    }
}

impl PhysicalExpr for TemplateFilter {
    fn return_field(&self, _input_schema: &Schema) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(
            "template_in",
            DataType::Boolean,
            false,
        )))
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let column = self.column.evaluate(batch)?.into_array(batch.num_rows())?;
        let rows = if let Some(dictionary) = column.as_dictionary_opt::<Int32Type>() {
            let passes = self.passing_values(dictionary.values());
            let keys = dictionary.keys();
            BooleanBuffer::collect_bool(keys.len(), |row| {
                keys.is_valid(row) && passes.get(keys.value(row) as usize) == Some(&true)
            })
        } else if let Some(strings) = column.as_string_opt::<i32>() {
            BooleanBuffer::collect_bool(strings.len(), |row| {
                strings.is_valid(row) && self.passing.contains(strings.value(row))
            })
        } else {
            return internal_err!("template_in() reads strings, not {}", column.data_type());
        };
        Ok(ColumnarValue::Array(Arc::new(BooleanArray::new(
            rows, None,
        ))))
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.column]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        match <[_; 1]>::try_from(children) {
            Ok([column]) => Ok(Arc::new(TemplateFilter::new(column, self.passing.clone()))),
            Err(children) => internal_err!("template_in() has one child, not {}", children.len()),
        }
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use datafusion::functions::expr_fn::{contains, regexp_like};
    use datafusion::logical_expr::{col, lit, not};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::storage::line_template::tests::template;

    fn condition(e: Expr) -> LineCondition {
        LineCondition::of(&e).unwrap_or_else(|| panic!("{e} is a line condition"))
    }

    /// Lines of the shapes logs have: key=value, JSON, free text, with
    /// variables next to static text and odd bytes.
    fn lines(n: usize) -> Vec<String> {
        let mut rng = StdRng::seed_from_u64(7);
        let words = [
            "connection",
            "reset",
            "by",
            "peer",
            "upstream",
            "timeout",
            "GET",
            "status",
            "ms",
            "error",
            "Error",
            "ERROR",
            "user",
            "ünïcode",
            "a",
            "ab",
            "",
        ];
        let variables = [
            "200",
            "502",
            "503",
            "404",
            "12.5",
            "u42",
            "4bf92f3577b34da6",
            "10.0.0.1",
            "3ème",
            "reset1",
            "1reset",
            "50",
            "x5",
        ];
        let delimiters = [" ", "=", "\"", ":", ", ", "/", "{", "}", " | ", "\t"];
        (0..n)
            .map(|_| {
                let mut line = String::new();
                for _ in 0..rng.random_range(1..9) {
                    match rng.random_range(0..3) {
                        0 => line.push_str(words[rng.random_range(0..words.len())]),
                        1 => line.push_str(variables[rng.random_range(0..variables.len())]),
                        _ => line.push_str(delimiters[rng.random_range(0..delimiters.len())]),
                    }
                }
                line
            })
            .collect()
    }

    /// Every verdict agrees with the filter evaluated on each line of its
    /// template; returns how many templates got a definite verdict.
    fn check(filter: &Expr, matches: impl Fn(&str) -> bool, lines: &[String]) -> (usize, usize) {
        let condition = condition(filter.clone());
        let mut by_template: HashMap<String, Vec<&str>> = HashMap::new();
        for line in lines {
            by_template.entry(template(line)).or_default().push(line);
        }
        let mut definite = 0;
        for (t, lines) in &by_template {
            let verdict = condition.verdict(&pieces(t));
            for line in lines {
                match verdict {
                    Verdict::Pass => {
                        assert!(matches(line), "{filter}: {line:?} ({t:?}) should pass")
                    }
                    Verdict::Fail => {
                        assert!(!matches(line), "{filter}: {line:?} ({t:?}) should fail")
                    }
                    Verdict::Depends => {}
                }
            }
            definite += usize::from(verdict != Verdict::Depends);
        }
        (definite, by_template.len())
    }

    #[test]
    fn verdicts_agree_with_the_filter_on_every_line() {
        let lines = lines(20_000);
        let substrings = [
            "connection reset",
            "reset",
            "set b",
            "eset",
            "=",
            "status=50",
            "502",
            "u4",
            "",
            "ünï",
            "\" ",
            "rror",
            "e r",
        ];
        for needle in substrings {
            let filter = contains(col("line"), lit(needle));
            check(&filter, |l| l.contains(needle), &lines);
            let filter = not(contains(col("line"), lit(needle)));
            check(&filter, |l| !l.contains(needle), &lines);
        }
        let patterns = [
            "status[=\":]+50[23]",
            "(?i)UPSTREAM TIMEOUT",
            "^connection",
            "peer$",
            "\\berror\\b",
            "err(or)?|timeout",
            "[0-9]{3}",
            "^$",
            "a.*b",
            "(?i)ünïcode",
            "x*",
        ];
        for pattern in patterns {
            let re = regex::Regex::new(pattern).unwrap();
            let filter = regexp_like(col("line"), lit(pattern), None);
            check(&filter, |l| re.is_match(l), &lines);
        }
        // Conjunctions, disjunctions and LIKE.
        let either = contains(col("line"), lit("reset")).or(contains(col("line"), lit("timeout")));
        check(
            &either,
            |l| l.contains("reset") || l.contains("timeout"),
            &lines,
        );
        let both = contains(col("line"), lit("GET")).and(not(contains(col("line"), lit("error"))));
        check(&both, |l| l.contains("GET") && !l.contains("error"), &lines);
        let like = col("line").like(lit("%user_%"));
        let re = regex::Regex::new("(?s)^.*user..*$").unwrap();
        check(&like, |l| re.is_match(l), &lines);
    }

    #[test]
    fn static_text_decides_most_templates() {
        let lines: Vec<String> = (0..2_000)
            .map(|i| {
                let msg = ["connection reset by peer", "cache miss", "upstream timeout"][i % 3];
                format!(
                    r#"level=info msg="{msg}" status={} latency_ms={}.5 trace_id={i:032x}"#,
                    200 + i % 4,
                    i
                )
            })
            .collect();
        let filter = contains(col("line"), lit("connection reset"));
        let (definite, all) = check(&filter, |l| l.contains("connection reset"), &lines);
        assert_eq!(definite, all);
        let filter = regexp_like(col("line"), lit("(?i)UPSTREAM TIMEOUT"), None);
        let (definite, all) = check(
            &filter,
            |l| l.to_lowercase().contains("upstream timeout"),
            &lines,
        );
        assert_eq!(definite, all);
        // A word no number or hex id can hold is decided by static text alone.
        let filter = contains(col("line"), lit("timeout"));
        let (definite, all) = check(&filter, |l| l.contains("timeout"), &lines);
        assert_eq!(definite, all);
        // A status code is a variable: the lines must be read.
        let filter = regexp_like(col("line"), lit("status=50[23]"), None);
        let (definite, _) = check(
            &filter,
            |l| l.contains("status=502") || l.contains("status=503"),
            &lines,
        );
        assert_eq!(definite, 0);
    }

    #[test]
    fn only_filters_on_the_line_alone_are_conditions() {
        assert!(LineCondition::of(&contains(col("line"), lit("x"))).is_some());
        assert!(LineCondition::of(&col("line").not_like(lit("a%"))).is_some());
        let op = |op| {
            Expr::BinaryExpr(BinaryExpr::new(
                Box::new(col("line")),
                op,
                Box::new(lit("a+")),
            ))
        };
        for operator in [
            Operator::RegexMatch,
            Operator::RegexIMatch,
            Operator::RegexNotMatch,
            Operator::RegexNotIMatch,
        ] {
            assert!(LineCondition::of(&op(operator)).is_some());
        }
        assert!(LineCondition::of(&contains(col("other"), lit("x"))).is_none());
        assert!(LineCondition::of(&contains(col("line"), col("line"))).is_none());
        assert!(LineCondition::of(&col("line").ilike(lit("a%"))).is_none());
        let mixed = contains(col("line"), lit("x")).or(col("stream_id").eq(lit(1i64)));
        assert!(LineCondition::of(&mixed).is_none());
    }

    #[test]
    fn block_verdicts_and_the_template_filter() {
        let mut conditions =
            LineConditions::new(vec![condition(contains(col("line"), lit("cache miss")))]);
        let templates = vec![
            "cache miss \u{11}".to_string(),
            "cache hit \u{11}".to_string(),
        ];
        let BlockVerdict::Passing(passing) = conditions.block_verdict(&templates) else {
            panic!("one template passes");
        };
        assert_eq!(passing, vec!["cache miss \u{11}".to_string()]);
        assert!(matches!(
            conditions.block_verdict(&templates[1..]),
            BlockVerdict::NoLine
        ));
        let depends = vec!["cache \u{14}".to_string()];
        assert!(matches!(
            conditions.block_verdict(&depends),
            BlockVerdict::ReadLines
        ));

        // Evaluated on a dictionary column, twice with the same dictionary.
        let column: ArrayRef = Arc::new(
            ["cache hit \u{11}", "cache miss \u{11}", "cache miss \u{11}"]
                .into_iter()
                .collect::<arrow::array::DictionaryArray<Int32Type>>(),
        );
        let schema = Arc::new(Schema::new(vec![Field::new(
            crate::storage::line_template::TEMPLATE_COLUMN,
            column.data_type().clone(),
            true,
        )]));
        let batch = RecordBatch::try_new(schema.clone(), vec![column]).unwrap();
        let filter =
            TemplateFilter::over(&schema, Arc::new(passing.into_iter().collect())).unwrap();
        for _ in 0..2 {
            let out = filter.evaluate(&batch).unwrap().into_array(3).unwrap();
            assert_eq!(
                out.as_boolean().iter().collect::<Vec<_>>(),
                vec![Some(false), Some(true), Some(true)]
            );
        }
    }
}
