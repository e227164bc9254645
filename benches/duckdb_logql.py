"""The LogQL benchmark questions answered by DuckDB in SQL over o11ydb's own
Parquet log blocks (same files, same machine, same run as benches/logql.sh).
Stream labels are packed binary in the blocks, so the service is read from
the line (every line carries it); the level is the `severity` column (set
from the pushed `detected_level`). Prints one line per query: name, median
seconds of RUNS runs after a warm-up, and the answer.
Usage: duckdb_logql.py BLOCKS_DIR RUNS NEEDLE"""

import glob
import json
import os
import statistics
import sys
import time

import duckdb

blocks, runs, needle = sys.argv[1], int(sys.argv[2]), sys.argv[3]
con = duckdb.connect()
con.execute(f"SET threads TO {os.cpu_count()}")
# The blocks the newest manifest lists (blocks a compaction replaced may
# still be on disk until they are deleted).
manifest = max(glob.glob(f"{blocks}/../manifests/*.json"))
with open(manifest) as f:
    files = [f"{blocks}/{b['id']}.parquet" for b in json.load(f)["blocks"]]
con.execute(f"CREATE VIEW logs AS SELECT * FROM read_parquet({files!r})")
service = "regexp_extract(line, 'service[=\":]+([a-z-]+)', 1)"
QUERIES = [
    ("substring filter (count)",
     "SELECT count(*) FROM logs WHERE contains(line, 'connection reset')"),
    ("regex filter (count)",
     "SELECT count(*) FROM logs WHERE regexp_matches(line, 'status[=\":]+50[23]')"),
    ("case-insensitive filter (count)",
     "SELECT count(*) FROM logs WHERE regexp_matches(line, '(?i)UPSTREAM TIMEOUT')"),
    ("needle: one trace id (log query)",
     f"SELECT timestamp, line FROM logs WHERE trace_id = '{needle}' ORDER BY timestamp DESC LIMIT 100"),
    ("needle: trace id as a line filter (log query)",
     f"SELECT timestamp, line FROM logs WHERE contains(line, '{needle}') ORDER BY timestamp DESC LIMIT 100"),
    ("count by level (5m buckets)",
     "SELECT severity, time_bucket(INTERVAL '5 minutes', timestamp) AS t, count(*) "
     "FROM logs GROUP BY ALL"),
    ("topk services by error ratio",
     f"SELECT {service} AS s, count(*) FILTER (WHERE severity = 'error') / count(*) AS r "
     "FROM logs GROUP BY s ORDER BY r DESC LIMIT 3"),
    ("json field extraction + aggregation",
     "SELECT json_extract_string(line, '$.status') AS status, count(*) FROM logs "
     "WHERE starts_with(line, '{') AND json_extract_string(line, '$.service') = 'api' GROUP BY status"),
    ("logfmt p99 of unwrapped latency",
     "SELECT quantile_cont(CAST(regexp_extract(line, 'latency_ms=([0-9.]+)', 1) AS DOUBLE), 0.99) "
     "FROM logs WHERE starts_with(line, 'level=') AND contains(line, ' service=web ')"),
]
for name, sql in QUERIES:
    rows = con.execute(sql).fetchall()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        rows = con.execute(sql).fetchall()
        times.append(time.perf_counter() - started)
    answer = rows[0] if len(rows) == 1 else f"{len(rows)} rows"
    print(f"{name}\t{statistics.median(times):.3f}\t{answer}")
