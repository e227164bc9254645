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
use std::sync::{Arc, OnceLock};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringViewArray};
use arrow::buffer::BooleanBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Int32Type, Schema};
use datafusion::common::{Result, internal_err};
use datafusion::logical_expr::{BinaryExpr, ColumnarValue, Expr, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use parking_lot::Mutex;
use regex_automata::hybrid::dfa::{Cache, DFA};

use super::filters::string_literal;
use super::line_programs::{self, DenseMatcher, LazyStepper, MatchProgram, VariableBytes, Verdict};
use crate::storage::line_template::{Piece, TEMPLATE_COLUMN, pieces, variable_column};

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
            LineCondition::Not(c) => !c.verdict(template),
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

impl LineCondition {
    /// How to decide each line of `template` from its stored variables;
    /// None when some part cannot be worked out (its lines must be read).
    fn program(&self, template: &[Piece]) -> Option<LineProgram> {
        Some(match self {
            LineCondition::Matches(m) => match m.verdict(template) {
                Verdict::Pass => LineProgram::Answer(true),
                Verdict::Fail => LineProgram::Answer(false),
                Verdict::Depends => m.program(template)?,
            },
            LineCondition::Not(c) => LineProgram::Not(Box::new(c.program(template)?)),
            LineCondition::And(a, b) => LineProgram::And(
                Box::new(a.program(template)?),
                Box::new(b.program(template)?),
            ),
            LineCondition::Or(a, b) => LineProgram::Or(
                Box::new(a.program(template)?),
                Box::new(b.program(template)?),
            ),
        })
    }
}

/// A line condition over one template, decided per line from the line's
/// stored variables (see [`MatchProgram`]).
#[derive(Debug)]
pub enum LineProgram {
    /// The same for every line of the template.
    Answer(bool),
    Matches(Arc<DenseMatcher>, Arc<MatchProgram>),
    Not(Box<LineProgram>),
    And(Box<LineProgram>, Box<LineProgram>),
    Or(Box<LineProgram>, Box<LineProgram>),
}

impl LineProgram {
    /// Whether a line passes, from its variables by position; None when
    /// one it needs is missing.
    pub fn passes<'v>(&self, variable: &impl Fn(usize) -> Option<&'v [u8]>) -> Option<bool> {
        match self {
            LineProgram::Answer(answer) => Some(*answer),
            LineProgram::Matches(dfa, program) => program.matches(dfa, variable),
            LineProgram::Not(p) => p.passes(variable).map(|v| !v),
            LineProgram::And(a, b) => match a.passes(variable)? {
                false => Some(false),
                true => b.passes(variable),
            },
            LineProgram::Or(a, b) => match a.passes(variable)? {
                true => Some(true),
                false => b.passes(variable),
            },
        }
    }

    /// The variables some line may need: positions below this.
    pub fn needs(&self) -> usize {
        match self {
            LineProgram::Answer(_) => 0,
            LineProgram::Matches(_, program) => program.needs(),
            LineProgram::Not(p) => p.needs(),
            LineProgram::And(a, b) | LineProgram::Or(a, b) => a.needs().max(b.needs()),
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

/// Every condition of a scan, AND-ed, with its decisions remembered per
/// template (blocks share most of their templates).
#[derive(Debug)]
pub struct LineConditions {
    conditions: Vec<LineCondition>,
    decisions: HashMap<String, Decision>,
}

/// A scan's line conditions on every line of one template.
#[derive(Debug, Clone)]
pub enum Decision {
    Pass,
    Fail,
    /// Decided per line from the line's stored variables.
    PerLine(Arc<LineProgram>),
    /// Only the lines can tell.
    ReadLines,
}

/// What a block's template list says about a scan's line conditions.
#[derive(Debug, Clone)]
pub enum BlockVerdict {
    /// No line of the block passes.
    NoLine,
    /// The lines of these templates (some of the block's) pass, or pass
    /// by their program.
    Decided(TemplateDecisions),
    /// Some template's lines can only be decided by reading them.
    ReadLines,
}

/// Which templates' lines pass: all of them, or those their program passes.
#[derive(Debug, Clone, Default)]
pub struct TemplateDecisions {
    pub passing: HashSet<String>,
    pub per_line: HashMap<String, Arc<LineProgram>>,
}

impl TemplateDecisions {
    pub fn extend(&mut self, other: TemplateDecisions) {
        self.passing.extend(other.passing);
        self.per_line.extend(other.per_line);
    }

    /// The stored variables some line may need: positions below this.
    pub fn needs(&self) -> usize {
        self.per_line.values().map(|p| p.needs()).max().unwrap_or(0)
    }

    fn is_empty(&self) -> bool {
        self.passing.is_empty() && self.per_line.is_empty()
    }
}

/// Scans' line conditions with their decisions, kept across queries that
/// filter lines the same way (a dashboard's refreshes decide each template
/// once): keyed by the filters' text, most recently used first.
static SHARED_CONDITIONS: Mutex<Vec<(String, Arc<Mutex<LineConditions>>)>> = Mutex::new(Vec::new());

/// Line conditions kept in [`SHARED_CONDITIONS`].
const SHARED_CONDITION_SETS: usize = 16;

/// Decisions kept per condition set; past this many templates it starts over.
const MAX_REMEMBERED_DECISIONS: usize = 200_000;

impl LineConditions {
    /// The conditions of `filters` (their [`LineCondition`]s, in order),
    /// shared with earlier scans that had the same filters.
    pub fn shared(conditions: Vec<LineCondition>, filters: &[Expr]) -> Arc<Mutex<LineConditions>> {
        let key = filters
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join(" AND ");
        let mut shared = SHARED_CONDITIONS.lock();
        if let Some(at) = shared.iter().position(|(k, _)| *k == key) {
            let entry = shared.remove(at);
            let conditions = entry.1.clone();
            shared.insert(0, entry);
            return conditions;
        }
        let made = Arc::new(Mutex::new(LineConditions::new(conditions)));
        shared.insert(0, (key, made.clone()));
        shared.truncate(SHARED_CONDITION_SETS);
        made
    }

    pub fn new(conditions: Vec<LineCondition>) -> Self {
        LineConditions {
            conditions,
            decisions: HashMap::new(),
        }
    }

    /// The conditions on every line of `template`.
    fn decide(&self, template: &str) -> Decision {
        let parts = pieces(template);
        let verdict = self.conditions.iter().fold(Verdict::Pass, |v, c| match v {
            Verdict::Fail => Verdict::Fail,
            v => v.and(c.verdict(&parts)),
        });
        match verdict {
            Verdict::Pass => Decision::Pass,
            Verdict::Fail => Decision::Fail,
            Verdict::Depends => {
                let programs: Option<Vec<LineProgram>> =
                    self.conditions.iter().map(|c| c.program(&parts)).collect();
                match programs.and_then(|p| {
                    p.into_iter()
                        .reduce(|a, b| LineProgram::And(a.into(), b.into()))
                }) {
                    Some(program) => Decision::PerLine(Arc::new(program)),
                    None => Decision::ReadLines,
                }
            }
        }
    }

    /// The verdict on a block whose distinct templates are `templates`, and
    /// which stores the first `stored_variables` variables of each line.
    pub fn block_verdict(&mut self, templates: &[String], stored_variables: usize) -> BlockVerdict {
        let mut decided = TemplateDecisions::default();
        for template in templates {
            let decision = match self.decisions.get(template) {
                Some(d) => d.clone(),
                None => {
                    let d = self.decide(template);
                    if self.decisions.len() >= MAX_REMEMBERED_DECISIONS {
                        self.decisions.clear();
                    }
                    self.decisions.insert(template.clone(), d.clone());
                    d
                }
            };
            match decision {
                Decision::ReadLines => return BlockVerdict::ReadLines,
                Decision::PerLine(p) if p.needs() > stored_variables => {
                    return BlockVerdict::ReadLines;
                }
                Decision::PerLine(p) => {
                    decided.per_line.insert(template.clone(), p);
                }
                Decision::Pass => {
                    decided.passing.insert(template.clone());
                }
                Decision::Fail => {}
            }
        }
        match decided.is_empty() {
            true => BlockVerdict::NoLine,
            false => BlockVerdict::Decided(decided),
        }
    }
}

/// A pattern's lazy DFA, run over templates, and its dense DFA, built the
/// first time a template's lines depend on their variables.
pub struct TemplateMatcher {
    pattern: String,
    dfa: DFA,
    cache: Mutex<Cache>,
    variable_bytes: VariableBytes,
    dense: OnceLock<Option<Arc<DenseMatcher>>>,
}

impl fmt::Debug for TemplateMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TemplateMatcher({:?})", self.pattern)
    }
}

/// The lazy DFA's cache: a template with more states than fit says `Depends`.
const DFA_CACHE_BYTES: usize = 8 << 20;

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
        let variable_bytes = VariableBytes::new(|b| classes.get(b));
        Some(TemplateMatcher {
            pattern: pattern.to_string(),
            dfa,
            cache: Mutex::new(cache),
            variable_bytes,
            dense: OnceLock::new(),
        })
    }

    /// Whether every, no or some lines of `template` have a match.
    pub fn verdict(&self, template: &[Piece]) -> Verdict {
        let mut cache = self.cache.lock();
        let clears = cache.clear_count();
        let mut stepper = LazyStepper {
            dfa: &self.dfa,
            cache: &mut cache,
            variable_bytes: &self.variable_bytes,
        };
        let verdict = line_programs::verdict(&mut stepper, template).unwrap_or(Verdict::Depends);
        // A cleared cache renumbers its states: the sets above were stale.
        match cache.clear_count() == clears {
            true => verdict,
            false => Verdict::Depends,
        }
    }

    /// How to decide each line of `template` (whose verdict depends) from
    /// its stored variables; None when that cannot be worked out.
    fn program(&self, template: &[Piece]) -> Option<LineProgram> {
        let dense = self
            .dense
            .get_or_init(|| DenseMatcher::new(&self.pattern).map(Arc::new))
            .clone()?;
        let program = dense.program(template)?;
        Some(LineProgram::Matches(dense, Arc::new(program)))
    }
}

