//! The lexical pieces of a promqltest script: Prometheus durations, Go
//! numbers and quoted strings, and the expanding value notation of series
//! lines (`a+bxN`, `_xN`, `stale`, native histogram literals, §4.1–§4.2).

use std::sync::LazyLock;

use regex::Regex;

use super::{Item, ScriptError, TestHistogram, err, stale_nan};
use crate::model::histogram::{FloatHistogram, parse_test_literal};

static DURATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
        .unwrap()
});

/// A Prometheus duration (`1h30m`, `0`, `10s`, `250ms`, `1y`) in ms;
/// a leading `-` negates it.
pub fn parse_duration(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if body == "0" {
        return Some(0);
    }
    if body.is_empty() {
        return None;
    }
    let caps = DURATION.captures(body)?;
    const UNITS: [i64; 7] = [
        365 * 86_400_000,
        7 * 86_400_000,
        86_400_000,
        3_600_000,
        60_000,
        1_000,
        1,
    ];
    let mut ms: i64 = 0;
    for (i, unit) in UNITS.iter().enumerate() {
        if let Some(m) = caps.get(i + 1) {
            let n: i64 = m.as_str().parse().ok()?;
            ms = ms.checked_add(n.checked_mul(*unit)?)?;
        }
    }
    Some(if neg { -ms } else { ms })
}

/// A number as Go's `strconv.ParseInt(s, 0, 64)` or else
/// `strconv.ParseFloat(s, 64)` reads it (base prefixes, `Inf`, `NaN`).
pub fn parse_number(s: &str) -> Option<f64> {
    parse_go_int(s)
        .map(|i| i as f64)
        .or_else(|| crate::query::go_text::go_parse_float(s))
}

fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string(), true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string(), true)
    } else {
        (10, lower.clone(), false)
    };
    let digits = if prefixed {
        digits.replace('_', "")
    } else {
        digits
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = i64::from_str_radix(&digits, radix).ok()?;
    Some(if neg { -v } else { v })
}

/// Go `strconv.Unquote` for `"…"`, `'…'` and `` `…` `` strings.
pub fn unquote(s: &str) -> Option<String> {
    let quote = s.chars().next()?;
    if s.len() < 2 || !s.ends_with(quote) || !matches!(quote, '"' | '\'' | '`') {
        return None;
    }
    let inner = &s[1..s.len() - 1];
    if quote == '`' {
        return (!inner.contains('`')).then(|| inner.to_string());
    }
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == quote {
            return None;
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next()?;
        let simple = match e {
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'f' => Some('\x0c'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\x0b'),
            '\\' => Some('\\'),
            '"' | '\'' if e == quote => Some(e),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            continue;
        }
        let (len, radix) = match e {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => (2, 8),
            _ => return None,
        };
        let mut digits = if radix == 8 {
            e.to_string()
        } else {
            String::new()
        };
        for _ in 0..len {
            digits.push(chars.next()?);
        }
        // `\x` and octal escapes are bytes in Go; read as code points here
        // (the scripts only use ASCII ones).
        let code = u32::from_str_radix(&digits, radix).ok()?;
        out.push(char::from_u32(code)?);
    }
    Some(out)
}

/// Expands a value sequence (§4.1).
pub fn parse_values(text: &str, line: usize) -> Result<Vec<Item>, ScriptError> {
    let mut items = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let end = token_end(rest, line)?;
        expand_item(&rest[..end], line, &mut items)?;
        rest = rest[end..].trim_start();
    }
    Ok(items)
}

/// Length of the first item of `s`: up to whitespace outside `{{…}}`.
fn token_end(s: &str, line: usize) -> Result<usize, ScriptError> {
    let mut depth = 0usize;
    for (k, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return err(line, format!("unbalanced `}}` in {s:?}")),
            '}' => depth -= 1,
            ' ' | '\t' if depth == 0 => return Ok(k),
            _ => {}
        }
    }
    if depth != 0 {
        return err(line, format!("unterminated histogram in {s:?}"));
    }
    Ok(s.len())
}

fn repeat_count(s: &str, line: usize) -> Result<u64, ScriptError> {
    s.parse::<u64>().map_err(|_| ScriptError {
        line,
        message: format!("invalid repetition count {s:?}"),
    })
}

