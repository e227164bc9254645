//! TraceQL query text → tokens, each with the byte offset where it starts.
//!
//! Follows Tempo's lexer: Go string literals (`"…"` with escapes, `` `…` ``
//! raw); a number running straight into unit runes is a duration (`1s`,
//! `1.5ms`, `1h30m`, `100µs`); `.name`, `span.name`, `resource.name`,
//! `parent.span.name`, `event.name`, `link.name`, `instrumentation.name`
//! are attributes whose names run until whitespace or one of
//! `{}()=~!<>&|^,` (quoted parts `"a b"` may hold anything); `span:id`,
//! `trace:duration`, … are scoped intrinsics; operators take the longest
//! match (`!>>` before `!>` before `!`).

use super::ast::Scope;
use crate::query::go_text::go_unquote_prefix;
pub use crate::query::parse_error::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub enum TokenKind {
    /// A word: keyword, intrinsic, function name or unknown identifier.
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    /// Nanoseconds.
    Duration(i64),
    /// `.a`, `span.a`, `parent.resource.a`.
    Attribute {
        scope: Scope,
        parent: bool,
        name: String,
    },
    /// `span:id`: (scope, word).
    ScopedIntrinsic(String, String),
    Op(&'static str),
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: TokenKind,
    pub pos: usize,
}

impl Token {
    /// How an error message names the token.
    pub fn describe(&self) -> String {
        match &self.kind {
            TokenKind::Ident(w) => w.clone(),
            TokenKind::Str(_) => "STRING".into(),
            TokenKind::Int(_) => "INTEGER".into(),
            TokenKind::Float(_) => "FLOAT".into(),
            TokenKind::Duration(_) => "DURATION".into(),
            TokenKind::Attribute { .. } => "attribute".into(),
            TokenKind::ScopedIntrinsic(s, w) => format!("{s}:{w}"),
            TokenKind::Op(op) => (*op).into(),
            TokenKind::Eof => "$end".into(),
        }
    }
}

/// Operators, longest first so the first prefix match is the longest.
const OPERATORS: [&str; 32] = [
    "!>>", "!<<", "&>>", "&<<", ">>", "<<", ">=", "<=", "!=", "=~", "!~", "!>", "!<", "&&", "||",
    "&>", "&<", "&~", "{", "}", "(", ")", ",", "=", ">", "<", "!", "|", "+", "-", "*", "/",
];
const MORE_OPERATORS: [&str; 3] = ["%", "^", "~"];

/// Whether `c` may appear unquoted in an attribute name.
pub fn is_attribute_char(c: char) -> bool {
    !c.is_whitespace()
        && !matches!(
            c,
            '{' | '}' | '(' | ')' | '=' | '~' | '!' | '<' | '>' | '&' | '|' | '^' | ','
        )
}

pub fn lex(query: &str) -> Result<Vec<Token>, ParseError> {
    let mut lexer = Lexer {
        src: query,
        pos: 0,
        tokens: Vec::new(),
    };
    lexer.run()?;
    Ok(lexer.tokens)
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    tokens: Vec<Token>,
}

impl Lexer<'_> {
    fn err(&self, pos: usize, message: impl Into<String>) -> ParseError {
        ParseError::at(self.src, pos, message)
    }

    fn push(&mut self, kind: TokenKind, pos: usize) {
        self.tokens.push(Token { kind, pos });
    }

    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn run(&mut self) -> Result<(), ParseError> {
        loop {
            let rest = self.rest();
            let Some(c) = rest.chars().next() else {
                self.push(TokenKind::Eof, self.src.len());
                return Ok(());
            };
            let start = self.pos;
            if c.is_whitespace() {
                self.pos += c.len_utf8();
                continue;
            }
            if c == '"' {
                match go_unquote_prefix(rest) {
                    Ok((text, len)) => {
                        self.pos += len;
                        self.push(TokenKind::Str(text), start);
                    }
                    Err((offset, message)) => return Err(self.err(start + offset, message)),
                }
                continue;
            }
            if c == '`' {
                let Some(end) = rest[1..].find('`') else {
                    return Err(self.err(start, "literal not terminated"));
                };
                self.push(TokenKind::Str(rest[1..1 + end].to_string()), start);
                self.pos += end + 2;
                continue;
            }
            let next_is_digit = rest[c.len_utf8()..].starts_with(|d: char| d.is_ascii_digit());
            if c.is_ascii_digit() || (c == '.' && next_is_digit) {
                self.number()?;
                continue;
            }
            if c == '.' {
                self.pos += 1;
                self.attribute(Scope::None, false, start)?;
                continue;
            }
            if c.is_alphabetic() || c == '_' {
                self.word()?;
                continue;
            }
            if let Some(op) = OPERATORS
                .iter()
                .chain(MORE_OPERATORS.iter())
                .find(|op| rest.starts_with(**op))
            {
                self.pos += op.len();
                self.push(TokenKind::Op(op), start);
                continue;
            }
            return Err(self.err(start, format!("syntax error: unexpected {c:?}")));
        }
    }

    /// An integer, float or duration.
    fn number(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        let bytes = self.src.as_bytes();
        let mut i = start;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let mut is_float = false;
        if i < bytes.len() && bytes[i] == b'.' {
            is_float = true;
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
        }
        if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
            let mut j = i + 1;
            if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
                j += 1;
            }
            if j < bytes.len() && bytes[j].is_ascii_digit() {
                is_float = true;
                i = j;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
            }
        }
        let number = &self.src[start..i];
        // A run of digits, '.' and unit runes right after the number may make it a duration.
        let tail_len = self.src[i..]
            .char_indices()
            .find(|(_, c)| {
                !(c.is_ascii_digit()
                    || *c == '.'
                    || matches!(c, 'n' | 's' | 'u' | 'm' | 'h' | 'µ' | 'μ' | 'd' | 'w' | 'y'))
            })
            .map_or(self.src.len() - i, |(off, _)| off);
        if tail_len > 0 {
            let text = &self.src[start..i + tail_len];
            if let Some(ns) = parse_duration(text) {
                self.pos = i + tail_len;
                self.push(TokenKind::Duration(ns), start);
                return Ok(());
            }
        }
        self.pos = i;
        let kind = if is_float {
            TokenKind::Float(
                number
                    .parse()
                    .map_err(|_| self.err(start, format!("invalid float {number:?}")))?,
            )
        } else {
            TokenKind::Int(number.parse().map_err(|_| {
                self.err(
                    start,
                    format!("strconv.Atoi: parsing {number:?}: value out of range"),
                )
            })?)
        };
        self.push(kind, start);
        Ok(())
    }

    /// A word, a scoped attribute (`span.x`) or a scoped intrinsic (`span:id`).
    fn word(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        let len = self
            .rest()
            .char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
            .map_or(self.rest().len(), |(off, _)| off);
        let word = &self.src[start..start + len];
        let after = &self.src[start + len..];
        if after.starts_with('.') {
            let scope = match word {
                "span" => Some(Scope::Span),
                "resource" => Some(Scope::Resource),
                "event" => Some(Scope::Event),
                "link" => Some(Scope::Link),
                "instrumentation" => Some(Scope::Instrumentation),
                "parent" => Some(Scope::None),
                _ => None,
            };
            if let Some(scope) = scope {
                self.pos = start + len + 1;
                if word == "parent" {
                    // `parent.span.x`, `parent.resource.x` or `parent.x`.
                    let rest = self.rest();
                    let inner = if rest.starts_with("span.") {
                        Some((Scope::Span, 5))
                    } else if rest.starts_with("resource.") {
                        Some((Scope::Resource, 9))
                    } else {
                        None
                    };
                    if let Some((inner, skip)) = inner {
                        self.pos += skip;
                        return self.attribute(inner, true, start);
                    }
                    return self.attribute(Scope::None, true, start);
                }
                return self.attribute(scope, false, start);
            }
        }
        if after.starts_with(':')
            && matches!(
                word,
                "trace" | "span" | "event" | "link" | "instrumentation"
            )
        {
            let name_start = start + len + 1;
            let name_len = self.src[name_start..]
                .char_indices()
                .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
                .map_or(self.src.len() - name_start, |(off, _)| off);
            let name = &self.src[name_start..name_start + name_len];
            self.pos = name_start + name_len;
            self.push(
                TokenKind::ScopedIntrinsic(word.to_string(), name.to_string()),
                start,
            );
            return Ok(());
        }
        self.pos = start + len;
        self.push(TokenKind::Ident(word.to_string()), start);
        Ok(())
    }

    /// The name of an attribute whose prefix ends at the cursor.
    fn attribute(&mut self, scope: Scope, parent: bool, start: usize) -> Result<(), ParseError> {
        let mut name = String::new();
        loop {
            let rest = self.rest();
            let Some(c) = rest.chars().next() else { break };
            if c == '"' {
                let (part, len) = quoted_attribute_part(rest)
                    .map_err(|(off, msg)| self.err(self.pos + off, msg))?;
                name.push_str(&part);
                self.pos += len;
            } else if is_attribute_char(c) {
                name.push(c);
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
        if name.is_empty() {
            return Err(self.err(
                self.pos,
                "syntax error: unexpected END_ATTRIBUTE, expecting IDENTIFIER",
            ));
        }
        self.push(
            TokenKind::Attribute {
                scope,
                parent,
                name,
            },
            start,
        );
        Ok(())
    }
}

/// `"…"` inside an attribute name: only `\"` and `\\` escapes.
fn quoted_attribute_part(src: &str) -> Result<(String, usize), (usize, &'static str)> {
    let mut out = String::new();
    let mut chars = src.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\'))) => out.push(e),
                _ => return Err((i, "invalid escape sequence")),
            },
            c => out.push(c),
        }
    }
    Err((0, "unexpected EOF, expecting \""))
}

