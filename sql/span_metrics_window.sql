-- span_metrics(start, end, step): the span_metrics view's columns over the
-- spans that started in [start, end), in buckets of `step` aligned to
-- `start`. Planned by the table function with $start, $end (timestamps) and
-- $step (an interval) bound.
SELECT
    date_bin(CAST($step AS INTERVAL), start_time, $start) AS "time",
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
WHERE start_time >= $start AND start_time < $end
GROUP BY 1, service, name, kind, status_code
