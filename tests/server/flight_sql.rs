//! Arrow Flight SQL against the real binary with arrow-flight's
//! `FlightSqlServiceClient` over a tonic channel: handshake, queries over
//! inserted logs, a multi-batch result streamed, a prepared statement with a
//! parameter, metadata (GetTables with schemas, GetSqlInfo, catalogs,
//! schemas, table types), bad SQL, tenant isolation, and `[[users]]`:
//! passwords checked by the handshake, tenants limited to the user's;
//! cancellation (`CancelFlightInfo`, `CancelQuery`, a dropped `DoGet`)
//! giving the queue slot back, and TLS (`[flight] tls_cert`).

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Int64Type, Schema};
use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any,
    CommandGetDbSchemas, CommandGetTables, CommandPreparedStatementQuery, ProstMessageExt, SqlInfo,
};
use arrow_flight::{Action, FlightDescriptor, FlightInfo, IpcMessage};
use futures::TryStreamExt;
use prost::Message;
use tonic::transport::Channel;

use crate::common::{Launch, Server, make_certificates, metric_value, tempdir};

const INSERT_LOGS: &str = "INSERT INTO logs (timestamp, labels, line) \
     SELECT to_timestamp_nanos(1767225600000000000 + value * 1000000), \
            map(['app'], [CASE WHEN value % 2 = 0 THEN 'even' ELSE 'odd' END]), \
            'line ' || CAST(value AS VARCHAR) \
     FROM generate_series(1, 10)";

async fn connect(server: &Server) -> FlightSqlServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", server.flight))
        .unwrap()
        .connect()
        .await
        .expect("connect to the Flight SQL port");
    FlightSqlServiceClient::new(channel)
}

/// Every batch of every endpoint of `info`.
async fn fetch(client: &mut FlightSqlServiceClient<Channel>, info: FlightInfo) -> Vec<RecordBatch> {
    let mut batches = vec![];
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("endpoint has a ticket");
        let stream = client.do_get(ticket).await.expect("do_get");
        batches.extend(stream.try_collect::<Vec<_>>().await.expect("stream"));
    }
    batches
}

