//! `o11ydb bench ruler compare`: the evaluation times o11ydb's ruler and
//! Prometheus' rule manager report for the same rule file over the same
//! data (`benches/ruler.sh` sets both up).
//!
//! What flows through: both servers' `GET /api/v1/rules` (the Prometheus
//! rules API, which both speak) is polled more often than the groups'
//! interval; each time a group's `lastEvaluation` changes, that
//! evaluation's group `evaluationTime` and its rules' `evaluationTime`s
//! are recorded, until every group of both sides has been evaluated
//! `rounds` times. Any rule whose `health` is `err` on either side fails
//! the comparison. Reported: per-group and per-rule p50/p99/max, the sum
//! over all groups of each round, the first and last evaluation times
//! (to check them against the data's span), and o11ydb/Prometheus ratios.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::prom_http;
use super::ruler::percentile;

/// One group as one rules-API answer shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupView {
    pub name: String,
    /// `lastEvaluation` as sent (RFC 3339), `None` before the first one.
    pub last_evaluation: Option<String>,
    pub evaluation_time: Duration,
    pub rule_times: Vec<Duration>,
    /// `(rule name, lastError)` of every rule whose `health` is `err`.
    pub errors: Vec<(String, String)>,
    /// Pending or firing alerts of the group's alerting rules.
    pub active_alerts: usize,
}

fn seconds_field(v: &Value, what: &str) -> Result<Duration, String> {
    let s = v
        .get("evaluationTime")
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("{what} has no numeric evaluationTime"))?;
    Duration::try_from_secs_f64(s).map_err(|e| format!("{what}: evaluationTime {s}: {e}"))
}

/// Whether an RFC 3339 `lastEvaluation` is a real one (Go's zero time
/// `0001-01-01T00:00:00Z` means never evaluated).
fn evaluated(last: &str) -> bool {
    !last.starts_with("0001-01-01")
}

/// The groups of a `/api/v1/rules` answer.
pub fn parse_groups(body: &str) -> Result<Vec<GroupView>, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("rules API answer: {e}"))?;
    if v.get("status").and_then(Value::as_str) != Some("success") {
        return Err(format!("rules API answered {body}"));
    }
    let groups = v
        .pointer("/data/groups")
        .and_then(Value::as_array)
        .ok_or("rules API answer has no data.groups")?;
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let name = g
            .get("name")
            .and_then(Value::as_str)
            .ok_or("a group has no name")?
            .to_string();
        let what = format!("group {name:?}");
        let last = g
            .get("lastEvaluation")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{what} has no lastEvaluation"))?;
        let rules = g
            .get("rules")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{what} has no rules"))?;
        let mut rule_times = Vec::with_capacity(rules.len());
        let mut errors = Vec::new();
        let mut active_alerts = 0;
        for r in rules {
            let rule_name = r.get("name").and_then(Value::as_str).unwrap_or("");
            rule_times.push(seconds_field(r, &format!("{what} rule {rule_name:?}"))?);
            if r.get("health").and_then(Value::as_str) == Some("err") {
                let e = r.get("lastError").and_then(Value::as_str).unwrap_or("");
                errors.push((rule_name.to_string(), e.to_string()));
            }
            active_alerts += r
                .get("alerts")
                .and_then(Value::as_array)
                .map_or(0, |a| a.len());
        }
        out.push(GroupView {
            name,
            last_evaluation: evaluated(last).then(|| last.to_string()),
            evaluation_time: seconds_field(g, &what)?,
            rule_times,
            errors,
            active_alerts,
        });
    }
    Ok(out)
}

/// One evaluation of one group.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// `lastEvaluation`, ms since the epoch.
    pub at_ms: i64,
    pub time: Duration,
    pub rule_times: Vec<Duration>,
}

/// What one system's rules API showed over the comparison.
#[derive(Debug, Default)]
pub struct Observed {
    /// Evaluations of each group, in order.
    pub groups: BTreeMap<String, Vec<Evaluation>>,
    /// Rule errors seen (group, rule, error), deduplicated.
    pub errors: Vec<(String, String, String)>,
    /// Pending and firing alerts at the last poll.
    pub active_alerts: usize,
}

