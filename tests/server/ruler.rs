//! The ruler end to end: rule files on disk, the real binary evaluating
//! them every second over samples and logs pushed to it, and the real
//! Alertmanager (the Debian package) receiving the alerts.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use o11ydb::ingest::remote_write::encode_write_request;
use serde_json::{Value, json};

use crate::common::{Server, TEST_CONFIG, http_exchange, http_send, tempdir};

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether the Alertmanager binary is there; outside CI a missing one
/// skips the test with a message, in CI it fails it.
fn have_alertmanager() -> bool {
    if Path::new(ALERTMANAGER).exists() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{ALERTMANAGER} is missing: apt-get install -y prometheus-alertmanager");
    }
    eprintln!("SKIPPED: {ALERTMANAGER} is missing (apt-get install -y prometheus-alertmanager)");
    false
}

/// A real Alertmanager on its own port and storage directory.
struct Alertmanager {
    child: Child,
    port: u16,
}

impl Alertmanager {
    fn start(dir: &Path, port: u16) -> Alertmanager {
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: nowhere\n  group_wait: 1s\nreceivers:\n  - name: nowhere\n",
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("alertmanager.log")).unwrap();
        let child = Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start alertmanager");
        let am = Alertmanager { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && am.get("/-/ready").0 == 200
            {
                return am;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "alertmanager did not start: {}",
            std::fs::read_to_string(dir.join("alertmanager.log")).unwrap_or_default()
        );
    }

    fn get(&self, path: &str) -> (u16, String) {
        let addr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let a = http_exchange(addr, "GET", path, &[], b"");
        (a.status, a.body)
    }

