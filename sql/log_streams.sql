-- log_streams: one row per log stream (distinct stream label set).
CREATE VIEW log_streams AS
SELECT
    stream_id,
    first_value(labels) AS labels,
    count(*) AS lines,
    min(timestamp) AS first_line,
    max(timestamp) AS last_line
FROM logs
GROUP BY stream_id;
