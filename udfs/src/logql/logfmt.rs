//! `| logfmt`: key/value pairs of a logfmt line.
//!
//! What flows through: one log line comes in; the pairs Loki's logfmt parser
//! would set as labels come out, keys sanitised, in line order. The scanner
//! is a byte-level port of Loki's decoder (itself derived from go-logfmt),
//! so malformed input is skipped — or reported in `--strict` mode — at the
//! same places and with the same messages
//! (`logfmt syntax error at pos N : unexpected '='`).
//!
//! Duplicate keys: the first occurrence wins (Loki records a parsed label as
//! extracted and skips later keys of the same name); with `keep_empty` off,
//! an empty first occurrence is not set and so does not shadow a later one.

use std::borrow::Cow;

use super::labels::sanitize_label_name;

/// One scanned pair: the raw key and the (unquoted) value, `None` for a
/// standalone key or an empty value.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyVal<'a> {
    pub key: &'a str,
    pub value: Option<Cow<'a, str>>,
}

/// Byte-level logfmt scanner over one line.
pub struct Decoder<'a> {
    line: &'a str,
    pos: usize,
    err: Option<String>,
}

/// What one call to [`Decoder::scan`] found.
pub enum Scan<'a> {
    /// A well-formed pair.
    Pair(KeyVal<'a>),
    /// A malformed pair was skipped; [`Decoder::error`] holds the message.
    Malformed,
    /// Nothing left but whitespace.
    End,
}

impl<'a> Decoder<'a> {
    pub fn new(line: &'a str) -> Self {
        Decoder {
            line,
            pos: 0,
            err: None,
        }
    }

    /// The most recent syntax error, Loki's message.
    pub fn error(&self) -> Option<&str> {
        self.err.as_deref()
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.line.len()
    }

    fn syntax_error(&mut self, msg: &str) {
        self.err = Some(format!(
            "logfmt syntax error at pos {} : {}",
            self.pos + 1,
            msg
        ));
    }

    fn unexpected_byte(&mut self, c: u8) {
        self.err = Some(format!(
            "logfmt syntax error at pos {} : unexpected '{}'",
            self.pos + 1,
            c as char
        ));
    }

