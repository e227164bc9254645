//! The ruler: recording and alerting rules evaluated inside o11ydb, with
//! Prometheus' semantics (Mimir's and Loki's rulers have the same).
//!
//! What flows through: rule files under `[ruler] rule_path` (PromQL) and
//! `loki_rule_path` (LogQL), laid out `<path>/<tenant>/*.yaml|yml`, are
//! read and checked ([`rules`]) every `poll_interval`; each group runs as
//! its own task on its interval ([`eval`]): instant queries over the
//! tenant's tables, results and `ALERTS` series written back through the
//! distributor, alerts handed to the [`notifier`], which delivers them to
//! Alertmanager. A file that fails to load keeps its previous rules (the
//! problems are logged with file and line). The rules API
//! (`/api/v1/rules`, `/api/v1/alerts`) reads [`Ruler::snapshot`].

pub mod eval;
pub mod notifier;
pub mod restore;
pub mod rules;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Deserializer};
use tokio::sync::watch;

use crate::config::de_duration;
use crate::engine::Engine;
use eval::{EvalContext, GroupState};
use notifier::Notifier;
use rules::{Language, RuleGroup};

pub const LOAD_FAILURES: &str = "o11ydb_ruler_config_load_failures_total";
pub const GROUPS: &str = "o11ydb_ruler_groups";

/// `[ruler]`: on when `rule_path` or `loki_rule_path` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulerConfig {
    /// PromQL rule files: `<rule_path>/<tenant>/*.yaml|yml`.
    pub rule_path: Option<PathBuf>,
    /// LogQL rule files, same layout (Loki's ruler).
    pub loki_rule_path: Option<PathBuf>,
    /// Interval of groups that set none (Prometheus' `evaluation_interval`).
    #[serde(deserialize_with = "de_duration")]
    pub evaluation_interval: Duration,
    /// How often rule files are re-read.
    #[serde(deserialize_with = "de_duration")]
    pub poll_interval: Duration,
    /// Alertmanager base URLs (`http://host:9093`); one string may list
    /// several separated by commas, as Loki's `alertmanager_url`.
    #[serde(deserialize_with = "de_urls")]
    pub alertmanager_url: Vec<String>,
    /// Firing alerts are sent again this often (Prometheus' `--rules.alert.resend-delay`).
    #[serde(deserialize_with = "de_duration")]
    pub resend_delay: Duration,
    /// Labels added to every alert sent (`$externalLabels` in templates).
    pub external_labels: BTreeMap<String, String>,
    /// The URL users reach o11ydb at: alerts' `generatorURL` and
    /// `$externalURL` [default: http://<server.http_listen>].
    pub external_url: Option<String>,
    /// Most alerts waiting for one Alertmanager; past it the oldest are dropped.
    pub notification_queue_capacity: usize,
    /// Time limit of one request to an Alertmanager.
    #[serde(deserialize_with = "de_duration")]
    pub notification_timeout: Duration,
    /// At start, alerts' `for` state is restored from `ALERTS_FOR_STATE`
    /// only if the ruler was down less than this (Prometheus'
    /// `--rules.alert.for-outage-tolerance`).
    #[serde(deserialize_with = "de_duration")]
    pub outage_tolerance: Duration,
    /// Least time an alert restored after a restart still waits before
    /// firing; alerts whose `for` is shorter are not restored (Prometheus'
    /// `--rules.alert.for-grace-period`).
    #[serde(deserialize_with = "de_duration")]
    pub for_grace_period: Duration,
}

impl Default for RulerConfig {
    fn default() -> Self {
        RulerConfig {
            rule_path: None,
            loki_rule_path: None,
            evaluation_interval: Duration::from_secs(60),
            poll_interval: Duration::from_secs(60),
            alertmanager_url: Vec::new(),
            resend_delay: Duration::from_secs(60),
            external_labels: BTreeMap::new(),
            external_url: None,
            notification_queue_capacity: 10_000,
            notification_timeout: Duration::from_secs(10),
            outage_tolerance: Duration::from_secs(3600),
            for_grace_period: Duration::from_secs(600),
        }
    }
}

fn de_urls<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Urls {
        One(String),
        Many(Vec<String>),
    }
    let urls = match Urls::deserialize(d)? {
        Urls::One(s) => s.split(',').map(|u| u.trim().to_string()).collect(),
        Urls::Many(v) => v,
    };
    let urls: Vec<String> = urls.into_iter().filter(|u| !u.is_empty()).collect();
    for u in &urls {
        let parsed = url::Url::parse(u)
            .map_err(|e| serde::de::Error::custom(format!("alertmanager_url {u:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(serde::de::Error::custom(format!(
                "alertmanager_url {u:?}: the scheme must be http or https"
            )));
        }
    }
    Ok(urls)
}

