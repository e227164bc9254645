"""The traces benchmark questions answered by DuckDB in SQL over o11ydb's own
Parquet span blocks (same files, same machine, same run as benches/traces.sh).
The SQL is o11ydb's (src/bench/traces.rs) with DuckDB's names for the
approximate percentile; the span attributes are a packed map in the blocks
(`[varint length][key][varint length][value]...`, see src/storage/codec.rs),
so the attribute filter looks for the packed bytes of the entry. Prints one
line per query: name, median seconds of RUNS runs after a warm-up, and the
same digest as `o11ydb bench traces query` (rows, and the sum of every
integer column not named p...).
Usage: duckdb_traces.py BLOCKS_DIR RUNS NEEDLE"""

import os
import statistics
import sys
import time

import duckdb

blocks, runs, needle = sys.argv[1], int(sys.argv[2]), sys.argv[3]
con = duckdb.connect()
con.execute(f"SET threads TO {os.cpu_count()}")
con.execute(f"CREATE VIEW spans AS SELECT * FROM read_parquet('{blocks}/*.parquet')")


def packed(key, value):
    """The packed-map bytes of one entry as they appear in DuckDB's text form
    of a BLOB (printable ASCII as is, other bytes as \\xHH)."""
    def part(s):
        b = s.encode()
        assert len(b) < 128
        return bytes([len(b)]) + b
    text = "".join(chr(c) if 32 <= c < 127 and c not in b"\\'" else f"\\x{c:02X}"
                   for c in part(key) + part(value))
    return f"'{text}'"


QUERIES = [
    ("service graph",
     "SELECT c.service AS client, s.service AS server, count(*) AS calls, "
     "sum(CASE WHEN s.status_code = 'error' THEN 1 ELSE 0 END) AS failed, "
     "approx_quantile(s.duration_ns, 0.95) AS p95_ns "
     "FROM spans c JOIN spans s ON s.trace_id = c.trace_id AND s.parent_span_id = c.span_id "
     "WHERE c.kind IN ('client', 'producer') AND s.kind IN ('server', 'consumer') "
     "AND c.service <> s.service "
     "GROUP BY c.service, s.service ORDER BY client, server"),
    # o11ydb answers this one with service_graph() (every edge kind and
    # exact percentiles, then the pairs summed); DuckDB with the self-join.
    ("service_graph() function",
     "SELECT c.service AS client, s.service AS server, count(*) AS calls, "
     "sum(CASE WHEN s.status_code = 'error' THEN 1 ELSE 0 END) AS failed "
     "FROM spans c JOIN spans s ON s.trace_id = c.trace_id AND s.parent_span_id = c.span_id "
     "WHERE c.kind IN ('client', 'producer') AND s.kind IN ('server', 'consumer') "
     "AND c.service <> s.service "
     "GROUP BY c.service, s.service ORDER BY client, server"),
    ("RED by service and operation",
     "SELECT service, name, count(*) AS requests, "
     "sum(CASE WHEN status_code = 'error' THEN 1 ELSE 0 END) AS errors, "
     "approx_quantile(duration_ns, 0.5) AS p50_ns, "
     "approx_quantile(duration_ns, 0.95) AS p95_ns "
     "FROM spans WHERE kind IN ('server', 'consumer') "
     "GROUP BY service, name ORDER BY service, name"),
    ("trace by id",
     "SELECT span_id, parent_span_id, service, name, kind, start_time, duration_ns, "
     f"status_code FROM spans WHERE trace_id = '{needle}' ORDER BY start_time, span_id"),
    ("attribute filter",
     "SELECT count(*) AS spans FROM spans WHERE service = 'payment' "
     f"AND contains(attributes::VARCHAR, {packed('http.status_code', '500')})"),
    ("structural: checkout spans with a failing payment child",
     "SELECT count(*) AS spans, count(DISTINCT p.trace_id) AS traces "
     "FROM spans p JOIN spans c ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id "
     "WHERE p.service = 'checkout' AND c.service = 'payment' AND c.status_code = 'error'"),
    # o11ydb runs this one as TraceQL (traceql() over pgwire); DuckDB as the self-join.
    ("TraceQL structural: checkout > failing payment",
     "SELECT count(*) AS spans, count(DISTINCT p.trace_id) AS traces "
     "FROM spans p JOIN spans c ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id "
     "WHERE p.service = 'checkout' AND c.service = 'payment' AND c.status_code = 'error'"),
]


def digest(cursor, rows):
    out = f"{len(rows)} rows"
    for i, (name, *_rest) in enumerate(cursor.description):
        if name.startswith("p"):
            continue
        values = [r[i] for r in rows]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            out += f", {name} {sum(values)}"
    return out


for name, sql in QUERIES:
    cursor = con.execute(sql)
    answer = digest(cursor, cursor.fetchall())
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        con.execute(sql).fetchall()
        times.append(time.perf_counter() - started)
    print(f"{name}\t{statistics.median(times):.4f}\t{answer}")