async fn query(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> Vec<RecordBatch> {
    let info = client
        .execute(sql.to_string(), None)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    fetch(client, info).await
}

fn status(e: FlightError) -> tonic::Status {
    match e {
        FlightError::Tonic(s) => *s,
        other => panic!("expected a gRPC status, got {other}"),
    }
}

fn strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column_by_name(column).expect(column);
            let c = arrow::compute::cast(c, &DataType::Utf8).unwrap();
            let c = c.as_any().downcast_ref::<StringArray>().unwrap().clone();
            (0..c.len())
                .map(move |i| c.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn flight_sql_queries_prepared_statements_and_metadata() {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let mut client = connect(&server).await;

    // Handshake: any password; the username is the tenant; a bearer token back.
    let payload = client.handshake("team-a", "any password").await.unwrap();
    let token = client.token().cloned().expect("a bearer token");
    assert_eq!(payload, token.as_bytes());
    assert!(token.len() >= 32, "{token}");

    // INSERT over Flight SQL answers the row count.
    let inserted = query(&mut client, INSERT_LOGS).await;
    assert_eq!(strings(&inserted, "count"), ["10"]);

    // The same through CommandStatementUpdate (DoPut) answers the count too.
    let updated = client
        .execute_update(
            "INSERT INTO logs (timestamp, labels, line) \
             VALUES (to_timestamp_nanos(1767225600000000000), map(['app'], ['other']), 'line 0')"
                .into(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(updated, 1);

    // A query over the inserted rows.
    let batches = query(
        &mut client,
        "SELECT line, labels['app'] AS app FROM logs WHERE labels['app'] = 'even' ORDER BY timestamp",
    )
    .await;
    assert_eq!(
        strings(&batches, "line"),
        ["line 2", "line 4", "line 6", "line 8", "line 10"]
    );

    // The FlightInfo's schema is the schema of the data.
    let info = client
        .execute("SELECT timestamp, line FROM logs".into(), None)
        .await
        .unwrap();
    let schema = Schema::try_from(info.clone()).unwrap();
    let got = fetch(&mut client, info).await;
    assert_eq!(got[0].schema().fields(), schema.fields());
    assert_eq!(got.iter().map(|b| b.num_rows()).sum::<usize>(), 11);

    // A large result comes in many batches, all rows there.
    let batches = query(&mut client, "SELECT value FROM generate_series(1, 200000)").await;
    assert!(batches.len() > 1, "{} batch(es)", batches.len());
    let (rows, sum) = batches.iter().fold((0usize, 0i64), |(n, s), b| {
        let c = b.column(0).as_primitive::<Int64Type>();
        (n + c.len(), s + c.iter().flatten().sum::<i64>())
    });
    assert_eq!(rows, 200_000);
    assert_eq!(sum, 200_000 * 200_001 / 2);

    // A prepared statement with a parameter, executed with two bindings.
    let mut prepared = client
        .prepare(
            "SELECT line FROM logs WHERE timestamp > to_timestamp_nanos(1767225600000000000 + $1 * 1000000) ORDER BY timestamp".into(),
            None,
        )
        .await
        .unwrap();
    let params = prepared.parameter_schema().unwrap().clone();
    assert_eq!(params.fields().len(), 1);
    assert_eq!(params.field(0).name(), "$1");
    assert_eq!(prepared.dataset_schema().unwrap().field(0).name(), "line");
    for (after, expected) in [
        (7i64, vec!["line 8", "line 9", "line 10"]),
        (9, vec!["line 10"]),
    ] {
        let values = RecordBatch::try_from_iter([(
            "$1",
            std::sync::Arc::new(Int64Array::from(vec![after])) as _,
        )])
        .unwrap();
        prepared.set_parameters(values).unwrap();
        let info = prepared.execute().await.unwrap();
        let batches = fetch(&mut client, info).await;
        assert_eq!(strings(&batches, "line"), expected);
    }
    prepared.close().await.unwrap();

    // GetTables with schemas: the logs table and its columns.
    let info = client
        .get_tables(CommandGetTables {
            table_name_filter_pattern: Some("log_".into()),
            include_schema: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let tables = fetch(&mut client, info).await;
    assert_eq!(strings(&tables, "table_name"), ["logs"]);
    assert_eq!(strings(&tables, "table_type"), ["TABLE"]);
    let ipc = tables[0]
        .column_by_name("table_schema")
        .unwrap()
        .as_binary::<i32>()
        .value(0)
        .to_vec();
    let logs_schema = Schema::try_from(IpcMessage(ipc.into())).unwrap();
    for column in ["timestamp", "labels", "line"] {
        assert!(
            logs_schema.field_with_name(column).is_ok(),
            "{column} missing from {logs_schema:?}"
        );
    }
    // A pattern that matches nothing gives no rows.
    let info = client
        .get_tables(CommandGetTables {
            table_name_filter_pattern: Some("nope%".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        fetch(&mut client, info)
            .await
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        0
    );

    // Catalogs, schemas, table types.
    let info = client.get_catalogs().await.unwrap();
    let catalogs = strings(&fetch(&mut client, info).await, "catalog_name");
    assert!(!catalogs.is_empty());
    let info = client
        .get_db_schemas(CommandGetDbSchemas {
            catalog: Some(catalogs[0].clone()),
            db_schema_filter_pattern: Some("pub%".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        strings(&fetch(&mut client, info).await, "db_schema_name"),
        ["public"]
    );
    let info = client.get_table_types().await.unwrap();
    let types = strings(&fetch(&mut client, info).await, "table_type");
    assert!(types.contains(&"TABLE".to_string()), "{types:?}");

    // GetSqlInfo: the server's name and that it is not read-only.
    let info = client
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerReadOnly,
        ])
        .await
        .unwrap();
    let infos = fetch(&mut client, info).await;
    let rows: usize = infos.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 2);
    let value = infos[0].column_by_name("value").unwrap().as_union();
    let names = infos[0].column_by_name("info_name").unwrap();
    let names = names.as_primitive::<arrow::datatypes::UInt32Type>();
    for row in 0..infos[0].num_rows() {
        let v = value.value(row);
        if names.value(row) == SqlInfo::FlightSqlServerName as u32 {
            assert_eq!(v.as_string::<i32>().value(0), "o11ydb");
        } else {
            assert!(!v.as_boolean().value(0), "read-only is false");
        }
    }

    // Bad SQL: INVALID_ARGUMENT with DataFusion's message; the server keeps serving.
    let e = status(
        client
            .execute("SELECT line FROM no_such_table".into(), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("no_such_table"), "{}", e.message());
    let e = status(client.execute("SELEC 1".into(), None).await.unwrap_err());
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("SELEC"), "{}", e.message());
    let e = status(
        client
            .execute("CREATE TABLE t (a INT)".into(), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("not supported"), "{}", e.message());
    // A statement that fails while running is an error on the stream.
    let info = client
        .execute("SELECT CAST(line AS INT) FROM logs".into(), None)
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let err = client
        .do_get(ticket)
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert_eq!(status(err).code(), tonic::Code::InvalidArgument);
    let batches = query(&mut client, "SELECT count(*) AS n FROM logs").await;
    assert_eq!(strings(&batches, "n"), ["11"]);

    // A forged token is refused.
    client.set_token("not-a-token".into());
    let e = status(client.execute("SELECT 1".into(), None).await.unwrap_err());
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn flight_sql_tenants_are_isolated() {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));

    // Tenant from x-scope-orgid, without a handshake.
    let mut a = connect(&server).await;
    a.set_header("x-scope-orgid", "tenant-a");
    query(&mut a, INSERT_LOGS).await;
    // The handshake's username names the tenant.
    let mut a2 = connect(&server).await;
    a2.handshake("tenant-a", "").await.unwrap();
    let rows = query(&mut a2, "SELECT count(*) AS n FROM logs").await;
    assert_eq!(strings(&rows, "n"), ["10"]);

    // Another tenant sees nothing, and neither does the default tenant.
    let mut b = connect(&server).await;
    b.set_header("x-scope-orgid", "tenant-b");
    let rows = query(&mut b, "SELECT count(*) AS n FROM logs").await;
    assert_eq!(strings(&rows, "n"), ["0"]);
    let mut anonymous = connect(&server).await;
    let rows = query(&mut anonymous, "SELECT count(*) AS n FROM logs").await;
    assert_eq!(strings(&rows, "n"), ["0"]);

    // A prepared statement's handle is only usable by its tenant.
    let command = CommandPreparedStatementQuery {
        prepared_statement_handle: prepared_statement_handle(&mut a, "SELECT line FROM logs")
            .await
            .into(),
    };
    let as_tenant = |tenant: &'static str| {
        let mut request =
            tonic::Request::new(FlightDescriptor::new_cmd(command.as_any().encode_to_vec()));
        request
            .metadata_mut()
            .insert("x-scope-orgid", tenant.parse().unwrap());
        request
    };
    let e = b
        .inner_mut()
        .get_flight_info(as_tenant("tenant-b"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    let info = a
        .inner_mut()
        .get_flight_info(as_tenant("tenant-a"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        fetch(&mut a, info)
            .await
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        10
    );

    // An invalid tenant id is refused with the reason.
    let mut bad = connect(&server).await;
    bad.set_header("x-scope-orgid", "..");
    let e = status(bad.execute("SELECT 1".into(), None).await.unwrap_err());
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("X-Scope-OrgID"), "{}", e.message());
}

/// `DoPut` bulk ingest: Arrow batches into `logs` through the distributor
/// (columns by name, cast, the rest defaulted), queryable at once and in
/// the caller's tenant only; a batch for an unknown table or with an unknown
/// column is refused with a message naming it and nothing is written.
#[tokio::test(flavor = "multi_thread")]
async fn flight_sql_bulk_ingest_goes_through_the_distributor() {
    use arrow::array::{MapBuilder, StringBuilder, TimestampNanosecondArray};
    use arrow_flight::sql::CommandStatementIngest;
    use std::sync::Arc;

    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let mut client = connect(&server).await;
    let logs_batch = |n: usize, extra: bool| {
        let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        for _ in 0..n {
            labels.keys().append_value("app");
            labels.values().append_value("bulk");
            labels.append(true).unwrap();
        }
        let mut fields = vec![
            arrow::datatypes::Field::new(
                "timestamp",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, None),
                false,
            ),
            arrow::datatypes::Field::new("labels", labels.finish().data_type().clone(), false),
            arrow::datatypes::Field::new("line", DataType::Utf8, false),
        ];
        let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        for _ in 0..n {
            labels.keys().append_value("app");
            labels.values().append_value("bulk");
            labels.append(true).unwrap();
        }
        let mut columns: Vec<Arc<dyn Array>> = vec![
            Arc::new(TimestampNanosecondArray::from_iter_values(
                (0..n as i64).map(|i| 1_767_225_600_000_000_000 + i * 1_000_000),
            )),
            Arc::new(labels.finish()),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("bulk line {i}")),
            )),
        ];
        if extra {
            fields.push(arrow::datatypes::Field::new("bogus", DataType::Utf8, true));
            columns.push(Arc::new(StringArray::from(vec![Some("x"); n])));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    };
    let command = |table: &str| CommandStatementIngest {
        table: table.to_string(),
        ..Default::default()
    };
    let batches = vec![Ok(logs_batch(1000, false)), Ok(logs_batch(500, false))];
    let rows = client
        .execute_ingest(command("logs"), futures::stream::iter(batches))
        .await
        .expect("ingest");
    assert_eq!(rows, 1500);
    let count = query(
        &mut client,
        "SELECT count(*) AS n FROM logs WHERE labels['app'] = 'bulk'",
    )
    .await;
    assert_eq!(strings(&count, "n"), ["1500"]);

    // Bad input: an unknown table, an unknown column.
    let e = client
        .execute_ingest(
            command("metrics"),
            futures::stream::iter(vec![Ok(logs_batch(1, false))]),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("the tables are logs, samples and spans"),
        "{e}"
    );
    let e = client
        .execute_ingest(
            command("logs"),
            futures::stream::iter(vec![Ok(logs_batch(3, true))]),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("bogus"), "{e}");
    let count = query(&mut client, "SELECT count(*) AS n FROM logs").await;
    assert_eq!(
        strings(&count, "n"),
        ["1500"],
        "nothing of the refused batches was written"
    );

    // Another tenant sees none of it.
    let mut other = connect(&server).await;
    other.set_header("x-scope-orgid", "other");
    let count = query(&mut other, "SELECT count(*) AS n FROM logs").await;
    assert_eq!(strings(&count, "n"), ["0"]);
}

/// A handshake with Basic credentials, answering the server's status.
async fn raw_handshake(
    client: &mut FlightSqlServiceClient<Channel>,
    user: &str,
    password: &str,
    tenant: Option<&str>,
) -> Result<(), tonic::Status> {
    use base64::Engine as _;
    let hello = arrow_flight::HandshakeRequest {
        protocol_version: 0,
        payload: Default::default(),
    };
    let mut request = tonic::Request::new(futures::stream::iter(vec![hello]));
    let basic = base64::prelude::BASE64_STANDARD.encode(format!("{user}:{password}"));
    request
        .metadata_mut()
        .insert("authorization", format!("Basic {basic}").parse().unwrap());
    if let Some(tenant) = tenant {
        request
            .metadata_mut()
            .insert("x-scope-orgid", tenant.parse().unwrap());
    }
    client.inner_mut().handshake(request).await.map(|_| ())
}

/// With `[[users]]`, the handshake checks the password (clear or SCRAM
/// verifier) and the tenant must be one of the user's; calls need its token.
#[tokio::test(flavor = "multi_thread")]
async fn flight_sql_users_and_passwords() {
    let dir = tempdir();
    // The verifier of "bob-secret" (salt "saltsaltsaltsalt", 4096 rounds), as
    // Postgres stores it.
    let config = r#"
[[users]]
name = "alice"
password = "alice-secret"
tenants = ["team-a", "team-b"]
[[users]]
name = "bob"
password_hash = "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$B5gJQGxrlqgeml78oC/7eEBuqOtEsKJTAk/7TTFwBcw=:B+wO3iQEkjmf62KKc5eV9nPBSj2cxrrRoJ3he62Uay8="
tenants = ["team-c"]
"#;
    let server = Server::start_with(&dir.path().join("data"), config);

    let mut alice = connect(&server).await;
    alice.handshake("alice", "alice-secret").await.unwrap();
    query(&mut alice, INSERT_LOGS).await;
    let rows = query(&mut alice, "SELECT count(*) AS n FROM logs").await;
    assert_eq!(strings(&rows, "n"), ["10"]);

    // Her other tenant through x-scope-orgid; one that is not hers is refused.
    let mut alice_b = connect(&server).await;
    alice_b.set_header("x-scope-orgid", "team-b");
    alice_b.handshake("alice", "alice-secret").await.unwrap();
    let rows = query(&mut alice_b, "SELECT count(*) AS n FROM logs").await;
    assert_eq!(strings(&rows, "n"), ["0"]);
    let mut alice_c = connect(&server).await;
    let e = raw_handshake(&mut alice_c, "alice", "alice-secret", Some("team-c"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("team-a, team-b"), "{}", e.message());

    // bob's hashed password works; he sees only team-c.
    let mut bob = connect(&server).await;
    bob.handshake("bob", "bob-secret").await.unwrap();
    let rows = query(&mut bob, "SELECT count(*) AS n FROM logs").await;
    assert_eq!(strings(&rows, "n"), ["0"]);

    // Wrong passwords and unknown users are UNAUTHENTICATED.
    for (user, password) in [("alice", "wrong"), ("bob", "alice-secret"), ("eve", "x")] {
        let mut c = connect(&server).await;
        let e = raw_handshake(&mut c, user, password, None)
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{user}: {e:?}");
        assert!(c.handshake(user, password).await.is_err());
    }
    // So are calls without a token, even naming a tenant.
    let mut anonymous = connect(&server).await;
    anonymous.set_header("x-scope-orgid", "team-a");
    let e = status(
        anonymous
            .execute("SELECT 1".into(), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    // The server keeps serving the logged-in client.
    let rows = query(&mut alice, "SELECT count(*) AS n FROM logs").await;
    assert_eq!(strings(&rows, "n"), ["10"]);
}

/// Minutes of work in many short steps on both cores, answering one row.
const LONG_QUERY: &str =
    "SELECT count(*) FROM generate_series(1, 100000000000) WHERE value % 7 = 3";

/// One slot in the fair queue, so that a statement that kept its slot would
/// block every later one.
const ONE_SLOT: &str = r#"
[ingester]
flush_max_age = "1h"
flush_check_interval = "1h"
[query_frontend]
max_concurrent = 1
"#;

const RUNNING_QUERIES: &str = "o11ydb_query_scheduler_running_queries";

/// Waits (up to 20 s) until the server runs `n` queries.
async fn wait_running(server: &Server, n: f64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while metric_value(server.http, RUNNING_QUERIES) != n {
        assert!(
            std::time::Instant::now() < deadline,
            "{RUNNING_QUERIES} stayed {} (expected {n})",
            metric_value(server.http, RUNNING_QUERIES)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// CPU seconds the server's process spent over the next `window`.
fn cpu_seconds_over(server: &Server, window: std::time::Duration) -> f64 {
    let before = server.cpu_ticks();
    std::thread::sleep(window);
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (server.cpu_ticks() - before) as f64 / per_second
}

/// Runs `n` short queries at once; each needs the one slot in turn.
async fn queries_get_slots(server: &Server, n: usize) {
    let mut tasks = vec![];
    for i in 0..n {
        let mut client = connect(server).await;
        tasks.push(tokio::spawn(async move {
            let rows = query(&mut client, &format!("SELECT {i} + 1 AS n")).await;
            assert_eq!(strings(&rows, "n"), [(i + 1).to_string()]);
        }));
    }
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await
    .expect("the short queries got the slot: nothing kept it");
}

/// A `DoGet` of `info`'s ticket running in the background; its result.
fn start_do_get(
    mut client: FlightSqlServiceClient<Channel>,
    info: &FlightInfo,
) -> tokio::task::JoinHandle<Result<Vec<RecordBatch>, FlightError>> {
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    tokio::spawn(async move { client.do_get(ticket).await?.try_collect().await })
}

/// `CancelFlightInfo` (core Flight) and `CancelQuery` (Flight SQL) stop a
/// running statement: its `DoGet` ends with CANCELLED, its queue slot is
/// free at once, no CPU is spent on it afterwards, and its ticket stays
/// cancelled. Another tenant cannot cancel it; a metadata `FlightInfo` is
/// not cancellable.
#[tokio::test(flavor = "multi_thread")]
async fn flight_sql_cancel_stops_a_running_statement_and_frees_its_slot() {
    use arrow_flight::sql::{ActionCancelQueryRequest, ActionCancelQueryResult};
    use arrow_flight::{CancelFlightInfoRequest, CancelStatus, FlightClient};

    let dir = tempdir();
    let server = Server::start_with(&dir.path().join("data"), ONE_SLOT);
    let mut client = connect(&server).await;
    let info = client.execute(LONG_QUERY.into(), None).await.unwrap();
    let running = start_do_get(connect(&server).await, &info);
    wait_running(&server, 1.0).await;

    // Another tenant's cancel does not touch it.
    let channel = Channel::from_shared(format!("http://{}", server.flight))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut other = FlightClient::new(channel.clone());
    other.add_header("x-scope-orgid", "other").unwrap();
    other
        .cancel_flight_info(CancelFlightInfoRequest::new(info.clone()))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!running.is_finished(), "another tenant stopped the query");

    let mut flight = FlightClient::new(channel);
    let result = flight
        .cancel_flight_info(CancelFlightInfoRequest::new(info.clone()))
        .await
        .unwrap();
    assert_eq!(result.status, CancelStatus::Cancelled as i32);
    let e = tokio::time::timeout(std::time::Duration::from_secs(10), running)
        .await
        .expect("the cancelled DoGet ends")
        .unwrap()
        .unwrap_err();
    let e = status(e);
    assert_eq!(e.code(), tonic::Code::Cancelled, "{e:?}");
    assert!(e.message().contains("cancelled"), "{}", e.message());
    wait_running(&server, 0.0).await;
    let cpu = cpu_seconds_over(&server, std::time::Duration::from_secs(2));
    assert!(
        cpu < 0.5,
        "the cancelled query still burns CPU: {cpu}s in 2s"
    );
    queries_get_slots(&server, 3).await;

    // The ticket of a cancelled FlightInfo stays cancelled.
    let again = start_do_get(connect(&server).await, &info)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(status(again).code(), tonic::Code::Cancelled);

    // Flight SQL's CancelQuery action, as older clients send it.
    let info = client.execute(LONG_QUERY.into(), None).await.unwrap();
    let running = start_do_get(connect(&server).await, &info);
    wait_running(&server, 1.0).await;
    let request = ActionCancelQueryRequest {
        info: info.encode_to_vec().into(),
    };
    let mut answers = client
        .do_action(Action::new("CancelQuery", request.as_any().encode_to_vec()))
        .await
        .unwrap();
    let answer = answers
        .try_next()
        .await
        .unwrap()
        .expect("a CancelQuery result");
    let result: ActionCancelQueryResult =
        Any::decode(answer.body).unwrap().unpack().unwrap().unwrap();
    assert_eq!(result.result, 1, "CANCEL_RESULT_CANCELLED");
    let e = tokio::time::timeout(std::time::Duration::from_secs(10), running)
        .await
        .expect("the cancelled DoGet ends")
        .unwrap()
        .unwrap_err();
    assert_eq!(status(e).code(), tonic::Code::Cancelled);
    wait_running(&server, 0.0).await;
    queries_get_slots(&server, 3).await;

    // A metadata FlightInfo has nothing to cancel.
    let tables = client
        .get_tables(CommandGetTables::default())
        .await
        .unwrap();
    let result = flight
        .cancel_flight_info(CancelFlightInfoRequest::new(tables))
        .await
        .unwrap();
    assert_eq!(result.status, CancelStatus::NotCancellable as i32);
    // A FlightInfo without endpoints is a clear error.
    let e = status(
        flight
            .cancel_flight_info(CancelFlightInfoRequest::new(FlightInfo::new()))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("no endpoint"), "{}", e.message());
}

/// A client that drops its `DoGet` stream — before the first batch of an
/// aggregate, or after one batch of a long stream — stops the query: the
/// slot comes back and the server goes idle.
#[tokio::test(flavor = "multi_thread")]
async fn flight_sql_a_dropped_do_get_stops_the_query() {
    let dir = tempdir();
    let server = Server::start_with(&dir.path().join("data"), ONE_SLOT);
    let mut client = connect(&server).await;

    let info = client.execute(LONG_QUERY.into(), None).await.unwrap();
    let running = start_do_get(connect(&server).await, &info);
    wait_running(&server, 1.0).await;
    running.abort();
    wait_running(&server, 0.0).await;
    let cpu = cpu_seconds_over(&server, std::time::Duration::from_secs(2));
    assert!(cpu < 0.5, "the dropped query still burns CPU: {cpu}s in 2s");
    queries_get_slots(&server, 3).await;

    // A result of many batches: read one, then go away.
    let info = client
        .execute(
            "SELECT value, value * 2 AS twice FROM generate_series(1, 100000000000)".into(),
            None,
        )
        .await
        .unwrap();
    let mut reader = connect(&server).await;
    let mut stream = reader
        .do_get(info.endpoint[0].ticket.clone().unwrap())
        .await
        .unwrap();
    let first = stream.try_next().await.unwrap().expect("a first batch");
    assert!(first.num_rows() > 0);
    wait_running(&server, 1.0).await;
    drop(stream);
    drop(reader);
    wait_running(&server, 0.0).await;
    queries_get_slots(&server, 3).await;
}

/// `[flight] tls_cert`/`tls_key`: arrow-flight's client over TLS trusting
/// the test CA logs in and queries; a plaintext client and one trusting
/// another CA fail cleanly, and the server keeps serving; a missing
/// certificate file stops the server at start, naming it.
#[tokio::test(flavor = "multi_thread")]
async fn flight_sql_over_tls() {
    use tonic::transport::{Certificate, ClientTlsConfig};

    let dir = tempdir();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let (ca, cert, key) = make_certificates(&certs);
    let other_ca = dir.path().join("other");
    std::fs::create_dir_all(&other_ca).unwrap();
    let (other_ca, _, _) = make_certificates(&other_ca);
    let config = format!(
        "{ONE_SLOT}[flight]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
         [[users]]\nname = \"alice\"\npassword = \"alice-secret\"\ntenants = [\"team-a\"]\n",
        cert.display(),
        key.display()
    );
    let server = Server::start_with(&dir.path().join("data"), &config);

    let tls_client = |ca: std::path::PathBuf| {
        let address = format!("https://127.0.0.1:{}", server.flight.port());
        async move {
            let tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap()))
                .domain_name("localhost");
            Channel::from_shared(address)
                .unwrap()
                .tls_config(tls)
                .unwrap()
                .connect()
                .await
                .map(FlightSqlServiceClient::new)
        }
    };
    let mut alice = tls_client(ca.clone()).await.expect("a TLS connection");
    alice.handshake("alice", "alice-secret").await.unwrap();
    query(&mut alice, INSERT_LOGS).await;
    let rows = query(&mut alice, "SELECT count(*) AS n FROM logs").await;
    assert_eq!(strings(&rows, "n"), ["10"]);
    let mut wrong = tls_client(ca.clone()).await.unwrap();
    let e = raw_handshake(&mut wrong, "alice", "wrong", None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");

    // Plaintext gRPC against the TLS port fails, promptly (each time).
    for _ in 0..3 {
        let plain = async {
            let mut c = connect(&server).await;
            raw_handshake(&mut c, "alice", "alice-secret", None).await
        };
        let e = tokio::time::timeout(std::time::Duration::from_secs(20), plain)
            .await
            .expect("a plaintext client fails instead of hanging")
            .unwrap_err();
        // The TLS server's alert ends the connection; the client reports
        // it as a transport failure (a broken pipe, an HTTP/2 protocol
        // error or a closed connection, depending on timing), not as an
        // answer from the server.
        let transport =
            std::error::Error::source(&e).is_some_and(|s| s.is::<tonic::transport::Error>());
        assert!(transport, "{e:?}");
    }
    // A client that does not trust the certificate refuses the server.
    let untrusting = async {
        let mut c = tls_client(other_ca).await?;
        c.handshake("alice", "alice-secret")
            .await
            .map_err(|e| e.to_string())
            .ok();
        Ok::<_, tonic::transport::Error>(c)
    };
    match tokio::time::timeout(std::time::Duration::from_secs(20), untrusting).await {
        Ok(Err(e)) => assert!(
            format!("{e:?}").to_lowercase().contains("certificate"),
            "{e:?}"
        ),
        Ok(Ok(_)) => panic!("a client trusting another CA connected"),
        Err(_) => panic!("a client trusting another CA hung"),
    }
    // The server keeps serving TLS clients.
    let rows = query(&mut alice, "SELECT count(*) AS n FROM logs").await;
    assert_eq!(strings(&rows, "n"), ["10"]);

    // A certificate file that is not there stops the server at start.
    let bad = format!(
        "[flight]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        dir.path().join("missing.crt").display(),
        key.display()
    );
    let stderr = Server::launch(Launch {
        data_dir: &dir.path().join("bad"),
        config: &bad,
        prefix: vec![],
        args: vec![],
    })
    .err()
    .expect("the server refuses a missing certificate");
    assert!(stderr.contains("flight.tls_cert"), "{stderr}");
    assert!(stderr.contains("missing.crt"), "{stderr}");
}

/// Creates a prepared statement of `sql` through the raw
/// `CreatePreparedStatement` action; its handle.
pub(crate) async fn prepared_statement_handle(
    client: &mut FlightSqlServiceClient<Channel>,
    sql: &str,
) -> Vec<u8> {
    let create = ActionCreatePreparedStatementRequest {
        query: sql.into(),
        transaction_id: None,
    };
    let mut answers = client
        .do_action(Action::new(
            "CreatePreparedStatement",
            create.as_any().encode_to_vec(),
        ))
        .await
        .unwrap();
    let answer = answers.message().await.unwrap().unwrap();
    let created: ActionCreatePreparedStatementResult = Any::decode(&*answer.body)
        .unwrap()
        .unpack()
        .unwrap()
        .unwrap();
    created.prepared_statement_handle.to_vec()
}
