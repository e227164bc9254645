//! Label names produced by parser stages.
//!
//! What flows through: raw keys taken from a log line (logfmt keys, JSON
//! field names, `unpack` keys) come in; label names Loki would attach come
//! out. Loki trims surrounding whitespace, prefixes a leading digit with `_`
//! and maps every character outside `[A-Za-z0-9_]` to `_` — one `_` per
//! Unicode scalar, not per byte.

/// Loki's `sanitizeLabelKey(name, true)`: surrounding whitespace trimmed, a
/// leading ASCII digit prefixed with `_`, every other character outside
/// `[A-Za-z0-9_]` replaced by `_`. An empty (or all-whitespace) name stays
/// empty, which parsers treat as "skip this key".
pub fn sanitize_label_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    append_sanitized(&mut out, name);
    out
}

/// Loki's `appendSanitized`: appends `key` sanitised to `to`; the leading
/// digit prefix is only added when `to` is empty (the first segment of a
/// flattened JSON key).
pub fn append_sanitized(to: &mut String, key: &str) {
    let key = trim_go_space(key);
    if key.is_empty() {
        return;
    }
    if to.is_empty() && key.as_bytes()[0].is_ascii_digit() {
        to.push('_');
    }
    for c in key.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            to.push(c);
        } else {
            to.push('_');
        }
    }
}

/// The classic Prometheus label-name rule `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {}
        _ => return false,
    }
    b[1..]
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// The UTF-8 label-name rule Loki applies to names given in a query
/// (`| json name="…"`, `| regexp` captures): any non-empty string.
pub fn is_valid_utf8_label_name(name: &str) -> bool {
    !name.is_empty()
}

/// Go's `strings.TrimSpace` (Unicode white space).
pub(crate) fn trim_go_space(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitises_like_loki() {
        assert_eq!(sanitize_label_name("cou-nter"), "cou_nter");
        assert_eq!(sanitize_label_name("foo.bar"), "foo_bar");
        assert_eq!(sanitize_label_name("test-dash"), "test_dash");
        assert_eq!(sanitize_label_name("1abc"), "_1abc");
        assert_eq!(sanitize_label_name("  spaced  "), "spaced");
        assert_eq!(sanitize_label_name("   "), "");
        assert_eq!(sanitize_label_name(""), "");
        assert_eq!(sanitize_label_name("ÜFT8👌"), "_FT8_");
        assert_eq!(sanitize_label_name("_net_"), "_net_");
    }

    #[test]
    fn append_only_prefixes_first_segment() {
        let mut s = String::from("pod");
        s.push('_');
        append_sanitized(&mut s, "1x");
        assert_eq!(s, "pod_1x");
    }

    #[test]
    fn validity() {
        assert!(is_valid_label_name("foo_bar1"));
        assert!(is_valid_label_name("_x"));
        assert!(!is_valid_label_name("1x"));
        assert!(!is_valid_label_name("a-b"));
        assert!(!is_valid_label_name(""));
        assert!(is_valid_utf8_label_name("a-b"));
        assert!(!is_valid_utf8_label_name(""));
    }
}
