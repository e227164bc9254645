//! Self-monitoring: counters and gauges kept in process and served on
//! `GET /metrics` in the Prometheus text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;

use parking_lot::Mutex;

/// Metric name and sorted label pairs.
type Key = (&'static str, Vec<(&'static str, String)>);

#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<Key, f64>>,
    help: Mutex<BTreeMap<&'static str, (&'static str, &'static str)>>,
}

impl Metrics {
    /// Declares a metric's help text and type (`counter` or `gauge`).
    pub fn describe(&self, name: &'static str, kind: &'static str, help: &'static str) {
        self.help.lock().insert(name, (kind, help));
    }

    /// Adds `v` to a counter.
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], v: f64) {
        let key = (
            name,
            labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        );
        *self.counters.lock().entry(key).or_insert(0.0) += v;
    }

    /// Sets a gauge.
    pub fn set(&self, name: &'static str, labels: &[(&'static str, &str)], v: f64) {
        let key = (
            name,
            labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        );
        self.counters.lock().insert(key, v);
    }

    /// The current value of a series (0 if never set).
    pub fn value(&self, name: &'static str, labels: &[(&'static str, &str)]) -> f64 {
        let key = (
            name,
            labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        );
        self.counters.lock().get(&key).copied().unwrap_or(0.0)
    }

    /// Everything in the Prometheus text format.
    pub fn render(&self) -> String {
        let counters = self.counters.lock();
        let help = self.help.lock();
        let mut out = String::new();
        let mut last = "";
        for ((name, labels), v) in counters.iter() {
            if *name != last {
                if let Some((kind, text)) = help.get(name) {
                    let _ = writeln!(out, "# HELP {name} {text}");
                    let _ = writeln!(out, "# TYPE {name} {kind}");
                }
                last = name;
            }
            out.push_str(name);
            if !labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let escaped = v
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n");
                    let _ = write!(out, "{k}=\"{escaped}\"");
                }
                out.push('}');
            }
            let _ = writeln!(out, " {v}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let m = Metrics::default();
        m.describe("o11ydb_x_total", "counter", "Things.");
        m.add("o11ydb_x_total", &[("tenant", "a\"b")], 2.0);
        m.add("o11ydb_x_total", &[("tenant", "a\"b")], 1.0);
        m.set("o11ydb_up", &[], 1.0);
        let text = m.render();
        assert!(text.contains("# TYPE o11ydb_x_total counter"), "{text}");
        assert!(
            text.contains("o11ydb_x_total{tenant=\"a\\\"b\"} 3"),
            "{text}"
        );
        assert!(text.contains("o11ydb_up 1"), "{text}");
        assert_eq!(m.value("o11ydb_x_total", &[("tenant", "a\"b")]), 3.0);
    }
}
