//! `| json`, `| json label="expression"` and `| unpack`.
//!
//! What flows through: one log line comes in; the labels Loki's JSON stages
//! would set come out. The scanner is a byte-level port of the lenient
//! `jsonparser` Loki uses: it walks the line without building a tree, stops
//! at the closing brace of the top-level object (trailing bytes are
//! ignored) and reports malformed input with the same messages
//! (`Value looks like object, but can't find closing '}' symbol`, …), which
//! Loki puts in `__error_details__` next to `__error__="JSONParserErr"`.
//!
//! `| json` without parameters flattens nested objects with `_`, sanitises
//! keys, keeps strings (unescaped), numbers (verbatim) and booleans, and
//! skips arrays and `null`. The first occurrence of a key wins.

use std::borrow::Cow;

use super::labels::{append_sanitized, sanitize_label_name, trim_go_space};

const MALFORMED_JSON: &str = "Malformed JSON error";
const MALFORMED_STRING: &str = "Value is string, but can't find closing '\"' symbol";
const MALFORMED_ARRAY: &str = "Value is array, but can't find closing ']' symbol";
const MALFORMED_OBJECT: &str = "Value looks like object, but can't find closing '}' symbol";
const UNKNOWN_VALUE_TYPE: &str = "Unknown value type";
const MALFORMED_STRING_ESCAPE: &str = "Encountered an invalid escape sequence in a string";
const NOT_AN_OBJECT: &str = "expecting json object(6), but it is not";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Str,
    Num,
    Obj,
    Arr,
    Bool,
    Null,
}

fn next_token(d: &[u8]) -> Option<usize> {
    d.iter()
        .position(|c| !matches!(c, b' ' | b'\n' | b'\r' | b'\t'))
}

/// Offset just past the closing quote (input starts after the opening one),
/// and whether a backslash was seen.
fn string_end(d: &[u8]) -> (Option<usize>, bool) {
    let mut escaped = false;
    for (i, &c) in d.iter().enumerate() {
        if c == b'"' {
            if !escaped {
                return (Some(i + 1), false);
            }
            // count the backslashes before the quote
            let mut j = i;
            let mut n = 0;
            while j > 0 && d[j - 1] == b'\\' {
                n += 1;
                j -= 1;
            }
            if n % 2 == 0 {
                return (Some(i + 1), true);
            }
        } else if c == b'\\' {
            escaped = true;
        }
    }
    (None, escaped)
}

fn block_end(d: &[u8], open: u8, close: u8) -> Option<usize> {
    let mut level = 0i32;
    let mut i = 0;
    while i < d.len() {
        let c = d[i];
        if c == b'"' {
            let (se, _) = string_end(&d[i + 1..]);
            i += se?;
        } else if c == open {
            level += 1;
        } else if c == close {
            level -= 1;
            if level == 0 {
                return Some(i + 1);
            }
        }
        i += 1;
    }
    None
}

fn token_end(d: &[u8]) -> usize {
    d.iter()
        .position(|c| matches!(c, b' ' | b'\n' | b'\r' | b'\t' | b',' | b'}' | b']'))
        .unwrap_or(d.len())
}

/// jsonparser's `Get(data)` without keys: the first value of `d` (quotes
/// stripped from strings), its type, and the offset just past it.
fn get_value(d: &[u8]) -> Result<(&[u8], Ty, usize), &'static str> {
    let off = next_token(d).ok_or(MALFORMED_JSON)?;
    let c = d[off];
    match c {
        b'"' => {
            let (e, _) = string_end(&d[off + 1..]);
            let e = e.ok_or(MALFORMED_STRING)?;
            let end = off + e + 1;
            Ok((&d[off + 1..end - 1], Ty::Str, end))
        }
        b'[' => {
            let e = block_end(&d[off..], b'[', b']').ok_or(MALFORMED_ARRAY)?;
            Ok((&d[off..off + e], Ty::Arr, off + e))
        }
        b'{' => {
            let e = block_end(&d[off..], b'{', b'}').ok_or(MALFORMED_OBJECT)?;
            Ok((&d[off..off + e], Ty::Obj, off + e))
        }
        _ => {
            let e = token_end(&d[off..]);
            let v = &d[off..off + e];
            let ty = match c {
                b't' | b'f' if v == b"true" || v == b"false" => Ty::Bool,
                b'u' | b'n' if v == b"null" => Ty::Null,
                b'0'..=b'9' | b'-' => Ty::Num,
                _ => return Err(UNKNOWN_VALUE_TYPE),
            };
            Ok((v, ty, off + e))
        }
    }
}