    /// The alerts Alertmanager holds (active ones: resolved are left out).
    fn alerts(&self) -> Vec<Value> {
        let (status, body) = self.get("/api/v2/alerts");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 200 ms until it gives `Some`, or panics with `what`.
fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn write_samples(server: &Server, tenant: Option<&str>, series: &[(&[(&str, &str)], f64)]) {
    let ts = now_ms();
    let body: Vec<_> = series
        .iter()
        .map(|(labels, v)| {
            (
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                vec![(ts, *v)],
            )
        })
        .collect();
    let compressed = snap::raw::Encoder::new()
        .compress_vec(&encode_write_request(&body))
        .unwrap();
    let headers = crate::common::remote_write_headers(tenant);
    let (status, text) = http_send(server.http, "POST", "/api/v1/write", &headers, &compressed);
    assert_eq!(status, 204, "remote write failed: {text}");
}

fn get_json(server: &Server, path: &str, tenant: Option<&str>) -> Value {
    let mut headers = vec![];
    if let Some(t) = tenant {
        headers.push(("X-Scope-OrgID", t));
    }
    let a = http_exchange(server.http, "GET", path, &headers, b"");
    assert_eq!(a.status, 200, "{path}: {}", a.body);
    serde_json::from_str(&a.body).unwrap()
}

fn instant(server: &Server, query: &str, tenant: Option<&str>) -> Vec<Value> {
    let q: String = url::form_urlencoded::byte_serialize(query.as_bytes()).collect();
    let v = get_json(server, &format!("/api/v1/query?query={q}"), tenant);
    v["data"]["result"].as_array().unwrap().clone()
}

fn ruler_config(rules: &Path, loki_rules: Option<&Path>, extra: &str) -> String {
    let mut c = format!(
        "{TEST_CONFIG}\n[ruler]\nrule_path = {:?}\nevaluation_interval = \"1s\"\npoll_interval = \"1s\"\n",
        rules.display().to_string()
    );
    if let Some(l) = loki_rules {
        c.push_str(&format!("loki_rule_path = {:?}\n", l.display().to_string()));
    }
    c.push_str(extra);
    c
}

fn write_rules(dir: &Path, tenant: &str, file: &str, text: &str) -> PathBuf {
    let d = dir.join(tenant);
    std::fs::create_dir_all(&d).unwrap();
    let path = d.join(file);
    // Write then rename, so the poller never reads half a file.
    let tmp = d.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

const TEMPERATURE_RULES: &str = r#"
groups:
  - name: climate
    rules:
      - record: room:temperature:max
        expr: max by (room) (temperature)
        labels:
          source: ruler
      - alert: TooHot
        expr: temperature > 30
        for: 2s
        labels:
          severity: "{{ if gt $value 35.0 }}critical{{ else }}warning{{ end }}"
        annotations:
          summary: "{{ $labels.room }} is at {{ $value | humanize }} degrees"
          where: "cluster {{ $externalLabels.cluster }}"
"#;

fn alert_named<'a>(alerts: &'a [Value], name: &str) -> Option<&'a Value> {
    alerts.iter().find(|a| a["labels"]["alertname"] == name)
}

#[test]
fn alerts_reach_alertmanager_after_it_comes_up_and_resolve() {
    if !have_alertmanager() {
        return;
    }
    let dir = tempdir();
    let rules = dir.path().join("rules");
    write_rules(&rules, "anonymous", "climate.yaml", TEMPERATURE_RULES);
    let am_port = free_port();
    // resend_delay is long so the alert can only leave Alertmanager through
    // the resolved notification's endsAt, not by expiring.
    let config = ruler_config(
        &rules,
        None,
        &format!(
            "alertmanager_url = \"http://127.0.0.1:{am_port}\"\nresend_delay = \"1m\"\nexternal_url = \"http://o11ydb.example\"\nexternal_labels = {{ cluster = \"eu-1\" }}\n"
        ),
    );
    let server = Server::start_with(&dir.path().join("data"), &config);
    write_samples(
        &server,
        None,
        &[
            (&[("__name__", "temperature"), ("room", "kitchen")], 40.0),
            (&[("__name__", "temperature"), ("room", "cellar")], 12.0),
        ],
    );

    // Alertmanager is down: the alert fires in o11ydb and waits in the queue.
    let firing = wait_for(
        "the alert to fire in o11ydb",
        Duration::from_secs(30),
        || {
            let v = get_json(&server, "/api/v1/alerts", None);
            let alerts = v["data"]["alerts"].as_array().unwrap().clone();
            alert_named(&alerts, "TooHot")
                .filter(|a| a["state"] == "firing")
                .cloned()
        },
    );
    assert_eq!(firing["labels"]["room"], "kitchen");
    assert_eq!(firing["labels"]["severity"], "critical");
    assert_eq!(firing["annotations"]["summary"], "kitchen is at 40 degrees");
    assert_eq!(firing["value"], "4e+01");
    wait_for(
        "failed sends to be counted",
        Duration::from_secs(20),
        || {
            let (_, metrics) = server.http_get("/metrics");
            metrics
                .lines()
                .any(|l| {
                    l.starts_with("o11ydb_ruler_notifications_errors_total") && !l.ends_with(" 0")
                })
                .then_some(())
        },
    );

    // Alertmanager comes up: the queued alert arrives, templated.
    let am = Alertmanager::start(&dir.path().join("am"), am_port);
    let received = wait_for("the alert in Alertmanager", Duration::from_secs(60), || {
        alert_named(&am.alerts(), "TooHot").cloned()
    });
    assert_eq!(received["labels"]["room"], "kitchen");
    assert_eq!(received["labels"]["severity"], "critical");
    assert_eq!(received["labels"]["cluster"], "eu-1");
    assert_eq!(
        received["annotations"]["summary"],
        "kitchen is at 40 degrees"
    );
    assert_eq!(received["annotations"]["where"], "cluster eu-1");
    assert_eq!(received["status"]["state"], "active");
    let generator = received["generatorURL"].as_str().unwrap();
    assert!(
        generator.starts_with("http://o11ydb.example/graph?g0.expr=temperature"),
        "{generator}"
    );

    // The recording rule's output and ALERTS are queryable with PromQL.
    let recorded = wait_for("the recorded series", Duration::from_secs(20), || {
        let r = instant(&server, "room:temperature:max", None);
        (r.len() == 2).then_some(r)
    });
    let kitchen = recorded
        .iter()
        .find(|s| s["metric"]["room"] == "kitchen")
        .unwrap();
    assert_eq!(kitchen["metric"]["source"], "ruler");
    assert_eq!(kitchen["metric"]["__name__"], "room:temperature:max");
    assert_eq!(kitchen["value"][1], "40");
    let alerts_series = instant(&server, "ALERTS{alertstate=\"firing\"}", None);
    assert_eq!(alerts_series.len(), 1, "{alerts_series:?}");
    assert_eq!(alerts_series[0]["metric"]["alertname"], "TooHot");
    let for_state = instant(&server, "ALERTS_FOR_STATE", None);
    assert_eq!(for_state.len(), 1, "{for_state:?}");

    // The rules API: health, types, alerts.
    let rules_json = get_json(&server, "/api/v1/rules", None);
    let group = &rules_json["data"]["groups"][0];
    assert_eq!(group["name"], "climate");
    assert_eq!(group["interval"], 1.0);
    let rules_list = group["rules"].as_array().unwrap();
    assert_eq!(rules_list.len(), 2);
    assert_eq!(rules_list[0]["type"], "recording");
    assert_eq!(rules_list[0]["health"], "ok");
    assert_eq!(rules_list[1]["type"], "alerting");
    assert_eq!(rules_list[1]["state"], "firing");
    assert_eq!(rules_list[1]["duration"], 2.0);
    assert_eq!(rules_list[1]["alerts"].as_array().unwrap().len(), 1);
    let only_alerts = get_json(&server, "/api/v1/rules?type=alert", None);
    let r = only_alerts["data"]["groups"][0]["rules"]
        .as_array()
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["name"], "TooHot");
    let a = http_exchange(server.http, "GET", "/api/v1/rules?type=bogus", &[], b"");
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("alert or record"), "{}", a.body);
    // Another tenant has no rules.
    let other = get_json(&server, "/api/v1/rules", Some("someone-else"));
    assert_eq!(other["data"]["groups"], json!([]));

    // The condition stops: the alert resolves and leaves Alertmanager.
    write_samples(
        &server,
        None,
        &[(&[("__name__", "temperature"), ("room", "kitchen")], 20.0)],
    );
    wait_for(
        "the alert to resolve in Alertmanager",
        Duration::from_secs(60),
        || alert_named(&am.alerts(), "TooHot").is_none().then_some(()),
    );
    let v = get_json(&server, "/api/v1/alerts", None);
    assert_eq!(v["data"]["alerts"], json!([]));
    wait_for("ALERTS to go stale", Duration::from_secs(20), || {
        instant(&server, "ALERTS", None).is_empty().then_some(())
    });
    let (_, metrics) = server.http_get("/metrics");
    for name in [
        "o11ydb_ruler_evaluations_total{tenant=\"anonymous\"}",
        "o11ydb_ruler_notifications_sent_total",
        "o11ydb_ruler_notifications_queue_length",
        "o11ydb_ruler_group_last_duration_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
}

