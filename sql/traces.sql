-- traces: one row per trace, from its spans.
-- root_service / root_name come from the span without a parent (NULL while
-- the root has not arrived yet).
CREATE VIEW traces AS
SELECT
    trace_id,
    first_value(service) FILTER (WHERE parent_span_id IS NULL) AS root_service,
    first_value(name) FILTER (WHERE parent_span_id IS NULL) AS root_name,
    min(start_time) AS start_time,
    max(end_time) AS end_time,
    CAST(max(end_time) AS BIGINT) - CAST(min(start_time) AS BIGINT) AS duration_ns,
    count(*) AS span_count,
    count(*) FILTER (WHERE status_code = 'error') AS error_count
FROM spans
GROUP BY trace_id;