impl RulerConfig {
    pub fn enabled(&self) -> bool {
        self.rule_path.is_some() || self.loki_rule_path.is_some()
    }

    pub fn validate(&self) -> Result<(), String> {
        for (name, d) in [
            ("evaluation_interval", self.evaluation_interval),
            ("poll_interval", self.poll_interval),
            ("resend_delay", self.resend_delay),
        ] {
            if d.is_zero() {
                return Err(format!("[ruler] {name} must be greater than 0"));
            }
        }
        if self.notification_queue_capacity == 0 {
            return Err("[ruler] notification_queue_capacity must be at least 1".into());
        }
        for k in self.external_labels.keys() {
            if !rules::valid_label_name(k) {
                return Err(format!("[ruler] external_labels: invalid label name {k:?}"));
            }
        }
        Ok(())
    }

    /// The rule directories with their languages.
    fn roots(&self) -> Vec<(&Path, Language)> {
        let mut out = Vec::new();
        if let Some(p) = &self.rule_path {
            out.push((p.as_path(), Language::Promql));
        }
        if let Some(p) = &self.loki_rule_path {
            out.push((p.as_path(), Language::Logql));
        }
        out
    }
}

/// A running group's identity: tenant, file and group name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    pub tenant: String,
    pub file: PathBuf,
    pub name: String,
}

struct RunningGroup {
    group: Arc<RuleGroup>,
    state: Arc<Mutex<GroupState>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// A group and its state as the API shows them.
pub struct GroupSnapshot {
    pub group: Arc<RuleGroup>,
    pub interval: Duration,
    pub state: Arc<Mutex<GroupState>>,
}

/// A loaded rule file: its text (to see changes) and groups.
struct LoadedFile {
    text: String,
    tenant: String,
    groups: Vec<RuleGroup>,
}

/// The running ruler.
pub struct Ruler {
    config: RulerConfig,
    engine: Weak<Engine>,
    external_url: String,
    notifier: Arc<Notifier>,
    groups: RwLock<BTreeMap<GroupKey, RunningGroup>>,
    files: Mutex<HashMap<PathBuf, LoadedFile>>,
    /// Set once the groups loaded at start exist; groups added later do
    /// not restore alert state (as Prometheus).
    started: AtomicBool,
}

impl Ruler {
    fn new(engine: &Arc<Engine>) -> Ruler {
        let config = engine.config().ruler.clone();
        let external_url = config
            .external_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", engine.config().server.http_listen));
        let metrics = engine.metrics().clone();
        eval::describe(&metrics);
        metrics.describe(
            LOAD_FAILURES,
            "counter",
            "Rule files that failed to load (their previous rules are kept).",
        );
        metrics.describe(GROUPS, "gauge", "Rule groups running, per tenant.");
        let notifier = Arc::new(Notifier::new(
            &config.alertmanager_url,
            config.notification_queue_capacity,
            metrics,
        ));
        Ruler {
            config,
            engine: Arc::downgrade(engine),
            external_url,
            notifier,
            groups: RwLock::new(BTreeMap::new()),
            files: Mutex::new(HashMap::new()),
            started: AtomicBool::new(false),
        }
    }

    /// Groups of `tenant`, in file then name order.
    pub fn snapshot(&self, tenant: &str) -> Vec<GroupSnapshot> {
        self.groups
            .read()
            .iter()
            .filter(|(k, _)| k.tenant == tenant)
            .map(|(_, g)| GroupSnapshot {
                group: g.group.clone(),
                interval: g.group.interval.unwrap_or(self.config.evaluation_interval),
                state: g.state.clone(),
            })
            .collect()
    }

