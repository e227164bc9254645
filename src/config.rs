//! One typed configuration: defaults that run on a laptop, overridden by a
//! TOML file (`--config`), overridden by command-line flags. Durations are
//! written like `30s`, `15m`, `2h`; sizes like `512MiB`, `2GiB` or plain bytes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory for the WAL, the lock file and (by default) blocks.
    pub data_dir: PathBuf,
    /// Object store URL for blocks: `file:///path`, `s3://bucket/prefix`, `memory://`.
    /// Unset: `<data_dir>/blocks`.
    pub storage: Option<String>,
    pub server: ServerConfig,
    pub ingester: IngesterConfig,
    pub query: QueryConfig,
    /// Splitting, results cache and fair queueing of queries.
    pub query_frontend: crate::query::frontend::FrontendConfig,
    pub pgwire: PgwireConfig,
    /// The Arrow Flight SQL front end (`[flight]`).
    pub flight: FlightConfig,
    /// Whether a tenant must be named (`X-Scope-OrgID`); when off, requests
    /// without one belong to tenant `anonymous` (Loki's `auth_enabled`).
    pub auth_enabled: bool,
    /// Default ingest limits of every tenant.
    pub limits: crate::ingest::limits::Limits,
    /// Per-tenant limit overrides: `[overrides.<tenant>]` with any key of `[limits]`.
    pub overrides: std::collections::HashMap<String, toml::Table>,
    /// Span metrics and service graphs computed from ingested spans.
    pub metrics_generator: crate::ingest::metrics_generator::GeneratorConfig,
    /// Recording and alerting rules (on when a rule path is set).
    pub ruler: crate::ruler::RulerConfig,
    /// Block compaction, retention and deletion.
    pub compactor: crate::storage::compactor::CompactorConfig,
    /// Users of the Postgres wire and Flight SQL front ends (`[[users]]`).
    pub users: Vec<crate::server::users::UserConfig>,
    /// The file this configuration was read from; `[limits]` and
    /// `[overrides]` are re-read from it while running.
    #[serde(skip)]
    pub source_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            storage: None,
            server: ServerConfig::default(),
            ingester: IngesterConfig::default(),
            query: QueryConfig::default(),
            query_frontend: Default::default(),
            pgwire: PgwireConfig::default(),
            flight: FlightConfig::default(),
            auth_enabled: false,
            limits: crate::ingest::limits::Limits::default(),
            overrides: std::collections::HashMap::new(),
            metrics_generator: Default::default(),
            ruler: Default::default(),
            compactor: Default::default(),
            users: Vec::new(),
            source_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub pg_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub flight_listen: SocketAddr,
    pub otlp_grpc_listen: SocketAddr,
    /// Largest request body accepted over HTTP or gRPC (413 beyond).
    #[serde(deserialize_with = "de_size")]
    pub max_request_body_bytes: u64,
    /// Largest body after decompression (snappy, gzip).
    #[serde(deserialize_with = "de_size")]
    pub max_decompressed_body_bytes: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            pg_listen: "127.0.0.1:5432".parse().unwrap(),
            http_listen: "127.0.0.1:3100".parse().unwrap(),
            flight_listen: "127.0.0.1:50051".parse().unwrap(),
            otlp_grpc_listen: "127.0.0.1:4317".parse().unwrap(),
            max_request_body_bytes: 50 << 20,
            max_decompressed_body_bytes: 200 << 20,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngesterConfig {
    /// A head is flushed to a block once it holds this many bytes in memory.
    #[serde(deserialize_with = "de_size")]
    pub flush_max_bytes: u64,
    /// ... or once its oldest unflushed row is this old.
    #[serde(deserialize_with = "de_duration")]
    pub flush_max_age: Duration,
    /// How often heads are checked against the two limits above.
    #[serde(deserialize_with = "de_duration")]
    pub flush_check_interval: Duration,
    /// A new WAL segment is started past this size.
    #[serde(deserialize_with = "de_size")]
    pub wal_segment_bytes: u64,
    /// Pushes are refused with 503 (retry later) while heads hold more than this.
    #[serde(deserialize_with = "de_size")]
    pub max_head_bytes: u64,
}

