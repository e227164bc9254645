//! `| pattern "<…>"` and the `|>` / `!>` pattern line filters.
//!
//! What flows through: a compiled pattern (alternating literals and
//! `<name>` / `<_>` captures) and one log line come in; the named captures,
//! or a match decision for line filters, come out. Matching is Loki's
//! greedy-free left-to-right scan: each capture runs up to the next
//! occurrence of the literal that follows it. Captures borrow the line.

use memchr::memmem;

#[derive(Debug, Clone)]
enum Node {
    Literal(String),
    /// `None` for `<_>`.
    Capture(Option<String>),
}

impl Node {
    fn text(&self) -> String {
        match self {
            Node::Literal(l) => l.clone(),
            Node::Capture(Some(n)) => format!("<{n}>"),
            Node::Capture(None) => "<_>".to_string(),
        }
    }
}

/// A parsed pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    nodes: Vec<Node>,
}

const ERR_INVALID_EXPR: &str = "invalid expression";

fn parse_nodes(pattern: &str) -> Vec<Node> {
    let b = pattern.as_bytes();
    let mut nodes: Vec<Node> = Vec::new();
    let mut lit_start = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'<' && i + 1 < b.len() && (b[i + 1].is_ascii_alphabetic() || b[i + 1] == b'_') {
            let mut j = i + 2;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            if j < b.len() && b[j] == b'>' {
                if lit_start < i {
                    nodes.push(Node::Literal(pattern[lit_start..i].to_string()));
                }
                let name = &pattern[i + 1..j];
                nodes.push(Node::Capture(if name == "_" {
                    None
                } else {
                    Some(name.to_string())
                }));
                i = j + 1;
                lit_start = i;
                continue;
            }
        }
        i += 1;
    }
    if lit_start < b.len() {
        nodes.push(Node::Literal(pattern[lit_start..].to_string()));
    }
    nodes
}