impl Observed {
    /// Takes in one answer: new evaluations and errors.
    pub fn record(&mut self, views: Vec<GroupView>) -> Result<(), String> {
        self.active_alerts = views.iter().map(|g| g.active_alerts).sum();
        for g in views {
            for (rule, e) in &g.errors {
                let entry = (g.name.clone(), rule.clone(), e.clone());
                if !self.errors.contains(&entry) {
                    self.errors.push(entry);
                }
            }
            let evaluations = self.groups.entry(g.name.clone()).or_default();
            let Some(last) = g.last_evaluation else {
                continue;
            };
            let at_ms = chrono::DateTime::parse_from_rfc3339(&last)
                .map_err(|e| format!("group {:?}: lastEvaluation {last:?}: {e}", g.name))?
                .timestamp_millis();
            if evaluations.last().is_none_or(|e| e.at_ms != at_ms) {
                evaluations.push(Evaluation {
                    at_ms,
                    time: g.evaluation_time,
                    rule_times: g.rule_times,
                });
            }
        }
        Ok(())
    }

    /// Whether every group (and at least one) has `rounds` evaluations.
    pub fn complete(&self, rounds: usize) -> bool {
        !self.groups.is_empty() && self.groups.values().all(|e| e.len() >= rounds)
    }

    /// The first `rounds` evaluations of every group.
    fn rounds(&self, rounds: usize) -> impl Iterator<Item = &Evaluation> {
        self.groups
            .values()
            .flat_map(move |e| e.iter().take(rounds))
    }

    /// Figures over the first `rounds` evaluations of every group.
    pub fn summary(&self, rounds: usize) -> Summary {
        let group_times: Vec<Duration> = self.rounds(rounds).map(|e| e.time).collect();
        let rule_times: Vec<Duration> = self
            .rounds(rounds)
            .flat_map(|e| e.rule_times.iter().copied())
            .collect();
        let round_sums: Vec<Duration> = (0..rounds)
            .map(|k| {
                self.groups
                    .values()
                    .filter_map(|e| e.get(k))
                    .map(|e| e.time)
                    .sum()
            })
            .collect();
        let times = || self.rounds(rounds).map(|e| e.at_ms);
        Summary {
            groups: self.groups.len(),
            rules: self
                .groups
                .values()
                .filter_map(|e| e.first())
                .map(|e| e.rule_times.len())
                .sum(),
            group_times,
            rule_times,
            round_sums,
            first_ms: times().min().unwrap_or(0),
            last_ms: times().max().unwrap_or(0),
        }
    }
}

