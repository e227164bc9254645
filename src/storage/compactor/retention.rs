//! Retention: which rows of a tenant's signal have expired. A tenant's
//! `retention_period` applies to every row; `retention_stream` rules
//! (Loki's per-stream retention) override it for log streams — and for
//! metric series, matched on their labels plus `__name__` — whose labels
//! match a rule's selector. Of several matching rules the one with the
//! highest priority wins, and of equal priorities the shortest period (as
//! in Loki). A period of 0 keeps rows forever.

use std::collections::HashMap;
use std::time::Duration;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::Int64Type;

use crate::ingest::limits::Limits;
use crate::model::Signal;
use crate::model::labels::map_row;
use crate::query::logql::ast::Expr;
use crate::query::logql::pipeline::LabelMatcher;

/// A tenant's compiled retention settings.
#[derive(Debug, Default)]
pub struct RetentionRules {
    /// The tenant's `retention_period` (`None` = forever).
    default_period: Option<Duration>,
    streams: Vec<StreamRule>,
}

#[derive(Debug)]
struct StreamRule {
    matchers: Vec<LabelMatcher>,
    priority: u32,
    period: Option<Duration>,
}

fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

impl RetentionRules {
    /// Compiles a tenant's limits; an invalid selector is an error naming the rule.
    pub fn compile(limits: &Limits) -> Result<RetentionRules, String> {
        let mut streams = Vec::new();
        for (i, rule) in limits.retention_stream.iter().enumerate() {
            let bad =
                |why: String| format!("retention_stream[{i}] selector {:?}: {why}", rule.selector);
            let parsed =
                crate::query::logql::parse(&rule.selector).map_err(|e| bad(e.to_string()))?;
            let selector = match parsed {
                Expr::Log(log) if log.pipeline.is_empty() => log.selector,
                _ => {
                    return Err(bad(
                        "expected a stream selector such as {app=\"api\"}".into()
                    ));
                }
            };
            let matchers = selector
                .iter()
                .map(|m| LabelMatcher::compile(m, &rule.selector).map_err(|e| bad(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            streams.push(StreamRule {
                matchers,
                priority: rule.priority,
                period: nonzero(rule.period),
            });
        }
        Ok(RetentionRules {
            default_period: nonzero(limits.retention_period),
            streams,
        })
    }

    /// Whether no row of any signal can ever expire.
    pub fn keeps_everything(&self) -> bool {
        self.default_period.is_none() && self.streams.iter().all(|r| r.period.is_none())
    }

    /// The rules that apply to `signal` (spans have no stream labels: only
    /// `retention_period` applies to them).
    fn stream_rules(&self, signal: Signal) -> &[StreamRule] {
        match signal {
            Signal::Spans => &[],
            Signal::Logs | Signal::Samples => &self.streams,
        }
    }

    /// The retention period of a stream or series with these labels.
    pub fn period_for(&self, signal: Signal, labels: &[(&str, &str)]) -> Option<Duration> {
        let mut matched: Option<&StreamRule> = None;
        for rule in self.stream_rules(signal) {
            let all = rule.matchers.iter().all(|m| {
                let value = labels
                    .iter()
                    .find(|(n, _)| *n == m.name)
                    .map_or("", |(_, v)| *v);
                m.matches(value)
            });
            if !all {
                continue;
            }
            let better = match matched {
                None => true,
                Some(best) => {
                    rule.priority > best.priority
                        || (rule.priority == best.priority && shorter(rule.period, best.period))
                }
            };
            if better {
                matched = Some(rule);
            }
        }
        match matched {
            Some(rule) => rule.period,
            None => self.default_period,
        }
    }

    /// The longest period any row of `signal` can have (`None`: some rows
    /// are kept forever). A block older than this has expired as a whole.
    pub fn longest(&self, signal: Signal) -> Option<Duration> {
        let mut longest = self.default_period?;
        for rule in self.stream_rules(signal) {
            longest = longest.max(rule.period?);
        }
        Some(longest)
    }

    /// The shortest period any row of `signal` can have (`None`: nothing
    /// expires). Only blocks with rows older than this need to be read.
    pub fn shortest(&self, signal: Signal) -> Option<Duration> {
        std::iter::once(self.default_period)
            .chain(self.stream_rules(signal).iter().map(|r| r.period))
            .flatten()
            .min()
    }
}

/// `a` is a shorter retention than `b` (`None` = forever).
fn shorter(a: Option<Duration>, b: Option<Duration>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a < b,
        (Some(_), None) => true,
        _ => false,
    }
}

/// The cutoff (oldest time kept, in the signal's unit) of a period at `now_ms`.
pub fn cutoff(signal: Signal, now_ms: i64, period: Duration) -> i64 {
    let ms = now_ms.saturating_sub(period.as_millis() as i64);
    match signal {
        Signal::Samples => ms,
        Signal::Logs | Signal::Spans => ms.saturating_mul(1_000_000),
    }
}

/// Marks expired rows of batches in the signal's table schema, caching each
/// stream's or series' cutoff by its id.
#[derive(Debug)]
pub struct Expiry<'a> {
    signal: Signal,
    rules: &'a RetentionRules,
    now_ms: i64,
    cutoffs: HashMap<i64, Option<i64>>,
}

impl<'a> Expiry<'a> {
    pub fn new(signal: Signal, rules: &'a RetentionRules, now_ms: i64) -> Self {
        Expiry {
            signal,
            rules,
            now_ms,
            cutoffs: HashMap::new(),
        }
    }

