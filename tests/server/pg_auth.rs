//! Postgres users against the real binary with tokio-postgres and psql:
//! SCRAM-SHA-256, md5 and cleartext passwords, the tenant chosen by the
//! database name and kept apart between users, TLS (SSLRequest with a
//! certificate made by `openssl` at test time; `tls_required`), CancelRequest
//! and `statement_timeout` (57014, the connection stays usable) and the
//! per-tenant fair queue (53400 when a tenant's queue is full; another
//! tenant gets the next slot).

use std::path::Path;
use std::pin::Pin;
use std::process::{Command, Output};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pgwire::tokio::tokio_rustls::{TlsConnector, client::TlsStream, rustls};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, Socket};

use crate::common::{BIN, Server, make_certificates, sqlstate, tempdir};

const LONG_QUERY: &str =
    "SELECT count(*) FROM generate_series(1, 100000000000) WHERE value % 7 = 3";

const INSERT_THREE: &str = "INSERT INTO logs (timestamp, labels, line) \
     SELECT to_timestamp_nanos(1767225600000000000 + value * 1000000), map(['app'], ['a']), 'x' \
     FROM generate_series(1, 3)";

/// alice: team-a (default) and team-b, clear password; bob: team-c, a
/// verifier from `o11ydb hash-password`.
fn users_config(extra: &str) -> String {
    format!(
        r#"
[ingester]
flush_max_age = "1h"
flush_check_interval = "1h"
[pgwire]
{extra}
[[users]]
name = "alice"
password = "alice-secret"
tenants = ["team-a", "team-b"]
[[users]]
name = "bob"
password_hash = "{}"
tenants = ["team-c"]
"#,
        hash_password("bob-secret")
    )
}

fn hash_password(password: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(hash.starts_with("SCRAM-SHA-256$4096:"), "{hash}");
    hash
}

fn conninfo(server: &Server, user: &str, password: &str, dbname: Option<&str>) -> String {
    let mut s = format!(
        "host={} port={} user={user}",
        server.pg.ip(),
        server.pg.port()
    );
    if !password.is_empty() {
        s.push_str(&format!(" password={password}"));
    }
    if let Some(d) = dbname {
        s.push_str(&format!(" dbname={d}"));
    }
    s
}

async fn connect(
    server: &Server,
    user: &str,
    password: &str,
    dbname: Option<&str>,
) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) =
        tokio_postgres::connect(&conninfo(server, user, password, dbname), NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn count_logs(client: &Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM logs", &[])
        .await
        .unwrap()
        .get(0)
}

fn db_error(e: &tokio_postgres::Error) -> (String, String, String) {
    let db = e
        .as_db_error()
        .unwrap_or_else(|| panic!("expected a server error, got {e:?}"));
    (
        db.severity().to_string(),
        db.code().code().to_string(),
        db.message().to_string(),
    )
}

/// `psql -c sql` with a libpq connection string and `PGPASSWORD`.
fn psql(conninfo: &str, password: &str, sql: &str) -> Output {
    Command::new("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            conninfo,
            "-c",
            sql,
        ])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql is installed (apt-get install postgresql-client)")
}

