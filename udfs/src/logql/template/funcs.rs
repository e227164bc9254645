//! The functions a `line_format` / `label_format` template can call:
//! text/template's builtins, Loki's own (`__line__`, `__timestamp__`,
//! `ToUpper`, `regexReplaceAll`, `bytes`, `unixToTime`, `alignLeft`, …) and
//! the Sprig subset Loki registers (`lower`, `trunc`, `add`, `addf`,
//! `date`, `default`, `fromJson`, …) — exactly the set of Loki's `fmt.go`.
//!
//! What flows through: evaluated argument [`Value`]s come in; a value or
//! Go's error text (`wrong number of args for now: want 0 got 1`) comes out.
//! Parameters typed `string`/`int`/`time.Time` in Go are checked as Go
//! does; Sprig's `interface{}` parameters convert as `spf13/cast` does
//! (a label value `"12"` is the number 12, an unparsable one is 0).

use std::borrow::Cow;

use base64::Engine;
use regex::Regex;

use super::gotime::{self, GoTime, Zone};
use super::printf;
use super::prometheus;
use super::value::Value;
use crate::logql::units;

/// Per-line inputs of the zero-argument functions.
pub(super) struct Ctx<'a> {
    pub line: &'a str,
    pub timestamp_ns: i64,
    /// Alerting templates: `externalURL`.
    pub external_url: &'a str,
}

type R<'a> = Result<Value<'a>, String>;
type F = for<'a> fn(Vec<Value<'a>>, &Ctx<'a>, Option<&Regex>) -> R<'a>;

struct Def {
    name: &'static str,
    min: usize,
    /// `None`: variadic.
    max: Option<usize>,
    f: F,
}

const fn d(name: &'static str, min: usize, max: Option<usize>, f: F) -> Def {
    Def { name, min, max, f }
}

