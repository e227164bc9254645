//! The Go text/template subset of `line_format` and `label_format`.
//!
//! What flows through: a template text is compiled once into a tree
//! ([`Template::compile`], which rejects unknown functions with their
//! offset); then, per log line, [`Template::render`] walks the tree over the
//! line's labels, the line itself (`__line__`) and its timestamp
//! (`__timestamp__`) and returns the rendered text, or the error Loki puts
//! in `__error_details__` next to `__error__="TemplateFormatErr"`.
//!
//! Supported: text and actions with `{{-` / `-}}` trimming, comments,
//! pipelines, parenthesised sub-pipelines with field chains, variables
//! (`$`, `$x := …`, `$x = …`), `if` / `else if` / `else`, `with`, `range`
//! (over `fromJson` arrays and objects, integers and the label map) with
//! `break` / `continue`, Go's builtins (`and or not eq ne lt le gt ge len
//! index print printf println html urlquery`) and Loki's function set
//! (see [`funcs`]). Labels are `.name`; a missing label is `""`
//! (Loki executes with `missingkey=zero` over a string map).
//! Not supported: `define`, `template`, `block`, `call`, `slice`, `js`.
//!
//! The same engine expands alerting-rule labels and annotations
//! ([`Template::compile_alert`], [`Template::render_alert`]): the dot is
//! Prometheus' template data (`.Labels`, `.ExternalLabels`, `.ExternalURL`,
//! `.Value`), `$labels`, `$externalLabels`, `$externalURL` and `$value` are
//! defined, and the functions are Go's builtins plus Prometheus' own
//! ([`prometheus`]).

mod exec;
pub mod funcs;
pub mod gotime;
mod printf;
pub mod prometheus;
mod value;

use regex::Regex;

pub use value::{Value, format_float_v};

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
    name: String,
    text: String,
}

/// Which functions and variables a template is compiled against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Loki's `line_format` / `label_format`.
    Loki,
    /// Prometheus' alerting-rule labels and annotations.
    Prometheus,
}

/// The variables Prometheus defines before an alerting template.
const ALERT_VARIABLES: [&str; 4] = ["$labels", "$externalLabels", "$externalURL", "$value"];

/// What an alerting-rule template reads (Prometheus' template data).
#[derive(Debug, Clone, Default)]
pub struct AlertData {
    /// `.Labels` / `$labels`: the alert's labels.
    pub labels: Vec<(String, String)>,
    /// `.ExternalLabels` / `$externalLabels`.
    pub external_labels: Vec<(String, String)>,
    /// `.ExternalURL` / `$externalURL`.
    pub external_url: String,
    /// `.Value` / `$value`: the sample value that fired the alert.
    pub value: f64,
}

/// A compile error at a byte offset of the template text.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at offset {})", self.message, self.offset)
    }
}

impl std::error::Error for TemplateError {}

/// What a template reads for one line.
pub struct TemplateData<'a> {
    /// `.name` lookups; a missing name is `""`.
    pub labels: &'a [(String, String)],
    /// `__line__`.
    pub line: &'a str,
    /// `__timestamp__`, nanoseconds since the Unix epoch.
    pub timestamp_ns: i64,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipe),
    If {
        branches: Vec<(Pipe, Vec<Node>)>,
        else_: Vec<Node>,
    },
    With {
        branches: Vec<(Pipe, Vec<Node>)>,
        else_: Vec<Node>,
    },
    Range {
        pipe: Pipe,
        body: Vec<Node>,
        else_: Vec<Node>,
    },
    Break,
    Continue,
}