/// One system's figures.
#[derive(Debug)]
pub struct Summary {
    pub groups: usize,
    pub rules: usize,
    pub group_times: Vec<Duration>,
    pub rule_times: Vec<Duration>,
    /// Sum over all groups of their k-th evaluation, for each round k.
    pub round_sums: Vec<Duration>,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// Polls both rules APIs every `poll` until every group of both has been
/// evaluated `rounds` times (or `timeout` passes); fails on any rule in
/// `err`, or when the two sides do not run the same groups.
pub fn watch(
    o11ydb: SocketAddr,
    prometheus: SocketAddr,
    rounds: usize,
    poll: Duration,
    timeout: Duration,
) -> Result<(Observed, Observed), String> {
    let started = Instant::now();
    let mut ours = Observed::default();
    let mut theirs = Observed::default();
    loop {
        for (name, addr, observed) in [
            ("o11ydb", o11ydb, &mut ours),
            ("Prometheus", prometheus, &mut theirs),
        ] {
            let answer = prom_http::get(addr, "/api/v1/rules")
                .map_err(|e| format!("{name} GET /api/v1/rules: {e}"))?;
            if answer.status != 200 {
                return Err(format!(
                    "{name} GET /api/v1/rules: HTTP {}: {}",
                    answer.status, answer.body
                ));
            }
            observed.record(parse_groups(&answer.body).map_err(|e| format!("{name}: {e}"))?)?;
            if let Some((group, rule, error)) = observed.errors.first() {
                return Err(format!(
                    "{name}: rule {rule:?} of group {group:?} is in health err: {error} ({} rules in err)",
                    observed.errors.len()
                ));
            }
        }
        if ours.complete(rounds) && theirs.complete(rounds) {
            let (a, b): (Vec<_>, Vec<_>) =
                (ours.groups.keys().collect(), theirs.groups.keys().collect());
            if a != b {
                return Err(format!(
                    "the two sides run different groups: o11ydb {} groups, Prometheus {}",
                    a.len(),
                    b.len()
                ));
            }
            return Ok((ours, theirs));
        }
        if started.elapsed() > timeout {
            let least = |o: &Observed| o.groups.values().map(Vec::len).min().unwrap_or(0);
            return Err(format!(
                "not every group was evaluated {rounds} times within {timeout:?} (fewest: o11ydb {}, Prometheus {})",
                least(&ours),
                least(&theirs)
            ));
        }
        std::thread::sleep(poll);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The comparison as a Markdown table: one row per figure.
pub fn markdown_table(ours: &Summary, theirs: &Summary) -> String {
    let mut out = String::from(
        "| figure | o11ydb ms | Prometheus ms | o11ydb / Prometheus |\n| --- | ---: | ---: | ---: |\n",
    );
    type Figure = fn(&Summary) -> Duration;
    let rows: [(&str, Figure); 9] = [
        ("group evaluation p50", |s| percentile(&s.group_times, 50.0)),
        ("group evaluation p99", |s| percentile(&s.group_times, 99.0)),
        ("group evaluation max", |s| {
            percentile(&s.group_times, 100.0)
        }),
        ("rule evaluation p50", |s| percentile(&s.rule_times, 50.0)),
        ("rule evaluation p99", |s| percentile(&s.rule_times, 99.0)),
        ("rule evaluation max", |s| percentile(&s.rule_times, 100.0)),
        ("round (sum over groups) p50", |s| {
            percentile(&s.round_sums, 50.0)
        }),
        ("round (sum over groups) max", |s| {
            percentile(&s.round_sums, 100.0)
        }),
        ("round (sum over groups) min", |s| {
            s.round_sums.iter().min().copied().unwrap_or_default()
        }),
    ];
    for (name, figure) in rows {
        let (a, b) = (figure(ours), figure(theirs));
        let ratio = if b.is_zero() {
            f64::NAN
        } else {
            a.as_secs_f64() / b.as_secs_f64()
        };
        out.push_str(&format!(
            "| {name} | {:.1} | {:.1} | {ratio:.2} |\n",
            ms(a),
            ms(b)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape Prometheus 2.42 answers (trimmed).
    fn answer(last: &str, group_s: f64, health: &str) -> String {
        format!(
            r#"{{"status":"success","data":{{"groups":[{{"name":"group0","file":"/r.yaml","rules":[
            {{"name":"a","query":"x","health":"{health}","lastError":"boom","evaluationTime":0.002,"lastEvaluation":"{last}","type":"recording"}},
            {{"state":"firing","name":"B","alerts":[{{"state":"firing"}},{{"state":"pending"}}],"health":"ok","evaluationTime":0.003,"lastEvaluation":"{last}","type":"alerting"}}],
            "interval":30,"limit":0,"evaluationTime":{group_s},"lastEvaluation":"{last}"}}]}}}}"#
        )
    }

    #[test]
    fn evaluations_are_recorded_once_each_and_errors_kept() {
        let never = parse_groups(&answer("0001-01-01T00:00:00Z", 0.0, "unknown")).unwrap();
        assert_eq!(never[0].last_evaluation, None);
        let mut o = Observed::default();
        o.record(never).unwrap();
        assert!(!o.complete(1));
        let t1 = "2024-05-01T10:00:00.123456789Z";
        let t2 = "2024-05-01T10:00:30.123Z";
        o.record(parse_groups(&answer(t1, 0.005, "ok")).unwrap())
            .unwrap();
        o.record(parse_groups(&answer(t1, 0.005, "ok")).unwrap())
            .unwrap();
        assert!(o.complete(1) && !o.complete(2));
        o.record(parse_groups(&answer(t2, 0.007, "ok")).unwrap())
            .unwrap();
        assert!(o.complete(2));
        assert_eq!(o.active_alerts, 2);
        let s = o.summary(2);
        assert_eq!((s.groups, s.rules), (1, 2));
        assert_eq!(s.round_sums, [5, 7].map(Duration::from_millis));
        assert_eq!(s.rule_times.len(), 4);
        assert_eq!(s.last_ms - s.first_ms, 30_000);
        let table = markdown_table(&s, &s);
        assert!(
            table.contains("| group evaluation max | 7.0 | 7.0 | 1.00 |"),
            "{table}"
        );

        o.record(parse_groups(&answer(t2, 0.007, "err")).unwrap())
            .unwrap();
        assert_eq!(o.errors, [("group0".into(), "a".into(), "boom".into())]);
        let e = parse_groups(r#"{"status":"success","data":{"groups":[{"name":"g","lastEvaluation":"x","rules":[]}]}}"#)
            .unwrap_err();
        assert!(
            e.contains("group \"g\" has no numeric evaluationTime"),
            "{e}"
        );
    }
}
