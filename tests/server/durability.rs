//! Durability of the write path with the real binary: `kill -9` during
//! ingest and flushes, a corrupt WAL tail, WAL segment removal after flush,
//! and the data-directory lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{Launch, Server, tempdir};

fn wal_segments(data: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(data.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_ingest_loses_no_acknowledged_row() {
    let dir = tempdir();
    let data = dir.path().join("data");
    // Frequent size-triggered flushes and small segments, so the kill can land
    // anywhere: mid-append, mid-flush, mid-segment-deletion.
    let config = r#"
        [ingester]
        flush_max_bytes = "64KiB"
        flush_check_interval = "50ms"
        wal_segment_bytes = "16KiB"
    "#;
    let mut server = Server::start_with(&data, config);
    let acknowledged: Arc<Mutex<Vec<i64>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..4i64 {
        let client = server.client().await;
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            for batch in 0i64.. {
                let ids: Vec<i64> = (0..20).map(|i| w * 1_000_000 + batch * 20 + i).collect();
                let values: Vec<String> = ids
                    .iter()
                    .map(|id| {
                        format!(
                            "(to_timestamp_millis({}), 'acked', map(['writer'], ['w{w}']), {id})",
                            1_700_000_000_000i64 + id
                        )
                    })
                    .collect();
                let sql = format!(
                    "INSERT INTO samples (timestamp, metric, labels, value) VALUES {}",
                    values.join(", ")
                );
                match client.execute(sql.as_str(), &[]).await {
                    Ok(20) => acknowledged.lock().unwrap().extend(ids),
                    Ok(n) => panic!("insert of 20 rows reported {n}"),
                    Err(_) => break, // the server was killed
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.kill9();
    for w in writers {
        w.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 200,
        "only {} rows were written",
        acknowledged.len()
    );

    let server = Server::start_with(&data, config);
    let client = server.client().await;
    let rows = client
        .query(
            "SELECT CAST(value AS BIGINT) FROM samples WHERE metric = 'acked'",
            &[],
        )
        .await
        .unwrap();
    let mut seen: HashMap<i64, usize> = HashMap::new();
    for r in &rows {
        *seen.entry(r.get::<_, i64>(0)).or_default() += 1;
    }
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|id| !seen.contains_key(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged rows lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let duplicated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "rows duplicated after replay: {:?}",
        &duplicated[..duplicated.len().min(5)]
    );
    let (_, status) = server.http_get("/debug/storage");
    assert!(status.contains("\"blocks\":"), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_wal_tail_is_truncated_with_a_warning() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let mut server = Server::start(&data);
    let client = server.client().await;
    for i in 0..5 {
        client
            .execute(
                "INSERT INTO logs (timestamp, labels, line) VALUES (now(), map(['app'], ['a']), $1)",
                &[&format!("line {i}")],
            )
            .await
            .unwrap();
    }
    server.kill9();
    // A torn write: a record header promising more bytes than follow, then garbage.
    let last = wal_segments(&data).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(&[0x40, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3]);
    std::fs::write(&last, bytes).unwrap();

    let server = Server::start(&data);
    assert!(
        server.stderr().contains("truncated the WAL tail"),
        "no warning:\n{}",
        server.stderr()
    );
    let client = server.client().await;
    let rows = client
        .query("SELECT count(*) FROM logs", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 5);
    client
        .execute(
            "INSERT INTO logs (timestamp, labels, line) VALUES (now(), map(['app'], ['a']), 'after')",
            &[],
        )
        .await
        .unwrap();
    let rows = client
        .query("SELECT count(*) FROM logs", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn flushed_wal_segments_are_deleted_and_data_survives_restart() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let config = "[ingester]\nwal_segment_bytes = \"1KiB\"\nflush_check_interval = \"1h\"\nflush_max_age = \"1h\"\n";
    let mut server = Server::start_with(&data, config);
    let client = server.client().await;
    for i in 0..20 {
        // A new series each time: its labels are written into the WAL once
        // per segment, so the records are large enough to rotate segments.
        client
            .execute(
                "INSERT INTO samples (timestamp, metric, labels, value) \
                 VALUES (now(), 'm', map(['pad'], [repeat('x', 600) || $2]), $1)",
                &[&(i as f64), &i.to_string()],
            )
            .await
            .unwrap();
    }
    assert!(wal_segments(&data).len() > 5, "segments rotate");
    server.flush();
    assert_eq!(
        wal_segments(&data).len(),
        1,
        "only the active segment is left"
    );
    server.stop();
    let server = Server::start_with(&data, config);
    let client = server.client().await;
    let rows = client
        .query("SELECT count(*), sum(value) FROM samples", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 20);
    assert_eq!(rows[0].get::<_, f64>(1), 190.0);
}

#[test]
fn a_second_server_on_the_same_data_dir_fails_clearly() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let _first = Server::start(&data);
    let second = Server::launch(Launch {
        data_dir: &data,
        config: crate::common::TEST_CONFIG,
        prefix: vec![],
        args: vec![],
    });
    let stderr = match second {
        Ok(_) => panic!("a second server started on a locked data dir"),
        Err(stderr) => stderr,
    };
    assert!(
        stderr.contains("locked by another o11ydb process"),
        "{stderr}"
    );
}
