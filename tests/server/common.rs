//! Test harness: starts the real `o11ydb` binary on free ports with its own
//! data directory, and connects real clients (tokio-postgres, psql, HTTP).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_o11ydb");

/// Config for tests: small, fast flushes are triggered explicitly with `POST /flush`.
pub const TEST_CONFIG: &str = r#"
[ingester]
flush_max_age = "1h"
flush_check_interval = "1h"
[query]
memory_limit = "512MiB"
"#;

pub struct Server {
    child: Option<Child>,
    pub pg: SocketAddr,
    pub http: SocketAddr,
    /// Arrow Flight SQL (gRPC).
    pub flight: SocketAddr,
    pub stderr_log: PathBuf,
}

/// How to launch the binary (a wrapper such as `nsenter` may go in front).
pub struct Launch<'a> {
    pub data_dir: &'a Path,
    pub config: &'a str,
    pub prefix: Vec<String>,
    /// Flags after `serve ...`; with `--log-level`, `RUST_LOG` is not set.
    pub args: Vec<String>,
}

impl Server {
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, TEST_CONFIG)
    }

    pub fn start_with(data_dir: &Path, config: &str) -> Server {
        Self::launch(Launch {
            data_dir,
            config,
            prefix: vec![],
            args: vec![],
        })
        .expect("server starts")
    }

    /// Starts the server; returns its stderr if it exits before listening.
    pub fn launch(l: Launch<'_>) -> Result<Server, String> {
        std::fs::create_dir_all(l.data_dir).unwrap();
        let config_path = l.data_dir.with_extension("toml");
        std::fs::write(&config_path, l.config).unwrap();
        let stderr_log = l.data_dir.with_extension("log");
        let stderr = std::fs::File::create(&stderr_log).unwrap();
        let mut argv: Vec<String> = l.prefix.clone();
        argv.push(BIN.to_string());
        argv.extend(
            [
                "serve",
                "--config",
                config_path.to_str().unwrap(),
                "--data-dir",
                l.data_dir.to_str().unwrap(),
                "--pg-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
                "--otlp-grpc-listen",
                "127.0.0.1:0",
                "--flight-listen",
                "127.0.0.1:0",
            ]
            .map(String::from),
        );
        argv.extend(l.args.iter().cloned());
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]);
        if l.args.iter().any(|a| a == "--log-level") {
            command.env_remove("RUST_LOG");
        } else {
            command.env("RUST_LOG", "info");
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn o11ydb");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut pg, mut http, mut flight) = (None, None, None);
        while pg.is_none() || http.is_none() || flight.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let line = line.trim();
                    if let Some(rest) = line.strip_prefix("postgres:") {
                        pg = rest.split_whitespace().next().and_then(|a| a.parse().ok());
                    } else if let Some(rest) = line.strip_prefix("flight:") {
                        flight = rest.split_whitespace().next().and_then(|a| a.parse().ok());
                    } else if let Some(rest) = line.strip_prefix("http:") {
                        http = rest
                            .split_whitespace()
                            .next()
                            .and_then(|a| a.trim_start_matches("http://").parse().ok());
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(std::fs::read_to_string(&stderr_log).unwrap_or_default());
                }
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Ok(Server {
            child: Some(child),
            pg: pg.unwrap(),
            http: http.unwrap(),
            flight: flight.unwrap(),
            stderr_log,
        })
    }

    pub fn conn_string(&self) -> String {
        format!(
            "host={} port={} user=o11ydb dbname=o11ydb",
            self.pg.ip(),
            self.pg.port()
        )
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.conn_string(), tokio_postgres::NoTls)
                .await
                .expect("connect over pgwire");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    /// Runs SQL through the real `psql` binary.
    pub fn psql(&self, sql: &str) -> Output {
        Command::new("psql")
            .args([
                "-X",
                "-v",
                "ON_ERROR_STOP=1",
                "-v",
                "VERBOSITY=verbose",
                "-h",
                &self.pg.ip().to_string(),
                "-p",
                &self.pg.port().to_string(),
                "-U",
                "o11ydb",
                "-c",
                sql,
            ])
            .output()
            .expect("psql is installed (apt-get install postgresql-client)")
    }

    pub fn http_post(&self, path: &str) -> (u16, String) {
        http_request(self.http, "POST", path)
    }

    pub fn http_get(&self, path: &str) -> (u16, String) {
        http_request(self.http, "GET", path)
    }

    /// Waits until the compactor's run at startup (its schedule's first
    /// tick) has finished, so that it cannot compact or downsample blocks
    /// the test is still writing.
    pub fn wait_for_startup_compaction(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let (status, body) = self.http_get("/compactor/status");
            assert_eq!(status, 200, "compactor status: {body}");
            let report: serde_json::Value = serde_json::from_str(&body).unwrap();
            if !report["last"].is_null() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the compactor's startup run did not finish within 60 s: {report}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Flushes every head into blocks.
    pub fn flush(&self) {
        let (status, body) = self.http_post("/flush");
        assert_eq!(status, 204, "flush failed: {body}");
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if c.try_wait().unwrap().is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    /// The server's process id (for `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    /// The server's resident memory now (`VmRSS`), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS");
        kb * 1024
    }

    /// CPU time of the server so far, in clock ticks (user + system).
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // After the command name (which may hold spaces): state is field 3,
        // utime 14, stime 15.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A minimal HTTP/1.1 client over a real socket (no extra dependency).
pub fn http_request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    http_send(addr, method, path, &[], b"")
}

