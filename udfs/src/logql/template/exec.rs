//! Executing a compiled template over one line.
//!
//! What flows through: the template tree and one line's
//! [`TemplateData`] come in; text is appended to the output buffer.
//! Errors read like Go's: `template: line:1:9: executing "line" at <now>:
//! wrong number of args for now: want 0 got 1`.

use std::borrow::Cow;

use super::funcs::{self, Ctx};
use super::value::Value;
use super::{AlertData, Arg, Cmd, Node, Pipe, Template, TemplateData};

enum Flow {
    Normal,
    Break,
    Continue,
}

/// A failure inside a command: either still to be located (`Plain`) or
/// already formatted with its position.
pub(super) enum EvalErr {
    Plain(String),
    Done(String),
}

impl From<String> for EvalErr {
    fn from(s: String) -> Self {
        EvalErr::Plain(s)
    }
}

struct State<'t, 'a> {
    t: &'t Template,
    ctx: Ctx<'a>,
    vars: Vec<(String, Value<'a>)>,
}

pub(super) fn run(t: &Template, data: &TemplateData<'_>, out: &mut String) -> Result<(), String> {
    let mut st = State {
        t,
        ctx: Ctx {
            line: data.line,
            timestamp_ns: data.timestamp_ns,
            external_url: "",
        },
        vars: vec![("$".to_string(), Value::Labels(data.labels))],
    };
    let dot = Value::Labels(data.labels);
    match st.walk(&dot, &t.nodes, out) {
        Ok(_) => Ok(()),
        Err(EvalErr::Done(s)) | Err(EvalErr::Plain(s)) => Err(s),
    }
}

/// Runs an alerting template: the dot is the template data, and
/// `$labels`, `$externalLabels`, `$externalURL`, `$value` are set as
/// Prometheus' preamble sets them.
pub(super) fn run_alert(t: &Template, data: &AlertData, out: &mut String) -> Result<(), String> {
    let dot = Value::Alert(data);
    let mut st = State {
        t,
        ctx: Ctx {
            line: "",
            timestamp_ns: 0,
            external_url: &data.external_url,
        },
        vars: vec![
            ("$".to_string(), dot.clone()),
            ("$labels".to_string(), Value::Labels(&data.labels)),
            (
                "$externalLabels".to_string(),
                Value::Labels(&data.external_labels),
            ),
            (
                "$externalURL".to_string(),
                Value::str(data.external_url.as_str()),
            ),
            ("$value".to_string(), Value::Float(data.value)),
        ],
    };
    match st.walk(&dot, &t.nodes, out) {
        Ok(_) => Ok(()),
        Err(EvalErr::Done(s)) | Err(EvalErr::Plain(s)) => Err(s),
    }
}

impl<'t, 'a> State<'t, 'a> {
    fn located(&self, cmd: &Cmd, msg: String) -> EvalErr {
        let before = &self.t.text[..cmd.offset.min(self.t.text.len())];
        let line = 1 + before.matches('\n').count();
        let col = cmd.offset - before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        EvalErr::Done(format!(
            "template: {name}:{line}:{col}: executing \"{name}\" at <{}>: {msg}",
            cmd.text,
            name = self.t.name
        ))
    }

