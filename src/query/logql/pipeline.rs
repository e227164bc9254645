//! A compiled LogQL pipeline: the stages of a log expression turned into
//! matchers, parsers and templates once per query, then run on every log
//! entry (its line, timestamp and label set) in order. An entry leaves the
//! pipeline rewritten (line, labels) or dropped.
//!
//! Labels follow Loki's builder: the stream labels and structured metadata
//! an entry starts with, parsed labels added by parser stages (a parsed
//! name that collides with a stream label or structured metadata gets the
//! `_extracted` suffix), and the error labels `__error__` /
//! `__error_details__` set by stages that fail on a line (the line is kept).

use std::borrow::Cow;

use memchr::memmem;
use o11ydb_udfs::logql::{ansi, ip::IpMatcher, json, logfmt, pattern::Pattern, template};
use o11ydb_udfs::logql::{labels::sanitize_label_name, units};
use regex::Regex;

use super::LogqlError;
use super::ast::{
    CompareOp, LabelFilter, LabelFormatSource, LabelSelection, LineFilter, LineFilterOp,
    LineFilterValue, LogExpr, MatchOp, Matcher, ParserStage, Stage,
};
pub use crate::query::go_text::{go_parse_float as parse_go_float, go_quote};
use crate::query::promql::Labels;

pub const ERROR_LABEL: &str = "__error__";
pub const ERROR_DETAILS_LABEL: &str = "__error_details__";
const DUPLICATE_SUFFIX: &str = "_extracted";

pub const ERR_JSON: &str = "JSONParserErr";
pub const ERR_LOGFMT: &str = "LogfmtParserErr";
pub const ERR_LABEL_FILTER: &str = "LabelFilterErr";
pub const ERR_TEMPLATE: &str = "TemplateFormatErr";
pub const ERR_SAMPLE_EXTRACTION: &str = "SampleExtractionErr";

/// One log entry as it flows through the pipeline.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub timestamp_ns: i64,
    pub line: Cow<'a, str>,
    /// Stream labels + structured metadata + parsed and error labels.
    pub labels: Labels,
    /// The first `base_len` labels are the stream labels and structured
    /// metadata the entry arrived with: the names parsed labels must not take.
    pub base_len: usize,
    /// Those names, copied before a stage first removes a label (so later
    /// parsers still see the original names).
    base_names: Option<Vec<String>>,
}

