//! Rule files: Prometheus' rule-file YAML (`groups:` of `record:` and
//! `alert:` rules) → checked [`RuleGroup`]s, or every problem found, each
//! with its file, line and column.
//!
//! What flows through: a file's text and the language its expressions are
//! written in ([`Language`]: PromQL for `rule_path`, LogQL for
//! `loki_rule_path`) come in; the YAML is read with node positions
//! (`saphyr`), decoded field by field (unknown fields are errors, as
//! Prometheus' strict decoding has them), and checked as `promtool check
//! rules` checks: group names present and unique, exactly one of
//! `record`/`alert`, valid metric, label and annotation names, parsable
//! expressions (the parser's position inside the expression is kept), label
//! and annotation templates that compile, no `for`, `keep_firing_for` or
//! annotations on a recording rule.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use o11ydb_udfs::logql::template::Template;
use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

/// The language of a rule file's expressions. `rate({a="b"}[5m])` is both
/// valid PromQL and valid LogQL, so the language comes from where the file
/// is, never from its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Language {
    Promql,
    Logql,
}

impl Language {
    pub fn name(self) -> &'static str {
        match self {
            Language::Promql => "promql",
            Language::Logql => "logql",
        }
    }
}

/// One problem in a rule file, at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// A group of rules evaluated together, in order, on one interval.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleGroup {
    pub name: String,
    /// The file the group was read from.
    pub file: PathBuf,
    pub language: Language,
    /// `None`: the ruler's `evaluation_interval`.
    pub interval: Option<Duration>,
    /// Most series a recording rule or alerts an alerting rule may produce
    /// (0: no limit); past it the rule fails and writes nothing.
    pub limit: usize,
    /// Queries are evaluated this far before the evaluation time.
    pub query_offset: Duration,
    /// Labels added to every rule's output (rule labels override them).
    pub labels: Vec<(String, String)>,
    pub rules: Vec<Arc<Rule>>,
}

/// Whether a rule records a series or raises alerts.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    Record,
    Alert {
        /// Pending this long before firing.
        hold: Duration,
        /// Still firing this long after the condition stops.
        keep_firing_for: Duration,
        annotations: Vec<(String, String)>,
    },
}

/// One rule, checked.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The `record` metric name or the `alert` name.
    pub name: String,
    pub expr: String,
    pub kind: RuleKind,
    pub labels: Vec<(String, String)>,
    /// Line of the rule in its file.
    pub line: usize,
    /// Alerting rules: the compiled label and annotation templates, in
    /// the order of `labels` then `annotations`.
    pub templates: Vec<Template>,
}

impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.expr == other.expr
            && self.kind == other.kind
            && self.labels == other.labels
    }
}

impl Rule {
    pub fn is_alert(&self) -> bool {
        matches!(self.kind, RuleKind::Alert { .. })
    }
}

/// Reads and checks one rule file.
pub fn load_file(path: &Path, language: Language) -> Result<Vec<RuleGroup>, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic {
            file: path.to_path_buf(),
            line: 1,
            column: 1,
            message: format!("cannot read the file: {e}"),
        }]
    })?;
    parse(path, &text, language)
}

/// Checks a rule file's text; `Err` lists every problem found.
pub fn parse(
    path: &Path,
    text: &str,
    language: Language,
) -> Result<Vec<RuleGroup>, Vec<Diagnostic>> {
    let mut checker = Checker {
        file: path.to_path_buf(),
        language,
        problems: Vec::new(),
    };
    let groups = checker.file(text);
    if checker.problems.is_empty() {
        Ok(groups)
    } else {
        Err(checker.problems)
    }
}

/// What `o11ydb check rules` prints and whether every file passed.
pub struct CheckReport {
    pub text: String,
    pub ok: bool,
}

/// Checks rule files like `promtool check rules`: one block per file,
/// `SUCCESS: N rules found` or `FAILED:` and every problem with its line.
pub fn check_files(paths: &[PathBuf], language: Language) -> CheckReport {
    use std::fmt::Write;
    let mut text = String::new();
    let mut ok = true;
    for path in paths {
        let _ = writeln!(text, "Checking {}", path.display());
        match load_file(path, language) {
            Ok(groups) => {
                let rules: usize = groups.iter().map(|g| g.rules.len()).sum();
                let _ = writeln!(text, "  SUCCESS: {rules} rules found");
            }
            Err(problems) => {
                ok = false;
                let _ = writeln!(text, "  FAILED:");
                for p in problems {
                    let _ = writeln!(text, "{p}");
                }
            }
        }
        text.push('\n');
    }
    CheckReport { text, ok }
}

