"""psycopg 3 against o11ydb over the Postgres wire protocol: simple and
extended (server-side prepared, binary) queries, parameters, types, errors."""

import datetime as dt

import psycopg
import pytest
from psycopg import errors

SPANS = """
INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind, service, start_time, end_time,
                   status_code, attributes)
VALUES ('4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7', NULL, 'GET /cart', 'server', 'frontend',
        '2026-01-01T00:00:00Z', '2026-01-01T00:00:00.250Z', 'ok', map(['http.route'], ['/cart'])),
       ('4bf92f3577b34da6a3ce929d0e0e4736', '1111111111111111', '00f067aa0ba902b7', 'SELECT', 'client', 'cart',
        '2026-01-01T00:00:00.010Z', '2026-01-01T00:00:00.030Z', 'error', map(['db.system'], ['postgresql']))
"""


@pytest.fixture(scope="module")
def conn(server):
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        c.execute(SPANS)
        yield c


def test_group_by_service(conn):
    rows = conn.execute("SELECT service, count(*) FROM spans GROUP BY 1 ORDER BY 1").fetchall()
    assert rows == [("cart", 1), ("frontend", 1)]


def test_types_text_and_binary(conn):
    for binary in (False, True):
        with conn.cursor(binary=binary) as cur:
            cur.execute(
                "SELECT start_time, duration_ns, attributes, status_code FROM spans WHERE span_id = %s",
                ("00f067aa0ba902b7",))
            start, duration, attributes, status = cur.fetchone()
            assert start == dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
            assert duration == 250_000_000
            assert attributes == {"http.route": "/cart"}, "maps arrive as jsonb"
            assert status == "ok"


def test_prepared_statement_reuse_with_parameters(conn):
    since = dt.datetime(2026, 1, 1, 0, 0, 0, 5000, tzinfo=dt.timezone.utc)
    for _ in range(3):
        cur = conn.execute(
            "SELECT name FROM spans WHERE service = %s AND start_time >= %s", ("cart", since), prepare=True)
        assert cur.fetchall() == [("SELECT",)]


def test_rows_survive_a_flush(server, conn):
    before = conn.execute("SELECT trace_id, span_id, name FROM spans ORDER BY span_id").fetchall()
    server.flush()
    after = conn.execute("SELECT trace_id, span_id, name FROM spans ORDER BY span_id").fetchall()
    assert before == after and len(after) == 2


def test_errors_have_sqlstate_and_the_connection_survives(conn):
    with pytest.raises(errors.SyntaxError) as e:
        conn.execute("SELEC 1")
    assert e.value.sqlstate == "42601"
    assert e.value.diag.statement_position == "1"
    with pytest.raises(errors.UndefinedTable):
        conn.execute("SELECT * FROM nope")
    with pytest.raises(errors.UndefinedColumn):
        conn.execute("SELECT nope FROM spans")
    with pytest.raises(errors.InvalidTextRepresentation):
        conn.execute("INSERT INTO samples (timestamp, metric, value) VALUES (now(), 'x', 'abc')")
    assert conn.execute("SELECT 1 + 1").fetchone() == (2,)


def test_insert_with_parameters(conn):
    ts = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)
    cur = conn.execute(
        "INSERT INTO samples (timestamp, metric, labels, value) VALUES (%s, %s, map(['job'], ['api']), %s)",
        (ts, "up", 1.0))
    assert cur.rowcount == 1
    row = conn.execute("SELECT metric, labels, value FROM samples WHERE metric = 'up'").fetchone()
    assert row == ("up", {"job": "api"}, 1.0)
