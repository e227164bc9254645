"""Flight SQL over TLS with a configured user, from Python: the raw
`pyarrow.flight` client (Basic handshake → bearer token, a Flight SQL
`CommandStatementQuery` encoded as a protobuf `Any` by hand, GetFlightInfo,
DoGet, `CancelFlightInfo`), ADBC over `grpc+tls://` into pandas and polars,
ADBC's `adbc_cancel`, and the failures: a wrong password, no token, a
plaintext client against the TLS port. The server has one query slot, so a
cancelled statement that kept its slot would block every later one."""

import pathlib
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request

import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from adbc_driver_flightsql import DatabaseOptions

from conftest import Server

LONG_QUERY = "SELECT count(*) AS n FROM generate_series(1, 100000000000) WHERE value % 7 = 3"

INSERT_LOGS = """
INSERT INTO logs (timestamp, labels, line)
SELECT to_timestamp_nanos(1767225600000000000 + value * 1000000),
       map(['app'], [CASE WHEN value % 2 = 0 THEN 'even' ELSE 'odd' END]),
       'line ' || CAST(value AS VARCHAR)
FROM generate_series(1, 10)
"""


def make_certificates(directory: pathlib.Path):
    """A test CA and a server certificate for 127.0.0.1 and localhost it
    signed, made by openssl: (CA certificate, server certificate, key)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca, ca_key = directory / "ca.crt", directory / "ca.key"
    csr, cert, key, ext = (directory / n for n in ("server.csr", "server.crt", "server.key", "server.ext"))

    def openssl(*args):
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)

    openssl("req", "-x509", "-days", "2", "-subj", "/CN=o11ydb test CA", *ec, "-keyout", ca_key, "-out", ca)
    openssl("req", "-subj", "/CN=localhost", *ec, "-keyout", key, "-out", csr)
    ext.write_text("basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
            "-extfile", ext, "-out", cert)
    return ca, cert, key


@pytest.fixture(scope="module")
def tls_server():
    with tempfile.TemporaryDirectory(prefix="o11ydb-pyflight") as tmp:
        tmp = pathlib.Path(tmp)
        ca, cert, key = make_certificates(tmp)
        config = f"""