    /// True for each row that has expired.
    pub fn expired(&mut self, batch: &RecordBatch) -> BooleanArray {
        let signal = self.signal;
        let times = arrow::compute::cast(
            batch
                .column_by_name(signal.time_column())
                .expect("time column of canonical schema"),
            &arrow::datatypes::DataType::Int64,
        )
        .expect("timestamps cast to integers");
        let times = times.as_primitive::<Int64Type>();
        if self.rules.stream_rules(signal).is_empty() {
            let Some(period) = self.rules.default_period else {
                return BooleanArray::from(vec![false; batch.num_rows()]);
            };
            let cut = cutoff(signal, self.now_ms, period);
            return times
                .iter()
                .map(|t| Some(t.is_some_and(|t| t < cut)))
                .collect();
        }
        let id_column = match signal {
            Signal::Logs => "stream_id",
            _ => "series_id",
        };
        let ids = batch
            .column_by_name(id_column)
            .expect("id column of canonical schema")
            .as_primitive::<Int64Type>();
        let labels = batch
            .column_by_name("labels")
            .expect("labels column of canonical schema")
            .as_map();
        let metric = batch
            .column_by_name("metric")
            .map(|m| m.as_string::<i32>().clone());
        (0..batch.num_rows())
            .map(|row| {
                let id = ids.value(row);
                let cut = *self.cutoffs.entry(id).or_insert_with(|| {
                    let mut pairs = map_row(labels, row);
                    if let Some(metric) = &metric
                        && !metric.is_null(row)
                    {
                        pairs.push(("__name__", metric.value(row)));
                    }
                    self.rules
                        .period_for(signal, &pairs)
                        .map(|p| cutoff(signal, self.now_ms, p))
                });
                Some(cut.is_some_and(|c| times.value(row) < c))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::limits::StreamRetention;

    fn rules(default: u64, streams: &[(&str, u32, u64)]) -> RetentionRules {
        let limits = Limits {
            retention_period: Duration::from_secs(default),
            retention_stream: streams
                .iter()
                .map(|(s, p, d)| StreamRetention {
                    selector: s.to_string(),
                    priority: *p,
                    period: Duration::from_secs(*d),
                })
                .collect(),
            ..Limits::default()
        };
        RetentionRules::compile(&limits).unwrap()
    }

    #[test]
    fn highest_priority_then_shortest_period_wins() {
        let r = rules(
            3600,
            &[
                (r#"{env="dev"}"#, 1, 60),
                (r#"{env="dev", app="api"}"#, 2, 600),
                (r#"{env=~"d.*"}"#, 1, 30),
            ],
        );
        let s = Signal::Logs;
        assert_eq!(
            r.period_for(s, &[("env", "dev")]),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            r.period_for(s, &[("app", "api"), ("env", "dev")]),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            r.period_for(s, &[("env", "prod")]),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            r.period_for(Signal::Spans, &[("env", "dev")]),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(r.longest(s), Some(Duration::from_secs(3600)));
        assert_eq!(r.shortest(s), Some(Duration::from_secs(30)));
        // A rule keeping forever makes whole-block expiry impossible.
        let forever = rules(3600, &[(r#"{env="prod"}"#, 1, 0)]);
        assert_eq!(forever.longest(s), None);
        assert_eq!(forever.period_for(s, &[("env", "prod")]), None);
        assert!(rules(0, &[]).keeps_everything());
    }

    #[test]
    fn bad_selectors_are_refused_with_the_rule() {
        let limits = Limits {
            retention_stream: vec![StreamRetention {
                selector: "{env=}".into(),
                priority: 1,
                period: Duration::from_secs(60),
            }],
            ..Limits::default()
        };
        let err = RetentionRules::compile(&limits).unwrap_err();
        assert!(
            err.contains("retention_stream[0]") && err.contains("{env=}"),
            "{err}"
        );
        let limits = Limits {
            retention_stream: vec![StreamRetention {
                selector: r#"{env="a"} |= "x""#.into(),
                priority: 1,
                period: Duration::from_secs(60),
            }],
            ..Limits::default()
        };
        let err = RetentionRules::compile(&limits).unwrap_err();
        assert!(err.contains("stream selector"), "{err}");
    }
}
