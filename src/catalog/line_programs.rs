//! Running a pattern's DFA over line templates: the abstract run that gives
//! a template's [`Verdict`] (every line passes, none does, or it depends on
//! the variables), and, for a template whose verdict depends, a
//! [`LineProgram`] that decides each of its lines from the variables a log
//! block stores beside the template (`line_var_0`, …), not from the line.
//!
//! The abstract run steps a set of DFA states: a static byte steps each
//! state, a variable steps each state by every non-empty run of the bytes
//! its kind allows (one byte per byte class of the DFA, to a fixed point).
//! It is generic over [`Stepper`]: the lazy DFA gives verdicts for any
//! pattern; a dense DFA (built only when some template depends, and only
//! within a size limit) gives programs, whose state ids stay valid while
//! queries run them on many threads.
//!
//! A [`MatchProgram`] walks a template's variables in order with one
//! concrete DFA state. At each variable it looks up, for that state, what
//! the abstract run from there says: decided (the rest of the line cannot
//! change the answer), the same whatever the variable holds (skip it), or
//! read it. A variable is read by stepping the DFA over its bytes; the
//! static text after it is one table lookup. For `status[=":]+50[23]` over
//! `… status=<n> latency_ms=<n> …` a line costs a lookup, three DFA steps
//! over the status code and a lookup, reading only `line_var_0`.

use std::collections::{BTreeSet, HashSet};
use std::hash::Hash;

use regex_automata::Anchored;
use regex_automata::dfa::Automaton;
use regex_automata::dfa::dense;
use regex_automata::hybrid::LazyStateID;
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;

use crate::storage::line_template::{Piece, VariableKind};

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

impl std::ops::Not for Verdict {
    type Output = Verdict;

    fn not(self) -> Verdict {
        match self {
            Verdict::Pass => Verdict::Fail,
            Verdict::Fail => Verdict::Pass,
            Verdict::Depends => Verdict::Depends,
        }
    }
}

impl Verdict {
    pub fn and(self, other: Verdict) -> Verdict {
        match (self, other) {
            (Verdict::Fail, _) | (_, Verdict::Fail) => Verdict::Fail,
            (Verdict::Pass, Verdict::Pass) => Verdict::Pass,
            _ => Verdict::Depends,
        }
    }

    pub fn or(self, other: Verdict) -> Verdict {
        !(!self).and(!other)
    }
}

/// Why a run gave up: a quit byte (`\b` next to non-ASCII), a full lazy
/// cache, or too many steps.
#[derive(Debug)]
pub struct GaveUp;

/// Where one DFA step leaves a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<S> {
    /// The path has a match: the line passes.
    Matched,
    /// No match can follow: the line fails.
    Dead,
    At(S),
}

/// A DFA as the abstract run steps it.
pub trait Stepper {
    type State: Copy + Ord + Hash;
    fn start(&mut self) -> Result<Self::State, GaveUp>;
    fn step(&mut self, state: Self::State, byte: u8) -> Result<Step<Self::State>, GaveUp>;
    /// Whether a path in `state` at the end of the line has a match.
    fn ends_matched(&mut self, state: Self::State) -> Result<bool, GaveUp>;
    /// One byte of each of the DFA's byte classes that holds a byte `kind` allows.
    fn variable_bytes(&self, kind: VariableKind) -> &[u8];
}

/// Per variable kind, one byte of each of a DFA's byte classes that holds a
/// byte the kind allows: the bytes a variable's closure steps by.
#[derive(Debug)]
pub struct VariableBytes([Vec<u8>; 3]);

impl VariableBytes {
    /// For a DFA whose byte class of a byte is `class_of`.
    pub fn new(class_of: impl Fn(u8) -> u8) -> Self {
        let bytes_of = |kind: VariableKind| {
            let mut seen = HashSet::new();
            (0..=255u8)
                .filter(|&b| kind.allows(b) && seen.insert(class_of(b)))
                .collect()
        };
        VariableBytes([
            bytes_of(VariableKind::Number),
            bytes_of(VariableKind::Hex),
            bytes_of(VariableKind::Other),
        ])
    }

    pub fn of(&self, kind: VariableKind) -> &[u8] {
        let [number, hex, other] = &self.0;
        match kind {
            VariableKind::Number => number,
            VariableKind::Hex => hex,
            VariableKind::Other => other,
        }
    }
}

/// A run stops (gives up) past this many DFA steps.
const MAX_STEPS: usize = 1 << 20;

/// An abstract run: the decided outcomes seen so far and a step budget.
struct Abstract<'a, D: Stepper> {
    dfa: &'a mut D,
    some_path_matched: bool,
    some_path_failed: bool,
    steps: usize,
}