/// jsonparser's `ObjectEach`: calls `f(key, value, type)` for every member
/// of the object at the start of `d`.
fn object_each<'d, E: From<&'static str>>(
    d: &'d [u8],
    f: &mut dyn FnMut(Cow<'d, str>, &'d [u8], Ty) -> Result<(), E>,
) -> Result<(), E> {
    let mut off = next_token(d).ok_or(MALFORMED_OBJECT)?;
    if d[off] != b'{' {
        return Err(MALFORMED_OBJECT.into());
    }
    off += 1;
    off += next_token(&d[off..]).ok_or(MALFORMED_JSON)?;
    if d[off] == b'}' {
        return Ok(());
    }
    while off < d.len() {
        match d[off] {
            b'"' => off += 1,
            b'}' => return Ok(()),
            _ => return Err(MALFORMED_OBJECT.into()),
        }
        let (e, esc) = string_end(&d[off..]);
        let e = e.ok_or(MALFORMED_JSON)?;
        let raw_key = &d[off..off + e - 1];
        off += e;
        let key = if esc {
            Cow::Owned(unescape(raw_key).ok_or(MALFORMED_STRING_ESCAPE)?)
        } else {
            bytes_str(raw_key)
        };
        off += next_token(&d[off..]).ok_or(MALFORMED_JSON)?;
        if d[off] != b':' {
            return Err(MALFORMED_JSON.into());
        }
        off += 1;
        let (v, ty, end) = get_value(&d[off..])?;
        f(key, v, ty)?;
        off += end;
        off += next_token(&d[off..]).ok_or(MALFORMED_ARRAY)?;
        match d[off] {
            b'}' => return Ok(()),
            b',' => off += 1,
            _ => return Err(MALFORMED_OBJECT.into()),
        }
        off += next_token(&d[off..]).ok_or(MALFORMED_ARRAY)?;
    }
    Err(MALFORMED_OBJECT.into())
}

/// jsonparser's `ArrayEach` over the array at the start of `d`, stopping
/// (without error) at the first malformed element.
fn array_each<'d>(d: &'d [u8], f: &mut dyn FnMut(usize, &'d [u8], Ty) -> bool) {
    let Some(mut off) = next_token(d) else { return };
    off += 1;
    let Some(n) = next_token(&d[off.min(d.len())..]) else {
        return;
    };
    off += n;
    if d[off] == b']' {
        return;
    }
    let mut idx = 0;
    loop {
        let Ok((v, ty, end)) = get_value(&d[off..]) else {
            return;
        };
        if end == 0 || !f(idx, v, ty) {
            return;
        }
        idx += 1;
        off += end;
        let Some(n) = next_token(&d[off..]) else {
            return;
        };
        off += n;
        match d[off] {
            b',' => off += 1,
            _ => return,
        }
    }
}

/// Input is valid UTF-8 sliced at ASCII boundaries, so this never copies.
fn bytes_str(b: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(b)
}

fn h2i(c: u8) -> Option<u32> {
    (c as char).to_digit(16)
}

fn u4(b: &[u8]) -> Option<u32> {
    if b.len() < 6 || b[0] != b'\\' || b[1] != b'u' {
        return None;
    }
    Some(h2i(b[2])? << 12 | h2i(b[3])? << 8 | h2i(b[4])? << 4 | h2i(b[5])?)
}

