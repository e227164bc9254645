//! Evaluating one rule group: at each evaluation time, every rule in
//! order → an instant query (PromQL, or a LogQL metric query) over the
//! tenant's tables → samples written back through the distributor
//! (recording rules), or alerts moved through inactive → pending → firing
//! (alerting rules) with their `ALERTS` / `ALERTS_FOR_STATE` series and
//! notifications.
//!
//! Semantics are Prometheus' (`rules/recording.go`, `rules/alerting.go`):
//! a recording rule drops `__name__`, adds the rule labels and names the
//! result after `record`; a scalar result is one series without labels,
//! any other non-vector is an error. An alert's labels are the sample's
//! (without `__name__`) plus the templated rule labels and `alertname`; it
//! fires once pending for `for`, keeps firing `keep_firing_for` after the
//! condition stops, and is sent as resolved (with `endsAt`) for 15 minutes
//! after. Series a rule wrote at the previous evaluation but not at this
//! one get a stale marker, so queries stop seeing them at once.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use o11ydb_udfs::logql::template::AlertData;
use parking_lot::Mutex;

use super::notifier::Notification;
use super::rules::{Language, Rule, RuleGroup, RuleKind};
use crate::engine::Engine;
use crate::ingest::distributor::{Decoded, Discards};
use crate::model::builders::{SamplesBuilder, canonical};
use crate::model::{STALE_NAN_BITS, Signal};
use crate::query::promql::value::Hist;
use crate::query::promql::{InstantSample, Labels, QueryValue};

/// How long a resolved alert is still sent to Alertmanager (Prometheus'
/// `resolvedRetention`).
const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

pub const EVALUATIONS: &str = "o11ydb_ruler_evaluations_total";
pub const FAILURES: &str = "o11ydb_ruler_evaluation_failures_total";
pub const GROUP_DURATION: &str = "o11ydb_ruler_group_last_duration_seconds";
pub const GROUP_SECONDS: &str = "o11ydb_ruler_group_evaluation_seconds_total";
pub const MISSED: &str = "o11ydb_ruler_group_iterations_missed_total";
pub const SAMPLES: &str = "o11ydb_ruler_samples_written_total";

pub(super) fn describe(metrics: &crate::metrics::Metrics) {
    metrics.describe(EVALUATIONS, "counter", "Rule evaluations, per tenant.");
    metrics.describe(
        FAILURES,
        "counter",
        "Rule evaluations that failed (query error, limit, write refused), per tenant.",
    );
    metrics.describe(
        GROUP_DURATION,
        "gauge",
        "How long the last evaluation of a rule group took.",
    );
    metrics.describe(
        GROUP_SECONDS,
        "counter",
        "Time spent evaluating rule groups, per tenant.",
    );
    metrics.describe(
        MISSED,
        "counter",
        "Group evaluations skipped because the previous one ran past the interval.",
    );
    metrics.describe(
        SAMPLES,
        "counter",
        "Samples rules wrote (recording rule results, ALERTS, ALERTS_FOR_STATE, stale markers).",
    );
}

/// `ok`, `err` or `unknown` (never evaluated), as the rules API reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Ok,
    Err,
}

