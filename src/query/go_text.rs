//! Text the way Go prints and reads it, for answers and errors that must
//! read like Prometheus' and Loki's: `strconv.Quote` of a string, and
//! `strconv.ParseFloat` of one.

use std::fmt::Write;

/// `s` as a Go double-quoted string literal (`strconv.Quote`).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.ParseFloat` on decimal text: an optional sign, digits with
/// an optional fraction and exponent, or `Inf`/`Infinity`/`NaN` in any case.
pub fn go_parse_float(s: &str) -> Option<f64> {
    let body = s.trim_start_matches(['+', '-']);
    let lower = body.to_ascii_lowercase();
    let special = matches!(lower.as_str(), "inf" | "infinity" | "nan");
    let plain = !lower.is_empty()
        && lower
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '+' | '-'))
        && lower.chars().any(|c| c.is_ascii_digit());
    if !(special || plain) || s.len() - body.len() > 1 {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Unquotes the Go double-quoted string literal at the start of `src` (which
/// begins with `"`): the text and the bytes consumed, or the byte offset of
/// the problem and Go's message for it.
pub fn go_unquote_prefix(src: &str) -> Result<(String, usize), (usize, &'static str)> {
    let mut out: Vec<u8> = Vec::new();
    let mut chars = src[1..].char_indices();
    let end;
    loop {
        let Some((off, c)) = chars.next() else {
            return Err((0, "literal not terminated"));
        };
        let at = 1 + off;
        match c {
            '"' => {
                end = at + 1;
                break;
            }
            '\n' => return Err((0, "literal not terminated")),
            '\\' => {
                let bad = (at, "invalid char escape");
                let Some((_, e)) = chars.next() else {
                    return Err((0, "literal not terminated"));
                };
                let simple = match e {
                    'a' => Some(7u8),
                    'b' => Some(8),
                    'f' => Some(12),
                    'n' => Some(b'\n'),
                    'r' => Some(b'\r'),
                    't' => Some(b'\t'),
                    'v' => Some(11),
                    '\\' => Some(b'\\'),
                    '"' => Some(b'"'),
                    _ => None,
                };
                if let Some(b) = simple {
                    out.push(b);
                    continue;
                }
                let (digits, radix) = match e {
                    '0'..='7' => (2, 8),
                    'x' => (2, 16),
                    'u' => (4, 16),
                    'U' => (8, 16),
                    _ => return Err(bad),
                };
                let mut text = String::new();
                if e.is_digit(8) {
                    text.push(e);
                }
                for _ in 0..digits {
                    match chars.next() {
                        Some((_, d)) if d.is_digit(radix) => text.push(d),
                        _ => return Err(bad),
                    }
                }
                let value = u32::from_str_radix(&text, radix).map_err(|_| bad)?;
                match e {
                    '0'..='7' | 'x' => {
                        if value > 255 {
                            return Err(bad);
                        }
                        out.push(value as u8);
                    }
                    _ => {
                        let ch = char::from_u32(value).ok_or(bad)?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    let text = String::from_utf8(out).map_err(|_| (0, "invalid UTF-8 rune"))?;
    Ok((text, end))
}