struct Checker {
    file: PathBuf,
    language: Language,
    problems: Vec<Diagnostic>,
}

type Node<'a> = MarkedYaml<'a>;

fn pos(node: &Node<'_>) -> (usize, usize) {
    (node.span.start.line(), node.span.start.col() + 1)
}

/// The text of a scalar as Go's YAML decoder gives it to a string field.
fn scalar_text(node: &Node<'_>) -> Option<String> {
    match &node.data {
        YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
        YamlData::Value(Scalar::Integer(i)) => Some(i.to_string()),
        YamlData::Value(Scalar::FloatingPoint(f)) => Some(f.to_string()),
        YamlData::Value(Scalar::Boolean(b)) => Some(b.to_string()),
        YamlData::Representation(s, _, _) => Some(s.to_string()),
        _ => None,
    }
}

fn is_null(node: &Node<'_>) -> bool {
    matches!(node.data, YamlData::Value(Scalar::Null))
}

/// Prometheus' metric name syntax.
pub fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Prometheus' label name syntax.
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A Prometheus duration (`30s`, `1h30m`, `0`); `None` when malformed.
pub fn parse_prometheus_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    o11ydb_udfs::logql::template::prometheus::duration_ms(s).map(Duration::from_millis)
}

impl Checker {
    fn problem(&mut self, at: (usize, usize), message: impl Into<String>) {
        self.problems.push(Diagnostic {
            file: self.file.clone(),
            line: at.0,
            column: at.1,
            message: message.into(),
        });
    }

    fn file(&mut self, text: &str) -> Vec<RuleGroup> {
        let docs = match Node::load_from_str(text) {
            Ok(docs) => docs,
            Err(e) => {
                let m = e.marker();
                self.problem((m.line(), m.col() + 1), format!("YAML: {}", e.info()));
                return Vec::new();
            }
        };
        let Some(root) = docs.first() else {
            return Vec::new();
        };
        if docs.len() > 1 {
            let at = pos(&docs[1]);
            self.problem(at, "a rule file holds one YAML document");
        }
        if is_null(root) {
            return Vec::new();
        }
        let Some(fields) = self.mapping(root, "the rule file") else {
            return Vec::new();
        };
        let mut groups = Vec::new();
        for (key, value) in fields {
            match key.as_str() {
                "groups" => {
                    if is_null(value) {
                        continue;
                    }
                    let YamlData::Sequence(items) = &value.data else {
                        self.problem(pos(value), "groups must be a list of rule groups");
                        continue;
                    };
                    for item in items {
                        if let Some(g) = self.group(item) {
                            groups.push(g);
                        }
                    }
                }
                other => self.problem(
                    self.key_pos(root, other),
                    format!("field {other} not found in type rulefmt.RuleGroups"),
                ),
            }
        }
        let mut seen: Vec<(&str, usize)> = Vec::new();
        let mut duplicates = Vec::new();
        for g in &groups {
            if let Some((_, first)) = seen.iter().find(|(n, _)| *n == g.name) {
                duplicates.push((g.rules_line, g.name.clone(), *first));
            } else {
                seen.push((&g.name, g.rules_line));
            }
        }
        for (line, name, first) in duplicates {
            self.problem(
                (line, 3),
                format!("groupname: {name:?} is repeated in the same file (first at line {first})"),
            );
        }
        groups.into_iter().map(|g| g.group).collect()
    }

    /// The fields of a mapping node, keys as text; `None` (and a problem)
    /// when the node is not a mapping.
    fn mapping<'n, 'a>(
        &mut self,
        node: &'n Node<'a>,
        what: &str,
    ) -> Option<Vec<(String, &'n Node<'a>)>> {
        let YamlData::Mapping(map) = &node.data else {
            self.problem(pos(node), format!("{what} must be a mapping"));
            return None;
        };
        let mut out = Vec::new();
        for (k, v) in map.iter() {
            match scalar_text(k) {
                Some(key) => out.push((key, v)),
                None => self.problem(pos(k), "mapping keys must be plain text"),
            }
        }
        Some(out)
    }