    /// Re-reads every rule file; changed groups restart (keeping the
    /// alerts of rules that stayed the same), removed ones stop, new ones
    /// start. A file that fails to load keeps its previous groups.
    pub fn reload(&self, shutdown: &watch::Receiver<bool>) {
        let Some(engine) = self.engine.upgrade() else {
            return;
        };
        let mut files = self.files.lock();
        let mut seen = Vec::new();
        for (root, language) in self.config.roots() {
            for (tenant, path) in rule_files(root) {
                seen.push(path.clone());
                let text = match std::fs::read_to_string(&path) {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::warn!(file = %path.display(), "cannot read rule file: {e}");
                        continue;
                    }
                };
                if files.get(&path).is_some_and(|f| f.text == text) {
                    continue;
                }
                match rules::parse(&path, &text, language) {
                    Ok(groups) => {
                        tracing::info!(
                            file = %path.display(),
                            tenant,
                            groups = groups.len(),
                            "loaded rule file"
                        );
                        files.insert(
                            path.clone(),
                            LoadedFile {
                                text,
                                tenant,
                                groups,
                            },
                        );
                    }
                    Err(problems) => {
                        engine
                            .metrics()
                            .add(LOAD_FAILURES, &[("tenant", &tenant)], 1.0);
                        let kept = if files.contains_key(&path) {
                            "keeping its previous rules"
                        } else {
                            "no rules loaded from it"
                        };
                        for p in &problems {
                            tracing::error!("invalid rule file ({kept}): {p}");
                        }
                        // Remember the text so the same errors are not logged every poll.
                        let previous = files.remove(&path);
                        files.insert(
                            path.clone(),
                            LoadedFile {
                                text,
                                tenant,
                                groups: previous.map(|p| p.groups).unwrap_or_default(),
                            },
                        );
                    }
                }
            }
        }
        files.retain(|path, _| seen.contains(path));
        let mut wanted: BTreeMap<GroupKey, RuleGroup> = BTreeMap::new();
        for (path, f) in files.iter() {
            for g in &f.groups {
                wanted.insert(
                    GroupKey {
                        tenant: f.tenant.clone(),
                        file: path.clone(),
                        name: g.name.clone(),
                    },
                    g.clone(),
                );
            }
        }
        drop(files);
        self.reconcile(&engine, wanted, shutdown);
    }

    fn reconcile(
        &self,
        engine: &Arc<Engine>,
        wanted: BTreeMap<GroupKey, RuleGroup>,
        shutdown: &watch::Receiver<bool>,
    ) {
        let mut groups = self.groups.write();
        let restore = !self.started.swap(true, Ordering::SeqCst);
        let stale: Vec<GroupKey> = groups
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for key in stale {
            if let Some(g) = groups.remove(&key) {
                let _ = g.stop.send(true);
                tracing::info!(tenant = %key.tenant, group = %key.name, "rule group removed");
            }
        }
        for (key, group) in wanted {
            let previous = match groups.get(&key) {
                Some(running) if *running.group == group => continue,
                Some(_) => groups.remove(&key),
                None => None,
            };
            let mut state = GroupState::new(group.rules.len());
            if let Some(old) = &previous {
                let _ = old.stop.send(true);
                // Alerts of rules that did not change carry over (Prometheus' copyState).
                let old_state = old.state.lock();
                for (i, rule) in group.rules.iter().enumerate() {
                    if let Some(j) = old.group.rules.iter().position(|r| r == rule) {
                        state.rules[i] = old_state.rules[j].clone();
                    }
                }
            }
            for rule in &mut state.rules {
                rule.restored = !restore;
            }
            let group = Arc::new(group);
            let state = Arc::new(Mutex::new(state));
            let (stop, stopped) = watch::channel(false);
            let ctx = EvalContext {
                engine: engine.clone(),
                tenant: key.tenant.clone(),
                external_labels: self
                    .config
                    .external_labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                external_url: self.external_url.clone(),
                resend_delay: self.config.resend_delay,
                notifier: self.notifier.clone(),
            };
            let interval = group.interval.unwrap_or(self.config.evaluation_interval);
            let task = tokio::spawn(run_group(
                ctx,
                group.clone(),
                state.clone(),
                interval,
                restore,
                stopped,
                shutdown.clone(),
            ));
            groups.insert(
                key,
                RunningGroup {
                    group,
                    state,
                    stop,
                    task,
                },
            );
        }
        let mut per_tenant: BTreeMap<&str, usize> = BTreeMap::new();
        for k in groups.keys() {
            *per_tenant.entry(&k.tenant).or_default() += 1;
        }
        for (tenant, n) in per_tenant {
            engine
                .metrics()
                .set(GROUPS, &[("tenant", tenant)], n as f64);
        }
    }

    /// Stops every group task and waits for them.
    async fn stop_groups(&self) {
        let groups = std::mem::take(&mut *self.groups.write());
        for g in groups.values() {
            let _ = g.stop.send(true);
        }
        for (_, g) in groups {
            let _ = g.task.await;
        }
    }
}

