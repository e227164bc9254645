//! Byte sizes and durations written as text.
//!
//! What flows through: a label value such as `"1.5 MB"` or `"1h2m3.5s"`
//! comes in; a number comes out, or `None` when Loki's conversion
//! (go-humanize `ParseBytes`, Go `time.ParseDuration`) would fail. Used by
//! `| unwrap bytes(..)` / `duration(..)`, size and duration label filters
//! and the `bytes` / `duration` template functions.

/// go-humanize `ParseBytes`: a number (digits, `.`, `,` thousands
/// separators) followed by an optional case-insensitive unit — SI (`kB`,
/// `MB`, … `EB`, also `k`, `M`) or IEC (`KiB`, … `EiB`, also `Ki`) — with
/// optional spaces between. The result is truncated to whole bytes.
pub fn parse_bytes(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    let mut last = 0;
    let mut has_comma = false;
    while last < b.len() && (b[last].is_ascii_digit() || b[last] == b'.' || b[last] == b',') {
        has_comma |= b[last] == b',';
        last += 1;
    }
    let num = &text[..last];
    let f: f64 = if has_comma {
        parse_go_float(&num.replace(',', ""))?
    } else {
        parse_go_float(num)?
    };
    let unit = super::labels::trim_go_space(&text[last..]).to_ascii_lowercase();
    let mult: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "p" | "pb" => 1e15,
        "e" | "eb" => 1e18,
        "ki" | "kib" => 1024.0,
        "mi" | "mib" => 1024f64.powi(2),
        "gi" | "gib" => 1024f64.powi(3),
        "ti" | "tib" => 1024f64.powi(4),
        "pi" | "pib" => 1024f64.powi(5),
        "ei" | "eib" => 1024f64.powi(6),
        _ => return None,
    };
    let v = f * mult;
    if v >= u64::MAX as f64 {
        return None;
    }
    Some((v as u64) as f64)
}

/// `strconv.ParseFloat` on the digits-and-dots subset `ParseBytes` feeds it.
fn parse_go_float(s: &str) -> Option<f64> {
    if s.is_empty() || s == "." {
        return None;
    }
    s.parse().ok()
}

/// Go `time.ParseDuration`, in seconds: a signed sequence of decimal
/// numbers each with a unit (`ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`, `h`),
/// e.g. `"1h2m3.5s"`, `"-1.5h"`; `"0"` alone needs no unit.
pub fn parse_duration_seconds(text: &str) -> Option<f64> {
    parse_duration_nanos(text).map(|ns| ns as f64 / 1e9)
}

