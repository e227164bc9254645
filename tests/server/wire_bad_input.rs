//! Bad input on the wire protocols, against the real binary: raw bytes over
//! a TcpStream to the Postgres port (malformed startup packets, unknown
//! message types, impossible and oversized lengths, half-closed and
//! vanishing clients, a client that never reads its results) and
//! arrow-flight's client on the Flight SQL port (invalid tickets, unknown
//! commands, oversized messages, DoPut streams that do not fit the table).
//! Each case asserts the precise reaction (the `FATAL` `ErrorResponse` and
//! its SQLSTATE, or the gRPC status) and that a client connected
//! throughout and a new client still run queries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, Int64Array, MapBuilder, StringArray, StringBuilder};
use arrow::array::{RecordBatch, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    Any, CommandPreparedStatementQuery, CommandStatementIngest, CommandStatementSubstraitPlan,
    ProstMessageExt, TicketStatementQuery,
};
use arrow_flight::{Action, FlightDescriptor, Ticket};
use futures::TryStreamExt;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::transport::Channel;

use crate::common::{Server, http_request, tempdir};

/// Protocol 3.0 in a startup packet.
const V3: u32 = 3 << 16;

/// Minutes of work in many short steps, stopped promptly when asked.
const LONG_QUERY: &str =
    "SELECT count(*) FROM generate_series(1, 100000000000) WHERE value % 7 = 3";

/// Far more rows than any socket buffer holds (about 20 GB of text).
const HUGE_RESULT: &str =
    "SELECT value, repeat('x', 200) AS pad FROM generate_series(1, 100000000)";

// ---------------------------------------------------------------- raw pgwire

fn startup_packet(version: u32, params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = version.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend(k.as_bytes());
        body.push(0);
        body.extend(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend(body);
    packet
}

fn good_startup() -> Vec<u8> {
    startup_packet(V3, &[("user", "o11ydb"), ("database", "o11ydb")])
}

/// A typed frontend message with a correct length.
fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend(((body.len() + 4) as i32).to_be_bytes());
    m.extend(body);
    m
}

fn query_message(sql: &str) -> Vec<u8> {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    message(b'Q', &body)
}

/// Parse, Bind (binary results), Execute (no row limit) and Sync of `sql`:
/// the extended protocol, as drivers send a statement.
fn extended_messages(sql: &str) -> Vec<u8> {
    let mut parse = vec![0u8]; // unnamed statement
    parse.extend(sql.as_bytes());
    parse.push(0);
    parse.extend(0i16.to_be_bytes()); // no parameter types
    let mut bind = vec![0u8, 0u8]; // unnamed portal, unnamed statement
    bind.extend(0i16.to_be_bytes()); // no parameter formats
    bind.extend(0i16.to_be_bytes()); // no parameters
    bind.extend(1i16.to_be_bytes()); // one result format for all columns:
    bind.extend(1i16.to_be_bytes()); // binary
    let mut execute = vec![0u8]; // unnamed portal
    execute.extend(0i32.to_be_bytes()); // all rows
    let mut out = message(b'P', &parse);
    out.extend(message(b'B', &bind));
    out.extend(message(b'E', &execute));
    out.extend(message(b'S', &[]));
    out
}

/// A message header claiming `length` (which counts its own 4 bytes).
fn header(kind: u8, length: i32) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend(length.to_be_bytes());
    m
}

#[derive(Debug)]
struct PgError {
    severity: String,
    code: String,
    message: String,
}

/// Backend messages parsed from `bytes` (complete ones).
fn parse_messages(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = vec![];
    let mut at = 0;
    while bytes.len() >= at + 5 {
        let len = i32::from_be_bytes(bytes[at + 1..at + 5].try_into().unwrap()) as usize;
        if bytes.len() < at + 1 + len {
            break;
        }
        out.push((bytes[at], bytes[at + 5..at + 1 + len].to_vec()));
        at += 1 + len;
    }
    out
}