#[derive(Debug, Clone)]
struct Pipe {
    decl: Vec<String>,
    assign: bool,
    cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
struct Cmd {
    args: Vec<Arg>,
    /// Offset of the command in the template, for error messages.
    offset: usize,
    /// Source text of the first operand, for error messages.
    text: String,
    /// A regex function's literal pattern, compiled once.
    regex: Option<Regex>,
}

#[derive(Debug, Clone)]
enum Arg {
    Dot,
    Field(Vec<String>),
    Var(String, Vec<String>),
    Func(usize),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    Sub(Box<Pipe>, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Text(String),
    Open,
    Close,
    Ident(String),
    Field(String),
    Dot,
    Var(String),
    Str(String),
    Num(String),
    Char(i64),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
    Eof,
}

#[derive(Debug, Clone)]
struct Item {
    tok: Tok,
    offset: usize,
    /// Whether white space precedes the token inside an action.
    space: bool,
}

fn err(offset: usize, message: impl Into<String>) -> TemplateError {
    TemplateError {
        offset,
        message: message.into(),
    }
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn lex(src: &str) -> Result<Vec<Item>, TemplateError> {
    let b = src.as_bytes();
    let mut items = Vec::new();
    let mut pos = 0;
    let mut trim_next = false;
    loop {
        let next = memchr::memmem::find(&b[pos..], b"{{").map(|i| pos + i);
        let text_end = next.unwrap_or(b.len());
        let mut text = &src[pos..text_end];
        if trim_next {
            text = text.trim_start_matches([' ', '\t', '\r', '\n']);
        }
        let Some(open) = next else {
            if !text.is_empty() {
                items.push(Item {
                    tok: Tok::Text(text.to_string()),
                    offset: pos,
                    space: false,
                });
            }
            break;
        };
        let mut p = open + 2;
        if b.len() >= p + 2 && b[p] == b'-' && is_space(b[p + 1]) {
            text = text.trim_end_matches([' ', '\t', '\r', '\n']);
            p += 2;
        }
        if !text.is_empty() {
            items.push(Item {
                tok: Tok::Text(text.to_string()),
                offset: pos,
                space: false,
            });
        }
        // comment
        let mut q = p;
        while q < b.len() && is_space(b[q]) {
            q += 1;
        }
        if src[q..].starts_with("/*") {
            let end = memchr::memmem::find(&b[q + 2..], b"*/")
                .ok_or_else(|| err(open, "unclosed comment"))?
                + q
                + 2;
            let mut r = end + 2;
            let mut trim = false;
            if src[r..].starts_with(" -}}") {
                trim = true;
                r += 4;
            } else if src[r..].starts_with("}}") {
                r += 2;
            } else {
                return Err(err(open, "comment ends before closing delimiter"));
            }
            trim_next = trim;
            pos = r;
            continue;
        }
        items.push(Item {
            tok: Tok::Open,
            offset: open,
            space: false,
        });
        // inside action
        let mut space = false;
        loop {
            if p >= b.len() {
                return Err(err(open, "unclosed action"));
            }
            let c = b[p];
            if is_space(c) {
                while p < b.len() && is_space(b[p]) {
                    p += 1;
                }
                space = true;
                if src[p..].starts_with("-}}") {
                    items.push(Item {
                        tok: Tok::Close,
                        offset: p,
                        space,
                    });
                    p += 3;
                    trim_next = true;
                    break;
                }
                continue;
            }
            if src[p..].starts_with("}}") {
                items.push(Item {
                    tok: Tok::Close,
                    offset: p,
                    space,
                });
                p += 2;
                trim_next = false;
                break;
            }
            let start = p;
            let tok = match c {
                b'"' => {
                    let mut j = p + 1;
                    loop {
                        match b.get(j) {
                            None | Some(b'\n') => {
                                return Err(err(start, "unterminated quoted string"));
                            }
                            Some(b'\\') => j += 2,
                            Some(b'"') => break,
                            _ => j += 1,
                        }
                    }
                    p = j + 1;
                    Tok::Str(
                        unquote_go(&src[start + 1..j])
                            .ok_or_else(|| err(start, "invalid syntax"))?,
                    )
                }
                b'`' => {
                    let j = memchr::memchr(b'`', &b[p + 1..])
                        .ok_or_else(|| err(start, "unterminated raw quoted string"))?
                        + p
                        + 1;
                    p = j + 1;
                    Tok::Str(src[start + 1..j].to_string())
                }
                b'\'' => {
                    let mut j = p + 1;
                    loop {
                        match b.get(j) {
                            None | Some(b'\n') => {
                                return Err(err(start, "unterminated character constant"));
                            }
                            Some(b'\\') => j += 2,
                            Some(b'\'') => break,
                            _ => j += 1,
                        }
                    }
                    p = j + 1;
                    let s = unquote_go(&src[start + 1..j])
                        .ok_or_else(|| err(start, "invalid syntax"))?;
                    let mut cs = s.chars();
                    match (cs.next(), cs.next()) {
                        (Some(ch), None) => Tok::Char(ch as i64),
                        _ => return Err(err(start, "malformed character constant")),
                    }
                }
                b'$' => {
                    let mut j = p + 1;
                    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                        j += 1;
                    }
                    p = j;
                    Tok::Var(src[start..j].to_string())
                }
                b'.' if !b.get(p + 1).is_some_and(u8::is_ascii_digit) => {
                    let mut j = p + 1;
                    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                        j += 1;
                    }
                    p = j;
                    if j == start + 1 {
                        Tok::Dot
                    } else {
                        Tok::Field(src[start + 1..j].to_string())
                    }
                }
                b'0'..=b'9' | b'+' | b'-' | b'.' => {
                    let mut j = p + 1;
                    while j < b.len() {
                        let d = b[j];
                        if d.is_ascii_alphanumeric()
                            || d == b'_'
                            || d == b'.'
                            || ((d == b'+' || d == b'-')
                                && matches!(b[j - 1], b'e' | b'E' | b'p' | b'P'))
                        {
                            j += 1;
                        } else {
                            break;
                        }
                    }
                    p = j;
                    Tok::Num(src[start..j].to_string())
                }
                b'|' => {
                    p += 1;
                    Tok::Pipe
                }
                b'(' => {
                    p += 1;
                    Tok::LParen
                }
                b')' => {
                    p += 1;
                    Tok::RParen
                }
                b',' => {
                    p += 1;
                    Tok::Comma
                }
                b':' if b.get(p + 1) == Some(&b'=') => {
                    p += 2;
                    Tok::Declare
                }
                b'=' => {
                    p += 1;
                    Tok::Assign
                }
                c if c.is_ascii_alphabetic() || c == b'_' => {
                    let mut j = p + 1;
                    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                        j += 1;
                    }
                    p = j;
                    Tok::Ident(src[start..j].to_string())
                }
                _ => {
                    let ch = src[p..].chars().next().unwrap_or('?');
                    return Err(err(
                        p,
                        format!(
                            "unrecognized character in action: U+{:04X} {:?}",
                            ch as u32, ch
                        ),
                    ));
                }
            };
            items.push(Item {
                tok,
                offset: start,
                space,
            });
            space = false;
        }
        pos = p;
    }
    items.push(Item {
        tok: Tok::Eof,
        offset: src.len(),
        space: false,
    });
    Ok(items)
}

