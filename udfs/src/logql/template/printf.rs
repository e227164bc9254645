//! Go's `fmt.Sprintf`, `Sprint` and `Sprintln` over template values.
//!
//! What flows through: a format string and [`Value`] arguments come in;
//! the text Go would produce comes out, including Go's in-band error
//! forms (`%!d(string=foo)`, `%!s(MISSING)`, `%!(EXTRA int=1)`).

use super::value::{Value, go_exp, shortest_digits};

#[derive(Default, Clone, Copy)]
struct Spec {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

fn pad(out: &mut String, s: &str, spec: &Spec, numeric: bool) {
    let n = s.chars().count();
    let w = spec.width.unwrap_or(0);
    if n >= w {
        out.push_str(s);
        return;
    }
    let fill = w - n;
    if spec.minus {
        out.push_str(s);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if spec.zero {
        // zeros go after a sign
        let (sign, rest) =
            if numeric && (s.starts_with('-') || s.starts_with('+') || s.starts_with(' ')) {
                s.split_at(1)
            } else {
                ("", s)
            };
        out.push_str(sign);
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(rest);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(s);
    }
}

fn bad(out: &mut String, verb: char, v: &Value<'_>) {
    match v {
        Value::Nil => out.push_str(&format!("%!{verb}(<nil>)")),
        _ => out.push_str(&format!("%!{verb}({}={})", v.type_name(), v.to_v_string())),
    }
}

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        quote_char(c, '"', &mut out);
    }
    out.push('"');
    out
}

fn quote_char(c: char, q: char, out: &mut String) {
    match c {
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == q => {
            out.push('\\');
            out.push(c);
        }
        c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if c.is_control() => {
            if (c as u32) < 0x10000 {
                out.push_str(&format!("\\u{:04x}", c as u32))
            } else {
                out.push_str(&format!("\\U{:08x}", c as u32))
            }
        }
        c => out.push(c),
    }
}

fn fmt_int(i: i64, verb: char, spec: &Spec) -> Option<String> {
    let neg = i < 0;
    let u = i.unsigned_abs();
    let body = match verb {
        'd' | 'v' => u.to_string(),
        'b' => format!("{u:b}"),
        'o' => {
            if spec.sharp {
                format!("0{u:o}")
            } else {
                format!("{u:o}")
            }
        }
        'O' => format!("0o{u:o}"),
        'x' => {
            if spec.sharp {
                format!("0x{u:x}")
            } else {
                format!("{u:x}")
            }
        }
        'X' => {
            if spec.sharp {
                format!("0X{u:X}")
            } else {
                format!("{u:X}")
            }
        }
        'c' => return Some(char::from_u32(i as u32).unwrap_or('\u{FFFD}').to_string()),
        'q' => {
            let mut s = String::from("'");
            quote_char(char::from_u32(i as u32).unwrap_or('\u{FFFD}'), '\'', &mut s);
            s.push('\'');
            return Some(s);
        }
        'U' => return Some(format!("U+{:04X}", i)),
        _ => return None,
    };
    let body = match spec.prec {
        Some(p) if body.len() < p => format!("{}{}", "0".repeat(p - body.len()), body),
        _ => body,
    };
    let sign = if neg {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    Some(format!("{sign}{body}"))
}

/// Go `strconv.FormatFloat(f, fmt, prec, 64)` for `e`, `f` and `g`
/// (`prec` `None` = shortest).
pub fn fmt_float(f: f64, verb: char, prec: Option<usize>) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let lower = verb.to_ascii_lowercase();
    let upper = verb.is_ascii_uppercase();
    let s = match lower {
        'e' => {
            let s = match prec {
                Some(p) => format!("{:.*e}", p, f),
                None => format!("{f:e}"),
            };
            let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
            format!("{m}{}", go_exp(e.parse().unwrap_or(0)))
        }
        'f' => match prec {
            Some(p) => format!("{:.*}", p, f),
            None => format!("{f}"),
        },
        _ => {
            // %g
            let neg = f.is_sign_negative();
            let (digits, exp) = match prec {
                None => shortest_digits(f),
                Some(p) => {
                    let p = p.max(1);
                    let s = format!("{:.*e}", p - 1, f.abs());
                    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
                    let d: String = m.chars().filter(|c| *c != '.').collect();
                    let d = d.trim_end_matches('0').to_string();
                    (
                        if d.is_empty() { "0".to_string() } else { d },
                        e.parse().unwrap_or(0),
                    )
                }
            };
            let eprec = match prec {
                None => 6,
                Some(p) => {
                    let p = p.max(1) as i32;
                    if p > digits.len() as i32 && digits.len() as i32 > exp {
                        digits.len() as i32
                    } else {
                        p
                    }
                }
            };
            let mut s = String::new();
            if neg {
                s.push('-');
            }
            if exp < -4 || exp >= eprec {
                s.push_str(&digits[..1]);
                if digits.len() > 1 {
                    s.push('.');
                    s.push_str(&digits[1..]);
                }
                s.push_str(&go_exp(exp));
            } else if exp < 0 {
                s.push_str("0.");
                s.push_str(&"0".repeat((-exp - 1) as usize));
                s.push_str(&digits);
            } else {
                let int_len = exp as usize + 1;
                if digits.len() <= int_len {
                    s.push_str(&digits);
                    s.push_str(&"0".repeat(int_len - digits.len()));
                } else {
                    s.push_str(&digits[..int_len]);
                    s.push('.');
                    s.push_str(&digits[int_len..]);
                }
            }
            s
        }
    };
    if upper { s.to_uppercase() } else { s }
}

