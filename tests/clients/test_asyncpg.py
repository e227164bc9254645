"""asyncpg against o11ydb over the Postgres wire protocol. asyncpg always
prepares statements and exchanges values in binary format, so every type
here round-trips as a binary bind parameter and a binary result column."""

import asyncio
import datetime as dt
import decimal
import json

import asyncpg
import pytest

UTC = dt.timezone.utc


def run(server, body):
    async def main():
        conn = await asyncpg.connect(host=server.pg_host, port=server.pg_port,
                                     user="o11ydb", database="o11ydb")
        try:
            return await body(conn)
        finally:
            await conn.close()
    return asyncio.run(main())


# (SQL type, value sent, value expected back)
VALUES = [
    ("int2", 7, 7),
    ("int4", -70000, -70000),
    ("int8", 2**40, 2**40),
    ("float4", 1.5, 1.5),
    ("float8", 0.1, 0.1),
    ("numeric", decimal.Decimal("1.25"), decimal.Decimal("1.25")),
    ("text", "héllo ✓", "héllo ✓"),
    ("bool", True, True),
    ("timestamptz", dt.datetime(2026, 1, 1, 12, 0, 0, 250000, tzinfo=UTC),
     dt.datetime(2026, 1, 1, 12, 0, 0, 250000, tzinfo=UTC)),
    ("timestamp", dt.datetime(2026, 1, 1, 1, 2, 3), dt.datetime(2026, 1, 1, 1, 2, 3)),
    ("date", dt.date(2026, 1, 2), dt.date(2026, 1, 2)),
    ("interval", dt.timedelta(days=1, seconds=5), dt.timedelta(days=1, seconds=5)),
    ("jsonb", '{"a": [1, 2]}', {"a": [1, 2]}),
    ("json", '{"b": null}', {"b": None}),
    ("bytea", b"\x00\x01\xff", b"\x00\x01\xff"),
    ("int8[]", [1, 2, 3], [1, 2, 3]),
    ("float8[]", [1.5, -2.0], [1.5, -2.0]),
    ("text[]", ["a", "b c"], ["a", "b c"]),
]


@pytest.mark.parametrize("sql_type,sent,expected", VALUES, ids=[v[0] for v in VALUES])
def test_parameter_and_result_round_trip(server, sql_type, sent, expected):
    async def body(conn):
        value, is_null, null_back = await conn.fetchrow(
            f"SELECT $1::{sql_type} AS v, $2::{sql_type} IS NULL AS n, $2::{sql_type} AS nv",
            sent, None)
        if sql_type in ("json", "jsonb"):
            value = json.loads(value)
        assert value == expected
        assert type(value) is type(expected)
        assert is_null is True and null_back is None
    run(server, body)


def test_result_types_are_described(server):
    async def body(conn):
        stmt = await conn.prepare(
            "SELECT 1::int8 AS i, 'x'::text AS t, '{\"a\":1}'::jsonb AS j, "
            "[1, 2] AS a, ['x'] AS s, now() AS ts")
        return {a.name: a.type.oid for a in stmt.get_attributes()}
    # int8, text, jsonb, int8[], text[], timestamptz
    assert run(server, body) == {"i": 20, "t": 25, "j": 3802, "a": 1016, "s": 1009, "ts": 1184}


def test_type_introspection_for_jsonb_codec(server):
    async def body(conn):
        # set_type_codec looks the type up in pg_catalog.pg_type.
        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads,
                                  schema="pg_catalog")
        return await conn.fetchval("SELECT $1::jsonb", {"k": [1, "two"]})
    assert run(server, body) == {"k": [1, "two"]}


def test_executemany_insert_into_logs_and_read_back(server):
    rows = [(dt.datetime(2026, 1, 1, 0, 0, i, tzinfo=UTC), f"asyncpg line {i}", "info") for i in range(5)]

    async def body(conn):
        await conn.executemany(
            "INSERT INTO logs (timestamp, labels, line, severity) "
            "VALUES ($1, map(['job'], ['asyncpg']), $2, $3)", rows)
        return await conn.fetch(
            "SELECT timestamp, labels, line, severity FROM logs "
            "WHERE line LIKE 'asyncpg line %' ORDER BY timestamp")
    got = run(server, body)
    assert [(r["timestamp"], r["line"], r["severity"]) for r in got] == rows
    assert all(json.loads(r["labels"]) == {"job": "asyncpg"} for r in got), "maps leave as jsonb"


def test_errors_carry_sqlstate_and_the_connection_survives(server):
    async def body(conn):
        with pytest.raises(asyncpg.exceptions.UndefinedColumnError) as e:
            await conn.fetch("SELECT nope FROM logs")
        assert e.value.sqlstate == "42703"
        with pytest.raises(asyncpg.exceptions.PostgresSyntaxError) as e:
            await conn.fetch("SELEC 1")
        assert e.value.sqlstate == "42601"
        with pytest.raises(asyncpg.exceptions.UndefinedTableError):
            await conn.fetch("SELECT * FROM nope WHERE x = $1", 1)
        with pytest.raises(asyncpg.exceptions.InvalidTextRepresentationError):
            await conn.fetchval("SELECT $1::jsonb", "{not json")
        return await conn.fetchval("SELECT $1::int8 + 1", 41)
    assert run(server, body) == 42


def test_connect_time_settings(server):
    async def body(conn):
        return (conn.get_server_version().major,
                await conn.fetchval("SHOW transaction_isolation"),
                await conn.fetchval("SELECT current_schema()"))
    assert run(server, body) == (16, "read committed", "public")