/// Go `time.ParseDuration` in nanoseconds, with Go's overflow checks
/// (a duration beyond ±292 years is an error).
pub fn parse_duration_nanos(text: &str) -> Option<i64> {
    let mut s = text.as_bytes();
    let mut neg = false;
    if let Some(&c) = s.first()
        && (c == b'-' || c == b'+')
    {
        neg = c == b'-';
        s = &s[1..];
    }
    if s == b"0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return None;
        }
        // integer part
        let mut i = 0;
        let mut v: u64 = 0;
        while i < s.len() && s[i].is_ascii_digit() {
            v = v.checked_mul(10)?.checked_add((s[i] - b'0') as u64)?;
            if v > 1 << 63 {
                return None;
            }
            i += 1;
        }
        let pre = i != 0;
        // fraction
        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if i < s.len() && s[i] == b'.' {
            i += 1;
            let st = i;
            let mut overflow = false;
            while i < s.len() && s[i].is_ascii_digit() {
                if !overflow {
                    if frac > (1 << 63) / 10 {
                        overflow = true;
                    } else {
                        frac = frac * 10 + (s[i] - b'0') as u64;
                        scale *= 10.0;
                    }
                }
                i += 1;
            }
            post = i != st;
        }
        if !pre && !post {
            return None;
        }
        s = &s[i..];
        let u = s
            .iter()
            .position(|&c| c == b'.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if u == 0 {
            return None;
        }
        let unit: u64 = match &s[..u] {
            b"ns" => 1,
            b"us" | b"\xC2\xB5s" | b"\xCE\xBCs" => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            _ => return None,
        };
        s = &s[u..];
        if v > (1u64 << 63) / unit {
            return None;
        }
        v *= unit;
        if frac > 0 {
            v += (frac as f64 * (unit as f64 / scale)) as u64;
            if v > 1 << 63 {
                return None;
            }
        }
        total = total.checked_add(v)?;
        if total > 1 << 63 {
            return None;
        }
    }
    if neg {
        Some((total as i128).wrapping_neg() as i64)
    } else if total > i64::MAX as u64 {
        None
    } else {
        Some(total as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        let cases: &[(&str, f64)] = &[
            ("42", 42.0),
            ("42MB", 42e6),
            ("42mib", 42.0 * 1048576.0),
            ("42 MB", 42e6),
            ("42 mib", 42.0 * 1048576.0),
            ("42 kB", 42000.0),
            ("42 KiB", 43008.0),
            ("42K", 42000.0),
            ("42Ki", 43008.0),
            ("1,234.5 kB", 1234500.0),
            ("1.5 MB", 1.5e6),
            ("1.5B", 1.0),
            ("10KB", 10000.0),
            ("10KiB", 10240.0),
            ("3 kB", 3000.0),
            ("3MB", 3e6),
            ("1 EB", 1e18),
            ("0.5", 0.0),
            (".5k", 500.0),
        ];
        for (s, v) in cases {
            assert_eq!(parse_bytes(s), Some(*v), "{s}");
        }
        for s in ["", "abc", "-1", "1 ZB", "1.2.3", "1 MB x", "20 EB"] {
            assert_eq!(parse_bytes(s), None, "{s}");
        }
    }

    #[test]
    fn durations() {
        let cases: &[(&str, f64)] = &[
            ("0", 0.0),
            ("5s", 5.0),
            ("30s", 30.0),
            ("1478s", 1478.0),
            ("-5s", -5.0),
            ("+5s", 5.0),
            ("-0", 0.0),
            ("+0", 0.0),
            ("5.0s", 5.0),
            ("5.6s", 5.6),
            ("5.s", 5.0),
            (".5s", 0.5),
            ("1.0s", 1.0),
            ("1.00s", 1.0),
            ("1.004s", 1.004),
            ("100.00100s", 100.001),
            ("10ns", 1e-8),
            ("11us", 11e-6),
            ("12µs", 12e-6),
            ("12μs", 12e-6),
            ("13ms", 0.013),
            ("3ms", 0.003),
            ("14s", 14.0),
            ("15m", 900.0),
            ("16h", 57600.0),
            ("3h30m", 12600.0),
            ("3m10s", 190.0),
            ("1h2m3.5s", 3723.5),
            ("10.5s4m", 250.5),
            ("-2m3.4s", -123.4),
            ("1h1m1s1ms1us1ns", 3661.001001001),
            ("-1.5h", -5400.0),
            ("250ms", 0.25),
        ];
        for (s, v) in cases {
            let got = parse_duration_seconds(s).unwrap_or_else(|| panic!("{s}"));
            assert!((got - v).abs() < 1e-9, "{s}: {got} != {v}");
        }
        assert_eq!(
            parse_duration_nanos("9223372036854775807ns"),
            Some(i64::MAX)
        );
        assert_eq!(
            parse_duration_nanos("-9223372036854775808ns"),
            Some(i64::MIN)
        );
        assert_eq!(
            parse_duration_nanos("0.100000000000000000000h"),
            Some(360_000_000_000)
        );
        for s in [
            "",
            "3",
            "-",
            "s",
            ".",
            "-.",
            ".s",
            "+.s",
            "1d",
            "3000000h",
            "9223372036854775808ns",
            "x5s",
            "5s ",
        ] {
            assert_eq!(parse_duration_seconds(s), None, "{s}");
        }
    }
}
