//! Bounded resources with the real binary: a query over the memory limit
//! fails with SQLSTATE 53200 and the server keeps serving; a client that
//! drops its connection mid-query does not hurt anyone else; a full disk
//! makes writes fail clearly without losing what was acknowledged.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{Launch, Server, sqlstate, tempdir};

const FILL_LOGS: &str = "INSERT INTO logs (timestamp, labels, line) \
     SELECT to_timestamp_nanos(1767225600000000000 + value * 1000000), map(['app'], ['load']), \
            'request ' || CAST(value AS VARCHAR) || ' ' || repeat('x', 200) \
     FROM generate_series(1, 100000)";

/// Minutes of work in many short steps (each batch yields to the runtime), so
/// stopping it is prompt once it is asked to stop.
const LONG_QUERY: &str =
    "SELECT count(*) FROM generate_series(1, 100000000000) WHERE value % 7 = 3";

#[tokio::test(flavor = "multi_thread")]
async fn a_query_over_the_memory_limit_fails_with_53200_and_the_server_keeps_serving() {
    let dir = tempdir();
    let config = "[query]\nmemory_limit = \"8MiB\"\ntarget_partitions = 2\n";
    let server = Server::start_with(&dir.path().join("data"), config);
    let client = server.client().await;
    client.execute(FILL_LOGS, &[]).await.unwrap();
    server.flush();
    // array_agg must hold every line (~20 MiB) at once: it cannot spill.
    let e = client
        .query("SELECT array_agg(line) FROM logs", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "53200", "{e:?}");
    let msg = e.as_db_error().unwrap().message().to_lowercase();
    assert!(msg.contains("resources exhausted"), "{msg}");
    // A bounded query over the same data works right after.
    let rows = client
        .query("SELECT count(*) FROM logs", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 100_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_dropped_mid_query_leaves_the_server_serving() {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let setup = server.client().await;
    setup.execute(FILL_LOGS, &[]).await.unwrap();
    // A long query, abandoned by its client after a moment.
    let (client, connection) =
        tokio_postgres::connect(&server.conn_string(), tokio_postgres::NoTls)
            .await
            .unwrap();
    let conn_task = tokio::spawn(connection);
    let query = tokio::spawn(async move { client.query(LONG_QUERY, &[]).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    conn_task.abort();
    query.abort();
    let started = Instant::now();
    let other = server.client().await;
    let rows = other.query("SELECT count(*) FROM logs", &[]).await.unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 100_000);
    // The abandoned query would run for minutes on both cores if it were not stopped.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn statement_timeout_stops_a_long_query_with_57014() {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let client = server.client().await;
    client.execute(FILL_LOGS, &[]).await.unwrap();
    client
        .batch_execute("SET statement_timeout = '300ms'")
        .await
        .unwrap();
    let started = Instant::now();
    let e = client.query(LONG_QUERY, &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e), "57014", "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let rows = client
        .query("SELECT count(*) FROM logs", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 100_000);
}

/// Runs `args` inside the mount namespace of process `ns_pid`.
fn in_namespace(ns_pid: u32, args: &[&str]) -> std::process::Output {
    Command::new("nsenter")
        .args(["-t", &ns_pid.to_string(), "-m", "--"])
        .args(args)
        .output()
        .expect("nsenter")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_fails_writes_clearly_and_loses_nothing_acknowledged() {
    // A private mount namespace holding a 6 MiB tmpfs as the data directory.
    let probe = Command::new("unshare").args(["-m", "true"]).status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!(
            "SKIPPED a_full_disk_fails_writes_clearly: mount namespaces are not available here (unshare -m failed)"
        );
        return;
    }
    let dir = tempdir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut holder = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sleep", "600"])
        .spawn()
        .unwrap();
    let ns = holder.id();
    std::thread::sleep(Duration::from_millis(200));
    let out = in_namespace(
        ns,
        &[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "size=6m",
            "tmpfs",
            data.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Ballast an operator can delete to free space later.
    let ballast = data.join("ballast");
    let out = in_namespace(
        ns,
        &[
            "dd",
            "if=/dev/zero",
            &format!("of={}", ballast.display()),
            "bs=1M",
            "count=1",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = "[ingester]\nflush_max_age = \"1h\"\nflush_check_interval = \"1h\"\nwal_segment_bytes = \"256KiB\"\n";
    let launch = || {
        Server::launch(Launch {
            data_dir: &data,
            config,
            prefix: vec![
                "nsenter".into(),
                "-t".into(),
                ns.to_string(),
                "-m".into(),
                "--".into(),
            ],
            args: vec![],
        })
        .expect("server starts in the namespace")
    };
    let mut server = launch();
    let client = server.client().await;
    let mut acknowledged = 0i64;
    let mut disk_full = None;
    for batch in 0..10_000i64 {
        let sql = format!(
            "INSERT INTO logs (timestamp, labels, line) \
             SELECT to_timestamp_nanos(1767225600000000000 + value), map(['app'], ['fill']), \
                    'batch {batch} row ' || CAST(value AS VARCHAR) || repeat(' padding', 40) \
             FROM generate_series(1, 200)"
        );
        match client.execute(sql.as_str(), &[]).await {
            Ok(n) => acknowledged += n as i64,
            Err(e) => {
                disk_full = Some(e);
                break;
            }
        }
    }
    let e = disk_full.expect("the 6 MiB disk filled up");
    assert_eq!(sqlstate(&e), "53100", "{e:?}");
    let msg = e.as_db_error().unwrap().message().to_string();
    assert!(
        msg.contains("No space left on device") || msg.contains("WAL write failed"),
        "{msg}"
    );
    // Reads keep working while the disk is full.
    let rows = client
        .query("SELECT count(*) FROM logs", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), acknowledged);
    assert!(server.is_running());
    // Once space is freed, writes succeed again without a restart.
    let out = in_namespace(ns, &["rm", ballast.to_str().unwrap()]);
    assert!(out.status.success());
    let n = client
        .execute(
            "INSERT INTO logs (timestamp, labels, line) VALUES (now(), map(['app'], ['fill']), 'after')",
            &[],
        )
        .await
        .unwrap();
    acknowledged += n as i64;
    // After a crash and restart, everything acknowledged is there, once.
    drop(client);
    server.kill9();
    let server = launch();
    let client = server.client().await;
    let rows = client
        .query("SELECT count(*) FROM logs", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), acknowledged);
    drop(server);
    let _ = in_namespace(ns, &["umount", data.to_str().unwrap()]);
    let _ = holder.kill();
    let _ = holder.wait();
}
