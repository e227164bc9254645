-- span_metrics: RED metrics of spans per minute — calls, errors and duration
-- percentiles per service, span name, span kind and status. `time` is the
-- start of the minute the spans started in. For another bucket width or a
-- time window that prunes blocks, use the table function
-- span_metrics(start, end, step) (sql/span_metrics_window.sql).
CREATE VIEW span_metrics AS
SELECT
    date_bin(INTERVAL '1 minute', start_time, TIMESTAMP '1970-01-01T00:00:00Z') AS "time",
    service,
    name AS span_name,
    kind AS span_kind,
    status_code,
    count(*) AS calls,
    count(*) FILTER (WHERE status_code = 'error') AS errors,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ns / 1e9) AS duration_p50_seconds,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ns / 1e9) AS duration_p95_seconds,
    percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ns / 1e9) AS duration_p99_seconds,
    sum(duration_ns) / 1e9 AS duration_sum_seconds
FROM spans
GROUP BY 1, service, name, kind, status_code;
