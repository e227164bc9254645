//! Values flowing through a template pipeline and their Go rendering.
//!
//! What flows through: label values (borrowed strings), literals, function
//! results, `fromJson` documents and times come in as [`Value`]s; Go's
//! `fmt.Sprint` text of a value (`<no value>`, `3e+06`, `map[a:1]`) and
//! text/template truthiness come out.

use std::borrow::Cow;
use std::rc::Rc;

use super::gotime::GoTime;

/// One value of a template pipeline, typed as Go would see it.
#[derive(Debug, Clone)]
pub enum Value<'a> {
    /// An untyped nil (a missing `fromJson` member, `nil`).
    Nil,
    Bool(bool),
    /// Go `int` / `int64`.
    Int(i64),
    /// Go `float64`.
    Float(f64),
    Str(Cow<'a, str>),
    Time(GoTime),
    /// A `fromJson` array or object (`[]interface{}` / `map[string]interface{}`).
    Json(Rc<serde_json::Value>),
    /// The dot: the line's labels as Go's `map[string]string`.
    Labels(&'a [(String, String)]),
    /// The dot of an alerting template: Prometheus' template data.
    Alert(&'a super::AlertData),
}

impl<'a> Value<'a> {
    pub fn str(s: impl Into<Cow<'a, str>>) -> Value<'a> {
        Value::Str(s.into())
    }

    /// Converts a decoded JSON value the way Go's `encoding/json` does
    /// into `interface{}`: numbers become `float64`.
    pub fn from_json(v: serde_json::Value) -> Value<'a> {
        match v {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
            serde_json::Value::String(s) => Value::Str(Cow::Owned(s)),
            other => Value::Json(Rc::new(other)),
        }
    }

    pub fn from_json_ref(v: &serde_json::Value) -> Value<'a> {
        match v {
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                Value::Json(Rc::new(v.clone()))
            }
            other => Value::from_json(other.clone()),
        }
    }

    /// Go's type name, as used in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Time(_) => "time.Time",
            Value::Json(j) if j.is_array() => "[]interface {}",
            Value::Json(_) => "map[string]interface {}",
            Value::Labels(_) => "map[string]string",
            Value::Alert(_) => "template.tmplData",
        }
    }

    /// text/template's `isTrue`.
    pub fn truth(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Time(_) => true,
            Value::Json(j) => match &**j {
                serde_json::Value::Array(a) => !a.is_empty(),
                serde_json::Value::Object(o) => !o.is_empty(),
                _ => true,
            },
            Value::Labels(l) => !l.is_empty(),
            Value::Alert(_) => true,
        }
    }

    /// `fmt.Sprint(v)` as text/template prints an action's value.
    pub fn print(&self, out: &mut String) {
        match self {
            Value::Nil => out.push_str("<no value>"),
            _ => self.print_v(out),
        }
    }

    /// `%v` formatting.
    pub fn print_v(&self, out: &mut String) {
        match self {
            Value::Nil => out.push_str("<nil>"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::Float(f) => out.push_str(&format_float_v(*f)),
            Value::Str(s) => out.push_str(s),
            Value::Time(t) => out.push_str(&t.to_go_string()),
            Value::Json(j) => print_json(j, out),
            Value::Alert(a) => {
                out.push('{');
                Value::Labels(&a.labels).print_v(out);
                out.push(' ');
                Value::Labels(&a.external_labels).print_v(out);
                out.push(' ');
                out.push_str(&a.external_url);
                out.push(' ');
                out.push_str(&format_float_v(a.value));
                out.push('}');
            }
            Value::Labels(l) => {
                let mut sorted: Vec<&(String, String)> = l.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                out.push_str("map[");
                for (i, (k, v)) in sorted.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    out.push_str(v);
                }
                out.push(']');
            }
        }
    }

    pub fn to_v_string(&self) -> String {
        let mut s = String::new();
        self.print_v(&mut s);
        s
    }
}

fn print_json(j: &serde_json::Value, out: &mut String) {
    match j {
        serde_json::Value::Null => out.push_str("<nil>"),
        serde_json::Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        serde_json::Value::Number(n) => out.push_str(&format_float_v(n.as_f64().unwrap_or(0.0))),
        serde_json::Value::String(s) => out.push_str(s),
        serde_json::Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                print_json(v, out);
            }
            out.push(']');
        }
        serde_json::Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            out.push_str("map[");
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                print_json(&o[k.as_str()], out);
            }
            out.push(']');
        }
    }
}

/// Shortest decimal digits of `|f|` and its decimal exponent:
/// `|f| = d1.d2d3… × 10^exp`.
pub(super) fn shortest_digits(f: f64) -> (String, i32) {
    let s = format!("{:e}", f.abs());
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let digits: String = m.chars().filter(|c| *c != '.').collect();
    (digits, e.parse().unwrap_or(0))
}

/// Go's `%v` for a `float64`: the shortest representation, in `%e` form
/// when the decimal exponent is < -4 or >= 6 (`3e+06`, `123456`).
pub fn format_float_v(f: f64) -> String {
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
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let (digits, exp) = shortest_digits(f);
    if !(-4..6).contains(&exp) {
        let mut s = String::new();
        if f < 0.0 {
            s.push('-');
        }
        s.push_str(&digits[..1]);
        if digits.len() > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        s.push_str(&go_exp(exp));
        s
    } else {
        format!("{f}")
    }
}

/// Go's exponent suffix: `e+06`, `e-10`.
pub(super) fn go_exp(exp: i32) -> String {
    format!("e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go() {
        assert_eq!(format_float_v(3e6), "3e+06");
        assert_eq!(format_float_v(3000.0), "3000");
        assert_eq!(format_float_v(123456.0), "123456");
        assert_eq!(format_float_v(1234567.0), "1.234567e+06");
        assert_eq!(format_float_v(0.003), "0.003");
        assert_eq!(format_float_v(0.00001), "1e-05");
        assert_eq!(format_float_v(3.8476190476190477), "3.8476190476190477");
        assert_eq!(format_float_v(-2.5), "-2.5");
        assert_eq!(format_float_v(f64::INFINITY), "+Inf");
        assert_eq!(format_float_v(190.0), "190");
    }

    #[test]
    fn json_prints_like_go_maps() {
        let v = Value::from_json(serde_json::json!({"b": [1, "x", null], "a": {"c": true}}));
        assert_eq!(v.to_v_string(), "map[a:map[c:true] b:[1 x <nil>]]");
    }
}