    fn skip_value(&mut self) -> Scan<'a> {
        let b = self.line.as_bytes();
        while self.pos < b.len() && b[self.pos] > b' ' {
            self.pos += 1;
        }
        Scan::Malformed
    }

    /// Advances to the next pair (Loki's `ScanKeyval`).
    pub fn scan(&mut self) -> Scan<'a> {
        let line = self.line;
        let b = line.as_bytes();
        while self.pos < b.len() && b[self.pos] <= b' ' {
            self.pos += 1;
        }
        if self.pos >= b.len() {
            return Scan::End;
        }
        // key
        let start = self.pos;
        let mut multibyte = false;
        loop {
            if self.pos >= b.len() {
                let key = &line[start..];
                if multibyte && key.contains('\u{FFFD}') {
                    self.syntax_error("invalid key");
                    return Scan::Malformed;
                }
                return Scan::Pair(KeyVal { key, value: None });
            }
            let c = b[self.pos];
            if c == b'=' {
                if self.pos == start {
                    self.unexpected_byte(c);
                    return self.skip_value();
                }
                let key = &line[start..self.pos];
                if multibyte && key.contains('\u{FFFD}') {
                    self.syntax_error("invalid key");
                    return self.skip_value();
                }
                return self.scan_value(key);
            } else if c == b'"' {
                self.unexpected_byte(c);
                return self.skip_value();
            } else if c <= b' ' {
                let key = &line[start..self.pos];
                if multibyte && key.contains('\u{FFFD}') {
                    self.syntax_error("invalid key");
                    return Scan::Malformed;
                }
                return Scan::Pair(KeyVal { key, value: None });
            } else if c >= 0x80 {
                multibyte = true;
            }
            self.pos += 1;
        }
    }

    fn scan_value(&mut self, key: &'a str) -> Scan<'a> {
        let line = self.line;
        let b = line.as_bytes();
        self.pos += 1; // '='
        if self.pos >= b.len() || b[self.pos] <= b' ' {
            return Scan::Pair(KeyVal { key, value: None });
        }
        if b[self.pos] == b'"' {
            return self.scan_quoted(key);
        }
        let start = self.pos;
        while self.pos < b.len() {
            let c = b[self.pos];
            if c == b'=' || c == b'"' {
                self.unexpected_byte(c);
                return self.skip_value();
            }
            if c <= b' ' {
                break;
            }
            self.pos += 1;
        }
        Scan::Pair(KeyVal {
            key,
            value: Some(Cow::Borrowed(&line[start..self.pos])),
        })
    }

    fn scan_quoted(&mut self, key: &'a str) -> Scan<'a> {
        let line = self.line;
        let b = line.as_bytes();
        let start = self.pos; // the opening quote
        let mut i = start + 1;
        let mut has_esc = false;
        let mut esc = false;
        while i < b.len() {
            let c = b[i];
            if esc {
                esc = false;
            } else if c == b'\\' {
                has_esc = true;
                esc = true;
            } else if c == b'"' {
                self.pos = i + 1;
                let inner = &line[start + 1..i];
                if has_esc {
                    match unquote(inner) {
                        Some(v) => {
                            let value = if v.is_empty() {
                                None
                            } else {
                                Some(Cow::Owned(v))
                            };
                            return Scan::Pair(KeyVal { key, value });
                        }
                        None => {
                            self.syntax_error("invalid quoted value");
                            return Scan::Malformed;
                        }
                    }
                }
                let value = if inner.is_empty() {
                    None
                } else {
                    Some(Cow::Borrowed(inner))
                };
                return Scan::Pair(KeyVal { key, value });
            }
            i += 1;
        }
        self.pos = b.len();
        self.syntax_error("unterminated quoted value");
        Scan::Malformed
    }
}

fn hex4(b: &[u8]) -> Option<u32> {
    if b.len() < 4 {
        return None;
    }
    let s = std::str::from_utf8(&b[..4]).ok()?;
    u32::from_str_radix(s, 16).ok()
}

/// JSON-style unescaping of a quoted logfmt value (also accepts `\'`).
pub(crate) fn unquote(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut lit = 0;
    while i < b.len() {
        match b[i] {
            b'"' => return None,
            b'\\' => {
                out.push_str(&s[lit..i]);
                i += 1;
                let c = *b.get(i)?;
                i += 1;
                match c {
                    b'"' | b'\\' | b'/' | b'\'' => out.push(c as char),
                    b'b' => out.push('\u{8}'),
                    b'f' => out.push('\u{c}'),
                    b'n' => out.push('\n'),
                    b'r' => out.push('\r'),
                    b't' => out.push('\t'),
                    b'u' => {
                        let r = hex4(&b[i..])?;
                        i += 4;
                        let ch = if (0xD800..0xE000).contains(&r) {
                            let pair = if b.len() >= i + 6 && b[i] == b'\\' && b[i + 1] == b'u' {
                                hex4(&b[i + 2..])
                            } else {
                                None
                            };
                            match pair {
                                Some(lo)
                                    if (0xD800..0xDC00).contains(&r)
                                        && (0xDC00..0xE000).contains(&lo) =>
                                {
                                    i += 6;
                                    char::from_u32(0x10000 + ((r - 0xD800) << 10) + (lo - 0xDC00))
                                        .unwrap_or('\u{FFFD}')
                                }
                                _ => '\u{FFFD}',
                            }
                        } else {
                            char::from_u32(r).unwrap_or('\u{FFFD}')
                        };
                        out.push(ch);
                    }
                    _ => return None,
                }
                lit = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&s[lit..]);
    Some(out)
}

/// Loki replaces U+FFFD in parsed values with a space.
fn clean_value(v: Cow<'_, str>) -> String {
    if v.contains('\u{FFFD}') {
        v.replace('\u{FFFD}', " ")
    } else {
        v.into_owned()
    }
}

/// All key/value pairs of a logfmt line as `| logfmt` sets them: keys
/// sanitised, in line order, first occurrence of a key wins.
///
/// `strict`: stop at the first malformed pair and return `Err(message)`
/// (Loki's `--strict`, which then sets `__error__="LogfmtParserErr"` while
/// keeping the pairs before the error — see [`parse_into`]). Otherwise
/// malformed pairs are skipped. `keep_empty`: keep standalone keys and
/// empty values as empty strings.
pub fn parse(line: &str, strict: bool, keep_empty: bool) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    parse_into(line, strict, keep_empty, &mut out)?;
    Ok(out)
}

/// [`parse`] appending to `out` (cleared first); on a strict-mode error the
/// pairs found before it stay in `out`, as Loki keeps them.
pub fn parse_into(
    line: &str,
    strict: bool,
    keep_empty: bool,
    out: &mut Vec<(String, String)>,
) -> Result<(), String> {
    out.clear();
    let mut dec = Decoder::new(line);
    while !dec.at_end() {
        match dec.scan() {
            Scan::End => break,
            Scan::Malformed => {
                if strict {
                    break;
                }
            }
            Scan::Pair(kv) => {
                let key = sanitize_label_name(kv.key);
                if key.is_empty() {
                    continue;
                }
                if out.iter().any(|(k, _)| *k == key) {
                    continue;
                }
                let value = match kv.value {
                    Some(v) => clean_value(v),
                    None => String::new(),
                };
                if !keep_empty && value.is_empty() {
                    continue;
                }
                out.push((key, value));
            }
        }
    }
    if strict && let Some(e) = dec.err {
        return Err(e);
    }
    Ok(())
}

/// `| logfmt label="key", …`: for every `(label, key)` the value of `key`
/// in the line (the last occurrence, as Loki overwrites expression labels),
/// `""` when absent. A value containing U+FFFD becomes empty, as in Loki.
/// `strict` reports the first malformed pair as `Err`.
pub fn extract(
    line: &str,
    expressions: &[(String, String)],
    strict: bool,
) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = expressions
        .iter()
        .map(|(id, _)| (id.clone(), String::new()))
        .collect();
    let mut dec = Decoder::new(line);
    while !dec.at_end() {
        match dec.scan() {
            Scan::End => break,
            Scan::Malformed => {
                if strict {
                    break;
                }
            }
            Scan::Pair(kv) => {
                let key = sanitize_label_name(kv.key);
                if key.is_empty() {
                    continue;
                }
                if let Some(i) = expressions.iter().position(|(_, k)| *k == key) {
                    out[i].1 = match kv.value {
                        Some(v) if !v.contains('\u{FFFD}') => v.into_owned(),
                        _ => String::new(),
                    };
                }
            }
        }
    }
    if strict && let Some(e) = dec.err {
        return Err(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Vec<(String, String)> {
        parse(line, false, false).unwrap()
    }
    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn not_logfmt() {
        assert_eq!(p("foobar====wqe=sdad1r"), kv(&[]));
        assert_eq!(
            parse("foobar====wqe=sdad1r", true, false).unwrap_err(),
            "logfmt syntax error at pos 8 : unexpected '='"
        );
    }

    #[test]
    fn basic_pairs() {
        assert_eq!(p("buzz=foo bar=�f"), kv(&[("buzz", "foo"), ("bar", " f")]));
        assert_eq!(p("buzz bar=foo"), kv(&[("bar", "foo")]));
        assert_eq!(p(r#"foobar="foo bar""#), kv(&[("foobar", "foo bar")]));
        assert_eq!(
            p(r#"foobar="foo\nbar\tbaz""#),
            kv(&[("foobar", "foo\nbar\tbaz")])
        );
        assert_eq!(
            p("foobar=\"foo\nbar\tbaz\""),
            kv(&[("foobar", "foo\nbar\tbaz")])
        );
        assert_eq!(
            p(r#"foobar="foo ba\\r baz""#),
            kv(&[("foobar", r"foo ba\r baz")])
        );
        assert_eq!(
            p("foobar=\"foo bar\nb\\\\az\""),
            kv(&[("foobar", "foo bar\nb\\az")])
        );
        assert_eq!(
            p(r#"foobar="foo bar" latency=10ms"#),
            kv(&[("foobar", "foo bar"), ("latency", "10ms")])
        );
        assert_eq!(p(""), kv(&[]));
    }

    #[test]
    fn escaped_quotes_and_unicode() {
        assert_eq!(
            p(r#"msg="say \"hi\" ☃" k=v"#),
            kv(&[("msg", "say \"hi\" ☃"), ("k", "v")])
        );
        assert_eq!(p(r#"u="\u00e9\ud83d\ude00""#), kv(&[("u", "é😀")]));
        assert_eq!(p("ключ=значение"), kv(&[("____", "значение")]));
    }

    #[test]
    fn duplicates_first_wins() {
        assert_eq!(
            p(r#"foobar="foo bar" foobar=10ms"#),
            kv(&[("foobar", "foo bar")])
        );
        assert_eq!(p("a= a=1"), kv(&[("a", "1")]));
        assert_eq!(parse("a= a=1", false, true).unwrap(), kv(&[("a", "")]));
    }

    #[test]
    fn invalid_keys_and_errors() {
        assert_eq!(
            p(r#"foo="foo bar" foo.bar=10ms test-dash=foo"#),
            kv(&[
                ("foo", "foo bar"),
                ("foo_bar", "10ms"),
                ("test_dash", "foo")
            ])
        );
        assert_eq!(
            p(r#"foo="foo bar" =notkey bar=10ms"#),
            kv(&[("foo", "foo bar"), ("bar", "10ms")])
        );
        let mut out = Vec::new();
        let e = parse_into(r#"foo="foo bar" =notkey bar=10ms"#, true, false, &mut out).unwrap_err();
        assert_eq!(e, "logfmt syntax error at pos 15 : unexpected '='");
        assert_eq!(out, kv(&[("foo", "foo bar")]));
        assert_eq!(
            parse(r#"foo="foo bar" b�r=10ms"#, true, false).unwrap_err(),
            "logfmt syntax error at pos 20 : invalid key"
        );
        assert_eq!(p(r#"foo="foo bar" b�r=10ms"#), kv(&[("foo", "foo bar")]));
        assert_eq!(
            parse(r#"foo="foo bar" bu"zz=10ms"#, true, false).unwrap_err(),
            r#"logfmt syntax error at pos 17 : unexpected '"'"#
        );
        assert_eq!(p(r#"bar=bu=zz foo="foo bar""#), kv(&[("foo", "foo bar")]));
        assert_eq!(
            parse(r#"bar=bu=zz foo="foo bar""#, true, false).unwrap_err(),
            "logfmt syntax error at pos 7 : unexpected '='"
        );
        assert_eq!(
            parse(r#"a="open"#, true, false).unwrap_err(),
            "logfmt syntax error at pos 8 : unterminated quoted value"
        );
        assert_eq!(
            parse(r#"a="x\q""#, true, false).unwrap_err(),
            "logfmt syntax error at pos 8 : invalid quoted value"
        );
    }

    #[test]
    fn keep_empty() {
        assert_eq!(
            parse("foo bar=buzz", false, false).unwrap(),
            kv(&[("bar", "buzz")])
        );
        assert_eq!(
            parse("foo bar=buzz", false, true).unwrap(),
            kv(&[("foo", ""), ("bar", "buzz")])
        );
        assert_eq!(
            parse("foo bar=buzz", true, true).unwrap(),
            kv(&[("foo", ""), ("bar", "buzz")])
        );
        assert_eq!(
            parse("foo=b�r bar=buzz", false, true).unwrap(),
            kv(&[("foo", "b r"), ("bar", "buzz")])
        );
        assert_eq!(
            parse(r#"e="" x="#, false, true).unwrap(),
            kv(&[("e", ""), ("x", "")])
        );
    }

    #[test]
    fn expressions() {
        let exprs = vec![
            ("n".to_string(), "name".to_string()),
            ("m".to_string(), "missing".to_string()),
        ];
        assert_eq!(
            extract("name=text1 name=duplicate x=1", &exprs, false).unwrap(),
            kv(&[("n", "duplicate"), ("m", "")])
        );
    }
}