fn error_in(messages: &[(u8, Vec<u8>)]) -> Option<PgError> {
    let (_, body) = messages.iter().find(|(kind, _)| *kind == b'E')?;
    let mut error = PgError {
        severity: String::new(),
        code: String::new(),
        message: String::new(),
    };
    for field in body.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let text = String::from_utf8_lossy(&field[1..]).to_string();
        match field[0] {
            b'S' => error.severity = text,
            b'C' => error.code = text,
            b'M' => error.message = text,
            _ => {}
        }
    }
    Some(error)
}

/// Everything the server sends until it closes the connection; `false`
/// when it was still open after `within`.
async fn read_until_close(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    let deadline = tokio::time::Instant::now() + within;
    let mut received = vec![];
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (received, true),
            Ok(Ok(n)) => received.extend(&chunk[..n]),
            Err(_) => return (received, false),
        }
    }
}

/// Reads until a message of type `kind` has arrived.
async fn read_until(stream: &mut TcpStream, kind: u8) -> Vec<(u8, Vec<u8>)> {
    let mut received = vec![];
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let messages = parse_messages(&received);
        if messages.iter().any(|(k, _)| *k == kind) {
            return messages;
        }
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("no message {:?} within 30s", kind as char))
            .expect("read");
        assert!(n > 0, "closed before {:?}: {:?}", kind as char, messages);
        received.extend(&chunk[..n]);
    }
}

/// A raw connection past startup (trust), ready for queries.
async fn authenticated(server: &Server) -> TcpStream {
    let mut stream = TcpStream::connect(server.pg).await.unwrap();
    stream.write_all(&good_startup()).await.unwrap();
    read_until(&mut stream, b'Z').await;
    stream
}

/// Sends `bytes` on `stream` (half-closing it after with `half_close`) and
/// returns the FATAL error the server answers with before closing.
async fn refusal(mut stream: TcpStream, bytes: &[u8], half_close: bool) -> PgError {
    stream.write_all(bytes).await.unwrap();
    if half_close {
        stream.shutdown().await.unwrap();
    }
    let (received, closed) = read_until_close(&mut stream, Duration::from_secs(10)).await;
    let messages = parse_messages(&received);
    assert!(
        closed,
        "the connection is closed after the error: {messages:?}"
    );
    let error = error_in(&messages).unwrap_or_else(|| panic!("an ErrorResponse: {messages:?}"));
    assert_eq!(error.severity, "FATAL", "{error:?}");
    error
}

/// A client connected throughout and a new client both run a query.
async fn still_serving(server: &Server, held: &tokio_postgres::Client) {
    let row = held.query_one("SELECT 1 + 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 2);
    let fresh = server.client().await;
    let row = fresh.query_one("SELECT 40 + 2", &[]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 42);
}

/// Waits until the server is (nearly) idle: a stopped query no longer burns
/// CPU. Fails if it keeps working for 15 s.
async fn cpu_settles(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let before = server.cpu_ticks();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let used = server.cpu_ticks() - before;
        // Clock ticks are 1/100 s: a running query uses ~100 per core.
        if used < 25 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server still uses {used} ticks of CPU per second: the query was not stopped"
        );
    }
}

