//! The functions Prometheus adds to alerting-rule templates (`humanize`,
//! `humanizeDuration`, `humanizePercentage`, `humanizeTimestamp`, `toTime`,
//! `match`, `reReplaceAll`, `stripPort`, `stripDomain`, `parseDuration`,
//! `externalURL`, …), with Prometheus' number formatting (`%.4g` and SI or
//! binary prefixes) and its argument conversion (`convertToFloat`: a number,
//! or a string parsed as one).
//!
//! What flows through: evaluated argument [`Value`]s come in; a value or
//! Prometheus' error text comes out.

use std::borrow::Cow;

use regex::Regex;

use super::gotime::GoTime;
use super::printf::fmt_float;
use super::value::Value;

/// Prometheus' `convertToFloat`.
pub(super) fn to_float(v: &Value<'_>) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Str(s) => parse_go_float(s),
        Value::Time(t) => Ok(t.unix_nanos() as f64 / 1e9),
        other => Err(format!("can't convert {} to float", other.type_name())),
    }
}

/// Go's `strconv.ParseFloat(s, 64)` (with `Inf`, `NaN` and `+`/`-`).
fn parse_go_float(s: &str) -> Result<f64, String> {
    let lower = s.to_ascii_lowercase();
    let special = match lower.trim_start_matches(['+', '-']) {
        "inf" | "infinity" => Some(f64::INFINITY),
        "nan" => Some(f64::NAN),
        _ => None,
    };
    if let Some(v) = special {
        return Ok(if lower.starts_with('-') { -v } else { v });
    }
    s.replace('_', "")
        .parse::<f64>()
        .map_err(|_| format!("strconv.ParseFloat: parsing {s:?}: invalid syntax"))
}

fn g4(v: f64) -> String {
    fmt_float(v, 'g', Some(4))
}

const SMALL_PREFIXES: [&str; 8] = ["m", "u", "n", "p", "f", "a", "z", "y"];

/// `humanize`: SI prefixes, 4 significant digits (`1.235k`, `12.5m`).
pub fn humanize(mut v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in SMALL_PREFIXES {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", g4(v))
}

/// `humanize1024`: binary prefixes (`1ki`, `1.5Mi`).
pub fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", g4(v))
}

/// `humanizeDuration`: seconds as `1d 2h 3m 4s`, `1.5s` or `12ms`.
pub fn humanize_duration(mut v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    if v == 0.0 {
        return format!("{}s", g4(v));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let duration = v as i64;
        let seconds = duration % 60;
        let minutes = (duration / 60) % 60;
        let hours = (duration / 60 / 60) % 24;
        let days = duration / 60 / 60 / 24;
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {seconds}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {seconds}s");
        }
        return format!("{sign}{}s", g4(v));
    }
    let mut prefix = "";
    for p in SMALL_PREFIXES {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", g4(v))
}

/// `humanizePercentage`: a ratio as a percentage (`0.1234` → `12.34%`).
pub fn humanize_percentage(v: f64) -> String {
    format!("{}%", g4(v * 100.0))
}

fn seconds_to_time(v: f64) -> Result<GoTime, String> {
    if v.is_nan() || v.is_infinite() || v.abs() > 9.2e9 {
        return Err(format!("{} cannot be represented as a time", g4(v)));
    }
    Ok(GoTime::from_unix_nanos((v * 1e9).round() as i128))
}

/// `humanizeTimestamp`: Unix seconds as Go prints a UTC `time.Time`.
pub fn humanize_timestamp(v: f64) -> Result<String, String> {
    if v.is_nan() || v.is_infinite() {
        return Ok(g4(v));
    }
    Ok(seconds_to_time(v)?.to_go_string())
}

/// `toTime`: Unix seconds as a `time.Time`.
pub fn to_time(v: f64) -> Result<GoTime, String> {
    seconds_to_time(v)
}

/// `stripPort`: `host:port` → `host`.
pub fn strip_port(host_port: &str) -> String {
    split_host_port(host_port)
        .map(|(h, _)| h.to_string())
        .unwrap_or_else(|| host_port.to_string())
}

/// `stripDomain`: `host.example.com:9090` → `host:9090` (IP addresses stay).
pub fn strip_domain(host_port: &str) -> String {
    let (host, port) = split_host_port(host_port).unwrap_or((host_port, ""));
    if host.parse::<std::net::IpAddr>().is_ok() {
        return host_port.to_string();
    }
    let host = host.split('.').next().unwrap_or(host);
    if port.is_empty() {
        host.to_string()
    } else {
        format!("{host}:{port}")
    }
}

/// Go's `net.SplitHostPort` (brackets around IPv6 hosts removed).
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return Some((host, after.strip_prefix(':')?));
    }
    let (host, port) = s.rsplit_once(':')?;
    if host.contains(':') {
        return None;
    }
    Some((host, port))
}