    fn key_pos(&self, node: &Node<'_>, key: &str) -> (usize, usize) {
        if let YamlData::Mapping(map) = &node.data {
            for (k, _) in map.iter() {
                if scalar_text(k).as_deref() == Some(key) {
                    return pos(k);
                }
            }
        }
        pos(node)
    }

    fn string(&mut self, node: &Node<'_>, field: &str) -> Option<String> {
        if is_null(node) {
            return Some(String::new());
        }
        let text = scalar_text(node);
        if text.is_none() {
            self.problem(pos(node), format!("{field} must be a string"));
        }
        text
    }

    fn duration(&mut self, node: &Node<'_>, field: &str) -> Option<Duration> {
        let text = self.string(node, field)?;
        let d = parse_prometheus_duration(&text);
        if d.is_none() {
            self.problem(
                pos(node),
                format!("{field}: not a valid duration string: {text:?} (e.g. 30s, 5m, 1h30m)"),
            );
        }
        d
    }

    fn string_map(
        &mut self,
        node: &Node<'_>,
        field: &str,
    ) -> Vec<(String, String, (usize, usize))> {
        if is_null(node) {
            return Vec::new();
        }
        let Some(fields) = self.mapping(node, field) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in fields {
            if let Some(value) = self.string(v, &format!("{field}.{k}")) {
                out.push((k, value, pos(v)));
            }
        }
        out
    }

    fn group(&mut self, node: &Node<'_>) -> Option<LocatedGroup> {
        let at = pos(node);
        let fields = self.mapping(node, "a rule group")?;
        let problems_before = self.problems.len();
        let mut name = None;
        let mut interval = None;
        let mut limit = 0usize;
        let mut query_offset = Duration::ZERO;
        let mut labels = Vec::new();
        let mut rule_nodes: Vec<&Node<'_>> = Vec::new();
        for (key, value) in fields {
            match key.as_str() {
                "name" => name = self.string(value, "name"),
                "interval" => interval = self.duration(value, "interval"),
                "query_offset" => {
                    query_offset = self.duration(value, "query_offset").unwrap_or_default()
                }
                "limit" => match &value.data {
                    YamlData::Value(Scalar::Integer(n)) if *n >= 0 => limit = *n as usize,
                    _ if is_null(value) => {}
                    _ => self.problem(pos(value), "limit must be a whole number ≥ 0"),
                },
                "labels" => {
                    for (k, v, p) in self.string_map(value, "labels") {
                        if !valid_label_name(&k) {
                            self.problem(p, format!("invalid label name: {k}"));
                        }
                        labels.push((k, v));
                    }
                }
                "rules" => match &value.data {
                    YamlData::Sequence(items) => rule_nodes.extend(items.iter()),
                    _ if is_null(value) => {}
                    _ => self.problem(pos(value), "rules must be a list of rules"),
                },
                other => self.problem(
                    self.key_pos(node, other),
                    format!("field {other} not found in type rulefmt.RuleGroup"),
                ),
            }
        }
        let name = name.unwrap_or_default();
        if name.is_empty() {
            self.problem(at, "Groupname must not be empty");
        }
        if interval == Some(Duration::ZERO) {
            self.problem(
                self.key_pos(node, "interval"),
                "interval must be greater than 0",
            );
        }
        let mut rules = Vec::new();
        for (i, rule_node) in rule_nodes.into_iter().enumerate() {
            if let Some(r) = self.rule(rule_node, &name, i + 1) {
                rules.push(Arc::new(r));
            }
        }
        if self.problems.len() > problems_before {
            return None;
        }
        Some(LocatedGroup {
            rules_line: at.0,
            name: name.clone(),
            group: RuleGroup {
                name,
                file: self.file.clone(),
                language: self.language,
                interval,
                limit,
                query_offset,
                labels,
                rules,
            },
        })
    }

