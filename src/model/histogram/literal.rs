//! promqltest native histogram literals (`{{schema:0 count:4 buckets:[1 2 1]}}`)
//! → a `FloatHistogram`, with Go's number syntax.

use super::*;

/// Parses a promqltest native histogram literal: the text inside `{{`/`}}`,
/// e.g. `schema:0 sum:5 count:4 z_bucket:1 z_bucket_w:0.001 buckets:[1 2 1]
/// offset:1 n_buckets:[1] n_offset:0 custom_values:[1 2]
/// counter_reset_hint:gauge`. Items are space separated `key:value`, in any
/// order, all optional; duplicates are an error. `buckets`/`n_buckets`
/// become one span starting at `offset`/`n_offset` (an empty list gives no
/// span). Returns the histogram and whether `counter_reset_hint` was given.
///
/// Numbers follow the PromQL lexer/Go parser: optional sign (not for
/// `z_bucket_w`), `Inf`/`NaN` in any case, Go integer literals (`0x1f`,
/// `0o17`, `017` octal, `0b101`) and decimal floats. `schema`, `offset` and
/// `n_offset` take decimal integers. Durations (`1m`) are not supported.
pub fn parse_test_literal(inner: &str) -> Result<(FloatHistogram, bool), String> {
    let mut h = FloatHistogram::default();
    let mut hint_set = false;
    let mut seen: Vec<&str> = Vec::new();
    let (mut pos_offset, mut neg_offset) = (0i32, 0i32);
    let (mut pos_buckets, mut neg_buckets): (Option<Vec<f64>>, Option<Vec<f64>>) = (None, None);
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let colon = rest.find(':').ok_or_else(|| {
            format!(
                "unexpected {:?} in histogram description, expected key:value",
                rest
            )
        })?;
        let key = &rest[..colon];
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(format!("invalid histogram description key {:?}", key));
        }
        rest = &rest[colon + 1..];
        let value;
        if rest.starts_with('[') {
            let close = rest
                .find(']')
                .ok_or_else(|| format!("unclosed '[' in value of {:?}", key))?;
            value = &rest[..=close];
            rest = &rest[close + 1..];
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            value = &rest[..end];
            rest = &rest[end..];
        }
        if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
            return Err(format!(
                "missing space after value of {:?} in histogram description",
                key
            ));
        }
        rest = rest.trim_start();
        if value.is_empty() {
            return Err(format!(
                "missing value for {:?} in histogram description",
                key
            ));
        }
        if seen.contains(&key) {
            return Err(format!("duplicate key \"{key}\" in histogram"));
        }
        seen.push(key);
        let num = |signed: bool| {
            parse_promql_number(value, signed)
                .ok_or_else(|| format!("error parsing {key} number: {value:?}"))
        };
        let int =
            || parse_int(value).ok_or_else(|| format!("error parsing {key} number: {value:?}"));
        match key {
            "schema" => h.schema = int()?,
            "sum" => h.sum = num(true)?,
            "count" => h.count = num(true)?,
            "z_bucket" => h.zero_count = num(true)?,
            "z_bucket_w" => h.zero_threshold = num(false)?,
            "custom_values" => h.custom_values = parse_bucket_set(key, value)?,
            "buckets" => pos_buckets = Some(parse_bucket_set(key, value)?),
            "n_buckets" => neg_buckets = Some(parse_bucket_set(key, value)?),
            "offset" => pos_offset = int()?,
            "n_offset" => neg_offset = int()?,
            "counter_reset_hint" => {
                hint_set = true;
                h.counter_reset_hint = match value {
                    "unknown" => CounterResetHint::Unknown,
                    "reset" => CounterResetHint::CounterReset,
                    "not_reset" => CounterResetHint::NotCounterReset,
                    "gauge" => CounterResetHint::Gauge,
                    _ => {
                        return Err(format!(
                            "error parsing counter_reset_hint: unknown value {value:?}"
                        ));
                    }
                };
            }
            _ => return Err(format!("unknown histogram description key {key:?}")),
        }
    }
    for (buckets, offset, spans, dest) in [
        (
            pos_buckets,
            pos_offset,
            &mut h.positive_spans,
            &mut h.positive_buckets,
        ),
        (
            neg_buckets,
            neg_offset,
            &mut h.negative_spans,
            &mut h.negative_buckets,
        ),
    ] {
        if let Some(b) = buckets {
            if !b.is_empty() {
                let length = u32::try_from(b.len()).map_err(|_| "too many buckets".to_string())?;
                spans.push(Span { offset, length });
            }
            *dest = b;
        }
    }
    Ok((h, hint_set))
}

/// `[n n n]` with single-space or any-whitespace separation.
pub(super) fn parse_bucket_set(key: &str, value: &str) -> Result<Vec<f64>, String> {
    let inner = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .ok_or_else(|| format!("error parsing {key} float array: {value:?}"))?;
    inner
        .split_whitespace()
        .map(|t| {
            parse_promql_number(t, true)
                .ok_or_else(|| format!("error parsing {key} float array: bad number {t:?}"))
        })
        .collect()
}

/// Decimal integer with optional '-' (the PromQL grammar's `int`).
pub(super) fn parse_int(s: &str) -> Option<i32> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok().and_then(|v| i32::try_from(v).ok())
}

/// A PromQL number: Go `strconv.ParseInt(s, 0, 64)` falling back to
/// `strconv.ParseFloat(s, 64)`, with an optional leading sign if `signed`.
pub(super) fn parse_promql_number(s: &str, signed: bool) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') if signed => (true, &s[1..]),
        Some(b'+') if signed => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() || body.starts_with(['+', '-']) {
        return None;
    }
    let v = parse_go_int_base0(body)
        .map(|i| i as f64)
        .or_else(|| parse_go_float(body))?;
    Some(if neg { -v } else { v })
}

/// Go `strconv.ParseInt(s, 0, 64)` for an unsigned body (no underscores).
pub(super) fn parse_go_int_base0(s: &str) -> Option<i64> {
    let lower = s.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    i64::from_str_radix(digits, radix).ok()
}

/// Go `strconv.ParseFloat(s, 64)` for the decimal forms PromQL lexes
/// (digits, '.', exponent, `inf`/`infinity`/`nan` in any case).
pub(super) fn parse_go_float(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    match lower.as_str() {
        "inf" | "infinity" => return Some(f64::INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if !lower
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-'))
    {
        return None;
    }
    lower.parse::<f64>().ok()
}