static FUNCS: &[Def] = &[
    // text/template builtins
    d("and", 1, None, |_, _, _| Ok(Value::Nil)),
    d("or", 1, None, |_, _, _| Ok(Value::Nil)),
    d("not", 1, Some(1), |a, _, _| Ok(Value::Bool(!a[0].truth()))),
    d("len", 1, Some(1), f_len),
    d("index", 1, None, f_index),
    d("print", 0, None, |a, _, _| {
        Ok(Value::str(printf::sprint(&a)))
    }),
    d("printf", 1, None, |a, _, _| {
        let f = s(&a[0])?.into_owned();
        Ok(Value::str(printf::sprintf(&f, &a[1..])))
    }),
    d("println", 0, None, |a, _, _| {
        Ok(Value::str(printf::sprintln(&a)))
    }),
    d("html", 0, None, |a, _, _| {
        Ok(Value::str(html_escape(&printf::sprint(&a))))
    }),
    d("urlquery", 0, None, |a, _, _| {
        Ok(Value::str(query_escape(&printf::sprint(&a))))
    }),
    d("eq", 1, None, f_eq),
    d("ne", 2, Some(2), |a, _, _| {
        Ok(Value::Bool(!equal(&a[0], &a[1])?))
    }),
    d("lt", 2, Some(2), |a, _, _| {
        Ok(Value::Bool(less(&a[0], &a[1])?))
    }),
    d("le", 2, Some(2), |a, _, _| {
        Ok(Value::Bool(less(&a[0], &a[1])? || equal(&a[0], &a[1])?))
    }),
    d("gt", 2, Some(2), |a, _, _| {
        Ok(Value::Bool(!less(&a[0], &a[1])? && !equal(&a[0], &a[1])?))
    }),
    d("ge", 2, Some(2), |a, _, _| {
        Ok(Value::Bool(!less(&a[0], &a[1])?))
    }),
    // Loki
    d("__line__", 0, Some(0), |_, c, _| Ok(Value::str(c.line))),
    d("__timestamp__", 0, Some(0), |_, c, _| {
        Ok(Value::Time(GoTime::from_unix_nanos(c.timestamp_ns as i128)))
    }),
    d("ToLower", 1, Some(1), |a, _, _| {
        Ok(Value::str(go_lower(&s(&a[0])?)))
    }),
    d("ToUpper", 1, Some(1), |a, _, _| {
        Ok(Value::str(go_upper(&s(&a[0])?)))
    }),
    d("Replace", 4, Some(4), |a, _, _| {
        let (src, old, new, n) = (s(&a[0])?, s(&a[1])?, s(&a[2])?, int(&a[3])?);
        Ok(Value::str(if n < 0 {
            src.replace(&*old, &new)
        } else {
            src.replacen(&*old, &new, n as usize)
        }))
    }),
    d("Trim", 2, Some(2), |a, _, _| {
        let cut = s(&a[1])?;
        Ok(Value::str(
            s(&a[0])?.trim_matches(|c| cut.contains(c)).to_string(),
        ))
    }),
    d("TrimLeft", 2, Some(2), |a, _, _| {
        let cut = s(&a[1])?;
        Ok(Value::str(
            s(&a[0])?
                .trim_start_matches(|c| cut.contains(c))
                .to_string(),
        ))
    }),
    d("TrimRight", 2, Some(2), |a, _, _| {
        let cut = s(&a[1])?;
        Ok(Value::str(
            s(&a[0])?.trim_end_matches(|c| cut.contains(c)).to_string(),
        ))
    }),
    d("TrimPrefix", 2, Some(2), |a, _, _| {
        let (v, p) = (s(&a[0])?, s(&a[1])?);
        Ok(Value::str(v.strip_prefix(&*p).unwrap_or(&v).to_string()))
    }),
    d("TrimSuffix", 2, Some(2), |a, _, _| {
        let (v, p) = (s(&a[0])?, s(&a[1])?);
        Ok(Value::str(v.strip_suffix(&*p).unwrap_or(&v).to_string()))
    }),
    d("TrimSpace", 1, Some(1), |a, _, _| {
        Ok(Value::str(go_trim_space(&s(&a[0])?).to_string()))
    }),
    d("regexReplaceAll", 3, Some(3), |a, _, re| {
        let r = regex_arg(&a[0], re)?;
        Ok(Value::str(
            r.replace_all(&s(&a[1])?, &*s(&a[2])?).into_owned(),
        ))
    }),
    d("regexReplaceAllLiteral", 3, Some(3), |a, _, re| {
        let r = regex_arg(&a[0], re)?;
        Ok(Value::str(
            r.replace_all(&s(&a[1])?, regex::NoExpand(&s(&a[2])?))
                .into_owned(),
        ))
    }),
    d("count", 2, Some(2), |a, _, re| {
        let r = regex_arg(&a[0], re)?;
        Ok(Value::Int(r.find_iter(&s(&a[1])?).count() as i64))
    }),
    d("urldecode", 1, Some(1), |a, _, _| {
        Ok(Value::str(query_unescape(&s(&a[0])?)?))
    }),
    d("urlencode", 1, Some(1), |a, _, _| {
        Ok(Value::str(query_escape(&s(&a[0])?)))
    }),
    d("bytes", 1, Some(1), |a, _, _| {
        let v = s(&a[0])?;
        units::parse_bytes(&v)
            .map(Value::Float)
            .ok_or_else(|| bytes_error(&v))
    }),
    d("duration", 1, Some(1), f_duration),
    d("duration_seconds", 1, Some(1), f_duration),
    d("unixEpochMillis", 1, Some(1), |a, _, _| {
        let t = time(&a[0])?;
        Ok(Value::str(
            (t.secs * 1000 + (t.nsec / 1_000_000) as i64).to_string(),
        ))
    }),
    d("unixEpochNanos", 1, Some(1), |a, _, _| {
        Ok(Value::str(time(&a[0])?.unix_nanos().to_string()))
    }),
    d("toDateInZone", 3, Some(3), |a, _, _| {
        let (layout, zone, v) = (s(&a[0])?, s(&a[1])?, s(&a[2])?);
        let z = gotime::load_location(&zone).unwrap_or(Zone::Utc);
        Ok(Value::Time(
            gotime::parse_in(&layout, &v, &z).unwrap_or_else(GoTime::zero),
        ))
    }),
    d("unixToTime", 1, Some(1), |a, _, _| unix_to_time(&s(&a[0])?)),
    d("alignLeft", 2, Some(2), |a, _, _| {
        Ok(Value::str(align(int(&a[0])?, &s(&a[1])?, true)))
    }),
    d("alignRight", 2, Some(2), |a, _, _| {
        Ok(Value::str(align(int(&a[0])?, &s(&a[1])?, false)))
    }),
    d("b64dec", 1, Some(1), |a, _, _| {
        Ok(Value::str(b64dec(&s(&a[0])?)))
    }),
    // Sprig
    d("b64enc", 1, Some(1), |a, _, _| {
        Ok(Value::str(
            base64::engine::general_purpose::STANDARD.encode(s(&a[0])?.as_bytes()),
        ))
    }),
    d("lower", 1, Some(1), |a, _, _| {
        Ok(Value::str(go_lower(&s(&a[0])?)))
    }),
    d("upper", 1, Some(1), |a, _, _| {
        Ok(Value::str(go_upper(&s(&a[0])?)))
    }),
    d("title", 1, Some(1), |a, _, _| {
        Ok(Value::str(go_title(&s(&a[0])?)))
    }),
    d("trunc", 2, Some(2), |a, _, _| {
        let (c, v) = (int(&a[0])?, s(&a[1])?);
        let l = v.len() as i64;
        let r = if c < 0 && l + c > 0 {
            &v[floor_boundary(&v, (l + c) as usize)..]
        } else if c >= 0 && l > c {
            &v[..floor_boundary(&v, c as usize)]
        } else {
            &v[..]
        };
        Ok(Value::str(r.to_string()))
    }),
    d("substr", 3, Some(3), |a, _, _| {
        let (st, en, v) = (int(&a[0])?, int(&a[1])?, s(&a[2])?);
        let l = v.len() as i64;
        let oob = || "error calling substr: runtime error: slice bounds out of range".to_string();
        let (from, to) = if st < 0 {
            if en < 0 || en > l {
                return Err(oob());
            }
            (0, en)
        } else if en < 0 || en > l {
            if st > l {
                return Err(oob());
            }
            (st, l)
        } else {
            if st > en {
                return Err(oob());
            }
            (st, en)
        };
        let (from, to) = (
            floor_boundary(&v, from as usize),
            floor_boundary(&v, to as usize),
        );
        Ok(Value::str(v[from..to].to_string()))
    }),
    d("contains", 2, Some(2), |a, _, _| {
        Ok(Value::Bool(s(&a[1])?.contains(&*s(&a[0])?)))
    }),
    d("hasPrefix", 2, Some(2), |a, _, _| {
        Ok(Value::Bool(s(&a[1])?.starts_with(&*s(&a[0])?)))
    }),
    d("hasSuffix", 2, Some(2), |a, _, _| {
        Ok(Value::Bool(s(&a[1])?.ends_with(&*s(&a[0])?)))
    }),
    d("indent", 2, Some(2), |a, _, _| {
        Ok(Value::str(indent(int(&a[0])?, &s(&a[1])?)))
    }),
    d("nindent", 2, Some(2), |a, _, _| {
        Ok(Value::str(format!("\n{}", indent(int(&a[0])?, &s(&a[1])?))))
    }),
    d("replace", 3, Some(3), |a, _, _| {
        Ok(Value::str(s(&a[2])?.replace(&*s(&a[0])?, &s(&a[1])?)))
    }),
    d("repeat", 2, Some(2), |a, _, _| {
        let n = int(&a[0])?;
        if n < 0 {
            return Err("error calling repeat: strings: negative Repeat count".into());
        }
        Ok(Value::str(s(&a[1])?.repeat(n as usize)))
    }),
    d("trim", 1, Some(1), |a, _, _| {
        Ok(Value::str(go_trim_space(&s(&a[0])?).to_string()))
    }),
    d("trimAll", 2, Some(2), |a, _, _| {
        let cut = s(&a[0])?;
        Ok(Value::str(
            s(&a[1])?.trim_matches(|c| cut.contains(c)).to_string(),
        ))
    }),
    d("trimSuffix", 2, Some(2), |a, _, _| {
        let (p, v) = (s(&a[0])?, s(&a[1])?);
        Ok(Value::str(v.strip_suffix(&*p).unwrap_or(&v).to_string()))
    }),
    d("trimPrefix", 2, Some(2), |a, _, _| {
        let (p, v) = (s(&a[0])?, s(&a[1])?);
        Ok(Value::str(v.strip_prefix(&*p).unwrap_or(&v).to_string()))
    }),
    d("int", 1, Some(1), |a, _, _| Ok(Value::Int(to_i64(&a[0])))),
    d("float64", 1, Some(1), |a, _, _| {
        Ok(Value::Float(to_f64(&a[0])))
    }),
    d("add", 0, None, |a, _, _| {
        Ok(Value::Int(
            a.iter().fold(0i64, |acc, v| acc.wrapping_add(to_i64(v))),
        ))
    }),
    d("sub", 2, Some(2), |a, _, _| {
        Ok(Value::Int(to_i64(&a[0]).wrapping_sub(to_i64(&a[1]))))
    }),
    d("mul", 1, None, |a, _, _| {
        Ok(Value::Int(
            a[1..]
                .iter()
                .fold(to_i64(&a[0]), |acc, v| acc.wrapping_mul(to_i64(v))),
        ))
    }),
    d("div", 2, Some(2), |a, _, _| {
        let b = to_i64(&a[1]);
        if b == 0 {
            return Err("error calling div: runtime error: integer divide by zero".into());
        }
        Ok(Value::Int(to_i64(&a[0]).wrapping_div(b)))
    }),
    d("mod", 2, Some(2), |a, _, _| {
        let b = to_i64(&a[1]);
        if b == 0 {
            return Err("error calling mod: runtime error: integer divide by zero".into());
        }
        Ok(Value::Int(to_i64(&a[0]).wrapping_rem(b)))
    }),
    d("addf", 0, None, |a, _, _| {
        decimal_op("addf", Value::Float(0.0), &a, DecOp::Add)
    }),
    d("subf", 1, None, |a, _, _| {
        decimal_op("subf", a[0].clone(), &a[1..], DecOp::Sub)
    }),
    d("mulf", 1, None, |a, _, _| {
        decimal_op("mulf", a[0].clone(), &a[1..], DecOp::Mul)
    }),
    d("divf", 1, None, |a, _, _| {
        decimal_op("divf", a[0].clone(), &a[1..], DecOp::Div)
    }),
    d("max", 1, None, |a, _, _| {
        Ok(Value::Int(a.iter().map(to_i64).max().unwrap_or(0)))
    }),
    d("min", 1, None, |a, _, _| {
        Ok(Value::Int(a.iter().map(to_i64).min().unwrap_or(0)))
    }),
    d("maxf", 1, None, |a, _, _| {
        Ok(Value::Float(
            a[1..]
                .iter()
                .fold(to_f64(&a[0]), |x, v| go_max(x, to_f64(v))),
        ))
    }),
    d("minf", 1, None, |a, _, _| {
        Ok(Value::Float(
            a[1..]
                .iter()
                .fold(to_f64(&a[0]), |x, v| go_min(x, to_f64(v))),
        ))
    }),
    d("ceil", 1, Some(1), |a, _, _| {
        Ok(Value::Float(to_f64(&a[0]).ceil()))
    }),
    d("floor", 1, Some(1), |a, _, _| {
        Ok(Value::Float(to_f64(&a[0]).floor()))
    }),
    d("round", 2, None, |a, _, _| {
        if a.len() > 3 {
            return Err(format!(
                "wrong number of args for round: want at most 3 got {}",
                a.len()
            ));
        }
        let round_on = match a.get(2) {
            Some(Value::Float(f)) => *f,
            Some(Value::Int(i)) => *i as f64,
            Some(other) => {
                return Err(format!(
                    "wrong type for value; expected float64; got {}",
                    other.type_name()
                ));
            }
            None => 0.5,
        };
        let val = to_f64(&a[0]);
        let pow = 10f64.powf(int(&a[1])? as f64);
        let digit = pow * val;
        let frac = digit - digit.trunc();
        let r = if frac >= round_on {
            digit.ceil()
        } else {
            digit.floor()
        };
        Ok(Value::Float(r / pow))
    }),
    d("fromJson", 1, Some(1), |a, _, _| {
        Ok(
            match serde_json::from_str::<serde_json::Value>(&s(&a[0])?) {
                Ok(v) => Value::from_json(v),
                Err(_) => Value::Nil,
            },
        )
    }),
    d("date", 2, Some(2), |a, _, _| {
        let layout = s(&a[0])?;
        let t = match &a[1] {
            Value::Time(t) => t.in_local(),
            Value::Int(i) => GoTime {
                secs: *i,
                nsec: 0,
                zone: Zone::Utc,
            },
            _ => GoTime::now(),
        };
        Ok(Value::str(t.format(&layout)))
    }),
    d("toDate", 2, Some(2), |a, _, _| {
        let (layout, v) = (s(&a[0])?, s(&a[1])?);
        Ok(Value::Time(
            gotime::parse_in(&layout, &v, &Zone::Utc).unwrap_or_else(GoTime::zero),
        ))
    }),
    d("now", 0, Some(0), |_, _, _| Ok(Value::Time(GoTime::now()))),
    d("unixEpoch", 1, Some(1), |a, _, _| {
        Ok(Value::str(time(&a[0])?.secs.to_string()))
    }),
    d("default", 1, None, |mut a, _, _| {
        if a.len() > 1 && !empty(&a[1]) {
            return Ok(a.swap_remove(1));
        }
        Ok(a.swap_remove(0))
    }),
    // Prometheus alerting templates (see `prometheus`; not in Loki's set)
    d("humanize", 1, Some(1), |a, _, _| {
        Ok(Value::str(prometheus::humanize(prometheus::to_float(
            &a[0],
        )?)))
    }),
    d("humanize1024", 1, Some(1), |a, _, _| {
        Ok(Value::str(prometheus::humanize1024(prometheus::to_float(
            &a[0],
        )?)))
    }),
    d("humanizeDuration", 1, Some(1), |a, _, _| {
        Ok(Value::str(prometheus::humanize_duration(
            prometheus::to_float(&a[0])?,
        )))
    }),
    d("humanizePercentage", 1, Some(1), |a, _, _| {
        Ok(Value::str(prometheus::humanize_percentage(
            prometheus::to_float(&a[0])?,
        )))
    }),
    d("humanizeTimestamp", 1, Some(1), |a, _, _| {
        Ok(Value::str(prometheus::humanize_timestamp(
            prometheus::to_float(&a[0])?,
        )?))
    }),
    d("toTime", 1, Some(1), |a, _, _| {
        Ok(Value::Time(prometheus::to_time(prometheus::to_float(
            &a[0],
        )?)?))
    }),
    d("toUpper", 1, Some(1), |a, _, _| {
        Ok(Value::str(go_upper(&s(&a[0])?)))
    }),
    d("toLower", 1, Some(1), |a, _, _| {
        Ok(Value::str(go_lower(&s(&a[0])?)))
    }),
    d("match", 2, Some(2), |a, _, re| {
        Ok(Value::Bool(prometheus::regex_match(
            &s(&a[0])?,
            &s(&a[1])?,
            re,
        )?))
    }),
    d("reReplaceAll", 3, Some(3), |a, _, re| {
        Ok(Value::str(prometheus::re_replace_all(
            &s(&a[0])?,
            &s(&a[1])?,
            &s(&a[2])?,
            re,
        )?))
    }),
    d("safeHtml", 1, Some(1), |a, _, _| {
        Ok(Value::str(s(&a[0])?.into_owned()))
    }),
    d("stripPort", 1, Some(1), |a, _, _| {
        Ok(Value::str(prometheus::strip_port(&s(&a[0])?)))
    }),
    d("stripDomain", 1, Some(1), |a, _, _| {
        Ok(Value::str(prometheus::strip_domain(&s(&a[0])?)))
    }),
    d("parseDuration", 1, Some(1), |a, _, _| {
        Ok(Value::Float(prometheus::parse_duration(&s(&a[0])?)?))
    }),
    d("externalURL", 0, Some(0), |_, c, _| {
        Ok(Value::str(c.external_url))
    }),
    d("pathPrefix", 0, Some(0), |_, c, _| {
        let path = url_path(c.external_url);
        Ok(Value::str(path))
    }),
];

