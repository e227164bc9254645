"""Result transfer of N rows from o11ydb: Arrow Flight SQL (ADBC, pyarrow
tables) vs the Postgres wire protocol (psycopg 3, binary results) vs DuckDB
reading the very same Parquet block files in process.

Each way fetches `timestamp, metric, value` of the first N samples (all
samples written by `o11ydb bench samples`) RUNS times; the median wall time
(query sent → last row in client memory) gives rows/s. During every way the
server's and this client's peak resident memory are recorded (the server's
VmHWM is reset before each way through /proc/PID/clear_refs; each way runs
in its own Python process, so the client's peak is its own).

Usage: transfer.py PG_HOST:PORT FLIGHT_HOST:PORT BLOCKS_DIR SERVER_PID ROWS RUNS [WAY]
Prints one `way<TAB>median_s<TAB>rows/s<TAB>server_peak_MiB<TAB>client_peak_MiB` line per way.
"""

import os
import resource
import statistics
import subprocess
import sys
import time

import adbc_driver_flightsql.dbapi as flight_sql
import duckdb
import psycopg
from adbc_driver_flightsql import DatabaseOptions

pg_addr, flight_addr, blocks, server_pid, rows, runs = sys.argv[1:7]
rows, runs = int(rows), int(runs)
TENANT = "bench"
SQL = f"SELECT timestamp, metric, value FROM samples LIMIT {rows}"


def server_reset_peak():
    with open(f"/proc/{server_pid}/clear_refs", "w") as f:
        f.write("5")


def server_peak_mib():
    with open(f"/proc/{server_pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def client_peak_mib():
    # Linux reports ru_maxrss in KiB; the client's peak over its whole life.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def flight():
    header = DatabaseOptions.RPC_CALL_HEADER_PREFIX.value + "x-scope-orgid"
    with flight_sql.connect(f"grpc://{flight_addr}", db_kwargs={header: TENANT}, autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.execute(SQL)
            return cur.fetch_arrow_table().num_rows


def pgwire():
    host, port = pg_addr.rsplit(":", 1)
    with psycopg.connect(host=host, port=int(port), user="o11ydb", dbname=TENANT) as conn:
        with conn.cursor(binary=True) as cur:
            cur.execute(SQL)
            n = 0
            while batch := cur.fetchmany(100_000):
                n += len(batch)
            return n


DUCK = duckdb.connect()
DUCK.execute(f"SET threads TO {os.cpu_count()}")
# Blocks keep a float either as decimal mantissa/exponent or as a raw float
# (see src/storage/codec.rs); the value is rebuilt the same way o11ydb does.
DUCK_SQL = f"""
SELECT timestamp, metric, coalesce(value_float, value_mantissa / power(10, value_exponent)) AS value
FROM read_parquet('{blocks}/*.parquet') LIMIT {rows}
"""


def duckdb_local():
    return DUCK.sql(DUCK_SQL).to_arrow_table().num_rows


WAYS = {"flight_sql_adbc": flight, "pgwire_psycopg_binary": pgwire, "duckdb_local_parquet": duckdb_local}

if len(sys.argv) == 7:
    for name in WAYS:
        subprocess.run([sys.executable, *sys.argv, name], check=True)
    sys.exit(0)

name = sys.argv[7]
way = WAYS[name]
if name != "duckdb_local_parquet":
    server_reset_peak()
times = []
for _ in range(runs):
    started = time.perf_counter()
    got = way()
    times.append(time.perf_counter() - started)
    if got != rows:
        sys.exit(f"{name}: {got} rows, expected {rows}")
median = statistics.median(times)
server = f"{server_peak_mib():.0f}" if name != "duckdb_local_parquet" else "-"
print(f"{name}\t{median:.3f}\t{rows / median:.0f}\t{server}\t{client_peak_mib():.0f}", flush=True)