#[tokio::test(flavor = "multi_thread")]
async fn scram_logins_choose_the_tenant_by_database_and_keep_tenants_apart() {
    let dir = tempdir();
    let server = Server::start_with(&dir.path().join("data"), &users_config(""));

    // SCRAM-SHA-256 (the default with users); alice's first tenant.
    let alice = connect(&server, "alice", "alice-secret", None)
        .await
        .unwrap();
    alice.execute(INSERT_THREE, &[]).await.unwrap();
    assert_eq!(count_logs(&alice).await, 3);
    for db in ["alice", "postgres", "o11ydb", "team-a"] {
        let c = connect(&server, "alice", "alice-secret", Some(db))
            .await
            .unwrap();
        assert_eq!(count_logs(&c).await, 3, "database {db}");
    }
    // Her other tenant is another database; SET cannot move a session.
    let alice_b = connect(&server, "alice", "alice-secret", Some("team-b"))
        .await
        .unwrap();
    assert_eq!(count_logs(&alice_b).await, 0);
    let _ = alice_b.batch_execute("SET database = 'team-a'").await;
    let _ = alice_b.batch_execute("SET search_path = 'team-a'").await;
    assert_eq!(count_logs(&alice_b).await, 0);

    // bob logs in with a hashed password and sees only team-c.
    let bob = connect(&server, "bob", "bob-secret", None).await.unwrap();
    assert_eq!(count_logs(&bob).await, 0);
    bob.execute(INSERT_THREE, &[]).await.unwrap();
    bob.execute(INSERT_THREE, &[]).await.unwrap();
    assert_eq!(count_logs(&bob).await, 6);
    assert_eq!(count_logs(&alice).await, 3);

    // Another user's tenant is a database that does not exist.
    let e = connect(&server, "bob", "bob-secret", Some("team-a"))
        .await
        .err()
        .unwrap();
    let (severity, code, message) = db_error(&e);
    assert_eq!((severity.as_str(), code.as_str()), ("FATAL", "3D000"));
    assert_eq!(message, "database \"team-a\" does not exist");
    let hint = e.as_db_error().unwrap().hint().unwrap_or_default();
    assert!(hint.contains("team-c"), "{hint}");

    // Wrong password and unknown user: the same 28P01; the server keeps serving.
    for (user, password) in [("alice", "wrong"), ("mallory", "alice-secret")] {
        let e = connect(&server, user, password, None).await.err().unwrap();
        let (severity, code, message) = db_error(&e);
        assert_eq!((severity.as_str(), code.as_str()), ("FATAL", "28P01"));
        assert_eq!(
            message,
            format!("password authentication failed for user \"{user}\"")
        );
    }
    let again = connect(&server, "alice", "alice-secret", Some("team-a"))
        .await
        .unwrap();
    assert_eq!(count_logs(&again).await, 3);

    // psql, with its own SCRAM implementation.
    let out = psql(
        &conninfo(&server, "bob", "", Some("team-c")),
        "bob-secret",
        "SELECT count(*) FROM logs",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "6");
    let out = psql(&conninfo(&server, "bob", "", None), "nope", "SELECT 1");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("password authentication failed for user \"bob\""),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn md5_and_cleartext_passwords() {
    let dir = tempdir();
    // md5 needs clear passwords: bob's hash is refused at load, naming him.
    let config = users_config("auth_method = \"md5\"");
    let e = Server::launch(crate::common::Launch {
        data_dir: &dir.path().join("refused"),
        config: &config,
        prefix: vec![],
        args: vec![],
    })
    .err()
    .expect("md5 with a hashed password is refused");
    assert!(e.contains("md5") && e.contains("\"bob\""), "{e}");

    let md5_config = r#"
[pgwire]
auth_method = "md5"
[[users]]
name = "alice"
password = "alice-secret"
tenants = ["team-a"]
"#;
    let server = Server::start_with(&dir.path().join("md5"), md5_config);
    let c = connect(&server, "alice", "alice-secret", None)
        .await
        .unwrap();
    assert_eq!(count_logs(&c).await, 0);
    let e = connect(&server, "alice", "bad", None).await.err().unwrap();
    assert_eq!(sqlstate(&e), "28P01");
    let out = psql(
        &conninfo(&server, "alice", "", None),
        "alice-secret",
        "SELECT 42",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
    drop(server);

    let server = Server::start_with(
        &dir.path().join("password"),
        &users_config("auth_method = \"password\""),
    );
    for (user, password) in [("alice", "alice-secret"), ("bob", "bob-secret")] {
        let c = connect(&server, user, password, None).await.unwrap();
        assert_eq!(count_logs(&c).await, 0);
    }
    let e = connect(&server, "bob", "alice-secret", None)
        .await
        .err()
        .unwrap();
    assert_eq!(sqlstate(&e), "28P01");
}

/// tokio-postgres over rustls, trusting one certificate.
#[derive(Clone)]
struct RustlsTls(Arc<rustls::ClientConfig>);

impl RustlsTls {
    fn trusting(cert: &Path) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(cert).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        RustlsTls(Arc::new(config))
    }
}

struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
    server: ServerName<'static>,
}