impl Default for IngesterConfig {
    fn default() -> Self {
        IngesterConfig {
            flush_max_bytes: 256 << 20,
            flush_max_age: Duration::from_secs(15 * 60),
            flush_check_interval: Duration::from_secs(10),
            wal_segment_bytes: 64 << 20,
            max_head_bytes: 1 << 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// Memory all running queries may hold together; past it they spill or
    /// fail with "resources exhausted".
    #[serde(deserialize_with = "de_size")]
    pub memory_limit: u64,
    /// Memory for per-block indexes kept between queries (blooms, row
    /// indexes, label sets); past it the least recently used are dropped and
    /// read again when needed.
    #[serde(deserialize_with = "de_size")]
    pub index_cache_size: u64,
    /// Memory for decoded samples of samples blocks kept between PromQL
    /// queries (0 = none); past it the least recently used are dropped and
    /// decoded again when needed.
    #[serde(deserialize_with = "de_size")]
    pub samples_cache_size: u64,
    /// Parallelism of one query (0 = number of cores).
    pub target_partitions: usize,
    /// PromQL: how far back an instant selector looks for a sample
    /// (Prometheus' `--query.lookback-delta`; a query's `lookback_delta`
    /// parameter overrides it).
    #[serde(deserialize_with = "de_duration")]
    pub lookback_delta: Duration,
    /// PromQL: most samples one query may hold in memory at once
    /// (Prometheus' `--query.max-samples`).
    pub max_samples: usize,
    /// PromQL: a query running longer fails with `timeout` (Prometheus'
    /// `--query.timeout`; a query's `timeout` parameter can only shorten it).
    #[serde(deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// LogQL: most entries one log query may return (Loki's
    /// `max_entries_limit_per_query`).
    pub max_entries_limit_per_query: usize,
    /// LogQL: most series one metric query may return (Loki's `max_query_series`).
    pub max_query_series: usize,
    /// TraceQL: most candidate traces one query inspects.
    pub traceql_max_traces_inspected: usize,
    /// TraceQL: most traces one search may ask for (`limit`).
    pub traceql_max_search_limit: usize,
    /// TraceQL: most series one metrics query may return (Tempo's
    /// `max_response_series`).
    pub traceql_max_series: usize,
    /// Tempo API: most bytes of tag names or values one tag request
    /// answers; past it the sorted answer is cut (Tempo's
    /// `max_bytes_per_tag_values_query`).
    #[serde(deserialize_with = "de_size")]
    pub max_bytes_per_tag_values_query: u64,
}

impl Default for QueryConfig {
    fn default() -> Self {
        let promql = crate::query::promql::QueryOptions::default();
        let traceql = crate::query::traceql::TraceqlOptions::default();
        QueryConfig {
            memory_limit: 2 << 30,
            index_cache_size: crate::storage::index_cache::DEFAULT_INDEX_CACHE_BYTES,
            samples_cache_size: crate::storage::samples_cache::DEFAULT_SAMPLES_CACHE_BYTES,
            target_partitions: 0,
            lookback_delta: Duration::from_millis(promql.lookback_ms as u64),
            max_samples: promql.max_samples,
            timeout: promql.timeout,
            max_entries_limit_per_query: crate::query::logql::LogqlOptions::default().max_entries,
            max_query_series: crate::query::logql::LogqlOptions::default().max_series,
            traceql_max_traces_inspected: traceql.max_candidates,
            traceql_max_search_limit: traceql.max_search_limit,
            traceql_max_series: traceql.max_series,
            max_bytes_per_tag_values_query: 1_000_000,
        }
    }
}

impl QueryConfig {
    /// The PromQL engine settings these keys configure.
    pub fn promql_options(&self) -> crate::query::promql::QueryOptions {
        crate::query::promql::QueryOptions {
            lookback_ms: self.lookback_delta.as_millis() as i64,
            max_samples: self.max_samples,
            timeout: self.timeout,
            ..crate::query::promql::QueryOptions::default()
        }
    }

    /// The LogQL engine settings these keys configure (`max_samples` bounds
    /// the samples a metric query extracts from lines).
    pub fn logql_options(&self) -> crate::query::logql::LogqlOptions {
        crate::query::logql::LogqlOptions {
            max_samples: self.max_samples,
            max_entries: self.max_entries_limit_per_query,
            max_series: self.max_query_series,
            timeout: self.timeout,
        }
    }

    /// The TraceQL engine settings these keys configure.
    pub fn traceql_options(&self) -> crate::query::traceql::TraceqlOptions {
        crate::query::traceql::TraceqlOptions {
            max_candidates: self.traceql_max_traces_inspected,
            max_search_limit: self.traceql_max_search_limit,
            max_series: self.traceql_max_series,
            timeout: self.timeout,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PgwireConfig {
    /// Tenant of every Postgres session in `trust` mode.
    pub default_tenant: String,
    /// How clients prove who they are; unset: `trust` without `[[users]]`,
    /// `scram-sha-256` with them.
    pub auth_method: Option<PgAuthMethod>,
    /// PEM certificate chain and private key: with both, SSLRequest is
    /// answered with TLS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Refuse connections that did not negotiate TLS.
    pub tls_required: bool,
    /// Largest message a client may send after startup (a `Query`, `Parse`,
    /// `Bind` with its parameters); a longer one is refused with `54000`
    /// before its body is read. Postgres allows 1 GiB.
    #[serde(deserialize_with = "de_size")]
    pub max_message_bytes: u64,
}

impl Default for PgwireConfig {
    fn default() -> Self {
        PgwireConfig {
            default_tenant: "anonymous".into(),
            auth_method: None,
            tls_cert: None,
            tls_key: None,
            tls_required: false,
            max_message_bytes: 64 << 20,
        }
    }
}

/// `[flight]`: Arrow Flight SQL on `server.flight_listen`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlightConfig {
    /// PEM certificate chain and private key: with both, Flight SQL is
    /// served over TLS only (`grpc+tls://`).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// `[pgwire] auth_method`, as in `pg_hba.conf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum PgAuthMethod {
    /// Anyone, acting for `default_tenant`.
    #[serde(rename = "trust")]
    Trust,
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// Needs clear passwords in the config.
    #[serde(rename = "md5")]
    Md5,
    /// The password in clear text (use with TLS).
    #[serde(rename = "password")]
    Password,
}

impl PgAuthMethod {
    /// The name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            PgAuthMethod::Trust => "trust",
            PgAuthMethod::ScramSha256 => "scram-sha-256",
            PgAuthMethod::Md5 => "md5",
            PgAuthMethod::Password => "password",
        }
    }
}

impl Config {
    /// The pgwire authentication method in effect.
    pub fn pg_auth_method(&self) -> PgAuthMethod {
        match self.pgwire.auth_method {
            Some(m) => m,
            None if self.users.is_empty() => PgAuthMethod::Trust,
            None => PgAuthMethod::ScramSha256,
        }
    }

    /// Checks `[[users]]` and the `[pgwire]` authentication and TLS keys.
    pub fn validate_auth(&self) -> std::result::Result<(), String> {
        let users = crate::server::users::Users::from_config(&self.users)?;
        let method = self.pg_auth_method();
        if method == PgAuthMethod::Md5 {
            let hashed = users.without_clear_password();
            if !hashed.is_empty() {
                return Err(format!(
                    "pgwire.auth_method = \"md5\" needs clear passwords, but user {} has only password_hash; \
                     use \"scram-sha-256\" or give the user a password",
                    hashed
                        .iter()
                        .map(|u| format!("{u:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        if method != PgAuthMethod::Trust && users.is_empty() {
            return Err(format!(
                "pgwire.auth_method = {:?} needs at least one [[users]] entry",
                method.name()
            ));
        }
        let p = &self.pgwire;
        tls_pair("pgwire", &p.tls_cert, &p.tls_key)?;
        tls_pair("flight", &self.flight.tls_cert, &self.flight.tls_key)?;
        if p.tls_required && p.tls_cert.is_none() {
            return Err(
                "pgwire.tls_required = true needs pgwire.tls_cert and pgwire.tls_key".into(),
            );
        }
        Ok(())
    }
}

/// Checks that `<section>.tls_cert` and `tls_key` are set together.
fn tls_pair(
    section: &str,
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
) -> std::result::Result<(), String> {
    match (cert, key) {
        (Some(_), None) => Err(format!(
            "{section}.tls_cert is set but {section}.tls_key is not; set both or neither"
        )),
        (None, Some(_)) => Err(format!(
            "{section}.tls_key is set but {section}.tls_cert is not; set both or neither"
        )),
        _ => Ok(()),
    }
}

impl Config {
    /// The limits part of the configuration, validated.
    pub fn limits_config(&self) -> Result<crate::ingest::limits::LimitsConfig> {
        let config = crate::ingest::limits::LimitsConfig {
            defaults: self.limits.clone(),
            overrides: self.overrides.clone(),
        };
        config.validate().map_err(Error::Config)?;
        Ok(config)
    }

    /// Reads a TOML file; unknown keys are errors naming the key.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        let mut config = Self::from_toml(&text)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        config.source_file = Some(path.to_path_buf());
        Ok(config)
    }

    pub fn from_toml(text: &str) -> std::result::Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate_auth()?;
        Ok(config)
    }
}

/// Parses `30s`, `15m`, `2h`, `1d`, `250ms` or a bare number of seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (expected e.g. 30s, 15m, 2h)"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        other => return Err(format!("invalid duration unit {other:?} in {s:?}")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// Parses `512MiB`, `2GiB`, `100MB`, `64KiB` or a bare number of bytes.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (expected e.g. 512MiB)"))?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("invalid size unit {other:?} in {s:?}")),
    };
    Ok((n * mult) as u64)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrString {
    Num(u64),
    Str(String),
}

pub fn de_duration<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
    match NumOrString::deserialize(d)? {
        NumOrString::Num(n) => Ok(Duration::from_secs(n)),
        NumOrString::Str(s) => parse_duration(&s).map_err(serde::de::Error::custom),
    }
}

pub fn de_size<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    match NumOrString::deserialize(d)? {
        NumOrString::Num(n) => Ok(n),
        NumOrString::Str(s) => parse_size(&s).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TOML examples in the docs are real configurations.
    #[test]
    fn documented_examples_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for doc in [
            "README.md",
            "docs/ingest.md",
            "docs/traces.md",
            "docs/ruler.md",
            "docs/compactor.md",
            "docs/query-frontend.md",
            "docs/auth.md",
        ] {
            let text = std::fs::read_to_string(root.join(doc)).unwrap();
            let blocks: Vec<&str> = text
                .split("```toml\n")
                .skip(1)
                .map(|b| b.split("```").next().unwrap())
                .collect();
            assert!(!blocks.is_empty(), "{doc} has no TOML example");
            for block in blocks {
                let config = Config::from_toml(block).unwrap_or_else(|e| panic!("{doc}: {e}"));
                config
                    .limits_config()
                    .unwrap_or_else(|e| panic!("{doc}: {e}"));
                config
                    .compactor
                    .validate()
                    .unwrap_or_else(|e| panic!("{doc}: {e}"));
            }
        }
    }

    #[test]
    fn users_and_pgwire_auth_are_validated_at_load() {
        let alice = "[[users]]\nname = \"alice\"\npassword = \"s\"\ntenants = [\"team-a\"]\n";
        let c = Config::from_toml(alice).unwrap();
        assert_eq!(c.pg_auth_method(), PgAuthMethod::ScramSha256);
        assert_eq!(Config::default().pg_auth_method(), PgAuthMethod::Trust);
        let c = Config::from_toml(&format!("[pgwire]\nauth_method = \"md5\"\n{alice}")).unwrap();
        assert_eq!(c.pg_auth_method(), PgAuthMethod::Md5);
        let hashed = format!(
            "[pgwire]\nauth_method = \"md5\"\n[[users]]\nname = \"bob\"\npassword_hash = \"{}\"\ntenants = [\"t\"]\n",
            crate::server::users::hash_password("x")
        );
        let cases = [
            (hashed, "user \"bob\" has only password_hash"),
            (
                "[pgwire]\nauth_method = \"scram-sha-256\"\n".to_string(),
                "needs at least one [[users]] entry",
            ),
            (
                "[pgwire]\nauth_method = \"kerberos\"\n".to_string(),
                "unknown variant `kerberos`",
            ),
            (
                "[[users]]\nname = \"carol\"\npassword = \"s\"\ntenants = []\n".to_string(),
                "user \"carol\": tenants is empty",
            ),
            (
                "[[users]]\nname = \"dave\"\npassword_hash = \"SCRAM-SHA-256$x\"\ntenants = [\"t\"]\n"
                    .to_string(),
                "user \"dave\": password_hash",
            ),
            (
                "[pgwire]\ntls_key = \"k.pem\"\n".to_string(),
                "pgwire.tls_key is set but pgwire.tls_cert is not",
            ),
            (
                "[flight]\ntls_cert = \"c.pem\"\n".to_string(),
                "flight.tls_cert is set but flight.tls_key is not",
            ),
            (
                "[pgwire]\ntls_required = true\n".to_string(),
                "tls_required = true needs pgwire.tls_cert",
            ),
        ];
        for (toml, expected) in cases {
            let err = Config::from_toml(&toml).unwrap_err();
            assert!(err.contains(expected), "{toml}: {err}");
        }
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("7 parsecs").is_err());
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn toml_overrides_defaults_and_rejects_unknown_keys() {
        let c = Config::from_toml(
            r#"
            data_dir = "/var/lib/o11ydb"
            [ingester]
            flush_max_age = "30s"
            flush_max_bytes = "1MiB"
            [query]
            memory_limit = 1048576
            lookback_delta = "1m"
            max_samples = 1000
            timeout = "30s"
            "#,
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/o11ydb"));
        assert_eq!(c.ingester.flush_max_age, Duration::from_secs(30));
        assert_eq!(c.ingester.flush_max_bytes, 1 << 20);
        assert_eq!(c.query.memory_limit, 1 << 20);
        let promql = c.query.promql_options();
        assert_eq!(promql.lookback_ms, 60_000);
        assert_eq!(promql.max_samples, 1000);
        assert_eq!(promql.timeout, Duration::from_secs(30));
        let defaults = Config::default().query.promql_options();
        assert_eq!(defaults.lookback_ms, 5 * 60_000);
        assert_eq!(defaults.max_samples, 50_000_000);
        assert_eq!(defaults.timeout, Duration::from_secs(120));
        assert_eq!(c.server.pg_listen.port(), 5432);
        let err = Config::from_toml("[ingester]\nflush_max_agee = 1").unwrap_err();
        assert!(err.contains("flush_max_agee"), "{err}");
    }
}