/// A Go (`1.5s`, `1h30m`, `100µs`) or Prometheus (`5d`, `1w`, `1y`)
/// duration in nanoseconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let mut rest = text;
    let mut total: f64 = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86400e9,
            "w" => 7.0 * 86400e9,
            "y" => 365.0 * 86400e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * unit;
    }
    if total > i64::MAX as f64 {
        return None;
    }
    Some(total.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(q: &str) -> Vec<TokenKind> {
        lex(q).unwrap().into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn attributes_run_until_a_terminator() {
        assert_eq!(
            kinds("{.http.status_code>=200}"),
            vec![
                TokenKind::Op("{"),
                TokenKind::Attribute {
                    scope: Scope::None,
                    parent: false,
                    name: "http.status_code".into()
                },
                TokenKind::Op(">="),
                TokenKind::Int(200),
                TokenKind::Op("}"),
                TokenKind::Eof
            ]
        );
        assert_eq!(
            kinds(r#"span."foo \"bar\"".x"#)[0],
            TokenKind::Attribute {
                scope: Scope::Span,
                parent: false,
                name: "foo \"bar\".x".into()
            }
        );
        assert_eq!(
            kinds("parent.resource.a")[0],
            TokenKind::Attribute {
                scope: Scope::Resource,
                parent: true,
                name: "a".into()
            }
        );
    }

    #[test]
    fn numbers_and_durations() {
        assert_eq!(kinds("1.5s")[0], TokenKind::Duration(1_500_000_000));
        assert_eq!(kinds("1h30m")[0], TokenKind::Duration(5_400_000_000_000));
        assert_eq!(kinds("100µs")[0], TokenKind::Duration(100_000));
        assert_eq!(kinds("2")[0], TokenKind::Int(2));
        assert_eq!(kinds("2.5")[0], TokenKind::Float(2.5));
        assert_eq!(kinds(".5")[0], TokenKind::Float(0.5));
    }

    #[test]
    fn longest_operator_wins() {
        assert_eq!(
            kinds("!>> !> ! &>> ~ !~"),
            vec![
                TokenKind::Op("!>>"),
                TokenKind::Op("!>"),
                TokenKind::Op("!"),
                TokenKind::Op("&>>"),
                TokenKind::Op("~"),
                TokenKind::Op("!~"),
                TokenKind::Eof
            ]
        );
    }

    #[test]
    fn scoped_intrinsics() {
        assert_eq!(
            kinds("span:id")[0],
            TokenKind::ScopedIntrinsic("span".into(), "id".into())
        );
    }

    #[test]
    fn errors_carry_positions() {
        let e = lex("{ span. }").unwrap_err();
        assert_eq!((e.line, e.col), (1, 8));
        let e = lex("{ name = \"abc }").unwrap_err();
        assert!(e.message.contains("not terminated"), "{e}");
    }
}