/// Functions only alerting templates have (Prometheus' own).
const PROMETHEUS_ONLY: &[&str] = &[
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "toTime",
    "toUpper",
    "toLower",
    "match",
    "reReplaceAll",
    "safeHtml",
    "stripPort",
    "stripDomain",
    "parseDuration",
    "externalURL",
    "pathPrefix",
];

/// Functions of Loki's set that alerting templates also have: Go's
/// builtins and `title`.
const PROMETHEUS_SHARED: &[&str] = &[
    "and", "or", "not", "len", "index", "print", "printf", "println", "html", "urlquery", "eq",
    "ne", "lt", "le", "gt", "ge", "title",
];

/// The path of a URL (`http://host/prefix` → `/prefix`).
fn url_path(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    match after_scheme.find('/') {
        Some(i) => after_scheme[i..].trim_end_matches('/').to_string(),
        None => String::new(),
    }
}

/// Index of a function by name, `None` when the dialect does not define it.
pub(super) fn lookup(name: &str, dialect: super::Dialect) -> Option<usize> {
    let defined = match dialect {
        super::Dialect::Loki => !PROMETHEUS_ONLY.contains(&name),
        super::Dialect::Prometheus => {
            PROMETHEUS_ONLY.contains(&name) || PROMETHEUS_SHARED.contains(&name)
        }
    };
    if !defined {
        return None;
    }
    FUNCS.iter().position(|d| d.name == name)
}