fn format_one(out: &mut String, verb: char, spec: &Spec, v: &Value<'_>) {
    match (verb, v) {
        ('T', v) => pad(out, v.type_name(), spec, false),
        ('v', Value::Float(f)) => {
            let mut s = match spec.prec {
                Some(p) => fmt_float(*f, 'g', Some(p)),
                None => super::value::format_float_v(*f),
            };
            if spec.plus && *f >= 0.0 {
                s.insert(0, '+');
            }
            pad(out, &s, spec, true);
        }
        ('v' | 'd' | 'b' | 'o' | 'O' | 'x' | 'X' | 'c' | 'q' | 'U', Value::Int(i)) => {
            match fmt_int(*i, verb, spec) {
                Some(s) => pad(out, &s, spec, true),
                None => bad(out, verb, v),
            }
        }
        ('e' | 'E' | 'f' | 'F' | 'g' | 'G', Value::Float(f)) => {
            let p = match verb {
                'g' | 'G' => spec.prec,
                _ => Some(spec.prec.unwrap_or(6)),
            };
            let mut s = fmt_float(*f, verb, p);
            if spec.plus && !s.starts_with('-') {
                s.insert(0, '+');
            } else if spec.space && !s.starts_with('-') {
                s.insert(0, ' ');
            }
            pad(out, &s, spec, true);
        }
        ('s' | 'v', Value::Str(s)) => {
            let s: &str = s;
            let t: String = match spec.prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.to_string(),
            };
            pad(out, &t, spec, false);
        }
        ('q', Value::Str(s)) => pad(out, &go_quote(s), spec, false),
        ('x' | 'X', Value::Str(s)) => {
            let mut h = String::with_capacity(s.len() * 2);
            for b in s.bytes() {
                if verb == 'x' {
                    h.push_str(&format!("{b:02x}"));
                } else {
                    h.push_str(&format!("{b:02X}"));
                }
            }
            pad(out, &h, spec, false);
        }
        ('t' | 'v', Value::Bool(b)) => pad(out, if *b { "true" } else { "false" }, spec, false),
        ('s' | 'v', Value::Time(t)) => pad(out, &t.to_go_string(), spec, false),
        ('v', Value::Nil) => pad(out, "<nil>", spec, false),
        ('s' | 'v', Value::Json(_) | Value::Labels(_)) => pad(out, &v.to_v_string(), spec, false),
        _ => bad(out, verb, v),
    }
}

/// Go's `fmt.Sprintf`.
pub fn sprintf(format: &str, args: &[Value<'_>]) -> String {
    let mut out = String::with_capacity(format.len() + 16);
    let b = format.as_bytes();
    let mut i = 0;
    let mut argn = 0;
    let mut lit = 0;
    while i < b.len() {
        if b[i] != b'%' {
            i += 1;
            continue;
        }
        out.push_str(&format[lit..i]);
        i += 1;
        let mut spec = Spec::default();
        while i < b.len() {
            match b[i] {
                b'+' => spec.plus = true,
                b'-' => spec.minus = true,
                b'#' => spec.sharp = true,
                b' ' => spec.space = true,
                b'0' => spec.zero = true,
                _ => break,
            }
            i += 1;
        }
        let num = |i: &mut usize, argn: &mut usize| -> Option<usize> {
            if *i < b.len() && b[*i] == b'*' {
                *i += 1;
                let v = args.get(*argn);
                *argn += 1;
                return match v {
                    Some(Value::Int(n)) if *n >= 0 => Some(*n as usize),
                    _ => None,
                };
            }
            let st = *i;
            while *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
            }
            if *i > st {
                format[st..*i].parse().ok()
            } else {
                None
            }
        };
        spec.width = num(&mut i, &mut argn);
        if i < b.len() && b[i] == b'.' {
            i += 1;
            spec.prec = Some(num(&mut i, &mut argn).unwrap_or(0));
        }
        if spec.minus {
            spec.zero = false;
        }
        let Some(verb) = format[i..].chars().next() else {
            out.push_str("%!(NOVERB)");
            lit = i;
            break;
        };
        i += verb.len_utf8();
        lit = i;
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(argn) {
            None => out.push_str(&format!("%!{verb}(MISSING)")),
            Some(v) => format_one(&mut out, verb, &spec, v),
        }
        argn += 1;
    }
    if lit < b.len() {
        out.push_str(&format[lit..]);
    }
    if argn < args.len() {
        out.push_str("%!(EXTRA ");
        for (k, v) in args[argn..].iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            match v {
                Value::Nil => out.push_str("<nil>"),
                _ => {
                    out.push_str(v.type_name());
                    out.push('=');
                    v.print_v(&mut out);
                }
            }
        }
        out.push(')');
    }
    out
}