/// Go's `strconv.Unquote` body (without the quotes).
fn unquote_go(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = it.next()?;
        let hex = |it: &mut std::iter::Peekable<std::str::Chars<'_>>, n: usize| -> Option<u32> {
            let mut v = 0;
            for _ in 0..n {
                v = v * 16 + it.next()?.to_digit(16)?;
            }
            Some(v)
        };
        match e {
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            '\'' => out.push('\''),
            'x' => out.push(char::from_u32(hex(&mut it, 2)?)?),
            'u' => out.push(char::from_u32(hex(&mut it, 4)?)?),
            'U' => out.push(char::from_u32(hex(&mut it, 8)?)?),
            '0'..='7' => {
                let mut v = e.to_digit(8)?;
                for _ in 0..2 {
                    v = v * 8 + it.next()?.to_digit(8)?;
                }
                out.push(char::from_u32(v)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Go number literal → `Int` (no `.`/exponent, or hex) or `Float`.
fn parse_number(s: &str) -> Option<Arg> {
    let (neg, body) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let clean: String = body.chars().filter(|&c| c != '_').collect();
    let lower = clean.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(bn) = lower.strip_prefix("0b") {
        i64::from_str_radix(bn, 2).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|c| c.is_ascii_digit())
    {
        i64::from_str_radix(&lower[1..], 8).ok()
    } else if lower.bytes().all(|c| c.is_ascii_digit()) {
        lower.parse().ok()
    } else {
        None
    };
    if let Some(i) = int {
        return Some(Arg::Int(if neg { -i } else { i }));
    }
    let f: f64 = clean.parse().ok()?;
    Some(Arg::Float(if neg { -f } else { f }))
}

struct Parser<'t> {
    items: Vec<Item>,
    pos: usize,
    src: &'t str,
    vars: Vec<String>,
    range_depth: usize,
    dialect: Dialect,
}

enum Stop {
    End,
    Else(usize),
    Eof,
}

impl<'t> Parser<'t> {
    fn peek(&self) -> &Item {
        &self.items[self.pos]
    }

    fn next(&mut self) -> Item {
        let it = self.items[self.pos].clone();
        if self.pos + 1 < self.items.len() {
            self.pos += 1;
        }
        it
    }

    fn expect_close(&mut self, ctx: &str) -> Result<(), TemplateError> {
        let it = self.next();
        if it.tok != Tok::Close {
            return Err(err(
                it.offset,
                format!("unexpected {} in {}", tok_desc(&it.tok), ctx),
            ));
        }
        Ok(())
    }

    /// Nodes until `{{end}}`, `{{else}}` or EOF; the stop is consumed up to
    /// the keyword (the caller handles what follows `else`).
    fn list(&mut self) -> Result<(Vec<Node>, Stop), TemplateError> {
        let mut nodes = Vec::new();
        loop {
            let it = self.next();
            match it.tok {
                Tok::Eof => return Ok((nodes, Stop::Eof)),
                Tok::Text(t) => nodes.push(Node::Text(t)),
                Tok::Open => {
                    if let Tok::Ident(kw) = &self.peek().tok {
                        let kw = kw.clone();
                        let off = self.peek().offset;
                        match kw.as_str() {
                            "end" => {
                                self.next();
                                self.expect_close("end")?;
                                return Ok((nodes, Stop::End));
                            }
                            "else" => {
                                self.next();
                                return Ok((nodes, Stop::Else(off)));
                            }
                            "if" | "with" => {
                                self.next();
                                nodes.push(self.if_with(kw == "if", off)?);
                                continue;
                            }
                            "range" => {
                                self.next();
                                nodes.push(self.range(off)?);
                                continue;
                            }
                            "break" | "continue" => {
                                self.next();
                                if self.range_depth == 0 {
                                    return Err(err(
                                        off,
                                        format!("{{{{{kw}}}}} outside {{{{range}}}}"),
                                    ));
                                }
                                self.expect_close(&kw)?;
                                nodes.push(if kw == "break" {
                                    Node::Break
                                } else {
                                    Node::Continue
                                });
                                continue;
                            }
                            "define" | "template" | "block" => {
                                return Err(err(off, format!("{{{{{kw}}}}} is not supported")));
                            }
                            _ => {}
                        }
                    }
                    let pipe = self.pipeline(true, "command")?;
                    self.expect_close("command")?;
                    nodes.push(Node::Action(pipe));
                }
                other => return Err(err(it.offset, format!("unexpected {}", tok_desc(&other)))),
            }
        }
    }

    fn if_with(&mut self, is_if: bool, off: usize) -> Result<Node, TemplateError> {
        let kw = if is_if { "if" } else { "with" };
        let mark = self.vars.len();
        let mut branches = Vec::new();
        let mut else_ = Vec::new();
        let mut pipe = self.pipeline(true, kw)?;
        self.expect_close(kw)?;
        loop {
            let (body, stop) = self.list()?;
            match stop {
                Stop::Eof => return Err(err(off, "unexpected EOF")),
                Stop::End => {
                    branches.push((pipe, body));
                    break;
                }
                Stop::Else(eoff) => {
                    branches.push((pipe, body));
                    if let Tok::Ident(k) = &self.peek().tok
                        && k == kw
                    {
                        self.next();
                        pipe = self.pipeline(true, kw)?;
                        self.expect_close(kw)?;
                        continue;
                    }
                    self.expect_close("else")?;
                    let (body, stop) = self.list()?;
                    match stop {
                        Stop::End => {
                            else_ = body;
                            break;
                        }
                        Stop::Else(o) => return Err(err(o, "expected end; found {{else}}")),
                        Stop::Eof => return Err(err(eoff, "unexpected EOF")),
                    }
                }
            }
        }
        self.vars.truncate(mark);
        Ok(if is_if {
            Node::If { branches, else_ }
        } else {
            Node::With { branches, else_ }
        })
    }

    fn range(&mut self, off: usize) -> Result<Node, TemplateError> {
        let mark = self.vars.len();
        let pipe = self.pipeline(true, "range")?;
        self.expect_close("range")?;
        self.range_depth += 1;
        let (body, stop) = self.list()?;
        self.range_depth -= 1;
        let else_ = match stop {
            Stop::Eof => return Err(err(off, "unexpected EOF")),
            Stop::End => Vec::new(),
            Stop::Else(eoff) => {
                self.expect_close("else")?;
                let (body, stop) = self.list()?;
                match stop {
                    Stop::End => body,
                    Stop::Else(o) => return Err(err(o, "expected end; found {{else}}")),
                    Stop::Eof => return Err(err(eoff, "unexpected EOF")),
                }
            }
        };
        self.vars.truncate(mark);
        Ok(Node::Range { pipe, body, else_ })
    }

    /// A pipeline up to (not including) `}}` or `)`.
    fn pipeline(&mut self, allow_decl: bool, ctx: &str) -> Result<Pipe, TemplateError> {
        let start = self.peek().offset;
        let mut decl = Vec::new();
        let mut assign = false;
        if allow_decl && let Tok::Var(_) = self.peek().tok {
            // `$x :=`, `$x =`, `$i, $e :=`
            let save = self.pos;
            let mut names = Vec::new();
            while let Tok::Var(v) = self.peek().tok.clone() {
                names.push(v);
                self.next();
                match self.peek().tok {
                    Tok::Comma if names.len() == 1 => {
                        self.next();
                    }
                    _ => break,
                }
            }
            match self.peek().tok {
                Tok::Declare => {
                    self.next();
                    decl = names;
                }
                Tok::Assign => {
                    let o = self.peek().offset;
                    self.next();
                    for n in &names {
                        if !self.vars.contains(n) {
                            return Err(err(o, format!("undefined variable \"{n}\"")));
                        }
                    }
                    decl = names;
                    assign = true;
                }
                _ => self.pos = save,
            }
        }
        let mut cmds = Vec::new();
        loop {
            let cmd = self.command()?;
            cmds.push(cmd);
            if self.peek().tok == Tok::Pipe {
                self.next();
                continue;
            }
            break;
        }
        if cmds.is_empty() {
            return Err(err(start, format!("missing value for {ctx}")));
        }
        if !assign {
            for d in &decl {
                self.vars.push(d.clone());
            }
        }
        Ok(Pipe { decl, assign, cmds })
    }

    fn command(&mut self) -> Result<Cmd, TemplateError> {
        let offset = self.peek().offset;
        let mut args = Vec::new();
        let mut text = String::new();
        loop {
            match self.peek().tok {
                Tok::Close | Tok::RParen | Tok::Pipe | Tok::Eof => break,
                _ => {}
            }
            let o = self.peek().offset;
            let a = self.operand()?;
            if args.is_empty() {
                let end = self.peek().offset.min(self.src.len());
                text = self.src[o..end].trim_end().to_string();
            }
            args.push(a);
        }
        if args.is_empty() {
            let it = self.peek();
            return Err(err(it.offset, "missing value for command"));
        }
        if let Arg::Nil = args[0] {
            return Err(err(offset, "nil is not a command"));
        }
        let mut regex = None;
        if let Arg::Func(f) = args[0]
            && funcs::takes_regex(f)
            && let Some(Arg::Str(re)) = args.get(1)
        {
            regex = Regex::new(re).ok();
        }
        Ok(Cmd {
            args,
            offset,
            text,
            regex,
        })
    }

    fn operand(&mut self) -> Result<Arg, TemplateError> {
        let it = self.next();
        let base = match it.tok {
            Tok::Ident(name) => match name.as_str() {
                "true" => Arg::Bool(true),
                "false" => Arg::Bool(false),
                "nil" => Arg::Nil,
                _ => match funcs::lookup(&name, self.dialect) {
                    Some(f) => Arg::Func(f),
                    None => return Err(err(it.offset, format!("function \"{name}\" not defined"))),
                },
            },
            Tok::Dot => Arg::Dot,
            Tok::Field(f) => {
                let mut fields = vec![f];
                self.chain(&mut fields);
                return Ok(Arg::Field(fields));
            }
            Tok::Var(v) => {
                if v != "$" && !self.vars.contains(&v) {
                    return Err(err(it.offset, format!("undefined variable \"{v}\"")));
                }
                let mut fields = Vec::new();
                self.chain(&mut fields);
                return Ok(Arg::Var(v, fields));
            }
            Tok::Str(s) => Arg::Str(s),
            Tok::Char(c) => Arg::Int(c),
            Tok::Num(n) => parse_number(&n)
                .ok_or_else(|| err(it.offset, format!("bad number syntax: \"{n}\"")))?,
            Tok::LParen => {
                let p = self.pipeline(true, "parenthesized pipeline")?;
                let close = self.next();
                if close.tok != Tok::RParen {
                    return Err(err(close.offset, "unclosed left paren"));
                }
                let mut fields = Vec::new();
                self.chain(&mut fields);
                return Ok(Arg::Sub(Box::new(p), fields));
            }
            other => {
                return Err(err(
                    it.offset,
                    format!("unexpected {} in operand", tok_desc(&other)),
                ));
            }
        };
        if let Tok::Field(_) = self.peek().tok
            && !self.peek().space
        {
            return Err(err(self.peek().offset, "unexpected . after term"));
        }
        Ok(base)
    }

    /// Field tokens that follow without white space: `.a.b`, `(…).x`.
    fn chain(&mut self, fields: &mut Vec<String>) {
        while let Tok::Field(f) = &self.peek().tok {
            if self.peek().space {
                break;
            }
            fields.push(f.clone());
            self.next();
        }
    }
}

fn tok_desc(t: &Tok) -> String {
    match t {
        Tok::Text(_) => "text".into(),
        Tok::Open => "\"{{\"".into(),
        Tok::Close => "\"}}\"".into(),
        Tok::Ident(s) => format!("<{s}>"),
        Tok::Field(s) => format!("<.{s}>"),
        Tok::Dot => "<.>".into(),
        Tok::Var(s) => format!("<{s}>"),
        Tok::Str(s) => format!("{s:?}"),
        Tok::Num(s) => format!("<{s}>"),
        Tok::Char(c) => format!("<{c}>"),
        Tok::Pipe => "\"|\"".into(),
        Tok::LParen => "\"(\"".into(),
        Tok::RParen => "\")\"".into(),
        Tok::Declare => "\":=\"".into(),
        Tok::Assign => "\"=\"".into(),
        Tok::Comma => "\",\"".into(),
        Tok::Eof => "EOF".into(),
    }
}

impl Template {
    /// Parses `text`. Errors carry the byte offset of the offending token:
    /// unknown functions (`function "foo" not defined`), unclosed actions,
    /// unbalanced `if`/`range`/`end`, undefined variables.
    pub fn compile(text: &str) -> Result<Template, TemplateError> {
        Self::compile_dialect(text, Dialect::Loki)
    }

    /// Parses an alerting-rule label or annotation template named `name`
    /// (Prometheus names them `__alert_<alertname>`).
    pub fn compile_alert(text: &str, name: &str) -> Result<Template, TemplateError> {
        Ok(Self::compile_dialect(text, Dialect::Prometheus)?.with_name(name))
    }

    fn compile_dialect(text: &str, dialect: Dialect) -> Result<Template, TemplateError> {
        let items = lex(text)?;
        let mut vars = vec!["$".to_string()];
        if dialect == Dialect::Prometheus {
            vars.extend(ALERT_VARIABLES.iter().map(|v| v.to_string()));
        }
        let mut p = Parser {
            items,
            pos: 0,
            src: text,
            vars,
            range_depth: 0,
            dialect,
        };
        let (nodes, stop) = p.list()?;
        match stop {
            Stop::Eof => {}
            Stop::End => {
                let o = p.items[p.pos.saturating_sub(2)].offset;
                return Err(err(o, "unexpected {{end}}"));
            }
            Stop::Else(o) => return Err(err(o, "unexpected {{else}}")),
        }
        Ok(Template {
            nodes,
            name: "line".to_string(),
            text: text.to_string(),
        })
    }

    /// Expands an alerting template (compiled with [`Template::compile_alert`]);
    /// `Err` carries Go's execution error text.
    pub fn render_alert(&self, data: &AlertData) -> Result<String, String> {
        let mut out = String::new();
        exec::run_alert(self, data, &mut out)?;
        Ok(out)
    }

    /// The template name used in execution errors (`executing "line" at
    /// <…>`): Loki names `line_format` templates `line` and `label_format`
    /// templates `label`.
    pub fn with_name(mut self, name: &str) -> Template {
        self.name = name.to_string();
        self
    }

    /// Renders the template for one line; `Err` carries Loki's error text.
    pub fn render(&self, data: &TemplateData<'_>) -> Result<String, String> {
        let mut out = String::new();
        self.render_into(data, &mut out)?;
        Ok(out)
    }

    /// [`Template::render`] into a reused buffer (cleared first).
    pub fn render_into(&self, data: &TemplateData<'_>, out: &mut String) -> Result<(), String> {
        out.clear();
        exec::run(self, data, out)
    }

    /// When the template is exactly `{{.name}}`, the label it copies (Loki
    /// short-cuts this case).
    pub fn simple_label(&self) -> Option<&str> {
        match self.nodes.as_slice() {
            [Node::Action(p)]
                if p.decl.is_empty() && p.cmds.len() == 1 && p.cmds[0].args.len() == 1 =>
            {
                match &p.cmds[0].args[0] {
                    Arg::Field(f) if f.len() == 1 => Some(&f[0]),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Label names the template reads: every field name in the tree, as
    /// Loki's `RequiredLabelNames` collects them (unique, in order).
    pub fn referenced_labels(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect_nodes(&self.nodes, &mut out);
        let mut seen = std::collections::HashSet::new();
        out.retain(|n: &String| !n.is_empty() && seen.insert(n.clone()));
        out
    }
}

fn collect_nodes(nodes: &[Node], out: &mut Vec<String>) {
    for n in nodes {
        match n {
            Node::Text(_) | Node::Break | Node::Continue => {}
            Node::Action(p) => collect_pipe(p, out),
            Node::If { branches, else_ } | Node::With { branches, else_ } => {
                for (p, body) in branches {
                    collect_pipe(p, out);
                    collect_nodes(body, out);
                }
                collect_nodes(else_, out);
            }
            Node::Range { pipe, body, else_ } => {
                collect_pipe(pipe, out);
                collect_nodes(body, out);
                collect_nodes(else_, out);
            }
        }
    }
}

fn collect_pipe(p: &Pipe, out: &mut Vec<String>) {
    for c in &p.cmds {
        for a in &c.args {
            match a {
                Arg::Field(f) => out.extend(f.iter().cloned()),
                Arg::Sub(p, _) => collect_pipe(p, out),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