impl<'a> Entry<'a> {
    /// An entry whose `labels` are all stream labels or structured metadata.
    pub fn new(timestamp_ns: i64, line: Cow<'a, str>, labels: Labels) -> Self {
        Entry {
            timestamp_ns,
            line,
            base_len: labels.len(),
            labels,
            base_names: None,
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn set(&mut self, name: &str, value: String) {
        match self.labels.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.labels.push((name.to_string(), value)),
        }
    }

    pub fn delete(&mut self, name: &str) {
        self.freeze_base();
        self.labels.retain(|(n, _)| n != name);
    }

    /// Keeps the base names before labels are removed or reordered.
    fn freeze_base(&mut self) {
        if self.base_names.is_none() {
            self.base_names = Some(
                self.labels[..self.base_len.min(self.labels.len())]
                    .iter()
                    .map(|(n, _)| n.clone())
                    .collect(),
            );
        }
    }

    fn is_base(&self, name: &str) -> bool {
        match &self.base_names {
            Some(names) => names.iter().any(|n| n == name),
            None => self.labels[..self.base_len].iter().any(|(n, _)| n == name),
        }
    }

    pub fn has_error(&self) -> bool {
        self.get(ERROR_LABEL).is_some_and(|v| !v.is_empty())
    }

    /// Sets `__error__` and its details (Loki overwrites an earlier error).
    pub fn set_error(&mut self, error: &str, details: String) {
        self.set(ERROR_LABEL, error.to_string());
        self.set(ERROR_DETAILS_LABEL, details);
    }

    /// Adds a label found by a parser, renamed on collision with the
    /// entry's stream labels or structured metadata.
    fn set_parsed(&mut self, name: &str, value: String) {
        if self.is_base(name) {
            let renamed = format!("{name}{DUPLICATE_SUFFIX}");
            self.set(&renamed, value);
        } else {
            self.set(name, value);
        }
    }
}

/// A compiled pipeline.
#[derive(Debug)]
pub struct Pipeline {
    stages: Vec<CompiledStage>,
}

#[derive(Debug)]
enum CompiledStage {
    LineFilter {
        negated: bool,
        alternatives: Vec<LineMatcher>,
    },
    Json(Vec<(String, json::JsonExpression)>),
    Logfmt {
        strict: bool,
        keep_empty: bool,
        extractions: Vec<(String, String)>,
    },
    Regexp {
        regex: Regex,
        names: Vec<Option<String>>,
    },
    Pattern(Pattern),
    Unpack,
    LabelFilter(CompiledLabelFilter),
    LineFormat(template::Template),
    LabelFormat(Vec<(String, CompiledFormat)>),
    Drop(Vec<Selection>),
    Keep(Vec<Selection>),
    Decolorize,
}

#[derive(Debug)]
enum LineMatcher {
    Contains(Box<memmem::Finder<'static>>),
    Regex(Regex),
    Pattern(Pattern),
    Ip(IpMatcher),
}

impl LineMatcher {
    fn is_match(&self, line: &str) -> bool {
        match self {
            LineMatcher::Contains(f) => f.find(line.as_bytes()).is_some(),
            LineMatcher::Regex(r) => r.is_match(line),
            LineMatcher::Pattern(p) => p.is_match(line),
            LineMatcher::Ip(m) => m.matches_line(line),
        }
    }
}

#[derive(Debug)]
enum CompiledFormat {
    Rename(String),
    Template(template::Template),
}

/// A label matcher with its regex compiled (anchored).
#[derive(Debug)]
pub struct LabelMatcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<Regex>,
}

impl LabelMatcher {
    pub fn compile(m: &Matcher, query: &str) -> Result<LabelMatcher, LogqlError> {
        let regex = match m.op {
            MatchOp::Re | MatchOp::Nre => Some(
                Regex::new(&format!("^(?s:{})$", m.value))
                    .map_err(|e| bad_at(query, m.pos, format!("invalid regex: {e}")))?,
            ),
            _ => None,
        };
        Ok(LabelMatcher {
            name: m.name.clone(),
            op: m.op,
            value: m.value.clone(),
            regex,
        })
    }

    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Eq => value == self.value,
            MatchOp::Neq => value != self.value,
            MatchOp::Re => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::Nre => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether a label set (a missing label reads as "") satisfies the matcher.
    pub fn matches_labels(&self, labels: &[(String, String)]) -> bool {
        let value = labels
            .iter()
            .find(|(n, _)| *n == self.name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        self.matches(value)
    }
}

#[derive(Debug)]
enum Selection {
    Name(String),
    Matcher(LabelMatcher),
}

#[derive(Debug)]
enum CompiledLabelFilter {
    And(Box<CompiledLabelFilter>, Box<CompiledLabelFilter>),
    Or(Box<CompiledLabelFilter>, Box<CompiledLabelFilter>),
    String(LabelMatcher),
    Numeric {
        name: String,
        op: CompareOp,
        value: f64,
        kind: NumericKind,
    },
    Ip {
        name: String,
        negated: bool,
        matcher: IpMatcher,
    },
}

#[derive(Debug, Clone, Copy)]
enum NumericKind {
    Number,
    Duration,
    Bytes,
}

/// A LogQL error at a byte offset of the query text, with line and column.
pub fn bad_at(query: &str, pos: usize, message: impl std::fmt::Display) -> LogqlError {
    LogqlError::BadQuery(super::ParseError::at(query, pos, message.to_string()).to_string())
}

impl Pipeline {
    /// Compiles the stages of `log` (`query` is the text, for error positions).
    pub fn compile(log: &LogExpr, query: &str) -> Result<Pipeline, LogqlError> {
        Self::compile_stages(&log.pipeline, query)
    }

