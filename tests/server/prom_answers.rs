//! Prometheus HTTP API answers (`/api/v1/query`, `/api/v1/query_range`)
//! parsed into a comparable form, and the comparison the differential test
//! uses: same result type, same series label sets, same timestamps, values
//! equal within a relative tolerance (NaN equals NaN).

use std::collections::BTreeMap;

pub type LabelMap = BTreeMap<String, String>;

/// Relative tolerance on values; below [`ABSOLUTE_FLOOR`] in magnitude two
/// values are equal (a 0 against a 1e-17 left by float cancellation).
pub const RELATIVE_TOLERANCE: f64 = 1e-6;
pub const ABSOLUTE_FLOOR: f64 = 1e-9;

#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Error {
        error_type: String,
        error: String,
    },
    Scalar(i64, f64),
    String(i64, String),
    /// Instant samples: labels, timestamp (ms), value.
    Vector(Vec<(LabelMap, i64, f64)>),
    /// Series: labels, points (ms, value).
    Matrix(Vec<(LabelMap, Vec<(i64, f64)>)>),
}

impl Answer {
    /// A one-line description for the per-query summary.
    pub fn summary(&self) -> String {
        match self {
            Answer::Error { error_type, .. } => format!("error {error_type}"),
            Answer::Scalar(..) => "scalar".into(),
            Answer::String(..) => "string".into(),
            Answer::Vector(v) => format!("{} samples", v.len()),
            Answer::Matrix(m) => format!(
                "{} series, {} points",
                m.len(),
                m.iter().map(|s| s.1.len()).sum::<usize>()
            ),
        }
    }
}

fn parse_value(v: &serde_json::Value) -> Result<f64, String> {
    let text = v
        .as_str()
        .ok_or_else(|| format!("value {v} is not a string"))?;
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => text.parse().map_err(|_| format!("bad value {text:?}")),
    }
}

fn parse_time(v: &serde_json::Value) -> Result<i64, String> {
    let seconds = v
        .as_f64()
        .ok_or_else(|| format!("time {v} is not a number"))?;
    Ok((seconds * 1000.0).round() as i64)
}

/// `[time, "value"]`.
fn parse_point(p: &serde_json::Value) -> Result<(i64, f64), String> {
    match p.as_array().map(|a| a.as_slice()) {
        Some([t, v]) => Ok((parse_time(t)?, parse_value(v)?)),
        _ => Err(format!("bad point {p}")),
    }
}

fn parse_labels(m: &serde_json::Value) -> Result<LabelMap, String> {
    let obj = m
        .as_object()
        .ok_or_else(|| format!("metric {m} is not an object"))?;
    obj.iter()
        .map(|(k, v)| {
            v.as_str()
                .map(|s| (k.clone(), s.to_string()))
                .ok_or_else(|| format!("label {k} is not a string"))
        })
        .collect()
}

/// Parses an answer body (any HTTP status: errors come back as `Answer::Error`).
pub fn parse(body: &str) -> Result<Answer, String> {
    let json: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("not JSON ({e}): {body:.200}"))?;
    if json["status"] != "success" {
        return Ok(Answer::Error {
            error_type: json["errorType"].as_str().unwrap_or("").to_string(),
            error: json["error"].as_str().unwrap_or("").to_string(),
        });
    }
    let data = &json["data"];
    let result = &data["result"];
    match data["resultType"].as_str() {
        Some("scalar") => {
            let (t, v) = parse_point(result)?;
            Ok(Answer::Scalar(t, v))
        }
        Some("string") => match result.as_array().map(|a| a.as_slice()) {
            Some([t, v]) => Ok(Answer::String(
                parse_time(t)?,
                v.as_str().unwrap_or("").to_string(),
            )),
            _ => Err(format!("bad string result {result}")),
        },
        Some("vector") => {
            let samples = result.as_array().ok_or("vector result is not an array")?;
            samples
                .iter()
                .map(|s| {
                    let (t, v) = parse_point(&s["value"])?;
                    Ok((parse_labels(&s["metric"])?, t, v))
                })
                .collect::<Result<_, String>>()
                .map(Answer::Vector)
        }
        Some("matrix") => {
            let series = result.as_array().ok_or("matrix result is not an array")?;
            series
                .iter()
                .map(|s| {
                    let points = s["values"]
                        .as_array()
                        .ok_or("series without values")?
                        .iter()
                        .map(parse_point)
                        .collect::<Result<Vec<_>, String>>()?;
                    Ok((parse_labels(&s["metric"])?, points))
                })
                .collect::<Result<_, String>>()
                .map(Answer::Matrix)
        }
        other => Err(format!("unknown resultType {other:?}")),
    }
}

