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
