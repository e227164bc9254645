-- series: one row per metric series (metric name + label set).
CREATE VIEW series AS
SELECT
    series_id,
    first_value(metric) AS metric,
    first_value(labels) AS labels,
    count(*) AS samples,
    min(timestamp) AS first_sample,
    max(timestamp) AS last_sample
FROM samples
GROUP BY series_id;