    fn rule(&mut self, node: &Node<'_>, group: &str, index: usize) -> Option<Rule> {
        let at = pos(node);
        let fields = self.mapping(node, "a rule")?;
        let before = self.problems.len();
        let mut record = None;
        let mut alert = None;
        let mut expr = None;
        let mut hold = None;
        let mut keep_firing_for = None;
        let mut labels = Vec::new();
        let mut annotations = None;
        for (key, value) in fields {
            match key.as_str() {
                "record" => record = Some((self.string(value, "record")?, pos(value))),
                "alert" => alert = Some((self.string(value, "alert")?, pos(value))),
                "expr" => expr = Some((self.string(value, "expr")?, pos(value), value)),
                "for" => hold = Some((self.duration(value, "for")?, pos(value))),
                "keep_firing_for" => {
                    keep_firing_for = Some((self.duration(value, "keep_firing_for")?, pos(value)))
                }
                "labels" => labels = self.string_map(value, "labels"),
                "annotations" => annotations = Some(self.string_map(value, "annotations")),
                other => self.problem(
                    self.key_pos(node, other),
                    format!("field {other} not found in type rulefmt.Rule"),
                ),
            }
        }
        let what = match (&record, &alert) {
            (Some((r, _)), _) => format!("group {group:?}, rule {index} (record {r:?})"),
            (_, Some((a, _))) => format!("group {group:?}, rule {index} (alert {a:?})"),
            _ => format!("group {group:?}, rule {index}"),
        };
        let record = record.filter(|(r, _)| !r.is_empty());
        let alert = alert.filter(|(a, _)| !a.is_empty());
        match (&record, &alert) {
            (Some(_), Some(_)) => self.problem(
                at,
                format!("{what}: only one of 'record' and 'alert' must be set"),
            ),
            (None, None) => self.problem(
                at,
                format!("{what}: one of 'record' or 'alert' must be set"),
            ),
            _ => {}
        }
        let expr_text = match &expr {
            Some((text, _, _)) if !text.trim().is_empty() => Some(text.clone()),
            _ => {
                self.problem(at, format!("{what}: field 'expr' must be set in rule"));
                None
            }
        };
        if let (Some(text), Some((_, expr_at, expr_node))) = (&expr_text, &expr)
            && let Err(e) = self.check_expr(text)
        {
            let at = expr_position(*expr_at, expr_node, &e);
            self.problem(
                at,
                format!("{what}: could not parse expression: {}", e.message),
            );
        }
        for (k, _, p) in &labels {
            if !valid_label_name(k) {
                self.problem(*p, format!("{what}: invalid label name: {k}"));
            }
        }
        if let Some((name, p)) = &record {
            if !valid_metric_name(name) {
                self.problem(*p, format!("{what}: invalid recording rule name: {name}"));
            }
            if let Some((d, p)) = hold
                && !d.is_zero()
            {
                self.problem(p, format!("{what}: invalid field 'for' in recording rule"));
            }
            if let Some((d, p)) = keep_firing_for
                && !d.is_zero()
            {
                self.problem(
                    p,
                    format!("{what}: invalid field 'keep_firing_for' in recording rule"),
                );
            }
            if let Some(a) = &annotations
                && !a.is_empty()
            {
                self.problem(
                    a[0].2,
                    format!("{what}: invalid field 'annotations' in recording rule"),
                );
            }
            if labels.iter().any(|(k, _, _)| k == "__name__") {
                self.problem(at, format!("{what}: invalid label name: __name__"));
            }
        }
        let annotations = annotations.unwrap_or_default();
        let mut templates = Vec::new();
        if let Some((name, _)) = &alert {
            for (k, _, p) in &annotations {
                if !valid_label_name(k) {
                    self.problem(*p, format!("{what}: invalid annotation name: {k}"));
                }
            }
            let template_name = format!("__alert_{name}");
            for (kind, (k, v, p)) in labels
                .iter()
                .map(|l| ("label", l))
                .chain(annotations.iter().map(|a| ("annotation", a)))
            {
                match Template::compile_alert(v, &template_name) {
                    Ok(t) => templates.push(t),
                    Err(e) => self.problem(
                        *p,
                        format!(
                            "{what}: {kind} {k:?}: template: {template_name}: {} (at byte {} of the template)",
                            e.message, e.offset
                        ),
                    ),
                }
            }
        }
        if self.problems.len() > before {
            return None;
        }
        let labels: Vec<(String, String)> = labels.into_iter().map(|(k, v, _)| (k, v)).collect();
        let (name, kind) = match (record, alert) {
            (Some((r, _)), None) => (r, RuleKind::Record),
            (None, Some((a, _))) => (
                a,
                RuleKind::Alert {
                    hold: hold.map(|h| h.0).unwrap_or_default(),
                    keep_firing_for: keep_firing_for.map(|k| k.0).unwrap_or_default(),
                    annotations: annotations.into_iter().map(|(k, v, _)| (k, v)).collect(),
                },
            ),
            _ => return None,
        };
        Some(Rule {
            name,
            expr: expr_text?,
            kind,
            labels,
            line: at.0,
            templates,
        })
    }