/// An HTTP/1.1 request with headers and a body; returns status and body text.
pub fn http_send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let r = http_exchange(addr, method, path, headers, body);
    (r.status, r.body)
}

/// An HTTP answer: status, headers (names lower-cased) and body — text
/// ([`HttpAnswer`]) or bytes ([`HttpRawAnswer`], protobuf answers).
pub struct Answer<B> {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: B,
}

pub type HttpAnswer = Answer<String>;
pub type HttpRawAnswer = Answer<Vec<u8>>;

impl<B> Answer<B> {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on its own connection, the whole answer read.
pub fn http_exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpAnswer {
    let raw = http_exchange_raw(addr, method, path, headers, body);
    HttpAnswer {
        status: raw.status,
        headers: raw.headers,
        body: String::from_utf8_lossy(&raw.body).to_string(),
    }
}

/// [`http_exchange`] keeping the body's bytes as they came.
pub fn http_exchange_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpRawAnswer {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect http");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (e.g. 413) before reading a large body.
    let _ = s.write_all(body);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(buf.len());
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let body = buf.get(split + 4..).unwrap_or_default().to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    HttpRawAnswer {
        status,
        headers,
        body,
    }
}

/// The SQLSTATE of a tokio-postgres error (panics if it is not a server error).
pub fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .unwrap_or_else(|| panic!("expected a server error, got {e}"))
        .code()
        .code()
        .to_string()
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("o11ydb-test")
        .tempdir()
        .unwrap()
}

/// Headers of a Prometheus remote-write 1.0 request (body snappy-compressed),
/// with `X-Scope-OrgID` when a tenant is given.
pub fn remote_write_headers(tenant: Option<&str>) -> Vec<(&str, &str)> {
    let mut headers = vec![
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "snappy"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ];
    if let Some(t) = tenant {
        headers.push(("X-Scope-OrgID", t));
    }
    headers
}

/// Sends spans as OTLP/HTTP JSON to `POST /v1/traces` (as `tenant` when
/// given) and checks that every span was accepted.
pub fn post_otlp_traces(server: &Server, body: &[u8], tenant: Option<&str>) {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(t) = tenant {
        headers.push(("X-Scope-OrgID", t));
    }
    let answer = http_exchange(server.http, "POST", "/v1/traces", &headers, body);
    assert_eq!(answer.status, 200, "OTLP export failed: {}", answer.body);
    assert!(
        !answer.body.contains("rejected"),
        "spans rejected: {}",
        answer.body
    );
}

/// The value of one series in the server's `/metrics` (e.g.
/// `o11ydb_x_total{tenant="a"}`, labels as rendered); 0 when absent.
pub fn metric_value(addr: SocketAddr, series: &str) -> f64 {
    let (status, text) = http_request(addr, "GET", "/metrics");
    assert_eq!(status, 200, "/metrics: {text}");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().expect("a metric value"))
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `binary` is on the PATH.
pub fn installed(binary: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {binary}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A helper process (Prometheus, Redis, ...) killed when dropped.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts Debian's `prometheus` with `config_yaml` over the TSDB in `tsdb`
/// (logging to `<dir>/prometheus.log`) and waits until it is ready.
pub fn start_prometheus(dir: &Path, config_yaml: &str, tsdb: &Path) -> (ChildGuard, SocketAddr) {
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, config_yaml).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log_path = dir.join("prometheus.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", tsdb.display()))
        .arg("--storage.tsdb.retention.time=30d")
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    let prometheus = ChildGuard(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = || {
        std::net::TcpStream::connect(addr).is_ok() && http_request(addr, "GET", "/-/ready").0 == 200
    };
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "Prometheus not ready within 60 s; its log:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    (prometheus, addr)
}

/// A test CA and a server certificate it signed for 127.0.0.1 and
/// localhost, made by openssl: (CA certificate, server certificate, key).
pub fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl is installed");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    let (ca, ca_key) = (path("ca.crt"), path("ca.key"));
    let mut args = vec!["req", "-x509", "-days", "2", "-subj", "/CN=o11ydb test CA"];
    args.extend(ec);
    args.extend(["-keyout", &ca_key, "-out", &ca]);
    openssl(&args);
    let (csr, cert, key, ext) = (
        path("server.csr"),
        path("server.crt"),
        path("server.key"),
        path("server.ext"),
    );
    let mut args = vec!["req", "-subj", "/CN=localhost"];
    args.extend(ec);
    args.extend(["-keyout", &key, "-out", &csr]);
    openssl(&args);
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &ext,
        "-out",
        &cert,
    ]);
    (ca.into(), cert.into(), key.into())
}

/// A query-string value, percent-encoded (`application/x-www-form-urlencoded`).
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