impl<'a, D: Stepper> Abstract<'a, D> {
    fn new(dfa: &'a mut D) -> Self {
        Abstract {
            dfa,
            some_path_matched: false,
            some_path_failed: false,
            steps: 0,
        }
    }

    /// The next state on `byte`, None when the path is decided.
    fn step(&mut self, state: D::State, byte: u8) -> Result<Option<D::State>, GaveUp> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(GaveUp);
        }
        Ok(match self.dfa.step(state, byte)? {
            Step::Matched => {
                self.some_path_matched = true;
                None
            }
            Step::Dead => {
                self.some_path_failed = true;
                None
            }
            Step::At(s) => Some(s),
        })
    }

    fn bytes(&mut self, open: Vec<D::State>, bytes: &[u8]) -> Result<Vec<D::State>, GaveUp> {
        let mut open = open;
        for &b in bytes {
            if open.is_empty() {
                break;
            }
            let mut next = Vec::with_capacity(open.len());
            for &state in &open {
                next.extend(self.step(state, b)?);
            }
            next.sort_unstable();
            next.dedup();
            open = next;
        }
        Ok(open)
    }

    /// The open states after a variable of `kind`: every non-empty run of
    /// the bytes it allows, from each of `open`.
    fn variable(&mut self, open: &[D::State], kind: VariableKind) -> Result<Vec<D::State>, GaveUp> {
        let bytes = self.dfa.variable_bytes(kind).to_vec();
        let mut reached: BTreeSet<D::State> = BTreeSet::new();
        let mut frontier = open.to_vec();
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for &state in &frontier {
                for &b in &bytes {
                    if let Some(s) = self.step(state, b)?
                        && reached.insert(s)
                    {
                        next.push(s);
                    }
                }
            }
            frontier = next;
        }
        Ok(reached.into_iter().collect())
    }

    fn pieces(&mut self, open: Vec<D::State>, pieces: &[Piece]) -> Result<Vec<D::State>, GaveUp> {
        let mut open = open;
        for piece in pieces {
            open = match piece {
                Piece::Static(bytes) => self.bytes(open, bytes)?,
                Piece::Variable(kind) => self.variable(&open, *kind)?,
            };
        }
        Ok(open)
    }

    /// The verdict once the paths in `open` reach the end of the line.
    fn end(mut self, open: &[D::State]) -> Result<Verdict, GaveUp> {
        for &state in open {
            match self.dfa.ends_matched(state)? {
                true => self.some_path_matched = true,
                false => self.some_path_failed = true,
            }
        }
        Ok(match (self.some_path_matched, self.some_path_failed) {
            (false, _) => Verdict::Fail,
            (true, false) => Verdict::Pass,
            (true, true) => Verdict::Depends,
        })
    }
}

/// Whether every, no or some lines of `template` have a match.
pub fn verdict<D: Stepper>(dfa: &mut D, template: &[Piece]) -> Result<Verdict, GaveUp> {
    let start = dfa.start()?;
    let mut run = Abstract::new(dfa);
    let open = run.pieces(vec![start], template)?;
    run.end(&open)
}

/// The lazy DFA with its cache, as a [`Stepper`].
pub struct LazyStepper<'a> {
    pub dfa: &'a regex_automata::hybrid::dfa::DFA,
    pub cache: &'a mut regex_automata::hybrid::dfa::Cache,
    pub variable_bytes: &'a VariableBytes,
}

impl Stepper for LazyStepper<'_> {
    type State = LazyStateID;

    fn start(&mut self) -> Result<LazyStateID, GaveUp> {
        self.dfa
            .start_state(self.cache, &start::Config::new().anchored(Anchored::No))
            .map_err(|_| GaveUp)
    }

    fn step(&mut self, state: LazyStateID, byte: u8) -> Result<Step<LazyStateID>, GaveUp> {
        let next = self
            .dfa
            .next_state(self.cache, state, byte)
            .map_err(|_| GaveUp)?;
        if next.is_quit() {
            Err(GaveUp)
        } else if next.is_match() {
            Ok(Step::Matched)
        } else if next.is_dead() {
            Ok(Step::Dead)
        } else {
            Ok(Step::At(next))
        }
    }

    fn ends_matched(&mut self, state: LazyStateID) -> Result<bool, GaveUp> {
        let end = self
            .dfa
            .next_eoi_state(self.cache, state)
            .map_err(|_| GaveUp)?;
        match end.is_quit() {
            true => Err(GaveUp),
            false => Ok(end.is_match()),
        }
    }

    fn variable_bytes(&self, kind: VariableKind) -> &[u8] {
        self.variable_bytes.of(kind)
    }
}

