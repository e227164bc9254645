"""ADBC's Flight SQL driver (adbc_driver_flightsql, DBAPI) against o11ydb's
Arrow Flight SQL port: queries to Arrow tables, parameters, metadata
(get_objects, table schema), errors, and the tenant rule (username,
x-scope-orgid header)."""

import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager
import pyarrow as pa
import pytest
from adbc_driver_flightsql import DatabaseOptions

INSERT_LOGS = """
INSERT INTO logs (timestamp, labels, line)
SELECT to_timestamp_nanos(1767225600000000000 + value * 1000000),
       map(['app'], [CASE WHEN value % 2 = 0 THEN 'even' ELSE 'odd' END]),
       'line ' || CAST(value AS VARCHAR)
FROM generate_series(1, 10)
"""

HEADER = DatabaseOptions.RPC_CALL_HEADER_PREFIX.value


def connect(server, **db_kwargs):
    return flight_sql.connect(server.flight, db_kwargs=db_kwargs, autocommit=True)


@pytest.fixture(scope="module")
def conn(server):
    with connect(server, **{HEADER + "x-scope-orgid": "py-flight"}) as c:
        with c.cursor() as cur:
            cur.execute(INSERT_LOGS)
            assert cur.fetch_arrow_table().to_pylist() == [{"count": 10}]
        yield c


def test_query_returns_an_arrow_table(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT line, timestamp FROM logs WHERE labels['app'] = 'odd' ORDER BY timestamp")
        table = cur.fetch_arrow_table()
    assert table.column("line").to_pylist() == ["line 1", "line 3", "line 5", "line 7", "line 9"]
    assert pa.types.is_timestamp(table.schema.field("timestamp").type)


def test_large_result_is_complete(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT value FROM generate_series(1, 100000)")
        table = cur.fetch_arrow_table()
    assert table.num_rows == 100000
    assert pa.compute.sum(table.column("value")).as_py() == 100000 * 100001 // 2


def test_parameters(conn):
    with conn.cursor() as cur:
        cur.execute(
            "SELECT line FROM logs WHERE labels['app'] = $1 AND timestamp > "
            "to_timestamp_nanos(1767225600000000000 + $2 * 1000000) ORDER BY timestamp",
            parameters=("even", 5),
        )
        assert [r[0] for r in cur.fetchall()] == ["line 6", "line 8", "line 10"]


def test_get_objects_and_table_schema(conn):
    objects = conn.adbc_get_objects(table_name_filter="logs").read_all().to_pylist()
    tables = [
        (catalog["catalog_name"], schema["db_schema_name"], table["table_name"], table["table_columns"])
        for catalog in objects
        for schema in catalog["catalog_db_schemas"] or []
        for table in schema["db_schema_tables"] or []
    ]
    assert len(tables) == 1, tables
    catalog, db_schema, name, columns = tables[0]
    assert name == "logs"
    assert {"timestamp", "labels", "line"} <= {c["column_name"] for c in columns}

    schema = conn.adbc_get_table_schema("logs", catalog_filter=catalog, db_schema_filter=db_schema)
    assert pa.types.is_string(schema.field("line").type) or pa.types.is_large_string(
        schema.field("line").type
    )
    assert "TABLE" in conn.adbc_get_table_types()
    info = conn.adbc_get_info()
    assert info["vendor_name"] == "o11ydb"


def test_bad_sql_is_an_error_and_the_connection_keeps_working(conn):
    with conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error) as e:
            cur.execute("SELECT line FROM no_such_table")
        assert "no_such_table" in str(e.value)
        assert "INVALID_ARGUMENT" in str(e.value) or isinstance(e.value, adbc_driver_manager.ProgrammingError)
        cur.execute("SELECT count(*) AS n FROM logs")
        assert cur.fetchone() == (10,)


def test_tenants(server, conn):
    # The handshake's username is the tenant: same data as the header.
    with connect(server, username="py-flight", password="anything") as c, c.cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM logs")
        assert cur.fetchone() == (10,)
    # Another tenant, and the default one, see none of it.
    with connect(server, **{HEADER + "x-scope-orgid": "someone-else"}) as c, c.cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM logs")
        assert cur.fetchone() == (0,)
    with connect(server) as c, c.cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM logs")
        assert cur.fetchone() == (0,)


def test_bulk_ingest_appends_arrow_tables(server):
    """cursor.adbc_ingest: a pyarrow table into `spans` of the caller's
    tenant (columns left out take their defaults), then read back."""
    spans = pa.table(
        {
            "trace_id": ["ab" * 16] * 3,
            "span_id": [f"{i:016x}" for i in range(1, 4)],
            "parent_span_id": [None, f"{1:016x}", f"{1:016x}"],
            "name": ["GET /", "SELECT", "SET"],
            "service": ["py-bulk", "py-bulk", "py-bulk"],
            "start_time": pa.array([1767225600000000000 + i for i in range(3)], pa.timestamp("ns", "UTC")),
            "end_time": pa.array([1767225600005000000 + i for i in range(3)], pa.timestamp("ns", "UTC")),
        }
    )
    with connect(server, **{HEADER + "x-scope-orgid": "py-bulk"}) as c:
        with c.cursor() as cur:
            assert cur.adbc_ingest("spans", spans, mode="append") == 3
            cur.execute("SELECT name, kind, duration_ns FROM spans ORDER BY name")
            rows = cur.fetch_arrow_table().to_pylist()
    assert rows == [
        {"name": "GET /", "kind": "unspecified", "duration_ns": 5000000},
        {"name": "SELECT", "kind": "unspecified", "duration_ns": 5000000},
        {"name": "SET", "kind": "unspecified", "duration_ns": 5000000},
    ]
    with connect(server, **{HEADER + "x-scope-orgid": "py-bulk"}) as c:
        with c.cursor() as cur:
            with pytest.raises(adbc_driver_manager.Error, match="the tables are logs, samples and spans"):
                cur.adbc_ingest("nowhere", spans, mode="append")