/// `<root>/<tenant>/*.yaml|yml`, sorted.
fn rule_files(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(tenants) = std::fs::read_dir(root) else {
        tracing::warn!(path = %root.display(), "rule path cannot be read");
        return out;
    };
    for t in tenants.flatten() {
        if !t.file_type().is_ok_and(|f| f.is_dir()) {
            continue;
        }
        let tenant = t.file_name().to_string_lossy().to_string();
        if let Err(e) = crate::ingest::validate_tenant(&tenant) {
            tracing::warn!(dir = %t.path().display(), "not a tenant directory: {e}");
            continue;
        }
        let Ok(entries) = std::fs::read_dir(t.path()) else {
            continue;
        };
        for f in entries.flatten() {
            let path = f.path();
            let is_rules = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
            if is_rules && path.is_file() {
                out.push((tenant.clone(), path));
            }
        }
    }
    out.sort();
    out
}

/// The evaluation times of a group: multiples of `interval` shifted by an
/// offset from the group's identity, so many groups spread over the
/// interval instead of all running at once (as Prometheus does).
fn next_evaluation(now_ms: i64, interval_ms: i64, offset_ms: i64) -> i64 {
    let base = now_ms - now_ms.rem_euclid(interval_ms) + offset_ms;
    if base > now_ms {
        base
    } else {
        base + interval_ms
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn run_group(
    ctx: EvalContext,
    group: Arc<RuleGroup>,
    state: Arc<Mutex<GroupState>>,
    interval: Duration,
    mut restore: bool,
    mut stop: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    use std::hash::{Hash, Hasher};
    let interval_ms = (interval.as_millis() as i64).max(1);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (&ctx.tenant, &group.file, &group.name).hash(&mut hasher);
    let offset_ms = (hasher.finish() % interval_ms as u64) as i64;
    let mut next = next_evaluation(now_ms(), interval_ms, offset_ms);
    let group_label = format!("{};{}", group.file.display(), group.name);
    let mut evaluations = 0u64;
    loop {
        let wait = Duration::from_millis((next - now_ms()).max(0) as u64);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
            _ = shutdown.changed() => return,
        }
        eval::evaluate_group(&ctx, &group, &state, next).await;
        evaluations += 1;
        // Like Prometheus, restore after the second evaluation: by then
        // recording rules the alerts depend on have run again.
        if restore && evaluations == 2 {
            restore::restore_for_state(&ctx, &group, &state, now_ms()).await;
            restore = false;
        }
        let after = next_evaluation(now_ms(), interval_ms, offset_ms);
        let missed = (after - next) / interval_ms - 1;
        if missed > 0 {
            ctx.engine.metrics().add(
                eval::MISSED,
                &[("tenant", &ctx.tenant), ("rule_group", &group_label)],
                missed as f64,
            );
        }
        next = after;
    }
}

/// Starts the ruler when `[ruler]` names a rule path: loads the rules,
/// starts their groups, the Alertmanager senders and the file poller. The
/// returned task ends (after the groups and senders) when `shutdown` fires.
pub fn start(
    engine: &Arc<Engine>,
    shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let config = &engine.config().ruler;
    if !config.enabled() {
        return None;
    }
    let ruler = Arc::new(Ruler::new(engine));
    engine.set_ruler(ruler.clone());
    let senders = ruler
        .notifier
        .spawn(config.notification_timeout, shutdown.clone());
    let poll = config.poll_interval;
    Some(tokio::spawn(async move {
        let mut shutdown = shutdown;
        ruler.reload(&shutdown);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(poll) => ruler.reload(&shutdown),
                _ = shutdown.changed() => break,
            }
        }
        ruler.stop_groups().await;
        for s in senders {
            let _ = s.await;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluation_times_are_aligned_and_in_the_future() {
        assert_eq!(next_evaluation(10_500, 1_000, 200), 11_200);
        assert_eq!(next_evaluation(10_100, 1_000, 200), 10_200);
        assert_eq!(next_evaluation(10_200, 1_000, 200), 11_200);
    }

    #[test]
    fn config_reads_urls_and_durations() {
        let c: crate::Config = crate::Config::from_toml(
            r#"
            [ruler]
            rule_path = "/etc/o11ydb/rules"
            evaluation_interval = "15s"
            alertmanager_url = "http://a:9093, http://b:9093"
            external_labels = { cluster = "eu" }
            "#,
        )
        .unwrap();
        assert!(c.ruler.enabled());
        assert_eq!(c.ruler.evaluation_interval, Duration::from_secs(15));
        assert_eq!(c.ruler.alertmanager_url, ["http://a:9093", "http://b:9093"]);
        let e = crate::Config::from_toml("[ruler]\nalertmanager_url = \"ftp://x\"").unwrap_err();
        assert!(e.contains("http or https"), "{e}");
        assert!(!crate::Config::default().ruler.enabled());
    }
}