/// `parseDuration`: a Prometheus duration (`1h30m`, `90s`, `1.5`) as seconds.
pub fn parse_duration(s: &str) -> Result<f64, String> {
    if let Ok(v) = s.parse::<f64>() {
        return Ok(v);
    }
    duration_ms(s)
        .map(|ms| ms as f64 / 1000.0)
        .ok_or_else(|| format!("not a valid duration string: {s:?}"))
}

/// A Prometheus duration written with units (`1h30m`, `90s`, `500ms`, `2w`)
/// in milliseconds, as `model.ParseDuration` of prometheus/common reads it:
/// unit terms in the order y, w, d, h, m, s, ms, each at most once; `0`
/// alone is allowed. `None` when malformed or beyond `i64` milliseconds.
pub fn duration_ms(s: &str) -> Option<u64> {
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 24 * 3600 * 1000),
        ("w", 7 * 24 * 3600 * 1000),
        ("d", 24 * 3600 * 1000),
        ("h", 3600 * 1000),
        ("m", 60 * 1000),
        ("s", 1000),
        ("ms", 1),
    ];
    if s == "0" {
        return Some(0);
    }
    let mut rest = s;
    let mut next_unit = 0;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        let after = &rest[digits..];
        // "ms" must win over "m" followed by a stray "s".
        let (index, unit_len) = UNITS
            .iter()
            .enumerate()
            .skip(next_unit)
            .filter(|(_, (unit, _))| after.starts_with(unit))
            .map(|(i, (unit, _))| (i, unit.len()))
            .max_by_key(|(_, len)| *len)?;
        total = total.checked_add(n.checked_mul(UNITS[index].1)?)?;
        next_unit = index + 1;
        rest = &after[unit_len..];
    }
    (!s.is_empty() && total <= i64::MAX as u64).then_some(total)
}

/// `match`: whether `text` matches the regular expression `pattern`.
pub fn regex_match(pattern: &str, text: &str, pre: Option<&Regex>) -> Result<bool, String> {
    let re = compile(pattern, pre)?;
    Ok(re.is_match(text))
}

/// `reReplaceAll pattern replacement text`.
pub fn re_replace_all(
    pattern: &str,
    replacement: &str,
    text: &str,
    pre: Option<&Regex>,
) -> Result<String, String> {
    let re = compile(pattern, pre)?;
    Ok(re.replace_all(text, replacement).into_owned())
}

fn compile<'r>(pattern: &str, pre: Option<&'r Regex>) -> Result<Cow<'r, Regex>, String> {
    if let Some(r) = pre {
        return Ok(Cow::Borrowed(r));
    }
    Regex::new(pattern)
        .map(Cow::Owned)
        .map_err(|e| format!("error parsing regexp: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanize_like_prometheus() {
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize(1234.0), "1.234k");
        assert_eq!(humanize(12345678.0), "12.35M");
        assert_eq!(humanize(0.0123), "12.3m");
        assert_eq!(humanize(-1234.0), "-1.234k");
        assert_eq!(humanize1024(1024.0), "1ki");
        assert_eq!(humanize1024(1.5 * 1024.0 * 1024.0), "1.5Mi");
        assert_eq!(humanize_duration(0.0), "0s");
        assert_eq!(humanize_duration(1.5), "1.5s");
        assert_eq!(humanize_duration(90061.0), "1d 1h 1m 1s");
        assert_eq!(humanize_duration(3725.0), "1h 2m 5s");
        assert_eq!(humanize_duration(0.012), "12ms");
        assert_eq!(humanize_percentage(0.1234), "12.34%");
        assert_eq!(
            humanize_timestamp(1435065584.128).unwrap(),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
    }

    #[test]
    fn hosts_and_durations() {
        assert_eq!(strip_port("foo.example.com:9090"), "foo.example.com");
        assert_eq!(strip_port("[::1]:9090"), "::1");
        assert_eq!(strip_domain("foo.example.com:9090"), "foo:9090");
        assert_eq!(strip_domain("10.0.0.1:9090"), "10.0.0.1:9090");
        assert_eq!(parse_duration("1h30m").unwrap(), 5400.0);
        assert_eq!(parse_duration("250ms").unwrap(), 0.25);
        assert!(parse_duration("1x").is_err());
        assert!(regex_match("a.c", "abc", None).unwrap());
        assert!(regex_match("b", "abc", None).unwrap());
        assert!(!regex_match("^b", "abc", None).unwrap());
        assert_eq!(
            re_replace_all("h(.*)", "$1", "hello", None).unwrap(),
            "ello"
        );
    }
}