impl Health {
    pub fn name(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn name(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of an alerting rule (one label set of its result).
#[derive(Debug, Clone)]
pub struct Alert {
    /// Final labels, sorted: the sample's, templated rule labels, `alertname`.
    pub labels: Labels,
    pub annotations: Vec<(String, String)>,
    pub state: AlertState,
    pub value: f64,
    pub active_at_ms: i64,
    pub fired_at_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
    pub last_sent_at_ms: Option<i64>,
    pub valid_until_ms: i64,
    pub keep_firing_since_ms: Option<i64>,
}

impl Alert {
    /// Prometheus' `needsSending`.
    fn needs_sending(&self, ts: i64, resend_delay_ms: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        if let Some(resolved) = self.resolved_at_ms
            && self.last_sent_at_ms.is_none_or(|sent| resolved > sent)
        {
            return true;
        }
        self.last_sent_at_ms
            .is_none_or(|sent| sent + resend_delay_ms < ts)
    }
}

/// What the rules API shows of one rule.
#[derive(Debug, Clone)]
pub struct RuleState {
    pub health: Health,
    pub last_error: Option<String>,
    pub last_evaluation_ms: Option<i64>,
    pub evaluation_time: Duration,
    /// Alerting rules: active alerts by label set.
    pub alerts: BTreeMap<Labels, Alert>,
    /// Series written at the last evaluation (metric name and labels),
    /// for stale markers.
    written: HashSet<(String, Labels)>,
    /// False from the ruler's start until the alerts' `for` state is
    /// restored ([`super::restore`]); meanwhile no `ALERTS` series are
    /// written, so the stored state is not overwritten.
    pub restored: bool,
}

impl Default for RuleState {
    fn default() -> Self {
        RuleState {
            health: Health::Unknown,
            last_error: None,
            last_evaluation_ms: None,
            evaluation_time: Duration::ZERO,
            alerts: BTreeMap::new(),
            written: HashSet::new(),
            restored: true,
        }
    }
}

impl RuleState {
    /// The rule's overall alert state: its most advanced alert's.
    pub fn alert_state(&self) -> AlertState {
        self.alerts
            .values()
            .map(|a| a.state)
            .max()
            .unwrap_or(AlertState::Inactive)
    }
}

/// A group's rules and what their evaluations left.
#[derive(Debug)]
pub struct GroupState {
    pub last_evaluation_ms: Option<i64>,
    pub evaluation_time: Duration,
    pub rules: Vec<RuleState>,
}

impl GroupState {
    pub fn new(rules: usize) -> GroupState {
        GroupState {
            last_evaluation_ms: None,
            evaluation_time: Duration::ZERO,
            rules: vec![RuleState::default(); rules],
        }
    }
}

/// Everything an evaluation needs besides the group.
pub struct EvalContext {
    pub engine: Arc<Engine>,
    pub tenant: String,
    pub external_labels: Labels,
    pub external_url: String,
    pub resend_delay: Duration,
    pub notifier: Arc<super::notifier::Notifier>,
}

/// Evaluates every rule of `group` at `ts_ms`, in order, and records the
/// outcome in `state`. Each rule's samples are written before the next
/// rule runs, so later rules see earlier rules' results.
pub async fn evaluate_group(
    ctx: &EvalContext,
    group: &RuleGroup,
    state: &Mutex<GroupState>,
    ts_ms: i64,
) {
    let started = Instant::now();
    let metrics = ctx.engine.metrics();
    let tenant = [("tenant", ctx.tenant.as_str())];
    let interval_ms = group
        .interval
        .map(|d| d.as_millis() as i64)
        .unwrap_or(60_000);
    for (i, rule) in group.rules.iter().enumerate() {
        let rule_started = Instant::now();
        metrics.add(EVALUATIONS, &tenant, 1.0);
        let outcome = evaluate_rule(ctx, group, rule, state, i, ts_ms, interval_ms).await;
        let mut st = state.lock();
        let rs = &mut st.rules[i];
        rs.last_evaluation_ms = Some(ts_ms);
        rs.evaluation_time = rule_started.elapsed();
        match outcome {
            Ok(()) => {
                rs.health = Health::Ok;
                rs.last_error = None;
            }
            Err(e) => {
                metrics.add(FAILURES, &tenant, 1.0);
                tracing::warn!(
                    tenant = %ctx.tenant,
                    group = %group.name,
                    rule = %rule.name,
                    file = %group.file.display(),
                    "rule evaluation failed: {e}"
                );
                rs.health = Health::Err;
                rs.last_error = Some(e);
            }
        }
    }
    let elapsed = started.elapsed();
    let mut st = state.lock();
    st.last_evaluation_ms = Some(ts_ms);
    st.evaluation_time = elapsed;
    drop(st);
    let group_label = format!("{};{}", group.file.display(), group.name);
    metrics.set(
        GROUP_DURATION,
        &[("tenant", &ctx.tenant), ("rule_group", &group_label)],
        elapsed.as_secs_f64(),
    );
    metrics.add(GROUP_SECONDS, &tenant, elapsed.as_secs_f64());
}

/// The instant vector of a rule's expression at `query_ms`.
async fn query(
    ctx: &EvalContext,
    language: Language,
    expr: &str,
    query_ms: i64,
) -> Result<Vec<InstantSample>, String> {
    let session = ctx
        .engine
        .tables_session(&ctx.tenant)
        .map_err(|e| e.to_string())?;
    let config = &ctx.engine.config().query;
    let value = match language {
        Language::Promql => {
            crate::query::promql::instant_query(&session, expr, query_ms, &config.promql_options())
                .await
                .map_err(|e| e.to_string())?
                .value
        }
        Language::Logql => {
            let parsed = crate::query::logql::parse(expr).map_err(|e| e.to_string())?;
            match crate::query::logql::instant_query(
                &session,
                expr,
                &parsed,
                query_ms.saturating_mul(1_000_000),
                &config.logql_options(),
            )
            .await
            .map_err(|e| e.to_string())?
            {
                crate::query::logql::LogqlValue::Metric(v) => v,
                crate::query::logql::LogqlValue::Streams(_) => {
                    return Err("rule result is not a vector or scalar".into());
                }
            }
        }
    };
    match value {
        QueryValue::Vector(v) => Ok(v),
        QueryValue::Scalar { timestamp, value } => Ok(vec![InstantSample {
            labels: Labels::default(),
            timestamp,
            value,
            histogram: None,
        }]),
        other => Err(format!(
            "rule result is not a vector or scalar (it is a {})",
            other.result_type()
        )),
    }
}

async fn evaluate_rule(
    ctx: &EvalContext,
    group: &RuleGroup,
    rule: &Rule,
    state: &Mutex<GroupState>,
    index: usize,
    ts_ms: i64,
    interval_ms: i64,
) -> Result<(), String> {
    let query_ms = ts_ms - group.query_offset.as_millis() as i64;
    let result = query(ctx, group.language, &rule.expr, query_ms).await;
    let (series, notifications, error) = match result {
        Err(e) => {
            // Prometheus keeps a failing alerting rule's alerts as they are.
            (Vec::new(), Vec::new(), Some(e))
        }
        Ok(samples) => match &rule.kind {
            RuleKind::Record => match record(group, rule, samples) {
                Ok(series) => (series, Vec::new(), None),
                Err(e) => (Vec::new(), Vec::new(), Some(e)),
            },
            RuleKind::Alert { .. } => {
                let mut st = state.lock();
                let rs = &mut st.rules[index];
                match alert(ctx, group, rule, rs, samples, ts_ms, interval_ms) {
                    Ok((series, notifications)) => (series, notifications, None),
                    Err(e) => (Vec::new(), Vec::new(), Some(e)),
                }
            }
        },
    };
    ctx.notifier.send(&notifications);
    if let Some(e) = error {
        // Like Prometheus, a failed rule writes nothing, not even stale
        // markers: its series from the last success stay until it recovers.
        return Err(e);
    }
    write(ctx, state, index, series, ts_ms).await
}

/// One output series of a rule: metric name, labels without `__name__`
/// (sorted), value.
type Series = (String, Labels, Recorded);

/// The value a rule writes: a float, or a native histogram (a recording
/// rule over histograms records histograms, as Prometheus does).
#[derive(Debug, Clone, PartialEq)]
enum Recorded {
    Float(f64),
    Histogram(Hist),
}

/// A recording rule's output series.
fn record(
    group: &RuleGroup,
    rule: &Rule,
    samples: Vec<InstantSample>,
) -> Result<Vec<Series>, String> {
    if group.limit > 0 && samples.len() > group.limit {
        return Err(format!(
            "exceeded limit of {} with {} series",
            group.limit,
            samples.len()
        ));
    }
    let mut out = Vec::with_capacity(samples.len());
    let mut seen = HashSet::new();
    for s in samples {
        let mut labels: BTreeMap<String, String> = s
            .labels
            .into_iter()
            .filter(|(k, _)| k != "__name__")
            .collect();
        for (k, v) in group.labels.iter().chain(rule.labels.iter()) {
            if v.is_empty() {
                labels.remove(k);
            } else {
                labels.insert(k.clone(), v.clone());
            }
        }
        let labels: Labels = labels.into_iter().collect();
        if !seen.insert(labels.clone()) {
            return Err(
                "vector contains metrics with the same labelset after applying rule labels".into(),
            );
        }
        let value = match s.histogram {
            Some(h) => Recorded::Histogram(h),
            None => Recorded::Float(s.value),
        };
        out.push((rule.name.clone(), labels, value));
    }
    Ok(out)
}

/// Moves an alerting rule's alerts through their states for the result
/// `samples` at `ts`; returns the `ALERTS` / `ALERTS_FOR_STATE` series and
/// the notifications to send.
fn alert(
    ctx: &EvalContext,
    group: &RuleGroup,
    rule: &Rule,
    rs: &mut RuleState,
    samples: Vec<InstantSample>,
    ts: i64,
    interval_ms: i64,
) -> Result<(Vec<Series>, Vec<Notification>), String> {
    let RuleKind::Alert {
        hold,
        keep_firing_for,
        annotations,
    } = &rule.kind
    else {
        return Ok((Vec::new(), Vec::new()));
    };
    let hold_ms = hold.as_millis() as i64;
    let keep_ms = keep_firing_for.as_millis() as i64;
    let label_templates = &rule.templates[..rule.labels.len()];
    let annotation_templates = &rule.templates[rule.labels.len()..];

    let mut current: BTreeMap<Labels, (Vec<(String, String)>, f64)> = BTreeMap::new();
    for s in samples {
        let data = AlertData {
            labels: s.labels.to_vec(),
            external_labels: ctx.external_labels.to_vec(),
            external_url: ctx.external_url.clone(),
            value: s.value,
        };
        // Prometheus keeps the error text as the value of what failed.
        let expand = |name: &str, t: &o11ydb_udfs::logql::template::Template| {
            t.render_alert(&data).unwrap_or_else(|e| {
                tracing::warn!(alert = %rule.name, "expanding {name}: {e}");
                format!("<error expanding template: {e}>")
            })
        };
        let mut labels: BTreeMap<String, String> = s
            .labels
            .iter()
            .filter(|(k, _)| k != "__name__")
            .cloned()
            .collect();
        for (k, v) in &group.labels {
            labels.insert(k.clone(), v.clone());
        }
        for ((k, _), t) in rule.labels.iter().zip(label_templates) {
            let value = expand(k, t);
            if value.is_empty() {
                labels.remove(k);
            } else {
                labels.insert(k.clone(), value);
            }
        }
        labels.insert("alertname".into(), rule.name.clone());
        let expanded: Vec<(String, String)> = annotations
            .iter()
            .zip(annotation_templates)
            .map(|((k, _), t)| (k.clone(), expand(k, t)))
            .collect();
        let labels: Labels = labels.into_iter().collect();
        if current.contains_key(&labels) {
            return Err(
                "vector contains metrics with the same labelset after applying alert labels".into(),
            );
        }
        current.insert(labels, (expanded, s.value));
    }

    for (labels, (annotations, value)) in &current {
        match rs.alerts.get_mut(labels) {
            Some(a) if a.state != AlertState::Inactive => {
                a.value = *value;
                a.annotations = annotations.clone();
            }
            _ => {
                rs.alerts.insert(
                    labels.clone(),
                    Alert {
                        labels: labels.clone(),
                        annotations: annotations.clone(),
                        state: AlertState::Pending,
                        value: *value,
                        active_at_ms: ts,
                        fired_at_ms: None,
                        resolved_at_ms: None,
                        last_sent_at_ms: None,
                        valid_until_ms: 0,
                        keep_firing_since_ms: None,
                    },
                );
            }
        }
    }

    let mut active = 0usize;
    let mut gone = Vec::new();
    for (labels, a) in rs.alerts.iter_mut() {
        if !current.contains_key(labels) {
            let mut keep_firing = false;
            if a.state == AlertState::Firing && keep_ms > 0 {
                let since = *a.keep_firing_since_ms.get_or_insert(ts);
                keep_firing = ts - since < keep_ms;
            }
            if a.state == AlertState::Pending
                || a.resolved_at_ms
                    .is_some_and(|r| ts - r > RESOLVED_RETENTION_MS)
            {
                gone.push(labels.clone());
            }
            if a.state != AlertState::Inactive && !keep_firing {
                a.state = AlertState::Inactive;
                a.resolved_at_ms = Some(ts);
            }
            if !keep_firing {
                continue;
            }
        } else {
            a.keep_firing_since_ms = None;
        }
        active += 1;
        if a.state == AlertState::Pending && ts - a.active_at_ms >= hold_ms {
            a.state = AlertState::Firing;
            a.fired_at_ms = Some(ts);
        }
    }
    for labels in gone {
        rs.alerts.remove(&labels);
    }
    if group.limit > 0 && active > group.limit {
        rs.alerts.clear();
        return Err(format!(
            "exceeded limit of {} with {} alerts",
            group.limit, active
        ));
    }

    let mut series = Vec::new();
    for a in rs.alerts.values() {
        if a.state == AlertState::Inactive || !rs.restored {
            continue;
        }
        let mut with_state = a.labels.clone();
        with_state.push(("alertstate".into(), a.state.name().into()));
        series.push((
            "ALERTS".to_string(),
            canonical(with_state.into_vec()).into(),
            Recorded::Float(1.0),
        ));
        series.push((
            "ALERTS_FOR_STATE".to_string(),
            a.labels.clone(),
            // Whole seconds, as Prometheus writes it.
            Recorded::Float(a.active_at_ms.div_euclid(1000) as f64),
        ));
    }

    let resend_ms = ctx.resend_delay.as_millis() as i64;
    let delta = resend_ms.max(interval_ms);
    let generator_url = generator_url(&ctx.external_url, &rule.expr);
    let mut notifications = Vec::new();
    for a in rs.alerts.values_mut() {
        if !a.needs_sending(ts, resend_ms) {
            continue;
        }
        a.last_sent_at_ms = Some(ts);
        a.valid_until_ms = ts + 4 * delta;
        let mut labels = a.labels.clone();
        for (k, v) in &ctx.external_labels {
            if !labels.iter().any(|(l, _)| l == k) {
                labels.push((k.clone(), v.clone()));
            }
        }
        let labels = canonical(labels.into_vec());
        notifications.push(Notification {
            labels,
            annotations: a.annotations.clone(),
            starts_at_ms: a.fired_at_ms.unwrap_or(a.active_at_ms),
            ends_at_ms: a.resolved_at_ms.unwrap_or(a.valid_until_ms),
            generator_url: generator_url.clone(),
        });
    }
    Ok((series, notifications))
}

/// Prometheus' link to the expression in its graph page.
pub fn generator_url(external_url: &str, expr: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(expr.as_bytes()).collect();
    format!(
        "{}/graph?g0.expr={encoded}&g0.tab=1",
        external_url.trim_end_matches('/')
    )
}

/// Writes a rule's series at `ts` plus stale markers for the series it
/// wrote last time but not now.
async fn write(
    ctx: &EvalContext,
    state: &Mutex<GroupState>,
    index: usize,
    series: Vec<Series>,
    ts: i64,
) -> Result<(), String> {
    let now: HashSet<(String, Labels)> = series
        .iter()
        .map(|(m, l, _)| (m.clone(), l.clone()))
        .collect();
    let stale: Vec<(String, Labels)> = {
        let mut st = state.lock();
        let rs = &mut st.rules[index];
        let stale = rs.written.difference(&now).cloned().collect();
        rs.written = now;
        stale
    };
    if series.is_empty() && stale.is_empty() {
        return Ok(());
    }
    let mut b = SamplesBuilder::new();
    for (metric, labels, value) in &series {
        match value {
            Recorded::Float(v) => b.push_series(metric, labels, &[(ts, *v)]),
            Recorded::Histogram(h) => {
                let id = crate::model::labels::series_id(metric, labels);
                b.push_histograms_with_id(metric, labels, id, &[(ts, h.as_ref().clone())]);
            }
        }
    }
    let stale_nan = f64::from_bits(STALE_NAN_BITS);
    for (metric, labels) in &stale {
        b.push_series(metric, labels, &[(ts, stale_nan)]);
    }
    let rows = b.len();
    let decoded = Decoded::costed_by_rows(Signal::Samples, vec![b.finish()], Discards::default());
    ctx.engine
        .distributor()
        .push(&ctx.tenant, decoded)
        .await
        .map_err(|e| format!("writing the rule's samples failed: {e}"))?;
    ctx.engine
        .metrics()
        .add(SAMPLES, &[("tenant", &ctx.tenant)], rows as f64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruler::rules::parse;

    fn group(yaml: &str) -> RuleGroup {
        parse(std::path::Path::new("t.yaml"), yaml, Language::Promql)
            .unwrap_or_else(|p| panic!("{}", p[0]))
            .remove(0)
    }

    fn sample(labels: &[(&str, &str)], value: f64) -> InstantSample {
        InstantSample {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            timestamp: 0,
            value,
            histogram: None,
        }
    }

    #[test]
    fn recording_rules_rename_relabel_and_refuse_duplicates_and_excess() {
        let g = group(
            "groups:\n  - name: g\n    limit: 2\n    labels: {team: a}\n    rules:\n      - record: r:x\n        expr: x\n        labels: {env: prod, drop: \"\"}\n",
        );
        let rule = &g.rules[0];
        let out = record(
            &g,
            rule,
            vec![sample(
                &[("__name__", "x"), ("drop", "1"), ("env", "dev"), ("i", "1")],
                3.0,
            )],
        )
        .unwrap();
        let want: Labels = [("env", "prod"), ("i", "1"), ("team", "a")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(out, vec![("r:x".to_string(), want, Recorded::Float(3.0))]);
        // Two series that differ only by a label the rule overrides.
        let e = record(
            &g,
            rule,
            vec![sample(&[("env", "a")], 1.0), sample(&[("env", "b")], 2.0)],
        )
        .unwrap_err();
        assert!(
            e.contains("same labelset after applying rule labels"),
            "{e}"
        );
        let e = record(
            &g,
            rule,
            (0..3)
                .map(|i| sample(&[("i", &i.to_string())], 1.0))
                .collect(),
        )
        .unwrap_err();
        assert_eq!(e, "exceeded limit of 2 with 3 series");
    }

    #[test]
    fn recording_rules_over_histograms_record_histograms() {
        let g = group("groups:\n  - name: g\n    rules:\n      - record: r:h\n        expr: h\n");
        let h = Hist::new(crate::model::histogram::FloatHistogram {
            count: 3.0,
            sum: 4.5,
            ..Default::default()
        });
        let mut s = sample(&[("__name__", "h")], f64::NAN);
        s.histogram = Some(h.clone());
        let out = record(&g, &g.rules[0], vec![s]).unwrap();
        assert_eq!(
            out,
            vec![("r:h".to_string(), Labels::default(), Recorded::Histogram(h))]
        );
    }

    #[test]
    fn alerts_are_sent_when_firing_again_after_the_resend_delay_and_when_resolved() {
        let mut a = Alert {
            labels: Labels::default(),
            annotations: vec![],
            state: AlertState::Pending,
            value: 1.0,
            active_at_ms: 0,
            fired_at_ms: None,
            resolved_at_ms: None,
            last_sent_at_ms: None,
            valid_until_ms: 0,
            keep_firing_since_ms: None,
        };
        assert!(!a.needs_sending(1_000, 60_000));
        a.state = AlertState::Firing;
        assert!(a.needs_sending(1_000, 60_000));
        a.last_sent_at_ms = Some(1_000);
        assert!(!a.needs_sending(30_000, 60_000));
        assert!(a.needs_sending(61_001, 60_000));
        a.state = AlertState::Inactive;
        a.resolved_at_ms = Some(2_000);
        assert!(a.needs_sending(2_000, 60_000));
        a.last_sent_at_ms = Some(2_000);
        assert!(!a.needs_sending(3_000, 60_000));
        assert_eq!(
            generator_url("http://h:3100/", "up == 0"),
            "http://h:3100/graph?g0.expr=up+%3D%3D+0&g0.tab=1"
        );
    }
}