pub(super) fn name(f: usize) -> &'static str {
    FUNCS[f].name
}

pub(super) fn is_and_or(f: usize) -> bool {
    matches!(FUNCS[f].name, "and" | "or")
}

/// Whether the first argument is a regex (compiled once when literal).
pub(super) fn takes_regex(f: usize) -> bool {
    matches!(
        FUNCS[f].name,
        "regexReplaceAll" | "regexReplaceAllLiteral" | "count" | "match" | "reReplaceAll"
    )
}

/// All function names a `line_format` template may call.
pub fn names() -> Vec<&'static str> {
    FUNCS
        .iter()
        .map(|d| d.name)
        .filter(|n| !PROMETHEUS_ONLY.contains(n))
        .collect()
}

pub(super) fn call<'a>(f: usize, args: Vec<Value<'a>>, ctx: &Ctx<'a>, re: Option<&Regex>) -> R<'a> {
    let def = &FUNCS[f];
    let n = args.len();
    match def.max {
        Some(max) if def.min == max && n != max => {
            return Err(format!(
                "wrong number of args for {}: want {} got {}",
                def.name, max, n
            ));
        }
        _ if n < def.min => {
            return Err(format!(
                "wrong number of args for {}: want at least {} got {}",
                def.name, def.min, n
            ));
        }
        _ => {}
    }
    (def.f)(args, ctx, re)
}

