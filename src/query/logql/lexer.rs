//! LogQL query text → tokens, each with the byte offset where it starts.
//!
//! Follows Loki's lexer: Go string literals (`"…"` with escapes, `` `…` ``
//! raw), numbers that run straight into a unit become durations (`5m`,
//! `1h30m`, `250ms`) or byte sizes (`20MB`, `1.5KiB`), `[…]` is one range
//! token, `--strict`/`--keep-empty` are flags, `#` starts a comment, and a
//! word is a function name only when a `(` (or `by`/`without` and a `(`)
//! follows it. Keywords and function names are case-insensitive.

use crate::query::go_text::go_unquote_prefix;
pub use crate::query::parse_error::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub enum TokenKind {
    /// A label name or any other word that is neither keyword nor function.
    Ident(String),
    /// `by`, `or`, `json`, `unwrap`, … (lower-cased).
    Keyword(&'static str),
    /// `rate`, `sum`, `ip`, `bytes`, … followed by `(` (lower-cased).
    Function(&'static str),
    /// A string literal, unescaped.
    Str(String),
    /// A number as written (`1`, `0.5`, `1e3`, `0x1F`).
    Number(String),
    /// `5m`, `-1h`: nanoseconds.
    Duration(i64),
    /// `20MB`: bytes.
    Bytes(u64),
    /// `[5m]`: nanoseconds.
    Range(i64),
    /// `--strict`, `--keep-empty`.
    Flag(&'static str),
    /// Punctuation and operators.
    Op(&'static str),
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: TokenKind,
    pub pos: usize,
}

impl Token {
    /// The token's name in error messages, as Loki's grammar names it.
    pub fn describe(&self) -> String {
        match &self.kind {
            TokenKind::Ident(_) => "IDENTIFIER".into(),
            TokenKind::Keyword(k) => (*k).into(),
            TokenKind::Function(f) => match *f {
                "ip" | "label_replace" => (*f).into(),
                "bytes" | "duration" | "duration_seconds" => format!("{}_CONV", f.to_uppercase()),
                _ => f.to_uppercase(),
            },
            TokenKind::Str(_) => "STRING".into(),
            TokenKind::Number(_) => "NUMBER".into(),
            TokenKind::Duration(_) => "DURATION".into(),
            TokenKind::Bytes(_) => "BYTES".into(),
            TokenKind::Range(_) => "RANGE".into(),
            TokenKind::Flag(_) => "FUNCTION_FLAG".into(),
            TokenKind::Op(o) => (*o).into(),
            TokenKind::Eof => "$end".into(),
        }
    }
}

const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "bool",
    "offset",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "or",
    "and",
    "unless",
    "json",
    "regexp",
    "logfmt",
    "unpack",
    "pattern",
    "label_format",
    "line_format",
    "decolorize",
    "drop",
    "keep",
    "unwrap",
];

const FUNCTIONS: &[&str] = &[
    "rate",
    "rate_counter",
    "count_over_time",
    "bytes_rate",
    "bytes_over_time",
    "avg_over_time",
    "sum_over_time",
    "min_over_time",
    "max_over_time",
    "stdvar_over_time",
    "stddev_over_time",
    "quantile_over_time",
    "first_over_time",
    "last_over_time",
    "absent_over_time",
    "vector",
    "sum",
    "avg",
    "max",
    "min",
    "count",
    "stddev",
    "stdvar",
    "bottomk",
    "topk",
    "sort",
    "sort_desc",
    "approx_topk",
    "label_replace",
    "bytes",
    "duration",
    "duration_seconds",
    "ip",
];

/// Operators, longest first so that `|=` wins over `|`.
const OPS: &[&str] = &[
    "|=", "|~", "|>", "!=", "!~", "!>", "=~", "==", ">=", "<=", "|", "=", ">", "<", "+", "-", "*",
    "/", "%", "^", ",", "(", ")", "{", "}",
];

/// Splits `query` into tokens, the last one [`TokenKind::Eof`].
pub fn lex(query: &str) -> Result<Vec<Token>, ParseError> {
    let mut lexer = Lexer {
        src: query,
        pos: 0,
        tokens: Vec::new(),
    };
    lexer.run()?;
    classify_words(&mut lexer.tokens);
    Ok(lexer.tokens)
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    tokens: Vec<Token>,
}

impl Lexer<'_> {
    fn err(&self, pos: usize, msg: impl Into<String>) -> ParseError {
        ParseError::at(self.src, pos, msg)
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn push(&mut self, kind: TokenKind, pos: usize) {
        self.tokens.push(Token { kind, pos });
    }

    fn run(&mut self) -> Result<(), ParseError> {
        while let Some(c) = self.peek() {
            let start = self.pos;
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else if c == '#' {
                self.pos = self.src[start..]
                    .find('\n')
                    .map_or(self.src.len(), |i| start + i);
            } else if c == '"' {
                let s = self.double_quoted()?;
                self.push(TokenKind::Str(s), start);
            } else if c == '`' {
                let Some(len) = self.src[start + 1..].find('`') else {
                    return Err(self.err(start, "literal not terminated"));
                };
                let s = self.src[start + 1..start + 1 + len].replace('\r', "");
                self.pos = start + len + 2;
                self.push(TokenKind::Str(s), start);
            } else if c == '[' {
                let Some(len) = self.src[start + 1..].find(']') else {
                    return Err(self.err(start, "missing closing ']' in duration"));
                };
                let text = &self.src[start + 1..start + 1 + len];
                let ns = parse_prometheus_duration(text).map_err(|m| self.err(start, m))?;
                self.pos = start + len + 2;
                self.push(TokenKind::Range(ns), start);
            } else if c.is_ascii_digit()
                || (c == '.' && self.src[start + 1..].starts_with(|c: char| c.is_ascii_digit()))
            {
                self.number();
            } else if c == '-' && self.src[start + 1..].starts_with('-') {
                let rest = &self.src[start..];
                let flag = ["--strict", "--keep-empty"].into_iter().find(|f| {
                    rest.starts_with(f)
                        && !rest[f.len()..].starts_with(|c: char| c.is_alphabetic() || c == '-')
                });
                if let Some(flag) = flag {
                    self.pos += flag.len();
                    self.push(TokenKind::Flag(flag), start);
                } else if rest[2..].starts_with(|c: char| c.is_alphabetic()) {
                    let len = rest
                        .find(|c: char| !(c.is_alphabetic() || c == '-'))
                        .unwrap_or(rest.len());
                    return Err(self.err(start, format!("unknown flag {}", &rest[..len])));
                } else {
                    self.pos += 1;
                    self.push(TokenKind::Op("-"), start);
                }
            } else if c == '-' {
                // `-5m` is a negative duration; `-5` is a minus and a number.
                let suffix = unit_suffix(&self.src[start + 1..], is_duration_rune);
                let text = &self.src[start..start + 1 + suffix];
                match parse_go_duration(text) {
                    Some(ns) if suffix > 0 && text.contains(|c: char| c.is_alphabetic()) => {
                        self.pos += 1 + suffix;
                        self.push(TokenKind::Duration(ns), start);
                    }
                    _ => {
                        self.pos += 1;
                        self.push(TokenKind::Op("-"), start);
                    }
                }
            } else if c.is_alphabetic() || c == '_' {
                let len = self.src[start..]
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(self.src.len() - start);
                self.pos += len;
                let word = self.src[start..self.pos].to_string();
                self.push(TokenKind::Ident(word), start);
            } else if let Some(op) = OPS.iter().find(|op| self.src[start..].starts_with(**op)) {
                self.pos += op.len();
                self.push(TokenKind::Op(op), start);
            } else {
                return Err(self.err(start, format!("unexpected character: {c:?}")));
            }
        }
        let end = self.src.len();
        self.push(TokenKind::Eof, end);
        Ok(())
    }

    /// A number, or a duration/byte size when a unit follows without space.
    fn number(&mut self) {
        let start = self.pos;
        let bytes = self.src.as_bytes();
        let mut i = start;
        if bytes[i] == b'0' && matches!(bytes.get(i + 1), Some(b'x' | b'X')) {
            i += 2;
            while i < bytes.len() && bytes[i].is_ascii_hexdigit() {
                i += 1;
            }
        } else {
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i < bytes.len() && bytes[i] == b'.' {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if i < bytes.len() && matches!(bytes[i], b'e' | b'E') {
                let mut j = i + 1;
                if j < bytes.len() && matches!(bytes[j], b'+' | b'-') {
                    j += 1;
                }
                if j < bytes.len() && bytes[j].is_ascii_digit() {
                    while j < bytes.len() && bytes[j].is_ascii_digit() {
                        j += 1;
                    }
                    i = j;
                }
            }
        }
        let number = &self.src[start..i];
        let dur_len = unit_suffix(&self.src[i..], is_duration_rune);
        if dur_len > 0 {
            let text = &self.src[start..i + dur_len];
            if let Some(ns) = parse_go_duration(text) {
                self.pos = i + dur_len;
                self.push(TokenKind::Duration(ns), start);
                return;
            }
        }
        let bytes_len = unit_suffix(&self.src[i..], is_bytes_rune);
        if bytes_len > 0
            && let Some(b) = parse_bytes(&self.src[start..i + bytes_len])
        {
            self.pos = i + bytes_len;
            self.push(TokenKind::Bytes(b), start);
            return;
        }
        self.pos = i;
        self.push(TokenKind::Number(number.to_string()), start);
    }

    /// A Go double-quoted string (the cursor on the opening quote).
    fn double_quoted(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        match go_unquote_prefix(&self.src[start..]) {
            Ok((text, len)) => {
                self.pos = start + len;
                Ok(text)
            }
            Err((offset, message)) => Err(self.err(start + offset, message)),
        }
    }
}

/// Length of the run of digits, `.` and unit runes that may follow a number.
fn unit_suffix(rest: &str, unit: fn(char) -> bool) -> usize {
    rest.find(|c: char| !(c.is_ascii_digit() || c == '.' || unit(c)))
        .unwrap_or(rest.len())
}

fn is_duration_rune(c: char) -> bool {
    matches!(c, 'n' | 'u' | 'µ' | 'm' | 's' | 'h' | 'd' | 'w' | 'y')
}

fn is_bytes_rune(c: char) -> bool {
    matches!(c, 'B' | 'i' | 'k' | 'K' | 'M' | 'G' | 'T' | 'P')
}

/// Loki's duration rule: Prometheus syntax first, then Go's.
fn parse_go_duration(text: &str) -> Option<i64> {
    parse_prometheus_duration(text)
        .ok()
        .or_else(|| go_duration(text))
}

/// Prometheus `model.ParseDuration`: `1y2w3d4h5m6s7ms` (units in order, each
/// at most once, integers only), or `0`. Nanoseconds.
pub fn parse_prometheus_duration(text: &str) -> Result<i64, String> {
    if text.is_empty() {
        return Err("empty duration string".into());
    }
    if text == "0" {
        return Ok(0);
    }
    let invalid = || format!("not a valid duration string: {text:?}");
    const UNITS: [(&str, i128); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut rest = text;
    let mut next_unit = 0;
    let mut ms: i128 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        if digits == 0 {
            return Err(invalid());
        }
        let n: i128 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let idx = UNITS[next_unit..]
            .iter()
            .position(|(u, _)| *u == unit)
            .ok_or_else(invalid)?
            + next_unit;
        ms += n * UNITS[idx].1;
        if ms > i64::MAX as i128 / 1_000_000 {
            return Err("duration out of range".into());
        }
        next_unit = idx + 1;
        rest = &rest[unit_len..];
    }
    Ok((ms * 1_000_000) as i64)
}

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?unit)+`. Nanoseconds.
fn go_duration(text: &str) -> Option<i64> {
    let (neg, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    if total > i64::MAX as f64 {
        return None;
    }
    let ns = total.round() as i64;
    Some(if neg { -ns } else { ns })
}

/// go-humanize `ParseBytes`: `20MB`, `1.5KiB`, `10k`.
fn parse_bytes(text: &str) -> Option<u64> {
    o11ydb_udfs::logql::units::parse_bytes(text).map(|b| b as u64)
}

/// Words become keywords, or function names when called.
fn classify_words(tokens: &mut [Token]) {
    for i in 0..tokens.len() {
        let TokenKind::Ident(word) = &tokens[i].kind else {
            continue;
        };
        let lower = word.to_lowercase();
        if let Some(f) = FUNCTIONS.iter().find(|f| **f == lower) {
            if is_call(&tokens[i + 1..]) {
                tokens[i].kind = TokenKind::Function(f);
            }
            continue;
        }
        if let Some(k) = KEYWORDS.iter().find(|k| **k == lower) {
            tokens[i].kind = TokenKind::Keyword(k);
        }
    }
}

fn is_call(rest: &[Token]) -> bool {
    match rest.first().map(|t| &t.kind) {
        Some(TokenKind::Op("(")) => true,
        Some(TokenKind::Ident(w))
            if w.eq_ignore_ascii_case("by") || w.eq_ignore_ascii_case("without") =>
        {
            matches!(rest.get(1).map(|t| &t.kind), Some(TokenKind::Op("(")))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(q: &str) -> Vec<TokenKind> {
        lex(q).unwrap().into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn units_and_words() {
        assert_eq!(
            kinds("5m 1h30m 500ms 1.5h 2us 20MB 1.5KiB 1e3 rate( rate"),
            vec![
                TokenKind::Duration(300_000_000_000),
                TokenKind::Duration(5_400_000_000_000),
                TokenKind::Duration(500_000_000),
                TokenKind::Duration(5_400_000_000_000),
                TokenKind::Duration(2_000),
                TokenKind::Bytes(20_000_000),
                TokenKind::Bytes(1536),
                TokenKind::Number("1e3".into()),
                TokenKind::Function("rate"),
                TokenKind::Op("("),
                TokenKind::Ident("rate".into()),
                TokenKind::Eof,
            ]
        );
    }

    #[test]
    fn strings_ranges_flags() {
        assert_eq!(
            kinds(r#""a\"\\\n\u00e9\x41" `r\n` [1d] --strict -5m -5 # c"#),
            vec![
                TokenKind::Str("a\"\\\né\x41".into()),
                TokenKind::Str("r\\n".into()),
                TokenKind::Range(86_400_000_000_000),
                TokenKind::Flag("--strict"),
                TokenKind::Duration(-300_000_000_000),
                TokenKind::Op("-"),
                TokenKind::Number("5".into()),
                TokenKind::Eof,
            ]
        );
    }

    #[test]
    fn errors_have_positions() {
        let e = lex("{a=\"x}").unwrap_err();
        assert_eq!(
            (e.pos, e.col, e.message.as_str()),
            (3, 4, "literal not terminated")
        );
        let e = lex("x [5x]").unwrap_err();
        assert_eq!(e.pos, 2);
        assert!(e.message.contains("not a valid duration"));
        let e = lex("a\n  \"\\q\"").unwrap_err();
        assert_eq!((e.line, e.col), (2, 4));
    }
}