/// `template_in(line_template, line_var_0, …)`: whether a row's template
/// is one whose lines all pass, or one whose program passes the row's
/// stored variables — the exact form of a scan's line conditions over a
/// block where every template is decided. Decided once per dictionary
/// value of the template column (its Parquet dictionary, kept when read),
/// and per row only for templates with a program.
#[derive(Debug)]
pub struct TemplateFilter {
    /// The template column, then the variable columns the programs need.
    columns: Vec<Arc<dyn PhysicalExpr>>,
    decisions: Arc<TemplateDecisions>,
    /// The last dictionaries seen and what each of their values says; the
    /// dictionary arrays are held, so their buffers are not reused.
    seen: Mutex<Vec<(ArrayRef, Arc<Vec<RowDecision>>)>>,
}

/// What a template column's value says about its rows.
#[derive(Debug, Clone)]
enum RowDecision {
    Pass,
    Fail,
    /// By the program; whether it reads only the first variable.
    PerLine(Arc<LineProgram>, bool),
}

/// Dictionaries remembered per filter (one per partition reading at once).
const REMEMBERED_DICTIONARIES: usize = 8;

impl TemplateFilter {
    pub fn new(columns: Vec<Arc<dyn PhysicalExpr>>, decisions: Arc<TemplateDecisions>) -> Self {
        TemplateFilter {
            columns,
            decisions,
            seen: Mutex::new(Vec::new()),
        }
    }