fn s<'v>(v: &'v Value<'_>) -> Result<Cow<'v, str>, String> {
    match v {
        Value::Str(s) => Ok(Cow::Borrowed(s)),
        Value::Nil => Err("invalid value; expected string".into()),
        other => Err(format!(
            "wrong type for value; expected string; got {}",
            other.type_name()
        )),
    }
}

fn int(v: &Value<'_>) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Float(f) if f.fract() == 0.0 => Ok(*f as i64),
        Value::Nil => Err("invalid value; expected int".into()),
        other => Err(format!(
            "wrong type for value; expected int; got {}",
            other.type_name()
        )),
    }
}

fn time(v: &Value<'_>) -> Result<GoTime, String> {
    match v {
        Value::Time(t) => Ok(t.clone()),
        Value::Nil => Err("invalid value; expected time.Time".into()),
        other => Err(format!(
            "wrong type for value; expected time.Time; got {}",
            other.type_name()
        )),
    }
}

/// cast's `trimZeroDecimal`: `"12.00"` → `"12"`.
fn trim_zero_decimal(s: &str) -> &str {
    let b = s.as_bytes();
    let mut found_zero = false;
    for i in (0..b.len()).rev() {
        match b[i] {
            b'.' => {
                if found_zero {
                    return &s[..i];
                }
            }
            b'0' => found_zero = true,
            _ => return s,
        }
    }
    s
}

