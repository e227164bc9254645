"""Query o11ydb's traces over Arrow Flight SQL with ADBC and get Arrow back.

    pip install adbc-driver-flightsql pyarrow   # pandas too, for to_pandas()
    cargo run --release -- serve --demo          # in another terminal
    python examples/flight_query_traces.py [grpc://127.0.0.1:50051]

Prints the slowest server spans of the last 15 minutes per service, and the
spans a TraceQL query matches, as Arrow tables (`.to_pandas()` turns either
into a DataFrame).
"""

import sys

import adbc_driver_flightsql.dbapi as flight_sql

uri = sys.argv[1] if len(sys.argv) > 1 else "grpc://127.0.0.1:50051"

with flight_sql.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
    cur.execute(
        """
        SELECT service, name, count(*) AS spans,
               approx_percentile_cont(duration_ns, 0.99) / 1e6 AS p99_ms
        FROM spans
        WHERE kind = 'server' AND start_time > now() - interval '15 minutes'
        GROUP BY service, name ORDER BY p99_ms DESC LIMIT 10
        """
    )
    print(cur.fetch_arrow_table())
    cur.execute(
        """
        SELECT trace_id, service, name, duration_ns / 1e6 AS ms
        FROM traceql('{ kind = server } >> { status = error }',
                     now() - interval '15 minutes', now(), 20)
        ORDER BY ms DESC LIMIT 10
        """
    )
    print(cur.fetch_arrow_table())
