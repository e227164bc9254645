"""Bulk-load a Parquet file of log lines into o11ydb over Arrow Flight SQL.

    pip install adbc-driver-flightsql pyarrow
    cargo run --release -- serve                 # in another terminal
    python examples/flight_bulk_load.py lines.parquet [grpc://127.0.0.1:50051] [tenant]

The file needs a `timestamp` column and a `line` column; a `labels` column
(map<string, string>) is optional (default: {"source": "parquet"}). Rows go
through the same distributor as every other ingest path (limits, WAL, head)
and are queryable as soon as the call returns. Without a file, a small
generated table is loaded.
"""

import sys

import adbc_driver_flightsql.dbapi as flight_sql
import pyarrow as pa
import pyarrow.parquet as pq
from adbc_driver_flightsql import DatabaseOptions

path = sys.argv[1] if len(sys.argv) > 1 else None
uri = sys.argv[2] if len(sys.argv) > 2 else "grpc://127.0.0.1:50051"
tenant = sys.argv[3] if len(sys.argv) > 3 else "anonymous"

if path:
    table = pq.read_table(path)
else:
    table = pa.table(
        {
            "timestamp": pa.array(
                [1767225600000000000 + i * 1_000_000 for i in range(1000)], pa.timestamp("ns", "UTC")
            ),
            "line": [f"generated line {i}" for i in range(1000)],
        }
    )
if "labels" not in table.column_names:
    labels = pa.array([[("source", "parquet")]] * table.num_rows, pa.map_(pa.string(), pa.string()))
    table = table.append_column("labels", labels)

header = DatabaseOptions.RPC_CALL_HEADER_PREFIX.value + "x-scope-orgid"
with flight_sql.connect(uri, db_kwargs={header: tenant}, autocommit=True) as conn:
    with conn.cursor() as cur:
        rows = cur.adbc_ingest("logs", table, mode="append")
        print(f"loaded {rows} rows into logs of tenant {tenant!r}")
        cur.execute("SELECT count(*) AS lines FROM logs WHERE labels['source'] = 'parquet'")
        print(cur.fetch_arrow_table())