/// Go `strconv.ParseInt(s, 0, 64)`.
fn parse_int_base0(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(h) = lower.strip_prefix("0x") {
        (16, h.to_string(), true)
    } else if let Some(o) = lower.strip_prefix("0o") {
        (8, o.to_string(), true)
    } else if let Some(b) = lower.strip_prefix("0b") {
        (2, b.to_string(), true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string(), true)
    } else {
        (10, lower.clone(), false)
    };
    if !prefixed && digits.contains('_') {
        return None;
    }
    let digits: String = digits.chars().filter(|&c| c != '_').collect();
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let v = i128::from_str_radix(&digits, radix).ok()?;
    let v = if neg { -v } else { v };
    i64::try_from(v).ok()
}

/// `cast.ToInt64`: unconvertible values are 0.
pub(super) fn to_i64(v: &Value<'_>) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => *b as i64,
        Value::Str(s) => parse_int_base0(trim_zero_decimal(s)).unwrap_or(0),
        _ => 0,
    }
}

/// `cast.ToFloat64`: unconvertible values are 0.
pub(super) fn to_f64(v: &Value<'_>) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => *b as i64 as f64,
        Value::Str(s) => {
            let t: &str = s;
            if t.contains('_') {
                return 0.0;
            }
            t.parse().unwrap_or(0.0)
        }
        _ => 0.0,
    }
}