impl Pattern {
    /// Parses `pattern` and rejects what Loki rejects for every use:
    /// an empty pattern, consecutive captures and duplicate capture names.
    /// Whether named captures are required (the `| pattern` parser) or
    /// forbidden (line filters) is checked by [`Pattern::compile_parser`] /
    /// [`Pattern::compile_line_filter`].
    pub fn compile(pattern: &str) -> Result<Pattern, String> {
        if pattern.is_empty() {
            return Err(
                "syntax error: unexpected $end, expecting IDENTIFIER or LITERAL".to_string(),
            );
        }
        let p = Pattern {
            nodes: parse_nodes(pattern),
        };
        p.check_consecutive()?;
        let names = p.names();
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(format!("duplicate capture name ({n}): {ERR_INVALID_EXPR}"));
            }
        }
        Ok(p)
    }

    /// Loki's `pattern.New`: [`Pattern::compile`] plus at least one named
    /// capture.
    pub fn compile_parser(pattern: &str) -> Result<Pattern, String> {
        let p = Pattern::compile(pattern)?;
        if p.names().is_empty() {
            return Err("at least one capture is required".to_string());
        }
        Ok(p)
    }

    /// Loki's `ParseLineFilter`: an empty pattern is allowed (it matches
    /// only empty lines); named captures are not.
    pub fn compile_line_filter(pattern: &str) -> Result<Pattern, String> {
        let p = Pattern {
            nodes: parse_nodes(pattern),
        };
        p.check_consecutive()?;
        for n in &p.nodes {
            if let Node::Capture(Some(_)) = n {
                return Err(format!(
                    "named captures are not allowed: found '{}'",
                    n.text()
                ));
            }
        }
        Ok(p)
    }

    fn check_consecutive(&self) -> Result<(), String> {
        for w in self.nodes.windows(2) {
            if let (Node::Capture(_), Node::Capture(_)) = (&w[0], &w[1]) {
                return Err(format!(
                    "found consecutive capture '{}{}': {ERR_INVALID_EXPR}",
                    w[0].text(),
                    w[1].text()
                ));
            }
        }
        Ok(())
    }

    /// Names of the named captures, in pattern order.
    pub fn names(&self) -> Vec<&str> {
        self.nodes
            .iter()
            .filter_map(|n| match n {
                Node::Capture(Some(name)) => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Loki's `Matches`: the named captures of `line` in pattern order;
    /// `None` when the leading literal does not match (or the line is
    /// empty, or nothing was captured). As in Loki a capture whose following
    /// literal is missing runs to the end of the line and the captures after
    /// it are absent, so the vector can be shorter than [`Pattern::names`].
    pub fn captures<'a>(&self, line: &'a str) -> Option<Vec<(&str, &'a str)>> {
        if line.is_empty() || self.nodes.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        let mut rest = line;
        let mut nodes = &self.nodes[..];
        if let Node::Literal(l) = &nodes[0] {
            if !rest.starts_with(l.as_str()) {
                return None;
            }
            rest = &rest[l.len()..];
            nodes = &nodes[1..];
        }
        while !nodes.is_empty() {
            let Node::Capture(name) = &nodes[0] else {
                break;
            };
            if nodes.len() == 1 {
                if let Some(n) = name {
                    out.push((n.as_str(), rest));
                }
                break;
            }
            let Node::Literal(l) = &nodes[1] else { break };
            nodes = &nodes[2..];
            match memmem::find(rest.as_bytes(), l.as_bytes()) {
                None => {
                    if let Some(n) = name {
                        out.push((n.as_str(), rest));
                    }
                    break;
                }
                Some(i) => {
                    if let Some(n) = name {
                        out.push((n.as_str(), &rest[..i]));
                    }
                    rest = &rest[i + l.len()..];
                }
            }
        }
        if out.is_empty() { None } else { Some(out) }
    }

    /// Loki's `Test`, used by `|>` / `!>`: every literal appears in order,
    /// captures are non-empty, a trailing literal ends the line.
    pub fn is_match(&self, line: &str) -> bool {
        if line.is_empty() || self.nodes.is_empty() {
            return line.is_empty() && self.nodes.is_empty();
        }
        let b = line.as_bytes();
        let mut off = 0;
        for (i, n) in self.nodes.iter().enumerate() {
            let Node::Literal(l) = n else { continue };
            let Some(j) = memmem::find(&b[off..], l.as_bytes()) else {
                return false;
            };
            if i != 0 && j == 0 {
                return false;
            }
            off += j + l.len();
        }
        let ends_on_capture = matches!(self.nodes.last(), Some(Node::Capture(_)));
        ends_on_capture == (off != b.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(expr: &str, line: &str, expected: &[&str], matches: bool) {
        let p = Pattern::compile_parser(expr).unwrap();
        assert_eq!(p.is_match(line), matches, "{expr} / {line}");
        let got: Vec<&str> = p
            .captures(line)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(got, expected, "{expr} / {line}");
    }

    #[test]
    fn loki_fixtures() {
        check("foo <foo> bar", "foo buzz bar", &["buzz"], true);
        check("foo <foo> bar<fuzz>", "foo buzz bar", &["buzz", ""], false);
        check("<foo>foo <bar> bar", "foo buzz bar", &["", "buzz"], false);
        check("<foo> bar<fuzz>", " bar", &["", ""], false);
        check("<foo>bar<baz>", " bar ", &[" ", " "], true);
        check("<foo> bar<baz>", " bar ", &["", " "], false);
        check("<foo>bar <baz>", " bar ", &[" ", ""], false);
        check("<foo>", " bar ", &[" bar "], true);
        check(
            "<path>?<_>",
            "/api/plugins/versioncheck?slugIn=snuids-trafficlights-panel,input,gel&grafanaVersion=7.0.0-beta1",
            &["/api/plugins/versioncheck"],
            true,
        );
        check(
            "<path>?<_>",
            "/api/plugins/status",
            &["/api/plugins/status"],
            false,
        );
        check(
            r#"<ip> <userid> <user> [<_>] "<method> <path> <_>" <status> <size>"#,
            r#"127.0.0.1 user-identifier frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#,
            &[
                "127.0.0.1",
                "user-identifier",
                "frank",
                "GET",
                "/apache_pb.gif",
                "200",
                "2326",
            ],
            true,
        );
        check(
            "<_> <id> [<level>] [<no>] [<component>] ",
            "2020-08-06T14:25:02.835618Z 0 [Note] [MY-012487] [InnoDB] DDL log recovery : begin",
            &["0", "Note", "MY-012487", "InnoDB"],
            false,
        );
        check(
            "<level>  [<component>]<_> in <duration>.<_>",
            "INFO  [Service Thread] 2021-05-19 07:40:12,130 GCInspector.java:284 - ParNew GC in 248ms.  CMS Old Gen: 5043436640 -> 5091062064",
            &["INFO", "Service Thread", "248ms"],
            true,
        );
        check(
            r#"<_> msg="<method> <path> (<status>) <duration>""#,
            r#"level=debug ts=2021-05-19T07:54:26.864644382Z caller=logging.go:66 traceID=7fbb92fd0eb9c65d msg="POST /loki/api/v1/push (204) 1.238734ms""#,
            &["POST", "/loki/api/v1/push", "204", "1.238734ms"],
            true,
        );
        check(
            "<_>] <level> [Log partition=<part>, dir=<dir>] ",
            "[2021-05-19 08:35:28,681] INFO [Log partition=p-636-L-fs-117, dir=/data/kafka-logs] Deleting segment 455976081 (kafka.log.Log)",
            &["INFO", "p-636-L-fs-117", "/data/kafka-logs"],
            false,
        );
        check(
            "unicode <emoji> character",
            "unicode 🤷 character",
            &["🤷"],
            true,
        );
        check(
            "unicode ▶ <what>",
            "unicode ▶ character",
            &["character"],
            true,
        );
    }

    #[test]
    fn literal_at_start_and_end() {
        let p = Pattern::compile_parser("GET <path> HTTP").unwrap();
        assert_eq!(p.captures("GET /x HTTP").unwrap(), vec![("path", "/x")]);
        assert!(p.captures("POST /x HTTP").is_none());
        assert!(p.is_match("GET /x HTTP"));
        assert!(!p.is_match("GET /x HTTP/1.1"));
        assert!(p.captures("").is_none());
        assert_eq!(p.names(), vec!["path"]);
    }

    #[test]
    fn errors() {
        assert!(Pattern::compile_parser("<f>").is_ok());
        assert!(Pattern::compile_parser("<f> <a>").is_ok());
        assert_eq!(
            Pattern::compile_parser("").unwrap_err(),
            "syntax error: unexpected $end, expecting IDENTIFIER or LITERAL"
        );
        assert_eq!(
            Pattern::compile_parser("<_>").unwrap_err(),
            "at least one capture is required"
        );
        assert_eq!(
            Pattern::compile_parser("foo bar buzz").unwrap_err(),
            "at least one capture is required"
        );
        assert_eq!(
            Pattern::compile_parser("<f><f>").unwrap_err(),
            "found consecutive capture '<f><f>': invalid expression"
        );
        assert_eq!(
            Pattern::compile_parser("<f> f<d><b>").unwrap_err(),
            "found consecutive capture '<d><b>': invalid expression"
        );
        assert_eq!(
            Pattern::compile_parser("<f> f<f>").unwrap_err(),
            "duplicate capture name (f): invalid expression"
        );
        assert_eq!(
            Pattern::compile_parser("f<f><_>").unwrap_err(),
            "found consecutive capture '<f><_>': invalid expression"
        );
        // `<1>` and `<a-b>` are literals
        assert_eq!(
            Pattern::compile_parser("<1> <a-b> <x>").unwrap().names(),
            vec!["x"]
        );
    }

    #[test]
    fn line_filters() {
        assert!(Pattern::compile_line_filter("<_>").is_ok());
        assert!(Pattern::compile_line_filter("").is_ok());
        assert!(Pattern::compile_line_filter("foo <_> bar <_>").is_ok());
        assert_eq!(
            Pattern::compile_line_filter("<foo <foo> bar <_>").unwrap_err(),
            "named captures are not allowed: found '<foo>'"
        );
        let p = Pattern::compile_line_filter("<_> bar <_>").unwrap();
        assert!(p.is_match("foo bar baz"));
        assert!(!p.is_match(" bar "));
        let p = Pattern::compile_line_filter("<_> baz").unwrap();
        assert!(p.is_match("foo bar baz"));
        assert!(
            !Pattern::compile_line_filter("<_> bar")
                .unwrap()
                .is_match("foo bar baz")
        );
        assert!(
            Pattern::compile_line_filter("foo <_>")
                .unwrap()
                .is_match("foo bar baz")
        );
        let empty = Pattern::compile_line_filter("").unwrap();
        assert!(empty.is_match(""));
        assert!(!empty.is_match("x"));
    }
}