    fn walk(&mut self, dot: &Value<'a>, nodes: &[Node], out: &mut String) -> Result<Flow, EvalErr> {
        for n in nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let v = self.eval_pipe(dot, p, true)?;
                    if p.decl.is_empty() {
                        v.print(out);
                    }
                }
                Node::If { branches, else_ } | Node::With { branches, else_ } => {
                    let is_with = matches!(n, Node::With { .. });
                    let mark = self.vars.len();
                    let mut taken = false;
                    let mut flow = Flow::Normal;
                    for (p, body) in branches {
                        let v = self.eval_pipe(dot, p, true)?;
                        if v.truth() {
                            taken = true;
                            flow = if is_with {
                                self.walk(&v, body, out)?
                            } else {
                                self.walk(dot, body, out)?
                            };
                            break;
                        }
                    }
                    if !taken {
                        flow = self.walk(dot, else_, out)?;
                    }
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Range { pipe, body, else_ } => {
                    let mark = self.vars.len();
                    let v = self.eval_pipe(dot, pipe, false)?;
                    let items = self
                        .range_items(&v)
                        .map_err(|m| self.located(&pipe.cmds[0], m))?;
                    if items.is_empty() {
                        self.walk(dot, else_, out)?;
                    }
                    for (k, e) in items {
                        let inner = self.vars.len();
                        match pipe.decl.len() {
                            0 => {}
                            1 => self.vars.push((pipe.decl[0].clone(), e.clone())),
                            _ => {
                                self.vars.push((pipe.decl[0].clone(), k));
                                self.vars.push((pipe.decl[1].clone(), e.clone()));
                            }
                        }
                        let flow = self.walk(&e, body, out)?;
                        self.vars.truncate(inner);
                        if let Flow::Break = flow {
                            break;
                        }
                    }
                    self.vars.truncate(mark);
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn range_items(&self, v: &Value<'a>) -> Result<Vec<(Value<'a>, Value<'a>)>, String> {
        Ok(match v {
            Value::Nil => Vec::new(),
            Value::Int(n) => (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect(),
            Value::Json(j) => match &**j {
                serde_json::Value::Array(a) => a
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (Value::Int(i as i64), Value::from_json_ref(e)))
                    .collect(),
                serde_json::Value::Object(o) => {
                    let mut keys: Vec<&String> = o.keys().collect();
                    keys.sort();
                    keys.into_iter()
                        .map(|k| (Value::str(k.clone()), Value::from_json_ref(&o[k.as_str()])))
                        .collect()
                }
                _ => Vec::new(),
            },
            Value::Labels(l) => {
                let mut sorted: Vec<&'a (String, String)> = l.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                sorted
                    .into_iter()
                    .map(|(k, v)| (Value::str(k.as_str()), Value::str(v.as_str())))
                    .collect()
            }
            other => return Err(format!("range can't iterate over {}", other.to_v_string())),
        })
    }

    fn eval_pipe(
        &mut self,
        dot: &Value<'a>,
        p: &Pipe,
        set_decl: bool,
    ) -> Result<Value<'a>, EvalErr> {
        let mut val: Option<Value<'a>> = None;
        for c in &p.cmds {
            let v = self.eval_cmd(dot, c, val.take())?;
            val = Some(v);
        }
        let v = val.unwrap_or(Value::Nil);
        if set_decl {
            for name in &p.decl {
                if p.assign {
                    if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                        slot.1 = v.clone();
                    }
                } else {
                    self.vars.push((name.clone(), v.clone()));
                }
            }
        }
        Ok(v)
    }

    fn eval_cmd(
        &mut self,
        dot: &Value<'a>,
        c: &Cmd,
        fin: Option<Value<'a>>,
    ) -> Result<Value<'a>, EvalErr> {
        let has_more = c.args.len() > 1 || fin.is_some();
        match &c.args[0] {
            Arg::Func(f) => {
                let f = *f;
                if funcs::is_and_or(f) {
                    let is_and = funcs::name(f) == "and";
                    let n = c.args.len() - 1 + usize::from(fin.is_some());
                    if n == 0 {
                        return Err(self.located(
                            c,
                            format!(
                                "wrong number of args for {}: want at least 1 got 0",
                                funcs::name(f)
                            ),
                        ));
                    }
                    let mut last = Value::Nil;
                    for a in &c.args[1..] {
                        let v = self.eval_arg(dot, a, c)?;
                        if v.truth() != is_and {
                            return Ok(v);
                        }
                        last = v;
                    }
                    if let Some(v) = fin {
                        return Ok(v);
                    }
                    return Ok(last);
                }
                let mut args = Vec::with_capacity(c.args.len());
                for a in &c.args[1..] {
                    args.push(self.eval_arg(dot, a, c)?);
                }
                if let Some(v) = fin {
                    args.push(v);
                }
                funcs::call(f, args, &self.ctx, c.regex.as_ref()).map_err(|m| self.located(c, m))
            }
            Arg::Field(fields) => {
                if has_more {
                    let name = fields.last().map(String::as_str).unwrap_or("");
                    return Err(
                        self.located(c, format!("{name} is not a method but has arguments"))
                    );
                }
                chain(dot.clone(), fields).map_err(|m| self.located(c, m))
            }
            other => {
                if has_more {
                    return Err(
                        self.located(c, format!("can't give argument to non-function {}", c.text))
                    );
                }
                self.eval_arg(dot, other, c)
            }
        }
    }