    /// The decisions over the template column and the variable columns
    /// they need, by their indexes in a plan's `schema`.
    pub fn over(
        schema: &Schema,
        decisions: Arc<TemplateDecisions>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        let columns = Self::columns_read(&decisions)
            .into_iter()
            .map(|name| Ok(Arc::new(Column::new(&name, schema.index_of(&name)?)) as _))
            .collect::<Result<_>>()?;
        Ok(Arc::new(TemplateFilter::new(columns, decisions)))
    }

    /// The storage columns the filter reads: the template column, then
    /// the variables the decisions need.
    pub fn columns_read(decisions: &TemplateDecisions) -> Vec<String> {
        std::iter::once(TEMPLATE_COLUMN.to_string())
            .chain((0..decisions.needs()).map(variable_column))
            .collect()
    }

    fn decide(&self, template: &str) -> RowDecision {
        match self.decisions.per_line.get(template) {
            Some(program) => RowDecision::PerLine(program.clone(), program.needs() == 1),
            None if self.decisions.passing.contains(template) => RowDecision::Pass,
            None => RowDecision::Fail,
        }
    }

    fn value_decisions(&self, values: &ArrayRef) -> Arc<Vec<RowDecision>> {
        let same = |a: &ArrayRef| a.len() == values.len() && a.to_data().ptr_eq(&values.to_data());
        let mut seen = self.seen.lock();
        if let Some((_, decisions)) = seen.iter().find(|(a, _)| same(a)) {
            return decisions.clone();
        }
        let decisions: Arc<Vec<RowDecision>> = Arc::new(match values.as_string_opt::<i32>() {
            Some(strings) => strings
                .iter()
                .map(|v| v.map_or(RowDecision::Fail, |v| self.decide(v)))
                .collect(),
            None => vec![RowDecision::Fail; values.len()],
        });
        if seen.len() >= REMEMBERED_DICTIONARIES {
            seen.remove(0);
        }
        seen.push((values.clone(), decisions.clone()));
        decisions
    }
}