struct RustlsStream(TlsStream<Socket>);

impl MakeTlsConnect<Socket> for RustlsTls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, Self::Error> {
        Ok(RustlsConnect {
            config: self.0.clone(),
            server: ServerName::try_from(domain.to_string())?,
        })
    }
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<RustlsStream>> + Send>>;

    fn connect(self, socket: Socket) -> Self::Future {
        Box::pin(async move {
            let stream = TlsConnector::from(self.config)
                .connect(self.server, socket)
                .await?;
            Ok(RustlsStream(stream))
        })
    }
}

impl tokio_postgres::tls::TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_sslmode_require_and_tls_required() {
    let dir = tempdir();
    let (ca, cert, key) = make_certificates(dir.path());
    let tls = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\ntls_required = true",
        cert.display(),
        key.display()
    );
    let server = Server::start_with(&dir.path().join("data"), &users_config(&tls));

    // tokio-postgres over rustls, verifying the certificate.
    let info = format!(
        "{} sslmode=require",
        conninfo(&server, "alice", "alice-secret", Some("team-b"))
    );
    let (client, connection) = tokio_postgres::connect(&info, RustlsTls::trusting(&ca))
        .await
        .expect("TLS connection");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client.execute(INSERT_THREE, &[]).await.unwrap();
    assert_eq!(count_logs(&client).await, 3);
    // A wrong password over TLS is still 28P01.
    let bad = format!("{} sslmode=require", conninfo(&server, "alice", "x", None));
    let e = tokio_postgres::connect(&bad, RustlsTls::trusting(&ca))
        .await
        .err()
        .unwrap();
    assert_eq!(sqlstate(&e), "28P01");

    // psql with sslmode=require, and verify-full against the test CA.
    for mode in [
        "sslmode=require".to_string(),
        format!("sslmode=verify-full sslrootcert={}", ca.display()),
    ] {
        let out = psql(
            &format!("{} {mode}", conninfo(&server, "bob", "", None)),
            "bob-secret",
            "SELECT 1",
        );
        assert!(out.status.success(), "{mode}: {out:?}");
    }

    // Without TLS: refused by tls_required, naming the option.
    let plain = format!(
        "{} sslmode=disable",
        conninfo(&server, "alice", "alice-secret", None)
    );
    let e = tokio_postgres::connect(&plain, NoTls).await.err().unwrap();
    let (severity, code, message) = db_error(&e);
    assert_eq!((severity.as_str(), code.as_str()), ("FATAL", "28000"));
    assert!(message.contains("pgwire.tls_required"), "{message}");
    let out = psql(
        &format!("{} sslmode=disable", conninfo(&server, "bob", "", None)),
        "bob-secret",
        "SELECT 1",
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("tls_required"),
        "{out:?}"
    );
    // The server still serves TLS clients.
    assert_eq!(count_logs(&client).await, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_settings_are_checked_at_load() {
    let dir = tempdir();
    for (pgwire, expected) in [
        ("tls_cert = \"/nonexistent.crt\"", "tls_key is not"),
        ("tls_required = true", "tls_required = true needs"),
        (
            "tls_cert = \"/nonexistent.crt\"\ntls_key = \"/nonexistent.key\"",
            "/nonexistent.crt",
        ),
    ] {
        let e = Server::launch(crate::common::Launch {
            data_dir: &dir.path().join("data"),
            config: &format!("[pgwire]\n{pgwire}\n"),
            prefix: vec![],
            args: vec![],
        })
        .err()
        .unwrap_or_else(|| panic!("{pgwire} is refused"));
        assert!(e.contains(expected), "{pgwire}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_request_stops_a_running_query_and_the_connection_stays_usable() {
    let dir = tempdir();
    let server = Server::start_with(&dir.path().join("data"), &users_config(""));
    let client = connect(&server, "alice", "alice-secret", None)
        .await
        .unwrap();
    let cancel = client.cancel_token();
    let started = Instant::now();
    let running = {
        let client_query = async { client.query(LONG_QUERY, &[]).await };
        let canceller = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            cancel.cancel_query(NoTls).await.unwrap();
        };
        let (result, ()) = tokio::join!(client_query, canceller);
        result
    };
    let e = running.unwrap_err();
    let (_, code, message) = db_error(&e);
    assert_eq!(code, "57014");
    assert_eq!(message, "canceling statement due to user request");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    // The same connection answers the next statement, and a cancel that
    // arrives while idle does not hit it.
    cancel.cancel_query(NoTls).await.unwrap();
    let n: i64 = client.query_one("SELECT 41 + 1", &[]).await.unwrap().get(0);
    assert_eq!(n, 42);

    // statement_timeout still stops a statement, with its own message.
    client
        .batch_execute("SET statement_timeout = '300ms'")
        .await
        .unwrap();
    let e = client.query(LONG_QUERY, &[]).await.unwrap_err();
    let (_, code, message) = db_error(&e);
    assert_eq!(code, "57014");
    assert_eq!(message, "canceling statement due to statement timeout");
    assert_eq!(count_logs(&client).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_take_slots_of_the_per_tenant_fair_queue() {
    let dir = tempdir();
    let config = format!(
        "{}\n[query_frontend]\nmax_concurrent = 1\nmax_outstanding_requests_per_tenant = 1\n",
        users_config("")
    );
    let server = Server::start_with(&dir.path().join("data"), &config);
    let a1 = connect(&server, "alice", "alice-secret", None)
        .await
        .unwrap();
    let a2 = connect(&server, "alice", "alice-secret", None)
        .await
        .unwrap();
    let a3 = connect(&server, "alice", "alice-secret", None)
        .await
        .unwrap();
    let b = connect(&server, "bob", "bob-secret", None).await.unwrap();
    let (cancel1, cancel2) = (a1.cancel_token(), a2.cancel_token());

    // a1 holds the only slot; a2 waits in team-a's queue (now full).
    let first = tokio::spawn(async move { a1.query(LONG_QUERY, &[]).await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = tokio::spawn(async move { a2.query(LONG_QUERY, &[]).await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A third query of team-a is refused at once, naming the limit.
    let e = a3.query("SELECT 1", &[]).await.unwrap_err();
    let (_, code, message) = db_error(&e);
    assert_eq!(code, "53400", "{message}");
    assert!(
        message.contains("max_outstanding_requests_per_tenant") && message.contains('1'),
        "{message}"
    );
    // team-c waits behind a1 only: when a1 ends, bob's turn comes before a2's.
    let bobs = tokio::spawn(async move {
        let started = Instant::now();
        let n: i64 = b.query_one("SELECT 7", &[]).await.unwrap().get(0);
        (n, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!bobs.is_finished(), "bob ran while a1 held the only slot");
    cancel1.cancel_query(NoTls).await.unwrap();
    let e = first.await.unwrap().unwrap_err();
    assert_eq!(sqlstate(&e), "57014");
    let (n, waited) = tokio::time::timeout(Duration::from_secs(10), bobs)
        .await
        .expect("bob's query runs while a2's long query waits")
        .unwrap();
    assert_eq!(n, 7);
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    // a2 got the slot after bob and is running now.
    assert!(!second.is_finished());
    cancel2.cancel_query(NoTls).await.unwrap();
    let e = second.await.unwrap().unwrap_err();
    assert_eq!(sqlstate(&e), "57014");
    // With the queue empty again, team-a is served.
    let n: i64 = a3.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
}