fn go_max(x: f64, y: f64) -> f64 {
    if x.is_infinite() && x > 0.0 || y.is_infinite() && y > 0.0 {
        return f64::INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && y == 0.0 {
        return if x.is_sign_negative() { y } else { x };
    }
    if x > y { x } else { y }
}

fn go_min(x: f64, y: f64) -> f64 {
    if x.is_infinite() && x < 0.0 || y.is_infinite() && y < 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && y == 0.0 {
        return if x.is_sign_negative() { x } else { y };
    }
    if x < y { x } else { y }
}

/// Sprig's `empty`.
fn empty(v: &Value<'_>) -> bool {
    match v {
        Value::Time(_) => false,
        other => !other.truth(),
    }
}

#[derive(Clone, Copy)]
enum DecOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// A decimal `m × 10^e` (shopspring/decimal, which Sprig's float
/// arithmetic goes through).
#[derive(Clone, Copy)]
struct Dec {
    m: i128,
    e: i32,
}

impl Dec {
    fn from_f64(f: f64) -> Option<Dec> {
        if !f.is_finite() {
            return None;
        }
        if f == 0.0 {
            return Some(Dec { m: 0, e: 0 });
        }
        let s = format!("{f:e}");
        let (mant, exp) = s.split_once('e')?;
        let exp: i32 = exp.parse().ok()?;
        let frac_len = mant.split_once('.').map(|(_, f)| f.len()).unwrap_or(0) as i32;
        let digits: String = mant.chars().filter(|c| *c != '.').collect();
        Some(Dec {
            m: digits.parse().ok()?,
            e: exp - frac_len,
        })
    }

    fn to_f64(self) -> f64 {
        format!("{}e{}", self.m, self.e).parse().unwrap_or(f64::NAN)
    }

    fn scale_to(self, e: i32) -> Option<i128> {
        let diff = u32::try_from(self.e - e).ok()?;
        self.m.checked_mul(10i128.checked_pow(diff)?)
    }

    fn apply(self, o: Dec, op: DecOp) -> Option<Dec> {
        match op {
            DecOp::Add | DecOp::Sub => {
                let e = self.e.min(o.e);
                let (a, b) = (self.scale_to(e)?, o.scale_to(e)?);
                let m = if let DecOp::Add = op {
                    a.checked_add(b)?
                } else {
                    a.checked_sub(b)?
                };
                Some(Dec { m, e })
            }
            DecOp::Mul => Some(Dec {
                m: self.m.checked_mul(o.m)?,
                e: self.e + o.e,
            }),
            DecOp::Div => {
                // rounded half away from zero to 16 decimal places
                let shift = self.e - o.e + 16;
                let num = if shift >= 0 {
                    self.m.checked_mul(10i128.checked_pow(shift as u32)?)?
                } else {
                    self.m / 10i128.checked_pow((-shift) as u32)?
                };
                let q = num / o.m;
                let r = num % o.m;
                let q = if r.checked_mul(2)?.abs() >= o.m.abs() {
                    q + if (num < 0) != (o.m < 0) { -1 } else { 1 }
                } else {
                    q
                };
                Some(Dec { m: q, e: -16 })
            }
        }
    }
}

fn decimal_op<'a>(name: &str, first: Value<'a>, rest: &[Value<'a>], op: DecOp) -> R<'a> {
    let mut acc_f = to_f64(&first);
    let mut acc = Dec::from_f64(acc_f);
    for v in rest {
        let x = to_f64(v);
        if let DecOp::Div = op
            && x == 0.0
        {
            return Err(format!("error calling {name}: decimal division by zero"));
        }
        acc = match (acc, Dec::from_f64(x)) {
            (Some(a), Some(b)) => a.apply(b, op),
            _ => None,
        };
        acc_f = match op {
            DecOp::Add => acc_f + x,
            DecOp::Sub => acc_f - x,
            DecOp::Mul => acc_f * x,
            DecOp::Div => acc_f / x,
        };
        if let Some(a) = acc {
            acc_f = a.to_f64();
        }
    }
    Ok(Value::Float(acc.map(Dec::to_f64).unwrap_or(acc_f)))
}

fn f_len<'a>(a: Vec<Value<'a>>, _: &Ctx<'a>, _: Option<&Regex>) -> R<'a> {
    Ok(Value::Int(match &a[0] {
        Value::Str(s) => s.len() as i64,
        Value::Labels(l) => l.len() as i64,
        Value::Json(j) => match &**j {
            serde_json::Value::Array(x) => x.len() as i64,
            serde_json::Value::Object(o) => o.len() as i64,
            _ => 0,
        },
        other => {
            return Err(format!(
                "error calling len: len of type {}",
                other.type_name()
            ));
        }
    }))
}

fn f_index<'a>(a: Vec<Value<'a>>, _: &Ctx<'a>, _: Option<&Regex>) -> R<'a> {
    let mut it = a.into_iter();
    let mut cur = it.next().unwrap_or(Value::Nil);
    for idx in it {
        cur = match (&cur, &idx) {
            (Value::Labels(l), Value::Str(k)) => {
                let l: &'a [(String, String)] = l;
                Value::Str(Cow::Borrowed(
                    l.iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.as_str())
                        .unwrap_or(""),
                ))
            }
            (Value::Json(j), _) => match (&**j, &idx) {
                (serde_json::Value::Object(o), Value::Str(k)) => {
                    o.get(&**k).map(Value::from_json_ref).unwrap_or(Value::Nil)
                }
                (serde_json::Value::Array(x), Value::Int(i)) => match x.get(*i as usize) {
                    Some(v) if *i >= 0 => Value::from_json_ref(v),
                    _ => return Err(format!("error calling index: index out of range: {i}")),
                },
                _ => {
                    return Err(format!(
                        "error calling index: cannot index {} with {}",
                        cur.type_name(),
                        idx.type_name()
                    ));
                }
            },
            (Value::Str(s), Value::Int(i)) => match s.as_bytes().get(*i as usize) {
                Some(b) if *i >= 0 => Value::Int(*b as i64),
                _ => return Err(format!("error calling index: index out of range: {i}")),
            },
            (Value::Nil, _) => return Err("error calling index: index of untyped nil".into()),
            _ => {
                return Err(format!(
                    "error calling index: can't index item of type {}",
                    cur.type_name()
                ));
            }
        };
    }
    Ok(cur)
}

#[derive(PartialEq)]
enum Kind {
    Bool,
    Int,
    Float,
    Str,
}

fn kind(v: &Value<'_>) -> Option<Kind> {
    match v {
        Value::Bool(_) => Some(Kind::Bool),
        Value::Int(_) => Some(Kind::Int),
        Value::Float(_) => Some(Kind::Float),
        Value::Str(_) => Some(Kind::Str),
        _ => None,
    }
}

fn equal(a: &Value<'_>, b: &Value<'_>) -> Result<bool, String> {
    if matches!(a, Value::Nil) || matches!(b, Value::Nil) {
        return Ok(matches!(a, Value::Nil) && matches!(b, Value::Nil));
    }
    if let (Value::Time(x), Value::Time(y)) = (a, b) {
        return Ok(x == y);
    }
    let (Some(ka), Some(kb)) = (kind(a), kind(b)) else {
        return Err("error calling eq: invalid type for comparison".into());
    };
    if ka != kb {
        return Err("error calling eq: incompatible types for comparison".into());
    }
    Ok(match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        _ => false,
    })
}