#[test]
fn loki_rules_evaluate_logql_over_pushed_logs() {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    let loki_rules = dir.path().join("loki-rules");
    std::fs::create_dir_all(&rules).unwrap();
    // The same expression text would also parse as PromQL: the directory decides.
    write_rules(
        &loki_rules,
        "team-a",
        "api.yml",
        r#"
groups:
  - name: api-errors
    rules:
      - record: app:log_lines:count1m
        expr: sum by (app) (count_over_time({app="api"}[1m]))
      - alert: ManyErrors
        expr: sum by (app) (count_over_time({app="api"} |= "error" [1m])) > 2
        annotations:
          summary: "{{ $labels.app }} logged {{ $value }} errors in a minute"
"#,
    );
    let config = ruler_config(&rules, Some(&loki_rules), "");
    let server = Server::start_with(&dir.path().join("data"), &config);
    let now_ns = now_ms() * 1_000_000;
    let values: Vec<Value> = (0..5)
        .map(|i| {
            json!([
                (now_ns - 1_000_000_000 + i).to_string(),
                if i < 3 {
                    "level=error boom"
                } else {
                    "level=info ok"
                }
            ])
        })
        .collect();
    let body = json!({"streams": [{"stream": {"app": "api"}, "values": values}]});
    let a = http_exchange(
        server.http,
        "POST",
        "/loki/api/v1/push",
        &[
            ("Content-Type", "application/json"),
            ("X-Scope-OrgID", "team-a"),
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!(a.status, 204, "{}", a.body);

    let alert = wait_for("the LogQL alert", Duration::from_secs(30), || {
        let v = get_json(&server, "/api/v1/alerts", Some("team-a"));
        let alerts = v["data"]["alerts"].as_array().unwrap().clone();
        alert_named(&alerts, "ManyErrors").cloned()
    });
    assert_eq!(alert["state"], "firing");
    assert_eq!(
        alert["annotations"]["summary"],
        "api logged 3 errors in a minute"
    );
    let recorded = wait_for("the LogQL recording rule", Duration::from_secs(20), || {
        let r = instant(&server, "app:log_lines:count1m", Some("team-a"));
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(recorded[0]["metric"]["app"], "api");
    assert_eq!(recorded[0]["value"][1], "5");
    let v = get_json(&server, "/loki/api/v1/rules", Some("team-a"));
    assert_eq!(v["data"]["groups"][0]["language"], "logql");
    // Tenants never mix: the default tenant sees neither rules nor results.
    assert!(instant(&server, "app:log_lines:count1m", None).is_empty());
    let v = get_json(&server, "/api/v1/alerts", None);
    assert_eq!(v["data"]["alerts"], json!([]));
}

#[test]
fn invalid_rule_files_keep_the_previous_rules_and_check_reports_lines() {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    let good =
        "groups:\n  - name: g\n    rules:\n      - record: up:count\n        expr: count(up)\n";
    let path = write_rules(&rules, "anonymous", "g.yaml", good);
    let config = ruler_config(&rules, None, "");
    let server = Server::start_with(&dir.path().join("data"), &config);
    let rule_names = || -> Vec<String> {
        let v = get_json(&server, "/api/v1/rules", None);
        v["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    wait_for("the first rules", Duration::from_secs(20), || {
        (rule_names() == ["up:count"]).then_some(())
    });
    let bad =
        "groups:\n  - name: g\n    rules:\n      - record: up:count2\n        expr: count(up\n";
    write_rules(&rules, "anonymous", "g.yaml", bad);
    wait_for("the load error in the log", Duration::from_secs(20), || {
        server
            .stderr()
            .contains("unclosed left parenthesis")
            .then_some(())
    });
    assert!(
        server.stderr().contains(&format!("{}:5:", path.display())),
        "{}",
        server.stderr()
    );
    assert_eq!(rule_names(), ["up:count"]);
    let fixed = good.replace("up:count", "up:count3");
    write_rules(&rules, "anonymous", "g.yaml", &fixed);
    wait_for("the fixed rules", Duration::from_secs(20), || {
        (rule_names() == ["up:count3"]).then_some(())
    });

    // `o11ydb check rules` reports every problem with file and line.
    let bad_path = dir.path().join("bad.yaml");
    std::fs::write(
        &bad_path,
        "groups:\n  - name: a\n    rules:\n      - record: x\n        expr: up\n        for: 1m\n      - alert: A\n        record: b\n        expr: up\n  - name: a\n    rules: []\n",
    )
    .unwrap();
    let good_path = dir.path().join("good.yaml");
    std::fs::write(&good_path, good).unwrap();
    let out = Command::new(crate::common::BIN)
        .args(["check", "rules"])
        .arg(&good_path)
        .arg(&bad_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("SUCCESS: 1 rules found"), "{text}");
    let bad_name = bad_path.display();
    assert!(
        text.contains(&format!(
            "{bad_name}:6:14: group \"a\", rule 1 (record \"x\"): invalid field 'for' in recording rule"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{bad_name}:7:9: group \"a\", rule 2 (record \"b\"): only one of 'record' and 'alert' must be set"
        )),
        "{text}"
    );
    let out = Command::new(crate::common::BIN)
        .args(["check", "rules", "--language", "logql"])
        .arg(&good_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "count(up) is not LogQL: {text}");
    assert!(
        text.contains(&format!("{}:5:", good_path.display())),
        "{text}"
    );
}

const RESTORE_RULES: &str = r#"
groups:
  - name: restore
    rules:
      - alert: StillBroken
        expr: vector(1)
        for: 10s
        labels:
          severity: page
"#;

/// The `StillBroken` alert: its state and `activeAt` (Unix ms).
fn still_broken(server: &Server) -> Option<(String, i64)> {
    let v = get_json(server, "/api/v1/alerts", None);
    let alerts = v["data"]["alerts"].as_array().unwrap().clone();
    let a = alert_named(&alerts, "StillBroken")?;
    let active_at = chrono::DateTime::parse_from_rfc3339(a["activeAt"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    Some((a["state"].as_str().unwrap().to_string(), active_at))
}

/// The time (ms) and value of the newest `ALERTS_FOR_STATE` sample at or
/// before `at_ms`.
fn for_state_sample(server: &Server, at_ms: i64) -> Option<(i64, f64)> {
    let at = format!("{:.3}", at_ms as f64 / 1000.0);
    let q = |expr: &str| -> Option<f64> {
        let e: String = url::form_urlencoded::byte_serialize(expr.as_bytes()).collect();
        let v = get_json(server, &format!("/api/v1/query?query={e}&time={at}"), None);
        let r = v["data"]["result"].as_array().unwrap().clone();
        assert!(r.len() <= 1, "{r:?}");
        r.first()
            .map(|s| s["value"][1].as_str().unwrap().parse().unwrap())
    };
    let t = q("timestamp(ALERTS_FOR_STATE{alertname=\"StillBroken\"})")?;
    let v = q("ALERTS_FOR_STATE{alertname=\"StillBroken\"}")?;
    Some(((t * 1000.0).round() as i64, v))
}

/// Starts the server over `data`, waits for `StillBroken` to be pending
/// for `pending_for`, stops the server; returns the alert's `activeAt`.
fn pending_then_stop(data: &Path, config: &str, pending_for: Duration) -> i64 {
    let mut server = Server::start_with(data, config);
    let (_, active_at) = wait_for("the alert to be pending", Duration::from_secs(30), || {
        still_broken(&server).filter(|(s, _)| s == "pending")
    });
    std::thread::sleep(Duration::from_millis(
        (active_at + pending_for.as_millis() as i64 - now_ms()).max(0) as u64,
    ));
    let (state, still_active_at) = still_broken(&server).unwrap();
    assert_eq!((state.as_str(), still_active_at), ("pending", active_at));
    server.stop();
    active_at
}

#[test]
fn alert_for_state_is_restored_after_a_restart() {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    write_rules(&rules, "anonymous", "restore.yaml", RESTORE_RULES);
    let config = ruler_config(&rules, None, "for_grace_period = \"2s\"\n");
    let data = dir.path().join("data");
    let old_active_at = pending_then_stop(&data, &config, Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(1));

    let restarted_at = now_ms();
    let server = Server::start_with(&data, &config);
    // The state as the ruler went down: the last sample before the restart.
    let (down_at, stored) = for_state_sample(&server, restarted_at).expect("ALERTS_FOR_STATE");
    assert_eq!(stored, (old_active_at / 1000) as f64);
    assert!(
        down_at - old_active_at >= 3_000,
        "{down_at} {old_active_at}"
    );
    // Restored: `activeAt` moves from the fresh evaluation after the restart
    // to the old one shifted by the outage (5s of the 10s `for` remained,
    // more than the 2s grace period).
    let (restored, seen_at) = wait_for("the restored activeAt", Duration::from_secs(30), || {
        still_broken(&server)
            .filter(|(_, at)| *at < restarted_at)
            .map(|(_, at)| (at, now_ms()))
    });
    let old_s = (old_active_at / 1000) * 1000;
    let down_s = (down_at / 1000) * 1000;
    assert!(
        restored >= old_s + (restarted_at - down_s) && restored <= old_s + (seen_at - down_s),
        "restored {restored}, old {old_active_at}, down at {down_at}, restarted {restarted_at}, seen {seen_at}"
    );
    assert!(server.stderr().contains("restored the alert's 'for' state"));
    // The restored time is what ALERTS_FOR_STATE holds from now on.
    wait_for(
        "ALERTS_FOR_STATE to be written again",
        Duration::from_secs(20),
        || {
            for_state_sample(&server, now_ms())
                .filter(|(t, _)| *t > restarted_at)
                .map(|(_, v)| assert_eq!(v, (restored / 1000) as f64))
        },
    );
    // It fires `for` after the restored activeAt, not after the restart.
    let fired_at = wait_for("the alert to fire", Duration::from_secs(30), || {
        still_broken(&server)
            .filter(|(s, _)| s == "firing")
            .map(|(_, at)| {
                assert_eq!(at, restored);
                now_ms()
            })
    });
    assert!(
        fired_at >= restored + 10_000 && fired_at < restored + 13_000,
        "fired at {fired_at}, restored activeAt {restored}"
    );
}

#[test]
fn alert_for_state_is_not_restored_after_an_outage_longer_than_the_tolerance() {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    write_rules(&rules, "anonymous", "restore.yaml", RESTORE_RULES);
    let config = ruler_config(
        &rules,
        None,
        "for_grace_period = \"2s\"\noutage_tolerance = \"2s\"\n",
    );
    let data = dir.path().join("data");
    pending_then_stop(&data, &config, Duration::from_secs(2));
    std::thread::sleep(Duration::from_secs(3));

    let restarted_at = now_ms();
    let server = Server::start_with(&data, &config);
    // Once the rule writes ALERTS_FOR_STATE again, restoration has run.
    let (_, written) = wait_for(
        "ALERTS_FOR_STATE to be written again",
        Duration::from_secs(20),
        || for_state_sample(&server, now_ms()).filter(|(t, _)| *t > restarted_at),
    );
    let (state, active_at) = still_broken(&server).unwrap();
    assert_eq!(state, "pending");
    assert!(active_at >= restarted_at, "{active_at} < {restarted_at}");
    assert_eq!(written, (active_at / 1000) as f64);
    assert!(!server.stderr().contains("restored the alert's 'for' state"));
}