/// Finished (or stopped) SQL statements over the Postgres protocol.
fn pg_statements_done(server: &Server) -> f64 {
    let (status, text) = http_request(server.http, "GET", "/metrics");
    assert_eq!(status, 200);
    text.lines()
        .filter(|l| {
            l.starts_with("o11ydb_query_duration_seconds_count{")
                && l.contains("interface=\"pgwire\"")
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_startup_packets_get_fatal_errors_and_the_server_keeps_serving() {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let held = server.client().await;
    let connect = || TcpStream::connect(server.pg);

    // A length field below the 8 bytes of length and version.
    let e = refusal(connect().await.unwrap(), &[0, 0, 0, 4, 0, 3, 0, 0], false).await;
    assert_eq!(e.code, "08P01", "{e:?}");
    assert!(
        e.message
            .contains("invalid length of startup packet: 4 bytes"),
        "{e:?}"
    );
    still_serving(&server, &held).await;

    // 1 GiB claimed: refused from the header, nothing allocated for it.
    let rss = server.rss_bytes();
    let e = refusal(
        connect().await.unwrap(),
        &[0x40, 0, 0, 0, 0, 3, 0, 0],
        false,
    )
    .await;
    assert_eq!(e.code, "08P01", "{e:?}");
    assert!(e.message.contains("1073741824 bytes"), "{e:?}");
    assert!(server.rss_bytes() < rss + (50 << 20));
    still_serving(&server, &held).await;

    // An unknown protocol version.
    let packet = startup_packet(2 << 16, &[("user", "o11ydb")]);
    let e = refusal(connect().await.unwrap(), &packet, false).await;
    assert_eq!(e.code, "0A000", "{e:?}");
    assert!(
        e.message.contains("unsupported frontend protocol 2.0"),
        "{e:?}"
    );
    still_serving(&server, &held).await;

    // Half a startup packet, then the client shuts down its write side.
    let packet = good_startup();
    let e = refusal(connect().await.unwrap(), &packet[..packet.len() / 2], true).await;
    assert_eq!(e.code, "08P01", "{e:?}");
    assert_eq!(e.message, "incomplete startup packet");
    // ... or closes altogether: nobody to tell, nothing breaks.
    let mut gone = connect().await.unwrap();
    gone.write_all(&packet[..10]).await.unwrap();
    drop(gone);
    still_serving(&server, &held).await;

    // Garbage: an HTTP request on the Postgres port.
    let e = refusal(
        connect().await.unwrap(),
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        false,
    )
    .await;
    assert_eq!(e.code, "08P01", "{e:?}");
    assert!(
        e.message.contains("invalid length of startup packet"),
        "{e:?}"
    );
    still_serving(&server, &held).await;

    // A startup packet without `user`.
    let packet = startup_packet(V3, &[("database", "o11ydb")]);
    let e = refusal(connect().await.unwrap(), &packet, false).await;
    assert_eq!(e.code, "28000", "{e:?}");
    assert_eq!(
        e.message,
        "no PostgreSQL user name specified in startup packet"
    );
    still_serving(&server, &held).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_messages_after_startup_are_refused_without_buffering_them() {
    let dir = tempdir();
    let config = "[pgwire]\nmax_message_bytes = \"1MiB\"\n";
    let server = Server::start_with(&dir.path().join("data"), config);
    let held = server.client().await;

    // An unknown message type.
    let e = refusal(authenticated(&server).await, &message(b'!', b""), false).await;
    assert_eq!(e.code, "08P01", "{e:?}");
    assert_eq!(e.message, "invalid frontend message type 33 ('!')");
    still_serving(&server, &held).await;

    // Impossible lengths: below the length field's own 4 bytes, negative.
    for length in [2, -1] {
        let e = refusal(authenticated(&server).await, &header(b'Q', length), false).await;
        assert_eq!(e.code, "08P01", "{e:?}");
        assert!(
            e.message.starts_with(&format!(
                "invalid message length {length} for message type 'Q'"
            )),
            "{e:?}"
        );
    }
    still_serving(&server, &held).await;

    // A Query claiming 1 GiB: refused from its header with 54000, the
    // server's memory untouched.
    let rss = server.rss_bytes();
    let e = refusal(
        authenticated(&server).await,
        &header(b'Q', 0x3fff_fffd),
        false,
    )
    .await;
    assert_eq!(e.code, "54000", "{e:?}");
    assert!(
        e.message.contains("1073741821 bytes")
            && e.message.contains("1048576")
            && e.message.contains("pgwire.max_message_bytes"),
        "{e:?}"
    );
    assert!(server.rss_bytes() < rss + (50 << 20));
    still_serving(&server, &held).await;

    // A Query really 3 MiB long, sent while the server answers.
    let big = query_message(&format!("SELECT '{}'", "x".repeat(3 << 20)));
    let stream = authenticated(&server).await;
    let (mut reader, mut writer) = stream.into_split();
    let sender = tokio::spawn(async move {
        // The server closes while (or after) this is written.
        let _ = writer.write_all(&big).await;
        writer
    });
    let (received, closed) = {
        let mut received = vec![];
        let mut chunk = vec![0u8; 4096];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let closed = loop {
            match tokio::time::timeout_at(deadline, reader.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break true,
                Ok(Ok(n)) => received.extend(&chunk[..n]),
                Err(_) => break false,
            }
        };
        (received, closed)
    };
    let _ = sender.await;
    assert!(closed);
    let e = error_in(&parse_messages(&received)).expect("an ErrorResponse");
    assert_eq!(
        (e.severity.as_str(), e.code.as_str()),
        ("FATAL", "54000"),
        "{e:?}"
    );
    still_serving(&server, &held).await;

    // A message cut short by a half-close.
    let mut partial = header(b'Q', 100);
    partial.extend(b"SELECT 1");
    let e = refusal(authenticated(&server).await, &partial, true).await;
    assert_eq!(e.code, "08P01", "{e:?}");
    assert!(
        e.message.starts_with("incomplete message from client"),
        "{e:?}"
    );

    // Under the limit, a large statement is fine.
    let row = held
        .query_one(&format!("SELECT length('{}')", "y".repeat(500_000)), &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 500_000);
    still_serving(&server, &held).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn half_closed_and_vanished_clients_stop_their_queries() {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let held = server.client().await;

    // The client shuts down its write side while its query runs: the query
    // stops with 08006, which the half-closed client can still read.
    let mut stream = authenticated(&server).await;
    stream.write_all(&query_message(LONG_QUERY)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stream.shutdown().await.unwrap();
    let (received, closed) = read_until_close(&mut stream, Duration::from_secs(15)).await;
    assert!(closed, "closed after the stopped query");
    let e = error_in(&parse_messages(&received)).expect("an ErrorResponse");
    assert_eq!(e.code, "08006", "{e:?}");
    cpu_settles(&server).await;
    still_serving(&server, &held).await;

    // The client vanishes while rows stream to it.
    let done = pg_statements_done(&server);
    let mut stream = authenticated(&server).await;
    stream.write_all(&query_message(HUGE_RESULT)).await.unwrap();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut read = 0;
    while read < 4 << 20 {
        read += stream.read(&mut chunk).await.unwrap();
    }
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(15);
    while pg_statements_done(&server) < done + 1.0 {
        assert!(Instant::now() < deadline, "the statement never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cpu_settles(&server).await;
    still_serving(&server, &held).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_reads_its_results_holds_bounded_memory() {
    never_reading_client_holds_bounded_memory(query_message(HUGE_RESULT)).await;
}

/// The same over the extended protocol (Execute with no row limit, as
/// psycopg, asyncpg, pgjdbc and node-postgres send it): the portal's rows
/// stream, they are not fetched into memory before the first is sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_reads_an_extended_query_result_holds_bounded_memory() {
    never_reading_client_holds_bounded_memory(extended_messages(HUGE_RESULT)).await;
}

async fn never_reading_client_holds_bounded_memory(messages: Vec<u8>) {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let held = server.client().await;
    still_serving(&server, &held).await;
    let baseline = server.rss_bytes();

    let mut stalled = authenticated(&server).await;
    stalled.write_all(&messages).await.unwrap();
    let started = Instant::now();
    let mut peak = baseline;
    let mut rounds = 0;
    while started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(server.rss_bytes());
        rounds += 1;
        if rounds % 4 == 0 {
            still_serving(&server, &held).await;
        }
    }
    assert!(
        peak < baseline + (300 << 20),
        "RSS grew from {baseline} to {peak} bytes for a client that reads nothing"
    );
    // Blocked on the full socket, the statement burns no CPU either.
    cpu_settles(&server).await;
    still_serving(&server, &held).await;

    // Closing the connection ends the statement.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let done = pg_statements_done(&server);
    drop(stalled);
    let deadline = Instant::now() + Duration::from_secs(15);
    while pg_statements_done(&server) < done + 1.0 {
        assert!(Instant::now() < deadline, "the statement never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    still_serving(&server, &held).await;
}

// ---------------------------------------------------------------- Flight SQL

async fn flight(server: &Server) -> FlightSqlServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", server.flight))
        .unwrap()
        .connect()
        .await
        .expect("connect to the Flight SQL port");
    FlightSqlServiceClient::new(channel)
}

/// The status a DoGet of `ticket` ends with (as `tenant` when given).
async fn do_get_status(
    client: &mut FlightSqlServiceClient<Channel>,
    ticket: Vec<u8>,
    tenant: Option<&str>,
) -> tonic::Status {
    let mut request = tonic::Request::new(Ticket::new(ticket));
    if let Some(tenant) = tenant {
        request
            .metadata_mut()
            .insert("x-scope-orgid", tenant.parse().unwrap());
    }
    match client.inner_mut().do_get(request).await {
        Err(status) => status,
        Ok(response) => {
            let mut stream = response.into_inner();
            loop {
                match stream.message().await {
                    Err(status) => return status,
                    Ok(None) => panic!("the DoGet succeeded"),
                    Ok(Some(_)) => {}
                }
            }
        }
    }
}

async fn flight_count(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> i64 {
    let info = client.execute(sql.to_string(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let batches: Vec<RecordBatch> = client
        .do_get(ticket)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let column = arrow::compute::cast(batches[0].column(0), &DataType::Int64).unwrap();
    column
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0)
}

fn flight_status(e: arrow_flight::error::FlightError) -> tonic::Status {
    match e {
        arrow_flight::error::FlightError::Tonic(s) => *s,
        other => panic!("expected a gRPC status, got {other}"),
    }
}

/// Flight and Postgres clients both still answer.
async fn flight_still_serving(server: &Server, client: &mut FlightSqlServiceClient<Channel>) {
    assert_eq!(flight_count(client, "SELECT 7 AS n").await, 7);
    assert_eq!(
        flight_count(&mut flight(server).await, "SELECT 8 AS n").await,
        8
    );
    let pg = server.client().await;
    assert_eq!(
        pg.query_one("SELECT 9", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        9
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn flight_invalid_tickets_and_commands_get_clear_statuses() {
    let dir = tempdir();
    let config = "[server]\nmax_request_body_bytes = \"1MiB\"\n";
    let server = Server::start_with(&dir.path().join("data"), config);
    let mut client = flight(&server).await;

    // Garbage bytes as a ticket.
    let s = do_get_status(&mut client, vec![0xff, 0x13, 0x37, 0x00, 0x42], None).await;
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
    // A protobuf Any that is no Flight SQL message.
    let alien = Any {
        type_url: "type.googleapis.com/example.NotFlight".into(),
        value: b"hello".to_vec().into(),
    };
    let s = do_get_status(&mut client, alien.encode_to_vec(), None).await;
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("example.NotFlight"), "{s:?}");
    // A statement ticket the server did not issue: garbage bytes, or SQL
    // text as handle (tickets are opaque; the server's carry a query id).
    let ticket = |handle: &[u8]| {
        TicketStatementQuery {
            statement_handle: handle.to_vec().into(),
        }
        .as_any()
        .encode_to_vec()
    };
    for handle in [&[0xc3, 0x28][..], b"SELECT 1"] {
        let s = do_get_status(&mut client, ticket(handle), None).await;
        assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
        assert!(s.message().contains("not issued by this server"), "{s:?}");
    }
    flight_still_serving(&server, &mut client).await;

    // A statement ticket carries its SQL: fetching it twice answers twice.
    let info = client.execute("SELECT 5 AS n".into(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    for _ in 0..2 {
        let batches: Vec<RecordBatch> = client
            .do_get(ticket.clone())
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    }

    // Prepared statement handles: unknown, another tenant's, closed.
    let prepared_ticket = |handle: &[u8]| {
        CommandPreparedStatementQuery {
            prepared_statement_handle: handle.to_vec().into(),
        }
        .as_any()
        .encode_to_vec()
    };
    let s = do_get_status(&mut client, prepared_ticket(b"no-such-handle"), None).await;
    assert_eq!(s.code(), tonic::Code::NotFound, "{s:?}");
    let mut owner = flight(&server).await;
    owner.set_header("x-scope-orgid", "tenant-a");
    let handle = crate::flight_sql::prepared_statement_handle(&mut owner, "SELECT 1 AS one").await;
    let s = do_get_status(&mut client, prepared_ticket(&handle), Some("tenant-b")).await;
    assert_eq!(s.code(), tonic::Code::NotFound, "{s:?}");
    assert!(s.message().contains("another tenant"), "{s:?}");
    let close = arrow_flight::sql::ActionClosePreparedStatementRequest {
        prepared_statement_handle: handle.clone().into(),
    };
    owner
        .do_action(Action::new(
            "ClosePreparedStatement",
            close.as_any().encode_to_vec(),
        ))
        .await
        .unwrap();
    let s = do_get_status(&mut client, prepared_ticket(&handle), Some("tenant-a")).await;
    assert_eq!(s.code(), tonic::Code::NotFound, "{s:?}");

    // GetFlightInfo: garbage, an unknown command, an unsupported one.
    let info_status = |cmd: Vec<u8>| {
        let mut c = client.clone();
        async move {
            c.inner_mut()
                .get_flight_info(FlightDescriptor::new_cmd(cmd))
                .await
                .unwrap_err()
        }
    };
    let s = info_status(vec![0xff, 0xff, 0x01]).await;
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
    let s = info_status(alien.encode_to_vec()).await;
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("is not a Flight SQL command"), "{s:?}");
    let substrait = CommandStatementSubstraitPlan::default().as_any();
    let s = info_status(substrait.encode_to_vec()).await;
    assert_eq!(s.code(), tonic::Code::Unimplemented, "{s:?}");
    flight_still_serving(&server, &mut client).await;

    // A gRPC message over the server's decoding limit (1 MiB here).
    let sql = format!("SELECT '{}' AS big", "x".repeat(2 << 20));
    let s = flight_status(client.execute(sql, None).await.unwrap_err());
    assert_eq!(s.code(), tonic::Code::OutOfRange, "{s:?}");
    assert!(s.message().contains("the limit is: 1048576 bytes"), "{s:?}");
    flight_still_serving(&server, &mut client).await;
}

/// `n` log rows (`line` nullable; a `None` from `line` makes a null).
fn logs_batch(n: usize, pad: usize, line: impl Fn(usize) -> Option<String>) -> RecordBatch {
    let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for _ in 0..n {
        labels.keys().append_value("app");
        labels.values().append_value("wire");
        labels.append(true).unwrap();
    }
    let labels = labels.finish();
    let fields = vec![
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            false,
        ),
        Field::new("labels", labels.data_type().clone(), false),
        Field::new("line", DataType::Utf8, true),
    ];
    let pad = "p".repeat(pad);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampNanosecondArray::from_iter_values(
            (0..n as i64).map(|i| 1_767_225_600_000_000_000 + i * 1_000_000),
        )),
        Arc::new(labels),
        Arc::new(StringArray::from_iter(
            (0..n).map(|i| line(i).map(|l| format!("{l} {pad}"))),
        )),
    ];
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// `batch` with column `name` replaced by `column` (or dropped with `None`),
/// or added when it has none.
fn with_column(batch: &RecordBatch, name: &str, column: Option<ArrayRef>) -> RecordBatch {
    let schema = batch.schema();
    let mut fields: Vec<Field> = vec![];
    let mut columns: Vec<ArrayRef> = vec![];
    for (field, c) in schema.fields().iter().zip(batch.columns()) {
        if field.name() != name {
            fields.push(field.as_ref().clone());
            columns.push(c.clone());
        }
    }
    if let Some(c) = column {
        fields.push(Field::new(name, c.data_type().clone(), true));
        columns.push(c);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn flight_do_put_that_does_not_fit_ingests_nothing() {
    let dir = tempdir();
    let config = "[server]\nmax_request_body_bytes = \"1MiB\"\n";
    let server = Server::start_with(&dir.path().join("data"), config);
    let mut client = flight(&server).await;
    let ingest = |table: &str| CommandStatementIngest {
        table: table.to_string(),
        ..Default::default()
    };
    let line = |i: usize| Some(format!("line {i}"));
    let count = "SELECT count(*) FROM logs";

    let base = client.clone();
    let put = |table: &'static str, batches: Vec<RecordBatch>| {
        let mut c = base.clone();
        async move {
            c.execute_ingest(
                ingest(table),
                futures::stream::iter(batches.into_iter().map(Ok)),
            )
            .await
        }
    };

    // An unknown column.
    let n = 3;
    let bogus: ArrayRef = Arc::new(StringArray::from(vec![Some("x"); n]));
    let batch = with_column(&logs_batch(n, 0, line), "bogus", Some(bogus));
    let s = flight_status(put("logs", vec![batch]).await.unwrap_err());
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("no column \"bogus\" in logs"), "{s:?}");
    // A type that cannot be cast: labels as numbers.
    let numbers: ArrayRef = Arc::new(Int64Array::from(vec![1; n]));
    let batch = with_column(&logs_batch(n, 0, line), "labels", Some(numbers));
    let s = flight_status(put("logs", vec![batch]).await.unwrap_err());
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
    assert!(
        s.message().contains("labels") && s.message().contains("cannot cast Int64"),
        "{s:?}"
    );
    // A required column missing.
    let batch = with_column(&logs_batch(n, 0, line), "line", None);
    let s = flight_status(put("logs", vec![batch]).await.unwrap_err());
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("\"line\""), "{s:?}");
    // An unknown table.
    let s = flight_status(
        put("metrics", vec![logs_batch(n, 0, line)])
            .await
            .unwrap_err(),
    );
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
    assert!(
        s.message()
            .contains("the tables are logs, samples and spans"),
        "{s:?}"
    );
    assert_eq!(flight_count(&mut client, count).await, 0);

    // Two good batches, then a bad one: none of the stream is written.
    let bad = logs_batch(100, 0, |i| (i != 50).then(|| format!("line {i}")));
    let batches = vec![logs_batch(1000, 0, line), logs_batch(1000, 0, line), bad];
    let s = flight_status(put("logs", batches).await.unwrap_err());
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
    assert!(
        s.message().starts_with("batch 3: ") && s.message().contains("nothing was written"),
        "{s:?}"
    );
    assert_eq!(flight_count(&mut client, count).await, 0);

    // A stream over the request size limit (each message under it).
    let batches: Vec<RecordBatch> = (0..6).map(|_| logs_batch(1000, 300, line)).collect();
    let s = flight_status(put("logs", batches).await.unwrap_err());
    assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
    assert!(
        s.message().contains("1048576") && s.message().contains("server.max_request_body_bytes"),
        "{s:?}"
    );
    assert_eq!(flight_count(&mut client, count).await, 0);
    flight_still_serving(&server, &mut client).await;

    // A good stream of several batches is written whole.
    let batches = vec![logs_batch(1000, 0, line), logs_batch(500, 0, line)];
    let rows = put("logs", batches).await.unwrap();
    assert_eq!(rows, 1500);
    assert_eq!(flight_count(&mut client, count).await, 1500);
}
