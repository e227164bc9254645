"""Times the o11ydb bench aggregate in DuckDB over o11ydb's own Parquet
blocks (same files, same machine). Prints the best wall time of 5 runs in
seconds. Usage: duckdb_aggregate.py BLOCKS_DIR"""

import os
import sys
import time

import duckdb

blocks = sys.argv[1]
con = duckdb.connect()
con.execute(f"SET threads TO {os.cpu_count()}")
# Blocks keep a float either as decimal mantissa/exponent or as a raw float
# (see src/storage/codec.rs); the value is rebuilt the same way o11ydb does.
sql = f"""
SELECT metric, count(*) AS n, avg(v) AS avg, max(v) AS max FROM (
    SELECT metric, timestamp,
           coalesce(value_float, value_mantissa / power(10, value_exponent)) AS v
    FROM read_parquet('{blocks}/*.parquet'))
WHERE timestamp >= TIMESTAMPTZ '2026-01-01 01:00:00+00'
GROUP BY metric ORDER BY metric
"""
best = float("inf")
for _ in range(5):
    started = time.perf_counter()
    rows = con.execute(sql).fetchall()
    best = min(best, time.perf_counter() - started)
print(f"{best:.4f}")
print(rows[:3], file=sys.stderr)