/// jsonparser's `Unescape`; `None` on an invalid escape sequence.
fn unescape(b: &[u8]) -> Option<String> {
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let Some(p) = memchr::memchr(b'\\', &b[i..]) else {
            out.extend_from_slice(&b[i..]);
            break;
        };
        out.extend_from_slice(&b[i..i + p]);
        i += p;
        let e = *b.get(i + 1)?;
        let simple = match e {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'u' => None,
            _ => return None,
        };
        if let Some(c) = simple {
            out.push(c);
            i += 2;
            continue;
        }
        let r = u4(&b[i..])?;
        let (ch, len) = if r <= 0xFFFF && !(0xD800..=0xDFFF).contains(&r) {
            (char::from_u32(r).unwrap_or('\u{FFFD}'), 6)
        } else {
            let r2 = u4(&b[i + 6..])?;
            if r2 < 0xDC00 {
                return None;
            }
            let c = 0x10000 + ((r.wrapping_sub(0xD800)) << 10) + r2.wrapping_sub(0xDC00);
            (char::from_u32(c).unwrap_or('\u{FFFD}'), 12)
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        i += len;
    }
    Some(
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

/// Loki's `unescapeJSONString`: unescaped, `""` on a bad escape, U+FFFD
/// replaced with a space.
fn unescape_value(b: &[u8]) -> String {
    let s = if memchr::memchr(b'\\', b).is_none() {
        bytes_str(b).into_owned()
    } else {
        match unescape(b) {
            Some(s) => s,
            None => return String::new(),
        }
    };
    if s.contains('\u{FFFD}') {
        s.replace('\u{FFFD}', " ")
    } else {
        s
    }
}

fn leaf_value(v: &[u8], ty: Ty) -> Option<String> {
    match ty {
        Ty::Str => Some(unescape_value(v)),
        Ty::Num => Some(bytes_str(v).into_owned()),
        Ty::Bool => Some(if v == b"true" { "true" } else { "false" }.to_string()),
        Ty::Null | Ty::Arr | Ty::Obj => None,
    }
}

fn push_first(out: &mut Vec<(String, String)>, key: String, value: String) {
    if !out.iter().any(|(k, _)| *k == key) {
        out.push((key, value));
    }
}

/// `| json` without parameters: all leaf fields as flattened, sanitised
/// labels in document order. `Err(details)` when the line is not a JSON
/// object (the text Loki puts in `__error_details__`).
pub fn parse(line: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    parse_into(line, &mut out)?;
    Ok(out)
}

/// [`parse`] into `out` (cleared first); on error the labels found before
/// it stay in `out`, as Loki keeps them next to `__error__`.
pub fn parse_into(line: &str, out: &mut Vec<(String, String)>) -> Result<(), String> {
    out.clear();
    let mut prefix = String::new();
    walk(line.as_bytes(), 0, &mut prefix, out).map_err(|e: &'static str| e.to_string())
}

fn walk(
    d: &[u8],
    depth: usize,
    prefix: &mut String,
    out: &mut Vec<(String, String)>,
) -> Result<(), &'static str> {
    object_each(d, &mut |key: Cow<'_, str>, v, ty| {
        match ty {
            Ty::Obj => {
                let len = prefix.len();
                push_segment(prefix, &key);
                let r = walk(v, depth + 1, prefix, out);
                prefix.truncate(len);
                r?;
            }
            _ => {
                let Some(value) = leaf_value(v, ty) else {
                    return Ok(());
                };
                if depth == 0 {
                    let k = sanitize_label_name(&key);
                    if !k.is_empty() {
                        push_first(out, k, value);
                    }
                } else {
                    let len = prefix.len();
                    push_segment(prefix, &key);
                    let k = prefix.clone();
                    prefix.truncate(len);
                    push_first(out, k, value);
                }
            }
        }
        Ok(())
    })
}

fn push_segment(prefix: &mut String, key: &str) {
    if trim_go_space(key).is_empty() {
        return;
    }
    if !prefix.is_empty() {
        prefix.push('_');
    }
    append_sanitized(prefix, key);
}

/// One step of a JSON expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

/// A compiled `| json label="expression"` expression: `a.b`, `a["b c"]`,
/// `a[0]`, `a.b[1].c`, `["a"].b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonExpression {
    path: Vec<PathSegment>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(String),
    Str(String),
    Index(usize),
    Lsb,
    Rsb,
    Dot,
    End,
}

impl Tok {
    fn name(&self) -> &'static str {
        match self {
            Tok::Field(_) => "FIELD",
            Tok::Str(_) => "STRING",
            Tok::Index(_) => "INDEX",
            Tok::Lsb => "LSB",
            Tok::Rsb => "RSB",
            Tok::Dot => "DOT",
            Tok::End => "$end",
        }
    }
}