    fn eval_arg(&mut self, dot: &Value<'a>, a: &Arg, c: &Cmd) -> Result<Value<'a>, EvalErr> {
        Ok(match a {
            Arg::Dot => dot.clone(),
            Arg::Field(f) => chain(dot.clone(), f).map_err(|m| self.located(c, m))?,
            Arg::Var(name, f) => {
                let v = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or(Value::Nil);
                chain(v, f).map_err(|m| self.located(c, m))?
            }
            Arg::Func(f) => {
                if funcs::is_and_or(*f) {
                    return Err(self.located(
                        c,
                        format!(
                            "wrong number of args for {}: want at least 1 got 0",
                            funcs::name(*f)
                        ),
                    ));
                }
                funcs::call(*f, Vec::new(), &self.ctx, None).map_err(|m| self.located(c, m))?
            }
            Arg::Str(s) => Value::Str(Cow::Owned(s.clone())),
            Arg::Int(i) => Value::Int(*i),
            Arg::Float(f) => Value::Float(*f),
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Nil => Value::Nil,
            Arg::Sub(p, f) => {
                let v = self.eval_pipe(dot, p, true)?;
                chain(v, f).map_err(|m| self.located(c, m))?
            }
        })
    }
}

/// `.a.b` on a receiver.
fn chain<'a>(mut v: Value<'a>, fields: &[String]) -> Result<Value<'a>, String> {
    for f in fields {
        v = field(&v, f)?;
    }
    Ok(v)
}

fn field<'a>(v: &Value<'a>, name: &str) -> Result<Value<'a>, String> {
    match v {
        Value::Labels(l) => Ok(Value::Str(Cow::Borrowed(
            l.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or(""),
        ))),
        Value::Json(j) => match &**j {
            serde_json::Value::Object(o) => {
                Ok(o.get(name).map(Value::from_json_ref).unwrap_or(Value::Nil))
            }
            _ => Err(format!(
                "can't evaluate field {name} in type {}",
                v.type_name()
            )),
        },
        Value::Alert(a) => match name {
            "Labels" => Ok(Value::Labels(&a.labels)),
            "ExternalLabels" => Ok(Value::Labels(&a.external_labels)),
            "ExternalURL" => Ok(Value::str(a.external_url.as_str())),
            "Value" => Ok(Value::Float(a.value)),
            _ => Err(format!(
                "can't evaluate field {name} in type {}",
                v.type_name()
            )),
        },
        Value::Time(t) => time_method(t, name)
            .ok_or_else(|| format!("can't evaluate field {name} in type {}", v.type_name())),
        Value::Nil => Err(format!("nil pointer evaluating interface {{}}.{name}")),
        other => Err(format!(
            "can't evaluate field {name} in type {}",
            other.type_name()
        )),
    }
}

/// The niladic methods of Go's `time.Time` a template may call
/// (`{{ (__timestamp__).Unix }}`).
fn time_method<'a>(t: &super::gotime::GoTime, name: &str) -> Option<Value<'a>> {
    let ns = t.unix_nanos();
    Some(match name {
        "Unix" => Value::Int(ns.div_euclid(1_000_000_000) as i64),
        "UnixMilli" => Value::Int(ns.div_euclid(1_000_000) as i64),
        "UnixMicro" => Value::Int(ns.div_euclid(1_000) as i64),
        "UnixNano" => Value::Int(ns as i64),
        "Nanosecond" => Value::Int(ns.rem_euclid(1_000_000_000) as i64),
        "IsZero" => Value::Bool(*t == super::gotime::GoTime::zero()),
        "String" => Value::str(t.to_go_string()),
        "UTC" => Value::Time(super::gotime::GoTime::from_unix_nanos(ns)),
        _ => return None,
    })
}