/// Answers of per-line programs by template and first variable, for
/// programs that read only the first variable, when it is short enough to
/// sit whole in its string view (12 bytes): rows repeat such values
/// (status codes, levels), and a lookup here is a few times cheaper than
/// running the program. Direct-mapped; a collision evicts.
struct FirstVariableMemo {
    slots: Vec<Option<(i32, u128, bool)>>,
}

/// Slots of a [`FirstVariableMemo`] (a power of two).
const MEMO_SLOTS: usize = 1024;

impl FirstVariableMemo {
    /// Empty; its slots are allocated on first use, so batches without a
    /// per-line template pay nothing.
    fn new() -> Self {
        FirstVariableMemo { slots: Vec::new() }
    }

    /// The memo key of `row`'s first variable: its whole string view,
    /// when the value is inline.
    fn key(views: &StringViewArray, row: usize) -> Option<u128> {
        if views.is_null(row) {
            return None;
        }
        let view = views.views()[row];
        // The low 32 bits are the length; inline views hold their bytes.
        ((view as u32) <= 12).then_some(view)
    }

    fn answer(&mut self, template: i32, view: u128, run: impl FnOnce() -> bool) -> bool {
        const MIX: u64 = 0x9E37_79B9_7F4A_7C15;
        let hash = ((view as u64) ^ ((view >> 64) as u64) ^ (template as u64).wrapping_mul(MIX))
            .wrapping_mul(MIX);
        let slot = (hash >> (64 - MEMO_SLOTS.trailing_zeros())) as usize;
        if self.slots.is_empty() {
            self.slots = vec![None; MEMO_SLOTS];
        }
        match self.slots[slot] {
            Some((t, v, answer)) if t == template && v == view => answer,
            _ => {
                let answer = run();
                self.slots[slot] = Some((template, view, answer));
                answer
            }
        }
    }
}