    fn check_expr(&self, text: &str) -> Result<(), ExprError> {
        match self.language {
            Language::Promql => match promql_parser::parser::parse(text) {
                Ok(_) => Ok(()),
                Err(reason) => {
                    let message =
                        crate::query::promql::parse_error::parse_error_text(text, &reason);
                    Err(ExprError::from_message(message))
                }
            },
            Language::Logql => match crate::query::logql::parse(text) {
                Ok(crate::query::logql::ast::Expr::Metric(_)) => Ok(()),
                Ok(crate::query::logql::ast::Expr::Log(_)) => Err(ExprError {
                    position: None,
                    message: "a log query cannot be a rule expression; rules need a metric query such as count_over_time({app=\"x\"}[5m])".into(),
                }),
                Err(e) => Err(ExprError::from_message(e.to_string())),
            },
        }
    }
}

struct LocatedGroup {
    rules_line: usize,
    name: String,
    group: RuleGroup,
}

/// An expression's parse error and, when the parser gave one, its
/// 1-based line and column inside the expression.
struct ExprError {
    position: Option<(usize, usize)>,
    message: String,
}

impl ExprError {
    /// Reads a leading `line:column:` (PromQL's and LogQL's error format).
    fn from_message(message: String) -> ExprError {
        let mut parts = message.splitn(3, ':');
        let position = match (parts.next(), parts.next()) {
            (Some(l), Some(c)) => match (l.trim().parse(), c.trim().parse()) {
                (Ok(l), Ok(c)) => Some((l, c)),
                _ => None,
            },
            _ => None,
        };
        ExprError { position, message }
    }
}