/// Go's `fmt.Sprint`: spaces between operands when neither is a string.
pub fn sprint(args: &[Value<'_>]) -> String {
    let mut out = String::new();
    for (k, v) in args.iter().enumerate() {
        let is_str = matches!(v, Value::Str(_));
        if k > 0 && !is_str && !matches!(args[k - 1], Value::Str(_)) {
            out.push(' ');
        }
        v.print_v(&mut out);
    }
    out
}

/// Go's `fmt.Sprintln`: operands separated by spaces, newline appended.
pub fn sprintln(args: &[Value<'_>]) -> String {
    let mut out = String::new();
    for (k, v) in args.iter().enumerate() {
        if k > 0 {
            out.push(' ');
        }
        v.print_v(&mut out);
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value<'_> {
        Value::str(v)
    }

    #[test]
    fn verbs() {
        assert_eq!(sprintf("%s-%d", &[s("a"), Value::Int(3)]), "a-3");
        assert_eq!(
            sprintf("%v|%v|%v", &[s("a"), Value::Int(3), Value::Float(1.5)]),
            "a|3|1.5"
        );
        assert_eq!(
            sprintf(
                "%f %.2f %.0f",
                &[
                    Value::Float(1.23456),
                    Value::Float(1.23456),
                    Value::Float(2.5)
                ]
            ),
            "1.234560 1.23 2"
        );
        assert_eq!(sprintf("%q", &[s("a\"b\n")]), r#""a\"b\n""#);
        assert_eq!(
            sprintf("%x %X %x", &[Value::Int(255), Value::Int(255), s("hi")]),
            "ff FF 6869"
        );
        assert_eq!(
            sprintf(
                "[%5s][%-5s][%05d][%+d]",
                &[s("ab"), s("ab"), Value::Int(-42), Value::Int(7)]
            ),
            "[   ab][ab   ][-0042][+7]"
        );
        assert_eq!(
            sprintf(
                "%e %g %g",
                &[
                    Value::Float(1234.5678),
                    Value::Float(1e21),
                    Value::Float(0.0001)
                ]
            ),
            "1.234568e+03 1e+21 0.0001"
        );
        assert_eq!(
            sprintf(
                "%.3g %t %c %%",
                &[Value::Float(1.23456), Value::Bool(true), Value::Int(65)]
            ),
            "1.23 true A %"
        );
        assert_eq!(
            sprintf(
                "%.2s|%8.3f|%T",
                &[s("hello"), Value::Float(1.23456), Value::Int(1)]
            ),
            "he|   1.235|int"
        );
    }

    #[test]
    fn go_error_forms() {
        assert_eq!(sprintf("%d", &[s("foo")]), "%!d(string=foo)");
        assert_eq!(sprintf("%s", &[Value::Int(5)]), "%!s(int=5)");
        assert_eq!(sprintf("%d %s", &[Value::Int(1)]), "1 %!s(MISSING)");
        assert_eq!(
            sprintf("%d", &[Value::Int(1), s("x")]),
            "1%!(EXTRA string=x)"
        );
        assert_eq!(sprintf("%z", &[Value::Int(1)]), "%!z(int=1)");
    }

    #[test]
    fn sprint_spacing() {
        assert_eq!(sprint(&[s("a"), s("b")]), "ab");
        assert_eq!(sprint(&[Value::Int(1), Value::Int(2)]), "1 2");
        assert_eq!(sprint(&[s("a"), Value::Int(2)]), "a2");
        assert_eq!(sprintln(&[s("a"), Value::Int(2)]), "a 2\n");
    }
}