    pub fn compile_stages(stages: &[Stage], query: &str) -> Result<Pipeline, LogqlError> {
        let stages = stages
            .iter()
            .map(|s| compile_stage(s, query))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Pipeline { stages })
    }

    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Runs every stage; false when a filter dropped the entry.
    pub fn process(&self, entry: &mut Entry<'_>) -> bool {
        self.stages.iter().all(|s| run_stage(s, entry))
    }
}

fn compile_stage(stage: &Stage, query: &str) -> Result<CompiledStage, LogqlError> {
    Ok(match stage {
        Stage::LineFilter(f) => compile_line_filter(f, query)?,
        Stage::Parser(p) => match p {
            ParserStage::Json(extractions) => CompiledStage::Json(
                extractions
                    .iter()
                    .map(|e| {
                        json::JsonExpression::compile(&e.expression)
                            .map(|x| (e.label.clone(), x))
                            .map_err(|m| {
                                bad_at(
                                    query,
                                    e.pos,
                                    format!("cannot parse expression [{}]: {m}", e.expression),
                                )
                            })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            ParserStage::Logfmt {
                strict,
                keep_empty,
                extractions,
            } => CompiledStage::Logfmt {
                strict: *strict,
                keep_empty: *keep_empty,
                extractions: extractions
                    .iter()
                    .map(|e| (e.label.clone(), e.expression.clone()))
                    .collect(),
            },
            ParserStage::Regexp { pattern, pos } => {
                let regex = Regex::new(pattern)
                    .map_err(|e| bad_at(query, *pos, format!("invalid regex: {e}")))?;
                let names: Vec<Option<String>> = regex
                    .capture_names()
                    .map(|n| n.map(sanitize_label_name).filter(|n| !n.is_empty()))
                    .collect();
                if names.iter().all(Option::is_none) {
                    return Err(bad_at(
                        query,
                        *pos,
                        "at least one named capture must be supplied",
                    ));
                }
                CompiledStage::Regexp { regex, names }
            }
            ParserStage::Pattern { pattern, pos } => CompiledStage::Pattern(
                Pattern::compile_parser(pattern).map_err(|m| bad_at(query, *pos, m))?,
            ),
            ParserStage::Unpack => CompiledStage::Unpack,
        },
        Stage::LabelFilter(f) => CompiledStage::LabelFilter(compile_label_filter(f, query)?),
        Stage::LineFormat { template, pos } => {
            CompiledStage::LineFormat(compile_template(template, *pos, query)?)
        }
        Stage::LabelFormat(items) => CompiledStage::LabelFormat(
            items
                .iter()
                .map(|item| {
                    let source = match &item.source {
                        LabelFormatSource::Rename(from) => CompiledFormat::Rename(from.clone()),
                        LabelFormatSource::Template(t) => {
                            CompiledFormat::Template(compile_template(t, item.pos, query)?)
                        }
                    };
                    Ok((item.target.clone(), source))
                })
                .collect::<Result<_, LogqlError>>()?,
        ),
        Stage::Drop(list) => CompiledStage::Drop(compile_selections(list, query)?),
        Stage::Keep(list) => CompiledStage::Keep(compile_selections(list, query)?),
        Stage::Decolorize => CompiledStage::Decolorize,
    })
}

fn compile_template(text: &str, pos: usize, query: &str) -> Result<template::Template, LogqlError> {
    template::Template::compile(text)
        .map_err(|e| bad_at(query, pos, format!("invalid template: {}", e.message)))
}

fn compile_selections(list: &[LabelSelection], query: &str) -> Result<Vec<Selection>, LogqlError> {
    list.iter()
        .map(|s| {
            Ok(match s {
                LabelSelection::Name(n) => Selection::Name(n.clone()),
                LabelSelection::Matcher(m) => Selection::Matcher(LabelMatcher::compile(m, query)?),
            })
        })
        .collect()
}

fn compile_line_filter(f: &LineFilter, query: &str) -> Result<CompiledStage, LogqlError> {
    let negated = matches!(
        f.op,
        LineFilterOp::NotContains | LineFilterOp::NotRegex | LineFilterOp::NotPattern
    );
    let alternatives = f
        .values
        .iter()
        .map(|v| {
            Ok(match (f.op, v) {
                (_, LineFilterValue::Ip(range)) => {
                    LineMatcher::Ip(IpMatcher::compile(range).map_err(|m| bad_at(query, f.pos, m))?)
                }
                (LineFilterOp::Contains | LineFilterOp::NotContains, LineFilterValue::Text(t)) => {
                    LineMatcher::Contains(Box::new(memmem::Finder::new(t.as_bytes()).into_owned()))
                }
                (LineFilterOp::Regex | LineFilterOp::NotRegex, LineFilterValue::Text(t)) => {
                    LineMatcher::Regex(
                        Regex::new(t)
                            .map_err(|e| bad_at(query, f.pos, format!("invalid regex: {e}")))?,
                    )
                }
                (LineFilterOp::Pattern | LineFilterOp::NotPattern, LineFilterValue::Text(t)) => {
                    LineMatcher::Pattern(
                        Pattern::compile_line_filter(t).map_err(|m| bad_at(query, f.pos, m))?,
                    )
                }
            })
        })
        .collect::<Result<Vec<_>, LogqlError>>()?;
    Ok(CompiledStage::LineFilter {
        negated,
        alternatives,
    })
}

fn compile_label_filter(f: &LabelFilter, query: &str) -> Result<CompiledLabelFilter, LogqlError> {
    Ok(match f {
        LabelFilter::And(a, b) => CompiledLabelFilter::And(
            Box::new(compile_label_filter(a, query)?),
            Box::new(compile_label_filter(b, query)?),
        ),
        LabelFilter::Or(a, b) => CompiledLabelFilter::Or(
            Box::new(compile_label_filter(a, query)?),
            Box::new(compile_label_filter(b, query)?),
        ),
        LabelFilter::String(m) => CompiledLabelFilter::String(LabelMatcher::compile(m, query)?),
        LabelFilter::Number {
            name, op, value, ..
        } => CompiledLabelFilter::Numeric {
            name: name.clone(),
            op: *op,
            value: *value,
            kind: NumericKind::Number,
        },
        LabelFilter::Duration {
            name, op, seconds, ..
        } => CompiledLabelFilter::Numeric {
            name: name.clone(),
            op: *op,
            value: *seconds,
            kind: NumericKind::Duration,
        },
        LabelFilter::Bytes {
            name, op, bytes, ..
        } => CompiledLabelFilter::Numeric {
            name: name.clone(),
            op: *op,
            value: *bytes,
            kind: NumericKind::Bytes,
        },
        LabelFilter::Ip {
            name,
            negated,
            range,
            pos,
        } => CompiledLabelFilter::Ip {
            name: name.clone(),
            negated: *negated,
            matcher: IpMatcher::compile(range).map_err(|m| bad_at(query, *pos, m))?,
        },
    })
}

fn run_stage(stage: &CompiledStage, entry: &mut Entry<'_>) -> bool {
    match stage {
        CompiledStage::LineFilter {
            negated,
            alternatives,
        } => {
            let any = alternatives.iter().any(|m| m.is_match(&entry.line));
            any != *negated
        }
        CompiledStage::Json(expressions) => {
            let parsed = if expressions.is_empty() {
                json::parse(&entry.line)
            } else {
                json::extract(&entry.line, expressions)
            };
            match parsed {
                Ok(pairs) => {
                    for (k, v) in pairs {
                        entry.set_parsed(&k, v);
                    }
                }
                Err(details) => entry.set_error(ERR_JSON, details),
            }
            true
        }
        CompiledStage::Logfmt {
            strict,
            keep_empty,
            extractions,
        } => {
            let mut pairs = Vec::new();
            let result = if extractions.is_empty() {
                logfmt::parse_into(&entry.line, *strict, *keep_empty, &mut pairs)
            } else {
                logfmt::extract(&entry.line, extractions, *strict).map(|found| pairs = found)
            };
            for (k, v) in pairs {
                entry.set_parsed(&k, v);
            }
            if let Err(details) = result {
                entry.set_error(ERR_LOGFMT, details);
            }
            true
        }
        CompiledStage::Regexp { regex, names } => {
            if let Some(caps) = regex.captures(&entry.line) {
                let found: Vec<(String, String)> = names
                    .iter()
                    .enumerate()
                    .filter_map(|(i, name)| {
                        let name = name.as_ref()?;
                        let value = caps.get(i).map_or("", |m| m.as_str());
                        Some((name.clone(), value.to_string()))
                    })
                    .collect();
                for (k, v) in found {
                    entry.set_parsed(&k, v);
                }
            }
            true
        }
        CompiledStage::Pattern(p) => {
            let found: Vec<(String, String)> = p
                .captures(&entry.line)
                .map(|caps| {
                    caps.into_iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                })
                .unwrap_or_default();
            for (k, v) in found {
                entry.set_parsed(&k, v);
            }
            true
        }
        CompiledStage::Unpack => {
            match json::unpack(&entry.line) {
                Ok((pairs, line)) => {
                    for (k, v) in pairs {
                        entry.set_parsed(&k, v);
                    }
                    if let Some(line) = line {
                        entry.line = Cow::Owned(line);
                    }
                }
                Err(details) => entry.set_error(ERR_JSON, details),
            }
            true
        }
        CompiledStage::LabelFilter(f) => label_filter(f, entry),
        CompiledStage::LineFormat(t) => {
            let rendered = t.render(&template::TemplateData {
                labels: &entry.labels,
                line: &entry.line,
                timestamp_ns: entry.timestamp_ns,
            });
            match rendered {
                Ok(line) => entry.line = Cow::Owned(line),
                Err(details) => entry.set_error(ERR_TEMPLATE, details),
            }
            true
        }
        CompiledStage::LabelFormat(items) => {
            let mut snapshot: Option<Labels> = None;
            for (target, source) in items {
                match source {
                    CompiledFormat::Rename(from) => {
                        if let Some(v) = entry.get(from).map(str::to_string) {
                            entry.set(target, v);
                            entry.delete(from);
                        }
                    }
                    CompiledFormat::Template(t) => {
                        let labels = snapshot.get_or_insert_with(|| entry.labels.clone());
                        let rendered = t.render(&template::TemplateData {
                            labels,
                            line: &entry.line,
                            timestamp_ns: entry.timestamp_ns,
                        });
                        match rendered {
                            Ok(v) => entry.set(target, v),
                            Err(details) => entry.set_error(ERR_TEMPLATE, details),
                        }
                    }
                }
            }
            true
        }
        CompiledStage::Drop(list) => {
            for s in list {
                match s {
                    Selection::Name(n) => entry.delete(n),
                    Selection::Matcher(m) => {
                        if entry.get(&m.name).is_some_and(|v| m.matches(v)) {
                            entry.delete(&m.name);
                        }
                    }
                }
            }
            true
        }
        CompiledStage::Keep(list) => {
            if !list.is_empty() {
                entry.freeze_base();
                entry.labels.retain(|(name, value)| {
                    name == ERROR_LABEL
                        || name == ERROR_DETAILS_LABEL
                        || list.iter().any(|s| match s {
                            Selection::Name(n) => n == name,
                            Selection::Matcher(m) => m.name == *name && m.matches(value),
                        })
                });
            }
            true
        }
        CompiledStage::Decolorize => {
            if let Cow::Owned(stripped) = ansi::strip(&entry.line) {
                entry.line = Cow::Owned(stripped);
            }
            true
        }
    }
}

fn label_filter(f: &CompiledLabelFilter, entry: &mut Entry<'_>) -> bool {
    match f {
        CompiledLabelFilter::And(a, b) => {
            let left = label_filter(a, entry);
            let right = label_filter(b, entry);
            left && right
        }
        CompiledLabelFilter::Or(a, b) => label_filter(a, entry) || label_filter(b, entry),
        CompiledLabelFilter::String(m) => m.matches(entry.get(&m.name).unwrap_or("")),
        CompiledLabelFilter::Numeric {
            name,
            op,
            value,
            kind,
        } => {
            let Some(text) = entry.get(name) else {
                return false;
            };
            let parsed = match kind {
                NumericKind::Number => parse_go_float(text).ok_or_else(|| {
                    format!(
                        "strconv.ParseFloat: parsing {}: invalid syntax",
                        go_quote(text)
                    )
                }),
                NumericKind::Duration => units::parse_duration_seconds(text)
                    .ok_or_else(|| format!("time: invalid duration {}", go_quote(text))),
                NumericKind::Bytes => units::parse_bytes(text).ok_or_else(|| {
                    format!(
                        "strconv.ParseFloat: parsing {}: invalid syntax",
                        go_quote(text)
                    )
                }),
            };
            match parsed {
                Ok(v) => compare(*op, v, *value),
                Err(details) => {
                    if !entry.has_error() {
                        entry.set_error(ERR_LABEL_FILTER, details);
                    }
                    true
                }
            }
        }
        CompiledLabelFilter::Ip {
            name,
            negated,
            matcher,
        } => {
            let matched = entry.get(name).is_some_and(|v| matcher.matches_value(v));
            matched != *negated
        }
    }
}

fn compare(op: CompareOp, a: f64, b: f64) -> bool {
    match op {
        CompareOp::Eq => a == b,
        CompareOp::Neq => a != b,
        CompareOp::Gt => a > b,
        CompareOp::Ge => a >= b,
        CompareOp::Lt => a < b,
        CompareOp::Le => a <= b,
    }
}