[query_frontend]
max_concurrent = 1
[flight]
tls_cert = "{cert}"
tls_key = "{key}"
[[users]]
name = "alice"
password = "alice-secret"
tenants = ["team-a"]
"""
        s = Server(tmp / "data", config_text=config)
        s.ca_pem = ca.read_bytes()
        try:
            assert s.flight.startswith("grpc+tls://"), s.flight
            yield s
        finally:
            s.stop()


# A tiny protobuf encoder: enough for Flight SQL's commands.
def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def length_delimited(field: int, data: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(data)) + data


def any_message(type_name: str, value: bytes) -> bytes:
    """google.protobuf.Any { type_url = 1, value = 2 }."""
    return length_delimited(1, f"type.googleapis.com/{type_name}".encode()) + length_delimited(2, value)


def statement_query(sql: str) -> bytes:
    """A Flight SQL CommandStatementQuery { query = 1 } in an Any."""
    return any_message("arrow.flight.protocol.sql.CommandStatementQuery", length_delimited(1, sql.encode()))


def raw_client(server) -> fl.FlightClient:
    return fl.FlightClient(server.flight, tls_root_certs=server.ca_pem)


def login(client: fl.FlightClient) -> fl.FlightCallOptions:
    header = client.authenticate_basic_token("alice", "alice-secret")
    assert header[0] == b"authorization" and header[1].startswith(b"Bearer ")
    return fl.FlightCallOptions(headers=[header])


def raw_query(client, options, sql: str) -> pa.Table:
    info = client.get_flight_info(fl.FlightDescriptor.for_command(statement_query(sql)), options)
    assert len(info.endpoints) == 1
    return client.do_get(info.endpoints[0].ticket, options).read_all()


def running_queries(server) -> float:
    with urllib.request.urlopen(server.http + "/metrics") as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("o11ydb_query_scheduler_running_queries "):
                return float(line.split()[1])
    return 0.0


def wait_running(server, n: float):
    deadline = time.time() + 20
    while running_queries(server) != n:
        assert time.time() < deadline, f"running queries stayed {running_queries(server)}, expected {n}"
        time.sleep(0.05)


def adbc_connect(server, **db_kwargs):
    kwargs = {
        "username": "alice",
        "password": "alice-secret",
        DatabaseOptions.TLS_ROOT_CERTS.value: server.ca_pem.decode(),
        **db_kwargs,
    }
    return flight_sql.connect(server.flight, db_kwargs=kwargs, autocommit=True)


def test_pyarrow_flight_handshake_query_and_errors(tls_server):
    client = raw_client(tls_server)
    options = login(client)
    inserted = raw_query(client, options, INSERT_LOGS)
    assert inserted.column("count").to_pylist() == [10]
    table = raw_query(client, options, "SELECT line FROM logs WHERE labels['app'] = 'odd' ORDER BY timestamp")
    assert table.column("line").to_pylist() == ["line 1", "line 3", "line 5", "line 7", "line 9"]
    big = raw_query(client, options, "SELECT value FROM generate_series(1, 200000)")
    assert big.num_rows == 200000
    assert pa.compute.sum(big.column("value")).as_py() == 200000 * 200001 // 2

    # A wrong password and calls without the token are UNAUTHENTICATED.
    with pytest.raises(fl.FlightUnauthenticatedError, match="password authentication failed"):
        raw_client(tls_server).authenticate_basic_token("alice", "wrong")
    with pytest.raises(fl.FlightUnauthenticatedError, match="no bearer token"):
        raw_client(tls_server).get_flight_info(fl.FlightDescriptor.for_command(statement_query("SELECT 1")))
    # Bad SQL is INVALID_ARGUMENT; the client keeps working.
    with pytest.raises(pa.ArrowInvalid, match="no_such_table"):
        raw_query(client, options, "SELECT * FROM no_such_table")
    assert raw_query(client, options, "SELECT count(*) AS n FROM logs").column("n").to_pylist() == [10]


def test_pyarrow_flight_cancel_flight_info(tls_server):
    client = raw_client(tls_server)
    options = login(client)
    info = client.get_flight_info(fl.FlightDescriptor.for_command(statement_query(LONG_QUERY)), options)
    outcome = {}

    def read():
        try:
            outcome["table"] = raw_client(tls_server).do_get(info.endpoints[0].ticket, options).read_all()
        except Exception as e:  # noqa: BLE001 - the test inspects it
            outcome["error"] = e

    # pyarrow takes any CANCELLED call for a Ctrl-C and re-raises it as
    # SIGINT in the main thread: record it instead while the call ends.
    interrupts = []
    previous = signal.signal(signal.SIGINT, lambda *_: interrupts.append(1))
    try:
        reader = threading.Thread(target=read)
        reader.start()
        wait_running(tls_server, 1)
        # CancelFlightInfoRequest { info = 1 } → CancelFlightInfoResult { status = 1 }.
        action = fl.Action("CancelFlightInfo", length_delimited(1, info.serialize()))
        results = list(client.do_action(action, options))
        assert [r.body.to_pybytes() for r in results] == [b"\x08\x01"], "CANCEL_STATUS_CANCELLED"
        reader.join(timeout=20)
        time.sleep(0.1)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert not reader.is_alive(), "the cancelled DoGet did not end"
    assert isinstance(outcome.get("error"), fl.FlightCancelledError), outcome
    wait_running(tls_server, 0)
    # The slot is free: more queries than slots run one after another.
    for i in range(3):
        assert raw_query(client, options, f"SELECT {i} AS i").column("i").to_pylist() == [i]


def test_adbc_over_tls_into_pandas_and_polars(tls_server):
    with adbc_connect(tls_server) as conn, conn.cursor() as cur:
        cur.execute("SELECT labels['app'] AS app, count(*) AS n FROM logs GROUP BY 1 ORDER BY 1")
        df = cur.fetch_df()
        assert isinstance(df, pd.DataFrame)
        assert df.to_dict("records") == [{"app": "even", "n": 5}, {"app": "odd", "n": 5}]

        cur.execute("SELECT timestamp, line FROM logs ORDER BY timestamp LIMIT 3")
        frame = pl.from_arrow(cur.fetch_arrow_table())
        assert isinstance(frame, pl.DataFrame)
        assert frame["line"].to_list() == ["line 1", "line 2", "line 3"]
        assert frame.schema["timestamp"] == pl.Datetime("ns", "UTC") or isinstance(
            frame.schema["timestamp"], pl.Datetime
        )

        cur.execute("SELECT line FROM logs WHERE labels['app'] = $1 ORDER BY timestamp", parameters=("even",))
        assert pl.from_arrow(cur.fetch_arrow_table())["line"].to_list() == [
            "line 2", "line 4", "line 6", "line 8", "line 10"]


def test_adbc_wrong_password_and_plaintext_fail_cleanly(tls_server):
    with pytest.raises(adbc_driver_manager.Error, match="(?i)unauthenticated|password"):
        with adbc_connect(tls_server, password="wrong") as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
    plaintext = tls_server.flight.replace("grpc+tls://", "grpc://")
    started = time.time()
    with pytest.raises(adbc_driver_manager.Error):
        with flight_sql.connect(plaintext, db_kwargs={"username": "alice", "password": "alice-secret"},
                                autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
    assert time.time() - started < 30
    # The server keeps serving TLS clients.
    with adbc_connect(tls_server) as conn, conn.cursor() as cur:
        cur.execute("SELECT 41 + 1 AS n")
        assert cur.fetchone() == (42,)


def test_adbc_cancel_stops_the_statement(tls_server):
    with adbc_connect(tls_server) as conn, conn.cursor() as cur:
        outcome = {}

        def run():
            try:
                cur.execute(LONG_QUERY)
                outcome["rows"] = cur.fetchall()
            except Exception as e:  # noqa: BLE001 - the test inspects it
                outcome["error"] = e

        worker = threading.Thread(target=run)
        worker.start()
        wait_running(tls_server, 1)
        cur.adbc_cancel()
        worker.join(timeout=20)
        assert not worker.is_alive(), "adbc_cancel did not stop the statement"
        assert isinstance(outcome.get("error"), adbc_driver_manager.Error), outcome
        wait_running(tls_server, 0)
    with adbc_connect(tls_server) as conn, conn.cursor() as cur:
        for i in range(3):
            cur.execute(f"SELECT {i} AS i")
            assert cur.fetchone() == (i,)
