//! The rules API of the ruler, answering like Prometheus: the request's
//! tenant (`X-Scope-OrgID`) → its rule groups' definitions and state from
//! [`crate::ruler::Ruler::snapshot`] → JSON.
//!
//! * `GET /api/v1/rules` (also at `/prometheus/api/v1/rules` and
//!   `/loki/api/v1/rules`, answered in the same JSON): groups with their rules, `health`,
//!   `lastError`, `evaluationTime`, `lastEvaluation` and alerts; filters
//!   `type=alert|record`, `rule_name[]`, `rule_group[]`, `file[]`, and
//!   `exclude_alerts=true`.
//! * `GET /api/v1/alerts`: every pending and firing alert.
//!
//! Without `[ruler]` both answer an empty list, as Prometheus does with no
//! rule files.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::prometheus::ApiRequest;
use super::push;
use crate::engine::Engine;
use crate::ruler::eval::{Alert, AlertState, RuleState};
use crate::ruler::notifier::rfc3339;
use crate::ruler::rules::{Rule, RuleKind};

/// The routes, for `crate::server::http::router`.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/api/v1/rules", get(rules))
        .route("/prometheus/api/v1/rules", get(rules))
        .route("/loki/api/v1/rules", get(rules))
        .route("/api/v1/alerts", get(alerts))
        .route("/prometheus/api/v1/alerts", get(alerts))
}

fn error(status: StatusCode, kind: &str, message: String) -> Response {
    (
        status,
        axum::Json(json!({"status": "error", "errorType": kind, "error": message})),
    )
        .into_response()
}

fn success(data: Value) -> Response {
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

fn labels_json(pairs: &[(String, String)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<_, _>>(),
    )
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`, as Prometheus prints an alert's value.
fn value_text(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let s = format!("{v:e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

fn alert_json(a: &Alert) -> Value {
    let mut out = json!({
        "labels": labels_json(&a.labels),
        "annotations": labels_json(&a.annotations),
        "state": a.state.name(),
        "activeAt": rfc3339(a.active_at_ms),
        "value": value_text(a.value),
    });
    if let Some(since) = a.keep_firing_since_ms {
        out["keepFiringSince"] = Value::String(rfc3339(since));
    }
    out
}

fn evaluated(state: &RuleState) -> (Value, f64) {
    let last = state
        .last_evaluation_ms
        .map(rfc3339)
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into());
    (Value::String(last), state.evaluation_time.as_secs_f64())
}

fn rule_json(rule: &Rule, state: &RuleState, with_alerts: bool) -> Value {
    let (last, took) = evaluated(state);
    let mut out = match &rule.kind {
        RuleKind::Record => json!({
            "name": rule.name,
            "query": rule.expr,
            "labels": labels_json(&rule.labels),
            "type": "recording",
        }),
        RuleKind::Alert {
            hold,
            keep_firing_for,
            annotations,
        } => {
            let alerts: Vec<Value> = if with_alerts {
                state
                    .alerts
                    .values()
                    .filter(|a| a.state != AlertState::Inactive)
                    .map(alert_json)
                    .collect()
            } else {
                Vec::new()
            };
            json!({
                "state": state.alert_state().name(),
                "name": rule.name,
                "query": rule.expr,
                "duration": hold.as_secs_f64(),
                "keepFiringFor": keep_firing_for.as_secs_f64(),
                "labels": labels_json(&rule.labels),
                "annotations": labels_json(annotations),
                "alerts": alerts,
                "type": "alerting",
            })
        }
    };
    out["health"] = Value::String(state.health.name().into());
    out["lastError"] = Value::String(state.last_error.clone().unwrap_or_default());
    out["evaluationTime"] = json!(took);
    out["lastEvaluation"] = last;
    out
}

async fn rules(State(engine): State<Arc<Engine>>, request: ApiRequest) -> Response {
    let tenant = match push::tenant(&engine, &request.headers) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    let form = &request.form;
    let (want_alerts, want_records) = match form.get("type").map(|t| t.to_ascii_lowercase()) {
        None => (true, true),
        Some(t) if t.is_empty() => (true, true),
        Some(t) if t == "alert" => (true, false),
        Some(t) if t == "record" => (false, true),
        Some(t) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_data",
                format!("invalid query parameter type={t:?}: must be alert or record"),
            );
        }
    };
    let exclude_alerts = match form.get("exclude_alerts") {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_data",
                format!("invalid query parameter exclude_alerts={other:?}: must be true or false"),
            );
        }
    };
    let names = form.all("rule_name[]");
    let group_names = form.all("rule_group[]");
    let files = form.all("file[]");
    let mut groups = Vec::new();
    for g in engine
        .ruler()
        .map(|r| r.snapshot(&tenant))
        .unwrap_or_default()
    {
        let file = g.group.file.display().to_string();
        if !group_names.is_empty() && !group_names.contains(&g.group.name) {
            continue;
        }
        if !files.is_empty() && !files.contains(&file) {
            continue;
        }
        let state = g.state.lock();
        let rules: Vec<Value> = g
            .group
            .rules
            .iter()
            .zip(state.rules.iter())
            .filter(|(r, _)| {
                if r.is_alert() {
                    want_alerts
                } else {
                    want_records
                }
            })
            .filter(|(r, _)| names.is_empty() || names.contains(&r.name))
            .map(|(r, s)| rule_json(r, s, !exclude_alerts))
            .collect();
        if rules.is_empty() && (!names.is_empty() || !want_alerts || !want_records) {
            continue;
        }
        let last = state
            .last_evaluation_ms
            .map(rfc3339)
            .unwrap_or_else(|| "0001-01-01T00:00:00Z".into());
        groups.push(json!({
            "name": g.group.name,
            "file": file,
            "language": g.group.language.name(),
            "rules": rules,
            "interval": g.interval.as_secs_f64(),
            "limit": g.group.limit,
            "evaluationTime": state.evaluation_time.as_secs_f64(),
            "lastEvaluation": last,
        }));
    }
    success(json!({ "groups": groups }))
}

async fn alerts(State(engine): State<Arc<Engine>>, request: ApiRequest) -> Response {
    let tenant = match push::tenant(&engine, &request.headers) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    let mut out = Vec::new();
    for g in engine
        .ruler()
        .map(|r| r.snapshot(&tenant))
        .unwrap_or_default()
    {
        let state = g.state.lock();
        for rs in &state.rules {
            out.extend(
                rs.alerts
                    .values()
                    .filter(|a| a.state != AlertState::Inactive)
                    .map(alert_json),
            );
        }
    }
    success(json!({ "alerts": out }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_print_like_go() {
        assert_eq!(super::value_text(1.0), "1e+00");
        assert_eq!(super::value_text(0.25), "2.5e-01");
        assert_eq!(super::value_text(12345.0), "1.2345e+04");
    }
}