/// A pattern's dense DFA, for [`MatchProgram`]s.
#[derive(Debug)]
pub struct DenseMatcher {
    dfa: dense::DFA<Vec<u32>>,
    variable_bytes: VariableBytes,
}

/// A dense DFA bigger than this is not built: its templates' lines are read.
const DENSE_DFA_BYTES: usize = 4 << 20;

impl DenseMatcher {
    /// None when the pattern's dense DFA would be too big.
    pub fn new(pattern: &str) -> Option<DenseMatcher> {
        let dfa = dense::Builder::new()
            .configure(
                dense::Config::new()
                    .unicode_word_boundary(true)
                    .dfa_size_limit(Some(DENSE_DFA_BYTES))
                    .determinize_size_limit(Some(DENSE_DFA_BYTES)),
            )
            .build(pattern)
            .ok()?;
        let classes = *dfa.byte_classes();
        let variable_bytes = VariableBytes::new(|b| classes.get(b));
        Some(DenseMatcher {
            dfa,
            variable_bytes,
        })
    }

    /// The program deciding each line of `template` (whose verdict
    /// depends) from its variables ([`MatchProgram::needs`] says how many);
    /// None when a byte quits the DFA, too many states meet at a variable,
    /// or the run gives up.
    pub fn program(&self, template: &[Piece]) -> Option<MatchProgram> {
        let mut dfa = self;
        MatchProgram::build(&mut dfa, template).ok()
    }

    /// Where `byte` leads a path in `state`. A program is built only where
    /// no byte quits, so a quit state (never met) reads as no match.
    fn step(&self, state: StateID, byte: u8) -> Step<StateID> {
        self.classify(self.dfa.next_state(state, byte))
    }

    fn classify(&self, next: StateID) -> Step<StateID> {
        match self.dfa.is_special_state(next) {
            false => Step::At(next),
            true if self.dfa.is_match_state(next) => Step::Matched,
            true if self.dfa.is_dead_state(next) || self.dfa.is_quit_state(next) => Step::Dead,
            true => Step::At(next),
        }
    }
}

impl Stepper for &DenseMatcher {
    type State = StateID;

    fn start(&mut self) -> Result<StateID, GaveUp> {
        self.dfa
            .start_state(&start::Config::new().anchored(Anchored::No))
            .map_err(|_| GaveUp)
    }

    fn step(&mut self, state: StateID, byte: u8) -> Result<Step<StateID>, GaveUp> {
        let next = self.dfa.next_state(state, byte);
        match self.dfa.is_quit_state(next) {
            true => Err(GaveUp),
            false => Ok(self.classify(next)),
        }
    }

    fn ends_matched(&mut self, state: StateID) -> Result<bool, GaveUp> {
        let end = self.dfa.next_eoi_state(state);
        match self.dfa.is_quit_state(end) {
            true => Err(GaveUp),
            false => Ok(self.dfa.is_match_state(end)),
        }
    }

    fn variable_bytes(&self, kind: VariableKind) -> &[u8] {
        self.variable_bytes.of(kind)
    }
}

/// What a line's path does at one of its template's variables, by the
/// path's state there.
#[derive(Debug, Clone, Copy)]
enum AtVariable {
    /// The line's answer, whatever the rest holds.
    Decided(bool),
    /// The same step whatever the variable holds.
    Skip(Step<StateID>),
    /// Step over the variable's bytes.
    Read,
}

/// A template's variable: what to do there, and the static text after it.
#[derive(Debug)]
struct VariableStep {
    /// By state on reaching the variable.
    at: Vec<(StateID, AtVariable)>,
    /// By state after the variable: where the static text after it leads.
    after: Vec<(StateID, Step<StateID>)>,
}

/// Too many states at one variable: the program is not built.
const MAX_STATES_AT_VARIABLE: usize = 64;

/// Decides each line of one template from the variables a block stores.
#[derive(Debug)]
pub struct MatchProgram {
    /// Where the static text before the first variable leads.
    start: Step<StateID>,
    variables: Vec<VariableStep>,
    /// By state at the end of the line: whether it has a match.
    end: Vec<(StateID, bool)>,
    /// The variables some line may need: positions below this.
    needs: usize,
}

fn lookup<T: Copy>(table: &[(StateID, T)], state: StateID) -> Option<T> {
    table.iter().find(|(s, _)| *s == state).map(|(_, t)| *t)
}