fn lex_expression(s: &str) -> Result<Vec<Tok>, String> {
    let b: Vec<char> = s.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let st = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i < b.len() && b[i] == '.' {
                return Err("cannot use float as array index".into());
            }
            let n: String = b[st..i].iter().collect();
            toks.push(Tok::Index(
                n.parse().map_err(|_| format!("invalid index {n}"))?,
            ));
        } else if c == '[' {
            toks.push(Tok::Lsb);
            i += 1;
        } else if c == ']' {
            toks.push(Tok::Rsb);
            i += 1;
        } else if c == '.' {
            toks.push(Tok::Dot);
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let st = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            toks.push(Tok::Field(b[st..i].iter().collect()));
        } else if c == '"' {
            i += 1;
            let st = i;
            while i < b.len() && b[i] != '"' && b[i] != ']' {
                i += 1;
            }
            toks.push(Tok::Str(b[st..i].iter().collect()));
            if i < b.len() && b[i] == '"' {
                i += 1;
            }
        } else {
            return Err(format!("unexpected char {c}"));
        }
    }
    toks.push(Tok::End);
    Ok(toks)
}

impl JsonExpression {
    /// Parses an expression; errors read like Loki's
    /// (`syntax error: unexpected DOT, expecting FIELD`).
    pub fn compile(expression: &str) -> Result<JsonExpression, String> {
        let toks = lex_expression(expression)?;
        let err = |t: &Tok, exp: &str| {
            if exp.is_empty() {
                format!("syntax error: unexpected {}", t.name())
            } else {
                format!("syntax error: unexpected {}, expecting {}", t.name(), exp)
            }
        };
        let mut path = Vec::new();
        let mut i = 0;
        let bracket = |i: &mut usize, path: &mut Vec<PathSegment>| -> Result<(), String> {
            // toks[*i] is Lsb
            *i += 1;
            match &toks[*i] {
                Tok::Str(s) => path.push(PathSegment::Key(s.clone())),
                Tok::Index(n) => path.push(PathSegment::Index(*n)),
                t => return Err(err(t, "STRING or INDEX")),
            }
            *i += 1;
            if toks[*i] != Tok::Rsb {
                return Err(err(&toks[*i], "RSB"));
            }
            *i += 1;
            Ok(())
        };
        match &toks[0] {
            Tok::Field(f) => {
                path.push(PathSegment::Key(f.clone()));
                i = 1;
            }
            Tok::Lsb => bracket(&mut i, &mut path)?,
            t => return Err(err(t, "LSB or FIELD")),
        }
        loop {
            match &toks[i] {
                Tok::End => break,
                Tok::Lsb => bracket(&mut i, &mut path)?,
                Tok::Dot => {
                    i += 1;
                    match &toks[i] {
                        Tok::Field(f) => path.push(PathSegment::Key(f.clone())),
                        t => return Err(err(t, "FIELD")),
                    }
                    i += 1;
                }
                t => return Err(err(t, "")),
            }
        }
        Ok(JsonExpression { path })
    }

    pub fn path(&self) -> &[PathSegment] {
        &self.path
    }

    /// The value at this path in `line`, as Loki renders it; `None` when
    /// the path does not exist.
    pub fn find(&self, line: &str) -> Option<String> {
        let mut d = line.as_bytes();
        let mut ty = Ty::Obj;
        let mut first = true;
        for seg in &self.path {
            let (v, t) = match seg {
                PathSegment::Key(k) => {
                    if !first && ty != Ty::Obj {
                        return None;
                    }
                    let mut found = None;
                    let _ = object_each(d, &mut |key: Cow<'_, str>,
                                                 v,
                                                 t|
                     -> Result<(), &'static str> {
                        if key == k.as_str() {
                            found = Some((v, t));
                            return Err("found");
                        }
                        Ok(())
                    });
                    found?
                }
                PathSegment::Index(n) => {
                    if !first && ty != Ty::Arr {
                        return None;
                    }
                    let mut found = None;
                    array_each(d, &mut |i, v, t| {
                        if i == *n {
                            found = Some((v, t));
                            false
                        } else {
                            true
                        }
                    });
                    found?
                }
            };
            d = v;
            ty = t;
            first = false;
        }
        Some(match ty {
            Ty::Null => String::new(),
            Ty::Obj => bytes_str(d).into_owned(),
            _ => unescape_value(d),
        })
    }
}