fn expand_item(tok: &str, line: usize, out: &mut Vec<Item>) -> Result<(), ScriptError> {
    if tok == "_" {
        out.push(Item::Omitted);
        return Ok(());
    }
    if let Some(n) = tok.strip_prefix("_x") {
        out.extend((0..repeat_count(n, line)?).map(|_| Item::Omitted));
        return Ok(());
    }
    if tok == "stale" {
        out.push(Item::Value(stale_nan()));
        return Ok(());
    }
    if tok.starts_with("{{") {
        return expand_histogram(tok, line, out);
    }
    let bad = || ScriptError {
        line,
        message: format!("invalid value {tok:?}"),
    };
    let (first, rest) = scan_number(tok).ok_or_else(bad)?;
    if rest.is_empty() {
        out.push(Item::Value(first));
        return Ok(());
    }
    let (increment, rest) = if rest.starts_with(['+', '-']) {
        scan_number(rest).ok_or_else(bad)?
    } else {
        (0.0, rest)
    };
    let n = repeat_count(rest.strip_prefix('x').ok_or_else(bad)?, line)?;
    let mut v = first;
    for _ in 0..=n {
        out.push(Item::Value(v));
        v += increment;
    }
    Ok(())
}

/// A leading signed number (`-1.5e3`, `Inf`, `NaN`; no hex, which would be
/// ambiguous with `x`) and the rest of `s`.
fn scan_number(s: &str) -> Option<(f64, &str)> {
    let b = s.as_bytes();
    let mut k = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        k += 1;
    }
    let lower = s[k..].to_ascii_lowercase();
    for word in ["inf", "nan"] {
        if lower.starts_with(word) {
            let end = k + word.len();
            let v: f64 = s[..end].parse().ok()?;
            return Some((v, &s[end..]));
        }
    }
    let digits_start = k;
    while k < b.len() && (b[k].is_ascii_digit() || b[k] == b'.') {
        k += 1;
    }
    if k == digits_start {
        return None;
    }
    if k < b.len() && matches!(b[k], b'e' | b'E') {
        let mut e = k + 1;
        if e < b.len() && matches!(b[e], b'+' | b'-') {
            e += 1;
        }
        let exp_digits = e;
        while e < b.len() && b[e].is_ascii_digit() {
            e += 1;
        }
        if e > exp_digits {
            k = e;
        }
    }
    let v: f64 = s[..k].parse().ok()?;
    Some((v, &s[k..]))
}

/// `{{…}}`, `{{…}}xN`, `{{A}}+{{B}}xN`, `{{A}}-{{B}}xN` (§4.1): the
/// histograms, `A` then each running sum or difference.
fn expand_histogram(tok: &str, line: usize, out: &mut Vec<Item>) -> Result<(), ScriptError> {
    let (first, rest) = histogram_literal(tok, line)?;
    let (step, rest) = match rest.strip_prefix(['+', '-']) {
        Some(r) => {
            let (increment, r) = histogram_literal(r, line)?;
            if !r.starts_with('x') {
                return err(line, format!("histogram increment without `xN` in {tok:?}"));
            }
            (Some((rest.starts_with('-'), increment.0)), r)
        }
        None => (None, rest),
    };
    let copies = match rest.strip_prefix('x') {
        Some(n) => repeat_count(n, line)? + 1,
        None if rest.is_empty() => 1,
        None => return err(line, format!("invalid histogram item {tok:?}")),
    };
    let (mut running, hint_given) = first;
    for i in 0..copies {
        if i > 0
            && let Some((subtract, increment)) = &step
        {
            let applied = if *subtract {
                running.sub(increment)
            } else {
                running.add(increment)
            };
            applied.map_err(|e| ScriptError {
                line,
                message: format!("histogram series {tok:?}: {e}"),
            })?;
        }
        out.push(Item::Histogram(Box::new(TestHistogram {
            histogram: running.clone(),
            hint_given,
        })));
    }
    Ok(())
}

/// The `{{key:value …}}` at the start of `s` and what follows it.
fn histogram_literal(s: &str, line: usize) -> Result<((FloatHistogram, bool), &str), ScriptError> {
    let Some(body) = s.strip_prefix("{{") else {
        return err(line, format!("expected a histogram in {s:?}"));
    };
    let Some(close) = body.find("}}") else {
        return err(line, format!("unterminated histogram in {s:?}"));
    };
    let parsed = parse_test_literal(&body[..close]).map_err(|e| ScriptError {
        line,
        message: format!("invalid histogram {s:?}: {e}"),
    })?;
    Ok((parsed, &body[close + 2..]))
}