impl MatchProgram {
    fn build(dfa: &mut &DenseMatcher, template: &[Piece]) -> Result<MatchProgram, GaveUp> {
        // The template as static text, then (variable, static text after it)s.
        let mut prefix: Vec<u8> = Vec::new();
        let mut variables: Vec<(VariableKind, Vec<u8>)> = Vec::new();
        for piece in template {
            match piece {
                Piece::Static(bytes) => match variables.last_mut() {
                    Some((_, after)) => after.extend_from_slice(bytes),
                    None => prefix.extend_from_slice(bytes),
                },
                Piece::Variable(kind) => variables.push((*kind, Vec::new())),
            }
        }
        let rest_of = |k: usize| -> Vec<Piece> {
            variables[k..]
                .iter()
                .flat_map(|(kind, after)| [Piece::Variable(*kind), Piece::Static(after.clone())])
                .collect()
        };
        let start_state = dfa.start()?;
        let start = run_concrete(dfa, start_state, &prefix)?;
        let mut program = MatchProgram {
            start,
            variables: Vec::with_capacity(variables.len()),
            end: Vec::new(),
            needs: 0,
        };
        let mut states: BTreeSet<StateID> = match start {
            Step::At(s) => [s].into(),
            _ => BTreeSet::new(),
        };
        for (k, (kind, after)) in variables.iter().enumerate() {
            if states.len() > MAX_STATES_AT_VARIABLE {
                return Err(GaveUp);
            }
            let rest = rest_of(k);
            let mut step = VariableStep {
                at: Vec::new(),
                after: Vec::new(),
            };
            let mut leaving: BTreeSet<StateID> = BTreeSet::new();
            for &state in &states {
                // What the rest of the line can still make of this path.
                let mut run = Abstract::new(dfa);
                let open = run.pieces(vec![state], &rest)?;
                let verdict = run.end(&open)?;
                let action = match verdict {
                    Verdict::Pass => AtVariable::Decided(true),
                    Verdict::Fail => AtVariable::Decided(false),
                    Verdict::Depends => {
                        let mut run = Abstract::new(dfa);
                        let reached = run.variable(&[state], *kind)?;
                        let outcomes = reached.len()
                            + usize::from(run.some_path_matched)
                            + usize::from(run.some_path_failed);
                        leaving.extend(&reached);
                        match (outcomes, reached.first()) {
                            (1, Some(&s)) => AtVariable::Skip(Step::At(s)),
                            (1, None) if run.some_path_matched => AtVariable::Skip(Step::Matched),
                            (1, None) => AtVariable::Skip(Step::Dead),
                            _ => {
                                program.needs = program.needs.max(k + 1);
                                AtVariable::Read
                            }
                        }
                    }
                };
                step.at.push((state, action));
            }
            states.clear();
            for &state in &leaving {
                let next = run_concrete(dfa, state, after)?;
                step.after.push((state, next));
                if let Step::At(s) = next {
                    states.insert(s);
                }
            }
            program.variables.push(step);
        }
        for &state in &states {
            program.end.push((state, dfa.ends_matched(state)?));
        }
        Ok(program)
    }

    /// The variables some line may need: positions below this.
    pub fn needs(&self) -> usize {
        self.needs
    }

    /// Whether a line of the template has a match, from its variables by
    /// position; None when one it needs is missing.
    pub fn matches<'v>(
        &self,
        dfa: &DenseMatcher,
        variable: &impl Fn(usize) -> Option<&'v [u8]>,
    ) -> Option<bool> {
        let mut state = match self.start {
            Step::Matched => return Some(true),
            Step::Dead => return Some(false),
            Step::At(s) => s,
        };
        for (k, step) in self.variables.iter().enumerate() {
            let moved = match lookup(&step.at, state)? {
                AtVariable::Decided(answer) => return Some(answer),
                AtVariable::Skip(next) => next,
                AtVariable::Read => {
                    let mut next = Step::At(state);
                    for &b in variable(k)? {
                        let Step::At(s) = next else { break };
                        next = dfa.step(s, b);
                    }
                    next
                }
            };
            state = match moved {
                Step::Matched => return Some(true),
                Step::Dead => return Some(false),
                Step::At(s) => s,
            };
            state = match lookup(&step.after, state)? {
                Step::Matched => return Some(true),
                Step::Dead => return Some(false),
                Step::At(s) => s,
            };
        }
        lookup(&self.end, state)
    }
}

/// Where `bytes` lead a path from `state`.
fn run_concrete<D: Stepper>(
    dfa: &mut D,
    state: D::State,
    bytes: &[u8],
) -> Result<Step<D::State>, GaveUp> {
    let mut at = Step::At(state);
    for &b in bytes {
        match at {
            Step::At(s) => at = dfa.step(s, b)?,
            _ => break,
        }
    }
    Ok(at)
}