/// `| json label="expression", …`: one `(label, value)` per expression, in
/// order. A path that does not exist — and `null` — yields `""` (Loki sets
/// every requested label). Selected objects are their JSON text verbatim;
/// arrays are their JSON text with string escapes resolved, as Loki does.
/// An empty line gives no labels. A line not starting with `{`, `[` or `"`
/// gives `Err("")`: Loki sets `__error__="JSONParserErr"` without details.
pub fn extract(
    line: &str,
    expressions: &[(String, JsonExpression)],
) -> Result<Vec<(String, String)>, String> {
    let Some(&c) = line.as_bytes().first() else {
        return Ok(Vec::new());
    };
    if !matches!(c, b'"' | b'{' | b'[') {
        return Err(String::new());
    }
    Ok(expressions
        .iter()
        .map(|(label, e)| (label.clone(), e.find(line).unwrap_or_default()))
        .collect())
}

/// What [`unpack`] gives: the labels and, when `_entry` was present, the
/// replacement line.
pub type Unpacked = (Vec<(String, String)>, Option<String>);

/// `| unpack`: when the object has a string `_entry` field, its top-level
/// string fields become labels (keys sanitised; a later duplicate
/// overwrites an earlier one) and `_entry` replaces the line. Without
/// `_entry` Loki sets nothing and keeps the line: `Ok((vec![], None))`.
/// An empty line is left alone; a line not starting with `{` is an error.
pub fn unpack(line: &str) -> Result<Unpacked, String> {
    let b = line.as_bytes();
    if b.is_empty() {
        return Ok((Vec::new(), None));
    }
    if b[0] != b'{' {
        return Err(NOT_AN_OBJECT.to_string());
    }
    let mut labels: Vec<(String, String)> = Vec::new();
    let mut entry = None;
    object_each(b, &mut |key: Cow<'_, str>,
                         v,
                         ty|
     -> Result<(), &'static str> {
        if ty != Ty::Str {
            return Ok(());
        }
        if key == "_entry" {
            entry = Some(unescape(v).ok_or(MALFORMED_STRING_ESCAPE)?);
            return Ok(());
        }
        let k = sanitize_label_name(&key);
        let value = unescape_value(v);
        match labels.iter_mut().find(|(n, _)| *n == k) {
            Some(slot) => slot.1 = value,
            None => labels.push((k, value)),
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    match entry {
        Some(e) => Ok((labels, Some(e))),
        None => Ok((Vec::new(), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn flattens_nested_objects() {
        assert_eq!(
            parse(r#"{"app":"foo","namespace":"prod","pod":{"uuid":"foo","deployment":{"ref":"foobar"}}}"#).unwrap(),
            kv(&[("app", "foo"), ("namespace", "prod"), ("pod_uuid", "foo"), ("pod_deployment_ref", "foobar")])
        );
        assert_eq!(
            parse(r#"{"counter":1, "price": {"_net_":5.56909}}"#).unwrap(),
            kv(&[("counter", "1"), ("price__net_", "5.56909")])
        );
        assert_eq!(
            parse(r#"{"app":"foo","next":{"err":false},"n":null,"t":true}"#).unwrap(),
            kv(&[("app", "foo"), ("next_err", "false"), ("t", "true")])
        );
    }

    #[test]
    fn whitespace_and_empty_keys() {
        assert_eq!(
            parse(r#"{" ": {"foo":"bar"}}"#).unwrap(),
            kv(&[("foo", "bar")])
        );
        assert_eq!(parse(r#"{" ": {" ":"bar"}}"#).unwrap(), kv(&[("", "bar")]));
        assert_eq!(parse(r#"{" ": {"":"bar"}}"#).unwrap(), kv(&[("", "bar")]));
        assert_eq!(parse(r#"{"": {"":"bar"}}"#).unwrap(), kv(&[("", "bar")]));
        assert_eq!(parse(r#"{" ":"bar"}"#).unwrap(), kv(&[]));
    }

    #[test]
    fn escapes_unicode_arrays() {
        assert_eq!(
            parse(r#"{"counter":1,"foo":"foo\\\"bar", "price": {"_net_":5.56909}}"#).unwrap(),
            kv(&[
                ("counter", "1"),
                ("foo", r#"foo\"bar"#),
                ("price__net_", "5.56909")
            ])
        );
        assert_eq!(
            parse(r#"{"counter":1,"foo":"�", "price": {"_net_":5.56909}}"#).unwrap(),
            kv(&[("counter", "1"), ("foo", " "), ("price__net_", "5.56909")])
        );
        assert_eq!(
            parse(r#"{"counter":1, "price": {"net_":["10","20"]}}"#).unwrap(),
            kv(&[("counter", "1")])
        );
        assert_eq!(
            parse(r#"{"é":"\u00e9\ud83d\ude00"}"#).unwrap(),
            kv(&[("_", "é😀")])
        );
        assert_eq!(
            parse(r#"{"a":[{"b":1}],"c":{"d":[1,2],"e":"x"}}"#).unwrap(),
            kv(&[("c_e", "x")])
        );
    }

    #[test]
    fn bad_keys_and_duplicates() {
        assert_eq!(
            parse(r#"{"cou-nter":1}"#).unwrap(),
            kv(&[("cou_nter", "1")])
        );
        assert_eq!(
            parse(r#"{"foo":{"cou-nter":1}}""#).unwrap(),
            kv(&[("foo_cou_nter", "1")])
        );
        assert_eq!(parse(r#"{"a":"1","a":"2"}"#).unwrap(), kv(&[("a", "1")]));
        assert_eq!(
            parse(r#"{"1a":{"2b":"x"}}"#).unwrap(),
            kv(&[("_1a_2b", "x")])
        );
    }

    #[test]
    fn errors() {
        assert_eq!(parse("{n}").unwrap_err(), MALFORMED_OBJECT);
        assert_eq!(parse("not json").unwrap_err(), MALFORMED_OBJECT);
        assert_eq!(parse("").unwrap_err(), MALFORMED_OBJECT);
        assert_eq!(parse(r#"{"a":}"#).unwrap_err(), UNKNOWN_VALUE_TYPE);
        assert_eq!(parse(r#"{"a":"b"#).unwrap_err(), MALFORMED_STRING);
        assert_eq!(parse(r#"{"a" "b"}"#).unwrap_err(), MALFORMED_JSON);
        let mut out = Vec::new();
        assert!(parse_into(r#"{"a":"1","b":{"c":2,"d":x}}"#, &mut out).is_err());
        assert_eq!(out, kv(&[("a", "1"), ("b_c", "2")]));
        assert_eq!(parse("{}").unwrap(), kv(&[]));
    }

    const LINE: &str = r#"{"app":"foo","field with space":"value","field with ÜFT8👌":"value","null_field":null,"bool_field":false,"namespace":"prod","pod":{"uuid":"foo","deployment":{"ref":"foobar", "params": [1,2,3,"string_value"]}}}"#;

    fn ex(line: &str, e: &str) -> String {
        let c = JsonExpression::compile(e).unwrap();
        let r = extract(line, &[("x".to_string(), c)]).unwrap();
        r[0].1.clone()
    }

    #[test]
    fn expressions() {
        assert_eq!(ex(LINE, "app"), "foo");
        assert_eq!(ex(LINE, r#"["field with space"]"#), "value");
        assert_eq!(ex(LINE, r#"["field with ÜFT8👌"]"#), "value");
        assert_eq!(ex(LINE, "pod.uuid"), "foo");
        assert_eq!(ex(LINE, r#"pod["uuid"]"#), "foo");
        assert_eq!(ex(LINE, r#"["pod"]["uuid"]"#), "foo");
        assert_eq!(ex(LINE, r#"["pod"].uuid"#), "foo");
        assert_eq!(ex(LINE, "pod.deployment.params[0]"), "1");
        assert_eq!(ex(LINE, r#"pod[""]"#), "");
        assert_eq!(ex(LINE, r#"pod.deployment.params[""]"#), "");
        assert_eq!(ex(LINE, "pod.deployment.params[3]"), "string_value");
        assert_eq!(ex(LINE, "pod.deployment.params[9]"), "");
        assert_eq!(
            ex(LINE, "pod.deployment.params"),
            r#"[1,2,3,"string_value"]"#
        );
        assert_eq!(
            ex(LINE, "pod.deployment"),
            r#"{"ref":"foobar", "params": [1,2,3,"string_value"]}"#
        );
        assert_eq!(ex(LINE, "pod.nope"), "");
        assert_eq!(ex(LINE, "null_field"), "");
        assert_eq!(ex(LINE, "bool_field"), "false");
        assert_eq!(ex(LINE, "request.size.invalid"), "");
        assert_eq!(ex("{}", "pod.uuid"), "");
        assert_eq!(
            ex(
                r#"{"app":"{ \"key\": \"value\", \"key2\":\"value2\"}"}"#,
                "app"
            ),
            r#"{ "key": "value", "key2":"value2"}"#
        );
        assert_eq!(
            ex(r#"{"app":{"name":"great \"loki\""}"#, "app"),
            r#"{"name":"great \"loki\""}"#
        );
        assert_eq!(
            ex(r#"{"app":"{\"name\":\"great \\\"loki\\\"\"}"}"#, "app"),
            r#"{"name":"great \"loki\""}"#
        );
        assert_eq!(ex(r#"{"app":"foo","app":"duplicate"}"#, "app"), "foo");
        assert_eq!(
            ex(r#"{"a":[{"b":[0,{"c":"deep"}]}]}"#, "a[0].b[1].c"),
            "deep"
        );
        assert_eq!(ex(r#"[10,20]"#, "[1]"), "20");
    }

    #[test]
    fn expression_lines() {
        let e = JsonExpression::compile("a").unwrap();
        assert_eq!(
            extract("invalid json", &[("x".into(), e.clone())]).unwrap_err(),
            ""
        );
        assert_eq!(extract("", &[("x".into(), e)]).unwrap(), kv(&[]));
    }

    #[test]
    fn expression_syntax_errors() {
        let e = |s: &str| JsonExpression::compile(s).unwrap_err();
        assert_eq!(e("field with space"), "syntax error: unexpected FIELD");
        assert_eq!(
            e(r#""pod"]"#),
            "syntax error: unexpected STRING, expecting LSB or FIELD"
        );
        assert_eq!(
            e(r#"["pod""#),
            "syntax error: unexpected $end, expecting RSB"
        );
        assert_eq!(
            e(r#"["pod""uuid"]"#),
            "syntax error: unexpected STRING, expecting RSB"
        );
        assert_eq!(
            e("pod..uuid"),
            "syntax error: unexpected DOT, expecting FIELD"
        );
        assert_eq!(e("a[1.5]"), "cannot use float as array index");
        assert_eq!(
            JsonExpression::compile("a.b[1].c").unwrap().path(),
            &[
                PathSegment::Key("a".into()),
                PathSegment::Key("b".into()),
                PathSegment::Index(1),
                PathSegment::Key("c".into())
            ]
        );
    }

    #[test]
    fn unpack_entries() {
        let (l, e) = unpack(
            r#"{"bar":1,"app":"foo","namespace":"prod","_entry":"some message","pod":{"uid":"1"}}"#,
        )
        .unwrap();
        assert_eq!(l, kv(&[("app", "foo"), ("namespace", "prod")]));
        assert_eq!(e.as_deref(), Some("some message"));
        assert_eq!(
            unpack(r#""app":"foo","namespace":"prod""#).unwrap_err(),
            "expecting json object(6), but it is not"
        );
        assert_eq!(
            unpack(r#"["foo","bar"]"#).unwrap_err(),
            "expecting json object(6), but it is not"
        );
        assert_eq!(unpack("").unwrap(), (vec![], None));
        assert_eq!(unpack(r#"{"bar":1,"app":"foo"}"#).unwrap(), (vec![], None));
        let (_, e) = unpack(r#"{"_entry":"I0303 kubelet.go:178] \"Pod status updated\" pod=\"etcd\" status=Running"}"#).unwrap();
        assert_eq!(
            e.unwrap(),
            r#"I0303 kubelet.go:178] "Pod status updated" pod="etcd" status=Running"#
        );
        let (l, _) =
            unpack(r#"{"foo.bar":"10ms","test-dash":"foo","_entry":"m","foo_bar":"x"}"#).unwrap();
        assert_eq!(l, kv(&[("foo_bar", "x"), ("test_dash", "foo")]));
    }
}