/// Where in the file an error inside an expression is: for a plain or
/// quoted scalar on one line, the expression's own position is added to
/// the parser's; for block scalars (`|`, `>`), the line inside the block.
fn expr_position(expr_at: (usize, usize), node: &Node<'_>, e: &ExprError) -> (usize, usize) {
    let Some((line, column)) = e.position else {
        return expr_at;
    };
    let start_line = node.span.start.line();
    let end_line = node.span.end.line();
    if end_line > start_line {
        // A block scalar: its text starts on the line after the indicator.
        (start_line + line, column)
    } else if line == 1 {
        (expr_at.0, expr_at.1 + column - 1)
    } else {
        expr_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str, language: Language) -> Vec<String> {
        match parse(Path::new("r.yaml"), text, language) {
            Ok(_) => Vec::new(),
            Err(p) => p.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn reads_groups_and_rules() {
        let groups = parse(
            Path::new("r.yaml"),
            r#"
groups:
  - name: example
    interval: 30s
    limit: 10
    query_offset: 1m
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
        labels: {team: a}
      - alert: Down
        expr: up == 0
        for: 5m
        keep_firing_for: 1m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.instance }} down ({{ $value }})"
"#,
            Language::Promql,
        )
        .unwrap();
        assert_eq!(groups.len(), 1);
        let g = &groups[0];
        assert_eq!(g.interval, Some(Duration::from_secs(30)));
        assert_eq!(g.limit, 10);
        assert_eq!(g.query_offset, Duration::from_secs(60));
        assert_eq!(g.rules.len(), 2);
        assert_eq!(g.rules[0].name, "job:up:sum");
        assert_eq!(g.rules[0].line, 8);
        assert_eq!(g.rules[1].templates.len(), 2);
        match &g.rules[1].kind {
            RuleKind::Alert {
                hold,
                keep_firing_for,
                ..
            } => {
                assert_eq!(*hold, Duration::from_secs(300));
                assert_eq!(*keep_firing_for, Duration::from_secs(60));
            }
            RuleKind::Record => panic!("an alert"),
        }
    }

    #[test]
    fn every_bad_case_is_reported_with_its_line() {
        let text = r#"groups:
  - name: a
    rules:
      - record: "bad-name"
        expr: up
      - alert: X
        record: y
        expr: up
      - expr: up
      - record: r
        expr: sum(up
      - record: r2
        expr: up
        for: 5m
      - alert: T
        expr: up
        annotations:
          s: "{{ nosuch }}"
      - alert: U
        expr: up
        labels:
          "bad label": x
      - alert: V
        expr: up
        unknown: 1
  - name: a
    rules: []
"#;
        let p = problems(text, Language::Promql);
        let want = [
            "r.yaml:4:17: group \"a\", rule 1 (record \"bad-name\"): invalid recording rule name: bad-name",
            "r.yaml:6:9: group \"a\", rule 2 (record \"y\"): only one of 'record' and 'alert' must be set",
            "r.yaml:9:9: group \"a\", rule 3: one of 'record' or 'alert' must be set",
            "r.yaml:11:21: group \"a\", rule 4 (record \"r\"): could not parse expression: 1:7: parse error: unclosed left parenthesis",
            "r.yaml:14:14: group \"a\", rule 5 (record \"r2\"): invalid field 'for' in recording rule",
            "r.yaml:18:14: group \"a\", rule 6 (alert \"T\"): annotation \"s\": template: __alert_T: function \"nosuch\" not defined (at byte 3 of the template)",
            "r.yaml:22:24: group \"a\", rule 7 (alert \"U\"): invalid label name: bad label",
            "r.yaml:25:9: field unknown not found in type rulefmt.Rule",
        ];
        for w in want {
            assert!(p.iter().any(|x| x == w), "missing {w}\nin {p:#?}");
        }
        // The whole group is refused, so no duplicate-name problem yet.
        let dup = problems(
            "groups:\n  - name: a\n    rules: []\n  - name: a\n    rules: []\n",
            Language::Promql,
        );
        assert_eq!(
            dup,
            ["r.yaml:4:3: groupname: \"a\" is repeated in the same file (first at line 2)"]
        );
        let yaml = problems("groups:\n  - name: [\n", Language::Promql);
        assert!(
            yaml[0].starts_with("r.yaml:3:") && yaml[0].contains("YAML"),
            "{yaml:?}"
        );
        let unknown = problems("groupz: []\n", Language::Promql);
        assert_eq!(
            unknown,
            ["r.yaml:1:1: field groupz not found in type rulefmt.RuleGroups"]
        );
        let no_name = problems("groups:\n  - rules: []\n", Language::Promql);
        assert_eq!(no_name, ["r.yaml:2:5: Groupname must not be empty"]);
    }

    #[test]
    fn logql_rules_need_metric_queries() {
        let ok = "groups:\n  - name: l\n    rules:\n      - record: errors:rate1m\n        expr: sum(rate({app=\"a\"} |= \"error\" [1m]))\n";
        assert!(problems(ok, Language::Logql).is_empty());
        // The same expression is not PromQL.
        assert!(!problems(ok, Language::Promql).is_empty());
        let log =
            "groups:\n  - name: l\n    rules:\n      - alert: A\n        expr: '{app=\"a\"}'\n";
        let p = problems(log, Language::Logql);
        assert!(
            p[0].contains("log query cannot be a rule expression"),
            "{p:?}"
        );
        let block = "groups:\n  - name: l\n    rules:\n      - record: r\n        expr: |\n          sum(\n            rate({app=\"a\"}[1m]\n";
        let p = problems(block, Language::Logql);
        assert!(p[0].starts_with("r.yaml:"), "{p:?}");
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_prometheus_duration("1h30m"),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(parse_prometheus_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_prometheus_duration("90"), None);
        assert_eq!(parse_prometheus_duration("5x"), None);
    }
}