fn f_eq<'a>(a: Vec<Value<'a>>, _: &Ctx<'a>, _: Option<&Regex>) -> R<'a> {
    if a.len() < 2 {
        return Err("wrong number of args for eq: want at least 2 got 1".into());
    }
    for b in &a[1..] {
        if equal(&a[0], b)? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

fn less(a: &Value<'_>, b: &Value<'_>) -> Result<bool, String> {
    let (Some(ka), Some(kb)) = (kind(a), kind(b)) else {
        return Err("error calling lt: invalid type for comparison".into());
    };
    if ka == Kind::Bool || kb == Kind::Bool {
        return Err("error calling lt: invalid type for comparison".into());
    }
    if ka != kb {
        return Err("error calling lt: incompatible types for comparison".into());
    }
    Ok(match (a, b) {
        (Value::Int(x), Value::Int(y)) => x < y,
        (Value::Float(x), Value::Float(y)) => x < y,
        (Value::Str(x), Value::Str(y)) => x < y,
        _ => false,
    })
}

/// The regex argument: the one compiled with the template when the
/// pattern is a literal, else compiled for this call (as Loki does).
fn regex_arg<'r>(v: &Value<'_>, pre: Option<&'r Regex>) -> Result<Cow<'r, Regex>, String> {
    if let Some(r) = pre {
        return Ok(Cow::Borrowed(r));
    }
    let src = s(v)?;
    Regex::new(&src)
        .map(Cow::Owned)
        .map_err(|e| format!("error calling regex: error parsing regexp: {e}"))
}

fn f_duration<'a>(a: Vec<Value<'a>>, _: &Ctx<'a>, _: Option<&Regex>) -> R<'a> {
    let v = s(&a[0])?;
    units::parse_duration_seconds(&v)
        .map(Value::Float)
        .ok_or_else(|| format!("error calling duration: time: invalid duration \"{v}\""))
}

fn bytes_error(v: &str) -> String {
    let n = v
        .bytes()
        .take_while(|c| c.is_ascii_digit() || *c == b'.' || *c == b',')
        .count();
    let num = v[..n].replace(',', "");
    if num.is_empty() || num.parse::<f64>().is_err() {
        format!("error calling bytes: strconv.ParseFloat: parsing \"{num}\": invalid syntax")
    } else {
        format!(
            "error calling bytes: unhandled size name: {}",
            v[n..].trim().to_ascii_lowercase()
        )
    }
}

fn unix_to_time<'a>(epoch: &str) -> R<'a> {
    let i: i64 = match epoch.parse() {
        Ok(i) => i,
        Err(_) => {
            return Err(format!(
                "error calling unixToTime: unable to parse time '{epoch}': strconv.ParseInt: parsing \"{epoch}\": invalid syntax"
            ));
        }
    };
    let ns: i128 = match epoch.len() {
        5 => i as i128 * 86_400 * 1_000_000_000,
        10 => i as i128 * 1_000_000_000,
        13 => i as i128 * 1_000_000,
        16 => i as i128 * 1_000,
        19 => i as i128,
        _ => {
            return Err(format!(
                "error calling unixToTime: unable to parse time '{epoch}': %!w(<nil>)"
            ));
        }
    };
    Ok(Value::Time(GoTime::from_unix_nanos(ns)))
}

fn align(count: i64, src: &str, left: bool) -> String {
    let l = src.chars().count() as i64;
    if count < 0 || count == l {
        return src.to_string();
    }
    let pad = count - l;
    if pad > 0 {
        let p = " ".repeat(pad as usize);
        return if left {
            format!("{src}{p}")
        } else {
            format!("{p}{src}")
        };
    }
    if left {
        src.chars().take(count as usize).collect()
    } else {
        src.chars().skip((l - count) as usize).collect()
    }
}

fn b64dec(v: &str) -> String {
    let mut s = v.to_string();
    let rem = s.len() % 4;
    if rem != 0 && rem != 1 {
        s.push_str(&"=".repeat(4 - rem));
    }
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    match engine.decode(s.as_bytes()) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(base64::DecodeError::InvalidByte(i, _))
        | Err(base64::DecodeError::InvalidLastSymbol(i, _)) => {
            format!("illegal base64 data at input byte {i}")
        }
        Err(_) => format!(
            "illegal base64 data at input byte {}",
            s.len().saturating_sub(1)
        ),
    }
}

fn indent(n: i64, v: &str) -> String {
    let pad = " ".repeat(n.max(0) as usize);
    format!("{pad}{}", v.replace('\n', &format!("\n{pad}")))
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Go's `strings.TrimSpace`.
fn go_trim_space(s: &str) -> &str {
    s.trim_matches(char::is_whitespace)
}

/// Go's `strings.ToUpper`: simple (one-to-one) case mapping per rune.
fn go_upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut u = c.to_uppercase();
            match (u.next(), u.next()) {
                (Some(x), None) => x,
                _ => c,
            }
        })
        .collect()
}

fn go_lower(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut u = c.to_lowercase();
            match (u.next(), u.next()) {
                (Some(x), None) => x,
                _ => c,
            }
        })
        .collect()
}

/// Go's deprecated `strings.Title`: the first letter of each word upper
/// cased; words are separated by anything but letters, digits and `_`.
fn go_title(s: &str) -> String {
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let sep = if (prev as u32) < 0x80 {
                !(prev.is_ascii_alphanumeric() || prev == '_')
            } else if prev.is_alphanumeric() {
                false
            } else {
                prev.is_whitespace()
            };
            prev = c;
            if sep {
                go_upper(&c.to_string()).chars().next().unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `url.QueryUnescape`.
fn query_unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (
                    b.get(i + 1).and_then(|c| hex(*c)),
                    b.get(i + 2).and_then(|c| hex(*c)),
                ) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => {
                        let end = (i + 3).min(b.len());
                        let bad = String::from_utf8_lossy(&b[i..end]);
                        return Err(format!(
                            "error calling urldecode: invalid URL escape \"{bad}\""
                        ));
                    }
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Go's `template.HTMLEscapeString`.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}