impl PartialEq for TemplateFilter {
    fn eq(&self, other: &Self) -> bool {
        self.columns.len() == other.columns.len()
            && self
                .columns
                .iter()
                .zip(&other.columns)
                .all(|(a, b)| **a == **b)
            && Arc::ptr_eq(&self.decisions, &other.decisions)
    }
}

impl Eq for TemplateFilter {}

impl Hash for TemplateFilter {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for c in &self.columns {
            c.hash(state);
        }
        self.decisions.passing.len().hash(state);
        self.decisions.per_line.len().hash(state);
    }
}

impl fmt::Display for TemplateFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns: Vec<String> = self.columns.iter().map(|c| c.to_string()).collect();
        write!(
            f,
            "template_in({}, {} templates, {} by variables)",
            columns.join(", "),
            self.decisions.passing.len(),
            self.decisions.per_line.len()
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
        let rows = batch.num_rows();
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter()
            .map(|c| c.evaluate(batch)?.into_array(rows))
            .collect::<Result<_>>()?;
        let Some((templates, variable_arrays)) = arrays.split_first() else {
            return internal_err!("template_in() reads a template column");
        };
        // Variable columns are read as string views (the blocks' read schema).
        let variables: Vec<&StringViewArray> = variable_arrays
            .iter()
            .map(|a| match a.as_string_view_opt() {
                Some(views) => Ok(views),
                None => internal_err!(
                    "template_in() reads variables as string views, not {}",
                    a.data_type()
                ),
            })
            .collect::<Result<_>>()?;
        let mut missing = None;
        let mut per_line = |program: &LineProgram, row: usize| {
            let variable = |k: usize| {
                let column = variables.get(k)?;
                column.is_valid(row).then(|| column.value(row).as_bytes())
            };
            program.passes(&variable).unwrap_or_else(|| {
                missing = Some(row);
                false
            })
        };
        let passes = if let Some(dictionary) = templates.as_dictionary_opt::<Int32Type>() {
            let decisions = self.value_decisions(dictionary.values());
            let keys = dictionary.keys();
            let first_views = variables.first();
            let mut memo = FirstVariableMemo::new();
            BooleanBuffer::collect_bool(keys.len(), |row| {
                if keys.is_null(row) {
                    return false;
                }
                let key = keys.value(row);
                match decisions.get(key as usize) {
                    Some(RowDecision::Pass) => true,
                    Some(RowDecision::PerLine(program, first_only)) => {
                        let view = first_views
                            .filter(|_| *first_only)
                            .and_then(|v| FirstVariableMemo::key(v, row));
                        match view {
                            Some(view) => memo.answer(key, view, || per_line(program, row)),
                            None => per_line(program, row),
                        }
                    }
                    Some(RowDecision::Fail) | None => false,
                }
            })
        } else if let Some(strings) = templates.as_string_opt::<i32>() {
            BooleanBuffer::collect_bool(strings.len(), |row| {
                if strings.is_null(row) {
                    return false;
                }
                match self.decide(strings.value(row)) {
                    RowDecision::Pass => true,
                    RowDecision::PerLine(program, _) => per_line(&program, row),
                    RowDecision::Fail => false,
                }
            })
        } else {
            return internal_err!("template_in() reads strings, not {}", templates.data_type());
        };
        if let Some(row) = missing {
            return internal_err!(
                "template_in(): row {row} lacks a stored variable its template's filter needs"
            );
        }
        Ok(ColumnarValue::Array(Arc::new(BooleanArray::new(
            passes, None,
        ))))
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        self.columns.iter().collect()
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        match children.len() == self.columns.len() {
            true => Ok(Arc::new(TemplateFilter::new(
                children,
                self.decisions.clone(),
            ))),
            false => internal_err!(
                "template_in() has {} children, not {}",
                self.columns.len(),
                children.len()
            ),
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
    use crate::storage::line_template::template_and_variables_of;
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

    /// How many templates of the lines a filter decided, and how.
    #[derive(Debug)]
    struct Decided {
        /// Every line passes or every line fails.
        definite: usize,
        /// Per line, by a program over the line's variables.
        by_program: usize,
        templates: usize,
    }

    /// Every verdict agrees with the filter evaluated on each line of its
    /// template, and so does every program on every line of its template.
    fn check(filter: &Expr, matches: impl Fn(&str) -> bool, lines: &[String]) -> Decided {
        let conditions = LineConditions::new(vec![condition(filter.clone())]);
        let mut by_template: HashMap<String, Vec<&str>> = HashMap::new();
        for line in lines {
            by_template.entry(template(line)).or_default().push(line);
        }
        let mut decided = Decided {
            definite: 0,
            by_program: 0,
            templates: by_template.len(),
        };
        let (mut out, mut variables) = (Vec::new(), Vec::new());
        for (t, lines) in &by_template {
            let decision = conditions.decide(t);
            for line in lines {
                match &decision {
                    Decision::Pass => {
                        assert!(matches(line), "{filter}: {line:?} ({t:?}) should pass")
                    }
                    Decision::Fail => {
                        assert!(!matches(line), "{filter}: {line:?} ({t:?}) should fail")
                    }
                    Decision::PerLine(program) => {
                        template_and_variables_of(line, &mut out, &mut variables);
                        let variable = |k: usize| {
                            let at = variables.get(k)?.clone();
                            assert!(k < program.needs(), "{filter}: {t:?} reads variable {k}");
                            Some(&line.as_bytes()[at])
                        };
                        assert_eq!(
                            program.passes(&variable),
                            Some(matches(line)),
                            "{filter}: {line:?} ({t:?}) by its variables"
                        );
                    }
                    Decision::ReadLines => {}
                }
            }
            match decision {
                Decision::Pass | Decision::Fail => decided.definite += 1,
                Decision::PerLine(_) => decided.by_program += 1,
                Decision::ReadLines => {}
            }
        }
        decided
    }

    #[test]
    fn verdicts_agree_with_the_filter_on_every_line() {
        let lines = lines(20_000);
        // Templates decided per line by a program, over all filters.
        let mut by_program = 0;
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
            by_program += check(&filter, |l| l.contains(needle), &lines).by_program;
            let filter = not(contains(col("line"), lit(needle)));
            by_program += check(&filter, |l| !l.contains(needle), &lines).by_program;
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
            by_program += check(&filter, |l| re.is_match(l), &lines).by_program;
        }
        // Conjunctions, disjunctions and LIKE.
        let either = contains(col("line"), lit("reset")).or(contains(col("line"), lit("timeout")));
        by_program += check(
            &either,
            |l| l.contains("reset") || l.contains("timeout"),
            &lines,
        )
        .by_program;
        let both = contains(col("line"), lit("GET")).and(not(contains(col("line"), lit("error"))));
        by_program +=
            check(&both, |l| l.contains("GET") && !l.contains("error"), &lines).by_program;
        let like = col("line").like(lit("%user_%"));
        let re = regex::Regex::new("(?s)^.*user..*$").unwrap();
        by_program += check(&like, |l| re.is_match(l), &lines).by_program;
        assert!(
            by_program > 1_000,
            "{by_program} templates decided by programs"
        );
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
        let decided = check(&filter, |l| l.contains("connection reset"), &lines);
        assert_eq!(decided.definite, decided.templates);
        let filter = regexp_like(col("line"), lit("(?i)UPSTREAM TIMEOUT"), None);
        let decided = check(
            &filter,
            |l| l.to_lowercase().contains("upstream timeout"),
            &lines,
        );
        assert_eq!(decided.definite, decided.templates);
        // A word no number or hex id can hold is decided by static text alone.
        let filter = contains(col("line"), lit("timeout"));
        let decided = check(&filter, |l| l.contains("timeout"), &lines);
        assert_eq!(decided.definite, decided.templates);
        // A status code is a variable: decided per line from it.
        let filter = regexp_like(col("line"), lit("status=50[23]"), None);
        let decided = check(
            &filter,
            |l| l.contains("status=502") || l.contains("status=503"),
            &lines,
        );
        assert_eq!(decided.definite, 0);
        assert_eq!(decided.by_program, decided.templates);
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
    fn scans_with_the_same_filters_share_their_decisions() {
        let filters = |needle: &str| vec![contains(col("line"), lit(needle.to_string()))];
        let shared = |needle: &str| {
            let f = filters(needle);
            LineConditions::shared(f.iter().map(|e| condition(e.clone())).collect(), &f)
        };
        let first = shared("shared-decisions-test");
        first
            .lock()
            .block_verdict(&["shared-decisions-test \u{11}".to_string()], 0);
        let again = shared("shared-decisions-test");
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(again.lock().decisions.len(), 1);
        assert!(!Arc::ptr_eq(&first, &shared("other-decisions-test")));
    }

    #[test]
    fn block_verdicts_and_the_template_filter() {
        let mut conditions =
            LineConditions::new(vec![condition(contains(col("line"), lit("cache miss")))]);
        let templates = vec![
            "cache miss \u{11}".to_string(),
            "cache hit \u{11}".to_string(),
        ];
        let BlockVerdict::Decided(decided) = conditions.block_verdict(&templates, 0) else {
            panic!("one template passes");
        };
        assert_eq!(
            decided.passing,
            HashSet::from(["cache miss \u{11}".to_string()])
        );
        assert!(decided.per_line.is_empty());
        assert!(matches!(
            conditions.block_verdict(&templates[1..], 0),
            BlockVerdict::NoLine
        ));
        // Its lines depend on the first variable: a block that stores none
        // is read; one that does is decided per line.
        let depends = vec!["cache \u{14}".to_string(), "cache hit \u{11}".to_string()];
        assert!(matches!(
            conditions.block_verdict(&depends, 0),
            BlockVerdict::ReadLines
        ));
        let BlockVerdict::Decided(by_variables) = conditions.block_verdict(&depends, 1) else {
            panic!("decided by the first variable");
        };
        assert!(by_variables.passing.is_empty());
        assert_eq!(by_variables.needs(), 1);

        // Evaluated on a dictionary column, twice with the same dictionary;
        // the rows of the template decided per line repeat their variables.
        let mut all = decided;
        all.extend(by_variables);
        let mut rows = vec![
            ("cache hit \u{11}", "1"),
            ("cache miss \u{11}", "7"),
            ("cache miss \u{11}", "12"),
        ];
        let variables = ["miss9", "m1ss", "a-miss-of-more-than-12-bytes", "missing1"];
        rows.extend((0..40).map(|i| ("cache \u{14}", variables[i % 4])));
        let column: ArrayRef = Arc::new(
            rows.iter()
                .map(|(t, _)| *t)
                .collect::<arrow::array::DictionaryArray<Int32Type>>(),
        );
        let first: ArrayRef = Arc::new(arrow::array::StringViewArray::from(
            rows.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
        ));
        let schema = Arc::new(Schema::new(vec![
            Field::new(TEMPLATE_COLUMN, column.data_type().clone(), true),
            Field::new(variable_column(0), DataType::Utf8View, true),
        ]));
        let batch = RecordBatch::try_new(schema.clone(), vec![column, first]).unwrap();
        let filter = TemplateFilter::over(&schema, Arc::new(all)).unwrap();
        assert_eq!(filter.children().len(), 2);
        let expected: Vec<Option<bool>> = rows
            .iter()
            .map(|(t, v)| {
                Some(t.starts_with("cache miss") || (t == &"cache \u{14}" && v.starts_with("miss")))
            })
            .collect();
        for _ in 0..2 {
            let out = filter
                .evaluate(&batch)
                .unwrap()
                .into_array(rows.len())
                .unwrap();
            assert_eq!(out.as_boolean().iter().collect::<Vec<_>>(), expected);
        }
    }
}