pub fn values_match(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    diff <= RELATIVE_TOLERANCE * a.abs().max(b.abs()) || (a.abs().max(b.abs()) < ABSOLUTE_FLOOR)
}

fn render_labels(l: &LabelMap) -> String {
    let pairs: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

/// Compares o11ydb's answer with Prometheus'; `ordered` keeps the order of
/// instant vectors (for `sort`/`sort_desc`). Returns the first difference.
pub fn compare(ours: &Answer, theirs: &Answer, ordered: bool) -> Result<(), String> {
    match (ours, theirs) {
        (
            Answer::Error { error_type: a, .. },
            Answer::Error {
                error_type: b,
                error,
            },
        ) => (a == b)
            .then_some(())
            .ok_or_else(|| format!("error type {a} vs {b} ({error})")),
        (Answer::Scalar(t1, v1), Answer::Scalar(t2, v2)) => {
            if t1 != t2 || !values_match(*v1, *v2) {
                Err(format!("scalar ({t1}, {v1}) vs ({t2}, {v2})"))
            } else {
                Ok(())
            }
        }
        (Answer::String(t1, s1), Answer::String(t2, s2)) => (t1 == t2 && s1 == s2)
            .then_some(())
            .ok_or_else(|| format!("string ({t1}, {s1:?}) vs ({t2}, {s2:?})")),
        (Answer::Vector(a), Answer::Vector(b)) => {
            let (mut a, mut b) = (a.clone(), b.clone());
            if !ordered {
                a.sort_by(|x, y| x.0.cmp(&y.0));
                b.sort_by(|x, y| x.0.cmp(&y.0));
            }
            for (x, y) in a.iter().zip(&b) {
                if x.0 != y.0 {
                    return Err(format!(
                        "sample labels {} vs {}",
                        render_labels(&x.0),
                        render_labels(&y.0)
                    ));
                }
                if x.1 != y.1 || !values_match(x.2, y.2) {
                    return Err(format!(
                        "{}: ({}, {}) vs ({}, {})",
                        render_labels(&x.0),
                        x.1,
                        x.2,
                        y.1,
                        y.2
                    ));
                }
            }
            compare_lengths("samples", &a, &b, |s| render_labels(&s.0))
        }
        (Answer::Matrix(a), Answer::Matrix(b)) => {
            let (mut a, mut b) = (a.clone(), b.clone());
            a.sort_by(|x, y| x.0.cmp(&y.0));
            b.sort_by(|x, y| x.0.cmp(&y.0));
            let (keys_a, keys_b): (Vec<_>, Vec<_>) = (
                a.iter().map(|s| &s.0).collect(),
                b.iter().map(|s| &s.0).collect(),
            );
            if let Some(missing) = keys_b.iter().find(|k| !keys_a.contains(k)) {
                return Err(format!(
                    "series {} missing from o11ydb ({} vs {} series)",
                    render_labels(missing),
                    a.len(),
                    b.len()
                ));
            }
            if let Some(extra) = keys_a.iter().find(|k| !keys_b.contains(k)) {
                return Err(format!(
                    "series {} only in o11ydb ({} vs {} series)",
                    render_labels(extra),
                    a.len(),
                    b.len()
                ));
            }
            for (x, y) in a.iter().zip(&b) {
                for (i, (p, q)) in x.1.iter().zip(&y.1).enumerate() {
                    if p.0 != q.0 || !values_match(p.1, q.1) {
                        return Err(format!(
                            "{} point {i}: ({}, {}) vs ({}, {})",
                            render_labels(&x.0),
                            p.0,
                            p.1,
                            q.0,
                            q.1
                        ));
                    }
                }
                if x.1.len() != y.1.len() {
                    let n = x.1.len().min(y.1.len());
                    return Err(format!(
                        "{}: {} vs {} points; first unmatched {:?} vs {:?}",
                        render_labels(&x.0),
                        x.1.len(),
                        y.1.len(),
                        x.1.get(n),
                        y.1.get(n)
                    ));
                }
            }
            Ok(())
        }
        _ => Err(format!("result {} vs {}", ours.summary(), theirs.summary())),
    }
}

fn compare_lengths<T>(
    what: &str,
    a: &[T],
    b: &[T],
    name: impl Fn(&T) -> String,
) -> Result<(), String> {
    if a.len() == b.len() {
        return Ok(());
    }
    let n = a.len().min(b.len());
    let first = a
        .get(n)
        .map(|x| format!("{} only in o11ydb", name(x)))
        .or_else(|| b.get(n).map(|y| format!("{} missing from o11ydb", name(y))))
        .unwrap_or_default();
    Err(format!("{} vs {} {what}: {first}", a.len(), b.len()))
}
